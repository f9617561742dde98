/* master.h - the supervising process: spawn, reap, respawn, reload, stop. */
#ifndef CHATD_MASTER_H
#define CHATD_MASTER_H

#include "chatd.h"

/*
 * Fork the workers and supervise them until told to stop.  Expects
 * SIGCHLD, SIGTERM, SIGINT, SIGHUP and SIGUSR1 blocked.  Returns the
 * process exit status.
 */
int	master_run(struct node *n);

#endif
