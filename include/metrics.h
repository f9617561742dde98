/*
 * metrics.h - the master's HTTP endpoint (metrics_listen): GET /metrics
 * in the Prometheus text format, GET /health answering 200 "ok" (or
 * "degraded: ..." when Redis is unreachable: health.h) or 503
 * with the reason.  HTTP/1.0 style: one request per connection, a
 * bounded request, a deadline, never blocking the master.
 */
#ifndef CHATD_METRICS_H
#define CHATD_METRICS_H

#include <stddef.h>

#include "buf.h"
#include "ctl.h"

/* Listen on cfg metrics_host:metrics_port.  NULL with err. */
struct ctl_server *metrics_open(const struct ctl_env *env, char *err,
	    size_t errlen);
/* The exposition text for GET /metrics. */
int	metrics_render(const struct ctl_env *env, struct buf *out);

#endif
