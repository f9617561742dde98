/*
 * check_online_proc.c - the shared-memory table of online users under
 * processes that hammer it at once, are killed inside it, or die
 * holding a stripe lock (check_online.c: its operations).
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
online_proc_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("online_proc");
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
	return check_run(online_proc_suite());
}
