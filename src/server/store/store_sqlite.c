/*
 * store_sqlite.c - the embedded SQLite backend.
 *
 * Several worker processes open the same file, each with its own
 * handle: WAL lets readers run beside the one writer, writes that touch
 * several rows take the write lock up front (BEGIN IMMEDIATE), and a
 * lock conflict that outlasts the busy handler is retried as a whole
 * transaction a few times before it is reported.  Every statement is
 * prepared once at open; input is only ever bound, never pasted.
 *
 * History and HistoryConv live in a file of their own, "<db>-history",
 * attached to every connection as hist (unqualified names find them:
 * the main file has none).  A worker's history thread alone writes it,
 * at idle priority (chat_history.c), so nothing else may wait for a
 * lock it holds: its transactions start deferred and write the history
 * file only (reading the main one is a WAL snapshot, which blocks no
 * writer), and the worker's other handles attach the history file
 * read-only, because BEGIN IMMEDIATE takes the write lock of every
 * database attached read-write.
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
#include "store_sqlite_impl.h"
#include "sqlite_schema.h"	/* generated from sql/sqlite.sql */
#include "sqlite_upgrade.h"	/* generated from sql/sqlite-upgrade.sql */

/* The PRAGMA user_version that sql/sqlite.sql sets. */
#define SQ_SCHEMA_VERSION	5
/* The first version whose History is in the history file. */
#define SQ_HIST_FILE_VERSION	5

/* Whole-transaction retries after SQLITE_BUSY: <= ~0.9 s of sleep. */
#define SQ_TRIES		8	/* attempts of a call that finds the file locked */

/* SQLite's own statements; the shared ones are in store_sql.c. */
static const char *const sq_sql[Q_MAX] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_BEGIN_READ] = "BEGIN",	/* deferred: a snapshot at the first read */
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_PING] = "SELECT 1",
	[Q_USER_CREATE] =
	    "INSERT INTO User (name, pwhash, created) VALUES (?1, ?2, ?3)",
	[Q_USER_EXISTS] = "SELECT 1 FROM User WHERE id = ?1",
	[Q_FRIEND_ADD] =
	    "INSERT OR IGNORE INTO Friend (userid, friendid) VALUES (?1, ?2)",
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
	[Q_OFFLINE_ADD] =
	    "INSERT INTO OfflineMessage (userid, message, created, smid)"
	    " VALUES (?1, ?2, ?3, ?4)",
	[Q_ACK_CLAIM] =
	    "INSERT INTO ClientMsg (userid, cmid, created) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (userid, cmid) DO NOTHING",
	/* a claim's smid is its row times STORE_SMID_BLOCK (store.h) */
	[Q_ACK_DONE] = "UPDATE ClientMsg SET done = 1"
	    " WHERE smid = ?1 / " STORE_SMID_BLOCK_SQL,
	/* group changes (store_group_update): ?1 group, ?2 user or text */
	[Q_GROUP_ADMIN] =
	    "UPDATE GroupUser SET admin = ?3 WHERE groupid = ?1 AND userid = ?2",
	[Q_GROUP_RENAME] = "UPDATE AllGroup SET groupname = ?2 WHERE id = ?1",
	[Q_GROUP_DESCRIBE] = "UPDATE AllGroup SET groupdesc = ?2 WHERE id = ?1",
	[Q_GROUP_SET_CREATOR] = "UPDATE AllGroup SET creator = ?2 WHERE id = ?1",
	[Q_FRIEND_REMOVE] =
	    "DELETE FROM Friend WHERE (userid = ?1 AND friendid = ?2)"
	    " OR (userid = ?2 AND friendid = ?1)",
	[Q_BLOCK_ADD] =
	    "INSERT OR IGNORE INTO Block (userid, blockedid) VALUES (?1, ?2)",
	/*
	 * History rows go in as they are: the checks (a blocked sender, a
	 * deleted one, a dissolved group) are made once per batch with
	 * the two statements after it (store_sqlite_msg.c).
	 */
	[Q_HISTORY_ADD] =
	    "INSERT OR IGNORE INTO History (smid, conv, sender, created,"
	    " message) VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_USER_GONE] = "SELECT 1 FROM User WHERE id = ?1 AND pwhash = '!'",
	[Q_IS_BLOCKED] =
	    "SELECT 1 FROM Block WHERE userid = ?1 AND blockedid = ?2",
	/*
	 * Account deletion: ?1 = ?2 = the user.  No index on sender (one
	 * cost every chat kept): its rows are sought by conversation, with
	 * every user (either side of the pair) and every group; a
	 * dissolved group's history is gone already.
	 */
	[Q_PURGE_HISTORY] =
	    "DELETE FROM History WHERE sender IN (?1, -?2) AND conv IN"
	    " (SELECT (?1 << 32) | id FROM User WHERE id >= ?1"
	    " UNION ALL SELECT (id << 32) | ?1 FROM User WHERE id < ?1"
	    " UNION ALL SELECT -id FROM AllGroup)",
	[Q_HCONV_ADD] =
	    "INSERT INTO HistoryConv (userid, conv, last) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (userid, conv) DO UPDATE"
	    " SET last = max(last, excluded.last)",
	/* CROSS JOIN: SQLite keeps the left table outside */
	[Q_RESUME] = STORE_SQL_RESUME("CROSS JOIN"),
	/* SQLite's DELETE takes no LIMIT unless built to */
	[Q_HISTORY_PRUNE] =
	    "DELETE FROM History WHERE smid IN (SELECT smid FROM History"
	    " WHERE created < ?1 LIMIT ?2)",
};

static const struct store_ops sqlite_ops;

/*
 * Record why a statement failed and reset it.  A lock conflict marks
 * the handle busy so the caller retries; constraint failures become the
 * outcomes the interface promises.
 */
int
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

void
sq_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* The caller's buffer lives until we reset, so no copy (STATIC). */
int
sq_bind_text(sqlite3_stmt *s, int i, const char *p, size_t len)
{
	if (p == NULL)
		p = "";
	return sqlite3_bind_text64(s, i, p, len, SQLITE_STATIC, SQLITE_UTF8);
}

/* Step a statement that returns nothing useful, then reset it. */
int
sq_run(struct sq *sq, sqlite3_stmt *s, const char *what)
{
	int	 rc;

	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sq_fail(sq, s, rc, what);
	sq_done(s);
	return STORE_OK;
}

/* SQ_ROW when the statement yields a row, SQ_NOROW when not, STORE_ERR. */
enum sq_exists
sq_exists(struct sq *sq, sqlite3_stmt *s, const char *what)
{
	int	 rc;

	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sq_fail(sq, s, rc, what) == STORE_ERR ? SQ_ERR :
		    SQ_NOROW;
	sq_done(s);
	return rc == SQLITE_ROW ? SQ_ROW : SQ_NOROW;
}

/* Bind v[0..n) to s's parameters 1..n: STORE_OK, or sq_fail's outcome. */
int
sq_bind_ints(struct sq *sq, sqlite3_stmt *s, const int64_t *v, int n,
    const char *what)
{
	int	 i, rc;

	for (i = 0; i < n; i++)
		if ((rc = sqlite3_bind_int64(s, i + 1, v[i])) != SQLITE_OK)
			return sq_fail(sq, s, rc, what);
	return STORE_OK;
}

/* Run statement q (no rows wanted) with the integers v[0..n) bound. */
int
sq_exec_ints(struct sq *sq, int q, const int64_t *v, int n,
    const char *what)
{
	int	 rc;

	if ((rc = sq_bind_ints(sq, sq->q[q], v, n, what)) != STORE_OK)
		return rc;
	return sq_run(sq, sq->q[q], what);
}

/* The end of a transaction: commit if rc is STORE_OK, else roll back. */
int
sq_end(struct sq *sq, int rc)
{
	if (rc == STORE_OK && (rc = sq_commit(sq)) == STORE_OK)
		return STORE_OK;
	sq_rollback(sq);
	return rc;
}

int
sq_begin(struct sq *sq)
{
	return sq_run(sq, sq->q[Q_BEGIN], "begin");
}

int
sq_commit(struct sq *sq)
{
	return sq_run(sq, sq->q[Q_COMMIT], "commit");
}

/* Undo whatever is open; the error already recorded stays. */
void
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
int
sq_result(struct sq *sq, int rc)
{
	return rc == STORE_ERR && sq->busy ? STORE_RETRY : rc;
}

/* Copy a text column, any bytes, NUL-terminated; -1 on no memory. */
int
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

int
sq_nomem(struct sq *sq, sqlite3_stmt *s)
{
	if (s != NULL)
		sq_done(s);
	return store_set_error(&sq->st, "sqlite: out of memory");
}

/* ---- open, close ---- */

static int
sqlite_ping(struct store *st)
{
	SQ_CALL(st, sq_run(sq, sq->q[Q_PING], "ping"));
}

static void
sq_free(struct sq *sq)
{
	int	 i;

	for (i = 0; i < Q_MAX; i++)
		sqlite3_finalize(sq->q[i]);	/* NULL is harmless */
	sq_hconv_free(sq);
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

/* The upgrade steps after version from up to to, in the caller's transaction. */
static int
sq_upgrade(struct sq *sq, int from, int to)
{
	const char	*p;
	char		*sql, what[64];
	size_t		 len;
	int		 v, rc;

	for (v = from + 1; v <= to; v++) {
		if ((p = store_upgrade_step(sqlite_upgrade, v, &len)) == NULL)
			return store_set_error(&sq->st, "no upgrade step to "
			    "schema version %d", v);
		if ((sql = store_memdup(p, len)) == NULL)
			return store_set_error(&sq->st, "out of memory");
		snprintf(what, sizeof(what), "upgrade to schema version %d", v);
		rc = sq_exec(sq, sql, what);
		free(sql);
		if (rc != STORE_OK)
			return rc;
	}
	return STORE_OK;
}

/* sq_end before the statements are prepared (schema_once's own). */
static int
schema_end(struct sq *sq, int rc)
{
	if (rc == STORE_OK)
		rc = sq_exec(sq, "COMMIT", "commit");
	if (rc != STORE_OK && !sqlite3_get_autocommit(sq->db))
		sqlite3_exec(sq->db, "ROLLBACK", NULL, NULL, NULL);
	return rc == STORE_OK ? STORE_OK : STORE_ERR;
}

/*
 * Upgrading a file from before the history file (version 5) writes two
 * files, and a transaction over two WAL files commits one after the
 * other: a crash between them would keep one half.  So each step below
 * writes one file, in an order that the next start resumes from
 * wherever a crash stopped it, with nothing lost and nothing doubled:
 *  1. sq_upgrade_main: the steps before version 5, in the main file,
 *     committed with the version they reach (4);
 *  2. sq_upgrade_copy: History and HistoryConv copied into the history
 *     file (idempotent), with a sync (that file runs at synchronous
 *     NORMAL): the main file's drop must not outlast it on a power loss;
 *  3. schema_once: the main file's tables dropped and version 5 set,
 *     only when the history file holds all of their rows (else 2 runs
 *     again: an older chatd still running may have written one since).
 * What 3 writes to the history file (indexes) is made again at the next
 * start if it is lost.
 */
static int
sq_upgrade_main(struct sq *sq)
{
	sqlite3_int64	 v;
	char		 sql[48];
	int		 rc;

	/* a glance first: most starts find the file upgraded, unlocked */
	if (sq_int(sq, "PRAGMA main.user_version", &v))
		return STORE_ERR;
	if (v <= 0 || v >= SQ_HIST_FILE_VERSION - 1)
		return STORE_OK;
	if (sq_exec(sq, "BEGIN IMMEDIATE", "begin"))
		return STORE_ERR;
	if ((rc = sq_int(sq, "PRAGMA main.user_version", &v)) == STORE_OK &&
	    v > 0 && v < SQ_HIST_FILE_VERSION - 1 &&
	    (rc = sq_upgrade(sq, (int)v, SQ_HIST_FILE_VERSION - 1)) ==
	    STORE_OK) {
		snprintf(sql, sizeof(sql), "PRAGMA main.user_version = %d",
		    SQ_HIST_FILE_VERSION - 1);
		rc = sq_exec(sq, sql, "schema version");
	}
	return schema_end(sq, rc);
}

static int
sq_upgrade_copy(struct sq *sq)
{
	sqlite3_int64	 v;
	const char	*p;
	char		*sql;
	size_t		 len;
	int		 rc;

	if ((p = store_upgrade_step(sqlite_upgrade, SQ_HIST_FILE_VERSION,
	    &len)) == NULL || (sql = store_memdup(p, len)) == NULL)
		return store_set_error(&sq->st, "history file: no upgrade "
		    "step or no memory");
	if ((rc = sq_exec(sq, "PRAGMA hist.synchronous = FULL",
	    "synchronous")) == STORE_OK &&
	    (rc = sq_exec(sq, "BEGIN IMMEDIATE", "begin")) == STORE_OK) {
		if ((rc = sq_int(sq, "PRAGMA main.user_version", &v)) ==
		    STORE_OK && v == SQ_HIST_FILE_VERSION - 1)
			rc = sq_exec(sq, sql, "copy history to the history "
			    "file");
		rc = schema_end(sq, rc);
	}
	free(sql);
	if (rc == STORE_OK)
		rc = sq_exec(sq, "PRAGMA hist.synchronous = NORMAL",
		    "synchronous");
	return rc == STORE_OK ? STORE_OK : STORE_ERR;
}

/* Rows of the main file's history tables that the history file lacks. */
static const char sq_hist_left[] =
    "SELECT (SELECT count(*) FROM main.History AS m WHERE NOT EXISTS "
    "(SELECT 1 FROM hist.History AS h WHERE h.smid = m.smid)) + "
    "(SELECT count(*) FROM main.HistoryConv AS m WHERE NOT EXISTS "
    "(SELECT 1 FROM hist.HistoryConv AS h WHERE h.userid = m.userid "
    "AND h.conv = m.conv AND h.last >= m.last))";

/* Copies when the main file holds rows the history file lacks (3 above). */
#define SQ_COPY_TRIES	3

/*
 * Create or check the schema.  Under BEGIN IMMEDIATE so that of
 * several processes starting at once one creates it and the others
 * find it done.
 */
static int
schema_once(struct sq *sq)
{
	sqlite3_int64	 v, n;
	int		 tries;

	/*
	 * Outside a transaction: these cannot change inside one.  History
	 * commits skip the fsync (synchronous NORMAL: a power loss may
	 * take the last ones, the file stays whole).
	 */
	if (sq_exec(sq, "PRAGMA journal_mode = WAL", "journal mode") ||
	    sq_exec(sq, "PRAGMA synchronous = FULL", "synchronous") ||
	    sq_exec(sq, "PRAGMA hist.journal_mode = WAL", "journal mode") ||
	    sq_exec(sq, "PRAGMA hist.synchronous = NORMAL", "synchronous") ||
	    sq_exec(sq, "PRAGMA foreign_keys = ON", "foreign keys"))
		return STORE_ERR;

	/* an older file: steps 1 and 2 above, each committed on its own */
	if (sq_upgrade_main(sq) != STORE_OK)
		return STORE_ERR;
	for (tries = 1;; tries++) {
		if (sq_int(sq, "PRAGMA main.user_version", &v) ||
		    (v == SQ_HIST_FILE_VERSION - 1 &&
		    sq_upgrade_copy(sq) != STORE_OK))
			return STORE_ERR;
		if (sq_exec(sq, "BEGIN IMMEDIATE", "begin"))
			return STORE_ERR;
		if (sq_int(sq, "PRAGMA main.user_version", &v))
			goto fail;
		if (v != SQ_HIST_FILE_VERSION - 1)
			break;
		if (sq_int(sq, sq_hist_left, &n))
			goto fail;
		if (n == 0)
			break;
		if (tries == SQ_COPY_TRIES) {
			store_set_error(&sq->st, "%lld history rows of the "
			    "main file still missing from the history file "
			    "after %d copies", (long long)n, tries);
			goto fail;
		}
		sqlite3_exec(sq->db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (v > SQ_SCHEMA_VERSION) {
		store_set_error(&sq->st, "schema version %lld is newer than "
		    "this chatd knows (%d): upgrade chatd", (long long)v,
		    SQ_SCHEMA_VERSION);
		goto fail;
	}
	if (v == 0) {
		/* Not ours (or half made by hand): do not guess. */
		if (sq_int(sq, "SELECT count(*) FROM main.sqlite_master", &n))
			goto fail;
		if (n > 0) {
			store_set_error(&sq->st, "file has tables but no "
			    "chatd schema version (PRAGMA user_version is 0)");
			goto fail;
		}
	} else if (v < SQ_HIST_FILE_VERSION - 1) {
		/* versions only grow, and step 1 was committed */
		store_set_error(&sq->st, "schema version %lld after its "
		    "upgrade", (long long)v);
		goto fail;
	}
	/* the steps after the history file's, then the new tables */
	if (v > 0 && sq_upgrade(sq, v < SQ_HIST_FILE_VERSION ?
	    SQ_HIST_FILE_VERSION : (int)v, SQ_SCHEMA_VERSION) != STORE_OK)
		goto fail;
	if (sq_exec(sq, sqlite_schema, "create schema") ||
	    sq_int(sq, "PRAGMA main.user_version", &v))
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

/*
 * The history file's name beside path ("<path>-history"; ":memory:" for
 * an in-memory store), as a URI that opens it read-only when ro (the
 * connection takes URIs): NULL on no memory.
 */
static char *
sq_hist_name(const char *path, int ro)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const char		*sfx = "-history";
	char			*s, *o;
	size_t			 len = strlen(path);
	const unsigned char	*p;

	if (strcmp(path, ":memory:") == 0)
		return strdup(path);
	if (!ro) {
		if ((s = malloc(len + strlen(sfx) + 1)) != NULL)
			snprintf(s, len + strlen(sfx) + 1, "%s%s", path, sfx);
		return s;
	}
	/* "file:" + each byte as %XX at worst + sfx + "?mode=ro" */
	if ((s = malloc(5 + 3 * len + strlen(sfx) + 9)) == NULL)
		return NULL;
	o = s + snprintf(s, 6, "file:");
	for (p = (const unsigned char *)path; *p != '\0'; p++)
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("/._-~", *p) != NULL)
			*o++ = (char)*p;
		else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	snprintf(o, strlen(sfx) + 9, "%s?mode=ro", sfx);
	return s;
}

/*
 * ATTACH path's history file AS hist, read-only when ro (its name
 * bound, never pasted): STORE_OK, or STORE_ERR with err set.
 */
static int
sq_attach(struct sq *sq, const char *path, int ro, char *err, size_t errlen)
{
	sqlite3_stmt	*s = NULL;
	char		*name;
	int		 rc;

	if ((name = sq_hist_name(path, ro)) == NULL)
		rc = store_set_error(&sq->st, "out of memory");
	else if ((rc = sqlite3_prepare_v2(sq->db, "ATTACH ?1 AS hist", -1,
	    &s, NULL)) != SQLITE_OK)
		rc = sq_fail(sq, NULL, rc, "attach");
	else {
		sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		rc = rc == SQLITE_DONE ? STORE_OK : sq_fail(sq, NULL, rc,
		    "attach");
	}
	sqlite3_finalize(s);
	free(name);
	if (rc != STORE_OK)
		snprintf(err, errlen, "sqlite: %s-history: %s", path,
		    sq->st.err);
	return rc;
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
	const char	*sql;
	char		*hname = NULL;
	int		 rc, i;

	if (path[0] == '\0') {
		snprintf(err, errlen, "sqlite: no file name (sqlite:PATH)");
		return NULL;
	}
	if (sq_create_file(path, err, errlen) == -1)
		return NULL;
	if ((hname = sq_hist_name(path, 0)) == NULL) {
		snprintf(err, errlen, "sqlite: out of memory");
		return NULL;
	}
	rc = sq_create_file(hname, err, errlen);
	free(hname);
	if (rc == -1)
		return NULL;
	if ((sq = calloc(1, sizeof(*sq))) == NULL) {
		snprintf(err, errlen, "sqlite: out of memory");
		return NULL;
	}
	sq->st.ops = &sqlite_ops;
	sq->st.seed = (unsigned int)getpid();

	/* URIs for the read-only attach; path is a plain name */
	rc = sqlite3_open_v2(path, &sq->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "sqlite: %s: %s", path, sq->db ?
		    sqlite3_errmsg(sq->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(sq->db, 1);
	sqlite3_busy_timeout(sq->db, opts->busy_timeout_ms);
	if (sq_attach(sq, path, 0, err, errlen) != STORE_OK)
		goto fail;

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
	/* a reader: the history file again, read-only (see the top) */
	if (opts->hist == STORE_HIST_READER && strcmp(path, ":memory:") != 0) {
		if (sq_exec(sq, "DETACH hist", "detach") != STORE_OK) {
			snprintf(err, errlen, "sqlite: %s", sq->st.err);
			goto fail;
		}
		if (sq_attach(sq, path, 1, err, errlen) != STORE_OK)
			goto fail;
	}

	for (i = 0; i < Q_MAX; i++) {
		if ((sql = store_sql(sq_sql, i)) == NULL)
			continue;	/* a MySQL statement */
		/* the history thread's: deferred (see the top) */
		if (i == Q_BEGIN && opts->hist == STORE_HIST_WRITER)
			sql = sq_sql[Q_BEGIN_READ];
		rc = sqlite3_prepare_v3(sq->db, sql, -1,
		    SQLITE_PREPARE_PERSISTENT, &sq->q[i], NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "sqlite: %s: prepare \"%s\": %s",
			    path, sql, sqlite3_errmsg(sq->db));
			goto fail;
		}
	}
	return &sq->st;

 fail:
	sq_free(sq);
	return NULL;
}

/* ---- resume token generations (TokenGen) ---- */

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
	sqlite3_stmt	*s = sq->q[Q_TOKEN_GEN];	/* every token login */
	int		 rc;

	if ((rc = sq_bind_ints(sq, s, STORE_INTS(uid), "token generation")) !=
	    STORE_OK)
		return rc;
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sq_fail(sq, s, rc, "token generation");
	*gen = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
	sq_done(s);
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

/*
 * A login's reads in one read transaction: SQLite takes and drops its
 * locks (fcntl calls and the WAL read mark) once, not per statement.
 * Nothing to do when a transaction is already open or was rolled back.
 */
static void
sqlite_read_snapshot(struct store *st, int on)
{
	struct sq	*sq = (struct sq *)st;

	if (on) {
		if (sqlite3_get_autocommit(sq->db)) {
			(void)sqlite3_step(sq->q[Q_BEGIN_READ]);
			sqlite3_reset(sq->q[Q_BEGIN_READ]);
		}
	} else
		sq_rollback(sq);	/* it only read: the same as COMMIT */
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
	.history_add = sqlite_history_add,
	.history_fetch = sqlite_history_fetch,
	.history_prune = sqlite_history_prune,
	.resume_fetch = sqlite_resume_fetch,
	.history_forget = sqlite_history_forget,
	.account_purge = sqlite_account_purge,
	.read_snapshot = sqlite_read_snapshot,
};
