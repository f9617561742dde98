/*
 * master.c - spawn, reap and respawn workers; reload; stop; and serve
 * the control plane (ctl.c: chatctl socket, metrics and health).
 *
 * One poll(2) loop.  Signals are blocked and read from a signalfd, so
 * they are handled synchronously between two polls, like any other
 * event: there are no signal handlers at all.  No libev, no database,
 * no Redis in this process.
 */
#include "config.h"

#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "handover.h"
#include "log.h"
#include "master.h"
#include "master_impl.h"
#include "upgrade.h"
#include "util.h"
#include "worker.h"

/*
 * A worker that dies sooner than this after start is throttled (a crash
 * at start-up); one that served for longer is replaced at once, even
 * when killed again and again.
 */
#define QUICK_DEATH_SECONDS	0.5
#define RESPAWN_DELAY_MAX	10.0
#define LISTENER_CLOSE_SECONDS	1.0	/* a respawn delay that closes it */
#define STOP_GRACE_SECONDS	10.0
#define POLL_MAX_MS		1000

static struct node	*node;
static struct slot	*slots;
static int		 sigfd = -1;
static int		 stopping;
static double		 stop_deadline;
static struct buf	 cfg_msg = BUF_INIT;	/* the last reload, packed */
static int		 own_fd = -1;	/* the master's alone (pid file lock) */

void
master_own_fd(int fd)
{
	own_fd = fd;
}

/*
 * After the privilege drop a port below 1024 cannot be bound again:
 * such a listener stays open while its slot waits for a worker (the
 * kernel queues connections there until the backlog is full).
 */
static int
rebindable(int port)
{
	return port >= 1024 || geteuid() == 0;
}

int
master_listen(const char *what, const char *host, int portnum, char *err,
    size_t errlen)
{
	struct addrinfo	 hints, *res, *ai;
	char		 port[16];
	int		 fd = -1, one = 1, e = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", portnum);
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s %s:%d: %s", what, host, portnum,
		    gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			e = errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one)) == -1 ||
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
		    sizeof(one)) == -1 ||
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
		    listen(fd, 4096) == -1) {
			e = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd == -1)
		snprintf(err, errlen, "%s %s:%d: %s", what, host, portnum,
		    strerror(e));
	return fd;
}

/* The slot has no worker for a while: connections go to the others. */
static void
listener_close(struct node *n, int i)
{
	if (!rebindable(n->cfg.listen_port) || (n->ws_listen_fds != NULL &&
	    !rebindable(n->cfg.websocket_port)))
		return;
	if (n->ws_listen_fds != NULL && n->ws_listen_fds[i] != -1) {
		close(n->ws_listen_fds[i]);
		n->ws_listen_fds[i] = -1;
	}
	if (n->listen_fds[i] == -1)
		return;
	close(n->listen_fds[i]);
	n->listen_fds[i] = -1;
	log_info("worker %d: listener closed until it is back", i);
}

static int
spawn(struct node *n, int i)
{
	struct online_slot_stats	*st = online_slot_stats(n->online, i);
	char				 err[256];
	pid_t				 pid;

	if (n->listen_fds[i] == -1 &&
	    (n->listen_fds[i] = master_listen("listen", n->cfg.listen_host,
	    n->cfg.listen_port, err, sizeof(err))) == -1) {
		log_warnx("worker %d: %s", i, err);
		return -1;
	}
	if (n->ws_listen_fds != NULL && n->ws_listen_fds[i] == -1 &&
	    (n->ws_listen_fds[i] = master_listen("websocket_listen",
	    n->cfg.websocket_host, n->cfg.websocket_port, err,
	    sizeof(err))) == -1) {
		log_warnx("worker %d: %s", i, err);
		return -1;
	}

	/* before the fork: the worker overwrites them once it runs */
	__atomic_store_n(&st->redis_up, -1, __ATOMIC_RELAXED);
	__atomic_store_n(&st->store_ok, -1, __ATOMIC_RELAXED);
	__atomic_store_n(&st->heartbeat, util_mono_ms(), __ATOMIC_RELAXED);
	__atomic_store_n(&st->output_bytes, 0, __ATOMIC_RELAXED);
	switch ((pid = fork())) {
	case -1:
		log_warn("fork worker %d", i);
		return -1;
	case 0:
		/* the master's descriptors are none of the worker's business */
		close(sigfd);
		if (own_fd != -1)
			close(own_fd);
		up_child();
		ctl_child();
		handover_child(i);
		worker_main(n, i);
		/* NOTREACHED */
	default:
		break;
	}
	slots[i].pid = pid;
	slots[i].started = util_mono();
	handover_spawned(i, slots[i].started);
	slots[i].respawn_at = 0;
	__atomic_store_n(&st->pid, pid, __ATOMIC_RELAXED);
	__atomic_store_n(&st->started, (uint64_t)time(NULL),
	    __ATOMIC_RELAXED);
	log_info("worker %d started, pid %d", i, (int)pid);
	return 0;
}

static int
slot_of(struct node *n, pid_t pid)
{
	int	 i;

	for (i = 0; i < n->nslots; i++)
		if (slots[i].pid == pid)
			return i;
	return -1;
}

static void
reap(struct node *n)
{
	pid_t	 pid;
	int	 status, i;
	double	 lived, delay;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (up_reaped(pid, status))
			continue;
		if ((i = slot_of(n, pid)) == -1)
			continue;
		slots[i].pid = 0;
		/* its users are offline now, not when someone notices; the
		 * replacement adds those it adopts again */
		if (!up_slot_moving(i)) {
			__atomic_store_n(&online_slot_stats(n->online, i)->pid,
			    0, __ATOMIC_RELAXED);
			online_slot_reset(n->online, i);
		}
		if (WIFSIGNALED(status))
			log_warnx("worker %d (pid %d) exited on signal %d",
			    i, (int)pid, WTERMSIG(status));
		else if (WEXITSTATUS(status) == CHATD_EXIT_HANDED)
			log_info("worker %d (pid %d) handed its connections "
			    "over and exited", i, (int)pid);
		else if (WEXITSTATUS(status) != 0 || !stopping)
			log_warnx("worker %d (pid %d) exited with code %d",
			    i, (int)pid, WEXITSTATUS(status));
		else
			log_info("worker %d (pid %d) exited", i, (int)pid);
		if (!stopping && up_worker_gone(i, status))
			continue;	/* its connections went to the new master */
		(void)handover_worker_died(i, stopping, util_mono(),
		    online_slot_stats(n->online, i));
		if (stopping)
			continue;
		if (up_prepared_gone(i))
			continue;
		lived = util_mono() - slots[i].started;
		/* could not start (storage down ...): retried, backing off */
		slots[i].fatal = WIFEXITED(status) &&
		    WEXITSTATUS(status) == CHATD_EXIT_FATAL;
		if (lived < QUICK_DEATH_SECONDS || slots[i].fatal)
			slots[i].quick_deaths++;
		else
			slots[i].quick_deaths = 0;
		/* a worker that keeps dying at start is not respawned in a
		 * tight loop: 0.1 s, 0.2 s, 0.4 s ... up to 10 s */
		delay = 0;
		if (slots[i].quick_deaths > 0) {
			delay = 0.05 * (1 << (slots[i].quick_deaths < 8 ?
			    slots[i].quick_deaths : 8));
			if (delay > RESPAWN_DELAY_MAX)
				delay = RESPAWN_DELAY_MAX;
		}
		slots[i].respawn_at = util_mono() + delay;
		if (slots[i].fatal)
			log_warnx("worker %d failed to start; next try in "
			    "%.1f s", i, delay);
		/*
		 * Nobody will serve the slot for a while: its listener goes,
		 * so that no connection waits for it.  A short throttle keeps
		 * it, and the connections queued there, for the next worker.
		 */
		if (slots[i].fatal || delay >= LISTENER_CLOSE_SECONDS)
			listener_close(n, i);
	}
}

static void
signal_workers(struct node *n, int sig)
{
	int	 i;

	for (i = 0; i < n->nslots; i++)
		if (slots[i].pid > 0)
			kill(slots[i].pid, sig);
}

static int
running(struct node *n)
{
	int	 i, r = 0;

	for (i = 0; i < n->nslots; i++)
		r += slots[i].pid > 0;
	return r;
}

/*
 * Send the packed configuration to the workers that still wait for it;
 * one whose channel is full gets it on a later turn of the loop.
 */
static void
send_config(struct node *n)
{
	struct chan_hdr	 h;
	enum chan_send	 rc;
	int		 i;

	memset(&h, 0, sizeof(h));
	h.type = CHAN_CONFIG;
	h.gen = n->cfg_gen;
	h.from_slot = UINT32_MAX;
	h.len = buf_used(&cfg_msg);
	for (i = 0; i < n->nslots; i++) {
		if (!slots[i].cfg_pending)
			continue;
		if (slots[i].pid == 0) {
			slots[i].cfg_pending = 0;	/* respawns with it */
			continue;
		}
		rc = channel_send(&n->chans, i, &h, buf_head(&cfg_msg));
		if (rc == CHANSEND_AGAIN)
			continue;
		if (rc == CHANSEND_ERR)
			log_warn("configuration to worker %d (restart it to "
			    "apply the reload)", i);
		slots[i].cfg_pending = 0;
	}
}

/*
 * SIGHUP and chatctl reload: read the file again; keep the running
 * configuration if it has errors (then in errs, when not NULL).  The
 * master parses it, once; the workers get the result over their channel.
 */
static int
reload(struct buf *errs_out)
{
	struct node	*n = node;
	struct config	 next;
	struct buf	 errs = BUF_INIT;
	char		*old_log;
	int		 i;

	if (stopping) {
		if (errs_out != NULL)
			buf_append_str(errs_out, "chatd is stopping");
		return -1;
	}
	memset(&next, 0, sizeof(next));
	if (cfg_load(&next, n->config_path, &errs) == -1) {
		while (buf_used(&errs) > 0 &&
		    buf_head(&errs)[buf_used(&errs) - 1] == '\n')
			errs.len--;
		log_warnx("reload failed, keeping the old configuration: %.*s",
		    (int)buf_used(&errs), buf_head(&errs));
		if (errs_out != NULL)
			buf_append(errs_out, buf_head(&errs), buf_used(&errs));
		cfg_free(&next);
		buf_free(&errs);
		return -1;
	}
	old_log = strdup(n->cfg.log_file);
	cfg_apply_reload(&n->cfg, &next);
	cfg_free(&next);
	buf_free(&errs);
	/* a new log_file is opened now (with -d the log stays on stderr) */
	if (!n->foreground && old_log != NULL &&
	    strcmp(old_log, n->cfg.log_file) != 0) {
		log_notice("logging to %s from now on", n->cfg.log_file);
		if (log_init(n->cfg.log_file, n->cfg.log_level) == -1)
			log_warn("log %s; still logging to %s",
			    n->cfg.log_file, old_log);
	}
	free(old_log);
	log_set_level(n->cfg.log_level);
	log_notice("configuration reloaded");
	n->cfg_gen++;
	buf_consume(&cfg_msg, buf_used(&cfg_msg));
	if (cfg_pack_reload(&n->cfg, &cfg_msg) == -1) {
		log_warnx("reload: out of memory packing the configuration");
		return 0;
	}
	for (i = 0; i < n->nslots; i++)
		slots[i].cfg_pending = 1;
	send_config(n);
	return 0;
}

static void
stop(const char *why)
{
	if (stopping)
		return;
	log_notice("stopping (%s)", why);
	up_abort("chatd is stopping");
	stopping = 1;
	stop_deadline = util_mono() + STOP_GRACE_SECONDS;
	signal_workers(node, SIGTERM);
}

static void
ctl_stop(void)
{
	stop("chatctl stop");
}

static const char *
slot_state(int i)
{
	if (i < 0 || i >= node->nslots)
		return "none";
	/* tried again after it could not start: nothing served until its
	 * store opened (a try lasts up to the store's connect timeout) */
	if (slots[i].pid > 0)
		return slots[i].fatal && __atomic_load_n(&online_slot_stats(
		    node->online, i)->store_ok, __ATOMIC_RELAXED) == -1 ?
		    "retrying" : "running";
	if (slots[i].handed)
		return "handed over";
	if (slots[i].waiting)
		return "taking over";
	if (slots[i].respawn_at > 0 && !stopping)
		return slots[i].fatal ? "retrying" : "respawning";
	return "stopped";
}

/* chatctl upgrade and SIGUSR2 (master_upgrade.c). */
static int
upgrade_request(struct buf *errs)
{
	if (!stopping)
		return up_begin(errs);
	log_warnx("upgrade not started: chatd is stopping");
	if (errs != NULL)
		buf_append_str(errs, "chatd is stopping");
	return -1;
}

static void
handle_signal(int sig)
{
	char	 why[32];

	switch (sig) {
	case SIGCHLD:
		break;			/* reaped after every wake-up */
	case SIGTERM:
	case SIGINT:
	case SIGQUIT:
		snprintf(why, sizeof(why), "signal %d", sig);
		stop(why);
		break;
	case SIGHUP:
		if (!stopping)
			(void)reload(NULL);
		break;
	case SIGUSR2:
		log_notice("upgrade requested (SIGUSR2)");
		(void)upgrade_request(NULL);
		break;
	case SIGUSR1:
		log_reopen_said();
		signal_workers(node, SIGUSR1);
		break;
	default:
		break;
	}
}

static void
read_signals(void)
{
	struct signalfd_siginfo	 si[8];
	ssize_t			 r;
	size_t			 i;

	for (;;) {
		r = read(sigfd, si, sizeof(si));
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return;		/* EAGAIN: all taken */
		for (i = 0; i < (size_t)r / sizeof(si[0]); i++)
			handle_signal((int)si[i].ssi_signo);
	}
}

int
master_init(struct node *n, int ctl_fd, int http_fd, char *err,
    size_t errlen)
{
	struct ctl_env	 env;

	node = n;
	memset(&env, 0, sizeof(env));
	env.node = n;
	env.started = time(NULL);
	env.slot_state = slot_state;
	env.reload = reload;
	env.stop = ctl_stop;
	env.upgrade = upgrade_request;
	env.upgrade_stats = up_stats_get;
	env.ctl_fd = ctl_fd;
	env.http_fd = http_fd;
	if (ctl_init(&env, err, errlen) == -1) {
		log_warnx("%s", err);
		return -1;
	}
	return 0;
}

/* ms until the next thing the loop must do by itself. */
static int
poll_timeout(struct node *n, double t)
{
	double	 next = POLL_MAX_MS / 1000.0, d;
	int	 i, ms;

	if (stopping)
		next = 0.1;
	for (i = 0; i < n->nslots && !stopping; i++)
		if (slots[i].cfg_pending)
			next = 0.05;	/* a full channel drains soon */
	for (i = 0; i < n->nslots && !stopping; i++) {
		if (slots[i].pid != 0 || slots[i].respawn_at <= 0)
			continue;
		d = slots[i].respawn_at - t;
		if (d < next)
			next = d > 0 ? d : 0;
	}
	ms = (int)(next * 1000) + 1;
	if ((i = ctl_expire(t)) >= 0 && i < ms)
		ms = i;
	return ms;
}

int
master_run(struct node *n)
{
	struct pollfd	 pfd[3 + ONLINE_MAX_SLOTS + CTL_MAX_POLLFDS];
	sigset_t	 set;
	double		 t;
	char		 err[256];
	int		 i, nfd, nho, rc, exit_code = 0, ever_ready = 0;
	int		 upi, mi, base;

	node = n;
	log_set_role("master");
	if ((slots = calloc(n->nslots, sizeof(*slots))) == NULL)
		fatal("master");

	/* taken from the signalfd only: no handlers, no races */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");

	/* the workers pass their client sockets here (crash handover) */
	if (handover_init(n->nslots, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		free(slots);
		slots = NULL;
		return 1;
	}
	up_init(n, slots, own_fd, spawn);
	up_run_start();
	for (i = 0; i < n->nslots; i++)
		if (!slots[i].waiting && spawn(n, i) == -1)
			slots[i].respawn_at = util_mono() + 1;

	nho = n->nslots;
	for (;;) {
		pfd[0].fd = sigfd;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		for (i = 0; i < nho; i++) {
			pfd[1 + i].fd = handover_fd(i);
			pfd[1 + i].events = POLLIN;
			pfd[1 + i].revents = 0;
		}
		base = 1 + nho;
		upi = -1;
		if (up_pollfd() != -1) {
			upi = base++;
			pfd[upi].fd = up_pollfd();
			pfd[upi].events = POLLIN;
			pfd[upi].revents = 0;
		}
		mi = -1;
		if (merge_pollfd() != -1) {	/* fewer workers (upgrade) */
			mi = base++;
			pfd[mi].fd = merge_pollfd();
			pfd[mi].events = POLLIN;
			pfd[mi].revents = 0;
		}
		nfd = base + ctl_pollfds(pfd + base, CTL_MAX_POLLFDS);
		rc = poll(pfd, nfd, poll_timeout(n, util_mono()));
		if (rc == -1 && errno != EINTR)
			fatal("poll");
		if (rc > 0 && pfd[0].revents != 0)
			read_signals();
		for (i = 0; rc > 0 && i < nho; i++)
			if (pfd[1 + i].revents != 0) {
				handover_read(i, online_slot_stats(n->online,
				    i));
				/* a worker started early is ready (upgrade) */
				up_worker_said(i);
			}
		if (rc > 0 && upi != -1 && pfd[upi].revents != 0 &&
		    pfd[upi].fd == up_pollfd())
			up_events();
		if (rc > 0 && mi != -1 && pfd[mi].revents != 0)
			merge_relay();
		if (rc > 0)
			ctl_events(pfd + base, nfd - base);
		else
			ctl_events(pfd + base, 0);
		/* a SIGCHLD may have been merged with another signal */
		reap(n);
		t = util_mono();
		up_tick(t);
		if (master_upgraded() && running(n) == 0)
			break;		/* the new master serves */
		if (stopping) {
			if (running(n) == 0)
				break;
			if (t > stop_deadline) {
				log_warnx("workers did not stop in time; "
				    "killing them");
				signal_workers(n, SIGKILL);
				stop_deadline = t + 5;
			}
			continue;
		}
		send_config(n);
		for (i = 0; i < n->nslots; i++)
			if (slots[i].pid == 0 && slots[i].respawn_at > 0 &&
			    t >= slots[i].respawn_at)
				if (spawn(n, i) == -1)
					slots[i].respawn_at = t + 1;
		/*
		 * At start, when no worker could start at all, the operator
		 * hears it from the exit status; once the node has served,
		 * workers that fail to start are retried for ever.
		 */
		for (i = 0; i < n->nslots && !ever_ready; i++)
			if (slots[i].pid > 0 && __atomic_load_n(
			    &online_slot_stats(n->online, i)->store_ok,
			    __ATOMIC_RELAXED) != -1)
				ever_ready = 1;
		for (i = 0; i < n->nslots; i++)
			if (!slots[i].fatal)
				break;
		if (i == n->nslots && !ever_ready && !up_is_new()) {
			log_warnx("no worker could start; exiting");
			exit_code = 1;
			break;
		}
	}
	up_end();
	ctl_shutdown();
	handover_shutdown();
	close(sigfd);
	sigfd = -1;
	free(slots);
	slots = NULL;
	buf_free(&cfg_msg);
	log_notice("exiting");
	return exit_code;
}
