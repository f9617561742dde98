/*
 * store_sql.c - statement text both backends share: SQLite and MySQL
 * agree on it word for word when the placeholders are plain "?" bound
 * in order.  The dialect tables (store_sqlite.c, store_mysql.c) hold
 * the rest.
 */
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"

const char *const store_sql_common[Q_MAX] = {
	[Q_USER_GET] = "SELECT id, name, pwhash FROM User WHERE id = ?",
	[Q_USER_BY_NAME] = "SELECT id, name, pwhash FROM User WHERE name = ?",
	[Q_FRIENDS] =
	    "SELECT u.id, u.name FROM Friend f JOIN User u ON u.id = f.friendid"
	    " WHERE f.userid = ? ORDER BY f.friendid",
	[Q_GROUP_CREATE] =
	    "INSERT INTO AllGroup (groupname, groupdesc, creator)"
	    " VALUES (?, ?, ?)",
	[Q_GROUP_IS_MEMBER] =
	    "SELECT 1 FROM GroupUser WHERE groupid = ? AND userid = ?",
	[Q_COUNT_FRIENDS] = "SELECT COUNT(*) FROM Friend WHERE userid = ?",
	[Q_COUNT_USER_GROUPS] =
	    "SELECT COUNT(*) FROM GroupUser WHERE userid = ?",
	[Q_COUNT_GROUP_MEMBERS] =
	    "SELECT COUNT(*) FROM GroupUser WHERE groupid = ?",
	[Q_OFFLINE_FETCH] =
	    "SELECT id, message FROM OfflineMessage WHERE userid = ?"
	    " ORDER BY id LIMIT ?",
	[Q_OFFLINE_DELETE] =
	    "DELETE FROM OfflineMessage WHERE userid = ? AND id <= ?",
	[Q_OFFLINE_REMOVE] =
	    "DELETE FROM OfflineMessage WHERE userid = ? AND smid = ?",
	[Q_ACK_GET] =
	    "SELECT smid, done FROM ClientMsg WHERE userid = ? AND cmid = ?",
	/* group changes (store_group_update) */
	[Q_GROUP_LEAVE] =
	    "DELETE FROM GroupUser WHERE groupid = ? AND userid = ?",
	[Q_GROUP_DEMOTE] =
	    "UPDATE GroupUser SET grouprole = 'normal'"
	    " WHERE groupid = ? AND grouprole = 'creator'",
	[Q_GROUP_PROMOTE] =
	    "UPDATE GroupUser SET grouprole = 'creator', admin = 0"
	    " WHERE groupid = ? AND userid = ?",
	[Q_GROUP_DROP_MEMBERS] = "DELETE FROM GroupUser WHERE groupid = ?",
	[Q_GROUP_DROP] = "DELETE FROM AllGroup WHERE id = ?",
	[Q_BLOCK_DEL] = "DELETE FROM Block WHERE userid = ? AND blockedid = ?",
	[Q_BLOCKS] =
	    "SELECT u.id, u.name FROM Block b JOIN User u ON u.id = b.blockedid"
	    " WHERE b.userid = ? ORDER BY b.blockedid",
	[Q_BLOCKERS] =
	    "SELECT u.id, u.name FROM Block b JOIN User u ON u.id = b.userid"
	    " WHERE b.blockedid = ? ORDER BY b.userid",
	[Q_TOKEN_GEN] = "SELECT gen FROM TokenGen WHERE userid = ?",
	/*
	 * History pages, newest first by arrival (History_conv): ?: conv,
	 * then the cursor (created twice, smid), a group's group and
	 * reader (what came after it joined), the reader (its blocks), max.
	 * A pair's row with a negated sender was sent while the recipient
	 * blocked the sender: the sender alone reads it (one more ?: the
	 * reader).
	 */
	[Q_HISTORY_AT] = "SELECT created FROM History WHERE smid = ?",
	[Q_HISTORY_PAIR] =
	    "SELECT smid, message FROM History WHERE conv = ?"
	    " AND (created < ? OR (created = ? AND smid < ?))"
	    " AND (sender > 0 OR sender = -?)"
	    " AND sender NOT IN (SELECT blockedid FROM Block WHERE userid = ?)"
	    " ORDER BY created DESC, smid DESC LIMIT ?",
	[Q_HISTORY_GROUP] =
	    "SELECT h.smid, h.message FROM GroupUser m JOIN History h"
	    " ON h.conv = ? AND (h.created < ? OR (h.created = ? AND h.smid < ?))"
	    " AND h.created >= m.joinedat * 1000"
	    " WHERE m.groupid = ? AND m.userid = ?"
	    " AND h.sender NOT IN (SELECT blockedid FROM Block WHERE userid = ?)"
	    " ORDER BY h.created DESC, h.smid DESC LIMIT ?",
	/* a dissolved group's history: ?: its conv (-groupid) */
	[Q_HISTORY_FORGET] = "DELETE FROM History WHERE conv = ?",
	/* account deletion (store_purge) */
	[Q_PURGE_HISTORY] = "DELETE FROM History WHERE sender IN (?, -?)",
	[Q_PURGE_OFFLINE] = "DELETE FROM OfflineMessage WHERE userid = ?",
	[Q_PURGE_FRIENDS] =
	    "DELETE FROM Friend WHERE userid = ? OR friendid = ?",
	[Q_PURGE_BLOCKS] = "DELETE FROM Block WHERE userid = ? OR blockedid = ?",
	[Q_PURGE_GROUPS] = "DELETE FROM GroupUser WHERE userid = ?",
	[Q_PURGE_HCONV] = "DELETE FROM HistoryConv WHERE userid = ?",
	/* conversations with nothing kept since t (history_prune) */
	[Q_HCONV_PRUNE] = "DELETE FROM HistoryConv WHERE last < ?",
};

const struct store_purge store_purge[STORE_PURGE_N] = {
	{ Q_PURGE_HISTORY, 2 }, { Q_PURGE_OFFLINE, 1 }, { Q_PURGE_FRIENDS, 2 },
	{ Q_PURGE_BLOCKS, 2 }, { Q_PURGE_GROUPS, 1 }, { Q_PURGE_HCONV, 1 }
};

char *
store_memdup(const char *p, size_t len)
{
	char	*s;

	if ((s = malloc(len + 1)) == NULL)
		return NULL;
	if (len > 0)
		memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

static int
hconv_cmp(const void *a, const void *b)
{
	const struct store_hconv *x = a, *y = b;

	if (x->userid != y->userid)
		return x->userid < y->userid ? -1 : 1;
	if (x->conv != y->conv)
		return x->conv < y->conv ? -1 : 1;
	return 0;
}

int
store_hist_convs(const struct store_hist *v, size_t n,
    struct store_hconv **out, size_t *nout)
{
	struct store_hconv	*c;
	size_t			 i, k = 0;

	*out = NULL;
	*nout = 0;
	if (n == 0)
		return 0;
	if ((c = calloc(n, sizeof(*c))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (v[i].gid != 0 || v[i].peer == 0)
			continue;
		c[k].userid = v[i].peer;
		c[k].conv = store_conv(v[i].sender, v[i].peer, 0);
		c[k].last = v[i].created;
		k++;
	}
	qsort(c, k, sizeof(*c), hconv_cmp);
	for (i = 0; i < k; i++) {
		if (*nout > 0 && hconv_cmp(&c[*nout - 1], &c[i]) == 0) {
			if (c[i].last > c[*nout - 1].last)
				c[*nout - 1].last = c[i].last;
			continue;
		}
		c[(*nout)++] = c[i];
	}
	*out = c;
	return 0;
}
