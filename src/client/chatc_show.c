/*
 * chatc_show.c - what the server sent: split with the server's own frame
 * splitter (proto.h: frame_next), remembered (who we are, the resume
 * token) and shown on the terminal, or copied to stdout with -s.
 */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "chatc_ext.h"
#include "chatc_impl.h"
#include "proto.h"

#define MAX_SERVER_FRAME	((size_t)1 << 30)


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
void
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

void
each_encoded_arg(struct json_object *o, const char *key,
    void (*fn)(void *, struct json_object *, struct json_object *),
    void *arg)
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
		fn(arg, in, el);
		json_object_put(in);
	}
}

struct show_fn {
	void	(*fn)(struct json_object *);
};

static void
show_one(void *arg, struct json_object *in, struct json_object *el)
{
	(void)el;
	((struct show_fn *)arg)->fn(in);
}

/* Each element of the list key is itself a JSON text; call fn on it. */
static void
each_encoded(struct json_object *o, const char *key,
    void (*fn)(struct json_object *))
{
	struct show_fn	 f = { fn };

	each_encoded_arg(o, key, show_one, &f);
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

void
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
	chatc_history_help(stdout);
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

void
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
			fflush(stdout);
		}
		resume_start(cc, o);	/* shows what arrived meanwhile */
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
	resume_login_chats(cc, o);
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
	struct json_object	*o, *v;
	int			 msgid, awaited = 0;
	int64_t			 e;

	if ((tok = json_tokener_new()) == NULL) {
		warnmsg("out of memory");
		exit(1);
	}
	o = json_tokener_parse_ex(tok, p, (int)(len > INT_MAX ? INT_MAX : len));
	json_tokener_free(tok);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		if (cc->script) {
			fwrite(p, 1, len, stdout);
			fputc('\n', stdout);
			fflush(stdout);
		}
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
	if (msgid == MSG_ONE_CHAT || msgid == MSG_GROUP_CHAT) {
		/* shown once (script: the line as received), or held */
		resume_chat(cc, o, p, len);
		json_object_put(o);
		return;
	}
	if (msgid == MSG_RESUME_ACK) {
		resume_answer(cc, o);
		json_object_put(o);
		return;
	}
	if (msgid == MSG_ERROR && get_int(o, "refmsgid", 0) == MSG_RESUME)
		resume_refused(cc, o);
	/* a resume's answer that a RESUME follows is printed without its
	 * offline chats (resume_start): they come once, in order */
	if (cc->script && !(msgid == MSG_LOGIN_ACK && awaited &&
	    cc->resuming && e == 0 && resume_will_ask(cc))) {
		fwrite(p, 1, len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	}
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
	case MSG_HISTORY_ACK:
		each_encoded(o, "messages", show_chat);
		printf("%s\n", json_object_object_get_ex(o, "more", &v) &&
		    json_object_get_boolean(v) ? "(older messages: add "
		    ":BEFORE, the oldest smid here)" : "(no older messages)");
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

void
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

