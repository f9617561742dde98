/*
 * fuzz_busitem.c - libFuzzer target for the Redis bus item decoder
 * (busauth_check in src/server/cluster/busitem.c).  Each input is tried
 * three ways: as an item straight off Redis (anything but a good MAC is
 * refused); as "<node> <ms> <id> <body>" behind a correct MAC, so the
 * parsing, age and replay rules behind the MAC are reached; and as a
 * body signed by busauth_sign, which must check as BUS_OK with the same
 * body, then as BUS_REPLAYED once seen.  What a good item points at lies
 * inside the item.  The input is also walked as a version 2 batch
 * (bus_batch_next): every item it yields lies inside the input, the
 * walk moves forward and ends.  The same for version 3 sealed batches
 * (busauth_open, bus_sealed_next), and a body sealed here comes back.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "busitem.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)
#define KEY		"fuzz-cluster-key-0123456789abcdef"
#define OLDKEY		"fuzz-old-key-fedcba9876543210"
#define NOW_MS		1765000000000LL

static struct busauth	*auth;

static void
inside(const struct bus_item *it, const char *item, size_t len)
{
	CHECK(it->src >= item && it->src + it->srclen <= item + len);
	CHECK(it->body >= item && it->body + it->blen <= item + len);
	CHECK(it->srclen > 0 && memchr(it->src, ' ', it->srclen) == NULL);
}

static enum bus_verdict
check(const char *item, size_t len)
{
	struct bus_item		 it;
	enum bus_verdict	 v;

	memset(&it, 0, sizeof(it));
	v = busauth_check(auth, NOW_MS, item, len, &it);
	CHECK(bus_verdict_str(v) != NULL);
	if (v == BUS_OK)
		inside(&it, item, len);
	return v;
}

/* "<hex HMAC of rest under key> <rest>", a new string. */
static char *
with_mac(const char *key, const uint8_t *rest, size_t n, size_t *len)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	char		*out;
	size_t		 i;

	CHECK(HMAC(EVP_sha256(), key, (int)strlen(key), rest, n, md,
	    &mdlen) != NULL && mdlen == 32);
	if ((out = malloc(64 + 1 + n)) == NULL)
		return NULL;
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = ' ';
	memcpy(out + 65, rest, n);
	*len = 65 + n;
	return out;
}

static void
walk(const char *p, size_t n)
{
	const char		*item;
	size_t			 pos = 0, last = 0, il;
	enum bus_batch_step	 st;

	CHECK(bus_item_version(p, n) >= 0);
	while ((st = bus_batch_next(p, n, &pos, &item, &il)) ==
	    BUS_BATCH_ITEM) {
		CHECK(item > p && il > 0 && item + il <= p + n);
		CHECK(pos > last && pos <= n);
		last = pos;
		(void)check(item, il);
	}
	CHECK(st == BUS_BATCH_END || st == BUS_BATCH_BAD);
}

/*
 * A version 3 sealed batch: what busauth_open accepts points inside it,
 * and the walk of its items (bus_sealed_next) stays inside and ends.
 */
static void
open_sealed(const char *p, size_t n)
{
	struct bus_item		 el;
	const char		*item;
	size_t			 pos = 0, last = 0, il;
	uint64_t		 seq;
	enum bus_batch_step	 st;

	memset(&el, 0, sizeof(el));
	if (busauth_open(auth, NOW_MS, p, n, &el) != BUS_OK)
		return;
	inside(&el, p, n);
	while ((st = bus_sealed_next(el.body, el.blen, &pos, &seq, &item,
	    &il)) == BUS_BATCH_ITEM) {
		CHECK(item > el.body && il > 0 && item + il <= p + n);
		CHECK(pos > last && pos <= el.blen && seq > 0);
		/* the window of the source, whatever the seqs */
		if (busauth_has_seen(auth, el.tag, seq) == 0 && (seq & 1))
			busauth_seen(auth, NOW_MS, el.tag, seq);
		last = pos;
	}
	CHECK(st == BUS_BATCH_END || st == BUS_BATCH_BAD);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char			 err[128], *item, *p;
	size_t			 len, off;
	struct bus_item		 it;

	if (auth == NULL && (auth = busauth_new(KEY, OLDKEY, "fuzz-node",
	    "1.0", 60, err, sizeof(err))) == NULL)
		abort();

	/* straight off Redis: a copy of exactly n bytes (no NUL after) */
	if ((p = malloc(n ? n : 1)) == NULL)
		return 0;
	memcpy(p, d, n);
	CHECK(n >= 64 || check(p, n) == BUS_MALFORMED);
	(void)check(p, n);
	walk(p, n);
	free(p);

	/* behind a good MAC, under the current key and the old one */
	if ((item = with_mac(n & 1 ? OLDKEY : KEY, d, n, &len)) != NULL) {
		if (check(item, len) == BUS_OK) {
			memset(&it, 0, sizeof(it));
			CHECK(busauth_check(auth, NOW_MS, item, len, &it) ==
			    BUS_OK);
			if (len & 2) {
				busauth_seen(auth, NOW_MS, it.tag, it.seq);
				CHECK(check(item, len) == BUS_REPLAYED);
			}
		}
		free(item);
	}

	/* as a sealed batch's signed part, behind "v3 " and a good MAC */
	if ((item = with_mac(n & 1 ? OLDKEY : KEY, d, n, &len)) != NULL &&
	    (p = malloc(len + 3)) != NULL) {
		memcpy(p, "v3 ", 3);
		memcpy(p + 3, item, len);
		open_sealed(p, len + 3);
		open_sealed(p, n);
		free(p);
	}
	free(item);

	/* sealed here as one body: must come back whole */
	if (n > 0) {
		const char	*body = (const char *)d;
		uint64_t	 seq = busauth_next_seq(auth);

		len = bus_seal_len(auth, NOW_MS, &n, &seq, 1);
		if (len > 0 && (p = malloc(len)) != NULL) {
			const char	*got;
			size_t		 pos = 0, il;
			uint64_t	 s2;

			CHECK(busauth_seal(auth, NOW_MS, &body, &n, &seq, 1, p,
			    len) == 0);
			memset(&it, 0, sizeof(it));
			CHECK(busauth_open(auth, NOW_MS, p, len, &it) ==
			    BUS_OK);
			CHECK(bus_sealed_next(it.body, it.blen, &pos, &s2, &got,
			    &il) == BUS_BATCH_ITEM);
			CHECK(s2 == seq && il == n && memcmp(got, d, n) == 0);
			free(p);
		}
	}

	/* signed here: must come back whole, once */
	if (n > 0 && busauth_sign(auth, NOW_MS, (const char *)d, n, &item,
	    &len, &off) == 0) {
		memset(&it, 0, sizeof(it));
		CHECK(busauth_check(auth, NOW_MS, item, len, &it) == BUS_OK);
		inside(&it, item, len);
		CHECK(it.blen == n && memcmp(it.body, d, n) == 0);
		CHECK(it.body == item + off);
		busauth_seen(auth, NOW_MS, it.tag, it.seq);
		CHECK(check(item, len) == BUS_REPLAYED);
		free(item);
	}
	return 0;
}
