/*
 * ctl.c - the master's control plane: a small polled server (one
 * request per connection, bounded input, a deadline per connection,
 * non-blocking writes) and, on top of it, the control socket that
 * chatctl(1) talks to.  The HTTP endpoint on the same server is in
 * metrics.c.
 *
 * Everything here runs in the master, between two polls: no libev, no
 * database, no Redis.  The figures come from the shared-memory session
 * table (online.h), which the workers keep up to date.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "ctl.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "guard.h"
#include "online.h"
#include "upgrade.h"
#include "util.h"

#define CTL_REQUEST_MAX		512	/* one command line */
#define CTL_TIMEOUT		5.0	/* seconds per connection */
#define CTL_BACKLOG		16
#define CTL_REFUSAL_LOG_EVERY	10	/* seconds between refusal logs */

/* ---- the polled server -------------------------------------------- */

struct ctl_client {
	int		 fd;		/* -1: free */
	struct buf	 in;
	struct buf	 out;
	double		 deadline;
	int		 replying;	/* out is the whole answer */
	int		 eof;
};

struct ctl_server {
	int			 lfd;
	char			 name[16];
	const struct ctl_server_ops *ops;
	void			*arg;
	size_t			 max_request;
	double			 timeout;
	int			 max_clients;
	int			 paused;	/* the listener is not polled */
	int			 nclients;
	struct ctl_client	*clients;
	int			*map;	/* pollfd i: -1 listener, else client */
	int			 nmap;
};

struct ctl_server *
ctl_server_new(int lfd, const char *name, const struct ctl_server_ops *ops,
    void *arg, size_t max_request, double timeout, int max_clients)
{
	struct ctl_server	*s;
	int			 i;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->clients = calloc(max_clients, sizeof(*s->clients));
	s->map = calloc(max_clients + 1, sizeof(*s->map));
	if (s->clients == NULL || s->map == NULL) {
		free(s->clients);
		free(s->map);
		free(s);
		return NULL;
	}
	for (i = 0; i < max_clients; i++)
		s->clients[i].fd = -1;
	s->lfd = lfd;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->ops = ops;
	s->arg = arg;
	s->max_request = max_request;
	s->timeout = timeout;
	s->max_clients = max_clients;
	return s;
}

static void
client_close(struct ctl_server *s, struct ctl_client *c)
{
	if (c->fd == -1)
		return;
	close(c->fd);
	c->fd = -1;
	buf_free(&c->in);
	buf_free(&c->out);
	s->nclients--;
}

void
ctl_server_free(struct ctl_server *s)
{
	int	 i;

	if (s == NULL)
		return;
	for (i = 0; i < s->max_clients; i++)
		client_close(s, &s->clients[i]);
	if (s->lfd != -1)
		close(s->lfd);
	free(s->clients);
	free(s->map);
	free(s);
}

int
ctl_server_pollfds(struct ctl_server *s, struct pollfd *pfd, int room)
{
	struct ctl_client	*c;
	int			 i, n = 0;

	if (s == NULL)
		return 0;
	if (s->nclients < s->max_clients && n < room && !s->paused) {
		pfd[n].fd = s->lfd;
		pfd[n].events = POLLIN;
		pfd[n].revents = 0;
		s->map[n++] = -1;
	}
	for (i = 0; i < s->max_clients && n < room; i++) {
		c = &s->clients[i];
		if (c->fd == -1)
			continue;
		pfd[n].fd = c->fd;
		pfd[n].events = c->replying ? POLLOUT : POLLIN;
		pfd[n].revents = 0;
		s->map[n++] = i;
	}
	s->nmap = n;
	return n;
}

/* Write what is queued; close when all is out (or on error). */
static void
client_write(struct ctl_server *s, struct ctl_client *c)
{
	ssize_t	 n;

	while (buf_used(&c->out) > 0) {
		n = send(c->fd, buf_head(&c->out), buf_used(&c->out),
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			client_close(s, c);
			return;
		}
		buf_consume(&c->out, (size_t)n);
	}
	client_close(s, c);
}

static void
client_reply(struct ctl_server *s, struct ctl_client *c)
{
	c->replying = 1;
	buf_free(&c->in);
	client_write(s, c);
}

static void
client_read(struct ctl_server *s, struct ctl_client *c)
{
	enum ctl_input	 in;
	ssize_t		 n;
	size_t		 want;

	for (;;) {
		want = s->max_request + 1 - buf_used(&c->in);
		if (buf_reserve(&c->in, want) == -1) {
			client_close(s, c);
			return;
		}
		n = read(c->fd, c->in.data + c->in.len, want);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			c->eof = 1;
			break;
		}
		c->in.len += (size_t)n;
		if (buf_used(&c->in) > s->max_request)
			break;
	}
	if (buf_used(&c->in) > s->max_request) {
		s->ops->too_big(s->arg, &c->out);
		client_reply(s, c);
		return;
	}
	in = s->ops->input(s->arg, buf_head(&c->in), buf_used(&c->in),
	    c->eof, &c->out);
	if (in == CTL_REPLY)
		client_reply(s, c);
	else if (in == CTL_CLOSE || c->eof)
		client_close(s, c);
}

static void
server_accept(struct ctl_server *s)
{
	struct ctl_client	*c;
	int			 i, fd;

	while (s->nclients < s->max_clients) {
		fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("%s: accept", s->name);
			return;
		}
		for (i = 0; s->clients[i].fd != -1; i++)
			;
		c = &s->clients[i];
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->deadline = util_mono() + s->timeout;
		s->nclients++;
		if (s->ops->accept != NULL &&
		    s->ops->accept(s->arg, fd, &c->out) == -1)
			client_reply(s, c);
	}
}

void
ctl_server_events(struct ctl_server *s, const struct pollfd *pfd, int n)
{
	struct ctl_client	*c;
	int			 i;

	if (s == NULL)
		return;
	for (i = 0; i < n && i < s->nmap; i++) {
		if (pfd[i].revents == 0)
			continue;
		if (s->map[i] == -1) {
			server_accept(s);
			continue;
		}
		c = &s->clients[s->map[i]];
		if (c->fd != pfd[i].fd)
			continue;	/* closed and reused meanwhile */
		if (c->replying)
			client_write(s, c);
		else
			client_read(s, c);
	}
	s->nmap = 0;
}

int
ctl_server_expire(struct ctl_server *s, double now)
{
	struct ctl_client	*c;
	double			 next = -1;
	int			 i;

	if (s == NULL)
		return -1;
	for (i = 0; i < s->max_clients; i++) {
		c = &s->clients[i];
		if (c->fd == -1)
			continue;
		if (now >= c->deadline) {
			log_debug("%s: client timed out", s->name);
			client_close(s, c);
			continue;
		}
		if (next < 0 || c->deadline - now < next)
			next = c->deadline - now;
	}
	return next < 0 ? -1 : (int)(next * 1000) + 1;
}

/* ---- helpers shared with metrics.c --------------------------------- */

int
ctl_json_str(struct buf *out, const char *s)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p;
	char			 esc[7];

	if (s == NULL)
		return buf_append_str(out, "null");
	if (buf_append(out, "\"", 1) == -1)
		return -1;
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			if (buf_append(out, esc, 2) == -1)
				return -1;
		} else if (*p < 0x20 || *p == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			if (buf_append(out, esc, 6) == -1)
				return -1;
		} else if (buf_append(out, p, 1) == -1)
			return -1;
	}
	return buf_append(out, "\"", 1);
}

void
ctl_storage_public(const char *spec, char *out, size_t len)
{
	const char	*auth, *end, *at = NULL, *colon, *q;

	snprintf(out, len, "%s", spec != NULL ? spec : "");
	if (spec == NULL || (auth = strstr(spec, "://")) == NULL)
		return;
	auth += 3;
	end = auth + strcspn(auth, "/");
	for (q = auth; q < end; q++)
		if (*q == '@')
			at = q;
	if (at == NULL ||
	    (colon = memchr(auth, ':', (size_t)(at - auth))) == NULL)
		return;
	/* drop ":password" */
	snprintf(out, len, "%.*s%s", (int)(colon - spec), spec, at);
}

/* ---- the control socket -------------------------------------------- */

static struct ctl_env		 env;
static struct ctl_server	*control, *http;
static char			*control_path;
static int			 keep_path;	/* another master's too */
static int			 ncontrol_fds, nhttp_fds;
static time_t			 last_refusal;
static unsigned			 refusals;

/* Counters in the order chatctl shows them. */
static const struct {
	const char	*name;
	size_t		 off;
} counters[] = {
	{ "accepted",		offsetof(struct online_slot_stats, accepted) },
	{ "connections",	offsetof(struct online_slot_stats, connections) },
	{ "logins",		offsetof(struct online_slot_stats, logins) },
	{ "msgs_in",		offsetof(struct online_slot_stats, msgs_in) },
	{ "msgs_out",		offsetof(struct online_slot_stats, msgs_out) },
	{ "offline_stored",	offsetof(struct online_slot_stats, offline_stored) },
	{ "errors",		offsetof(struct online_slot_stats, errors) },
	{ "respawns",		offsetof(struct online_slot_stats, respawns) },
	{ "handovers",		offsetof(struct online_slot_stats, handovers) },
	{ "adopted",		offsetof(struct online_slot_stats, adopted) },
	{ "handover_failed",	offsetof(struct online_slot_stats,
	    handover_failed) },
};
#define NCOUNTERS	(sizeof(counters) / sizeof(counters[0]))

static uint64_t
counter(int slot, size_t k)
{
	struct online_slot_stats	*st;

	st = online_slot_stats(env.node->online, slot);
	return __atomic_load_n((uint64_t *)(void *)((char *)st +
	    counters[k].off), __ATOMIC_RELAXED);
}

static void
reply_error(struct buf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reply_error(struct buf *out, const char *fmt, ...)
{
	char	 msg[1024];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_free(out);
	buf_append_str(out, "{\"ok\":false,\"error\":");
	ctl_json_str(out, msg);
	buf_append_str(out, "}\n");
}

static int
control_accept(void *arg, int fd, struct buf *out)
{
	struct ucred	 uc;
	socklen_t	 len = sizeof(uc);
	time_t		 t;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == -1) {
		log_warn("control: SO_PEERCRED");
		reply_error(out, "permission denied");
		return -1;
	}
	if (uc.uid == 0 || uc.uid == geteuid())
		return 0;
	/* a loop of refused clients must not flood the log */
	refusals++;
	t = time(NULL);
	if (t - last_refusal >= CTL_REFUSAL_LOG_EVERY) {
		log_warnx("control: refused uid %d (pid %d)%s", (int)uc.uid,
		    (int)uc.pid, refusals > 1 ? " and others" : "");
		last_refusal = t;
		refusals = 0;
	}
	reply_error(out, "permission denied: uid %d may not control chatd",
	    (int)uc.uid);
	return -1;
}

static void
control_too_big(void *arg, struct buf *out)
{
	reply_error(out, "request too long");
}

/* Crash handover (handover.h), summed over the slots. */
static void
put_handover(struct buf *out)
{
	struct online_slot_stats	*st;
	uint64_t			 h = 0, a = 0, f = 0;
	int				 i;

	for (i = 0; i < env.node->nslots; i++) {
		st = online_slot_stats(env.node->online, i);
		h += __atomic_load_n(&st->handovers, __ATOMIC_RELAXED);
		a += __atomic_load_n(&st->adopted, __ATOMIC_RELAXED);
		f += __atomic_load_n(&st->handover_failed, __ATOMIC_RELAXED);
	}
	buf_printf(out, ",\"handover\":{\"handovers\":%" PRIu64 ","
	    "\"adopted\":%" PRIu64 ",\"failed\":%" PRIu64 "}", h, a, f);
}

/* Binary upgrades (upgrade.h): this master's view. */
static void
put_upgrade(struct buf *out)
{
	const struct up_stats	*u;

	if (env.upgrade_stats == NULL)
		return;
	u = env.upgrade_stats();
	buf_printf(out, ",\"upgrade\":{\"state\":\"%s\",\"upgrades\":%"
	    PRIu64 ",\"failed\":%" PRIu64 ",\"handed\":%" PRIu64
	    ",\"error\":", u->state, u->upgrades, u->failed, u->handed);
	if (u->error[0] != '\0')
		ctl_json_str(out, u->error);
	else
		buf_append_str(out, "null");
	buf_append_str(out, "}");
}

static void
put_status(struct buf *out)
{
	struct node			*n = env.node;
	struct online_slot_stats	*st;
	char				 spec[1024];
	const char			*redis_state = "none";
	uint64_t			 conns = 0;
	int				 i, up = 0, down = 0, unknown = 0, v;
	time_t				 now = time(NULL);

	for (i = 0; i < n->nslots; i++) {
		st = online_slot_stats(n->online, i);
		conns += __atomic_load_n(&st->connections, __ATOMIC_RELAXED);
		if (__atomic_load_n(&st->pid, __ATOMIC_RELAXED) == 0)
			continue;
		v = __atomic_load_n(&st->redis_up, __ATOMIC_RELAXED);
		up += v == 1;
		down += v == 0;
		unknown += v != 0 && v != 1;
	}
	if (n->cfg.redis != NULL)
		redis_state = down > 0 ? "down" : unknown > 0 || up == 0 ?
		    "unknown" : "up";
	ctl_storage_public(n->cfg.storage, spec, sizeof(spec));

	buf_printf(out, "{\"ok\":true,\"version\":\"%s\",\"pid\":%d,"
	    "\"node_id\":", PACKAGE_VERSION, (int)getpid());
	ctl_json_str(out, n->cfg.node_id);
	buf_append_str(out, ",\"boot_id\":");
	ctl_json_str(out, n->boot_id);
	buf_printf(out, ",\"started\":%lld,\"uptime\":%lld,\"listen\":",
	    (long long)env.started, (long long)(now - env.started));
	ctl_json_str(out, n->cfg.listen);
	buf_printf(out, ",\"online\":%zu,\"connections\":%" PRIu64
	    ",\"storage\":{\"kind\":\"%s\",\"spec\":",
	    online_count(n->online), conns,
	    strncmp(n->cfg.storage, "mysql:", 6) == 0 ? "mysql" : "sqlite");
	ctl_json_str(out, spec);
	buf_append_str(out, "},\"redis\":{\"addr\":");
	ctl_json_str(out, n->cfg.redis);
	buf_printf(out, ",\"state\":\"%s\"}", redis_state);
	health_json(&env, out);
	put_handover(out);
	put_upgrade(out);
	buf_append_str(out, ",\"workers\":[");
	for (i = 0; i < n->nslots; i++) {
		st = online_slot_stats(n->online, i);
		buf_printf(out, "%s{\"slot\":%d,\"pid\":%d,\"state\":\"%s\","
		    "\"connections\":%" PRIu64 ",\"started\":%" PRIu64 ","
		    "\"storage\":\"%s\",\"redis\":\"%s\"}", i ? "," : "", i,
		    (int)__atomic_load_n(&st->pid, __ATOMIC_RELAXED),
		    env.slot_state(i),
		    __atomic_load_n(&st->connections, __ATOMIC_RELAXED),
		    __atomic_load_n(&st->started, __ATOMIC_RELAXED),
		    health_word(__atomic_load_n(&st->store_ok,
		    __ATOMIC_RELAXED), "ok", "down"),
		    n->cfg.redis == NULL ? "none" : health_word(
		    __atomic_load_n(&st->redis_up, __ATOMIC_RELAXED), "up",
		    "down"));
	}
	buf_append_str(out, "]}\n");
}

static void
put_stats(struct buf *out)
{
	struct node	*n = env.node;
	uint64_t	 sum[NCOUNTERS];
	size_t		 k;
	int		 i;

	memset(sum, 0, sizeof(sum));
	buf_append_str(out, "{\"ok\":true,\"workers\":[");
	for (i = 0; i < n->nslots; i++) {
		buf_printf(out, "%s{\"slot\":%d,\"pid\":%d", i ? "," : "", i,
		    (int)__atomic_load_n(&online_slot_stats(n->online,
		    i)->pid, __ATOMIC_RELAXED));
		for (k = 0; k < NCOUNTERS; k++) {
			uint64_t v = counter(i, k);

			sum[k] += v;
			buf_printf(out, ",\"%s\":%" PRIu64, counters[k].name, v);
		}
		buf_append_str(out, "}");
	}
	buf_append_str(out, "],\"total\":{");
	for (k = 0; k < NCOUNTERS; k++)
		buf_printf(out, "%s\"%s\":%" PRIu64, k ? "," : "",
		    counters[k].name, sum[k]);
	buf_append_str(out, "}}\n");
}

struct online_list {
	struct online_entry	*v;
	size_t			 n, cap;
	int			 nomem;
};

static int
collect_online(const struct online_entry *e, void *arg)
{
	struct online_list	*l = arg;

	if (util_grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v)) == -1) {
		l->nomem = 1;
		return 1;
	}
	l->v[l->n++] = *e;
	return 0;
}

static int
cmp_entry(const void *a, const void *b)
{
	const struct online_entry *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static void
put_online(struct buf *out)
{
	struct online_list	 l;
	size_t			 i;
	char			 addr[64];

	memset(&l, 0, sizeof(l));
	/* copy under the stripe locks, format after */
	online_foreach(env.node->online, collect_online, &l);
	if (l.nomem) {
		free(l.v);
		reply_error(out, "out of memory");
		return;
	}
	qsort(l.v, l.n, sizeof(*l.v), cmp_entry);
	buf_printf(out, "{\"ok\":true,\"count\":%zu,\"users\":[", l.n);
	for (i = 0; i < l.n; i++) {
		buf_printf(out, "%s{\"id\":%u,\"worker\":%u", i ? "," : "",
		    l.v[i].uid, (unsigned)l.v[i].slot);
		/* the client's address (from the PROXY header if any) */
		if (guard_peer_str(env.node->guard, l.v[i].slot, l.v[i].conn,
		    addr, sizeof(addr)) == 0)
			buf_printf(out, ",\"addr\":\"%s\"", addr);
		buf_append_str(out, "}");
	}
	buf_append_str(out, "]}\n");
	free(l.v);
}

static void
do_kick(struct buf *out, const char *arg)
{
	struct online_entry	 e;
	struct chan_hdr		 h;
	char			*end;
	long			 uid;
	enum chan_send		 rc;

	errno = 0;
	uid = arg != NULL ? strtol(arg, &end, 10) : 0;
	if (arg == NULL || *arg == '\0' || *end != '\0' || errno != 0 ||
	    uid < 1 || uid > INT32_MAX) {
		reply_error(out, "usage: kick USER-ID (1..2147483647)");
		return;
	}
	if (online_get(env.node->online, (uint32_t)uid, &e) == -1) {
		reply_error(out, "user %ld is not online on this node", uid);
		return;
	}
	memset(&h, 0, sizeof(h));
	h.type = CHAN_KICK;
	h.uid = e.uid;
	h.conn = e.conn;
	h.gen = e.gen;
	h.from_slot = (uint32_t)env.node->nslots;	/* the master */
	h.len = 0;
	rc = channel_send(&env.node->chans, e.slot, &h, "");
	if (rc == CHANSEND_AGAIN) {
		reply_error(out, "worker %u is busy; try again", e.slot);
		return;
	}
	if (rc == CHANSEND_ERR) {
		reply_error(out, "channel to worker %u: %s", e.slot,
		    strerror(errno));
		return;
	}
	log_notice("control: kicked user %ld (worker %u)", uid, e.slot);
	buf_printf(out, "{\"ok\":true,\"id\":%ld,\"worker\":%u}\n", uid,
	    e.slot);
}

/* One command line (NUL-terminated, modified by strtok_r) answered. */
static void
control_command(char *line, struct buf *out)
{
	char		*cmd, *a1, *a2, *save;
	struct buf	 errs = BUF_INIT;

	cmd = strtok_r(line, " \t\r", &save);
	a1 = cmd != NULL ? strtok_r(NULL, " \t\r", &save) : NULL;
	a2 = a1 != NULL ? strtok_r(NULL, " \t\r", &save) : NULL;
	if (cmd == NULL) {
		reply_error(out, "empty request");
		return;
	}
	if (strcmp(cmd, "kick") == 0 ? a2 != NULL : a1 != NULL) {
		reply_error(out, "too many arguments for %s", cmd);
		return;
	}
	if (strcmp(cmd, "status") == 0)
		put_status(out);
	else if (strcmp(cmd, "stats") == 0)
		put_stats(out);
	else if (strcmp(cmd, "online") == 0)
		put_online(out);
	else if (strcmp(cmd, "kick") == 0)
		do_kick(out, a1);
	else if (strcmp(cmd, "reload") == 0) {
		log_notice("control: reload requested");
		if (env.reload(&errs) == 0)
			buf_append_str(out, "{\"ok\":true}\n");
		else {
			buf_append(&errs, "", 1);
			reply_error(out, "%s", buf_head(&errs));
		}
		buf_free(&errs);
	} else if (strcmp(cmd, "upgrade") == 0) {
		log_notice("control: upgrade requested");
		if (env.upgrade == NULL || env.upgrade(&errs) == -1) {
			buf_append(&errs, "", 1);
			reply_error(out, "%s", buf_used(&errs) > 1 ?
			    buf_head(&errs) : "upgrade not possible");
		} else
			/* chatctl follows it with status */
			buf_printf(out, "{\"ok\":true,\"pid\":%d}\n",
			    (int)getpid());
		buf_free(&errs);
	} else if (strcmp(cmd, "stop") == 0) {
		log_notice("control: stop requested");
		/* answer first: the connection is served until the end */
		buf_append_str(out, "{\"ok\":true}\n");
		env.stop();
	} else
		reply_error(out, "unknown command \"%.64s\" (status, stats, "
		    "online, kick, reload, upgrade, stop)", cmd);
}

static enum ctl_input
control_input(void *arg, const char *p, size_t len, int eof,
    struct buf *out)
{
	const char	*nl;
	char		*line;

	if ((nl = memchr(p, '\n', len)) == NULL && !eof)
		return CTL_MORE;
	if (nl != NULL)
		len = (size_t)(nl - p);
	if (memchr(p, '\0', len) != NULL) {
		reply_error(out, "NUL byte in request");
		return CTL_REPLY;
	}
	/* a copy of the request's own length: strtok_r writes into it */
	if ((line = util_memdupz(p, len)) == NULL) {
		reply_error(out, "out of memory");
		return CTL_REPLY;
	}
	control_command(line, out);
	free(line);
	return CTL_REPLY;
}

static const struct ctl_server_ops control_ops = {
	.accept = control_accept,
	.input = control_input,
	.too_big = control_too_big,
};

/*
 * Bind path, replacing a stale socket left by a crash; a socket that
 * still answers belongs to a live chatd.
 */
static int
control_listen(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	mode_t			 mask;
	int			 fd, probe, e;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control_socket %s: path too long", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "control_socket %s: exists and "
			    "is not a socket", path);
			return -1;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (probe != -1) {
			if (connect(probe, (struct sockaddr *)&sun,
			    sizeof(sun)) == 0 || errno == EAGAIN) {
				close(probe);
				snprintf(err, errlen, "control_socket %s: in "
				    "use by a running chatd", path);
				return -1;
			}
			close(probe);
		}
		if (unlink(path) == -1 && errno != ENOENT) {
			snprintf(err, errlen, "control_socket %s: unlink: %s",
			    path, strerror(errno));
			return -1;
		}
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -1;
	}
	mask = umask(0117);		/* never, even briefly, world-usable */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		e = errno;
		umask(mask);
		close(fd);
		snprintf(err, errlen, "control_socket %s: %s", path,
		    strerror(e));
		return -1;
	}
	umask(mask);
	if (chmod(path, 0660) == -1 || listen(fd, CTL_BACKLOG) == -1) {
		e = errno;
		close(fd);
		unlink(path);
		snprintf(err, errlen, "control_socket %s: %s", path,
		    strerror(e));
		return -1;
	}
	return fd;
}

int
ctl_init(const struct ctl_env *e, char *err, size_t errlen)
{
	const struct config	*cfg = &e->node->cfg;
	int			 fd;

	env = *e;
	if (cfg->control_socket != NULL) {
		/* an upgrade's new master serves its predecessor's socket */
		if ((fd = e->ctl_fd) == -1 && (fd = control_listen(
		    cfg->control_socket, err, errlen)) == -1)
			return -1;
		keep_path = e->ctl_fd != -1;
		control_path = strdup(cfg->control_socket);
		control = ctl_server_new(fd, "control", &control_ops, NULL,
		    CTL_REQUEST_MAX, CTL_TIMEOUT, CTL_MAX_CLIENTS);
		if (control == NULL || control_path == NULL) {
			snprintf(err, errlen, "control socket: out of memory");
			if (control == NULL)
				close(fd);
			ctl_shutdown();
			unlink(cfg->control_socket);
			return -1;
		}
	}
	if (cfg->metrics_listen != NULL &&
	    (http = metrics_open(&env, err, errlen)) == NULL) {
		ctl_shutdown();
		return -1;
	}
	return 0;
}

int
ctl_pollfds(struct pollfd *pfd, int room)
{
	ncontrol_fds = ctl_server_pollfds(control, pfd, room);
	nhttp_fds = ctl_server_pollfds(http, pfd + ncontrol_fds,
	    room - ncontrol_fds);
	return ncontrol_fds + nhttp_fds;
}

void
ctl_events(const struct pollfd *pfd, int n)
{
	int	 nc = ncontrol_fds < n ? ncontrol_fds : n;

	ctl_server_events(control, pfd, nc);
	ctl_server_events(http, pfd + nc, n - nc);
}

int
ctl_expire(double now)
{
	int	 a, b;

	a = ctl_server_expire(control, now);
	b = ctl_server_expire(http, now);
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

void
ctl_child(void)
{
	ctl_server_free(control);
	ctl_server_free(http);
	control = http = NULL;
	free(control_path);
	control_path = NULL;
}

void
ctl_shutdown(void)
{
	ctl_server_free(control);
	ctl_server_free(http);
	control = http = NULL;
	if (control_path != NULL && !keep_path)
		unlink(control_path);
	free(control_path);
	control_path = NULL;
}

void
ctl_listen_fds(int *ctl_fd, int *http_fd)
{
	*ctl_fd = control != NULL ? control->lfd : -1;
	*http_fd = http != NULL ? http->lfd : -1;
}

void
ctl_pause(int on)
{
	if (control != NULL)
		control->paused = on;
	if (http != NULL)
		http->paused = on;
}

void
ctl_keep_path(int keep)
{
	keep_path = keep;
}
