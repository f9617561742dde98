/*
 * chatbench_parent.c - the parent: samples the server's processes in
 * /proc, reads the generators' reports and prints progress, and sets up
 * the groups and resume tokens over blocking connections.
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

void
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
struct gen	 gens[MAX_PROCS];

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

void
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

void
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
int
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

int
all_ready(void)
{
	int	 i;

	for (i = 0; i < O.procs; i++)
		if (!gens[i].ready)
			return 0;
	return 1;
}

int
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

void
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
int
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

void
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

