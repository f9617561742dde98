/* storeq.c - store calls off the worker's loop (see storeq.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "storeq.h"

struct storeq {
	struct workq	*wq;
	struct store	**st;		/* one per thread */
	int		 n;
};

struct storeq *
storeq_new(const char *spec, const struct store_opts *opts, int nthreads,
    char *err, size_t errlen)
{
	struct storeq		*q;
	struct store_opts	 o;
	char			 serr[256];

	if (nthreads < 1)
		nthreads = 1;
	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->st = calloc(nthreads, sizeof(*q->st))) == NULL) {
		snprintf(err, errlen, "store queue: %s", strerror(errno));
		free(q);
		return NULL;
	}
	/* a thread makes one call at a time: one connection is enough */
	if (opts != NULL)
		o = *opts;
	else
		memset(&o, 0, sizeof(o));
	o.pool_init = o.pool_max = 1;
	for (q->n = 0; q->n < nthreads; q->n++)
		if ((q->st[q->n] = store_open(spec, &o, serr,
		    sizeof(serr))) == NULL) {
			snprintf(err, errlen, "store queue: %s", serr);
			storeq_free(q);
			return NULL;
		}
	if ((q->wq = workq_new(nthreads, (void *const *)q->st, serr,
	    sizeof(serr))) == NULL) {
		snprintf(err, errlen, "store queue: %s", serr);
		storeq_free(q);
		return NULL;
	}
	return q;
}

void
storeq_free(struct storeq *q)
{
	int	 i;

	if (q == NULL)
		return;
	workq_free(q->wq);
	for (i = 0; i < q->n; i++)
		store_close(q->st[i]);
	free(q->st);
	free(q);
}

int
storeq_fd(const struct storeq *q)
{
	return workq_fd(q->wq);
}

void
storeq_submit(struct storeq *q, struct workq_job *job)
{
	workq_submit(q->wq, job);
}

void
storeq_submit_idle(struct storeq *q, struct workq_job *job)
{
	workq_submit_idle(q->wq, job);
}

void
storeq_complete(struct storeq *q)
{
	workq_complete(q->wq);
}

size_t
storeq_pending(const struct storeq *q)
{
	return workq_pending(q->wq);
}
