/*
 * handover.h - connections outlive their worker (private to src/server).
 *
 * Every logged-in plain-TCP connection of a worker is also held by the
 * master: the worker passes a duplicate of the socket (SCM_RIGHTS) with
 * a small state record when the user logs in, and tells the master to
 * drop it when the session ends.  When the worker dies, the master's
 * copies keep the sockets open; the replacement inherits them (fork)
 * with their records and adopts them under the same connection ids.
 * The master does no client I/O and knows nothing of what a record
 * means beyond its length.
 *
 * One SOCK_SEQPACKET socketpair per slot, both ends kept by the master:
 * what a worker sent before it died waits there to be read.
 */
#ifndef CHATD_HANDOVER_H
#define CHATD_HANDOVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct online_slot_stats;

/*
 * A worker that dies again within this many seconds of adopting
 * connections does not pass them on: they are closed (a request that
 * crashes every worker must not take the node down in a loop).
 */
#define HANDOVER_RETRY_SECONDS	5.0

/*
 * The state passed with one connection: a fixed part, then name_len
 * bytes of the user's name.  Written and read by the chat layer
 * (chat_adopt.c); the master only stores it.
 */
#define HANDOVER_STATE_VERSION	1
/*
 * A record with HO_F_WS: a binary that knows only version 1 refuses it
 * (a downgrade closes websockets instead of writing plain lines to them).
 */
#define HANDOVER_STATE_VERSION_WS	2
/*
 * A record's size bound: the state with a name of any configured size
 * (and, HO_F_CLEAN, a partial request; a larger one is not clean).
 */
#define HANDOVER_MAX_RECORD	(64 * 1024)
/* The datagram type of a connection: {type, conn} + record + socket. */
#define HANDOVER_MSG_KEEP	1
#define HO_F_ACK_OFFLINE	0x1	/* "ackoffline" */
#define HO_F_ACKS		0x2	/* "acks" */
#define HO_F_TOKEN		0x4	/* asked for resume tokens */
/*
 * Handed over on purpose (binary upgrade, upgrade.h): the worker had
 * stopped reading, answered what it had read and written all of its
 * output, so the streams are at frame boundaries.  The record ends with
 * the bytes of a partial request it had read (after the name): the
 * adopter reads on from them, skips nothing and ends no line.
 */
#define HO_F_CLEAN		0x8
/*
 * With HO_F_CLEAN: acknowledged chats the old worker had read are still
 * being stored there.  It sends their answers over the slot's channel
 * when they commit (CHAN_ANSWER), then CHAN_ANSWERED; the adopter holds
 * the connection's input until then, so its requests keep their order.
 */
#define HO_F_ANSWERS		0x10
/*
 * A WebSocket connection (ws.h), open.  With HO_F_CLEAN it was handed
 * over between two whole units of its input and with its output
 * written: the adopter starts a fresh wslay context, and the partial
 * request is the bytes of a unit not yet begun.  Without (the master's
 * crash copy), where its frames stand died with the worker: the adopter
 * closes it; the client connects again (and RESUMEs).
 */
#define HO_F_WS			0x20
/*
 * With HO_F_CLEAN: nothing of the user's stored messages was under way
 * (offline_settled), so the adopter does not fetch them (a store read
 * per user) on a single node: what is stored later comes with a
 * CHAN_STORED nudge, which waits in the slot's channel.  A cluster
 * fetches anyway, after its claim.
 */
#define HO_F_SETTLED		0x40
/*
 * With HO_F_CLEAN: the user blocks nobody (the list was read): the
 * adopter does not read it again.  A list with entries is read again,
 * as after a crash (a version 1 record has no room for it).
 */
#define HO_F_NOBLOCKS		0x80
/*
 * With HO_F_CLEAN: stored copies written to the user (a plain client's,
 * removed once written) were still being removed by the old worker.  It
 * sends CHAN_ANSWERED once they are done (for CHAT_REMOVAL_WAIT at
 * most), and the adopter fetches the user's stored messages only then,
 * so that it cannot find them; its input waits meanwhile.
 */
#define HO_F_REMOVING		0x100

struct ho_state {
	uint32_t		 version;
	uint32_t		 conn;		/* id in the worker's table */
	int32_t			 uid;
	uint32_t		 flags;
	uint32_t		 peer_len;	/* of peer */
	struct sockaddr_storage	 peer;
	uint32_t		 name_len;	/* bytes after this struct */
};

/* One connection a new worker inherits. */
struct ho_inherit {
	uint32_t	 conn;
	int		 fd;
	const char	*state;		/* struct ho_state, then the name */
	size_t		 len;
};

/* ---- master ------------------------------------------------------------ */

/* Before the first fork: the socketpairs.  0 or -1 with err. */
int	handover_init(int nslots, char *err, size_t errlen);
/* The master's end of slot's pair, to poll for reading. */
int	handover_fd(int slot);
/* Read what slot's worker sent (all of it, or as much as is there). */
void	handover_read(int slot, struct online_slot_stats *st);
/*
 * Slot's worker died (stopping: the node is going down).  Reads what it
 * sent last, then either keeps its connections for the replacement or,
 * when it died soon after adopting, closes them.  Returns how many the
 * replacement will adopt.
 */
size_t	handover_worker_died(int slot, int stopping, double now,
	    struct online_slot_stats *st);
/* A worker was forked for slot (in the master): it adopts what is held. */
void	handover_spawned(int slot, double now);
/* The master exits: every copy is closed. */
void	handover_shutdown(void);
/*
 * One datagram of these sockets from sock into buf (cap bytes), with
 * the descriptor it carries in *fd (-1: none): its length, 0 at the
 * end, -1 with errno (EAGAIN: nothing waits; EMSGSIZE: it did not fit
 * and was dropped, its descriptor closed).
 */
ssize_t	handover_recv(int sock, char *buf, size_t cap, int *fd);
/* Connections held for slot. */
size_t	handover_held(int slot);

/*
 * Binary upgrade (upgrade.c): the old master passes slot's held
 * connections to the new master over sock (SOCK_SEQPACKET), each as
 * {type, conn} + record + the socket, closing its copies; waits for a
 * full socket until deadline (util_mono).  How many were passed, or -1
 * (then what was not passed is closed: those clients reconnect).
 */
ssize_t	handover_pass_slot(int slot, int sock, double deadline);
/*
 * In the new master: one datagram from the old master (already
 * received: m is its {type, conn}, rec what follows, fd the socket).
 * 0 when it was a connection (now held for slot), -1 when not.
 */
int	handover_hold(int slot, uint32_t conn, const char *rec, size_t len,
	    int fd);

/*
 * Upgrade, in the new master: the next worker forked for slot (on)
 * starts without accepting and waits for its connections; it says
 * HO_READY (handover_take_ready: 1 once it did).  handover_forward
 * sends it a copy of every connection held for slot, then HO_GO; the
 * master keeps its copies.  How many, or -1.
 */
void	handover_prepare(int slot, int on);
int	handover_take_ready(int slot);
/* Old master: slot's worker sent its last record (HO_HANDED): 1 once. */
int	handover_take_handed(int slot);
ssize_t	handover_forward(int slot, double deadline);
/*
 * The new master made a new session table: the records it holds from
 * now on lose HO_F_SETTLED (the adopter fetches what was stored).
 */
void	handover_new_table(void);

/* ---- worker ------------------------------------------------------------ */

/*
 * In the freshly forked worker of slot: close what belongs to the
 * master and the other slots; keep this slot's inheritance.
 */
void	handover_child(int slot);
/* The worker's end (to wait for it to be writable when HO_QUEUED). */
int	handover_worker_fd(void);
/* The connections to adopt (valid until handover_inherited_done). */
size_t	handover_inherited(const struct ho_inherit **v);
void	handover_inherited_done(void);

enum ho_send {
	HO_SENT,		/* with the master, or nothing to send */
	HO_QUEUED,		/* the socket is full: flush when writable */
	HO_FAILED		/* not passed (no memory, too large) */
};

/* Pass conn's socket and state to the master (replacing any before). */
enum ho_send handover_keep(uint32_t conn, int fd, const void *state,
	    size_t len);
/* conn's session ended: the master closes its copy. */
enum ho_send handover_drop(uint32_t conn);
/* Send what is queued. */
enum ho_send handover_flush(void);
/*
 * Started early for an upgrade (handover_prepare): do not accept or
 * read the channel before the master's HO_GO.  handover_worker_ready
 * tells the master we are; handover_worker_recv reads what it sends
 * (when handover_worker_fd is readable): 1 after HO_GO (the connections
 * are then handover_inherited's), 0 for more, -1 on error.
 */
int	handover_prepared(void);
enum ho_send handover_worker_ready(void);
/* Handing over for an upgrade: every record is sent (it exits next). */
enum ho_send handover_worker_handed(void);
int	handover_worker_recv(void);

#endif
