/* chat.c - the chat service: requests, routing, offline messages. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "cfg.h"
#include "chat.h"
#include "log.h"
#include "store.h"

static struct chat_env		 env;
static struct proto_limits	 limits;

/* An answer that needs the hash pool; holds a reference on its conn. */
struct chat_job {
	struct auth_job	 aj;
	struct conn	*c;
	int		 msgid;
	int32_t		 uid;		/* LOGIN: the user found, 0 if none */
	char		*name;		/* REG: the new user's name */
	size_t		 name_len;
};

static void	stat_add(uint64_t *counter, uint64_t n);

void
chat_reconfigure(const struct config *cfg)
{
	limits.max_name_bytes = cfg->max_name_bytes;
	limits.max_message_bytes = cfg->max_message_bytes;
	limits.max_groupdesc_bytes = cfg->max_groupdesc_bytes;
	limits.max_password_bytes = cfg->max_password_bytes;
	env.cfg = cfg;
}

void
chat_init(const struct chat_env *e)
{
	env = *e;
	chat_reconfigure(e->cfg);
}

static void
stat_add(uint64_t *counter, uint64_t n)
{
	__atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

static void
reply_error(struct conn *c, int reply_msgid, int code, int refmsgid,
    const char *text)
{
	stat_add(&env.stats->errors, 1);
	if (proto_put_error(&c->out, reply_msgid, code, refmsgid,
	    text != NULL ? text : proto_strerror(code)) == -1) {
		conn_close(c, "out of memory");
		return;
	}
	(void)conn_sent(c);
}

/* The error answer for a request: LOGIN and REG get their own ACK. */
static int
ack_msgid(int msgid)
{
	if (msgid == MSG_LOGIN)
		return MSG_LOGIN_ACK;
	if (msgid == MSG_REG)
		return MSG_REG_ACK;
	return MSG_ERROR;
}

/* ---- delivery -------------------------------------------------------- */

/* Keep line (without its newline) for uids until they log in. */
static int
store_offline(const int32_t *uids, size_t n, const char *line, size_t len)
{
	if (n == 0)
		return 0;
	if (store_offline_add(env.store, uids, n, line, len) != STORE_OK) {
		log_warnx("storing an offline message for %zu user(s): %s", n,
		    store_error(env.store));
		return -1;
	}
	stat_add(&env.stats->offline_stored, n);
	return 0;
}

/*
 * Deliver one forwarded line (ending in "\n") to uid if it is online on
 * this node.  0 handed over (this worker's connection, or another
 * worker that now owns the message), 1 not online here, -1 the user's
 * connection refused it (it was closed).
 */
static int
deliver_live(int32_t uid, const char *line, size_t len)
{
	struct online_entry	 e;
	struct chan_hdr		 h;
	struct conn		*c;

	if (online_get(env.online, uid, &e) == -1)
		return 1;
	if (e.slot == env.slot) {
		c = conn_lookup(e.conn);
		if (c == NULL || c->uid != uid)
			return 1;
		if (conn_send(c, line, len) == -1)
			return -1;
		stat_add(&env.stats->msgs_out, 1);
		return 0;
	}
	memset(&h, 0, sizeof(h));
	h.type = CHAN_DELIVER;
	h.uid = uid;
	h.conn = e.conn;
	h.gen = e.gen;
	h.from_slot = env.slot;
	h.len = len;
	return env.to_slot(e.slot, &h, line) == 0 ? 0 : -1;
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
		c = conn_lookup(h->conn);
		if (c != NULL && c->uid == (int32_t)h->uid &&
		    conn_send(c, payload, h->len) == 0) {
			stat_add(&env.stats->msgs_out, 1);
			break;
		}
		/* logged out meanwhile: the message must not be lost */
		(void)store_offline(&uid, 1, payload, h->len - 1);
		break;
	case CHAN_KICK:
		c = conn_lookup(h->conn);
		if (c != NULL && c->uid == (int32_t)h->uid)
			conn_close(c, "kicked");
		break;
	default:
		log_warnx("channel: unknown message type %u from worker %u",
		    h->type, h->from_slot);
		break;
	}
}

/* ---- login ----------------------------------------------------------- */

static void
proto_str_set(struct proto_str *s, const char *p, size_t len)
{
	s->p = p;
	s->len = len;
}

static int
user_online(int32_t uid)
{
	struct online_entry	 e;

	return online_get(env.online, uid, &e) == 0;
}

static void
fill_users(struct proto_user *pu, const struct store_user_list *l)
{
	size_t	 i;

	for (i = 0; i < l->n; i++) {
		pu[i].id = l->v[i].id;
		proto_str_set(&pu[i].name, l->v[i].name, l->v[i].name_len);
		pu[i].online = user_online(l->v[i].id);
		pu[i].creator = l->v[i].creator;
	}
}

/*
 * Write the login answer with friends, groups and the first offline
 * messages, then push any further offline messages as live ones.  Each
 * batch is removed from the store only once it sits in the output
 * buffer.
 */
static int
send_login_reply(struct conn *c)
{
	struct store_user_list	 friends = { NULL, 0 };
	struct store_group_list	 groups = { NULL, 0 };
	struct store_msg_list	 msgs = { NULL, 0 };
	struct proto_login	 l;
	struct proto_user	*fu = NULL, *mu = NULL;
	struct proto_group	*pg = NULL;
	struct proto_str	*om = NULL;
	size_t			 i, nmembers = 0, k, batch;
	int			 rc = -1;

	batch = env.cfg->max_offline_per_login;
	if (store_friends(env.store, c->uid, &friends) != STORE_OK ||
	    store_user_groups(env.store, c->uid, &groups) != STORE_OK ||
	    store_offline_fetch(env.store, c->uid, batch, &msgs) != STORE_OK) {
		log_warnx("login of %d: %s", c->uid, store_error(env.store));
		goto out;
	}
	for (i = 0; i < groups.n; i++)
		nmembers += groups.v[i].members.n;
	fu = calloc(friends.n + 1, sizeof(*fu));
	pg = calloc(groups.n + 1, sizeof(*pg));
	mu = calloc(nmembers + 1, sizeof(*mu));
	om = calloc(msgs.n + 1, sizeof(*om));
	if (fu == NULL || pg == NULL || mu == NULL || om == NULL)
		goto out;
	fill_users(fu, &friends);
	for (i = 0, k = 0; i < groups.n; i++) {
		pg[i].id = groups.v[i].id;
		proto_str_set(&pg[i].name, groups.v[i].name,
		    groups.v[i].name_len);
		proto_str_set(&pg[i].desc, groups.v[i].desc,
		    groups.v[i].desc_len);
		fill_users(mu + k, &groups.v[i].members);
		pg[i].members = mu + k;
		pg[i].nmembers = groups.v[i].members.n;
		k += groups.v[i].members.n;
	}
	for (i = 0; i < msgs.n; i++)
		proto_str_set(&om[i], msgs.v[i].text, msgs.v[i].len);

	memset(&l, 0, sizeof(l));
	l.id = c->uid;
	proto_str_set(&l.name, c->name, c->name_len);
	l.friends = fu;
	l.nfriends = friends.n;
	l.groups = pg;
	l.ngroups = groups.n;
	l.offline = om;
	l.noffline = msgs.n;
	if (proto_put_login_ok(&c->out, &l) == -1 || conn_sent(c) == -1)
		goto out;
	stat_add(&env.stats->msgs_out, msgs.n);

	/* the rest of a long backlog follows as ordinary messages */
	while (msgs.n > 0) {
		if (store_offline_delete(env.store, c->uid,
		    msgs.v[msgs.n - 1].id) != STORE_OK) {
			log_warnx("removing delivered offline messages of %d: "
			    "%s", c->uid, store_error(env.store));
			break;
		}
		if (msgs.n < batch || batch == 0)
			break;
		store_msg_list_free(&msgs);
		if (store_offline_fetch(env.store, c->uid, batch, &msgs) !=
		    STORE_OK) {
			log_warnx("login of %d: %s", c->uid,
			    store_error(env.store));
			break;
		}
		for (i = 0; i < msgs.n; i++) {
			if (buf_append(&c->out, msgs.v[i].text,
			    msgs.v[i].len) == -1 ||
			    buf_append(&c->out, "\n", 1) == -1)
				goto out;
		}
		if (msgs.n > 0 && conn_sent(c) == -1)
			goto out;
		stat_add(&env.stats->msgs_out, msgs.n);
	}
	rc = 0;
out:
	store_user_list_free(&friends);
	store_group_list_free(&groups);
	store_msg_list_free(&msgs);
	free(fu);
	free(pg);
	free(mu);
	free(om);
	return rc;
}

static void
login_done(struct chat_job *j)
{
	struct conn		*c = j->c;
	struct store_user	 u;
	struct online_entry	 e;
	int			 rc;

	if (j->aj.result != 1 || j->uid == 0) {
		if (j->aj.result == -1)
			log_warnx("login: password check failed");
		reply_error(c, MSG_LOGIN_ACK, ERR_AUTH, MSG_LOGIN,
		    "wrong id or password");
		return;
	}
	if (c->uid != 0) {
		reply_error(c, MSG_LOGIN_ACK, ERR_ALREADY_LOGGED_IN, MSG_LOGIN,
		    NULL);
		return;
	}
	rc = online_add(env.online, j->uid, env.slot, c->id, &e);
	if (rc == 1) {
		reply_error(c, MSG_LOGIN_ACK, ERR_ONLINE, MSG_LOGIN,
		    "this user is already online");
		return;
	}
	if (rc == -1) {
		log_warnx("session table full (max_online = %d)",
		    env.cfg->max_online);
		reply_error(c, MSG_LOGIN_ACK, ERR_LIMIT, MSG_LOGIN,
		    "server full");
		return;
	}
	/* the name may have been looked up by id: take the stored one */
	if (store_user_get(env.store, j->uid, &u) != STORE_OK) {
		online_remove(env.online, j->uid, env.slot, c->id);
		reply_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		return;
	}
	c->uid = j->uid;
	free(c->name);
	c->name = u.name;
	c->name_len = u.name_len;
	u.name = NULL;
	store_user_clear(&u);
	conn_logged_in(c);
	stat_add(&env.stats->logins, 1);
	if (send_login_reply(c) == -1 && !c->closing) {
		/* undo: a half-answered login helps nobody */
		online_remove(env.online, c->uid, env.slot, c->id);
		c->uid = 0;
		reply_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
	}
}

static void
reg_done(struct chat_job *j)
{
	struct conn	*c = j->c;
	int32_t		 id;
	int		 rc;

	if (j->aj.result != 0) {
		log_warnx("register: hashing the password failed");
		reply_error(c, MSG_REG_ACK, ERR_UNAVAILABLE, MSG_REG, NULL);
		return;
	}
	rc = store_user_create(env.store, j->name, j->name_len, j->aj.hash,
	    &id);
	if (rc == STORE_EXISTS) {
		reply_error(c, MSG_REG_ACK, ERR_AUTH, MSG_REG,
		    "this name is taken");
		return;
	}
	if (rc != STORE_OK) {
		log_warnx("register: %s", store_error(env.store));
		reply_error(c, MSG_REG_ACK, ERR_UNAVAILABLE, MSG_REG, NULL);
		return;
	}
	if (proto_put_reg_ack(&c->out, id) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
}

static void
chat_job_done(struct auth_job *aj)
{
	struct chat_job	*j = (struct chat_job *)aj;
	struct conn	*c = j->c;

	conn_unref(c);
	if (!c->closing) {
		if (j->msgid == MSG_LOGIN)
			login_done(j);
		else
			reg_done(j);
		conn_resume(c);
	}
	explicit_bzero(j->aj.pw, j->aj.pwlen);
	free(j->aj.pw);
	free(j->name);
	free(j);
}

/* Hash or verify off the loop; the connection waits, others go on. */
static void
submit_job(struct conn *c, struct chat_job *j, const struct proto_req *req)
{
	j->c = c;
	j->msgid = req->msgid;
	j->aj.done = chat_job_done;
	j->aj.cost = env.cfg->password_cost;
	j->aj.pwlen = req->password.len;
	if ((j->aj.pw = malloc(req->password.len + 1)) == NULL) {
		free(j->name);
		free(j);
		reply_error(c, ack_msgid(req->msgid), ERR_UNAVAILABLE,
		    req->msgid, NULL);
		return;
	}
	memcpy(j->aj.pw, req->password.p, req->password.len);
	j->aj.pw[req->password.len] = '\0';
	c->jobs++;
	conn_pause(c);
	authpool_submit(env.auth, &j->aj);
}

static void
handle_login(struct conn *c, const struct proto_req *req)
{
	struct store_user	 u;
	struct chat_job		*j;
	int			 rc;

	if (c->uid != 0) {
		reply_error(c, MSG_LOGIN_ACK, ERR_ALREADY_LOGGED_IN, MSG_LOGIN,
		    NULL);
		return;
	}
	memset(&u, 0, sizeof(u));
	if (req->has_id)
		rc = store_user_get(env.store, req->id, &u);
	else
		rc = store_user_by_name(env.store, req->name.p, req->name.len,
		    &u);
	if (rc == STORE_ERR) {
		log_warnx("login: %s", store_error(env.store));
		reply_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		store_user_clear(&u);
		reply_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		return;
	}
	j->aj.kind = AUTH_VERIFY;
	if (rc == STORE_OK && u.pwhash != NULL &&
	    strlen(u.pwhash) < sizeof(j->aj.hash)) {
		j->uid = u.id;
		memcpy(j->aj.hash, u.pwhash, strlen(u.pwhash) + 1);
	} else {
		/* no such user: spend the same time, answer the same way */
		snprintf(j->aj.hash, sizeof(j->aj.hash), "%s",
		    auth_dummy_hash(env.cfg->password_cost));
	}
	store_user_clear(&u);
	submit_job(c, j, req);
}

static void
handle_reg(struct conn *c, const struct proto_req *req)
{
	struct chat_job	*j;

	if (memchr(req->password.p, '\0', req->password.len) != NULL) {
		reply_error(c, MSG_REG_ACK, ERR_BAD_VALUE, MSG_REG,
		    "field \"password\": must not contain U+0000");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->name = malloc(req->name.len + 1)) == NULL) {
		free(j);
		reply_error(c, MSG_REG_ACK, ERR_UNAVAILABLE, MSG_REG, NULL);
		return;
	}
	memcpy(j->name, req->name.p, req->name.len);
	j->name[req->name.len] = '\0';
	j->name_len = req->name.len;
	j->aj.kind = AUTH_HASH;
	submit_job(c, j, req);
}

static void
logout(struct conn *c)
{
	if (c->uid == 0)
		return;
	online_remove(env.online, c->uid, env.slot, c->id);
	c->uid = 0;
	free(c->name);
	c->name = NULL;
	c->name_len = 0;
}

void
chat_closing(struct conn *c)
{
	logout(c);
}

/* ---- chats ------------------------------------------------------------- */

/* The forwarded line: sender's object with the real id and name, "\n". */
static int
forward_line(struct conn *c, const struct proto_req *req, struct buf *line)
{
	if (proto_put_forward(line, req, c->uid, c->name, c->name_len) == -1 ||
	    buf_append(line, "\n", 1) == -1)
		return -1;
	return 0;
}

static void
handle_one_chat(struct conn *c, const struct proto_req *req)
{
	struct buf		 line = BUF_INIT;
	struct store_user	 u;
	int			 rc;

	if (forward_line(c, req, &line) == -1) {
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	rc = deliver_live(req->toid, buf_head(&line), buf_used(&line));
	if (rc == 0)
		goto out;
	/* offline: only a real user may have messages kept for them */
	memset(&u, 0, sizeof(u));
	rc = store_user_get(env.store, req->toid, &u);
	store_user_clear(&u);
	if (rc == STORE_NOTFOUND) {
		reply_error(c, MSG_ERROR, ERR_NO_SUCH_USER, req->msgid, NULL);
		goto out;
	}
	if (rc != STORE_OK ||
	    store_offline(&req->toid, 1, buf_head(&line),
	    buf_used(&line) - 1) == -1)
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid,
		    "message could not be stored; send it again later");
out:
	buf_free(&line);
}

static void
handle_group_chat(struct conn *c, const struct proto_req *req)
{
	struct store_user_list	 members = { NULL, 0 };
	struct buf		 line = BUF_INIT;
	int32_t			*away = NULL;
	size_t			 i, naway = 0;
	int			 rc;

	rc = store_group_members(env.store, req->groupid, &members);
	if (rc == STORE_NOTFOUND) {
		reply_error(c, MSG_ERROR, ERR_NO_SUCH_GROUP, req->msgid, NULL);
		goto out;
	}
	if (rc != STORE_OK) {
		log_warnx("group chat: %s", store_error(env.store));
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	for (i = 0; i < members.n; i++)
		if (members.v[i].id == c->uid)
			break;
	if (i == members.n) {
		reply_error(c, MSG_ERROR, ERR_NOT_MEMBER, req->msgid,
		    "only members may post to a group");
		goto out;
	}
	if (forward_line(c, req, &line) == -1 ||
	    (away = calloc(members.n, sizeof(*away))) == NULL) {
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		goto out;
	}
	for (i = 0; i < members.n; i++) {
		if (members.v[i].id == c->uid)
			continue;
		if (deliver_live(members.v[i].id, buf_head(&line),
		    buf_used(&line)) != 0)
			away[naway++] = members.v[i].id;
	}
	if (store_offline(away, naway, buf_head(&line),
	    buf_used(&line) - 1) == -1)
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid,
		    "message could not be stored for members who are away");
out:
	free(away);
	buf_free(&line);
	store_user_list_free(&members);
}

static void
handle_add_friend(struct conn *c, const struct proto_req *req)
{
	int	 rc;

	if (req->friendid == c->uid) {
		reply_error(c, MSG_ERROR, ERR_NOT_ALLOWED, req->msgid,
		    "you cannot befriend yourself");
		return;
	}
	rc = store_friend_add(env.store, c->uid, req->friendid);
	if (rc == STORE_NOTFOUND)
		reply_error(c, MSG_ERROR, ERR_NO_SUCH_USER, req->msgid, NULL);
	else if (rc != STORE_OK) {
		log_warnx("add friend: %s", store_error(env.store));
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
	}
}

static void
handle_create_group(struct conn *c, const struct proto_req *req)
{
	int32_t	 gid;
	int	 rc;

	rc = store_group_create(env.store, c->uid, req->groupname.p,
	    req->groupname.len, req->groupdesc.p, req->groupdesc.len, &gid);
	if (rc == STORE_EXISTS)
		reply_error(c, MSG_ERROR, ERR_EXISTS, req->msgid,
		    "a group with this name exists");
	else if (rc != STORE_OK) {
		log_warnx("create group: %s", store_error(env.store));
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
	}
}

static void
handle_add_group(struct conn *c, const struct proto_req *req)
{
	int	 rc;

	rc = store_group_join(env.store, req->groupid, c->uid);
	if (rc == STORE_NOTFOUND)
		reply_error(c, MSG_ERROR, ERR_NO_SUCH_GROUP, req->msgid, NULL);
	else if (rc != STORE_OK) {
		log_warnx("join group: %s", store_error(env.store));
		reply_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
	}
}

static void
handle_whoami(struct conn *c, const struct proto_req *req)
{
	if (buf_printf(&c->out, "{\"msgid\":%d,\"errno\":0,\"id\":%d,"
	    "\"worker\":%d,\"pid\":%d}\n", MSG_WHOAMI_ACK, (int)c->uid,
	    env.slot, (int)getpid()) == -1)
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

	if (st == FRAME_BAD) {
		reply_error(c, MSG_ERROR, ERR_MALFORMED, 0,
		    "malformed JSON (raw control character in a string?)");
		return;
	}
	if (proto_decode(p, n, &limits, &req, &fail) == -1) {
		reply_error(c, fail.reply_msgid, fail.code, fail.refmsgid,
		    fail.text);
		return;
	}
	stat_add(&env.stats->msgs_in, 1);
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
	if (c->uid == 0) {
		reply_error(c, MSG_ERROR, ERR_NOT_LOGGED_IN, req.msgid,
		    "log in first");
		goto done;
	}
	if (req.has_id && req.id != c->uid) {
		reply_error(c, MSG_ERROR, ERR_IDENTITY, req.msgid,
		    "\"id\" is not the user logged in on this connection");
		goto done;
	}
	switch (req.msgid) {
	case MSG_LOGINOUT:
		logout(c);
		break;
	case MSG_ONE_CHAT:
		handle_one_chat(c, &req);
		break;
	case MSG_GROUP_CHAT:
		handle_group_chat(c, &req);
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
	default:
		reply_error(c, MSG_ERROR, ERR_UNKNOWN_MSGID, req.msgid, NULL);
		break;
	}
done:
	proto_req_clear(&req);
}
