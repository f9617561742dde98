/* check_guard.c - per-address connection counts and failed-login blocks. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guard.h"
#include "check_run.h"

static struct guard	*g;

static void
setup(void)
{
	char	 err[128];

	g = guard_create(3, err, sizeof(err));
	ck_assert_msg(g != NULL, "%s", err);
}

static void
teardown(void)
{
	guard_destroy(g);
	g = NULL;
}

static struct sockaddr_storage
addr(const char *s)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, s, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else {
		ck_assert_int_eq(inet_pton(AF_INET6, s, &s6->sin6_addr), 1);
		s6->sin6_family = AF_INET6;
	}
	return ss;
}

static uint64_t
key(const char *s, const struct guard_net *ex, int nex)
{
	struct sockaddr_storage	 ss = addr(s);

	return guard_addr_key(g, &ss, ex, nex);
}

START_TEST(test_parse_nets)
{
	struct guard_net	 n[GUARD_MAX_NETS];
	char			 why[128];

	ck_assert_int_eq(guard_parse_nets("", n, GUARD_MAX_NETS, why,
	    sizeof(why)), 0);
	ck_assert_int_eq(guard_parse_nets("127.0.0.1, 10.0.0.0/8  ::1 "
	    "fd00::/8", n, GUARD_MAX_NETS, why, sizeof(why)), 4);
	ck_assert_int_eq(n[0].prefix, 32);
	ck_assert_int_eq(n[1].prefix, 8);
	ck_assert_int_eq(n[2].family, AF_INET6);
	ck_assert_int_eq(n[2].prefix, 128);
	ck_assert_int_eq(guard_parse_nets("10.0.0.0/33", n, GUARD_MAX_NETS,
	    why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "/33"));
	ck_assert_int_eq(guard_parse_nets("10.0.0.0/x", NULL, GUARD_MAX_NETS,
	    why, sizeof(why)), -1);
	ck_assert_int_eq(guard_parse_nets("localhost", NULL, GUARD_MAX_NETS,
	    why, sizeof(why)), -1);
	ck_assert_int_eq(guard_parse_nets("1.2.3.4 5.6.7.8", n, 1, why,
	    sizeof(why)), -1);
}
END_TEST

START_TEST(test_addr_keys)
{
	struct guard_net	 ex[4];
	char			 why[128];
	int			 nex;

	/* IPv4 /32; IPv4-mapped IPv6 is the same host */
	ck_assert_uint_ne(key("192.0.2.1", NULL, 0), 0);
	ck_assert_uint_ne(key("192.0.2.1", NULL, 0), key("192.0.2.2", NULL,
	    0));
	ck_assert_uint_eq(key("192.0.2.1", NULL, 0), key("::ffff:192.0.2.1",
	    NULL, 0));
	/* IPv6 /64: one host's many addresses are one key */
	ck_assert_uint_eq(key("2001:db8:1:2::1", NULL, 0),
	    key("2001:db8:1:2:ffff::9", NULL, 0));
	ck_assert_uint_ne(key("2001:db8:1:2::1", NULL, 0),
	    key("2001:db8:1:3::1", NULL, 0));
	/* exempt networks have no key (no limit) */
	nex = guard_parse_nets("127.0.0.0/8 2001:db8:1::/48", ex, 4, why,
	    sizeof(why));
	ck_assert_int_eq(nex, 2);
	ck_assert_uint_eq(key("127.1.2.3", ex, nex), 0);
	ck_assert_uint_eq(key("::ffff:127.0.0.1", ex, nex), 0);
	ck_assert_uint_eq(key("2001:db8:1:77::1", ex, nex), 0);
	ck_assert_uint_ne(key("2001:db8:2::1", ex, nex), 0);
	ck_assert_uint_ne(key("128.0.0.1", ex, nex), 0);
}
END_TEST

START_TEST(test_conn_counts)
{
	uint64_t	 a = key("198.51.100.7", NULL, 0);
	uint64_t	 b = key("198.51.100.8", NULL, 0);
	int		 i;

	/* node-wide: spread over three workers, one limit */
	for (i = 0; i < 10; i++)
		ck_assert_int_eq(guard_conn_add(g, i % 3, a, 10), 0);
	ck_assert_int_eq(guard_conn_count(g, a), 10);
	ck_assert_int_eq(guard_conn_add(g, 0, a, 10), -1);
	ck_assert_int_eq(guard_conn_add(g, 2, a, 10), -1);
	ck_assert_int_eq(guard_conn_count(g, a), 10);
	/* another address is not affected */
	ck_assert_int_eq(guard_conn_add(g, 1, b, 10), 0);
	ck_assert_int_eq(guard_conn_count(g, b), 1);
	/* a close gives one back */
	guard_conn_del(g, 1, a);
	ck_assert_int_eq(guard_conn_add(g, 2, a, 10), 0);
	/* limit 0: counted, never refused */
	ck_assert_int_eq(guard_conn_add(g, 0, a, 0), 0);
	ck_assert_int_eq(guard_conn_count(g, a), 11);
	/* a dead worker's connections are gone with it */
	guard_slot_reset(g, 0);
	ck_assert_int_eq(guard_conn_count(g, a), 6);
	/* key 0 (exempt): never refused, never counted */
	ck_assert_int_eq(guard_conn_add(g, 0, 0, 1), 0);
	ck_assert_int_eq(guard_conn_add(g, 0, 0, 1), 0);
	ck_assert_int_eq(guard_conn_count(g, 0), 0);
}
END_TEST

/* Workers are processes: a count made in a child is seen here. */
START_TEST(test_conn_shared)
{
	uint64_t	 a = key("203.0.113.5", NULL, 0);
	pid_t		 pid;
	int		 st;

	if ((pid = fork()) == 0)
		_exit(guard_conn_add(g, 1, a, 5) == 0 &&
		    guard_conn_add(g, 2, a, 5) == 0 ? 0 : 1);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	ck_assert_int_eq(guard_conn_count(g, a), 2);
}
END_TEST

START_TEST(test_login_blocks)
{
	/* 3 per (address, user), 6 per user, 9 per address; 1 s blocks */
	struct guard_policy	 pol = { 3, 60, 1, 6, 9 };
	uint64_t		 u = guard_user_key(g, 42);
	uint64_t		 v = guard_user_key(g, 43);
	uint64_t		 a = key("192.0.2.50", NULL, 0);
	uint64_t		 b = key("192.0.2.51", NULL, 0);
	char			 ip[32];
	int			 i, retry;

	ck_assert_uint_ne(u, v);
	ck_assert_uint_ne(guard_name_key(g, "bob", 3), guard_name_key(g,
	    "bobby", 5));
	ck_assert_int_eq(guard_login_check(g, u, a, &retry), 0);
	guard_login_failed(g, u, a, &pol);
	guard_login_failed(g, u, a, &pol);
	ck_assert_int_eq(guard_login_check(g, u, a, &retry), 0);
	guard_login_failed(g, u, a, &pol);
	/* the pair is blocked; the user elsewhere and others here are not */
	ck_assert_int_eq(guard_login_check(g, u, a, &retry), -1);
	ck_assert_int_ge(retry, 1);
	ck_assert_int_eq(guard_login_check(g, u, b, &retry), 0);
	ck_assert_int_eq(guard_login_check(g, v, a, &retry), 0);
	/* the address's own budget: 6 more users failing once each */
	for (i = 0; i < 6; i++)
		guard_login_failed(g, guard_user_key(g, 1000 + i), a, &pol);
	ck_assert_int_eq(guard_login_check(g, v, a, &retry), -1);
	ck_assert_int_eq(guard_login_check(g, v, b, &retry), 0);
	/* the user's own budget: 3 more failures from 3 other addresses */
	for (i = 0; i < 3; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", 10 + i);
		guard_login_failed(g, u, key(ip, NULL, 0), &pol);
	}
	ck_assert_int_eq(guard_login_check(g, u, key("198.51.100.99", NULL,
	    0), &retry), -1);
	/* the blocks end */
	usleep(1100 * 1000);
	ck_assert_int_eq(guard_login_check(g, u, a, &retry), 0);
	ck_assert_int_eq(guard_login_check(g, v, a, &retry), 0);
	/* a repeat blocks twice as long */
	guard_login_failed(g, u, a, &pol);
	guard_login_failed(g, u, a, &pol);
	guard_login_failed(g, u, a, &pol);
	usleep(1100 * 1000);
	ck_assert_int_eq(guard_login_check(g, u, a, &retry), -1);
	usleep(1000 * 1000);
	ck_assert_int_eq(guard_login_check(g, u, a, &retry), 0);
	/* a good password forgets the user's failures */
	for (i = 0; i < 5; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", 20 + i);
		guard_login_failed(g, v, key(ip, NULL, 0), &pol);
	}
	guard_login_ok(g, v);
	guard_login_failed(g, v, key("198.51.100.30", NULL, 0), &pol);
	ck_assert_int_eq(guard_login_check(g, v, key("198.51.100.31", NULL,
	    0), &retry), 0);
	/* off: nothing counted */
	memset(&pol, 0, sizeof(pol));
	pol.window = pol.block = 60;
	for (i = 0; i < 20; i++)
		guard_login_failed(g, v, b, &pol);
	ck_assert_int_eq(guard_login_check(g, v, b, &retry), 0);
}
END_TEST

/* Registrations: a bucket per address, refilled over time. */
START_TEST(test_reg_bucket)
{
	uint64_t	 a = key("192.0.2.60", NULL, 0);
	uint64_t	 b = key("192.0.2.61", NULL, 0);
	int		 i, retry;

	for (i = 0; i < 3; i++)
		ck_assert_int_eq(guard_reg_take(g, a, 60, 3, &retry), 0);
	ck_assert_int_eq(guard_reg_take(g, a, 60, 3, &retry), -1);
	ck_assert_int_ge(retry, 1);
	/* another address has its own bucket; no address, no limit */
	ck_assert_int_eq(guard_reg_take(g, b, 60, 3, &retry), 0);
	ck_assert_int_eq(guard_reg_take(g, 0, 60, 3, &retry), 0);
	ck_assert_int_eq(guard_reg_take(g, a, 0, 3, &retry), 0);
	/* one a second comes back */
	usleep(1100 * 1000);
	ck_assert_int_eq(guard_reg_take(g, a, 60, 3, &retry), 0);
	ck_assert_int_eq(guard_reg_take(g, a, 60, 3, &retry), -1);
}
END_TEST

/* Membership of a network list (proxy_protocol_from, per_ip_exempt). */
START_TEST(test_net_find)
{
	struct guard_net	 nets[4];
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;
	char			 why[128];

	ck_assert_int_eq(guard_parse_nets("127.0.0.1, 10.0.0.0/8 fd00::/8",
	    nets, 4, why, sizeof(why)), 3);
	memset(&ss, 0, sizeof(ss));
	s4->sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &s4->sin_addr);
	ck_assert_int_eq(guard_net_find(&ss, nets, 3), 0);
	inet_pton(AF_INET, "127.0.0.2", &s4->sin_addr);
	ck_assert_int_eq(guard_net_find(&ss, nets, 3), -1);
	inet_pton(AF_INET, "10.200.1.2", &s4->sin_addr);
	ck_assert_int_eq(guard_net_find(&ss, nets, 3), 1);
	memset(&ss, 0, sizeof(ss));
	s6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:10.1.1.1", &s6->sin6_addr);
	ck_assert_int_eq(guard_net_find(&ss, nets, 3), 1);
	inet_pton(AF_INET6, "fd12::1", &s6->sin6_addr);
	ck_assert_int_eq(guard_net_find(&ss, nets, 3), 2);
	inet_pton(AF_INET6, "2001:db8::1", &s6->sin6_addr);
	ck_assert_int_eq(guard_net_find(&ss, nets, 3), -1);
	ss.ss_family = AF_UNIX;
	ck_assert_int_eq(guard_net_find(&ss, nets, 3), -1);
}
END_TEST

/* Many keys: the table stays bounded and fresh blocks survive. */
START_TEST(test_login_table_bounded)
{
	struct guard_policy	 pol = { 1, 60, 60, 1, 1 };
	uint64_t		 blocked = guard_user_key(g, 7);
	int			 i, retry;

	guard_login_failed(g, blocked, 0, &pol);
	ck_assert_int_eq(guard_login_check(g, blocked, 0, &retry), -1);
	pol.fail_max = pol.user_max = 1000;
	for (i = 0; i < 200000; i++)
		guard_login_failed(g, guard_user_key(g, 100000 + i), 0, &pol);
	/* unblocked entries are evicted first */
	ck_assert_int_eq(guard_login_check(g, blocked, 0, &retry), -1);
}
END_TEST

static Suite *
guard_suite(void)
{
	Suite	*s = suite_create("guard");
	TCase	*tc = tcase_create("guard");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_parse_nets);
	tcase_add_test(tc, test_addr_keys);
	tcase_add_test(tc, test_conn_counts);
	tcase_add_test(tc, test_conn_shared);
	tcase_add_test(tc, test_login_blocks);
	tcase_add_test(tc, test_login_table_bounded);
	tcase_add_test(tc, test_reg_bucket);
	tcase_add_test(tc, test_net_find);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run(guard_suite());
}
