/*
 * hbarrier.c - the history barrier across the cluster (pubsub_hist_ask
 * in include/pubsub.h).  A read's worker asks on chatd:hf; every worker
 * that hears it (each subscribes on every instance) answers on
 * chatd:hfa of the same instance once the history rows it kept are
 * stored, and says meanwhile that it is storing them.  Both are signed
 * as items are and checked (MAC, age), never remembered as seen: a
 * replayed ask costs a flush, and an answer counts once per answerer
 * and only for the asker's latest ask.  Every worker hears every
 * answer; only the asker checks one (the others see it is not theirs
 * by its address, before any MAC).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "busitem.h"
#include "log.h"
#include "ps_int.h"
#include "util.h"

/* Forget who answered: a new ask. */
static void
hb_clear(struct bus *b)
{
	while (b->hf_n > 0)
		free(b->hf_from[--b->hf_n]);
}

/* Publish a signed body on channel; seq goes to the reply (r->n). */
static int
hb_publish(struct bus *b, enum req_kind kind, const char *channel,
    const char *body, uint32_t seq)
{
	struct req	*r;
	const char	*argv[3];
	size_t		 lens[3], off;
	char		*item;
	int		 rc;

	if (busauth_sign(b->auth, util_wall_ms(), body, strlen(body), &item,
	    &lens[2], &off) == -1)
		return -1;
	if ((r = req_new(b, kind, SCRIPT_NONE)) == NULL) {
		free(item);
		return -1;
	}
	r->n = seq;
	argv[0] = "PUBLISH";
	argv[1] = channel;
	argv[2] = item;
	lens[0] = strlen(argv[0]);
	lens[1] = strlen(argv[1]);
	rc = req_args(r, 3, argv, lens);
	free(item);
	if (rc == -1 || req_send(b, r) == -1) {
		req_free(r);
		return -1;
	}
	return 0;
}

int
pubsub_hist_ask(struct pubsub *ps, uint32_t seq)
{
	struct bus	*b = NULL;
	char		 body[64], *me;
	int		 i;

	for (i = 0; ps != NULL && i < ps->n && b == NULL; i++)
		if (bus_up(ps->v[i]) && ps->v[i]->sub != NULL)
			b = ps->v[i];
	if (b == NULL)
		return -1;
	/* how an answer names this ask */
	if (asprintf(&me, " %s %s.%d %u ", b->node_id, b->boot, b->slot,
	    seq) == -1)
		return -1;
	snprintf(body, sizeof(body), "hf %s.%d %u", b->boot, b->slot, seq);
	if (hb_publish(b, REQ_HIST_ASK, "chatd:hf", body, seq) == -1) {
		free(me);
		return -1;
	}
	free(b->hf_me);
	b->hf_me = me;
	b->hf_seq = seq;
	hb_clear(b);
	return 0;
}

/* PUBLISH chatd:hf answered: how many workers heard the ask. */
void
hbar_published(struct bus *b, struct req *r, void *reply)
{
	redisReply	*rep = reply;
	long		 n = -1;

	if (rep != NULL && rep->type == REDIS_REPLY_INTEGER)
		n = (long)rep->integer;
	if (b->h.hist_heard != NULL)
		b->h.hist_heard(b->h.arg, (uint32_t)r->n, n);
}

/* to: "<instance> <node> <boot>.<slot> <seq>", as hbar_message made it. */
void
pubsub_hist_answer(struct pubsub *ps, const char *to,
    enum pubsub_hist_state state)
{
	char		*body;
	const char	*rest;
	long		 inst;
	char		*end;
	struct bus	*b;

	inst = strtol(to, &end, 10);
	if (ps == NULL || end == to || *end != ' ' || inst < 0 ||
	    inst >= ps->n)
		return;
	b = ps->v[inst];
	rest = end + 1;
	if (asprintf(&body, "%s %s %s.%d", state == PUBSUB_HIST_STORED ?
	    "hfa" : "hfb", rest, b->boot, b->slot) == -1)
		return;
	/* lost with the connection: the asker's time limit covers it */
	(void)hb_publish(b, REQ_HIST_ANSWER, "chatd:hfa", body, 0);
	free(body);
}

/* How many of [s, end) go before a blank (or the end). */
static size_t
word(const char *s, const char *end)
{
	const char	*p = s;

	while (p < end && *p != ' ')
		p++;
	return (size_t)(p - s);
}

/* A serial number of 1-10 digits ending at a blank or end: 0 or -1. */
static int
serial(const char *s, const char *end, uint32_t *seq)
{
	size_t		 n = word(s, end), i;
	uint64_t	 v = 0;

	if (n == 0 || n > 10)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -1;
	*seq = (uint32_t)v;
	return 0;
}

/* Whether from answered our latest ask already; else remember it. */
static int
hb_heard_before(struct bus *b, char *from)
{
	size_t	 i;

	for (i = 0; i < b->hf_n; i++)
		if (strcmp(b->hf_from[i], from) == 0) {
			free(from);
			return 1;
		}
	if (util_grow((void **)&b->hf_from, &b->hf_cap, b->hf_n,
	    sizeof(*b->hf_from)) == -1) {
		free(from);
		return 1;	/* not counted: the time limit covers it */
	}
	b->hf_from[b->hf_n++] = from;
	return 0;
}

/* Whether an answer (not checked yet) may be for our latest ask. */
static int
hb_for_us(const struct bus *b, const char *msg, size_t len)
{
	return b->hf_me != NULL &&
	    memmem(msg, len, b->hf_me, strlen(b->hf_me)) != NULL;
}

/* After "hfa": " <node> <boot>.<slot> <seq> <answerer's boot>.<slot>" */
static void
hb_answer(struct bus *b, const struct bus_item *it, const char *p,
    const char *end, enum pubsub_hist_state state)
{
	char		*from;
	size_t		 mlen = strlen(b->hf_me);

	if ((size_t)(end - p) <= mlen || memcmp(p, b->hf_me, mlen) != 0)
		return;		/* another worker's ask, or an older one */
	p += mlen;
	if (word(p, end) != (size_t)(end - p))
		return;
	if (b->h.hist_answered == NULL)
		return;
	if (state == PUBSUB_HIST_STORING) {
		b->h.hist_answered(b->h.arg, b->hf_seq, state);
		return;
	}
	/* the answerer: its node (signed) and "<boot>.<slot>" */
	if (asprintf(&from, "%.*s %.*s", (int)it->srclen, it->src,
	    (int)(end - p), p) == -1)
		return;
	if (!hb_heard_before(b, from))
		b->h.hist_answered(b->h.arg, b->hf_seq, state);
}

/* A message on chatd:hf (an ask) or chatd:hfa (an answer). */
void
hbar_message(struct bus *b, int inst, int answer, const char *msg,
    size_t len)
{
	struct bus_item	 it;
	enum bus_verdict v;
	const char	*p, *end;
	char		*to;
	size_t		 n;
	uint32_t	 seq;

	if (answer && !hb_for_us(b, msg, len))
		return;
	/* never marked seen: see the top of the file */
	v = busauth_check(b->auth, util_wall_ms(), msg, len, &it);
	if (v != BUS_OK && v != BUS_REPLAYED) {
		bus_reject(b, v, &it, answer ? "chatd:hfa" : "chatd:hf");
		return;
	}
	p = it.body;
	end = it.body + it.blen;
	if (answer) {
		if (end - p > 3 && memcmp(p, "hfa", 3) == 0)
			hb_answer(b, &it, p + 3, end, PUBSUB_HIST_STORED);
		else if (end - p > 3 && memcmp(p, "hfb", 3) == 0)
			hb_answer(b, &it, p + 3, end, PUBSUB_HIST_STORING);
		return;
	}
	/* "hf <boot>.<slot> <seq>" */
	if (end - p < 4 || memcmp(p, "hf ", 3) != 0 || b->h.hist_asked == NULL)
		return;
	p += 3;
	n = word(p, end);
	if (n == 0 || p + n >= end || serial(p + n + 1, end, &seq) == -1 ||
	    p + n + 1 + word(p + n + 1, end) != end)
		return;
	if (asprintf(&to, "%d %.*s %.*s", inst, (int)it.srclen, it.src,
	    (int)(end - p), p) == -1)
		return;
	b->h.hist_asked(b->h.arg, to);
	free(to);
}

void
hbar_forget(struct bus *b)
{
	hb_clear(b);
	free(b->hf_me);
	b->hf_me = NULL;
	free(b->hf_from);
	b->hf_from = NULL;
	b->hf_n = b->hf_cap = 0;
}
