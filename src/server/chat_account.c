/*
 * chat_account.c - resume tokens at login, logout-everywhere, password
 * changes, account deletion, and the "busy" answer when the hash queue
 * is long.  Tokens are never logged.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "cfg.h"
#include "chat_impl.h"
#include "guard.h"
#include "log.h"
#include "pubsub.h"
#include "store.h"
#include "token.h"

static int
tokens_on(void)
{
	return chat.cfg->token_key != NULL && chat.cfg->token_key->len > 0;
}

int
session_token(struct conn *c, char *out, size_t outlen, int64_t *expires)
{
	struct session		*s = c->sess;
	struct token_claims	 cl;

	/*
	 * An adopted session learns its generation with its block list
	 * (session_blocks_fetch), off the loop: an answer before that
	 * carries no new token, and the client keeps the one it has.
	 */
	if (!tokens_on() || s->uid == 0 || !s->has_gen)
		return -1;
	cl.uid = s->uid;
	cl.gen = s->token_gen;
	cl.expires = (int64_t)time(NULL) + chat.cfg->token_lifetime;
	if (token_make(chat.cfg->token_key, &cl, out, outlen) == -1)
		return -1;
	*expires = cl.expires;
	return 0;
}

void
chat_login_failed(struct conn *c, uint64_t ukey)
{
	struct guard_policy	 pol;

	pol.fail_max = chat.cfg->login_fail_max;
	pol.window = chat.cfg->login_fail_window;
	pol.block = chat.cfg->login_block;
	pol.user_max = chat.cfg->login_fail_per_user_max;
	pol.addr_max = chat.cfg->login_fail_per_ip_max;
	guard_login_failed(chat.guard, ukey, c->akey, &pol);
	if (chat.pubsub != NULL) {
		/* the same user and pair, counted over the whole cluster */
		uint64_t	 keys[2];
		int		 max[2];

		keys[0] = ukey;
		max[0] = pol.user_max;
		keys[1] = guard_pair_key(ukey, c->akey);
		max[1] = pol.fail_max;
		pubsub_login_failed(chat.pubsub, keys, max, 2, pol.window,
		    pol.block);
	}
}

void
chat_login_blocked(void *arg, uint64_t key, int seconds)
{
	guard_login_block(chat.guard, key, seconds);
	chat_stat(&chat.stats->login_blocks_shared, 1);
}

int
auth_busy(struct conn *c, int msgid)
{
	size_t	 queued;
	int	 ms, reply;

	ms = authpool_wait_ms(chat.auth, &queued);
	if (queued < (size_t)chat.cfg->auth_queue_max)
		return 0;
	/* spread the retries so they do not come back as one wave */
	ms += rand() % (ms / 2 + 1);
	if (ms < 100)
		ms = 100;
	reply = msgid == MSG_LOGIN ? MSG_LOGIN_ACK :
	    msgid == MSG_REG ? MSG_REG_ACK : MSG_ERROR;
	if (proto_put_busy(&c->out, reply, msgid, ms) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
	return -1;
}

void
handle_token_login(struct conn *c, const struct proto_req *req)
{
	struct token_claims	 cl;
	enum token_result	 r;
	const char		*why = NULL;

	if (!tokens_on()) {
		chat_error(c, MSG_LOGIN_ACK, ERR_TOKEN, MSG_LOGIN,
		    "resume tokens are not enabled on this server");
		return;
	}
	r = token_check(chat.cfg->token_key, chat.cfg->token_key_old,
	    req->token.p, req->token.len, (int64_t)time(NULL), &cl);
	if (r == TOKEN_BAD)
		why = "resume token not valid";
	else if (r == TOKEN_EXPIRED)
		why = "resume token expired";
	else if (req->has_id && req->id != cl.uid)
		why = "resume token is another user's";
	if (why != NULL) {
		chat_error(c, MSG_LOGIN_ACK, ERR_TOKEN, MSG_LOGIN, why);
		return;
	}
	/* its generation is checked off the loop, with the login's reads */
	chat_login_resumed(c, cl.uid, cl.gen);
}

/* Answer an account request, with a fresh token when the session wants one. */
static void
account_ack(struct conn *c, int refmsgid)
{
	char		 tok[TOKEN_BUF_LEN];
	int64_t		 exp = 0;
	const char	*t = NULL;

	if (c->sess->want_token && session_token(c, tok, sizeof(tok),
	    &exp) == 0)
		t = tok;
	if (proto_put_account_ack(&c->out, refmsgid, t, exp) == -1)
		conn_close(c, "out of memory");
	else
		(void)conn_sent(c);
	explicit_bzero(tok, sizeof(tok));
}

/* Account requests' store calls, in the write store thread. */
struct acct_call {
	struct chat_call	 k;
	char			 hash[AUTH_HASH_MAX];	/* PASSWD: the new one */
	uint64_t		 gen;		/* the token generation after */
	struct store_group_list	 gl;		/* DELETE: uid's groups */
	int32_t			*gone;		/* DELETE: groups dissolved */
	size_t			 ngone;
};

static void
acct_release(struct chat_call *k)
{
	struct acct_call	*a = (struct acct_call *)k;

	explicit_bzero(a->hash, sizeof(a->hash));
	store_group_list_free(&a->gl);
	free(a->gone);
	free(a);
}

static struct acct_call *
acct_new(struct conn *c, int refmsgid,
    void (*run)(struct chat_call *, struct store *),
    void (*answer)(struct conn *, struct chat_call *))
{
	return (struct acct_call *)chat_call_new(c, refmsgid,
	    sizeof(struct acct_call), run, answer, acct_release);
}

static void
logout_all_run(struct chat_call *k, struct store *st)
{
	if (store_token_bump(st, k->uid, &((struct acct_call *)k)->gen) !=
	    STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "logout everywhere");
}

static void
logout_all_answer(struct conn *c, struct chat_call *k)
{
	if (k->code != 0)
		return;
	log_info("user %d: every resume token revoked", (int)k->uid);
	if (c == NULL)
		return;
	c->sess->token_gen = ((struct acct_call *)k)->gen;
	c->sess->has_gen = 1;
	/* no token in the answer: the point was to have none */
	if (proto_put_account_ack(&c->out, k->refmsgid, NULL, 0) == -1) {
		conn_close(c, "out of memory");
		return;
	}
	(void)conn_sent(c);
	chat_logout(c);
}

void
handle_logout_all(struct conn *c, const struct proto_req *req)
{
	struct acct_call	*a;

	if ((a = acct_new(c, req->msgid, logout_all_run,
	    logout_all_answer)) != NULL)
		chat_call_submit(c, &a->k, NULL, CALL_WRITE, 1);
}

/*
 * A password change: verify the old one, then hash the new one, both
 * on the hash threads; the connection waits, others go on.
 */
struct pw_job {
	struct auth_job	 aj;
	struct conn	*c;
	int		 refmsgid;	/* MSG_PASSWD or MSG_DELETE_ACCOUNT */
	int32_t		 uid;
	uint64_t	 ukey;
	char		*newpw;
	size_t		 newpw_len;
};

static void
pw_job_free(struct pw_job *j)
{
	explicit_bzero(j->aj.pw, j->aj.pwlen);
	free(j->aj.pw);
	if (j->newpw != NULL)
		explicit_bzero(j->newpw, j->newpw_len);
	free(j->newpw);
	free(j);
}

/*
 * In the history thread: groups uid created go to their
 * longest-standing other member, or are dissolved when uid is alone
 * (a->gone, their history removed on the loop after); a->gl keeps the
 * list (its members' caches are dropped once uid is gone).  0 or -1.
 */
static int
account_groups(struct acct_call *a, struct store *st, int32_t uid)
{
	struct store_group	*g;
	int32_t			 heir;
	size_t			 i, k;
	int			 creator;

	if (store_user_groups(st, uid, &a->gl) != STORE_OK ||
	    (a->gone = calloc(a->gl.n + 1, sizeof(*a->gone))) == NULL)
		return -1;
	for (i = 0; i < a->gl.n; i++) {
		g = &a->gl.v[i];
		creator = 0;
		heir = 0;
		for (k = 0; k < g->members.n; k++)
			if (g->members.v[k].id == uid)
				creator = g->members.v[k].creator;
			else if (heir == 0)
				heir = g->members.v[k].id;
		if (creator && store_group_update(st, g->id, heir != 0 ?
		    STORE_GROUP_TRANSFER : STORE_GROUP_DISSOLVE, heir, NULL,
		    0) != STORE_OK)
			return -1;
		if (creator && heir == 0)
			a->gone[a->ngone++] = g->id;
	}
	return 0;
}

/*
 * The password was right: uid's history, memberships, friendships and
 * blocks go, the account can no longer log in ("!" is no crypt(3) hash:
 * no password matches it) and every resume token is revoked.
 *
 * Its chats held here, queued in a store thread or on another worker
 * may be kept after the first purge: the store keeps none of a sender
 * whose password is "!", and the second purge takes those kept in
 * between.
 */
static void
delete_run(struct chat_call *k, struct store *st)
{
	struct acct_call	*a = (struct acct_call *)k;

	if (account_groups(a, st, k->uid) == -1 ||
	    store_account_purge(st, k->uid) != STORE_OK ||
	    store_user_set_password(st, k->uid, "!", &a->gen) != STORE_OK ||
	    store_account_purge(st, k->uid) != STORE_OK) {
		chat_call_fail(k, st, ERR_UNAVAILABLE, "deleting an account");
		k->text = "not deleted (or only in part): send it again later";
	}
}

/* Done (in part, perhaps): caches and histories follow; c is logged out. */
static void
delete_answer(struct conn *c, struct chat_call *k)
{
	struct acct_call	*a = (struct acct_call *)k;
	size_t			 i;

	for (i = 0; i < a->ngone; i++)
		chat_history_forget(a->gone[i]);
	for (i = 0; i < a->gl.n; i++)
		gcache_changed(a->gl.v[i].id);
	if (k->code != 0)
		return;
	log_info("user %d: account deleted", (int)k->uid);
	if (c == NULL)
		return;
	if (proto_put_account_ack(&c->out, k->refmsgid, NULL, 0) == -1) {
		conn_close(c, "out of memory");
		return;
	}
	(void)conn_sent(c);
	chat_logout(c);
}

static void
passwd_run(struct chat_call *k, struct store *st)
{
	struct acct_call	*a = (struct acct_call *)k;

	if (store_user_set_password(st, k->uid, a->hash, &a->gen) !=
	    STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "password change");
}

static void
passwd_answer(struct conn *c, struct chat_call *k)
{
	if (k->code != 0)
		return;
	log_info("user %d: password changed, every resume token revoked",
	    (int)k->uid);
	if (c == NULL)
		return;
	c->sess->token_gen = ((struct acct_call *)k)->gen;
	c->sess->has_gen = 1;
	account_ack(c, k->refmsgid);
}

static void
pw_job_done(struct auth_job *aj)
{
	struct pw_job		*j = (struct pw_job *)aj;
	struct conn		*c = j->c;
	struct acct_call	*a;

	conn_unref(c);
	if (j->aj.kind == AUTH_VERIFY) {
		if (j->aj.result == AUTH_MISMATCH)
			chat_login_failed(c, j->ukey);
		if (c->closing) {
			pw_job_free(j);
			return;
		}
		if (j->aj.result != AUTH_OK || c->sess->uid != j->uid) {
			if (c->sess->uid != j->uid)
				chat_error(c, MSG_ERROR, ERR_NOT_LOGGED_IN,
				    j->refmsgid, "logged out meanwhile");
			else
				chat_error(c, MSG_ERROR, j->aj.result ==
				    AUTH_FAIL ? ERR_UNAVAILABLE : ERR_AUTH,
				    j->refmsgid, j->aj.result == AUTH_FAIL ?
				    NULL : "wrong password");
			conn_resume(c);
			pw_job_free(j);
			return;
		}
		if (j->refmsgid == MSG_DELETE_ACCOUNT) {
			/*
			 * The rows held here go first, in the same thread:
			 * the history thread's (it alone writes history),
			 * boosted while this runs.
			 */
			chat_history_flush();
			if ((a = acct_new(c, j->refmsgid, delete_run,
			    delete_answer)) != NULL)
				chat_call_submit(c, &a->k, NULL,
				    CALL_HISTWRITE, 1);
			else
				conn_resume(c);
			pw_job_free(j);
			return;
		}
		/* the old one is right: hash the new one the same way */
		explicit_bzero(j->aj.pw, j->aj.pwlen);
		free(j->aj.pw);
		j->aj.pw = j->newpw;
		j->aj.pwlen = j->newpw_len;
		j->newpw = NULL;
		j->aj.kind = AUTH_HASH;
		j->aj.cost = chat.cfg->password_cost;
		c->jobs++;
		authpool_submit(chat.auth, &j->aj);
		return;
	}
	if (!c->closing) {
		if (j->aj.result != AUTH_OK || c->sess->uid != j->uid) {
			chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, j->refmsgid,
			    NULL);
			conn_resume(c);
		} else if ((a = acct_new(c, j->refmsgid, passwd_run,
		    passwd_answer)) == NULL)
			conn_resume(c);
		else {
			memcpy(a->hash, j->aj.hash, sizeof(a->hash));
			chat_call_submit(c, &a->k, NULL, CALL_WRITE, 1);
		}
	}
	explicit_bzero(j->aj.hash, sizeof(j->aj.hash));
	pw_job_free(j);
}

/*
 * Verify req's password against pwhash on the hash threads, then go on
 * in pw_job_done; c stays paused.  -1: answered.
 */
static int
pw_verify(struct conn *c, const struct proto_req *req, const char *pwhash,
    uint64_t ukey)
{
	struct pw_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    strlen(pwhash) >= sizeof(j->aj.hash) ||
	    (j->aj.pw = malloc(req->password.len + 1)) == NULL ||
	    (req->msgid == MSG_PASSWD &&
	    (j->newpw = malloc(req->newpassword.len + 1)) == NULL)) {
		if (j != NULL)
			pw_job_free(j);
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return -1;
	}
	memcpy(j->aj.hash, pwhash, strlen(pwhash) + 1);
	memcpy(j->aj.pw, req->password.p, req->password.len);
	j->aj.pw[req->password.len] = '\0';
	j->aj.pwlen = req->password.len;
	if (j->newpw != NULL) {
		memcpy(j->newpw, req->newpassword.p, req->newpassword.len);
		j->newpw[req->newpassword.len] = '\0';
		j->newpw_len = req->newpassword.len;
	}
	j->refmsgid = req->msgid;
	j->aj.kind = AUTH_VERIFY;
	j->aj.done = pw_job_done;
	j->c = c;
	j->uid = c->sess->uid;
	j->ukey = ukey;
	c->jobs++;
	conn_pause(c);
	authpool_submit(chat.auth, &j->aj);
	return 0;
}

/* The user's password hash, read in the read store thread. */
struct pwread_call {
	struct chat_call	 k;
	uint64_t		 ukey;
	struct store_user	 u;
};

static void
pwread_run(struct chat_call *k, struct store *st)
{
	struct pwread_call	*p = (struct pwread_call *)k;

	if (store_user_get(st, k->uid, &p->u) != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "password check");
	else if (p->u.pwhash == NULL)
		k->code = ERR_UNAVAILABLE;
}

/* c goes on to the hash threads, still paused: the hash job resumes it
 * (chat_call.c leaves a connection handed on paused). */
static void
pwread_answer(struct conn *c, struct chat_call *k)
{
	struct pwread_call	*p = (struct pwread_call *)k;

	if (c == NULL || k->code != 0)
		return;
	(void)pw_verify(c, &k->req, p->u.pwhash, p->ukey);
}

static void
pwread_release(struct chat_call *k)
{
	struct pwread_call	*p = (struct pwread_call *)k;

	store_user_clear(&p->u);
	free(p);
}

/* PASSWD, DELETE_ACCOUNT: the hash read, verified, then the change. */
static void
pw_start(struct conn *c, struct proto_req *req)
{
	struct pwread_call	*p;
	uint64_t		 ukey;
	int			 retry;
	char			 text[128];

	if (auth_busy(c, req->msgid) == -1)
		return;
	ukey = guard_user_key(chat.guard, c->sess->uid);
	if (guard_login_check(chat.guard, ukey, c->akey, &retry) == -1) {
		snprintf(text, sizeof(text), "too many failed logins; try "
		    "again in %d seconds", retry);
		chat_error(c, MSG_ERROR, ERR_RATE, req->msgid, text);
		return;
	}
	if ((p = (struct pwread_call *)chat_call_new(c, req->msgid,
	    sizeof(*p), pwread_run, pwread_answer, pwread_release)) == NULL)
		return;
	p->ukey = ukey;
	chat_call_submit(c, &p->k, req, CALL_READ, 1);
}

void
handle_passwd(struct conn *c, struct proto_req *req)
{
	pw_start(c, req);
}

void
handle_delete_account(struct conn *c, struct proto_req *req)
{
	pw_start(c, req);
}
