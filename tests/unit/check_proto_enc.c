/*
 * check_proto_enc.c - check_proto's "encode" case: replies, forwarded
 * chats, acks and error texts (helpers in check_proto.h).
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

START_TEST(enc_error)
{
	struct buf	 b = BUF_INIT;

	ck_assert_int_eq(proto_put_error(&b, MSG_ERROR, ERR_MISSING_FIELD, 6,
	    "field \"toid\": missing"), 0);
	out_is(&b, "{'msgid':100,'errno':13,'errmsg':'field \\'toid\\': "
	    "missing','refmsgid':6}\n");
	/* LOGIN and REG answers carry no refmsgid */
	ck_assert_int_eq(proto_put_error(&b, MSG_LOGIN_ACK, ERR_AUTH, 1,
	    "wrong id or password"), 0);
	out_is(&b, "{'msgid':2,'errno':1,'errmsg':'wrong id or password'}\n");
	ck_assert_int_eq(proto_put_error(&b, MSG_REG_ACK, ERR_AUTH, 4,
	    "name taken"), 0);
	out_is(&b, "{'msgid':5,'errno':1,'errmsg':'name taken'}\n");
	ck_assert_int_eq(proto_put_error(&b, MSG_ERROR, ERR_MALFORMED, 0,
	    NULL), 0);
	out_is(&b, "{'msgid':100,'errno':10,'errmsg':'malformed JSON'}\n");
	/* appends after what is there, escapes what needs it */
	ck_assert_int_eq(buf_append_str(&b, "x"), 0);
	ck_assert_int_eq(proto_put_error(&b, MSG_ERROR, ERR_RATE, 9,
	    "a/b\\c\x01\xe2\x82\xac"), 0);
	out_is(&b, "x{'msgid':100,'errno':25,'errmsg':'a/b\\\\c\\u0001"
	    "\xe2\x82\xac','refmsgid':9}\n");
}
END_TEST

START_TEST(enc_small)
{
	struct buf		 b = BUF_INIT;
	struct proto_req	 r;
	struct proto_fail	 f;

	ck_assert_int_eq(proto_put_reg_ack(&b, 42), 0);
	out_is(&b, "{'msgid':5,'errno':0,'id':42}\n");
	ck_assert_int_eq(proto_put_chat_ack(&b, 7, 9007199254740993LL), 0);
	out_is(&b, "{'msgid':103,'cmid':7,'smid':9007199254740993}\n");

	ck_assert_int_eq(proto_put_whoami(&b, 12, 3, 4567), 0);
	out_is(&b, "{'msgid':105,'errno':0,'id':12,'worker':3,'pid':4567}\n");
	/* the very bytes worker.c wrote by hand before */
	ck_assert_int_eq(proto_put_refuse(&b, PROTO_REFUSE_FULL), 0);
	out_is(&b, "{'msgid':100,'errno':28,'errmsg':'server full'}\n");
	ck_assert_int_eq(proto_put_refuse(&b, PROTO_REFUSE_PER_ADDR), 0);
	out_is(&b, "{'msgid':100,'errno':28,'errmsg':'too many connections "
	    "from your address (max_connections_per_ip)'}\n");

	ck_assert_int_eq(proto_put_pong(&b, NULL), 0);
	out_is(&b, "{'msgid':102}\n");
	ck_assert_int_eq(dec(S("{\"msgid\":101}"), &r, &f), 0);
	ck_assert_int_eq(proto_put_pong(&b, &r), 0);
	proto_req_clear(&r);
	out_is(&b, "{'msgid':102}\n");
	ck_assert_int_eq(dec(S("{\"msgid\":101,\"seq\":1.50}"), &r, &f), 0);
	ck_assert_int_eq(proto_put_pong(&b, &r), 0);
	proto_req_clear(&r);
	out_is(&b, "{'msgid':102,'seq':1.50}\n");
	ck_assert_int_eq(dec(S("{\"seq\":{\"a\":[\"x\",null]},\"msgid\":101}"),
	    &r, &f), 0);
	ck_assert_int_eq(proto_put_pong(&b, &r), 0);
	proto_req_clear(&r);
	out_is(&b, "{'msgid':102,'seq':{'a':['x',null]}}\n");
	ck_assert_int_eq(dec(S("{\"seq\":null,\"msgid\":101}"), &r, &f), 0);
	ck_assert_int_eq(proto_put_pong(&b, &r), 0);
	proto_req_clear(&r);
	out_is(&b, "{'msgid':102,'seq':null}\n");
}
END_TEST

START_TEST(enc_login_empty)
{
	struct buf		 b = BUF_INIT;
	struct proto_login	 l;

	memset(&l, 0, sizeof(l));
	l.id = 13;
	l.name.p = "zhang san";
	l.name.len = 9;
	ck_assert_int_eq(proto_put_login_ok(&b, &l), 0);
	out_is(&b, "{'msgid':2,'errno':0,'id':13,'name':'zhang san'}\n");
}
END_TEST

START_TEST(enc_login_full)
{
	struct buf		 b = BUF_INIT, w = BUF_INIT;
	struct proto_login	 l;
	struct proto_user	 friends[2], m1[2];
	struct proto_group	 groups[2];
	struct proto_str	 off[2];
	struct json_object	*o, *a, *e;
	char			*got, *want, *om0;

	memset(&l, 0, sizeof(l));
	memset(friends, 0, sizeof(friends));
	memset(m1, 0, sizeof(m1));
	memset(groups, 0, sizeof(groups));
	om0 = J("{'id':15,'msg':'hi','msgid':6,'name':'li si','time':'t',"
	    "'toid':13}");
	off[0].p = om0;
	off[0].len = strlen(om0);
	off[1].p = "{\"msgid\":10,\"msg\":\"\\u0000\xf0\x9f\x98\x80\"}";
	off[1].len = strlen(off[1].p);
	friends[0] = (struct proto_user){ 15, { "li si", 5 }, 1, 0, 0 };
	friends[1] = (struct proto_user){ 16, { "wang \"wu\"\0x", 11 }, 0, 0, 0 };
	m1[0] = (struct proto_user){ 13, { "zhang san", 9 }, 1, 1, 0 };
	m1[1] = (struct proto_user){ 15, { "li si", 5 }, 0, 0, 0 };
	groups[0] = (struct proto_group){ 1, { "g1", 2 }, { "desc/1", 6 },
	    m1, 2, 2 };
	groups[1] = (struct proto_group){ 2, { "empty", 5 }, { NULL, 0 },
	    NULL, 0, 0 };
	l = (struct proto_login){ .id = 13, .name = { "zhang san", 9 },
	    .friends = friends, .nfriends = 2, .groups = groups, .ngroups = 2,
	    .offline = off, .noffline = 2 };
	ck_assert_int_eq(proto_put_login_ok(&b, &l), 0);

	AJ(&w, "{'msgid':2,'errno':0,'id':13,'name':'zhang san',"
	    "'offlinemsg':[");
	Q(&w, off[0].p);
	buf_append_str(&w, ",");
	Q(&w, off[1].p);
	AJ(&w, "],'friends':[");
	QJ(&w, "{'id':15,'name':'li si','state':'online'}");
	buf_append_str(&w, ",");
	QJ(&w, "{'id':16,'name':'wang \\'wu\\'\\u0000x','state':'offline'}");
	AJ(&w, "],'groups':[");
	{
		struct buf	 g = BUF_INIT;
		char		*gs;

		AJ(&g, "{'id':1,'groupname':'g1','groupdesc':'desc/1',"
		    "'users':[");
		QJ(&g, "{'id':13,'name':'zhang san','state':'online',"
		    "'role':'creator'}");
		buf_append_str(&g, ",");
		QJ(&g, "{'id':15,'name':'li si','state':'offline',"
		    "'role':'normal'}");
		buf_append_str(&g, "]}");
		gs = buf_cstr(&g);
		Q(&w, gs);
		free(gs);
	}
	buf_append_str(&w, ",");
	QJ(&w, "{'id':2,'groupname':'empty','groupdesc':'','users':[]}");
	buf_append_str(&w, "]}\n");
	got = buf_cstr(&b);
	want = buf_cstr(&w);
	ck_assert_str_eq(got, want);

	/* what the seed client does: parse, then parse each element */
	o = json_tokener_parse(got);
	ck_assert_ptr_nonnull(o);
	ck_assert(json_object_object_get_ex(o, "groups", &a));
	e = json_tokener_parse(json_object_get_string(
	    json_object_array_get_idx(a, 0)));
	ck_assert_ptr_nonnull(e);
	ck_assert(json_object_object_get_ex(e, "users", &a));
	ck_assert_int_eq(json_object_array_length(a), 2);
	json_object_put(e);
	ck_assert(json_object_object_get_ex(o, "offlinemsg", &a));
	ck_assert_str_eq(json_object_get_string(
	    json_object_array_get_idx(a, 0)), om0);
	json_object_put(o);
	free(got);
	free(want);
	free(om0);
}
END_TEST

/* Decode in, forward as (id, name), compare with want (a template). */
static void
forward_is(const char *in, size_t inlen, int32_t id, const char *name,
    size_t namelen, const char *want)
{
	struct buf		 b = BUF_INIT;
	struct proto_req	 r;
	struct proto_fail	 f;

	ck_assert_msg(dec(in, inlen, &r, &f) == 0, "%s", f.text);
	ck_assert_int_eq(buf_append_str(&b, ">"), 0);
	ck_assert_int_eq(proto_put_forward_at(&b, &r, id, name, namelen, T0),
	    0);
	/* req is untouched: its strings still point into root */
	ck_assert_ptr_nonnull(r.msg.p);
	proto_req_clear(&r);
	out_is(&b, want);
}

START_TEST(enc_forward)
{
	/* the seed's one-chat: id and name corrected in place, no "\n" */
	forward_is(S("{\"id\":99,\"msg\":\"hello\",\"msgid\":6,\"name\":\"fake\","
	    "\"time\":\"2024-05-06 07:08:09\",\"toid\":15}"), 13, S("zhang san"),
	    ">{'id':13,'msg':'hello','msgid':6,'name':'zhang san',"
	    "'time':'2024-05-06 07:08:09','toid':15}");
	/* absent id, name and time are added at the end */
	forward_is(S("{\"msgid\":10,\"groupid\":2,\"msg\":\"m\"}"), 13, S("zs"),
	    ">{'msgid':10,'groupid':2,'msg':'m','id':13,'name':'zs',"
	    "'time':" T0_TEXT "}");
	/*
	 * every other field keeps its value, type and number text; a
	 * "time" that is not a string is replaced where it was
	 */
	forward_is(S("{\"msgid\":6,\"toid\":2,\"msg\":\"m\",\"time\":1.50,"
	    "\"e\":1E3,\"z\":-0.0,\"f\":1.5e-7,\"u\":18446744073709551615,"
	    "\"n\":-9223372036854775808,\"b\":[true,false,null],"
	    "\"o\":{\"k\":[{},[]]},\"s\":\"1\",\"cmid\":5}"), 13, S("zs"),
	    ">{'msgid':6,'toid':2,'msg':'m','time':" T0_TEXT ",'e':1E3,"
	    "'z':-0.0,'f':1.5e-7,'u':18446744073709551615,'n':-9223372036854775808,"
	    "'b':[true,false,null],'o':{'k':[{},[]]},'s':'1','cmid':5,"
	    "'id':13,'name':'zs'}");
	/* NUL, emoji (escaped or raw), quotes and slashes round-trip */
	forward_is(S("{\"msgid\":6,\"toid\":2,\"msg\":\"a\\u0000b"
	    "\\ud83d\\ude00\xf0\x9f\x98\x80\\\"\\\\/\\/\"}"), 13,
	    S("x\0y\xf0\x9f\x8e\x89"),
	    ">{'msgid':6,'toid':2,'msg':'a\\u0000b\xf0\x9f\x98\x80"
	    "\xf0\x9f\x98\x80\\'\\\\//','id':13,'name':'x\\u0000y"
	    "\xf0\x9f\x8e\x89','time':" T0_TEXT "}");
}
END_TEST

/*
 * "time" as the seed client reads it: a string is kept whatever it
 * says; anything else is replaced in place, absent is added; the fast
 * (spliced) and the slow (json-c) forward write the same bytes.
 */
START_TEST(enc_forward_time)
{
	static const char *const vals[] = {
		"5", "-1", "true", "null", "1.5", "[1]", "{\"t\":\"x\"}",
	};
	struct buf		 in = BUF_INIT, b = BUF_INIT;
	struct proto_req	 r;
	struct proto_fail	 f;
	const char		*t;
	char			*w;
	size_t			 i, sp;

	forward_is(S("{\"msgid\":6,\"toid\":2,\"msg\":\"m\",\"time\":\"\"}"),
	    3, S("c"), ">{'msgid':6,'toid':2,'msg':'m','time':'','id':3,"
	    "'name':'c'}");
	forward_is(S("{\"msgid\":6,\"toid\":2,\"time\":\"yesterday\","
	    "\"msg\":\"m\"}"), 3, S("c"), ">{'msgid':6,'toid':2,"
	    "'time':'yesterday','msg':'m','id':3,'name':'c'}");
	/* before, between and after id and name: spans in any order */
	forward_is(S("{\"time\":0,\"name\":\"x\",\"msgid\":10,\"groupid\":1,"
	    "\"msg\":\"m\",\"id\":99}"), 3, S("c\"q"), ">{'time':" T0_TEXT
	    ",'name':'c\\'q','msgid':10,'groupid':1,'msg':'m','id':3}");
	forward_is(S("{\"id\":99,\"msgid\":10,\"time\":0,\"groupid\":1,"
	    "\"msg\":\"m\",\"name\":\"x\"}"), 3, S("c"), ">{'id':3,"
	    "'msgid':10,'time':" T0_TEXT ",'groupid':1,'msg':'m','name':'c'}");
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		/* sp 0: compact (fast path where it can); 1: blanks (slow) */
		for (sp = 0; sp < 2; sp++) {
			in.off = in.len = 0;
			ck_assert_int_eq(buf_printf(&in, "{\"msgid\":6,"
			    "\"toid\":2,%s\"time\":%s,\"msg\":\"m\"}",
			    sp ? " " : "", vals[i]), 0);
			forward_is(buf_head(&in), buf_used(&in), 4, S("d"),
			    ">{'msgid':6,'toid':2,'time':" T0_TEXT ",'msg':'m',"
			    "'id':4,'name':'d'}");
		}
	}
	buf_free(&in);
	/* the clock's own time: the seed's form, 19 bytes */
	ck_assert_int_eq(dec(S("{\"msgid\":6,\"toid\":2,\"msg\":\"m\"}"), &r,
	    &f), 0);
	ck_assert_int_eq(proto_put_forward(&b, &r, 1, S("a")), 0);
	proto_req_clear(&r);
	w = buf_cstr(&b);
	t = strstr(w, "\"time\":\"");
	ck_assert_ptr_nonnull(t);
	t += 8;
	ck_assert_uint_eq(strlen(t), 21);	/* 19 bytes, '"', '}' */
	for (i = 0; i < 19; i++)
		ck_assert_msg(i == 4 || i == 7 ? t[i] == '-' : i == 10 ?
		    t[i] == ' ' : i == 13 || i == 16 ? t[i] == ':' :
		    (t[i] >= '0' && t[i] <= '9'), "time %s", t);
	free(w);
}
END_TEST

/* Acknowledged chats and offline acknowledgements (extensions). */
START_TEST(ext_acks)
{
	struct buf		 b = BUF_INIT;
	struct proto_req	 r;
	struct proto_fail	 f;
	struct proto_str	 m[2] = { { "{\"a\":1}", 7 }, { "{}", 2 } };
	const char		*in;

	/* the server sets smid, replacing one the client made up */
	in = "{\"msgid\":6,\"toid\":2,\"msg\":\"m\",\"smid\":1,\"cmid\":9}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), 0);
	ck_assert_int_eq(r.has_cmid, 1);
	ck_assert_int_eq(r.cmid, 9);
	ck_assert_int_eq(proto_req_set_smid(&r, 77), 0);
	ck_assert_int_eq(proto_put_forward_at(&b, &r, 3, "c", 1, T0), 0);
	out_is(&b, "{'msgid':6,'toid':2,'msg':'m','cmid':9,'smid':77,"
	    "'id':3,'name':'c','time':" T0_TEXT "}");
	/* 0: the made-up one is dropped */
	ck_assert_int_eq(proto_req_set_smid(&r, 0), 0);
	ck_assert_int_eq(proto_put_forward_at(&b, &r, 3, "c", 1, T0), 0);
	out_is(&b, "{'msgid':6,'toid':2,'msg':'m','cmid':9,'id':3,'name':'c',"
	    "'time':" T0_TEXT "}");
	proto_req_clear(&r);

	in = "{\"msgid\":1,\"id\":4,\"password\":\"p\",\"ackoffline\":true}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), 0);
	ck_assert_int_eq(r.ackoffline, 1);
	proto_req_clear(&r);
	in = "{\"msgid\":1,\"id\":4,\"password\":\"p\",\"ackoffline\":1}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_WRONG_TYPE);
	ck_assert_int_eq(f.reply_msgid, MSG_LOGIN_ACK);

	in = "{\"msgid\":106,\"upto\":12}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), 0);
	ck_assert_int_eq(r.upto, 12);
	proto_req_clear(&r);
	in = "{\"msgid\":106}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_MISSING_FIELD);
	in = "{\"msgid\":106,\"upto\":\"12\"}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_WRONG_TYPE);
	in = "{\"msgid\":106,\"upto\":-1}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_BAD_VALUE);

	ck_assert_int_eq(proto_put_offline_batch(&b, m, 2, 41, 1), 0);
	out_is(&b, "{'msgid':107,'offlinemsg':['{\\'a\\':1}','{}'],"
	    "'offlineupto':41,'offlinemore':true}\n");
	buf_free(&b);
}
END_TEST

/* 121 RECEIVED, "acks", and a cut member list in the login answer. */
/* RESUME: one of "since" and "after", a bounded "limit"; 129's shape. */
START_TEST(dec_resume)
{
	struct proto_req	 r;
	struct proto_fail	 f;
	struct proto_str	 m[1];
	struct buf		 b = BUF_INIT;
	const char		*in, *want;

	in = "{\"msgid\":128,\"since\":4100}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), 0);
	ck_assert_int_eq(r.since, 4100);
	ck_assert_int_eq(r.after, 0);
	ck_assert_int_eq(r.limit, PROTO_RESUME_LIMIT);
	proto_req_clear(&r);
	in = "{\"msgid\":128,\"after\":7,\"limit\":500}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), 0);
	ck_assert_int_eq(r.after, 7);
	ck_assert_int_eq(r.limit, PROTO_RESUME_MAX);
	proto_req_clear(&r);
	in = "{\"msgid\":128}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_MISSING_FIELD);
	in = "{\"msgid\":128,\"since\":1,\"after\":2}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_BAD_VALUE);
	in = "{\"msgid\":128,\"since\":0}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_BAD_VALUE);
	in = "{\"msgid\":128,\"since\":\"5\"}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_WRONG_TYPE);
	in = "{\"msgid\":128,\"since\":5,\"limit\":501}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_BAD_VALUE);

	m[0].p = "{\"msgid\":6,\"smid\":9}";
	m[0].len = strlen(m[0].p);
	ck_assert_int_eq(proto_put_resume(&b, "since", 8, m, 1, 0), 0);
	want = "{\"msgid\":129,\"errno\":0,\"since\":8,\"messages\":"
	    "[\"{\\\"msgid\\\":6,\\\"smid\\\":9}\"],\"more\":false}\n";
	ck_assert_msg(buf_used(&b) == strlen(want) &&
	    memcmp(buf_head(&b), want, strlen(want)) == 0, "%.*s",
	    (int)buf_used(&b), buf_head(&b));
	buf_free(&b);
	ck_assert_str_eq(proto_strerror(ERR_RESUME_GONE),
	    "too late to resume from that message: page back with HISTORY");
}
END_TEST

START_TEST(dec_received_members)
{
	struct proto_user	 u[2];
	struct proto_group	 g;
	struct proto_login	 l;
	struct buf		 b = BUF_INIT;
	struct proto_req	 r;
	struct proto_fail	 f;
	struct json_object	*o, *a;
	const char		*in;
	char			*got;

	in = "{\"msgid\":1,\"id\":4,\"password\":\"p\",\"acks\":true}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), 0);
	ck_assert_int_eq(r.acks, 1);
	proto_req_clear(&r);
	in = "{\"msgid\":1,\"id\":4,\"password\":\"p\",\"acks\":\"y\"}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_WRONG_TYPE);

	in = "{\"msgid\":121,\"smids\":[5,9223372036854775807]}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), 0);
	ck_assert_uint_eq(r.nsmids, 2);
	ck_assert_int_eq(r.smids[0], 5);
	ck_assert_int_eq(r.smids[1], INT64_MAX);
	proto_req_clear(&r);
	in = "{\"msgid\":121}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_MISSING_FIELD);
	in = "{\"msgid\":121,\"smids\":[]}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_BAD_VALUE);
	in = "{\"msgid\":121,\"smids\":[1,0]}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_BAD_VALUE);
	in = "{\"msgid\":121,\"smids\":[1,\"2\"]}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_WRONG_TYPE);
	in = "{\"msgid\":121,\"smids\":3}";
	ck_assert_int_eq(dec(in, strlen(in), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_WRONG_TYPE);

	memset(u, 0, sizeof(u));
	u[0].id = 1;
	u[0].name.p = "a";
	u[0].name.len = 1;
	u[0].creator = 1;
	u[1].id = 2;
	u[1].name.p = "b";
	u[1].name.len = 1;
	u[1].online = 1;
	/* a cut list in the login answer says how many there are */
	memset(&g, 0, sizeof(g));
	g.id = 7;
	g.name.p = "g";
	g.name.len = 1;
	g.desc.p = "";
	g.members = u;
	g.nmembers = 1;
	g.total = 9;
	memset(&l, 0, sizeof(l));
	l.id = 1;
	l.name.p = "a";
	l.name.len = 1;
	l.groups = &g;
	l.ngroups = 1;
	ck_assert_int_eq(proto_put_login_ok(&b, &l), 0);
	ck_assert_ptr_nonnull(o = json_tokener_parse(got = buf_cstr(&b)));
	free(got);
	ck_assert(json_object_object_get_ex(o, "groups", &a));
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(a,
	    0)), "{\"id\":7,\"groupname\":\"g\",\"groupdesc\":\"\","
	    "\"users\":[\"{\\\"id\\\":1,\\\"name\\\":\\\"a\\\","
	    "\\\"state\\\":\\\"offline\\\",\\\"role\\\":"
	    "\\\"creator\\\"}\"],\"userstotal\":9}");
	json_object_put(o);
	buf_free(&b);
}
END_TEST

/* The forwarded text decodes to the very same bytes. */
START_TEST(enc_forward_roundtrip)
{
	static const char	 msg[] = "a\0b\xf0\x9f\x98\x80\"\\\x01\x7f"
	    "\xef\xbf\xbf\xf4\x8f\xbf\xbf";
	struct buf		 b = BUF_INIT;
	struct proto_req	 r, r2;
	struct proto_fail	 f;

	ck_assert_int_eq(dec(S("{\"msgid\":6,\"toid\":2,\"msg\":"
	    "\"a\\u0000b\\ud83d\\ude00\\\"\\\\\\u0001\x7f\\uffff"
	    "\\udbff\\udfff\"}"), &r, &f), 0);
	ck_assert(str_is(&r.msg, msg, sizeof(msg) - 1));
	ck_assert_int_eq(proto_put_forward_at(&b, &r, 13, S("n\0m"), T0), 0);
	ck_assert_int_eq(dec(buf_head(&b), buf_used(&b), &r2, &f), 0);
	ck_assert(str_is(&r2.msg, msg, sizeof(msg) - 1));
	ck_assert_int_eq(r2.id, 13);
	ck_assert_int_eq(r2.toid, 2);
	proto_req_clear(&r2);
	/* forwarding twice gives the same bytes */
	ck_assert_int_eq(proto_put_forward_at(&b, &r, 13, S("n\0m"), T0), 0);
	ck_assert_uint_eq(buf_used(&b) % 2, 0);
	ck_assert_int_eq(memcmp(buf_head(&b), buf_head(&b) + buf_used(&b) / 2,
	    buf_used(&b) / 2), 0);
	ck_assert_ptr_null(memchr(buf_head(&b), '\n', buf_used(&b)));
	proto_req_clear(&r);
	buf_free(&b);
	/* nothing to forward */
	ck_assert_int_eq(proto_put_forward(&b, &r, 1, S("x")), -1);
	ck_assert_uint_eq(b.cap, 0);
}
END_TEST

/*
 * proto_line_smid_last reads the server's smid of a forwarded chat
 * without parsing it, whatever "smid" the client put in (a made-up one
 * at the top, one nested, one in its text): the same as the parse.
 */
START_TEST(enc_line_smid_last)
{
	static const char	*ins[] = {
		"{\"msgid\":6,\"toid\":2,\"msg\":\"m\"}",
		"{\"msgid\":6,\"toid\":2,\"msg\":\"m\",\"smid\":5}",
		"{\"msgid\":6,\"toid\":2,\"x\":{\"smid\":6},\"msg\":\"m\"}",
		"{\"msgid\":6,\"toid\":2,\"msg\":\"\\\"smid\\\":7\"}",
		"{\"smid\":8,\"msgid\":10,\"groupid\":2,\"msg\":\"m\","
		    "\"x\":[{\"smid\":9}]}",
	};
	struct buf		 b = BUF_INIT;
	struct proto_req	 r;
	struct proto_fail	 f;
	size_t			 i;

	for (i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
		ck_assert_msg(dec(ins[i], strlen(ins[i]), &r, &f) == 0, "%s",
		    f.text);
		ck_assert_int_eq(proto_req_set_smid(&r, 4242000 + i), 0);
		buf_consume(&b, buf_used(&b));
		ck_assert_int_eq(proto_put_forward_at(&b, &r, 3, "c\"smid\":1",
		    10, T0), 0);
		ck_assert_int_eq(buf_append(&b, "\n", 1), 0);
		ck_assert_int_eq(proto_line_smid(buf_head(&b), buf_used(&b)),
		    4242000 + i);
		ck_assert_int_eq(proto_line_smid_last(buf_head(&b),
		    buf_used(&b)), 4242000 + i);
		proto_req_clear(&r);
	}
	ck_assert_int_eq(proto_line_smid_last("{\"a\":1}\n", 8), 0);
	ck_assert_int_eq(proto_line_smid_last("\"smid\":", 7), 0);
	ck_assert_int_eq(proto_line_smid_last("\"smid\":99999999999999999999",
	    27), 0);
	buf_free(&b);
}
END_TEST

START_TEST(enc_strerror)
{
	int	 c;

	for (c = -5; c < 40; c++) {
		ck_assert_ptr_nonnull(proto_strerror(c));
		ck_assert_int_gt(strlen(proto_strerror(c)), 0);
	}
	ck_assert_str_eq(proto_strerror(ERR_MALFORMED), "malformed JSON");
	ck_assert_str_eq(proto_strerror(999), "unknown error");
}
END_TEST

TCase *
proto_encode_tcase(void)
{
	TCase	*tc;

	tc = tcase_create("encode");
	tcase_add_test(tc, enc_error);
	tcase_add_test(tc, enc_small);
	tcase_add_test(tc, enc_login_empty);
	tcase_add_test(tc, enc_login_full);
	tcase_add_test(tc, enc_forward);
	tcase_add_test(tc, enc_forward_time);
	tcase_add_test(tc, enc_forward_roundtrip);
	tcase_add_test(tc, dec_received_members);
	tcase_add_test(tc, dec_resume);
	tcase_add_test(tc, ext_acks);
	tcase_add_test(tc, enc_line_smid_last);
	tcase_add_test(tc, enc_strerror);
	return tc;
}
