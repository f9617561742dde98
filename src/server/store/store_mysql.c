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
#include "store_mysql_impl.h"
#include "store_url.h"
#include "util.h"
#include "mysql_schema.h"	/* generated from sql/mysql.sql */
#include "mysql_upgrade.h"	/* generated from sql/mysql-upgrade.sql */

/* The version sql/mysql.sql writes into SchemaVersion. */
#define MY_SCHEMA_VERSION	4

/* Rows of (userid, message, smid) placeholders, MY_BATCH of them. */
#define ROW	"(?, ?, ?)"
#define ROWS4	ROW ", " ROW ", " ROW ", " ROW
#define ROWS16	ROWS4 ", " ROWS4 ", " ROWS4 ", " ROWS4
/*
 * History rows: each a SELECT of its own parameters (smid, conv,
 * recipient (0 in a group), sender, created, message: HROW_NP), up to
 * MY_HISTORY_BATCH of them a derived table, which one INSERT joins with
 * Block, User and AllGroup.  As in SQLite (store_sqlite.c): a chat to
 * one who blocks its sender is kept for the sender only (sender
 * negated); none of a deleted sender, none for a group no longer there.
 * One join per statement, not three dependent subqueries per row: a
 * third of MariaDB's CPU per row (BENCHMARKS.md).
 */
#define HROW1	"SELECT ? AS smid, ? AS conv, ? AS peer, ? AS sender," \
	" ? AS created, ? AS msg"
#define HROW	" UNION ALL SELECT ?, ?, ?, ?, ?, ?"
#define HROWS2	HROW HROW
#define HROWS4	HROWS2 HROWS2
#define HROWS8	HROWS4 HROWS4
#define HROWS16	HROWS8 HROWS8
#define HROWS31	HROWS16 HROWS8 HROWS4 HROWS2 HROW
#define HIST_INSERT(rows) \
	"INSERT IGNORE INTO History (smid, conv, sender, created, message)" \
	" SELECT t.smid, t.conv, IF(b.userid IS NULL, t.sender, -t.sender)," \
	" t.created, t.msg FROM (" rows ") AS t" \
	" LEFT JOIN Block b ON b.userid = t.peer AND b.blockedid = t.sender" \
	" LEFT JOIN User u ON u.id = t.sender AND u.pwhash = '!'" \
	" LEFT JOIN AllGroup g ON g.id = -t.conv" \
	" WHERE u.id IS NULL AND (t.conv >= 0 OR g.id IS NOT NULL)"
/* (userid, conv, last) rows into HistoryConv, the latest kept */
#define HCONV_ADD(rows) \
	"INSERT INTO HistoryConv (userid, conv, last) VALUES " rows \
	" ON DUPLICATE KEY UPDATE last = GREATEST(last, VALUES(last))"

/* MySQL's own statements; the shared ones are in store_sql.c. */
const char *const my_sql[Q_MAX] = {
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
	/*
	 * Both directions in one statement; an existing row is kept.  Not
	 * INSERT IGNORE: that would also hide the foreign key error that
	 * tells us a user does not exist.
	 */
	[Q_FRIEND_ADD] =
	    "INSERT INTO Friend (userid, friendid) VALUES (?, ?), (?, ?)"
	    " ON DUPLICATE KEY UPDATE friendid = friendid",
	[Q_GROUP_ADD_CREATOR] =
	    "INSERT INTO GroupUser (groupid, userid, grouprole)"
	    " VALUES (?, ?, 'creator')",
	[Q_GROUP_JOIN] =
	    "INSERT INTO GroupUser (groupid, userid, grouprole, joinedat)"
	    " VALUES (?, ?, 'normal', UNIX_TIMESTAMP())"
	    " ON DUPLICATE KEY UPDATE userid = userid",
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
	[Q_OFFLINE_ADD] =
	    "INSERT INTO OfflineMessage (userid, message, smid) VALUES " ROW,
	[Q_OFFLINE_ADD_BATCH] =
	    "INSERT INTO OfflineMessage (userid, message, smid) VALUES " ROWS16,
	[Q_OFFLINE_FETCH_ALL] =
	    "SELECT id, message FROM OfflineMessage WHERE userid = ?"
	    " ORDER BY id",
	[Q_ACK_CLAIM] =
	    "INSERT INTO ClientMsg (userid, cmid) VALUES (?, ?)"
	    " ON DUPLICATE KEY UPDATE cmid = cmid",
	/* a claim's smid is its row times STORE_SMID_BLOCK (store.h) */
	[Q_ACK_DONE] = "UPDATE ClientMsg SET done = 1"
	    " WHERE smid = ? DIV " STORE_SMID_BLOCK_SQL,
	/* group changes (store_group_update): group, then user or text */
	[Q_GROUP_ADMIN] =
	    "UPDATE GroupUser SET admin = ? WHERE groupid = ? AND userid = ?",
	[Q_GROUP_RENAME] = "UPDATE AllGroup SET groupname = ? WHERE id = ?",
	[Q_GROUP_DESCRIBE] = "UPDATE AllGroup SET groupdesc = ? WHERE id = ?",
	[Q_GROUP_SET_CREATOR] = "UPDATE AllGroup SET creator = ? WHERE id = ?",
	[Q_FRIEND_REMOVE] =
	    "DELETE FROM Friend WHERE (userid = ? AND friendid = ?)"
	    " OR (userid = ? AND friendid = ?)",
	/* not INSERT IGNORE: the foreign key error says "no such user" */
	[Q_BLOCK_ADD] =
	    "INSERT INTO Block (userid, blockedid) VALUES (?, ?)"
	    " ON DUPLICATE KEY UPDATE blockedid = blockedid",
	[Q_TOKEN_BUMP] =
	    "INSERT INTO TokenGen (userid, gen) VALUES (?, 1)"
	    " ON DUPLICATE KEY UPDATE gen = gen + 1",
	[Q_SET_PASSWORD] = "UPDATE User SET pwhash = ? WHERE id = ?",
	/* IGNORE: a smid kept before stays as it is */
	[Q_HISTORY_ADD] = HIST_INSERT(HROW1),
	[Q_HISTORY_ADD_BATCH] = HIST_INSERT(HROW1 HROWS31),
	[Q_HISTORY_PRUNE] = "DELETE FROM History WHERE created < ? LIMIT ?",
	[Q_HCONV_ADD] = HCONV_ADD(ROW),
	[Q_HCONV_ADD_BATCH] = HCONV_ADD(ROWS16),
	/* STRAIGHT_JOIN: the conversations first, then History per one */
	[Q_RESUME] = STORE_SQL_RESUME("STRAIGHT_JOIN"),
};

static const struct store_ops mysql_ops;

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
	MY_CALL(st, MY_IDEMPOTENT, ping_once(m, c));
}

/* The schema version, 0 when there is no SchemaVersion table yet. */
static int
my_version(struct my *m, struct mconn *c, int64_t *v)
{
	*v = 0;
	if (my_exec(m, c, Q_VERSION, NULL, 0, my_row_int, v, "schema version")
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
	if (my_exec(m, c, Q_LOCK, &p, 1, my_row_int, &got, "schema lock")
	    != STORE_OK)
		return STORE_ERR;
	if (got != 1)
		return store_set_error(&m->st, "schema lock: not granted "
		    "within %u s", wait);
	if ((rc = my_version(m, c, &v)) != STORE_OK)
		goto out;
	if (v == 0) {
		if ((rc = my_exec(m, c, Q_OUR_TABLES, NULL, 0, my_row_int,
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
		my_exec(m, c, Q_UNLOCK, NULL, 0, my_row_int, &got, "unlock");
	return rc;
}

static void
my_free(struct my *m)
{
	if (m == NULL)
		return;
	if (m->idle != NULL) {
		my_pool_drain(m);
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
	m->read_committed = opts->hist == STORE_HIST_WRITER;
	m->pool_max = opts->pool_max > 0 ? opts->pool_max : 1;
	m->idle_sec = opts->pool_idle_sec > 0 ? opts->pool_idle_sec : 60;
	if ((m->idle = calloc(m->pool_max, sizeof(*m->idle))) == NULL) {
		snprintf(err, errlen, "mysql: out of memory");
		goto fail;
	}

	if ((c = my_conn_open(m)) == NULL) {
		snprintf(err, errlen, "%s", m->st.err);
		goto fail;
	}
	my_reset(m);
	if (my_schema(m, c) != STORE_OK) {
		snprintf(err, errlen, "mysql: %s: %s", m->url.db, m->st.err);
		my_conn_close(m, c);
		goto fail;
	}
	/* a commit we acknowledge must survive a crash of the server */
	if (my_exec(m, c, Q_FLUSH_AT_COMMIT, NULL, 0, my_row_int, &flush,
	    "durability check") == STORE_OK && flush != 1)
		snprintf(m->st.warning, sizeof(m->st.warning),
		    "innodb_flush_log_at_trx_commit is %lld, not 1: a crash "
		    "of the MySQL server can lose commits chatd acknowledged",
		    (long long)flush);
	my_pool_put(m, c);	/* closes c if the check lost it */
	my_reset(m);
	for (i = 1; i < opts->pool_init && i < m->pool_max; i++) {
		if ((c = my_conn_open(m)) == NULL) {
			snprintf(err, errlen, "%s", m->st.err);
			goto fail;
		}
		my_pool_put(m, c);
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
		rc = my_exec_ints(m, c, Q_TOKEN_GEN, STORE_INTS(uid), my_row_int,
		    &n, "token generation");
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
			if ((rc = my_exec_ints(m, c, Q_USER_GET,
			    STORE_INTS(uid), my_row_count, &n, "user")) !=
			    STORE_OK)
				goto fail;
			if (n == 0) {
				rc = STORE_NOTFOUND;
				goto fail;
			}
		}
	}
	if ((rc = my_exec_ints(m, c, Q_TOKEN_BUMP, STORE_INTS(uid), NULL, NULL,
	    "token generation")) == STORE_OK)
		rc = my_exec_ints(m, c, Q_TOKEN_GEN, STORE_INTS(uid),
		    my_row_int, &n, "token generation");
	if ((rc = my_end(m, c, rc)) == STORE_OK)
		*gen = (uint64_t)n;
	return rc;
 fail:
	return my_end(m, c, rc);
}

/* A bump run twice only revokes twice: safe to run again. */
static int
mysql_token_gen(struct store *st, int32_t uid, int bump, const char *pwhash,
    uint64_t *gen)
{
	MY_CALL(st, MY_IDEMPOTENT, token_gen_once(m, c, uid, bump, pwhash, gen));
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
	.history_add = mysql_history_add,
	.history_fetch = mysql_history_fetch,
	.history_prune = mysql_history_prune,
	.resume_fetch = mysql_resume_fetch,
	.history_forget = mysql_history_forget,
	.account_purge = mysql_account_purge,
};
