/*
 * health.c - the node's health as /health, the metrics and chatctl
 * status report it (health.h): unhealthy, degraded or ok.  The workers
 * write their slot's state (health_note); the master only reads it.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "health.h"
#include "online.h"
#include "util.h"

void
health_note(int32_t *state, int64_t *since, int up)
{
	/* since first: a master that sees "down" finds its time */
	if (up)
		__atomic_store_n(since, 0, __ATOMIC_RELAXED);
	else if (__atomic_load_n(since, __ATOMIC_RELAXED) == 0)
		__atomic_store_n(since, (int64_t)time(NULL), __ATOMIC_RELAXED);
	__atomic_store_n(state, up ? 1 : 0, __ATOMIC_RELEASE);
}

const char *
health_word(int32_t v, const char *yes, const char *no)
{
	return v == 1 ? yes : v == 0 ? no : "unknown";
}

/* " since 2026-12-07T09:10:11Z (12 s)", or nothing when not known. */
static void
put_since(struct buf *why, int64_t since)
{
	struct tm	 tm;
	time_t		 t = (time_t)since, now = time(NULL);
	char		 s[32];

	if (since <= 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return;
	buf_printf(why, " since %s (%lld s)", s,
	    (long long)(now > t ? now - t : 0));
}

int
ctl_health(const struct ctl_env *env, struct buf *why)
{
	struct node			*n = env->node;
	struct online_slot_stats	*st;
	uint64_t			 now = util_mono_ms(), hb;
	int				 i, bad = 0;
	int32_t				 redis;
	pid_t				 pid;
	const char			*state;

#define REASON(...) do {						\
	if (why != NULL) {						\
		if (bad > 0)						\
			buf_append_str(why, "; ");			\
		buf_printf(why, __VA_ARGS__);				\
	}								\
	bad++;								\
} while (0)

	for (i = 0; i < n->nslots; i++) {
		st = online_slot_stats(n->online, i);
		pid = __atomic_load_n(&st->pid, __ATOMIC_RELAXED);
		hb = __atomic_load_n(&st->heartbeat, __ATOMIC_RELAXED);
		state = env->slot_state(i);
		/* "retrying": a process, but one that may fail again */
		if (pid == 0 || strcmp(state, "retrying") == 0) {
			REASON("worker %d not running (%s)", i, state);
			continue;
		}
		if (hb != 0 && now > hb &&
		    now - hb > CTL_STALL_SECONDS * 1000)
			REASON("worker %d (pid %d) not responding for %" PRIu64
			    " s", i, (int)pid, (now - hb) / 1000);
		if (__atomic_load_n(&st->store_ok, __ATOMIC_ACQUIRE) == 0) {
			REASON("worker %d: storage unreachable", i);
			if (why != NULL)
				put_since(why, __atomic_load_n(
				    &st->store_down_since, __ATOMIC_RELAXED));
		}
		/* down is degraded (health_degraded); not yet known is not */
		redis = __atomic_load_n(&st->redis_up, __ATOMIC_RELAXED);
		if (n->cfg.redis != NULL && redis != 1 && redis != 0)
			REASON("worker %d: redis unknown", i);
	}
#undef REASON
	return bad == 0 ? 0 : -1;
}

int
health_degraded(const struct ctl_env *env, struct buf *why)
{
	struct node			*n = env->node;
	struct online_slot_stats	*st;
	int64_t				 since, first = 0;
	int				 i, running = 0, down = 0;

	if (n->cfg.redis == NULL)
		return 0;
	for (i = 0; i < n->nslots; i++) {
		st = online_slot_stats(n->online, i);
		if (__atomic_load_n(&st->pid, __ATOMIC_RELAXED) == 0)
			continue;
		running++;
		if (__atomic_load_n(&st->redis_up, __ATOMIC_ACQUIRE) != 0)
			continue;
		down++;
		since = __atomic_load_n(&st->redis_down_since,
		    __ATOMIC_RELAXED);
		if (since > 0 && (first == 0 || since < first))
			first = since;
	}
	if (down == 0 || why == NULL)
		return down;
	buf_append_str(why, "redis unreachable");
	put_since(why, first);
	buf_printf(why, ", %d of %d workers", down, running);
	return down;
}

void
health_json(const struct ctl_env *env, struct buf *out)
{
	struct buf	 why = BUF_INIT;

	buf_append_str(out, ",\"health\":{\"ok\":");
	if (ctl_health(env, &why) == 0)
		buf_append_str(out, "true,\"reason\":null");
	else {
		buf_append_str(out, "false,\"reason\":");
		buf_append(&why, "", 1);
		ctl_json_str(out, buf_head(&why));
	}
	buf_free(&why);
	buf_append_str(out, ",\"degraded\":");
	if (health_degraded(env, &why) == 0)
		buf_append_str(out, "null}");
	else {
		buf_append(&why, "", 1);
		ctl_json_str(out, buf_head(&why));
		buf_append_str(out, "}");
	}
	buf_free(&why);
}
