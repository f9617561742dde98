/*
 * store_mysql_social.c - MySQL: users, friends, blocks, groups and the
 * counts behind their limits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "store_impl.h"
#include "store_mysql_impl.h"
#include "util.h"

static int
user_create_once(struct my *m, struct mconn *c, const char *name,
    size_t name_len, const char *pwhash, int32_t *id)
{
	struct mparam	 p[2];
	int		 rc;

	/* In a transaction so that a lost connection is safe to retry. */
	if ((rc = my_begin(m, c)) != STORE_OK)
		return rc;
	p[0] = P_STR(name, name_len);
	p[1] = P_STR(pwhash, strlen(pwhash));
	rc = my_exec(m, c, Q_USER_CREATE, p, 2, NULL, NULL, "create user");
	if (rc == STORE_OK)
		rc = my_commit(m, c);
	if (rc != STORE_OK) {
		if (rc == STORE_EXISTS)
			store_set_error(&m->st, "user name taken");
		my_rollback(m, c);
		return rc;
	}
	*id = (int32_t)m->insert_id;	/* INT column: in range */
	return STORE_OK;
}

int
mysql_user_create(struct store *st, const char *name, size_t name_len,
    const char *pwhash, int32_t *id)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	if (pwhash == NULL)
		return store_set_error(st, "create user: no password hash");
	MY_TRY(m, rc, MY_ONCE,
	    user_create_once(m, c, name, name_len, pwhash, id));
	return rc;
}

/* Row callback for (id, name, pwhash). */
static int
row_user(struct my *m, void *arg, struct mcol *v, unsigned int nf)
{
	struct store_user	*u = arg;

	store_user_clear(u);
	u->id = (int32_t)v[0].i;
	if (my_strdup(&v[1], &u->name, &u->name_len) == -1 ||
	    my_strdup(&v[2], &u->pwhash, NULL) == -1) {
		store_user_clear(u);
		return my_nomem(m);
	}
	return STORE_OK;
}

static int
user_read_once(struct my *m, struct mconn *c, int q, struct mparam *p,
    struct store_user *u)
{
	int	 rc;

	memset(u, 0, sizeof(*u));
	rc = my_exec(m, c, q, p, 1, row_user, u, "get user");
	if (rc != STORE_OK) {
		store_user_clear(u);
		return rc;
	}
	if (u->name == NULL) {
		store_set_error(&m->st, "no such user");
		return STORE_NOTFOUND;
	}
	return STORE_OK;
}

int
mysql_user_get(struct store *st, int32_t id, struct store_user *u)
{
	struct my	*m = (struct my *)st;
	struct mparam	 p = P_INT(id);
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, user_read_once(m, c, Q_USER_GET, &p, u));
	return rc;
}

int
mysql_user_by_name(struct store *st, const char *name, size_t name_len,
    struct store_user *u)
{
	struct my	*m = (struct my *)st;
	struct mparam	 p = P_STR(name, name_len);
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT,
	    user_read_once(m, c, Q_USER_BY_NAME, &p, u));
	return rc;
}

/* ---- friends ---- */

static int
friend_add_once(struct my *m, struct mconn *c, int32_t a, int32_t b)
{
	int	 rc;

	rc = my_exec_ints(m, c, Q_FRIEND_ADD, STORE_INTS(a, b, b, a), NULL,
	    NULL, "add friend");
	if (rc == STORE_NOTFOUND)
		store_set_error(&m->st, "no such user");
	return rc;
}

int
mysql_friend_add(struct store *st, int32_t a, int32_t b)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	if (a == b)
		return store_set_error(st, "add friend: user %d is "
		    "themselves", (int)a);
	/* One statement writes both rows: atomic without BEGIN. */
	MY_TRY(m, rc, MY_IDEMPOTENT, friend_add_once(m, c, a, b));
	return rc;
}

struct ulist {
	struct store_user_list	*out;
	size_t			 cap;
	int			 rows;
};

/* Row callback for (id, name[, creator]); a NULL id is no member. */
static int
row_member(struct my *m, void *arg, struct mcol *v, unsigned int nf)
{
	struct ulist		*ul = arg;
	struct store_user	*u;

	ul->rows++;
	if (v[0].null)
		return STORE_OK;
	if (util_grow((void **)&ul->out->v, &ul->cap, ul->out->n,
	    sizeof(*u)) == -1)
		return my_nomem(m);
	u = &ul->out->v[ul->out->n];
	memset(u, 0, sizeof(*u));
	u->id = (int32_t)v[0].i;
	if (my_strdup(&v[1], &u->name, &u->name_len) == -1)
		return my_nomem(m);
	if (nf > 2) {
		u->creator = !v[2].null && v[2].i == 1;
		u->admin = !v[2].null && v[2].i == 2;
	}
	ul->out->n++;
	return STORE_OK;
}

static int
members_once(struct my *m, struct mconn *c, int q, int32_t id,
    struct store_user_list *out, int *rows, const char *what)
{
	struct ulist	 ul;
	int		 rc;

	out->v = NULL;
	out->n = 0;
	memset(&ul, 0, sizeof(ul));
	ul.out = out;
	rc = my_exec_ints(m, c, q, STORE_INTS(id), row_member, &ul, what);
	if (rc != STORE_OK) {
		store_user_list_free(out);
		return rc;
	}
	if (rows != NULL)
		*rows = ul.rows;
	return STORE_OK;
}

int
mysql_friends(struct store *st, int32_t uid, struct store_user_list *out)
{
	MY_CALL(st, MY_IDEMPOTENT, members_once(m, c, Q_FRIENDS, uid, out, NULL, "list friends"));
}

static int
friend_remove_once(struct my *m, struct mconn *c, int32_t a, int32_t b)
{
	int	 rc;

	rc = my_exec_ints(m, c, Q_FRIEND_REMOVE, STORE_INTS(a, b, b, a), NULL,
	    NULL, "remove friend");
	if (rc == STORE_OK && m->affected == 0)
		rc = STORE_NOTFOUND;
	return rc;
}

int
mysql_friend_remove(struct store *st, int32_t a, int32_t b)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	/* not again after a lost commit: it would find nothing to remove */
	MY_TRY(m, rc, MY_ONCE, friend_remove_once(m, c, a, b));
	if (rc == STORE_NOTFOUND)
		store_set_error(st, "not friends");
	return rc;
}

int
mysql_block(struct store *st, int32_t uid, int32_t other, int on)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, my_exec_ints(m, c, on ? Q_BLOCK_ADD :
	    Q_BLOCK_DEL, STORE_INTS(uid, other), NULL, NULL,
	    on ? "block" : "unblock"));
	if (rc == STORE_NOTFOUND)
		store_set_error(st, "no such user");
	return rc;
}

int
mysql_blocks(struct store *st, int32_t uid, int blockers,
    struct store_user_list *out)
{
	MY_CALL(st, MY_IDEMPOTENT, members_once(m, c, blockers ? Q_BLOCKERS :
	    Q_BLOCKS, uid, out, NULL, "list blocks"));
}

/* ---- groups ---- */

static int
group_create_once(struct my *m, struct mconn *c, int32_t creator,
    const char *name, size_t name_len, const char *desc, size_t desc_len,
    int32_t *gid)
{
	struct mparam	 p[3];
	int32_t		 id;
	int		 rc;

	if ((rc = my_begin(m, c)) != STORE_OK)
		return rc;
	p[0] = P_STR(name, name_len);
	p[1] = P_STR(desc, desc_len);
	p[2] = P_INT(creator);
	rc = my_exec(m, c, Q_GROUP_CREATE, p, 3, NULL, NULL, "create group");
	if (rc != STORE_OK) {
		if (rc == STORE_EXISTS)
			store_set_error(&m->st, "group name taken");
		else if (rc == STORE_NOTFOUND)
			store_set_error(&m->st, "no such user");
		goto fail;
	}
	id = (int32_t)m->insert_id;
	rc = my_exec_ints(m, c, Q_GROUP_ADD_CREATOR, STORE_INTS(id, creator),
	    NULL, NULL, "create group");
	if ((rc = my_end(m, c, rc)) == STORE_OK)
		*gid = id;
	return rc;

 fail:
	return my_end(m, c, rc);
}

int
mysql_group_create(struct store *st, int32_t creator, const char *name,
    size_t name_len, const char *desc, size_t desc_len, int32_t *gid)
{
	MY_CALL(st, MY_ONCE, group_create_once(m, c, creator, name,
	    name_len, desc, desc_len, gid));
}

static int
group_join_once(struct my *m, struct mconn *c, int32_t gid, int32_t uid)
{
	int	 rc;

	rc = my_exec_ints(m, c, Q_GROUP_JOIN, STORE_INTS(gid, uid), NULL, NULL,
	    "join group");
	if (rc == STORE_NOTFOUND)
		store_set_error(&m->st, "no such group or user");
	return rc;
}

int
mysql_group_join(struct store *st, int32_t gid, int32_t uid)
{
	MY_CALL(st, MY_IDEMPOTENT, group_join_once(m, c, gid, uid));
}

/* Run q with params p[0..n); *rows changed (may be NULL). */
static int
group_step(struct my *m, struct mconn *c, int q, struct mparam *p,
    unsigned int n, uint64_t *rows)
{
	int	 rc;

	if ((rc = my_exec(m, c, q, p, n, NULL, NULL, "change group"))
	    == STORE_OK && rows != NULL)
		*rows = m->affected;
	return rc;
}

static int
group_update_once(struct my *m, struct mconn *c, int32_t gid,
    enum store_group_op op, int32_t uid, const char *text, size_t len)
{
	struct mparam	 p[3];
	uint64_t	 n = 0;
	int		 rc;

	if ((rc = my_begin(m, c)) != STORE_OK)
		return rc;
	switch (op) {
	case STORE_GROUP_LEAVE:
		p[0] = P_INT(gid);
		p[1] = P_INT(uid);
		rc = group_step(m, c, Q_GROUP_LEAVE, p, 2, &n);
		break;
	case STORE_GROUP_ADMIN:
	case STORE_GROUP_UNADMIN:
		p[0] = P_INT(op == STORE_GROUP_ADMIN);
		p[1] = P_INT(gid);
		p[2] = P_INT(uid);
		rc = group_step(m, c, Q_GROUP_ADMIN, p, 3, &n);
		break;
	case STORE_GROUP_RENAME:
	case STORE_GROUP_DESCRIBE:
		p[0] = P_STR(text, len);
		p[1] = P_INT(gid);
		rc = group_step(m, c, op == STORE_GROUP_RENAME ?
		    Q_GROUP_RENAME : Q_GROUP_DESCRIBE, p, 2, &n);
		break;
	case STORE_GROUP_TRANSFER:
		p[0] = P_INT(gid);
		p[1] = P_INT(uid);
		if ((rc = group_step(m, c, Q_GROUP_DEMOTE, p, 1, NULL))
		    != STORE_OK ||
		    (rc = group_step(m, c, Q_GROUP_PROMOTE, p, 2, &n))
		    != STORE_OK || n == 0)
			break;
		p[0] = P_INT(uid);
		p[1] = P_INT(gid);
		rc = group_step(m, c, Q_GROUP_SET_CREATOR, p, 2, &n);
		break;
	case STORE_GROUP_DISSOLVE:
		p[0] = P_INT(gid);
		if ((rc = group_step(m, c, Q_GROUP_DROP_MEMBERS, p, 1, NULL))
		    == STORE_OK)
			rc = group_step(m, c, Q_GROUP_DROP, p, 1, &n);
		break;
	default:
		rc = store_set_error(&m->st, "unknown group change %d", op);
		break;
	}
	if (rc == STORE_OK && n == 0) {
		store_set_error(&m->st, "no such group or member");
		rc = STORE_NOTFOUND;
	}
	return my_end(m, c, rc);
}

int
mysql_group_update(struct store *st, int32_t gid, enum store_group_op op,
    int32_t uid, const char *text, size_t len)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	/* not again after a lost commit: LEAVE would then find no row */
	MY_TRY(m, rc, MY_ONCE, group_update_once(m, c, gid, op, uid,
	    text, len));
	return rc;
}

static int
group_is_member_once(struct my *m, struct mconn *c, int32_t gid,
    int32_t uid)
{
	int64_t		 n = 0;
	int		 rc;

	rc = my_exec_ints(m, c, Q_GROUP_IS_MEMBER, STORE_INTS(gid, uid),
	    my_row_count, &n, "group member");
	if (rc != STORE_OK)
		return STORE_ERR;
	return n > 0 ? STORE_MEMBER : STORE_NOT_MEMBER;
}

int
mysql_group_is_member(struct store *st, int32_t gid, int32_t uid)
{
	MY_CALL(st, MY_IDEMPOTENT, group_is_member_once(m, c, gid, uid));
}

/* One "SELECT COUNT(*) ... WHERE x = ?" into *n. */
static int
count_once(struct my *m, struct mconn *c, int q, int32_t id, int64_t *n)
{
	*n = 0;
	return my_exec_ints(m, c, q, STORE_INTS(id), my_row_int, n, "count");
}

int
mysql_count(struct store *st, int what, int32_t id, int64_t *n)
{
	static const int q_of[STORE_COUNT_MAX] = {
		[STORE_COUNT_FRIENDS] = Q_COUNT_FRIENDS,
		[STORE_COUNT_USER_GROUPS] = Q_COUNT_USER_GROUPS,
		[STORE_COUNT_GROUP_MEMBERS] = Q_COUNT_GROUP_MEMBERS,
	};
	int		 q = q_of[what];
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, count_once(m, c, q, id, n));
	return rc;
}

static int
group_members_once(struct my *m, struct mconn *c, int32_t gid,
    struct store_user_list *out)
{
	int	 rc, rows = 0;

	rc = members_once(m, c, Q_GROUP_MEMBERS, gid, out, &rows,
	    "group members");
	if (rc == STORE_OK && rows == 0) {
		store_set_error(&m->st, "no such group");
		return STORE_NOTFOUND;
	}
	return rc;
}

int
mysql_group_members(struct store *st, int32_t gid,
    struct store_user_list *out)
{
	MY_CALL(st, MY_IDEMPOTENT, group_members_once(m, c, gid, out));
}

struct glist {
	struct store_group_list	*out;
	size_t			 cap;
	size_t			 cur;	/* group the member rows are at */
	size_t			*ucap;	/* member capacity per group */
};

/* Row callback for (id, groupname, groupdesc). */
static int
row_group(struct my *m, void *arg, struct mcol *v, unsigned int nf)
{
	struct glist		*gl = arg;
	struct store_group	*g;

	if (util_grow((void **)&gl->out->v, &gl->cap, gl->out->n,
	    sizeof(*g)) == -1)
		return my_nomem(m);
	g = &gl->out->v[gl->out->n];
	memset(g, 0, sizeof(*g));
	gl->out->n++;
	g->id = (int32_t)v[0].i;
	if (my_strdup(&v[1], &g->name, &g->name_len) == -1 ||
	    my_strdup(&v[2], &g->desc, &g->desc_len) == -1)
		return my_nomem(m);
	return STORE_OK;
}

/*
 * Row callback for (groupid, id, name, creator).  Both queries are
 * ordered by group id, so walk the groups alongside; members of a group
 * joined between the two queries are skipped.
 */
static int
row_group_member(struct my *m, void *arg, struct mcol *v, unsigned int nf)
{
	struct glist		*gl = arg;
	struct store_group	*g;
	struct store_user	*u;

	while (gl->cur < gl->out->n && gl->out->v[gl->cur].id < v[0].i)
		gl->cur++;
	if (gl->cur == gl->out->n || gl->out->v[gl->cur].id != v[0].i)
		return STORE_OK;
	g = &gl->out->v[gl->cur];
	if (util_grow((void **)&g->members.v, &gl->ucap[gl->cur],
	    g->members.n, sizeof(*u)) == -1)
		return my_nomem(m);
	u = &g->members.v[g->members.n];
	memset(u, 0, sizeof(*u));
	u->id = (int32_t)v[1].i;
	if (my_strdup(&v[2], &u->name, &u->name_len) == -1)
		return my_nomem(m);
	u->creator = !v[3].null && v[3].i != 0;
	g->members.n++;
	return STORE_OK;
}

static int
user_groups_once(struct my *m, struct mconn *c, int32_t uid,
    struct store_group_list *out)
{
	struct glist	 gl;
	struct mparam	 p = P_INT(uid);
	int		 rc;

	out->v = NULL;
	out->n = 0;
	memset(&gl, 0, sizeof(gl));
	gl.out = out;
	rc = my_exec(m, c, Q_USER_GROUPS, &p, 1, row_group, &gl,
	    "user groups");
	if (rc != STORE_OK || out->n == 0)
		goto done;
	if ((gl.ucap = calloc(out->n, sizeof(*gl.ucap))) == NULL) {
		rc = my_nomem(m);
		goto done;
	}
	rc = my_exec(m, c, Q_USER_GROUP_MEMBERS, &p, 1, row_group_member,
	    &gl, "user groups");
 done:
	free(gl.ucap);
	if (rc != STORE_OK)
		store_group_list_free(out);
	return rc;
}

int
mysql_user_groups(struct store *st, int32_t uid, struct store_group_list *out)
{
	MY_CALL(st, MY_IDEMPOTENT, user_groups_once(m, c, uid, out));
}

/* ---- offline messages ---- */

