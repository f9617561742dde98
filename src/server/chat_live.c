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

void
handle_typing(struct conn *c, const struct proto_req *req)
{
	struct session	*s = c->sess;
	struct buf	 line = BUF_INIT;
	const int32_t	*ids = &req->toid;
	int32_t		*owned = NULL;
	size_t		 i, n = 1;
	double		 now = util_mono_coarse();

	/* more often is pointless to show: dropped, not an error */
	if (s->typing_at != 0 && now - s->typing_at < TYPING_INTERVAL)
		return;
	if (req->groupid != 0 &&
	    group_members(c, req, 1, NULL, &ids, &n, &owned) == -1)
		return;
	s->typing_at = now;
	if (proto_put_typing(&line, s->uid, s->name, s->name_len, req->toid,
	    req->groupid) == -1 || buf_append(&line, "\n", 1) == -1) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	for (i = 0; i < n; i++)
		if (ids[i] != s->uid)
			relay_live(ids[i], buf_head(&line), buf_used(&line));
out:
	free(owned);
	buf_free(&line);
}

void
handle_read(struct conn *c, const struct proto_req *req)
{
	struct session	*s = c->sess;
	struct buf	 line = BUF_INIT;
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
	if (!user_known(req->toid) && !user_online(req->toid)) {
		struct store_user u;

		memset(&u, 0, sizeof(u));
		if (store_user_get(chat.store, req->toid, &u) != STORE_OK) {
			chat_error(c, MSG_ERROR, ERR_NO_SUCH_USER, req->msgid,
			    NULL);
			return;
		}
		store_user_clear(&u);
		user_known_add(req->toid);
	}
	if (proto_put_read(&line, s->uid, s->name, s->name_len, req->toid,
	    req->upto) == -1) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	chat_notify(c, req->msgid, &req->toid, 1, &line);
out:
	buf_free(&line);
}
