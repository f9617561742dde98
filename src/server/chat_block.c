/*
 * chat_block.c - removing friends, and blocks: a blocked user's chats
 * and friend requests do not reach the one who blocked it, and the
 * sender is not told.
 *
 * The check is made where a chat reaches its recipient: a logged-in
 * recipient's session holds its block list (read on first need, kept
 * in step by its own block and unblock requests), so live delivery on
 * any worker or node costs no store query; a chat kept for later is
 * checked against the store's list of who blocks the sender.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "chat_impl.h"
#include "log.h"
#include "store.h"

#define CHAT_MAX_BLOCKS	1000	/* users one user may block */

/* Read c's block list into its session; -1 leaves it to be read again. */
static int
blocks_load(struct conn *c)
{
	struct session		*s = c->sess;
	struct store_user_list	 l = { NULL, 0 };
	int32_t			*v;
	size_t			 i;

	if (store_blocks(chat.store, s->uid, &l) != STORE_OK) {
		log_warnx("block list of %d: %s", (int)s->uid,
		    store_error(chat.store));
		return -1;
	}
	if ((v = calloc(l.n + 1, sizeof(*v))) == NULL) {
		store_user_list_free(&l);
		return -1;
	}
	for (i = 0; i < l.n; i++)
		v[i] = l.v[i].id;
	free(s->blocked);
	s->blocked = v;
	s->nblocked = l.n;
	s->blocks_loaded = 1;
	store_user_list_free(&l);
	return 0;
}

void
session_blocks_free(struct session *s)
{
	free(s->blocked);
	s->blocked = NULL;
	s->nblocked = 0;
	s->blocks_loaded = 0;
}

int
session_blocks(struct conn *c, const char *line, size_t len)
{
	struct session	*s = c->sess;
	int32_t		 sender;
	size_t		 i;

	if (s == NULL || s->uid == 0)
		return 0;
	if (!s->blocks_loaded && blocks_load(c) == -1)
		return 0;
	if (s->nblocked == 0 ||
	    (sender = proto_line_sender(line, len, NULL)) == 0)
		return 0;
	for (i = 0; i < s->nblocked; i++)
		if (s->blocked[i] == sender)
			return 1;
	return 0;
}

int
block_filter_in(struct store *st, int32_t sender, int32_t *uids, size_t *n)
{
	struct store_user_list	 l = { NULL, 0 };
	size_t			 i, j, k = 0;

	if (*n == 0 || sender == 0)
		return 0;
	if (store_blockers(st, sender, &l) != STORE_OK)
		return -1;
	for (i = 0; i < *n; i++) {
		for (j = 0; j < l.n; j++)
			if (l.v[j].id == uids[i])
				break;
		if (j == l.n)
			uids[k++] = uids[i];
	}
	*n = k;
	store_user_list_free(&l);
	return 0;
}

int
block_filter(int32_t sender, int32_t *uids, size_t *n)
{
	if (block_filter_in(chat.store, sender, uids, n) == -1) {
		log_warnx("who blocks %d: %s", (int)sender,
		    store_error(chat.store));
		return -1;
	}
	return 0;
}

enum blocked
blocked_by(int32_t uid, int32_t sender)
{
	int32_t	 one = uid;
	size_t	 n = 1;

	if (block_filter(sender, &one, &n) == -1)
		return BLOCKED_UNKNOWN;
	return n == 0 ? BLOCKED : BLOCKED_NOT;
}

static void
done(struct conn *c, const struct proto_req *req)
{
	if (proto_put_done(&c->out, req) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
}

void
handle_friend_remove(struct conn *c, const struct proto_req *req)
{
	struct buf	 line = BUF_INIT;
	int		 rc;

	rc = store_friend_remove(chat.store, c->sess->uid, req->friendid);
	if (rc == STORE_NOTFOUND) {
		chat_error(c, MSG_ERROR, ERR_NOT_ALLOWED, req->msgid,
		    "not friends");
		return;
	}
	if (rc != STORE_OK) {
		log_warnx("remove friend: %s", store_error(chat.store));
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return;
	}
	done(c, req);
	/* the other side sees it too, now or at its next login */
	if (proto_put_friend_notice(&line, c->sess->uid, time(NULL)) == 0)
		chat_notify(c, req->msgid, &req->friendid, 1, &line);
	buf_free(&line);
}

void
handle_block(struct conn *c, const struct proto_req *req)
{
	int	 rc;

	if (req->userid == c->sess->uid) {
		chat_error(c, MSG_ERROR, ERR_NOT_ALLOWED, req->msgid,
		    "you cannot block yourself");
		return;
	}
	if (!c->sess->blocks_loaded && blocks_load(c) == -1) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return;
	}
	/* the list is searched on every delivery to c: keep it short */
	if (req->msgid == MSG_BLOCK && c->sess->nblocked >= CHAT_MAX_BLOCKS) {
		chat_error(c, MSG_ERROR, ERR_LIMIT, req->msgid,
		    "too many blocked users");
		return;
	}
	rc = store_block(chat.store, c->sess->uid, req->userid,
	    req->msgid == MSG_BLOCK);
	if (rc == STORE_NOTFOUND) {
		chat_error(c, MSG_ERROR, ERR_NO_SUCH_USER, req->msgid, NULL);
		return;
	}
	if (rc != STORE_OK || blocks_load(c) == -1) {
		log_warnx("block: %s", store_error(chat.store));
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return;
	}
	done(c, req);
}

void
handle_block_list(struct conn *c, const struct proto_req *req)
{
	struct store_user_list	 l = { NULL, 0 };
	struct proto_user	*v;
	size_t			 i;

	if (store_blocks(chat.store, c->sess->uid, &l) != STORE_OK) {
		log_warnx("block list: %s", store_error(chat.store));
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return;
	}
	if ((v = calloc(l.n + 1, sizeof(*v))) == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	for (i = 0; i < l.n; i++) {
		v[i].id = l.v[i].id;
		chat_str_set(&v[i].name, l.v[i].name, l.v[i].name_len);
	}
	if (proto_put_blocks(&c->out, v, l.n) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
	free(v);
out:
	store_user_list_free(&l);
}
