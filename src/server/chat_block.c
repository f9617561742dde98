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
#include "util.h"

#define CHAT_MAX_BLOCKS	1000	/* users one user may block */

int
session_blocks_set(struct session *s, const struct store_user_list *l)
{
	int32_t	*v;
	size_t	 i;

	if ((v = calloc(l->n + 1, sizeof(*v))) == NULL)
		return -1;
	for (i = 0; i < l->n; i++)
		v[i] = l->v[i].id;
	free(s->blocked);
	s->blocked = v;
	s->nblocked = l->n;
	s->blocks_loaded = 1;
	return 0;
}

/*
 * Chats that came before the session's block list (an adopted session
 * whose read is not back, a login that could not keep its list, or a
 * read that failed): they wait here, in order, while the list is read
 * in the read store thread, never on the loop.
 */
struct held_chat {
	struct held_chat	*next;
	int64_t			 smid;	/* > 0: stored already */
	size_t			 len;
	char			 line[];	/* with its "\n" */
};

struct blocks_wait {
	struct held_chat	*head, **tail;
	size_t			 n, bytes;
	int32_t			 uid;		/* whose chats they are */
	double			 retry_at;	/* a read failed: not before */
};

#define HELD_MAX_CHATS	1024
#define HELD_MAX_BYTES	(1024 * 1024)
#define BLOCKS_RETRY_SEC 2.0

static int
blocked_by(const struct session *s, const char *line, size_t len)
{
	int32_t		 sender;
	size_t		 i;

	if (s->nblocked == 0 ||
	    (sender = proto_line_sender(line, len, NULL)) == 0)
		return 0;
	for (i = 0; i < s->nblocked; i++)
		if (s->blocked[i] == sender)
			return 1;
	return 0;
}

void
session_blocks_free(struct session *s)
{
	struct blocks_wait	*bw = s->blocks_wait;
	struct held_chat	*h;

	free(s->blocked);
	s->blocked = NULL;
	s->nblocked = 0;
	s->blocks_loaded = 0;
	s->blocks_fetching = 0;	/* a read for this user answers nobody */
	if (bw == NULL)
		return;
	/* the session ends first: what was never written is kept (those
	 * with an smid are stored already) */
	while ((h = bw->head) != NULL) {
		bw->head = h->next;
		if (h->smid == 0)
			(void)chat_keep_offline_later(bw->uid, h->line,
			    h->len - 1);
		free(h);
	}
	free(bw);
	s->blocks_wait = NULL;
}

/* The held chats go, in order; filter: not those s's user blocks. */
static void
held_flush(struct conn *c, int filter)
{
	struct session		*s = c->sess;
	struct blocks_wait	*bw = s->blocks_wait;
	struct held_chat	*h;

	while ((h = bw->head) != NULL && !c->closing) {
		bw->head = h->next;
		bw->n--;
		bw->bytes -= h->len;
		if (!filter || !blocked_by(s, h->line, h->len))
			session_deliver(c, h->smid, h->line, h->len);
		free(h);
	}
	if (bw->head == NULL)
		bw->tail = &bw->head;
}

/* Hold a chat until the list is in: BLOCK_HELD, or BLOCK_PASS (unheld). */
static enum block_verdict
blocks_hold(struct conn *c, int64_t smid, const char *line, size_t len)
{
	struct session		*s = c->sess;
	struct blocks_wait	*bw = s->blocks_wait;
	struct held_chat	*h;

	if (bw == NULL) {
		if ((bw = calloc(1, sizeof(*bw))) == NULL)
			return BLOCK_PASS;
		bw->tail = &bw->head;
		bw->uid = s->uid;
		s->blocks_wait = bw;
	}
	/*
	 * As before the list could be read off the loop: while the store
	 * fails (and past these bounds) a chat is delivered unfiltered
	 * rather than delayed without end.
	 */
	if (bw->n == 0 && !s->blocks_fetching &&
	    bw->retry_at > util_mono_coarse())
		return BLOCK_PASS;
	if (bw->n >= HELD_MAX_CHATS || bw->bytes + len > HELD_MAX_BYTES ||
	    (h = malloc(sizeof(*h) + len)) == NULL) {
		held_flush(c, 0);	/* in order, unfiltered */
		return BLOCK_PASS;
	}
	h->next = NULL;
	h->smid = smid;
	h->len = len;
	memcpy(h->line, line, len);
	*bw->tail = h;
	bw->tail = &h->next;
	bw->n++;
	bw->bytes += len;
	/* queued first: without store threads the read answers at once */
	if (!s->blocks_fetching && session_blocks_fetch(c) == -1)
		held_flush(c, 0);
	return BLOCK_HELD;
}

enum block_verdict
session_blocks(struct conn *c, int64_t smid, const char *line, size_t len)
{
	struct session	*s = c->sess;

	if (s == NULL || s->uid == 0)
		return BLOCK_PASS;
	/* behind the held ones, even once a block request set the list */
	if (!s->blocks_loaded || (s->blocks_wait != NULL &&
	    s->blocks_wait->n > 0))
		return blocks_hold(c, smid, line, len);
	return blocked_by(s, line, len) ? BLOCK_DROP : BLOCK_PASS;
}

/* The read is back (or failed): the held chats go, in order. */
static void
blocks_release(struct conn *c)
{
	struct session		*s = c->sess;
	struct blocks_wait	*bw = s->blocks_wait;

	s->blocks_fetching = 0;
	if (bw == NULL)
		return;
	if (!s->blocks_loaded)
		bw->retry_at = util_mono_coarse() + BLOCKS_RETRY_SEC;
	held_flush(c, s->blocks_loaded);
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

/* Removing a friend, blocking, block lists: in a store thread. */
struct block_call {
	struct chat_call	 k;
	struct store_user_list	 l;	/* the user's blocks, after */
	int			 loaded;	/* l read */
	int			 want_gen;	/* and the token generation */
	int			 has_gen;
	uint64_t		 gen;
};

static void
block_call_release(struct chat_call *k)
{
	struct block_call	*b = (struct block_call *)k;

	store_user_list_free(&b->l);
	free(b);
}

static struct block_call *
block_call_new(struct conn *c, const struct proto_req *req,
    void (*run)(struct chat_call *, struct store *),
    void (*answer)(struct conn *, struct chat_call *))
{
	return (struct block_call *)chat_call_new(c, req->msgid,
	    sizeof(struct block_call), run, answer, block_call_release);
}

static void
friend_remove_run(struct chat_call *k, struct store *st)
{
	int	 rc;

	rc = store_friend_remove(st, k->uid, k->req.friendid);
	if (rc == STORE_NOTFOUND) {
		k->code = ERR_NOT_ALLOWED;
		k->text = "not friends";
	} else if (rc != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "remove friend");
}

static void
friend_removed(struct conn *c, struct chat_call *k)
{
	struct buf	 line = BUF_INIT;
	int32_t		 fid = k->req.friendid;

	if (c == NULL || k->code != 0)
		return;
	/* the other side sees it too, now or at its next login; answered
	 * once it is stored */
	if (proto_put_friend_notice(&line, k->uid, time(NULL)) == 0)
		chat_notify(c, k->refmsgid, &fid, 1, &line, &k->req);
	else
		chat_done(c, &k->req);
	buf_free(&line);
}

void
handle_friend_remove(struct conn *c, struct proto_req *req)
{
	struct block_call	*b;

	if ((b = block_call_new(c, req, friend_remove_run,
	    friend_removed)) != NULL)
		chat_call_submit(c, &b->k, req, CALL_WRITE, 1);
}

static void
block_run(struct chat_call *k, struct store *st)
{
	struct block_call	*b = (struct block_call *)k;
	int			 rc, on = k->refmsgid == MSG_BLOCK;

	if (store_blocks(st, k->uid, &b->l) != STORE_OK) {
		chat_call_fail(k, st, ERR_UNAVAILABLE, "block");
		return;
	}
	/* the list is searched on every delivery: keep it short */
	if (on && b->l.n >= CHAT_MAX_BLOCKS) {
		k->code = ERR_LIMIT;
		k->text = "too many blocked users";
		return;
	}
	store_user_list_free(&b->l);
	rc = store_block(st, k->uid, k->req.userid, on);
	if (rc == STORE_NOTFOUND)
		k->code = ERR_NO_SUCH_USER;
	else if (rc != STORE_OK || store_blocks(st, k->uid, &b->l) != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "block");
	else
		b->loaded = 1;
}

static void
blocked_now(struct conn *c, struct chat_call *k)
{
	struct block_call	*b = (struct block_call *)k;

	if (c == NULL || !b->loaded)
		return;
	/* deliveries to c check the new list from now on */
	if (session_blocks_set(c->sess, &b->l) == -1)
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, k->refmsgid, NULL);
	else
		chat_done(c, &k->req);
}

void
handle_block(struct conn *c, struct proto_req *req)
{
	struct block_call	*b;

	if (req->userid == c->sess->uid) {
		chat_error(c, MSG_ERROR, ERR_NOT_ALLOWED, req->msgid,
		    "you cannot block yourself");
		return;
	}
	if ((b = block_call_new(c, req, block_run, blocked_now)) != NULL)
		chat_call_submit(c, &b->k, req, CALL_WRITE, 1);
}

static void
block_list_run(struct chat_call *k, struct store *st)
{
	struct block_call	*b = (struct block_call *)k;

	if (store_blocks(st, k->uid, &b->l) != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "block list");
}

static void
block_list_answer(struct conn *c, struct chat_call *k)
{
	struct block_call	*b = (struct block_call *)k;
	struct proto_user	*v;
	size_t			 i;

	if (c == NULL || k->code != 0)
		return;
	if ((v = calloc(b->l.n + 1, sizeof(*v))) == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, k->refmsgid, NULL);
		return;
	}
	for (i = 0; i < b->l.n; i++) {
		v[i].id = b->l.v[i].id;
		chat_str_set(&v[i].name, b->l.v[i].name, b->l.v[i].name_len);
	}
	if (proto_put_blocks(&c->out, v, b->l.n) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
	free(v);
}

/* code 0: a failure is only logged (the next delivery reads again) */
static void
blocks_fetch_run(struct chat_call *k, struct store *st)
{
	struct block_call	*b = (struct block_call *)k;

	if (store_blocks(st, k->uid, &b->l) != STORE_OK)
		chat_call_fail(k, st, 0, "block list");
	else
		b->loaded = 1;
	if (b->want_gen && store_token_gen(st, k->uid, &b->gen) == STORE_OK)
		b->has_gen = 1;
}

/* The list read, unless a block request of c's set a newer one. */
static void
blocks_fetched(struct conn *c, struct chat_call *k)
{
	struct block_call	*b = (struct block_call *)k;

	if (c == NULL)
		return;
	if (b->loaded && !c->sess->blocks_loaded)
		(void)session_blocks_set(c->sess, &b->l);
	if (b->has_gen && !c->sess->has_gen) {
		c->sess->token_gen = b->gen;
		c->sess->has_gen = 1;
	}
	blocks_release(c);
}

int
session_blocks_fetch(struct conn *c)
{
	struct block_call	*b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -1;
	b->k.run = blocks_fetch_run;
	b->k.answer = blocks_fetched;
	b->k.release = block_call_release;
	b->k.refmsgid = MSG_BLOCK_LIST;
	b->want_gen = !c->sess->has_gen && chat.cfg->token_key != NULL;
	c->sess->blocks_fetching = 1;
	/* nobody waits: c is not paused, and a failure is only logged */
	chat_call_submit(c, &b->k, NULL, CALL_READ, 0);
	return 0;
}

void
handle_block_list(struct conn *c, struct proto_req *req)
{
	struct block_call	*b;

	/* c waits for each of its block requests: they come first */
	if ((b = block_call_new(c, req, block_list_run,
	    block_list_answer)) != NULL)
		chat_call_submit(c, &b->k, req, CALL_READ, 1);
}
