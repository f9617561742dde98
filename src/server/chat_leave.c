/*
 * chat_leave.c - a logout that waits for its removals, in the session
 * table.
 *
 * A plain client's stored copies (its offline batch, acknowledged chats
 * written to it live) are removed once written, in the write store
 * thread of the worker that wrote them.  A login of the same user on
 * another worker reads its offline messages in that worker's read
 * thread, ordered with nothing on the first: right after a logout it
 * could read a batch the old session was written, and the plain client
 * would show it twice.  So a session that logs out with removals under
 * way (or written lines not yet drained) leaves a leaving mark in the
 * session table (online.h, ONLINE_LEAVING) instead of nothing; it goes
 * when they are done (committed or failed), and a login that finds it
 * waits, paused and off the loop, for at most CHAT_REMOVAL_WAIT seconds,
 * then replaces it.  The worker that clears a mark tells the others on the
 * channel (CHAN_LEFT), which retry their waiting logins at once.  A
 * worker that dies leaves no mark behind: its generation goes, and its
 * marks with it.
 *
 * An upgrade that makes a new session table runs old workers (the old
 * table) beside new ones (the new table) until the last slot moved: an
 * old worker's mark is in the old table only.  So a new worker honours
 * the marks of the old table too (leave_old_marked), as long as the old
 * worker that left it runs; its CHAN_LEFT reaches the new workers of its
 * slots through the same channels.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "chat_impl.h"
#include "log.h"
#include "util.h"

/* Removal jobs in flight on this worker, per user. */
struct leave_hold {
	int32_t		 uid;
	unsigned	 n;
};

/* A mark this worker set: the session's connection, still draining. */
struct leave_rec {
	int32_t		 uid;
	uint32_t	 conn;
	unsigned	 drain:1;	/* written lines not yet drained */
};

/* A login that found a mark. */
struct leave_wait {
	struct leave_wait	*next;
	struct conn		*c;		/* held (c->jobs) */
	struct leave_login	 l;
};

static struct leave_hold	*holds;
static size_t			 nholds, holds_cap;
static struct leave_rec		*recs;
static size_t			 nrecs, recs_cap;
static struct leave_wait	*waits;

static struct leave_hold *
hold_find(int32_t uid)
{
	size_t	 i;

	for (i = 0; i < nholds; i++)
		if (holds[i].uid == uid)
			return &holds[i];
	return NULL;
}

int
leave_held(int32_t uid)
{
	return hold_find(uid) != NULL;
}

int
leave_draining(int32_t uid)
{
	size_t	 i;

	for (i = 0; i < nrecs; i++)
		if (recs[i].uid == uid && recs[i].drain)
			return 1;
	return 0;
}

int
leave_old_marked(int32_t uid)
{
	struct online_entry	 e;
	pid_t			 pid;

	if (chat.online_old == NULL || online_get_leaving(chat.online_old,
	    (uint32_t)uid, &e) == -1)
		return 0;
	/* a mark the old worker could not clear before it ended: void */
	pid = __atomic_load_n(&online_slot_stats(chat.online_old,
	    e.slot)->pid, __ATOMIC_RELAXED);
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

void
leave_hold(int32_t uid)
{
	struct leave_hold	*h;

	if ((h = hold_find(uid)) != NULL) {
		h->n++;
		return;
	}
	/* no memory: no mark for this one (a repeat is possible) */
	if (util_grow((void **)&holds, &holds_cap, nholds, sizeof(*holds)) == -1)
		return;
	holds[nholds].uid = uid;
	holds[nholds++].n = 1;
}

/* Retry the logins waiting for uid's mark (any: uid 0). */
static void
wake(int32_t uid, int expired)
{
	struct leave_wait	**pp, *w, *todo = NULL, **tail = &todo;
	double			 now = util_mono_coarse();

	/* taken off first: a login retried may wait again */
	for (pp = &waits; (w = *pp) != NULL; ) {
		if ((uid != 0 && w->l.uid != uid) ||
		    (expired && now < w->l.deadline)) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		w->next = NULL;
		*tail = w;
		tail = &w->next;
	}
	while ((w = todo) != NULL) {
		todo = w->next;
		conn_unref(w->c);
		if (!w->c->closing)
			chat_login_again(w->c, &w->l, expired);
		free(w);
	}
}

/* uid's mark goes if nothing of this worker's is under way for it. */
static void
leave_try(int32_t uid)
{
	size_t		 i;
	int		 marked = 0;

	if (hold_find(uid) != NULL || leave_draining(uid))
		return;
	for (i = 0; i < nrecs; )
		if (recs[i].uid == uid) {
			recs[i] = recs[--nrecs];
			marked = 1;
		} else
			i++;
	if (!marked)
		return;
	(void)online_remove(chat.online, (uint32_t)uid, chat.slot,
	    ONLINE_LEAVING);
	wake(uid, 0);
	/* a login waiting on another worker tries again now */
	chat_to_others(CHAN_LEFT, (uint32_t)uid);
}

void
leave_release(int32_t uid)
{
	struct leave_hold	*h;

	if ((h = hold_find(uid)) == NULL || --h->n > 0)
		return;
	*h = holds[--nholds];
	leave_try(uid);
}

void
leave_or_remove(struct conn *c)
{
	struct session		*s = c->sess;
	struct online_entry	 e;
	int			 drain;

	/* written but not yet drained: removed once they are */
	drain = !c->closing && ((s->offline_upto > 0 && !s->ack_offline &&
	    s->offline_uid == s->uid) || (!s->acks && s->ndelivered > 0 &&
	    s->delivered_uid == s->uid));
	if ((!drain && hold_find(s->uid) == NULL) ||
	    util_grow((void **)&recs, &recs_cap, nrecs, sizeof(*recs)) == -1 ||
	    online_get(chat.online, (uint32_t)s->uid, &e) == -1 ||
	    e.slot != chat.slot || e.conn != c->id ||
	    online_replace(chat.online, &e, chat.slot, ONLINE_LEAVING) ==
	    -1) {
		(void)online_remove(chat.online, (uint32_t)s->uid, chat.slot,
		    c->id);
		return;
	}
	recs[nrecs].uid = s->uid;
	recs[nrecs].conn = c->id;
	recs[nrecs++].drain = drain;
}

void
leave_drained(struct conn *c)
{
	size_t	 i;

	for (i = 0; i < nrecs; i++)
		if (recs[i].conn == c->id && recs[i].drain) {
			recs[i].drain = 0;
			leave_try(recs[i].uid);
			return;		/* one session per connection */
		}
}

int
leave_wait(struct conn *c, const struct leave_login *l)
{
	struct leave_wait	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -1;
	w->c = c;
	w->l = *l;
	/* from the first look: waking it again does not prolong it */
	if (w->l.deadline == 0)
		w->l.deadline = util_mono_coarse() + CHAT_REMOVAL_WAIT;
	w->next = waits;
	waits = w;
	c->jobs++;
	return 0;
}

void
chat_left(int32_t uid)
{
	wake(uid, 0);
}

void
chat_leave_due(void)
{
	if (waits != NULL)
		wake(0, 1);
}
