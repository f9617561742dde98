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

struct slot {
	pid_t	 pid;		/* 0: not running */
	double	 started;
	double	 respawn_at;	/* 0: nothing scheduled */
	int	 quick_deaths;
	int	 fatal;		/* last exit CHATD_EXIT_FATAL: could not start */
	int	 cfg_pending;	/* the last reload is still to be sent */
	int	 handed;	/* upgrade: the new master has this slot */
	int	 waiting;	/* upgrade: the old master still has it */
};

static struct node	*node;
static struct slot	*slots;
static int		 sigfd = -1;
static int		 stopping;
static double		 stop_deadline;
static struct buf	 cfg_msg = BUF_INIT;	/* the last reload, packed */
static int		 own_fd = -1;	/* the master's alone (pid file lock) */

/*
 * Binary upgrade (upgrade.h).  In the old master: the new one's pid
 * and socket, the slot being handed and what it waits for.  In the new
 * master (up_new): the socket to the old one and the slots it has not
 * passed yet.
 */
enum up_wait { UPW_PREPARED, UPW_WORKER, UPW_TAKEN };
static struct up_stats	 up = { .state = "none" };
static pid_t		 up_pid;
static int		 up_sock = -1;
static double		 up_deadline;
static int		 up_slot;
static enum up_wait	 up_wait;
static int		 up_new, up_left, upgraded;
static pid_t		 up_old_pid;
static double		 up_eof_at;	/* old: the new master's socket ended */
static char		*up_rbuf;

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
		if (up_sock != -1)
			close(up_sock);
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

/* ---- binary upgrade, old master (upgrade.h) ---------------------------- */

static void	up_next_slot(void);

static void
up_close(void)
{
	if (up_sock != -1)
		close(up_sock);
	up_sock = -1;
}

/* The old binary goes on serving; slots already handed start afresh. */
static void
up_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
up_failed(const char *fmt, ...)
{
	va_list	 ap;
	int	 i, lost = 0;

	va_start(ap, fmt);
	vsnprintf(up.error, sizeof(up.error), fmt, ap);
	va_end(ap);
	up.state = "failed";
	up.failed++;
	up_close();
	up_eof_at = 0;
	if (up_pid > 0)
		kill(up_pid, SIGKILL);	/* our child: reaped later */
	for (i = 0; i < node->nslots; i++)
		if (slots[i].handed) {
			slots[i].handed = 0;
			slots[i].respawn_at = util_mono();
			lost = 1;
		}
	ctl_pause(0);
	log_warnx("upgrade failed, the running binary goes on serving: %s%s",
	    up.error, lost ? " (the connections already passed to the new "
	    "master are lost: their workers start afresh)" : "");
}

static void
up_child_exited(int status)
{
	up_pid = 0;
	if (up_sock == -1)
		return;		/* done, or failed already */
	if (WIFSIGNALED(status))
		up_failed("the new binary was killed by signal %d before it "
		    "took over", WTERMSIG(status));
	else
		up_failed("the new binary exited with code %d before it took "
		    "over (its reasons are in the log)", WEXITSTATUS(status));
}

/* chatctl upgrade and SIGUSR2. */
static int
up_begin(struct buf *errs)
{
	char	 err[512];
	int	 ctl_fd, http_fd;

	if (stopping)
		snprintf(err, sizeof(err), "chatd is stopping");
	else if (up_new && up_left > 0)
		snprintf(err, sizeof(err), "this master is still taking over "
		    "from the previous binary");
	else if (up_sock != -1 || up_pid > 0)
		snprintf(err, sizeof(err), "an upgrade is in progress");
	else {
		ctl_listen_fds(&ctl_fd, &http_fd);
		up_pid = upgrade_spawn(node, own_fd, ctl_fd, http_fd, &up,
		    &up_sock, err, sizeof(err));
		if (up_pid > 0) {
			up.state = "starting";
			up.error[0] = '\0';
			up_deadline = util_mono() + UPGRADE_READY_SECONDS;
			return 0;
		}
		up_pid = 0;
		snprintf(up.error, sizeof(up.error), "%s", err);
		up.state = "failed";
		up.failed++;
	}
	log_warnx("upgrade not started: %s", err);
	if (errs != NULL)
		buf_append_str(errs, err);
	return -1;
}

/* Slot's worker is gone: its connections go to the new master. */
static void
up_pass_slot(int i)
{
	ssize_t	 n;

	slots[i].handed = 1;
	slots[i].respawn_at = 0;
	if (upgrade_send(up_sock, UP_BEGIN, (uint32_t)i, NULL) == -1) {
		up_failed("to the new master: %s", strerror(errno));
		return;
	}
	n = handover_pass_slot(i, up_sock, util_mono() + 10);
	if (n == -1 || upgrade_send(up_sock, UP_DONE, (uint32_t)i, NULL) ==
	    -1) {
		up_failed("passing worker %d's connections to the new master",
		    i);
		return;
	}
	up.handed += (uint64_t)n;
	log_notice("upgrade: worker %d: %zd connections passed to the new "
	    "master", i, n);
	up_wait = UPW_TAKEN;
	up_deadline = util_mono() + UPGRADE_SLOT_SECONDS;
}

/* One slot after the other: the old worker hands over, then exits. */
static void
up_next_slot(void)
{
	int	 i;

	if (++up_slot >= node->nslots) {
		up.state = "done";
		up.upgrades++;
		upgraded = 1;
		up_close();
		log_notice("upgrade: every worker handed over; the new master "
		    "(pid %d) serves, this one exits", (int)up_pid);
		return;
	}
	i = up_slot;
	if (slots[i].pid > 0) {
		/* its successor starts first: the clients wait less */
		if (upgrade_send(up_sock, UP_PREPARE, (uint32_t)i, NULL) ==
		    -1) {
			up_failed("to the new master: %s", strerror(errno));
			return;
		}
		up_wait = UPW_PREPARED;
		up_deadline = util_mono() + UPGRADE_SLOT_SECONDS;
	} else
		up_pass_slot(i);	/* what waits for a respawn */
}

/* The new worker of up_slot is ready: the old one hands over. */
static void
up_prepared(void)
{
	int	 i = up_slot;

	if (slots[i].pid == 0) {
		up_pass_slot(i);
		return;
	}
	log_info("upgrade: worker %d (pid %d) stops reading and hands over "
	    "its connections", i, (int)slots[i].pid);
	kill(slots[i].pid, SIGUSR2);
	up_wait = UPW_WORKER;
	up_deadline = util_mono() + UPGRADE_SLOT_SECONDS;
}

/* Messages from the new master. */
static void
up_read_old(void)
{
	struct up_msg	 m;
	char		 b[sizeof(m) + 512];
	ssize_t		 r;

	while (up_sock != -1) {
		r = recv(up_sock, b, sizeof(b) - 1, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno == EAGAIN)
			return;
		if (r <= 0) {
			/* its exit status, when it comes soon, says more */
			up_eof_at = util_mono();
			return;
		}
		if ((size_t)r < sizeof(m))
			continue;
		memcpy(&m, b, sizeof(m));
		b[r] = '\0';
		switch (m.type) {
		case UP_READY:
			if (strcmp(up.state, "starting") != 0)
				break;
			log_notice("upgrade: the new master (pid %d) is "
			    "ready; handing over one worker at a time",
			    (int)up_pid);
			up.state = "handing";
			/* chatctl and /metrics: the new master answers */
			ctl_pause(1);
			up_slot = -1;
			up_next_slot();
			break;
		case UP_FAIL:
			up_failed("%s", b + sizeof(m));
			return;
		case UP_PREPARED:
			if (m.arg == (uint32_t)up_slot &&
			    up_wait == UPW_PREPARED)
				up_prepared();
			break;
		case UP_TAKEN:
			if (m.arg != (uint32_t)up_slot || up_wait != UPW_TAKEN)
				break;
			log_info("upgrade: the new master took worker %d", 
			    up_slot);
			up_next_slot();
			break;
		default:
			break;
		}
	}
}

static void
up_tick(double t)
{
	if (up_sock != -1 && !up_new && up_eof_at > 0 && t > up_eof_at + 2) {
		up_failed("the new master closed its socket");
		return;
	}
	if (up_sock == -1 || up_new || t < up_deadline)
		return;
	if (strcmp(up.state, "starting") == 0)
		up_failed("the new binary did not report ready within %.0f s",
		    UPGRADE_READY_SECONDS);
	else if (up_wait == UPW_PREPARED)
		up_failed("the new master did not start worker %d within %.0f "
		    "s", up_slot, UPGRADE_SLOT_SECONDS);
	else if (up_wait == UPW_WORKER && slots[up_slot].pid > 0) {
		log_warnx("upgrade: worker %d did not hand over within %.0f s; "
		    "killing it (its connections are passed as after a "
		    "crash)", up_slot, UPGRADE_SLOT_SECONDS);
		kill(slots[up_slot].pid, SIGKILL);
		up_deadline = t + UPGRADE_SLOT_SECONDS;
	} else
		up_failed("the new master did not take worker %d within %.0f "
		    "s", up_slot, UPGRADE_SLOT_SECONDS);
}

/* ---- binary upgrade, new master ---------------------------------------- */

void
master_upgrading(int sock, pid_t old_pid, uint64_t upgrades, uint64_t failed,
    uint64_t handed)
{
	up_new = 1;
	up_sock = sock;
	up_old_pid = old_pid;
	up.upgrades = upgrades;
	up.failed = failed;
	up.handed = handed;
	up.state = "taking over";
}

int
master_upgraded(void)
{
	return upgraded;
}

/* The pid file names this master now (its lock came with it). */
static void
pid_write(void)
{
	char	 line[32];
	int	 len;

	len = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	if (own_fd == -1 || ftruncate(own_fd, 0) == -1 ||
	    pwrite(own_fd, line, len, 0) != len)
		log_warn("upgrade: writing the pid file");
}

/* Every slot is ours: the old master exits (or is gone). */
static void
up_complete(int ok)
{
	int	 i;

	for (i = 0; i < node->nslots; i++)
		if (slots[i].waiting) {
			slots[i].waiting = 0;
			slots[i].respawn_at = util_mono();
		}
	up_left = 0;
	up_close();
	free(up_rbuf);
	up_rbuf = NULL;
	/* the control socket's path is this master's to remove now */
	ctl_keep_path(0);
	pid_write();
	if (ok) {
		up.upgrades++;
		up.state = "done";
		log_notice("upgrade: complete; this master serves every worker "
		    "(the old one, pid %d, exits)", (int)up_old_pid);
	} else {
		up.failed++;
		up.state = "done";
		snprintf(up.error, sizeof(up.error), "the old master ended "
		    "before it had handed over every worker");
		log_warnx("upgrade: %s; the rest start afresh", up.error);
	}
}

/* Slot's connections to the worker waiting for them, or a new one. */
static void
up_forward(struct node *n, int i)
{
	if (slots[i].pid == 0) {
		if (spawn(n, i) == -1)
			slots[i].respawn_at = util_mono() + 1;
		return;
	}
	if (handover_forward(i, util_mono() + 10) == -1) {
		/* its replacement adopts them from us, as after a crash */
		log_warn("upgrade: passing worker %d its connections", i);
		kill(slots[i].pid, SIGKILL);
	}
	handover_spawned(i, util_mono());
}

/* Messages and connections from the old master. */
static void
up_read_new(struct node *n)
{
	union {
		struct cmsghdr	 h;
		char		 b[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct msghdr	 mh;
	struct cmsghdr	*cm;
	struct iovec	 iov;
	struct up_msg	 m;
	ssize_t		 r;
	int		 fd, i;

	while (up_sock != -1) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = up_rbuf;
		iov.iov_len = sizeof(m) + HANDOVER_MAX_RECORD;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf.b;
		mh.msg_controllen = sizeof(cbuf.b);
		r = recvmsg(up_sock, &mh, MSG_CMSG_CLOEXEC);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno == EAGAIN)
			return;
		if (r <= 0) {
			up_complete(0);
			return;
		}
		fd = -1;
		for (cm = CMSG_FIRSTHDR(&mh); cm != NULL;
		    cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_SOCKET &&
			    cm->cmsg_type == SCM_RIGHTS &&
			    cm->cmsg_len == CMSG_LEN(sizeof(int)))
				memcpy(&fd, CMSG_DATA(cm), sizeof(int));
		if ((size_t)r < sizeof(m) || (mh.msg_flags & (MSG_TRUNC |
		    MSG_CTRUNC)) != 0) {
			log_warnx("upgrade: truncated message from the old "
			    "master");
			if (fd != -1)
				close(fd);
			continue;
		}
		memcpy(&m, up_rbuf, sizeof(m));
		i = (int)m.arg;
		switch (m.type) {
		case HANDOVER_MSG_KEEP:
			if (up_slot < 0 || up_slot >= n->nslots ||
			    !slots[up_slot].waiting || fd == -1) {
				if (fd != -1)
					close(fd);
				break;
			}
			if (handover_hold(up_slot, m.arg, up_rbuf + sizeof(m),
			    (size_t)r - sizeof(m), fd) == 0)
				up.handed++;
			fd = -1;
			break;
		case UP_BEGIN:
			up_slot = m.arg < (uint32_t)n->nslots ? i : -1;
			break;
		case UP_PREPARE:
			if (m.arg >= (uint32_t)n->nslots || !slots[i].waiting)
				break;
			/* it waits for the connections (handover.h) */
			handover_prepare(i, 1);
			if (slots[i].pid != 0 || spawn(n, i) == -1)
				(void)upgrade_send(up_sock, UP_PREPARED,
				    m.arg, NULL);
			handover_prepare(i, 0);
			break;
		case UP_DONE:
			if (m.arg >= (uint32_t)n->nslots || !slots[i].waiting)
				break;
			slots[i].waiting = 0;
			log_notice("upgrade: worker %d: %zu connections taken "
			    "over from the old master", i, handover_held(i));
			up_forward(n, i);
			(void)upgrade_send(up_sock, UP_TAKEN, m.arg, NULL);
			if (--up_left == 0)
				up_complete(1);
			break;
		default:
			break;
		}
		if (fd != -1)
			close(fd);
	}
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
		if (pid == up_pid && up_pid > 0) {
			up_child_exited(status);
			continue;
		}
		if ((i = slot_of(n, pid)) == -1)
			continue;
		slots[i].pid = 0;
		__atomic_store_n(&online_slot_stats(n->online, i)->pid, 0,
		    __ATOMIC_RELAXED);
		/* its users are offline now, not when someone notices; the
		 * replacement adds those it adopts again */
		online_slot_reset(n->online, i);
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
		if (!stopping && up_sock != -1 && !up_new && i == up_slot &&
		    up_wait == UPW_WORKER) {
			/* its connections go to the new master (upgrade) */
			if (!WIFEXITED(status) ||
			    WEXITSTATUS(status) != CHATD_EXIT_HANDED)
				log_warnx("upgrade: worker %d died while "
				    "handing over: its connections are passed "
				    "as after a crash", i);
			handover_read(i, online_slot_stats(n->online, i));
			up_pass_slot(i);
			continue;
		}
		(void)handover_worker_died(i, stopping, util_mono(),
		    online_slot_stats(n->online, i));
		if (stopping)
			continue;
		if (up_new && slots[i].waiting) {
			/* started early, died early: one is forked at the end */
			slots[i].respawn_at = 0;
			if (up_sock != -1)
				(void)upgrade_send(up_sock, UP_PREPARED,
				    (uint32_t)i, NULL);
			continue;
		}
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
	if (!up_new && up_sock != -1)
		up_failed("chatd is stopping");
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
	if (slots[i].pid > 0)
		return "running";
	if (slots[i].handed)
		return "handed over";
	if (slots[i].waiting)
		return "taking over";
	if (slots[i].respawn_at > 0 && !stopping)
		return slots[i].fatal ? "retrying" : "respawning";
	return "stopped";
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
		(void)up_begin(NULL);
		break;
	case SIGUSR1:
		if (log_reopen() == -1)
			log_warn("reopening the log");
		else
			log_info("log file reopened");
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

static const struct up_stats *
up_stats_get(void)
{
	return &up;
}

int
master_init(struct node *n, int ctl_fd, int http_fd)
{
	struct ctl_env	 env;
	char		 err[512];

	node = n;
	memset(&env, 0, sizeof(env));
	env.node = n;
	env.started = time(NULL);
	env.slot_state = slot_state;
	env.reload = reload;
	env.stop = ctl_stop;
	env.upgrade = up_begin;
	env.upgrade_stats = up_stats_get;
	env.ctl_fd = ctl_fd;
	env.http_fd = http_fd;
	if (ctl_init(&env, err, sizeof(err)) == -1) {
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
	struct pollfd	 pfd[2 + ONLINE_MAX_SLOTS + CTL_MAX_POLLFDS];
	sigset_t	 set;
	double		 t;
	char		 err[256];
	int		 i, nfd, nho, rc, exit_code = 0, ever_ready = 0;
	int		 upi, base;

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
	if (up_new) {
		/* each slot starts when the old master has passed it */
		for (i = 0; i < n->nslots; i++)
			slots[i].waiting = 1;
		up_left = n->nslots;
		up_slot = -1;
		if ((up_rbuf = malloc(sizeof(struct up_msg) +
		    HANDOVER_MAX_RECORD)) == NULL ||
		    upgrade_send(up_sock, UP_READY, 0, NULL) == -1) {
			log_warn("upgrade: telling the old master");
			up_complete(0);
		} else
			log_notice("upgrade: ready; the old master (pid %d) "
			    "hands its workers over", (int)up_old_pid);
	}
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
		if (up_sock != -1 && up_eof_at == 0) {
			upi = base++;
			pfd[upi].fd = up_sock;
			pfd[upi].events = POLLIN;
			pfd[upi].revents = 0;
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
				if (handover_take_ready(i) && up_new &&
				    up_sock != -1 && slots[i].waiting)
					(void)upgrade_send(up_sock,
					    UP_PREPARED, (uint32_t)i, NULL);
			}
		if (rc > 0 && upi != -1 && pfd[upi].revents != 0 &&
		    pfd[upi].fd == up_sock) {
			if (up_new)
				up_read_new(n);
			else
				up_read_old();
		}
		if (rc > 0)
			ctl_events(pfd + base, nfd - base);
		else
			ctl_events(pfd + base, 0);
		/* a SIGCHLD may have been merged with another signal */
		reap(n);
		t = util_mono();
		up_tick(t);
		if (upgraded && running(n) == 0)
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
		if (i == n->nslots && !ever_ready && !up_new) {
			log_warnx("no worker could start; exiting");
			exit_code = 1;
			break;
		}
	}
	if (upgraded)
		ctl_keep_path(1);	/* the new master's now */
	if (up_sock != -1 && !up_new)
		up_failed("chatd exits");
	up_close();
	free(up_rbuf);
	up_rbuf = NULL;
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
