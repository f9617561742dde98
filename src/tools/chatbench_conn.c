/*
 * chatbench_conn.c - a generator's connections (non-blocking, on its
 * epoll loop, with write buffers flushed once per loop) and the
 * requests they send.
 */
#include "config.h"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <json-c/json.h>

#include "util.h"
#include "epoll_mod.h"
#include "chatbench.h"

int		 ep = -1;
struct stats	 ST;
static struct bc	*flush_head;
char		*rbuf;
int		 sending;	/* closed loop may send */
int		 measuring;
uint64_t		 measure_t0, measure_t1;
long		 setup_pending;	/* conns not yet READY or DEAD */
long		 nretry;	/* conns in CS_RETRY */
int		 gen_index;

struct pair	*pairs;
int		 npairs;
struct group	*groups_g;
int		 ngroups_g;
int32_t		*group_ids;	/* from the parent, by group number */
struct bc	**conns;
long		 nconns;

/* register/login scenario work queue */
long		 work_next, work_end, work_step;
int32_t		*reg_ids;	/* register: result by local index */
long		 reg_base;

static void
bc_want_flush(struct bc *c)
{
	if (!c->in_flush) {
		c->in_flush = 1;
		c->fnext = flush_head;
		flush_head = c;
	}
}

void
bc_out(struct bc *c, const char *p, size_t n)
{
	if (c->st == CS_DEAD)
		return;
	if (c->wlen + n > c->wcap) {
		if (c->woff > 0) {
			memmove(c->wb, c->wb + c->woff, c->wlen - c->woff);
			c->wlen -= c->woff;
			c->woff = 0;
		}
		if (c->wlen + n > c->wcap) {
			c->wcap = c->wcap ? c->wcap : 512;
			while (c->wcap < c->wlen + n)
				c->wcap *= 2;
			c->wb = xrealloc(c->wb, c->wcap);
		}
	}
	memcpy(c->wb + c->wlen, p, n);
	c->wlen += n;
	bc_want_flush(c);
}

void
bc_epoll(struct bc *c, int out)
{
	if (c->epout != out && epoll_mod(ep, c->fd, c, out) == 0)
		c->epout = out;
}

void
bc_flush(struct bc *c)
{
	ssize_t	 n;

	while (c->woff < c->wlen) {
		n = write(c->fd, c->wb + c->woff, c->wlen - c->woff);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				bc_epoll(c, 1);
				return;
			}
			bc_close(c, 0);
			return;
		}
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	if (c->epout && c->st != CS_CONNECTING)
		bc_epoll(c, 0);
	/* idle connections keep no buffers */
	if (O.sc == SC_IDLE && c->wb != NULL) {
		free(c->wb);
		c->wb = NULL;
		c->wcap = 0;
	}
}

void
flush_all(void)
{
	struct bc	*c;

	while ((c = flush_head) != NULL) {
		flush_head = c->fnext;
		c->in_flush = 0;
		if (c->st != CS_DEAD && c->st != CS_CONNECTING)
			bc_flush(c);
	}
}

void
bc_close(struct bc *c, int failed)
{
	if (c->st == CS_DEAD)
		return;
	if (c->st != CS_READY && c->st != CS_IDLE && O.sc != SC_LOGIN &&
	    O.sc != SC_REGISTER)
		setup_pending--;
	if (failed)
		ST.conns_failed++;
	else if (c->st == CS_READY)
		ST.conns_closed++;
	else
		ST.conns_failed++;
	c->st = CS_DEAD;
	if (c->fd != -1) {
		close(c->fd);	/* leaves the epoll set: the only copy */
		c->fd = -1;
	}
	free(c->rb);
	c->rb = NULL;
	c->rlen = c->rcap = 0;
	c->woff = c->wlen = 0;
}

/* Close on purpose (login scenario): RST, so no TIME_WAIT piles up. */
void
bc_drop(struct bc *c)
{
	struct linger	 l = { 1, 0 };

	if (c->fd != -1) {
		(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		close(c->fd);
		c->fd = -1;
	}
	c->st = CS_IDLE;
	c->rlen = 0;
	c->woff = c->wlen = 0;
	c->epout = 0;
}

void
bc_connect(struct bc *c)
{
	struct epoll_event	 ev;
	struct sockaddr_in	 sa;
	int			 one = 1;

	c->t0 = util_mono_ns();
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		if (!O.quiet && O.verbose)
			fprintf(stderr, "socket: %s\n", strerror(errno));
		bc_close(c, 1);
		return;
	}
	/*
	 * A fresh login sends one request and waits: Nagle cannot delay
	 * it, and the login scenario saves the calls it can (see below).
	 */
	c->edge = O.sc == SC_LOGIN && !O.keep;
	if (!c->edge)
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	if (c->si >= 0) {
		(void)setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT,
		    &one, sizeof(one));
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr = O.src[c->si];
		if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
			fprintf(stderr, "bind %s: %s\n",
			    inet_ntoa(O.src[c->si]), strerror(errno));
			bc_close(c, 1);
			return;
		}
	}
	if (connect(c->fd, (struct sockaddr *)&O.tgt[c->ti],
	    sizeof(O.tgt[c->ti])) == -1 && errno != EINPROGRESS) {
		if (O.verbose)
			fprintf(stderr, "connect: %s\n", strerror(errno));
		bc_close(c, 1);
		return;
	}
	c->st = CS_CONNECTING;
	memset(&ev, 0, sizeof(ev));
	/*
	 * Edge-triggered, a one-request connection needs no EPOLL_CTL_MOD
	 * once connected: EPOLLOUT is reported once, and a reply is read in
	 * one read (RBUF_SIZE) that drains the socket.
	 */
	ev.events = EPOLLIN | EPOLLOUT | (c->edge ? EPOLLET : 0);
	ev.data.ptr = c;
	c->epout = 1;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		bc_close(c, 1);
}

/* ---- requests ---------------------------------------------------------- */

void
send_login(struct bc *c)
{
	char	 b[256];
	int	 n;

	if (O.raw)
		n = snprintf(b, sizeof(b), "L %d\n", (int)c->uid);
	else if (O.token && O.sc == SC_LOGIN)
		n = snprintf(b, sizeof(b), "{\"msgid\":1,\"token\":\"%s\"}\n",
		    tokens[c->idx % nuids]);
	else
		n = snprintf(b, sizeof(b), "{\"id\":%d,\"msgid\":1,"
		    "\"password\":\"%s\"}\n", (int)c->uid, O.password);
	c->st = CS_LOGIN;
	c->t0 = util_mono_ns();
	bc_out(c, b, (size_t)n);
}

void
send_reg(struct bc *c)
{
	char	 b[256], name[96];
	int	 n;

	user_name(name, sizeof(name), c->idx);
	n = snprintf(b, sizeof(b), "{\"msgid\":4,\"name\":\"%s\","
	    "\"password\":\"%s\"}\n", name, O.password);
	c->st = CS_REG;
	bc_out(c, b, (size_t)n);
}

/*
 * One chat message from c: ONE_CHAT to toid, or GROUP_CHAT to gid when
 * gid > 0.  In raw mode the line is "TOID cb FROM SEQ T pad" padded to
 * the length the JSON request would have had.
 */
char	 pad_chars[65536];

void
send_chat(struct bc *c, int32_t toid, int32_t gid, uint64_t seq, uint64_t t)
{
	char	 msg[128], line[70000], name[96];
	size_t	 ml, n, jl;
	int	 k;

	ml = 0;
	memcpy(msg, "cb ", 3);
	ml = 3;
	ml += fmt_u64(msg + ml, (uint64_t)c->uid);
	msg[ml++] = ' ';
	ml += fmt_u64(msg + ml, seq);
	msg[ml++] = ' ';
	ml += fmt_u64(msg + ml, t);
	user_name(name, sizeof(name), c->idx);
	/* pad the text to msglen */
	n = (size_t)O.msglen > ml ? (size_t)O.msglen - ml : 0;
	if (n > 0) {
		n--;			/* the separating blank */
	}
	if (gid > 0)
		k = snprintf(line, sizeof(line), "{\"groupid\":%d,\"id\":%d,"
		    "\"msg\":\"%.*s%s%.*s\",\"msgid\":10,\"name\":\"%s\","
		    "\"time\":\"" FIXED_TIME "\"}\n", (int)gid, (int)c->uid,
		    (int)ml, msg, n > 0 ? " " : "", (int)n, pad_chars, name);
	else
		k = snprintf(line, sizeof(line), "{\"id\":%d,\"msg\":\"%.*s%s"
		    "%.*s\",\"msgid\":6,\"name\":\"%s\",\"time\":\""
		    FIXED_TIME "\",\"toid\":%d}\n", (int)c->uid, (int)ml, msg,
		    n > 0 ? " " : "", (int)n, pad_chars, name, (int)toid);
	jl = (size_t)k;
	if (O.raw) {
		/* same number of bytes on the wire as the JSON request */
		k = snprintf(line, sizeof(line), "%d %.*s ", (int)toid,
		    (int)ml, msg);
		n = (size_t)k;
		if (n + 1 < jl) {
			memset(line + n, '.', jl - 1 - n);
			n = jl - 1;
		}
		line[n++] = '\n';
		jl = n;
	}
	bc_out(c, line, jl);
	ST.sent++;
}

