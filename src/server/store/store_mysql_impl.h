/* store_mysql_impl.h - shared by the store_mysql*.c files only. */
#ifndef CHATD_STORE_MYSQL_IMPL_H
#define CHATD_STORE_MYSQL_IMPL_H

#include <time.h>

#include <mysql.h>

#include "store_impl.h"
#include "store_url.h"

/* Whole-transaction runs after a deadlock or lock wait timeout. */
#define MY_TRIES		4

/* Offline messages go in rows of MY_BATCH while text is this small. */
#define MY_BATCH		16
#define MY_BATCH_MAXLEN		(64 * 1024)

/* History rows go this many to a statement while their text is small. */
#define MY_HISTORY_BATCH	32
#define MY_HISTORY_MAXLEN	(1024 * 1024)

/* Parameters of one history row (store_mysql.c, HROW). */
#define HROW_NP			6

#define MY_MAXPARAM		(HROW_NP * MY_HISTORY_BATCH)

/* libmysqlclient 8 dropped my_bool for bool. */
#if !defined(MARIADB_BASE_VERSION) && MYSQL_VERSION_ID >= 80000
typedef bool my_bool;
#endif

/* MySQL 8 tells an idle client why it drops it; MariaDB does not. */
#define MY_ER_CLIENT_INTERACTION_TIMEOUT	4031

/* MySQL's own statements (store_mysql.c); the shared ones: store_sql.c */
extern const char *const my_sql[Q_MAX];

struct mconn {
	MYSQL		*my;
	MYSQL_STMT	*q[Q_MAX];	/* prepared on first use */
	time_t		 idle_since;	/* monotonic seconds */
};

struct my {
	struct store	 st;		/* first: we are handed out as it */
	struct store_url url;		/* where, as whom (store_url.c) */
	unsigned int	 connect_sec;
	unsigned int	 query_sec;
	char		 init_cmd[160];
	int		 read_committed;	/* the history thread's */
	int		 pool_max;
	int		 idle_sec;
	enum store_tls	 tls;
	char		*tls_ca, *tls_cert, *tls_key;
	struct mconn	**idle;		/* idle[nidle - 1] was used last */
	int		 nidle;
	int		 nopen;		/* idle and in use */

	/* How the last statement went. */
	unsigned int	 errnum;
	int		 lost;		/* connection gone: drop it */
	int		 bad;		/* connection in doubt: drop it */
	int		 busy;		/* deadlock, lock wait: run again */
	int		 committing;	/* the failure hit a COMMIT */
	int		 nlost;		/* losses in this call */
	uint64_t	 affected;
	uint64_t	 insert_id;
};

/* A bound parameter: an integer, or s[0..len) when s is not NULL. */
struct mparam {
	int64_t		 i;
	const char	*s;
	size_t		 len;
};

#define P_INT(v)	((struct mparam){ .i = (v) })
#define P_STR(p, l)	((struct mparam){ .s = (p) != NULL ? (p) : "", \
			    .len = (p) != NULL ? (l) : 0 })

/* One column of a fetched row: integer i, or s[0..len) NUL-terminated. */
struct mcol {
	int64_t		 i;
	char		*s;
	unsigned long	 len;
	size_t		 cap;
	my_bool		 null;
	my_bool		 trunc;
};

typedef int (*row_fn)(struct my *, void *, struct mcol *, unsigned int);

#define MY_IDEMPOTENT	1	/* safe to run again whatever happened */
#define MY_ONCE		0	/* run again only if surely not committed */

/*
 * One attempt of call (which sets rc) on a pooled connection; call
 * refers to c, the connection taken.  store.c runs it again on
 * STORE_RETRY.
 */
#define MY_TRY(m, rc, safe, call) do {					\
	struct mconn	*c;						\
	if ((m)->st.attempt == 0)					\
		(m)->nlost = 0;						\
	my_reset(m);							\
	if ((c = my_pool_get(m)) == NULL)				\
		(rc) = STORE_ERR;					\
	else								\
		(rc) = my_result((m), c, (call), (safe));		\
} while (0)

/* The body of an entry point: MY_TRY on the handle m, returning rc. */
#define MY_CALL(st, safe, call) do {					\
	struct my	*m = (struct my *)(st);				\
	int		 rc;						\
	MY_TRY(m, rc, safe, call);					\
	return rc;							\
} while (0)

/* store_mysql_conn.c */
struct mconn	*my_pool_get(struct my *m);
int	my_result(struct my *m, struct mconn *c, int rc, int safe);
int	my_nomem(struct my *m);
int	my_conn_fail(struct my *m, struct mconn *c, const char *what);
void	my_conn_close(struct my *m, struct mconn *c);
struct mconn *	my_conn_open(struct my *m);
void	my_pool_drain(struct my *m);
void	my_pool_put(struct my *m, struct mconn *c);
void	my_reset(struct my *m);
int	my_exec(struct my *m, struct mconn *c, int q, const struct mparam *p,
	size_t np, row_fn fn, void *arg, const char *what);
int	my_strdup(const struct mcol *v, char **p, size_t *len);
int	my_row_int(struct my *m, void *arg, struct mcol *v, unsigned int nf);
int	my_row_count(struct my *m, void *arg, struct mcol *v, unsigned int nf);
int	my_begin(struct my *m, struct mconn *c);
int	my_commit(struct my *m, struct mconn *c);
void	my_rollback(struct my *m, struct mconn *c);
int	my_end(struct my *m, struct mconn *c, int rc);
int	my_exec_ints(struct my *m, struct mconn *c, int q, const int64_t *v,
	    int n, row_fn fn, void *arg, const char *what);

/* store_mysql_social.c */
int	mysql_user_create(struct store *st, const char *name, size_t name_len,
	const char *pwhash, int32_t *id);
int	mysql_user_get(struct store *st, int32_t id, struct store_user *u);
int	mysql_user_by_name(struct store *st, const char *name, size_t name_len,
	struct store_user *u);
int	mysql_friend_add(struct store *st, int32_t a, int32_t b);
int	mysql_friends(struct store *st, int32_t uid, struct store_user_list *out);
int	mysql_friend_remove(struct store *st, int32_t a, int32_t b);
int	mysql_block(struct store *st, int32_t uid, int32_t other, int on);
int	mysql_blocks(struct store *st, int32_t uid, int blockers,
	struct store_user_list *out);
int	mysql_group_create(struct store *st, int32_t creator, const char *name,
	size_t name_len, const char *desc, size_t desc_len, int32_t *gid);
int	mysql_group_join(struct store *st, int32_t gid, int32_t uid);
int	mysql_group_update(struct store *st, int32_t gid, enum store_group_op op,
	int32_t uid, const char *text, size_t len);
int	mysql_group_is_member(struct store *st, int32_t gid, int32_t uid);
int	mysql_count(struct store *st, int what, int32_t id, int64_t *n);
int	mysql_group_members(struct store *st, int32_t gid,
	struct store_user_list *out);
int	mysql_user_groups(struct store *st, int32_t uid, struct store_group_list *out);

/* store_mysql_msg.c */
int	mysql_offline_add(struct store *st, const int32_t *uids, size_t n,
	const char *msg, size_t len, int64_t smid);
int	mysql_ack_claim(struct store *st, int32_t sender, int64_t cmid,
	int64_t *smid, int *done);
int	mysql_offline_remove(struct store *st, int32_t uid, int64_t smid);
int	mysql_offline_fetch(struct store *st, int32_t uid, size_t max,
	struct store_msg_list *out);
int	mysql_offline_delete(struct store *st, int32_t uid, int64_t upto);
int	mysql_history_add(struct store *st, const struct store_hist *v,
	    size_t n);
int	mysql_history_fetch(struct store *st, int32_t uid, int32_t peer,
	    int32_t gid, int64_t before, size_t max, struct store_msg_list *out);
int	mysql_resume_fetch(struct store *st, int32_t uid, int64_t anchor,
	    int64_t window_ms, size_t max, struct store_msg_list *out,
	    int64_t *at);
int	mysql_history_forget(struct store *st, int32_t gid);
int	mysql_history_prune(struct store *st, int64_t t, size_t max,
	    size_t *n);
int	mysql_account_purge(struct store *st, int32_t uid);

/* store_mysql.c */


#endif
