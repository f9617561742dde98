/*
 * check_history.c - conversation history in the store (issue 17),
 * through store.h only: rows kept, paged newest first, pruned, purged,
 * the checks a batch makes (blocks, deleted senders, dissolved groups).
 * Runs against whatever STORE_SPEC names, as check_store.c does.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check_store_util.h"

/* History: one row per message, pages newest first, prune, purge. */
START_TEST(test_history)
{
	struct store		*st;
	struct store_hist	 h[12];
	struct store_msg_list	 l;
	struct store_user_list	 ul;
	char			 text[12][16], gname[128];
	int64_t			 blk, t0 = 1700000000000LL, smid0;
	int32_t			 a, b, c, gid;
	size_t			 i, n, glen;

	st = open_store();
	a = mkuser(st, "ha");
	b = mkuser(st, "hb");
	c = mkuser(st, "hc");
	ck_assert_int_eq(store_smid_block(st, a, &blk), STORE_OK);
	smid0 = blk + 1;
	glen = uname_make(gname, sizeof(gname), "hg");
	ck_assert_int_eq(store_group_create(st, a, gname, glen, "", 0, &gid),
	    STORE_OK);
	ck_assert_int_eq(store_group_join(st, gid, b), STORE_OK);
	/* 10 one-to-one a <-> b, then 2 in the group; times 1 s apart */
	for (i = 0; i < 12; i++) {
		snprintf(text[i], sizeof(text[i]), "m%zu", i);
		h[i].smid = smid0 + (int64_t)i;
		h[i].sender = i % 2 ? b : a;
		h[i].peer = i < 10 ? (i % 2 ? a : b) : 0;
		h[i].gid = i < 10 ? 0 : gid;
		/* the group's after b joined (now): b reads them */
		h[i].created = i < 10 ? t0 + (int64_t)i * 1000 :
		    ((int64_t)time(NULL) + 5) * 1000 + (int64_t)i;
		h[i].text = text[i];
		h[i].len = strlen(text[i]);
	}
	ck_assert_msg(store_history_add(st, h, 12) == STORE_OK, "%s",
	    store_error(st));
	/* again: kept once */
	ck_assert_int_eq(store_history_add(st, h, 3), STORE_OK);
	ck_assert_int_eq(store_history_fetch(st, b, a, 0, 0, 4, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 4);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(l.v[i].id, smid0 + 9 - (int64_t)i);
		ck_assert_str_eq(l.v[i].text, text[9 - i]);
	}
	blk = l.v[3].id;
	store_msg_list_free(&l);
	ck_assert_int_eq(store_history_fetch(st, a, b, 0, blk, 100, &l),
	    STORE_OK);
	ck_assert_uint_eq(l.n, 6);
	ck_assert_str_eq(l.v[0].text, "m5");
	ck_assert_str_eq(l.v[5].text, "m0");
	store_msg_list_free(&l);
	/* c is in neither conversation */
	ck_assert_int_eq(store_history_fetch(st, c, a, 0, 0, 100, &l),
	    STORE_OK);
	ck_assert_uint_eq(l.n, 0);
	store_msg_list_free(&l);
	ck_assert_int_eq(store_history_fetch(st, c, 0, gid, 0, 100, &l),
	    STORE_OK);
	ck_assert_uint_eq(l.n, 0);
	store_msg_list_free(&l);
	ck_assert_int_eq(store_history_fetch(st, b, 0, gid, 0, 100, &l),
	    STORE_OK);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_str_eq(l.v[0].text, "m11");
	store_msg_list_free(&l);
	/* resume after m0: what b received (HistoryConv, its group), in order */
	ck_assert_int_eq(store_resume_fetch(st, b, smid0, -1, 100, &l, &blk),
	    STORE_OK);
	ck_assert_int_eq(blk, t0);
	ck_assert_uint_eq(l.n, 5);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(l.v[i].id, smid0 + 2 + 2 * (int64_t)i);
	store_msg_list_free(&l);
	/* c received nothing: none of a's or b's traffic */
	ck_assert_int_eq(store_resume_fetch(st, c, smid0, -1, 100, &l, &blk),
	    STORE_OK);
	ck_assert_uint_eq(l.n, 0);
	store_msg_list_free(&l);
	/* b blocks a: a's messages leave b's pages */
	ck_assert_int_eq(store_block(st, b, a, 1), STORE_OK);
	ck_assert_int_eq(store_history_fetch(st, b, a, 0, 0, 100, &l),
	    STORE_OK);
	ck_assert_uint_eq(l.n, 5);
	for (i = 0; i < l.n; i++)
		ck_assert_int_eq((l.v[i].text[1] - '0') % 2, 1);
	store_msg_list_free(&l);
	ck_assert_int_eq(store_block(st, b, a, 0), STORE_OK);
	/* prune the first three, two at a time */
	ck_assert_int_eq(store_history_prune(st, t0 + 2500, 2, &n), STORE_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(store_history_prune(st, t0 + 2500, 2, &n), STORE_OK);
	ck_assert_uint_eq(n, 1);
	/* a goes: its messages, friendships and memberships */
	ck_assert_int_eq(store_friend_add(st, a, b), STORE_OK);
	ck_assert_int_eq(store_account_purge(st, a), STORE_OK);
	ck_assert_int_eq(store_history_fetch(st, b, a, 0, 0, 100, &l),
	    STORE_OK);
	ck_assert_uint_eq(l.n, 4);	/* m3 m5 m7 m9: b's own */
	store_msg_list_free(&l);
	ck_assert_int_eq(store_friends(st, b, &ul), STORE_OK);
	ck_assert_uint_eq(ul.n, 0);
	store_user_list_free(&ul);
	ck_assert_int_eq(store_group_is_member(st, gid, a), STORE_NOT_MEMBER);
	store_close(st);
}
END_TEST

/* How many messages uid's page of its conversation with peer or gid holds. */
static size_t
hist_count(struct store *st, int32_t uid, int32_t peer, int32_t gid)
{
	struct store_msg_list	 l;
	size_t			 n;

	ck_assert_int_eq(store_history_fetch(st, uid, peer, gid, 0, 100, &l),
	    STORE_OK);
	n = l.n;
	store_msg_list_free(&l);
	return n;
}

/*
 * Users a and b (tags <t>a, <t>b), a's smid block in *blk, a group of
 * a's that b joined.
 */
static void
hist_setup(struct store *st, char t, int32_t *a, int32_t *b, int32_t *gid,
    int64_t *blk)
{
	char	 tag[3] = { t, 'a', '\0' }, gname[128];
	size_t	 glen;

	*a = mkuser(st, tag);
	tag[1] = 'b';
	*b = mkuser(st, tag);
	ck_assert_int_eq(store_smid_block(st, *a, blk), STORE_OK);
	tag[1] = 'g';
	glen = uname_make(gname, sizeof(gname), tag);
	ck_assert_int_eq(store_group_create(st, *a, gname, glen, "", 0, gid),
	    STORE_OK);
	ck_assert_int_eq(store_group_join(st, *gid, *b), STORE_OK);
}

/*
 * Kept for the sender only while blocked, a group's history forgotten,
 * nothing kept of a deleted sender.
 */
START_TEST(test_history_guards)
{
	struct store		*st;
	struct store_hist	 h;
	int64_t			 blk;
	uint64_t		 gen;
	int32_t			 a, b, gid;

	st = open_store();
	hist_setup(st, 'g', &a, &b, &gid, &blk);
	memset(&h, 0, sizeof(h));
	h.sender = a;
	h.peer = b;
	h.created = ((int64_t)time(NULL) + 5) * 1000;
	h.text = "x";
	h.len = 1;
	/* b blocks a: a's copy only, even once b unblocks */
	ck_assert_int_eq(store_block(st, b, a, 1), STORE_OK);
	h.smid = ++blk;
	ck_assert_int_eq(store_history_add(st, &h, 1), STORE_OK);
	ck_assert_int_eq(store_block(st, b, a, 0), STORE_OK);
	ck_assert_uint_eq(hist_count(st, b, a, 0), 0);
	ck_assert_uint_eq(hist_count(st, a, b, 0), 1);
	h.smid = ++blk;
	ck_assert_int_eq(store_history_add(st, &h, 1), STORE_OK);
	ck_assert_uint_eq(hist_count(st, b, a, 0), 1);
	ck_assert_uint_eq(hist_count(st, a, b, 0), 2);
	/* the group's rows go */
	h.peer = 0;
	h.gid = gid;
	h.smid = ++blk;
	ck_assert_int_eq(store_history_add(st, &h, 1), STORE_OK);
	ck_assert_uint_eq(hist_count(st, b, 0, gid), 1);
	ck_assert_int_eq(store_history_forget(st, gid), STORE_OK);
	ck_assert_uint_eq(hist_count(st, b, 0, gid), 0);
	/* a deleted sender ("!"): nothing more kept, the purge takes all */
	ck_assert_int_eq(store_user_set_password(st, a, "!", &gen), STORE_OK);
	h.peer = b;
	h.gid = 0;
	h.smid = ++blk;
	ck_assert_int_eq(store_history_add(st, &h, 1), STORE_OK);
	ck_assert_uint_eq(hist_count(st, b, a, 0), 1);
	ck_assert_int_eq(store_account_purge(st, a), STORE_OK);
	ck_assert_uint_eq(hist_count(st, b, a, 0), 0);
	ck_assert_uint_eq(hist_count(st, a, b, 0), 0);
	store_close(st);
}
END_TEST

/*
 * One batch mixing every check (a blocked pair, a deleted sender, a
 * group that is not there, plain rows): each row gets its own outcome,
 * whatever rows beside it got.
 */
START_TEST(test_history_batch_checks)
{
	struct store		*st;
	struct store_hist	 h[8];
	int64_t			 blk, t;
	uint64_t		 gen;
	int32_t			 a, b, c, d, gid;
	size_t			 i;

	st = open_store();
	hist_setup(st, 'b', &a, &b, &gid, &blk);
	c = mkuser(st, "bc");
	d = mkuser(st, "bd");
	ck_assert_int_eq(store_block(st, c, a, 1), STORE_OK);
	ck_assert_int_eq(store_user_set_password(st, d, "!", &gen), STORE_OK);
	t = ((int64_t)time(NULL) + 5) * 1000;
	memset(h, 0, sizeof(h));
	h[0].sender = a; h[0].peer = b;		/* kept */
	h[1].sender = a; h[1].peer = c;		/* c blocks a: a's copy */
	h[2].sender = d; h[2].peer = b;		/* deleted sender: none */
	h[3].sender = a; h[3].gid = gid;	/* kept */
	h[4].sender = b; h[4].gid = gid + 1000;	/* no such group: none */
	h[5].sender = b; h[5].peer = a;		/* kept */
	h[6].sender = d; h[6].gid = gid;	/* deleted sender: none */
	h[7].sender = c; h[7].peer = a;		/* c blocks a, not a c */
	for (i = 0; i < 8; i++) {
		h[i].smid = ++blk;
		h[i].created = t + (int64_t)i;
		h[i].text = "x";
		h[i].len = 1;
	}
	ck_assert_int_eq(store_history_add(st, h, 8), STORE_OK);
	ck_assert_uint_eq(hist_count(st, b, a, 0), 2);
	ck_assert_uint_eq(hist_count(st, a, b, 0), 2);
	ck_assert_uint_eq(hist_count(st, a, c, 0), 2);
	ck_assert_uint_eq(hist_count(st, c, a, 0), 1);
	ck_assert_uint_eq(hist_count(st, b, d, 0), 0);
	ck_assert_uint_eq(hist_count(st, b, 0, gid), 1);
	/* the same batch again: nothing doubles */
	ck_assert_int_eq(store_history_add(st, h, 8), STORE_OK);
	ck_assert_uint_eq(hist_count(st, a, b, 0), 2);
	ck_assert_uint_eq(hist_count(st, b, 0, gid), 1);
	store_close(st);
}
END_TEST

/*
 * A conversation's HistoryConv row is not rewritten for every batch
 * (SQLite: once its time moved a minute): RESUME still finds a chat
 * kept after its cursor in a conversation whose row is older.
 */
START_TEST(test_history_hconv_slack)
{
	struct store		*st;
	struct store_hist	 h[3];
	struct store_msg_list	 l;
	int64_t			 blk, at, t1 = 1700000100000LL;
	int32_t			 a, b, c;
	size_t			 i;

	st = open_store();
	a = mkuser(st, "sa");
	b = mkuser(st, "sb");
	c = mkuser(st, "sc");
	ck_assert_int_eq(store_smid_block(st, a, &blk), STORE_OK);
	memset(h, 0, sizeof(h));
	h[0].sender = a; h[0].peer = b; h[0].created = t1;
	h[1].sender = c; h[1].peer = b; h[1].created = t1 + 20000;
	h[2].sender = a; h[2].peer = b; h[2].created = t1 + 30000;
	for (i = 0; i < 3; i++) {
		h[i].smid = blk + 1 + (int64_t)i;
		h[i].text = "y";
		h[i].len = 1;
	}
	ck_assert_int_eq(store_history_add(st, h, 1), STORE_OK);
	ck_assert_int_eq(store_history_add(st, h + 1, 2), STORE_OK);
	/* b resumes after c's chat: a's second one follows it */
	ck_assert_int_eq(store_resume_fetch(st, b, h[1].smid, -1, 100, &l,
	    &at), STORE_OK);
	ck_assert_int_eq(at, t1 + 20000);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_int_eq(l.v[0].id, h[2].smid);
	store_msg_list_free(&l);
	store_close(st);
}
END_TEST

Suite *
history_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("history");
	tc = tcase_create("store");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_history);
	tcase_add_test(tc, test_history_guards);
	tcase_add_test(tc, test_history_batch_checks);
	tcase_add_test(tc, test_history_hconv_slack);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	store_test_init("check_history");
	return store_test_run(history_suite());
}
