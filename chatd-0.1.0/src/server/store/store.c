/*
 * store.c - pick a backend by the spec string and dispatch to it.
 *
 * Everything here is backend-neutral: defaults for the options, the
 * error text, and freeing what the backends hand out.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "log.h"
#include "store_impl.h"

#define DEF_POOL_INIT		1
#define DEF_POOL_MAX		4
#define DEF_POOL_IDLE_SEC	60
#define DEF_CONNECT_TIMEOUT_MS	2000
#define DEF_QUERY_TIMEOUT_MS	5000
#define DEF_BUSY_TIMEOUT_MS	5000


struct store *
store_open(const char *spec, const struct store_opts *opts, char *err,
    size_t errlen)
{
	struct store_opts	 o;
	struct store		*st;
	char			 dummy[1];

	/* Backends may write err unconditionally. */
	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';

	if (opts != NULL)
		o = *opts;
	else
		memset(&o, 0, sizeof(o));
	if (o.pool_init <= 0)
		o.pool_init = DEF_POOL_INIT;
	if (o.pool_max <= 0)
		o.pool_max = DEF_POOL_MAX;
	if (o.pool_init > o.pool_max)
		o.pool_init = o.pool_max;
	if (o.pool_idle_sec <= 0)
		o.pool_idle_sec = DEF_POOL_IDLE_SEC;
	if (o.connect_timeout_ms <= 0)
		o.connect_timeout_ms = DEF_CONNECT_TIMEOUT_MS;
	if (o.query_timeout_ms <= 0)
		o.query_timeout_ms = DEF_QUERY_TIMEOUT_MS;
	if (o.busy_timeout_ms <= 0)
		o.busy_timeout_ms = DEF_BUSY_TIMEOUT_MS;

	if (spec == NULL) {
		err_set(err, errlen, "no store given");
		return NULL;
	}
	if (strncmp(spec, "sqlite:", 7) == 0)
		st = store_sqlite_open(spec + 7, &o, err, errlen);
	else if (strncmp(spec, "mysql://", 8) == 0)
		st = store_mysql_open(spec, &o, err, errlen);
	else {
		err_set(err, errlen, "unknown store \"%.64s\": expected "
		    "sqlite:PATH or mysql://user:pass@host:port/db", spec);
		return NULL;
	}
	if (st == NULL && err[0] == '\0')
		err_set(err, errlen, "cannot open store");
	return st;
}

void
store_close(struct store *st)
{
	if (st != NULL)
		st->ops->close(st);
}

const char *
store_error(const struct store *st)
{
	if (st == NULL)
		return "no store";
	return st->err;
}

const char *
store_kind(const struct store *st)
{
	return st->ops->kind;
}

int
store_grow(void **v, size_t n, size_t *cap, size_t sz)
{
	void	*nv;
	size_t	 ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	if ((nv = reallocarray(*v, ncap, sz)) == NULL)
		return -1;
	*v = nv;
	*cap = ncap;
	return 0;
}

int
store_set_error(struct store *st, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
	return STORE_ERR;
}

int
store_ping(struct store *st)
{
	return st->ops->ping(st) == STORE_OK ? 0 : -1;
}

int
store_user_create(struct store *st, const char *name, size_t name_len,
    const char *pwhash, int32_t *id)
{
	return st->ops->user_create(st, name, name_len, pwhash, id);
}

int
store_user_get(struct store *st, int32_t id, struct store_user *u)
{
	return st->ops->user_get(st, id, u);
}

int
store_user_by_name(struct store *st, const char *name, size_t name_len,
    struct store_user *u)
{
	return st->ops->user_by_name(st, name, name_len, u);
}

int
store_user_set_pwhash(struct store *st, int32_t id, const char *pwhash)
{
	if (pwhash == NULL)
		return store_set_error(st, "set password: no password hash");
	return st->ops->user_set_pwhash(st, id, pwhash);
}

int
store_friend_add(struct store *st, int32_t a, int32_t b)
{
	return st->ops->friend_add(st, a, b);
}

int
store_friends(struct store *st, int32_t uid, struct store_user_list *out)
{
	return st->ops->friends(st, uid, out);
}

int
store_group_create(struct store *st, int32_t creator, const char *name,
    size_t name_len, const char *desc, size_t desc_len, int32_t *gid)
{
	return st->ops->group_create(st, creator, name, name_len, desc,
	    desc_len, gid);
}

int
store_group_join(struct store *st, int32_t gid, int32_t uid)
{
	return st->ops->group_join(st, gid, uid);
}

int
store_group_is_member(struct store *st, int32_t gid, int32_t uid)
{
	return st->ops->group_is_member(st, gid, uid);
}

int
store_group_members(struct store *st, int32_t gid,
    struct store_user_list *out)
{
	return st->ops->group_members(st, gid, out);
}

int
store_user_groups(struct store *st, int32_t uid, struct store_group_list *out)
{
	return st->ops->user_groups(st, uid, out);
}

int
store_count_friends(struct store *st, int32_t uid, int64_t *n)
{
	return st->ops->count(st, STORE_COUNT_FRIENDS, uid, n);
}

int
store_count_user_groups(struct store *st, int32_t uid, int64_t *n)
{
	return st->ops->count(st, STORE_COUNT_USER_GROUPS, uid, n);
}

int
store_count_group_members(struct store *st, int32_t gid, int64_t *n)
{
	return st->ops->count(st, STORE_COUNT_GROUP_MEMBERS, gid, n);
}

int
store_offline_add(struct store *st, const int32_t *uids, size_t n,
    const char *msg, size_t len)
{
	return st->ops->offline_add(st, uids, n, msg, len, 0);
}

int
store_ack_claim(struct store *st, int32_t sender, int64_t cmid,
    int64_t *smid, int *done)
{
	return st->ops->ack_claim(st, sender, cmid, smid, done);
}

int
store_ack_commit(struct store *st, int64_t smid, const int32_t *uids,
    size_t n, const char *msg, size_t len)
{
	return st->ops->offline_add(st, uids, n, msg, len, smid);
}

int
store_offline_remove(struct store *st, int32_t uid, int64_t smid)
{
	return st->ops->offline_remove(st, uid, smid);
}

int
store_offline_fetch(struct store *st, int32_t uid, size_t max,
    struct store_msg_list *out)
{
	return st->ops->offline_fetch(st, uid, max, out);
}

int
store_offline_delete(struct store *st, int32_t uid, int64_t upto)
{
	return st->ops->offline_delete(st, uid, upto);
}

void
store_user_clear(struct store_user *u)
{
	if (u == NULL)
		return;
	free(u->name);
	free(u->pwhash);
	memset(u, 0, sizeof(*u));
}

void
store_user_list_free(struct store_user_list *l)
{
	size_t	 i;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++)
		store_user_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void
store_group_list_free(struct store_group_list *l)
{
	size_t	 i;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].desc);
		store_user_list_free(&l->v[i].members);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void
store_msg_list_free(struct store_msg_list *l)
{
	size_t	 i;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++)
		free(l->v[i].text);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
