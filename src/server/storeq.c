/* storeq.c - store calls off the worker's loop (see storeq.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "store.h"
#include "storeq.h"

struct storeq_thread {
	struct storeq	*q;
	struct store	*st;
	pthread_t	 tid;
};

struct storeq {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct storeq_job	*todo, **todo_tail;
	struct storeq_job	*finished;	/* LIFO; reversed when completed */
	int			 stop;
	int			 efd;
	int			 nthreads;
	struct storeq_thread	*threads;
	size_t			 pending;	/* loop thread only */
};

static void *
storeq_main(void *arg)
{
	struct storeq_thread	*t = arg;
	struct storeq		*q = t->q;
	struct storeq_job	*job;
	uint64_t		 one = 1;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (q->todo == NULL && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->todo == NULL && q->stop)
			break;
		job = q->todo;
		q->todo = job->next;
		if (q->todo == NULL)
			q->todo_tail = &q->todo;
		pthread_mutex_unlock(&q->mu);

		job->run(job, t->st);

		pthread_mutex_lock(&q->mu);
		job->next = q->finished;
		q->finished = job;
		/* a full counter only means the loop is already woken */
		(void)!write(q->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

struct storeq *
storeq_new(const char *spec, const struct store_opts *opts, int nthreads,
    char *err, size_t errlen)
{
	struct storeq		*q;
	struct store_opts	 o;
	char			 serr[256];
	int			 i, e;

	if (nthreads < 1)
		nthreads = 1;
	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->threads = calloc(nthreads, sizeof(*q->threads))) == NULL) {
		snprintf(err, errlen, "store queue: %s", strerror(errno));
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->todo_tail = &q->todo;
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		snprintf(err, errlen, "store queue eventfd: %s",
		    strerror(errno));
		free(q->threads);
		free(q);
		return NULL;
	}
	/* a thread makes one call at a time: one connection is enough */
	if (opts != NULL)
		o = *opts;
	else
		memset(&o, 0, sizeof(o));
	o.pool_init = o.pool_max = 1;
	for (i = 0; i < nthreads; i++) {
		q->threads[i].q = q;
		if ((q->threads[i].st = store_open(spec, &o, serr,
		    sizeof(serr))) == NULL) {
			snprintf(err, errlen, "store queue: %s", serr);
			break;
		}
		if ((e = pthread_create(&q->threads[i].tid, NULL, storeq_main,
		    &q->threads[i])) != 0) {
			snprintf(err, errlen, "store queue thread: %s",
			    strerror(e));
			store_close(q->threads[i].st);
			break;
		}
	}
	q->nthreads = i;
	if (i < nthreads) {
		storeq_free(q);
		return NULL;
	}
	return q;
}

void
storeq_free(struct storeq *q)
{
	struct storeq_job	*job;
	int			 i;

	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	for (i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i].tid, NULL);
	/* a done() may still submit: run that here, in order */
	for (;;) {
		storeq_complete(q);
		if (q->todo == NULL || q->nthreads == 0)
			break;
		while ((job = q->todo) != NULL) {
			q->todo = job->next;
			job->run(job, q->threads[0].st);
			job->next = q->finished;
			q->finished = job;
		}
		q->todo_tail = &q->todo;
	}
	for (i = 0; i < q->nthreads; i++)
		store_close(q->threads[i].st);
	close(q->efd);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q->threads);
	free(q);
}

int
storeq_fd(const struct storeq *q)
{
	return q->efd;
}

void
storeq_submit(struct storeq *q, struct storeq_job *job)
{
	job->next = NULL;
	q->pending++;
	pthread_mutex_lock(&q->mu);
	*q->todo_tail = job;
	q->todo_tail = &job->next;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

void
storeq_complete(struct storeq *q)
{
	struct storeq_job	*list, *rev = NULL, *job;
	uint64_t		 n;

	(void)!read(q->efd, &n, sizeof(n));
	pthread_mutex_lock(&q->mu);
	list = q->finished;
	q->finished = NULL;
	pthread_mutex_unlock(&q->mu);
	/* finish in submission order as far as the threads allow */
	while (list != NULL) {
		job = list;
		list = job->next;
		job->next = rev;
		rev = job;
	}
	while (rev != NULL) {
		job = rev;
		rev = job->next;
		q->pending--;
		job->done(job);
	}
}

size_t
storeq_pending(const struct storeq *q)
{
	return q->pending;
}
