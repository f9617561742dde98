/*
 * chat_manage.c - managing groups (leave, remove, admins, rename,
 * describe, transfer, dissolve), paged member lists, and the notices
 * that tell the members about a change.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "chat_impl.h"
#include "log.h"
#include "store.h"

void
chat_done(struct conn *c, const struct proto_req *req)
{
	if (proto_put_done(&c->out, req) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
}

/* A notice's copies for those away, stored in the write store thread. */
struct notice_call {
	struct chat_call	 k;	/* k.req: answered DONE after, if any */
	int			 want_done;
	int32_t			 from;	/* the line's sender (block filter) */
	int32_t			*to;
	size_t			 n;
	size_t			 len;
	char			 line[];
};

static void
notice_run(struct chat_call *k, struct store *st)
{
	struct notice_call	*nc = (struct notice_call *)k;

	/* what was changed stays changed: logged, not refused */
	if (block_filter_in(st, nc->from, nc->to, &nc->n) == -1 ||
	    (nc->n > 0 && store_offline_add(st, nc->to, nc->n, nc->line,
	    nc->len) != STORE_OK)) {
		chat_call_fail(k, st, 0, "storing a notice");
		nc->n = 0;
	}
}

static void
notice_answer(struct conn *c, struct chat_call *k)
{
	struct notice_call	*nc = (struct notice_call *)k;

	if (nc->n > 0) {
		chat_stat(&chat.stats->offline_stored, nc->n);
		stored_nudge(nc->to, nc->n);
	}
	if (c != NULL && nc->want_done)
		chat_done(c, &k->req);
}

static void
notice_release(struct chat_call *k)
{
	free(((struct notice_call *)k)->to);
	free(k);
}

/* -1: not queued (no store thread, no memory), nothing taken over. */
static int
notice_store(struct conn *c, int refmsgid, const int32_t *away,
    size_t naway, const struct buf *line, struct proto_req *done)
{
	struct notice_call	*nc;
	size_t			 len = buf_used(line) - 1;

	if (chat.storeq == NULL ||
	    (nc = calloc(1, sizeof(*nc) + len)) == NULL)
		return -1;
	if ((nc->to = calloc(naway + 1, sizeof(*nc->to))) == NULL) {
		free(nc);
		return -1;
	}
	memcpy(nc->to, away, naway * sizeof(*away));
	nc->n = naway;
	memcpy(nc->line, buf_head(line), len);
	nc->len = len;
	nc->from = proto_line_sender(nc->line, len, NULL);
	nc->want_done = done != NULL;
	nc->k.refmsgid = refmsgid;
	nc->k.run = notice_run;
	nc->k.answer = notice_answer;
	nc->k.release = notice_release;
	chat_call_submit(c, &nc->k, done, CALL_WRITE, 1);
	return 0;
}

/*
 * Send a notice (one JSON object, no newline, in line) to uids: live on
 * this node, through Redis to other nodes, else stored until they log
 * in, like a chat.  c waits while publishes are under way, and while
 * the copies for those away are stored; done (NULL: none; taken over)
 * is answered DONE after that, so that one of them who logs in after
 * the answer finds the notice.
 */
void
chat_notify(struct conn *c, int refmsgid, const int32_t *uids, size_t n,
    struct buf *line, struct proto_req *done)
{
	int32_t		*away = NULL, *pub = NULL;
	size_t		 i, naway = 0, npub = 0;

	if (n == 0)
		goto out;
	if (buf_append(line, "\n", 1) == -1 ||
	    (away = calloc(n, sizeof(*away))) == NULL ||
	    (pub = calloc(n, sizeof(*pub))) == NULL) {
		log_warnx("notice: out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (deliver_live(uids[i], buf_head(line), buf_used(line)) ==
		    DELIVER_OK)
			continue;
		if (chat.pubsub != NULL && !user_online(uids[i]))
			pub[npub++] = uids[i];
		else
			away[naway++] = uids[i];
	}
	if (npub > 0 && route_publish(c, c->sess->uid, refmsgid, pub, npub,
	    buf_head(line), buf_used(line), NULL) == ROUTE_FAILED) {
		memcpy(away + naway, pub, npub * sizeof(*away));
		naway += npub;
		npub = 0;
	}
	/*
	 * In the write store thread, c waiting; while publishes hold c
	 * (their end resumes it) without holding it.
	 */
	if (naway > 0 && npub == 0 && notice_store(c, refmsgid, away, naway,
	    line, done) == 0) {
		free(away);
		free(pub);
		return;
	}
	/* c is held by the publishes: nobody else holds it */
	if (keep_submit(NULL, c->id, c->sess->uid, refmsgid, NULL, away,
	    naway, 0, buf_head(line), buf_used(line) - 1) == KEEP_FAILED)
		log_warnx("notice for %zu user(s) not stored: out of memory",
		    naway);
out:
	if (done != NULL)
		chat_done(c, done);
	free(away);
	free(pub);
}

/* The member uid in l, or NULL. */
static const struct store_user *
member_find(const struct store_user_list *l, int32_t uid)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].id == uid)
			return &l->v[i];
	return NULL;
}

/*
 * Whether me may do req->op to target (NULL: the op names nobody).
 * NULL when allowed, else why not (ERR_NOT_ALLOWED).
 */
static const char *
manage_refused(const struct proto_req *req, const struct store_user *me,
    const struct store_user *target)
{
	int	 boss = me->creator || me->admin;

	switch (req->op) {
	case GOP_LEAVE:
		return me->creator ? "the creator cannot leave: transfer the "
		    "group or dissolve it" : NULL;
	case GOP_REMOVE:
		if (!boss)
			return "only the creator and admins remove members";
		if (target == me)
			return "to leave, use \"op\":\"leave\"";
		if (target->creator || (target->admin && !me->creator))
			return "only the creator removes an admin, nobody the "
			    "creator";
		return NULL;
	case GOP_RENAME:
	case GOP_DESCRIBE:
		return boss ? NULL : "only the creator and admins change the "
		    "group";
	case GOP_ADMIN:
	case GOP_UNADMIN:
	case GOP_TRANSFER:
		if (!me->creator)
			return "only the creator names admins or hands the "
			    "group over";
		return target == me ? "that is you" : NULL;
	case GOP_DISSOLVE:
		return me->creator ? NULL : "only the creator dissolves the "
		    "group";
	}
	return "unknown op";
}

static const enum store_group_op store_ops[GOP_MAX] = {
	[GOP_LEAVE] = STORE_GROUP_LEAVE,
	[GOP_REMOVE] = STORE_GROUP_LEAVE,
	[GOP_ADMIN] = STORE_GROUP_ADMIN,
	[GOP_UNADMIN] = STORE_GROUP_UNADMIN,
	[GOP_RENAME] = STORE_GROUP_RENAME,
	[GOP_DESCRIBE] = STORE_GROUP_DESCRIBE,
	[GOP_TRANSFER] = STORE_GROUP_TRANSFER,
	[GOP_DISSOLVE] = STORE_GROUP_DISSOLVE,
};

/* A group management request, in the write store thread. */
struct manage_call {
	struct chat_call	 k;
	struct store_user_list	 members;	/* before the change */
	int32_t			 uid;		/* whom it names */
	int			 target;	/* uid is a member named */
	int			 done;		/* the store changed */
};

static void
manage_run(struct chat_call *k, struct store *st)
{
	struct manage_call	*m = (struct manage_call *)k;
	const struct proto_req	*req = &k->req;
	const struct store_user	*me, *target = NULL;
	const char		*text = NULL;
	size_t			 len = 0;
	int			 rc;

	rc = store_group_members(st, req->groupid, &m->members);
	if (rc == STORE_NOTFOUND) {
		k->code = ERR_NO_SUCH_GROUP;
		return;
	}
	if (rc != STORE_OK) {
		chat_call_fail(k, st, ERR_UNAVAILABLE, "manage group");
		return;
	}
	if ((me = member_find(&m->members, k->uid)) == NULL) {
		k->code = ERR_NOT_MEMBER;
		k->text = "only members manage a group";
		return;
	}
	m->uid = req->op == GOP_LEAVE ? k->uid : req->userid;
	if (req->op == GOP_REMOVE || req->op == GOP_ADMIN ||
	    req->op == GOP_UNADMIN || req->op == GOP_TRANSFER) {
		if ((target = member_find(&m->members, m->uid)) == NULL) {
			k->code = ERR_NOT_MEMBER;
			k->text = "\"userid\" is not a member of the group";
			return;
		}
		m->target = 1;
	}
	if ((k->text = manage_refused(req, me, target)) != NULL) {
		k->code = ERR_NOT_ALLOWED;
		return;
	}
	if (req->op == GOP_RENAME) {
		text = req->groupname.p;
		len = req->groupname.len;
	} else if (req->op == GOP_DESCRIBE) {
		text = req->groupdesc.p;
		len = req->groupdesc.len;
	}
	rc = store_group_update(st, req->groupid, store_ops[req->op], m->uid,
	    text, len);
	if (rc == STORE_EXISTS) {
		k->code = ERR_EXISTS;
		k->text = "a group with this name exists";
	} else if (rc == STORE_NOTFOUND)
		k->code = ERR_NOT_MEMBER;	/* changed by someone meanwhile */
	else if (rc != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "manage group");
	else
		m->done = 1;
}

/* Changed: caches and history follow; c answered, the others told. */
static void
manage_answer(struct conn *c, struct chat_call *k)
{
	struct manage_call	*m = (struct manage_call *)k;
	const struct proto_req	*req = &k->req;
	struct proto_group_notice note;
	struct buf		 line = BUF_INIT;
	int32_t			*uids;
	size_t			 i, n = 0;

	if (!m->done)
		return;
	/* who gets the group's chats changed: not one more to the removed */
	if (req->op == GOP_LEAVE || req->op == GOP_REMOVE ||
	    req->op == GOP_DISSOLVE)
		gcache_changed(req->groupid);
	if (req->op == GOP_DISSOLVE)
		chat_history_forget(req->groupid);
	if (c == NULL)
		return;		/* the notice goes with its sender */
	/* everyone who was a member, but the one who did it */
	memset(&note, 0, sizeof(note));
	note.gid = req->groupid;
	note.op = req->op;
	note.by = k->uid;
	note.userid = m->target || req->op == GOP_LEAVE ? m->uid : 0;
	if (req->op == GOP_RENAME)
		chat_str_set(&note.text, req->groupname.p, req->groupname.len);
	else if (req->op == GOP_DESCRIBE)
		chat_str_set(&note.text, req->groupdesc.p, req->groupdesc.len);
	if ((uids = calloc(m->members.n + 1, sizeof(*uids))) == NULL ||
	    proto_put_group_notice(&line, &note, time(NULL)) == -1) {
		log_warnx("group notice: out of memory");
		chat_done(c, req);
		goto out;
	}
	for (i = 0; i < m->members.n; i++)
		if (m->members.v[i].id != k->uid)
			uids[n++] = m->members.v[i].id;
	/* answered once the notice is stored for those away */
	chat_notify(c, k->refmsgid, uids, n, &line, &k->req);
out:
	free(uids);
	buf_free(&line);
}

static void
manage_release(struct chat_call *k)
{
	struct manage_call	*m = (struct manage_call *)k;

	store_user_list_free(&m->members);
	free(m);
}

void
handle_group_manage(struct conn *c, struct proto_req *req)
{
	struct chat_call	*k;

	if ((k = chat_call_new(c, req->msgid, sizeof(struct manage_call),
	    manage_run, manage_answer, manage_release)) != NULL)
		chat_call_submit(c, k, req, CALL_WRITE, 1);
}

static void
members_run(struct chat_call *k, struct store *st)
{
	struct manage_call	*m = (struct manage_call *)k;
	int			 rc;

	rc = store_group_members(st, k->req.groupid, &m->members);
	if (rc == STORE_NOTFOUND)
		k->code = ERR_NO_SUCH_GROUP;
	else if (rc != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "group members");
	else if (member_find(&m->members, k->uid) == NULL) {
		k->code = ERR_NOT_MEMBER;
		k->text = "only members list a group's members";
	}
}

static void
members_answer(struct conn *c, struct chat_call *k)
{
	struct manage_call	*m = (struct manage_call *)k;
	const struct proto_req	*req = &k->req;
	struct proto_user	*v;
	size_t			 i, first, n;

	if (c == NULL || k->code != 0)
		return;
	first = (size_t)req->offset < m->members.n ? (size_t)req->offset :
	    m->members.n;
	n = m->members.n - first;
	if (n > (size_t)req->limit)
		n = (size_t)req->limit;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return;
	}
	for (i = 0; i < n; i++) {
		const struct store_user *u = &m->members.v[first + i];

		v[i].id = u->id;
		chat_str_set(&v[i].name, u->name, u->name_len);
		/* on this node; in cluster mode others may be online elsewhere */
		v[i].online = user_online(u->id);
		v[i].creator = u->creator;
		v[i].admin = u->admin;
	}
	if (proto_put_members(&c->out, req->groupid, req->offset,
	    (int64_t)m->members.n, v, n) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
	free(v);
}

void
handle_group_members(struct conn *c, struct proto_req *req)
{
	struct chat_call	*k;

	if ((k = chat_call_new(c, req->msgid, sizeof(struct manage_call),
	    members_run, members_answer, manage_release)) != NULL)
		chat_call_submit(c, k, req, CALL_READ, 1);
}
