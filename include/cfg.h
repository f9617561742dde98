/* cfg.h - the configuration file: one "key = value" per line, # comments. */
#ifndef CHATD_CFG_H
#define CHATD_CFG_H

#include <stddef.h>
#include "buf.h"

struct token_key;

/*
 * Every key has one row in the table in config.c (name, type, default,
 * bounds, whether SIGHUP may change it).  Strings are owned by the
 * struct and released by cfg_free().
 */
struct config {
	char	*path;			/* file it was read from */
	char	*listen;		/* "host:port" as written */
	char	*listen_host;		/* parsed from listen */
	int	 listen_port;
	int	 workers;		/* 0 in the file means: number of CPUs */
	char	*storage;		/* "sqlite:PATH" or "mysql://..." */
	char	*pid_file;
	char	*log_file;		/* path, "syslog" or "stderr" */
	int	 log_level;		/* LOG_* */
	char	*shm_name;		/* derived from listen when not set */
	int	 max_connections;	/* per node */
	int	 max_online;		/* session table capacity */
	size_t	 max_frame_bytes;
	size_t	 max_name_bytes;
	size_t	 max_message_bytes;
	size_t	 max_groupdesc_bytes;
	size_t	 max_password_bytes;
	int	 password_cost;		/* yescrypt cost, 1..11 */
	char	*token_key_file;	/* resume tokens; unset: none issued */
	char	*token_key_file_old;	/* accepted during a rotation */
	int	 token_lifetime;	/* seconds */
	int	 auth_queue_max;	/* queued hashes per worker, then "busy" */
	struct token_key *token_key;	/* read from the files; NULL: none */
	struct token_key *token_key_old;
	size_t	 channel_queue_bytes;	/* per destination worker */
	size_t	 max_output_bytes;	/* per connection, then disconnect */
	size_t	 max_worker_output_bytes;	/* all of a worker's clients */
	size_t	 tcp_send_buffer_bytes;	/* SO_SNDBUF; 0: autotuned */
	int	 idle_timeout;		/* seconds without input, 0: never */
	int	 tcp_keepalive_idle;	/* seconds before probing; 0: off */
	int	 tcp_keepalive_interval;	/* seconds between probes */
	int	 tcp_keepalive_count;	/* unanswered probes before closing */
	int	 login_timeout;		/* seconds to log in after connecting */
	size_t	 max_offline_per_login;	/* offline messages in one login reply */

	/* abuse limits and privileges (guard.c, conn.c, chat.c, worker.c) */
	int	 max_connections_per_ip;	/* node-wide; 0: no limit */
	char	*per_ip_exempt;		/* CIDRs exempt from per-address limits */
	int	 rate_limit_rps;	/* requests per second per connection; 0: off */
	int	 rate_limit_burst;
	int	 login_fail_max;	/* failed logins in login_fail_window; 0: off */
	int	 login_fail_window;	/* seconds */
	int	 login_block;		/* seconds of the first block; doubles */
	int	 login_fail_per_user_max;	/* from any address; 0: off */
	int	 login_fail_per_ip_max;	/* for any users; 0: off */
	int	 register_rate_per_ip;	/* registrations a minute; 0: off */
	int	 register_burst_per_ip;
	char	*proxy_protocol_from;	/* CIDRs that send PROXY headers */
	int	 proxy_protocol_timeout;	/* seconds for the header */
	int	 max_friends;		/* per user; 0: no limit */
	int	 max_groups_per_user;
	int	 max_group_members;
	int	 history_days;		/* chats kept this long; 0: none */
	char	*history_spool;		/* backlog file prefix; NULL: derived */
	size_t	 history_spool_max;	/* bytes per worker's backlog */
	int	 history_defer;		/* seconds a busy loop defers it */
	char	*user;			/* workers run as this user */
	int	 allow_root;		/* workers may run as root */
	int	 whoami_anonymous;	/* WHOAMI answered before login */

	/* storage tuning (struct store_opts) */
	int	 db_pool_init;
	int	 db_pool_max;
	int	 db_pool_idle;		/* seconds */
	int	 db_connect_timeout_ms;
	int	 db_query_timeout_ms;
	char	*db_password_file;	/* password kept out of the URL */
	char	*db_password;		/* read from db_password_file */
	char	*db_tls;		/* off, required, verify */
	char	*db_tls_ca;
	char	*db_tls_cert;
	char	*db_tls_key;
	int	 sqlite_busy_timeout_ms;

	/* cluster */
	char	*redis;			/* "host:port" or "sentinel://..." */
	char	*redis_host;		/* host:port form */
	int	 redis_port;
	int	 redis_n;		/* instances of the bus */
	char	**redis_hosts;		/* host:port form: each instance */
	int	*redis_ports;
	char	**redis_masters;	/* sentinel form: each primary's name */
	char	*redis_master;		/* sentinel form: the primary's name */
	char	**redis_sentinel_host;	/* and its Sentinels */
	int	*redis_sentinel_port;
	int	 redis_nsentinels;
	char	*redis_password;
	char	*cluster_key_file;	/* mode 600: the key signing bus items */
	char	*cluster_key_file_old;	/* accepted too, during a rollover */
	char	*cluster_key;		/* read from cluster_key_file */
	char	*cluster_key_old;
	int	 cluster_max_age;	/* seconds an item stays acceptable */
	int	 cluster_item_version;	/* newest bus item format written */
	char	*node_id;		/* default: hostname:port */

	/* operations (served by the master) */
	char	*control_socket;	/* unix socket for chatctl; unset: off */
	char	*metrics_listen;	/* "host:port" or "port"; unset: off */
	char	*metrics_host;		/* parsed; "127.0.0.1" for a bare port */
	int	 metrics_port;

	/* browsers (ws.c) */
	char	*websocket_listen;	/* "host:port"; unset: no WebSocket */
	char	*websocket_host;	/* parsed */
	int	 websocket_port;
	char	*websocket_origins;	/* "self", "*" or origins */
	char	*www_root;		/* static files served on GET */
};

/*
 * Set every key to its default, then read path.  Each problem is
 * appended to errors as "FILE:LINE: reason\n"; returns 0 when there
 * were none, -1 otherwise (cfg then holds what could be read and must
 * still be passed to cfg_free).  Derived fields (listen_host, workers
 * when 0, shm_name) are filled in on success.
 */
int	cfg_load(struct config *cfg, const char *path, struct buf *errors);
/* Defaults only, no file (tests, tools). */
void	cfg_defaults(struct config *cfg);
void	cfg_free(struct config *cfg);
/* max_worker_output_bytes, or the default derived from the machine. */
size_t	cfg_worker_output(const struct config *cfg);
/*
 * Copy into cur the keys of next that may change at runtime; log each
 * key that changed but needs a restart.  Returns the number applied.
 */
int	cfg_apply_reload(struct config *cur, const struct config *next);
/*
 * The master parses the file once and ships the result: the keys that
 * may change at runtime, appended to out as one message (0 or -1, out
 * of memory).  A worker applies such a message to its configuration:
 * the number of keys changed, or -1 when the message is malformed.
 */
int	cfg_pack_reload(const struct config *cfg, struct buf *out);
int	cfg_unpack_reload(struct config *cur, const void *msg, size_t len);

#endif
