/*
 * online.h - the node's table of online users in POSIX shared memory:
 * user id -> (worker slot, connection id, slot generation).
 *
 * The master creates it before forking; workers inherit the mapping.
 * Buckets are split into stripes, each guarded by a robust
 * process-shared mutex, so a process that dies holding one does not
 * wedge the node: the next locker repairs the stripe and goes on.
 * Every entry carries the generation its worker slot had when it was
 * added; bumping a slot's generation (online_slot_reset) makes all of a
 * dead worker's entries invisible at once, before they are swept.
 */
#ifndef CHATD_ONLINE_H
#define CHATD_ONLINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ONLINE_MAX_SLOTS	64

struct online;

struct online_entry {
	uint32_t	uid;
	uint16_t	slot;		/* worker slot, 0..nslots-1 */
	uint32_t	conn;		/* connection id within the worker */
	uint32_t	gen;		/* slot generation at login */
};

/*
 * The connection id of a leaving mark: uid logged out of that slot's
 * worker, which still removes stored copies of what it wrote to the
 * session (chat_leave.c).  online_get, online_count and online_foreach
 * do not see it (the user is away); online_add answers ONLINE_TAKEN
 * with it, so that a new login can wait for it to go or replace it
 * (online_replace); online_remove with it removes it.  A dead worker's
 * marks go with its generation, like its sessions.
 */
#define ONLINE_LEAVING	UINT32_MAX

/*
 * Per worker-slot figures in the same mapping, for the master and the
 * control tool.  Counters only grow; each field written by its worker
 * with relaxed atomics.
 */
struct online_slot_stats {
	pid_t		 pid;
	uint32_t	 gen;
	uint64_t	 started;	/* unix time of the current process */
	uint64_t	 connections;	/* currently open */
	uint64_t	 accepted;
	uint64_t	 logins;
	uint64_t	 msgs_in;
	uint64_t	 msgs_out;
	uint64_t	 offline_stored;
	uint64_t	 errors;
	uint64_t	 respawns;
	uint64_t	 bus_rejected;	/* cluster: forged/stale/replayed items */
	uint64_t	 output_evictions;	/* max_worker_output_bytes */
	uint64_t	 output_bytes;	/* queued for clients, when it slept */
	uint64_t	 redis_failovers; /* cluster: Sentinel moved the primary */
	uint64_t	 bus_unreplicated; /* publishes no replica confirmed */
	uint64_t	 proxy_refused;	/* PROXY headers refused */
	uint64_t	 login_blocks_shared; /* blocks learned from Redis */
	/* crash handover (handover.h): the master counts the first and
	 * the closings, the adopting worker the adopted and its failures */
	uint64_t	 handovers;	/* dead workers' connections passed on */
	uint64_t	 adopted;	/* connections adopted by a new worker */
	uint64_t	 handover_failed; /* connections closed instead */
	/*
	 * Health, for the master's /health and chatctl status.  The
	 * master sets them to -1 (unknown) and heartbeat to "now" before
	 * it forks the slot's worker; the worker then refreshes them.
	 */
	int32_t		 redis_up;	/* cluster: 1 subscribed, 0 down */
	int32_t		 store_ok;	/* 1 store_ping answered, 0 not */
	uint64_t	 heartbeat;	/* CLOCK_MONOTONIC ms, every second */
	/* wall-clock s of the first "down" (health.h); 0 while up */
	int64_t		 redis_down_since;
	int64_t		 store_down_since;
};

/*
 * Create the table named name ("/chatd-..."), replacing a stale one of
 * that name, sized for capacity users and nslots worker slots.  Returns
 * NULL with err filled on failure.
 */
struct online *online_create(const char *name, uint32_t capacity,
	    int nslots, char *err, size_t errlen);
/* Unmap; with unlink_it also remove the name (master at exit). */
/*
 * Map the table an older master of this node made (binary upgrade);
 * NULL with err when it is missing or of another layout or size.
 */
struct online *online_attach(const char *name, uint32_t capacity,
	    int nslots, char *err, size_t errlen);
void	online_destroy(struct online *o, int unlink_it);

enum online_add_result {
	ONLINE_ADDED,		/* uid is now (slot, conn)'s */
	ONLINE_TAKEN,		/* uid is online already */
	ONLINE_REFUSED		/* table full, uid 0 or a bad slot */
};

/*
 * Add uid for (slot, conn) unless it is already online.  When it is
 * (ONLINE_TAKEN), out, if not NULL, receives that entry.
 */
enum online_add_result online_add(struct online *o, uint32_t uid, uint16_t slot,
	    uint32_t conn, struct online_entry *out);
/*
 * 0 and *out filled when uid's entry is a leaving mark, -1 when not
 * (online, away, or no entry).  For an upgrade's new workers, which
 * honour the marks the old workers leave in the old table.
 */
int	online_get_leaving(struct online *o, uint32_t uid,
	    struct online_entry *out);
/*
 * Give old->uid's entry to (slot, conn) if it is still exactly *old: a
 * resumed session takes over a stale one, whose later removal then
 * finds nothing of its own.  0, or -1 when the entry changed meanwhile.
 */
int	online_replace(struct online *o, const struct online_entry *old,
	    uint16_t slot, uint32_t conn);
/* 0 and *out filled when uid is online, -1 when not. */
int	online_get(struct online *o, uint32_t uid, struct online_entry *out);
/*
 * Remove uid only if it is still the entry of (slot, conn), so a late
 * logout never removes a newer session.  0 removed, -1 not found.
 */
int	online_remove(struct online *o, uint32_t uid, uint16_t slot,
	    uint32_t conn);
/* Master: a slot's worker died.  Bumps the generation, drops entries. */
void	online_slot_reset(struct online *o, uint16_t slot);
uint32_t online_slot_gen(struct online *o, uint16_t slot);
struct online_slot_stats *online_slot_stats(struct online *o, uint16_t slot);
int	online_nslots(const struct online *o);
/*
 * Upgrade to more workers (master, before forking): slots up to nslots
 * become valid in this mapping and in the header, so the next attach
 * expects nslots.  Processes mapped earlier keep their own bound: they
 * see entries of the new slots as away.  The old master sets its own
 * count back when the upgrade fails.  0, or -1 when nslots is not
 * 1..ONLINE_MAX_SLOTS.
 */
int	online_set_slots(struct online *o, int nslots);
/*
 * online_copy.c: create the table name (capacity, nslots) and add every
 * live entry of from to it, same slot and conn, with the per-slot
 * figures; *copied says how many.  Entries of slots from nslots on are
 * left out.  NULL with err (nothing is left
 * behind), also when the users online do not fit.
 */
struct online *online_copy(struct online *from, const char *name,
	    uint32_t capacity, int nslots, size_t *copied, char *err,
	    size_t errlen);
/* Users online now (consistent per stripe, not globally). */
size_t	online_count(struct online *o);
/*
 * Call fn for each live entry; stops early when fn returns non-zero.
 * fn must not call back into the table (a stripe lock is held).
 */
void	online_foreach(struct online *o,
	    int (*fn)(const struct online_entry *e, void *arg), void *arg);

#endif
