/*
 * store_sqlite_msg.c - SQLite: offline messages, acknowledged chats
 * (smid claims).  Handle, helpers: store_sqlite.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "store.h"
#include "store_impl.h"
#include "util.h"
#include "store_sqlite_impl.h"

/* ---- offline messages ---- */

static int
offline_add_once(struct sq *sq, const int32_t *uids, size_t n,
    const char *msg, size_t len, int64_t smid)
{
	sqlite3_stmt	*s = sq->q[Q_OFFLINE_ADD];
	size_t		 i;
	int		 rc;

	if ((rc = sq_begin(sq)) != STORE_OK)
		return rc;
	/* Text and time stay bound; only the user changes per row. */
	if ((rc = sq_bind_text(s, 2, msg, len)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 3, time(NULL))) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 4, smid)) != SQLITE_OK) {
		rc = sq_fail(sq, s, rc, "store message");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if ((rc = sqlite3_bind_int64(s, 1, uids[i])) != SQLITE_OK) {
			rc = sq_fail(sq, s, rc, "store message");
			goto fail;
		}
		rc = sqlite3_step(s);
		if (rc != SQLITE_DONE) {
			rc = sq_fail(sq, s, rc, "store message");
			if (rc == STORE_NOTFOUND)
				store_set_error(&sq->st, "store message: "
				    "no such user %d", (int)uids[i]);
			goto fail;
		}
		sqlite3_reset(s);
	}
	sq_done(s);
	rc = smid > 0 ? sq_exec_ints(sq, Q_ACK_DONE, STORE_INTS(smid),
	    "acknowledge message") : STORE_OK;
	return sq_end(sq, rc);

 fail:
	sq_done(s);
	return sq_end(sq, rc);
}

int
sqlite_offline_add(struct store *st, const int32_t *uids, size_t n,
    const char *msg, size_t len, int64_t smid)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	if (n == 0 && smid == 0)
		return STORE_OK;
	sq->busy = 0;
	rc = sq_result(sq, offline_add_once(sq, uids, n, msg, len, smid));
	return rc;
}

/* Step s (bound) into out: (id, text) rows.  s is reset either way. */
static int
msg_rows(struct sq *sq, sqlite3_stmt *s, struct store_msg_list *out,
    const char *what)
{
	struct store_msg	*m;
	size_t			 cap = 0;
	int			 rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (util_grow((void **)&out->v, &cap, out->n, sizeof(*m)) == -1)
			goto nomem;
		m = &out->v[out->n];
		m->id = sqlite3_column_int64(s, 0);
		if (sq_col_text(s, 1, &m->text, &m->len) == -1)
			goto nomem;
		out->n++;
	}
	if (rc != SQLITE_DONE) {
		store_msg_list_free(out);
		return sq_fail(sq, s, rc, what);
	}
	sq_done(s);
	return STORE_OK;

 nomem:
	store_msg_list_free(out);
	return sq_nomem(sq, s);
}

static int
offline_fetch_once(struct sq *sq, int32_t uid, size_t max,
    struct store_msg_list *out)
{
	sqlite3_stmt		*s = sq->q[Q_OFFLINE_FETCH];
	sqlite3_int64		 limit;
	int			 rc;

	out->v = NULL;
	out->n = 0;
	/* LIMIT -1 is no limit. */
	limit = (max == 0 || max > INT64_MAX) ? -1 : (sqlite3_int64)max;
	if ((rc = sq_bind_ints(sq, s, STORE_INTS(uid, limit),
	    "fetch messages")) != STORE_OK)
		return rc;
	return msg_rows(sq, s, out, "fetch messages");
}

int
sqlite_offline_fetch(struct store *st, int32_t uid, size_t max,
    struct store_msg_list *out)
{
	SQ_CALL(st, offline_fetch_once(sq, uid, max, out));
}

int
sqlite_offline_delete(struct store *st, int32_t uid, int64_t upto)
{
	SQ_CALL(st, sq_exec_ints(sq, Q_OFFLINE_DELETE, STORE_INTS(uid, upto),
	    "delete messages"));
}

static int
ack_claim_once(struct sq *sq, int32_t sender, int64_t cmid, int64_t *smid,
    int *done)
{
	sqlite3_stmt	*s = sq->q[Q_ACK_GET];
	int		 rc;

	if ((rc = sq_exec_ints(sq, Q_ACK_CLAIM, STORE_INTS(sender, cmid,
	    time(NULL)), "claim message id")) != STORE_OK ||
	    (rc = sq_bind_ints(sq, s, STORE_INTS(sender, cmid),
	    "claim message id")) != STORE_OK)
		return rc;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		if (rc != SQLITE_DONE)
			return sq_fail(sq, s, rc, "claim message id");
		sq_done(s);
		return store_set_error(&sq->st, "claim message id: no row");
	}
	*smid = sqlite3_column_int64(s, 0);
	*done = sqlite3_column_int(s, 1) != 0;
	sq_done(s);
	return STORE_OK;
}

int
sqlite_ack_claim(struct store *st, int32_t sender, int64_t cmid,
    int64_t *smid, int *done)
{
	SQ_CALL(st, ack_claim_once(sq, sender, cmid, smid, done));
}

int
sqlite_offline_remove(struct store *st, int32_t uid, int64_t smid)
{
	SQ_CALL(st, sq_exec_ints(sq, Q_OFFLINE_REMOVE, STORE_INTS(uid, smid),
	    "remove delivered message"));
}

/* ---- history ---- */

/*
 * The HistoryConv rows this handle wrote: a table indexed by a hash of
 * (recipient, conversation), an entry replaced on a collision (it is
 * then written again, which is only a cost).  A busy conversation's row
 * is written about once a minute (SQ_HCONV_SLACK_MS) rather than once a
 * batch: in a one-to-one benchmark, one upsert per pair and batch cost
 * ~0.2 us a row.
 */
#define HCONV_SLOTS	4096	/* a power of two */
struct hconv_seen {
	int32_t		 userid;	/* 0: empty */
	int64_t		 conv;
	int64_t		 last;		/* as this handle last wrote it */
};

void
sq_hconv_free(struct sq *sq)
{
	free(sq->seen);
	sq->seen = NULL;
}

static struct hconv_seen *
hconv_slot(struct sq *sq, int32_t userid, int64_t conv)
{
	uint64_t	 h;

	h = ((uint64_t)conv ^ ((uint64_t)(uint32_t)userid << 17)) *
	    0x9e3779b97f4a7c15ULL;
	return &sq->seen[h >> 52 & (HCONV_SLOTS - 1)];
}

/*
 * The batch's one-to-one conversations into HistoryConv (store_impl.h),
 * those not written lately; *c, *nc: what was written, for hconv_wrote
 * once the transaction commits (free *c).
 */
static int
hconv_add(struct sq *sq, const struct store_hist *v, size_t n,
    struct store_hconv **c, size_t *nc)
{
	struct hconv_seen	*e;
	size_t			 i, k = 0;
	int			 rc = STORE_OK;

	if (sq->seen == NULL &&
	    (sq->seen = calloc(HCONV_SLOTS, sizeof(*sq->seen))) == NULL)
		return sq_nomem(sq, NULL);
	if (store_hist_convs(v, n, c, nc) == -1)
		return sq_nomem(sq, NULL);
	for (i = 0; i < *nc && rc == STORE_OK; i++) {
		e = hconv_slot(sq, (*c)[i].userid, (*c)[i].conv);
		if (e->userid == (*c)[i].userid && e->conv == (*c)[i].conv &&
		    (*c)[i].last - e->last < SQ_HCONV_SLACK_MS)
			continue;
		rc = sq_exec_ints(sq, Q_HCONV_ADD, STORE_INTS((*c)[i].userid,
		    (*c)[i].conv, (*c)[i].last), "keep history");
		(*c)[k++] = (*c)[i];
	}
	*nc = k;
	return rc;
}

/* The rows hconv_add wrote are committed: remember them. */
static void
hconv_wrote(struct sq *sq, const struct store_hconv *c, size_t nc)
{
	struct hconv_seen	*e;
	size_t			 i;

	for (i = 0; i < nc; i++) {
		e = hconv_slot(sq, c[i].userid, c[i].conv);
		if (e->userid == c[i].userid && e->conv == c[i].conv &&
		    e->last >= c[i].last)
			continue;
		e->userid = c[i].userid;
		e->conv = c[i].conv;
		e->last = c[i].last;
	}
}

/*
 * What a batch's rows are checked for, each distinct key once: the
 * sender deleted (USER_GONE), the group dissolved (GROUP_EXISTS), the
 * recipient blocking the sender (IS_BLOCKED; the row is then kept for
 * its sender only, sender negated).  Once per row in the INSERT these
 * cost about 0.4 us a row (BENCHMARKS.md); a batch has a few hundred
 * distinct keys for thousands of rows.
 */
struct hcheck {
	int		 q;		/* Q_USER_GONE, Q_GROUP_EXISTS, Q_IS_BLOCKED */
	int64_t		 a, b;		/* its parameters (b: IS_BLOCKED only) */
	enum sq_exists	 found;
};

static int
hcheck_cmp(const void *x, const void *y)
{
	const struct hcheck	*p = x, *q = y;

	if (p->q != q->q)
		return p->q < q->q ? -1 : 1;
	if (p->a != q->a)
		return p->a < q->a ? -1 : 1;
	return p->b < q->b ? -1 : p->b > q->b;
}

/* Whether key (q, a, b) of the checked set c[0..n) found a row. */
static int
hcheck_found(const struct hcheck *c, size_t n, int q, int64_t a, int64_t b)
{
	const struct hcheck	 key = { q, a, b, SQ_NOROW };
	const struct hcheck	*f;

	f = bsearch(&key, c, n, sizeof(*c), hcheck_cmp);
	return f != NULL && f->found == SQ_ROW;
}

/* The checks of v[0..n), each once, run: *out (free it), *nout. */
static int
hcheck_run(struct sq *sq, const struct store_hist *v, size_t n,
    struct hcheck **out, size_t *nout)
{
	struct hcheck	*c;
	size_t		 i, k = 0, u = 0;

	*out = NULL;
	*nout = 0;
	if ((c = calloc(2 * n + 1, sizeof(*c))) == NULL)
		return sq_nomem(sq, NULL);
	for (i = 0; i < n; i++) {
		c[k++] = (struct hcheck){ Q_USER_GONE, v[i].sender, 0,
		    SQ_NOROW };
		if (v[i].gid != 0)
			c[k++] = (struct hcheck){ Q_GROUP_EXISTS, v[i].gid, 0,
			    SQ_NOROW };
		else if (v[i].peer != 0)
			c[k++] = (struct hcheck){ Q_IS_BLOCKED, v[i].peer,
			    v[i].sender, SQ_NOROW };
	}
	qsort(c, k, sizeof(*c), hcheck_cmp);
	for (i = 0; i < k; i++)
		if (u == 0 || hcheck_cmp(&c[u - 1], &c[i]) != 0)
			c[u++] = c[i];
	for (i = 0; i < u; i++) {
		sqlite3_stmt	*s = sq->q[c[i].q];
		int		 rc;

		if (c[i].q == Q_IS_BLOCKED)
			rc = sq_bind_ints(sq, s, STORE_INTS(c[i].a, c[i].b),
			    "keep history");
		else
			rc = sq_bind_ints(sq, s, STORE_INTS(c[i].a),
			    "keep history");
		if (rc != STORE_OK ||
		    (c[i].found = sq_exists(sq, s, "keep history")) == SQ_ERR) {
			free(c);
			return rc != STORE_OK ? rc : STORE_ERR;
		}
	}
	*out = c;
	*nout = u;
	return STORE_OK;
}

static int
history_add_once(struct sq *sq, const struct store_hist *v, size_t n)
{
	sqlite3_stmt		*s = sq->q[Q_HISTORY_ADD];
	struct hcheck		*c;
	struct store_hconv	*hc = NULL;
	size_t			 i, nc, nhc = 0;
	int64_t			 sender;
	int			 rc;

	if ((rc = sq_begin(sq)) != STORE_OK)
		return rc;
	if ((rc = hcheck_run(sq, v, n, &c, &nc)) != STORE_OK)
		return sq_end(sq, rc);
	for (i = 0; i < n; i++) {
		/* none of a deleted sender, none for a group no longer there */
		if (hcheck_found(c, nc, Q_USER_GONE, v[i].sender, 0) ||
		    (v[i].gid != 0 &&
		    !hcheck_found(c, nc, Q_GROUP_EXISTS, v[i].gid, 0)))
			continue;
		sender = v[i].sender;
		if (v[i].gid == 0 && v[i].peer != 0 &&
		    hcheck_found(c, nc, Q_IS_BLOCKED, v[i].peer, v[i].sender))
			sender = -sender;
		if ((rc = sqlite3_bind_int64(s, 1, v[i].smid)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(s, 2, store_conv(v[i].sender,
		    v[i].peer, v[i].gid))) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(s, 3, sender)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(s, 4, v[i].created)) != SQLITE_OK ||
		    (rc = sq_bind_text(s, 5, v[i].text, v[i].len)) !=
		    SQLITE_OK) {
			rc = sq_fail(sq, s, rc, "keep history");
			goto fail;
		}
		if ((rc = sq_run(sq, s, "keep history")) != STORE_OK)
			goto fail;
	}
	free(c);
	rc = sq_end(sq, hconv_add(sq, v, n, &hc, &nhc));
	if (rc == STORE_OK)
		hconv_wrote(sq, hc, nhc);
	free(hc);
	return rc;

 fail:
	free(c);
	sq_done(s);
	return sq_end(sq, rc);
}

/* History's commits skip the fsync: hist.synchronous (store_sqlite.c). */
int
sqlite_history_add(struct store *st, const struct store_hist *v, size_t n)
{
	SQ_CALL(st, history_add_once(sq, v, n));
}

/* When the message before was kept (ms): 0, or STORE_NOTFOUND. */
static int
history_at(struct sq *sq, int64_t before, int64_t *at)
{
	sqlite3_stmt	*s = sq->q[Q_HISTORY_AT];
	int		 rc;

	if ((rc = sqlite3_bind_int64(s, 1, before)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "read history");
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sq_fail(sq, s, rc, "read history");
	if (rc == SQLITE_ROW)
		*at = sqlite3_column_int64(s, 0);
	sq_done(s);
	return rc == SQLITE_ROW ? STORE_OK : STORE_NOTFOUND;
}

static int
history_fetch_once(struct sq *sq, int32_t uid, int32_t peer, int32_t gid,
    int64_t before, size_t max, struct store_msg_list *out)
{
	sqlite3_stmt	*s = sq->q[gid != 0 ? Q_HISTORY_GROUP : Q_HISTORY_PAIR];
	int64_t		 at = INT64_MAX;
	int		 i = 1, rc;

	out->v = NULL;
	out->n = 0;
	if (before != INT64_MAX && (rc = history_at(sq, before, &at)) !=
	    STORE_OK)
		return rc == STORE_NOTFOUND ? STORE_OK : rc;
	if ((rc = sqlite3_bind_int64(s, i++, store_conv(uid, peer, gid))) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, i++, at)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, i++, at)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, i++, before)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "read history");
	/* a pair's rows kept for their sender only (store_sql.c) */
	if (gid == 0 && (rc = sqlite3_bind_int64(s, i++, uid)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "read history");
	if (gid != 0 &&
	    ((rc = sqlite3_bind_int64(s, i++, gid)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, i++, uid)) != SQLITE_OK))
		return sq_fail(sq, s, rc, "read history");
	if ((rc = sqlite3_bind_int64(s, i++, uid)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, i, max > INT64_MAX ? INT64_MAX :
	    (sqlite3_int64)max)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "read history");
	return msg_rows(sq, s, out, "read history");
}

int
sqlite_history_fetch(struct store *st, int32_t uid, int32_t peer,
    int32_t gid, int64_t before, size_t max, struct store_msg_list *out)
{
	SQ_CALL(st, history_fetch_once(sq, uid, peer, gid, before, max, out));
}

static int
resume_fetch_once(struct sq *sq, int32_t uid, int64_t anchor,
    int64_t window_ms, size_t max, struct store_msg_list *out, int64_t *at)
{
	sqlite3_stmt	*s = sq->q[Q_RESUME];
	int64_t		 lo, lo_smid;
	int		 rc;

	out->v = NULL;
	out->n = 0;
	if ((rc = history_at(sq, anchor, at)) != STORE_OK)
		return rc;
	lo = window_ms < 0 ? *at : *at - window_ms;
	lo_smid = window_ms < 0 ? anchor : 0;
	/* in STORE_SQL_RESUME's order */
	if ((rc = sq_bind_ints(sq, s, STORE_INTS(uid,
	    lo - SQ_HCONV_SLACK_MS, uid, lo, lo,
	    lo_smid, anchor, uid, uid, max > INT64_MAX ? INT64_MAX :
	    (int64_t)max), "resume")) != STORE_OK)
		return rc;
	return msg_rows(sq, s, out, "resume");
}

int
sqlite_resume_fetch(struct store *st, int32_t uid, int64_t anchor,
    int64_t window_ms, size_t max, struct store_msg_list *out, int64_t *at)
{
	SQ_CALL(st, resume_fetch_once(sq, uid, anchor, window_ms, max, out,
	    at));
}

static int
history_prune_once(struct sq *sq, int64_t t, size_t max, size_t *n)
{
	sqlite3_stmt	*s = sq->q[Q_HISTORY_PRUNE];
	int		 rc;

	*n = 0;
	if ((rc = sqlite3_bind_int64(s, 1, t)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, max > INT64_MAX ? INT64_MAX :
	    (sqlite3_int64)max)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "prune history");
	if ((rc = sq_run(sq, s, "prune history")) != STORE_OK)
		return rc;
	*n = (size_t)sqlite3_changes(sq->db);
	/* the last round: conversations with nothing left since t */
	if (*n < max)
		return sq_exec_ints(sq, Q_HCONV_PRUNE, STORE_INTS(t),
		    "prune history");
	return STORE_OK;
}

int
sqlite_history_prune(struct store *st, int64_t t, size_t max, size_t *n)
{
	SQ_CALL(st, history_prune_once(sq, t, max, n));
}

static int
history_forget_once(struct sq *sq, int32_t gid)
{
	sqlite3_stmt	*s = sq->q[Q_HISTORY_FORGET];
	int		 rc;

	if ((rc = sqlite3_bind_int64(s, 1, store_conv(0, 0, gid))) !=
	    SQLITE_OK)
		return sq_fail(sq, s, rc, "forget group history");
	return sq_run(sq, s, "forget group history");
}

int
sqlite_history_forget(struct store *st, int32_t gid)
{
	SQ_CALL(st, history_forget_once(sq, gid));
}

static int
account_purge_once(struct sq *sq, int32_t uid)
{
	const int64_t	 v[] = { uid, uid };	/* nuid of them */
	size_t		 i;
	int		 rc;

	if ((rc = sq_begin(sq)) != STORE_OK)
		return rc;
	for (i = 0; i < STORE_PURGE_N && rc == STORE_OK; i++)
		rc = sq_exec_ints(sq, store_purge[i].q, v, store_purge[i].nuid,
		    "delete account");
	return sq_end(sq, rc);
}

int
sqlite_account_purge(struct store *st, int32_t uid)
{
	SQ_CALL(st, account_purge_once(sq, uid));
}
