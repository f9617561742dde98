/*
 * http.h - the little HTTP/1.1 a WebSocket listener needs: parse one
 * request head, check an RFC 6455 opening handshake and its Origin,
 * compute Sec-WebSocket-Accept, and map a path to a static file name.
 * Pure: no I/O, no event loop; the fuzzer and check_http link it alone
 * (with libcrypto for SHA-1).
 */
#ifndef CHATD_HTTP_H
#define CHATD_HTTP_H

#include <stddef.h>

/* A piece of the request: points into the caller's input, has a length. */
struct http_str {
	const char	*p;
	size_t		 len;
};

enum http_status {
	HTTP_NEED_MORE,		/* no blank line yet, below the limit */
	HTTP_OK,		/* head parsed: req filled, req->head_len bytes */
	HTTP_BAD,		/* not an HTTP/1.1 request head: answer 400 */
	HTTP_TOO_BIG		/* no end within max bytes: answer 431 */
};

/* Values of the headers chatd looks at; len 0 when absent. */
struct http_req {
	struct http_str	 method;
	struct http_str	 target;	/* as sent */
	struct http_str	 path;		/* target up to '?' */
	int		 minor;		/* HTTP/1.<minor> */
	struct http_str	 host;
	struct http_str	 origin;
	struct http_str	 key;		/* Sec-WebSocket-Key */
	struct http_str	 version;	/* Sec-WebSocket-Version */
	int		 upgrade_ws;	/* Upgrade lists "websocket" */
	int		 conn_upgrade;	/* Connection lists "upgrade" */
	int		 dup_key;	/* a WebSocket header given twice */
	size_t		 head_len;	/* through the blank line */
};

/*
 * Parse the request head at the start of data[0..len).  max bounds the
 * head (request line and headers).  Lines end in CRLF or LF; folded
 * header lines, NUL and other control bytes are HTTP_BAD.
 */
enum http_status http_parse(const char *data, size_t len, size_t max,
	    struct http_req *req);

/* What a parsed request asks for, and the answer it gets. */
enum http_ws {
	HTTP_WS_UPGRADE,	/* a valid opening handshake: 101 */
	HTTP_WS_PLAIN,		/* GET or HEAD without Upgrade: a file */
	HTTP_WS_METHOD,		/* another method: 405 */
	HTTP_WS_BAD,		/* a broken handshake: 400 */
	HTTP_WS_VERSION		/* Sec-WebSocket-Version not 13: 426 */
};
enum http_ws http_ws_check(const struct http_req *req);

/* Sec-WebSocket-Accept for a key: 28 base64 characters and a NUL. */
#define HTTP_ACCEPT_LEN	28
int	http_ws_accept(const struct http_str *key,
	    char out[HTTP_ACCEPT_LEN + 1]);

/*
 * Whether the request's Origin is allowed by list, a list of entries
 * separated by blanks or commas: "self" (the Origin's host[:port] is the
 * request's Host), "*" (any), or an origin such as
 * "https://chat.example.org" (compared without case).  A request
 * without Origin (not a browser) is allowed.
 */
enum http_origin {
	HTTP_ORIGIN_OK,
	HTTP_ORIGIN_DENIED
};
enum http_origin http_origin_check(const struct http_req *req,
	    const char *list);

/*
 * The file a plain GET path names: "/" is "index.html"; otherwise one
 * name of letters, digits, '.', '_' and '-' not starting with '.', no
 * directories, no escapes.  0 with name filled, -1 when the path names
 * nothing we serve (answer 404).
 */
int	http_static_name(const struct http_str *path, char *name,
	    size_t namelen);
/* Content-Type for a file name, by its suffix. */
const char *http_mime(const char *name);

/*
 * The request line of a small GET/HEAD endpoint (the master's /metrics
 * and /health): "METHOD target HTTP/1.x", words separated by one or more
 * spaces, the line at most HTTP_LINE_MAX - 1 bytes.  The head must be
 * complete (up to a blank line) unless eof.  HTTP_LINE_OK fills line
 * (path points into p: the target up to '?' or '#').
 */
#define HTTP_LINE_MAX	256
enum http_line {
	HTTP_LINE_MORE,		/* no blank line yet: read on */
	HTTP_LINE_EMPTY,	/* eof before any byte: just close */
	HTTP_LINE_OK,		/* GET or HEAD */
	HTTP_LINE_METHOD,	/* another method: 405 */
	HTTP_LINE_BAD		/* NUL, too long, not a request line: 400 */
};
struct http_line_req {
	int		 head;		/* HEAD: no body in the answer */
	struct http_str	 path;
};
enum http_line http_request_line(const char *p, size_t len, int eof,
	    struct http_line_req *line);

#endif
