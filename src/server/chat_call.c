/*
 * chat_call.c - requests answered from store calls made in a store
 * thread (storeq.h), so that a locked SQLite file or a stalled MySQL
 * server holds up only the connection that asked.
 *
 * The connection is paused and referenced while its call runs, as for
 * a login or an acknowledged chat: requests it sends meanwhile wait in
 * its input and are answered after this one, in order.  Back on the
 * loop the answer is written only if the session that asked is still
 * there (not closing, same user); what the call stored stays stored.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_impl.h"
#include "log.h"
#include "store.h"
#include "storeq.h"

void
chat_call_fail(struct chat_call *k, struct store *st, int code,
    const char *what)
{
	const char	*e = st != NULL ? store_error(st) : "out of memory";
	size_t		 n;

	k->code = code;
	if (k->err != NULL)
		return;
	n = strlen(what) + strlen(e) + 3;
	if ((k->err = malloc(n)) != NULL)
		snprintf(k->err, n, "%s: %s", what, e);
}

static void
call_run(struct workq_job *sj, void *ctx)
{
	struct chat_call	*k = (struct chat_call *)sj;

	k->run(k, ctx);
}

static void
call_done(struct workq_job *sj)
{
	struct chat_call	*k = (struct chat_call *)sj;
	struct conn		*c = k->c;
	int			 here, held;

	if (k->err != NULL)
		log_warnx("%s", k->err);
	if (k->lane == CALL_HISTWRITE)
		chat_history_calls(-1);
	conn_unref(c);
	here = !c->closing && c->sess != NULL && c->sess->uid == k->uid;
	if (here && k->code != 0)
		chat_error(c, k->reply_msgid, k->code, k->refmsgid, k->text);
	held = c->jobs;
	if (k->answer != NULL)
		k->answer(here ? c : NULL, k);
	/* an answer that handed c on (a hash, a store, a publish) leaves
	 * it paused: what it waits for resumes it; go_on: nothing will */
	if (!c->closing && k->paused && (c->jobs == held || k->go_on))
		conn_resume(c);
	free(k->err);
	proto_req_clear(&k->req);
	if (k->release != NULL)
		k->release(k);
	else
		free(k);
}

void
chat_call_replay(struct conn *c, struct chat_call *k,
    void (*handle)(struct conn *, struct proto_req *))
{
	/* unpaused, so that whatever it waits for next pauses it again */
	c->paused = 0;
	handle(c, &k->req);
	if (!c->closing && !c->paused) {
		conn_pause(c);
		k->go_on = 1;	/* nothing did: call_done resumes it */
	}
}

struct chat_call *
chat_call_new(struct conn *c, int refmsgid, size_t size,
    void (*run)(struct chat_call *, struct store *),
    void (*answer)(struct conn *, struct chat_call *),
    void (*release)(struct chat_call *))
{
	struct chat_call	*k;

	if ((k = calloc(1, size)) == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, refmsgid, NULL);
		return NULL;
	}
	k->refmsgid = refmsgid;
	k->run = run;
	k->answer = answer;
	k->release = release;
	return k;
}

void
chat_call_submit(struct conn *c, struct chat_call *k, struct proto_req *req,
    enum call_lane lane, int pause)
{
	k->c = c;
	k->uid = c->sess->uid;
	if (req != NULL) {
		/* the job's now: the caller's clear frees nothing */
		k->req = *req;
		memset(req, 0, sizeof(*req));
		k->refmsgid = k->req.msgid;
	}
	if (k->reply_msgid == 0)
		k->reply_msgid = MSG_ERROR;
	k->paused = pause != 0;
	k->sj.run = call_run;
	k->sj.done = call_done;
	k->lane = lane;
	c->jobs++;
	if (pause)
		conn_pause(c);
	/* a history read waits for the rows this node's workers hold */
	if (lane == CALL_HISTORY &&
	    (chat_barrier_hold(k) == 0 || chat_history_hold(k) == 0))
		return;
	chat_call_go(k);
}

void
chat_call_go(struct chat_call *k)
{
	struct storeq	*q = chat.storeq;

	if (k->lane == CALL_HISTWRITE) {
		q = chat_history_q();
		chat_history_calls(1);
	} else if (k->lane != CALL_WRITE && k->c->closing) {
		call_done(&k->sj);	/* a read nobody waits for */
		return;
	} else if (k->lane != CALL_WRITE && chat.storeq_read != NULL)
		q = chat.storeq_read;
	if (q == NULL) {
		/* no store thread (a tool, a test): on the loop, as before */
		call_run(&k->sj, chat.store);
		call_done(&k->sj);
		return;
	}
	storeq_submit(q, &k->sj);
}
