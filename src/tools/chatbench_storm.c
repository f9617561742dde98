/*
 * chatbench_storm.c - the reconnect storm: n clients logged in with
 * resume tokens lose their server at once (it is restarted) and log in
 * again as fast as the server lets them.  One process, one epoll set.
 */
#include "config.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chatbench.h"
#include "util.h"

enum sstate {
	SS_QUEUED,	/* waiting for a connect slot (or its retry time) */
	SS_CONNECTING,
	SS_LOGIN,	/* token sent, answer awaited */
	SS_UP,		/* logged in */
	SS_FAILED	/* token refused: gives up */
};

struct sc {
	int		 fd;
	enum sstate	 st;
	int		 tries;
	uint64_t	 retry_at;	/* ms, SS_QUEUED */
	size_t		 inlen;
	char		 in[1024];
};

static struct {
	struct sc	*c;
	long		 n;
	long		*queue;		/* ring of indexes in SS_QUEUED */
	long		 qhead, qlen;
	int		 inflight, conc;
	long		 up, failed;
	int		 ep;
	const struct sockaddr_in *tgt;
	const char	(*tokens)[BENCH_TOKEN_LEN + 1];
	unsigned int	 seed;
	uint64_t	 retries, refused, busy;
	uint64_t	 t_first;	/* ms: the first login after the drop */
} S;

static uint64_t
now_ms(void)
{
	return util_mono_ns() / 1000000;
}

static void
enqueue(long i, uint64_t at)
{
	S.c[i].st = SS_QUEUED;
	S.c[i].retry_at = at;
	S.queue[(S.qhead + S.qlen) % S.n] = i;
	S.qlen++;
}

/* Drop i's connection and queue it again after a jittered backoff. */
static void
retry(long i, uint64_t min_ms)
{
	struct sc	*c = &S.c[i];
	uint64_t	 d;

	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->st == SS_CONNECTING || c->st == SS_LOGIN)
		S.inflight--;
	if (c->st == SS_UP)
		S.up--;
	c->inlen = 0;
	d = 25ULL << (c->tries < 5 ? c->tries : 5);	/* 25 .. 800 ms */
	d = d / 2 + (uint64_t)rand_r(&S.seed) % (d / 2 + 1);
	if (d < min_ms)
		d = min_ms;
	c->tries++;
	S.retries++;
	enqueue(i, now_ms() + d);
}

static void
start(long i)
{
	struct sc		*c = &S.c[i];
	struct epoll_event	 ev;

	/* one request per connection: no TCP_NODELAY needed */
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		fprintf(stderr, "chatbench: socket: %s\n", strerror(errno));
		exit(2);
	}
	c->st = SS_CONNECTING;
	S.inflight++;
	if (connect(c->fd, (const struct sockaddr *)S.tgt, sizeof(*S.tgt)) ==
	    -1 && errno != EINPROGRESS) {
		S.refused++;
		retry(i, 0);
		return;
	}
	/*
	 * Edge-triggered: EPOLLOUT comes once, when connected, so no
	 * EPOLL_CTL_MOD follows; readable() reads until EAGAIN.
	 */
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLOUT | EPOLLIN | EPOLLET;
	ev.data.u64 = (uint64_t)i;
	if (epoll_ctl(S.ep, EPOLL_CTL_ADD, c->fd, &ev) == -1) {
		fprintf(stderr, "chatbench: epoll_ctl: %s\n", strerror(errno));
		exit(2);
	}
}

/* events: epoll's; the error is asked for only when the connect failed. */
static void
connected(long i, uint32_t events)
{
	struct sc		*c = &S.c[i];
	char			 req[256];
	socklen_t		 sl = sizeof(int);
	int			 err = 0, n;

	if ((events & (EPOLLERR | EPOLLHUP)) != 0 &&
	    (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1 ||
	    err == 0))
		err = ECONNRESET;
	if (err != 0) {
		S.refused++;
		retry(i, 0);
		return;
	}
	n = snprintf(req, sizeof(req), "{\"msgid\":1,\"token\":\"%s\"}\n",
	    S.tokens[i]);
	/* a fresh socket takes 130 bytes at once */
	if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		retry(i, 0);
		return;
	}
	c->st = SS_LOGIN;	/* the answer comes as a new edge */
}

/* The value of "key": in line as an integer, or dflt. */
static long
field(const char *line, const char *key, long dflt)
{
	const char	*p = strstr(line, key);

	return p != NULL ? strtol(p + strlen(key), NULL, 10) : dflt;
}

static void
readable(long i)
{
	struct sc	*c = &S.c[i];
	char		*nl;
	ssize_t		 r;
	long		 e;

	for (;;) {
		if (c->inlen == sizeof(c->in) - 1)
			c->inlen = 0;	/* only the first line matters */
		r = read(c->fd, c->in + c->inlen, sizeof(c->in) - 1 -
		    c->inlen);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno == EAGAIN)
			return;
		if (r <= 0) {
			retry(i, 0);	/* dropped: the restart */
			return;
		}
		if (c->st != SS_LOGIN) {
			c->inlen = 0;
			continue;
		}
		c->inlen += (size_t)r;
		c->in[c->inlen] = '\0';
		if ((nl = strchr(c->in, '\n')) == NULL)
			continue;
		*nl = '\0';
		if (field(c->in, "\"msgid\":", 0) != 2) {
			c->inlen = 0;
			continue;
		}
		e = field(c->in, "\"errno\":", -1);
		S.inflight--;
		c->inlen = 0;
		if (e == 0) {
			c->st = SS_UP;
			c->tries = 0;
			S.up++;
			if (S.t_first == 0)
				S.t_first = now_ms();
		} else if (e == 29 || e == 2 || e == 24) {
			/* busy, the old session not gone yet, store away */
			S.busy++;
			c->st = SS_QUEUED;	/* not in flight any more */
			close(c->fd);
			c->fd = -1;
			retry(i, (uint64_t)field(c->in, "\"retryms\":", 0));
		} else {
			fprintf(stderr, "chatbench: storm: token refused: "
			    "%.200s\n", c->in);
			close(c->fd);
			c->fd = -1;
			c->st = SS_FAILED;
			S.failed++;
		}
		return;
	}
}

/* Start queued clients whose time has come, within the concurrency. */
static void
pump(uint64_t now)
{
	long	 k, i, n = S.qlen;

	for (k = 0; k < n && S.inflight < S.conc; k++) {
		i = S.queue[S.qhead];
		S.qhead = (S.qhead + 1) % S.n;
		S.qlen--;
		if (S.c[i].retry_at > now) {
			enqueue(i, S.c[i].retry_at);	/* to the back */
			continue;
		}
		start(i);
	}
}

static void
run_until(int (*done)(void), uint64_t deadline)
{
	struct epoll_event	 evs[256];
	int			 k, n;
	long			 i;

	while (!done() && now_ms() < deadline) {
		pump(now_ms());
		n = epoll_wait(S.ep, evs, 256, 5);
		for (k = 0; k < n; k++) {
			i = (long)evs[k].data.u64;
			if (S.c[i].fd == -1)
				continue;
			if (S.c[i].st == SS_CONNECTING)
				connected(i, evs[k].events);
			else
				readable(i);
		}
	}
}

static int
all_up(void)
{
	return S.up + S.failed == S.n;
}

static int
any_down(void)
{
	return S.up < S.n - S.failed;
}

int
storm_run(const struct sockaddr_in *tgt, const char (*toks)[
    BENCH_TOKEN_LEN + 1], long n, int conc, const char *ready,
    double limit_s, int quiet)
{
	uint64_t	 t0, t_up, t_drop = 0, t_back = 0, deadline;
	long		 i;
	int		 fd, ok;

	memset(&S, 0, sizeof(S));
	S.n = n;
	S.conc = conc;
	S.tgt = tgt;
	S.tokens = toks;
	S.seed = (unsigned int)getpid();
	S.c = calloc((size_t)n, sizeof(*S.c));
	S.queue = calloc((size_t)n, sizeof(*S.queue));
	if (S.c == NULL || S.queue == NULL ||
	    (S.ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		fprintf(stderr, "chatbench: storm: %s\n", strerror(errno));
		return -1;
	}
	t0 = now_ms();
	for (i = 0; i < n; i++) {
		S.c[i].fd = -1;
		enqueue(i, 0);
	}
	deadline = t0 + (uint64_t)(limit_s * 1000);
	run_until(all_up, deadline);
	t_up = now_ms();
	if (!quiet)
		fprintf(stderr, "storm: %ld of %ld logged in with tokens in "
		    "%.2f s; waiting for the restart\n", S.up, n,
		    (t_up - t0) / 1e3);
	if (ready != NULL && all_up() &&
	    (fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) != -1)
		close(fd);
	S.retries = S.refused = S.busy = 0;
	/* the restart: the first drop starts the clock */
	if (all_up()) {
		run_until(any_down, deadline);
		t_drop = now_ms();
		S.t_first = 0;
		run_until(all_up, deadline);
		t_back = now_ms();
	}
	ok = all_up() && t_drop != 0 && S.failed == 0;
	printf("{\"scenario\":\"storm\",\"n\":%ld,\"concurrency\":%d,"
	    "\"first_login_s\":%.3f,\"back_s\":%.3f,\"first_back_s\":%.3f,"
	    "\"per_s\":%.0f,"
	    "\"logged_in\":%ld,\"failed\":%ld,\"retries\":%llu,"
	    "\"connects_refused\":%llu,\"busy_or_online\":%llu,"
	    "\"ok\":%s}\n", n, conc, (t_up - t0) / 1e3,
	    ok ? (t_back - t_drop) / 1e3 : -1.0,
	    ok && S.t_first > t_drop ? (S.t_first - t_drop) / 1e3 : -1.0,
	    ok && t_back > t_drop ? n * 1000.0 / (double)(t_back - t_drop) :
	    0, S.up, S.failed, (unsigned long long)S.retries,
	    (unsigned long long)S.refused, (unsigned long long)S.busy,
	    ok ? "true" : "false");
	for (i = 0; i < n; i++)
		if (S.c[i].fd != -1)
			close(S.c[i].fd);
	close(S.ep);
	free(S.c);
	free(S.queue);
	return ok ? 0 : -1;
}
