/*
 * proto_impl.h - what the files of src/proto share; private to them.
 * include/proto.h is the contract with everyone else.
 *
 *   frame.c      the frame splitter (frame_next)
 *   jsoncheck.c  the RFC 8259 linter the slow path runs before json-c
 *   fastparse.c  the one-pass parser for flat compact requests
 *   decode.c     proto_decode: the fields of each request, checked
 *   forward.c    the forwarded form of a chat (proto_put_forward)
 *   reply.c      every other answer the server writes
 */
#ifndef CHATD_PROTO_IMPL_H
#define CHATD_PROTO_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct buf;
struct json_object;
struct proto_req;

/* How every answer is written: as json-c writes it, "/" unescaped. */
#define JSON_OUT	\
	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static inline int
jc_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline int
jc_is_word(unsigned char c)
{
	return jc_is_digit(c) || c == '_' ||
	    ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* ---- jsoncheck.c ---------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (RFC 3629), 0 if none. */
size_t	jc_utf8_seq(const unsigned char *p, size_t n);
/* The code unit of "\uXXXX" at p[i] (i <= len); -1 if there is none. */
long	jc_u_escape(const unsigned char *p, size_t len, size_t i);
/*
 * Checks frame against RFC 8259's lexical rules, which json-c's strict
 * mode does not all apply: 0, or -1 with *code (enum proto_err) and
 * *why (static text) set.
 */
int	jc_lint(const char *frame, size_t len, int *code, const char **why);

/* ---- fastparse.c ---------------------------------------------------- */

/* The protocol's keys: fast_parse adds them as constants. */
enum fast_key {
	FK_ID, FK_NAME, FK_SMID, FK_MSG, FK_MSGID, FK_TIME, FK_TOID,
	FK_GROUPID, FK_CMID, FK_PASSWORD, FK_FRIENDID, FK_GROUPNAME,
	FK_GROUPDESC, FK_SEQ, FK_UPTO, FK_ACKOFFLINE, NFAST_KEYS
};

/* A value's place in the frame; len 0: absent. */
struct fast_span {
	size_t	 off, len;
};

/*
 * What fast_parse learnt besides the tree: where the parts a forward
 * rewrites are, and the values of the protocol's keys, so that checking
 * the fields needs no hash lookups.  v[] is valid for the tree
 * fast_parse returned and only while the caller holds it unchanged.
 */
struct fast_info {
	int			 canonical;	/* json-c would write it so */
	size_t			 start, end;	/* the object in frame */
	struct fast_span	 id, name, time;
	int			 time_is_str;
	int			 has_smid;
	size_t			 nkeys;
	unsigned		 present;	/* bit per enum fast_key */
	struct json_object	*v[NFAST_KEYS];
};

/* The enum fast_key of the n bytes at k, or NFAST_KEYS. */
unsigned	fast_key(const char *k, size_t n);
/*
 * The tree of a flat object of strings, integers, booleans and nulls,
 * checked as jc_lint and json-c would, with fi filled; NULL when the
 * slow path must decide (anything else, and every error).
 */
struct json_object *fast_parse(const char *frame, size_t len,
	    struct fast_info *fi);

/* ---- forward.c ------------------------------------------------------ */

/*
 * Keeps the text of a canonical chat so that proto_put_forward can
 * splice the sender into it; without memory it is simply not kept.
 */
void	fwd_keep(struct proto_req *req, const char *frame,
	    const struct fast_info *fi);
void	fwd_free(struct proto_req *req);

/* ---- reply.c -------------------------------------------------------- */

/* A json-c string of len bytes (NUL-safe); NULL without memory. */
struct json_object *reply_str(const char *p, size_t len);
/* Append v to array a (v is freed on failure, or when a is NULL): 0 or -1. */
int	reply_arr_add(struct json_object *a, struct json_object *v);
/* Adds v to o, taking ownership of v either way; 0 or -1. */
int	reply_add(struct json_object *o, const char *key,
	    struct json_object *v);
/* Appends o's text (and "\n" if nl) all or nothing; puts o; 0 or -1. */
int	reply_put_json(struct buf *out, struct json_object *o, int nl);
int	reply_end(struct buf *out, struct json_object *o, int nl, int bad);
/* Copy req's "seq" (if any) into o, as pong and DONE do; 0 or -1. */
int	reply_echo_seq(struct json_object *o, const struct proto_req *req);

#endif
