/*
 * upgrade.c - the binary upgrade's plumbing (see upgrade.h): exec of
 * the new binary with the node's descriptors, what it inherits, and
 * the messages between the two masters.
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "upgrade.h"

static char	*exe_path;		/* absolute, as started */
static char	*cfg_path;
static int	 exe_foreground, exe_verbose;

int
upgrade_remember(const char *argv0, int foreground, int verbose,
    const char *config_path)
{
	char	 cwd[PATH_MAX], cand[PATH_MAX];
	char	*path, *dir, *save;

	exe_foreground = foreground;
	exe_verbose = verbose;
	free(cfg_path);
	cfg_path = strdup(config_path);
	free(exe_path);
	exe_path = NULL;
	if (argv0 == NULL || cfg_path == NULL)
		return -1;
	if (argv0[0] == '/')
		exe_path = strdup(argv0);
	else if (strchr(argv0, '/') != NULL) {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return -1;
		if (snprintf(cand, sizeof(cand), "%s/%s", cwd, argv0) >=
		    (int)sizeof(cand))
			return -1;
		exe_path = strdup(cand);
	} else if ((path = getenv("PATH")) != NULL &&
	    (path = strdup(path)) != NULL) {
		/* as execvp would have found it */
		for (dir = strtok_r(path, ":", &save); dir != NULL &&
		    exe_path == NULL; dir = strtok_r(NULL, ":", &save))
			if (snprintf(cand, sizeof(cand), "%s/%s", dir,
			    argv0) < (int)sizeof(cand) && dir[0] == '/' &&
			    access(cand, X_OK) == 0)
				exe_path = strdup(cand);
		free(path);
	}
	return exe_path != NULL ? 0 : -1;
}

/* The descriptor survives the exec. */
static int
keep_open(int fd)
{
	int	 fl;

	if (fd < 0)
		return 0;
	if ((fl = fcntl(fd, F_GETFD)) == -1 ||
	    fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) == -1)
		return -1;
	return 0;
}

static void
put_fds(struct buf *b, const char *key, const int *fds, int n)
{
	int	 i;

	buf_printf(b, " %s=", key);
	for (i = 0; i < n; i++)
		buf_printf(b, "%s%d", i ? "," : "", fds[i]);
}

/* In the forked child: never returns. */
static void
child_exec(const struct node *n, int pidfd, int ctl_fd, int http_fd,
    const struct up_stats *st, int sock)
{
	struct buf	 env = BUF_INIT;
	sigset_t	 set;
	char		*argv[8];
	int		 i, k = 0, ok = 0;

	ok |= keep_open(sock) | keep_open(pidfd) | keep_open(ctl_fd) |
	    keep_open(http_fd);
	for (i = 0; i < n->nslots; i++) {
		ok |= keep_open(n->listen_fds[i]) |
		    keep_open(n->chans.fds[i][0]) |
		    keep_open(n->chans.fds[i][1]);
		if (n->ws_listen_fds != NULL)
			ok |= keep_open(n->ws_listen_fds[i]);
	}
	buf_printf(&env, "v=1 old=%d sock=%d pid=%d ctl=%d http=%d slots=%d "
	    "boot=%s upgrades=%" PRIu64 " failed=%" PRIu64 " handed=%"
	    PRIu64, (int)getppid(), sock, pidfd, ctl_fd, http_fd, n->nslots,
	    n->boot_id, st->upgrades, st->failed, st->handed);
	/* the names a changed file no longer gives (upgrade_cfg.c) */
	if (strchr(n->cfg.shm_name, ' ') == NULL)
		buf_printf(&env, " shm=%s", n->cfg.shm_name);
	buf_printf(&env, " frame=%zu cap=%d", n->cfg.max_frame_bytes,
	    n->cfg.max_online);
	put_fds(&env, "listen", n->listen_fds, n->nslots);
	if (n->ws_listen_fds != NULL)
		put_fds(&env, "ws", n->ws_listen_fds, n->nslots);
	for (i = 0; i < n->nslots; i++)
		buf_printf(&env, "%s%d,%d", i ? "," : " chan=",
		    n->chans.fds[i][0], n->chans.fds[i][1]);
	buf_append(&env, "", 1);
	if (ok != 0 || buf_used(&env) == 0 ||
	    setenv(UPGRADE_ENV, buf_head(&env), 1) == -1) {
		upgrade_fail(sock, "preparing the new binary's environment: "
		    "%s", strerror(errno));
		_exit(127);
	}
	argv[k++] = exe_path;
	if (exe_foreground)
		argv[k++] = "-d";
	if (exe_verbose)
		argv[k++] = "-v";
	argv[k++] = "-f";
	argv[k++] = cfg_path;
	argv[k] = NULL;
	/* the master blocks its signals for its signalfd: not inherited */
	sigemptyset(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
	execv(exe_path, argv);
	upgrade_fail(sock, "exec %s: %s", exe_path, strerror(errno));
	_exit(127);
}

pid_t
upgrade_spawn(const struct node *n, int pidfd, int ctl_fd, int http_fd,
    const struct up_stats *st, int *sock, char *err, size_t errlen)
{
	int	 sp[2], sz = 1024 * 1024;
	pid_t	 pid;

	if (exe_path == NULL) {
		snprintf(err, errlen, "the path chatd was started with is "
		    "not known");
		return -1;
	}
	if (access(exe_path, X_OK) == -1) {
		snprintf(err, errlen, "%s: %s", exe_path, strerror(errno));
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0, sp) == -1) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -1;
	}
	(void)setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	switch ((pid = fork())) {
	case -1:
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return -1;
	case 0:
		close(sp[0]);
		child_exec(n, pidfd, ctl_fd, http_fd, st, sp[1]);
		/* NOTREACHED */
	default:
		break;
	}
	close(sp[1]);
	*sock = sp[0];
	log_notice("upgrade: started %s (pid %d)", exe_path, (int)pid);
	return pid;
}

/* "a,b,c" into want descriptors; 0 or -1. */
static int
parse_fds(const char *s, int *out, int want)
{
	char	*end = (char *)s;	/* want == 0: s must be empty */
	long	 v;
	int	 i;

	for (i = 0; i < want; i++) {
		errno = 0;
		v = strtol(s, &end, 10);
		if (errno != 0 || end == s || v < 0 || v > INT_MAX ||
		    fcntl((int)v, F_GETFD) == -1)
			return -1;
		out[i] = (int)v;
		if (i + 1 < want && *end != ',')
			return -1;
		s = end + 1;
	}
	return *end == '\0' ? 0 : -1;
}

static int
cloexec(int fd)
{
	return fd < 0 ? 0 : fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int
upgrade_inherited(struct up_inherit *in, char *err, size_t errlen)
{
	const char	*v = getenv(UPGRADE_ENV);
	char		*copy, *tok, *save, *val, *listen = NULL, *ws = NULL,
			*chan = NULL;
	int		 i, version = 0, bad = 0, *cfds = NULL;
	long		 old = 0;

	memset(in, 0, sizeof(*in));
	in->sock = in->pidfd = in->ctl_fd = in->http_fd = -1;
	if (v == NULL)
		return 0;
	if ((copy = strdup(v)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", UPGRADE_ENV);
		return -1;
	}
	unsetenv(UPGRADE_ENV);
	for (tok = strtok_r(copy, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if ((val = strchr(tok, '=')) == NULL) {
			bad = 1;
			break;
		}
		*val++ = '\0';
		if (strcmp(tok, "v") == 0)
			version = atoi(val);
		else if (strcmp(tok, "old") == 0)
			old = atol(val);
		else if (strcmp(tok, "sock") == 0)
			in->sock = atoi(val);
		else if (strcmp(tok, "pid") == 0)
			in->pidfd = atoi(val);
		else if (strcmp(tok, "ctl") == 0)
			in->ctl_fd = atoi(val);
		else if (strcmp(tok, "http") == 0)
			in->http_fd = atoi(val);
		else if (strcmp(tok, "slots") == 0)
			in->nslots = atoi(val);
		else if (strcmp(tok, "boot") == 0)
			snprintf(in->boot_id, sizeof(in->boot_id), "%s", val);
		else if (strcmp(tok, "upgrades") == 0)
			in->upgrades = strtoull(val, NULL, 10);
		else if (strcmp(tok, "failed") == 0)
			in->failed = strtoull(val, NULL, 10);
		else if (strcmp(tok, "handed") == 0)
			in->handed = strtoull(val, NULL, 10);
		else if (strcmp(tok, "shm") == 0)
			snprintf(in->shm_name, sizeof(in->shm_name), "%s", val);
		else if (strcmp(tok, "frame") == 0)
			in->max_frame = (size_t)strtoull(val, NULL, 10);
		else if (strcmp(tok, "cap") == 0)
			in->capacity = (uint32_t)strtoul(val, NULL, 10);
		else if (strcmp(tok, "listen") == 0)
			listen = val;
		else if (strcmp(tok, "ws") == 0)
			ws = val;
		else if (strcmp(tok, "chan") == 0)
			chan = val;
	}
	in->old_pid = (pid_t)old;
	if (bad || version != 1 || in->nslots < 1 ||
	    in->nslots > ONLINE_MAX_SLOTS || in->sock < 0 || in->pidfd < 0 ||
	    listen == NULL || chan == NULL ||
	    (in->listen_fds = calloc(in->nslots, sizeof(int))) == NULL ||
	    (cfds = calloc(2 * in->nslots, sizeof(int))) == NULL ||
	    (ws != NULL && (in->ws_fds = calloc(in->nslots,
	    sizeof(int))) == NULL) ||
	    (in->chan_fds = calloc(in->nslots, sizeof(*in->chan_fds))) ==
	    NULL ||
	    parse_fds(listen, in->listen_fds, in->nslots) == -1 ||
	    (ws != NULL && parse_fds(ws, in->ws_fds, in->nslots) == -1) ||
	    parse_fds(chan, cfds, 2 * in->nslots) == -1) {
		snprintf(err, errlen, "%s: garbled or from another version "
		    "of chatd", UPGRADE_ENV);
		free(copy);
		free(cfds);
		free(in->listen_fds);
		free(in->ws_fds);
		free(in->chan_fds);
		in->listen_fds = in->ws_fds = NULL;
		in->chan_fds = NULL;
		return -1;
	}
	free(copy);
	for (i = 0; i < in->nslots; i++) {
		in->chan_fds[i][0] = cfds[2 * i];
		in->chan_fds[i][1] = cfds[2 * i + 1];
	}
	free(cfds);
	/* none of them goes further than this process */
	(void)cloexec(in->sock);
	(void)cloexec(in->pidfd);
	(void)cloexec(in->ctl_fd);
	(void)cloexec(in->http_fd);
	for (i = 0; i < in->nslots; i++) {
		(void)cloexec(in->listen_fds[i]);
		(void)cloexec(in->chan_fds[i][0]);
		(void)cloexec(in->chan_fds[i][1]);
		if (in->ws_fds != NULL)
			(void)cloexec(in->ws_fds[i]);
	}
	return 1;
}

int
upgrade_send(int sock, uint32_t type, uint32_t arg, const char *text)
{
	struct buf	 b = BUF_INIT;
	struct up_msg	 m;
	ssize_t		 r;

	m.type = type;
	m.arg = arg;
	if (buf_append(&b, &m, sizeof(m)) == -1 || (text != NULL &&
	    buf_append(&b, text, strlen(text)) == -1)) {
		buf_free(&b);
		errno = ENOMEM;
		return -1;
	}
	while ((r = send(sock, buf_head(&b), buf_used(&b), MSG_NOSIGNAL)) ==
	    -1 && errno == EINTR)
		;
	buf_free(&b);
	return r == -1 ? -1 : 0;
}

void
upgrade_fail(int sock, const char *fmt, ...)
{
	char	 why[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (sock >= 0)
		(void)upgrade_send(sock, UP_FAIL, 0, why);
}
