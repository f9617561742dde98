/*
 * chatbench.h - what the files of chatbench share: the options, the
 * generators' state and reports, and the functions of each file.
 * chatbench.c: options, helpers and main; chatbench_conn.c: a
 * generator's connections and requests; chatbench_scenario.c: the
 * scenarios; chatbench_gen.c: a generator process; chatbench_parent.c:
 * the parent's sampling, progress and set-up; chatbench_report.c: the
 * histogram and the summary; chatbench_storm.c: the storm scenario.
 */
#ifndef CHATBENCH_H
#define CHATBENCH_H

#include <sys/types.h>

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_TOKEN_LEN	106		/* a resume token's text */

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

struct opts {
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
};

extern struct opts	 O;

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
	int		 edge;		/* EPOLLET: a one-request login connection */
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
/* ---- server sampling (/proc) ---------------------------------------- */

struct srv {
	int		 npids;
	uint64_t	 cpu_ticks;
	uint64_t	 rss_kib;
	uint64_t	 pss_kib;
};

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

/* chatbench.c */
extern const char *const scenario_names[];
extern char		(*tokens)[BENCH_TOKEN_LEN + 1];
extern int32_t		*uids;
extern long		 nuids;
void		 die(const char *, ...)
		    __attribute__((noreturn, format(printf, 1, 2)));
void		*xcalloc(size_t n, size_t sz);
void		*xrealloc(void *p, size_t sz);
size_t		 fmt_u64(char *p, uint64_t v);
int		 scan_u64(const char **pp, const char *end, uint64_t *out);
int		 json_int_field(const char *line, size_t len,
		    const char *key, int64_t *out);
const char	*idfile_path(void);
void		 load_ids(long need);
int		 user_name(char *p, size_t len, long idx);

/* chatbench_report.c */
static inline int
h_index(uint64_t v)
{
	int	 e, i;

	if (v < H_LIN)
		return (int)v;
	e = 63 - __builtin_clzll(v);
	i = H_LIN + (e - 6) * H_SUB + (int)((v >> (e - 5)) & (H_SUB - 1));
	return i < H_BUCKETS ? i : H_BUCKETS - 1;
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

void		 h_merge(struct hist *to, const struct hist *from);
uint64_t	 h_pct(const struct hist *h, double pct);
void		 write_ids(void);
void		 summary(const struct stats *s, const struct srv *sbase,
		    const struct srv *s0, const struct srv *s1,
		    const struct srv *smem, double bench_cpu, double setup_s);

/* chatbench_gen.c */
void		 write_all(int fd, const void *p, size_t n);
void		 report(uint32_t type);
void		 gen_main(int k, int fd, int ready_fd_unused);

/* chatbench_conn.c: the generator's state */
extern int		 ep;
extern struct stats	 ST;
extern char		*rbuf;
extern int		 sending;	/* closed loop may send */
extern int		 measuring;
extern uint64_t		 measure_t0, measure_t1;
extern long		 setup_pending;	/* conns not yet READY or DEAD */
extern long		 nretry;	/* conns in CS_RETRY */
extern int		 gen_index;
extern struct pair	*pairs;
extern int		 npairs;
extern struct group	*groups_g;
extern int		 ngroups_g;
extern int32_t		*group_ids;	/* from the parent, by group number */
extern struct bc	**conns;
extern long		 nconns;
/* register/login scenario work queue */
extern long		 work_next, work_end, work_step;
extern int32_t		*reg_ids;	/* register: result by local index */
extern long		 reg_base;
extern char		 pad_chars[65536];
void		 bc_out(struct bc *c, const char *p, size_t n);
void		 bc_epoll(struct bc *c, int out);
void		 bc_flush(struct bc *c);
void		 flush_all(void);
void		 bc_close(struct bc *c, int failed);
void		 bc_drop(struct bc *c);
void		 bc_connect(struct bc *c);
void		 send_login(struct bc *c);
void		 send_reg(struct bc *c);
void		 send_chat(struct bc *c, int32_t toid, int32_t gid, uint64_t seq,
		    uint64_t t);

/* chatbench_scenario.c */
void		 pair_send(struct pair *p, uint64_t t);
void		 group_send(struct group *g, uint64_t t);
void		 next_work(struct bc *c);
void		 loop_once(int timeout_ms);

/* chatbench_parent.c */
extern struct gen	 gens[MAX_PROCS];
void		 server_sample(struct srv *s);
void		 sum_stats(struct stats *s);
void		 progress(double t, const struct stats *s, uint64_t *prev,
		    const char *phase);
int		 parent_wait(double limit, int (*pred)(void),
		    const char *phase, double t0);
int		 all_ready(void);
int		 all_done(void);
void		 fetch_tokens(long n);
int		 storm_main(long conc);
void		 setup_groups(void);

/* chatbench_storm.c */
/*
 * storm: n clients log in with their resume tokens (toks[i], "" for
 * none), conc connects and logins in flight at most.  Once all are in,
 * ready (a path) is created; the server is then restarted by someone
 * else.  Every client logs in again as soon as it can (jittered
 * backoff while the port is closed).  Prints one JSON object with the
 * time from the first drop until all n are back; gives up after
 * limit_s.  0 when all came back, -1 otherwise.
 */
int	storm_run(const struct sockaddr_in *tgt, const char (*toks)[
	    BENCH_TOKEN_LEN + 1], long n, int conc, const char *ready,
	    double limit_s, int quiet);

#endif
