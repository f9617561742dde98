/*
 * fanout.c - a group line to many users on other nodes with one item
 * per destination worker queue (pubsub_fanout in include/pubsub.h), and
 * the cluster-wide failed-login counters.  Over every instance: each
 * user's presence is on its own instance (shard.c), the queues of a
 * worker exist on all of them.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_int.h"
#include "util.h"

/* One fan-out: the lookups under way, then the pushes. */
struct fan {
	const struct pubsub_fanout *cb;
	void		*arg;
	struct pubsub	*ps;
	char		*line;
	size_t		 len;
	int32_t		*uids;		/* n */
	char		**where;	/* queue of uids[i], or NULL: away */
	int		 inst;		/* the instance that takes the items */
	size_t		 n;
	int32_t		*failed;	/* not queued after all */
	size_t		 nfailed;
	int		 refs;		/* lookups or pushes out, + ours */
	int		 located;	/* cb->located was called */
	struct fan	*held_next;	/* held: on the list of those */
};

/* One destination queue: uids[] of the fan (positions), one item. */
struct dest {
	struct fan	*f;
	size_t		*pos;
	size_t		 n;
};

/* One instance's lookup: the positions of its uncached users. */
struct part {
	struct fan	*f;
	int		 k;
	size_t		*pos;
	size_t		 n;
};

static void
fan_free(struct fan *f)
{
	size_t	 i;

	for (i = 0; i < f->n; i++)
		free(f->where[i]);
	free(f->where);
	free(f->uids);
	free(f->failed);
	free(f->line);
	free(f);
}

static void	fan_push(struct fan *);
static void	fan_push_items(struct fan *);
static void	fan_unref(struct fan *);
static void	fan_failed(struct fan *, const size_t *, size_t);

/* located running: the fan it is about, and whether it held the pushes */
static struct fan	*fan_locating;
static int		 fan_held;
/* the fans whose pushes are held (pubsub_fanout_hold), till they go */
static struct fan	*held_fans;

void
fanout_forget(const struct pubsub *ps)
{
	struct fan	*f;

	/* their pushes fail when they go: the caller stores for them */
	for (f = held_fans; f != NULL; f = f->held_next)
		if (f->ps == ps)
			f->ps = NULL;
}

struct pubsub_fanout_wait *
pubsub_fanout_hold(void)
{
	if (fan_locating == NULL || fan_held)
		return NULL;
	fan_held = 1;
	return (struct pubsub_fanout_wait *)fan_locating;
}

void
pubsub_fanout_go(struct pubsub_fanout_wait *w)
{
	struct fan	*f = (struct fan *)w, **fp;
	size_t		 i;

	if (f == fan_locating) {
		fan_held = 0;	/* inside located: taken back, unused */
		return;
	}
	for (fp = &held_fans; *fp != NULL; fp = &(*fp)->held_next)
		if (*fp == f) {
			*fp = f->held_next;
			break;
		}
	if (f->ps != NULL)
		fan_push_items(f);
	else	/* the module went away meanwhile (exit) */
		for (i = 0; i < f->n; i++)
			if (f->where[i] != NULL)
				fan_failed(f, &i, 1);
	fan_unref(f);
}

static void
fan_unref(struct fan *f)
{
	if (--f->refs > 0)
		return;
	if (!f->located) {
		/* the lookups are all in: who is away, then the pushes */
		f->located = 1;
		f->refs = 1;
		fan_push(f);
		if (--f->refs > 0)
			return;
	}
	f->cb->done(f->arg, f->failed, f->nfailed);
	fan_free(f);
}

/* Users of a queue that could not take the item: the caller stores. */
static void
fan_failed(struct fan *f, const size_t *pos, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		f->failed[f->nfailed++] = f->uids[pos[i]];
}

static void
pushed(void *arg, int32_t uid, enum pubsub_sent sent, const char *line,
    size_t len)
{
	struct dest	*d = arg;
	struct fan	*f = d->f;

	if (sent != PUBSUB_QUEUED)
		fan_failed(f, d->pos, d->n);
	free(d->pos);
	free(d);
	fan_unref(f);
}

/*
 * Tell the caller who is away, then one item per queue, all on one
 * instance (of the first user): one round trip and one WAIT.  The
 * caller may hold the pushes until it stored for those away
 * (pubsub_fanout_hold).
 */
static void
fan_push(struct fan *f)
{
	int32_t		*away;
	size_t		 i, naway = 0;

	if ((away = calloc(f->n + 1, sizeof(*away))) == NULL) {
		/* nothing is queued: every user is stored at the end */
		f->cb->located(f->arg, NULL, 0);
		for (i = 0; i < f->n; i++)
			f->failed[f->nfailed++] = f->uids[i];
		return;
	}
	for (i = 0; i < f->n; i++)
		if (f->where[i] == NULL)
			away[naway++] = f->uids[i];
	fan_locating = f;
	fan_held = 0;
	f->cb->located(f->arg, away, naway);
	fan_locating = NULL;
	free(away);
	if (fan_held) {
		f->refs++;	/* till pubsub_fanout_go */
		f->held_next = held_fans;
		held_fans = f;
		return;
	}
	fan_push_items(f);
}

/* The items, one per destination queue. */
static void
fan_push_items(struct fan *f)
{
	struct dest	*d;
	int32_t		*ids;
	char		*taken;
	size_t		 i, j;

	ids = calloc(f->n + 1, sizeof(*ids));
	taken = calloc(f->n + 1, 1);
	for (i = 0; i < f->n; i++) {
		if (f->where[i] == NULL || (taken != NULL && taken[i]))
			continue;
		d = NULL;
		if (ids == NULL || taken == NULL ||
		    (d = calloc(1, sizeof(*d))) == NULL ||
		    (d->pos = calloc(f->n, sizeof(*d->pos))) == NULL) {
			free(d);
			fan_failed(f, &i, 1);
			continue;
		}
		d->f = f;
		/* every user of the same queue rides in this item */
		for (j = i; j < f->n; j++) {
			if (taken[j] || f->where[j] == NULL ||
			    strcmp(f->where[j], f->where[i]) != 0)
				continue;
			taken[j] = 1;
			d->pos[d->n] = j;
			ids[d->n++] = f->uids[j];
		}
		f->refs++;
		if (bus_push(f->ps->v[f->inst], f->where[i], ids, d->n,
		    f->line, f->len, pushed, d) == -1)
			pushed(d, ids[0], PUBSUB_DOWN, NULL, 0);
	}
	free(ids);
	free(taken);
}

/* An instance's answer: where its uncached users are. */
static void
located(void *arg, int result, const int32_t *uids,
    const char *const *queues, size_t n)
{
	struct part	*pt = arg;
	struct fan	*f = pt->f;
	size_t		 i;

	/* Redis could not tell: they count as away (stored) */
	for (i = 0; result == 0 && queues != NULL && i < pt->n && i < n;
	    i++)
		if (queues[i] != NULL)
			f->where[pt->pos[i]] = strdup(queues[i]);
	free(pt->pos);
	free(pt);
	fan_unref(f);
}

static void
locate(struct fan *f, struct bus *b, int k, struct part *pt,
    const int32_t *ask)
{
	pt->f = f;
	pt->k = k;
	f->refs++;
	bus_locate(b, ask, pt->n, located, pt);
}

void
pubsub_fanout(struct pubsub *ps, const int32_t *uids, size_t n,
    const char *line, size_t len, const struct pubsub_fanout *cb, void *arg)
{
	struct fan	*f;
	struct part	*pt;
	struct bus	*b;
	int32_t		*ask = NULL;
	const char	*q;
	size_t		 i;
	int		 k;

	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->uids = calloc(n + 1, sizeof(*f->uids))) == NULL ||
	    (f->where = calloc(n + 1, sizeof(*f->where))) == NULL ||
	    (f->failed = calloc(n + 1, sizeof(*f->failed))) == NULL ||
	    (f->line = malloc(len + 1)) == NULL ||
	    (ask = calloc(LOCATE_BATCH_N, sizeof(*ask))) == NULL) {
		if (f != NULL)
			fan_free(f);
		free(ask);
		cb->located(arg, uids, n);
		cb->done(arg, NULL, 0);
		return;
	}
	memcpy(f->uids, uids, n * sizeof(*uids));
	memcpy(f->line, line, len);
	f->n = n;
	f->len = len;
	f->cb = cb;
	f->arg = arg;
	f->ps = ps;
	f->refs = 1;
	/* a worker's queue is on every instance: one for all the items */
	f->inst = n > 0 ? shard_of(ps->n, uids[0]) : 0;
	for (k = 0; k < ps->n; k++) {
		b = ps->v[k];
		pt = NULL;
		for (i = 0; i < n; i++) {
			if (shard_of(ps->n, uids[i]) != k)
				continue;
			/* cached: where its last item went, or away */
			if ((q = pcache_get(&b->cache, uids[i],
			    ev_now(b->loop))) != NULL) {
				f->where[i] = strdup(q);
				continue;
			}
			if (pcache_away(&b->cache, uids[i], ev_now(b->loop)))
				continue;
			if (pt == NULL && ((pt = calloc(1, sizeof(*pt))) ==
			    NULL || (pt->pos = calloc(LOCATE_BATCH_N,
			    sizeof(*pt->pos))) == NULL)) {
				free(pt);
				pt = NULL;
				continue;	/* counts as away */
			}
			pt->pos[pt->n] = i;
			ask[pt->n++] = uids[i];
			if (pt->n == LOCATE_BATCH_N) {
				locate(f, b, k, pt, ask);
				pt = NULL;
			}
		}
		if (pt != NULL)
			locate(f, b, k, pt, ask);
	}
	free(ask);
	fan_unref(f);
}

/* ---- failed logins ------------------------------------------------------ */

static void
lf_key(char *buf, size_t len, uint64_t key, const char *suffix)
{
	snprintf(buf, len, "chatd:lf:%016llx%s", (unsigned long long)key,
	    suffix);
}

/* The instance of a login's keys: by the first one (the user). */
static struct bus *
lf_bus(const struct pubsub *ps, uint64_t key)
{
	return ps->v[shard_of(ps->n, (int32_t)(key ^ (key >> 32)))];
}

void
pubsub_login_failed(struct pubsub *ps, const uint64_t *keys, const int *max,
    int n, int window, int block)
{
	char		 kb[4][40];
	const char	*k[4];
	int		 a[6], i, nk = 0;

	if (ps == NULL || n <= 0 || n > 4)
		return;
	a[0] = window;
	a[1] = block;
	for (i = 0; i < n; i++) {
		if (keys[i] == 0)
			continue;
		lf_key(kb[nk], sizeof(kb[nk]), keys[i], "");
		k[nk] = kb[nk];
		a[2 + nk++] = max[i];
	}
	if (nk > 0)
		bus_login(lf_bus(ps, keys[0]), SCRIPT_LOGIN_FAILED, k, nk, a,
		    2 + nk, NULL, NULL);
}

void
pubsub_login_ok(struct pubsub *ps, uint64_t key)
{
	char		 k1[40], k2[40];
	const char	*a[3];

	if (ps == NULL || key == 0)
		return;
	lf_key(k1, sizeof(k1), key, "");
	lf_key(k2, sizeof(k2), key, ":l");
	a[0] = "DEL";
	a[1] = k1;
	a[2] = k2;
	send_plain(lf_bus(ps, key), REQ_LOGIN, 3, a);
}
