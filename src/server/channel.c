/* channel.c - worker-to-worker datagrams over socketpairs the master made. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "channel.h"

int
channel_create(struct channel_set *cs, int nslots, size_t max_msg,
    char *err, size_t errlen)
{
	int	 i, j, bufsz;

	memset(cs, 0, sizeof(*cs));
	cs->fds = calloc(nslots, sizeof(*cs->fds));
	if (cs->fds == NULL) {
		snprintf(err, errlen, "channel: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < nslots; i++)
		cs->fds[i][0] = cs->fds[i][1] = -1;
	cs->nslots = nslots;
	cs->max_msg = max_msg + sizeof(struct chan_hdr);
	/* room for a few of the largest messages before senders queue */
	bufsz = cs->max_msg * 4 > 64 << 20 ? 64 << 20 : (int)cs->max_msg * 4;
	for (i = 0; i < nslots; i++) {
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0, cs->fds[i]) == -1) {
			snprintf(err, errlen, "channel socketpair: %s",
			    strerror(errno));
			channel_destroy(cs);
			return -1;
		}
		for (j = 0; j < 2; j++) {
			/* FORCE works as root; the plain call caps at wmem_max */
			if (setsockopt(cs->fds[i][j], SOL_SOCKET, SO_SNDBUFFORCE,
			    &bufsz, sizeof(bufsz)) == -1)
				(void)setsockopt(cs->fds[i][j], SOL_SOCKET,
				    SO_SNDBUF, &bufsz, sizeof(bufsz));
			if (setsockopt(cs->fds[i][j], SOL_SOCKET, SO_RCVBUFFORCE,
			    &bufsz, sizeof(bufsz)) == -1)
				(void)setsockopt(cs->fds[i][j], SOL_SOCKET,
				    SO_RCVBUF, &bufsz, sizeof(bufsz));
		}
	}
	return 0;
}

void
channel_child_init(struct channel_set *cs, int slot)
{
	int	 i;

	for (i = 0; i < cs->nslots; i++) {
		if (i != slot && cs->fds[i][0] != -1) {
			close(cs->fds[i][0]);
			cs->fds[i][0] = -1;
		}
	}
}

void
channel_destroy(struct channel_set *cs)
{
	int	 i, j;

	if (cs->fds == NULL)
		return;
	for (i = 0; i < cs->nslots; i++)
		for (j = 0; j < 2; j++)
			if (cs->fds[i][j] != -1)
				close(cs->fds[i][j]);
	free(cs->fds);
	memset(cs, 0, sizeof(*cs));
}

enum chan_send
channel_send(const struct channel_set *cs, int slot, const struct chan_hdr *h,
    const void *payload)
{
	struct iovec	 iov[2];
	ssize_t		 n;

	if (slot < 0 || slot >= cs->nslots) {
		errno = EINVAL;
		return CHANSEND_ERR;
	}
	if (sizeof(*h) + h->len > cs->max_msg) {
		errno = EMSGSIZE;
		return CHANSEND_ERR;
	}
	iov[0].iov_base = (void *)h;
	iov[0].iov_len = sizeof(*h);
	iov[1].iov_base = (void *)payload;
	iov[1].iov_len = h->len;
	do {
		n = writev(cs->fds[slot][1], iov, h->len ? 2 : 1);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return (errno == EAGAIN || errno == ENOBUFS) ? CHANSEND_AGAIN :
		    CHANSEND_ERR;
	return CHANSEND_OK;
}

enum chan_send
channel_send_batch(const struct channel_set *cs, int slot, const void *p,
    size_t len)
{
	ssize_t	 n;

	if (slot < 0 || slot >= cs->nslots) {
		errno = EINVAL;
		return CHANSEND_ERR;
	}
	if (len > cs->max_msg) {
		errno = EMSGSIZE;
		return CHANSEND_ERR;
	}
	do {
		n = send(cs->fds[slot][1], p, len, MSG_DONTWAIT);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return (errno == EAGAIN || errno == ENOBUFS) ? CHANSEND_AGAIN :
		    CHANSEND_ERR;
	return CHANSEND_OK;
}

ssize_t
channel_recv_batch(int fd, void *buf, size_t cap)
{
	ssize_t	 n;

	do {
		n = recv(fd, buf, cap, MSG_DONTWAIT);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return errno == EAGAIN ? 0 : -1;
	return n;
}

/* ---- the sender's batching queue ------------------------------------- */

int
chanq_put(const struct channel_set *cs, struct chan_queue *cq,
    const struct chan_hdr *h, const void *payload, size_t limit)
{
	size_t	 rec = sizeof(*h) + h->len;

	if (rec > cs->max_msg || buf_used(&cq->q) + rec > limit)
		return -1;
	if (buf_reserve(&cq->q, rec) == -1)
		return -1;
	(void)buf_append(&cq->q, h, sizeof(*h));
	(void)buf_append(&cq->q, payload, h->len);
	cq->pending = 1;
	return 0;
}

/* Call fn for each record in the first n bytes at p. */
static void
chanq_each(const char *p, size_t n, chanq_lost_fn fn, void *arg)
{
	struct chan_hdr	 h;
	size_t		 off;

	for (off = 0; n - off >= sizeof(h); off += sizeof(h) + h.len) {
		memcpy(&h, p + off, sizeof(h));
		fn(&h, p + off + sizeof(h), arg);
	}
}

enum chanq_result
chanq_drain(const struct channel_set *cs, struct chan_queue *cq,
    chanq_lost_fn lost, void *arg)
{
	struct chan_hdr	 h;
	const char	*q;
	size_t		 rec, n, used;
	enum chan_send	 rc;

	while ((used = buf_used(&cq->q)) >= sizeof(h)) {
		q = buf_head(&cq->q);
		/* whole records, up to the largest datagram */
		for (n = 0; used - n >= sizeof(h); n += rec) {
			memcpy(&h, q + n, sizeof(h));
			rec = sizeof(h) + h.len;
			if (n + rec > cs->max_msg)
				break;
		}
		rc = channel_send_batch(cs, cq->slot, q, n);
		if (rc == CHANSEND_AGAIN)
			return CHANQ_AGAIN;
		if (rc == CHANSEND_ERR)
			chanq_each(q, n, lost, arg);
		buf_consume(&cq->q, n);
	}
	return CHANQ_EMPTY;
}

void
chanq_take_all(struct chan_queue *cq, chanq_lost_fn fn, void *arg)
{
	chanq_each(buf_head(&cq->q), buf_used(&cq->q), fn, arg);
	buf_consume(&cq->q, buf_used(&cq->q));
	cq->pending = 0;
}
