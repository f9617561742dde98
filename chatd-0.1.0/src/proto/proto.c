/* proto.c - framing, request decoding and replies; pure, no I/O. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "buf.h"
#include "proto.h"

#define JSON_OUT	\
	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

const char *
proto_strerror(int code)
{
	switch (code) {
	case ERR_OK:
		return "success";
	case ERR_AUTH:
		return "wrong id or password, or name taken";
	case ERR_ONLINE:
		return "user already online";
	case ERR_MALFORMED:
		return "malformed JSON";
	case ERR_NOT_OBJECT:
		return "request is not a JSON object";
	case ERR_UNKNOWN_MSGID:
		return "unknown msgid";
	case ERR_MISSING_FIELD:
		return "missing field";
	case ERR_WRONG_TYPE:
		return "field has the wrong type";
	case ERR_BAD_VALUE:
		return "bad value";
	case ERR_TOO_LONG:
		return "value too long";
	case ERR_NOT_LOGGED_IN:
		return "not logged in";
	case ERR_IDENTITY:
		return "request claims another user";
	case ERR_NO_SUCH_USER:
		return "no such user";
	case ERR_NO_SUCH_GROUP:
		return "no such group";
	case ERR_NOT_MEMBER:
		return "not a member of the group";
	case ERR_NOT_ALLOWED:
		return "not allowed";
	case ERR_EXISTS:
		return "group name taken";
	case ERR_UNAVAILABLE:
		return "service unavailable, retry later";
	case ERR_RATE:
		return "too many requests";
	case ERR_FRAME_TOO_BIG:
		return "request too big";
	case ERR_ALREADY_LOGGED_IN:
		return "already logged in";
	case ERR_LIMIT:
		return "limit reached";
	}
	return "unknown error";
}

/* ---- frame splitter ------------------------------------------------ */

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
		if (in_string) {
			if (c == '\0' || c == '\n' || c == '\r') {
				/* give the broken value back so the caller can
				 * answer it and resume after it */
				*vlen = pos;
				*consumed = start + pos;
				frame_scanner_init(s);
				return FRAME_BAD;
			}
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

/* ---- requests ------------------------------------------------------ */

static void fail_set(struct proto_fail *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail_set(struct proto_fail *fail, int code, const char *fmt, ...)
{
	va_list	 ap;

	fail->code = code;
	va_start(ap, fmt);
	vsnprintf(fail->text, sizeof(fail->text), fmt, ap);
	va_end(ap);
}

static int
msgid_known(int64_t m)
{
	switch (m) {
	case MSG_LOGIN:
	case MSG_LOGINOUT:
	case MSG_REG:
	case MSG_ONE_CHAT:
	case MSG_ADD_FRIEND:
	case MSG_CREATE_GROUP:
	case MSG_ADD_GROUP:
	case MSG_GROUP_CHAT:
	case MSG_PING:
	case MSG_WHOAMI:
	case MSG_OFFLINE_ACK:
		return 1;
	}
	return 0;
}

static int
is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

/* The code unit of "\uXXXX" at p[i]; -1 if there is none. */
static long
u_escape(const unsigned char *p, size_t len, size_t i)
{
	long	 v = 0;
	size_t	 k;

	if (len - i < 6 || p[i] != '\\' || p[i + 1] != 'u')
		return -1;
	for (k = i + 2; k < i + 6; k++) {
		if (!is_hex(p[k]))
			return -1;
		v = v * 16 +
		    (p[k] <= '9' ? p[k] - '0' : (p[k] | 0x20) - 'a' + 10);
	}
	return v;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629), 0 if none. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char	 lo = 0x80, hi = 0xbf;
	size_t		 need, k;

	if (p[0] < 0x80)
		return 1;
	if (p[0] < 0xc2)
		return 0;
	if (p[0] < 0xe0)
		need = 2;
	else if (p[0] < 0xf0) {
		need = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;	/* overlong */
		if (p[0] == 0xed)
			hi = 0x9f;	/* UTF-16 surrogates */
	} else if (p[0] < 0xf5) {
		need = 4;
		if (p[0] == 0xf0)
			lo = 0x90;	/* overlong */
		if (p[0] == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else
		return 0;
	if (n < need || p[1] < lo || p[1] > hi)
		return 0;
	for (k = 2; k < need; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	return need;
}

/*
 * The lexer below returns 0, or -1 with *code and *why set; *i is the
 * position in p, moved past the token.
 */
#define LINT_FAIL(c, w)	\
	do { *code = (c); *why = (w); return -1; } while (0)

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
is_word(unsigned char c)
{
	return is_digit(c) || c == '_' ||
	    ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

static int
lint_string(const unsigned char *p, size_t len, size_t *i, int *code,
    const char **why)
{
	size_t	 k = *i + 1, n;
	long	 u;

	for (;;) {
		if (k >= len)
			LINT_FAIL(ERR_MALFORMED, "unterminated string");
		if (p[k] == '"')
			break;
		if (p[k] < 0x20)
			LINT_FAIL(ERR_MALFORMED,
			    "raw control character in a string");
		if (p[k] == '\\' && k + 1 < len && p[k + 1] != 'u') {
			if (p[k + 1] == '\0' ||
			    strchr("\"\\/bfnrt", p[k + 1]) == NULL)
				LINT_FAIL(ERR_MALFORMED,
				    "bad escape in a string");
			k += 2;
		} else if (p[k] == '\\') {
			if ((u = u_escape(p, len, k)) == -1)
				LINT_FAIL(ERR_MALFORMED,
				    "bad \\u escape in a string");
			k += 6;
			if (u >= 0xdc00 && u <= 0xdfff)
				LINT_FAIL(ERR_BAD_VALUE,
				    "lone low surrogate escape");
			if (u >= 0xd800 && u <= 0xdbff) {
				u = u_escape(p, len, k);
				if (u < 0xdc00 || u > 0xdfff)
					LINT_FAIL(ERR_BAD_VALUE,
					    "lone high surrogate escape");
				k += 6;
			}
		} else {
			if ((n = utf8_seq(p + k, len - k)) == 0)
				LINT_FAIL(ERR_BAD_VALUE, "invalid UTF-8");
			k += n;
		}
	}
	*i = k + 1;
	return 0;
}

static int
lint_number(const unsigned char *p, size_t len, size_t *i, int *code,
    const char **why)
{
	size_t		 k = *i, j;
	uint64_t	 mag = 0;
	int		 neg, isint = 1, over = 0;

	if ((neg = p[k] == '-'))
		k++;
	if (k >= len || !is_digit(p[k]))
		LINT_FAIL(ERR_MALFORMED, "bad number");
	if (p[k] == '0')
		k++;
	else
		for (; k < len && is_digit(p[k]); k++) {
			if (mag > (UINT64_MAX - (p[k] - '0')) / 10)
				over = 1;
			mag = mag * 10 + (p[k] - '0');
		}
	if (k < len && p[k] == '.') {
		isint = 0;
		for (j = ++k; k < len && is_digit(p[k]); k++)
			;
		if (k == j)
			LINT_FAIL(ERR_MALFORMED, "bad number");
	}
	if (k < len && (p[k] == 'e' || p[k] == 'E')) {
		isint = 0;
		if (++k < len && (p[k] == '+' || p[k] == '-'))
			k++;
		for (j = k; k < len && is_digit(p[k]); k++)
			;
		if (k == j)
			LINT_FAIL(ERR_MALFORMED, "bad number");
	}
	/* "01", "1.2.3", "1x": json-c takes some of these */
	if (k < len && (is_word(p[k]) || p[k] == '.' || p[k] == '+' ||
	    p[k] == '-'))
		LINT_FAIL(ERR_MALFORMED, "bad number");
	/* json-c would clamp these: the value would change */
	if (isint && (over || (neg && mag > (uint64_t)INT64_MAX + 1)))
		LINT_FAIL(ERR_BAD_VALUE, "integer out of range");
	*i = k;
	return 0;
}

/*
 * json-c's strict mode still takes NaN, Infinity, "1.", "-01",
 * single-quoted keys, raw control characters in strings, overlong and
 * surrogate UTF-8, clamps huge integers and silently replaces lone
 * surrogate escapes.  We forward values to clients that reject all of
 * that, so check the raw text against RFC 8259 here; json-c checks the
 * structure.
 */
static int
json_lint(const char *frame, size_t len, int *code, const char **why)
{
	const unsigned char	*p = (const unsigned char *)frame;
	size_t			 i = 0, j;

	while (i < len) {
		if (strchr(" \t\r\n{}[]:,", p[i]) != NULL && p[i] != '\0')
			i++;
		else if (p[i] == '"') {
			if (lint_string(p, len, &i, code, why) == -1)
				return -1;
		} else if (p[i] == '-' || is_digit(p[i])) {
			if (lint_number(p, len, &i, code, why) == -1)
				return -1;
		} else if (is_word(p[i])) {
			for (j = i; i < len && is_word(p[i]); i++)
				;
			if (!((i - j == 4 && memcmp(p + j, "true", 4) == 0) ||
			    (i - j == 5 && memcmp(p + j, "false", 5) == 0) ||
			    (i - j == 4 && memcmp(p + j, "null", 4) == 0)))
				LINT_FAIL(ERR_MALFORMED, "unexpected literal");
		} else
			LINT_FAIL(ERR_MALFORMED, "unexpected character");
	}
	return 0;
}

static const struct proto_limits no_limits = {
	SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX
};

/* ---- fast path ------------------------------------------------------ */

/*
 * Nearly every request is a flat object of strings and integers written
 * compactly (the seed client's dump()).  fast_parse() checks such a
 * request against the rules json_lint() applies and builds the tree
 * json_tokener would build, in one pass and without the tokener, which
 * switches the thread's locale (newlocale, uselocale, freelocale: a
 * process-wide lock and several allocations) on every parse.  It gives
 * up (NULL) on everything else: nesting, fractions and exponents,
 * integers outside int64, "-0", keys with escapes, and every error, so
 * the slow path still decides and words each answer exactly as before.
 *
 * It also notes whether the text is exactly what json-c would write for
 * the tree (no blanks, no escape json-c would not write, no repeated
 * key).  A chat whose text is canonical is forwarded by splicing the
 * real "id" and "name" into a copy of its text (proto_put_forward)
 * instead of copying the tree and serialising the copy.
 */

struct fast_info {
	int		 canonical;
	size_t		 start, end;		/* the object in frame */
	size_t		 id_off, id_len;	/* value of "id"; 0: absent */
	size_t		 name_off, name_len;	/* value of "name" */
	int		 has_smid;
	size_t		 nkeys;
};

/* Keys of the protocol: added as constants, not copied. */
enum fast_key {
	FK_ID, FK_NAME, FK_SMID, FK_MSG, FK_MSGID, FK_TIME, FK_TOID,
	FK_GROUPID, FK_CMID, FK_PASSWORD, FK_FRIENDID, FK_GROUPNAME,
	FK_GROUPDESC, FK_SEQ, FK_UPTO, FK_ACKOFFLINE, NFAST_KEYS
};
static const char *const fast_keys[NFAST_KEYS] = {
	"id", "name", "smid", "msg", "msgid", "time", "toid", "groupid",
	"cmid", "password", "friendid", "groupname", "groupdesc", "seq",
	"upto", "ackoffline",
};

/* The fast_key of the n bytes at k, or NFAST_KEYS. */
static unsigned
fast_key(const char *k, size_t n)
{
	/* compares of constant length: the compiler inlines them */
#define IS(w)	(memcmp(k, w, sizeof(w) - 1) == 0)
	switch (n) {
	case 2:
		return IS("id") ? FK_ID : NFAST_KEYS;
	case 3:
		return IS("msg") ? FK_MSG : IS("seq") ? FK_SEQ : NFAST_KEYS;
	case 4:
		switch (k[0]) {
		case 'n':
			return IS("name") ? FK_NAME : NFAST_KEYS;
		case 's':
			return IS("smid") ? FK_SMID : NFAST_KEYS;
		case 't':
			return IS("time") ? FK_TIME : IS("toid") ? FK_TOID :
			    NFAST_KEYS;
		case 'c':
			return IS("cmid") ? FK_CMID : NFAST_KEYS;
		case 'u':
			return IS("upto") ? FK_UPTO : NFAST_KEYS;
		}
		return NFAST_KEYS;
	case 5:
		return IS("msgid") ? FK_MSGID : NFAST_KEYS;
	case 7:
		return IS("groupid") ? FK_GROUPID : NFAST_KEYS;
	case 8:
		return IS("password") ? FK_PASSWORD : IS("friendid") ?
		    FK_FRIENDID : NFAST_KEYS;
	case 9:
		return IS("groupname") ? FK_GROUPNAME : IS("groupdesc") ?
		    FK_GROUPDESC : NFAST_KEYS;
	case 10:
		return IS("ackoffline") ? FK_ACKOFFLINE : NFAST_KEYS;
	}
	return NFAST_KEYS;
#undef IS
}

/*
 * The values of the protocol's keys in the tree fast_parse built last,
 * so that checking the fields needs no hash lookups.  Valid only for
 * that root and only until proto_decode returns.
 */
static __thread struct {
	const struct json_object *root;
	struct json_object	*v[NFAST_KEYS];
	unsigned		 present;
} fast_seen;

/* Scratch room for unescaped strings, kept between calls. */
static __thread char	*fast_scratch;
static __thread size_t	 fast_scratch_cap;

static int
fast_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* UTF-8 of code point u into q; returns the length. */
static size_t
utf8_put(char *q, long u)
{
	if (u < 0x80) {
		q[0] = (char)u;
		return 1;
	}
	if (u < 0x800) {
		q[0] = (char)(0xc0 | (u >> 6));
		q[1] = (char)(0x80 | (u & 0x3f));
		return 2;
	}
	if (u < 0x10000) {
		q[0] = (char)(0xe0 | (u >> 12));
		q[1] = (char)(0x80 | ((u >> 6) & 0x3f));
		q[2] = (char)(0x80 | (u & 0x3f));
		return 3;
	}
	q[0] = (char)(0xf0 | (u >> 18));
	q[1] = (char)(0x80 | ((u >> 12) & 0x3f));
	q[2] = (char)(0x80 | ((u >> 6) & 0x3f));
	q[3] = (char)(0x80 | (u & 0x3f));
	return 4;
}

/*
 * The string whose opening quote is p[*i].  0 with *i past the closing
 * quote and the value in *s, *n (pointing into p when it has no escape,
 * else into the scratch room); -1 when the slow path must decide.
 * Clears *canon on an escape json-c would not write.
 */
static int
fast_string(const unsigned char *p, size_t len, size_t *i, const char **s,
    size_t *n, int *canon)
{
	size_t		 k = *i + 1, start = k, q;
	long		 u, lo;
	int		 esc = 0, h;
	char		*d;

	/* a plain run first: most strings end here */
	for (;;) {
		if (k >= len)
			return -1;
		if (p[k] == '"')
			break;
		if (p[k] == '\\') {
			esc = 1;
			break;
		}
		if (p[k] < 0x80) {
			if (p[k] < 0x20)
				return -1;
			k++;
		} else if ((q = utf8_seq(p + k, len - k)) == 0)
			return -1;
		else
			k += q;
	}
	if (!esc) {
		*s = (const char *)p + start;
		*n = k - start;
		*i = k + 1;
		return 0;
	}
	/* unescape: never longer than the text */
	if (fast_scratch_cap < len) {
		free(fast_scratch);
		fast_scratch_cap = 0;
		if ((fast_scratch = malloc(len)) == NULL)
			return -1;
		fast_scratch_cap = len;
	}
	d = fast_scratch;
	memcpy(d, p + start, k - start);
	q = k - start;
	for (;;) {
		if (k >= len)
			return -1;
		if (p[k] == '"')
			break;
		if (p[k] != '\\') {
			if (p[k] < 0x20)
				return -1;
			if (p[k] < 0x80)
				d[q++] = (char)p[k++];
			else {
				size_t l = utf8_seq(p + k, len - k);
				if (l == 0)
					return -1;
				memcpy(d + q, p + k, l);
				q += l;
				k += l;
			}
			continue;
		}
		if (k + 1 >= len)
			return -1;
		switch (p[k + 1]) {
		case '"':  d[q++] = '"';  break;
		case '\\': d[q++] = '\\'; break;
		case 'b':  d[q++] = '\b'; break;
		case 'f':  d[q++] = '\f'; break;
		case 'n':  d[q++] = '\n'; break;
		case 'r':  d[q++] = '\r'; break;
		case 't':  d[q++] = '\t'; break;
		case '/':  d[q++] = '/'; *canon = 0; break;
		case 'u':
			if (len - k < 6)
				return -1;
			for (u = 0, h = 2; h < 6; h++) {
				int x = hexval(p[k + h]);
				if (x < 0)
					return -1;
				u = u * 16 + x;
			}
			/* json-c writes \u00xx, lower case, for the
			 * control characters without a short escape */
			if (u >= 0x20 || u == '\b' || u == '\f' || u == '\n' ||
			    u == '\r' || u == '\t' || p[k + 2] != '0' ||
			    p[k + 3] != '0' || (p[k + 4] >= 'A' &&
			    p[k + 4] <= 'F') || (p[k + 5] >= 'A' &&
			    p[k + 5] <= 'F'))
				*canon = 0;
			if (u >= 0xdc00 && u <= 0xdfff)
				return -1;
			if (u >= 0xd800 && u <= 0xdbff) {
				if (len - k < 12 || p[k + 6] != '\\' ||
				    p[k + 7] != 'u')
					return -1;
				for (lo = 0, h = 8; h < 12; h++) {
					int x = hexval(p[k + h]);
					if (x < 0)
						return -1;
					lo = lo * 16 + x;
				}
				if (lo < 0xdc00 || lo > 0xdfff)
					return -1;
				u = 0x10000 + ((u - 0xd800) << 10) +
				    (lo - 0xdc00);
				k += 6;
			}
			q += utf8_put(d + q, u);
			k += 6;
			continue;
		default:
			return -1;
		}
		k += 2;
	}
	*s = d;
	*n = q;
	*i = k + 1;
	return 0;
}

/* An integer json-c keeps as int64 and prints as written; else -1. */
static int
fast_int(const unsigned char *p, size_t len, size_t *i, int64_t *out)
{
	size_t		 k = *i;
	uint64_t	 mag = 0;
	int		 neg = 0;

	if (p[k] == '-') {
		neg = 1;
		k++;
	}
	if (k >= len || !is_digit(p[k]))
		return -1;
	if (p[k] == '0') {
		if (neg)
			return -1;		/* "-0": json-c prints 0 */
		k++;
	} else
		for (; k < len && is_digit(p[k]); k++) {
			if (mag > (UINT64_MAX - 9) / 10)
				return -1;
			mag = mag * 10 + (uint64_t)(p[k] - '0');
		}
	/* fractions, exponents and "01" go the slow way */
	if (k < len && (is_word(p[k]) || p[k] == '.' || p[k] == '+' ||
	    p[k] == '-'))
		return -1;
	if (neg ? mag > (uint64_t)INT64_MAX + 1 : mag > (uint64_t)INT64_MAX)
		return -1;
	*out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
	*i = k;
	return 0;
}

static struct json_object *
fast_parse(const char *frame, size_t len, struct fast_info *fi)
{
	const unsigned char	*p = (const unsigned char *)frame;
	struct json_object	*root, *val;
	const char		*key, *s;
	char			 kbuf[64];
	size_t			 i = 0, klen, n, j, voff;
	int64_t			 iv;
	int			 flags, canon = 1;
	unsigned		 seen = 0;

	memset(fi, 0, sizeof(*fi));
	fast_seen.root = NULL;
	fast_seen.present = 0;
	while (i < len && fast_ws(p[i]))
		i++;
	if (i >= len || p[i] != '{')
		return NULL;
	fi->start = i++;
	if ((root = json_object_new_object()) == NULL)
		return NULL;
	if (i < len && fast_ws(p[i]))
		canon = 0;
	while (i < len && fast_ws(p[i]))
		i++;
	if (i < len && p[i] == '}')
		goto close;
	for (;;) {
		/* key: no escapes here */
		if (i >= len || p[i] != '"')
			goto slow;
		for (j = i + 1; j < len && p[j] != '"'; ) {
			if (p[j] == '\\' || p[j] < 0x20)
				goto slow;
			if (p[j] < 0x80)
				j++;
			else if ((n = utf8_seq(p + j, len - j)) == 0)
				goto slow;
			else
				j += n;
		}
		if (j >= len)
			goto slow;
		key = (const char *)p + i + 1;
		klen = j - i - 1;
		i = j + 1;
		if (i < len && p[i] != ':')
			canon = 0;
		while (i < len && fast_ws(p[i]))
			i++;
		if (i >= len || p[i] != ':')
			goto slow;
		i++;
		if (i < len && fast_ws(p[i]))
			canon = 0;
		while (i < len && fast_ws(p[i]))
			i++;
		if (i >= len)
			goto slow;
		voff = i;
		switch (p[i]) {
		case '"':
			if (fast_string(p, len, &i, &s, &n, &canon) == -1 ||
			    (val = json_object_new_string_len(n > 0 ? s : "",
			    (int)n)) == NULL)
				goto slow;
			break;
		case 't':
		case 'f':
		case 'n':
			n = p[i] == 'f' ? 5 : 4;
			if (len - i < n || memcmp(p + i, p[i] == 't' ? "true" :
			    p[i] == 'f' ? "false" : "null", n) != 0 ||
			    (len - i > n && is_word(p[i + n])))
				goto slow;
			i += n;
			val = NULL;
			if (p[voff] != 'n' && (val = json_object_new_boolean(
			    p[voff] == 't')) == NULL)
				goto slow;
			break;
		default:
			if (fast_int(p, len, &i, &iv) == -1 ||
			    (val = json_object_new_int64(iv)) == NULL)
				goto slow;
			break;
		}
		/*
		 * The protocol's keys are constants, and new ones skip the
		 * lookup for a key to replace; others are copied.
		 */
		flags = 0;
		if ((j = fast_key(key, klen)) < NFAST_KEYS) {
			key = fast_keys[j];
			flags = JSON_C_OBJECT_ADD_CONSTANT_KEY;
			if (!(seen & (1u << j)))
				flags |= JSON_C_OBJECT_ADD_KEY_IS_NEW;
			seen |= 1u << j;
		} else {
			if (klen >= sizeof(kbuf)) {
				json_object_put(val);
				goto slow;
			}
			memcpy(kbuf, key, klen);
			kbuf[klen] = '\0';
			key = kbuf;
		}
		n = (size_t)json_object_object_length(root);
		if (json_object_object_add_ex(root, key, val, flags) != 0) {
			json_object_put(val);
			goto slow;
		}
		if ((size_t)json_object_object_length(root) == n)
			canon = 0;		/* a repeated key: replaced */
		if (j < NFAST_KEYS) {
			fast_seen.v[j] = val;
			fast_seen.present |= 1u << j;
		}
		if (j == FK_ID) {
			fi->id_off = voff;
			fi->id_len = i - voff;
		} else if (j == FK_NAME) {
			fi->name_off = voff;
			fi->name_len = i - voff;
		} else if (j == FK_SMID)
			fi->has_smid = 1;
		if (i < len && fast_ws(p[i]))
			canon = 0;
		while (i < len && fast_ws(p[i]))
			i++;
		if (i >= len)
			goto slow;
		if (p[i] == '}')
			break;
		if (p[i] != ',')
			goto slow;
		i++;
		if (i < len && fast_ws(p[i]))
			canon = 0;
		while (i < len && fast_ws(p[i]))
			i++;
	}
 close:
	fi->end = ++i;
	/* nothing but blanks may follow */
	for (; i < len; i++)
		if (!fast_ws(p[i]))
			goto slow;
	fi->canonical = canon;
	fi->nkeys = (size_t)json_object_object_length(root);
	fast_seen.root = root;
	return root;

 slow:
	json_object_put(root);
	fast_seen.present = 0;
	return NULL;
}

/* json_object_object_get_ex, answered from fast_seen when it can. */
static int
obj_get(struct json_object *root, const char *key, struct json_object **v)
{
	size_t	 j, n;

	if (root != NULL && root == fast_seen.root) {
		n = strlen(key);
		if ((j = fast_key(key, n)) < NFAST_KEYS) {
			*v = fast_seen.v[j];
			return (fast_seen.present >> j) & 1;
		}
	}
	return json_object_object_get_ex(root, key, v);
}

/* The request's text, kept for proto_put_forward. */
static void
fwd_keep(struct proto_req *req, const char *frame, const struct fast_info *fi)
{
	size_t	 n = fi->end - fi->start;

	if ((req->fwd = malloc(n)) == NULL)
		return;
	memcpy(req->fwd, frame + fi->start, n);
	req->fwd_len = n;
	req->fwd_id_off = fi->id_len ? fi->id_off - fi->start : 0;
	req->fwd_id_len = fi->id_len;
	req->fwd_name_off = fi->name_len ? fi->name_off - fi->start : 0;
	req->fwd_name_len = fi->name_len;
	req->fwd_nkeys = fi->nkeys;
	req->fwd_smid = -1;
}

/* Append s as json-c writes a string (JSON_OUT), quotes included. */
static int
put_jstr(struct buf *out, const char *s, size_t n)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 i, run;
	unsigned char		 c;
	char			 e[6];

	if (buf_reserve(out, n + 2) == -1 || buf_append(out, "\"", 1) == -1)
		return -1;
	for (i = 0; i < n; i = run) {
		for (run = i; run < n; run++) {
			c = (unsigned char)s[run];
			if (c < 0x20 || c == '"' || c == '\\')
				break;
		}
		if (buf_append(out, s + i, run - i) == -1)
			return -1;
		if (run == n)
			break;
		c = (unsigned char)s[run++];
		e[0] = '\\';
		switch (c) {
		case '"':  e[1] = '"';  break;
		case '\\': e[1] = '\\'; break;
		case '\b': e[1] = 'b';  break;
		case '\f': e[1] = 'f';  break;
		case '\n': e[1] = 'n';  break;
		case '\r': e[1] = 'r';  break;
		case '\t': e[1] = 't';  break;
		default:
			memcpy(e, "\\u00", 4);
			e[4] = hex[c >> 4];
			e[5] = hex[c & 0xf];
			if (buf_append(out, e, 6) == -1)
				return -1;
			continue;
		}
		if (buf_append(out, e, 2) == -1)
			return -1;
	}
	return buf_append(out, "\"", 1);
}

/* Decimal text of v (as "%lld" writes it) into p; returns its length. */
static int
fmt_int64(char *p, int64_t v)
{
	char		 t[24];
	uint64_t	 u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	int		 n = 0, k = 0;

	do {
		t[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		p[k++] = '-';
	while (n > 0)
		p[k++] = t[--n];
	return k;
}

/* proto_put_forward on the kept text; all or nothing. */
static int
put_forward_fast(struct buf *out, const struct proto_req *req,
    int32_t from_id, const char *from_name, size_t from_name_len)
{
	const char	*t = req->fwd;
	size_t		 at, used, a_off, a_len, b_off, b_len;
	int		 a_id, n;
	char		 num[32];

	/* the spans to replace, in text order: (a, then b) */
	a_id = req->fwd_id_len > 0 && (req->fwd_name_len == 0 ||
	    req->fwd_id_off < req->fwd_name_off);
	a_off = a_id ? req->fwd_id_off : req->fwd_name_off;
	a_len = a_id ? req->fwd_id_len : req->fwd_name_len;
	b_off = a_id ? req->fwd_name_off : req->fwd_id_off;
	b_len = a_id ? req->fwd_name_len : req->fwd_id_len;
	if (buf_reserve(out, req->fwd_len + from_name_len * 6 + 64) == -1)
		return -1;
	used = out->len;	/* the room is there: nothing moves now */
	n = fmt_int64(num, from_id);
	at = 0;
	if (a_len > 0) {
		if (buf_append(out, t, a_off) == -1 ||
		    (a_id ? buf_append(out, num, (size_t)n) : put_jstr(out,
		    from_name, from_name_len)) == -1)
			goto bad;
		at = a_off + a_len;
	}
	if (b_len > 0) {
		if (buf_append(out, t + at, b_off - at) == -1 ||
		    (!a_id ? buf_append(out, num, (size_t)n) : put_jstr(out,
		    from_name, from_name_len)) == -1)
			goto bad;
		at = b_off + b_len;
	}
	/* up to the closing brace, then what json-c would have added */
	if (buf_append(out, t + at, req->fwd_len - 1 - at) == -1)
		goto bad;
	if (req->fwd_smid > 0 && buf_printf(out, ",\"smid\":%lld",
	    (long long)req->fwd_smid) == -1)
		goto bad;
	if (req->fwd_id_len == 0 && (buf_append(out, ",\"id\":", 6) == -1 ||
	    buf_append(out, num, (size_t)n) == -1))
		goto bad;
	if (req->fwd_name_len == 0 && (buf_append(out, ",\"name\":", 8) ==
	    -1 || put_jstr(out, from_name, from_name_len) == -1))
		goto bad;
	if (buf_append(out, "}", 1) == -1)
		goto bad;
	return 0;

 bad:
	out->len = used;
	return -1;
}

/* 1 present, 0 absent, -1 wrong type or out of range (fail set). */
static int
get_id(struct json_object *root, const char *key, int32_t *out,
    struct proto_fail *fail)
{
	struct json_object	*v;
	int64_t			 n;

	if (!obj_get(root, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int)) {
		fail_set(fail, ERR_WRONG_TYPE,
		    "field \"%s\": expected an integer", key);
		return -1;
	}
	/* values above INT64_MAX read as INT64_MAX: out of range too */
	n = json_object_get_int64(v);
	if (n < 1 || n > INT32_MAX) {
		fail_set(fail, ERR_BAD_VALUE,
		    "field \"%s\": out of range 1..2147483647", key);
		return -1;
	}
	*out = (int32_t)n;
	return 1;
}

static int
need_id(struct json_object *root, const char *key, int32_t *out,
    struct proto_fail *fail)
{
	int	 rc;

	if ((rc = get_id(root, key, out, fail)) == 0) {
		fail_set(fail, ERR_MISSING_FIELD, "field \"%s\": missing", key);
		return -1;
	}
	return rc == 1 ? 0 : -1;
}

static int
get_str(struct json_object *root, const char *key, struct proto_str *out,
    struct proto_fail *fail)
{
	struct json_object	*v;
	int			 n;

	if (!obj_get(root, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		fail_set(fail, ERR_WRONG_TYPE,
		    "field \"%s\": expected a string", key);
		return -1;
	}
	n = json_object_get_string_len(v);
	out->p = json_object_get_string(v);
	out->len = n > 0 ? (size_t)n : 0;
	return 1;
}

static int
need_str(struct json_object *root, const char *key, struct proto_str *out,
    struct proto_fail *fail)
{
	int	 rc;

	if ((rc = get_str(root, key, out, fail)) == 0) {
		fail_set(fail, ERR_MISSING_FIELD, "field \"%s\": missing", key);
		return -1;
	}
	return rc == 1 ? 0 : -1;
}

/* Non-empty and within max bytes. */
static int
check_len(const char *key, const struct proto_str *s, size_t max,
    struct proto_fail *fail)
{
	if (s->len == 0) {
		fail_set(fail, ERR_BAD_VALUE, "field \"%s\": empty", key);
		return -1;
	}
	if (s->len > max) {
		fail_set(fail, ERR_TOO_LONG,
		    "field \"%s\": longer than %zu bytes", key, max);
		return -1;
	}
	return 0;
}

/* Names show up in lists and logs: no control characters. */
static int
check_name(const char *key, const struct proto_str *s, size_t max,
    struct proto_fail *fail)
{
	size_t		 i;
	unsigned char	 c;

	if (check_len(key, s, max, fail) == -1)
		return -1;
	for (i = 0; i < s->len; i++) {
		c = (unsigned char)s->p[i];
		if (c < 0x20 || c == 0x7f) {
			fail_set(fail, ERR_BAD_VALUE,
			    "field \"%s\": control character", key);
			return -1;
		}
	}
	return 0;
}

static int
decode_fields(struct json_object *root, const struct proto_limits *lim,
    struct proto_req *req, struct proto_fail *fail)
{
	struct json_object	*v;
	struct proto_str	 s;
	int64_t			 n;
	int			 rc;

	/* a ping may carry anything */
	if (req->msgid == MSG_PING)
		return 0;

	if ((rc = get_id(root, "id", &req->id, fail)) == -1)
		return -1;
	req->has_id = rc;
	if (obj_get(root, "cmid", &v)) {
		if (!json_object_is_type(v, json_type_int)) {
			fail_set(fail, ERR_WRONG_TYPE,
			    "field \"cmid\": expected an integer");
			return -1;
		}
		n = json_object_get_int64(v);
		/* above INT64_MAX reads as INT64_MAX: tell them apart */
		if (n < 0 || (n == INT64_MAX &&
		    json_object_get_uint64(v) != (uint64_t)INT64_MAX)) {
			fail_set(fail, ERR_BAD_VALUE,
			    "field \"cmid\": out of range 0..%lld",
			    (long long)INT64_MAX);
			return -1;
		}
		req->has_cmid = 1;
		req->cmid = n;
	}

	switch (req->msgid) {
	case MSG_LOGIN:
		if ((rc = get_str(root, "name", &s, fail)) == -1)
			return -1;
		/* by id when given; the name then is only type-checked */
		if (!req->has_id) {
			if (rc == 0) {
				fail_set(fail, ERR_MISSING_FIELD,
				    "field \"id\" or \"name\": missing");
				return -1;
			}
			if (check_name("name", &s, lim->max_name_bytes,
			    fail) == -1)
				return -1;
			req->name = s;
		}
		if (need_str(root, "password", &req->password, fail) == -1 ||
		    check_len("password", &req->password,
		    lim->max_password_bytes, fail) == -1)
			return -1;
		if (obj_get(root, "ackoffline", &v)) {
			if (!json_object_is_type(v, json_type_boolean)) {
				fail_set(fail, ERR_WRONG_TYPE, "field "
				    "\"ackoffline\": expected true or false");
				return -1;
			}
			req->ackoffline = json_object_get_boolean(v);
		}
		break;
	case MSG_OFFLINE_ACK:
		if (!obj_get(root, "upto", &v)) {
			fail_set(fail, ERR_MISSING_FIELD,
			    "field \"upto\": missing");
			return -1;
		}
		if (!json_object_is_type(v, json_type_int)) {
			fail_set(fail, ERR_WRONG_TYPE,
			    "field \"upto\": expected an integer");
			return -1;
		}
		req->upto = json_object_get_int64(v);
		if (req->upto < 0) {
			fail_set(fail, ERR_BAD_VALUE,
			    "field \"upto\": must not be negative");
			return -1;
		}
		break;
	case MSG_REG:
		if (need_str(root, "name", &req->name, fail) == -1 ||
		    check_name("name", &req->name, lim->max_name_bytes,
		    fail) == -1 ||
		    need_str(root, "password", &req->password, fail) == -1 ||
		    check_len("password", &req->password,
		    lim->max_password_bytes, fail) == -1)
			return -1;
		break;
	case MSG_LOGINOUT:
		break;
	case MSG_ONE_CHAT:
	case MSG_GROUP_CHAT:
		if (req->msgid == MSG_ONE_CHAT)
			rc = need_id(root, "toid", &req->toid, fail);
		else
			rc = need_id(root, "groupid", &req->groupid, fail);
		if (rc == -1 ||
		    need_str(root, "msg", &req->msg, fail) == -1 ||
		    check_len("msg", &req->msg, lim->max_message_bytes,
		    fail) == -1 ||
		    get_str(root, "name", &s, fail) == -1)
			return -1;
		break;
	case MSG_ADD_FRIEND:
		if (need_id(root, "friendid", &req->friendid, fail) == -1)
			return -1;
		break;
	case MSG_CREATE_GROUP:
		if (need_str(root, "groupname", &req->groupname, fail) == -1 ||
		    check_name("groupname", &req->groupname,
		    lim->max_name_bytes, fail) == -1)
			return -1;
		req->groupdesc.p = "";
		req->groupdesc.len = 0;
		if (get_str(root, "groupdesc", &req->groupdesc, fail) == -1)
			return -1;
		if (req->groupdesc.len > lim->max_groupdesc_bytes) {
			fail_set(fail, ERR_TOO_LONG,
			    "field \"groupdesc\": longer than %zu bytes",
			    lim->max_groupdesc_bytes);
			return -1;
		}
		break;
	case MSG_ADD_GROUP:
		if (need_id(root, "groupid", &req->groupid, fail) == -1)
			return -1;
		break;
	}
	return 0;
}

int
proto_decode(const char *frame, size_t len, const struct proto_limits *lim,
    struct proto_req *req, struct proto_fail *fail)
{
	struct json_tokener	*tok;
	struct json_object	*root = NULL, *v;
	enum json_tokener_error	 jerr;
	const char		*why = NULL;
	size_t			 end;
	int64_t			 m = 0;
	int			 lcode = 0, flags;
	struct fast_info	 fi;

	memset(req, 0, sizeof(*req));
	/* not all of fail: its text is only written on failure */
	fail->code = ERR_OK;
	fail->refmsgid = 0;
	fail->text[0] = '\0';
	fail->reply_msgid = MSG_ERROR;
	if (lim == NULL)
		lim = &no_limits;

	if (len == 0 || len > INT_MAX) {
		fail_set(fail, ERR_MALFORMED, "malformed JSON: %s",
		    len == 0 ? "empty request" : "request too big");
		return -1;
	}
	if ((root = fast_parse(frame, len, &fi)) != NULL)
		goto parsed;
	fi.canonical = 0;
	if (memchr(frame, '\0', len) != NULL) {
		fail_set(fail, ERR_MALFORMED, "malformed JSON: raw NUL byte");
		return -1;
	}
	if (json_lint(frame, len, &lcode, &why) == 0)
		lcode = 0;

	if ((tok = json_tokener_new()) == NULL) {
		fail_set(fail, ERR_UNAVAILABLE, "out of memory");
		return -1;
	}
	/* after a lint failure json-c only helps find the msgid */
	flags = JSON_TOKENER_STRICT;
	if (lcode == 0)
		flags |= JSON_TOKENER_VALIDATE_UTF8;
	json_tokener_set_flags(tok, flags);
	root = json_tokener_parse_ex(tok, frame, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (root == NULL && jerr == json_tokener_continue) {
		/* a bare number only ends at the end of input */
		root = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);

	if (jerr != json_tokener_success) {
		json_object_put(root);
		if (lcode != 0)
			fail_set(fail, lcode, "%s", why);
		else if (jerr == json_tokener_error_depth)
			fail_set(fail, ERR_MALFORMED,
			    "malformed JSON: nested too deeply");
		else if (jerr == json_tokener_error_parse_utf8_string)
			fail_set(fail, ERR_BAD_VALUE, "invalid UTF-8");
		else
			fail_set(fail, ERR_MALFORMED, "malformed JSON: %s",
			    json_tokener_error_desc(jerr));
		return -1;
	}
	for (; end < len; end++) {
		if (strchr(" \t\r\n", frame[end]) == NULL) {
			json_object_put(root);
			fail_set(fail, lcode != 0 ? lcode : ERR_MALFORMED,
			    "%s", lcode != 0 ? why :
			    "malformed JSON: more than one value");
			return -1;
		}
	}

 parsed:
	/* answer LOGIN and REG with their own ACK as soon as we know */
	if (json_object_is_type(root, json_type_object) &&
	    obj_get(root, "msgid", &v) &&
	    json_object_is_type(v, json_type_int)) {
		m = json_object_get_int64(v);
		if (m >= 1 && m <= INT32_MAX)
			fail->refmsgid = (int)m;
		if (m == MSG_LOGIN)
			fail->reply_msgid = MSG_LOGIN_ACK;
		else if (m == MSG_REG)
			fail->reply_msgid = MSG_REG_ACK;
	}

	if (lcode != 0) {
		fail_set(fail, lcode, "%s", why);
		goto bad;
	}
	if (!json_object_is_type(root, json_type_object)) {
		fail_set(fail, ERR_NOT_OBJECT, "not a JSON object");
		goto bad;
	}
	if (!obj_get(root, "msgid", &v)) {
		fail_set(fail, ERR_MISSING_FIELD, "field \"msgid\": missing");
		goto bad;
	}
	if (!json_object_is_type(v, json_type_int)) {
		fail_set(fail, ERR_WRONG_TYPE,
		    "field \"msgid\": expected an integer");
		goto bad;
	}
	if (!msgid_known(m)) {
		fail_set(fail, ERR_UNKNOWN_MSGID, "unknown msgid %lld",
		    (long long)json_object_get_int64(v));
		goto bad;
	}
	req->msgid = (int)m;
	if (decode_fields(root, lim, req, fail) == -1)
		goto bad;
	req->root = root;
	fast_seen.root = NULL;
	if (fi.canonical && (req->msgid == MSG_ONE_CHAT ||
	    req->msgid == MSG_GROUP_CHAT) && !fi.has_smid)
		fwd_keep(req, frame, &fi);
	return 0;

 bad:
	fast_seen.root = NULL;
	json_object_put(root);
	memset(req, 0, sizeof(*req));
	return -1;
}

void
proto_req_clear(struct proto_req *req)
{
	if (req == NULL)
		return;
	json_object_put(req->root);
	free(req->fwd);
	memset(req, 0, sizeof(*req));
}

/* ---- replies ------------------------------------------------------- */

static struct json_object *
new_str(const char *p, size_t len)
{
	if (len > INT_MAX)
		return NULL;
	return json_object_new_string_len(len == 0 ? "" : p, (int)len);
}

/* Adds v to o, taking ownership of v either way. */
static int
obj_add(struct json_object *o, const char *key, struct json_object *v)
{
	if (o == NULL || v == NULL || json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static int
arr_add(struct json_object *a, struct json_object *v)
{
	if (a == NULL || v == NULL || json_object_array_add(a, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

/* The seed client json::parse()s each list element: add o as text. */
static int
arr_add_text(struct json_object *a, struct json_object *o)
{
	const char	*s;
	size_t		 n;
	int		 rc = -1;

	if (o != NULL &&
	    (s = json_object_to_json_string_length(o, JSON_OUT, &n)) != NULL)
		rc = arr_add(a, new_str(s, n));
	json_object_put(o);
	return rc;
}

/* Appends o's text (and "\n" if nl) all or nothing; puts o. */
static int
put_json(struct buf *out, struct json_object *o, int nl)
{
	const char	*s;
	size_t		 n;
	int		 rc = -1;

	if (o != NULL &&
	    (s = json_object_to_json_string_length(o, JSON_OUT, &n)) != NULL &&
	    n < SIZE_MAX && buf_reserve(out, n + 1) == 0) {
		buf_append(out, s, n);
		if (nl)
			buf_append(out, "\n", 1);
		rc = 0;
	}
	json_object_put(o);
	return rc;
}

int
proto_put_error(struct buf *out, int reply_msgid, int code, int refmsgid,
    const char *text)
{
	struct json_object	*o;

	if (text == NULL)
		text = proto_strerror(code);
	o = json_object_new_object();
	if (obj_add(o, "msgid", json_object_new_int(reply_msgid)) == -1 ||
	    obj_add(o, "errno", json_object_new_int(code)) == -1 ||
	    obj_add(o, "errmsg", new_str(text, strlen(text))) == -1 ||
	    (refmsgid > 0 && reply_msgid == MSG_ERROR &&
	    obj_add(o, "refmsgid", json_object_new_int(refmsgid)) == -1)) {
		json_object_put(o);
		return -1;
	}
	return put_json(out, o, 1);
}

int
proto_put_reg_ack(struct buf *out, int32_t id)
{
	struct json_object	*o;

	o = json_object_new_object();
	if (obj_add(o, "msgid", json_object_new_int(MSG_REG_ACK)) == -1 ||
	    obj_add(o, "errno", json_object_new_int(ERR_OK)) == -1 ||
	    obj_add(o, "id", json_object_new_int(id)) == -1) {
		json_object_put(o);
		return -1;
	}
	return put_json(out, o, 1);
}

int
proto_put_pong(struct buf *out, const struct proto_req *ping)
{
	struct json_object	*o, *seq;

	o = json_object_new_object();
	if (obj_add(o, "msgid", json_object_new_int(MSG_PONG)) == -1)
		goto bad;
	/* shared, not copied: a double keeps its original text */
	if (ping != NULL && ping->root != NULL &&
	    json_object_is_type(ping->root, json_type_object) &&
	    json_object_object_get_ex(ping->root, "seq", &seq) &&
	    json_object_object_add(o, "seq", json_object_get(seq)) != 0) {
		json_object_put(seq);
		goto bad;
	}
	return put_json(out, o, 1);

 bad:
	json_object_put(o);
	return -1;
}

int
proto_put_chat_ack(struct buf *out, int64_t cmid, int64_t smid)
{
	struct json_object	*o;

	o = json_object_new_object();
	if (obj_add(o, "msgid", json_object_new_int(MSG_CHAT_ACK)) == -1 ||
	    obj_add(o, "cmid", json_object_new_int64(cmid)) == -1 ||
	    obj_add(o, "smid", json_object_new_int64(smid)) == -1) {
		json_object_put(o);
		return -1;
	}
	return put_json(out, o, 1);
}

/* {"id","name","state"[,"role"]} */
static struct json_object *
user_obj(const struct proto_user *u, int member)
{
	struct json_object	*o;

	o = json_object_new_object();
	if (obj_add(o, "id", json_object_new_int(u->id)) == -1 ||
	    obj_add(o, "name", new_str(u->name.p, u->name.len)) == -1 ||
	    obj_add(o, "state", json_object_new_string(u->online ?
	    "online" : "offline")) == -1 ||
	    (member && obj_add(o, "role", json_object_new_string(u->creator ?
	    "creator" : "normal")) == -1)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static struct json_object *
group_obj(const struct proto_group *g)
{
	struct json_object	*o, *users;
	size_t			 i;

	o = json_object_new_object();
	if (obj_add(o, "id", json_object_new_int(g->id)) == -1 ||
	    obj_add(o, "groupname", new_str(g->name.p, g->name.len)) == -1 ||
	    obj_add(o, "groupdesc", new_str(g->desc.p, g->desc.len)) == -1 ||
	    obj_add(o, "users", users = json_object_new_array()) == -1)
		goto bad;
	/* "users" is there even when empty: the seed client reads it blindly */
	for (i = 0; i < g->nmembers; i++)
		if (arr_add_text(users, user_obj(&g->members[i], 1)) == -1)
			goto bad;
	return o;

 bad:
	json_object_put(o);
	return NULL;
}

int
proto_put_login_ok(struct buf *out, const struct proto_login *l)
{
	struct json_object	*o, *a;
	size_t			 i;

	o = json_object_new_object();
	if (obj_add(o, "msgid", json_object_new_int(MSG_LOGIN_ACK)) == -1 ||
	    obj_add(o, "errno", json_object_new_int(ERR_OK)) == -1 ||
	    obj_add(o, "id", json_object_new_int(l->id)) == -1 ||
	    obj_add(o, "name", new_str(l->name.p, l->name.len)) == -1)
		goto bad;
	/* each list is attached first, so o owns it while it fills */
	if (l->noffline > 0) {
		if (obj_add(o, "offlinemsg", a = json_object_new_array()) == -1)
			goto bad;
		/* stored as the forwarded object's text: pass it as is */
		for (i = 0; i < l->noffline; i++)
			if (arr_add(a, new_str(l->offline[i].p,
			    l->offline[i].len)) == -1)
				goto bad;
	}
	if (l->ackoffline &&
	    (obj_add(o, "offlineupto", json_object_new_int64(l->offlineupto)) ==
	    -1 || obj_add(o, "offlinemore",
	    json_object_new_boolean(l->offlinemore)) == -1))
		goto bad;
	if (l->nfriends > 0) {
		if (obj_add(o, "friends", a = json_object_new_array()) == -1)
			goto bad;
		for (i = 0; i < l->nfriends; i++)
			if (arr_add_text(a, user_obj(&l->friends[i], 0)) == -1)
				goto bad;
	}
	if (l->ngroups > 0) {
		if (obj_add(o, "groups", a = json_object_new_array()) == -1)
			goto bad;
		for (i = 0; i < l->ngroups; i++)
			if (arr_add_text(a, group_obj(&l->groups[i])) == -1)
				goto bad;
	}
	return put_json(out, o, 1);

 bad:
	json_object_put(o);
	return -1;
}

int
proto_put_offline_batch(struct buf *out, const struct proto_str *msgs,
    size_t n, int64_t upto, int more)
{
	struct json_object	*o, *a;
	size_t			 i;

	o = json_object_new_object();
	if (obj_add(o, "msgid", json_object_new_int(MSG_OFFLINE_BATCH)) == -1 ||
	    obj_add(o, "offlinemsg", a = json_object_new_array()) == -1)
		goto bad;
	for (i = 0; i < n; i++)
		if (arr_add(a, new_str(msgs[i].p, msgs[i].len)) == -1)
			goto bad;
	if (obj_add(o, "offlineupto", json_object_new_int64(upto)) == -1 ||
	    obj_add(o, "offlinemore", json_object_new_boolean(more)) == -1)
		goto bad;
	return put_json(out, o, 1);

 bad:
	json_object_put(o);
	return -1;
}

int
proto_req_set_smid(struct proto_req *req, int64_t smid)
{
	if (req->root == NULL)
		return -1;
	/* the kept text has no "smid" (fwd_keep): it goes at the end */
	if (req->fwd != NULL) {
		if (req->fwd_smid > 0)
			req->fwd_nkeys--;
		req->fwd_smid = smid > 0 ? smid : -1;
		if (smid > 0)
			req->fwd_nkeys++;
	}
	json_object_object_del(req->root, "smid");
	if (smid > 0 && obj_add(req->root, "smid",
	    json_object_new_int64(smid)) == -1)
		return -1;
	return 0;
}

int64_t
proto_line_smid(const char *line, size_t len)
{
	struct json_tokener	*tok;
	struct json_object	*o, *v;
	int64_t			 smid = 0;

	/* most lines carry none: skip the parse */
	if (memmem(line, len, "\"smid\":", 7) == NULL)
		return 0;
	if ((tok = json_tokener_new()) == NULL)
		return 0;
	o = json_tokener_parse_ex(tok, line, (int)len);
	if (o != NULL && json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, "smid", &v) &&
	    json_object_is_type(v, json_type_int))
		smid = json_object_get_int64(v);
	json_object_put(o);
	json_tokener_free(tok);
	return smid > 0 ? smid : 0;
}

int
proto_put_forward(struct buf *out, const struct proto_req *req,
    int32_t from_id, const char *from_name, size_t from_name_len)
{
	struct json_object	*o = NULL;

	if (req == NULL || req->root == NULL)
		return -1;
	if (req->fwd != NULL && (size_t)json_object_object_length(req->root) ==
	    req->fwd_nkeys)
		return put_forward_fast(out, req, from_id, from_name,
		    from_name_len);
	/* a copy: req's strings point into root and must stay valid */
	if (json_object_deep_copy(req->root, &o, NULL) != 0 || o == NULL)
		return -1;
	if (obj_add(o, "id", json_object_new_int(from_id)) == -1 ||
	    obj_add(o, "name", new_str(from_name, from_name_len)) == -1) {
		json_object_put(o);
		return -1;
	}
	return put_json(out, o, 0);
}
