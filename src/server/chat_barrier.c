/*
 * chat_barrier.c - a history barrier across this node's workers, so
 * that a RESUME (chat_resume.c) reads a history that holds every chat
 * its old connection got.
 *
 * A chat is kept in the history by the worker that accepted it, which
 * is often not the resuming one.  The resume waits for its own worker's
 * rows (chat_history_hold); another worker's rows may wait in its
 * memory and spool far longer than the 2 s settle time: behind a
 * backlog at SCHED_IDLE on a busy node, while history_defer holds them,
 * or while its store is slow.  So before the fetch the resume's worker
 * sends CHAN_HIST_FLUSH to every other worker of the node; each answers
 * CHAN_HIST_FLUSHED once the rows it had kept when the request came are
 * stored (its history thread boosted meanwhile), and the fetch waits for
 * every answer, BARRIER_MAX_SEC at most (a worker being respawned
 * answers late or never; logged).  Rows kept on other nodes are still
 * covered by the settle time only.
 *
 * Barriers are shared: a resume joins the newest barrier sent after its
 * login (what its old connection got was kept before that), and a new
 * one goes out at most every BARRIER_GAP_SEC, so a reconnect storm
 * costs a few datagrams a second, not a few per resume.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "channel.h"
#include "chat_impl.h"
#include "log.h"
#include "online.h"
#include "util.h"

#define BARRIER_MAX_SEC	10.0	/* a resume waits this long for the others */
#define BARRIER_GAP_SEC	0.25	/* between two barriers, at least */
#define BARRIER_RING	64	/* barriers remembered (16 s of them) */

/* Barriers this worker sent, the newest at bar[b_seq % BARRIER_RING]. */
static struct barrier {
	uint32_t	 seq;
	int		 left;		/* answers still due */
	double		 sent_at;
	int		 warned;
}			 bar[BARRIER_RING];
static uint32_t		 b_seq;

/* Barriers other workers sent here, waiting for rows to be stored. */
static struct barrier_ask {
	int		 slot;
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

uint32_t
chat_barrier_for(double login_at)
{
	struct barrier	*b = &bar[b_seq % BARRIER_RING];
	double		 now = util_mono_coarse();
	int		 i, n;

	if (b_seq != 0 && b->sent_at >= login_at)
		return b_seq;
	if (b_seq != 0 && now - b->sent_at < BARRIER_GAP_SEC)
		return 0;		/* the next one, in a moment */
	b = &bar[++b_seq % BARRIER_RING];
	if (b_seq == 0)			/* 0 means none: skip it */
		b = &bar[++b_seq % BARRIER_RING];
	memset(b, 0, sizeof(*b));
	b->seq = b_seq;
	b->sent_at = now;
	n = online_nslots(chat.online);
	for (i = 0; i < n; i++)
		if (i != chat.slot) {
			barrier_send(i, CHAN_HIST_FLUSH, b_seq);
			b->left++;
		}
	return b_seq;
}

int
chat_barrier_done(uint32_t seq)
{
	struct barrier	*b = &bar[seq % BARRIER_RING];

	if (b->seq != seq || b->left <= 0)
		return 1;		/* answered, or long gone */
	if (util_mono_coarse() - b->sent_at < BARRIER_MAX_SEC)
		return 0;
	if (!b->warned)
		log_notice("resume: %d worker(s) did not store their history "
		    "within %.0f s; answered from what is stored",
		    b->left, BARRIER_MAX_SEC);
	b->warned = 1;
	return 1;
}

static void
barrier_answered(uint32_t seq)
{
	struct barrier	*b = &bar[seq % BARRIER_RING];

	if (b->seq == seq && b->left > 0)
		b->left--;
}

/* Another worker asks: answer once what was kept so far is stored. */
static void
barrier_ask(int slot, uint32_t seq)
{
	uint64_t	 upto = chat_history_kept();

	if (chat_history_written() >= upto ||
	    util_grow((void **)&ask, &ask_cap, ask_n, sizeof(*ask)) == -1) {
		barrier_send(slot, CHAN_HIST_FLUSHED, seq);
		return;
	}
	ask[ask_n].slot = slot;
	ask[ask_n].seq = seq;
	ask[ask_n].upto = upto;
	ask_n++;
	chat_history_flush();		/* what memory holds leaves now */
	chat_history_boost();
}

void
chat_barrier_stored(uint64_t written)
{
	size_t	 i, k;

	for (i = k = 0; i < ask_n; i++) {
		if (ask[i].upto <= written)
			barrier_send(ask[i].slot, CHAN_HIST_FLUSHED,
			    ask[i].seq);
		else
			ask[k++] = ask[i];
	}
	ask_n = k;
}

int
chat_barrier_asked(void)
{
	return ask_n > 0;
}

void
chat_barrier_msg(const struct chan_hdr *h)
{
	if (h->type == CHAN_HIST_FLUSH)
		barrier_ask((int)h->from_slot, h->conn);
	else
		barrier_answered(h->conn);
}
