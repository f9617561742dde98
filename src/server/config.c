/*
 * config.c - the configuration table and the "key = value" parser.
 *
 * Every key is one row of cfg_keys[]: its type, where it lives in
 * struct config, its default (text, parsed by the same code as the
 * file), its bounds and whether SIGHUP may change it.  Adding a key
 * means adding a field to struct config and a row here.
 *
 * Library code: problems are reported into the caller's buffer as
 * "FILE:LINE: reason", never logged.  Only cfg_apply_reload() logs.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/stat.h>

#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "guard.h"
#include "log.h"
#include "token.h"

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR	"/var"
#endif

#ifndef DATADIR
#define DATADIR		"/usr/local/share/chatd"
#endif

#define CFG_LINE_MAX	4096	/* longest line accepted */
#define CFG_SECRET_MAX	1024	/* longest db_password accepted */
#define CFG_KEY_MIN	32	/* shortest cluster key accepted */
#define CFG_WORKERS_MAX	64
#define CFG_SHOW	64	/* bytes of a bad value quoted in errors */

enum cfg_type {
	CFG_STRING,		/* char *, NULL when unset */
	CFG_INT,		/* int */
	CFG_SIZE,		/* size_t, suffixes k m g (1024-based) */
	CFG_BOOL,		/* int 0/1: yes no on off true false 1 0 */
	CFG_LOGLEVEL,		/* int LOG_* */
	CFG_HOSTPORT		/* char *, "host:port"; min/max bound the port */
};

/* Extra validation of a STRING value; fills why on failure. */
typedef int (*cfg_check_fn)(const char *, char *, size_t);

struct cfg_key {
	const char	*name;
	enum cfg_type	 type;
	size_t		 off;		/* into struct config */
	const char	*def;		/* NULL: unset */
	long long	 min;
	long long	 max;
	int		 reload;	/* SIGHUP may change it */
	cfg_check_fn	 check;
	const char	*help;
};

static int	check_storage(const char *, char *, size_t);
static int	check_shm_name(const char *, char *, size_t);
static int	check_nets(const char *, char *, size_t);
static int	check_proxy_nets(const char *, char *, size_t);
static int	check_user(const char *, char *, size_t);
static int	check_db_tls(const char *, char *, size_t);
static int	check_control_socket(const char *, char *, size_t);
static int	check_metrics_listen(const char *, char *, size_t);
static int	check_redis(const char *, char *, size_t);

#define OFF(f)		offsetof(struct config, f)
#define KiB		1024LL
#define MiB		(1024LL * 1024)
#define GiB		(1024LL * 1024 * 1024)
#define RELOAD		1
#define RESTART		0

static const struct cfg_key cfg_keys[] = {
	/* name, type, offset, default, min, max, reload, check, help */
	{ "listen", CFG_HOSTPORT, OFF(listen), "127.0.0.1:6000",
	    1, 65535, RESTART, NULL,
	    "address:port for clients; host, IPv4, * or [IPv6]" },
	{ "workers", CFG_INT, OFF(workers), "0",
	    0, CFG_WORKERS_MAX, RESTART, NULL,
	    "worker processes; 0: one per online CPU" },
	{ "storage", CFG_STRING, OFF(storage),
	    "sqlite:" LOCALSTATEDIR "/lib/chatd/chatd.db",
	    0, 0, RESTART, check_storage,
	    "sqlite:PATH or mysql://user[:password]@host[:port]/db" },
	{ "pid_file", CFG_STRING, OFF(pid_file), "/run/chatd/chatd.pid",
	    0, 0, RESTART, NULL,
	    "file holding the master's process id" },
	{ "log_file", CFG_STRING, OFF(log_file), "stderr",
	    0, 0, RELOAD, NULL,
	    "stderr, syslog or a file to append to" },
	{ "log_level", CFG_LOGLEVEL, OFF(log_level), "info",
	    0, 0, RELOAD, NULL,
	    "lowest priority logged: debug info notice warning error ..." },
	{ "shm_name", CFG_STRING, OFF(shm_name), NULL,
	    0, 0, RESTART, check_shm_name,
	    "shared memory object; default derived from listen" },
	{ "max_connections", CFG_INT, OFF(max_connections), "10000",
	    1, 1000000, RELOAD, NULL,
	    "client connections accepted by this node" },
	{ "max_online", CFG_INT, OFF(max_online), "262144",
	    16, 16 * MiB, RESTART, NULL,
	    "capacity of the shared table of online users" },
	/* restart: the worker channels are sized from it at start */
	{ "max_frame_bytes", CFG_SIZE, OFF(max_frame_bytes), "64k",
	    1 * KiB, 16 * MiB, RESTART, NULL,
	    "largest request a client may send" },
	{ "max_name_bytes", CFG_SIZE, OFF(max_name_bytes), "64",
	    1, 1 * KiB, RELOAD, NULL,
	    "longest user or group name" },
	{ "max_message_bytes", CFG_SIZE, OFF(max_message_bytes), "32k",
	    1, 16 * MiB, RELOAD, NULL,
	    "longest chat message; below max_frame_bytes - 256" },
	{ "max_groupdesc_bytes", CFG_SIZE, OFF(max_groupdesc_bytes), "1024",
	    0, 1 * MiB, RELOAD, NULL,
	    "longest group description" },
	{ "max_password_bytes", CFG_SIZE, OFF(max_password_bytes), "256",
	    1, 4 * KiB, RELOAD, NULL,
	    "longest password accepted" },
	{ "password_cost", CFG_INT, OFF(password_cost), "5",
	    1, 11, RELOAD, NULL,
	    "yescrypt cost of new password hashes" },
	{ "token_key_file", CFG_STRING, OFF(token_key_file), NULL,
	    0, 0, RESTART, NULL,
	    "HMAC key for resume tokens (mode 600); unset: no tokens" },
	{ "token_key_file_old", CFG_STRING, OFF(token_key_file_old), NULL,
	    0, 0, RESTART, NULL,
	    "the key before a rotation: its tokens are still accepted" },
	{ "token_lifetime", CFG_INT, OFF(token_lifetime), "2592000",
	    1, 366 * 86400, RELOAD, NULL,
	    "seconds a resume token stays valid" },
	{ "auth_queue_max", CFG_INT, OFF(auth_queue_max), "512",
	    1, 1000000, RELOAD, NULL,
	    "password hashes queued per worker before logins get \"busy\"" },
	{ "channel_queue_bytes", CFG_SIZE, OFF(channel_queue_bytes), "16m",
	    64 * KiB, 1 * GiB, RELOAD, NULL,
	    "queued bytes per destination worker" },
	{ "max_output_bytes", CFG_SIZE, OFF(max_output_bytes), "4m",
	    4 * KiB, 1 * GiB, RELOAD, NULL,
	    "unsent bytes per client before it is dropped" },
	{ "max_worker_output_bytes", CFG_SIZE, OFF(max_worker_output_bytes),
	    "0", 0, 1024 * GiB, RELOAD, NULL,
	    "unsent bytes of all clients of a worker; 0: a quarter of the "
	    "memory divided by workers" },
	/* a reader who only reads is never idle: dead peers are found by
	 * TCP keepalive instead */
	{ "idle_timeout", CFG_INT, OFF(idle_timeout), "0",
	    0, 86400, RELOAD, NULL,
	    "seconds without input before closing; 0: never" },
	{ "tcp_keepalive_idle", CFG_INT, OFF(tcp_keepalive_idle), "120",
	    0, 32767, RELOAD, NULL,
	    "seconds of silence before TCP keepalive probes; 0: off" },
	{ "tcp_keepalive_interval", CFG_INT, OFF(tcp_keepalive_interval),
	    "30", 1, 32767, RELOAD, NULL,
	    "seconds between TCP keepalive probes" },
	{ "tcp_keepalive_count", CFG_INT, OFF(tcp_keepalive_count), "4",
	    1, 127, RELOAD, NULL,
	    "unanswered keepalive probes before the peer is dead" },
	{ "tcp_send_buffer_bytes", CFG_SIZE, OFF(tcp_send_buffer_bytes), "0",
	    0, 64 * MiB, RELOAD, NULL,
	    "SO_SNDBUF of client sockets; 0: the kernel's autotuning" },
	/* a person at the seed client's menu, connected, for 10 minutes */
	{ "login_timeout", CFG_INT, OFF(login_timeout), "900",
	    1, 86400, RELOAD, NULL,
	    "seconds to log in after connecting or logging out" },
	{ "max_offline_per_login", CFG_SIZE, OFF(max_offline_per_login),
	    "1000", 1, 1000000, RELOAD, NULL,
	    "offline messages delivered in one login reply" },
	/* abuse limits: 0 turns a limit off */
	{ "max_connections_per_ip", CFG_INT, OFF(max_connections_per_ip),
	    "1024", 0, 1000000, RELOAD, NULL,
	    "connections from one IPv4 address or IPv6 /64, node-wide" },
	{ "per_ip_exempt", CFG_STRING, OFF(per_ip_exempt), NULL,
	    0, 0, RELOAD, check_nets,
	    "networks (CIDR list) exempt from the per-address limits" },
	{ "rate_limit_rps", CFG_INT, OFF(rate_limit_rps), "200",
	    0, 1000000, RELOAD, NULL,
	    "requests per second per connection; 0: no limit" },
	{ "rate_limit_burst", CFG_INT, OFF(rate_limit_burst), "400",
	    1, 10000000, RELOAD, NULL,
	    "requests a connection may send at once above the rate" },
	{ "login_fail_max", CFG_INT, OFF(login_fail_max), "5",
	    0, 1000000, RELOAD, NULL,
	    "failed logins per user from one address before a block; 0: off" },
	{ "login_fail_window", CFG_INT, OFF(login_fail_window), "60",
	    1, 86400, RELOAD, NULL,
	    "seconds in which login_fail_max failures cause a block" },
	{ "login_block", CFG_INT, OFF(login_block), "60",
	    1, 86400, RELOAD, NULL,
	    "seconds of the first block; each repeat doubles it (64x max)" },
	{ "login_fail_per_user_max", CFG_INT, OFF(login_fail_per_user_max),
	    "50", 0, 1000000, RELOAD, NULL,
	    "failed logins per user from all addresses before a block" },
	{ "login_fail_per_ip_max", CFG_INT, OFF(login_fail_per_ip_max),
	    "100", 0, 1000000, RELOAD, NULL,
	    "failed logins from one address (any users) before a block" },
	{ "register_rate_per_ip", CFG_INT, OFF(register_rate_per_ip), "30",
	    0, 1000000, RELOAD, NULL,
	    "registrations a minute from one address; 0: no limit" },
	{ "register_burst_per_ip", CFG_INT, OFF(register_burst_per_ip), "100",
	    1, 1000000, RELOAD, NULL,
	    "registrations one address may make at once" },
	{ "proxy_protocol_from", CFG_STRING, OFF(proxy_protocol_from), NULL,
	    0, 0, RELOAD, check_proxy_nets,
	    "balancers (CIDR list) whose connections start with a PROXY header" },
	{ "proxy_protocol_timeout", CFG_INT, OFF(proxy_protocol_timeout),
	    "5", 1, 3600, RESTART, NULL,
	    "seconds a balancer has to send the PROXY header" },
	{ "max_friends", CFG_INT, OFF(max_friends), "1000",
	    0, 10000000, RELOAD, NULL,
	    "friends per user; 0: no limit" },
	{ "max_groups_per_user", CFG_INT, OFF(max_groups_per_user), "500",
	    0, 10000000, RELOAD, NULL,
	    "groups a user may create or join; 0: no limit" },
	{ "max_group_members", CFG_INT, OFF(max_group_members), "5000",
	    0, 10000000, RELOAD, NULL,
	    "members per group; 0: no limit" },
	/* privileges */
	{ "user", CFG_STRING, OFF(user), NULL,
	    0, 0, RESTART, check_user,
	    "workers drop to this user (and its groups) after start" },
	{ "allow_root", CFG_BOOL, OFF(allow_root), "no",
	    0, 0, RESTART, NULL,
	    "let workers run as root when user is not set" },
	{ "whoami_anonymous", CFG_BOOL, OFF(whoami_anonymous), "no",
	    0, 0, RELOAD, NULL,
	    "answer WHOAMI before login (test harnesses, diagnostics)" },
	{ "db_pool_init", CFG_INT, OFF(db_pool_init), "1",
	    0, 256, RESTART, NULL,
	    "database connections opened at start" },
	{ "db_pool_max", CFG_INT, OFF(db_pool_max), "4",
	    1, 256, RESTART, NULL,
	    "most database connections per process" },
	{ "db_pool_idle", CFG_INT, OFF(db_pool_idle), "60",
	    0, 86400, RESTART, NULL,
	    "seconds before an idle extra connection is closed" },
	{ "db_connect_timeout_ms", CFG_INT, OFF(db_connect_timeout_ms),
	    "2000", 1, 600000, RESTART, NULL,
	    "database connect timeout, milliseconds" },
	{ "db_query_timeout_ms", CFG_INT, OFF(db_query_timeout_ms), "5000",
	    1, 600000, RESTART, NULL,
	    "database query timeout, milliseconds" },
	{ "db_password_file", CFG_STRING, OFF(db_password_file), NULL,
	    0, 0, RESTART, NULL,
	    "file holding the database password" },
	{ "db_tls", CFG_STRING, OFF(db_tls), "off",
	    0, 0, RESTART, check_db_tls,
	    "TLS to MySQL: off, required or verify" },
	{ "db_tls_ca", CFG_STRING, OFF(db_tls_ca), NULL,
	    0, 0, RESTART, NULL,
	    "CA certificates (PEM) that sign the MySQL server's" },
	{ "db_tls_cert", CFG_STRING, OFF(db_tls_cert), NULL,
	    0, 0, RESTART, NULL,
	    "client certificate (PEM) for MySQL, with db_tls_key" },
	{ "db_tls_key", CFG_STRING, OFF(db_tls_key), NULL,
	    0, 0, RESTART, NULL,
	    "key of db_tls_cert (PEM)" },
	{ "sqlite_busy_timeout_ms", CFG_INT, OFF(sqlite_busy_timeout_ms),
	    "5000", 0, 600000, RESTART, NULL,
	    "wait for a locked SQLite database, milliseconds" },
	{ "redis", CFG_STRING, OFF(redis), NULL,
	    0, 0, RESTART, check_redis,
	    "Redis host:port, or sentinel://host:port[,host:port...]/name, "
	    "for a cluster; unset: single node" },
	{ "redis_password", CFG_STRING, OFF(redis_password), NULL,
	    0, 0, RESTART, NULL,
	    "Redis AUTH password" },
	{ "cluster_key_file", CFG_STRING, OFF(cluster_key_file), NULL,
	    0, 0, RESTART, NULL,
	    "file (mode 600) with the key that signs items on Redis" },
	{ "cluster_key_file_old", CFG_STRING, OFF(cluster_key_file_old),
	    NULL, 0, 0, RESTART, NULL,
	    "previous cluster key, still accepted during a rollover" },
	{ "cluster_max_age", CFG_INT, OFF(cluster_max_age), "300",
	    10, 86400, RESTART, NULL,
	    "seconds a signed Redis item stays acceptable" },
	{ "node_id", CFG_STRING, OFF(node_id), NULL,
	    0, 0, RESTART, NULL,
	    "this node's name in the cluster; default hostname:port" },
	{ "control_socket", CFG_STRING, OFF(control_socket), NULL,
	    0, 0, RESTART, check_control_socket,
	    "unix socket for chatctl(1); unset: no control socket" },
	{ "metrics_listen", CFG_STRING, OFF(metrics_listen), NULL,
	    0, 0, RESTART, check_metrics_listen,
	    "host:port (or port: loopback) for /metrics and /health" },
	{ "websocket_listen", CFG_HOSTPORT, OFF(websocket_listen), NULL,
	    1, 65535, RESTART, NULL,
	    "address:port for browsers (WebSocket and the web page)" },
	{ "websocket_origins", CFG_STRING, OFF(websocket_origins), "self",
	    0, 0, RELOAD, NULL,
	    "origins allowed to open a WebSocket: self, * or URLs" },
	{ "www_root", CFG_STRING, OFF(www_root), DATADIR "/www",
	    0, 0, RELOAD, NULL,
	    "directory of the web client served on websocket_listen" },
};

#define CFG_NKEYS	(sizeof(cfg_keys) / sizeof(cfg_keys[0]))

struct cfg_parse {
	struct config	*cfg;
	struct buf	*errors;
	const char	*path;
	int		 lineno;
	int		 nerr;
	int		 line_of[CFG_NKEYS];	/* where each key was set */
};

#define FIELD(cfg, k, type)	((type *)(void *)((char *)(cfg) + (k)->off))
#define CFIELD(cfg, k, type)	\
	((const type *)(const void *)((const char *)(cfg) + (k)->off))

static void
cfg_err(struct cfg_parse *p, int line, const char *why)
{
	p->nerr++;
	if (p->errors == NULL)
		return;
	if (line > 0)
		buf_printf(p->errors, "%s:%d: %s\n", p->path, line, why);
	else
		buf_printf(p->errors, "%s: %s\n", p->path, why);
}

static const struct cfg_key *
cfg_find(const char *name)
{
	size_t	 i;

	for (i = 0; i < CFG_NKEYS; i++)
		if (strcmp(cfg_keys[i].name, name) == 0)
			return &cfg_keys[i];
	return NULL;
}

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
static int
parse_int(const char *s, long long *out)
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

static int
parse_bool(const char *s)
{
	static const char *const yes[] = { "yes", "on", "true", "1" };
	static const char *const no[] = { "no", "off", "false", "0" };
	size_t	 i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
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
static int
hostport_parse(const char *s, long long pmin, long long pmax, char **hostp,
    int *portp, const char **why)
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
	if (!isdigit((unsigned char)*port) || parse_int(port, &pn) != 0 ||
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

static int
check_storage(const char *v, char *why, size_t len)
{
	if ((strncmp(v, "sqlite:", 7) == 0 && v[7] != '\0') ||
	    (strncmp(v, "mysql://", 8) == 0 && v[8] != '\0'))
		return 0;
	snprintf(why, len, "storage must be \"sqlite:PATH\" or "
	    "\"mysql://...\", not \"%.*s\"", CFG_SHOW, v);
	return -1;
}

static int
check_shm_name(const char *v, char *why, size_t len)
{
	size_t	 n = strlen(v);

	if (v[0] == '/' && n >= 2 && n <= NAME_MAX &&
	    strchr(v + 1, '/') == NULL)
		return 0;
	snprintf(why, len, "shm_name must be \"/name\" without further '/', "
	    "at most %d bytes, not \"%.*s\"", NAME_MAX, CFG_SHOW, v);
	return -1;
}

static int
check_control_socket(const char *v, char *why, size_t len)
{
	struct sockaddr_un	 sun;

	if (v[0] == '/' && strlen(v) < sizeof(sun.sun_path))
		return 0;
	snprintf(why, len, "control_socket must be an absolute path shorter "
	    "than %zu bytes, not \"%.*s\"", sizeof(sun.sun_path), CFG_SHOW,
	    v);
	return -1;
}

/* "port" alone means the loopback address. */
/* cfg's redis fields from "redis" (NULL: none) reset first. */
static void
redis_clear(struct config *cfg)
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

	if (hostport_parse(v, 1, 65535, cfg ? &host : NULL, &port,
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

	if (hostport_parse(v, 1, 65535, cfg ? &host : NULL, &port,
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
static int
redis_parse(const char *v, struct config *cfg, char *why, size_t len)
{
	const char	*p, *slash;

	if (cfg != NULL)
		redis_clear(cfg);
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

static int
check_redis(const char *v, char *why, size_t len)
{
	return redis_parse(v, NULL, why, len);
}

static int
check_metrics_listen(const char *v, char *why, size_t len)
{
	const char	*hwhy;
	long long	 n;

	if (strspn(v, "0123456789") == strlen(v)) {
		if (parse_int(v, &n) == 0 && n >= 1 && n <= 65535)
			return 0;
		hwhy = "bad port";
	} else if (hostport_parse(v, 1, 65535, NULL, NULL, &hwhy) == 0)
		return 0;
	snprintf(why, len, "bad host:port for metrics_listen: \"%.*s\" (%s)",
	    CFG_SHOW, v, hwhy);
	return -1;
}

static int
check_nets(const char *v, char *why, size_t len)
{
	char	 pwhy[128];

	if (guard_parse_nets(v, NULL, GUARD_MAX_NETS, pwhy,
	    sizeof(pwhy)) >= 0)
		return 0;
	snprintf(why, len, "per_ip_exempt: %s", pwhy);
	return -1;
}

static int
check_proxy_nets(const char *v, char *why, size_t len)
{
	char	 pwhy[128];

	if (guard_parse_nets(v, NULL, GUARD_MAX_NETS, pwhy,
	    sizeof(pwhy)) >= 0)
		return 0;
	snprintf(why, len, "proxy_protocol_from: %s", pwhy);
	return -1;
}

static int
check_db_tls(const char *v, char *why, size_t len)
{
	if (strcmp(v, "off") == 0 || strcmp(v, "required") == 0 ||
	    strcmp(v, "verify") == 0)
		return 0;
	snprintf(why, len, "db_tls must be off, required or verify, not "
	    "\"%.*s\"", CFG_SHOW, v);
	return -1;
}

static int
check_user(const char *v, char *why, size_t len)
{
	if (getpwnam(v) != NULL)
		return 0;
	snprintf(why, len, "user: no such user \"%.*s\"", CFG_SHOW, v);
	return -1;
}

/* Whether a URL has "user:password@" in its authority. */
static int
url_has_password(const char *url)
{
	const char	*p, *end, *at = NULL, *q;

	if (url == NULL || (p = strstr(url, "://")) == NULL)
		return 0;
	p += 3;
	end = p + strcspn(p, "/");
	for (q = p; q < end; q++)
		if (*q == '@')
			at = q;
	return at != NULL && memchr(p, ':', (size_t)(at - p)) != NULL;
}

static int
set_string(char **dst, const char *v)
{
	char	*s = NULL;

	if (v != NULL && (s = strdup(v)) == NULL)
		return -1;
	free(*dst);
	*dst = s;
	return 0;
}

/* Store v into the key's field; on failure why holds the reason. */
static int
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
		if (hostport_parse(v, k->min, k->max, NULL, NULL,
		    &hwhy) == -1) {
			snprintf(why, len, "bad host:port for %s: \"%.*s\" (%s)",
			    k->name, CFG_SHOW, v, hwhy);
			return -1;
		}
		break;
	case CFG_INT:
	case CFG_SIZE:
		if (k->type == CFG_INT)
			r = parse_int(v, &n);
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
		if ((r = parse_bool(v)) == -1) {
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
	if (set_string(FIELD(cfg, k, char *), v) == -1) {
		snprintf(why, len, "out of memory");
		return -1;
	}
	return 0;
}

/* Every key to its default, nothing derived; cfg is overwritten. */
static void
cfg_set_defaults(struct config *cfg)
{
	char	 why[256];
	size_t	 i;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < CFG_NKEYS; i++) {
		if (cfg_keys[i].def == NULL)
			continue;
		if (cfg_set(cfg, &cfg_keys[i], cfg_keys[i].def, why,
		    sizeof(why)) == -1)
			fatalx("default of %s: %s", cfg_keys[i].name, why);
	}
}

/*
 * max_worker_output_bytes, or when 0 a quarter of the physical memory
 * shared by the workers, so that slow readers cannot push the machine
 * into swap; never below 16 MiB nor below one client's max_output_bytes.
 */
size_t
cfg_worker_output(const struct config *cfg)
{
	long		 pages = sysconf(_SC_PHYS_PAGES);
	long		 psize = sysconf(_SC_PAGESIZE);
	uint64_t	 v = 256 * MiB;

	if (cfg->max_worker_output_bytes > 0)
		return cfg->max_worker_output_bytes;
	if (pages > 0 && psize > 0)
		v = (uint64_t)pages * (uint64_t)psize / 4 /
		    (uint64_t)(cfg->workers > 0 ? cfg->workers : 1);
	if (v < 16 * MiB)
		v = 16 * MiB;
	if (v < cfg->max_output_bytes)
		v = cfg->max_output_bytes;
	return (size_t)v;
}

/*
 * Fill in what is computed from the keys: listen_host/port,
 * redis_host/port, workers when 0, shm_name and node_id when unset.
 */
static int
cfg_derive(struct config *cfg, char *why, size_t len)
{
	const struct cfg_key	*k;
	const char		*hwhy;
	char			 hn[256], *s;
	long			 ncpu;
	size_t			 i, n;

	k = cfg_find("listen");
	free(cfg->listen_host);
	cfg->listen_host = NULL;
	if (hostport_parse(cfg->listen, k->min, k->max, &cfg->listen_host,
	    &cfg->listen_port, &hwhy) == -1) {
		snprintf(why, len, "listen: %s", hwhy);
		return -1;
	}
	if (redis_parse(cfg->redis, cfg, why, len) == -1)
		return -1;

	k = cfg_find("websocket_listen");
	free(cfg->websocket_host);
	cfg->websocket_host = NULL;
	cfg->websocket_port = 0;
	if (cfg->websocket_listen != NULL && hostport_parse(
	    cfg->websocket_listen, k->min, k->max, &cfg->websocket_host,
	    &cfg->websocket_port, &hwhy) == -1) {
		snprintf(why, len, "websocket_listen: %s", hwhy);
		return -1;
	}
	/* SO_REUSEPORT would share one port between the two listeners */
	if (cfg->websocket_host != NULL &&
	    cfg->websocket_port == cfg->listen_port &&
	    strcmp(cfg->websocket_host, cfg->listen_host) == 0) {
		snprintf(why, len, "websocket_listen: the same address as "
		    "listen");
		return -1;
	}

	free(cfg->metrics_host);
	cfg->metrics_host = NULL;
	cfg->metrics_port = 0;
	if (cfg->metrics_listen != NULL) {
		if (strspn(cfg->metrics_listen, "0123456789") ==
		    strlen(cfg->metrics_listen)) {
			cfg->metrics_port = atoi(cfg->metrics_listen);
			if ((cfg->metrics_host = strdup("127.0.0.1")) == NULL)
				goto nomem;
		} else if (hostport_parse(cfg->metrics_listen, 1, 65535,
		    &cfg->metrics_host, &cfg->metrics_port, &hwhy) == -1) {
			snprintf(why, len, "metrics_listen: %s", hwhy);
			return -1;
		}
	}

	if (cfg->db_tls != NULL && strcmp(cfg->db_tls, "verify") == 0 &&
	    cfg->db_tls_ca == NULL) {
		snprintf(why, len, "db_tls = verify needs db_tls_ca");
		return -1;
	}
	if ((cfg->db_tls_cert == NULL) != (cfg->db_tls_key == NULL)) {
		snprintf(why, len, "db_tls_cert and db_tls_key go together");
		return -1;
	}

	if (cfg->workers == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		if (ncpu < 1)
			ncpu = 1;
		if (ncpu > CFG_WORKERS_MAX)
			ncpu = CFG_WORKERS_MAX;
		cfg->workers = (int)ncpu;
	}

	if (cfg->shm_name == NULL) {
		n = strlen(cfg->listen);
		if ((s = malloc(sizeof("/chatd-") + n)) == NULL)
			goto nomem;
		memcpy(s, "/chatd-", sizeof("/chatd-") - 1);
		for (i = 0; i < n; i++)
			s[sizeof("/chatd-") - 1 + i] =
			    isalnum((unsigned char)cfg->listen[i]) ?
			    cfg->listen[i] : '_';
		s[sizeof("/chatd-") - 1 + n] = '\0';
		if (strlen(s) > NAME_MAX)
			s[NAME_MAX] = '\0';
		cfg->shm_name = s;
	}

	if (cfg->node_id == NULL) {
		if (gethostname(hn, sizeof(hn)) == -1) {
			snprintf(why, len, "gethostname: %s", strerror(errno));
			return -1;
		}
		hn[sizeof(hn) - 1] = '\0';
		n = strlen(hn) + 16;
		if ((cfg->node_id = malloc(n)) == NULL)
			goto nomem;
		snprintf(cfg->node_id, n, "%s:%d", hn, cfg->listen_port);
	}
	return 0;

 nomem:
	snprintf(why, len, "out of memory");
	return -1;
}

/*
 * Read the secret in file (named by key) into *out, trailing newlines
 * cut.  With private set the file must be readable by its owner only:
 * a cluster key that others can read signs nothing.
 */
static int
cfg_read_secret(const char *key, const char *file, int private, char **out,
    char *why, size_t len)
{
	struct stat	 st;
	char		 tmp[CFG_SECRET_MAX + 2];
	size_t		 n = 0;
	ssize_t		 r;
	int		 fd, saved;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		goto syserr;
	if (private && (fstat(fd, &st) == -1 || (st.st_mode & 077) != 0)) {
		close(fd);
		snprintf(why, len, "%s \"%s\": readable by others (chmod 600)",
		    key, file);
		return -1;
	}
	while (n < sizeof(tmp) - 1) {
		r = read(fd, tmp + n, sizeof(tmp) - 1 - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			saved = errno;
			close(fd);
			errno = saved;
			goto syserr;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	while (n > 0 && (tmp[n - 1] == '\n' || tmp[n - 1] == '\r'))
		n--;
	tmp[n] = '\0';
	if (n > CFG_SECRET_MAX || n == 0 || strlen(tmp) != n ||
	    (private && n < CFG_KEY_MIN)) {
		snprintf(why, len, "%s \"%s\": %s", key, file,
		    n == 0 ? "empty" : n > CFG_SECRET_MAX ? "too long" :
		    strlen(tmp) != n ? "contains a NUL byte" :
		    "too short (at least 32 characters, e.g. openssl rand "
		    "-hex 32)");
		explicit_bzero(tmp, sizeof(tmp));
		return -1;
	}
	if (*out != NULL) {
		explicit_bzero(*out, strlen(*out));
		free(*out);
	}
	*out = strdup(tmp);
	explicit_bzero(tmp, sizeof(tmp));
	if (*out == NULL) {
		snprintf(why, len, "out of memory");
		return -1;
	}
	return 0;

 syserr:
	snprintf(why, len, "%s \"%s\": %s", key, file, strerror(errno));
	return -1;
}

static int	cfg_line_of(const struct cfg_parse *, const char *);

/* The token keys, read now so a bad one stops the start. -1: no memory. */
static int
cfg_read_token_keys(struct config *cfg, struct cfg_parse *p)
{
	char	 why[512];

	if (cfg->token_key_file == NULL)
		return 0;
	if ((cfg->token_key = calloc(1, sizeof(*cfg->token_key))) == NULL ||
	    (cfg->token_key_old = calloc(1,
	    sizeof(*cfg->token_key_old))) == NULL)
		return -1;
	if (token_key_load(cfg->token_key, cfg->token_key_file, why,
	    sizeof(why)) == -1)
		cfg_err(p, cfg_line_of(p, "token_key_file"), why);
	if (cfg->token_key_file_old != NULL &&
	    token_key_load(cfg->token_key_old, cfg->token_key_file_old, why,
	    sizeof(why)) == -1)
		cfg_err(p, cfg_line_of(p, "token_key_file_old"), why);
	return 0;
}

/* Cut the value at p: quoted or bare, comments and blanks removed. */
static int
cfg_value(char *p, const char **why)
{
	char	*r, *w, *end;

	if (*p == '"') {
		r = p + 1;
		w = p;
		for (;;) {
			if (*r == '\0') {
				*why = "unterminated quoted value";
				return -1;
			}
			if (*r == '"')
				break;
			if (*r == '\\') {
				r++;
				if (*r != '"' && *r != '\\') {
					*why = "bad escape in quoted value "
					    "(only \\\" and \\\\)";
					return -1;
				}
			}
			*w++ = *r++;
		}
		*w = '\0';
		r++;
		r += strspn(r, " \t");
		if (*r != '\0' && *r != '#') {
			*why = "text after the closing quote";
			return -1;
		}
		return 0;
	}

	/* '#' starts a comment at the start or after a blank. */
	for (end = p; *end != '\0'; end++)
		if (*end == '#' && (end == p || end[-1] == ' ' ||
		    end[-1] == '\t'))
			break;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	return 0;
}

static void
cfg_parse_line(struct cfg_parse *p, char *line, size_t len)
{
	const struct cfg_key	*k;
	const char		*vwhy;
	char			 why[512], *s, *key, *val;
	size_t			 klen, idx;

	if (strlen(line) != len) {
		cfg_err(p, p->lineno, "NUL byte in line");
		return;
	}
	if (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (len > CFG_LINE_MAX) {
		snprintf(why, sizeof(why), "line too long (more than %d bytes)",
		    CFG_LINE_MAX);
		cfg_err(p, p->lineno, why);
		return;
	}

	s = line + strspn(line, " \t");
	if (*s == '\0' || *s == '#')
		return;
	key = s;
	klen = strcspn(s, " \t=");
	s += klen;
	s += strspn(s, " \t");
	if (*s != '=') {
		snprintf(why, sizeof(why), "missing '=' after \"%.*s\"",
		    (int)(klen > CFG_SHOW ? CFG_SHOW : klen), key);
		cfg_err(p, p->lineno, why);
		return;
	}
	if (klen == 0) {
		cfg_err(p, p->lineno, "missing key before '='");
		return;
	}
	val = s + 1;
	key[klen] = '\0';
	if ((k = cfg_find(key)) == NULL) {
		snprintf(why, sizeof(why), "unknown key \"%.*s\"", CFG_SHOW,
		    key);
		cfg_err(p, p->lineno, why);
		return;
	}
	idx = (size_t)(k - cfg_keys);

	val += strspn(val, " \t");
	if (cfg_value(val, &vwhy) == -1) {
		snprintf(why, sizeof(why), "%s for %s", vwhy, k->name);
		cfg_err(p, p->lineno, why);
		return;
	}
	if (*val == '\0') {
		snprintf(why, sizeof(why), "empty value for %s", k->name);
		cfg_err(p, p->lineno, why);
		return;
	}
	if (p->line_of[idx] != 0) {
		snprintf(why, sizeof(why), "duplicate key %s (first set on "
		    "line %d)", k->name, p->line_of[idx]);
		cfg_err(p, p->lineno, why);
		return;
	}
	p->line_of[idx] = p->lineno;
	if (cfg_set(p->cfg, k, val, why, sizeof(why)) == -1)
		cfg_err(p, p->lineno, why);
}

static int
cfg_line_of(const struct cfg_parse *p, const char *name)
{
	return p->line_of[cfg_find(name) - cfg_keys];
}

/* Rules between keys; reported on the line that set the later key. */
static void
cfg_check_keys(struct cfg_parse *p)
{
	struct config	*cfg = p->cfg;
	char		 why[256];
	int		 l1, l2;

	if (cfg->max_message_bytes + 256 >= cfg->max_frame_bytes) {
		l1 = cfg_line_of(p, "max_message_bytes");
		l2 = cfg_line_of(p, "max_frame_bytes");
		snprintf(why, sizeof(why), "max_message_bytes (%zu) must be "
		    "less than max_frame_bytes - 256 (%zu)",
		    cfg->max_message_bytes, cfg->max_frame_bytes - 256);
		cfg_err(p, l1 > l2 ? l1 : l2, why);
	}
	if (cfg->db_pool_init > cfg->db_pool_max) {
		l1 = cfg_line_of(p, "db_pool_init");
		l2 = cfg_line_of(p, "db_pool_max");
		snprintf(why, sizeof(why), "db_pool_init (%d) must not exceed "
		    "db_pool_max (%d)", cfg->db_pool_init, cfg->db_pool_max);
		cfg_err(p, l1 > l2 ? l1 : l2, why);
	}
}

void
cfg_defaults(struct config *cfg)
{
	char	 why[256];

	cfg_set_defaults(cfg);
	if (cfg_derive(cfg, why, sizeof(why)) == -1)
		fatalx("configuration defaults: %s", why);
}

int
cfg_load(struct config *cfg, const char *path, struct buf *errors)
{
	struct cfg_parse	 p;
	struct stat		 st;
	FILE			*fp;
	char			*line = NULL, why[512];
	size_t			 cap = 0;
	ssize_t			 n;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.errors = errors;
	p.path = path;

	cfg_set_defaults(cfg);
	if ((cfg->path = strdup(path)) == NULL) {
		cfg_err(&p, 0, strerror(errno));
		return -1;
	}
	if ((fp = fopen(path, "re")) == NULL) {
		cfg_err(&p, 0, strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) == -1) {
		cfg_err(&p, 0, strerror(errno));
		fclose(fp);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		cfg_err(&p, 0, strerror(EISDIR));
		fclose(fp);
		return -1;
	}
	errno = 0;
	while ((n = getline(&line, &cap, fp)) != -1) {
		p.lineno++;
		cfg_parse_line(&p, line, (size_t)n);
	}
	if (ferror(fp))
		cfg_err(&p, 0, strerror(errno ? errno : EIO));
	free(line);
	fclose(fp);

	cfg_check_keys(&p);
	if ((url_has_password(cfg->storage) || cfg->redis_password != NULL) &&
	    (st.st_mode & 077) != 0)
		cfg_err(&p, 0, "contains a password but is readable by others "
		    "(chmod 600)");
	if (cfg->db_password_file != NULL &&
	    cfg_read_secret("db_password_file", cfg->db_password_file, 0,
	    &cfg->db_password, why, sizeof(why)) == -1)
		cfg_err(&p, cfg_line_of(&p, "db_password_file"), why);
	if (cfg->cluster_key_file != NULL &&
	    cfg_read_secret("cluster_key_file", cfg->cluster_key_file, 1,
	    &cfg->cluster_key, why, sizeof(why)) == -1)
		cfg_err(&p, cfg_line_of(&p, "cluster_key_file"), why);
	if (cfg->cluster_key_file_old != NULL &&
	    cfg_read_secret("cluster_key_file_old",
	    cfg->cluster_key_file_old, 1, &cfg->cluster_key_old, why,
	    sizeof(why)) == -1)
		cfg_err(&p, cfg_line_of(&p, "cluster_key_file_old"), why);
	/* the bus is trusted only with a key: no unsigned cluster mode */
	if (cfg->redis != NULL && cfg->cluster_key_file == NULL)
		cfg_err(&p, cfg_line_of(&p, "redis"), "cluster mode (redis) "
		    "needs cluster_key_file: every node signs what it puts "
		    "on Redis");
	if (cfg_read_token_keys(cfg, &p) == -1)
		cfg_err(&p, 0, "out of memory");

	if (p.nerr == 0 && cfg_derive(cfg, why, sizeof(why)) == -1)
		cfg_err(&p, 0, why);
	return p.nerr == 0 ? 0 : -1;
}

static void
free_secret(char **s)
{
	if (*s != NULL)
		explicit_bzero(*s, strlen(*s));
	free(*s);
	*s = NULL;
}

void
cfg_free(struct config *cfg)
{
	size_t	 i;

	if (cfg == NULL)
		return;
	for (i = 0; i < CFG_NKEYS; i++)
		if (cfg_keys[i].type == CFG_STRING ||
		    cfg_keys[i].type == CFG_HOSTPORT)
			free_secret(FIELD(cfg, &cfg_keys[i], char *));
	free(cfg->path);
	free(cfg->listen_host);
	redis_clear(cfg);
	free(cfg->metrics_host);
	free(cfg->websocket_host);
	free_secret(&cfg->db_password);
	free_secret(&cfg->cluster_key);
	free_secret(&cfg->cluster_key_old);
	if (cfg->token_key != NULL)
		token_key_clear(cfg->token_key);
	if (cfg->token_key_old != NULL)
		token_key_clear(cfg->token_key_old);
	free(cfg->token_key);
	free(cfg->token_key_old);
	memset(cfg, 0, sizeof(*cfg));
}

static int
cfg_equal(const struct cfg_key *k, const struct config *a,
    const struct config *b)
{
	const char	*sa, *sb;

	switch (k->type) {
	case CFG_STRING:
	case CFG_HOSTPORT:
		sa = *CFIELD(a, k, char *);
		sb = *CFIELD(b, k, char *);
		if (sa == NULL || sb == NULL)
			return sa == sb;
		return strcmp(sa, sb) == 0;
	case CFG_SIZE:
		return *CFIELD(a, k, size_t) == *CFIELD(b, k, size_t);
	case CFG_INT:
	case CFG_BOOL:
	case CFG_LOGLEVEL:
		break;
	}
	return *CFIELD(a, k, int) == *CFIELD(b, k, int);
}

static int
cfg_copy(const struct cfg_key *k, struct config *dst,
    const struct config *src)
{
	switch (k->type) {
	case CFG_STRING:
	case CFG_HOSTPORT:
		return set_string(FIELD(dst, k, char *), *CFIELD(src, k, char *));
	case CFG_SIZE:
		*FIELD(dst, k, size_t) = *CFIELD(src, k, size_t);
		return 0;
	case CFG_INT:
	case CFG_BOOL:
	case CFG_LOGLEVEL:
		break;
	}
	*FIELD(dst, k, int) = *CFIELD(src, k, int);
	return 0;
}

int
cfg_apply_reload(struct config *cur, const struct config *next)
{
	const struct cfg_key	*k;
	size_t			 i;
	int			 applied = 0;

	for (i = 0; i < CFG_NKEYS; i++) {
		k = &cfg_keys[i];
		if (cfg_equal(k, cur, next))
			continue;
		if (!k->reload) {
			log_notice("%s changed: restart needed", k->name);
			continue;
		}
		if (cfg_copy(k, cur, next) == -1) {
			log_warn("reload of %s", k->name);
			continue;
		}
		applied++;
	}
	return applied;
}

/*
 * The reloadable keys as one message, master to workers: each in table
 * order, an int as int32, a size as uint64, a string as its uint32
 * length (UINT32_MAX: unset) and bytes.  Both ends are the same binary.
 */
/* The next key SIGHUP may change, from *i on; NULL after the last. */
static const struct cfg_key *
reload_key(size_t *i)
{
	while (*i < CFG_NKEYS)
		if (cfg_keys[(*i)++].reload)
			return &cfg_keys[*i - 1];
	return NULL;
}

int
cfg_pack_reload(const struct config *cfg, struct buf *out)
{
	const struct cfg_key	*k;
	const char		*sv;
	uint64_t		 z;
	uint32_t		 l;
	int32_t			 v;
	size_t			 i;
	int			 rc = 0;

	for (i = 0; rc == 0 && (k = reload_key(&i)) != NULL;) {
		switch (k->type) {
		case CFG_STRING:
		case CFG_HOSTPORT:
			sv = *CFIELD(cfg, k, char *);
			l = sv != NULL ? (uint32_t)strlen(sv) : UINT32_MAX;
			rc = buf_append(out, &l, sizeof(l));
			if (rc == 0 && sv != NULL)
				rc = buf_append(out, sv, l);
			break;
		case CFG_SIZE:
			z = *CFIELD(cfg, k, size_t);
			rc = buf_append(out, &z, sizeof(z));
			break;
		default:
			v = *CFIELD(cfg, k, int);
			rc = buf_append(out, &v, sizeof(v));
			break;
		}
	}
	return rc == 0 ? 0 : -1;
}

int
cfg_unpack_reload(struct config *cur, const void *msg, size_t len)
{
	const struct cfg_key	*k;
	const char		*p = msg;
	struct config		 next;
	uint64_t		 z;
	uint32_t		 l;
	int32_t			 v;
	size_t			 i, off = 0;
	int			 applied = 0;

	memset(&next, 0, sizeof(next));
	for (i = 0; (k = reload_key(&i)) != NULL;) {
		switch (k->type) {
		case CFG_STRING:
		case CFG_HOSTPORT:
			if (len - off < sizeof(l))
				goto bad;
			memcpy(&l, p + off, sizeof(l));
			off += sizeof(l);
			if (l == UINT32_MAX)
				break;
			/* not strndup: the bytes are not NUL-terminated */
			if (len - off < l || (*FIELD(&next, k, char *) =
			    malloc((size_t)l + 1)) == NULL)
				goto bad;
			memcpy(*FIELD(&next, k, char *), p + off, l);
			(*FIELD(&next, k, char *))[l] = '\0';
			off += l;
			break;
		case CFG_SIZE:
			if (len - off < sizeof(z))
				goto bad;
			memcpy(&z, p + off, sizeof(z));
			off += sizeof(z);
			*FIELD(&next, k, size_t) = (size_t)z;
			break;
		default:
			if (len - off < sizeof(v))
				goto bad;
			memcpy(&v, p + off, sizeof(v));
			off += sizeof(v);
			*FIELD(&next, k, int) = v;
			break;
		}
	}
	if (off != len)
		goto bad;
	for (i = 0; i < CFG_NKEYS; i++) {
		k = &cfg_keys[i];
		if (k->reload && !cfg_equal(k, cur, &next) &&
		    cfg_copy(k, cur, &next) == 0)
			applied++;
	}
	cfg_free(&next);
	return applied;
 bad:
	cfg_free(&next);
	return -1;
}
