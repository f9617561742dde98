/*
 * check_chat_util.h - check_chat's harness: one worker's chat layer
 * without chatd (the real SQLite store in a temporary directory, a real
 * session table, the connection layer on a libev loop) and clients as
 * socketpairs that write request frames and read answer lines.
 */
#ifndef CHATD_CHECK_CHAT_UTIL_H
#define CHATD_CHECK_CHAT_UTIL_H

#include <stdint.h>

#include <json-c/json.h>

#include "buf.h"
#include "cfg.h"

#define WAIT_SECONDS	5.0	/* for an answer that must come */
#define QUIET_SECONDS	0.2	/* for one that must not */

struct ev_loop;
struct store;
struct online;
struct authpool;
struct storeq;

extern char		 chk_dir[64];	/* the test case's, chat-<pid>.db */
extern struct ev_loop	*chk_loop;
extern struct store	*chk_store;	/* the loop's handle */
extern struct online	*chk_online;
extern struct authpool	*chk_auth;
extern struct storeq	*chk_storeq;
extern struct config	 chk_cfg;

struct client {
	int		 fd;
	struct buf	 in;
};

/* The test case's directory (an unchecked fixture). */
void	dir_make(void);
void	dir_remove(void);
/* chat_init and all it needs, per test (a checked fixture). */
void	setup(void);
void	teardown(void);

struct client *cli_new(void);
/* A request frame: the JSON text and its NUL, as the seed client. */
void	cli_send(struct client *cl, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Run the loop for up to secs; stop early once cl has a whole line. */
void	pump(struct client *cl, double secs);
/* The next answer line, parsed; the test fails if none comes in time. */
struct json_object *cli_recv(struct client *cl);
/* Nothing arrives for cl for a while. */
void	cli_quiet(struct client *cl);
void	cli_free(struct client *cl);
int64_t	jint(struct json_object *o, const char *key);
const char *jstr(struct json_object *o, const char *key);
/* The next answer: msgid and errno as expected; the caller frees it. */
struct json_object *expect(struct client *cl, int msgid, int err);
void	expect_free(struct client *cl, int msgid, int err);
void	expect_chat(struct client *cl, const char *msg);
/* A request with no answer on success went through: nothing, then pong. */
void	sync_ok(struct client *cl);
int32_t	reg(struct client *cl, const char *name);
struct json_object *login(struct client *cl, int32_t id, int err);
/* A new connection with a new user logged in on it. */
struct client *user_new(const char *name, int32_t *id);
void	chat_to(struct client *cl, int32_t from, int32_t to,
	    const char *text);

#endif
