/* histprio.c - the history thread's priority (see histprio.h). */
#include "config.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "histprio.h"
#include "log.h"
#include "storeq.h"

/* the thread's id once it runs at SCHED_IDLE; 0: not (yet) */
static _Atomic pid_t	 hist_tid;
static int		 boosted;	/* loop thread only */
static int		 stuck;		/* a boost failed: never again */
static int		 why;		/* errno of the start's refusal */

struct prio_job {
	struct workq_job	 sj;
};

/* May this process leave SCHED_IDLE again (sched(7): RLIMIT_NICE)? */
static int
can_raise(void)
{
	struct rlimit	 rl;

	if (geteuid() == 0)
		return 1;
	return getrlimit(RLIMIT_NICE, &rl) == 0 && rl.rlim_cur >= 20;
}

/* In the history thread. */
static void
prio_run(struct workq_job *sj, void *ctx)
{
	struct sched_param	 sp;

	(void)sj;
	(void)ctx;
	(void)pthread_setname_np(pthread_self(), HISTPRIO_NAME);
	if (!can_raise()) {
		why = EPERM;
		return;
	}
	memset(&sp, 0, sizeof(sp));
	if (sched_setscheduler(0, SCHED_IDLE, &sp) == -1) {
		why = errno;
		return;
	}
	atomic_store(&hist_tid, (pid_t)syscall(SYS_gettid));
}

static void
prio_done(struct workq_job *sj)
{
	if (why != 0)
		log_notice("history thread: stays at normal priority (SCHED_IDLE "
		    "needs RLIMIT_NICE 20 to be boosted): %s", strerror(why));
	free(sj);
}

int
histprio_start(struct storeq *q)
{
	struct prio_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->sj.run = prio_run;
	j->sj.done = prio_done;
	storeq_submit(q, &j->sj);
	return 0;
}

void
histprio_boost(int on)
{
	struct sched_param	 sp;
	pid_t			 tid = atomic_load(&hist_tid);

	if (on == boosted || tid == 0 || stuck)
		return;
	memset(&sp, 0, sizeof(sp));
	if (sched_setscheduler(tid, on ? SCHED_OTHER : SCHED_IDLE, &sp) ==
	    -1) {
		if (on && errno == EPERM) {
			/* RLIMIT_NICE lowered under us: once, for good */
			stuck = 1;
			log_warnx("history thread: cannot be boosted any more "
			    "(%s): reads answer from what is stored, without "
			    "waiting for this worker's backlog",
			    strerror(EPERM));
		} else if (errno != ESRCH)
			/* the thread may be gone at exit (ESRCH) */
			log_warn("history thread: %s", on ? "boost" : "lower");
		return;
	}
	boosted = on;
}

int
histprio_boosted(void)
{
	return boosted;
}

int
histprio_stuck(void)
{
	return stuck;
}
