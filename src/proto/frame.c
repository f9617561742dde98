/*
 * frame.c - the frame splitter: where one request ends in a byte
 * stream.  Knows brackets, strings and separators, nothing of JSON's
 * grammar beyond that (decode.c checks the value).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <limits.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "proto.h"


void
frame_scanner_init(struct frame_scanner *s)
{
	memset(s, 0, sizeof(*s));
}

static int
is_sep(unsigned char c)
{
	return c == '\0' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * The bytes frame_next must look at inside a string: the quote, the
 * backslash and the bytes that end a broken string.  Runs of other
 * bytes are skipped.
 */
static const unsigned char frame_stop[256] = {
	['"'] = 1, ['\\'] = 1, ['\0'] = 1, ['\n'] = 1, ['\r'] = 1,
};

#ifdef __SSE2__
/*
 * How many of the first n bytes of a string at p are not stop bytes,
 * counted 16 at a time; the caller finishes the last partial block.
 */
static size_t
frame_skip16(const char *p, size_t n)
{
	const __m128i	 q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'),
			 nul = _mm_set1_epi8('\0'), nl = _mm_set1_epi8('\n'),
			 cr = _mm_set1_epi8('\r');
	__m128i		 v, m;
	size_t		 k;
	int		 bits;

	for (k = 0; k + 16 <= n; k += 16) {
		v = _mm_loadu_si128((const __m128i *)(const void *)(p + k));
		m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, q),
		    _mm_cmpeq_epi8(v, bs)), _mm_or_si128(_mm_cmpeq_epi8(v, nul),
		    _mm_or_si128(_mm_cmpeq_epi8(v, nl), _mm_cmpeq_epi8(v, cr))));
		if ((bits = _mm_movemask_epi8(m)) != 0)
			return k + (size_t)__builtin_ctz((unsigned)bits);
	}
	return k;
}
#endif

enum frame_status
frame_next(struct frame_scanner *s, const char *data, size_t len, size_t max,
    size_t *off, size_t *vlen, size_t *consumed)
{
	size_t		 start = 0, i, pos;
	unsigned char	 c;
	int		 depth, in_string, escape;

	*off = *vlen = *consumed = 0;
	if (!s->started) {
		while (start < len && is_sep((unsigned char)data[start]))
			start++;
		/* drop separators now: a stream of them must not pile up */
		*consumed = start;
		*off = start;
		if (start == len)
			return FRAME_NEED_MORE;
		c = (unsigned char)data[start];
		if (c != '{' && c != '[' && c != '"') {
			*vlen = 1;
			return FRAME_GARBAGE;
		}
		s->started = 1;
		s->first = (char)c;
		s->pos = 1;
		s->depth = c == '"' ? 0 : 1;
		s->in_string = c == '"';
		s->escape = 0;
	} else if (s->pos > len) {
		/* the caller dropped bytes it was not told to drop */
		frame_scanner_init(s);
		return FRAME_GARBAGE;
	}

	/*
	 * The state lives in locals while scanning: data is char, so the
	 * compiler would otherwise store and reload s->... on every byte.
	 */
	pos = s->pos;
	depth = s->depth;
	in_string = s->in_string;
	escape = s->escape;
	for (i = start + pos; ; ) {
		/*
		 * Every value needs at least one more byte to end, so one
		 * that reached max unfinished would exceed it: stop now.
		 */
		if (pos >= max) {
			*vlen = pos;
			frame_scanner_init(s);
			return FRAME_TOO_BIG;
		}
		if (i >= len)
			break;
		if (in_string && !escape) {
			/* a run of bytes that change nothing is passed at once */
			size_t k = 0, lim = len - i;

			if (lim > max - pos)
				lim = max - pos;
#ifdef __SSE2__
			k = frame_skip16(data + i, lim);
#endif
			while (k < lim &&
			    !frame_stop[(unsigned char)data[i + k]])
				k++;
			i += k;
			pos += k;
			if (k == lim)
				continue;
		}
		c = (unsigned char)data[i++];
		pos++;
		/*
		 * NUL is never JSON and ends every frame (the seed client's
		 * terminator); newline ends only a string.  Give the broken
		 * value back so the caller can answer it and resume after it.
		 */
		if (c == '\0' || (in_string && (c == '\n' || c == '\r'))) {
			*vlen = pos;
			*consumed = start + pos;
			frame_scanner_init(s);
			return FRAME_BAD;
		}
		if (in_string) {
			if (escape)
				escape = 0;
			else if (c == '\\')
				escape = 1;
			else if (c == '"') {
				in_string = 0;
				if (depth == 0)
					goto done;
			}
		} else if (c == '"')
			in_string = 1;
		else if (c == '{' || c == '[') {
			if (depth == INT_MAX) {
				*vlen = pos;
				frame_scanner_init(s);
				return FRAME_TOO_BIG;
			}
			depth++;
		} else if (c == '}' || c == ']') {
			/* "{]" just closes: json-c rejects it later */
			if (--depth == 0)
				goto done;
		}
	}
	s->pos = pos;
	s->depth = depth;
	s->in_string = in_string;
	s->escape = escape;
	*vlen = pos;
	return FRAME_NEED_MORE;

 done:
	*vlen = pos;
	*consumed = start + pos;
	frame_scanner_init(s);
	return FRAME_OK;
}
