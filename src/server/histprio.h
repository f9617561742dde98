/*
 * histprio.h - the priority of a worker's history thread (chat_history.c).
 *
 * History rows are stored by a thread of their own at SCHED_IDLE: on a
 * saturated node it gets almost no CPU (weight 3 against 1024), in any
 * idle moment all of it, so history never takes CPU that live delivery
 * wants.  While someone waits for it (a HISTORY or RESUME read, an
 * account deletion, senders held by back-pressure) the loop thread
 * boosts it to SCHED_OTHER, and lowers it again when nobody waits.
 *
 * Linux lets a thread leave SCHED_IDLE only with CAP_SYS_NICE or
 * RLIMIT_NICE >= 20 (the master raises it, chatd.c).  Without either,
 * the thread stays at normal priority (correct, slower), logged once.
 */
#ifndef CHATD_HISTPRIO_H
#define CHATD_HISTPRIO_H

struct storeq;

/* The history thread's name, in /proc/<pid>/task/<tid>/comm. */
#define HISTPRIO_NAME	"chatd-hist"

/*
 * Queue the job that names q's one thread and lowers it to SCHED_IDLE
 * (when it could be raised again); first thing after storeq_new.
 * 0, or -1 (no memory: the thread stays as it is).
 */
int	histprio_start(struct storeq *q);
/* Loop thread: boost (on) or lower (off) the history thread. */
void	histprio_boost(int on);
/* Whether the history thread is boosted now (loop thread). */
int	histprio_boosted(void);
/*
 * Whether a boost failed for good (EPERM: RLIMIT_NICE lowered after the
 * start), leaving the thread at SCHED_IDLE: waiting for it could last
 * as long as the load does (loop thread).
 */
int	histprio_stuck(void);

#endif
