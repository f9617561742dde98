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
/* History and account deletion (chatc_history.c), the same way. */
enum chatc_ext_result chatc_history_command(const char *cmd, char *arg,
	    int32_t uid, struct json_object **req, const char **usage);
void	chatc_history_help(FILE *fp);
/* An id: 1..INT32_MAX, nothing else; NULL is none.  0 or -1. */
int	chatc_parse_id(const char *s, int32_t *id);
/* Split "a:b" at the first ':'; returns b, or NULL (also for s NULL). */
char	*chatc_split(char *s);

#endif
