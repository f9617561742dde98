/* chat.c - the chat service: set-up, request dispatch, sessions, the
 * channel from other workers, and the known-users cache. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "chat_impl.h"
#include "util.h"
#include "log.h"
#include "pubsub.h"
#include "store.h"

struct chat_env		chat;
struct proto_limits	chat_limits;

const struct conn_handler chat_conn_handler = {
	.frame = chat_frame,
	.closing = chat_closing,
	.drained = chat_drained,
	.release = chat_release,
};

/*
 * User ids known to exist, so that a chat to a user on another node
 * does not ask the store every time (users are never deleted).  A
 * small direct-mapped cache: a collision only costs one lookup.
 */
#define KNOWN_USERS_BITS	12
static int32_t		 known_users[1 << KNOWN_USERS_BITS];

static size_t
known_slot(int32_t uid)
{
	return util_fib_hash((uint32_t)uid, KNOWN_USERS_BITS);
}

int
user_known(int32_t uid)
{
	return uid > 0 && known_users[known_slot(uid)] == uid;
}

void
user_known_add(int32_t uid)
{
	if (uid > 0)
		known_users[known_slot(uid)] = uid;
}

void
chat_reconfigure(const struct config *cfg)
{
	chat_limits.max_name_bytes = cfg->max_name_bytes;
	chat_limits.max_message_bytes = cfg->max_message_bytes;
	chat_limits.max_groupdesc_bytes = cfg->max_groupdesc_bytes;
	chat_limits.max_password_bytes = cfg->max_password_bytes;
	chat.cfg = cfg;
}

void
chat_init(const struct chat_env *e)
{
	chat = *e;
	chat_reconfigure(e->cfg);
	/* a crash's backlog first (a worker with a history thread only) */
	if (e->cfg->history_days > 0)
		chat_histspool_open();
}

void
chat_pubsub_gone(void)
{
	chat.pubsub = NULL;
}

void
chat_storeq_closed(void)
{
	chat.storeq = NULL;
	chat.storeq_read = NULL;
	chat.storeq_hist = NULL;
	chat_histspool_close();
}

void
chat_stat(uint64_t *counter, uint64_t n)
{
	__atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

void
chat_error(struct conn *c, int reply_msgid, int code, int refmsgid,
    const char *text)
{
	chat_stat(&chat.stats->errors, 1);
	if (proto_put_error(&c->out, reply_msgid, code, refmsgid,
	    text != NULL ? text : proto_strerror(code)) == -1) {
		conn_close(c, "out of memory");
		return;
	}
	(void)conn_sent(c);
}

/* ---- sessions ---------------------------------------------------------- */

struct conn *
session_conn(uint32_t conn, int32_t uid)
{
	struct conn	*c;

	/* moved (upgrade): the next worker's, whatever is sent here */
	if ((c = conn_lookup(conn)) == NULL || c->sess == NULL ||
	    c->sess->uid != uid || c->moved)
		return NULL;
	return c;
}

struct conn *
session_local(int32_t uid)
{
	struct online_entry	 e;

	if (online_get(chat.online, uid, &e) == -1 || e.slot != chat.slot)
		return NULL;
	return session_conn(e.conn, uid);
}

int
user_online(int32_t uid)
{
	struct online_entry	 e;

	return online_get(chat.online, uid, &e) == 0;
}

void
chat_release(struct conn *c)
{
	if (c->sess == NULL)
		return;
	free(c->sess->name);
	free(c->sess->delivered);
	session_blocks_free(c->sess);
	session_seen_free(c->sess);
	leave_drained(c);	/* nothing more will drain */
	free(c->sess);
	c->sess = NULL;
}

void
session_deliver(struct conn *c, int64_t smid, const char *line, size_t len)
{
	enum seen_write	 wr;

	wr = session_write(c, smid > 0 ? smid : -1, line, len);
	if (wr == SEEN_FAILED) {
		if (smid == 0)
			(void)chat_keep_offline_later(c->sess->uid, line,
			    len - 1);
		return;
	}
	if (wr == SEEN_WRITTEN)
		chat_stat(&chat.stats->msgs_out, 1);
	/* a repeat's stored copy goes as if delivered */
	if (smid > 0)
		track_delivered(c, smid);
}

/* A message another worker routed to one of our connections. */
void
chat_channel_msg(const struct chan_hdr *h, const char *payload)
{
	struct conn	*c;
	int32_t		 uid = h->uid;

	switch (h->type) {
	case CHAN_DELIVER:
		if (h->len == 0)
			break;
		if ((c = session_conn(h->conn, uid)) != NULL) {
			if (session_blocks(c, h->smid, payload, h->len) ==
			    BLOCK_PASS)
				session_deliver(c, h->smid, payload, h->len);
			break;
		}
		/* logged out meanwhile: the message must not be lost (an
		 * acknowledged one is stored already) */
		if (h->smid == 0)
			(void)chat_keep_offline_later(uid, payload,
			    h->len - 1);
		break;
	case CHAN_GROUP:
		gcache_drop((int32_t)h->uid);
		break;
	case CHAN_KICK:
		if ((c = session_conn(h->conn, uid)) != NULL)
			conn_close(c, "kicked");
		break;
	case CHAN_STORED:
		/* a login still reading here looks again when it answers */
		chat_stores_note();
		chat_stored(NULL, uid);
		break;
	case CHAN_LEFT:
		chat_left(uid);
		break;
	case CHAN_ANSWER:
	case CHAN_ANSWERED:
		chat_old_answer(h, payload);
		break;
	case CHAN_HIST_FLUSH:
	case CHAN_HIST_FLUSHED:
	case CHAN_HIST_STORING:
		chat_barrier_msg(h);
		break;
	default:
		log_warnx("channel: unknown message type %u from worker %u",
		    h->type, h->from_slot);
		break;
	}
}

void
chat_to_others(uint32_t type, uint32_t uid)
{
	struct chan_hdr	 h;
	int		 i;

	memset(&h, 0, sizeof(h));
	h.type = type;
	h.uid = uid;
	h.from_slot = chat.slot;
	for (i = 0; i < online_nslots(chat.online); i++)
		if (i != chat.slot)
			(void)chat.to_slot(i, &h, "");
}

/* Redis says uid logged in elsewhere while we could not reach it. */
void
chat_presence_lost(void *arg, int32_t uid)
{
	struct conn	*c;

	if ((c = session_local(uid)) != NULL)
		conn_close(c, "session taken over by a login on another node");
}

void
chat_str_set(struct proto_str *s, const char *p, size_t len)
{
	s->p = p;
	s->len = len;
}

static void
handle_whoami(struct conn *c, const struct proto_req *req)
{
	/* which process serves a connection is nobody's business before login */
	if (c->sess->uid == 0 && !chat.cfg->whoami_anonymous) {
		chat_error(c, MSG_ERROR, ERR_NOT_LOGGED_IN, req->msgid,
		    "log in first");
		return;
	}
	if (proto_put_whoami(&c->out, c->sess->uid, chat.slot,
	    (int)getpid()) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
}

/* ---- dispatch ---------------------------------------------------------- */

void
chat_frame(struct conn *c, const char *p, size_t n, enum frame_status st)
{
	struct proto_req	 req;
	struct proto_fail	 fail;

	/* the session is made with the first frame, freed with c */
	if (c->sess == NULL && (c->sess = calloc(1, sizeof(*c->sess))) ==
	    NULL) {
		conn_close(c, "out of memory");
		return;
	}
	if (st == FRAME_BAD) {
		chat_error(c, MSG_ERROR, ERR_MALFORMED, 0,
		    "malformed JSON (raw control character in a string?)");
		return;
	}
	if (proto_decode(p, n, &chat_limits, &req, &fail) == -1) {
		chat_error(c, fail.reply_msgid, fail.code, fail.refmsgid,
		    fail.text);
		return;
	}
	chat_stat(&chat.stats->msgs_in, 1);
	switch (req.msgid) {
	case MSG_REG:
		handle_reg(c, &req);
		goto done;
	case MSG_LOGIN:
		handle_login(c, &req);
		goto done;
	case MSG_PING:
		if (proto_put_pong(&c->out, &req) == 0)
			(void)conn_sent(c);
		goto done;
	case MSG_WHOAMI:
		handle_whoami(c, &req);
		goto done;
	default:
		break;
	}
	if (c->sess->uid == 0) {
		chat_error(c, MSG_ERROR, ERR_NOT_LOGGED_IN, req.msgid,
		    "log in first");
		goto done;
	}
	if (req.has_id && req.id != c->sess->uid) {
		chat_error(c, MSG_ERROR, ERR_IDENTITY, req.msgid,
		    "\"id\" is not the user logged in on this connection");
		goto done;
	}
	switch (req.msgid) {
	case MSG_LOGINOUT:
		chat_logout(c);
		break;
	case MSG_LOGOUT_ALL:
		handle_logout_all(c, &req);
		break;
	case MSG_PASSWD:
		handle_passwd(c, &req);
		break;
	case MSG_ONE_CHAT:
	case MSG_GROUP_CHAT:
		if (chat_history_park(c, &req) == 0)
			break;		/* held: the history store is behind */
		if (req.has_cmid)
			handle_acked_chat(c, &req);
		else
			handle_plain_chat(c, &req);
		break;
	case MSG_OFFLINE_ACK:
		handle_offline_ack(c, &req);
		break;
	case MSG_RECEIVED:
		handle_received(c, &req);
		break;
	case MSG_ADD_FRIEND:
		handle_add_friend(c, &req);
		break;
	case MSG_CREATE_GROUP:
		handle_create_group(c, &req);
		break;
	case MSG_ADD_GROUP:
		handle_add_group(c, &req);
		break;
	case MSG_GROUP_MANAGE:
		handle_group_manage(c, &req);
		break;
	case MSG_GROUP_MEMBERS:
		handle_group_members(c, &req);
		break;
	case MSG_FRIEND_REMOVE:
		handle_friend_remove(c, &req);
		break;
	case MSG_BLOCK:
	case MSG_UNBLOCK:
		handle_block(c, &req);
		break;
	case MSG_BLOCK_LIST:
		handle_block_list(c, &req);
		break;
	case MSG_TYPING:
		handle_typing(c, &req);
		break;
	case MSG_READ:
		handle_read(c, &req);
		break;
	case MSG_HISTORY:
		handle_history(c, &req);
		break;
	case MSG_RESUME:
		handle_resume(c, &req);
		break;
	case MSG_DELETE_ACCOUNT:
		handle_delete_account(c, &req);
		break;
	default:
		chat_error(c, MSG_ERROR, ERR_UNKNOWN_MSGID, req.msgid, NULL);
		break;
	}
done:
	proto_req_clear(&req);
}

