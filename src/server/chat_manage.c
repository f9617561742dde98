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

void
handle_group_manage(struct conn *c, const struct proto_req *req)
{
	struct store_user_list	 members = { NULL, 0 };
	const struct store_user	*me, *target = NULL;
	struct proto_group_notice note;
	struct buf		 line = BUF_INIT;
	const char		*why, *text = NULL;
	int32_t			*uids = NULL, uid;
	size_t			 i, n = 0, len = 0;
	int			 rc;

	rc = store_group_members(chat.store, req->groupid, &members);
	if (rc == STORE_NOTFOUND) {
		chat_error(c, MSG_ERROR, ERR_NO_SUCH_GROUP, req->msgid, NULL);
		return;
	}
	if (rc != STORE_OK)
		goto unavailable;
	if ((me = member_find(&members, c->sess->uid)) == NULL) {
		chat_error(c, MSG_ERROR, ERR_NOT_MEMBER, req->msgid,
		    "only members manage a group");
		goto out;
	}
	uid = req->op == GOP_LEAVE ? c->sess->uid : req->userid;
	if (req->op == GOP_REMOVE || req->op == GOP_ADMIN ||
	    req->op == GOP_UNADMIN || req->op == GOP_TRANSFER) {
		if ((target = member_find(&members, uid)) == NULL) {
			chat_error(c, MSG_ERROR, ERR_NOT_MEMBER, req->msgid,
			    "\"userid\" is not a member of the group");
			goto out;
		}
	}
	if ((why = manage_refused(req, me, target)) != NULL) {
		chat_error(c, MSG_ERROR, ERR_NOT_ALLOWED, req->msgid, why);
		goto out;
	}
	if (req->op == GOP_RENAME) {
		text = req->groupname.p;
		len = req->groupname.len;
	} else if (req->op == GOP_DESCRIBE) {
		text = req->groupdesc.p;
		len = req->groupdesc.len;
	}
	rc = store_group_update(chat.store, req->groupid, store_ops[req->op],
	    uid, text, len);
	if (rc == STORE_EXISTS) {
		chat_error(c, MSG_ERROR, ERR_EXISTS, req->msgid,
		    "a group with this name exists");
		goto out;
	}
	if (rc == STORE_NOTFOUND) {
		/* changed by someone else meanwhile */
		chat_error(c, MSG_ERROR, ERR_NOT_MEMBER, req->msgid, NULL);
		goto out;
	}
	if (rc != STORE_OK)
		goto unavailable;
	/* who gets the group's chats changed: not one more to the removed */
	if (req->op == GOP_LEAVE || req->op == GOP_REMOVE ||
	    req->op == GOP_DISSOLVE)
		gcache_changed(req->groupid);
	if (req->op == GOP_DISSOLVE)
		chat_history_forget(req->groupid);
	if (proto_put_done(&c->out, req) == -1) {
		conn_close(c, "out of memory");
		goto out;
	}
	(void)conn_sent(c);

	/* everyone who was a member, but the one who did it */
	memset(&note, 0, sizeof(note));
	note.gid = req->groupid;
	note.op = req->op;
	note.by = c->sess->uid;
	note.userid = target != NULL ? uid : req->op == GOP_LEAVE ? uid : 0;
	chat_str_set(&note.text, text, len);
	if ((uids = calloc(members.n + 1, sizeof(*uids))) == NULL ||
	    proto_put_group_notice(&line, &note, time(NULL)) == -1) {
		log_warnx("group notice: out of memory");
		goto out;
	}
	for (i = 0; i < members.n; i++)
		if (members.v[i].id != c->sess->uid)
			uids[n++] = members.v[i].id;
	chat_notify(c, req->msgid, uids, n, &line);
	goto out;

unavailable:
	log_warnx("manage group: %s", store_error(chat.store));
	chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
out:
	free(uids);
	buf_free(&line);
	store_user_list_free(&members);
}

void
handle_group_members(struct conn *c, const struct proto_req *req)
{
	struct store_user_list	 members = { NULL, 0 };
	struct proto_user	*v = NULL;
	size_t			 i, first, n = 0;
	int			 rc;

	rc = store_group_members(chat.store, req->groupid, &members);
	if (rc == STORE_NOTFOUND) {
		chat_error(c, MSG_ERROR, ERR_NO_SUCH_GROUP, req->msgid, NULL);
		return;
	}
	if (rc != STORE_OK) {
		log_warnx("group members: %s", store_error(chat.store));
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return;
	}
	if (member_find(&members, c->sess->uid) == NULL) {
		chat_error(c, MSG_ERROR, ERR_NOT_MEMBER, req->msgid,
		    "only members list a group's members");
		goto out;
	}
	first = (size_t)req->offset < members.n ? (size_t)req->offset :
	    members.n;
	n = members.n - first;
	if (n > (size_t)req->limit)
		n = (size_t)req->limit;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	for (i = 0; i < n; i++) {
		const struct store_user *u = &members.v[first + i];

		v[i].id = u->id;
		chat_str_set(&v[i].name, u->name, u->name_len);
		/* on this node; in cluster mode others may be online elsewhere */
		v[i].online = user_online(u->id);
		v[i].creator = u->creator;
		v[i].admin = u->admin;
	}
	if (proto_put_members(&c->out, req->groupid, req->offset,
	    (int64_t)members.n, v, n) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
out:
	free(v);
	store_user_list_free(&members);
}
