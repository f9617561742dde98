/* chatc_ext.h - chatc's extension commands (chatc_ext.c). */
#ifndef CHATC_EXT_H
#define CHATC_EXT_H

#include <stdint.h>
#include <stdio.h>

struct json_object;

enum chatc_ext_result {
	CHATC_EXT_NONE,		/* not an extension command */
	CHATC_EXT_OK,		/* *req is the request to send (caller frees) */
	CHATC_EXT_USAGE		/* a mistake: *usage says how it goes */
};

/*
 * cmd is the word before the first ':', arg the rest (NULL: none; it
 * may be cut up).  uid is the user logged in, for "id".
 */
enum chatc_ext_result chatc_ext_command(const char *cmd, char *arg,
	    int32_t uid, struct json_object **req, const char **usage);
void	chatc_ext_help(FILE *fp);

#endif
