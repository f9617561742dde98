/*
 * publish.c - publishing into other workers' queues (protocol in
 * include/pubsub.h): the publishes of one loop iteration batched per
 * destination, their answers, the ones sent again after a lost answer,
 * and the nudges kept while Redis is away.
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

/* ---- publishing --------------------------------------------------------- */

static void
pub_answer(struct pubreq *p, enum pubsub_sent sent)
{
	if (p->cb != NULL)
		p->cb(p->arg, p->uid, sent, p->item + p->off + p->uidlen,
		    p->ilen - p->off - p->uidlen);
	free(p->item);
	free(p->queue);
	p->item = NULL;
	p->queue = NULL;
}

/*
 * A publish that failed: its caller hears PUBSUB_DOWN.  A nudge (a uid and no
 * line) has no caller: its user is nudged again once Redis is back, or
 * a user online on another node would find what was stored meanwhile
 * only at the next login.
 */
static void
pub_fail(struct bus *ps, struct pubreq *p)
{
	if (p->item != NULL && p->ilen == p->off + p->uidlen &&
	    !ps->exiting)
		(void)uidset_add(&ps->nudge_later, p->uid);
	pub_answer(p, PUBSUB_DOWN);
}

static int
pub_append(struct pubreq **v, size_t *n, size_t *cap, const struct pubreq *p)
{
	struct pubreq	*nv;
	size_t		 ncap;

	if (*n == *cap) {
		ncap = *cap ? *cap * 2 : 64;
		if ((nv = reallocarray(*v, ncap, sizeof(*nv))) == NULL)
			return -1;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = *p;
	return 0;
}

/*
 * p's item from body (len bytes, malloc'd: taken): signed now (version
 * 1), or kept as it is with a seq, to be sealed with the others of its
 * push (version 3: one MAC per push, not per item).  0 or -1.
 */
static int
pub_item(struct bus *ps, struct pubreq *p, char *body, size_t len)
{
	if (ps->item_version >= 3) {
		p->item = body;
		p->ilen = len;
		p->off = 0;
		p->seq = busauth_next_seq(ps->auth);
		return 0;
	}
	if (busauth_sign(ps->auth, util_wall_ms(), body, len, &p->item,
	    &p->ilen, &p->off) == -1) {
		free(body);
		return -1;
	}
	free(body);
	return 0;
}

/* Sign "<uid>[ <line>]" and add it to this round's batch. */
static int
pub_add(struct bus *ps, int32_t uid, const char *line, size_t len,
    pubsub_publish_cb *cb, void *arg)
{
	struct pubreq	 p;
	char		*body;
	int		 n;

	memset(&p, 0, sizeof(p));
	n = snprintf(NULL, 0, line != NULL ? "%d " : "%d", (int)uid);
	if ((body = malloc((size_t)n + len + 1)) == NULL)
		return -1;
	snprintf(body, (size_t)n + 1, line != NULL ? "%d " : "%d", (int)uid);
	if (line != NULL)
		memcpy(body + n, line, len);
	p.uid = uid;
	p.uidlen = (size_t)n;
	p.cb = cb;
	p.arg = arg;
	if (pub_item(ps, &p, body, (size_t)n + len) == -1)
		return -1;
	if (pub_append(&ps->batch, &ps->nbatch, &ps->batch_cap, &p) == -1) {
		free(p.item);
		return -1;
	}
	if (!ev_is_active(&ps->flush))
		ev_prepare_start(ps->loop, &ps->flush);
	return 0;
}

static void	pub_send(struct bus *, struct req *);

static void
seal_each_free(char **v, size_t k)
{
	size_t	 i;

	for (i = 0; v != NULL && i < k; i++)
		free(v[i]);
	free(v);
}
static void	wait_kick(struct bus *);

/*
 * The k items of a push (a[2..], al[2..]) as one version 2 batch, one
 * list element whatever k (so Redis works per batch, not per message),
 * unless the cluster still has nodes that read only version 1
 * (cluster_item_version).  *packed is freed by the caller.
 */
static int
pack(struct bus *ps, const char **a, size_t *al, size_t *k, char **packed)
{
	size_t	 len;

	if (*k < 2 || ps->item_version < 2)
		return 0;
	if (bus_batch_pack(a + 2, al + 2, *k, packed, &len) ==
	    -1)
		return -1;
	a[2] = *packed;
	al[2] = len;
	*k = 1;
	return 0;
}

/*
 * The k unsigned items of a push (a[2..], al[2..]; their seqs in pubs)
 * sealed as one version 3 batch, written straight into r's arguments
 * (RPUSH, a[1], the batch): one MAC and one copy.  Sent again after a
 * lost answer, the items are sealed anew with the same seqs, which the
 * receiver remembers.  0 or -1.
 */
static int
seal(struct bus *ps, struct req *r, const char **a, size_t *al,
    const struct pubreq *pubs, size_t k)
{
	uint64_t	*seqs;
	int64_t		 now = util_wall_ms();
	size_t		 i, len;
	const char	*head[3];
	size_t		 hl[3];
	int		 rc = -1;

	if ((seqs = calloc(k, sizeof(*seqs))) == NULL)
		return -1;
	for (i = 0; i < k; i++)
		seqs[i] = pubs[i].seq;
	len = bus_seal_len(ps->auth, now, al + 2, seqs, k);
	head[0] = a[0];
	head[1] = a[1];
	head[2] = NULL;
	hl[0] = al[0];
	hl[1] = al[1];
	hl[2] = len;
	if (len > 0 && req_args(r, 3, head, hl) == 0)
		rc = busauth_seal(ps->auth, now, a + 2, al + 2, seqs, k,
		    r->hole, len);
	free(seqs);
	return rc;
}

/*
 * At most one push per queue is out at a time: what comes for a queue
 * meanwhile is held and goes in the next push, when the answer is in.
 * Under load a push then carries what many loop iterations made (one
 * Redis command, not one per iteration); when idle nothing waits.
 */
static struct pushing *
pushing_find(struct bus *ps, const char *q)
{
	size_t	 i;

	for (i = 0; i < ps->npushing; i++)
		if (strcmp(ps->pushing[i].q, q) == 0)
			return &ps->pushing[i];
	return NULL;
}

/* 0, or -1 (out of memory: then nothing is held for q). */
static int
pushing_add(struct bus *ps, const char *q)
{
	struct pushing	*p;

	if ((p = pushing_find(ps, q)) != NULL) {
		p->n++;
		return 0;
	}
	if ((p = reallocarray(ps->pushing, ps->npushing + 1,
	    sizeof(*p))) == NULL)
		return -1;
	ps->pushing = p;
	if ((p[ps->npushing].q = strdup(q)) == NULL)
		return -1;
	p[ps->npushing++].n = 1;
	return 0;
}

/* A push into q was answered (or failed): send what was held for it. */
static void
pushing_done(struct bus *ps, const char *q)
{
	struct pushing	*p;

	if ((p = pushing_find(ps, q)) == NULL || --p->n > 0)
		return;
	free(p->q);
	*p = ps->pushing[--ps->npushing];
	if (ps->nheld > 0 && !ev_is_active(&ps->flush))
		ev_prepare_start(ps->loop, &ps->flush);
}

/* The held publishes go first (they are older), then this round's. */
static int
unhold(struct bus *ps)
{
	struct pubreq	*nv;
	size_t		 ncap;

	if (ps->nheld == 0)
		return 0;
	if (ps->nbatch + ps->nheld > ps->batch_cap) {
		ncap = ps->nbatch + ps->nheld + 64;
		if ((nv = reallocarray(ps->batch, ncap, sizeof(*nv))) == NULL)
			return -1;
		ps->batch = nv;
		ps->batch_cap = ncap;
	}
	memmove(ps->batch + ps->nheld, ps->batch, ps->nbatch *
	    sizeof(*ps->batch));
	memcpy(ps->batch, ps->held, ps->nheld * sizeof(*ps->batch));
	ps->nbatch += ps->nheld;
	ps->nheld = 0;
	return 0;
}

/* One RPUSH of k publishes (taken) into queue q, a cached destination. */
static void
push(struct bus *ps, const char *q, struct pubreq *pubs, size_t k)
{
	struct req	 *r;
	const char	**a;
	size_t		 *al, i;
	char		 *packed = NULL;

	a = calloc(k + 2, sizeof(*a));
	al = calloc(k + 2, sizeof(*al));
	if ((r = req_new(ps, REQ_PUSH, SCRIPT_NONE)) == NULL || a == NULL ||
	    al == NULL) {
		for (i = 0; i < k; i++)
			pub_fail(ps, &pubs[i]);
		free(pubs);
		req_free(r);
		free(a);
		free(al);
		return;
	}
	r->pubs = pubs;
	r->npubs = k;
	/* its answer (or failure) releases what is held for q */
	if ((r->queue = strdup(q)) == NULL || pushing_add(ps, q) == -1) {
		free(r->queue);
		r->queue = NULL;
	}
	a[0] = "RPUSH";
	al[0] = 5;
	a[1] = q;
	al[1] = strlen(q);
	for (i = 0; i < k; i++) {
		a[2 + i] = pubs[i].item;
		al[2 + i] = pubs[i].ilen;
	}
	if (pubs[0].seq != 0 ? seal(ps, r, a, al, pubs, k) == -1 :
	    (pack(ps, a, al, &k, &packed) == -1 ||
	    req_args(r, (int)k + 2, a, al) == -1))
		req_fail(ps, r);
	else
		pub_send(ps, r);
	free(packed);
	free(a);
	free(al);
}

/*
 * Publishes to users whose queue is cached, and fan-out items (their
 * queue is known), go out as one RPUSH per queue; the others stay in
 * the batch, for the script.
 */
static void
flush_cached(struct bus *ps)
{
	struct group {
		const char	*q;
		struct pubreq	*v;
		size_t		 n, cap;
	}		*g = NULL, *ng;
	size_t		 ng_n = 0, i, j, kept = 0;
	const char	*q;
	ev_tstamp	 now = ev_now(ps->loop);

	/* held ones stay held if they cannot go first (out of memory) */
	if (unhold(ps) == -1)
		return;
	for (i = 0; i < ps->nbatch; i++) {
		q = ps->batch[i].queue;
		if (q == NULL && (q = pcache_get(&ps->cache, ps->batch[i].uid,
		    now)) == NULL)
			goto keep;
		if (pushing_find(ps, q) != NULL && pub_append(&ps->held,
		    &ps->nheld, &ps->held_cap, &ps->batch[i]) == 0)
			continue;
		/* cached names are interned; fan-out ones are not */
		for (j = 0; j < ng_n && g[j].q != q && strcmp(g[j].q, q) != 0;
		    j++)
			;
		if (j == ng_n) {
			if ((ng = reallocarray(g, ng_n + 1, sizeof(*g))) ==
			    NULL)
				goto keep;
			g = ng;
			memset(&g[j], 0, sizeof(g[j]));
			g[j].q = q;
			ng_n++;
		}
		if (pub_append(&g[j].v, &g[j].n, &g[j].cap, &ps->batch[i]) ==
		    0)
			continue;
 keep:
		/* a fan-out item has no presence key for the script */
		if (ps->batch[i].queue != NULL)
			pub_answer(&ps->batch[i], PUBSUB_DOWN);
		else
			ps->batch[kept++] = ps->batch[i];
	}
	ps->nbatch = kept;
	for (j = 0; j < ng_n; j++)
		push(ps, g[j].q, g[j].v, g[j].n);
	free(g);
}

/*
 * For the script, which may send each to another queue: each unsigned
 * item (version 3) sealed alone, a[i] pointing at the copy.  The copies
 * (NULL for signed items), or NULL when out of memory.
 */
static char **
seal_each(struct bus *ps, const char **a, size_t *al,
    const struct pubreq *pubs, size_t k)
{
	char		**v;
	int64_t		  now = util_wall_ms();
	size_t		  i, len;

	if ((v = calloc(k + 1, sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < k; i++) {
		if (pubs[i].seq == 0)
			continue;
		len = bus_seal_len(ps->auth, now, &al[i], &pubs[i].seq, 1);
		if (len == 0 || (v[i] = malloc(len)) == NULL ||
		    busauth_seal(ps->auth, now, &a[i], &al[i], &pubs[i].seq,
		    1, v[i], len) == -1) {
			seal_each_free(v, k);
			return NULL;
		}
		a[i] = v[i];
		al[i] = len;
	}
	return v;
}

/* Send the publishes of this round, PUBLISH_BATCH_N per script call. */
void
queue_flush(struct bus *ps)
{
	struct req	 *r;
	const char	**a;
	size_t		 *al, i, k, done = 0;
	char		 *kbuf, nk[16], **sealed;

	ev_prepare_stop(ps->loop, &ps->flush);
	wait_kick(ps);
	flush_cached(ps);
	while (done < ps->nbatch) {
		k = ps->nbatch - done;
		if (k > PUBLISH_BATCH_N)
			k = PUBLISH_BATCH_N;
		a = calloc(2 * k + 1, sizeof(*a));
		al = calloc(2 * k + 1, sizeof(*al));
		kbuf = malloc(k * 24);
		r = req_new(ps, REQ_PUBLISH, SCRIPT_PUBLISH);
		if (r != NULL)
			r->pubs = calloc(k, sizeof(*r->pubs));
		if (a == NULL || al == NULL || kbuf == NULL || r == NULL ||
		    r->pubs == NULL) {
			free(a);
			free(al);
			free(kbuf);
			req_free(r);
			for (i = done; i < done + k; i++)
				pub_fail(ps, &ps->batch[i]);
			done += k;
			continue;
		}
		memcpy(r->pubs, ps->batch + done, k * sizeof(*r->pubs));
		r->npubs = k;
		a[0] = nk;
		al[0] = snprintf(nk, sizeof(nk), "%zu", k);
		for (i = 0; i < k; i++) {
			a[1 + i] = kbuf + i * 24;
			al[1 + i] = snprintf(kbuf + i * 24, 24, "chatd:on:%d",
			    (int)r->pubs[i].uid);
			a[1 + k + i] = r->pubs[i].item;
			al[1 + k + i] = r->pubs[i].ilen;
		}
		sealed = seal_each(ps, a + 1 + k, al + 1 + k, r->pubs, k);
		if (sealed == NULL || req_args(r, (int)(2 * k + 1), a, al) == -1)
			req_fail(ps, r);
		else
			pub_send(ps, r);
		seal_each_free(sealed, k);
		free(a);
		free(al);
		free(kbuf);
		done += k;
	}
	ps->nbatch = 0;
}

/* What the answer to a batch says: each pubreq's res, and the cache. */
static enum pub_outcome
pub_record(struct bus *ps, struct req *r, redisReply *rep)
{
	ev_tstamp	 now = ev_now(ps->loop);
	size_t		 i;

	if (r->kind == REQ_PUSH && rep != NULL &&
	    rep->type == REDIS_REPLY_INTEGER) {
		for (i = 0; i < r->npubs; i++)
			r->pubs[i].res = PUBSUB_QUEUED;
		return PUB_OK;
	}
	if (r->kind == REQ_PUBLISH && rep != NULL &&
	    rep->type == REDIS_REPLY_ARRAY && rep->elements == r->npubs) {
		/* each: the queue it went to (cached), or 0 */
		for (i = 0; i < r->npubs; i++) {
			if (rep->element[i]->type == REDIS_REPLY_STRING) {
				pcache_put(&ps->cache, r->pubs[i].uid,
				    rep->element[i]->str, rep->element[i]->len,
				    now);
				r->pubs[i].res = PUBSUB_QUEUED;
			} else	/* the script's 0: online nowhere */
				r->pubs[i].res = rep->element[i]->type ==
				    REDIS_REPLY_INTEGER ? PUBSUB_AWAY :
				    PUBSUB_DOWN;
		}
		return PUB_OK;
	}
	if (rep == NULL && r->sent && !ps->exiting)
		return PUB_LOST;
	return PUB_FAILED;
}

/* Answer a batch's callers, or keep it to be sent again (takes r). */
static void
pub_finish(struct bus *ps, struct req *r, enum pub_outcome o)
{
	ev_tstamp	 now = ev_now(ps->loop);
	size_t		 i;
	int		 lost = 0;

	if (o == PUB_LOST && ps->exiting)
		o = PUB_FAILED;
	if (o == PUB_OK) {
		for (i = 0; i < r->npubs; i++)
			pub_answer(&r->pubs[i], r->pubs[i].res);
	} else if (o == PUB_LOST) {
		/* sent, answer lost: maybe queued; send the same bytes again */
		for (i = 0; i < r->npubs; i++) {
			if (r->pubs[i].since == 0)
				r->pubs[i].since = now;
			if (pub_append(&ps->resend, &ps->nresend,
			    &ps->resend_cap, &r->pubs[i]) == 0) {
				r->pubs[i].item = NULL;
				r->pubs[i].queue = NULL;
			}
			else
				lost = 1;
		}
		for (i = 0; lost && i < r->npubs; i++)
			if (r->pubs[i].item != NULL)
				pub_fail(ps, &r->pubs[i]);
	} else {
		for (i = 0; i < r->npubs; i++)
			pub_fail(ps, &r->pubs[i]);
	}
	req_free(r);
}

/*
 * Sentinel mode: a batch counts as queued once a replica has it, so a
 * failover cannot lose it; until then it is sent again after a lost
 * link (the receiver drops a copy it already handed off).  One WAIT at
 * a time covers every batch answered before it was sent.  A WAIT that
 * saw no replica (the primary lost its replica, e.g. just after a
 * failover) lets its batches go on, counted, and no WAIT is sent for
 * NO_REPLICA_SECONDS: availability first while there is no replica.
 */
static void
wait_kick(struct bus *ps)
{
	struct req	*w, *r;
	const char	*a[3];
	char		 ms[16];

	if (ps->wait_out != NULL || ps->unconf == NULL)
		return;
	snprintf(ms, sizeof(ms), "%d", WAIT_REPLICA_MS);
	a[0] = "WAIT";
	a[1] = "1";
	a[2] = ms;
	if ((w = req_new(ps, REQ_WAITREPL, SCRIPT_NONE)) == NULL ||
	    req_strs(w, 3, a) == -1 || req_send(ps, w) == -1) {
		req_free(w);
		/* no link to ask on: they may be lost with the primary */
		while ((r = ps->unconf) != NULL) {
			ps->unconf = r->next;
			pub_finish(ps, r, w == NULL ? PUB_OK : PUB_LOST);
		}
		return;
	}
	w->held = ps->unconf;
	ps->unconf = NULL;
	ps->wait_out = w;
}

/* Answers to a batch of publishes (takes r). */
void
queue_publish_done(struct bus *ps, struct req *r, void *reply)
{
	enum pub_outcome o = pub_record(ps, r, reply);

	if (r->kind == REQ_PUSH && r->queue != NULL) {
		pushing_done(ps, r->queue);
		free(r->queue);
		r->queue = NULL;
	}

	if (ps->master != NULL && o == PUB_OK) {
		if (ev_now(ps->loop) < ps->no_replica_until)
			ps->unreplicated++;
		else {
			/*
			 * WAIT from the flush, once every answer read with
			 * this one is in: one WAIT covers them all
			 */
			r->next = ps->unconf;
			ps->unconf = r;
			if (!ev_is_active(&ps->flush))
				ev_prepare_start(ps->loop, &ps->flush);
			return;
		}
	}
	pub_finish(ps, r, o);
}

void
queue_wait_done(struct bus *ps, struct req *w, void *reply)
{
	redisReply	*rep = reply;
	struct req	*r;
	enum pub_outcome o = rep == NULL ? PUB_LOST : PUB_OK;

	if (ps->wait_out == w)
		ps->wait_out = NULL;
	if (rep != NULL && rep->type == REDIS_REPLY_INTEGER &&
	    rep->integer < 1 && !ps->exiting) {
		ps->no_replica_until = ev_now(ps->loop) + NO_REPLICA_SECONDS;
		log_conn_error(ps, "command", "no replica confirmed the queue "
		    "(going on without)");
	}
	while ((r = w->held) != NULL) {
		w->held = r->next;
		if (o == PUB_OK && ev_now(ps->loop) < ps->no_replica_until)
			ps->unreplicated++;
		pub_finish(ps, r, o);
	}
	req_free(w);
	wait_kick(ps);
}

static void
pub_send(struct bus *ps, struct req *r)
{
	if (req_send(ps, r) == -1)
		req_fail(ps, r);
}

/* Nudges Redis never saw go now. */
static void
nudge_flush(struct bus *ps)
{
	int32_t	*v;
	size_t	 i, n;

	if (ps->nudge_later.n == 0 ||
	    (v = uidset_list(&ps->nudge_later, &n)) == NULL)
		return;
	uidset_clear(&ps->nudge_later);
	log_info("redis: nudging %zu user(s) whose messages were stored while "
	    "Redis was away", n);
	for (i = 0; i < n; i++)
		if (pub_add(ps, v[i], NULL, 0, NULL, NULL) == -1)
			(void)uidset_add(&ps->nudge_later, v[i]);
	free(v);
}

/*
 * The cmd connection is back: publishes whose answer was lost go again,
 * and the nudges that could not be sent.
 */
void
queue_resend(struct bus *ps)
{
	size_t	 i;

	nudge_flush(ps);
	if (ps->nresend == 0)
		return;
	log_info("redis: sending %zu publish(es) again whose answer was lost",
	    ps->nresend);
	for (i = 0; i < ps->nresend; i++)
		if (pub_append(&ps->batch, &ps->nbatch, &ps->batch_cap,
		    &ps->resend[i]) == -1)
			pub_fail(ps, &ps->resend[i]);
	ps->nresend = 0;
	queue_flush(ps);
}

void
bus_publish(struct bus *ps, int32_t uid, const char *line, size_t len,
    pubsub_publish_cb *cb, void *arg)
{
	if (pub_add(ps, uid, line, len, cb, arg) == -1 && cb != NULL)
		cb(arg, uid, -1, line, len);
}

enum pubsub_route
bus_route(struct bus *ps, int32_t uid)
{
	if (ps->cmd == NULL || !ps->cmd_up ||
	    pcache_get(&ps->cache, uid, ev_now(ps->loop)) == NULL)
		return PUBSUB_ROUTE_LOOKUP;
	return PUBSUB_ROUTE_KNOWN;
}

void
bus_nudge(struct bus *ps, const int32_t *uids, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (ps->cmd == NULL || !ps->cmd_up ||
		    pub_add(ps, uids[i], NULL, 0, NULL, NULL) == -1)
			(void)uidset_add(&ps->nudge_later, uids[i]);
}

/* Sign body (the first hlen bytes name uid) for queue, into the batch. */
static int
push_add(struct bus *ps, const char *queue, int32_t uid, const char *body,
    size_t hlen, size_t len, pubsub_publish_cb *cb, void *arg)
{
	struct pubreq	 p;

	char		*copy;

	memset(&p, 0, sizeof(p));
	p.uid = uid;
	p.uidlen = hlen;
	p.cb = cb;
	p.arg = arg;
	if ((p.queue = strdup(queue)) == NULL ||
	    (copy = util_memdupz(body, len)) == NULL ||
	    pub_item(ps, &p, copy, len) == -1) {
		free(p.queue);
		return -1;
	}
	if (pub_append(&ps->batch, &ps->nbatch, &ps->batch_cap, &p) == -1) {
		free(p.item);
		free(p.queue);
		return -1;
	}
	if (!ev_is_active(&ps->flush))
		ev_prepare_start(ps->loop, &ps->flush);
	return 0;
}

/*
 * A fan-out item for uids[0..n), all held by the worker of queue: one
 * signed "<uid>,<uid>,... <line>", pushed with this round's others.
 * cb hears once, for uids[0] (the caller knows the rest).  0 or -1.
 * Writing version 1 only (older nodes in the cluster, which drop member
 * lists): one "<uid> <line>" each instead, pushed together, cb on the
 * first (they share one RPUSH, so one outcome).
 */
int
bus_push(struct bus *ps, const char *queue, const int32_t *uids, size_t n,
    const char *line, size_t len, pubsub_publish_cb *cb, void *arg)
{
	char		*body, *at;
	size_t		 i, hlen;
	int		 rc = 0;

	if (n == 0)
		return -1;
	if ((body = malloc(n * 12 + len + 1)) == NULL)
		return -1;
	if (ps->item_version < 2 && n > 1) {
		for (i = 0; i < n && rc == 0; i++) {
			hlen = (size_t)sprintf(body, "%d ", (int)uids[i]);
			memcpy(body + hlen, line, len);
			rc = push_add(ps, queue, uids[i], body, hlen,
			    hlen + len, i == 0 ? cb : NULL, arg);
		}
		free(body);
		return rc;
	}
	for (at = body, i = 0; i < n; i++)
		at += sprintf(at, i + 1 < n ? "%d," : "%d ", (int)uids[i]);
	hlen = (size_t)(at - body);
	memcpy(at, line, len);
	rc = push_add(ps, queue, uids[0], body, hlen, hlen + len, cb, arg);
	free(body);
	return rc;
}

/* Once a second: publishes unanswered for too long go back to -1. */
void
publish_tick(struct bus *ps)
{
	ev_tstamp	 now = ev_now(ps->loop);
	size_t		 i, j = 0, gave_up = 0;

	for (i = 0; i < ps->nresend; i++) {
		if (now - ps->resend[i].since > RESEND_SECONDS) {
			pub_fail(ps, &ps->resend[i]);
			gave_up++;
		} else
			ps->resend[j++] = ps->resend[i];
	}
	ps->nresend = j;
	if (gave_up > 0)
		log_warnx("redis: %zu publish(es) unanswered for %.0f s: "
		    "stored here; a copy may also have been queued", gave_up,
		    RESEND_SECONDS);
}

/* At exit: every publisher still waiting hears -1. */
void
publish_free(struct bus *ps)
{
	size_t	 i;

	for (i = 0; i < ps->nbatch; i++)
		pub_answer(&ps->batch[i], PUBSUB_DOWN);
	for (i = 0; i < ps->nheld; i++)
		pub_answer(&ps->held[i], PUBSUB_DOWN);
	for (i = 0; i < ps->nresend; i++)
		pub_answer(&ps->resend[i], PUBSUB_DOWN);
	for (i = 0; i < ps->npushing; i++)
		free(ps->pushing[i].q);
	free(ps->batch);
	free(ps->held);
	free(ps->resend);
	free(ps->pushing);
	ps->batch = ps->resend = ps->held = NULL;
	ps->pushing = NULL;
	ps->nbatch = ps->nresend = ps->nheld = ps->npushing = 0;
}
