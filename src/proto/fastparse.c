/*
 * fastparse.c - the fast path of proto_decode.
 *
 * Nearly every request is a flat object of strings and integers written
 * compactly (the seed client's dump()).  fast_parse() checks such a
 * request against the rules jc_lint() applies and builds the tree
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
 * real "id" and "name" (and a "time") into a copy of its text (proto_put_forward)
 * instead of copying the tree and serialising the copy.
 *
 * Pure and reentrant: what it learns goes into the caller's fast_info,
 * and unescaped strings into room that lives for one parse.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "proto.h"
#include "proto_impl.h"

static const char *const fast_keys[NFAST_KEYS] = {
	"id", "name", "smid", "msg", "msgid", "time", "toid", "groupid",
	"cmid", "password", "friendid", "groupname", "groupdesc", "seq",
	"upto", "ackoffline",
};

unsigned
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

/* Room for unescaped strings: one allocation per parse at most. */
struct scratch {
	char	*p;
	size_t	 cap;
};

static int
fast_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
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
    size_t *n, int *canon, struct scratch *sc)
{
	size_t		 k = *i + 1, start = k, q;
	long		 u, lo;
	int		 esc = 0;
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
		} else if ((q = jc_utf8_seq(p + k, len - k)) == 0)
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
	if (sc->cap < len) {
		free(sc->p);
		sc->cap = 0;
		if ((sc->p = malloc(len)) == NULL)
			return -1;
		sc->cap = len;
	}
	d = sc->p;
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
				size_t l = jc_utf8_seq(p + k, len - k);
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
			if ((u = jc_u_escape(p, len, k)) == -1)
				return -1;
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
				/* len - k >= 6 here: k + 6 is within p */
				lo = jc_u_escape(p, len, k + 6);
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
	if (k >= len || !jc_is_digit(p[k]))
		return -1;
	if (p[k] == '0') {
		if (neg)
			return -1;		/* "-0": json-c prints 0 */
		k++;
	} else
		for (; k < len && jc_is_digit(p[k]); k++) {
			if (mag > (UINT64_MAX - 9) / 10)
				return -1;
			mag = mag * 10 + (uint64_t)(p[k] - '0');
		}
	/* fractions, exponents and "01" go the slow way */
	if (k < len && (jc_is_word(p[k]) || p[k] == '.' || p[k] == '+' ||
	    p[k] == '-'))
		return -1;
	if (neg ? mag > (uint64_t)INT64_MAX + 1 : mag > (uint64_t)INT64_MAX)
		return -1;
	*out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
	*i = k;
	return 0;
}

struct json_object *
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
	struct scratch		 sc = { NULL, 0 };

	memset(fi, 0, sizeof(*fi));
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
			else if ((n = jc_utf8_seq(p + j, len - j)) == 0)
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
			if (fast_string(p, len, &i, &s, &n, &canon, &sc) == -1 ||
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
			    (len - i > n && jc_is_word(p[i + n])))
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
			fi->v[j] = val;
			fi->present |= 1u << j;
		}
		if (j == FK_ID) {
			fi->id.off = voff;
			fi->id.len = i - voff;
		} else if (j == FK_NAME) {
			fi->name.off = voff;
			fi->name.len = i - voff;
		} else if (j == FK_TIME) {
			fi->time.off = voff;
			fi->time.len = i - voff;
			fi->time_is_str = p[voff] == '"';
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
	free(sc.p);
	return root;

 slow:
	json_object_put(root);
	free(sc.p);
	memset(fi, 0, sizeof(*fi));
	return NULL;
}
