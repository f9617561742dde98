/*
 * store_sqlite.c - the embedded SQLite backend.
 *
 * Several worker processes open the same file, each with its own
 * handle: WAL lets readers run beside the one writer, writes that touch
 * several rows take the write lock up front (BEGIN IMMEDIATE), and a
 * lock conflict that outlasts the busy handler is retried as a whole
 * transaction a few times before it is reported.  Every statement is
 * prepared once at open; input is only ever bound, never pasted.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"
#include "store_impl.h"
#include "sqlite_schema.h"	/* generated from sql/sqlite.sql */
#include "sqlite_upgrade.h"	/* generated from sql/sqlite-upgrade.sql */

/* The PRAGMA user_version that sql/sqlite.sql sets. */
#define SQ_SCHEMA_VERSION	2

/* Whole-transaction retries after SQLITE_BUSY: <= ~0.9 s of sleep. */
#define SQ_TRIES		8	/* attempts of a call that finds the file locked */

enum {
	Q_BEGIN,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_PING,
	Q_USER_CREATE,
	Q_USER_GET,
	Q_USER_BY_NAME,
	Q_USER_EXISTS,
	Q_FRIEND_ADD,
	Q_FRIENDS,
	Q_GROUP_CREATE,
	Q_GROUP_ADD_CREATOR,
	Q_GROUP_EXISTS,
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
	Q_MAX
};

static const char *const sq_sql[Q_MAX] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_PING] = "SELECT 1",
	[Q_USER_CREATE] =
	    "INSERT INTO User (name, pwhash, created) VALUES (?1, ?2, ?3)",
	[Q_USER_GET] = "SELECT id, name, pwhash FROM User WHERE id = ?1",
	[Q_USER_BY_NAME] = "SELECT id, name, pwhash FROM User WHERE name = ?1",
	[Q_USER_EXISTS] = "SELECT 1 FROM User WHERE id = ?1",
	[Q_FRIEND_ADD] =
	    "INSERT OR IGNORE INTO Friend (userid, friendid) VALUES (?1, ?2)",
	[Q_FRIENDS] =
	    "SELECT u.id, u.name FROM Friend f JOIN User u ON u.id = f.friendid"
	    " WHERE f.userid = ?1 ORDER BY f.friendid",
	[Q_GROUP_CREATE] =
	    "INSERT INTO AllGroup (groupname, groupdesc, creator)"
	    " VALUES (?1, ?2, ?3)",
	[Q_GROUP_ADD_CREATOR] =
	    "INSERT INTO GroupUser (groupid, userid, grouprole, joined)"
	    " VALUES (?1, ?2, 'creator', 1)",
	[Q_GROUP_EXISTS] = "SELECT 1 FROM AllGroup WHERE id = ?1",
	/* joined: next number in this group; we hold the write lock. */
	[Q_GROUP_JOIN] =
	    "INSERT OR IGNORE INTO GroupUser (groupid, userid, grouprole, joined,"
	    " joinedat) SELECT ?1, ?2, 'normal', coalesce(max(joined), 0) + 1,"
	    " CAST(strftime('%s', 'now') AS INTEGER) FROM GroupUser"
	    " WHERE groupid = ?1",
	[Q_GROUP_IS_MEMBER] =
	    "SELECT 1 FROM GroupUser WHERE groupid = ?1 AND userid = ?2",
	/* One row with NULL member for an empty group, none for no group. */
	[Q_GROUP_MEMBERS] =
	    "SELECT u.id, u.name, CASE WHEN m.grouprole = 'normal' AND m.admin"
	    " THEN 'admin' ELSE m.grouprole END FROM AllGroup g"
	    " LEFT JOIN GroupUser m ON m.groupid = g.id"
	    " LEFT JOIN User u ON u.id = m.userid"
	    " WHERE g.id = ?1 ORDER BY m.joined",
	/* One statement, so groups and members come from one snapshot. */
	[Q_USER_GROUPS] =
	    "SELECT g.id, g.groupname, g.groupdesc, u.id, u.name, m.grouprole"
	    " FROM GroupUser me JOIN AllGroup g ON g.id = me.groupid"
	    " JOIN GroupUser m ON m.groupid = g.id"
	    " JOIN User u ON u.id = m.userid"
	    " WHERE me.userid = ?1 ORDER BY g.id, m.joined",
	[Q_COUNT_FRIENDS] = "SELECT count(*) FROM Friend WHERE userid = ?1",
	[Q_COUNT_USER_GROUPS] =
	    "SELECT count(*) FROM GroupUser WHERE userid = ?1",
	[Q_COUNT_GROUP_MEMBERS] =
	    "SELECT count(*) FROM GroupUser WHERE groupid = ?1",
	[Q_OFFLINE_ADD] =
	    "INSERT INTO OfflineMessage (userid, message, created, smid)"
	    " VALUES (?1, ?2, ?3, ?4)",
	[Q_OFFLINE_FETCH] =
	    "SELECT id, message FROM OfflineMessage WHERE userid = ?1"
	    " ORDER BY id LIMIT ?2",
	[Q_OFFLINE_DELETE] =
	    "DELETE FROM OfflineMessage WHERE userid = ?1 AND id <= ?2",
	[Q_OFFLINE_REMOVE] =
	    "DELETE FROM OfflineMessage WHERE userid = ?1 AND smid = ?2",
	[Q_ACK_CLAIM] =
	    "INSERT INTO ClientMsg (userid, cmid, created) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (userid, cmid) DO NOTHING",
	[Q_ACK_GET] =
	    "SELECT smid, done FROM ClientMsg WHERE userid = ?1 AND cmid = ?2",
	/* a claim's smid is its row times STORE_SMID_BLOCK (store.h) */
	[Q_ACK_DONE] = "UPDATE ClientMsg SET done = 1"
	    " WHERE smid = ?1 / " STORE_SMID_BLOCK_SQL,
	/* group changes (store_group_update): ?1 group, ?2 user or text */
	[Q_GROUP_LEAVE] =
	    "DELETE FROM GroupUser WHERE groupid = ?1 AND userid = ?2",
	[Q_GROUP_ADMIN] =
	    "UPDATE GroupUser SET admin = ?3 WHERE groupid = ?1 AND userid = ?2",
	[Q_GROUP_RENAME] = "UPDATE AllGroup SET groupname = ?2 WHERE id = ?1",
	[Q_GROUP_DESCRIBE] = "UPDATE AllGroup SET groupdesc = ?2 WHERE id = ?1",
	[Q_GROUP_DEMOTE] =
	    "UPDATE GroupUser SET grouprole = 'normal'"
	    " WHERE groupid = ?1 AND grouprole = 'creator'",
	[Q_GROUP_PROMOTE] =
	    "UPDATE GroupUser SET grouprole = 'creator', admin = 0"
	    " WHERE groupid = ?1 AND userid = ?2",
	[Q_GROUP_SET_CREATOR] = "UPDATE AllGroup SET creator = ?2 WHERE id = ?1",
	[Q_GROUP_DROP_MEMBERS] = "DELETE FROM GroupUser WHERE groupid = ?1",
	[Q_GROUP_DROP] = "DELETE FROM AllGroup WHERE id = ?1",
	[Q_FRIEND_REMOVE] =
	    "DELETE FROM Friend WHERE (userid = ?1 AND friendid = ?2)"
	    " OR (userid = ?2 AND friendid = ?1)",
	[Q_BLOCK_ADD] =
	    "INSERT OR IGNORE INTO Block (userid, blockedid) VALUES (?1, ?2)",
	[Q_BLOCK_DEL] = "DELETE FROM Block WHERE userid = ?1 AND blockedid = ?2",
	[Q_BLOCKS] =
	    "SELECT u.id, u.name FROM Block b JOIN User u ON u.id = b.blockedid"
	    " WHERE b.userid = ?1 ORDER BY b.blockedid",
	[Q_BLOCKERS] =
	    "SELECT u.id, u.name FROM Block b JOIN User u ON u.id = b.userid"
	    " WHERE b.blockedid = ?1 ORDER BY b.userid",
};

struct sq {
	struct store	 st;		/* first: we are handed out as it */
	sqlite3		*db;
	sqlite3_stmt	*q[Q_MAX];
	int		 busy;		/* last failure was a lock conflict */
};

static const struct store_ops sqlite_ops;

/*
 * Record why a statement failed and reset it.  A lock conflict marks
 * the handle busy so the caller retries; constraint failures become the
 * outcomes the interface promises.
 */
static int
sq_fail(struct sq *sq, sqlite3_stmt *s, int rc, const char *what)
{
	store_set_error(&sq->st, "sqlite: %s: %s", what,
	    sqlite3_errmsg(sq->db));
	if (s != NULL) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return STORE_EXISTS;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return STORE_NOTFOUND;
	}
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		sq->busy = 1;
	return STORE_ERR;
}

static void
sq_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* The caller's buffer lives until we reset, so no copy (STATIC). */
static int
sq_bind_text(sqlite3_stmt *s, int i, const char *p, size_t len)
{
	if (p == NULL)
		p = "";
	return sqlite3_bind_text64(s, i, p, len, SQLITE_STATIC, SQLITE_UTF8);
}

/* Step a statement that returns nothing useful, then reset it. */
static int
sq_run(struct sq *sq, sqlite3_stmt *s, const char *what)
{
	int	 rc;

	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sq_fail(sq, s, rc, what);
	sq_done(s);
	return STORE_OK;
}

/* 1 when the statement yields a row, 0 when not, -1 on error. */
static int
sq_exists(struct sq *sq, sqlite3_stmt *s, const char *what)
{
	int	 rc;

	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sq_fail(sq, s, rc, what) == STORE_ERR ? -1 : 0;
	sq_done(s);
	return rc == SQLITE_ROW;
}

static int
sq_begin(struct sq *sq)
{
	return sq_run(sq, sq->q[Q_BEGIN], "begin");
}

static int
sq_commit(struct sq *sq)
{
	return sq_run(sq, sq->q[Q_COMMIT], "commit");
}

/* Undo whatever is open; the error already recorded stays. */
static void
sq_rollback(struct sq *sq)
{
	if (sqlite3_get_autocommit(sq->db))
		return;		/* SQLite already rolled back */
	sqlite3_step(sq->q[Q_ROLLBACK]);
	sqlite3_reset(sq->q[Q_ROLLBACK]);
}

/*
 * One attempt's outcome for store.c: a lock held by another process
 * (SQLITE_BUSY past the busy timeout) is worth another try.
 */
static int
sq_result(struct sq *sq, int rc)
{
	return rc == STORE_ERR && sq->busy ? STORE_RETRY : rc;
}

/* Copy a text column, any bytes, NUL-terminated; -1 on no memory. */
static int
sq_col_text(sqlite3_stmt *s, int col, char **p, size_t *len)
{
	const unsigned char	*t;
	int			 n;

	t = sqlite3_column_text(s, col);
	n = sqlite3_column_bytes(s, col);	/* after _text: its length */
	if (t == NULL && sqlite3_column_type(s, col) != SQLITE_NULL)
		return -1;
	if ((*p = malloc((size_t)n + 1)) == NULL)
		return -1;
	if (n > 0)
		memcpy(*p, t, (size_t)n);
	(*p)[n] = '\0';
	if (len != NULL)
		*len = (size_t)n;
	return 0;
}

static int
sq_nomem(struct sq *sq, sqlite3_stmt *s)
{
	if (s != NULL)
		sq_done(s);
	return store_set_error(&sq->st, "sqlite: out of memory");
}

/* ---- users ---- */

static int
user_create_once(struct sq *sq, const char *name, size_t name_len,
    const char *pwhash, int32_t *id)
{
	sqlite3_stmt	*s = sq->q[Q_USER_CREATE];
	sqlite3_int64	 rowid;
	int		 rc;

	if ((rc = sq_bind_text(s, 1, name, name_len)) != SQLITE_OK ||
	    (rc = sq_bind_text(s, 2, pwhash, strlen(pwhash))) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 3, time(NULL))) != SQLITE_OK)
		return sq_fail(sq, s, rc, "create user");
	rc = sq_run(sq, s, "create user");
	if (rc == STORE_EXISTS)
		store_set_error(&sq->st, "user name taken");
	if (rc != STORE_OK)
		return rc;
	rowid = sqlite3_last_insert_rowid(sq->db);
	*id = (int32_t)rowid;	/* the schema keeps ids in range */
	return STORE_OK;
}

static int
sqlite_user_create(struct store *st, const char *name, size_t name_len,
    const char *pwhash, int32_t *id)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	if (pwhash == NULL)
		return store_set_error(st, "create user: no password hash");
	sq->busy = 0;
	rc = sq_result(sq, user_create_once(sq, name, name_len, pwhash, id));
	return rc;
}

/* Read the one row of a user query (id, name, pwhash) into u. */
static int
user_read(struct sq *sq, sqlite3_stmt *s, struct store_user *u)
{
	int	 rc;

	memset(u, 0, sizeof(*u));
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sq_done(s);
		store_set_error(&sq->st, "no such user");
		return STORE_NOTFOUND;
	}
	if (rc != SQLITE_ROW)
		return sq_fail(sq, s, rc, "get user");
	u->id = (int32_t)sqlite3_column_int64(s, 0);
	if (sq_col_text(s, 1, &u->name, &u->name_len) == -1 ||
	    sq_col_text(s, 2, &u->pwhash, NULL) == -1) {
		store_user_clear(u);
		return sq_nomem(sq, s);
	}
	sq_done(s);
	return STORE_OK;
}

static int
user_get_once(struct sq *sq, int32_t id, struct store_user *u)
{
	sqlite3_stmt	*s = sq->q[Q_USER_GET];
	int		 rc;

	if ((rc = sqlite3_bind_int64(s, 1, id)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "get user");
	return user_read(sq, s, u);
}

static int
sqlite_user_get(struct store *st, int32_t id, struct store_user *u)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, user_get_once(sq, id, u));
	return rc;
}

static int
user_by_name_once(struct sq *sq, const char *name, size_t name_len,
    struct store_user *u)
{
	sqlite3_stmt	*s = sq->q[Q_USER_BY_NAME];
	int		 rc;

	if ((rc = sq_bind_text(s, 1, name, name_len)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "get user");
	return user_read(sq, s, u);
}

static int
sqlite_user_by_name(struct store *st, const char *name, size_t name_len,
    struct store_user *u)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, user_by_name_once(sq, name, name_len, u));
	return rc;
}

/* ---- friends ---- */

static int
user_exists(struct sq *sq, int32_t id)
{
	sqlite3_stmt	*s = sq->q[Q_USER_EXISTS];
	int		 rc;

	if ((rc = sqlite3_bind_int64(s, 1, id)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "find user");
	return sq_exists(sq, s, "find user");
}

static int
friend_insert(struct sq *sq, int32_t a, int32_t b)
{
	sqlite3_stmt	*s = sq->q[Q_FRIEND_ADD];
	int		 rc;

	if ((rc = sqlite3_bind_int64(s, 1, a)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, b)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "add friend");
	return sq_run(sq, s, "add friend");
}

static int
friend_add_once(struct sq *sq, int32_t a, int32_t b)
{
	int	 rc, i;

	if ((rc = sq_begin(sq)) != STORE_OK)
		return rc;
	if ((i = user_exists(sq, b)) != 1 ||
	    (i = user_exists(sq, a)) != 1) {
		sq_rollback(sq);
		if (i == -1)
			return STORE_ERR;
		store_set_error(&sq->st, "no such user");
		return STORE_NOTFOUND;
	}
	if ((rc = friend_insert(sq, a, b)) != STORE_OK ||
	    (rc = friend_insert(sq, b, a)) != STORE_OK ||
	    (rc = sq_commit(sq)) != STORE_OK) {
		sq_rollback(sq);
		return rc;
	}
	return STORE_OK;
}

static int
sqlite_friend_add(struct store *st, int32_t a, int32_t b)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	if (a == b)
		return store_set_error(st, "add friend: user %d is "
		    "themselves", (int)a);
	sq->busy = 0;
	rc = sq_result(sq, friend_add_once(sq, a, b));
	return rc;
}

/*
 * Read rows (id, name[, role]) into a member list.  Rows whose id is
 * NULL (a group without members) are skipped.
 */
static int
members_read(struct sq *sq, sqlite3_stmt *s, int col, int withrole,
    struct store_user_list *out, int *rows, const char *what)
{
	struct store_user	*u;
	size_t			 cap = 0;
	int			 rc;

	out->v = NULL;
	out->n = 0;
	*rows = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		(*rows)++;
		if (sqlite3_column_type(s, col) == SQLITE_NULL)
			continue;
		if (store_grow((void **)&out->v, out->n, &cap, sizeof(*u)) == -1)
			goto nomem;
		u = &out->v[out->n];
		memset(u, 0, sizeof(*u));
		u->id = (int32_t)sqlite3_column_int64(s, col);
		if (sq_col_text(s, col + 1, &u->name, &u->name_len) == -1)
			goto nomem;
		out->n++;
		if (withrole) {
			const unsigned char *r;

			r = sqlite3_column_text(s, col + 2);
			u->creator = r != NULL &&
			    strcmp((const char *)r, "creator") == 0;
			u->admin = r != NULL &&
			    strcmp((const char *)r, "admin") == 0;
		}
	}
	if (rc != SQLITE_DONE) {
		store_user_list_free(out);
		return sq_fail(sq, s, rc, what);
	}
	sq_done(s);
	return STORE_OK;

 nomem:
	store_user_list_free(out);
	return sq_nomem(sq, s);
}

static int
friends_once(struct sq *sq, int32_t uid, struct store_user_list *out)
{
	sqlite3_stmt	*s = sq->q[Q_FRIENDS];
	int		 rc, rows;

	if ((rc = sqlite3_bind_int64(s, 1, uid)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "list friends");
	return members_read(sq, s, 0, 0, out, &rows, "list friends");
}

static int
sqlite_friends(struct store *st, int32_t uid, struct store_user_list *out)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, friends_once(sq, uid, out));
	return rc;
}

/* Run statement q with ?1 a, ?2 b; *n rows changed. */
static int
sq_pair(struct sq *sq, int q, int32_t a, int32_t b, int *n,
    const char *what)
{
	sqlite3_stmt	*s = sq->q[q];
	int		 rc;

	if ((rc = sqlite3_bind_int64(s, 1, a)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, b)) != SQLITE_OK)
		return sq_fail(sq, s, rc, what);
	if ((rc = sq_run(sq, s, what)) != STORE_OK)
		return rc;
	*n = sqlite3_changes(sq->db);
	return STORE_OK;
}

static int
sqlite_friend_remove(struct store *st, int32_t a, int32_t b)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc, n = 0;

	sq->busy = 0;
	rc = sq_result(sq, sq_pair(sq, Q_FRIEND_REMOVE, a, b, &n,
	    "remove friend"));
	if (rc == STORE_OK && n == 0) {
		store_set_error(st, "not friends");
		rc = STORE_NOTFOUND;
	}
	return rc;
}

static int
sqlite_block(struct store *st, int32_t uid, int32_t other, int on)
{
	struct sq	*sq = (struct sq *)st;
	int		 n;

	sq->busy = 0;
	return sq_result(sq, sq_pair(sq, on ? Q_BLOCK_ADD : Q_BLOCK_DEL, uid,
	    other, &n, on ? "block" : "unblock"));
}

static int
sqlite_blocks(struct store *st, int32_t uid, int blockers,
    struct store_user_list *out)
{
	struct sq	*sq = (struct sq *)st;
	sqlite3_stmt	*s = sq->q[blockers ? Q_BLOCKERS : Q_BLOCKS];
	int		 rc, rows;

	sq->busy = 0;
	if ((rc = sqlite3_bind_int64(s, 1, uid)) != SQLITE_OK)
		return sq_result(sq, sq_fail(sq, s, rc, "list blocks"));
	return sq_result(sq, members_read(sq, s, 0, 0, out, &rows,
	    "list blocks"));
}

/* ---- groups ---- */

static int
group_create_once(struct sq *sq, int32_t creator, const char *name,
    size_t name_len, const char *desc, size_t desc_len, int32_t *gid)
{
	sqlite3_stmt	*s;
	int32_t		 id;
	int		 rc;

	if ((rc = sq_begin(sq)) != STORE_OK)
		return rc;

	s = sq->q[Q_GROUP_CREATE];
	if ((rc = sq_bind_text(s, 1, name, name_len)) != SQLITE_OK ||
	    (rc = sq_bind_text(s, 2, desc, desc_len)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 3, creator)) != SQLITE_OK) {
		rc = sq_fail(sq, s, rc, "create group");
		goto fail;
	}
	if ((rc = sq_run(sq, s, "create group")) != STORE_OK) {
		if (rc == STORE_EXISTS)
			store_set_error(&sq->st, "group name taken");
		else if (rc == STORE_NOTFOUND)
			store_set_error(&sq->st, "no such user");
		goto fail;
	}
	id = (int32_t)sqlite3_last_insert_rowid(sq->db);

	s = sq->q[Q_GROUP_ADD_CREATOR];
	if ((rc = sqlite3_bind_int64(s, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, creator)) != SQLITE_OK) {
		rc = sq_fail(sq, s, rc, "create group");
		goto fail;
	}
	if ((rc = sq_run(sq, s, "create group")) != STORE_OK ||
	    (rc = sq_commit(sq)) != STORE_OK)
		goto fail;
	*gid = id;
	return STORE_OK;

 fail:
	sq_rollback(sq);
	return rc;
}

static int
sqlite_group_create(struct store *st, int32_t creator, const char *name,
    size_t name_len, const char *desc, size_t desc_len, int32_t *gid)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, group_create_once(sq, creator, name, name_len,
	    desc, desc_len, gid));
	return rc;
}

static int
group_join_once(struct sq *sq, int32_t gid, int32_t uid)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((rc = sq_begin(sq)) != STORE_OK)
		return rc;

	s = sq->q[Q_GROUP_EXISTS];
	if ((rc = sqlite3_bind_int64(s, 1, gid)) != SQLITE_OK) {
		rc = sq_fail(sq, s, rc, "join group");
		goto fail;
	}
	switch (sq_exists(sq, s, "join group")) {
	case -1:
		rc = STORE_ERR;
		goto fail;
	case 0:
		store_set_error(&sq->st, "no such group");
		rc = STORE_NOTFOUND;
		goto fail;
	}

	s = sq->q[Q_GROUP_JOIN];
	if ((rc = sqlite3_bind_int64(s, 1, gid)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, uid)) != SQLITE_OK) {
		rc = sq_fail(sq, s, rc, "join group");
		goto fail;
	}
	if ((rc = sq_run(sq, s, "join group")) != STORE_OK) {
		if (rc == STORE_NOTFOUND)
			store_set_error(&sq->st, "no such user");
		goto fail;
	}
	if ((rc = sq_commit(sq)) != STORE_OK)
		goto fail;
	return STORE_OK;

 fail:
	sq_rollback(sq);
	return rc;
}

static int
sqlite_group_join(struct store *st, int32_t gid, int32_t uid)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, group_join_once(sq, gid, uid));
	return rc;
}

/* Run statement q with ?1 gid, ?2 a (or text when t), ?3 b; *n rows changed. */
static int
group_step(struct sq *sq, int q, int32_t gid, int64_t a, const char *t,
    size_t len, int64_t b, int *n)
{
	sqlite3_stmt	*s = sq->q[q];
	int		 rc;

	rc = sqlite3_bind_int64(s, 1, gid);
	if (rc == SQLITE_OK && sqlite3_bind_parameter_count(s) >= 2)
		rc = t != NULL ? sq_bind_text(s, 2, t, len) :
		    sqlite3_bind_int64(s, 2, a);
	if (rc == SQLITE_OK && sqlite3_bind_parameter_count(s) >= 3)
		rc = sqlite3_bind_int64(s, 3, b);
	if (rc != SQLITE_OK)
		return sq_fail(sq, s, rc, "change group");
	if ((rc = sq_run(sq, s, "change group")) != STORE_OK)
		return rc;
	if (n != NULL)
		*n = sqlite3_changes(sq->db);
	return STORE_OK;
}

static int
group_update_once(struct sq *sq, int32_t gid, enum store_group_op op,
    int32_t uid, const char *text, size_t len)
{
	int	 rc, n = 0;

	if ((rc = sq_begin(sq)) != STORE_OK)
		return rc;
	switch (op) {
	case STORE_GROUP_LEAVE:
		rc = group_step(sq, Q_GROUP_LEAVE, gid, uid, NULL, 0, 0, &n);
		break;
	case STORE_GROUP_ADMIN:
	case STORE_GROUP_UNADMIN:
		rc = group_step(sq, Q_GROUP_ADMIN, gid, uid, NULL, 0,
		    op == STORE_GROUP_ADMIN, &n);
		break;
	case STORE_GROUP_RENAME:
	case STORE_GROUP_DESCRIBE:
		rc = group_step(sq, op == STORE_GROUP_RENAME ? Q_GROUP_RENAME :
		    Q_GROUP_DESCRIBE, gid, 0, text, len, 0, &n);
		break;
	case STORE_GROUP_TRANSFER:
		if ((rc = group_step(sq, Q_GROUP_DEMOTE, gid, 0, NULL, 0, 0,
		    NULL)) == STORE_OK && (rc = group_step(sq, Q_GROUP_PROMOTE,
		    gid, uid, NULL, 0, 0, &n)) == STORE_OK && n > 0)
			rc = group_step(sq, Q_GROUP_SET_CREATOR, gid, uid, NULL,
			    0, 0, &n);
		break;
	case STORE_GROUP_DISSOLVE:
		if ((rc = group_step(sq, Q_GROUP_DROP_MEMBERS, gid, 0, NULL, 0,
		    0, NULL)) == STORE_OK)
			rc = group_step(sq, Q_GROUP_DROP, gid, 0, NULL, 0, 0, &n);
		break;
	default:
		rc = store_set_error(&sq->st, "unknown group change %d", op);
		break;
	}
	if (rc == STORE_OK && n == 0) {
		store_set_error(&sq->st, "no such group or member");
		rc = STORE_NOTFOUND;
	}
	if (rc != STORE_OK || (rc = sq_commit(sq)) != STORE_OK) {
		sq_rollback(sq);
		return rc;
	}
	return STORE_OK;
}

static int
sqlite_group_update(struct store *st, int32_t gid, enum store_group_op op,
    int32_t uid, const char *text, size_t len)
{
	struct sq	*sq = (struct sq *)st;

	sq->busy = 0;
	return sq_result(sq, group_update_once(sq, gid, op, uid, text, len));
}

static int
group_is_member_once(struct sq *sq, int32_t gid, int32_t uid)
{
	sqlite3_stmt	*s = sq->q[Q_GROUP_IS_MEMBER];
	int		 rc;

	if ((rc = sqlite3_bind_int64(s, 1, gid)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, uid)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "group member");
	return sq_exists(sq, s, "group member");
}

static int
sqlite_group_is_member(struct store *st, int32_t gid, int32_t uid)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, group_is_member_once(sq, gid, uid));
	return rc;
}

/* One "SELECT count(*) ... WHERE x = ?1" into *n. */
static int
count_once(struct sq *sq, int q, int32_t id, int64_t *n)
{
	sqlite3_stmt	*s = sq->q[q];
	int		 rc;

	if ((rc = sqlite3_bind_int64(s, 1, id)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "count");
	if ((rc = sqlite3_step(s)) != SQLITE_ROW)
		return sq_fail(sq, s, rc, "count");
	*n = sqlite3_column_int64(s, 0);
	sq_done(s);
	return STORE_OK;
}

static int
sqlite_count(struct store *st, int what, int32_t id, int64_t *n)
{
	static const int q_of[STORE_COUNT_MAX] = {
		[STORE_COUNT_FRIENDS] = Q_COUNT_FRIENDS,
		[STORE_COUNT_USER_GROUPS] = Q_COUNT_USER_GROUPS,
		[STORE_COUNT_GROUP_MEMBERS] = Q_COUNT_GROUP_MEMBERS,
	};
	int		 q = q_of[what];
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, count_once(sq, q, id, n));
	return rc;
}

static int
group_members_once(struct sq *sq, int32_t gid, struct store_user_list *out)
{
	sqlite3_stmt	*s = sq->q[Q_GROUP_MEMBERS];
	int		 rc, rows;

	if ((rc = sqlite3_bind_int64(s, 1, gid)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "group members");
	rc = members_read(sq, s, 0, 1, out, &rows, "group members");
	if (rc == STORE_OK && rows == 0) {
		store_set_error(&sq->st, "no such group");
		return STORE_NOTFOUND;
	}
	return rc;
}

static int
sqlite_group_members(struct store *st, int32_t gid,
    struct store_user_list *out)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, group_members_once(sq, gid, out));
	return rc;
}

/* Rows come ordered by group, then join order: start a group on change. */
static int
user_groups_once(struct sq *sq, int32_t uid, struct store_group_list *out)
{
	sqlite3_stmt		*s = sq->q[Q_USER_GROUPS];
	struct store_group	*g = NULL;
	struct store_user	*u;
	const unsigned char	*role;
	size_t			 gcap = 0, ucap = 0;
	int32_t			 id;
	int			 rc;

	out->v = NULL;
	out->n = 0;
	if ((rc = sqlite3_bind_int64(s, 1, uid)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "user groups");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		id = (int32_t)sqlite3_column_int64(s, 0);
		if (g == NULL || g->id != id) {
			if (store_grow((void **)&out->v, out->n, &gcap,
			    sizeof(*g)) == -1)
				goto nomem;
			g = &out->v[out->n++];
			memset(g, 0, sizeof(*g));
			g->id = id;
			ucap = 0;
			if (sq_col_text(s, 1, &g->name, &g->name_len) == -1 ||
			    sq_col_text(s, 2, &g->desc, &g->desc_len) == -1)
				goto nomem;
		}
		if (store_grow((void **)&g->members.v, g->members.n, &ucap,
		    sizeof(*u)) == -1)
			goto nomem;
		u = &g->members.v[g->members.n];
		memset(u, 0, sizeof(*u));
		u->id = (int32_t)sqlite3_column_int64(s, 3);
		if (sq_col_text(s, 4, &u->name, &u->name_len) == -1)
			goto nomem;
		g->members.n++;
		role = sqlite3_column_text(s, 5);
		u->creator = role != NULL &&
		    strcmp((const char *)role, "creator") == 0;
	}
	if (rc != SQLITE_DONE) {
		store_group_list_free(out);
		return sq_fail(sq, s, rc, "user groups");
	}
	sq_done(s);
	return STORE_OK;

 nomem:
	store_group_list_free(out);
	return sq_nomem(sq, s);
}

static int
sqlite_user_groups(struct store *st, int32_t uid, struct store_group_list *out)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, user_groups_once(sq, uid, out));
	return rc;
}

/* ---- offline messages ---- */

static int
offline_add_once(struct sq *sq, const int32_t *uids, size_t n,
    const char *msg, size_t len, int64_t smid)
{
	sqlite3_stmt	*s = sq->q[Q_OFFLINE_ADD];
	size_t		 i;
	int		 rc;

	if ((rc = sq_begin(sq)) != STORE_OK)
		return rc;
	/* Text and time stay bound; only the user changes per row. */
	if ((rc = sq_bind_text(s, 2, msg, len)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 3, time(NULL))) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 4, smid)) != SQLITE_OK) {
		rc = sq_fail(sq, s, rc, "store message");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if ((rc = sqlite3_bind_int64(s, 1, uids[i])) != SQLITE_OK) {
			rc = sq_fail(sq, s, rc, "store message");
			goto fail;
		}
		rc = sqlite3_step(s);
		if (rc != SQLITE_DONE) {
			rc = sq_fail(sq, s, rc, "store message");
			if (rc == STORE_NOTFOUND)
				store_set_error(&sq->st, "store message: "
				    "no such user %d", (int)uids[i]);
			goto fail;
		}
		sqlite3_reset(s);
	}
	sq_done(s);
	if (smid > 0) {
		s = sq->q[Q_ACK_DONE];
		if ((rc = sqlite3_bind_int64(s, 1, smid)) != SQLITE_OK) {
			rc = sq_fail(sq, s, rc, "acknowledge message");
			goto fail;
		}
		if ((rc = sq_run(sq, s, "acknowledge message")) != STORE_OK)
			goto fail;
	}
	if ((rc = sq_commit(sq)) != STORE_OK)
		goto fail;
	return STORE_OK;

 fail:
	sq_done(s);
	sq_rollback(sq);
	return rc;
}

static int
sqlite_offline_add(struct store *st, const int32_t *uids, size_t n,
    const char *msg, size_t len, int64_t smid)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	if (n == 0 && smid == 0)
		return STORE_OK;
	sq->busy = 0;
	rc = sq_result(sq, offline_add_once(sq, uids, n, msg, len, smid));
	return rc;
}

static int
offline_fetch_once(struct sq *sq, int32_t uid, size_t max,
    struct store_msg_list *out)
{
	sqlite3_stmt		*s = sq->q[Q_OFFLINE_FETCH];
	struct store_msg	*m;
	sqlite3_int64		 limit;
	size_t			 cap = 0;
	int			 rc;

	out->v = NULL;
	out->n = 0;
	/* LIMIT -1 is no limit. */
	limit = (max == 0 || max > INT64_MAX) ? -1 : (sqlite3_int64)max;
	if ((rc = sqlite3_bind_int64(s, 1, uid)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, limit)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "fetch messages");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (store_grow((void **)&out->v, out->n, &cap, sizeof(*m)) == -1)
			goto nomem;
		m = &out->v[out->n];
		m->id = sqlite3_column_int64(s, 0);
		if (sq_col_text(s, 1, &m->text, &m->len) == -1)
			goto nomem;
		out->n++;
	}
	if (rc != SQLITE_DONE) {
		store_msg_list_free(out);
		return sq_fail(sq, s, rc, "fetch messages");
	}
	sq_done(s);
	return STORE_OK;

 nomem:
	store_msg_list_free(out);
	return sq_nomem(sq, s);
}

static int
sqlite_offline_fetch(struct store *st, int32_t uid, size_t max,
    struct store_msg_list *out)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, offline_fetch_once(sq, uid, max, out));
	return rc;
}

static int
offline_delete_once(struct sq *sq, int32_t uid, int64_t upto)
{
	sqlite3_stmt	*s = sq->q[Q_OFFLINE_DELETE];
	int		 rc;

	if ((rc = sqlite3_bind_int64(s, 1, uid)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, upto)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "delete messages");
	return sq_run(sq, s, "delete messages");
}

static int
sqlite_offline_delete(struct store *st, int32_t uid, int64_t upto)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, offline_delete_once(sq, uid, upto));
	return rc;
}

static int
ack_claim_once(struct sq *sq, int32_t sender, int64_t cmid, int64_t *smid,
    int *done)
{
	sqlite3_stmt	*s = sq->q[Q_ACK_CLAIM];
	int		 rc;

	if ((rc = sqlite3_bind_int64(s, 1, sender)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, cmid)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 3, time(NULL))) != SQLITE_OK)
		return sq_fail(sq, s, rc, "claim message id");
	if ((rc = sq_run(sq, s, "claim message id")) != STORE_OK)
		return rc;
	s = sq->q[Q_ACK_GET];
	if ((rc = sqlite3_bind_int64(s, 1, sender)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, cmid)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "claim message id");
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		if (rc != SQLITE_DONE)
			return sq_fail(sq, s, rc, "claim message id");
		sq_done(s);
		return store_set_error(&sq->st, "claim message id: no row");
	}
	*smid = sqlite3_column_int64(s, 0);
	*done = sqlite3_column_int(s, 1) != 0;
	sq_done(s);
	return STORE_OK;
}

static int
sqlite_ack_claim(struct store *st, int32_t sender, int64_t cmid,
    int64_t *smid, int *done)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, ack_claim_once(sq, sender, cmid, smid, done));
	return rc;
}

static int
offline_remove_once(struct sq *sq, int32_t uid, int64_t smid)
{
	sqlite3_stmt	*s = sq->q[Q_OFFLINE_REMOVE];
	int		 rc;

	if ((rc = sqlite3_bind_int64(s, 1, uid)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, smid)) != SQLITE_OK)
		return sq_fail(sq, s, rc, "remove delivered message");
	return sq_run(sq, s, "remove delivered message");
}

static int
sqlite_offline_remove(struct store *st, int32_t uid, int64_t smid)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, offline_remove_once(sq, uid, smid));
	return rc;
}

/* ---- open, close ---- */

static int
sqlite_ping(struct store *st)
{
	struct sq	*sq = (struct sq *)st;
	int		 rc;

	sq->busy = 0;
	rc = sq_result(sq, sq_run(sq, sq->q[Q_PING], "ping"));
	return rc;
}

static void
sq_free(struct sq *sq)
{
	int	 i;

	for (i = 0; i < Q_MAX; i++)
		sqlite3_finalize(sq->q[i]);	/* NULL is harmless */
	sqlite3_close(sq->db);
	free(sq);
}

static void
sqlite_close(struct store *st)
{
	sq_free((struct sq *)st);
}

/* An integer from a one-value query, -1 on error. */
static int
sq_int(struct sq *sq, const char *sql, sqlite3_int64 *v)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((rc = sqlite3_prepare_v2(sq->db, sql, -1, &s, NULL)) != SQLITE_OK)
		return sq_fail(sq, NULL, rc, sql);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		sq_fail(sq, NULL, rc, sql);
		sqlite3_finalize(s);
		return STORE_ERR;
	}
	*v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return STORE_OK;
}

static int
sq_exec(struct sq *sq, const char *sql, const char *what)
{
	int	 rc;

	if ((rc = sqlite3_exec(sq->db, sql, NULL, NULL, NULL)) != SQLITE_OK)
		return sq_fail(sq, NULL, rc, what);
	return STORE_OK;
}

/* Run the upgrade steps after version from, inside the caller's transaction. */
static int
sq_upgrade(struct sq *sq, int from)
{
	const char	*p;
	char		*sql, what[64];
	size_t		 len;
	int		 v, rc;

	for (v = from + 1; v <= SQ_SCHEMA_VERSION; v++) {
		if ((p = store_upgrade_step(sqlite_upgrade, v, &len)) == NULL)
			return store_set_error(&sq->st, "no upgrade step to "
			    "schema version %d", v);
		if ((sql = strndup(p, len)) == NULL)
			return store_set_error(&sq->st, "out of memory");
		snprintf(what, sizeof(what), "upgrade to schema version %d", v);
		rc = sq_exec(sq, sql, what);
		free(sql);
		if (rc != STORE_OK)
			return rc;
	}
	return STORE_OK;
}

/*
 * Create or check the schema.  Under BEGIN IMMEDIATE so that of
 * several processes starting at once one creates it and the others
 * find it done.
 */
static int
schema_once(struct sq *sq)
{
	sqlite3_int64	 v, n;

	/* Outside a transaction: these cannot change inside one. */
	if (sq_exec(sq, "PRAGMA journal_mode = WAL", "journal mode") ||
	    sq_exec(sq, "PRAGMA synchronous = FULL", "synchronous") ||
	    sq_exec(sq, "PRAGMA foreign_keys = ON", "foreign keys"))
		return STORE_ERR;

	if (sq_exec(sq, "BEGIN IMMEDIATE", "begin"))
		return STORE_ERR;
	if (sq_int(sq, "PRAGMA user_version", &v))
		goto fail;
	if (v > SQ_SCHEMA_VERSION) {
		store_set_error(&sq->st, "schema version %lld is newer than "
		    "this chatd knows (%d): upgrade chatd", (long long)v,
		    SQ_SCHEMA_VERSION);
		goto fail;
	}
	if (v == 0) {
		/* Not ours (or half made by hand): do not guess. */
		if (sq_int(sq, "SELECT count(*) FROM sqlite_master", &n))
			goto fail;
		if (n > 0) {
			store_set_error(&sq->st, "file has tables but no "
			    "chatd schema version (PRAGMA user_version is 0)");
			goto fail;
		}
	}
	/* an older file: its missing steps first, then the new tables */
	if (v > 0 && sq_upgrade(sq, (int)v) != STORE_OK)
		goto fail;
	if (sq_exec(sq, sqlite_schema, "create schema") ||
	    sq_int(sq, "PRAGMA user_version", &v))
		goto fail;
	if (v != SQ_SCHEMA_VERSION) {
		store_set_error(&sq->st, "built-in schema sets version %lld, "
		    "code expects %d", (long long)v, SQ_SCHEMA_VERSION);
		goto fail;
	}
	if (sq_exec(sq, "COMMIT", "commit"))
		goto fail;
	return STORE_OK;

 fail:
	if (!sqlite3_get_autocommit(sq->db))
		sqlite3_exec(sq->db, "ROLLBACK", NULL, NULL, NULL);
	return STORE_ERR;
}

/* Make the file ourselves so password hashes are not world-readable. */
static int
sq_create_file(const char *path, char *err, size_t errlen)
{
	int	 fd;

	if (strcmp(path, ":memory:") == 0)
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		if (errno == EEXIST)
			return 0;
		snprintf(err, errlen, "sqlite: %s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

struct store *
store_sqlite_open(const char *path, const struct store_opts *opts,
    char *err, size_t errlen)
{
	struct sq	*sq;
	int		 rc, i;

	if (path[0] == '\0') {
		snprintf(err, errlen, "sqlite: no file name (sqlite:PATH)");
		return NULL;
	}
	if (sq_create_file(path, err, errlen) == -1)
		return NULL;
	if ((sq = calloc(1, sizeof(*sq))) == NULL) {
		snprintf(err, errlen, "sqlite: out of memory");
		return NULL;
	}
	sq->st.ops = &sqlite_ops;
	sq->st.seed = (unsigned int)getpid();

	rc = sqlite3_open_v2(path, &sq->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "sqlite: %s: %s", path, sq->db ?
		    sqlite3_errmsg(sq->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(sq->db, 1);
	sqlite3_busy_timeout(sq->db, opts->busy_timeout_ms);

	/* several workers may start at once: the same retries as a call */
	for (sq->st.attempt = 0;; sq->st.attempt++) {
		sq->busy = 0;
		rc = sq_result(sq, schema_once(sq));
		if (rc != STORE_RETRY ||
		    store_backoff(&sq->st, sq->st.attempt) == -1)
			break;
	}
	if (rc != STORE_OK) {
		snprintf(err, errlen, "%s: %s", path, sq->st.err);
		goto fail;
	}

	for (i = 0; i < Q_MAX; i++) {
		rc = sqlite3_prepare_v3(sq->db, sq_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &sq->q[i], NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "sqlite: %s: prepare \"%s\": %s",
			    path, sq_sql[i], sqlite3_errmsg(sq->db));
			goto fail;
		}
	}
	return &sq->st;

 fail:
	sq_free(sq);
	return NULL;
}

/* ---- resume token generations (TokenGen) ---- */

/*
 * Prepared per call, not in sq->q: a token login makes one such call,
 * and preparing costs microseconds.
 */
static int
sq_prepare(struct sq *sq, const char *sql, sqlite3_stmt **s)
{
	int	 rc;

	if ((rc = sqlite3_prepare_v2(sq->db, sql, -1, s, NULL)) != SQLITE_OK)
		return sq_fail(sq, NULL, rc, "prepare");
	return STORE_OK;
}

/* The user's generation into *gen (0 without a row). */
static int
token_gen_read(struct sq *sq, int32_t uid, uint64_t *gen)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((rc = sq_prepare(sq, "SELECT gen FROM TokenGen WHERE userid = ?1",
	    &s)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(s, 1, uid);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		rc = sq_fail(sq, s, rc, "token generation");
		sqlite3_finalize(s);
		return rc;
	}
	*gen = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
	sqlite3_finalize(s);
	return STORE_OK;
}

/* In a transaction: gen + 1, and optionally a new password hash. */
static int
token_bump_once(struct sq *sq, int32_t uid, const char *pwhash,
    uint64_t *gen)
{
	sqlite3_stmt	*s = NULL;
	int		 rc;

	if ((rc = sq_begin(sq)) != STORE_OK)
		return rc;
	if (pwhash != NULL) {
		if ((rc = sq_prepare(sq, "UPDATE User SET pwhash = ?2 "
		    "WHERE id = ?1", &s)) != STORE_OK)
			goto fail;
		sqlite3_bind_int64(s, 1, uid);
		sq_bind_text(s, 2, pwhash, strlen(pwhash));
		if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
			rc = sq_fail(sq, s, rc, "password");
			goto fail;
		}
		sqlite3_finalize(s);
		s = NULL;
		if (sqlite3_changes(sq->db) == 0) {
			rc = STORE_NOTFOUND;
			goto fail;
		}
	}
	if ((rc = sq_prepare(sq, "INSERT INTO TokenGen (userid, gen) "
	    "VALUES (?1, 1) ON CONFLICT (userid) DO UPDATE SET gen = gen + 1",
	    &s)) != STORE_OK)
		goto fail;
	sqlite3_bind_int64(s, 1, uid);
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		rc = sq_fail(sq, s, rc, "token generation");
		goto fail;
	}
	sqlite3_finalize(s);
	s = NULL;
	if ((rc = token_gen_read(sq, uid, gen)) != STORE_OK ||
	    (rc = sq_commit(sq)) != STORE_OK)
		goto fail;
	return STORE_OK;
 fail:
	sqlite3_finalize(s);
	sq_rollback(sq);
	return rc;
}

static int
sqlite_token_gen(struct store *st, int32_t uid, int bump, const char *pwhash,
    uint64_t *gen)
{
	struct sq	*sq = (struct sq *)st;

	sq->busy = 0;
	if (!bump)
		return sq_result(sq, token_gen_read(sq, uid, gen));
	return sq_result(sq, token_bump_once(sq, uid, pwhash, gen));
}

static const struct store_ops sqlite_ops = {
	.kind = "sqlite",
	.tries = SQ_TRIES,
	.close = sqlite_close,
	.ping = sqlite_ping,
	.user_create = sqlite_user_create,
	.user_get = sqlite_user_get,
	.user_by_name = sqlite_user_by_name,
	.friend_add = sqlite_friend_add,
	.friends = sqlite_friends,
	.friend_remove = sqlite_friend_remove,
	.block = sqlite_block,
	.blocks = sqlite_blocks,
	.group_create = sqlite_group_create,
	.group_join = sqlite_group_join,
	.group_is_member = sqlite_group_is_member,
	.count = sqlite_count,
	.group_members = sqlite_group_members,
	.user_groups = sqlite_user_groups,
	.group_update = sqlite_group_update,
	.offline_add = sqlite_offline_add,
	.offline_fetch = sqlite_offline_fetch,
	.offline_delete = sqlite_offline_delete,
	.ack_claim = sqlite_ack_claim,
	.offline_remove = sqlite_offline_remove,
	.token_gen = sqlite_token_gen,
};
