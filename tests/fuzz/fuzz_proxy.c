/*
 * fuzz_proxy.c - libFuzzer target for proxy_parse.
 *
 * The whole input is parsed, then every prefix of the header found:
 * a prefix must never be PROXY_OK (the header would be cut short) and
 * a header must never claim more bytes than it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr	 h, h2;
	enum proxy_status	 st;
	char			 why[64];
	uint8_t			*copy;
	size_t			 i;

	/* an exact-size copy, so ASan sees any read past the end */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	why[0] = '\0';
	st = proxy_parse(copy, size, &h, why, sizeof(why));
	CHECK(st == PROXY_OK || st == PROXY_NEED_MORE || st == PROXY_BAD);
	if (st == PROXY_BAD)
		CHECK(why[0] != '\0' && memchr(why, '\0', sizeof(why)));
	if (st == PROXY_OK) {
		CHECK(h.len > 0 && h.len <= size);
		CHECK(h.version == 1 || h.version == 2);
		CHECK(h.version != 1 || h.len <= PROXY_V1_MAX);
		CHECK(h.local || h.src.ss_family == AF_INET ||
		    h.src.ss_family == AF_INET6);
		/* the header alone parses the same; its prefixes want more */
		CHECK(proxy_parse(copy, h.len, &h2, NULL, 0) == PROXY_OK);
		CHECK(h2.len == h.len && h2.local == h.local);
		for (i = 0; i < h.len; i++)
			CHECK(proxy_parse(copy, i, &h2, NULL, 0) ==
			    PROXY_NEED_MORE);
	}
	free(copy);
	return 0;
}
