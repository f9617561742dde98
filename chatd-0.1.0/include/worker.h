/* worker.h - one worker process: a libev loop serving client connections. */
#ifndef CHATD_WORKER_H
#define CHATD_WORKER_H

#include "chatd.h"

/*
 * Start-up check in the master: workers will run as cfg->user, and as
 * root only with allow_root.  0, or -1 with err filled.
 */
int	worker_privileges_check(const struct config *cfg, char *err,
	    size_t len);
/*
 * Master, started as root with user set: act as that user (on = 1:
 * effective ids and groups) or as root again (on = 0), so that what the
 * workers must open (the SQLite file) is created as theirs and a
 * permission problem shows at start.  0, or -1 (logged).
 */
int	worker_as_user(const struct config *cfg, int on);
/* Run worker slot in the freshly forked child; never returns. */
void	worker_main(struct node *n, int slot) __attribute__((noreturn));

#endif
