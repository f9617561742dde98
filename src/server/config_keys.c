/*
 * config_keys.c - the configuration table and the checks of its values.
 *
 * Every key is one row of cfg_keys[]: its type, where it lives in
 * struct config, its default (text, parsed by the same code as the
 * file), its bounds and whether SIGHUP may change it.  Adding a key
 * means adding a field to struct config and a row here.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/un.h>

#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "cfg.h"
#include "config_impl.h"
#include "guard.h"

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR	"/var"
#endif

#ifndef DATADIR
#define DATADIR		"/usr/local/share/chatd"
#endif

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
#define RELOAD		1
#define RESTART		0

const struct cfg_key cfg_keys[] = {
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
	{ "history_days", CFG_INT, OFF(history_days), "30",
	    0, 36500, RELOAD, NULL,
	    "days a conversation's messages are kept; 0: none" },
	{ "history_spool", CFG_STRING, OFF(history_spool), NULL,
	    0, 0, RESTART, NULL,
	    "file prefix of each worker's history backlog (.N added); "
	    "none: in memory; unset: the SQLite file's name + -spool, else "
	    LOCALSTATEDIR "/lib/chatd/history-spool" },
	{ "history_spool_max", CFG_SIZE, OFF(history_spool_max), "1g",
	    1 * MiB, 1024 * GiB, RESTART, NULL,
	    "history backlog bytes per worker before senders wait" },
	{ "history_defer", CFG_INT, OFF(history_defer), "30",
	    0, 3600, RELOAD, NULL,
	    "seconds a busy worker leaves its spooled history unstored "
	    "(reads wait for it); 0: stored whenever a CPU is idle" },
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
	{ "cluster_item_version", CFG_INT, OFF(cluster_item_version), "2",
	    1, 3, RESTART, NULL,
	    "newest Redis item format written (3 once every node reads it)" },
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

const size_t cfg_nkeys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);
_Static_assert(sizeof(cfg_keys) / sizeof(cfg_keys[0]) <= CFG_KEYS_MAX,
    "raise CFG_KEYS_MAX in config_impl.h");

const struct cfg_key *
cfg_find(const char *name)
{
	size_t	 i;

	for (i = 0; i < cfg_nkeys; i++)
		if (strcmp(cfg_keys[i].name, name) == 0)
			return &cfg_keys[i];
	return NULL;
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

static int
check_redis(const char *v, char *why, size_t len)
{
	return cfg_redis_parse(v, NULL, why, len);
}

static int
check_metrics_listen(const char *v, char *why, size_t len)
{
	const char	*hwhy;
	long long	 n;

	if (strspn(v, "0123456789") == strlen(v)) {
		if (cfg_parse_int(v, &n) == 0 && n >= 1 && n <= 65535)
			return 0;
		hwhy = "bad port";
	} else if (cfg_hostport_parse(v, 1, 65535, NULL, NULL, &hwhy) == 0)
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

