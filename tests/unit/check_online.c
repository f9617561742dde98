/*
 * check_online.c - the shared-memory table of online users.
 */

#include <sys/mman.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "online.h"
#include "online_test.h"
#include "util.h"
#include "check_run.h"

static char	errbuf[256];

static void
shm_name(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "/chatd-check-%ld-%s", (long)getpid(), tag);
}

/*
 * A table whose name is gone at once: the mapping lives on, and a
 * failed test leaves nothing in /dev/shm.
 */
static struct online *
table_new(const char *tag, uint32_t capacity, int nslots)
{
	struct online	*o;
	char		 name[64];

	shm_name(name, sizeof(name), tag);
	o = online_create(name, capacity, nslots, errbuf, sizeof(errbuf));
	ck_assert_msg(o != NULL, "online_create: %s", errbuf);
	shm_unlink(name);
	return o;
}

static void
table_ok(struct online *o)
{
	int	used;

	used = online_test_check(o, errbuf, sizeof(errbuf));
	ck_assert_msg(used >= 0, "table broken: %s", errbuf);
	/* Nothing stale is left behind by the operations under test. */
	ck_assert_uint_eq((size_t)used, online_count(o));
}

static uint64_t
rnd(uint64_t *s)
{
	/* xorshift64*: reproducible per seed, fork-safe. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static void
shuffle(uint32_t *v, size_t n, uint64_t seed)
{
	size_t		i, j;
	uint32_t	t;

	for (i = n - 1; i > 0; i--) {
		j = rnd(&seed) % (i + 1);
		t = v[i];
		v[i] = v[j];
		v[j] = t;
	}
}

static void *
shared_alloc(size_t len)
{
	void	*p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	ck_assert(p != MAP_FAILED);
	return p;
}

START_TEST(test_create_args)
{
	struct online	*o;
	char		 name[64], longname[300];

	shm_name(name, sizeof(name), "args");
	errbuf[0] = '\0';
	ck_assert_ptr_null(online_create("nolead", 10, 1, errbuf,
	    sizeof(errbuf)));
	ck_assert(errbuf[0] != '\0');
	ck_assert_ptr_null(online_create("/a/b", 10, 1, errbuf,
	    sizeof(errbuf)));
	ck_assert_ptr_null(online_create("/", 10, 1, errbuf, sizeof(errbuf)));
	ck_assert_ptr_null(online_create(NULL, 10, 1, errbuf, sizeof(errbuf)));
	memset(longname, 'x', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_ptr_null(online_create(longname, 10, 1, errbuf,
	    sizeof(errbuf)));

	errbuf[0] = '\0';
	ck_assert_ptr_null(online_create(name, 0, 1, errbuf, sizeof(errbuf)));
	ck_assert(strstr(errbuf, "capacity") != NULL);
	ck_assert_ptr_null(online_create(name, (1U << 24) + 1, 1, errbuf,
	    sizeof(errbuf)));
	ck_assert_ptr_null(online_create(name, 10, 0, errbuf, sizeof(errbuf)));
	ck_assert(strstr(errbuf, "slots") != NULL);
	ck_assert_ptr_null(online_create(name, 10, ONLINE_MAX_SLOTS + 1,
	    errbuf, sizeof(errbuf)));
	/* A NULL err buffer is allowed. */
	ck_assert_ptr_null(online_create(name, 0, 1, NULL, 0));
	/* Nothing was created by the failures. */
	ck_assert_int_eq(shm_unlink(name), -1);

	o = online_create(name, 1, ONLINE_MAX_SLOTS, errbuf, sizeof(errbuf));
	ck_assert_msg(o != NULL, "%s", errbuf);
	ck_assert_int_eq(online_nslots(o), ONLINE_MAX_SLOTS);
	ck_assert_int_eq(online_add(o, 1, ONLINE_MAX_SLOTS - 1, 1, NULL),
	    ONLINE_ADDED);
	ck_assert_int_eq(online_add(o, 2, 0, 1, NULL), ONLINE_REFUSED);
	online_destroy(o, 1);
	online_destroy(NULL, 1);
}
END_TEST

START_TEST(test_basic)
{
	struct online		*o;
	struct online_entry	 e;

	o = table_new("basic", 1000, 4);
	ck_assert_uint_eq(online_count(o), 0);
	ck_assert_int_eq(online_get(o, 42, &e), -1);
	ck_assert_int_eq(online_add(o, 42, 2, 7, NULL), ONLINE_ADDED);
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(online_get(o, 42, &e), 0);
	ck_assert_uint_eq(e.uid, 42);
	ck_assert_uint_eq(e.slot, 2);
	ck_assert_uint_eq(e.conn, 7);
	ck_assert_uint_eq(e.gen, online_slot_gen(o, 2));
	ck_assert_int_eq(online_get(o, 42, NULL), 0);
	ck_assert_uint_eq(online_count(o), 1);

	/* uid 0 is the empty marker; slots are bounded. */
	ck_assert_int_eq(online_add(o, 0, 0, 1, NULL), ONLINE_REFUSED);
	ck_assert_int_eq(online_get(o, 0, &e), -1);
	ck_assert_int_eq(online_remove(o, 0, 0, 1), -1);
	ck_assert_int_eq(online_add(o, 43, 4, 1, NULL), ONLINE_REFUSED);
	ck_assert_int_eq(online_add(o, UINT32_MAX, 3, 1, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_get(o, UINT32_MAX, &e), 0);
	ck_assert_uint_eq(online_count(o), 2);

	ck_assert_int_eq(online_remove(o, 42, 2, 7), 0);
	ck_assert_int_eq(online_get(o, 42, &e), -1);
	ck_assert_int_eq(online_remove(o, 42, 2, 7), -1);
	ck_assert_uint_eq(online_count(o), 1);
	table_ok(o);
	online_destroy(o, 0);
}
END_TEST

START_TEST(test_duplicate)
{
	struct online		*o;
	struct online_entry	 e;

	o = table_new("dup", 1000, 4);
	ck_assert_int_eq(online_add(o, 5, 1, 100, NULL), ONLINE_ADDED);
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(online_add(o, 5, 3, 200, &e), ONLINE_TAKEN);
	ck_assert_uint_eq(e.uid, 5);
	ck_assert_uint_eq(e.slot, 1);
	ck_assert_uint_eq(e.conn, 100);
	ck_assert_int_eq(online_add(o, 5, 1, 100, NULL), ONLINE_TAKEN);
	ck_assert_int_eq(online_get(o, 5, &e), 0);
	ck_assert_uint_eq(e.slot, 1);
	ck_assert_uint_eq(online_count(o), 1);
	online_destroy(o, 0);
}
END_TEST

START_TEST(test_remove_match)
{
	struct online		*o;
	struct online_entry	 e;

	o = table_new("rmmatch", 1000, 4);
	ck_assert_int_eq(online_add(o, 9, 1, 100, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_remove(o, 9, 1, 101), -1);
	ck_assert_int_eq(online_remove(o, 9, 2, 100), -1);
	ck_assert_int_eq(online_remove(o, 10, 1, 100), -1);
	ck_assert_int_eq(online_get(o, 9, &e), 0);
	ck_assert_int_eq(online_remove(o, 9, 1, 100), 0);
	ck_assert_int_eq(online_get(o, 9, &e), -1);

	/* A late logout of an old session leaves the new one alone. */
	ck_assert_int_eq(online_add(o, 9, 2, 300, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_remove(o, 9, 1, 100), -1);
	ck_assert_int_eq(online_get(o, 9, &e), 0);
	ck_assert_uint_eq(e.conn, 300);
	online_destroy(o, 0);
}
END_TEST

/* A resumed session takes the entry over only while it is unchanged. */
START_TEST(test_replace)
{
	struct online		*o;
	struct online_entry	 old, e;

	o = table_new("replace", 1000, 4);
	ck_assert_int_eq(online_add(o, 9, 1, 100, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_add(o, 9, 2, 200, &old), ONLINE_TAKEN);
	ck_assert_int_eq(online_replace(o, &old, 2, 200), 0);
	ck_assert_int_eq(online_get(o, 9, &e), 0);
	ck_assert_uint_eq(e.slot, 2);
	ck_assert_uint_eq(e.conn, 200);
	/* the old session's late logout finds nothing of its own */
	ck_assert_int_eq(online_remove(o, 9, 1, 100), -1);
	/* a second taker with the same stale view loses */
	ck_assert_int_eq(online_replace(o, &old, 3, 300), -1);
	ck_assert_int_eq(online_get(o, 9, &e), 0);
	ck_assert_uint_eq(e.conn, 200);
	ck_assert_uint_eq(online_count(o), 1);
	ck_assert_int_eq(online_remove(o, 9, 2, 200), 0);
	ck_assert_int_eq(online_replace(o, &e, 3, 300), -1);	/* gone */
	online_destroy(o, 0);
}
END_TEST

START_TEST(test_full)
{
	struct online		*o;
	struct online_entry	 e;
	uint32_t		 uid;

	o = table_new("full", 100, 2);
	for (uid = 1; uid <= 100; uid++)
		ck_assert_int_eq(online_add(o, uid, 0, uid, NULL),
		    ONLINE_ADDED);
	ck_assert_int_eq(online_add(o, 101, 0, 1, NULL), ONLINE_REFUSED);
	ck_assert_int_eq(online_add(o, 101, 1, 1, NULL), ONLINE_REFUSED);
	/* Already online is still reported as such. */
	ck_assert_int_eq(online_add(o, 50, 1, 1, &e), ONLINE_TAKEN);
	ck_assert_uint_eq(e.conn, 50);
	ck_assert_int_eq(online_remove(o, 50, 0, 50), 0);
	ck_assert_int_eq(online_add(o, 101, 1, 1, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_add(o, 102, 1, 1, NULL), ONLINE_REFUSED);
	ck_assert_uint_eq(online_count(o), 100);
	table_ok(o);

	/* After a reset the dead slot's room is free again. */
	online_slot_reset(o, 0);
	ck_assert_uint_eq(online_count(o), 1);
	for (uid = 1000; uid < 1099; uid++)
		ck_assert_int_eq(online_add(o, uid, 1, uid, NULL),
		    ONLINE_ADDED);
	ck_assert_int_eq(online_add(o, 2000, 1, 1, NULL), ONLINE_REFUSED);
	table_ok(o);
	online_destroy(o, 0);

	/* The smallest table. */
	o = table_new("full1", 1, 1);
	ck_assert_int_eq(online_add(o, 3, 0, 1, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_add(o, 4, 0, 1, NULL), ONLINE_REFUSED);
	ck_assert_int_eq(online_remove(o, 3, 0, 1), 0);
	ck_assert_int_eq(online_add(o, 4, 0, 1, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_get(o, 4, NULL), 0);
	online_destroy(o, 0);
}
END_TEST

/* Fill, drop half in random order, check the rest; twice over. */
static void
churn(struct online *o, uint32_t n, uint32_t base, uint64_t seed)
{
	struct online_entry	 e;
	uint32_t		*v, i;
	int			 round;

	v = calloc(n, sizeof(*v));
	ck_assert_ptr_nonnull(v);
	for (i = 0; i < n; i++)
		v[i] = base + i * 7919;		/* spread, not sequential */
	for (i = 0; i < n; i++)
		ck_assert_int_eq(online_add(o, v[i], i % 4, v[i], NULL),
		    ONLINE_ADDED);
	ck_assert_uint_eq(online_count(o), n);
	table_ok(o);

	for (round = 0; round < 2; round++) {
		shuffle(v, n, seed + round);
		for (i = 0; i < n / 2; i++) {
			ck_assert_int_eq(online_get(o, v[i], &e), 0);
			ck_assert_int_eq(online_remove(o, v[i], e.slot,
			    e.conn + 1), -1);
			ck_assert_int_eq(online_remove(o, v[i], e.slot,
			    e.conn), 0);
		}
		for (i = 0; i < n / 2; i++)
			ck_assert_int_eq(online_get(o, v[i], NULL), -1);
		for (i = n / 2; i < n; i++) {
			ck_assert_msg(online_get(o, v[i], &e) == 0,
			    "uid %u lost after deletions", v[i]);
			ck_assert_uint_eq(e.conn, v[i]);
		}
		ck_assert_uint_eq(online_count(o), n - n / 2);
		table_ok(o);
		for (i = 0; i < n / 2; i++)
			ck_assert_int_eq(online_add(o, v[i], i % 4, v[i],
			    NULL), ONLINE_ADDED);
		ck_assert_uint_eq(online_count(o), n);
	}
	for (i = 0; i < n; i++)
		ck_assert_int_eq(online_get(o, v[i], NULL), 0);
	free(v);
}

START_TEST(test_collisions)
{
	struct online	*o;

	/* 64 stripes of 2048 buckets, exactly half full. */
	o = table_new("coll", 65536, 4);
	churn(o, 65536, 1, 1);
	online_destroy(o, 0);

	o = table_new("coll2", 1000, 4);
	churn(o, 1000, 123456, 2);
	online_destroy(o, 0);
}
END_TEST

START_TEST(test_wrap_cluster)
{
	struct online	*o;
	uint32_t	 v[100], uid, i, n = 0;

	/*
	 * Capacity 100 is one stripe of 256 buckets; take uids homed in
	 * the last few so runs wrap to the start.  Should the hash change,
	 * this is still a valid (just less pointed) test.
	 */
	o = table_new("wrap", 100, 1);
	for (uid = 1; n < 100; uid++)
		if ((util_hash32(uid) & 255) >= 250 || (n >= 60 &&
		    (util_hash32(uid) & 255) < 8))
			v[n++] = uid;
	for (i = 0; i < n; i++)
		ck_assert_int_eq(online_add(o, v[i], 0, i + 1, NULL),
		    ONLINE_ADDED);
	table_ok(o);
	shuffle(v, n, 3);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(online_get(o, v[i], NULL), 0);
		ck_assert(online_remove(o, v[i], 0, 0) == -1);
	}
	for (i = 0; i < n; i++) {
		struct online_entry e;

		ck_assert_int_eq(online_get(o, v[i], &e), 0);
		ck_assert_int_eq(online_remove(o, v[i], 0, e.conn), 0);
		if (i % 10 == 0)
			table_ok(o);
		for (uid = i + 1; uid < n; uid++)
			ck_assert_msg(online_get(o, v[uid], NULL) == 0,
			    "uid %u lost", v[uid]);
	}
	ck_assert_uint_eq(online_count(o), 0);
	table_ok(o);
	online_destroy(o, 0);
}
END_TEST

struct visit {
	size_t	n;
	size_t	stop_at;
	uint64_t sum;
};

static int
visit_cb(const struct online_entry *e, void *arg)
{
	struct visit	*v = arg;

	v->n++;
	v->sum += e->uid;
	return v->stop_at != 0 && v->n >= v->stop_at;
}

START_TEST(test_foreach)
{
	struct online	*o;
	struct visit	 v;
	uint32_t	 uid;

	o = table_new("each", 1000, 2);
	for (uid = 1; uid <= 500; uid++)
		ck_assert_int_eq(online_add(o, uid, uid % 2, 1, NULL),
		    ONLINE_ADDED);
	memset(&v, 0, sizeof(v));
	online_foreach(o, visit_cb, &v);
	ck_assert_uint_eq(v.n, 500);
	ck_assert_uint_eq(v.sum, 500 * 501 / 2);

	memset(&v, 0, sizeof(v));
	v.stop_at = 10;
	online_foreach(o, visit_cb, &v);
	ck_assert_uint_eq(v.n, 10);

	/* Stale entries are skipped. */
	online_test_gen_bump(o, 1);
	memset(&v, 0, sizeof(v));
	online_foreach(o, visit_cb, &v);
	ck_assert_uint_eq(v.n, 250);
	ck_assert_uint_eq(v.sum, 250 * 251);	/* the even uids */
	online_destroy(o, 0);
}
END_TEST

START_TEST(test_slot_gen)
{
	struct online		*o;
	struct online_entry	 e;
	uint32_t		 uid, g;
	int			 used;

	o = table_new("gen", 4000, 3);
	g = online_slot_gen(o, 1);
	ck_assert_uint_ne(g, 0);
	ck_assert_uint_eq(online_slot_gen(o, 3), 0);
	for (uid = 1; uid <= 1000; uid++)
		ck_assert_int_eq(online_add(o, uid, 1, uid, NULL),
		    ONLINE_ADDED);
	for (uid = 1001; uid <= 1500; uid++)
		ck_assert_int_eq(online_add(o, uid, 2, uid, NULL),
		    ONLINE_ADDED);

	/* The bump alone hides slot 1 before any sweep. */
	online_test_gen_bump(o, 1);
	ck_assert_uint_eq(online_slot_gen(o, 1), g + 1);
	for (uid = 1; uid <= 1000; uid++)
		ck_assert_int_eq(online_get(o, uid, &e), -1);
	ck_assert_uint_eq(online_count(o), 500);
	used = online_test_check(o, errbuf, sizeof(errbuf));
	ck_assert_msg(used == 1500, "%d: %s", used, errbuf);

	/* Another worker takes over a stale session at once. */
	ck_assert_int_eq(online_add(o, 5, 2, 77, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_get(o, 5, &e), 0);
	ck_assert_uint_eq(e.slot, 2);
	ck_assert_uint_eq(e.conn, 77);
	/* A stale entry is not there to remove. */
	ck_assert_int_eq(online_remove(o, 6, 1, 6), -1);
	/* The slot's new worker logs in with the new generation. */
	ck_assert_int_eq(online_add(o, 6, 1, 600, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_get(o, 6, &e), 0);
	ck_assert_uint_eq(e.gen, g + 1);
	ck_assert_uint_eq(online_count(o), 502);
	used = online_test_check(o, errbuf, sizeof(errbuf));
	ck_assert_msg(used == 1500, "%d: %s", used, errbuf);
	online_destroy(o, 0);
}
END_TEST

START_TEST(test_slot_reset)
{
	struct online			*o;
	struct online_slot_stats	*st;
	struct online_entry		 e;
	uint32_t			 uid, g;

	o = table_new("reset", 4000, 3);
	st = online_slot_stats(o, 1);
	ck_assert_ptr_nonnull(st);
	ck_assert_ptr_null(online_slot_stats(o, 3));
	ck_assert_ptr_ne(st, online_slot_stats(o, 0));
	st->pid = 1234;
	st->connections = 9;
	st->logins = 20;
	st->msgs_in = 300;
	g = online_slot_gen(o, 1);
	ck_assert_uint_eq(st->gen, g);

	for (uid = 1; uid <= 1000; uid++)
		ck_assert_int_eq(online_add(o, uid, uid % 3, uid, NULL),
		    ONLINE_ADDED);
	online_slot_reset(o, 1);
	ck_assert_uint_eq(online_slot_gen(o, 1), g + 1);
	ck_assert_uint_eq(st->gen, g + 1);
	ck_assert_uint_eq(st->connections, 0);
	ck_assert_uint_eq(st->respawns, 1);
	ck_assert_uint_eq(st->logins, 20);
	ck_assert_uint_eq(st->msgs_in, 300);
	ck_assert_int_eq(st->pid, 1234);
	for (uid = 1; uid <= 1000; uid++) {
		if (uid % 3 == 1)
			ck_assert_int_eq(online_get(o, uid, &e), -1);
		else
			ck_assert_int_eq(online_get(o, uid, &e), 0);
	}
	/* Swept, not just hidden: table_ok compares buckets used. */
	table_ok(o);
	ck_assert_uint_eq(online_count(o), 1000 - 334);
	ck_assert_int_eq(online_add(o, 1, 2, 11, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_add(o, 4, 1, 44, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_get(o, 4, &e), 0);
	ck_assert_uint_eq(e.gen, g + 1);
	online_slot_reset(o, 1);
	ck_assert_int_eq(online_get(o, 4, &e), -1);
	ck_assert_uint_eq(st->respawns, 2);
	online_slot_reset(o, 7);	/* out of range: ignored */
	table_ok(o);
	online_destroy(o, 0);
}
END_TEST

START_TEST(test_stats_shared)
{
	struct online			*o;
	struct online_slot_stats	*st;
	pid_t				 pid;
	int				 status, i;

	o = table_new("stats", 100, 2);
	st = online_slot_stats(o, 1);
	if ((pid = fork()) == 0) {
		for (i = 0; i < 1000; i++)
			__atomic_fetch_add(&st->msgs_out, 1, __ATOMIC_RELAXED);
		_exit(online_add(o, 3, 1, 1, NULL) == ONLINE_ADDED ? 0 : 1);
	}
	ck_assert_int_ne(pid, -1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_uint_eq(st->msgs_out, 1000);
	ck_assert_int_eq(online_get(o, 3, NULL), 0);
	online_destroy(o, 0);
}
END_TEST

START_TEST(test_two_tables)
{
	struct online		*a, *b, *c;
	struct online_entry	 e;
	char			 na[64], nb[64];
	int			 fd;

	shm_name(na, sizeof(na), "ta");
	shm_name(nb, sizeof(nb), "tb");
	a = online_create(na, 100, 2, errbuf, sizeof(errbuf));
	ck_assert_msg(a != NULL, "%s", errbuf);
	b = online_create(nb, 100, 2, errbuf, sizeof(errbuf));
	ck_assert_msg(b != NULL, "%s", errbuf);
	ck_assert_int_eq(online_add(a, 1, 0, 10, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_get(b, 1, &e), -1);
	ck_assert_int_eq(online_add(b, 1, 1, 20, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_get(a, 1, &e), 0);
	ck_assert_uint_eq(e.slot, 0);
	ck_assert_uint_eq(e.conn, 10);

	/* Creating a name again replaces it; the old mapping lives on. */
	c = online_create(na, 100, 2, errbuf, sizeof(errbuf));
	ck_assert_msg(c != NULL, "%s", errbuf);
	ck_assert_int_eq(online_get(c, 1, &e), -1);
	ck_assert_int_eq(online_get(a, 1, &e), 0);
	online_destroy(a, 0);

	online_destroy(c, 1);
	fd = shm_open(na, O_RDONLY, 0);
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(online_get(b, 1, &e), 0);
	ck_assert_uint_eq(e.conn, 20);
	online_destroy(b, 1);
	ck_assert_int_eq(shm_open(nb, O_RDONLY, 0), -1);
}
END_TEST

/*
 * Processes hammering one table.  Each owns a uid range nobody else
 * touches and shares another with everyone; own[] and mine[] record
 * the conn of every session it holds (0: none), so each result can be
 * checked exactly, and the parent checks the table against them.
 */
#define NPROC		4
#define OWN		4000
#define SHARED		1000
#define OWN_BASE(k)	(1 + (uint32_t)(k) * 100000)
#define SHARED_BASE	900000

struct proc_book {
	uint32_t	own[OWN];
	uint32_t	mine[SHARED];
	char		why[128];
};

static volatile int	*stop_flag;

static int
hammer(struct online *o, int k, struct proc_book *bk, long ops, uint64_t seed)
{
	struct online_entry	 e;
	uint32_t		 uid, idx, conn = 1, *have;
	uint64_t		 r;
	long			 n;
	enum online_add_result	 added;
	int			 rc, op;

	for (n = 0; ops < 0 ? !*stop_flag : n < ops; n++) {
		r = rnd(&seed);
		op = r % 3;
		conn = conn + 1 ? conn + 1 : 1;
		if ((r >> 8) % 10 < 7) {
			idx = (r >> 16) % OWN;
			uid = OWN_BASE(k) + idx;
			have = &bk->own[idx];
		} else {
			idx = (r >> 16) % SHARED;
			uid = SHARED_BASE + idx;
			have = &bk->mine[idx];
		}
		switch (op) {
		case 0:
			added = online_add(o, uid, k, conn, &e);
			if (*have != 0 ? added == ONLINE_TAKEN &&
			    e.uid == uid && e.slot == k && e.conn == *have :
			    added == ONLINE_ADDED || (added == ONLINE_TAKEN &&
			    uid >= SHARED_BASE && e.uid == uid &&
			    e.slot != k)) {
				if (added == ONLINE_ADDED)
					*have = conn;
				break;
			}
			snprintf(bk->why, sizeof(bk->why), "add %u: rc %d, "
			    "have %u, got slot %u conn %u", uid, (int)added,
			    *have, e.slot, e.conn);
			return -1;
		case 1:
			rc = online_get(o, uid, &e);
			if (*have != 0 ? rc == 0 && e.slot == k &&
			    e.conn == *have :
			    rc == -1 || (uid >= SHARED_BASE && e.slot != k))
				break;
			snprintf(bk->why, sizeof(bk->why), "get %u: rc %d, "
			    "have %u", uid, rc, *have);
			return -1;
		default:
			rc = online_remove(o, uid, k, *have ? *have : conn);
			if (rc == (*have != 0 ? 0 : -1)) {
				*have = 0;
				break;
			}
			snprintf(bk->why, sizeof(bk->why), "remove %u: rc %d, "
			    "have %u", uid, rc, *have);
			return -1;
		}
	}
	return 0;
}

static int
seen_cb(const struct online_entry *e, void *arg)
{
	uint8_t	*seen = arg;

	if (e->uid >= SHARED_BASE)
		seen[OWN_BASE(NPROC) + e->uid - SHARED_BASE]++;
	else
		seen[e->uid]++;
	return 0;
}

/*
 * Check records every ck_assert it passes (a write each), and the books
 * hold ~400,000 items a round: only a failure goes through Check here,
 * or test_kill_chaos spends its time writing (25 s idle, over its 120 s
 * timeout at load 13).
 */
#define BOOK_EXPECT(cond, ...) do {					\
	if (!(cond))							\
		ck_abort_msg(__VA_ARGS__);				\
} while (0)

/* The table holds exactly what the books say, for the live slots. */
static void
check_books(struct online *o, struct proc_book *books, int dead)
{
	struct online_entry	 e;
	uint8_t			*seen;
	size_t			 expect = 0, i;
	uint32_t		 idx, uid, want;
	int			 k, holder, rc;

	for (k = 0; k < NPROC; k++) {
		for (idx = 0; idx < OWN; idx++) {
			uid = OWN_BASE(k) + idx;
			rc = online_get(o, uid, &e);
			want = k == dead ? 0 : books[k].own[idx];
			if (want == 0) {
				BOOK_EXPECT(rc == -1, "own %u of %d (dead %d): "
				    "still in the table", uid, k, dead);
				continue;
			}
			expect++;
			BOOK_EXPECT(rc == 0 && e.slot == (uint32_t)k &&
			    e.conn == want, "own %u of %d: rc %d slot %u "
			    "conn %u, want conn %u", uid, k, rc, e.slot,
			    e.conn, want);
		}
	}
	for (idx = 0; idx < SHARED; idx++) {
		holder = -1;
		for (k = 0; k < NPROC; k++) {
			if (k == dead || books[k].mine[idx] == 0)
				continue;
			BOOK_EXPECT(holder == -1, "shared %u held by %d "
			    "and %d", idx, holder, k);
			holder = k;
		}
		rc = online_get(o, SHARED_BASE + idx, &e);
		if (holder == -1) {
			BOOK_EXPECT(rc == -1, "shared %u: held by nobody, "
			    "still in the table", idx);
			continue;
		}
		expect++;
		BOOK_EXPECT(rc == 0 && e.slot == (uint32_t)holder &&
		    e.conn == books[holder].mine[idx], "shared %u of %d: "
		    "rc %d slot %u conn %u, want conn %u", idx, holder, rc,
		    e.slot, e.conn, books[holder].mine[idx]);
	}
	ck_assert_uint_eq(online_count(o), expect);
	table_ok(o);

	seen = calloc(OWN_BASE(NPROC) + SHARED, 1);
	ck_assert_ptr_nonnull(seen);
	online_foreach(o, seen_cb, seen);
	for (i = 0; i < OWN_BASE(NPROC) + SHARED; i++)
		BOOK_EXPECT(seen[i] <= 1, "seen %zu twice", i);
	free(seen);
}

START_TEST(test_concurrent)
{
	struct online		*o;
	struct proc_book	*books;
	pid_t			 pid[NPROC];
	int			 k, status;

	o = table_new("conc", NPROC * OWN + SHARED, NPROC);
	books = shared_alloc(NPROC * sizeof(*books));
	for (k = 0; k < NPROC; k++) {
		pid[k] = fork();
		ck_assert_int_ne(pid[k], -1);
		if (pid[k] == 0)
			_exit(hammer(o, k, &books[k], 200000, k + 1) ? 1 : 0);
	}
	for (k = 0; k < NPROC; k++) {
		ck_assert_int_eq(waitpid(pid[k], &status, 0), pid[k]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "proc %d: %s", k, books[k].why);
	}
	check_books(o, books, -1);
	online_destroy(o, 0);
}
END_TEST

/*
 * As above, but each round one process is SIGKILLed mid-run, likely
 * inside a critical section now and then, and its slot is reset.
 */
START_TEST(test_kill_chaos)
{
	struct online		*o;
	struct proc_book	*books;
	pid_t			 pid[NPROC];
	int			 k, round, victim, status;

	o = table_new("chaos", NPROC * OWN + SHARED, NPROC);
	books = shared_alloc(NPROC * sizeof(*books));
	stop_flag = shared_alloc(sizeof(*stop_flag));
	for (round = 0; round < 24; round++) {
		victim = round % NPROC;
		*stop_flag = 0;
		for (k = 0; k < NPROC; k++) {
			pid[k] = fork();
			ck_assert_int_ne(pid[k], -1);
			if (pid[k] == 0)
				_exit(hammer(o, k, &books[k], -1,
				    round * NPROC + k + 1) ? 1 : 0);
		}
		usleep(5000 + (round % 5) * 4000);
		kill(pid[victim], SIGKILL);
		ck_assert_int_eq(waitpid(pid[victim], &status, 0),
		    pid[victim]);
		*stop_flag = 1;
		for (k = 0; k < NPROC; k++) {
			if (k == victim)
				continue;
			ck_assert_int_eq(waitpid(pid[k], &status, 0), pid[k]);
			ck_assert_msg(WIFEXITED(status) &&
			    WEXITSTATUS(status) == 0, "round %d proc %d: %s",
			    round, k, books[k].why);
		}
		online_slot_reset(o, victim);
		check_books(o, books, victim);
		memset(&books[victim], 0, sizeof(books[victim]));
	}
	online_destroy(o, 0);
}
END_TEST

static void
spin_ops(struct online *o, int k, uint64_t seed)
{
	uint64_t	r;
	uint32_t	uid;

	while (!*stop_flag) {
		r = rnd(&seed);
		uid = 1 + r % 64;
		switch ((r >> 32) % 3) {
		case 0:
			online_add(o, uid, k, 1, NULL);
			break;
		case 1:
			online_remove(o, uid, k, 1);
			break;
		default:
			online_get(o, uid, NULL);
			break;
		}
	}
	_exit(0);
}

/*
 * Everyone on one stripe, so kills often land on a process queued for
 * the lock or just woken to take it.  The survivors must all stop when
 * told: none may sleep on a free lock because its wakeup died.
 */
START_TEST(test_kill_waiters)
{
	struct online	*o;
	pid_t		 pid[NPROC];
	uint64_t	 seed = 42;
	int		 k, round, victim, status, left, ms;

	o = table_new("waiters", 100, NPROC);
	stop_flag = shared_alloc(sizeof(*stop_flag));
	for (round = 0; round < 200; round++) {
		victim = round % NPROC;
		*stop_flag = 0;
		for (k = 0; k < NPROC; k++) {
			pid[k] = fork();
			ck_assert_int_ne(pid[k], -1);
			if (pid[k] == 0)
				spin_ops(o, k, rnd(&seed) + k);
		}
		usleep(200 + rnd(&seed) % 2000);
		kill(pid[victim], SIGKILL);
		ck_assert_int_eq(waitpid(pid[victim], &status, 0),
		    pid[victim]);
		pid[victim] = 0;
		*stop_flag = 1;
		for (ms = 0; ms < 3000; ms++) {
			for (k = 0, left = 0; k < NPROC; k++) {
				if (pid[k] == 0)
					continue;
				if (waitpid(pid[k], &status, WNOHANG) == pid[k])
					pid[k] = 0;
				else
					left++;
			}
			if (left == 0)
				break;
			usleep(1000);
		}
		for (k = 0; k < NPROC; k++) {
			if (pid[k] == 0)
				continue;
			kill(pid[k], SIGKILL);
			waitpid(pid[k], &status, 0);
			ck_abort_msg("round %d: proc %d stuck on a free lock",
			    round, k);
		}
		online_slot_reset(o, victim);
	}
	table_ok(o);
	online_destroy(o, 0);
}
END_TEST

/* A child that locks uid's stripe (damaging it) and waits to be killed. */
static pid_t
spawn_locker(struct online *o, uint32_t uid, int damage, int *done)
{
	pid_t	pid;
	int	p[2], d;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		close(p[0]);
		d = online_test_lock_stripe(o, uid, damage);
		if (write(p[1], &d, sizeof(d)) != sizeof(d))
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &d, sizeof(d)), sizeof(d));
	close(p[0]);
	if (done != NULL)
		*done = d;
	return pid;
}

static void
kill_wait(pid_t pid)
{
	int	status;

	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

START_TEST(test_dead_holder)
{
	struct online		*o;
	struct online_entry	 e;
	uint32_t		 uid;
	pid_t			 locker, waiter;
	int			 status, done;

	o = table_new("dead", 1000, 2);
	for (uid = 1; uid <= 999; uid++)
		ck_assert_int_eq(online_add(o, uid, 0, uid, NULL),
		    ONLINE_ADDED);

	/* Killed while holding the lock, nobody waiting. */
	locker = spawn_locker(o, 7, 0, &done);
	ck_assert_int_eq(done, 0);
	kill_wait(locker);
	ck_assert_int_eq(online_get(o, 7, &e), 0);
	ck_assert_uint_eq(e.conn, 7);
	ck_assert_int_eq(online_remove(o, 7, 0, 7), 0);
	ck_assert_int_eq(online_add(o, 7, 1, 70, NULL), ONLINE_ADDED);
	for (uid = 1; uid <= 999; uid++)
		ck_assert_int_eq(online_get(o, uid, NULL), 0);
	table_ok(o);

	/* Killed while another process sleeps on the lock. */
	locker = spawn_locker(o, 8, 0, NULL);
	waiter = fork();
	ck_assert_int_ne(waiter, -1);
	if (waiter == 0)
		_exit(online_get(o, 8, &e) == 0 && e.conn == 8 &&
		    online_add(o, 1000, 1, 1, NULL) == ONLINE_ADDED ? 0 : 1);
	usleep(50000);
	ck_assert_int_eq(waitpid(waiter, &status, WNOHANG), 0);
	kill_wait(locker);
	ck_assert_int_eq(waitpid(waiter, &status, 0), waiter);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(online_get(o, 1000, NULL), 0);
	ck_assert_uint_eq(online_count(o), 1000);
	table_ok(o);
	online_destroy(o, 0);
}
END_TEST

static const int damages[] = {
	ONLINE_TEST_DUP, ONLINE_TEST_HALF, ONLINE_TEST_HOLE,
	ONLINE_TEST_DUP | ONLINE_TEST_HALF | ONLINE_TEST_HOLE
};

START_TEST(test_dead_holder_damage)
{
	struct online		*o;
	struct online_entry	 e;
	uint32_t		 uid, target = 77;
	pid_t			 locker;
	int			 done, damage = damages[_i];

	o = table_new("damage", 4000, 2);
	for (uid = 1; uid <= 4000; uid++)
		ck_assert_int_eq(online_add(o, uid, uid % 2, uid, NULL),
		    ONLINE_ADDED);
	locker = spawn_locker(o, target, damage, &done);
	kill_wait(locker);
	ck_assert_int_eq(done, damage);

	/* The next locker repairs the stripe; nothing is lost or doubled. */
	ck_assert_int_eq(online_get(o, target, &e), 0);
	ck_assert_uint_eq(e.conn, target);
	table_ok(o);
	for (uid = 1; uid <= 4000; uid++) {
		ck_assert_msg(online_get(o, uid, &e) == 0, "uid %u lost", uid);
		ck_assert_uint_eq(e.conn, uid);
	}
	ck_assert_uint_eq(online_count(o), 4000);
	ck_assert_int_eq(online_remove(o, target, target % 2, target), 0);
	ck_assert_int_eq(online_get(o, target, &e), -1);
	ck_assert_int_eq(online_add(o, target, 0, 1, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_add(o, 4001, 0, 1, NULL), ONLINE_REFUSED);
	table_ok(o);
	online_destroy(o, 0);
}
END_TEST

Suite *
online_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("online");

	tc = tcase_create("api");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_create_args);
	tcase_add_test(tc, test_basic);
	tcase_add_test(tc, test_duplicate);
	tcase_add_test(tc, test_replace);
	tcase_add_test(tc, test_remove_match);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_foreach);
	tcase_add_test(tc, test_two_tables);
	suite_add_tcase(s, tc);

	tc = tcase_create("table");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_collisions);
	tcase_add_test(tc, test_wrap_cluster);
	tcase_add_test(tc, test_slot_gen);
	tcase_add_test(tc, test_slot_reset);
	tcase_add_test(tc, test_stats_shared);
	suite_add_tcase(s, tc);

	tc = tcase_create("processes");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_concurrent);
	tcase_add_test(tc, test_kill_chaos);
	tcase_add_test(tc, test_kill_waiters);
	tcase_add_test(tc, test_dead_holder);
	tcase_add_loop_test(tc, test_dead_holder_damage, 0,
	    sizeof(damages) / sizeof(damages[0]));
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return check_run(online_suite());
}
