/*
 * check_histspool.h - what check_histspool.c shares with the done
 * record's tests (check_histspool_done.c): the spool's files in a fresh
 * directory per test, and rows that derive from their number.
 */
#ifndef CHECK_HISTSPOOL_H
#define CHECK_HISTSPOOL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "histspool.h"

extern char	 path[128];
extern char	 path2[136];		/* the second file */

/* bytes of row i's record */
size_t	 recsize(int64_t i);
/* rows [from, to) appended in one call */
void	 append_rows(struct histspool *hs, int64_t from, int64_t to);
off_t	 fsize_of(const char *p);
/*
 * Take everything waiting: the rows must be from, from+1, ...; how
 * many.  Each batch done, or freed undone.
 */
size_t	 take_all(struct histspool *hs, int64_t from, int done);
/* p's bytes (NUL after them), *len of them */
char	*slurp(const char *p, size_t *len);
/* the log goes to a file of the test's, read back by logged() */
void	 log_to_file(void);
int	 logged(const char *what);

/* check_histspool_done.c's tests */
void	 histspool_done_cases(TCase *tc);

#endif
