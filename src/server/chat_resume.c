/*
 * chat_resume.c - gap-free resume (chatd-protocol(7) RESUME): after a
 * reconnect a client names the last chat it has and gets what reached
 * it after that from the history, in order, so that what the dropped
 * connection had in flight is not lost.  The history is written a
 * little late (chat_history.c: a batch per HIST_FLUSH_SEC, a second
 * when a worker is idle, on every node), so a resume is answered no
 * sooner than RESUME_SETTLE_SEC after the login: by then the rows of
 * every chat sent to the old connection are in the store.
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

static void
resume_answer(struct conn *c)
{
	struct session		*s = c->sess;
	struct store_msg_list	 l = { NULL, 0 };
	struct proto_str	*v;
	int64_t			 at = 0, window;
	size_t			 i, n, limit = s->resume_limit;
	int			 rc, more;

	s->resume_pending = 0;
	chat_history_flush_sync();	/* what this worker holds is readable */
	window = s->resume_exact ? -1 : PROTO_RESUME_WINDOW_MS;
	rc = store_resume_fetch(chat.store, s->uid, s->resume_smid, window,
	    limit + 1, &l, &at);
	if (rc == STORE_NOTFOUND || (rc == STORE_OK &&
	    at < util_wall_ms() - PROTO_RESUME_MAX_AGE_MS)) {
		store_msg_list_free(&l);
		chat_error(c, MSG_ERROR, ERR_RESUME_GONE, MSG_RESUME, NULL);
		return;
	}
	if (rc != STORE_OK) {
		log_warnx("resume of %d: %s", (int)s->uid,
		    store_error(chat.store));
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, MSG_RESUME, NULL);
		return;
	}
	more = l.n > limit;
	n = more ? limit : l.n;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL) {
		store_msg_list_free(&l);
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, MSG_RESUME, NULL);
		return;
	}
	for (i = 0; i < n; i++)
		chat_str_set(&v[i], l.v[i].text, l.v[i].len);
	if (proto_put_resume(&c->out, s->resume_exact ? "after" : "since",
	    s->resume_smid, v, n, more) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
	free(v);
	store_msg_list_free(&l);
}

void
handle_resume(struct conn *c, const struct proto_req *req)
{
	struct session		*s = c->sess;
	struct resume_wait	*nv;
	size_t			 ncap;

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
		resume_answer(c);
		return;
	}
	if (rw_n == rw_cap) {
		ncap = rw_cap ? rw_cap * 2 : 16;
		if (ncap > RESUME_PENDING_MAX ||
		    (nv = reallocarray(rw, ncap, sizeof(*nv))) == NULL) {
			chat_error(c, MSG_ERROR, ERR_BUSY, req->msgid, NULL);
			return;
		}
		rw = nv;
		rw_cap = ncap;
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
			resume_answer(c);
		else
			rw[k++] = rw[i];
	}
	rw_n = k;
}
