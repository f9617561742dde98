/* check_log.c - the logger: line format, levels, errno, reopen, fatal. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "check_run.h"
#include "check_tmp.h"

static void
log_setup(void)
{
	tmpdir_setup("check_log");
}

START_TEST(test_log_format)
{
	const char	*logf = tmp_path("chatd.log");
	char		*log, re[512];
	regex_t		 rx;

	ck_assert_int_eq(log_init(logf, LOG_DEBUG), 0);
	log_set_role("worker 3");
	log_info("hello %d", 42);
	log_set_role(NULL);
	log_debug("tab\tand\nnewline");
	log = tmp_read_all(logf);
	snprintf(re, sizeof(re),
	    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
	    "\\.[0-9]{3}Z chatd\\[%ld\\] worker 3 info: hello 42\n"
	    "[-0-9T:.Z]+ chatd\\[%ld\\] main debug: tab\tand\\?newline\n$",
	    (long)getpid(), (long)getpid());
	ck_assert_int_eq(regcomp(&rx, re, REG_EXTENDED), 0);
	ck_assert_msg(regexec(&rx, log, 0, NULL, 0) == 0, "log: %s", log);
	regfree(&rx);
	free(log);
}
END_TEST

START_TEST(test_log_levels)
{
	const char	*logf = tmp_path("chatd.log");
	char		*log;

	ck_assert_int_eq(log_init(logf, LOG_NOTICE), 0);
	log_debug("d1");
	log_info("i1");
	log_notice("n1");
	log_warnx("w1");
	log_set_level(LOG_DEBUG);
	log_debug("d2");
	log_set_level(LOG_ERR);
	log_warnx("w2");
	log = tmp_read_all(logf);
	ck_assert_int_eq(text_nlines(log), 3);
	ck_assert_ptr_null(strstr(log, "d1"));
	ck_assert_ptr_null(strstr(log, "i1"));
	ck_assert_ptr_nonnull(strstr(log, " notice: n1\n"));
	ck_assert_ptr_nonnull(strstr(log, " warning: w1\n"));
	ck_assert_ptr_nonnull(strstr(log, " debug: d2\n"));
	ck_assert_ptr_null(strstr(log, "w2"));
	free(log);

	ck_assert_int_eq(log_level_parse("debug"), LOG_DEBUG);
	ck_assert_int_eq(log_level_parse("INFO"), LOG_INFO);
	ck_assert_int_eq(log_level_parse("warning"), LOG_WARNING);
	ck_assert_int_eq(log_level_parse("warn"), LOG_WARNING);
	ck_assert_int_eq(log_level_parse("err"), LOG_ERR);
	ck_assert_int_eq(log_level_parse("error"), LOG_ERR);
	ck_assert_int_eq(log_level_parse("emerg"), LOG_EMERG);
	ck_assert_int_eq(log_level_parse("loud"), -1);
	ck_assert_int_eq(log_level_parse(NULL), -1);
}
END_TEST

START_TEST(test_log_warn)
{
	const char	*logf = tmp_path("chatd.log");
	char		*log, *big;

	ck_assert_int_eq(log_init(logf, LOG_INFO), 0);
	errno = ENOENT;
	log_warn("open %s", "x");
	ck_assert_int_eq(errno, ENOENT);
	errno = EACCES;
	log_info("keeps errno");
	ck_assert_int_eq(errno, EACCES);

	/* Overlong: one truncated line, strerror kept. */
	big = malloc(10000);
	ck_assert_ptr_nonnull(big);
	memset(big, 'a', 9999);
	big[9999] = '\0';
	errno = EPIPE;
	log_warn("%s", big);
	free(big);

	log = tmp_read_all(logf);
	ck_assert_int_eq(text_nlines(log), 3);
	ck_assert_ptr_nonnull(strstr(log,
	    " warning: open x: No such file or directory\n"));
	ck_assert_ptr_nonnull(strstr(log, "aaa...: Broken pipe\n"));
	ck_assert_uint_le(text_max_line(log), 4096);
	ck_assert_uint_ge(text_max_line(log), 3000);
	free(log);

	ck_assert_int_eq(log_init("/nonexistent/dir/chatd.log", LOG_INFO), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_log_reopen)
{
	char		 a[PATH_MAX], b[PATH_MAX];
	char		*log;

	snprintf(a, sizeof(a), "%s", tmp_path("chatd.log"));
	snprintf(b, sizeof(b), "%s", tmp_path("chatd.log.1"));
	ck_assert_int_eq(log_init(a, LOG_INFO), 0);
	log_info("one");
	ck_assert_int_eq(rename(a, b), 0);
	log_info("two");
	ck_assert_int_eq(log_reopen(), 0);
	log_info("three");

	log = tmp_read_all(b);
	ck_assert_ptr_nonnull(strstr(log, "info: one\n"));
	ck_assert_ptr_nonnull(strstr(log, "info: two\n"));
	ck_assert_ptr_null(strstr(log, "three"));
	free(log);
	log = tmp_read_all(a);
	ck_assert_int_eq(text_nlines(log), 1);
	ck_assert_ptr_nonnull(strstr(log, "info: three\n"));
	free(log);

	/* Not logging to a file: nothing to do. */
	ck_assert_int_eq(log_init("stderr", LOG_INFO), 0);
	ck_assert_int_eq(log_reopen(), 0);
}
END_TEST

START_TEST(test_fatalx)
{
	tmpdir_teardown();	/* not run after exit() */
	ck_assert_int_eq(log_init("/dev/null", LOG_ERR), 0);
	fatalx("broken invariant %d", 1);
}
END_TEST

START_TEST(test_fatal_logged)
{
	const char	*logf = tmp_path("chatd.log");
	char		*log;
	pid_t		 pid;
	int		 status;

	ck_assert_int_eq(log_init(logf, LOG_ERR), 0);
	if ((pid = fork()) == 0) {
		errno = ENOMEM;
		fatal("allocating %s", "things");
	}
	ck_assert_int_ne(pid, -1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	log = tmp_read_all(logf);
	ck_assert_ptr_nonnull(strstr(log,
	    " crit: allocating things: Cannot allocate memory\n"));
	free(log);
}
END_TEST

Suite *
log_suite(void)
{
	Suite	*s = suite_create("log");
	TCase	*tc;

	tc = tcase_create("log");
	tcase_add_checked_fixture(tc, log_setup, tmpdir_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_log_format);
	tcase_add_test(tc, test_log_levels);
	tcase_add_test(tc, test_log_warn);
	tcase_add_test(tc, test_log_reopen);
	tcase_add_exit_test(tc, test_fatalx, 1);
	tcase_add_test(tc, test_fatal_logged);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run(log_suite());
}
