/*
 * check_store_util.h - what the store suites (check_store.c,
 * check_history.c) share: the store they run against (STORE_SPEC, else
 * a fresh SQLite file in /tmp removed at exit) and unique names.
 */
#ifndef CHECK_STORE_UTIL_H
#define CHECK_STORE_UTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

extern char	 spec[1024];
extern char	 base[128];	/* /tmp/<prog>.PID: our files */
extern char	 dbpath[512];	/* our own SQLite file, removed at exit */
extern int	 is_sqlite;

/* spec, base, dbpath and is_sqlite for program prog. */
void		 store_test_init(const char *prog);
/*
 * Runs s (CK_VERBOSITY, default normal), then removes our own SQLite
 * file (also what a failed test left behind).  The exit status.
 */
int		 store_test_run(Suite *s);
struct store	*open_spec(const char *s);
struct store	*open_store(void);
/* A name no other test, process or run uses. */
size_t		 uname_make(char *buf, size_t len, const char *tag);
int32_t		 mkuser(struct store *st, const char *tag);
/* path and its -wal, -shm, -journal files. */
void		 rmdb(const char *path);

#endif
