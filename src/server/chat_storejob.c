/*
 * chat_storejob.c - the chat layer's store calls that run in the
 * worker's store queue (storeq.h): acknowledged chats, chats kept for
 * an offline recipient, and removing delivered copies.
 *
 * A locked SQLite file or a stalled MySQL server then holds up only
 * the connections whose requests wait for it: the sender's connection
 * is paused (and referenced) while its job runs, so its requests keep
 * their order and their answers, and every other connection of the
 * worker goes on.  A sender that leaves meanwhile loses only its
 * answer: what was stored stays stored and is delivered.
 *
 * The run functions use nothing but the job and the thread's store.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "channel.h"
#include "chat_impl.h"
#include "log.h"
#include "online.h"
#include "pubsub.h"
#include "store.h"
#include "storeq.h"
#include "util.h"

static uint64_t	stores_done;	/* store jobs that stored something */

/* What went wrong in a store thread, for the log in the loop thread. */
static void
job_fail(char **err, const char *what, struct store *st)
{
	const char	*e = st != NULL ? store_error(st) : "out of memory";
	size_t		 n = strlen(what) + strlen(e) + 3;

	if (*err != NULL || (*err = malloc(n)) == NULL)
		return;
	snprintf(*err, n, "%s: %s", what, e);
}

/* A paused sender's job is over: let it go on, unless it left. */
static void
job_release(struct conn *c)
{
	if (c == NULL)
		return;
	conn_unref(c);
	if (!c->closing)
		conn_resume(c);
}

static void
job_hold(struct conn *c)
{
	if (c == NULL)
		return;
	c->jobs++;
	conn_pause(c);
}

enum job_result {
	JOB_OK,
	JOB_NO_USER,		/* the recipient is no user */
	JOB_RESEND,		/* acknowledged chat stored before */
	JOB_NO_GROUP,		/* the group is no group */
	JOB_NOT_MEMBER,		/* the sender is not one of its members */
	JOB_FAILED		/* the store (or memory) failed */
};

/* Whether uid is a user (*found then set), in a store thread. */
static enum job_result
recipient_in(struct store *st, int32_t uid, int *found, char **err)
{
	struct store_user	 u;
	int			 rc;

	memset(&u, 0, sizeof(u));
	rc = store_user_get(st, uid, &u);
	store_user_clear(&u);
	if (rc == STORE_NOTFOUND)
		return JOB_NO_USER;
	if (rc != STORE_OK) {
		job_fail(err, "looking up a recipient", st);
		return JOB_FAILED;
	}
	*found = 1;
	return JOB_OK;
}

/* ---- acknowledged chats ------------------------------------------------ */

/* The members of gid but sender, who must be one, into j->to. */
static enum job_result
members_in(struct store *st, int32_t gid, int32_t sender, int32_t **to,
    size_t *n, char **err)
{
	struct store_user_list	 m = { NULL, 0 };
	enum job_result		 r = JOB_NOT_MEMBER;
	size_t			 i;
	int			 rc;

	*n = 0;
	if ((rc = store_group_members(st, gid, &m)) == STORE_NOTFOUND)
		return JOB_NO_GROUP;
	if (rc != STORE_OK) {
		job_fail(err, "acknowledged group chat: its members", st);
		return JOB_FAILED;
	}
	if ((*to = calloc(m.n + 1, sizeof(**to))) == NULL) {
		job_fail(err, "acknowledged group chat", NULL);
		r = JOB_FAILED;
	} else
		for (i = 0; i < m.n; i++)
			if (m.v[i].id == sender)
				r = JOB_OK;
			else
				(*to)[(*n)++] = m.v[i].id;
	store_user_list_free(&m);
	return r;
}

struct acked_job {
	struct workq_job	 sj;
	struct conn		*c;
	struct proto_req	 req;		/* the chat request, owned */
	int32_t			 sender;
	char			*name;		/* the sender's */
	size_t			 name_len;
	int32_t			*to;		/* recipients, owned */
	size_t			 n;
	int32_t			 gid;		/* a group's: to read here */
	int			 check_to;	/* req.toid may be no user */
	int			 user_found;	/* check_to: it is one */
	enum job_result		 result;
	int64_t			 smid;
	struct buf		 line;		/* forwarded, with "\n" */
	char			*err;
};

static void
acked_run(struct workq_job *sj, void *ctx)
{
	struct acked_job	*j = (struct acked_job *)sj;
	struct store		*st = ctx;
	int			 done;

	if (j->check_to && (j->result = recipient_in(st, j->req.toid,
	    &j->user_found, &j->err)) != JOB_OK)
		return;
	/* read in the write thread, so a join just made is seen */
	if (j->gid != 0 && (j->result = members_in(st, j->gid, j->sender,
	    &j->to, &j->n, &j->err)) != JOB_OK)
		return;
	if (store_ack_claim(st, j->sender, j->req.cmid, &j->smid, &done) !=
	    STORE_OK) {
		job_fail(&j->err, "acknowledged chat", st);
		j->result = JOB_FAILED;
		return;
	}
	if (done) {
		j->result = JOB_RESEND;
		return;
	}
	if (block_filter_in(st, j->sender, j->to, &j->n) == -1) {
		job_fail(&j->err, "acknowledged chat: who blocks the sender",
		    st);
		j->result = JOB_FAILED;
		return;
	}
	if (proto_req_set_smid(&j->req, j->smid) == -1 ||
	    proto_put_forward(&j->line, &j->req, j->sender, j->name,
	    j->name_len) == -1 || buf_append(&j->line, "\n", 1) == -1) {
		job_fail(&j->err, "acknowledged chat", NULL);
		j->result = JOB_FAILED;
		return;
	}
	if (store_ack_commit(st, j->smid, j->to, j->n, buf_head(&j->line),
	    buf_used(&j->line) - 1) != STORE_OK) {
		job_fail(&j->err, "acknowledged chat", st);
		j->result = JOB_FAILED;
		return;
	}
	j->result = JOB_OK;
}

static void
acked_done(struct workq_job *sj)
{
	struct acked_job	*j = (struct acked_job *)sj;
	struct conn		*c = j->c;

	if (j->err != NULL)
		log_warnx("%s", j->err);
	if (j->user_found)
		user_known_add(j->req.toid);
	if (j->result == JOB_OK) {
		stores_done++;
		/* stored: delivered whether or not the sender is still here */
		chat_stat(&chat.stats->offline_stored, j->n);
		chat_history_keep(j->sender, &j->req, &j->line,
		    util_wall_ms());
		deliver_acked_many(j->to, j->n, j->smid, buf_head(&j->line),
		    buf_used(&j->line));
	}
	if (!c->closing) {
		switch (j->result) {
		case JOB_OK:
		case JOB_RESEND:
			if (proto_put_chat_ack(&c->out, j->req.cmid,
			    j->smid) == -1)
				conn_close(c, "out of memory");
			else
				(void)conn_sent(c);
			break;
		case JOB_NO_USER:
			chat_error(c, MSG_ERROR, ERR_NO_SUCH_USER,
			    j->req.msgid, NULL);
			break;
		case JOB_NO_GROUP:
			chat_error(c, MSG_ERROR, ERR_NO_SUCH_GROUP,
			    j->req.msgid, NULL);
			break;
		case JOB_NOT_MEMBER:
			chat_error(c, MSG_ERROR, ERR_NOT_MEMBER, j->req.msgid,
			    "only members may post to a group");
			break;
		case JOB_FAILED:
			chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, j->req.msgid,
			    ACKED_STORE_ERR);
			break;
		}
	}
	if (c->sess != NULL && c->sess->acked_jobs > 0)
		c->sess->acked_jobs--;
	job_release(c);
	proto_req_clear(&j->req);
	buf_free(&j->line);
	free(j->name);
	free(j->to);
	free(j->err);
	free(j);
}

int
acked_submit(struct conn *c, struct proto_req *req, int32_t *to, size_t n)
{
	struct acked_job	*j;
	const struct session	*s = c->sess;

	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->name = malloc(s->name_len + 1)) == NULL) {
		free(j);
		free(to);
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid,
		    ACKED_STORE_ERR);
		return -1;
	}
	memcpy(j->name, s->name, s->name_len);
	j->name[s->name_len] = '\0';
	j->name_len = s->name_len;
	j->sender = s->uid;
	j->to = to;
	j->n = n;
	if (req->msgid != MSG_ONE_CHAT)
		j->gid = req->groupid;
	j->check_to = req->msgid == MSG_ONE_CHAT && !user_known(req->toid);
	/* the request is the job's now: the caller's clear frees nothing */
	j->req = *req;
	memset(req, 0, sizeof(*req));
	j->line = (struct buf)BUF_INIT;
	j->c = c;
	j->sj.run = acked_run;
	j->sj.done = acked_done;
	job_hold(c);
	c->sess->acked_jobs++;	/* an upgrade may hand c over meanwhile */
	storeq_submit(chat.storeq, &j->sj);
	return 0;
}

/* ---- chats kept for later ---------------------------------------------- */

struct keep_job {
	struct workq_job	 sj;
	struct conn		*c;		/* held paused, or NULL */
	uint32_t		 conn;		/* the sender's connection */
	int32_t			 sender;
	int32_t			 from;		/* the line's sender, 0: none */
	int			 refmsgid;
	const char		*errtext;
	int32_t			*to;		/* owned */
	size_t			 n;		/* after the block filter */
	int32_t			*nudge;		/* the recipients as given */
	size_t			 nnudge;
	int32_t			*then;		/* live once stored, owned */
	size_t			 nthen;
	struct pubsub_pending	*pend;		/* a Redis item waits for it */
	struct pubsub_fanout_wait *fanw;	/* a fan-out's pushes wait */
	int			 check_to;
	int			 user_found;
	enum job_result		 result;
	char			*err;
	size_t			 len;
	char			 line[];	/* without its "\n" */
};

static void
keep_run(struct workq_job *sj, void *ctx)
{
	struct keep_job	*j = (struct keep_job *)sj;
	struct store	*st = ctx;

	if (j->check_to && (j->result = recipient_in(st, j->to[0],
	    &j->user_found, &j->err)) != JOB_OK)
		return;
	if (block_filter_in(st, j->from, j->to, &j->n) == -1) {
		job_fail(&j->err, "who blocks a sender", st);
		j->result = JOB_FAILED;
		return;
	}
	if (j->n > 0 && store_offline_add(st, j->to, j->n, j->line,
	    j->len) != STORE_OK) {
		job_fail(&j->err, "storing an offline message", st);
		j->result = JOB_FAILED;
		return;
	}
	j->result = JOB_OK;
}

/*
 * Something was stored for uids after the sender found them away: one
 * may have logged in since, and its login may have read before this
 * store committed (the read and write lanes are not ordered, nor are two
 * workers).  A login under way here reads again (stores_done); another
 * worker is told to fetch: over Redis in a cluster, over the channel on a
 * single node.
 */
void
stored_nudge(const int32_t *uids, size_t n)
{
	struct online_entry	 e;
	struct chan_hdr		 h;
	size_t			 i;

	stores_done++;
	if (chat.pubsub != NULL) {
		pubsub_nudge(chat.pubsub, uids, n);
		return;
	}
	memset(&h, 0, sizeof(h));
	h.type = CHAN_STORED;
	h.from_slot = chat.slot;
	for (i = 0; i < n; i++) {
		if (online_get(chat.online, uids[i], &e) == -1)
			continue;	/* away: its next login fetches */
		if (e.slot == chat.slot && !chat_slot_moved()) {
			chat_stored(NULL, uids[i]);
			continue;
		}
		h.uid = (uint32_t)uids[i];
		(void)chat.to_slot(e.slot, &h, "");
	}
}

static void
keep_done(struct workq_job *sj)
{
	struct keep_job	*j = (struct keep_job *)sj;
	struct conn	*c;
	size_t		 i;

	if (j->err != NULL)
		log_warnx("%s (%zu user(s))", j->err, j->nnudge);
	if (j->user_found)
		user_known_add(j->nudge[0]);
	if (j->result == JOB_OK && j->n > 0) {
		chat_stat(&chat.stats->offline_stored, j->n);
		stored_nudge(j->nudge, j->nnudge);
	}
	/* the line (with its "\n" kept after len) to those online */
	for (i = 0; i < j->nthen; i++)
		if (deliver_live(j->then[i], j->line, j->len + 1) !=
		    DELIVER_OK)
			(void)chat_keep_offline_later(j->then[i], j->line,
			    j->len);
	if (j->result == JOB_NO_USER &&
	    (c = session_conn(j->conn, j->sender)) != NULL)
		chat_error(c, MSG_ERROR, ERR_NO_SUCH_USER, j->refmsgid, NULL);
	else if (j->result == JOB_FAILED && j->sender != 0)
		reply_sender(j->conn, j->sender, j->refmsgid, j->errtext);
	/* then the members on other nodes (a group chat's fan-out) */
	if (j->fanw != NULL)
		pubsub_fanout_go(j->fanw);
	/* stored: the item leaves Redis; not: it is offered again */
	if (j->pend != NULL)
		pubsub_pending_done(j->pend, j->result == JOB_OK ?
		    PUBSUB_STORED : PUBSUB_RETRY);
	job_release(j->c);
	free(j->to);
	free(j->nudge);
	free(j->then);
	free(j->err);
	free(j);
}

static enum keep_result
keep_submit_full(struct conn *c, uint32_t conn, int32_t sender,
    int refmsgid, const char *errtext, const int32_t *uids, size_t n,
    int check, const char *line, size_t len, const int32_t *then,
    size_t nthen, struct pubsub_pending *pend,
    struct pubsub_fanout_wait *fanw)
{
	struct keep_job	*j;
	int32_t		 from;
	int		 msgid;

	if (n == 0)
		return KEEP_DONE;
	/* typing notices are live only; the block filter goes by the
	 * line's sender (a notice may name none) */
	from = proto_line_sender(line, len, &msgid);
	if (msgid == MSG_TYPING)
		return KEEP_DONE;
	if ((j = calloc(1, sizeof(*j) + len + 1)) == NULL ||
	    (j->to = calloc(n, sizeof(*j->to))) == NULL ||
	    (j->nudge = calloc(n, sizeof(*j->nudge))) == NULL ||
	    (j->then = calloc(nthen + 1, sizeof(*j->then))) == NULL) {
		if (j != NULL) {
			free(j->to);
			free(j->nudge);
		}
		free(j);
		return KEEP_FAILED;
	}
	memcpy(j->to, uids, n * sizeof(*uids));
	memcpy(j->nudge, uids, n * sizeof(*uids));
	j->n = j->nnudge = n;
	if (nthen > 0)
		memcpy(j->then, then, nthen * sizeof(*then));
	j->nthen = nthen;
	memcpy(j->line, line, len);
	j->line[len] = '\n';
	j->len = len;
	j->c = c;
	j->conn = conn;
	j->sender = sender;
	j->from = from;
	j->refmsgid = refmsgid;
	j->errtext = errtext;
	j->check_to = check && n == 1 && !user_known(uids[0]);
	j->pend = pend;
	j->fanw = fanw;
	j->sj.run = keep_run;
	j->sj.done = keep_done;
	job_hold(c);
	storeq_submit(chat.storeq, &j->sj);
	return KEEP_PENDING;
}

enum keep_result
keep_submit_then(struct conn *c, uint32_t conn, int32_t sender,
    int refmsgid, const char *errtext, const int32_t *uids, size_t n,
    int check, const char *line, size_t len, const int32_t *then,
    size_t nthen)
{
	return keep_submit_full(c, conn, sender, refmsgid, errtext, uids, n,
	    check, line, len, then, nthen, NULL, NULL);
}

enum keep_result
keep_submit_fan(uint32_t conn, int32_t sender, int refmsgid,
    const char *errtext, const int32_t *uids, size_t n, const char *line,
    size_t len, const int32_t *then, size_t nthen,
    struct pubsub_fanout_wait *fanw)
{
	return keep_submit_full(NULL, conn, sender, refmsgid, errtext, uids,
	    n, 0, line, len, then, nthen, NULL, fanw);
}

/*
 * A line from Redis (with its "\n", len counting it) for uids[0..n),
 * not here: stored in the write store thread, its item acknowledged to
 * Redis only once that committed (pubsub_pending).  PUBSUB_PENDING, or
 * PUBSUB_STORED when there was nothing to store (a typing notice), or
 * PUBSUB_RETRY (no memory, no store thread: offered again).  Never a
 * store on the loop.
 */
enum pubsub_result
keep_remote(const int32_t *uids, size_t n, const char *line, size_t len)
{
	struct pubsub_pending	*t;
	enum keep_result	 kr;

	if (n == 0)
		return PUBSUB_STORED;
	if (chat.storeq == NULL || (t = pubsub_pending()) == NULL)
		return PUBSUB_RETRY;
	kr = keep_submit_full(NULL, 0, 0, 0, NULL, uids, n, 0, line, len - 1,
	    NULL, 0, t, NULL);
	if (kr == KEEP_PENDING)
		return PUBSUB_PENDING;
	pubsub_pending_done(t, PUBSUB_DELIVERED);	/* not used */
	return kr == KEEP_DONE ? PUBSUB_STORED : PUBSUB_RETRY;
}

enum keep_result
keep_submit(struct conn *c, uint32_t conn, int32_t sender, int refmsgid,
    const char *errtext, const int32_t *uids, size_t n, int check,
    const char *line, size_t len)
{
	return keep_submit_then(c, conn, sender, refmsgid, errtext, uids, n,
	    check, line, len, NULL, 0);
}

/* ---- delivered copies -------------------------------------------------- */

struct remove_job {
	struct workq_job	 sj;
	struct conn		*c;		/* RECEIVED: waits, or NULL */
	int			 refmsgid;
	int32_t			 uid;
	size_t			 n, failed;
	char			*err;
	int64_t			 smids[];
};

static void
remove_run(struct workq_job *sj, void *ctx)
{
	struct remove_job	*j = (struct remove_job *)sj;
	struct store		*st = ctx;
	size_t			 i;

	for (i = 0; i < j->n; i++)
		if (store_offline_remove(st, j->uid, j->smids[i]) !=
		    STORE_OK) {
			job_fail(&j->err, "removing a delivered message", st);
			j->failed++;
		}
}

static void
remove_done(struct workq_job *sj)
{
	struct remove_job	*j = (struct remove_job *)sj;

	/* kept: the user sees them again (same smid) at its next login */
	if (j->failed > 0)
		log_warnx("%s (%zu of %d's)", j->err != NULL ? j->err :
		    "removing delivered messages", j->failed, (int)j->uid);
	if (j->failed > 0 && j->c != NULL && !j->c->closing)
		chat_error(j->c, MSG_ERROR, ERR_UNAVAILABLE, j->refmsgid, NULL);
	leave_release(j->uid);
	job_release(j->c);
	free(j->err);
	free(j);
}

void
delivered_remove_submit(struct conn *c, int refmsgid, int32_t uid,
    const int64_t *smids, size_t n)
{
	struct remove_job	*j;

	if (n == 0)
		return;
	if ((j = calloc(1, sizeof(*j) + n * sizeof(*smids))) == NULL) {
		log_warnx("removing %zu delivered message(s) of %d: out of "
		    "memory; they come again at the next login", n, (int)uid);
		if (c != NULL)
			chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, refmsgid,
			    NULL);
		return;
	}
	j->c = c;
	j->refmsgid = refmsgid;
	j->uid = uid;
	j->n = n;
	memcpy(j->smids, smids, n * sizeof(*smids));
	j->sj.run = remove_run;
	j->sj.done = remove_done;
	leave_hold(uid);
	job_hold(c);
	storeq_submit(chat.storeq, &j->sj);
}

/* ---- message ids ------------------------------------------------------- */

struct smid_job {
	struct workq_job	 sj;
	int32_t			 uid;
	int64_t			 base;		/* 0: failed */
	char			*err;
};

static void
smid_run(struct workq_job *sj, void *ctx)
{
	struct smid_job	*j = (struct smid_job *)sj;
	struct store	*st = ctx;

	if (store_smid_block(st, j->uid, &j->base) != STORE_OK) {
		job_fail(&j->err, "taking a block of message ids", st);
		j->base = 0;
	}
}

static void
smid_done(struct workq_job *sj)
{
	struct smid_job	*j = (struct smid_job *)sj;

	/* none: a chat that finds no block claims its own (chat_route.c) */
	if (j->err != NULL)
		log_warnx("%s", j->err);
	chat_smid_spare(j->base);
	free(j->err);
	free(j);
}

void
smid_block_submit(int32_t uid)
{
	struct smid_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		chat_smid_spare(0);
		return;
	}
	j->uid = uid;
	j->sj.run = smid_run;
	j->sj.done = smid_done;
	storeq_submit(chat.storeq, &j->sj);
}

/* ---- what a login reads ------------------------------------------------ */

uint64_t
chat_stores_done(void)
{
	return stores_done;
}

void
chat_stores_note(void)
{
	stores_done++;
}

struct login_job {
	struct workq_job	 sj;
	struct conn		*c;
	login_data_cb		*cb;
	void			*arg;
	struct login_data	 d;
	char			*err;
};

static void
login_data_run(struct workq_job *sj, void *ctx)
{
	struct login_job	*j = (struct login_job *)sj;
	struct login_data	*d = &j->d;
	struct store		*st = ctx;
	const char		*what = "login";
	int			 snap;

	/* two reads or more: one snapshot, one set of locks */
	snap = d->check_gen + d->want_user + 3 * d->want_lists +
	    (d->want_gen && !d->check_gen) + d->want_msgs > 1;
	d->rc = STORE_OK;
	if (snap)
		store_read_begin(st);
	if (d->check_gen) {
		/* first: a revoked token reads nothing else */
		what = "token generation";
		if ((d->rc = store_token_gen(st, d->uid, &d->gen)) ==
		    STORE_OK && d->gen != d->token_gen) {
			d->revoked = 1;
			goto out;
		}
	}
	if (d->rc == STORE_OK && d->want_user) {
		what = "looking up a user";
		d->rc = d->name != NULL ? store_user_by_name(st, d->name,
		    d->name_len, &d->user) : store_user_get(st, d->uid,
		    &d->user);
		if (d->rc == STORE_NOTFOUND)
			goto out;
	}
	if (d->rc == STORE_OK && d->want_lists) {
		what = "friends and groups";
		if ((d->rc = store_friends(st, d->uid, &d->friends)) ==
		    STORE_OK)
			d->rc = store_user_groups(st, d->uid, &d->groups);
		/* the block list too: deliveries then never read it on the
		 * loop */
		if (d->rc == STORE_OK) {
			what = "block list";
			d->rc = store_blocks(st, d->uid, &d->blocks);
			d->blocks_read = d->rc == STORE_OK;
		}
	}
	if (d->rc == STORE_OK && d->want_gen && !d->check_gen) {
		what = "token generation";
		d->rc = store_token_gen(st, d->uid, &d->gen);
	}
	if (d->rc == STORE_OK && d->want_msgs) {
		what = "offline messages";
		d->rc = store_offline_fetch(st, d->uid, d->max_msgs, &d->msgs);
	}
	if (d->rc != STORE_OK) {
		job_fail(&j->err, what, st);
		d->rc = STORE_ERR;
	}
out:
	if (snap)
		store_read_end(st);
}

static void
login_data_done(struct workq_job *sj)
{
	struct login_job	*j = (struct login_job *)sj;
	struct login_data	*d = &j->d;

	if (j->err != NULL)
		log_warnx("login of %d: %s", (int)d->uid, j->err);
	/* the callback resumes c (or hands it to the next step) */
	conn_unref(j->c);
	j->cb(j->c, d, j->arg);
	store_user_clear(&d->user);
	store_user_list_free(&d->friends);
	store_group_list_free(&d->groups);
	store_user_list_free(&d->blocks);
	store_msg_list_free(&d->msgs);
	free(d->name);
	free(j->err);
	free(j);
}

int
login_data_submit(struct conn *c, const struct login_data *want,
    const char *name, size_t name_len, login_data_cb *cb, void *arg)
{
	struct login_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->d = *want;
	if (name != NULL) {
		if ((j->d.name = malloc(name_len + 1)) == NULL) {
			free(j);
			return -1;
		}
		memcpy(j->d.name, name, name_len);
		j->d.name[name_len] = '\0';
		j->d.name_len = name_len;
	}
	j->d.stores_seen = stores_done;
	j->c = c;
	j->cb = cb;
	j->arg = arg;
	j->sj.run = login_data_run;
	j->sj.done = login_data_done;
	job_hold(c);
	/* a batch: behind a removal of the last one still under way */
	storeq_submit(want->want_msgs ? offline_fetch_queue(want->uid) :
	    chat.storeq_read != NULL ? chat.storeq_read : chat.storeq,
	    &j->sj);
	return 0;
}
