/*
 * upgrade_merge.c - an upgrade to fewer workers, in the new master.
 *
 * The old node had more worker slots than the file now asks for.  The
 * old master still hands every old slot over, one after the other
 * (master_upgrade.c); the connections of a removed slot i join a
 * remaining slot j = merge_target(i) instead of a worker of their own:
 *
 * - Ids.  A worker adopts connections under the ids their records carry,
 *   and ids are per slot: each connection of a removed slot gets an id
 *   that slot j's own connections do not use, written into its record
 *   (struct ho_state) and remembered (old id -> new id).
 * - Order.  Slot j's new worker adopts what is held for it once, when
 *   it is told to go (handover_forward): its own connections wait in
 *   the master until the last removed slot that joins it has been
 *   handed over too (each slot takes milliseconds).
 * - Session table.  The new master makes a new table without the
 *   removed slots' entries (upgrade_cfg.c: the new workers have no
 *   channel to those slots): for the new workers those users are away
 *   (what is sent to them is stored) until slot j's worker adopts them,
 *   claims them under slot j and fetches what was stored meanwhile, as
 *   after a crash.  The old workers still route to them by the old
 *   table, through the removed slot's channel.
 * - Channel.  What the old workers wrote to the removed slot's
 *   channel, and the acknowledgements its old worker
 *   sends when its store jobs commit (CHAN_ANSWER, "answers to
 *   follow"), are relayed to slot j's channel with the new ids, for as
 *   long as this master runs.  A record for a connection not known is
 *   relayed with no connection, so it is stored, never misdelivered.
 */
#include "config.h"

#include <sys/epoll.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "handover.h"
#include "log.h"
#include "master_impl.h"
#include "util.h"

#define NO_CONN		UINT32_MAX

struct ids {			/* ids in use in a remaining slot */
	unsigned char	*used;
	size_t		 cap;
	uint32_t	 next;	/* the lowest that may be free */
};

struct removed {		/* a removed slot */
	int		 fd[2];	/* its channel: [0] read, [1] write */
	uint32_t	*map;	/* old id -> new id, NO_CONN: none */
	size_t		 cap;
	int		 relaying;
};

static int		 nnew, nold;	/* slots now, slots before */
static struct ids	*ids;		/* [nnew] */
static struct removed	*rm;		/* [nold - nnew] */
static int		 epfd = -1;
static char		*rbuf, *wbuf;
static size_t		 bufcap;
static const struct channel_set *chans;

int
merge_setup(int slots, int old_slots, int (*old_chan)[2],
    const struct channel_set *cs)
{
	int	 i;

	nnew = slots;
	nold = old_slots;
	chans = cs;
	if (nold <= nnew)
		return 0;
	bufcap = cs->max_msg;
	if ((ids = calloc(nnew, sizeof(*ids))) == NULL ||
	    (rm = calloc(nold - nnew, sizeof(*rm))) == NULL ||
	    (rbuf = malloc(bufcap)) == NULL || (wbuf = malloc(bufcap)) ==
	    NULL || (epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return -1;
	for (i = 0; i < nold - nnew; i++) {
		rm[i].fd[0] = old_chan[nnew + i][0];
		rm[i].fd[1] = old_chan[nnew + i][1];
	}
	return 0;
}

int
merge_target(int slot)
{
	if (slot < nnew)
		return slot;
	/* the last slots take them first: the first ones wait the least */
	return nnew - 1 - (slot - nnew) % nnew;
}

int
merge_last(int j)
{
	int	 i, last = j;

	for (i = nnew; i < nold; i++)
		if (merge_target(i) == j)
			last = i;
	return last;
}

static int
mark(struct ids *s, uint32_t id)
{
	if (util_grow((void **)&s->used, &s->cap, id, 1) == -1)
		return -1;
	s->used[id] = 1;
	return 0;
}

uint32_t
merge_conn(int slot, uint32_t conn, char *rec, size_t len)
{
	struct removed	*r;
	struct ids	*s;
	uint32_t	 id;
	size_t		 had;

	if (slot < nnew || nold <= nnew) {
		if (nold > nnew && mark(&ids[slot], conn) == -1)
			return NO_CONN;
		return conn;
	}
	r = &rm[slot - nnew];
	s = &ids[merge_target(slot)];
	for (id = s->next; id < s->cap && s->used[id]; id++)
		;
	had = r->cap;
	if (len < sizeof(struct ho_state) || mark(s, id) == -1 ||
	    util_grow((void **)&r->map, &r->cap, conn, sizeof(*r->map)) == -1)
		return NO_CONN;
	/* what the removed slot never numbered maps to NO_CONN */
	memset(r->map + had, 0xff, (r->cap - had) * sizeof(*r->map));
	s->next = id + 1;
	r->map[conn] = id;
	memcpy(rec + offsetof(struct ho_state, conn), &id, sizeof(id));
	return id;
}

/* Slot's relay starts: its records go to its target from now on. */
void
merge_relay_start(int j)
{
	struct epoll_event	 ev;
	int			 i;

	for (i = nnew; i < nold; i++) {
		if (merge_target(i) != j || rm[i - nnew].relaying)
			continue;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u32 = (uint32_t)i;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, rm[i - nnew].fd[0],
		    &ev) == -1) {
			log_warn("upgrade: relaying worker %d's channel", i);
			continue;
		}
		rm[i - nnew].relaying = 1;
	}
}

int
merge_pollfd(void)
{
	return epfd;
}

/* One datagram of removed slot i's channel to its target, renumbered. */
static void
relay_one(int i, size_t len)
{
	struct removed	*r = &rm[i - nnew];
	struct chan_hdr	 h;
	size_t		 off = 0, n = 0;

	memcpy(wbuf, rbuf, len);
	while (off + sizeof(h) <= len) {
		memcpy(&h, wbuf + off, sizeof(h));
		if (h.len > len - off - sizeof(h))
			break;
		h.conn = h.conn < r->cap ? r->map[h.conn] : NO_CONN;
		memcpy(wbuf + off, &h, sizeof(h));
		off += sizeof(h) + h.len;
		n++;
	}
	if (channel_send_batch(chans, merge_target(i), wbuf, len) ==
	    CHANSEND_OK)
		log_info("upgrade: %zu records of worker %d's channel relayed "
		    "to worker %d", n, i, merge_target(i));
	else
		log_warnx("upgrade: %zu bytes of worker %d's channel not "
		    "relayed to worker %d: %s", len, i, merge_target(i),
		    strerror(errno));
}

void
merge_relay(void)
{
	struct epoll_event	 ev[8];
	ssize_t			 n;
	int			 k, ne;

	if ((ne = epoll_wait(epfd, ev, 8, 0)) <= 0)
		return;
	for (k = 0; k < ne; k++)
		while ((n = channel_recv_batch(rm[ev[k].data.u32 -
		    (uint32_t)nnew].fd[0], rbuf, bufcap)) > 0)
			relay_one((int)ev[k].data.u32, (size_t)n);
}

void
merge_child(void)
{
	int	 i;

	if (epfd != -1)
		close(epfd);
	for (i = 0; rm != NULL && i < nold - nnew; i++) {
		close(rm[i].fd[0]);
		close(rm[i].fd[1]);
	}
}
