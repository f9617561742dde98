/*
 * pubsub.c - cluster mode over Redis: the links of one instance of the
 * bus (struct bus; shard.c holds one per instance).  Three connections
 * per worker: "cmd" for presence and publishing, "pop" for this worker's
 * queue (queue.c), "sub" for the presence cache's invalidations
 * (cache.c), each with its requests, watchdog and reconnects;
 * the heartbeat that keeps the node and slot keys alive; asking the
 * Sentinels where the primary is; start and exit.  hiredis' async API on the worker's libev loop.
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

#include "busitem.h"
#include "cfg.h"
#include "log.h"
#include "ps_int.h"
#include "util.h"

#define CMD(ps)	((redisAsyncContext *)(ps)->cmd)
#define POP(ps)	((redisAsyncContext *)(ps)->pop)
#define SUB(ps)	((redisAsyncContext *)(ps)->sub)

static void	ctx_drop(struct bus *, redisAsyncContext *, const char *);
static void	heartbeat(struct bus *);
static void	dispatch(struct bus *, struct req *, redisReply *);

/* ---- requests ----------------------------------------------------------- */

void
req_free(struct req *r)
{
	size_t	 i;

	if (r == NULL)
		return;
	free(r->cmd);
	free(r->uids);
	for (i = 0; i < r->npubs; i++) {
		free(r->pubs[i].item);
		free(r->pubs[i].queue);
	}
	free(r->pubs);
	free(r->queue);
	free(r);
}

struct req *
req_new(struct bus *ps, enum req_kind kind, enum script script)
{
	struct req	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->ps = ps;
	r->kind = kind;
	r->script = script;
	return r;
}

/*
 * r's arguments (after EVALSHA and the script for a script call),
 * formatted once as Redis' protocol, behind REQ_HEAD bytes of room for
 * the command's head (req_send): one copy, sent as it is (and again as
 * it was), never formatted again by hiredis.  A NULL argument is left
 * for the caller to write (r->hole, lens[i] bytes).  0 or -1.
 */
int
req_args(struct req *r, int argc, const char *const *argv,
    const size_t *lens)
{
	size_t	 total = 0;
	char	*p;
	int	 i;

	for (i = 0; i < argc; i++)
		total += 1 + util_ndigits(lens[i]) + 2 + lens[i] + 2;
	free(r->cmd);
	if ((r->cmd = malloc(REQ_HEAD + total + 1)) == NULL)
		return -1;
	p = r->cmd + REQ_HEAD;
	for (i = 0; i < argc; i++) {
		p += snprintf(p, 1 + util_ndigits(lens[i]) + 2 + 1, "$%zu\r\n",
		    lens[i]);
		if (argv[i] == NULL)	/* the caller writes it: no copy */
			r->hole = p;
		else
			memcpy(p, argv[i], lens[i]);
		p += lens[i];
		*p++ = '\r';
		*p++ = '\n';
	}
	*p = '\0';	/* hiredis reads the command as a C string */
	r->cmdlen = total;
	r->argc = argc;
	return 0;
}

/* req_args for C strings. */
int
req_strs(struct req *r, int argc, const char *const *argv)
{
	size_t	 lens[8];
	int	 i;

	if (argc > 8)
		return -1;
	for (i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	return req_args(r, argc, argv, lens);
}

static void	reply_cb(redisAsyncContext *, void *, void *);

/*
 * A script call whose script is not loaded: EVAL with its text, in a
 * buffer of its own (rare: before SCRIPT LOAD is answered, or after
 * NOSCRIPT).
 */
static int
send_eval(redisAsyncContext *ac, struct req *r)
{
	const char	*text = ps_scripts[r->script];
	size_t		 tl = strlen(text), cap = 64 + tl + r->cmdlen + 1;
	char		*buf;
	int		 hl, rc;

	if ((buf = malloc(cap)) == NULL)
		return -1;
	hl = snprintf(buf, cap, "*%d\r\n$4\r\nEVAL\r\n$%zu\r\n", r->argc + 2,
	    tl);
	memcpy(buf + hl, text, tl);
	memcpy(buf + hl + tl, "\r\n", 2);
	memcpy(buf + hl + tl + 2, r->cmd + REQ_HEAD, r->cmdlen + 1);
	rc = redisAsyncFormattedCommand(ac, reply_cb, r, buf,
	    (size_t)hl + tl + 2 + r->cmdlen);
	free(buf);
	return rc;
}

/* Send r on its connection: 0, or -1 (r untouched, not sent). */
int
req_send(struct bus *ps, struct req *r)
{
	redisAsyncContext	*ac = r->on_pop ? POP(ps) : CMD(ps);
	char			 head[REQ_HEAD];
	int			 hl, rc;

	if (ac == NULL || r->cmd == NULL)
		return -1;
	if (r->script != SCRIPT_NONE && (r->retried ||
	    ps->sha[r->script][0] == '\0'))
		rc = send_eval(ac, r);
	else {
		/* the head goes in the room left in front of the arguments */
		if (r->script != SCRIPT_NONE)
			hl = snprintf(head, sizeof(head), "*%d\r\n$7\r\nEVALSHA"
			    "\r\n$40\r\n%.40s\r\n", r->argc + 2,
			    ps->sha[r->script]);
		else
			hl = snprintf(head, sizeof(head), "*%d\r\n", r->argc);
		if (hl < 0 || hl >= (int)sizeof(head))
			return -1;
		memcpy(r->cmd + REQ_HEAD - hl, head, (size_t)hl);
		rc = redisAsyncFormattedCommand(ac, reply_cb, r, r->cmd +
		    REQ_HEAD - hl, (size_t)hl + r->cmdlen);
	}
	if (rc != REDIS_OK)
		return -1;
	r->sent = 1;
	if (r->on_pop) {
		if (ps->pop_pending++ == 0)
			ps->pop_wait = ev_now(ps->loop);
	} else if (ps->cmd_pending++ == 0)
		ps->cmd_wait = ev_now(ps->loop);
	return 0;
}

/* Report r's failure from the loop, never inside the caller's call. */
void
req_fail(struct bus *ps, struct req *r)
{
	r->next = NULL;
	r->sent = 0;
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
	struct bus	*ps = w->data;
	struct req	*r;

	while ((r = ps->failed) != NULL) {
		if ((ps->failed = r->next) == NULL)
			ps->failed_tail = &ps->failed;
		dispatch(ps, r, NULL);
	}
}

/* A plain command with no caller waiting for it. */
void
send_plain(struct bus *ps, enum req_kind kind, int argc,
    const char **argv)
{
	struct req	*r;

	if ((r = req_new(ps, kind, SCRIPT_NONE)) == NULL)
		return;
	r->on_pop = kind == REQ_POPAUTH;
	if (req_strs(r, argc, argv) == -1 || req_send(ps, r) == -1)
		req_free(r);
}

/* Errors repeat every backoff period: say each one once a minute. */
void
log_conn_error(struct bus *ps, const char *what, const char *why)
{
	char		 msg[sizeof(ps->last_err)];
	ev_tstamp	 now = ev_now(ps->loop);

	snprintf(msg, sizeof(msg), "%s: %s", what, why);
	if (strcmp(msg, ps->last_err) == 0 &&
	    now - ps->last_err_at < LOG_REPEAT_SECONDS)
		return;
	snprintf(ps->last_err, sizeof(ps->last_err), "%s", msg);
	ps->last_err_at = now;
	if (ps->host == NULL)
		log_warnx("redis %s: %s (cross-node delivery and presence "
		    "unavailable; retrying)", ps->master, msg);
	else if (strcmp(what, "command") == 0)
		log_warnx("redis %s:%d: %s", ps->host, ps->port, msg);
	else
		log_warnx("redis %s:%d: %s (cross-node delivery and presence "
		    "unavailable; retrying)", ps->host, ps->port, msg);
}

static void
note_down(struct bus *ps, const char *why)
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

void
check_up(struct bus *ps)
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

/* ---- replies ------------------------------------------------------------ */

static void
dispatch(struct bus *ps, struct req *r, redisReply *rep)
{
	switch (r->kind) {
	case REQ_AUTH:
	case REQ_WAKE:
	case REQ_EXIT:
	case REQ_HIST_ANSWER:
		if (r->kind == REQ_EXIT)
			ps->exit_done = 1;
		break;
	case REQ_LOAD:
		if (rep != NULL && rep->type == REDIS_REPLY_STRING &&
		    rep->len == 40 && r->argc == 3)
			memcpy(ps->sha[atoi(r->queue ? r->queue : "0")],
			    rep->str, 41);
		break;
	case REQ_HEARTBEAT:
		if (rep != NULL && rep->type == REDIS_REPLY_STATUS &&
		    !ps->cmd_up && ps->cmd != NULL) {
			ps->cmd_up = 1;
			check_up(ps);
			queue_resend(ps);
		}
		break;
	case REQ_CLAIM:
	case REQ_TAKEOVER:
	case REQ_REASSERT:
	case REQ_RELEASE:
	case REQ_QUERY:
	case REQ_LOCATE:
	case REQ_LOGIN:
		if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
			log_conn_error(ps, "command", rep->str);
			rep = NULL;
		}
		presence_done(ps, r, rep);
		return;
	case REQ_PUBLISH:
	case REQ_PUSH:
		if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
			log_conn_error(ps, "command", rep->str);
			/* the script refused to run: nothing was queued */
			r->sent = 0;
			rep = NULL;
		}
		queue_publish_done(ps, r, rep);
		return;
	case REQ_WAITREPL:
		queue_wait_done(ps, r, rep);
		return;
	case REQ_HIST_ASK:
		hbar_published(ps, r, rep);
		break;
	default:
		queue_done(ps, r, rep);
		return;
	}
	req_free(r);
}

static void
script_load(struct bus *ps, enum script s)
{
	struct req	*r;
	const char	*a[3];
	char		 id[16];

	if ((r = req_new(ps, REQ_LOAD, SCRIPT_NONE)) == NULL)
		return;
	snprintf(id, sizeof(id), "%d", (int)s);
	a[0] = "SCRIPT";
	a[1] = "LOAD";
	a[2] = ps_scripts[s];
	if ((r->queue = strdup(id)) == NULL || req_strs(r, 3, a) == -1 ||
	    req_send(ps, r) == -1)
		req_free(r);
}

static void
reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct req	*r = privdata;
	struct bus	*ps = r->ps;
	redisReply	*rep = reply;

	if (ac == CMD(ps)) {
		if (ps->cmd_pending > 0)
			ps->cmd_pending--;
		ps->cmd_wait = ev_now(ps->loop);
	} else if (ac == POP(ps)) {
		if (ps->pop_pending > 0)
			ps->pop_pending--;
		ps->pop_wait = ev_now(ps->loop);
	}
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
		if ((r->kind == REQ_AUTH && ac == CMD(ps)) ||
		    (r->kind == REQ_POPAUTH && ac == POP(ps))) {
			log_conn_error(ps, "AUTH", rep->str);
			req_free(r);
			ctx_drop(ps, ac, "AUTH refused");
			return;
		}
		/*
		 * A primary demoted by a failover: ask the Sentinels again;
		 * the request counts as unanswered (a publish is resent).
		 */
		if (ps->master != NULL &&
		    strncmp(rep->str, "READONLY", 8) == 0) {
			ps_drop_all(ps, "the primary became a replica");
			dispatch(ps, r, NULL);
			return;
		}
		/* the script cache was flushed: send in full, load again */
		if (strncmp(rep->str, "NOSCRIPT", 8) == 0 && !r->retried &&
		    r->script != SCRIPT_NONE) {
			r->retried = 1;
			if (ps->sha[r->script][0] != '\0') {
				ps->sha[r->script][0] = '\0';
				script_load(ps, r->script);
			}
			if (req_send(ps, r) == 0)
				return;
			rep = NULL;
		}
	}
	dispatch(ps, r, rep);
}

/* We are alive: node, slot, and the queue others may have to reap. */
static void
heartbeat(struct bus *ps)
{
	const char	*argv[5];
	char		 ttl[16];

	snprintf(ttl, sizeof(ttl), "%d", KEY_TTL_SECONDS);
	argv[0] = "SET";
	argv[1] = ps->node_key;
	argv[2] = ps->boot;
	argv[3] = "EX";
	argv[4] = ttl;
	send_plain(ps, REQ_HEARTBEAT, 5, argv);
	argv[1] = ps->slot_key;
	argv[2] = ps->gen_str;
	send_plain(ps, REQ_HEARTBEAT, 5, argv);
	argv[0] = "SADD";
	argv[1] = "chatd:queues";
	argv[2] = ps->queue;
	send_plain(ps, REQ_HEARTBEAT, 3, argv);
	ps->last_heartbeat = ev_now(ps->loop);
}

/*
 * A fresh cmd connection: log in, load the scripts, announce the node
 * and the slot, then set Redis right about our users.
 */
static void
cmd_setup(struct bus *ps)
{
	const char	*argv[2];
	int		 s;

	if (ps->password != NULL) {
		argv[0] = "AUTH";
		argv[1] = ps->password;
		send_plain(ps, REQ_AUTH, 2, argv);
	}
	for (s = 0; s < NSCRIPTS; s++)
		script_load(ps, s);
	heartbeat(ps);
	presence_setup(ps);
}

/* ---- connections -------------------------------------------------------- */

void
schedule_retry(struct bus *ps)
{
	if (ps->exiting || ev_is_active(&ps->retry))
		return;
	ev_timer_set(&ps->retry, ps->backoff, 0.);
	ev_timer_start(ps->loop, &ps->retry);
	ps->backoff *= 2;
	if (ps->backoff > BACKOFF_MAX)
		ps->backoff = BACKOFF_MAX;
	if (ps->master != NULL && ps->backoff > SENTINEL_BACKOFF_MAX)
		ps->backoff = SENTINEL_BACKOFF_MAX;
}

static void
ctx_forget(struct bus *ps, const redisAsyncContext *ac)
{
	/* a lost link may mean a failover: ask who the primary is now */
	if (ps->master != NULL && !ps->exiting &&
	    (ac == ps->cmd || ac == ps->pop || ac == ps->sub))
		ps->need_primary = 1;
	if (ac == ps->cmd) {
		ps->cmd = NULL;
		ps->cmd_up = 0;
		ps->cmd_pending = 0;
	} else if (ac == ps->pop) {
		ps->pop = NULL;
		ps->pop_up = 0;
		ps->pop_pending = 0;
		ps->fetching = 0;
	} else if (ac == ps->sub) {
		/* invalidations may be missed from now on */
		ps->sub = NULL;
		ps->cache.on = 0;
		pcache_clear(&ps->cache);
	}
}

/* Give up on a connection; its pending callbacks run with no reply. */
static void
ctx_drop(struct bus *ps, redisAsyncContext *ac, const char *why)
{
	if (ac == NULL)
		return;
	ctx_forget(ps, ac);
	note_down(ps, why);
	redisAsyncFree(ac);
	schedule_retry(ps);
}

void
ps_drop_pop(struct bus *ps, const char *why)
{
	ctx_drop(ps, POP(ps), why);
}

void
ps_drop_all(struct bus *ps, const char *why)
{
	ctx_drop(ps, CMD(ps), why);
	ctx_drop(ps, POP(ps), why);
	ctx_drop(ps, SUB(ps), why);
}

static void
connect_cb(const redisAsyncContext *ac, int status)
{
	struct bus	*ps = ac->data;

	if (status == REDIS_OK)
		return;
	/* hiredis frees ac after this */
	if (ac == ps->cmd || ac == ps->pop || ac == ps->sub) {
		ctx_forget(ps, ac);
		note_down(ps, ac->errstr);
		schedule_retry(ps);
	}
}

static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct bus	*ps = ac->data;

	/* one we dropped ourselves was already forgotten */
	if (ac != ps->cmd && ac != ps->pop && ac != ps->sub)
		return;
	ctx_forget(ps, ac);
	note_down(ps, status == REDIS_OK ? "closed" : ac->errstr);
	schedule_retry(ps);
}

static redisAsyncContext *
ctx_open(struct bus *ps)
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

/*
 * chatd:presence: the subscription confirmed (the cache may be used),
 * or a uid whose presence changed (its cached entry goes).  chatd:lf:
 * a failed-login key blocked cluster-wide ("<16 hex> <seconds>").
 * chatd:hf, chatd:hfa: the history barrier (hbarrier.c).
 */
static void
login_blocked(struct bus *ps, const char *msg)
{
	unsigned long long	 key;
	long			 secs;
	char			*end;

	key = strtoull(msg, &end, 16);
	if (end != msg + 16 || *end != ' ' || ps->h.login_blocked == NULL)
		return;
	secs = strtol(end + 1, &end, 10);
	if (*end == '\0' && secs > 0 && key != 0)
		ps->h.login_blocked(ps->h.arg, (uint64_t)key, (int)secs);
}

static void
sub_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct bus	*ps = privdata;
	redisReply	*rep = reply, **e;
	char		*end;
	int32_t		 uid;

	if (rep == NULL || ac != SUB(ps))
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		log_conn_error(ps, "subscribe", rep->str);
		ctx_drop(ps, ac, "subscribing failed");
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3)
		return;
	e = rep->element;
	if (e[0]->type != REDIS_REPLY_STRING ||
	    e[1]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(e[0]->str, "subscribe") == 0 &&
	    strcmp(e[1]->str, "chatd:presence") == 0)
		ps->cache.on = 1;
	else if (strcmp(e[0]->str, "message") == 0 &&
	    e[2]->type == REDIS_REPLY_STRING) {
		if (strcmp(e[1]->str, "chatd:lf") == 0)
			login_blocked(ps, e[2]->str);
		else if (strncmp(e[1]->str, "chatd:hf", 8) == 0)
			hbar_message(ps, ps->inst, e[1]->str[8] == 'a',
			    e[2]->str, e[2]->len);
		else {
			/* "<uid>[ <new holder's value>]" */
			uid = (int32_t)strtol(e[2]->str, &end, 10);
			pcache_del(&ps->cache, uid);
			presence_changed(ps, uid, *end == ' ' ? end + 1 :
			    NULL);
		}
	}
}

void
open_missing(struct bus *ps)
{
	const char	*argv[2];

	if (ps->exiting)
		return;
	if (ps->master != NULL && (ps->need_primary || ps->host == NULL)) {
		/* connect once the Sentinels said where (sen_cb) */
		sentinel_ask(ps);
		return;
	}
	if (ps->cmd == NULL && (ps->cmd = ctx_open(ps)) != NULL) {
		ps->cmd_up = 0;
		ps->cmd_pending = 0;
		cmd_setup(ps);
	}
	if (ps->pop == NULL && (ps->pop = ctx_open(ps)) != NULL) {
		ps->pop_up = 0;
		ps->pop_pending = 0;
		ps->fetching = 0;
		if (ps->password != NULL) {
			argv[0] = "AUTH";
			argv[1] = ps->password;
			send_plain(ps, REQ_POPAUTH, 2, argv);
		}
		/* what we took and did not hand off first, then the queue */
		ps->resume = 1;
		ps->more = 1;
		queue_next(ps);
	}
	if (ps->sub == NULL && (ps->sub = ctx_open(ps)) != NULL) {
		if (ps->password != NULL)
			(void)redisAsyncCommand(SUB(ps), NULL, NULL, "AUTH %s",
			    ps->password);
		(void)redisAsyncCommand(SUB(ps), sub_cb, ps,
		    "SUBSCRIBE chatd:presence chatd:lf chatd:hf chatd:hfa");
	}
	if (ps->cmd == NULL || ps->pop == NULL || ps->sub == NULL)
		schedule_retry(ps);
}

static void
retry_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	open_missing(w->data);
}

/* Read what already arrived before judging a link by its silence. */
static void
read_arrived(struct bus *ps)
{
	if (ps->cmd != NULL && ps->cmd_pending > 0)
		redisAsyncHandleRead(CMD(ps));
	if (ps->pop != NULL && ps->pop_pending > 0)
		redisAsyncHandleRead(POP(ps));
}

/* Watchdog, heartbeat, queue timers. */
static void
tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct bus	*ps = w->data;
	ev_tstamp	 now = ev_now(l);

	/*
	 * After a stalled loop (SIGSTOP, a blocking store call) libev runs
	 * overdue timers before reading the sockets: the replies waiting
	 * there must be handled, not thrown away with the connection.
	 */
	read_arrived(ps);
	sentinel_tick(ps);
	if (ps->cmd != NULL && ps->cmd_pending > 0 &&
	    now - ps->cmd_wait > REPLY_TIMEOUT) {
		/* a server that hangs holds logins and messages: let go */
		ctx_drop(ps, CMD(ps), "no answer for 3 seconds");
		ctx_drop(ps, POP(ps), "no answer for 3 seconds");
		return;
	}
	if (ps->pop != NULL && ps->pop_pending > 0 &&
	    now - ps->pop_wait > POP_BLOCK_SECONDS + REPLY_TIMEOUT)
		ctx_drop(ps, POP(ps), "no answer from the queue");
	if (ps->cmd != NULL &&
	    now - ps->last_heartbeat >= HEARTBEAT_SECONDS - 0.05)
		heartbeat(ps);
	queue_tick(ps);
	presence_tick(ps);
}

static void
flush_cb(struct ev_loop *l, ev_prepare *w, int revents)
{
	queue_flush(w->data);
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

struct bus *
bus_new(struct ev_loop *loop, const struct config *cfg, int inst,
    const char *boot, int slot, uint32_t gen, const struct pubsub_handler *h,
    char *err, size_t errlen)
{
	struct bus	*ps;
	const char	*master;
	char		 addr[NI_MAXHOST], id[64];
	int		 i;

	if (inst < 0 || inst >= cfg->redis_n ||
	    (cfg->redis_masters == NULL && cfg->redis_hosts == NULL) ||
	    (cfg->redis_masters != NULL && cfg->redis_nsentinels <= 0) ||
	    cfg->node_id == NULL || cfg->node_id[0] == '\0' ||
	    strpbrk(cfg->node_id, " \t\r\n") != NULL ||
	    boot == NULL || boot[0] == '\0' || strlen(boot) >= 32 ||
	    strspn(boot, "0123456789abcdef") != strlen(boot) ||
	    slot < 0 || h == NULL || h->deliver == NULL) {
		snprintf(err, errlen, "pubsub: bad arguments (node_id must "
		    "be set and hold no blanks)");
		return NULL;
	}
	master = cfg->redis_masters != NULL ? cfg->redis_masters[inst] : NULL;
	if (master == NULL && resolve(cfg->redis_hosts[inst], addr,
	    sizeof(addr), err, errlen) == -1)
		return NULL;
	if ((ps = calloc(1, sizeof(*ps))) == NULL)
		goto nomem;
	if (master != NULL) {
		ps->nsentinels = cfg->redis_nsentinels;
		ps->need_primary = 1;
		if ((ps->master = strdup(master)) == NULL ||
		    (ps->sentinels = calloc((size_t)ps->nsentinels,
		    sizeof(char *))) == NULL ||
		    (ps->sentinel_ports = calloc((size_t)ps->nsentinels,
		    sizeof(int))) == NULL)
			goto nomem;
		for (i = 0; i < ps->nsentinels; i++) {
			if (resolve(cfg->redis_sentinel_host[i], addr,
			    sizeof(addr), err, errlen) == -1) {
				bus_free(ps);
				return NULL;
			}
			if ((ps->sentinels[i] = strdup(addr)) == NULL)
				goto nomem;
			ps->sentinel_ports[i] = cfg->redis_sentinel_port[i];
		}
	}
	ps->loop = loop;
	ps->failed_tail = &ps->failed;
	snprintf(id, sizeof(id), "%s.%d", boot, slot);
	if ((ps->auth = busauth_new(cfg->cluster_key, cfg->cluster_key_old,
	    cfg->node_id, id, cfg->cluster_max_age > 0 ?
	    cfg->cluster_max_age : 300, err, errlen)) == NULL) {
		bus_free(ps);
		return NULL;
	}
	ps->h = *h;
	ps->item_version = cfg->cluster_item_version > 0 ?
	    cfg->cluster_item_version : BUS_ITEM_VERSION;
	/* sentinel mode: sen_cb sets host and port */
	ps->port = master == NULL ? cfg->redis_ports[inst] : 0;
	ps->slot = slot;
	ps->inst = inst;
	ps->gen = gen;
	snprintf(ps->boot, sizeof(ps->boot), "%s", boot);
	snprintf(ps->gen_str, sizeof(ps->gen_str), "%u", gen);
	ps->backoff = BACKOFF_MIN;
	if ((ps->master == NULL && (ps->host = strdup(addr)) == NULL) ||
	    (ps->node_id = strdup(cfg->node_id)) == NULL ||
	    (cfg->redis_password != NULL &&
	    (ps->password = strdup(cfg->redis_password)) == NULL) ||
	    asprintf(&ps->me, "%s %s %d %u", ps->node_id, boot, slot,
	    gen) == -1 ||
	    asprintf(&ps->queue, "chatd:q:%s:%s:%d", ps->node_id, boot,
	    slot) == -1 ||
	    asprintf(&ps->plist, "%s:p", ps->queue) == -1 ||
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
	ev_prepare_init(&ps->flush, flush_cb);
	ps->flush.data = ps;
	ps->last_reap = ev_now(loop);
	open_missing(ps);
	return ps;

 nomem:
	snprintf(err, errlen, "pubsub: out of memory");
	bus_free(ps);
	return NULL;
}

static void
exit_timer_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	*(int *)w->data = 1;
}

static int
exit_sent(const struct bus *ps)
{
	return ps->exit_done || ps->cmd == NULL;
}

static int
queue_drained(const struct bus *ps)
{
	return ps->pop == NULL || (ps->drained && ps->pop_pending == 0);
}

/* Run the loop until done(ps) or the time is up (worker exit only). */
static void
run_until(struct bus *ps, double seconds,
    int (*done)(const struct bus *))
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
bus_free(struct bus *ps)
{
	const char		*argv[2];
	redisAsyncContext	*ac;
	int			 i;

	if (ps == NULL)
		return;
	ps->exiting = 1;
	if (ps->loop != NULL) {
		ev_timer_stop(ps->loop, &ps->retry);
		ev_timer_stop(ps->loop, &ps->tick);
		if (ps->nbatch > 0)
			queue_flush(ps);
		ev_prepare_stop(ps->loop, &ps->flush);
	}
	if (ps->cmd_up) {
		/* our presence entries go stale: nothing new is queued */
		argv[0] = "DEL";
		argv[1] = ps->slot_key;
		send_plain(ps, REQ_EXIT, 2, argv);
		run_until(ps, EXIT_WAIT_SECONDS, exit_sent);
		/*
		 * Hand off what is left in the queue: the fetch under way
		 * ends within its timeout, then takes without waiting.
		 */
		ps->draining = 1;
		queue_next(ps);
		run_until(ps, POP_BLOCK_SECONDS + EXIT_WAIT_SECONDS + 0.5,
		    queue_drained);
	}
	if ((ac = POP(ps)) != NULL) {
		ctx_forget(ps, ac);
		redisAsyncFree(ac);
	}
	if ((ac = SUB(ps)) != NULL) {
		ctx_forget(ps, ac);
		redisAsyncFree(ac);
	}
	if ((ac = CMD(ps)) != NULL) {
		ctx_forget(ps, ac);
		redisAsyncFree(ac);
	}
	if ((ac = ps->sen) != NULL) {
		ps->sen = NULL;
		redisAsyncFree(ac);
	}
	if (ps->loop != NULL) {
		fail_cb(ps->loop, &ps->failt, 0);
		ev_timer_stop(ps->loop, &ps->failt);
	}
	queue_free(ps);
	pcache_clear(&ps->cache);
	hbar_forget(ps);
	busauth_free(ps->auth);
	uidset_clear(&ps->local);
	uidset_clear(&ps->unreleased);
	uidset_clear(&ps->nudge_later);
	uidset_clear(&ps->refetch);
	free(ps->host);
	for (i = 0; ps->sentinels != NULL && i < ps->nsentinels; i++)
		free(ps->sentinels[i]);
	free(ps->sentinels);
	free(ps->sentinel_ports);
	free(ps->master);
	free(ps->node_id);
	if (ps->password != NULL)
		explicit_bzero(ps->password, strlen(ps->password));
	free(ps->password);
	free(ps->me);
	free(ps->queue);
	free(ps->plist);
	free(ps->node_key);
	free(ps->slot_key);
	free(ps);
}

int
bus_up(const struct bus *ps)
{
	return ps != NULL && ps->cmd_up && ps->pop_up;
}

uint64_t
bus_failovers(const struct bus *ps)
{
	return ps != NULL ? ps->failovers : 0;
}

uint64_t
bus_unreplicated(const struct bus *ps)
{
	return ps != NULL ? ps->unreplicated : 0;
}
