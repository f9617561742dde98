/*
 * chatbench_gen.c - a generator process: builds its share of the
 * connections, sets them up, waits for the parent's GO, runs the
 * scenario and reports to the parent over the socketpair.
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

static int	 ctl_fd = -1;		/* generator side of the socketpair */

void
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

void
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

void
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

