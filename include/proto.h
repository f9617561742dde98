/*
 * proto.h - the wire protocol: the seed's JSON messages (msgid 1..10)
 * plus chatd's extensions.  Pure: no I/O, no event loop, no storage.
 */
#ifndef CHATD_PROTO_H
#define CHATD_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "buf.h"

struct json_object;

enum proto_msgid {
	MSG_LOGIN		= 1,
	MSG_LOGIN_ACK		= 2,
	MSG_LOGINOUT		= 3,
	MSG_REG			= 4,
	MSG_REG_ACK		= 5,
	MSG_ONE_CHAT		= 6,
	MSG_ADD_FRIEND		= 7,
	MSG_CREATE_GROUP	= 8,
	MSG_ADD_GROUP		= 9,
	MSG_GROUP_CHAT		= 10,
	/* extensions: only ever sent to a client that asked for them,
	 * except MSG_ERROR in answer to a bad request */
	MSG_ERROR		= 100,	/* {"msgid":100,"errno":E,"errmsg":S,"refmsgid":N} */
	MSG_PING		= 101,	/* client -> server, any fields */
	MSG_PONG		= 102,	/* server -> client, echoes "seq" if given */
	MSG_CHAT_ACK		= 103,	/* {"msgid":103,"cmid":N,"smid":N} */
	MSG_WHOAMI		= 104,	/* client -> server, any state */
	MSG_WHOAMI_ACK		= 105,	/* {"msgid":105,"errno":0,"id":N,"worker":N,"pid":N} */
	MSG_OFFLINE_ACK		= 106,	/* client: {"msgid":106,"upto":N} read up to N */
	MSG_OFFLINE_BATCH	= 107,	/* {"msgid":107,"offlinemsg":[...],"offlineupto":N,"offlinemore":B} */
	/* chat features (chatd-protocol(7), "Groups, friends and blocks") */
	MSG_GROUP_MANAGE	= 108,	/* {"groupid":G,"op":S[,"userid":U][,"groupname":S][,"groupdesc":S]} */
	MSG_DONE		= 109,	/* {"msgid":109,"errno":0,"refmsgid":N[,"seq":X]} */
	MSG_GROUP_MEMBERS	= 110,	/* {"groupid":G[,"offset":N][,"limit":N]} */
	MSG_GROUP_MEMBERS_ACK	= 111,	/* {"groupid":G,"offset":N,"total":N,"members":[{...}]} */
	MSG_GROUP_NOTICE	= 112,	/* pushed: {"groupid":G,"event":S,"by":U[,"userid":U]...} */
	MSG_FRIEND_REMOVE	= 113,	/* {"friendid":F} */
	MSG_BLOCK		= 114,	/* {"userid":U} */
	MSG_UNBLOCK		= 115,	/* {"userid":U} */
	MSG_BLOCK_LIST		= 116,	/* {} */
	MSG_BLOCK_LIST_ACK	= 117,	/* {"blocked":[{"id":U,"name":S}]} */
	MSG_FRIEND_NOTICE	= 118,	/* pushed: {"event":"removed","userid":U} */
	MSG_TYPING		= 119,	/* {"toid":U} or {"groupid":G}; relayed live only */
	MSG_READ		= 120,	/* {"toid":U,"upto":SMID}; relayed to U */
	MSG_RECEIVED		= 121,	/* client ("acks"): {"msgid":121,"smids":[N,...]} */
	MSG_LOGOUT_ALL		= 122,	/* client: revoke every resume token, log out */
	MSG_PASSWD		= 123,	/* client: {"msgid":123,"password":OLD,"newpassword":NEW} */
	MSG_ACCOUNT_ACK		= 124,	/* {"msgid":124,"errno":0,"refmsgid":N[,"token":T,"tokenexpires":E]} */
	MSG_HISTORY		= 125,	/* {"toid":U} or {"groupid":G}[,"before":SMID][,"limit":N] */
	MSG_HISTORY_ACK		= 126,	/* {"msgid":126,"errno":0,"toid"|"groupid":N,"messages":[S,...],"more":B} */
	MSG_DELETE_ACCOUNT	= 127,	/* client: {"msgid":127,"password":PW}; answered by 124 */
	MSG_RESUME		= 128,	/* {"since":SMID} or {"after":SMID}[,"limit":N] */
	MSG_RESUME_ACK		= 129,	/* {"msgid":129,"errno":0,"since"|"after":N,"messages":[S,...],"more":B} */
};

/*
 * MSG_RESUME: what reached the user (one-to-one and group chats, not
 * its own) after the chat "since", from the history (history_days),
 * oldest first by arrival (smid breaks ties).  The first page starts
 * PROTO_RESUME_WINDOW_MS before "since" arrived (clocks of the nodes,
 * deliveries overtaking each other): the client drops smids it has.
 * Later pages ("after": the last smid of the page before) follow
 * exactly.  "since" older than PROTO_RESUME_MAX_AGE_MS or no longer in
 * the history: ERR_RESUME_GONE.
 */
#define PROTO_RESUME_LIMIT	200
#define PROTO_RESUME_MAX	500
#define PROTO_RESUME_WINDOW_MS	10000
#define PROTO_RESUME_MAX_AGE_MS	(24 * 3600 * 1000LL)

/* MSG_HISTORY: the page size when "limit" is absent, and its top. */
#define PROTO_HISTORY_LIMIT	50
#define PROTO_HISTORY_MAX	200

/* MSG_GROUP_MANAGE "op"; the same words name the notice's "event". */
enum proto_group_op {
	GOP_LEAVE,		/* the sender leaves */
	GOP_REMOVE,		/* "userid" is removed (creator, admins) */
	GOP_ADMIN,		/* "userid" becomes an admin (creator) */
	GOP_UNADMIN,		/* "userid" is an admin no more (creator) */
	GOP_RENAME,		/* "groupname" (creator, admins) */
	GOP_DESCRIBE,		/* "groupdesc" (creator, admins) */
	GOP_TRANSFER,		/* "userid" becomes the creator (creator) */
	GOP_DISSOLVE,		/* the group goes (creator) */
	GOP_MAX
};
/* The op's word ("leave", "remove", ...), NULL when out of range. */
const char *proto_group_op_name(int op);

/* MSG_GROUP_MEMBERS: the page size when "limit" is absent, and its top. */
#define PROTO_MEMBERS_LIMIT	50
#define PROTO_MEMBERS_MAX	500

/*
 * errno values.  1 and 2 keep the seed's meaning in LOGIN_ACK/REG_ACK;
 * the rest are chatd's and appear in MSG_ERROR, or in LOGIN_ACK/REG_ACK
 * when the bad request was a login or registration.
 */
enum proto_err {
	ERR_OK			= 0,
	ERR_AUTH		= 1,	/* LOGIN: wrong id or password; REG: name taken */
	ERR_ONLINE		= 2,	/* LOGIN: user already online */
	ERR_MALFORMED		= 10,	/* not valid JSON */
	ERR_NOT_OBJECT		= 11,	/* valid JSON, but not an object */
	ERR_UNKNOWN_MSGID	= 12,
	ERR_MISSING_FIELD	= 13,
	ERR_WRONG_TYPE		= 14,
	ERR_BAD_VALUE		= 15,	/* out of range, empty, invalid UTF-8, lone surrogate */
	ERR_TOO_LONG		= 16,	/* a name, description, password or message over its limit */
	ERR_NOT_LOGGED_IN	= 17,
	ERR_IDENTITY		= 18,	/* request claims another user's id */
	ERR_NO_SUCH_USER	= 19,
	ERR_NO_SUCH_GROUP	= 20,
	ERR_NOT_MEMBER		= 21,
	ERR_NOT_ALLOWED		= 22,	/* e.g. befriending yourself */
	ERR_EXISTS		= 23,	/* group name taken */
	ERR_UNAVAILABLE		= 24,	/* storage or another dependency failed; retry later */
	ERR_RATE		= 25,	/* too many requests */
	ERR_FRAME_TOO_BIG	= 26,	/* connection is closed after this */
	ERR_ALREADY_LOGGED_IN	= 27,	/* LOGIN on a connection already logged in */
	ERR_LIMIT		= 28,	/* a configured count limit was reached */
	ERR_BUSY		= 29,	/* too many logins queued: retry after "retryms" */
	ERR_TOKEN		= 30,	/* LOGIN: resume token refused (expired, revoked, altered) */
	ERR_RESUME_GONE		= 31,	/* RESUME: too late (or history off): use HISTORY */
};

/* Default text for an errno value; never NULL. */
const char *proto_strerror(int code);

/* ---- frame splitter ------------------------------------------------ */

/*
 * A request ends where its JSON value ends.  Separators (NUL, space,
 * \t, \r, \n) between values are skipped.  The scanner is incremental:
 * feed it the same unconsumed input again after more bytes arrived and
 * it continues where it stopped, never rescanning.
 *
 * Objects, arrays and strings are delimited.  A raw NUL anywhere in an
 * unfinished value, and a raw newline or carriage return inside a
 * string, end that value as malformed (FRAME_BAD, the bad byte its
 * last) so the stream resynchronises after it; outside strings a
 * newline is whitespace.  Any other first byte (digits, letters,
 * garbage) cannot be resynchronised: FRAME_GARBAGE.
 */
enum frame_status {
	FRAME_NEED_MORE	= 0,	/* no complete value yet */
	FRAME_OK	= 1,	/* [*off, *off + *vlen) is one value */
	FRAME_BAD	= 2,	/* [*off, *off + *vlen) is malformed; answer, go on */
	FRAME_GARBAGE	= 3,	/* not JSON: close the connection */
	FRAME_TOO_BIG	= 4,	/* value would exceed max: close */
};

struct frame_scanner {
	size_t	 pos;		/* bytes of the current value scanned */
	int	 depth;		/* bracket nesting */
	int	 started;	/* a value has begun */
	int	 in_string;
	int	 escape;
	char	 first;		/* '{', '[' or '"' */
};

void	frame_scanner_init(struct frame_scanner *s);
/*
 * Scan data[0..len).  On every return *consumed is the number of bytes
 * the caller must drop from the front of its input before the next
 * call (separators skipped, plus the value for OK and BAD).  *off is
 * the value's offset from data; *vlen its length.  max bounds one
 * value's size.
 */
enum frame_status frame_next(struct frame_scanner *s, const char *data,
	    size_t len, size_t max, size_t *off, size_t *vlen, size_t *consumed);

/* ---- requests ------------------------------------------------------ */

struct proto_limits {
	size_t	 max_name_bytes;
	size_t	 max_message_bytes;
	size_t	 max_groupdesc_bytes;
	size_t	 max_password_bytes;
};

/* A string field: points into the parsed JSON, not NUL-safe, has len. */
struct proto_str {
	const char	*p;
	size_t		 len;
};

/*
 * A decoded, validated request.  Which fields are set depends on msgid
 * (see proto_decode).  Strings point into root and live until
 * proto_req_clear().  Integers are ids: 1..INT32_MAX.
 */
struct proto_req {
	int			 msgid;
	struct json_object	*root;		/* owned */
	int			 has_id;	/* claimed sender, never trusted */
	int32_t			 id;
	int32_t			 toid;		/* ONE_CHAT */
	int32_t			 friendid;	/* ADD_FRIEND */
	int32_t			 groupid;	/* ADD_GROUP, GROUP_CHAT */
	struct proto_str	 name;		/* REG, LOGIN by name */
	struct proto_str	 password;	/* REG, LOGIN */
	struct proto_str	 msg;		/* ONE_CHAT, GROUP_CHAT */
	struct proto_str	 groupname;	/* CREATE_GROUP */
	struct proto_str	 groupdesc;	/* CREATE_GROUP ("" if absent) */
	int			 has_cmid;	/* opt-in acknowledgement */
	int64_t			 cmid;
	int			 ackoffline;	/* LOGIN: opt-in offline acks */
	int			 acks;		/* LOGIN: opt-in chat acks (108) */
	int			 want_token;	/* LOGIN: "token" true or a string */
	struct proto_str	 token;		/* LOGIN: resume token (p NULL: none) */
	struct proto_str	 newpassword;	/* PASSWD */
	int64_t			 upto;		/* OFFLINE_ACK */
	int			 op;		/* GROUP_MANAGE: enum proto_group_op */
	int32_t			 userid;	/* GROUP_MANAGE, BLOCK, UNBLOCK */
	int64_t			 offset;	/* GROUP_MEMBERS */
	int64_t			 limit;		/* GROUP_MEMBERS, HISTORY */
	int64_t			 before;	/* HISTORY: older than this smid, 0 none */
	int64_t			 since;		/* RESUME: window before this smid, or 0 */
	int64_t			 after;		/* RESUME: exactly after this smid, or 0 */
	int64_t			 smid;		/* chats: set by proto_req_set_smid */
	int64_t			*smids;		/* RECEIVED: owned */
	size_t			 nsmids;
	/*
	 * Private to src/proto: a chat's own text when it is exactly what
	 * json-c would write for root, so proto_put_forward can splice
	 * the sender into it instead of copying and serialising root.
	 * Change root only through proto_* calls (they keep this in
	 * step); a changed key count turns the fast path off.
	 */
	struct proto_fwd	*fwd;
};

/* Where a decoding failure is to be answered. */
struct proto_fail {
	int		 reply_msgid;	/* MSG_LOGIN_ACK, MSG_REG_ACK or MSG_ERROR */
	int		 refmsgid;	/* msgid of the bad request, 0 if unknown */
	int		 code;		/* enum proto_err */
	char		 text[128];	/* human readable, names the field */
};

/*
 * Parse and validate one frame from frame_next.  Rules:
 *  - valid UTF-8, no lone surrogate escapes, one JSON object;
 *  - integer "msgid" known;
 *  - required fields present with the right JSON type (never coerced):
 *      LOGIN: "password" string, and "id" integer or "name" string
 *      REG: "name", "password" strings (non-empty, within limits)
 *      LOGINOUT: none
 *      ONE_CHAT: "toid" integer, "msg" string
 *      ADD_FRIEND: "friendid" integer
 *      CREATE_GROUP: "groupname" string; "groupdesc" string optional
 *      ADD_GROUP: "groupid" integer
 *      GROUP_CHAT: "groupid" integer, "msg" string
 *      PING, WHOAMI: none
 *      OFFLINE_ACK: "upto" integer >= 0
 *      RECEIVED: "smids" array of 1..PROTO_MAX_SMIDS integers >= 1
 *  - LOGIN may carry "ackoffline": true (boolean): offline messages are
 *    then removed only when the client acknowledges them (106); and
 *    "acks": true (boolean): the same, and stored chats delivered live
 *    are removed only when acknowledged (121);
 *  - LOGIN may carry "token": true (a resume token in the answer) or a
 *    token string, which then stands for "id"/"name" and "password";
 *  - LOGOUT_ALL: none; PASSWD: "password", "newpassword" strings;
 *  - HISTORY: exactly one of "toid", "groupid" (ids); "before" integer
 *    >= 1 and "limit" 1..PROTO_HISTORY_MAX optional;
 *  - DELETE_ACCOUNT: "password" string;
 *  - RESUME: exactly one of "since", "after" (integers >= 1); "limit"
 *    1..PROTO_RESUME_MAX optional;
 *  - "id" when present is an integer in range (checked against the
 *    session by the caller, not here);
 *  - "name" in chats, when present, must be a string;
 *  - "cmid" when present is a non-negative integer.
 * Returns 0 with req filled (caller calls proto_req_clear), or -1 with
 * fail filled and req cleared.
 */
int	proto_decode(const char *frame, size_t len,
	    const struct proto_limits *lim, struct proto_req *req,
	    struct proto_fail *fail);
void	proto_req_clear(struct proto_req *req);

/* ---- replies (each appended as one JSON object plus "\n") ---------- */

/* {"msgid":reply_msgid,"errno":code,"errmsg":text[,"refmsgid":N]} */
int	proto_put_error(struct buf *out, int reply_msgid, int code,
	    int refmsgid, const char *text);
int	proto_put_reg_ack(struct buf *out, int32_t id);
int	proto_put_pong(struct buf *out, const struct proto_req *ping);
int	proto_put_chat_ack(struct buf *out, int64_t cmid, int64_t smid);
/*
 * {"msgid":reply_msgid,"errno":29,"errmsg":"busy, retry in N ms",
 * "retryms":N,"refmsgid":refmsgid}
 */
int	proto_put_busy(struct buf *out, int reply_msgid, int refmsgid,
	    int retry_ms);
/*
 * MSG_HISTORY_ACK: one page, newest first; msgs are the stored chats
 * (forwarded objects), sent as JSON-encoded strings like offline ones.
 * toid 0: a group's page (gid).
 */
int	proto_put_history(struct buf *out, int32_t toid, int32_t gid,
	    const struct proto_str *msgs, size_t n, int more);
/*
 * MSG_RESUME_ACK: one page, oldest first, msgs as HISTORY_ACK's; key
 * "since" or "after" with its value, as asked.
 */
int	proto_put_resume(struct buf *out, const char *key, int64_t smid,
	    const struct proto_str *msgs, size_t n, int more);
/* MSG_ACCOUNT_ACK; token NULL: none. */
int	proto_put_account_ack(struct buf *out, int refmsgid, const char *token,
	    int64_t expires);
/* {"msgid":105,"errno":0,"id":id,"worker":worker,"pid":pid} */
int	proto_put_whoami(struct buf *out, int32_t id, int worker, int pid);

/*
 * MSG_DONE: req was carried out.  {"msgid":109,"errno":0,"refmsgid":M}
 * with the request's "seq" echoed when it has one.
 */
int	proto_put_done(struct buf *out, const struct proto_req *req);

/* Why a new connection is turned away (before it is served). */
enum proto_refuse {
	PROTO_REFUSE_FULL,	/* max_connections, or no memory */
	PROTO_REFUSE_PER_ADDR,	/* max_connections_per_ip */
};
/* The one error line (MSG_ERROR, ERR_LIMIT) a refused connection gets. */
int	proto_put_refuse(struct buf *out, enum proto_refuse why);

struct proto_user {
	int32_t		 id;
	struct proto_str name;
	int		 online;
	int		 creator;	/* group members only */
	int		 admin;		/* MSG_GROUP_MEMBERS_ACK only */
};

/* MSG_GROUP_MEMBERS_ACK: one page of members, roles "creator", "admin", "normal". */
int	proto_put_members(struct buf *out, int32_t gid, int64_t offset,
	    int64_t total, const struct proto_user *v, size_t n);
/* MSG_BLOCK_LIST_ACK: ids and names (online unused). */
int	proto_put_blocks(struct buf *out, const struct proto_user *v, size_t n);

/* What a MSG_GROUP_NOTICE says; text is the new name or description. */
struct proto_group_notice {
	int32_t			 gid;
	int			 op;	/* enum proto_group_op: the event */
	int32_t			 by;	/* who did it */
	int32_t			 userid;	/* whom it concerns, 0: nobody */
	struct proto_str	 text;	/* RENAME, DESCRIBE */
};
/*
 * The notice as one JSON object; "time" as in forwarded chats.  No
 * newline: the caller adds it for live delivery, stores it bare.
 */
int	proto_put_group_notice(struct buf *out,
	    const struct proto_group_notice *n, time_t now);
/*
 * The sender ("id") of a forwarded ONE_CHAT, GROUP_CHAT, TYPING or READ
 * line, 0 for any other line (notices) or one that does not parse;
 * *msgid (may be NULL) its msgid, 0 when it has none.
 */
int32_t	proto_line_sender(const char *line, size_t len, int *msgid);
/*
 * The relayed TYPING ({"msgid":119,"id":U,"name":S} plus "toid" or
 * "groupid", whichever is not 0) and READ ({"msgid":120,"id":U,
 * "name":S,"toid":T,"upto":N}) lines, without newline.
 */
int	proto_put_typing(struct buf *out, int32_t from, const char *name,
	    size_t name_len, int32_t toid, int32_t gid);
int	proto_put_read(struct buf *out, int32_t from, const char *name,
	    size_t name_len, int32_t toid, int64_t upto);
/* MSG_FRIEND_NOTICE {"msgid":118,"event":"removed","userid":U,"time":T}, no newline. */
int	proto_put_friend_notice(struct buf *out, int32_t userid, time_t now);

/* At most this many smids in one RECEIVED request. */
#define PROTO_MAX_SMIDS	1000

struct proto_group {
	int32_t			 id;
	struct proto_str	 name;
	struct proto_str	 desc;
	const struct proto_user	*members;
	size_t			 nmembers;
	size_t			 total;		/* > nmembers: "userstotal" */
};

struct proto_login {
	int32_t			 id;
	struct proto_str	 name;
	const struct proto_user	*friends;
	size_t			 nfriends;
	const struct proto_group *groups;
	size_t			 ngroups;
	const struct proto_str	*offline;	/* stored forwarded messages */
	size_t			 noffline;
	/* for clients that acknowledge offline messages (ackoffline) */
	int			 ackoffline;
	int64_t			 offlineupto;	/* acknowledge up to this */
	int			 offlinemore;	/* another batch follows */
	const char		*token;		/* resume token, NULL: none */
	int64_t			 tokenexpires;	/* its expiry, Unix time */
};

/*
 * LOGIN_MSG_ACK success: the three lists hold JSON-encoded strings, as
 * the seed client expects; empty lists are omitted.
 */
int	proto_put_login_ok(struct buf *out, const struct proto_login *l);
/*
 * Bytes one member takes at most in a login answer's group (a name
 * escaped twice), for budgets.
 */
size_t	proto_member_bytes(size_t name_len);
/* MSG_OFFLINE_BATCH: the next offline batch for an ackoffline client. */
int	proto_put_offline_batch(struct buf *out, const struct proto_str *msgs,
	    size_t n, int64_t upto, int more);
/*
 * The server message id of an acknowledged chat goes into the forwarded
 * object as "smid"; smid 0 removes a "smid" the client sent, which only
 * the server may set.  0 or -1.
 */
int	proto_req_set_smid(struct proto_req *req, int64_t smid);
/* The top-level "smid" of a forwarded line (relayed by another node), 0 if none. */
int64_t	proto_line_smid(const char *line, size_t len);
/*
 * The same without parsing the line: the value of its last "smid" key.
 * The server appends its smid after the keys the client wrote, so in a
 * forwarded chat (which always has one) that is the server's; not for
 * lines that may lack it (a nested "smid" of the client's would be read).
 */
int64_t	proto_line_smid_last(const char *line, size_t len);

/*
 * The forwarded form of a chat request: the sender's object with "id"
 * and "name" set to the real sender (added when absent), and "time" set
 * to now as the seed client writes it ("YYYY-MM-DD HH:MM:SS", local
 * time) when it is absent (added at the end) or not a string (replaced
 * in place); every other field unchanged in value and JSON type.
 * Appends without a trailing newline; the caller adds "\n" for live
 * delivery and stores the bare object offline.  0 or -1.
 */
int	proto_put_forward(struct buf *out, const struct proto_req *req,
	    int32_t from_id, const char *from_name, size_t from_name_len);
/* proto_put_forward with "now" given (tests, replays). */
int	proto_put_forward_at(struct buf *out, const struct proto_req *req,
	    int32_t from_id, const char *from_name, size_t from_name_len,
	    time_t now);

#endif
