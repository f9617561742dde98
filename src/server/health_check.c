/*
 * health_check.c - a worker's storage check (health.h), run in a store
 * thread: a ping on the loop would stop every connection of the worker
 * for the whole client timeout when the database's link is down (no
 * answer, no reset), which is what the check is there to report.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "health.h"
#include "log.h"
#include "online.h"
#include "store.h"
#include "storeq.h"
#include "util.h"

/* a ping every 2 s; unanswered for 3 s counts as "storage unreachable" */
#define CHECK_EVERY_MS	2000
#define CHECK_LATE_MS	3000

struct check_job {
	struct workq_job		 sj;
	struct online_slot_stats	*st;
	int				 ok;
	char				*err;
};

static struct check_job	*pending;	/* at most one at a time */
static uint64_t		 pending_since;	/* or when the last one was sent */

static void
check_run(struct workq_job *sj, void *ctx)
{
	struct check_job	*j = (struct check_job *)sj;
	struct store		*st = ctx;

	j->ok = store_ping(st) == 0;
	if (!j->ok)
		j->err = strdup(store_error(st));
}

static void
check_done(struct workq_job *sj)
{
	struct check_job	*j = (struct check_job *)sj;
	int			 was = __atomic_load_n(&j->st->store_ok,
				    __ATOMIC_RELAXED);

	if (!j->ok && was != 0)
		log_warnx("storage does not answer: %s", j->err != NULL ?
		    j->err : "out of memory");
	else if (j->ok && was == 0)
		log_notice("storage answers again");
	health_note(&j->st->store_ok, &j->st->store_down_since, j->ok);
	pending = NULL;
	free(j->err);
	free(j);
}

void
health_store_check(struct online_slot_stats *st, struct storeq *q)
{
	struct check_job	*j;
	uint64_t		 now = util_mono_ms();

	if (pending != NULL) {
		if (now - pending_since > CHECK_LATE_MS &&
		    __atomic_load_n(&st->store_ok, __ATOMIC_RELAXED) != 0) {
			log_warnx("storage does not answer within %d s",
			    CHECK_LATE_MS / 1000);
			health_note(&st->store_ok, &st->store_down_since, 0);
		}
		return;
	}
	if (pending_since != 0 && now - pending_since < CHECK_EVERY_MS)
		return;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return;			/* checked again next time */
	j->st = st;
	j->sj.run = check_run;
	j->sj.done = check_done;
	pending = j;
	pending_since = now;
	storeq_submit(q, &j->sj);
}
