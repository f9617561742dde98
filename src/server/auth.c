/* auth.c - yescrypt password hashes and the thread pool that runs them. */
#include "config.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "auth.h"
#include "util.h"

int
auth_hash(const char *pw, size_t pwlen, int cost, char *out, size_t outlen)
{
	struct crypt_data	*cd;
	char			 salt[CRYPT_GENSALT_OUTPUT_SIZE];
	char			*pwz, *h;
	int			 rc = -1;

	/* crypt(3) takes C strings: a NUL inside would cut the password */
	if (memchr(pw, '\0', pwlen) != NULL || outlen == 0)
		return -1;
	if (crypt_gensalt_rn("$y$", cost, NULL, 0, salt, sizeof(salt)) == NULL)
		return -1;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return -1;
	if ((pwz = util_memdupz(pw, pwlen)) == NULL) {
		free(cd);
		return -1;
	}
	h = crypt_r(pwz, salt, cd);
	if (h != NULL && h[0] == '$' && strlen(h) < outlen) {
		memcpy(out, h, strlen(h) + 1);
		rc = 0;
	}
	explicit_bzero(pwz, pwlen);
	free(pwz);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return rc;
}

enum auth_result
auth_verify(const char *pw, size_t pwlen, const char *hash)
{
	struct crypt_data	*cd;
	char			*pwz, *h;
	size_t			 i, hl;
	unsigned char		 diff = 0;
	enum auth_result	 rc = AUTH_FAIL;

	if (memchr(pw, '\0', pwlen) != NULL)
		return AUTH_MISMATCH;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return AUTH_FAIL;
	if ((pwz = util_memdupz(pw, pwlen)) == NULL) {
		free(cd);
		return AUTH_FAIL;
	}
	h = crypt_r(pwz, hash, cd);
	if (h != NULL && h[0] == '$') {
		hl = strlen(hash);
		if (strlen(h) != hl)
			diff = 1;
		else
			for (i = 0; i < hl; i++)
				diff |= (unsigned char)(h[i] ^ hash[i]);
		rc = diff == 0 ? AUTH_OK : AUTH_MISMATCH;
	}
	explicit_bzero(pwz, pwlen);
	free(pwz);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return rc;
}

const char *
auth_dummy_hash(int cost)
{
	static char	 dummy[AUTH_HASH_MAX];
	static int	 dummy_cost = -1;

	if (dummy_cost != cost) {
		if (auth_hash("chatd-no-such-user", 18, cost, dummy,
		    sizeof(dummy)) == -1)
			return "$y$j9T$invalid$invalid";
		dummy_cost = cost;
	}
	return dummy;
}

struct authpool {
	pthread_mutex_t	  mu;
	pthread_cond_t	  cv;
	struct auth_job	 *todo, **todo_tail;
	struct auth_job	 *finished;		/* LIFO; reversed when completed */
	int		  stop;
	size_t		  queued;		/* submitted, not yet started */
	uint64_t	  avg_us;		/* running mean of one job's time */
	int		  efd;
	int		  nthreads;
	pthread_t	 *threads;
};

static uint64_t
now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void *
authpool_main(void *arg)
{
	struct authpool	*p = arg;
	struct auth_job	*job;
	uint64_t	 one = 1, t0, t1;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->todo == NULL && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->todo == NULL && p->stop)
			break;
		job = p->todo;
		p->todo = job->next;
		if (p->todo == NULL)
			p->todo_tail = &p->todo;
		p->queued--;
		pthread_mutex_unlock(&p->mu);
		t0 = now_us();

		if (job->kind == AUTH_HASH)
			job->result = auth_hash(job->pw, job->pwlen, job->cost,
			    job->hash, sizeof(job->hash)) == 0 ? AUTH_OK :
			    AUTH_FAIL;
		else
			job->result = auth_verify(job->pw, job->pwlen, job->hash);

		t1 = now_us();
		pthread_mutex_lock(&p->mu);
		/* a mean over about the last 8 jobs */
		p->avg_us = p->avg_us == 0 ? t1 - t0 :
		    (p->avg_us * 7 + (t1 - t0)) / 8;
		job->next = p->finished;
		p->finished = job;
		/* a full counter only means the loop is already woken */
		(void)!write(p->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct authpool *
authpool_new(int nthreads, char *err, size_t errlen)
{
	struct authpool	*p;
	int		 i, e;

	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->threads = calloc(nthreads, sizeof(pthread_t))) == NULL) {
		snprintf(err, errlen, "authpool: %s", strerror(errno));
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->todo_tail = &p->todo;
	if ((p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		snprintf(err, errlen, "authpool eventfd: %s", strerror(errno));
		free(p->threads);
		free(p);
		return NULL;
	}
	for (i = 0; i < nthreads; i++) {
		if ((e = pthread_create(&p->threads[i], NULL, authpool_main,
		    p)) != 0) {
			snprintf(err, errlen, "authpool thread: %s",
			    strerror(e));
			p->nthreads = i;
			authpool_free(p);
			return NULL;
		}
	}
	p->nthreads = nthreads;
	return p;
}

void
authpool_free(struct authpool *p)
{
	int	 i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	authpool_complete(p);
	close(p->efd);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->threads);
	free(p);
}

int
authpool_fd(const struct authpool *p)
{
	return p->efd;
}

void
authpool_submit(struct authpool *p, struct auth_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&p->mu);
	*p->todo_tail = job;
	p->todo_tail = &job->next;
	p->queued++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

int
authpool_wait_ms(struct authpool *p, size_t *queued)
{
	uint64_t	 us;

	pthread_mutex_lock(&p->mu);
	*queued = p->queued;
	/* before the first hash: guess 10 ms (yescrypt at cost 5) */
	us = (p->avg_us == 0 ? 10000 : p->avg_us) * (p->queued + 1) /
	    (uint64_t)(p->nthreads > 0 ? p->nthreads : 1);
	pthread_mutex_unlock(&p->mu);
	return us / 1000 > INT32_MAX ? INT32_MAX : (int)(us / 1000);
}

void
authpool_complete(struct authpool *p)
{
	struct auth_job	*list, *rev = NULL, *job;
	uint64_t	 n;

	(void)!read(p->efd, &n, sizeof(n));
	pthread_mutex_lock(&p->mu);
	list = p->finished;
	p->finished = NULL;
	pthread_mutex_unlock(&p->mu);
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
		job->done(job);
	}
}
