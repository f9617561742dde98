/*
 * store.h - durable state: users, friends, groups, offline messages.
 *
 * One small interface, two backends chosen by the spec string:
 *   "sqlite:PATH"                      embedded, the default
 *   "mysql://user:pass@host:port/db"   the cluster store
 * Nothing outside store*.c knows which one is in use.  Every call is
 * synchronous and uses prepared statements with bound parameters.
 * A handle belongs to one process (open it after fork).
 *
 * Calls return STORE_OK (0), a positive STORE_* outcome, or STORE_ERR
 * (-1) with the reason in store_error().  Lists and strings handed out
 * are allocated by the store and released with the matching *_free.
 * Strings carry lengths and may hold any byte; they are also
 * NUL-terminated for convenience.
 */
#ifndef CHATD_STORE_H
#define CHATD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define STORE_OK	0
#define STORE_ERR	(-1)
#define STORE_EXISTS	1	/* unique name taken */
#define STORE_NOTFOUND	2	/* no such user or group */

struct store;

struct store_user {
	int32_t	 id;
	char	*name;
	size_t	 name_len;
	char	*pwhash;	/* store_user_get/_by_name only, else NULL */
	int	 creator;	/* group member lists only */
	int	 admin;		/* store_group_members only: named an admin */
};

struct store_user_list {
	struct store_user	*v;
	size_t			 n;
};

struct store_group {
	int32_t			 id;
	char			*name;
	size_t			 name_len;
	char			*desc;
	size_t			 desc_len;
	struct store_user_list	 members;	/* ordered by join */
};

struct store_group_list {
	struct store_group	*v;
	size_t			 n;
};

struct store_msg {
	int64_t	 id;		/* increasing in the order stored */
	char	*text;
	size_t	 len;
};

struct store_msg_list {
	struct store_msg	*v;
	size_t			 n;
};

/*
 * Tuning for backends that talk to a server (MySQL); SQLite uses only
 * busy_timeout_ms.  Zero fields take the defaults in store.c.
 */
/* TLS to a MySQL server (db_tls). */
enum store_tls {
	STORE_TLS_OFF,		/* plain TCP (a unix socket is local anyway) */
	STORE_TLS_REQUIRED,	/* encrypted, server certificate not checked */
	STORE_TLS_VERIFY	/* encrypted, certificate and host name checked */
};

/* db_tls's words (checked by config.c): anything else is "required". */
static inline enum store_tls
store_tls_mode(const char *v)
{
	if (v == NULL || strcmp(v, "off") == 0)
		return STORE_TLS_OFF;
	return strcmp(v, "verify") == 0 ? STORE_TLS_VERIFY :
	    STORE_TLS_REQUIRED;
}

/*
 * A handle's part in history (chatd.conf(5) "History"): a worker's
 * history thread alone writes History and HistoryConv, at idle
 * priority, so the worker's other handles must never wait for a lock it
 * holds.  SQLite keeps those tables in a file of their own ("<db>-
 * history", attached as hist); MySQL in the same database.
 */
enum store_hist_role {
	STORE_HIST_ALL,		/* one handle does everything (tools, tests) */
	STORE_HIST_READER,	/* reads history only: SQLite attaches it
				 * read-only, so its write transactions
				 * never take the history file's lock */
	STORE_HIST_WRITER	/* the history thread's: SQLite's transactions
				 * start deferred (a history batch locks the
				 * history file only), MySQL's READ COMMITTED
				 * (its checks take no shared row locks) */
};

struct store_opts {
	enum store_hist_role hist;		/* STORE_HIST_ALL unless a worker */
	int		 pool_init;		/* connections opened at start */
	int		 pool_max;		/* at most this many */
	int		 pool_idle_sec;		/* close a connection idle this long */
	int		 connect_timeout_ms;	/* per connection attempt */
	int		 query_timeout_ms;	/* read/write timeout of one query */
	int		 busy_timeout_ms;	/* SQLite: wait for a lock this long */
	const char	*password;		/* overrides the URL's password */
	enum store_tls	 tls;			/* MySQL: TLS to the server */
	const char	*tls_ca;		/* CA file (PEM) for verify */
	const char	*tls_cert;		/* client certificate, or NULL */
	const char	*tls_key;		/* its key, or NULL */
};

/*
 * Open (and on first use create the schema of) the store named by
 * spec.  opts may be NULL (defaults); err may be NULL.
 */
struct store *store_open(const char *spec, const struct store_opts *opts,
	    char *err, size_t errlen);
/*
 * The start-up check: open the store (creating the schema in an empty
 * one, refusing a newer or foreign one) and close it again.  0 with
 * warn set to store_warning's text (or ""), or -1 with err.
 */
int	store_check(const char *spec, const struct store_opts *opts,
	    char *warn, size_t warnlen, char *err, size_t errlen);
void	store_close(struct store *st);
const char *store_error(const struct store *st);
/*
 * What the backend found at open that weakens durability (MySQL:
 * innodb_flush_log_at_trx_commit not 1), or "": log it at start.
 */
const char *store_warning(const struct store *st);
/* "sqlite" or "mysql", for status output only. */
const char *store_kind(const struct store *st);
/* 0 when the store answers, -1 when not (health check). */
int	store_ping(struct store *st);

/* STORE_OK with *id, STORE_EXISTS when the name is taken. */
int	store_user_create(struct store *st, const char *name, size_t name_len,
	    const char *pwhash, int32_t *id);
/* STORE_OK with u filled (name, pwhash), STORE_NOTFOUND. */
int	store_user_get(struct store *st, int32_t id, struct store_user *u);
int	store_user_by_name(struct store *st, const char *name,
	    size_t name_len, struct store_user *u);

/* Mutual friendship; adding an existing one is STORE_OK. NOTFOUND if b is no user. */
int	store_friend_add(struct store *st, int32_t a, int32_t b);
/* Friends of uid with their names, ordered by id. */
int	store_friends(struct store *st, int32_t uid, struct store_user_list *out);

/* End a friendship, both directions; STORE_NOTFOUND when there was none. */
int	store_friend_remove(struct store *st, int32_t a, int32_t b);
/*
 * uid blocks other (on) or no longer (!on); STORE_OK also when nothing
 * changed, STORE_NOTFOUND when other is no user.
 */
int	store_block(struct store *st, int32_t uid, int32_t other, int on);
/* Whom uid blocks, with names, ordered by id. */
int	store_blocks(struct store *st, int32_t uid, struct store_user_list *out);
/* Who blocks uid, with names, ordered by id (usually nobody). */
int	store_blockers(struct store *st, int32_t uid,
	    struct store_user_list *out);

/* STORE_OK with *gid (creator joined as creator), STORE_EXISTS. */
int	store_group_create(struct store *st, int32_t creator, const char *name,
	    size_t name_len, const char *desc, size_t desc_len, int32_t *gid);
/* STORE_OK (also when already a member), STORE_NOTFOUND (no group). */
int	store_group_join(struct store *st, int32_t gid, int32_t uid);
/* STORE_MEMBER, STORE_NOT_MEMBER (also: no group), or STORE_ERR. */
#define STORE_NOT_MEMBER	0
#define STORE_MEMBER		1
int	store_group_is_member(struct store *st, int32_t gid, int32_t uid);
/* Members with names and roles; STORE_NOTFOUND when no such group. */
int	store_group_members(struct store *st, int32_t gid,
	    struct store_user_list *out);
/* Changes to a group (store_group_update). */
enum store_group_op {
	STORE_GROUP_LEAVE,	/* uid is no longer a member */
	STORE_GROUP_ADMIN,	/* member uid becomes an admin */
	STORE_GROUP_UNADMIN,	/* member uid is an admin no more */
	STORE_GROUP_RENAME,	/* the name becomes text */
	STORE_GROUP_DESCRIBE,	/* the description becomes text */
	STORE_GROUP_TRANSFER,	/* member uid becomes the creator */
	STORE_GROUP_DISSOLVE,	/* the group and its memberships go */
};
/*
 * One change, atomically.  uid is used by LEAVE, ADMIN, UNADMIN and
 * TRANSFER, text by RENAME and DESCRIBE.  STORE_OK, STORE_NOTFOUND (no
 * such group, or uid is no member), STORE_EXISTS (RENAME: name taken).
 */
int	store_group_update(struct store *st, int32_t gid,
	    enum store_group_op op, int32_t uid, const char *text, size_t len);
/* Groups uid belongs to, each with its members. */
int	store_user_groups(struct store *st, int32_t uid,
	    struct store_group_list *out);

/*
 * Counts behind the limits max_friends, max_groups_per_user and
 * max_group_members: STORE_OK with *n (0 for an unknown id).
 */
int	store_count_friends(struct store *st, int32_t uid, int64_t *n);
int	store_count_user_groups(struct store *st, int32_t uid, int64_t *n);
int	store_count_group_members(struct store *st, int32_t gid, int64_t *n);

/* Store msg for each of uids[0..n) in one transaction. */
int	store_offline_add(struct store *st, const int32_t *uids, size_t n,
	    const char *msg, size_t len);
/*
 * Server message ids ("smid"), one space for the whole cluster: a claim
 * (a ClientMsg row r) owns the ids r * STORE_SMID_BLOCK up to
 * r * STORE_SMID_BLOCK + STORE_SMID_BLOCK - 1.  An acknowledged chat's
 * smid is the first of its claim's (a multiple of STORE_SMID_BLOCK:
 * that is how a relayed line tells it was stored); the other ids of a
 * block taken with store_smid_block number plain chats.
 */
#define STORE_SMID_BLOCK	1024
#define STORE_SMID_BLOCK_SQL	"1024"
/*
 * Acknowledged chats (opt-in "cmid").  Claim (sender, cmid): *smid is
 * its server message id, new or from an earlier claim; *done is 1 when
 * that earlier claim's message was already stored (a resend: answer
 * with the same smid, deliver nothing).  cmid >= 0 (negative ones are
 * store_smid_block's).
 */
int	store_ack_claim(struct store *st, int32_t sender, int64_t cmid,
	    int64_t *smid, int *done);
/*
 * Store msg for uids[0..n) tagged with smid and mark the claim done, in
 * one transaction.  From then on the message is durable.
 */
int	store_ack_commit(struct store *st, int64_t smid, const int32_t *uids,
	    size_t n, const char *msg, size_t len);
/*
 * A fresh block of smids for plain chats, claimed on behalf of uid (an
 * existing user): *base is a multiple of STORE_SMID_BLOCK; base + 1 up
 * to base + STORE_SMID_BLOCK - 1 are the caller's, for good.
 */
int	store_smid_block(struct store *st, int32_t uid, int64_t *base);
/* Remove uid's copy of smid: it was delivered live. */
int	store_offline_remove(struct store *st, int32_t uid, int64_t smid);

/* Messages waiting for uid, oldest first, at most max (0: all). */
int	store_offline_fetch(struct store *st, int32_t uid, size_t max,
	    struct store_msg_list *out);
/* Remove uid's messages with id <= upto (after they were handed over). */
int	store_offline_delete(struct store *st, int32_t uid, int64_t upto);

/*
 * Resume tokens: uid's token generation (0 before the first bump).
 * Bumping revokes every token issued before; a password change bumps
 * it in the same transaction (STORE_NOTFOUND: no such user).
 */
int	store_token_gen(struct store *st, int32_t uid, uint64_t *gen);
/*
 * Several reads as one snapshot (a login's user, lists, generation and
 * batch): one read transaction instead of one per statement, where the
 * backend has it (SQLite; a no-op on MySQL).  Always end what began.
 */
void	store_read_begin(struct store *st);
void	store_read_end(struct store *st);
int	store_token_bump(struct store *st, int32_t uid, uint64_t *gen);
int	store_user_set_password(struct store *st, int32_t uid,
	    const char *pwhash, uint64_t *gen);

/*
 * History (history_days): every delivered chat, one row per message
 * (a group message once, not per member), keyed by its smid.  A
 * conversation is two users (peer) or a group (gid, peer 0).
 */
struct store_hist {
	int64_t		 smid;
	int32_t		 sender;
	int32_t		 peer;		/* one-to-one: the recipient, else 0 */
	int32_t		 gid;		/* group chat: the group, else 0 */
	int64_t		 created;	/* Unix time in milliseconds */
	const char	*text;		/* the forwarded object, no newline */
	size_t		 len;
};
/* Keep v[0..n) in one transaction; a smid kept before is left as it is. */
int	store_history_add(struct store *st, const struct store_hist *v,
	    size_t n);
/*
 * A page of uid's conversation with peer (gid 0) or of group gid (peer
 * 0), newest first by the time kept (smid breaks ties): at most max
 * messages older than the one whose smid is before (0: from the
 * newest; one not in the history: an empty page), each as id = smid
 * and the forwarded object.  In a group only what was sent since uid
 * joined (to the second); never what users uid blocks sent.  A
 * non-member gets an empty page (check membership first).
 */
int	store_history_fetch(struct store *st, int32_t uid, int32_t peer,
	    int32_t gid, int64_t before, size_t max, struct store_msg_list *out);
/*
 * Resume (chatd-protocol(7) RESUME): at most max chats uid received
 * (one-to-one, or in its groups since it joined; not its own, not from
 * users it blocks), oldest first by the time kept (smid breaks ties),
 * after the message anchor: from window_ms before it was kept, or when
 * window_ms < 0 exactly after it; never anchor itself.  *at: when
 * anchor was kept (ms).  STORE_NOTFOUND: anchor is not in the history.
 */
int	store_resume_fetch(struct store *st, int32_t uid, int64_t anchor,
	    int64_t window_ms, size_t max, struct store_msg_list *out,
	    int64_t *at);
/* Remove at most max rows created before t (ms); *n: how many went. */
int	store_history_prune(struct store *st, int64_t t, size_t max,
	    size_t *n);
/* A dissolved group's history goes (rows kept later are refused). */
int	store_history_forget(struct store *st, int32_t gid);
/*
 * Account deletion: uid's messages in history, its offline messages,
 * friendships (both ways), blocks (both ways) and memberships go, in
 * one transaction.  The user row stays (its id and name are not given
 * out again); store_user_set_password makes it unusable.
 */
int	store_account_purge(struct store *st, int32_t uid);

void	store_user_clear(struct store_user *u);
void	store_user_list_free(struct store_user_list *l);
void	store_group_list_free(struct store_group_list *l);
void	store_msg_list_free(struct store_msg_list *l);

#endif
