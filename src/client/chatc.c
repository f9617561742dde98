/*
 * chatc.c - the chat client: interactive like the seed client, or
 * driven by a script on stdin (-s) for tests and tools.  This file: the
 * connection, the terminal and the loop; the rest in chatc_*.c.
 *
 * Requests go out as the seed client writes them: compact JSON with the
 * keys sorted, followed by one NUL byte.  What the server sends is split
 * with the server's own frame splitter (proto.h: frame_next).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "chatc_impl.h"
#include "proto.h"
#include "util.h"

#define DEFAULT_HOST		"127.0.0.1"
#define DEFAULT_PORT		"6000"
#define DEFAULT_GRACE_MS	300
#define CONNECT_TIMEOUT_MS	10000
/* reconnecting: jittered exponential backoff, then give up */
#define RECONNECT_FIRST_MS	200
#define RECONNECT_MAX_MS	15000
#define RECONNECT_TRIES		12

static struct termios	 saved_tio;
static int		 tio_saved;
static volatile sig_atomic_t got_signal;

static void
usage(void)
{
	fprintf(stderr, "usage: chatc [-Rs] [-h host] [-p port] [-w ms]\n");
	exit(2);
}

void
warnmsg(const char *fmt, ...)
{
	va_list	 ap;

	fflush(stdout);
	fputs("chatc: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- terminal ------------------------------------------------------- */

void
echo_restore(void)
{
	if (tio_saved) {
		(void)tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
		tio_saved = 0;
	}
}

void
echo_off(void)
{
	struct termios	 t;

	if (tio_saved || tcgetattr(STDIN_FILENO, &saved_tio) == -1)
		return;
	t = saved_tio;
	t.c_lflag &= ~(tcflag_t)ECHO;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
		tio_saved = 1;
}

static void
on_signal(int sig)
{
	got_signal = sig;
}

/* ---- connection ----------------------------------------------------- */

static int
connect_to(const char *host, const char *port)
{
	struct addrinfo	 hints, *res, *ai;
	struct pollfd	 pfd;
	socklen_t	 slen;
	int		 fd = -1, e, one = 1, soerr = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0) {
		warnmsg("%s port %s: %s", host, port, gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			soerr = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		soerr = errno;
		if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, CONNECT_TIMEOUT_MS) == 1) {
				slen = sizeof(soerr);
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
				    &slen) == 0 && soerr == 0)
					break;
			} else
				soerr = ETIMEDOUT;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1) {
		warnmsg("connect to %s port %s: %s", host, port,
		    strerror(soerr));
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Interactive exit: what is queued still goes out. */
void
quit_now(struct chatc *cc, int code)
{
	int	 fl;

	if ((fl = fcntl(cc->fd, F_GETFL)) != -1)
		(void)fcntl(cc->fd, F_SETFL, fl & ~O_NONBLOCK);
	while (buf_used(&cc->out) > 0) {
		ssize_t n = send(cc->fd, buf_head(&cc->out),
		    buf_used(&cc->out), MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf_consume(&cc->out, (size_t)n);
	}
	exit(code);
}

void
start_quit(struct chatc *cc)
{
	cc->quitting = 1;
	cc->quit_at = 0;	/* set once the output is flushed */
}

/* ---- the loop ------------------------------------------------------- */

/* Try again at a random point of [d/2, d], d doubling per try. */
static void
schedule_reconnect(struct chatc *cc, const char *why, int min_ms)
{
	int64_t	 d;

	if (cc->fd != -1) {
		close(cc->fd);
		cc->fd = -1;
	}
	buf_consume(&cc->in, buf_used(&cc->in));
	frame_scanner_init(&cc->fs);
	/* half-sent requests cannot be told from unsent ones: drop them */
	if (buf_used(&cc->out) > 0) {
		warnmsg("%zu bytes of requests not sent", buf_used(&cc->out));
		buf_consume(&cc->out, buf_used(&cc->out));
	}
	cc->waiting = 0;
	cc->resuming = 0;
	resume_lost(cc);
	if (++cc->tries > RECONNECT_TRIES) {
		warnmsg("%s; gave up after %d tries", why, RECONNECT_TRIES);
		exit(1);
	}
	d = (int64_t)RECONNECT_FIRST_MS << (cc->tries - 1);
	if (d > RECONNECT_MAX_MS)
		d = RECONNECT_MAX_MS;
	d = d / 2 + rand_r(&cc->seed) % (d / 2 + 1);
	if (d < min_ms)
		d = min_ms;
	cc->reconnect_at = (int64_t)util_mono_ms() + d;
	warnmsg("%s; reconnecting in %lld ms", why != NULL ? why :
	    "connection lost", (long long)d);
}

static void
reconnect(struct chatc *cc)
{
	cc->reconnect_at = 0;
	if ((cc->fd = connect_to(cc->host, cc->port)) == -1) {
		schedule_reconnect(cc, "connect failed", 0);
		return;
	}
	req_resume(cc);
}

/* The connection is gone: log in again with the token, or stop. */
static void
lost(struct chatc *cc, const char *why)
{
	echo_restore();
	if (cc->script && cc->quitting)
		exit(0);
	if (!cc->no_resume && cc->token != NULL && cc->uid != 0) {
		schedule_reconnect(cc, why, 0);
		return;
	}
	warnmsg("%s", why);
	exit(1);
}

static void
read_server(struct chatc *cc)
{
	char	 rbuf[65536];
	ssize_t	 n;

	for (;;) {
		n = read(cc->fd, rbuf, sizeof(rbuf));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			server_input(cc);
			lost(cc, strerror(errno));
			return;
		}
		if (n == 0) {
			server_input(cc);
			lost(cc, "connection closed by the server");
			return;
		}
		if (buf_append(&cc->in, rbuf, (size_t)n) == -1) {
			warnmsg("out of memory");
			exit(1);
		}
		server_input(cc);
		if ((size_t)n < sizeof(rbuf) || cc->drop_ms > 0)
			return;
	}
}

static void
write_server(struct chatc *cc)
{
	ssize_t	 n;

	while (buf_used(&cc->out) > 0) {
		n = send(cc->fd, buf_head(&cc->out), buf_used(&cc->out),
		    MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			lost(cc, strerror(errno));
			return;
		}
		buf_consume(&cc->out, (size_t)n);
	}
}

static void
read_stdin(struct chatc *cc)
{
	char	 rbuf[65536];
	ssize_t	 n;

	n = read(STDIN_FILENO, rbuf, sizeof(rbuf));
	if (n == -1) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		warnmsg("stdin: %s", strerror(errno));
		cc->stdin_eof = 1;
		return;
	}
	if (n == 0) {
		cc->stdin_eof = 1;
		return;
	}
	if (buf_append(&cc->cmd, rbuf, (size_t)n) == -1) {
		warnmsg("out of memory");
		exit(1);
	}
}

static int
until(int64_t deadline, int64_t now, int timeout)
{
	int64_t	 left = deadline - now;

	if (left < 0)
		left = 0;
	if (timeout < 0 || left < timeout)
		return (int)(left > INT_MAX ? INT_MAX : left);
	return timeout;
}

static void
loop(struct chatc *cc)
{
	struct pollfd	 pfd[2];
	int64_t		 t;
	int		 timeout, n;

	for (;;) {
		if (cc->drop_ms > 0) {
			schedule_reconnect(cc, "resume refused for now",
			    cc->drop_ms);
			cc->drop_ms = 0;
		}
		t = (int64_t)util_mono_ms();
		if (cc->fd == -1 && t >= cc->reconnect_at)
			reconnect(cc);
		run_lines(cc);
		if (buf_used(&cc->out) > 0 && cc->fd != -1)
			write_server(cc);

		t = (int64_t)util_mono_ms();
		timeout = -1;
		if (cc->fd == -1)
			timeout = until(cc->reconnect_at, t, timeout);
		if (cc->waiting != 0 && cc->resuming && t >= cc->wait_until) {
			schedule_reconnect(cc, "no answer to the resume", 0);
			continue;
		}
		if (cc->waiting != 0) {
			if (t >= cc->wait_until) {
				warnmsg("no answer from the server");
				cc->waiting = 0;
				if (!cc->script)
					prompt(cc, ST_MENU);
				continue;
			}
			timeout = until(cc->wait_until, t, timeout);
		}
		if (cc->sleep_until != 0) {
			if (t >= cc->sleep_until) {
				cc->sleep_until = 0;
				continue;
			}
			timeout = until(cc->sleep_until, t, timeout);
		}
		if (cc->quitting && (buf_used(&cc->out) == 0 || cc->fd == -1)) {
			if (cc->quit_at == 0)
				cc->quit_at = t + cc->grace_ms;
			if (t >= cc->quit_at)
				exit(0);
			timeout = until(cc->quit_at, t, timeout);
		}

		pfd[0].fd = cc->fd;
		pfd[0].events = POLLIN;
		if (buf_used(&cc->out) > 0)
			pfd[0].events |= POLLOUT;
		pfd[1].fd = STDIN_FILENO;
		pfd[1].events = POLLIN;
		/* read stdin only when a line may run: no buffering ahead */
		if (cc->stdin_eof || !want_line(cc))
			pfd[1].fd = -1;
		n = poll(pfd, 2, timeout);
		if (got_signal) {
			echo_restore();
			exit(130);
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			warnmsg("poll: %s", strerror(errno));
			exit(1);
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
			read_server(cc);
		if (pfd[0].revents & POLLOUT)
			write_server(cc);
		if (pfd[1].fd != -1 && (pfd[1].revents & (POLLIN | POLLHUP |
		    POLLERR)))
			read_stdin(cc);
	}
}

int
main(int argc, char *argv[])
{
	struct chatc		 cc;
	struct sigaction	 sa;
	const char		*host = DEFAULT_HOST, *port = DEFAULT_PORT;
	char			*end;
	long			 v;
	int			 ch;

	memset(&cc, 0, sizeof(cc));
	cc.grace_ms = DEFAULT_GRACE_MS;
	while ((ch = getopt(argc, argv, "h:p:Rsw:")) != -1) {
		switch (ch) {
		case 'R':
			cc.no_resume = 1;
			break;
		case 'h':
			host = optarg;
			break;
		case 'p':
			port = optarg;
			break;
		case 's':
			cc.script = 1;
			break;
		case 'w':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || errno != 0 ||
			    v < 0 || v > 3600000)
				usage();
			cc.grace_ms = (int)v;
			break;
		default:
			usage();
		}
	}
	if (argc != optind)
		usage();

	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	atexit(echo_restore);

	cc.host = host;
	cc.port = port;
	cc.seed = (unsigned int)getpid() ^ (unsigned int)util_mono_ms();
	if ((cc.fd = connect_to(host, port)) == -1)
		return 1;
	frame_scanner_init(&cc.fs);
	cc.tty = isatty(STDIN_FILENO);
	if (cc.script)
		cc.state = ST_SCRIPT;
	else
		prompt(&cc, ST_MENU);
	loop(&cc);
	return 0;
}

