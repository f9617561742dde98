/*
 * chat_barrier.c - a history barrier across the workers of the node and
 * of the cluster, so that a HISTORY or RESUME read (chat_history.c,
 * chat_resume.c) sees every chat accepted anywhere before it.
 *
 * A chat is kept in the history by the worker that accepted it, which
 * is often not the reading one.  A read waits for its own worker's rows
 * (chat_history_hold); another worker's rows may wait in its memory and
 * spool for long: behind a backlog at SCHED_IDLE on a busy node, while
 * history_defer holds them, or while its store is slow (a RESUME's 2 s
 * settle time did not cover that: its chats were lost for the client).
 * So before the fetch the reader's worker sends CHAN_HIST_FLUSH to
 * every other worker of the node; each answers CHAN_HIST_FLUSHED once
 * the rows it had kept when the request came are stored (its history
 * thread boosted meanwhile), and CHAN_HIST_STORING each second until
 * then.  The read waits for every answer while it hears from each
 * worker: BARRIER_SILENCE_SEC after a worker's last word, BARRIER_MAX_SEC
 * in all (a backlog history_defer left takes seconds to store, and a
 * read that went on without it would miss chats).  A slot without a
 * worker, or whose worker is of an older release during an upgrade,
 * answers late or never, and is not waited for again until it answers
 * (logged).
 *
 * In a cluster the same barrier is also asked of every worker of every
 * node over the bus (pubsub_hist_ask: every worker that hears it
 * answers, this one and this node's included), so that a read on one
 * node sees the chats another node accepted before it (a RESUME on
 * another node than the old connection's, HISTORY of a conversation
 * with someone on another node).  The read waits until as many answers
 * came as PUBLISH said workers heard the ask, on the same terms; when
 * the time is up the cluster's part is not waited for until a barrier
 * is answered in full again.  Redis down: nothing to wait for (rows
 * kept elsewhere then may be missing from the read, as before).
 *
 * Barriers are shared, one under way at a time: a read joins the newest
 * barrier sent since it came, or else waits for the next, which goes
 * out when the one under way is done (a group commit), so many reads (a
 * reconnect storm's resumes) cost a barrier per round trip.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "channel.h"
#include "chat_impl.h"
#include "histprio.h"
#include "log.h"
#include "online.h"
#include "util.h"

#define BARRIER_SILENCE_SEC	10.0	/* a worker silent this long: not
					   waited for */
#define BARRIER_MAX_SEC		60.0	/* a read waits this long at most */

/*
 * The barriers this worker sent: one at a time, the newest b_seq.  Per
 * other slot, the newest barrier it answered, when it last said it was
 * storing for b_seq, and whether it missed a barrier's time limit (no
 * worker, or one that does not know barriers): such a slot is not
 * waited for until it answers again.
 */
static uint32_t		 b_seq;
static double		 b_sent_at;
static struct barrier_slot {
	uint32_t	 answered;
	double		 storing_at;
	int		 dead;
}			*slots;
static int		 nslots;

/*
 * The cluster's part of barrier b_seq: how many workers heard it (-1:
 * not known yet) and answered, the last "storing" from one of them;
 * lagging: one missed a time limit.
 */
static long		 c_heard, c_answered;
static double		 c_storing_at;
static int		 c_lagging;

/* Reads waiting for a barrier: seq 0 until one is sent after since. */
static struct barrier_wait {
	struct chat_call *k;
	uint32_t	 seq;
	double		 since;
}			*bw;
static size_t		 bw_n, bw_cap;

/* Barriers other workers sent here, waiting for rows to be stored. */
static struct barrier_ask {
	char		*to;		/* over the bus: the asker; else */
	int		 slot;		/* the asking slot of this node */
	uint32_t	 seq;
	uint64_t	 upto;		/* chat_history_kept() at the ask */
}			*ask;
static size_t		 ask_n, ask_cap;

static void
barrier_send(int slot, uint32_t type, uint32_t seq)
{
	struct chan_hdr	 h;

	memset(&h, 0, sizeof(h));
	h.type = type;
	h.conn = seq;
	h.from_slot = chat.slot;
	/* -1: the slot's queue is full; the barrier's time limit covers it */
	(void)chat.to_slot(slot, &h, "");
}

/* Whether slot i answered barrier seq (serial numbers: they wrap). */
static int
slot_answered(int i, uint32_t seq)
{
	return i == chat.slot || slots[i].dead ||
	    (int32_t)(slots[i].answered - seq) >= 0;
}

/* Whether every worker of the cluster that heard b_seq answered it. */
static int
cluster_answered(void)
{
	return c_heard >= 0 && c_answered >= c_heard;
}

/* Whether a worker last heard from at heard has had its time. */
static int
timed_out(double heard, double now)
{
	if (heard < b_sent_at)
		heard = b_sent_at;
	return now - heard >= BARRIER_SILENCE_SEC ||
	    now - b_sent_at >= BARRIER_MAX_SEC;
}

/* Whether every other worker answered barrier seq (or time is up). */
static int
barrier_done(uint32_t seq)
{
	double	 now;
	int	 i, late = 0;

	if (seq != b_seq)
		return 1;	/* older: done before the next was sent */
	now = util_mono();
	for (i = 0; i < nslots; i++) {
		if (slot_answered(i, seq))
			continue;
		if (!timed_out(slots[i].storing_at, now)) {
			late++;
			continue;
		}
		log_notice("history: worker %d did not store its history "
		    "within %.0f s of a read's request; reads no longer wait "
		    "for it until it answers", i, now - b_sent_at);
		slots[i].dead = 1;
	}
	if (c_lagging || cluster_answered())
		return late == 0;
	if (!timed_out(c_storing_at, now))
		return 0;
	if (c_heard < 0)
		log_notice("history: Redis did not say within %.0f s how many "
		    "workers heard a read's request; reads no longer wait for "
		    "other nodes until a request is answered in full",
		    now - b_sent_at);
	else
		log_notice("history: %ld of the %ld workers of the cluster "
		    "that heard a read's request did not answer within %.0f "
		    "s; reads no longer wait for other nodes until a request "
		    "is answered in full", c_heard - c_answered, c_heard,
		    now - b_sent_at);
	c_lagging = 1;
	return late == 0;
}

/*
 * The barrier a read that came at since waits for: the newest, when it
 * was sent after since; else a new one, unless one is under way (the
 * reads that wait share the next): 0.
 */
static uint32_t
barrier_for(double since)
{
	int	 i;

	if (b_seq != 0 && b_sent_at >= since)
		return b_seq;
	if (b_seq != 0 && !barrier_done(b_seq))
		return 0;
	if (++b_seq == 0)
		b_seq++;		/* 0 means none */
	b_sent_at = util_mono();
	for (i = 0; i < nslots; i++)
		if (i != chat.slot)
			barrier_send(i, CHAN_HIST_FLUSH, b_seq);
	c_answered = 0;
	c_heard = chat.pubsub == NULL ||
	    pubsub_hist_ask(chat.pubsub, b_seq) == -1 ? 0 : -1;
	return b_seq;
}

int
chat_barrier_hold(struct chat_call *k)
{
	double	 now = util_mono();

	if (slots == NULL) {
		if ((slots = calloc(online_nslots(chat.online),
		    sizeof(*slots))) == NULL)
			return -1;
		nslots = online_nslots(chat.online);
	}
	if ((nslots < 2 && chat.pubsub == NULL) ||
	    chat.cfg->history_days == 0 ||
	    util_grow((void **)&bw, &bw_cap, bw_n, sizeof(*bw)) == -1)
		return -1;
	bw[bw_n].k = k;
	bw[bw_n].since = now;
	bw[bw_n].seq = barrier_for(now);
	bw_n++;
	return 0;
}

void
chat_barrier_due(void)
{
	struct barrier_wait	 w;
	size_t			 i, k, n = bw_n;

	if (n == 0)
		return;
	for (i = k = 0; i < n; i++) {
		w = bw[i];
		if (w.seq == 0)
			w.seq = barrier_for(w.since);
		if (w.seq == 0 || !barrier_done(w.seq)) {
			bw[k++] = w;
			continue;
		}
		/* then this worker's own rows, as for a read on one worker */
		if (chat_history_hold(w.k) == -1)
			chat_call_go(w.k);
	}
	/*
	 * reads queued meanwhile: a call that goes may end at once and
	 * resume its connection, whose next HISTORY lands after bw[n)
	 */
	memmove(bw + k, bw + n, (bw_n - n) * sizeof(*bw));
	bw_n = k + (bw_n - n);
}

static void
barrier_answered(int slot, uint32_t seq)
{
	if (slot < 0 || slot >= nslots || slot == chat.slot)
		return;
	if ((int32_t)(seq - slots[slot].answered) > 0)
		slots[slot].answered = seq;
	slots[slot].dead = 0;
}

static void
ask_answer(const struct barrier_ask *a, enum pubsub_hist_state state)
{
	if (a->to != NULL)
		pubsub_hist_answer(chat.pubsub, a->to, state);
	else
		barrier_send(a->slot, state == PUBSUB_HIST_STORED ?
		    CHAN_HIST_FLUSHED : CHAN_HIST_STORING, a->seq);
	if (state == PUBSUB_HIST_STORED)
		free(a->to);
}

/* A worker asks: answer once what was kept so far is stored. */
static void
barrier_ask(struct barrier_ask a)
{
	a.upto = chat_history_kept();
	/* a thread that cannot be boosted is not waited for (histprio.h) */
	if (chat_history_written() >= a.upto || histprio_stuck() ||
	    util_grow((void **)&ask, &ask_cap, ask_n, sizeof(*ask)) == -1) {
		ask_answer(&a, PUBSUB_HIST_STORED);
		return;
	}
	ask[ask_n++] = a;
	chat_history_flush();		/* what memory holds leaves now */
	chat_history_boost();
}

void
chat_barrier_stored(uint64_t written)
{
	size_t	 i, k;

	for (i = k = 0; i < ask_n; i++) {
		if (ask[i].upto <= written)
			ask_answer(&ask[i], PUBSUB_HIST_STORED);
		else
			ask[k++] = ask[i];
	}
	ask_n = k;
}

/*
 * Each second: tell the askers still waiting that their rows are being
 * stored.  From a live loop whose history thread can be boosted, that
 * is so even while one slow transaction holds them all; silence means
 * a worker that is gone, stalled, or does not know barriers.
 */
void
chat_barrier_tick(void)
{
	size_t	 i;

	for (i = 0; i < ask_n; i++)
		ask_answer(&ask[i], PUBSUB_HIST_STORING);
}

int
chat_barrier_asked(void)
{
	return ask_n > 0;
}

void
chat_barrier_msg(const struct chan_hdr *h)
{
	struct barrier_ask	 a;

	if (h->type == CHAN_HIST_FLUSH) {
		memset(&a, 0, sizeof(a));
		a.slot = (int)h->from_slot;
		a.seq = h->conn;
		barrier_ask(a);
	} else if (h->type == CHAN_HIST_STORING) {
		if (h->conn == b_seq && h->from_slot < (uint32_t)nslots)
			slots[h->from_slot].storing_at = util_mono();
	} else
		barrier_answered((int)h->from_slot, h->conn);
}

void
chat_hist_asked(void *arg, const char *to)
{
	struct barrier_ask	 a;

	memset(&a, 0, sizeof(a));
	if ((a.to = strdup(to)) != NULL)
		barrier_ask(a);
}

void
chat_hist_heard(void *arg, uint32_t seq, long workers)
{
	if (seq != b_seq)
		return;
	c_heard = workers < 0 ? 0 : workers;
	if (cluster_answered())
		c_lagging = 0;
}

void
chat_hist_answered(void *arg, uint32_t seq, enum pubsub_hist_state state)
{
	if (seq != b_seq)
		return;
	if (state == PUBSUB_HIST_STORING) {
		c_storing_at = util_mono();
		return;
	}
	c_answered++;
	if (cluster_answered())
		c_lagging = 0;
}
