/*
 * store_mysql_msg.c - MySQL: offline messages, acknowledged chats
 * (smid claims).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "store_impl.h"
#include "util.h"
#include "store_mysql_impl.h"

static int
offline_add_once(struct my *m, struct mconn *c, const int32_t *uids,
    size_t n, const char *msg, size_t len, int64_t smid)
{
	struct mparam	 p[MY_MAXPARAM];
	size_t		 i, k, rows;
	int		 rc, q;

	if ((rc = my_begin(m, c)) != STORE_OK)
		return rc;
	for (i = 0; i < n; i += rows) {
		/* Rows of MY_BATCH, each carrying the text once. */
		if (n - i >= MY_BATCH && len <= MY_BATCH_MAXLEN) {
			q = Q_OFFLINE_ADD_BATCH;
			rows = MY_BATCH;
		} else {
			q = Q_OFFLINE_ADD;
			rows = 1;
		}
		for (k = 0; k < rows; k++) {
			p[3 * k] = P_INT(uids[i + k]);
			p[3 * k + 1] = P_STR(msg, len);
			p[3 * k + 2] = P_INT(smid);
		}
		rc = my_exec(m, c, q, p, 3 * rows, NULL, NULL,
		    "store message");
		if (rc != STORE_OK) {
			if (rc == STORE_NOTFOUND)
				store_set_error(&m->st, "store message: "
				    "no such user");
			goto fail;
		}
	}
	if (smid > 0)
		rc = my_exec_ints(m, c, Q_ACK_DONE, STORE_INTS(smid), NULL, NULL,
		    "acknowledge message");
 fail:
	return my_end(m, c, rc);
}

int
mysql_offline_add(struct store *st, const int32_t *uids, size_t n,
    const char *msg, size_t len, int64_t smid)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	if (n == 0 && smid == 0)
		return STORE_OK;
	MY_TRY(m, rc, MY_ONCE, offline_add_once(m, c, uids, n, msg, len,
	    smid));
	return rc;
}

/* Row callback: smid and done of a ClientMsg. */
static int
row_ack(struct my *m, void *arg, struct mcol *v, unsigned int nf)
{
	int64_t	*out = arg;

	out[0] = v[0].i;
	out[1] = v[1].i;
	out[2] = 1;
	return STORE_OK;
}

static int
ack_claim_once(struct my *m, struct mconn *c, int32_t sender, int64_t cmid,
    int64_t *smid, int *done)
{
	int64_t		 row[3] = { 0, 0, 0 };
	int		 rc;

	if ((rc = my_exec_ints(m, c, Q_ACK_CLAIM, STORE_INTS(sender, cmid),
	    NULL, NULL, "claim message id")) != STORE_OK ||
	    (rc = my_exec_ints(m, c, Q_ACK_GET, STORE_INTS(sender, cmid),
	    row_ack, row, "claim message id")) != STORE_OK)
		return rc;
	if (!row[2])
		return store_set_error(&m->st, "claim message id: no row");
	*smid = row[0];
	*done = row[1] != 0;
	return STORE_OK;
}

int
mysql_ack_claim(struct store *st, int32_t sender, int64_t cmid,
    int64_t *smid, int *done)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	/* the insert is a no-op the second time: safe to run again */
	MY_TRY(m, rc, MY_IDEMPOTENT, ack_claim_once(m, c, sender, cmid, smid,
	    done));
	return rc;
}

int
mysql_offline_remove(struct store *st, int32_t uid, int64_t smid)
{
	MY_CALL(st, MY_IDEMPOTENT, my_exec_ints(m, c, Q_OFFLINE_REMOVE,
	    STORE_INTS(uid, smid), NULL, NULL, "remove delivered message"));
}

struct mlist {
	struct store_msg_list	*out;
	size_t			 cap;
};

static int
row_msg(struct my *m, void *arg, struct mcol *v, unsigned int nf)
{
	struct mlist		*ml = arg;
	struct store_msg	*msg;

	if (util_grow((void **)&ml->out->v, &ml->cap, ml->out->n,
	    sizeof(*msg)) == -1)
		return my_nomem(m);
	msg = &ml->out->v[ml->out->n];
	msg->id = v[0].i;
	if (my_strdup(&v[1], &msg->text, &msg->len) == -1)
		return my_nomem(m);
	ml->out->n++;
	return STORE_OK;
}

static int
offline_fetch_once(struct my *m, struct mconn *c, int32_t uid, size_t max,
    struct store_msg_list *out)
{
	struct mlist	 ml;
	struct mparam	 p[2];
	int		 rc;

	out->v = NULL;
	out->n = 0;
	memset(&ml, 0, sizeof(ml));
	ml.out = out;
	p[0] = P_INT(uid);
	p[1] = P_INT(max > INT64_MAX ? INT64_MAX : (int64_t)max);
	if (max == 0)
		rc = my_exec(m, c, Q_OFFLINE_FETCH_ALL, p, 1, row_msg, &ml,
		    "fetch messages");
	else
		rc = my_exec(m, c, Q_OFFLINE_FETCH, p, 2, row_msg, &ml,
		    "fetch messages");
	if (rc != STORE_OK)
		store_msg_list_free(out);
	return rc;
}

int
mysql_offline_fetch(struct store *st, int32_t uid, size_t max,
    struct store_msg_list *out)
{
	MY_CALL(st, MY_IDEMPOTENT, offline_fetch_once(m, c, uid, max, out));
}

int
mysql_offline_delete(struct store *st, int32_t uid, int64_t upto)
{
	MY_CALL(st, MY_IDEMPOTENT, my_exec_ints(m, c, Q_OFFLINE_DELETE,
	    STORE_INTS(uid, upto), NULL, NULL, "delete messages"));
}

/* ---- ping, schema, URL, open, close ---- */

/* ---- history ---- */

_Static_assert(3 * MY_BATCH <= MY_MAXPARAM,
    "a HistoryConv batch binds more than my_exec takes");

/*
 * The batch's one-to-one conversations into HistoryConv (store_impl.h),
 * MY_BATCH to a statement.
 */
static int
hconv_add(struct my *m, struct mconn *c, const struct store_hist *v,
    size_t n)
{
	struct store_hconv	*hc;
	struct mparam		 p[3 * MY_BATCH];
	size_t			 i, k, rows, nc;
	int			 rc = STORE_OK;

	if (store_hist_convs(v, n, &hc, &nc) == -1)
		return store_set_error(&m->st, "mysql: out of memory");
	for (i = 0; i < nc && rc == STORE_OK; i += rows) {
		rows = nc - i >= MY_BATCH ? MY_BATCH : 1;
		for (k = 0; k < rows; k++) {
			p[3 * k] = P_INT(hc[i + k].userid);
			p[3 * k + 1] = P_INT(hc[i + k].conv);
			p[3 * k + 2] = P_INT(hc[i + k].last);
		}
		rc = my_exec(m, c, rows > 1 ? Q_HCONV_ADD_BATCH : Q_HCONV_ADD,
		    p, 3 * rows, NULL, NULL, "keep history");
	}
	free(hc);
	return rc;
}

/* How many of v[0..n) go in the next statement: a batch, or one. */
static size_t
history_rows(const struct store_hist *v, size_t n)
{
	size_t	 k, len = 0;

	if (n < MY_HISTORY_BATCH)
		return 1;
	for (k = 0; k < MY_HISTORY_BATCH; k++)
		if ((len += v[k].len) > MY_HISTORY_MAXLEN)
			return 1;
	return MY_HISTORY_BATCH;
}

static int
history_add_once(struct my *m, struct mconn *c, const struct store_hist *v,
    size_t n)
{
	struct mparam	 p[HROW_NP * MY_HISTORY_BATCH], *q;
	size_t		 i, k, rows;
	int		 rc;

	if ((rc = my_begin(m, c)) != STORE_OK)
		return rc;
	for (i = 0; i < n; i += rows) {
		rows = history_rows(v + i, n - i);
		for (k = 0; k < rows; k++) {
			q = &p[HROW_NP * k];
			q[0] = P_INT(v[i + k].smid);
			q[1] = P_INT(store_conv(v[i + k].sender, v[i + k].peer,
			    v[i + k].gid));
			q[2] = P_INT(v[i + k].peer);
			q[3] = P_INT(v[i + k].sender);
			q[4] = P_INT(v[i + k].created);
			q[5] = P_STR(v[i + k].text, v[i + k].len);
		}
		if ((rc = my_exec(m, c, rows > 1 ? Q_HISTORY_ADD_BATCH :
		    Q_HISTORY_ADD, p, HROW_NP * rows, NULL, NULL,
		    "keep history")) != STORE_OK)
			break;
	}
	if (rc == STORE_OK)
		rc = hconv_add(m, c, v, n);
	return my_end(m, c, rc);
}

int
mysql_history_add(struct store *st, const struct store_hist *v, size_t n)
{
	/* a row kept before is left alone: safe to run again */
	MY_CALL(st, MY_IDEMPOTENT, history_add_once(m, c, v, n));
}

static int
history_fetch_once(struct my *m, struct mconn *c, int32_t uid, int32_t peer,
    int32_t gid, int64_t before, size_t max, struct store_msg_list *out)
{
	struct mlist	 ml;
	struct mparam	 p[8];
	size_t		 np = 0;
	int64_t		 at = INT64_MAX;
	int		 rc;

	out->v = NULL;
	out->n = 0;
	memset(&ml, 0, sizeof(ml));
	ml.out = out;
	if (before != INT64_MAX) {
		/* the cursor: when the message before was kept */
		p[0] = P_INT(before);
		at = -1;
		if ((rc = my_exec(m, c, Q_HISTORY_AT, p, 1, my_row_int, &at,
		    "read history")) != STORE_OK)
			return rc;
		if (at < 0)
			return STORE_OK;	/* not in the history: nothing older */
	}
	p[np++] = P_INT(store_conv(uid, peer, gid));
	p[np++] = P_INT(at);
	p[np++] = P_INT(at);
	p[np++] = P_INT(before);
	if (gid == 0)
		p[np++] = P_INT(uid);	/* rows kept for their sender only */
	if (gid != 0) {
		p[np++] = P_INT(gid);
		p[np++] = P_INT(uid);
	}
	p[np++] = P_INT(uid);
	p[np++] = P_INT(max > INT64_MAX ? INT64_MAX : (int64_t)max);
	rc = my_exec(m, c, gid != 0 ? Q_HISTORY_GROUP : Q_HISTORY_PAIR, p, np,
	    row_msg, &ml, "read history");
	if (rc != STORE_OK)
		store_msg_list_free(out);
	return rc;
}

int
mysql_history_fetch(struct store *st, int32_t uid, int32_t peer,
    int32_t gid, int64_t before, size_t max, struct store_msg_list *out)
{
	MY_CALL(st, MY_IDEMPOTENT, history_fetch_once(m, c, uid, peer, gid,
	    before, max, out));
}

static int
resume_fetch_once(struct my *m, struct mconn *c, int32_t uid, int64_t anchor,
    int64_t window_ms, size_t max, struct store_msg_list *out, int64_t *at)
{
	struct mlist	 ml;
	struct mparam	 p[10];
	int		 rc;

	out->v = NULL;
	out->n = 0;
	memset(&ml, 0, sizeof(ml));
	ml.out = out;
	p[0] = P_INT(anchor);
	*at = -1;
	if ((rc = my_exec(m, c, Q_HISTORY_AT, p, 1, my_row_int, at,
	    "resume")) != STORE_OK)
		return rc;
	if (*at < 0)
		return STORE_NOTFOUND;
	/* in STORE_SQL_RESUME's order */
	p[0] = p[2] = p[7] = p[8] = P_INT(uid);
	p[1] = p[3] = p[4] = P_INT(window_ms < 0 ? *at : *at - window_ms);
	p[5] = P_INT(window_ms < 0 ? anchor : 0);
	p[6] = P_INT(anchor);
	p[9] = P_INT(max > INT64_MAX ? INT64_MAX : (int64_t)max);
	rc = my_exec(m, c, Q_RESUME, p, 10, row_msg, &ml, "resume");
	if (rc != STORE_OK)
		store_msg_list_free(out);
	return rc;
}

int
mysql_resume_fetch(struct store *st, int32_t uid, int64_t anchor,
    int64_t window_ms, size_t max, struct store_msg_list *out, int64_t *at)
{
	MY_CALL(st, MY_IDEMPOTENT, resume_fetch_once(m, c, uid, anchor,
	    window_ms, max, out, at));
}

static int
history_prune_once(struct my *m, struct mconn *c, int64_t t, size_t max,
    size_t *n)
{
	struct mparam	 p[2];
	int		 rc;

	*n = 0;
	p[0] = P_INT(t);
	p[1] = P_INT(max > INT64_MAX ? INT64_MAX : (int64_t)max);
	if ((rc = my_exec(m, c, Q_HISTORY_PRUNE, p, 2, NULL, NULL,
	    "prune history")) != STORE_OK)
		return rc;
	*n = (size_t)m->affected;
	/* the last round: conversations with nothing left since t */
	if (*n < max)
		return my_exec_ints(m, c, Q_HCONV_PRUNE, STORE_INTS(t), NULL,
		    NULL, "prune history");
	return STORE_OK;
}

int
mysql_history_prune(struct store *st, int64_t t, size_t max, size_t *n)
{
	MY_CALL(st, MY_IDEMPOTENT, history_prune_once(m, c, t, max, n));
}

static int
history_forget_once(struct my *m, struct mconn *c, int32_t gid)
{
	struct mparam	 p[1];

	p[0] = P_INT(store_conv(0, 0, gid));
	return my_exec(m, c, Q_HISTORY_FORGET, p, 1, NULL, NULL,
	    "forget group history");
}

int
mysql_history_forget(struct store *st, int32_t gid)
{
	MY_CALL(st, MY_IDEMPOTENT, history_forget_once(m, c, gid));
}

static int
account_purge_once(struct my *m, struct mconn *c, int32_t uid)
{
	const int64_t	 v[] = { uid, uid };	/* nuid of them */
	size_t		 i;
	int		 rc;

	if ((rc = my_begin(m, c)) != STORE_OK)
		return rc;
	for (i = 0; i < STORE_PURGE_N && rc == STORE_OK; i++)
		rc = my_exec_ints(m, c, store_purge[i].q, v,
		    store_purge[i].nuid, NULL, NULL, "delete account");
	return my_end(m, c, rc);
}

int
mysql_account_purge(struct store *st, int32_t uid)
{
	/* deleting what is gone already changes nothing: safe again */
	MY_CALL(st, MY_IDEMPOTENT, account_purge_once(m, c, uid));
}
