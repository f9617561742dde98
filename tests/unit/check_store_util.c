/* check_store_util.c - the store suites' shared set-up (see the header). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check_store_util.h"

char	 spec[1024];
char	 base[128];
char	 dbpath[512];
int	 is_sqlite;

struct store *
open_spec(const char *s)
{
	struct store	*st;
	char		 err[256];

	st = store_open(s, NULL, err, sizeof(err));
	ck_assert_msg(st != NULL, "store_open %s: %s", s, err);
	return st;
}

struct store *
open_store(void)
{
	return open_spec(spec);
}

size_t
uname_make(char *buf, size_t len, const char *tag)
{
	static unsigned int	 n;
	int			 r;

	r = snprintf(buf, len, "%s_%d_%ld_%u", tag, (int)getpid(),
	    (long)time(NULL), n++);
	ck_assert(r > 0 && (size_t)r < len);
	return (size_t)r;
}

int32_t
mkuser(struct store *st, const char *tag)
{
	char	 name[128];
	size_t	 len;
	int32_t	 id = 0;
	int	 rc;

	len = uname_make(name, sizeof(name), tag);
	rc = store_user_create(st, name, len, "hash", &id);
	ck_assert_msg(rc == STORE_OK, "create %s: %d %s", name, rc,
	    store_error(st));
	ck_assert_int_gt(id, 0);
	return id;
}

void
rmdb(const char *path)
{
	char	 p[600];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-journal", path);
	unlink(p);
}

void
store_test_init(const char *prog)
{
	const char	*e;

	snprintf(base, sizeof(base), "/tmp/%s.%d", prog, (int)getpid());
	if ((e = getenv("STORE_SPEC")) != NULL && e[0] != '\0')
		snprintf(spec, sizeof(spec), "%s", e);
	else {
		snprintf(dbpath, sizeof(dbpath), "%s.db", base);
		snprintf(spec, sizeof(spec), "sqlite:%s", dbpath);
	}
	is_sqlite = strncmp(spec, "sqlite:", 7) == 0;
}

int
store_test_run(Suite *s)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (dbpath[0] != '\0')
		rmdb(dbpath);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
