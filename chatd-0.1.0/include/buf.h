/* buf.h - growable byte buffers that carry their length. */
#ifndef CHATD_BUF_H
#define CHATD_BUF_H

#include <stddef.h>

/*
 * Bytes [off, len) of data are live; [0, off) were consumed and are
 * reclaimed lazily.  A buffer with cap == 0 owns no memory, so idle
 * connections cost nothing beyond the struct itself.
 */
struct buf {
	char	*data;
	size_t	 off;
	size_t	 len;
	size_t	 cap;
};

#define BUF_INIT { NULL, 0, 0, 0 }

static inline size_t buf_used(const struct buf *b) { return b->len - b->off; }
/* Never NULL: an empty buffer that owns no memory gives "". */
static inline char *buf_head(const struct buf *b)
{
	return b->data != NULL ? b->data + b->off : (char *)"";
}

/* Make room for extra more bytes after len; 0 or -1 (ENOMEM). */
int	buf_reserve(struct buf *b, size_t extra);
int	buf_append(struct buf *b, const void *p, size_t n);
int	buf_append_str(struct buf *b, const char *s);
int	buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Drop n bytes from the front; frees the memory once nothing is left. */
void	buf_consume(struct buf *b, size_t n);
/* Release memory; the buffer is empty and reusable afterwards. */
void	buf_free(struct buf *b);

#endif
