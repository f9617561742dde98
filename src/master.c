/* master.c - spawn, reap and respawn workers; reload; stop. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "worker.h"

/* A worker that dies sooner than this after start is throttled. */
#define QUICK_DEATH_SECONDS	2.0
#define RESPAWN_DELAY_MAX	10.0
#define STOP_GRACE_SECONDS	10.0

struct slot {
	pid_t	 pid;		/* 0: not running */
	double	 started;
	double	 respawn_at;	/* 0: nothing scheduled */
	int	 quick_deaths;
	int	 fatal;		/* exited with CHATD_EXIT_FATAL */
};

static struct slot	*slots;

static double
now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
spawn(struct node *n, int i)
{
	pid_t	 pid;

	switch ((pid = fork())) {
	case -1:
		log_warn("fork worker %d", i);
		return -1;
	case 0:
		worker_main(n, i);
		/* NOTREACHED */
	default:
		break;
	}
	slots[i].pid = pid;
	slots[i].started = now();
	slots[i].respawn_at = 0;
	online_slot_stats(n->online, i)->pid = pid;
	__atomic_store_n(&online_slot_stats(n->online, i)->started,
	    (uint64_t)time(NULL), __ATOMIC_RELAXED);
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
reap(struct node *n, int stopping)
{
	pid_t	 pid;
	int	 status, i;
	double	 lived, delay;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if ((i = slot_of(n, pid)) == -1)
			continue;
		slots[i].pid = 0;
		online_slot_stats(n->online, i)->pid = 0;
		/* its users are offline now, not when someone notices */
		online_slot_reset(n->online, i);
		if (WIFSIGNALED(status))
			log_warnx("worker %d (pid %d) exited on signal %d",
			    i, (int)pid, WTERMSIG(status));
		else if (WEXITSTATUS(status) != 0 || !stopping)
			log_warnx("worker %d (pid %d) exited with code %d",
			    i, (int)pid, WEXITSTATUS(status));
		else
			log_info("worker %d (pid %d) exited", i, (int)pid);
		if (stopping)
			continue;
		if (WIFEXITED(status) &&
		    WEXITSTATUS(status) == CHATD_EXIT_FATAL) {
			log_warnx("worker %d failed to start; not respawning",
			    i);
			slots[i].fatal = 1;
			continue;
		}
		lived = now() - slots[i].started;
		if (lived < QUICK_DEATH_SECONDS)
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
		slots[i].respawn_at = now() + delay;
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

static void
reload(struct node *n)
{
	struct config	 next;
	struct buf	 errs = BUF_INIT;

	memset(&next, 0, sizeof(next));
	if (cfg_load(&next, n->config_path, &errs) == -1) {
		log_warnx("reload failed, keeping the old configuration:\n%.*s",
		    (int)buf_used(&errs), buf_head(&errs));
		cfg_free(&next);
		buf_free(&errs);
		return;
	}
	cfg_apply_reload(&n->cfg, &next);
	log_set_level(n->cfg.log_level);
	cfg_free(&next);
	buf_free(&errs);
	log_notice("configuration reloaded");
	signal_workers(n, SIGHUP);
}

int
master_run(struct node *n)
{
	sigset_t	 set;
	siginfo_t	 info;
	struct timespec	 ts;
	double		 stop_deadline = 0, t;
	int		 i, sig, stopping = 0, exit_code = 0;

	log_set_role("master");
	if ((slots = calloc(n->nslots, sizeof(*slots))) == NULL)
		fatal("master");
	for (i = 0; i < n->nslots; i++)
		if (spawn(n, i) == -1)
			slots[i].respawn_at = now() + 1;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGQUIT);

	for (;;) {
		/* signals are taken synchronously: no handlers, no races */
		ts.tv_sec = 0;
		ts.tv_nsec = 100 * 1000 * 1000;
		sig = sigtimedwait(&set, &info, &ts);
		switch (sig) {
		case SIGCHLD:
			reap(n, stopping);
			break;
		case SIGTERM:
		case SIGINT:
		case SIGQUIT:
			if (!stopping) {
				log_notice("stopping on signal %d", sig);
				stopping = 1;
				stop_deadline = now() + STOP_GRACE_SECONDS;
				signal_workers(n, SIGTERM);
			}
			break;
		case SIGHUP:
			if (!stopping)
				reload(n);
			break;
		case SIGUSR1:
			if (log_reopen() == -1)
				log_warn("reopening the log");
			signal_workers(n, SIGUSR1);
			break;
		default:
			break;
		}
		/* a SIGCHLD may have been merged with another signal */
		reap(n, stopping);
		t = now();
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
		for (i = 0; i < n->nslots; i++)
			if (slots[i].pid == 0 && !slots[i].fatal &&
			    slots[i].respawn_at > 0 && t >= slots[i].respawn_at)
				if (spawn(n, i) == -1)
					slots[i].respawn_at = t + 1;
		for (i = 0; i < n->nslots; i++)
			if (!slots[i].fatal)
				break;
		if (i == n->nslots) {
			log_warnx("no worker could start; exiting");
			exit_code = 1;
			break;
		}
	}
	free(slots);
	log_notice("exiting");
	return exit_code;
}
