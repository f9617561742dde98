/*
 * fuzz_http.c - libFuzzer target for the WebSocket listener's HTTP
 * parser: http_parse on the input, fed whole and byte by byte growing
 * (as reads arrive), must agree; then every check runs on what parsed,
 * and every string it returns must lie inside the input.  The same
 * input as a WebSocket client's stream: wsf_unit's units lie inside it,
 * and a shorter prefix of a unit is never whole.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "wsframe.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

static void
inside(const struct http_str *s, const uint8_t *d, size_t n)
{
	if (s->p == NULL) {
		CHECK(s->len == 0);
		return;
	}
	CHECK((const uint8_t *)s->p >= d);
	CHECK((const uint8_t *)s->p + s->len <= d + n);
}

static void
ws_units(const uint8_t *d, size_t n)
{
	size_t		 off = 0, span, cut, s2;
	enum wsf_status	 st;

	while (off < n && (st = wsf_unit(d + off, n - off, 300, &span)) ==
	    WSF_WHOLE) {
		CHECK(span >= 6 && span <= n - off);
		for (cut = 0; cut < span; cut += 1 + cut / 3)
			CHECK(wsf_unit(d + off, cut, 300, &s2) != WSF_WHOLE);
		off += span;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct http_req		 r, r2;
	enum http_status	 st, st2;
	char			 acc[HTTP_ACCEPT_LEN + 1], name[64];
	size_t			 max = 4096, i;

	ws_units(d, n);

	st = http_parse((const char *)d, n, max, &r);
	/* a prefix never gives another verdict than NEED_MORE or the same */
	for (i = 0; i < n && i < 512; i += 7) {
		st2 = http_parse((const char *)d, i, max, &r2);
		if (st == HTTP_OK && i < r.head_len)
			CHECK(st2 == HTTP_NEED_MORE || st2 == HTTP_BAD);
	}
	if (st != HTTP_OK)
		return 0;
	CHECK(r.head_len > 0 && r.head_len <= n && r.head_len <= max);
	inside(&r.method, d, n);
	inside(&r.target, d, n);
	inside(&r.path, d, n);
	inside(&r.host, d, n);
	inside(&r.origin, d, n);
	inside(&r.key, d, n);
	inside(&r.version, d, n);
	CHECK(r.path.len <= r.target.len);
	if (http_ws_check(&r) == HTTP_WS_UPGRADE) {
		CHECK(http_ws_accept(&r.key, acc) == 0);
		CHECK(strlen(acc) == HTTP_ACCEPT_LEN);
	}
	(void)http_origin_check(&r, "self https://chat.example.org");
	if (http_static_name(&r.path, name, sizeof(name)) == 0) {
		CHECK(strstr(name, "..") == NULL || name[0] != '.');
		CHECK(strchr(name, '/') == NULL && name[0] != '.');
		(void)http_mime(name);
	}
	return 0;
}
