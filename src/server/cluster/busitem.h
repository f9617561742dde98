/*
 * busitem.h - signing and checking the items chatd puts on Redis
 * (format and rules in include/pubsub.h).  No Redis, no libev: a pure
 * module, so the checks can be unit-tested and fuzzed.
 */
#ifndef CHATD_BUSITEM_H
#define CHATD_BUSITEM_H

#include <stddef.h>
#include <stdint.h>

struct busauth;

/* The newest item format this release writes and reads (busitem.c). */
#define BUS_ITEM_VERSION	3

enum bus_verdict {
	BUS_OK,
	BUS_MALFORMED,		/* not "<mac> <node> <ms> <id> <body>" */
	BUS_FORGED,		/* the MAC fails under every key */
	BUS_STALE,		/* older than max_age, or in the future */
	BUS_REPLAYED		/* handed off already */
};

/* What busauth_check found in a good item; pointers into the item. */
struct bus_item {
	const char	*src;		/* the sending node's name */
	size_t		 srclen;
	int64_t		 ms;		/* when it was signed */
	const char	*body;		/* "<uid>[ <line>]" */
	size_t		 blen;
	uint64_t	 tag;		/* first bytes of the MAC; version 3:
					   its source, seq the item in it */
	uint64_t	 seq;		/* 0 but for a sealed item */
};

/*
 * key (and oldkey, may be NULL) as given; node the name signed in;
 * id "<boot>.<slot>" made unique per item by a counter.  NULL with err.
 */
struct busauth *busauth_new(const char *key, const char *oldkey,
	    const char *node, const char *id, int max_age, char *err,
	    size_t errlen);
void	busauth_free(struct busauth *a);

/*
 * Sign body (len bytes) at time now_ms into a new string (*out,
 * *outlen; the caller frees it): 0, or -1 out of memory.  *bodyoff is
 * where body starts in it.
 */
int	busauth_sign(struct busauth *a, int64_t now_ms, const char *body,
	    size_t len, char **out, size_t *outlen, size_t *bodyoff);
/*
 * Check item at now_ms.  BUS_OK fills it.  A good item is not yet
 * "seen": call busauth_seen once it has been handed off.
 */
enum bus_verdict busauth_check(struct busauth *a, int64_t now_ms,
	    const char *item, size_t len, struct bus_item *it);
/*
 * The item (tag, seq as in struct bus_item) was handed off at now_ms:
 * refused from now on as replayed, within the bounds of the memory
 * (the last 2^18 version 1 items; a source's last 2^18 seqs).
 */
void	busauth_seen(struct busauth *a, int64_t now_ms, uint64_t tag,
	    uint64_t seq);
/* 1 the first time src is reported (for a log line once per source). */
int	busauth_first_report(struct busauth *a, const char *src,
	    size_t srclen);
const char *bus_verdict_str(enum bus_verdict v);

/*
 * An item's format version (see busitem.c): 1 for "<mac> ...", n for
 * "v<n> ...", 0 for neither (malformed).
 */
int	bus_item_version(const char *item, size_t len);
/* A version 2 batch of n signed items, in a new string: 0 or -1. */
int	bus_batch_pack(const char *const *items, const size_t *lens, size_t n,
	    char **out, size_t *outlen);
enum bus_batch_step {
	BUS_BATCH_ITEM,		/* *item, *ilen: the next one */
	BUS_BATCH_END,
	BUS_BATCH_BAD		/* not a version 2 batch, or cut short */
};
/* Walk a batch: *pos 0 at first, then as this leaves it. */
enum bus_batch_step bus_batch_next(const char *batch, size_t len,
	    size_t *pos, const char **item, size_t *ilen);


/*
 * Version 3, a sealed batch (busitem.c): one MAC for n items, each
 * "<uid>[ <line>]" with its seq (busauth_next_seq, drawn once per item
 * and kept when the item is sealed again).  bus_seal_len is the sealed
 * size at now_ms (0: too long an id); busauth_seal writes exactly that
 * many bytes into out (the caller's: a request's room): 0 or -1.
 */
uint64_t busauth_next_seq(struct busauth *a);
size_t	bus_seal_len(const struct busauth *a, int64_t now_ms,
	    const size_t *lens, const uint64_t *seqs, size_t n);
int	busauth_seal(struct busauth *a, int64_t now_ms,
	    const char *const *bodies, const size_t *lens,
	    const uint64_t *seqs, size_t n, char *out, size_t outlen);
/*
 * Check a sealed batch's MAC and age at now_ms.  BUS_OK fills it with
 * the source, the time, the items (body, blen: walk them with
 * bus_sealed_next) and in tag the source.  Replays are judged per item:
 * busauth_has_seen(tag, seq).
 */
enum bus_verdict busauth_open(struct busauth *a, int64_t now_ms,
	    const char *el, size_t len, struct bus_item *it);
enum bus_batch_step bus_sealed_next(const char *items, size_t len,
	    size_t *pos, uint64_t *seq, const char **item, size_t *ilen);
/* 1 when the item (tag, seq: 0 for version 1) was handed off. */
int	busauth_has_seen(struct busauth *a, uint64_t tag, uint64_t seq);

#endif
