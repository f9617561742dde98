/* worker.c - one worker: privileges, signals, the loop, and the wiring. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "auth.h"
#include "buf.h"
#include "chat.h"
#include "conn.h"
#include "guard.h"
#include "handover.h"
#include "health.h"
#include "log.h"
#include "proto.h"
#include "pubsub.h"
#include "store.h"
#include "histprio.h"
#include "storeq.h"
#include "upgrade.h"
#include "util.h"
#include "worker.h"
#include "worker_impl.h"
#include "ws.h"

#define ACCEPTS_PER_EVENT	64
#define CHANNEL_MSGS_PER_EVENT	256
#define STOP_FLUSH_SECONDS	2.0
#define STOREQ_THREADS		1	/* store threads (and connections) per worker */
/* Watch a store queue's descriptor; storeq_cb completes its jobs. */
#define WORKER_QUEUE_WATCH(io, q) do {					\
	ev_io_init(&(io), storeq_cb, storeq_fd(q), EV_READ);		\
	(io).data = (q);						\
	ev_io_start(loop, &(io));					\
} while (0)

/* Messages for another worker: channel.c's queue, and when to drain it. */
struct chanq {
	ev_io			 wio;
	struct chan_queue	 cq;
};

static void	reload(uint32_t, const char *, size_t);
static void	handoff_timer_cb(struct ev_loop *, ev_timer *, int);

static struct node	*node;
static int		 my_slot;
static struct ev_loop	*loop;
static struct store	*store;
static struct authpool	*auth;
static struct storeq	*storeq;	/* store calls off the loop */
static struct storeq	*storeq_rd;	/* reads that must not queue behind them */
static struct storeq	*storeq_hist;	/* history, at idle priority (histprio.h) */
static struct pubsub	*pubsub;	/* cluster mode only */
/* pubsub's counters as last added to the slot's (which outlive us) */
static uint64_t		 bus_rejected_seen, failovers_seen, unreplicated_seen;
static struct chanq	*chanqs;
static char		*chan_rbuf;
static ev_io		 accept_io, chan_io, auth_io, storeq_io, storeq_rd_io,
			 storeq_hist_io;
static ev_io		 master_io;
static ev_io		 ws_accept_io;	/* websocket_listen, if set */
static ev_io		 ho_io;		/* the master's socket, when full */
static ev_io		 ho_rio;	/* upgrade: connections from the master */
static ev_timer		 accept_retry, stop_timer;
static ev_timer		 health_timer;	/* heartbeat, store and Redis state */
static ev_prepare	 flush_prep;
static ev_signal	 sig_term, sig_int, sig_hup, sig_usr1, sig_usr2;
static ev_timer		 handoff_timer;	/* upgrade: is everything answered? */
static double		 handoff_deadline;
static struct online_slot_stats *stats;
static int		 stopping;
static struct guard_net	 exempt[GUARD_MAX_NETS];	/* per_ip_exempt */
static struct guard_net	 proxies[GUARD_MAX_NETS];	/* proxy_protocol_from */
static int		 nproxies;
static int		 nexempt;

/* ---- channel ----------------------------------------------------------- */

/*
 * A record the channel refused, or still queued at exit: kept offline
 * (or kept here until the store works).
 */
static void
chanq_keep(const struct chan_hdr *h, const char *payload, void *arg)
{
	/* an acknowledged chat (smid) is stored already */
	if (h->type != CHAN_DELIVER || h->len == 0 || h->smid > 0)
		return;
	(void)chat_keep_offline_later(h->uid, payload, h->len - 1);
}

static void
chanq_send(struct chanq *c)
{
	if (chanq_drain(&node->chans, &c->cq, chanq_keep,
	    "on the channel") == CHANQ_AGAIN)
		ev_io_start(loop, &c->wio);
	else
		ev_io_stop(loop, &c->wio);
}

/* Before the loop sleeps: send every worker its batch. */
static void
chanq_flush_all(void)
{
	int	 i;

	for (i = 0; i < node->nslots; i++)
		if (chanqs[i].cq.pending) {
			chanqs[i].cq.pending = 0;
			if (!ev_is_active(&chanqs[i].wio))
				chanq_send(&chanqs[i]);
		}
}

static void
chanq_write_cb(struct ev_loop *l, ev_io *w, int revents)
{
	chanq_send(w->data);
}

static int
to_slot(int slot, const struct chan_hdr *h, const void *payload)
{
	/* queued in order; bounded, then the caller stores it */
	return chanq_put(&node->chans, &chanqs[slot].cq, h, payload,
	    node->cfg.channel_queue_bytes);
}

static void
chan_read_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct chan_hdr	 h;
	ssize_t		 n;
	size_t		 off;
	int		 i;

	for (i = 0; i < CHANNEL_MSGS_PER_EVENT; i++) {
		n = channel_recv_batch(w->fd, chan_rbuf, node->chans.max_msg);
		if (n == 0)
			return;
		if (n == -1)
			fatal("channel");
		/* records back to back; a bad one is our own bug */
		for (off = 0; off < (size_t)n; off += sizeof(h) + h.len) {
			if ((size_t)n - off < sizeof(h))
				fatalx("channel: short record from a worker");
			memcpy(&h, chan_rbuf + off, sizeof(h));
			if (h.len > (size_t)n - off - sizeof(h))
				fatalx("channel: record longer than its "
				    "datagram");
			if (h.type == CHAN_CONFIG)
				reload(h.gen, chan_rbuf + off + sizeof(h),
				    h.len);
			else
				chat_channel_msg(&h, chan_rbuf + off +
				    sizeof(h));
		}
	}
}

/* ---- crash handover (handover.h) -------------------------------------- */

static void
ho_write_cb(struct ev_loop *l, ev_io *w, int revents)
{
	if (handover_flush() != HO_QUEUED)
		ev_io_stop(l, w);
}

static int
ho_keep(struct conn *c, const void *state, size_t len)
{
	switch (handover_keep(c->id, c->fd, state, len)) {
	case HO_QUEUED:
		ev_io_start(loop, &ho_io);
		/* FALLTHROUGH */
	case HO_SENT:
		c->handed = 1;
		return 0;
	case HO_FAILED:
		break;
	}
	return -1;
}

static void
ho_drop(struct conn *c)
{
	switch (handover_drop(c->id)) {
	case HO_QUEUED:
		ev_io_start(loop, &ho_io);
		break;
	case HO_FAILED:
		/* the socket is shut down on close: the copy is harmless */
		log_warnx("handover: connection %u not dropped by the master",
		    c->id);
		break;
	case HO_SENT:
		break;
	}
}

/*
 * The previous worker of this slot died (or, in an upgrade, let go):
 * take its connections over, under the same ids (messages other
 * workers sent it find them).
 */
static void
adopt_all(void)
{
	if (worker_adopt(node->guard, my_slot, exempt, nexempt, stats,
	    ho_drop) == HO_QUEUED)
		ev_io_start(loop, &ho_io);
}

/* Accept, and read what other workers send. */
static void
serve_start(void)
{
	ev_io_start(loop, &accept_io);
	if (node->ws_listen_fds != NULL)
		ev_io_start(loop, &ws_accept_io);
	ev_io_start(loop, &chan_io);
}

/* Upgrade: the old worker's connections, then HO_GO. */
static void
ho_read_cb(struct ev_loop *l, ev_io *w, int revents)
{
	switch (handover_worker_recv()) {
	case 0:
		return;
	case 1:
		ev_io_stop(l, w);
		adopt_all();
		serve_start();
		break;
	default:
		/* the master is gone: master_io ends us */
		ev_io_stop(l, w);
		log_warnx("handover: reading the master's socket failed");
		break;
	}
}

/* ---- accept ------------------------------------------------------------ */

static uint64_t
node_connections(void)
{
	uint64_t	 sum = 0;
	int		 i;

	for (i = 0; i < node->nslots; i++)
		sum += __atomic_load_n(&online_slot_stats(node->online,
		    i)->connections, __ATOMIC_RELAXED);
	return sum;
}

/* One error line (ERR_LIMIT) to a connection we do not take. */
static void
refuse(int fd, enum proto_refuse why, int ws)
{
	struct buf	 b = BUF_INIT;

	if (ws) {	/* an HTTP client: an HTTP answer */
		const char *t = why == PROTO_REFUSE_PER_ADDR ?
		    ws_refuse_per_ip : ws_refuse_full;
		(void)!write(fd, t, strlen(t));
	} else if (proto_put_refuse(&b, why) == 0)
		(void)!write(fd, buf_head(&b), buf_used(&b));
	buf_free(&b);
	close(fd);
}

/* The limits that come from the configuration (start and reload). */
static void
worker_limits(const struct config *cfg)
{
	char	 why[128];
	int	 n = 0;

	if (cfg->per_ip_exempt != NULL &&
	    (n = guard_parse_nets(cfg->per_ip_exempt, exempt, GUARD_MAX_NETS,
	    why, sizeof(why))) == -1) {
		/* cfg_load checked it: not expected */
		log_warnx("per_ip_exempt: %s", why);
		n = 0;
	}
	nexempt = n;
	n = 0;
	if (cfg->proxy_protocol_from != NULL &&
	    (n = guard_parse_nets(cfg->proxy_protocol_from, proxies,
	    GUARD_MAX_NETS, why, sizeof(why))) == -1) {
		log_warnx("proxy_protocol_from: %s", why);
		n = 0;
	}
	nproxies = n;
	conn_env_rate(cfg->rate_limit_rps, cfg->rate_limit_burst);
	conn_env_keepalive(cfg->tcp_keepalive_idle, cfg->tcp_keepalive_interval,
	    cfg->tcp_keepalive_count);
	conn_env_sndbuf(cfg->tcp_send_buffer_bytes);
}

/* A balancer's PROXY header named the client: its limits apply. */
static int
admit_proxied(struct conn *c)
{
	uint64_t	 akey;

	akey = guard_addr_key(node->guard, &c->peer, exempt, nexempt);
	if (guard_conn_add(node->guard, my_slot, akey,
	    node->cfg.max_connections_per_ip) == -1) {
		__atomic_add_fetch(&stats->errors, 1, __ATOMIC_RELAXED);
		if (proto_put_refuse(&c->out, PROTO_REFUSE_PER_ADDR) == 0)
			(void)conn_sent(c);
		return -1;
	}
	c->akey = akey;
	return 0;
}

static void
accept_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct sockaddr_storage	 ss;
	socklen_t		 slen;
	struct conn		*c;
	uint64_t		 akey;
	int			 i, fd, one = 1, ws = w == &ws_accept_io;

	for (i = 0; i < ACCEPTS_PER_EVENT; i++) {
		slen = sizeof(ss);
		fd = accept4(w->fd, (struct sockaddr *)&ss, &slen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* else the listener stays ready: 100% CPU */
				log_warn("accept");
				ev_io_stop(l, w);
				ev_timer_start(l, &accept_retry);
			}
			return;
		}
		if (node_connections() >= (uint64_t)node->cfg.max_connections) {
			refuse(fd, PROTO_REFUSE_FULL, ws);
			continue;
		}
		/* a balancer: the client's address comes in its header */
		if (nproxies > 0 && guard_net_find(&ss, proxies, nproxies) !=
		    -1) {
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
			if ((c = conn_new(fd, &ss, 0)) == NULL) {
				refuse(fd, PROTO_REFUSE_FULL, ws);
				continue;
			}
			if (ws && ws_attach(c) == -1) {
				conn_close(c, "out of memory");
				continue;
			}
			conn_expect_proxy(c);
			__atomic_add_fetch(&stats->accepted, 1,
			    __ATOMIC_RELAXED);
			continue;
		}
		/* node-wide, whichever worker the address's others are on */
		akey = guard_addr_key(node->guard, &ss, exempt, nexempt);
		if (guard_conn_add(node->guard, my_slot, akey,
		    node->cfg.max_connections_per_ip) == -1) {
			__atomic_add_fetch(&stats->errors, 1, __ATOMIC_RELAXED);
			refuse(fd, PROTO_REFUSE_PER_ADDR, ws);
			continue;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if ((c = conn_new(fd, &ss, akey)) == NULL) {
			guard_conn_del(node->guard, my_slot, akey);
			refuse(fd, PROTO_REFUSE_FULL, ws);
			continue;
		}
		if (ws && ws_attach(c) == -1) {
			conn_close(c, "out of memory");
			continue;
		}
		__atomic_add_fetch(&stats->accepted, 1, __ATOMIC_RELAXED);
	}
}

static void
accept_retry_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	if (stopping)
		return;
	ev_io_start(l, &accept_io);
	if (node->ws_listen_fds != NULL)
		ev_io_start(l, &ws_accept_io);
}

/* ---- loop housekeeping ------------------------------------------------- */

static void
flush_cb(struct ev_loop *l, ev_prepare *w, int revents)
{
	chat_history_flush_due();
	chat_resume_due();
	chat_leave_due();
	chanq_flush_all();
	conn_flush_all();
	conn_reap();
	if (ev_is_active(&handoff_timer))	/* upgrade: at once when quiet */
		handoff_timer_cb(l, &handoff_timer, 0);
	if (stopping && conn_count() == 0)
		ev_break(l, EVBREAK_ALL);
}

static void
auth_cb(struct ev_loop *l, ev_io *w, int revents)
{
	authpool_complete(auth);
}

static void
storeq_cb(struct ev_loop *l, ev_io *w, int revents)
{
	storeq_complete(w->data);
}

static void
close_one(struct conn *c, void *arg)
{
	conn_close_after_flush(c, arg);
}

static void
close_now(struct conn *c, void *arg)
{
	conn_close(c, arg);
}

/* At exit: what other workers never took is kept for its recipients. */
static void
chanq_store_all(void)
{
	size_t	 n;
	int	 i;

	for (i = 0; i < node->nslots; i++) {
		(void)chanq_drain(&node->chans, &chanqs[i].cq, chanq_keep,
		    "at exit");
		chanq_take_all(&chanqs[i].cq, chanq_keep, "at exit");
	}
	chat_retry_stores();
	if ((n = chat_retry_abandon()) > 0)
		log_warnx("%zu chat(s) lost at exit: the store failed", n);
}

static void
stop_timer_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	ev_break(l, EVBREAK_ALL);
}

static void
worker_stop(const char *why)
{
	if (stopping)
		return;
	stopping = 1;
	log_info("stopping: %s", why);
	ev_io_stop(loop, &accept_io);
	ev_io_stop(loop, &ws_accept_io);
	ev_timer_stop(loop, &accept_retry);
	conn_foreach(close_one, "server stopping");
	ev_timer_init(&stop_timer, stop_timer_cb, STOP_FLUSH_SECONDS, 0.);
	ev_timer_start(loop, &stop_timer);
}

/* ---- binary upgrade: hand every connection to the master -------------- */

#define HANDOFF_CHECK		0.01

/* Everything queued for other workers went out. */
static int
chanqs_empty(void)
{
	int	 i;

	for (i = 0; i < node->nslots; i++)
		if (buf_used(&chanqs[i].cq.q) > 0)
			return 0;
	return 1;
}

static void
handoff_timer_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	/* hand over when quiet; then the store jobs end in the background */
	if (handoff_step(storeq, !chanqs_empty(), handoff_deadline) ==
	    HANDOFF_WAIT)
		return;
	ev_timer_stop(l, w);
	if (!chanqs_empty())
		chanq_store_all();
	chat_retry_stores();
	handoff_exit();
}

/*
 * SIGUSR2 (upgrade): stop reading, finish what was read, write all
 * output, pass every session to the master, exit.  What other workers
 * send meanwhile waits in this slot's channel for the next worker.
 */
static void
worker_handoff(void)
{
	size_t	 ws;

	if (stopping)
		return;
	stopping = 1;
	log_info("upgrade: handing over; no more reading (%zu store jobs "
	    "queued)", storeq_pending(storeq));
	ev_io_stop(loop, &accept_io);
	ev_io_stop(loop, &ws_accept_io);
	ev_timer_stop(loop, &accept_retry);
	ev_io_stop(loop, &chan_io);
	conn_freeze();
	if ((ws = handoff_close_ws()) > 0)
		log_info("upgrade: %zu websocket connections closed (not "
		    "open, or not at a frame boundary)", ws);
	chat_history_flush();
	handoff_deadline = util_mono() + HANDOFF_SECONDS;
	ev_timer_init(&handoff_timer, handoff_timer_cb, HANDOFF_CHECK,
	    HANDOFF_CHECK);
	ev_timer_start(loop, &handoff_timer);
}

static void
master_gone_cb(struct ev_loop *l, ev_io *w, int revents)
{
	char	 c;

	if (read(w->fd, &c, 1) <= 0) {
		ev_io_stop(l, w);
		worker_stop("master exited");
	}
}

/* ---- health (read by the master's /health and chatctl status) --------- */

#define HEALTH_INTERVAL		1.0	/* heartbeat */

/* Add what counter grew by since *seen to the slot's total. */
static void
add_since(uint64_t *total, uint64_t counter, uint64_t *seen)
{
	__atomic_add_fetch(total, counter - *seen, __ATOMIC_RELAXED);
	*seen = counter;
}

static void
health_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	__atomic_store_n(&stats->heartbeat, util_mono_ms(), __ATOMIC_RELAXED);
	if (pubsub != NULL) {
		health_note(&stats->redis_up, &stats->redis_down_since,
		    pubsub_up(pubsub));
		add_since(&stats->bus_rejected, pubsub_rejected(pubsub),
		    &bus_rejected_seen);
		add_since(&stats->redis_failovers, pubsub_failovers(pubsub),
		    &failovers_seen);
		add_since(&stats->bus_unreplicated,
		    pubsub_unreplicated(pubsub), &unreplicated_seen);
	}
	/* not while the last ping failed: each try would wait its timeout */
	if (__atomic_load_n(&stats->store_ok, __ATOMIC_RELAXED) != 0)
		chat_retry_stores();
	chat_history_tick();
	health_store_check(stats, storeq_rd);	/* in a thread */
}

/*
 * The master reloaded: msg holds the keys that may change, as it parsed
 * them (the file is read once, by the master).  gen tells a message
 * queued for this slot's previous worker from a newer one.
 */
static void
reload(uint32_t gen, const char *msg, size_t len)
{
	char	*old_log;

	if ((int32_t)(gen - node->cfg_gen) <= 0)
		return;		/* forked with this one already */
	old_log = strdup(node->cfg.log_file);
	if (cfg_unpack_reload(&node->cfg, msg, len) == -1)
		fatalx("channel: garbled configuration from the master");
	node->cfg_gen = gen;
	/* a new log_file: the master reopened it, so do we (-d: stderr) */
	if (!node->foreground && old_log != NULL &&
	    strcmp(old_log, node->cfg.log_file) != 0 &&
	    log_init(node->cfg.log_file, node->cfg.log_level) == -1)
		log_warn("log %s", node->cfg.log_file);
	free(old_log);
	log_set_level(node->cfg.log_level);
	conn_env_reconfigure(node->cfg.max_output_bytes,
	    cfg_worker_output(&node->cfg), node->cfg.idle_timeout, node->cfg.login_timeout);
	worker_limits(&node->cfg);
	chat_reconfigure(&node->cfg);
	log_info("configuration reloaded");
}

static void
signal_cb(struct ev_loop *l, ev_signal *w, int revents)
{
	switch (w->signum) {
	case SIGTERM:
	case SIGINT:
		worker_stop("signal");
		break;
	case SIGHUP:
		/* the master reads the file and sends it (CHAN_CONFIG) */
		log_info("SIGHUP ignored: reload chatd's master instead");
		break;
	case SIGUSR1:
		log_reopen_said();
		break;
	case SIGUSR2:
		worker_handoff();
		break;
	}
}

/* ---- start ------------------------------------------------------------- */

int
worker_privileges_check(const struct config *cfg, char *err, size_t len)
{
	struct passwd	*pw;

	if (cfg->user != NULL) {
		if ((pw = getpwnam(cfg->user)) == NULL) {
			snprintf(err, len, "user = %s: no such user",
			    cfg->user);
			return -1;
		}
		if (geteuid() != 0 && pw->pw_uid != geteuid()) {
			snprintf(err, len, "user = %s: chatd must be started "
			    "as root to switch to another user", cfg->user);
			return -1;
		}
		if (pw->pw_uid == 0 && !cfg->allow_root) {
			snprintf(err, len, "user = %s is root: workers run "
			    "as root only with allow_root = yes", cfg->user);
			return -1;
		}
		return 0;
	}
	if (geteuid() == 0 && !cfg->allow_root) {
		snprintf(err, len, "refusing to run workers as root: set "
		    "\"user = NAME\" (an unprivileged user) or "
		    "\"allow_root = yes\" in %s", cfg->path != NULL ?
		    cfg->path : "the configuration");
		return -1;
	}
	return 0;
}

int
worker_as_user(const struct config *cfg, int on)
{
	static gid_t	 saved[NGROUPS_MAX], saved_egid;
	static int	 nsaved = -1;
	struct passwd	*pw;

	if (cfg->user == NULL || getuid() != 0)
		return 0;
	if (!on) {
		if (nsaved < 0)
			return 0;
		if (seteuid(0) == -1 || setegid(saved_egid) == -1 ||
		    setgroups(nsaved, saved) == -1)
			fatal("back to root after acting as %s", cfg->user);
		nsaved = -1;
		return 0;
	}
	if ((pw = getpwnam(cfg->user)) == NULL) {
		log_warnx("user = %s: no such user", cfg->user);
		return -1;
	}
	saved_egid = getegid();
	if ((nsaved = getgroups(NGROUPS_MAX, saved)) == -1 ||
	    initgroups(pw->pw_name, pw->pw_gid) == -1 ||
	    setegid(pw->pw_gid) == -1 || seteuid(pw->pw_uid) == -1) {
		log_warn("acting as user %s", cfg->user);
		if (nsaved >= 0)
			(void)worker_as_user(cfg, 0);
		return -1;
	}
	return 0;
}

/*
 * Become the configured user for good: supplementary groups, group,
 * user (real, effective and saved), then prove root cannot come back.
 * What needs root (listening sockets, shared memory, the log file, the
 * pid file) the master opened before forking.
 */
static void
drop_privileges(void)
{
	struct passwd	*pw;
	uid_t		 uid;
	gid_t		 gid;

	if (node->cfg.user == NULL)
		return;
	if ((pw = getpwnam(node->cfg.user)) == NULL) {
		log_warnx("user = %s: no such user", node->cfg.user);
		exit(CHATD_EXIT_FATAL);
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (geteuid() == uid && getegid() == gid)
		return;		/* started as that user already */
	if (initgroups(pw->pw_name, gid) == -1 ||
	    setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		log_warn("dropping privileges to %s", node->cfg.user);
		exit(CHATD_EXIT_FATAL);
	}
	if (getuid() != uid || geteuid() != uid || getgid() != gid ||
	    getegid() != gid)
		fatalx("privileges not dropped to %s", node->cfg.user);
	if (uid != 0 && (setuid(0) != -1 || seteuid(0) != -1))
		fatalx("could become root again after dropping privileges");
	log_debug("running as %s (uid %d, gid %d)", node->cfg.user, (int)uid,
	    (int)gid);
}

static void
worker_init_process(void)
{
	sigset_t	 set;
	int		 i;

	sigemptyset(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
	close(node->master_pipe[1]);
	for (i = 0; i < node->nslots; i++)
		if (i != my_slot) {
			close(node->listen_fds[i]);
			if (node->ws_listen_fds != NULL)
				close(node->ws_listen_fds[i]);
		}
	channel_child_init(&node->chans, my_slot);
	/* the previous worker of this slot took its connections with it */
	guard_slot_reset(node->guard, my_slot);
	drop_privileges();
	/*
	 * A master killed with SIGKILL must not leave orphans serving.
	 * After the drop: changing credentials clears this setting.
	 */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
}

void
worker_main(struct node *n, int slot)
{
	struct store_opts	 opts;
	struct conn_env		 cenv;
	struct chat_env		 chenv;
	char			 role[32], err[256];
	int			 i;

	node = n;
	my_slot = slot;
	snprintf(role, sizeof(role), "worker %d", slot);
	log_set_role(role);
	worker_init_process();
	if (getppid() == 1)
		exit(0);

	stats = online_slot_stats(n->online, slot);
	loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_NOENV);
	if (loop == NULL)
		fatalx("cannot create the event loop");

	memset(&opts, 0, sizeof(opts));
	opts.pool_init = n->cfg.db_pool_init;
	opts.pool_max = n->cfg.db_pool_max;
	opts.pool_idle_sec = n->cfg.db_pool_idle;
	opts.connect_timeout_ms = n->cfg.db_connect_timeout_ms;
	opts.query_timeout_ms = n->cfg.db_query_timeout_ms;
	opts.busy_timeout_ms = n->cfg.sqlite_busy_timeout_ms;
	opts.password = n->cfg.db_password;
	opts.tls = store_tls_mode(n->cfg.db_tls);
	opts.tls_ca = n->cfg.db_tls_ca;
	opts.tls_cert = n->cfg.db_tls_cert;
	opts.tls_key = n->cfg.db_tls_key;
	opts.hist = STORE_HIST_READER;
	if ((store = store_open(n->cfg.storage, &opts, err, sizeof(err))) ==
	    NULL) {
		log_warnx("storage: %s", err);
		exit(CHATD_EXIT_FATAL);
	}
	if ((storeq = storeq_new(n->cfg.storage, &opts, STOREQ_THREADS, err,
	    sizeof(err))) == NULL ||
	    (storeq_rd = storeq_new(n->cfg.storage, &opts, STOREQ_THREADS,
	    err, sizeof(err))) == NULL || (opts.hist = STORE_HIST_WRITER,
	    storeq_hist = storeq_new(n->cfg.storage, &opts, 1, err,
	    sizeof(err))) == NULL || histprio_start(storeq_hist) == -1) {
		log_warnx("storage: %s", err);
		exit(CHATD_EXIT_FATAL);
	}
	if ((auth = authpool_new(1, err, sizeof(err))) == NULL) {
		log_warnx("%s", err);
		exit(CHATD_EXIT_FATAL);
	}
	if ((chanqs = calloc(n->nslots, sizeof(*chanqs))) == NULL ||
	    (chan_rbuf = malloc(n->chans.max_msg)) == NULL)
		fatal("worker");
	for (i = 0; i < n->nslots; i++) {
		chanqs[i].cq.slot = i;
		ev_io_init(&chanqs[i].wio, chanq_write_cb,
		    n->chans.fds[i][1], EV_WRITE);
		chanqs[i].wio.data = &chanqs[i];
	}

	memset(&cenv, 0, sizeof(cenv));
	cenv.loop = loop;
	cenv.handler = &chat_conn_handler;
	cenv.max_frame = n->cfg.max_frame_bytes;
	cenv.max_output = n->cfg.max_output_bytes;
	cenv.max_worker_output = cfg_worker_output(&n->cfg);
	cenv.evicted_count = &stats->output_evictions;
	cenv.proxy_refused_count = &stats->proxy_refused;
	cenv.output_gauge = &stats->output_bytes;
	cenv.idle_timeout = n->cfg.idle_timeout;
	cenv.login_timeout = n->cfg.login_timeout;
	cenv.rate_rps = n->cfg.rate_limit_rps;
	cenv.rate_burst = n->cfg.rate_limit_burst;
	cenv.guard = n->guard;
	cenv.slot = slot;
	cenv.open_count = &stats->connections;
	cenv.admit = admit_proxied;
	cenv.proxy_timeout = n->cfg.proxy_protocol_timeout;
	if (conn_env_init(&cenv) == -1)
		fatal("conn_env_init");
	worker_limits(&n->cfg);

	memset(&chenv, 0, sizeof(chenv));
	chenv.cfg = &n->cfg;
	chenv.store = store;
	chenv.storeq = storeq;
	chenv.storeq_read = storeq_rd;
	chenv.storeq_hist = storeq_hist;
	chenv.online = n->online;
	chenv.online_old = n->online_old;
	chenv.auth = auth;
	chenv.stats = stats;
	chenv.slot = slot;
	chenv.node_id = n->cfg.node_id;
	chenv.to_slot = to_slot;
	chenv.guard = n->guard;
	chenv.handover_keep = ho_keep;
	chenv.handover_drop = ho_drop;
	if (n->cfg.redis != NULL) {
		struct pubsub_handler	 psh;

		memset(&psh, 0, sizeof(psh));
		psh.deliver = chat_remote_deliver;
		psh.lost = chat_presence_lost;
		psh.stored = chat_stored;
		psh.deliver_many = chat_remote_deliver_many;
		psh.login_blocked = chat_login_blocked;
		psh.hist_asked = chat_hist_asked;
		psh.hist_heard = chat_hist_heard;
		psh.hist_answered = chat_hist_answered;
		/* a respawned worker has a new generation: its predecessor's
		 * presence entries are stale at once */
		pubsub = pubsub_new(loop, &n->cfg, n->boot_id, slot,
		    online_slot_gen(n->online, slot), &psh, err, sizeof(err));
		if (pubsub == NULL) {
			log_warnx("%s", err);
			exit(CHATD_EXIT_FATAL);
		}
	}
	chenv.pubsub = pubsub;
	chat_init(&chenv);

	ev_io_init(&accept_io, accept_cb, n->listen_fds[slot], EV_READ);
	if (n->ws_listen_fds != NULL) {
		ws_init(&n->cfg);
		ev_io_init(&ws_accept_io, accept_cb, n->ws_listen_fds[slot],
		    EV_READ);
	}
	ev_timer_init(&accept_retry, accept_retry_cb, 0.1, 0.);
	/* store_open worked: the store answers (the master set "unknown") */
	__atomic_store_n(&stats->store_ok, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&stats->heartbeat, util_mono_ms(), __ATOMIC_RELAXED);
	ev_timer_init(&health_timer, health_cb, HEALTH_INTERVAL,
	    HEALTH_INTERVAL);
	ev_timer_start(loop, &health_timer);
	ev_io_init(&chan_io, chan_read_cb, n->chans.fds[slot][0], EV_READ);
	ev_io_init(&auth_io, auth_cb, authpool_fd(auth), EV_READ);
	ev_io_start(loop, &auth_io);
	WORKER_QUEUE_WATCH(storeq_io, storeq);
	WORKER_QUEUE_WATCH(storeq_rd_io, storeq_rd);
	WORKER_QUEUE_WATCH(storeq_hist_io, storeq_hist);
	ev_io_init(&master_io, master_gone_cb, n->master_pipe[0], EV_READ);
	ev_io_start(loop, &master_io);
	ev_prepare_init(&flush_prep, flush_cb);
	ev_prepare_start(loop, &flush_prep);
	ev_signal_init(&sig_term, signal_cb, SIGTERM);
	ev_signal_init(&sig_int, signal_cb, SIGINT);
	ev_signal_init(&sig_hup, signal_cb, SIGHUP);
	ev_signal_init(&sig_usr1, signal_cb, SIGUSR1);
	ev_signal_init(&sig_usr2, signal_cb, SIGUSR2);
	ev_signal_start(loop, &sig_usr2);
	ev_signal_start(loop, &sig_term);
	ev_signal_start(loop, &sig_int);
	ev_signal_start(loop, &sig_hup);
	ev_signal_start(loop, &sig_usr1);

	ev_io_init(&ho_io, ho_write_cb, handover_worker_fd(), EV_WRITE);
	adopt_all();
	if (handover_prepared()) {
		/* an upgrade: the connections come once the old one let go */
		ev_io_init(&ho_rio, ho_read_cb, handover_worker_fd(), EV_READ);
		ev_io_start(loop, &ho_rio);
		if (handover_worker_ready() == HO_QUEUED)
			ev_io_start(loop, &ho_io);
		log_info("ready (pid %d); waiting for the connections of the "
		    "old binary's worker", (int)getpid());
	} else {
		serve_start();
		log_info("ready (pid %d)", (int)getpid());
	}
	ev_run(loop, 0);

	/* whoever is still connected is logged out before we go */
	conn_foreach(close_now, "exit");
	conn_reap();
	(void)handover_flush();		/* best effort: the sockets are shut */
	/* the loop runs a little longer for Redis: nothing else may stop it */
	ev_prepare_stop(loop, &flush_prep);
	{
		/*
		 * The loop runs while each Redis instance drains in turn:
		 * the health timer must not read the ones already freed.
		 */
		struct pubsub	*ps = pubsub;

		pubsub = NULL;
		pubsub_free(ps);
		chat_pubsub_gone();
	}
	/* the last history rows join the history queue, whose jobs finish */
	chat_history_flush();
	chat_histspool_closing();
	storeq_free(storeq_rd);
	storeq_free(storeq);
	chat_history_flush();	/* what their last jobs kept */
	histprio_boost(1);
	storeq_free(storeq_hist);
	chat_storeq_closed();
	conn_reap();
	chanq_store_all();
	authpool_free(auth);
	store_close(store);
	log_info("exiting");
	exit(0);
}
