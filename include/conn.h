/*
 * conn.h - one client connection: socket, buffers, framing, timers,
 * deferred close.  It knows bytes and frames; what a frame means is up
 * to the handler the worker installs (the chat layer).
 */
#ifndef CHATD_CONN_H
#define CHATD_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <ev.h>

#include "buf.h"
#include "proto.h"

struct conn;
struct guard;
struct session;

/* What the connection layer calls upward. */
struct conn_handler {
	/*
	 * One frame (FRAME_OK or FRAME_BAD) from the client.  The handler
	 * may answer, pause the connection or close it.
	 */
	void	(*frame)(struct conn *c, const char *p, size_t n,
		    enum frame_status st);
	/* The connection is going away (logout); no more output possible. */
	void	(*closing)(struct conn *c);
	/*
	 * Everything queued reached the kernel (called only while
	 * c->want_drained is set; the handler clears or keeps it).
	 */
	void	(*drained)(struct conn *c);
	/* The memory of c goes: free c->sess (may be NULL). */
	void	(*release)(struct conn *c);
};

/* Whether a transport's state can move to another process (handover.h). */
enum conn_tp_move {
	CONN_TP_READY,		/* at a frame boundary both ways: built afresh */
	CONN_TP_WAIT,		/* output or held requests still to go */
	CONN_TP_NEVER		/* not open, closing, or a stream it cannot vouch for */
};

/*
 * A transport between the socket and the requests (ws.c); NULL on a
 * plain TCP connection, whose bytes are JSON values split by frame_next.
 */
struct conn_transport {
	/*
	 * New bytes were appended to c->in (or the connection resumed):
	 * consume what is whole, hand each request to conn_request().
	 */
	void		(*input)(struct conn *c);
	/*
	 * About to write: the bytes for the socket (made from the lines in
	 * c->out), or NULL to close now.  Called again once they are all
	 * written, until it gives an empty buffer.
	 */
	struct buf	*(*output)(struct conn *c);
	/* c is being freed (outside any callback): release tp_data. */
	void		(*free)(struct conn *c);
	/*
	 * Nothing half done: no part of a frame or of a fragmented message
	 * consumed (what is left in c->in is not begun), nothing queued to
	 * write.  NULL: never.
	 */
	enum conn_tp_move (*movable)(const struct conn *c);
};

/* Worker-wide settings and state of the connection layer. */
struct conn_env {
	struct ev_loop		*loop;
	const struct conn_handler *handler;
	size_t			 max_frame;
	size_t			 max_output;
	/*
	 * Queued output of all connections of the worker (0: no limit).
	 * Past it the connections with the most pending output (the
	 * slowest readers) are closed first, down to 3/4 of it.
	 */
	size_t			 max_worker_output;
	uint64_t		*evicted_count;	/* closed so, for the metrics */
	uint64_t		*proxy_refused_count;	/* PROXY refusals */
	uint64_t		*output_gauge;	/* the total before each sleep */
	double			 idle_timeout;	/* 0: none */
	double			 login_timeout;
	/*
	 * Token bucket per connection: rate_rps requests a second, up to
	 * rate_burst at once (0: no limit).  A request over the limit is
	 * answered with ERR_RATE and dropped; a client that keeps sending
	 * at more than CONN_RATE_ABUSE times the rate is disconnected.
	 */
	double			 rate_rps;
	double			 rate_burst;
	/* node-wide connections per address (guard.c); may be NULL */
	struct guard		*guard;
	int			 slot;
	/* figures the worker publishes */
	uint64_t		*open_count;
	/*
	 * A PROXY header named the client (conn_expect_proxy): count it
	 * against the per-address limits and set c->akey.  -1 refuses it
	 * (admit may queue an answer; the connection is then closed).
	 */
	int			(*admit)(struct conn *c);
	double			 proxy_timeout;	/* seconds for the header */
	/* TCP keepalive on accepted sockets (seconds, probes); 0: off */
	int			 ka_idle;
	int			 ka_interval;
	int			 ka_count;
};

struct conn {
	ev_io		 rio;
	ev_io		 wio;
	ev_timer	 timer;
	int		 fd;
	uint32_t	 id;		/* index in the worker's table */
	struct buf	 in;		/* unconsumed input (a partial frame) */
	struct buf	 out;
	size_t		 out_counted;	/* of out, in the worker's total */
	struct frame_scanner fs;
	struct sockaddr_storage peer;
	ev_tstamp	 last_active;	/* idle timer is lazy: see conn.c */
	uint64_t	 akey;		/* guard address key counted, 0: none */
	double		 rl_tokens;	/* rate limit: requests available */
	double		 rl_debt;	/* refused requests not yet forgiven */
	ev_tstamp	 rl_stamp;
	const struct conn_transport *tp;	/* NULL: plain TCP */
	void		*tp_data;		/* the transport's state */

	/* the handler's per-client state; freed by handler->release */
	struct session	*sess;
	int		 jobs;		/* async work in flight holding c */
	unsigned	 paused:1;	/* a request is in flight: hold input */
	unsigned	 closing:1;
	unsigned	 close_after_flush:1;
	unsigned	 in_flush_list:1;
	unsigned	 want_drained:1;	/* call handler->drained */
	unsigned	 logged_in:1;	/* idle timeout, not login timeout */
	unsigned	 proxy_wait:1;	/* a PROXY header must come first */
	unsigned	 seen_input:1;
	unsigned	 handed:1;	/* the master holds a copy (handover.h) */
	unsigned	 resync:1;	/* adopted: skip input up to a NUL */
	unsigned	 moved:1;	/* upgrade: the next worker's socket now */
	unsigned	 forward:1;	/* moved: its answers go over the channel */
	size_t		 resync_skipped;
	struct conn	*flush_next;
	struct conn	*free_next;
};

#define CONN_RATE_ABUSE	10

/* Whether c's transport can move to another process (plain TCP: yes). */
static inline enum conn_tp_move
conn_tp_movable(const struct conn *c)
{
	if (c->tp == NULL)
		return CONN_TP_READY;
	return c->tp->movable != NULL ? c->tp->movable(c) : CONN_TP_NEVER;
}

/* Once per worker process, before accepting. */
int	conn_env_init(const struct conn_env *env);
/* New request rate limit (reload); 0 rps: none. */
void	conn_env_rate(double rps, double burst);
/* New limits and timeouts (reload); open connections follow them. */
void	conn_env_reconfigure(size_t max_output, size_t max_worker_output,
	    double idle_timeout, double login_timeout);
/*
 * Take over an accepted, non-blocking socket.  akey: the address key
 * counted with guard_conn_add for it (0: none); it is released when the
 * connection closes.  NULL when out of memory (nothing taken over).
 */
struct conn *conn_new(int fd, const struct sockaddr_storage *peer,
	    uint64_t akey);
/*
 * Take over a connection a dead worker served (handover.h) under the
 * same id: its input is skipped up to the next NUL, then read as
 * usual; closing it shuts the socket down (the master holds a copy).
 * NULL when out of memory or the id is in use (nothing taken over).
 */
struct conn *conn_adopt(int fd, const struct sockaddr_storage *peer,
	    uint64_t akey, uint32_t id);
/*
 * The connection was handed over at a frame boundary (binary upgrade,
 * HO_F_CLEAN): nothing is skipped; p holds a partial request the
 * previous worker had read.  -1 when it was closed.
 */
int	conn_adopt_input(struct conn *c, const void *p, size_t n);
/* Stop reading every connection for good (the worker hands them over). */
void	conn_freeze(void);
/*
 * c was handed over (upgrade): its socket is the next worker's.  It is
 * never read, written or shut down here again, nor logged out; what is
 * queued on it stays in c->out for the caller to pass on, and a close
 * only marks it.
 */
void	conn_move(struct conn *c);
/*
 * The peer is a trusted balancer (proxy_protocol_from): the first bytes
 * must be a PROXY header, complete within env.proxy_timeout.  Its
 * source address then replaces c->peer and env.admit is called.
 */
void	conn_expect_proxy(struct conn *c);
/* New TCP keepalive settings for sockets accepted from now on. */
void	conn_env_keepalive(int idle, int interval, int count);
/*
 * SO_SNDBUF of sockets accepted from now on (0: the kernel tunes it,
 * up to net.ipv4.tcp_wmem's maximum, per slow reader).
 */
void	conn_env_sndbuf(size_t bytes);
/* The connection with this id, or NULL (closed, or never was). */
struct conn *conn_lookup(uint32_t id);
size_t	conn_count(void);
/* Call fn on every open connection (shutdown, kick). */
void	conn_foreach(void (*fn)(struct conn *c, void *arg), void *arg);

/*
 * Queue bytes for the client; they are written before the loop sleeps.
 * -1 when the connection is closing or its output passed max_output (it
 * is then closed: a client that does not read cannot grow our memory).
 */
int	conn_send(struct conn *c, const void *p, size_t n);
/* The same for what was appended to c->out directly. */
int	conn_sent(struct conn *c);
/*
 * One whole request from a transport: the rate limit, then the
 * handler, as for a frame read on TCP.
 */
void	conn_request(struct conn *c, const char *p, size_t n);
/* Hold further requests until conn_resume (an async answer is due). */
void	conn_pause(struct conn *c);
void	conn_resume(struct conn *c);
/* Close now; the memory is freed once nothing refers to it. */
void	conn_close(struct conn *c, const char *why);
/* Stop reading, write what is queued (bounded in time), then close. */
void	conn_close_after_flush(struct conn *c, const char *why);
/* The user logged in: switch from the login timeout to the idle timeout. */
void	conn_logged_in(struct conn *c);
/* The user logged out: the login timeout runs again, from now. */
void	conn_logged_out(struct conn *c);
/* Drop a reference taken with c->jobs++ (async work finished). */
void	conn_unref(struct conn *c);

/* Write every connection's queued output (ev_prepare, before sleeping). */
void	conn_flush_all(void);
/* Free closed connections (safe point, outside callbacks). */
void	conn_reap(void);
/* "ADDR:PORT" of the peer into buf. */
const char *conn_peer_str(const struct conn *c, char *buf, size_t len);

#endif
