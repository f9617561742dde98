/* chatbench.h - what chatbench.c and its storm scenario share. */
#ifndef CHATBENCH_H
#define CHATBENCH_H

#include <netinet/in.h>
#include <stdint.h>

#define BENCH_TOKEN_LEN	106		/* a resume token's text */

/*
 * storm: n clients log in with their resume tokens (tokens[i], "" for
 * none), conc connects and logins in flight at most.  Once all are in,
 * ready (a path) is created; the server is then restarted by someone
 * else.  Every client logs in again as soon as it can (jittered
 * backoff while the port is closed).  Prints one JSON object with the
 * time from the first drop until all n are back; gives up after
 * limit_s.  0 when all came back, -1 otherwise.
 */
int	storm_run(const struct sockaddr_in *tgt, const char (*tokens)[
	    BENCH_TOKEN_LEN + 1], long n, int conc, const char *ready,
	    double limit_s, int quiet);

#endif
