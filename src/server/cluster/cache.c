/*
 * cache.c - the presence cache (ps_int.h): where a user's items went
 * last, so that routing a chat does not cost a Redis lookup each time.
 * A stale entry costs time, never a message: the worker it names stores
 * what is not for it (and nudges), and a dead worker's queue is reaped.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ps_int.h"
#include "util.h"

static struct pcache_ent *
find(struct pcache *c, int32_t uid)
{
	size_t	 i;

	if (c->cap == 0)
		return NULL;
	for (i = util_hash32((uint32_t)uid) & (c->cap - 1); c->v[i].uid != 0; i = (i + 1) & (c->cap - 1))
		if (c->v[i].uid == uid)
			return &c->v[i];
	return NULL;
}

const char *
pcache_get(struct pcache *c, int32_t uid, ev_tstamp now)
{
	struct pcache_ent	*e;

	if (!c->on || (e = find(c, uid)) == NULL || e->until < now ||
	    e->q < 0)
		return NULL;
	return c->queues[e->q];
}

/*
 * Whether uid was online nowhere a moment ago (a lookup said so, and no
 * claim since): a stale answer stores a message its user could have had
 * live, and the nudge that goes with storing hands it over.
 */
int
pcache_away(struct pcache *c, int32_t uid, ev_tstamp now)
{
	struct pcache_ent	*e;

	return c->on && (e = find(c, uid)) != NULL && e->until >= now &&
	    e->q < 0;
}

/* Remember that uid's items go to queue (len bytes; NULL: nowhere). */
void
pcache_put(struct pcache *c, int32_t uid, const char *queue, size_t len,
    ev_tstamp now)
{
	struct pcache_ent	*e;
	char			**nq;
	size_t			 i;
	int			 q;

	if (!c->on || uid <= 0)
		return;
	if (c->v == NULL) {
		if ((c->v = calloc(2 * CACHE_MAX, sizeof(*c->v))) == NULL)
			return;
		c->cap = 2 * CACHE_MAX;
	}
	for (q = 0; queue != NULL && (size_t)q < c->nqueues; q++)
		if (strlen(c->queues[q]) == len &&
		    memcmp(c->queues[q], queue, len) == 0)
			break;
	if (queue == NULL)
		q = -1;
	else if ((size_t)q == c->nqueues) {
		if (c->nqueues >= 4096) {
			pcache_clear(c);	/* many restarts: start afresh */
			return;
		}
		if ((nq = reallocarray(c->queues, c->nqueues + 1,
		    sizeof(*nq))) == NULL)
			return;
		c->queues = nq;
		if ((nq[c->nqueues] = util_memdupz(queue, len)) == NULL)
			return;
		q = (int)c->nqueues++;
	}
	if ((e = find(c, uid)) == NULL) {
		if (c->n >= CACHE_MAX) {
			/* full: forget everything rather than evict one */
			memset(c->v, 0, c->cap * sizeof(*c->v));
			c->n = 0;
		}
		for (i = util_hash32((uint32_t)uid) & (c->cap - 1); c->v[i].uid != 0;
		    i = (i + 1) & (c->cap - 1))
			;
		e = &c->v[i];
		e->uid = uid;
		c->n++;
	}
	e->q = q;
	e->until = now + CACHE_SECONDS;
}

void
pcache_del(struct pcache *c, int32_t uid)
{
	struct pcache_ent	*e;

	/* expire rather than remove: no probe run is broken */
	if ((e = find(c, uid)) != NULL)
		e->until = 0;
}

/* Forget everything (the subscription was lost, or at exit). */
void
pcache_clear(struct pcache *c)
{
	size_t	 i;

	for (i = 0; i < c->nqueues; i++)
		free(c->queues[i]);
	free(c->queues);
	free(c->v);
	c->queues = NULL;
	c->nqueues = 0;
	c->v = NULL;
	c->cap = c->n = 0;
}
