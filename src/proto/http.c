/*
 * http.c - request heads and the RFC 6455 opening handshake.  Pure:
 * everything points into the caller's bytes; SHA-1 and base64 come from
 * OpenSSL's libcrypto.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "http.h"

#define WS_GUID	"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* tchar of RFC 9110: what a method or header name is made of */
static int
is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int
str_is(const struct http_str *s, const char *lit)
{
	size_t	 n = strlen(lit);

	return s->len == n && strncasecmp(s->p, lit, n) == 0;
}

/* Whether a comma-separated header value lists token (no case). */
static int
list_has(const char *p, size_t len, const char *token)
{
	size_t	 i = 0, start, end;

	while (i < len) {
		while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
			i++;
		start = i;
		while (i < len && p[i] != ',')
			i++;
		end = i;
		while (end > start && (p[end - 1] == ' ' || p[end - 1] == '\t'))
			end--;
		if (end - start == strlen(token) &&
		    strncasecmp(p + start, token, end - start) == 0)
			return 1;
	}
	return 0;
}

/* The next line of data[off..len): its end (before CR LF or LF) and the next line. */
static int
next_line(const char *data, size_t len, size_t off, size_t *end,
    size_t *next)
{
	const char	*nl;

	if ((nl = memchr(data + off, '\n', len - off)) == NULL)
		return -1;
	*end = (size_t)(nl - data);
	*next = *end + 1;
	if (*end > off && data[*end - 1] == '\r')
		(*end)--;
	return 0;
}

static enum http_status
parse_request_line(const char *p, size_t len, struct http_req *req)
{
	size_t	 i = 0, t;

	while (i < len && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= len || p[i] != ' ')
		return HTTP_BAD;
	req->method.p = p;
	req->method.len = i;
	t = ++i;
	while (i < len && p[i] > ' ' && p[i] < 0x7f)
		i++;
	if (i == t || i >= len || p[i] != ' ')
		return HTTP_BAD;
	req->target.p = p + t;
	req->target.len = i - t;
	i++;
	if (len - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0 ||
	    p[i + 7] < '0' || p[i + 7] > '9')
		return HTTP_BAD;
	req->minor = p[i + 7] - '0';
	req->path = req->target;
	for (t = 0; t < req->target.len; t++)
		if (req->target.p[t] == '?' || req->target.p[t] == '#') {
			req->path.len = t;
			break;
		}
	return HTTP_OK;
}

static enum http_status
parse_header(const char *p, size_t len, struct http_req *req)
{
	struct http_str	 name, value;
	size_t		 i = 0, e;

	while (i < len && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= len || p[i] != ':')
		return HTTP_BAD;	/* also obs-fold: a line starting blank */
	name.p = p;
	name.len = i;
	i++;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	e = len;
	while (e > i && (p[e - 1] == ' ' || p[e - 1] == '\t'))
		e--;
	value.p = p + i;
	value.len = e - i;
	for (; i < e; i++)
		if (((unsigned char)p[i] < ' ' && p[i] != '\t') || p[i] == 0x7f)
			return HTTP_BAD;

	if (str_is(&name, "Host")) {
		if (req->host.p != NULL)
			return HTTP_BAD;	/* RFC 9112: exactly one */
		req->host = value;
	} else if (str_is(&name, "Origin")) {
		if (req->origin.p != NULL)
			req->dup_key = 1;
		req->origin = value;
	} else if (str_is(&name, "Sec-WebSocket-Key")) {
		if (req->key.p != NULL)
			req->dup_key = 1;
		req->key = value;
	} else if (str_is(&name, "Sec-WebSocket-Version")) {
		if (req->version.p != NULL)
			req->dup_key = 1;
		req->version = value;
	} else if (str_is(&name, "Upgrade")) {
		if (list_has(value.p, value.len, "websocket"))
			req->upgrade_ws = 1;
	} else if (str_is(&name, "Connection")) {
		if (list_has(value.p, value.len, "upgrade"))
			req->conn_upgrade = 1;
	}
	return HTTP_OK;
}

enum http_status
http_parse(const char *data, size_t len, size_t max, struct http_req *req)
{
	size_t	 off = 0, end, next;
	int	 first = 1;

	memset(req, 0, sizeof(*req));
	if (len > max)
		len = max;
	for (;;) {
		if (next_line(data, len, off, &end, &next) == -1)
			return len >= max ? HTTP_TOO_BIG : HTTP_NEED_MORE;
		if (memchr(data + off, '\0', end - off) != NULL)
			return HTTP_BAD;
		if (first) {
			if (parse_request_line(data + off, end - off, req) !=
			    HTTP_OK)
				return HTTP_BAD;
			first = 0;
		} else if (end == off) {
			req->head_len = next;
			return HTTP_OK;
		} else if (parse_header(data + off, end - off, req) != HTTP_OK)
			return HTTP_BAD;
		off = next;
	}
}

/* A Sec-WebSocket-Key is 16 bytes in base64: 22 characters and "==". */
static int
key_valid(const struct http_str *k)
{
	size_t	 i;

	if (k->len != 24 || k->p[22] != '=' || k->p[23] != '=')
		return 0;
	for (i = 0; i < 22; i++) {
		unsigned char ch = (unsigned char)k->p[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '+' || ch == '/'))
			return 0;
	}
	/* the last character carries 2 bits: its low 4 bits are zero */
	return strchr("AQgw", k->p[21]) != NULL;
}

enum http_ws
http_ws_check(const struct http_req *req)
{
	int	 get = str_is(&req->method, "GET");

	if (!req->upgrade_ws) {
		if (get || str_is(&req->method, "HEAD"))
			return HTTP_WS_PLAIN;
		return HTTP_WS_METHOD;
	}
	if (!get)
		return HTTP_WS_METHOD;
	if (req->minor < 1 || !req->conn_upgrade || req->host.p == NULL ||
	    req->dup_key || !key_valid(&req->key))
		return HTTP_WS_BAD;
	if (!str_is(&req->version, "13"))
		return HTTP_WS_VERSION;
	return HTTP_WS_UPGRADE;
}

int
http_ws_accept(const struct http_str *key, char out[HTTP_ACCEPT_LEN + 1])
{
	unsigned char	 in[64], md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;

	if (key->len != 24)
		return -1;
	memcpy(in, key->p, 24);
	memcpy(in + 24, WS_GUID, sizeof(WS_GUID) - 1);
	if (EVP_Digest(in, 24 + sizeof(WS_GUID) - 1, md, &mdlen, EVP_sha1(),
	    NULL) != 1 || mdlen != 20)
		return -1;
	if (EVP_EncodeBlock((unsigned char *)out, md, 20) != HTTP_ACCEPT_LEN)
		return -1;
	out[HTTP_ACCEPT_LEN] = '\0';
	return 0;
}

/* "scheme://authority" of an origin: the authority, or len 0. */
static struct http_str
origin_authority(const struct http_str *o)
{
	struct http_str	 a = { NULL, 0 };
	size_t		 i;

	for (i = 0; i + 2 < o->len; i++)
		if (o->p[i] == ':' && o->p[i + 1] == '/' && o->p[i + 2] == '/') {
			a.p = o->p + i + 3;
			a.len = o->len - i - 3;
			/* an origin has no path, but be lenient with a slash */
			if (a.len > 0 && a.p[a.len - 1] == '/')
				a.len--;
			break;
		}
	return a;
}

enum http_origin
http_origin_check(const struct http_req *req, const char *list)
{
	struct http_str	 auth;
	const char	*p = list, *e;
	size_t		 n;

	if (req->origin.p == NULL)
		return HTTP_ORIGIN_OK;
	if (list == NULL)
		return HTTP_ORIGIN_DENIED;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		for (e = p; *e != '\0' && *e != ' ' && *e != '\t' && *e != ',';
		    e++)
			;
		n = (size_t)(e - p);
		if (n == 0)
			break;
		if (n == 1 && *p == '*')
			return HTTP_ORIGIN_OK;
		if (n == 4 && strncasecmp(p, "self", 4) == 0) {
			auth = origin_authority(&req->origin);
			if (auth.len > 0 && req->host.len == auth.len &&
			    strncasecmp(auth.p, req->host.p, auth.len) == 0)
				return HTTP_ORIGIN_OK;
		} else if (n == req->origin.len &&
		    strncasecmp(p, req->origin.p, n) == 0)
			return HTTP_ORIGIN_OK;
		p = e;
	}
	return HTTP_ORIGIN_DENIED;
}

int
http_static_name(const struct http_str *path, char *name, size_t namelen)
{
	size_t	 i;
	char	 ch;

	if (path->len == 0 || path->p[0] != '/')
		return -1;
	if (path->len == 1) {
		if (namelen < sizeof("index.html"))
			return -1;
		memcpy(name, "index.html", sizeof("index.html"));
		return 0;
	}
	if (path->p[1] == '.' || path->len - 1 >= namelen)
		return -1;
	for (i = 1; i < path->len; i++) {
		ch = path->p[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		    ch == '-'))
			return -1;
		name[i - 1] = ch;
	}
	name[path->len - 1] = '\0';
	return 0;
}

const char *
http_mime(const char *name)
{
	static const struct {
		const char	*suffix;
		const char	*type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".txt", "text/plain; charset=utf-8" },
	};
	size_t	 i, n = strlen(name), s;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		s = strlen(types[i].suffix);
		if (n > s && strcasecmp(name + n - s, types[i].suffix) == 0)
			return types[i].type;
	}
	return "application/octet-stream";
}

/* Up to max words of p[0..n) separated by runs of spaces; how many, or
 * max + 1 when there are more (strtok_r's splitting, without a copy). */
static size_t
words(const char *p, size_t n, struct http_str *w, size_t max)
{
	size_t	 i = 0, k = 0, s;

	for (;;) {
		while (i < n && p[i] == ' ')
			i++;
		if (i == n)
			return k;
		if (k == max)
			return max + 1;
		for (s = i; i < n && p[i] != ' '; i++)
			;
		w[k].p = p + s;
		w[k++].len = i - s;
	}
}

enum http_line
http_request_line(const char *p, size_t len, int eof,
    struct http_line_req *line)
{
	struct http_str	 w[3];
	size_t		 llen;

	if (memmem(p, len, "\r\n\r\n", 4) == NULL &&
	    memmem(p, len, "\n\n", 2) == NULL) {
		if (!eof)
			return HTTP_LINE_MORE;
		if (len == 0)
			return HTTP_LINE_EMPTY;
	}
	for (llen = 0; llen < len && p[llen] != '\r' && p[llen] != '\n';
	    llen++)
		;
	if (memchr(p, '\0', len) != NULL || llen >= HTTP_LINE_MAX)
		return HTTP_LINE_BAD;
	if (words(p, llen, w, 3) != 3 || w[2].len < 7 ||
	    memcmp(w[2].p, "HTTP/1.", 7) != 0 || w[1].p[0] != '/')
		return HTTP_LINE_BAD;
	if (w[0].len == 3 && memcmp(w[0].p, "GET", 3) == 0)
		line->head = 0;
	else if (w[0].len == 4 && memcmp(w[0].p, "HEAD", 4) == 0)
		line->head = 1;
	else
		return HTTP_LINE_METHOD;
	line->path.p = w[1].p;
	for (line->path.len = 0; line->path.len < w[1].len &&
	    w[1].p[line->path.len] != '?' && w[1].p[line->path.len] != '#';
	    line->path.len++)
		;
	return HTTP_LINE_OK;
}
