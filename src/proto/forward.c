/*
 * forward.c - the forwarded form of a chat: the sender's object with
 * the real "id" and "name", a "time" the seed client can read, and the
 * server's "smid" when the chat is acknowledged.  Live, relayed and
 * offline copies are all this text.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "buf.h"
#include "proto.h"
#include "proto_impl.h"

/*
 * The text of a canonical chat (fast_parse), so that forwarding splices
 * the sender into a copy of it instead of copying the tree and
 * serialising the copy.  Spans are offsets into text.
 */
struct proto_fwd {
	size_t			 len;
	struct fast_span	 id, name, time;
	int			 time_is_str;
	size_t			 nkeys;		/* keys of root it matches */
	int64_t			 smid;		/* > 0: appended */
	char			 text[];
};

static struct fast_span
span_in(const struct fast_span *sp, size_t start)
{
	struct fast_span	 r = { 0, 0 };

	if (sp->len > 0) {
		r.off = sp->off - start;
		r.len = sp->len;
	}
	return r;
}

void
fwd_keep(struct proto_req *req, const char *frame, const struct fast_info *fi)
{
	struct proto_fwd	*f;
	size_t			 n = fi->end - fi->start;

	if ((f = malloc(sizeof(*f) + n)) == NULL)
		return;
	memcpy(f->text, frame + fi->start, n);
	f->len = n;
	f->id = span_in(&fi->id, fi->start);
	f->name = span_in(&fi->name, fi->start);
	f->time = span_in(&fi->time, fi->start);
	f->time_is_str = fi->time_is_str;
	f->nkeys = fi->nkeys;
	f->smid = -1;
	req->fwd = f;
}

void
fwd_free(struct proto_req *req)
{
	free(req->fwd);
	req->fwd = NULL;
}

#define FWD_TIME_BYTES	32

/*
 * The seed client's own time stamp, "YYYY-MM-DD HH:MM:SS" in local
 * time, into t (FWD_TIME_BYTES); returns its length.
 */
static size_t
fwd_time(char *t, time_t now)
{
	struct tm	 tm;
	size_t		 n;

	if (localtime_r(&now, &tm) == NULL ||
	    (n = strftime(t, FWD_TIME_BYTES, "%Y-%m-%d %H:%M:%S", &tm)) == 0) {
		/* a clock out of range: still a string of the seed's form */
		memcpy(t, "1970-01-01 00:00:00", 19);
		n = 19;
	}
	return n;
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

/* A span of the kept text and what replaces it. */
struct splice {
	struct fast_span	 at;
	const char		*p;	/* raw bytes, or a string to quote */
	size_t			 n;
	int			 quote;
};

/* proto_put_forward on the kept text; all or nothing. */
static int
put_forward_fast(struct buf *out, const struct proto_fwd *f,
    int32_t from_id, const char *from_name, size_t from_name_len,
    const char *tstamp, size_t tlen)
{
	struct splice	 sp[3], t;
	size_t		 at, used, i, k, nsp = 0;
	int		 n;
	char		 num[32];

	n = fmt_int64(num, from_id);
	/* the spans to replace, in text order */
	if (f->id.len > 0)
		sp[nsp++] = (struct splice){ f->id, num, (size_t)n, 0 };
	if (f->name.len > 0)
		sp[nsp++] = (struct splice){ f->name, from_name,
		    from_name_len, 1 };
	if (f->time.len > 0 && !f->time_is_str)
		sp[nsp++] = (struct splice){ f->time, tstamp, tlen, 1 };
	for (i = 1; i < nsp; i++)
		for (k = i; k > 0 && sp[k].at.off < sp[k - 1].at.off; k--) {
			t = sp[k];
			sp[k] = sp[k - 1];
			sp[k - 1] = t;
		}

	if (buf_reserve(out, f->len + from_name_len * 6 + 128) == -1)
		return -1;
	used = out->len;	/* the room is there: nothing moves now */
	at = 0;
	for (i = 0; i < nsp; i++) {
		if (buf_append(out, f->text + at, sp[i].at.off - at) == -1 ||
		    (sp[i].quote ? put_jstr(out, sp[i].p, sp[i].n) :
		    buf_append(out, sp[i].p, sp[i].n)) == -1)
			goto bad;
		at = sp[i].at.off + sp[i].at.len;
	}
	/* up to the closing brace, then what json-c would have added */
	if (buf_append(out, f->text + at, f->len - 1 - at) == -1)
		goto bad;
	if (f->smid > 0 && buf_printf(out, ",\"smid\":%lld",
	    (long long)f->smid) == -1)
		goto bad;
	if (f->id.len == 0 && (buf_append(out, ",\"id\":", 6) == -1 ||
	    buf_append(out, num, (size_t)n) == -1))
		goto bad;
	if (f->name.len == 0 && (buf_append(out, ",\"name\":", 8) ==
	    -1 || put_jstr(out, from_name, from_name_len) == -1))
		goto bad;
	if (f->time.len == 0 && (buf_append(out, ",\"time\":", 8) == -1 ||
	    put_jstr(out, tstamp, tlen) == -1))
		goto bad;
	if (buf_append(out, "}", 1) == -1)
		goto bad;
	return 0;

 bad:
	out->len = used;
	return -1;
}

int
proto_put_forward_at(struct buf *out, const struct proto_req *req,
    int32_t from_id, const char *from_name, size_t from_name_len, time_t now)
{
	struct json_object	*o = NULL, *t;
	char			 ts[FWD_TIME_BYTES];
	size_t			 tlen = 0;
	int			 has_time;

	if (req == NULL || req->root == NULL)
		return -1;
	/* most chats carry the sender's time: the clock is read only if not */
	has_time = json_object_object_get_ex(req->root, "time", &t) &&
	    json_object_is_type(t, json_type_string);
	if (!has_time)
		tlen = fwd_time(ts, now);
	if (req->fwd != NULL && (size_t)json_object_object_length(req->root) ==
	    req->fwd->nkeys)
		return put_forward_fast(out, req->fwd, from_id, from_name,
		    from_name_len, ts, tlen);
	/* a copy: req's strings point into root and must stay valid */
	if (json_object_deep_copy(req->root, &o, NULL) != 0 || o == NULL)
		return -1;
	if (reply_add(o, "id", json_object_new_int(from_id)) == -1 ||
	    reply_add(o, "name", reply_str(from_name, from_name_len)) == -1)
		goto bad;
	/* replaced in place when there, else added after "name" */
	if (!has_time && reply_add(o, "time", reply_str(ts, tlen)) == -1)
		goto bad;
	return reply_put_json(out, o, 0);

 bad:
	json_object_put(o);
	return -1;
}

int
proto_put_forward(struct buf *out, const struct proto_req *req,
    int32_t from_id, const char *from_name, size_t from_name_len)
{
	return proto_put_forward_at(out, req, from_id, from_name,
	    from_name_len, time(NULL));
}

int
proto_req_set_smid(struct proto_req *req, int64_t smid)
{
	if (req->root == NULL)
		return -1;
	/* the kept text has no "smid" (fwd_keep): it goes at the end */
	if (req->fwd != NULL) {
		if (req->fwd->smid > 0)
			req->fwd->nkeys--;
		req->fwd->smid = smid > 0 ? smid : -1;
		if (smid > 0)
			req->fwd->nkeys++;
	}
	req->smid = smid > 0 ? smid : 0;
	json_object_object_del(req->root, "smid");
	if (smid > 0 && reply_add(req->root, "smid",
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

int64_t
proto_line_smid_last(const char *line, size_t len)
{
	static const char	 key[] = "\"smid\":";
	const size_t		 klen = sizeof(key) - 1;
	size_t			 i, at;
	int64_t			 smid = 0;

	/* backwards: the server's is appended after the client's keys */
	for (at = len; at >= klen; at--)
		if (line[at - 1] == ':' && line[at - 2] == '"' &&
		    memcmp(line + at - klen, key, klen) == 0)
			break;
	if (at < klen)
		return 0;
	for (i = at; i < len && line[i] == ' '; i++)
		;
	for (; i < len && line[i] >= '0' && line[i] <= '9'; i++) {
		if (smid > (INT64_MAX - 9) / 10)
			return 0;
		smid = smid * 10 + (line[i] - '0');
	}
	return smid;
}
