/*
 * config.c - the configuration file's "key = value" parser and loader.
 *
 * The keys are the rows of cfg_keys[] (config_keys.c); one value is
 * parsed and stored by cfg_set() (config_value.c); what SIGHUP changes
 * is in config_reload.c.
 *
 * Library code: problems are reported into the caller's buffer as
 * "FILE:LINE: reason", never logged.  Only cfg_apply_reload() logs.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "config_impl.h"
#include "log.h"
#include "token.h"

#define CFG_LINE_MAX	4096	/* longest line accepted */
#define CFG_SECRET_MAX	1024	/* longest db_password accepted */
#define CFG_KEY_MIN	32	/* shortest cluster key accepted */

struct cfg_parse {
	struct config	*cfg;
	struct buf	*errors;
	const char	*path;
	int		 lineno;
	int		 nerr;
	int		 line_of[CFG_KEYS_MAX];	/* line of each key */
};

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

/* Every key to its default, nothing derived; cfg is overwritten. */
static void
cfg_set_defaults(struct config *cfg)
{
	char	 why[256];
	size_t	 i;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < cfg_nkeys; i++) {
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
	if (cfg_hostport_parse(cfg->listen, k->min, k->max, &cfg->listen_host,
	    &cfg->listen_port, &hwhy) == -1) {
		snprintf(why, len, "listen: %s", hwhy);
		return -1;
	}
	if (cfg_redis_parse(cfg->redis, cfg, why, len) == -1)
		return -1;

	k = cfg_find("websocket_listen");
	free(cfg->websocket_host);
	cfg->websocket_host = NULL;
	cfg->websocket_port = 0;
	if (cfg->websocket_listen != NULL && cfg_hostport_parse(
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
		} else if (cfg_hostport_parse(cfg->metrics_listen, 1, 65535,
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
	for (i = 0; i < cfg_nkeys; i++)
		if (cfg_keys[i].type == CFG_STRING ||
		    cfg_keys[i].type == CFG_HOSTPORT)
			free_secret(FIELD(cfg, &cfg_keys[i], char *));
	free(cfg->path);
	free(cfg->listen_host);
	cfg_redis_clear(cfg);
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

