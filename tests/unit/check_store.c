/*
 * check_store.c - the storage interface, through store.h only.
 *
 * Runs against whatever STORE_SPEC names (default: a fresh SQLite file
 * in /tmp, removed afterwards).  A MySQL database may be shared and not
 * empty, so every name carries this process's pid and the time, and no
 * test assumes it sees the whole database.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check_store_util.h"

#define NCONC		2000	/* messages per writer process */

START_TEST(test_open)
{
	struct store	*st;
	char		 err[256];

	err[0] = '\0';
	ck_assert_ptr_null(store_open("postgres://x", NULL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "unknown") != NULL, "err: %s", err);
	ck_assert_ptr_null(store_open("sqlite:", NULL, err, sizeof(err)));
	ck_assert(err[0] != '\0');
	ck_assert_ptr_null(store_open("nothing", NULL, NULL, 0));
	ck_assert_ptr_null(store_open("sqlite:/nonexistent/dir/x.db", NULL,
	    err, sizeof(err)));
	ck_assert(err[0] != '\0');

	st = open_store();
	ck_assert_int_eq(store_ping(st), 0);
	ck_assert(strcmp(store_kind(st), "sqlite") == 0 ||
	    strcmp(store_kind(st), "mysql") == 0);
	store_close(st);
	store_close(NULL);

	/* Free helpers accept NULL and empty lists. */
	store_user_clear(NULL);
	store_user_list_free(NULL);
	store_group_list_free(NULL);
	store_msg_list_free(NULL);
	{
		struct store_user_list	 ul = { NULL, 0 };
		struct store_group_list	 gl = { NULL, 0 };
		struct store_msg_list	 ml = { NULL, 0 };
		struct store_user	 u;

		memset(&u, 0, sizeof(u));
		store_user_list_free(&ul);
		store_group_list_free(&gl);
		store_msg_list_free(&ml);
		store_user_clear(&u);
	}
}
END_TEST

START_TEST(test_user)
{
	struct store		*st;
	struct store_user	 u;
	char			 name[128], other[160];
	size_t			 len, olen;
	int32_t			 id, id2;
	int			 rc;

	st = open_store();
	len = uname_make(name, sizeof(name), "user");
	ck_assert_int_eq(store_user_create(st, name, len, "$2b$10$abc", &id),
	    STORE_OK);
	ck_assert_int_eq(store_user_create(st, name, len, "x", &id2),
	    STORE_EXISTS);
	ck_assert(store_error(st)[0] != '\0');

	ck_assert_int_eq(store_user_get(st, id, &u), STORE_OK);
	ck_assert_int_eq(u.id, id);
	ck_assert_uint_eq(u.name_len, len);
	ck_assert(memcmp(u.name, name, len) == 0 && u.name[len] == '\0');
	ck_assert_str_eq(u.pwhash, "$2b$10$abc");
	store_user_clear(&u);

	ck_assert_int_eq(store_user_by_name(st, name, len, &u), STORE_OK);
	ck_assert_int_eq(u.id, id);
	ck_assert_str_eq(u.pwhash, "$2b$10$abc");
	store_user_clear(&u);
	ck_assert_ptr_null(u.name);

	ck_assert_int_eq(store_user_get(st, INT32_MAX, &u), STORE_NOTFOUND);
	len = uname_make(other, sizeof(other), "nobody");
	ck_assert_int_eq(store_user_by_name(st, other, len, &u),
	    STORE_NOTFOUND);
	/* A prefix of a name is not the name. */
	ck_assert_int_eq(store_user_by_name(st, name, 4, &u), STORE_NOTFOUND);

	/* Names compare as bytes: case and trailing blanks matter. */
	len = uname_make(name, sizeof(name), "Case");
	memcpy(other, name, len);
	other[0] = 'c';
	ck_assert_int_eq(store_user_create(st, name, len, "h", &id), STORE_OK);
	rc = store_user_create(st, other, len, "h", &id2);
	ck_assert_msg(rc == STORE_OK, "%d %s", rc, store_error(st));
	ck_assert_int_ne(id, id2);
	memcpy(other, name, len);
	other[len] = ' ';
	olen = len + 1;
	ck_assert_int_eq(store_user_create(st, other, olen, "h", &id2),
	    STORE_OK);
	ck_assert_int_ne(id, id2);
	ck_assert_int_eq(store_user_by_name(st, other, olen, &u), STORE_OK);
	ck_assert_int_eq(u.id, id2);
	store_user_clear(&u);
	store_close(st);
}
END_TEST

START_TEST(test_friend)
{
	struct store		*st;
	struct store_user_list	 l;
	int32_t			 a, b, c;

	st = open_store();
	a = mkuser(st, "fa");
	b = mkuser(st, "fb");
	c = mkuser(st, "fc");

	ck_assert_int_eq(store_friends(st, a, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 0);
	store_user_list_free(&l);

	ck_assert_int_eq(store_friend_add(st, a, b), STORE_OK);
	ck_assert_int_eq(store_friend_add(st, a, b), STORE_OK);
	ck_assert_int_eq(store_friend_add(st, b, a), STORE_OK);
	ck_assert_int_eq(store_friend_add(st, a, c), STORE_OK);

	ck_assert_int_eq(store_friends(st, a, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_int_eq(l.v[0].id, b);	/* ordered by id */
	ck_assert_int_eq(l.v[1].id, c);
	ck_assert(strncmp(l.v[0].name, "fb_", 3) == 0);
	ck_assert_uint_eq(l.v[0].name_len, strlen(l.v[0].name));
	ck_assert_ptr_null(l.v[0].pwhash);
	store_user_list_free(&l);
	ck_assert_uint_eq(l.n, 0);

	/* Mutual. */
	ck_assert_int_eq(store_friends(st, b, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_int_eq(l.v[0].id, a);
	store_user_list_free(&l);
	ck_assert_int_eq(store_friends(st, c, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_int_eq(l.v[0].id, a);
	store_user_list_free(&l);

	ck_assert_int_eq(store_friend_add(st, a, INT32_MAX), STORE_NOTFOUND);
	ck_assert_int_eq(store_friend_add(st, a, a), STORE_ERR);
	ck_assert(store_error(st)[0] != '\0');
	ck_assert_int_eq(store_friends(st, a, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 2);
	store_user_list_free(&l);
	store_close(st);
}
END_TEST

static const struct store_group *
find_group(const struct store_group_list *l, int32_t gid)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].id == gid)
			return &l->v[i];
	return NULL;
}

START_TEST(test_group)
{
	struct store			*st;
	struct store_user_list		 l;
	struct store_group_list		 gl;
	const struct store_group	*g;
	char				 name[128], name2[128];
	size_t				 len, len2;
	int32_t				 a, b, c, d, gid, gid2, x;

	st = open_store();
	a = mkuser(st, "ga");
	b = mkuser(st, "gb");
	c = mkuser(st, "gc");
	d = mkuser(st, "gd");

	len = uname_make(name, sizeof(name), "group");
	ck_assert_int_eq(store_group_create(st, a, name, len, "about", 5,
	    &gid), STORE_OK);
	ck_assert_int_gt(gid, 0);
	ck_assert_int_eq(store_group_create(st, b, name, len, "", 0, &x),
	    STORE_EXISTS);

	ck_assert_int_eq(store_group_members(st, gid, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_int_eq(l.v[0].id, a);
	ck_assert_int_eq(l.v[0].creator, 1);
	store_user_list_free(&l);

	/* Join order is kept, whatever the ids. */
	ck_assert_int_eq(store_group_join(st, gid, d), STORE_OK);
	ck_assert_int_eq(store_group_join(st, gid, b), STORE_OK);
	ck_assert_int_eq(store_group_join(st, gid, d), STORE_OK);
	ck_assert_int_eq(store_group_join(st, gid, a), STORE_OK);
	ck_assert_int_eq(store_group_join(st, INT32_MAX, b), STORE_NOTFOUND);

	ck_assert_int_eq(store_group_is_member(st, gid, a), STORE_MEMBER);
	ck_assert_int_eq(store_group_is_member(st, gid, d), STORE_MEMBER);
	ck_assert_int_eq(store_group_is_member(st, gid, c), STORE_NOT_MEMBER);
	ck_assert_int_eq(store_group_is_member(st, INT32_MAX, a),
	    STORE_NOT_MEMBER);

	ck_assert_int_eq(store_group_members(st, gid, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_int_eq(l.v[0].id, a);
	ck_assert_int_eq(l.v[0].creator, 1);
	ck_assert_int_eq(l.v[1].id, d);
	ck_assert_int_eq(l.v[1].creator, 0);
	ck_assert_int_eq(l.v[2].id, b);
	ck_assert_int_eq(l.v[2].creator, 0);
	ck_assert(strncmp(l.v[1].name, "gd_", 3) == 0);
	store_user_list_free(&l);
	ck_assert_int_eq(store_group_members(st, INT32_MAX, &l),
	    STORE_NOTFOUND);

	len2 = uname_make(name2, sizeof(name2), "group2");
	ck_assert_int_eq(store_group_create(st, d, name2, len2, "d's", 3,
	    &gid2), STORE_OK);
	ck_assert_int_ne(gid, gid2);

	ck_assert_int_eq(store_user_groups(st, d, &gl), STORE_OK);
	ck_assert_uint_eq(gl.n, 2);
	g = find_group(&gl, gid);
	ck_assert_ptr_nonnull(g);
	ck_assert_uint_eq(g->name_len, len);
	ck_assert(memcmp(g->name, name, len) == 0);
	ck_assert_uint_eq(g->desc_len, 5);
	ck_assert_str_eq(g->desc, "about");
	ck_assert_uint_eq(g->members.n, 3);
	ck_assert_int_eq(g->members.v[0].id, a);
	ck_assert_int_eq(g->members.v[0].creator, 1);
	ck_assert_int_eq(g->members.v[1].id, d);
	ck_assert_int_eq(g->members.v[2].id, b);
	ck_assert_uint_eq(g->members.v[2].name_len,
	    strlen(g->members.v[2].name));
	g = find_group(&gl, gid2);
	ck_assert_ptr_nonnull(g);
	ck_assert_uint_eq(g->members.n, 1);
	ck_assert_int_eq(g->members.v[0].id, d);
	ck_assert_int_eq(g->members.v[0].creator, 1);
	ck_assert_str_eq(g->desc, "d's");
	store_group_list_free(&gl);
	ck_assert_uint_eq(gl.n, 0);

	ck_assert_int_eq(store_user_groups(st, c, &gl), STORE_OK);
	ck_assert_uint_eq(gl.n, 0);
	store_group_list_free(&gl);
	store_close(st);
}
END_TEST

START_TEST(test_offline)
{
	struct store		*st;
	struct store_msg_list	 l;
	int32_t			 u[3];
	int64_t			 id1, id2, id3;

	st = open_store();
	u[0] = mkuser(st, "oa");
	u[1] = mkuser(st, "ob");
	u[2] = mkuser(st, "oc");

	ck_assert_int_eq(store_offline_add(st, u, 0, "none", 4), STORE_OK);
	ck_assert_int_eq(store_offline_add(st, u, 3, "one", 3), STORE_OK);
	ck_assert_int_eq(store_offline_add(st, u, 2, "two", 3), STORE_OK);
	ck_assert_int_eq(store_offline_add(st, u, 1, "three", 5), STORE_OK);
	ck_assert_int_eq(store_offline_add(st, u, 1, "", 0), STORE_OK);

	ck_assert_int_eq(store_offline_fetch(st, u[0], 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 4);
	ck_assert_str_eq(l.v[0].text, "one");
	ck_assert_uint_eq(l.v[0].len, 3);
	ck_assert_str_eq(l.v[1].text, "two");
	ck_assert_str_eq(l.v[2].text, "three");
	ck_assert_uint_eq(l.v[3].len, 0);
	ck_assert_str_eq(l.v[3].text, "");
	ck_assert(l.v[0].id < l.v[1].id && l.v[1].id < l.v[2].id &&
	    l.v[2].id < l.v[3].id);
	id1 = l.v[0].id;
	id2 = l.v[1].id;
	id3 = l.v[2].id;
	store_msg_list_free(&l);

	ck_assert_int_eq(store_offline_fetch(st, u[0], 2, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_int_eq(l.v[0].id, id1);
	ck_assert_int_eq(l.v[1].id, id2);
	store_msg_list_free(&l);

	/* Handed over up to id2: those never come again. */
	ck_assert_int_eq(store_offline_delete(st, u[0], id2), STORE_OK);
	ck_assert_int_eq(store_offline_fetch(st, u[0], 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_int_eq(l.v[0].id, id3);
	ck_assert_str_eq(l.v[0].text, "three");
	store_msg_list_free(&l);

	/* Other users' copies are untouched. */
	ck_assert_int_eq(store_offline_fetch(st, u[1], 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_str_eq(l.v[0].text, "one");
	ck_assert_str_eq(l.v[1].text, "two");
	store_msg_list_free(&l);
	ck_assert_int_eq(store_offline_fetch(st, u[2], 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.v[0].text, "one");
	ck_assert_int_eq(store_offline_delete(st, u[2], l.v[0].id), STORE_OK);
	store_msg_list_free(&l);
	ck_assert_int_eq(store_offline_fetch(st, u[2], 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 0);
	store_msg_list_free(&l);

	ck_assert_int_eq(store_offline_delete(st, u[0], INT64_MAX), STORE_OK);
	ck_assert_int_eq(store_offline_fetch(st, u[0], 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 0);
	store_msg_list_free(&l);
	store_close(st);
}
END_TEST

/* Acknowledged chats: claim once, store durably, remove after delivery. */
START_TEST(test_ack)
{
	struct store		*st;
	struct store_msg_list	 l;
	int32_t			 from, to[2];
	int64_t			 smid, smid2, other;
	int			 done;

	st = open_store();
	from = mkuser(st, "ka");
	to[0] = mkuser(st, "kb");
	to[1] = mkuser(st, "kc");

	ck_assert_int_eq(store_ack_claim(st, from, 7, &smid, &done), STORE_OK);
	ck_assert_int_gt(smid, 0);
	ck_assert_int_eq(done, 0);
	/* claimed but not stored (a crash in between): same smid, not done */
	ck_assert_int_eq(store_ack_claim(st, from, 7, &smid2, &done),
	    STORE_OK);
	ck_assert_int_eq(smid2, smid);
	ck_assert_int_eq(done, 0);
	/* another client message id, or another sender: another smid */
	ck_assert_int_eq(store_ack_claim(st, from, 8, &other, &done),
	    STORE_OK);
	ck_assert_int_ne(other, smid);
	ck_assert_int_eq(store_ack_claim(st, to[0], 7, &other, &done),
	    STORE_OK);
	ck_assert_int_ne(other, smid);

	ck_assert_int_eq(store_ack_commit(st, smid, to, 2, "acked", 5),
	    STORE_OK);
	ck_assert_int_eq(store_ack_claim(st, from, 7, &smid2, &done),
	    STORE_OK);
	ck_assert_int_eq(smid2, smid);
	ck_assert_int_eq(done, 1);
	/* a commit with no recipient still marks the claim done */
	ck_assert_int_eq(store_ack_commit(st, other, to, 0, "x", 1), STORE_OK);
	ck_assert_int_eq(store_ack_claim(st, to[0], 7, &smid2, &done),
	    STORE_OK);
	ck_assert_int_eq(done, 1);

	/* delivered live to to[0]: only its copy goes */
	ck_assert_int_eq(store_offline_add(st, to, 1, "plain", 5), STORE_OK);
	ck_assert_int_eq(store_offline_remove(st, to[0], smid), STORE_OK);
	ck_assert_int_eq(store_offline_fetch(st, to[0], 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.v[0].text, "plain");
	store_msg_list_free(&l);
	ck_assert_int_eq(store_offline_fetch(st, to[1], 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.v[0].text, "acked");
	store_msg_list_free(&l);
	store_close(st);
}
END_TEST

/* Blocks of plain-chat ids and claims' ids never overlap. */
START_TEST(test_smid_block)
{
	struct store		*st;
	int32_t			 u;
	int64_t			 b1, b2, smid;
	int			 done;

	st = open_store();
	u = mkuser(st, "sb");
	ck_assert_int_eq(store_smid_block(st, u, &b1), STORE_OK);
	ck_assert_int_gt(b1, 0);
	ck_assert_int_eq(b1 % STORE_SMID_BLOCK, 0);
	ck_assert_int_eq(store_smid_block(st, u, &b2), STORE_OK);
	ck_assert_int_eq(b2 % STORE_SMID_BLOCK, 0);
	ck_assert_int_ne(b1, b2);
	/* an acknowledged chat's smid: a block of its own, a multiple too */
	ck_assert_int_eq(store_ack_claim(st, u, 1, &smid, &done), STORE_OK);
	ck_assert_int_eq(done, 0);
	ck_assert_int_eq(smid % STORE_SMID_BLOCK, 0);
	ck_assert_int_ne(smid, b1);
	ck_assert_int_ne(smid, b2);
	/* and its commit marks that claim done */
	ck_assert_int_eq(store_ack_commit(st, smid, &u, 1, "m", 1), STORE_OK);
	ck_assert_int_eq(store_ack_claim(st, u, 1, &b1, &done), STORE_OK);
	ck_assert_int_eq(b1, smid);
	ck_assert_int_eq(done, 1);
	store_close(st);
}
END_TEST

/* Store text as a message and as a group name/desc; all must come back. */
static void
roundtrip(struct store *st, int32_t uid, const char *text, size_t len)
{
	struct store_msg_list	 l;
	struct store_group_list	 gl;
	const struct store_group *g;
	char			 name[1024];
	size_t			 nlen;
	int32_t			 gid;

	ck_assert_int_eq(store_offline_add(st, &uid, 1, text, len), STORE_OK);
	ck_assert_int_eq(store_offline_fetch(st, uid, 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_uint_eq(l.v[0].len, len);
	ck_assert(memcmp(l.v[0].text, text, len) == 0);
	ck_assert(l.v[0].text[len] == '\0');
	ck_assert_int_eq(store_offline_delete(st, uid, l.v[0].id), STORE_OK);
	store_msg_list_free(&l);

	/* As a group name (NUL-free part) and the desc (all of it). */
	nlen = uname_make(name, sizeof(name), "bytes");
	ck_assert(nlen + len < sizeof(name));
	if (memchr(text, 0, len) == NULL) {
		memcpy(name + nlen, text, len);
		nlen += len;
	}
	ck_assert_int_eq(store_group_create(st, uid, name, nlen, text, len,
	    &gid), STORE_OK);
	ck_assert_int_eq(store_user_groups(st, uid, &gl), STORE_OK);
	g = find_group(&gl, gid);
	ck_assert_ptr_nonnull(g);
	ck_assert_uint_eq(g->name_len, nlen);
	ck_assert(memcmp(g->name, name, nlen) == 0);
	ck_assert_uint_eq(g->desc_len, len);
	ck_assert(memcmp(g->desc, text, len) == 0);
	ck_assert(g->desc[len] == '\0');
	store_group_list_free(&gl);
}

START_TEST(test_bytes)
{
	static const char *const texts[] = {
		"\xf0\x9f\x98\x80 \xf0\x9d\x84\x9e \xe4\xbd\xa0\xe5\xa5\xbd",
		"'; DROP TABLE User; --",
		"\"quoted\" 'single' `back` \\backslash\\ \\0 \\n",
		"%s%n%x%p %%d ?1 ?2 :name @v $x",
		"Robert'); DELETE FROM OfflineMessage; --",
		"\t\r\n\x01\x1f\x7f",
	};
	struct store		*st;
	struct store_user	 u;
	char			 all[300], name[400];
	size_t			 i, nlen;
	int32_t			 uid, id;

	st = open_store();
	uid = mkuser(st, "bytes");

	/* Every byte value but NUL, in a name. */
	nlen = uname_make(name, sizeof(name), "allbytes");
	for (i = 1; i < 256; i++)
		name[nlen++] = (char)i;
	ck_assert_int_eq(store_user_create(st, name, nlen, "h", &id),
	    STORE_OK);
	ck_assert_int_eq(store_user_by_name(st, name, nlen, &u), STORE_OK);
	ck_assert_int_eq(u.id, id);
	store_user_clear(&u);
	ck_assert_int_eq(store_user_get(st, id, &u), STORE_OK);
	ck_assert_uint_eq(u.name_len, nlen);
	ck_assert(memcmp(u.name, name, nlen) == 0);
	store_user_clear(&u);

	/* Hostile names are only names. */
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		nlen = uname_make(name, sizeof(name), "x");
		memcpy(name + nlen, texts[i], strlen(texts[i]));
		nlen += strlen(texts[i]);
		ck_assert_int_eq(store_user_create(st, name, nlen, texts[i],
		    &id), STORE_OK);
		ck_assert_int_eq(store_user_by_name(st, name, nlen, &u),
		    STORE_OK);
		ck_assert_int_eq(u.id, id);
		ck_assert_str_eq(u.pwhash, texts[i]);
		store_user_clear(&u);
		roundtrip(st, uid, texts[i], strlen(texts[i]));
	}

	/* All 256 byte values, NUL included, then 1..255 as a run. */
	for (i = 0; i < 256; i++)
		all[i] = (char)i;
	roundtrip(st, uid, all, 256);
	roundtrip(st, uid, all + 1, 255);
	roundtrip(st, uid, "a\0b\0\0c", 6);
	roundtrip(st, uid, "\0", 1);

	/* The tables survived the injections. */
	mkuser(st, "after");
	ck_assert_int_eq(store_user_get(st, uid, &u), STORE_OK);
	store_user_clear(&u);
	store_close(st);
}
END_TEST

START_TEST(test_big)
{
	struct store		*st;
	struct store_msg_list	 l;
	char			*big;
	size_t			 len = 1024 * 1024, i;
	int32_t			 uid;

	st = open_store();
	uid = mkuser(st, "big");
	ck_assert_ptr_nonnull(big = malloc(len));
	for (i = 0; i < len; i++)
		big[i] = (char)('a' + (i * 7 + i / 1000) % 26);
	ck_assert_int_eq(store_offline_add(st, &uid, 1, big, len), STORE_OK);
	ck_assert_int_eq(store_offline_fetch(st, uid, 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_uint_eq(l.v[0].len, len);
	ck_assert(memcmp(l.v[0].text, big, len) == 0);
	store_msg_list_free(&l);
	free(big);
	store_close(st);
}
END_TEST

/* One writer process: its own handle, NCONC one-message transactions. */
static void
writer(const char *s, int k, int32_t uid, int fd)
{
	struct store	*st;
	char		 err[256], msg[64];
	char		 c;
	int		 i, n;

	/* Start together with the other writer. */
	if (read(fd, &c, 1) == -1)
		_exit(3);
	if ((st = store_open(s, NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "writer %d: %s\n", k, err);
		_exit(1);
	}
	for (i = 0; i < NCONC; i++) {
		n = snprintf(msg, sizeof(msg), "w%d:%d", k, i);
		if (store_offline_add(st, &uid, 1, msg, (size_t)n) != STORE_OK) {
			fprintf(stderr, "writer %d: %d: %s\n", k, i,
			    store_error(st));
			_exit(2);
		}
	}
	store_close(st);
	_exit(0);
}

START_TEST(test_concurrent)
{
	struct store		*st;
	struct store_msg_list	 l;
	pid_t			 pid[2];
	int			 p[2], k, status, next[2], i, w, seq;
	int32_t			 uid;

	st = open_store();
	uid = mkuser(st, "conc");
	store_close(st);	/* never share a handle across fork */

	ck_assert_int_eq(pipe(p), 0);
	for (k = 0; k < 2; k++) {
		pid[k] = fork();
		ck_assert_int_ne(pid[k], -1);
		if (pid[k] == 0) {
			close(p[1]);
			writer(spec, k, uid, p[0]);
		}
	}
	close(p[0]);
	close(p[1]);		/* EOF: go */
	for (k = 0; k < 2; k++) {
		ck_assert_int_eq(waitpid(pid[k], &status, 0), pid[k]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "writer %d failed: status %d", k, status);
	}

	st = open_store();
	ck_assert_int_eq(store_offline_fetch(st, uid, 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 2 * NCONC);
	next[0] = next[1] = 0;
	for (i = 0; i < (int)l.n; i++) {
		ck_assert_int_eq(sscanf(l.v[i].text, "w%d:%d", &w, &seq), 2);
		ck_assert(w == 0 || w == 1);
		ck_assert_int_eq(seq, next[w]);	/* each writer's order kept */
		next[w]++;
		if (i > 0)
			ck_assert(l.v[i].id > l.v[i - 1].id);
	}
	ck_assert_int_eq(next[0], NCONC);
	ck_assert_int_eq(next[1], NCONC);
	store_msg_list_free(&l);
	store_close(st);
}
END_TEST

/* SQLite only: several processes creating a brand-new file at once. */
START_TEST(test_concurrent_create)
{
	char		 path[256], s[300], err[256], name[2], c;
	struct store	*st;
	pid_t		 pid[4];
	int		 p[2], k, status;
	int32_t		 id;

	if (!is_sqlite)
		return;
	snprintf(path, sizeof(path), "%s.new.db", base);
	snprintf(s, sizeof(s), "sqlite:%s", path);
	rmdb(path);
	ck_assert_int_eq(pipe(p), 0);
	for (k = 0; k < 4; k++) {
		pid[k] = fork();
		ck_assert_int_ne(pid[k], -1);
		if (pid[k] != 0)
			continue;
		close(p[1]);
		if (read(p[0], &c, 1) == -1)
			_exit(3);
		if ((st = store_open(s, NULL, err, sizeof(err))) == NULL) {
			fprintf(stderr, "opener %d: %s\n", k, err);
			_exit(1);
		}
		name[0] = 'u';
		name[1] = (char)('0' + k);
		if (store_user_create(st, name, 2, "h", &id) != STORE_OK) {
			fprintf(stderr, "opener %d: %s\n", k, store_error(st));
			_exit(2);
		}
		store_close(st);
		_exit(0);
	}
	close(p[0]);
	close(p[1]);
	for (k = 0; k < 4; k++) {
		ck_assert_int_eq(waitpid(pid[k], &status, 0), pid[k]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "opener %d failed: status %d", k, status);
	}
	rmdb(path);
}
END_TEST

START_TEST(test_reopen)
{
	struct store		*st;
	struct store_user	 u;
	struct store_msg_list	 l;
	char			 name[128];
	size_t			 len;
	int32_t			 id;

	st = open_store();
	len = uname_make(name, sizeof(name), "persist");
	ck_assert_int_eq(store_user_create(st, name, len, "h", &id), STORE_OK);
	ck_assert_int_eq(store_offline_add(st, &id, 1, "kept", 4), STORE_OK);
	store_close(st);

	st = open_store();
	ck_assert_int_eq(store_user_by_name(st, name, len, &u), STORE_OK);
	ck_assert_int_eq(u.id, id);
	store_user_clear(&u);
	ck_assert_int_eq(store_offline_fetch(st, id, 0, &l), STORE_OK);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.v[0].text, "kept");
	store_msg_list_free(&l);
	store_close(st);
}
END_TEST

/*
 * SQLite only: a file from a newer chatd is refused.  The schema
 * version (PRAGMA user_version) is the big-endian word at offset 60.
 */
START_TEST(test_version)
{
	static const unsigned char	 v99[4] = { 0, 0, 0, 99 };
	char				 path[256], s[300], err[256];
	struct store			*st;
	int				 fd;

	if (!is_sqlite)
		return;
	snprintf(path, sizeof(path), "%s.ver.db", base);
	snprintf(s, sizeof(s), "sqlite:%s", path);
	rmdb(path);
	st = open_spec(s);
	store_close(st);	/* last close folds the WAL back in */

	ck_assert_int_ne(fd = open(path, O_WRONLY), -1);
	ck_assert_int_eq(pwrite(fd, v99, 4, 60), 4);
	close(fd);
	err[0] = '\0';
	ck_assert_ptr_null(store_open(s, NULL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "version") != NULL, "err: %s", err);
	rmdb(path);
}
END_TEST


Suite *
store_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("store");

	tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_open);
	tcase_add_test(tc, test_user);
	tcase_add_test(tc, test_friend);
	tcase_add_test(tc, test_group);
	tcase_add_test(tc, test_offline);
	tcase_add_test(tc, test_ack);
	tcase_add_test(tc, test_smid_block);
	tcase_add_test(tc, test_bytes);
	tcase_add_test(tc, test_big);
	tcase_add_test(tc, test_reopen);
	tcase_add_test(tc, test_version);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_concurrent);
	tcase_add_test(tc, test_concurrent_create);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	char	 path[300];
	int	 rc;

	store_test_init("check_store");
	rc = store_test_run(store_suite());
	/* Also what a failed test left behind. */
	snprintf(path, sizeof(path), "%s.new.db", base);
	rmdb(path);
	snprintf(path, sizeof(path), "%s.ver.db", base);
	rmdb(path);
	return rc;
}
