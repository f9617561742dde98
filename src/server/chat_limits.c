/* chat_limits.c - count limits (friends, groups, members); friends. */
#include "config.h"

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

/* rc, n: a store count's result and value. */
static enum limit_result
at_limit(struct conn *c, const struct proto_req *req, int rc, int64_t n,
    int max)
{
	if (rc != STORE_OK) {
		log_warnx("counting for a limit: %s", store_error(chat.store));
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
		return LIMIT_ERROR;
	}
	return max > 0 && n >= max ? LIMIT_AT : LIMIT_BELOW;
}

/* Whether a and b are friends already (a store error: not known so). */
static int
friends_already(int32_t a, int32_t b)
{
	struct store_user_list	 l = { NULL, 0 };
	size_t			 i;
	int			 found = 0;

	if (store_friends(chat.store, a, &l) != STORE_OK)
		return 0;
	for (i = 0; i < l.n && !found; i++)
		found = l.v[i].id == b;
	store_user_list_free(&l);
	return found;
}

void
handle_add_friend(struct conn *c, const struct proto_req *req)
{
	struct session	*s = c->sess;
	enum limit_result	 lr;
	enum blocked		 bl;
	int64_t			 n = 0;
	int			 rc, lim;

	if (req->friendid == s->uid) {
		chat_error(c, MSG_ERROR, ERR_NOT_ALLOWED, req->msgid,
		    "you cannot befriend yourself");
		return;
	}
	/* friendship is mutual: both sides must have room */
	if ((lim = chat.cfg->max_friends) > 0) {
		const char *why = "you have too many friends (max_friends)";

		rc = store_count_friends(chat.store, s->uid, &n);
		lr = at_limit(c, req, rc, n, lim);
		if (lr == LIMIT_BELOW) {
			why = "that user has too many friends (max_friends)";
			rc = store_count_friends(chat.store, req->friendid, &n);
			lr = at_limit(c, req, rc, n, lim);
		}
		if (lr == LIMIT_ERROR)
			return;
		/* at the limit, befriending an old friend stays harmless */
		if (lr == LIMIT_AT &&
		    !friends_already(s->uid, req->friendid)) {
			chat_error(c, MSG_ERROR, ERR_LIMIT, req->msgid, why);
			return;
		}
	}
	/* a blocked user's request does not reach; it is not told */
	if ((bl = blocked_by(req->friendid, s->uid)) != BLOCKED_NOT) {
		if (bl == BLOCKED_UNKNOWN)
			chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid,
			    NULL);
		return;
	}
	rc = store_friend_add(chat.store, s->uid, req->friendid);
	if (rc == STORE_NOTFOUND)
		chat_error(c, MSG_ERROR, ERR_NO_SUCH_USER, req->msgid, NULL);
	else if (rc != STORE_OK) {
		log_warnx("add friend: %s", store_error(chat.store));
		chat_error(c, MSG_ERROR, ERR_UNAVAILABLE, req->msgid, NULL);
	}
}

int
groups_room(struct conn *c, const struct proto_req *req)
{
	enum limit_result	 lr;
	int64_t			 n = 0;
	int			 rc;

	rc = store_count_user_groups(chat.store, c->sess->uid, &n);
	lr = at_limit(c, req, rc, n, chat.cfg->max_groups_per_user);
	if (lr == LIMIT_AT)
		chat_error(c, MSG_ERROR, ERR_LIMIT, req->msgid,
		    "you are in too many groups (max_groups_per_user)");
	return lr == LIMIT_BELOW ? 0 : -1;
}

int
group_join_room(struct conn *c, const struct proto_req *req)
{
	enum limit_result	 lr;
	int64_t			 n = 0;
	int			 rc;

	/* joining twice is harmless, also at a limit */
	if ((chat.cfg->max_groups_per_user <= 0 &&
	    chat.cfg->max_group_members <= 0) ||
	    store_group_is_member(chat.store, req->groupid,
	    c->sess->uid) != STORE_NOT_MEMBER)
		return 0;
	if (groups_room(c, req) == -1)
		return -1;
	rc = store_count_group_members(chat.store, req->groupid, &n);
	lr = at_limit(c, req, rc, n, chat.cfg->max_group_members);
	if (lr == LIMIT_AT)
		chat_error(c, MSG_ERROR, ERR_LIMIT, req->msgid, "this "
		    "group is full (max_group_members)");
	return lr == LIMIT_BELOW ? 0 : -1;
}
