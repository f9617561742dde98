/*
 * ctl.h - the master's control plane: the chatctl(1) socket, the HTTP
 * metrics and health endpoint (metrics.c), and the small polled server
 * both are built on.  No libev, no database, no Redis: the master polls
 * the descriptors handed out here in its own loop (master.c).
 *
 * Control protocol (control_socket): the client sends one line,
 *	status | stats | online | kick UID | reload | upgrade | stop
 * and reads one JSON object, {"ok":true,...} or {"ok":false,"error":S},
 * until the server closes the connection.  Only uid 0 and the uid the
 * master runs as are served (SO_PEERCRED).
 */
#ifndef CHATD_CTL_H
#define CHATD_CTL_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "node.h"

/* ---- a polled server: one request per connection, then close ------- */

struct ctl_server;
struct up_stats;

/* What a server's input callback made of the bytes received so far. */
enum ctl_input {
	CTL_MORE,		/* need more */
	CTL_REPLY,		/* the reply is in out: written, closed */
	CTL_CLOSE		/* close at once */
};

struct ctl_server_ops {
	/*
	 * A new connection.  0 to serve it; -1 to refuse it: what was
	 * appended to out is written, then the connection closes.
	 */
	int	(*accept)(void *arg, int fd, struct buf *out);
	/*
	 * The bytes received so far (never more than max_request).  eof
	 * is set when the peer will send nothing more.
	 */
	enum ctl_input (*input)(void *arg, const char *p, size_t len,
		    int eof, struct buf *out);
	/* The request did not fit in max_request bytes: reply in out. */
	void	(*too_big)(void *arg, struct buf *out);
};

/*
 * Serve the listening socket lfd (non-blocking; taken over).  Each
 * connection has timeout seconds from accept to the last byte written;
 * at most max_clients at once (more wait in the backlog).  NULL on
 * ENOMEM.
 */
struct ctl_server *ctl_server_new(int lfd, const char *name,
	    const struct ctl_server_ops *ops, void *arg, size_t max_request,
	    double timeout, int max_clients);
/* Close every descriptor; NULL is fine. */
void	ctl_server_free(struct ctl_server *s);
/* The pollfds it needs now (at most 1 + max_clients); returns how many. */
int	ctl_server_pollfds(struct ctl_server *s, struct pollfd *pfd, int room);
/* Handle the revents of the n pollfds the last ctl_server_pollfds gave. */
void	ctl_server_events(struct ctl_server *s, const struct pollfd *pfd,
	    int n);
/* Close clients past their deadline; ms until the next one, or -1. */
int	ctl_server_expire(struct ctl_server *s, double now);

/* ---- what the master lends the control plane ----------------------- */

struct ctl_env {
	struct node	*node;
	time_t		 started;		/* the master's start, wall clock */
	/*
	 * "running", "retrying" (could not start: tried again, also while
	 * the next try has not opened its store), "respawning", "handed
	 * over", "taking over" or "stopped"
	 */
	const char	*(*slot_state)(int slot);
	/* The SIGHUP path: 0 reloaded, -1 with the reasons in errs. */
	int		(*reload)(struct buf *errs);
	/* The SIGTERM path. */
	void		(*stop)(void);
	/* chatctl upgrade (upgrade.h): 0 started, -1 with why in errs. */
	int		(*upgrade)(struct buf *errs);
	const struct up_stats *(*upgrade_stats)(void);
	/* listeners inherited from an upgrade's old master, or -1: bind */
	int		 ctl_fd;
	int		 http_fd;
};

/*
 * Open what the configuration asks for: control_socket (mode 0660; a
 * stale socket of a dead instance is replaced, a live one is an
 * error) and metrics_listen.  Before daemonizing, so that errors reach
 * the terminal.  0 or -1 with err.
 */
int	ctl_init(const struct ctl_env *env, char *err, size_t errlen);
/* Pollfds for every server (room: CTL_MAX_POLLFDS is always enough). */
int	ctl_pollfds(struct pollfd *pfd, int room);
void	ctl_events(const struct pollfd *pfd, int n);
/* Expire slow clients; ms until the next deadline, or -1. */
int	ctl_expire(double now);
/* In a forked worker: close the master's descriptors, unlink nothing. */
void	ctl_child(void);
/* The master exits: close everything, remove the control socket. */
void	ctl_shutdown(void);
/* The listening sockets (an upgrade passes them on); -1: none. */
void	ctl_listen_fds(int *ctl_fd, int *http_fd);
/* Stop (1) or resume (0) accepting: the new master of an upgrade does. */
void	ctl_pause(int on);
/* Leave the control socket's path at exit (it is another master's). */
void	ctl_keep_path(int keep);

#define CTL_MAX_CLIENTS		16	/* control connections at once */
#define CTL_HTTP_MAX_CLIENTS	32	/* metrics connections at once */
#define CTL_MAX_POLLFDS		(2 + CTL_MAX_CLIENTS + CTL_HTTP_MAX_CLIENTS)

/* ---- shared by ctl.c and metrics.c ---------------------------------- */

/* s as a JSON string (quoted, escaped) appended to out. */
int	ctl_json_str(struct buf *out, const char *s);
/* The storage spec without its password ("mysql://u@h/db"). */
void	ctl_storage_public(const char *spec, char *out, size_t len);

#define CTL_STALL_SECONDS	10

#endif
