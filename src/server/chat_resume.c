/*
 * chat_resume.c - gap-free resume (chatd-protocol(7) RESUME): after a
 * reconnect a client names the last chat it has and gets what reached
 * it after that from the history, in order, so that what the dropped
 * connection had in flight is not lost.  The history is written a
 * little late (chat_history.c: a batch per HIST_FLUSH_SEC, a second
 * when a worker is idle, on every node), so a resume is answered no
 * sooner than RESUME_SETTLE_SEC after the login (rows kept on other
 * nodes are in their store by then unless their history lags); the
 * fetch waits, as HISTORY's does, until every worker of this node has
 * stored the rows it kept before it (chat_barrier.c).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "chat_impl.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define RESUME_SETTLE_SEC	2.0	/* after the login, at the earliest */
#define RESUME_PENDING_MAX	4096	/* resumes waiting on one worker */

/* Connections whose resume waits for the settle time. */
struct resume_wait {
	uint32_t	 conn;
	int32_t		 uid;
};
static struct resume_wait	*rw;
static size_t			 rw_n, rw_cap;

/* A RESUME's fetch, in the read store thread. */
struct resume_call {
	struct chat_call	 k;
	uint32_t		 gen;		/* the session's offline_gen */
	int64_t			 anchor, window, at;
	size_t			 limit;
	int			 exact;
	struct store_msg_list	 l;
};

static void
resume_run(struct chat_call *k, struct store *st)
{
	struct resume_call	*r = (struct resume_call *)k;
	int			 rc;

	rc = store_resume_fetch(st, k->uid, r->anchor, r->window,
	    r->limit + 1, &r->l, &r->at);
	if (rc == STORE_NOTFOUND)
		k->code = ERR_RESUME_GONE;
	else if (rc != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "resume");
}

static void
resume_reply(struct conn *c, struct chat_call *k)
{
	struct resume_call	*r = (struct resume_call *)k;
	struct proto_str	*v;
	size_t			 n;
	int			 more;

	if (c == NULL)
		return;
	c->sess->resume_pending = 0;
	if (c->sess->offline_gen != r->gen || k->code != 0)
		return;		/* logged out meanwhile, or answered */
	if (r->at < util_wall_ms() - PROTO_RESUME_MAX_AGE_MS) {
		chat_error(c, MSG_ERROR, ERR_RESUME_GONE, MSG_RESUME, NULL);
		return;
	}
	if ((v = chat_history_page(&r->l, r->limit, &n, &more)) == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, MSG_RESUME, NULL);
		return;
	}
	if (proto_put_resume(&c->out, r->exact ? "after" : "since",
	    r->anchor, v, n, more) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
	free(v);
}

static void
resume_release(struct chat_call *k)
{
	struct resume_call	*r = (struct resume_call *)k;

	store_msg_list_free(&r->l);
	free(r);
}

/*
 * Fetch c's resume in the read store thread, once the rows this worker
 * holds are written.  pause: c was answering this request now, so its
 * next requests wait; a resume due later (settle time) leaves c going.
 * resume_pending stays set till the answer.
 */
static void
resume_answer(struct conn *c, int pause)
{
	struct session		*s = c->sess;
	struct resume_call	*r;

	if ((r = (struct resume_call *)chat_call_new(c, MSG_RESUME,
	    sizeof(*r), resume_run, resume_reply, resume_release)) == NULL) {
		s->resume_pending = 0;
		return;
	}
	s->resume_pending = 1;
	r->gen = s->offline_gen;
	r->exact = s->resume_exact;
	r->anchor = s->resume_smid;
	r->window = s->resume_exact ? -1 : PROTO_RESUME_WINDOW_MS;
	r->limit = s->resume_limit;
	chat_call_submit(c, &r->k, NULL, CALL_HISTORY, pause);
}

void
handle_resume(struct conn *c, const struct proto_req *req)
{
	struct session		*s = c->sess;

	if (chat.cfg->history_days == 0) {
		chat_error(c, MSG_ERROR, ERR_RESUME_GONE, req->msgid,
		    "no history is kept (history_days = 0): nothing to "
		    "resume from");
		return;
	}
	if (s->resume_pending || chat_history_rate(s) == -1) {
		chat_error(c, MSG_ERROR, ERR_RATE, req->msgid,
		    "resume requests too fast");
		return;
	}
	s->resume_exact = req->after != 0;
	s->resume_smid = req->after != 0 ? req->after : req->since;
	s->resume_limit = (size_t)req->limit;
	if (util_mono_coarse() >= s->login_at + RESUME_SETTLE_SEC) {
		resume_answer(c, 1);
		return;
	}
	if (rw_n >= RESUME_PENDING_MAX ||
	    util_grow((void **)&rw, &rw_cap, rw_n, sizeof(*rw)) == -1) {
		chat_error(c, MSG_ERROR, ERR_BUSY, req->msgid, NULL);
		return;
	}
	rw[rw_n].conn = c->id;
	rw[rw_n].uid = s->uid;
	rw_n++;
	s->resume_pending = 1;
}

void
chat_resume_due(void)
{
	struct conn	*c;
	double		 now;
	size_t		 i, k;

	if (rw_n == 0)
		return;
	now = util_mono_coarse();
	for (i = k = 0; i < rw_n; i++) {
		/* gone, or its id reused by another connection: dropped */
		if ((c = session_conn(rw[i].conn, rw[i].uid)) == NULL ||
		    !c->sess->resume_pending || c->closing)
			continue;
		if (now >= c->sess->login_at + RESUME_SETTLE_SEC)
			resume_answer(c, 0);
		else
			rw[k++] = rw[i];
	}
	rw_n = k;
}
