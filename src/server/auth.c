/* auth.c - yescrypt password hashes and the thread pool that runs them. */
#include "config.h"

#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A thin layer on workq.h: hash jobs in, done() back on the loop. */
struct authpool {
	struct workq	*wq;
};

static void
auth_run(struct workq_job *wj, void *ctx)
{
	struct auth_job	*job = (struct auth_job *)wj;

	if (job->kind == AUTH_HASH)
		job->result = auth_hash(job->pw, job->pwlen, job->cost,
		    job->hash, sizeof(job->hash)) == 0 ? AUTH_OK : AUTH_FAIL;
	else
		job->result = auth_verify(job->pw, job->pwlen, job->hash);
}

static void
auth_done(struct workq_job *wj)
{
	struct auth_job	*job = (struct auth_job *)wj;

	job->done(job);
}

struct authpool *
authpool_new(int nthreads, char *err, size_t errlen)
{
	struct authpool	*p;
	char		 werr[128];

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errlen, "authpool: %s", strerror(errno));
		return NULL;
	}
	if ((p->wq = workq_new(nthreads, NULL, werr, sizeof(werr))) == NULL) {
		snprintf(err, errlen, "authpool: %s", werr);
		free(p);
		return NULL;
	}
	return p;
}

void
authpool_free(struct authpool *p)
{
	if (p == NULL)
		return;
	workq_free(p->wq);
	free(p);
}

int
authpool_fd(const struct authpool *p)
{
	return workq_fd(p->wq);
}

void
authpool_submit(struct authpool *p, struct auth_job *job)
{
	job->wj.run = auth_run;
	job->wj.done = auth_done;
	workq_submit(p->wq, &job->wj);
}

int
authpool_wait_ms(struct authpool *p, size_t *queued)
{
	uint64_t	 us, avg;
	int		 n;

	n = workq_load(p->wq, queued, &avg);
	/* before the first hash: guess 10 ms (yescrypt at cost 5) */
	us = (avg == 0 ? 10000 : avg) * (*queued + 1) /
	    (uint64_t)(n > 0 ? n : 1);
	return us / 1000 > INT32_MAX ? INT32_MAX : (int)(us / 1000);
}

void
authpool_complete(struct authpool *p)
{
	workq_complete(p->wq);
}
