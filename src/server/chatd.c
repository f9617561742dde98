/*
 * chatd.c - main: options, configuration, listening sockets, session
 * table, channels, pid file; then the master takes over.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pwd.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "node.h"
#include "ctl.h"
#include "guard.h"
#include "log.h"
#include "master.h"
#include "store.h"
#include "upgrade.h"
#include "worker.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

static void
usage(void)
{
	fprintf(stderr, "usage: chatd [-dnv] [-f file]\n");
	exit(1);
}

/*
 * One SO_REUSEPORT socket per worker: the kernel spreads connections.
 * what names the key in messages; *fdsp gets nslots sockets.
 */
static int
listen_sockets(struct node *n, const char *what, const char *host,
    int portnum, int **fdsp)
{
	char	 err[256];
	int	 i, *fds;

	if ((fds = *fdsp = calloc(n->nslots, sizeof(int))) == NULL)
		fatal("calloc");
	for (i = 0; i < n->nslots; i++)
		fds[i] = -1;
	for (i = 0; i < n->nslots; i++)
		if ((fds[i] = master_listen(what, host, portnum, err,
		    sizeof(err))) == -1) {
			log_warnx("%s", err);
			return -1;
		}
	return 0;
}

/*
 * The pid file, opened as root: never through a symbolic link, only a
 * regular file, and not truncated before its lock is ours, so that a
 * second chatd (or a planted link) cannot clobber anything.  The lock
 * lives as long as the master; its descriptor is kept.
 */
static int
pidfile_open(const char *path)
{
	struct stat	 st;
	char		 line[32];
	ssize_t		 r;
	int		 fd;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK, 0644);
	if (fd == -1) {
		if (errno == ELOOP)
			log_warnx("pid file %s: is a symbolic link; refused",
			    path);
		else
			log_warn("pid file %s", path);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		log_warnx("pid file %s: not a regular file; refused", path);
		close(fd);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		r = pread(fd, line, sizeof(line) - 1, 0);
		line[r > 0 ? r : 0] = '\0';
		line[strcspn(line, "\n")] = '\0';
		log_warnx("already running with pid %s (%s)", line[0] != '\0' ?
		    line : "?", path);
		close(fd);
		return -1;
	}
	return fd;
}

static int
pidfile_write(int fd, const char *path)
{
	char	 line[32];
	int	 len;

	len = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, line, len, 0) != len) {
		log_warn("pid file %s", path);
		return -1;
	}
	return 0;
}

/*
 * At exit: the master may no longer be allowed to unlink in the pid
 * file's directory (it runs as user); an empty file says "not running"
 * as well, and the lock goes with the descriptor.
 */
static void
pidfile_remove(int fd, const char *path)
{
	if (unlink(path) == -1 && ftruncate(fd, 0) == -1)
		log_warn("pid file %s", path);
	close(fd);
}

/*
 * What the master made as root and must still remove as user: the
 * session table in /dev/shm (sticky: only its owner may unlink it) and
 * the control socket; and the log file, which SIGUSR1 reopens (its
 * group stays).
 */
static int
give_to_user(const struct config *cfg, int log_opened, uid_t uid, gid_t gid)
{
	int	 fd;

	if (log_opened && strcmp(cfg->log_file, "stderr") != 0 &&
	    strcmp(cfg->log_file, "syslog") != 0 &&
	    lchown(cfg->log_file, uid, (gid_t)-1) == -1)
		log_warn("log %s: chown", cfg->log_file);

	if (cfg->shm_name != NULL) {
		if ((fd = shm_open(cfg->shm_name, O_RDWR | O_NOFOLLOW, 0)) ==
		    -1 || fchown(fd, uid, gid) == -1) {
			log_warn("session table %s: chown", cfg->shm_name);
			if (fd != -1)
				close(fd);
			return -1;
		}
		close(fd);
	}
	if (cfg->control_socket != NULL &&
	    lchown(cfg->control_socket, uid, gid) == -1) {
		log_warn("control_socket %s: chown", cfg->control_socket);
		return -1;
	}
	return 0;
}

/*
 * OpenBSD style: once everything that needs root is open (listening
 * sockets, the metrics listener, the control socket, the session
 * table, the log and pid files), the master becomes the configured
 * user for good, so nothing that parses network input (HTTP, chatctl,
 * the clients in the workers) runs as root.  Its workers, forked
 * later, are the same user: it may signal them.
 */
static int
master_drop_privileges(const struct config *cfg, int log_opened)
{
	struct passwd	*pw;
	uid_t		 uid;
	gid_t		 gid;

	if (cfg->user == NULL || geteuid() != 0)
		return 0;
	if ((pw = getpwnam(cfg->user)) == NULL) {
		log_warnx("user = %s: no such user", cfg->user);
		return -1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (uid == 0)
		return 0;		/* allow_root = yes, said so */
	if (give_to_user(cfg, log_opened, uid, gid) == -1)
		return -1;
	if (initgroups(pw->pw_name, gid) == -1 ||
	    setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		log_warn("dropping privileges to %s", cfg->user);
		return -1;
	}
	if (setuid(0) != -1 || seteuid(0) != -1)
		fatalx("could become root again after dropping privileges");
	log_info("master runs as %s (uid %d, gid %d) from now on", cfg->user,
	    (int)uid, (int)gid);
	return 0;
}

/* Reloads read the file as user: say so at start, not at the first HUP. */
static void
config_readable_check(const struct config *cfg, const char *path)
{
	int	 fd;

	if (cfg->user == NULL || geteuid() != 0 ||
	    worker_as_user(cfg, 1) == -1)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	(void)worker_as_user(cfg, 0);
	if (fd == -1)
		log_warnx("%s is not readable by user %s: reloads will fail "
		    "(chown %s %s)", path, cfg->user, cfg->user, path);
	else
		close(fd);
}

static void
daemonize(void)
{
	int	 fd, i;

	/* fork, setsid, fork again: no controlling terminal, ever */
	for (i = 0; i < 2; i++) {
		switch (fork()) {
		case -1:
			fatal("fork");
		case 0:
			break;
		default:
			_exit(0);
		}
		if (i == 0 && setsid() == -1)
			fatal("setsid");
	}
	if (chdir("/") == -1)
		fatal("chdir /");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

/* Up to the hard limit: every client is a descriptor. */
static void
raise_nofile(void)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * RLIMIT_NICE 20, soft and hard, while still root: a worker's history
 * thread at SCHED_IDLE may then be boosted to SCHED_OTHER when someone
 * waits for it (histprio.h); inherited across the drop to user.
 */
static void
raise_nice(void)
{
	struct rlimit	 rl, want;

	if (getrlimit(RLIMIT_NICE, &rl) == -1 || rl.rlim_cur >= 20)
		return;
	want.rlim_cur = 20;
	want.rlim_max = rl.rlim_max < 20 ? 20 : rl.rlim_max;
	if (setrlimit(RLIMIT_NICE, &want) == 0)
		return;
	/* not root: as far as the hard limit goes */
	rl.rlim_cur = rl.rlim_max < 20 ? rl.rlim_max : 20;
	(void)setrlimit(RLIMIT_NICE, &rl);
}

/*
 * Create the schema and find configuration mistakes before the workers
 * start: in a short-lived child, as the workers' user, so that the
 * master itself never opens the store.
 */
static int
store_preflight(const struct config *cfg)
{
	struct store_opts	 opts;
	char			 err[256], warn[256], spec[256];
	pid_t			 pid;
	int			 status;

	switch ((pid = fork())) {
	case -1:
		log_warn("fork");
		return -1;
	case 0:
		break;
	default:
		while (waitpid(pid, &status, 0) == -1)
			if (errno != EINTR) {
				log_warn("waitpid");
				return -1;
			}
		return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
	}
	log_set_role("store check");
	if (worker_as_user(cfg, 1) == -1)
		_exit(1);
	memset(&opts, 0, sizeof(opts));
	opts.pool_init = 1;
	opts.pool_max = 1;
	opts.connect_timeout_ms = cfg->db_connect_timeout_ms;
	opts.query_timeout_ms = cfg->db_query_timeout_ms;
	opts.busy_timeout_ms = cfg->sqlite_busy_timeout_ms;
	opts.password = cfg->db_password;
	opts.tls = store_tls_mode(cfg->db_tls);
	opts.tls_ca = cfg->db_tls_ca;
	opts.tls_cert = cfg->db_tls_cert;
	opts.tls_key = cfg->db_tls_key;
	ctl_storage_public(cfg->storage, spec, sizeof(spec));
	if (store_check(cfg->storage, &opts, warn, sizeof(warn), err,
	    sizeof(err)) == -1) {
		log_warnx("storage %s: %s", spec, err);
		_exit(1);
	}
	if (warn[0] != '\0')
		log_warnx("storage %s: %s", spec, warn);
	_exit(0);
}

/*
 * The new master of a binary upgrade (upgrade.h): the running node's
 * listeners, channels, control sockets and pid file come from the old
 * master, which is our parent; the session table is mapped as it is.
 *
 * Why the table is adopted, not rebuilt from the handed sessions: old
 * and new workers serve side by side while the slots move one at a
 * time, and each routes chats by looking the recipient up in the
 * table and writing to that slot's channel.  One table and the same
 * channels keep every user reachable through the whole upgrade (a
 * slot's channel keeps what is sent to it while its worker changes,
 * as after a crash); two tables would hide each half's users from the
 * other.  The price: the table's layout must not change between the
 * two binaries (online_attach checks magic, version and sizes and
 * refuses, and the upgrade fails, leaving the old node serving).
 * Start-up failures are told to the old master before exiting.
 */
static int
upgraded_main(struct node *n, struct up_inherit *up)
{
	char	 err[256];
	int	 i, rc;

	log_set_role("master");
	if (log_init(n->foreground ? "stderr" : n->cfg.log_file,
	    n->cfg.log_level) == -1) {
		upgrade_fail(up->sock, "log %s: %s", n->cfg.log_file,
		    strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	raise_nice();
	if (worker_privileges_check(&n->cfg, err, sizeof(err)) == -1) {
		upgrade_fail(up->sock, "%s", err);
		return 1;
	}
	if (store_preflight(&n->cfg) == -1) {
		upgrade_fail(up->sock, "the storage check failed (see the log)");
		return 1;
	}
	/* listeners, channels and table for a file that may have changed */
	if (upgrade_cfg_apply(n, up, err, sizeof(err)) == -1) {
		upgrade_fail(up->sock, "%s", err);
		return 1;
	}
	if ((n->guard = guard_create(n->nslots, err, sizeof(err))) == NULL) {
		upgrade_fail(up->sock, "%s", err);
		online_destroy(n->online, upgrade_cfg_new_table());
		return 1;
	}
	if (master_init(n, up->ctl_fd, up->http_fd, err, sizeof(err)) == -1) {
		upgrade_fail(up->sock, "%s", err);
		online_destroy(n->online, upgrade_cfg_new_table());
		return 1;
	}
	/* the control socket's path stays the old master's until the end */
	ctl_keep_path(1);
	if (pipe2(n->master_pipe, O_CLOEXEC) == -1) {
		upgrade_fail(up->sock, "pipe: %s", strerror(errno));
		online_destroy(n->online, upgrade_cfg_new_table());
		return 1;
	}
	snprintf(n->boot_id, sizeof(n->boot_id), "%s", up->boot_id);
	master_own_fd(up->pidfd);
	ctl_storage_public(n->cfg.storage, err, sizeof(err));
	log_notice("chatd %s starting as an upgrade of pid %d: %s, %d "
	    "workers, storage %s", PACKAGE_VERSION, (int)up->old_pid,
	    n->cfg.listen, n->nslots, err);
	master_upgrading(up->sock, up->old_pid, up->nslots, up->upgrades,
	    up->failed, up->handed);

	rc = master_run(n);

	online_destroy(n->online, !master_upgraded());
	guard_destroy(n->guard);
	channel_destroy(&n->chans);
	if (master_upgraded())
		close(up->pidfd);
	else
		pidfile_remove(up->pidfd, n->cfg.pid_file);
	for (i = 0; i < n->nslots; i++) {
		if (n->listen_fds[i] != -1)
			close(n->listen_fds[i]);
		if (n->ws_listen_fds != NULL && n->ws_listen_fds[i] != -1)
			close(n->ws_listen_fds[i]);
	}
	free(n->listen_fds);
	free(n->ws_listen_fds);
	cfg_free(&n->cfg);
	return rc;
}

int
main(int argc, char *argv[])
{
	struct node	 n;
	struct up_inherit up;
	struct buf	 errs = BUF_INIT;
	char		 err[256];
	const char	*path = SYSCONFDIR "/chatd.conf";
	uint64_t	 boot;
	int		 ch, check_only = 0, verbose = 0, rc, pidfd, upgrading;

	memset(&n, 0, sizeof(n));
	while ((ch = getopt(argc, argv, "df:nv")) != -1) {
		switch (ch) {
		case 'd':
			n.foreground = 1;
			break;
		case 'f':
			path = optarg;
			break;
		case 'n':
			check_only = 1;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (argc != optind)
		usage();
	n.config_path = path;

	/* started by chatctl upgrade: the old master's descriptors */
	if ((upgrading = upgrade_inherited(&up, err, sizeof(err))) == -1) {
		fprintf(stderr, "chatd: %s\n", err);
		return 1;
	}
	if (cfg_load(&n.cfg, path, &errs) == -1) {
		fprintf(stderr, "%.*s", (int)buf_used(&errs), buf_head(&errs));
		if (upgrading)
			upgrade_fail(up.sock, "the configuration has errors: "
			    "%.*s", (int)buf_used(&errs), buf_head(&errs));
		if (check_only)
			fprintf(stderr, "configuration has errors\n");
		buf_free(&errs);
		cfg_free(&n.cfg);
		return 1;
	}
	buf_free(&errs);
	if (check_only) {
		printf("configuration OK\n");
		cfg_free(&n.cfg);
		return 0;
	}
	/* reloads read it again after daemonize() moved us to "/" */
	if ((n.config_path = realpath(path, NULL)) == NULL)
		n.config_path = path;
	if (upgrade_remember(argv[0], n.foreground, verbose,
	    n.config_path) == -1)
		fprintf(stderr, "chatd: %s not found: upgrades will fail\n",
		    argv[0]);
	if (upgrading) {
		rc = upgraded_main(&n, &up);
		if (n.config_path != path)
			free((char *)n.config_path);	/* from realpath() */
		return rc;
	}
	if (verbose)
		n.cfg.log_level = LOG_DEBUG;
	if (log_init(n.foreground ? "stderr" : n.cfg.log_file,
	    n.cfg.log_level) == -1) {
		fprintf(stderr, "chatd: log %s: %s\n", n.cfg.log_file,
		    strerror(errno));
		return 1;
	}
	log_set_role("master");
	/* workers run as root only when the configuration says so */
	if (worker_privileges_check(&n.cfg, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		cfg_free(&n.cfg);
		return 1;
	}

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	raise_nice();
	n.nslots = n.cfg.workers;
	if ((pidfd = pidfile_open(n.cfg.pid_file)) == -1)
		return 1;
	/* as the workers' user: the store must be theirs to open */
	if (store_preflight(&n.cfg) == -1) {
		if (n.cfg.user != NULL)
			log_warnx("the storage must be readable and writable "
			    "by user %s (an SQLite file and its directory)",
			    n.cfg.user);
		goto fail;
	}
	if (listen_sockets(&n, "listen", n.cfg.listen_host,
	    n.cfg.listen_port, &n.listen_fds) == -1)
		goto fail;
	if (n.cfg.websocket_listen != NULL && listen_sockets(&n,
	    "websocket_listen", n.cfg.websocket_host, n.cfg.websocket_port,
	    &n.ws_listen_fds) == -1)
		goto fail;
	/* the bound port proves no live instance owns this table name */
	n.online = online_create(n.cfg.shm_name, n.cfg.max_online, n.nslots,
	    err, sizeof(err));
	if (n.online == NULL) {
		log_warnx("session table %s: %s", n.cfg.shm_name, err);
		goto fail;
	}
	/* per-address and failed-login limits, shared by the workers */
	if ((n.guard = guard_create(n.nslots, err, sizeof(err))) == NULL) {
		log_warnx("%s", err);
		online_destroy(n.online, 1);
		goto fail;
	}
	if (channel_create(&n.chans, n.nslots, n.cfg.max_frame_bytes +
	    n.cfg.max_name_bytes + 256, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		online_destroy(n.online, 1);
		goto fail;
	}
	/* control socket and metrics listener: errors still reach stderr */
	if (master_init(&n, -1, -1, err, sizeof(err)) == -1) {
		channel_destroy(&n.chans);
		online_destroy(n.online, 1);
		goto fail;
	}
	if (pipe2(n.master_pipe, O_CLOEXEC) == -1)
		fatal("pipe");
	if (getrandom(&boot, sizeof(boot), 0) != sizeof(boot))
		boot = ((uint64_t)time(NULL) << 32) ^ (uint64_t)getpid();
	snprintf(n.boot_id, sizeof(n.boot_id), "%016llx",
	    (unsigned long long)boot);

	if (!n.foreground)
		daemonize();
	config_readable_check(&n.cfg, n.config_path);
	if (pidfile_write(pidfd, n.cfg.pid_file) == -1 ||
	    master_drop_privileges(&n.cfg, !n.foreground) == -1) {
		online_destroy(n.online, 1);
		goto fail;
	}
	master_own_fd(pidfd);
	/* the spec may hold a password: log it without */
	ctl_storage_public(n.cfg.storage, err, sizeof(err));
	log_notice("chatd %s starting: %s, %d workers, storage %s",
	    PACKAGE_VERSION, n.cfg.listen, n.nslots, err);

	rc = master_run(&n);

	/* handed to a new master: its table, pid file and sockets now */
	online_destroy(n.online, !master_upgraded());
	guard_destroy(n.guard);
	channel_destroy(&n.chans);
	if (master_upgraded())
		close(pidfd);
	else
		pidfile_remove(pidfd, n.cfg.pid_file);
	for (ch = 0; ch < n.nslots; ch++) {
		if (n.listen_fds[ch] != -1)
			close(n.listen_fds[ch]);
		if (n.ws_listen_fds != NULL && n.ws_listen_fds[ch] != -1)
			close(n.ws_listen_fds[ch]);
	}
	free(n.listen_fds);
	free(n.ws_listen_fds);
	cfg_free(&n.cfg);
	if (n.config_path != path)
		free((char *)n.config_path);	/* from realpath() */
	return rc;
fail:
	pidfile_remove(pidfd, n.cfg.pid_file);
	return 1;
}
