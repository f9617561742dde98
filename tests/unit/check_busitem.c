/*
 * check_busitem.c - signatures on Redis items: what a node signs is
 * accepted by another node with the key (or the old key during a
 * rollover); a forged, altered, truncated, stale, future or replayed
 * item is refused; the memory of handed-off items is bounded.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "busitem.h"
#include "check_run.h"

#define KEY	"0123456789abcdef0123456789abcdef"
#define KEY2	"fedcba9876543210fedcba9876543210"
#define NOW	1700000000000LL

static char	 err[256];

static struct busauth *
auth(const char *key, const char *old, const char *node)
{
	struct busauth	*a;

	a = busauth_new(key, old, node, "ab12.0", 300, err, sizeof(err));
	ck_assert_msg(a != NULL, "%s", err);
	return a;
}

static char *
sign(struct busauth *a, int64_t ms, const char *body, size_t *len)
{
	char	*out;
	size_t	 off;

	ck_assert_int_eq(busauth_sign(a, ms, body, strlen(body), &out, len,
	    &off), 0);
	ck_assert_mem_eq(out + off, body, strlen(body));
	return out;
}

START_TEST(test_roundtrip)
{
	struct busauth	*s = auth(KEY, NULL, "node-a"), *r = auth(KEY, NULL,
			    "node-b");
	struct bus_item	 it;
	char		*item;
	size_t		 len;

	item = sign(s, NOW, "42 {\"msg\":\"hi\"}\n", &len);
	ck_assert_int_eq(busauth_check(r, NOW + 1000, item, len, &it),
	    BUS_OK);
	ck_assert_int_eq(it.srclen, 6);
	ck_assert_mem_eq(it.src, "node-a", 6);
	ck_assert_int_eq(it.ms, NOW);
	ck_assert_int_eq(it.blen, strlen("42 {\"msg\":\"hi\"}\n"));
	ck_assert_mem_eq(it.body, "42 {\"msg\":\"hi\"}\n", it.blen);
	/* not seen until handed off; then a replay */
	ck_assert_int_eq(busauth_check(r, NOW, item, len, &it), BUS_OK);
	busauth_seen(r, NOW, it.tag, it.seq);
	ck_assert_int_eq(busauth_check(r, NOW, item, len, &it),
	    BUS_REPLAYED);
	free(item);
	/* two signatures of one body differ (a counter inside) */
	{
		char	*a1, *a2;
		size_t	 l1, l2;

		a1 = sign(s, NOW, "7", &l1);
		a2 = sign(s, NOW, "7", &l2);
		ck_assert(l1 != l2 || memcmp(a1, a2, l1) != 0);
		free(a1);
		free(a2);
	}
	busauth_free(s);
	busauth_free(r);
}
END_TEST

/* The MAC is HMAC-SHA256 of what follows it, as OpenSSL computes it. */
START_TEST(test_is_hmac)
{
	static const char *const keys[] = { KEY, KEY KEY KEY "-longer-than-"
	    "a-block" };
	struct busauth	*a;
	unsigned char	 m[32];
	unsigned int	 mlen = 0;
	char		*item, hex[65];
	size_t		 len, i, k;

	for (k = 0; k < 2; k++) {
		a = auth(keys[k], NULL, "node-a");
		item = sign(a, NOW, "42 x\n", &len);
		ck_assert_ptr_nonnull(HMAC(EVP_sha256(), keys[k],
		    (int)strlen(keys[k]), (unsigned char *)item + 65, len - 65,
		    m, &mlen));
		ck_assert_uint_eq(mlen, 32);
		for (i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", m[i]);
		ck_assert_mem_eq(item, hex, 64);
		free(item);
		busauth_free(a);
	}
}
END_TEST

START_TEST(test_refused)
{
	struct busauth	*s = auth(KEY, NULL, "node-a"), *r = auth(KEY, NULL,
			    "node-b"), *x = auth(KEY2, NULL, "node-x");
	struct bus_item	 it;
	char		*item;
	size_t		 len;

	/* another key */
	item = sign(x, NOW, "42 hello\n", &len);
	ck_assert_int_eq(busauth_check(r, NOW, item, len, &it), BUS_FORGED);
	free(item);
	/* one byte changed anywhere after the MAC, or in it */
	item = sign(s, NOW, "42 hello\n", &len);
	for (size_t i = 0; i < len; i++) {
		char	 c = item[i];

		if (c == ' ')
			continue;
		item[i] = c == '1' ? '2' : '1';
		ck_assert_int_ne(busauth_check(r, NOW, item, len, &it),
		    BUS_OK);
		item[i] = c;
	}
	/* cut short */
	for (size_t n = 0; n < len; n++)
		ck_assert_int_ne(busauth_check(r, NOW, item, n, &it), BUS_OK);
	ck_assert_int_eq(busauth_check(r, NOW, item, len, &it), BUS_OK);
	/* too old, or from too far ahead */
	ck_assert_int_eq(busauth_check(r, NOW + 301000, item, len, &it),
	    BUS_STALE);
	ck_assert_int_eq(busauth_check(r, NOW - 61000, item, len, &it),
	    BUS_STALE);
	free(item);
	ck_assert_int_eq(busauth_check(r, NOW, "", 0, &it), BUS_MALFORMED);
	ck_assert_int_eq(busauth_check(r, NOW, "zz", 2, &it), BUS_MALFORMED);
	busauth_free(s);
	busauth_free(r);
	busauth_free(x);
}
END_TEST

START_TEST(test_rollover)
{
	struct busauth	*old = auth(KEY, NULL, "node-a"),
			*new = auth(KEY2, NULL, "node-b"),
			*both = auth(KEY2, KEY, "node-c");
	struct bus_item	 it;
	char		*i1, *i2;
	size_t		 l1, l2;

	i1 = sign(old, NOW, "1 a\n", &l1);
	i2 = sign(new, NOW, "1 b\n", &l2);
	ck_assert_int_eq(busauth_check(both, NOW, i1, l1, &it), BUS_OK);
	ck_assert_int_eq(busauth_check(both, NOW, i2, l2, &it), BUS_OK);
	ck_assert_int_eq(busauth_check(new, NOW, i1, l1, &it), BUS_FORGED);
	free(i1);
	free(i2);
	/* the old key never signs */
	i1 = sign(both, NOW, "1 c\n", &l1);
	ck_assert_int_eq(busauth_check(new, NOW, i1, l1, &it), BUS_OK);
	ck_assert_int_eq(busauth_check(old, NOW, i1, l1, &it), BUS_FORGED);
	free(i1);
	busauth_free(old);
	busauth_free(new);
	busauth_free(both);
}
END_TEST

/* The memory of handed-off items keeps the newest 2^18 and no more. */
START_TEST(test_seen_bounded)
{
	struct busauth	*a = auth(KEY, NULL, "n");
	struct bus_item	 it;
	char		*first, *last = NULL, *item;
	size_t		 flen, llen = 0, len, i;

	first = sign(a, NOW, "1", &flen);
	ck_assert_int_eq(busauth_check(a, NOW, first, flen, &it), BUS_OK);
	busauth_seen(a, NOW, it.tag, it.seq);
	for (i = 0; i < (1u << 18) + 10; i++) {
		item = sign(a, NOW, "2", &len);
		ck_assert_int_eq(busauth_check(a, NOW, item, len, &it),
		    BUS_OK);
		busauth_seen(a, NOW, it.tag, it.seq);
		free(last);
		last = item;
		llen = len;
	}
	ck_assert_int_eq(busauth_check(a, NOW, last, llen, &it),
	    BUS_REPLAYED);
	ck_assert_int_eq(busauth_check(a, NOW, first, flen, &it), BUS_OK);
	free(first);
	free(last);
	busauth_free(a);
}
END_TEST

START_TEST(test_once_per_source)
{
	struct busauth	*a = auth(KEY, NULL, "n");

	ck_assert_int_eq(busauth_first_report(a, "x", 1), 1);
	ck_assert_int_eq(busauth_first_report(a, "x", 1), 0);
	ck_assert_int_eq(busauth_first_report(a, "xy", 2), 1);
	ck_assert_ptr_null(busauth_new(NULL, NULL, "n", "i", 300, err,
	    sizeof(err)));
	ck_assert_ptr_null(busauth_new(KEY, NULL, "a b", "i", 300, err,
	    sizeof(err)));
	busauth_free(a);
	busauth_free(NULL);
}
END_TEST

/*
 * Version 2 batches: the items packed come out as they went in, each
 * still checked on its own; the versions are told apart; a batch cut
 * short or with a bad length is refused, not read past its end.
 */
START_TEST(test_batch)
{
	struct busauth	*s = auth(KEY, NULL, "node-a"), *r = auth(KEY, NULL,
			    "node-b");
	struct bus_item	 it;
	const char	*bodies[3] = { "1 {\"a\":1}", "22 x:y 3:z", "7" };
	const char	*items[3], *p;
	const char	*bad[] = { "v2 99:abc", "v2 :abc", "v2 0:", "v2 3x",
			    "v3 3:abc" };
	char		*signed_[3], *batch;
	size_t		 lens[3], blen, pos = 0, il, i;

	for (i = 0; i < 3; i++) {
		signed_[i] = sign(s, NOW, bodies[i], &lens[i]);
		items[i] = signed_[i];
		ck_assert_int_eq(bus_item_version(items[i], lens[i]), 1);
	}
	ck_assert_int_eq(bus_batch_pack(items, lens, 3, &batch, &blen), 0);
	ck_assert_int_eq(bus_item_version(batch, blen), 2);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(bus_batch_next(batch, blen, &pos, &p, &il),
		    BUS_BATCH_ITEM);
		ck_assert_uint_eq(il, lens[i]);
		ck_assert_mem_eq(p, items[i], il);
		ck_assert_int_eq(busauth_check(r, NOW, p, il, &it), BUS_OK);
		ck_assert_mem_eq(it.body, bodies[i], strlen(bodies[i]));
	}
	ck_assert_int_eq(bus_batch_next(batch, blen, &pos, &p, &il),
	    BUS_BATCH_END);
	/* every cut of the batch: never an item reaching past the cut */
	for (i = 0; i < blen; i++) {
		enum bus_batch_step st;

		pos = 0;
		while ((st = bus_batch_next(batch, i, &pos, &p, &il)) ==
		    BUS_BATCH_ITEM)
			ck_assert(p + il <= batch + i);
	}
	/* a length beyond the end, none, zero, not a number; not v2 */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pos = 0;
		ck_assert_int_eq(bus_batch_next(bad[i], strlen(bad[i]), &pos,
		    &p, &il), BUS_BATCH_BAD);
	}
	/* versions: newer ones named, junk is 0 */
	ck_assert_int_eq(bus_item_version("v3 x", 4), 3);
	ck_assert_int_eq(bus_item_version("v12 x", 5), 12);
	ck_assert_int_eq(bus_item_version("v x", 3), 0);
	ck_assert_int_eq(bus_item_version("v3", 2), 0);
	ck_assert_int_eq(bus_item_version("zz", 2), 0);
	ck_assert_int_eq(bus_item_version("", 0), 0);
	for (i = 0; i < 3; i++)
		free(signed_[i]);
	free(batch);
	busauth_free(s);
	busauth_free(r);
}
END_TEST

/* Seal bodies[0..n) with seqs at ms into a new string (*len). */
static char *
seal(struct busauth *a, int64_t ms, const char *const *bodies,
    const uint64_t *seqs, size_t n, size_t *len)
{
	size_t	 lens[8], i;
	char	*out;

	for (i = 0; i < n; i++)
		lens[i] = strlen(bodies[i]);
	*len = bus_seal_len(a, ms, lens, seqs, n);
	ck_assert_uint_gt(*len, 0);
	ck_assert_ptr_nonnull(out = malloc(*len));
	ck_assert_int_eq(busauth_seal(a, ms, bodies, lens, seqs, n, out, *len),
	    0);
	ck_assert_int_eq(bus_item_version(out, *len), 3);
	return out;
}

/*
 * Version 3, sealed batches: one MAC over all items, each item coming
 * out as it went in; an item is known by its source and seq only, so
 * the same item sealed again (a publish sent again, another batch,
 * later) is still known as handed off, while another seq or source is
 * not; a changed byte, a wrong key, an old time or a cut is refused;
 * the old key is accepted during a rollover.
 */
START_TEST(test_sealed)
{
	struct busauth	*s = auth(KEY, NULL, "node-a"), *r = auth(KEY, NULL,
			    "node-b"), *x = auth(KEY2, NULL, "node-a"),
			*both = auth(KEY2, KEY, "node-b"),
			*s2 = busauth_new(KEY, NULL, "node-a", "ab12.1", 300,
			    err, sizeof(err));
	struct bus_item	 el, el2;
	const char	*bodies[3] = { "1 {\"a\":1}", "22 x:y 3.4:z", "7" };
	const char	*again[2] = { "7", "1 {\"a\":1}" };
	const char	*bad[] = { "99.2:a", ".1:a", "0.1:a", "1.0:", "1.3x",
			    "1.5:abc", "12" };
	uint64_t	 seqs[3], seqs2[2], seq;
	const char	*p;
	char		*b, *b2, *f;
	size_t		 len, len2, pos = 0, il, i;

	ck_assert_ptr_nonnull(s2);
	for (i = 0; i < 3; i++)
		seqs[i] = busauth_next_seq(s);
	ck_assert(seqs[0] != seqs[1] && seqs[1] != seqs[2]);
	b = seal(s, NOW, bodies, seqs, 3, &len);
	ck_assert_int_eq(busauth_open(r, NOW + 1000, b, len, &el), BUS_OK);
	ck_assert_int_eq(el.srclen, 6);
	ck_assert_mem_eq(el.src, "node-a", 6);
	ck_assert_int_eq(el.ms, NOW);
	ck_assert_uint_eq(el.seq, 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(bus_sealed_next(el.body, el.blen, &pos, &seq,
		    &p, &il), BUS_BATCH_ITEM);
		ck_assert_uint_eq(seq, seqs[i]);
		ck_assert_uint_eq(il, strlen(bodies[i]));
		ck_assert_mem_eq(p, bodies[i], il);
		ck_assert_int_eq(busauth_has_seen(r, el.tag, seq), 0);
	}
	ck_assert_int_eq(bus_sealed_next(el.body, el.blen, &pos, &seq, &p,
	    &il), BUS_BATCH_END);
	busauth_seen(r, NOW, el.tag, seqs[2]);
	busauth_seen(r, NOW, el.tag, seqs[0]);
	/* sent again later, in another batch, in another order */
	seqs2[0] = seqs[2];
	seqs2[1] = seqs[0];
	b2 = seal(s, NOW + 5000, again, seqs2, 2, &len2);
	ck_assert(memcmp(b, b2, 80) != 0);
	ck_assert_int_eq(busauth_open(r, NOW + 6000, b2, len2, &el2), BUS_OK);
	ck_assert_uint_eq(el2.tag, el.tag);
	pos = 0;
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(bus_sealed_next(el2.body, el2.blen, &pos,
		    &seq, &p, &il), BUS_BATCH_ITEM);
		ck_assert_int_eq(busauth_has_seen(r, el2.tag, seq), 1);
	}
	ck_assert_int_eq(busauth_has_seen(r, el.tag, seqs[1]), 0);
	/* the same seq from another worker of that node is another item */
	free(b2);
	b2 = seal(s2, NOW, bodies, seqs, 1, &len2);
	ck_assert_int_eq(busauth_open(r, NOW, b2, len2, &el2), BUS_OK);
	ck_assert_uint_ne(el2.tag, el.tag);
	ck_assert_int_eq(busauth_has_seen(r, el2.tag, seqs[0]), 0);
	/* another key: refused, but for a receiver holding it as old */
	ck_assert_int_eq(busauth_open(r, NOW, f = seal(x, NOW, bodies, seqs, 1,
	    &len2), len2, &el2), BUS_FORGED);
	ck_assert_int_eq(busauth_open(both, NOW, f, len2, &el2), BUS_OK);
	ck_assert_int_eq(busauth_open(both, NOW, b, len, &el2), BUS_OK);
	free(f);
	/* every changed byte after "v3 " and every cut is refused */
	for (i = 3; i < len; i++) {
		b[i] ^= 0x01;
		ck_assert_int_ne(busauth_open(r, NOW, b, len, &el2), BUS_OK);
		b[i] ^= 0x01;
	}
	for (i = 0; i < len; i++)
		ck_assert_int_ne(busauth_open(r, NOW, b, i, &el2), BUS_OK);
	ck_assert_int_eq(busauth_open(r, NOW + 301000, b, len, &el2),
	    BUS_STALE);
	ck_assert_int_eq(busauth_open(r, NOW - 61000, b, len, &el2),
	    BUS_STALE);
	ck_assert_int_eq(busauth_open(r, NOW, "v3 zz", 5, &el2),
	    BUS_MALFORMED);
	/* a version 1 item is not a sealed batch, nor the other way */
	f = sign(s, NOW, "5 x", &len2);
	ck_assert_int_eq(busauth_open(r, NOW, f, len2, &el2), BUS_MALFORMED);
	ck_assert_int_ne(busauth_check(r, NOW, b, len, &el2), BUS_OK);
	free(f);
	/* item lists cut short or wrong: refused, never read past */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pos = 0;
		ck_assert_int_eq(bus_sealed_next(bad[i], strlen(bad[i]), &pos,
		    &seq, &p, &il), BUS_BATCH_BAD);
	}
	for (i = 0; i < el.blen; i++) {
		pos = 0;
		while (bus_sealed_next(el.body, i, &pos, &seq, &p, &il) ==
		    BUS_BATCH_ITEM)
			ck_assert(p + il <= el.body + i);
	}
	/* the caller's buffer must be the size asked */
	ck_assert_int_eq(busauth_seal(s, NOW, bodies, (size_t[]){ 1 }, seqs,
	    1, b, 3), -1);
	free(b);
	free(b2);
	busauth_free(s);
	busauth_free(s2);
	busauth_free(r);
	busauth_free(x);
	busauth_free(both);
}
END_TEST

/*
 * A source's window of seqs: what was marked is known, out of order
 * too; what slid out of it (2^18 seqs behind the highest) is
 * forgotten, like the oldest version 1 items; a jump clears it; a
 * source idle for longer than an item may live gives its window to a
 * new one.
 */
START_TEST(test_sealed_window)
{
	struct busauth	*r = auth(KEY, NULL, "n");
	const uint64_t	 A = 0x1234, B = 0x5678, W = (uint64_t)1 << 18;
	uint64_t	 q;

	busauth_seen(r, NOW, A, 10);
	busauth_seen(r, NOW, A, 5);
	ck_assert_int_eq(busauth_has_seen(r, A, 10), 1);
	ck_assert_int_eq(busauth_has_seen(r, A, 5), 1);
	ck_assert_int_eq(busauth_has_seen(r, A, 7), 0);
	ck_assert_int_eq(busauth_has_seen(r, A, 11), 0);
	ck_assert_int_eq(busauth_has_seen(r, B, 10), 0);
	/* sliding: every seq in turn up to a window on */
	for (q = 11; q <= 10 + W; q++)
		busauth_seen(r, NOW, A, q);
	ck_assert_int_eq(busauth_has_seen(r, A, 10 + W), 1);
	ck_assert_int_eq(busauth_has_seen(r, A, 11), 1);
	ck_assert_int_eq(busauth_has_seen(r, A, 10), 0);	/* forgotten */
	ck_assert_int_eq(busauth_has_seen(r, A, 5), 0);
	/* a jump past a whole window: only the new one is known */
	busauth_seen(r, NOW, A, 100 * W + 3);
	ck_assert_int_eq(busauth_has_seen(r, A, 100 * W + 3), 1);
	ck_assert_int_eq(busauth_has_seen(r, A, 100 * W + 2), 0);
	ck_assert_int_eq(busauth_has_seen(r, A, 99 * W + 4), 0);
	/* a short step clears what it slides over (stale bits of q - W) */
	busauth_seen(r, NOW, A, 100 * W + 3 + W - 1);
	busauth_seen(r, NOW, A, 100 * W + 3 + W + 1);
	ck_assert_int_eq(busauth_has_seen(r, A, 100 * W + 3 + W), 0);
	/* A idle for longer than max age: B takes its window afresh */
	busauth_seen(r, NOW + 400000, B, 42);
	ck_assert_int_eq(busauth_has_seen(r, B, 42), 1);
	ck_assert_int_eq(busauth_has_seen(r, A, 100 * W + 3 + W + 1), 0);
	/* version 1 tags (seq 0) are another memory */
	ck_assert_int_eq(busauth_has_seen(r, 42, 0), 0);
	/* at most 1024 sources: the least recently marked goes first */
	for (q = 1; q <= 1024; q++)
		busauth_seen(r, NOW + 400000 + (int64_t)q, 0x10000 + q, 1);
	ck_assert_int_eq(busauth_has_seen(r, B, 42), 0);
	ck_assert_int_eq(busauth_has_seen(r, 0x10000 + 1, 1), 1);
	busauth_seen(r, NOW + 500000, 0x20000, 1);
	ck_assert_int_eq(busauth_has_seen(r, 0x10000 + 1, 1), 0);
	ck_assert_int_eq(busauth_has_seen(r, 0x10000 + 2, 1), 1);
	ck_assert_int_eq(busauth_has_seen(r, 0x20000, 1), 1);
	busauth_free(r);
}
END_TEST

static Suite *
busitem_suite(void)
{
	Suite	*s = suite_create("busitem");
	TCase	*tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_is_hmac);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_rollover);
	tcase_add_test(tc, test_seen_bounded);
	tcase_add_test(tc, test_once_per_source);
	tcase_add_test(tc, test_batch);
	tcase_add_test(tc, test_sealed);
	tcase_add_test(tc, test_sealed_window);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run(busitem_suite());
}
