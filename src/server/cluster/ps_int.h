/*
 * ps_int.h - what the files of the cluster module share: the module's
 * state, requests, and the Lua scripts.  Private to src/server/cluster.
 *
 *   shard.c     pubsub.h over several instances (struct pubsub), each
 *               one struct bus, chosen by the user id
 *   pubsub.c    one instance's links to Redis: connections, sending,
 *               watchdog, heartbeat, Sentinel, start and exit
 *   sentinel.c  where the primary is (redis = sentinel://...)
 *   presence.c  claims, releases, queries (local users set)
 *   queue.c     the reliable queue: publish, take, hand off, ack, reap
 *   cache.c     the presence cache (uid -> queue)
 *   hbarrier.c  the history barrier's asks and answers
 *   scripts.c   the Lua scripts
 *   busitem.c   signatures (no Redis)
 */
#ifndef CHATD_PS_INT_H
#define CHATD_PS_INT_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "busitem.h"
#include "pubsub.h"

#define BACKOFF_MIN		0.1	/* first reconnect after this */
#define BACKOFF_MAX		5.0
#define TICK_SECONDS		1.0	/* watchdog */
#define HEARTBEAT_SECONDS	5.0
#define REAP_SECONDS		5.0	/* look for queues of dead workers */
#define KEY_TTL_SECONDS		15	/* node and slot keys */
#define REPLY_TIMEOUT		3.0	/* silent this long: Redis is down */
#define REFETCH_DELAY		1.0	/* after re-asserting: fetch for local users */
#define REFETCH_PER_TICK	2000	/* of them per second */
#define POP_BLOCK_SECONDS	1	/* BLMOVE timeout */
#define POP_BATCH_N		100	/* items per batch taken */
#define REAP_BATCH_N		500
#define PUBLISH_BATCH_N		256	/* publishes per script call */
#define LOCATE_BATCH_N		1000	/* users per fan-out lookup */
#define WAIT_BURST_SECONDS	0.001	/* a BLMOVE answered faster: a burst */
#define RETRY_SECONDS		1.0	/* offer a RETRY item again */
#define RESEND_SECONDS		10.0	/* unanswered publishes, then -1 */
#define EXIT_WAIT_SECONDS	1.0
#define LOG_REPEAT_SECONDS	60.0	/* the same connect error, again */
#define CACHE_SECONDS		5.0	/* a cached presence is used this long */
#define CACHE_MAX		65536	/* entries; then it starts afresh */
#define SENTINEL_BACKOFF_MAX	0.5	/* a failover takes seconds: look often */
#define WAIT_REPLICA_MS		500	/* WAIT 1 this long, then go on */
#define NO_REPLICA_SECONDS	5.0	/* WAIT saw none: skip WAITs this long */
#define ACK_PREFIX		80	/* an ack names an element by its length
					   and these first bytes (its first
					   item's MAC): scripts.c says it too */
#define REQ_HEAD		80	/* room for "*<n>" EVALSHA <sha> */
#define ACK_PLAIN_MAX		65536	/* a batch up to this, all handed
					   off: plain LREMs, no script (Lua
					   hashes every byte it reads) */

enum script {
	SCRIPT_CLAIM,
	SCRIPT_RELEASE,
	SCRIPT_QUERY,
	SCRIPT_PUBLISH,
	SCRIPT_TAKE,
	SCRIPT_REAP,
	SCRIPT_REAPALL,
	SCRIPT_ACK,
	SCRIPT_LOCATE,
	SCRIPT_LOGIN_FAILED,
	NSCRIPTS,
	SCRIPT_NONE = -1
};
extern const char *const ps_scripts[NSCRIPTS];

/* a set of user ids (open addressing, linear probing) */
struct uidset {
	int32_t	*v;		/* 0: empty */
	size_t	 cap;		/* power of two */
	size_t	 n;
};

enum req_kind {
	/* on the cmd connection */
	REQ_AUTH,
	REQ_LOAD,
	REQ_HEARTBEAT,
	REQ_CLAIM,
	REQ_TAKEOVER,	/* a claim that displaces a live holder (resume) */
	REQ_REASSERT,
	REQ_RELEASE,
	REQ_QUERY,
	REQ_LOCATE,	/* which live queue holds each of these users */
	REQ_LOGIN,	/* cluster-wide failed-login counters */
	REQ_PUBLISH,	/* a batch of publishes (and nudges) */
	REQ_PUSH,	/* the same, into a cached queue: RPUSH */
	REQ_EXIT,
	REQ_WAKE,	/* a no-op item into our own queue: ends a BLMOVE */
	REQ_WAITREPL,	/* WAIT 1: a publish reached a replica */
	REQ_HIST_ASK,	/* PUBLISH chatd:hf: how many heard (hbarrier.c) */
	REQ_HIST_ANSWER,
	/* on the pop connection, in order */
	REQ_POPAUTH,
	REQ_RESUME,	/* LRANGE P: what we took and did not hand off */
	REQ_WAIT,	/* BLMOVE Q P */
	REQ_TAKE,
	REQ_REAP,	/* one dead worker's queue */
	REQ_REAPALL,
	REQ_ACK
};

/* One publish (or nudge: cb NULL) of a batch. */
struct pubreq {
	int32_t			 uid;
	char			*item;		/* signed; unsigned when seq */
	size_t			 ilen;
	uint64_t		 seq;		/* sealed when pushed (version 3) */
	size_t			 off;		/* "<uid> <line>" starts here */
	size_t			 uidlen;	/* "<uid> " (or "<uid>,...,<uid> ") */
	char			*queue;		/* a fan-out item: its queue (owned) */
	pubsub_publish_cb	*cb;
	void			*arg;
	ev_tstamp		 since;		/* unanswered since */
	enum pubsub_sent	 res;		/* answer, held for WAIT */
};

/*
 * Where users are: queues[i] the live queue of uids[i] (valid during the
 * call), or NULL: online nowhere.  result -1: Redis could not tell.
 */
typedef void bus_locate_cb(void *arg, int result, const int32_t *uids,
	    const char *const *queues, size_t n);

struct req {
	struct bus	*ps;
	enum req_kind	 kind;
	enum script	 script;
	int		 on_pop;
	int		 retried;	/* NOSCRIPT once: sent again with EVAL */
	int		 sent;		/* reached a connection */
	int		 argc;		/* arguments in cmd */
	char		*cmd;		/* REQ_HEAD bytes of room, then the
					   arguments in Redis' protocol */
	size_t		 cmdlen;	/* of the arguments */
	char		*hole;		/* the NULL argument's room (req_args) */
	int32_t		 uid;
	int32_t		*uids;		/* QUERY */
	size_t		 n;
	struct pubreq	*pubs;		/* PUBLISH */
	size_t		 npubs;
	char		*queue;		/* REAP */
	struct req	*held;		/* WAITREPL: the batches it covers */
	union {
		pubsub_claim_cb		*claim;
		pubsub_online_cb	*online;
		bus_locate_cb		*locate;
		pubsub_login_cb		*login;
	}		 cb;
	void		*arg;
	struct req	*next;		/* failed, waiting to be reported */
};

/*
 * The presence cache: uid -> the queue its items went to, kept while the
 * "sub" connection is subscribed to chatd:presence (every claim and
 * release publishes the uid there) and for CACHE_SECONDS at most.
 */
struct pcache_ent {
	int32_t		 uid;		/* 0: empty */
	int		 q;		/* index in queues; -1: online nowhere */
	ev_tstamp	 until;
};
struct pcache {
	struct pcache_ent *v;
	size_t		 cap, n;	/* cap a power of two */
	char		**queues;	/* interned queue names */
	size_t		 nqueues;
	int		 on;		/* subscribed: invalidations arrive */
};

struct busauth;

/* A queue with n pushes unanswered (publish.c). */
struct pushing {
	char		*q;
	int		 n;
};

/* What became of a batch of publishes. */
enum pub_outcome {
	PUB_OK,		/* answered: pubreq.res */
	PUB_LOST,	/* sent, no answer: maybe queued */
	PUB_FAILED	/* not queued */
};

struct qhold;

struct bus {
	struct ev_loop		*loop;
	struct pubsub_handler	 h;
	struct busauth		*auth;
	uint64_t		 rejected;
	char			*host;		/* numeric address */
	int			 port;
	/* sentinel://: the primary of master, as these Sentinels say */
	char			*master;
	char			**sentinels;	/* numeric addresses */
	int			*sentinel_ports;
	int			 nsentinels;
	int			 sentinel_i;	/* the one to ask next */
	void			*sen;		/* the question under way */
	ev_tstamp		 sen_since;
	int			 need_primary;	/* ask before connecting */
	uint64_t		 failovers;	/* primary moved, followed */
	uint64_t		 unreplicated;	/* WAIT saw no replica */
	struct req		*unconf;	/* answered, no WAIT sent yet */
	struct req		*wait_out;	/* the WAIT under way */
	ev_tstamp		 no_replica_until;	/* no WAIT till then */
	char			*password;
	char			*node_id;
	char			 boot[32];
	int			 slot;
	uint32_t		 gen;
	char			*me;		/* our presence value */
	char			*queue;		/* Q: chatd:q:<node>:<boot>:<slot> */
	char			*plist;		/* P: Q ":p" */
	char			*node_key;
	char			*slot_key;
	char			 gen_str[16];

	void			*cmd;		/* redisAsyncContext */
	void			*pop;
	void			*sub;		/* SUBSCRIBE chatd:presence */
	struct pcache		 cache;
	int			 cmd_up;	/* setup answered */
	int			 pop_up;	/* took from the queue */
	int			 was_up;	/* for "connection lost" once */
	ev_tstamp		 cmd_wait;	/* oldest unanswered since */
	size_t			 cmd_pending;
	ev_tstamp		 pop_wait;
	size_t			 pop_pending;
	ev_tstamp		 last_heartbeat;
	ev_tstamp		 last_reap;
	char			 sha[NSCRIPTS][41];

	/* the queue */
	int			 fetching;	/* a take/resume/reap is out */
	int			 more;		/* the last take was full */
	ev_tstamp		 wait_sent;	/* the last BLMOVE went out */
	int			 resume;	/* read P before taking more */
	ev_tstamp		 retry_at;	/* RETRY items wait until then */
	struct req		*reaps;		/* dead queues to reap */
	struct qhold		*hold;		/* a batch whose stores are
						   under way: no fetch */
	struct pubreq		*batch;		/* publishes of this round */
	size_t			 nbatch, batch_cap;
	struct pubreq		*held;		/* for a queue whose push is out */
	size_t			 nheld, held_cap;
	struct pushing		*pushing;	/* queues with a push out */
	size_t			 npushing;
	struct pubreq		*resend;	/* answer lost: send again */
	size_t			 nresend, resend_cap;
	ev_prepare		 flush;		/* sends the batch */

	struct uidset		 local;		/* claimed here, not released */
	struct uidset		 unreleased;	/* releases Redis never saw */
	struct uidset		 nudge_later;	/* nudges Redis never saw */
	struct uidset		 refetch;	/* local users to fetch for */
	ev_tstamp		 refetch_at;	/* after a reconnect, from then */

	double			 backoff;
	ev_timer		 retry;
	ev_timer		 tick;
	ev_timer		 failt;		/* report failures from the loop */
	struct req		*failed, **failed_tail;

	char			 last_err[128];	/* rate-limit connect errors */
	ev_tstamp		 last_err_at;
	int			 item_version;	/* written: cluster_item_version */
	int			 inst;		/* which instance of the config */
	uint32_t		 hf_seq;	/* our latest history barrier ask */
	char			*hf_me;		/* how answers name it: " <node>
						   <boot>.<slot> <seq> " */
	char			**hf_from;	/* who answered it (hbarrier.c) */
	size_t			 hf_n, hf_cap;
	int			 exiting;
	int			 exit_done;
	int			 draining;
	int			 drained;
};

/*
 * One instance of the bus: the interface of pubsub.h (shard.c spreads
 * the users over the instances), for cfg's instance inst.
 */
struct bus	*bus_new(struct ev_loop *, const struct config *, int,
		    const char *, int, uint32_t, const struct pubsub_handler *,
		    char *, size_t);
void		 bus_free(struct bus *);
int		 bus_up(const struct bus *);
uint64_t	 bus_rejected(const struct bus *);
uint64_t	 bus_failovers(const struct bus *);
uint64_t	 bus_unreplicated(const struct bus *);
void		 bus_claim(struct bus *, int32_t, pubsub_claim_cb *, void *);
void		 bus_take_over(struct bus *, int32_t, pubsub_claim_cb *,
		    void *);
/* Someone claimed uid (value: theirs; NULL: a release). */
void		 presence_changed(struct bus *, int32_t, const char *);
void		 bus_release(struct bus *, int32_t);
void		 bus_query_online(struct bus *, const int32_t *, size_t,
		    pubsub_online_cb *, void *);
void		 bus_nudge(struct bus *, const int32_t *, size_t);
enum pubsub_route bus_route(struct bus *, int32_t);
void		 bus_publish(struct bus *, int32_t, const char *, size_t,
		    pubsub_publish_cb *, void *);

void		 bus_locate(struct bus *, const int32_t *, size_t,
		    bus_locate_cb *, void *);
int		 bus_push(struct bus *, const char *, const int32_t *, size_t,
		    const char *, size_t, pubsub_publish_cb *, void *);
void		 bus_login(struct bus *, int, const char *const *, int,
		    const int *, int, pubsub_login_cb *, void *);

/*
 * The instances (shard.c): each user belongs to v[shard_of(n, uid)].
 */
struct pubsub {
	struct bus	**v;
	int		 n;
};
int		 shard_of(int, int32_t);

/* pubsub.c */
struct req	*req_new(struct bus *, enum req_kind, enum script);
void		 req_free(struct req *);
int		 req_args(struct req *, int, const char *const *,
		    const size_t *);
int		 req_strs(struct req *, int, const char *const *);
int		 req_send(struct bus *, struct req *);
void		 req_fail(struct bus *, struct req *);
void		 send_plain(struct bus *, enum req_kind, int,
		    const char **);
void		 log_conn_error(struct bus *, const char *, const char *);
void		 check_up(struct bus *);
void		 ps_drop_pop(struct bus *, const char *);
void		 ps_drop_all(struct bus *, const char *);
void		 schedule_retry(struct bus *);
void		 open_missing(struct bus *);

/* sentinel.c */
void		 sentinel_ask(struct bus *);
void		 sentinel_tick(struct bus *);

/* presence.c */
int		 uidset_has(const struct uidset *, int32_t);
int		 uidset_add(struct uidset *, int32_t);
void		 uidset_del(struct uidset *, int32_t);
void		 uidset_clear(struct uidset *);
int32_t		*uidset_list(const struct uidset *, size_t *);
void		 presence_setup(struct bus *);
void		 presence_tick(struct bus *);
void		 presence_done(struct bus *, struct req *, void *);

/* cache.c */
const char	*pcache_get(struct pcache *, int32_t, ev_tstamp);
void		 pcache_put(struct pcache *, int32_t, const char *, size_t,
		    ev_tstamp);
int		 pcache_away(struct pcache *, int32_t, ev_tstamp);
void		 pcache_del(struct pcache *, int32_t);
void		 pcache_clear(struct pcache *);

/* fanout.c: ps goes away; fans whose pushes are held then fail them */
void		 fanout_forget(const struct pubsub *);
void		 bus_reject(struct bus *, enum bus_verdict,
		    const struct bus_item *, const char *);

/* hbarrier.c */
void		 hbar_published(struct bus *, struct req *, void *);
void		 hbar_message(struct bus *, int, int, const char *, size_t);
void		 hbar_forget(struct bus *);

/* queue.c */
void		 queue_next(struct bus *);
void		 queue_done(struct bus *, struct req *, void *);
void		 queue_publish_done(struct bus *, struct req *, void *);
void		 queue_wait_done(struct bus *, struct req *, void *);
void		 queue_flush(struct bus *);
void		 queue_resend(struct bus *);
/* publish.c: once a second, and at exit */
void		 publish_tick(struct bus *);
void		 publish_free(struct bus *);
void		 queue_tick(struct bus *);
void		 queue_free(struct bus *);
void		 queue_reap(struct bus *, const char *);

#endif
