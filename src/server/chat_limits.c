/* chat_limits.c - count limits (friends, groups, members); friends. */
#include "config.h"

#include <stdlib.h>

#include "cfg.h"
#include "chat_impl.h"
#include "log.h"
#include "store.h"

/*
 * Count limits (max_friends, max_groups_per_user, max_group_members).
 * A race between workers can overshoot by a few; the limit is against
 * growth without bound, not an exact quota.
 */
enum limit_result {
	LIMIT_BELOW,		/* below max, or no limit */
	LIMIT_AT,		/* at max */
	LIMIT_ERROR		/* the store failed (answered) */
};

/* In a store thread: rc, n a count's result and value (k answers). */
static enum limit_result
at_limit(struct chat_call *k, struct store *st, int rc, int64_t n, int max)
{
	if (rc != STORE_OK) {
		chat_call_fail(k, st, ERR_UNAVAILABLE, "counting for a limit");
		return LIMIT_ERROR;
	}
	return max > 0 && n >= max ? LIMIT_AT : LIMIT_BELOW;
}

/* Whether a and b are friends already (a store error: not known so). */
static int
friends_already(struct store *st, int32_t a, int32_t b)
{
	struct store_user_list	 l = { NULL, 0 };
	size_t			 i;
	int			 found = 0;

	if (store_friends(st, a, &l) != STORE_OK)
		return 0;
	for (i = 0; i < l.n && !found; i++)
		found = l.v[i].id == b;
	store_user_list_free(&l);
	return found;
}

/* A friend request, in the write store thread. */
struct friend_call {
	struct chat_call	 k;
	int			 max;		/* max_friends */
};

static void
friend_add_run(struct chat_call *k, struct store *st)
{
	struct friend_call	*f = (struct friend_call *)k;
	enum limit_result	 lr;
	int32_t			 fid = k->req.friendid, one = fid;
	int64_t			 n = 0;
	size_t			 nb = 1;
	int			 rc;

	/* friendship is mutual: both sides must have room */
	if (f->max > 0) {
		const char *why = "you have too many friends (max_friends)";

		rc = store_count_friends(st, k->uid, &n);
		lr = at_limit(k, st, rc, n, f->max);
		if (lr == LIMIT_BELOW) {
			why = "that user has too many friends (max_friends)";
			rc = store_count_friends(st, fid, &n);
			lr = at_limit(k, st, rc, n, f->max);
		}
		if (lr == LIMIT_ERROR)
			return;
		/* at the limit, befriending an old friend stays harmless */
		if (lr == LIMIT_AT && !friends_already(st, k->uid, fid)) {
			k->code = ERR_LIMIT;
			k->text = why;
			return;
		}
	}
	/* a blocked user's request does not reach; it is not told */
	if (block_filter_in(st, k->uid, &one, &nb) == -1) {
		chat_call_fail(k, st, ERR_UNAVAILABLE, "add friend");
		return;
	}
	if (nb == 0)
		return;
	rc = store_friend_add(st, k->uid, fid);
	if (rc == STORE_NOTFOUND)
		k->code = ERR_NO_SUCH_USER;
	else if (rc != STORE_OK)
		chat_call_fail(k, st, ERR_UNAVAILABLE, "add friend");
}

void
handle_add_friend(struct conn *c, struct proto_req *req)
{
	struct friend_call	*f;

	if (req->friendid == c->sess->uid) {
		chat_error(c, MSG_ERROR, ERR_NOT_ALLOWED, req->msgid,
		    "you cannot befriend yourself");
		return;
	}
	if ((f = (struct friend_call *)chat_call_new(c, req->msgid,
	    sizeof(*f), friend_add_run, NULL, NULL)) == NULL)
		return;
	f->max = chat.cfg->max_friends;
	chat_call_submit(c, &f->k, req, CALL_WRITE, 1);
}

int
groups_room(struct chat_call *k, struct store *st, int max_groups)
{
	enum limit_result	 lr;
	int64_t			 n = 0;
	int			 rc;

	if (max_groups <= 0)
		return 0;
	rc = store_count_user_groups(st, k->uid, &n);
	lr = at_limit(k, st, rc, n, max_groups);
	if (lr == LIMIT_AT) {
		k->code = ERR_LIMIT;
		k->text = "you are in too many groups (max_groups_per_user)";
	}
	return lr == LIMIT_BELOW ? 0 : -1;
}

int
group_join_room(struct chat_call *k, struct store *st, int32_t gid,
    int max_groups, int max_members)
{
	enum limit_result	 lr;
	int64_t			 n = 0;
	int			 rc;

	/* joining twice is harmless, also at a limit */
	if ((max_groups <= 0 && max_members <= 0) ||
	    store_group_is_member(st, gid, k->uid) != STORE_NOT_MEMBER)
		return 0;
	if (groups_room(k, st, max_groups) == -1)
		return -1;
	if (max_members <= 0)
		return 0;
	rc = store_count_group_members(st, gid, &n);
	lr = at_limit(k, st, rc, n, max_members);
	if (lr == LIMIT_AT) {
		k->code = ERR_LIMIT;
		k->text = "this group is full (max_group_members)";
	}
	return lr == LIMIT_BELOW ? 0 : -1;
}
