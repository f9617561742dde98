/*
 * fuzz_histspool.c - libFuzzer target for the history spool's reading
 * of files a crash or a disk may have damaged (src/server/histspool.c).
 * The first byte splits the rest between the spool's two files; the
 * open must succeed, keep a whole number of sound records (cutting the
 * rest), and every row taken must lie inside its batch, with a length
 * within the bound; once all is done nothing is pending and both files
 * are empty.
 */
#include "config.h"

#include <sys/stat.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "histspool.h"
#include "log.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

static char	 dir[224], path[256], path2[264];

/* libFuzzer ends with exit() at -max_total_time: leave no files */
static void
cleanup(void)
{
	unlink(path);
	unlink(path2);
	rmdir(dir);
}

static void
put(const char *p, const uint8_t *d, size_t n)
{
	int	 fd;

	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd != -1);
	CHECK(write(fd, d, n) == (ssize_t)n);
	close(fd);
}

static off_t
size_of(const char *p)
{
	struct stat	 sb;

	CHECK(stat(p, &sb) == 0);
	return sb.st_size;
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct histspool	*hs;
	struct histspool_batch	 b;
	uint64_t		 kept, taken = 0;
	size_t			 split, i, rounds;

	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "%s/fuzz_histspool.XXXXXX",
		    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
		CHECK(mkdtemp(dir) != NULL);
		snprintf(path, sizeof(path), "%s/spool", dir);
		snprintf(path2, sizeof(path2), "%s.b", path);
		atexit(cleanup);
		log_init(NULL, LOG_CRIT);	/* the cuts are expected */
	}
	if (n == 0)
		return 0;
	split = (size_t)d[0] * (n - 1) / 255;
	put(path, d + 1, split);
	put(path2, d + 1 + split, n - 1 - split);

	hs = histspool_open(path, 0);
	CHECK(hs != NULL);
	kept = histspool_pending(hs);
	CHECK(kept <= n - 1);
	CHECK((uint64_t)(size_of(path) + size_of(path2)) == kept);
	for (rounds = 0; rounds <= n / HISTSPOOL_HDR + 1; rounds++) {
		CHECK(histspool_take(hs, 1 + rounds % 7, &b) == 0);
		if (b.n == 0)
			break;
		for (i = 0; i < b.n; i++) {
			CHECK(b.v[i].len <= HISTSPOOL_MAX_TEXT);
			CHECK(b.v[i].text >= b.buf && b.v[i].text + b.v[i].len <=
			    b.buf + b.bytes);
			taken += HISTSPOOL_HDR + b.v[i].len;
		}
		CHECK(histspool_done(hs, &b) == 0);
	}
	/* every record kept is taken, once */
	CHECK(taken == kept);
	CHECK(histspool_pending(hs) == 0);
	CHECK(size_of(path) == 0 && size_of(path2) == 0);
	histspool_close(hs);
	return 0;
}
