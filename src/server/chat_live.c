/*
 * chat_live.c - typing notices (relayed live, never stored, at most one
 * per TYPING_INTERVAL per user) and read receipts ("read up to smid N",
 * relayed to the other side like a notice).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "chat_impl.h"
#include "log.h"
#include "pubsub.h"
#include "store.h"
#include "util.h"

#define TYPING_INTERVAL	1.0	/* seconds between two typing notices */
#define READ_INTERVAL	0.2	/* seconds between two read receipts */

/* A typing notice Redis could not hand over is simply gone. */
static void
typing_published(void *arg, int32_t uid, enum pubsub_sent sent,
    const char *line, size_t len)
{
}

/* Hand line (with newline) to uid if it is online, here or elsewhere. */
static void
relay_live(int32_t uid, const char *line, size_t len)
{
	if (deliver_live(uid, line, len) == DELIVER_OK)
		return;
	if (chat.pubsub != NULL && !user_online(uid))
		pubsub_publish(chat.pubsub, uid, line, len, typing_published,
		    NULL);
}

/* A group's members or a user read for a notice, in the read thread. */
struct live_call {
	struct chat_call	 k;
	struct store_user_list	 members;
};

static void
live_release(struct chat_call *k)
{
	store_user_list_free(&((struct live_call *)k)->members);
	free(k);
}

static void
live_submit(struct conn *c, struct proto_req *req,
    void (*run)(struct chat_call *, struct store *),
    void (*answer)(struct conn *, struct chat_call *))
{
	struct chat_call	*k;

	if ((k = chat_call_new(c, req->msgid, sizeof(struct live_call), run,
	    answer, live_release)) != NULL)
		chat_call_submit(c, k, req, CALL_READ, 1);
}

static void
typing_send(struct conn *c, const struct proto_req *req, const int32_t *ids,
    size_t n)
{
	struct session	*s = c->sess;
	struct buf	 line = BUF_INIT;
	size_t		 i;

	for (i = 0; req->groupid != 0 && i < n && ids[i] != s->uid; i++)
		;
	if (req->groupid != 0 && i == n) {
		chat_error(c, MSG_ERROR, ERR_NOT_MEMBER, req->msgid,
		    "only members may post to a group");
		return;
	}
	if (proto_put_typing(&line, s->uid, s->name, s->name_len, req->toid,
	    req->groupid) == -1 || buf_append(&line, "\n", 1) == -1) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	for (i = 0; i < n; i++)
		if (ids[i] != s->uid)
			relay_live(ids[i], buf_head(&line), buf_used(&line));
out:
	buf_free(&line);
}

static void
typing_run(struct chat_call *k, struct store *st)
{
	int	 rc;

	rc = store_group_members(st, k->req.groupid,
	    &((struct live_call *)k)->members);
	if (rc == STORE_NOTFOUND)
		k->code = ERR_NO_SUCH_GROUP;
	else if (rc != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "typing");
}

static void
typing_answer(struct conn *c, struct chat_call *k)
{
	struct live_call	*l = (struct live_call *)k;
	int32_t			*ids;
	size_t			 i;

	if (c == NULL || k->code != 0)
		return;
	gcache_put(k->req.groupid, &l->members);
	if ((ids = calloc(l->members.n + 1, sizeof(*ids))) == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, k->refmsgid, NULL);
		return;
	}
	for (i = 0; i < l->members.n; i++)
		ids[i] = l->members.v[i].id;
	typing_send(c, &k->req, ids, l->members.n);
	free(ids);
}

void
handle_typing(struct conn *c, struct proto_req *req)
{
	struct session	*s = c->sess;
	const int32_t	*ids = &req->toid;
	size_t		 n = 1;
	double		 now = util_mono_coarse();

	/* more often is pointless to show: dropped, not an error */
	if (s->typing_at != 0 && now - s->typing_at < TYPING_INTERVAL)
		return;
	s->typing_at = now;
	/* a group not cached here: its members read in a store thread */
	if (req->groupid != 0 && gcache_get(req->groupid, &ids, &n) == -1)
		live_submit(c, req, typing_run, typing_answer);
	else
		typing_send(c, req, ids, n);
}

static void
read_send(struct conn *c, const struct proto_req *req)
{
	struct session	*s = c->sess;
	struct buf	 line = BUF_INIT;

	if (proto_put_read(&line, s->uid, s->name, s->name_len, req->toid,
	    req->upto) == -1)
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
	else
		chat_notify(c, req->msgid, &req->toid, 1, &line, NULL);
	buf_free(&line);
}

static void
read_run(struct chat_call *k, struct store *st)
{
	struct store_user	 u;
	int			 rc;

	memset(&u, 0, sizeof(u));
	rc = store_user_get(st, k->req.toid, &u);
	store_user_clear(&u);
	if (rc == STORE_NOTFOUND)
		k->code = ERR_NO_SUCH_USER;
	else if (rc != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "read receipt");
}

static void
read_answer(struct conn *c, struct chat_call *k)
{
	if (k->code != 0)
		return;
	user_known_add(k->req.toid);
	if (c != NULL)
		read_send(c, &k->req);
}

void
handle_read(struct conn *c, struct proto_req *req)
{
	struct session	*s = c->sess;
	double		 now = util_mono_coarse();

	if (req->toid == s->uid) {
		chat_error(c, MSG_ERROR, ERR_NOT_ALLOWED, req->msgid,
		    "a receipt goes to the other side");
		return;
	}
	/* each is kept for an absent sender: bound them */
	if (s->read_at != 0 && now - s->read_at < READ_INTERVAL) {
		chat_error(c, MSG_ERROR, ERR_RATE, req->msgid,
		    "read receipts too fast: send the latest only");
		return;
	}
	s->read_at = now;
	/* a user not seen here yet: looked up in a store thread */
	if (!user_known(req->toid) && !user_online(req->toid))
		live_submit(c, req, read_run, read_answer);
	else
		read_send(c, req);
}
