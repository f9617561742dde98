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

/*
 * Adopt what handover_inherited() holds (a dead worker's connections,
 * or an upgrade's), counting them in stats; drop tells the master of a
 * connection not adopted.  handover_flush()'s result.
 */
enum ho_send worker_adopt(struct guard *guard, int slot,
	    const struct guard_net *exempt, int nexempt,
	    struct online_slot_stats *stats, void (*drop)(struct conn *));

/* Handing over for an upgrade (worker.c's timer calls these). */
struct handoff_count {
	size_t	 busy;		/* answers or output still due */
	size_t	 clean, unclean, closed;
	int	 final;		/* 0: count; 1: hand over (or close) */
};
/* conn_foreach callback: count, or hand over, c (arg: the count). */
void	handoff_one(struct conn *c, void *arg);
/* Websockets close cleanly (their framing state is not handed over). */
size_t	handoff_close_ws(void);
/*
 * Everything is answered and written (or the time is up): hand every
 * session to the master and exit (began: when reading stopped).
 */
void	handoff_finish(double began) __attribute__((noreturn));

#endif
