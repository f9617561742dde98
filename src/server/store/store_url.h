/* store_url.h - the MySQL URL, parsed (store_url.c); private to the store. */
#ifndef CHATD_STORE_URL_H
#define CHATD_STORE_URL_H

#include <stddef.h>

struct store_url {
	char		*host;		/* "localhost" with a socket */
	char		*user;
	char		*pass;		/* NULL: none in the URL */
	char		*db;
	char		*sock;		/* NULL: TCP */
	unsigned int	 port;		/* 3306 unless given */
};

/*
 * Parse url into u (strings allocated; release with store_url_free,
 * also after a failure).  0, or -1 with err saying what is wrong.
 */
int	store_url_parse(struct store_url *u, const char *url, char *err,
	    size_t errlen);
void	store_url_free(struct store_url *u);

#endif
