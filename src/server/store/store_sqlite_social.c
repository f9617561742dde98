/*
 * store_sqlite_social.c - SQLite: users, friends, blocks, groups and
 * the counts behind their limits.  Handle, helpers: store_sqlite.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "store.h"
#include "store_impl.h"
#include "util.h"
#include "store_sqlite_impl.h"

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

int
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

	if ((rc = sq_bind_ints(sq, s, STORE_INTS(id), "get user")) != STORE_OK)
		return rc;
	return user_read(sq, s, u);
}

int
sqlite_user_get(struct store *st, int32_t id, struct store_user *u)
{
	SQ_CALL(st, user_get_once(sq, id, u));
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

int
sqlite_user_by_name(struct store *st, const char *name, size_t name_len,
    struct store_user *u)
{
	SQ_CALL(st, user_by_name_once(sq, name, name_len, u));
}

/* ---- friends ---- */

static enum sq_exists
user_exists(struct sq *sq, int32_t id)
{
	sqlite3_stmt	*s = sq->q[Q_USER_EXISTS];

	if (sq_bind_ints(sq, s, STORE_INTS(id), "find user") != STORE_OK)
		return SQ_ERR;
	return sq_exists(sq, s, "find user");
}

static int
friend_add_once(struct sq *sq, int32_t a, int32_t b)
{
	enum sq_exists	 i;
	int		 rc;

	if ((rc = sq_begin(sq)) != STORE_OK)
		return rc;
	if ((i = user_exists(sq, b)) != SQ_ROW ||
	    (i = user_exists(sq, a)) != SQ_ROW) {
		sq_rollback(sq);
		if (i == SQ_ERR)
			return STORE_ERR;
		store_set_error(&sq->st, "no such user");
		return STORE_NOTFOUND;
	}
	if ((rc = sq_exec_ints(sq, Q_FRIEND_ADD, STORE_INTS(a, b), "add friend")) ==
	    STORE_OK)
		rc = sq_exec_ints(sq, Q_FRIEND_ADD, STORE_INTS(b, a), "add friend");
	return sq_end(sq, rc);
}

int
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
		if (util_grow((void **)&out->v, &cap, out->n, sizeof(*u)) == -1)
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

	if ((rc = sq_bind_ints(sq, s, STORE_INTS(uid), "list friends")) !=
	    STORE_OK)
		return rc;
	return members_read(sq, s, 0, 0, out, &rows, "list friends");
}

int
sqlite_friends(struct store *st, int32_t uid, struct store_user_list *out)
{
	SQ_CALL(st, friends_once(sq, uid, out));
}

/* Run statement q with ?1 a, ?2 b; *n rows changed. */
static int
sq_pair(struct sq *sq, int q, int32_t a, int32_t b, int *n,
    const char *what)
{
	int	 rc;

	if ((rc = sq_exec_ints(sq, q, STORE_INTS(a, b), what)) != STORE_OK)
		return rc;
	*n = sqlite3_changes(sq->db);
	return STORE_OK;
}

int
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

int
sqlite_block(struct store *st, int32_t uid, int32_t other, int on)
{
	struct sq	*sq = (struct sq *)st;
	int		 n;

	sq->busy = 0;
	return sq_result(sq, sq_pair(sq, on ? Q_BLOCK_ADD : Q_BLOCK_DEL, uid,
	    other, &n, on ? "block" : "unblock"));
}

int
sqlite_blocks(struct store *st, int32_t uid, int blockers,
    struct store_user_list *out)
{
	struct sq	*sq = (struct sq *)st;
	sqlite3_stmt	*s = sq->q[blockers ? Q_BLOCKERS : Q_BLOCKS];
	int		 rc, rows;

	sq->busy = 0;
	if ((rc = sq_bind_ints(sq, s, STORE_INTS(uid), "list blocks")) !=
	    STORE_OK)
		return sq_result(sq, rc);
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
	rc = sq_exec_ints(sq, Q_GROUP_ADD_CREATOR, STORE_INTS(id, creator),
	    "create group");
	if ((rc = sq_end(sq, rc)) == STORE_OK)
		*gid = id;
	return rc;

 fail:
	return sq_end(sq, rc);
}

int
sqlite_group_create(struct store *st, int32_t creator, const char *name,
    size_t name_len, const char *desc, size_t desc_len, int32_t *gid)
{
	SQ_CALL(st, group_create_once(sq, creator, name, name_len,
	    desc, desc_len, gid));
}

static int
group_join_once(struct sq *sq, int32_t gid, int32_t uid)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((rc = sq_begin(sq)) != STORE_OK)
		return rc;

	s = sq->q[Q_GROUP_EXISTS];
	if ((rc = sq_bind_ints(sq, s, STORE_INTS(gid), "join group")) !=
	    STORE_OK)
		goto fail;
	switch (sq_exists(sq, s, "join group")) {
	case SQ_ERR:
		rc = STORE_ERR;
		goto fail;
	case SQ_ROW:
		break;
	case SQ_NOROW:
		store_set_error(&sq->st, "no such group");
		rc = STORE_NOTFOUND;
		goto fail;
	}

	rc = sq_exec_ints(sq, Q_GROUP_JOIN, STORE_INTS(gid, uid), "join group");
	if (rc == STORE_NOTFOUND)
		store_set_error(&sq->st, "no such user");
 fail:
	return sq_end(sq, rc);
}

int
sqlite_group_join(struct store *st, int32_t gid, int32_t uid)
{
	SQ_CALL(st, group_join_once(sq, gid, uid));
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
	return sq_end(sq, rc);
}

int
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

	if ((rc = sq_bind_ints(sq, s, STORE_INTS(gid, uid), "group member")) !=
	    STORE_OK)
		return rc;
	switch (sq_exists(sq, s, "group member")) {
	case SQ_ROW:
		return STORE_MEMBER;
	case SQ_NOROW:
		return STORE_NOT_MEMBER;
	default:
		return STORE_ERR;
	}
}

int
sqlite_group_is_member(struct store *st, int32_t gid, int32_t uid)
{
	SQ_CALL(st, group_is_member_once(sq, gid, uid));
}

/* One "SELECT count(*) ... WHERE x = ?1" into *n. */
static int
count_once(struct sq *sq, int q, int32_t id, int64_t *n)
{
	sqlite3_stmt	*s = sq->q[q];
	int		 rc;

	if ((rc = sq_bind_ints(sq, s, STORE_INTS(id), "count")) != STORE_OK)
		return rc;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW)
		return sq_fail(sq, s, rc, "count");
	*n = sqlite3_column_int64(s, 0);
	sq_done(s);
	return STORE_OK;
}

int
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

	if ((rc = sq_bind_ints(sq, s, STORE_INTS(gid), "group members")) !=
	    STORE_OK)
		return rc;
	rc = members_read(sq, s, 0, 1, out, &rows, "group members");
	if (rc == STORE_OK && rows == 0) {
		store_set_error(&sq->st, "no such group");
		return STORE_NOTFOUND;
	}
	return rc;
}

int
sqlite_group_members(struct store *st, int32_t gid,
    struct store_user_list *out)
{
	SQ_CALL(st, group_members_once(sq, gid, out));
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
	if ((rc = sq_bind_ints(sq, s, STORE_INTS(uid), "user groups")) !=
	    STORE_OK)
		return rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		id = (int32_t)sqlite3_column_int64(s, 0);
		if (g == NULL || g->id != id) {
			if (util_grow((void **)&out->v, &gcap, out->n,
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
		if (util_grow((void **)&g->members.v, &ucap, g->members.n,
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

int
sqlite_user_groups(struct store *st, int32_t uid, struct store_group_list *out)
{
	SQ_CALL(st, user_groups_once(sq, uid, out));
}

