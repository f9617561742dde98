/*
 * chatc_ext.c - chatc's commands for the chat feature extensions
 * (chatd-protocol(7)): group management, member pages, friend removal,
 * blocks.  Builds requests only; chatc.c sends them and prints the
 * answers as they come.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "proto.h"
#include "chatc_ext.h"
#include "chatc_impl.h"

int
chatc_parse_id(const char *s, int32_t *id)
{
	char	*end;
	long	 v;

	if (s == NULL)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 ||
	    v < 1 || v > INT32_MAX)
		return -1;
	*id = (int32_t)v;
	return 0;
}

char *
chatc_split(char *s)
{
	char	*p;

	if (s == NULL || (p = strchr(s, ':')) == NULL)
		return NULL;
	*p = '\0';
	return p + 1;
}

static const struct {
	const char	*cmd;
	int		 op;		/* enum proto_group_op */
	const char	*usage;
} group_cmds[] = {
	{ "leave",	GOP_LEAVE,	"leave:GROUP" },
	{ "remove",	GOP_REMOVE,	"remove:GROUP:USER" },
	{ "admin",	GOP_ADMIN,	"admin:GROUP:USER" },
	{ "unadmin",	GOP_UNADMIN,	"unadmin:GROUP:USER" },
	{ "transfer",	GOP_TRANSFER,	"transfer:GROUP:USER" },
	{ "rename",	GOP_RENAME,	"rename:GROUP:NAME" },
	{ "describe",	GOP_DESCRIBE,	"describe:GROUP:DESC" },
	{ "dissolve",	GOP_DISSOLVE,	"dissolve:GROUP" },
};

enum chatc_ext_result
chatc_ext_command(const char *cmd, char *arg, int32_t uid,
    struct json_object **req, const char **usage)
{
	struct json_object	*o;
	char			*rest;
	int32_t			 gid, id;
	size_t			 i;

	*req = NULL;
	for (i = 0; i < sizeof(group_cmds) / sizeof(group_cmds[0]); i++) {
		if (strcmp(cmd, group_cmds[i].cmd) != 0)
			continue;
		*usage = group_cmds[i].usage;
		rest = chatc_split(arg);
		if (chatc_parse_id(arg, &gid) == -1)
			return CHATC_EXT_USAGE;
		o = json_object_new_object();
		switch (group_cmds[i].op) {
		case GOP_LEAVE:
		case GOP_DISSOLVE:
			if (rest != NULL)
				goto bad;
			break;
		case GOP_RENAME:
		case GOP_DESCRIBE:
			if (rest == NULL)
				goto bad;
			put_str(o, group_cmds[i].op == GOP_RENAME ?
			    "groupname" : "groupdesc", rest);
			break;
		default:
			if (chatc_parse_id(rest, &id) == -1)
				goto bad;
			put_int(o, "userid", id);
			break;
		}
		put_int(o, "groupid", gid);
		put_int(o, "id", uid);
		put_int(o, "msgid", MSG_GROUP_MANAGE);
		put_str(o, "op", proto_group_op_name(group_cmds[i].op));
		*req = o;
		return CHATC_EXT_OK;
 bad:
		json_object_put(o);
		return CHATC_EXT_USAGE;
	}
	if (strcmp(cmd, "members") == 0) {
		*usage = "members:GROUP[:OFFSET]";
		rest = chatc_split(arg);
		if (chatc_parse_id(arg, &gid) == -1 || (rest != NULL &&
		    strcmp(rest, "0") != 0 && chatc_parse_id(rest, &id) == -1))
			return CHATC_EXT_USAGE;
		o = json_object_new_object();
		put_int(o, "groupid", gid);
		put_int(o, "id", uid);
		put_int(o, "msgid", MSG_GROUP_MEMBERS);
		if (rest != NULL)
			put_int(o, "offset", strcmp(rest, "0") == 0 ? 0 : id);
		*req = o;
		return CHATC_EXT_OK;
	}
	if (strcmp(cmd, "unfriend") == 0 || strcmp(cmd, "block") == 0 ||
	    strcmp(cmd, "unblock") == 0) {
		int unfriend = strcmp(cmd, "unfriend") == 0;
		int block = strcmp(cmd, "block") == 0;

		*usage = unfriend ? "unfriend:USER" : block ? "block:USER" :
		    "unblock:USER";
		if (chatc_parse_id(arg, &id) == -1)
			return CHATC_EXT_USAGE;
		o = json_object_new_object();
		if (unfriend) {
			put_int(o, "friendid", id);
			put_int(o, "id", uid);
			put_int(o, "msgid", MSG_FRIEND_REMOVE);
		} else {
			put_int(o, "id", uid);
			put_int(o, "msgid", block ? MSG_BLOCK : MSG_UNBLOCK);
			put_int(o, "userid", id);
		}
		*req = o;
		return CHATC_EXT_OK;
	}
	if (strcmp(cmd, "blocks") == 0) {
		*usage = "blocks";
		if (arg != NULL)
			return CHATC_EXT_USAGE;
		o = json_object_new_object();
		put_int(o, "id", uid);
		put_int(o, "msgid", MSG_BLOCK_LIST);
		*req = o;
		return CHATC_EXT_OK;
	}
	return CHATC_EXT_NONE;
}

void
chatc_ext_help(FILE *fp)
{
	fprintf(fp,
	    "  leave:G  dissolve:G           leave group G; dissolve it (creator)\n"
	    "  remove:G:U                    remove member U (creator, admins)\n"
	    "  admin:G:U  unadmin:G:U        name or drop an admin (creator)\n"
	    "  transfer:G:U                  hand group G to member U (creator)\n"
	    "  rename:G:NAME  describe:G:D   rename, describe (creator, admins)\n"
	    "  members:G[:OFFSET]            list members, 50 at a time\n"
	    "  unfriend:U                    end a friendship\n"
	    "  block:U  unblock:U  blocks    block, unblock, list blocks\n");
}
