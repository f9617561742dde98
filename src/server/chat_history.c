/*
 * chat_history.c - conversation history (history_days, chatd-protocol(7)
 * HISTORY).  Every chat this worker accepts is kept once per
 * conversation (a group message once, not per member), keyed by its
 * smid.  Rows wait in memory and reach the store in one transaction
 * HIST_FLUSH_SEC after the first of them (a second when the worker is
 * idle), or at HIST_QUEUE_MAX rows: live delivery pays a copy, not a
 * commit (one per chat cut one-to-one throughput five-fold).  A crash
 * loses at most that much history, never a delivery.  Slot 0 prunes
 * what is older than history_days.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "chat_impl.h"
#include "log.h"
#include "store.h"
#include "storeq.h"
#include "util.h"

#define HIST_QUEUE_MAX	4096	/* rows held before a flush is forced */
#define HIST_FLUSH_SEC	0.25	/* the first row waits this long at most */
#define HIST_RATE	5.0	/* HISTORY requests per second, sustained */
#define HIST_BURST	20.0	/* and at once */
#define PRUNE_INTERVAL	3600.0	/* seconds between two prunes */
#define PRUNE_ROWS	10000	/* rows per prune statement */
#define PRUNE_ROUNDS	10	/* prune statements per round, at most */

/*
 * Rows waiting for the next flush; their texts one after another in
 * hq_text (no allocation per chat): each row's text pointer is set
 * when the batch leaves (history_take), the buffer may move till then.
 */
static struct store_hist	*hq;
static size_t			 hq_n, hq_cap;
static char			*hq_text;
static size_t			 hq_tlen, hq_tcap;
static double			 hq_since;	/* when hq[0] was queued */
static double			 prune_at;	/* 0: at the first tick */

/*
 * Reads that wait for the batches queued before them (HISTORY, RESUME
 * see what this worker accepted): batches queued and written so far,
 * and each waiting read with the count it waits for.  The write thread
 * completes in order, so the waits are released in order too.
 */
static uint64_t			 hb_queued, hb_written;
static struct hist_wait {
	struct chat_call	*k;
	uint64_t		 upto;
}				*hw;
static size_t			 hw_n, hw_cap;

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
	if (hq_n == 0)
		hq_since = util_mono_coarse();
	h = &hq[hq_n++];
	h->smid = req->smid;
	h->sender = sender;
	h->peer = req->msgid == MSG_ONE_CHAT ? req->toid : 0;
	h->gid = req->msgid == MSG_GROUP_CHAT ? req->groupid : 0;
	h->created = created;
	h->text = NULL;		/* set by history_take */
	h->len = len;
	if (hq_n >= HIST_QUEUE_MAX)
		chat_history_flush();
	return;
 nomem:
	log_warnx("history: out of memory, message %lld not kept",
	    (long long)req->smid);
}

void
chat_history_flush_due(void)
{
	if (hq_n > 0 && util_mono_coarse() - hq_since >= HIST_FLUSH_SEC)
		chat_history_flush();
}

/* One more batch written (or failed): the reads behind it go. */
static void
history_written(void)
{
	size_t	 i, k;

	hb_written++;
	for (i = 0; i < hw_n && hw[i].upto <= hb_written; i++)
		chat_call_go(hw[i].k);
	for (k = 0; i < hw_n; )
		hw[k++] = hw[i++];
	hw_n = k;
}

int
chat_history_hold(struct chat_call *k)
{
	struct hist_wait	*nv;
	size_t			 ncap;

	chat_history_flush();
	if (hb_written == hb_queued)
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
	hw[hw_n].upto = hb_queued;
	hw_n++;
	return 0;
}

/* A batch of history rows written by a store thread (storeq.h). */
struct hist_job {
	struct workq_job	 sj;
	struct store_hist	*rows;
	size_t			 n;
	char			*text;		/* the rows' texts */
	char			*err;		/* the store's error, or NULL */
};

/* The rows held leave: their texts pointed at; the caller frees both. */
static void
history_take(struct store_hist **rows, size_t *n, char **text)
{
	size_t	 i, off = 0;

	for (i = 0; i < hq_n; i++) {
		hq[i].text = hq_text + off;
		off += hq[i].len;
	}
	*rows = hq;
	*n = hq_n;
	*text = hq_text;
	hq = NULL;
	hq_text = NULL;
	hq_n = hq_cap = hq_tlen = hq_tcap = 0;
}

static void
hist_run(struct workq_job *sj, void *ctx)
{
	struct hist_job	*j = (struct hist_job *)sj;
	struct store	*st = ctx;

	if (store_history_add(st, j->rows, j->n) != STORE_OK)
		j->err = strdup(store_error(st));
}

static void
hist_done(struct workq_job *sj)
{
	struct hist_job	*j = (struct hist_job *)sj;

	if (j->err != NULL)
		log_warnx("history: %zu messages not kept: %s", j->n, j->err);
	free(j->rows);
	free(j->text);
	free(j->err);
	free(j);
	history_written();
}

/*
 * The rows held go to the store: in a store thread when there is one
 * and the caller does not need them written on return (sync), so that
 * a slow or locked store never holds up live chats.
 */
static void
history_flush(int sync)
{
	struct hist_job		*j;
	struct store_hist	*rows;
	size_t			 n;
	char			*text;

	if (hq_n == 0)
		return;
	if (!sync && chat.storeq != NULL &&
	    (j = calloc(1, sizeof(*j))) != NULL) {
		history_take(&j->rows, &j->n, &j->text);
		j->sj.run = hist_run;
		j->sj.done = hist_done;
		hb_queued++;
		storeq_submit(chat.storeq, &j->sj);
		return;
	}
	history_take(&rows, &n, &text);
	if (store_history_add(chat.store, rows, n) != STORE_OK)
		log_warnx("history: %zu messages not kept: %s", n,
		    store_error(chat.store));
	free(rows);
	free(text);
}

void
chat_history_flush(void)
{
	history_flush(0);
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
 * holds or queued (they go first, in the same store thread).  Rows kept
 * later, by any worker, are refused by the store (no such group); a
 * failure leaves them to history_days' prune.
 */
void
chat_history_forget(int32_t gid)
{
	struct forget_job	*j;

	chat_history_flush();
	if (chat.storeq != NULL && (j = calloc(1, sizeof(*j))) != NULL) {
		j->gid = gid;
		j->sj.run = forget_run;
		j->sj.done = forget_done;
		storeq_submit(chat.storeq, &j->sj);
		return;
	}
	history_flush(1);
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
	size_t			 total;
	char			*err;
};

static void
prune_run(struct workq_job *sj, void *ctx)
{
	struct prune_job	*j = (struct prune_job *)sj;
	struct store		*st = ctx;
	size_t			 n;
	int			 i;

	for (i = 0; i < PRUNE_ROUNDS; i++) {
		if (store_history_prune(st, j->cutoff, PRUNE_ROWS, &n) !=
		    STORE_OK) {
			j->err = strdup(store_error(st));
			return;
		}
		j->total += n;
		if (n < PRUNE_ROWS)
			break;
	}
}

static void
prune_done(struct workq_job *sj)
{
	struct prune_job	*j = (struct prune_job *)sj;

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
	if (chat.storeq != NULL) {
		storeq_submit(chat.storeq, &j->sj);
		return;
	}
	prune_run(&j->sj, chat.store);	/* no store thread (a tool) */
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
