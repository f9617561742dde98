/*
 * upgrade_cfg.c - the new master of a binary upgrade meets the running
 * node with a configuration file that may have changed (upgrade.h).
 *
 * What it inherits (listeners, channels, session table, control and
 * metrics listeners) was made for the old file.  Here each is kept
 * when the new file still asks for it, replaced when the file names
 * another address, made when it is new and closed when it is gone;
 * what cannot change this way fails the upgrade with the reason, and
 * the old master goes on serving.  Every bind happens here, before the
 * new master reports ready, so a port that is taken fails the upgrade
 * before any connection moves.
 *
 * Closing an inherited listener here leaves the old master's copy: the
 * old address keeps accepting until the old workers have handed over,
 * and connections accepted on it stay (they are not tied to it).
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "channel.h"
#include "log.h"
#include "master.h"
#include "master_impl.h"
#include "online.h"
#include "upgrade.h"

static int	 new_table;	/* n->online was made here */
static char	*old_table;	/* the running table's name, to remove */

/*
 * Whether listening socket fd is bound to host:port as master_listen
 * would bind it (the first address getaddrinfo gives).
 */
static int
same_addr(int fd, const char *host, int port)
{
	struct sockaddr_storage	 ss;
	struct addrinfo		 hints, *res;
	socklen_t		 len = sizeof(ss);
	char			 p[16];
	int			 same = 0;

	if (fd < 0 || host == NULL ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(p, sizeof(p), "%d", port);
	if (getaddrinfo(host, p, &hints, &res) != 0)
		return 0;
	same = res->ai_addrlen == len &&
	    memcmp(res->ai_addr, &ss, len) == 0;
	freeaddrinfo(res);
	return same;
}

static void
close_all(int *fds, int n)
{
	int	 i;

	for (i = 0; fds != NULL && i < n; i++)
		if (fds[i] != -1) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/*
 * One listener kind (listen or websocket_listen): *out gets nslots
 * sockets for host:port (NULL host: none), inherited ones (old, nold,
 * may be NULL) when the address is the same, else new ones for the
 * first nold slots.  Slots from nold on get -1: spawn() binds them
 * when their worker starts, after the old workers are gone.
 */
static int
listeners(const char *what, const char *host, int port, int *old, int nold,
    int nslots, int **out, char *err, size_t errlen)
{
	int	 i, *fds, keep;

	*out = NULL;
	if (host == NULL) {
		if (old != NULL)
			log_notice("upgrade: %s removed: its listener closes "
			    "with the old workers; their connections stay",
			    what);
		close_all(old, nold);
		return 0;
	}
	if ((fds = calloc(nslots, sizeof(int))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", what);
		return -1;
	}
	for (i = 0; i < nslots; i++)
		fds[i] = -1;
	keep = old != NULL && same_addr(old[0], host, port);
	for (i = 0; i < nold && i < nslots; i++) {
		if (keep) {
			fds[i] = old[i];
			old[i] = -1;
			continue;
		}
		if ((fds[i] = master_listen(what, host, port, err,
		    errlen)) == -1) {
			close_all(fds, nslots);
			free(fds);
			return -1;
		}
	}
	/* a removed slot's copy: the old worker accepts there until it ends */
	close_all(old, nold);
	if (!keep && old != NULL)
		log_notice("upgrade: %s moves to %s:%d: the old address "
		    "closes with the old workers; their connections stay",
		    what, host, port);
	else if (!keep)
		log_notice("upgrade: %s %s:%d added", what, host, port);
	*out = fds;
	return 0;
}

/* The address the control socket fd is bound to, or "" */
static void
unix_path(int fd, char *path, size_t len)
{
	struct sockaddr_un	 sun;
	socklen_t		 sl = sizeof(sun);

	path[0] = '\0';
	memset(&sun, 0, sizeof(sun));
	if (fd >= 0 && getsockname(fd, (struct sockaddr *)&sun, &sl) == 0 &&
	    sun.sun_family == AF_UNIX)
		snprintf(path, len, "%.*s", (int)sizeof(sun.sun_path),
		    sun.sun_path);
}

/* *field (key) changed to what a restart applies: the running one stays. */
static int
keep_running(const char *key, char **field, const char *running, char *err,
    size_t errlen)
{
	log_warnx("upgrade: %s changed to %s: %s is kept until a restart",
	    key, *field, running);
	free(*field);
	if ((*field = strdup(running)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * The pid file stays the running one: its lock came with its descriptor,
 * and the path it has is the one to remove at exit.
 */
static int
pid_file(struct config *cfg, int pidfd, char *err, size_t errlen)
{
	struct stat	 a, b;
	char		 link[64], path[PATH_MAX];
	ssize_t		 n;

	if (fstat(pidfd, &a) == -1 || (stat(cfg->pid_file, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino))
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", pidfd);
	if ((n = readlink(link, path, sizeof(path) - 1)) <= 0)
		return 0;	/* no /proc: the file's name is trusted */
	path[n] = '\0';
	return keep_running("pid_file", &cfg->pid_file, path, err, errlen);
}

/* Control socket and metrics listener: keep, replace, add or drop. */
static int
ops_listeners(struct config *cfg, struct up_inherit *up, char *err,
    size_t errlen)
{
	char	 path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];

	if (up->http_fd != -1 && (cfg->metrics_listen == NULL ||
	    !same_addr(up->http_fd, cfg->metrics_host, cfg->metrics_port))) {
		/* ctl_init binds the new one (-1), or none */
		log_notice("upgrade: metrics_listen %s", cfg->metrics_listen ==
		    NULL ? "removed" : "moves to a new address");
		close(up->http_fd);
		up->http_fd = -1;
	}
	unix_path(up->ctl_fd, path, sizeof(path));
	if (up->ctl_fd != -1 && cfg->control_socket == NULL) {
		log_notice("upgrade: control_socket removed (%s stays until "
		    "the old master exits)", path);
		close(up->ctl_fd);
		up->ctl_fd = -1;
	} else if (up->ctl_fd != -1 && path[0] != '\0' &&
	    strcmp(path, cfg->control_socket) != 0) {
		/*
		 * chatctl follows the upgrade on the socket it asked: the
		 * running one stays, named as it is (its path is what is
		 * removed at exit).
		 */
		return keep_running("control_socket", &cfg->control_socket,
		    path, err, errlen);
	}
	return 0;
}

/*
 * The name of a new table when the file keeps the name but changes the
 * size: the running name with '~' added, or without it when it has one
 * (the two alternate from one upgrade to the next).  -1: too long.
 */
static int
alt_name(const char *running, const char *base, char *out, size_t len)
{
	size_t	 n = strlen(base);

	if (strncmp(running, base, n) == 0 && strcmp(running + n, "~") == 0)
		return snprintf(out, len, "%s", base) < (int)len ? 0 : -1;
	if (n + 1 > NAME_MAX || n + 2 > len)
		return -1;
	snprintf(out, len, "%s~", base);
	return 0;
}

/*
 * The session table.  Old and new workers serve side by side while the
 * slots move, each routing by the table it maps (chatd.c): the running
 * table is kept, its slot bound grown for more workers, unless the file
 * asks for another size (max_online) or name (shm_name), or for fewer
 * workers: then a new one is filled from it (online_copy.c) and the old
 * name goes at the end.
 */
static int
table(struct node *n, struct up_inherit *up, int nold, char *err,
    size_t errlen)
{
	struct config	*cfg = &n->cfg;
	struct online	*from;
	const char	*running = up->shm_name[0] != '\0' ? up->shm_name :
			    cfg->shm_name;
	uint32_t	 cap = up->capacity > 0 ? up->capacity :
			    (uint32_t)cfg->max_online;
	char		 alt[NAME_MAX + 2], *name;
	size_t		 copied = 0;
	int		 same;

	same = strcmp(running, cfg->shm_name) == 0 ||
	    (alt_name(running, cfg->shm_name, alt, sizeof(alt)) == 0 &&
	    strcmp(alt, cfg->shm_name) == 0);
	if ((from = online_attach(running, cap, nold, err, errlen)) == NULL)
		return -1;
	/*
	 * Fewer workers take a new table too: the new workers have channels
	 * only to the remaining slots, so they must not see the removed
	 * slots' users (away for them until adopted under a remaining slot).
	 */
	if (same && cap == (uint32_t)cfg->max_online && n->nslots >= nold) {
		n->online = from;
		if (n->nslots > nold &&
		    online_set_slots(n->online, n->nslots) == -1) {
			snprintf(err, errlen, "workers = %d: more than the "
			    "session table holds", n->nslots);
			return -1;
		}
		name = strdup(running);
	} else {
		if (same && alt_name(running, cfg->shm_name, alt,
		    sizeof(alt)) == -1) {
			online_destroy(from, 0);
			snprintf(err, errlen, "shm_name %s: too long to make a "
			    "new table beside it: a restart is needed",
			    cfg->shm_name);
			return -1;
		}
		name = strdup(same ? alt : cfg->shm_name);
		n->online = name == NULL ? NULL : online_copy(from, name,
		    (uint32_t)cfg->max_online, n->nslots, &copied, err,
		    errlen);
		if (n->online == NULL) {
			online_destroy(from, 0);
			free(name);
			return -1;
		}
		/* its leaving marks hold new logins back (chat_leave.c) */
		n->online_old = from;
		new_table = 1;
		if ((old_table = strdup(running)) == NULL)
			log_warnx("upgrade: out of memory: %s stays", running);
		log_notice("upgrade: a new session table %s (max_online = %d) "
		    "replaces %s (%u): %zu users online copied", name,
		    cfg->max_online, running, cap, copied);
	}
	if (name == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (strcmp(name, cfg->shm_name) != 0)
		log_notice("upgrade: the session table keeps its name %s; "
		    "shm_name %s is used from the next restart", name,
		    cfg->shm_name);
	free(cfg->shm_name);
	cfg->shm_name = name;	/* the name this master removes at exit */
	return 0;
}

int
upgrade_cfg_new_table(void)
{
	return new_table;
}

void
upgrade_cfg_done(struct node *n)
{
	/* the workers forked so far keep their own mapping */
	if (n->online_old != NULL)
		online_destroy(n->online_old, 0);
	n->online_old = NULL;
	if (old_table == NULL)
		return;
	if (shm_unlink(old_table) == -1 && errno != ENOENT)
		log_warn("upgrade: removing the old session table %s",
		    old_table);
	else
		log_info("upgrade: the old session table %s removed",
		    old_table);
	free(old_table);
	old_table = NULL;
}

int
upgrade_cfg_apply(struct node *n, struct up_inherit *up, char *err,
    size_t errlen)
{
	struct config		*cfg = &n->cfg;
	struct channel_set	 more;
	size_t			 max_frame;
	int			 i, nold = up->nslots;

	n->nslots = cfg->workers;
	/*
	 * The old workers' channel buffers and reads are sized for their
	 * max_frame_bytes: a new worker must not send them more.
	 */
	max_frame = cfg->max_frame_bytes;
	if (up->max_frame > 0 && max_frame > up->max_frame) {
		snprintf(err, errlen, "max_frame_bytes raised from %zu to "
		    "%zu: that needs a restart", up->max_frame, max_frame);
		return -1;
	}
	if (up->max_frame > max_frame)
		max_frame = up->max_frame;	/* what the old ones send */
	if (ops_listeners(cfg, up, err, errlen) == -1 ||
	    pid_file(cfg, up->pidfd, err, errlen) == -1)
		return -1;

	if (listeners("listen", cfg->listen_host, cfg->listen_port,
	    up->listen_fds, nold, n->nslots, &n->listen_fds, err,
	    errlen) == -1)
		return -1;
	if (listeners("websocket_listen", cfg->websocket_host,
	    cfg->websocket_port, up->ws_fds, nold, n->nslots,
	    &n->ws_listen_fds, err, errlen) == -1) {
		close_all(n->listen_fds, n->nslots);
		return -1;
	}
	/* they belong to n (or were closed) now */
	free(up->listen_fds);
	free(up->ws_fds);
	up->listen_fds = up->ws_fds = NULL;

	if (table(n, up, nold, err, errlen) == -1)
		return -1;

	/* the old slots' channels, and new ones for the added slots */
	n->chans.nslots = n->nslots;
	n->chans.max_msg = max_frame + cfg->max_name_bytes + 256 +
	    sizeof(struct chan_hdr);	/* as channel_create counts */
	if ((n->chans.fds = calloc(n->nslots, sizeof(*n->chans.fds))) ==
	    NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < nold && i < n->nslots; i++) {
		n->chans.fds[i][0] = up->chan_fds[i][0];
		n->chans.fds[i][1] = up->chan_fds[i][1];
	}
	/* fewer workers: the removed slots' channels are relayed */
	if (merge_setup(n->nslots, nold, up->chan_fds, &n->chans) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (nold > n->nslots)
		log_notice("upgrade: workers %d -> %d: the connections of the "
		    "removed workers join the remaining ones", nold,
		    n->nslots);
	free(up->chan_fds);
	up->chan_fds = NULL;
	if (n->nslots > nold) {
		if (channel_create(&more, n->nslots - nold, max_frame +
		    cfg->max_name_bytes + 256, err, errlen) == -1)
			return -1;
		for (i = nold; i < n->nslots; i++) {
			n->chans.fds[i][0] = more.fds[i - nold][0];
			n->chans.fds[i][1] = more.fds[i - nold][1];
		}
		free(more.fds);
		log_notice("upgrade: workers %d -> %d: the new slots start "
		    "empty once the old workers have handed over", nold,
		    n->nslots);
	}
	return 0;
}
