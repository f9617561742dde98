/*
 * check_online.h - what check_online.c (the table's operations) and
 * check_online_proc.c (processes that share it, and die holding it)
 * share: throw-away tables, a reproducible random source.
 */
#ifndef CHATD_CHECK_ONLINE_H
#define CHATD_CHECK_ONLINE_H

#include <sys/mman.h>

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "online.h"
#include "online_test.h"

static char	errbuf[256];


static inline void
shm_name(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "/chatd-check-%ld-%s", (long)getpid(), tag);
}

/*
 * A table whose name is gone at once: the mapping lives on, and a
 * failed test leaves nothing in /dev/shm.
 */
static inline struct online *
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

static inline void
table_ok(struct online *o)
{
	int	used;

	used = online_test_check(o, errbuf, sizeof(errbuf));
	ck_assert_msg(used >= 0, "table broken: %s", errbuf);
	/* Nothing stale is left behind by the operations under test. */
	ck_assert_uint_eq((size_t)used, online_count(o));
}

static inline uint64_t
rnd(uint64_t *s)
{
	/* xorshift64*: reproducible per seed, fork-safe. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static inline void
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

static inline void *
shared_alloc(size_t len)
{
	void	*p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	ck_assert(p != MAP_FAILED);
	return p;
}

#endif
