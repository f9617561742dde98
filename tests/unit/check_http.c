/* check_http.c - request heads, the WebSocket handshake, origins, file names. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "wsframe.h"
#include "check_run.h"

#define HS(extra) \
	"GET /chat HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" \
	"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" \
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" \
	"Sec-WebSocket-Version: 13\r\n" extra "\r\n"

static enum http_status
parse(const char *s, struct http_req *r)
{
	return http_parse(s, strlen(s), 8192, r);
}

START_TEST(test_rfc_example)
{
	struct http_req	 r;
	char		 acc[HTTP_ACCEPT_LEN + 1];
	const char	*s = HS("Origin: http://127.0.0.1:8080\r\n");

	ck_assert_int_eq(parse(s, &r), HTTP_OK);
	ck_assert_uint_eq(r.head_len, strlen(s));
	ck_assert_int_eq(http_ws_check(&r), HTTP_WS_UPGRADE);
	ck_assert_int_eq(http_ws_accept(&r.key, acc), 0);
	/* RFC 6455 section 1.3 */
	ck_assert_str_eq(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	ck_assert_int_eq(r.path.len, 5);
	ck_assert_int_eq(http_origin_check(&r, "self"), HTTP_ORIGIN_OK);
	ck_assert_int_eq(http_origin_check(&r, "https://other.example"),
	    HTTP_ORIGIN_DENIED);
	ck_assert_int_eq(http_origin_check(&r,
	    "https://a.example, HTTP://127.0.0.1:8080"), HTTP_ORIGIN_OK);
	ck_assert_int_eq(http_origin_check(&r, "*"), HTTP_ORIGIN_OK);
	ck_assert_int_eq(http_origin_check(&r, ""), HTTP_ORIGIN_DENIED);
}
END_TEST

START_TEST(test_partial_and_limits)
{
	struct http_req	 r;
	const char	*s = HS("");
	size_t		 i;
	char		*big;

	for (i = 0; i < strlen(s); i++)
		ck_assert_int_eq(http_parse(s, i, 8192, &r), HTTP_NEED_MORE);
	ck_assert_int_eq(http_parse(s, strlen(s), 20, &r), HTTP_TOO_BIG);
	big = malloc(9000);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	memset(big + 19, 'a', 9000 - 19);
	ck_assert_int_eq(http_parse(big, 9000, 8192, &r), HTTP_TOO_BIG);
	free(big);
	/* LF alone ends lines too */
	ck_assert_int_eq(parse("GET / HTTP/1.1\nHost: x\n\n", &r), HTTP_OK);
	ck_assert_int_eq(http_ws_check(&r), HTTP_WS_PLAIN);
}
END_TEST

START_TEST(test_bad_heads)
{
	static const char *bad[] = {
		"\r\n\r\n",
		"GET\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"GET /  HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1 \r\n\r\n",
		"G(T / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET /\x7f HTTP/1.1\r\n\r\n",
	};
	struct http_req	 r;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse(bad[i], &r) == HTTP_BAD, "case %zu", i);
	ck_assert_int_eq(http_parse("GET / HTTP/1.1\r\nA: \0\r\n\r\n", 24,
	    8192, &r), HTTP_BAD);
}
END_TEST

START_TEST(test_bad_handshakes)
{
	struct http_req	 r;

	ck_assert_int_eq(parse("POST / HTTP/1.1\r\nHost: x\r\n\r\n", &r),
	    HTTP_OK);
	ck_assert_int_eq(http_ws_check(&r), HTTP_WS_METHOD);
	ck_assert_int_eq(parse(HS("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
	    &r), HTTP_OK);
	ck_assert_int_eq(http_ws_check(&r), HTTP_WS_BAD);
	ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: short==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n", &r), HTTP_OK);
	ck_assert_int_eq(http_ws_check(&r), HTTP_WS_BAD);
	ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n", &r), HTTP_OK);
	ck_assert_int_eq(http_ws_check(&r), HTTP_WS_BAD);	/* no Connection */
	ck_assert_int_eq(parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n", &r), HTTP_OK);
	ck_assert_int_eq(http_ws_check(&r), HTTP_WS_BAD);	/* no Host */
	ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 8\r\n\r\n", &r), HTTP_OK);
	ck_assert_int_eq(http_ws_check(&r), HTTP_WS_VERSION);
	ck_assert_int_eq(parse(HS("Origin: http://evil.example\r\n"), &r),
	    HTTP_OK);
	ck_assert_int_eq(http_origin_check(&r, "self"), HTTP_ORIGIN_DENIED);
	ck_assert_int_eq(parse(HS(""), &r), HTTP_OK);
	ck_assert_int_eq(http_origin_check(&r, "self"), HTTP_ORIGIN_OK);
}
END_TEST

START_TEST(test_static_names)
{
	static const char *no[] = {
		"", "x", "//", "/../etc/passwd", "/..", "/.hidden",
		"/a/b", "/%2e%2e/x", "/a\\b", "/www/../x", "/ index",
	};
	struct http_str	 p;
	char		 name[32];
	size_t		 i;

	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		p.p = no[i];
		p.len = strlen(no[i]);
		ck_assert_msg(http_static_name(&p, name, sizeof(name)) == -1,
		    "%s accepted", no[i]);
	}
	p.p = "/";
	p.len = 1;
	ck_assert_int_eq(http_static_name(&p, name, sizeof(name)), 0);
	ck_assert_str_eq(name, "index.html");
	p.p = "/app.js";
	p.len = 7;
	ck_assert_int_eq(http_static_name(&p, name, sizeof(name)), 0);
	ck_assert_str_eq(name, "app.js");
	p.p = "/a-very-long-name-that-does-not-fit.js";
	p.len = strlen(p.p);
	ck_assert_int_eq(http_static_name(&p, name, sizeof(name)), -1);
	ck_assert_str_eq(http_mime("app.js"), "text/javascript; charset=utf-8");
	ck_assert_str_eq(http_mime("x.bin"), "application/octet-stream");
}
END_TEST

/* The request line of /metrics and /health (metrics.c). */
START_TEST(test_request_line)
{
	static const struct {
		const char	*in;
		int		 eof;
		enum http_line	 want;
		const char	*path;
	} t[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 0, HTTP_LINE_OK,
		    "/metrics" },
		{ "HEAD /health?x=1 HTTP/1.0\n\n", 0, HTTP_LINE_OK, "/health" },
		{ "GET  /a#b   HTTP/1.1\r\n\r\n", 0, HTTP_LINE_OK, "/a" },
		{ "GET /metrics HTTP/1.1\r\n", 0, HTTP_LINE_MORE, NULL },
		{ "GET /metrics HTTP/1.1", 1, HTTP_LINE_OK, "/metrics" },
		{ "", 1, HTTP_LINE_EMPTY, NULL },
		{ "POST /metrics HTTP/1.1\r\n\r\n", 0, HTTP_LINE_METHOD, NULL },
		{ "GET metrics HTTP/1.1\r\n\r\n", 0, HTTP_LINE_BAD, NULL },
		{ "GET /m HTTP/1.1 x\r\n\r\n", 0, HTTP_LINE_BAD, NULL },
		{ "GET /m HTTP/2\r\n\r\n", 0, HTTP_LINE_BAD, NULL },
		{ "GET /m\r\n\r\n", 0, HTTP_LINE_BAD, NULL },
	};
	struct http_line_req	 r;
	char			 big[400];
	size_t			 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ck_assert_msg(http_request_line(t[i].in, strlen(t[i].in),
		    t[i].eof, &r) == t[i].want, "%s", t[i].in);
		if (t[i].path != NULL) {
			ck_assert_uint_eq(r.path.len, strlen(t[i].path));
			ck_assert(memcmp(r.path.p, t[i].path, r.path.len) == 0);
			ck_assert_int_eq(r.head, t[i].in[0] == 'H');
		}
	}
	ck_assert_int_eq(http_request_line("GET /\0 HTTP/1.1\n\n", 17, 0, &r),
	    HTTP_LINE_BAD);
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	memcpy(big + sizeof(big) - 13, " HTTP/1.1\n\n", 12);
	ck_assert_int_eq(http_request_line(big, sizeof(big) - 1, 0, &r),
	    HTTP_LINE_BAD);
}
END_TEST

/* A masked client frame into b: its length. */
static size_t
wsf_put(unsigned char *b, int fin, int op, size_t len)
{
	size_t	 o = 0, i;

	b[o++] = (fin ? 0x80 : 0) | op;
	if (len < 126)
		b[o++] = 0x80 | len;
	else if (len < 65536) {
		b[o++] = 0x80 | 126;
		b[o++] = len >> 8;
		b[o++] = len & 0xff;
	} else {
		b[o++] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			b[o++] = (uint64_t)len >> (56 - 8 * i) & 0xff;
	}
	memcpy(b + o, "\x01\x02\x03\x04", 4);
	o += 4;
	memset(b + o, 'x', len);
	return o + len;
}

START_TEST(test_ws_units)
{
	static unsigned char	 b[200000];
	struct wsf_head		 h;
	size_t			 n, a, span, i;

	/* one text frame: whole only with its last byte */
	n = wsf_put(b, 1, 1, 5);
	ck_assert_uint_eq(n, 11);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(wsf_unit(b, i, 1000, &span), WSF_MORE);
	ck_assert_int_eq(wsf_unit(b, n, 1000, &span), WSF_WHOLE);
	ck_assert_uint_eq(span, n);
	/* and the next one is not part of it */
	a = wsf_put(b + n, 1, 1, 300);
	ck_assert_int_eq(wsf_unit(b, n + a - 1, 1000, &span), WSF_WHOLE);
	ck_assert_uint_eq(span, n);
	ck_assert_int_eq(wsf_head(b + n, a, &h), WSF_WHOLE);
	ck_assert_uint_eq(h.len, 300);
	ck_assert_uint_eq(h.head_len, 8);
	/* 64-bit length */
	n = wsf_put(b, 1, 1, 70000);
	ck_assert_int_eq(wsf_head(b, n, &h), WSF_WHOLE);
	ck_assert_uint_eq(h.len, 70000);
	ck_assert_uint_eq(h.head_len, 14);
	ck_assert_int_eq(wsf_unit(b, n, 100000, &span), WSF_WHOLE);
	ck_assert_uint_eq(span, n);
	ck_assert_int_eq(wsf_unit(b, 20, 1000, &span), WSF_TOO_BIG);

	/* a fragmented message with a ping between: one unit */
	n = wsf_put(b, 0, 1, 10);
	n += wsf_put(b + n, 1, 9, 3);
	n += wsf_put(b + n, 0, 0, 10);
	n += wsf_put(b + n, 1, 0, 4);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(wsf_unit(b, i, 1000, &span), WSF_MORE);
	ck_assert_int_eq(wsf_unit(b, n, 1000, &span), WSF_WHOLE);
	ck_assert_uint_eq(span, n);
	/* its payload counts whole against max */
	ck_assert_int_eq(wsf_unit(b, n, 23, &span), WSF_TOO_BIG);
	ck_assert_int_eq(wsf_unit(b, n, 24, &span), WSF_WHOLE);
	/* a ping alone is a unit */
	n = wsf_put(b, 1, 9, 0);
	ck_assert_int_eq(wsf_unit(b, n, 1000, &span), WSF_WHOLE);
	ck_assert_uint_eq(span, 6);
}
END_TEST

START_TEST(test_ws_bad)
{
	unsigned char	 b[64];
	struct wsf_head	 h;
	size_t		 n, span, i;

	n = wsf_put(b, 1, 0, 2);	/* continuation, nothing begun */
	ck_assert_int_eq(wsf_unit(b, n, 1000, &span), WSF_BAD);
	n = wsf_put(b, 0, 1, 2);	/* a new message inside one */
	n += wsf_put(b + n, 1, 2, 2);
	ck_assert_int_eq(wsf_unit(b, n, 1000, &span), WSF_BAD);
	n = wsf_put(b, 0, 9, 2);	/* a fragmented ping */
	ck_assert_int_eq(wsf_unit(b, n, 1000, &span), WSF_BAD);
	b[0] = 0x89;			/* a ping over 125 bytes */
	b[1] = 0x80 | 126;
	ck_assert_int_eq(wsf_head(b, 4, &h), WSF_BAD);
	for (i = 3; i <= 7; i++) {	/* reserved opcodes */
		b[0] = 0x80 | i;
		b[1] = 0x80;
		ck_assert_int_eq(wsf_head(b, 6, &h), WSF_BAD);
	}
	b[0] = 0x80 | 0x0b;
	ck_assert_int_eq(wsf_head(b, 6, &h), WSF_BAD);
	b[0] = 0xc1;			/* RSV1: no extension agreed */
	ck_assert_int_eq(wsf_head(b, 6, &h), WSF_BAD);
	b[0] = 0x81;			/* not masked */
	b[1] = 0x05;
	ck_assert_int_eq(wsf_head(b, 7, &h), WSF_BAD);
	b[1] = 0x80 | 126;		/* 16-bit length under 126 */
	b[2] = 0;
	b[3] = 125;
	ck_assert_int_eq(wsf_head(b, 8, &h), WSF_BAD);
	b[1] = 0x80 | 127;		/* 64-bit length, top bit set */
	memset(b + 2, 0xff, 8);
	ck_assert_int_eq(wsf_head(b, 14, &h), WSF_BAD);
	ck_assert_int_eq(wsf_head(b, 5, &h), WSF_MORE);
	/* endless empty fragments: bounded */
	{
		static unsigned char	 big[20000];
		size_t			 m = 0;

		m = wsf_put(big, 0, 1, 0);
		while (m + 6 < sizeof(big))
			m += wsf_put(big + m, 0, 0, 0);
		ck_assert_int_eq(wsf_unit(big, m, 1000, &span),
		    WSF_TOO_BIG);
		ck_assert_int_eq(wsf_unit(big, 1000, 1000, &span), WSF_MORE);
	}
}
END_TEST

static Suite *
http_suite(void)
{
	Suite	*s = suite_create("http");
	TCase	*tc = tcase_create("core");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_rfc_example);
	tcase_add_test(tc, test_partial_and_limits);
	tcase_add_test(tc, test_bad_heads);
	tcase_add_test(tc, test_bad_handshakes);
	tcase_add_test(tc, test_static_names);
	tcase_add_test(tc, test_request_line);
	tcase_add_test(tc, test_ws_units);
	tcase_add_test(tc, test_ws_bad);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run(http_suite());
}
