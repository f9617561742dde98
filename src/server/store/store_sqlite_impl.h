/* store_sqlite_impl.h - shared by the store_sqlite*.c files only. */
#ifndef CHATD_STORE_SQLITE_IMPL_H
#define CHATD_STORE_SQLITE_IMPL_H

#include <sqlite3.h>

#include "store_impl.h"

struct sq {
	struct store	 st;		/* first: we are handed out as it */
	sqlite3		*db;
	sqlite3_stmt	*q[Q_MAX];	/* NULL: not a SQLite statement */
	int		 busy;		/* last failure was a lock conflict */
	struct hconv_seen *seen;	/* HistoryConv rows written (msg.c) */
};

/*
 * The body of an entry point: one attempt of call (which names sq, the
 * handle); store.c runs it again when a lock conflict says STORE_RETRY.
 */
#define SQ_CALL(st, call) do {						\
	struct sq	*sq = (struct sq *)(st);			\
	sq->busy = 0;							\
	return sq_result(sq, (call));					\
} while (0)

/* store_sqlite.c: statement helpers */
int	sq_fail(struct sq *sq, sqlite3_stmt *s, int rc, const char *what);
void	sq_done(sqlite3_stmt *s);
int	sq_bind_text(sqlite3_stmt *s, int i, const char *p, size_t len);
int	sq_run(struct sq *sq, sqlite3_stmt *s, const char *what);
/* Whether a query yields a row. */
enum sq_exists {
	SQ_ERR = STORE_ERR,
	SQ_NOROW = 0,
	SQ_ROW = 1
};
enum sq_exists sq_exists(struct sq *sq, sqlite3_stmt *s, const char *what);
int	sq_bind_ints(struct sq *sq, sqlite3_stmt *s, const int64_t *v, int n,
	    const char *what);
int	sq_exec_ints(struct sq *sq, int q, const int64_t *v, int n,
	    const char *what);
int	sq_end(struct sq *sq, int rc);
int	sq_begin(struct sq *sq);
int	sq_commit(struct sq *sq);
void	sq_rollback(struct sq *sq);
int	sq_result(struct sq *sq, int rc);
int	sq_col_text(sqlite3_stmt *s, int col, char **p, size_t *len);
int	sq_nomem(struct sq *sq, sqlite3_stmt *s);

/* store_sqlite_social.c */
int	sqlite_user_create(struct store *st, const char *name, size_t name_len,
	    const char *pwhash, int32_t *id);
int	sqlite_user_get(struct store *st, int32_t id, struct store_user *u);
int	sqlite_user_by_name(struct store *st, const char *name, size_t name_len,
	    struct store_user *u);
int	sqlite_friend_add(struct store *st, int32_t a, int32_t b);
int	sqlite_friends(struct store *st, int32_t uid, struct store_user_list *out);
int	sqlite_friend_remove(struct store *st, int32_t a, int32_t b);
int	sqlite_block(struct store *st, int32_t uid, int32_t other, int on);
int	sqlite_blocks(struct store *st, int32_t uid, int blockers,
	    struct store_user_list *out);
int	sqlite_group_create(struct store *st, int32_t creator, const char *name,
	    size_t name_len, const char *desc, size_t desc_len, int32_t *gid);
int	sqlite_group_join(struct store *st, int32_t gid, int32_t uid);
int	sqlite_group_update(struct store *st, int32_t gid, enum store_group_op op,
	    int32_t uid, const char *text, size_t len);
int	sqlite_group_is_member(struct store *st, int32_t gid, int32_t uid);
int	sqlite_count(struct store *st, int what, int32_t id, int64_t *n);
int	sqlite_group_members(struct store *st, int32_t gid,
	    struct store_user_list *out);
int	sqlite_user_groups(struct store *st, int32_t uid, struct store_group_list *out);

/* store_sqlite_msg.c */
/*
 * A (recipient, conversation) HistoryConv row is written again only
 * once its "last" has moved this much since this handle wrote it; RESUME
 * reads the rows this much before its cursor, so it misses none.
 */
#define SQ_HCONV_SLACK_MS	60000
void	sq_hconv_free(struct sq *sq);
int	sqlite_offline_add(struct store *st, const int32_t *uids, size_t n,
	    const char *msg, size_t len, int64_t smid);
int	sqlite_offline_fetch(struct store *st, int32_t uid, size_t max,
	    struct store_msg_list *out);
int	sqlite_offline_delete(struct store *st, int32_t uid, int64_t upto);
int	sqlite_ack_claim(struct store *st, int32_t sender, int64_t cmid,
	    int64_t *smid, int *done);
int	sqlite_offline_remove(struct store *st, int32_t uid, int64_t smid);
int	sqlite_history_add(struct store *st, const struct store_hist *v,
	    size_t n);
int	sqlite_history_fetch(struct store *st, int32_t uid, int32_t peer,
	    int32_t gid, int64_t before, size_t max, struct store_msg_list *out);
int	sqlite_resume_fetch(struct store *st, int32_t uid, int64_t anchor,
	    int64_t window_ms, size_t max, struct store_msg_list *out,
	    int64_t *at);
int	sqlite_history_forget(struct store *st, int32_t gid);
int	sqlite_history_prune(struct store *st, int64_t t, size_t max,
	    size_t *n);
int	sqlite_account_purge(struct store *st, int32_t uid);

#endif
