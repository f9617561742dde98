/*
 * handover.c - the master's copies of the workers' client sockets, and
 * the messages that keep them in step (see handover.h).
 *
 * Worker -> master, one datagram each:
 *   HO_KEEP  conn, state record, the socket (SCM_RIGHTS)
 *   HO_DROP  conn
 *   HO_READY a worker started early for an upgrade is ready to adopt
 *   HO_HANDED a worker handing over for an upgrade sent its last record
 * The master holds, per slot and connection id, the descriptor and the
 * record.  After a crash nothing flows back: the replacement worker
 * inherits the descriptors and records through fork(), and keeps the
 * connection ids, so the table stays valid for it as it is.  In an
 * upgrade the worker is started before the connections arrive; the
 * master then sends it each as HO_KEEP, and HO_GO after the last.
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handover.h"
#include "log.h"
#include "online.h"
#include "util.h"

#define HO_KEEP		HANDOVER_MSG_KEEP
#define HO_DROP		2
#define HO_READY	3
#define HO_GO		4
#define HO_HANDED	5
#define HO_MAX_RECORD	HANDOVER_MAX_RECORD
#define HO_SOCKBUF	(1024 * 1024)

struct ho_msg {
	uint32_t	type;
	uint32_t	conn;
};

struct held {
	int	 fd;		/* -1: none */
	char	*rec;
	size_t	 len;
};

struct slot_table {
	struct held	*v;	/* indexed by connection id */
	size_t		 cap;
	size_t		 n;	/* held */
	double		 adopt_at;	/* a worker adopting started, 0: none */
	int		 prepare;	/* the next worker waits for HO_GO */
	int		 ready;		/* HO_READY came */
	int		 handed;	/* HO_HANDED came */
};

/* A record the worker could not send yet: its own duplicate and copy. */
struct qrec {
	struct ho_msg	 m;
	struct held	 h;
};

static ssize_t	ho_sendmsg(int, const struct ho_msg *, const char *, size_t,
		    int);

static int		  nslots;
static int		(*pairs)[2];	/* [slot][0] master, [1] worker */
static struct slot_table *tables;
static char		 *rbuf;
/* in a worker */
static int		  my_fd = -1;
static struct ho_inherit *inherit;
static size_t		  ninherit, inherit_cap;
static int		  prepared;	/* waits for HO_GO (upgrade) */
static int		  unsettle;	/* handover_new_table */
static int		  inherit_owned;	/* the records are our copies */
static struct qrec	 *queue;
static size_t		  qhead, qlen, qcap;

int
handover_init(int n, char *err, size_t errlen)
{
	int	 i, sz = HO_SOCKBUF;

	nslots = n;
	if ((pairs = calloc(n, sizeof(*pairs))) == NULL ||
	    (tables = calloc(n, sizeof(*tables))) == NULL ||
	    (rbuf = malloc(sizeof(struct ho_msg) + HO_MAX_RECORD)) == NULL) {
		snprintf(err, errlen, "handover: out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0, pairs[i]) == -1) {
			snprintf(err, errlen, "handover socketpair: %s",
			    strerror(errno));
			return -1;
		}
		/* best effort: a full socket only queues in the worker */
		(void)setsockopt(pairs[i][1], SOL_SOCKET, SO_SNDBUF, &sz,
		    sizeof(sz));
		(void)setsockopt(pairs[i][0], SOL_SOCKET, SO_RCVBUF, &sz,
		    sizeof(sz));
	}
	return 0;
}

int
handover_fd(int slot)
{
	return pairs[slot][0];
}

static void
held_clear(struct held *h)
{
	if (h->fd != -1)
		close(h->fd);
	free(h->rec);
	h->fd = -1;
	h->rec = NULL;
	h->len = 0;
}

static int
table_room(struct slot_table *t, uint32_t conn)
{
	size_t		 had = t->cap, i;

	if (util_grow((void **)&t->v, &t->cap, conn, sizeof(*t->v)) == -1)
		return -1;
	for (i = had; i < t->cap; i++)
		t->v[i].fd = -1;
	return 0;
}

/*
 * HO_F_SETTLED says the user's session-table entry stayed valid, so what
 * was stored for it came with a nudge.  In a new table (an upgrade that
 * made one) it did not: a sender found the user away and stored without
 * one, and only the adopter's fetch brings that.
 */
static void
rec_unsettle(char *rec, size_t len)
{
	struct ho_state	 st;

	if (len < sizeof(st))
		return;
	memcpy(&st, rec, sizeof(st));
	st.flags &= ~(uint32_t)HO_F_SETTLED;
	memcpy(rec, &st, sizeof(st));
}

void
handover_new_table(void)
{
	unsettle = 1;
}

/* One datagram from slot's worker. */
static void
master_record(int slot, const struct ho_msg *m, const char *rec, size_t len,
    int fd)
{
	struct slot_table	*t = &tables[slot];
	struct held		*h;
	char			*copy = NULL;

	if (m->type == HO_READY || m->type == HO_HANDED) {
		if (m->type == HO_READY)
			t->ready = 1;
		else
			t->handed = 1;
		if (fd != -1)
			close(fd);
		return;
	}
	if (m->type == HO_DROP) {
		if (m->conn < t->cap && t->v[m->conn].fd != -1) {
			held_clear(&t->v[m->conn]);
			t->n--;
		}
		if (fd != -1)
			close(fd);
		return;
	}
	if (m->type != HO_KEEP || fd == -1 || len == 0) {
		log_warnx("handover: bad record (type %u) from worker %d",
		    m->type, slot);
		if (fd != -1)
			close(fd);
		return;
	}
	if (table_room(t, m->conn) == -1 || (copy = malloc(len)) == NULL) {
		/* this one is not handed over if the worker dies */
		log_warnx("handover: out of memory holding a connection of "
		    "worker %d", slot);
		free(copy);
		close(fd);
		return;
	}
	memcpy(copy, rec, len);
	if (unsettle)
		rec_unsettle(copy, len);
	h = &t->v[m->conn];
	if (h->fd != -1)
		held_clear(h);
	else
		t->n++;
	h->fd = fd;
	h->rec = copy;
	h->len = len;
}

ssize_t
handover_recv(int sock, char *buf, size_t cap, int *fd)
{
	union {
		struct cmsghdr	 h;
		char		 b[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct msghdr	 mh;
	struct cmsghdr	*cm;
	struct iovec	 iov;
	ssize_t		 r;

	*fd = -1;
	memset(&mh, 0, sizeof(mh));
	iov.iov_base = buf;
	iov.iov_len = cap;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.b;
	mh.msg_controllen = sizeof(cbuf.b);
	while ((r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) == -1 &&
	    errno == EINTR)
		;
	if (r == -1)
		return -1;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(cm), sizeof(int));
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
		if (*fd != -1)
			close(*fd);
		*fd = -1;
		errno = EMSGSIZE;
		return -1;
	}
	return r;
}

void
handover_read(int slot, struct online_slot_stats *st)
{
	struct ho_msg	 m;
	ssize_t		 r;
	int		 fd;

	for (;;) {
		r = handover_recv(pairs[slot][0], rbuf, sizeof(m) +
		    HO_MAX_RECORD, &fd);
		if (r == -1 && errno != EMSGSIZE) {
			if (errno != EAGAIN)
				log_warn("handover: reading from worker %d",
				    slot);
			return;
		}
		if (r < (ssize_t)sizeof(m)) {
			log_warnx("handover: truncated record from worker %d",
			    slot);
			if (fd != -1)
				close(fd);
			__atomic_add_fetch(&st->handover_failed, 1,
			    __ATOMIC_RELAXED);
			continue;
		}
		memcpy(&m, rbuf, sizeof(m));
		master_record(slot, &m, rbuf + sizeof(m), r - sizeof(m), fd);
	}
}

/* Close every copy of slot: nobody will adopt them. */
static size_t
table_close(struct slot_table *t)
{
	size_t	 i, n = 0;

	for (i = 0; i < t->cap; i++)
		if (t->v[i].fd != -1) {
			held_clear(&t->v[i]);
			n++;
		}
	t->n = 0;
	return n;
}

size_t
handover_worker_died(int slot, int stopping, double now,
    struct online_slot_stats *st)
{
	struct slot_table	*t = &tables[slot];
	size_t			 n;

	handover_read(slot, st);
	if (stopping) {
		(void)table_close(t);
		return 0;
	}
	if (t->n == 0) {
		t->adopt_at = 0;
		return 0;
	}
	if (t->adopt_at > 0 && now - t->adopt_at < HANDOVER_RETRY_SECONDS) {
		n = table_close(t);
		log_warnx("worker %d died %.1f s after adopting connections: "
		    "closing its %zu connections instead of handing them "
		    "over again", slot, now - t->adopt_at, n);
		__atomic_add_fetch(&st->handover_failed, n, __ATOMIC_RELAXED);
		t->adopt_at = 0;
		return 0;
	}
	log_notice("worker %d: %zu connections wait for its replacement; "
	    "requests it had read and not answered are lost (clients "
	    "resend), its unwritten output too", slot, t->n);
	__atomic_add_fetch(&st->handovers, 1, __ATOMIC_RELAXED);
	return t->n;
}

void
handover_spawned(int slot, double now)
{
	tables[slot].adopt_at = tables[slot].n > 0 ? now : 0;
}

void
handover_shutdown(void)
{
	int	 i;

	for (i = 0; i < nslots; i++) {
		(void)table_close(&tables[i]);
		free(tables[i].v);
		close(pairs[i][0]);
		close(pairs[i][1]);
	}
	free(tables);
	free(pairs);
	free(rbuf);
	tables = NULL;
	pairs = NULL;
	rbuf = NULL;
}

size_t
handover_held(int slot)
{
	return tables[slot].n;
}

/* ---- binary upgrade (upgrade.c) ---------------------------------------- */

/*
 * An upgrade's record (HO_F_CLEAN) is true once, for the worker it goes
 * to: the copy kept for a crash of that worker says "adopt by the crash
 * rules" (no partial request, no answers to wait for).  Done here, so
 * that the adopter need not send every socket back.
 */
static void
held_plain(struct held *h)
{
	struct ho_state	 st;

	if (h->len < sizeof(st))
		return;
	memcpy(&st, h->rec, sizeof(st));
	if ((st.flags & HO_F_CLEAN) == 0 || st.name_len > h->len - sizeof(st))
		return;
	st.flags &= ~(uint32_t)(HO_F_CLEAN | HO_F_ANSWERS | HO_F_SETTLED |
	    HO_F_NOBLOCKS);
	memcpy(h->rec, &st, sizeof(st));
	h->len = sizeof(st) + st.name_len;
}

/*
 * Send every connection held for slot over sock, each with its socket;
 * then, with go, HO_GO.  keep: the master keeps its copies (else they
 * are closed as they go).  How many, or -1 (what was not sent stays).
 */
static ssize_t
send_table(int slot, int sock, double deadline, int keep, int go)
{
	struct slot_table	*t = &tables[slot];
	struct pollfd		 pfd;
	struct ho_msg		 m;
	size_t			 k;
	ssize_t			 sent = 0;
	double			 left;
	int			 last;

	for (k = 0; k <= t->cap; k++) {
		last = k == t->cap;
		if ((last && !go) || (!last && t->v[k].fd == -1))
			continue;
		m.type = last ? HO_GO : HO_KEEP;
		m.conn = (uint32_t)k;
		while (ho_sendmsg(sock, &m, last ? NULL : t->v[k].rec,
		    last ? 0 : t->v[k].len, last ? -1 : t->v[k].fd) == -1) {
			left = deadline - util_mono();
			if ((errno != EAGAIN && errno != ENOBUFS) || left <= 0)
				return -1;
			pfd.fd = sock;
			pfd.events = POLLOUT;
			(void)poll(&pfd, 1, (int)(left * 1000) + 1);
		}
		if (last)
			break;
		sent++;
		if (keep)
			held_plain(&t->v[k]);
		if (!keep) {
			/* the receiver has its own reference now */
			held_clear(&t->v[k]);
			t->n--;
		}
	}
	return sent;
}

ssize_t
handover_pass_slot(int slot, int sock, double deadline)
{
	ssize_t	 n;

	if ((n = send_table(slot, sock, deadline, 0, 0)) == -1) {
		log_warn("upgrade: passing worker %d's connections to the new "
		    "master", slot);
		(void)table_close(&tables[slot]);
	}
	return n;
}

int
handover_hold(int slot, uint32_t conn, const char *rec, size_t len, int fd)
{
	struct slot_table	*t = &tables[slot];
	struct ho_msg		 m;

	m.type = HO_KEEP;
	m.conn = conn;
	master_record(slot, &m, rec, len, fd);
	return fd != -1 && conn < t->cap && t->v[conn].fd == fd ? 0 : -1;
}

/* ---- worker ------------------------------------------------------------ */

void
handover_child(int slot)
{
	struct slot_table	*t;
	size_t			 k;
	int			 i;

	for (i = 0; i < nslots; i++) {
		close(pairs[i][0]);
		if (i != slot)
			close(pairs[i][1]);
	}
	my_fd = pairs[slot][1];
	prepared = tables[slot].prepare;
	/* the copies of the other slots' sockets are theirs */
	for (i = 0; i < nslots; i++) {
		t = &tables[i];
		if (i == slot)
			continue;
		for (k = 0; k < t->cap; k++)
			if (t->v[k].fd != -1)
				close(t->v[k].fd);
	}
	t = &tables[slot];
	if (t->n > 0 && (inherit = calloc(t->n, sizeof(*inherit))) != NULL)
		for (k = 0; k < t->cap; k++) {
			if (t->v[k].fd == -1)
				continue;
			inherit[ninherit].conn = k;
			inherit[ninherit].fd = t->v[k].fd;
			inherit[ninherit].state = t->v[k].rec;
			inherit[ninherit].len = t->v[k].len;
			ninherit++;
		}
	else if (t->n > 0) {
		/* the master still holds them: closed when this one dies */
		log_warnx("handover: out of memory; %zu connections not "
		    "adopted", t->n);
		for (k = 0; k < t->cap; k++)
			if (t->v[k].fd != -1)
				close(t->v[k].fd);
	}
}

int
handover_worker_fd(void)
{
	return my_fd;
}

size_t
handover_inherited(const struct ho_inherit **v)
{
	*v = inherit;
	return ninherit;
}

void
handover_inherited_done(void)
{
	int	 i;
	size_t	 k;

	/* received after the start (upgrade): ours; the fds are taken */
	for (k = 0; inherit_owned && k < ninherit; k++)
		free((char *)(uintptr_t)inherit[k].state);
	inherit_owned = 0;
	inherit_cap = 0;
	/* the records were the master's memory, copied by fork */
	for (i = 0; tables != NULL && i < nslots; i++) {
		for (k = 0; k < tables[i].cap; k++)
			free(tables[i].v[k].rec);
		free(tables[i].v);
	}
	free(tables);
	tables = NULL;
	free(pairs);
	pairs = NULL;
	free(rbuf);
	rbuf = NULL;
	free(inherit);
	inherit = NULL;
	ninherit = 0;
}

/*
 * One datagram: m, then len bytes of rec, with fd (-1: none) as
 * SCM_RIGHTS.  sendmsg's result (errno on -1).
 */
static ssize_t
ho_sendmsg(int sock, const struct ho_msg *m, const char *rec, size_t len,
    int fd)
{
	union {
		struct cmsghdr	 h;
		char		 b[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct msghdr	 mh;
	struct cmsghdr	*cm;
	struct iovec	 iov[2];
	ssize_t		 r;

	memset(&mh, 0, sizeof(mh));
	iov[0].iov_base = (void *)(uintptr_t)m;
	iov[0].iov_len = sizeof(*m);
	iov[1].iov_base = (void *)(uintptr_t)rec;
	iov[1].iov_len = len;
	mh.msg_iov = iov;
	mh.msg_iovlen = len > 0 ? 2 : 1;
	if (fd != -1) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.b;
		mh.msg_controllen = sizeof(cbuf.b);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	while ((r = sendmsg(sock, &mh, MSG_NOSIGNAL)) == -1 && errno == EINTR)
		;
	return r;
}

/* HO_SENT, HO_QUEUED (the socket is full: not sent yet) or HO_FAILED. */
static enum ho_send
send_one(const struct qrec *q)
{
	if (ho_sendmsg(my_fd, &q->m, q->h.rec, q->h.len, q->h.fd) != -1)
		return HO_SENT;
	if (errno == EAGAIN || errno == ENOBUFS)
		return HO_QUEUED;
	log_warn("handover: passing connection %u to the master", q->m.conn);
	return HO_FAILED;
}

enum ho_send
handover_flush(void)
{
	while (qhead < qlen) {
		if (send_one(&queue[qhead]) == HO_QUEUED)
			return HO_QUEUED;
		held_clear(&queue[qhead].h);
		qhead++;
	}
	qhead = qlen = 0;
	return HO_SENT;
}

/* Queue a copy of the record (the socket was full, or others wait). */
static enum ho_send
enqueue(const struct qrec *q, int fd)
{
	struct qrec	 r = *q;

	if (qhead > 0 && qlen == qcap) {
		memmove(queue, queue + qhead, (qlen - qhead) * sizeof(*queue));
		qlen -= qhead;
		qhead = 0;
	}
	if (util_grow((void **)&queue, &qcap, qlen, sizeof(*queue)) == -1)
		return HO_FAILED;
	r.h.fd = -1;
	r.h.rec = NULL;
	/* our own reference: the connection may close before it is sent */
	if (fd != -1 && (r.h.fd = dup(fd)) == -1)
		return HO_FAILED;
	if (q->h.len > 0 && (r.h.rec = malloc(q->h.len)) == NULL) {
		held_clear(&r.h);
		return HO_FAILED;
	}
	if (q->h.len > 0)
		memcpy(r.h.rec, q->h.rec, q->h.len);
	queue[qlen++] = r;
	return HO_QUEUED;
}

static enum ho_send
post(uint32_t type, uint32_t conn, int fd, const void *state, size_t len)
{
	struct qrec	 q;
	enum ho_send	 rc;

	if (my_fd == -1)
		return HO_FAILED;
	if (len > HO_MAX_RECORD)
		return HO_FAILED;
	memset(&q, 0, sizeof(q));
	q.m.type = type;
	q.m.conn = conn;
	q.h.fd = fd;
	q.h.rec = (char *)(uintptr_t)state;
	q.h.len = len;
	/* in order: behind what already waits */
	if (qhead < qlen || (rc = send_one(&q)) == HO_QUEUED)
		return enqueue(&q, fd);
	return rc;
}

enum ho_send
handover_keep(uint32_t conn, int fd, const void *state, size_t len)
{
	return post(HO_KEEP, conn, fd, state, len);
}

enum ho_send
handover_drop(uint32_t conn)
{
	return post(HO_DROP, conn, -1, NULL, 0);
}

/* ---- a worker started before its connections (upgrade) ---------------- */

void
handover_prepare(int slot, int on)
{
	tables[slot].prepare = on;
	tables[slot].ready = 0;
}

int
handover_take_handed(int slot)
{
	int	 r = tables[slot].handed;

	tables[slot].handed = 0;
	return r;
}

int
handover_take_ready(int slot)
{
	int	 r = tables[slot].ready;

	tables[slot].ready = 0;
	return r;
}

ssize_t
handover_forward(int slot, double deadline)
{
	return send_table(slot, pairs[slot][0], deadline, 1, 1);
}

int
handover_prepared(void)
{
	return prepared;
}

enum ho_send
handover_worker_ready(void)
{
	return post(HO_READY, 0, -1, NULL, 0);
}

enum ho_send
handover_worker_handed(void)
{
	return post(HO_HANDED, 0, -1, NULL, 0);
}

/* One connection the master sent: our own copy of its record. */
static int
inherit_add(uint32_t conn, const char *rec, size_t len, int fd)
{
	char	*copy;

	if (util_grow((void **)&inherit, &inherit_cap, ninherit,
	    sizeof(*inherit)) == -1)
		return -1;
	if ((copy = malloc(len)) == NULL)
		return -1;
	memcpy(copy, rec, len);
	inherit[ninherit].conn = conn;
	inherit[ninherit].fd = fd;
	inherit[ninherit].state = copy;
	inherit[ninherit].len = len;
	ninherit++;
	inherit_owned = 1;
	return 0;
}

int
handover_worker_recv(void)
{
	struct ho_msg	 m;
	char		*b;
	ssize_t		 r;
	int		 fd;

	if ((b = malloc(sizeof(m) + HO_MAX_RECORD)) == NULL)
		return -1;
	for (;;) {
		r = handover_recv(my_fd, b, sizeof(m) + HO_MAX_RECORD, &fd);
		if (r == 0 || (r == -1 && errno != EMSGSIZE)) {
			free(b);
			return r == -1 && errno == EAGAIN ? 0 : -1;
		}
		if (r < (ssize_t)sizeof(m)) {
			if (fd != -1)
				close(fd);
			continue;
		}
		memcpy(&m, b, sizeof(m));
		if (m.type == HO_GO) {
			if (fd != -1)
				close(fd);
			free(b);
			prepared = 0;
			return 1;
		}
		if (m.type != HO_KEEP || fd == -1 ||
		    inherit_add(m.conn, b + sizeof(m), (size_t)r - sizeof(m),
		    fd) == -1) {
			/* the master keeps its copy: a crash hands it on */
			log_warnx("handover: connection %u from the master not "
			    "taken", m.conn);
			if (fd != -1)
				close(fd);
		}
	}
}
