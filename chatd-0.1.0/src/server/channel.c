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

int
channel_send(const struct channel_set *cs, int slot, const struct chan_hdr *h,
    const void *payload)
{
	struct iovec	 iov[2];
	ssize_t		 n;

	if (slot < 0 || slot >= cs->nslots) {
		errno = EINVAL;
		return -1;
	}
	if (sizeof(*h) + h->len > cs->max_msg) {
		errno = EMSGSIZE;
		return -1;
	}
	iov[0].iov_base = (void *)h;
	iov[0].iov_len = sizeof(*h);
	iov[1].iov_base = (void *)payload;
	iov[1].iov_len = h->len;
	do {
		n = writev(cs->fds[slot][1], iov, h->len ? 2 : 1);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return (errno == EAGAIN || errno == ENOBUFS) ? 1 : -1;
	return 0;
}

int
channel_recv(int fd, struct chan_hdr *h, void *buf, size_t cap)
{
	struct iovec	 iov[2];
	ssize_t		 n;

	iov[0].iov_base = h;
	iov[0].iov_len = sizeof(*h);
	iov[1].iov_base = buf;
	iov[1].iov_len = cap;
	do {
		n = readv(fd, iov, 2);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return errno == EAGAIN ? 0 : -1;
	if ((size_t)n < sizeof(*h) || (size_t)n - sizeof(*h) != h->len) {
		errno = EBADMSG;
		return -1;
	}
	return 1;
}

int
channel_send_batch(const struct channel_set *cs, int slot, const void *p,
    size_t len)
{
	ssize_t	 n;

	if (slot < 0 || slot >= cs->nslots) {
		errno = EINVAL;
		return -1;
	}
	if (len > cs->max_msg) {
		errno = EMSGSIZE;
		return -1;
	}
	do {
		n = send(cs->fds[slot][1], p, len, MSG_DONTWAIT);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return (errno == EAGAIN || errno == ENOBUFS) ? 1 : -1;
	return 0;
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
