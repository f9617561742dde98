/* util.c - the monotonic clock and hex digits (util.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

static double
seconds(clockid_t clock)
{
	struct timespec	 ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

double
util_mono(void)
{
	return seconds(CLOCK_MONOTONIC);
}

uint64_t
util_mono_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t
util_wall_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t
util_mono_ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double
util_mono_coarse(void)
{
	return seconds(CLOCK_MONOTONIC_COARSE);
}

int
util_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
util_memdupz(const void *p, size_t len)
{
	char	*s;

	if (len == SIZE_MAX || (s = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

int
util_grow(void **v, size_t *cap, size_t need, size_t size)
{
	size_t	 ncap = *cap ? *cap : 8;
	char	*nv;

	if (need < *cap)
		return 0;
	while (ncap <= need) {
		if (ncap > SIZE_MAX / 2)
			return -1;
		ncap *= 2;
	}
	if ((nv = reallocarray(*v, ncap, size)) == NULL)
		return -1;
	memset(nv + *cap * size, 0, (ncap - *cap) * size);
	*v = nv;
	*cap = ncap;
	return 0;
}
