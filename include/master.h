/* master.h - the supervising process: spawn, reap, respawn, reload, stop. */
#ifndef CHATD_MASTER_H
#define CHATD_MASTER_H

#include "node.h"

/*
 * Open the control socket and the metrics listener the configuration
 * asks for (ctl.h), before daemonizing so that errors reach the
 * terminal.  0, or -1 after logging why.
 */
/*
 * One listening socket on cfg's address, SO_REUSEPORT, non-blocking:
 * the fd, or -1 with err.  The master holds one per slot and closes it
 * while the slot has no worker, so the kernel hands no connection to a
 * socket nobody serves.
 */
int	master_listen(const char *what, const char *host, int port, char *err,
	    size_t errlen);
/*
 * ctl_fd, http_fd: listeners an upgrade's new master inherits, or -1.
 * 0, or -1 with err (also logged).
 */
int	master_init(struct node *n, int ctl_fd, int http_fd, char *err,
	    size_t errlen);
/* A descriptor only the master holds (the pid file lock): children close it. */
void	master_own_fd(int fd);
/*
 * Fork the workers and supervise them until told to stop.  Blocks
 * SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT and takes them
 * from a signalfd.  Returns the process exit status.
 */
int	master_run(struct node *n);
/*
 * Before master_run, in a new master started by an upgrade (upgrade.h):
 * sock reaches the old master, which hands its old_nslots slots (this
 * node may have more: they start once it is done); the counters go on
 * from its figures.
 */
void	master_upgrading(int sock, pid_t old_pid, int old_nslots,
	    uint64_t upgrades, uint64_t failed, uint64_t handed);
/* After master_run: the node was handed to a new master (keep its files). */
int	master_upgraded(void);

#endif
