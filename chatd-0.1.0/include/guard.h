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
 *  - failed logins per user (id or name) and per source address, in a
 *    bounded set-associative table under one robust process-shared
 *    mutex; the least recently used entry of a set is evicted.
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
	int	 fail_max;	/* failures in window before a block; 0: off */
	int	 window;	/* seconds */
	int	 block;		/* first block, seconds; doubles per repeat */
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
 * the user key or the address key is blocked (*retry: seconds left).
 * Keys of 0 are ignored.
 */
int	guard_login_check(struct guard *g, uint64_t ukey, uint64_t akey,
	    int *retry);
/* After a wrong password (or no such user): count it for both keys. */
void	guard_login_failed(struct guard *g, uint64_t ukey, uint64_t akey,
	    const struct guard_policy *pol);
/* After a good password: the user's failures are forgotten (not the
 * address's: one valid account must not reset a guessing address). */
void	guard_login_ok(struct guard *g, uint64_t ukey);

#endif
