/*
 * guard.h - node-wide limits against abuse, kept in shared memory the
 * master maps before forking so that every worker sees the same
 * figures (with SO_REUSEPORT one address's connections spread over all
 * workers; a per-worker limit would be multiplied by their number):
 *
 *  - connections per source address (IPv4 /32, IPv6 /64), counted in
 *    a count-min sketch: each worker owns one row of counters and only
 *    ever writes its own, so no lock is needed; a count may be a
 *    little high when addresses share buckets, never low;
 *  - failed logins per (address, user), per user (id or name) and per
 *    source address, each with its own threshold, so that one person's
 *    typos behind a NAT lock out neither the other users of that
 *    address nor (short of a spread attack) the user being guessed;
 *  - registrations per source address (a token bucket);
 *    both in bounded set-associative tables under one robust
 *    process-shared mutex; the least recently used entry is evicted.
 */
#ifndef CHATD_GUARD_H
#define CHATD_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct guard;

/* Addresses exempt from per-address limits ("per_ip_exempt"). */
#define GUARD_MAX_NETS	64
struct guard_net {
	int	 family;	/* AF_INET or AF_INET6 */
	uint8_t	 addr[16];
	int	 prefix;	/* bits */
};

/* Failed-login policy (config keys login_fail_*). */
struct guard_policy {
	int	 fail_max;	/* per (address, user) in window; 0: off */
	int	 window;	/* seconds */
	int	 block;		/* first block, seconds; doubles per repeat */
	int	 user_max;	/* per user from anywhere; 0: off */
	int	 addr_max;	/* per address for any users; 0: off */
};

/* Master, before forking.  NULL with err filled on failure. */
struct guard *guard_create(int nslots, char *err, size_t errlen);
void	guard_destroy(struct guard *g);
/*
 * A worker starting in slot: its predecessor's connections died with
 * it, so its row of connection counters starts from zero.
 */
void	guard_slot_reset(struct guard *g, int slot);

/*
 * Parse "CIDR[ CIDR...]" (blanks or commas between; a bare address is
 * a /32 or /128), at most max of them.  Returns the number of
 * networks, or -1 with why set.  nets may be NULL to only validate.
 */
int	guard_parse_nets(const char *s, struct guard_net *nets, int max,
	    char *why, size_t whylen);

/* The index of the first of nets[0..n) holding ss's address, or -1. */
int	guard_net_find(const struct sockaddr_storage *ss,
	    const struct guard_net *nets, int n);

/*
 * The key of a peer's address: IPv4 /32 (IPv4-mapped IPv6 included) or
 * IPv6 /64.  0 when the address is exempt or not IP (no limit).
 */
uint64_t guard_addr_key(const struct guard *g,
	    const struct sockaddr_storage *ss, const struct guard_net *exempt,
	    int nexempt);
/* Keys of a login's claimed user: by id or by name. */
uint64_t guard_user_key(const struct guard *g, int32_t uid);
uint64_t guard_name_key(const struct guard *g, const char *name, size_t len);

/*
 * Count a new connection of worker slot from address key akey.  0 when
 * counted, -1 when the node already has limit connections from there
 * (not counted).  limit 0 or akey 0: always counted (when akey != 0).
 */
int	guard_conn_add(struct guard *g, int slot, uint64_t akey, int limit);
void	guard_conn_del(struct guard *g, int slot, uint64_t akey);
/* Connections from akey on the whole node (an upper bound). */
uint32_t guard_conn_count(struct guard *g, uint64_t akey);

/*
 * Before checking a password: 0 when the login may be tried, -1 when
 * the user, the address or the pair of them is blocked (*retry:
 * seconds left).  Keys of 0 are ignored.
 */
int	guard_login_check(struct guard *g, uint64_t ukey, uint64_t akey,
	    int *retry);
/* After a wrong password (or no such user): count it for the pair, the
 * user and the address, each against its own threshold in pol. */
void	guard_login_failed(struct guard *g, uint64_t ukey, uint64_t akey,
	    const struct guard_policy *pol);
/* The key of the pair (address, user), 0 when either is 0. */
uint64_t guard_pair_key(uint64_t ukey, uint64_t akey);
/*
 * Another node counted key's failures to its limit (the cluster-wide
 * counters in Redis): blocked here too for seconds.
 */
void	guard_login_block(struct guard *g, uint64_t key, int seconds);
/* After a good password: the user's failures are forgotten (not the
 * address's: one valid account must not reset a guessing address). */
void	guard_login_ok(struct guard *g, uint64_t ukey);

/*
 * The client address of connection conn_id of worker slot, for
 * "chatctl online" (the master reads what the workers write; a
 * connection id above GUARD_PEERS_PER_SLOT is not recorded).
 */
#define GUARD_PEERS_PER_SLOT	65536
void	guard_peer_set(struct guard *g, int slot, uint32_t conn_id,
	    const struct sockaddr_storage *ss);
/* "ADDR:PORT" (IPv6 in brackets) into buf; -1 when none is recorded. */
int	guard_peer_str(struct guard *g, int slot, uint32_t conn_id, char *buf,
	    size_t len);

/*
 * Before hashing a new user's password: 0 when address akey may
 * register now (a token taken), -1 when its bucket of burst tokens,
 * refilled at per_min a minute, is empty (*retry: seconds to wait).
 * per_min 0 or akey 0: no limit.
 */
int	guard_reg_take(struct guard *g, uint64_t akey, int per_min, int burst,
	    int *retry);

#endif
