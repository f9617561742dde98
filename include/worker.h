/* worker.h - one worker process: a libev loop serving client connections. */
#ifndef CHATD_WORKER_H
#define CHATD_WORKER_H

#include "chatd.h"

/* Run worker slot in the freshly forked child; never returns. */
void	worker_main(struct node *n, int slot) __attribute__((noreturn));

#endif
