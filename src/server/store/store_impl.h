/* store_impl.h - what a storage backend provides; only store*.c include it. */
#ifndef CHATD_STORE_IMPL_H
#define CHATD_STORE_IMPL_H

#include "store.h"

enum store_count {
	STORE_COUNT_FRIENDS,		/* of a user */
	STORE_COUNT_USER_GROUPS,	/* a user is in */
	STORE_COUNT_GROUP_MEMBERS,	/* of a group */
	STORE_COUNT_MAX
};

/*
 * One attempt of a call could not finish for a passing reason (a lock
 * held elsewhere, a connection lost where running it again is safe).
 * store.c runs the call again, up to ops->tries attempts in all, with a
 * short jittered pause that doubles: the one retry policy.  Callers of
 * store.h never see it.
 */
#define STORE_RETRY	100

/*
 * Integer parameters and their count, for the backends' runners
 * (sq_exec_ints, my_exec_ints): run(..., STORE_INTS(uid, smid), ...).
 */
#define STORE_INTS(...)							\
	(const int64_t[]){ __VA_ARGS__ },				\
	(int)(sizeof((const int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t))

/*
 * Every statement either backend runs, by number.  A backend's table
 * holds its dialect's text or NULL; store_sql_common (store_sql.c) the
 * statements both dialects write alike.  A number neither has is one
 * the backend does not use.
 */
enum store_query {
	/* SQLite only */
	Q_BEGIN,
	Q_BEGIN_READ,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_PING,
	Q_USER_EXISTS,
	Q_GROUP_EXISTS,
	Q_USER_GONE,
	Q_IS_BLOCKED,
	/* MySQL only */
	Q_VERSION,
	Q_LOCK,
	Q_UNLOCK,
	Q_OUR_TABLES,
	Q_FLUSH_AT_COMMIT,
	Q_USER_GROUP_MEMBERS,
	Q_OFFLINE_ADD_BATCH,
	Q_OFFLINE_FETCH_ALL,
	Q_TOKEN_BUMP,
	Q_SET_PASSWORD,
	Q_HISTORY_ADD_BATCH,
	Q_HCONV_ADD_BATCH,
	/* both */
	Q_USER_CREATE,
	Q_USER_GET,
	Q_USER_BY_NAME,
	Q_FRIEND_ADD,
	Q_FRIENDS,
	Q_GROUP_CREATE,
	Q_GROUP_ADD_CREATOR,
	Q_GROUP_JOIN,
	Q_GROUP_IS_MEMBER,
	Q_GROUP_MEMBERS,
	Q_USER_GROUPS,
	Q_COUNT_FRIENDS,
	Q_COUNT_USER_GROUPS,
	Q_COUNT_GROUP_MEMBERS,
	Q_OFFLINE_ADD,
	Q_OFFLINE_FETCH,
	Q_OFFLINE_DELETE,
	Q_OFFLINE_REMOVE,
	Q_ACK_CLAIM,
	Q_ACK_GET,
	Q_ACK_DONE,
	Q_GROUP_LEAVE,
	Q_GROUP_ADMIN,
	Q_GROUP_RENAME,
	Q_GROUP_DESCRIBE,
	Q_GROUP_DEMOTE,
	Q_GROUP_PROMOTE,
	Q_GROUP_SET_CREATOR,
	Q_GROUP_DROP_MEMBERS,
	Q_GROUP_DROP,
	Q_FRIEND_REMOVE,
	Q_BLOCK_ADD,
	Q_BLOCK_DEL,
	Q_BLOCKS,
	Q_BLOCKERS,
	Q_TOKEN_GEN,
	Q_HISTORY_ADD,
	Q_HISTORY_AT,
	Q_HISTORY_PAIR,
	Q_HISTORY_GROUP,
	Q_HISTORY_PRUNE,
	Q_RESUME,
	Q_HISTORY_FORGET,
	Q_HCONV_ADD,
	Q_HCONV_PRUNE,
	Q_PURGE_HISTORY,
	Q_PURGE_OFFLINE,
	Q_PURGE_FRIENDS,
	Q_PURGE_BLOCKS,
	Q_PURGE_GROUPS,
	Q_PURGE_HCONV,
	Q_MAX
};

/*
 * Resume (store_resume_fetch): the reader's conversations (one-to-
 * one ones from HistoryConv that had a chat for it since the
 * cursor, its groups since it joined: ?: reader, cursor, reader),
 * then History_conv per conversation from the cursor (created
 * twice, smid), the anchor, the reader twice (not its own; not
 * whom it blocks), max.  A negative sender is a chat its receiver
 * blocked, kept for its sender only: never resumed (own chats are
 * not either).  The dialects name the join that keeps the
 * conversations outside (store_sqlite.c, store_mysql.c).
 */
#define STORE_SQL_RESUME(join)						\
    "SELECT h.smid, h.message FROM (SELECT conv, 0 AS since"	\
    " FROM HistoryConv WHERE userid = ? AND last >= ?"		\
    " UNION ALL SELECT -groupid, joinedat * 1000 FROM GroupUser"	\
    " WHERE userid = ?) c " join " History h"			\
    " ON h.conv = c.conv AND h.created >= c.since"			\
    " WHERE h.created >= ? AND (h.created > ? OR h.smid > ?)"	\
    " AND h.smid <> ? AND h.sender <> ? AND h.sender > 0"		\
    " AND h.sender NOT IN (SELECT blockedid FROM Block WHERE userid = ?)" \
    " ORDER BY h.created, h.smid LIMIT ?"

/* Plain "?" placeholders, each used once, in binding order. */
extern const char *const store_sql_common[Q_MAX];

/* A conversation's key in History: two users, low id first, or -gid. */
static inline int64_t
store_conv(int32_t a, int32_t b, int32_t gid)
{
	if (gid != 0)
		return -(int64_t)gid;
	if (a > b)
		return ((int64_t)b << 32) | (uint32_t)a;
	return ((int64_t)a << 32) | (uint32_t)b;
}

/*
 * HistoryConv (schema version 4): the one-to-one conversations a user
 * received chats in, and when the latest came, so RESUME reads its own
 * conversations rather than everyone's traffic.  A batch of history
 * rows yields each (recipient, conversation) once: one upsert per
 * conversation and batch, not an index entry per chat (SQLite: fewer,
 * "last" may lag by SQ_HCONV_SLACK_MS, and its RESUME reads that much
 * before the cursor).
 */
struct store_hconv {
	int32_t		 userid;	/* the recipient */
	int64_t		 conv;
	int64_t		 last;		/* created of its latest row, ms */
};
/* v[0..n)'s one-to-one (recipient, conv) pairs, each once: 0, or -1. */
int	store_hist_convs(const struct store_hist *v, size_t n,
	    struct store_hconv **out, size_t *nout);

/* Account deletion's statements, in order, each binding uid nuid times. */
struct store_purge {
	int	 q;
	int	 nuid;
};
#define STORE_PURGE_N	6
extern const struct store_purge store_purge[STORE_PURGE_N];

/* Statement q in a dialect (its table, else the common one), or NULL. */
static inline const char *
store_sql(const char *const *dialect, int q)
{
	return dialect[q] != NULL ? dialect[q] : store_sql_common[q];
}

/*
 * A NUL-terminated copy of p[0..len) (which need not be terminated),
 * or NULL when out of memory.  Free it.
 */
char	*store_memdup(const char *p, size_t len);

struct store_ops {
	const char *kind;
	int	 tries;		/* attempts per call, at most */
	void	(*close)(struct store *);
	int	(*ping)(struct store *);
	int	(*user_create)(struct store *, const char *, size_t, const char *, int32_t *);
	int	(*user_get)(struct store *, int32_t, struct store_user *);
	int	(*user_by_name)(struct store *, const char *, size_t, struct store_user *);
	int	(*friend_add)(struct store *, int32_t, int32_t);
	int	(*friends)(struct store *, int32_t, struct store_user_list *);
	int	(*friend_remove)(struct store *, int32_t, int32_t);
	int	(*block)(struct store *, int32_t, int32_t, int);
	/* blockers 0: whom uid blocks; 1: who blocks uid */
	int	(*blocks)(struct store *, int32_t, int blockers,
		    struct store_user_list *);
	int	(*group_create)(struct store *, int32_t, const char *, size_t,
		    const char *, size_t, int32_t *);
	int	(*group_join)(struct store *, int32_t, int32_t);
	int	(*group_is_member)(struct store *, int32_t, int32_t);
	int	(*group_members)(struct store *, int32_t, struct store_user_list *);
	int	(*user_groups)(struct store *, int32_t, struct store_group_list *);
	int	(*group_update)(struct store *, int32_t, enum store_group_op,
		    int32_t, const char *, size_t);
	/* rows counted for a limit: what (enum store_count) of one id */
	int	(*count)(struct store *, int what, int32_t, int64_t *);
	/* smid > 0: tag the copies and mark that ClientMsg done, atomically */
	int	(*offline_add)(struct store *, const int32_t *, size_t, const char *,
		    size_t, int64_t smid);
	int	(*ack_claim)(struct store *, int32_t, int64_t, int64_t *, int *);
	int	(*offline_remove)(struct store *, int32_t, int64_t);
	int	(*offline_fetch)(struct store *, int32_t, size_t, struct store_msg_list *);
	int	(*offline_delete)(struct store *, int32_t, int64_t);
	int	(*history_add)(struct store *, const struct store_hist *, size_t);
	int	(*history_fetch)(struct store *, int32_t, int32_t, int32_t,
		    int64_t, size_t, struct store_msg_list *);
	int	(*history_prune)(struct store *, int64_t, size_t, size_t *);
	int	(*resume_fetch)(struct store *, int32_t, int64_t, int64_t,
		    size_t, struct store_msg_list *, int64_t *);
	int	(*history_forget)(struct store *, int32_t);
	int	(*account_purge)(struct store *, int32_t);
	/* bump: gen + 1 (and pwhash, when not NULL, in one transaction) */
	int	(*token_gen)(struct store *, int32_t, int, const char *,
		    uint64_t *);
	/* optional: begin (1) or end (0) a read snapshot */
	void	(*read_snapshot)(struct store *, int);
};

/* Every backend's handle starts with this. */
struct store {
	const struct store_ops	*ops;
	char			 err[256];
	char			 warning[256];	/* set at open; "" when none */
	int			 attempt;	/* 0: a call's first attempt (store.c) */
	unsigned int		 seed;		/* jitter of the pauses */
};

/*
 * Before attempt try + 1 of a call that answered STORE_RETRY: pause and
 * return 0, or -1 (err says so) when the tries are used up.
 */
int	store_backoff(struct store *st, int try);

/*
 * The statements of upgrade step "-- @version v" (a line of its own) in
 * script: the text after that line up to the next marker or the end,
 * *len bytes; NULL when the script has no such step.
 */
const char *store_upgrade_step(const char *script, int v, size_t *len);

/* Fill st->err; returns STORE_ERR. */
int	store_set_error(struct store *st, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* opts is never NULL here: store_open fills in the defaults. */
struct store *store_sqlite_open(const char *path, const struct store_opts *opts,
	    char *err, size_t errlen);
struct store *store_mysql_open(const char *url, const struct store_opts *opts,
	    char *err, size_t errlen);

#endif
