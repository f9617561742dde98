/*
 * chat_histspool.c - a worker's history rows through its spool file
 * (histspool.h), so that a backlog waits on disk, not in memory.
 *
 * On a saturated node the history thread runs at SCHED_IDLE and gets
 * almost no CPU (histprio.h): its backlog is then the whole run (100k+
 * chats a second).  Held in memory, back-pressure would stop senders
 * within a second; in the spool it waits up to history_spool_max.  The
 * write thread (normal priority, chat.storeq) appends each batch the
 * loop hands it in one write(); the history thread takes a batch,
 * stores it and marks it done, one take job at a time, each followed by
 * the next while rows wait.  Rows a previous run left (a crash, an
 * upgrade) are taken first; store_history_add leaves a row kept before
 * as it is, so a batch taken twice is harmless.
 *
 * The spool opens at the first heartbeat, and again at each while it
 * cannot (a binary upgrade's old worker holds its lock till it exits);
 * meanwhile, and when an append fails, rows go the memory way.  An
 * append that would pass history_spool_max (EFBIG) waits, with every
 * batch after it, until takes have made room; senders are held before
 * that (chat_histspool_full).
 *
 * A busy worker defers its takes (spool_defer): even at SCHED_IDLE the
 * history thread's work costs live delivery in a burst (the caches it
 * fills, a hyperthread sibling or the host CPUs a VM shares), so while
 * the loop thread wanted more than SP_BUSY_SHARE of a CPU, rows wait
 * in the spool for up to history_defer seconds, or half of
 * history_spool_max, whichever comes first; then the thread takes its
 * idle share as before until the loop is quiet again.  Nobody waits on
 * a deferral: while a read (on any worker of the cluster: chat_barrier.c),
 * an account deletion or held senders wait for the thread, its takes
 * go on.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "chat_impl.h"
#include "histspool.h"
#include "log.h"
#include "store.h"
#include "storeq.h"
#include "util.h"

#define SP_ROWS_MIN	16	/* rows per take, adapted to its time */
#define SP_ROWS_START	256
#define SP_ROWS_MAX	16384
#define SP_FAST		0.05	/* seconds: a full take this quick doubles */
#define SP_SLOW		0.2	/* one this slow halves */
#define SP_SYNC_SEC	1.0	/* fdatasync the spool this often, at most */
#define SP_RETRY_SEC	60.0	/* a batch the store refuses is tried this long */
#define SP_BUSY_SHARE	0.25	/* CPU the loop wants that makes a worker busy */
#define SP_BUSY_WINDOW	0.2	/* seconds, at least, the share is taken over */
#define SP_QUIET_SEC	1.0	/* quiet this long ends a deferral */

static struct histspool	*sp;
static int		 sp_off;	/* "none", or no place for it */
static int		 sp_warned;	/* the open's failure was logged */
static uint64_t		 sp_replay;	/* appended at open: the last run's end */
static size_t		 sp_rows = SP_ROWS_START;
static int		 sp_taking;	/* a take job is queued or runs */
static int		 sp_closing;	/* the worker exits: no more takes
					 * (read by the history thread) */
static double		 sp_synced;	/* write thread only */
static struct append_job *sp_wait;	/* appends waiting for room, FIFO */
static struct append_job **sp_wait_tail = &sp_wait;
static int		 sp_retrying;	/* sp_wait's first is in the queue */
static size_t		 sp_appending;	/* append jobs submitted, not done */
static double		 sp_busy_at;	/* when the loop's CPU time was read */
static double		 sp_busy_cpu;	/* CPU seconds the loop wanted by then */
static int		 sp_busy;	/* the loop was busy in that window */
static double		 sp_busy_since;	/* the loop busy since; 0: quiet */
static double		 sp_quiet_since; /* the loop quiet since; 0: busy */
static int		 sp_deferring;	/* takes wait for a quiet loop */
static double		 sp_deferred_at; /* since when */

/* "<prefix>.<slot>": NULL when none is to be used (or no memory). */
static char *
spool_path(void)
{
	const char	*pre = chat.cfg->history_spool, *st = chat.cfg->storage;
	char		*p;
	size_t		 n;

	if (pre != NULL && strcmp(pre, "none") == 0)
		return NULL;
	if (pre == NULL && st != NULL && strncmp(st, "sqlite:", 7) == 0 &&
	    strcmp(st + 7, ":memory:") != 0) {
		n = strlen(st + 7) + 32;
		if ((p = malloc(n)) != NULL)
			snprintf(p, n, "%s-spool.%d", st + 7, chat.slot);
		return p;
	}
	if (pre == NULL)
		pre = LOCALSTATEDIR "/lib/chatd/history-spool";
	n = strlen(pre) + 16;
	if ((p = malloc(n)) != NULL)
		snprintf(p, n, "%s.%d", pre, chat.slot);
	return p;
}

/* Appends go to the spool (not once the worker exits: its queue goes). */
int
chat_histspool_on(void)
{
	return sp != NULL && !sp_closing;
}

static void	spool_kick(void);

void
chat_histspool_open(void)
{
	char		*path;
	uint64_t	 left;

	if (sp != NULL || sp_off || sp_closing ||
	    chat.storeq_hist == NULL || chat.storeq == NULL)
		return;
	if ((path = spool_path()) == NULL) {
		sp_off = 1;
		return;
	}
	if ((sp = histspool_open(path, chat.cfg->history_spool_max)) == NULL) {
		/* held by the worker this one succeeds: try at the next tick */
		if (errno != EWOULDBLOCK && !sp_warned)
			log_warn("history spool %s (history kept in memory "
			    "meanwhile)", path);
		sp_warned = 1;
		free(path);
		return;
	}
	sp_replay = histspool_appended(sp);
	/* not the done prefix the last run left: that is not stored again */
	if ((left = histspool_pending(sp)) > 0)
		log_notice("history spool %s: %llu bytes left by the last run "
		    "are stored first", path, (unsigned long long)left);
	free(path);
	spool_kick();
}

/*
 * Whether senders are to wait for the spool (full: what it holds and
 * held, the bytes still in memory, past 15/16 of history_spool_max),
 * or may not go on yet (!full: past 3/4).
 */
int
chat_histspool_full(int full, size_t held)
{
	uint64_t	 max = chat.cfg->history_spool_max;

	if (sp == NULL)
		return 0;
	return histspool_pending(sp) + held > (full ? max / 16 * 15 :
	    max / 4 * 3);
}

/* ---- appends, in the write thread ---- */

struct append_job {
	struct workq_job	 sj;
	struct store_hist	*rows;
	char			*text;
	size_t			 n, bytes;
	int			 err;		/* errno, or 0 */
	struct append_job	*next;		/* in sp_wait */
};

/* The first append waiting for room tries again (after a take). */
static void
spool_retry(void)
{
	if (sp_wait == NULL || sp_retrying || !chat_histspool_on())
		return;
	sp_retrying = 1;
	sp_wait->err = 0;
	sp_appending++;
	storeq_submit(chat.storeq, &sp_wait->sj);
}

static void
append_run(struct workq_job *sj, void *ctx)
{
	struct append_job	*j = (struct append_job *)sj;
	double			 now;

	(void)ctx;
	if (histspool_append(sp, j->rows, j->n) == -1) {
		j->err = errno;
		return;
	}
	/* a crash keeps what write() took; a power loss this much */
	now = util_mono();
	if (now - sp_synced >= SP_SYNC_SEC) {
		(void)histspool_sync(sp);
		sp_synced = now;
	}
}

static void
append_done(struct workq_job *sj)
{
	struct append_job	*j = (struct append_job *)sj;

	sp_appending--;
	if (j == sp_wait && sp_retrying) {
		sp_retrying = 0;
		if (j->err == EFBIG && !sp_closing)
			return;		/* still no room: the next take */
		if ((sp_wait = j->next) == NULL)
			sp_wait_tail = &sp_wait;
	} else if (j->err == EFBIG && chat_histspool_on()) {
		/* no room: it waits (and what follows it) for takes */
		j->next = NULL;
		*sp_wait_tail = j;
		sp_wait_tail = &j->next;
		spool_kick();
		return;
	}
	if (j->err != 0) {
		/* the memory way: stored by the history thread all the same */
		log_warnx("history spool: %zu messages go the memory way: %s",
		    j->n, strerror(j->err));
		chat_history_direct(j->rows, j->text, j->n, j->bytes);
	} else {
		chat_history_out(j->n, j->bytes);
		chat_history_recycle(j->rows, j->text);
		spool_kick();
	}
	free(j);
	if (sp_closing)
		chat_histspool_closing();	/* the rest from memory */
	else
		spool_retry();
}

int
chat_histspool_append(struct store_hist *rows, char *text, size_t n,
    size_t bytes)
{
	struct append_job	*j;

	if (!chat_histspool_on() || (j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->rows = rows;
	j->text = text;
	j->n = n;
	j->bytes = bytes;
	j->sj.run = append_run;
	j->sj.done = append_done;
	if (sp_wait != NULL) {
		/* behind those waiting for room, in order */
		*sp_wait_tail = j;
		sp_wait_tail = &j->next;
		return 0;
	}
	sp_appending++;
	storeq_submit(chat.storeq, &j->sj);
	return 0;
}

/* ---- takes, in the history thread ---- */

struct take_job {
	struct workq_job	 sj;
	size_t			 max;
	size_t			 n;		/* rows taken */
	size_t			 fresh;		/* of them this run's */
	int			 err;		/* the take's errno */
	char			*serr;		/* the store's error */
	double			 secs;
};

/*
 * Store a taken batch.  Its rows stay in the spool until done, so while
 * the store fails (a database restarting, a lock held past the busy
 * timeout) the batch is tried again, for SP_RETRY_SEC.  NULL: stored
 * (or *left: the worker exits meanwhile, and the next start takes the
 * batch again); else the store's last error, allocated.
 */
static char *
spool_store(struct store *st, const struct histspool_batch *b, int *left)
{
	struct timespec	 ts;
	double		 end = util_mono() + SP_RETRY_SEC, wait = 0.1;

	while (store_history_add(st, b->v, b->n) != STORE_OK) {
		if (__atomic_load_n(&sp_closing, __ATOMIC_RELAXED)) {
			*left = 1;
			return NULL;
		}
		if (util_mono() + wait > end)
			return strdup(store_error(st));
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(wait * 1e9);
		nanosleep(&ts, NULL);
		wait = wait * 2 < 0.8 ? wait * 2 : 0.8;
	}
	return NULL;
}

static void
take_run(struct workq_job *sj, void *ctx)
{
	struct take_job		*j = (struct take_job *)sj;
	struct histspool_batch	 b;
	struct store		*st = ctx;
	uint64_t		 at;
	size_t			 i;
	int			 left = 0;
	double			 t0 = util_mono();

	memset(&b, 0, sizeof(b));
	if (histspool_take(sp, j->max, &b) == -1) {
		j->err = errno;
		return;
	}
	/* rows that end within what the last run left are not this run's */
	at = histspool_stored(sp);
	for (i = 0; i < b.n; i++) {
		at += HISTSPOOL_HDR + b.v[i].len;
		if (at > sp_replay)
			j->fresh++;
	}
	j->n = b.n;
	if (b.n > 0 && (j->serr = spool_store(st, &b, &left)) == NULL &&
	    left) {
		histspool_batch_free(&b);
		j->n = j->fresh = 0;
		j->secs = util_mono() - t0;
		return;
	}
	/* stored, or logged as not kept after the retries: either way done */
	if (histspool_done(sp, &b) == -1)
		j->err = errno;
	j->secs = util_mono() - t0;
}

static void
take_done(struct workq_job *sj)
{
	struct take_job	*j = (struct take_job *)sj;

	if (j->err != 0)
		log_warnx("history spool: %s", strerror(j->err));
	if (j->serr != NULL)
		log_warnx("history: %zu messages not kept: %s", j->n, j->serr);
	if (j->secs < SP_FAST && j->n == sp_rows && sp_rows < SP_ROWS_MAX)
		sp_rows *= 2;
	else if (j->secs > SP_SLOW && sp_rows > SP_ROWS_MIN)
		sp_rows /= 2;
	sp_taking = 0;
	spool_retry();
	chat_history_stored(j->fresh);
	/*
	 * Nothing pending and nothing on its way: every row appended was
	 * stored or given up (a damaged record): no read may wait for more.
	 */
	if (histspool_pending(sp) == 0 && sp_appending == 0 && sp_wait == NULL)
		chat_history_settle();
	/* a take that failed waits for the next append to try again */
	if (j->n > 0 || j->err == 0)
		spool_kick();
	free(j->serr);
	free(j);
}

/*
 * The loop thread's time on a CPU plus waiting for one (seconds): from
 * /proc/thread-self/schedstat, so that a loop starved by other work
 * counts as busy too; its CPU time alone where that file is missing.
 */
static double
loop_wanted_cpu(void)
{
	static int	 fd = -2;
	struct timespec	 ts;
	char		 b[96];
	unsigned long long on, wait;
	ssize_t		 n;

	if (fd == -2)
		fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && (n = pread(fd, b, sizeof(b) - 1, 0)) > 0) {
		b[n] = '\0';
		if (sscanf(b, "%llu %llu", &on, &wait) == 2)
			return (on + wait) / 1e9;
	}
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == -1)
		return 0;
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Whether the loop thread wanted SP_BUSY_SHARE of a CPU lately. */
static int
spool_busy(double now)
{
	double	 cpu;

	if (now - sp_busy_at < SP_BUSY_WINDOW)
		return sp_busy;
	cpu = loop_wanted_cpu();
	sp_busy = sp_busy_at > 0 &&
	    cpu - sp_busy_cpu >= SP_BUSY_SHARE * (now - sp_busy_at);
	sp_busy_at = now;
	sp_busy_cpu = cpu;
	return sp_busy;
}

/*
 * Whether takes wait for now: the loop is busy, nobody waits for the
 * history thread, and the backlog is within its bounds (the loop busy
 * for less than history_defer seconds, half the spool).  Once a bound
 * is passed the takes go on until the loop has been quiet again.
 */
static int
spool_defer(void)
{
	double		 now;
	const char	*why = NULL;

	if (chat.cfg->history_defer <= 0 && !sp_deferring)
		return 0;
	now = util_mono();
	if (spool_busy(now)) {
		sp_quiet_since = 0;
		if (sp_busy_since == 0)
			sp_busy_since = now;
	} else if (sp_quiet_since == 0)
		sp_quiet_since = now;
	/*
	 * a pause in the load (a client's round trip, a stall) is not the
	 * end of it: takes started then would run on into the load's next
	 * second
	 */
	if (sp_quiet_since != 0 &&
	    (!sp_deferring || now - sp_quiet_since >= SP_QUIET_SEC)) {
		sp_busy_since = 0;
		why = "the worker is quiet";
	} else if (chat_history_awaited())
		why = "a read waits";
	else if (sp_quiet_since == 0 &&
	    histspool_pending(sp) > chat.cfg->history_spool_max / 2)
		why = "half of history_spool_max";
	else if (sp_quiet_since == 0 &&
	    now - sp_busy_since >= chat.cfg->history_defer)
		why = "history_defer";
	if (why == NULL) {
		if (!sp_deferring) {
			sp_deferred_at = now;
			log_info("history: deferred while the worker is busy "
			    "(history_defer %d s)", chat.cfg->history_defer);
		}
		sp_deferring = 1;
		return 1;
	}
	if (sp_deferring) {
		sp_deferring = 0;
		log_info("history: stored again after %.1f s deferred while "
		    "the worker was busy (%s), %llu bytes spooled",
		    now - sp_deferred_at, why,
		    (unsigned long long)histspool_pending(sp));
	}
	return 0;
}

/* The next take when rows wait, none is under way and none deferred. */
static void
spool_kick(void)
{
	struct take_job	*j;

	if (sp == NULL || sp_taking || sp_closing ||
	    histspool_pending(sp) == 0 || spool_defer() ||
	    (j = calloc(1, sizeof(*j))) == NULL)
		return;
	j->max = sp_rows;
	j->sj.run = take_run;
	j->sj.done = take_done;
	sp_taking = 1;
	storeq_submit(chat.storeq_hist, &j->sj);
}

/* The heartbeat, and a boost: a deferred take may go now. */
void
chat_histspool_kick(void)
{
	spool_kick();
}

/* The worker exits: appends waiting for room are stored from memory. */
void
chat_histspool_closing(void)
{
	struct append_job	*j;

	__atomic_store_n(&sp_closing, 1, __ATOMIC_RELAXED);
	while (!sp_retrying && (j = sp_wait) != NULL) {
		if ((sp_wait = j->next) == NULL)
			sp_wait_tail = &sp_wait;
		chat_history_direct(j->rows, j->text, j->n, j->bytes);
		free(j);
	}
}

/* After the store queues are freed: what is pending waits in the file. */
void
chat_histspool_close(void)
{
	if (sp == NULL)
		return;
	if (histspool_pending(sp) > 0)
		log_info("history spool: %llu bytes left for the next start",
		    (unsigned long long)histspool_pending(sp));
	(void)histspool_sync(sp);
	histspool_close(sp);
	sp = NULL;
}
