/*
 * busitem.c - HMAC-SHA256 signatures on Redis items, with a bounded
 * memory of the items handed off (replays) and of the sources already
 * reported (one log line each).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * HMAC-SHA256 from SHA-256 states keyed once (RFC 2104): a struct copy
 * per item.  OpenSSL 3's HMAC() and EVP_MAC fetch or copy contexts each
 * time, 2.5 to 4.5 us per item here against 0.65; the SHA256_* calls
 * are deprecated in 3.0 but kept.  check_busitem compares with HMAC().
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "busitem.h"
#include "util.h"

#define MAC_LEN		32
#define MAC_HEX		(2 * MAC_LEN)
#define SEEN_BITS	18		/* remembers the last 2^18 items */
#define SEEN_N		(1u << SEEN_BITS)
#define SEEN_CAP	(SEEN_N * 2)	/* hash slots, half full at most */
#define SOURCES_MAX	64		/* reported by name; then counted */
#define FUTURE_MS	60000		/* clock skew tolerated */

struct busauth {
	struct hkey	*key, *oldkey;
	char		*node;
	char		*id;
	uint64_t	 seq;
	int64_t		 max_age_ms;
	uint64_t	*ring;		/* FIFO of the tags in the set */
	size_t		 ring_head, ring_n;
	uint64_t	*set;		/* open addressing, 0 empty */
	char		*sources[SOURCES_MAX];
	size_t		 nsources;
	struct srcwin	*wins;		/* sealed items' sources */
	size_t		 nwins, lastwin;
};

/*
 * What was handed off of one source's sealed items (version 3): a bit
 * per seq for its last WIN_N seqs, below top.  Seqs rise as the source
 * publishes, so the bits touched are next to each other: no cache miss
 * per item, as the hash set of version 1 tags costs.
 */
#define WIN_BITS	18
#define WIN_N		((uint64_t)1 << WIN_BITS)
#define WIN_MAX		1024		/* sources (32 KiB each) */
struct srcwin {
	uint64_t	 id;		/* busauth_open's tag of the source */
	uint64_t	 top;		/* highest seq marked (0: none) */
	int64_t		 last_ms;	/* last marked */
	uint64_t	*bits;		/* bit seq % WIN_N */
};

/* A key as the SHA-256 states after its inner and outer pads. */
struct hkey {
	SHA256_CTX	 inner, outer;
};

static struct hkey *
hkey_new(const char *key)
{
	struct hkey	*h;
	unsigned char	 k[SHA256_CBLOCK], pad[SHA256_CBLOCK];
	size_t		 i, len = strlen(key);

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	memset(k, 0, sizeof(k));
	if (len > sizeof(k))
		SHA256((const unsigned char *)key, len, k);
	else
		memcpy(k, key, len);
	for (i = 0; i < sizeof(k); i++)
		pad[i] = k[i] ^ 0x36;
	SHA256_Init(&h->inner);
	SHA256_Update(&h->inner, pad, sizeof(pad));
	for (i = 0; i < sizeof(k); i++)
		pad[i] = k[i] ^ 0x5c;
	SHA256_Init(&h->outer);
	SHA256_Update(&h->outer, pad, sizeof(pad));
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(pad, sizeof(pad));
	return h;
}

static void
hkey_free(struct hkey *h)
{
	if (h == NULL)
		return;
	OPENSSL_cleanse(h, sizeof(*h));
	free(h);
}

struct busauth *
busauth_new(const char *key, const char *oldkey, const char *node,
    const char *id, int max_age, char *err, size_t errlen)
{
	struct busauth	*a;

	if (key == NULL || key[0] == '\0' || node == NULL || id == NULL ||
	    strpbrk(node, " \t\r\n") != NULL || strchr(id, ' ') != NULL ||
	    max_age <= 0) {
		snprintf(err, errlen, "bus: no cluster key (cluster_key_file "
		    "is required in cluster mode) or a bad node name");
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->key = hkey_new(key)) == NULL ||
	    (oldkey != NULL && (a->oldkey = hkey_new(oldkey)) == NULL) ||
	    (a->node = strdup(node)) == NULL ||
	    (a->id = strdup(id)) == NULL ||
	    (a->ring = calloc(SEEN_N, sizeof(*a->ring))) == NULL ||
	    (a->set = calloc(SEEN_CAP, sizeof(*a->set))) == NULL) {
		snprintf(err, errlen, "bus: out of memory");
		busauth_free(a);
		return NULL;
	}
	a->max_age_ms = (int64_t)max_age * 1000;
	return a;
}

void
busauth_free(struct busauth *a)
{
	size_t	 i;

	if (a == NULL)
		return;
	hkey_free(a->key);
	hkey_free(a->oldkey);
	free(a->node);
	free(a->id);
	free(a->ring);
	free(a->set);
	for (i = 0; i < a->nsources; i++)
		free(a->sources[i]);
	for (i = 0; i < a->nwins; i++)
		free(a->wins[i].bits);
	free(a->wins);
	free(a);
}

static int
mac(const struct hkey *h, const char *p, size_t len,
    unsigned char out[MAC_LEN])
{
	SHA256_CTX	 c = h->inner;

	if (SHA256_Update(&c, p, len) != 1 || SHA256_Final(out, &c) != 1)
		return -1;
	c = h->outer;
	if (SHA256_Update(&c, out, MAC_LEN) != 1 || SHA256_Final(out, &c) != 1)
		return -1;
	return 0;
}

static const char hexd[] = "0123456789abcdef";

int
busauth_sign(struct busauth *a, int64_t now_ms, const char *body,
    size_t len, char **out, size_t *outlen, size_t *bodyoff)
{
	unsigned char	 m[MAC_LEN];
	char		*s, head[96];
	int		 hl;
	size_t		 i, n;

	hl = snprintf(head, sizeof(head), " %lld %s.%llu ",
	    (long long)now_ms, a->id, (unsigned long long)++a->seq);
	if (hl < 0 || (size_t)hl >= sizeof(head))
		return -1;
	n = MAC_HEX + 1 + strlen(a->node) + (size_t)hl + len;
	if ((s = malloc(n + 1)) == NULL)
		return -1;
	i = MAC_HEX + 1;
	memcpy(s + i, a->node, strlen(a->node));
	i += strlen(a->node);
	memcpy(s + i, head, (size_t)hl);
	i += (size_t)hl;
	*bodyoff = i;
	memcpy(s + i, body, len);
	s[n] = '\0';
	if (mac(a->key, s + MAC_HEX + 1, n - MAC_HEX - 1, m) == -1) {
		free(s);
		return -1;
	}
	for (i = 0; i < MAC_LEN; i++) {
		s[2 * i] = hexd[m[i] >> 4];
		s[2 * i + 1] = hexd[m[i] & 15];
	}
	s[MAC_HEX] = ' ';
	*out = s;
	*outlen = n;
	return 0;
}

static int
unhex(const char *p, unsigned char out[MAC_LEN])
{
	size_t	 i;
	int	 hi, lo;

	for (i = 0; i < MAC_LEN; i++) {
		hi = p[2 * i] >= 'a' && p[2 * i] <= 'f' ? p[2 * i] - 'a' + 10 :
		    p[2 * i] >= '0' && p[2 * i] <= '9' ? p[2 * i] - '0' : -1;
		lo = p[2 * i + 1] >= 'a' && p[2 * i + 1] <= 'f' ?
		    p[2 * i + 1] - 'a' + 10 : p[2 * i + 1] >= '0' &&
		    p[2 * i + 1] <= '9' ? p[2 * i + 1] - '0' : -1;
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static uint64_t
tag_of(const unsigned char m[MAC_LEN])
{
	uint64_t	 t = 0;
	int		 i;

	for (i = 0; i < 8; i++)
		t = t << 8 | m[i];
	return t != 0 ? t : 1;
}

static size_t
slot_of(uint64_t t)
{
	return (size_t)((t * 0x9e3779b97f4a7c15ull) >> (64 - SEEN_BITS - 1));
}

static int
seen_has(const struct busauth *a, uint64_t t)
{
	size_t	 i;

	for (i = slot_of(t); a->set[i] != 0; i = (i + 1) & (SEEN_CAP - 1))
		if (a->set[i] == t)
			return 1;
	return 0;
}

static void
seen_del(struct busauth *a, uint64_t t)
{
	size_t	 i, j, k;

	for (i = slot_of(t); a->set[i] != t; i = (i + 1) & (SEEN_CAP - 1))
		if (a->set[i] == 0)
			return;
	/* shift back later entries of the run that may no longer be found */
	for (j = (i + 1) & (SEEN_CAP - 1); a->set[j] != 0;
	    j = (j + 1) & (SEEN_CAP - 1)) {
		k = slot_of(a->set[j]);
		if ((j > i && (k <= i || k > j)) ||
		    (j < i && k <= i && k > j)) {
			a->set[i] = a->set[j];
			i = j;
		}
	}
	a->set[i] = 0;
}

static void	win_mark(struct busauth *, uint64_t, uint64_t, int64_t);

void
busauth_seen(struct busauth *a, int64_t now_ms, uint64_t t, uint64_t seq)
{
	size_t	 i;

	if (seq != 0) {
		win_mark(a, t, seq, now_ms);
		return;
	}
	if (t == 0 || seen_has(a, t))
		return;
	if (a->ring_n == SEEN_N) {
		seen_del(a, a->ring[a->ring_head]);
		a->ring_head = (a->ring_head + 1) & (SEEN_N - 1);
		a->ring_n--;
	}
	a->ring[(a->ring_head + a->ring_n) & (SEEN_N - 1)] = t;
	a->ring_n++;
	for (i = slot_of(t); a->set[i] != 0; i = (i + 1) & (SEEN_CAP - 1))
		;
	a->set[i] = t;
}

/*
 * "<mac> <node> <ms> <id> <body>": parsed into it (but tag and seq),
 * the MAC checked under either key, the age; want the MAC, id its id.
 */
static enum bus_verdict
verify(struct busauth *a, int64_t now_ms, const char *item, size_t len,
    struct bus_item *it, unsigned char want[MAC_LEN], const char **id,
    size_t *idlen)
{
	unsigned char	 got[MAC_LEN];
	const char	*p, *end = item + len, *sp;
	int64_t		 ms = 0;
	int		 ok;

	if (len < MAC_HEX + 8 || item[MAC_HEX] != ' ' ||
	    unhex(item, want) == -1)
		return BUS_MALFORMED;
	p = item + MAC_HEX + 1;
	if ((sp = memchr(p, ' ', (size_t)(end - p))) == NULL || sp == p)
		return BUS_MALFORMED;
	it->src = p;
	it->srclen = (size_t)(sp - p);
	p = sp + 1;
	while (p < end && *p >= '0' && *p <= '9' && ms < INT64_MAX / 20)
		ms = ms * 10 + (*p++ - '0');
	if (p == end || *p != ' ')
		return BUS_MALFORMED;
	*id = ++p;
	if ((sp = memchr(p, ' ', (size_t)(end - p))) == NULL || sp == p ||
	    sp + 1 == end)
		return BUS_MALFORMED;
	*idlen = (size_t)(sp - p);
	it->body = sp + 1;
	it->blen = (size_t)(end - it->body);
	it->ms = ms;
	it->seq = 0;
	p = item + MAC_HEX + 1;
	ok = mac(a->key, p, (size_t)(end - p), got) == 0 &&
	    CRYPTO_memcmp(got, want, MAC_LEN) == 0;
	if (!ok && a->oldkey != NULL)
		ok = mac(a->oldkey, p, (size_t)(end - p), got) == 0 &&
		    CRYPTO_memcmp(got, want, MAC_LEN) == 0;
	if (!ok)
		return BUS_FORGED;
	if (ms < now_ms - a->max_age_ms || ms > now_ms + FUTURE_MS)
		return BUS_STALE;
	return BUS_OK;
}

enum bus_verdict
busauth_check(struct busauth *a, int64_t now_ms, const char *item,
    size_t len, struct bus_item *it)
{
	unsigned char	 want[MAC_LEN];
	const char	*id;
	size_t		 idlen;
	enum bus_verdict v;

	if ((v = verify(a, now_ms, item, len, it, want, &id, &idlen)) !=
	    BUS_OK)
		return v;
	it->tag = tag_of(want);
	if (seen_has(a, it->tag))
		return BUS_REPLAYED;
	return BUS_OK;
}

int
busauth_first_report(struct busauth *a, const char *src, size_t srclen)
{
	size_t	 i;

	for (i = 0; i < a->nsources; i++)
		if (strlen(a->sources[i]) == srclen &&
		    memcmp(a->sources[i], src, srclen) == 0)
			return 0;
	if (a->nsources == SOURCES_MAX)
		return 0;
	if ((a->sources[a->nsources] = util_memdupz(src, srclen)) == NULL)
		return 0;
	a->nsources++;
	return 1;
}

const char *
bus_verdict_str(enum bus_verdict v)
{
	switch (v) {
	case BUS_OK:
		return "good";
	case BUS_MALFORMED:
		return "malformed";
	case BUS_FORGED:
		return "bad signature";
	case BUS_STALE:
		return "too old (or from the future)";
	case BUS_REPLAYED:
		return "replayed";
	}
	return "?";
}

/*
 * Versioned items.  A signed item begins with its hex MAC: the format
 * of the first releases, read by every release (version 1).  Later
 * formats begin with "v<n> ", never a hex digit, so that a reader can
 * tell a newer item (which it leaves to an upgraded node, logged) from
 * a malformed one.  Version 2, a batch: "v2 " then "<len>:<item>" for
 * each of its items, every one a version 1 item with its own MAC: one
 * list element carries a loop iteration's items for one queue, and
 * each item keeps its identity (a repeat of one is still seen as one).
 */
int
bus_item_version(const char *item, size_t len)
{
	int	 v = 0;
	size_t	 i;

	if (len > 0 && ((item[0] >= '0' && item[0] <= '9') ||
	    (item[0] >= 'a' && item[0] <= 'f')))
		return 1;
	if (len < 3 || item[0] != 'v')
		return 0;
	for (i = 1; i < len && i < 6 && item[i] >= '0' && item[i] <= '9'; i++)
		v = v * 10 + (item[i] - '0');
	return i > 1 && i < len && item[i] == ' ' ? v : 0;
}

int
bus_batch_pack(const char *const *items, const size_t *lens, size_t n, char **out,
    size_t *outlen)
{
	size_t	 i, total = 3, at;
	char	*s;

	for (i = 0; i < n; i++)
		total += 21 + lens[i];
	if ((s = malloc(total + 1)) == NULL)
		return -1;
	memcpy(s, "v2 ", 3);
	at = 3;
	for (i = 0; i < n; i++) {
		at += (size_t)sprintf(s + at, "%zu:", lens[i]);
		memcpy(s + at, items[i], lens[i]);
		at += lens[i];
	}
	s[at] = '\0';
	*out = s;
	*outlen = at;
	return 0;
}

/* "<len>:<len bytes>" at *pos of batch: the bytes, *pos after them. */
static enum bus_batch_step
len_item(const char *batch, size_t len, size_t *pos, const char **item,
    size_t *ilen)
{
	size_t	 p = *pos, n = 0, start;

	for (start = p; p < len && batch[p] >= '0' && batch[p] <= '9' &&
	    n <= len; p++)
		n = n * 10 + (size_t)(batch[p] - '0');
	if (p == start || p >= len || batch[p] != ':' || n == 0 ||
	    n > len - p - 1)
		return BUS_BATCH_BAD;
	*item = batch + p + 1;
	*ilen = n;
	*pos = p + 1 + n;
	return BUS_BATCH_ITEM;
}

enum bus_batch_step
bus_batch_next(const char *batch, size_t len, size_t *pos, const char **item,
    size_t *ilen)
{
	if (*pos == 0) {
		if (bus_item_version(batch, len) != 2)
			return BUS_BATCH_BAD;
		*pos = 3;
	}
	if (*pos >= len)
		return BUS_BATCH_END;
	return len_item(batch, len, pos, item, ilen);
}

/*
 * Version 3, a sealed batch: one MAC for all its items.
 *   v3 <64 hex MAC> <node> <ms> <boot>.<slot> <seq>.<len>:<body>...
 * the MAC covering everything after its blank, as for version 1.  An
 * item's identity is (node, boot.slot, seq): the seq is drawn when the
 * item is published and kept when it is sealed again into another
 * batch (a publish sent again after a lost answer), so that the
 * receiver's memory of what it handed off still knows it.
 */
#define SEAL_HEAD_MAX	96

/* " <ms> <id> " after the node: the part of the head that varies. */
static int
seal_head(const struct busauth *a, int64_t now_ms, char head[SEAL_HEAD_MAX])
{
	int	 hl;

	hl = snprintf(head, SEAL_HEAD_MAX, " %lld %s ", (long long)now_ms,
	    a->id);
	return hl < 0 || hl >= SEAL_HEAD_MAX ? -1 : hl;
}

uint64_t
busauth_next_seq(struct busauth *a)
{
	return ++a->seq;
}

size_t
bus_seal_len(const struct busauth *a, int64_t now_ms, const size_t *lens,
    const uint64_t *seqs, size_t n)
{
	char	 head[SEAL_HEAD_MAX];
	int	 hl;
	size_t	 i, total;

	if ((hl = seal_head(a, now_ms, head)) == -1 || n == 0)
		return 0;
	total = 3 + MAC_HEX + 1 + strlen(a->node) + (size_t)hl;
	for (i = 0; i < n; i++)
		total += util_ndigits(seqs[i]) + 1 + util_ndigits(lens[i]) + 1 +
		    lens[i];
	return total;
}

int
busauth_seal(struct busauth *a, int64_t now_ms, const char *const *bodies,
    const size_t *lens, const uint64_t *seqs, size_t n, char *out,
    size_t outlen)
{
	unsigned char	 m[MAC_LEN];
	char		 head[SEAL_HEAD_MAX];
	size_t		 i, at, nl = strlen(a->node);
	int		 hl;

	if (outlen == 0 || outlen != bus_seal_len(a, now_ms, lens, seqs, n) ||
	    (hl = seal_head(a, now_ms, head)) == -1)
		return -1;
	memcpy(out, "v3 ", 3);
	at = 3 + MAC_HEX;
	out[at++] = ' ';
	memcpy(out + at, a->node, nl);
	at += nl;
	memcpy(out + at, head, (size_t)hl);
	at += (size_t)hl;
	for (i = 0; i < n; i++) {
		/* room counted by bus_seal_len, so the digits fit */
		hl = snprintf(head, sizeof(head), "%llu.%zu:",
		    (unsigned long long)seqs[i], lens[i]);
		if (hl < 0 || (size_t)hl > outlen - at)
			return -1;
		memcpy(out + at, head, (size_t)hl);
		at += (size_t)hl;
		if (lens[i] > outlen - at)
			return -1;
		memcpy(out + at, bodies[i], lens[i]);
		at += lens[i];
	}
	if (at != outlen || mac(a->key, out + 3 + MAC_HEX + 1,
	    outlen - 3 - MAC_HEX - 1, m) == -1)
		return -1;
	for (i = 0; i < MAC_LEN; i++) {
		out[3 + 2 * i] = hexd[m[i] >> 4];
		out[3 + 2 * i + 1] = hexd[m[i] & 15];
	}
	return 0;
}

/* FNV-1a over the source's name and id: the base of its items' tags. */
static uint64_t
source_hash(const char *src, size_t srclen, const char *id, size_t idlen)
{
	uint64_t	 h = 0xcbf29ce484222325ull;
	size_t		 i;

	for (i = 0; i < srclen; i++)
		h = (h ^ (unsigned char)src[i]) * 0x100000001b3ull;
	h = (h ^ ' ') * 0x100000001b3ull;
	for (i = 0; i < idlen; i++)
		h = (h ^ (unsigned char)id[i]) * 0x100000001b3ull;
	return h;
}

static struct srcwin *
win_find(struct busauth *a, uint64_t id)
{
	size_t	 i;

	if (a->lastwin < a->nwins && a->wins[a->lastwin].id == id)
		return &a->wins[a->lastwin];
	for (i = 0; i < a->nwins; i++)
		if (a->wins[i].id == id) {
			a->lastwin = i;
			return &a->wins[i];
		}
	return NULL;
}

/*
 * A window for a new source: one unmarked for longer than any item may
 * live (max age, clock skew) is reused, its items being refused as too
 * old anyway; else one more, up to WIN_MAX (then the least recently
 * marked is forgotten).  NULL when out of memory.
 */
static struct srcwin *
win_new(struct busauth *a, uint64_t id, int64_t now_ms)
{
	struct srcwin	*w = NULL, *nw;
	size_t		 i;

	for (i = 0; i < a->nwins && w == NULL; i++)
		if (a->wins[i].last_ms < now_ms - a->max_age_ms - FUTURE_MS)
			w = &a->wins[i];
	if (w == NULL && a->nwins == WIN_MAX) {
		w = &a->wins[0];
		for (i = 1; i < a->nwins; i++)
			if (a->wins[i].last_ms < w->last_ms)
				w = &a->wins[i];
	}
	if (w == NULL) {
		if ((nw = reallocarray(a->wins, a->nwins + 1,
		    sizeof(*nw))) == NULL)
			return NULL;
		a->wins = nw;
		w = &a->wins[a->nwins];
		if ((w->bits = calloc(WIN_N / 64, sizeof(*w->bits))) == NULL)
			return NULL;
		a->nwins++;
	} else
		memset(w->bits, 0, WIN_N / 8);
	w->id = id;
	w->top = 0;
	w->last_ms = now_ms;
	a->lastwin = (size_t)(w - a->wins);
	return w;
}

int
busauth_has_seen(struct busauth *a, uint64_t tag, uint64_t seq)
{
	struct srcwin	*w;

	if (seq == 0)
		return tag != 0 && seen_has(a, tag);
	if ((w = win_find(a, tag)) == NULL || seq > w->top ||
	    w->top - seq >= WIN_N)
		return 0;	/* not handed off, or forgotten */
	return (w->bits[(seq % WIN_N) / 64] >> (seq % 64) & 1) != 0;
}

/* A sealed item of source tag handed off. */
static void
win_mark(struct busauth *a, uint64_t tag, uint64_t seq, int64_t now_ms)
{
	struct srcwin	*w;
	uint64_t	 s;

	if ((w = win_find(a, tag)) == NULL &&
	    (w = win_new(a, tag, now_ms)) == NULL)
		return;		/* out of memory: a repeat is not known */
	w->last_ms = now_ms;
	if (seq > w->top) {
		/* the seqs the window slides over are forgotten */
		if (seq - w->top >= WIN_N)
			memset(w->bits, 0, WIN_N / 8);
		else
			for (s = w->top + 1; s < seq; s++)
				w->bits[(s % WIN_N) / 64] &=
				    ~((uint64_t)1 << (s % 64));
		w->top = seq;
	} else if (w->top - seq >= WIN_N)
		return;
	w->bits[(seq % WIN_N) / 64] |= (uint64_t)1 << (seq % 64);
}

enum bus_verdict
busauth_open(struct busauth *a, int64_t now_ms, const char *el, size_t len,
    struct bus_item *it)
{
	unsigned char	 want[MAC_LEN];
	const char	*id;
	size_t		 idlen;
	enum bus_verdict v;

	/* "v3 " then signed as a version 1 item, the items as its body */
	if (len < 3 || memcmp(el, "v3 ", 3) != 0)
		return BUS_MALFORMED;
	if ((v = verify(a, now_ms, el + 3, len - 3, it, want, &id, &idlen)) !=
	    BUS_OK)
		return v;
	it->tag = source_hash(it->src, it->srclen, id, idlen);
	return BUS_OK;
}

enum bus_batch_step
bus_sealed_next(const char *items, size_t len, size_t *pos, uint64_t *seq,
    const char **item, size_t *ilen)
{
	size_t		 p = *pos, start;
	uint64_t	 s = 0;

	if (p >= len)
		return BUS_BATCH_END;
	for (start = p; p < len && items[p] >= '0' && items[p] <= '9' &&
	    s <= UINT64_MAX / 20; p++)
		s = s * 10 + (uint64_t)(items[p] - '0');
	if (p == start || p >= len || items[p] != '.' || s == 0)
		return BUS_BATCH_BAD;
	p++;
	if (len_item(items, len, &p, item, ilen) != BUS_BATCH_ITEM)
		return BUS_BATCH_BAD;
	*seq = s;
	*pos = p;
	return BUS_BATCH_ITEM;
}
