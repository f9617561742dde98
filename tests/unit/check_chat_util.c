/*
 * check_chat_util.c - the harness of check_chat (check_chat_util.h): a
 * worker's chat layer on a libev loop with the real SQLite store, store
 * thread, session table and password threads, and clients on
 * socketpairs.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/socket.h>

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
#include <unistd.h>

#include <ev.h>
#include <json-c/json.h>

#include "auth.h"
#include "buf.h"
#include "cfg.h"
#include "chat.h"
#include "conn.h"
#include "online.h"
#include "proto.h"
#include "store.h"
#include "storeq.h"
#include "check_chat_util.h"

char		 chk_dir[64];	/* per test case, made by the parent */

struct ev_loop	*chk_loop;
struct store	*chk_store;
struct online	*chk_online;
struct authpool	*chk_auth;
struct storeq	*chk_storeq;
struct config	 chk_cfg;
static ev_io		 auth_io, storeq_io;
static ev_prepare	 flush_prep;

static void
auth_cb(struct ev_loop *l, ev_io *w, int revents)
{
	authpool_complete(chk_auth);
}

static void
storeq_cb(struct ev_loop *l, ev_io *w, int revents)
{
	storeq_complete(chk_storeq);
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

void
dir_make(void)
{
	snprintf(chk_dir, sizeof(chk_dir), "/tmp/check_chat.XXXXXX");
	if (mkdtemp(chk_dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
}

void
dir_remove(void)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[512];

	if ((d = opendir(chk_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", chk_dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(chk_dir);
}

void
setup(void)
{
	struct conn_env	 cenv;
	struct chat_env	 chenv;
	struct store_opts opts;
	char		 spec[256], shm[64], err[256];

	signal(SIGPIPE, SIG_IGN);
	snprintf(spec, sizeof(spec), "sqlite:%s/chat-%ld.db", chk_dir,
	    (long)getpid());
	/* a locked database fails fast (store_fails_then_recovers) */
	memset(&opts, 0, sizeof(opts));
	opts.busy_timeout_ms = 100;
	chk_store = store_open(spec, &opts, err, sizeof(err));
	ck_assert_msg(chk_store != NULL, "store_open: %s", err);
	/* the store thread waits for a lock as long as a test holds it */
	opts.busy_timeout_ms = 30000;
	chk_storeq = storeq_new(spec, &opts, 1, err, sizeof(err));
	ck_assert_msg(chk_storeq != NULL, "storeq_new: %s", err);
	snprintf(shm, sizeof(shm), "/chatd-check-chat-%ld", (long)getpid());
	chk_online = online_create(shm, 1024, 1, err, sizeof(err));
	ck_assert_msg(chk_online != NULL, "online_create: %s", err);
	shm_unlink(shm);	/* the mapping lives on; /dev/shm stays clean */
	cfg_defaults(&chk_cfg);
	chk_cfg.password_cost = 1;	/* fast hashes: the tests log in often */
	chk_auth = authpool_new(1, err, sizeof(err));
	ck_assert_msg(chk_auth != NULL, "authpool_new: %s", err);
	chk_loop = ev_default_loop(0);
	ck_assert_ptr_nonnull(chk_loop);

	memset(&cenv, 0, sizeof(cenv));
	cenv.loop = chk_loop;
	cenv.handler = &chat_conn_handler;
	cenv.max_frame = chk_cfg.max_frame_bytes;
	cenv.max_output = chk_cfg.max_output_bytes;
	cenv.idle_timeout = chk_cfg.idle_timeout;
	cenv.login_timeout = chk_cfg.login_timeout;
	ck_assert_int_eq(conn_env_init(&cenv), 0);

	memset(&chenv, 0, sizeof(chenv));
	chenv.cfg = &chk_cfg;
	chenv.store = chk_store;
	chenv.storeq = chk_storeq;
	chenv.online = chk_online;
	chenv.auth = chk_auth;
	chenv.stats = online_slot_stats(chk_online, 0);
	chenv.slot = 0;
	chenv.node_id = "check";
	chenv.to_slot = to_slot;
	chat_init(&chenv);

	ev_io_init(&auth_io, auth_cb, authpool_fd(chk_auth), EV_READ);
	ev_io_start(chk_loop, &auth_io);
	ev_io_init(&storeq_io, storeq_cb, storeq_fd(chk_storeq), EV_READ);
	ev_io_start(chk_loop, &storeq_io);
	ev_prepare_init(&flush_prep, flush_cb);
	ev_prepare_start(chk_loop, &flush_prep);
}

static void
close_now(struct conn *c, void *arg)
{
	conn_close(c, "test over");
}

/* Everything freed, so that a leak checker sees only the chat layer's. */
void
teardown(void)
{
	conn_foreach(close_now, NULL);
	conn_reap();
	storeq_free(chk_storeq);
	conn_reap();		/* those whose jobs just finished */
	authpool_free(chk_auth);
	store_close(chk_store);
	online_destroy(chk_online, 0);
	cfg_free(&chk_cfg);
}

/* ---- clients ------------------------------------------------------------- */

struct client *
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
void
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

/* Run the chk_loop for up to secs; stop early once cl has a whole line. */
void
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
		ev_run(chk_loop, EVRUN_NOWAIT);
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
struct json_object *
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
void
cli_quiet(struct client *cl)
{
	pump(cl, QUIET_SECONDS);
	ck_assert_msg(buf_used(&cl->in) == 0, "unexpected: %.*s",
	    (int)buf_used(&cl->in), buf_head(&cl->in));
}

void
cli_free(struct client *cl)
{
	close(cl->fd);
	buf_free(&cl->in);
	free(cl);
	pump(NULL, 0.05);	/* the server sees the close */
}

int64_t
jint(struct json_object *o, const char *key)
{
	struct json_object	*v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no \"%s\" in %s",
	    key, json_object_to_json_string(o));
	return json_object_get_int64(v);
}

const char *
jstr(struct json_object *o, const char *key)
{
	struct json_object	*v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no \"%s\" in %s",
	    key, json_object_to_json_string(o));
	return json_object_get_string(v);
}

/* The next answer: msgid and errno as expected; the caller frees it. */
struct json_object *
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

void
expect_free(struct client *cl, int msgid, int err)
{
	json_object_put(expect(cl, msgid, err));
}

/* The next answer is a one-to-one chat whose text is msg. */
void
expect_chat(struct client *cl, const char *msg)
{
	struct json_object	*o = expect(cl, MSG_ONE_CHAT, -1);

	ck_assert_str_eq(jstr(o, "msg"), msg);
	json_object_put(o);
}

/* A request with no answer on success went through: nothing, then pong. */
void
sync_ok(struct client *cl)
{
	cli_send(cl, "{\"msgid\":%d,\"seq\":1}", MSG_PING);
	expect_free(cl, MSG_PONG, -1);
}

int32_t
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

struct json_object *
login(struct client *cl, int32_t id, int err)
{
	cli_send(cl, "{\"id\":%d,\"msgid\":%d,\"password\":\"pw\"}", (int)id,
	    MSG_LOGIN);
	return expect(cl, MSG_LOGIN_ACK, err);
}

/* A new connection with a new user logged in on it. */
struct client *
user_new(const char *name, int32_t *id)
{
	struct client	*cl = cli_new();

	*id = reg(cl, name);
	json_object_put(login(cl, *id, ERR_OK));
	return cl;
}

void
chat_to(struct client *cl, int32_t from, int32_t to, const char *text)
{
	cli_send(cl, "{\"id\":%d,\"msg\":\"%s\",\"msgid\":%d,\"toid\":%d}",
	    (int)from, text, MSG_ONE_CHAT, (int)to);
}

