/* chat_group.c - groups: create, join, group chat, the member cache. */
#include "config.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "chat_impl.h"
#include "log.h"
#include "pubsub.h"
#include "store.h"
#include "storeq.h"

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

static struct group_cache *
gcache_slot(int32_t gid)
{
	return &gcache[util_fib_hash((uint32_t)gid, GROUP_CACHE_BITS)];
}

void
gcache_drop(int32_t gid)
{
	struct group_cache	*g = gcache_slot(gid);

	if (g->gid == gid) {
		free(g->uids);
		memset(g, 0, sizeof(*g));
	}
}

/* This worker changed gid: drop it here and in the other workers. */
void
gcache_changed(int32_t gid)
{
	if (chat.pubsub != NULL)
		return;
	gcache_drop(gid);
	chat_to_others(CHAN_GROUP, (uint32_t)gid);
}

int
gcache_get(int32_t gid, const int32_t **uids, size_t *n)
{
	struct group_cache	*g = gcache_slot(gid);

	if (chat.pubsub != NULL || g->gid != gid || util_mono_coarse() >= g->expires)
		return -1;
	*uids = g->uids;
	*n = g->n;
	return 0;
}

void
gcache_put(int32_t gid, const struct store_user_list *members)
{
	struct group_cache	*g = gcache_slot(gid);
	int32_t			*v;
	size_t			 i;

	if (chat.pubsub != NULL ||
	    (v = calloc(members->n + 1, sizeof(*v))) == NULL)
		return;
	for (i = 0; i < members->n; i++)
		v[i] = members->v[i].id;
	free(g->uids);
	g->gid = gid;
	g->uids = v;
	g->n = members->n;
	g->expires = util_mono_coarse() + GROUP_CACHE_TTL;
}

#define GROUP_STORE_ERR "message could not be stored for members who are away"

/*
 * Deliver to the members on this node; store for those not reached.
 * c: the sender's connection, which then waits (paused) while the
 * members away are stored in a store thread, so that a slow store holds
 * up only it and its next requests keep their order; those online get
 * the line once that store is done (keep_submit_then).  NULL: stored
 * here, on the loop, after the live deliveries.
 */
static enum keep_result
group_local(struct conn *c, uint32_t conn, int32_t sender, int refmsgid,
    const char *line, size_t len, const int32_t *local, size_t nlocal)
{
	enum keep_result	 kr = KEEP_DONE;
	int32_t			*away, *online;
	size_t			 i, naway = 0, nonline = 0;

	if ((away = calloc(nlocal + 1, sizeof(*away))) == NULL ||
	    (online = calloc(nlocal + 1, sizeof(*online))) == NULL) {
		free(away);
		reply_sender(conn, sender, refmsgid, NULL);
		return KEEP_FAILED;
	}
	if (c != NULL) {
		for (i = 0; i < nlocal; i++)
			if (user_online(local[i]))
				online[nonline++] = local[i];
			else
				away[naway++] = local[i];
		if (naway == 0) {
			/* nothing to store first: the live copies at once */
			for (i = 0; i < nonline; i++)
				if (deliver_live(online[i], line, len) !=
				    DELIVER_OK)
					away[naway++] = online[i];
			nonline = 0;
		}
		kr = keep_submit_then(c, conn, sender, refmsgid,
		    GROUP_STORE_ERR, away, naway, 0, line, len - 1, online,
		    nonline);
		/* nothing queued (live only, or no memory): live now */
		for (i = 0; kr != KEEP_PENDING && i < nonline; i++)
			(void)deliver_live(online[i], line, len);
	} else {
		for (i = 0; i < nlocal; i++)
			if (deliver_live(local[i], line, len) != DELIVER_OK)
				away[naway++] = local[i];
		if (chat_keep_offline(away, naway, line, len - 1) == -1)
			kr = KEEP_FAILED;
	}
	if (kr == KEEP_FAILED)
		reply_sender(conn, sender, refmsgid, GROUP_STORE_ERR);
	free(away);
	free(online);
	return kr;
}

/*
 * A group chat with members on other nodes (cluster mode): one item
 * per destination worker (pubsub_fanout).  The sender's next requests
 * wait until it is queued or stored, so that its messages keep their
 * order.
 */
struct group_job {
	struct conn	*c;
	uint32_t	 conn;
	int32_t		 sender;
	int		 refmsgid;
	char		*line;
	size_t		 len;
	int32_t		*local;
	size_t		 nlocal;
};

/*
 * Those away elsewhere are stored before anyone gets the line, so that
 * an answer to it cannot reach their offline queue first; then the
 * members here get it, then those on other nodes: in the write store
 * thread, the fan-out's pushes held till then (pubsub_fanout_hold).
 */
static void
group_located(void *arg, const int32_t *away, size_t naway)
{
	struct group_job		*g = arg;
	struct pubsub_fanout_wait	*w;
	enum keep_result		 kr = KEEP_FAILED;
	int32_t				*keep, *online;
	size_t				 i, nkeep = 0, nonline = 0;

	keep = calloc(naway + g->nlocal + 1, sizeof(*keep));
	online = calloc(g->nlocal + 1, sizeof(*online));
	if (keep != NULL && online != NULL) {
		memcpy(keep, away, naway * sizeof(*away));
		nkeep = naway;
		for (i = 0; i < g->nlocal; i++)
			if (user_online(g->local[i]))
				online[nonline++] = g->local[i];
			else
				keep[nkeep++] = g->local[i];
	}
	if (nkeep > 0 && (w = pubsub_fanout_hold()) != NULL) {
		kr = keep_submit_fan(g->conn, g->sender, g->refmsgid,
		    GROUP_STORE_ERR, keep, nkeep, g->line, g->len - 1, online,
		    nonline, w);
		if (kr != KEEP_PENDING)
			pubsub_fanout_go(w);	/* taken back */
	}
	free(keep);
	free(online);
	if (kr == KEEP_PENDING)
		return;
	/* nothing to store (or no memory): here, on the loop */
	if (chat_keep_offline(away, naway, g->line, g->len - 1) == -1)
		reply_sender(g->conn, g->sender, g->refmsgid, GROUP_STORE_ERR);
	(void)group_local(NULL, g->conn, g->sender, g->refmsgid, g->line,
	    g->len, g->local, g->nlocal);
}

/* Members whose item could not be queued: stored (c waits for it). */
static void
group_fanned(void *arg, const int32_t *failed, size_t nfailed)
{
	struct group_job	*g = arg;
	struct conn		*c = g->c;
	enum keep_result	 kr;

	kr = keep_submit(c, g->conn, g->sender, g->refmsgid, GROUP_STORE_ERR,
	    failed, nfailed, 0, g->line, g->len - 1);
	if (kr == KEEP_FAILED)
		reply_sender(g->conn, g->sender, g->refmsgid, GROUP_STORE_ERR);
	/* c stayed paused while the items were under way; a store resumes
	 * it when done */
	conn_unref(c);
	if (!c->closing && kr != KEEP_PENDING)
		conn_resume(c);
	free(g->line);
	free(g->local);
	free(g);
}

static const struct pubsub_fanout group_fanout = {
	group_located,
	group_fanned
};

/*
 * Another node's group item for uids, all named to this worker: each
 * gets it here or, no longer here, has it stored here, exactly once.
 */
void
chat_remote_deliver_many(void *arg, const int32_t *uids, size_t n,
    const char *line, size_t len, int32_t *keep, size_t *nkeep)
{
	int32_t	*away;
	size_t	 i, naway = 0;

	*nkeep = 0;
	/* an acknowledged line (stored by its sender): one at a time */
	if (len == 0 || line[len - 1] != '\n' ||
	    memmem(line, len, "\"cmid\":", 7) != NULL ||
	    (away = calloc(n + 1, sizeof(*away))) == NULL) {
		for (i = 0; i < n; i++)
			if (chat_remote_deliver(arg, uids[i], line, len) ==
			    PUBSUB_RETRY)
				keep[(*nkeep)++] = uids[i];
		return;
	}
	for (i = 0; i < n; i++)
		if (deliver_live(uids[i], line, len) != DELIVER_OK)
			away[naway++] = uids[i];
	/*
	 * stored in a store thread, the item held in Redis till then; not
	 * started: it stays in Redis for them and is offered again
	 */
	if (keep_remote(away, naway, line, len) == PUBSUB_RETRY) {
		memcpy(keep, away, naway * sizeof(*keep));
		*nkeep = naway;
	}
	free(away);
}

/*
 * Send the plain group chat req of c's user to the members ids[0..n).
 * ROUTE_PENDING: c waits (paused) for a store or the fan-out.
 */
static enum route_result
group_send(struct conn *c, const struct proto_req *req, const int32_t *ids,
    size_t n)
{
	struct session		*s = c->sess;
	struct buf		 line = BUF_INIT;
	struct group_job	*g = NULL;
	enum route_result	 rr = ROUTE_DONE;
	int32_t			*local = NULL, *remote = NULL;
	size_t			 i, nlocal = 0, nremote = 0;

	if (forward_line(c, req, &line) == -1 ||
	    (local = calloc(n + 1, sizeof(*local))) == NULL ||
	    (remote = calloc(n + 1, sizeof(*remote))) == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	/* once per group message, whoever gets it */
	chat_history_keep(c->sess->uid, req, &line, util_wall_ms());
	for (i = 0; i < n; i++) {
		if (ids[i] == s->uid)
			continue;
		if (chat.pubsub == NULL || user_online(ids[i]))
			local[nlocal++] = ids[i];
		else
			remote[nremote++] = ids[i];
	}
	if (nremote == 0) {
		if (group_local(c, c->id, s->uid, req->msgid, buf_head(&line),
		    buf_used(&line), local, nlocal) == KEEP_PENDING)
			rr = ROUTE_PENDING;
		goto out;
	}
	if ((g = calloc(1, sizeof(*g))) == NULL ||
	    (g->line = malloc(buf_used(&line))) == NULL) {
		free(g);
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	memcpy(g->line, buf_head(&line), buf_used(&line));
	g->len = buf_used(&line);
	g->c = c;
	g->conn = c->id;
	g->sender = s->uid;
	g->refmsgid = req->msgid;
	g->local = local;
	g->nlocal = nlocal;
	local = NULL;
	c->jobs++;
	conn_pause(c);
	rr = ROUTE_PENDING;
	/* last: its callbacks may run inside it */
	pubsub_fanout(chat.pubsub, remote, nremote, g->line, g->len,
	    &group_fanout, g);
out:
	free(local);
	free(remote);
	buf_free(&line);
	return rr;
}

static int
has_member(const int32_t *ids, size_t n, int32_t uid)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (ids[i] == uid)
			return 1;
	return 0;
}

/*
 * A plain group chat whose members are not cached: read in the read
 * store thread while its sender waits (its later requests keep their
 * order), then sent.
 */
struct gread_job {
	struct workq_job	 sj;
	struct conn		*c;
	struct proto_req	 req;		/* owned */
	int			 rc;
	struct store_user_list	 members;
	char			*err;
};

static void
gread_run(struct workq_job *sj, void *ctx)
{
	struct gread_job	*j = (struct gread_job *)sj;
	struct store		*st = ctx;

	j->rc = store_group_members(st, j->req.groupid, &j->members);
	if (j->rc != STORE_OK && j->rc != STORE_NOTFOUND)
		j->err = strdup(store_error(st));
}

static void
gread_done(struct workq_job *sj)
{
	struct gread_job	*j = (struct gread_job *)sj;
	struct conn		*c = j->c;
	int32_t			*ids = NULL;
	size_t			 i;

	conn_unref(c);
	if (c->closing || c->sess->uid == 0)
		goto out;
	if (j->rc == STORE_NOTFOUND)
		chat_error(c, MSG_ERROR, ERR_NO_SUCH_GROUP, j->req.msgid, NULL);
	else if (j->rc != STORE_OK) {
		log_warnx("group chat: %s", j->err != NULL ? j->err :
		    "out of memory");
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, j->req.msgid, NULL);
	} else if ((ids = calloc(j->members.n + 1, sizeof(*ids))) == NULL)
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, j->req.msgid, NULL);
	else {
		gcache_put(j->req.groupid, &j->members);
		for (i = 0; i < j->members.n; i++)
			ids[i] = j->members.v[i].id;
		if (!has_member(ids, j->members.n, c->sess->uid))
			chat_error(c, MSG_ERROR, ERR_NOT_MEMBER, j->req.msgid,
			    "only members may post to a group");
		else if (group_send(c, &j->req, ids, j->members.n) ==
		    ROUTE_PENDING)
			goto out;	/* what it waits for resumes it */
	}
	conn_resume(c);
out:
	free(ids);
	proto_req_clear(&j->req);
	store_user_list_free(&j->members);
	free(j->err);
	free(j);
}

void
handle_group_chat(struct conn *c, struct proto_req *req)
{
	struct gread_job	*j;
	const int32_t		*ids;
	size_t			 n;

	if (gcache_get(req->groupid, &ids, &n) == 0) {
		if (!has_member(ids, n, c->sess->uid))
			chat_error(c, MSG_ERROR, ERR_NOT_MEMBER, req->msgid,
			    "only members may post to a group");
		else
			(void)group_send(c, req, ids, n);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return;
	}
	/* the request is the job's now: the caller's clear frees nothing */
	j->req = *req;
	memset(req, 0, sizeof(*req));
	j->c = c;
	j->sj.run = gread_run;
	j->sj.done = gread_done;
	c->jobs++;
	conn_pause(c);
	storeq_submit(chat.storeq_read != NULL ? chat.storeq_read :
	    chat.storeq, &j->sj);
}


/* Creating or joining a group, in the write store thread. */
struct gjoin_call {
	struct chat_call	 k;
	int			 max_groups, max_members;
	int			 joined;
};

static void
create_run(struct chat_call *k, struct store *st)
{
	struct gjoin_call	*g = (struct gjoin_call *)k;
	int32_t			 gid;
	int			 rc;

	if (groups_room(k, st, g->max_groups) == -1)
		return;
	rc = store_group_create(st, k->uid, k->req.groupname.p,
	    k->req.groupname.len, k->req.groupdesc.p, k->req.groupdesc.len,
	    &gid);
	if (rc == STORE_EXISTS) {
		k->code = ERR_EXISTS;
		k->text = "a group with this name exists";
	} else if (rc != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "create group");
}

static void
join_run(struct chat_call *k, struct store *st)
{
	struct gjoin_call	*g = (struct gjoin_call *)k;
	int			 rc;

	if (group_join_room(k, st, k->req.groupid, g->max_groups,
	    g->max_members) == -1)
		return;
	rc = store_group_join(st, k->req.groupid, k->uid);
	if (rc == STORE_OK)
		g->joined = 1;
	else if (rc == STORE_NOTFOUND)
		k->code = ERR_NO_SUCH_GROUP;
	else
		chat_call_fail(k, st, ERR_UNAVAILABLE, "join group");
}

/* Joined: the member caches go, whether or not the joiner still waits. */
static void
join_answer(struct conn *c, struct chat_call *k)
{
	(void)c;
	if (((struct gjoin_call *)k)->joined)
		gcache_changed(k->req.groupid);
}

static void
gjoin_submit(struct conn *c, struct proto_req *req,
    void (*run)(struct chat_call *, struct store *))
{
	struct gjoin_call	*g;

	if ((g = (struct gjoin_call *)chat_call_new(c, req->msgid,
	    sizeof(*g), run, join_answer, NULL)) == NULL)
		return;
	g->max_groups = chat.cfg->max_groups_per_user;
	g->max_members = chat.cfg->max_group_members;
	chat_call_submit(c, &g->k, req, CALL_WRITE, 1);
}

void
handle_create_group(struct conn *c, struct proto_req *req)
{
	gjoin_submit(c, req, create_run);
}

void
handle_add_group(struct conn *c, struct proto_req *req)
{
	gjoin_submit(c, req, join_run);
}

/* ---- member lists that fit ------------------------------------------- */

/* Bytes of the first cap members of every group. */
static size_t
members_bytes(const struct store_group_list *groups, size_t cap)
{
	size_t	 i, j, n, bytes = 0;

	for (i = 0; i < groups->n; i++) {
		n = groups->v[i].members.n < cap ? groups->v[i].members.n : cap;
		for (j = 0; j < n; j++)
			bytes += proto_member_bytes(
			    groups->v[i].members.v[j].name_len);
	}
	return bytes;
}

size_t
members_cap(const struct store_group_list *groups, size_t bytes)
{
	size_t	 i, lo = 1, hi = 1, mid;

	for (i = 0; i < groups->n; i++)
		if (groups->v[i].members.n > hi)
			hi = groups->v[i].members.n;
	if (members_bytes(groups, hi) <= bytes)
		return hi;
	/* the largest cap that fits: lo fits (or is the floor), hi not */
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (members_bytes(groups, mid) <= bytes)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

