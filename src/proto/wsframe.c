/*
 * wsframe.c - WebSocket frame headers and message boundaries of a
 * client's stream (see wsframe.h).
 */
#include "config.h"

#include "wsframe.h"

#define OP_CONT		0x0
#define OP_TEXT		0x1
#define OP_BINARY	0x2
#define OP_CLOSE	0x8
#define OP_PONG		0xa

enum wsf_status
wsf_head(const void *p, size_t n, struct wsf_head *h)
{
	const uint8_t	*b = p;
	uint64_t	 len;
	size_t		 i, ext;

	if (n < 2)
		return WSF_MORE;
	h->fin = b[0] >> 7;
	h->opcode = b[0] & 0x0f;
	/* no extension is negotiated: reserved bits are an error */
	if ((b[0] & 0x70) != 0 || (h->opcode > OP_BINARY && h->opcode <
	    OP_CLOSE) || h->opcode > OP_PONG || (b[1] & 0x80) == 0)
		return WSF_BAD;
	len = b[1] & 0x7f;
	if (h->opcode >= OP_CLOSE && (!h->fin || len > 125))
		return WSF_BAD;
	ext = len == 126 ? 2 : len == 127 ? 8 : 0;
	if (n < 2 + ext)
		return WSF_MORE;
	if (ext > 0) {
		for (len = 0, i = 0; i < ext; i++)
			len = len << 8 | b[2 + i];
		if ((ext == 2 && len < 126) || (ext == 8 && (len < 65536 ||
		    (len >> 63) != 0)))
			return WSF_BAD;
	}
	h->len = len;
	h->head_len = 2 + ext + 4;	/* a client's frames are masked */
	return WSF_WHOLE;
}

enum wsf_status
wsf_unit(const void *p, size_t n, uint64_t max, size_t *span)
{
	const uint8_t	*b = p;
	struct wsf_head	 h;
	enum wsf_status	 st;
	uint64_t	 payload = 0, flen;
	size_t		 off = 0;
	int		 in_msg = 0;

	for (;;) {
		/* a message of many small frames: bounded too */
		if (off > max + WSF_SLACK)
			return WSF_TOO_BIG;
		if ((st = wsf_head(b + off, n - off, &h)) != WSF_WHOLE)
			return st;
		if (h.opcode == OP_CONT && !in_msg)
			return WSF_BAD;
		if ((h.opcode == OP_TEXT || h.opcode == OP_BINARY) && in_msg)
			return WSF_BAD;
		if (h.opcode < OP_CLOSE) {
			payload += h.len;	/* each below 2^63, max small */
			if (h.len > max || payload > max)
				return WSF_TOO_BIG;
		}
		flen = h.head_len + h.len;
		if (flen > n - off)
			return WSF_MORE;
		off += (size_t)flen;
		if (h.opcode >= OP_CLOSE ? !in_msg : h.fin) {
			*span = off;
			return WSF_WHOLE;
		}
		if (h.opcode < OP_CLOSE)
			in_msg = 1;
	}
}
