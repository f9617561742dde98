/*
 * chatc.c - the chat client: interactive like the seed client, or
 * driven by a script on stdin (-s) for tests and tools.
 *
 * Requests go out as the seed client writes them: compact JSON with the
 * keys sorted, followed by one NUL byte.  What the server sends is split
 * with the server's own frame splitter (proto.h: frame_next).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "buf.h"
#include "chatc_ext.h"
#include "proto.h"
#include "util.h"

#define DEFAULT_HOST		"127.0.0.1"
#define DEFAULT_PORT		"6000"
#define DEFAULT_GRACE_MS	300
#define CONNECT_TIMEOUT_MS	10000
#define ANSWER_TIMEOUT_MS	10000	/* script: wait for LOGIN/REG answers */
#define MAX_SERVER_FRAME	((size_t)1 << 30)
/* reconnecting: jittered exponential backoff, then give up */
#define RECONNECT_FIRST_MS	200
#define RECONNECT_MAX_MS	15000
#define RECONNECT_TRIES		12

enum state {
	ST_MENU,		/* 1. login 2. register 3. quit */
	ST_LOGIN_ID,
	ST_LOGIN_PW,
	ST_REG_NAME,
	ST_REG_PW,
	ST_WAIT,		/* for the answer to a login or registration */
	ST_CHAT,		/* logged in: chat commands */
	ST_SCRIPT,		/* -s: one command a line */
};

struct chatc {
	int			 fd;
	int			 script;
	int			 grace_ms;
	int			 tty;		/* stdin is a terminal */
	enum state		 state;
	struct buf		 in;		/* from the server */
	struct buf		 out;		/* to the server */
	struct frame_scanner	 fs;
	struct buf		 cmd;		/* stdin, not yet a full line */
	int			 stdin_eof;
	unsigned long		 lineno;
	int32_t			 uid;		/* 0: not logged in */
	char			*name;
	int32_t			 login_id;	/* asked for, until answered */
	char			*reg_name;
	int			 waiting;	/* msgid of the awaited answer */
	int64_t			 wait_until;
	int64_t			 sleep_until;	/* script "sleep:" */
	int			 quitting;
	int64_t			 quit_at;	/* end of the grace period */
	/* reconnecting (not with -R): the resume token and the schedule */
	const char		*host, *port;
	int			 no_resume;	/* -R: the seed's way, no token */
	char			*token;		/* from the last login answer */
	int			 resuming;	/* the login under way is a resume */
	int			 tries;		/* reconnects since the last success */
	int64_t			 reconnect_at;	/* fd -1: when to try again */
	int			 drop_ms;	/* > 0: drop, retry no sooner */
	unsigned int		 seed;
};

static struct termios	 saved_tio;
static int		 tio_saved;
static volatile sig_atomic_t got_signal;

static void
usage(void)
{
	fprintf(stderr, "usage: chatc [-Rs] [-h host] [-p port] [-w ms]\n");
	exit(2);
}

static void
warnmsg(const char *fmt, ...)
{
	va_list	 ap;

	fflush(stdout);
	fputs("chatc: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- terminal ------------------------------------------------------- */

static void
echo_restore(void)
{
	if (tio_saved) {
		(void)tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
		tio_saved = 0;
	}
}

static void
echo_off(void)
{
	struct termios	 t;

	if (tio_saved || tcgetattr(STDIN_FILENO, &saved_tio) == -1)
		return;
	t = saved_tio;
	t.c_lflag &= ~(tcflag_t)ECHO;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
		tio_saved = 1;
}

static void
on_signal(int sig)
{
	got_signal = sig;
}

/* ---- connection ----------------------------------------------------- */

static int
connect_to(const char *host, const char *port)
{
	struct addrinfo	 hints, *res, *ai;
	struct pollfd	 pfd;
	socklen_t	 slen;
	int		 fd = -1, e, one = 1, soerr = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0) {
		warnmsg("%s port %s: %s", host, port, gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			soerr = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		soerr = errno;
		if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, CONNECT_TIMEOUT_MS) == 1) {
				slen = sizeof(soerr);
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
				    &slen) == 0 && soerr == 0)
					break;
			} else
				soerr = ETIMEDOUT;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1) {
		warnmsg("connect to %s port %s: %s", host, port,
		    strerror(soerr));
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* ---- requests ------------------------------------------------------- */

static void
put_int(struct json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, json_object_new_int64(v));
}

static void
put_str(struct json_object *o, const char *key, const char *s)
{
	json_object_object_add(o, key, json_object_new_string(s));
}

static void
put_time(struct json_object *o)
{
	char		 tbuf[32];
	time_t		 t = time(NULL);
	struct tm	 tm;

	localtime_r(&t, &tm);
	strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S", &tm);
	put_str(o, "time", tbuf);
}

/* Queue o (keys already in sorted order) plus a NUL; frees o. */
static void
send_obj(struct chatc *cc, struct json_object *o)
{
	const char	*s;
	size_t		 len;

	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (s == NULL || buf_append(&cc->out, s, len) == -1 ||
	    buf_append(&cc->out, "", 1) == -1) {
		warnmsg("out of memory");
		exit(1);
	}
	json_object_put(o);
}

/* The sender fields: only what is known (nothing before a login). */
static void
put_id(struct chatc *cc, struct json_object *o)
{
	if (cc->uid != 0)
		put_int(o, "id", cc->uid);
}

static void
put_name(struct chatc *cc, struct json_object *o)
{
	if (cc->name != NULL)
		put_str(o, "name", cc->name);
}

static void
req_login(struct chatc *cc, int32_t id, const char *pw)
{
	struct json_object	*o = json_object_new_object();

	put_int(o, "id", id);
	put_int(o, "msgid", MSG_LOGIN);
	put_str(o, "password", pw);
	/* a resume token, so a dropped connection can log in again */
	if (!cc->no_resume)
		json_object_object_add(o, "token", json_object_new_boolean(1));
	send_obj(cc, o);
	cc->resuming = 0;
	cc->login_id = id;
	cc->waiting = MSG_LOGIN_ACK;
	cc->wait_until = (int64_t)util_mono_ms() + ANSWER_TIMEOUT_MS;
}

static void
req_register(struct chatc *cc, const char *name, const char *pw)
{
	struct json_object	*o = json_object_new_object();

	put_int(o, "msgid", MSG_REG);
	put_str(o, "name", name);
	put_str(o, "password", pw);
	send_obj(cc, o);
	free(cc->reg_name);
	cc->reg_name = strdup(name);
	cc->waiting = MSG_REG_ACK;
	cc->wait_until = (int64_t)util_mono_ms() + ANSWER_TIMEOUT_MS;
}

static void
req_chat(struct chatc *cc, int32_t to, const char *text)
{
	struct json_object	*o = json_object_new_object();

	put_id(cc, o);
	put_str(o, "msg", text);
	put_int(o, "msgid", MSG_ONE_CHAT);
	put_name(cc, o);
	put_time(o);
	put_int(o, "toid", to);
	send_obj(cc, o);
}

static void
req_groupchat(struct chatc *cc, int32_t gid, const char *text)
{
	struct json_object	*o = json_object_new_object();

	put_int(o, "groupid", gid);
	put_id(cc, o);
	put_str(o, "msg", text);
	put_int(o, "msgid", MSG_GROUP_CHAT);
	put_name(cc, o);
	put_time(o);
	send_obj(cc, o);
}

static void
req_addfriend(struct chatc *cc, int32_t fid)
{
	struct json_object	*o = json_object_new_object();

	put_int(o, "friendid", fid);
	put_id(cc, o);
	put_int(o, "msgid", MSG_ADD_FRIEND);
	send_obj(cc, o);
}

static void
req_creategroup(struct chatc *cc, const char *name, const char *desc)
{
	struct json_object	*o = json_object_new_object();

	put_str(o, "groupdesc", desc);
	put_str(o, "groupname", name);
	put_id(cc, o);
	put_int(o, "msgid", MSG_CREATE_GROUP);
	send_obj(cc, o);
}

static void
req_addgroup(struct chatc *cc, int32_t gid)
{
	struct json_object	*o = json_object_new_object();

	put_int(o, "groupid", gid);
	put_id(cc, o);
	put_int(o, "msgid", MSG_ADD_GROUP);
	send_obj(cc, o);
}

static void
req_loginout(struct chatc *cc)
{
	struct json_object	*o = json_object_new_object();

	put_id(cc, o);
	put_int(o, "msgid", MSG_LOGINOUT);
	send_obj(cc, o);
	cc->uid = 0;
	free(cc->name);
	cc->name = NULL;
	free(cc->token);
	cc->token = NULL;
}

/* Log in again with the resume token after a reconnect. */
static void
req_resume(struct chatc *cc)
{
	struct json_object	*o = json_object_new_object();

	put_int(o, "id", cc->uid);
	put_int(o, "msgid", MSG_LOGIN);
	put_str(o, "token", cc->token);
	send_obj(cc, o);
	cc->resuming = 1;
	cc->login_id = cc->uid;
	cc->waiting = MSG_LOGIN_ACK;
	cc->wait_until = (int64_t)util_mono_ms() + ANSWER_TIMEOUT_MS;
}

/* ---- showing what the server sent ---------------------------------- */

/* Text for a terminal: control characters shown escaped. */
static void
put_text(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20 || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

static void
put_field(struct json_object *o, const char *key)
{
	struct json_object	*v;
	const char		*s;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL) {
		fputs("?", stdout);
		return;
	}
	if (json_object_is_type(v, json_type_string))
		put_text(json_object_get_string(v),
		    (size_t)json_object_get_string_len(v));
	else {
		s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		put_text(s, strlen(s));
	}
}

static int64_t
get_int(struct json_object *o, const char *key, int64_t dflt)
{
	struct json_object	*v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

static const char *
get_str(struct json_object *o, const char *key)
{
	struct json_object	*v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* A chat as the seed client shows it, a little more readable. */
static void
show_chat(struct json_object *o)
{
	if (get_int(o, "msgid", 0) == MSG_GROUP_CHAT) {
		fputs("group ", stdout);
		put_field(o, "groupid");
		fputs(": ", stdout);
	}
	fputs("[", stdout);
	put_field(o, "time");
	fputs("] ", stdout);
	put_field(o, "name");
	fputs("(", stdout);
	put_field(o, "id");
	fputs(") said: ", stdout);
	put_field(o, "msg");
	fputs("\n", stdout);
}

/* Each element of the list key is itself a JSON text; call fn on it. */
static void
each_encoded(struct json_object *o, const char *key,
    void (*fn)(struct json_object *))
{
	struct json_object	*list, *el, *in;
	size_t			 i, n;

	if (!json_object_object_get_ex(o, key, &list) ||
	    !json_object_is_type(list, json_type_array))
		return;
	n = json_object_array_length(list);
	for (i = 0; i < n; i++) {
		el = json_object_array_get_idx(list, i);
		if (json_object_is_type(el, json_type_string))
			in = json_tokener_parse(json_object_get_string(el));
		else
			in = json_object_get(el);
		if (in == NULL || !json_object_is_type(in, json_type_object)) {
			printf("  (unreadable entry in %s)\n", key);
			json_object_put(in);
			continue;
		}
		fn(in);
		json_object_put(in);
	}
}

static void
show_member(struct json_object *u)
{
	fputs("      ", stdout);
	put_field(u, "id");
	fputs(" ", stdout);
	put_field(u, "name");
	fputs(" (", stdout);
	put_field(u, "state");
	fputs(", ", stdout);
	put_field(u, "role");
	fputs(")\n", stdout);
}

static void
show_friend(struct json_object *f)
{
	fputs("  ", stdout);
	put_field(f, "id");
	fputs(" ", stdout);
	put_field(f, "name");
	fputs(" (", stdout);
	put_field(f, "state");
	fputs(")\n", stdout);
}

static void
show_group(struct json_object *g)
{
	fputs("  group ", stdout);
	put_field(g, "id");
	fputs(" ", stdout);
	put_field(g, "groupname");
	fputs(": ", stdout);
	put_field(g, "groupdesc");
	fputs("\n", stdout);
	each_encoded(g, "users", show_member);
}

static void
show_offline(struct json_object *m)
{
	fputs("  ", stdout);
	show_chat(m);
}

static void
show_help(void)
{
	printf("commands:\n"
	    "  help                          this list\n"
	    "  chat:ID:TEXT                  send TEXT to user ID\n"
	    "  addfriend:ID                  make user ID your friend\n"
	    "  creategroup:NAME:DESC         create a group\n"
	    "  addgroup:ID                   join group ID\n"
	    "  groupchat:ID:TEXT             send TEXT to group ID\n"
	    "  loginout                      log out\n"
	    "  quit                          exit\n");
	chatc_ext_help(stdout);
}

static void
show_login(struct chatc *cc, struct json_object *o)
{
	printf("==================== logged in ====================\n");
	printf("user ");
	put_field(o, "name");
	printf(" (id %d)\n", (int)cc->uid);
	printf("-------------------- friends ----------------------\n");
	each_encoded(o, "friends", show_friend);
	printf("-------------------- groups -----------------------\n");
	each_encoded(o, "groups", show_group);
	printf("---------------- offline messages -----------------\n");
	each_encoded(o, "offlinemsg", show_offline);
	printf("===================================================\n");
	show_help();
}

static void
show_menu(void)
{
	printf("========================\n"
	    "1. login\n"
	    "2. register\n"
	    "3. quit\n"
	    "========================\n"
	    "choice: ");
	fflush(stdout);
}

static void
prompt(struct chatc *cc, enum state st)
{
	cc->state = st;
	switch (st) {
	case ST_MENU:
		show_menu();
		break;
	case ST_LOGIN_ID:
		printf("userid: ");
		break;
	case ST_LOGIN_PW:
	case ST_REG_PW:
		printf("userpassword: ");
		if (cc->tty)
			echo_off();
		break;
	case ST_REG_NAME:
		printf("username: ");
		break;
	default:
		break;
	}
	fflush(stdout);
}

static void
keep_token(struct chatc *cc, struct json_object *o)
{
	const char	*t = get_str(o, "token");

	if (t == NULL)
		return;
	free(cc->token);
	if ((cc->token = strdup(t)) == NULL) {
		warnmsg("out of memory");
		exit(1);
	}
}


/*
 * The answer to a resume.  Busy, "still online" (the old session not
 * yet gone) and unavailable are worth another try; a refused token
 * ends the session.  1 when the answer was handled here.
 */
static int
resume_answered(struct chatc *cc, struct json_object *o)
{
	int64_t	 e = get_int(o, "errno", -1);

	cc->resuming = 0;
	if (e == 0) {
		cc->tries = 0;
		if (cc->script)
			warnmsg("reconnected as %d", (int)cc->uid);
		else {
			printf("------------- reconnected as %d --------------\n",
			    (int)cc->uid);
			each_encoded(o, "offlinemsg", show_offline);
			fflush(stdout);
		}
		return 0;
	}
	if (e == ERR_BUSY || e == ERR_ONLINE || e == ERR_UNAVAILABLE) {
		/* dropped by the loop, not here in the middle of the input */
		cc->drop_ms = (int)get_int(o, "retryms", 1);
		if (cc->drop_ms < 1)
			cc->drop_ms = 1;
		warnmsg("resume: %s", get_str(o, "errmsg") != NULL ?
		    get_str(o, "errmsg") : "refused for now");
		return 1;
	}
	warnmsg("cannot log in again: %s", get_str(o, "errmsg") != NULL ?
	    get_str(o, "errmsg") : "refused");
	free(cc->token);
	cc->token = NULL;
	cc->uid = 0;
	if (cc->script)
		exit(1);
	prompt(cc, ST_MENU);
	return 1;
}

/* The answer to a login: remember who we are. */
static void
login_answered(struct chatc *cc, struct json_object *o)
{
	const char	*name;

	if (get_int(o, "errno", -1) != 0)
		return;
	keep_token(cc, o);
	cc->uid = (int32_t)get_int(o, "id", cc->login_id);
	free(cc->name);
	name = get_str(o, "name");
	cc->name = strdup(name != NULL ? name : "");
}

/* One message from the server, the bytes exactly as received. */
static void
server_msg(struct chatc *cc, const char *p, size_t len)
{
	struct json_tokener	*tok;
	struct json_object	*o;
	int			 msgid, awaited = 0;
	int64_t			 e;

	if (cc->script) {
		fwrite(p, 1, len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	}
	if ((tok = json_tokener_new()) == NULL) {
		warnmsg("out of memory");
		exit(1);
	}
	o = json_tokener_parse_ex(tok, p, (int)(len > INT_MAX ? INT_MAX : len));
	json_tokener_free(tok);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		warnmsg("unreadable message from the server: %.*s",
		    (int)(len > 200 ? 200 : len), p);
		json_object_put(o);
		return;
	}
	msgid = (int)get_int(o, "msgid", -1);
	if (cc->waiting != 0 && msgid == cc->waiting) {
		cc->waiting = 0;
		awaited = 1;
	}
	e = get_int(o, "errno", 0);
	if (msgid == MSG_LOGIN_ACK && awaited && cc->resuming) {
		if (resume_answered(cc, o) == 0)
			login_answered(cc, o);
		json_object_put(o);
		return;
	}
	if (msgid == MSG_LOGIN_ACK && awaited)
		login_answered(cc, o);
	if (msgid == MSG_ACCOUNT_ACK && e == 0)
		keep_token(cc, o);

	if (cc->script) {
		if (e != 0)
			warnmsg("error %lld: %s", (long long)e,
			    get_str(o, "errmsg") ? get_str(o, "errmsg") : "");
		json_object_put(o);
		return;
	}

	switch (msgid) {
	case MSG_ONE_CHAT:
	case MSG_GROUP_CHAT:
		show_chat(o);
		break;
	case MSG_LOGIN_ACK:
		if (e != 0) {
			printf("login failed: ");
			put_field(o, "errmsg");
			printf("\n");
			if (awaited)
				prompt(cc, ST_MENU);
		} else if (awaited) {
			show_login(cc, o);
			cc->state = ST_CHAT;
		}
		break;
	case MSG_REG_ACK:
		if (e != 0) {
			printf("register failed: ");
			put_field(o, "errmsg");
			printf("\n");
		} else {
			printf("%s registered, your user id is %lld; do not "
			    "forget it!\n", cc->reg_name ? cc->reg_name : "",
			    (long long)get_int(o, "id", 0));
		}
		if (awaited)
			prompt(cc, ST_MENU);
		break;
	case MSG_ERROR:
		printf("error %lld: ", (long long)e);
		put_field(o, "errmsg");
		printf("\n");
		break;
	default:
		printf("message: %.*s\n", (int)(len > INT_MAX ? INT_MAX : len),
		    p);
		break;
	}
	fflush(stdout);
	json_object_put(o);
}

static void
server_input(struct chatc *cc)
{
	enum frame_status	 st;
	size_t			 off, vlen, consumed;
	const char		*head, *nl;

	for (;;) {
		head = buf_head(&cc->in);
		st = frame_next(&cc->fs, head, buf_used(&cc->in),
		    MAX_SERVER_FRAME, &off, &vlen, &consumed);
		switch (st) {
		case FRAME_OK:
			server_msg(cc, head + off, vlen);
			break;
		case FRAME_BAD:
			warnmsg("malformed message from the server");
			break;
		case FRAME_GARBAGE:
			/* skip to the end of that line */
			nl = memchr(head + off, '\n', buf_used(&cc->in) - off);
			consumed = nl != NULL ? (size_t)(nl - head) + 1 :
			    buf_used(&cc->in);
			warnmsg("garbage from the server: %.*s",
			    (int)(consumed - off > 200 ? 200 : consumed - off),
			    head + off);
			break;
		case FRAME_TOO_BIG:
			warnmsg("message from the server too big");
			exit(1);
		case FRAME_NEED_MORE:
			break;
		}
		buf_consume(&cc->in, consumed);
		if (st == FRAME_NEED_MORE || buf_used(&cc->in) == 0)
			break;
	}
}

/* ---- commands ------------------------------------------------------- */

/*
 * A chat command, shared by the interactive and the script mode.
 * Returns 1 if cmd was one, 0 if not, -1 after reporting a mistake.
 */
static int
chat_command(struct chatc *cc, char *line)
{
	struct json_object	*o;
	const char		*usage;
	char			*arg, *rest;
	int32_t			 id;

	arg = chatc_split(line);
	if (strcmp(line, "help") == 0 && arg == NULL) {
		show_help();
		return 1;
	}
	if (strcmp(line, "loginout") == 0 && arg == NULL) {
		req_loginout(cc);
		return 1;
	}
	if (strcmp(line, "chat") == 0 || strcmp(line, "groupchat") == 0) {
		if (arg == NULL || (rest = chatc_split(arg)) == NULL) {
			warnmsg("usage: %s:ID:TEXT", line);
			return -1;
		}
		if (chatc_parse_id(arg, &id) == -1) {
			warnmsg("%s: bad id \"%s\"", line, arg);
			return -1;
		}
		if (line[0] == 'c')
			req_chat(cc, id, rest);
		else
			req_groupchat(cc, id, rest);
		return 1;
	}
	if (strcmp(line, "addfriend") == 0 || strcmp(line, "addgroup") == 0) {
		if (arg == NULL || chatc_parse_id(arg, &id) == -1) {
			warnmsg("usage: %s:ID", line);
			return -1;
		}
		if (strcmp(line, "addfriend") == 0)
			req_addfriend(cc, id);
		else
			req_addgroup(cc, id);
		return 1;
	}
	if (strcmp(line, "creategroup") == 0) {
		if (arg == NULL || (rest = chatc_split(arg)) == NULL) {
			warnmsg("usage: creategroup:NAME:DESC");
			return -1;
		}
		req_creategroup(cc, arg, rest);
		return 1;
	}
	switch (chatc_ext_command(line, arg, cc->uid, &o, &usage)) {
	case CHATC_EXT_OK:
		send_obj(cc, o);
		return 1;
	case CHATC_EXT_USAGE:
		warnmsg("usage: %s", usage);
		return -1;
	case CHATC_EXT_NONE:
		break;
	}
	if (arg != NULL)
		arg[-1] = ':';		/* undo the split for the caller */
	return 0;
}

/* Interactive exit: what is queued still goes out. */
static void
quit_now(struct chatc *cc, int code)
{
	int	 fl;

	if ((fl = fcntl(cc->fd, F_GETFL)) != -1)
		(void)fcntl(cc->fd, F_SETFL, fl & ~O_NONBLOCK);
	while (buf_used(&cc->out) > 0) {
		ssize_t n = send(cc->fd, buf_head(&cc->out),
		    buf_used(&cc->out), MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf_consume(&cc->out, (size_t)n);
	}
	exit(code);
}

static void
start_quit(struct chatc *cc)
{
	cc->quitting = 1;
	cc->quit_at = 0;	/* set once the output is flushed */
}

static void
script_line(struct chatc *cc, char *line)
{
	char	*arg, *rest, *end;
	double	 secs;
	int32_t	 id;
	int	 rc;

	if (line[0] == '\0' || line[0] == '#')
		return;
	if (strcmp(line, "quit") == 0) {
		start_quit(cc);
		return;
	}
	if (strncmp(line, "raw:", 4) == 0) {
		if (buf_append(&cc->out, line + 4, strlen(line + 4)) == -1 ||
		    buf_append(&cc->out, "", 1) == -1) {
			warnmsg("out of memory");
			exit(1);
		}
		return;
	}
	if (strncmp(line, "sleep:", 6) == 0) {
		errno = 0;
		secs = strtod(line + 6, &end);
		if (end == line + 6 || *end != '\0' || errno != 0 ||
		    !(secs >= 0 && secs <= 86400)) {
			warnmsg("line %lu: bad sleep \"%s\"", cc->lineno,
			    line + 6);
			return;
		}
		cc->sleep_until = (int64_t)util_mono_ms() + (int64_t)(secs * 1000);
		return;
	}
	if (strncmp(line, "register:", 9) == 0 ||
	    strncmp(line, "login:", 6) == 0) {
		arg = chatc_split(line);
		if ((rest = chatc_split(arg)) == NULL) {
			warnmsg("line %lu: usage: %s:%s:PASSWORD", cc->lineno,
			    line, line[0] == 'r' ? "NAME" : "ID");
			return;
		}
		if (line[0] == 'r') {
			req_register(cc, arg, rest);
			return;
		}
		if (chatc_parse_id(arg, &id) == -1) {
			warnmsg("line %lu: login: bad id \"%s\"", cc->lineno,
			    arg);
			return;
		}
		req_login(cc, id, rest);
		return;
	}
	/* stdout carries the server's messages only */
	rc = strcmp(line, "help") == 0 ? 0 : chat_command(cc, line);
	if (rc == 0)
		warnmsg("line %lu: unknown command \"%s\"", cc->lineno, line);
	else if (rc == -1)
		warnmsg("line %lu: not sent", cc->lineno);
}

static void
interactive_line(struct chatc *cc, char *line)
{
	static char	 name[1024];
	static int32_t	 id;
	int		 rc;

	switch (cc->state) {
	case ST_MENU:
		line += strspn(line, " \t");
		if (strcmp(line, "1") == 0)
			prompt(cc, ST_LOGIN_ID);
		else if (strcmp(line, "2") == 0)
			prompt(cc, ST_REG_NAME);
		else if (strcmp(line, "3") == 0)
			quit_now(cc, 0);
		else {
			printf("invalid input!\n");
			prompt(cc, ST_MENU);
		}
		break;
	case ST_LOGIN_ID:
		if (chatc_parse_id(line, &id) == -1) {
			printf("invalid user id\n");
			prompt(cc, ST_MENU);
		} else
			prompt(cc, ST_LOGIN_PW);
		break;
	case ST_LOGIN_PW:
		echo_restore();
		if (cc->tty)
			printf("\n");
		req_login(cc, id, line);
		cc->state = ST_WAIT;
		break;
	case ST_REG_NAME:
		snprintf(name, sizeof(name), "%s", line);
		prompt(cc, ST_REG_PW);
		break;
	case ST_REG_PW:
		echo_restore();
		if (cc->tty)
			printf("\n");
		req_register(cc, name, line);
		cc->state = ST_WAIT;
		break;
	case ST_CHAT:
		if (line[0] == '\0')
			break;
		if (strcmp(line, "quit") == 0)
			quit_now(cc, 0);
		rc = chat_command(cc, line);
		if (rc == 0)
			printf("invalid command, \"help\" lists them\n");
		else if (rc == 1 && cc->uid == 0)
			prompt(cc, ST_MENU);	/* after loginout */
		break;
	default:
		break;
	}
	fflush(stdout);
}

/* Whether the next stdin line may be taken now. */
static int
want_line(const struct chatc *cc)
{
	if (cc->quitting || cc->waiting != 0 || cc->sleep_until != 0 ||
	    cc->fd == -1)
		return 0;
	return cc->state != ST_WAIT;
}

/* Run the complete lines already read, as long as they may run. */
static void
run_lines(struct chatc *cc)
{
	char	*p, *nl;
	size_t	 n;

	while (want_line(cc) && buf_used(&cc->cmd) > 0) {
		p = buf_head(&cc->cmd);
		n = buf_used(&cc->cmd);
		if ((nl = memchr(p, '\n', n)) == NULL) {
			if (!cc->stdin_eof)
				return;
			/* a last line without a newline */
			if (buf_append(&cc->cmd, "\n", 1) == -1)
				exit(1);
			continue;
		}
		*nl = '\0';
		n = (size_t)(nl - p);
		if (n > 0 && p[n - 1] == '\r')
			p[n - 1] = '\0';
		cc->lineno++;
		/* the handler may append to out, never to cmd */
		if (cc->script)
			script_line(cc, p);
		else
			interactive_line(cc, p);
		buf_consume(&cc->cmd, (size_t)(nl - p) + 1);
	}
	if (want_line(cc) && cc->stdin_eof && buf_used(&cc->cmd) == 0) {
		if (!cc->script)
			quit_now(cc, 0);
		start_quit(cc);
	}
}

/* ---- the loop ------------------------------------------------------- */

/* Try again at a random point of [d/2, d], d doubling per try. */
static void
schedule_reconnect(struct chatc *cc, const char *why, int min_ms)
{
	int64_t	 d;

	if (cc->fd != -1) {
		close(cc->fd);
		cc->fd = -1;
	}
	buf_consume(&cc->in, buf_used(&cc->in));
	frame_scanner_init(&cc->fs);
	/* half-sent requests cannot be told from unsent ones: drop them */
	if (buf_used(&cc->out) > 0) {
		warnmsg("%zu bytes of requests not sent", buf_used(&cc->out));
		buf_consume(&cc->out, buf_used(&cc->out));
	}
	cc->waiting = 0;
	cc->resuming = 0;
	if (++cc->tries > RECONNECT_TRIES) {
		warnmsg("%s; gave up after %d tries", why, RECONNECT_TRIES);
		exit(1);
	}
	d = (int64_t)RECONNECT_FIRST_MS << (cc->tries - 1);
	if (d > RECONNECT_MAX_MS)
		d = RECONNECT_MAX_MS;
	d = d / 2 + rand_r(&cc->seed) % (d / 2 + 1);
	if (d < min_ms)
		d = min_ms;
	cc->reconnect_at = (int64_t)util_mono_ms() + d;
	warnmsg("%s; reconnecting in %lld ms", why != NULL ? why :
	    "connection lost", (long long)d);
}

static void
reconnect(struct chatc *cc)
{
	cc->reconnect_at = 0;
	if ((cc->fd = connect_to(cc->host, cc->port)) == -1) {
		schedule_reconnect(cc, "connect failed", 0);
		return;
	}
	req_resume(cc);
}

/* The connection is gone: log in again with the token, or stop. */
static void
lost(struct chatc *cc, const char *why)
{
	echo_restore();
	if (cc->script && cc->quitting)
		exit(0);
	if (!cc->no_resume && cc->token != NULL && cc->uid != 0) {
		schedule_reconnect(cc, why, 0);
		return;
	}
	warnmsg("%s", why);
	exit(1);
}

static void
read_server(struct chatc *cc)
{
	char	 rbuf[65536];
	ssize_t	 n;

	for (;;) {
		n = read(cc->fd, rbuf, sizeof(rbuf));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			server_input(cc);
			lost(cc, strerror(errno));
			return;
		}
		if (n == 0) {
			server_input(cc);
			lost(cc, "connection closed by the server");
			return;
		}
		if (buf_append(&cc->in, rbuf, (size_t)n) == -1) {
			warnmsg("out of memory");
			exit(1);
		}
		server_input(cc);
		if ((size_t)n < sizeof(rbuf) || cc->drop_ms > 0)
			return;
	}
}

static void
write_server(struct chatc *cc)
{
	ssize_t	 n;

	while (buf_used(&cc->out) > 0) {
		n = send(cc->fd, buf_head(&cc->out), buf_used(&cc->out),
		    MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			lost(cc, strerror(errno));
			return;
		}
		buf_consume(&cc->out, (size_t)n);
	}
}

static void
read_stdin(struct chatc *cc)
{
	char	 rbuf[65536];
	ssize_t	 n;

	n = read(STDIN_FILENO, rbuf, sizeof(rbuf));
	if (n == -1) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		warnmsg("stdin: %s", strerror(errno));
		cc->stdin_eof = 1;
		return;
	}
	if (n == 0) {
		cc->stdin_eof = 1;
		return;
	}
	if (buf_append(&cc->cmd, rbuf, (size_t)n) == -1) {
		warnmsg("out of memory");
		exit(1);
	}
}

static int
until(int64_t deadline, int64_t now, int timeout)
{
	int64_t	 left = deadline - now;

	if (left < 0)
		left = 0;
	if (timeout < 0 || left < timeout)
		return (int)(left > INT_MAX ? INT_MAX : left);
	return timeout;
}

static void
loop(struct chatc *cc)
{
	struct pollfd	 pfd[2];
	int64_t		 t;
	int		 timeout, n;

	for (;;) {
		if (cc->drop_ms > 0) {
			schedule_reconnect(cc, "resume refused for now",
			    cc->drop_ms);
			cc->drop_ms = 0;
		}
		t = (int64_t)util_mono_ms();
		if (cc->fd == -1 && t >= cc->reconnect_at)
			reconnect(cc);
		run_lines(cc);
		if (buf_used(&cc->out) > 0 && cc->fd != -1)
			write_server(cc);

		t = (int64_t)util_mono_ms();
		timeout = -1;
		if (cc->fd == -1)
			timeout = until(cc->reconnect_at, t, timeout);
		if (cc->waiting != 0 && cc->resuming && t >= cc->wait_until) {
			schedule_reconnect(cc, "no answer to the resume", 0);
			continue;
		}
		if (cc->waiting != 0) {
			if (t >= cc->wait_until) {
				warnmsg("no answer from the server");
				cc->waiting = 0;
				if (!cc->script)
					prompt(cc, ST_MENU);
				continue;
			}
			timeout = until(cc->wait_until, t, timeout);
		}
		if (cc->sleep_until != 0) {
			if (t >= cc->sleep_until) {
				cc->sleep_until = 0;
				continue;
			}
			timeout = until(cc->sleep_until, t, timeout);
		}
		if (cc->quitting && (buf_used(&cc->out) == 0 || cc->fd == -1)) {
			if (cc->quit_at == 0)
				cc->quit_at = t + cc->grace_ms;
			if (t >= cc->quit_at)
				exit(0);
			timeout = until(cc->quit_at, t, timeout);
		}

		pfd[0].fd = cc->fd;
		pfd[0].events = POLLIN;
		if (buf_used(&cc->out) > 0)
			pfd[0].events |= POLLOUT;
		pfd[1].fd = STDIN_FILENO;
		pfd[1].events = POLLIN;
		/* read stdin only when a line may run: no buffering ahead */
		if (cc->stdin_eof || !want_line(cc))
			pfd[1].fd = -1;
		n = poll(pfd, 2, timeout);
		if (got_signal) {
			echo_restore();
			exit(130);
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			warnmsg("poll: %s", strerror(errno));
			exit(1);
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
			read_server(cc);
		if (pfd[0].revents & POLLOUT)
			write_server(cc);
		if (pfd[1].fd != -1 && (pfd[1].revents & (POLLIN | POLLHUP |
		    POLLERR)))
			read_stdin(cc);
	}
}

int
main(int argc, char *argv[])
{
	struct chatc		 cc;
	struct sigaction	 sa;
	const char		*host = DEFAULT_HOST, *port = DEFAULT_PORT;
	char			*end;
	long			 v;
	int			 ch;

	memset(&cc, 0, sizeof(cc));
	cc.grace_ms = DEFAULT_GRACE_MS;
	while ((ch = getopt(argc, argv, "h:p:Rsw:")) != -1) {
		switch (ch) {
		case 'R':
			cc.no_resume = 1;
			break;
		case 'h':
			host = optarg;
			break;
		case 'p':
			port = optarg;
			break;
		case 's':
			cc.script = 1;
			break;
		case 'w':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || errno != 0 ||
			    v < 0 || v > 3600000)
				usage();
			cc.grace_ms = (int)v;
			break;
		default:
			usage();
		}
	}
	if (argc != optind)
		usage();

	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	atexit(echo_restore);

	cc.host = host;
	cc.port = port;
	cc.seed = (unsigned int)getpid() ^ (unsigned int)util_mono_ms();
	if ((cc.fd = connect_to(host, port)) == -1)
		return 1;
	frame_scanner_init(&cc.fs);
	cc.tty = isatty(STDIN_FILENO);
	if (cc.script)
		cc.state = ST_SCRIPT;
	else
		prompt(&cc, ST_MENU);
	loop(&cc);
	return 0;
}
