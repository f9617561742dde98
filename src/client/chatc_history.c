/*
 * chatc_history.c - chatc's commands for conversation history and
 * account deletion (chatd-protocol(7) HISTORY, DELETE_ACCOUNT).  Builds
 * requests only; chatc_show.c prints the answers.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "proto.h"
#include "chatc_ext.h"

/* history:U / ghistory:G, then [:BEFORE[:LIMIT]] */
static enum chatc_ext_result
history_req(int group, char *arg, int32_t uid, struct json_object **req)
{
	struct json_object	*o;
	char			*before, *limit;
	int32_t			 id, b = 0, n = 0;

	before = chatc_split(arg);
	limit = chatc_split(before);
	if (chatc_parse_id(arg, &id) == -1 ||
	    (before != NULL && before[0] != '\0' &&
	    chatc_parse_id(before, &b) == -1) ||
	    (limit != NULL && (chatc_parse_id(limit, &n) == -1 ||
	    n > PROTO_HISTORY_MAX)))
		return CHATC_EXT_USAGE;
	o = json_object_new_object();
	json_object_object_add(o, group ? "groupid" : "toid",
	    json_object_new_int(id));
	json_object_object_add(o, "id", json_object_new_int(uid));
	json_object_object_add(o, "msgid", json_object_new_int(MSG_HISTORY));
	if (b != 0)
		json_object_object_add(o, "before", json_object_new_int64(b));
	if (n != 0)
		json_object_object_add(o, "limit", json_object_new_int(n));
	*req = o;
	return CHATC_EXT_OK;
}

enum chatc_ext_result
chatc_history_command(const char *cmd, char *arg, int32_t uid,
    struct json_object **req, const char **usage)
{
	struct json_object	*o;

	*req = NULL;
	if (strcmp(cmd, "history") == 0 || strcmp(cmd, "ghistory") == 0) {
		*usage = cmd[0] == 'g' ? "ghistory:GROUP[:BEFORE[:LIMIT]]" :
		    "history:USER[:BEFORE[:LIMIT]]";
		return history_req(cmd[0] == 'g', arg, uid, req);
	}
	if (strcmp(cmd, "deleteaccount") == 0) {
		*usage = "deleteaccount:PASSWORD";
		if (arg == NULL || arg[0] == '\0')
			return CHATC_EXT_USAGE;
		o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_int(uid));
		json_object_object_add(o, "msgid",
		    json_object_new_int(MSG_DELETE_ACCOUNT));
		json_object_object_add(o, "password",
		    json_object_new_string(arg));
		*req = o;
		return CHATC_EXT_OK;
	}
	return CHATC_EXT_NONE;
}

void
chatc_history_help(FILE *fp)
{
	fprintf(fp,
	    "  history:U[:BEFORE[:LIMIT]]    your chats with U, newest first\n"
	    "  ghistory:G[:BEFORE[:LIMIT]]   group G's chats since you joined\n"
	    "  deleteaccount:PASSWORD        delete your account for good\n");
}
