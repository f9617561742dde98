/*
 * ws.c - the WebSocket transport: the HTTP opening handshake (parsed by
 * http.c), static files of www_root for a plain GET, then RFC 6455
 * frames through libwslay's event API.  Plugged into conn.c as a
 * struct conn_transport: bytes in c->in -> requests (conn_request);
 * lines in c->out -> text messages in w->wire, which conn.c writes.
 *
 * wslay is given whole units only (wsframe.h: a control frame, or a
 * message with all its fragments): between two units it holds nothing,
 * so an open connection whose output is written can move to another
 * process (binary upgrade), which starts a fresh wslay context.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wslay/wslay.h>

#include "http.h"
#include "log.h"
#include "ws.h"
#include "wsframe.h"

#define WS_HEAD_MAX	8192		/* request head, as nginx's default */
#define WS_FILE_MAX	(1024 * 1024)	/* largest static file served */
#define WS_NAME_MAX	128

enum ws_state {
	WS_HTTP,		/* reading the request head */
	WS_OPEN,		/* after 101: frames */
	WS_DONE			/* answered (HTTP) or closed: input ignored */
};

struct ws {
	enum ws_state		 state;
	wslay_event_context_ptr	 ctx;
	struct conn		*c;
	struct buf		 wire;	/* bytes for the socket */
	struct buf		 held;	/* [size_t len][bytes] received while paused */
	uint64_t		 left;	/* of the unit begun, not yet given */
	unsigned		 close_queued:1;
	unsigned		 raw:1;	/* a unit wsf_unit refused: wslay judges */
};

static const struct config	*cfg;

const char ws_refuse_full[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    "Content-Length: 12\r\nConnection: close\r\n\r\nserver full\n";
const char ws_refuse_per_ip[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    "Content-Length: 39\r\nConnection: close\r\n\r\n"
    "too many connections from your address\n";

static void		 ws_input(struct conn *);
static struct buf	*ws_output(struct conn *);
static void		 ws_free(struct conn *);
static enum conn_tp_move ws_movable(const struct conn *);
static int		 ws_open(struct ws *);

static const struct conn_transport ws_transport = {
	.input = ws_input,
	.output = ws_output,
	.free = ws_free,
	.movable = ws_movable,
};

void
ws_init(const struct config *c)
{
	cfg = c;
}

/* ---- wslay callbacks ---------------------------------------------------- */

/*
 * wslay pulls from c->in, a whole unit at a time: a unit begun is given
 * to its end (its messages wait in w->held if the chat layer paused),
 * none is begun while the chat layer holds input.
 */
static ssize_t
ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *p, size_t len, int flags,
    void *arg)
{
	struct ws	*w = arg;
	struct conn	*c = w->c;
	size_t		 n = buf_used(&c->in), span;

	if (n == 0 || c->closing || c->close_after_flush ||
	    (w->left == 0 && c->paused)) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (w->left == 0 && !w->raw) {
		switch (wsf_unit(buf_head(&c->in), n, cfg->max_frame_bytes,
		    &span)) {
		case WSF_MORE:
			wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
			return -1;
		case WSF_WHOLE:
			w->left = span;
			break;
		case WSF_BAD:
		case WSF_TOO_BIG:
			/* wslay refuses it with the right close code */
			w->raw = 1;
			break;
		}
	}
	if (!w->raw && n > w->left)
		n = (size_t)w->left;
	if (n > len)
		n = len;
	memcpy(p, buf_head(&c->in), n);
	buf_consume(&c->in, n);
	if (!w->raw)
		w->left -= n;
	return (ssize_t)n;
}

/* Everything wslay sends goes to the wire buffer; conn.c writes it. */
static ssize_t
ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *p, size_t len,
    int flags, void *arg)
{
	struct ws	*w = arg;

	if (buf_append(&w->wire, p, len) == -1) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static int
utf8_valid(const unsigned char *s, size_t n)
{
	size_t		 i = 0, k, need;
	uint32_t	 cp;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf) {
			need = 1;
			cp = s[i] & 0x1f;
		} else if (s[i] >= 0xe0 && s[i] <= 0xef) {
			need = 2;
			cp = s[i] & 0x0f;
		} else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
			need = 3;
			cp = s[i] & 0x07;
		} else
			return 0;
		if (n - i <= need)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		i += need + 1;
	}
	return 1;
}

static void
ws_fail(struct ws *w, uint16_t code, const char *why)
{
	if (!w->close_queued)
		(void)wslay_event_queue_close(w->ctx, code,
		    (const uint8_t *)why, strlen(why));
	w->close_queued = 1;
	wslay_event_shutdown_read(w->ctx);
}

static void
ws_msg_cb(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *m, void *arg)
{
	struct ws	*w = arg;
	struct conn	*c = w->c;
	size_t		 len = m->msg_length;

	if (c->closing || c->close_after_flush)
		return;
	switch (m->opcode) {
	case WSLAY_TEXT_FRAME:
		break;
	case WSLAY_BINARY_FRAME:
		ws_fail(w, WSLAY_CODE_UNSUPPORTED_DATA,
		    "one JSON request per text message");
		return;
	case WSLAY_CONNECTION_CLOSE:
		w->close_queued = 1;	/* wslay answers it */
		return;
	default:
		return;		/* ping (answered by wslay), pong */
	}
	if (!utf8_valid(m->msg, len)) {
		ws_fail(w, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA,
		    "text message not UTF-8");
		return;
	}
	/* several frames may sit in wslay's buffer: keep them in order */
	if (c->paused || buf_used(&w->held) > 0) {
		if (buf_append(&w->held, &len, sizeof(len)) == -1 ||
		    buf_append(&w->held, m->msg, len) == -1)
			conn_close(c, "out of memory");
		return;
	}
	conn_request(c, (const char *)m->msg, len);
}

/* wslay counts a message as it arrives: refuse a huge frame at once. */
static void
ws_frame_start_cb(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *f, void *arg)
{
	struct ws	*w = arg;

	if (f->payload_length > cfg->max_frame_bytes)
		ws_fail(w, WSLAY_CODE_MESSAGE_TOO_BIG,
		    "message larger than max_frame_bytes");
}

static const struct wslay_event_callbacks ws_callbacks = {
	.recv_callback = ws_recv_cb,
	.send_callback = ws_send_cb,
	.on_frame_recv_start_callback = ws_frame_start_cb,
	.on_msg_recv_callback = ws_msg_cb,
};

/* ---- HTTP --------------------------------------------------------------- */

static void
http_answer(struct conn *c, struct ws *w, const char *status,
    const char *extra, const char *text)
{
	(void)buf_printf(&w->wire, "HTTP/1.1 %s\r\n%s"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    status, extra != NULL ? extra : "", strlen(text), text);
	w->state = WS_DONE;
	conn_close_after_flush(c, status);
}

/*
 * A file of www_root.  Read whole per request: the page is a few small
 * files, and reading them keeps a reload or a new install visible.
 */
static void
http_file(struct conn *c, struct ws *w, const struct http_req *req)
{
	char		 name[WS_NAME_MAX], *path = NULL;
	struct stat	 st;
	ssize_t		 n;
	size_t		 got = 0;
	int		 fd = -1;

	if (cfg->www_root == NULL || *cfg->www_root == '\0' ||
	    http_static_name(&req->path, name, sizeof(name)) == -1 ||
	    asprintf(&path, "%s/%s", cfg->www_root, name) == -1) {
		path = NULL;
		goto notfound;
	}
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK)) == -1 || fstat(fd, &st) == -1 ||
	    !S_ISREG(st.st_mode) || st.st_size > WS_FILE_MAX)
		goto notfound;
	if (buf_printf(&w->wire, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: %s\r\nContent-Length: %lld\r\n"
	    "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
	    "Content-Security-Policy: default-src 'self'; "
	    "connect-src 'self' ws: wss:; object-src 'none'; "
	    "base-uri 'none'; frame-ancestors 'none'\r\n"
	    "Referrer-Policy: no-referrer\r\nConnection: close\r\n\r\n",
	    http_mime(name), (long long)st.st_size) == -1)
		goto fail;
	if (req->method.len == 4) {	/* HEAD */
		close(fd);
		free(path);
		w->state = WS_DONE;
		conn_close_after_flush(c, "HEAD answered");
		return;
	}
	if (buf_reserve(&w->wire, (size_t)st.st_size) == -1)
		goto fail;
	while (got < (size_t)st.st_size) {
		n = read(fd, w->wire.data + w->wire.len, (size_t)st.st_size -
		    got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		w->wire.len += (size_t)n;
		got += (size_t)n;
	}
	if (got != (size_t)st.st_size) {
		log_warn("%s: short read", path);
		goto fail;
	}
	close(fd);
	free(path);
	w->state = WS_DONE;
	conn_close_after_flush(c, "file served");
	return;

 fail:
	close(fd);
	free(path);
	buf_free(&w->wire);
	http_answer(c, w, "500 Internal Server Error", NULL,
	    "cannot read the file\n");
	return;
 notfound:
	if (fd != -1)
		close(fd);
	free(path);
	http_answer(c, w, "404 Not Found", NULL, "not found\n");
}

/* The 101 answer, then the connection carries frames. */
static int
http_upgrade(struct conn *c, struct ws *w, const struct http_req *req)
{
	char	 accept[HTTP_ACCEPT_LEN + 1];

	if (http_ws_accept(&req->key, accept) == -1 || ws_open(w) == -1) {
		http_answer(c, w, "500 Internal Server Error", NULL,
		    "out of memory\n");
		return -1;
	}
	if (buf_printf(&w->wire, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n\r\n", accept) == -1) {
		conn_close(c, "out of memory");
		return -1;
	}
	return conn_sent(c);
}

/* The request head in c->in: answer it; 0 when frames follow. */
static int
ws_http(struct conn *c, struct ws *w)
{
	struct http_req	 req;
	char		 peer[64];
	int		 rc = -1;

	switch (http_parse(buf_head(&c->in), buf_used(&c->in), WS_HEAD_MAX,
	    &req)) {
	case HTTP_NEED_MORE:
		return -1;
	case HTTP_TOO_BIG:
		http_answer(c, w, "431 Request Header Fields Too Large", NULL,
		    "request head too large\n");
		return -1;
	case HTTP_BAD:
		http_answer(c, w, "400 Bad Request", NULL,
		    "not an HTTP/1.1 request\n");
		return -1;
	case HTTP_OK:
		break;
	}
	switch (http_ws_check(&req)) {
	case HTTP_WS_PLAIN:
		http_file(c, w, &req);
		break;
	case HTTP_WS_METHOD:
		http_answer(c, w, "405 Method Not Allowed",
		    "Allow: GET, HEAD\r\n", "GET only\n");
		break;
	case HTTP_WS_BAD:
		http_answer(c, w, "400 Bad Request", NULL,
		    "not a valid WebSocket handshake (RFC 6455)\n");
		break;
	case HTTP_WS_VERSION:
		http_answer(c, w, "426 Upgrade Required",
		    "Sec-WebSocket-Version: 13\r\n",
		    "WebSocket version 13 only\n");
		break;
	case HTTP_WS_UPGRADE:
		if (http_origin_check(&req, cfg->websocket_origins) !=
		    HTTP_ORIGIN_OK) {
			log_debug("%s: WebSocket from origin \"%.*s\" refused "
			    "(websocket_origins)", conn_peer_str(c, peer,
			    sizeof(peer)), (int)(req.origin.len > 200 ? 200 :
			    req.origin.len), req.origin.p);
			http_answer(c, w, "403 Forbidden", NULL,
			    "origin not allowed (websocket_origins)\n");
			break;
		}
		rc = http_upgrade(c, w, &req);
		break;
	}
	/* what follows the head is the first frames (or ignored) */
	if (!c->closing)
		buf_consume(&c->in, req.head_len);
	return rc;
}

/* ---- the transport ------------------------------------------------------ */

/* Requests kept while the connection was paused, in order. */
static void
ws_release_held(struct conn *c, struct ws *w)
{
	const char	*rec;
	size_t		 len;

	while (buf_used(&w->held) > 0 && !c->paused && !c->closing &&
	    !c->close_after_flush) {
		/* not buf_head(): its "" for an empty buffer makes GCC's
		 * -Warray-bounds see an 8-byte read of a 1-byte array */
		rec = w->held.data + w->held.off;
		memcpy(&len, rec, sizeof(len));
		conn_request(c, rec + sizeof(len), len);
		if (c->closing)
			return;
		buf_consume(&w->held, sizeof(len) + len);
	}
}

static void
ws_input(struct conn *c)
{
	struct ws	*w = c->tp_data;
	int		 rc;

	if (w->state == WS_HTTP && ws_http(c, w) == -1)
		return;
	if (w->state != WS_OPEN || c->closing || c->close_after_flush) {
		if (w->state == WS_DONE)
			buf_free(&c->in);
		return;
	}
	ws_release_held(c, w);
	if (c->paused || c->closing || c->close_after_flush)
		return;
	if ((rc = wslay_event_recv(w->ctx)) == WSLAY_ERR_NOMEM) {
		conn_close(c, "websocket: out of memory");
		return;
	}
	/* a protocol error: wslay may have queued 1002 already */
	if (rc != 0)
		ws_fail(w, WSLAY_CODE_PROTOCOL_ERROR, "protocol error");
	/* pongs, a close answer or a failure's close frame to send */
	if (!c->closing && wslay_event_want_write(w->ctx))
		(void)conn_sent(c);
	else if (!c->closing && !wslay_event_want_read(w->ctx))
		conn_close_after_flush(c, "websocket closed");
}

static struct buf *
ws_output(struct conn *c)
{
	struct ws	*w = c->tp_data;
	struct wslay_event_msg	 m;
	const char	*p, *nl;
	size_t		 n;

	if (buf_used(&w->wire) > 0 || w->state != WS_OPEN)
		return &w->wire;
	/* each whole line of c->out is one text message */
	while ((n = buf_used(&c->out)) > 0 &&
	    (nl = memchr((p = buf_head(&c->out)), '\n', n)) != NULL) {
		m.opcode = WSLAY_TEXT_FRAME;
		m.msg = (const uint8_t *)p;
		m.msg_length = (size_t)(nl - p);
		/* after a close frame nothing more is sent: dropped */
		if (!w->close_queued &&
		    wslay_event_queue_msg(w->ctx, &m) == WSLAY_ERR_NOMEM)
			return NULL;
		buf_consume(&c->out, (size_t)(nl - p) + 1);
	}
	if (c->close_after_flush && !w->close_queued) {
		(void)wslay_event_queue_close(w->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
		w->close_queued = 1;
	}
	if (wslay_event_send(w->ctx) != 0)
		return NULL;
	if (!c->close_after_flush && !wslay_event_want_read(w->ctx) &&
	    !wslay_event_want_write(w->ctx))
		conn_close_after_flush(c, "websocket closed");
	return &w->wire;
}

static void
ws_free(struct conn *c)
{
	struct ws	*w = c->tp_data;

	if (w == NULL)
		return;
	if (w->ctx != NULL)
		wslay_event_context_free(w->ctx);
	buf_free(&w->wire);
	buf_free(&w->held);
	free(w);
	c->tp_data = NULL;
}

/*
 * Open, nothing half read (w->left: a unit is given whole within one
 * wslay_event_recv), no message held, nothing queued for the socket.
 */
static enum conn_tp_move
ws_movable(const struct conn *c)
{
	const struct ws	*w = c->tp_data;

	if (w->state != WS_OPEN || w->raw || w->close_queued ||
	    w->left > 0 || !wslay_event_get_read_enabled(w->ctx))
		return CONN_TP_NEVER;
	if (buf_used(&w->held) > 0 || buf_used(&w->wire) > 0 ||
	    wslay_event_want_write(w->ctx))
		return CONN_TP_WAIT;
	return CONN_TP_READY;
}

/* A fresh wslay context after the handshake: 0, or -1 out of memory. */
static int
ws_open(struct ws *w)
{
	if (wslay_event_context_server_init(&w->ctx, &ws_callbacks, w) !=
	    0) {
		w->ctx = NULL;
		return -1;
	}
	wslay_event_config_set_max_recv_msg_length(w->ctx,
	    cfg->max_frame_bytes);
	w->state = WS_OPEN;
	return 0;
}

int
ws_attach(struct conn *c)
{
	struct ws	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -1;
	w->c = c;
	w->state = WS_HTTP;
	c->tp = &ws_transport;
	c->tp_data = w;
	return 0;
}

int
ws_adopt(struct conn *c)
{
	struct ws	*w;

	if (ws_attach(c) == -1)
		return -1;
	w = c->tp_data;
	if (ws_open(w) == -1) {
		ws_free(c);
		c->tp = NULL;
		return -1;
	}
	return 0;
}
