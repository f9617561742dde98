/*
 * reply.c - the answers the server writes, each one JSON object and
 * "\n", and the text of each errno value.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "proto.h"
#include "proto_impl.h"

const char *
proto_strerror(int code)
{
	switch (code) {
	case ERR_OK:
		return "success";
	case ERR_AUTH:
		return "wrong id or password, or name taken";
	case ERR_ONLINE:
		return "user already online";
	case ERR_MALFORMED:
		return "malformed JSON";
	case ERR_NOT_OBJECT:
		return "request is not a JSON object";
	case ERR_UNKNOWN_MSGID:
		return "unknown msgid";
	case ERR_MISSING_FIELD:
		return "missing field";
	case ERR_WRONG_TYPE:
		return "field has the wrong type";
	case ERR_BAD_VALUE:
		return "bad value";
	case ERR_TOO_LONG:
		return "value too long";
	case ERR_NOT_LOGGED_IN:
		return "not logged in";
	case ERR_IDENTITY:
		return "request claims another user";
	case ERR_NO_SUCH_USER:
		return "no such user";
	case ERR_NO_SUCH_GROUP:
		return "no such group";
	case ERR_NOT_MEMBER:
		return "not a member of the group";
	case ERR_NOT_ALLOWED:
		return "not allowed";
	case ERR_EXISTS:
		return "group name taken";
	case ERR_UNAVAILABLE:
		return "service unavailable, retry later";
	case ERR_RATE:
		return "too many requests";
	case ERR_FRAME_TOO_BIG:
		return "request too big";
	case ERR_ALREADY_LOGGED_IN:
		return "already logged in";
	case ERR_LIMIT:
		return "limit reached";
	case ERR_BUSY:
		return "busy, retry later";
	case ERR_TOKEN:
		return "resume token refused: log in with the password";
	case ERR_RESUME_GONE:
		return "too late to resume from that message: page back "
		    "with HISTORY";
	}
	return "unknown error";
}


struct json_object *
reply_str(const char *p, size_t len)
{
	if (len > INT_MAX)
		return NULL;
	return json_object_new_string_len(len == 0 ? "" : p, (int)len);
}

int
reply_add(struct json_object *o, const char *key, struct json_object *v)
{
	if (o == NULL || v == NULL || json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

int
reply_arr_add(struct json_object *a, struct json_object *v)
{
	if (a == NULL || v == NULL || json_object_array_add(a, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

/* The seed client json::parse()s each list element: add o as text. */
static int
arr_add_text(struct json_object *a, struct json_object *o)
{
	const char	*s;
	size_t		 n;
	int		 rc = -1;

	if (o != NULL &&
	    (s = json_object_to_json_string_length(o, JSON_OUT, &n)) != NULL)
		rc = reply_arr_add(a, reply_str(s, n));
	json_object_put(o);
	return rc;
}

int
reply_echo_seq(struct json_object *o, const struct proto_req *req)
{
	struct json_object	*seq;

	/* shared, not copied: a double keeps its original text */
	if (req != NULL && req->root != NULL &&
	    json_object_is_type(req->root, json_type_object) &&
	    json_object_object_get_ex(req->root, "seq", &seq) &&
	    json_object_object_add(o, "seq", json_object_get(seq)) != 0) {
		json_object_put(seq);
		return -1;
	}
	return 0;
}

int
reply_put_json(struct buf *out, struct json_object *o, int nl)
{
	const char	*s;
	size_t		 n;
	int		 rc = -1;

	if (o != NULL &&
	    (s = json_object_to_json_string_length(o, JSON_OUT, &n)) != NULL &&
	    n < SIZE_MAX && buf_reserve(out, n + 1) == 0) {
		buf_append(out, s, n);
		if (nl)
			buf_append(out, "\n", 1);
		rc = 0;
	}
	json_object_put(o);
	return rc;
}

/* o (taken) into out, or only freed when bad: building it failed. */
int
reply_end(struct buf *out, struct json_object *o, int nl, int bad)
{
	if (bad) {
		json_object_put(o);
		return -1;
	}
	return reply_put_json(out, o, nl);
}

int
proto_put_error(struct buf *out, int reply_msgid, int code, int refmsgid,
    const char *text)
{
	struct json_object	*o;

	if (text == NULL)
		text = proto_strerror(code);
	o = json_object_new_object();
	return reply_end(out, o, 1,
	    reply_add(o, "msgid", json_object_new_int(reply_msgid)) == -1 ||
	    reply_add(o, "errno", json_object_new_int(code)) == -1 ||
	    reply_add(o, "errmsg", reply_str(text, strlen(text))) == -1 ||
	    (refmsgid > 0 && reply_msgid == MSG_ERROR &&
	    reply_add(o, "refmsgid", json_object_new_int(refmsgid)) == -1));
}

int
proto_put_reg_ack(struct buf *out, int32_t id)
{
	struct json_object	*o;

	o = json_object_new_object();
	return reply_end(out, o, 1,
	    reply_add(o, "msgid", json_object_new_int(MSG_REG_ACK)) == -1 ||
	    reply_add(o, "errno", json_object_new_int(ERR_OK)) == -1 ||
	    reply_add(o, "id", json_object_new_int(id)) == -1);
}

int
proto_put_pong(struct buf *out, const struct proto_req *ping)
{
	struct json_object	*o;

	o = json_object_new_object();
	if (reply_add(o, "msgid", json_object_new_int(MSG_PONG)) == -1 ||
	    reply_echo_seq(o, ping) == -1)
		goto bad;
	return reply_put_json(out, o, 1);

 bad:
	json_object_put(o);
	return -1;
}

int
proto_put_chat_ack(struct buf *out, int64_t cmid, int64_t smid)
{
	struct json_object	*o;

	o = json_object_new_object();
	return reply_end(out, o, 1,
	    reply_add(o, "msgid", json_object_new_int(MSG_CHAT_ACK)) == -1 ||
	    reply_add(o, "cmid", json_object_new_int64(cmid)) == -1 ||
	    reply_add(o, "smid", json_object_new_int64(smid)) == -1);
}

/* {"id","name","state"[,"role"]} */
static struct json_object *
user_obj(const struct proto_user *u, int member)
{
	struct json_object	*o;

	o = json_object_new_object();
	if (reply_add(o, "id", json_object_new_int(u->id)) == -1 ||
	    reply_add(o, "name", reply_str(u->name.p, u->name.len)) == -1 ||
	    reply_add(o, "state", json_object_new_string(u->online ?
	    "online" : "offline")) == -1 ||
	    (member && reply_add(o, "role", json_object_new_string(u->creator ?
	    "creator" : "normal")) == -1)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static struct json_object *
group_obj(const struct proto_group *g)
{
	struct json_object	*o, *users;
	size_t			 i;

	o = json_object_new_object();
	if (reply_add(o, "id", json_object_new_int(g->id)) == -1 ||
	    reply_add(o, "groupname", reply_str(g->name.p, g->name.len)) == -1 ||
	    reply_add(o, "groupdesc", reply_str(g->desc.p, g->desc.len)) == -1 ||
	    reply_add(o, "users", users = json_object_new_array()) == -1)
		goto bad;
	/* "users" is there even when empty: the seed client reads it blindly */
	for (i = 0; i < g->nmembers; i++)
		if (arr_add_text(users, user_obj(&g->members[i], 1)) == -1)
			goto bad;
	/* a cut list says so; the seed client ignores the key */
	if (g->total > g->nmembers && reply_add(o, "userstotal",
	    json_object_new_int64((int64_t)g->total)) == -1)
		goto bad;
	return o;

 bad:
	json_object_put(o);
	return NULL;
}

int
proto_put_login_ok(struct buf *out, const struct proto_login *l)
{
	struct json_object	*o, *a;
	size_t			 i;

	o = json_object_new_object();
	if (reply_add(o, "msgid", json_object_new_int(MSG_LOGIN_ACK)) == -1 ||
	    reply_add(o, "errno", json_object_new_int(ERR_OK)) == -1 ||
	    reply_add(o, "id", json_object_new_int(l->id)) == -1 ||
	    reply_add(o, "name", reply_str(l->name.p, l->name.len)) == -1)
		goto bad;
	/* each list is attached first, so o owns it while it fills */
	if (l->noffline > 0) {
		if (reply_add(o, "offlinemsg", a = json_object_new_array()) == -1)
			goto bad;
		/* stored as the forwarded object's text: pass it as is */
		for (i = 0; i < l->noffline; i++)
			if (reply_arr_add(a, reply_str(l->offline[i].p,
			    l->offline[i].len)) == -1)
				goto bad;
	}
	if (l->ackoffline &&
	    (reply_add(o, "offlineupto", json_object_new_int64(l->offlineupto)) ==
	    -1 || reply_add(o, "offlinemore",
	    json_object_new_boolean(l->offlinemore)) == -1))
		goto bad;
	if (l->token != NULL &&
	    (reply_add(o, "token", json_object_new_string(l->token)) == -1 ||
	    reply_add(o, "tokenexpires",
	    json_object_new_int64(l->tokenexpires)) == -1))
		goto bad;
	if (l->nfriends > 0) {
		if (reply_add(o, "friends", a = json_object_new_array()) == -1)
			goto bad;
		for (i = 0; i < l->nfriends; i++)
			if (arr_add_text(a, user_obj(&l->friends[i], 0)) == -1)
				goto bad;
	}
	if (l->ngroups > 0) {
		if (reply_add(o, "groups", a = json_object_new_array()) == -1)
			goto bad;
		for (i = 0; i < l->ngroups; i++)
			if (arr_add_text(a, group_obj(&l->groups[i])) == -1)
				goto bad;
	}
	return reply_put_json(out, o, 1);

 bad:
	json_object_put(o);
	return -1;
}

size_t
proto_member_bytes(size_t name_len)
{
	/*
	 * {"id":2147483647,"name":"","state":"offline","role":"creator"}
	 * as a string inside a string (its quotes escaped), a comma; a
	 * quote in the name takes four bytes once escaped twice.
	 */
	return 96 + 4 * name_len;
}

int
proto_put_busy(struct buf *out, int reply_msgid, int refmsgid, int retry_ms)
{
	struct json_object	*o;
	char			 text[64];

	snprintf(text, sizeof(text), "busy, retry in %d ms", retry_ms);
	o = json_object_new_object();
	return reply_end(out, o, 1,
	    reply_add(o, "msgid", json_object_new_int(reply_msgid)) == -1 ||
	    reply_add(o, "errno", json_object_new_int(ERR_BUSY)) == -1 ||
	    reply_add(o, "errmsg", json_object_new_string(text)) == -1 ||
	    reply_add(o, "retryms", json_object_new_int(retry_ms)) == -1 ||
	    reply_add(o, "refmsgid", json_object_new_int(refmsgid)) == -1);
}

int
proto_put_account_ack(struct buf *out, int refmsgid, const char *token,
    int64_t expires)
{
	struct json_object	*o;

	o = json_object_new_object();
	return reply_end(out, o, 1,
	    reply_add(o, "msgid", json_object_new_int(MSG_ACCOUNT_ACK)) == -1 ||
	    reply_add(o, "errno", json_object_new_int(ERR_OK)) == -1 ||
	    reply_add(o, "refmsgid", json_object_new_int(refmsgid)) == -1 ||
	    (token != NULL &&
	    (reply_add(o, "token", json_object_new_string(token)) == -1 ||
	    reply_add(o, "tokenexpires", json_object_new_int64(expires)) ==
	    -1)));
}

int
proto_put_offline_batch(struct buf *out, const struct proto_str *msgs,
    size_t n, int64_t upto, int more)
{
	struct json_object	*o, *a;
	size_t			 i;

	o = json_object_new_object();
	if (reply_add(o, "msgid", json_object_new_int(MSG_OFFLINE_BATCH)) == -1 ||
	    reply_add(o, "offlinemsg", a = json_object_new_array()) == -1)
		goto bad;
	for (i = 0; i < n; i++)
		if (reply_arr_add(a, reply_str(msgs[i].p, msgs[i].len)) == -1)
			goto bad;
	if (reply_add(o, "offlineupto", json_object_new_int64(upto)) == -1 ||
	    reply_add(o, "offlinemore", json_object_new_boolean(more)) == -1)
		goto bad;
	return reply_put_json(out, o, 1);

 bad:
	json_object_put(o);
	return -1;
}


int
proto_put_refuse(struct buf *out, enum proto_refuse why)
{
	const char	*text;

	switch (why) {
	case PROTO_REFUSE_PER_ADDR:
		text = "too many connections from your address "
		    "(max_connections_per_ip)";
		break;
	case PROTO_REFUSE_FULL:
	default:
		text = "server full";
		break;
	}
	return proto_put_error(out, MSG_ERROR, ERR_LIMIT, 0, text);
}

int
proto_put_whoami(struct buf *out, int32_t id, int worker, int pid)
{
	/* integers only: nothing to escape, so no tree */
	return buf_printf(out, "{\"msgid\":%d,\"errno\":0,\"id\":%d,"
	    "\"worker\":%d,\"pid\":%d}\n", MSG_WHOAMI_ACK, (int)id, worker,
	    pid);
}
