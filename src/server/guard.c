/*
 * guard.c - node-wide abuse limits in shared memory: connections per
 * address (a count-min sketch with one row per worker) and failed
 * logins per user and per address (a set-associative LRU table).
 */
#include "config.h"
#include "util.h"

#include <sys/mman.h>
#include <sys/random.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"

#define CONN_ROWS	2		/* hash functions of the sketch */
#define CONN_BUCKETS	4096		/* per row; a power of two */
#define FAIL_WAYS	8
#define FAIL_SETS	1024		/* a power of two: 8192 keys */
#define FAIL_LEVEL_MAX	7		/* block grows to 64 x the first */
#define REG_WAYS	8
#define REG_SETS	512		/* a power of two: 4096 addresses */
/*
 * The keys of users, names and addresses are hashed with a fixed seed,
 * not a random one: every node of a cluster must name them alike, for
 * the failed-login counters kept in Redis (pubsub_login_failed).  The
 * tables are indexed with random seeds (seed[1..]), so the fixed one
 * gives no way to aim at a bucket.
 */
#define KEY_SEED	0x63686174645f6b31ULL	/* "chatd_k1" */

struct fail_ent {
	uint64_t	 key;		/* 0: free */
	double		 window_start;
	double		 blocked_until;
	double		 last;		/* last failure */
	uint32_t	 fails;		/* in the current window */
	uint32_t	 level;		/* blocks in a row */
};

struct reg_ent {
	uint64_t	 key;		/* 0: free */
	double		 tokens;
	double		 stamp;		/* tokens counted up to here */
};

/* A client address, written by its worker, read by the master. */
struct peer_ent {
	uint8_t		 family;	/* 0: none */
	uint8_t		 pad;
	uint16_t	 port;		/* network order */
	uint8_t		 addr[16];
};

struct guard {
	size_t		 map_len;
	struct peer_ent	*peers;		/* [slot][GUARD_PEERS_PER_SLOT] */
	int		 nslots;
	uint64_t	 seed[1 + CONN_ROWS];
	pthread_mutex_t	 mu;		/* fail[] and reg[] */
	struct fail_ent	 fail[FAIL_SETS][FAIL_WAYS];
	struct reg_ent	 reg[REG_SETS][REG_WAYS];
	uint32_t	 conn[];	/* [slot][row][bucket] */
};

/* ---- hashing ----------------------------------------------------------- */

static uint64_t
mix64(uint64_t x)
{
	/* splitmix64's finaliser: a bijection that spreads every bit */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t
hash_bytes(uint64_t seed, unsigned tag, const void *p, size_t n)
{
	const unsigned char	*s = p;
	uint64_t		 h = mix64(seed ^ tag);
	size_t			 i;

	for (i = 0; i < n; i++)
		h = mix64(h ^ s[i] ^ ((uint64_t)i << 8));
	h = mix64(h ^ n);
	return h != 0 ? h : 1;
}

/* ---- create ------------------------------------------------------------ */

struct guard *
guard_create(int nslots, char *err, size_t errlen)
{
	pthread_mutexattr_t	 ma;
	struct guard		*g;
	size_t			 len;
	int			 i;

	len = sizeof(*g) + (size_t)nslots * CONN_ROWS * CONN_BUCKETS *
	    sizeof(uint32_t);
	/* pages of the peer table are touched only as connections come */
	len = (len + 63) & ~(size_t)63;
	len += (size_t)nslots * GUARD_PEERS_PER_SLOT * sizeof(struct peer_ent);
	g = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (g == MAP_FAILED) {
		snprintf(err, errlen, "guard table: mmap %zu bytes: %s", len,
		    strerror(errno));
		return NULL;
	}
	/* the mapping is zeroed: every counter 0, every entry free */
	g->map_len = len;
	g->nslots = nslots;
	g->peers = (struct peer_ent *)(void *)((char *)g + len -
	    (size_t)nslots * GUARD_PEERS_PER_SLOT * sizeof(struct peer_ent));
	if (getrandom(g->seed, sizeof(g->seed), 0) != sizeof(g->seed))
		for (i = 0; i < 1 + CONN_ROWS; i++)
			g->seed[i] = mix64((uint64_t)time(NULL) ^
			    ((uint64_t)getpid() << 20) ^ (uint64_t)i);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	i = pthread_mutex_init(&g->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	if (i != 0) {
		snprintf(err, errlen, "guard table: mutex: %s", strerror(i));
		munmap(g, len);
		return NULL;
	}
	return g;
}

void
guard_destroy(struct guard *g)
{
	if (g != NULL)
		munmap(g, g->map_len);
}

static uint32_t *
conn_row(struct guard *g, int slot, int row)
{
	return g->conn + ((size_t)slot * CONN_ROWS + row) * CONN_BUCKETS;
}

void
guard_slot_reset(struct guard *g, int slot)
{
	int	 r, b;

	if (g == NULL || slot < 0 || slot >= g->nslots)
		return;
	for (r = 0; r < CONN_ROWS; r++)
		for (b = 0; b < CONN_BUCKETS; b++)
			__atomic_store_n(&conn_row(g, slot, r)[b], 0,
			    __ATOMIC_RELAXED);
}

/* ---- addresses --------------------------------------------------------- */

int
guard_parse_nets(const char *s, struct guard_net *nets, int max, char *why,
    size_t whylen)
{
	struct guard_net	 n;
	char			 tok[INET6_ADDRSTRLEN + 8], *slash, *end;
	size_t			 len;
	long			 bits;
	int			 count = 0;

	for (;;) {
		s += strspn(s, " \t,");
		if (*s == '\0')
			break;
		len = strcspn(s, " \t,");
		if (len >= sizeof(tok)) {
			snprintf(why, whylen, "bad network \"%.*s...\"", 40, s);
			return -1;
		}
		memcpy(tok, s, len);
		tok[len] = '\0';
		s += len;
		memset(&n, 0, sizeof(n));
		if ((slash = strchr(tok, '/')) != NULL)
			*slash++ = '\0';
		if (inet_pton(AF_INET, tok, n.addr) == 1) {
			n.family = AF_INET;
			n.prefix = 32;
		} else if (inet_pton(AF_INET6, tok, n.addr) == 1) {
			n.family = AF_INET6;
			n.prefix = 128;
		} else {
			snprintf(why, whylen, "bad address \"%s\" (want "
			    "ADDRESS or ADDRESS/BITS)", tok);
			return -1;
		}
		if (slash != NULL) {
			errno = 0;
			bits = strtol(slash, &end, 10);
			if (!isdigit((unsigned char)*slash) || *end != '\0' ||
			    bits < 0 || bits > n.prefix) {
				snprintf(why, whylen, "bad prefix length "
				    "\"/%s\" for %s", slash, tok);
				return -1;
			}
			n.prefix = (int)bits;
		}
		if (count >= max) {
			snprintf(why, whylen, "more than %d networks", max);
			return -1;
		}
		if (nets != NULL)
			nets[count] = n;
		count++;
	}
	return count;
}

static int
prefix_match(const uint8_t *a, const uint8_t *net, int bits)
{
	int	 full = bits / 8, rest = bits % 8;
	uint8_t	 mask;

	if (memcmp(a, net, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (net[full] & mask);
}

/* The IPv4 (IPv4-mapped IPv6 included) or IPv6 bytes of ss; -1: not IP. */
static int
addr_bytes(const struct sockaddr_storage *ss, uint8_t a[16], int *fam)
{
	static const uint8_t	 v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0xff, 0xff };
	const struct sockaddr_in	*s4;
	const struct sockaddr_in6	*s6;

	if (ss->ss_family == AF_INET) {
		s4 = (const struct sockaddr_in *)(const void *)ss;
		memcpy(a, &s4->sin_addr, 4);
		*fam = AF_INET;
	} else if (ss->ss_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)ss;
		if (memcmp(&s6->sin6_addr, v4mapped, 12) == 0) {
			memcpy(a, (const uint8_t *)&s6->sin6_addr + 12, 4);
			*fam = AF_INET;
		} else {
			memcpy(a, &s6->sin6_addr, 16);
			*fam = AF_INET6;
		}
	} else
		return -1;
	return 0;
}

int
guard_net_find(const struct sockaddr_storage *ss, const struct guard_net *nets,
    int n)
{
	uint8_t	 a[16];
	int	 fam, i;

	if (addr_bytes(ss, a, &fam) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (nets[i].family == fam &&
		    prefix_match(a, nets[i].addr, nets[i].prefix))
			return i;
	return -1;
}

uint64_t
guard_addr_key(const struct guard *g, const struct sockaddr_storage *ss,
    const struct guard_net *exempt, int nexempt)
{
	uint8_t	 a[16];
	int	 fam;

	if (g == NULL || addr_bytes(ss, a, &fam) == -1 ||
	    guard_net_find(ss, exempt, nexempt) != -1)
		return 0;
	/* IPv4 /32, IPv6 /64: a host usually owns a whole /64 */
	return hash_bytes(KEY_SEED, fam == AF_INET ? 4 : 6, a,
	    fam == AF_INET ? 4 : 8);
}

uint64_t
guard_user_key(const struct guard *g, int32_t uid)
{
	if (g == NULL)
		return 0;
	return hash_bytes(KEY_SEED, 'u', &uid, sizeof(uid));
}

uint64_t
guard_name_key(const struct guard *g, const char *name, size_t len)
{
	if (g == NULL)
		return 0;
	return hash_bytes(KEY_SEED, 'n', name, len);
}

/* ---- connections per address ------------------------------------------ */

static size_t
conn_bucket(const struct guard *g, uint64_t akey, int row)
{
	return mix64(akey ^ g->seed[1 + row]) & (CONN_BUCKETS - 1);
}

uint32_t
guard_conn_count(struct guard *g, uint64_t akey)
{
	uint32_t	 best = UINT32_MAX, sum;
	size_t		 b;
	int		 r, s;

	if (g == NULL || akey == 0)
		return 0;
	for (r = 0; r < CONN_ROWS; r++) {
		b = conn_bucket(g, akey, r);
		for (sum = 0, s = 0; s < g->nslots; s++)
			sum += __atomic_load_n(&conn_row(g, s, r)[b],
			    __ATOMIC_RELAXED);
		if (sum < best)
			best = sum;
	}
	return best;
}

int
guard_conn_add(struct guard *g, int slot, uint64_t akey, int limit)
{
	int	 r;

	if (g == NULL || akey == 0 || slot < 0 || slot >= g->nslots)
		return 0;
	/* two workers may both pass at limit - 1: over by nslots - 1 at most */
	if (limit > 0 && guard_conn_count(g, akey) >= (uint32_t)limit)
		return -1;
	for (r = 0; r < CONN_ROWS; r++)
		__atomic_add_fetch(&conn_row(g, slot, r)[conn_bucket(g, akey,
		    r)], 1, __ATOMIC_RELAXED);
	return 0;
}

void
guard_conn_del(struct guard *g, int slot, uint64_t akey)
{
	uint32_t	*p;
	int		 r;

	if (g == NULL || akey == 0 || slot < 0 || slot >= g->nslots)
		return;
	for (r = 0; r < CONN_ROWS; r++) {
		p = &conn_row(g, slot, r)[conn_bucket(g, akey, r)];
		/* only this worker writes its row: no race with itself */
		if (__atomic_load_n(p, __ATOMIC_RELAXED) > 0)
			__atomic_sub_fetch(p, 1, __ATOMIC_RELAXED);
	}
}

/* ---- failed logins ----------------------------------------------------- */

static void
fail_lock(struct guard *g)
{
	/* a worker killed inside: the table is only counters, go on */
	if (pthread_mutex_lock(&g->mu) == EOWNERDEAD)
		pthread_mutex_consistent(&g->mu);
}

static void
fail_unlock(struct guard *g)
{
	pthread_mutex_unlock(&g->mu);
}

static struct fail_ent *
fail_find(struct guard *g, uint64_t key, int create, double now)
{
	struct fail_ent	*set, *victim = NULL;
	int		 i;

	set = g->fail[mix64(key ^ g->seed[0]) & (FAIL_SETS - 1)];
	for (i = 0; i < FAIL_WAYS; i++)
		if (set[i].key == key)
			return &set[i];
	if (!create)
		return NULL;
	/* a free way, else the least recently failed unblocked one, else
	 * the least recently failed */
	for (i = 0; i < FAIL_WAYS; i++) {
		if (set[i].key == 0) {
			victim = &set[i];
			break;
		}
		if (victim == NULL ||
		    (victim->blocked_until > now) >
		    (set[i].blocked_until > now) ||
		    ((victim->blocked_until > now) ==
		    (set[i].blocked_until > now) &&
		    set[i].last < victim->last))
			victim = &set[i];
	}
	memset(victim, 0, sizeof(*victim));
	victim->key = key;
	victim->window_start = now;
	return victim;
}

static double
block_len(const struct guard_policy *pol, uint32_t level)
{
	return (double)pol->block * (double)(1u << (level - 1));
}

/* The key of (address, user): neither alone. */
uint64_t
guard_pair_key(uint64_t ukey, uint64_t akey)
{
	uint64_t	 k;

	if (ukey == 0 || akey == 0)
		return 0;
	k = mix64(ukey ^ mix64(akey ^ 0x70616972ULL));
	return k != 0 ? k : 1;
}

int
guard_login_check(struct guard *g, uint64_t ukey, uint64_t akey, int *retry)
{
	struct fail_ent	*e;
	double		 now, until = 0;
	uint64_t	 keys[3] = { ukey, akey, guard_pair_key(ukey, akey) };
	int		 i;

	*retry = 0;
	if (g == NULL)
		return 0;
	now = util_mono();
	fail_lock(g);
	for (i = 0; i < 3; i++)
		if (keys[i] != 0 && (e = fail_find(g, keys[i], 0, now)) !=
		    NULL && e->blocked_until > now && e->blocked_until > until)
			until = e->blocked_until;
	fail_unlock(g);
	if (until == 0)
		return 0;
	*retry = (int)(until - now) + 1;
	return -1;
}

static void
fail_one(struct guard *g, uint64_t key, int max,
    const struct guard_policy *pol, double now)
{
	struct fail_ent	*e;

	if (key == 0 || max <= 0)
		return;
	e = fail_find(g, key, 1, now);
	/* quiet after its last block for as long again: forgiven */
	if (e->level > 0 && now >= e->blocked_until + block_len(pol, e->level))
		e->level = 0;
	if (now - e->window_start >= pol->window) {
		e->window_start = now;
		e->fails = 0;
	}
	e->fails++;
	e->last = now;
	if (e->fails >= (uint32_t)max) {
		if (e->level < FAIL_LEVEL_MAX)
			e->level++;
		e->blocked_until = now + block_len(pol, e->level);
		e->fails = 0;
		e->window_start = now;
	}
}

void
guard_login_failed(struct guard *g, uint64_t ukey, uint64_t akey,
    const struct guard_policy *pol)
{
	double	 now;

	if (g == NULL)
		return;
	now = util_mono();
	fail_lock(g);
	fail_one(g, guard_pair_key(ukey, akey), pol->fail_max, pol, now);
	fail_one(g, ukey, pol->user_max, pol, now);
	fail_one(g, akey, pol->addr_max, pol, now);
	fail_unlock(g);
}

void
guard_login_block(struct guard *g, uint64_t key, int seconds)
{
	struct fail_ent	*e;
	double		 now;

	if (g == NULL || key == 0 || seconds <= 0)
		return;
	now = util_mono();
	fail_lock(g);
	e = fail_find(g, key, 1, now);
	e->last = now;
	if (e->blocked_until < now + seconds)
		e->blocked_until = now + seconds;
	fail_unlock(g);
}

void
guard_login_ok(struct guard *g, uint64_t ukey)
{
	struct fail_ent	*e;

	if (g == NULL || ukey == 0)
		return;
	fail_lock(g);
	if ((e = fail_find(g, ukey, 0, 0)) != NULL)
		memset(e, 0, sizeof(*e));
	fail_unlock(g);
}

/* ---- registrations ----------------------------------------------------- */

int
guard_reg_take(struct guard *g, uint64_t akey, int per_min, int burst,
    int *retry)
{
	struct reg_ent	*set, *e = NULL;
	double		 now, rate = per_min / 60.0;
	int		 i, rc = 0;

	*retry = 0;
	if (g == NULL || akey == 0 || per_min <= 0)
		return 0;
	now = util_mono();
	fail_lock(g);
	set = g->reg[(mix64(akey ^ g->seed[0]) >> 23) & (REG_SETS - 1)];
	for (i = 0; i < REG_WAYS && e == NULL; i++)
		if (set[i].key == akey)
			e = &set[i];
	if (e == NULL) {
		/* a free way, else the one untouched longest (fullest) */
		for (e = &set[0], i = 0; i < REG_WAYS; i++) {
			if (set[i].key == 0) {
				e = &set[i];
				break;
			}
			if (set[i].stamp < e->stamp)
				e = &set[i];
		}
		e->key = akey;
		e->tokens = burst;
		e->stamp = now;
	}
	e->tokens += (now - e->stamp) * rate;
	if (e->tokens > burst)
		e->tokens = burst;
	e->stamp = now;
	if (e->tokens >= 1)
		e->tokens -= 1;
	else {
		*retry = (int)((1 - e->tokens) / rate) + 1;
		rc = -1;
	}
	fail_unlock(g);
	return rc;
}

/* ---- client addresses for the control socket --------------------------- */

void
guard_peer_set(struct guard *g, int slot, uint32_t conn_id,
    const struct sockaddr_storage *ss)
{
	struct peer_ent	 p;
	const struct sockaddr_in	*s4;
	const struct sockaddr_in6	*s6;

	if (g == NULL || slot < 0 || slot >= g->nslots ||
	    conn_id >= GUARD_PEERS_PER_SLOT)
		return;
	memset(&p, 0, sizeof(p));
	if (ss->ss_family == AF_INET) {
		s4 = (const struct sockaddr_in *)(const void *)ss;
		p.family = 4;
		p.port = s4->sin_port;
		memcpy(p.addr, &s4->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)ss;
		p.family = 6;
		p.port = s6->sin6_port;
		memcpy(p.addr, &s6->sin6_addr, 16);
	}
	/* a reader may see a torn entry while the id is reused: cosmetic */
	g->peers[(size_t)slot * GUARD_PEERS_PER_SLOT + conn_id] = p;
}

int
guard_peer_str(struct guard *g, int slot, uint32_t conn_id, char *buf,
    size_t len)
{
	struct peer_ent	 p;
	char		 host[INET6_ADDRSTRLEN];

	if (g == NULL || slot < 0 || slot >= g->nslots ||
	    conn_id >= GUARD_PEERS_PER_SLOT)
		return -1;
	p = g->peers[(size_t)slot * GUARD_PEERS_PER_SLOT + conn_id];
	if (p.family == 4 && inet_ntop(AF_INET, p.addr, host, sizeof(host)))
		snprintf(buf, len, "%s:%u", host, ntohs(p.port));
	else if (p.family == 6 && inet_ntop(AF_INET6, p.addr, host,
	    sizeof(host)))
		snprintf(buf, len, "[%s]:%u", host, ntohs(p.port));
	else
		return -1;
	return 0;
}
