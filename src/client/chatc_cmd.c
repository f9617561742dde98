/*
 * chatc_cmd.c - chatc's commands, one line of stdin each: the menu and
 * prompts of the interactive mode, the script mode's lines (-s), and
 * the chat commands both share.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "chatc_ext.h"
#include "chatc_impl.h"
#include "util.h"


enum command_result {
	CMD_DONE,		/* it was one: done (a request queued) */
	CMD_UNKNOWN,		/* not a chat command */
	CMD_MISTAKE		/* reported on stderr, nothing sent */
};

/* A chat command, shared by the interactive and the script mode. */
static enum command_result
chat_command(struct chatc *cc, char *line)
{
	struct json_object	*o;
	const char		*usage;
	char			*arg, *rest;
	int32_t			 id;
	enum chatc_ext_result	 rc;

	arg = chatc_split(line);
	if (strcmp(line, "help") == 0 && arg == NULL) {
		show_help();
		return CMD_DONE;
	}
	if (strcmp(line, "loginout") == 0 && arg == NULL) {
		req_loginout(cc);
		return CMD_DONE;
	}
	if (strcmp(line, "chat") == 0 || strcmp(line, "groupchat") == 0) {
		if (arg == NULL || (rest = chatc_split(arg)) == NULL) {
			warnmsg("usage: %s:ID:TEXT", line);
			return CMD_MISTAKE;
		}
		if (chatc_parse_id(arg, &id) == -1) {
			warnmsg("%s: bad id \"%s\"", line, arg);
			return CMD_MISTAKE;
		}
		if (line[0] == 'c')
			req_chat(cc, id, rest);
		else
			req_groupchat(cc, id, rest);
		return CMD_DONE;
	}
	if (strcmp(line, "addfriend") == 0 || strcmp(line, "addgroup") == 0) {
		if (arg == NULL || chatc_parse_id(arg, &id) == -1) {
			warnmsg("usage: %s:ID", line);
			return CMD_MISTAKE;
		}
		if (strcmp(line, "addfriend") == 0)
			req_addfriend(cc, id);
		else
			req_addgroup(cc, id);
		return CMD_DONE;
	}
	if (strcmp(line, "creategroup") == 0) {
		if (arg == NULL || (rest = chatc_split(arg)) == NULL) {
			warnmsg("usage: creategroup:NAME:DESC");
			return CMD_MISTAKE;
		}
		req_creategroup(cc, arg, rest);
		return CMD_DONE;
	}
	rc = chatc_ext_command(line, arg, cc->uid, &o, &usage);
	if (rc == CHATC_EXT_NONE)
		rc = chatc_history_command(line, arg, cc->uid, &o, &usage);
	switch (rc) {
	case CHATC_EXT_OK:
		send_obj(cc, o);
		return CMD_DONE;
	case CHATC_EXT_USAGE:
		warnmsg("usage: %s", usage);
		return CMD_MISTAKE;
	case CHATC_EXT_NONE:
		break;
	}
	if (arg != NULL)
		arg[-1] = ':';		/* undo the split for the caller */
	return CMD_UNKNOWN;
}

static void
script_line(struct chatc *cc, char *line)
{
	char	*arg, *rest, *end;
	double	 secs;
	int32_t	 id;
	enum command_result rc;

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
	rc = strcmp(line, "help") == 0 ? CMD_UNKNOWN :
	    chat_command(cc, line);
	if (rc == CMD_UNKNOWN)
		warnmsg("line %lu: unknown command \"%s\"", cc->lineno, line);
	else if (rc == CMD_MISTAKE)
		warnmsg("line %lu: not sent", cc->lineno);
}

static void
interactive_line(struct chatc *cc, char *line)
{
	static char	 name[1024];
	static int32_t	 id;
	enum command_result rc;

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
		if (rc == CMD_UNKNOWN)
			printf("invalid command, \"help\" lists them\n");
		else if (rc == CMD_DONE && cc->uid == 0)
			prompt(cc, ST_MENU);	/* after loginout */
		break;
	default:
		break;
	}
	fflush(stdout);
}

/* Whether the next stdin line may be taken now. */
int
want_line(const struct chatc *cc)
{
	if (cc->quitting || cc->waiting != 0 || cc->sleep_until != 0 ||
	    cc->fd == -1)
		return 0;
	return cc->state != ST_WAIT;
}

/* Run the complete lines already read, as long as they may run. */
void
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

