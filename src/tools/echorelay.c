/*
 * echorelay.c - a minimal epoll relay: the machine's own limit for
 * chatd's one-to-one traffic, driven by "chatbench --raw chat".
 *
 * Protocol (newline-framed text, one request per line):
 *
 *	L ID\n		log this connection in as ID (1..max ids); answered
 *			"OK\n".  A later login as the same ID takes it over
 *			(a new benchmark run may start before the relay has
 *			seen the old connections close).
 *	TOID text\n	relay the whole line, unchanged, to the connection
 *			logged in as TOID; dropped (and counted) when there
 *			is none
 *	E text\n	echo the line back to the sender
 *
 * That is what chatd does for a ONE_CHAT, minus the JSON: frame the
 * input, look the recipient up, queue the line on its connection, and
 * write each connection's queue once per loop iteration (so the lines
 * that arrived in one read leave in one write).
 *
 * With -j N, N threads each accept on their own SO_REUSEPORT socket and
 * run their own epoll loop; a line for a connection of another thread is
 * queued and written under that connection's lock.  A closed
 * connection's memory is kept until exit (no reference counting).
 *
 * usage: echorelay [-j threads] [-n max_ids] [-q] [host:]port
 */
#include "config.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "epoll_mod.h"

#define MAX_THREADS	16
#define RBUF_SIZE	(64 * 1024)

struct rconn {
	pthread_mutex_t	 mu;		/* out, dead, epout */
	int		 fd;
	int		 th;		/* owning thread */
	uint32_t	 id;		/* 0: not logged in */
	int		 dead;
	int		 epout;
	char		*in;		/* partial line (owner only) */
	size_t		 inlen, incap;
	char		*out;
	size_t		 outoff, outlen, outcap;
	uint8_t		 queued[MAX_THREADS];
};

struct thread {
	pthread_t	 t;
	int		 idx;
	int		 lfd;
	int		 ep;
	struct rconn	**fl;		/* connections to flush */
	size_t		 nfl, capfl;
	char		*rbuf;
	uint64_t	 relayed, dropped;
};

static struct rconn	**table;	/* id -> connection */
static uint32_t		 max_ids = 1 << 21;
static struct thread	 threads[MAX_THREADS];
static int		 nthreads = 1;
static int		 quiet;

static void
fatal(const char *what)
{
	fprintf(stderr, "echorelay: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
arm(struct rconn *c, int out)
{
	if (c->epout != out && epoll_mod(threads[c->th].ep, c->fd, c, out) == 0)
		c->epout = out;
}

/* With c->mu held. */
static void
write_out(struct rconn *c)
{
	ssize_t	 n;

	while (!c->dead && c->outoff < c->outlen) {
		n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				arm(c, 1);
				return;
			}
			return;		/* the reader sees the error */
		}
		c->outoff += (size_t)n;
	}
	c->outoff = c->outlen = 0;
	arm(c, 0);
}

/* Queue line on c for thread t's next flush. */
static void
queue(struct thread *t, struct rconn *c, const char *p, size_t n)
{
	pthread_mutex_lock(&c->mu);
	if (c->dead) {
		pthread_mutex_unlock(&c->mu);
		t->dropped++;
		return;
	}
	if (c->outlen + n > c->outcap) {
		if (c->outoff > 0) {
			memmove(c->out, c->out + c->outoff,
			    c->outlen - c->outoff);
			c->outlen -= c->outoff;
			c->outoff = 0;
		}
		if (c->outlen + n > c->outcap) {
			size_t cap = c->outcap ? c->outcap : 4096;
			char *q;
			while (cap < c->outlen + n)
				cap *= 2;
			if ((q = realloc(c->out, cap)) == NULL) {
				pthread_mutex_unlock(&c->mu);
				t->dropped++;
				return;
			}
			c->out = q;
			c->outcap = cap;
		}
	}
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
	if (!c->queued[t->idx]) {
		c->queued[t->idx] = 1;
		if (t->nfl == t->capfl) {
			t->capfl = t->capfl ? t->capfl * 2 : 256;
			if ((t->fl = realloc(t->fl, t->capfl *
			    sizeof(*t->fl))) == NULL)
				fatal("realloc");
		}
		t->fl[t->nfl++] = c;
	}
	pthread_mutex_unlock(&c->mu);
}

static void
flush_all(struct thread *t)
{
	struct rconn	*c;
	size_t		 i;

	for (i = 0; i < t->nfl; i++) {
		c = t->fl[i];
		pthread_mutex_lock(&c->mu);
		c->queued[t->idx] = 0;
		if (!c->epout)
			write_out(c);
		pthread_mutex_unlock(&c->mu);
	}
	t->nfl = 0;
}

static void
conn_close(struct rconn *c)
{
	struct rconn	*self = c;

	pthread_mutex_lock(&c->mu);
	/* unless a newer connection took the id over */
	if (c->id != 0 && c->id < max_ids)
		(void)__atomic_compare_exchange_n(&table[c->id], &self, NULL,
		    0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	c->dead = 1;
	epoll_ctl(threads[c->th].ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in);
	c->in = NULL;
	pthread_mutex_unlock(&c->mu);
}

static void
on_line(struct thread *t, struct rconn *c, const char *p, size_t n)
{
	struct rconn	*d;
	unsigned long	 id = 0;
	size_t		 i = 0;

	/* n includes the "\n" */
	if (n >= 2 && p[0] == 'L' && p[1] == ' ') {
		for (i = 2; i < n && p[i] >= '0' && p[i] <= '9'; i++)
			id = id * 10 + (unsigned long)(p[i] - '0');
		if (id == 0 || id >= max_ids) {
			queue(t, c, "ERR id\n", 7);
			return;
		}
		__atomic_store_n(&table[id], c, __ATOMIC_RELEASE);
		c->id = (uint32_t)id;
		queue(t, c, "OK\n", 3);
		return;
	}
	if (n >= 2 && p[0] == 'E' && p[1] == ' ') {
		queue(t, c, p, n);
		return;
	}
	for (i = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++)
		id = id * 10 + (unsigned long)(p[i] - '0');
	if (i == 0 || id >= max_ids ||
	    (d = __atomic_load_n(&table[id], __ATOMIC_ACQUIRE)) == NULL) {
		t->dropped++;
		return;
	}
	queue(t, d, p, n);
	t->relayed++;
}

static void
on_read(struct thread *t, struct rconn *c)
{
	ssize_t		 n;
	char		*data, *p, *end, *nl;
	size_t		 len;
	int		 rounds;

	for (rounds = 0; rounds < 8; rounds++) {
		n = read(c->fd, t->rbuf, RBUF_SIZE);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		if (c->inlen > 0) {
			if (c->inlen + (size_t)n > c->incap) {
				c->incap = (c->inlen + (size_t)n) * 2;
				if ((c->in = realloc(c->in, c->incap)) == NULL)
					fatal("realloc");
			}
			memcpy(c->in + c->inlen, t->rbuf, (size_t)n);
			c->inlen += (size_t)n;
			data = c->in;
			len = c->inlen;
		} else {
			data = t->rbuf;
			len = (size_t)n;
		}
		p = data;
		end = data + len;
		while (p < end &&
		    (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
			on_line(t, c, p, (size_t)(nl - p) + 1);
			p = nl + 1;
		}
		len = (size_t)(end - p);
		if (len > 0) {
			if (data != c->in && len > c->incap) {
				c->incap = len < 4096 ? 4096 : len;
				if ((c->in = realloc(c->in, c->incap)) == NULL)
					fatal("realloc");
			}
			memmove(c->in, p, len);
		}
		c->inlen = len;
		if ((size_t)n < RBUF_SIZE)
			return;
	}
}

static void
on_accept(struct thread *t)
{
	struct epoll_event	 ev;
	struct rconn		*c;
	int			 fd, one = 1, i;

	for (i = 0; i < 64; i++) {
		fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE)
				usleep(10000);
			return;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		pthread_mutex_init(&c->mu, NULL);
		c->fd = fd;
		c->th = t->idx;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
			close(fd);
			free(c);
		}
	}
}

static void *
thread_main(void *arg)
{
	struct thread		*t = arg;
	struct epoll_event	 ev[256], lev;
	struct rconn		*c;
	int			 n, i;

	memset(&lev, 0, sizeof(lev));
	lev.events = EPOLLIN;
	lev.data.ptr = NULL;
	if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->lfd, &lev) == -1)
		fatal("epoll_ctl");
	for (;;) {
		n = epoll_wait(t->ep, ev, 256, -1);
		for (i = 0; i < n; i++) {
			c = ev[i].data.ptr;
			if (c == NULL) {
				on_accept(t);
				continue;
			}
			if (c->dead)
				continue;
			if (ev[i].events & EPOLLOUT) {
				pthread_mutex_lock(&c->mu);
				write_out(c);
				pthread_mutex_unlock(&c->mu);
			}
			if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				on_read(t, c);
		}
		flush_all(t);
	}
	return NULL;
}

static int
listen_on(const char *host, int port)
{
	struct sockaddr_in	 sa;
	int			 fd, one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "echorelay: %s: not an IPv4 address\n", host);
		exit(1);
	}
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		fatal("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ==
	    -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
	    sizeof(one)) == -1)
		fatal("setsockopt");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		fatal("bind");
	if (listen(fd, 4096) == -1)
		fatal("listen");
	return fd;
}

static void
usage(void)
{
	fprintf(stderr, "usage: echorelay [-q] [-j threads] [-n max_ids] "
	    "[host:]port\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	char	*arg, *colon, host[64] = "127.0.0.1";
	int	 ch, i, port;

	while ((ch = getopt(argc, argv, "j:n:q")) != -1) {
		switch (ch) {
		case 'j':
			nthreads = atoi(optarg);
			if (nthreads < 1 || nthreads > MAX_THREADS)
				usage();
			break;
		case 'n':
			max_ids = (uint32_t)strtoul(optarg, NULL, 10);
			if (max_ids < 2)
				usage();
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();
	arg = argv[optind];
	if ((colon = strrchr(arg, ':')) != NULL) {
		snprintf(host, sizeof(host), "%.*s", (int)(colon - arg), arg);
		port = atoi(colon + 1);
	} else
		port = atoi(arg);
	if (port < 1 || port > 65535)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if ((table = calloc(max_ids, sizeof(*table))) == NULL)
		fatal("calloc");
	for (i = 0; i < nthreads; i++) {
		threads[i].idx = i;
		threads[i].lfd = listen_on(host, port);
		if ((threads[i].ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
			fatal("epoll_create1");
		if ((threads[i].rbuf = malloc(RBUF_SIZE)) == NULL)
			fatal("malloc");
	}
	if (!quiet)
		fprintf(stderr, "echorelay: %s:%d, %d thread(s)\n", host, port,
		    nthreads);
	for (i = 1; i < nthreads; i++)
		if ((errno = pthread_create(&threads[i].t, NULL, thread_main,
		    &threads[i])) != 0)
			fatal("pthread_create");
	thread_main(&threads[0]);
	return 0;
}
