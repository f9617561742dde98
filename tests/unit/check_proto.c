/* check_proto.c - unit tests for buf.c and the protocol (src/proto). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>
#include <json-c/json.h>

#include "buf.h"
#include "proto.h"
#include "check_run.h"

#define S(x)	x, sizeof(x) - 1

/* 2024-06-06 07:08:09 in UTC, the zone main() sets */
#define T0		((time_t)1717657689)
#define T0_TEXT		"'2024-06-06 07:08:09'"

static const struct proto_limits lim = {
	.max_name_bytes = 16,
	.max_message_bytes = 32,
	.max_groupdesc_bytes = 24,
	.max_password_bytes = 20,
};

/* ---- helpers ------------------------------------------------------- */

/* buf_head() of an empty buf is NULL + 0: undefined, so keep clear */
static const char *
head(const struct buf *b)
{
	return b->data != NULL ? buf_head(b) : "";
}

/* A printable picture of bytes: \xHH for anything odd. */
static void
pic(struct buf *d, const char *p, size_t n)
{
	size_t		 i;
	unsigned char	 c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)p[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			ck_assert_int_eq(buf_append(d, &p[i], 1), 0);
		else
			ck_assert_int_eq(buf_printf(d, "\\x%02x", c), 0);
	}
}

/* Returns a NUL-terminated string the caller frees. */
static char *
buf_cstr(struct buf *b)
{
	char	*s;

	s = malloc(buf_used(b) + 1);
	ck_assert_ptr_nonnull(s);
	if (buf_used(b) > 0)
		memcpy(s, buf_head(b), buf_used(b));
	s[buf_used(b)] = '\0';
	buf_free(b);
	return s;
}

/*
 * Feed data as a connection would, chunk bytes per read (0: chunks of
 * pseudo-random size from seed), and describe the frames that come
 * out: "OK(...) BAD(...) GARBAGE TOO_BIG rest=N".
 */
static char *
feed(const char *data, size_t len, size_t chunk, size_t max, unsigned seed)
{
	struct frame_scanner	 s;
	struct buf		 in = BUF_INIT, d = BUF_INIT;
	enum frame_status	 st;
	size_t			 i = 0, n, off, vlen, used;

	frame_scanner_init(&s);
	for (;;) {
		if (chunk == 0) {
			seed = seed * 1103515245 + 12345;
			n = 1 + (seed >> 16) % 9;
		} else
			n = chunk;
		if (n > len - i)
			n = len - i;
		ck_assert_int_eq(buf_append(&in, data + i, n), 0);
		i += n;
		for (;;) {
			st = frame_next(&s, head(&in), buf_used(&in), max,
			    &off, &vlen, &used);
			ck_assert_uint_le(used, buf_used(&in));
			ck_assert_uint_le(off + vlen, buf_used(&in));
			if (st == FRAME_OK || st == FRAME_BAD) {
				ck_assert_uint_eq(used, off + vlen);
				buf_append_str(&d,
				    st == FRAME_OK ? "OK(" : "BAD(");
				pic(&d, head(&in) + off, vlen);
				buf_append_str(&d, ") ");
			}
			if (st == FRAME_GARBAGE || st == FRAME_TOO_BIG) {
				buf_append_str(&d, st == FRAME_GARBAGE ?
				    "GARBAGE" : "TOO_BIG");
				buf_free(&in);
				return buf_cstr(&d);
			}
			buf_consume(&in, used);
			if (st == FRAME_NEED_MORE)
				break;
		}
		if (i == len)
			break;
	}
	buf_printf(&d, "rest=%zu", buf_used(&in));
	buf_free(&in);
	return buf_cstr(&d);
}

/* One-shot, byte by byte and in odd chunks must all agree. */
static void
frames_are(const char *data, size_t len, size_t max, const char *want)
{
	char	*one, *other;
	size_t	 chunk;
	unsigned seed;

	one = feed(data, len, SIZE_MAX, max, 0);
	ck_assert_str_eq(one, want);
	for (chunk = 1; chunk <= 4; chunk++) {
		other = feed(data, len, chunk, max, 0);
		ck_assert_msg(strcmp(one, other) == 0,
		    "chunk %zu: %s != %s", chunk, other, one);
		free(other);
	}
	for (seed = 1; seed < 20; seed++) {
		other = feed(data, len, 0, max, seed);
		ck_assert_msg(strcmp(one, other) == 0,
		    "seed %u: %s != %s", seed, other, one);
		free(other);
	}
	free(one);
}

static int
dec(const char *s, size_t len, struct proto_req *r, struct proto_fail *f)
{
	return proto_decode(s, len, &lim, r, f);
}

/* "{'a':1}" -> "{\"a\":1}": keeps expected JSON readable. */
static char *
J(const char *tmpl)
{
	char	*s, *p;

	s = strdup(tmpl);
	ck_assert_ptr_nonnull(s);
	for (p = s; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	return s;
}

/* Appends s as a JSON string literal (only " and \ need escaping here). */
static void
Q(struct buf *b, const char *s)
{
	buf_append_str(b, "\"");
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			buf_append_str(b, "\\");
		buf_append(b, s, 1);
	}
	buf_append_str(b, "\"");
}

static void
QJ(struct buf *b, const char *tmpl)
{
	char	*s = J(tmpl);

	Q(b, s);
	free(s);
}

static void
AJ(struct buf *b, const char *tmpl)
{
	char	*s = J(tmpl);

	buf_append_str(b, s);
	free(s);
}

/* out must hold exactly want (a template with ' for "). */
static void
out_is(struct buf *out, const char *tmpl)
{
	char	*want = J(tmpl), *got = buf_cstr(out);

	ck_assert_str_eq(got, want);
	free(want);
	free(got);
}

/* ---- buf ----------------------------------------------------------- */

START_TEST(buf_basic)
{
	struct buf	 b = BUF_INIT;

	ck_assert_int_eq(buf_append(&b, "", 0), 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_ptr_null(b.data);
	ck_assert_int_eq(buf_append_str(&b, "hello"), 0);
	ck_assert_uint_eq(buf_used(&b), 5);
	ck_assert_uint_eq(b.cap, 256);
	ck_assert_int_eq(memcmp(buf_head(&b), "hello", 5), 0);
	buf_consume(&b, 2);
	ck_assert_uint_eq(buf_used(&b), 3);
	ck_assert_int_eq(memcmp(buf_head(&b), "llo", 3), 0);
	buf_consume(&b, 3);
	/* idle: no memory held */
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.off, 0);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(buf_append_str(&b, "again"), 0);
	buf_consume(&b, 100);
	ck_assert_uint_eq(b.cap, 0);
	buf_free(&b);
	buf_free(NULL);
}
END_TEST

START_TEST(buf_growth)
{
	struct buf	 b = BUF_INIT;
	char		 chunk[300];
	size_t		 i;

	memset(chunk, 'x', sizeof(chunk));
	ck_assert_int_eq(buf_append(&b, chunk, 300), 0);
	ck_assert_uint_eq(b.cap, 512);
	ck_assert_int_eq(buf_append(&b, chunk, 300), 0);
	ck_assert_uint_eq(b.cap, 1024);
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(buf_append(&b, chunk, 300), 0);
	ck_assert_uint_eq(buf_used(&b), 102 * 300);
	ck_assert_uint_eq(b.cap, 32768);
	ck_assert_int_eq(buf_reserve(&b, SIZE_MAX), -1);
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_int_eq(buf_reserve(&b, SIZE_MAX - 10), -1);
	ck_assert_uint_eq(buf_used(&b), 102 * 300);
	buf_free(&b);
	ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(buf_compaction)
{
	struct buf	 b = BUF_INIT;
	char		 chunk[200];

	memset(chunk, 'a', sizeof(chunk));
	chunk[199] = 'z';
	ck_assert_int_eq(buf_append(&b, chunk, 200), 0);
	ck_assert_uint_eq(b.cap, 256);
	buf_consume(&b, 100);
	ck_assert_uint_eq(b.off, 100);	/* not past half yet */
	buf_consume(&b, 29);
	ck_assert_uint_eq(b.off, 0);	/* 129 > 128: compacted */
	ck_assert_uint_eq(buf_used(&b), 71);
	ck_assert_int_eq(buf_head(&b)[70], 'z');
	/* reserve reclaims the front before growing */
	ck_assert_int_eq(buf_append(&b, chunk, 100), 0);
	buf_consume(&b, 60);
	ck_assert_uint_eq(b.off, 60);
	ck_assert_int_eq(buf_append(&b, chunk, 140), 0);
	ck_assert_uint_eq(b.cap, 256);
	ck_assert_uint_eq(b.off, 0);
	ck_assert_uint_eq(buf_used(&b), 251);
	ck_assert_int_eq(buf_head(&b)[10], 'z');
	buf_free(&b);
}
END_TEST

START_TEST(buf_printf_test)
{
	struct buf	 b = BUF_INIT;
	char		*s, big[1000];

	ck_assert_int_eq(buf_printf(&b, "%s", ""), 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_int_eq(buf_printf(&b, "%d-%s", 42, "x"), 0);
	ck_assert_uint_eq(buf_used(&b), 4);
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(buf_printf(&b, "[%s]", big), 0);
	ck_assert_uint_eq(buf_used(&b), 4 + 1001);
	s = buf_cstr(&b);
	ck_assert_int_eq(strncmp(s, "42-x[qqq", 8), 0);
	ck_assert_int_eq(s[1004], ']');
	free(s);
}
END_TEST

/* ---- frame_next ---------------------------------------------------- */

START_TEST(frame_separators)
{
	frames_are(S("{\"a\":1}\0{\"b\":2}\0"), 1024,
	    "OK({\"a\":1}) OK({\"b\":2}) rest=0");
	frames_are(S("{\"a\":1}\n{\"b\":2}\n"), 1024,
	    "OK({\"a\":1}) OK({\"b\":2}) rest=0");
	frames_are(S("{\"a\":1}\r\n{\"b\":2}\r\n"), 1024,
	    "OK({\"a\":1}) OK({\"b\":2}) rest=0");
	frames_are(S("  \t{\"a\":1}   {\"b\":2}  \0\0\n\r\n "), 1024,
	    "OK({\"a\":1}) OK({\"b\":2}) rest=0");
	frames_are(S("{\"a\":1}{\"b\":2}[3]\"s\""), 1024,
	    "OK({\"a\":1}) OK({\"b\":2}) OK([3]) OK(\"s\") rest=0");
	frames_are(S(""), 1024, "rest=0");
	frames_are(S("\0\0\0\n\n\r  "), 1024, "rest=0");
}
END_TEST

START_TEST(frame_pretty)
{
	frames_are(S("{\n  \"msgid\": 3,\n  \"id\": [\n    1,\n    2\n  ]\n}\n"
	    "{\n\t\"msgid\": 101\n}"), 1024,
	    "OK({\\x0a  \"msgid\": 3,\\x0a  \"id\": [\\x0a    1,\\x0a    2\\x0a"
	    "  ]\\x0a}) OK({\\x0a\\x09\"msgid\": 101\\x0a}) rest=0");
}
END_TEST

START_TEST(frame_strings)
{
	/* brackets and escaped quotes inside strings do not count */
	frames_are(S("{\"m\":\"}{\\\"][\\\\\"}{\"n\":\"\\\"}\"}"), 1024,
	    "OK({\"m\":\"}{\\x5c\"][\\x5c\\x5c\"}) "
	    "OK({\"n\":\"\\x5c\"}\"}) rest=0");
	frames_are(S("[{\"a\":[1,{\"b\":\"]]]\"}]}]\n"), 1024,
	    "OK([{\"a\":[1,{\"b\":\"]]]\"}]}]) rest=0");
	frames_are(S("\"just a string \\\" with quote\" {}"), 1024,
	    "OK(\"just a string \\x5c\" with quote\") OK({}) rest=0");
	/* tab and other bytes inside strings are left to the decoder */
	frames_are(S("{\"a\":\"x\ty\x7f\xff\"}"), 1024,
	    "OK({\"a\":\"x\\x09y\\x7f\\xff\"}) rest=0");
}
END_TEST

START_TEST(frame_partial)
{
	struct frame_scanner	 s;
	size_t			 off, vlen, used;
	const char		*in = "  \n{\"a\":\"b}";

	frame_scanner_init(&s);
	ck_assert_int_eq(frame_next(&s, in, strlen(in), 100, &off, &vlen,
	    &used), FRAME_NEED_MORE);
	/* separators are dropped at once, the value stays */
	ck_assert_uint_eq(used, 3);
	ck_assert_uint_eq(s.pos, strlen(in) - 3);
	ck_assert_int_eq(s.in_string, 1);
	in += used;
	ck_assert_int_eq(frame_next(&s, in, strlen(in), 100, &off, &vlen,
	    &used), FRAME_NEED_MORE);
	ck_assert_uint_eq(used, 0);
	in = "{\"a\":\"b}\"}{";
	ck_assert_int_eq(frame_next(&s, in, strlen(in), 100, &off, &vlen,
	    &used), FRAME_OK);
	ck_assert_uint_eq(off, 0);
	ck_assert_uint_eq(vlen, 10);
	ck_assert_uint_eq(used, 10);
	in += used;
	ck_assert_int_eq(frame_next(&s, in, strlen(in), 100, &off, &vlen,
	    &used), FRAME_NEED_MORE);
	ck_assert_uint_eq(s.depth, 1);
	ck_assert_int_eq(s.started, 1);

	/* only separators: all reported consumed */
	frame_scanner_init(&s);
	ck_assert_int_eq(frame_next(&s, S("\0\0\n  "), 100, &off, &vlen,
	    &used), FRAME_NEED_MORE);
	ck_assert_uint_eq(used, 5);
	ck_assert_int_eq(s.started, 0);

	/* incomplete values at the end stay in the buffer */
	frames_are(S("{\"a\":1} {\"b\":[2"), 1024, "OK({\"a\":1}) rest=7");
	frames_are(S("{\"a\":\"\\"), 1024, "rest=7");
}
END_TEST

START_TEST(frame_bad_resync)
{
	/* a raw newline in a string: answer it, go on with the next value */
	frames_are(S("{\"msgid\":6,\"msg\":\"abc\n{\"msgid\":3}\n"), 1024,
	    "BAD({\"msgid\":6,\"msg\":\"abc\\x0a) OK({\"msgid\":3}) rest=0");
	frames_are(S("{\"m\":\"a\r\n{\"msgid\":3}"), 1024,
	    "BAD({\"m\":\"a\\x0d) OK({\"msgid\":3}) rest=0");
	frames_are(S("{\"m\":\"a\0{\"msgid\":3}"), 1024,
	    "BAD({\"m\":\"a\\x00) OK({\"msgid\":3}) rest=0");
	/* escaped, the newline is still raw */
	frames_are(S("{\"m\":\"a\\\n[1]"), 1024,
	    "BAD({\"m\":\"a\\x5c\\x0a) OK([1]) rest=0");
	/* a top-level string too */
	frames_are(S("\"abc\n{}"), 1024, "BAD(\"abc\\x0a) OK({}) rest=0");
	/* what follows may well be garbage */
	frames_are(S("{\"m\":\"a\nb\"}"), 1024, "BAD({\"m\":\"a\\x0a) GARBAGE");
	/* newlines outside strings are fine */
	frames_are(S("{\"m\"\n:\n\"a\"\n}"), 1024,
	    "OK({\"m\"\\x0a:\\x0a\"a\"\\x0a}) rest=0");
}
END_TEST

/* A NUL ends every frame: outside strings too, at any depth. */
START_TEST(frame_nul_ends)
{
	/* the seed client's terminator after an unfinished request */
	frames_are(S("{\"id\":1,\"msgid\":1\0{\"msgid\":101}\0"), 1024,
	    "BAD({\"id\":1,\"msgid\":1\\x00) OK({\"msgid\":101}) rest=0");
	frames_are(S("{\"id\":1,\"msgid\":\0{\"msgid\":101}"), 1024,
	    "BAD({\"id\":1,\"msgid\":\\x00) OK({\"msgid\":101}) rest=0");
	frames_are(S("{\0{}"), 1024, "BAD({\\x00) OK({}) rest=0");
	frames_are(S("[\0[1]"), 1024, "BAD([\\x00) OK([1]) rest=0");
	/* nested: the whole unfinished value goes */
	frames_are(S("{\"a\":{\"b\":[1,{\"c\":2}\0\0{\"d\":3}"), 1024,
	    "BAD({\"a\":{\"b\":[1,{\"c\":2}\\x00) OK({\"d\":3}) rest=0");
	/* right after a string closed, and after an escape */
	frames_are(S("{\"m\":\"x\"\0{}"), 1024,
	    "BAD({\"m\":\"x\"\\x00) OK({}) rest=0");
	frames_are(S("{\"m\":\"x\\\0{}"), 1024,
	    "BAD({\"m\":\"x\\x5c\\x00) OK({}) rest=0");
	/* newline stays whitespace inside a value; NUL then still ends it */
	frames_are(S("{\n\"a\"\n:\n1\n\0\n{\"b\":2}\n"), 1024,
	    "BAD({\\x0a\"a\"\\x0a:\\x0a1\\x0a\\x00) OK({\"b\":2}) rest=0");
	/* a finished value is not touched: the NUL after it separates */
	frames_are(S("{\"a\":1}\0\0"), 1024, "OK({\"a\":1}) rest=0");
	/* one NUL in every unfinished value of a run */
	frames_are(S("{\0[\0\"\0{}"), 1024,
	    "BAD({\\x00) BAD([\\x00) BAD(\"\\x00) OK({}) rest=0");
	/* the limit still applies before the NUL */
	frames_are(S("{\"a\":12345678\0{}"), 8, "TOO_BIG");
}
END_TEST

/* The decoder answers such a frame as malformed. */
START_TEST(frame_nul_decodes_bad)
{
	struct proto_req	 r;
	struct proto_fail	 f;

	ck_assert_int_eq(dec(S("{\"id\":1,\"msgid\":1\0"), &r, &f), -1);
	ck_assert_int_eq(f.code, ERR_MALFORMED);
	ck_assert_int_eq(f.reply_msgid, MSG_ERROR);
	ck_assert_ptr_null(r.root);
}
END_TEST

START_TEST(frame_garbage)
{
	frames_are(S("hello"), 1024, "GARBAGE");
	frames_are(S("  123"), 1024, "GARBAGE");
	frames_are(S("}"), 1024, "GARBAGE");
	frames_are(S("]{}"), 1024, "GARBAGE");
	frames_are(S("\x01{}"), 1024, "GARBAGE");
	frames_are(S("{\"a\":1}x{}"), 1024, "OK({\"a\":1}) GARBAGE");
	frames_are(S("{\"a\":1}\0\0null"), 1024, "OK({\"a\":1}) GARBAGE");
	/* mismatched brackets just close; the decoder rejects them */
	frames_are(S("{]{\"a\":[}}"), 1024, "OK({]) OK({\"a\":[}}) rest=0");
	frames_are(S("[}}"), 1024, "OK([}) GARBAGE");
}
END_TEST

START_TEST(frame_too_big)
{
	struct frame_scanner	 s;
	size_t			 off, vlen, used;

	/* exactly max is fine, one more is not */
	frames_are(S("{\"a\":\"0123\"}"), 12, "OK({\"a\":\"0123\"}) rest=0");
	frames_are(S("{\"a\":\"01234\"}"), 12, "TOO_BIG");
	frames_are(S("  {\"a\":\"0123\"}{\"a\":\"01234\"}"), 12,
	    "OK({\"a\":\"0123\"}) TOO_BIG");
	/* detected without waiting for the end of the value */
	frame_scanner_init(&s);
	ck_assert_int_eq(frame_next(&s, S("\n\n[\"aaaaaaaaaa"), 10, &off,
	    &vlen, &used), FRAME_TOO_BIG);
	ck_assert_uint_eq(off, 2);
	ck_assert_uint_eq(used, 2);
	frame_scanner_init(&s);
	ck_assert_int_eq(frame_next(&s, S("[1,2,3,4"), 8, &off, &vlen,
	    &used), FRAME_TOO_BIG);
	frame_scanner_init(&s);
	ck_assert_int_eq(frame_next(&s, S("[1,2,3,"), 8, &off, &vlen,
	    &used), FRAME_NEED_MORE);
	ck_assert_int_eq(frame_next(&s, S("[1,2,3,4]"), 8, &off, &vlen,
	    &used), FRAME_TOO_BIG);
	frames_are(S("[1,2,3,4]"), 9, "OK([1,2,3,4]) rest=0");
	frames_are(S("{}"), 1, "TOO_BIG");
	frames_are(S("  {}"), 0, "TOO_BIG");
}
END_TEST

START_TEST(frame_contract)
{
	struct frame_scanner	 s;
	size_t			 off, vlen, used;

	/* a caller that drops bytes it was not told to: refused, no crash */
	frame_scanner_init(&s);
	ck_assert_int_eq(frame_next(&s, S("{\"aaaa"), 100, &off, &vlen,
	    &used), FRAME_NEED_MORE);
	ck_assert_int_eq(frame_next(&s, S("{\""), 100, &off, &vlen,
	    &used), FRAME_GARBAGE);
	ck_assert_uint_le(off + vlen, 2);
}
END_TEST

/* Random byte soups of JSON-ish bytes: every split gives the same frames. */
START_TEST(frame_random_splits)
{
	static const char	 alpha[] = "{}[]\"\\\n\r\0 a:,";
	char			 data[64];
	char			*one, *other;
	unsigned		 seed = 12345, i, k, n;
	size_t			 max;

	for (i = 0; i < 3000; i++) {
		seed = seed * 1103515245 + 12345;
		n = 1 + (seed >> 16) % sizeof(data);
		for (k = 0; k < n; k++) {
			seed = seed * 1103515245 + 12345;
			data[k] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
		}
		data[0] = "{[\" \n"[i % 5];
		max = 4 + i % 40;
		one = feed(data, n, SIZE_MAX, max, 0);
		other = feed(data, n, 1, max, 0);
		ck_assert_str_eq(one, other);
		free(other);
		other = feed(data, n, 0, max, i + 1);
		ck_assert_str_eq(one, other);
		free(other);
		free(one);
	}
}
END_TEST

/* ---- proto_decode: the seed client's requests ---------------------- */

/* Wire bytes as the seed client writes them: compact, sorted, NUL. */
static void
seed_frame(const char *wire, size_t len, struct proto_req *r)
{
	struct frame_scanner	 s;
	struct proto_fail	 f;
	size_t			 off, vlen, used;

	frame_scanner_init(&s);
	ck_assert_int_eq(frame_next(&s, wire, len, 4096, &off, &vlen, &used),
	    FRAME_OK);
	ck_assert_uint_eq(used, len - 1);
	ck_assert_int_eq(wire[used], '\0');
	ck_assert_msg(dec(wire + off, vlen, r, &f) == 0, "%s: %s", wire,
	    f.text);
	ck_assert_ptr_nonnull(r->root);
}

static int
str_is(const struct proto_str *s, const char *p, size_t n)
{
	return s->len == n && memcmp(s->p, p, n) == 0;
}

START_TEST(seed_reg)
{
	struct proto_req	 r;

	seed_frame(S("{\"msgid\":4,\"name\":\"zhang san\","
	    "\"password\":\"123456\"}\0"), &r);
	ck_assert_int_eq(r.msgid, MSG_REG);
	ck_assert(str_is(&r.name, S("zhang san")));
	ck_assert(str_is(&r.password, S("123456")));
	ck_assert_int_eq(r.has_id, 0);
	proto_req_clear(&r);
	ck_assert_ptr_null(r.root);
	proto_req_clear(&r);
}
END_TEST

START_TEST(seed_login)
{
	struct proto_req	 r;

	seed_frame(S("{\"id\":13,\"msgid\":1,\"password\":\"123456\"}\0"), &r);
	ck_assert_int_eq(r.msgid, MSG_LOGIN);
	ck_assert_int_eq(r.has_id, 1);
	ck_assert_int_eq(r.id, 13);
	ck_assert(str_is(&r.password, S("123456")));
	ck_assert_uint_eq(r.name.len, 0);
	ck_assert_int_eq(r.has_cmid, 0);
	proto_req_clear(&r);
}
END_TEST

START_TEST(seed_loginout)
{
	struct proto_req	 r;

	seed_frame(S("{\"id\":13,\"msgid\":3}\0"), &r);
	ck_assert_int_eq(r.msgid, MSG_LOGINOUT);
	ck_assert_int_eq(r.id, 13);
	proto_req_clear(&r);
}
END_TEST

START_TEST(seed_one_chat)
{
	struct proto_req	 r;

	seed_frame(S("{\"id\":13,\"msg\":\"hello \xe4\xbd\xa0\xe5\xa5\xbd"
	    " \\\"q\\\" \\\\ \\u0001\",\"msgid\":6,\"name\":\"zhang san\","
	    "\"time\":\"2024-05-06 07:08:09\",\"toid\":15}\0"), &r);
	ck_assert_int_eq(r.msgid, MSG_ONE_CHAT);
	ck_assert_int_eq(r.id, 13);
	ck_assert_int_eq(r.toid, 15);
	ck_assert(str_is(&r.msg,
	    S("hello \xe4\xbd\xa0\xe5\xa5\xbd \"q\" \\ \x01")));
	proto_req_clear(&r);
}
END_TEST

START_TEST(seed_add_friend)
{
	struct proto_req	 r;

	seed_frame(S("{\"friendid\":15,\"id\":13,\"msgid\":7}\0"), &r);
	ck_assert_int_eq(r.msgid, MSG_ADD_FRIEND);
	ck_assert_int_eq(r.friendid, 15);
	proto_req_clear(&r);
}
END_TEST

START_TEST(seed_create_group)
{
	struct proto_req	 r;

	seed_frame(S("{\"groupdesc\":\"for \\\"us\\\"\\n\",\"groupname\":"
	    "\"chat room\",\"id\":13,\"msgid\":8}\0"), &r);
	ck_assert_int_eq(r.msgid, MSG_CREATE_GROUP);
	ck_assert(str_is(&r.groupname, S("chat room")));
	ck_assert(str_is(&r.groupdesc, S("for \"us\"\n")));
	proto_req_clear(&r);
}
END_TEST

START_TEST(seed_add_group)
{
	struct proto_req	 r;

	seed_frame(S("{\"groupid\":1,\"id\":13,\"msgid\":9}\0"), &r);
	ck_assert_int_eq(r.msgid, MSG_ADD_GROUP);
	ck_assert_int_eq(r.groupid, 1);
	proto_req_clear(&r);
}
END_TEST

START_TEST(seed_group_chat)
{
	struct proto_req	 r;

	seed_frame(S("{\"groupid\":1,\"id\":13,\"msg\":\"hi all\",\"msgid\":10,"
	    "\"name\":\"zhang san\",\"time\":\"2024-05-06 07:08:09\"}\0"), &r);
	ck_assert_int_eq(r.msgid, MSG_GROUP_CHAT);
	ck_assert_int_eq(r.groupid, 1);
	ck_assert(str_is(&r.msg, S("hi all")));
	proto_req_clear(&r);
}
END_TEST

/* ---- proto_decode: accepted variants ------------------------------- */

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

Suite *
proto_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("proto");

	tc = tcase_create("buf");
	tcase_add_test(tc, buf_basic);
	tcase_add_test(tc, buf_growth);
	tcase_add_test(tc, buf_compaction);
	tcase_add_test(tc, buf_printf_test);
	suite_add_tcase(s, tc);

	tc = tcase_create("frame");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, frame_separators);
	tcase_add_test(tc, frame_pretty);
	tcase_add_test(tc, frame_strings);
	tcase_add_test(tc, frame_partial);
	tcase_add_test(tc, frame_bad_resync);
	tcase_add_test(tc, frame_nul_ends);
	tcase_add_test(tc, frame_nul_decodes_bad);
	tcase_add_test(tc, frame_garbage);
	tcase_add_test(tc, frame_too_big);
	tcase_add_test(tc, frame_contract);
	tcase_add_test(tc, frame_random_splits);
	suite_add_tcase(s, tc);

	tc = tcase_create("seed");
	tcase_add_test(tc, seed_reg);
	tcase_add_test(tc, seed_login);
	tcase_add_test(tc, seed_loginout);
	tcase_add_test(tc, seed_one_chat);
	tcase_add_test(tc, seed_add_friend);
	tcase_add_test(tc, seed_create_group);
	tcase_add_test(tc, seed_add_group);
	tcase_add_test(tc, seed_group_chat);
	suite_add_tcase(s, tc);

	tc = tcase_create("decode");
	tcase_add_test(tc, dec_login_by_name);
	tcase_add_test(tc, dec_ranges_ok);
	tcase_add_test(tc, dec_text);
	tcase_add_test(tc, dec_misc_ok);
	tcase_add_loop_test(tc, dec_bad, 0,
	    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, dec_truncated);
	suite_add_tcase(s, tc);

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
	tcase_add_test(tc, enc_strerror);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	/* forwarded chats carry local time: make it known */
	setenv("TZ", "UTC", 1);
	tzset();
	return check_run(proto_suite());
}
