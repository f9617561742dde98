/*
 * store_mysql_conn.c - MySQL: connections and their pool, the retry
 * policy of one attempt, statements and their execution, transactions.
 * What the backend is and does: store_mysql.c.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include <errmsg.h>
#include <mysqld_error.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "store_impl.h"
#include "store_mysql_impl.h"

#include "util.h"

int
my_nomem(struct my *m)
{
	return store_set_error(&m->st, "mysql: out of memory");
}

/* Errors after which the connection is of no further use. */
static int
my_gone(unsigned int e)
{
	switch (e) {
	case CR_CONNECTION_ERROR:
	case CR_CONN_HOST_ERROR:
	case CR_SERVER_GONE_ERROR:
	case CR_SERVER_LOST:
	case CR_SERVER_LOST_EXTENDED:
	case ER_CONNECTION_KILLED:
	case ER_SERVER_SHUTDOWN:
	case MY_ER_CLIENT_INTERACTION_TIMEOUT:
		return 1;
	}
	return 0;
}

/*
 * Record why a statement failed.  Unique and foreign key violations
 * become the outcomes the interface promises; a lost connection, a
 * deadlock or a lock wait timeout is flagged for my_again().
 */
static int
my_fail(struct my *m, unsigned int e, const char *msg, const char *what)
{
	m->errnum = e;
	switch (e) {
	case ER_DUP_ENTRY:
	case ER_DUP_ENTRY_WITH_KEY_NAME:
		store_set_error(&m->st, "%s: already exists", what);
		return STORE_EXISTS;
	case ER_NO_REFERENCED_ROW:
	case ER_NO_REFERENCED_ROW_2:
		store_set_error(&m->st, "%s: no such user or group", what);
		return STORE_NOTFOUND;
	case ER_LOCK_DEADLOCK:
	case ER_LOCK_WAIT_TIMEOUT:
		m->busy = 1;
		break;
	}
	if (my_gone(e)) {
		m->lost = 1;
		return store_set_error(&m->st, "database unavailable: %s: %s",
		    what, msg);
	}
	/* A client-side error leaves the protocol state unknown. */
	if (e >= CR_MIN_ERROR && e <= CR_MAX_ERROR)
		m->bad = 1;
	return store_set_error(&m->st, "mysql: %s: %s (%u)", what, msg, e);
}

int
my_conn_fail(struct my *m, struct mconn *c, const char *what)
{
	return my_fail(m, mysql_errno(c->my), mysql_error(c->my), what);
}

static int
my_stmt_fail(struct my *m, struct mconn *c, int q, const char *what)
{
	MYSQL_STMT	*s = c->q[q];
	int		 rc;

	rc = my_fail(m, mysql_stmt_errno(s), mysql_stmt_error(s), what);
	if (m->errnum == ER_NEED_REPREPARE) {
		/* A table changed under the statement: prepare it anew. */
		mysql_stmt_close(s);
		c->q[q] = NULL;
		m->busy = 1;
	}
	return rc;
}

/* ---- connections and the pool ---- */

void
my_conn_close(struct my *m, struct mconn *c)
{
	int	 i;

	if (c == NULL)
		return;
	for (i = 0; i < Q_MAX; i++)
		if (c->q[i] != NULL)
			mysql_stmt_close(c->q[i]);
	mysql_close(c->my);
	free(c);
	m->nopen--;
}

/*
 * db_tls: the server must speak TLS (MYSQL_OPT_SSL_ENFORCE); with
 * verify its certificate must chain to db_tls_ca and name the host we
 * connect to.  Set explicitly either way: Connector/C's own default for
 * verification changed between releases.  With required no CA is
 * handed over, since Connector/C checks the chain whenever it has one.
 */
static void
tls_options(struct my *m, MYSQL *my)
{
	my_bool	 on = 1, verify = m->tls == STORE_TLS_VERIFY;

	if (m->tls == STORE_TLS_OFF)
		return;
	mysql_ssl_set(my, m->tls_key, m->tls_cert, verify ? m->tls_ca : NULL,
	    NULL, NULL);
	mysql_options(my, MYSQL_OPT_SSL_ENFORCE, &on);
	mysql_options(my, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
}

/* Prefix of a connect error: says TLS was in play. */
static const char *
tls_what(const struct my *m)
{
	switch (m->tls) {
	case STORE_TLS_VERIFY:
		return "(db_tls = verify) ";
	case STORE_TLS_REQUIRED:
		return "(db_tls = required) ";
	default:
		return "";
	}
}

struct mconn *
my_conn_open(struct my *m)
{
	struct mconn	*c;
	unsigned int	 proto;

	if (m->nopen >= m->pool_max) {
		store_set_error(&m->st, "database unavailable: all %d "
		    "connections in use", m->pool_max);
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		my_nomem(m);
		return NULL;
	}
	if ((c->my = mysql_init(NULL)) == NULL) {
		free(c);
		my_nomem(m);
		return NULL;
	}
	/*
	 * Bounded waits so a dead or hung server cannot stall the worker.
	 * Auto-reconnect stays off (the default): a silent reconnect would
	 * lose the session, its prepared statements and any transaction.
	 */
	mysql_options(c->my, MYSQL_OPT_CONNECT_TIMEOUT, &m->connect_sec);
	mysql_options(c->my, MYSQL_OPT_READ_TIMEOUT, &m->query_sec);
	mysql_options(c->my, MYSQL_OPT_WRITE_TIMEOUT, &m->query_sec);
	mysql_options(c->my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_options(c->my, MYSQL_INIT_COMMAND, m->init_cmd);
	/*
	 * The history thread's connection (store.h STORE_HIST_WRITER):
	 * its INSERT ... SELECT checks then read Block, User and AllGroup
	 * without shared row locks, which a writer at normal priority
	 * would wait for while the idle thread is not scheduled.
	 */
	if (m->read_committed)
		mysql_options(c->my, MYSQL_INIT_COMMAND, "SET SESSION "
		    "TRANSACTION ISOLATION LEVEL READ COMMITTED");
	if (m->url.sock != NULL) {
		proto = MYSQL_PROTOCOL_SOCKET;
		mysql_options(c->my, MYSQL_OPT_PROTOCOL, &proto);
	} else if (strcmp(m->url.host, "localhost") != 0) {
		proto = MYSQL_PROTOCOL_TCP;
		mysql_options(c->my, MYSQL_OPT_PROTOCOL, &proto);
	}
	tls_options(m, c->my);
	/* FOUND_ROWS: an UPDATE to the same value still counts its row. */
	if (mysql_real_connect(c->my, m->url.host, m->url.user, m->url.pass, m->url.db,
	    m->url.port, m->url.sock, CLIENT_FOUND_ROWS) == NULL) {
		if (m->url.sock != NULL)
			store_set_error(&m->st, "database unavailable: "
			    "%s@%s (%s): %s%s", m->url.user, m->url.sock,
			    m->url.db, tls_what(m), mysql_error(c->my));
		else
			store_set_error(&m->st, "database unavailable: "
			    "%s@%s:%u/%s: %s%s", m->url.user, m->url.host,
			    m->url.port, m->url.db, tls_what(m),
			    mysql_error(c->my));
		mysql_close(c->my);
		free(c);
		return NULL;
	}
	/* belt and braces: never carry on in clear when TLS was asked for */
	if (m->tls != STORE_TLS_OFF && mysql_get_ssl_cipher(c->my) == NULL) {
		store_set_error(&m->st, "database unavailable: %s@%s:%u/%s: "
		    "db_tls is set but the connection is not encrypted",
		    m->url.user, m->url.host, m->url.port, m->url.db);
		mysql_close(c->my);
		free(c);
		return NULL;
	}
	m->nopen++;
	return c;
}

/* Close every idle connection (after a loss they are suspect too). */
void
my_pool_drain(struct my *m)
{
	while (m->nidle > 0)
		my_conn_close(m, m->idle[--m->nidle]);
}

/*
 * A connection for one call: the one used last, after closing those
 * idle too long (the server may have dropped them by now), else a new
 * one.  NULL with the error set when none can be had.
 */
struct mconn *
my_pool_get(struct my *m)
{
	time_t	 now = (time_t)util_mono();
	int	 n;

	for (n = 0; n < m->nidle; n++)
		if (now - m->idle[n]->idle_since <= m->idle_sec)
			break;
	if (n > 0) {
		int	 i;

		for (i = 0; i < n; i++)
			my_conn_close(m, m->idle[i]);
		memmove(m->idle, m->idle + n, (m->nidle - n) *
		    sizeof(*m->idle));
		m->nidle -= n;
	}
	if (m->nidle > 0)
		return m->idle[--m->nidle];
	return my_conn_open(m);
}

void
my_pool_put(struct my *m, struct mconn *c)
{
	if (m->lost || m->bad) {
		my_conn_close(m, c);
		return;
	}
	/* Never hand on an open transaction. */
	if ((c->my->server_status & SERVER_STATUS_IN_TRANS) &&
	    mysql_rollback(c->my) != 0) {
		my_conn_close(m, c);
		return;
	}
	c->idle_since = (time_t)util_mono();
	m->idle[m->nidle++] = c;
}

void
my_reset(struct my *m)
{
	m->errnum = 0;
	m->lost = m->bad = m->busy = m->committing = 0;
}

/*
 * After one attempt on c: return c to the pool and say whether store.c
 * should run the call again (STORE_RETRY).  A lost connection is retried
 * once per call, on a new connection, and only when the call cannot have
 * taken effect: it is idempotent, or the loss came before its COMMIT
 * (the server rolls back what a vanished client left open).  Lock
 * conflicts are retried up to MY_TRIES attempts.
 */
int
my_result(struct my *m, struct mconn *c, int rc, int safe)
{
	if (rc != STORE_ERR) {
		my_pool_put(m, c);
		return rc;
	}
	if (m->lost) {
		my_conn_close(m, c);
		my_pool_drain(m);
		if (m->nlost++ > 0)
			return rc;
		if (m->committing && safe != MY_IDEMPOTENT) {
			store_set_error(&m->st, "database unavailable: "
			    "connection lost during commit, outcome unknown");
			return rc;
		}
		return STORE_RETRY;
	}
	my_pool_put(m, c);
	return m->busy ? STORE_RETRY : rc;
}

/* ---- statements ---- */

static MYSQL_STMT *
my_stmt(struct my *m, struct mconn *c, int q, const char *what)
{
	MYSQL_STMT	*s;
	const char	*sql = store_sql(my_sql, q);
	my_bool		 on = 1;

	if (c->q[q] != NULL)
		return c->q[q];
	if ((s = mysql_stmt_init(c->my)) == NULL) {
		my_conn_fail(m, c, what);
		return NULL;
	}
	/* max_length after store_result sizes the result buffers. */
	mysql_stmt_attr_set(s, STMT_ATTR_UPDATE_MAX_LENGTH, &on);
	if (mysql_stmt_prepare(s, sql, strlen(sql)) != 0) {
		my_fail(m, mysql_stmt_errno(s), mysql_stmt_error(s), what);
		mysql_stmt_close(s);
		return NULL;
	}
	c->q[q] = s;
	return s;
}

/* Size a column's buffer for len bytes and a NUL. */
static int
my_col_grow(struct mcol *v, size_t len)
{
	char	*p;

	if (len < v->cap)
		return 0;
	if ((p = realloc(v->s, len + 1)) == NULL)
		return -1;
	v->s = p;
	v->cap = len + 1;
	return 0;
}

/*
 * Execute statement q with params p[0..np).  Without fn, only the
 * affected rows and insert id are kept (m->affected, m->insert_id);
 * with fn, each result row is handed to it, text columns complete and
 * NUL-terminated.  Returns STORE_OK, what my_fail() makes of an error,
 * or what fn returned when not STORE_OK.
 */
int
my_exec(struct my *m, struct mconn *c, int q, const struct mparam *p,
    size_t np, row_fn fn, void *arg, const char *what)
{
	MYSQL_STMT	*s;
	MYSQL_BIND	 pb[MY_MAXPARAM], *rb = NULL;
	unsigned long	 plen[MY_MAXPARAM];
	MYSQL_RES	*meta = NULL;
	MYSQL_FIELD	*f;
	struct mcol	*v = NULL;
	unsigned int	 nf = 0, i;
	int		 rc = STORE_OK, frc, rebind;

	if ((s = my_stmt(m, c, q, what)) == NULL)
		return STORE_ERR;
	if (np > MY_MAXPARAM || np != mysql_stmt_param_count(s))
		return store_set_error(&m->st, "mysql: %s: %zu parameters "
		    "for %lu placeholders", what, np,
		    mysql_stmt_param_count(s));

	memset(pb, 0, sizeof(pb));
	for (i = 0; i < np; i++) {
		if (p[i].s != NULL) {
			/* Binary: stored byte for byte, no conversion. */
			pb[i].buffer_type = MYSQL_TYPE_BLOB;
			pb[i].buffer = (void *)p[i].s;
			pb[i].buffer_length = p[i].len;
			plen[i] = p[i].len;
			pb[i].length = &plen[i];
		} else {
			pb[i].buffer_type = MYSQL_TYPE_LONGLONG;
			pb[i].buffer = (void *)&p[i].i;
		}
	}
	if ((np > 0 && mysql_stmt_bind_param(s, pb) != 0) ||
	    mysql_stmt_execute(s) != 0)
		return my_stmt_fail(m, c, q, what);

	if (fn == NULL) {
		m->affected = mysql_stmt_affected_rows(s);
		m->insert_id = mysql_stmt_insert_id(s);
		return STORE_OK;
	}

	/* All rows to the client first: then max_length is known. */
	if (mysql_stmt_store_result(s) != 0)
		return my_stmt_fail(m, c, q, what);
	if ((meta = mysql_stmt_result_metadata(s)) == NULL) {
		rc = my_stmt_fail(m, c, q, what);
		goto out;
	}
	nf = mysql_num_fields(meta);
	f = mysql_fetch_fields(meta);
	if ((rb = calloc(nf, sizeof(*rb))) == NULL ||
	    (v = calloc(nf, sizeof(*v))) == NULL) {
		rc = my_nomem(m);
		goto out;
	}
	for (i = 0; i < nf; i++) {
		if (IS_NUM(f[i].type)) {
			rb[i].buffer_type = MYSQL_TYPE_LONGLONG;
			rb[i].buffer = &v[i].i;
		} else {
			if (my_col_grow(&v[i], f[i].max_length) == -1) {
				rc = my_nomem(m);
				goto out;
			}
			rb[i].buffer_type = MYSQL_TYPE_BLOB;
			rb[i].buffer = v[i].s;
			rb[i].buffer_length = v[i].cap - 1;
		}
		rb[i].length = &v[i].len;
		rb[i].is_null = &v[i].null;
		rb[i].error = &v[i].trunc;
	}
	if (mysql_stmt_bind_result(s, rb) != 0) {
		rc = my_stmt_fail(m, c, q, what);
		goto out;
	}
	while ((frc = mysql_stmt_fetch(s)) == 0 ||
	    frc == MYSQL_DATA_TRUNCATED) {
		rebind = 0;
		for (i = 0; i < nf; i++) {
			if (rb[i].buffer_type != MYSQL_TYPE_BLOB)
				continue;
			if (v[i].null)
				v[i].len = 0;
			else if (v[i].len > rb[i].buffer_length) {
				/* Longer than max_length said: fetch the rest. */
				if (my_col_grow(&v[i], v[i].len) == -1) {
					rc = my_nomem(m);
					goto out;
				}
				rb[i].buffer = v[i].s;
				rb[i].buffer_length = v[i].cap - 1;
				if (mysql_stmt_fetch_column(s, &rb[i], i,
				    0) != 0) {
					rc = my_stmt_fail(m, c, q, what);
					goto out;
				}
				rebind = 1;
			}
			v[i].s[v[i].len] = '\0';
		}
		if (rebind && mysql_stmt_bind_result(s, rb) != 0) {
			rc = my_stmt_fail(m, c, q, what);
			goto out;
		}
		if ((rc = fn(m, arg, v, nf)) != STORE_OK)
			goto out;
	}
	if (frc != MYSQL_NO_DATA)
		rc = my_stmt_fail(m, c, q, what);

 out:
	mysql_stmt_free_result(s);
	if (meta != NULL)
		mysql_free_result(meta);
	if (v != NULL)
		for (i = 0; i < nf; i++)
			free(v[i].s);
	free(v);
	free(rb);
	return rc;
}

/* Copy a text column into a new string; -1 on no memory. */
int
my_strdup(const struct mcol *v, char **p, size_t *len)
{
	if ((*p = malloc(v->len + 1)) == NULL)
		return -1;
	memcpy(*p, v->s, v->len);
	(*p)[v->len] = '\0';
	if (len != NULL)
		*len = v->len;
	return 0;
}

/* Row callback: the first column as an integer, NULL as 0. */
int
my_row_int(struct my *m, void *arg, struct mcol *v, unsigned int nf)
{
	*(int64_t *)arg = v[0].null ? 0 : v[0].i;
	return STORE_OK;
}

/* Row callback: count rows. */
int
my_row_count(struct my *m, void *arg, struct mcol *v, unsigned int nf)
{
	(*(int64_t *)arg)++;
	return STORE_OK;
}

int
my_begin(struct my *m, struct mconn *c)
{
	static const char	 sql[] = "START TRANSACTION";

	if (mysql_real_query(c->my, sql, sizeof(sql) - 1) != 0)
		return my_conn_fail(m, c, "begin");
	return STORE_OK;
}

int
my_commit(struct my *m, struct mconn *c)
{
	m->committing = 1;
	if (mysql_commit(c->my) != 0)
		return my_conn_fail(m, c, "commit");
	m->committing = 0;
	return STORE_OK;
}

/* Undo what is open; the error already recorded stays. */
void
my_rollback(struct my *m, struct mconn *c)
{
	if (m->lost)
		return;		/* the server rolls back on its own */
	if (mysql_rollback(c->my) != 0)
		m->bad = 1;
}

/* The end of a transaction: commit if rc is STORE_OK, else roll back. */
int
my_end(struct my *m, struct mconn *c, int rc)
{
	if (rc == STORE_OK && (rc = my_commit(m, c)) == STORE_OK)
		return STORE_OK;
	my_rollback(m, c);
	return rc;
}

/* my_exec with the integer parameters v[0..n). */
int
my_exec_ints(struct my *m, struct mconn *c, int q, const int64_t *v, int n,
    row_fn fn, void *arg, const char *what)
{
	struct mparam	 p[MY_MAXPARAM];
	int		 i;

	if (n > MY_MAXPARAM)
		return store_set_error(&m->st, "mysql: %s: %d parameters",
		    what, n);
	for (i = 0; i < n; i++)
		p[i] = P_INT(v[i]);
	return my_exec(m, c, q, p, (size_t)n, fn, arg, what);
}

/* ---- users ---- */

