/*
 * decode.c - proto_decode: one frame to a checked request.  The fast
 * path (fastparse.c) takes the common flat requests; everything else
 * is checked by jc_lint and parsed by json-c, which also words the
 * answers to broken ones.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "proto.h"
#include "proto_impl.h"

static void fail_set(struct proto_fail *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail_set(struct proto_fail *fail, int code, const char *fmt, ...)
{
	va_list	 ap;

	fail->code = code;
	va_start(ap, fmt);
	vsnprintf(fail->text, sizeof(fail->text), fmt, ap);
	va_end(ap);
}

static int
msgid_known(int64_t m)
{
	switch (m) {
	case MSG_LOGIN:
	case MSG_LOGINOUT:
	case MSG_REG:
	case MSG_ONE_CHAT:
	case MSG_ADD_FRIEND:
	case MSG_CREATE_GROUP:
	case MSG_ADD_GROUP:
	case MSG_GROUP_CHAT:
	case MSG_PING:
	case MSG_WHOAMI:
	case MSG_OFFLINE_ACK:
	case MSG_GROUP_MANAGE:
	case MSG_GROUP_MEMBERS:
	case MSG_FRIEND_REMOVE:
	case MSG_BLOCK:
	case MSG_UNBLOCK:
	case MSG_BLOCK_LIST:
	case MSG_TYPING:
	case MSG_READ:
	case MSG_RECEIVED:
	case MSG_LOGOUT_ALL:
	case MSG_PASSWD:
	case MSG_HISTORY:
	case MSG_DELETE_ACCOUNT:
	case MSG_RESUME:
		return 1;
	}
	return 0;
}

static const char *const group_ops[GOP_MAX] = {
	[GOP_LEAVE] = "leave",
	[GOP_REMOVE] = "remove",
	[GOP_ADMIN] = "admin",
	[GOP_UNADMIN] = "unadmin",
	[GOP_RENAME] = "rename",
	[GOP_DESCRIBE] = "describe",
	[GOP_TRANSFER] = "transfer",
	[GOP_DISSOLVE] = "dissolve",
};

const char *
proto_group_op_name(int op)
{
	return op >= 0 && op < GOP_MAX ? group_ops[op] : NULL;
}

static const struct proto_limits no_limits = {
	SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX
};


/* A request's tree, and what fast_parse learnt of it (NULL: nothing). */
struct fields {
	struct json_object	*root;
	const struct fast_info	*fi;
};

/* json_object_object_get_ex, answered from the fast_info when it can. */
static int
obj_get(const struct fields *f, const char *key, struct json_object **v)
{
	unsigned	 j;

	if (f->fi != NULL && (j = fast_key(key, strlen(key))) < NFAST_KEYS) {
		*v = f->fi->v[j];
		return (f->fi->present >> j) & 1;
	}
	return json_object_object_get_ex(f->root, key, v);
}

/* What get_id and get_str found. */
enum field_get {
	FIELD_ABSENT,
	FIELD_FOUND,		/* *out set */
	FIELD_BAD		/* the wrong type or out of range: in fail */
};

/* key, of type t ("expected <what>" otherwise), into *v. */
static enum field_get
get_typed(const struct fields *f, const char *key, json_type t,
    const char *what, struct json_object **v, struct proto_fail *fail)
{
	if (!obj_get(f, key, v))
		return FIELD_ABSENT;
	if (!json_object_is_type(*v, t)) {
		fail_set(fail, ERR_WRONG_TYPE, "field \"%s\": expected %s", key,
		    what);
		return FIELD_BAD;
	}
	return FIELD_FOUND;
}

/* What a get_* found, for a field that must be there: 0 or -1. */
static int
need(enum field_get got, const char *key, struct proto_fail *fail)
{
	if (got == FIELD_ABSENT)
		fail_set(fail, ERR_MISSING_FIELD, "field \"%s\": missing", key);
	return got == FIELD_FOUND ? 0 : -1;
}

static enum field_get
get_id(const struct fields *f, const char *key, int32_t *out,
    struct proto_fail *fail)
{
	struct json_object	*v;
	enum field_get		 got;
	int64_t			 n;

	if ((got = get_typed(f, key, json_type_int, "an integer", &v,
	    fail)) != FIELD_FOUND)
		return got;
	/* values above INT64_MAX read as INT64_MAX: out of range too */
	n = json_object_get_int64(v);
	if (n < 1 || n > INT32_MAX) {
		fail_set(fail, ERR_BAD_VALUE,
		    "field \"%s\": out of range 1..2147483647", key);
		return FIELD_BAD;
	}
	*out = (int32_t)n;
	return FIELD_FOUND;
}

static int
need_id(const struct fields *f, const char *key, int32_t *out,
    struct proto_fail *fail)
{
	return need(get_id(f, key, out, fail), key, fail);
}

static enum field_get
get_str(const struct fields *f, const char *key, struct proto_str *out,
    struct proto_fail *fail)
{
	struct json_object	*v;
	enum field_get		 got;
	int			 n;

	if ((got = get_typed(f, key, json_type_string, "a string", &v,
	    fail)) != FIELD_FOUND)
		return got;
	n = json_object_get_string_len(v);
	out->p = json_object_get_string(v);
	out->len = n > 0 ? (size_t)n : 0;
	return FIELD_FOUND;
}

static int
need_str(const struct fields *f, const char *key, struct proto_str *out,
    struct proto_fail *fail)
{
	return need(get_str(f, key, out, fail), key, fail);
}

/* Non-empty and within max bytes. */
static int
check_len(const char *key, const struct proto_str *s, size_t max,
    struct proto_fail *fail)
{
	if (s->len == 0) {
		fail_set(fail, ERR_BAD_VALUE, "field \"%s\": empty", key);
		return -1;
	}
	if (s->len > max) {
		fail_set(fail, ERR_TOO_LONG,
		    "field \"%s\": longer than %zu bytes", key, max);
		return -1;
	}
	return 0;
}

/* Names show up in lists and logs: no control characters. */
static int
check_name(const char *key, const struct proto_str *s, size_t max,
    struct proto_fail *fail)
{
	size_t		 i;
	unsigned char	 c;

	if (check_len(key, s, max, fail) == -1)
		return -1;
	for (i = 0; i < s->len; i++) {
		c = (unsigned char)s->p[i];
		if (c < 0x20 || c == 0x7f) {
			fail_set(fail, ERR_BAD_VALUE,
			    "field \"%s\": control character", key);
			return -1;
		}
	}
	return 0;
}

/* An optional integer in lo..hi into *out (left alone when absent). */
static int
get_count(const struct fields *f, const char *key, int64_t lo, int64_t hi,
    int64_t *out, struct proto_fail *fail)
{
	struct json_object	*v;
	enum field_get		 got;
	int64_t			 n;

	if ((got = get_typed(f, key, json_type_int, "an integer", &v,
	    fail)) != FIELD_FOUND)
		return got == FIELD_ABSENT ? 0 : -1;
	n = json_object_get_int64(v);
	if (n < lo || n > hi) {
		fail_set(fail, ERR_BAD_VALUE, "field \"%s\": out of range "
		    "%lld..%lld", key, (long long)lo, (long long)hi);
		return -1;
	}
	*out = n;
	return 0;
}

/* MSG_GROUP_MANAGE: "op" and what that op needs. */
static int
decode_manage(const struct fields *f, const struct proto_limits *lim,
    struct proto_req *req, struct proto_fail *fail)
{
	struct proto_str	 op;
	int			 i;

	if (need_id(f, "groupid", &req->groupid, fail) == -1 ||
	    need_str(f, "op", &op, fail) == -1)
		return -1;
	for (i = 0; i < GOP_MAX; i++)
		if (op.len == strlen(group_ops[i]) &&
		    memcmp(op.p, group_ops[i], op.len) == 0)
			break;
	if (i == GOP_MAX) {
		fail_set(fail, ERR_BAD_VALUE, "field \"op\": not one of leave, "
		    "remove, admin, unadmin, rename, describe, transfer, "
		    "dissolve");
		return -1;
	}
	req->op = i;
	switch (req->op) {
	case GOP_REMOVE:
	case GOP_ADMIN:
	case GOP_UNADMIN:
	case GOP_TRANSFER:
		return need_id(f, "userid", &req->userid, fail);
	case GOP_RENAME:
		if (need_str(f, "groupname", &req->groupname, fail) == -1 ||
		    check_name("groupname", &req->groupname,
		    lim->max_name_bytes, fail) == -1)
			return -1;
		break;
	case GOP_DESCRIBE:
		if (need_str(f, "groupdesc", &req->groupdesc, fail) == -1)
			return -1;
		if (req->groupdesc.len > lim->max_groupdesc_bytes) {
			fail_set(fail, ERR_TOO_LONG,
			    "field \"groupdesc\": longer than %zu bytes",
			    lim->max_groupdesc_bytes);
			return -1;
		}
		break;
	}
	return 0;
}

/* RECEIVED: "smids", 1..PROTO_MAX_SMIDS positive integers, copied. */
static int
decode_smids(const struct fields *f, struct proto_req *req,
    struct proto_fail *fail)
{
	struct json_object	*v, *e;
	size_t			 i, n;

	if (need(get_typed(f, "smids", json_type_array, "an array", &v, fail),
	    "smids", fail) == -1)
		return -1;
	n = json_object_array_length(v);
	if (n == 0 || n > PROTO_MAX_SMIDS) {
		fail_set(fail, ERR_BAD_VALUE, "field \"smids\": 1 to %d "
		    "elements", PROTO_MAX_SMIDS);
		return -1;
	}
	if ((req->smids = calloc(n, sizeof(*req->smids))) == NULL) {
		fail_set(fail, ERR_UNAVAILABLE, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(v, i);
		if (!json_object_is_type(e, json_type_int)) {
			fail_set(fail, ERR_WRONG_TYPE,
			    "field \"smids\": expected integers");
			return -1;
		}
		if ((req->smids[i] = json_object_get_int64(e)) < 1) {
			fail_set(fail, ERR_BAD_VALUE,
			    "field \"smids\": must be positive");
			return -1;
		}
	}
	req->nsmids = n;
	return 0;
}

/*
 * LOGIN's "token": true asks for a resume token in the answer; a
 * string logs in with one (and asks for a fresh one).
 */
static int
login_token(const struct fields *f, struct proto_req *req,
    struct proto_fail *fail)
{
	struct json_object	*v;

	if (!json_object_object_get_ex(f->root, "token", &v))
		return 0;
	if (json_object_is_type(v, json_type_boolean)) {
		req->want_token = json_object_get_boolean(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		req->token.p = json_object_get_string(v);
		req->token.len = (size_t)json_object_get_string_len(v);
		req->want_token = 1;
		return 0;
	}
	fail_set(fail, ERR_WRONG_TYPE,
	    "field \"token\": expected true, false or a string");
	return -1;
}

/* TYPING, HISTORY: exactly one of "toid" and "groupid". */
static int
one_target(const struct fields *f, struct proto_req *req,
    struct proto_fail *fail)
{
	enum field_get	 t, g;

	if ((t = get_id(f, "toid", &req->toid, fail)) == FIELD_BAD ||
	    (g = get_id(f, "groupid", &req->groupid, fail)) == FIELD_BAD)
		return -1;
	if ((t == FIELD_FOUND) + (g == FIELD_FOUND) != 1) {
		fail_set(fail, t == FIELD_FOUND ? ERR_BAD_VALUE :
		    ERR_MISSING_FIELD,
		    "field \"toid\" or \"groupid\": exactly one");
		return -1;
	}
	return 0;
}

static int
decode_fields(const struct fields *f, const struct proto_limits *lim,
    struct proto_req *req, struct proto_fail *fail)
{
	struct json_object	*v;
	struct proto_str	 s;
	enum field_get		 got;
	int64_t			 n;
	int			 rc;

	/* a ping may carry anything */
	if (req->msgid == MSG_PING)
		return 0;

	if ((got = get_id(f, "id", &req->id, fail)) == FIELD_BAD)
		return -1;
	req->has_id = got == FIELD_FOUND;
	if ((got = get_typed(f, "cmid", json_type_int, "an integer", &v,
	    fail)) == FIELD_BAD)
		return -1;
	if (got == FIELD_FOUND) {
		n = json_object_get_int64(v);
		/* above INT64_MAX reads as INT64_MAX: tell them apart */
		if (n < 0 || (n == INT64_MAX &&
		    json_object_get_uint64(v) != (uint64_t)INT64_MAX)) {
			fail_set(fail, ERR_BAD_VALUE,
			    "field \"cmid\": out of range 0..%lld",
			    (long long)INT64_MAX);
			return -1;
		}
		req->has_cmid = 1;
		req->cmid = n;
	}

	switch (req->msgid) {
	case MSG_LOGIN:
		if (login_token(f, req, fail) == -1 ||
		    (got = get_str(f, "name", &s, fail)) == FIELD_BAD)
			return -1;
		/* a resume token names the user: nothing else is needed */
		if (req->token.p != NULL) {
			if (get_str(f, "password", &req->password, fail) ==
			    FIELD_BAD)
				return -1;
			goto login_opts;
		}
		/* by id when given; the name then is only type-checked */
		if (!req->has_id) {
			if (got == FIELD_ABSENT) {
				fail_set(fail, ERR_MISSING_FIELD,
				    "field \"id\" or \"name\": missing");
				return -1;
			}
			if (check_name("name", &s, lim->max_name_bytes,
			    fail) == -1)
				return -1;
			req->name = s;
		}
		if (need_str(f, "password", &req->password, fail) == -1 ||
		    check_len("password", &req->password,
		    lim->max_password_bytes, fail) == -1)
			return -1;
 login_opts:
		if (obj_get(f, "ackoffline", &v)) {
			if (!json_object_is_type(v, json_type_boolean)) {
				fail_set(fail, ERR_WRONG_TYPE, "field "
				    "\"ackoffline\": expected true or false");
				return -1;
			}
			req->ackoffline = json_object_get_boolean(v);
		}
		if (obj_get(f, "acks", &v)) {
			if (!json_object_is_type(v, json_type_boolean)) {
				fail_set(fail, ERR_WRONG_TYPE, "field "
				    "\"acks\": expected true or false");
				return -1;
			}
			req->acks = json_object_get_boolean(v);
		}
		break;
	case MSG_RECEIVED:
		if (decode_smids(f, req, fail) == -1)
			return -1;
		break;
	case MSG_OFFLINE_ACK:
		if (need(get_typed(f, "upto", json_type_int, "an integer",
		    &v, fail), "upto", fail) == -1)
			return -1;
		req->upto = json_object_get_int64(v);
		if (req->upto < 0) {
			fail_set(fail, ERR_BAD_VALUE,
			    "field \"upto\": must not be negative");
			return -1;
		}
		break;
	case MSG_REG:
		if (need_str(f, "name", &req->name, fail) == -1 ||
		    check_name("name", &req->name, lim->max_name_bytes,
		    fail) == -1 ||
		    need_str(f, "password", &req->password, fail) == -1 ||
		    check_len("password", &req->password,
		    lim->max_password_bytes, fail) == -1)
			return -1;
		break;
	case MSG_LOGINOUT:
	case MSG_LOGOUT_ALL:
		break;
	case MSG_PASSWD:
		if (need_str(f, "password", &req->password, fail) == -1 ||
		    check_len("password", &req->password,
		    lim->max_password_bytes, fail) == -1 ||
		    need_str(f, "newpassword", &req->newpassword, fail) == -1 ||
		    check_len("newpassword", &req->newpassword,
		    lim->max_password_bytes, fail) == -1)
			return -1;
		if (req->newpassword.len == 0 || memchr(req->newpassword.p,
		    '\0', req->newpassword.len) != NULL) {
			fail_set(fail, ERR_BAD_VALUE, "field \"newpassword\": "
			    "must not be empty nor contain U+0000");
			return -1;
		}
		break;
	case MSG_ONE_CHAT:
	case MSG_GROUP_CHAT:
		if (req->msgid == MSG_ONE_CHAT)
			rc = need_id(f, "toid", &req->toid, fail);
		else
			rc = need_id(f, "groupid", &req->groupid, fail);
		if (rc == -1 ||
		    need_str(f, "msg", &req->msg, fail) == -1 ||
		    check_len("msg", &req->msg, lim->max_message_bytes,
		    fail) == -1 ||
		    get_str(f, "name", &s, fail) == FIELD_BAD)
			return -1;
		break;
	case MSG_ADD_FRIEND:
		if (need_id(f, "friendid", &req->friendid, fail) == -1)
			return -1;
		break;
	case MSG_CREATE_GROUP:
		if (need_str(f, "groupname", &req->groupname, fail) == -1 ||
		    check_name("groupname", &req->groupname,
		    lim->max_name_bytes, fail) == -1)
			return -1;
		req->groupdesc.p = "";
		req->groupdesc.len = 0;
		if (get_str(f, "groupdesc", &req->groupdesc, fail) ==
		    FIELD_BAD)
			return -1;
		if (req->groupdesc.len > lim->max_groupdesc_bytes) {
			fail_set(fail, ERR_TOO_LONG,
			    "field \"groupdesc\": longer than %zu bytes",
			    lim->max_groupdesc_bytes);
			return -1;
		}
		break;
	case MSG_ADD_GROUP:
		if (need_id(f, "groupid", &req->groupid, fail) == -1)
			return -1;
		break;
	case MSG_GROUP_MANAGE:
		return decode_manage(f, lim, req, fail);
	case MSG_GROUP_MEMBERS:
		if (need_id(f, "groupid", &req->groupid, fail) == -1 ||
		    get_count(f, "offset", 0, INT32_MAX, &req->offset,
		    fail) == -1)
			return -1;
		req->limit = PROTO_MEMBERS_LIMIT;
		if (get_count(f, "limit", 1, PROTO_MEMBERS_MAX, &req->limit,
		    fail) == -1)
			return -1;
		break;
	case MSG_FRIEND_REMOVE:
		if (need_id(f, "friendid", &req->friendid, fail) == -1)
			return -1;
		break;
	case MSG_BLOCK:
	case MSG_UNBLOCK:
		if (need_id(f, "userid", &req->userid, fail) == -1)
			return -1;
		break;
	case MSG_BLOCK_LIST:
		break;
	case MSG_TYPING:
		return one_target(f, req, fail);
	case MSG_HISTORY:
		if (one_target(f, req, fail) == -1 ||
		    get_count(f, "before", 1, INT64_MAX, &req->before,
		    fail) == -1)
			return -1;
		req->limit = PROTO_HISTORY_LIMIT;
		if (get_count(f, "limit", 1, PROTO_HISTORY_MAX, &req->limit,
		    fail) == -1)
			return -1;
		break;
	case MSG_RESUME:
		if (get_count(f, "since", 1, INT64_MAX, &req->since,
		    fail) == -1 ||
		    get_count(f, "after", 1, INT64_MAX, &req->after,
		    fail) == -1)
			return -1;
		if ((req->since == 0) == (req->after == 0)) {
			fail_set(fail, req->since == 0 ? ERR_MISSING_FIELD :
			    ERR_BAD_VALUE, "exactly one of \"since\" and "
			    "\"after\" is needed");
			return -1;
		}
		req->limit = PROTO_RESUME_LIMIT;
		if (get_count(f, "limit", 1, PROTO_RESUME_MAX, &req->limit,
		    fail) == -1)
			return -1;
		break;
	case MSG_DELETE_ACCOUNT:
		if (need_str(f, "password", &req->password, fail) == -1 ||
		    check_len("password", &req->password,
		    lim->max_password_bytes, fail) == -1)
			return -1;
		break;
	case MSG_READ:
		if (need_id(f, "toid", &req->toid, fail) == -1)
			return -1;
		req->upto = 0;
		if (get_count(f, "upto", 1, INT64_MAX, &req->upto, fail) == -1)
			return -1;
		if (req->upto == 0) {
			fail_set(fail, ERR_MISSING_FIELD,
			    "field \"upto\": missing");
			return -1;
		}
		break;
	}
	return 0;
}

int
proto_decode(const char *frame, size_t len, const struct proto_limits *lim,
    struct proto_req *req, struct proto_fail *fail)
{
	struct json_tokener	*tok;
	struct json_object	*root = NULL, *v;
	enum json_tokener_error	 jerr;
	const char		*why = NULL;
	size_t			 end;
	int64_t			 m = 0;
	int			 lcode = 0, flags;
	struct fast_info	 fi;
	struct fields		 fl = { NULL, NULL };

	memset(req, 0, sizeof(*req));
	/* not all of fail: its text is only written on failure */
	fail->code = ERR_OK;
	fail->refmsgid = 0;
	fail->text[0] = '\0';
	fail->reply_msgid = MSG_ERROR;
	if (lim == NULL)
		lim = &no_limits;

	if (len == 0 || len > INT_MAX) {
		fail_set(fail, ERR_MALFORMED, "malformed JSON: %s",
		    len == 0 ? "empty request" : "request too big");
		return -1;
	}
	if ((root = fast_parse(frame, len, &fi)) != NULL) {
		fl.fi = &fi;
		goto parsed;
	}
	if (memchr(frame, '\0', len) != NULL) {
		fail_set(fail, ERR_MALFORMED, "malformed JSON: raw NUL byte");
		return -1;
	}
	if (jc_lint(frame, len, &lcode, &why) == 0)
		lcode = 0;

	if ((tok = json_tokener_new()) == NULL) {
		fail_set(fail, ERR_UNAVAILABLE, "out of memory");
		return -1;
	}
	/* after a lint failure json-c only helps find the msgid */
	flags = JSON_TOKENER_STRICT;
	if (lcode == 0)
		flags |= JSON_TOKENER_VALIDATE_UTF8;
	json_tokener_set_flags(tok, flags);
	root = json_tokener_parse_ex(tok, frame, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (root == NULL && jerr == json_tokener_continue) {
		/* a bare number only ends at the end of input */
		root = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);

	if (jerr != json_tokener_success) {
		json_object_put(root);
		if (lcode != 0)
			fail_set(fail, lcode, "%s", why);
		else if (jerr == json_tokener_error_depth)
			fail_set(fail, ERR_MALFORMED,
			    "malformed JSON: nested too deeply");
		else if (jerr == json_tokener_error_parse_utf8_string)
			fail_set(fail, ERR_BAD_VALUE, "invalid UTF-8");
		else
			fail_set(fail, ERR_MALFORMED, "malformed JSON: %s",
			    json_tokener_error_desc(jerr));
		return -1;
	}
	for (; end < len; end++) {
		if (strchr(" \t\r\n", frame[end]) == NULL) {
			json_object_put(root);
			fail_set(fail, lcode != 0 ? lcode : ERR_MALFORMED,
			    "%s", lcode != 0 ? why :
			    "malformed JSON: more than one value");
			return -1;
		}
	}

 parsed:
	fl.root = root;
	/* answer LOGIN and REG with their own ACK as soon as we know */
	if (json_object_is_type(root, json_type_object) &&
	    obj_get(&fl, "msgid", &v) &&
	    json_object_is_type(v, json_type_int)) {
		m = json_object_get_int64(v);
		if (m >= 1 && m <= INT32_MAX)
			fail->refmsgid = (int)m;
		if (m == MSG_LOGIN)
			fail->reply_msgid = MSG_LOGIN_ACK;
		else if (m == MSG_REG)
			fail->reply_msgid = MSG_REG_ACK;
	}

	if (lcode != 0) {
		fail_set(fail, lcode, "%s", why);
		goto bad;
	}
	if (!json_object_is_type(root, json_type_object)) {
		fail_set(fail, ERR_NOT_OBJECT, "not a JSON object");
		goto bad;
	}
	if (need(get_typed(&fl, "msgid", json_type_int, "an integer", &v,
	    fail), "msgid", fail) == -1)
		goto bad;
	if (!msgid_known(m)) {
		fail_set(fail, ERR_UNKNOWN_MSGID, "unknown msgid %lld",
		    (long long)json_object_get_int64(v));
		goto bad;
	}
	req->msgid = (int)m;
	if (decode_fields(&fl, lim, req, fail) == -1)
		goto bad;
	req->root = root;
	if (fl.fi != NULL && fi.canonical && (req->msgid == MSG_ONE_CHAT ||
	    req->msgid == MSG_GROUP_CHAT) && !fi.has_smid)
		fwd_keep(req, frame, &fi);
	return 0;

 bad:
	json_object_put(root);
	free(req->smids);
	memset(req, 0, sizeof(*req));
	return -1;
}

void
proto_req_clear(struct proto_req *req)
{
	if (req == NULL)
		return;
	json_object_put(req->root);
	free(req->smids);
	fwd_free(req);
	memset(req, 0, sizeof(*req));
}

