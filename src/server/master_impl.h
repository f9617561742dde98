/*
 * master_impl.h - what master.c shares with master_upgrade.c (private
 * to the master process).
 */
#ifndef CHATD_MASTER_IMPL_H
#define CHATD_MASTER_IMPL_H

#include <sys/types.h>

#include "buf.h"
#include "node.h"

struct slot {
	pid_t	 pid;		/* 0: not running */
	double	 started;
	double	 respawn_at;	/* 0: nothing scheduled */
	int	 quick_deaths;
	int	 fatal;		/* last exit CHATD_EXIT_FATAL: could not start */
	int	 cfg_pending;	/* the last reload is still to be sent */
	int	 handed;	/* upgrade: the new master has this slot */
	int	 waiting;	/* upgrade: the old master still has it */
};

/* ---- master_upgrade.c -------------------------------------------------- */

struct up_stats;

/* At master_run's start: master.c's slots, pid file and spawn(). */
void	up_init(struct node *n, struct slot *slots, int pidfd,
	    int (*spawn)(struct node *, int));
/* The new master: mark every slot waiting and tell the old one "ready". */
void	up_run_start(void);
/* Start the new binary (old master); -1 with why in errs. */
int	up_begin(struct buf *errs);
const struct up_stats *up_stats_get(void);
/* This master was started by an upgrade. */
int	up_is_new(void);
/* In a forked worker: close the upgrade socket. */
void	up_child(void);
/* pid was the new master (old master): 1, handled. */
int	up_reaped(pid_t pid, int status);
/* Slot i's worker exited: 1 when it was handing over (passed on). */
int	up_worker_gone(int i, int status);
/* New master: slot i's early worker died before its connections: 1. */
int	up_prepared_gone(int i);
/*
 * After handover_read(i): an early worker may have said it is ready,
 * an old one that it handed everything over.
 */
void	up_worker_said(int i);
/*
 * Old master: slot i is (being) handed to the new master, whose worker
 * has the slot's figures and table entries: its old worker's exit
 * touches neither.
 */
int	up_slot_moving(int i);
/* Give up an upgrade in progress (old master): stop, exit. */
void	up_abort(const char *why);
/* The upgrade socket to poll, or -1; its events; the timeouts. */
int	up_pollfd(void);
void	up_events(void);
void	up_tick(double now);
/* master_run ends. */
void	up_end(void);

/* ---- upgrade_merge.c: an upgrade to fewer workers, new master --------- */

struct channel_set;

/*
 * slots now, old_slots before; old_chan: the old node's channels (those
 * of the removed slots are kept here), cs the node's.  0 or -1.
 */
int	merge_setup(int slots, int old_slots, int (*old_chan)[2],
	    const struct channel_set *cs);
/* The remaining slot an old slot's connections go to. */
int	merge_target(int slot);
/* The last old slot whose connections go to remaining slot j. */
int	merge_last(int j);
/*
 * A connection of old slot passed by the old master: the id to hold it
 * under (its record rec, len bytes, renumbered when slot was removed),
 * UINT32_MAX when it cannot be held.
 */
uint32_t merge_conn(int slot, uint32_t conn, char *rec, size_t len);
/* Slot j's worker has what was held: relay its removed slots' channels. */
void	merge_relay_start(int j);
/* The descriptor to poll (-1: none), and what to do when it is ready. */
int	merge_pollfd(void);
void	merge_relay(void);
/* In a forked worker: close the removed slots' channels. */
void	merge_child(void);

#endif
