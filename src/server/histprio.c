/* histprio.c - the history thread's priority (see histprio.h). */
#include "config.h"

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

/*
 * Linux lets a thread leave SCHED_IDLE only with CAP_SYS_NICE (capable():
 * the effective set, in the initial user namespace) or an RLIMIT_NICE of
 * at least 20 - its nice value (sched(7)).  Root need have neither (a
 * container drops CAP_SYS_NICE).  Rather than re-derive the rule (user
 * namespaces, security modules), a thread of the same nice value, limits
 * and capabilities tries the round trip.
 */
static void *
probe_run(void *arg)
{
	struct sched_param	 sp;
	int			*err = arg;

	memset(&sp, 0, sizeof(sp));
	if (sched_setscheduler(0, SCHED_IDLE, &sp) == -1 ||
	    sched_setscheduler(0, SCHED_OTHER, &sp) == -1)
		*err = errno;
	return NULL;
}

/* 0 when a thread may leave SCHED_IDLE again, else the errno that refused. */
static int
raise_refused(void)
{
	pthread_t	 t;
	int		 err = 0, rc;

	if ((rc = pthread_create(&t, NULL, probe_run, &err)) != 0)
		return rc;
	(void)pthread_join(t, NULL);
	return err;
}

/* In the history thread. */
static void
prio_run(struct workq_job *sj, void *ctx)
{
	struct sched_param	 sp;

	(void)sj;
	(void)ctx;
	(void)pthread_setname_np(pthread_self(), HISTPRIO_NAME);
	/* never lowered for good: reads could not wait for it */
	if ((why = raise_refused()) != 0)
		return;
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
		log_notice("history thread: stays at normal priority (leaving "
		    "SCHED_IDLE needs CAP_SYS_NICE or RLIMIT_NICE 20): %s",
		    strerror(why));
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
