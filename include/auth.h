/*
 * auth.h - password hashes, and a small thread pool that computes them
 * off the worker's event loop so one slow hash never stalls the other
 * connections of that worker.
 */
#ifndef CHATD_AUTH_H
#define CHATD_AUTH_H

#include <stddef.h>

#include "workq.h"

/* yescrypt ("$y$...") through libxcrypt; cost 1..11. */
#define AUTH_HASH_MAX	256

enum auth_result {
	AUTH_OK,		/* hashed; or the password matches */
	AUTH_MISMATCH,		/* verify: the password does not match */
	AUTH_FAIL		/* out of memory or a bad hash: no answer */
};

/* Hash password into out (NUL-terminated).  0 or -1. */
int	auth_hash(const char *pw, size_t pwlen, int cost, char *out,
	    size_t outlen);
/* Compares in constant time. */
enum auth_result auth_verify(const char *pw, size_t pwlen,
	    const char *hash);
/* Something to verify against when the user does not exist, so the
 * answer takes as long either way. */
const char *auth_dummy_hash(int cost);

enum auth_kind { AUTH_HASH, AUTH_VERIFY };

struct auth_job {
	struct workq_job wj;		/* authpool's */
	enum auth_kind	 kind;
	char		*pw;		/* owned by the job's creator */
	size_t		 pwlen;
	int		 cost;
	char		 hash[AUTH_HASH_MAX];	/* in for VERIFY, out for HASH */
	enum auth_result result;	/* HASH: AUTH_OK or AUTH_FAIL */
	void		(*done)(struct auth_job *);
	void		*arg;
};

struct authpool;

/* Start nthreads threads (after fork).  NULL with err on failure. */
struct authpool *authpool_new(int nthreads, char *err, size_t errlen);
/* Runs what is queued, completes it, then stops the threads. */
void	authpool_free(struct authpool *p);
/* Becomes readable when finished jobs are waiting for authpool_complete. */
int	authpool_fd(const struct authpool *p);
/* Queue a job; its done() runs later in the loop thread. */
void	authpool_submit(struct authpool *p, struct auth_job *job);
/*
 * Jobs waiting for a thread (*queued), and about how many milliseconds
 * a job submitted now would wait for its result.
 */
int	authpool_wait_ms(struct authpool *p, size_t *queued);
/* In the loop thread: run done() of every finished job. */
void	authpool_complete(struct authpool *p);

#endif
