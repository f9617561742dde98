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
#include "util.h"
#include "check_run.h"
#include "check_proto.h"

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
char *
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

int
dec(const char *s, size_t len, struct proto_req *r, struct proto_fail *f)
{
	return proto_decode(s, len, &lim, r, f);
}

/* "{'a':1}" -> "{\"a\":1}": keeps expected JSON readable. */
char *
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
void
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

void
QJ(struct buf *b, const char *tmpl)
{
	char	*s = J(tmpl);

	Q(b, s);
	free(s);
}

void
AJ(struct buf *b, const char *tmpl)
{
	char	*s = J(tmpl);

	buf_append_str(b, s);
	free(s);
}

/* out must hold exactly want (a template with ' for "). */
void
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

/* util_grow: room for the index asked, new elements zero, failure harmless. */
START_TEST(util_grow_test)
{
	uint32_t	*v = NULL;
	size_t		 cap = 0, i;

	ck_assert_int_eq(util_grow((void **)&v, &cap, 0, sizeof(*v)), 0);
	ck_assert_uint_eq(cap, 8);
	for (i = 0; i < cap; i++)
		ck_assert_uint_eq(v[i], 0);
	v[7] = 7;
	ck_assert_int_eq(util_grow((void **)&v, &cap, 7, sizeof(*v)), 0);
	ck_assert_uint_eq(cap, 8);
	ck_assert_int_eq(util_grow((void **)&v, &cap, 100, sizeof(*v)), 0);
	ck_assert_uint_eq(cap, 128);
	ck_assert_uint_eq(v[7], 7);
	for (i = 8; i < cap; i++)
		ck_assert_uint_eq(v[i], 0);
	ck_assert_int_eq(util_grow((void **)&v, &cap, SIZE_MAX - 1,
	    sizeof(*v)), -1);
	ck_assert_uint_eq(cap, 128);
	ck_assert_uint_eq(v[7], 7);
	free(v);
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

int
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

Suite *
proto_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("proto");

	tc = tcase_create("buf");
	tcase_add_test(tc, buf_basic);
	tcase_add_test(tc, buf_growth);
	tcase_add_test(tc, util_grow_test);
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

	suite_add_tcase(s, proto_decode_tcase());

	suite_add_tcase(s, proto_encode_tcase());

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
