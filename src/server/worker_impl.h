/*
 * worker_impl.h - what worker.c shares with worker_handover.c (private
 * to the worker process).
 */
#ifndef CHATD_WORKER_IMPL_H
#define CHATD_WORKER_IMPL_H

#include <stddef.h>

#include "handover.h"

struct conn;
struct guard;
struct guard_net;
struct online_slot_stats;
struct storeq;

/*
 * Adopt what handover_inherited() holds (a dead worker's connections,
 * or an upgrade's), counting them in stats; drop tells the master of a
 * connection not adopted.  handover_flush()'s result.
 */
enum ho_send worker_adopt(struct guard *guard, int slot,
	    const struct guard_net *exempt, int nexempt,
	    struct online_slot_stats *stats, void (*drop)(struct conn *));

/* Handing over for an upgrade (worker.c's timer calls these). */
#define HANDOFF_SECONDS		10.0	/* then the rest as after a crash */
/* the new worker: past the old one's two phases, its answers are lost */
#define ANSWERS_WAIT_SECONDS	(2 * HANDOFF_SECONDS + 5)
struct handoff_count {
	size_t	 busy;		/* answers or output still due */
	size_t	 clean, unclean, closed;
	size_t	 answers;	/* clean, with answers to follow */
	int	 final;		/* 0: count; 1: hand over (or close) */
};
/* conn_foreach callback: count, or hand over, c (arg: the count). */
void	handoff_one(struct conn *c, void *arg);
/* Websockets that cannot move (not open, closing) close cleanly now. */
size_t	handoff_close_ws(void);
/*
 * Once every pass of the loop after SIGUSR2.  First, until every
 * connection is answered and written, or waits only for acknowledged
 * chats being stored (or the deadline passed): then every session goes
 * to the master.  After that, until q's store jobs ended, their
 * answers passed on and the channel queues (queued) emptied, for at most
 * HANDOFF_SECONDS more.  HANDOFF_DONE: the caller stores what the queues
 * hold and calls handoff_exit.
 */
enum handoff_state {
	HANDOFF_WAIT,
	HANDOFF_DONE
};
enum handoff_state handoff_step(struct storeq *q, int queued,
	    double deadline);
void	handoff_exit(void) __attribute__((noreturn));

#endif
