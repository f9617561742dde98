/*
 * store_mysql.c - the MySQL / MariaDB backend.
 *
 * The store is named by a URL:
 *
 *	mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE
 *	mysql://USER[:PASSWORD]@localhost/DATABASE?socket=/PATH/TO/SOCKET
 *
 * PORT defaults to 3306; an IPv6 address is written in brackets
 * ([::1]:3306).  HOST "localhost" without ?socket= uses the client
 * library's default socket; with ?socket= the connection always goes
 * over that Unix socket (HOST may then be empty).  The password given
 * by db_password_file replaces the one in the URL.
 *
 * Escaping: USER, PASSWORD, DATABASE and the socket PATH are
 * percent-decoded: "%" followed by two hex digits stands for that byte.
 * These characters must be written escaped:
 *
 *	%	%25		@	%40		:	%3A
 *	/	%2F		?	%3F		&	%26 (socket path)
 *
 * e.g. user "chat:d", password "p@ss/w%rd" is
 * mysql://chat%3Ad:p%40ss%2Fw%25rd@db.example:3306/chatd.  Any other
 * byte may be escaped too; %00 and malformed escapes are refused.
 *
 * Connections: a handle belongs to one single-threaded worker.  It
 * keeps a small pool: pool_init connections opened at start, at most
 * pool_max, handed out last-in first-out so a warm connection is
 * reused, and closed when idle longer than pool_idle_sec (checked when
 * one is taken).  Each call takes a connection, runs its statements
 * and puts it back.  The client library never reconnects by itself: a
 * lost connection is closed and the whole call is run again once on a
 * new one, unless the loss hit a COMMIT whose outcome is unknown and
 * the call is not idempotent.  A deadlock or lock wait timeout reruns
 * the whole transaction a few times.  Connect, read and write timeouts
 * bound how long a dead or hung server can stall the worker.
 *
 * Statements are prepared lazily, once per connection, and only ever
 * see input through bound parameters.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include "store.h"
#include "store_impl.h"
#include "store_url.h"
#include "util.h"
#include "mysql_schema.h"	/* generated from sql/mysql.sql */
#include "mysql_upgrade.h"	/* generated from sql/mysql-upgrade.sql */

/* The version sql/mysql.sql writes into SchemaVersion. */
#define MY_SCHEMA_VERSION	2

/* Whole-transaction runs after a deadlock or lock wait timeout. */
#define MY_TRIES		4

/* Offline messages go in rows of MY_BATCH while text is this small. */
#define MY_BATCH		16
#define MY_BATCH_MAXLEN		(64 * 1024)

#define MY_MAXPARAM		(3 * MY_BATCH)

/* libmysqlclient 8 dropped my_bool for bool. */
#if !defined(MARIADB_BASE_VERSION) && MYSQL_VERSION_ID >= 80000
typedef bool my_bool;
#endif

/* MySQL 8 tells an idle client why it drops it; MariaDB does not. */
#define MY_ER_CLIENT_INTERACTION_TIMEOUT	4031

enum {
	Q_VERSION,
	Q_LOCK,
	Q_UNLOCK,
	Q_OUR_TABLES,
	Q_FLUSH_AT_COMMIT,
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
	Q_USER_GROUP_MEMBERS,
	Q_COUNT_FRIENDS,
	Q_COUNT_USER_GROUPS,
	Q_COUNT_GROUP_MEMBERS,
	Q_OFFLINE_ADD,
	Q_OFFLINE_ADD_BATCH,
	Q_OFFLINE_FETCH,
	Q_OFFLINE_FETCH_ALL,
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
	Q_TOKEN_BUMP,
	Q_SET_PASSWORD,
	Q_MAX
};

/* Rows of (userid, message, smid) placeholders, MY_BATCH of them. */
#define ROW	"(?, ?, ?)"
#define ROWS4	ROW ", " ROW ", " ROW ", " ROW
#define ROWS16	ROWS4 ", " ROWS4 ", " ROWS4 ", " ROWS4

static const char *const my_sql[Q_MAX] = {
	[Q_VERSION] = "SELECT MAX(version) FROM SchemaVersion",
	/* Serialises schema creation by several workers starting at once. */
	[Q_LOCK] = "SELECT GET_LOCK(CONCAT('chatd-schema-', DATABASE()), ?)",
	[Q_UNLOCK] = "SELECT RELEASE_LOCK(CONCAT('chatd-schema-', DATABASE()))",
	[Q_OUR_TABLES] =
	    "SELECT COUNT(*) FROM information_schema.TABLES"
	    " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN"
	    " ('User', 'Friend', 'AllGroup', 'GroupUser', 'OfflineMessage')",
	/* 1: the redo log is flushed at every commit (durable) */
	[Q_FLUSH_AT_COMMIT] = "SELECT @@GLOBAL.innodb_flush_log_at_trx_commit",
	[Q_USER_CREATE] = "INSERT INTO User (name, pwhash) VALUES (?, ?)",
	[Q_USER_GET] = "SELECT id, name, pwhash FROM User WHERE id = ?",
	[Q_USER_BY_NAME] = "SELECT id, name, pwhash FROM User WHERE name = ?",
	/*
	 * Both directions in one statement; an existing row is kept.  Not
	 * INSERT IGNORE: that would also hide the foreign key error that
	 * tells us a user does not exist.
	 */
	[Q_FRIEND_ADD] =
	    "INSERT INTO Friend (userid, friendid) VALUES (?, ?), (?, ?)"
	    " ON DUPLICATE KEY UPDATE friendid = friendid",
	[Q_FRIENDS] =
	    "SELECT u.id, u.name FROM Friend f JOIN User u ON u.id = f.friendid"
	    " WHERE f.userid = ? ORDER BY f.friendid",
	[Q_GROUP_CREATE] =
	    "INSERT INTO AllGroup (groupname, groupdesc, creator)"
	    " VALUES (?, ?, ?)",
	[Q_GROUP_ADD_CREATOR] =
	    "INSERT INTO GroupUser (groupid, userid, grouprole)"
	    " VALUES (?, ?, 'creator')",
	[Q_GROUP_JOIN] =
	    "INSERT INTO GroupUser (groupid, userid, grouprole, joinedat)"
	    " VALUES (?, ?, 'normal', UNIX_TIMESTAMP())"
	    " ON DUPLICATE KEY UPDATE userid = userid",
	[Q_GROUP_IS_MEMBER] =
	    "SELECT 1 FROM GroupUser WHERE groupid = ? AND userid = ?",
	/* One row with NULL member for an empty group, none for no group. */
	/* role: 1 creator, 2 admin, 0 neither */
	[Q_GROUP_MEMBERS] =
	    "SELECT u.id, u.name, IF(m.grouprole = 'creator', 1, IF(m.admin, 2, 0))"
	    " FROM AllGroup g"
	    " LEFT JOIN GroupUser m ON m.groupid = g.id"
	    " LEFT JOIN User u ON u.id = m.userid"
	    " WHERE g.id = ? ORDER BY m.id",
	/* Groups once each, then all their members: no repeated desc. */
	[Q_USER_GROUPS] =
	    "SELECT g.id, g.groupname, g.groupdesc FROM GroupUser me"
	    " JOIN AllGroup g ON g.id = me.groupid"
	    " WHERE me.userid = ? ORDER BY g.id",
	[Q_USER_GROUP_MEMBERS] =
	    "SELECT m.groupid, u.id, u.name, m.grouprole = 'creator'"
	    " FROM GroupUser me JOIN GroupUser m ON m.groupid = me.groupid"
	    " JOIN User u ON u.id = m.userid"
	    " WHERE me.userid = ? ORDER BY m.groupid, m.id",
	[Q_COUNT_FRIENDS] = "SELECT COUNT(*) FROM Friend WHERE userid = ?",
	[Q_COUNT_USER_GROUPS] =
	    "SELECT COUNT(*) FROM GroupUser WHERE userid = ?",
	[Q_COUNT_GROUP_MEMBERS] =
	    "SELECT COUNT(*) FROM GroupUser WHERE groupid = ?",
	[Q_OFFLINE_ADD] =
	    "INSERT INTO OfflineMessage (userid, message, smid) VALUES " ROW,
	[Q_OFFLINE_ADD_BATCH] =
	    "INSERT INTO OfflineMessage (userid, message, smid) VALUES " ROWS16,
	[Q_OFFLINE_FETCH] =
	    "SELECT id, message FROM OfflineMessage WHERE userid = ?"
	    " ORDER BY id LIMIT ?",
	[Q_OFFLINE_FETCH_ALL] =
	    "SELECT id, message FROM OfflineMessage WHERE userid = ?"
	    " ORDER BY id",
	[Q_OFFLINE_DELETE] =
	    "DELETE FROM OfflineMessage WHERE userid = ? AND id <= ?",
	[Q_OFFLINE_REMOVE] =
	    "DELETE FROM OfflineMessage WHERE userid = ? AND smid = ?",
	[Q_ACK_CLAIM] =
	    "INSERT INTO ClientMsg (userid, cmid) VALUES (?, ?)"
	    " ON DUPLICATE KEY UPDATE cmid = cmid",
	[Q_ACK_GET] =
	    "SELECT smid, done FROM ClientMsg WHERE userid = ? AND cmid = ?",
	/* a claim's smid is its row times STORE_SMID_BLOCK (store.h) */
	[Q_ACK_DONE] = "UPDATE ClientMsg SET done = 1"
	    " WHERE smid = ? DIV " STORE_SMID_BLOCK_SQL,
	/* group changes (store_group_update): group, then user or text */
	[Q_GROUP_LEAVE] =
	    "DELETE FROM GroupUser WHERE groupid = ? AND userid = ?",
	[Q_GROUP_ADMIN] =
	    "UPDATE GroupUser SET admin = ? WHERE groupid = ? AND userid = ?",
	[Q_GROUP_RENAME] = "UPDATE AllGroup SET groupname = ? WHERE id = ?",
	[Q_GROUP_DESCRIBE] = "UPDATE AllGroup SET groupdesc = ? WHERE id = ?",
	[Q_GROUP_DEMOTE] =
	    "UPDATE GroupUser SET grouprole = 'normal'"
	    " WHERE groupid = ? AND grouprole = 'creator'",
	[Q_GROUP_PROMOTE] =
	    "UPDATE GroupUser SET grouprole = 'creator', admin = 0"
	    " WHERE groupid = ? AND userid = ?",
	[Q_GROUP_SET_CREATOR] = "UPDATE AllGroup SET creator = ? WHERE id = ?",
	[Q_GROUP_DROP_MEMBERS] = "DELETE FROM GroupUser WHERE groupid = ?",
	[Q_GROUP_DROP] = "DELETE FROM AllGroup WHERE id = ?",
	[Q_FRIEND_REMOVE] =
	    "DELETE FROM Friend WHERE (userid = ? AND friendid = ?)"
	    " OR (userid = ? AND friendid = ?)",
	/* not INSERT IGNORE: the foreign key error says "no such user" */
	[Q_BLOCK_ADD] =
	    "INSERT INTO Block (userid, blockedid) VALUES (?, ?)"
	    " ON DUPLICATE KEY UPDATE blockedid = blockedid",
	[Q_BLOCK_DEL] = "DELETE FROM Block WHERE userid = ? AND blockedid = ?",
	[Q_BLOCKS] =
	    "SELECT u.id, u.name FROM Block b JOIN User u ON u.id = b.blockedid"
	    " WHERE b.userid = ? ORDER BY b.blockedid",
	[Q_BLOCKERS] =
	    "SELECT u.id, u.name FROM Block b JOIN User u ON u.id = b.userid"
	    " WHERE b.blockedid = ? ORDER BY b.userid",
	[Q_TOKEN_GEN] = "SELECT gen FROM TokenGen WHERE userid = ?",
	[Q_TOKEN_BUMP] =
	    "INSERT INTO TokenGen (userid, gen) VALUES (?, 1)"
	    " ON DUPLICATE KEY UPDATE gen = gen + 1",
	[Q_SET_PASSWORD] = "UPDATE User SET pwhash = ? WHERE id = ?",
};

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

static const struct store_ops mysql_ops;

static int
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

static int
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

static void
conn_close(struct my *m, struct mconn *c)
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

static struct mconn *
conn_open(struct my *m)
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
static void
pool_drain(struct my *m)
{
	while (m->nidle > 0)
		conn_close(m, m->idle[--m->nidle]);
}

/*
 * A connection for one call: the one used last, after closing those
 * idle too long (the server may have dropped them by now), else a new
 * one.  NULL with the error set when none can be had.
 */
static struct mconn *
pool_get(struct my *m)
{
	time_t	 now = (time_t)util_mono();
	int	 n;

	for (n = 0; n < m->nidle; n++)
		if (now - m->idle[n]->idle_since <= m->idle_sec)
			break;
	if (n > 0) {
		int	 i;

		for (i = 0; i < n; i++)
			conn_close(m, m->idle[i]);
		memmove(m->idle, m->idle + n, (m->nidle - n) *
		    sizeof(*m->idle));
		m->nidle -= n;
	}
	if (m->nidle > 0)
		return m->idle[--m->nidle];
	return conn_open(m);
}

static void
pool_put(struct my *m, struct mconn *c)
{
	if (m->lost || m->bad) {
		conn_close(m, c);
		return;
	}
	/* Never hand on an open transaction. */
	if ((c->my->server_status & SERVER_STATUS_IN_TRANS) &&
	    mysql_rollback(c->my) != 0) {
		conn_close(m, c);
		return;
	}
	c->idle_since = (time_t)util_mono();
	m->idle[m->nidle++] = c;
}

static void
my_reset(struct my *m)
{
	m->errnum = 0;
	m->lost = m->bad = m->busy = m->committing = 0;
}

#define MY_IDEMPOTENT	1	/* safe to run again whatever happened */
#define MY_ONCE		0	/* run again only if surely not committed */

/*
 * After one attempt on c: return c to the pool and say whether store.c
 * should run the call again (STORE_RETRY).  A lost connection is retried
 * once per call, on a new connection, and only when the call cannot have
 * taken effect: it is idempotent, or the loss came before its COMMIT
 * (the server rolls back what a vanished client left open).  Lock
 * conflicts are retried up to MY_TRIES attempts.
 */
static int
my_result(struct my *m, struct mconn *c, int rc, int safe)
{
	if (rc != STORE_ERR) {
		pool_put(m, c);
		return rc;
	}
	if (m->lost) {
		conn_close(m, c);
		pool_drain(m);
		if (m->nlost++ > 0)
			return rc;
		if (m->committing && safe != MY_IDEMPOTENT) {
			store_set_error(&m->st, "database unavailable: "
			    "connection lost during commit, outcome unknown");
			return rc;
		}
		return STORE_RETRY;
	}
	pool_put(m, c);
	return m->busy ? STORE_RETRY : rc;
}

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
	if ((c = pool_get(m)) == NULL)					\
		(rc) = STORE_ERR;					\
	else								\
		(rc) = my_result((m), c, (call), (safe));		\
} while (0)

/* ---- statements ---- */

static MYSQL_STMT *
my_stmt(struct my *m, struct mconn *c, int q, const char *what)
{
	MYSQL_STMT	*s;
	my_bool		 on = 1;

	if (c->q[q] != NULL)
		return c->q[q];
	if ((s = mysql_stmt_init(c->my)) == NULL) {
		my_conn_fail(m, c, what);
		return NULL;
	}
	/* max_length after store_result sizes the result buffers. */
	mysql_stmt_attr_set(s, STMT_ATTR_UPDATE_MAX_LENGTH, &on);
	if (mysql_stmt_prepare(s, my_sql[q], strlen(my_sql[q])) != 0) {
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
static int
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
static int
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
static int
row_int(struct my *m, void *arg, struct mcol *v, unsigned int nf)
{
	*(int64_t *)arg = v[0].null ? 0 : v[0].i;
	return STORE_OK;
}

/* Row callback: count rows. */
static int
row_count(struct my *m, void *arg, struct mcol *v, unsigned int nf)
{
	(*(int64_t *)arg)++;
	return STORE_OK;
}

static int
my_begin(struct my *m, struct mconn *c)
{
	static const char	 sql[] = "START TRANSACTION";

	if (mysql_real_query(c->my, sql, sizeof(sql) - 1) != 0)
		return my_conn_fail(m, c, "begin");
	return STORE_OK;
}

static int
my_commit(struct my *m, struct mconn *c)
{
	m->committing = 1;
	if (mysql_commit(c->my) != 0)
		return my_conn_fail(m, c, "commit");
	m->committing = 0;
	return STORE_OK;
}

/* Undo what is open; the error already recorded stays. */
static void
my_rollback(struct my *m, struct mconn *c)
{
	if (m->lost)
		return;		/* the server rolls back on its own */
	if (mysql_rollback(c->my) != 0)
		m->bad = 1;
}

/* ---- users ---- */

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

static int
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

static int
mysql_user_get(struct store *st, int32_t id, struct store_user *u)
{
	struct my	*m = (struct my *)st;
	struct mparam	 p = P_INT(id);
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, user_read_once(m, c, Q_USER_GET, &p, u));
	return rc;
}

static int
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
	struct mparam	 p[4];
	int		 rc;

	p[0] = P_INT(a);
	p[1] = P_INT(b);
	p[2] = P_INT(b);
	p[3] = P_INT(a);
	rc = my_exec(m, c, Q_FRIEND_ADD, p, 4, NULL, NULL, "add friend");
	if (rc == STORE_NOTFOUND)
		store_set_error(&m->st, "no such user");
	return rc;
}

static int
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
	if (store_grow((void **)&ul->out->v, ul->out->n, &ul->cap,
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
	struct mparam	 p = P_INT(id);
	int		 rc;

	out->v = NULL;
	out->n = 0;
	memset(&ul, 0, sizeof(ul));
	ul.out = out;
	rc = my_exec(m, c, q, &p, 1, row_member, &ul, what);
	if (rc != STORE_OK) {
		store_user_list_free(out);
		return rc;
	}
	if (rows != NULL)
		*rows = ul.rows;
	return STORE_OK;
}

static int
mysql_friends(struct store *st, int32_t uid, struct store_user_list *out)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT,
	    members_once(m, c, Q_FRIENDS, uid, out, NULL, "list friends"));
	return rc;
}

static int
friend_remove_once(struct my *m, struct mconn *c, int32_t a, int32_t b)
{
	struct mparam	 p[4];
	int		 rc;

	p[0] = P_INT(a);
	p[1] = P_INT(b);
	p[2] = P_INT(b);
	p[3] = P_INT(a);
	rc = my_exec(m, c, Q_FRIEND_REMOVE, p, 4, NULL, NULL, "remove friend");
	if (rc == STORE_OK && m->affected == 0)
		rc = STORE_NOTFOUND;
	return rc;
}

static int
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

static int
block_once(struct my *m, struct mconn *c, int32_t uid, int32_t other,
    int on)
{
	struct mparam	 p[2];

	p[0] = P_INT(uid);
	p[1] = P_INT(other);
	return my_exec(m, c, on ? Q_BLOCK_ADD : Q_BLOCK_DEL, p, 2, NULL, NULL,
	    on ? "block" : "unblock");
}

static int
mysql_block(struct store *st, int32_t uid, int32_t other, int on)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, block_once(m, c, uid, other, on));
	if (rc == STORE_NOTFOUND)
		store_set_error(st, "no such user");
	return rc;
}

static int
mysql_blocks(struct store *st, int32_t uid, int blockers,
    struct store_user_list *out)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, members_once(m, c, blockers ? Q_BLOCKERS :
	    Q_BLOCKS, uid, out, NULL, "list blocks"));
	return rc;
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
	p[0] = P_INT(id);
	p[1] = P_INT(creator);
	if ((rc = my_exec(m, c, Q_GROUP_ADD_CREATOR, p, 2, NULL, NULL,
	    "create group")) != STORE_OK ||
	    (rc = my_commit(m, c)) != STORE_OK)
		goto fail;
	*gid = id;
	return STORE_OK;

 fail:
	my_rollback(m, c);
	return rc;
}

static int
mysql_group_create(struct store *st, int32_t creator, const char *name,
    size_t name_len, const char *desc, size_t desc_len, int32_t *gid)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_ONCE, group_create_once(m, c, creator, name,
	    name_len, desc, desc_len, gid));
	return rc;
}

static int
group_join_once(struct my *m, struct mconn *c, int32_t gid, int32_t uid)
{
	struct mparam	 p[2];
	int		 rc;

	p[0] = P_INT(gid);
	p[1] = P_INT(uid);
	rc = my_exec(m, c, Q_GROUP_JOIN, p, 2, NULL, NULL, "join group");
	if (rc == STORE_NOTFOUND)
		store_set_error(&m->st, "no such group or user");
	return rc;
}

static int
mysql_group_join(struct store *st, int32_t gid, int32_t uid)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, group_join_once(m, c, gid, uid));
	return rc;
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
	if (rc != STORE_OK || (rc = my_commit(m, c)) != STORE_OK) {
		my_rollback(m, c);
		return rc;
	}
	return STORE_OK;
}

static int
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
	struct mparam	 p[2];
	int64_t		 n = 0;
	int		 rc;

	p[0] = P_INT(gid);
	p[1] = P_INT(uid);
	rc = my_exec(m, c, Q_GROUP_IS_MEMBER, p, 2, row_count, &n,
	    "group member");
	if (rc != STORE_OK)
		return STORE_ERR;
	return n > 0;
}

static int
mysql_group_is_member(struct store *st, int32_t gid, int32_t uid)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, group_is_member_once(m, c, gid, uid));
	return rc;
}

/* One "SELECT COUNT(*) ... WHERE x = ?" into *n. */
static int
count_once(struct my *m, struct mconn *c, int q, int32_t id, int64_t *n)
{
	struct mparam	 p = P_INT(id);

	*n = 0;
	return my_exec(m, c, q, &p, 1, row_int, n, "count");
}

static int
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

static int
mysql_group_members(struct store *st, int32_t gid,
    struct store_user_list *out)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, group_members_once(m, c, gid, out));
	return rc;
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

	if (store_grow((void **)&gl->out->v, gl->out->n, &gl->cap,
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
	if (store_grow((void **)&g->members.v, g->members.n,
	    &gl->ucap[gl->cur], sizeof(*u)) == -1)
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

static int
mysql_user_groups(struct store *st, int32_t uid, struct store_group_list *out)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, user_groups_once(m, c, uid, out));
	return rc;
}

/* ---- offline messages ---- */

static int
offline_add_once(struct my *m, struct mconn *c, const int32_t *uids,
    size_t n, const char *msg, size_t len, int64_t smid)
{
	struct mparam	 p[MY_MAXPARAM];
	size_t		 i, k, rows;
	int		 rc, q;

	if ((rc = my_begin(m, c)) != STORE_OK)
		return rc;
	for (i = 0; i < n; i += rows) {
		/* Rows of MY_BATCH, each carrying the text once. */
		if (n - i >= MY_BATCH && len <= MY_BATCH_MAXLEN) {
			q = Q_OFFLINE_ADD_BATCH;
			rows = MY_BATCH;
		} else {
			q = Q_OFFLINE_ADD;
			rows = 1;
		}
		for (k = 0; k < rows; k++) {
			p[3 * k] = P_INT(uids[i + k]);
			p[3 * k + 1] = P_STR(msg, len);
			p[3 * k + 2] = P_INT(smid);
		}
		rc = my_exec(m, c, q, p, 3 * rows, NULL, NULL,
		    "store message");
		if (rc != STORE_OK) {
			if (rc == STORE_NOTFOUND)
				store_set_error(&m->st, "store message: "
				    "no such user");
			goto fail;
		}
	}
	if (smid > 0) {
		p[0] = P_INT(smid);
		if ((rc = my_exec(m, c, Q_ACK_DONE, p, 1, NULL, NULL,
		    "acknowledge message")) != STORE_OK)
			goto fail;
	}
	if ((rc = my_commit(m, c)) != STORE_OK)
		goto fail;
	return STORE_OK;

 fail:
	my_rollback(m, c);
	return rc;
}

static int
mysql_offline_add(struct store *st, const int32_t *uids, size_t n,
    const char *msg, size_t len, int64_t smid)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	if (n == 0 && smid == 0)
		return STORE_OK;
	MY_TRY(m, rc, MY_ONCE, offline_add_once(m, c, uids, n, msg, len,
	    smid));
	return rc;
}

/* Row callback: smid and done of a ClientMsg. */
static int
row_ack(struct my *m, void *arg, struct mcol *v, unsigned int nf)
{
	int64_t	*out = arg;

	out[0] = v[0].i;
	out[1] = v[1].i;
	out[2] = 1;
	return STORE_OK;
}

static int
ack_claim_once(struct my *m, struct mconn *c, int32_t sender, int64_t cmid,
    int64_t *smid, int *done)
{
	struct mparam	 p[2];
	int64_t		 row[3] = { 0, 0, 0 };
	int		 rc;

	p[0] = P_INT(sender);
	p[1] = P_INT(cmid);
	if ((rc = my_exec(m, c, Q_ACK_CLAIM, p, 2, NULL, NULL,
	    "claim message id")) != STORE_OK)
		return rc;
	if ((rc = my_exec(m, c, Q_ACK_GET, p, 2, row_ack, row,
	    "claim message id")) != STORE_OK)
		return rc;
	if (!row[2])
		return store_set_error(&m->st, "claim message id: no row");
	*smid = row[0];
	*done = row[1] != 0;
	return STORE_OK;
}

static int
mysql_ack_claim(struct store *st, int32_t sender, int64_t cmid,
    int64_t *smid, int *done)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	/* the insert is a no-op the second time: safe to run again */
	MY_TRY(m, rc, MY_IDEMPOTENT, ack_claim_once(m, c, sender, cmid, smid,
	    done));
	return rc;
}

static int
offline_remove_once(struct my *m, struct mconn *c, int32_t uid, int64_t smid)
{
	struct mparam	 p[2];

	p[0] = P_INT(uid);
	p[1] = P_INT(smid);
	return my_exec(m, c, Q_OFFLINE_REMOVE, p, 2, NULL, NULL,
	    "remove delivered message");
}

static int
mysql_offline_remove(struct store *st, int32_t uid, int64_t smid)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, offline_remove_once(m, c, uid, smid));
	return rc;
}

struct mlist {
	struct store_msg_list	*out;
	size_t			 cap;
};

static int
row_msg(struct my *m, void *arg, struct mcol *v, unsigned int nf)
{
	struct mlist		*ml = arg;
	struct store_msg	*msg;

	if (store_grow((void **)&ml->out->v, ml->out->n, &ml->cap,
	    sizeof(*msg)) == -1)
		return my_nomem(m);
	msg = &ml->out->v[ml->out->n];
	msg->id = v[0].i;
	if (my_strdup(&v[1], &msg->text, &msg->len) == -1)
		return my_nomem(m);
	ml->out->n++;
	return STORE_OK;
}

static int
offline_fetch_once(struct my *m, struct mconn *c, int32_t uid, size_t max,
    struct store_msg_list *out)
{
	struct mlist	 ml;
	struct mparam	 p[2];
	int		 rc;

	out->v = NULL;
	out->n = 0;
	memset(&ml, 0, sizeof(ml));
	ml.out = out;
	p[0] = P_INT(uid);
	p[1] = P_INT(max > INT64_MAX ? INT64_MAX : (int64_t)max);
	if (max == 0)
		rc = my_exec(m, c, Q_OFFLINE_FETCH_ALL, p, 1, row_msg, &ml,
		    "fetch messages");
	else
		rc = my_exec(m, c, Q_OFFLINE_FETCH, p, 2, row_msg, &ml,
		    "fetch messages");
	if (rc != STORE_OK)
		store_msg_list_free(out);
	return rc;
}

static int
mysql_offline_fetch(struct store *st, int32_t uid, size_t max,
    struct store_msg_list *out)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, offline_fetch_once(m, c, uid, max, out));
	return rc;
}

static int
offline_delete_once(struct my *m, struct mconn *c, int32_t uid,
    int64_t upto)
{
	struct mparam	 p[2];

	p[0] = P_INT(uid);
	p[1] = P_INT(upto);
	return my_exec(m, c, Q_OFFLINE_DELETE, p, 2, NULL, NULL,
	    "delete messages");
}

static int
mysql_offline_delete(struct store *st, int32_t uid, int64_t upto)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, offline_delete_once(m, c, uid, upto));
	return rc;
}

/* ---- ping, schema, URL, open, close ---- */

static int
ping_once(struct my *m, struct mconn *c)
{
	if (mysql_ping(c->my) != 0)
		return my_conn_fail(m, c, "ping");
	return STORE_OK;
}

static int
mysql_ping_store(struct store *st)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT, ping_once(m, c));
	return rc;
}

/* The schema version, 0 when there is no SchemaVersion table yet. */
static int
my_version(struct my *m, struct mconn *c, int64_t *v)
{
	*v = 0;
	if (my_exec(m, c, Q_VERSION, NULL, 0, row_int, v, "schema version")
	    == STORE_OK)
		return STORE_OK;
	if (m->errnum == ER_NO_SUCH_TABLE) {
		my_reset(m);
		return STORE_OK;
	}
	return STORE_ERR;
}

/* Run len bytes of built-in SQL, one statement (up to ';') at a time. */
static int
my_schema_apply(struct my *m, struct mconn *c, const char *p, size_t len,
    const char *what)
{
	const char	*end = p + len, *e;
	size_t		 n;

	while (p < end) {
		e = memchr(p, ';', (size_t)(end - p));
		n = e != NULL ? (size_t)(e - p) : (size_t)(end - p);
		if (strspn(p, " \t\r\n") < n &&
		    mysql_real_query(c->my, p, n) != 0)
			return my_conn_fail(m, c, what);
		p += n;
		if (p < end && *p == ';')
			p++;
	}
	return STORE_OK;
}

/* The upgrade steps after version from (each idempotent: DDL commits). */
static int
my_upgrade(struct my *m, struct mconn *c, int from)
{
	const char	*p;
	char		 what[64];
	size_t		 len;
	int		 v;

	for (v = from + 1; v <= MY_SCHEMA_VERSION; v++) {
		if ((p = store_upgrade_step(mysql_upgrade, v, &len)) == NULL)
			return store_set_error(&m->st, "no upgrade step to "
			    "schema version %d", v);
		snprintf(what, sizeof(what), "upgrade to schema version %d", v);
		if (my_schema_apply(m, c, p, len, what) != STORE_OK)
			return STORE_ERR;
	}
	return STORE_OK;
}

/*
 * Check the schema, creating it in an empty database.  A newer version
 * than we know, or chatd's tables without a version, is refused: we do
 * not guess at a layout we did not make.
 */
static int
my_schema(struct my *m, struct mconn *c)
{
	struct mparam	 p;
	int64_t		 v, n = 0, got = 0;
	unsigned int	 wait;
	int		 rc;

	if (my_version(m, c, &v) != STORE_OK)
		return STORE_ERR;
	/* every statement is IF NOT EXISTS: tables added since get made */
	if (v == MY_SCHEMA_VERSION)
		return my_schema_apply(m, c, mysql_schema, strlen(mysql_schema),
		    "apply schema");
	if (v > MY_SCHEMA_VERSION)
		return store_set_error(&m->st, "schema version %lld is newer "
		    "than this chatd knows (%d): upgrade chatd", (long long)v,
		    MY_SCHEMA_VERSION);

	/*
	 * Several workers may start at once: one creates, the rest wait,
	 * though not past the read timeout.
	 */
	wait = m->query_sec > 1 ? m->query_sec - 1 : 1;
	p = P_INT(wait);
	if (my_exec(m, c, Q_LOCK, &p, 1, row_int, &got, "schema lock")
	    != STORE_OK)
		return STORE_ERR;
	if (got != 1)
		return store_set_error(&m->st, "schema lock: not granted "
		    "within %u s", wait);
	if ((rc = my_version(m, c, &v)) != STORE_OK)
		goto out;
	if (v == 0) {
		if ((rc = my_exec(m, c, Q_OUR_TABLES, NULL, 0, row_int,
		    &n, "schema check")) != STORE_OK)
			goto out;
		if (n > 0) {
			rc = store_set_error(&m->st, "database %s has chatd's "
			    "tables but no SchemaVersion: not made by this "
			    "chatd; check them, then apply mysql.sql", m->url.db);
			goto out;
		}
	} else if (v < MY_SCHEMA_VERSION) {
		if ((rc = my_upgrade(m, c, (int)v)) != STORE_OK)
			goto out;
	}
	if (v < MY_SCHEMA_VERSION) {
		if ((rc = my_schema_apply(m, c, mysql_schema,
		    strlen(mysql_schema), "create schema")) != STORE_OK ||
		    (rc = my_version(m, c, &v)) != STORE_OK)
			goto out;
	}
	if (v != MY_SCHEMA_VERSION)
		rc = store_set_error(&m->st, "schema version is %lld, this "
		    "chatd knows %d", (long long)v, MY_SCHEMA_VERSION);
 out:
	if (!m->lost)
		my_exec(m, c, Q_UNLOCK, NULL, 0, row_int, &got, "unlock");
	return rc;
}

static void
my_free(struct my *m)
{
	if (m == NULL)
		return;
	if (m->idle != NULL) {
		pool_drain(m);
		free(m->idle);
	}
	store_url_free(&m->url);
	free(m->tls_ca);
	free(m->tls_cert);
	free(m->tls_key);
	free(m);
}

static void
mysql_close_store(struct store *st)
{
	my_free((struct my *)st);
}

struct store *
store_mysql_open(const char *url, const struct store_opts *opts,
    char *err, size_t errlen)
{
	struct my	*m;
	struct mconn	*c;
	unsigned int	 lockwait;
	int64_t		 flush = 1;
	int		 i;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, errlen, "mysql: out of memory");
		return NULL;
	}
	m->st.ops = &mysql_ops;

	if (store_url_parse(&m->url, url, err, errlen) == -1)
		goto fail;
	if (opts->password != NULL) {
		if (m->url.pass != NULL) {
			explicit_bzero(m->url.pass, strlen(m->url.pass));
			free(m->url.pass);
		}
		if ((m->url.pass = strdup(opts->password)) == NULL) {
			snprintf(err, errlen, "mysql: out of memory");
			goto fail;
		}
	}

	m->tls = opts->tls;
	if ((opts->tls_ca != NULL &&
	    (m->tls_ca = strdup(opts->tls_ca)) == NULL) ||
	    (opts->tls_cert != NULL &&
	    (m->tls_cert = strdup(opts->tls_cert)) == NULL) ||
	    (opts->tls_key != NULL &&
	    (m->tls_key = strdup(opts->tls_key)) == NULL)) {
		snprintf(err, errlen, "mysql: out of memory");
		goto fail;
	}

	/* The client library counts whole seconds: round up. */
	m->connect_sec = (opts->connect_timeout_ms + 999) / 1000;
	m->query_sec = (opts->query_timeout_ms + 999) / 1000;
	if (m->connect_sec == 0)
		m->connect_sec = 1;
	if (m->query_sec == 0)
		m->query_sec = 1;
	/*
	 * Strict: too long a value fails instead of being cut.  A lock
	 * wait gives up (and is retried) well before the read timeout
	 * would drop the connection.
	 */
	lockwait = m->query_sec / 2 > 0 ? m->query_sec / 2 : 1;
	snprintf(m->init_cmd, sizeof(m->init_cmd), "SET SESSION sql_mode = "
	    "'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', "
	    "innodb_lock_wait_timeout = %u", lockwait);
	m->pool_max = opts->pool_max > 0 ? opts->pool_max : 1;
	m->idle_sec = opts->pool_idle_sec > 0 ? opts->pool_idle_sec : 60;
	if ((m->idle = calloc(m->pool_max, sizeof(*m->idle))) == NULL) {
		snprintf(err, errlen, "mysql: out of memory");
		goto fail;
	}

	if ((c = conn_open(m)) == NULL) {
		snprintf(err, errlen, "%s", m->st.err);
		goto fail;
	}
	my_reset(m);
	if (my_schema(m, c) != STORE_OK) {
		snprintf(err, errlen, "mysql: %s: %s", m->url.db, m->st.err);
		conn_close(m, c);
		goto fail;
	}
	/* a commit we acknowledge must survive a crash of the server */
	if (my_exec(m, c, Q_FLUSH_AT_COMMIT, NULL, 0, row_int, &flush,
	    "durability check") == STORE_OK && flush != 1)
		snprintf(m->st.warning, sizeof(m->st.warning),
		    "innodb_flush_log_at_trx_commit is %lld, not 1: a crash "
		    "of the MySQL server can lose commits chatd acknowledged",
		    (long long)flush);
	pool_put(m, c);	/* closes c if the check lost it */
	my_reset(m);
	for (i = 1; i < opts->pool_init && i < m->pool_max; i++) {
		if ((c = conn_open(m)) == NULL) {
			snprintf(err, errlen, "%s", m->st.err);
			goto fail;
		}
		pool_put(m, c);
	}
	m->st.err[0] = '\0';
	return &m->st;

 fail:
	my_free(m);
	return NULL;
}

/* ---- resume token generations (TokenGen) ---- */

static int
token_gen_once(struct my *m, struct mconn *c, int32_t uid, int bump,
    const char *pwhash, uint64_t *gen)
{
	struct mparam	 p[2];
	int64_t		 n = 0;
	int		 rc;

	if (!bump) {
		p[0] = P_INT(uid);
		rc = my_exec(m, c, Q_TOKEN_GEN, p, 1, row_int, &n,
		    "token generation");
		*gen = (uint64_t)n;
		return rc;
	}
	if ((rc = my_begin(m, c)) != STORE_OK)
		return rc;
	if (pwhash != NULL) {
		p[0] = P_STR(pwhash, strlen(pwhash));
		p[1] = P_INT(uid);
		if ((rc = my_exec(m, c, Q_SET_PASSWORD, p, 2, NULL, NULL,
		    "password")) != STORE_OK)
			goto fail;
		/* 0 rows also when the hash is unchanged: ask for the user */
		if (m->affected == 0) {
			p[0] = P_INT(uid);
			if ((rc = my_exec(m, c, Q_USER_GET, p, 1, row_count,
			    &n, "user")) != STORE_OK)
				goto fail;
			if (n == 0) {
				rc = STORE_NOTFOUND;
				goto fail;
			}
		}
	}
	p[0] = P_INT(uid);
	if ((rc = my_exec(m, c, Q_TOKEN_BUMP, p, 1, NULL, NULL,
	    "token generation")) != STORE_OK ||
	    (rc = my_exec(m, c, Q_TOKEN_GEN, p, 1, row_int, &n,
	    "token generation")) != STORE_OK ||
	    (rc = my_commit(m, c)) != STORE_OK)
		goto fail;
	*gen = (uint64_t)n;
	return STORE_OK;
 fail:
	my_rollback(m, c);
	return rc;
}

/* A bump run twice only revokes twice: safe to run again. */
static int
mysql_token_gen(struct store *st, int32_t uid, int bump, const char *pwhash,
    uint64_t *gen)
{
	struct my	*m = (struct my *)st;
	int		 rc;

	MY_TRY(m, rc, MY_IDEMPOTENT,
	    token_gen_once(m, c, uid, bump, pwhash, gen));
	return rc;
}

static const struct store_ops mysql_ops = {
	.kind = "mysql",
	.tries = MY_TRIES,
	.close = mysql_close_store,
	.ping = mysql_ping_store,
	.user_create = mysql_user_create,
	.user_get = mysql_user_get,
	.user_by_name = mysql_user_by_name,
	.friend_add = mysql_friend_add,
	.friends = mysql_friends,
	.group_create = mysql_group_create,
	.group_join = mysql_group_join,
	.group_is_member = mysql_group_is_member,
	.count = mysql_count,
	.group_members = mysql_group_members,
	.user_groups = mysql_user_groups,
	.friend_remove = mysql_friend_remove,
	.block = mysql_block,
	.blocks = mysql_blocks,
	.group_update = mysql_group_update,
	.offline_add = mysql_offline_add,
	.offline_fetch = mysql_offline_fetch,
	.offline_delete = mysql_offline_delete,
	.ack_claim = mysql_ack_claim,
	.offline_remove = mysql_offline_remove,
	.token_gen = mysql_token_gen,
};
