/*
 * chat_impl.h - what the chat files share (chat.c, chat_login.c,
 * chat_route.c, chat_group.c, chat_offline.c, chat_limits.c).  Private
 * to the chat layer: the worker sees only chat.h.
 */
#ifndef CHATD_CHAT_IMPL_H
#define CHATD_CHAT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "chat.h"
#include "conn.h"
#include "proto.h"
#include "pubsub.h"
#include "store.h"
#include "workq.h"

struct store;
struct storeq;
struct chat_call;
struct store_group_list;
struct store_msg_list;
struct store_user_list;

/*
 * A client's chat-level state, hung on its connection (c->sess) by the
 * chat layer and freed with it (chat_release).  The connection keeps
 * only the socket, buffers, framing and timers.
 */
struct route;

struct session {
	int32_t		 uid;		/* 0 until logged in */
	char		*name;
	size_t		 name_len;
	int32_t		 offline_uid;	/* whose backlog batch is in out */
	int64_t		 offline_upto;	/* remove up to this once drained */
	unsigned	 offline_more:1;	/* more backlog after this batch */
	unsigned	 ack_offline:1;	/* client acknowledges offline batches */
	unsigned	 backlog_held:1;	/* the rest waits for the next login */
	unsigned	 offline_busy:1;	/* a batch removed or fetched (storeq) */
	unsigned	 offline_again:1;	/* stored meanwhile: fetch again */
	uint32_t	 offline_gen;	/* a logout ends its batches' jobs */
	unsigned	 acks:1;		/* stored chats go when acknowledged (121) */
	unsigned	 want_token:1;	/* client asked for resume tokens */
	unsigned	 has_gen:1;	/* token_gen read from the store */
	uint64_t	 token_gen;	/* the user's resume token generation */
	int64_t		*delivered;	/* stored chats queued here: their copies */
	size_t		 ndelivered;	/* go once drained, or acknowledged (acks) */
	size_t		 delivered_cap;
	int32_t		*blocked;	/* whom this user blocks (chat_block.c) */
	size_t		 nblocked;
	unsigned	 blocks_loaded:1;	/* blocked read from the store */
	unsigned	 blocks_fetching:1;	/* a read of it is under way */
	struct blocks_wait *blocks_wait;	/* chats before it (chat_block.c) */
	double		 typing_at;	/* last typing notice relayed */
	double		 read_at;	/* last read receipt relayed */
	double		 hist_at;	/* last HISTORY request (chat_history.c) */
	double		 hist_tokens;	/* HISTORY requests it may still make */
	double		 login_at;	/* monotonic, when logged in */
	unsigned	 resume_pending:1;	/* a RESUME waits (chat_resume.c) */
	unsigned	 resume_exact:1;	/* "after", not "since" */
	int64_t		 resume_smid;
	size_t		 resume_limit;
	size_t		 routes_out;	/* chats sent on, unanswered (route) */
	size_t		 acked_jobs;	/* of c->jobs: acknowledged chats */
	unsigned	 old_answers:1;	/* upgrade: the old worker answers */
	unsigned	 old_removing:1; /* and removes what it wrote (fetch) */
	unsigned	 fetch_due:1;	/* the adopter's fetch waits for that */
	struct route	*route_wait;	/* waits for them (chat_route.c) */
	struct seen_ring *seen;		/* plain: smids written (chat_seen.c) */
	int32_t		 delivered_uid;	/* whose copies delivered[] are */
};

/* What the worker handed over (chat_init), and the request limits. */
extern struct chat_env		chat;
extern struct proto_limits	chat_limits;

/* Whether a route or a group delivery is finished or still waits. */
enum route_result {
	ROUTE_DONE,		/* handed over or stored: c goes on */
	ROUTE_PENDING,		/* publishes under way: c stays paused */
	ROUTE_FAILED		/* nothing was sent (out of memory) */
};

/* chat.c */
void	chat_stat(uint64_t *counter, uint64_t n);
void	chat_error(struct conn *c, int reply_msgid, int code, int refmsgid,
	    const char *text);
/* The connection id conn if uid is logged in on it, else NULL. */
struct conn *session_conn(uint32_t conn, int32_t uid);
/* uid's connection if it is logged in on this worker, else NULL. */
struct conn *session_local(int32_t uid);
/*
 * Write a chat routed to c's session (smid > 0: stored already, its
 * copy goes once delivered); one that cannot be written and has no
 * smid is kept for later.
 */
void	session_deliver(struct conn *c, int64_t smid, const char *line,
	    size_t len);
int	user_online(int32_t uid);
int	user_known(int32_t uid);
void	user_known_add(int32_t uid);
void	chat_str_set(struct proto_str *s, const char *p, size_t len);
/* A channel message of type about uid to every other worker of the node. */
void	chat_to_others(uint32_t type, uint32_t uid);

/* chat_login.c */
void	handle_login(struct conn *c, const struct proto_req *req);
void	handle_reg(struct conn *c, const struct proto_req *req);
void	chat_logout(struct conn *c);
/*
 * Log c in as uid, already proven (a resume token): no password hash.
 * A session of uid on this node is taken over (closed, no logout); one
 * on another node too: the claim in Redis displaces it, and that node
 * closes it when it hears (pubsub_take_over).
 */
void	chat_login_resumed(struct conn *c, int32_t uid, uint64_t gen);

/* chat_adopt.c */
/* c's user logged in: the master keeps a copy (crash handover). */
void	chat_handover_keep(struct conn *c);
/* c's session ends: the master lets its copy go. */
void	chat_handover_drop(struct conn *c);
/* Upgrade: this worker handed its slot over (own slot via the channel). */
int	chat_slot_moved(void);
/* CHAN_ANSWER and CHAN_ANSWERED from the old worker of this slot. */
void	chat_old_answer(const struct chan_hdr *h, const char *payload);

/* chat_account.c */
/* A resume token for c's user into out (TOKEN_BUF_LEN); -1: none. */
int	session_token(struct conn *c, char *out, size_t outlen,
	    int64_t *expires);
/* A wrong password for ukey from c's address: counted by the guard. */
void	chat_login_failed(struct conn *c, uint64_t ukey);
/* -1 (answered "busy, retry in N ms") when the hash queue is full. */
int	auth_busy(struct conn *c, int msgid);
void	handle_token_login(struct conn *c, const struct proto_req *req);
void	handle_logout_all(struct conn *c, const struct proto_req *req);
void	handle_passwd(struct conn *c, struct proto_req *req);
void	handle_delete_account(struct conn *c, struct proto_req *req);

/* chat_history.c */
/*
 * Keep the chat req (smid set) of sender, as line, in its conversation,
 * as of created (Unix ms; taken before the chat was delivered, so that
 * an answer to it is never kept as older).
 */
void	chat_history_keep(int32_t sender, const struct proto_req *req,
	    const struct buf *line, int64_t created);
void	handle_history(struct conn *c, struct proto_req *req);
/*
 * The rows held now leave for the write thread; 0: k is kept and goes
 * (chat_call_go) once they are written, -1: nothing in flight, go now.
 */
int	chat_history_hold(struct chat_call *k);
/*
 * Before a chat from c is handled: 0 when the history rows waiting for
 * the store are over the bound, and req was taken (c is paused and
 * referenced; the chat is handled once the store catches up), -1:
 * handle it now.
 */
int	chat_history_park(struct conn *c, struct proto_req *req);
/*
 * Whether a read, an account deletion, held senders or another worker's
 * barrier wait for the history thread; chat_history_boost raises it
 * while they do.
 */
int	chat_history_awaited(void);
void	chat_history_boost(void);
/* Rows kept so far, and of them written (stored or given up). */
uint64_t chat_history_kept(void);
uint64_t chat_history_written(void);

/* chat_barrier.c: a read waits for the other workers' history */
/*
 * 0: k waits until the other workers of the node (and of the cluster)
 * stored what they kept before now, then for this worker's rows (chat_history_hold), then
 * goes (chat_call_go); -1: no other worker (or no history): go on.
 */
int	chat_barrier_hold(struct chat_call *k);
/* Each loop iteration: the reads whose barrier is done go on. */
void	chat_barrier_due(void);
/* CHAN_HIST_FLUSH or CHAN_HIST_FLUSHED from another worker. */
void	chat_barrier_msg(const struct chan_hdr *h);
/* The history rows written so far: answer the asks they complete. */
void	chat_barrier_stored(uint64_t written);
int	chat_barrier_asked(void);
/* Each second: "storing" to the workers whose asks wait. */
void	chat_barrier_tick(void);
/*
 * The first *n (at most limit) texts of l (*more: l has more), to be
 * freed by the caller; NULL: no memory.
 */
struct proto_str *chat_history_page(const struct store_msg_list *l,
	    size_t limit, size_t *n, int *more);
/* HISTORY and RESUME requests share a bucket: -1 when one too many. */
int	chat_history_rate(struct session *s);

/* chat_resume.c */
void	handle_resume(struct conn *c, const struct proto_req *req);
void	chat_history_forget(int32_t gid);
/* The history thread's queue (chat.storeq, or NULL, without one). */
struct storeq *chat_history_q(void);
/* A CALL_HISTWRITE call starts (+1) or is done (-1): boosts meanwhile. */
void	chat_history_calls(int delta);
/* n rows (bytes of text) left memory: appended to the spool. */
void	chat_history_out(size_t n, size_t bytes);
/* A batch's buffers, done with: kept for the next batch (or freed). */
void	chat_history_recycle(struct store_hist *rows, char *text);
/* n rows kept by this run are stored: the reads behind them go. */
void	chat_history_stored(size_t n);
/* Every row that left memory is stored (or given up): reads go. */
void	chat_history_settle(void);
/* Rows the spool refused: stored from memory (takes rows and text). */
void	chat_history_direct(struct store_hist *rows, char *text, size_t n,
	    size_t bytes);

/* chat_histspool.c: history rows through the worker's spool file */
void	chat_histspool_open(void);
void	chat_histspool_kick(void);
int	chat_histspool_on(void);
int	chat_histspool_full(int full, size_t held);
/* 0: rows and text are the spool's now; -1: no spool (still the caller's) */
int	chat_histspool_append(struct store_hist *rows, char *text, size_t n,
	    size_t bytes);
void	chat_histspool_close(void);

/* chat_route.c */
/*
 * A plain chat (no cmid): its server message id from this worker's
 * block, or, with none at hand, after a block is claimed in the write
 * store thread while c waits; then sent (handle_one_chat or
 * handle_group_chat).  req may be taken over.
 */
void	handle_plain_chat(struct conn *c, struct proto_req *req);
/* The next block of smids claimed in a store thread (base 0: failed). */
void	chat_smid_spare(int64_t base);
int	chat_keep_offline(const int32_t *uids, size_t n, const char *line,
	    size_t len);
/* The forwarded line: sender's object with the real id and name, "\n". */
int	forward_line(struct conn *c, const struct proto_req *req,
	    struct buf *line);
enum deliver_result {
	DELIVER_OK,		/* handed to a connection or a worker */
	DELIVER_AWAY,		/* not online on this node */
	DELIVER_REFUSED		/* the connection refused it (closed) */
};
enum deliver_result deliver_live(int32_t uid, const char *line, size_t len);
void	reply_sender(uint32_t conn, int32_t sender, int refmsgid,
	    const char *text);
enum route_result route_publish(struct conn *c, int32_t sender,
	    int refmsgid, const int32_t *uids, size_t n, const char *line,
	    size_t len, const char *errtext);
void	track_delivered(struct conn *c, int64_t smid);
/* Live delivery of a stored chat; failure leaves the stored copy. */
void	deliver_acked(int32_t uid, int64_t smid, const char *line, size_t len,
	    int may_publish);
void	deliver_acked_many(const int32_t *uids, size_t n, int64_t smid,
	    const char *line, size_t len);
#define ONE_STORE_ERR	"message could not be stored; send it again later"
#define ACKED_STORE_ERR	"not stored; send it again later"
/* req may be taken over (a recipient looked up in a store thread). */
void	handle_one_chat(struct conn *c, struct proto_req *req);
void	handle_acked_chat(struct conn *c, struct proto_req *req);

/* chat_group.c */
void	gcache_drop(int32_t gid);
/* The cached members of gid (*uids, *n), or -1. */
int	gcache_get(int32_t gid, const int32_t **uids, size_t *n);
void	gcache_put(int32_t gid, const struct store_user_list *members);
/* This worker changed gid's members: drop it here and in the other workers. */
void	gcache_changed(int32_t gid);
/* A plain group chat; c may wait (members read in a store thread). */
void	handle_group_chat(struct conn *c, struct proto_req *req);
void	handle_create_group(struct conn *c, struct proto_req *req);
void	handle_add_group(struct conn *c, struct proto_req *req);
/*
 * How many members of each group a login answer (or one page) lists
 * within bytes: the largest cap that fits, at least 1 (chat_group.c).
 */
size_t	members_cap(const struct store_group_list *groups, size_t bytes);

/* chat_manage.c */
/*
 * Push a notice (line: one JSON object, no newline; a newline is
 * added) to uids on behalf of c: live, via Redis, or stored (c waits
 * for that).  done (NULL: none) is taken over and answered DONE once
 * the notice is stored.
 */
void	chat_notify(struct conn *c, int refmsgid, const int32_t *uids,
	    size_t n, struct buf *line, struct proto_req *done);
/* Answer req DONE (109). */
void	chat_done(struct conn *c, const struct proto_req *req);
void	handle_group_manage(struct conn *c, struct proto_req *req);
void	handle_group_members(struct conn *c, struct proto_req *req);

/* chat_block.c */
enum block_verdict {
	BLOCK_PASS,		/* deliver it */
	BLOCK_DROP,		/* c's user blocks the sender: drop, silently */
	BLOCK_HELD		/* kept until c's block list is read, then
				 * delivered (session_deliver) or dropped */
};
/*
 * Whether the forwarded chat line (smid > 0: stored already; 0: not)
 * may reach c's user.  Never a store call on the loop: before the
 * session's list is in, the chat waits for its read.
 */
enum block_verdict session_blocks(struct conn *c, int64_t smid,
	    const char *line, size_t len);
/* The list goes; held chats without an smid are kept for later. */
void	session_blocks_free(struct session *s);
/* s's block list is l's users now; -1 (no memory) leaves it as it was. */
int	session_blocks_set(struct session *s, const struct store_user_list *l);
/*
 * Read c's block list (and its token generation when unknown) in the
 * read store thread: an adopted session's, or for held chats (a login
 * reads it with its lists).  -1: no memory.
 */
int	session_blocks_fetch(struct conn *c);
/* Drop from uids[0..*n) those who block sender (order kept); 0 or -1. */
int	block_filter(int32_t sender, int32_t *uids, size_t *n);
/* The same with the store st, logging nothing (a store thread's). */
int	block_filter_in(struct store *st, int32_t sender, int32_t *uids,
	    size_t *n);
void	handle_friend_remove(struct conn *c, struct proto_req *req);
/* MSG_BLOCK and MSG_UNBLOCK */
void	handle_block(struct conn *c, struct proto_req *req);
void	handle_block_list(struct conn *c, struct proto_req *req);

/* chat_live.c */
void	handle_typing(struct conn *c, struct proto_req *req);
void	handle_read(struct conn *c, struct proto_req *req);

/* chat_seen.c: a plain session's last smids written, to drop repeats */
#define SEEN_RING	256	/* smids remembered per plain session */
enum seen_result {
	SEEN_NEW,		/* not written to this session lately */
	SEEN_REPEAT		/* written already: do not write it again */
};
/* The smid of a chat line for s, or 0 (none, or s acknowledges). */
int64_t	seen_smid(const struct session *s, const char *line, size_t len);
enum seen_result session_seen(const struct session *s, int64_t smid);
/* smid (0: nothing) was written to s. */
void	session_seen_add(struct session *s, int64_t smid);
void	session_seen_free(struct session *s);
/*
 * Of the first n of msgs, mark in skip[] those written to s already and
 * remember the others as written; how many are left to write.
 */
enum seen_write {
	SEEN_WRITTEN,		/* queued on the connection */
	SEEN_DROPPED,		/* its plain client had it: not written */
	SEEN_FAILED		/* conn_send refused it (c is closing) */
};
/*
 * Write a chat line to c unless its plain client had it.  smid: the
 * line's (0: none), or -1 to read it from the line.
 */
enum seen_write session_write(struct conn *c, int64_t smid, const char *line,
	    size_t len);
size_t	seen_filter(struct session *s, const struct store_msg_list *msgs,
	    size_t n, unsigned char *skip);

/* chat_leave.c: a logout's leaving mark, until its removals are done */
/* A removal of uid's stored copies was submitted (held) or is done. */
void	leave_hold(int32_t uid);
void	leave_release(int32_t uid);
/* Whether a removal of uid's stored copies is under way here. */
int	leave_held(int32_t uid);
/* Whether a session of uid that logged out here has lines to drain. */
int	leave_draining(int32_t uid);
/*
 * Whether an upgrade's old session table holds a mark of uid (a logout
 * on an old worker, its removals under way): a login here waits for it.
 */
int	leave_old_marked(int32_t uid);
/*
 * c's user logs out: its session entry goes, or becomes a leaving mark
 * while c's removals (or lines to drain) are under way.
 */
void	leave_or_remove(struct conn *c);
/* c's output drained (chat_drained), or c is released. */
void	leave_drained(struct conn *c);
/* A login waiting for a mark: what it needs to be made again. */
struct leave_login {
	int32_t		 uid;
	int		 resumed;
	uint64_t	 token_gen;
	int		 gen_checked;
	double		 deadline;	/* monotonic; 0: not waited yet */
};
/* c waits (held) for l->uid's mark; 0, or -1 (no memory: don't). */
int	leave_wait(struct conn *c, const struct leave_login *l);
/* chat_login.c: the login again; expired: replace a mark found */
void	chat_login_again(struct conn *c, const struct leave_login *l,
	    int expired);

/* chat_offline.c */
size_t	offline_fits(const struct store_msg_list *msgs);
/*
 * Where uid's next offline batch is fetched: the read store thread, or
 * the write one while a removal of its stored copies is under way there.
 */
struct storeq *offline_fetch_queue(int32_t uid);
int	offline_more(const struct store_msg_list *msgs, size_t n);
void	offline_sent(struct conn *c, const struct store_msg_list *msgs,
	    size_t n);
/* The stored copies of the chats in c->sess->delivered go (drained). */
void	remove_delivered(struct conn *c);
void	offline_push(struct conn *c);
int	offline_settled(const struct session *s);
void	handle_offline_ack(struct conn *c, const struct proto_req *req);
void	handle_received(struct conn *c, const struct proto_req *req);

/* chat_storejob.c: store calls in the worker's store queue (storeq.h) */
/*
 * An acknowledged chat (req, taken over: the caller's is left empty)
 * from c's user to to[0..n) (owned by the job; a ONE_CHAT's req->toid
 * is checked to be a user; a group chat's to is NULL: the job reads
 * the members and checks c's user is one): claimed, filtered, stored in a store
 * thread, then delivered and acknowledged.  c waits meanwhile.  0, or
 * -1 answered.
 */
int	acked_submit(struct conn *c, struct proto_req *req, int32_t *to,
	    size_t n);
enum keep_result {
	KEEP_DONE,		/* nothing to store */
	KEEP_PENDING,		/* in the store queue; c (if any) waits */
	KEEP_FAILED		/* not queued (out of memory) */
};
/*
 * chat_keep_offline in a store thread: line (without its "\n") for
 * uids[0..n) from sender, whose connection c (may be NULL) waits till
 * it is stored.  check: uids[0] must be a user.  Errors are answered
 * (refmsgid, errtext) on connection conn if sender is still there.
 */
enum keep_result keep_submit(struct conn *c, uint32_t conn, int32_t sender,
	    int refmsgid, const char *errtext, const int32_t *uids, size_t n,
	    int check, const char *line, size_t len);
/*
 * The same, then line to then[0..nthen) live once it is stored (whether
 * or not the store worked): a plain group chat reaches nobody before the
 * copies for its members who are away are stored, so that an answer to
 * it cannot be stored for them first.
 */
enum keep_result keep_submit_then(struct conn *c, uint32_t conn,
	    int32_t sender, int refmsgid, const char *errtext,
	    const int32_t *uids, size_t n, int check, const char *line,
	    size_t len, const int32_t *then, size_t nthen);
/*
 * keep_submit_then for a group chat's fan-out to other nodes, nobody
 * held (the fan-out holds the sender): its pushes (fanw) go once the
 * copies for uids are stored and then[] got the line.
 */
enum keep_result keep_submit_fan(uint32_t conn, int32_t sender,
	    int refmsgid, const char *errtext, const int32_t *uids, size_t n,
	    const char *line, size_t len, const int32_t *then, size_t nthen,
	    struct pubsub_fanout_wait *fanw);
/*
 * A line from Redis (with its "\n", in len) for uids[0..n), who are not
 * here: stored in the write store thread, its item acknowledged once
 * that committed.  PUBSUB_PENDING, PUBSUB_STORED (nothing to store), or
 * PUBSUB_RETRY (not started: the item is offered again).
 */
enum pubsub_result keep_remote(const int32_t *uids, size_t n,
	    const char *line, size_t len);
/*
 * Remove uid's stored copies of smids[0..n) (delivered) in a store
 * thread.  c: a RECEIVED's connection, which waits and is answered
 * refmsgid's error if one fails; NULL: only logged.  The copies that
 * stay come again (same smid) at the next login.
 */
void	delivered_remove_submit(struct conn *c, int refmsgid, int32_t uid,
	    const int64_t *smids, size_t n);

/*
 * Copies for uids[0..n) were just stored: a recipient who logged in
 * meanwhile (its login may have looked before) fetches them: a login
 * under way here reads again (chat_stores_done), a session on another
 * worker or node is told, over the channel or Redis.
 */
void	stored_nudge(const int32_t *uids, size_t n);

/* Claim the next block of smids, for uid, in a store thread. */
void	smid_block_submit(int32_t uid);

/*
 * What a login reads from the store, in the read store thread
 * (chat.storeq_read) so that it does not wait behind writes.  The
 * want_ flags choose; rc is STORE_OK, STORE_NOTFOUND (want_user: no
 * such user) or STORE_ERR (logged).  name: looked up by name, else uid.
 */
struct login_data {
	int32_t			 uid;
	unsigned		 want_user:1;
	unsigned		 want_lists:1;	/* friends and groups */
	unsigned		 want_gen:1;	/* token generation */
	unsigned		 want_msgs:1;	/* offline messages */
	unsigned		 take_over:1;	/* token login: displace another node's session */
	unsigned		 blocks_read:1;	/* want_lists: blocks is the user's */
	unsigned		 check_gen:1;	/* token login: gen must equal token_gen */
	unsigned		 revoked:1;	/* check_gen: it did not (nothing else read) */
	uint64_t		 token_gen;	/* check_gen: the token's generation */
	size_t			 max_msgs;
	char			*name;		/* the job's copy */
	size_t			 name_len;
	int			 rc;
	struct store_user	 user;
	struct store_user_list	 friends;
	struct store_group_list	 groups;
	struct store_user_list	 blocks;	/* want_lists: whom it blocks */
	struct store_msg_list	 msgs;
	uint64_t		 gen;
	uint64_t		 stores_seen;	/* chat_stores_done() at submit */
};
/*
 * Back on the loop: c no longer held by the job (c->jobs), still
 * paused; cb resumes it or hands it on, and checks c->closing.  What cb
 * leaves in d (set to NULL/0 what it takes) is freed after it.
 */
typedef void login_data_cb(struct conn *c, struct login_data *d, void *arg);
/* 0, or -1 (out of memory: nothing submitted, c untouched). */
int	login_data_submit(struct conn *c, const struct login_data *want,
	    const char *name, size_t name_len, login_data_cb *cb, void *arg);
/*
 * How many store jobs stored something so far: a login whose reads saw
 * fewer than now fetches again once answered (it may have looked before
 * a copy for it was stored).
 */
uint64_t chat_stores_done(void);
void	chat_stores_note(void);

/* chat_call.c: a request answered from store calls in a store thread */
enum call_lane {
	CALL_READ,		/* chat.storeq_read: reads only */
	CALL_WRITE,		/* chat.storeq: behind the writes queued */
	CALL_HISTORY,		/* a read once this worker's history rows
				 * held now are written (chat_history_hold) */
	CALL_HISTWRITE		/* chat.storeq_hist, boosted: writes that
				 * touch history (account deletion) */
};
/*
 * Embedded first in a request's own job.  run(k, st) in a store thread
 * (the job's memory and st only) sets code/text for an error answer
 * (reply_msgid, default MSG_ERROR); back on the loop the error is
 * answered, then answer(c, k) runs (c NULL: the session that asked is
 * gone; undo or drop), then c resumes (unless answer handed it to more
 * work that holds it: c->jobs grew) and release (NULL: free) frees k.
 */
struct chat_call {
	struct workq_job	 sj;
	void	(*run)(struct chat_call *k, struct store *st);
	void	(*answer)(struct conn *c, struct chat_call *k);
	void	(*release)(struct chat_call *k);
	struct conn		*c;
	int32_t			 uid;		/* the session that asked */
	struct proto_req	 req;		/* the request, owned */
	int			 refmsgid;	/* its msgid */
	int			 reply_msgid;
	int			 code;		/* error answer; 0: none */
	const char		*text;		/* static, or NULL */
	char			*err;		/* logged on the loop */
	enum call_lane		 lane;
	unsigned		 paused:1;
	unsigned		 go_on:1;	/* answer: resume c, handed on or not */
};
/*
 * A zeroed call of size bytes (a struct whose first member is the
 * struct chat_call) for refmsgid; NULL answered (no memory).
 */
struct chat_call *chat_call_new(struct conn *c, int refmsgid, size_t size,
	    void (*run)(struct chat_call *, struct store *),
	    void (*answer)(struct conn *, struct chat_call *),
	    void (*release)(struct chat_call *));
/* In run: answer code, log what with st's error (st NULL: memory). */
void	chat_call_fail(struct chat_call *k, struct store *st, int code,
	    const char *what);
/*
 * Hold c (and pause it, so its next requests wait: pause) and run k in
 * lane; without store threads k runs at once on the loop.  req (NULL:
 * k->refmsgid set by the caller) is taken over: the caller's is left
 * empty.
 */
void	chat_call_submit(struct conn *c, struct chat_call *k,
	    struct proto_req *req, enum call_lane lane, int pause);
/* Run k in its lane now (held already; a read for a closing c: dropped). */
void	chat_call_go(struct chat_call *k);
/*
 * From k's answer: handle k's request now, as if just read (a plain
 * chat that had to wait for its smid or its recipient's lookup).
 */
void	chat_call_replay(struct conn *c, struct chat_call *k,
	    void (*handle)(struct conn *, struct proto_req *));

/* chat_limits.c */
void	handle_add_friend(struct conn *c, struct proto_req *req);
/*
 * In a store thread (chat_call.c): 0 when k's user may be in one more
 * group (max_groups, 0: no limit); -1 with k's answer set.
 */
int	groups_room(struct chat_call *k, struct store *st, int max_groups);
/* 0 when k's user may join gid (room on both sides); -1 answered. */
int	group_join_room(struct chat_call *k, struct store *st, int32_t gid,
	    int max_groups, int max_members);

#endif
