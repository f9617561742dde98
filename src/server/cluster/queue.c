/*
 * queue.c - the reliable cross-node queue (protocol and crash cases in
 * include/pubsub.h): taking our own queue into the processing list,
 * handing items off, acknowledging them, and reaping the queues of dead
 * workers (publishing into others' queues is publish.c).
 *
 * All queue work of this worker runs on its "pop" connection, one
 * fetch at a time, each batch's ack sent before the next fetch: so an
 * ack always reaches Redis before the items can be read again.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "busitem.h"
#include "log.h"
#include "ps_int.h"
#include "util.h"

/* ---- taking and handing off --------------------------------------------- */

/*
 * One batch's ack, by reference (include/pubsub.h, "ack"): argv "1", P,
 * n, then for each element of the batch, in the order taken, its
 * length, its first ACK_PREFIX bytes (they hold its first item's MAC)
 * and what becomes of it: "" deleted, "=" left in P, else replaced by
 * this (a re-signed item, at P's tail).  Only re-signed items travel
 * whole.
 */
struct ack {
	const char	**a;
	size_t		 *al;
	char		 *lens;		/* the lengths' digits, 24 each */
	char		**fresh;	/* re-signed items, freed after */
	size_t		  n, nfresh;
	size_t		  ndel;		/* how many of the n are deleted */
	size_t		 *full;		/* each element's whole length */
	size_t		  bytes;	/* of the n, together */
};

static int
ack_init(struct ack *k, size_t n)
{
	memset(k, 0, sizeof(*k));
	k->a = calloc(3 + 3 * n, sizeof(*k->a));
	k->al = calloc(3 + 3 * n, sizeof(*k->al));
	k->lens = malloc(24 * n + 1);
	k->fresh = calloc(n + 1, sizeof(*k->fresh));
	k->full = calloc(n + 1, sizeof(*k->full));
	return k->a != NULL && k->al != NULL && k->lens != NULL &&
	    k->fresh != NULL && k->full != NULL ? 0 : -1;
}

static void
ack_free(struct ack *k)
{
	size_t	 i;

	for (i = 0; i < k->nfresh && k->fresh != NULL; i++)
		free(k->fresh[i]);
	free(k->fresh);
	free(k->full);
	free(k->lens);
	free(k->a);
	free(k->al);
}

/*
 * The next element of the batch (item, len) and what becomes of it:
 * "" deleted, "=" left in P, else replaced (see ack_keep).
 */
static void
ack_add(struct ack *k, const char *item, size_t len, const char *what,
    size_t wlen)
{
	size_t	 at = 3 + 3 * k->n;
	char	*digits = k->lens + 24 * k->n;

	k->a[at] = digits;
	k->al[at] = (size_t)snprintf(digits, 24, "%zu", len);
	k->a[at + 1] = item;
	k->al[at + 1] = len < ACK_PREFIX ? len : ACK_PREFIX;
	k->a[at + 2] = what;
	k->al[at + 2] = wlen;
	if (wlen == 0)
		k->ndel++;
	k->full[k->n] = len;
	k->bytes += len;
	k->n++;
}

static void
ack_del(struct ack *k, const char *item, size_t len)
{
	ack_add(k, item, len, "", 0);
}

/* Left in P as it is (out of memory for a re-signed copy). */
static void
ack_leave(struct ack *k, const char *item, size_t len)
{
	ack_add(k, item, len, "=", 1);
}

/* Replaced by fresh (re-signed, k takes it) at P's tail. */
static void
ack_keep(struct ack *k, const char *item, size_t len, char *fresh,
    size_t flen)
{
	k->fresh[k->nfresh++] = fresh;
	ack_add(k, item, len, fresh, flen);
}

/* Send it on the pop connection, before the next fetch. */
static void
ack_send(struct bus *ps, struct ack *k)
{
	struct req	*r;
	const char	*a[4];
	size_t		 al[4], i;
	char		 n[24];

	if (k->n == 0 || (k->ndel == 0 && k->nfresh == 0))
		return;		/* everything stays as it is */
	if (k->ndel == k->n && k->bytes <= ACK_PLAIN_MAX) {
		/*
		 * All handed off, not too many bytes: a plain LREM of each
		 * element, whole (as the script would, it removes that
		 * element or a twin of it, and nothing if a reaper took
		 * it), pipelined in one write.  Cheaper for Redis than the
		 * script, whose LRANGE makes a Lua string of each element,
		 * hashing every byte.
		 */
		a[0] = "LREM";
		al[0] = 4;
		a[1] = ps->plist;
		al[1] = strlen(ps->plist);
		a[2] = "1";
		al[2] = 1;
		for (i = 0; i < k->n; i++) {
			a[3] = k->a[3 + 3 * i + 1];
			al[3] = k->full[i];
			if ((r = req_new(ps, REQ_ACK, SCRIPT_NONE)) == NULL)
				return;
			r->on_pop = 1;
			if (req_args(r, 4, a, al) == -1 ||
			    req_send(ps, r) == -1)
				req_free(r);
		}
		return;
	}
	k->a[0] = "1";
	k->al[0] = 1;
	k->a[1] = ps->plist;
	k->al[1] = strlen(ps->plist);
	k->a[2] = n;
	k->al[2] = (size_t)snprintf(n, sizeof(n), "%zu", k->n);
	if ((r = req_new(ps, REQ_ACK, SCRIPT_ACK)) == NULL)
		return;
	r->on_pop = 1;
	/* unsent, the items stay in P: the next resume offers them again */
	if (req_args(r, (int)(3 + 3 * k->n), k->a, k->al) == -1 ||
	    req_send(ps, r) == -1)
		req_free(r);
}

/* A refused item (or barrier message: hbarrier.c) found in where. */
void
bus_reject(struct bus *ps, enum bus_verdict v, const struct bus_item *it,
    const char *where)
{
	const char	*src = v == BUS_MALFORMED || it == NULL ? "?" : it->src;
	size_t		 sl = v == BUS_MALFORMED || it == NULL ? 1 : it->srclen;

	ps->rejected++;
	if (busauth_first_report(ps->auth, src, sl))
		log_warnx("redis: refusing an item from \"%.*s\" in %s: %s "
		    "(further ones from there are only counted)", (int)sl,
		    src, where, bus_verdict_str(v));
}

/*
 * An item of a later format than this release reads: dropped, counted,
 * and said once (a mixed cluster whose newer nodes were not told to
 * write the older format: cluster_item_version).
 */
static void
newer(struct bus *ps, int v)
{
	ps->rejected++;
	if (busauth_first_report(ps->auth, "\n newer", 7))
		log_warnx("redis: dropping an item of format version %d in %s "
		    "(this node reads up to %d): upgrade this node, or set "
		    "cluster_item_version = %d on the newer ones until it is",
		    v, ps->queue, BUS_ITEM_VERSION, BUS_ITEM_VERSION);
}

/*
 * A list item "<uid>,<uid>,... <line>" (p at the first comma): deliver
 * to each (handler->deliver_many, else one by one).  0: all handed off;
 * -1: *rebody (malloc'd, *rblen) is the item to keep for the others.
 */
static int
hand_off_list(struct bus *ps, const struct bus_item *it, int64_t first,
    const char *p, char **rebody, size_t *rblen)
{
	const char	*end = it->body + it->blen, *line;
	int32_t		*uids = NULL, *keep = NULL;
	size_t		 n = 1, cap = 1, nkeep = 0, i;
	int64_t		 uid;
	char		*at;
	int		 rc = 0;

	for (line = p; line < end && *line != ' '; line++)
		if (*line == ',')
			cap++;
	if (line + 1 >= end)
		goto bad;
	if ((uids = calloc(cap, sizeof(*uids))) == NULL ||
	    (keep = calloc(cap, sizeof(*keep))) == NULL) {
		free(uids);
		*rebody = NULL;
		return -1;	/* kept whole: offered again later */
	}
	uids[0] = (int32_t)first;
	while (p < line) {
		if (*p++ != ',')
			goto bad;
		for (uid = 0; p < line && *p >= '0' && *p <= '9' &&
		    uid <= INT32_MAX; p++)
			uid = uid * 10 + (*p - '0');
		if (uid <= 0 || uid > INT32_MAX || n == cap)
			goto bad;
		uids[n++] = (int32_t)uid;
	}
	line++;
	if (ps->h.deliver_many != NULL)
		ps->h.deliver_many(ps->h.arg, uids, n, line,
		    (size_t)(end - line), keep, &nkeep);
	else
		for (i = 0; i < n; i++)
			if (ps->h.deliver(ps->h.arg, uids[i], line,
			    (size_t)(end - line)) == PUBSUB_RETRY)
				keep[nkeep++] = uids[i];
	if (nkeep > 0) {
		rc = -1;
		*rebody = NULL;
		if ((at = malloc(nkeep * 12 + (size_t)(end - line) + 1)) !=
		    NULL) {
			*rebody = at;
			for (i = 0; i < nkeep; i++)
				at += sprintf(at, i + 1 < nkeep ? "%d," : "%d ",
				    (int)keep[i]);
			memcpy(at, line, (size_t)(end - line));
			*rblen = (size_t)(at - *rebody) + (size_t)(end - line);
		}
	}
	free(uids);
	free(keep);
	return rc;
bad:
	free(uids);
	free(keep);
	log_warnx("redis: dropping a malformed item from \"%.*s\"",
	    (int)it->srclen, it->src);
	return 0;
}

/*
 * Hand off one good item.  0: remove it from P; -1: keep it (RETRY),
 * as *rebody when that is set (a list item some of whose users are
 * done).  "<uid> <line>" is delivered or stored, "<uid>,<uid>,...
 * <line>" the same for each, "<uid>" says stored, "0" is a wake-up.
 */
static int
hand_off(struct bus *ps, const struct bus_item *it, char **rebody,
    size_t *rblen)
{
	const char	*p = it->body, *end = it->body + it->blen;
	int64_t		 uid = 0;

	*rebody = NULL;
	while (p < end && *p >= '0' && *p <= '9' && uid <= INT32_MAX)
		uid = uid * 10 + (*p++ - '0');
	if (it->blen == 1 && it->body[0] == '0')
		return 0;		/* a wake-up */
	if (uid > 0 && uid <= INT32_MAX && p < end && *p == ',')
		return hand_off_list(ps, it, uid, p, rebody, rblen);
	if (uid <= 0 || uid > INT32_MAX || (p < end &&
	    (*p != ' ' || p + 1 == end))) {
		log_warnx("redis: dropping a malformed item from \"%.*s\"",
		    (int)it->srclen, it->src);
		return 0;
	}
	if (p == end) {
		if (ps->h.stored != NULL)
			ps->h.stored(ps->h.arg, (int32_t)uid);
		return 0;
	}
	p++;
	return ps->h.deliver(ps->h.arg, (int32_t)uid, p, (size_t)(end - p)) ==
	    PUBSUB_RETRY ? -1 : 0;
}

/*
 * Items whose store is under way (PUBSUB_PENDING, include/pubsub.h): the
 * batch is held (ps->hold) until every store is back, and only then
 * acknowledged; no fetch is made meanwhile, so that nothing taken later
 * (for the same user, maybe) is handed off before them, and P is not
 * read again while they are under way.  An item whose store failed
 * stays in P, re-signed, and is offered again, as a RETRY.
 */
struct qelem {
	char		*s;		/* the element (owned once held) */
	size_t		 len;
	int		 str;		/* a string (else skipped) */
	int		 v;		/* its format version; 0: malformed */
	int		 rc;		/* 0: delete it, -1: keep it */
	char		*fresh;		/* rc -1: as this; NULL: as it is */
	size_t		 flen;
	size_t		 pending;	/* stores under way for its items */
	int		 failed;	/* one of them failed */
};

struct qhold {
	struct bus	*ps;		/* NULL: the bus went away */
	struct qelem	*el;
	size_t		 n;
	size_t		 refs;		/* stores under way, +1 handing off */
	int		 owned;		/* the elements are copies */
};

struct pubsub_pending {
	struct qhold	*h;
	size_t		 elem;
	uint64_t	 tag, seq;
};

static struct qhold	*cur_hold;	/* the batch being handed off */
static size_t		 cur_elem;	/* its element */
static uint64_t		 cur_tag, cur_seq;	/* the item handed off */
static size_t		 cur_pending;	/* tokens its handler took */
static int		 resigning;	/* take_item: re-sign, hand nothing */

struct pubsub_pending *
pubsub_pending(void)
{
	struct pubsub_pending	*t;

	if (cur_hold == NULL || (t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->h = cur_hold;
	t->elem = cur_elem;
	t->tag = cur_tag;
	t->seq = cur_seq;
	cur_hold->refs++;
	cur_hold->el[cur_elem].pending++;
	cur_pending++;
	return t;
}

static size_t	hold_finish(struct qhold *, int);

void
pubsub_pending_done(struct pubsub_pending *t, enum pubsub_result r)
{
	struct qhold	*h = t->h;

	if (r == PUBSUB_STORED && h->ps != NULL)
		busauth_seen(h->ps->auth, util_wall_ms(), t->tag, t->seq);
	else if (r == PUBSUB_RETRY)
		h->el[t->elem].failed = 1;
	else if (r == PUBSUB_DELIVERED && h == cur_hold && cur_pending > 0)
		cur_pending--;	/* taken back at once: unused */
	h->el[t->elem].pending--;
	free(t);
	if (--h->refs == 0)
		(void)hold_finish(h, 1);
}

/*
 * Check and hand off one signed (version 1) item.  0: done with it
 * (handed off, refused, or handed off by us already when resumed);
 * -1: keep it, as *fresh (re-signed, so that it does not age out
 * waiting; a list item for those not handed off yet; NULL when out of
 * memory: then it stays as it is).
 */
static int	take_good(struct bus *, const struct bus_item *, int64_t,
		    char **, size_t *);

static int
take_item(struct bus *ps, const char *s, size_t len, int64_t now,
    int resumed, char **fresh, size_t *flen)
{
	struct bus_item	 it;
	enum bus_verdict v;

	*fresh = NULL;
	v = busauth_check(ps->auth, now, s, len, &it);
	if (v == BUS_REPLAYED && resumed)
		return 0;	/* its ack was lost */
	if (v != BUS_OK) {
		bus_reject(ps, v, &it, ps->queue);
		return 0;
	}
	return take_good(ps, &it, now, fresh, flen);
}

/*
 * Hand off an item found good (it), as take_item says; one that is kept
 * is re-signed alone (version 1).
 */
static int
take_good(struct bus *ps, const struct bus_item *itp, int64_t now,
    char **fresh, size_t *flen)
{
	struct bus_item	 it = *itp;
	char		*rebody;
	size_t		 rblen = 0, off;

	rebody = NULL;
	cur_tag = it.tag;
	cur_seq = it.seq;
	cur_pending = 0;
	/* resigning: what is not handed off is kept, nothing handed off */
	if (!resigning && hand_off(ps, &it, &rebody, &rblen) == 0) {
		/* a store under way marks it when it committed */
		if (!cur_pending)
			busauth_seen(ps->auth, now, it.tag, it.seq);
		return 0;
	}
	/* a lost ack offers a whole list item again: a repeat for some */
	if (busauth_sign(ps->auth, now, rebody != NULL ? rebody : it.body,
	    rebody != NULL ? rblen : it.blen, fresh, flen, &off) == -1)
		*fresh = NULL;
	free(rebody);
	return -1;
}

/*
 * The items of a batch that are kept, each re-signed alone, for the
 * version 2 batch that replaces it in P.
 */
struct keep {
	char		**v;
	size_t		 *len, n;
	int		  whole;	/* out of memory: keep the batch as it is */
};

/* Keep f (re-signed, taken; NULL: out of memory). */
static void
keep_add(struct keep *k, char *f, size_t fl)
{
	char	**nv;
	size_t	 *nl;

	nv = f != NULL ? reallocarray(k->v, k->n + 1, sizeof(*k->v)) : NULL;
	if (nv != NULL)
		k->v = nv;
	nl = nv != NULL ? reallocarray(k->len, k->n + 1, sizeof(*k->len)) :
	    NULL;
	if (nl == NULL) {
		free(f);
		k->whole = 1;
		return;
	}
	k->len = nl;
	k->v[k->n] = f;
	k->len[k->n++] = fl;
}

/* -1 with *fresh the batch of those kept (or NULL: as it is), or 0. */
static int
keep_finish(struct keep *k, enum bus_batch_step st, struct bus *ps,
    char **fresh, size_t *flen)
{
	size_t	 i;

	if (st == BUS_BATCH_BAD)
		bus_reject(ps, BUS_MALFORMED, NULL, ps->queue);
	if (!k->whole && k->n > 0 && bus_batch_pack((const char *const *)k->v,
	    k->len, k->n, fresh, flen) == -1)
		k->whole = 1;
	for (i = 0; i < k->n; i++)
		free(k->v[i]);
	free(k->v);
	free(k->len);
	return k->whole || k->n > 0 ? -1 : 0;
}

/*
 * A version 2 batch: each of its items as take_item; -1 with *fresh a
 * new batch of those kept (or NULL: keep the batch as it is, and its
 * items already handed off are only acknowledged when offered again).
 */
static int
take_batch(struct bus *ps, const char *s, size_t len, int64_t now,
    int resumed, char **fresh, size_t *flen)
{
	struct keep	 k;
	char		*f;
	size_t		 pos = 0, il, fl;
	const char	*item;
	enum bus_batch_step st;

	*fresh = NULL;
	memset(&k, 0, sizeof(k));
	while ((st = bus_batch_next(s, len, &pos, &item, &il)) ==
	    BUS_BATCH_ITEM)
		if (take_item(ps, item, il, now, resumed, &f, &fl) == -1)
			keep_add(&k, f, fl);
	return keep_finish(&k, st, ps, fresh, flen);
}

/*
 * A version 3 batch: one MAC and age check for the element, then each
 * item judged on its own by its seq (seen before: acknowledged again
 * when resumed, refused otherwise) and handed off as take_good; what is
 * kept goes back as a version 2 batch, as in take_batch.
 */
static int
take_sealed(struct bus *ps, const char *s, size_t len, int64_t now,
    int resumed, char **fresh, size_t *flen)
{
	struct keep	 k;
	struct bus_item	 el, it;
	enum bus_verdict v;
	enum bus_batch_step st;
	char		*f;
	size_t		 pos = 0, fl;
	uint64_t	 seq;

	*fresh = NULL;
	if ((v = busauth_open(ps->auth, now, s, len, &el)) != BUS_OK) {
		bus_reject(ps, v, &el, ps->queue);
		return 0;
	}
	memset(&k, 0, sizeof(k));
	it = el;
	while ((st = bus_sealed_next(el.body, el.blen, &pos, &seq, &it.body,
	    &it.blen)) == BUS_BATCH_ITEM) {
		it.seq = seq;
		if (busauth_has_seen(ps->auth, it.tag, seq)) {
			if (!resumed)	/* else its ack was lost */
				bus_reject(ps, BUS_REPLAYED, &it, ps->queue);
			continue;
		}
		if (take_good(ps, &it, now, &f, &fl) == -1)
			keep_add(&k, f, fl);
	}
	return keep_finish(&k, st, ps, fresh, flen);
}

/* One element of P: a version 3 or 2 batch or a version 1 item. */
static int
take_elem(struct bus *ps, struct qelem *e, int64_t now, int resumed)
{
	if (e->v == 3)
		return take_sealed(ps, e->s, e->len, now, resumed, &e->fresh,
		    &e->flen);
	return e->v == 2 ? take_batch(ps, e->s, e->len, now, resumed,
	    &e->fresh, &e->flen) : take_item(ps, e->s, e->len, now, resumed,
	    &e->fresh, &e->flen);
}

/*
 * The elements handed off are acknowledged: deleted from P, or kept
 * (re-signed) for those not handed off; one whose store failed is
 * re-signed now, without what was handed off.  later: the batch was
 * held, so fetch on.  Returns how many were kept.
 */
static size_t
hold_finish(struct qhold *h, int later)
{
	struct bus	*ps = h->ps;
	struct qelem	*e;
	struct ack	 k;
	int64_t		 now = util_wall_ms();
	size_t		 i, kept = 0;
	int		 acked;

	if (ps != NULL && ps->hold == h)
		ps->hold = NULL;
	acked = ps != NULL && ack_init(&k, h->n) == 0;
	for (i = 0; i < h->n && ps != NULL; i++) {
		e = &h->el[i];
		if (!e->str)
			continue;
		if (e->s == NULL || !acked) {
			/* no copy, or no ack: it stays, read again */
			kept++;
			ps->resume = 1;
			continue;
		}
		if (e->failed) {
			free(e->fresh);
			resigning = 1;
			e->rc = take_elem(ps, e, now, 1);
			resigning = 0;
		}
		if (e->rc == 0)
			ack_del(&k, e->s, e->len);
		else {
			kept++;
			if (e->fresh != NULL)
				ack_keep(&k, e->s, e->len, e->fresh, e->flen);
			else
				ack_leave(&k, e->s, e->len);
			e->fresh = NULL;	/* k's now */
		}
	}
	if (acked)
		ack_send(ps, &k);
	if (ps != NULL)
		ack_free(&k);
	/*
	 * From the clock, not the loop's time: a failed store may have
	 * waited out its timeout (more than RETRY_SECONDS), and a retry
	 * due at once would read P again before taking anything new from
	 * Q, so that live users' items would wait for the store.
	 */
	if (ps != NULL && kept > 0 && ps->retry_at == 0)
		ps->retry_at = ev_time() + RETRY_SECONDS;
	for (i = 0; i < h->n; i++) {
		free(h->el[i].fresh);
		if (h->owned)
			free(h->el[i].s);
	}
	free(h->el);
	free(h);
	if (ps != NULL && later)
		queue_next(ps);
	return kept;
}

/* The elements outlive the reply: copies (NULL: left in P, read again). */
static void
hold_own(struct qhold *h)
{
	struct qelem	*e;
	char		*s;
	size_t		 i;

	for (i = 0; i < h->n; i++) {
		e = &h->el[i];
		s = e->str ? malloc(e->len + 1) : NULL;
		if (s != NULL)
			memcpy(s, e->s, e->len);
		e->s = s;
	}
	h->owned = 1;
}

/*
 * Hand off a batch of items (now in P) and acknowledge it: one script
 * call, sent before the next fetch (held until the stores under way for
 * its items are back).  Returns how many were kept.
 */
static size_t
handle_batch(struct bus *ps, redisReply **el, size_t n, int resumed)
{
	struct qhold	*h;
	struct qelem	*e;
	int64_t		 now = util_wall_ms();
	size_t		 i, kept = 0;

	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->el = calloc(n + 1, sizeof(*h->el))) == NULL) {
		/* nothing handed off: it all stays in P for the next resume */
		free(h);
		ps->retry_at = ev_now(ps->loop) + RETRY_SECONDS;
		return n;
	}
	h->ps = ps;
	h->n = n;
	h->refs = 1;
	cur_hold = h;
	for (i = 0; i < n; i++) {
		e = &h->el[i];
		if (el[i]->type != REDIS_REPLY_STRING)
			continue;
		e->str = 1;
		e->s = el[i]->str;
		e->len = el[i]->len;
		e->v = bus_item_version(e->s, e->len);
		cur_elem = i;
		if (e->v > BUS_ITEM_VERSION) {
			newer(ps, e->v);
			continue;
		}
		e->rc = take_elem(ps, e, now, resumed);
	}
	cur_hold = NULL;
	if (--h->refs == 0)
		return hold_finish(h, 0);
	/* stores under way: the ack (and the next fetch) waits for them */
	for (i = 0; i < n; i++)
		if (h->el[i].str && h->el[i].rc != 0)
			kept++;
	hold_own(h);
	ps->hold = h;
	return kept;
}

/*
 * The pop connection may wait in BLMOVE for up to a second: a no-op
 * item ("0") pushed into our own queue ends the wait at once.
 */
static void
wake(struct bus *ps)
{
	struct req	*r;
	const char	*a[3];
	size_t		 al[3], off;
	char		*item;

	if (busauth_sign(ps->auth, util_wall_ms(), "0", 1, &item, &al[2],
	    &off) == -1)
		return;
	a[0] = "RPUSH";
	a[1] = ps->queue;
	a[2] = item;
	al[0] = 5;
	al[1] = strlen(ps->queue);
	if ((r = req_new(ps, REQ_WAKE, SCRIPT_NONE)) == NULL ||
	    req_args(r, 3, a, al) == -1 || req_send(ps, r) == -1)
		req_free(r);
	free(item);
}

/* A dead worker's queue to reap, in the background. */
void
queue_reap(struct bus *ps, const char *queue)
{
	struct req	*r, **rp;
	const char	*a[4];
	char		 max[16];

	for (r = ps->reaps; r != NULL; r = r->next)
		if (strcmp(r->queue, queue) == 0)
			return;
	if ((r = req_new(ps, REQ_REAP, SCRIPT_REAP)) == NULL ||
	    (r->queue = strdup(queue)) == NULL) {
		req_free(r);
		return;
	}
	r->on_pop = 1;
	a[0] = "2";
	a[1] = queue;
	a[2] = ps->plist;
	a[3] = max;
	snprintf(max, sizeof(max), "%d", REAP_BATCH_N);
	if (req_strs(r, 4, a) == -1) {
		req_free(r);
		return;
	}
	for (rp = &ps->reaps; *rp != NULL; rp = &(*rp)->next)
		;
	*rp = r;
	if (ps->fetching)
		wake(ps);
	else
		queue_next(ps);
}

static void
fetch(struct bus *ps, enum req_kind kind)
{
	struct req	*r;
	const char	*a[6];
	char		 max[16];
	int		 n;

	snprintf(max, sizeof(max), "%d", kind == REQ_REAPALL ? REAP_BATCH_N :
	    POP_BATCH_N);
	switch (kind) {
	case REQ_RESUME:
		r = req_new(ps, kind, SCRIPT_NONE);
		a[0] = "LRANGE";
		a[1] = ps->plist;
		a[2] = "0";
		a[3] = "99";	/* POP_BATCH_N - 1 */
		n = 4;
		break;
	case REQ_WAIT:
		r = req_new(ps, kind, SCRIPT_NONE);
		a[0] = "BLMOVE";
		a[1] = ps->queue;
		a[2] = ps->plist;
		a[3] = "LEFT";
		a[4] = "RIGHT";
		a[5] = "1";	/* timeout, seconds: POP_BLOCK_SECONDS */
		n = 6;
		break;
	case REQ_TAKE:
		r = req_new(ps, kind, SCRIPT_TAKE);
		a[0] = "2";
		a[1] = ps->queue;
		a[2] = ps->plist;
		a[3] = max;
		n = 4;
		break;
	default:	/* REQ_REAPALL */
		r = req_new(ps, kind, SCRIPT_REAPALL);
		a[0] = "1";
		a[1] = ps->plist;
		a[2] = max;
		a[3] = ps->queue;
		n = 4;
		break;
	}
	if (r == NULL)
		return;
	r->on_pop = 1;
	if (req_strs(r, n, a) == -1 || req_send(ps, r) == -1) {
		req_free(r);
		return;
	}
	if (kind == REQ_WAIT)
		ps->wait_sent = ev_time();
	ps->fetching = 1;
}

/* The next fetch on the pop connection, if none is out. */
void
queue_next(struct bus *ps)
{
	struct req	*r;
	ev_tstamp	 now = ev_now(ps->loop);

	/* a held batch fetches on when its stores are back */
	if (ps->pop == NULL || ps->fetching || ps->hold != NULL)
		return;
	if (ps->draining) {
		if (!ps->drained)
			fetch(ps, REQ_TAKE);
		return;
	}
	if (ps->retry_at != 0 && now >= ps->retry_at) {
		ps->retry_at = 0;
		ps->resume = 1;
	}
	if (ps->resume) {
		fetch(ps, REQ_RESUME);
		return;
	}
	/* reap only with a working store: no RETRY pending here */
	if (ps->retry_at == 0 && ps->pop_up && (r = ps->reaps) != NULL) {
		ps->reaps = r->next;
		r->next = NULL;
		if (req_send(ps, r) == 0)
			ps->fetching = 1;
		else
			req_free(r);
		return;
	}
	if (ps->retry_at == 0 && ps->pop_up &&
	    now - ps->last_reap >= REAP_SECONDS) {
		ps->last_reap = now;
		fetch(ps, REQ_REAPALL);
		return;
	}
	fetch(ps, ps->more ? REQ_TAKE : REQ_WAIT);
}

/* Replies on the pop connection (takes r). */
void
queue_done(struct bus *ps, struct req *r, void *reply)
{
	redisReply	*rep = reply;
	size_t		 n = 0, kept;

	if (r->kind == REQ_ACK || r->kind == REQ_POPAUTH) {
		if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
			log_conn_error(ps, "queue", rep->str);
		req_free(r);
		return;
	}
	ps->fetching = 0;
	if (rep == NULL) {
		/* the connection is going away; a new one resumes */
		req_free(r);
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		log_conn_error(ps, "queue", rep->str);
		req_free(r);
		ps_drop_pop(ps, "taking from the queue failed");
		return;
	}
	if (!ps->pop_up) {
		ps->pop_up = 1;
		check_up(ps);
	}
	if (rep->type == REDIS_REPLY_STRING) {		/* BLMOVE: one */
		n = 1;
		kept = handle_batch(ps, &rep, 1, 0);
	} else if (rep->type == REDIS_REPLY_ARRAY) {
		n = rep->elements;
		kept = handle_batch(ps, rep->element, n, r->kind == REQ_RESUME);
	} else
		kept = 0;
	switch (r->kind) {
	case REQ_RESUME:
		/* a full page with nothing kept: read on */
		ps->resume = n == POP_BATCH_N && kept == 0;
		break;
	case REQ_WAIT:
		/*
		 * One item after a wait: wait again (a TAKE would cost a
		 * script call to find nothing).  One that was there at
		 * once looks like a burst: take the rest in batches.
		 */
		ps->more = n == 1 && ev_time() - ps->wait_sent <
		    WAIT_BURST_SECONDS;
		break;
	case REQ_TAKE:
		ps->more = n == POP_BATCH_N;
		if (ps->draining && n < POP_BATCH_N)
			ps->drained = 1;
		break;
	case REQ_REAP:
		if (n > 0)
			log_info("redis: took over %zu item(s) left in %s", n,
			    r->queue);
		if (n == REAP_BATCH_N) {
			/* more: again, after what is queued already */
			r->next = ps->reaps;
			ps->reaps = r;
			r = NULL;
		}
		break;
	case REQ_REAPALL:
		if (n > 0)
			log_info("redis: took over %zu item(s) left by dead "
			    "workers", n);
		if (n == REAP_BATCH_N)
			ps->last_reap = 0;
		break;
	default:
		break;
	}
	req_free(r);
	queue_next(ps);
}

/* Once a second: publishes given up on, a RETRY whose time came. */
void
queue_tick(struct bus *ps)
{
	ev_tstamp	 now = ev_now(ps->loop);

	publish_tick(ps);
	/* a RETRY waits for its time even when the queue is idle */
	if (ps->retry_at != 0 && now >= ps->retry_at && !ps->fetching)
		queue_next(ps);
}

/* At exit: every caller still waiting hears -1. */
void
queue_free(struct bus *ps)
{
	struct req	*r;

	publish_free(ps);
	/* its stores end later: then nothing is acknowledged (P keeps it) */
	if (ps->hold != NULL) {
		ps->hold->ps = NULL;
		ps->hold = NULL;
	}
	while ((r = ps->reaps) != NULL) {
		ps->reaps = r->next;
		req_free(r);
	}
}

uint64_t
bus_rejected(const struct bus *ps)
{
	return ps != NULL ? ps->rejected : 0;
}
