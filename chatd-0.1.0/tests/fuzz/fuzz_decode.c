/*
 * fuzz_decode.c - libFuzzer target for proto_decode and the encoders.
 *
 * The input is a stream: every frame frame_next finds is decoded; a
 * failure must be answerable, a success is re-encoded (pong, forward)
 * and a forwarded chat must decode again to the same message.  The
 * whole input is also decoded as one frame, NULs and all.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "proto.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

static const struct proto_limits lim = {
	.max_name_bytes = 16,
	.max_message_bytes = 64,
	.max_groupdesc_bytes = 32,
	.max_password_bytes = 16,
};

static void
one(const char *p, size_t n)
{
	struct proto_req	 req, again;
	struct proto_fail	 fail;
	struct buf		 out = BUF_INIT;

	if (proto_decode(p, n, &lim, &req, &fail) == -1) {
		CHECK(req.root == NULL);
		CHECK(fail.code != ERR_OK);
		CHECK(fail.reply_msgid == MSG_ERROR ||
		    fail.reply_msgid == MSG_LOGIN_ACK ||
		    fail.reply_msgid == MSG_REG_ACK);
		CHECK(memchr(fail.text, '\0', sizeof(fail.text)) != NULL);
		CHECK(proto_put_error(&out, fail.reply_msgid, fail.code,
		    fail.refmsgid, fail.text) == 0);
		buf_free(&out);
		return;
	}
	CHECK(req.root != NULL);
	switch (req.msgid) {
	case MSG_ONE_CHAT:
	case MSG_GROUP_CHAT:
		CHECK(req.msg.len > 0 && req.msg.len <= lim.max_message_bytes);
		CHECK(proto_put_forward(&out, &req, 7, "n\0m", 3) == 0);
		if (proto_decode(buf_head(&out), buf_used(&out), &lim, &again,
		    &fail) == -1)
			abort();
		CHECK(again.msgid == req.msgid);
		CHECK(again.has_id && again.id == 7);
		CHECK(again.msg.len == req.msg.len &&
		    memcmp(again.msg.p, req.msg.p, req.msg.len) == 0);
		CHECK(again.toid == req.toid && again.groupid == req.groupid);
		CHECK(again.has_cmid == req.has_cmid &&
		    again.cmid == req.cmid);
		proto_req_clear(&again);
		break;
	case MSG_PING:
		CHECK(proto_put_pong(&out, &req) == 0);
		break;
	case MSG_REG:
	case MSG_LOGIN:
		CHECK(req.password.len > 0);
		break;
	}
	buf_free(&out);
	proto_req_clear(&req);
	CHECK(req.root == NULL);
}

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_scanner	 s;
	const char		*p = (const char *)data;
	size_t			 n = size, off, vlen, used;
	enum frame_status	 st;

	frame_scanner_init(&s);
	for (;;) {
		st = frame_next(&s, p, n, 65536, &off, &vlen, &used);
		if (st == FRAME_OK || st == FRAME_BAD)
			one(p + off, vlen);
		if (st != FRAME_OK && st != FRAME_BAD)
			break;
		p += used;
		n -= used;
	}
	one((const char *)data, size);
	return 0;
}
