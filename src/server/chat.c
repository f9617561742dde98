/* chat.c - the chat service: requests, routing, offline messages. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "cfg.h"
#include "chat.h"
#include "guard.h"
#include "log.h"
#include "pubsub.h"
#include "store.h"

static struct chat_env		 env;
static struct proto_limits	 limits;

/* An answer that needs the hash pool; holds a reference on its conn. */
struct chat_job {
	struct auth_job	 aj;
	struct conn	*c;
	int		 msgid;
	int32_t		 uid;		/* LOGIN: the user found, 0 if none */
	uint64_t	 ukey;		/* LOGIN: failed-login key of the user */
	char		*name;		/* REG: the new user's name */
	size_t		 name_len;
};

static void	stat_add(uint64_t *counter, uint64_t n);
static void	logout(struct conn *c);
static void	offline_push(struct conn *c);
static void	track_delivered(struct conn *c, int64_t smid);
static void	deliver_acked(int32_t uid, int64_t smid, const char *line,
		    size_t len, int may_publish);

/*
 * User ids known to exist, so that a chat to a user on another node
 * does not ask the store every time (users are never deleted).  A
 * small direct-mapped cache: a collision only costs one lookup.
 */
#define KNOWN_USERS_BITS	12
static int32_t		 known_users[1 << KNOWN_USERS_BITS];

static size_t
known_slot(int32_t uid)
{
	return ((uint32_t)uid * 2654435761u) >> (32 - KNOWN_USERS_BITS);
}

static int
user_known(int32_t uid)
{
	return uid > 0 && known_users[known_slot(uid)] == uid;
}

static void
user_known_add(int32_t uid)
{
	if (uid > 0)
		known_users[known_slot(uid)] = uid;
}

/*
 * Members of the groups posted to, per worker, so that a group chat
 * does not query the store each time.  Only on a single node: a join
 * on another node would not be seen (cluster mode goes to the store).
 * A worker that changes a group drops its entry and tells the other
 * workers (CHAN_GROUP, uid = group id); GROUP_CACHE_TTL bounds what a
 * message still in flight between workers could miss.  Direct-mapped:
 * a collision costs one query.
 */
#define GROUP_CACHE_BITS	10
#define GROUP_CACHE_TTL		2.0	/* seconds */

struct group_cache {
	int32_t		 gid;		/* 0: empty */
	int32_t		*uids;
	size_t		 n;
	double		 expires;
};
static struct group_cache	 gcache[1 << GROUP_CACHE_BITS];

static double
mono_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct group_cache *
gcache_slot(int32_t gid)
{
	return &gcache[((uint32_t)gid * 2654435761u) >>
	    (32 - GROUP_CACHE_BITS)];
}

static void
gcache_drop(int32_t gid)
{
	struct group_cache	*g = gcache_slot(gid);

	if (g->gid == gid) {
		free(g->uids);
		memset(g, 0, sizeof(*g));
	}
}

/* This worker changed gid: drop it here and in the other workers. */
static void
gcache_changed(int32_t gid)
{
	struct chan_hdr	 h;
	int		 i;

	if (env.pubsub != NULL)
		return;
	gcache_drop(gid);
	memset(&h, 0, sizeof(h));
	h.type = CHAN_GROUP;
	h.uid = (uint32_t)gid;
	h.from_slot = env.slot;
	for (i = 0; i < online_nslots(env.online); i++)
		if (i != env.slot)
			(void)env.to_slot(i, &h, "");
}

/* The cached members of gid (*uids, *n), or -1. */
static int
gcache_get(int32_t gid, const int32_t **uids, size_t *n)
{
	struct group_cache	*g = gcache_slot(gid);

	if (env.pubsub != NULL || g->gid != gid || mono_now() >= g->expires)
		return -1;
	*uids = g->uids;
	*n = g->n;
	return 0;
}

static void
gcache_put(int32_t gid, const struct store_user_list *members)
{
	struct group_cache	*g = gcache_slot(gid);
	int32_t			*v;
	size_t			 i;

	if (env.pubsub != NULL ||
	    (v = calloc(members->n + 1, sizeof(*v))) == NULL)
		return;
	for (i = 0; i < members->n; i++)
		v[i] = members->v[i].id;
	free(g->uids);
	g->gid = gid;
	g->uids = v;
	g->n = members->n;
	g->expires = mono_now() + GROUP_CACHE_TTL;
}

void
chat_reconfigure(const struct config *cfg)
{
	limits.max_name_bytes = cfg->max_name_bytes;
	limits.max_message_bytes = cfg->max_message_bytes;
	limits.max_groupdesc_bytes = cfg->max_groupdesc_bytes;
	limits.max_password_bytes = cfg->max_password_bytes;
	env.cfg = cfg;
}

void
chat_init(const struct chat_env *e)
{
	env = *e;
	chat_reconfigure(e->cfg);
}

static void
stat_add(uint64_t *counter, uint64_t n)
{
	__atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

static void
reply_error(struct conn *c, int reply_msgid, int code, int refmsgid,
    const char *text)
{
	stat_add(&env.stats->errors, 1);
	if (proto_put_error(&c->out, reply_msgid, code, refmsgid,
	    text != NULL ? text : proto_strerror(code)) == -1) {
		conn_close(c, "out of memory");
		return;
	}
	(void)conn_sent(c);
}

/* The error answer for a request: LOGIN and REG get their own ACK. */
static int
ack_msgid(int msgid)
{
	if (msgid == MSG_LOGIN)
		return MSG_LOGIN_ACK;
	if (msgid == MSG_REG)
		return MSG_REG_ACK;
	return MSG_ERROR;
}

/* ---- delivery -------------------------------------------------------- */

/* Keep line (without its newline) for uids until they log in. */
static int
store_offline(const int32_t *uids, size_t n, const char *line, size_t len)
{
	if (n == 0)
		return 0;
	if (store_offline_add(env.store, uids, n, line, len) != STORE_OK) {
		log_warnx("storing an offline message for %zu user(s): %s", n,
		    store_error(env.store));
		return -1;
	}
	stat_add(&env.stats->offline_stored, n);
	/*
	 * Cluster: one of them may have logged in on some node after the
	 * sender looked and before this store; their worker then fetches.
	 */
	if (env.pubsub != NULL)
		pubsub_nudge(env.pubsub, uids, n);
	return 0;
}

/*
 * Deliver one forwarded line (ending in "\n") to uid if it is online on
 * this node.  0 handed over (this worker's connection, or another
 * worker that now owns the message), 1 not online here, -1 the user's
 * connection refused it (it was closed).
 */
static int
deliver_live(int32_t uid, const char *line, size_t len)
{
	struct online_entry	 e;
	struct chan_hdr		 h;
	struct conn		*c;

	if (online_get(env.online, uid, &e) == -1)
		return 1;
	if (e.slot == env.slot) {
		c = conn_lookup(e.conn);
		if (c == NULL || c->uid != uid)
			return 1;
		if (conn_send(c, line, len) == -1)
			return -1;
		stat_add(&env.stats->msgs_out, 1);
		return 0;
	}
	memset(&h, 0, sizeof(h));
	h.type = CHAN_DELIVER;
	h.uid = uid;
	h.conn = e.conn;
	h.gen = e.gen;
	h.from_slot = env.slot;
	h.len = len;
	return env.to_slot(e.slot, &h, line) == 0 ? 0 : -1;
}

/* A message another worker routed to one of our connections. */
void
chat_channel_msg(const struct chan_hdr *h, const char *payload)
{
	struct conn	*c;
	int32_t		 uid = h->uid;

	switch (h->type) {
	case CHAN_DELIVER:
		if (h->len == 0)
			break;
		c = conn_lookup(h->conn);
		if (c != NULL && c->uid == (int32_t)h->uid &&
		    conn_send(c, payload, h->len) == 0) {
			stat_add(&env.stats->msgs_out, 1);
			if (h->smid > 0)
				track_delivered(c, h->smid);
			break;
		}
		/* logged out meanwhile: the message must not be lost (an
		 * acknowledged one is stored already) */
		if (h->smid == 0)
			(void)store_offline(&uid, 1, payload, h->len - 1);
		break;
	case CHAN_GROUP:
		gcache_drop((int32_t)h->uid);
		break;
	case CHAN_KICK:
		c = conn_lookup(h->conn);
		if (c != NULL && c->uid == (int32_t)h->uid)
			conn_close(c, "kicked");
		break;
	default:
		log_warnx("channel: unknown message type %u from worker %u",
		    h->type, h->from_slot);
		break;
	}
}

/*
 * Cluster mode: lines for users who are not on this node go through
 * Redis.  One route per chat request, shared by its publishes; the
 * users nobody took the line for are stored in one go when the last
 * answer is in.  The sender's connection waits meanwhile (paused and
 * referenced): its next request is handled once the line was queued
 * or stored, as on a single node, so its messages keep their order and
 * a recipient who logs in after that finds them.  Errors go back to
 * the sender if still there.
 */
struct route {
	struct conn	*c;		/* held while paused, else NULL */
	uint32_t	 conn;		/* the sender's connection */
	int32_t		 sender;
	int		 refmsgid;
	const char	*errtext;
	size_t		 refs;
	int32_t		*away;
	size_t		 naway;
	char		*line;		/* with its "\n" */
	size_t		 len;
};

/* An error about a chat, for its sender if still connected. */
static void
reply_sender(uint32_t conn, int32_t sender, int refmsgid, const char *text)
{
	struct conn	*c;

	if ((c = conn_lookup(conn)) != NULL && c->uid == sender)
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, refmsgid, text);
}

static void
route_unref(struct route *rt)
{
	if (--rt->refs > 0)
		return;
	if (store_offline(rt->away, rt->naway, rt->line, rt->len - 1) == -1)
		reply_sender(rt->conn, rt->sender, rt->refmsgid, rt->errtext);
	if (rt->c != NULL) {
		conn_unref(rt->c);
		if (!rt->c->closing)
			conn_resume(rt->c);
	}
	free(rt->away);
	free(rt->line);
	free(rt);
}

/*
 * receivers 0: online nowhere; -1: Redis is down.  Either way nobody
 * took the line: it is kept here.  When it was queued for a worker,
 * that worker delivers or stores it.
 */
static void
route_published(void *arg, int32_t uid, long receivers, const char *line,
    size_t len)
{
	struct route	*rt = arg;

	if (receivers <= 0)
		rt->away[rt->naway++] = uid;
	route_unref(rt);
}

/*
 * Publish line to each of uids[0..n) for the sender on c.  1 under way
 * (c is paused until it is done), 0 done already, -1 nothing was sent.
 */
static int
route_publish(struct conn *c, int32_t sender, int refmsgid,
    const int32_t *uids, size_t n, const char *line, size_t len,
    const char *errtext)
{
	struct route	*rt;
	size_t		 i;

	if ((rt = calloc(1, sizeof(*rt))) == NULL ||
	    (rt->away = calloc(n, sizeof(*rt->away))) == NULL ||
	    (rt->line = malloc(len)) == NULL) {
		if (rt != NULL)
			free(rt->away);
		free(rt);
		return -1;
	}
	memcpy(rt->line, line, len);
	rt->len = len;
	rt->conn = c->id;
	rt->sender = sender;
	rt->refmsgid = refmsgid;
	rt->errtext = errtext;
	rt->refs = n + 1;	/* ours until every publish is made */
	for (i = 0; i < n; i++)
		pubsub_publish(env.pubsub, uids[i], line, len,
		    route_published, rt);
	if (rt->refs == 1) {
		/* all answered at once (out of memory): nothing to wait for */
		route_unref(rt);
		return 0;
	}
	rt->c = c;
	c->jobs++;
	conn_pause(c);
	route_unref(rt);
	return 1;
}

/*
 * A line another node queued for uid's worker: this one, or a dead one
 * whose queue this one took over.  Only this worker took it, so if uid
 * is not here it is stored here: exactly once either way.
 */
enum pubsub_result
chat_remote_deliver(void *arg, int32_t uid, const char *line, size_t len)
{
	if (len == 0 || line[len - 1] != '\n') {
		log_warnx("redis: dropping a malformed line for %d", (int)uid);
		return PUBSUB_DELIVERED;
	}
	int64_t	 smid;

	if ((smid = proto_line_smid(line, len)) > 0) {
		/* stored by the sending node: only deliver it */
		deliver_acked(uid, smid, line, len, 0);
		return PUBSUB_DELIVERED;
	}
	if (deliver_live(uid, line, len) == 0)
		return PUBSUB_DELIVERED;
	/* not stored: it stays in Redis and is offered again */
	return store_offline(&uid, 1, line, len - 1) == 0 ? PUBSUB_STORED :
	    PUBSUB_RETRY;
}

/*
 * Messages were stored for uid after it logged in here: hand them over
 * like the tail of a long backlog at login, each batch removed from the
 * store once it sits in the output buffer.  A login still under way
 * (c->uid not yet set) fetches them itself.
 */
void
chat_stored(void *arg, int32_t uid)
{
	struct online_entry	 e;
	struct conn		*c;

	if (online_get(env.online, uid, &e) == -1 || e.slot != env.slot ||
	    (c = conn_lookup(e.conn)) == NULL || c->uid != uid)
		return;
	/* a batch on its way: the new message follows with the next one */
	if (c->offline_upto > 0) {
		c->offline_more = 1;
		return;
	}
	offline_push(c);
}

/* Redis says uid logged in elsewhere while we could not reach it. */
void
chat_presence_lost(void *arg, int32_t uid)
{
	struct online_entry	 e;
	struct conn		*c;

	if (online_get(env.online, uid, &e) == 0 && e.slot == env.slot &&
	    (c = conn_lookup(e.conn)) != NULL && c->uid == uid)
		conn_close(c, "session taken over by a login on another node");
}

/* ---- login ----------------------------------------------------------- */

static void
proto_str_set(struct proto_str *s, const char *p, size_t len)
{
	s->p = p;
	s->len = len;
}

static int
user_online(int32_t uid)
{
	struct online_entry	 e;

	return online_get(env.online, uid, &e) == 0;
}

static int
cmp_uid(const void *a, const void *b)
{
	int32_t	 x = *(const int32_t *)a, y = *(const int32_t *)b;

	return x < y ? -1 : x > y;
}

/* remote: sorted ids online on other nodes (cluster mode), may be NULL. */
static void
fill_users(struct proto_user *pu, const struct store_user_list *l,
    const int32_t *remote, size_t nremote)
{
	size_t	 i;

	for (i = 0; i < l->n; i++) {
		pu[i].id = l->v[i].id;
		proto_str_set(&pu[i].name, l->v[i].name, l->v[i].name_len);
		pu[i].online = user_online(l->v[i].id) || (nremote > 0 &&
		    bsearch(&l->v[i].id, remote, nremote, sizeof(*remote),
		    cmp_uid) != NULL);
		pu[i].creator = l->v[i].creator;
		user_known_add(l->v[i].id);
	}
}

/* uid's friends and groups (with members), for the login answer. */
static int
load_lists(int32_t uid, struct store_user_list *friends,
    struct store_group_list *groups)
{
	if (store_friends(env.store, uid, friends) != STORE_OK ||
	    store_user_groups(env.store, uid, groups) != STORE_OK) {
		log_warnx("login of %d: %s", uid, store_error(env.store));
		return -1;
	}
	return 0;
}

/*
 * Write the login answer with friends, groups and the first offline
 * messages, then push any further offline messages as live ones.  Each
 * batch is removed from the store only once it sits in the output
 * buffer.
 */
/*
 * An offline backlog goes out in batches of at most
 * max_offline_per_login messages and a quarter of max_output_bytes, the
 * next batch when the client has read the last one; a batch is removed
 * from the store only once it reached the kernel, so a connection that
 * drops (or a worker that dies) meanwhile loses nothing.
 */
static size_t
offline_fits(const struct store_msg_list *msgs)
{
	size_t	 i, bytes = 0, cap = env.cfg->max_output_bytes / 4;

	for (i = 0; i < msgs->n; i++) {
		bytes += msgs->v[i].len + 1;
		if (bytes > cap && i > 0)
			break;
	}
	return i;
}

/* Whether more stored messages follow the first n of msgs. */
static int
offline_more(const struct store_msg_list *msgs, size_t n)
{
	return n < msgs->n || (msgs->n > 0 &&
	    msgs->n == env.cfg->max_offline_per_login);
}

/*
 * The first n of msgs were queued for c: remember what to remove, when
 * drained, or for an ackoffline client when it acknowledges them.
 */
static void
offline_sent(struct conn *c, const struct store_msg_list *msgs, size_t n)
{
	c->offline_uid = c->uid;
	c->offline_upto = n > 0 ? msgs->v[n - 1].id : 0;
	c->offline_more = offline_more(msgs, n);
	if (c->offline_upto > 0 && !c->ack_offline)
		c->want_drained = 1;
}

/* Remove the stored copies of acknowledged chats that reached c's socket. */
static void
remove_delivered(struct conn *c)
{
	size_t	 i;

	for (i = 0; i < c->ndelivered; i++)
		if (store_offline_remove(env.store, c->uid,
		    c->delivered[i]) != STORE_OK)
			log_warnx("removing a delivered message of %d: %s",
			    c->uid, store_error(env.store));
	c->ndelivered = 0;
}

/* An ackoffline client read offline messages up to req->upto. */
static void
handle_offline_ack(struct conn *c, const struct proto_req *req)
{
	if (!c->ack_offline) {
		reply_error(c, MSG_ERROR, ERR_NOT_ALLOWED, req->msgid,
		    "log in with \"ackoffline\":true first");
		return;
	}
	if (c->offline_upto == 0 || req->upto < c->offline_upto) {
		reply_error(c, MSG_ERROR, ERR_BAD_VALUE, req->msgid,
		    "\"upto\" is not the last \"offlineupto\" sent");
		return;
	}
	if (store_offline_delete(env.store, c->uid, c->offline_upto) !=
	    STORE_OK) {
		log_warnx("offline messages of %d: %s", c->uid,
		    store_error(env.store));
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return;
	}
	c->offline_upto = 0;
	if (c->offline_more)
		offline_push(c);
}

void
chat_drained(struct conn *c)
{
	remove_delivered(c);
	if (c->ack_offline) {
		c->want_drained = 0;
		return;
	}
	if (c->offline_upto > 0 && store_offline_delete(env.store,
	    c->offline_uid, c->offline_upto) != STORE_OK)
		log_warnx("removing delivered offline messages of %d: %s",
		    c->offline_uid, store_error(env.store));
	c->offline_upto = 0;
	if (!c->offline_more || c->uid != c->offline_uid) {
		c->want_drained = 0;
		return;
	}
	offline_push(c);
}

/*
 * Queue c's next batch of stored messages: as plain lines, or as one
 * OFFLINE_BATCH for a client that acknowledges them.
 */
static void
offline_push(struct conn *c)
{
	struct store_msg_list	 msgs = { NULL, 0 };
	struct proto_str	*om = NULL;
	size_t			 i, n;
	int			 rc = 0;

	if (store_offline_fetch(env.store, c->uid,
	    env.cfg->max_offline_per_login, &msgs) != STORE_OK) {
		/* they stay stored for the next login */
		log_warnx("offline messages of %d: %s", c->uid,
		    store_error(env.store));
		c->want_drained = 0;
		return;
	}
	n = offline_fits(&msgs);
	if (c->ack_offline && n > 0) {
		if ((om = calloc(n, sizeof(*om))) == NULL)
			rc = -1;
		for (i = 0; rc == 0 && i < n; i++)
			proto_str_set(&om[i], msgs.v[i].text, msgs.v[i].len);
		if (rc == 0)
			rc = proto_put_offline_batch(&c->out, om, n,
			    msgs.v[n - 1].id, offline_more(&msgs, n));
	} else {
		for (i = 0; rc == 0 && i < n; i++)
			if (buf_append(&c->out, msgs.v[i].text,
			    msgs.v[i].len) == -1 ||
			    buf_append(&c->out, "\n", 1) == -1)
				rc = -1;
	}
	if (rc == -1)
		conn_close(c, "out of memory");
	else if (n > 0 && conn_sent(c) == 0) {
		stat_add(&env.stats->msgs_out, n);
		offline_sent(c, &msgs, n);
	}
	free(om);
	store_msg_list_free(&msgs);
}

static int
send_login_reply(struct conn *c, const struct store_user_list *friends,
    const struct store_group_list *groups, const int32_t *remote,
    size_t nremote)
{
	struct store_msg_list	 msgs = { NULL, 0 };
	struct proto_login	 l;
	struct proto_user	*fu = NULL, *mu = NULL;
	struct proto_group	*pg = NULL;
	struct proto_str	*om = NULL;
	size_t			 i, nmembers = 0, k, noff;
	int			 rc = -1;

	if (store_offline_fetch(env.store, c->uid,
	    env.cfg->max_offline_per_login, &msgs) != STORE_OK) {
		log_warnx("login of %d: %s", c->uid, store_error(env.store));
		goto out;
	}
	for (i = 0; i < groups->n; i++)
		nmembers += groups->v[i].members.n;
	fu = calloc(friends->n + 1, sizeof(*fu));
	pg = calloc(groups->n + 1, sizeof(*pg));
	mu = calloc(nmembers + 1, sizeof(*mu));
	om = calloc(msgs.n + 1, sizeof(*om));
	if (fu == NULL || pg == NULL || mu == NULL || om == NULL)
		goto out;
	fill_users(fu, friends, remote, nremote);
	for (i = 0, k = 0; i < groups->n; i++) {
		pg[i].id = groups->v[i].id;
		proto_str_set(&pg[i].name, groups->v[i].name,
		    groups->v[i].name_len);
		proto_str_set(&pg[i].desc, groups->v[i].desc,
		    groups->v[i].desc_len);
		fill_users(mu + k, &groups->v[i].members, remote, nremote);
		pg[i].members = mu + k;
		pg[i].nmembers = groups->v[i].members.n;
		k += groups->v[i].members.n;
	}
	noff = offline_fits(&msgs);
	for (i = 0; i < noff; i++)
		proto_str_set(&om[i], msgs.v[i].text, msgs.v[i].len);

	memset(&l, 0, sizeof(l));
	l.id = c->uid;
	proto_str_set(&l.name, c->name, c->name_len);
	l.friends = fu;
	l.nfriends = friends->n;
	l.groups = pg;
	l.ngroups = groups->n;
	l.offline = om;
	l.noffline = noff;
	if (c->ack_offline) {
		l.ackoffline = 1;
		l.offlineupto = noff > 0 ? msgs.v[noff - 1].id : 0;
		l.offlinemore = offline_more(&msgs, noff);
	}
	if (proto_put_login_ok(&c->out, &l) == -1 || conn_sent(c) == -1)
		goto out;
	stat_add(&env.stats->msgs_out, noff);
	offline_sent(c, &msgs, noff);
	rc = 0;
out:
	store_msg_list_free(&msgs);
	free(fu);
	free(pg);
	free(mu);
	free(om);
	return rc;
}

/*
 * The user is in: from here on messages reach c live.  Anything that
 * arrived while the login was under way was stored and is fetched now.
 * name (malloc'ed) is taken over.
 */
static void
login_answer(struct conn *c, int32_t uid, char *name, size_t name_len,
    const struct store_user_list *friends,
    const struct store_group_list *groups, const int32_t *remote,
    size_t nremote)
{
	c->uid = uid;
	free(c->name);
	c->name = name;
	c->name_len = name_len;
	user_known_add(uid);
	conn_logged_in(c);
	stat_add(&env.stats->logins, 1);
	if (send_login_reply(c, friends, groups, remote, nremote) == -1 &&
	    !c->closing) {
		/* undo: a half-answered login helps nobody */
		logout(c);
		reply_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
	}
}

/*
 * Cluster mode: a login between the local session table and the
 * answer.  The connection stays paused and referenced (c->jobs) while
 * Redis is asked; c->uid stays 0 until the answer is written.
 */
struct login {
	struct conn		*c;
	int32_t			 uid;
	int			 claimed;	/* release when undone */
	char			*name;
	size_t			 name_len;
	struct store_user_list	 friends;
	struct store_group_list	 groups;
	int32_t			*remote;	/* sorted: online elsewhere */
	size_t			 nremote;
};

static void
login_free(struct login *l)
{
	free(l->name);
	free(l->remote);
	store_user_list_free(&l->friends);
	store_group_list_free(&l->groups);
	free(l);
}

/* Take the session back: the connection went away, or no answer. */
static void
login_undo(struct login *l)
{
	online_remove(env.online, l->uid, env.slot, l->c->id);
	if (l->claimed)
		pubsub_release(env.pubsub, l->uid);
}

static void
login_finish(struct login *l)
{
	struct conn	*c = l->c;

	login_answer(c, l->uid, l->name, l->name_len, &l->friends,
	    &l->groups, l->remote, l->nremote);
	l->name = NULL;
	conn_resume(c);
	login_free(l);
}

static void
login_queried(void *arg, int result, const int32_t *uids, const int *online,
    size_t n)
{
	struct login	*l = arg;
	struct conn	*c = l->c;
	size_t		 i;

	conn_unref(c);
	if (c->closing) {
		login_undo(l);
		login_free(l);
		return;
	}
	/* Redis down (result -1): users of other nodes show as offline */
	if (result == 0 && (l->remote = calloc(n + 1, sizeof(*uids))) != NULL)
		for (i = 0; i < n; i++)
			if (online[i])
				l->remote[l->nremote++] = uids[i];
	login_finish(l);
}

static void
login_claimed(void *arg, int result)
{
	struct login	*l = arg;
	struct conn	*c = l->c;
	int32_t		*ask = NULL;
	size_t		 i, j, n = 0, nask = 0;

	conn_unref(c);
	l->claimed = result != 1;
	if (c->closing) {
		login_undo(l);
		login_free(l);
		return;
	}
	if (result == 1) {
		online_remove(env.online, l->uid, env.slot, c->id);
		reply_error(c, MSG_LOGIN_ACK, ERR_ONLINE, MSG_LOGIN,
		    "this user is already online");
		goto resume;
	}
	/*
	 * result -1: Redis is out of reach.  The user logs in anyway:
	 * chat with users of this node must go on, and the claim is
	 * made once Redis is back.
	 */
	if (load_lists(l->uid, &l->friends, &l->groups) == -1) {
		login_undo(l);
		reply_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		goto resume;
	}
	if (result == 0) {
		/* whose state this node cannot tell: not online here */
		n = l->friends.n;
		for (i = 0; i < l->groups.n; i++)
			n += l->groups.v[i].members.n;
		if ((ask = calloc(n + 1, sizeof(*ask))) == NULL)
			n = 0;
		for (i = 0; i < l->friends.n && n > 0; i++)
			ask[nask++] = l->friends.v[i].id;
		for (i = 0; i < l->groups.n && n > 0; i++)
			for (j = 0; j < l->groups.v[i].members.n; j++)
				ask[nask++] = l->groups.v[i].members.v[j].id;
		qsort(ask, nask, sizeof(*ask), cmp_uid);
		for (i = 0, n = 0; i < nask; i++)
			if ((n == 0 || ask[n - 1] != ask[i]) &&
			    ask[i] != l->uid && !user_online(ask[i]))
				ask[n++] = ask[i];
		nask = n;
	}
	if (nask == 0) {
		free(ask);
		login_finish(l);
		return;
	}
	c->jobs++;
	pubsub_query_online(env.pubsub, ask, nask, login_queried, l);
	free(ask);
	return;
resume:
	conn_resume(c);
	login_free(l);
}

/* 0 answered, 1 the answer follows asynchronously (c stays paused). */
static int
login_done(struct chat_job *j)
{
	struct conn		*c = j->c;
	struct store_user	 u;
	struct store_user_list	 friends = { NULL, 0 };
	struct store_group_list	 groups = { NULL, 0 };
	struct online_entry	 e;
	struct login		*l;
	int			 rc;

	if (j->aj.result != 1 || j->uid == 0) {
		if (j->aj.result == -1)
			log_warnx("login: password check failed");
		reply_error(c, MSG_LOGIN_ACK, ERR_AUTH, MSG_LOGIN,
		    "wrong id or password");
		return 0;
	}
	if (c->uid != 0) {
		reply_error(c, MSG_LOGIN_ACK, ERR_ALREADY_LOGGED_IN, MSG_LOGIN,
		    NULL);
		return 0;
	}
	rc = online_add(env.online, j->uid, env.slot, c->id, &e);
	if (rc == 1) {
		reply_error(c, MSG_LOGIN_ACK, ERR_ONLINE, MSG_LOGIN,
		    "this user is already online");
		return 0;
	}
	if (rc == -1) {
		log_warnx("session table full (max_online = %d)",
		    env.cfg->max_online);
		reply_error(c, MSG_LOGIN_ACK, ERR_LIMIT, MSG_LOGIN,
		    "server full");
		return 0;
	}
	/* the name may have been looked up by id: take the stored one */
	if (store_user_get(env.store, j->uid, &u) != STORE_OK) {
		online_remove(env.online, j->uid, env.slot, c->id);
		reply_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		return 0;
	}
	if (env.pubsub == NULL) {
		/* a single node: nothing to ask anyone, answer now */
		if (load_lists(j->uid, &friends, &groups) == -1) {
			online_remove(env.online, j->uid, env.slot, c->id);
			store_user_clear(&u);
			reply_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE,
			    MSG_LOGIN, NULL);
			return 0;
		}
		login_answer(c, j->uid, u.name, u.name_len, &friends, &groups,
		    NULL, 0);
		u.name = NULL;
		store_user_clear(&u);
		store_user_list_free(&friends);
		store_group_list_free(&groups);
		return 0;
	}
	/* one session per user across the cluster: claim it in Redis */
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		online_remove(env.online, j->uid, env.slot, c->id);
		store_user_clear(&u);
		reply_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		return 0;
	}
	l->c = c;
	l->uid = j->uid;
	l->name = u.name;
	l->name_len = u.name_len;
	u.name = NULL;
	store_user_clear(&u);
	c->jobs++;
	pubsub_claim(env.pubsub, l->uid, login_claimed, l);
	return 1;
}

static void
reg_done(struct chat_job *j)
{
	struct conn	*c = j->c;
	int32_t		 id;
	int		 rc;

	if (j->aj.result != 0) {
		log_warnx("register: hashing the password failed");
		reply_error(c, MSG_REG_ACK, ERR_UNAVAILABLE, MSG_REG, NULL);
		return;
	}
	rc = store_user_create(env.store, j->name, j->name_len, j->aj.hash,
	    &id);
	if (rc == STORE_EXISTS) {
		reply_error(c, MSG_REG_ACK, ERR_AUTH, MSG_REG,
		    "this name is taken");
		return;
	}
	if (rc != STORE_OK) {
		log_warnx("register: %s", store_error(env.store));
		reply_error(c, MSG_REG_ACK, ERR_UNAVAILABLE, MSG_REG, NULL);
		return;
	}
	if (proto_put_reg_ack(&c->out, id) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
}

static void
chat_job_done(struct auth_job *aj)
{
	struct chat_job	*j = (struct chat_job *)aj;
	struct conn	*c = j->c;
	struct guard_policy pol;

	conn_unref(c);
	/* counted even when the client left without waiting for the answer */
	if (j->msgid == MSG_LOGIN && j->aj.result == 1 && j->uid != 0)
		guard_login_ok(env.guard, j->ukey);
	else if (j->msgid == MSG_LOGIN && j->aj.result != -1) {
		pol.fail_max = env.cfg->login_fail_max;
		pol.window = env.cfg->login_fail_window;
		pol.block = env.cfg->login_block;
		guard_login_failed(env.guard, j->ukey, c->akey, &pol);
	}
	if (!c->closing) {
		if (j->msgid != MSG_LOGIN) {
			reg_done(j);
			conn_resume(c);
		} else if (login_done(j) == 0)
			conn_resume(c);
	}
	explicit_bzero(j->aj.pw, j->aj.pwlen);
	free(j->aj.pw);
	free(j->name);
	free(j);
}

/* Hash or verify off the loop; the connection waits, others go on. */
static void
submit_job(struct conn *c, struct chat_job *j, const struct proto_req *req)
{
	j->c = c;
	j->msgid = req->msgid;
	j->aj.done = chat_job_done;
	j->aj.cost = env.cfg->password_cost;
	j->aj.pwlen = req->password.len;
	if ((j->aj.pw = malloc(req->password.len + 1)) == NULL) {
		free(j->name);
		free(j);
		reply_error(c, ack_msgid(req->msgid), ERR_UNAVAILABLE,
		    req->msgid, NULL);
		return;
	}
	memcpy(j->aj.pw, req->password.p, req->password.len);
	j->aj.pw[req->password.len] = '\0';
	c->jobs++;
	conn_pause(c);
	authpool_submit(env.auth, &j->aj);
}

static void
handle_login(struct conn *c, const struct proto_req *req)
{
	struct store_user	 u;
	struct chat_job		*j;
	uint64_t		 ukey;
	char			 text[128];
	int			 rc, retry;

	if (c->uid != 0) {
		reply_error(c, MSG_LOGIN_ACK, ERR_ALREADY_LOGGED_IN, MSG_LOGIN,
		    NULL);
		return;
	}
	c->ack_offline = req->ackoffline;
	memset(&u, 0, sizeof(u));
	if (req->has_id)
		rc = store_user_get(env.store, req->id, &u);
	else
		rc = store_user_by_name(env.store, req->name.p, req->name.len,
		    &u);
	if (rc == STORE_ERR) {
		log_warnx("login: %s", store_error(env.store));
		reply_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		return;
	}
	/*
	 * Too many failures for this user or from this address: refused
	 * before any hashing, the same way whether the user exists or not
	 * (by name or by id, a user is one key once found).
	 */
	if (rc == STORE_OK)
		ukey = guard_user_key(env.guard, u.id);
	else if (req->has_id)
		ukey = guard_user_key(env.guard, req->id);
	else
		ukey = guard_name_key(env.guard, req->name.p, req->name.len);
	if (guard_login_check(env.guard, ukey, c->akey, &retry) == -1) {
		store_user_clear(&u);
		snprintf(text, sizeof(text), "too many failed logins; try "
		    "again in %d seconds", retry);
		reply_error(c, MSG_LOGIN_ACK, ERR_RATE, MSG_LOGIN, text);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		store_user_clear(&u);
		reply_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		return;
	}
	j->aj.kind = AUTH_VERIFY;
	j->ukey = ukey;
	if (rc == STORE_OK && u.pwhash != NULL &&
	    strlen(u.pwhash) < sizeof(j->aj.hash)) {
		j->uid = u.id;
		memcpy(j->aj.hash, u.pwhash, strlen(u.pwhash) + 1);
	} else {
		/* no such user: spend the same time, answer the same way */
		snprintf(j->aj.hash, sizeof(j->aj.hash), "%s",
		    auth_dummy_hash(env.cfg->password_cost));
	}
	store_user_clear(&u);
	submit_job(c, j, req);
}

static void
handle_reg(struct conn *c, const struct proto_req *req)
{
	struct chat_job	*j;

	if (memchr(req->password.p, '\0', req->password.len) != NULL) {
		reply_error(c, MSG_REG_ACK, ERR_BAD_VALUE, MSG_REG,
		    "field \"password\": must not contain U+0000");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->name = malloc(req->name.len + 1)) == NULL) {
		free(j);
		reply_error(c, MSG_REG_ACK, ERR_UNAVAILABLE, MSG_REG, NULL);
		return;
	}
	memcpy(j->name, req->name.p, req->name.len);
	j->name[req->name.len] = '\0';
	j->name_len = req->name.len;
	j->aj.kind = AUTH_HASH;
	submit_job(c, j, req);
}

static void
logout(struct conn *c)
{
	if (c->uid == 0)
		return;
	online_remove(env.online, c->uid, env.slot, c->id);
	if (env.pubsub != NULL)
		pubsub_release(env.pubsub, c->uid);
	c->uid = 0;
	free(c->name);
	c->name = NULL;
	c->name_len = 0;
}

void
chat_closing(struct conn *c)
{
	logout(c);
}

/* ---- chats ------------------------------------------------------------- */

/* The forwarded line: sender's object with the real id and name, "\n". */
static int
forward_line(struct conn *c, const struct proto_req *req, struct buf *line)
{
	if (proto_put_forward(line, req, c->uid, c->name, c->name_len) == -1 ||
	    buf_append(line, "\n", 1) == -1)
		return -1;
	return 0;
}

static void
handle_one_chat(struct conn *c, const struct proto_req *req)
{
	struct buf		 line = BUF_INIT;
	struct store_user	 u;
	int			 rc;

	if (forward_line(c, req, &line) == -1) {
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	rc = deliver_live(req->toid, buf_head(&line), buf_used(&line));
	if (rc == 0)
		goto out;
	if (rc == 1 && env.pubsub != NULL) {
		/* not on this node: through Redis, if the user exists */
		if (!user_known(req->toid)) {
			memset(&u, 0, sizeof(u));
			rc = store_user_get(env.store, req->toid, &u);
			store_user_clear(&u);
			if (rc == STORE_NOTFOUND) {
				reply_error(c, MSG_ERROR, ERR_NO_SUCH_USER,
				    req->msgid, NULL);
				goto out;
			}
			if (rc != STORE_OK) {
				reply_error(c, MSG_ERROR, ERR_UNAVAILABLE,
				    req->msgid, NULL);
				goto out;
			}
			user_known_add(req->toid);
		}
		if (route_publish(c, c->uid, req->msgid, &req->toid, 1,
		    buf_head(&line), buf_used(&line), "message could not be "
		    "stored; send it again later") == -1)
			reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid,
			    NULL);
		goto out;
	}
	/* offline: only a real user may have messages kept for them */
	memset(&u, 0, sizeof(u));
	rc = store_user_get(env.store, req->toid, &u);
	store_user_clear(&u);
	if (rc == STORE_NOTFOUND) {
		reply_error(c, MSG_ERROR, ERR_NO_SUCH_USER, req->msgid, NULL);
		goto out;
	}
	if (rc != STORE_OK ||
	    store_offline(&req->toid, 1, buf_head(&line),
	    buf_used(&line) - 1) == -1)
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid,
		    "message could not be stored; send it again later");
out:
	buf_free(&line);
}

#define GROUP_STORE_ERR "message could not be stored for members who are away"

/*
 * Hand a group line to the members in local (online on this node or
 * nowhere known) and remote (online on another node when live[i]; live
 * NULL: Redis could not tell).  Those away elsewhere are stored before
 * anyone gets the line, so that an answer to it cannot reach their
 * offline queue first.  1 when c now waits for the publishes.
 */
static int
group_deliver(struct conn *c, int32_t sender, int refmsgid, const char *line,
    size_t len, const int32_t *local, size_t nlocal, const int32_t *remote,
    const int *live, size_t nremote)
{
	int32_t	*away, *pub;
	size_t	 i, naway = 0, npub = 0;
	uint32_t conn = c->id;
	int	 rc = 0;

	away = calloc(nlocal + nremote + 1, sizeof(*away));
	pub = calloc(nremote + 1, sizeof(*pub));
	if (away == NULL || pub == NULL) {
		reply_sender(conn, sender, refmsgid, NULL);
		goto out;
	}
	for (i = 0; i < nremote; i++) {
		if (live != NULL && live[i])
			pub[npub++] = remote[i];
		else
			away[naway++] = remote[i];
	}
	if (store_offline(away, naway, line, len - 1) == -1)
		reply_sender(conn, sender, refmsgid, GROUP_STORE_ERR);
	naway = 0;
	for (i = 0; i < nlocal; i++)
		if (deliver_live(local[i], line, len) != 0)
			away[naway++] = local[i];
	/* members on other nodes: one publish each, pipelined */
	if (npub > 0 && (rc = route_publish(c, sender, refmsgid, pub, npub,
	    line, len, GROUP_STORE_ERR)) == -1) {
		memcpy(away + naway, pub, npub * sizeof(*away));
		naway += npub;
		rc = 0;
	}
	if (store_offline(away, naway, line, len - 1) == -1)
		reply_sender(conn, sender, refmsgid, GROUP_STORE_ERR);
out:
	free(away);
	free(pub);
	return rc;
}

/* A group chat waiting for Redis to say which members are online. */
struct group_job {
	struct conn	*c;
	int32_t		 sender;
	int		 refmsgid;
	char		*line;
	size_t		 len;
	int32_t		*local;
	size_t		 nlocal;
};

static void
group_queried(void *arg, int result, const int32_t *uids, const int *online,
    size_t n)
{
	struct group_job	*g = arg;
	struct conn		*c = g->c;
	int			 held;

	/* delivered even if the sender left meanwhile: it was accepted */
	held = group_deliver(c, g->sender, g->refmsgid, g->line, g->len,
	    g->local, g->nlocal, uids, result == 0 ? online : NULL, n);
	conn_unref(c);
	/* c stays paused while the publishes are under way */
	if (held != 1 && !c->closing)
		conn_resume(c);
	free(g->line);
	free(g->local);
	free(g);
}

static void
handle_group_chat(struct conn *c, const struct proto_req *req)
{
	struct store_user_list	 members = { NULL, 0 };
	struct buf		 line = BUF_INIT;
	struct group_job	*g = NULL;
	const int32_t		*ids;
	int32_t			*local = NULL, *remote = NULL, *members_ids = NULL;
	size_t			 i, n, nlocal = 0, nremote = 0;
	int			 rc;

	if (gcache_get(req->groupid, &ids, &n) == -1) {
		rc = store_group_members(env.store, req->groupid, &members);
		if (rc == STORE_NOTFOUND) {
			reply_error(c, MSG_ERROR, ERR_NO_SUCH_GROUP,
			    req->msgid, NULL);
			goto out;
		}
		if (rc != STORE_OK) {
			log_warnx("group chat: %s", store_error(env.store));
			reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid,
			    NULL);
			goto out;
		}
		gcache_put(req->groupid, &members);
		if (gcache_get(req->groupid, &ids, &n) == -1) {
			/* not cached (cluster mode, or no memory) */
			if ((members_ids = calloc(members.n + 1,
			    sizeof(*members_ids))) == NULL) {
				reply_error(c, MSG_ERROR, ERR_UNAVAILABLE,
				    req->msgid, NULL);
				goto out;
			}
			for (i = 0; i < members.n; i++)
				members_ids[i] = members.v[i].id;
			ids = members_ids;
			n = members.n;
		}
	}
	for (i = 0; i < n; i++)
		if (ids[i] == c->uid)
			break;
	if (i == n) {
		reply_error(c, MSG_ERROR, ERR_NOT_MEMBER, req->msgid,
		    "only members may post to a group");
		goto out;
	}
	if (forward_line(c, req, &line) == -1 ||
	    (local = calloc(n, sizeof(*local))) == NULL ||
	    (remote = calloc(n, sizeof(*remote))) == NULL) {
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (ids[i] == c->uid)
			continue;
		if (env.pubsub == NULL || user_online(ids[i]))
			local[nlocal++] = ids[i];
		else
			remote[nremote++] = ids[i];
	}
	if (nremote == 0) {
		(void)group_deliver(c, c->uid, req->msgid, buf_head(&line),
		    buf_used(&line), local, nlocal, NULL, NULL, 0);
		goto out;
	}
	/*
	 * Some members are not on this node: ask Redis who is online
	 * elsewhere.  The sender's next requests wait, so that its
	 * messages keep their order.
	 */
	if ((g = calloc(1, sizeof(*g))) == NULL ||
	    (g->line = malloc(buf_used(&line))) == NULL) {
		free(g);
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	memcpy(g->line, buf_head(&line), buf_used(&line));
	g->len = buf_used(&line);
	g->c = c;
	g->sender = c->uid;
	g->refmsgid = req->msgid;
	g->local = local;
	g->nlocal = nlocal;
	local = NULL;
	c->jobs++;
	conn_pause(c);
	pubsub_query_online(env.pubsub, remote, nremote, group_queried, g);
out:
	free(local);
	free(remote);
	free(members_ids);
	buf_free(&line);
	store_user_list_free(&members);
}

/*
 * Count limits (max_friends, max_groups_per_user, max_group_members):
 * 0 below max (or no limit), 1 at max, -1 the store failed (answered).
 * A race between workers can overshoot by a few; the limit is against
 * growth without bound, not an exact quota.
 */
static int
at_limit(struct conn *c, const struct proto_req *req, int rc, int64_t n,
    int max)
{
	if (rc != STORE_OK) {
		log_warnx("counting for a limit: %s", store_error(env.store));
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return -1;
	}
	return max > 0 && n >= max;
}

/* 1 when a and b are friends already, 0 not, -1 store error. */
static int
friends_already(int32_t a, int32_t b)
{
	struct store_user_list	 l = { NULL, 0 };
	size_t			 i;
	int			 found = 0;

	if (store_friends(env.store, a, &l) != STORE_OK)
		return -1;
	for (i = 0; i < l.n && !found; i++)
		found = l.v[i].id == b;
	store_user_list_free(&l);
	return found;
}

static void
handle_add_friend(struct conn *c, const struct proto_req *req)
{
	int64_t	 n = 0;
	int	 rc, lim;

	if (req->friendid == c->uid) {
		reply_error(c, MSG_ERROR, ERR_NOT_ALLOWED, req->msgid,
		    "you cannot befriend yourself");
		return;
	}
	/* friendship is mutual: both sides must have room */
	if ((lim = env.cfg->max_friends) > 0) {
		const char *why = "you have too many friends (max_friends)";

		rc = store_count_friends(env.store, c->uid, &n);
		rc = at_limit(c, req, rc, n, lim);
		if (rc == 0) {
			why = "that user has too many friends (max_friends)";
			rc = store_count_friends(env.store, req->friendid, &n);
			rc = at_limit(c, req, rc, n, lim);
		}
		if (rc == -1)
			return;
		/* at the limit, befriending an old friend stays harmless */
		if (rc == 1 && friends_already(c->uid, req->friendid) != 1) {
			reply_error(c, MSG_ERROR, ERR_LIMIT, req->msgid, why);
			return;
		}
	}
	rc = store_friend_add(env.store, c->uid, req->friendid);
	if (rc == STORE_NOTFOUND)
		reply_error(c, MSG_ERROR, ERR_NO_SUCH_USER, req->msgid, NULL);
	else if (rc != STORE_OK) {
		log_warnx("add friend: %s", store_error(env.store));
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
	}
}

/* 0 when c may be in one more group; else answered already. */
static int
groups_room(struct conn *c, const struct proto_req *req)
{
	int64_t	 n = 0;
	int	 rc;

	rc = store_count_user_groups(env.store, c->uid, &n);
	rc = at_limit(c, req, rc, n, env.cfg->max_groups_per_user);
	if (rc == 1)
		reply_error(c, MSG_ERROR, ERR_LIMIT, req->msgid,
		    "you are in too many groups (max_groups_per_user)");
	return rc == 0 ? 0 : -1;
}

static void
handle_create_group(struct conn *c, const struct proto_req *req)
{
	int32_t	 gid;
	int	 rc;

	if (groups_room(c, req) == -1)
		return;
	rc = store_group_create(env.store, c->uid, req->groupname.p,
	    req->groupname.len, req->groupdesc.p, req->groupdesc.len, &gid);
	if (rc == STORE_EXISTS)
		reply_error(c, MSG_ERROR, ERR_EXISTS, req->msgid,
		    "a group with this name exists");
	else if (rc != STORE_OK) {
		log_warnx("create group: %s", store_error(env.store));
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
	}
}

static void
handle_add_group(struct conn *c, const struct proto_req *req)
{
	int64_t	 n = 0;
	int	 rc;

	/* joining twice is harmless, also at a limit */
	if ((env.cfg->max_groups_per_user > 0 ||
	    env.cfg->max_group_members > 0) &&
	    store_group_is_member(env.store, req->groupid, c->uid) == 0) {
		if (groups_room(c, req) == -1)
			return;
		rc = store_count_group_members(env.store, req->groupid, &n);
		rc = at_limit(c, req, rc, n, env.cfg->max_group_members);
		if (rc == -1)
			return;
		if (rc == 1) {
			reply_error(c, MSG_ERROR, ERR_LIMIT, req->msgid, "this "
			    "group is full (max_group_members)");
			return;
		}
	}
	rc = store_group_join(env.store, req->groupid, c->uid);
	if (rc == STORE_OK)
		gcache_changed(req->groupid);
	if (rc == STORE_NOTFOUND)
		reply_error(c, MSG_ERROR, ERR_NO_SUCH_GROUP, req->msgid, NULL);
	else if (rc != STORE_OK) {
		log_warnx("join group: %s", store_error(env.store));
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
	}
}

static void
handle_whoami(struct conn *c, const struct proto_req *req)
{
	if (buf_printf(&c->out, "{\"msgid\":%d,\"errno\":0,\"id\":%d,"
	    "\"worker\":%d,\"pid\":%d}\n", MSG_WHOAMI_ACK, (int)c->uid,
	    env.slot, (int)getpid()) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
}

/* ---- acknowledged chats (opt-in "cmid") ------------------------------------ */

/*
 * A chat with a client message id is stored for its recipients before
 * it is acknowledged, so an acknowledged message survives any crash;
 * live delivery then removes a recipient's stored copy once the line
 * reached that recipient's socket.  A crash in between delivers the
 * copy again at the next login, with the same "smid" (clients drop
 * what they have seen).  A resend of a claimed cmid is answered with
 * the first smid and not delivered again.
 */

static void
track_delivered(struct conn *c, int64_t smid)
{
	int64_t	*nv;
	size_t	 ncap;

	if (c->ndelivered == c->delivered_cap) {
		ncap = c->delivered_cap ? c->delivered_cap * 2 : 4;
		/* out of memory: the copy stays, the client sees it twice */
		if ((nv = reallocarray(c->delivered, ncap, sizeof(*nv))) ==
		    NULL)
			return;
		c->delivered = nv;
		c->delivered_cap = ncap;
	}
	c->delivered[c->ndelivered++] = smid;
	c->want_drained = 1;
}

static void
acked_published(void *arg, int32_t uid, long receivers, const char *line,
    size_t len)
{
	/* nothing to do either way: the message is stored already */
}

/* Live delivery of a stored message; failure leaves the stored copy. */
static void
deliver_acked(int32_t uid, int64_t smid, const char *line, size_t len,
    int may_publish)
{
	struct online_entry	 e;
	struct chan_hdr		 h;
	struct conn		*c;

	if (online_get(env.online, uid, &e) == 0) {
		if (e.slot == env.slot) {
			c = conn_lookup(e.conn);
			if (c != NULL && c->uid == uid &&
			    conn_send(c, line, len) == 0) {
				stat_add(&env.stats->msgs_out, 1);
				track_delivered(c, smid);
			}
			return;
		}
		memset(&h, 0, sizeof(h));
		h.type = CHAN_DELIVER;
		h.uid = uid;
		h.conn = e.conn;
		h.gen = e.gen;
		h.from_slot = env.slot;
		h.len = len;
		h.smid = smid;
		(void)env.to_slot(e.slot, &h, line);
		return;
	}
	if (may_publish && env.pubsub != NULL)
		pubsub_publish(env.pubsub, uid, line, len, acked_published,
		    NULL);
}

static void
handle_acked_chat(struct conn *c, struct proto_req *req)
{
	struct store_user_list	 members = { NULL, 0 };
	struct store_user	 u;
	struct buf		 line = BUF_INIT;
	int32_t			*to = NULL;
	int64_t			 smid;
	size_t			 i, n = 0;
	int			 rc, done;

	if (req->msgid == MSG_ONE_CHAT) {
		memset(&u, 0, sizeof(u));
		rc = user_known(req->toid) ? STORE_OK :
		    store_user_get(env.store, req->toid, &u);
		store_user_clear(&u);
		if (rc == STORE_NOTFOUND) {
			reply_error(c, MSG_ERROR, ERR_NO_SUCH_USER, req->msgid,
			    NULL);
			goto out;
		}
		if (rc == STORE_OK)
			user_known_add(req->toid);
		to = &req->toid;
		n = 1;
	} else {
		rc = store_group_members(env.store, req->groupid, &members);
		if (rc == STORE_NOTFOUND) {
			reply_error(c, MSG_ERROR, ERR_NO_SUCH_GROUP, req->msgid,
			    NULL);
			goto out;
		}
		for (i = 0; rc == STORE_OK && i < members.n; i++)
			if (members.v[i].id == c->uid)
				break;
		if (rc == STORE_OK && i == members.n) {
			reply_error(c, MSG_ERROR, ERR_NOT_MEMBER, req->msgid,
			    "only members may post to a group");
			goto out;
		}
		if (rc == STORE_OK && (to = calloc(members.n + 1,
		    sizeof(*to))) == NULL)
			rc = STORE_ERR;
		for (i = 0; rc == STORE_OK && i < members.n; i++)
			if (members.v[i].id != c->uid)
				to[n++] = members.v[i].id;
	}
	if (rc != STORE_OK ||
	    store_ack_claim(env.store, c->uid, req->cmid, &smid, &done) !=
	    STORE_OK) {
		log_warnx("acknowledged chat: %s", store_error(env.store));
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid,
		    "not stored; send it again later");
		goto out;
	}
	if (done)
		goto ack;	/* a resend: stored (and maybe delivered) before */
	if (proto_req_set_smid(req, smid) == -1 ||
	    forward_line(c, req, &line) == -1 ||
	    store_ack_commit(env.store, smid, to, n, buf_head(&line),
	    buf_used(&line) - 1) != STORE_OK) {
		log_warnx("acknowledged chat: %s", store_error(env.store));
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid,
		    "not stored; send it again later");
		goto out;
	}
	stat_add(&env.stats->offline_stored, n);
	for (i = 0; i < n; i++)
		deliver_acked(to[i], smid, buf_head(&line), buf_used(&line), 1);
ack:
	if (proto_put_chat_ack(&c->out, req->cmid, smid) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
out:
	if (to != &req->toid)
		free(to);
	buf_free(&line);
	store_user_list_free(&members);
}

/* ---- dispatch ---------------------------------------------------------- */

void
chat_frame(struct conn *c, const char *p, size_t n, enum frame_status st)
{
	struct proto_req	 req;
	struct proto_fail	 fail;

	if (st == FRAME_BAD) {
		reply_error(c, MSG_ERROR, ERR_MALFORMED, 0,
		    "malformed JSON (raw control character in a string?)");
		return;
	}
	if (proto_decode(p, n, &limits, &req, &fail) == -1) {
		reply_error(c, fail.reply_msgid, fail.code, fail.refmsgid,
		    fail.text);
		return;
	}
	stat_add(&env.stats->msgs_in, 1);
	switch (req.msgid) {
	case MSG_REG:
		handle_reg(c, &req);
		goto done;
	case MSG_LOGIN:
		handle_login(c, &req);
		goto done;
	case MSG_PING:
		if (proto_put_pong(&c->out, &req) == 0)
			(void)conn_sent(c);
		goto done;
	case MSG_WHOAMI:
		handle_whoami(c, &req);
		goto done;
	default:
		break;
	}
	if (c->uid == 0) {
		reply_error(c, MSG_ERROR, ERR_NOT_LOGGED_IN, req.msgid,
		    "log in first");
		goto done;
	}
	if (req.has_id && req.id != c->uid) {
		reply_error(c, MSG_ERROR, ERR_IDENTITY, req.msgid,
		    "\"id\" is not the user logged in on this connection");
		goto done;
	}
	switch (req.msgid) {
	case MSG_LOGINOUT:
		logout(c);
		break;
	case MSG_ONE_CHAT:
	case MSG_GROUP_CHAT:
		if (req.has_cmid)
			handle_acked_chat(c, &req);
		else if (proto_req_set_smid(&req, 0) == -1)
			reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req.msgid,
			    NULL);
		else if (req.msgid == MSG_ONE_CHAT)
			handle_one_chat(c, &req);
		else
			handle_group_chat(c, &req);
		break;
	case MSG_OFFLINE_ACK:
		handle_offline_ack(c, &req);
		break;
	case MSG_ADD_FRIEND:
		handle_add_friend(c, &req);
		break;
	case MSG_CREATE_GROUP:
		handle_create_group(c, &req);
		break;
	case MSG_ADD_GROUP:
		handle_add_group(c, &req);
		break;
	default:
		reply_error(c, MSG_ERROR, ERR_UNKNOWN_MSGID, req.msgid, NULL);
		break;
	}
done:
	proto_req_clear(&req);
}
