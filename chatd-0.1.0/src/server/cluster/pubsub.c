/*
 * pubsub.c - cluster mode over Redis: presence claims and queries, and
 * delivery between nodes, with hiredis' async API on the worker's libev
 * loop.  The only file that includes hiredis.
 *
 * Two connections per worker: "cmd" for commands and scripts, "pop"
 * for taking this worker's queue (BLPOP, then batches).  Messages for a
 * worker wait in a Redis list rather than going through PUBLISH: a
 * published message is gone when its receiver died a moment ago, or
 * when Redis has not yet noticed that a crashed machine's connection is
 * dead, and the publisher, told "1 receiver", stores nothing.  A list
 * keeps it until a live worker takes it: its owner, or, once the owner
 * is known dead, whoever reaps the list.  One queue per worker (rather
 * than one channel per user) also means nothing to set up on each login
 * and at most one taker for each message.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "cfg.h"
#include "log.h"
#include "pubsub.h"

#define BACKOFF_MIN		0.1	/* first reconnect after this */
#define BACKOFF_MAX		5.0
#define TICK_SECONDS		1.0	/* watchdog */
#define HEARTBEAT_SECONDS	5.0
#define REAP_SECONDS		5.0	/* look for queues of dead workers */
#define KEY_TTL_SECONDS		15	/* node and slot keys */
#define REPLY_TIMEOUT		3.0	/* silent this long: Redis is down */
#define POP_BLOCK_SECONDS	1	/* BLPOP timeout */
#define POP_BATCH		"100"	/* items per batch taken */
#define POP_BATCH_N		100
#define REAP_BATCH		"500"
#define REAP_BATCH_N		500
#define EXIT_WAIT_SECONDS	1.0
#define LOG_REPEAT_SECONDS	60.0	/* the same connect error, again */

/* ---- scripts ----------------------------------------------------------- */

/*
 * live(v): v is a presence value "<node> <boot> <slot> <gen>" whose
 * node key still holds boot and whose slot key still holds gen.  It
 * also gives the node, boot and slot, which name the worker's queue
 * chatd:q:<node>:<boot>:<slot>.
 */
#define LUA_LIVE \
	"local function live(v)\n" \
	"  if not v then return false end\n" \
	"  local n, b, s, g = string.match(v, '^(.*) (%x+) (%d+) (%d+)$')\n" \
	"  if not n then return false end\n" \
	"  if redis.call('GET', 'chatd:node:' .. n) ~= b then\n" \
	"    return false\n" \
	"  end\n" \
	"  if redis.call('GET', 'chatd:slot:' .. n .. ':' .. s) ~= g then\n" \
	"    return false\n" \
	"  end\n" \
	"  return true, n, b, s\n" \
	"end\n"

/*
 * qdead(n, b, s): the queue of worker slot s of run b of node n has no
 * taker any more: the node is gone or restarted, or the slot has not
 * announced itself for KEY_TTL_SECONDS.  (A respawned worker takes its
 * predecessor's queue over: same node, run and slot.)
 */
#define LUA_QDEAD \
	"local function qdead(n, b, s)\n" \
	"  return redis.call('GET', 'chatd:node:' .. n) ~= b or\n" \
	"      redis.call('EXISTS', 'chatd:slot:' .. n .. ':' .. s) == 0\n" \
	"end\n" \
	"local function qpop(k, max)\n" \
	"  local r = redis.call('LRANGE', k, 0, max - 1)\n" \
	"  if #r > 0 then redis.call('LTRIM', k, #r, -1) end\n" \
	"  return r\n" \
	"end\n"

enum script {
	SCRIPT_CLAIM,
	SCRIPT_RELEASE,
	SCRIPT_QUERY,
	SCRIPT_PUBLISH,
	SCRIPT_NUDGE,
	SCRIPT_POP,
	SCRIPT_REAP,
	SCRIPT_REAPALL,
	NSCRIPTS
};

static const char *const scripts[NSCRIPTS] = {
	/*
	 * KEYS[1] presence key; ARGV: our value, our node, our boot.
	 * {1} when live on another node (or another run of ours), else
	 * taken: {0}, or {0, queue} when the previous holder's worker is
	 * dead and left messages in its queue (the caller reaps them
	 * before answering the login).  Our own node's entries are ours
	 * to overwrite: its session table already said "not online".
	 */
	[SCRIPT_CLAIM] = LUA_LIVE LUA_QDEAD
	"local v = redis.call('GET', KEYS[1])\n"
	"local q = nil\n"
	"if v and v ~= ARGV[1] then\n"
	"  local ok, n, b = live(v)\n"
	"  if ok and (n ~= ARGV[2] or b ~= ARGV[3]) then return {1} end\n"
	"  local n2, b2, s2 = string.match(v, '^(.*) (%x+) (%d+) %d+$')\n"
	"  if not ok and n2 then\n"
	"    local k = 'chatd:q:' .. n2 .. ':' .. b2 .. ':' .. s2\n"
	"    if redis.call('LLEN', k) > 0 and qdead(n2, b2, s2) then\n"
	"      q = k\n"
	"    end\n"
	"  end\n"
	"end\n"
	"redis.call('SET', KEYS[1], ARGV[1])\n"
	"if q then return {0, q} end\n"
	"return {0}\n",

	/* KEYS[1] presence key; ARGV[1] our value: delete it if still ours. */
	[SCRIPT_RELEASE] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
	"  redis.call('DEL', KEYS[1])\n"
	"end\n"
	"return 0\n",

	/* KEYS presence keys: 1 (live) or 0 for each. */
	[SCRIPT_QUERY] = LUA_LIVE
	"local r = {}\n"
	"for i, k in ipairs(KEYS) do\n"
	"  if live(redis.call('GET', k)) then r[i] = 1 else r[i] = 0 end\n"
	"end\n"
	"return r\n",

	/* KEYS[1] presence key; ARGV[1] "<uid> <line>": 1 queued, 0 not. */
	[SCRIPT_PUBLISH] = LUA_LIVE
	"local ok, n, b, s = live(redis.call('GET', KEYS[1]))\n"
	"if not ok then return 0 end\n"
	"redis.call('RPUSH', 'chatd:q:' .. n .. ':' .. b .. ':' .. s,\n"
	"    ARGV[1])\n"
	"return 1\n",

	/* KEYS presence keys, ARGV the uids: "<uid>" to each live one. */
	[SCRIPT_NUDGE] = LUA_LIVE
	"local r = 0\n"
	"for i, k in ipairs(KEYS) do\n"
	"  local ok, n, b, s = live(redis.call('GET', k))\n"
	"  if ok then\n"
	"    redis.call('RPUSH', 'chatd:q:' .. n .. ':' .. b .. ':' .. s,\n"
	"        ARGV[i])\n"
	"    r = r + 1\n"
	"  end\n"
	"end\n"
	"return r\n",

	/* KEYS[1] our queue; ARGV[1] at most: the items taken. */
	[SCRIPT_POP] = LUA_QDEAD
	"return qpop(KEYS[1], tonumber(ARGV[1]))\n",

	/* KEYS[1] a queue; ARGV[1] at most: its items if its worker is dead. */
	[SCRIPT_REAP] = LUA_QDEAD
	"local n, b, s = string.match(KEYS[1], '^chatd:q:(.*):(%x+):(%d+)$')\n"
	"if not n or not qdead(n, b, s) then return {} end\n"
	"local r = qpop(KEYS[1], tonumber(ARGV[1]))\n"
	"if redis.call('LLEN', KEYS[1]) == 0 then\n"
	"  redis.call('SREM', 'chatd:queues', KEYS[1])\n"
	"end\n"
	"return r\n",

	/*
	 * ARGV[1] at most: items of queues whose workers are dead, from
	 * a few of the known queues picked at random; forgets the
	 * emptied ones.
	 */
	[SCRIPT_REAPALL] = LUA_QDEAD
	"local max = tonumber(ARGV[1])\n"
	"local out = {}\n"
	"for _, k in ipairs(redis.call('SRANDMEMBER', 'chatd:queues', 16)) do\n"
	"  local n, b, s = string.match(k, '^chatd:q:(.*):(%x+):(%d+)$')\n"
	"  if not n then\n"
	"    redis.call('SREM', 'chatd:queues', k)\n"
	"  elseif qdead(n, b, s) then\n"
	"    for _, v in ipairs(qpop(k, max - #out)) do out[#out + 1] = v end\n"
	"    if redis.call('LLEN', k) == 0 then\n"
	"      redis.call('SREM', 'chatd:queues', k)\n"
	"    end\n"
	"  end\n"
	"  if #out >= max then break end\n"
	"end\n"
	"return out\n",
};

/* ---- a set of user ids (open addressing, linear probing) --------------- */

struct uidset {
	int32_t	*v;		/* 0: empty */
	size_t	 cap;		/* power of two */
	size_t	 n;
};

static size_t
uid_hash(int32_t uid, size_t mask)
{
	uint32_t	 x = (uint32_t)uid * 2654435761u;

	return (x ^ (x >> 16)) & mask;
}

static size_t
uidset_find(const struct uidset *s, int32_t uid, int *found)
{
	size_t	 mask = s->cap - 1, i;

	for (i = uid_hash(uid, mask); s->v[i] != 0; i = (i + 1) & mask)
		if (s->v[i] == uid) {
			*found = 1;
			return i;
		}
	*found = 0;
	return i;
}

static int
uidset_has(const struct uidset *s, int32_t uid)
{
	int	 found;

	if (s->n == 0)
		return 0;
	(void)uidset_find(s, uid, &found);
	return found;
}

static int
uidset_add(struct uidset *s, int32_t uid)
{
	struct uidset	 t;
	size_t		 i;
	int		 found;

	if (uid <= 0)
		return -1;
	if ((s->n + 1) * 2 > s->cap) {
		t.cap = s->cap ? s->cap * 2 : 64;
		t.n = 0;
		if ((t.v = calloc(t.cap, sizeof(*t.v))) == NULL)
			return -1;
		for (i = 0; i < s->cap; i++)
			if (s->v[i] != 0)
				t.v[uidset_find(&t, s->v[i], &found)] =
				    s->v[i], t.n++;
		free(s->v);
		*s = t;
	}
	i = uidset_find(s, uid, &found);
	if (!found) {
		s->v[i] = uid;
		s->n++;
	}
	return 0;
}

static void
uidset_del(struct uidset *s, int32_t uid)
{
	size_t	 mask, i, j, k;
	int	 found;

	if (s->n == 0)
		return;
	i = uidset_find(s, uid, &found);
	if (!found)
		return;
	mask = s->cap - 1;
	/* shift back later entries of the run that may no longer be found */
	for (j = (i + 1) & mask; s->v[j] != 0; j = (j + 1) & mask) {
		k = uid_hash(s->v[j], mask);
		if ((j > i && (k <= i || k > j)) ||
		    (j < i && k <= i && k > j)) {
			s->v[i] = s->v[j];
			i = j;
		}
	}
	s->v[i] = 0;
	s->n--;
}

static void
uidset_clear(struct uidset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* ---- the module -------------------------------------------------------- */

enum req_kind {
	REQ_AUTH,
	REQ_LOAD,
	REQ_HEARTBEAT,
	REQ_CLAIM,
	REQ_REASSERT,
	REQ_RELEASE,
	REQ_QUERY,
	REQ_PUBLISH,
	REQ_NUDGE,
	REQ_REAP,	/* a dead worker's queue, before a claim answers */
	REQ_REAPALL,
	REQ_DRAIN,	/* our own queue, at exit */
	REQ_EXIT
};

struct req {
	struct pubsub	*ps;
	enum req_kind	 kind;
	enum script	 script;
	int		 retried;	/* NOSCRIPT once: sent again with EVAL */
	int32_t		 uid;
	int32_t		*uids;		/* QUERY, NUDGE */
	size_t		 n;
	char		*payload;	/* PUBLISH: "<uid> <line>" */
	size_t		 plen;
	size_t		 off;		/* the line starts here */
	char		*queue;		/* REAP */
	struct req	*parent;	/* REAP: the claim waiting for it */
	union {
		pubsub_claim_cb		*claim;
		pubsub_online_cb	*online;
		pubsub_publish_cb	*publish;
	}		 cb;
	void		*arg;
	struct req	*next;		/* failed, waiting to be reported */
};

struct pubsub {
	struct ev_loop		*loop;
	struct pubsub_handler	 h;
	char			*host;		/* numeric address */
	int			 port;
	char			*password;
	char			*node_id;
	char			 boot[32];
	int			 slot;
	uint32_t		 gen;
	char			*me;		/* our presence value */
	char			*queue;		/* chatd:q:<node>:<boot>:<slot> */
	char			*node_key;
	char			*slot_key;
	char			 gen_str[16];

	redisAsyncContext	*cmd;
	redisAsyncContext	*pop;
	int			 cmd_up;	/* setup answered */
	int			 pop_up;	/* took from the queue */
	int			 was_up;	/* for "connection lost" once */
	ev_tstamp		 cmd_wait;	/* oldest unanswered since */
	size_t			 cmd_pending;
	int			 pop_busy;	/* a pop is under way */
	ev_tstamp		 pop_wait;
	ev_tstamp		 last_heartbeat;
	ev_tstamp		 last_reap;
	char			 sha[NSCRIPTS][41];

	struct uidset		 local;		/* claimed here, not released */
	struct uidset		 unreleased;	/* releases Redis never saw */

	double			 backoff;
	ev_timer		 retry;
	ev_timer		 tick;
	ev_timer		 failt;		/* report failures from the loop */
	struct req		*failed, **failed_tail;

	char			 last_err[128];	/* rate-limit connect errors */
	ev_tstamp		 last_err_at;
	int			 exiting;
	int			 exit_done;
	int			 drained;
};

static void	ctx_drop(struct pubsub *, redisAsyncContext **, const char *);
static void	open_missing(struct pubsub *);
static int	req_send(struct pubsub *, struct req *);
static void	req_done(struct pubsub *, struct req *, redisReply *);
static void	pop_next(struct pubsub *, int);

static void
req_free(struct req *r)
{
	if (r == NULL)
		return;
	free(r->uids);
	free(r->payload);
	free(r->queue);
	free(r);
}

static struct req *
req_new(struct pubsub *ps, enum req_kind kind)
{
	struct req	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->ps = ps;
	r->kind = kind;
	return r;
}

/* Report r's failure from the loop, never inside the caller's call. */
static void
req_fail(struct pubsub *ps, struct req *r)
{
	r->next = NULL;
	*ps->failed_tail = r;
	ps->failed_tail = &r->next;
	if (!ev_is_active(&ps->failt)) {
		ev_timer_set(&ps->failt, 0., 0.);
		ev_timer_start(ps->loop, &ps->failt);
	}
}

static void
fail_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct pubsub	*ps = w->data;
	struct req	*r;

	while ((r = ps->failed) != NULL) {
		if ((ps->failed = r->next) == NULL)
			ps->failed_tail = &ps->failed;
		req_done(ps, r, NULL);
	}
}

/* Errors repeat every backoff period: say each one once a minute. */
static void
log_conn_error(struct pubsub *ps, const char *what, const char *why)
{
	char		 msg[sizeof(ps->last_err)];
	ev_tstamp	 now = ev_now(ps->loop);

	snprintf(msg, sizeof(msg), "%s: %s", what, why);
	if (strcmp(msg, ps->last_err) == 0 &&
	    now - ps->last_err_at < LOG_REPEAT_SECONDS)
		return;
	snprintf(ps->last_err, sizeof(ps->last_err), "%s", msg);
	ps->last_err_at = now;
	if (strcmp(what, "command") == 0)
		log_warnx("redis %s:%d: %s", ps->host, ps->port, msg);
	else
		log_warnx("redis %s:%d: %s (cross-node delivery and presence "
		    "unavailable; retrying)", ps->host, ps->port, msg);
}

static void
note_down(struct pubsub *ps, const char *why)
{
	if (ps->exiting)
		return;
	if (ps->was_up) {
		log_warnx("redis %s:%d: connection lost: %s (cross-node "
		    "messages are stored until it is back)", ps->host,
		    ps->port, why);
		ps->was_up = 0;
	} else
		log_conn_error(ps, "connection", why);
}

static void
check_up(struct pubsub *ps)
{
	if (!ps->cmd_up || !ps->pop_up)
		return;
	ps->backoff = BACKOFF_MIN;
	ps->last_err[0] = '\0';
	if (!ps->was_up) {
		log_notice("redis %s:%d: connected, node %s, queue %s",
		    ps->host, ps->port, ps->node_id, ps->queue);
		ps->was_up = 1;
	}
}

/*
 * One item of a queue: "<uid> <line>" for the handler to deliver or
 * store, or "<uid>" alone: messages were stored for uid.
 */
static void
handle_item(struct pubsub *ps, const redisReply *t)
{
	const char	*p, *end;
	int64_t		 uid = 0;

	if (t->type != REDIS_REPLY_STRING)
		return;
	p = t->str;
	end = t->str + t->len;
	while (p < end && *p >= '0' && *p <= '9' && uid <= INT32_MAX)
		uid = uid * 10 + (*p++ - '0');
	if (uid <= 0 || uid > INT32_MAX)
		goto bad;
	if (p == end) {
		if (ps->h.stored != NULL)
			ps->h.stored(ps->h.arg, (int32_t)uid);
		return;
	}
	if (*p != ' ' || p + 1 == end)
		goto bad;
	p++;
	ps->h.deliver(ps->h.arg, (int32_t)uid, p, end - p);
	return;
bad:
	log_warnx("redis: dropping a malformed queue item (%zu bytes)",
	    (size_t)t->len);
}

/* The items of an array reply; returns how many there were. */
static size_t
handle_items(struct pubsub *ps, const redisReply *rep)
{
	size_t	 i;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY)
		return 0;
	for (i = 0; i < rep->elements; i++)
		handle_item(ps, rep->element[i]);
	return rep->elements;
}

/* ---- sending ------------------------------------------------------------ */

static void	cmd_reply_cb(redisAsyncContext *, void *, void *);

/* Queue a command on the cmd connection: 0, or -1 when there is none. */
static int
cmd_argv(struct pubsub *ps, struct req *r, int argc, const char **argv,
    const size_t *argvlen)
{
	if (ps->cmd == NULL)
		return -1;
	if (redisAsyncCommandArgv(ps->cmd, cmd_reply_cb, r, argc, argv,
	    argvlen) != REDIS_OK)
		return -1;
	if (ps->cmd_pending++ == 0)
		ps->cmd_wait = ev_now(ps->loop);
	return 0;
}

/* argv for a script call: EVALSHA once the script is loaded, else EVAL. */
static void
script_head(struct pubsub *ps, enum script s, int use_sha, const char **argv,
    size_t *argvlen, char *nk, size_t nklen, int nkeys)
{
	int	 sha = use_sha && ps->sha[s][0] != '\0';
	int	 i;

	snprintf(nk, nklen, "%d", nkeys);
	argv[0] = sha ? "EVALSHA" : "EVAL";
	argv[1] = sha ? ps->sha[s] : scripts[s];
	argv[2] = nk;
	for (i = 0; i < 3; i++)
		argvlen[i] = strlen(argv[i]);
}

static int
send_script(struct pubsub *ps, struct req *r, int nkeys,
    const char **keys, const size_t *keylens, int nargs, const char **args,
    const size_t *arglens)
{
	const char	*sv[8], **argv = sv;
	size_t		 sl[8], *argvlen = sl;
	char		 nk[16];
	int		 i, argc = 3 + nkeys + nargs, rc;

	if (argc > 8) {
		argv = calloc(argc, sizeof(*argv));
		argvlen = calloc(argc, sizeof(*argvlen));
		if (argv == NULL || argvlen == NULL) {
			free(argv);
			free(argvlen);
			return -1;
		}
	}
	script_head(ps, r->script, !r->retried, argv, argvlen, nk, sizeof(nk),
	    nkeys);
	for (i = 0; i < nkeys; i++) {
		argv[3 + i] = keys[i];
		argvlen[3 + i] = keylens[i];
	}
	for (i = 0; i < nargs; i++) {
		argv[3 + nkeys + i] = args[i];
		argvlen[3 + nkeys + i] = arglens[i];
	}
	rc = cmd_argv(ps, r, argc, argv, argvlen);
	if (argv != sv) {
		free(argv);
		free(argvlen);
	}
	return rc;
}

/* One presence key per uid; for NUDGE also the uids as arguments. */
static int
send_multi(struct pubsub *ps, struct req *r)
{
	const char	**keys;
	size_t		 *lens, i, n = r->n;
	char		 *kbuf;
	int		  rc = -1, nargs = r->kind == REQ_NUDGE ? (int)n : 0;

	keys = calloc(2 * n, sizeof(*keys));
	lens = calloc(2 * n, sizeof(*lens));
	kbuf = malloc(n * 40);
	if (keys != NULL && lens != NULL && kbuf != NULL) {
		for (i = 0; i < n; i++) {
			keys[i] = kbuf + i * 40;
			lens[i] = snprintf(kbuf + i * 40, 24, "chatd:on:%d",
			    (int)r->uids[i]);
			keys[n + i] = kbuf + i * 40 + 24;
			lens[n + i] = snprintf(kbuf + i * 40 + 24, 16, "%d",
			    (int)r->uids[i]);
		}
		rc = send_script(ps, r, (int)n, keys, lens, nargs, keys + n,
		    lens + n);
	}
	free(keys);
	free(lens);
	free(kbuf);
	return rc;
}

/* Send r on the cmd connection: 0, or -1 (r untouched, not sent). */
static int
req_send(struct pubsub *ps, struct req *r)
{
	char		 key[32];
	const char	*k[1], *a[3];
	size_t		 kl[1], al[3];

	if (ps->cmd == NULL)
		return -1;
	k[0] = key;
	kl[0] = snprintf(key, sizeof(key), "chatd:on:%d", (int)r->uid);
	switch (r->kind) {
	case REQ_CLAIM:
	case REQ_REASSERT:
		a[0] = ps->me;
		a[1] = ps->node_id;
		a[2] = ps->boot;
		al[0] = strlen(a[0]);
		al[1] = strlen(a[1]);
		al[2] = strlen(a[2]);
		return send_script(ps, r, 1, k, kl, 3, a, al);
	case REQ_RELEASE:
		a[0] = ps->me;
		al[0] = strlen(a[0]);
		return send_script(ps, r, 1, k, kl, 1, a, al);
	case REQ_PUBLISH:
		a[0] = r->payload;
		al[0] = r->plen;
		return send_script(ps, r, 1, k, kl, 1, a, al);
	case REQ_QUERY:
	case REQ_NUDGE:
		return send_multi(ps, r);
	case REQ_REAP:
	case REQ_DRAIN:
		k[0] = r->kind == REQ_REAP ? r->queue : ps->queue;
		kl[0] = strlen(k[0]);
		a[0] = r->kind == REQ_REAP ? REAP_BATCH : POP_BATCH;
		al[0] = strlen(a[0]);
		return send_script(ps, r, 1, k, kl, 1, a, al);
	case REQ_REAPALL:
		a[0] = REAP_BATCH;
		al[0] = strlen(a[0]);
		return send_script(ps, r, 0, NULL, NULL, 1, a, al);
	default:
		return -1;
	}
}

/* A plain command with no caller waiting for it. */
static void
send_plain(struct pubsub *ps, enum req_kind kind, enum script script,
    int argc, const char **argv)
{
	struct req	*r;
	size_t		 lens[8];
	int		 i;

	if ((r = req_new(ps, kind)) == NULL)
		return;
	r->script = script;
	for (i = 0; i < argc && i < 8; i++)
		lens[i] = strlen(argv[i]);
	if (cmd_argv(ps, r, argc, argv, lens) == -1)
		req_free(r);
}

/* A script call with no caller waiting for it. */
static void
send_req(struct pubsub *ps, enum req_kind kind, enum script script)
{
	struct req	*r;

	if ((r = req_new(ps, kind)) == NULL)
		return;
	r->script = script;
	if (req_send(ps, r) == -1)
		req_free(r);
}

/* We are alive: node, slot, and the queue others may have to reap. */
static void
heartbeat(struct pubsub *ps)
{
	const char	*argv[5];
	char		 ttl[16];

	snprintf(ttl, sizeof(ttl), "%d", KEY_TTL_SECONDS);
	argv[0] = "SET";
	argv[1] = ps->node_key;
	argv[2] = ps->boot;
	argv[3] = "EX";
	argv[4] = ttl;
	send_plain(ps, REQ_HEARTBEAT, 0, 5, argv);
	argv[1] = ps->slot_key;
	argv[2] = ps->gen_str;
	send_plain(ps, REQ_HEARTBEAT, 0, 5, argv);
	argv[0] = "SADD";
	argv[1] = "chatd:queues";
	argv[2] = ps->queue;
	send_plain(ps, REQ_HEARTBEAT, 0, 3, argv);
	ps->last_heartbeat = ev_now(ps->loop);
}

/* Snapshot of a set (it may change while we walk it). */
static int32_t *
uidset_list(const struct uidset *s, size_t *n)
{
	int32_t	*v;
	size_t	 i;

	*n = 0;
	if (s->n == 0 || (v = calloc(s->n, sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < s->cap; i++)
		if (s->v[i] != 0)
			v[(*n)++] = s->v[i];
	return v;
}

/*
 * A fresh cmd connection: log in, load the scripts, announce the node
 * and the slot, then set Redis right about our users: releases it never
 * saw, presence it may have lost (restart, expired keys).
 */
static void
cmd_setup(struct pubsub *ps)
{
	const char	*argv[3];
	struct req	*r;
	int32_t		*v;
	size_t		 i, n;
	int		 s;

	if (ps->password != NULL) {
		argv[0] = "AUTH";
		argv[1] = ps->password;
		send_plain(ps, REQ_AUTH, 0, 2, argv);
	}
	for (s = 0; s < NSCRIPTS; s++) {
		argv[0] = "SCRIPT";
		argv[1] = "LOAD";
		argv[2] = scripts[s];
		send_plain(ps, REQ_LOAD, s, 3, argv);
	}
	heartbeat(ps);

	v = uidset_list(&ps->unreleased, &n);
	uidset_clear(&ps->unreleased);
	for (i = 0; i < n; i++) {
		if ((r = req_new(ps, REQ_RELEASE)) == NULL) {
			(void)uidset_add(&ps->unreleased, v[i]);
			continue;
		}
		r->uid = v[i];
		r->script = SCRIPT_RELEASE;
		if (req_send(ps, r) == -1)
			req_fail(ps, r);
	}
	free(v);

	v = uidset_list(&ps->local, &n);
	for (i = 0; i < n; i++) {
		if ((r = req_new(ps, REQ_REASSERT)) == NULL)
			break;
		r->uid = v[i];
		r->script = SCRIPT_CLAIM;
		if (req_send(ps, r) == -1)
			req_free(r);
	}
	if (n > 0)
		log_info("redis: re-asserting the presence of %zu user(s)", n);
	free(v);
}

/* ---- replies ------------------------------------------------------------ */

/* A claim's answer: {status} or {status, queue to reap}; -1 if neither. */
static long
claim_status(const redisReply *rep, const char **queue)
{
	*queue = NULL;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements < 1 || rep->element[0]->type != REDIS_REPLY_INTEGER)
		return -1;
	if (rep->elements >= 2 && rep->element[1]->type == REDIS_REPLY_STRING)
		*queue = rep->element[1]->str;
	return (long)rep->element[0]->integer;
}

static void
claim_finish(struct req *r, int result)
{
	r->cb.claim(r->arg, result);
	req_free(r);
}

/*
 * The claim took over the entry of a dead worker that left messages:
 * hand them over (to the user now logging in, among others) before
 * the login is answered, so that its offline fetch finds them.
 */
static int
claim_reap(struct pubsub *ps, struct req *claim, const char *queue)
{
	struct req	*r;

	if ((r = req_new(ps, REQ_REAP)) == NULL)
		return -1;
	if ((r->queue = strdup(queue)) == NULL) {
		req_free(r);
		return -1;
	}
	r->script = SCRIPT_REAP;
	r->parent = claim;
	if (req_send(ps, r) == -1) {
		req_free(r);
		return -1;
	}
	return 0;
}

static void
req_done(struct pubsub *ps, struct req *r, redisReply *rep)
{
	const char	*q;
	int		*online = NULL;
	size_t		 i, n;
	long		 result;

	if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
		log_conn_error(ps, "command", rep->str);
		rep = NULL;
	}
	result = rep != NULL && rep->type == REDIS_REPLY_INTEGER ?
	    (long)rep->integer : -1;
	switch (r->kind) {
	case REQ_AUTH:
		break;
	case REQ_LOAD:
		if (rep != NULL && rep->type == REDIS_REPLY_STRING &&
		    rep->len == 40)
			memcpy(ps->sha[r->script], rep->str, 41);
		break;
	case REQ_HEARTBEAT:
		if (rep != NULL && rep->type == REDIS_REPLY_STATUS &&
		    !ps->cmd_up && ps->cmd != NULL) {
			ps->cmd_up = 1;
			check_up(ps);
		}
		break;
	case REQ_CLAIM:
		result = claim_status(rep, &q);
		if (result == 1) {
			uidset_del(&ps->local, r->uid);
			claim_finish(r, 1);
		} else if (result != 0)
			claim_finish(r, -1);
		else if (q == NULL || claim_reap(ps, r, q) == -1)
			claim_finish(r, 0);
		/* else r waits for the reap */
		return;
	case REQ_REASSERT:
		if (claim_status(rep, &q) == 1 &&
		    uidset_has(&ps->local, r->uid)) {
			uidset_del(&ps->local, r->uid);
			log_notice("user %d logged in on another node while "
			    "Redis was out of reach: ending the session here",
			    (int)r->uid);
			if (ps->h.lost != NULL)
				ps->h.lost(ps->h.arg, r->uid);
		}
		break;
	case REQ_RELEASE:
		/* not seen by Redis: send it again once it is back */
		if (rep == NULL && !uidset_has(&ps->local, r->uid))
			(void)uidset_add(&ps->unreleased, r->uid);
		break;
	case REQ_QUERY:
		result = -1;
		online = calloc(r->n + 1, sizeof(*online));
		if (online != NULL && r->n == 0)
			result = 0;
		else if (online != NULL && rep != NULL &&
		    rep->type == REDIS_REPLY_ARRAY && rep->elements == r->n) {
			result = 0;
			for (i = 0; i < r->n; i++)
				online[i] = rep->element[i]->type ==
				    REDIS_REPLY_INTEGER &&
				    rep->element[i]->integer == 1;
		}
		r->cb.online(r->arg, (int)result, r->uids, online, r->n);
		free(online);
		break;
	case REQ_PUBLISH:
		r->cb.publish(r->arg, r->uid, result, r->payload + r->off,
		    r->plen - r->off);
		break;
	case REQ_NUDGE:
		break;
	case REQ_REAP:
		n = handle_items(ps, rep);
		if (rep != NULL && n == REAP_BATCH_N && req_send(ps, r) == 0)
			return;
		if (n > 0)
			log_info("redis: took over %zu message(s) left in %s",
			    n, r->queue);
		if (r->parent != NULL)
			claim_finish(r->parent, 0);
		break;
	case REQ_REAPALL:
		n = handle_items(ps, rep);
		if (n > 0)
			log_info("redis: took over %zu message(s) left by dead "
			    "workers", n);
		if (rep != NULL && n == REAP_BATCH_N && req_send(ps, r) == 0)
			return;
		break;
	case REQ_DRAIN:
		n = handle_items(ps, rep);
		if (rep != NULL && n == POP_BATCH_N && req_send(ps, r) == 0)
			return;
		ps->drained = 1;
		break;
	case REQ_EXIT:
		ps->exit_done = 1;
		break;
	}
	req_free(r);
}

static void
cmd_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct req	*r = privdata;
	struct pubsub	*ps = r->ps;
	redisReply	*rep = reply;
	const char	*argv[3];

	if (ac == ps->cmd) {
		if (ps->cmd_pending > 0)
			ps->cmd_pending--;
		ps->cmd_wait = ev_now(ps->loop);
	}
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
		if (r->kind == REQ_AUTH && ac == ps->cmd) {
			log_conn_error(ps, "AUTH", rep->str);
			req_free(r);
			ctx_drop(ps, &ps->cmd, "AUTH refused");
			return;
		}
		/* the script cache was flushed: send in full, load again */
		if (strncmp(rep->str, "NOSCRIPT", 8) == 0 && !r->retried &&
		    r->kind != REQ_LOAD) {
			r->retried = 1;
			if (ps->sha[r->script][0] != '\0') {
				ps->sha[r->script][0] = '\0';
				argv[0] = "SCRIPT";
				argv[1] = "LOAD";
				argv[2] = scripts[r->script];
				send_plain(ps, REQ_LOAD, r->script, 3, argv);
			}
			if (req_send(ps, r) == 0)
				return;
			rep = NULL;
		}
	}
	req_done(ps, r, rep);
}

/* ---- the queue ---------------------------------------------------------- */

static void	pop_block_cb(redisAsyncContext *, void *, void *);
static void	pop_many_cb(redisAsyncContext *, void *, void *);

/* Take from our queue: a batch when there may be more, else wait. */
static void
pop_next(struct pubsub *ps, int more)
{
	const char	*argv[5];
	size_t		 lens[5];
	char		 nk[16], tmo[16];
	int		 rc;

	ps->pop_busy = 0;
	if (ps->pop == NULL || ps->exiting)
		return;
	if (more) {
		script_head(ps, SCRIPT_POP, 1, argv, lens, nk, sizeof(nk), 1);
		argv[3] = ps->queue;
		lens[3] = strlen(ps->queue);
		argv[4] = POP_BATCH;
		lens[4] = strlen(POP_BATCH);
		rc = redisAsyncCommandArgv(ps->pop, pop_many_cb, ps, 5, argv,
		    lens);
	} else {
		snprintf(tmo, sizeof(tmo), "%d", POP_BLOCK_SECONDS);
		argv[0] = "BLPOP";
		argv[1] = ps->queue;
		argv[2] = tmo;
		lens[0] = strlen(argv[0]);
		lens[1] = strlen(argv[1]);
		lens[2] = strlen(argv[2]);
		rc = redisAsyncCommandArgv(ps->pop, pop_block_cb, ps, 3, argv,
		    lens);
	}
	if (rc == REDIS_OK) {
		ps->pop_busy = 1;
		ps->pop_wait = ev_now(ps->loop);
	}
}

/* 0 go on with reply, -1 it was an error (handled). */
static int
pop_reply(struct pubsub *ps, redisReply *rep)
{
	ps->pop_busy = 0;
	if (rep->type == REDIS_REPLY_ERROR) {
		log_conn_error(ps, "queue", rep->str);
		ctx_drop(ps, &ps->pop, "taking from the queue failed");
		return -1;
	}
	if (!ps->pop_up) {
		ps->pop_up = 1;
		check_up(ps);
	}
	return 0;
}

static void
pop_block_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct pubsub	*ps = privdata;
	redisReply	*rep = reply;

	/* no reply: the connection is going away, the loop ends here */
	if (ac != ps->pop || rep == NULL || pop_reply(ps, rep) == -1)
		return;
	/* {queue, item}, or nil when nothing came within the timeout */
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
		handle_item(ps, rep->element[1]);
		pop_next(ps, 1);
	} else
		pop_next(ps, 0);
}

static void
pop_many_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct pubsub	*ps = privdata;
	redisReply	*rep = reply;
	const char	*argv[3];

	if (ac != ps->pop || rep == NULL)
		return;
	if (rep->type == REDIS_REPLY_ERROR &&
	    strncmp(rep->str, "NOSCRIPT", 8) == 0 &&
	    ps->sha[SCRIPT_POP][0] != '\0') {
		/* script cache flushed: EVAL until it is loaded again */
		ps->sha[SCRIPT_POP][0] = '\0';
		argv[0] = "SCRIPT";
		argv[1] = "LOAD";
		argv[2] = scripts[SCRIPT_POP];
		send_plain(ps, REQ_LOAD, SCRIPT_POP, 3, argv);
		pop_next(ps, 1);
		return;
	}
	if (pop_reply(ps, rep) == -1)
		return;
	pop_next(ps, handle_items(ps, rep) == POP_BATCH_N);
}

static void
pop_auth_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct pubsub	*ps = privdata;
	redisReply	*rep = reply;

	if (rep != NULL && rep->type == REDIS_REPLY_ERROR && ac == ps->pop) {
		log_conn_error(ps, "AUTH", rep->str);
		ctx_drop(ps, &ps->pop, "AUTH refused");
	}
}

/* ---- connections -------------------------------------------------------- */

static void
schedule_retry(struct pubsub *ps)
{
	if (ps->exiting || ev_is_active(&ps->retry))
		return;
	ev_timer_set(&ps->retry, ps->backoff, 0.);
	ev_timer_start(ps->loop, &ps->retry);
	ps->backoff *= 2;
	if (ps->backoff > BACKOFF_MAX)
		ps->backoff = BACKOFF_MAX;
}

static void
ctx_forget(struct pubsub *ps, const redisAsyncContext *ac)
{
	if (ac == ps->cmd) {
		ps->cmd = NULL;
		ps->cmd_up = 0;
		ps->cmd_pending = 0;
	} else if (ac == ps->pop) {
		ps->pop = NULL;
		ps->pop_up = 0;
		ps->pop_busy = 0;
	}
}

/* Give up on a connection; its pending callbacks run with no reply. */
static void
ctx_drop(struct pubsub *ps, redisAsyncContext **acp, const char *why)
{
	redisAsyncContext	*ac = *acp;

	if (ac == NULL)
		return;
	ctx_forget(ps, ac);
	note_down(ps, why);
	redisAsyncFree(ac);
	schedule_retry(ps);
}

static void
connect_cb(const redisAsyncContext *ac, int status)
{
	struct pubsub	*ps = ac->data;

	if (status == REDIS_OK)
		return;
	/* hiredis frees ac after this */
	if (ac == ps->cmd || ac == ps->pop) {
		ctx_forget(ps, ac);
		note_down(ps, ac->errstr);
		schedule_retry(ps);
	}
}

static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct pubsub	*ps = ac->data;

	/* one we dropped ourselves was already forgotten */
	if (ac != ps->cmd && ac != ps->pop)
		return;
	ctx_forget(ps, ac);
	note_down(ps, status == REDIS_OK ? "closed" : ac->errstr);
	schedule_retry(ps);
}

static redisAsyncContext *
ctx_open(struct pubsub *ps)
{
	redisAsyncContext	*ac;

	if ((ac = redisAsyncConnect(ps->host, ps->port)) == NULL) {
		log_conn_error(ps, "connect", "out of memory");
		return NULL;
	}
	if (ac->err) {
		log_conn_error(ps, "connect", ac->errstr);
		redisAsyncFree(ac);
		return NULL;
	}
	ac->data = ps;
	if (redisLibevAttach(ps->loop, ac) != REDIS_OK) {
		redisAsyncFree(ac);
		return NULL;
	}
	redisAsyncSetConnectCallback(ac, connect_cb);
	redisAsyncSetDisconnectCallback(ac, disconnect_cb);
	return ac;
}

static void
open_missing(struct pubsub *ps)
{
	if (ps->exiting)
		return;
	if (ps->cmd == NULL && (ps->cmd = ctx_open(ps)) != NULL) {
		ps->cmd_up = 0;
		ps->cmd_pending = 0;
		cmd_setup(ps);
	}
	if (ps->pop == NULL && (ps->pop = ctx_open(ps)) != NULL) {
		ps->pop_up = 0;
		if (ps->password != NULL)
			(void)redisAsyncCommand(ps->pop, pop_auth_cb, ps,
			    "AUTH %s", ps->password);
		/* what waited while we were away first */
		pop_next(ps, 1);
	}
	if (ps->cmd == NULL || ps->pop == NULL)
		schedule_retry(ps);
}

static void
retry_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	open_missing(w->data);
}

/* Watchdog, heartbeat, reaper. */
static void
tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct pubsub	*ps = w->data;
	ev_tstamp	 now = ev_now(l);

	if (ps->cmd != NULL && ps->cmd_pending > 0 &&
	    now - ps->cmd_wait > REPLY_TIMEOUT) {
		/* a server that hangs holds logins and messages: let go */
		ctx_drop(ps, &ps->cmd, "no answer for 3 seconds");
		ctx_drop(ps, &ps->pop, "no answer for 3 seconds");
		return;
	}
	if (ps->pop != NULL && ps->pop_busy &&
	    now - ps->pop_wait > POP_BLOCK_SECONDS + REPLY_TIMEOUT)
		ctx_drop(ps, &ps->pop, "no answer from the queue");
	if (ps->cmd != NULL &&
	    now - ps->last_heartbeat >= HEARTBEAT_SECONDS - 0.05)
		heartbeat(ps);
	if (ps->cmd_up && now - ps->last_reap >= REAP_SECONDS) {
		ps->last_reap = now;
		send_req(ps, REQ_REAPALL, SCRIPT_REAPALL);
	}
}

/* ---- interface ---------------------------------------------------------- */

static int
resolve(const char *host, char *out, size_t outlen, char *err,
    size_t errlen)
{
	struct addrinfo	 hints, *res;
	int		 e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* once, at start: the loop must never wait for DNS */
	if ((e = getaddrinfo(host, NULL, &hints, &res)) != 0) {
		snprintf(err, errlen, "redis host %s: %s", host,
		    gai_strerror(e));
		return -1;
	}
	e = getnameinfo(res->ai_addr, res->ai_addrlen, out, outlen, NULL, 0,
	    NI_NUMERICHOST);
	freeaddrinfo(res);
	if (e != 0) {
		snprintf(err, errlen, "redis host %s: %s", host,
		    gai_strerror(e));
		return -1;
	}
	return 0;
}

struct pubsub *
pubsub_new(struct ev_loop *loop, const struct config *cfg, const char *boot,
    int slot, uint32_t gen, const struct pubsub_handler *h, char *err,
    size_t errlen)
{
	struct pubsub	*ps;
	char		 addr[NI_MAXHOST];

	if (cfg->redis_host == NULL || cfg->redis_port <= 0 ||
	    cfg->node_id == NULL || cfg->node_id[0] == '\0' ||
	    strpbrk(cfg->node_id, " \t\r\n") != NULL ||
	    boot == NULL || boot[0] == '\0' || strlen(boot) >= 32 ||
	    strspn(boot, "0123456789abcdef") != strlen(boot) ||
	    slot < 0 || h == NULL || h->deliver == NULL) {
		snprintf(err, errlen, "pubsub: bad arguments (node_id must "
		    "be set and hold no blanks)");
		return NULL;
	}
	if (resolve(cfg->redis_host, addr, sizeof(addr), err, errlen) == -1)
		return NULL;
	if ((ps = calloc(1, sizeof(*ps))) == NULL)
		goto nomem;
	ps->loop = loop;
	ps->h = *h;
	ps->port = cfg->redis_port;
	ps->slot = slot;
	ps->gen = gen;
	snprintf(ps->boot, sizeof(ps->boot), "%s", boot);
	snprintf(ps->gen_str, sizeof(ps->gen_str), "%u", gen);
	ps->failed_tail = &ps->failed;
	ps->backoff = BACKOFF_MIN;
	if ((ps->host = strdup(addr)) == NULL ||
	    (ps->node_id = strdup(cfg->node_id)) == NULL ||
	    (cfg->redis_password != NULL &&
	    (ps->password = strdup(cfg->redis_password)) == NULL) ||
	    asprintf(&ps->me, "%s %s %d %u", ps->node_id, boot, slot,
	    gen) == -1 ||
	    asprintf(&ps->queue, "chatd:q:%s:%s:%d", ps->node_id, boot,
	    slot) == -1 ||
	    asprintf(&ps->node_key, "chatd:node:%s", ps->node_id) == -1 ||
	    asprintf(&ps->slot_key, "chatd:slot:%s:%d", ps->node_id,
	    slot) == -1)
		goto nomem;

	ev_timer_init(&ps->retry, retry_cb, 0., 0.);
	ps->retry.data = ps;
	ev_timer_init(&ps->failt, fail_cb, 0., 0.);
	ps->failt.data = ps;
	ev_timer_init(&ps->tick, tick_cb, TICK_SECONDS, TICK_SECONDS);
	ps->tick.data = ps;
	ev_timer_start(loop, &ps->tick);
	ps->last_reap = ev_now(loop);
	open_missing(ps);
	return ps;

 nomem:
	snprintf(err, errlen, "pubsub: out of memory");
	pubsub_free(ps);
	return NULL;
}

static void
exit_timer_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	*(int *)w->data = 1;
}

static int
exit_sent(const struct pubsub *ps)
{
	return ps->exit_done || ps->cmd == NULL;
}

static int
pop_idle(const struct pubsub *ps)
{
	return !ps->pop_busy || ps->pop == NULL;
}

static int
queue_drained(const struct pubsub *ps)
{
	return ps->drained || ps->cmd == NULL;
}

/* Run the loop until done(ps) or the time is up (worker exit only). */
static void
run_until(struct pubsub *ps, double seconds,
    int (*done)(const struct pubsub *))
{
	ev_timer	 t;
	ev_tstamp	 deadline = ev_time() + seconds;
	int		 expired = 0;

	ev_timer_init(&t, exit_timer_cb, seconds, 0.);
	t.data = &expired;
	ev_timer_start(ps->loop, &t);
	while (!expired && !done(ps) && ev_time() < deadline)
		ev_run(ps->loop, EVRUN_ONCE);
	ev_timer_stop(ps->loop, &t);
}

void
pubsub_free(struct pubsub *ps)
{
	const char		*argv[2];
	redisAsyncContext	*ac;
	struct req		*r;

	if (ps == NULL)
		return;
	ps->exiting = 1;
	if (ps->loop != NULL) {
		ev_timer_stop(ps->loop, &ps->retry);
		ev_timer_stop(ps->loop, &ps->tick);
	}
	if (ps->cmd_up) {
		/* our presence entries go stale: nothing new is queued */
		argv[0] = "DEL";
		argv[1] = ps->slot_key;
		send_plain(ps, REQ_EXIT, 0, 2, argv);
		run_until(ps, EXIT_WAIT_SECONDS, exit_sent);
		/* the pop under way ends within its timeout ... */
		run_until(ps, POP_BLOCK_SECONDS + 0.5, pop_idle);
		/* ... and what is left in the queue is handed over here */
		if ((r = req_new(ps, REQ_DRAIN)) != NULL) {
			r->script = SCRIPT_POP;
			if (req_send(ps, r) == 0)
				run_until(ps, EXIT_WAIT_SECONDS,
				    queue_drained);
			else
				req_free(r);
		}
	}
	if ((ac = ps->pop) != NULL) {
		ctx_forget(ps, ac);
		redisAsyncFree(ac);
	}
	if ((ac = ps->cmd) != NULL) {
		ctx_forget(ps, ac);
		redisAsyncFree(ac);
	}
	if (ps->loop != NULL) {
		fail_cb(ps->loop, &ps->failt, 0);
		ev_timer_stop(ps->loop, &ps->failt);
	}
	uidset_clear(&ps->local);
	uidset_clear(&ps->unreleased);
	free(ps->host);
	free(ps->node_id);
	if (ps->password != NULL)
		explicit_bzero(ps->password, strlen(ps->password));
	free(ps->password);
	free(ps->me);
	free(ps->queue);
	free(ps->node_key);
	free(ps->slot_key);
	free(ps);
}

int
pubsub_up(const struct pubsub *ps)
{
	return ps != NULL && ps->cmd_up && ps->pop_up;
}

/*
 * Out of memory for the request itself is the one case where a
 * callback runs inside the call; callers make these calls last.
 */
void
pubsub_claim(struct pubsub *ps, int32_t uid, pubsub_claim_cb *cb, void *arg)
{
	struct req	*r;

	uidset_del(&ps->unreleased, uid);
	if (uidset_add(&ps->local, uid) == -1)
		log_warnx("redis: out of memory: user %d will not be "
		    "re-asserted after a reconnect", (int)uid);
	if ((r = req_new(ps, REQ_CLAIM)) == NULL) {
		cb(arg, -1);
		return;
	}
	r->uid = uid;
	r->script = SCRIPT_CLAIM;
	r->cb.claim = cb;
	r->arg = arg;
	if (req_send(ps, r) == -1)
		req_fail(ps, r);
}

void
pubsub_release(struct pubsub *ps, int32_t uid)
{
	struct req	*r;

	uidset_del(&ps->local, uid);
	if ((r = req_new(ps, REQ_RELEASE)) == NULL) {
		(void)uidset_add(&ps->unreleased, uid);
		return;
	}
	r->uid = uid;
	r->script = SCRIPT_RELEASE;
	if (req_send(ps, r) == -1) {
		req_free(r);
		(void)uidset_add(&ps->unreleased, uid);
	}
}

void
pubsub_query_online(struct pubsub *ps, const int32_t *uids, size_t n,
    pubsub_online_cb *cb, void *arg)
{
	struct req	*r;

	if ((r = req_new(ps, REQ_QUERY)) == NULL ||
	    (r->uids = calloc(n + 1, sizeof(*uids))) == NULL) {
		req_free(r);
		cb(arg, -1, uids, NULL, 0);
		return;
	}
	memcpy(r->uids, uids, n * sizeof(*uids));
	r->n = n;
	r->script = SCRIPT_QUERY;
	r->cb.online = cb;
	r->arg = arg;
	if (n == 0 || req_send(ps, r) == -1)
		req_fail(ps, r);
}

void
pubsub_nudge(struct pubsub *ps, const int32_t *uids, size_t n)
{
	struct req	*r;

	if (n == 0 || ps->cmd == NULL || (r = req_new(ps, REQ_NUDGE)) == NULL)
		return;
	if ((r->uids = calloc(n, sizeof(*uids))) == NULL) {
		req_free(r);
		return;
	}
	memcpy(r->uids, uids, n * sizeof(*uids));
	r->n = n;
	r->script = SCRIPT_NUDGE;
	if (req_send(ps, r) == -1)
		req_free(r);
}

void
pubsub_publish(struct pubsub *ps, int32_t uid, const char *line, size_t len,
    pubsub_publish_cb *cb, void *arg)
{
	struct req	*r;
	char		 pre[16];
	int		 n;

	n = snprintf(pre, sizeof(pre), "%d ", (int)uid);
	if ((r = req_new(ps, REQ_PUBLISH)) == NULL ||
	    (r->payload = malloc(n + len + 1)) == NULL) {
		req_free(r);
		cb(arg, uid, -1, line, len);
		return;
	}
	memcpy(r->payload, pre, n);
	memcpy(r->payload + n, line, len);
	r->payload[n + len] = '\0';
	r->plen = n + len;
	r->off = n;
	r->uid = uid;
	r->script = SCRIPT_PUBLISH;
	r->cb.publish = cb;
	r->arg = arg;
	if (req_send(ps, r) == -1)
		req_fail(ps, r);
}
