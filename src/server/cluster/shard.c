/*
 * shard.c - the bus over several Redis instances (redis = a,b,... or
 * sentinel://.../name1,name2): each instance is a complete bus of its
 * own (pubsub.c, queue.c, presence.c: presence, queues, node keys), and
 * each user belongs to one of them by a stable hash of the user id.
 * Everything about uid (its presence, the items for it) goes through
 * the instance of uid, so the publish script still reads the presence
 * and pushes into the queue it names in one step, and the bus work is
 * spread over the instances as the users are.  Each worker holds a
 * queue on every instance.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "ps_int.h"
#include "util.h"

/*
 * The instance of uid: stable while the list of instances is.  From the
 * hash's high bits: the uid sets and the cache of each instance index
 * by its low bits, which must stay spread.
 */
int
shard_of(int n, int32_t uid)
{
	return (int)(((uint64_t)util_hash32((uint32_t)uid) * (uint32_t)n) >>
	    32);
}

static struct bus *
of(const struct pubsub *ps, int32_t uid)
{
	return ps->v[shard_of(ps->n, uid)];
}

struct pubsub *
pubsub_new(struct ev_loop *loop, const struct config *cfg, const char *boot,
    int slot, uint32_t gen, const struct pubsub_handler *h, char *err,
    size_t errlen)
{
	struct pubsub	*ps;
	int		 i;

	if (cfg->redis_n <= 0) {
		snprintf(err, errlen, "pubsub: no redis instance");
		return NULL;
	}
	if ((ps = calloc(1, sizeof(*ps))) == NULL ||
	    (ps->v = calloc((size_t)cfg->redis_n, sizeof(*ps->v))) == NULL) {
		free(ps);
		snprintf(err, errlen, "pubsub: out of memory");
		return NULL;
	}
	for (i = 0; i < cfg->redis_n; i++) {
		if ((ps->v[i] = bus_new(loop, cfg, i, boot, slot, gen, h, err,
		    errlen)) == NULL) {
			pubsub_free(ps);
			return NULL;
		}
		ps->n = i + 1;
	}
	return ps;
}

void
pubsub_free(struct pubsub *ps)
{
	int	 i;

	if (ps == NULL)
		return;
	for (i = 0; i < ps->n; i++)
		bus_free(ps->v[i]);
	fanout_forget(ps);
	free(ps->v);
	free(ps);
}

/* Up when every instance is: a user of a missing one cannot be reached. */
int
pubsub_up(const struct pubsub *ps)
{
	int	 i;

	if (ps == NULL)
		return 0;
	for (i = 0; i < ps->n; i++)
		if (!bus_up(ps->v[i]))
			return 0;
	return 1;
}

#define SUM(fn)							\
	uint64_t	 t = 0;					\
	int		 i;					\
								\
	for (i = 0; ps != NULL && i < ps->n; i++)		\
		t += fn(ps->v[i]);				\
	return t

uint64_t
pubsub_rejected(const struct pubsub *ps)
{
	SUM(bus_rejected);
}

uint64_t
pubsub_failovers(const struct pubsub *ps)
{
	SUM(bus_failovers);
}

uint64_t
pubsub_unreplicated(const struct pubsub *ps)
{
	SUM(bus_unreplicated);
}

void
pubsub_claim(struct pubsub *ps, int32_t uid, pubsub_claim_cb *cb, void *arg)
{
	bus_claim(of(ps, uid), uid, cb, arg);
}

void
pubsub_take_over(struct pubsub *ps, int32_t uid, pubsub_claim_cb *cb,
    void *arg)
{
	bus_take_over(of(ps, uid), uid, cb, arg);
}

void
pubsub_release(struct pubsub *ps, int32_t uid)
{
	bus_release(of(ps, uid), uid);
}

void
pubsub_publish(struct pubsub *ps, int32_t uid, const char *line, size_t len,
    pubsub_publish_cb *cb, void *arg)
{
	bus_publish(of(ps, uid), uid, line, len, cb, arg);
}

enum pubsub_route
pubsub_route(struct pubsub *ps, int32_t uid)
{
	return bus_route(of(ps, uid), uid);
}

/* uids split by instance: idx[k] lists the positions of instance k's. */
struct split {
	int32_t		*uids;		/* n, grouped by instance */
	size_t		*pos;		/* where each came from */
	size_t		*start;		/* ps->n + 1 */
};

static void
split_free(struct split *s)
{
	free(s->uids);
	free(s->pos);
	free(s->start);
}

static int
split(const struct pubsub *ps, const int32_t *uids, size_t n,
    struct split *s)
{
	size_t	*fill, i, k;

	s->uids = malloc((n ? n : 1) * sizeof(*s->uids));
	s->pos = malloc((n ? n : 1) * sizeof(*s->pos));
	s->start = calloc((size_t)ps->n + 1, sizeof(*s->start));
	fill = calloc((size_t)ps->n, sizeof(*fill));
	if (s->uids == NULL || s->pos == NULL || s->start == NULL ||
	    fill == NULL) {
		free(fill);
		split_free(s);
		return -1;
	}
	for (i = 0; i < n; i++)
		s->start[shard_of(ps->n, uids[i]) + 1]++;
	for (k = 0; k < (size_t)ps->n; k++)
		s->start[k + 1] += s->start[k];
	for (i = 0; i < n; i++) {
		k = (size_t)shard_of(ps->n, uids[i]);
		s->uids[s->start[k] + fill[k]] = uids[i];
		s->pos[s->start[k] + fill[k]++] = i;
	}
	free(fill);
	return 0;
}

void
pubsub_nudge(struct pubsub *ps, const int32_t *uids, size_t n)
{
	struct split	 s;
	int		 k;

	if (ps->n == 1) {
		bus_nudge(ps->v[0], uids, n);
		return;
	}
	if (split(ps, uids, n, &s) == -1)
		return;		/* a nudge is a hint: the login finds them */
	for (k = 0; k < ps->n; k++)
		if (s.start[k + 1] > s.start[k])
			bus_nudge(ps->v[k], s.uids + s.start[k],
			    s.start[k + 1] - s.start[k]);
	split_free(&s);
}

/* A query over several instances: the answers gathered, then one call. */
struct part {
	struct gather	*g;
	size_t		 from;		/* into g->s */
};

struct gather {
	struct split	 s;
	struct part	*parts;		/* one per instance */
	int32_t		*uids;		/* the caller's order */
	int		*online;
	size_t		 n;
	int		 waiting;
	int		 failed;
	pubsub_online_cb *cb;
	void		*arg;
};

static void
gather_free(struct gather *g)
{
	if (g == NULL)
		return;
	split_free(&g->s);
	free(g->parts);
	free(g->uids);
	free(g->online);
	free(g);
}

static void
gather_cb(void *arg, int result, const int32_t *uids, const int *online,
    size_t n)
{
	struct part	*p = arg;
	struct gather	*g = p->g;
	size_t		 i;

	if (result == -1 || online == NULL)
		g->failed = 1;
	else
		for (i = 0; i < n; i++)
			g->online[g->s.pos[p->from + i]] = online[i];
	if (--g->waiting > 0)
		return;
	g->cb(g->arg, g->failed ? -1 : 0, g->uids, g->failed ? NULL :
	    g->online, g->n);
	gather_free(g);
}

void
pubsub_query_online(struct pubsub *ps, const int32_t *uids, size_t n,
    pubsub_online_cb *cb, void *arg)
{
	struct gather	*g;
	int		 k;

	if (ps->n == 1 || n == 0) {
		bus_query_online(ps->v[0], uids, n, cb, arg);
		return;
	}
	if ((g = calloc(1, sizeof(*g))) == NULL ||
	    split(ps, uids, n, &g->s) == -1) {
		free(g);
		/* answered -1 from the loop (no uids), never from here */
		bus_query_online(ps->v[0], uids, 0, cb, arg);
		return;
	}
	if ((g->parts = calloc((size_t)ps->n, sizeof(*g->parts))) == NULL ||
	    (g->uids = malloc(n * sizeof(*g->uids))) == NULL ||
	    (g->online = calloc(n, sizeof(*g->online))) == NULL) {
		gather_free(g);
		bus_query_online(ps->v[0], uids, 0, cb, arg);
		return;
	}
	memcpy(g->uids, uids, n * sizeof(*uids));
	g->n = n;
	g->cb = cb;
	g->arg = arg;
	for (k = 0; k < ps->n; k++)
		if (g->s.start[k + 1] > g->s.start[k])
			g->waiting++;
	for (k = 0; k < ps->n; k++) {
		if (g->s.start[k + 1] == g->s.start[k])
			continue;
		g->parts[k].g = g;
		g->parts[k].from = g->s.start[k];
		bus_query_online(ps->v[k], g->s.uids + g->s.start[k],
		    g->s.start[k + 1] - g->s.start[k], gather_cb,
		    &g->parts[k]);
	}
}
