/*
 * check_online.c - the shared-memory table of online users: its
 * operations, one process at a time (check_online_proc.c: several,
 * and crashes).
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
#include "check_online.h"

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
 * A leaving mark (ONLINE_LEAVING: a logout whose removals are under
 * way): away for lookups, counts and listings; a new login finds it
 * (ONLINE_TAKEN) and may replace it; its worker removes it.
 */
START_TEST(test_leaving_mark)
{
	struct online		*o;
	struct online_entry	 e;

	o = table_new("leave", 64, 2);
	ck_assert_int_eq(online_add(o, 7, 0, 3, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_get(o, 7, &e), 0);
	/* a session is no mark, nor is no entry */
	ck_assert_int_eq(online_get_leaving(o, 7, &e), -1);
	ck_assert_int_eq(online_get_leaving(o, 8, &e), -1);
	ck_assert_int_eq(online_replace(o, &e, 0, ONLINE_LEAVING), 0);
	/* away for everyone who looks, a mark for who asks for one */
	ck_assert_int_eq(online_get(o, 7, &e), -1);
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(online_get_leaving(o, 7, &e), 0);
	ck_assert_uint_eq(e.uid, 7);
	ck_assert_uint_eq(e.slot, 0);
	ck_assert_uint_eq(e.conn, ONLINE_LEAVING);
	ck_assert_uint_eq(online_count(o), 0);
	/* the old session's late removal finds nothing of its own */
	ck_assert_int_eq(online_remove(o, 7, 0, 3), -1);
	/* a login on the other slot sees the mark */
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(online_add(o, 7, 1, 9, &e), ONLINE_TAKEN);
	ck_assert_uint_eq(e.conn, ONLINE_LEAVING);
	ck_assert_uint_eq(e.slot, 0);
	/* its worker clears it: the login goes in */
	ck_assert_int_eq(online_remove(o, 7, 0, ONLINE_LEAVING), 0);
	ck_assert_int_eq(online_get_leaving(o, 7, &e), -1);
	ck_assert_int_eq(online_add(o, 7, 1, 9, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_get(o, 7, &e), 0);
	ck_assert_uint_eq(e.slot, 1);
	ck_assert_uint_eq(e.conn, 9);
	/* a clear that comes after a replacement removes nothing */
	ck_assert_int_eq(online_replace(o, &e, 1, ONLINE_LEAVING), 0);
	ck_assert_int_eq(online_add(o, 7, 0, 4, &e), ONLINE_TAKEN);
	ck_assert_int_eq(online_replace(o, &e, 0, 4), 0);
	ck_assert_int_eq(online_remove(o, 7, 1, ONLINE_LEAVING), -1);
	ck_assert_int_eq(online_get(o, 7, &e), 0);
	ck_assert_uint_eq(e.conn, 4);
	table_ok(o);
	online_destroy(o, 0);
}
END_TEST

static int
count_cb(const struct online_entry *e, void *arg)
{
	(*(int *)arg)++;
	ck_assert_uint_ne(e->conn, ONLINE_LEAVING);
	return 0;
}

/* A dead worker's marks go with its generation, like its sessions. */
START_TEST(test_leaving_dead_worker)
{
	struct online		*o;
	struct online_entry	 e;
	int			 n = 0;

	o = table_new("leavedead", 64, 2);
	ck_assert_int_eq(online_add(o, 11, 0, 1, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_add(o, 12, 0, 2, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_get(o, 11, &e), 0);
	ck_assert_int_eq(online_replace(o, &e, 0, ONLINE_LEAVING), 0);
	online_foreach(o, count_cb, &n);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(online_get_leaving(o, 11, &e), 0);
	online_slot_reset(o, 0);
	ck_assert_int_eq(online_get_leaving(o, 11, &e), -1);
	ck_assert_int_eq(online_add(o, 11, 1, 5, NULL), ONLINE_ADDED);
	ck_assert_int_eq(online_add(o, 12, 1, 6, NULL), ONLINE_ADDED);
	ck_assert_uint_eq(online_count(o), 2);
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
	tcase_add_test(tc, test_leaving_mark);
	tcase_add_test(tc, test_leaving_dead_worker);
	suite_add_tcase(s, tc);

	tc = tcase_create("table");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_collisions);
	tcase_add_test(tc, test_wrap_cluster);
	tcase_add_test(tc, test_slot_gen);
	tcase_add_test(tc, test_slot_reset);
	tcase_add_test(tc, test_stats_shared);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return check_run(online_suite());
}
