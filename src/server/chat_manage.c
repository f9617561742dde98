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

/*
 * Send a notice (one JSON object, no newline, in line) to uids: live on
 * this node, through Redis to other nodes, else stored until they log
 * in, like a chat.  c waits while publishes are under way.
 */
void
chat_notify(struct conn *c, int refmsgid, const int32_t *uids, size_t n,
    struct buf *line)
{
	int32_t		*away = NULL, *pub = NULL;
	size_t		 i, naway = 0, npub = 0;

	if (n == 0)
		return;
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
	}
	/* stored in the write store thread; a failure answered on c */
	if (chat.storeq == NULL || keep_submit(NULL, c->id, c->sess->uid,
	    refmsgid, NULL, away, naway, 0, buf_head(line),
	    buf_used(line) - 1) == KEEP_FAILED)
		(void)chat_keep_offline(away, naway, buf_head(line),
		    buf_used(line) - 1);
out:
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
	if (proto_put_done(&c->out, req) == -1) {
		conn_close(c, "out of memory");
		return;
	}
	(void)conn_sent(c);

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
		goto out;
	}
	for (i = 0; i < m->members.n; i++)
		if (m->members.v[i].id != k->uid)
			uids[n++] = m->members.v[i].id;
	chat_notify(c, k->refmsgid, uids, n, &line);
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
	struct manage_call	*m;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return;
	}
	m->k.run = manage_run;
	m->k.answer = manage_answer;
	m->k.release = manage_release;
	chat_call_submit(c, &m->k, req, CALL_WRITE, 1);
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
	struct manage_call	*m;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return;
	}
	m->k.run = members_run;
	m->k.answer = members_answer;
	m->k.release = manage_release;
	chat_call_submit(c, &m->k, req, CALL_READ, 1);
}
