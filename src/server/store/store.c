/*
 * store.c - pick a backend by the spec string and dispatch to it.
 *
 * Everything here is backend-neutral: defaults for the options, the
 * error text, and freeing what the backends hand out.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

#include "store.h"
#include "log.h"
#include "store_impl.h"

#define DEF_POOL_INIT		1
#define DEF_POOL_MAX		4
#define DEF_POOL_IDLE_SEC	60
#define DEF_CONNECT_TIMEOUT_MS	2000
#define DEF_QUERY_TIMEOUT_MS	5000
#define DEF_BUSY_TIMEOUT_MS	5000
#define STORE_DELAY_MS		5	/* first pause before a retry */
#define STORE_DELAY_MAX_MS	250


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
	if (st != NULL)
		st->seed = (unsigned int)getpid();
	return st;
}

int
store_check(const char *spec, const struct store_opts *opts, char *warn,
    size_t warnlen, char *err, size_t errlen)
{
	struct store	*st;

	if (warnlen > 0)
		warn[0] = '\0';
	if ((st = store_open(spec, opts, err, errlen)) == NULL)
		return -1;
	if (warnlen > 0)
		snprintf(warn, warnlen, "%s", store_warning(st));
	store_close(st);
	return 0;
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
store_warning(const struct store *st)
{
	return st->warning;
}

const char *
store_kind(const struct store *st)
{
	return st->ops->kind;
}

const char *
store_upgrade_step(const char *script, int v, size_t *len)
{
	static const char	 mark[] = "-- @version ";
	const char		*p, *start, *end;
	char			*numend;
	long			 n;

	for (p = script; (p = strstr(p, mark)) != NULL; p += sizeof(mark) - 1) {
		if (p != script && p[-1] != '\n')
			continue;
		n = strtol(p + sizeof(mark) - 1, &numend, 10);
		if (n != v || (*numend != '\n' && *numend != '\0'))
			continue;
		start = *numend == '\n' ? numend + 1 : numend;
		for (end = start; (end = strstr(end, mark)) != NULL; end++)
			if (end[-1] == '\n')
				break;
		*len = end != NULL ? (size_t)(end - start) : strlen(start);
		return start;
	}
	return NULL;
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

/* A call, run again while it answers STORE_RETRY and tries are left. */
#define STORE_RUN(st, rc, call) do {					\
	for ((st)->attempt = 0;; (st)->attempt++) {			\
		(rc) = (call);						\
		if ((rc) != STORE_RETRY)				\
			break;						\
		if (store_backoff((st), (st)->attempt) == -1) {		\
			(rc) = STORE_ERR;				\
			break;						\
		}							\
	}								\
} while (0)

int
store_backoff(struct store *st, int try)
{
	struct timespec	 ts;
	char		 msg[sizeof(st->err)];
	long		 ms;

	if (try + 1 >= st->ops->tries) {
		snprintf(msg, sizeof(msg), "%s", st->err);
		store_set_error(st, "%s (still failing after %d tries)", msg,
		    st->ops->tries);
		return -1;
	}
	ms = (long)STORE_DELAY_MS << try;
	if (ms > STORE_DELAY_MAX_MS)
		ms = STORE_DELAY_MAX_MS;
	/* jitter: processes that collided do not collide again */
	st->seed = st->seed * 1103515245u + 12345u;
	ms += (st->seed >> 16) % (ms / 2 + 1);
	ts.tv_sec = 0;
	ts.tv_nsec = ms * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	return 0;
}

int
store_ping(struct store *st)
{
	int	 rc;

	STORE_RUN(st, rc, st->ops->ping(st));
	return rc == STORE_OK ? 0 : -1;
}

int
store_user_create(struct store *st, const char *name, size_t name_len,
    const char *pwhash, int32_t *id)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->user_create(st, name, name_len, pwhash, id));
	return rc;
}

int
store_user_get(struct store *st, int32_t id, struct store_user *u)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->user_get(st, id, u));
	return rc;
}

int
store_user_by_name(struct store *st, const char *name, size_t name_len,
    struct store_user *u)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->user_by_name(st, name, name_len, u));
	return rc;
}

int
store_friend_add(struct store *st, int32_t a, int32_t b)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->friend_add(st, a, b));
	return rc;
}

int
store_friends(struct store *st, int32_t uid, struct store_user_list *out)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->friends(st, uid, out));
	return rc;
}

int
store_friend_remove(struct store *st, int32_t a, int32_t b)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->friend_remove(st, a, b));
	return rc;
}

int
store_block(struct store *st, int32_t uid, int32_t other, int on)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->block(st, uid, other, on));
	return rc;
}

int
store_blocks(struct store *st, int32_t uid, struct store_user_list *out)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->blocks(st, uid, 0, out));
	return rc;
}

int
store_blockers(struct store *st, int32_t uid, struct store_user_list *out)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->blocks(st, uid, 1, out));
	return rc;
}

int
store_group_create(struct store *st, int32_t creator, const char *name,
    size_t name_len, const char *desc, size_t desc_len, int32_t *gid)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->group_create(st, creator, name, name_len, desc,
	    desc_len, gid));
	return rc;
}

int
store_group_join(struct store *st, int32_t gid, int32_t uid)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->group_join(st, gid, uid));
	return rc;
}

int
store_group_is_member(struct store *st, int32_t gid, int32_t uid)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->group_is_member(st, gid, uid));
	return rc;
}

int
store_group_members(struct store *st, int32_t gid,
    struct store_user_list *out)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->group_members(st, gid, out));
	return rc;
}

int
store_group_update(struct store *st, int32_t gid, enum store_group_op op,
    int32_t uid, const char *text, size_t len)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->group_update(st, gid, op, uid, text, len));
	return rc;
}

int
store_user_groups(struct store *st, int32_t uid, struct store_group_list *out)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->user_groups(st, uid, out));
	return rc;
}

int
store_token_gen(struct store *st, int32_t uid, uint64_t *gen)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->token_gen(st, uid, 0, NULL, gen));
	return rc;
}

void
store_read_begin(struct store *st)
{
	if (st->ops->read_snapshot != NULL)
		st->ops->read_snapshot(st, 1);
}

void
store_read_end(struct store *st)
{
	if (st->ops->read_snapshot != NULL)
		st->ops->read_snapshot(st, 0);
}

int
store_token_bump(struct store *st, int32_t uid, uint64_t *gen)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->token_gen(st, uid, 1, NULL, gen));
	return rc;
}

int
store_user_set_password(struct store *st, int32_t uid, const char *pwhash,
    uint64_t *gen)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->token_gen(st, uid, 1, pwhash, gen));
	return rc;
}

int
store_count_friends(struct store *st, int32_t uid, int64_t *n)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->count(st, STORE_COUNT_FRIENDS, uid, n));
	return rc;
}

int
store_count_user_groups(struct store *st, int32_t uid, int64_t *n)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->count(st, STORE_COUNT_USER_GROUPS, uid, n));
	return rc;
}

int
store_count_group_members(struct store *st, int32_t gid, int64_t *n)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->count(st, STORE_COUNT_GROUP_MEMBERS, gid, n));
	return rc;
}

int
store_offline_add(struct store *st, const int32_t *uids, size_t n,
    const char *msg, size_t len)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->offline_add(st, uids, n, msg, len, 0));
	return rc;
}

int
store_ack_claim(struct store *st, int32_t sender, int64_t cmid,
    int64_t *smid, int *done)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->ack_claim(st, sender, cmid, smid, done));
	if (rc == STORE_OK)
		*smid *= STORE_SMID_BLOCK;
	return rc;
}

int
store_smid_block(struct store *st, int32_t uid, int64_t *base)
{
	uint64_t r;
	int64_t	 cmid;
	int	 rc, done, tries;

	/*
	 * A claim under a random negative cmid (clients' are >= 0), marked
	 * done at once: one taken before (done) is somebody else's.
	 */
	for (tries = 0; tries < 3; tries++) {
		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			r = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		cmid = -(int64_t)(r >> 2) - 1;
		if ((rc = store_ack_claim(st, uid, cmid, base, &done)) !=
		    STORE_OK)
			return rc;
		if (!done)
			return store_ack_commit(st, *base, NULL, 0, "", 0);
	}
	return store_set_error(st, "smid block: claims collide");
}

int
store_ack_commit(struct store *st, int64_t smid, const int32_t *uids,
    size_t n, const char *msg, size_t len)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->offline_add(st, uids, n, msg, len, smid));
	return rc;
}

int
store_offline_remove(struct store *st, int32_t uid, int64_t smid)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->offline_remove(st, uid, smid));
	return rc;
}

int
store_offline_fetch(struct store *st, int32_t uid, size_t max,
    struct store_msg_list *out)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->offline_fetch(st, uid, max, out));
	return rc;
}

int
store_offline_delete(struct store *st, int32_t uid, int64_t upto)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->offline_delete(st, uid, upto));
	return rc;
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

int
store_history_add(struct store *st, const struct store_hist *v, size_t n)
{
	int	rc;

	if (n == 0)
		return STORE_OK;
	STORE_RUN(st, rc, st->ops->history_add(st, v, n));
	return rc;
}

int
store_history_fetch(struct store *st, int32_t uid, int32_t peer, int32_t gid,
    int64_t before, size_t max, struct store_msg_list *out)
{
	int	rc;

	if (before <= 0)
		before = INT64_MAX;
	STORE_RUN(st, rc, st->ops->history_fetch(st, uid, peer, gid, before,
	    max, out));
	return rc;
}

int
store_resume_fetch(struct store *st, int32_t uid, int64_t anchor,
    int64_t window_ms, size_t max, struct store_msg_list *out, int64_t *at)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->resume_fetch(st, uid, anchor, window_ms,
	    max, out, at));
	return rc;
}

int
store_history_prune(struct store *st, int64_t t, size_t max, size_t *n)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->history_prune(st, t, max, n));
	return rc;
}

int
store_history_forget(struct store *st, int32_t gid)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->history_forget(st, gid));
	return rc;
}

int
store_account_purge(struct store *st, int32_t uid)
{
	int	rc;

	STORE_RUN(st, rc, st->ops->account_purge(st, uid));
	return rc;
}
