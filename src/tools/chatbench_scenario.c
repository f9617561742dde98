/*
 * chatbench_scenario.c - the scenarios on a generator's connections:
 * pairs and groups sending and checking "cb FROM SEQ T" messages,
 * register and login work queues, the answers read and counted.
 */
#include "config.h"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <json-c/json.h>

#include "util.h"
#include "chatbench.h"

/* ---- scenario logic ----------------------------------------------------- */

void
pair_send(struct pair *p, uint64_t t)
{
	send_chat(p->a, p->b->uid, 0, p->next_seq++, t);
	p->outstanding++;
	p->sent++;
}

void
group_send(struct group *g, uint64_t t)
{
	g->remaining[g->next_seq % (uint64_t)O.inflight] = g->size - 1;
	send_chat(g->m[0], 0, g->gid, g->next_seq++, t);
	g->outstanding++;
	g->sent++;
}

static void
became_ready(struct bc *c)
{
	c->st = CS_READY;
	ST.conns_up++;
	setup_pending--;
	if (O.sc == SC_IDLE && c->rb != NULL) {
		free(c->rb);
		c->rb = NULL;
		c->rcap = c->rlen = 0;
	}
}

/* Parse "cb FROM SEQ T" from a delivered line. */
static int
parse_cb(const char *line, size_t len, uint64_t *from, uint64_t *seq,
    uint64_t *t)
{
	const char	*p, *end = line + len;

	if (O.raw) {
		/* "TOID cb FROM SEQ T ..." */
		if ((p = memchr(line, ' ', len)) == NULL)
			return -1;
		p++;
		if (end - p < 3 || memcmp(p, "cb ", 3) != 0)
			return -1;
		p += 3;
	} else {
		if ((p = memmem(line, len, "\"msg\":\"cb ", 10)) == NULL)
			return -1;
		p += 10;
	}
	if (scan_u64(&p, end, from) == -1 || p >= end || *p++ != ' ' ||
	    scan_u64(&p, end, seq) == -1 || p >= end || *p++ != ' ' ||
	    scan_u64(&p, end, t) == -1)
		return -1;
	return 0;
}

static void
count_delivery(uint64_t t, uint64_t now)
{
	ST.delivered_all++;
	if (measuring && now >= measure_t0) {
		ST.delivered++;
		h_add(&ST.lat, now > t ? now - t : 0);
	}
}

/* The "cb FROM SEQ T" of a line; -1 (counted as an error) if none. */
static int
parse_cb_counted(const char *line, size_t len, uint64_t *from, uint64_t *seq,
    uint64_t *t)
{
	if (parse_cb(line, len, from, seq, t) == 0)
		return 0;
	ST.errors++;
	if (O.verbose)
		fprintf(stderr, "unexpected: %.*s\n", (int)len, line);
	return -1;
}

/* seq against *next, the next expected: -1 for a duplicate (counted). */
static int
seq_check(uint64_t seq, uint64_t *next)
{
	if (seq == *next)
		(*next)++;
	else if (seq < *next) {
		ST.dup++;
		return -1;
	} else {
		ST.reordered++;
		*next = seq + 1;
	}
	return 0;
}

static void
on_pair_line(struct bc *c, const char *line, size_t len, uint64_t now)
{
	struct pair	*p = c->owner;
	uint64_t	 from, seq, t;
	int64_t		 id;

	if (parse_cb_counted(line, len, &from, &seq, &t) == -1)
		return;
	if (c->role != 1 || from != (uint64_t)p->a->uid ||
	    (!O.raw && (json_int_field(line, len, "id", &id) == -1 ||
	    id != p->a->uid))) {
		ST.misrouted++;
		return;
	}
	if (seq_check(seq, &p->recv_next) == -1)
		return;
	p->got++;
	if (p->outstanding > 0)
		p->outstanding--;
	count_delivery(t, now);
	if (sending && O.rate <= 0)
		pair_send(p, now);
}

static void
on_group_line(struct bc *c, const char *line, size_t len, uint64_t now)
{
	struct group	*g = c->owner;
	uint64_t	 from, seq, t;
	int64_t		 gid;
	int		*rem;

	if (parse_cb_counted(line, len, &from, &seq, &t) == -1)
		return;
	if (c->member == 0 || from != (uint64_t)g->m[0]->uid ||
	    json_int_field(line, len, "groupid", &gid) == -1 ||
	    gid != g->gid) {
		ST.misrouted++;
		return;
	}
	if (seq_check(seq, &c->expect) == -1)
		return;
	count_delivery(t, now);
	if (seq + (uint64_t)O.inflight < g->next_seq)
		return;		/* its slot was reused: too late to count */
	rem = &g->remaining[seq % (uint64_t)O.inflight];
	if (*rem > 0 && --*rem == 0) {
		g->outstanding--;
		if (sending)
			group_send(g, now);
	}
}

static void reg_reconnect(struct bc *c);

static void
on_line(struct bc *c, const char *line, size_t len)
{
	int64_t		 msgid = -1, err = -1, id = 0;
	uint64_t	 now;

	if (len == 0)
		return;
	now = util_mono_ns();
	if (c->st == CS_READY) {
		if (O.raw || (json_int_field(line, len, "msgid", &msgid) == 0 &&
		    (msgid == 6 || msgid == 10))) {
			if (O.sc == SC_GROUP)
				on_group_line(c, line, len, now);
			else
				on_pair_line(c, line, len, now);
			return;
		}
		/* errors in answer to chats, pongs, anything else */
		if (msgid == 100) {
			ST.errors++;
			if (!O.quiet && ST.errors <= 5)
				fprintf(stderr, "server error: %.*s\n",
				    (int)len, line);
		}
		return;
	}
	if (O.raw) {
		if (c->st == CS_LOGIN && len >= 2 && memcmp(line, "OK", 2) == 0)
			became_ready(c);
		return;
	}
	(void)json_int_field(line, len, "msgid", &msgid);
	(void)json_int_field(line, len, "errno", &err);
	switch (c->st) {
	case CS_LOGIN:
		if (msgid != 2)
			break;
		if (O.sc == SC_LOGIN) {
			if (err == 0) {
				ST.logins++;
				if (measuring)
					h_add(&ST.lat, now - c->t0);
			} else if (err == 2)
				ST.login_online++;
			else {
				ST.login_errors++;
				if (!O.quiet && ST.login_errors <= 3)
					fprintf(stderr, "login failed: %.*s\n",
					    (int)len, line);
			}
			if (O.keep && err == 0) {
				char	 b[64];
				int	 n = snprintf(b, sizeof(b), "{\"id\":%d,"
				    "\"msgid\":3}\n", (int)c->uid);
				bc_out(c, b, (size_t)n);
				next_work(c);
			} else {
				bc_drop(c);
				next_work(c);
			}
			return;
		}
		if (err == 2 && c->retries < 50) {
			/* the last run's session may not be gone yet */
			c->retries++;
			c->retry_at = now + 100000000ull;
			c->st = CS_RETRY;
			nretry++;
			return;
		}
		if (err != 0) {
			if (!O.quiet && ST.conns_failed < 3)
				fprintf(stderr, "login of user %d failed: "
				    "%.*s\n", (int)c->uid, (int)len, line);
			bc_close(c, 1);
			return;
		}
		if (O.sc == SC_GROUP) {
			char	 b[160];
			int	 n;
			struct group *g = c->owner;

			n = snprintf(b, sizeof(b), "{\"groupid\":%d,\"id\":%d,"
			    "\"msgid\":9}\n{\"msgid\":101,\"seq\":1}\n",
			    (int)g->gid, (int)c->uid);
			if (c->member == 0)	/* the creator is a member */
				n = snprintf(b, sizeof(b),
				    "{\"msgid\":101,\"seq\":1}\n");
			c->st = CS_JOIN;
			bc_out(c, b, (size_t)n);
			return;
		}
		became_ready(c);
		return;
	case CS_JOIN:
		if (msgid == 102)
			became_ready(c);
		else if (msgid == 100) {
			if (!O.quiet)
				fprintf(stderr, "joining group failed: "
				    "%.*s\n", (int)len, line);
			bc_close(c, 1);
		}
		return;
	case CS_REG:
		if (msgid != 5)
			break;
		if (err == 0 && json_int_field(line, len, "id", &id) == 0) {
			reg_ids[c->idx - reg_base] = (int32_t)id;
			ST.regs++;
			if (measuring)
				h_add(&ST.lat, now - c->t0);
			next_work(c);
		} else if (err == 1) {
			/* taken, perhaps by an earlier run: log in by name */
			char	 b[256], name[96];
			int	 n;

			user_name(name, sizeof(name), c->idx);
			n = snprintf(b, sizeof(b), "{\"msgid\":1,\"name\":"
			    "\"%s\",\"password\":\"%s\"}\n", name, O.password);
			c->st = CS_REGLOGIN;
			bc_out(c, b, (size_t)n);
		} else {
			ST.errors++;
			if (!O.quiet && ST.errors <= 3)
				fprintf(stderr, "register failed: %.*s\n",
				    (int)len, line);
			next_work(c);
		}
		return;
	case CS_REGLOGIN:
		if (msgid != 2)
			break;
		if (err == 0 && json_int_field(line, len, "id", &id) == 0) {
			char	 b[64];
			int	 n;

			reg_ids[c->idx - reg_base] = (int32_t)id;
			ST.regs_existing++;
			n = snprintf(b, sizeof(b), "{\"id\":%d,\"msgid\":3}\n",
			    (int)id);
			bc_out(c, b, (size_t)n);
		} else {
			ST.errors++;
			if (!O.quiet && ST.errors <= 3)
				fprintf(stderr, "user %s exists with another "
				    "password or is online: %.*s\n", "",
				    (int)len, line);
		}
		next_work(c);
		return;
	default:
		break;
	}
	if (msgid == 100) {
		ST.errors++;
		if (!O.quiet && ST.errors <= 5)
			fprintf(stderr, "server error: %.*s\n", (int)len, line);
	}
}

/* register and login: send the request of the current unit of work. */
static void
do_work(struct bc *c)
{
	if (O.sc == SC_REGISTER)
		send_reg(c);
	else
		send_login(c);
}

/* register and login: the connection takes the next unit of work. */
void
next_work(struct bc *c)
{
	if (!sending || work_next >= work_end) {
		if (c->fd != -1 && O.sc == SC_LOGIN)
			bc_drop(c);
		c->st = CS_IDLE;
		return;
	}
	c->idx = work_next;
	work_next += work_step;
	if (O.sc == SC_LOGIN) {
		/* user (index mod users), fresh connection unless -k */
		c->uid = uids[c->idx % nuids];
		c->si = O.nsrc > 0 ? (int)(c->idx % O.nsrc) : -1;
	}
	c->t0 = util_mono_ns();
	if (c->fd == -1) {
		bc_connect(c);
		if (c->st == CS_DEAD && O.sc == SC_LOGIN)
			c->st = CS_IDLE;	/* counted; this slot stops */
		return;
	}
	do_work(c);
}

/*
 * events: what epoll said.  Without EPOLLERR/EPOLLHUP the connect
 * succeeded; the error is asked for only when it failed (the login
 * scenario spends no system call it can spare: chatd shares the CPU).
 */
static void
on_connected(struct bc *c, uint32_t events)
{
	int		 err = 0;
	socklen_t	 sl = sizeof(err);

	if ((events & (EPOLLERR | EPOLLHUP)) != 0 &&
	    (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1 ||
	    err == 0))
		err = ECONNRESET;
	if (err != 0) {
		if (!O.quiet && ST.conns_failed < 3)
			fprintf(stderr, "connect: %s\n", strerror(err ? err :
			    errno));
		if (O.sc == SC_LOGIN) {
			ST.conns_failed++;
			bc_drop(c);
			next_work(c);
		} else if (O.sc == SC_REGISTER) {
			c->st = CS_REG;		/* still to be sent */
			reg_reconnect(c);
		} else
			bc_close(c, 1);
		return;
	}
	if (c->edge)
		c->epout = 0;	/* edge-triggered: no change to ask for */
	else
		bc_epoll(c, 0);
	if (O.sc == SC_REGISTER || O.sc == SC_LOGIN) {
		uint64_t t0 = c->t0;
		do_work(c);
		c->t0 = t0;	/* latency includes the connect */
	} else
		send_login(c);
}

/*
 * register: the server closed the connection (login_timeout closes one
 * that never logs in).  The request in flight is sent again on a new
 * connection: a name already taken by it is then looked up by login.
 */
static void
reg_reconnect(struct bc *c)
{
	int	 busy = c->st == CS_REG || c->st == CS_REGLOGIN;

	if (c->fd != -1) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	c->rlen = 0;
	c->woff = c->wlen = 0;
	c->epout = 0;
	c->st = CS_IDLE;
	ST.conns_closed++;
	if (++c->retries > 1000) {
		c->st = CS_DEAD;
		return;
	}
	if (busy)
		bc_connect(c);
}

/* c's connection ended or failed: what the scenario does then. */
static void
conn_lost(struct bc *c)
{
	if (O.sc == SC_REGISTER)
		reg_reconnect(c);
	else if (O.sc == SC_LOGIN) {
		ST.conns_failed++;
		bc_drop(c);
		next_work(c);
	} else
		bc_close(c, 0);
}

static void
on_readable(struct bc *c)
{
	ssize_t		 n;
	char		*p, *end, *nl, *data;
	size_t		 len;
	int		 rounds;

	for (rounds = 0; rounds < 4 && c->st != CS_DEAD && c->fd != -1;
	    rounds++) {
		n = read(c->fd, rbuf, RBUF_SIZE);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_lost(c);
			return;
		}
		if (n == 0) {
			conn_lost(c);
			return;
		}
		if (c->rlen > 0) {
			if (c->rlen + (size_t)n > c->rcap) {
				c->rcap = c->rlen + (size_t)n;
				c->rb = xrealloc(c->rb, c->rcap);
			}
			memcpy(c->rb + c->rlen, rbuf, (size_t)n);
			c->rlen += (size_t)n;
			data = c->rb;
			len = c->rlen;
		} else {
			data = rbuf;
			len = (size_t)n;
		}
		p = data;
		end = data + len;
		while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) !=
		    NULL) {
			on_line(c, p, (size_t)(nl - p));
			p = nl + 1;
			if (c->st == CS_DEAD || c->fd == -1)
				return;
		}
		len = (size_t)(end - p);
		if (len > 0) {
			if (data == c->rb)
				memmove(c->rb, p, len);
			else {
				if (len > c->rcap) {
					c->rcap = len < 4096 ? 4096 : len;
					c->rb = xrealloc(c->rb, c->rcap);
				}
				memcpy(c->rb, p, len);
			}
		}
		c->rlen = len;
		if ((size_t)n < RBUF_SIZE)
			return;
	}
}

void
loop_once(int timeout_ms)
{
	struct epoll_event	 ev[512];
	struct bc		*c;
	int			 n, i;

	n = epoll_wait(ep, ev, 512, timeout_ms);
	for (i = 0; i < n; i++) {
		c = ev[i].data.ptr;
		if (c->st == CS_DEAD || c->fd == -1)
			continue;
		if (c->st == CS_CONNECTING) {
			if (ev[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
				on_connected(c, ev[i].events);
			continue;
		}
		if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			on_readable(c);
		if (c->st != CS_DEAD && c->fd != -1 &&
		    (ev[i].events & EPOLLOUT))
			bc_flush(c);
	}
	flush_all();
}

