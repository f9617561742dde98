/*
 * storeq.h - a worker's store queue: store calls that may wait (a
 * locked SQLite file, a slow MySQL server) run in a thread of the
 * worker with its own store handle, so that the worker's event loop
 * goes on serving every other connection meanwhile.
 *
 * Jobs are workq.h's: submitted from the loop thread, run(job, ctx) in
 * a store thread with ctx that thread's struct store, then done() back
 * in the loop thread (storeq_complete, when storeq_fd is readable).
 * run() may use only the job's own memory and the store: no libev, no
 * connection, no chat state, no logging.  With more than one thread a
 * caller that needs order waits for done() before it submits the next
 * (the chat layer pauses the connection meanwhile).
 *
 * A worker runs two, one thread each (worker.c): chat.storeq for writes
 * and chat.storeq_read for what logins and offline batches read, so that
 * reads do not queue behind writes waiting for a lock.  Jobs of the two
 * are not ordered with each other: a read may run before a write
 * submitted earlier (chat_stores_done, stored_nudge cover a login).
 */
#ifndef CHATD_STOREQ_H
#define CHATD_STOREQ_H

#include <stddef.h>

#include "workq.h"

struct store_opts;
struct storeq;

/*
 * Start nthreads threads (after fork), each with its own store opened
 * with spec and opts (one connection each: pool settings are ignored).
 * NULL with err when a thread or a store cannot start.
 */
struct storeq *storeq_new(const char *spec, const struct store_opts *opts,
	    int nthreads, char *err, size_t errlen);
/* Runs what is queued, completes it (done()), then closes the stores. */
void	storeq_free(struct storeq *q);
/* Readable when finished jobs wait for storeq_complete. */
int	storeq_fd(const struct storeq *q);
void	storeq_submit(struct storeq *q, struct workq_job *job);
/* Run job only when no storeq_submit job waits (workq_submit_idle). */
void	storeq_submit_idle(struct storeq *q, struct workq_job *job);
/* In the loop thread: done() of every finished job, in the order they ran. */
void	storeq_complete(struct storeq *q);
/* Jobs submitted and not yet completed (loop thread). */
size_t	storeq_pending(const struct storeq *q);

#endif
