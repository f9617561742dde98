/*
 * check_histspool.c - the history spool file (histspool.h) on real
 * files in a private directory: rows come back as appended, once, in
 * order, across appends, a truncation and a reopen; a file cut at any
 * byte or damaged in the middle gives back the whole records before the
 * damage and nothing invented; the pending bound, a full disk
 * (RLIMIT_FSIZE) and a writer and a reader thread at once.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_histspool.h"
#include "check_run.h"
#include "check_tmp.h"
#include "crc32.h"
#include "histspool.h"
#include "log.h"
#include "util.h"

char	 path[128];
char	 path2[136];

static void
setup(void)
{
	tmpdir_setup("check_histspool");
	snprintf(path, sizeof(path), "%s", tmp_path("spool"));
	snprintf(path2, sizeof(path2), "%s.b", path);
}

static void
teardown(void)
{
	tmpdir_teardown();
}

/* row i: fields and a text of i % 37 bytes that all derive from i */
struct rowbuf {
	struct store_hist	 r;
	char			 text[64];
};

static void
mkrow(struct rowbuf *rb, int64_t i)
{
	size_t	 k;

	rb->r.smid = 1000000007LL * i + 1;
	rb->r.sender = (int32_t)(i * 3 + 1);
	rb->r.peer = (int32_t)(i % 2 ? 0 : i + 5);
	rb->r.gid = (int32_t)(i % 2 ? -(i + 9) : 0);
	rb->r.created = 1700000000000LL + i;
	rb->r.len = (size_t)(i % 37);
	for (k = 0; k < rb->r.len; k++)
		rb->text[k] = (char)(i * 7 + k * 13);	/* any byte, NUL too */
	rb->r.text = rb->r.len > 0 ? rb->text : NULL;
}

size_t
recsize(int64_t i)
{
	return HISTSPOOL_HDR + (size_t)(i % 37);
}

static void
check_row(const struct store_hist *got, int64_t i)
{
	struct rowbuf	 want;

	mkrow(&want, i);
	ck_assert_int_eq(got->smid, want.r.smid);
	ck_assert_int_eq(got->sender, want.r.sender);
	ck_assert_int_eq(got->peer, want.r.peer);
	ck_assert_int_eq(got->gid, want.r.gid);
	ck_assert_int_eq(got->created, want.r.created);
	ck_assert_uint_eq(got->len, want.r.len);
	if (want.r.len > 0)
		ck_assert_mem_eq(got->text, want.r.text, want.r.len);
}

/* rows [from, to) appended in one call */
void
append_rows(struct histspool *hs, int64_t from, int64_t to)
{
	struct rowbuf	*rb;
	struct store_hist *v;
	int64_t		 i;

	if (from == to)
		return;
	rb = calloc((size_t)(to - from), sizeof(*rb));
	v = calloc((size_t)(to - from), sizeof(*v));
	ck_assert(rb != NULL && v != NULL);
	for (i = from; i < to; i++) {
		mkrow(&rb[i - from], i);
		v[i - from] = rb[i - from].r;
	}
	ck_assert_int_eq(histspool_append(hs, v, (size_t)(to - from)), 0);
	free(v);
	free(rb);
}

off_t
fsize_of(const char *p)
{
	struct stat	 sb;

	ck_assert_int_eq(stat(p, &sb), 0);
	return sb.st_size;
}

/* the first file's size (the second stays empty unless it is said) */
static off_t
fsize(void)
{
	ck_assert_int_eq(fsize_of(path2), 0);
	return fsize_of(path);
}

/* take everything waiting: the rows must be from, from+1, ...; how many */
size_t
take_all(struct histspool *hs, int64_t from, int done)
{
	struct histspool_batch	 b;
	size_t			 i, n = 0;

	for (;;) {
		ck_assert_int_eq(histspool_take(hs, 1000, &b), 0);
		if (b.n == 0)
			break;
		for (i = 0; i < b.n; i++)
			check_row(&b.v[i], from + (int64_t)(n + i));
		n += b.n;
		if (done)
			ck_assert_int_eq(histspool_done(hs, &b), 0);
		else
			histspool_batch_free(&b);
	}
	return n;
}

/* CRC-32C: the check value, pieces fed in order, every tail length */
START_TEST(test_crc32)
{
	const char	*s = "123456789";
	size_t		 k;

	ck_assert_uint_eq(crc32c_update(0, s, 9), 0xe3069283U);
	for (k = 0; k <= 9; k++)
		ck_assert_uint_eq(crc32c_update(crc32c_update(0, s, k), s + k,
		    9 - k), 0xe3069283U);
	ck_assert_uint_eq(crc32c_update(0, "", 0), 0);
	ck_assert_uint_eq(crc32c_table(0, s, 9), 0xe3069283U);
	/* the instruction and the table agree: any length and alignment */
	{
		unsigned char	 r[300];
		unsigned	 seed = 7;
		size_t		 a, n;

		for (k = 0; k < sizeof(r); k++)
			r[k] = (unsigned char)rand_r(&seed);
		for (a = 0; a < 8; a++)
			for (n = 0; n + a <= sizeof(r); n += 1 + n / 16)
				ck_assert_uint_eq(crc32c_update(5, r + a, n),
				    crc32c_table(5, r + a, n));
	}
	/* 32 zero bytes (RFC 3720, B.4) */
	{
		char	 z[32];

		memset(z, 0, sizeof(z));
		ck_assert_uint_eq(crc32c_update(0, z, sizeof(z)), 0x8a9136aaU);
	}
}
END_TEST

START_TEST(test_roundtrip)
{
	struct histspool	*hs;
	struct histspool_batch	 b;
	uint64_t		 bytes = recsize(0) + recsize(1) + recsize(2);
	size_t			 i;

	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	ck_assert_int_eq(histspool_take(hs, 10, &b), 0);
	ck_assert_uint_eq(b.n, 0);
	append_rows(hs, 0, 3);
	ck_assert_int_eq(fsize(), (off_t)bytes);
	ck_assert_uint_eq(histspool_appended(hs), bytes);
	ck_assert_uint_eq(histspool_pending(hs), bytes);
	ck_assert_int_eq(histspool_take(hs, 10, &b), 0);
	ck_assert_uint_eq(b.n, 3);
	for (i = 0; i < 3; i++)
		check_row(&b.v[i], (int64_t)i);
	/* taken is not done: still pending, nothing taken twice */
	ck_assert_uint_eq(histspool_pending(hs), bytes);
	{
		struct histspool_batch	 b2;

		ck_assert_int_eq(histspool_take(hs, 10, &b2), 0);
		ck_assert_uint_eq(b2.n, 0);
	}
	ck_assert_int_eq(histspool_done(hs, &b), 0);
	ck_assert_ptr_null(b.v);
	ck_assert_uint_eq(histspool_stored(hs), bytes);
	ck_assert_uint_eq(histspool_pending(hs), 0);
	ck_assert_int_eq(fsize(), 0);
	ck_assert_int_eq(histspool_sync(hs), 0);
	/* nothing odd about an empty append */
	ck_assert_int_eq(histspool_append(hs, NULL, 0), 0);
	ck_assert_uint_eq(histspool_appended(hs), bytes);
	histspool_close(hs);
}
END_TEST

START_TEST(test_take_across_appends)
{
	struct histspool	*hs;
	struct histspool_batch	 b[4];
	size_t			 sizes[4] = { 3, 3, 3, 1 }, i, k;
	int64_t			 next = 0;

	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	for (i = 0; i < 5; i++)
		append_rows(hs, (int64_t)i * 2, (int64_t)i * 2 + 2);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(histspool_take(hs, 3, &b[i]), 0);
		ck_assert_uint_eq(b[i].n, sizes[i]);
		for (k = 0; k < b[i].n; k++)
			check_row(&b[i].v[k], next++);
	}
	/* done out of order: the file goes only with the last */
	ck_assert_int_eq(histspool_done(hs, &b[2]), 0);
	ck_assert_int_eq(histspool_done(hs, &b[0]), 0);
	ck_assert_int_eq(histspool_done(hs, &b[3]), 0);
	ck_assert_int_gt(fsize(), 0);
	ck_assert_int_eq(histspool_done(hs, &b[1]), 0);
	ck_assert_int_eq(fsize(), 0);
	ck_assert_uint_eq(histspool_pending(hs), 0);
	histspool_close(hs);
}
END_TEST

START_TEST(test_truncate_monotonic)
{
	struct histspool	*hs;
	struct histspool_batch	 b;
	uint64_t		 a1, s1;

	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	append_rows(hs, 0, 4);
	ck_assert_uint_eq(take_all(hs, 0, 1), 4);
	ck_assert_int_eq(fsize(), 0);
	a1 = histspool_appended(hs);
	s1 = histspool_stored(hs);
	ck_assert_uint_eq(a1, s1);
	/* the next rows start the file again; the counters go on */
	append_rows(hs, 4, 6);
	ck_assert_int_eq(fsize(), (off_t)(recsize(4) + recsize(5)));
	ck_assert_uint_eq(histspool_appended(hs), a1 + recsize(4) +
	    recsize(5));
	ck_assert_uint_eq(histspool_stored(hs), s1);
	ck_assert_int_eq(histspool_take(hs, 1, &b), 0);
	ck_assert_uint_eq(b.n, 1);
	check_row(&b.v[0], 4);
	ck_assert_int_eq(histspool_done(hs, &b), 0);
	/* some done, some not: the file stays */
	ck_assert_int_eq(fsize(), (off_t)(recsize(4) + recsize(5)));
	ck_assert_uint_eq(histspool_stored(hs), s1 + recsize(4));
	append_rows(hs, 6, 7);
	ck_assert_uint_eq(take_all(hs, 5, 1), 2);
	ck_assert_int_eq(fsize(), 0);
	ck_assert_uint_eq(histspool_stored(hs), histspool_appended(hs));
	ck_assert_uint_eq(histspool_appended(hs), a1 + recsize(4) +
	    recsize(5) + recsize(6));
	histspool_close(hs);
}
END_TEST

char *
slurp(const char *p, size_t *len)
{
	struct stat	 sb;
	char		*buf;
	int		 fd;

	fd = open(p, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	buf = malloc((size_t)sb.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(read(fd, buf, (size_t)sb.st_size), sb.st_size);
	buf[sb.st_size] = '\0';
	close(fd);
	*len = (size_t)sb.st_size;
	return buf;
}

static void
spit(const char *buf, size_t len)
{
	int	 fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* the log goes to a file of the test's, read back by logged() */
void
log_to_file(void)
{
	ck_assert_int_eq(log_init(tmp_path("log"), LOG_DEBUG), 0);
}

int
logged(const char *what)
{
	char	*s;
	size_t	 len;
	int	 found;

	s = slurp(tmp_path("log"), &len);
	found = strstr(s, what) != NULL;
	free(s);
	return found;
}

START_TEST(test_reopen)
{
	struct histspool	*hs;
	struct histspool_batch	 b;
	uint64_t		 left;

	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	append_rows(hs, 0, 5);
	left = histspool_appended(hs);
	/* crash after take, and after store but before done */
	ck_assert_int_eq(histspool_take(hs, 2, &b), 0);
	ck_assert_uint_eq(b.n, 2);
	ck_assert_int_eq(histspool_done(hs, &b), 0);
	ck_assert_int_eq(histspool_take(hs, 2, &b), 0);
	ck_assert_uint_eq(b.n, 2);
	histspool_batch_free(&b);
	/* a freed batch is not taken again by this handle */
	ck_assert_uint_eq(take_all(hs, 4, 0), 1);
	ck_assert_uint_eq(histspool_pending(hs), left - recsize(0) -
	    recsize(1));
	histspool_close(hs);

	/*
	 * every row not done again (at least once), after the done ones
	 * (0, 1: histspool.h, the done record), the file unharmed
	 */
	log_to_file();
	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	ck_assert(logged("bytes of rows left by a previous run"));
	ck_assert(!logged("record at byte"));
	ck_assert_uint_eq(histspool_appended(hs), left);
	ck_assert_uint_eq(histspool_pending(hs), left - recsize(0) -
	    recsize(1));
	append_rows(hs, 5, 6);
	ck_assert_uint_eq(take_all(hs, 2, 1), 4);
	ck_assert_int_eq(fsize(), 0);
	histspool_close(hs);

	/* all done: a reopen finds nothing */
	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	ck_assert_uint_eq(histspool_pending(hs), 0);
	ck_assert_uint_eq(take_all(hs, 0, 1), 0);
	histspool_close(hs);
}
END_TEST

/*
 * Under steady load a row is always pending (the reader is one batch
 * behind): the writer moves between the two files and each is emptied
 * behind it, so neither grows past the segment (4 KiB here) by much.
 */
START_TEST(test_two_files)
{
	struct histspool	*hs;
	struct histspool_batch	 b, held;
	int64_t			 i, next = 0;
	off_t			 s1, s2, most = 0;
	int			 moves = 0, in2 = 0;
	size_t			 k;

	hs = histspool_open(path, 16 * 1024);
	ck_assert_ptr_nonnull(hs);
	memset(&held, 0, sizeof(held));
	for (i = 0; i < 2000; i++) {
		append_rows(hs, i, i + 1);
		ck_assert_int_eq(histspool_take(hs, 100, &b), 0);
		for (k = 0; k < b.n; k++)
			check_row(&b.v[k], next++);
		/* the batch before is done; this one waits */
		if (held.n > 0)
			ck_assert_int_eq(histspool_done(hs, &held), 0);
		held = b;
		s1 = fsize_of(path);
		s2 = fsize_of(path2);
		ck_assert(s1 > 0 || s2 > 0);
		if ((s2 > 0) != in2) {
			in2 = s2 > 0 && s1 == 0;
			moves++;
		}
		if (s1 + s2 > most)
			most = s1 + s2;
	}
	ck_assert_int_eq(next, 2000);
	ck_assert_int_le(most, 4096 + 2 * recsize(36));
	ck_assert_int_ge(moves, 10);
	ck_assert_int_eq(histspool_done(hs, &held), 0);
	ck_assert_uint_eq(histspool_pending(hs), 0);
	ck_assert_int_eq(fsize_of(path) + fsize_of(path2), 0);
	histspool_close(hs);
}
END_TEST

/*
 * The reader empties the older file and, before it takes again, the
 * writer moves back into that file: the rows of the file between must
 * still come first.
 */
START_TEST(test_two_files_lagging_reader)
{
	struct histspool	*hs;
	struct histspool_batch	 b;
	int64_t			 i = 0, first;

	hs = histspool_open(path, 16 * 1024);
	ck_assert_ptr_nonnull(hs);
	for (; fsize_of(path2) == 0; i++)
		append_rows(hs, i, i + 1);
	first = i - 1;			/* the first row of the second file */
	ck_assert_int_eq(histspool_take(hs, 100000, &b), 0);
	ck_assert_int_eq((int64_t)b.n, first);
	ck_assert_int_eq(histspool_done(hs, &b), 0);
	ck_assert_int_eq(fsize_of(path), 0);
	for (; fsize_of(path) == 0; i++)
		append_rows(hs, i, i + 1);
	ck_assert_uint_eq(take_all(hs, first, 1), (size_t)(i - first));
	ck_assert_int_eq(fsize_of(path) + fsize_of(path2), 0);
	histspool_close(hs);
}
END_TEST

/* rows left in both files come back oldest first, then new ones */
START_TEST(test_two_files_reopen)
{
	struct histspool	*hs;
	int64_t			 i;

	i = 0;
	do {
		hs = histspool_open(path, 16 * 1024);
		ck_assert_ptr_nonnull(hs);
		append_rows(hs, i, i + 1);
		histspool_close(hs);
		ck_assert_int_lt(++i, 1000);
	} while (fsize_of(path2) == 0 || i < 5);
	/* the first file is older: row 0 is there */
	ck_assert_int_ge(fsize_of(path), 4096);
	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	append_rows(hs, i, i + 3);
	ck_assert_uint_eq(take_all(hs, 0, 1), (size_t)i + 3);
	ck_assert_int_eq(fsize_of(path) + fsize_of(path2), 0);
	histspool_close(hs);

	/* and when the second is the older one */
	for (i = 0; i < 3; i++) {
		hs = histspool_open(path, 0);
		ck_assert_ptr_nonnull(hs);
		append_rows(hs, i, i + 1);
		histspool_close(hs);
	}
	ck_assert_int_eq(rename(path, path2), 0);
	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	ck_assert_int_eq(fsize_of(path), 0);
	append_rows(hs, 3, 5);
	ck_assert_int_eq(fsize_of(path), 0);	/* after the rows left */
	histspool_close(hs);
	/* a newer row in the first file: taken after the second's */
	{
		int	 fd;
		char	*file;
		size_t	 len;

		file = slurp(path2, &len);
		ck_assert_uint_eq(len, recsize(0) + recsize(1) + recsize(2) +
		    recsize(3) + recsize(4));
		fd = open(path, O_WRONLY);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, file + len - recsize(3) -
		    recsize(4), recsize(3) + recsize(4)), (ssize_t)(recsize(3) +
		    recsize(4)));
		close(fd);
		fd = open(path2, O_WRONLY);
		ck_assert_int_eq(ftruncate(fd, (off_t)(len - recsize(3) -
		    recsize(4))), 0);
		close(fd);
		free(file);
	}
	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	append_rows(hs, 5, 6);
	ck_assert_uint_eq(take_all(hs, 0, 1), 6);
	histspool_close(hs);
}
END_TEST

START_TEST(test_cut_every_offset)
{
	struct histspool	*hs;
	char			*file;
	size_t			 len, k, whole, ends[4] = { 0 };
	int64_t			 i;

	/* rows 35, 36, 37: texts of 35, 36 and 0 bytes */
	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	append_rows(hs, 35, 38);
	histspool_close(hs);
	file = slurp(path, &len);
	for (i = 0; i < 3; i++)
		ends[i + 1] = ends[i] + recsize(35 + i);
	ck_assert_uint_eq(len, ends[3]);
	log_to_file();

	for (k = 0; k <= len; k++) {
		spit(file, k);
		for (whole = 0; whole < 3 && ends[whole + 1] <= k; whole++)
			;
		hs = histspool_open(path, 0);
		ck_assert_msg(hs != NULL, "open at cut %zu: %s", k,
		    strerror(errno));
		ck_assert_uint_eq(histspool_pending(hs), ends[whole]);
		/* cut back to the last whole record, which all come back */
		ck_assert_int_eq(fsize(), (off_t)ends[whole]);
		ck_assert_uint_eq(take_all(hs, 35, 0), whole);
		histspool_close(hs);
		/* and appending after the cut gives sound records */
		hs = histspool_open(path, 0);
		ck_assert_ptr_nonnull(hs);
		append_rows(hs, 35 + (int64_t)whole, 38);
		histspool_close(hs);
		hs = histspool_open(path, 0);
		ck_assert_ptr_nonnull(hs);
		ck_assert_uint_eq(take_all(hs, 35, 1), 3);
		histspool_close(hs);
	}
	ck_assert(logged("a torn record at byte 75"));
	free(file);
}
END_TEST

/* rows 0..4 with byte at of the file changed: rows before it back */
static void
damaged(size_t at, unsigned char x, size_t want_rows)
{
	struct histspool	*hs;
	char			*file;
	size_t			 len;
	int64_t			 i;
	uint64_t		 good = 0;

	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	append_rows(hs, 0, 5);
	histspool_close(hs);
	file = slurp(path, &len);
	ck_assert_uint_lt(at, len);
	file[at] ^= x;
	spit(file, len);
	for (i = 0; i < (int64_t)want_rows; i++)
		good += recsize(i);
	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	ck_assert_int_eq(fsize(), (off_t)good);
	ck_assert_uint_eq(take_all(hs, 0, 1), want_rows);
	histspool_close(hs);
	free(file);
	unlink(path);
}

START_TEST(test_damage_in_middle)
{
	size_t	 r2 = recsize(0) + recsize(1), r3 = r2 + recsize(2);

	log_to_file();
	/* record 2's text, its CRC, its smid, its magic, a reserved byte */
	damaged(r2 + HISTSPOOL_HDR + 1, 0x40, 2);
	ck_assert(logged("a damaged record at byte 81"));
	damaged(r2 + 28, 0x01, 2);
	damaged(r2 + 9, 0x80, 2);
	damaged(r2, 0xff, 2);
	damaged(r2 + 2, 0x01, 2);
	/* a length past the bound: corrupt, not a read of 2 GB */
	damaged(r3 + 7, 0x80, 3);
	/* a length that runs past the end of the file */
	damaged(r3 + 4, 0x7f, 3);
	/* the first record: nothing comes back */
	damaged(3, 0x10, 0);
}
END_TEST

/* a spool with rows 0..n-1 appended, then byte at of the file ^= x */
static struct histspool *
open_damaged(int64_t n, size_t at, char x)
{
	struct histspool	*hs;
	char			 c;
	int			 fd;

	log_to_file();
	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	append_rows(hs, 0, n);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, (off_t)at), 1);
	c ^= x;
	ck_assert_int_eq(pwrite(fd, &c, 1, (off_t)at), 1);
	close(fd);
	return hs;
}

/* a record the disk changes after it was appended, found by take */
START_TEST(test_damage_at_take)
{
	struct histspool	*hs;
	struct histspool_batch	 b;
	size_t			 r2 = recsize(0) + recsize(1);

	hs = open_damaged(5, r2 + HISTSPOOL_HDR, 0x55);
	/* the rows before it; it and the rest are given up, logged */
	ck_assert_int_eq(histspool_take(hs, 100, &b), 0);
	ck_assert_uint_eq(b.n, 2);
	check_row(&b.v[0], 0);
	check_row(&b.v[1], 1);
	ck_assert(logged("a damaged record at byte 81"));
	ck_assert_uint_eq(histspool_pending(hs), r2);
	ck_assert_int_eq(histspool_done(hs, &b), 0);
	ck_assert_uint_eq(histspool_pending(hs), 0);
	ck_assert_uint_eq(histspool_stored(hs), histspool_appended(hs));
	ck_assert_int_eq(fsize(), 0);
	/* and the spool goes on */
	append_rows(hs, 5, 7);
	ck_assert_uint_eq(take_all(hs, 5, 1), 2);
	histspool_close(hs);
}
END_TEST

/* damage where take's first record is: nothing taken, nothing stuck */
START_TEST(test_damage_first_at_take)
{
	struct histspool	*hs;
	struct histspool_batch	 b;

	hs = open_damaged(3, 30, 0x20);
	ck_assert_int_eq(histspool_take(hs, 100, &b), 0);
	ck_assert_uint_eq(b.n, 0);
	ck_assert(logged("a damaged record at byte 0"));
	ck_assert_uint_eq(histspool_pending(hs), 0);
	/* the next append starts an empty file */
	append_rows(hs, 3, 4);
	ck_assert_int_eq(fsize(), (off_t)recsize(3));
	ck_assert_uint_eq(take_all(hs, 3, 1), 1);
	histspool_close(hs);
}
END_TEST

START_TEST(test_pending_bound)
{
	struct histspool	*hs;
	struct histspool_batch	 b;
	struct rowbuf		 rb;
	uint64_t		 three = recsize(0) + recsize(1) + recsize(2);
	struct rowbuf		 bigrow[6];
	struct store_hist	 big[6];
	size_t			 i, bigsize = 0;

	for (i = 0; i < 6; i++) {
		mkrow(&bigrow[i], 36 + (int64_t)i);
		big[i] = bigrow[i].r;
		bigsize += recsize(36 + (int64_t)i);
	}
	ck_assert_uint_gt(bigsize, three + 3);

	/* room for row 3 (43 bytes) once row 0 (40) is done */
	hs = histspool_open(path, three + 3);
	ck_assert_ptr_nonnull(hs);
	append_rows(hs, 0, 3);
	mkrow(&rb, 3);
	errno = 0;
	ck_assert_int_eq(histspool_append(hs, &rb.r, 1), -1);
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_int_eq(fsize(), (off_t)three);
	ck_assert_uint_eq(histspool_appended(hs), three);
	/* taken is still pending; done makes room */
	ck_assert_int_eq(histspool_take(hs, 1, &b), 0);
	ck_assert_int_eq(histspool_append(hs, &rb.r, 1), -1);
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_int_eq(histspool_done(hs, &b), 0);
	ck_assert_int_eq(histspool_append(hs, &rb.r, 1), 0);
	ck_assert_uint_eq(take_all(hs, 1, 1), 3);
	ck_assert_int_eq(fsize(), 0);
	/* a call larger than the bound: refused while rows are pending, */
	append_rows(hs, 10, 11);
	ck_assert_int_eq(histspool_append(hs, big, 6), -1);
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_uint_eq(take_all(hs, 10, 1), 1);
	/* taken into an empty spool (else it would wait for ever) */
	ck_assert_int_eq(histspool_append(hs, big, 6), 0);
	ck_assert_int_eq(fsize(), (off_t)bigsize);
	ck_assert_uint_eq(take_all(hs, 36, 1), 6);
	ck_assert_int_eq(fsize(), 0);
	/* a text over the bound is refused before anything is written */
	rb.r.len = HISTSPOOL_MAX_TEXT + 1;
	ck_assert_int_eq(histspool_append(hs, &rb.r, 1), -1);
	ck_assert_int_eq(errno, EINVAL);
	histspool_close(hs);
}
END_TEST

/*
 * In a child of the test: Check records each assertion in a file of its
 * own, which RLIMIT_FSIZE would stop too.  0, or the step that failed.
 */
static int
fill_disk(struct histspool *hs, uint64_t two)
{
	struct rlimit	 rl;
	struct rowbuf	 rb;
	struct stat	 sb;
	uint64_t	 a = histspool_appended(hs);

	/* room for a record of 5 bytes of text, no more */
	signal(SIGXFSZ, SIG_IGN);
	rl.rlim_cur = two + HISTSPOOL_HDR + 5;
	rl.rlim_max = RLIM_INFINITY;
	if (setrlimit(RLIMIT_FSIZE, &rl) == -1)
		return 1;
	/* 36 bytes of text: part of it is written, then cut back */
	mkrow(&rb, 36);
	errno = 0;
	if (histspool_append(hs, &rb.r, 1) != -1 || errno != ENOSPC)
		return 2;
	if (stat(path, &sb) == -1 || (uint64_t)sb.st_size != two)
		return 3;
	if (histspool_appended(hs) != a || histspool_pending(hs) != two)
		return 4;
	mkrow(&rb, 2);				/* 2 bytes: fits */
	if (histspool_append(hs, &rb.r, 1) != 0)
		return 5;
	return 0;
}

START_TEST(test_disk_full)
{
	struct histspool	*hs;
	uint64_t		 two = recsize(0) + recsize(1);
	pid_t			 pid;
	int			 status;

	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	append_rows(hs, 0, 2);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(fill_disk(hs, two));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the child failed at step %d", WEXITSTATUS(status));
	histspool_close(hs);
	/* what the child left is sound: rows 0, 1 and 2 */
	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	ck_assert_uint_eq(take_all(hs, 0, 1), 3);
	ck_assert_int_eq(fsize(), 0);
	histspool_close(hs);
}
END_TEST

START_TEST(test_one_process)
{
	struct histspool	*hs, *hs2;

	hs = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs);
	errno = 0;
	hs2 = histspool_open(path, 0);
	ck_assert_ptr_null(hs2);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	histspool_close(hs);
	hs2 = histspool_open(path, 0);
	ck_assert_ptr_nonnull(hs2);
	histspool_close(hs2);
	errno = 0;
	ck_assert_ptr_null(histspool_open("/nonexistent-dir/spool", 0));
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

#define THREAD_ROWS	20000
#define THREAD_SECS	90.0

struct both {
	struct histspool	*hs;
	int64_t			 taken;		/* the reader's count */
	int			 full;		/* EFBIG seen by the writer */
	char			 why[128];	/* the reader's failure */
};

static void *
writer(void *arg)
{
	struct both	*t = arg;
	struct rowbuf	 rb[64];
	struct store_hist v[64];
	int64_t		 i = 0;
	size_t		 n, k;
	double		 end = util_mono() + THREAD_SECS;
	unsigned	 seed = 1;

	while (i < THREAD_ROWS && util_mono() < end) {
		n = 1 + rand_r(&seed) % 64;
		if (n > (size_t)(THREAD_ROWS - i))
			n = (size_t)(THREAD_ROWS - i);
		for (k = 0; k < n; k++) {
			mkrow(&rb[k], i + (int64_t)k);
			v[k] = rb[k].r;
		}
		if (histspool_append(t->hs, v, n) == 0)
			i += (int64_t)n;
		else if (errno == EFBIG) {
			t->full = 1;
			usleep(200);
		} else
			break;
	}
	return NULL;
}

static void *
reader(void *arg)
{
	struct both		*t = arg;
	struct histspool_batch	 b;
	struct rowbuf		 want;
	double			 end = util_mono() + THREAD_SECS;
	unsigned		 seed = 2;
	size_t			 k;

	while (t->taken < THREAD_ROWS && util_mono() < end) {
		if (histspool_take(t->hs, 1 + rand_r(&seed) % 100, &b) == -1) {
			snprintf(t->why, sizeof(t->why), "take: %s",
			    strerror(errno));
			return NULL;
		}
		if (b.n == 0) {
			usleep(100);
			continue;
		}
		for (k = 0; k < b.n; k++, t->taken++) {
			mkrow(&want, t->taken);
			if (b.v[k].smid != want.r.smid ||
			    b.v[k].len != want.r.len ||
			    (want.r.len > 0 && memcmp(b.v[k].text,
			    want.r.text, want.r.len) != 0)) {
				snprintf(t->why, sizeof(t->why), "row %lld: "
				    "smid %lld", (long long)t->taken,
				    (long long)b.v[k].smid);
				histspool_batch_free(&b);
				return NULL;
			}
		}
		if (histspool_done(t->hs, &b) == -1) {
			snprintf(t->why, sizeof(t->why), "done: %s",
			    strerror(errno));
			return NULL;
		}
	}
	return NULL;
}

START_TEST(test_threads)
{
	struct both	 t;
	pthread_t	 w, r;
	struct histspool_batch b;

	memset(&t, 0, sizeof(t));
	/* room for about 300 rows: the writer meets the bound */
	t.hs = histspool_open(path, 16 * 1024);
	ck_assert_ptr_nonnull(t.hs);
	ck_assert_int_eq(pthread_create(&w, NULL, writer, &t), 0);
	ck_assert_int_eq(pthread_create(&r, NULL, reader, &t), 0);
	pthread_join(w, NULL);
	pthread_join(r, NULL);
	ck_assert_msg(t.why[0] == '\0', "%s", t.why);
	ck_assert_int_eq(t.taken, THREAD_ROWS);
	ck_assert(t.full);
	/* every row once: nothing more to take, everything done */
	ck_assert_int_eq(histspool_take(t.hs, 100, &b), 0);
	ck_assert_uint_eq(b.n, 0);
	ck_assert_uint_eq(histspool_pending(t.hs), 0);
	ck_assert_uint_eq(histspool_stored(t.hs), histspool_appended(t.hs));
	ck_assert_int_eq(fsize(), 0);
	histspool_close(t.hs);
}
END_TEST

static Suite *
histspool_suite(void)
{
	Suite	*s = suite_create("histspool");
	TCase	*tc = tcase_create("spool");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_crc32);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_take_across_appends);
	tcase_add_test(tc, test_truncate_monotonic);
	tcase_add_test(tc, test_reopen);
	tcase_add_test(tc, test_two_files);
	tcase_add_test(tc, test_two_files_lagging_reader);
	tcase_add_test(tc, test_two_files_reopen);
	tcase_add_test(tc, test_cut_every_offset);
	tcase_add_test(tc, test_damage_in_middle);
	tcase_add_test(tc, test_damage_at_take);
	tcase_add_test(tc, test_damage_first_at_take);
	tcase_add_test(tc, test_pending_bound);
	tcase_add_test(tc, test_disk_full);
	tcase_add_test(tc, test_one_process);
	tcase_add_test(tc, test_threads);
	suite_add_tcase(s, tc);
	tc = tcase_create("done");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	histspool_done_cases(tc);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run(histspool_suite());
}
