/* chat_login.c - register, login (with the cluster claim), logout. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cfg.h"
#include "guard.h"
#include "chat_impl.h"
#include "log.h"
#include "pubsub.h"
#include "store.h"
#include "token.h"
#include "util.h"

/* An answer that needs the hash pool; holds a reference on its conn. */
struct chat_job {
	struct auth_job	 aj;
	struct conn	*c;
	int		 msgid;
	int32_t		 uid;		/* LOGIN: the user found, 0 if none */
	uint64_t	 ukey;		/* LOGIN: failed-login key of the user */
	char		*name;		/* REG: the new user's name */
	size_t		 name_len;
	int		 resumed;	/* LOGIN with a token: may take over */
	uint64_t	 token_gen;	/* resumed: the token's generation */
	int		 gen_checked;	/* resumed: token_gen is still current */
	int		 leave_expired;	/* waited for a leaving mark: take it */
	double		 leave_deadline; /* when that wait ends (0: none yet) */
};

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

static int
cmp_uid(const void *a, const void *b)
{
	int32_t	 x = *(const int32_t *)a, y = *(const int32_t *)b;

	return x < y ? -1 : x > y;
}

/* remote: sorted ids online on other nodes (cluster mode), may be NULL. */
static void
fill_users(struct proto_user *pu, const struct store_user_list *l,
    const int32_t *remote, size_t nremote)
{
	size_t	 i;

	for (i = 0; i < l->n; i++) {
		pu[i].id = l->v[i].id;
		chat_str_set(&pu[i].name, l->v[i].name, l->v[i].name_len);
		pu[i].online = user_online(l->v[i].id) || (nremote > 0 &&
		    bsearch(&l->v[i].id, remote, nremote, sizeof(*remote),
		    cmp_uid) != NULL);
		pu[i].creator = l->v[i].creator;
		user_known_add(l->v[i].id);
	}
}

/*
 * Write the login answer with friends, groups and the first offline
 * messages (the only batch of this login unless the client acknowledges
 * them: chat_offline.c).  The batch is removed from the store once it
 * reached the kernel, or when an ackoffline client acknowledges it.
 */
static int
send_login_reply(struct conn *c, const struct store_user_list *friends,
    const struct store_group_list *groups, const int32_t *remote,
    size_t nremote, const struct store_msg_list *batch)
{
	const struct store_msg_list	 msgs = *batch;
	struct proto_login	 l;
	struct proto_user	*fu = NULL, *mu = NULL;
	struct proto_group	*pg = NULL;
	struct proto_str	*om = NULL;
	char			 tok[TOKEN_BUF_LEN];
	unsigned char		*skip = NULL;
	size_t			 i, nmembers = 0, k, noff, nom, cap, fb;
	int			 rc = -1;

	c->sess->backlog_held = 0;
	/* a previous user's unacknowledged copies stay stored for them */
	if (c->sess->acks)
		c->sess->ndelivered = 0;
	for (i = 0; i < groups->n; i++)
		nmembers += groups->v[i].members.n;
	fu = calloc(friends->n + 1, sizeof(*fu));
	pg = calloc(groups->n + 1, sizeof(*pg));
	mu = calloc(nmembers + 1, sizeof(*mu));
	om = calloc(msgs.n + 1, sizeof(*om));
	if (fu == NULL || pg == NULL || mu == NULL || om == NULL)
		goto out;
	fill_users(fu, friends, remote, nremote);
	/*
	 * The answer must fit in max_output_bytes beside its offline batch
	 * (a quarter): members lists are cut to what half of it holds, a
	 * cut list says "userstotal", GROUP_MEMBERS pages the rest.
	 */
	for (i = 0, fb = 0; i < friends->n; i++)
		fb += proto_member_bytes(friends->v[i].name_len);
	cap = members_cap(groups, chat.cfg->max_output_bytes / 2 > fb ?
	    chat.cfg->max_output_bytes / 2 - fb : 0);
	for (i = 0, k = 0; i < groups->n; i++) {
		struct store_user_list	 part = groups->v[i].members;

		if (part.n > cap)
			part.n = cap;
		pg[i].id = groups->v[i].id;
		chat_str_set(&pg[i].name, groups->v[i].name,
		    groups->v[i].name_len);
		chat_str_set(&pg[i].desc, groups->v[i].desc,
		    groups->v[i].desc_len);
		fill_users(mu + k, &part, remote, nremote);
		pg[i].members = mu + k;
		pg[i].nmembers = part.n;
		pg[i].total = groups->v[i].members.n;
		k += part.n;
	}
	noff = offline_fits(&msgs);
	/* a plain client logging in again on this connection had some */
	if ((skip = calloc(noff + 1, 1)) == NULL)
		goto out;
	(void)seen_filter(c->sess, &msgs, noff, skip);
	for (i = 0, nom = 0; i < noff; i++)
		if (!skip[i])
			chat_str_set(&om[nom++], msgs.v[i].text,
			    msgs.v[i].len);

	memset(&l, 0, sizeof(l));
	l.id = c->sess->uid;
	chat_str_set(&l.name, c->sess->name, c->sess->name_len);
	l.friends = fu;
	l.nfriends = friends->n;
	l.groups = pg;
	l.ngroups = groups->n;
	l.offline = om;
	l.noffline = nom;
	if (c->sess->ack_offline) {
		l.ackoffline = 1;
		l.offlineupto = noff > 0 ? msgs.v[noff - 1].id : 0;
		l.offlinemore = offline_more(&msgs, noff);
	}
	if (c->sess->want_token && session_token(c, tok, sizeof(tok),
	    &l.tokenexpires) == 0)
		l.token = tok;
	if (proto_put_login_ok(&c->out, &l) == -1 || conn_sent(c) == -1)
		goto out;
	chat_stat(&chat.stats->msgs_out, nom);
	offline_sent(c, &msgs, noff);
	rc = 0;
out:
	explicit_bzero(tok, sizeof(tok));
	free(skip);
	free(fu);
	free(pg);
	free(mu);
	free(om);
	return rc;
}

/*
 * The user is in: from here on messages reach c live.  Anything that
 * arrived while the login was under way was stored and was fetched (d,
 * read last, after the session was in the table and claimed); a copy
 * stored since the read began is fetched once more.  name (malloc'ed)
 * is taken over.
 */
static void
login_answer(struct conn *c, int32_t uid, char *name, size_t name_len,
    const struct store_user_list *friends,
    const struct store_group_list *groups, const int32_t *remote,
    size_t nremote, const struct login_data *d)
{
	struct session	*s = c->sess;

	s->uid = uid;
	s->login_at = util_mono_coarse();	/* RESUME waits from here */
	free(s->name);
	s->name = name;
	s->name_len = name_len;
	if (d->want_gen || d->check_gen) {
		s->token_gen = d->gen;
		s->has_gen = 1;
	}
	user_known_add(uid);
	conn_logged_in(c);
	chat_stat(&chat.stats->logins, 1);
	if (send_login_reply(c, friends, groups, remote, nremote,
	    &d->msgs) == -1 && !c->closing) {
		/* undo: a half-answered login helps nobody */
		chat_logout(c);
		chat_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
	} else if (!c->closing) {
		chat_handover_keep(c);	/* survives a crash of this worker */
		if (chat_stores_done() != d->stores_seen)
			chat_stored(NULL, uid);
	}
}

/* What a login reads last: its offline batch and token generation. */
static void
want_batch(struct conn *c, int32_t uid, struct login_data *w)
{
	memset(w, 0, sizeof(*w));
	w->uid = uid;
	w->want_msgs = 1;
	w->max_msgs = chat.cfg->max_offline_per_login;
	w->want_gen = c->sess->want_token;
}

/*
 * Cluster mode: a login between the local session table and the
 * answer.  The connection stays paused and referenced (c->jobs) while
 * Redis is asked; c->sess->uid stays 0 until the answer is written.
 */
struct login {
	struct conn		*c;
	int32_t			 uid;
	int			 claimed;	/* release when undone */
	char			*name;
	size_t			 name_len;
	struct store_user_list	 friends;
	struct store_group_list	 groups;
	int32_t			*remote;	/* sorted: online elsewhere */
	size_t			 nremote;
};

static void
login_free(struct login *l)
{
	free(l->name);
	free(l->remote);
	store_user_list_free(&l->friends);
	store_group_list_free(&l->groups);
	free(l);
}

/* Take the session back: the connection went away, or no answer. */
static void
login_undo(struct login *l)
{
	online_remove(chat.online, l->uid, chat.slot, l->c->id);
	if (l->claimed)
		pubsub_release(chat.pubsub, l->uid);
}

static void
login_fetched(struct conn *c, struct login_data *d, void *arg)
{
	struct login	*l = arg;

	if (c->closing) {
		login_undo(l);
		login_free(l);
		return;
	}
	if (d->rc != STORE_OK) {
		login_undo(l);
		chat_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
	} else {
		login_answer(c, l->uid, l->name, l->name_len, &l->friends,
		    &l->groups, l->remote, l->nremote, d);
		l->name = NULL;
	}
	conn_resume(c);
	login_free(l);
}

/* Claimed and asked: the batch is read last, then the answer. */
static void
login_finish(struct login *l)
{
	struct conn		*c = l->c;
	struct login_data	 w;

	want_batch(c, l->uid, &w);
	if (login_data_submit(c, &w, NULL, 0, login_fetched, l) == 0)
		return;
	login_undo(l);
	chat_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
	conn_resume(c);
	login_free(l);
}

static void
login_queried(void *arg, int result, const int32_t *uids, const int *online,
    size_t n)
{
	struct login	*l = arg;
	struct conn	*c = l->c;
	size_t		 i;

	conn_unref(c);
	if (c->closing) {
		login_undo(l);
		login_free(l);
		return;
	}
	/* Redis down (result -1): users of other nodes show as offline */
	if (result == 0 && (l->remote = calloc(n + 1, sizeof(*uids))) != NULL)
		for (i = 0; i < n; i++)
			if (online[i])
				l->remote[l->nremote++] = uids[i];
	login_finish(l);
}

static void
login_claimed(void *arg, enum pubsub_claim_result result)
{
	struct login	*l = arg;
	struct conn	*c = l->c;
	int32_t		*ask = NULL;
	size_t		 i, j, n = 0, nask = 0;

	conn_unref(c);
	l->claimed = result != PUBSUB_ELSEWHERE;
	if (c->closing) {
		login_undo(l);
		login_free(l);
		return;
	}
	if (result == PUBSUB_ELSEWHERE) {
		online_remove(chat.online, l->uid, chat.slot, c->id);
		chat_error(c, MSG_LOGIN_ACK, ERR_ONLINE, MSG_LOGIN,
		    "this user is already online");
		goto resume;
	}
	/*
	 * PUBSUB_UNREACHABLE: Redis is out of reach.  The user logs in anyway:
	 * chat with users of this node must go on, and the claim is
	 * made once Redis is back.
	 */
	if (result == PUBSUB_CLAIMED) {
		/* whose state this node cannot tell: not online here */
		n = l->friends.n;
		for (i = 0; i < l->groups.n; i++)
			n += l->groups.v[i].members.n;
		if ((ask = calloc(n + 1, sizeof(*ask))) == NULL)
			n = 0;
		for (i = 0; i < l->friends.n && n > 0; i++)
			ask[nask++] = l->friends.v[i].id;
		for (i = 0; i < l->groups.n && n > 0; i++)
			for (j = 0; j < l->groups.v[i].members.n; j++)
				ask[nask++] = l->groups.v[i].members.v[j].id;
		qsort(ask, nask, sizeof(*ask), cmp_uid);
		for (i = 0, n = 0; i < nask; i++)
			if ((n == 0 || ask[n - 1] != ask[i]) &&
			    ask[i] != l->uid && !user_online(ask[i]))
				ask[n++] = ask[i];
		nask = n;
	}
	if (nask == 0) {
		free(ask);
		login_finish(l);
		return;
	}
	c->jobs++;
	pubsub_query_online(chat.pubsub, ask, nask, login_queried, l);
	free(ask);
	return;
resume:
	conn_resume(c);
	login_free(l);
}

enum login_result {
	LOGIN_ANSWERED,		/* c may go on */
	LOGIN_PENDING		/* the answer follows; c stays paused */
};

/*
 * A resumed session (token login) takes over the user's session e on
 * this node: most often the same client, whose old connection is not
 * yet known dead (a network change sends no FIN).  The old connection
 * is closed without a logout: the user stays online, now on c.  0, or
 * -1 when e changed meanwhile.
 */
static int
take_over(struct conn *c, const struct online_entry *e)
{
	struct conn	*old;
	struct chan_hdr	 h;

	if (online_replace(chat.online, e, chat.slot, c->id) == -1)
		return -1;
	if (e->slot == chat.slot) {
		/* detached first, so that closing it releases nothing */
		if ((old = session_conn(e->conn, (int32_t)e->uid)) != NULL) {
			conn_logged_out(old);
			chat_handover_drop(old);	/* the master's copy */
			old->sess->uid = 0;
			conn_close(old, "taken over by a resumed session");
		}
	} else {
		/* that worker's logout finds the entry and presence ours */
		memset(&h, 0, sizeof(h));
		h.type = CHAN_KICK;
		h.uid = e->uid;
		h.conn = e->conn;
		h.gen = e->gen;
		h.from_slot = chat.slot;
		(void)chat.to_slot(e->slot, &h, "");
	}
	log_info("user %u resumed on a new connection; its connection %u of "
	    "worker %u is closed", e->uid, e->conn, e->slot);
	return 0;
}

/* A token login's generation check failed (d->revoked) or could not be made. */
static void
token_refused(struct conn *c, const struct login_data *d)
{
	if (d->rc != STORE_OK)
		chat_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
	else
		chat_error(c, MSG_LOGIN_ACK, ERR_TOKEN, MSG_LOGIN,
		    "resume token revoked");
}

/* The user's name, friends and groups (single node: and the batch). */
static void
login_read(struct conn *c, struct login_data *d, void *arg)
{
	struct login	*l;

	(void)arg;
	if (c->closing) {
		online_remove(chat.online, d->uid, chat.slot, c->id);
		return;
	}
	if (d->rc != STORE_OK || d->revoked) {
		online_remove(chat.online, d->uid, chat.slot, c->id);
		token_refused(c, d);
		conn_resume(c);
		return;
	}
	/* this user's blocks (a logout drops them); no memory: read at
	 * the first delivery */
	if (!d->blocks_read || session_blocks_set(c->sess, &d->blocks) == -1)
		session_blocks_free(c->sess);
	if (chat.pubsub == NULL) {
		/* a single node: nothing to ask anyone, answer now */
		login_answer(c, d->uid, d->user.name, d->user.name_len,
		    &d->friends, &d->groups, NULL, 0, d);
		d->user.name = NULL;
		conn_resume(c);
		return;
	}
	/* one session per user across the cluster: claim it in Redis */
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		online_remove(chat.online, d->uid, chat.slot, c->id);
		chat_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		conn_resume(c);
		return;
	}
	l->c = c;
	l->uid = d->uid;
	l->name = d->user.name;
	l->name_len = d->user.name_len;
	d->user.name = NULL;
	l->friends = d->friends;
	l->groups = d->groups;
	memset(&d->friends, 0, sizeof(d->friends));
	memset(&d->groups, 0, sizeof(d->groups));
	c->jobs++;
	if (d->take_over)	/* a session on another node is displaced */
		pubsub_take_over(chat.pubsub, l->uid, login_claimed, l);
	else
		pubsub_claim(chat.pubsub, l->uid, login_claimed, l);
}

static void	take_over_checked(struct conn *, struct login_data *, void *);

/* j's connection waits for a leaving mark (chat_leave.c): 0, or -1. */
static int
login_wait(struct chat_job *j)
{
	struct leave_login	 l;

	memset(&l, 0, sizeof(l));
	l.uid = j->uid;
	l.resumed = j->resumed;
	l.token_gen = j->token_gen;
	l.gen_checked = j->gen_checked;
	l.deadline = j->leave_deadline;
	return leave_wait(j->c, &l);
}

/*
 * The user just logged out of worker e->slot, which still removes what
 * it wrote to that session (chat_leave.c): wait for that (ONLINE_TAKEN:
 * j's connection waits), or, waited long enough, take the entry.
 */
static enum online_add_result
login_leaving(struct chat_job *j, struct online_entry *e)
{
	int			 tries;

	/* a mark of this worker's: the fetch is ordered behind its
	 * removals in the write store thread (offline_fetch_queue) once
	 * they are submitted, that is once its lines drained */
	if ((e->slot != chat.slot || leave_draining(j->uid)) &&
	    !j->leave_expired && login_wait(j) == 0)
		return ONLINE_TAKEN;
	/* the mark may go (or a session come) meanwhile: look again */
	for (tries = 0; tries < 3; tries++) {
		if (e->conn == ONLINE_LEAVING && online_replace(chat.online,
		    e, chat.slot, j->c->id) == 0)
			return ONLINE_ADDED;
		if (e->conn != ONLINE_LEAVING)
			return ONLINE_TAKEN;
		switch (online_add(chat.online, j->uid, chat.slot, j->c->id,
		    e)) {
		case ONLINE_ADDED:
			return ONLINE_ADDED;
		case ONLINE_REFUSED:
			return ONLINE_REFUSED;
		case ONLINE_TAKEN:
			break;
		}
	}
	return ONLINE_REFUSED;
}

static enum login_result
login_done(struct chat_job *j)
{
	struct conn		*c = j->c;
	struct online_entry	 e;
	struct login_data	 w;
	enum online_add_result	 added;

	if (j->aj.result != AUTH_OK || j->uid == 0) {
		if (j->aj.result == AUTH_FAIL)
			log_warnx("login: password check failed");
		chat_error(c, MSG_LOGIN_ACK, ERR_AUTH, MSG_LOGIN,
		    "wrong id or password");
		return LOGIN_ANSWERED;
	}
	if (c->sess->uid != 0) {
		chat_error(c, MSG_LOGIN_ACK, ERR_ALREADY_LOGGED_IN, MSG_LOGIN,
		    NULL);
		return LOGIN_ANSWERED;
	}
	/* an upgrade's old worker, where the user just logged out */
	if (!j->leave_expired && leave_old_marked(j->uid) &&
	    login_wait(j) == 0)
		return LOGIN_PENDING;
	added = online_add(chat.online, j->uid, chat.slot, c->id, &e);
	if (added == ONLINE_TAKEN && e.conn == ONLINE_LEAVING &&
	    (added = login_leaving(j, &e)) == ONLINE_TAKEN)
		return LOGIN_PENDING;	/* waits for the mark */
	if (added == ONLINE_TAKEN && j->resumed && !j->gen_checked) {
		/* a revoked token must not displace anyone: check first */
		memset(&w, 0, sizeof(w));
		w.uid = j->uid;
		w.check_gen = 1;
		w.token_gen = j->token_gen;
		if (login_data_submit(c, &w, NULL, 0, take_over_checked,
		    NULL) == 0)
			return LOGIN_PENDING;
		chat_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		return LOGIN_ANSWERED;
	}
	if (added == ONLINE_TAKEN && j->resumed && take_over(c, &e) == 0)
		added = ONLINE_ADDED;
	if (added == ONLINE_TAKEN) {
		chat_error(c, MSG_LOGIN_ACK, ERR_ONLINE, MSG_LOGIN,
		    "this user is already online");
		return LOGIN_ANSWERED;
	}
	if (added == ONLINE_REFUSED) {
		log_warnx("session table full (max_online = %d)",
		    chat.cfg->max_online);
		chat_error(c, MSG_LOGIN_ACK, ERR_LIMIT, MSG_LOGIN,
		    "server full");
		return LOGIN_ANSWERED;
	}
	/*
	 * The stored name (it may have been looked up by id), friends and
	 * groups; on a single node the batch too: read in the read store
	 * thread while c waits.  A cluster claims the user in Redis next.
	 */
	memset(&w, 0, sizeof(w));
	if (chat.pubsub == NULL)
		want_batch(c, j->uid, &w);
	w.uid = j->uid;
	w.want_user = 1;
	w.want_lists = 1;
	w.take_over = j->resumed;
	/* the generation check of a token login rides along (read first) */
	w.check_gen = j->resumed;
	w.token_gen = j->token_gen;
	if (login_data_submit(c, &w, NULL, 0, login_read, NULL) == -1) {
		online_remove(chat.online, j->uid, chat.slot, c->id);
		chat_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		return LOGIN_ANSWERED;
	}
	return LOGIN_PENDING;
}

static enum login_result
login_resumed(struct conn *c, int32_t uid, uint64_t gen, int gen_checked)
{
	struct chat_job	 j;

	memset(&j, 0, sizeof(j));
	j.c = c;
	j.msgid = MSG_LOGIN;
	j.aj.result = AUTH_OK;
	j.uid = uid;
	j.resumed = 1;
	j.token_gen = gen;
	j.gen_checked = gen_checked;
	return login_done(&j);
}

void
chat_login_again(struct conn *c, const struct leave_login *l, int expired)
{
	struct chat_job	 j;

	memset(&j, 0, sizeof(j));
	j.c = c;
	j.msgid = MSG_LOGIN;
	j.aj.result = AUTH_OK;
	j.uid = l->uid;
	j.resumed = l->resumed;
	j.token_gen = l->token_gen;
	j.gen_checked = l->gen_checked;
	j.leave_expired = expired;
	j.leave_deadline = l->deadline;
	if (login_done(&j) == LOGIN_ANSWERED)
		conn_resume(c);
}

/* The user is online already and the token's generation was read. */
static void
take_over_checked(struct conn *c, struct login_data *d, void *arg)
{
	(void)arg;
	if (c->closing)
		return;
	if (d->rc != STORE_OK || d->revoked)
		token_refused(c, d);
	else if (login_resumed(c, d->uid, d->token_gen, 1) == LOGIN_PENDING)
		return;
	conn_resume(c);
}

/*
 * A token whose signature and expiry were checked: its generation is
 * read in the read store thread with the rest of the login (one job),
 * so that a token login makes no store call on the loop.
 */
void
chat_login_resumed(struct conn *c, int32_t uid, uint64_t gen)
{
	conn_pause(c);
	if (login_resumed(c, uid, gen, 0) == LOGIN_ANSWERED)
		conn_resume(c);
}

/* A registration's new user, stored in the write store thread. */
struct reg_call {
	struct chat_call	 k;
	char			*name;
	size_t			 name_len;
	char			 hash[AUTH_HASH_MAX];
	int32_t			 id;
};

static void
reg_run(struct chat_call *k, struct store *st)
{
	struct reg_call	*r = (struct reg_call *)k;
	int		 rc;

	rc = store_user_create(st, r->name, r->name_len, r->hash, &r->id);
	if (rc == STORE_EXISTS) {
		k->code = ERR_AUTH;
		k->text = "this name is taken";
	} else if (rc != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "register");
}

static void
reg_answer(struct conn *c, struct chat_call *k)
{
	if (c == NULL || k->code != 0)
		return;
	if (proto_put_reg_ack(&c->out, ((struct reg_call *)k)->id) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
}

static void
reg_release(struct chat_call *k)
{
	struct reg_call	*r = (struct reg_call *)k;

	free(r->name);
	explicit_bzero(r->hash, sizeof(r->hash));
	free(r);
}

/* The password hashed: the user is stored; c stays paused till then. */
static void
reg_done(struct chat_job *j)
{
	struct conn	*c = j->c;
	struct reg_call	*r;

	if (j->aj.result != AUTH_OK) {
		log_warnx("register: hashing the password failed");
		chat_error(c, MSG_REG_ACK, ERR_UNAVAILABLE, MSG_REG, NULL);
		conn_resume(c);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		chat_error(c, MSG_REG_ACK, ERR_UNAVAILABLE, MSG_REG, NULL);
		conn_resume(c);
		return;
	}
	r->name = j->name;
	r->name_len = j->name_len;
	j->name = NULL;
	memcpy(r->hash, j->aj.hash, sizeof(r->hash));
	r->k.run = reg_run;
	r->k.answer = reg_answer;
	r->k.release = reg_release;
	r->k.refmsgid = MSG_REG;
	r->k.reply_msgid = MSG_REG_ACK;
	chat_call_submit(c, &r->k, NULL, CALL_WRITE, 1);
}

static void
chat_job_done(struct auth_job *aj)
{
	struct chat_job	*j = (struct chat_job *)aj;
	struct conn	*c = j->c;

	conn_unref(c);
	/* counted even when the client left without waiting for the answer */
	if (j->msgid == MSG_LOGIN && j->aj.result == AUTH_OK && j->uid != 0) {
		guard_login_ok(chat.guard, j->ukey);
		if (chat.pubsub != NULL)
			pubsub_login_ok(chat.pubsub, j->ukey);
	} else if (j->msgid == MSG_LOGIN && j->aj.result != AUTH_FAIL)
		chat_login_failed(c, j->ukey);
	if (!c->closing) {
		if (j->msgid != MSG_LOGIN)
			reg_done(j);
		else if (login_done(j) == LOGIN_ANSWERED)
			conn_resume(c);
	}
	explicit_bzero(j->aj.pw, j->aj.pwlen);
	free(j->aj.pw);
	free(j->name);
	free(j);
}

/*
 * Hash or verify pw off the loop; the connection waits, others go on.
 * -1: answered (j freed).
 */
static int
submit_job(struct conn *c, struct chat_job *j, int msgid, const char *pw,
    size_t pwlen)
{
	j->c = c;
	j->msgid = msgid;
	j->aj.done = chat_job_done;
	j->aj.cost = chat.cfg->password_cost;
	j->aj.pwlen = pwlen;
	if ((j->aj.pw = malloc(pwlen + 1)) == NULL) {
		free(j->name);
		free(j);
		chat_error(c, ack_msgid(msgid), ERR_UNAVAILABLE, msgid, NULL);
		return -1;
	}
	memcpy(j->aj.pw, pw, pwlen);
	j->aj.pw[pwlen] = '\0';
	c->jobs++;
	conn_pause(c);
	authpool_submit(chat.auth, &j->aj);
	return 0;
}

/* A LOGIN while its user is looked up (read store thread). */
struct login_pw {
	int	 has_id;
	int32_t	 id;
	size_t	 pwlen;
	char	 pw[];
};

/*
 * The user looked up (or not): checked against the failed-login limits,
 * then its password verified.
 */
static void
login_looked_up(struct conn *c, struct login_data *d, void *arg)
{
	struct login_pw		*p = arg;
	struct store_user	*u = &d->user;
	struct chat_job		*j;
	uint64_t		 ukey;
	char			 text[128];
	int			 retry;

	if (c->closing)
		goto out;
	if (d->rc == STORE_ERR) {
		chat_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		goto resume;
	}
	/* the hash queue may have filled while the user was looked up */
	if (auth_busy(c, MSG_LOGIN) == -1)
		goto resume;
	/*
	 * Too many failures for this user or from this address: refused
	 * before any hashing, the same way whether the user exists or not
	 * (by name or by id, a user is one key once found).
	 */
	if (d->rc == STORE_OK)
		ukey = guard_user_key(chat.guard, u->id);
	else if (p->has_id)
		ukey = guard_user_key(chat.guard, p->id);
	else
		ukey = guard_name_key(chat.guard, d->name, d->name_len);
	if (guard_login_check(chat.guard, ukey, c->akey, &retry) == -1) {
		snprintf(text, sizeof(text), "too many failed logins; try "
		    "again in %d seconds", retry);
		chat_error(c, MSG_LOGIN_ACK, ERR_RATE, MSG_LOGIN, text);
		goto resume;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		chat_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		goto resume;
	}
	j->aj.kind = AUTH_VERIFY;
	j->ukey = ukey;
	/* a deleted account's "!" is no hash: it is answered as unknown */
	if (d->rc == STORE_OK && u->pwhash != NULL && u->pwhash[0] == '$' &&
	    strlen(u->pwhash) < sizeof(j->aj.hash)) {
		j->uid = u->id;
		memcpy(j->aj.hash, u->pwhash, strlen(u->pwhash) + 1);
	} else {
		/* no such user: spend the same time, answer the same way */
		snprintf(j->aj.hash, sizeof(j->aj.hash), "%s",
		    auth_dummy_hash(chat.cfg->password_cost));
	}
	/* c stays paused for the hash */
	if (submit_job(c, j, MSG_LOGIN, p->pw, p->pwlen) == 0)
		goto out;
resume:
	conn_resume(c);
out:
	explicit_bzero(p->pw, p->pwlen);
	free(p);
}

void
handle_login(struct conn *c, const struct proto_req *req)
{
	struct login_data	 w;
	struct login_pw		*p;

	if (c->sess->uid != 0) {
		chat_error(c, MSG_LOGIN_ACK, ERR_ALREADY_LOGGED_IN, MSG_LOGIN,
		    NULL);
		return;
	}
	/* "acks" asks for everything "ackoffline" does, and more */
	c->sess->ack_offline = req->ackoffline || req->acks;
	c->sess->acks = req->acks;
	c->sess->want_token = req->want_token;
	if (req->token.p != NULL) {
		handle_token_login(c, req);
		return;
	}
	if (auth_busy(c, req->msgid) == -1)
		return;
	/* looked up in the read store thread while c waits */
	if ((p = calloc(1, sizeof(*p) + req->password.len)) == NULL) {
		chat_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
		return;
	}
	p->has_id = req->has_id;
	p->id = req->id;
	p->pwlen = req->password.len;
	memcpy(p->pw, req->password.p, req->password.len);
	memset(&w, 0, sizeof(w));
	w.want_user = 1;
	w.uid = req->has_id ? req->id : 0;
	if (login_data_submit(c, &w, req->has_id ? NULL : req->name.p,
	    req->name.len, login_looked_up, p) == -1) {
		explicit_bzero(p->pw, p->pwlen);
		free(p);
		chat_error(c, MSG_LOGIN_ACK, ERR_UNAVAILABLE, MSG_LOGIN, NULL);
	}
}

void
handle_reg(struct conn *c, const struct proto_req *req)
{
	struct chat_job	*j;
	int		 retry;

	if (auth_busy(c, req->msgid) == -1)
		return;
	if (guard_reg_take(chat.guard, c->akey, chat.cfg->register_rate_per_ip,
	    chat.cfg->register_burst_per_ip, &retry) == -1) {
		chat_error(c, MSG_REG_ACK, ERR_RATE, MSG_REG, "too many "
		    "registrations from your address; try again later");
		return;
	}
	if (memchr(req->password.p, '\0', req->password.len) != NULL) {
		chat_error(c, MSG_REG_ACK, ERR_BAD_VALUE, MSG_REG,
		    "field \"password\": must not contain U+0000");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->name = malloc(req->name.len + 1)) == NULL) {
		free(j);
		chat_error(c, MSG_REG_ACK, ERR_UNAVAILABLE, MSG_REG, NULL);
		return;
	}
	memcpy(j->name, req->name.p, req->name.len);
	j->name[req->name.len] = '\0';
	j->name_len = req->name.len;
	j->aj.kind = AUTH_HASH;
	(void)submit_job(c, j, req->msgid, req->password.p, req->password.len);
}

void
chat_logout(struct conn *c)
{
	struct session	*s = c->sess;

	if (s == NULL || s->uid == 0)
		return;
	conn_logged_out(c);
	chat_handover_drop(c);
	leave_or_remove(c);	/* a mark while its removals are under way */
	if (chat.pubsub != NULL)
		pubsub_release(chat.pubsub, s->uid);
	s->uid = 0;
	/* a batch's jobs under way (chat_offline.c) no longer apply */
	s->offline_gen++;
	s->offline_busy = 0;
	s->offline_again = 0;
	free(s->name);
	s->name = NULL;
	s->name_len = 0;
	session_blocks_free(s);		/* the next login's user has its own */
}

void
chat_closing(struct conn *c)
{
	chat_logout(c);
}

