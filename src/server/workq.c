/* workq.c - threads that run jobs off the event loop (see workq.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "workq.h"

struct workq_thread {
	struct workq	*q;
	void		*ctx;
	pthread_t	 tid;
};

struct workq {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct workq_job	*todo, **todo_tail;
	struct workq_job	*idle, **idle_tail;	/* when todo is empty */
	struct workq_job	*finished;	/* LIFO; reversed when completed */
	int			 stop;
	size_t			 queued;	/* submitted, not yet started */
	uint64_t		 avg_us;	/* running mean of one job's time */
	int			 efd;
	int			 nthreads;
	struct workq_thread	*threads;
	size_t			 pending;	/* loop thread only */
};

static uint64_t
now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The next job (mu held): the first of todo, else of idle; NULL: none. */
static struct workq_job *
take(struct workq *q)
{
	struct workq_job	*job;

	if ((job = q->todo) != NULL) {
		if ((q->todo = job->next) == NULL)
			q->todo_tail = &q->todo;
	} else if ((job = q->idle) != NULL) {
		if ((q->idle = job->next) == NULL)
			q->idle_tail = &q->idle;
	} else
		return NULL;
	q->queued--;
	return job;
}

static void *
workq_main(void *arg)
{
	struct workq_thread	*t = arg;
	struct workq		*q = t->q;
	struct workq_job	*job;
	uint64_t		 one = 1, t0, t1;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (q->todo == NULL && q->idle == NULL && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if ((job = take(q)) == NULL)
			break;		/* stopped, nothing left */
		pthread_mutex_unlock(&q->mu);
		t0 = now_us();

		job->run(job, t->ctx);

		t1 = now_us();
		pthread_mutex_lock(&q->mu);
		/* a mean over about the last 8 jobs */
		q->avg_us = q->avg_us == 0 ? t1 - t0 :
		    (q->avg_us * 7 + (t1 - t0)) / 8;
		/*
		 * Only the first of a run of finished jobs wakes the loop:
		 * the loop takes the whole list after reading the counter,
		 * so a list that was not empty has its wake-up pending.
		 */
		job->next = q->finished;
		q->finished = job;
		if (job->next == NULL)
			(void)!write(q->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

struct workq *
workq_new(int nthreads, void *const *ctx, char *err, size_t errlen)
{
	struct workq	*q;
	int		 i, e;

	if (nthreads < 1)
		nthreads = 1;
	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->threads = calloc(nthreads, sizeof(*q->threads))) == NULL) {
		snprintf(err, errlen, "threads: %s", strerror(errno));
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->todo_tail = &q->todo;
	q->idle_tail = &q->idle;
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		free(q->threads);
		free(q);
		return NULL;
	}
	for (i = 0; i < nthreads; i++) {
		q->threads[i].q = q;
		q->threads[i].ctx = ctx != NULL ? ctx[i] : NULL;
		if ((e = pthread_create(&q->threads[i].tid, NULL, workq_main,
		    &q->threads[i])) != 0) {
			snprintf(err, errlen, "thread: %s", strerror(e));
			q->nthreads = i;
			workq_free(q);
			return NULL;
		}
	}
	q->nthreads = nthreads;
	return q;
}

void
workq_free(struct workq *q)
{
	struct workq_job	*job;
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
		workq_complete(q);
		if ((q->todo == NULL && q->idle == NULL) || q->nthreads == 0)
			break;
		while ((job = take(q)) != NULL) {
			job->run(job, q->threads[0].ctx);
			job->next = q->finished;
			q->finished = job;
		}
	}
	close(q->efd);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q->threads);
	free(q);
}

int
workq_fd(const struct workq *q)
{
	return q->efd;
}

static void
submit(struct workq *q, struct workq_job *job, struct workq_job ***tail)
{
	job->next = NULL;
	q->pending++;
	pthread_mutex_lock(&q->mu);
	**tail = job;
	*tail = &job->next;
	q->queued++;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

void
workq_submit(struct workq *q, struct workq_job *job)
{
	submit(q, job, &q->todo_tail);
}

void
workq_submit_idle(struct workq *q, struct workq_job *job)
{
	submit(q, job, &q->idle_tail);
}

void
workq_complete(struct workq *q)
{
	struct workq_job	*list, *rev = NULL, *job;
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

int
workq_load(struct workq *q, size_t *queued, uint64_t *avg_us)
{
	pthread_mutex_lock(&q->mu);
	*queued = q->queued;
	*avg_us = q->avg_us;
	pthread_mutex_unlock(&q->mu);
	return q->nthreads;
}

size_t
workq_pending(const struct workq *q)
{
	return q->pending;
}
