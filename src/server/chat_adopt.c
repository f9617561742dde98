/*
 * chat_adopt.c - a session's state for the crash handover (handover.h):
 * packed when the user logs in, unpacked by the worker that adopts the
 * connection after its first worker died.
 *
 * What is passed is only what cannot be read again: who is logged in
 * and what the client asked for at login.  Everything else (blocks,
 * token generation, offline batches in flight, chats delivered but not
 * yet removed from the store) is read again or sent again: stored
 * messages stay stored until they reached the client's socket, so the
 * adopter's offline fetch delivers what the dead worker had not.
 */
#include "config.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "chat_impl.h"
#include "handover.h"
#include "log.h"
#include "online.h"
#include "pubsub.h"
#include "store.h"
#include "util.h"

/*
 * conn's record: the state, the name, then (HO_F_CLEAN) in, the bytes
 * of a partial request.  0, or -1 when it cannot be packed.
 */
static int
handover_pack(struct conn *c, uint32_t flags, const void *in, size_t inlen,
    struct buf *b)
{
	struct session	*s = c->sess;
	struct ho_state	 st;

	memset(&st, 0, sizeof(st));
	st.version = (flags & HO_F_WS) != 0 ? HANDOVER_STATE_VERSION_WS :
	    HANDOVER_STATE_VERSION;
	st.conn = c->id;
	st.uid = s->uid;
	st.flags = flags | (s->ack_offline ? HO_F_ACK_OFFLINE : 0) |
	    (s->acks ? HO_F_ACKS : 0) | (s->want_token ? HO_F_TOKEN : 0);
	/* only what accept() wrote: the rest of the storage is undefined */
	st.peer_len = c->peer.ss_family == AF_INET ? sizeof(struct
	    sockaddr_in) : c->peer.ss_family == AF_INET6 ? sizeof(struct
	    sockaddr_in6) : 0;
	memcpy(&st.peer, &c->peer, st.peer_len);
	st.name_len = s->name_len;
	if (buf_append(b, &st, sizeof(st)) == -1 ||
	    buf_append(b, s->name, s->name_len) == -1 ||
	    (inlen > 0 && buf_append(b, in, inlen) == -1))
		return -1;
	return 0;
}

void
chat_handover_keep(struct conn *c)
{
	struct session	*s = c->sess;
	struct buf	 b = BUF_INIT;

	/*
	 * A websocket's framing position is known only when the worker
	 * stops at a boundary (upgrade): a crash could not resume it.
	 */
	if (chat.handover_keep == NULL || c->tp != NULL || s == NULL ||
	    s->uid == 0)
		return;
	if (handover_pack(c, 0, NULL, 0, &b) == -1 ||
	    chat.handover_keep(c, buf_head(&b), buf_used(&b)) == -1)
		log_info("connection %u (user %d) is not kept by the master: "
		    "a crash of this worker closes it", c->id, (int)s->uid);
	buf_free(&b);
}

int
chat_handover_final(struct conn *c, int clean, int answers)
{
	struct session	*s = c->sess;
	struct buf	 b = BUF_INIT;
	uint32_t	 flags;
	int		 rc;

	/* a websocket has no crash copy: it is passed only now */
	if (chat.handover_keep == NULL || s == NULL || s->uid == 0 ||
	    (!c->handed && c->tp == NULL))
		return -1;
	/* a partial request too large for a record: crash rules instead */
	if (clean && sizeof(struct ho_state) + s->name_len +
	    buf_used(&c->in) > HANDOVER_MAX_RECORD)
		clean = 0;
	/* a websocket moves only between two units (its client reconnects) */
	if (c->tp != NULL && (!clean || conn_tp_movable(c) != CONN_TP_READY))
		return -1;
	flags = !clean ? 0 : answers ? HO_F_CLEAN | HO_F_ANSWERS : HO_F_CLEAN;
	if (c->tp != NULL)
		flags |= HO_F_WS;
	if (clean && offline_settled(s))
		flags |= HO_F_SETTLED;
	if (clean && s->blocks_loaded && s->nblocked == 0)
		flags |= HO_F_NOBLOCKS;
	/*
	 * A plain client's copies go once written, with no hold on c
	 * (remove_delivered): the adopter, which fetches at once after a
	 * new session table or in a cluster, would find them still there.
	 */
	if (clean && leave_held(s->uid))
		flags |= HO_F_REMOVING;
	rc = handover_pack(c, flags, buf_head(&c->in),
	    clean ? buf_used(&c->in) : 0, &b);
	if (rc == 0)
		rc = chat.handover_keep(c, buf_head(&b), buf_used(&b));
	buf_free(&b);
	/* from now on, nothing here touches the socket */
	if (rc == 0) {
		conn_move(c);
		c->forward = (flags & (HO_F_ANSWERS | HO_F_REMOVING)) != 0;
	}
	return rc;
}

/* ---- upgrade: answers that come after the hand over -------------------- */

/*
 * A connection whose only work under way is acknowledged chats being
 * stored can move at once: the store thread goes on here, and each
 * answer follows over the slot's channel once its chat committed (never
 * before: an acknowledgement means stored).  A chat stored whose answer
 * never arrives (this worker dies) is resent by the client and found by
 * its cmid, as after a crash.
 */
int
chat_answers_due(const struct conn *c)
{
	const struct session	*s = c->sess;

	return s != NULL && s->uid != 0 && (c->handed || c->tp != NULL) &&
	    conn_tp_movable(c) == CONN_TP_READY &&
	    c->jobs > 0 && (size_t)c->jobs == s->acked_jobs &&
	    !c->close_after_flush && buf_used(&c->out) == 0;
}

static int	slot_moved;		/* old worker: handed over */
static double	moved_at;

void
chat_slot_handed(void)
{
	slot_moved = 1;
	moved_at = util_mono();
}

int
chat_slot_moved(void)
{
	return slot_moved;
}

struct fwd_count {
	size_t	 waiting;
	int	 final;
};

static int
answer_send(const struct conn *c, uint32_t type, uint32_t gen,
    const void *p, size_t len)
{
	struct chan_hdr	 h;

	memset(&h, 0, sizeof(h));
	h.type = type;
	h.uid = (uint32_t)c->sess->uid;
	h.conn = c->id;
	h.gen = gen;
	h.from_slot = chat.slot;
	h.len = len;
	return chat.to_slot(chat.slot, &h, p);
}

static void
forward_one(struct conn *c, void *arg)
{
	struct fwd_count	*n = arg;
	int			 removing;

	if (!c->forward || c->sess == NULL)
		return;
	/* bounded as a login's wait for a leaving mark */
	removing = leave_held(c->sess->uid) && util_mono() < moved_at +
	    CHAT_REMOVAL_WAIT;
	/* whole lines: a job's answer is appended in one piece */
	if (buf_used(&c->out) > 0 && answer_send(c, CHAN_ANSWER, 0,
	    buf_head(&c->out), buf_used(&c->out)) == 0) {
		buf_consume(&c->out, buf_used(&c->out));
		(void)conn_sent(c);
	}
	if ((c->jobs > 0 || buf_used(&c->out) > 0 || removing) && !n->final) {
		n->waiting++;
		return;
	}
	if (answer_send(c, CHAN_ANSWERED, c->jobs > 0 ||
	    buf_used(&c->out) > 0, "", 0) == 0) {
		c->forward = 0;
		if (leave_held(c->sess->uid))
			log_warnx("upgrade: user %d's new worker fetches while "
			    "stored copies written to it are still being "
			    "removed here (the store is slow): a plain client "
			    "may see those again", (int)c->sess->uid);
	} else
		n->waiting++;	/* the channel is full: again next pass */
}

size_t
chat_forward_answers(int final)
{
	struct fwd_count	 n;

	n.waiting = 0;
	n.final = final;
	conn_foreach(forward_one, &n);
	return n.waiting;
}

/*
 * The new worker: adopted connections still waiting for the old
 * worker's answers.  Each is referenced (c->jobs) and paused meanwhile;
 * closed ones stay listed until their answers end.
 */
static struct conn	**awaiting;
static size_t		  nawaiting, awaiting_cap;

/* answers: they follow (HO_F_ANSWERS), not only the end of removals */
static int
await_answers(struct conn *c, int answers)
{
	struct conn	**v;

	if (nawaiting == awaiting_cap) {
		awaiting_cap = awaiting_cap ? 2 * awaiting_cap : 64;
		if ((v = realloc(awaiting, awaiting_cap * sizeof(*v))) ==
		    NULL) {
			awaiting_cap = nawaiting;
			return -1;
		}
		awaiting = v;
	}
	awaiting[nawaiting++] = c;
	if (answers)
		c->sess->old_answers = 1;
	c->jobs++;
	conn_pause(c);
	return 0;
}

/* The wait is over (lost: an answer may be missing, the client resends). */
static void
answers_end(size_t i, int lost)
{
	struct conn	*c = awaiting[i];
	struct session	*s = c->sess;
	int		 answers = s != NULL && s->old_answers;
	int		 fetch = s != NULL && s->fetch_due;

	awaiting[i] = awaiting[--nawaiting];
	if (s != NULL)
		s->old_answers = s->old_removing = s->fetch_due = 0;
	conn_unref(c);
	if (c->closing)
		return;
	/* the mark of a handover, as after a crash: resend what is due */
	if (lost && answers && conn_send(c, "\n", 1) == -1)
		return;
	/* its requests wait meanwhile: none logged it out or in again */
	if (fetch)
		offline_push(c);
	if (!c->closing)
		conn_resume(c);
}

void
chat_old_answer(const struct chan_hdr *h, const char *payload)
{
	struct conn	*c;
	size_t		 i;

	for (i = 0; i < nawaiting; i++)
		if (awaiting[i]->id == h->conn)	/* closed ones too */
			break;
	if (i == nawaiting) {
		log_info("upgrade: an answer of the old worker for connection "
		    "%u (user %d) came late: its client resends", h->conn,
		    (int)h->uid);
		return;
	}
	c = awaiting[i];
	if (h->type == CHAN_ANSWERED) {
		if (h->gen != 0)
			log_notice("upgrade: connection %u (user %d): the old "
			    "worker could not answer everything; its client "
			    "resends", h->conn, (int)h->uid);
		answers_end(i, h->gen != 0);
	} else if (!c->closing && h->len > 0)
		(void)conn_send(c, payload, h->len);
}

size_t
chat_answers_awaited(void)
{
	return nawaiting;
}

void
chat_answers_expire(void)
{
	if (nawaiting > 0)
		log_notice("upgrade: %zu connection(s) had no word from the "
		    "old worker: their clients resend what is unanswered",
		    nawaiting);
	while (nawaiting > 0)
		answers_end(nawaiting - 1, 1);
	free(awaiting);
	awaiting = NULL;
	awaiting_cap = 0;
}

void
chat_handover_drop(struct conn *c)
{
	if (chat.handover_drop != NULL && c->handed)
		chat.handover_drop(c);
}

/*
 * What was stored for the user: now, or once the old worker removed
 * what it wrote (HO_F_REMOVING, answers_end).
 */
static void
adopt_fetch(struct conn *c)
{
	if (c->sess->old_removing)
		c->sess->fetch_due = 1;
	else
		offline_push(c);
}

/* Cluster: the adopter claims the user again (presence is per worker). */
static void
adopt_claimed(void *arg, enum pubsub_claim_result result)
{
	struct conn	*c = arg;

	conn_unref(c);
	if (c->closing || c->sess == NULL)
		return;
	if (result == PUBSUB_ELSEWHERE) {
		/* logged in on another node while nobody held the claim */
		conn_close(c, "adopted session taken by a login elsewhere");
		return;
	}
	/*
	 * Only now: a sender that found the user away (no claim) stored
	 * before this fetch; one that stores after it nudges the claim.
	 */
	adopt_fetch(c);
}

/* This slot's entries of the new table that no session of ours holds. */
struct stale {
	struct online_entry	*v;
	size_t			 n, cap;
};

static int
stale_one(const struct online_entry *e, void *arg)
{
	struct stale	*st = arg;

	if (e->slot != chat.slot || session_conn(e->conn, (int32_t)e->uid) !=
	    NULL)
		return 0;
	/* no memory: left, and that user's logins are refused ("online") */
	if (util_grow((void **)&st->v, &st->cap, st->n, sizeof(*st->v)) ==
	    -1)
		return 1;
	st->v[st->n++] = *e;
	return 0;
}

void
chat_adopt_sweep(void)
{
	struct stale	 st;
	size_t		 i, gone = 0;

	/*
	 * Only then: nothing of this slot is accepted before the adoption,
	 * so its entries are the adopted sessions and the copies of those
	 * that logged out of the old worker after the copy.
	 */
	if (chat.online_old == NULL)
		return;
	memset(&st, 0, sizeof(st));
	online_foreach(chat.online, stale_one, &st);
	for (i = 0; i < st.n; i++)
		gone += online_remove(chat.online, st.v[i].uid, chat.slot,
		    st.v[i].conn) == 0;
	free(st.v);
	if (gone > 0)
		log_info("upgrade: %zu sessions that ended on the old worker "
		    "after the session table was copied: their entries go",
		    gone);
}

int
chat_adopt(struct conn *c, const char *state, size_t len, char *why,
    size_t whylen)
{
	struct ho_state		 st;
	struct online_entry	 e;
	struct session		*s;
	enum online_add_result	 added;

	if (len < sizeof(st)) {
		snprintf(why, whylen, "state record too short");
		return -1;
	}
	memcpy(&st, state, sizeof(st));
	/* HO_F_CLEAN: a partial request follows the name */
	if ((st.version != HANDOVER_STATE_VERSION && st.version !=
	    HANDOVER_STATE_VERSION_WS) || st.uid <= 0 ||
	    st.name_len > len - sizeof(st) || ((st.flags & HO_F_CLEAN) == 0 &&
	    st.name_len != len - sizeof(st)) || st.conn != c->id) {
		snprintf(why, whylen, "bad state record");
		return -1;
	}
	if (c->sess == NULL && (c->sess = calloc(1, sizeof(*c->sess))) ==
	    NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	s = c->sess;
	if ((s->name = malloc(st.name_len + 1)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	memcpy(s->name, state + sizeof(st), st.name_len);
	s->name[st.name_len] = '\0';
	s->name_len = st.name_len;
	s->ack_offline = (st.flags & HO_F_ACK_OFFLINE) != 0;
	s->acks = (st.flags & HO_F_ACKS) != 0;
	s->want_token = (st.flags & HO_F_TOKEN) != 0;
	added = online_add(chat.online, st.uid, chat.slot, c->id, &e);
	/* an upgrade's entry, kept valid while it moved: ours already */
	if (added == ONLINE_TAKEN && e.slot == chat.slot && e.conn == c->id)
		added = ONLINE_ADDED;
	if (added == ONLINE_TAKEN) {
		snprintf(why, whylen, "user %d logged in again meanwhile",
		    (int)st.uid);
		return -1;
	}
	if (added == ONLINE_REFUSED) {
		snprintf(why, whylen, "session table full");
		return -1;
	}
	s->uid = st.uid;
	user_known_add(s->uid);
	conn_logged_in(c);
	/* an upgrade's "blocks nobody" saves a read (and one on the loop
	 * for a chat that would arrive before it) */
	if ((st.flags & (HO_F_CLEAN | HO_F_NOBLOCKS)) == (HO_F_CLEAN |
	    HO_F_NOBLOCKS))
		s->blocks_loaded = 1;
	else
		(void)session_blocks_fetch(c);	/* no memory: at a chat */
	/*
	 * The dead worker may have written part of a line: end it, so the
	 * client's parser drops it as one bad line instead of merging it
	 * with the next.
	 */
	if ((st.flags & HO_F_CLEAN) == 0 && conn_send(c, "\n", 1) == -1) {
		snprintf(why, whylen, "cannot write");
		return -1;
	}
	/*
	 * The master's record of an upgrade says "at a boundary, with this
	 * partial request": true once.  The master made its copy a plain
	 * one when it passed it on (held_plain): a crash of ours is adopted
	 * by the crash rules.
	 */
	/* its input waits for the old worker's answers (chat_old_answer),
	 * or for its removals (then the fetch) */
	if ((st.flags & HO_F_CLEAN) != 0 && (st.flags & (HO_F_ANSWERS |
	    HO_F_REMOVING)) != 0 && await_answers(c, (st.flags &
	    HO_F_ANSWERS) != 0) == -1) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	if ((st.flags & (HO_F_CLEAN | HO_F_REMOVING)) == (HO_F_CLEAN |
	    HO_F_REMOVING))
		s->old_removing = 1;
	if (chat.pubsub != NULL) {
		/* the fetch follows the claim, as at login */
		c->jobs++;
		pubsub_claim(chat.pubsub, s->uid, adopt_claimed, c);
		return 0;
	}
	/*
	 * What was stored for the user meanwhile, or not yet delivered: a
	 * sender that found the user away stored before online_add above.
	 * An upgrade's settled session had nothing (its entry stayed valid:
	 * what was stored since came with a nudge, which follows).
	 */
	if ((st.flags & (HO_F_CLEAN | HO_F_SETTLED)) != (HO_F_CLEAN |
	    HO_F_SETTLED))
		adopt_fetch(c);
	return c->closing ? -1 : 0;
}
