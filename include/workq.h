/*
 * workq.h - a few threads that run jobs off an event loop: jobs go in
 * from the loop thread, run() in a thread, done() back in the loop
 * thread when workq_fd is readable (workq_complete).  Nothing here
 * knows libev; the owner watches the descriptor.  The password hash
 * pool (auth.c) and the store queue (storeq.c) are built on it.
 */
#ifndef CHATD_WORKQ_H
#define CHATD_WORKQ_H

#include <stddef.h>
#include <stdint.h>

struct workq_job {
	/* in a thread; ctx is that thread's (workq_new) */
	void	(*run)(struct workq_job *, void *ctx);
	/* in the loop thread, afterwards */
	void	(*done)(struct workq_job *);
	struct workq_job	*next;
};

struct workq;

/*
 * Start nthreads threads (after fork); thread i gets ctx[i] (ctx may
 * be NULL: every thread gets NULL).  NULL with err on failure.
 */
struct workq *workq_new(int nthreads, void *const *ctx, char *err,
	    size_t errlen);
/*
 * Runs what is queued, completes it, then stops the threads.  A done()
 * that submits meanwhile has its job run here, with ctx[0].
 */
void	workq_free(struct workq *q);
/* Readable when finished jobs wait for workq_complete. */
int	workq_fd(const struct workq *q);
/* Queue job; its done() runs later in the loop thread, never inside this call. */
void	workq_submit(struct workq *q, struct workq_job *job);
/*
 * The same, but a thread takes job only when no workq_submit job
 * waits: work that may fall behind (history rows) never delays the rest.
 * Idle jobs run in their own submission order.
 */
void	workq_submit_idle(struct workq *q, struct workq_job *job);
/*
 * In the loop thread: done() of every finished job, in the order the
 * jobs ran (submission order for jobs of one kind and one thread).
 */
void	workq_complete(struct workq *q);
/*
 * Jobs waiting for a thread (*queued), the mean time of one job over
 * about the last 8 in microseconds (0 before the first), and the
 * number of threads.
 */
int	workq_load(struct workq *q, size_t *queued, uint64_t *avg_us);
/* Jobs submitted and not yet completed (loop thread). */
size_t	workq_pending(const struct workq *q);

#endif
