/* check_proto.h - what check_proto.c and check_proto_enc.c share. */
#ifndef CHATD_CHECK_PROTO_H
#define CHATD_CHECK_PROTO_H

#include <stddef.h>
#include <time.h>

#include <check.h>

#include "buf.h"
#include "proto.h"

#define S(x)	x, sizeof(x) - 1

/* 2024-06-06 07:08:09 in UTC, the zone main() sets */
#define T0		((time_t)1717657689)
#define T0_TEXT		"'2024-06-06 07:08:09'"

/* check_proto.c: helpers */
char	*buf_cstr(struct buf *b);	/* NUL-terminated, caller frees */
int	 dec(const char *s, size_t len, struct proto_req *r,
	    struct proto_fail *f);
char	*J(const char *tmpl);		/* "{'a':1}" -> "{\"a\":1}" */
void	 Q(struct buf *b, const char *s);
void	 QJ(struct buf *b, const char *tmpl);
void	 AJ(struct buf *b, const char *tmpl);
void	 out_is(struct buf *out, const char *tmpl);
int	 str_is(const struct proto_str *s, const char *p, size_t n);

/* check_proto_dec.c, check_proto_enc.c */
TCase	*proto_decode_tcase(void);
TCase	*proto_encode_tcase(void);

#endif
