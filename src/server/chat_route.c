/* chat_route.c - one-to-one chats: live, through another worker or node
 * (Redis), stored for later; acknowledged chats ("cmid"). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "chat_impl.h"
#include "log.h"
#include "pubsub.h"
#include "store.h"
#include "util.h"

/*
 * Every chat carries a server message id, unique in the cluster, so
 * that a client can drop a repeat.  Plain chats take theirs from a
 * block this worker claimed in the store (one write per
 * STORE_SMID_BLOCK - 1 chats); acknowledged ones have their claim's.
 * The next block is claimed in a store thread when one is half used;
 * a chat that finds none (the first ones, or the store slow) waits
 * for its own claim there (smid_call), its sender paused.
 */
static int64_t	 smid_next, smid_end;
static int64_t	 smid_spare;		/* the next block's base, 0: none */
static int	 smid_fetching;		/* a store thread claims it */

/* An smid from the blocks at hand: 0, or -1 when there is none. */
static int
smid_take(int32_t sender, int64_t *smid)
{
	if (smid_next == smid_end) {
		if (smid_spare == 0)
			return -1;
		smid_next = smid_spare + 1;
		smid_end = smid_spare + STORE_SMID_BLOCK;
		smid_spare = 0;
	}
	/* half used: the next block is claimed off the loop meanwhile */
	if (smid_spare == 0 && !smid_fetching &&
	    smid_end - smid_next < STORE_SMID_BLOCK / 2) {
		smid_fetching = 1;
		smid_block_submit(sender);
	}
	*smid = smid_next++;
	return 0;
}

/* A block claimed (base > 0): in use when none is, else the spare. */
static void
smid_put(int64_t base)
{
	if (base <= 0)
		return;
	if (smid_next == smid_end) {
		smid_next = base + 1;
		smid_end = base + STORE_SMID_BLOCK;
	} else if (smid_spare == 0)
		smid_spare = base;
	/* else a block more than needed: its ids are never used */
}

void
chat_smid_spare(int64_t base)
{
	smid_fetching = 0;
	smid_put(base);
}

#define SMID_ERR	"no message id: the store is unavailable; send it " \
			"again later"

/* A plain chat that has its smid (one-to-one or group). */
static void
plain_chat_route(struct conn *c, struct proto_req *req)
{
	if (req->msgid == MSG_ONE_CHAT)
		handle_one_chat(c, req);
	else
		handle_group_chat(c, req);
}

/* A plain chat sent with smid: 0, or -1 answered (no memory). */
static int
plain_chat_stamp(struct conn *c, struct proto_req *req, int64_t smid)
{
	if (proto_req_set_smid(req, smid) == 0)
		return 0;
	chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
	return -1;
}

struct smid_call {
	struct chat_call	 k;
	int64_t			 base;		/* claimed, 0: failed */
};

static void
smid_call_run(struct chat_call *k, struct store *st)
{
	struct smid_call	*m = (struct smid_call *)k;

	if (store_smid_block(st, k->uid, &m->base) != STORE_OK) {
		m->base = 0;
		chat_call_fail(k, st, ERR_UNAVAILABLE, "taking a block of "
		    "message ids");
		k->text = SMID_ERR;
	}
}

static void
smid_call_answer(struct conn *c, struct chat_call *k)
{
	struct smid_call	*m = (struct smid_call *)k;
	int64_t			 smid;

	smid_put(m->base);
	if (c == NULL || k->code != 0)
		return;
	if (smid_take(k->uid, &smid) == -1) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, k->refmsgid,
		    SMID_ERR);
		return;
	}
	if (plain_chat_stamp(c, &k->req, smid) == 0)
		chat_call_replay(c, k, plain_chat_route);
}

void
handle_plain_chat(struct conn *c, struct proto_req *req)
{
	struct chat_call	*k;
	int64_t			 smid;

	if (smid_take(c->sess->uid, &smid) == 0) {
		if (plain_chat_stamp(c, req, smid) == 0)
			plain_chat_route(c, req);
		return;
	}
	if ((k = chat_call_new(c, req->msgid, sizeof(struct smid_call),
	    smid_call_run, smid_call_answer, NULL)) != NULL)
		chat_call_submit(c, k, req, CALL_WRITE, 1);
}

/* Whether a relayed line is an acknowledged chat (stored already). */
static int64_t
line_stored_smid(const char *line, size_t len)
{
	int64_t	 smid;

	/* only acknowledged chats carry "cmid": most lines skip the parse */
	if (memmem(line, len, "\"cmid\":", 7) == NULL)
		return 0;
	smid = proto_line_smid(line, len);
	return smid % STORE_SMID_BLOCK == 0 ? smid : 0;
}

/* Keep line (without its newline) for uids until they log in. */
int
chat_keep_offline(const int32_t *uids, size_t n, const char *line, size_t len)
{
	int32_t	*to, sender;
	int	 rc, msgid;

	if (n == 0)
		return 0;
	/* typing notices are live only; nothing for those who block the
	 * sender (chat_block.c) */
	sender = proto_line_sender(line, len, &msgid);
	if (msgid == MSG_TYPING)
		return 0;
	if ((to = calloc(n, sizeof(*to))) == NULL)
		return -1;
	memcpy(to, uids, n * sizeof(*to));
	if (block_filter(sender, to, &n) == -1) {
		free(to);
		return -1;
	}
	rc = n == 0 ? STORE_OK : store_offline_add(chat.store, to, n, line,
	    len);
	free(to);
	if (rc != STORE_OK) {
		log_warnx("storing an offline message for %zu user(s): %s", n,
		    store_error(chat.store));
		return -1;
	}
	if (n == 0)
		return 0;
	chat_stat(&chat.stats->offline_stored, n);
	/* one of them may have logged in after the sender looked */
	stored_nudge(uids, n);
	return 0;
}

/*
 * Hand line to uid's connection on another worker of this node, which
 * then owns it.  smid > 0: an acknowledged chat (stored already), whose
 * stored copy that worker removes once delivered.  0 or -1.
 */
static int
deliver_to_slot(const struct online_entry *e, int32_t uid, int64_t smid,
    const char *line, size_t len)
{
	struct chan_hdr		 h;

	memset(&h, 0, sizeof(h));
	h.type = CHAN_DELIVER;
	h.uid = uid;
	h.conn = e->conn;
	h.gen = e->gen;
	h.from_slot = chat.slot;
	h.len = len;
	h.smid = smid;
	return chat.to_slot(e->slot, &h, line);
}

/*
 * Deliver one forwarded line (ending in "\n") to uid if it is online on
 * this node: to this worker's connection, or to another worker that now
 * owns the message.
 */
enum deliver_result
deliver_live(int32_t uid, const char *line, size_t len)
{
	struct online_entry	 e;
	struct conn		*c;

	if (online_get(chat.online, uid, &e) == -1)
		return DELIVER_AWAY;
	if (e.slot == chat.slot) {
		if ((c = session_conn(e.conn, uid)) == NULL)
			return DELIVER_AWAY;
		/* blocked: dropped, silently; held: delivered later */
		if (session_blocks(c, 0, line, len) != BLOCK_PASS)
			return DELIVER_OK;
		switch (session_write(c, -1, line, len)) {
		case SEEN_FAILED:
			return DELIVER_REFUSED;
		case SEEN_WRITTEN:
			chat_stat(&chat.stats->msgs_out, 1);
			break;
		case SEEN_DROPPED:	/* a repeat its plain client had */
			break;
		}
		return DELIVER_OK;
	}
	return deliver_to_slot(&e, uid, 0, line, len) == 0 ? DELIVER_OK :
	    DELIVER_REFUSED;
}

/*
 * An acknowledged chat is stored already: whether anyone took it
 * changes nothing, unless Redis was down.  uid may then be online
 * on another node, whose worker must be told to fetch: the nudge waits
 * for Redis to come back.
 */
static void
acked_published(void *arg, int32_t uid, enum pubsub_sent sent,
    const char *line, size_t len)
{
	if (sent == PUBSUB_DOWN)
		pubsub_nudge(chat.pubsub, &uid, 1);
}

void
deliver_acked(int32_t uid, int64_t smid, const char *line, size_t len,
    int may_publish)
{
	struct online_entry	 e;
	struct conn		*c;
	enum seen_write		 wr;

	if (online_get(chat.online, uid, &e) == 0) {
		/* after an upgrade's hand over, ours are the next worker's */
		if (e.slot != chat.slot || chat_slot_moved())
			(void)deliver_to_slot(&e, uid, smid, line, len);
		else if ((c = session_conn(e.conn, uid)) != NULL &&
		    (wr = session_write(c, smid, line, len)) != SEEN_FAILED) {
			if (wr == SEEN_WRITTEN)
				chat_stat(&chat.stats->msgs_out, 1);
			/* a repeat's stored copy goes as if delivered */
			track_delivered(c, smid);
		}
		return;
	}
	if (may_publish && chat.pubsub != NULL)
		pubsub_publish(chat.pubsub, uid, line, len, acked_published,
		    NULL);
}

/* Stored already: whoever is online nowhere finds it at login. */
static void
acked_located(void *arg, const int32_t *away, size_t naway)
{
}

/* Not queued: told to fetch once Redis is back (acked_published). */
static void
acked_fanned(void *arg, const int32_t *failed, size_t nfailed)
{
	if (nfailed > 0)
		pubsub_nudge(chat.pubsub, failed, nfailed);
}

static const struct pubsub_fanout acked_fanout = {
	acked_located,
	acked_fanned
};

/*
 * deliver_acked for each of uids[0..n) (an acknowledged group chat):
 * those on other nodes get one item per destination worker, not one
 * per member.
 */
void
deliver_acked_many(const int32_t *uids, size_t n, int64_t smid,
    const char *line, size_t len)
{
	struct online_entry	 e;
	int32_t			*remote = NULL;
	size_t			 i, nremote = 0;

	if (chat.pubsub != NULL && n > 1)
		remote = calloc(n, sizeof(*remote));
	for (i = 0; i < n; i++) {
		if (remote != NULL && online_get(chat.online, uids[i], &e) !=
		    0)
			remote[nremote++] = uids[i];
		else
			deliver_acked(uids[i], smid, line, len, 1);
	}
	if (nremote == 1)
		deliver_acked(remote[0], smid, line, len, 1);
	else if (nremote > 1)
		pubsub_fanout(chat.pubsub, remote, nremote, line, len,
		    &acked_fanout, NULL);
	free(remote);
}

/*
 * Cluster mode: lines for users who are not on this node go through
 * Redis.  One route per chat request, shared by its publishes; the
 * users nobody took the line for are stored in one go when the last
 * answer is in.  Errors go back to the sender if still there.
 *
 * A one-to-one chat whose recipient's queue is known (the presence
 * cache: pubsub_route) lets its sender go on at once ("sent on"): the
 * item goes into that queue behind everything published to it before,
 * so the sender's messages keep their order, and the sender's next
 * request is read while the push is out (up to ROUTES_OUT_MAX such
 * chats per sender, SENT_ON_BYTES_MAX bytes per worker).  A plain chat
 * has no answer; if the push fails, the line is stored (a store
 * thread) and only a failed store answers with an error.  Any other
 * route (the queue is looked up, or several users) holds its sender
 * (paused and referenced) until the lines were queued or stored, as on
 * a single node, and starts only once the sender's chats sent on are
 * answered, so that its looked-up push cannot overtake them.  Order
 * is kept per sender and recipient while the recipient stays where it
 * is; a recipient who moves gets what went to the old place through the
 * store (the old worker stores, nudges).
 */
#define ROUTES_OUT_MAX	64
/* and at most this many bytes of them per worker: memory stays bounded
 * however many senders there are (past it, senders wait as for a lookup) */
#define SENT_ON_BYTES_MAX	(16u << 20)

static size_t	 sent_on_bytes;

struct route {
	struct conn	*c;		/* referenced (and held, unless sent
					   on), else NULL */
	unsigned	 sent_on:1;	/* the sender went on meanwhile */
	uint32_t	 conn;		/* the sender's connection */
	int32_t		 sender;
	int		 refmsgid;
	const char	*errtext;
	size_t		 refs;
	int32_t		*away;
	size_t		 naway;
	int32_t		*to;		/* waiting to start: whom for */
	size_t		 nto;
	char		*line;		/* with its "\n" */
	size_t		 len;
};

/* An error about a chat, for its sender if still connected. */
void
reply_sender(uint32_t conn, int32_t sender, int refmsgid, const char *text)
{
	struct conn	*c;

	if ((c = session_conn(conn, sender)) != NULL)
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, refmsgid, text);
}

static void	route_start(struct route *, const int32_t *, size_t);

/* A chat sent on was answered: a route waiting for that may start. */
static void
route_sent_on_done(struct conn *c)
{
	struct route	*rt;

	if (c->sess == NULL || --c->sess->routes_out > 0 ||
	    (rt = c->sess->route_wait) == NULL)
		return;
	c->sess->route_wait = NULL;
	route_start(rt, rt->to, rt->nto);
}

static void
route_unref(struct route *rt)
{
	enum keep_result	 kr = KEEP_DONE;

	if (--rt->refs > 0)
		return;
	/*
	 * Stored in a store thread, its held sender waiting (or, sent on,
	 * not).  A notice (no errtext) too: a recipient whose login read
	 * before the store committed is told to fetch (stored_nudge).
	 */
	kr = keep_submit(rt->sent_on ? NULL : rt->c, rt->conn, rt->sender,
	    rt->refmsgid, rt->errtext, rt->away, rt->naway, 0, rt->line,
	    rt->len - 1);
	if (kr == KEEP_FAILED)
		reply_sender(rt->conn, rt->sender, rt->refmsgid, rt->errtext);
	if (rt->c != NULL && rt->sent_on) {
		sent_on_bytes -= rt->len;
		route_sent_on_done(rt->c);
		conn_unref(rt->c);
	} else if (rt->c != NULL) {
		conn_unref(rt->c);
		if (!rt->c->closing && kr != KEEP_PENDING)
			conn_resume(rt->c);
	}
	free(rt->away);
	free(rt->to);
	free(rt->line);
	free(rt);
}

/*
 * PUBSUB_AWAY: online nowhere; PUBSUB_DOWN: Redis is down.  Either way
 * nobody took the line: it is kept here.  When it was queued for a worker,
 * that worker delivers or stores it.
 */
static void
route_published(void *arg, int32_t uid, enum pubsub_sent sent,
    const char *line, size_t len)
{
	struct route	*rt = arg;

	if (sent != PUBSUB_QUEUED)
		rt->away[rt->naway++] = uid;
	route_unref(rt);
}

/*
 * Several users (a group-management notice): one item per destination
 * worker (pubsub_fanout).  Those online nowhere, and those whose item
 * could not be queued, are kept with the route's others, at its end.
 */
static void
route_located(void *arg, const int32_t *away, size_t naway)
{
	struct route	*rt = arg;

	memcpy(rt->away + rt->naway, away, naway * sizeof(*away));
	rt->naway += naway;
}

static void
route_fanned(void *arg, const int32_t *failed, size_t nfailed)
{
	struct route	*rt = arg;

	route_located(rt, failed, nfailed);
	route_unref(rt);
}

static const struct pubsub_fanout route_fanout = {
	route_located,
	route_fanned
};

/* Publish rt's line to uids[0..n); rt holds one reference of its own,
 * dropped here (the route may be gone when this returns). */
static void
route_start(struct route *rt, const int32_t *uids, size_t n)
{
	size_t	 i;

	if (n > 1) {
		/* away and failed are apart: rt->away has room for both */
		rt->refs++;	/* the fan-out's end */
		pubsub_fanout(chat.pubsub, uids, n, rt->line, rt->len,
		    &route_fanout, rt);
	} else {
		rt->refs += n;
		for (i = 0; i < n; i++)
			pubsub_publish(chat.pubsub, uids[i], rt->line, rt->len,
			    route_published, rt);
	}
	route_unref(rt);
}

/*
 * Publish line to each of uids[0..n) (none of them on this node) for
 * the sender on c.
 */
enum route_result
route_publish(struct conn *c, int32_t sender, int refmsgid,
    const int32_t *uids, size_t n, const char *line, size_t len,
    const char *errtext)
{
	struct session	*s = c->sess;
	struct route	*rt;

	if ((rt = calloc(1, sizeof(*rt))) == NULL ||
	    (rt->away = calloc(n, sizeof(*rt->away))) == NULL ||
	    (rt->line = malloc(len)) == NULL) {
		if (rt != NULL)
			free(rt->away);
		free(rt);
		return ROUTE_FAILED;
	}
	memcpy(rt->line, line, len);
	rt->len = len;
	rt->conn = c->id;
	rt->sender = sender;
	rt->refmsgid = refmsgid;
	rt->errtext = errtext;
	rt->refs = 1;		/* ours until every publish is made */
	if (errtext != NULL && n == 1 && s->routes_out < ROUTES_OUT_MAX &&
	    sent_on_bytes + len <= SENT_ON_BYTES_MAX &&
	    pubsub_route(chat.pubsub, uids[0]) == PUBSUB_ROUTE_KNOWN) {
		rt->c = c;
		rt->sent_on = 1;
		c->jobs++;
		s->routes_out++;
		sent_on_bytes += len;
		route_start(rt, uids, n);
		return ROUTE_DONE;
	}
	if (s->routes_out > 0) {
		/* after the chats sent on: held until they are answered */
		if ((rt->to = calloc(n, sizeof(*rt->to))) == NULL) {
			free(rt->away);
			free(rt->line);
			free(rt);
			return ROUTE_FAILED;
		}
		memcpy(rt->to, uids, n * sizeof(*uids));
		rt->nto = n;
		rt->c = c;
		c->jobs++;
		conn_pause(c);
		s->route_wait = rt;
		return ROUTE_PENDING;
	}
	rt->refs++;		/* kept over route_start, to see if it ended */
	route_start(rt, uids, n);
	if (rt->refs == 1) {
		/* all answered at once (out of memory): nothing to wait for */
		route_unref(rt);
		return ROUTE_DONE;
	}
	rt->c = c;
	c->jobs++;
	conn_pause(c);
	route_unref(rt);
	return ROUTE_PENDING;
}

/*
 * A line another node queued for uid's worker: this one, or a dead one
 * whose queue this one took over.  Only this worker took it, so if uid
 * is not here it is stored here (a store thread; the item leaves Redis
 * once that committed): exactly once either way.
 */
enum pubsub_result
chat_remote_deliver(void *arg, int32_t uid, const char *line, size_t len)
{
	int64_t	 smid;

	if (len == 0 || line[len - 1] != '\n') {
		log_warnx("redis: dropping a malformed line for %d", (int)uid);
		return PUBSUB_DELIVERED;
	}
	if ((smid = line_stored_smid(line, len)) > 0) {
		/* stored by the sending node: only deliver it */
		deliver_acked(uid, smid, line, len, 0);
		return PUBSUB_DELIVERED;
	}
	if (deliver_live(uid, line, len) == DELIVER_OK)
		return PUBSUB_DELIVERED;
	/* stored in a store thread; until then it stays in Redis */
	return keep_remote(&uid, 1, line, len);
}

int
forward_line(struct conn *c, const struct proto_req *req, struct buf *line)
{
	const struct session	*s = c->sess;

	if (proto_put_forward(line, req, s->uid, s->name, s->name_len) == -1 ||
	    buf_append(line, "\n", 1) == -1)
		return -1;
	return 0;
}

/*
 * Cluster mode: a chat for a user not on this node goes through Redis
 * only if that user exists, which is read in the read store thread (the
 * first chat to it; then it is known) while c waits; then the chat is
 * sent as if just read.
 */
struct exists_call {
	struct chat_call	 k;
	int			 found;
};

static void
exists_run(struct chat_call *k, struct store *st)
{
	struct exists_call	*x = (struct exists_call *)k;
	struct store_user	 u;
	int			 rc;

	memset(&u, 0, sizeof(u));
	rc = store_user_get(st, k->req.toid, &u);
	store_user_clear(&u);
	if (rc == STORE_OK)
		x->found = 1;
	else if (rc == STORE_NOTFOUND)
		k->code = ERR_NO_SUCH_USER;
	else
		chat_call_fail(k, st, ERR_UNAVAILABLE, "looking up a recipient");
}

static void
exists_answer(struct conn *c, struct chat_call *k)
{
	if (!((struct exists_call *)k)->found)
		return;
	user_known_add(k->req.toid);
	if (c != NULL)
		chat_call_replay(c, k, handle_one_chat);
}

void
handle_one_chat(struct conn *c, struct proto_req *req)
{
	struct buf		 line = BUF_INIT;
	struct chat_call	*k;
	enum deliver_result	 dr;
	int64_t			 at = util_wall_ms();	/* before delivery */

	if (forward_line(c, req, &line) == -1) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	dr = deliver_live(req->toid, buf_head(&line), buf_used(&line));
	if (dr == DELIVER_OK)
		goto kept;
	if (dr == DELIVER_AWAY && chat.pubsub != NULL) {
		/* not on this node: through Redis, if the user exists */
		if (!user_known(req->toid)) {
			if ((k = chat_call_new(c, req->msgid,
			    sizeof(struct exists_call), exists_run,
			    exists_answer, NULL)) != NULL)
				chat_call_submit(c, k, req, CALL_READ, 1);
			goto out;
		}
		if (route_publish(c, c->sess->uid, req->msgid, &req->toid, 1,
		    buf_head(&line), buf_used(&line), ONE_STORE_ERR) ==
		    ROUTE_FAILED) {
			chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid,
			    NULL);
			goto out;
		}
		goto kept;
	}
	/*
	 * offline: only a real user may have messages kept for them; both
	 * checked and stored in a store thread while c waits
	 */
	if (keep_submit(c, c->id, c->sess->uid, req->msgid, ONE_STORE_ERR,
	    &req->toid, 1, 1, buf_head(&line), buf_used(&line) - 1) ==
	    KEEP_FAILED) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid,
		    ONE_STORE_ERR);
		goto out;
	}
kept:
	chat_history_keep(c->sess->uid, req, &line, at);
out:
	buf_free(&line);
}

/* ---- acknowledged chats (opt-in "cmid") ------------------------------- */

/*
 * A chat with a client message id is stored for its recipients before
 * it is acknowledged, so an acknowledged message survives any crash;
 * live delivery then removes a recipient's stored copy once the line
 * reached that recipient's socket.  A crash in between delivers the
 * copy again at the next login, with the same "smid" (clients drop
 * what they have seen).  A resend of a claimed cmid is answered with
 * the first smid and not delivered again.
 */

#define ACKS_TRACKED_MAX	4096

void
track_delivered(struct conn *c, int64_t smid)
{
	struct session	*s = c->sess;
	int64_t	*nv;
	size_t	 ncap;

	/*
	 * An "acks" client that never acknowledges: past this many, the
	 * copies stay stored and come again at its next login.
	 */
	if (s->acks && s->ndelivered >= ACKS_TRACKED_MAX)
		return;
	/* a plain session logged in as someone else since: the earlier
	 * user's copies go now (they were queued before) */
	if (!s->acks && s->ndelivered > 0 && s->delivered_uid != s->uid)
		remove_delivered(c);
	s->delivered_uid = s->uid;
	if (s->ndelivered == s->delivered_cap) {
		ncap = s->delivered_cap ? s->delivered_cap * 2 : 4;
		/* out of memory: the copy stays, the client sees it twice */
		if ((nv = reallocarray(s->delivered, ncap,
		    sizeof(*nv))) == NULL)
			return;
		s->delivered = nv;
		s->delivered_cap = ncap;
	}
	s->delivered[s->ndelivered++] = smid;
	if (!s->acks)
		c->want_drained = 1;
}

/*
 * The store calls (recipient check or group members, claim, block
 * filter, commit) run in a store thread (chat_storejob.c): c waits, the
 * worker goes on.
 */
void
handle_acked_chat(struct conn *c, struct proto_req *req)
{
	int32_t		*to = NULL;
	size_t		 n = 0;

	/* a group's members are read by the job */
	if (req->msgid == MSG_ONE_CHAT && (to = malloc(sizeof(*to))) != NULL)
		to[n++] = req->toid;
	if (req->msgid == MSG_ONE_CHAT && to == NULL) {
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid,
		    ACKED_STORE_ERR);
		return;
	}
	(void)acked_submit(c, req, to, n);
}
