/*
 * online_test.h - hooks for tests/unit/check_online only.  chatd never
 * calls these; they stage the states a crash would leave.
 */
#ifndef CHATD_ONLINE_TEST_H
#define CHATD_ONLINE_TEST_H

#include <stddef.h>
#include <stdint.h>

struct online;

#define ONLINE_TEST_DUP		0x01	/* uid twice on its run */
#define ONLINE_TEST_HALF	0x02	/* a half-written (stale) bucket */
#define ONLINE_TEST_HOLE	0x04	/* an empty bucket inside a run */

/*
 * Lock uid's stripe and keep it locked, damaged as asked: the caller
 * is meant to die holding it.  Returns the damage done, -1 on error.
 */
int	online_test_lock_stripe(struct online *o, uint32_t uid, int damage);
/* Bump a slot's generation without sweeping. */
void	online_test_gen_bump(struct online *o, uint16_t slot);
/*
 * Check every stripe: each entry reachable from its home, no uid
 * twice, counts right.  Returns the buckets in use (stale included),
 * or -1 with err filled.
 */
int	online_test_check(struct online *o, char *err, size_t errlen);

#endif
