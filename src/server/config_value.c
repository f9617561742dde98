/*
 * config_value.c - one configuration value from its text: numbers with
 * their bounds, sizes, booleans, host:port and the redis key's list of
 * instances or sentinels, stored into struct config by cfg_set().
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "config_impl.h"
#include "log.h"

/* 1024 -> "1k", 16777216 -> "16m", 1000 -> "1000". */
static void
fmt_size(char *s, size_t len, long long v)
{
	if (v != 0 && v % GiB == 0)
		snprintf(s, len, "%lldg", v / GiB);
	else if (v != 0 && v % MiB == 0)
		snprintf(s, len, "%lldm", v / MiB);
	else if (v != 0 && v % KiB == 0)
		snprintf(s, len, "%lldk", v / KiB);
	else
		snprintf(s, len, "%lld", v);
}

/* 0, -1 not a number, -2 does not fit. */
int
cfg_parse_int(const char *s, long long *out)
{
	char		*end;
	long long	 v;

	if (*s != '-' && !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0')
		return -1;
	if (errno == ERANGE)
		return -2;
	*out = v;
	return 0;
}

static int
parse_size(const char *s, long long *out)
{
	char			*end;
	unsigned long long	 v, mul = 1;
	int			 overflow;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	overflow = (errno == ERANGE);
	switch (*end) {
	case 'k': case 'K':
		mul = KiB;
		end++;
		break;
	case 'm': case 'M':
		mul = MiB;
		end++;
		break;
	case 'g': case 'G':
		mul = GiB;
		end++;
		break;
	}
	if (*end != '\0')
		return -1;
	if (overflow || v > (unsigned long long)LLONG_MAX / mul)
		return -2;
	*out = (long long)(v * mul);
	return 0;
}

/* *out 1 or 0; -1 when s is neither. */
static int
parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "on", "true", "1" };
	static const char *const no[] = { "no", "off", "false", "0" };
	size_t	 i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

static int
valid_hostname(const char *h)
{
	size_t	 n = strlen(h), i, label = 0;

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++) {
		if (h[i] == '.') {
			if (label == 0 || h[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)h[i]) && h[i] != '-' &&
		    h[i] != '_')
			return 0;
		if (h[i] == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return h[n - 1] != '-';
}

/*
 * "host:port", "*:port", "[v6addr]:port".  On success *hostp (if not
 * NULL) gets a malloc'd host without brackets, "*" turned into
 * "0.0.0.0".  On failure *why says what is wrong.
 */
int
cfg_hostport_parse(const char *s, long long pmin, long long pmax,
    char **hostp, int *portp, const char **why)
{
	char			 host[256];
	const char		*colon, *port;
	size_t			 hlen;
	long long		 pn;
	struct in6_addr		 a6;
	struct in_addr		 a4;

	if (*s == '[') {
		if ((colon = strchr(s, ']')) == NULL) {
			*why = "missing ']'";
			return -1;
		}
		hlen = (size_t)(colon - s - 1);
		if (hlen == 0 || hlen >= sizeof(host)) {
			*why = "bad IPv6 address";
			return -1;
		}
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1) {
			*why = "bad IPv6 address";
			return -1;
		}
		colon++;
		if (*colon != ':') {
			*why = "missing port";
			return -1;
		}
	} else {
		if ((colon = strrchr(s, ':')) == NULL) {
			*why = "missing port";
			return -1;
		}
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen) != NULL) {
			*why = "IPv6 address needs [brackets]";
			return -1;
		}
		if (hlen == 0 || hlen >= sizeof(host)) {
			*why = "missing host";
			return -1;
		}
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (strcmp(host, "*") == 0)
			snprintf(host, sizeof(host), "0.0.0.0");
		else if (strspn(host, "0123456789.") == hlen) {
			if (inet_pton(AF_INET, host, &a4) != 1) {
				*why = "bad IPv4 address";
				return -1;
			}
		} else if (!valid_hostname(host)) {
			*why = "bad host name";
			return -1;
		}
	}
	port = colon + 1;
	if (*port == '\0') {
		*why = "missing port";
		return -1;
	}
	if (!isdigit((unsigned char)*port) || cfg_parse_int(port, &pn) != 0 ||
	    pn < pmin || pn > pmax) {
		*why = "bad port";
		return -1;
	}
	if (hostp != NULL && (*hostp = strdup(host)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	if (portp != NULL)
		*portp = (int)pn;
	return 0;
}

/* "port" alone means the loopback address. */
/* cfg's redis fields from "redis" (NULL: none) reset first. */
void
cfg_redis_clear(struct config *cfg)
{
	int	 i;

	free(cfg->redis_host);
	cfg->redis_host = NULL;
	cfg->redis_port = 0;
	free(cfg->redis_master);
	cfg->redis_master = NULL;
	for (i = 0; i < cfg->redis_nsentinels; i++)
		free(cfg->redis_sentinel_host[i]);
	free(cfg->redis_sentinel_host);
	free(cfg->redis_sentinel_port);
	cfg->redis_sentinel_host = NULL;
	cfg->redis_sentinel_port = NULL;
	cfg->redis_nsentinels = 0;
	for (i = 0; i < cfg->redis_n; i++) {
		if (cfg->redis_hosts != NULL)
			free(cfg->redis_hosts[i]);
		if (cfg->redis_masters != NULL)
			free(cfg->redis_masters[i]);
	}
	free(cfg->redis_hosts);
	free(cfg->redis_ports);
	free(cfg->redis_masters);
	cfg->redis_hosts = NULL;
	cfg->redis_ports = NULL;
	cfg->redis_masters = NULL;
	cfg->redis_n = 0;
}

/*
 * Split s[0..len) at commas: each piece, NUL-terminated, to one(); at
 * most max pieces.  0 or -1 (one's -1, or too many, with why).
 */
static int
redis_each(const char *s, size_t len, int max, const char *what,
    int (*one)(struct config *, const char *, char *, size_t),
    struct config *cfg, char *why, size_t wlen)
{
	const char	*p = s, *end = s + len, *comma;
	char		*piece;
	int		 n = 0, rc;

	for (; p <= end; p = comma + 1) {
		if ((comma = memchr(p, ',', (size_t)(end - p))) == NULL)
			comma = end;
		if (++n > max) {
			snprintf(why, wlen, "redis: at most %d %s", max, what);
			return -1;
		}
		if ((piece = strndup(p, (size_t)(comma - p))) == NULL) {
			snprintf(why, wlen, "out of memory");
			return -1;
		}
		rc = one(cfg, piece, why, wlen);
		free(piece);
		if (rc == -1)
			return -1;
	}
	return 0;
}

/* Append v to the array *a of *n (strings or ints). */
static int
grow(void **a, size_t size, int n)
{
	void	*na;

	if ((na = reallocarray(*a, (size_t)n + 1, size)) == NULL)
		return -1;
	*a = na;
	return 0;
}

static int
redis_one_instance(struct config *cfg, const char *v, char *why, size_t len)
{
	const char	*hwhy;
	char		*host;
	int		 port;

	if (cfg_hostport_parse(v, 1, 65535, cfg ? &host : NULL, &port,
	    &hwhy) == -1) {
		snprintf(why, len, "bad host:port for redis: \"%.*s\" (%s)",
		    CFG_SHOW, v, hwhy);
		return -1;
	}
	if (cfg == NULL)
		return 0;
	if (grow((void **)&cfg->redis_hosts, sizeof(char *), cfg->redis_n) ==
	    -1 || grow((void **)&cfg->redis_ports, sizeof(int),
	    cfg->redis_n) == -1) {
		free(host);
		snprintf(why, len, "out of memory");
		return -1;
	}
	cfg->redis_hosts[cfg->redis_n] = host;
	cfg->redis_ports[cfg->redis_n++] = port;
	return 0;
}

static int
redis_one_sentinel(struct config *cfg, const char *v, char *why, size_t len)
{
	const char	*hwhy;
	char		*host;
	int		 port, n;

	if (cfg_hostport_parse(v, 1, 65535, cfg ? &host : NULL, &port,
	    &hwhy) == -1) {
		snprintf(why, len, "redis: sentinel \"%.*s\": %s", CFG_SHOW, v,
		    hwhy);
		return -1;
	}
	if (cfg == NULL)
		return 0;
	n = cfg->redis_nsentinels;
	if (grow((void **)&cfg->redis_sentinel_host, sizeof(char *), n) ==
	    -1 || grow((void **)&cfg->redis_sentinel_port, sizeof(int), n) ==
	    -1) {
		free(host);
		snprintf(why, len, "out of memory");
		return -1;
	}
	cfg->redis_sentinel_host[n] = host;
	cfg->redis_sentinel_port[n] = port;
	cfg->redis_nsentinels = n + 1;
	return 0;
}

static int
redis_one_master(struct config *cfg, const char *v, char *why, size_t len)
{
	if (v[0] == '\0' || strpbrk(v, " \t/") != NULL) {
		snprintf(why, len, "redis: bad primary name \"%.*s\"",
		    CFG_SHOW, v);
		return -1;
	}
	if (cfg == NULL)
		return 0;
	if (grow((void **)&cfg->redis_masters, sizeof(char *), cfg->redis_n) ==
	    -1 || (cfg->redis_masters[cfg->redis_n] = strdup(v)) == NULL) {
		snprintf(why, len, "out of memory");
		return -1;
	}
	cfg->redis_n++;
	return 0;
}

/*
 * "host:port[,host:port...]" or "sentinel://host:port[,host:port...]/
 * name[,name...]": one bus instance per host:port or per name.  Checked,
 * and with cfg not NULL stored in its redis fields (redis_host/port or
 * redis_master: the first instance).  0 or -1 with why.
 */
int
cfg_redis_parse(const char *v, struct config *cfg, char *why, size_t len)
{
	const char	*p, *slash;

	if (cfg != NULL)
		cfg_redis_clear(cfg);
	if (v == NULL)
		return 0;
	if (strncmp(v, "sentinel://", 11) != 0) {
		if (redis_each(v, strlen(v), 64, "instances",
		    redis_one_instance, cfg, why, len) == -1)
			return -1;
		if (cfg != NULL && (cfg->redis_host =
		    strdup(cfg->redis_hosts[0])) == NULL) {
			snprintf(why, len, "out of memory");
			return -1;
		}
		if (cfg != NULL)
			cfg->redis_port = cfg->redis_ports[0];
		return 0;
	}
	p = v + 11;
	if ((slash = strchr(p, '/')) == NULL || slash[1] == '\0' ||
	    slash == p) {
		snprintf(why, len, "redis: \"%.*s\": want sentinel://host:port"
		    "[,host:port...]/name[,name...]", CFG_SHOW, v);
		return -1;
	}
	if (redis_each(p, (size_t)(slash - p), 16, "sentinels",
	    redis_one_sentinel, cfg, why, len) == -1 ||
	    redis_each(slash + 1, strlen(slash + 1), 64, "instances",
	    redis_one_master, cfg, why, len) == -1)
		return -1;
	if (cfg != NULL && (cfg->redis_master =
	    strdup(cfg->redis_masters[0])) == NULL) {
		snprintf(why, len, "out of memory");
		return -1;
	}
	return 0;
}

int
cfg_set_string(char **dst, const char *v)
{
	char	*s = NULL;

	if (v != NULL && (s = strdup(v)) == NULL)
		return -1;
	free(*dst);
	*dst = s;
	return 0;
}

/* Store v into the key's field; on failure why holds the reason. */
int
cfg_set(struct config *cfg, const struct cfg_key *k, const char *v,
    char *why, size_t len)
{
	const char	*hwhy;
	char		 lo[32], hi[32];
	long long	 n;
	int		 r;

	switch (k->type) {
	case CFG_STRING:
		if (k->check != NULL && k->check(v, why, len) == -1)
			return -1;
		break;
	case CFG_HOSTPORT:
		if (cfg_hostport_parse(v, k->min, k->max, NULL, NULL,
		    &hwhy) == -1) {
			snprintf(why, len, "bad host:port for %s: \"%.*s\" (%s)",
			    k->name, CFG_SHOW, v, hwhy);
			return -1;
		}
		break;
	case CFG_INT:
	case CFG_SIZE:
		if (k->type == CFG_INT)
			r = cfg_parse_int(v, &n);
		else
			r = parse_size(v, &n);
		if (r == -1) {
			snprintf(why, len, "bad number for %s: \"%.*s\"",
			    k->name, CFG_SHOW, v);
			return -1;
		}
		if (r == -2 || n < k->min || n > k->max) {
			if (k->type == CFG_SIZE) {
				fmt_size(lo, sizeof(lo), k->min);
				fmt_size(hi, sizeof(hi), k->max);
			} else {
				snprintf(lo, sizeof(lo), "%lld", k->min);
				snprintf(hi, sizeof(hi), "%lld", k->max);
			}
			snprintf(why, len, "%s out of range: %.*s "
			    "(must be %s to %s)", k->name, CFG_SHOW, v, lo, hi);
			return -1;
		}
		if (k->type == CFG_INT)
			*FIELD(cfg, k, int) = (int)n;
		else
			*FIELD(cfg, k, size_t) = (size_t)n;
		return 0;
	case CFG_BOOL:
		if (parse_bool(v, &r) == -1) {
			snprintf(why, len, "bad value for %s: \"%.*s\" "
			    "(yes or no)", k->name, CFG_SHOW, v);
			return -1;
		}
		*FIELD(cfg, k, int) = r;
		return 0;
	case CFG_LOGLEVEL:
		if ((r = log_level_parse(v)) == -1) {
			snprintf(why, len, "bad log level for %s: \"%.*s\" "
			    "(debug, info, notice, warning, error, crit, "
			    "alert or emerg)", k->name, CFG_SHOW, v);
			return -1;
		}
		*FIELD(cfg, k, int) = r;
		return 0;
	}
	/* CFG_STRING, CFG_HOSTPORT */
	if (cfg_set_string(FIELD(cfg, k, char *), v) == -1) {
		snprintf(why, len, "out of memory");
		return -1;
	}
	return 0;
}

