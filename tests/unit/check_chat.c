/*
 * check_chat.c - the chat layer without chatd (the harness is in
 * check_chat_util.c): the real SQLite store in a temporary directory, a
 * real session table, the real connection layer on a libev loop, and
 * clients as socketpairs.  A test writes request frames and reads the
 * answer lines, as a client would.
 *
 * Each test runs in its own process (CK_FORK): chat, conn and the loop
 * keep process-wide state, so every test starts from chat_init.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <json-c/json.h>
#include <sqlite3.h>

#include "auth.h"
#include "buf.h"
#include "cfg.h"
#include "chat.h"
#include "chat_impl.h"
#include "conn.h"
#include "online.h"
#include "proto.h"
#include "store.h"
#include "storeq.h"
#include "check_run.h"
#include "check_chat_util.h"

/* ---- tests --------------------------------------------------------------- */

START_TEST(register_login)
{
	struct client		*cl = cli_new();
	struct json_object	*o;
	int32_t			 id;

	id = reg(cl, "alice");
	o = login(cl, id, ERR_OK);
	ck_assert_int_eq(jint(o, "id"), id);
	ck_assert_str_eq(jstr(o, "name"), "alice");
	json_object_put(o);
	/* the session is in the table */
	ck_assert_uint_eq(online_count(chk_online), 1);
	/* the name is taken now */
	cli_send(cl, "{\"msgid\":%d,\"name\":\"alice\",\"password\":\"x\"}",
	    MSG_REG);
	expect_free(cl, MSG_REG_ACK, ERR_AUTH);
	/* a wrong password is refused */
	cli_free(cl);
	cl = cli_new();
	cli_send(cl, "{\"id\":%d,\"msgid\":%d,\"password\":\"nope\"}",
	    (int)id, MSG_LOGIN);
	expect_free(cl, MSG_LOGIN_ACK, ERR_AUTH);
	cli_free(cl);
}
END_TEST

START_TEST(login_twice)
{
	struct client	*a, *b;
	int32_t		 id;

	a = user_new("bob", &id);
	/* the same connection again */
	json_object_put(login(a, id, ERR_ALREADY_LOGGED_IN));
	/* another connection while the first holds the session */
	b = cli_new();
	json_object_put(login(b, id, ERR_ONLINE));
	/* logged out, the user may log in elsewhere */
	cli_send(a, "{\"id\":%d,\"msgid\":%d}", (int)id, MSG_LOGINOUT);
	sync_ok(a);
	ck_assert_uint_eq(online_count(chk_online), 0);
	json_object_put(login(b, id, ERR_OK));
	cli_free(a);
	cli_free(b);
}
END_TEST

START_TEST(chat_live)
{
	struct client		*a, *b;
	struct json_object	*o;
	int32_t			 ida, idb;

	a = user_new("carol", &ida);
	b = user_new("dave", &idb);
	chat_to(a, ida, idb, "hello dave");
	o = expect(b, MSG_ONE_CHAT, -1);
	ck_assert_str_eq(jstr(o, "msg"), "hello dave");
	ck_assert_int_eq(jint(o, "id"), ida);
	ck_assert_str_eq(jstr(o, "name"), "carol");
	json_object_put(o);
	cli_quiet(a);		/* no answer to a delivered chat */
	/* a user that does not exist */
	chat_to(a, ida, idb + 100, "nobody");
	expect_free(a, MSG_ERROR, ERR_NO_SUCH_USER);
	cli_free(a);
	cli_free(b);
}
END_TEST

/* Log cl in as id: its login answer holds one offline chat, text from. */
static void
login_one_offline(struct client *cl, int32_t id, const char *text,
    int32_t from)
{
	struct json_object	*o, *msgs, *m;

	o = login(cl, id, ERR_OK);
	ck_assert(json_object_object_get_ex(o, "offlinemsg", &msgs));
	ck_assert_int_eq(json_object_array_length(msgs), 1);
	/* each one the forwarded object's text */
	m = json_tokener_parse(json_object_get_string(
	    json_object_array_get_idx(msgs, 0)));
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(jstr(m, "msg"), text);
	ck_assert_int_eq(jint(m, "id"), from);
	json_object_put(m);
	json_object_put(o);
}

START_TEST(chat_offline)
{
	struct client		*a, *b;
	struct json_object	*o, *msgs;
	int32_t			 ida, idb;

	a = user_new("erin", &ida);
	b = cli_new();
	idb = reg(b, "frank");
	chat_to(a, ida, idb, "while you were out");
	sync_ok(a);		/* stored: no error */
	login_one_offline(b, idb, "while you were out", ida);
	/* once delivered the stored copy goes: a new login finds none */
	pump(NULL, 0.1);
	cli_send(b, "{\"id\":%d,\"msgid\":%d}", (int)idb, MSG_LOGINOUT);
	sync_ok(b);
	o = login(b, idb, ERR_OK);
	ck_assert(!json_object_object_get_ex(o, "offlinemsg", &msgs) ||
	    json_object_array_length(msgs) == 0);
	json_object_put(o);
	cli_free(a);
	cli_free(b);
}
END_TEST

/*
 * A chat another worker handed over for a user who left meanwhile has
 * no other copy: while the store fails it waits in memory, and it is
 * stored once the store works again.
 */
START_TEST(store_fails_then_recovers)
{
	struct client		*b;
	struct chan_hdr		 h;
	sqlite3			*db;
	char			 path[256], *line;
	int32_t			 idb;
	int			 n;

	b = cli_new();
	idb = reg(b, "gina");
	snprintf(path, sizeof(path), "%s/chat-%ld.db", chk_dir, (long)getpid());
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	/* a store thread may be writing (history, an smid block) */
	sqlite3_busy_timeout(db, 5000);
	ck_assert_int_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL,
	    NULL), SQLITE_OK);
	n = asprintf(&line, "{\"id\":1,\"msg\":\"kept for later\","
	    "\"msgid\":%d,\"name\":\"x\",\"time\":\"t\",\"toid\":%d}\n",
	    MSG_ONE_CHAT, (int)idb);
	ck_assert_int_gt(n, 0);
	memset(&h, 0, sizeof(h));
	h.type = CHAN_DELIVER;
	h.uid = (uint32_t)idb;
	h.conn = 999999;		/* no such connection: gina left */
	h.len = (uint32_t)n;
	chat_channel_msg(&h, line);
	/* stored in the store thread, which waits for the lock; the chk_loop
	 * goes on meanwhile and the chat is kept */
	pump(NULL, 0.3);
	chat_retry_stores();		/* one pass at a time: no second */
	ck_assert_uint_eq(chat_retry_pending(), 1);
	ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	for (n = 0; n < 1000 && chat_retry_pending() > 0; n++)
		pump(NULL, 0.01);
	ck_assert_uint_eq(chat_retry_pending(), 0);
	ck_assert_uint_eq(chat_retry_abandon(), 0);	/* nothing waits */
	login_one_offline(b, idb, "kept for later", 1);
	free(line);
	cli_free(b);
}
END_TEST

START_TEST(group_chat)
{
	struct client		*a, *b, *c;
	struct store_group_list	 groups = { NULL, 0 };
	struct json_object	*o;
	int32_t			 ida, idb, idc, gid;

	a = user_new("gina", &ida);
	b = user_new("hank", &idb);
	c = user_new("ivan", &idc);
	cli_send(a, "{\"groupdesc\":\"d\",\"groupname\":\"g1\",\"id\":%d,"
	    "\"msgid\":%d}", (int)ida, MSG_CREATE_GROUP);
	sync_ok(a);
	ck_assert_int_eq(store_user_groups(chk_store, ida, &groups), STORE_OK);
	ck_assert_uint_eq(groups.n, 1);
	gid = groups.v[0].id;
	store_group_list_free(&groups);
	cli_send(b, "{\"groupid\":%d,\"id\":%d,\"msgid\":%d}", (int)gid,
	    (int)idb, MSG_ADD_GROUP);
	sync_ok(b);

	cli_send(a, "{\"groupid\":%d,\"id\":%d,\"msg\":\"to all\","
	    "\"msgid\":%d}", (int)gid, (int)ida, MSG_GROUP_CHAT);
	o = expect(b, MSG_GROUP_CHAT, -1);
	ck_assert_str_eq(jstr(o, "msg"), "to all");
	ck_assert_int_eq(jint(o, "groupid"), gid);
	json_object_put(o);
	cli_quiet(a);		/* the sender does not get its own line */
	cli_quiet(c);		/* nor does a non-member */
	/* only members may post */
	cli_send(c, "{\"groupid\":%d,\"id\":%d,\"msg\":\"let me in\","
	    "\"msgid\":%d}", (int)gid, (int)idc, MSG_GROUP_CHAT);
	expect_free(c, MSG_ERROR, ERR_NOT_MEMBER);
	cli_quiet(b);
	/* no such group */
	cli_send(a, "{\"groupid\":%d,\"id\":%d,\"msg\":\"x\",\"msgid\":%d}",
	    (int)gid + 100, (int)ida, MSG_GROUP_CHAT);
	expect_free(a, MSG_ERROR, ERR_NO_SUCH_GROUP);
	cli_free(a);
	cli_free(b);
	cli_free(c);
}
END_TEST

START_TEST(add_friend)
{
	struct client		*a, *b;
	struct store_user_list	 friends = { NULL, 0 };
	int32_t			 ida, idb;

	a = user_new("judy", &ida);
	b = cli_new();
	idb = reg(b, "karl");
	cli_send(a, "{\"friendid\":%d,\"id\":%d,\"msgid\":%d}", (int)idb,
	    (int)ida, MSG_ADD_FRIEND);
	sync_ok(a);
	ck_assert_int_eq(store_friends(chk_store, ida, &friends), STORE_OK);
	ck_assert_uint_eq(friends.n, 1);
	ck_assert_int_eq(friends.v[0].id, idb);
	store_user_list_free(&friends);
	/* not oneself, not a user that does not exist */
	cli_send(a, "{\"friendid\":%d,\"id\":%d,\"msgid\":%d}", (int)ida,
	    (int)ida, MSG_ADD_FRIEND);
	expect_free(a, MSG_ERROR, ERR_NOT_ALLOWED);
	cli_send(a, "{\"friendid\":%d,\"id\":%d,\"msgid\":%d}", (int)idb + 100,
	    (int)ida, MSG_ADD_FRIEND);
	expect_free(a, MSG_ERROR, ERR_NO_SUCH_USER);
	cli_free(a);
	cli_free(b);
}
END_TEST

START_TEST(spoofed_sender)
{
	struct client	*a, *b, *anon;
	int32_t		 ida, idb;

	a = user_new("lena", &ida);
	b = user_new("mike", &idb);
	/* a's connection claims to be b */
	chat_to(a, idb, idb, "from mike, honest");
	expect_free(a, MSG_ERROR, ERR_IDENTITY);
	cli_quiet(b);
	/* and before any login, nothing but REG/LOGIN/PING/WHOAMI */
	anon = cli_new();
	chat_to(anon, ida, idb, "hi");
	expect_free(anon, MSG_ERROR, ERR_NOT_LOGGED_IN);
	cli_quiet(b);
	cli_free(a);
	cli_free(b);
	cli_free(anon);
}
END_TEST

START_TEST(acked_resend)
{
	struct client		*a, *b;
	struct json_object	*o;
	int32_t			 ida, idb;
	int64_t			 smid;

	a = user_new("nina", &ida);
	b = user_new("otto", &idb);
	cli_send(a, "{\"cmid\":7,\"id\":%d,\"msg\":\"once\",\"msgid\":%d,"
	    "\"toid\":%d}", (int)ida, MSG_ONE_CHAT, (int)idb);
	o = expect(a, MSG_CHAT_ACK, -1);
	ck_assert_int_eq(jint(o, "cmid"), 7);
	smid = jint(o, "smid");
	ck_assert_int_gt(smid, 0);
	json_object_put(o);
	o = expect(b, MSG_ONE_CHAT, -1);
	ck_assert_str_eq(jstr(o, "msg"), "once");
	ck_assert_int_eq(jint(o, "smid"), smid);
	json_object_put(o);
	/* the ack was lost, say: the resend gets the same smid, once */
	cli_send(a, "{\"cmid\":7,\"id\":%d,\"msg\":\"once\",\"msgid\":%d,"
	    "\"toid\":%d}", (int)ida, MSG_ONE_CHAT, (int)idb);
	o = expect(a, MSG_CHAT_ACK, -1);
	ck_assert_int_eq(jint(o, "cmid"), 7);
	ck_assert_int_eq(jint(o, "smid"), smid);
	json_object_put(o);
	cli_quiet(b);
	cli_free(a);
	cli_free(b);
}
END_TEST

/*
 * A store write that waits for a lock (another process holds the
 * SQLite file) holds up only the connection whose request needs it:
 * its later requests wait their turn, other connections go on.
 */
START_TEST(locked_store_stalls_only_its_sender)
{
	struct client		*a, *b, *c, *d, *e;
	struct json_object	*o;
	sqlite3			*db;
	char			 path[256];
	int32_t			 ida, idb, idc, idd, ide;

	a = user_new("olga", &ida);
	b = user_new("pete", &idb);
	c = user_new("quin", &idc);
	d = user_new("rosa", &idd);
	e = cli_new();
	ide = reg(e, "sven");		/* offline */
	/* a plain chat first: its block of message ids is claimed now */
	chat_to(c, idc, idd, "warm");
	json_object_put(expect(d, MSG_ONE_CHAT, -1));

	snprintf(path, sizeof(path), "%s/chat-%ld.db", chk_dir, (long)getpid());
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	/* a store thread may be writing (history, an smid block) */
	sqlite3_busy_timeout(db, 5000);
	ck_assert_int_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL,
	    NULL), SQLITE_OK);
	cli_send(a, "{\"cmid\":1,\"id\":%d,\"msg\":\"stored\",\"msgid\":%d,"
	    "\"toid\":%d}", (int)ida, MSG_ONE_CHAT, (int)idb);
	cli_send(a, "{\"msgid\":%d,\"seq\":1}", MSG_PING);
	pump(NULL, 0.1);		/* a's job is queued first */
	chat_to(b, idb, ide, "for later");	/* an offline store */
	cli_send(b, "{\"msgid\":%d,\"seq\":2}", MSG_PING);
	/* live chats and pings of others go on while the lock is held */
	chat_to(c, idc, idd, "live");
	expect_chat(d, "live");
	sync_ok(c);
	/* the waiting senders' answers (and next requests) wait */
	cli_quiet(a);
	cli_quiet(b);

	ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	o = expect(a, MSG_CHAT_ACK, -1);
	ck_assert_int_eq(jint(o, "cmid"), 1);
	json_object_put(o);
	expect_free(a, MSG_PONG, -1);	/* in order, after the ack */
	expect_chat(b, "stored");
	o = expect(b, MSG_PONG, -1);	/* stored, then answered */
	ck_assert_int_eq(jint(o, "seq"), 2);
	json_object_put(o);
	o = login(e, ide, ERR_OK);
	ck_assert_msg(strstr(json_object_to_json_string(o), "for later") !=
	    NULL, "not stored: %s", json_object_to_json_string(o));
	json_object_put(o);
	cli_free(a);
	cli_free(b);
	cli_free(c);
	cli_free(d);
	cli_free(e);
}
END_TEST

/*
 * A sender that leaves while its acknowledged chat waits for the store:
 * the chat is stored and delivered all the same, the answer dropped.
 */
START_TEST(sender_leaves_while_storing)
{
	struct client		*a, *b;
	struct json_object	*o;
	sqlite3			*db;
	char			 path[256];
	int32_t			 ida, idb;

	a = user_new("tara", &ida);
	b = user_new("ugo", &idb);
	snprintf(path, sizeof(path), "%s/chat-%ld.db", chk_dir, (long)getpid());
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	/* a store thread may be writing (history, an smid block) */
	sqlite3_busy_timeout(db, 5000);
	ck_assert_int_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL,
	    NULL), SQLITE_OK);
	cli_send(a, "{\"cmid\":5,\"id\":%d,\"msg\":\"orphan\",\"msgid\":%d,"
	    "\"toid\":%d}", (int)ida, MSG_ONE_CHAT, (int)idb);
	pump(NULL, 0.1);		/* the job is queued */
	cli_free(a);			/* gone before the store answers */
	ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	o = expect(b, MSG_ONE_CHAT, -1);
	ck_assert_str_eq(jstr(o, "msg"), "orphan");
	ck_assert_int_gt(jint(o, "smid"), 0);
	json_object_put(o);
	cli_free(b);
}
END_TEST

/* Lines cl received within secs, read as they come (up to want). */
static size_t
count_lines(struct client *cl, size_t want, double secs)
{
	double	 end = ev_time() + secs;
	size_t	 n = 0;
	char	*nl;

	while (n < want && ev_time() < end) {
		pump(cl, 0.05);
		while ((nl = memchr(buf_head(&cl->in), '\n',
		    buf_used(&cl->in))) != NULL) {
			buf_consume(&cl->in, nl - buf_head(&cl->in) + 1);
			n++;
		}
	}
	return n;
}

/* Wait until want smid blocks are claimed (ClientMsg rows, cmid < 0). */
static int
blocks_claimed(struct client *cl, sqlite3 *db, int want)
{
	double		 end = ev_time() + WAIT_SECONDS;
	sqlite3_stmt	*q;
	int		 n = 0;

	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM ClientMsg "
	    "WHERE cmid < 0", -1, &q, NULL) != SQLITE_OK)
		return -1;
	while (ev_time() < end) {
		if (sqlite3_step(q) == SQLITE_ROW)
			n = sqlite3_column_int(q, 0);
		sqlite3_reset(q);
		if (n >= want)
			break;
		pump(cl, 0.05);
	}
	sqlite3_finalize(q);
	return n >= want ? 0 : -1;
}

/*
 * Plain chats take their ids from a block the worker claims in the
 * store; the next block is claimed in a store thread while half of
 * the current one is left, so a locked store does not stop them at a
 * block's end (the chk_loop's own claim would fail: its busy timeout is
 * 0.1 s here).
 */
START_TEST(smid_blocks_claimed_ahead)
{
	struct client	*c, *d;
	sqlite3		*db;
	char		 path[256];
	int32_t		 idc, idd;
	size_t		 i, first = STORE_SMID_BLOCK * 3 / 4;

	c = user_new("vera", &idc);
	d = user_new("walt", &idd);
	for (i = 0; i < first; i++) {
		chat_to(c, idc, idd, "n");
		if (i % 64 == 63)
			ck_assert_uint_eq(count_lines(d, 64, WAIT_SECONDS), 64);
	}
	ck_assert_uint_eq(count_lines(d, first % 64, WAIT_SECONDS),
	    first % 64);
	snprintf(path, sizeof(path), "%s/chat-%ld.db", chk_dir, (long)getpid());
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	/* a store thread may be writing (history, an smid block) */
	sqlite3_busy_timeout(db, 5000);
	/* the next block claimed (queued behind history on a loaded
	 * machine) before the lock, or the lock is what stops the chats */
	ck_assert_int_eq(blocks_claimed(c, db, 2), 0);
	ck_assert_int_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL,
	    NULL), SQLITE_OK);
	/* past the first block's end while the store is locked */
	for (i = 0; i < STORE_SMID_BLOCK / 2; i++) {
		chat_to(c, idc, idd, "n");
		if (i % 64 == 63)
			ck_assert_uint_eq(count_lines(d, 64, WAIT_SECONDS), 64);
	}
	ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	cli_quiet(c);		/* no error: every chat had its id */
	cli_free(c);
	cli_free(d);
}
END_TEST

/*
 * A plain session's ring (chat_seen.c): the last SEEN_RING smids written
 * are repeats, older ones and 0 are not; a batch is filtered by it; an
 * "acks" session keeps none.
 */
START_TEST(seen_ring)
{
	struct session		 s;
	struct store_msg	 v[3];
	struct store_msg_list	 l = { v, 3 };
	unsigned char		 skip[3];
	char			 t[3][64];
	int64_t			 i;

	memset(&s, 0, sizeof(s));
	s.uid = 5;
	ck_assert_int_eq(session_seen(&s, 77), SEEN_NEW);
	for (i = 1; i <= 300; i++)
		session_seen_add(&s, 1000 + i);
	ck_assert_int_eq(session_seen(&s, 1300), SEEN_REPEAT);
	ck_assert_int_eq(session_seen(&s, 1300 - SEEN_RING + 1), SEEN_REPEAT);
	ck_assert_int_eq(session_seen(&s, 1300 - SEEN_RING), SEEN_NEW);
	ck_assert_int_eq(session_seen(&s, 0), SEEN_NEW);
	for (i = 0; i < 3; i++) {
		snprintf(t[i], sizeof(t[i]), "{\"msgid\":6,\"msg\":\"m\","
		    "\"smid\":%lld,\"id\":2}", (long long)(1299 + i));
		v[i].id = i + 1;
		v[i].text = t[i];
		v[i].len = strlen(t[i]);
	}
	/* 1299 and 1300 were written, 1301 was not: now it is */
	ck_assert_uint_eq(seen_filter(&s, &l, 3, skip), 1);
	ck_assert(skip[0] && skip[1] && !skip[2]);
	ck_assert_int_eq(session_seen(&s, 1301), SEEN_REPEAT);
	session_seen_free(&s);
	ck_assert_int_eq(session_seen(&s, 1301), SEEN_NEW);
	s.acks = 1;
	ck_assert_int_eq(seen_smid(&s, t[0], strlen(t[0])), 0);
	ck_assert_uint_eq(seen_filter(&s, &l, 3, skip), 3);
	ck_assert_ptr_null(s.seen);
}
END_TEST

/*
 * Hold the WAL-index locks of the SQLite file db from another process
 * (fcntl locks are per process): every reader and writer waits, as a
 * WAL reader is not stopped by BEGIN EXCLUSIVE.  Kill the pid returned
 * to release them.
 */
static pid_t
wal_lock(const char *db)
{
	struct flock	 fl;
	char		 path[512], c;
	int		 p[2], fd, tries;
	pid_t		 pid;

	snprintf(path, sizeof(path), "%s-shm", db);
	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		fl.l_start = 120;	/* WALINDEX_LOCK_OFFSET, 8 locks */
		fl.l_len = 8;
		if ((fd = open(path, O_RDWR)) == -1)
			_exit(1);
		/* a store thread's read may hold one for an instant */
		for (tries = 0; fcntl(fd, F_SETLK, &fl) == -1; tries++) {
			if (tries > 1000)
				_exit(1);
			usleep(10000);
		}
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	ck_assert_int_ne(pid, -1);
	close(p[1]);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

/*
 * A session without its block list (an adopted one, before its read is
 * back): the chats that reach it wait for the list, read in the store
 * thread and never on the loop, which goes on answering; then the one
 * from a user it blocks is dropped and the others come in order.
 */
START_TEST(block_list_read_off_the_loop)
{
	struct client		*a, *b, *x, *p;
	struct conn		*c;
	char			 path[256];
	int32_t			 ida, idb, idx, idp;
	pid_t			 holder;

	a = user_new("ann", &ida);
	b = user_new("ben", &idb);
	x = user_new("xen", &idx);
	p = user_new("pia", &idp);
	/* a plain chat first: its block of message ids is claimed now */
	chat_to(a, ida, idb, "warm");
	json_object_put(expect(b, MSG_ONE_CHAT, -1));
	cli_send(b, "{\"msgid\":%d,\"userid\":%d}", MSG_BLOCK, (int)idx);
	json_object_put(expect(b, MSG_DONE, 0));
	ck_assert_ptr_nonnull(c = session_local(idb));
	session_blocks_free(c->sess);

	snprintf(path, sizeof(path), "%s/chat-%ld.db", chk_dir,
	    (long)getpid());
	holder = wal_lock(path);
	chat_to(a, ida, idb, "first");
	chat_to(x, idx, idb, "blocked");
	chat_to(a, ida, idb, "second");
	sync_ok(p);		/* the loop is not waiting for the store */
	cli_quiet(b);		/* the chats wait for b's list */
	kill(holder, SIGKILL);
	ck_assert_int_eq(waitpid(holder, NULL, 0), holder);

	expect_chat(b, "first");
	expect_chat(b, "second");
	/* the list is in: a chat is checked as it comes */
	chat_to(x, idx, idb, "blocked again");
	chat_to(a, ida, idb, "third");
	expect_chat(b, "third");
	cli_quiet(b);
	cli_free(a);
	cli_free(b);
	cli_free(x);
	cli_free(p);
}
END_TEST

static Suite *
chat_suite(void)
{
	Suite	*s = suite_create("chat");
	TCase	*tc = tcase_create("requests");

	tcase_add_unchecked_fixture(tc, dir_make, dir_remove);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, register_login);
	tcase_add_test(tc, login_twice);
	tcase_add_test(tc, chat_live);
	tcase_add_test(tc, chat_offline);
	tcase_add_test(tc, group_chat);
	tcase_add_test(tc, add_friend);
	tcase_add_test(tc, spoofed_sender);
	tcase_add_test(tc, acked_resend);
	tcase_add_test(tc, store_fails_then_recovers);
	tcase_add_test(tc, locked_store_stalls_only_its_sender);
	tcase_add_test(tc, sender_leaves_while_storing);
	tcase_add_test(tc, smid_blocks_claimed_ahead);
	tcase_add_test(tc, seen_ring);
	tcase_add_test(tc, block_list_read_off_the_loop);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run(chat_suite());
}
