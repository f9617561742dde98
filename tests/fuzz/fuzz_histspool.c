/*
 * fuzz_histspool.c - libFuzzer target for the history spool's reading
 * of files a crash or a disk may have damaged (src/server/histspool.c).
 * The first byte splits the rest between the spool's two files; the
 * open must succeed, keep a whole number of sound records (cutting the
 * rest), and every row taken must lie inside its batch, with a length
 * within the bound; once all is done nothing is pending and both files
 * are empty.  Then the same files again under a done record (a sound
 * one, its fields from the input): the same must hold.
 */
#include "config.h"

#include <sys/stat.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32.h"
#include "histspool.h"
#include "log.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

static char	 dir[224], path[256], path2[264], dpath[264];

/* libFuzzer ends with exit() at -max_total_time: leave no files */
static void
cleanup(void)
{
	unlink(path);
	unlink(path2);
	unlink(dpath);
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

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

/*
 * The first file's done record: sound, with the chain and smid of the
 * input's first 12 bytes and an offset within the file (or just past).
 */
static void
put_done(const uint8_t *d, size_t n, size_t split)
{
	uint8_t		 rec[2 * HISTSPOOL_DONE_REC], in[12];
	uint64_t	 off;
	size_t		 i;

	memset(in, 0, sizeof(in));
	for (i = 0; i < sizeof(in) && i < n; i++)
		in[i] = d[i];
	memset(rec, 0, sizeof(rec));
	rec[0] = HISTSPOOL_DONE_MAGIC;
	memcpy(rec + 4, in, 4);				/* chain */
	off = 1 + (in[4] | (uint64_t)in[5] << 8) % (split + 1);
	for (i = 0; i < 8; i++)
		rec[8 + i] = (uint8_t)(off >> (8 * i));
	memcpy(rec + 16, in + 4, 8);			/* smid */
	put32(rec + 28, crc32c_update(0, rec, 28));
	put(dpath, rec, sizeof(rec));
}

/* The spool over path and path2 as they are: the checks above. */
static void
check_spool(size_t n)
{
	struct histspool	*hs;
	struct histspool_batch	 b;
	uint64_t		 kept, taken = 0;
	size_t			 i, rounds;

	hs = histspool_open(path, 0);
	CHECK(hs != NULL);
	kept = histspool_pending(hs);
	CHECK(kept <= n - 1);
	CHECK((uint64_t)(size_of(path) + size_of(path2)) >= kept);
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
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct histspool	*hs;
	uint64_t		 kept;
	size_t			 split;

	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "%s/fuzz_histspool.XXXXXX",
		    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
		CHECK(mkdtemp(dir) != NULL);
		snprintf(path, sizeof(path), "%s/spool", dir);
		snprintf(path2, sizeof(path2), "%s.b", path);
		snprintf(dpath, sizeof(dpath), "%s.done", path);
		atexit(cleanup);
		log_init(NULL, LOG_CRIT);	/* the cuts are expected */
	}
	if (n == 0)
		return 0;
	split = (size_t)d[0] * (n - 1) / 255;
	put(path, d + 1, split);
	put(path2, d + 1 + split, n - 1 - split);

	/* no done record: everything kept */
	unlink(dpath);
	hs = histspool_open(path, 0);
	CHECK(hs != NULL);
	kept = histspool_pending(hs);
	CHECK((uint64_t)(size_of(path) + size_of(path2)) == kept);
	histspool_close(hs);
	check_spool(n);

	put(path, d + 1, split);
	put(path2, d + 1 + split, n - 1 - split);
	put_done(d + 1, n - 1, split);
	check_spool(n);
	return 0;
}
