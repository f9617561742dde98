/*
 * chatbench_report.c - the latency histogram (log-linear, 32 sub-buckets
 * per power of 2) and the parent's output: the id file and the JSON
 * summary.
 */
#include "config.h"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <json-c/json.h>

#include "util.h"
#include "chatbench.h"

static uint64_t
h_value(int i)
{
	int		 e, m;

	if (i < H_LIN)
		return (uint64_t)i;
	e = (i - H_LIN) / H_SUB + 6;
	m = (i - H_LIN) % H_SUB;
	return ((uint64_t)(H_SUB + m) << (e - 5)) + ((1ull << (e - 5)) / 2);
}

void
h_merge(struct hist *to, const struct hist *from)
{
	int	 i;

	to->n += from->n;
	to->sum += from->sum;
	if (from->max > to->max)
		to->max = from->max;
	for (i = 0; i < H_BUCKETS; i++)
		to->b[i] += from->b[i];
}

uint64_t
h_pct(const struct hist *h, double pct)
{
	uint64_t	 want, seen = 0;
	int		 i;

	if (h->n == 0)
		return 0;
	want = (uint64_t)ceil(pct / 100.0 * (double)h->n);
	if (want == 0)
		want = 1;
	for (i = 0; i < H_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t v = h_value(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/* ---- output ----------------------------------------------------------- */

static void
json_lat(FILE *f, const struct hist *h)
{
	fprintf(f, "\"latency_us\":{\"n\":%" PRIu64 ",\"mean\":%.1f,"
	    "\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
	    "\"max\":%.1f}", h->n, h->n ? (double)h->sum / h->n / 1e3 : 0.0,
	    h_pct(h, 50) / 1e3, h_pct(h, 90) / 1e3, h_pct(h, 99) / 1e3,
	    h_pct(h, 99.9) / 1e3, h->max / 1e3);
}

void
write_ids(void)
{
	FILE	*f;
	char	 tmp[PATH_MAX + 8];
	long	 i, n = 0, maxidx = 0;
	int	 k;
	int32_t	*all;

	for (k = 0; k < O.procs; k++)
		for (i = 0; i < (long)gens[k].nids; i++)
			if (gens[k].ids[2 * i] + 1 > maxidx)
				maxidx = gens[k].ids[2 * i] + 1;
	/* keep what the file had: other indexes stay valid */
	if (access(idfile_path(), R_OK) == 0 && !O.raw) {
		long keep = nuids;
		FILE *g = fopen(idfile_path(), "r");
		char line[128];
		long idx, id;
		if (g != NULL) {
			while (fgets(line, sizeof(line), g) != NULL)
				if (sscanf(line, "%ld %ld", &idx, &id) == 2 &&
				    idx >= 0 && idx + 1 > keep)
					keep = idx + 1;
			fclose(g);
		}
		if (keep > maxidx)
			maxidx = keep;
		load_ids(0);
	}
	all = xcalloc((size_t)maxidx + 1, sizeof(*all));
	for (i = 0; i < nuids && i < maxidx; i++)
		all[i] = uids[i];
	for (k = 0; k < O.procs; k++)
		for (i = 0; i < (long)gens[k].nids; i++)
			all[gens[k].ids[2 * i]] = gens[k].ids[2 * i + 1];
	snprintf(tmp, sizeof(tmp), "%s.tmp", idfile_path());
	if ((f = fopen(tmp, "w")) == NULL)
		die("%s: %s", tmp, strerror(errno));
	fprintf(f, "# chatbench users: index id (name bench-%s-INDEX, "
	    "password %s)\n", O.prefix, O.password);
	for (i = 0; i < maxidx; i++)
		if (all[i] != 0) {
			fprintf(f, "%ld %d\n", i, (int)all[i]);
			n++;
		}
	if (fclose(f) != 0 || rename(tmp, idfile_path()) == -1)
		die("%s: %s", idfile_path(), strerror(errno));
	if (!O.quiet)
		fprintf(stderr, "%s: %ld users\n", idfile_path(), n);
	free(all);
}

void
summary(const struct stats *s, const struct srv *sbase, const struct srv *s0,
    const struct srv *s1, const struct srv *smem, double bench_cpu,
    double setup_s)
{
	double	 secs = s->measured_ns / 1e9, tck = (double)sysconf(_SC_CLK_TCK);
	double	 srv_cpu = (double)(s1->cpu_ticks - s0->cpu_ticks) / tck;
	uint64_t nconn;
	int	 i;

	printf("{\"scenario\":\"%s\",\"mode\":\"%s\",\"targets\":\"%s\","
	    "\"procs\":%d,", scenario_names[O.sc], O.raw ? "raw" : "chatd",
	    O.tgt_str, O.procs);
	switch (O.sc) {
	case SC_CHAT:
		printf("\"pairs\":%d,\"inflight\":%d,\"rate_target\":%.0f,"
		    "\"msg_bytes\":%d,", O.pairs, O.rate > 0 ? 0 : O.inflight,
		    O.rate, O.msglen);
		break;
	case SC_GROUP:
		printf("\"groups\":%d,\"size\":%d,\"inflight\":%d,"
		    "\"msg_bytes\":%d,", O.groups, O.gsize, O.inflight,
		    O.msglen);
		break;
	case SC_IDLE:
		printf("\"conns\":%ld,", O.conns);
		break;
	case SC_LOGIN:
	case SC_REGISTER:
		printf("\"n\":%ld,\"concurrency\":%d,\"keep\":%d,", O.n,
		    O.conc, O.keep);
		break;
	default:
		break;
	}
	printf("\"duration_s\":%.3f,\"setup_s\":%.1f,", secs, setup_s);
	switch (O.sc) {
	case SC_CHAT:
	case SC_GROUP:
		printf("\"%s\":%" PRIu64 ",\"per_s\":%.0f,\"sent\":%" PRIu64
		    ",\"delivered_total\":%" PRIu64 ",",
		    O.sc == SC_GROUP ? "deliveries" : "delivered",
		    s->delivered, secs > 0 ? s->delivered / secs : 0,
		    s->sent, s->delivered_all);
		json_lat(stdout, &s->lat);
		printf(",\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64
		    ",\"misrouted\":%" PRIu64 ",\"reordered\":%" PRIu64
		    ",\"skipped\":%" PRIu64 ",", s->lost, s->dup,
		    s->misrouted, s->reordered, s->skipped);
		break;
	case SC_LOGIN:
		printf("\"logins\":%" PRIu64 ",\"per_s\":%.0f,"
		    "\"already_online\":%" PRIu64 ",\"login_errors\":%"
		    PRIu64 ",", s->logins, secs > 0 ? s->logins / secs : 0,
		    s->login_online, s->login_errors);
		json_lat(stdout, &s->lat);
		printf(",");
		break;
	case SC_REGISTER:
		printf("\"registered\":%" PRIu64 ",\"existing\":%" PRIu64
		    ",\"per_s\":%.0f,\"first_index\":%ld,\"last_index\":%ld,"
		    "\"idfile\":\"%s\",", s->regs, s->regs_existing,
		    secs > 0 ? s->regs / secs : 0, O.offset,
		    O.offset + O.n - 1, idfile_path());
		json_lat(stdout, &s->lat);
		printf(",");
		break;
	case SC_IDLE:
		printf("\"up_at_end\":%" PRIu64 ",", s->conns_up);
		break;
	default:
		break;
	}
	printf("\"conns_failed\":%" PRIu64 ",\"conns_closed\":%" PRIu64
	    ",\"errors\":%" PRIu64 ",", s->conns_failed, s->conns_closed,
	    s->errors);
	nconn = O.sc == SC_IDLE ? s->conns_up : O.sc == SC_CHAT ?
	    (uint64_t)O.pairs * 2 : O.sc == SC_GROUP ?
	    (uint64_t)O.groups * O.gsize : 0;
	printf("\"server\":{\"pids\":%d,\"cpu_s\":%.2f,\"cpu_pct\":%.0f,"
	    "\"rss_kib\":%" PRIu64 ",\"pss_kib\":%" PRIu64 ",\"rss_kib_before"
	    "\":%" PRIu64 ",\"pss_kib_before\":%" PRIu64, smem->npids,
	    srv_cpu, secs > 0 ? 100 * srv_cpu / secs : 0, smem->rss_kib,
	    smem->pss_kib, sbase->rss_kib, sbase->pss_kib);
	if (nconn > 0)
		printf(",\"rss_bytes_per_conn\":%.0f,\"pss_bytes_per_conn\":"
		    "%.0f,\"rss_delta_bytes_per_conn\":%.0f",
		    smem->rss_kib * 1024.0 / nconn,
		    smem->pss_kib * 1024.0 / nconn,
		    ((double)smem->rss_kib - (double)sbase->rss_kib) * 1024.0 /
		    nconn);
	printf("},\"bench_cpu_s\":%.2f,\"ok\":%s}\n", bench_cpu,
	    (s->lost || s->dup || s->misrouted || s->reordered) ? "false" :
	    "true");
	(void)i;
}

