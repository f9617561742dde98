/*
 * chat_history.c - conversation history (history_days, chatd-protocol(7)
 * HISTORY).  Every chat this worker accepts is kept once per
 * conversation (a group message once, not per member), keyed by its
 * smid.  Rows wait in memory and reach the store in batches, the first
 * HIST_FLUSH_SEC after the first row (a second when the worker is
 * idle), or at HIST_QUEUE_MAX rows: live delivery pays a copy, not a
 * commit (one per chat cut one-to-one throughput five-fold).  A crash
 * loses at most what is held, never a delivery (back-pressure below).
 * Slot 0 prunes what is older than history_days.
 *
 * Every history write (batches, prune, a dissolved group's removal,
 * account deletion) runs in the worker's history thread, at SCHED_IDLE
 * (histprio.h): history takes only CPU that live delivery leaves.
 * Whoever waits for it boosts it (chat_history_boost): a HISTORY or RESUME
 * read waiting for this worker's rows, an account deletion, senders
 * held by back-pressure.
 */
#include "config.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "chat_impl.h"
#include "histprio.h"
#include "log.h"
#include "store.h"
#include "storeq.h"
#include "util.h"

#define HIST_QUEUE_MAX	4096	/* rows that make a batch due at once */
#define HIST_FLUSH_SEC	0.25	/* the first row waits this long at most */
#define HIST_BATCH_MIN	8	/* rows per store transaction, adapted */
#define HIST_BATCH_START 16	/* between these to its time: */
#define HIST_BATCH_MAX	16384
#define HIST_BATCH_FAST	0.05	/* seconds: a batch this quick doubles */
#define HIST_BATCH_SLOW	0.2	/* one this slow halves */
#define HIST_HELD_ROWS	65536	/* rows held before senders are held */
#define HIST_HELD_BYTES	(16u << 20)	/* and the texts' bytes */
#define HIST_RATE	5.0	/* HISTORY requests per second, sustained */
#define HIST_BURST	20.0	/* and at once */
#define PRUNE_INTERVAL	3600.0	/* seconds between two prunes */
#define PRUNE_ROWS	10000	/* rows per prune statement */
#define PRUNE_ROUNDS	10	/* prune statements per round, at most */

/*
 * Rows waiting for the write thread, hq[hq_off .. hq_n); their texts
 * one after another in hq_text from hq_toff (no allocation per chat):
 * each row's text pointer is set when its batch leaves (history_take),
 * the buffer may move till then.
 *
 * Back-pressure.  The batches go to the history thread one at a time,
 * of hb_rows rows, a number that follows the batches' times (without
 * a history thread they share the write thread with what a sender
 * waits for, and run only when none of that waits: storeq_submit_idle,
 * so a slow store or History table holds the others up one short batch
 * at most).  Rows that
 * arrive meanwhile wait here and leave in the next batches.  When more
 * than HIST_HELD_ROWS rows (or HIST_HELD_BYTES) wait for the store,
 * the chats that would add to them are held instead: their senders'
 * connections pause before the chat is handled (chat_history_park)
 * and go on in order once the store has caught up to three quarters.
 * Nothing is dropped: a sender waits, every chat stays kept.
 */
static struct store_hist	*hq;
static size_t			 hq_off, hq_n, hq_cap;
static char			*hq_text;
static size_t			 hq_toff, hq_tlen, hq_tcap;
static double			 hq_since;	/* when the oldest was queued */
static size_t			 hb_rows = HIST_BATCH_START;
static size_t			 hb_busy;	/* batches in the write thread */
static double			 prune_at;	/* 0: at the first tick */

/*
 * Rows kept and rows written (or failed) so far, and the texts' bytes
 * of those in between.  Reads that wait for the rows kept before them
 * (HISTORY, RESUME see what this worker accepted) wait for a count of
 * written rows; the batches complete in order, so the waits are
 * released in order too.
 */
static uint64_t			 hr_kept, hr_written;
static uint64_t			 hr_out;	/* left memory (kept - held) */
static size_t			 hr_bytes;
static struct hist_wait {
	struct chat_call	*k;
	uint64_t		 upto;
}				*hw;
static size_t			 hw_n, hw_cap;

/* Chats held while the store catches up, in arrival order. */
static struct hist_park {
	struct conn		*c;
	int32_t			 uid;
	struct proto_req	 req;
}				*hp;
static size_t			 hp_n, hp_cap;
static int			 hk_n;	/* CALL_HISTWRITE calls under way */

static void	history_next(int all);

struct storeq *
chat_history_q(void)
{
	return chat.storeq_hist != NULL ? chat.storeq_hist : chat.storeq;
}

/* A job for the history thread (or the write thread's idle turn). */
static void
history_submit(struct workq_job *sj)
{
	if (chat.storeq_hist != NULL)
		storeq_submit(chat.storeq_hist, sj);
	else
		storeq_submit_idle(chat.storeq, sj);
}

/*
 * The history thread runs at normal priority while anyone waits for it.
 * When it cannot be boosted any more, reads stop waiting for this
 * worker's rows: they answer from what is stored, as for other
 * workers' rows, rather than wait as long as the load lasts.
 */
int
chat_history_awaited(void)
{
	return hw_n > 0 || hp_n > 0 || hk_n > 0 || chat_barrier_asked();
}

void
chat_history_boost(void)
{
	int	 on = chat_history_awaited();
	size_t	 i, n;

	histprio_boost(on);
	if (on)
		chat_histspool_kick();	/* a deferred take goes now */
	if (!histprio_stuck() || hw_n == 0)
		return;
	n = hw_n;
	hw_n = 0;
	for (i = 0; i < n; i++)
		chat_call_go(hw[i].k);
}

uint64_t
chat_history_kept(void)
{
	return hr_kept;
}

uint64_t
chat_history_written(void)
{
	return hr_written;
}

void
chat_history_calls(int delta)
{
	hk_n += delta;
	chat_history_boost();
}

/*
 * One spare pair of batch buffers: a batch's buffers come back here once
 * it is in the spool or the store, and the next batch fills them.  A
 * fresh pair grew by doubling (each step a copy), and a large one was
 * mapped, faulted in and unmapped again per batch: a third of what a
 * busy worker's history cost it while deferred (BENCHMARKS.md).
 */
static struct store_hist	*spare_rows;
static char			*spare_text;

void
chat_history_recycle(struct store_hist *rows, char *text)
{
	if (spare_rows == NULL) {
		spare_rows = rows;
		rows = NULL;
	}
	if (spare_text == NULL) {
		spare_text = text;
		text = NULL;
	}
	free(rows);
	free(text);
}

void
chat_history_keep(int32_t sender, const struct proto_req *req,
    const struct buf *line, int64_t created)
{
	struct store_hist	*h, *nv;
	char			*nt;
	size_t			 len, ncap;

	if (chat.cfg->history_days == 0 || req->smid <= 0)
		return;
	len = buf_used(line);
	if (len > 0 && buf_head(line)[len - 1] == '\n')
		len--;
	if (hq == NULL && spare_rows != NULL) {
		hq = spare_rows;
		hq_cap = malloc_usable_size(hq) / sizeof(*hq);
		spare_rows = NULL;
	}
	if (hq_text == NULL && spare_text != NULL) {
		hq_text = spare_text;
		hq_tcap = malloc_usable_size(hq_text);
		spare_text = NULL;
	}
	if (hq_n == hq_cap) {
		ncap = hq_cap ? hq_cap * 2 : 64;
		if ((nv = reallocarray(hq, ncap, sizeof(*nv))) == NULL)
			goto nomem;
		hq = nv;
		hq_cap = ncap;
	}
	if (len > hq_tcap - hq_tlen) {
		for (ncap = hq_tcap ? hq_tcap : 16384; ncap - hq_tlen < len;
		    ncap *= 2)
			;
		if ((nt = realloc(hq_text, ncap)) == NULL)
			goto nomem;
		hq_text = nt;
		hq_tcap = ncap;
	}
	memcpy(hq_text + hq_tlen, buf_head(line), len);
	hq_tlen += len;
	if (hq_n == hq_off)
		hq_since = util_mono_coarse();
	h = &hq[hq_n++];
	h->smid = req->smid;
	h->sender = sender;
	h->peer = req->msgid == MSG_ONE_CHAT ? req->toid : 0;
	h->gid = req->msgid == MSG_GROUP_CHAT ? req->groupid : 0;
	h->created = created;
	h->text = NULL;		/* set by history_take */
	h->len = len;
	hr_kept++;
	hr_bytes += len;
	if (hq_n - hq_off >= HIST_QUEUE_MAX)
		history_next(0);
	return;
 nomem:
	log_warnx("history: out of memory, message %lld not kept",
	    (long long)req->smid);
}

void
chat_history_flush_due(void)
{
	chat_barrier_due();
	if (hq_n > hq_off && util_mono_coarse() - hq_since >= HIST_FLUSH_SEC)
		history_next(0);
}

static int
history_full(void)
{
	return hr_kept - hr_out >= HIST_HELD_ROWS ||
	    hr_bytes >= HIST_HELD_BYTES || chat_histspool_full(1, hr_bytes);
}

/* The store caught up enough: the chats held go on, in order. */
static void
history_unpark(void)
{
	struct hist_park	*v = hp;
	struct conn		*c;
	size_t			 i, n = hp_n;

	if (hp_n == 0 || hr_kept - hr_out > HIST_HELD_ROWS / 4 * 3 ||
	    hr_bytes > HIST_HELD_BYTES / 4 * 3 ||
	    chat_histspool_full(0, hr_bytes))
		return;
	/* a chat handled below may be held again: a list of its own */
	hp = NULL;
	hp_n = hp_cap = 0;
	for (i = 0; i < n; i++) {
		c = v[i].c;
		conn_unref(c);
		if (c->closing) {
			proto_req_clear(&v[i].req);
			continue;
		}
		c->paused = 0;
		if (c->sess == NULL || c->sess->uid != v[i].uid)
			chat_error(c, MSG_ERROR, ERR_NOT_LOGGED_IN,
			    v[i].req.msgid, "logged out meanwhile");
		else if (v[i].req.has_cmid)
			handle_acked_chat(c, &v[i].req);
		else
			handle_plain_chat(c, &v[i].req);
		proto_req_clear(&v[i].req);
		/* nothing paused it again: its next requests, then reading */
		if (!c->closing && !c->paused) {
			c->paused = 1;
			conn_resume(c);
		}
	}
	free(v);
	chat_history_boost();
}

int
chat_history_park(struct conn *c, struct proto_req *req)
{
	struct hist_park	*nv;
	size_t			 ncap;

	if (chat_history_q() == NULL || !history_full())
		return -1;
	if (hp_n == hp_cap) {
		ncap = hp_cap ? hp_cap * 2 : 16;
		/* no memory: this one is kept past the bound */
		if ((nv = reallocarray(hp, ncap, sizeof(*nv))) == NULL)
			return -1;
		hp = nv;
		hp_cap = ncap;
	}
	if (hp_n == 0)
		log_notice("history: %llu messages wait for the store: "
		    "senders wait", (unsigned long long)(hr_kept - hr_written));
	hp[hp_n].c = c;
	hp[hp_n].uid = c->sess->uid;
	hp[hp_n].req = *req;
	memset(req, 0, sizeof(*req));	/* the caller's clear frees nothing */
	hp_n++;
	c->jobs++;
	conn_pause(c);
	chat_history_boost();
	return 0;
}

void
chat_history_out(size_t n, size_t bytes)
{
	hr_out += n;
	hr_bytes -= bytes;
	history_unpark();
}

void
chat_history_stored(size_t n)
{
	size_t	 i, k;

	hr_written += n;
	history_unpark();
	for (i = 0; i < hw_n && hw[i].upto <= hr_written; i++)
		chat_call_go(hw[i].k);
	for (k = 0; i < hw_n; )
		hw[k++] = hw[i++];
	hw_n = k;
	chat_barrier_stored(hr_written);
	chat_history_boost();
}

void
chat_history_settle(void)
{
	if (hr_written < hr_out)
		chat_history_stored(hr_out - hr_written);
}

/* n more rows written (or failed) from memory. */
static void
history_written(size_t n, size_t bytes)
{
	chat_history_out(n, bytes);
	chat_history_stored(n);
}

int
chat_history_hold(struct chat_call *k)
{
	struct hist_wait	*nv;
	size_t			 ncap;

	chat_history_flush();
	if (hr_written == hr_kept || histprio_stuck())
		return -1;
	if (hw_n == hw_cap) {
		ncap = hw_cap ? hw_cap * 2 : 16;
		/* no memory: read now, without the newest rows */
		if ((nv = reallocarray(hw, ncap, sizeof(*nv))) == NULL)
			return -1;
		hw = nv;
		hw_cap = ncap;
	}
	hw[hw_n].k = k;
	hw[hw_n].upto = hr_kept;
	hw_n++;
	chat_history_boost();
	return 0;
}

/* A batch of history rows written by a store thread (storeq.h). */
struct hist_job {
	struct workq_job	 sj;
	struct store_hist	*rows;
	size_t			 n, bytes;
	char			*text;		/* the rows' texts */
	char			*err;		/* the store's error, or NULL */
	double			 secs;		/* the store call's time */
};

/*
 * The first n rows held leave (at most the rest), their texts pointed
 * at, in memory of their own that the caller frees (*rows and *text);
 * -1: no memory (nothing left).
 */
static int
history_take(size_t n, struct store_hist **rows, char **text,
    size_t *nrows, size_t *bytes)
{
	size_t	 i, off = 0;

	if (n > hq_n - hq_off)
		n = hq_n - hq_off;
	for (i = 0; i < n; i++)
		off += hq[hq_off + i].len;
	if (hq_off == 0 && n == hq_n) {
		/* all of it: the buffers themselves */
		*rows = hq;
		*text = hq_text;
		hq = NULL;
		hq_text = NULL;
		hq_n = hq_cap = hq_tlen = hq_tcap = 0;
	} else {
		*rows = reallocarray(NULL, n, sizeof(**rows));
		*text = malloc(off > 0 ? off : 1);
		if (*rows == NULL || *text == NULL) {
			free(*rows);
			free(*text);
			return -1;
		}
		memcpy(*rows, hq + hq_off, n * sizeof(**rows));
		memcpy(*text, hq_text + hq_toff, off);
		hq_off += n;
		hq_toff += off;
		if (hq_off == hq_n)
			hq_off = hq_n = hq_toff = hq_tlen = 0;
		else if (hq_off > hq_n / 2) {
			/* the rest moves down, once per half: linear */
			memmove(hq, hq + hq_off, (hq_n - hq_off) *
			    sizeof(*hq));
			memmove(hq_text, hq_text + hq_toff, hq_tlen - hq_toff);
			hq_n -= hq_off;
			hq_tlen -= hq_toff;
			hq_off = hq_toff = 0;
		}
	}
	for (i = 0, off = 0; i < n; i++) {
		(*rows)[i].text = *text + off;
		off += (*rows)[i].len;
	}
	*nrows = n;
	*bytes = off;
	return 0;
}

static void
hist_run(struct workq_job *sj, void *ctx)
{
	struct hist_job	*j = (struct hist_job *)sj;
	struct store	*st = ctx;
	double		 t0 = util_mono();

	if (store_history_add(st, j->rows, j->n) != STORE_OK)
		j->err = strdup(store_error(st));
	j->secs = util_mono() - t0;
}

static void
hist_done(struct workq_job *sj)
{
	struct hist_job	*j = (struct hist_job *)sj;

	if (j->err != NULL)
		log_warnx("history: %zu messages not kept: %s", j->n, j->err);
	/* the next batch's size: a full one's time tells */
	if (j->secs < HIST_BATCH_FAST && j->n == hb_rows &&
	    hb_rows < HIST_BATCH_MAX)
		hb_rows *= 2;
	else if (j->secs > HIST_BATCH_SLOW && hb_rows > HIST_BATCH_MIN)
		hb_rows /= 2;
	hb_busy--;
	history_written(j->n, j->bytes);
	chat_history_recycle(j->rows, j->text);
	free(j->err);
	free(j);
	/* rows that came meanwhile: the next batch when full or due */
	if (hb_busy == 0 && hq_n - hq_off >= hb_rows)
		history_next(0);
	else if (hb_busy == 0)
		chat_history_flush_due();
	history_unpark();
}

/*
 * Rows held go to the store in batches: in the write thread, behind
 * every other job (see above), when there is one; else written here.
 * all: every row now (a read waits, a removal or the exit follows),
 * else the next batch only when none is under way.
 */
static void
history_next(int all)
{
	struct hist_job		*j;
	struct store_hist	*rows;
	char			*text;
	size_t			 n, bytes;

	/* with a spool: everything held, in one append */
	if (hq_n > hq_off && chat_histspool_on()) {
		if (history_take(hq_n - hq_off, &rows, &text, &n,
		    &bytes) == -1)
			return;		/* the next flush */
		if (chat_histspool_append(rows, text, n, bytes) == 0)
			return;
		chat_history_direct(rows, text, n, bytes);
		return;
	}
	while (hq_n > hq_off && chat_history_q() != NULL &&
	    (all || hb_busy == 0)) {
		if ((j = calloc(1, sizeof(*j))) == NULL ||
		    history_take(hb_rows, &j->rows, &j->text, &j->n,
		    &j->bytes) == -1) {
			free(j);
			return;		/* the next flush */
		}
		j->sj.run = hist_run;
		j->sj.done = hist_done;
		hb_busy++;
		history_submit(&j->sj);
	}
	if (hq_n == hq_off || chat_history_q() != NULL)
		return;
	/* no store thread (a tool, the exit): here, all of it */
	if (history_take(hq_n - hq_off, &rows, &text, &n, &bytes) == -1) {
		log_warnx("history: out of memory, %zu messages not kept",
		    hq_n - hq_off);
		return;
	}
	if (store_history_add(chat.store, rows, n) != STORE_OK)
		log_warnx("history: %zu messages not kept: %s", n,
		    store_error(chat.store));
	history_written(n, bytes);
	free(rows);
	free(text);
}

void
chat_history_flush(void)
{
	history_next(1);
}

void
chat_history_direct(struct store_hist *rows, char *text, size_t n,
    size_t bytes)
{
	struct hist_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		log_warnx("history: out of memory, %zu messages not kept", n);
		history_written(n, bytes);
		free(rows);
		free(text);
		return;
	}
	j->rows = rows;
	j->text = text;
	j->n = n;
	j->bytes = bytes;
	j->sj.run = hist_run;
	j->sj.done = hist_done;
	hb_busy++;
	history_submit(&j->sj);
}

/* A dissolved group's history, removed by a store thread. */
struct forget_job {
	struct workq_job	 sj;
	int32_t			 gid;
	char			*err;
};

static void
forget_run(struct workq_job *sj, void *ctx)
{
	struct forget_job	*j = (struct forget_job *)sj;
	struct store		*st = ctx;

	if (store_history_forget(st, j->gid) != STORE_OK)
		j->err = strdup(store_error(st));
}

static void
forget_done(struct workq_job *sj)
{
	struct forget_job	*j = (struct forget_job *)sj;

	if (j->err != NULL)
		log_warnx("history of dissolved group %d: %s", (int)j->gid,
		    j->err);
	free(j->err);
	free(j);
}

/*
 * gid was dissolved: its history goes, behind the rows this worker
 * holds or queued (they go first, in the same store thread, both
 * behind the jobs senders wait for).  Rows kept
 * later, by any worker, are refused by the store (no such group); a
 * failure leaves them to history_days' prune.
 */
void
chat_history_forget(int32_t gid)
{
	struct forget_job	*j;

	chat_history_flush();
	if (chat_history_q() != NULL && (j = calloc(1, sizeof(*j))) != NULL) {
		j->gid = gid;
		j->sj.run = forget_run;
		j->sj.done = forget_done;
		history_submit(&j->sj);
		return;
	}
	if (store_history_forget(chat.store, gid) != STORE_OK)
		log_warnx("history of dissolved group %d: %s", (int)gid,
		    store_error(chat.store));
}

/*
 * From the worker's heartbeat: slot 0 removes what history_days no
 * longer keeps (everything when it is 0), a bounded amount per round,
 * in the write store thread (a locked store must not stall the loop).
 */
struct prune_job {
	struct workq_job	 sj;
	int64_t			 cutoff;
	int			 days;
	int			 rounds;	/* statements run */
	size_t			 n;		/* the last one's rows */
	size_t			 total;
	char			*err;
};

/* One statement a job: what senders wait for goes between two. */
static void
prune_run(struct workq_job *sj, void *ctx)
{
	struct prune_job	*j = (struct prune_job *)sj;
	struct store		*st = ctx;

	j->rounds++;
	if (store_history_prune(st, j->cutoff, PRUNE_ROWS, &j->n) !=
	    STORE_OK) {
		j->err = strdup(store_error(st));
		return;
	}
	j->total += j->n;
}

static void
prune_done(struct workq_job *sj)
{
	struct prune_job	*j = (struct prune_job *)sj;

	if (j->err == NULL && j->n == PRUNE_ROWS &&
	    j->rounds < PRUNE_ROUNDS && chat_history_q() != NULL) {
		history_submit(&j->sj);
		return;
	}
	if (j->err != NULL)
		log_warnx("history: prune: %s", j->err);
	if (j->total > 0)
		log_info("history: %zu messages older than %d days removed",
		    j->total, j->days);
	free(j->err);
	free(j);
}

void
chat_history_tick(void)
{
	double			 now = util_mono_coarse();
	struct prune_job	*j;

	if (chat.cfg->history_days > 0) {
		chat_histspool_open();
		chat_histspool_kick();	/* a deferral may be over */
	}
	chat_barrier_tick();
	if (chat.slot != 0 || (prune_at != 0 && now < prune_at))
		return;
	prune_at = now + PRUNE_INTERVAL;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return;		/* the next round */
	j->days = chat.cfg->history_days;
	j->cutoff = j->days == 0 ? INT64_MAX : util_wall_ms() -
	    j->days * 86400000LL;
	j->sj.run = prune_run;
	j->sj.done = prune_done;
	if (chat_history_q() != NULL) {
		/* behind the jobs senders wait for */
		history_submit(&j->sj);
		return;
	}
	/* no store thread (a tool) */
	do
		prune_run(&j->sj, chat.store);
	while (j->err == NULL && j->n == PRUNE_ROWS &&
	    j->rounds < PRUNE_ROUNDS);
	prune_done(&j->sj);
}

/* A token bucket per session: -1 when this request is one too many. */
int
chat_history_rate(struct session *s)
{
	double	 now = util_mono_coarse();

	if (s->hist_at == 0)
		s->hist_tokens = HIST_BURST;
	else
		s->hist_tokens += (now - s->hist_at) * HIST_RATE;
	if (s->hist_tokens > HIST_BURST)
		s->hist_tokens = HIST_BURST;
	s->hist_at = now;
	if (s->hist_tokens < 1)
		return -1;
	s->hist_tokens -= 1;
	return 0;
}

/* A HISTORY request's fetch, in the read store thread. */
struct hist_call {
	struct chat_call	 k;
	int32_t			 toid, gid;
	int64_t			 before;
	size_t			 limit;
	int			 kept;		/* history_days > 0 */
	struct store_msg_list	 l;
};

static void
hist_call_run(struct chat_call *k, struct store *st)
{
	struct hist_call	*h = (struct hist_call *)k;
	struct store_user_list	 m = { NULL, 0 };
	size_t			 i;
	int			 rc;

	/* a member only: no such group, not a member are answered */
	if (h->gid != 0) {
		if ((rc = store_group_members(st, h->gid, &m)) ==
		    STORE_NOTFOUND) {
			k->code = ERR_NO_SUCH_GROUP;
			return;
		}
		if (rc != STORE_OK) {
			chat_call_fail(k, st, ERR_UNAVAILABLE, "history");
			return;
		}
		for (i = 0; i < m.n && m.v[i].id != k->uid; i++)
			;
		rc = i == m.n ? STORE_NOT_MEMBER : STORE_MEMBER;
		store_user_list_free(&m);
		if (rc == STORE_NOT_MEMBER) {
			k->code = ERR_NOT_MEMBER;
			k->text = "only members may post to a group";
			return;
		}
	}
	if (h->kept && store_history_fetch(st, k->uid,
	    h->toid, h->gid, h->before, h->limit + 1, &h->l) != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "history");
}

struct proto_str *
chat_history_page(const struct store_msg_list *l, size_t limit, size_t *n,
    int *more)
{
	struct proto_str	*v;
	size_t			 i;

	*more = l->n > limit;
	*n = *more ? limit : l->n;
	if ((v = calloc(*n + 1, sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < *n; i++)
		chat_str_set(&v[i], l->v[i].text, l->v[i].len);
	return v;
}

static void
hist_call_answer(struct conn *c, struct chat_call *k)
{
	struct hist_call	*h = (struct hist_call *)k;
	struct proto_str	*v;
	size_t			 n;
	int			 more;

	if (c == NULL || k->code != 0)
		return;
	if ((v = chat_history_page(&h->l, h->limit, &n, &more)) == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, k->refmsgid, NULL);
		return;
	}
	if (proto_put_history(&c->out, h->toid, h->gid, v, n, more) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
	free(v);
}

static void
hist_call_release(struct chat_call *k)
{
	struct hist_call	*h = (struct hist_call *)k;

	store_msg_list_free(&h->l);
	free(h);
}

/*
 * HISTORY: read in the read store thread once the rows this worker
 * holds are written (c waits; its next requests after it).
 */
void
handle_history(struct conn *c, struct proto_req *req)
{
	struct hist_call	*h;

	if (chat_history_rate(c->sess) == -1) {
		chat_error(c, MSG_ERROR, ERR_RATE, req->msgid,
		    "history requests too fast");
		return;
	}
	if ((h = (struct hist_call *)chat_call_new(c, req->msgid, sizeof(*h),
	    hist_call_run, hist_call_answer, hist_call_release)) == NULL)
		return;
	h->toid = req->toid;
	h->gid = req->groupid;
	h->before = req->before;
	h->limit = (size_t)req->limit;
	h->kept = chat.cfg->history_days > 0;
	chat_call_submit(c, &h->k, req, CALL_HISTORY, 1);
}
