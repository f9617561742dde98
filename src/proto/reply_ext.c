/*
 * reply_ext.c - answers and notices of the chat feature extensions
 * (group management, member pages, blocks): chatd-protocol(7).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <limits.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>

#include "proto.h"
#include "proto_impl.h"

int
proto_put_done(struct buf *out, const struct proto_req *req)
{
	struct json_object	*o;

	o = json_object_new_object();
	return reply_end(out, o, 1,
	    reply_add(o, "msgid", json_object_new_int(MSG_DONE)) == -1 ||
	    reply_add(o, "errno", json_object_new_int(ERR_OK)) == -1 ||
	    reply_add(o, "refmsgid", json_object_new_int(req->msgid)) == -1 ||
	    reply_echo_seq(o, req) == -1);
}

static struct json_object *
member_obj(const struct proto_user *u, int role)
{
	struct json_object	*o;

	o = json_object_new_object();
	if (reply_add(o, "id", json_object_new_int(u->id)) == -1 ||
	    reply_add(o, "name", reply_str(u->name.p, u->name.len)) == -1 ||
	    (role && reply_add(o, "state", json_object_new_string(u->online ?
	    "online" : "offline")) == -1) ||
	    (role && reply_add(o, "role", json_object_new_string(u->creator ?
	    "creator" : u->admin ? "admin" : "normal")) == -1)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int
put_users(struct json_object *o, const char *key, const struct proto_user *v,
    size_t n, int role)
{
	struct json_object	*a, *u;
	size_t			 i;

	if (reply_add(o, key, a = json_object_new_array()) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if ((u = member_obj(&v[i], role)) == NULL)
			return -1;
		if (json_object_array_add(a, u) != 0) {
			json_object_put(u);
			return -1;
		}
	}
	return 0;
}

int
proto_put_members(struct buf *out, int32_t gid, int64_t offset,
    int64_t total, const struct proto_user *v, size_t n)
{
	struct json_object	*o;

	o = json_object_new_object();
	return reply_end(out, o, 1,
	    reply_add(o, "msgid", json_object_new_int(MSG_GROUP_MEMBERS_ACK))
	    == -1 ||
	    reply_add(o, "errno", json_object_new_int(ERR_OK)) == -1 ||
	    reply_add(o, "groupid", json_object_new_int(gid)) == -1 ||
	    reply_add(o, "offset", json_object_new_int64(offset)) == -1 ||
	    reply_add(o, "total", json_object_new_int64(total)) == -1 ||
	    put_users(o, "members", v, n, 1) == -1);
}

int
proto_put_blocks(struct buf *out, const struct proto_user *v, size_t n)
{
	struct json_object	*o;

	o = json_object_new_object();
	return reply_end(out, o, 1,
	    reply_add(o, "msgid", json_object_new_int(MSG_BLOCK_LIST_ACK))
	    == -1 ||
	    reply_add(o, "errno", json_object_new_int(ERR_OK)) == -1 ||
	    put_users(o, "blocked", v, n, 0) == -1);
}

/* "YYYY-MM-DD HH:MM:SS", local time, as the seed client writes it. */
static struct json_object *
time_str(time_t now)
{
	struct tm	 tm;
	char		 s[32];

	if (localtime_r(&now, &tm) == NULL ||
	    strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		return NULL;
	return json_object_new_string(s);
}

/* The notice's events: what happened, in the past tense. */
static const char *const group_events[GOP_MAX] = {
	[GOP_LEAVE] = "left",
	[GOP_REMOVE] = "removed",
	[GOP_ADMIN] = "admin",
	[GOP_UNADMIN] = "unadmin",
	[GOP_RENAME] = "renamed",
	[GOP_DESCRIBE] = "described",
	[GOP_TRANSFER] = "owner",
	[GOP_DISSOLVE] = "dissolved",
};

int
proto_put_group_notice(struct buf *out, const struct proto_group_notice *n,
    time_t now)
{
	struct json_object	*o;

	if (n->op < 0 || n->op >= GOP_MAX)
		return -1;
	o = json_object_new_object();
	return reply_end(out, o, 0,
	    reply_add(o, "msgid", json_object_new_int(MSG_GROUP_NOTICE)) == -1 ||
	    reply_add(o, "groupid", json_object_new_int(n->gid)) == -1 ||
	    reply_add(o, "event", json_object_new_string(group_events[n->op]))
	    == -1 ||
	    reply_add(o, "by", json_object_new_int(n->by)) == -1 ||
	    (n->userid != 0 &&
	    reply_add(o, "userid", json_object_new_int(n->userid)) == -1) ||
	    (n->op == GOP_RENAME &&
	    reply_add(o, "groupname", reply_str(n->text.p, n->text.len)) == -1) ||
	    (n->op == GOP_DESCRIBE &&
	    reply_add(o, "groupdesc", reply_str(n->text.p, n->text.len)) == -1) ||
	    reply_add(o, "time", time_str(now)) == -1);
}

int
proto_put_friend_notice(struct buf *out, int32_t userid, time_t now)
{
	struct json_object	*o;

	o = json_object_new_object();
	return reply_end(out, o, 0,
	    reply_add(o, "msgid", json_object_new_int(MSG_FRIEND_NOTICE)) == -1 ||
	    reply_add(o, "event", json_object_new_string("removed")) == -1 ||
	    reply_add(o, "userid", json_object_new_int(userid)) == -1 ||
	    reply_add(o, "time", time_str(now)) == -1);
}

int32_t
proto_line_sender(const char *line, size_t len, int *msgid)
{
	struct json_tokener	*tok;
	struct json_object	*o, *v;
	int64_t			 id = 0, m = 0;

	if (msgid != NULL)
		*msgid = 0;
	if (len > INT_MAX || (tok = json_tokener_new()) == NULL)
		return 0;
	o = json_tokener_parse_ex(tok, line, (int)len);
	if (o != NULL && json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, "msgid", &v) &&
	    json_object_is_type(v, json_type_int))
		m = json_object_get_int64(v);
	if (msgid != NULL)
		*msgid = m > 0 && m <= INT_MAX ? (int)m : 0;
	if ((m == MSG_ONE_CHAT || m == MSG_GROUP_CHAT || m == MSG_TYPING ||
	    m == MSG_READ) && json_object_object_get_ex(o, "id", &v) &&
	    json_object_is_type(v, json_type_int))
		id = json_object_get_int64(v);
	json_object_put(o);
	json_tokener_free(tok);
	return id > 0 && id <= INT32_MAX ? (int32_t)id : 0;
}

static struct json_object *
relay_obj(int msgid, int32_t from, const char *name, size_t name_len)
{
	struct json_object	*o;

	o = json_object_new_object();
	if (reply_add(o, "msgid", json_object_new_int(msgid)) == -1 ||
	    reply_add(o, "id", json_object_new_int(from)) == -1 ||
	    reply_add(o, "name", reply_str(name, name_len)) == -1) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int
proto_put_typing(struct buf *out, int32_t from, const char *name,
    size_t name_len, int32_t toid, int32_t gid)
{
	struct json_object	*o;

	if ((o = relay_obj(MSG_TYPING, from, name, name_len)) == NULL)
		return -1;
	return reply_end(out, o, 0,
	    reply_add(o, gid != 0 ? "groupid" : "toid",
	    json_object_new_int(gid != 0 ? gid : toid)) == -1);
}

int
proto_put_read(struct buf *out, int32_t from, const char *name,
    size_t name_len, int32_t toid, int64_t upto)
{
	struct json_object	*o;

	if ((o = relay_obj(MSG_READ, from, name, name_len)) == NULL)
		return -1;
	return reply_end(out, o, 0,
	    reply_add(o, "toid", json_object_new_int(toid)) == -1 ||
	    reply_add(o, "upto", json_object_new_int64(upto)) == -1);
}

/* A page of stored chats (HISTORY_ACK, RESUME_ACK): key's value, then them. */
static int
put_page(struct buf *out, int msgid, const char *key, int64_t v,
    const struct proto_str *msgs, size_t n, int more)
{
	struct json_object	*o, *a;
	size_t			 i;

	o = json_object_new_object();
	if (reply_add(o, "msgid", json_object_new_int(msgid)) == -1 ||
	    reply_add(o, "errno", json_object_new_int(ERR_OK)) == -1 ||
	    reply_add(o, key, json_object_new_int64(v)) == -1 ||
	    reply_add(o, "messages", a = json_object_new_array()) == -1)
		goto bad;
	for (i = 0; i < n; i++)
		if (reply_arr_add(a, reply_str(msgs[i].p, msgs[i].len)) == -1)
			goto bad;
	if (reply_add(o, "more", json_object_new_boolean(more)) == -1)
		goto bad;
	return reply_put_json(out, o, 1);

 bad:
	json_object_put(o);
	return -1;
}

int
proto_put_history(struct buf *out, int32_t toid, int32_t gid,
    const struct proto_str *msgs, size_t n, int more)
{
	return put_page(out, MSG_HISTORY_ACK, toid != 0 ? "toid" : "groupid",
	    toid != 0 ? toid : gid, msgs, n, more);
}

int
proto_put_resume(struct buf *out, const char *key, int64_t smid,
    const struct proto_str *msgs, size_t n, int more)
{
	return put_page(out, MSG_RESUME_ACK, key, smid, msgs, n, more);
}
