/*
 * chatbench.c - load generator for chatd (and for echorelay, its plain
 * epoll baseline).
 *
 * One parent process forks -P generator processes.  Each generator runs
 * its own epoll loop over its share of the connections (a pair, a group
 * or an idle connection always lives in one generator, so latencies are
 * taken with one clock and one process) and sends the parent a binary
 * report every second and at the end over a socketpair.  The parent
 * prints a progress line each second on stderr and one JSON summary on
 * stdout, and samples the server's processes in /proc (RSS, PSS, CPU).
 *
 * Phases: the generators connect and log in (setup), say READY, wait for
 * the parent's GO so that all start measuring together, run a warm-up
 * and the measured window, stop sending, wait for what is in flight
 * (drain), and report.  Every phase is bounded in time.
 *
 * Messages carry "cb FROM SEQ T" in their text (T: CLOCK_MONOTONIC of
 * the send, ns): the receiver checks the sender, the order and the
 * count, so lost, duplicated, misrouted and reordered messages are
 * counted, and takes the latency from T.
 *
 * Users are named bench-PREFIX-INDEX and created by the register
 * scenario, which writes INDEX ID lines to the id file that the other
 * scenarios read.
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
#include "chatbench.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT	24
#endif

#define MAX_TARGETS	16
#define MAX_SOURCES	64
#define MAX_PROCS	64
#define RBUF_SIZE	(256 * 1024)
#define SETUP_CONC_DEF	256	/* connects + logins in flight per process */
#define DRAIN_SECONDS	3.0
#define FIXED_TIME	"2024-01-01 00:00:00"

/* ---- options -------------------------------------------------------- */

enum scenario { SC_NONE, SC_REGISTER, SC_LOGIN, SC_CHAT, SC_GROUP, SC_IDLE };

static const char *scenario_names[] = {
	"none", "register", "login", "chat", "group", "idle"
};

static struct opts {
	struct sockaddr_in	 tgt[MAX_TARGETS];
	char			*tgt_str;
	int			 ntgt;
	struct in_addr		 src[MAX_SOURCES];
	int			 nsrc;
	int			 procs;
	pid_t			 mpid;
	const char		*server_comm;
	const char		*prefix;
	const char		*idfile;
	const char		*password;
	enum scenario		 sc;
	long			 n;		/* register, login */
	int			 conc;		/* register, login, idle setup */
	int			 pairs;
	int			 inflight;
	double			 dur;
	double			 rate;
	int			 groups;
	int			 gsize;
	long			 conns;
	int			 raw;
	int			 msglen;
	double			 warmup;
	long			 offset;
	int			 keep;
	int			 quiet;
	double			 setup_timeout;
	int			 setup_conc;
	int			 verbose;
	int			 token;		/* login: with resume tokens */
	const char		*ready;		/* storm: made once all are in */
} O;

/* login --token, storm: each user's resume token, by index into uids */
static char		(*tokens)[BENCH_TOKEN_LEN + 1];

/* ---- small helpers ---------------------------------------------------- */

static void	die(const char *, ...)
		    __attribute__((noreturn, format(printf, 1, 2)));

static void
die(const char *fmt, ...)
{
	va_list	 ap;

	fprintf(stderr, "chatbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void *
xcalloc(size_t n, size_t sz)
{
	void	*p;

	if ((p = calloc(n ? n : 1, sz)) == NULL)
		die("out of memory");
	return p;
}

static void *
xrealloc(void *p, size_t sz)
{
	if ((p = realloc(p, sz ? sz : 1)) == NULL)
		die("out of memory");
	return p;
}

/* Decimal digits of v into p (no NUL); returns the length. */
static size_t
fmt_u64(char *p, uint64_t v)
{
	char	 t[24];
	size_t	 n = 0, i;

	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		p[i] = t[n - 1 - i];
	return n;
}

/* Parse an unsigned decimal at *pp; moves *pp past it.  -1 if none. */
static int
scan_u64(const char **pp, const char *end, uint64_t *out)
{
	const char	*p = *pp;
	uint64_t	 v = 0;

	if (p >= end || !isdigit((unsigned char)*p))
		return -1;
	while (p < end && isdigit((unsigned char)*p))
		v = v * 10 + (uint64_t)(*p++ - '0');
	*pp = p;
	*out = v;
	return 0;
}

/* Integer value of "key": in a JSON line (top level, flat); -1 if none. */
static int
json_int_field(const char *line, size_t len, const char *key, int64_t *out)
{
	char		 pat[48];
	const char	*p, *end = line + len;
	size_t		 pl;
	uint64_t	 v;
	int		 neg = 0;

	pl = (size_t)snprintf(pat, sizeof(pat), "\"%s\":", key);
	for (p = line; (p = memmem(p, (size_t)(end - p), pat, pl)) != NULL;
	    p += pl) {
		/* a key starts after '{' or ','; "toid" must not match "id" */
		if (p > line && p[-1] != '{' && p[-1] != ',')
			continue;
		p += pl;
		if (p < end && *p == '-') {
			neg = 1;
			p++;
		}
		if (scan_u64(&p, end, &v) == -1)
			return -1;
		*out = neg ? -(int64_t)v : (int64_t)v;
		return 0;
	}
	return -1;
}

/* ---- latency histogram: log-linear, 32 sub-buckets per power of 2 ---- */

#define H_LIN		64
#define H_SUB		32
#define H_BUCKETS	(H_LIN + 42 * H_SUB)

struct hist {
	uint64_t	 n;
	uint64_t	 max;
	uint64_t	 sum;
	uint64_t	 b[H_BUCKETS];
};

static int
h_index(uint64_t v)
{
	int	 e, i;

	if (v < H_LIN)
		return (int)v;
	e = 63 - __builtin_clzll(v);
	i = H_LIN + (e - 6) * H_SUB + (int)((v >> (e - 5)) & (H_SUB - 1));
	return i < H_BUCKETS ? i : H_BUCKETS - 1;
}

static uint64_t
h_value(int i)
{
	int		 e, m;

	if (i < H_LIN)
		return (uint64_t)i;
	e = (i - H_LIN) / H_SUB + 6;
	m = (i - H_LIN) % H_SUB;
	return ((uint64_t)(H_SUB + m) << (e - 5)) + ((1ull << (e - 5)) / 2);
}

static inline void
h_add(struct hist *h, uint64_t v)
{
	h->n++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
	h->b[h_index(v)]++;
}

static void
h_merge(struct hist *to, const struct hist *from)
{
	int	 i;

	to->n += from->n;
	to->sum += from->sum;
	if (from->max > to->max)
		to->max = from->max;
	for (i = 0; i < H_BUCKETS; i++)
		to->b[i] += from->b[i];
}

static uint64_t
h_pct(const struct hist *h, double pct)
{
	uint64_t	 want, seen = 0;
	int		 i;

	if (h->n == 0)
		return 0;
	want = (uint64_t)ceil(pct / 100.0 * (double)h->n);
	if (want == 0)
		want = 1;
	for (i = 0; i < H_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t v = h_value(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/* ---- reports from generator processes ----------------------------- */

struct stats {
	uint64_t	 conns_up;	/* connected and logged in */
	uint64_t	 conns_failed;	/* connect or login failed */
	uint64_t	 conns_closed;	/* closed by the server later */
	uint64_t	 logins;	/* login scenario: successes */
	uint64_t	 login_errors;	/* wrong password, no such user */
	uint64_t	 login_online;	/* errno 2: already online */
	uint64_t	 regs;		/* register: new users */
	uint64_t	 regs_existing;	/* register: name taken, id recovered */
	uint64_t	 sent;
	uint64_t	 delivered;	/* in the measured window */
	uint64_t	 delivered_all;	/* whole run, for the checks */
	uint64_t	 lost;
	uint64_t	 dup;
	uint64_t	 misrouted;
	uint64_t	 reordered;
	uint64_t	 errors;	/* error answers from the server */
	uint64_t	 skipped;	/* open loop: not sent, too far behind */
	uint64_t	 measured_ns;	/* length of the measured window */
	struct hist	 lat;		/* ns, measured window */
};

enum { M_STATS = 1, M_READY, M_DONE, M_IDS, M_FAIL };

struct mhdr {
	uint32_t	 type;
	uint32_t	 len;
};

static int	 ctl_fd = -1;		/* generator side of the socketpair */

static void
write_all(int fd, const void *p, size_t n)
{
	const char	*q = p;
	ssize_t		 w;

	while (n > 0) {
		w = write(fd, q, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			_exit(3);
		}
		q += w;
		n -= (size_t)w;
	}
}

static void
ctl_send(uint32_t type, const void *p, size_t len)
{
	struct mhdr	 h = { type, (uint32_t)len };

	write_all(ctl_fd, &h, sizeof(h));
	if (len > 0)
		write_all(ctl_fd, p, len);
}

/* ---- users ----------------------------------------------------------- */

static int32_t	*uids;
static long	 nuids;

static const char *
idfile_path(void)
{
	static char	 path[PATH_MAX];

	if (O.idfile != NULL)
		return O.idfile;
	snprintf(path, sizeof(path), "chatbench-%s.ids", O.prefix);
	return path;
}

static void
load_ids(long need)
{
	FILE	*f;
	char	 line[128];
	long	 idx, id;

	if (O.raw) {
		/* echorelay: any id will do */
		nuids = need;
		uids = xcalloc((size_t)need, sizeof(*uids));
		for (idx = 0; idx < need; idx++)
			uids[idx] = (int32_t)(idx + 1);
		return;
	}
	if ((f = fopen(idfile_path(), "r")) == NULL)
		die("%s: %s (create the users first: chatbench register "
		    "-n %ld)", idfile_path(), strerror(errno), need);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == '#')
			continue;
		if (sscanf(line, "%ld %ld", &idx, &id) != 2 || idx < 0 ||
		    id <= 0 || id > INT32_MAX)
			continue;
		if (idx >= nuids) {
			long n = idx + 1;
			uids = xrealloc(uids, (size_t)n * sizeof(*uids));
			memset(uids + nuids, 0, (size_t)(n - nuids) *
			    sizeof(*uids));
			nuids = n;
		}
		uids[idx] = (int32_t)id;
	}
	fclose(f);
	for (idx = 0; idx < need; idx++)
		if (idx >= nuids || uids[idx] == 0)
			die("%s: user %ld missing; %ld users needed (chatbench "
			    "-x %s register -n %ld)", idfile_path(), idx, need,
			    O.prefix, need);
}

static int
user_name(char *p, size_t len, long idx)
{
	return snprintf(p, len, "bench-%s-%ld", O.prefix, idx);
}

/* ---- connections (generator side) ------------------------------------ */

enum cstate {
	CS_IDLE,	/* not started */
	CS_CONNECTING,
	CS_LOGIN,	/* login sent */
	CS_JOIN,	/* group join + ping sent */
	CS_READY,
	CS_REG,		/* register: REG sent */
	CS_REGLOGIN,	/* register: name taken, login by name sent */
	CS_RETRY,	/* still online from an earlier run: log in again */
	CS_DEAD,
};

struct bc {
	int		 fd;
	enum cstate	 st;
	long		 idx;		/* user index */
	int32_t		 uid;
	int		 ti;		/* target */
	int		 si;		/* source address, -1 none */
	int		 role;		/* 0 sender, 1 receiver, 2 member */
	void		*owner;		/* pair or group */
	int		 member;	/* group member number */
	uint64_t	 t0;		/* start of the current operation */
	char		*rb;		/* partial line */
	size_t		 rlen, rcap;
	char		*wb;
	size_t		 woff, wlen, wcap;
	int		 in_flush;
	int		 epout;
	struct bc	*fnext;
	uint64_t	 expect;	/* group member: next seq */
	uint64_t	 retry_at;	/* CS_RETRY: when */
	int		 retries;
};

struct pair {
	struct bc	*a, *b;
	uint64_t	 next_seq;	/* next to send */
	uint64_t	 recv_next;	/* next expected */
	uint64_t	 outstanding;
	uint64_t	 sent;
	uint64_t	 got;
};

struct group {
	int32_t		 gid;
	int		 size;
	struct bc	**m;
	uint64_t	 next_seq;
	uint64_t	 outstanding;
	int		*remaining;	/* ring of inflight slots */
	uint64_t	 sent;
};

static int		 ep = -1;
static struct stats	 ST;
static struct bc	*flush_head;
static char		*rbuf;
static int		 sending;	/* closed loop may send */
static int		 measuring;
static uint64_t		 measure_t0, measure_t1;
static long		 setup_pending;	/* conns not yet READY or DEAD */
static long		 nretry;	/* conns in CS_RETRY */
static int		 gen_index;

static struct pair	*pairs;
static int		 npairs;
static struct group	*groups_g;
static int		 ngroups_g;
static int32_t		*group_ids;	/* from the parent, by group number */
static struct bc	**conns;
static long		 nconns;

/* register/login scenario work queue */
static long		 work_next, work_end, work_step;
static int32_t		*reg_ids;	/* register: result by local index */
static long		 reg_base;

static void	bc_close(struct bc *c, int failed);

static void
bc_want_flush(struct bc *c)
{
	if (!c->in_flush) {
		c->in_flush = 1;
		c->fnext = flush_head;
		flush_head = c;
	}
}

static void
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

static void
bc_epoll(struct bc *c, int out)
{
	struct epoll_event	 ev;

	if (c->epout == out)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | (out ? EPOLLOUT : 0);
	ev.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->epout = out;
}

static void
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

static void
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

static void
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
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	free(c->rb);
	c->rb = NULL;
	c->rlen = c->rcap = 0;
	c->woff = c->wlen = 0;
}

/* Close on purpose (login scenario): RST, so no TIME_WAIT piles up. */
static void
bc_drop(struct bc *c)
{
	struct linger	 l = { 1, 0 };

	if (c->fd != -1) {
		(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	c->st = CS_IDLE;
	c->rlen = 0;
	c->woff = c->wlen = 0;
	c->epout = 0;
}

static void
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
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.ptr = c;
	c->epout = 1;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		bc_close(c, 1);
}

/* ---- requests ---------------------------------------------------------- */

static void
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

static void
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
static char	 pad_chars[65536];

static void
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

/* ---- scenario logic ----------------------------------------------------- */

static void
pair_send(struct pair *p, uint64_t t)
{
	send_chat(p->a, p->b->uid, 0, p->next_seq++, t);
	p->outstanding++;
	p->sent++;
}

static void
group_send(struct group *g, uint64_t t)
{
	g->remaining[g->next_seq % (uint64_t)O.inflight] = g->size - 1;
	send_chat(g->m[0], 0, g->gid, g->next_seq++, t);
	g->outstanding++;
	g->sent++;
}

static void
became_ready(struct bc *c)
{
	c->st = CS_READY;
	ST.conns_up++;
	setup_pending--;
	if (O.sc == SC_IDLE && c->rb != NULL) {
		free(c->rb);
		c->rb = NULL;
		c->rcap = c->rlen = 0;
	}
}

/* Parse "cb FROM SEQ T" from a delivered line. */
static int
parse_cb(const char *line, size_t len, uint64_t *from, uint64_t *seq,
    uint64_t *t)
{
	const char	*p, *end = line + len;

	if (O.raw) {
		/* "TOID cb FROM SEQ T ..." */
		if ((p = memchr(line, ' ', len)) == NULL)
			return -1;
		p++;
		if (end - p < 3 || memcmp(p, "cb ", 3) != 0)
			return -1;
		p += 3;
	} else {
		if ((p = memmem(line, len, "\"msg\":\"cb ", 10)) == NULL)
			return -1;
		p += 10;
	}
	if (scan_u64(&p, end, from) == -1 || p >= end || *p++ != ' ' ||
	    scan_u64(&p, end, seq) == -1 || p >= end || *p++ != ' ' ||
	    scan_u64(&p, end, t) == -1)
		return -1;
	return 0;
}

static void
count_delivery(uint64_t t, uint64_t now)
{
	ST.delivered_all++;
	if (measuring && now >= measure_t0) {
		ST.delivered++;
		h_add(&ST.lat, now > t ? now - t : 0);
	}
}

static void
on_pair_line(struct bc *c, const char *line, size_t len, uint64_t now)
{
	struct pair	*p = c->owner;
	uint64_t	 from, seq, t;
	int64_t		 id;

	if (parse_cb(line, len, &from, &seq, &t) == -1) {
		ST.errors++;
		if (O.verbose)
			fprintf(stderr, "unexpected: %.*s\n", (int)len, line);
		return;
	}
	if (c->role != 1 || from != (uint64_t)p->a->uid ||
	    (!O.raw && (json_int_field(line, len, "id", &id) == -1 ||
	    id != p->a->uid))) {
		ST.misrouted++;
		return;
	}
	if (seq == p->recv_next)
		p->recv_next++;
	else if (seq < p->recv_next) {
		ST.dup++;
		return;
	} else {
		ST.reordered++;
		p->recv_next = seq + 1;
	}
	p->got++;
	if (p->outstanding > 0)
		p->outstanding--;
	count_delivery(t, now);
	if (sending && O.rate <= 0)
		pair_send(p, now);
}

static void
on_group_line(struct bc *c, const char *line, size_t len, uint64_t now)
{
	struct group	*g = c->owner;
	uint64_t	 from, seq, t;
	int64_t		 gid;
	int		*rem;

	if (parse_cb(line, len, &from, &seq, &t) == -1) {
		ST.errors++;
		if (O.verbose)
			fprintf(stderr, "unexpected: %.*s\n", (int)len, line);
		return;
	}
	if (c->member == 0 || from != (uint64_t)g->m[0]->uid ||
	    json_int_field(line, len, "groupid", &gid) == -1 ||
	    gid != g->gid) {
		ST.misrouted++;
		return;
	}
	if (seq == c->expect)
		c->expect++;
	else if (seq < c->expect) {
		ST.dup++;
		return;
	} else {
		ST.reordered++;
		c->expect = seq + 1;
	}
	count_delivery(t, now);
	if (seq + (uint64_t)O.inflight < g->next_seq)
		return;		/* its slot was reused: too late to count */
	rem = &g->remaining[seq % (uint64_t)O.inflight];
	if (*rem > 0 && --*rem == 0) {
		g->outstanding--;
		if (sending)
			group_send(g, now);
	}
}

static void next_work(struct bc *c);
static void reg_reconnect(struct bc *c);

static void
on_line(struct bc *c, const char *line, size_t len)
{
	int64_t		 msgid = -1, err = -1, id = 0;
	uint64_t	 now;

	if (len == 0)
		return;
	now = util_mono_ns();
	if (c->st == CS_READY) {
		if (O.raw || (json_int_field(line, len, "msgid", &msgid) == 0 &&
		    (msgid == 6 || msgid == 10))) {
			if (O.sc == SC_GROUP)
				on_group_line(c, line, len, now);
			else
				on_pair_line(c, line, len, now);
			return;
		}
		/* errors in answer to chats, pongs, anything else */
		if (msgid == 100) {
			ST.errors++;
			if (!O.quiet && ST.errors <= 5)
				fprintf(stderr, "server error: %.*s\n",
				    (int)len, line);
		}
		return;
	}
	if (O.raw) {
		if (c->st == CS_LOGIN && len >= 2 && memcmp(line, "OK", 2) == 0)
			became_ready(c);
		return;
	}
	(void)json_int_field(line, len, "msgid", &msgid);
	(void)json_int_field(line, len, "errno", &err);
	switch (c->st) {
	case CS_LOGIN:
		if (msgid != 2)
			break;
		if (O.sc == SC_LOGIN) {
			if (err == 0) {
				ST.logins++;
				if (measuring)
					h_add(&ST.lat, now - c->t0);
			} else if (err == 2)
				ST.login_online++;
			else {
				ST.login_errors++;
				if (!O.quiet && ST.login_errors <= 3)
					fprintf(stderr, "login failed: %.*s\n",
					    (int)len, line);
			}
			if (O.keep && err == 0) {
				char	 b[64];
				int	 n = snprintf(b, sizeof(b), "{\"id\":%d,"
				    "\"msgid\":3}\n", (int)c->uid);
				bc_out(c, b, (size_t)n);
				next_work(c);
			} else {
				bc_drop(c);
				next_work(c);
			}
			return;
		}
		if (err == 2 && c->retries < 50) {
			/* the last run's session may not be gone yet */
			c->retries++;
			c->retry_at = now + 100000000ull;
			c->st = CS_RETRY;
			nretry++;
			return;
		}
		if (err != 0) {
			if (!O.quiet && ST.conns_failed < 3)
				fprintf(stderr, "login of user %d failed: "
				    "%.*s\n", (int)c->uid, (int)len, line);
			bc_close(c, 1);
			return;
		}
		if (O.sc == SC_GROUP) {
			char	 b[160];
			int	 n;
			struct group *g = c->owner;

			n = snprintf(b, sizeof(b), "{\"groupid\":%d,\"id\":%d,"
			    "\"msgid\":9}\n{\"msgid\":101,\"seq\":1}\n",
			    (int)g->gid, (int)c->uid);
			if (c->member == 0)	/* the creator is a member */
				n = snprintf(b, sizeof(b),
				    "{\"msgid\":101,\"seq\":1}\n");
			c->st = CS_JOIN;
			bc_out(c, b, (size_t)n);
			return;
		}
		became_ready(c);
		return;
	case CS_JOIN:
		if (msgid == 102)
			became_ready(c);
		else if (msgid == 100) {
			if (!O.quiet)
				fprintf(stderr, "joining group failed: "
				    "%.*s\n", (int)len, line);
			bc_close(c, 1);
		}
		return;
	case CS_REG:
		if (msgid != 5)
			break;
		if (err == 0 && json_int_field(line, len, "id", &id) == 0) {
			reg_ids[c->idx - reg_base] = (int32_t)id;
			ST.regs++;
			if (measuring)
				h_add(&ST.lat, now - c->t0);
			next_work(c);
		} else if (err == 1) {
			/* taken, perhaps by an earlier run: log in by name */
			char	 b[256], name[96];
			int	 n;

			user_name(name, sizeof(name), c->idx);
			n = snprintf(b, sizeof(b), "{\"msgid\":1,\"name\":"
			    "\"%s\",\"password\":\"%s\"}\n", name, O.password);
			c->st = CS_REGLOGIN;
			bc_out(c, b, (size_t)n);
		} else {
			ST.errors++;
			if (!O.quiet && ST.errors <= 3)
				fprintf(stderr, "register failed: %.*s\n",
				    (int)len, line);
			next_work(c);
		}
		return;
	case CS_REGLOGIN:
		if (msgid != 2)
			break;
		if (err == 0 && json_int_field(line, len, "id", &id) == 0) {
			char	 b[64];
			int	 n;

			reg_ids[c->idx - reg_base] = (int32_t)id;
			ST.regs_existing++;
			n = snprintf(b, sizeof(b), "{\"id\":%d,\"msgid\":3}\n",
			    (int)id);
			bc_out(c, b, (size_t)n);
		} else {
			ST.errors++;
			if (!O.quiet && ST.errors <= 3)
				fprintf(stderr, "user %s exists with another "
				    "password or is online: %.*s\n", "",
				    (int)len, line);
		}
		next_work(c);
		return;
	default:
		break;
	}
	if (msgid == 100) {
		ST.errors++;
		if (!O.quiet && ST.errors <= 5)
			fprintf(stderr, "server error: %.*s\n", (int)len, line);
	}
}

/* register and login: send the request of the current unit of work. */
static void
do_work(struct bc *c)
{
	if (O.sc == SC_REGISTER)
		send_reg(c);
	else
		send_login(c);
}

/* register and login: the connection takes the next unit of work. */
static void
next_work(struct bc *c)
{
	if (!sending || work_next >= work_end) {
		if (c->fd != -1 && O.sc == SC_LOGIN)
			bc_drop(c);
		c->st = CS_IDLE;
		return;
	}
	c->idx = work_next;
	work_next += work_step;
	if (O.sc == SC_LOGIN) {
		/* user (index mod users), fresh connection unless -k */
		c->uid = uids[c->idx % nuids];
		c->si = O.nsrc > 0 ? (int)(c->idx % O.nsrc) : -1;
	}
	c->t0 = util_mono_ns();
	if (c->fd == -1) {
		bc_connect(c);
		if (c->st == CS_DEAD && O.sc == SC_LOGIN)
			c->st = CS_IDLE;	/* counted; this slot stops */
		return;
	}
	do_work(c);
}

static void
on_connected(struct bc *c)
{
	int		 err = 0;
	socklen_t	 sl = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1 ||
	    err != 0) {
		if (!O.quiet && ST.conns_failed < 3)
			fprintf(stderr, "connect: %s\n", strerror(err ? err :
			    errno));
		if (O.sc == SC_LOGIN) {
			ST.conns_failed++;
			bc_drop(c);
			next_work(c);
		} else if (O.sc == SC_REGISTER) {
			c->st = CS_REG;		/* still to be sent */
			reg_reconnect(c);
		} else
			bc_close(c, 1);
		return;
	}
	bc_epoll(c, 0);
	if (O.sc == SC_REGISTER || O.sc == SC_LOGIN) {
		uint64_t t0 = c->t0;
		do_work(c);
		c->t0 = t0;	/* latency includes the connect */
	} else
		send_login(c);
}

/*
 * register: the server closed the connection (login_timeout closes one
 * that never logs in).  The request in flight is sent again on a new
 * connection: a name already taken by it is then looked up by login.
 */
static void
reg_reconnect(struct bc *c)
{
	int	 busy = c->st == CS_REG || c->st == CS_REGLOGIN;

	if (c->fd != -1) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	c->rlen = 0;
	c->woff = c->wlen = 0;
	c->epout = 0;
	c->st = CS_IDLE;
	ST.conns_closed++;
	if (++c->retries > 1000) {
		c->st = CS_DEAD;
		return;
	}
	if (busy)
		bc_connect(c);
}

static void
on_readable(struct bc *c)
{
	ssize_t		 n;
	char		*p, *end, *nl, *data;
	size_t		 len;
	int		 rounds;

	for (rounds = 0; rounds < 4 && c->st != CS_DEAD && c->fd != -1;
	    rounds++) {
		n = read(c->fd, rbuf, RBUF_SIZE);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				if (O.sc == SC_REGISTER)
					reg_reconnect(c);
				else if (O.sc == SC_LOGIN) {
					ST.conns_failed++;
					bc_drop(c);
					next_work(c);
				} else
					bc_close(c, 0);
			}
			return;
		}
		if (n == 0) {
			if (O.sc == SC_REGISTER)
				reg_reconnect(c);
			else if (O.sc == SC_LOGIN) {
				ST.conns_failed++;
				bc_drop(c);
				next_work(c);
			} else
				bc_close(c, 0);
			return;
		}
		if (c->rlen > 0) {
			if (c->rlen + (size_t)n > c->rcap) {
				c->rcap = c->rlen + (size_t)n;
				c->rb = xrealloc(c->rb, c->rcap);
			}
			memcpy(c->rb + c->rlen, rbuf, (size_t)n);
			c->rlen += (size_t)n;
			data = c->rb;
			len = c->rlen;
		} else {
			data = rbuf;
			len = (size_t)n;
		}
		p = data;
		end = data + len;
		while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) !=
		    NULL) {
			on_line(c, p, (size_t)(nl - p));
			p = nl + 1;
			if (c->st == CS_DEAD || c->fd == -1)
				return;
		}
		len = (size_t)(end - p);
		if (len > 0) {
			if (data == c->rb)
				memmove(c->rb, p, len);
			else {
				if (len > c->rcap) {
					c->rcap = len < 4096 ? 4096 : len;
					c->rb = xrealloc(c->rb, c->rcap);
				}
				memcpy(c->rb, p, len);
			}
		}
		c->rlen = len;
		if ((size_t)n < RBUF_SIZE)
			return;
	}
}

static void
loop_once(int timeout_ms)
{
	struct epoll_event	 ev[512];
	struct bc		*c;
	int			 n, i;

	n = epoll_wait(ep, ev, 512, timeout_ms);
	for (i = 0; i < n; i++) {
		c = ev[i].data.ptr;
		if (c->st == CS_DEAD || c->fd == -1)
			continue;
		if (c->st == CS_CONNECTING) {
			if (ev[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
				on_connected(c);
			continue;
		}
		if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			on_readable(c);
		if (c->st != CS_DEAD && c->fd != -1 &&
		    (ev[i].events & EPOLLOUT))
			bc_flush(c);
	}
	flush_all();
}

/* ---- generator process --------------------------------------------------- */

static struct bc *
new_bc(long idx, int ti, int si)
{
	struct bc	*c = xcalloc(1, sizeof(*c));

	c->fd = -1;
	c->idx = idx;
	c->uid = idx >= 0 && idx < nuids ? uids[idx] : 0;
	c->ti = ti;
	c->si = si;
	c->st = CS_IDLE;
	conns[nconns++] = c;
	return c;
}

/* Build this generator's share of the connections. */
static void
gen_build(int k)
{
	long	 i, j, gi = 0;

	switch (O.sc) {
	case SC_CHAT:
		conns = xcalloc((size_t)O.pairs * 2 / O.procs + 2,
		    sizeof(*conns));
		pairs = xcalloc((size_t)O.pairs / O.procs + 1, sizeof(*pairs));
		for (i = k; i < O.pairs; i += O.procs) {
			struct pair *p = &pairs[npairs++];
			long ia = O.offset + 2 * i, ib = ia + 1;
			p->a = new_bc(ia, (int)((2 * i) % O.ntgt),
			    O.nsrc ? (int)((2 * i) % O.nsrc) : -1);
			p->b = new_bc(ib, (int)((2 * i + 1) % O.ntgt),
			    O.nsrc ? (int)((2 * i + 1) % O.nsrc) : -1);
			p->a->owner = p->b->owner = p;
			p->a->role = 0;
			p->b->role = 1;
		}
		break;
	case SC_GROUP:
		conns = xcalloc(((size_t)O.groups / O.procs + 1) *
		    (size_t)O.gsize, sizeof(*conns));
		groups_g = xcalloc((size_t)O.groups / O.procs + 1,
		    sizeof(*groups_g));
		for (i = k; i < O.groups; i += O.procs) {
			struct group *g = &groups_g[ngroups_g++];
			g->gid = group_ids[i];
			g->size = O.gsize;
			g->m = xcalloc((size_t)O.gsize, sizeof(*g->m));
			g->remaining = xcalloc((size_t)O.inflight,
			    sizeof(*g->remaining));
			for (j = 0; j < O.gsize; j++) {
				long idx = O.offset + i * O.gsize + j;
				gi = i * O.gsize + j;
				g->m[j] = new_bc(idx, (int)(gi % O.ntgt),
				    O.nsrc ? (int)(gi % O.nsrc) : -1);
				g->m[j]->owner = g;
				g->m[j]->member = (int)j;
				g->m[j]->role = 2;
			}
		}
		break;
	case SC_IDLE:
		conns = xcalloc((size_t)O.conns / O.procs + 1, sizeof(*conns));
		for (i = k; i < O.conns; i += O.procs)
			(void)new_bc(O.offset + i, (int)(i % O.ntgt),
			    O.nsrc ? (int)(i % O.nsrc) : -1);
		break;
	case SC_REGISTER:
	case SC_LOGIN:
		/* concurrency slots; the work is handed out by next_work */
		j = O.conc / O.procs + (k < O.conc % O.procs);
		if (j < 1)
			j = 1;
		conns = xcalloc((size_t)j, sizeof(*conns));
		for (i = 0; i < j; i++)
			(void)new_bc(-1, (int)((k + i * O.procs) % O.ntgt),
			    O.nsrc ? (int)((k + i * O.procs) % O.nsrc) : -1);
		work_step = O.procs;
		work_next = k;
		work_end = O.n;
		if (O.sc == SC_REGISTER) {
			work_next += O.offset;
			work_end += O.offset;
			reg_base = O.offset;
			reg_ids = xcalloc((size_t)O.n, sizeof(*reg_ids));
		}
		break;
	default:
		break;
	}
}

static void
report(uint32_t type)
{
	ctl_send(type, &ST, sizeof(ST));
}

static void
gen_setup(void)
{
	uint64_t	 t_end, last;
	long		 started = 0, inflight;

	setup_pending = nconns;
	t_end = util_mono_ns() + (uint64_t)(O.setup_timeout * 1e9);
	last = util_mono_ns();
	/* connect and log in, a bounded number at a time */
	while (setup_pending > 0 && util_mono_ns() < t_end) {
		inflight = started - (nconns - setup_pending);
		while (started < nconns && inflight < O.setup_conc) {
			bc_connect(conns[started++]);
			inflight++;
		}
		if (nretry > 0) {
			uint64_t now = util_mono_ns();
			long i;

			for (i = 0; i < started; i++)
				if (conns[i]->st == CS_RETRY &&
				    conns[i]->retry_at <= now) {
					nretry--;
					send_login(conns[i]);
				}
		}
		flush_all();
		loop_once(10);
		if (util_mono_ns() - last >= 1000000000ull) {
			last = util_mono_ns();
			report(M_STATS);
		}
	}
	if (setup_pending > 0 && !O.quiet)
		fprintf(stderr, "generator %d: %ld connections not ready "
		    "after %.0f s\n", gen_index, setup_pending,
		    O.setup_timeout);
}

static void
wait_go(void)
{
	struct pollfd	 pfd;
	char		 ch;
	uint64_t	 last = util_mono_ns();

	/* keep the connections served while the others get ready */
	for (;;) {
		pfd.fd = ctl_fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 0) == 1) {
			if (read(ctl_fd, &ch, 1) != 1)
				_exit(4);
			return;
		}
		loop_once(5);
		if (util_mono_ns() - last >= 1000000000ull) {
			last = util_mono_ns();
			report(M_STATS);
		}
	}
}

static void
gen_run(void)
{
	uint64_t	 t0, t_warm, t_end, t_drain, now, last, sent_ol = 0;
	uint64_t	 per_ns = 0, due;
	long		 i;
	int		 rr = 0, timeout;

	t0 = util_mono_ns();
	t_warm = t0 + (uint64_t)(O.warmup * 1e9);
	t_end = t_warm + (uint64_t)(O.dur * 1e9);
	sending = 1;
	measuring = 0;
	last = t0;

	if (O.warmup <= 0) {
		measuring = 1;
		measure_t0 = t0;
	}
	switch (O.sc) {
	case SC_CHAT:
		if (O.rate > 0) {
			per_ns = (uint64_t)(1e9 / (O.rate / O.procs));
			if (per_ns == 0)
				per_ns = 1;
		} else
			for (i = 0; i < npairs; i++) {
				int w;
				if (pairs[i].a->st != CS_READY ||
				    pairs[i].b->st != CS_READY)
					continue;
				for (w = 0; w < O.inflight; w++)
					pair_send(&pairs[i], t0);
			}
		break;
	case SC_GROUP:
		for (i = 0; i < ngroups_g; i++) {
			int w, j, ok = 1;
			for (j = 0; j < groups_g[i].size; j++)
				if (groups_g[i].m[j]->st != CS_READY)
					ok = 0;
			if (!ok)
				continue;
			for (w = 0; w < O.inflight; w++)
				group_send(&groups_g[i], t0);
		}
		break;
	case SC_REGISTER:
	case SC_LOGIN:
		for (i = 0; i < nconns; i++)
			next_work(conns[i]);
		break;
	default:
		break;
	}
	flush_all();

	for (;;) {
		now = util_mono_ns();
		if (!measuring && now >= t_warm) {
			measuring = 1;
			measure_t0 = now;
			/* the window starts now: forget the warm-up */
			ST.delivered = 0;
			memset(&ST.lat, 0, sizeof(ST.lat));
		}
		if (now >= t_end)
			break;
		if (O.sc == SC_REGISTER || O.sc == SC_LOGIN) {
			long busy = 0, dead = 0;

			for (i = 0; i < nconns; i++) {
				if (conns[i]->st == CS_DEAD)
					dead++;
				else if (conns[i]->st != CS_IDLE)
					busy++;
			}
			/* all done, or nobody left to do the rest */
			if ((work_next >= work_end && busy == 0) ||
			    dead == nconns)
				break;
		}
		timeout = 100;
		if (O.sc == SC_CHAT && O.rate > 0 && npairs > 0) {
			/* open loop: send what is due, from the schedule */
			due = (now - t0) / per_ns + 1;
			while (sent_ol < due) {
				struct pair *p = &pairs[rr++ % npairs];
				uint64_t t = t0 + sent_ol * per_ns;
				sent_ol++;
				if (p->a->st != CS_READY ||
				    p->b->st != CS_READY || p->outstanding >=
				    100000) {
					ST.skipped++;
					continue;
				}
				pair_send(p, t);
			}
			flush_all();
			timeout = 1;
		}
		if (O.sc == SC_IDLE)
			timeout = 200;
		loop_once(timeout);
		if (now - last >= 1000000000ull) {
			last = now;
			report(M_STATS);
		}
	}
	measure_t1 = util_mono_ns();
	measuring = 0;
	sending = 0;
	ST.measured_ns = measure_t1 - (measure_t0 ? measure_t0 : t0);

	/* drain what is in flight, then count what never came */
	t_drain = util_mono_ns() + (uint64_t)(DRAIN_SECONDS * 1e9);
	while (util_mono_ns() < t_drain && O.sc != SC_IDLE && O.sc != SC_REGISTER &&
	    O.sc != SC_LOGIN) {
		uint64_t out = 0;
		for (i = 0; i < npairs; i++)
			out += pairs[i].sent - pairs[i].got;
		for (i = 0; i < ngroups_g; i++)
			out += groups_g[i].outstanding;
		if (out == 0)
			break;
		loop_once(10);
	}
	if (O.sc == SC_LOGIN || O.sc == SC_REGISTER) {
		/* let the last answers come in */
		t_drain = util_mono_ns() + 2000000000ull;
		while (util_mono_ns() < t_drain) {
			for (i = 0; i < nconns; i++)
				if (conns[i]->st != CS_IDLE &&
				    conns[i]->st != CS_DEAD)
					break;
			if (i == nconns)
				break;
			loop_once(10);
		}
	}
	for (i = 0; i < npairs; i++)
		ST.lost += pairs[i].sent > pairs[i].got ?
		    pairs[i].sent - pairs[i].got : 0;
	for (i = 0; i < ngroups_g; i++) {
		int j;
		uint64_t expect_each = groups_g[i].sent;
		for (j = 1; j < groups_g[i].size; j++)
			if (groups_g[i].m[j]->expect < expect_each)
				ST.lost += expect_each -
				    groups_g[i].m[j]->expect;
	}
}

static void
gen_main(int k, int fd, int ready_fd_unused)
{
	long	 i;

	(void)ready_fd_unused;
	gen_index = k;
	ctl_fd = fd;
	signal(SIGPIPE, SIG_IGN);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1: %s", strerror(errno));
	rbuf = xcalloc(1, RBUF_SIZE);
	memset(pad_chars, '.', sizeof(pad_chars));
	gen_build(k);
	if (O.sc == SC_CHAT || O.sc == SC_GROUP || O.sc == SC_IDLE)
		gen_setup();
	report(M_READY);
	wait_go();
	gen_run();
	if (O.sc == SC_REGISTER) {
		/* (index, id) of each user this generator registered */
		int32_t *v = xcalloc((size_t)O.n * 2, sizeof(*v));
		long n = 0;
		for (i = 0; i < O.n; i++)
			if (reg_ids[i] != 0) {
				v[2 * n] = (int32_t)(reg_base + i);
				v[2 * n + 1] = reg_ids[i];
				n++;
			}
		ctl_send(M_IDS, v, (size_t)n * 2 * sizeof(*v));
	}
	if (O.sc == SC_IDLE) {
		ST.conns_up = 0;
		for (i = 0; i < nconns; i++)
			if (conns[i]->st == CS_READY)
				ST.conns_up++;
	}
	report(M_DONE);
	_exit(0);
}

/* ---- server sampling (/proc) ---------------------------------------- */

struct srv {
	int		 npids;
	uint64_t	 cpu_ticks;
	uint64_t	 rss_kib;
	uint64_t	 pss_kib;
};

static int
proc_stat(pid_t pid, char *comm, size_t commlen, pid_t *ppid,
    uint64_t *ticks)
{
	char		 path[64], buf[1024], *p, *q;
	FILE		*f;
	unsigned long	 ut = 0, stt = 0;
	int		 pp = 0;
	size_t		 n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strchr(buf, '(')) == NULL || (q = strrchr(buf, ')')) == NULL)
		return -1;
	if (comm != NULL) {
		snprintf(comm, commlen, "%.*s", (int)(q - p - 1), p + 1);
	}
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime */
	if (sscanf(q + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &pp, &ut, &stt) != 3)
		return -1;
	if (ppid != NULL)
		*ppid = pp;
	if (ticks != NULL)
		*ticks = ut + stt;
	return 0;
}

static void
proc_mem(pid_t pid, uint64_t *rss, uint64_t *pss)
{
	char		 path[64], line[256];
	FILE		*f;
	unsigned long	 v;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if (sscanf(line, "Rss: %lu kB", &v) == 1)
				*rss += v;
			else if (sscanf(line, "Pss: %lu kB", &v) == 1)
				*pss += v;
		}
		fclose(f);
	}
}

static void
server_sample(struct srv *s)
{
	DIR		*d;
	struct dirent	*de;
	char		 comm[64];
	pid_t		 pid, ppid;
	uint64_t	 ticks;

	memset(s, 0, sizeof(*s));
	if ((d = opendir("/proc")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)atoi(de->d_name);
		if (proc_stat(pid, comm, sizeof(comm), &ppid, &ticks) == -1)
			continue;
		if (O.mpid > 0) {
			if (pid != O.mpid && ppid != O.mpid)
				continue;
		} else if (strcmp(comm, O.server_comm) != 0)
			continue;
		s->npids++;
		s->cpu_ticks += ticks;
		proc_mem(pid, &s->rss_kib, &s->pss_kib);
	}
	closedir(d);
}

/* ---- parent ------------------------------------------------------------ */

struct gen {
	pid_t		 pid;
	int		 fd;
	char		*in;
	size_t		 inlen, incap;
	struct stats	 st;
	int		 ready;
	int		 done;
	int32_t		*ids;
	size_t		 nids;
};

static struct gen	 gens[MAX_PROCS];

/* Read what a generator sent; handle complete messages. */
static int
gen_read(struct gen *g)
{
	char		 tmp[65536];
	ssize_t		 n;
	struct mhdr	 h;
	size_t		 off = 0;

	n = read(g->fd, tmp, sizeof(tmp));
	if (n <= 0) {
		if (n == -1 && errno == EINTR)
			return 0;
		return -1;
	}
	if (g->inlen + (size_t)n > g->incap) {
		g->incap = (g->inlen + (size_t)n) * 2;
		g->in = xrealloc(g->in, g->incap);
	}
	memcpy(g->in + g->inlen, tmp, (size_t)n);
	g->inlen += (size_t)n;
	while (g->inlen - off >= sizeof(h)) {
		memcpy(&h, g->in + off, sizeof(h));
		if (g->inlen - off - sizeof(h) < h.len)
			break;
		const char *p = g->in + off + sizeof(h);
		switch (h.type) {
		case M_STATS:
		case M_READY:
		case M_DONE:
			if (h.len == sizeof(struct stats))
				memcpy(&g->st, p, sizeof(g->st));
			if (h.type == M_READY)
				g->ready = 1;
			if (h.type == M_DONE)
				g->done = 1;
			break;
		case M_IDS:
			g->ids = xrealloc(g->ids, h.len);
			memcpy(g->ids, p, h.len);
			g->nids = h.len / sizeof(int32_t) / 2;
			break;
		default:
			break;
		}
		off += sizeof(h) + h.len;
	}
	memmove(g->in, g->in + off, g->inlen - off);
	g->inlen -= off;
	return 0;
}

static void
sum_stats(struct stats *s)
{
	int	 i;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < O.procs; i++) {
		const struct stats *t = &gens[i].st;
		s->conns_up += t->conns_up;
		s->conns_failed += t->conns_failed;
		s->conns_closed += t->conns_closed;
		s->logins += t->logins;
		s->login_errors += t->login_errors;
		s->login_online += t->login_online;
		s->regs += t->regs;
		s->regs_existing += t->regs_existing;
		s->sent += t->sent;
		s->delivered += t->delivered;
		s->delivered_all += t->delivered_all;
		s->lost += t->lost;
		s->dup += t->dup;
		s->misrouted += t->misrouted;
		s->reordered += t->reordered;
		s->errors += t->errors;
		s->skipped += t->skipped;
		if (t->measured_ns > s->measured_ns)
			s->measured_ns = t->measured_ns;
		h_merge(&s->lat, &t->lat);
	}
}

static uint64_t
progress_count(const struct stats *s)
{
	switch (O.sc) {
	case SC_REGISTER:
		return s->regs + s->regs_existing;
	case SC_LOGIN:
		return s->logins;
	case SC_IDLE:
		return s->conns_up;
	default:
		return s->delivered_all;
	}
}

static void
progress(double t, const struct stats *s, uint64_t *prev, const char *phase)
{
	uint64_t	 c = progress_count(s);

	if (O.quiet)
		return;
	fprintf(stderr, "[%5.1fs] %-6s %s %" PRIu64 " (%.0f/s)  up %" PRIu64
	    "  failed %" PRIu64 "  closed %" PRIu64 "  p99 %.2f ms  errors %"
	    PRIu64 "\n", t, phase, O.sc == SC_IDLE ? "conns" :
	    O.sc == SC_LOGIN ? "logins" : O.sc == SC_REGISTER ? "users" :
	    "delivered", c, (double)(c - *prev), s->conns_up, s->conns_failed,
	    s->conns_closed, h_pct(&s->lat, 99) / 1e6, s->errors);
	*prev = c;
}

/* Wait for messages from generators; pred says when to stop. */
static int
parent_wait(double limit, int (*pred)(void), const char *phase, double t0)
{
	struct pollfd	 pfd[MAX_PROCS];
	double		 start = util_mono_ns() / 1e9, last = start;
	static uint64_t	 prev;
	struct stats	 s;
	int		 i, n;

	for (;;) {
		if (pred())
			return 0;
		if (util_mono_ns() / 1e9 - start > limit)
			return -1;
		for (i = 0; i < O.procs; i++) {
			pfd[i].fd = gens[i].fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		n = poll(pfd, (nfds_t)O.procs, 200);
		for (i = 0; i < O.procs && n > 0; i++)
			if ((pfd[i].revents & (POLLIN | POLLHUP)) &&
			    gen_read(&gens[i]) == -1 && !gens[i].done) {
				gens[i].done = 1;
				gens[i].ready = 1;
				if (!O.quiet)
					fprintf(stderr, "generator %d exited "
					    "early\n", i);
			}
		if (util_mono_ns() / 1e9 - last >= 1.0) {
			last = util_mono_ns() / 1e9;
			sum_stats(&s);
			progress(last - t0, &s, &prev, phase);
		}
	}
}

static int
all_ready(void)
{
	int	 i;

	for (i = 0; i < O.procs; i++)
		if (!gens[i].ready)
			return 0;
	return 1;
}

static int
all_done(void)
{
	int	 i;

	for (i = 0; i < O.procs; i++)
		if (!gens[i].done)
			return 0;
	return 1;
}

/* ---- group set-up (parent, blocking) ---------------------------------- */

static int
bk_connect(int ti)
{
	int		 fd, one = 1;
	struct timeval	 tv = { 10, 0 };

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		die("socket: %s", strerror(errno));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&O.tgt[ti], sizeof(O.tgt[ti])) ==
	    -1)
		die("connect %s: %s", O.tgt_str, strerror(errno));
	return fd;
}

struct lbuf {
	char	 b[1 << 20];
	size_t	 len;
};

static char *
bk_readline(int fd, struct lbuf *lb)
{
	char	*nl, *line;
	ssize_t	 n;
	size_t	 l;

	for (;;) {
		if ((nl = memchr(lb->b, '\n', lb->len)) != NULL) {
			l = (size_t)(nl - lb->b);
			line = xcalloc(1, l + 1);
			memcpy(line, lb->b, l);
			memmove(lb->b, nl + 1, lb->len - l - 1);
			lb->len -= l + 1;
			return line;
		}
		if (lb->len == sizeof(lb->b))
			die("answer longer than %zu bytes", sizeof(lb->b));
		n = read(fd, lb->b + lb->len, sizeof(lb->b) - lb->len);
		if (n <= 0)
			return NULL;
		lb->len += (size_t)n;
	}
}

static void
bk_send(int fd, const char *s)
{
	write_all(fd, s, strlen(s));
}

/* Log in and return the group id named name from the answer, 0 if none. */
static int32_t
bk_login_find(int fd, struct lbuf *lb, int32_t uid, const char *name)
{
	char			 req[256], *line;
	struct json_object	*o, *a, *v, *e, *gn, *gi;
	int32_t			 gid = 0;
	size_t			 i, n;

	snprintf(req, sizeof(req), "{\"id\":%d,\"msgid\":1,\"password\":"
	    "\"%s\"}\n", (int)uid, O.password);
	bk_send(fd, req);
	for (;;) {
		if ((line = bk_readline(fd, lb)) == NULL)
			die("group set-up: no login answer for user %d", uid);
		o = json_tokener_parse(line);
		if (o != NULL && json_object_object_get_ex(o, "msgid", &v) &&
		    json_object_get_int(v) == 2)
			break;
		json_object_put(o);
		free(line);
	}
	if (!json_object_object_get_ex(o, "errno", &v) ||
	    json_object_get_int(v) != 0)
		die("group set-up: login of user %d failed: %s", uid, line);
	if (json_object_object_get_ex(o, "groups", &a)) {
		n = json_object_array_length(a);
		for (i = 0; i < n && gid == 0; i++) {
			e = json_tokener_parse(json_object_get_string(
			    json_object_array_get_idx(a, i)));
			if (e != NULL &&
			    json_object_object_get_ex(e, "groupname", &gn) &&
			    strcmp(json_object_get_string(gn), name) == 0 &&
			    json_object_object_get_ex(e, "id", &gi))
				gid = json_object_get_int(gi);
			json_object_put(e);
		}
	}
	json_object_put(o);
	free(line);
	return gid;
}

/*
 * login --token: a resume token for each of the first n users, logged
 * in by password 64 at a time (both workers busy), then logged out.
 */
#define FETCH_CONNS	64

static void
fetch_tokens(long n)
{
	struct lbuf		*lb;
	struct json_object	*o, *v;
	char			 req[256], *line;
	int			 fd[FETCH_CONNS];
	long			 i, j, k;

	lb = xcalloc(FETCH_CONNS, sizeof(*lb));
	tokens = xcalloc((size_t)n, sizeof(*tokens));
	for (k = 0; k < FETCH_CONNS; k++)
		fd[k] = bk_connect((int)(k % O.ntgt));
	for (i = 0; i < n; i += FETCH_CONNS) {
		for (k = 0, j = i; k < FETCH_CONNS && j < n; k++, j++) {
			if (uids[j] == 0)
				continue;	/* a gap in the id file */
			snprintf(req, sizeof(req), "{\"id\":%d,\"msgid\":1,"
			    "\"password\":\"%s\",\"token\":true}\n",
			    (int)uids[j], O.password);
			bk_send(fd[k], req);
		}
		for (k = 0, j = i; k < FETCH_CONNS && j < n; k++, j++) {
			if (uids[j] == 0)
				continue;
			for (o = NULL;;) {
				if ((line = bk_readline(fd[k], &lb[k])) ==
				    NULL)
					die("token set-up: no login answer "
					    "for user %d", (int)uids[j]);
				o = json_tokener_parse(line);
				if (o != NULL && json_object_object_get_ex(o,
				    "msgid", &v) && json_object_get_int(v) == 2)
					break;
				json_object_put(o);
				free(line);
			}
			if (!json_object_object_get_ex(o, "token", &v) ||
			    json_object_get_string_len(v) != BENCH_TOKEN_LEN)
				die("token set-up: login of user %d gave no "
				    "token (token_key_file set?): %.200s",
				    (int)uids[j], line);
			memcpy(tokens[j], json_object_get_string(v),
			    BENCH_TOKEN_LEN + 1);
			json_object_put(o);
			free(line);
			snprintf(req, sizeof(req), "{\"id\":%d,\"msgid\":3}\n",
			    (int)uids[j]);
			bk_send(fd[k], req);
		}
	}
	for (k = 0; k < FETCH_CONNS; k++)
		close(fd[k]);
	free(lb);
}

/* storm -n N [-c C] [--ready FILE] [-d LIMIT]: see chatbench_storm.c */
static int
storm_main(long conc)
{
	struct rlimit	 rl;
	double		 t0 = util_mono_ns() / 1e9;

	if (O.n < 1)
		die("storm: -n N");
	load_ids(O.n);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    (rlim_t)O.n + 128 > rl.rlim_cur)
		die("storm: %ld connections over the descriptor limit %lu",
		    O.n, (unsigned long)rl.rlim_cur);
	signal(SIGPIPE, SIG_IGN);
	nuids = O.n;
	fetch_tokens(O.n);
	if (!O.quiet)
		fprintf(stderr, "set-up: %ld resume tokens, %.1f s\n", O.n,
		    util_mono_ns() / 1e9 - t0);
	return storm_run(&O.tgt[0], (const char (*)[BENCH_TOKEN_LEN + 1])
	    tokens, O.n, conc > 0 ? (int)conc : 256, O.ready,
	    O.dur > 0 ? O.dur : 120, O.quiet) == 0 ? 0 : 1;
}

static void
setup_groups(void)
{
	struct lbuf	*lb = xcalloc(1, sizeof(*lb));
	char		 name[128], req[512], *line;
	int		 g, fd;
	int32_t		 uid, gid;

	group_ids = xcalloc((size_t)O.groups, sizeof(*group_ids));
	for (g = 0; g < O.groups; g++) {
		snprintf(name, sizeof(name), "bench-%s-s%d-g%d", O.prefix,
		    O.gsize, g);
		uid = uids[O.offset + (long)g * O.gsize];
		fd = bk_connect((int)(((long)g * O.gsize) % O.ntgt));
		lb->len = 0;
		if ((gid = bk_login_find(fd, lb, uid, name)) == 0) {
			snprintf(req, sizeof(req), "{\"groupdesc\":\"chatbench"
			    "\",\"groupname\":\"%s\",\"id\":%d,\"msgid\":8}\n"
			    "{\"msgid\":101,\"seq\":7}\n", name, (int)uid);
			bk_send(fd, req);
			while ((line = bk_readline(fd, lb)) != NULL) {
				int64_t m = 0;
				json_int_field(line, strlen(line), "msgid", &m);
				if (m == 100)
					die("creating group %s: %s", name,
					    line);
				free(line);
				if (m == 102)
					break;
			}
			snprintf(req, sizeof(req), "{\"id\":%d,\"msgid\":3}\n",
			    (int)uid);
			bk_send(fd, req);
			gid = bk_login_find(fd, lb, uid, name);
			if (gid == 0)
				die("group %s: created but not in the login "
				    "answer", name);
		}
		group_ids[g] = gid;
		close(fd);
	}
	free(lb);
}

/* ---- output ----------------------------------------------------------- */

static void
json_lat(FILE *f, const struct hist *h)
{
	fprintf(f, "\"latency_us\":{\"n\":%" PRIu64 ",\"mean\":%.1f,"
	    "\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
	    "\"max\":%.1f}", h->n, h->n ? (double)h->sum / h->n / 1e3 : 0.0,
	    h_pct(h, 50) / 1e3, h_pct(h, 90) / 1e3, h_pct(h, 99) / 1e3,
	    h_pct(h, 99.9) / 1e3, h->max / 1e3);
}

static void
write_ids(void)
{
	FILE	*f;
	char	 tmp[PATH_MAX + 8];
	long	 i, n = 0, maxidx = 0;
	int	 k;
	int32_t	*all;

	for (k = 0; k < O.procs; k++)
		for (i = 0; i < (long)gens[k].nids; i++)
			if (gens[k].ids[2 * i] + 1 > maxidx)
				maxidx = gens[k].ids[2 * i] + 1;
	/* keep what the file had: other indexes stay valid */
	if (access(idfile_path(), R_OK) == 0 && !O.raw) {
		long keep = nuids;
		FILE *g = fopen(idfile_path(), "r");
		char line[128];
		long idx, id;
		if (g != NULL) {
			while (fgets(line, sizeof(line), g) != NULL)
				if (sscanf(line, "%ld %ld", &idx, &id) == 2 &&
				    idx >= 0 && idx + 1 > keep)
					keep = idx + 1;
			fclose(g);
		}
		if (keep > maxidx)
			maxidx = keep;
		load_ids(0);
	}
	all = xcalloc((size_t)maxidx + 1, sizeof(*all));
	for (i = 0; i < nuids && i < maxidx; i++)
		all[i] = uids[i];
	for (k = 0; k < O.procs; k++)
		for (i = 0; i < (long)gens[k].nids; i++)
			all[gens[k].ids[2 * i]] = gens[k].ids[2 * i + 1];
	snprintf(tmp, sizeof(tmp), "%s.tmp", idfile_path());
	if ((f = fopen(tmp, "w")) == NULL)
		die("%s: %s", tmp, strerror(errno));
	fprintf(f, "# chatbench users: index id (name bench-%s-INDEX, "
	    "password %s)\n", O.prefix, O.password);
	for (i = 0; i < maxidx; i++)
		if (all[i] != 0) {
			fprintf(f, "%ld %d\n", i, (int)all[i]);
			n++;
		}
	if (fclose(f) != 0 || rename(tmp, idfile_path()) == -1)
		die("%s: %s", idfile_path(), strerror(errno));
	if (!O.quiet)
		fprintf(stderr, "%s: %ld users\n", idfile_path(), n);
	free(all);
}

static void
summary(const struct stats *s, const struct srv *sbase, const struct srv *s0,
    const struct srv *s1, const struct srv *smem, double bench_cpu,
    double setup_s)
{
	double	 secs = s->measured_ns / 1e9, tck = (double)sysconf(_SC_CLK_TCK);
	double	 srv_cpu = (double)(s1->cpu_ticks - s0->cpu_ticks) / tck;
	uint64_t nconn;
	int	 i;

	printf("{\"scenario\":\"%s\",\"mode\":\"%s\",\"targets\":\"%s\","
	    "\"procs\":%d,", scenario_names[O.sc], O.raw ? "raw" : "chatd",
	    O.tgt_str, O.procs);
	switch (O.sc) {
	case SC_CHAT:
		printf("\"pairs\":%d,\"inflight\":%d,\"rate_target\":%.0f,"
		    "\"msg_bytes\":%d,", O.pairs, O.rate > 0 ? 0 : O.inflight,
		    O.rate, O.msglen);
		break;
	case SC_GROUP:
		printf("\"groups\":%d,\"size\":%d,\"inflight\":%d,"
		    "\"msg_bytes\":%d,", O.groups, O.gsize, O.inflight,
		    O.msglen);
		break;
	case SC_IDLE:
		printf("\"conns\":%ld,", O.conns);
		break;
	case SC_LOGIN:
	case SC_REGISTER:
		printf("\"n\":%ld,\"concurrency\":%d,\"keep\":%d,", O.n,
		    O.conc, O.keep);
		break;
	default:
		break;
	}
	printf("\"duration_s\":%.3f,\"setup_s\":%.1f,", secs, setup_s);
	switch (O.sc) {
	case SC_CHAT:
	case SC_GROUP:
		printf("\"%s\":%" PRIu64 ",\"per_s\":%.0f,\"sent\":%" PRIu64
		    ",\"delivered_total\":%" PRIu64 ",",
		    O.sc == SC_GROUP ? "deliveries" : "delivered",
		    s->delivered, secs > 0 ? s->delivered / secs : 0,
		    s->sent, s->delivered_all);
		json_lat(stdout, &s->lat);
		printf(",\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64
		    ",\"misrouted\":%" PRIu64 ",\"reordered\":%" PRIu64
		    ",\"skipped\":%" PRIu64 ",", s->lost, s->dup,
		    s->misrouted, s->reordered, s->skipped);
		break;
	case SC_LOGIN:
		printf("\"logins\":%" PRIu64 ",\"per_s\":%.0f,"
		    "\"already_online\":%" PRIu64 ",\"login_errors\":%"
		    PRIu64 ",", s->logins, secs > 0 ? s->logins / secs : 0,
		    s->login_online, s->login_errors);
		json_lat(stdout, &s->lat);
		printf(",");
		break;
	case SC_REGISTER:
		printf("\"registered\":%" PRIu64 ",\"existing\":%" PRIu64
		    ",\"per_s\":%.0f,\"first_index\":%ld,\"last_index\":%ld,"
		    "\"idfile\":\"%s\",", s->regs, s->regs_existing,
		    secs > 0 ? s->regs / secs : 0, O.offset,
		    O.offset + O.n - 1, idfile_path());
		json_lat(stdout, &s->lat);
		printf(",");
		break;
	case SC_IDLE:
		printf("\"up_at_end\":%" PRIu64 ",", s->conns_up);
		break;
	default:
		break;
	}
	printf("\"conns_failed\":%" PRIu64 ",\"conns_closed\":%" PRIu64
	    ",\"errors\":%" PRIu64 ",", s->conns_failed, s->conns_closed,
	    s->errors);
	nconn = O.sc == SC_IDLE ? s->conns_up : O.sc == SC_CHAT ?
	    (uint64_t)O.pairs * 2 : O.sc == SC_GROUP ?
	    (uint64_t)O.groups * O.gsize : 0;
	printf("\"server\":{\"pids\":%d,\"cpu_s\":%.2f,\"cpu_pct\":%.0f,"
	    "\"rss_kib\":%" PRIu64 ",\"pss_kib\":%" PRIu64 ",\"rss_kib_before"
	    "\":%" PRIu64 ",\"pss_kib_before\":%" PRIu64, smem->npids,
	    srv_cpu, secs > 0 ? 100 * srv_cpu / secs : 0, smem->rss_kib,
	    smem->pss_kib, sbase->rss_kib, sbase->pss_kib);
	if (nconn > 0)
		printf(",\"rss_bytes_per_conn\":%.0f,\"pss_bytes_per_conn\":"
		    "%.0f,\"rss_delta_bytes_per_conn\":%.0f",
		    smem->rss_kib * 1024.0 / nconn,
		    smem->pss_kib * 1024.0 / nconn,
		    ((double)smem->rss_kib - (double)sbase->rss_kib) * 1024.0 /
		    nconn);
	printf("},\"bench_cpu_s\":%.2f,\"ok\":%s}\n", bench_cpu,
	    (s->lost || s->dup || s->misrouted || s->reordered) ? "false" :
	    "true");
	(void)i;
}

/* ---- main ----------------------------------------------------------- */

static void
usage(int code)
{
	FILE	*f = code ? stderr : stdout;

	fprintf(f,
"usage: chatbench [options] SCENARIO [scenario options]\n"
"\n"
"Load generator for chatd(8) speaking the seed protocol (and, with --raw,\n"
"for echorelay, the plain epoll baseline).  Progress on stderr each second,\n"
"one JSON summary on stdout.  Exit status 0, or 1 when messages were lost,\n"
"duplicated, misrouted or reordered, or connections failed; 2 on usage errors.\n"
"\n"
"Options:\n"
"  -t HOST:PORT[,...]  targets (default 127.0.0.1:6000); connection i goes\n"
"                      to target i mod count (pair i: A even, B odd)\n"
"  -P N                generator processes (default 1; use N >= conns/19000)\n"
"  -S A1,A2,...        local source addresses, round robin (127.0.0.2,...);\n"
"                      needed beyond ~28000 connections per target\n"
"  -m PID              server master pid: sample it and its children\n"
"                      (default: every process named chatd, or echorelay\n"
"                      with --raw)\n"
"  -x PREFIX           user names bench-PREFIX-INDEX (default b)\n"
"  -u FILE             id file (default ./chatbench-PREFIX.ids)\n"
"  --password PW       password of the bench users (default benchpw)\n"
"  -o INDEX            first user index used (default 0)\n"
"  -l BYTES            chat message text length (default 64)\n"
"  -W SECONDS          warm-up before the measured window (default 1)\n"
"  -T SECONDS          set-up time limit (default 120)\n"
"  -C N                connects+logins in flight per process in set-up (256)\n"
"  -q                  no progress lines;  -v  verbose\n"
"  --raw               speak echorelay's line protocol (chat scenario only)\n"
"\n"
"Scenarios:\n"
"  register -n N [-c C]        create users 0..N-1 (names taken are looked\n"
"                              up by logging in); writes the id file\n"
"  login -n N -c C [-k] [--token] [-d S]\n"
"                              N logins, C at a time, each on a new\n"
"                              connection (closed with RST) unless -k (log\n"
"                              out and in again on the same connection);\n"
"                              latency from connect to LOGIN_ACK; --token:\n"
"                              with resume tokens (fetched by password\n"
"                              first; chatd needs token_key_file)\n"
"  chat -p PAIRS -w W -d S     closed loop: pair i is user 2i -> 2i+1 with W\n"
"                              messages in flight (newline-framed pipelining)\n"
"  chat -p PAIRS --rate R -d S open loop: R messages/s in total, latency\n"
"                              from the scheduled send time\n"
"  group -g G -s SIZE [-w W] -d S  G groups of SIZE users; member 0 posts\n"
"                              with W messages in flight (default 1); a message\n"
"                              is done when all SIZE-1 others got it\n"
"  storm -n N [-c C] [--ready FILE] [-d LIMIT]\n"
"                              N clients log in with resume tokens (C\n"
"                              at a time, default 256), FILE is made;\n"
"                              restart the server: the time until all N\n"
"                              are logged in again\n"
"  idle -c CONNS -d S          hold CONNS logged-in idle connections; report\n"
"                              how many stay up and server memory per conn\n"
"\n"
"Options may come before or after SCENARIO.\n"
"\n"
"Server figures: sum over the server's processes of RSS and PSS (from\n"
"/proc/PID/smaps_rollup) at the end of the run (during the hold for idle),\n"
"and CPU time (utime+stime) used after the warm-up.  Configure the server\n"
"with password_cost = 1 (set-ups log in thousands of users; the login\n"
"scenario is meant for both costs), rate_limit_rps = 0,\n"
"max_connections_per_ip = 0, idle_timeout = 0 and enough max_connections.\n"
"\n"
"echorelay protocol (--raw): \"L ID\\n\" -> \"OK\\n\"; then each line\n"
"\"TOID text\\n\" is relayed unchanged to the connection logged in as TOID.\n");
	exit(code);
}

static void
parse_targets(const char *s)
{
	char	*dup = strdup(s), *tok, *save = NULL, *colon;

	O.tgt_str = strdup(s);
	O.ntgt = 0;
	for (tok = strtok_r(dup, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (O.ntgt == MAX_TARGETS)
			die("at most %d targets", MAX_TARGETS);
		if ((colon = strrchr(tok, ':')) == NULL)
			die("target %s: expected HOST:PORT", tok);
		*colon = '\0';
		memset(&O.tgt[O.ntgt], 0, sizeof(O.tgt[0]));
		O.tgt[O.ntgt].sin_family = AF_INET;
		O.tgt[O.ntgt].sin_port = htons((uint16_t)atoi(colon + 1));
		if (inet_pton(AF_INET, strcmp(tok, "localhost") == 0 ?
		    "127.0.0.1" : tok, &O.tgt[O.ntgt].sin_addr) != 1)
			die("target %s: not an IPv4 address", tok);
		O.ntgt++;
	}
	free(dup);
}

static void
parse_sources(const char *s)
{
	char	*dup = strdup(s), *tok, *save = NULL;

	for (tok = strtok_r(dup, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (O.nsrc == MAX_SOURCES)
			die("at most %d source addresses", MAX_SOURCES);
		if (inet_pton(AF_INET, tok, &O.src[O.nsrc]) != 1)
			die("source %s: not an IPv4 address", tok);
		O.nsrc++;
	}
	free(dup);
}

static double
num(const char *s, const char *what)
{
	char	*end;
	double	 v = strtod(s, &end);

	if (end == s || *end != '\0' || v < 0)
		die("%s: bad number %s", what, s);
	return v;
}

int
main(int argc, char *argv[])
{
	static const struct option lo[] = {
		{ "raw", no_argument, NULL, 'R' },
		{ "rate", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "password", required_argument, NULL, 'X' },
		{ "token", no_argument, NULL, 'K' },
		{ "ready", required_argument, NULL, 'Y' },
		{ NULL, 0, NULL, 0 }
	};
	struct srv	 sbase, s0, s1, smem;
	struct stats	 s;
	struct rusage	 ru;
	struct rlimit	 rl;
	int		 ch, k, sv[2], status, bad;
	double		 t0, setup_s;
	const char	*scn;
	uint64_t	 prev = 0;
	long		 cval = 0;

	O.procs = 1;
	O.prefix = "b";
	O.password = "benchpw";
	O.inflight = -1;
	O.dur = -1;
	O.msglen = 64;
	O.warmup = 1;
	O.setup_timeout = 120;
	O.setup_conc = SETUP_CONC_DEF;
	O.conc = 0;
	parse_targets("127.0.0.1:6000");

	/* options may come before or after the scenario name */
	while ((ch = getopt_long(argc, argv, "t:P:S:m:x:u:o:l:W:T:C:qvhn:c:p:"
	    "w:d:g:s:k", lo, NULL)) != -1) {
		switch (ch) {
		case 't': parse_targets(optarg); break;
		case 'P': O.procs = (int)num(optarg, "-P"); break;
		case 'S': parse_sources(optarg); break;
		case 'm': O.mpid = (pid_t)num(optarg, "-m"); break;
		case 'x': O.prefix = optarg; break;
		case 'u': O.idfile = optarg; break;
		case 'o': O.offset = (long)num(optarg, "-o"); break;
		case 'l': O.msglen = (int)num(optarg, "-l"); break;
		case 'W': O.warmup = num(optarg, "-W"); break;
		case 'T': O.setup_timeout = num(optarg, "-T"); break;
		case 'C': O.setup_conc = (int)num(optarg, "-C"); break;
		case 'q': O.quiet = 1; break;
		case 'v': O.verbose = 1; break;
		case 'R': O.raw = 1; break;
		case 'r': O.rate = num(optarg, "--rate"); break;
		case 'X': O.password = optarg; break;
		case 'K': O.token = 1; break;
		case 'Y': O.ready = optarg; break;
		case 'n': O.n = (long)num(optarg, "-n"); break;
		case 'c': cval = (long)num(optarg, "-c"); break;
		case 'p': O.pairs = (int)num(optarg, "-p"); break;
		case 'w': O.inflight = (int)num(optarg, "-w"); break;
		case 'd': O.dur = num(optarg, "-d"); break;
		case 'g': O.groups = (int)num(optarg, "-g"); break;
		case 's': O.gsize = (int)num(optarg, "-s"); break;
		case 'k': O.keep = 1; break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (optind != argc - 1)
		usage(2);
	scn = argv[optind];
	if (strcmp(scn, "storm") == 0)
		return storm_main(cval);
	for (k = 1; k <= SC_IDLE; k++)
		if (strcmp(scn, scenario_names[k]) == 0)
			O.sc = (enum scenario)k;
	if (O.sc == SC_NONE)
		die("unknown scenario %s (register login chat group idle)",
		    scn);
	if (O.sc == SC_IDLE)
		O.conns = cval;
	else
		O.conc = (int)cval;
	if (O.procs < 1 || O.procs > MAX_PROCS)
		die("-P: 1..%d", MAX_PROCS);
	if (O.msglen < 0 || O.msglen > 60000)
		die("-l: 0..60000");
	if (O.inflight == -1)
		O.inflight = 1;
	if (O.inflight < 1)
		die("-w: at least 1");
	if (O.dur < 0 && O.sc != SC_REGISTER && O.sc != SC_LOGIN)
		O.dur = 10;
	if (O.raw && O.sc != SC_CHAT)
		die("--raw: chat scenario only");
	O.server_comm = O.raw ? "echorelay" : "chatd";
	switch (O.sc) {
	case SC_REGISTER:
		if (O.n < 1)
			die("register: -n N");
		if (O.conc < 1)
			O.conc = 16;
		O.warmup = 0;
		if (O.dur < 0)
			O.dur = 3600;
		break;
	case SC_LOGIN:
		if (O.n < 1)
			die("login: -n N");
		if (O.conc < 1)
			O.conc = 64;
		load_ids(1);
		O.warmup = 0;
		if (O.dur < 0)
			O.dur = 600;
		break;
	case SC_CHAT:
		if (O.pairs < 1)
			die("chat: -p PAIRS");
		load_ids(O.offset + 2L * O.pairs);
		break;
	case SC_GROUP:
		if (O.groups < 1 || O.gsize < 2)
			die("group: -g GROUPS -s SIZE (SIZE >= 2)");
		load_ids(O.offset + (long)O.groups * O.gsize);
		break;
	case SC_IDLE:
		if (O.conns < 1)
			die("idle: -c CONNS");
		load_ids(O.offset + O.conns);
		break;
	default:
		break;
	}
	if (O.procs > 1 && (O.sc == SC_CHAT && O.pairs < O.procs))
		O.procs = O.pairs;
	if (O.procs > 1 && (O.sc == SC_GROUP && O.groups < O.procs))
		O.procs = O.groups;

	/* every connection is a descriptor */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	{
		long per = (O.sc == SC_IDLE ? O.conns : O.sc == SC_CHAT ?
		    2L * O.pairs : O.sc == SC_GROUP ? (long)O.groups *
		    O.gsize : O.conc) / O.procs + 16;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		    (rlim_t)per > rl.rlim_cur)
			die("%ld connections per process over the descriptor "
			    "limit %lu: use -P %ld or more", per,
			    (unsigned long)rl.rlim_cur,
			    (per * O.procs) / ((long)rl.rlim_cur - 64) + 1);
	}
	signal(SIGPIPE, SIG_IGN);
	/* a stuck run ends anyway */
	alarm((unsigned)(O.setup_timeout + O.warmup + O.dur + 60 +
	    (O.sc == SC_GROUP ? O.groups * 2 : 0)));

	t0 = util_mono_ns() / 1e9;
	if (O.sc == SC_GROUP)
		setup_groups();
	if (O.sc == SC_LOGIN && O.token) {
		fetch_tokens(nuids);
		if (!O.quiet)
			fprintf(stderr, "set-up: %ld resume tokens, %.1f s\n",
			    nuids, util_mono_ns() / 1e9 - t0);
		t0 = util_mono_ns() / 1e9;
	}
	server_sample(&sbase);
	for (k = 0; k < O.procs; k++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ==
		    -1)
			die("socketpair: %s", strerror(errno));
		fflush(NULL);
		switch (gens[k].pid = fork()) {
		case -1:
			die("fork: %s", strerror(errno));
		case 0:
			close(sv[0]);
			alarm((unsigned)(O.setup_timeout + O.warmup + O.dur +
			    60));
			gen_main(k, sv[1], -1);
			_exit(0);
		default:
			close(sv[1]);
			gens[k].fd = sv[0];
		}
	}
	if (parent_wait(O.setup_timeout + 10, all_ready, "setup", t0) == -1)
		fprintf(stderr, "chatbench: set-up did not finish in time\n");
	setup_s = util_mono_ns() / 1e9 - t0;
	sum_stats(&s);
	if (!O.quiet && (O.sc == SC_CHAT || O.sc == SC_GROUP ||
	    O.sc == SC_IDLE))
		fprintf(stderr, "set-up: %" PRIu64 " connections logged in, %"
		    PRIu64 " failed, %.1f s\n", s.conns_up, s.conns_failed,
		    setup_s);
	for (k = 0; k < O.procs; k++)
		write_all(gens[k].fd, "G", 1);
	t0 = util_mono_ns() / 1e9;
	(void)prev;
	/* the server's CPU is counted from the end of the warm-up */
	if (O.warmup > 0)
		parent_wait(O.warmup, all_done, "warmup", t0);
	server_sample(&s0);
	if (O.sc == SC_IDLE) {
		/* memory while the connections are held, near the end */
		parent_wait(O.dur - 0.5, all_done, "run", t0);
		server_sample(&smem);
	}
	parent_wait(O.warmup + O.dur + DRAIN_SECONDS + 30, all_done, "run",
	    t0);
	server_sample(&s1);
	if (O.sc != SC_IDLE)
		smem = s1;
	for (k = 0; k < O.procs; k++) {
		(void)waitpid(gens[k].pid, &status, 0);
		if (!gens[k].done)
			fprintf(stderr, "chatbench: generator %d did not "
			    "report\n", k);
	}
	getrusage(RUSAGE_CHILDREN, &ru);
	sum_stats(&s);
	if (O.sc == SC_REGISTER)
		write_ids();
	summary(&s, &sbase, &s0, &s1, &smem, ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6, setup_s);
	bad = s.lost || s.dup || s.misrouted || s.reordered ||
	    (O.sc != SC_LOGIN && s.conns_failed) || !all_done();
	return bad ? 1 : 0;
}
