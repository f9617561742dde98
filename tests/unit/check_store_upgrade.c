/*
 * check_store_upgrade.c - the SQLite upgrade to the history file
 * (schema 5) stopped at every write and started again: every row of
 * History and HistoryConv is in the history file once, as after an
 * upgrade that ran through.
 *
 * A crash is staged by a VFS that wraps SQLite's own and ends the
 * process (_exit, as a SIGKILL would: what write() took stays) before
 * its n-th write or truncation; the store under test is the real one,
 * opened in a child.  The old files are made from the frozen schemas in
 * tests/integ/data (found through $srcdir, as make check sets it).
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check_run.h"
#include "check_tmp.h"
#include "store.h"

#define CRASHED		77	/* a child's exit status: the staged crash */
#define ROWS_1TO1	40	/* History rows of one-to-one chats */
#define ROWS_GROUP	20	/* and of group chats */
#define MAX_WRITES	5000	/* more than any upgrade of these files takes */

static char	 orig[PATH_MAX];	/* the old file, made once per test */
static char	 work[PATH_MAX];	/* the one upgraded */
static char	 hwork[PATH_MAX];	/* its history file */

/* SQLite's unix VFS gives a database, a WAL and a journal other methods */
#define IO_KINDS	4

static sqlite3_vfs		 crash_vfs;
static sqlite3_vfs		*real_vfs;
static sqlite3_io_methods	 crash_io[IO_KINDS];
static const sqlite3_io_methods	*real_io[IO_KINDS];
static long			 crash_left;

/* f's own methods, under ours */
static const sqlite3_io_methods *
real_of(sqlite3_file *f)
{
	int	 i;

	for (i = 0; i < IO_KINDS; i++)
		if (f->pMethods == &crash_io[i])
			return real_io[i];
	abort();
}

static int
crash_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 off)
{
	if (--crash_left < 0)
		_exit(CRASHED);
	return real_of(f)->xWrite(f, b, n, off);
}

static int
crash_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	if (--crash_left < 0)
		_exit(CRASHED);
	return real_of(f)->xTruncate(f, size);
}

static int
crash_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
    int *out)
{
	int	 i, rc;

	(void)vfs;
	rc = real_vfs->xOpen(real_vfs, name, f, flags, out);
	if (rc != SQLITE_OK || f->pMethods == NULL)
		return rc;
	for (i = 0; i < IO_KINDS && real_io[i] != NULL &&
	    real_io[i] != f->pMethods; i++)
		;
	if (i == IO_KINDS)
		_exit(3);
	if (real_io[i] == NULL) {
		real_io[i] = f->pMethods;
		crash_io[i] = *f->pMethods;
		crash_io[i].xWrite = crash_write;
		crash_io[i].xTruncate = crash_truncate;
	}
	f->pMethods = &crash_io[i];
	return rc;
}

/* In a child: this process's SQLite ends it before its n-th write. */
static void
crash_after(long n)
{
	real_vfs = sqlite3_vfs_find(NULL);
	crash_vfs = *real_vfs;
	crash_vfs.zName = "crash";
	crash_vfs.xOpen = crash_open;
	crash_left = n;
	if (sqlite3_vfs_register(&crash_vfs, 1) != SQLITE_OK)
		_exit(2);
}

static void
rm_files(const char *path)
{
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
	char	 p[PATH_MAX + 16];
	size_t	 i;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
		unlink(p);
	}
}

static void
setup(void)
{
	tmpdir_setup("check_store_upgrade");
	snprintf(orig, sizeof(orig), "%s", tmp_path("old.db"));
	snprintf(work, sizeof(work), "%s", tmp_path("chat.db"));
	snprintf(hwork, sizeof(hwork), "%s", tmp_path("chat.db-history"));
}

static void
teardown(void)
{
	tmpdir_teardown();
}

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char	*err = NULL;

	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK,
	    "%s: %s", sql, err ? err : "?");
}

static char *
read_file(const char *path)
{
	FILE	*f;
	char	*s;
	long	 n;

	ck_assert_msg((f = fopen(path, "r")) != NULL, "%s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	ck_assert_int_ge(n = ftell(f), 1);
	rewind(f);
	ck_assert_ptr_nonnull(s = malloc((size_t)n + 1));
	ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	return s;
}

/*
 * orig made by the frozen schema of version v (3 or 4) with users, a
 * group and History rows (and, from 4, HistoryConv rows), in one file
 * (rollback journal: nothing beside it).
 */
static void
make_old(int v)
{
	const char	*src = getenv("srcdir");
	char		 p[512], sql[256], *schema;
	sqlite3		*db;
	int		 i, a, b;

	snprintf(p, sizeof(p), "%s/tests/integ/data/schema-v%d-sqlite.sql",
	    src != NULL ? src : ".", v);
	schema = read_file(p);
	rm_files(orig);
	ck_assert_int_eq(sqlite3_open(orig, &db), SQLITE_OK);
	exec_ok(db, schema);
	free(schema);
	exec_ok(db, "BEGIN");
	for (i = 1; i <= 4; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO User (name, pwhash, "
		    "created) VALUES ('u%d', 'x', 1)", i);
		exec_ok(db, sql);
	}
	exec_ok(db, "INSERT INTO AllGroup (groupname, creator) "
	    "VALUES ('g', 1)");
	exec_ok(db, "INSERT INTO GroupUser (groupid, userid, grouprole, "
	    "joined) VALUES (1, 1, 'creator', 1), (1, 2, 'normal', 2)");
	for (i = 0; i < ROWS_1TO1 + ROWS_GROUP; i++) {
		a = 1 + i % 3;
		b = a + 1;
		if (i < ROWS_1TO1)
			snprintf(sql, sizeof(sql), "INSERT INTO History VALUES "
			    "(%d, %lld, %d, %d, 'chat %d')", 100 + i,
			    (long long)a << 32 | b, i % 2 ? a : b,
			    1000 + i, i);
		else
			snprintf(sql, sizeof(sql), "INSERT INTO History VALUES "
			    "(%d, -1, %d, %d, 'group %d')", 100 + i, a,
			    1000 + i, i);
		exec_ok(db, sql);
	}
	if (v >= 4)
		exec_ok(db, "INSERT INTO HistoryConv (userid, conv, last) "
		    "SELECT CASE WHEN abs(sender) = (conv >> 32) THEN "
		    "conv & 4294967295 ELSE conv >> 32 END, conv, "
		    "max(created) FROM History WHERE conv >= 0 GROUP BY 1, 2");
	exec_ok(db, "COMMIT");
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

/* to: a copy of from, alone (no -wal, -shm or history file beside it) */
static void
copy_file(const char *from, const char *to)
{
	char	*buf;
	FILE	*f;
	long	 n;

	rm_files(to);
	rm_files(hwork);
	ck_assert_ptr_nonnull(f = fopen(from, "rb"));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	ck_assert_ptr_nonnull(buf = malloc((size_t)n));
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	ck_assert_ptr_nonnull(f = fopen(to, "wb"));
	ck_assert_int_eq(fwrite(buf, 1, (size_t)n, f), (size_t)n);
	ck_assert_int_eq(fclose(f), 0);
	free(buf);
}

/* Open (and so upgrade) path's store: 0, or -1 with the error printed. */
static int
open_close(const char *path)
{
	struct store	*st;
	char		 spec[256], err[256];

	snprintf(spec, sizeof(spec), "sqlite:%s", path);
	if ((st = store_open(spec, NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "store_open %s: %s\n", path, err);
		return -1;
	}
	store_close(st);
	return 0;
}

/*
 * The upgrade of work in a child that crashes before its n-th write:
 * 1 when it crashed, 0 when it ran through first.
 */
static int
upgrade_crashing(long n)
{
	pid_t	 pid;
	int	 status;

	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0) {
		crash_after(n);
		_exit(open_close(work) == 0 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "child status %d", status);
	ck_assert_msg(WEXITSTATUS(status) == 0 ||
	    WEXITSTATUS(status) == CRASHED, "upgrade failed (write %ld)", n);
	return WEXITSTATUS(status) == CRASHED;
}

/* One text from a query, malloc'ed ("" for NULL). */
static char *
query_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt	*s;
	const char	*t;
	char		*out;

	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK,
	    "%s: %s", sql, sqlite3_errmsg(db));
	ck_assert_msg(sqlite3_step(s) == SQLITE_ROW, "%s: %s", sql,
	    sqlite3_errmsg(db));
	t = (const char *)sqlite3_column_text(s, 0);
	ck_assert_ptr_nonnull(out = strdup(t != NULL ? t : ""));
	sqlite3_finalize(s);
	return out;
}

/*
 * What an upgraded file holds, as one text: its version, the history
 * tables left in the main file (none) and every row of the history
 * file, in order.  Both files must pass their integrity check.
 */
static char *
dump(const char *path)
{
	static const char q[] =
	    "SELECT (SELECT user_version FROM pragma_user_version) || '|' || "
	    "(SELECT count(*) FROM main.sqlite_master WHERE name IN "
	    "('History', 'HistoryConv')) || '|' || "

	    "(SELECT count(*) FROM hist.History) || '|' || "
	    "(SELECT ifnull(group_concat(r, ';'), '') FROM (SELECT smid || ',' || conv "
	    "|| ',' || sender || ',' || created || ',' || message AS r "
	    "FROM hist.History ORDER BY smid)) || '|' || "
	    "(SELECT ifnull(group_concat(r, ';'), '') FROM (SELECT userid || ',' || conv "
	    "|| ',' || last AS r FROM hist.HistoryConv ORDER BY userid, "
	    "conv))";
	sqlite3	*db;
	char	 sql[512], *out;

	ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	snprintf(sql, sizeof(sql), "ATTACH '%s-history' AS hist", path);
	exec_ok(db, sql);
	out = query_text(db, "PRAGMA main.integrity_check");
	ck_assert_msg(strcmp(out, "ok") == 0, "%s: %s", path, out);
	free(out);
	out = query_text(db, "PRAGMA hist.integrity_check");
	ck_assert_msg(strcmp(out, "ok") == 0, "%s-history: %s", path, out);
	free(out);
	out = query_text(db, q);
	sqlite3_close(db);
	return out;
}

/* The file an upgrade that ran through makes from orig, dumped. */
static char *
reference(void)
{
	char	 ref[PATH_MAX], href[PATH_MAX], *d;

	snprintf(ref, sizeof(ref), "%s", tmp_path("ref.db"));
	snprintf(href, sizeof(href), "%s", tmp_path("ref.db-history"));
	rm_files(href);
	copy_file(orig, ref);
	ck_assert_int_eq(open_close(ref), 0);
	d = dump(ref);
	/* every row once, nothing left in the main file */
	snprintf(ref, sizeof(ref), "5|0|%d|", ROWS_1TO1 + ROWS_GROUP);
	ck_assert_msg(strncmp(d, ref, strlen(ref)) == 0, "reference: %.200s",
	    d);
	return d;
}

/*
 * For n = 1, 2, ...: a copy of orig upgraded by a child that crashes
 * before its n-th write, then started again (and, when twice, crashed
 * again at the same write first): the result must be the reference.
 */
static void
crash_every_write(int twice)
{
	char	*ref = reference(), *d;
	long	 n, crashes = 0;

	for (n = 1; n < MAX_WRITES; n++) {
		copy_file(orig, work);
		if (!upgrade_crashing(n))
			break;
		crashes++;
		if (twice)
			(void)upgrade_crashing(n);
		ck_assert_int_eq(open_close(work), 0);
		d = dump(work);
		ck_assert_msg(strcmp(d, ref) == 0, "crash before write %ld:\n"
		    "got  %.300s\nwant %.300s", n, d, ref);
		free(d);
	}
	ck_assert_int_lt(n, MAX_WRITES);
	ck_assert_int_gt(crashes, 10);
	fprintf(stderr, "upgrade crashed before each of its %ld writes, "
	    "resumed%s\n", crashes, twice ? " (crashed again first)" : "");
	free(ref);
}

START_TEST(test_v3_crash_every_write)
{
	make_old(3);
	crash_every_write(0);
}
END_TEST

START_TEST(test_v4_crash_every_write)
{
	make_old(4);
	crash_every_write(0);
}
END_TEST

START_TEST(test_v3_crash_twice)
{
	make_old(3);
	crash_every_write(1);
}
END_TEST

/*
 * A version 4 file whose history file holds part of its rows, and an
 * older "last" (an older chatd still wrote after the copy): all are in
 * the history file after the start, once.
 */
START_TEST(test_v4_rows_in_both)
{
	char	*ref, *d, sql[PATH_MAX + 64];
	sqlite3	*db;

	make_old(4);
	ref = reference();
	copy_file(orig, work);
	ck_assert_int_eq(sqlite3_open(work, &db), SQLITE_OK);
	snprintf(sql, sizeof(sql), "ATTACH '%s' AS hist", hwork);
	exec_ok(db, sql);
	exec_ok(db, "CREATE TABLE hist.History (smid INTEGER PRIMARY KEY, "
	    "conv INTEGER NOT NULL, sender INTEGER NOT NULL, created INTEGER "
	    "NOT NULL, message TEXT NOT NULL)");
	exec_ok(db, "CREATE TABLE hist.HistoryConv (userid INTEGER NOT NULL, "
	    "conv INTEGER NOT NULL, last INTEGER NOT NULL, PRIMARY KEY "
	    "(userid, conv)) WITHOUT ROWID");
	exec_ok(db, "INSERT INTO hist.History SELECT * FROM main.History "
	    "WHERE smid % 3 = 0");
	exec_ok(db, "INSERT INTO hist.HistoryConv SELECT userid, conv, "
	    "last - 5 FROM main.HistoryConv");
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	ck_assert_int_eq(open_close(work), 0);
	d = dump(work);
	ck_assert_msg(strcmp(d, ref) == 0, "got  %.300s\nwant %.300s", d, ref);
	free(d);
	free(ref);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("store_upgrade");
	TCase	*tc = tcase_create("sqlite");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_v3_crash_every_write);
	tcase_add_test(tc, test_v4_crash_every_write);
	tcase_add_test(tc, test_v3_crash_twice);
	tcase_add_test(tc, test_v4_rows_in_both);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run(suite());
}
