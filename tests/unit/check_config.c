/* check_config.c - the configuration parser and its reload rules. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/stat.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "log.h"
#include "check_run.h"
#include "check_tmp.h"

#define KEY64	"0123456789abcdef0123456789abcdef" \
		"0123456789abcdef0123456789abcdef"

static const char *
write_file(const char *name, mode_t mode, const char *text)
{
	const char	*path = tmp_path(name);
	FILE		*fp;

	fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fputs(text, fp) >= 0, 1);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
	return path;
}

/* The error buffer as a C string (the buffer is not NUL-terminated). */
static const char *
errstr(struct buf *b)
{
	ck_assert_int_eq(buf_append(b, "", 1), 0);
	b->len--;
	return buf_head(b);
}

static int
load_text(const char *text, mode_t mode, struct config *cfg, struct buf *errs,
    const char **pathp)
{
	const char	*path = write_file("chatd.conf", mode, text);

	if (pathp != NULL)
		*pathp = path;
	return cfg_load(cfg, path, errs);
}

static int
ncpus(void)
{
	long	 n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

START_TEST(test_defaults)
{
	struct config	 cfg, zero;
	char		 hn[256], node[300];

	cfg_defaults(&cfg);
	ck_assert_ptr_null(cfg.path);
	ck_assert_str_eq(cfg.listen, "127.0.0.1:6000");
	ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
	ck_assert_int_eq(cfg.listen_port, 6000);
	ck_assert_int_eq(cfg.workers, ncpus());
	ck_assert_int_eq(strncmp(cfg.storage, "sqlite:", 7), 0);
	ck_assert_ptr_nonnull(strstr(cfg.storage, "/lib/chatd/chatd.db"));
	ck_assert_str_eq(cfg.pid_file, "/run/chatd/chatd.pid");
	ck_assert_str_eq(cfg.log_file, "stderr");
	ck_assert_int_eq(cfg.log_level, LOG_INFO);
	ck_assert_str_eq(cfg.shm_name, "/chatd-127_0_0_1_6000");
	ck_assert_int_eq(cfg.max_connections, 10000);
	ck_assert_int_eq(cfg.max_online, 262144);
	ck_assert_uint_eq(cfg.max_frame_bytes, 65536);
	ck_assert_uint_eq(cfg.max_name_bytes, 64);
	ck_assert_uint_eq(cfg.max_message_bytes, 32768);
	ck_assert_uint_eq(cfg.max_groupdesc_bytes, 1024);
	ck_assert_uint_eq(cfg.max_password_bytes, 256);
	ck_assert_int_eq(cfg.password_cost, 5);
	ck_assert_uint_eq(cfg.channel_queue_bytes, 16 << 20);
	ck_assert_uint_eq(cfg.max_output_bytes, 4 << 20);
	ck_assert_int_eq(cfg.idle_timeout, 0);
	ck_assert_int_eq(cfg.login_timeout, 900);
	ck_assert_int_eq(cfg.tcp_keepalive_idle, 120);
	ck_assert_int_eq(cfg.tcp_keepalive_interval, 30);
	ck_assert_int_eq(cfg.tcp_keepalive_count, 4);
	ck_assert_int_eq(cfg.max_connections_per_ip, 1024);
	ck_assert_int_eq(cfg.login_fail_max, 5);
	ck_assert_int_eq(cfg.login_fail_per_user_max, 50);
	ck_assert_int_eq(cfg.login_fail_per_ip_max, 100);
	ck_assert_int_eq(cfg.register_rate_per_ip, 30);
	ck_assert_int_eq(cfg.register_burst_per_ip, 100);
	ck_assert_ptr_null(cfg.proxy_protocol_from);
	ck_assert_int_eq(cfg.proxy_protocol_timeout, 5);
	ck_assert_uint_eq(cfg.max_offline_per_login, 1000);
	ck_assert_int_eq(cfg.db_pool_init, 1);
	ck_assert_int_eq(cfg.db_pool_max, 4);
	ck_assert_int_eq(cfg.db_pool_idle, 60);
	ck_assert_int_eq(cfg.db_connect_timeout_ms, 2000);
	ck_assert_int_eq(cfg.db_query_timeout_ms, 5000);
	ck_assert_ptr_null(cfg.db_password_file);
	ck_assert_ptr_null(cfg.db_password);
	ck_assert_int_eq(cfg.sqlite_busy_timeout_ms, 5000);
	ck_assert_ptr_null(cfg.redis);
	ck_assert_ptr_null(cfg.redis_host);
	ck_assert_int_eq(cfg.redis_port, 0);
	ck_assert_ptr_null(cfg.redis_password);
	ck_assert_int_eq(gethostname(hn, sizeof(hn)), 0);
	hn[sizeof(hn) - 1] = '\0';
	snprintf(node, sizeof(node), "%s:6000", hn);
	ck_assert_str_eq(cfg.node_id, node);

	cfg_free(&cfg);
	memset(&zero, 0, sizeof(zero));
	ck_assert_int_eq(memcmp(&cfg, &zero, sizeof(cfg)), 0);
	cfg_free(&cfg);		/* twice is harmless */
	cfg_free(NULL);
}
END_TEST

START_TEST(test_full_file)
{
	struct config	 cfg;
	struct buf	 errs = BUF_INIT;
	const char	*pwf, *kf, *path;
	char		 text[4096];

	pwf = write_file("dbpass", 0600, "s3cret pass\n");
	kf = write_file("ckey", 0600, KEY64 "\n");
	snprintf(text, sizeof(text),
	    "# every key\n"
	    "\n"
	    "listen = [::1]:7000\n"
	    "  workers\t=\t3   # trailing comment\n"
	    "storage = \"mysql://chat@db.example.org:3306/chat\"\n"
	    "pid_file = /tmp/chatd-test.pid\n"
	    "log_file = syslog\n"
	    "log_level = debug\r\n"
	    "shm_name = /chatd-test\n"
	    "max_connections = 500\n"
	    "max_online = 1000\n"
	    "max_frame_bytes = 128k\n"
	    "max_name_bytes = 32\n"
	    "max_message_bytes = 100000\n"
	    "max_groupdesc_bytes = 2k\n"
	    "max_password_bytes = 128\n"
	    "password_cost = 7\n"
	    "channel_queue_bytes = 32M\n"
	    "max_output_bytes = 1m\n"
	    "idle_timeout = 0\n"
	    "login_timeout = 10\n"
	    "max_offline_per_login = 50\n"
	    "db_pool_init = 2\n"
	    "db_pool_max = 8\n"
	    "db_pool_idle = 120\n"
	    "db_connect_timeout_ms = 1500\n"
	    "db_query_timeout_ms = 2500\n"
	    "db_password_file = %s\n"
	    "sqlite_busy_timeout_ms = 100\n"
	    "redis = redis.example.org:6380\n"
	    "cluster_key_file = %s\n"
	    "node_id = node-a\n"
	    "# end\n", pwf, kf);
	/* 0644: db_password_file is not a password in the file. */
	ck_assert_int_eq(load_text(text, 0644, &cfg, &errs, &path), 0);
	ck_assert_uint_eq(buf_used(&errs), 0);
	ck_assert_str_eq(cfg.path, path);
	ck_assert_str_eq(cfg.listen, "[::1]:7000");
	ck_assert_str_eq(cfg.listen_host, "::1");
	ck_assert_int_eq(cfg.listen_port, 7000);
	ck_assert_int_eq(cfg.workers, 3);
	ck_assert_str_eq(cfg.storage, "mysql://chat@db.example.org:3306/chat");
	ck_assert_str_eq(cfg.pid_file, "/tmp/chatd-test.pid");
	ck_assert_str_eq(cfg.log_file, "syslog");
	ck_assert_int_eq(cfg.log_level, LOG_DEBUG);
	ck_assert_str_eq(cfg.shm_name, "/chatd-test");
	ck_assert_int_eq(cfg.max_connections, 500);
	ck_assert_int_eq(cfg.max_online, 1000);
	ck_assert_uint_eq(cfg.max_frame_bytes, 131072);
	ck_assert_uint_eq(cfg.max_name_bytes, 32);
	ck_assert_uint_eq(cfg.max_message_bytes, 100000);
	ck_assert_uint_eq(cfg.max_groupdesc_bytes, 2048);
	ck_assert_uint_eq(cfg.max_password_bytes, 128);
	ck_assert_int_eq(cfg.password_cost, 7);
	ck_assert_uint_eq(cfg.channel_queue_bytes, 32 << 20);
	ck_assert_uint_eq(cfg.max_output_bytes, 1 << 20);
	ck_assert_int_eq(cfg.idle_timeout, 0);
	ck_assert_int_eq(cfg.login_timeout, 10);
	ck_assert_uint_eq(cfg.max_offline_per_login, 50);
	ck_assert_int_eq(cfg.db_pool_init, 2);
	ck_assert_int_eq(cfg.db_pool_max, 8);
	ck_assert_int_eq(cfg.db_pool_idle, 120);
	ck_assert_int_eq(cfg.db_connect_timeout_ms, 1500);
	ck_assert_int_eq(cfg.db_query_timeout_ms, 2500);
	ck_assert_str_eq(cfg.db_password_file, pwf);
	ck_assert_str_eq(cfg.db_password, "s3cret pass");
	ck_assert_int_eq(cfg.sqlite_busy_timeout_ms, 100);
	ck_assert_str_eq(cfg.redis, "redis.example.org:6380");
	ck_assert_str_eq(cfg.redis_host, "redis.example.org");
	ck_assert_int_eq(cfg.redis_port, 6380);
	ck_assert_ptr_null(cfg.redis_password);
	ck_assert_str_eq(cfg.node_id, "node-a");
	cfg_free(&cfg);
	buf_free(&errs);
}
END_TEST

/* One bad file, one error, the exact text after "FILE:". */
static const struct {
	const char	*text;
	const char	*error;
} bad[] = {
	{ "# c\nbogus = 1\n", "2: unknown key \"bogus\"\n" },
	{ "workers 4\n", "1: missing '=' after \"workers\"\n" },
	{ "= 4\n", "1: missing key before '='\n" },
	{ "workers =   # nothing\n", "1: empty value for workers\n" },
	{ "node_id = \"\"\n", "1: empty value for node_id\n" },
	{ "workers = four\n", "1: bad number for workers: \"four\"\n" },
	{ "workers = 4x\n", "1: bad number for workers: \"4x\"\n" },
	{ "workers = 65\n",
	    "1: workers out of range: 65 (must be 0 to 64)\n" },
	{ "workers = -1\n",
	    "1: workers out of range: -1 (must be 0 to 64)\n" },
	{ "password_cost = 99999999999999999999999\n",
	    "1: password_cost out of range: 99999999999999999999999 "
	    "(must be 1 to 11)\n" },
	{ "max_frame_bytes = 512\n",
	    "1: max_frame_bytes out of range: 512 (must be 1k to 16m)\n" },
	{ "max_frame_bytes = 17m\n",
	    "1: max_frame_bytes out of range: 17m (must be 1k to 16m)\n" },
	{ "max_frame_bytes = 99999999999999999999g\n",
	    "1: max_frame_bytes out of range: 99999999999999999999g "
	    "(must be 1k to 16m)\n" },
	{ "max_frame_bytes = 1.5k\n",
	    "1: bad number for max_frame_bytes: \"1.5k\"\n" },
	{ "max_frame_bytes = 2kb\n",
	    "1: bad number for max_frame_bytes: \"2kb\"\n" },
	{ "max_frame_bytes = -2k\n",
	    "1: bad number for max_frame_bytes: \"-2k\"\n" },
	{ "workers = 2\n\nworkers = 3\n",
	    "3: duplicate key workers (first set on line 1)\n" },
	{ "listen = localhost\n",
	    "1: bad host:port for listen: \"localhost\" (missing port)\n" },
	{ "listen = localhost:\n",
	    "1: bad host:port for listen: \"localhost:\" (missing port)\n" },
	{ "listen = :6000\n",
	    "1: bad host:port for listen: \":6000\" (missing host)\n" },
	{ "listen = ::1:6000\n", "1: bad host:port for listen: \"::1:6000\" "
	    "(IPv6 address needs [brackets])\n" },
	{ "listen = 127.0.0.1:70000\n",
	    "1: bad host:port for listen: \"127.0.0.1:70000\" (bad port)\n" },
	{ "listen = 127.0.0.1:0\n",
	    "1: bad host:port for listen: \"127.0.0.1:0\" (bad port)\n" },
	{ "listen = 300.1.1.1:6000\n", "1: bad host:port for listen: "
	    "\"300.1.1.1:6000\" (bad IPv4 address)\n" },
	{ "listen = bad_-.host!:6000\n", "1: bad host:port for listen: "
	    "\"bad_-.host!:6000\" (bad host name)\n" },
	{ "websocket_listen = 8080\n", "1: bad host:port for "
	    "websocket_listen: \"8080\" (missing port)\n" },
	{ "listen = 127.0.0.1:6000\nwebsocket_listen = 127.0.0.1:6000\n",
	    " websocket_listen: the same address as listen\n" },
	{ "redis = [::1:6379\n",
	    "1: bad host:port for redis: \"[::1:6379\" (missing ']')\n" },
	{ "redis = [fe80::zz]:6379\n", "1: bad host:port for redis: "
	    "\"[fe80::zz]:6379\" (bad IPv6 address)\n" },
	{ "redis = sentinel://127.0.0.1:26379\n", "1: redis: "
	    "\"sentinel://127.0.0.1:26379\": want sentinel://host:port"
	    "[,host:port...]/name[,name...]\n" },
	{ "redis = sentinel://127.0.0.1:26379,nope/m\n", "1: redis: "
	    "sentinel \"nope\": missing port\n" },
	{ "log_level = loud\n", "1: bad log level for log_level: \"loud\" "
	    "(debug, info, notice, warning, error, crit, alert or emerg)\n" },
	{ "storage = postgres://db/chat\n", "1: storage must be "
	    "\"sqlite:PATH\" or \"mysql://...\", not \"postgres://db/chat\"\n" },
	{ "shm_name = chatd\n", "1: shm_name must be \"/name\" without "
	    "further '/', at most 255 bytes, not \"chatd\"\n" },
	{ "node_id = \"abc\n", "1: unterminated quoted value for node_id\n" },
	{ "node_id = \"a\" b\n", "1: text after the closing quote for node_id\n" },
	{ "node_id = \"a\\n\"\n", "1: bad escape in quoted value "
	    "(only \\\" and \\\\) for node_id\n" },
	{ "max_message_bytes = 64k\n", "1: max_message_bytes (65536) must "
	    "be less than max_frame_bytes - 256 (65280)\n" },
	{ "max_message_bytes = 1k\nmax_frame_bytes = 1k\n",
	    "2: max_message_bytes (1024) must be less than "
	    "max_frame_bytes - 256 (768)\n" },
	{ "db_pool_init = 8\ndb_pool_max = 2\n",
	    "2: db_pool_init (8) must not exceed db_pool_max (2)\n" },
	{ "\n\ndb_password_file = /nonexistent/chatd.pw\n",
	    "3: db_password_file \"/nonexistent/chatd.pw\": "
	    "No such file or directory\n" },
};

START_TEST(test_each_error)
{
	struct config	 cfg;
	struct buf	 errs = BUF_INIT;
	const char	*path;
	char		 want[1024];

	ck_assert_int_eq(load_text(bad[_i].text, 0600, &cfg, &errs, &path),
	    -1);
	snprintf(want, sizeof(want), "%s:%s", path, bad[_i].error);
	ck_assert_str_eq(errstr(&errs), want);
	cfg_free(&cfg);
	buf_free(&errs);
}
END_TEST

START_TEST(test_many_errors)
{
	struct config	 cfg;
	struct buf	 errs = BUF_INIT;
	const char	*path, *e;
	char		 want[4096];

	ck_assert_int_eq(load_text(
	    "workers = 2\n"
	    "bogus = 1\n"
	    "max_connections = 500\n"
	    "workers = 3\n"
	    "listen 1.2.3.4:5\n"
	    "idle_timeout = soon\n"
	    "log_level =\n"
	    "password_cost = 12\n",
	    0600, &cfg, &errs, &path), -1);
	e = errstr(&errs);
	ck_assert_int_eq(text_nlines(e), 6);
	snprintf(want, sizeof(want),
	    "%1$s:2: unknown key \"bogus\"\n"
	    "%1$s:4: duplicate key workers (first set on line 1)\n"
	    "%1$s:5: missing '=' after \"listen\"\n"
	    "%1$s:6: bad number for idle_timeout: \"soon\"\n"
	    "%1$s:7: empty value for log_level\n"
	    "%1$s:8: password_cost out of range: 12 (must be 1 to 11)\n",
	    path);
	ck_assert_str_eq(e, want);
	/* What could be read was kept. */
	ck_assert_int_eq(cfg.workers, 2);
	ck_assert_int_eq(cfg.max_connections, 500);
	cfg_free(&cfg);
	buf_free(&errs);
}
END_TEST

START_TEST(test_unreadable)
{
	struct config	 cfg;
	struct buf	 errs = BUF_INIT;
	char		 want[PATH_MAX + 64];
	const char	*path = tmp_path("missing.conf");

	ck_assert_int_eq(cfg_load(&cfg, path, &errs), -1);
	snprintf(want, sizeof(want), "%s: No such file or directory\n", path);
	ck_assert_str_eq(errstr(&errs), want);
	ck_assert_str_eq(cfg.listen, "127.0.0.1:6000");	/* defaults */
	cfg_free(&cfg);
	buf_free(&errs);

	ck_assert_int_eq(cfg_load(&cfg, tmp_dir(), &errs), -1);
	snprintf(want, sizeof(want), "%s: Is a directory\n", tmp_dir());
	ck_assert_str_eq(errstr(&errs), want);
	cfg_free(&cfg);
	buf_free(&errs);

	/* errors may be NULL */
	ck_assert_int_eq(cfg_load(&cfg, path, NULL), -1);
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_size_suffixes)
{
	struct config	 cfg;
	struct buf	 errs = BUF_INIT;

	ck_assert_int_eq(load_text(
	    "max_frame_bytes = 2K\n"
	    "max_message_bytes = 1k\n"
	    "max_groupdesc_bytes = 0\n"
	    "channel_queue_bytes = 1g\n"
	    "max_output_bytes = 8M\n"
	    "max_offline_per_login = 1k\n",
	    0600, &cfg, &errs, NULL), 0);
	ck_assert_uint_eq(cfg.max_frame_bytes, 2048);
	ck_assert_uint_eq(cfg.max_message_bytes, 1024);
	ck_assert_uint_eq(cfg.max_groupdesc_bytes, 0);
	ck_assert_uint_eq(cfg.channel_queue_bytes, 1024UL * 1024 * 1024);
	ck_assert_uint_eq(cfg.max_output_bytes, 8UL * 1024 * 1024);
	ck_assert_uint_eq(cfg.max_offline_per_login, 1024);
	cfg_free(&cfg);

	ck_assert_int_eq(load_text("channel_queue_bytes = 2G\n", 0600, &cfg,
	    &errs, NULL), -1);
	ck_assert_ptr_nonnull(strstr(errstr(&errs),
	    ":1: channel_queue_bytes out of range: 2G (must be 64k to 1g)\n"));
	cfg_free(&cfg);
	buf_free(&errs);
}
END_TEST

START_TEST(test_quoting)
{
	struct config	 cfg;
	struct buf	 errs = BUF_INIT;

	ck_assert_int_eq(load_text(
	    "node_id = \"node #1 \\\"a\\\" \\\\b\"   # comment\n"
	    "storage = sqlite:/tmp/a#b.db # comment with \"quotes\"\n"
	    "pid_file=/tmp/x.pid#not-a-comment\n"
	    "log_file = \"/tmp/log file.log\"\n"
	    "workers = \"4\"\n",
	    0600, &cfg, &errs, NULL), 0);
	ck_assert_str_eq(cfg.node_id, "node #1 \"a\" \\b");
	ck_assert_str_eq(cfg.storage, "sqlite:/tmp/a#b.db");
	ck_assert_str_eq(cfg.pid_file, "/tmp/x.pid#not-a-comment");
	ck_assert_str_eq(cfg.log_file, "/tmp/log file.log");
	ck_assert_int_eq(cfg.workers, 4);
	cfg_free(&cfg);
	buf_free(&errs);
}
END_TEST

START_TEST(test_sentinel)
{
	struct config	 cfg;
	struct buf	 errs = BUF_INIT;
	char		 text[PATH_MAX + 128], kf[PATH_MAX];

	snprintf(kf, sizeof(kf), "%s", write_file("skey", 0600, KEY64 "\n"));
	snprintf(text, sizeof(text), "redis = sentinel://127.0.0.1:26379,"
	    "[::1]:26380/chatbus\ncluster_key_file = %s\n", kf);
	ck_assert_int_eq(load_text(text, 0600, &cfg, &errs, NULL), 0);
	ck_assert_ptr_null(cfg.redis_host);
	ck_assert_str_eq(cfg.redis_master, "chatbus");
	ck_assert_int_eq(cfg.redis_nsentinels, 2);
	ck_assert_str_eq(cfg.redis_sentinel_host[0], "127.0.0.1");
	ck_assert_int_eq(cfg.redis_sentinel_port[0], 26379);
	ck_assert_str_eq(cfg.redis_sentinel_host[1], "::1");
	ck_assert_int_eq(cfg.redis_sentinel_port[1], 26380);
	cfg_free(&cfg);
	buf_free(&errs);
}
END_TEST

START_TEST(test_workers_cpus)
{
	struct config	 cfg;
	struct buf	 errs = BUF_INIT;

	ck_assert_int_eq(load_text("workers = 0\n", 0600, &cfg, &errs, NULL),
	    0);
	ck_assert_int_eq(cfg.workers, ncpus());
	ck_assert_int_ge(cfg.workers, 1);
	cfg_free(&cfg);
	ck_assert_int_eq(load_text("workers = 64\n", 0600, &cfg, &errs, NULL),
	    0);
	ck_assert_int_eq(cfg.workers, 64);
	cfg_free(&cfg);
	buf_free(&errs);
}
END_TEST

START_TEST(test_shm_name)
{
	struct config	 a, b, c, d, e;
	struct buf	 errs = BUF_INIT;

	ck_assert_int_eq(load_text("listen = 127.0.0.1:6000\n", 0600, &a,
	    &errs, NULL), 0);
	ck_assert_int_eq(load_text("listen = 127.0.0.1:6001\n", 0600, &b,
	    &errs, NULL), 0);
	ck_assert_int_eq(load_text("listen = *:6000\n", 0600, &c,
	    &errs, NULL), 0);
	ck_assert_int_eq(load_text("listen = [::1]:6000\n", 0600, &d,
	    &errs, NULL), 0);
	ck_assert_int_eq(load_text("listen = chat.example.org:6000\n"
	    "shm_name = /mine\n", 0600, &e, &errs, NULL), 0);
	ck_assert_str_eq(a.shm_name, "/chatd-127_0_0_1_6000");
	ck_assert_str_eq(b.shm_name, "/chatd-127_0_0_1_6001");
	ck_assert_str_eq(c.shm_name, "/chatd-__6000");
	ck_assert_str_eq(d.shm_name, "/chatd-___1__6000");
	ck_assert_str_eq(e.shm_name, "/mine");
	ck_assert_str_ne(a.shm_name, b.shm_name);
	ck_assert_str_eq(c.listen_host, "0.0.0.0");
	ck_assert_str_eq(d.listen_host, "::1");
	ck_assert_str_eq(e.listen_host, "chat.example.org");
	ck_assert_int_eq(b.listen_port, 6001);
	cfg_free(&a);
	cfg_free(&b);
	cfg_free(&c);
	cfg_free(&d);
	cfg_free(&e);
	buf_free(&errs);
}
END_TEST

/* Cluster mode needs a key: private, long enough; the old one too. */
START_TEST(test_cluster_key)
{
	struct config	 cfg;
	struct buf	 errs = BUF_INIT;
	char		 text[2 * PATH_MAX + 128], kf[PATH_MAX], old[PATH_MAX];

	ck_assert_int_eq(load_text("redis = 127.0.0.1:6379\n", 0600, &cfg,
	    &errs, NULL), -1);
	ck_assert_ptr_nonnull(strstr(errstr(&errs), "needs cluster_key_file"));
	cfg_free(&cfg);
	buf_free(&errs);

	snprintf(kf, sizeof(kf), "%s", write_file("ckey", 0644, KEY64 "\n"));
	snprintf(text, sizeof(text), "redis = 127.0.0.1:6379\n"
	    "cluster_key_file = %s\n", kf);
	ck_assert_int_eq(load_text(text, 0600, &cfg, &errs, NULL), -1);
	ck_assert_ptr_nonnull(strstr(errstr(&errs), "readable by others"));
	cfg_free(&cfg);
	buf_free(&errs);

	(void)write_file("ckey", 0600, "short\n");
	ck_assert_int_eq(chmod(kf, 0600), 0);
	ck_assert_int_eq(load_text(text, 0600, &cfg, &errs, NULL), -1);
	ck_assert_ptr_nonnull(strstr(errstr(&errs), "too short"));
	cfg_free(&cfg);
	buf_free(&errs);

	(void)write_file("ckey", 0600, KEY64 "\n");
	snprintf(old, sizeof(old), "%s", write_file("ckey.old", 0600,
	    "old-" KEY64 "\n"));
	snprintf(text, sizeof(text), "redis = 127.0.0.1:6379\n"
	    "cluster_key_file = %s\ncluster_key_file_old = %s\n", kf, old);
	ck_assert_int_eq(load_text(text, 0600, &cfg, &errs, NULL), 0);
	ck_assert_str_eq(cfg.cluster_key, KEY64);
	ck_assert_str_eq(cfg.cluster_key_old, "old-" KEY64);
	ck_assert_int_eq(cfg.cluster_max_age, 300);
	cfg_free(&cfg);
	buf_free(&errs);
}
END_TEST

START_TEST(test_secret_perms)
{
	struct config	 cfg;
	struct buf	 errs = BUF_INIT;
	const char	*path;
	char		 want[PATH_MAX + 128];
	char		 rtext[PATH_MAX + 128];
	const char	*secret[2];
	size_t		 i;

	secret[0] = "storage = mysql://chat:pw@db:3306/chat\n";
	snprintf(rtext, sizeof(rtext), "redis = 127.0.0.1:6379\nredis_password"
	    " = pw\ncluster_key_file = %s\n",
	    write_file("ckey", 0600, KEY64 "\n"));
	secret[1] = rtext;

	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(load_text(secret[i], 0644, &cfg, &errs,
		    &path), -1);
		snprintf(want, sizeof(want), "%s: contains a password but is "
		    "readable by others (chmod 600)\n", path);
		ck_assert_str_eq(errstr(&errs), want);
		cfg_free(&cfg);
		buf_free(&errs);

		ck_assert_int_eq(load_text(secret[i], 0640, &cfg, &errs,
		    NULL), -1);
		cfg_free(&cfg);
		buf_free(&errs);

		ck_assert_int_eq(load_text(secret[i], 0600, &cfg, &errs,
		    NULL), 0);
		ck_assert_uint_eq(buf_used(&errs), 0);
		cfg_free(&cfg);
	}
	ck_assert_int_eq(load_text(rtext, 0600, &cfg, &errs, NULL), 0);
	ck_assert_str_eq(cfg.redis_password, "pw");
	ck_assert_str_eq(cfg.redis_host, "127.0.0.1");
	ck_assert_int_eq(cfg.redis_port, 6379);
	cfg_free(&cfg);

	/* A user without a password, or a password kept elsewhere: fine. */
	ck_assert_int_eq(load_text("storage = mysql://chat@db/chat\n", 0644,
	    &cfg, &errs, NULL), 0);
	cfg_free(&cfg);
	buf_free(&errs);
}
END_TEST

START_TEST(test_db_password_file)
{
	struct config	 cfg;
	struct buf	 errs = BUF_INIT;
	const char	*pwf, *path;
	char		 text[PATH_MAX + 64], want[2 * PATH_MAX];

	pwf = write_file("pw", 0600, "hunter2\r\n\n");
	snprintf(text, sizeof(text), "storage = mysql://chat@db/chat\n"
	    "db_password_file = \"%s\"\n", pwf);
	ck_assert_int_eq(load_text(text, 0644, &cfg, &errs, NULL), 0);
	ck_assert_str_eq(cfg.db_password, "hunter2");
	cfg_free(&cfg);

	pwf = write_file("pw", 0600, "\n");
	ck_assert_int_eq(load_text(text, 0644, &cfg, &errs, &path), -1);
	snprintf(want, sizeof(want), "%s:2: db_password_file \"%s\": empty\n",
	    path, pwf);
	ck_assert_str_eq(errstr(&errs), want);
	ck_assert_ptr_null(cfg.db_password);
	cfg_free(&cfg);
	buf_free(&errs);
}
END_TEST

START_TEST(test_reload)
{
	struct config	 cur, next;
	struct buf	 errs = BUF_INIT;
	const char	*logf = tmp_path("reload.log");
	char		*log, text[PATH_MAX + 512];
	int		 n;

	ck_assert_int_eq(log_init(logf, LOG_INFO), 0);
	log_set_role("master");
	cfg_defaults(&cur);
	snprintf(text, sizeof(text),
	    "log_level = debug\n"
	    "log_file = %s/chatd.log\n"
	    "max_connections = 500\n"
	    "max_message_bytes = 1k\n"
	    "password_cost = 9\n"
	    "listen = 127.0.0.1:7000\n"
	    "workers = 63\n"
	    "storage = sqlite:/tmp/other.db\n"
	    "db_pool_max = 9\n", tmp_dir());
	ck_assert_int_eq(load_text(text, 0600, &next, &errs, NULL), 0);

	n = cfg_apply_reload(&cur, &next);
	ck_assert_int_eq(n, 5);
	ck_assert_int_eq(cur.log_level, LOG_DEBUG);
	ck_assert_str_eq(cur.log_file, next.log_file);
	ck_assert_ptr_ne(cur.log_file, next.log_file);
	ck_assert_int_eq(cur.max_connections, 500);
	ck_assert_uint_eq(cur.max_message_bytes, 1024);
	ck_assert_int_eq(cur.password_cost, 9);
	/* Not applied. */
	ck_assert_str_eq(cur.listen, "127.0.0.1:6000");
	ck_assert_int_eq(cur.listen_port, 6000);
	ck_assert_int_eq(cur.workers, ncpus());
	ck_assert_str_ne(cur.storage, "sqlite:/tmp/other.db");
	ck_assert_int_eq(cur.db_pool_max, 4);

	log = tmp_read_all(logf);
	ck_assert_ptr_nonnull(strstr(log,
	    " master notice: listen changed: upgrade or restart needed\n"));
	ck_assert_ptr_nonnull(strstr(log,
	    "workers changed: upgrade or restart needed\n"));
	ck_assert_ptr_nonnull(strstr(log,
	    "storage changed: upgrade or restart needed\n"));
	ck_assert_ptr_nonnull(strstr(log,
	    "db_pool_max changed: upgrade or restart needed\n"));
	ck_assert_ptr_nonnull(strstr(log,
	    "shm_name changed: upgrade or restart needed\n"));
	ck_assert_ptr_null(strstr(log, "max_connections changed"));
	ck_assert_ptr_null(strstr(log, "log_level changed"));
	free(log);

	/* Nothing left to apply the second time. */
	ck_assert_int_eq(cfg_apply_reload(&cur, &next), 0);
	cfg_free(&next);
	cfg_free(&cur);
	buf_free(&errs);
}
END_TEST

/* The master's reload as the workers get it: the reloadable keys only. */
START_TEST(test_reload_message)
{
	struct config	 master, worker, next;
	struct buf	 errs = BUF_INIT, msg = BUF_INIT;
	char		 text[PATH_MAX + 512];

	cfg_defaults(&master);
	cfg_defaults(&worker);
	snprintf(text, sizeof(text),
	    "log_file = %s/w.log\n"
	    "per_ip_exempt = 10.0.0.0/8, ::1/128\n"
	    "max_output_bytes = 8m\n"
	    "idle_timeout = 77\n"
	    "workers = 63\n", tmp_dir());
	ck_assert_int_eq(load_text(text, 0600, &next, &errs, NULL), 0);
	ck_assert_int_eq(cfg_apply_reload(&master, &next), 4);

	ck_assert_int_eq(cfg_pack_reload(&master, &msg), 0);
	ck_assert_int_eq(cfg_unpack_reload(&worker, buf_head(&msg),
	    buf_used(&msg)), 4);
	ck_assert_str_eq(worker.log_file, next.log_file);
	ck_assert_str_eq(worker.per_ip_exempt, "10.0.0.0/8, ::1/128");
	ck_assert_uint_eq(worker.max_output_bytes, 8 << 20);
	ck_assert_int_eq(worker.idle_timeout, 77);
	ck_assert_int_eq(worker.workers, master.workers);	/* restart key */
	/* the same message again changes nothing */
	ck_assert_int_eq(cfg_unpack_reload(&worker, buf_head(&msg),
	    buf_used(&msg)), 0);
	/* a short or long message is refused, the configuration kept */
	ck_assert_int_eq(cfg_unpack_reload(&worker, buf_head(&msg),
	    buf_used(&msg) - 1), -1);
	ck_assert_int_eq(buf_append(&msg, "x", 1), 0);
	ck_assert_int_eq(cfg_unpack_reload(&worker, buf_head(&msg),
	    buf_used(&msg)), -1);
	ck_assert_int_eq(worker.idle_timeout, 77);

	buf_free(&msg);
	buf_free(&errs);
	cfg_free(&next);
	cfg_free(&worker);
	cfg_free(&master);
}
END_TEST

static void
config_setup(void)
{
	tmpdir_setup("check_config");
}

Suite *
config_suite(void)
{
	Suite	*s = suite_create("config");
	TCase	*tc;

	tc = tcase_create("config");
	tcase_add_checked_fixture(tc, config_setup, tmpdir_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_full_file);
	tcase_add_test(tc, test_cluster_key);
	tcase_add_loop_test(tc, test_each_error, 0,
	    (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, test_many_errors);
	tcase_add_test(tc, test_unreadable);
	tcase_add_test(tc, test_size_suffixes);
	tcase_add_test(tc, test_quoting);
	tcase_add_test(tc, test_workers_cpus);
	tcase_add_test(tc, test_sentinel);
	tcase_add_test(tc, test_shm_name);
	tcase_add_test(tc, test_secret_perms);
	tcase_add_test(tc, test_db_password_file);
	tcase_add_test(tc, test_reload_message);
	tcase_add_test(tc, test_reload);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return check_run(config_suite());
}
