/*
 * online.c - the table of online users in POSIX shared memory.
 *
 * Layout of the mapping:
 *
 *	struct online_hdr	sizes, slot generations, per-stripe counts,
 *				per-slot stats (one cache line pair each)
 *	stripe 0		robust mutex, then nbuckets buckets
 *	...
 *	stripe nstripes-1
 *
 * A uid's stripe comes from the low bits of its hash, its home bucket
 * from the bits above; each stripe is an open-addressing table with
 * linear probing and backward-shift deletion (no tombstones), kept at
 * most half full by sizing.
 *
 * Writes are ordered so that a process killed half-way through one
 * leaves nothing a reader could take for a live entry: an empty bucket
 * gets its fields first and its uid last; an occupied bucket is first
 * marked stale (gen 0 is never a live generation).  What can be left
 * behind is a duplicate (killed mid-shift), a stale bucket, or a wrong
 * count; stripe_repair() fixes all three on EOWNERDEAD.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "online.h"
#include "online_impl.h"
#include "util.h"

/* Buckets in use, stale ones included; racy, good for a limit. */
static size_t
online_used(const struct online *o)
{
	size_t		n = 0;
	uint32_t	si;

	for (si = 0; si < o->nstripes; si++)
		n += count_get(o, si);
	return n;
}

/*
 * Rewrite an occupied bucket.  It turns stale first and live again only
 * with the final gen, so a writer killed half-way leaves a stale bucket.
 */
static void
bucket_rewrite(struct bucket *b, uint32_t uid, uint16_t slot, uint32_t conn,
    uint32_t gen)
{
	/* Release stores keep each write after the ones before it. */
	__atomic_store_n(&b->gen, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&b->slot, slot, __ATOMIC_RELEASE);
	__atomic_store_n(&b->conn, conn, __ATOMIC_RELEASE);
	__atomic_store_n(&b->uid, uid, __ATOMIC_RELEASE);
	__atomic_store_n(&b->gen, gen, __ATOMIC_RELEASE);
}

/*
 * Backward-shift deletion of bucket i: pull later entries of the run
 * into the hole while that keeps them reachable from their home, then
 * empty the last hole.  The caller adjusts the count.
 */
static void
bucket_delete(const struct online *o, struct bucket *bk, uint32_t i)
{
	uint32_t	 j, home, n, mask = o->bmask;
	struct bucket	*b;

	/*
	 * Stale first: if we die below, the entry stays removed.  Every
	 * store that follows is a release, so none moves ahead of this.
	 */
	__atomic_store_n(&bk[i].gen, 0, __ATOMIC_RELAXED);
	for (j = (i + 1) & mask, n = 1; n < o->nbuckets;
	    j = (j + 1) & mask, n++) {
		b = &bk[j];
		if (b->uid == 0)
			break;
		home = home_of(o, util_hash32(b->uid));
		/* It must stay put if its home lies in (i, j]. */
		if (((j - home) & mask) < ((j - i) & mask))
			continue;
		bucket_rewrite(&bk[i], b->uid, b->slot, b->conn, b->gen);
		i = j;
	}
	bucket_clear(&bk[i]);
}

/*
 * The last holder died inside its critical section.  Drop whatever is
 * not live (half-written buckets are stale by construction), move
 * entries back over any hole on their probe path, drop duplicates (the
 * first on the path wins) and recount.  Runs again if we die here too,
 * since the mutex is made consistent only afterwards.
 */
static void
stripe_repair(struct online *o, uint32_t si)
{
	struct bucket	*bk = stripe_buckets(o, si), *b;
	uint32_t	 i, j, n, mask = o->bmask, nb = o->nbuckets;
	int		 moved;

	for (i = 0; i < nb; i++)
		if (bk[i].uid != 0 && !bucket_live(o, &bk[i]))
			bucket_clear(&bk[i]);

	/* Each move brings an entry nearer home, so this ends. */
	do {
		moved = 0;
		for (i = 0; i < nb; i++) {
			b = &bk[i];
			if (b->uid == 0)
				continue;
			for (j = home_of(o, util_hash32(b->uid)); j != i;
			    j = (j + 1) & mask)
				if (bk[j].uid == 0)
					break;
			if (j == i)
				continue;
			bucket_fill(&bk[j], b->uid, b->slot, b->conn, b->gen);
			bucket_clear(b);
			moved = 1;
		}
	} while (moved);

	for (i = 0; i < nb; ) {
		b = &bk[i];
		if (b->uid == 0) {
			i++;
			continue;
		}
		for (j = home_of(o, util_hash32(b->uid)); j != i;
		    j = (j + 1) & mask)
			if (bk[j].uid == b->uid)
				break;
		if (j == i) {
			i++;
			continue;
		}
		/* Something else may have shifted into i: look again. */
		bucket_delete(o, bk, i);
	}

	for (i = 0, n = 0; i < nb; i++)
		if (bk[i].uid != 0)
			n++;
	count_set(o, si, n);
}

int
online_stripe_lock(struct online *o, uint32_t si)
{
	struct stripe	*s = stripe_at(o, si);
	int		 r;

	r = pthread_mutex_lock(&s->lock);
	if (r == 0)
		return 0;
	/* ENOTRECOVERABLE cannot happen: we always make it consistent. */
	if (r != EOWNERDEAD)
		return -1;
	stripe_repair(o, si);
	if (pthread_mutex_consistent(&s->lock) != 0) {
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	return 0;
}

void
online_stripe_unlock(struct online *o, uint32_t si)
{
	pthread_mutex_unlock(&stripe_at(o, si)->lock);
}

static int
name_valid(const char *name)
{
	size_t	len;

	if (name == NULL || name[0] != '/')
		return 0;
	len = strlen(name);
	if (len < 2 || len > NAME_MAX)
		return 0;
	return strchr(name + 1, '/') == NULL;
}

static int
stripes_init(struct online *o, char *err, size_t errlen)
{
	pthread_mutexattr_t	 attr;
	uint32_t		 si;
	int			 r;

	if ((r = pthread_mutexattr_init(&attr)) != 0)
		goto fail;
	/*
	 * Priority inheritance, though no priorities are in play: with a
	 * plain robust futex, a waiter woken by an unlock and killed before
	 * it takes the lock loses the wakeup, and the other waiters sleep
	 * on a free lock until someone else contends.  PI futexes are
	 * queued and handed over by the kernel, which has no such window.
	 */
	if ((r = pthread_mutexattr_setpshared(&attr,
	    PTHREAD_PROCESS_SHARED)) != 0 ||
	    (r = pthread_mutexattr_setprotocol(&attr,
	    PTHREAD_PRIO_INHERIT)) != 0 ||
	    (r = pthread_mutexattr_setrobust(&attr,
	    PTHREAD_MUTEX_ROBUST)) != 0) {
		pthread_mutexattr_destroy(&attr);
		goto fail;
	}
	for (si = 0; si < o->nstripes; si++) {
		if ((r = pthread_mutex_init(&stripe_at(o, si)->lock,
		    &attr)) != 0) {
			pthread_mutexattr_destroy(&attr);
			goto fail;
		}
	}
	pthread_mutexattr_destroy(&attr);
	return 0;
fail:
	err_set(err, errlen, "robust shared mutex: %s", strerror(r));
	return -1;
}

struct online *
online_create(const char *name, uint32_t capacity, int nslots, char *err,
    size_t errlen)
{
	struct online		*o;
	struct online_hdr	*h;
	uint64_t		 per;
	void			*p;
	int			 fd, r, i;

	if (!name_valid(name)) {
		err_set(err, errlen, "online: bad shm name \"%s\": want "
		    "\"/name\", no other '/', at most %d bytes",
		    name ? name : "(null)", NAME_MAX);
		return NULL;
	}
	if (capacity == 0 || capacity > ONLINE_MAX_CAPACITY) {
		err_set(err, errlen, "online: capacity %u out of range 1..%u",
		    capacity, ONLINE_MAX_CAPACITY);
		return NULL;
	}
	if (nslots <= 0 || nslots > ONLINE_MAX_SLOTS) {
		err_set(err, errlen, "online: %d worker slots out of range "
		    "1..%d", nslots, ONLINE_MAX_SLOTS);
		return NULL;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL ||
	    (o->name = strdup(name)) == NULL) {
		err_set(err, errlen, "online: %s", strerror(errno));
		free(o);
		return NULL;
	}

	o->capacity = capacity;
	o->nslots = nslots;
	o->nstripes = ONLINE_MAX_STRIPES;
	o->shift = 6;
	while (o->nstripes > 1 &&
	    capacity / o->nstripes < ONLINE_MIN_PER_STRIPE) {
		o->nstripes >>= 1;
		o->shift--;
	}
	/* At most half full on average; a power of two for masking. */
	per = (2 * (uint64_t)capacity + o->nstripes - 1) / o->nstripes;
	o->nbuckets = 4;
	while (o->nbuckets < per)
		o->nbuckets <<= 1;
	o->bmask = o->nbuckets - 1;
	/*
	 * A stripe never fills up, so probes end; this only bites if the
	 * hash were badly skewed, as the global capacity comes first.
	 */
	o->limit = o->nbuckets - (o->nbuckets / 8 ? o->nbuckets / 8 : 1);
	o->hdrsize = ROUNDUP(sizeof(struct online_hdr), CACHELINE);
	o->stripesize = ROUNDUP(STRIPE_HDRSIZE +
	    (size_t)o->nbuckets * sizeof(struct bucket), CACHELINE);
	o->mapsize = o->hdrsize + (size_t)o->nstripes * o->stripesize;

	/* A stale table of a previous run; absent is fine. */
	if (shm_unlink(name) == -1 && errno != ENOENT) {
		err_set(err, errlen, "shm_unlink %s: %s", name,
		    strerror(errno));
		goto fail;
	}
	if ((fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600)) == -1) {
		err_set(err, errlen, "shm_open %s: %s", name, strerror(errno));
		goto fail;
	}
	if (ftruncate(fd, (off_t)o->mapsize) == -1) {
		err_set(err, errlen, "ftruncate %s to %zu bytes: %s", name,
		    o->mapsize, strerror(errno));
		goto fail_unlink;
	}
	/* Reserve the pages now: a full /dev/shm fails here, not as SIGBUS. */
	if ((r = posix_fallocate(fd, 0, (off_t)o->mapsize)) != 0) {
		err_set(err, errlen, "posix_fallocate %s, %zu bytes: %s", name,
		    o->mapsize, strerror(r));
		goto fail_unlink;
	}
	p = mmap(NULL, o->mapsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		err_set(err, errlen, "mmap %s, %zu bytes: %s", name,
		    o->mapsize, strerror(errno));
		goto fail_unlink;
	}
	close(fd);
	fd = -1;
	o->base = p;
	o->hdr = h = p;

	/* The file is all zeroes: every bucket is empty, every count 0. */
	h->magic = ONLINE_MAGIC;
	h->version = ONLINE_VERSION;
	h->capacity = capacity;
	h->nslots = (uint32_t)nslots;
	h->nstripes = o->nstripes;
	h->stripe_buckets = o->nbuckets;
	h->stripe_limit = o->limit;
	for (i = 0; i < ONLINE_MAX_SLOTS; i++) {
		h->gen[i] = 1;
		h->stats[i].st.gen = 1;
	}
	if (stripes_init(o, err, errlen) == -1) {
		munmap(p, o->mapsize);
		goto fail_unlink;
	}
	return o;

fail_unlink:
	if (fd != -1)
		close(fd);
	shm_unlink(name);
fail:
	free(o->name);
	free(o);
	return NULL;
}

/*
 * Binary upgrade: the new master maps the table the old one made, as
 * it is (see upgrade.c for why it is not rebuilt).  Only a table of
 * this layout, for the same capacity and number of slots, is taken.
 */
struct online *
online_attach(const char *name, uint32_t capacity, int nslots, char *err,
    size_t errlen)
{
	struct online		*o;
	struct online_hdr	 h;
	struct stat		 st;
	void			*p;
	int			 fd;

	if (!name_valid(name)) {
		err_set(err, errlen, "online: bad shm name");
		return NULL;
	}
	if ((fd = shm_open(name, O_RDWR | O_NOFOLLOW, 0)) == -1) {
		err_set(err, errlen, "shm_open %s: %s", name, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || (size_t)st.st_size < sizeof(h) ||
	    pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		err_set(err, errlen, "session table %s: unreadable", name);
		close(fd);
		return NULL;
	}
	if (h.magic != ONLINE_MAGIC || h.version != ONLINE_VERSION ||
	    h.capacity != capacity || h.nslots != (uint32_t)nslots ||
	    h.nstripes == 0 || h.nstripes > ONLINE_MAX_STRIPES ||
	    (h.nstripes & (h.nstripes - 1)) != 0 || h.stripe_buckets == 0 ||
	    (h.stripe_buckets & (h.stripe_buckets - 1)) != 0) {
		err_set(err, errlen, "session table %s: another layout or "
		    "size (max_online, workers): a restart is needed", name);
		close(fd);
		return NULL;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL ||
	    (o->name = strdup(name)) == NULL) {
		err_set(err, errlen, "online: %s", strerror(errno));
		free(o);
		close(fd);
		return NULL;
	}
	o->capacity = capacity;
	o->nslots = nslots;
	o->nstripes = h.nstripes;
	for (o->shift = 0; (1U << o->shift) < o->nstripes; o->shift++)
		;
	o->nbuckets = h.stripe_buckets;
	o->bmask = o->nbuckets - 1;
	o->limit = h.stripe_limit;
	o->hdrsize = ROUNDUP(sizeof(struct online_hdr), CACHELINE);
	o->stripesize = ROUNDUP(STRIPE_HDRSIZE +
	    (size_t)o->nbuckets * sizeof(struct bucket), CACHELINE);
	o->mapsize = o->hdrsize + (size_t)o->nstripes * o->stripesize;
	if ((size_t)st.st_size != o->mapsize) {
		err_set(err, errlen, "session table %s: %lld bytes, not %zu",
		    name, (long long)st.st_size, o->mapsize);
		goto fail;
	}
	p = mmap(NULL, o->mapsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		err_set(err, errlen, "mmap %s: %s", name, strerror(errno));
		goto fail;
	}
	close(fd);
	o->base = p;
	o->hdr = p;
	return o;
fail:
	close(fd);
	free(o->name);
	free(o);
	return NULL;
}

void
online_destroy(struct online *o, int unlink_it)
{
	if (o == NULL)
		return;
	munmap(o->base, o->mapsize);
	if (unlink_it)
		shm_unlink(o->name);
	free(o->name);
	free(o);
}

enum online_add_result
online_add(struct online *o, uint32_t uid, uint16_t slot, uint32_t conn,
    struct online_entry *out)
{
	struct bucket	*bk, *b;
	uint32_t	 h, si, i, n, gen, reuse = UINT32_MAX;
	enum online_add_result rc = ONLINE_REFUSED;
	int		 full;

	if (uid == 0 || slot >= o->nslots)
		return ONLINE_REFUSED;
	h = util_hash32(uid);
	si = stripe_of(o, h);
	bk = stripe_buckets(o, si);
	gen = slot_gen(o, slot);
	/*
	 * Outside the lock: it reads other stripes' lines.  Adds racing in
	 * other stripes may all pass, overshooting capacity by at most one
	 * per concurrent adder; the buckets have room for twice as many.
	 */
	full = online_used(o) >= o->capacity;

	if (online_stripe_lock(o, si) == -1)
		return ONLINE_REFUSED;
	for (i = home_of(o, h), n = 0; n < o->nbuckets;
	    i = (i + 1) & o->bmask, n++) {
		b = &bk[i];
		if (b->uid == 0)
			break;
		if (b->uid == uid) {
			if (bucket_live(o, b)) {
				if (out != NULL)
					bucket_entry(b, out);
				rc = ONLINE_TAKEN;
			} else {
				/* A dead worker's session: take it over. */
				bucket_rewrite(b, uid, slot, conn, gen);
				rc = ONLINE_ADDED;
			}
			goto out;
		}
		if (reuse == UINT32_MAX && !bucket_live(o, b))
			reuse = i;
	}
	/* uid is absent; a stale bucket on its path can hold it. */
	if (reuse != UINT32_MAX) {
		bucket_rewrite(&bk[reuse], uid, slot, conn, gen);
		rc = ONLINE_ADDED;
	} else if (n < o->nbuckets && !full &&
	    count_get(o, si) < o->limit) {
		bucket_fill(&bk[i], uid, slot, conn, gen);
		count_set(o, si, count_get(o, si) + 1);
		rc = ONLINE_ADDED;
	}
out:
	online_stripe_unlock(o, si);
	return rc;
}

/* The bucket index of uid on its probe path (stripe locked), or -1. */
static int64_t
bucket_find(struct online *o, struct bucket *bk, uint32_t h, uint32_t uid)
{
	uint32_t	 i, n;

	for (i = home_of(o, h), n = 0; n < o->nbuckets;
	    i = (i + 1) & o->bmask, n++) {
		if (bk[i].uid == 0)
			break;
		if (bk[i].uid == uid)
			return i;
	}
	return -1;
}

/* Lock uid's stripe: its hash, stripe and buckets.  -1: uid 0 or no lock. */
int
online_stripe_enter(struct online *o, uint32_t uid, uint32_t *h, uint32_t *si,
    struct bucket **bk)
{
	if (uid == 0)
		return -1;
	*h = util_hash32(uid);
	*si = stripe_of(o, *h);
	*bk = stripe_buckets(o, *si);
	return online_stripe_lock(o, *si);
}

/* uid's entry if it is a session (leaving 0) or a leaving mark (1). */
static int
entry_get(struct online *o, uint32_t uid, struct online_entry *out,
    int leaving)
{
	struct bucket	*bk;
	uint32_t	 h, si;
	int64_t		 i;
	int		 rc = -1;

	if (online_stripe_enter(o, uid, &h, &si, &bk) == -1)
		return -1;
	if ((i = bucket_find(o, bk, h, uid)) != -1 && (leaving ?
	    bucket_live(o, &bk[i]) && bk[i].conn == ONLINE_LEAVING :
	    bucket_present(o, &bk[i]))) {
		if (out != NULL)
			bucket_entry(&bk[i], out);
		rc = 0;
	}
	online_stripe_unlock(o, si);
	return rc;
}

int
online_get(struct online *o, uint32_t uid, struct online_entry *out)
{
	return entry_get(o, uid, out, 0);
}

int
online_get_leaving(struct online *o, uint32_t uid, struct online_entry *out)
{
	return entry_get(o, uid, out, 1);
}

int
online_replace(struct online *o, const struct online_entry *old,
    uint16_t slot, uint32_t conn)
{
	struct bucket	*bk, *b;
	uint32_t	 h, si;
	int64_t		 i;
	int		 rc = -1;

	if (slot >= o->nslots || online_stripe_enter(o, old->uid, &h, &si, &bk) == -1)
		return -1;
	if ((i = bucket_find(o, bk, h, old->uid)) != -1) {
		b = &bk[i];
		if (bucket_live(o, b) && b->slot == old->slot &&
		    b->conn == old->conn && b->gen == old->gen) {
			bucket_rewrite(b, old->uid, slot, conn,
			    slot_gen(o, slot));
			rc = 0;
		}
	}
	online_stripe_unlock(o, si);
	return rc;
}

int
online_remove(struct online *o, uint32_t uid, uint16_t slot, uint32_t conn)
{
	struct bucket	*bk, *b;
	uint32_t	 h, si;
	int64_t		 i;
	int		 rc = -1;

	if (online_stripe_enter(o, uid, &h, &si, &bk) == -1)
		return -1;
	if ((i = bucket_find(o, bk, h, uid)) != -1) {
		b = &bk[i];
		if (bucket_live(o, b) && b->slot == slot && b->conn == conn) {
			bucket_delete(o, bk, (uint32_t)i);
			count_set(o, si, count_get(o, si) - 1);
			rc = 0;
		}
	}
	online_stripe_unlock(o, si);
	return rc;
}

/* Never 0, which marks a bucket being written. */
uint32_t
online_gen_bump(struct online *o, uint16_t slot)
{
	uint32_t	old, new;

	old = __atomic_load_n(&o->hdr->gen[slot], __ATOMIC_RELAXED);
	do {
		new = old + 1 ? old + 1 : 1;
	} while (!__atomic_compare_exchange_n(&o->hdr->gen[slot], &old, new,
	    0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
	return new;
}

void
online_slot_reset(struct online *o, uint16_t slot)
{
	struct online_slot_stats	*st;
	struct bucket			*bk;
	uint32_t			 si, i, n;

	if (slot >= o->nslots)
		return;
	st = &o->hdr->stats[slot].st;
	__atomic_store_n(&st->gen, online_gen_bump(o, slot), __ATOMIC_RELAXED);
	__atomic_store_n(&st->connections, 0, __ATOMIC_RELAXED);
	__atomic_fetch_add(&st->respawns, 1, __ATOMIC_RELAXED);

	/*
	 * The entries are invisible already; sweeping frees their buckets.
	 * Any stale entry goes, so a missed earlier sweep is caught up.
	 */
	for (si = 0; si < o->nstripes; si++) {
		bk = stripe_buckets(o, si);
		if (online_stripe_lock(o, si) == -1)
			continue;
		n = count_get(o, si);
		for (i = 0; i < o->nbuckets; ) {
			if (bk[i].uid != 0 && !bucket_live(o, &bk[i])) {
				/* Re-examine i: a later entry moved in. */
				bucket_delete(o, bk, i);
				n--;
				continue;
			}
			i++;
		}
		count_set(o, si, n);
		online_stripe_unlock(o, si);
	}
}

uint32_t
online_slot_gen(struct online *o, uint16_t slot)
{
	if (slot >= o->nslots)
		return 0;
	return slot_gen(o, slot);
}

struct online_slot_stats *
online_slot_stats(struct online *o, uint16_t slot)
{
	if (slot >= o->nslots)
		return NULL;
	return &o->hdr->stats[slot].st;
}

int
online_nslots(const struct online *o)
{
	return o->nslots;
}

int
online_set_slots(struct online *o, int nslots)
{
	if (nslots < 1 || nslots > ONLINE_MAX_SLOTS)
		return -1;
	/* gens and stats exist for every slot: only the bound moves */
	__atomic_store_n(&o->hdr->nslots, (uint32_t)nslots, __ATOMIC_RELEASE);
	o->nslots = nslots;
	return 0;
}

size_t
online_count(struct online *o)
{
	struct bucket	*bk;
	uint32_t	 si, i;
	size_t		 n = 0;

	for (si = 0; si < o->nstripes; si++) {
		bk = stripe_buckets(o, si);
		if (online_stripe_lock(o, si) == -1)
			continue;
		for (i = 0; i < o->nbuckets; i++)
			if (bucket_present(o, &bk[i]))
				n++;
		online_stripe_unlock(o, si);
	}
	return n;
}

void
online_foreach(struct online *o,
    int (*fn)(const struct online_entry *e, void *arg), void *arg)
{
	struct online_entry	 e;
	struct bucket		*bk;
	uint32_t		 si, i;
	int			 stop = 0;

	for (si = 0; si < o->nstripes && !stop; si++) {
		bk = stripe_buckets(o, si);
		if (online_stripe_lock(o, si) == -1)
			continue;
		for (i = 0; i < o->nbuckets && !stop; i++) {
			if (!bucket_present(o, &bk[i]))
				continue;
			bucket_entry(&bk[i], &e);
			stop = fn(&e, arg);
		}
		online_stripe_unlock(o, si);
	}
}

