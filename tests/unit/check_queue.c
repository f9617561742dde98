/*
 * check_queue.c - the queue's Lua scripts (src/server/cluster/scripts.c)
 * on a real, private redis-server: an ack names the elements of its
 * batch by reference (length and first bytes), and removes exactly them
 * from the worker's own processing list, whether the batch is P's tail
 * (taken) or head (resumed) or scattered; it never touches what a reaper
 * moved away, even when the worker was only stalled and acks late.
 * Skipped (77) without redis-server, except in CI (CI=true: failed).
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/wait.h>

#include <hiredis/hiredis.h>

#include "ps_int.h"
#include "check_run.h"

static int		 port;
static redisContext	*rc;

/* ---- a private redis-server ---------------------------------------------- */

static int
free_port(void)
{
	struct sockaddr_in	 sin;
	socklen_t		 sl = sizeof(sin);
	int			 fd, p = -1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == 0)
		p = ntohs(sin.sin_port);
	close(fd);
	return p;
}

static pid_t
redis_start(const char *dir)
{
	char	 ps[16];
	pid_t	 pid;

	snprintf(ps, sizeof(ps), "%d", port);
	if ((pid = fork()) == 0) {
#ifdef __linux__
		/* a test run killed midway leaves no server behind */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
		execlp("redis-server", "redis-server", "--port", ps, "--bind",
		    "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
		    dir, "--logfile", "redis.log", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Connected within 20 s (a loaded machine), else NULL. */
static redisContext *
redis_connect(pid_t pid)
{
	struct timeval	 tv = { 5, 0 };
	redisContext	*c;
	redisReply	*r;
	int		 i, st;

	for (i = 0; i < 400; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return NULL;
		if ((c = redisConnectWithTimeout("127.0.0.1", port, tv)) !=
		    NULL && c->err == 0) {
			r = redisCommand(c, "PING");
			if (r != NULL && r->type == REDIS_REPLY_STATUS) {
				freeReplyObject(r);
				return c;
			}
			freeReplyObject(r);
		}
		if (c != NULL)
			redisFree(c);
		usleep(50000);
	}
	return NULL;
}

/* As tests/integ/cluster.py: in CI a missing server is a failure. */
static int
ci(void)
{
	const char	*v = getenv("CI");

	return v != NULL && (strcasecmp(v, "1") == 0 ||
	    strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0);
}

/* ---- helpers ------------------------------------------------------------- */

static void
setup(void)
{
	struct timeval	 tv = { 10, 0 };

	rc = redisConnectWithTimeout("127.0.0.1", port, tv);
	ck_assert(rc != NULL && rc->err == 0);
	freeReplyObject(redisCommand(rc, "FLUSHALL"));
}

static void
teardown(void)
{
	redisFree(rc);
}

/*
 * An element as a node writes one: a version 1 item (64 hex of MAC,
 * then the rest) or a version 2 batch ("v2 <len>:" then an item),
 * tag making the MAC unique, filler making it long.
 */
static char *
elem(int v2, int tag, size_t filler)
{
	char	 item[512], *s;
	size_t	 il;
	int	 hl;

	ck_assert(filler < 300);
	il = (size_t)snprintf(item, sizeof(item), "%064x node 1700000000000 "
	    "ab.0.%d 42 ", tag, tag);
	memset(item + il, 'x', filler);
	il += filler;
	item[il] = '\0';
	ck_assert((s = malloc(il + 32)) != NULL);
	hl = v2 ? snprintf(s, 32, "v2 %zu:", il) : 0;
	memcpy(s + hl, item, il + 1);
	return s;
}

static void
rpush(const char *key, const char *v)
{
	redisReply	*r = redisCommand(rc, "RPUSH %s %s", key, v);

	ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
	freeReplyObject(r);
}

static long long
llen(const char *key)
{
	redisReply	*r = redisCommand(rc, "LLEN %s", key);
	long long	 n;

	ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
	n = r->integer;
	freeReplyObject(r);
	return n;
}

/* The list's elements in order equal want[0..n). */
static void
list_is(const char *key, char *const *want, size_t n)
{
	redisReply	*r = redisCommand(rc, "LRANGE %s 0 -1", key);
	size_t		 i;

	ck_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
	ck_assert_msg(r->elements == n, "%s holds %zu, want %zu", key,
	    r->elements, n);
	for (i = 0; i < n; i++)
		ck_assert_msg(strcmp(r->element[i]->str, want[i]) == 0,
		    "%s[%zu] differs", key, i);
	freeReplyObject(r);
}

/* The batch part of an ack: what[i] NULL deletes b[i], "=" leaves it. */
static void
ack(const char *p, char *const *b, const char *const *what, size_t n)
{
	const char	**a;
	size_t		 *al, i, at = 0;
	char		 (*lens)[24], nb[24];
	redisReply	 *r;

	ck_assert((a = calloc(5 + 3 * n, sizeof(*a))) != NULL);
	ck_assert((al = calloc(5 + 3 * n, sizeof(*al))) != NULL);
	ck_assert((lens = calloc(n + 1, sizeof(*lens))) != NULL);
	a[at++] = "EVAL";
	a[at++] = ps_scripts[SCRIPT_ACK];
	a[at++] = "1";
	a[at++] = p;
	snprintf(nb, sizeof(nb), "%zu", n);
	a[at++] = nb;
	for (i = 0; i < n; i++) {
		snprintf(lens[i], sizeof(lens[i]), "%zu", strlen(b[i]));
		a[at++] = lens[i];
		a[at] = b[i];
		al[at++] = strlen(b[i]) < ACK_PREFIX ? strlen(b[i]) :
		    ACK_PREFIX;
		a[at++] = what != NULL && what[i] != NULL ? what[i] : "";
	}
	for (i = 0; i < at; i++)
		if (al[i] == 0)
			al[i] = strlen(a[i]);
	r = redisCommandArgv(rc, (int)at, a, al);
	ck_assert_msg(r != NULL && r->type == REDIS_REPLY_INTEGER, "ack: %s",
	    r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : "?");
	freeReplyObject(r);
	free(lens);
	free(al);
	free(a);
}

static redisReply *
eval(enum script s, int argc, const char **argv)
{
	const char	*a[8];
	int		 i;

	a[0] = "EVAL";
	a[1] = ps_scripts[s];
	for (i = 0; i < argc; i++)
		a[2 + i] = argv[i];
	return redisCommandArgv(rc, argc + 2, a, NULL);
}

static void
freeall(char **v, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		free(v[i]);
}

#define P	"chatd:q:n1:ab:0:p"
#define Q	"chatd:q:n1:ab:0"
#define P2	"chatd:q:n2:cd:0:p"

/* ---- tests --------------------------------------------------------------- */

/* Taken: P's tail, behind what an earlier batch left there. */
START_TEST(test_tail)
{
	char	*x[2], *b[5];
	size_t	 i;

	for (i = 0; i < 2; i++)
		rpush(P, x[i] = elem(0, 100 + (int)i, 40));
	for (i = 0; i < 5; i++)
		rpush(P, b[i] = elem(i % 2, (int)i, 200));
	ack(P, b, NULL, 5);
	list_is(P, x, 2);
	ack(P, b, NULL, 5);		/* again: nothing */
	list_is(P, x, 2);
	freeall(x, 2);
	freeall(b, 5);
}
END_TEST

/* Resumed: P's head, with more behind it. */
START_TEST(test_head)
{
	char	*b[3], *y[2];
	size_t	 i;

	for (i = 0; i < 3; i++)
		rpush(P, b[i] = elem(1, (int)i, 150));
	for (i = 0; i < 2; i++)
		rpush(P, y[i] = elem(0, 200 + (int)i, 10));
	ack(P, b, NULL, 3);
	list_is(P, y, 2);
	freeall(b, 3);
	freeall(y, 2);
}
END_TEST

/*
 * Kept ones: one re-signed (the old one goes, the new one is pushed
 * once, even when the ack comes twice), one left as it was.
 */
START_TEST(test_keep)
{
	char		*b[3], *fresh = elem(0, 77, 5), *want[2];
	const char	*what[3] = { NULL, NULL, "=" };
	size_t		 i;

	what[1] = fresh;
	for (i = 0; i < 3; i++)
		rpush(P, b[i] = elem(0, (int)i, 90));
	ack(P, b, what, 3);
	want[0] = fresh;
	want[1] = b[2];
	list_is(P, want, 2);
	ack(P, b, what, 3);
	list_is(P, want, 2);
	free(fresh);
	freeall(b, 3);
}
END_TEST

/*
 * Scattered (the batch is neither P's head nor tail, as when an element
 * was left out): found element by element; the one with the same first
 * bytes but another length stays; of twins (the same bytes twice, a
 * publish sent again) one goes.
 */
START_TEST(test_scattered)
{
	char	*b[2], *x, *twin, *longer, *want[3];

	b[0] = elem(0, 1, 100);
	b[1] = elem(0, 2, 100);
	x = elem(0, 3, 100);
	longer = elem(0, 1, 120);	/* b[0]'s first 80 bytes */
	twin = strdup(b[1]);
	ck_assert(memcmp(longer, b[0], ACK_PREFIX) == 0);
	rpush(P, b[0]);
	rpush(P, x);
	rpush(P, longer);
	rpush(P, b[1]);
	rpush(P, twin);
	ack(P, b, NULL, 2);
	want[0] = x;
	want[1] = longer;
	want[2] = twin;
	list_is(P, want, 3);
	freeall(b, 2);
	free(x);
	free(longer);
	free(twin);
}
END_TEST

/*
 * A worker stalled past the reap window (its slot key expired) while it
 * held a taken batch: a reaper moves its P and Q to the reaper's own P;
 * the worker wakes, hands the batch off (a repeat of what the reaper
 * hands off: same smid) and acks it.  Its ack must not remove what the
 * reaper took, nor anything else.
 */
START_TEST(test_stalled_reaped)
{
	char		*b[4], *q, *other;
	const char	*a[4] = { "2", Q, P2, "500" };
	redisReply	*r;
	size_t		 i;

	freeReplyObject(redisCommand(rc, "SET chatd:node:n1 ab"));
	/* no chatd:slot:n1:0: the worker has not announced itself */
	for (i = 0; i < 4; i++)
		rpush(P, b[i] = elem(i == 2, (int)i, 120));
	rpush(Q, q = elem(0, 50, 10));
	rpush(P2, other = elem(0, 60, 10));
	r = eval(SCRIPT_REAP, 4, a);
	ck_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
	ck_assert_int_eq(r->elements, 5);
	freeReplyObject(r);
	ck_assert_int_eq(llen(P), 0);
	ack(P, b, NULL, 4);			/* the late ack */
	ck_assert_int_eq(llen(P), 0);
	ck_assert_int_eq(llen(P2), 6);		/* all it held and took */
	{
		char	*want[6] = { other, b[0], b[1], b[2], b[3], q };

		list_is(P2, want, 6);
	}
	/* awake again, it takes new items: the late ack leaves them */
	freeReplyObject(redisCommand(rc, "SET chatd:slot:n1:0 1"));
	rpush(P, q);
	ack(P, b, NULL, 4);
	list_is(P, &q, 1);
	freeall(b, 4);
	free(q);
	free(other);
}
END_TEST

/* A reaper took only the head of the batch: the ack takes the rest. */
START_TEST(test_partly_reaped)
{
	char		*b[5];
	const char	*a[4] = { "2", Q, P2, "2" };
	redisReply	*r;
	size_t		 i;

	freeReplyObject(redisCommand(rc, "SET chatd:node:n1 ab"));
	for (i = 0; i < 5; i++)
		rpush(P, b[i] = elem(0, (int)i, 30));
	r = eval(SCRIPT_REAP, 4, a);
	ck_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
	ck_assert_int_eq(r->elements, 2);
	freeReplyObject(r);
	ack(P, b, NULL, 5);
	ck_assert_int_eq(llen(P), 0);
	list_is(P2, b, 2);
	freeall(b, 5);
}
END_TEST

/* A 100-element batch (POP_BATCH_N) of 200-byte items: one call. */
START_TEST(test_full_batch)
{
	char	*b[POP_BATCH_N], *x = elem(0, 999, 10);
	size_t	 i;

	rpush(P, x);
	for (i = 0; i < POP_BATCH_N; i++)
		rpush(P, b[i] = elem(0, (int)i, 130));
	ack(P, b, NULL, POP_BATCH_N);
	list_is(P, &x, 1);
	freeall(b, POP_BATCH_N);
	free(x);
}
END_TEST

static Suite *
queue_suite(void)
{
	Suite	*s = suite_create("queue");
	TCase	*tc = tcase_create("scripts");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tail);
	tcase_add_test(tc, test_head);
	tcase_add_test(tc, test_keep);
	tcase_add_test(tc, test_scattered);
	tcase_add_test(tc, test_stalled_reaped);
	tcase_add_test(tc, test_partly_reaped);
	tcase_add_test(tc, test_full_batch);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	char	 dir[] = "/tmp/check_queue.XXXXXX", cmd[64];
	pid_t	 pid;
	int	 rv, st;

	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(dir) == NULL || (port = free_port()) == -1)
		return EXIT_FAILURE;
	pid = redis_start(dir);
	if (pid == -1 || (rc = redis_connect(pid)) == NULL) {
		fprintf(stderr, "check_queue: redis-server did not start\n");
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
		}
		rmdir(dir);
		return ci() ? EXIT_FAILURE : 77;
	}
	redisFree(rc);
	rc = NULL;
	rv = check_run(queue_suite());
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		rv = EXIT_FAILURE;
	return rv;
}
