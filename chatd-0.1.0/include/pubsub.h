/*
 * pubsub.h - cluster mode: presence and delivery between nodes over
 * Redis, with hiredis' async API on the worker's libev loop.  The only
 * module that includes hiredis.
 *
 * Keys (prefix "chatd:"):
 *   chatd:node:<node_id>        boot id of the live node, SET EX 15,
 *                               refreshed every 5 s by each worker
 *   chatd:slot:<node_id>:<slot> generation of that worker slot, SET EX
 *                               15 by its worker at start and every 5 s
 *   chatd:on:<uid>              "<node_id> <boot> <slot> <gen>" while
 *                               uid is logged in somewhere
 *   chatd:q:<node_id>:<boot>:<slot>
 *                               list: the queue of one worker, items
 *                               "<uid> <line>" for users logged in on
 *                               it, or "<uid>": messages were stored
 *   chatd:queues                set of the queues, for reaping
 * A presence entry whose node key is gone or holds another boot (node
 * died or restarted) or whose slot key holds another generation (worker
 * died and was respawned) is stale: a new login takes it over, so
 * nobody stays "online" after a crash for longer than the keys' expiry.
 *
 * Delivery: a publish looks up the recipient's presence and appends to
 * that worker's queue in one script (not PUBLISH: a message must not
 * vanish because its receiver died a moment ago).  The worker takes
 * its queue (BLPOP) and delivers each line, or stores it when the user
 * left meanwhile.  When the presence is stale or missing (receivers 0)
 * or Redis is down (-1), the publisher stores it: exactly one side
 * stores.  The queue of a dead worker is reaped by any live one (every
 * 5 s, and at once by a login that takes over an entry of that worker,
 * before it is answered); a respawned worker takes over its
 * predecessor's queue.  A user who logged in between a publish and its
 * store would find the message only at the next login, so whoever
 * stores nudges (pubsub_nudge): the user's worker then hands the stored
 * messages over.
 *
 * Every call is non-blocking and its callback never runs inside the
 * call itself (failures are reported from the loop).  When Redis is
 * down, calls fail fast and the module reconnects with backoff (0.1 s
 * doubling to 5 s), then re-asserts the presence of its local users and
 * retries the releases it could not send.  A Redis that stops answering
 * for 3 s counts as down.  Needs Redis >= 5 (scripts with effects
 * replication).
 */
#ifndef CHATD_PUBSUB_H
#define CHATD_PUBSUB_H

#include <stddef.h>
#include <stdint.h>
#include <ev.h>

struct config;
struct pubsub;

struct pubsub_handler {
	/*
	 * A line published for uid, whose presence named this worker (or
	 * a dead worker whose queue this one reaped).  The handler
	 * delivers it or, if uid is not here, stores it.
	 */
	void	(*deliver)(void *arg, int32_t uid, const char *line,
		    size_t len);
	/*
	 * Optional.  uid, logged in here, was taken over by a login on
	 * another node while this worker could not reach Redis: one
	 * session per user, so the handler ends the local one.
	 */
	void	(*lost)(void *arg, int32_t uid);
	/*
	 * Optional.  Messages were stored for uid, whose presence names
	 * this worker: if uid is logged in here, hand them over now.
	 */
	void	(*stored)(void *arg, int32_t uid);
	void	*arg;
};

/*
 * Connect (asynchronously) to cfg->redis_host:redis_port (AUTH with
 * cfg->redis_password when set) as worker slot of node cfg->node_id,
 * started with boot id boot (the same in every worker of one run of
 * the node), with the given slot generation.  NULL with err only for
 * bad arguments or an unresolvable host; an unreachable Redis is
 * retried in the background.
 */
struct pubsub *pubsub_new(struct ev_loop *loop, const struct config *cfg,
	    const char *boot, int slot, uint32_t gen,
	    const struct pubsub_handler *h, char *err, size_t errlen);
/*
 * Mark this worker's presence entries stale (drop its slot key), take
 * what is left in its queue (the loop runs for at most ~3.5 s), then
 * disconnect.  Outstanding callbacks run with -1.  NULL is fine.
 */
void	pubsub_free(struct pubsub *ps);
/* 1 when both connections (commands, queue) are up. */
int	pubsub_up(const struct pubsub *ps);

/*
 * Claim uid for this worker: result 0 claimed, 1 online elsewhere
 * (live), -1 Redis unavailable (uid is still remembered as local and
 * claimed when Redis is back).  Unless the result is 1 the caller
 * calls pubsub_release when uid leaves.
 */
typedef void pubsub_claim_cb(void *arg, int result);
void	pubsub_claim(struct pubsub *ps, int32_t uid, pubsub_claim_cb *cb,
	    void *arg);
/* uid logged out here: drop the presence entry if it is still ours. */
void	pubsub_release(struct pubsub *ps, int32_t uid);

/*
 * online[i] is 1 when uids[i] is online on a live node; result -1:
 * Redis is down (online may then be NULL).
 */
typedef void pubsub_online_cb(void *arg, int result, const int32_t *uids,
	    const int *online, size_t n);
void	pubsub_query_online(struct pubsub *ps, const int32_t *uids, size_t n,
	    pubsub_online_cb *cb, void *arg);

/*
 * Send line to uid's worker.  receivers is 1 when it was queued for a
 * live worker (which then delivers or stores it), 0 when uid is online
 * nowhere (the caller stores the message), -1 when Redis is down (the
 * caller stores it too).  The module keeps its own copy of line and
 * hands it back.
 */
/*
 * Messages were just stored for uids: tell the workers of those who are
 * online (handler->stored).  Fire and forget; nothing when Redis is down.
 */
void	pubsub_nudge(struct pubsub *ps, const int32_t *uids, size_t n);

typedef void pubsub_publish_cb(void *arg, int32_t uid, long receivers,
	    const char *line, size_t len);
void	pubsub_publish(struct pubsub *ps, int32_t uid, const char *line,
	    size_t len, pubsub_publish_cb *cb, void *arg);

#endif
