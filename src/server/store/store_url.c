/*
 * store_url.c - the MySQL store's URL (the format and its escapes are
 * described at the top of store_mysql.c):
 *	mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?socket=PATH]
 * with %-escapes in the user, password, database and socket path.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"
#include "store_url.h"
#include "util.h"

/* Percent-decode s[0..n) into a new string; NULL on a bad escape. */
static char *
pct_decode(const char *s, size_t n, const char *what, char *err,
    size_t errlen)
{
	char	*d, *o;
	size_t	 i;
	int	 hi, lo;

	if ((d = o = malloc(n + 1)) == NULL) {
		snprintf(err, errlen, "mysql: out of memory");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 >= n || (hi = util_hexval((unsigned char)s[i + 1])) == -1 ||
		    (lo = util_hexval((unsigned char)s[i + 2])) == -1 ||
		    (hi == 0 && lo == 0)) {
			snprintf(err, errlen, "mysql URL: bad %%-escape in %s "
			    "(write %% as %%25; %%00 is not allowed)", what);
			free(d);
			return NULL;
		}
		*o++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*o = '\0';
	return d;
}

/* Last c in s[0..n), or NULL. */
static const char *
lastchr(const char *s, size_t n, int c)
{
	while (n > 0)
		if (s[--n] == c)
			return s + n;
	return NULL;
}

int
store_url_parse(struct store_url *m, const char *url, char *err,
    size_t errlen)
{
	const char	*p, *end, *at, *colon, *host, *hend, *q, *kv, *kvend;
	size_t		 hlen;
	long		 port;
	char		*ep;

	memset(m, 0, sizeof(*m));
	if (strncmp(url, "mysql://", 8) != 0) {
		snprintf(err, errlen, "mysql URL must start with mysql://");
		return -1;
	}
	p = url + 8;
	/* The authority ends at the first '/' or '?'. */
	end = p + strcspn(p, "/?");
	if (*end != '/') {
		snprintf(err, errlen, "mysql URL: no database (expected "
		    "mysql://user:password@host:port/database)");
		return -1;
	}

	/* user[:password]@ -- the last '@' ends it. */
	host = p;
	if ((at = lastchr(p, end - p, '@')) != NULL) {
		colon = memchr(p, ':', at - p);
		if ((m->user = pct_decode(p, (colon ? colon : at) - p, "user",
		    err, errlen)) == NULL)
			return -1;
		if (colon != NULL && (m->pass = pct_decode(colon + 1,
		    at - colon - 1, "password", err, errlen)) == NULL)
			return -1;
		host = at + 1;
	}
	if (m->user == NULL || m->user[0] == '\0') {
		snprintf(err, errlen, "mysql URL: no user (expected "
		    "mysql://user:password@host:port/database)");
		return -1;
	}

	/* host[:port], [v6addr][:port] */
	m->port = 3306;
	if (*host == '[') {
		if ((hend = memchr(host, ']', end - host)) == NULL) {
			snprintf(err, errlen, "mysql URL: missing ']' after "
			    "IPv6 address");
			return -1;
		}
		hlen = hend - host - 1;
		host++;
		colon = hend + 1 < end && hend[1] == ':' ? hend + 1 : NULL;
		if (hend + 1 < end && colon == NULL) {
			snprintf(err, errlen, "mysql URL: junk after ']'");
			return -1;
		}
	} else {
		colon = memchr(host, ':', end - host);
		hlen = (colon ? colon : end) - host;
	}
	if (colon != NULL) {
		errno = 0;
		port = strtol(colon + 1, &ep, 10);
		if (ep != end || ep == colon + 1 || errno != 0 || port < 1 ||
		    port > 65535) {
			snprintf(err, errlen, "mysql URL: bad port \"%.*s\"",
			    (int)(end - colon - 1), colon + 1);
			return -1;
		}
		m->port = (unsigned int)port;
	}
	if ((m->host = store_memdup(host, hlen)) == NULL) {
		snprintf(err, errlen, "mysql: out of memory");
		return -1;
	}

	/* /database[?socket=path] */
	p = end + 1;
	q = strchr(p, '?');
	if ((m->db = pct_decode(p, q ? (size_t)(q - p) : strlen(p),
	    "database", err, errlen)) == NULL)
		return -1;
	if (m->db[0] == '\0') {
		snprintf(err, errlen, "mysql URL: no database name");
		return -1;
	}
	for (kv = q; kv != NULL && *kv != '\0'; kv = kvend) {
		kv++;
		kvend = kv + strcspn(kv, "&");
		if (strncmp(kv, "socket=", 7) != 0) {
			snprintf(err, errlen, "mysql URL: unknown option "
			    "\"%.*s\" (known: socket=PATH)", (int)(kvend - kv),
			    kv);
			return -1;
		}
		free(m->sock);
		if ((m->sock = pct_decode(kv + 7, kvend - kv - 7, "socket",
		    err, errlen)) == NULL)
			return -1;
		if (m->sock[0] == '\0') {
			snprintf(err, errlen, "mysql URL: empty socket path");
			return -1;
		}
	}

	if (m->host[0] == '\0') {
		if (m->sock == NULL) {
			snprintf(err, errlen, "mysql URL: no host");
			return -1;
		}
		free(m->host);
		if ((m->host = strdup("localhost")) == NULL) {
			snprintf(err, errlen, "mysql: out of memory");
			return -1;
		}
	}
	return 0;
}

void
store_url_free(struct store_url *u)
{
	if (u == NULL)
		return;
	free(u->host);
	free(u->user);
	if (u->pass != NULL) {
		explicit_bzero(u->pass, strlen(u->pass));
		free(u->pass);
	}
	free(u->db);
	free(u->sock);
	memset(u, 0, sizeof(*u));
}
