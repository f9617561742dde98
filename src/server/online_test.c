/*
 * online_test.c - test hooks for the session table (online_test.h).
 * They leave a stripe the way a process killed inside its critical
 * section would, for check_online.  Linked only into the check_online
 * tests, never into chatd.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>

#include "log.h"
#include "online_impl.h"
#include "online_test.h"
#include "util.h"

int
online_test_lock_stripe(struct online *o, uint32_t uid, int damage)
{
	struct bucket	*bk;
	uint32_t	 h, si, i, j, k, p, home, mask = o->bmask;
	int		 done = 0;

	if (online_stripe_enter(o, uid, &h, &si, &bk) == -1)
		return -1;
	if (damage == 0)
		return 0;

	for (p = home_of(o, h); bk[p].uid != 0 && bk[p].uid != uid;
	    p = (p + 1) & mask)
		;
	if ((damage & ONLINE_TEST_DUP) && bk[p].uid == uid) {
		/* A shift killed after copying: uid twice on its run. */
		for (i = p; bk[i].uid != 0; i = (i + 1) & mask)
			;
		bucket_fill(&bk[i], uid, bk[p].slot, bk[p].conn, bk[p].gen);
		count_set(o, si, count_get(o, si) + 1);
		done |= ONLINE_TEST_DUP;
	}
	if (damage & ONLINE_TEST_HALF) {
		/* A rewrite killed after marking the bucket stale. */
		for (i = p; bk[i].uid != 0; i = (i + 1) & mask)
			;
		bucket_fill(&bk[i], uid + 1 ? uid + 1 : 1, 0, 0, 0);
		done |= ONLINE_TEST_HALF;
	}
	if (damage & ONLINE_TEST_HOLE) {
		/*
		 * Not a state our writers leave, but repair must cope: empty
		 * a bucket on some displaced entry's path by moving its entry
		 * past an empty bucket, where no probe finds it.
		 */
		for (i = 0; i < o->nbuckets; i++) {
			if (bk[i].uid == 0)
				continue;
			home = home_of(o, util_hash32(bk[i].uid));
			if (home == i)
				continue;
			for (j = (i + 1) & mask; bk[j].uid != 0;
			    j = (j + 1) & mask)
				;
			/* An empty bucket after an empty one. */
			for (k = (j + 1) & mask; k != i &&
			    (bk[k].uid != 0 || bk[(k - 1) & mask].uid != 0);
			    k = (k + 1) & mask)
				;
			if (k == i)
				break;
			bucket_fill(&bk[k], bk[home].uid, bk[home].slot,
			    bk[home].conn, bk[home].gen);
			bucket_clear(&bk[home]);
			done |= ONLINE_TEST_HOLE;
			break;
		}
	}
	return done;
}

void
online_test_gen_bump(struct online *o, uint16_t slot)
{
	if (slot < o->nslots)
		online_gen_bump(o, slot);
}

int
online_test_check(struct online *o, char *err, size_t errlen)
{
	struct bucket	*bk;
	uint32_t	 si, i, j, n, mask = o->bmask;
	int		 total = 0, rc = 0;

	for (si = 0; si < o->nstripes && rc == 0; si++) {
		bk = stripe_buckets(o, si);
		if (online_stripe_lock(o, si) == -1) {
			err_set(err, errlen, "stripe %u: lock lost", si);
			return -1;
		}
		for (i = 0, n = 0; i < o->nbuckets && rc == 0; i++) {
			if (bk[i].uid == 0)
				continue;
			n++;
			for (j = home_of(o, util_hash32(bk[i].uid)); j != i;
			    j = (j + 1) & mask) {
				if (bk[j].uid == 0) {
					err_set(err, errlen, "stripe %u: uid %u "
					    "at %u unreachable", si, bk[i].uid,
					    i);
					rc = -1;
					break;
				}
				if (bk[j].uid == bk[i].uid) {
					err_set(err, errlen, "stripe %u: uid %u "
					    "at %u and %u", si, bk[i].uid, j,
					    i);
					rc = -1;
					break;
				}
			}
		}
		if (rc == 0 && n != count_get(o, si)) {
			err_set(err, errlen, "stripe %u: count %u, %u buckets "
			    "used", si, count_get(o, si), n);
			rc = -1;
		}
		total += n;
		online_stripe_unlock(o, si);
	}
	return rc == 0 ? total : -1;
}
