/* buf.c - growable byte buffers that carry their length. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define BUF_MIN	256

/*
 * Freed buffers kept for the next buffer that starts from empty: a
 * connection's output is freed each time it is written out (idle
 * connections hold nothing) and needed again a moment later, and every
 * forwarded chat builds its line in a fresh buffer.  Bounded per
 * thread (BUF_SPARE_MAX buffers of at most BUF_SPARE_CAP bytes), so an
 * idle server keeps at most that much.
 */
#define BUF_SPARE_MAX	64
#define BUF_SPARE_CAP	(16 * 1024)

static __thread struct {
	char	*p;
	size_t	 cap;
} spare[BUF_SPARE_MAX];
static __thread int	 nspare;

/* Move the live bytes to the front so [len, cap) is all free. */
static void
buf_compact(struct buf *b)
{
	size_t	 used = buf_used(b);

	if (b->off == 0)
		return;
	if (used > 0)
		memmove(b->data, b->data + b->off, used);
	b->off = 0;
	b->len = used;
}

int
buf_reserve(struct buf *b, size_t extra)
{
	size_t	 used, need, ncap;
	char	*p;

	if (b->cap - b->len >= extra)
		return 0;
	used = buf_used(b);
	if (extra > SIZE_MAX - used) {
		errno = ENOMEM;
		return -1;
	}
	need = used + extra;
	/* reclaiming the consumed front may be enough */
	if (b->cap >= need) {
		buf_compact(b);
		return 0;
	}
	ncap = b->cap < BUF_MIN ? BUF_MIN : b->cap;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	/* ncap was sized for the live bytes only: they must start at 0 */
	buf_compact(b);
	if (b->data == NULL && nspare > 0) {
		nspare--;
		b->data = spare[nspare].p;
		b->cap = spare[nspare].cap;
		if (b->cap >= need)
			return 0;
	}
	if ((p = realloc(b->data, ncap)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_reserve(b, n) == -1)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if (n == 0)
		return 0;
	/* vsnprintf writes a NUL too; it lands in spare room, not in len */
	if ((size_t)n == SIZE_MAX || buf_reserve(b, (size_t)n + 1) == -1)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	b->len += (size_t)n;
	return 0;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= buf_used(b)) {
		/* idle connections must hold no buffer memory */
		buf_free(b);
		return;
	}
	b->off += n;
	if (b->off > b->cap / 2)
		buf_compact(b);
}

void
buf_free(struct buf *b)
{
	if (b == NULL)
		return;
	if (b->data != NULL && b->cap <= BUF_SPARE_CAP &&
	    nspare < BUF_SPARE_MAX) {
		spare[nspare].p = b->data;
		spare[nspare].cap = b->cap;
		nspare++;
	} else
		free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}
