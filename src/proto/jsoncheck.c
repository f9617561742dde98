/*
 * jsoncheck.c - RFC 8259's lexical rules, checked on the raw text of a
 * request before json-c builds its tree (the slow path of decode.c).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <string.h>

#include "proto.h"
#include "proto_impl.h"

static int
is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

long
jc_u_escape(const unsigned char *p, size_t len, size_t i)
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

size_t
jc_utf8_seq(const unsigned char *p, size_t n)
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
			if ((u = jc_u_escape(p, len, k)) == -1)
				LINT_FAIL(ERR_MALFORMED,
				    "bad \\u escape in a string");
			k += 6;
			if (u >= 0xdc00 && u <= 0xdfff)
				LINT_FAIL(ERR_BAD_VALUE,
				    "lone low surrogate escape");
			if (u >= 0xd800 && u <= 0xdbff) {
				u = jc_u_escape(p, len, k);
				if (u < 0xdc00 || u > 0xdfff)
					LINT_FAIL(ERR_BAD_VALUE,
					    "lone high surrogate escape");
				k += 6;
			}
		} else {
			if ((n = jc_utf8_seq(p + k, len - k)) == 0)
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
	if (k >= len || !jc_is_digit(p[k]))
		LINT_FAIL(ERR_MALFORMED, "bad number");
	if (p[k] == '0')
		k++;
	else
		for (; k < len && jc_is_digit(p[k]); k++) {
			if (mag > (UINT64_MAX - (p[k] - '0')) / 10)
				over = 1;
			mag = mag * 10 + (p[k] - '0');
		}
	if (k < len && p[k] == '.') {
		isint = 0;
		for (j = ++k; k < len && jc_is_digit(p[k]); k++)
			;
		if (k == j)
			LINT_FAIL(ERR_MALFORMED, "bad number");
	}
	if (k < len && (p[k] == 'e' || p[k] == 'E')) {
		isint = 0;
		if (++k < len && (p[k] == '+' || p[k] == '-'))
			k++;
		for (j = k; k < len && jc_is_digit(p[k]); k++)
			;
		if (k == j)
			LINT_FAIL(ERR_MALFORMED, "bad number");
	}
	/* "01", "1.2.3", "1x": json-c takes some of these */
	if (k < len && (jc_is_word(p[k]) || p[k] == '.' || p[k] == '+' ||
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
int
jc_lint(const char *frame, size_t len, int *code, const char **why)
{
	const unsigned char	*p = (const unsigned char *)frame;
	size_t			 i = 0, j;

	while (i < len) {
		if (strchr(" \t\r\n{}[]:,", p[i]) != NULL && p[i] != '\0')
			i++;
		else if (p[i] == '"') {
			if (lint_string(p, len, &i, code, why) == -1)
				return -1;
		} else if (p[i] == '-' || jc_is_digit(p[i])) {
			if (lint_number(p, len, &i, code, why) == -1)
				return -1;
		} else if (jc_is_word(p[i])) {
			for (j = i; i < len && jc_is_word(p[i]); i++)
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
