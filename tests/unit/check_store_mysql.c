/*
 * check_store_mysql.c - what only the MySQL backend has: the URL, the
 * schema check, the connection pool and its behaviour when the server
 * goes away, hangs or drops idle connections.
 *
 * Needs a private server from scripts/mariadb-private (run through
 * tests/unit/mysql_pool_test.sh): STORE_SPEC, MYSQL_PORT, MYSQL_SOCKET,
 * MYSQL_PASSWORD, MYSQL_ROOT_PASSWORD, plus MDB_SCRIPT and MDB_DIR so
 * the tests can stop and start the server.  Without them: skipped (77).
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

#include "store.h"

static const char	*spec, *port, *sock, *pw, *rootpw, *script, *dir;

static double
now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run SQL as root over the socket; the test fails if it does. */
static void
root_sql(const char *fmt, ...)
{
	MYSQL	*my;
	char	 sql[1024];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	ck_assert_ptr_nonnull(my = mysql_init(NULL));
	ck_assert_msg(mysql_real_connect(my, "localhost", "root", rootpw,
	    NULL, 0, sock, 0) != NULL, "root: %s", mysql_error(my));
	ck_assert_msg(mysql_query(my, sql) == 0, "%s: %s", sql,
	    mysql_error(my));
	mysql_close(my);
}

/* One integer from a query run as root. */
static long
root_int(const char *sql)
{
	MYSQL		*my;
	MYSQL_RES	*res;
	MYSQL_ROW	 row;
	long		 v;

	ck_assert_ptr_nonnull(my = mysql_init(NULL));
	ck_assert_msg(mysql_real_connect(my, "localhost", "root", rootpw,
	    NULL, 0, sock, 0) != NULL, "root: %s", mysql_error(my));
	ck_assert_msg(mysql_query(my, sql) == 0, "%s: %s", sql,
	    mysql_error(my));
	ck_assert_ptr_nonnull(res = mysql_store_result(my));
	ck_assert_ptr_nonnull(row = mysql_fetch_row(res));
	v = row[0] != NULL ? atol(row[0]) : -1;
	mysql_free_result(res);
	mysql_close(my);
	return v;
}

static void
server(const char *verb)
{
	char	 cmd[1024];

	snprintf(cmd, sizeof(cmd), "'%s' %s '%s' >/dev/null", script, verb,
	    dir);
	ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
}

static pid_t
server_pid(void)
{
	char	 path[600];
	FILE	*f;
	long	 pid = 0;

	snprintf(path, sizeof(path), "%s/pid", dir);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ck_assert_int_eq(fscanf(f, "%ld", &pid), 1);
	fclose(f);
	return (pid_t)pid;
}

static struct store *
open_opts(const char *s, struct store_opts *o)
{
	struct store	*st;
	char		 err[256];

	st = store_open(s, o, err, sizeof(err));
	ck_assert_msg(st != NULL, "store_open %s: %s", s, err);
	ck_assert_str_eq(store_kind(st), "mysql");
	return st;
}

static int32_t
mkuser(struct store *st)
{
	static unsigned int	 n;
	char			 name[64];
	int32_t			 id;
	int			 len, rc;

	len = snprintf(name, sizeof(name), "pool_%d_%ld_%u", (int)getpid(),
	    (long)time(NULL), n++);
	rc = store_user_create(st, name, (size_t)len, "h", &id);
	ck_assert_msg(rc == STORE_OK, "create: %d %s", rc, store_error(st));
	return id;
}

static void
get_ok(struct store *st, int32_t id)
{
	struct store_user	 u;
	int			 rc;

	rc = store_user_get(st, id, &u);
	ck_assert_msg(rc == STORE_OK, "get: %d %s", rc, store_error(st));
	ck_assert_int_eq(u.id, id);
	store_user_clear(&u);
}

/* The server restarts between two calls: the second just works. */
START_TEST(test_restart)
{
	struct store_opts	 o;
	struct store		*st;
	struct store_msg_list	 l;
	int32_t			 id;

	memset(&o, 0, sizeof(o));
	o.pool_init = 3;
	o.pool_max = 3;
	st = open_opts(spec, &o);
	id = mkuser(st);
	get_ok(st, id);

	server("halt");
	server("start");
	get_ok(st, id);
	/* A write that is not idempotent, on a fresh connection too. */
	server("halt");
	server("start");
	ck_assert_int_eq(store_offline_add(st, &id, 1, "after", 5), STORE_OK);
	ck_assert_int_eq(store_offline_fetch(st, id, 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 1);
	store_msg_list_free(&l);
	ck_assert_int_eq(store_ping(st), 0);
	store_close(st);
}
END_TEST

/* The server is down: calls fail fast with a clear error, then recover. */
START_TEST(test_down)
{
	struct store_opts	 o;
	struct store		*st;
	struct store_user	 u;
	char			 err[256];
	double			 t;
	int32_t			 id;
	int			 rc;

	memset(&o, 0, sizeof(o));
	o.connect_timeout_ms = 1000;
	st = open_opts(spec, &o);
	id = mkuser(st);

	server("halt");
	t = now();
	rc = store_user_get(st, id, &u);
	t = now() - t;
	ck_assert_int_eq(rc, STORE_ERR);
	ck_assert_msg(strstr(store_error(st), "database unavailable") != NULL,
	    "error: %s", store_error(st));
	ck_assert_msg(t < 2.5, "took %.2f s", t);
	ck_assert_int_eq(store_ping(st), -1);
	ck_assert_int_eq(store_user_create(st, "x", 1, "h", &id), STORE_ERR);

	/* Opening fails, with the reason. */
	err[0] = '\0';
	ck_assert_ptr_null(store_open(spec, &o, err, sizeof(err)));
	ck_assert_msg(strstr(err, "database unavailable") != NULL, "err: %s",
	    err);

	server("start");
	ck_assert_int_eq(store_ping(st), 0);
	get_ok(st, id);
	store_close(st);
}
END_TEST

/*
 * Whether every thread of pid is stopped: kill() returns before they
 * all are, and a thread still running would answer the next query.
 */
static int
all_stopped(pid_t pid)
{
	char		 path[300], line[512], *p;
	DIR		*d;
	struct dirent	*de;
	FILE		*f;
	int		 stopped = 1;

	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	if ((d = opendir(path)) == NULL)
		return 0;
	while (stopped && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/stat",
		    (long)pid, de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;		/* the thread ended */
		/* the state follows the command's closing parenthesis */
		if (fgets(line, sizeof(line), f) != NULL &&
		    (p = strrchr(line, ')')) != NULL && p[1] == ' ' &&
		    p[2] != 'T' && p[2] != 't')
			stopped = 0;
		fclose(f);
	}
	closedir(d);
	return stopped;
}

/* A hung server (SIGSTOP) costs at most about the timeouts. */
START_TEST(test_hung)
{
	struct store_opts	 o;
	struct store		*st;
	struct store_user	 u;
	double			 t;
	pid_t			 pid;
	int32_t			 id;
	int			 rc;

	memset(&o, 0, sizeof(o));
	o.connect_timeout_ms = 1000;
	o.query_timeout_ms = 1000;
	st = open_opts(spec, &o);
	id = mkuser(st);

	pid = server_pid();
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	for (t = now(); !all_stopped(pid) && now() - t < 5;)
		usleep(1000);
	ck_assert_msg(all_stopped(pid), "the server did not stop");
	t = now();
	rc = store_user_get(st, id, &u);
	t = now() - t;
	kill(pid, SIGCONT);
	ck_assert_int_eq(rc, STORE_ERR);
	ck_assert_msg(strstr(store_error(st), "database unavailable") != NULL,
	    "error: %s", store_error(st));
	/* One read timeout, then one connect attempt. */
	ck_assert_msg(t < 4.5, "took %.2f s", t);
	get_ok(st, id);
	store_close(st);
}
END_TEST

/* The server drops idle connections (wait_timeout): we do not notice. */
START_TEST(test_wait_timeout)
{
	struct store		*st;
	struct store_opts	 o;
	int32_t			 id;

	root_sql("SET GLOBAL wait_timeout = 2");
	memset(&o, 0, sizeof(o));
	o.pool_init = 2;
	st = open_opts(spec, &o);
	id = mkuser(st);
	get_ok(st, id);
	sleep(3);
	get_ok(st, id);
	sleep(3);
	ck_assert_int_eq(store_friend_add(st, id, mkuser(st)), STORE_OK);
	root_sql("SET GLOBAL wait_timeout = 28800");
	store_close(st);
}
END_TEST

/*
 * The server's count of chatd's connections, once it equals want or
 * after `secs` seconds: a closed connection leaves PROCESSLIST some time
 * after the client returned (sooner or later with the machine's load).
 */
static long
chatd_conns(long want, double secs)
{
	double	 end = now() + secs;
	long	 n;

	for (;;) {
		n = root_int("SELECT COUNT(*) FROM "
		    "information_schema.PROCESSLIST WHERE USER = 'chatd'");
		if (n == want || now() > end)
			return n;
		usleep(50 * 1000);
	}
}

/* pool_init connections at open; idle ones closed after pool_idle_sec. */
START_TEST(test_pool_idle)
{
	struct store		*st;
	struct store_opts	 o;
	double			 t0;
	int32_t			 id;
	long			 n;

	memset(&o, 0, sizeof(o));
	o.pool_init = 3;
	o.pool_max = 4;
	o.pool_idle_sec = 2;
	/* the earlier tests' processes are gone: their connections go too */
	n = chatd_conns(0, 10);
	t0 = now();
	st = open_opts(spec, &o);
	ck_assert_int_eq(chatd_conns(n + 3, 10), n + 3);
	id = mkuser(st);
	get_ok(st, id);
	/* on a loaded machine the pool may already have found them idle */
	if (now() - t0 < o.pool_idle_sec - 0.2)
		ck_assert_int_eq(chatd_conns(n + 3, 0), n + 3);
	sleep(o.pool_idle_sec + 2);
	get_ok(st, id);
	/* All three idle too long: closed, one new one used. */
	ck_assert_int_eq(chatd_conns(n + 1, 10), n + 1);
	store_close(st);
	ck_assert_int_eq(chatd_conns(n, 10), n);
}
END_TEST

/* A row locked by someone else for a while: the call waits and retries. */
START_TEST(test_lock_wait)
{
	struct store_opts	 o;
	struct store		*st;
	char			 q[128];
	double			 t;
	pid_t			 pid;
	int			 p[2], status, rc;
	int32_t			 id, other;
	int64_t			 nf;

	memset(&o, 0, sizeof(o));
	o.query_timeout_ms = 2000;	/* lock wait timeout 1 s */
	st = open_opts(spec, &o);
	id = mkuser(st);
	other = mkuser(st);

	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		MYSQL	*my;

		/* Hold the row 2.5 s: longer than one lock wait. */
		close(p[0]);
		if ((my = mysql_init(NULL)) == NULL ||
		    mysql_real_connect(my, "localhost", "root", rootpw,
		    "chatd_test", 0, sock, 0) == NULL ||
		    mysql_query(my, "START TRANSACTION") != 0)
			_exit(1);
		snprintf(q, sizeof(q), "SELECT * FROM User WHERE id = %d "
		    "FOR UPDATE", (int)id);
		if (mysql_query(my, q) != 0)
			_exit(1);
		mysql_free_result(mysql_store_result(my));
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		usleep(2500 * 1000);
		mysql_close(my);
		_exit(0);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], q, 1), 1);
	t = now();
	/* the foreign key check needs a shared lock on the user row */
	rc = store_friend_add(st, other, id);
	t = now() - t;
	ck_assert_msg(rc == STORE_OK, "%d %s", rc, store_error(st));
	/* the upper bound leaves room for a loaded machine */
	ck_assert_msg(t > 1.5 && t < 8, "took %.2f s", t);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(store_count_friends(st, id, &nf), STORE_OK);
	ck_assert_int_eq(nf, 1);
	store_close(st);
}
END_TEST

/* A connection killed by the server is replaced. */
START_TEST(test_killed)
{
	struct store		*st;
	int32_t			 id;

	st = open_opts(spec, NULL);
	id = mkuser(st);
	{
		MYSQL		*my;
		MYSQL_RES	*res;
		MYSQL_ROW	 row;

		/* Kill every chatd session (ours is the only one). */
		ck_assert_ptr_nonnull(my = mysql_init(NULL));
		ck_assert(mysql_real_connect(my, "localhost", "root", rootpw,
		    NULL, 0, sock, 0) != NULL);
		ck_assert_int_eq(mysql_query(my, "SELECT ID FROM "
		    "information_schema.PROCESSLIST WHERE USER = 'chatd'"), 0);
		ck_assert_ptr_nonnull(res = mysql_store_result(my));
		while ((row = mysql_fetch_row(res)) != NULL) {
			char	 q[64];

			snprintf(q, sizeof(q), "KILL CONNECTION %s", row[0]);
			mysql_query(my, q);
		}
		mysql_free_result(res);
		mysql_close(my);
	}
	get_ok(st, id);
	store_close(st);
}
END_TEST

START_TEST(test_url)
{
	struct store_opts	 o;
	struct store		*st;
	char			 s[512], err[256];
	static const char *const bad[] = {
		"mysql://chatd@127.0.0.1",		/* no database */
		"mysql://chatd@127.0.0.1/",		/* empty database */
		"mysql://127.0.0.1/db",			/* no user */
		"mysql://chatd@127.0.0.1:0/db",
		"mysql://chatd@127.0.0.1:65536/db",
		"mysql://chatd@127.0.0.1:33x/db",
		"mysql://chatd:p%4@127.0.0.1/db",	/* short escape */
		"mysql://chatd:p%zz@127.0.0.1/db",
		"mysql://chatd:p%00@127.0.0.1/db",
		"mysql://chatd@127.0.0.1/db?sock=/x",	/* unknown option */
		"mysql://chatd@/db",			/* no host, no socket */
		"mysql://chatd@[::1/db",
	};
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(store_open(bad[i], NULL, err, sizeof(err)) ==
		    NULL, "%s opened", bad[i]);
		ck_assert_msg(strstr(err, "URL") != NULL, "%s: %s", bad[i],
		    err);
	}

	/* A user and password full of URL syntax, escaped. */
	root_sql("DROP USER IF EXISTS 'ch@t:d/x'@'127.0.0.1'");
	root_sql("CREATE USER 'ch@t:d/x'@'127.0.0.1' IDENTIFIED BY "
	    "'p@ss/w%%rd:?#&'");
	root_sql("GRANT ALL ON chatd_test.* TO 'ch@t:d/x'@'127.0.0.1'");
	snprintf(s, sizeof(s), "mysql://ch%%40t%%3Ad%%2Fx:p%%40ss%%2Fw%%25rd"
	    "%%3A%%3F%%23%%26@127.0.0.1:%s/chatd_test", port);
	st = open_opts(s, NULL);
	ck_assert_int_eq(store_ping(st), 0);
	store_close(st);

	/* Unix socket; host may be localhost or empty. */
	snprintf(s, sizeof(s), "mysql://chatd:%s@localhost/chatd_test"
	    "?socket=%s", pw, sock);
	st = open_opts(s, NULL);
	ck_assert_int_eq(store_ping(st), 0);
	store_close(st);
	snprintf(s, sizeof(s), "mysql://chatd:%s@/chatd_test?socket=%s", pw,
	    sock);
	st = open_opts(s, NULL);
	store_close(st);

	/* The password file's password wins over the URL's. */
	memset(&o, 0, sizeof(o));
	o.password = pw;
	snprintf(s, sizeof(s), "mysql://chatd:wrong@127.0.0.1:%s/chatd_test",
	    port);
	st = open_opts(s, &o);
	store_close(st);
	o.password = "wrong";
	snprintf(s, sizeof(s), "mysql://chatd:%s@127.0.0.1:%s/chatd_test",
	    pw, port);
	err[0] = '\0';
	ck_assert_ptr_null(store_open(s, &o, err, sizeof(err)));
	ck_assert_msg(strstr(err, "Access denied") != NULL, "err: %s", err);
	ck_assert_msg(strstr(err, "wrong") == NULL, "password shown: %s",
	    err);
}
END_TEST

/* Fresh database: created.  Newer or foreign schema: refused. */
START_TEST(test_schema)
{
	struct store	*st;
	char		 s[512], err[256];

	root_sql("DROP DATABASE IF EXISTS chatd_schema");
	root_sql("CREATE DATABASE chatd_schema");
	root_sql("GRANT ALL ON chatd_schema.* TO 'chatd'@'127.0.0.1'");
	snprintf(s, sizeof(s), "mysql://chatd:%s@127.0.0.1:%s/chatd_schema",
	    pw, port);
	st = open_opts(s, NULL);
	store_close(st);
	ck_assert_int_eq(root_int("SELECT MAX(version) FROM "
	    "chatd_schema.SchemaVersion"), 4);
	st = open_opts(s, NULL);	/* again: nothing to do */
	store_close(st);

	root_sql("INSERT INTO chatd_schema.SchemaVersion VALUES (99)");
	err[0] = '\0';
	ck_assert_ptr_null(store_open(s, NULL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "newer") != NULL, "err: %s", err);

	/* Tables of some other program called User: not ours to touch. */
	root_sql("DROP DATABASE chatd_schema");
	root_sql("CREATE DATABASE chatd_schema");
	root_sql("CREATE TABLE chatd_schema.User (id INT, state TEXT)");
	err[0] = '\0';
	ck_assert_ptr_null(store_open(s, NULL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "SchemaVersion") != NULL, "err: %s", err);
	root_sql("DROP DATABASE chatd_schema");
}
END_TEST

/* Many recipients: rows go in batches, all in one transaction. */
START_TEST(test_offline_many)
{
	struct store		*st;
	struct store_msg_list	 l;
	int32_t			 uids[40], bad[20];
	size_t			 i;

	st = open_opts(spec, NULL);
	for (i = 0; i < 37; i++)
		uids[i] = mkuser(st);
	ck_assert_msg(store_offline_add(st, uids, 37, "hi", 2) == STORE_OK,
	    "offline_add: %s", store_error(st));
	for (i = 0; i < 37; i++) {
		ck_assert_int_eq(store_offline_fetch(st, uids[i], 0, &l),
		    STORE_OK);
		ck_assert_uint_eq(l.n, 1);
		ck_assert_str_eq(l.v[0].text, "hi");
		store_msg_list_free(&l);
	}
	/* One unknown user among 20: nothing stored for anyone. */
	for (i = 0; i < 20; i++)
		bad[i] = uids[i];
	bad[17] = INT32_MAX;
	ck_assert_int_eq(store_offline_add(st, bad, 20, "no", 2),
	    STORE_NOTFOUND);
	ck_assert_int_eq(store_offline_fetch(st, uids[0], 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 1);
	store_msg_list_free(&l);
	store_close(st);
}
END_TEST

static Suite *
mysql_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("store_mysql");
	tc = tcase_create("core");
	/* MariaDB restarts take seconds more on a loaded machine */
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_url);
	tcase_add_test(tc, test_schema);
	tcase_add_test(tc, test_offline_many);
	tcase_add_test(tc, test_pool_idle);
	tcase_add_test(tc, test_killed);
	tcase_add_test(tc, test_lock_wait);
	tcase_add_test(tc, test_wait_timeout);
	tcase_add_test(tc, test_restart);
	tcase_add_test(tc, test_down);
	tcase_add_test(tc, test_hung);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	spec = getenv("STORE_SPEC");
	port = getenv("MYSQL_PORT");
	sock = getenv("MYSQL_SOCKET");
	pw = getenv("MYSQL_PASSWORD");
	rootpw = getenv("MYSQL_ROOT_PASSWORD");
	script = getenv("MDB_SCRIPT");
	dir = getenv("MDB_DIR");
	if (spec == NULL || strncmp(spec, "mysql://", 8) != 0 ||
	    port == NULL || sock == NULL || pw == NULL || rootpw == NULL ||
	    script == NULL || dir == NULL) {
		fprintf(stderr, "check_store_mysql: no private server "
		    "(run tests/unit/mysql_pool_test.sh): skipped\n");
		return 77;
	}

	sr = srunner_create(mysql_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
