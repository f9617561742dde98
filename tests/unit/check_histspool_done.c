/*
 * check_histspool_done.c - the spool's done records (histspool.h): an
 * open starts after the rows done before it, and falls back to taking
 * a file from its start (never skipping a row not done) when the record
 * is torn, damaged, left from content since emptied, or past a cut.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_histspool.h"

static char	 dpath[160];

static void
done_path(void)
{
	snprintf(dpath, sizeof(dpath), "%s.done", path);
}

static void
put(const char *p, const char *buf, size_t len)
{
	int	 fd;

	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* take n rows (one batch) and mark them done */
static void
take_done(struct histspool *hs, size_t n)
{
	struct histspool_batch	 b;

	ck_assert_int_eq(histspool_take(hs, n, &b), 0);
	ck_assert_uint_eq(b.n, n);
	ck_assert_int_eq(histspool_done(hs, &b), 0);
}

static uint64_t
sizes(int64_t from, int64_t to)
{
	uint64_t	 n = 0;

	for (; from < to; from++)
		n += recsize(from);
	return n;
}

/* rows 0..9, 0..5 of them done in two batches; the spool closed */
static void
ten_six_done(void)
{
	struct histspool	*hs;

	ck_assert_ptr_nonnull(hs = histspool_open(path, 0));
	append_rows(hs, 0, 4);
	append_rows(hs, 4, 10);
	take_done(hs, 3);
	take_done(hs, 3);
	histspool_close(hs);
}

/* A reopen takes the rows after those done, and only those. */
START_TEST(test_done_not_again)
{
	struct histspool	*hs;

	done_path();
	ten_six_done();
	log_to_file();
	ck_assert_ptr_nonnull(hs = histspool_open(path, 0));
	ck_assert(logged("of them done"));
	ck_assert_uint_eq(histspool_appended(hs), sizes(0, 10));
	ck_assert_uint_eq(histspool_pending(hs), sizes(6, 10));
	/* one more done, and again */
	take_done(hs, 1);
	histspool_close(hs);
	ck_assert_ptr_nonnull(hs = histspool_open(path, 0));
	ck_assert_uint_eq(histspool_pending(hs), sizes(7, 10));
	ck_assert_uint_eq(take_all(hs, 7, 1), 3);
	ck_assert_int_eq(fsize_of(path), 0);
	histspool_close(hs);
	/* all done: nothing, and the record is zeros */
	ck_assert_ptr_nonnull(hs = histspool_open(path, 0));
	ck_assert_uint_eq(histspool_pending(hs), 0);
	histspool_close(hs);
	{
		size_t	 len, i;
		char	*d = slurp(dpath, &len);

		for (i = 0; i < len; i++)
			ck_assert_int_eq(d[i], 0);
		free(d);
	}
}
END_TEST

/* Done after a batch freed undone: the prefix stops at the gap. */
START_TEST(test_done_after_gap)
{
	struct histspool	*hs;
	struct histspool_batch	 b;

	ck_assert_ptr_nonnull(hs = histspool_open(path, 0));
	append_rows(hs, 0, 6);
	take_done(hs, 1);
	ck_assert_int_eq(histspool_take(hs, 2, &b), 0);
	histspool_batch_free(&b);
	take_done(hs, 2);
	histspool_close(hs);
	ck_assert_ptr_nonnull(hs = histspool_open(path, 0));
	ck_assert_uint_eq(take_all(hs, 1, 0), 5);
	histspool_close(hs);
}
END_TEST

/* Both files: each starts after its own done prefix. */
START_TEST(test_done_two_files)
{
	struct histspool	*hs;
	int64_t			 n = 0;

	ck_assert_ptr_nonnull(hs = histspool_open(path, 16 * 1024));
	/* the writer moves on past 4 KiB once the other file is empty */
	while (fsize_of(path2) == 0) {
		append_rows(hs, n, n + 1);
		ck_assert_int_lt(++n, 1000);
	}
	append_rows(hs, n, n + 3);
	n += 3;
	take_done(hs, 5);
	histspool_close(hs);
	ck_assert_ptr_nonnull(hs = histspool_open(path, 0));
	ck_assert_uint_eq(histspool_pending(hs), sizes(5, n));
	ck_assert_uint_eq(take_all(hs, 5, 1), (size_t)n - 5);
	ck_assert_int_eq(fsize_of(path) + fsize_of(path2), 0);
	histspool_close(hs);
}
END_TEST

/*
 * Every byte of the done file damaged, and the file cut at every
 * length: the first file's rows all come back unless its record is
 * whole and sound (the second's record is zeros: its damage is a
 * record that is not sound either).
 */
START_TEST(test_done_damaged)
{
	struct histspool	*hs;
	char			*spool, *got, done[2 * HISTSPOOL_DONE_REC];
	char			 bad[sizeof(done)];
	size_t			 slen, dlen = sizeof(done), k;
	int			 flip;

	done_path();
	ten_six_done();
	spool = slurp(path, &slen);
	/* the second file's record: never written, zeros */
	got = slurp(dpath, &k);
	ck_assert_uint_eq(k, HISTSPOOL_DONE_REC);
	memset(done, 0, sizeof(done));
	memcpy(done, got, k);
	free(got);
	for (flip = 0; flip < 2; flip++)
		for (k = 0; k < dlen + (flip ? 0 : 1); k++) {
			memcpy(bad, done, dlen);
			if (flip)
				bad[k] ^= 0x20;
			put(path, spool, slen);
			put(dpath, bad, flip ? dlen : k);
			ck_assert_ptr_nonnull(hs = histspool_open(path, 0));
			if (k < HISTSPOOL_DONE_REC)
				ck_assert_uint_eq(take_all(hs, 0, 0), 10);
			else
				ck_assert_uint_eq(take_all(hs, 6, 0), 4);
			histspool_close(hs);
		}
	free(spool);
}
END_TEST

/*
 * A record left from content since emptied, and a file cut before the
 * record's end: taken from the start.
 */
START_TEST(test_done_stale)
{
	struct histspool	*hs;
	char			*done;
	size_t			 dlen;
	int			 fd;

	done_path();
	ten_six_done();
	done = slurp(dpath, &dlen);
	ck_assert_ptr_nonnull(hs = histspool_open(path, 0));
	ck_assert_uint_eq(take_all(hs, 6, 1), 4);
	ck_assert_int_eq(fsize_of(path), 0);
	append_rows(hs, 20, 30);
	histspool_close(hs);
	put(dpath, done, dlen);
	ck_assert_ptr_nonnull(hs = histspool_open(path, 0));
	ck_assert_uint_eq(take_all(hs, 20, 0), 10);
	histspool_close(hs);

	/* rows 0..9 again, 6 done, then the file cut inside row 5 */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(unlink(dpath), 0);
	ten_six_done();
	ck_assert_int_ge(fd = open(path, O_WRONLY), 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)(sizes(0, 6) - 1)), 0);
	close(fd);
	ck_assert_ptr_nonnull(hs = histspool_open(path, 0));
	ck_assert_uint_eq(take_all(hs, 0, 0), 5);
	histspool_close(hs);
	free(done);
}
END_TEST

void
histspool_done_cases(TCase *tc)
{
	tcase_add_test(tc, test_done_not_again);
	tcase_add_test(tc, test_done_after_gap);
	tcase_add_test(tc, test_done_two_files);
	tcase_add_test(tc, test_done_damaged);
	tcase_add_test(tc, test_done_stale);
}
