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

enum chan_type {
	CHAN_DELIVER	= 1,	/* payload: one forwarded line for (uid, conn) */
	CHAN_KICK	= 2,	/* close uid's connection (control tool) */
	CHAN_GROUP	= 3,	/* group uid's membership changed: drop caches */
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

/*
 * Send one message to slot without blocking.  0 sent, 1 would block
 * (queue it and retry when writable), -1 error (errno; EMSGSIZE when
 * the message can never fit).
 */
int	channel_send(const struct channel_set *cs, int slot,
	    const struct chan_hdr *h, const void *payload);
/*
 * Receive one message from fd into buf (cap bytes, >= max_msg).
 * Returns 1 with *h filled and the payload at buf, 0 when nothing is
 * waiting, -1 on error.  A short or inconsistent datagram is an error
 * (errno EBADMSG): it can only come from a bug in our own processes.
 */
int	channel_recv(int fd, struct chan_hdr *h, void *buf, size_t cap);

/*
 * Batches: one datagram holding several records, each a chan_hdr and
 * its payload, back to back (the receiver copies each header out: they
 * are not aligned).  channel_send_batch sends len bytes (at most
 * max_msg) as one datagram: 0 sent, 1 would block, -1 error.
 * channel_recv_batch receives one datagram into buf (cap >= max_msg):
 * its length, 0 when nothing is waiting, -1 on error.
 */
int	channel_send_batch(const struct channel_set *cs, int slot,
	    const void *p, size_t len);
ssize_t	channel_recv_batch(int fd, void *buf, size_t cap);

#endif
