/*
 * chatctl.c - control a running chatd over its control socket.
 *
 *	chatctl [-j] [-s socket | -f config] status|stats|online|kick USER|
 *	    reload|upgrade|stop
 *
 * Sends one line, reads one JSON object (ctl.h), and prints it for
 * people, or as it is with -j.  Exit status: 0 done, 1 chatd refused or
 * failed the request, 2 usage or connection error.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "buf.h"
#include "cfg.h"

#define DEFAULT_SOCKET		"/run/chatd/chatd.sock"
#define TIMEOUT_MS		15000
#define REPLY_MAX		((size_t)256 << 20)
/* the old master waits 60 s for ready and 60 s per worker: bounded */
#define UPGRADE_WAIT_SECONDS	900
#define UPGRADE_POLL_MS		200

static void
usage(void)
{
	fprintf(stderr, "usage: chatctl [-j] [-s socket | -f config] "
	    "status | stats | online | kick user | reload | upgrade | stop\n");
	exit(2);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list	 ap;

	fprintf(stderr, "chatctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

/*
 * Send line, read the whole answer until the server closes.  With
 * tolerant, a failed connection returns -1 (an upgrade moves the
 * socket between two masters) instead of ending chatctl.
 */
static int
request(const char *path, const char *line, struct buf *reply, int tolerant)
{
	struct sockaddr_un	 sun;
	struct pollfd		 pfd;
	ssize_t			 n;
	size_t			 off = 0, len = strlen(line);
	int			 fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		die("%s: path too long", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (tolerant) {
			close(fd);
			return -1;
		}
		die("%s: %s%s", path, strerror(errno), errno == ENOENT ||
		    errno == ECONNREFUSED ? " (is chatd running with "
		    "control_socket set?)" : "");
	}
	while (off < len) {
		n = send(fd, line + off, len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		/* refused before it read: the answer still waits for us */
		if (n == -1 && (errno == EPIPE || errno == ECONNRESET))
			break;
		if (n == -1)
			die("%s: %s", path, strerror(errno));
		off += (size_t)n;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		if ((rc = poll(&pfd, 1, TIMEOUT_MS)) == -1 && errno == EINTR)
			continue;
		if (rc == -1)
			die("poll: %s", strerror(errno));
		if (rc == 0 && tolerant) {
			close(fd);
			return -1;
		}
		if (rc == 0)
			die("%s: no answer within %d s", path,
			    TIMEOUT_MS / 1000);
		if (buf_reserve(reply, 65536) == -1)
			die("out of memory");
		n = read(fd, reply->data + reply->len, 65536);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == ECONNRESET && buf_used(reply) > 0)
			break;
		if (n == -1 && tolerant) {
			close(fd);
			return -1;
		}
		if (n == -1)
			die("%s: %s", path, strerror(errno));
		if (n == 0)
			break;
		reply->len += (size_t)n;
		if (buf_used(reply) > REPLY_MAX)
			die("%s: answer too long", path);
	}
	close(fd);
	return 0;
}

/* One JSON object from the answer, or NULL. */
static json_object *
parse_reply(const struct buf *reply)
{
	json_tokener	*tok;
	json_object	*r;

	if ((tok = json_tokener_new()) == NULL)
		die("out of memory");
	r = json_tokener_parse_ex(tok, buf_head(reply), (int)buf_used(reply));
	json_tokener_free(tok);
	if (r != NULL && !json_object_is_type(r, json_type_object)) {
		json_object_put(r);
		r = NULL;
	}
	return r;
}

static json_object *
get(json_object *o, const char *key)
{
	json_object	*v;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *
str(json_object *o, const char *key)
{
	json_object	*v = get(o, key);

	if (v == NULL || json_object_is_type(v, json_type_null))
		return "-";
	return json_object_get_string(v);
}

static int64_t
num(json_object *o, const char *key)
{
	json_object	*v = get(o, key);

	return v != NULL ? json_object_get_int64(v) : 0;
}

static const char *
fmt_time(int64_t t, char *s, size_t len)
{
	time_t		 tt = (time_t)t;
	struct tm	 tm;

	if (t <= 0 || localtime_r(&tt, &tm) == NULL)
		return "-";
	strftime(s, len, "%Y-%m-%d %H:%M:%S", &tm);
	return s;
}

static const char *
fmt_duration(int64_t s, char *out, size_t len)
{
	if (s >= 86400)
		snprintf(out, len, "%" PRId64 "d %" PRId64 "h %" PRId64 "m",
		    s / 86400, s % 86400 / 3600, s % 3600 / 60);
	else if (s >= 3600)
		snprintf(out, len, "%" PRId64 "h %" PRId64 "m %" PRId64 "s",
		    s / 3600, s % 3600 / 60, s % 60);
	else if (s >= 60)
		snprintf(out, len, "%" PRId64 "m %" PRId64 "s", s / 60,
		    s % 60);
	else
		snprintf(out, len, "%" PRId64 "s", s);
	return out;
}

static void
print_status(json_object *r)
{
	json_object	*st = get(r, "storage"), *rd = get(r, "redis");
	json_object	*h = get(r, "health"), *ws = get(r, "workers"), *w;
	char		 t1[64], t2[64];
	size_t		 i, nw;
	int		 degraded;

	printf("chatd %s, node %s, boot id %s\n", str(r, "version"),
	    str(r, "node_id"), str(r, "boot_id"));
	printf("master:   pid %" PRId64 ", up %s (since %s)\n", num(r, "pid"),
	    fmt_duration(num(r, "uptime"), t1, sizeof(t1)),
	    fmt_time(num(r, "started"), t2, sizeof(t2)));
	printf("listen:   %s\n", str(r, "listen"));
	printf("online:   %" PRId64 " users, %" PRId64 " connections\n",
	    num(r, "online"), num(r, "connections"));
	printf("storage:  %s (%s)\n", str(st, "kind"), str(st, "spec"));
	if (get(rd, "addr") == NULL ||
	    json_object_is_type(get(rd, "addr"), json_type_null))
		printf("redis:    none (single node)\n");
	else
		printf("redis:    %s (%s)\n", str(rd, "state"),
		    str(rd, "addr"));
	degraded = get(h, "degraded") != NULL &&
	    !json_object_is_type(get(h, "degraded"), json_type_null);
	if (!json_object_get_boolean(get(h, "ok")))
		printf("health:   FAILING: %s\n", str(h, "reason"));
	else if (!degraded)
		printf("health:   ok\n");
	/* serving its users, but cut off from the other nodes */
	if (degraded)
		printf("health:   degraded: %s\n", str(h, "degraded"));
	if (get(r, "handover") != NULL)
		printf("handover: %" PRId64 " dead workers' connections kept, "
		    "%" PRId64 " adopted, %" PRId64 " closed instead\n",
		    num(get(r, "handover"), "handovers"),
		    num(get(r, "handover"), "adopted"),
		    num(get(r, "handover"), "failed"));
	if (get(r, "upgrade") != NULL) {
		json_object *u = get(r, "upgrade");

		printf("upgrade:  %s; %" PRId64 " done, %" PRId64 " failed, %"
		    PRId64 " connections handed over", str(u, "state"),
		    num(u, "upgrades"), num(u, "failed"), num(u, "handed"));
		if (strcmp(str(u, "error"), "-") != 0)
			printf("; last error: %s", str(u, "error"));
		printf("\n");
	}
	nw = ws != NULL ? json_object_array_length(ws) : 0;
	printf("workers:  %zu\n", nw);
	printf("  %-4s %-8s %-10s %6s  %-19s  %-7s %s\n", "SLOT", "PID",
	    "STATE", "CONNS", "STARTED", "STORAGE", "REDIS");
	for (i = 0; i < nw; i++) {
		w = json_object_array_get_idx(ws, i);
		printf("  %-4" PRId64 " %-8" PRId64 " %-10s %6" PRId64
		    "  %-19s  %-7s %s\n", num(w, "slot"), num(w, "pid"),
		    str(w, "state"), num(w, "connections"),
		    fmt_time(num(w, "started"), t1, sizeof(t1)),
		    str(w, "storage"), str(w, "redis"));
	}
}

static const char *const counters[] = {
	"accepted", "connections", "logins", "msgs_in", "msgs_out",
	"offline_stored", "errors", "respawns", "handovers", "adopted",
	"handover_failed"
};
/* column heads for people, in the same order */
static const char *const heads[] = {
	"ACCEPTED", "CONNS", "LOGINS", "MSGS_IN", "MSGS_OUT", "OFFLINE",
	"ERRORS", "RESPAWNS", "HANDOVERS", "ADOPTED", "HO_FAILED"
};
#define NCOUNTERS	(sizeof(counters) / sizeof(counters[0]))

static void
print_stats(json_object *r)
{
	json_object	*ws = get(r, "workers"), *w, *t = get(r, "total");
	size_t		 i, k, nw;

	nw = ws != NULL ? json_object_array_length(ws) : 0;
	printf("%-5s %-7s", "SLOT", "PID");
	for (k = 0; k < NCOUNTERS; k++)
		printf(" %9s", heads[k]);
	printf("\n");
	for (i = 0; i < nw; i++) {
		w = json_object_array_get_idx(ws, i);
		printf("%-5" PRId64 " %-7" PRId64, num(w, "slot"),
		    num(w, "pid"));
		for (k = 0; k < NCOUNTERS; k++)
			printf(" %9" PRId64, num(w, counters[k]));
		printf("\n");
	}
	printf("%-5s %-7s", "total", "");
	for (k = 0; k < NCOUNTERS; k++)
		printf(" %9" PRId64, num(t, counters[k]));
	printf("\n");
}

static void
print_online(json_object *r)
{
	json_object	*us = get(r, "users"), *u, *a;
	size_t		 i, n;

	n = us != NULL ? json_object_array_length(us) : 0;
	printf("%-12s %-6s %s\n", "USER", "WORKER", "ADDRESS");
	for (i = 0; i < n; i++) {
		u = json_object_array_get_idx(us, i);
		a = get(u, "addr");
		printf("%-12" PRId64 " %-6" PRId64 " %s\n", num(u, "id"),
		    num(u, "worker"), a != NULL ? json_object_get_string(a) :
		    "-");
	}
	printf("%zu user%s online\n", n, n == 1 ? "" : "s");
}

/*
 * The old master (old_pid) started the new binary: follow chatd's
 * status until a new master says the upgrade is done, or the old one
 * says it failed.  The exit status of chatctl.
 */
static int
upgrade_wait(const char *sock, int64_t old_pid, int64_t handed0, int json)
{
	struct buf	 reply = BUF_INIT;
	json_object	*r, *u;
	const char	*state;
	int64_t		 pid;
	time_t		 end = time(NULL) + UPGRADE_WAIT_SECONDS;

	while (time(NULL) < end) {
		poll(NULL, 0, UPGRADE_POLL_MS);
		buf_consume(&reply, buf_used(&reply));
		if (request(sock, "status\n", &reply, 1) == -1 ||
		    (r = parse_reply(&reply)) == NULL)
			continue;	/* between the two masters */
		pid = num(r, "pid");
		u = get(r, "upgrade");
		state = u != NULL ? str(u, "state") : "-";
		if (pid != old_pid && strcmp(state, "done") == 0) {
			if (json)
				printf("%s\n", json_object_to_json_string_ext(
				    u, JSON_C_TO_STRING_PRETTY));
			else
				printf("upgraded: master pid %" PRId64 " -> %"
				    PRId64 ", %" PRId64 " connections handed "
				    "over%s%s\n", old_pid, pid,
				    num(u, "handed") - handed0,
				    strcmp(str(u, "error"), "-") != 0 ? "; " :
				    "", strcmp(str(u, "error"), "-") != 0 ?
				    str(u, "error") : "");
			json_object_put(r);
			buf_free(&reply);
			return strcmp(str(u, "error"), "-") != 0;
		}
		if (pid == old_pid && strcmp(state, "failed") == 0) {
			if (json)
				printf("%s\n", json_object_to_json_string_ext(
				    u, JSON_C_TO_STRING_PRETTY));
			fprintf(stderr, "chatctl: upgrade failed, chatd (pid "
			    "%" PRId64 ") goes on serving: %s\n", old_pid,
			    str(u, "error"));
			json_object_put(r);
			buf_free(&reply);
			return 1;
		}
		json_object_put(r);
	}
	buf_free(&reply);
	die("upgrade: no outcome within %d s (see chatctl status and the log)",
	    UPGRADE_WAIT_SECONDS);
}

int
main(int argc, char *argv[])
{
	struct buf	 reply = BUF_INIT, errs = BUF_INIT;
	struct config	 cfg;
	json_object	*r, *u;
	const char	*sock = NULL, *conf = NULL, *cmd;
	int64_t		 handed0 = 0;
	char		 line[256];
	int		 ch, json = 0, nargs;

	while ((ch = getopt(argc, argv, "f:js:")) != -1) {
		switch (ch) {
		case 'f':
			conf = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 's':
			sock = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1 || (sock != NULL && conf != NULL))
		usage();
	cmd = argv[0];
	nargs = strcmp(cmd, "kick") == 0 ? 2 : 1;
	if (argc != nargs ||
	    (nargs == 1 && strcmp(cmd, "status") != 0 &&
	    strcmp(cmd, "stats") != 0 && strcmp(cmd, "online") != 0 &&
	    strcmp(cmd, "reload") != 0 && strcmp(cmd, "upgrade") != 0 &&
	    strcmp(cmd, "stop") != 0))
		usage();
	if (nargs == 2 && (strlen(argv[1]) == 0 ||
	    strspn(argv[1], "0123456789") != strlen(argv[1]) ||
	    strlen(argv[1]) > 10))
		die("kick: the user is a numeric id, not \"%s\"", argv[1]);

	memset(&cfg, 0, sizeof(cfg));
	if (conf != NULL) {
		if (cfg_load(&cfg, conf, &errs) == -1) {
			fprintf(stderr, "%.*s", (int)buf_used(&errs),
			    buf_head(&errs));
			exit(2);
		}
		if (cfg.control_socket == NULL)
			die("%s: control_socket is not set", conf);
		sock = cfg.control_socket;
	}
	if (sock == NULL)
		sock = DEFAULT_SOCKET;

	snprintf(line, sizeof(line), "%s%s%s\n", cmd, nargs == 2 ? " " : "",
	    nargs == 2 ? argv[1] : "");
	/* the count before, to report how many this upgrade handed over */
	if (strcmp(cmd, "upgrade") == 0) {
		request(sock, "status\n", &reply, 0);
		if ((r = parse_reply(&reply)) != NULL) {
			if ((u = get(r, "upgrade")) != NULL)
				handed0 = num(u, "handed");
			json_object_put(r);
		}
		buf_consume(&reply, buf_used(&reply));
	}
	request(sock, line, &reply, 0);
	if ((r = parse_reply(&reply)) == NULL)
		die("%s: unexpected answer: %.200s", sock, buf_head(&reply));

	if (!json_object_get_boolean(get(r, "ok"))) {
		if (json)
			printf("%s\n", json_object_to_json_string_ext(r,
			    JSON_C_TO_STRING_PRETTY |
			    JSON_C_TO_STRING_NOSLASHESCAPE));
		fprintf(stderr, "chatctl: %s\n", str(r, "error"));
		exit(1);
	}
	if (json && strcmp(cmd, "upgrade") != 0)
		printf("%s\n", json_object_to_json_string_ext(r,
		    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	else if (strcmp(cmd, "upgrade") == 0) {
		ch = upgrade_wait(sock, num(r, "pid"), handed0, json);
		json_object_put(r);
		buf_free(&reply);
		cfg_free(&cfg);
		return ch;
	} else if (strcmp(cmd, "status") == 0)
		print_status(r);
	else if (strcmp(cmd, "stats") == 0)
		print_stats(r);
	else if (strcmp(cmd, "online") == 0)
		print_online(r);
	else if (strcmp(cmd, "kick") == 0)
		printf("kicked user %" PRId64 " (worker %" PRId64 ")\n",
		    num(r, "id"), num(r, "worker"));
	else if (strcmp(cmd, "reload") == 0)
		printf("configuration reloaded\n");
	else if (strcmp(cmd, "stop") == 0)
		printf("chatd is stopping\n");
	json_object_put(r);
	buf_free(&reply);
	cfg_free(&cfg);
	return 0;
}
