/*
 * ws.h - the WebSocket transport (RFC 6455, framing by libwslay) for
 * connections accepted on websocket_listen.  Private to the server.
 *
 * A connection starts in HTTP: a GET for a file of www_root is answered
 * and the connection closed; a valid opening handshake from an allowed
 * Origin is answered 101 and the connection carries one JSON request
 * per text message in, one answer or pushed message per text message
 * out.  The chat layer sees requests and writes lines as on TCP.
 */
#ifndef CHATD_WS_H
#define CHATD_WS_H

#include "cfg.h"
#include "conn.h"

/*
 * Once per worker: cfg stays the worker's live configuration, so a
 * reload of websocket_origins and www_root applies to new connections.
 */
void	ws_init(const struct config *cfg);
/* Make c a WebSocket connection (just accepted): 0, or -1 out of memory. */
int	ws_attach(struct conn *c);
/*
 * Make c (adopted, handover.h) a WebSocket connection in the open
 * state, with a fresh wslay context: it was handed over between two
 * units (ws_movable said CONN_TP_READY).  0, or -1 out of memory.
 */
int	ws_adopt(struct conn *c);
/* A refusal at accept (server full, per-address limit), as HTTP 503. */
extern const char ws_refuse_full[];
extern const char ws_refuse_per_ip[];

#endif
