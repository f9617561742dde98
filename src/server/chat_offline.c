/* chat_offline.c - stored messages: batches, offline acks, drained output. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "chat_impl.h"
#include "log.h"
#include "store.h"
#include "storeq.h"

/*
 * Messages were stored for uid after it logged in here: hand them over
 * like the tail of a long backlog at login, each batch removed from the
 * store once it sits in the output buffer.  A login still under way
 * (its session's uid not yet set) fetches them itself.
 */
void
chat_stored(void *arg, int32_t uid)
{
	struct conn	*c;

	if ((c = session_local(uid)) == NULL)
		return;
	/* behind a backlog kept for the next login: it waits with it */
	if (c->sess->backlog_held)
		return;
	/* a batch on its way: the new message follows with the next one */
	if (c->sess->offline_upto > 0) {
		c->sess->offline_more = 1;
		return;
	}
	/* a fetch under way may have looked before it was stored */
	if (c->sess->offline_busy) {
		c->sess->offline_again = 1;
		return;
	}
	offline_push(c);
}

/*
 * An offline backlog goes out in batches of at most
 * max_offline_per_login messages and a quarter of max_output_bytes.  A
 * client that acknowledges them (ackoffline) gets the next batch when it
 * acknowledged the last one; any other client gets one batch per login,
 * in the login answer (the seed client reads one JSON value per read
 * and cannot take more lines at once), and the rest at its next logins.
 * A batch is removed from the store only once it reached the kernel (or
 * was acknowledged), so a connection that drops (or a worker that dies)
 * meanwhile loses nothing.
 */
size_t
offline_fits(const struct store_msg_list *msgs)
{
	size_t	 i, bytes = 0, cap = chat.cfg->max_output_bytes / 4;

	for (i = 0; i < msgs->n; i++) {
		bytes += msgs->v[i].len + 1;
		if (bytes > cap && i > 0)
			break;
	}
	return i;
}

/* Whether more stored messages follow the first n of msgs. */
int
offline_more(const struct store_msg_list *msgs, size_t n)
{
	return n < msgs->n || (msgs->n > 0 &&
	    msgs->n == chat.cfg->max_offline_per_login);
}

/*
 * The first n of msgs were queued for c: remember what to remove, when
 * drained, or for an ackoffline client when it acknowledges them.
 */
void
offline_sent(struct conn *c, const struct store_msg_list *msgs, size_t n)
{
	struct session	*s = c->sess;

	s->offline_uid = s->uid;
	s->offline_upto = n > 0 ? msgs->v[n - 1].id : 0;
	s->offline_more = offline_more(msgs, n);
	if (s->offline_more && !s->ack_offline)
		s->backlog_held = 1;
	if (s->offline_upto > 0 && !s->ack_offline)
		c->want_drained = 1;
}

/* Remove the stored copies of acknowledged chats that reached c's socket. */
void
remove_delivered(struct conn *c)
{
	struct session	*s = c->sess;

	/* whose they are: the session may have logged out since */
	delivered_remove_submit(NULL, 0, s->delivered_uid, s->delivered,
	    s->ndelivered);
	s->ndelivered = 0;
}

/*
 * RECEIVED from an "acks" client: the stored copies of the chats it
 * names that were delivered here go now.  Other smids (plain chats,
 * which have no stored copy, or unknown ones) are ignored.
 */
void
handle_received(struct conn *c, const struct proto_req *req)
{
	struct session	*s = c->sess;
	size_t		 i, j, k = 0;

	if (!s->acks) {
		chat_error(c, MSG_ERROR, ERR_NOT_ALLOWED, req->msgid,
		    "log in with \"acks\":true first");
		return;
	}
	/* the ones delivered here, taken off the list, go in a store thread */
	for (i = 0; i < req->nsmids; i++) {
		for (j = 0; j < s->ndelivered; j++)
			if (s->delivered[j] == req->smids[i])
				break;
		if (j == s->ndelivered)
			continue;
		req->smids[k++] = req->smids[i];
		s->delivered[j] = s->delivered[--s->ndelivered];
	}
	delivered_remove_submit(c, req->msgid, s->uid, req->smids, k);
}

/*
 * Stored batches are removed (write store thread) and fetched (read
 * store thread) off the loop; s->offline_busy while one of them is
 * under way, which keeps its batch's offline_upto set meanwhile.
 */
struct offline_job {
	struct workq_job	 sj;
	struct conn		*c;
	int			 refmsgid;	/* OFFLINE_ACK: c waits */
	int32_t			 uid;
	uint32_t		 gen;		/* s->offline_gen at submit */
	int64_t			 upto;		/* delete: up to this */
	int			 failed;
	char			*err;
	struct store_msg_list	 msgs;		/* fetch */
};

/*
 * While a removal of uid's stored copies is under way here (a batch, or
 * chats delivered live: leave_held), its next fetch goes to the write
 * store thread behind it, or a quick new login could be handed the same
 * copies again (the read thread does not wait for writes).  A login on
 * another worker waits for the leaving mark instead (chat_leave.c).
 */
struct storeq *
offline_fetch_queue(int32_t uid)
{
	if (leave_held(uid))
		return chat.storeq;
	return chat.storeq_read != NULL ? chat.storeq_read : chat.storeq;
}

static struct offline_job *
offline_job_new(struct conn *c, int32_t uid, void (*run)(struct workq_job *,
    void *), void (*done)(struct workq_job *))
{
	struct offline_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->c = c;
	j->uid = uid;
	j->gen = c->sess->offline_gen;
	j->sj.run = run;
	j->sj.done = done;
	c->jobs++;
	c->sess->offline_busy = 1;
	return j;
}

static void
offline_job_free(struct offline_job *j)
{
	store_msg_list_free(&j->msgs);
	free(j->err);
	free(j);
}

static void
delete_run(struct workq_job *sj, void *ctx)
{
	struct offline_job	*j = (struct offline_job *)sj;
	struct store		*st = ctx;

	if (store_offline_delete(st, j->uid, j->upto) != STORE_OK) {
		j->failed = 1;
		j->err = strdup(store_error(st));
	}
}

/* What follows a removed batch (or none) for a client that drained it. */
static void
offline_next(struct conn *c)
{
	struct session	*s = c->sess;

	s->offline_upto = 0;
	if (!s->offline_more || s->uid != s->offline_uid || s->backlog_held) {
		c->want_drained = 0;
		return;
	}
	offline_push(c);
}

static void
delete_done(struct workq_job *sj)
{
	struct offline_job	*j = (struct offline_job *)sj;
	struct conn		*c = j->c;
	struct session		*s = c->sess;

	/* not removed: the batch comes again (same ids) at the next login */
	if (j->failed)
		log_warnx("removing delivered offline messages of %d: %s",
		    (int)j->uid, j->err != NULL ? j->err : "out of memory");
	leave_release(j->uid);
	conn_unref(c);
	if (c->closing)
		goto out;
	/* the session logged out meanwhile: nothing here is its business */
	if (j->gen != s->offline_gen) {
		if (j->refmsgid != 0)
			conn_resume(c);
		goto out;
	}
	s->offline_busy = 0;
	if (j->refmsgid == 0)
		offline_next(c);
	else {
		if (j->failed)
			chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, j->refmsgid,
			    NULL);
		else {
			s->offline_upto = 0;
			if (s->offline_more)
				offline_push(c);
		}
		conn_resume(c);
	}
out:
	offline_job_free(j);
}

/* Remove uid's batch up to upto; refmsgid: an OFFLINE_ACK's (c waits). */
static int
delete_submit(struct conn *c, int refmsgid, int32_t uid, int64_t upto)
{
	struct offline_job	*j;

	if ((j = offline_job_new(c, uid, delete_run, delete_done)) == NULL)
		return -1;
	j->refmsgid = refmsgid;
	j->upto = upto;
	leave_hold(uid);
	if (refmsgid != 0)
		conn_pause(c);
	storeq_submit(chat.storeq, &j->sj);
	return 0;
}

/* An ackoffline client read offline messages up to req->upto. */
void
handle_offline_ack(struct conn *c, const struct proto_req *req)
{
	struct session	*s = c->sess;

	if (!s->ack_offline) {
		chat_error(c, MSG_ERROR, ERR_NOT_ALLOWED, req->msgid,
		    "log in with \"ackoffline\":true first");
		return;
	}
	if (s->offline_upto == 0 || req->upto < s->offline_upto) {
		chat_error(c, MSG_ERROR, ERR_BAD_VALUE, req->msgid,
		    "\"upto\" is not the last \"offlineupto\" sent");
		return;
	}
	if (s->offline_busy) {
		/* the batch is still being fetched: cannot be this one */
		chat_error(c, MSG_ERROR, ERR_BAD_VALUE, req->msgid,
		    "\"upto\" is not the last \"offlineupto\" sent");
		return;
	}
	if (delete_submit(c, req->msgid, s->uid, s->offline_upto) == -1)
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
}

static void
drained(struct conn *c)
{
	struct session	*s = c->sess;

	/* an "acks" client says itself what it has (RECEIVED) */
	if (!s->acks)
		remove_delivered(c);
	if (s->ack_offline) {
		c->want_drained = 0;
		return;
	}
	if (s->offline_busy)
		return;		/* its done() goes on from there */
	if (s->offline_upto > 0 && delete_submit(c, 0, s->offline_uid,
	    s->offline_upto) == 0)
		return;
	offline_next(c);
}

void
chat_drained(struct conn *c)
{
	drained(c);
	/* a logout's mark waits for the removals just submitted */
	leave_drained(c);
}

/*
 * Queue c's next batch of stored messages (msgs): as plain lines, or as
 * one OFFLINE_BATCH for a client that acknowledges them.
 */
static void
offline_write(struct conn *c, const struct store_msg_list *msgs)
{
	struct session		*s = c->sess;
	struct proto_str	*om = NULL;
	unsigned char		*skip;
	size_t			 i, k = 0, n, left;
	int			 rc = 0;

	n = offline_fits(msgs);
	/* what this plain client had already (live) is not written again;
	 * it goes from the store with the batch */
	if ((skip = calloc(n + 1, 1)) == NULL) {
		conn_close(c, "out of memory");
		return;
	}
	left = seen_filter(s, msgs, n, skip);
	if (s->ack_offline && n > 0) {
		if ((om = calloc(n, sizeof(*om))) == NULL)
			rc = -1;
		for (i = 0; rc == 0 && i < n; i++)
			if (!skip[i])
				chat_str_set(&om[k++], msgs->v[i].text,
				    msgs->v[i].len);
		if (rc == 0)
			rc = proto_put_offline_batch(&c->out, om, k,
			    msgs->v[n - 1].id, offline_more(msgs, n));
	} else {
		for (i = 0; rc == 0 && i < n; i++)
			if (!skip[i] && (buf_append(&c->out, msgs->v[i].text,
			    msgs->v[i].len) == -1 ||
			    buf_append(&c->out, "\n", 1) == -1))
				rc = -1;
	}
	if (rc == -1)
		conn_close(c, "out of memory");
	else if (n > 0 && conn_sent(c) == 0) {
		chat_stat(&chat.stats->msgs_out, left);
		offline_sent(c, msgs, n);
	}
	free(skip);
	free(om);
}

static void
fetch_run(struct workq_job *sj, void *ctx)
{
	struct offline_job	*j = (struct offline_job *)sj;
	struct store		*st = ctx;

	if (store_offline_fetch(st, j->uid, chat.cfg->max_offline_per_login,
	    &j->msgs) != STORE_OK) {
		j->failed = 1;
		j->err = strdup(store_error(st));
	}
}

static void
fetch_done(struct workq_job *sj)
{
	struct offline_job	*j = (struct offline_job *)sj;
	struct conn		*c = j->c;
	struct session		*s = c->sess;
	int			 again;

	conn_unref(c);
	/* gone, or logged out since: they stay stored for the next login */
	if (c->closing || j->gen != s->offline_gen)
		goto out;
	again = s->offline_again;
	s->offline_busy = 0;
	s->offline_again = 0;
	if (j->failed) {
		log_warnx("offline messages of %d: %s", (int)j->uid,
		    j->err != NULL ? j->err : "out of memory");
		c->want_drained = 0;
		goto out;
	}
	offline_write(c, &j->msgs);
	/* stored while this fetch was under way: next, or with the next */
	if (again && !c->closing) {
		if (s->offline_upto > 0)
			s->offline_more = 1;
		else
			offline_push(c);
	}
out:
	offline_job_free(j);
}

/*
 * Fetch c's next batch in the read store thread, then queue it
 * (offline_write).  c goes on meanwhile: live chats may reach it first.
 */
void
offline_push(struct conn *c)
{
	struct session		*s = c->sess;
	struct offline_job	*j;

	if (s->offline_busy) {
		s->offline_again = 1;
		return;
	}
	if ((j = offline_job_new(c, s->uid, fetch_run, fetch_done)) == NULL) {
		/* they stay stored for the next login */
		log_warnx("offline messages of %d: out of memory", s->uid);
		c->want_drained = 0;
		return;
	}
	storeq_submit(offline_fetch_queue(s->uid), &j->sj);
}

/*
 * Nothing of s's stored messages under way: no batch being fetched, in
 * the output or waiting for its removal, none held back for the next
 * login, no delivered copy left to remove.  What is stored for the user
 * after this comes with a nudge to its slot (stored_nudge).
 */
int
offline_settled(const struct session *s)
{
	return s->offline_upto == 0 && !s->offline_busy && !s->offline_more &&
	    !s->offline_again && !s->backlog_held && s->ndelivered == 0;
}
