/*
 * check_proto_dec.c - check_proto's "decode" case: requests accepted,
 * and every kind refused with its error (helpers in check_proto.h).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>
#include <json-c/json.h>

#include "buf.h"
#include "proto.h"
#include "check_proto.h"

START_TEST(dec_login_by_name)
{
	struct proto_req	 r;
	struct proto_fail	 f;

	ck_assert_int_eq(dec(S("{\"msgid\":1,\"name\":\"alice\","
	    "\"password\":\"pw\"}"), &r, &f), 0);
	ck_assert_int_eq(r.has_id, 0);
	ck_assert(str_is(&r.name, S("alice")));
	proto_req_clear(&r);
	/* both: the id wins, the name is only type-checked */
	ck_assert_int_eq(dec(S("{\"msgid\":1,\"id\":7,\"name\":\"\","
	    "\"password\":\"pw\"}"), &r, &f), 0);
	ck_assert_int_eq(r.has_id, 1);
	ck_assert_int_eq(r.id, 7);
	ck_assert_uint_eq(r.name.len, 0);
	proto_req_clear(&r);
}
END_TEST

START_TEST(dec_ranges_ok)
{
	struct proto_req	 r;
	struct proto_fail	 f;

	ck_assert_int_eq(dec(S("{\"msgid\":7,\"id\":1,\"friendid\":2147483647,"
	    "\"cmid\":0}"), &r, &f), 0);
	ck_assert_int_eq(r.id, 1);
	ck_assert_int_eq(r.friendid, INT32_MAX);
	ck_assert_int_eq(r.has_cmid, 1);
	ck_assert_int_eq(r.cmid, 0);
	proto_req_clear(&r);
	ck_assert_int_eq(dec(S("{\"msgid\":6,\"toid\":2,\"msg\":\"x\","
	    "\"cmid\":9223372036854775807}"), &r, &f), 0);
	ck_assert(r.cmid == INT64_MAX);
	ck_assert_int_eq(r.has_id, 0);
	proto_req_clear(&r);
}
END_TEST

START_TEST(dec_text)
{
	struct proto_req	 r;
	struct proto_fail	 f;

	/* a surrogate pair, raw 4-byte UTF-8, \u0000, exactly 32 bytes */
	ck_assert_int_eq(dec(S("{\"msgid\":6,\"toid\":2,\"msg\":"
	    "\"\\ud83d\\ude00\xf0\x9f\x98\x80\\u0000\\\"'%s;--\\/\\b\\f\\t\\r\\n"
	    "\xc3\xa9\x7f\xef\xbf\xbf\xf4\x8f\xbf\xbf\"}"), &r, &f), 0);
	ck_assert(str_is(&r.msg, S("\xf0\x9f\x98\x80\xf0\x9f\x98\x80\0\"'%s;--"
	    "/\b\f\t\r\n\xc3\xa9\x7f\xef\xbf\xbf\xf4\x8f\xbf\xbf")));
	ck_assert_uint_eq(r.msg.len, 32);
	proto_req_clear(&r);
	/* descriptions may hold control characters, names may not */
	ck_assert_int_eq(dec(S("{\"msgid\":8,\"groupname\":\"g\\u00e9\","
	    "\"groupdesc\":\"a\\u0000\\tb\"}"), &r, &f), 0);
	ck_assert(str_is(&r.groupname, S("g\xc3\xa9")));
	ck_assert(str_is(&r.groupdesc, S("a\0\tb")));
	proto_req_clear(&r);
	ck_assert_int_eq(dec(S("{\"msgid\":8,\"groupname\":\"g\"}"), &r, &f),
	    0);
	ck_assert_ptr_nonnull(r.groupdesc.p);
	ck_assert_uint_eq(r.groupdesc.len, 0);
	proto_req_clear(&r);
}
END_TEST

START_TEST(dec_misc_ok)
{
	struct proto_req	 r;
	struct proto_fail	 f;

	/* a ping may carry anything */
	ck_assert_int_eq(dec(S("{\"msgid\":101,\"id\":\"x\",\"cmid\":-1,"
	    "\"seq\":[1,{\"a\":null}]}"), &r, &f), 0);
	ck_assert_int_eq(r.msgid, MSG_PING);
	proto_req_clear(&r);
	/* blanks around, pretty-printed */
	ck_assert_int_eq(dec(S(" \r\n{\n  \"msgid\" : 3 ,\n  \"id\" : 4\n}"
	    "\n\t"), &r, &f), 0);
	ck_assert_int_eq(r.id, 4);
	proto_req_clear(&r);
	/* unknown fields and other JSON types are left alone */
	ck_assert_int_eq(dec(S("{\"msgid\":10,\"groupid\":3,\"msg\":\"m\","
	    "\"x\":[true,false,null,-0.5e-3,{}],\"name\":\"n\"}"), &r, &f), 0);
	proto_req_clear(&r);
	/* no limits */
	ck_assert_int_eq(proto_decode(S("{\"msgid\":4,\"name\":"
	    "\"a very long name indeed, longer than sixteen\","
	    "\"password\":\"p\"}"), NULL, &r, &f), 0);
	proto_req_clear(&r);
}
END_TEST

/* ---- proto_decode: every failure ----------------------------------- */

struct bad_case {
	const char	*json;
	size_t		 len;		/* 0: strlen */
	int		 code;
	int		 reply;
	int		 ref;
	const char	*text;		/* in fail.text, or NULL */
};

#define LOGIN_ACK	MSG_LOGIN_ACK
#define REG_ACK		MSG_REG_ACK
#define ERROR		MSG_ERROR

static const struct bad_case bad_cases[] = {
	/* not JSON, not one object */
	{ "", 0, ERR_MALFORMED, ERROR, 0, "empty" },
	{ "{\"msgid\":3", 0, ERR_MALFORMED, ERROR, 0, "malformed" },
	{ "{\"msgid\":3,}", 0, ERR_MALFORMED, ERROR, 0, NULL },
	{ "{\"msgid\" 3}", 0, ERR_MALFORMED, ERROR, 0, NULL },
	{ "{msgid:3}", 0, ERR_MALFORMED, ERROR, 0, NULL },
	{ "{'msgid':3}", 0, ERR_MALFORMED, ERROR, 3, NULL },
	{ "{\"msgid\":3}{\"msgid\":3}", 0, ERR_MALFORMED, ERROR, 0, NULL },
	{ "{\"msgid\":3} x", 0, ERR_MALFORMED, ERROR, 0, NULL },
	{ "{]", 0, ERR_MALFORMED, ERROR, 0, NULL },
	{ "{\"msgid\":3\0}", 13, ERR_MALFORMED, ERROR, 0, "NUL" },
	{ "[1,2]", 0, ERR_NOT_OBJECT, ERROR, 0, "object" },
	{ "\"str\"", 0, ERR_NOT_OBJECT, ERROR, 0, NULL },
	{ "5", 0, ERR_NOT_OBJECT, ERROR, 0, NULL },
	{ "null", 0, ERR_NOT_OBJECT, ERROR, 0, NULL },
	{ "true", 0, ERR_NOT_OBJECT, ERROR, 0, NULL },
	{ "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]"
	  "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", 0, ERR_MALFORMED, ERROR, 0, "deep" },
	/* json-c takes these even in strict mode; we do not */
	{ "{\"msgid\":3,\"x\":NaN}", 0, ERR_MALFORMED, ERROR, 3, NULL },
	{ "{\"msgid\":3,\"x\":Infinity}", 0, ERR_MALFORMED, ERROR, 3, NULL },
	{ "{\"msgid\":3,\"x\":-Infinity}", 0, ERR_MALFORMED, ERROR, 3, NULL },
	{ "{\"msgid\":3,\"x\":1.}", 0, ERR_MALFORMED, ERROR, 3, "number" },
	{ "{\"msgid\":3,\"x\":-01}", 0, ERR_MALFORMED, ERROR, 3, "number" },
	{ "{\"msgid\":3,'x':1}", 0, ERR_MALFORMED, ERROR, 3, NULL },
	{ "{\"msgid\":3,\"x\":\"a\tb\"}", 0, ERR_MALFORMED, ERROR, 3, "control" },
	{ "{\"msgid\":1,\"id\":1,\"password\":\"a\x01\"}", 0, ERR_MALFORMED,
	  LOGIN_ACK, 1, "control" },
	{ "{\"msgid\":3,\"x\":\"\\x\"}", 0, ERR_MALFORMED, ERROR, 0, "escape" },
	{ "{\"msgid\":3,\"x\":\"\\u12g4\"}", 0, ERR_MALFORMED, ERROR, 0, NULL },
	{ "{\"msgid\":3,\"x\":\"\\u12\"}", 0, ERR_MALFORMED, ERROR, 0, NULL },
	/* integers json-c would clamp */
	{ "{\"msgid\":3,\"x\":18446744073709551616}", 0, ERR_BAD_VALUE, ERROR, 3,
	  "range" },
	{ "{\"msgid\":3,\"x\":-9223372036854775809}", 0, ERR_BAD_VALUE, ERROR, 3,
	  "range" },
	/* msgid */
	{ "{}", 0, ERR_MISSING_FIELD, ERROR, 0, "field \"msgid\": missing" },
	{ "{\"id\":1,\"password\":\"x\"}", 0, ERR_MISSING_FIELD, ERROR, 0, NULL },
	{ "{\"msgid\":\"1\"}", 0, ERR_WRONG_TYPE, ERROR, 0,
	  "field \"msgid\": expected an integer" },
	{ "{\"msgid\":1.0}", 0, ERR_WRONG_TYPE, ERROR, 0, NULL },
	{ "{\"msgid\":null}", 0, ERR_WRONG_TYPE, ERROR, 0, NULL },
	{ "{\"msgid\":[1]}", 0, ERR_WRONG_TYPE, ERROR, 0, NULL },
	{ "{\"msgid\":2}", 0, ERR_UNKNOWN_MSGID, ERROR, 2, "unknown msgid 2" },
	{ "{\"msgid\":5}", 0, ERR_UNKNOWN_MSGID, ERROR, 5, NULL },
	{ "{\"msgid\":0}", 0, ERR_UNKNOWN_MSGID, ERROR, 0, NULL },
	{ "{\"msgid\":-1}", 0, ERR_UNKNOWN_MSGID, ERROR, 0, NULL },
	{ "{\"msgid\":11}", 0, ERR_UNKNOWN_MSGID, ERROR, 11, NULL },
	{ "{\"msgid\":100}", 0, ERR_UNKNOWN_MSGID, ERROR, 100, NULL },
	{ "{\"msgid\":102}", 0, ERR_UNKNOWN_MSGID, ERROR, 102, NULL },
	{ "{\"msgid\":103}", 0, ERR_UNKNOWN_MSGID, ERROR, 103, NULL },
	{ "{\"msgid\":4294967297}", 0, ERR_UNKNOWN_MSGID, ERROR, 0, NULL },
	/* LOGIN */
	{ "{\"msgid\":1,\"id\":13}", 0, ERR_MISSING_FIELD, LOGIN_ACK, 1,
	  "field \"password\": missing" },
	{ "{\"msgid\":1,\"password\":\"x\"}", 0, ERR_MISSING_FIELD, LOGIN_ACK, 1,
	  "\"id\"" },
	{ "{\"msgid\":1,\"id\":\"5\",\"password\":\"x\"}", 0, ERR_WRONG_TYPE,
	  LOGIN_ACK, 1, "field \"id\": expected an integer" },
	{ "{\"msgid\":1,\"id\":0,\"password\":\"x\"}", 0, ERR_BAD_VALUE,
	  LOGIN_ACK, 1, "field \"id\": out of range" },
	{ "{\"msgid\":1,\"id\":-1,\"password\":\"x\"}", 0, ERR_BAD_VALUE,
	  LOGIN_ACK, 1, NULL },
	{ "{\"msgid\":1,\"id\":2147483648,\"password\":\"x\"}", 0, ERR_BAD_VALUE,
	  LOGIN_ACK, 1, NULL },
	{ "{\"msgid\":1,\"id\":9223372036854775808,\"password\":\"x\"}", 0,
	  ERR_BAD_VALUE, LOGIN_ACK, 1, NULL },
	{ "{\"msgid\":1,\"id\":1e3,\"password\":\"x\"}", 0, ERR_WRONG_TYPE,
	  LOGIN_ACK, 1, NULL },
	{ "{\"msgid\":1,\"id\":13.0,\"password\":\"x\"}", 0, ERR_WRONG_TYPE,
	  LOGIN_ACK, 1, NULL },
	{ "{\"msgid\":1,\"id\":true,\"password\":\"x\"}", 0, ERR_WRONG_TYPE,
	  LOGIN_ACK, 1, NULL },
	{ "{\"msgid\":1,\"id\":null,\"password\":\"x\"}", 0, ERR_WRONG_TYPE,
	  LOGIN_ACK, 1, NULL },
	{ "{\"msgid\":1,\"id\":1,\"password\":123456}", 0, ERR_WRONG_TYPE,
	  LOGIN_ACK, 1, "field \"password\": expected a string" },
	{ "{\"msgid\":1,\"id\":1,\"password\":\"\"}", 0, ERR_BAD_VALUE,
	  LOGIN_ACK, 1, "field \"password\": empty" },
	{ "{\"msgid\":1,\"id\":1,\"password\":\"123456789012345678901\"}", 0,
	  ERR_TOO_LONG, LOGIN_ACK, 1, "field \"password\": longer than 20" },
	{ "{\"msgid\":1,\"id\":1,\"name\":5,\"password\":\"x\"}", 0,
	  ERR_WRONG_TYPE, LOGIN_ACK, 1, "\"name\"" },
	{ "{\"msgid\":1,\"name\":\"\",\"password\":\"x\"}", 0, ERR_BAD_VALUE,
	  LOGIN_ACK, 1, "field \"name\": empty" },
	{ "{\"msgid\":1,\"name\":\"a\\u0001\",\"password\":\"x\"}", 0,
	  ERR_BAD_VALUE, LOGIN_ACK, 1, "field \"name\": control" },
	{ "{\"msgid\":1,\"name\":\"12345678901234567\",\"password\":\"x\"}", 0,
	  ERR_TOO_LONG, LOGIN_ACK, 1, NULL },
	{ "{\"msgid\":1,\"id\":1,\"password\":\"x\",\"cmid\":-1}", 0,
	  ERR_BAD_VALUE, LOGIN_ACK, 1, "cmid" },
	/* REG */
	{ "{\"msgid\":4,\"password\":\"x\"}", 0, ERR_MISSING_FIELD, REG_ACK, 4,
	  "field \"name\": missing" },
	{ "{\"msgid\":4,\"name\":\"bob\"}", 0, ERR_MISSING_FIELD, REG_ACK, 4,
	  "field \"password\": missing" },
	{ "{\"msgid\":4,\"name\":[\"bob\"],\"password\":\"x\"}", 0,
	  ERR_WRONG_TYPE, REG_ACK, 4, NULL },
	{ "{\"msgid\":4,\"name\":\"\",\"password\":\"x\"}", 0, ERR_BAD_VALUE,
	  REG_ACK, 4, NULL },
	{ "{\"msgid\":4,\"name\":\"a\\u007f\",\"password\":\"x\"}", 0,
	  ERR_BAD_VALUE, REG_ACK, 4, "control" },
	{ "{\"msgid\":4,\"name\":\"a\x7f\",\"password\":\"x\"}", 0,
	  ERR_BAD_VALUE, REG_ACK, 4, "control" },
	{ "{\"msgid\":4,\"name\":\"a\\tb\",\"password\":\"x\"}", 0,
	  ERR_BAD_VALUE, REG_ACK, 4, "control" },
	{ "{\"msgid\":4,\"name\":\"a\\u0000\",\"password\":\"x\"}", 0,
	  ERR_BAD_VALUE, REG_ACK, 4, "control" },
	{ "{\"msgid\":4,\"name\":\"12345678901234567\",\"password\":\"x\"}", 0,
	  ERR_TOO_LONG, REG_ACK, 4, "field \"name\": longer than 16" },
	{ "{\"msgid\":4,\"name\":\"bob\",\"password\":false}", 0,
	  ERR_WRONG_TYPE, REG_ACK, 4, NULL },
	{ "{\"msgid\":4,\"name\":\"bob\",\"password\":\"\"}", 0,
	  ERR_BAD_VALUE, REG_ACK, 4, NULL },
	{ "{\"msgid\":4,\"name\":\"bob\",\"password\":\"x\",\"id\":\"1\"}", 0,
	  ERR_WRONG_TYPE, REG_ACK, 4, NULL },
	/* LOGINOUT */
	{ "{\"msgid\":3,\"id\":0}", 0, ERR_BAD_VALUE, ERROR, 3, NULL },
	{ "{\"msgid\":3,\"cmid\":\"1\"}", 0, ERR_WRONG_TYPE, ERROR, 3, "cmid" },
	{ "{\"msgid\":3,\"cmid\":1.5}", 0, ERR_WRONG_TYPE, ERROR, 3, "cmid" },
	{ "{\"msgid\":3,\"cmid\":9223372036854775808}", 0, ERR_BAD_VALUE,
	  ERROR, 3, "cmid" },
	/* ONE_CHAT */
	{ "{\"msgid\":6,\"msg\":\"x\"}", 0, ERR_MISSING_FIELD, ERROR, 6,
	  "field \"toid\": missing" },
	{ "{\"msgid\":6,\"toid\":\"15\",\"msg\":\"x\"}", 0, ERR_WRONG_TYPE,
	  ERROR, 6, "field \"toid\": expected an integer" },
	{ "{\"msgid\":6,\"toid\":0,\"msg\":\"x\"}", 0, ERR_BAD_VALUE, ERROR, 6,
	  "field \"toid\": out of range" },
	{ "{\"msgid\":6,\"toid\":-1,\"msg\":\"x\"}", 0, ERR_BAD_VALUE, ERROR, 6,
	  NULL },
	{ "{\"msgid\":6,\"toid\":2147483648,\"msg\":\"x\"}", 0, ERR_BAD_VALUE,
	  ERROR, 6, NULL },
	{ "{\"msgid\":6,\"toid\":1e3,\"msg\":\"x\"}", 0, ERR_WRONG_TYPE, ERROR, 6,
	  NULL },
	{ "{\"msgid\":6,\"toid\":2}", 0, ERR_MISSING_FIELD, ERROR, 6,
	  "field \"msg\": missing" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":5}", 0, ERR_WRONG_TYPE, ERROR, 6,
	  "field \"msg\": expected a string" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":{}}", 0, ERR_WRONG_TYPE, ERROR, 6,
	  NULL },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\"}", 0, ERR_BAD_VALUE, ERROR, 6,
	  "field \"msg\": empty" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"123456789012345678901234567890123\"}",
	  0, ERR_TOO_LONG, ERROR, 6, "field \"msg\": longer than 32" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"x\",\"name\":13}", 0, ERR_WRONG_TYPE,
	  ERROR, 6, "field \"name\": expected a string" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"x\",\"id\":\"13\"}", 0, ERR_WRONG_TYPE,
	  ERROR, 6, "field \"id\"" },
	/* ADD_FRIEND */
	{ "{\"msgid\":7,\"id\":1}", 0, ERR_MISSING_FIELD, ERROR, 7,
	  "field \"friendid\": missing" },
	{ "{\"msgid\":7,\"friendid\":-1}", 0, ERR_BAD_VALUE, ERROR, 7, NULL },
	{ "{\"msgid\":7,\"friendid\":\"5\"}", 0, ERR_WRONG_TYPE, ERROR, 7, NULL },
	/* CREATE_GROUP */
	{ "{\"msgid\":8,\"groupdesc\":\"d\"}", 0, ERR_MISSING_FIELD, ERROR, 8,
	  "field \"groupname\": missing" },
	{ "{\"msgid\":8,\"groupname\":\"\"}", 0, ERR_BAD_VALUE, ERROR, 8, NULL },
	{ "{\"msgid\":8,\"groupname\":\"a\\nb\"}", 0, ERR_BAD_VALUE, ERROR, 8,
	  "control" },
	{ "{\"msgid\":8,\"groupname\":\"12345678901234567\"}", 0, ERR_TOO_LONG,
	  ERROR, 8, NULL },
	{ "{\"msgid\":8,\"groupname\":1}", 0, ERR_WRONG_TYPE, ERROR, 8, NULL },
	{ "{\"msgid\":8,\"groupname\":\"g\",\"groupdesc\":null}", 0,
	  ERR_WRONG_TYPE, ERROR, 8, "field \"groupdesc\": expected a string" },
	{ "{\"msgid\":8,\"groupname\":\"g\",\"groupdesc\":"
	  "\"1234567890123456789012345\"}", 0, ERR_TOO_LONG, ERROR, 8,
	  "field \"groupdesc\": longer than 24" },
	/* ADD_GROUP */
	{ "{\"msgid\":9}", 0, ERR_MISSING_FIELD, ERROR, 9,
	  "field \"groupid\": missing" },
	{ "{\"msgid\":9,\"groupid\":\"1\"}", 0, ERR_WRONG_TYPE, ERROR, 9, NULL },
	{ "{\"msgid\":9,\"groupid\":0}", 0, ERR_BAD_VALUE, ERROR, 9, NULL },
	/* GROUP_CHAT */
	{ "{\"msgid\":10,\"msg\":\"x\"}", 0, ERR_MISSING_FIELD, ERROR, 10,
	  "field \"groupid\": missing" },
	{ "{\"msgid\":10,\"groupid\":1}", 0, ERR_MISSING_FIELD, ERROR, 10,
	  "field \"msg\": missing" },
	{ "{\"msgid\":10,\"groupid\":1,\"msg\":\"\"}", 0, ERR_BAD_VALUE, ERROR,
	  10, NULL },
	{ "{\"msgid\":10,\"groupid\":1,\"msg\":\"x\",\"name\":null}", 0,
	  ERR_WRONG_TYPE, ERROR, 10, NULL },
	/* invalid UTF-8: answered by msgid all the same */
	{ "{\"msgid\":1,\"id\":1,\"password\":\"\xff\"}", 0, ERR_BAD_VALUE,
	  LOGIN_ACK, 1, "UTF-8" },
	{ "{\"msgid\":4,\"name\":\"\xc3\",\"password\":\"x\"}", 0, ERR_BAD_VALUE,
	  REG_ACK, 4, "UTF-8" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\xc0\x80\"}", 0, ERR_BAD_VALUE,
	  ERROR, 6, "UTF-8" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\xe0\x80\xaf\"}", 0, ERR_BAD_VALUE,
	  ERROR, 6, "UTF-8" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\xed\xa0\x80\"}", 0, ERR_BAD_VALUE,
	  ERROR, 6, "UTF-8" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\xf4\x90\x80\x80\"}", 0,
	  ERR_BAD_VALUE, ERROR, 6, "UTF-8" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\xf0\x9f\x98\"}", 0, ERR_BAD_VALUE,
	  ERROR, 6, "UTF-8" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\x80\"}", 0, ERR_BAD_VALUE,
	  ERROR, 6, "UTF-8" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\xf8\x88\x80\x80\x80\"}", 0,
	  ERR_BAD_VALUE, ERROR, 6, "UTF-8" },
	{ "{\"msgid\":3,\"\xfe\":1}", 0, ERR_BAD_VALUE, ERROR, 3, "UTF-8" },
	/* lone surrogates: json-c would quietly replace them */
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\\ud800\"}", 0, ERR_BAD_VALUE,
	  ERROR, 6, "high surrogate" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"a\\uDBFFb\"}", 0, ERR_BAD_VALUE,
	  ERROR, 6, "high surrogate" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\\udc00\"}", 0, ERR_BAD_VALUE,
	  ERROR, 6, "low surrogate" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\\uDFFF\\ud800\"}", 0,
	  ERR_BAD_VALUE, ERROR, 6, "low surrogate" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\\ud800\\u0041\"}", 0,
	  ERR_BAD_VALUE, ERROR, 6, "high surrogate" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\\ud800\\ud800\"}", 0,
	  ERR_BAD_VALUE, ERROR, 6, "high surrogate" },
	{ "{\"msgid\":6,\"toid\":2,\"msg\":\"\\ud83d\\n\\ude00\"}", 0,
	  ERR_BAD_VALUE, ERROR, 6, "high surrogate" },
	{ "{\"msgid\":1,\"id\":1,\"password\":\"\\ud83d\"}", 0, ERR_BAD_VALUE,
	  LOGIN_ACK, 1, "surrogate" },
	{ "{\"\\ud800\":1,\"msgid\":3}", 0, ERR_BAD_VALUE, ERROR, 3,
	  "surrogate" },
	{ "{\"msgid\":101,\"seq\":\"\\udc00\"}", 0, ERR_BAD_VALUE, ERROR, 101,
	  "surrogate" },
};

START_TEST(dec_bad)
{
	const struct bad_case	*c = &bad_cases[_i];
	struct proto_req	 r;
	struct proto_fail	 f;
	size_t			 len = c->len ? c->len : strlen(c->json);

	memset(&r, 0xa5, sizeof(r));
	ck_assert_int_eq(dec(c->json, len, &r, &f), -1);
	ck_assert_msg(f.code == c->code, "%s: code %d (%s), want %d", c->json,
	    f.code, f.text, c->code);
	ck_assert_msg(f.reply_msgid == c->reply, "%s: reply %d, want %d",
	    c->json, f.reply_msgid, c->reply);
	ck_assert_msg(f.refmsgid == c->ref, "%s: ref %d, want %d", c->json,
	    f.refmsgid, c->ref);
	ck_assert_msg(f.text[0] != '\0', "%s: no text", c->json);
	if (c->text != NULL)
		ck_assert_msg(strstr(f.text, c->text) != NULL,
		    "%s: text \"%s\" lacks \"%s\"", c->json, f.text, c->text);
	/* req is cleared on failure */
	ck_assert_ptr_null(r.root);
	ck_assert_int_eq(r.msgid, 0);
	ck_assert_uint_eq(r.msg.len, 0);
}
END_TEST

/* Any prefix of a good request fails cleanly. */
START_TEST(dec_truncated)
{
	static const char	 in[] = "{\"groupid\":1,\"id\":13,\"msg\":"
	    "\"h\\u00e9\\ud83d\\ude00\",\"msgid\":10,\"x\":[1.5e3,true]}";
	struct proto_req	 r;
	struct proto_fail	 f;
	size_t			 n;

	for (n = 0; n < sizeof(in) - 1; n++) {
		ck_assert_int_eq(dec(in, n, &r, &f), -1);
		ck_assert_ptr_null(r.root);
	}
	ck_assert_int_eq(dec(in, n, &r, &f), 0);
	proto_req_clear(&r);
}
END_TEST

/* ---- encoders ------------------------------------------------------ */

TCase *
proto_decode_tcase(void)
{
	TCase	*tc;

	tc = tcase_create("decode");
	tcase_add_test(tc, dec_login_by_name);
	tcase_add_test(tc, dec_ranges_ok);
	tcase_add_test(tc, dec_text);
	tcase_add_test(tc, dec_misc_ok);
	tcase_add_loop_test(tc, dec_bad, 0,
	    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, dec_truncated);
	return tc;
}
