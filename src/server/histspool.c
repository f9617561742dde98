/*
 * histspool.c - the append-only spool of history rows (histspool.h):
 * the record format, the scan that cuts a torn tail at open, the done
 * records that let an open start after what was stored, and the
 * offsets one writer and one reader share under a mutex.
 */
#include "config.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32.h"
#include "histspool.h"
#include "log.h"

/* bytes read at once by take and by the scan at open */
#define SPOOL_CHUNK	(256u * 1024)
/* the writer moves to the other file past this (at most) */
#define SPOOL_SEGMENT	(64u * 1024 * 1024)

/* one of the two files */
struct spoolfile {
	int		 fd;
	char		*path;		/* for log lines */
	/* under the spool's mu */
	uint64_t	 end;		/* after the last whole record */
	uint64_t	 rd;		/* the first record not taken */
	uint64_t	 fdone;		/* bytes of this file done */
	int		 cut;		/* a failed write left bytes past end */
	/* the done prefix: [0, doff) all done, as the done record says */
	uint64_t	 doff;
	uint32_t	 dchain;	/* CRC-32C of its records' headers */
	int64_t		 dsmid;		/* its last record's smid */
};

/* A file's done record, as stored in the side file (histspool.h). */
struct donerec {
	uint64_t	 off;
	uint32_t	 chain;
	int64_t		 smid;
};

struct histspool {
	pthread_mutex_t	 mu;
	struct spoolfile f[2];
	int		 dfd;		/* the side file of done records */
	uint64_t	 max_bytes;
	uint64_t	 seg_max;	/* the writer moves on past this */
	/* under mu */
	int		 cur;		/* the file the writer appends to */
	int		 rf;		/* the file the reader takes from */
	int		 busy;		/* the writer is writing at f[cur].end */
	uint64_t	 appended;
	uint64_t	 stored;
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

	c = crc32c_update(0, hdr, 28);
	c = crc32c_update(c, hdr + 32, 8);
	return crc32c_update(c, text, len);
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

static void
done_encode(unsigned char *p, const struct donerec *d)
{
	memset(p, 0, HISTSPOOL_DONE_REC);
	p[0] = HISTSPOOL_DONE_MAGIC;
	put32(p + 4, d->chain);
	put64(p + 8, d->off);
	put64(p + 16, (uint64_t)d->smid);
	put32(p + 28, crc32c_update(0, p, 28));
}

/* The done record at p, when sound: 0, else -1 (none: start at 0). */
static int
done_parse(const unsigned char *p, struct donerec *d)
{
	if (p[0] != HISTSPOOL_DONE_MAGIC || p[1] != 0 || p[2] != 0 ||
	    p[3] != 0 || get32(p + 24) != 0 ||
	    crc32c_update(0, p, 28) != get32(p + 28) || get64(p + 8) == 0)
		return -1;
	d->chain = get32(p + 4);
	d->off = get64(p + 8);
	d->smid = (int64_t)get64(p + 16);
	return 0;
}

/*
 * f[i]'s done record written (zeros when f is empty), under mu.  A
 * failed write leaves the one before, which says less is done (or is
 * zeros): rows are stored again, never skipped.
 */
static void
done_write(struct histspool *hs, int i)
{
	struct spoolfile	*f = &hs->f[i];
	struct donerec		 d;
	unsigned char		 p[HISTSPOOL_DONE_REC];
	ssize_t			 w;

	if (f->doff == 0)
		memset(p, 0, sizeof(p));
	else {
		d.off = f->doff;
		d.chain = f->dchain;
		d.smid = f->dsmid;
		done_encode(p, &d);
	}
	do
		w = pwrite(hs->dfd, p, sizeof(p),
		    (off_t)i * HISTSPOOL_DONE_REC);
	while (w == -1 && errno == EINTR);
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
 * *good; *why says what stopped the scan before size (NULL: nothing);
 * *first: when the first row was kept.  *done: whether a record ends
 * at dr->off with dr's chain and smid (dr NULL: no).  0, or -1 with
 * errno (EIO, ENOMEM).
 */
static int
spool_scan(int fd, uint64_t size, uint64_t *good, const char **why,
    int64_t *first, const struct donerec *dr, int *done)
{
	struct store_hist r;

	unsigned char	*buf = NULL;
	size_t		 cap = 0, pos, rl = SPOOL_CHUNK, want;
	uint64_t	 off = 0;
	ssize_t		 got;
	uint32_t	 chain = 0;
	enum rec_state	 st = REC_OK;

	*why = NULL;
	*done = 0;
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
		while ((st = rec_parse(buf + pos, (size_t)got - pos, &r,
		    &rl)) == REC_OK) {
			if (off == 0 && pos == 0)
				*first = r.created;
			if (dr != NULL && off + pos < dr->off) {
				chain = crc32c_update(chain, buf + pos,
				    HISTSPOOL_HDR);
				if (off + pos + rl == dr->off)
					*done = chain == dr->chain &&
					    r.smid == dr->smid;
			}
			pos += rl;
		}
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

/*
 * f[i] emptied, under mu: 0 or -1 with errno.  Its done record goes
 * first: a crash between the two leaves rows to store again.
 */
static int
file_empty(struct histspool *hs, int i)
{
	struct spoolfile	*f = &hs->f[i];

	f->doff = 0;
	f->dchain = 0;
	f->dsmid = 0;
	done_write(hs, i);
	if (ftruncate(f->fd, 0) == -1)
		return -1;
	f->end = f->rd = f->fdone = 0;
	f->cut = 0;
	return 0;
}

/* f[i] emptied when every record in it is done, under mu: 0 or -1 */
static int
spool_settle(struct histspool *hs, int i)
{
	struct spoolfile	*f = &hs->f[i];

	if (f->end == 0 || f->fdone != f->end || (i == hs->cur && hs->busy))
		return 0;
	if (file_empty(hs, i) == -1) {
		log_warn("history spool %s: ftruncate", f->path);
		return -1;
	}
	return 0;
}

/* Open f, locked against other processes: 0 or -1 with errno. */
static int
file_open(struct spoolfile *f, const char *path)
{
	if ((f->path = strdup(path)) == NULL)
		return -1;
	if ((f->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
		return -1;
	return flock(f->fd, LOCK_EX | LOCK_NB);
}

/*
 * Cut f's damaged tail and start after its done prefix when dr (NULL:
 * none) is found in it: *first is when its first row was kept (left as
 * it is when empty).
 */
static int
file_scan(struct spoolfile *f, const struct donerec *dr, int64_t *first)
{
	struct stat	 sb;
	const char	*why, *path = f->path;
	uint64_t	 good;
	int		 done;

	if (fstat(f->fd, &sb) == -1)
		return -1;
	if (spool_scan(f->fd, (uint64_t)sb.st_size, &good, &why, first, dr,
	    &done) == -1)
		return -1;
	if (why != NULL) {
		log_warnx("history spool %s: %s at byte %" PRIu64 " of %jd: "
		    "cut there (%" PRIu64 " bytes of rows after it lost)",
		    path, why, good, (intmax_t)sb.st_size,
		    (uint64_t)sb.st_size - good);
		if (ftruncate(f->fd, (off_t)good) == -1) {
			log_warn("history spool %s: ftruncate", path);
			errno = EIO;
			return -1;
		}
	}
	if (done && dr->off <= good) {
		f->doff = f->rd = f->fdone = dr->off;
		f->dchain = dr->chain;
		f->dsmid = dr->smid;
	}
	if (good > 0)
		log_info("history spool %s: %" PRIu64 " bytes of rows left "
		    "by a previous run, %" PRIu64 " of them done", path, good,
		    f->doff);
	f->end = good;
	return 0;
}

struct histspool *
histspool_open(const char *path, uint64_t max_bytes)
{
	struct histspool	*hs;
	struct donerec		 dr[2];
	unsigned char		 dbuf[2 * HISTSPOOL_DONE_REC];
	char			*path2 = NULL, *dpath = NULL;
	int64_t			 first[2] = { 0, 0 };
	ssize_t			 got;
	int			 e, i, have[2];

	if ((hs = calloc(1, sizeof(*hs))) == NULL)
		return NULL;
	hs->f[0].fd = hs->f[1].fd = hs->dfd = -1;
	if (asprintf(&path2, "%s.b", path) == -1) {
		path2 = NULL;
		goto fail;
	}
	if (asprintf(&dpath, "%s.done", path) == -1) {
		dpath = NULL;
		goto fail;
	}
	if (file_open(&hs->f[0], path) == -1 ||
	    file_open(&hs->f[1], path2) == -1)
		goto fail;
	/* the done records, read under the files' locks */
	if ((hs->dfd = open(dpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
		goto fail;
	memset(dbuf, 0, sizeof(dbuf));
	if ((got = pread_full(hs->dfd, dbuf, sizeof(dbuf), 0)) == -1) {
		errno = EIO;
		goto fail;
	}
	for (i = 0; i < 2; i++)
		have[i] = done_parse(dbuf + i * HISTSPOOL_DONE_REC,
		    &dr[i]) == 0;
	if (file_scan(&hs->f[0], have[0] ? &dr[0] : NULL, &first[0]) == -1 ||
	    file_scan(&hs->f[1], have[1] ? &dr[1] : NULL, &first[1]) == -1)
		goto fail;
	free(path2);
	free(dpath);
	path2 = dpath = NULL;
	/* a file done to its end (a crash before it was emptied) */
	for (i = 0; i < 2; i++)
		spool_settle(hs, i);
	/* both hold rows: the older first, the writer after the newer */
	if (hs->f[1].end > 0 && (hs->f[0].end == 0 || first[1] < first[0]))
		hs->rf = hs->cur = 1;
	if (hs->f[0].end > 0 && hs->f[1].end > 0)
		hs->cur = !hs->rf;
	hs->appended = hs->f[0].end + hs->f[1].end;
	hs->stored = hs->f[0].fdone + hs->f[1].fdone;
	hs->max_bytes = max_bytes;
	/* small enough that the files stay near it, large enough to be rare */
	hs->seg_max = max_bytes == 0 ? SPOOL_SEGMENT : max_bytes / 4;
	if (hs->seg_max > SPOOL_SEGMENT)
		hs->seg_max = SPOOL_SEGMENT;
	if (hs->seg_max < SPOOL_CHUNK / 64)
		hs->seg_max = SPOOL_CHUNK / 64;
	if ((e = pthread_mutex_init(&hs->mu, NULL)) != 0) {
		errno = e;
		goto fail;
	}
	return hs;
fail:
	e = errno;
	for (i = 0; i < 2; i++) {
		if (hs->f[i].fd != -1)
			close(hs->f[i].fd);
		free(hs->f[i].path);
	}
	if (hs->dfd != -1)
		close(hs->dfd);
	free(path2);
	free(dpath);
	free(hs);
	errno = e;
	return NULL;
}

int
histspool_append(struct histspool *hs, const struct store_hist *v, size_t n)
{
	struct spoolfile *f;
	size_t		 i, total = 0, done = 0;
	uint64_t	 off;
	ssize_t		 w;
	int		 e = 0, o;

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
	f = &hs->f[hs->cur];
	if (f->cut) {
		if (ftruncate(f->fd, (off_t)f->end) == -1) {
			pthread_mutex_unlock(&hs->mu);
			errno = EIO;
			return -1;
		}
		f->cut = 0;
	}
	/* one call larger than the bound still goes into an empty spool */
	if (hs->max_bytes > 0 && hs->appended > hs->stored &&
	    hs->appended - hs->stored + total > hs->max_bytes) {
		pthread_mutex_unlock(&hs->mu);
		errno = EFBIG;
		return -1;
	}
	/* all done, but the last done found us writing: empty it now */
	spool_settle(hs, hs->cur);
	/*
	 * Rows are done while others arrive, so a file may never be all
	 * done: past seg_max the writer moves to the other file once that
	 * one is empty, and the reader empties this one behind it.
	 */
	o = !hs->cur;
	if (f->end >= hs->seg_max && hs->f[o].end == 0 &&
	    (!hs->f[o].cut || file_empty(hs, o) == 0)) {
		if (hs->rf == o)
			hs->rf = hs->cur;
		hs->cur = o;
		f = &hs->f[o];
	}
	off = f->end;
	hs->busy = 1;
	pthread_mutex_unlock(&hs->mu);

	while (done < total) {
		w = pwrite(f->fd, hs->wbuf + done, total - done,
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
		f->end = off + total;
		hs->appended += total;
	} else if (ftruncate(f->fd, (off_t)off) == -1)
		f->cut = 1;	/* tried again first by the next append */
	pthread_mutex_unlock(&hs->mu);
	if (e == 0)
		return 0;
	/* RLIMIT_FSIZE says EFBIG, which here means "pending is full" */
	errno = e == ENOSPC || e == EDQUOT || e == EFBIG ? ENOSPC : EIO;
	return -1;
}

/* [from, to) of f[i] given up as damaged, under mu */
static void
spool_give_up(struct histspool *hs, int i, uint64_t from, uint64_t to)
{
	struct spoolfile	*f = &hs->f[i];

	log_warnx("history spool %s: a damaged record at byte %" PRIu64
	    ": %" PRIu64 " bytes of rows given up", f->path, from, to - from);
	f->rd = to;
	f->fdone += to - from;
	hs->stored += to - from;
	spool_settle(hs, i);
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
	struct spoolfile *f;
	int		 i;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&hs->mu);
	/* the older file taken to its end: the writer's is next */
	if (hs->f[hs->rf].rd == hs->f[hs->rf].end)
		hs->rf = hs->cur;
	i = hs->rf;
	f = &hs->f[i];
	start = f->rd;
	stop = f->end;
	pthread_mutex_unlock(&hs->mu);
	if (start == stop || max_rows == 0)
		return 0;

	want = stop - start > SPOOL_CHUNK ? SPOOL_CHUNK : stop - start;
	for (;;) {
		if (grow(&buf, &cap, want) == -1)
			goto fail;
		if ((got = pread_full(f->fd, buf, want, start)) == -1 ||
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
	f->rd = start + pos;
	/* a short record inside what was written whole is damage too */
	if (st == REC_BAD || (st == REC_SHORT && n == 0))
		spool_give_up(hs, i, start + pos, stop);
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
	out->start = start;
	out->file = i;
	return 0;
fail:
	free(v);
	free(buf);
	return -1;
}

/*
 * b's records added to their file's done prefix when they continue it
 * (not after a batch freed undone), and its done record written, under
 * mu (a file then emptied has it zeroed again).
 */
static void
done_advance(struct histspool *hs, const struct histspool_batch *b)
{
	struct spoolfile	*f = &hs->f[b->file];
	const unsigned char	*p = (const unsigned char *)b->buf;
	uint64_t		 pos;

	if (b->bytes == 0 || b->start != f->doff)
		return;
	for (pos = 0; pos + HISTSPOOL_HDR <= b->bytes;
	    pos += HISTSPOOL_HDR + get32(p + pos + 4)) {
		f->dchain = crc32c_update(f->dchain, p + pos, HISTSPOOL_HDR);
		f->dsmid = (int64_t)get64(p + pos + 8);
	}
	f->doff += b->bytes;
	done_write(hs, b->file);
}

int
histspool_done(struct histspool *hs, struct histspool_batch *b)
{
	int	 rc, e;

	pthread_mutex_lock(&hs->mu);
	hs->f[b->file].fdone += b->bytes;
	hs->stored += b->bytes;
	done_advance(hs, b);
	rc = spool_settle(hs, b->file);
	e = errno;
	pthread_mutex_unlock(&hs->mu);
	histspool_batch_free(b);
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
	if (fdatasync(hs->f[0].fd) == -1 || fdatasync(hs->f[1].fd) == -1)
		return -1;
	return 0;
}

void
histspool_close(struct histspool *hs)
{
	int	 i;

	if (hs == NULL)
		return;
	for (i = 0; i < 2; i++) {
		close(hs->f[i].fd);
		free(hs->f[i].path);
	}
	close(hs->dfd);
	pthread_mutex_destroy(&hs->mu);
	free(hs->wbuf);
	free(hs);
}
