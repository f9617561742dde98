/*
 * online_impl.h - the session table's layout, private to online.c and
 * its test hooks (online_test.c).  The layout and write order are
 * explained at the top of online.c.
 */
#ifndef CHATD_ONLINE_IMPL_H
#define CHATD_ONLINE_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "online.h"

#define ONLINE_MAGIC		0x4f4e4c4eU	/* "ONLN" */
#define ONLINE_VERSION		1
#define ONLINE_MAX_CAPACITY	(1U << 24)
#define ONLINE_MAX_STRIPES	64
#define ONLINE_MIN_PER_STRIPE	64	/* fewer stripes below this */
#define CACHELINE		64

#define ROUNDUP(x, a)		(((x) + (a) - 1) / (a) * (a))

struct bucket {
	uint32_t	uid;		/* 0: empty; stored last */
	uint32_t	conn;
	uint32_t	gen;		/* 0: being written, never live */
	uint16_t	slot;
	uint16_t	pad;
};

/* Own cache lines, so workers bumping their counters do not collide. */
struct slot_stats_line {
	struct online_slot_stats	st;
} __attribute__((aligned(CACHELINE)));

struct online_hdr {
	uint32_t	magic;
	uint32_t	version;
	uint32_t	capacity;
	uint32_t	nslots;
	uint32_t	nstripes;
	uint32_t	stripe_buckets;
	uint32_t	stripe_limit;
	/* Read on every lookup, written only by online_slot_reset(). */
	uint32_t	gen[ONLINE_MAX_SLOTS] __attribute__((aligned(CACHELINE)));
	/*
	 * Occupied buckets (stale ones too) per stripe, written under the
	 * stripe lock.  Kept together so the capacity check reads a few
	 * lines instead of one per stripe.
	 */
	uint32_t	count[ONLINE_MAX_STRIPES] __attribute__((aligned(CACHELINE)));
	struct slot_stats_line stats[ONLINE_MAX_SLOTS];
};

struct stripe {
	pthread_mutex_t	lock;
};

#define STRIPE_HDRSIZE		ROUNDUP(sizeof(struct stripe), CACHELINE)

/* Process-private; the sizes are copies of the header's. */
struct online {
	struct online_hdr	*hdr;
	char			*base;
	size_t			 mapsize;
	size_t			 hdrsize;
	size_t			 stripesize;
	uint32_t		 capacity;
	uint32_t		 nstripes;
	uint32_t		 shift;		/* log2(nstripes) */
	uint32_t		 nbuckets;	/* per stripe */
	uint32_t		 bmask;
	uint32_t		 limit;		/* per stripe */
	int			 nslots;
	char			*name;
};

static inline struct stripe *
stripe_at(const struct online *o, uint32_t si)
{
	return (struct stripe *)(o->base + o->hdrsize + si * o->stripesize);
}

static inline struct bucket *
stripe_buckets(const struct online *o, uint32_t si)
{
	return (struct bucket *)((char *)stripe_at(o, si) + STRIPE_HDRSIZE);
}

static inline uint32_t
stripe_of(const struct online *o, uint32_t h)
{
	return h & (o->nstripes - 1);
}

static inline uint32_t
home_of(const struct online *o, uint32_t h)
{
	return (h >> o->shift) & o->bmask;
}

static inline uint32_t
slot_gen(const struct online *o, uint16_t slot)
{
	return __atomic_load_n(&o->hdr->gen[slot], __ATOMIC_ACQUIRE);
}

static inline int
bucket_live(const struct online *o, const struct bucket *b)
{
	if (b->uid == 0 || b->gen == 0 || b->slot >= o->nslots)
		return 0;
	return b->gen == slot_gen(o, b->slot);
}

/* Live, and a session (not a leaving mark: online.h) */
static inline int
bucket_present(const struct online *o, const struct bucket *b)
{
	return bucket_live(o, b) && b->conn != ONLINE_LEAVING;
}

static inline void
bucket_entry(const struct bucket *b, struct online_entry *e)
{
	e->uid = b->uid;
	e->slot = b->slot;
	e->conn = b->conn;
	e->gen = b->gen;
}

static inline void
count_set(struct online *o, uint32_t si, uint32_t n)
{
	__atomic_store_n(&o->hdr->count[si], n, __ATOMIC_RELAXED);
}

static inline uint32_t
count_get(const struct online *o, uint32_t si)
{
	return __atomic_load_n(&o->hdr->count[si], __ATOMIC_RELAXED);
}


/*
 * Fill an empty bucket.  The uid goes last: a writer killed before it
 * leaves the bucket empty.
 */
static inline void
bucket_fill(struct bucket *b, uint32_t uid, uint16_t slot, uint32_t conn,
    uint32_t gen)
{
	__atomic_store_n(&b->slot, slot, __ATOMIC_RELAXED);
	__atomic_store_n(&b->conn, conn, __ATOMIC_RELAXED);
	__atomic_store_n(&b->gen, gen, __ATOMIC_RELAXED);
	__atomic_store_n(&b->uid, uid, __ATOMIC_RELEASE);
}

static inline void
bucket_clear(struct bucket *b)
{
	__atomic_store_n(&b->uid, 0, __ATOMIC_RELEASE);
}

/* Lock stripe si, repairing what a holder killed inside left. */
int	 online_stripe_lock(struct online *o, uint32_t si);
void	 online_stripe_unlock(struct online *o, uint32_t si);
/* Lock uid's stripe: its hash, stripe and buckets.  -1: uid 0 or no lock. */
int	 online_stripe_enter(struct online *o, uint32_t uid, uint32_t *h,
	    uint32_t *si, struct bucket **bk);
/* A slot's next generation; never 0, which marks a bucket being written. */
uint32_t online_gen_bump(struct online *o, uint16_t slot);

#endif
