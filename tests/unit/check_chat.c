/*
 * check_chat.c - the chat layer without chatd: the real SQLite store in
 * a temporary directory, a real session table, the real connection
 * layer on a libev loop, and clients as socketpairs.  A test writes
 * request frames and reads the answer lines, as a client would.
 *
 * Each test runs in its own process (CK_FORK): chat, conn and the loop
 * keep process-wide state, so every test starts from chat_init.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

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

#define WAIT_SECONDS	5.0	/* for an answer that must come */
#define QUIET_SECONDS	0.2	/* for one that must not */

static char		 dir[64];	/* per test case, made by the parent */

static struct ev_loop	*loop;
static struct store	*st;
static struct online	*ol;
static struct authpool	*ap;
static struct storeq	*sq;
static struct config	 cfg;
static ev_io		 auth_io, storeq_io;
static ev_prepare	 flush_prep;

struct client {
	int		 fd;
	struct buf	 in;
};

static void
auth_cb(struct ev_loop *l, ev_io *w, int revents)
{
	authpool_complete(ap);
}

static void
storeq_cb(struct ev_loop *l, ev_io *w, int revents)
{
	storeq_complete(sq);
}

static void
flush_cb(struct ev_loop *l, ev_prepare *w, int revents)
{
	conn_flush_all();
	conn_reap();
}

/* One worker on this node: there is no other worker to hand to. */
static int
to_slot(int slot, const struct chan_hdr *h, const void *payload)
{
	return -1;
}

static void
dir_make(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_chat.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
}

static void
dir_remove(void)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[512];

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static void
setup(void)
{
	struct conn_env	 cenv;
	struct chat_env	 chenv;
	struct store_opts opts;
	char		 spec[256], shm[64], err[256];

	signal(SIGPIPE, SIG_IGN);
	snprintf(spec, sizeof(spec), "sqlite:%s/chat-%ld.db", dir,
	    (long)getpid());
	/* a locked database fails fast (store_fails_then_recovers) */
	memset(&opts, 0, sizeof(opts));
	opts.busy_timeout_ms = 100;
	st = store_open(spec, &opts, err, sizeof(err));
	ck_assert_msg(st != NULL, "store_open: %s", err);
	/* the store thread waits for a lock as long as a test holds it */
	opts.busy_timeout_ms = 30000;
	sq = storeq_new(spec, &opts, 1, err, sizeof(err));
	ck_assert_msg(sq != NULL, "storeq_new: %s", err);
	snprintf(shm, sizeof(shm), "/chatd-check-chat-%ld", (long)getpid());
	ol = online_create(shm, 1024, 1, err, sizeof(err));
	ck_assert_msg(ol != NULL, "online_create: %s", err);
	shm_unlink(shm);	/* the mapping lives on; /dev/shm stays clean */
	cfg_defaults(&cfg);
	cfg.password_cost = 1;	/* fast hashes: the tests log in often */
	ap = authpool_new(1, err, sizeof(err));
	ck_assert_msg(ap != NULL, "authpool_new: %s", err);
	loop = ev_default_loop(0);
	ck_assert_ptr_nonnull(loop);

	memset(&cenv, 0, sizeof(cenv));
	cenv.loop = loop;
	cenv.handler = &chat_conn_handler;
	cenv.max_frame = cfg.max_frame_bytes;
	cenv.max_output = cfg.max_output_bytes;
	cenv.idle_timeout = cfg.idle_timeout;
	cenv.login_timeout = cfg.login_timeout;
	ck_assert_int_eq(conn_env_init(&cenv), 0);

	memset(&chenv, 0, sizeof(chenv));
	chenv.cfg = &cfg;
	chenv.store = st;
	chenv.storeq = sq;
	chenv.online = ol;
	chenv.auth = ap;
	chenv.stats = online_slot_stats(ol, 0);
	chenv.slot = 0;
	chenv.node_id = "check";
	chenv.to_slot = to_slot;
	chat_init(&chenv);

	ev_io_init(&auth_io, auth_cb, authpool_fd(ap), EV_READ);
	ev_io_start(loop, &auth_io);
	ev_io_init(&storeq_io, storeq_cb, storeq_fd(sq), EV_READ);
	ev_io_start(loop, &storeq_io);
	ev_prepare_init(&flush_prep, flush_cb);
	ev_prepare_start(loop, &flush_prep);
}

static void
close_now(struct conn *c, void *arg)
{
	conn_close(c, "test over");
}

/* Everything freed, so that a leak checker sees only the chat layer's. */
static void
teardown(void)
{
	conn_foreach(close_now, NULL);
	conn_reap();
	storeq_free(sq);
	conn_reap();		/* those whose jobs just finished */
	authpool_free(ap);
	store_close(st);
	online_destroy(ol, 0);
	cfg_free(&cfg);
}

/* ---- clients ------------------------------------------------------------- */

static struct client *
cli_new(void)
{
	struct sockaddr_storage	 peer;
	struct client		*cl;
	int			 sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	memset(&peer, 0, sizeof(peer));
	peer.ss_family = AF_UNIX;
	ck_assert_ptr_nonnull(conn_new(sv[1], &peer, 0));
	ck_assert_ptr_nonnull(cl = calloc(1, sizeof(*cl)));
	cl->fd = sv[0];
	return cl;
}

/* A request frame: the JSON text and its NUL, as the seed client. */
static void
cli_send(struct client *cl, const char *fmt, ...)
{
	char	*text;
	va_list	 ap2;
	int	 n;

	va_start(ap2, fmt);
	n = vasprintf(&text, fmt, ap2);
	va_end(ap2);
	ck_assert_int_ge(n, 0);
	ck_assert_int_eq(write(cl->fd, text, n + 1), n + 1);
	free(text);
}

/* Run the loop for up to secs; stop early once cl has a whole line. */
static void
pump(struct client *cl, double secs)
{
	struct pollfd	 pfd;
	double		 end = ev_time() + secs;
	char		 tmp[4096];
	ssize_t		 n;

	while (ev_time() < end) {
		if (cl != NULL && memchr(buf_head(&cl->in), '\n',
		    buf_used(&cl->in)) != NULL)
			return;
		ev_run(loop, EVRUN_NOWAIT);
		if (cl == NULL) {
			usleep(5000);
			continue;
		}
		pfd.fd = cl->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 5) == 1 &&
		    (n = read(cl->fd, tmp, sizeof(tmp))) > 0)
			ck_assert_int_eq(buf_append(&cl->in, tmp, n), 0);
	}
}

/* The next answer line, parsed; the test fails if none comes in time. */
static struct json_object *
cli_recv(struct client *cl)
{
	struct json_object	*o;
	char			*nl, *line;
	size_t			 len;

	pump(cl, WAIT_SECONDS);
	nl = memchr(buf_head(&cl->in), '\n', buf_used(&cl->in));
	ck_assert_msg(nl != NULL, "no answer within %.0f s", WAIT_SECONDS);
	len = nl - buf_head(&cl->in);
	/* not strndup: the buffer is not NUL-terminated */
	line = malloc(len + 1);
	ck_assert_ptr_nonnull(line);
	memcpy(line, buf_head(&cl->in), len);
	line[len] = '\0';
	buf_consume(&cl->in, len + 1);
	o = json_tokener_parse(line);
	ck_assert_msg(o != NULL, "not JSON: %s", line);
	free(line);
	return o;
}

/* Nothing arrives for cl for a while. */
static void
cli_quiet(struct client *cl)
{
	pump(cl, QUIET_SECONDS);
	ck_assert_msg(buf_used(&cl->in) == 0, "unexpected: %.*s",
	    (int)buf_used(&cl->in), buf_head(&cl->in));
}

static void
cli_free(struct client *cl)
{
	close(cl->fd);
	buf_free(&cl->in);
	free(cl);
	pump(NULL, 0.05);	/* the server sees the close */
}

static int64_t
jint(struct json_object *o, const char *key)
{
	struct json_object	*v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no \"%s\" in %s",
	    key, json_object_to_json_string(o));
	return json_object_get_int64(v);
}

static const char *
jstr(struct json_object *o, const char *key)
{
	struct json_object	*v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no \"%s\" in %s",
	    key, json_object_to_json_string(o));
	return json_object_get_string(v);
}

/* The next answer: msgid and errno as expected; the caller frees it. */
static struct json_object *
expect(struct client *cl, int msgid, int err)
{
	struct json_object	*o = cli_recv(cl);

	ck_assert_msg(jint(o, "msgid") == msgid, "expected msgid %d: %s",
	    msgid, json_object_to_json_string(o));
	if (err >= 0)
		ck_assert_msg(jint(o, "errno") == err, "expected errno %d: %s",
		    err, json_object_to_json_string(o));
	return o;
}

static void
expect_free(struct client *cl, int msgid, int err)
{
	json_object_put(expect(cl, msgid, err));
}

/* A request with no answer on success went through: nothing, then pong. */
static void
sync_ok(struct client *cl)
{
	cli_send(cl, "{\"msgid\":%d,\"seq\":1}", MSG_PING);
	expect_free(cl, MSG_PONG, -1);
}

static int32_t
reg(struct client *cl, const char *name)
{
	struct json_object	*o;
	int32_t			 id;

	cli_send(cl, "{\"msgid\":%d,\"name\":\"%s\",\"password\":\"pw\"}",
	    MSG_REG, name);
	o = expect(cl, MSG_REG_ACK, ERR_OK);
	id = (int32_t)jint(o, "id");
	ck_assert_int_gt(id, 0);
	json_object_put(o);
	return id;
}

static struct json_object *
login(struct client *cl, int32_t id, int err)
{
	cli_send(cl, "{\"id\":%d,\"msgid\":%d,\"password\":\"pw\"}", (int)id,
	    MSG_LOGIN);
	return expect(cl, MSG_LOGIN_ACK, err);
}

/* A new connection with a new user logged in on it. */
static struct client *
user_new(const char *name, int32_t *id)
{
	struct client	*cl = cli_new();

	*id = reg(cl, name);
	json_object_put(login(cl, *id, ERR_OK));
	return cl;
}

static void
chat_to(struct client *cl, int32_t from, int32_t to, const char *text)
{
	cli_send(cl, "{\"id\":%d,\"msg\":\"%s\",\"msgid\":%d,\"toid\":%d}",
	    (int)from, text, MSG_ONE_CHAT, (int)to);
}

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
	ck_assert_uint_eq(online_count(ol), 1);
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
	ck_assert_uint_eq(online_count(ol), 0);
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
	snprintf(path, sizeof(path), "%s/chat-%ld.db", dir, (long)getpid());
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
	/* stored in the store thread, which waits for the lock; the loop
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
	ck_assert_int_eq(store_user_groups(st, ida, &groups), STORE_OK);
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
	ck_assert_int_eq(store_friends(st, ida, &friends), STORE_OK);
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

	snprintf(path, sizeof(path), "%s/chat-%ld.db", dir, (long)getpid());
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
	o = expect(d, MSG_ONE_CHAT, -1);
	ck_assert_str_eq(jstr(o, "msg"), "live");
	json_object_put(o);
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
	o = expect(b, MSG_ONE_CHAT, -1);
	ck_assert_str_eq(jstr(o, "msg"), "stored");
	json_object_put(o);
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
	snprintf(path, sizeof(path), "%s/chat-%ld.db", dir, (long)getpid());
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
 * block's end (the loop's own claim would fail: its busy timeout is
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
	snprintf(path, sizeof(path), "%s/chat-%ld.db", dir, (long)getpid());
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
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run(chat_suite());
}
