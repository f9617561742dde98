/*
 * fuzz_frame.c - libFuzzer target for frame_next.
 *
 * Input: byte 0 picks max, byte 1 seeds the read sizes, the rest is
 * the stream.  The stream is scanned once in one piece and once as a
 * connection would see it, in reads of varying size through a struct
 * buf; both must give the same frames, and every return must keep the
 * *consumed / *off / *vlen contract.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "proto.h"

struct rec {
	enum frame_status	 st;
	size_t			 start;		/* in the stream */
	size_t			 len;
};

struct recs {
	struct rec	*v;
	size_t		 n, cap;
};

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

/* buf_head() of an empty buf is NULL + 0: undefined, so keep clear */
static const char *
head(const struct buf *b)
{
	return b->data != NULL ? buf_head(b) : "";
}

static void
rec_add(struct recs *r, enum frame_status st, size_t start, size_t len)
{
	struct rec	*nv;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		nv = realloc(r->v, r->cap * sizeof(*nv));
		CHECK(nv != NULL);
		r->v = nv;
	}
	r->v[r->n].st = st;
	r->v[r->n].start = start;
	r->v[r->n].len = len;
	r->n++;
}

/*
 * Scan p[0..n) in reads of chunk bytes (0: sizes from seed); record
 * the frames and the final number of unconsumed bytes.
 */
static size_t
scan(const char *p, size_t n, size_t max, size_t chunk, unsigned seed,
    struct recs *r)
{
	struct frame_scanner	 s;
	struct buf		 in = BUF_INIT;
	enum frame_status	 st;
	size_t			 i = 0, k, dropped = 0, off, vlen, used, left;

	frame_scanner_init(&s);
	for (;;) {
		if (chunk == 0) {
			seed = seed * 1103515245 + 12345;
			k = 1 + (seed >> 16) % 13;
		} else
			k = chunk;
		if (k > n - i)
			k = n - i;
		CHECK(buf_append(&in, p + i, k) == 0);
		i += k;
		for (;;) {
			st = frame_next(&s, head(&in), buf_used(&in), max,
			    &off, &vlen, &used);
			CHECK(used <= buf_used(&in));
			CHECK(off <= buf_used(&in));
			CHECK(vlen <= buf_used(&in) - off);
			if (st == FRAME_OK || st == FRAME_BAD) {
				CHECK(used == off + vlen && vlen > 0);
				CHECK(vlen <= max);
				rec_add(r, st, dropped + off, vlen);
			} else if (st == FRAME_GARBAGE || st == FRAME_TOO_BIG) {
				rec_add(r, st, dropped + off, 0);
				buf_free(&in);
				return 0;
			} else
				CHECK(st == FRAME_NEED_MORE);
			buf_consume(&in, used);
			dropped += used;
			if (st == FRAME_NEED_MORE)
				break;
		}
		if (i == n)
			break;
	}
	left = buf_used(&in);
	CHECK(dropped + left == n);
	buf_free(&in);
	/* an idle buffer holds no memory */
	CHECK(in.cap == 0);
	return left;
}

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct recs	 a = { NULL, 0, 0 }, b = { NULL, 0, 0 };
	const char	*p;
	size_t		 n, max, la, lb, i, chunk;
	unsigned	 seed;

	if (size < 2)
		return 0;
	max = data[0] == 0xff ? SIZE_MAX : (size_t)data[0] * 4;
	seed = data[1];
	p = (const char *)data + 2;
	n = size - 2;

	la = scan(p, n, max, SIZE_MAX, 0, &a);
	for (i = 0; i < a.n; i++) {
		/* frames start with a value byte, BAD ones end on the bad byte */
		CHECK(strchr("{[\"", p[a.v[i].start]) != NULL ||
		    a.v[i].st == FRAME_GARBAGE || a.v[i].st == FRAME_TOO_BIG);
		if (a.v[i].st == FRAME_BAD)
			CHECK(strchr("\r\n", p[a.v[i].start + a.v[i].len - 1])
			    != NULL || p[a.v[i].start + a.v[i].len - 1] == '\0');
	}
	chunk = seed % 4 == 0 ? 0 : 1 + seed % 7;
	lb = scan(p, n, max, chunk, seed, &b);
	CHECK(la == lb);
	CHECK(a.n == b.n);
	for (i = 0; i < a.n; i++) {
		CHECK(a.v[i].st == b.v[i].st);
		CHECK(a.v[i].start == b.v[i].start);
		CHECK(a.v[i].len == b.v[i].len);
	}
	free(a.v);
	free(b.v);
	return 0;
}
