/*
 * channel.h - worker-to-worker messages inside one node.
 *
 * The master creates one unix datagram socketpair per worker slot before
 * forking: the slot's worker reads end [0]; every worker writes to end
 * [1] of the others.  The master keeps both ends, so a message sent to
 * a worker that just died waits in the socket for its replacement.
 * Datagrams keep message boundaries, so writers never interleave.
 */
#ifndef CHATD_CHANNEL_H
#define CHATD_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

enum chan_type {
	CHAN_DELIVER	= 1,	/* payload: one forwarded line for (uid, conn) */
	CHAN_KICK	= 2,	/* close uid's connection (control tool) */
	CHAN_GROUP	= 3,	/* group uid's membership changed: drop caches */
	CHAN_CONFIG	= 4,	/* master: reloaded keys (cfg_pack_reload), gen */
	CHAN_STORED	= 5,	/* something was stored for uid: fetch it */
	CHAN_LEFT	= 6,	/* uid's leaving mark went: logins retry */
	/*
	 * Upgrade (HO_F_ANSWERS): the old worker of this slot to the new one.
	 * ANSWER: output for (uid, conn), whole lines (acknowledgements of
	 * chats now stored).  ANSWERED: none follows; gen 1: some were lost
	 * (the old worker's time was up), the client must resend.
	 */
	CHAN_ANSWER	= 9,
	CHAN_ANSWERED	= 10,
	/*
	 * History barrier (chat_barrier.c), the barrier's number in conn:
	 * FLUSH asks to store the history rows kept so far, FLUSHED says
	 * they are, STORING (each second until then) that they are being
	 * stored: the asker waits while it hears it.
	 */
	CHAN_HIST_FLUSH	= 11,
	CHAN_HIST_FLUSHED = 12,
	CHAN_HIST_STORING = 13,
};

struct chan_hdr {
	uint32_t	type;
	uint32_t	uid;
	uint32_t	conn;
	uint32_t	gen;		/* slot generation the sender saw */
	uint32_t	from_slot;
	uint32_t	len;		/* payload bytes after the header */
	int64_t		smid;		/* acknowledged chat: already stored */
};

struct channel_set {
	int	 nslots;
	int	(*fds)[2];		/* [slot][0] read end, [slot][1] write end */
	size_t	 max_msg;		/* largest datagram the sockets take */
};

/*
 * Create nslots socketpairs, non-blocking, close-on-exec, with buffers
 * sized for messages of up to max_msg bytes.  0 or -1 with err.
 */
int	channel_create(struct channel_set *cs, int nslots, size_t max_msg,
	    char *err, size_t errlen);
/* In worker slot: close the read ends that belong to other slots. */
void	channel_child_init(struct channel_set *cs, int slot);
void	channel_destroy(struct channel_set *cs);

enum chan_send {
	CHANSEND_OK,		/* sent */
	CHANSEND_AGAIN,		/* would block: queue it, retry when writable */
	CHANSEND_ERR		/* errno; EMSGSIZE when it can never fit */
};

/* Send one message to slot without blocking. */
enum chan_send channel_send(const struct channel_set *cs, int slot,
	    const struct chan_hdr *h, const void *payload);
/*
 * Batches: one datagram holding several records, each a chan_hdr and
 * its payload, back to back (the receiver copies each header out: they
 * are not aligned).  channel_send_batch sends len bytes (at most
 * max_msg) as one datagram.
 * channel_recv_batch receives one datagram into buf (cap >= max_msg):
 * its length, 0 when nothing is waiting, -1 on error.
 */
enum chan_send channel_send_batch(const struct channel_set *cs, int slot,
	    const void *p, size_t len);
ssize_t	channel_recv_batch(int fd, void *buf, size_t cap);

/*
 * The sender's batching queue for one destination slot: records are
 * queued in order during a loop iteration and sent, as few datagrams as
 * fit, before the loop sleeps.  No event loop here: the caller waits for
 * the socket to be writable when chanq_drain says CHANQ_AGAIN.
 */
struct chan_queue {
	int		 slot;
	int		 pending;	/* queued since the last flush */
	struct buf	 q;		/* [chan_hdr][payload]... */
};

enum chanq_result {
	CHANQ_EMPTY,		/* all sent */
	CHANQ_AGAIN,		/* the socket is full: drain again when writable */
};

/* Each record a queue could not send (its header and payload). */
typedef void (*chanq_lost_fn)(const struct chan_hdr *h, const char *payload,
	    void *arg);

/*
 * Queue one record for cq->slot, at most limit bytes queued in all.
 * 0, or -1 when it does not fit (too large, queue full, no memory):
 * the caller keeps the message some other way.
 */
int	chanq_put(const struct channel_set *cs, struct chan_queue *cq,
	    const struct chan_hdr *h, const void *payload, size_t limit);
/*
 * Send what cq holds.  Records the socket refuses for good (never
 * expected: sizes were checked when queued) go to lost.
 */
enum chanq_result chanq_drain(const struct channel_set *cs,
	    struct chan_queue *cq, chanq_lost_fn lost, void *arg);
/* Hand every queued record to fn and empty the queue (at exit). */
void	chanq_take_all(struct chan_queue *cq, chanq_lost_fn fn, void *arg);

#endif
