/*
 * health.h - what /health, the metrics and chatctl status say about a
 * node.  A worker notes the state of its Redis link and of its store in
 * its slot of the session table, with the time each went down; the
 * master reads them.
 *
 * Two levels: unhealthy (/health 503) when the node cannot serve its
 * users (a worker missing or stalled, its store not answering), and
 * degraded (/health 200, "degraded: ...") when it serves them but
 * cannot reach the other nodes (Redis down): chats to other nodes are
 * stored and delivered once the link is back, so a load balancer
 * should keep sending it users.  See chatd(8).
 */
#ifndef CHATD_HEALTH_H
#define CHATD_HEALTH_H

#include <stdint.h>

#include "buf.h"
#include "ctl.h"

/*
 * Worker: the link or store (state, since: redis_up/redis_down_since or
 * store_ok/store_down_since of its slot) is up or not now.  since keeps
 * the wall-clock second of the first "not up" until it is up again.
 */
void	health_note(int32_t *state, int64_t *since, int up);

/*
 * Whether the node can serve its users: 0 when healthy, -1 with the
 * reasons ("; "-separated) appended to why.  Unhealthy: a worker slot
 * without a running process, or whose heartbeat is older than
 * CTL_STALL_SECONDS, a worker whose store_ping failed, or (cluster)
 * whose Redis state is not known yet.  Redis down is degraded only.
 */
int	ctl_health(const struct ctl_env *env, struct buf *why);
struct online_slot_stats;
struct storeq;
/*
 * Worker, every second: ping the store in a thread of q every 2 s; st's
 * store_ok follows the answers, and goes to 0 while a ping has waited
 * more than 3 s (health_check.c).
 */
void	health_store_check(struct online_slot_stats *st, struct storeq *q);

/* yes for 1, no for 0, "unknown" otherwise (-1: not yet known). */
const char *health_word(int32_t v, const char *yes, const char *no);
/*
 * How many running workers cannot reach Redis (0 without redis), with
 * "redis unreachable since T (S s; N of M workers)" appended to why.
 */
int	health_degraded(const struct ctl_env *env, struct buf *why);
/* chatctl status: ,"health":{"ok":B,"reason":S|null,"degraded":S|null} */
void	health_json(const struct ctl_env *env, struct buf *out);

#endif
