/*
 * check_tmp.h - a private temporary directory for a Check test case
 * (plain files only), and the small text helpers its tests share.
 */
#ifndef CHATD_CHECK_TMP_H
#define CHATD_CHECK_TMP_H

#include <stddef.h>

/* Make $TMPDIR/<prefix>.XXXXXX (a checked fixture's setup). */
void		 tmpdir_setup(const char *prefix);
/* Remove it and the files in it (the fixture's teardown). */
void		 tmpdir_teardown(void);
/* Its path. */
const char	*tmp_dir(void);
/* name inside it; the path is kept until the fourth call after. */
const char	*tmp_path(const char *name);
/* A whole file as a NUL-terminated string; the caller frees it. */
char		*tmp_read_all(const char *path);
int		 text_nlines(const char *s);
/* The longest line's length, its newline counted. */
size_t		 text_max_line(const char *s);

#endif
