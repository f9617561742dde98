/* proto.c - framing, request decoding and replies; pure, no I/O. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "proto.h"

#define JSON_OUT	\
	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

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
	}
	return "unknown error";
}

/* ---- frame splitter ------------------------------------------------ */

void
frame_scanner_init(struct frame_scanner *s)
{
	memset(s, 0, sizeof(*s));
}

static int
is_sep(unsigned char c)
{
	return c == '\0' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

enum frame_status
frame_next(struct frame_scanner *s, const char *data, size_t len, size_t max,
    size_t *off, size_t *vlen, size_t *consumed)
{
	size_t		 start = 0, i;
	unsigned char	 c;

	*off = *vlen = *consumed = 0;
	if (!s->started) {
		while (start < len && is_sep((unsigned char)data[start]))
			start++;
		/* drop separators now: a stream of them must not pile up */
		*consumed = start;
		*off = start;
		if (start == len)
			return FRAME_NEED_MORE;
		c = (unsigned char)data[start];
		if (c != '{' && c != '[' && c != '"') {
			*vlen = 1;
			return FRAME_GARBAGE;
		}
		s->started = 1;
		s->first = (char)c;
		s->pos = 1;
		s->depth = c == '"' ? 0 : 1;
		s->in_string = c == '"';
		s->escape = 0;
	} else if (s->pos > len) {
		/* the caller dropped bytes it was not told to drop */
		frame_scanner_init(s);
		return FRAME_GARBAGE;
	}

	for (i = start + s->pos; ; i++) {
		/*
		 * Every value needs at least one more byte to end, so one
		 * that reached max unfinished would exceed it: stop now.
		 */
		if (s->pos >= max) {
			*vlen = s->pos;
			frame_scanner_init(s);
			return FRAME_TOO_BIG;
		}
		if (i >= len)
			break;
		c = (unsigned char)data[i];
		s->pos++;
		if (s->in_string) {
			if (c == '\0' || c == '\n' || c == '\r') {
				/* give the broken value back so the caller can
				 * answer it and resume after it */
				*vlen = s->pos;
				*consumed = start + s->pos;
				frame_scanner_init(s);
				return FRAME_BAD;
			}
			if (s->escape)
				s->escape = 0;
			else if (c == '\\')
				s->escape = 1;
			else if (c == '"') {
				s->in_string = 0;
				if (s->depth == 0)
					goto done;
			}
		} else if (c == '"')
			s->in_string = 1;
		else if (c == '{' || c == '[') {
			if (s->depth == INT_MAX) {
				*vlen = s->pos;
				frame_scanner_init(s);
				return FRAME_TOO_BIG;
			}
			s->depth++;
		} else if (c == '}' || c == ']') {
			/* "{]" just closes: json-c rejects it later */
			if (--s->depth == 0)
				goto done;
		}
	}
	*vlen = s->pos;
	return FRAME_NEED_MORE;

 done:
	*vlen = s->pos;
	*consumed = start + s->pos;
	frame_scanner_init(s);
	return FRAME_OK;
}

/* ---- requests ------------------------------------------------------ */

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
		return 1;
	}
	return 0;
}

static int
is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

/* The code unit of "\uXXXX" at p[i]; -1 if there is none. */
static long
u_escape(const unsigned char *p, size_t len, size_t i)
{
	long	 v = 0;
	size_t	 k;

	if (len - i < 6 || p[i] != '\\' || p[i + 1] != 'u')
		return -1;
	for (k = i + 2; k < i + 6; k++) {
		if (!is_hex(p[k]))
			return -1;
		v = v * 16 +
		    (p[k] <= '9' ? p[k] - '0' : (p[k] | 0x20) - 'a' + 10);
	}
	return v;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629), 0 if none. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char	 lo = 0x80, hi = 0xbf;
	size_t		 need, k;

	if (p[0] < 0x80)
		return 1;
	if (p[0] < 0xc2)
		return 0;
	if (p[0] < 0xe0)
		need = 2;
	else if (p[0] < 0xf0) {
		need = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;	/* overlong */
		if (p[0] == 0xed)
			hi = 0x9f;	/* UTF-16 surrogates */
	} else if (p[0] < 0xf5) {
		need = 4;
		if (p[0] == 0xf0)
			lo = 0x90;	/* overlong */
		if (p[0] == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else
		return 0;
	if (n < need || p[1] < lo || p[1] > hi)
		return 0;
	for (k = 2; k < need; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	return need;
}

/*
 * The lexer below returns 0, or -1 with *code and *why set; *i is the
 * position in p, moved past the token.
 */
#define LINT_FAIL(c, w)	\
	do { *code = (c); *why = (w); return -1; } while (0)

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
is_word(unsigned char c)
{
	return is_digit(c) || c == '_' ||
	    ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

static int
lint_string(const unsigned char *p, size_t len, size_t *i, int *code,
    const char **why)
{
	size_t	 k = *i + 1, n;
	long	 u;

	for (;;) {
		if (k >= len)
			LINT_FAIL(ERR_MALFORMED, "unterminated string");
		if (p[k] == '"')
			break;
		if (p[k] < 0x20)
			LINT_FAIL(ERR_MALFORMED,
			    "raw control character in a string");
		if (p[k] == '\\' && k + 1 < len && p[k + 1] != 'u') {
			if (p[k + 1] == '\0' ||
			    strchr("\"\\/bfnrt", p[k + 1]) == NULL)
				LINT_FAIL(ERR_MALFORMED,
				    "bad escape in a string");
			k += 2;
		} else if (p[k] == '\\') {
			if ((u = u_escape(p, len, k)) == -1)
				LINT_FAIL(ERR_MALFORMED,
				    "bad \\u escape in a string");
			k += 6;
			if (u >= 0xdc00 && u <= 0xdfff)
				LINT_FAIL(ERR_BAD_VALUE,
				    "lone low surrogate escape");
			if (u >= 0xd800 && u <= 0xdbff) {
				u = u_escape(p, len, k);
				if (u < 0xdc00 || u > 0xdfff)
					LINT_FAIL(ERR_BAD_VALUE,
					    "lone high surrogate escape");
				k += 6;
			}
		} else {
			if ((n = utf8_seq(p + k, len - k)) == 0)
				LINT_FAIL(ERR_BAD_VALUE, "invalid UTF-8");
			k += n;
		}
	}
	*i = k + 1;
	return 0;
}

static int
lint_number(const unsigned char *p, size_t len, size_t *i, int *code,
    const char **why)
{
	size_t		 k = *i, j;
	uint64_t	 mag = 0;
	int		 neg, isint = 1, over = 0;

	if ((neg = p[k] == '-'))
		k++;
	if (k >= len || !is_digit(p[k]))
		LINT_FAIL(ERR_MALFORMED, "bad number");
	if (p[k] == '0')
		k++;
	else
		for (; k < len && is_digit(p[k]); k++) {
			if (mag > (UINT64_MAX - (p[k] - '0')) / 10)
				over = 1;
			mag = mag * 10 + (p[k] - '0');
		}
	if (k < len && p[k] == '.') {
		isint = 0;
		for (j = ++k; k < len && is_digit(p[k]); k++)
			;
		if (k == j)
			LINT_FAIL(ERR_MALFORMED, "bad number");
	}
	if (k < len && (p[k] == 'e' || p[k] == 'E')) {
		isint = 0;
		if (++k < len && (p[k] == '+' || p[k] == '-'))
			k++;
		for (j = k; k < len && is_digit(p[k]); k++)
			;
		if (k == j)
			LINT_FAIL(ERR_MALFORMED, "bad number");
	}
	/* "01", "1.2.3", "1x": json-c takes some of these */
	if (k < len && (is_word(p[k]) || p[k] == '.' || p[k] == '+' ||
	    p[k] == '-'))
		LINT_FAIL(ERR_MALFORMED, "bad number");
	/* json-c would clamp these: the value would change */
	if (isint && (over || (neg && mag > (uint64_t)INT64_MAX + 1)))
		LINT_FAIL(ERR_BAD_VALUE, "integer out of range");
	*i = k;
	return 0;
}

/*
 * json-c's strict mode still takes NaN, Infinity, "1.", "-01",
 * single-quoted keys, raw control characters in strings, overlong and
 * surrogate UTF-8, clamps huge integers and silently replaces lone
 * surrogate escapes.  We forward values to clients that reject all of
 * that, so check the raw text against RFC 8259 here; json-c checks the
 * structure.
 */
static int
json_lint(const char *frame, size_t len, int *code, const char **why)
{
	const unsigned char	*p = (const unsigned char *)frame;
	size_t			 i = 0, j;

	while (i < len) {
		if (strchr(" \t\r\n{}[]:,", p[i]) != NULL && p[i] != '\0')
			i++;
		else if (p[i] == '"') {
			if (lint_string(p, len, &i, code, why) == -1)
				return -1;
		} else if (p[i] == '-' || is_digit(p[i])) {
			if (lint_number(p, len, &i, code, why) == -1)
				return -1;
		} else if (is_word(p[i])) {
			for (j = i; i < len && is_word(p[i]); i++)
				;
			if (!((i - j == 4 && memcmp(p + j, "true", 4) == 0) ||
			    (i - j == 5 && memcmp(p + j, "false", 5) == 0) ||
			    (i - j == 4 && memcmp(p + j, "null", 4) == 0)))
				LINT_FAIL(ERR_MALFORMED, "unexpected literal");
		} else
			LINT_FAIL(ERR_MALFORMED, "unexpected character");
	}
	return 0;
}

static const struct proto_limits no_limits = {
	SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX
};

/* 1 present, 0 absent, -1 wrong type or out of range (fail set). */
static int
get_id(struct json_object *root, const char *key, int32_t *out,
    struct proto_fail *fail)
{
	struct json_object	*v;
	int64_t			 n;

	if (!json_object_object_get_ex(root, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int)) {
		fail_set(fail, ERR_WRONG_TYPE,
		    "field \"%s\": expected an integer", key);
		return -1;
	}
	/* values above INT64_MAX read as INT64_MAX: out of range too */
	n = json_object_get_int64(v);
	if (n < 1 || n > INT32_MAX) {
		fail_set(fail, ERR_BAD_VALUE,
		    "field \"%s\": out of range 1..2147483647", key);
		return -1;
	}
	*out = (int32_t)n;
	return 1;
}

static int
need_id(struct json_object *root, const char *key, int32_t *out,
    struct proto_fail *fail)
{
	int	 rc;

	if ((rc = get_id(root, key, out, fail)) == 0) {
		fail_set(fail, ERR_MISSING_FIELD, "field \"%s\": missing", key);
		return -1;
	}
	return rc == 1 ? 0 : -1;
}

static int
get_str(struct json_object *root, const char *key, struct proto_str *out,
    struct proto_fail *fail)
{
	struct json_object	*v;
	int			 n;

	if (!json_object_object_get_ex(root, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		fail_set(fail, ERR_WRONG_TYPE,
		    "field \"%s\": expected a string", key);
		return -1;
	}
	n = json_object_get_string_len(v);
	out->p = json_object_get_string(v);
	out->len = n > 0 ? (size_t)n : 0;
	return 1;
}

static int
need_str(struct json_object *root, const char *key, struct proto_str *out,
    struct proto_fail *fail)
{
	int	 rc;

	if ((rc = get_str(root, key, out, fail)) == 0) {
		fail_set(fail, ERR_MISSING_FIELD, "field \"%s\": missing", key);
		return -1;
	}
	return rc == 1 ? 0 : -1;
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

static int
decode_fields(struct json_object *root, const struct proto_limits *lim,
    struct proto_req *req, struct proto_fail *fail)
{
	struct json_object	*v;
	struct proto_str	 s;
	int64_t			 n;
	int			 rc;

	/* a ping may carry anything */
	if (req->msgid == MSG_PING)
		return 0;

	if ((rc = get_id(root, "id", &req->id, fail)) == -1)
		return -1;
	req->has_id = rc;
	if (json_object_object_get_ex(root, "cmid", &v)) {
		if (!json_object_is_type(v, json_type_int)) {
			fail_set(fail, ERR_WRONG_TYPE,
			    "field \"cmid\": expected an integer");
			return -1;
		}
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
		if ((rc = get_str(root, "name", &s, fail)) == -1)
			return -1;
		/* by id when given; the name then is only type-checked */
		if (!req->has_id) {
			if (rc == 0) {
				fail_set(fail, ERR_MISSING_FIELD,
				    "field \"id\" or \"name\": missing");
				return -1;
			}
			if (check_name("name", &s, lim->max_name_bytes,
			    fail) == -1)
				return -1;
			req->name = s;
		}
		if (need_str(root, "password", &req->password, fail) == -1 ||
		    check_len("password", &req->password,
		    lim->max_password_bytes, fail) == -1)
			return -1;
		break;
	case MSG_REG:
		if (need_str(root, "name", &req->name, fail) == -1 ||
		    check_name("name", &req->name, lim->max_name_bytes,
		    fail) == -1 ||
		    need_str(root, "password", &req->password, fail) == -1 ||
		    check_len("password", &req->password,
		    lim->max_password_bytes, fail) == -1)
			return -1;
		break;
	case MSG_LOGINOUT:
		break;
	case MSG_ONE_CHAT:
	case MSG_GROUP_CHAT:
		if (req->msgid == MSG_ONE_CHAT)
			rc = need_id(root, "toid", &req->toid, fail);
		else
			rc = need_id(root, "groupid", &req->groupid, fail);
		if (rc == -1 ||
		    need_str(root, "msg", &req->msg, fail) == -1 ||
		    check_len("msg", &req->msg, lim->max_message_bytes,
		    fail) == -1 ||
		    get_str(root, "name", &s, fail) == -1)
			return -1;
		break;
	case MSG_ADD_FRIEND:
		if (need_id(root, "friendid", &req->friendid, fail) == -1)
			return -1;
		break;
	case MSG_CREATE_GROUP:
		if (need_str(root, "groupname", &req->groupname, fail) == -1 ||
		    check_name("groupname", &req->groupname,
		    lim->max_name_bytes, fail) == -1)
			return -1;
		req->groupdesc.p = "";
		req->groupdesc.len = 0;
		if (get_str(root, "groupdesc", &req->groupdesc, fail) == -1)
			return -1;
		if (req->groupdesc.len > lim->max_groupdesc_bytes) {
			fail_set(fail, ERR_TOO_LONG,
			    "field \"groupdesc\": longer than %zu bytes",
			    lim->max_groupdesc_bytes);
			return -1;
		}
		break;
	case MSG_ADD_GROUP:
		if (need_id(root, "groupid", &req->groupid, fail) == -1)
			return -1;
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

	memset(req, 0, sizeof(*req));
	memset(fail, 0, sizeof(*fail));
	fail->reply_msgid = MSG_ERROR;
	if (lim == NULL)
		lim = &no_limits;

	if (len == 0 || len > INT_MAX) {
		fail_set(fail, ERR_MALFORMED, "malformed JSON: %s",
		    len == 0 ? "empty request" : "request too big");
		return -1;
	}
	if (memchr(frame, '\0', len) != NULL) {
		fail_set(fail, ERR_MALFORMED, "malformed JSON: raw NUL byte");
		return -1;
	}
	if (json_lint(frame, len, &lcode, &why) == 0)
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

	/* answer LOGIN and REG with their own ACK as soon as we know */
	if (json_object_is_type(root, json_type_object) &&
	    json_object_object_get_ex(root, "msgid", &v) &&
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
	if (!json_object_object_get_ex(root, "msgid", &v)) {
		fail_set(fail, ERR_MISSING_FIELD, "field \"msgid\": missing");
		goto bad;
	}
	if (!json_object_is_type(v, json_type_int)) {
		fail_set(fail, ERR_WRONG_TYPE,
		    "field \"msgid\": expected an integer");
		goto bad;
	}
	if (!msgid_known(m)) {
		fail_set(fail, ERR_UNKNOWN_MSGID, "unknown msgid %lld",
		    (long long)json_object_get_int64(v));
		goto bad;
	}
	req->msgid = (int)m;
	if (decode_fields(root, lim, req, fail) == -1)
		goto bad;
	req->root = root;
	return 0;

 bad:
	json_object_put(root);
	memset(req, 0, sizeof(*req));
	return -1;
}

void
proto_req_clear(struct proto_req *req)
{
	if (req == NULL)
		return;
	json_object_put(req->root);
	memset(req, 0, sizeof(*req));
}

/* ---- replies ------------------------------------------------------- */

static struct json_object *
new_str(const char *p, size_t len)
{
	if (len > INT_MAX)
		return NULL;
	return json_object_new_string_len(len == 0 ? "" : p, (int)len);
}

/* Adds v to o, taking ownership of v either way. */
static int
obj_add(struct json_object *o, const char *key, struct json_object *v)
{
	if (o == NULL || v == NULL || json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static int
arr_add(struct json_object *a, struct json_object *v)
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
		rc = arr_add(a, new_str(s, n));
	json_object_put(o);
	return rc;
}

/* Appends o's text (and "\n" if nl) all or nothing; puts o. */
static int
put_json(struct buf *out, struct json_object *o, int nl)
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

int
proto_put_error(struct buf *out, int reply_msgid, int code, int refmsgid,
    const char *text)
{
	struct json_object	*o;

	if (text == NULL)
		text = proto_strerror(code);
	o = json_object_new_object();
	if (obj_add(o, "msgid", json_object_new_int(reply_msgid)) == -1 ||
	    obj_add(o, "errno", json_object_new_int(code)) == -1 ||
	    obj_add(o, "errmsg", new_str(text, strlen(text))) == -1 ||
	    (refmsgid > 0 && reply_msgid == MSG_ERROR &&
	    obj_add(o, "refmsgid", json_object_new_int(refmsgid)) == -1)) {
		json_object_put(o);
		return -1;
	}
	return put_json(out, o, 1);
}

int
proto_put_reg_ack(struct buf *out, int32_t id)
{
	struct json_object	*o;

	o = json_object_new_object();
	if (obj_add(o, "msgid", json_object_new_int(MSG_REG_ACK)) == -1 ||
	    obj_add(o, "errno", json_object_new_int(ERR_OK)) == -1 ||
	    obj_add(o, "id", json_object_new_int(id)) == -1) {
		json_object_put(o);
		return -1;
	}
	return put_json(out, o, 1);
}

int
proto_put_pong(struct buf *out, const struct proto_req *ping)
{
	struct json_object	*o, *seq;

	o = json_object_new_object();
	if (obj_add(o, "msgid", json_object_new_int(MSG_PONG)) == -1)
		goto bad;
	/* shared, not copied: a double keeps its original text */
	if (ping != NULL && ping->root != NULL &&
	    json_object_is_type(ping->root, json_type_object) &&
	    json_object_object_get_ex(ping->root, "seq", &seq) &&
	    json_object_object_add(o, "seq", json_object_get(seq)) != 0) {
		json_object_put(seq);
		goto bad;
	}
	return put_json(out, o, 1);

 bad:
	json_object_put(o);
	return -1;
}

int
proto_put_chat_ack(struct buf *out, int64_t cmid, int64_t smid)
{
	struct json_object	*o;

	o = json_object_new_object();
	if (obj_add(o, "msgid", json_object_new_int(MSG_CHAT_ACK)) == -1 ||
	    obj_add(o, "cmid", json_object_new_int64(cmid)) == -1 ||
	    obj_add(o, "smid", json_object_new_int64(smid)) == -1) {
		json_object_put(o);
		return -1;
	}
	return put_json(out, o, 1);
}

/* {"id","name","state"[,"role"]} */
static struct json_object *
user_obj(const struct proto_user *u, int member)
{
	struct json_object	*o;

	o = json_object_new_object();
	if (obj_add(o, "id", json_object_new_int(u->id)) == -1 ||
	    obj_add(o, "name", new_str(u->name.p, u->name.len)) == -1 ||
	    obj_add(o, "state", json_object_new_string(u->online ?
	    "online" : "offline")) == -1 ||
	    (member && obj_add(o, "role", json_object_new_string(u->creator ?
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
	if (obj_add(o, "id", json_object_new_int(g->id)) == -1 ||
	    obj_add(o, "groupname", new_str(g->name.p, g->name.len)) == -1 ||
	    obj_add(o, "groupdesc", new_str(g->desc.p, g->desc.len)) == -1 ||
	    obj_add(o, "users", users = json_object_new_array()) == -1)
		goto bad;
	/* "users" is there even when empty: the seed client reads it blindly */
	for (i = 0; i < g->nmembers; i++)
		if (arr_add_text(users, user_obj(&g->members[i], 1)) == -1)
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
	if (obj_add(o, "msgid", json_object_new_int(MSG_LOGIN_ACK)) == -1 ||
	    obj_add(o, "errno", json_object_new_int(ERR_OK)) == -1 ||
	    obj_add(o, "id", json_object_new_int(l->id)) == -1 ||
	    obj_add(o, "name", new_str(l->name.p, l->name.len)) == -1)
		goto bad;
	/* each list is attached first, so o owns it while it fills */
	if (l->noffline > 0) {
		if (obj_add(o, "offlinemsg", a = json_object_new_array()) == -1)
			goto bad;
		/* stored as the forwarded object's text: pass it as is */
		for (i = 0; i < l->noffline; i++)
			if (arr_add(a, new_str(l->offline[i].p,
			    l->offline[i].len)) == -1)
				goto bad;
	}
	if (l->nfriends > 0) {
		if (obj_add(o, "friends", a = json_object_new_array()) == -1)
			goto bad;
		for (i = 0; i < l->nfriends; i++)
			if (arr_add_text(a, user_obj(&l->friends[i], 0)) == -1)
				goto bad;
	}
	if (l->ngroups > 0) {
		if (obj_add(o, "groups", a = json_object_new_array()) == -1)
			goto bad;
		for (i = 0; i < l->ngroups; i++)
			if (arr_add_text(a, group_obj(&l->groups[i])) == -1)
				goto bad;
	}
	return put_json(out, o, 1);

 bad:
	json_object_put(o);
	return -1;
}

int
proto_put_forward(struct buf *out, const struct proto_req *req,
    int32_t from_id, const char *from_name, size_t from_name_len)
{
	struct json_object	*o = NULL;

	if (req == NULL || req->root == NULL)
		return -1;
	/* a copy: req's strings point into root and must stay valid */
	if (json_object_deep_copy(req->root, &o, NULL) != 0 || o == NULL)
		return -1;
	if (obj_add(o, "id", json_object_new_int(from_id)) == -1 ||
	    obj_add(o, "name", new_str(from_name, from_name_len)) == -1) {
		json_object_put(o);
		return -1;
	}
	return put_json(out, o, 0);
}
