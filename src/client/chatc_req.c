/*
 * chatc_req.c - chatc's requests: compact JSON with the keys sorted, as
 * the seed client writes them, followed by one NUL byte.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "buf.h"
#include "chatc_impl.h"
#include "proto.h"
#include "util.h"


void
put_int(struct json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, json_object_new_int64(v));
}

void
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
void
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

void
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

void
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

void
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

void
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

/* {key: v, "id", "msgid"}: the requests naming one user or group. */
static void
req_about(struct chatc *cc, const char *key, int32_t v, int msgid)
{
	struct json_object	*o = json_object_new_object();

	put_int(o, key, v);
	put_id(cc, o);
	put_int(o, "msgid", msgid);
	send_obj(cc, o);
}

void
req_addfriend(struct chatc *cc, int32_t fid)
{
	req_about(cc, "friendid", fid, MSG_ADD_FRIEND);
}

void
req_creategroup(struct chatc *cc, const char *name, const char *desc)
{
	struct json_object	*o = json_object_new_object();

	put_str(o, "groupdesc", desc);
	put_str(o, "groupname", name);
	put_id(cc, o);
	put_int(o, "msgid", MSG_CREATE_GROUP);
	send_obj(cc, o);
}

void
req_addgroup(struct chatc *cc, int32_t gid)
{
	req_about(cc, "groupid", gid, MSG_ADD_GROUP);
}

void
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
void
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

