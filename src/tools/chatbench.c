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

const char *const scenario_names[] = {
	"none", "register", "login", "chat", "group", "idle"
};

struct opts	 O;

/* login --token, storm: each user's resume token, by index into uids */
char		(*tokens)[BENCH_TOKEN_LEN + 1];

/* ---- small helpers ---------------------------------------------------- */

void
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

void *
xcalloc(size_t n, size_t sz)
{
	void	*p;

	if ((p = calloc(n ? n : 1, sz)) == NULL)
		die("out of memory");
	return p;
}

void *
xrealloc(void *p, size_t sz)
{
	if ((p = realloc(p, sz ? sz : 1)) == NULL)
		die("out of memory");
	return p;
}

/* Decimal digits of v into p (no NUL); returns the length. */
size_t
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
int
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
int
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

/* ---- users ----------------------------------------------------------- */

int32_t	*uids;
long	 nuids;

const char *
idfile_path(void)
{
	static char	 path[PATH_MAX];

	if (O.idfile != NULL)
		return O.idfile;
	snprintf(path, sizeof(path), "chatbench-%s.ids", O.prefix);
	return path;
}

void
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

int
user_name(char *p, size_t len, long idx)
{
	return snprintf(p, len, "bench-%s-%ld", O.prefix, idx);
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

	free(O.tgt_str);		/* -t replaces the default */
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
