/*
 * util.h - small helpers every layer shares: the monotonic clock, hex
 * digits, integer hashes and growing arrays.  No knowledge of chat, sockets or processes.
 */
#ifndef CHATD_UTIL_H
#define CHATD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC: seconds as a double, milliseconds, nanoseconds. */
double		util_mono(void);
uint64_t	util_mono_ms(void);
uint64_t	util_mono_ns(void);
/* CLOCK_MONOTONIC_COARSE in seconds: cheap, a few ms of resolution. */
double		util_mono_coarse(void);
/* CLOCK_REALTIME in milliseconds: times compared across nodes. */
int64_t		util_wall_ms(void);

/* Value of one hex digit (either case), or -1. */
int		util_hexval(int c);

/*
 * The len bytes at p, which need not be NUL-terminated, copied and
 * terminated (malloc'd; NULL when out of memory).  Not strndup: it may
 * read past them (AddressSanitizer's strict_string_checks does).
 */
char		*util_memdupz(const void *p, size_t len);

/*
 * Room for element need in the array *v of *cap elements of size bytes:
 * the capacity doubles (from 8) until it is above need, and the new
 * elements are zero.  0, or -1 (out of memory) with *v and *cap as they
 * were.
 */
int		util_grow(void **v, size_t *cap, size_t need, size_t size);

/* How many decimal digits v has (1 for 0). */
static inline size_t
util_ndigits(uint64_t v)
{
	size_t	 d = 1;

	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

/* murmur3's 32-bit finaliser: a bijection that spreads every bit. */
static inline uint32_t
util_hash32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x85ebca6bU;
	x ^= x >> 13;
	x *= 0xc2b2ae35U;
	x ^= x >> 16;
	return x;
}

/* Fibonacci hashing: the top bits (1..32) of x times 2^32/phi. */
static inline uint32_t
util_fib_hash(uint32_t x, unsigned bits)
{
	return (uint32_t)(x * 2654435761u) >> (32 - bits);
}

#endif
