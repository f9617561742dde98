/*
 * presence.c - who is logged in where: claims, releases and queries of
 * chatd:on:<uid>, and the set of users claimed here, re-asserted after
 * Redis comes back.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "ps_int.h"
#include "util.h"

/* ---- a set of user ids (open addressing, linear probing) --------------- */

static size_t
uidset_find(const struct uidset *s, int32_t uid, int *found)
{
	size_t	 mask = s->cap - 1, i;

	for (i = util_hash32((uint32_t)uid) & mask; s->v[i] != 0; i = (i + 1) & mask)
		if (s->v[i] == uid) {
			*found = 1;
			return i;
		}
	*found = 0;
	return i;
}

int
uidset_has(const struct uidset *s, int32_t uid)
{
	int	 found;

	if (s->n == 0)
		return 0;
	(void)uidset_find(s, uid, &found);
	return found;
}

int
uidset_add(struct uidset *s, int32_t uid)
{
	struct uidset	 t;
	size_t		 i;
	int		 found;

	if (uid <= 0)
		return -1;
	if ((s->n + 1) * 2 > s->cap) {
		t.cap = s->cap ? s->cap * 2 : 64;
		t.n = 0;
		if ((t.v = calloc(t.cap, sizeof(*t.v))) == NULL)
			return -1;
		for (i = 0; i < s->cap; i++)
			if (s->v[i] != 0)
				t.v[uidset_find(&t, s->v[i], &found)] =
				    s->v[i], t.n++;
		free(s->v);
		*s = t;
	}
	i = uidset_find(s, uid, &found);
	if (!found) {
		s->v[i] = uid;
		s->n++;
	}
	return 0;
}

void
uidset_del(struct uidset *s, int32_t uid)
{
	size_t	 mask, i, j, k;
	int	 found;

	if (s->n == 0)
		return;
	i = uidset_find(s, uid, &found);
	if (!found)
		return;
	mask = s->cap - 1;
	/* shift back later entries of the run that may no longer be found */
	for (j = (i + 1) & mask; s->v[j] != 0; j = (j + 1) & mask) {
		k = util_hash32((uint32_t)s->v[j]) & mask;
		if ((j > i && (k <= i || k > j)) ||
		    (j < i && k <= i && k > j)) {
			s->v[i] = s->v[j];
			i = j;
		}
	}
	s->v[i] = 0;
	s->n--;
}

void
uidset_clear(struct uidset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Snapshot of a set (it may change while we walk it). */
int32_t *
uidset_list(const struct uidset *s, size_t *n)
{
	int32_t	*v;
	size_t	 i;

	*n = 0;
	if (s->n == 0 || (v = calloc(s->n, sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < s->cap; i++)
		if (s->v[i] != 0)
			v[(*n)++] = s->v[i];
	return v;
}

/* ---- requests ----------------------------------------------------------- */

/* A claim (or re-assertion) of uid, or its release, ready to send. */
static struct req *
presence_req(struct bus *ps, enum req_kind kind, int32_t uid)
{
	struct req	*r;
	char		 key[32];
	const char	*a[6];

	if ((r = req_new(ps, kind, kind == REQ_RELEASE ? SCRIPT_RELEASE :
	    SCRIPT_CLAIM)) == NULL)
		return NULL;
	a[5] = "1";		/* REQ_TAKEOVER */
	r->uid = uid;
	a[0] = "1";
	a[1] = key;
	snprintf(key, sizeof(key), "chatd:on:%d", (int)uid);
	a[2] = ps->me;
	a[3] = ps->node_id;
	a[4] = ps->boot;
	if (req_strs(r, kind == REQ_RELEASE ? 3 : kind == REQ_TAKEOVER ? 6 :
	    5, a) == -1) {
		req_free(r);
		return NULL;
	}
	return r;
}

/*
 * A fresh cmd connection: set Redis right about our users: releases it
 * never saw, presence it may have lost (restart, expired keys).
 */
void
presence_setup(struct bus *ps)
{
	struct req	*r;
	int32_t		*v;
	size_t		 i, n;

	v = uidset_list(&ps->unreleased, &n);
	uidset_clear(&ps->unreleased);
	for (i = 0; i < n; i++) {
		if ((r = presence_req(ps, REQ_RELEASE, v[i])) == NULL) {
			(void)uidset_add(&ps->unreleased, v[i]);
			continue;
		}
		if (req_send(ps, r) == -1)
			req_fail(ps, r);
	}
	free(v);

	v = uidset_list(&ps->local, &n);
	for (i = 0; i < n; i++) {
		if ((r = presence_req(ps, REQ_REASSERT, v[i])) == NULL)
			break;
		if (req_send(ps, r) == -1)
			req_free(r);
	}
	if (n > 0)
		log_info("redis: re-asserting the presence of %zu user(s)", n);
	/*
	 * While our presence was unknown (Redis restarted, or away), a node
	 * that stored a message for one of them could not nudge us: each
	 * fetches what is stored once the re-assertions are in.
	 */
	for (i = 0; ps->h.stored != NULL && i < n; i++)
		(void)uidset_add(&ps->refetch, v[i]);
	ps->refetch_at = ev_now(ps->loop) + REFETCH_DELAY;
	free(v);
}

/* Once a second: some of the refetches presence_setup asked for. */
void
presence_tick(struct bus *ps)
{
	int32_t	*v;
	size_t	 i, n;

	if (ps->refetch.n == 0 || ev_now(ps->loop) < ps->refetch_at ||
	    (v = uidset_list(&ps->refetch, &n)) == NULL)
		return;
	/* bounded per second: each is a store query on the loop */
	if (n > REFETCH_PER_TICK)
		n = REFETCH_PER_TICK;
	for (i = 0; i < n; i++) {
		uidset_del(&ps->refetch, v[i]);
		if (uidset_has(&ps->local, v[i]))
			ps->h.stored(ps->h.arg, v[i]);
	}
	free(v);
}

/* A claim's answer: {status} or {status, queue to reap}; -1 if neither. */
static long
claim_status(const redisReply *rep, const char **queue)
{
	*queue = NULL;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements < 1 || rep->element[0]->type != REDIS_REPLY_INTEGER)
		return -1;
	if (rep->elements >= 2 && rep->element[1]->type == REDIS_REPLY_STRING)
		*queue = rep->element[1]->str;
	return (long)rep->element[0]->integer;
}

/* A locate's answer: each user's queue (cached), or none. */
static void
locate_done(struct bus *ps, struct req *r, const redisReply *rep)
{
	const char	**q;
	size_t		 i;
	int		 result = -1;

	if ((q = calloc(r->n + 1, sizeof(*q))) != NULL && rep != NULL &&
	    rep->type == REDIS_REPLY_ARRAY && rep->elements == r->n) {
		result = 0;
		for (i = 0; i < r->n; i++) {
			if (rep->element[i]->type == REDIS_REPLY_STRING)
				q[i] = rep->element[i]->str;
			pcache_put(&ps->cache, r->uids[i], q[i], q[i] != NULL ?
			    rep->element[i]->len : 0, ev_now(ps->loop));
		}
	}
	r->cb.locate(r->arg, result, r->uids, result == 0 ? q : NULL, r->n);
	free(q);
}

/* Replies to presence requests (takes r). */
void
presence_done(struct bus *ps, struct req *r, void *reply)
{
	redisReply	*rep = reply;
	const char	*q;
	int		*online = NULL;
	size_t		 i;
	long		 result;

	switch (r->kind) {
	case REQ_CLAIM:
	case REQ_TAKEOVER:
		result = claim_status(rep, &q);
		if (result == 1)
			uidset_del(&ps->local, r->uid);
		/*
		 * The entry of a dead worker that left items: answered now,
		 * reaped in the background; what gets stored nudges uid.
		 */
		if (result == 0 && q != NULL)
			queue_reap(ps, q);
		r->cb.claim(r->arg, result == 0 ? PUBSUB_CLAIMED :
		    result == 1 ? PUBSUB_ELSEWHERE : PUBSUB_UNREACHABLE);
		break;
	case REQ_REASSERT:
		if (claim_status(rep, &q) == 1 &&
		    uidset_has(&ps->local, r->uid)) {
			uidset_del(&ps->local, r->uid);
			log_notice("user %d is now logged in on another "
			    "node (taken over, or logged in while Redis was "
			    "out of reach): ending the session here",
			    (int)r->uid);
			if (ps->h.lost != NULL)
				ps->h.lost(ps->h.arg, r->uid);
		}
		break;
	case REQ_RELEASE:
		/* not seen by Redis: send it again once it is back */
		if (rep == NULL && !uidset_has(&ps->local, r->uid))
			(void)uidset_add(&ps->unreleased, r->uid);
		break;
	case REQ_QUERY:
		result = -1;
		online = calloc(r->n + 1, sizeof(*online));
		if (online != NULL && r->n == 0)
			result = 0;
		else if (online != NULL && rep != NULL &&
		    rep->type == REDIS_REPLY_ARRAY && rep->elements == r->n) {
			result = 0;
			for (i = 0; i < r->n; i++)
				online[i] = rep->element[i]->type ==
				    REDIS_REPLY_INTEGER &&
				    rep->element[i]->integer == 1;
		}
		r->cb.online(r->arg, (int)result, r->uids, online, r->n);
		free(online);
		break;
	case REQ_LOCATE:
		locate_done(ps, r, rep);
		break;
	case REQ_LOGIN:
		if (r->cb.login != NULL)
			r->cb.login(r->arg, rep != NULL &&
			    rep->type == REDIS_REPLY_INTEGER ? 0 : -1,
			    rep != NULL && rep->type == REDIS_REPLY_INTEGER ?
			    (long)rep->integer : 0);
		break;
	default:
		break;
	}
	req_free(r);
}

/*
 * A request with n presence keys of uids, then extra arguments (one
 * script call); r->uids keeps a copy.  NULL: out of memory.
 */
static struct req *
keyed_req(struct bus *ps, enum req_kind kind, enum script script,
    const int32_t *uids, size_t n)
{
	struct req	 *r;
	const char	**a = NULL;
	size_t		 *al = NULL, i;
	char		 *kbuf = NULL, nk[16];

	if ((r = req_new(ps, kind, script)) == NULL ||
	    (r->uids = calloc(n + 1, sizeof(*uids))) == NULL ||
	    (a = calloc(n + 1, sizeof(*a))) == NULL ||
	    (al = calloc(n + 1, sizeof(*al))) == NULL ||
	    (kbuf = malloc(n * 24 + 1)) == NULL)
		goto fail;
	memcpy(r->uids, uids, n * sizeof(*uids));
	r->n = n;
	a[0] = nk;
	al[0] = snprintf(nk, sizeof(nk), "%zu", n);
	for (i = 0; i < n; i++) {
		a[i + 1] = kbuf + i * 24;
		al[i + 1] = snprintf(kbuf + i * 24, 24, "chatd:on:%d",
		    (int)uids[i]);
	}
	if (req_args(r, (int)n + 1, a, al) == -1)
		goto fail;
	free(a);
	free(al);
	free(kbuf);
	return r;
fail:
	free(a);
	free(al);
	free(kbuf);
	req_free(r);
	return NULL;
}

/* ---- interface ---------------------------------------------------------- */

/*
 * Out of memory for the request itself is the one case where a
 * callback runs inside the call; callers make these calls last.
 */
static void
claim(struct bus *ps, enum req_kind kind, int32_t uid, pubsub_claim_cb *cb,
    void *arg)
{
	struct req	*r;

	uidset_del(&ps->unreleased, uid);
	if (uidset_add(&ps->local, uid) == -1)
		log_warnx("redis: out of memory: user %d will not be "
		    "re-asserted after a reconnect", (int)uid);
	if ((r = presence_req(ps, kind, uid)) == NULL) {
		cb(arg, PUBSUB_UNREACHABLE);
		return;
	}
	r->cb.claim = cb;
	r->arg = arg;
	if (req_send(ps, r) == -1)
		req_fail(ps, r);
}

void
bus_claim(struct bus *ps, int32_t uid, pubsub_claim_cb *cb, void *arg)
{
	claim(ps, REQ_CLAIM, uid, cb, arg);
}

void
bus_take_over(struct bus *ps, int32_t uid, pubsub_claim_cb *cb, void *arg)
{
	claim(ps, REQ_TAKEOVER, uid, cb, arg);
}

/*
 * A claim of uid by another worker (value: its presence value) while
 * uid is ours: most often a resumed session that took it over.  Redis
 * decides (a re-assertion answers "elsewhere" when the other holder is
 * live); then the session here ends (handler lost).  Our own claims
 * and releases come back here too and are ignored.
 */
void
presence_changed(struct bus *ps, int32_t uid, const char *value)
{
	struct req	*r;

	if (value == NULL || strcmp(value, ps->me) == 0 ||
	    !uidset_has(&ps->local, uid))
		return;
	if ((r = presence_req(ps, REQ_REASSERT, uid)) != NULL &&
	    req_send(ps, r) == -1)
		req_free(r);
}

void
bus_release(struct bus *ps, int32_t uid)
{
	struct req	*r;

	uidset_del(&ps->local, uid);
	if ((r = presence_req(ps, REQ_RELEASE, uid)) == NULL) {
		(void)uidset_add(&ps->unreleased, uid);
		return;
	}
	if (req_send(ps, r) == -1) {
		req_free(r);
		(void)uidset_add(&ps->unreleased, uid);
	}
}


void
bus_query_online(struct bus *ps, const int32_t *uids, size_t n,
    pubsub_online_cb *cb, void *arg)
{
	struct req	*r;

	if ((r = keyed_req(ps, REQ_QUERY, SCRIPT_QUERY, uids, n)) == NULL) {
		cb(arg, -1, uids, NULL, 0);
		return;
	}
	r->cb.online = cb;
	r->arg = arg;
	/* no users: answered from the loop */
	if (n == 0 || req_send(ps, r) == -1)
		req_fail(ps, r);
}

/* Where uids are (the group fan-out): one script, two MGETs in it. */
void
bus_locate(struct bus *ps, const int32_t *uids, size_t n, bus_locate_cb *cb,
    void *arg)
{
	struct req	*r;

	if ((r = keyed_req(ps, REQ_LOCATE, SCRIPT_LOCATE, uids, n)) == NULL) {
		cb(arg, -1, uids, NULL, 0);
		return;
	}
	r->cb.locate = cb;
	r->arg = arg;
	if (n == 0 || req_send(ps, r) == -1)
		req_fail(ps, r);
}

/*
 * Failed-login counters: script (SCRIPT_LOGIN_FAILED) over
 * keys with integer arguments; cb (may be NULL) gets its answer.
 */
void
bus_login(struct bus *ps, int script, const char *const *keys, int nkeys,
    const int *args, int nargs, pubsub_login_cb *cb, void *arg)
{
	struct req	*r;
	const char	*a[16];
	char		 nb[16], ab[8][16];
	int		 i, argc = 0;

	if (nkeys + nargs + 1 > 16 || nargs > 8 ||
	    (r = req_new(ps, REQ_LOGIN, script)) == NULL) {
		if (cb != NULL)
			cb(arg, -1, 0);
		return;
	}
	r->cb.login = cb;
	r->arg = arg;
	snprintf(nb, sizeof(nb), "%d", nkeys);
	a[argc++] = nb;
	for (i = 0; i < nkeys; i++)
		a[argc++] = keys[i];
	for (i = 0; i < nargs; i++) {
		snprintf(ab[i], sizeof(ab[i]), "%d", args[i]);
		a[argc++] = ab[i];
	}
	if (req_strs(r, argc, a) == -1 || req_send(ps, r) == -1)
		req_fail(ps, r);
}
