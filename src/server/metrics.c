/*
 * metrics.c - the master's HTTP endpoint: GET /metrics (Prometheus text
 * exposition format 0.0.4) and GET /health.  Served by the polled
 * server in ctl.c: one request per connection, at most 4 KiB of
 * request head, a 5 s deadline, answered with "Connection: close".
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ctl.h"
#include "health.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "online.h"
#include "upgrade.h"

#define HTTP_REQUEST_MAX	4096
#define HTTP_TIMEOUT		5.0
#define HTTP_BACKLOG		64

static const struct {
	const char	*name;
	const char	*help;
	size_t		 off;
} totals[] = {
	{ "chatd_accepted_total", "Client connections accepted.",
	    offsetof(struct online_slot_stats, accepted) },
	{ "chatd_logins_total", "Successful logins.",
	    offsetof(struct online_slot_stats, logins) },
	{ "chatd_messages_in_total", "Requests received from clients.",
	    offsetof(struct online_slot_stats, msgs_in) },
	{ "chatd_messages_out_total", "Messages delivered to clients.",
	    offsetof(struct online_slot_stats, msgs_out) },
	{ "chatd_offline_stored_total",
	    "Messages stored for users who were offline.",
	    offsetof(struct online_slot_stats, offline_stored) },
	{ "chatd_errors_total", "Error answers sent to clients.",
	    offsetof(struct online_slot_stats, errors) },
	{ "chatd_respawns_total", "Worker processes that ended and were "
	    "replaced.", offsetof(struct online_slot_stats, respawns) },
	{ "chatd_handovers_total", "Dead workers whose connections were "
	    "kept open for their replacement.",
	    offsetof(struct online_slot_stats, handovers) },
	{ "chatd_adopted_total", "Connections a new worker adopted, with "
	    "their sessions, from a dead one.",
	    offsetof(struct online_slot_stats, adopted) },
	{ "chatd_handover_failed_total", "Connections of a dead worker "
	    "closed instead of adopted (it died again soon after adopting, "
	    "or adoption failed).",
	    offsetof(struct online_slot_stats, handover_failed) },
	{ "chatd_bus_rejected_total", "Redis items refused: bad signature, "
	    "too old or replayed.",
	    offsetof(struct online_slot_stats, bus_rejected) },
	{ "chatd_output_evictions_total", "Slow readers disconnected to "
	    "keep a worker within max_worker_output_bytes.",
	    offsetof(struct online_slot_stats, output_evictions) },
	{ "chatd_redis_failovers_total", "Redis failovers followed (the "
	    "Sentinels named a new primary), counted by each worker.",
	    offsetof(struct online_slot_stats, redis_failovers) },
	{ "chatd_bus_unreplicated_total", "Publish batches that no Redis "
	    "replica confirmed within 1 s (Sentinel mode).",
	    offsetof(struct online_slot_stats, bus_unreplicated) },
	{ "chatd_proxy_refused_total", "Connections closed for their PROXY "
	    "protocol header: from an address not in proxy_protocol_from, "
	    "malformed, or not complete in time.",
	    offsetof(struct online_slot_stats, proxy_refused) },
	{ "chatd_login_blocks_shared_total", "Failed-login blocks learned "
	    "from another node through Redis, counted by each worker.",
	    offsetof(struct online_slot_stats, login_blocks_shared) },
};
#define NTOTALS	(sizeof(totals) / sizeof(totals[0]))

static uint64_t
field(struct online_slot_stats *st, size_t off)
{
	return __atomic_load_n((uint64_t *)(void *)((char *)st + off),
	    __ATOMIC_RELAXED);
}

/* A label value: backslash, double quote and newline escaped. */
static void
put_label(struct buf *out, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			buf_printf(out, "\\%c", *s);
		else if (*s == '\n')
			buf_append_str(out, "\\n");
		else
			buf_append(out, s, 1);
	}
}

static void
head(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* A gauge with one sample per worker slot. */
static void
per_slot(struct buf *out, struct node *n, const char *name,
    const char *help, size_t off)
{
	int	 i;

	head(out, name, "gauge", help);
	for (i = 0; i < n->nslots; i++)
		buf_printf(out, "%s{slot=\"%d\"} %" PRIu64 "\n", name, i,
		    field(online_slot_stats(n->online, i), off));
}

/*
 * 200's body: "ok", or "degraded: " and why (Redis down: the node still
 * serves its users and stores what it cannot forward, so a load
 * balancer keeps it), then the failovers followed since start if any.
 */
static void
health_ok(const struct ctl_env *env, struct buf *body)
{
	uint64_t	 fo = 0, v;
	int		 i;

	if (health_degraded(env, NULL) > 0) {
		buf_append_str(body, "degraded: ");
		health_degraded(env, body);
		buf_append_str(body, "\n");
	} else
		buf_append_str(body, "ok\n");
	for (i = 0; i < env->node->nslots; i++) {
		v = __atomic_load_n(&online_slot_stats(env->node->online,
		    i)->redis_failovers, __ATOMIC_RELAXED);
		if (v > fo)
			fo = v;
	}
	if (fo > 0)
		buf_printf(body, "redis: %" PRIu64 " failover(s) followed\n",
		    fo);
}

/* The links a node depends on, for alerts on the degraded state. */
static void
up_gauges(const struct ctl_env *env, struct buf *out)
{
	struct node			*n = env->node;
	struct online_slot_stats	*st;
	int				 i, store = 1, bus = 1;

	for (i = 0; i < n->nslots; i++) {
		st = online_slot_stats(n->online, i);
		if (__atomic_load_n(&st->pid, __ATOMIC_RELAXED) == 0)
			continue;
		store &= __atomic_load_n(&st->store_ok, __ATOMIC_RELAXED) != 0;
		bus &= __atomic_load_n(&st->redis_up, __ATOMIC_RELAXED) == 1;
	}
	head(out, "chatd_degraded", "gauge", "1 when /health answers 200 "
	    "\"degraded\" (Redis unreachable: chats to other nodes are "
	    "stored until it is back).");
	buf_printf(out, "chatd_degraded %d\n", health_degraded(env, NULL) > 0);
	if (n->cfg.redis != NULL) {
		head(out, "chatd_bus_up", "gauge", "1 when every running "
		    "worker reaches Redis.");
		buf_printf(out, "chatd_bus_up %d\n", bus);
	}
	head(out, "chatd_store_up", "gauge", "1 when every running "
	    "worker's last storage check was answered.");
	buf_printf(out, "chatd_store_up %d\n", store);
}

int
metrics_render(const struct ctl_env *env, struct buf *out)
{
	struct node			*n = env->node;
	struct online_slot_stats	*st;
	uint64_t			 conns = 0, sum;
	size_t				 k;
	int				 i, up = 0;

	for (i = 0; i < n->nslots; i++) {
		st = online_slot_stats(n->online, i);
		conns += __atomic_load_n(&st->connections, __ATOMIC_RELAXED);
		up += __atomic_load_n(&st->pid, __ATOMIC_RELAXED) != 0;
	}
	head(out, "chatd_up", "gauge", "1 while the master runs.");
	buf_append_str(out, "chatd_up 1\n");
	head(out, "chatd_healthy", "gauge", "1 when /health answers 200.");
	buf_printf(out, "chatd_healthy %d\n", ctl_health(env, NULL) == 0);
	up_gauges(env, out);
	head(out, "chatd_info", "gauge", "Version and identity of the node.");
	buf_printf(out, "chatd_info{version=\"%s\",node_id=\"",
	    PACKAGE_VERSION);
	put_label(out, n->cfg.node_id);
	buf_printf(out, "\",boot_id=\"%s\"} 1\n", n->boot_id);
	head(out, "chatd_start_time_seconds", "gauge",
	    "Start of the master, seconds since the epoch.");
	buf_printf(out, "chatd_start_time_seconds %lld\n",
	    (long long)env->started);
	head(out, "chatd_connections", "gauge", "Open client connections.");
	buf_printf(out, "chatd_connections %" PRIu64 "\n", conns);
	head(out, "chatd_online_users", "gauge",
	    "Users logged in on this node.");
	buf_printf(out, "chatd_online_users %zu\n", online_count(n->online));
	head(out, "chatd_workers", "gauge", "Configured worker processes.");
	buf_printf(out, "chatd_workers %d\n", n->nslots);
	head(out, "chatd_workers_up", "gauge", "Worker processes running.");
	buf_printf(out, "chatd_workers_up %d\n", up);
	head(out, "chatd_worker_up", "gauge",
	    "1 when the worker slot has a running process.");
	for (i = 0; i < n->nslots; i++)
		buf_printf(out, "chatd_worker_up{slot=\"%d\"} %d\n", i,
		    __atomic_load_n(&online_slot_stats(n->online, i)->pid,
		    __ATOMIC_RELAXED) != 0);
	per_slot(out, n, "chatd_worker_connections",
	    "Open client connections per worker slot.",
	    offsetof(struct online_slot_stats, connections));
	per_slot(out, n, "chatd_worker_output_bytes",
	    "Bytes queued for slow clients per worker slot.",
	    offsetof(struct online_slot_stats, output_bytes));
	for (k = 0; k < NTOTALS; k++) {
		head(out, totals[k].name, "counter", totals[k].help);
		for (i = 0, sum = 0; i < n->nslots; i++)
			sum += field(online_slot_stats(n->online, i),
			    totals[k].off);
		buf_printf(out, "%s %" PRIu64 "\n", totals[k].name, sum);
	}
	if (env->upgrade_stats != NULL) {
		const struct up_stats *u = env->upgrade_stats();

		head(out, "chatd_upgrades_total", "counter", "Binary upgrades "
		    "completed (chatctl upgrade, SIGUSR2).");
		buf_printf(out, "chatd_upgrades_total %" PRIu64 "\n",
		    u->upgrades);
		head(out, "chatd_upgrade_failed_total", "counter", "Binary "
		    "upgrades that failed (the old binary kept serving).");
		buf_printf(out, "chatd_upgrade_failed_total %" PRIu64 "\n",
		    u->failed);
		head(out, "chatd_upgrade_handed_total", "counter", "Client "
		    "connections passed with their sessions to a new binary.");
		buf_printf(out, "chatd_upgrade_handed_total %" PRIu64 "\n",
		    u->handed);
	}
	return 0;
}

static void
respond(struct buf *out, int code, const char *reason, const char *ctype,
    const struct buf *body, int with_body, const char *extra)
{
	buf_free(out);
	buf_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "Connection: close\r\n"
	    "%s"
	    "\r\n", code, reason, ctype, buf_used(body),
	    extra != NULL ? extra : "");
	if (with_body)
		buf_append(out, buf_head(body), buf_used(body));
}

static void
respond_text(struct buf *out, int code, const char *reason, const char *text,
    int with_body, const char *extra)
{
	struct buf	 body = BUF_INIT;

	buf_append_str(&body, text);
	respond(out, code, reason, "text/plain; charset=utf-8", &body,
	    with_body, extra);
	buf_free(&body);
}

static void
http_too_big(void *arg, struct buf *out)
{
	respond_text(out, 431, "Request Header Fields Too Large",
	    "request too large\n", 1, NULL);
}

static enum ctl_input
http_input(void *arg, const char *p, size_t len, int eof, struct buf *out)
{
	const struct ctl_env	*env = arg;
	struct buf		 body = BUF_INIT;
	struct http_line_req	 req;
	int			 get;

	switch (http_request_line(p, len, eof, &req)) {
	case HTTP_LINE_MORE:
		return CTL_MORE;
	case HTTP_LINE_EMPTY:
		return CTL_CLOSE;
	case HTTP_LINE_BAD:
		respond_text(out, 400, "Bad Request", "bad request\n", 1, NULL);
		return CTL_REPLY;
	case HTTP_LINE_METHOD:
		respond_text(out, 405, "Method Not Allowed",
		    "only GET and HEAD\n", 1, "Allow: GET, HEAD\r\n");
		return CTL_REPLY;
	case HTTP_LINE_OK:
		break;
	}
	get = !req.head;
#define PATH_IS(s)	(req.path.len == strlen(s) && \
	    memcmp(req.path.p, (s), req.path.len) == 0)
	if (PATH_IS("/metrics")) {
		if (metrics_render(env, &body) == -1) {
			buf_free(&body);
			respond_text(out, 500, "Internal Server Error",
			    "out of memory\n", get, NULL);
			return CTL_REPLY;
		}
		respond(out, 200, "OK", "text/plain; version=0.0.4; "
		    "charset=utf-8", &body, get, NULL);
	} else if (PATH_IS("/health")) {
		if (ctl_health(env, &body) == 0) {
			health_ok(env, &body);
			respond(out, 200, "OK", "text/plain; charset=utf-8",
			    &body, get, NULL);
			buf_free(&body);
			return CTL_REPLY;
		}
		buf_append_str(&body, "\n");
		respond(out, 503, "Service Unavailable",
		    "text/plain; charset=utf-8", &body, get, NULL);
	} else
		respond_text(out, 404, "Not Found", "not found: try /metrics "
		    "or /health\n", get, NULL);
	buf_free(&body);
	return CTL_REPLY;
#undef PATH_IS
}

static const struct ctl_server_ops http_ops = {
	.accept = NULL,
	.input = http_input,
	.too_big = http_too_big,
};

struct ctl_server *
metrics_open(const struct ctl_env *env, char *err, size_t errlen)
{
	const struct config	*cfg = &env->node->cfg;
	struct addrinfo		 hints, *res, *ai;
	struct ctl_server	*s;
	char			 port[16];
	int			 fd = -1, one = 1, e, saved = 0;

	/* an upgrade's new master serves its predecessor's listener */
	if ((fd = env->http_fd) != -1)
		goto serve;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", cfg->metrics_port);
	if ((e = getaddrinfo(cfg->metrics_host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "metrics_listen %s: %s",
		    cfg->metrics_listen, gai_strerror(e));
		return NULL;
	}
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			saved = errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one)) == -1 ||
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
		    listen(fd, HTTP_BACKLOG) == -1) {
			saved = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd == -1) {
		snprintf(err, errlen, "metrics_listen %s: %s",
		    cfg->metrics_listen, strerror(saved));
		return NULL;
	}
serve:
	/* env outlives the server: it is ctl.c's static copy */
	s = ctl_server_new(fd, "metrics", &http_ops, (void *)env,
	    HTTP_REQUEST_MAX, HTTP_TIMEOUT, CTL_HTTP_MAX_CLIENTS);
	if (s == NULL) {
		close(fd);
		snprintf(err, errlen, "metrics: out of memory");
	}
	return s;
}
