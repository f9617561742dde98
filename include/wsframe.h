/*
 * wsframe.h - where a WebSocket client's frames end (RFC 6455 section
 * 5.2).  The server hands its WebSocket library only whole units (a
 * control frame, or a whole message: its data frames through the one
 * with FIN, with the control frames between them), so that between two
 * units nothing is half read: neither a frame nor a fragmented message.
 * At such a point a connection can move to another process, which
 * starts a fresh library state (binary upgrade, handover.h).
 * Pure: no I/O; check_http and the fuzzer link it alone.
 */
#ifndef CHATD_WSFRAME_H
#define CHATD_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

/*
 * A unit still incomplete this many bytes past max (frame headers,
 * control frames between fragments) is WSF_TOO_BIG: a client cannot
 * make the server buffer without bound with tiny fragments.
 */
#define WSF_SLACK	4096

enum wsf_status {
	WSF_MORE,	/* not all there yet: read on */
	WSF_WHOLE,	/* a whole unit of *span bytes */
	WSF_BAD,	/* not a valid client frame here: the library says why */
	WSF_TOO_BIG	/* a message over max: the library refuses it */
};

/* One frame's header. */
struct wsf_head {
	unsigned	 fin;
	unsigned	 opcode;
	uint64_t	 len;		/* payload */
	size_t		 head_len;	/* header and masking key */
};

/*
 * The header at the start of p[0..n): WSF_WHOLE with h filled (the
 * payload may not be there yet), WSF_MORE, or WSF_BAD (reserved bits
 * or opcode, an unmasked client frame, a control frame fragmented or
 * over 125 bytes, a length not in its shortest form).
 */
enum wsf_status wsf_head(const void *p, size_t n, struct wsf_head *h);
/*
 * The unit at the start of p[0..n): WSF_WHOLE with its length in
 * *span, WSF_MORE, WSF_BAD (also: a continuation with no message begun,
 * a new message inside a fragmented one) or WSF_TOO_BIG (a message's
 * payload over max, or still incomplete past max + WSF_SLACK bytes).
 */
enum wsf_status wsf_unit(const void *p, size_t n, uint64_t max, size_t *span);

#endif
