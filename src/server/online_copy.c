/*
 * online_copy.c - a new session table filled from a running one (a
 * binary upgrade that changes max_online or shm_name, upgrade_cfg.c).
 *
 * Only the public interface of online.h: each live entry of the old
 * table is added to the new one under the same (slot, conn), so the new
 * workers route to the old ones' users through the same channels; the
 * per-slot figures follow.  What changes in the old table afterwards is
 * not copied: a user who logs in on an old worker meanwhile is re-claimed
 * in the new table when that worker hands it over (chat_adopt), and an
 * entry left by a logout meanwhile routes a chat to a connection that is
 * gone, which stores it (chat_channel_msg).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "online.h"

struct copy {
	struct online	*to;
	int		 nslots;
	size_t		 copied, refused;
};

static int
copy_one(const struct online_entry *e, void *arg)
{
	struct copy	*cp = arg;

	/* a removed slot's (fewer workers): claimed where they go */
	if (e->slot >= cp->nslots)
		return 0;
	if (online_add(cp->to, e->uid, e->slot, e->conn, NULL) ==
	    ONLINE_REFUSED)
		cp->refused++;
	else
		cp->copied++;
	return 0;
}

struct online *
online_copy(struct online *from, const char *name, uint32_t capacity,
    int nslots, size_t *copied, char *err, size_t errlen)
{
	struct online_slot_stats	*st;
	struct copy			 cp;
	uint32_t			 gen;
	int				 i;

	memset(&cp, 0, sizeof(cp));
	if ((cp.to = online_create(name, capacity, nslots, err,
	    errlen)) == NULL)
		return NULL;
	cp.nslots = nslots;
	online_foreach(from, copy_one, &cp);
	if (cp.refused > 0) {
		snprintf(err, errlen, "session table %s: %zu of %zu users "
		    "online do not fit (max_online = %u)", name, cp.refused,
		    cp.refused + cp.copied, capacity);
		online_destroy(cp.to, 1);
		return NULL;
	}
	for (i = 0; i < nslots && i < online_nslots(from); i++) {
		st = online_slot_stats(cp.to, (uint16_t)i);
		gen = st->gen;		/* the new table's own */
		*st = *online_slot_stats(from, (uint16_t)i);
		st->gen = gen;
	}
	*copied = cp.copied;
	return cp.to;
}
