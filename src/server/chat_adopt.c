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

#include "chat_impl.h"
#include "handover.h"
#include "log.h"
#include "online.h"
#include "pubsub.h"
#include "store.h"

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
	st.version = HANDOVER_STATE_VERSION;
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

	/* a websocket's framing state is not passed: it is not adopted */
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
chat_handover_final(struct conn *c, int clean)
{
	struct session	*s = c->sess;
	struct buf	 b = BUF_INIT;
	int		 rc;

	if (chat.handover_keep == NULL || c->tp != NULL || s == NULL ||
	    s->uid == 0 || !c->handed)
		return -1;
	/* a partial request too large for a record: crash rules instead */
	if (clean && sizeof(struct ho_state) + s->name_len +
	    buf_used(&c->in) > HANDOVER_MAX_RECORD)
		clean = 0;
	rc = handover_pack(c, clean ? HO_F_CLEAN : 0, buf_head(&c->in),
	    clean ? buf_used(&c->in) : 0, &b);
	if (rc == 0)
		rc = chat.handover_keep(c, buf_head(&b), buf_used(&b));
	buf_free(&b);
	return rc;
}

void
chat_handover_drop(struct conn *c)
{
	if (chat.handover_drop != NULL && c->handed)
		chat.handover_drop(c);
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
	offline_push(c);
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
	if (st.version != HANDOVER_STATE_VERSION || st.uid <= 0 ||
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
	session_blocks_fetch(c);
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
	 * partial request": true once.  A crash of ours must be adopted by
	 * the crash rules: replace it with a plain one.
	 */
	if ((st.flags & HO_F_CLEAN) != 0)
		chat_handover_keep(c);
	if (chat.pubsub != NULL) {
		/* the fetch follows the claim, as at login */
		c->jobs++;
		pubsub_claim(chat.pubsub, s->uid, adopt_claimed, c);
		return 0;
	}
	/*
	 * What was stored for the user meanwhile, or not yet delivered: a
	 * sender that found the user away stored before online_add above.
	 */
	offline_push(c);
	return c->closing ? -1 : 0;
}
