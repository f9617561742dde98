/*
 * fuzz_metrics_http.c - libFuzzer target for the request line of the
 * master's /metrics and /health endpoint (http_request_line, moved out
 * of metrics.c): it must agree with the strtok_r parser metrics.c had
 * before, kept here as the reference, with and without eof; a path it
 * returns lies in the request line and starts with '/'.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

enum { REF_MORE, REF_CLOSE, REF_400, REF_405, REF_OK };

/* metrics.c's http_input up to the choice of the answer, as it was. */
static int
reference(const char *p, size_t len, int eof, int *head, char *path,
    size_t pathlen)
{
	char	 line[256], *method, *target, *version, *save;
	size_t	 llen;

	if (memmem(p, len, "\r\n\r\n", 4) == NULL &&
	    memmem(p, len, "\n\n", 2) == NULL) {
		if (!eof)
			return REF_MORE;
		if (len == 0)
			return REF_CLOSE;
	}
	for (llen = 0; llen < len && p[llen] != '\r' && p[llen] != '\n';
	    llen++)
		;
	if (memchr(p, '\0', len) != NULL || llen >= sizeof(line))
		return REF_400;
	memcpy(line, p, llen);
	line[llen] = '\0';
	method = strtok_r(line, " ", &save);
	target = method != NULL ? strtok_r(NULL, " ", &save) : NULL;
	version = target != NULL ? strtok_r(NULL, " ", &save) : NULL;
	if (version == NULL || strtok_r(NULL, " ", &save) != NULL ||
	    strncmp(version, "HTTP/1.", 7) != 0 || target[0] != '/')
		return REF_400;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return REF_405;
	*head = strcmp(method, "HEAD") == 0;
	target[strcspn(target, "?#")] = '\0';
	CHECK(strlen(target) < pathlen);
	strcpy(path, target);
	return REF_OK;
}

static void
one(const char *p, size_t len, int eof)
{
	struct http_line_req	 r;
	enum http_line		 got;
	char			 path[256];
	int			 want, head = 0;

	want = reference(p, len, eof, &head, path, sizeof(path));
	got = http_request_line(p, len, eof, &r);
	switch (want) {
	case REF_MORE:
		CHECK(got == HTTP_LINE_MORE);
		break;
	case REF_CLOSE:
		CHECK(got == HTTP_LINE_EMPTY);
		break;
	case REF_400:
		CHECK(got == HTTP_LINE_BAD);
		break;
	case REF_405:
		CHECK(got == HTTP_LINE_METHOD);
		break;
	default:
		CHECK(got == HTTP_LINE_OK);
		CHECK(r.head == head);
		CHECK(r.path.p >= p && r.path.p + r.path.len <= p + len);
		CHECK(r.path.len > 0 && r.path.p[0] == '/');
		CHECK(r.path.len == strlen(path) &&
		    memcmp(r.path.p, path, r.path.len) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	/* copies of exactly n bytes, so ASan sees any read past the end */
	char	*p = malloc(n ? n : 1);

	if (p == NULL)
		return 0;
	memcpy(p, d, n);
	one(p, n, 0);
	one(p, n, 1);
	free(p);
	return 0;
}
