/* conn.c - client connections: read, split frames, queue and write output. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "conn.h"
#include "guard.h"
#include "log.h"
#include "proxy.h"

/* Reads per readiness event: enough to drain a burst, fair to others. */
#define READS_PER_EVENT		8
/* How long a closing connection may take to drain its output. */
#define CLOSE_FLUSH_SECONDS	5.0

static struct conn_env	 env;
static char		*rbuf;		/* shared read buffer of this worker */
static size_t		 rbuf_size;
static struct conn	**table;	/* id -> conn */
static uint32_t		 table_size;
static uint32_t		*free_ids;	/* stack of unused ids */
static uint32_t		 nfree;
static size_t		 nopen;
static struct conn	*flush_list;
static struct conn	*reap_list;
static struct buf	 rate_reply;	/* the ERR_RATE answer, made once */
static ev_tstamp	 proxy_log_next;	/* PROXY refusals: one line a second */
static unsigned		 proxy_log_dropped;
static size_t		 out_total;	/* sum of every out_counted */
static int		 sndbuf;	/* SO_SNDBUF of new sockets; 0: auto */

static void	conn_read_cb(struct ev_loop *, ev_io *, int);
static void	conn_write_cb(struct ev_loop *, ev_io *, int);
static void	conn_timer_cb(struct ev_loop *, ev_timer *, int);
static void	conn_flush(struct conn *);
static void	conn_input(struct conn *, const char *, size_t);
static int	frozen;		/* handing over: no socket is read */

int
conn_env_init(const struct conn_env *e)
{
	env = *e;
	rbuf_size = 64 * 1024;
	if ((rbuf = malloc(rbuf_size)) == NULL)
		return -1;
	if (proto_put_error(&rate_reply, MSG_ERROR, ERR_RATE, 0,
	    "too many requests (rate_limit_rps): request dropped") == -1)
		return -1;
	return 0;
}

void
conn_env_rate(double rps, double burst)
{
	env.rate_rps = rps;
	env.rate_burst = burst;
}

void
conn_env_keepalive(int idle, int interval, int count)
{
	env.ka_idle = idle;
	env.ka_interval = interval;
	env.ka_count = count;
}

void
conn_env_sndbuf(size_t bytes)
{
	sndbuf = bytes > INT_MAX ? INT_MAX : (int)bytes;
}

/* Dead peers of quiet sessions are found by the kernel, not a timeout. */
static void
conn_keepalive(int fd)
{
	int	 on = env.ka_idle > 0;

	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	if (!on)
		return;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &env.ka_idle,
	    sizeof(env.ka_idle));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &env.ka_interval,
	    sizeof(env.ka_interval));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &env.ka_count,
	    sizeof(env.ka_count));
}

void
conn_env_reconfigure(size_t max_output, size_t max_worker_output,
    double idle_timeout, double login_timeout)
{
	uint32_t	 i;
	struct conn	*c;

	env.max_output = max_output;
	env.max_worker_output = max_worker_output;
	env.idle_timeout = idle_timeout;
	env.login_timeout = login_timeout;
	/* logged-in connections count their idle time anew */
	for (i = 0; i < table_size; i++) {
		if ((c = table[i]) == NULL || c->closing || !c->logged_in ||
		    c->close_after_flush)
			continue;
		c->timer.repeat = idle_timeout;
		if (idle_timeout > 0)
			ev_timer_again(env.loop, &c->timer);
		else
			ev_timer_stop(env.loop, &c->timer);
	}
}

/* Twice as many ids (1024 at first), the new ones free. */
static int
conn_table_grow(void)
{
	uint32_t	 n, i;
	struct conn	**nt;
	uint32_t	*nf;

	n = table_size ? table_size * 2 : 1024;
	if ((nt = reallocarray(table, n, sizeof(*table))) == NULL)
		return -1;
	table = nt;
	if ((nf = reallocarray(free_ids, n, sizeof(*free_ids))) == NULL)
		return -1;
	free_ids = nf;
	/* push in reverse so low ids are used first */
	for (i = n; i > table_size; i--) {
		table[i - 1] = NULL;
		free_ids[nfree++] = i - 1;
	}
	table_size = n;
	return 0;
}

static int
conn_id_alloc(uint32_t *id)
{
	if (nfree == 0 && conn_table_grow() == -1)
		return -1;
	*id = free_ids[--nfree];
	return 0;
}

/* Take this id off the free stack (an adopted connection keeps its id). */
static int
conn_id_claim(uint32_t id)
{
	uint32_t	 i;

	while (id >= table_size)
		if (conn_table_grow() == -1)
			return -1;
	for (i = nfree; i > 0; i--)
		if (free_ids[i - 1] == id) {
			memmove(free_ids + i - 1, free_ids + i,
			    (nfree - i) * sizeof(*free_ids));
			nfree--;
			return 0;
		}
	return -1;		/* in use */
}

static struct conn *conn_setup(struct conn *c, int fd,
	    const struct sockaddr_storage *peer, uint64_t akey);

struct conn *
conn_new(int fd, const struct sockaddr_storage *peer, uint64_t akey)
{
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (conn_id_alloc(&c->id) == -1) {
		free(c);
		return NULL;
	}
	return conn_setup(c, fd, peer, akey);
}

void
conn_freeze(void)
{
	uint32_t	 i;

	frozen = 1;
	for (i = 0; i < table_size; i++)
		if (table[i] != NULL && !table[i]->closing)
			ev_io_stop(env.loop, &table[i]->rio);
}

void
conn_move(struct conn *c)
{
	c->moved = 1;
	ev_io_stop(env.loop, &c->rio);
	ev_io_stop(env.loop, &c->wio);
	ev_timer_stop(env.loop, &c->timer);
	/* a partial request went with the record: the next worker's */
	buf_consume(&c->in, buf_used(&c->in));
}

int
conn_adopt_input(struct conn *c, const void *p, size_t n)
{
	c->resync = 0;
	if (n > 0 && buf_append(&c->in, p, n) == -1) {
		conn_close(c, "out of memory");
		return -1;
	}
	if (buf_used(&c->in) > 0)
		conn_input(c, NULL, 0);
	return c->closing ? -1 : 0;
}

struct conn *
conn_adopt(int fd, const struct sockaddr_storage *peer, uint64_t akey,
    uint32_t id)
{
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (conn_id_claim(id) == -1) {
		free(c);
		return NULL;
	}
	c->id = id;
	c->handed = 1;
	if (conn_setup(c, fd, peer, akey) == NULL)
		return NULL;
	/* a PROXY header was read long ago; what comes is mid-stream */
	c->seen_input = 1;
	c->resync = 1;
	return c;
}

static struct conn *
conn_setup(struct conn *c, int fd, const struct sockaddr_storage *peer,
    uint64_t akey)
{
	table[c->id] = c;
	c->fd = fd;
	c->peer = *peer;
	/* an adopted socket keeps its options (5 system calls each) */
	if (!c->handed)
		conn_keepalive(fd);
	/* the kernel's share of a slow reader's backlog, bounded too */
	if (sndbuf > 0 && !c->handed)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
		    sizeof(sndbuf));
	guard_peer_set(env.guard, env.slot, c->id, peer);
	frame_scanner_init(&c->fs);
	ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
	c->rio.data = c->wio.data = c->timer.data = c;
	c->last_active = ev_now(env.loop);
	c->akey = akey;
	c->rl_tokens = env.rate_burst;
	c->rl_stamp = c->last_active;
	ev_timer_init(&c->timer, conn_timer_cb, 0.,
	    env.login_timeout > 0 ? env.login_timeout : env.idle_timeout);
	if (c->timer.repeat > 0)
		ev_timer_again(env.loop, &c->timer);
	ev_io_start(env.loop, &c->rio);
	nopen++;
	if (env.open_count != NULL)
		__atomic_store_n(env.open_count, nopen, __ATOMIC_RELAXED);
	return c;
}

struct conn *
conn_lookup(uint32_t id)
{
	struct conn	*c;

	if (id >= table_size || (c = table[id]) == NULL || c->closing)
		return NULL;
	return c;
}

size_t
conn_count(void)
{
	return nopen;
}

void
conn_foreach(void (*fn)(struct conn *, void *), void *arg)
{
	uint32_t	 i;

	for (i = 0; i < table_size; i++)
		if (table[i] != NULL && !table[i]->closing)
			fn(table[i], arg);
}

const char *
conn_peer_str(const struct conn *c, char *buf, size_t len)
{
	char	 host[INET6_ADDRSTRLEN];
	int	 port = 0;

	host[0] = '\0';
	if (c->peer.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)&c->peer;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
	} else if (c->peer.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)&c->peer;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
	}
	snprintf(buf, len, "%s:%d", host, port);
	return buf;
}

/* Bring the worker's total up to date with what c->out holds now. */
static void
conn_count_output(struct conn *c)
{
	size_t	 now = buf_used(&c->out);

	out_total = out_total - c->out_counted + now;
	c->out_counted = now;
}

static int
cmp_pending(const void *a, const void *b)
{
	size_t	 x = (*(struct conn * const *)a)->out_counted;
	size_t	 y = (*(struct conn * const *)b)->out_counted;

	return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * Before closing a reader that is cut off: requests it sent and we have
 * not read would make close() reset the connection, dropping what the
 * kernel still holds for it (lines it counts as delivered).  Without
 * them the kernel sends that, then a FIN.
 */
static void
conn_discard_input(struct conn *c)
{
	int	 i;

	for (i = 0; i < READS_PER_EVENT; i++)
		if (recv(c->fd, rbuf, rbuf_size, MSG_DONTWAIT) <= 0)
			break;
}

/*
 * The worker holds more queued output than max_worker_output: close the
 * connections with the most of it (the slowest readers) until it is
 * down to 3/4 of the budget, so that this sort is rare.  Their stored
 * messages stay stored (an acknowledged chat leaves the store only once
 * it reached the socket).  Called at a safe point, not from a handler.
 */
static void
conn_budget_enforce(void)
{
	struct conn	**v;
	size_t		  nv = 0, goal, closed = 0, freed = 0, k;
	uint32_t	  i;
	char		  peer[64];

	if (env.max_worker_output == 0 || out_total <= env.max_worker_output)
		return;
	goal = env.max_worker_output / 4 * 3;
	if ((v = calloc(nopen > 0 ? nopen : 1, sizeof(*v))) == NULL) {
		log_warnx("output budget: out of memory");
		return;
	}
	for (i = 0; i < table_size && nv < nopen; i++)
		if (table[i] != NULL && !table[i]->closing &&
		    table[i]->out_counted > 0)
			v[nv++] = table[i];
	qsort(v, nv, sizeof(*v), cmp_pending);
	for (k = 0; k < nv && out_total > goal; k++) {
		freed += v[k]->out_counted;
		if (closed == 0)
			log_notice("%s: %zu bytes queued while the worker holds "
			    "%zu, over max_worker_output_bytes (%zu): "
			    "disconnecting the slowest readers",
			    conn_peer_str(v[k], peer, sizeof(peer)),
			    v[k]->out_counted, out_total,
			    env.max_worker_output);
		conn_discard_input(v[k]);
		conn_close(v[k], "worker output budget");
		closed++;
	}
	free(v);
	if (env.evicted_count != NULL)
		__atomic_add_fetch(env.evicted_count, closed,
		    __ATOMIC_RELAXED);
	log_notice("output budget: %zu slow readers disconnected, %zu bytes "
	    "freed, %zu queued now", closed, freed, out_total);
}

static void
conn_want_flush(struct conn *c)
{
	if (!c->in_flush_list) {
		c->in_flush_list = 1;
		c->flush_next = flush_list;
		flush_list = c;
	}
}

int
conn_sent(struct conn *c)
{
	char	 peer[64];

	if (c->closing)
		return -1;
	conn_count_output(c);
	if (env.max_output > 0 && buf_used(&c->out) > env.max_output) {
		log_notice("%s: output over %zu bytes, client not reading: "
		    "disconnecting", conn_peer_str(c, peer, sizeof(peer)),
		    env.max_output);
		conn_close(c, "output limit");
		return -1;
	}
	conn_want_flush(c);
	return 0;
}

int
conn_send(struct conn *c, const void *p, size_t n)
{
	if (c->closing)
		return -1;
	if (buf_append(&c->out, p, n) == -1) {
		conn_close(c, "out of memory");
		return -1;
	}
	return conn_sent(c);
}

void
conn_pause(struct conn *c)
{
	c->paused = 1;
	ev_io_stop(env.loop, &c->rio);
}

void
conn_resume(struct conn *c)
{
	if (c->closing || !c->paused)
		return;
	c->paused = 0;
	if (c->moved)
		return;		/* its requests are the next worker's */
	/* requests that arrived meanwhile come first, in order */
	if (buf_used(&c->in) > 0 || c->tp != NULL)
		conn_input(c, NULL, 0);
	if (!c->paused && !c->closing && !c->close_after_flush)
		ev_io_start(env.loop, &c->rio);
}

void
conn_logged_in(struct conn *c)
{
	c->logged_in = 1;
	c->timer.repeat = env.idle_timeout;
	if (c->timer.repeat > 0)
		ev_timer_again(env.loop, &c->timer);
	else
		ev_timer_stop(env.loop, &c->timer);
}

void
conn_logged_out(struct conn *c)
{
	/* as if it had just connected: the login timeout starts now */
	c->logged_in = 0;
	if (c->closing || c->close_after_flush)
		return;
	c->last_active = ev_now(env.loop);
	c->timer.repeat = env.login_timeout;
	ev_timer_again(env.loop, &c->timer);
}

void
conn_expect_proxy(struct conn *c)
{
	c->proxy_wait = 1;
	c->timer.repeat = env.proxy_timeout;
	ev_timer_again(env.loop, &c->timer);
}

/* Close for a PROXY header problem, logged at most once a second. */
static void
conn_proxy_refuse(struct conn *c, const char *what, const char *why)
{
	char		 peer[64];
	ev_tstamp	 now = ev_now(env.loop);

	if (env.proxy_refused_count != NULL)
		__atomic_add_fetch(env.proxy_refused_count, 1,
		    __ATOMIC_RELAXED);
	if (now >= proxy_log_next) {
		log_notice("%s: %s%s%s: closing%s", conn_peer_str(c, peer,
		    sizeof(peer)), what, why != NULL ? ": " : "",
		    why != NULL ? why : "", proxy_log_dropped > 0 ?
		    " (and others like it not logged)" : "");
		proxy_log_next = now + 1;
		proxy_log_dropped = 0;
	} else
		proxy_log_dropped++;
	conn_close(c, what);
}

void
conn_close(struct conn *c, const char *why)
{
	char	 peer[64];

	if (c->closing)
		return;
	log_debug("%s: closing: %s", conn_peer_str(c, peer, sizeof(peer)),
	    why);
	if (c->moved) {
		/* the session lives on in the next worker: only let go */
		c->closing = 1;
		return;
	}
	/* the handler may still look the connection up while logging out */
	if (env.handler->closing != NULL)
		env.handler->closing(c);
	c->closing = 1;
	ev_io_stop(env.loop, &c->rio);
	ev_io_stop(env.loop, &c->wio);
	ev_timer_stop(env.loop, &c->timer);
	/* the master's copy must not keep the client connected */
	if (c->handed)
		(void)shutdown(c->fd, SHUT_RDWR);
	close(c->fd);
	c->fd = -1;
	/* c->akey stays: a login answer due later still counts a failure */
	guard_conn_del(env.guard, env.slot, c->akey);
	table[c->id] = NULL;
	free_ids[nfree++] = c->id;
	nopen--;
	if (env.open_count != NULL)
		__atomic_store_n(env.open_count, nopen, __ATOMIC_RELAXED);
	buf_free(&c->in);
	buf_free(&c->out);
	conn_count_output(c);
	c->free_next = reap_list;
	reap_list = c;
}

void
conn_close_after_flush(struct conn *c, const char *why)
{
	if (c->closing)
		return;
	/* a transport may still have bytes to write (a close frame) */
	if (c->moved || (buf_used(&c->out) == 0 && c->tp == NULL)) {
		conn_close(c, why);
		return;
	}
	c->close_after_flush = 1;
	conn_count_output(c);
	ev_io_stop(env.loop, &c->rio);
	ev_timer_stop(env.loop, &c->timer);
	ev_timer_set(&c->timer, CLOSE_FLUSH_SECONDS, 0.);
	ev_timer_start(env.loop, &c->timer);
	conn_want_flush(c);
}

void
conn_unref(struct conn *c)
{
	c->jobs--;
}

void
conn_reap(void)
{
	struct conn	*c, **pp;

	for (pp = &reap_list; (c = *pp) != NULL;) {
		if (c->jobs > 0 || c->in_flush_list) {
			pp = &c->free_next;
			continue;
		}
		*pp = c->free_next;
		if (c->tp != NULL && c->tp->free != NULL)
			c->tp->free(c);
		if (env.handler->release != NULL)
			env.handler->release(c);
		free(c);
	}
}

static void
conn_flush_list(void)
{
	struct conn	*c;

	while ((c = flush_list) != NULL) {
		flush_list = c->flush_next;
		c->in_flush_list = 0;
		if (!c->closing)
			conn_flush(c);
	}
}

void
conn_flush_all(void)
{
	conn_flush_list();
	/* what is still queued waits on slow readers: bound it */
	if (env.max_worker_output > 0 &&
	    out_total > env.max_worker_output) {
		conn_budget_enforce();
		conn_flush_list();	/* logouts told others */
	}
	if (env.output_gauge != NULL)
		__atomic_store_n(env.output_gauge, out_total,
		    __ATOMIC_RELAXED);
}

static void
conn_flush(struct conn *c)
{
	struct buf	*ob;
	ssize_t		 n;
	size_t		 left;

	if (c->moved)
		return;		/* the caller passes c->out on */
	/* a transport turns c->out into its own bytes, a batch at a time */
	while ((ob = c->tp == NULL ? &c->out : c->tp->output(c)) != NULL &&
	    buf_used(ob) > 0) {
		while ((left = buf_used(ob)) > 0) {
			n = write(c->fd, buf_head(ob), left);
			if (n == -1) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN) {
					conn_count_output(c);
					ev_io_start(env.loop, &c->wio);
					return;
				}
				conn_close(c, strerror(errno));
				return;
			}
			buf_consume(ob, n);
		}
	}
	conn_count_output(c);
	if (ob == NULL || c->closing) {
		conn_close(c, "transport closed");
		return;
	}
	ev_io_stop(env.loop, &c->wio);
	if (c->close_after_flush) {
		conn_close(c, "flushed");
		return;
	}
	if (c->want_drained && env.handler->drained != NULL) {
		env.handler->drained(c);
		/* the handler may have queued more: write it in this round */
		if (buf_used(&c->out) > 0 && !c->closing)
			conn_want_flush(c);
	}
}

static void
conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	conn_flush(w->data);
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn	*c = w->data;
	ev_tstamp	 idle_for;

	if (c->close_after_flush) {
		conn_close(c, "output not drained in time");
		return;
	}
	if (c->proxy_wait) {
		conn_proxy_refuse(c, "PROXY header not complete in time",
		    NULL);
		return;
	}
	if (!c->logged_in) {
		conn_close(c, "login timeout");
		return;
	}
	if (env.idle_timeout <= 0) {
		ev_timer_stop(loop, w);
		return;
	}
	/* the timer is not reset on every read; catch up here */
	idle_for = ev_now(loop) - c->last_active;
	if (idle_for < env.idle_timeout) {
		w->repeat = env.idle_timeout - idle_for;
		ev_timer_again(loop, w);
		w->repeat = env.idle_timeout;
		return;
	}
	conn_close(c, "idle timeout");
}

/* A protocol violation that cannot be resynchronised: answer, then close. */
static void
conn_fatal_input(struct conn *c, int code, const char *text)
{
	(void)proto_put_error(&c->out, MSG_ERROR, code, 0, text);
	conn_close_after_flush(c, text);
}

/*
 * The token bucket: 1 when the request may go on.  Refused requests
 * pile up as debt that is forgiven at (CONN_RATE_ABUSE - 1) times the
 * rate, so the debt only grows while the client sends faster than
 * CONN_RATE_ABUSE times the rate; past CONN_RATE_ABUSE bursts of it
 * the client is cut off.  Refusing costs one copy of a ready answer.
 */
static int
conn_rate_ok(struct conn *c)
{
	ev_tstamp	 now, dt;
	char		 peer[64];

	if (env.rate_rps <= 0)
		return 1;
	now = ev_now(env.loop);
	dt = now - c->rl_stamp;
	c->rl_stamp = now;
	if (dt > 0) {
		c->rl_tokens += dt * env.rate_rps;
		if (c->rl_tokens > env.rate_burst)
			c->rl_tokens = env.rate_burst;
		c->rl_debt -= dt * env.rate_rps * (CONN_RATE_ABUSE - 1);
		if (c->rl_debt < 0)
			c->rl_debt = 0;
	}
	if (c->rl_tokens >= 1) {
		c->rl_tokens -= 1;
		return 1;
	}
	if (++c->rl_debt > env.rate_burst * CONN_RATE_ABUSE) {
		log_notice("%s: requests far over rate_limit_rps (%.0f/s): "
		    "disconnecting", conn_peer_str(c, peer, sizeof(peer)),
		    env.rate_rps);
		(void)proto_put_error(&c->out, MSG_ERROR, ERR_RATE, 0,
		    "far too many requests; closing the connection");
		conn_close_after_flush(c, "flood");
		return 0;
	}
	(void)conn_send(c, buf_head(&rate_reply), buf_used(&rate_reply));
	return 0;
}

void
conn_request(struct conn *c, const char *p, size_t n)
{
	if (!c->closing && !c->close_after_flush && conn_rate_ok(c))
		env.handler->frame(c, p, n, FRAME_OK);
}

/*
 * Split data (or, with data == NULL, c->in) into frames and hand them
 * to the handler until the input is used up or the connection pauses.
 * What is left of data is kept in c->in.
 */
static void
conn_input(struct conn *c, const char *data, size_t len)
{
	enum frame_status st;
	size_t		  off, vlen, consumed;
	int		  from_in = data == NULL;

	if (c->tp != NULL) {
		if (!from_in && buf_append(&c->in, data, len) == -1) {
			conn_close(c, "out of memory");
			return;
		}
		c->tp->input(c);
		return;
	}
	if (from_in) {
		data = buf_head(&c->in);
		len = buf_used(&c->in);
	}
	while (len > 0 && !c->paused && !c->closing && !c->close_after_flush) {
		st = frame_next(&c->fs, data, len, env.max_frame, &off, &vlen,
		    &consumed);
		switch (st) {
		case FRAME_OK:
		case FRAME_BAD:
			if (conn_rate_ok(c))
				env.handler->frame(c, data + off, vlen, st);
			break;
		case FRAME_GARBAGE:
			conn_fatal_input(c, ERR_MALFORMED,
			    "not JSON; closing the connection");
			break;
		case FRAME_TOO_BIG:
			conn_fatal_input(c, ERR_FRAME_TOO_BIG,
			    "request larger than max_frame_bytes; closing "
			    "the connection");
			break;
		case FRAME_NEED_MORE:
			break;
		}
		if (c->closing)
			return;
		if (from_in) {
			buf_consume(&c->in, consumed);
			/* the handler may have appended nothing to in */
			data = buf_head(&c->in);
			len = buf_used(&c->in);
		} else {
			data += consumed;
			len -= consumed;
		}
		if (st == FRAME_NEED_MORE || st == FRAME_GARBAGE ||
		    st == FRAME_TOO_BIG)
			break;
	}
	if (!from_in && len > 0 && !c->closing && !c->close_after_flush) {
		if (buf_append(&c->in, data, len) == -1)
			conn_close(c, "out of memory");
	}
}

/*
 * Input of a connection from a trusted balancer, before its PROXY
 * header is complete (gathered in c->in).  -1 when it was closed.
 */
static int
conn_proxy_input(struct conn *c, const char *data, size_t len)
{
	struct proxy_hdr	 h;
	char			 why[128];

	if (buf_append(&c->in, data, len) == -1) {
		conn_close(c, "out of memory");
		return -1;
	}
	switch (proxy_parse(buf_head(&c->in), buf_used(&c->in), &h, why,
	    sizeof(why))) {
	case PROXY_NEED_MORE:
		return 0;
	case PROXY_BAD:
		conn_proxy_refuse(c, "bad PROXY header from a "
		    "proxy_protocol_from address", why);
		return -1;
	case PROXY_OK:
		break;
	}
	buf_consume(&c->in, h.len);
	c->proxy_wait = 0;
	if (!h.local) {
		c->peer = h.src;
		guard_peer_set(env.guard, env.slot, c->id, &c->peer);
	}
	if (env.admit != NULL && env.admit(c) == -1) {
		conn_close_after_flush(c, "refused after PROXY header");
		return -1;
	}
	c->last_active = ev_now(env.loop);
	c->timer.repeat = env.login_timeout;
	ev_timer_again(env.loop, &c->timer);
	if (buf_used(&c->in) > 0)
		conn_input(c, NULL, 0);
	return c->closing ? -1 : 0;
}

static void
conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct proxy_hdr h;
	struct conn	*c = w->data;
	const char	*p, *nul;
	ssize_t		 n;
	int		 i;

	if (frozen) {
		ev_io_stop(loop, w);
		return;
	}
	for (i = 0; i < READS_PER_EVENT && !c->closing && !c->paused &&
	    !c->close_after_flush; i++) {
		/*
		 * Over the budget, a client that does not take its answers
		 * sends no new requests until the loop has cut the slowest
		 * readers off, before it sleeps (the watcher calls again
		 * then); the others go on.
		 */
		if (env.max_worker_output > 0 && c->out_counted > 0 &&
		    out_total > env.max_worker_output)
			return;
		n = read(c->fd, rbuf, rbuf_size);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_close(c, strerror(errno));
			return;
		}
		if (n == 0) {
			conn_close(c, "closed by peer");
			return;
		}
		c->last_active = ev_now(loop);
		if (c->proxy_wait) {
			if (conn_proxy_input(c, rbuf, n) == -1)
				return;
			continue;
		}
		p = rbuf;
		if (c->resync) {
			/*
			 * Adopted after a crash: the stream may start inside
			 * a request the dead worker had begun to read.  A raw
			 * NUL is never inside a request: resume after it.
			 */
			if ((nul = memchr(rbuf, '\0', n)) == NULL) {
				c->resync_skipped += n;
				if (c->resync_skipped > env.max_frame) {
					conn_close(c, "no request separator "
					    "(NUL) after a handover");
					return;
				}
				continue;
			}
			c->resync = 0;
			c->resync_skipped += nul + 1 - rbuf;
			if (c->resync_skipped > 1)
				log_debug("connection %u: %zu bytes of an "
				    "unfinished request discarded after the "
				    "handover", c->id, c->resync_skipped);
			n -= nul + 1 - rbuf;
			p = nul + 1;
			if (n == 0)
				continue;
		}
		/* a balancer's header from an address not trusted with it */
		if (!c->seen_input && n >= 5 && proxy_parse(p, n, &h, NULL,
		    0) != PROXY_BAD) {
			conn_proxy_refuse(c, "PROXY header from an address "
			    "not in proxy_protocol_from", NULL);
			return;
		}
		c->seen_input = 1;
		if (buf_used(&c->in) > 0) {
			if (buf_append(&c->in, p, n) == -1) {
				conn_close(c, "out of memory");
				return;
			}
			conn_input(c, NULL, 0);
		} else
			conn_input(c, p, n);
		if (p == rbuf && (size_t)n < rbuf_size)
			return;
	}
}
