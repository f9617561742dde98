/*
 * chat.h - what requests mean: register, login, friends, groups, chats,
 * routing to the recipient's connection, worker or node, and offline
 * storage.  No event loop here: the worker wires conn, channel, the
 * hash pool and the store to it.
 */
#ifndef CHATD_CHAT_H
#define CHATD_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "conn.h"
#include "online.h"
#include "proto.h"
#include "pubsub.h"

struct authpool;
struct guard;
struct config;
struct pubsub;
struct store;
struct storeq;

struct chat_env {
	const struct config	*cfg;
	struct store		*store;
	/* the same store in threads: calls that may wait (storeq.h) */
	struct storeq		*storeq;
	/*
	 * Another store thread for a login's reads, so that they do not
	 * queue behind writes waiting for a lock (SQLite readers go on
	 * meanwhile); NULL: storeq serves them too.
	 */
	struct storeq		*storeq_read;
	/*
	 * The history thread (histprio.h): history rows, prune, group
	 * history removal, account deletion; NULL: storeq serves them.
	 */
	struct storeq		*storeq_hist;
	struct online		*online;
	/* an upgrade's old session table (node.h), or NULL */
	struct online		*online_old;
	struct authpool		*auth;
	struct online_slot_stats *stats;	/* this worker's figures */
	int			 slot;
	const char		*node_id;
	/*
	 * Hand a message to another worker of this node.  0 when it was
	 * sent or queued, -1 when it cannot be (the caller stores it).
	 */
	int	(*to_slot)(int slot, const struct chan_hdr *h,
		    const void *payload);
	/* Cluster mode (redis set): other nodes; NULL on a single node. */
	struct pubsub		*pubsub;
	/* node-wide failed-login throttling (guard.c); may be NULL */
	struct guard		*guard;
	/*
	 * Crash handover (worker.c, handover.h); NULL: none.  keep passes
	 * c's socket and its session's state (len bytes) to the master,
	 * 0 or -1; drop lets the master's copy go.
	 */
	int	(*handover_keep)(struct conn *c, const void *state,
		    size_t len);
	void	(*handover_drop)(struct conn *c);
};

void	chat_init(const struct chat_env *env);
/* What the worker installs in the connection layer: the calls below. */
extern const struct conn_handler chat_conn_handler;
/* conn_handler callbacks */
void	chat_frame(struct conn *c, const char *p, size_t n,
	    enum frame_status st);
void	chat_closing(struct conn *c);
void	chat_drained(struct conn *c);
/* c's memory goes: free its session (c->sess). */
void	chat_release(struct conn *c);
/* A message from another worker (channel). */
void	chat_channel_msg(const struct chan_hdr *h, const char *payload);
/*
 * pubsub_handler callbacks: a line from another node, a session lost to
 * another node, messages stored for a user logged in here.
 */
enum pubsub_result chat_remote_deliver(void *arg, int32_t uid,
	    const char *line, size_t len);
void	chat_presence_lost(void *arg, int32_t uid);
/* A group item for uids from another node (pubsub.h deliver_many). */
void	chat_remote_deliver_many(void *arg, const int32_t *uids, size_t n,
	    const char *line, size_t len, int32_t *keep, size_t *nkeep);
/* A failed-login key blocked cluster-wide (pubsub.h login_blocked). */
void	chat_login_blocked(void *arg, uint64_t key, int seconds);
/* The history barrier's cluster part (chat_barrier.c). */
void	chat_hist_asked(void *arg, const char *to);
void	chat_hist_heard(void *arg, uint32_t seq, long workers);
void	chat_hist_answered(void *arg, uint32_t seq,
	    enum pubsub_hist_state state);
void	chat_stored(void *arg, int32_t uid);
/*
 * Keep a plain chat this worker alone holds (line without its "\n") for
 * uid until it logs in: stored now, or kept in memory and stored by
 * chat_retry_stores once the store works again.  -1 only when it is
 * lost (memory bound reached; logged).
 */
int	chat_keep_offline_later(int32_t uid, const char *line, size_t len);
/*
 * Store the chats whose store failed (chat_keep_offline_later), oldest
 * first, until the store fails again: once a second, in a pass in the
 * store thread (one at a time), or here when there is none.
 */
void	chat_retry_stores(void);
/* The same on the loop (at exit, without a store thread). */
void	chat_retry_stores_sync(void);
/* How many chats wait (or are being stored by a pass). */
size_t	chat_retry_pending(void);
/* The worker closed its store queue (storeq_free): store on the loop. */
void	chat_storeq_closed(void);
/* At exit: drop what still waits for the store; how many were dropped. */
size_t	chat_retry_abandon(void);
/* History rows this worker holds go to the store: all, or when due. */
void	chat_history_flush(void);
void	chat_history_flush_due(void);
/* The worker exits: the history spool's backlog waits for the next start. */
void	chat_histspool_closing(void);
/* Logins that waited too long for a leaving mark go on (chat_leave.c). */
void	chat_leave_due(void);
/* Another worker cleared uid's leaving mark (CHAN_LEFT). */
void	chat_left(int32_t uid);
/* Answer the RESUME requests whose settle time is over (chat_resume.c). */
void	chat_resume_due(void);
/* From the heartbeat: remove history older than history_days (slot 0). */
void	chat_history_tick(void);
/* At exit, once pubsub_free ran: nothing more goes to other nodes. */
void	chat_pubsub_gone(void);
/*
 * Take up the session of a connection adopted from a dead worker
 * (state: what chat_handover_keep packed): log it in again without a
 * login, end any half-written line, deliver what was stored meanwhile.
 * 0, or -1 with why (the caller closes c).
 */
int	chat_adopt(struct conn *c, const char *state, size_t len, char *why,
	    size_t whylen);
/*
 * After the adoptions of an upgrade that made a new session table: this
 * slot's entries the new table still holds for sessions that ended on
 * the old worker meanwhile go (it only wrote the old table).
 */
void	chat_adopt_sweep(void);
/*
 * Binary upgrade: pass c's session to the master once more, with
 * HO_F_CLEAN and the partial request in c->in when clean (the worker
 * answered all it had read and wrote all of its output), and
 * HO_F_ANSWERS too when answers (chat_answers_due: acknowledgements
 * still to come from the store).  0 or -1 (not handed: a websocket, not
 * logged in, or the master has no copy).
 */
int	chat_handover_final(struct conn *c, int clean, int answers);
/*
 * c waits for nothing but acknowledged chats being stored, and wrote all
 * its output: it may be handed over now, its answers passed on later.
 */
int	chat_answers_due(const struct conn *c);
/*
 * Seconds a user's next session waits for the removals of stored copies
 * written to its last one (a plain client's, under way in the write
 * thread of the worker that wrote them): a login that finds a leaving
 * mark (chat_leave.c), an upgrade's adopter (chat_adopt.c).
 */
#define CHAT_REMOVAL_WAIT	3.0
/*
 * The old worker of an upgrade after the hand over: its own slot's
 * users are the next worker's.  chat_forward_answers passes what the
 * moved connections' jobs answered (final: the time is up, the rest is
 * lost) and says how many still wait.
 */
void	chat_slot_handed(void);
size_t	chat_forward_answers(int final);
/*
 * The new worker: connections adopted with HO_F_ANSWERS still waiting,
 * and ending that wait as lost (the old worker died or ran out of time).
 */
size_t	chat_answers_awaited(void);
void	chat_answers_expire(void);
/* Apply a reloaded configuration's limits. */
void	chat_reconfigure(const struct config *cfg);

#endif
