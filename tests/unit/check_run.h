/*
 * check_run.h - the main() of every Check suite: run it in forked
 * processes (a crash fails one test, not the suite) and exit with the
 * verdict.
 */
#ifndef CHATD_CHECK_RUN_H
#define CHATD_CHECK_RUN_H

#include <stdlib.h>
#include <check.h>

static inline int
check_run(Suite *s)
{
	SRunner	*sr = srunner_create(s);
	int	 failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
