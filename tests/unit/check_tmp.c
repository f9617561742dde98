/* check_tmp.c - see check_tmp.h. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_tmp.h"

static char	 tdir[PATH_MAX];

void
tmpdir_setup(const char *prefix)
{
	const char	*t = getenv("TMPDIR");

	snprintf(tdir, sizeof(tdir), "%s/%s.XXXXXX",
	    t != NULL && *t != '\0' ? t : "/tmp", prefix);
	ck_assert_ptr_nonnull(mkdtemp(tdir));
}

void
tmpdir_teardown(void)
{
	DIR		*d;
	struct dirent	*de;
	char		 p[sizeof(tdir) + NAME_MAX + 2];

	if ((d = opendir(tdir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", tdir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(tdir);
}

const char *
tmp_dir(void)
{
	return tdir;
}

const char *
tmp_path(const char *name)
{
	static char	 p[4][sizeof(tdir) + NAME_MAX + 2];
	static int	 i;

	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", tdir, name);
	return p[i];
}

char *
tmp_read_all(const char *path)
{
	FILE	*fp;
	char	*s;
	long	 n;

	fp = fopen(path, "r");
	ck_assert_ptr_nonnull(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	s = calloc(1, (size_t)n + 1);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(fread(s, 1, (size_t)n, fp), n);
	fclose(fp);
	return s;
}

int
text_nlines(const char *s)
{
	int	 n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

size_t
text_max_line(const char *s)
{
	size_t	 n, max = 0;

	while (*s != '\0') {
		n = strcspn(s, "\n") + 1;
		if (n > max)
			max = n;
		s += n;
	}
	return max;
}
