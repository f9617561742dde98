/*
 * storeq.h - a worker's store queue: store calls that may wait (a
 * locked SQLite file, a slow MySQL server) run in a thread of the
 * worker with its own store handle, so that the worker's event loop
 * goes on serving every other connection meanwhile.
 *
 * A job is submitted from the loop thread; its run() is called in a
 * store thread with that thread's store, then its done() back in the
 * loop thread (storeq_complete, when storeq_fd is readable).  run()
 * may use only the job's own memory and the store handed to it: no
 * libev, no connection, no chat state, no logging.  Jobs of one
 * thread run in submission order; with more than one thread, a caller
 * that needs order waits for done() before it submits the next (the
 * chat layer pauses the connection meanwhile).
 */
#ifndef CHATD_STOREQ_H
#define CHATD_STOREQ_H

#include <stddef.h>

struct store;
struct store_opts;

struct storeq_job {
	void	(*run)(struct storeq_job *, struct store *);
	void	(*done)(struct storeq_job *);
	struct storeq_job	*next;
};

struct storeq;

/*
 * Start nthreads threads (after fork), each with its own store opened
 * with spec and opts (one connection each: pool settings are ignored).
 * NULL with err when a thread or a store cannot start.
 */
struct storeq *storeq_new(const char *spec, const struct store_opts *opts,
	    int nthreads, char *err, size_t errlen);
/* Runs what is queued, completes it (done()), then stops the threads. */
void	storeq_free(struct storeq *q);
/* Readable when finished jobs wait for storeq_complete. */
int	storeq_fd(const struct storeq *q);
/* Queue job; its done() runs later in the loop thread, never before this returns. */
void	storeq_submit(struct storeq *q, struct storeq_job *job);
/* In the loop thread: done() of every finished job, in submission order. */
void	storeq_complete(struct storeq *q);
/* Jobs submitted and not yet completed (a gauge for status output). */
size_t	storeq_pending(const struct storeq *q);

#endif
