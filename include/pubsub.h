/*
 * pubsub.h - cluster mode: presence and delivery between nodes over
 * Redis, with hiredis' async API on the worker's libev loop.  The only
 * module that includes hiredis (src/server/cluster/).
 *
 * Several instances (redis = a,b,... or sentinel://.../name1,name2):
 * each is a complete bus as described here, and each user belongs to
 * one of them by util_hash32(uid) (its high bits): claims, releases,
 * queries, nudges and publishes for uid go to that instance only, so
 * the publish script reads presence and pushes in one step as below.
 * Each worker holds a queue on every instance; pubsub_up() is 1 when
 * all are up; the counters are summed.
 *
 * Keys (prefix "chatd:", on each instance):
 *   chatd:node:<node_id>        boot id of the live node, SET EX 15,
 *                               refreshed every 5 s by each worker
 *   chatd:slot:<node_id>:<slot> generation of that worker slot, SET EX
 *                               15 by its worker at start and every 5 s
 *   chatd:on:<uid>              "<node_id> <boot> <slot> <gen>" while
 *                               uid is logged in somewhere
 *   chatd:q:<node_id>:<boot>:<slot>       Q: the queue of one worker
 *   chatd:q:<node_id>:<boot>:<slot>:p     P: what it took and has not
 *                               handed off yet (its processing list)
 *   chatd:queues                set of the queues, for reaping
 *   chatd:presence              channel: uids whose presence changed
 *   chatd:hf, chatd:hfa         channels: the history barrier's asks
 *                               and answers (pubsub_hist_ask)
 * A presence entry whose node key is gone or holds another boot (node
 * died or restarted) or whose slot key holds another generation (worker
 * died and was respawned) is stale: a new login takes it over.
 *
 * Items.  Every item a node puts on Redis is signed (HMAC-SHA256 under
 * the cluster key, cluster_key_file):
 *   <64 hex MAC> <node> <ms since epoch> <boot>.<slot>.<seq> <uid>[ <line>]
 * the MAC covering everything after its blank.  "<uid> <line>" is a
 * line to deliver (or store); "<uid>" alone says messages were stored
 * for uid; "0" is a wake-up (see reap).  A receiver drops, logs (once
 * per source) and counts an item whose MAC fails under both keys (cluster_key_file_old is accepted
 * during a rollover), that is older than cluster_max_age or more than a
 * minute in the future, or whose MAC it already handed off (a bounded
 * memory of the last 2^18 items): pubsub_rejected() for the metrics.
 * The node name and time inside the MAC are the sender's; whoever
 * holds the key can sign, so the key is what must be kept secret.
 * Versions: such an item is version 1; "v2 " then "<len>:<item>" for
 * each of several version 1 items is a version 2 batch (one list
 * element: pushed, taken and acknowledged as one; each item inside is
 * checked, handed off and remembered on its own, and when some must
 * wait, the batch is replaced in P by a batch of those, re-signed).
 * "v3 <64 hex MAC> <node> <ms> <boot>.<slot> " then "<seq>.<len>:<body>"
 * for each of several bodies ("<uid>[ <line>]") is a version 3 sealed
 * batch: one MAC over it all, checked (and its age) once per element;
 * each item inside is handed off and remembered on its own, by
 * (node, boot.slot, seq) (a bit in a window of that source's last 2^18
 * seqs, busitem.c): the seq is drawn when the item is published
 * and kept when a publish whose answer was lost is sealed again into
 * another batch, so the receiver still knows it (what must wait is
 * re-signed one by one into a version 2 batch, as above).  A
 * receiver drops (counts, logs once) an item of a version newer than
 * it reads.  cluster_item_version = 1 writes neither batches nor member
 * lists, for a cluster that still has nodes of an older release; 3 is
 * written only when configured (the default is 2), once every node
 * reads it: an older node would drop it, whether pushed to it or
 * reaped by it from a dead node's queue, so that no per-destination
 * choice could make it safe while older nodes live.
 *
 * The queue protocol: at-least-once, removed only after a hand-off.
 *   publish   one script looks up the presence and RPUSHes to Q of the
 *             worker it names, and answers with Q (no PUBLISH: a message
 *             must outlive a receiver that died a moment ago).  Publishes
 *             made in one loop iteration go in one script call.  Each
 *             worker caches uid -> Q for 5 s while it is subscribed to
 *             chatd:presence, where every claim and release publishes
 *             the uid (PUBLISH as a wake-up for caches, never a copy of
 *             a message): publishes to cached users go as one RPUSH per
 *             destination queue per loop iteration, of one version 2
 *             batch when there are several; while a push into a queue
 *             is unanswered, what comes for that queue is held for the
 *             next (one push out per queue: under load a push carries
 *             several iterations' publishes, idle nothing waits).  A stale entry costs
 *             time, not a message: the worker it names stores what is
 *             not for it (and nudges), a dead worker's queue is reaped.
 *             Losing the subscription empties and disables the cache.
 *   take      BLMOVE Q P (waiting up to 1 s), then a script moving up
 *             to 100 more from Q to P: taking never removes an item
 *             from Redis.  A wake-up is implicit: BLMOVE returns as
 *             soon as something is pushed.
 *   hand off  the handler returns DELIVERED (written to the user's
 *             connection or passed to the worker that holds it) or
 *             STORED (committed to the store), or RETRY (neither
 *             worked, e.g. the database is down), or PENDING (a store
 *             thread is storing it: the batch's ack and the next take
 *             wait until it says STORED or RETRY; the loop goes on).
 *             A crash meanwhile leaves the batch in P: taken again,
 *             stored again if it had committed (a repeat, same smid).
 *   ack       one script per batch, on the same connection before the
 *             next take, removes the handed-off elements from P and
 *             replaces each RETRY item by a fresh signature of it at
 *             P's tail (so that it does not age out while it waits).
 *             By reference: the ack names each element of the batch,
 *             in the order taken, by its length and its first 80 bytes
 *             (which hold its first item's MAC: an element so named is
 *             that element, or a byte-for-byte twin of it, as a publish
 *             sent again; twins are interchangeable); only re-signed
 *             items travel whole.  P is this worker's alone, and
 *             between a take and its ack only two things change it: the
 *             take appended the batch at P's tail (a resume read P's
 *             head), and a reaper may have cut any number of elements
 *             from P's head.  So the script looks for the batch as P's
 *             tail, then as its head, checking every element, and
 *             removes that range (LTRIM); when neither matches (a
 *             reaper took part of it) it looks each element up in P and
 *             removes those found.  What is not found is not touched:
 *             a reaper moved it to its own P, from where it is handed
 *             off (again: a repeat, same smid); the ack only ever
 *             touches this worker's P.  So an ack sent twice, or late
 *             by a worker stalled past the reap window, removes nothing
 *             it should not (tests/unit/check_queue.c).  A batch whose
 *             elements were all handed off, 64 KiB at most, is acked
 *             instead by a plain LREM P 1 <element> per element,
 *             pipelined: the element whole, so that it removes that
 *             element or a twin of it, and nothing if a reaper took
 *             it; cheaper for Redis than the script, whose LRANGE
 *             makes a Lua string of each element (hashing every byte).
 *   resume    at start, after a reconnect and 1 s after a RETRY, the
 *             worker reads P again (LRANGE) and hands off what is
 *             there.  An item it already handed off in this process
 *             (its ack was lost) is only acknowledged again.
 *   reap      a worker whose queue has no taker (node gone or
 *             restarted, slot key expired) is reaped by any live one:
 *             a script moves its P and Q items into the reaper's own
 *             P, so a reaper that dies leaves them to the next one.
 *             A worker reaps only while its store works (no RETRY
 *             pending).  A login that takes over a dead worker's user
 *             is answered at once; that worker's queue is reaped in
 *             the background (a "0" item pushed into the reaper's
 *             own queue ends its BLMOVE wait, so the reap starts at
 *             once), and what is stored nudges the user.
 * Crash cases: after take (items in P, not handed off): the successor
 * (a respawned worker has the same Q and P) or a reaper hands them off.
 * After the write or store, before the ack: they are handed off again
 * (every chat carries its smid: a client that acknowledges drops the
 * repeat, and a plain client's connection is not written a smid among
 * the last 256 it was written, chat_seen.c; a stored copy is stored
 * twice).  After the ack: gone from Redis, held by the connection or
 * the store.  Redis itself: with appendonly yes / appendfsync everysec
 * a Redis crash loses at most the last second of queue changes (items
 * may reappear or vanish); a clean restart loses nothing.
 *
 * Publisher: a publish whose answer never came (connection lost after
 * sending) is sent again, with the same bytes, once Redis is back (the
 * receiver drops it if it already handed it off); if Redis is not back
 * within 10 s the caller is told -1 and stores it: then a copy may be
 * both queued and stored (logged).  Never sent: -1 at once.
 * A caller need not wait for the answer to go on (chat_route.c lets a
 * sender's next request in while its chat to a KNOWN queue, see
 * pubsub_route, is out): what it owes the client (a stored copy when
 * the answer is DOWN or AWAY) it does when the answer comes.
 *
 * Sentinel (redis = sentinel://host:port,.../name): before connecting,
 * and after any lost link, the worker asks the Sentinels in turn for
 * the primary of name (SENTINEL get-master-addr-by-name); if it moved,
 * every link to the old one is dropped (pubsub_failovers() counts it),
 * and a READONLY answer (a demoted primary) is taken as a lost link.
 * A publish batch's callers are answered only once a replica has it
 * (one WAIT 1 of 0.5 s at a time, covering every batch answered before
 * it was sent), so the promotion of an in-step replica loses nothing;
 * if the link goes first the batch is sent again (see Publisher).  A
 * WAIT that saw no replica lets its batches go on, and no WAIT is sent
 * for 5 s (pubsub_unreplicated() counts them): availability first when
 * the replica is gone, as just after a failover.  Claims and acks are not waited for: a claim lost in
 * a failover is re-asserted at the reconnect, a lost ack or take means
 * a repeat the receiver drops.
 *
 * Liveness: a link is judged dead only after reading what already
 * arrived on it (a stalled loop runs its overdue timers first).  When
 * Redis is down, calls fail fast and the module reconnects with backoff
 * (0.1 s doubling to 5 s), then re-asserts the presence of its local
 * users and retries the releases it could not send.  A Redis that stops
 * answering for 3 s counts as down.  Needs Redis >= 6.2 (BLMOVE).
 *
 * Every call is non-blocking and its callback never runs inside the
 * call itself (failures are reported from the loop).
 */
#ifndef CHATD_PUBSUB_H
#define CHATD_PUBSUB_H

#include <stddef.h>
#include <stdint.h>
#include <ev.h>

struct config;
struct pubsub;

/* What the handler did with a line: only RETRY keeps it in Redis. */
enum pubsub_result {
	PUBSUB_DELIVERED,	/* written to uid's connection (or worker) */
	PUBSUB_STORED,		/* committed to the store */
	PUBSUB_RETRY,		/* neither: keep it, offer it again later */
	PUBSUB_PENDING		/* a store is under way (pubsub_pending) */
};

/*
 * A store under way for the item being handed off.  Inside deliver or
 * deliver_many only (else NULL, as when out of memory): the handler
 * takes one token, starts its store (a store thread) and answers
 * PUBSUB_PENDING; the item's batch is acknowledged only once every
 * token is back, and this worker takes nothing more from its queue
 * meanwhile (a user's later items cannot overtake the stored ones; the
 * worker's loop goes on).  pubsub_pending_done gives it back:
 * PUBSUB_STORED (committed: the item may go), PUBSUB_RETRY (failed: the
 * item stays in Redis, re-signed, and is offered again; for a list item
 * whole, so those it reached live see it again), or PUBSUB_DELIVERED at
 * once, inside the handler's call, when no store was started after all
 * (the handler's answer then decides).
 */
struct pubsub_pending;
struct pubsub_pending *pubsub_pending(void);
void	pubsub_pending_done(struct pubsub_pending *, enum pubsub_result);

/* An answer to a history barrier's ask (pubsub_hist_ask). */
enum pubsub_hist_state {
	PUBSUB_HIST_STORING,	/* rows are being stored: wait on */
	PUBSUB_HIST_STORED	/* all it had kept when asked */
};

struct pubsub_handler {
	/*
	 * A line published for uid, whose presence named this worker (or
	 * a dead worker whose queue this one reaped).  The handler
	 * delivers it or, if uid is not here, stores it.
	 */
	enum pubsub_result (*deliver)(void *arg, int32_t uid,
		    const char *line, size_t len);
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
	/*
	 * Optional (else deliver, one by one).  A group line for uids
	 * [0..n), all named to this worker by one item: deliver it to
	 * each, or store it for those not here.  Those neither delivered
	 * nor stored go into keep (room for n), *nkeep of them: the item
	 * stays in Redis for them alone.
	 */
	void	(*deliver_many)(void *arg, const int32_t *uids, size_t n,
		    const char *line, size_t len, int32_t *keep, size_t *nkeep);
	/*
	 * Optional.  A failed-login key (see pubsub_login_failed) reached
	 * its limit somewhere in the cluster: blocked for seconds.
	 */
	void	(*login_blocked)(void *arg, uint64_t key, int seconds);
	/*
	 * Optional: the history barrier (pubsub_hist_ask).  A worker asks
	 * this one to store the history rows it kept: answer with
	 * pubsub_hist_answer(to) once they are stored (to is the module's;
	 * copy it to keep it).  Then, for an ask of this worker's: how many
	 * workers heard it (-1: none could be asked), and an answer.
	 */
	void	(*hist_asked)(void *arg, const char *to);
	void	(*hist_heard)(void *arg, uint32_t seq, long workers);
	void	(*hist_answered)(void *arg, uint32_t seq,
		    enum pubsub_hist_state state);
	void	*arg;
};

/*
 * Connect (asynchronously) to cfg->redis_host:redis_port, or to the
 * primary that cfg->redis_sentinel_host/port name for cfg->redis_master
 * (AUTH with
 * cfg->redis_password when set) as worker slot of node cfg->node_id,
 * started with boot id boot (the same in every worker of one run of
 * the node), with the given slot generation; items are signed with
 * cfg->cluster_key.  NULL with err only for bad arguments, a missing
 * key or an unresolvable host; an unreachable Redis is retried in the
 * background.
 */
struct pubsub *pubsub_new(struct ev_loop *loop, const struct config *cfg,
	    const char *boot, int slot, uint32_t gen,
	    const struct pubsub_handler *h, char *err, size_t errlen);
/*
 * Mark this worker's presence entries stale (drop its slot key), hand
 * off what is left in its queue (the loop runs for at most ~3.5 s),
 * then disconnect.  Outstanding callbacks run with -1.  NULL is fine.
 */
void	pubsub_free(struct pubsub *ps);
/* 1 when the command and queue connections are up. */
int	pubsub_up(const struct pubsub *ps);
/* Items refused since start: bad MAC, too old, or seen before. */
uint64_t pubsub_rejected(const struct pubsub *ps);
/* Sentinel mode: failovers followed (the primary moved) since start. */
uint64_t pubsub_failovers(const struct pubsub *ps);
/* Sentinel mode: publish batches no replica confirmed within 1 s. */
uint64_t pubsub_unreplicated(const struct pubsub *ps);

enum pubsub_claim_result {
	PUBSUB_CLAIMED,		/* uid is this worker's */
	PUBSUB_ELSEWHERE,	/* online on another live worker or node */
	PUBSUB_UNREACHABLE	/* Redis unavailable: uid is still remembered
				   as local and claimed when Redis is back */
};

/*
 * Claim uid for this worker.  Unless the result is PUBSUB_ELSEWHERE
 * the caller calls pubsub_release when uid leaves.
 */
typedef void pubsub_claim_cb(void *arg, enum pubsub_claim_result result);
void	pubsub_claim(struct pubsub *ps, int32_t uid, pubsub_claim_cb *cb,
	    void *arg);
/*
 * The same for a resumed session (token login): a live holder on
 * another node is displaced, never PUBSUB_ELSEWHERE.  That holder hears
 * of it on chatd:presence ("<uid> <new value>"), checks with Redis and
 * ends its session there (handler->lost), without a release.
 */
void	pubsub_take_over(struct pubsub *ps, int32_t uid, pubsub_claim_cb *cb,
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
 * Messages were just stored for uids: tell the workers of those who are
 * online (handler->stored).  Fire and forget; nothing when Redis is down.
 */
void	pubsub_nudge(struct pubsub *ps, const int32_t *uids, size_t n);

/*
 * Send line to uid's worker.  The callback hears what became of it (see
 * enum pubsub_sent).  The module keeps its own copy of line and hands it
 * back.  cb may be NULL: nobody needs to know.
 */
enum pubsub_sent {
	PUBSUB_QUEUED,	/* queued for a live worker: it delivers or stores */
	PUBSUB_AWAY,	/* uid is online nowhere: the caller stores it */
	PUBSUB_DOWN	/* Redis is down or did not answer within 10 s: the
			   caller stores it too */
};
typedef void pubsub_publish_cb(void *arg, int32_t uid, enum pubsub_sent sent,
	    const char *line, size_t len);
void	pubsub_publish(struct pubsub *ps, int32_t uid, const char *line,
	    size_t len, pubsub_publish_cb *cb, void *arg);

/*
 * How a publish to uid would travel now.  KNOWN: uid's queue is in the
 * presence cache, so the item is pushed into that queue behind every
 * earlier publish to it (one queue keeps its order); a caller may go
 * on before the answer.  LOOKUP: a script finds the queue (its push may
 * overtake publishes still held for a push in flight).
 */
enum pubsub_route {
	PUBSUB_ROUTE_LOOKUP,
	PUBSUB_ROUTE_KNOWN
};
enum pubsub_route pubsub_route(struct pubsub *ps, int32_t uid);

/*
 * Group fan-out: send line to every one of uids (none of them on this
 * node) with one item per destination worker queue, not one per user.
 * Where each user is comes from the presence cache, else from one
 * script per instance (SCRIPT_LOCATE: two MGETs however many users);
 * then the users are grouped by queue and each queue gets one signed
 * item "<uid>,<uid>,... <line>" (one RPUSH per queue and loop
 * iteration).  The receiving worker delivers to each listed user or
 * stores for those who left it (deliver_many), exactly once: the item
 * is acknowledged, or re-signed for the users not yet handled.
 *   located  called once when it is known who is online nowhere (or
 *            every user, Redis being down): away[0..naway); the caller
 *            stores for them before anything is queued, so that an
 *            answer cannot reach their offline queue first.
 *   done     called once at the end: failed[0..nfailed) could not be
 *            queued after all (the caller stores for them).  A copy
 *            whose answer was lost may be both queued and stored, as
 *            with pubsub_publish.
 * Both may run inside the call (everything cached, out of memory).
 * A rolling upgrade: older nodes drop a list item as malformed (logged);
 * with cluster_item_version = 1 each user gets an item of its own
 * instead (all in one RPUSH: one outcome, heard once).
 */
struct pubsub_fanout {
	void	(*located)(void *arg, const int32_t *away, size_t naway);
	void	(*done)(void *arg, const int32_t *failed, size_t nfailed);
};
void	pubsub_fanout(struct pubsub *ps, const int32_t *uids, size_t n,
	    const char *line, size_t len, const struct pubsub_fanout *cb,
	    void *arg);
/*
 * Inside located only (else NULL): the items wait until the caller,
 * having stored for those away in a store thread, calls
 * pubsub_fanout_go (exactly once; inside located it takes the hold back
 * unused).  The store then still comes first, off the loop.
 */
struct pubsub_fanout_wait;
struct pubsub_fanout_wait *pubsub_fanout_hold(void);
void	pubsub_fanout_go(struct pubsub_fanout_wait *);

/*
 * Failed logins counted cluster-wide, beside guard.c's node-local
 * counters: keys are guard.c's (the same on every node), counted on the
 * instance of keys[0] with INCR and EXPIRE window in one script.  A key
 * that reaches max[i] failures is blocked there for block seconds,
 * doubling for each block in a row (up to 64 times), and every worker
 * of every node is told (handler->login_blocked).  Fire and forget: when
 * Redis is down only the node-local counters count.
 */
typedef void pubsub_login_cb(void *arg, int result, long value);
void	pubsub_login_failed(struct pubsub *ps, const uint64_t *keys,
	    const int *max, int n, int window, int block);
/* keys[0] logged in: its counter starts afresh. */
void	pubsub_login_ok(struct pubsub *ps, uint64_t key);

/*
 * The history barrier across the cluster (src/server/chat_barrier.c):
 * ask every worker of every node to store the history rows it kept, so
 * that a read sees every chat accepted anywhere before it.  The ask is
 * published on chatd:hf of the first instance that is up, signed as an
 * item is ("hf <boot>.<slot> <seq>" after the item head); PUBLISH's
 * answer says how many workers heard it (handler->hist_heard: this one
 * among them, as every worker of this release subscribes; a node of an
 * older release does not, and is not waited for).  Each answers on
 * chatd:hfa of that instance, signed too ("hfa <node> <boot>.<slot>
 * <seq> <its boot>.<slot>": a forged answer would make a read miss
 * rows), and handler->hist_answered hears each answerer's STORED once;
 * "hfb ..." alike says STORING, as often as the answerer sends it.  An
 * ask or answer lost with a connection is not sent again: the asker's
 * time limit covers it.  -1: no instance is up (nothing was sent).
 */
int	pubsub_hist_ask(struct pubsub *ps, uint32_t seq);
void	pubsub_hist_answer(struct pubsub *ps, const char *to,
	    enum pubsub_hist_state state);

#endif
