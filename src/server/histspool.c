/*
 * histspool.c - the append-only spool of history rows (histspool.h):
 * the record format, the scan that cuts a torn tail at open, and the
 * offsets one writer and one reader share under a mutex.
 */
#include "config.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32.h"
#include "histspool.h"
#include "log.h"

/* bytes read at once by take and by the scan at open */
#define SPOOL_CHUNK	(256u * 1024)

struct histspool {
	pthread_mutex_t	 mu;
	int		 fd;
	char		*path;		/* for log lines */
	uint64_t	 max_bytes;
	/* under mu */
	uint64_t	 end;		/* after the last whole record */
	uint64_t	 rd;		/* the first record not taken */
	uint64_t	 fdone;		/* bytes of this file done */
	uint64_t	 appended;
	uint64_t	 stored;
	int		 busy;		/* the writer is writing at end */
	int		 cut;		/* a failed write left bytes past end */
	/* the writer thread's own */
	unsigned char	*wbuf;
	size_t		 wcap;
};

enum rec_state {
	REC_OK,
	REC_SHORT,		/* more bytes needed: *reclen of them */
	REC_BAD			/* not a record of ours */
};

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static void
put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* header bytes 0..27 and 32..39, then the text: everything but the CRC */
static uint32_t
rec_crc(const unsigned char *hdr, const void *text, size_t len)
{
	uint32_t	 c;

	c = crc32_update(0, hdr, 28);
	c = crc32_update(c, hdr + 32, 8);
	return crc32_update(c, text, len);
}

static void
rec_encode(unsigned char *p, const struct store_hist *r)
{
	memset(p, 0, HISTSPOOL_HDR);
	p[0] = HISTSPOOL_MAGIC;
	put32(p + 4, (uint32_t)r->len);
	put64(p + 8, (uint64_t)r->smid);
	put32(p + 16, (uint32_t)r->sender);
	put32(p + 20, (uint32_t)r->peer);
	put32(p + 24, (uint32_t)r->gid);
	put64(p + 32, (uint64_t)r->created);
	if (r->len > 0)
		memcpy(p + HISTSPOOL_HDR, r->text, r->len);
	put32(p + 28, rec_crc(p, p + HISTSPOOL_HDR, r->len));
}

/*
 * The record at p (avail bytes there): its length in *reclen (as far
 * as known) and, when whole and sound, its row in *row (text pointing
 * into p) unless row is NULL.
 */
static enum rec_state
rec_parse(const unsigned char *p, size_t avail, struct store_hist *row,
    size_t *reclen)
{
	uint32_t	 len;

	*reclen = HISTSPOOL_HDR;
	if (avail < HISTSPOOL_HDR)
		return REC_SHORT;
	len = get32(p + 4);
	if (p[0] != HISTSPOOL_MAGIC || p[1] != 0 || p[2] != 0 || p[3] != 0 ||
	    len > HISTSPOOL_MAX_TEXT)
		return REC_BAD;
	*reclen = HISTSPOOL_HDR + (size_t)len;
	if (avail < *reclen)
		return REC_SHORT;
	if (rec_crc(p, p + HISTSPOOL_HDR, len) != get32(p + 28))
		return REC_BAD;
	if (row != NULL) {
		row->smid = (int64_t)get64(p + 8);
		row->sender = (int32_t)get32(p + 16);
		row->peer = (int32_t)get32(p + 20);
		row->gid = (int32_t)get32(p + 24);
		row->created = (int64_t)get64(p + 32);
		row->text = (const char *)p + HISTSPOOL_HDR;
		row->len = len;
	}
	return REC_OK;
}

/* pread until n bytes or the end of the file: how many, or -1 */
static ssize_t
pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t	 got = 0;
	ssize_t	 r;

	while (got < n) {
		r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* buf grown to hold n bytes: 0 or -1 (ENOMEM, buf as it was) */
static int
grow(unsigned char **buf, size_t *cap, size_t n)
{
	unsigned char	*p;

	if (n <= *cap)
		return 0;
	if ((p = realloc(*buf, n)) == NULL)
		return -1;
	*buf = p;
	*cap = n;
	return 0;
}

/*
 * The end of the last whole, sound record of the first size bytes, in
 * *good; *why says what stopped the scan before size (NULL: nothing).
 * 0, or -1 with errno (EIO, ENOMEM).
 */
static int
spool_scan(int fd, uint64_t size, uint64_t *good, const char **why)
{
	unsigned char	*buf = NULL;
	size_t		 cap = 0, pos, rl = SPOOL_CHUNK, want;
	uint64_t	 off = 0;
	ssize_t		 got;
	enum rec_state	 st = REC_OK;

	*why = NULL;
	while (off < size) {
		want = rl > SPOOL_CHUNK ? rl : SPOOL_CHUNK;
		if (want > size - off)
			want = size - off;
		if (grow(&buf, &cap, want) == -1)
			goto fail;
		if ((got = pread_full(fd, buf, want, off)) == -1) {
			errno = EIO;
			goto fail;
		}
		pos = 0;
		while ((st = rec_parse(buf + pos, (size_t)got - pos, NULL,
		    &rl)) == REC_OK)
			pos += rl;
		off += pos;
		if (off == size)
			break;
		if (st == REC_BAD) {
			*why = "a damaged record";
			break;
		}
		if (off + rl > size || (size_t)got < want) {
			*why = "a torn record";
			break;
		}
		/* else the chunk ended inside a record: read on from it */
	}
	free(buf);
	*good = off;
	return 0;
fail:
	free(buf);
	return -1;
}

/* the file emptied, under mu: 0 or -1 with errno */
static int
spool_empty(struct histspool *hs)
{
	if (ftruncate(hs->fd, 0) == -1)
		return -1;
	hs->end = hs->rd = hs->fdone = 0;
	hs->cut = 0;
	return 0;
}

struct histspool *
histspool_open(const char *path, uint64_t max_bytes)
{
	struct histspool	*hs;
	struct stat		 sb;
	const char		*why;
	uint64_t		 good;
	int			 e;

	if ((hs = calloc(1, sizeof(*hs))) == NULL)
		return NULL;
	hs->fd = -1;
	if ((hs->path = strdup(path)) == NULL)
		goto fail;
	if ((hs->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
		goto fail;
	if (flock(hs->fd, LOCK_EX | LOCK_NB) == -1)
		goto fail;
	if (fstat(hs->fd, &sb) == -1)
		goto fail;
	if (spool_scan(hs->fd, (uint64_t)sb.st_size, &good, &why) == -1)
		goto fail;
	if (why != NULL) {
		log_warnx("history spool %s: %s at byte %" PRIu64 " of %jd: "
		    "cut there (%" PRIu64 " bytes of rows after it lost)",
		    path, why, good, (intmax_t)sb.st_size,
		    (uint64_t)sb.st_size - good);
		if (ftruncate(hs->fd, (off_t)good) == -1) {
			log_warn("history spool %s: ftruncate", path);
			errno = EIO;
			goto fail;
		}
	}
	if (good > 0)
		log_info("history spool %s: %" PRIu64 " bytes of rows left "
		    "by a previous run", path, good);
	hs->max_bytes = max_bytes;
	hs->end = good;
	hs->appended = good;
	if ((e = pthread_mutex_init(&hs->mu, NULL)) != 0) {
		errno = e;
		goto fail;
	}
	return hs;
fail:
	e = errno;
	if (hs->fd != -1)
		close(hs->fd);
	free(hs->path);
	free(hs);
	errno = e;
	return NULL;
}

int
histspool_append(struct histspool *hs, const struct store_hist *v, size_t n)
{
	size_t		 i, total = 0, done = 0;
	uint64_t	 off;
	ssize_t		 w;
	int		 e = 0;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (v[i].len > HISTSPOOL_MAX_TEXT ||
		    (v[i].len > 0 && v[i].text == NULL)) {
			errno = EINVAL;
			return -1;
		}
		if (total > SIZE_MAX - HISTSPOOL_HDR - v[i].len) {
			errno = ENOMEM;
			return -1;
		}
		total += HISTSPOOL_HDR + v[i].len;
	}
	if (grow(&hs->wbuf, &hs->wcap, total) == -1)
		return -1;
	for (i = 0, off = 0; i < n; i++) {
		rec_encode(hs->wbuf + off, &v[i]);
		off += HISTSPOOL_HDR + v[i].len;
	}

	pthread_mutex_lock(&hs->mu);
	if (hs->cut) {
		if (ftruncate(hs->fd, (off_t)hs->end) == -1) {
			pthread_mutex_unlock(&hs->mu);
			errno = EIO;
			return -1;
		}
		hs->cut = 0;
	}
	/* one call larger than the bound still goes into an empty spool */
	if (hs->max_bytes > 0 && hs->appended > hs->stored &&
	    hs->appended - hs->stored + total > hs->max_bytes) {
		pthread_mutex_unlock(&hs->mu);
		errno = EFBIG;
		return -1;
	}
	/* all done, but the last done found us writing: empty it now */
	if (hs->end > 0 && hs->fdone == hs->end && spool_empty(hs) == -1)
		log_warn("history spool %s: ftruncate", hs->path);
	off = hs->end;
	hs->busy = 1;
	pthread_mutex_unlock(&hs->mu);

	while (done < total) {
		w = pwrite(hs->fd, hs->wbuf + done, total - done,
		    (off_t)(off + done));
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1) {
			e = errno;
			break;
		}
		done += (size_t)w;
	}

	pthread_mutex_lock(&hs->mu);
	hs->busy = 0;
	if (e == 0) {
		hs->end = off + total;
		hs->appended += total;
	} else if (ftruncate(hs->fd, (off_t)off) == -1)
		hs->cut = 1;	/* tried again first by the next append */
	pthread_mutex_unlock(&hs->mu);
	if (e == 0)
		return 0;
	/* RLIMIT_FSIZE says EFBIG, which here means "pending is full" */
	errno = e == ENOSPC || e == EDQUOT || e == EFBIG ? ENOSPC : EIO;
	return -1;
}

/* [from, to) of the file given up as damaged, under mu */
static void
spool_give_up(struct histspool *hs, uint64_t from, uint64_t to)
{
	log_warnx("history spool %s: a damaged record at byte %" PRIu64
	    ": %" PRIu64 " bytes of rows given up", hs->path, from, to - from);
	hs->rd = to;
	hs->fdone += to - from;
	hs->stored += to - from;
}

int
histspool_take(struct histspool *hs, size_t max_rows,
    struct histspool_batch *out)
{
	unsigned char	*buf = NULL;
	size_t		 cap = 0, pos = 0, rl = 0, want, nmax, n = 0;
	uint64_t	 start, stop;
	ssize_t		 got;
	enum rec_state	 st = REC_OK;
	struct store_hist *v = NULL;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&hs->mu);
	start = hs->rd;
	stop = hs->end;
	pthread_mutex_unlock(&hs->mu);
	if (start == stop || max_rows == 0)
		return 0;

	want = stop - start > SPOOL_CHUNK ? SPOOL_CHUNK : stop - start;
	for (;;) {
		if (grow(&buf, &cap, want) == -1)
			goto fail;
		if ((got = pread_full(hs->fd, buf, want, start)) == -1 ||
		    (size_t)got < want) {
			errno = EIO;
			goto fail;
		}
		st = rec_parse(buf, want, NULL, &rl);
		/* a first record longer than the chunk: read all of it */
		if (st != REC_SHORT || rl <= want || rl > stop - start)
			break;
		want = rl;
	}
	nmax = want < HISTSPOOL_HDR ? 1 : want / HISTSPOOL_HDR;
	if (nmax > max_rows)
		nmax = max_rows;
	if ((v = reallocarray(NULL, nmax, sizeof(*v))) == NULL)
		goto fail;
	while (n < nmax && (st = rec_parse(buf + pos, want - pos, &v[n],
	    &rl)) == REC_OK) {
		pos += rl;
		n++;
	}

	pthread_mutex_lock(&hs->mu);
	hs->rd = start + pos;
	/* a short record inside what was written whole is damage too */
	if (st == REC_BAD || (st == REC_SHORT && n == 0))
		spool_give_up(hs, start + pos, stop);
	pthread_mutex_unlock(&hs->mu);
	if (n == 0) {
		free(v);
		free(buf);
		return 0;
	}
	out->v = v;
	out->n = n;
	out->buf = (char *)buf;
	out->bytes = pos;
	return 0;
fail:
	free(v);
	free(buf);
	return -1;
}

int
histspool_done(struct histspool *hs, struct histspool_batch *b)
{
	int	 rc = 0, e = 0;

	pthread_mutex_lock(&hs->mu);
	hs->fdone += b->bytes;
	hs->stored += b->bytes;
	if (hs->end > 0 && hs->fdone == hs->end && !hs->busy &&
	    spool_empty(hs) == -1) {
		e = errno;
		log_warn("history spool %s: ftruncate", hs->path);
		rc = -1;
	}
	pthread_mutex_unlock(&hs->mu);
	histspool_batch_free(b);
	if (rc == -1)
		errno = e;
	return rc;
}

void
histspool_batch_free(struct histspool_batch *b)
{
	if (b == NULL)
		return;
	free(b->v);
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

/* both counters, read together */
static void
spool_counters(struct histspool *hs, uint64_t *appended, uint64_t *stored)
{
	pthread_mutex_lock(&hs->mu);
	*appended = hs->appended;
	*stored = hs->stored;
	pthread_mutex_unlock(&hs->mu);
}

uint64_t
histspool_appended(struct histspool *hs)
{
	uint64_t	 a, s;

	spool_counters(hs, &a, &s);
	return a;
}

uint64_t
histspool_stored(struct histspool *hs)
{
	uint64_t	 a, s;

	spool_counters(hs, &a, &s);
	return s;
}

uint64_t
histspool_pending(struct histspool *hs)
{
	uint64_t	 a, s;

	spool_counters(hs, &a, &s);
	return a - s;
}

int
histspool_sync(struct histspool *hs)
{
	return fdatasync(hs->fd);
}

void
histspool_close(struct histspool *hs)
{
	if (hs == NULL)
		return;
	close(hs->fd);
	pthread_mutex_destroy(&hs->mu);
	free(hs->wbuf);
	free(hs->path);
	free(hs);
}
