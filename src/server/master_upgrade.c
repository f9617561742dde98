/*
 * master_upgrade.c - the masters' side of a binary upgrade (upgrade.h
 * has the plumbing and the protocol): in the old master, start the new
 * binary and hand it one worker slot after the other; in the new one,
 * take them, starting each slot's worker before its connections come.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "handover.h"
#include "log.h"
#include "master.h"
#include "master_impl.h"
#include "upgrade.h"
#include "util.h"

/* master.c's, lent by up_init */
static struct node	*node;
static struct slot	*slots;
static int		 own_fd = -1;
static int		(*spawn)(struct node *, int);

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
static int		 up_old_nslots;	/* new: the slots the old master hands */
static pid_t		 up_old_pid;
static double		 up_eof_at;	/* old: the new master's socket ended */
/* old: the new master's worker for the slot is ready (UP_PREPARED) */
static unsigned char	 up_prep[ONLINE_MAX_SLOTS];
static char		*up_rbuf;

void
up_init(struct node *n, struct slot *s, int pidfd,
    int (*spawn_fn)(struct node *, int))
{
	node = n;
	slots = s;
	own_fd = pidfd;
	spawn = spawn_fn;
}

const struct up_stats *
up_stats_get(void)
{
	return &up;
}

/* ---- old master -------------------------------------------------------- */

static void	up_next_slot(void);
static void	up_prepared(void);

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
			/* kept valid while they moved: nobody serves them now */
			online_slot_reset(node->online, i);
			lost = 1;
		}
	/* a new master that grew the table's slot bound (more workers) */
	(void)online_set_slots(node->online, node->nslots);
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

int
up_begin(struct buf *errs)
{
	char	 err[512];
	int	 ctl_fd, http_fd;

	if (up_new && up_left > 0)
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

/*
 * Slot's worker is gone: its connections go to the new master.  live:
 * it handed them over at a frame boundary, so their session table
 * entries stay valid (chats for them wait in the slot's channel for
 * the new worker, rather than being stored for away users and fetched
 * again); else (it died, or was gone) they are away until adopted.
 */
static void
up_pass_slot(int i, int live)
{
	ssize_t	 n;

	slots[i].handed = 1;
	slots[i].respawn_at = 0;
	if (live)	/* the adopter counts them again */
		__atomic_store_n(&online_slot_stats(node->online,
		    i)->connections, 0, __ATOMIC_RELAXED);
	else
		online_slot_reset(node->online, i);
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
		/* its successor was started first (up_prepare_all) */
		up_wait = UPW_PREPARED;
		up_deadline = util_mono() + UPGRADE_SLOT_SECONDS;
		if (up_prep[i])
			up_prepared();
	} else
		up_pass_slot(i, 0);	/* what waits for a respawn */
}

/*
 * Every successor starts before the first slot moves: a worker starting
 * (its store opened, its threads) takes the CPU from the one adopting
 * connections, and from the clients that wait for it.
 */
static int
up_prepare_all(void)
{
	int	 i;

	memset(up_prep, 0, sizeof(up_prep));
	for (i = 0; i < node->nslots; i++)
		if (slots[i].pid > 0 && upgrade_send(up_sock, UP_PREPARE,
		    (uint32_t)i, NULL) == -1) {
			up_failed("to the new master: %s", strerror(errno));
			return -1;
		}
	return 0;
}

/* The new worker of up_slot is ready: the old one hands over. */
static void
up_prepared(void)
{
	int	 i = up_slot;

	if (slots[i].pid == 0) {
		up_pass_slot(i, 0);
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
			if (up_prepare_all() == 0)
				up_next_slot();
			break;
		case UP_FAIL:
			up_failed("%s", b + sizeof(m));
			return;
		case UP_PREPARED:
			if (m.arg < (uint32_t)node->nslots)
				up_prep[m.arg] = 1;
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

void
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

/* ---- new master -------------------------------------------------------- */

void
master_upgrading(int sock, pid_t old_pid, int old_nslots, uint64_t upgrades,
    uint64_t failed, uint64_t handed)
{
	up_new = 1;
	up_old_nslots = old_nslots;
	up_sock = sock;
	up_old_pid = old_pid;
	up.upgrades = upgrades;
	up.failed = failed;
	up.handed = handed;
	up.state = "taking over";
	if (upgrade_cfg_new_table())
		handover_new_table();
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
			if (i >= up_old_nslots)
				log_notice("upgrade: worker %d is new (workers "
				    "= %d): it starts empty", i, node->nslots);
			merge_relay_start(i);
		}
	up_left = 0;
	up_close();
	/* a replaced session table: nobody maps it by name any more */
	upgrade_cfg_done(node);
	free(up_rbuf);
	up_rbuf = NULL;
	/* from now on an ordinary master, which may be upgraded in turn */
	up_new = 0;
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

/*
 * Old slot i is all here, for remaining slot j (i itself, unless there
 * are fewer workers now).  Slot j's worker gets what is held once the
 * last old slot that joins it is here.
 */
static void
up_slot_done(int i, int j)
{
	if (i != j) {
		/* (the new table has no entries of it: upgrade_cfg.c) */
		log_notice("upgrade: worker %d (removed): its connections "
		    "join worker %d", i, j);
	}
	if (merge_last(j) != i) {
		log_notice("upgrade: worker %d: %zu connections taken over, "
		    "held until those of worker %d join them", j,
		    handover_held(j), merge_last(j));
		return;
	}
	slots[j].waiting = 0;
	log_notice("upgrade: worker %d: %zu connections taken over from the "
	    "old master", j, handover_held(j));
	up_forward(node, j);
	merge_relay_start(j);
}

/* Messages and connections from the old master. */
static void
up_read_new(void)
{
	struct up_msg	 m;
	ssize_t		 r;
	uint32_t	 conn;
	int		 fd, i, j;

	while (up_sock != -1) {
		r = handover_recv(up_sock, up_rbuf, sizeof(m) +
		    HANDOVER_MAX_RECORD, &fd);
		if (r == -1 && errno == EAGAIN)
			return;
		if (r == 0 || (r == -1 && errno != EMSGSIZE)) {
			up_complete(0);
			return;
		}
		if (r < (ssize_t)sizeof(m)) {
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
			/* a removed slot's join another (upgrade_merge.c) */
			j = up_slot < 0 ? -1 : merge_target(up_slot);
			if (j < 0 || !slots[j].waiting || fd == -1 ||
			    (conn = merge_conn(up_slot, m.arg, up_rbuf +
			    sizeof(m), (size_t)r - sizeof(m))) == UINT32_MAX) {
				if (fd != -1)
					close(fd);
				break;
			}
			if (handover_hold(j, conn, up_rbuf + sizeof(m),
			    (size_t)r - sizeof(m), fd) == 0)
				up.handed++;
			fd = -1;
			break;
		case UP_BEGIN:
			up_slot = m.arg < (uint32_t)up_old_nslots ? i : -1;
			break;
		case UP_PREPARE:
			if (m.arg >= (uint32_t)up_old_nslots)
				break;
			if (i >= node->nslots || !slots[i].waiting) {
				/* removed: its connections join another */
				if (i >= node->nslots)
					(void)upgrade_send(up_sock, UP_PREPARED,
					    m.arg, NULL);
				break;
			}
			/* it waits for the connections (handover.h) */
			handover_prepare(i, 1);
			if (slots[i].pid != 0 || spawn(node, i) == -1)
				(void)upgrade_send(up_sock, UP_PREPARED,
				    m.arg, NULL);
			handover_prepare(i, 0);
			break;
		case UP_DONE:
			if (m.arg >= (uint32_t)up_old_nslots)
				break;
			j = merge_target(i);
			if (!slots[j].waiting)
				break;
			up_slot_done(i, j);
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

/* ---- what master.c calls ------------------------------------------------ */

int
up_is_new(void)
{
	return up_new;
}

void
up_child(void)
{
	if (up_sock != -1)
		close(up_sock);
	merge_child();
}

int
up_reaped(pid_t pid, int status)
{
	if (pid != up_pid || up_pid <= 0)
		return 0;
	up_child_exited(status);
	return 1;
}

int
up_slot_moving(int i)
{
	return !up_new && (slots[i].handed || (up_sock != -1 &&
	    i == up_slot && (up_wait == UPW_WORKER ||
	    up_wait == UPW_PREPARED)));
}

int
up_worker_gone(int i, int status)
{
	int	 handed;

	if (!up_new && slots[i].handed)
		return 1;	/* passed on already, on its word (HO_HANDED) */
	if (up_sock == -1 || up_new || i != up_slot || up_wait != UPW_WORKER)
		return 0;
	handed = WIFEXITED(status) && WEXITSTATUS(status) == CHATD_EXIT_HANDED;
	if (!handed)
		log_warnx("upgrade: worker %d died while handing over: its "
		    "connections are passed as after a crash", i);
	handover_read(i, online_slot_stats(node->online, i));
	up_pass_slot(i, handed);
	return 1;
}

int
up_prepared_gone(int i)
{
	if (!up_new || !slots[i].waiting)
		return 0;
	/* started early, died early: one is forked at the end */
	slots[i].respawn_at = 0;
	if (up_sock != -1)
		(void)upgrade_send(up_sock, UP_PREPARED, (uint32_t)i, NULL);
	return 1;
}

void
up_worker_said(int i)
{
	if (handover_take_ready(i) && up_new && up_sock != -1 &&
	    slots[i].waiting)
		(void)upgrade_send(up_sock, UP_PREPARED, (uint32_t)i, NULL);
	if (handover_take_handed(i) && !up_new && up_sock != -1 &&
	    i == up_slot && up_wait == UPW_WORKER && !slots[i].handed) {
		log_info("upgrade: worker %d sent its last record", i);
		up_pass_slot(i, 1);
	}
}

void
up_abort(const char *why)
{
	if (!up_new && up_sock != -1)
		up_failed("%s", why);
}

void
up_run_start(void)
{
	int	 i;

	if (!up_new)
		return;
	/*
	 * Each slot starts when the old master has passed it.  Slots the
	 * old node did not have (more workers) start at the end: the old
	 * workers have no channel to them and would not see their users.
	 */
	for (i = 0; i < node->nslots; i++)
		slots[i].waiting = 1;
	up_left = up_old_nslots;
	up_slot = -1;
	if ((up_rbuf = malloc(sizeof(struct up_msg) +
	    HANDOVER_MAX_RECORD)) == NULL ||
	    upgrade_send(up_sock, UP_READY, 0, NULL) == -1) {
		log_warn("upgrade: telling the old master");
		up_complete(0);
	} else
		log_notice("upgrade: ready; the old master (pid %d) hands its "
		    "workers over", (int)up_old_pid);
}

int
up_pollfd(void)
{
	return up_sock != -1 && up_eof_at == 0 ? up_sock : -1;
}

void
up_events(void)
{
	if (up_new)
		up_read_new();
	else
		up_read_old();
}

void
up_end(void)
{
	if (upgraded)
		ctl_keep_path(1);	/* the new master's now */
	up_abort("chatd exits");
	up_close();
	free(up_rbuf);
	up_rbuf = NULL;
}
