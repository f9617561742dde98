/*
 * upgrade.h - zero-downtime binary upgrade: the plumbing between the
 * old master and the new one it starts (the state machine is in
 * master.c).
 *
 * The old master forks and execs the binary chatd was started with
 * (its path re-read from disk), same options.  The child inherits,
 * named in the environment variable CHATD_UPGRADE: the listening
 * sockets, the channels between worker slots, the control and metrics
 * listeners, the pid file (with its lock), one end of a SOCK_SEQPACKET
 * socketpair to the old master, the boot id and the counters.  It maps
 * the old session table by name (online_attach).
 *
 * Over the socketpair, each datagram is {type, arg} and a payload:
 *	new -> old	UP_READY, UP_FAIL (payload: why), UP_PREPARED
 *			(slot), UP_TAKEN (slot)
 *	old -> new	UP_PREPARE (slot), UP_BEGIN (slot),
 *			HANDOVER_MSG_KEEP (conn; record and socket,
 *			handover.c), UP_DONE (slot)
 * Per slot: PREPARE starts the new worker, which opens its store and
 * all and waits; once PREPARED, the old worker hands over (SIGUSR2) and
 * exits; BEGIN, the connections, DONE go to the new master, which
 * forwards them to its waiting worker (TAKEN).  The connections wait
 * only for the old worker's last writes and the passing, not for a
 * worker's start.
 */
#ifndef CHATD_UPGRADE_H
#define CHATD_UPGRADE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "node.h"

#define UPGRADE_ENV		"CHATD_UPGRADE"
#define UPGRADE_READY_SECONDS	60.0	/* the new master reports ready */
#define UPGRADE_SLOT_SECONDS	60.0	/* one slot handed and taken */
/* a worker told to hand over: a frame boundary, then it exits so */
#define CHATD_EXIT_HANDED	3

enum up_type {
	UP_READY	= 0x101,
	UP_FAIL		= 0x102,
	UP_TAKEN	= 0x103,
	UP_BEGIN	= 0x104,
	UP_DONE		= 0x105,
	UP_PREPARE	= 0x106,
	UP_PREPARED	= 0x107,
};

struct up_msg {
	uint32_t	type;
	uint32_t	arg;
};

/* What the new master inherits (upgrade_inherited). */
struct up_inherit {
	int		 sock;		/* to the old master */
	int		 pidfd;
	int		 ctl_fd;	/* -1: none */
	int		 http_fd;	/* -1: none */
	int		 nslots;
	int		*listen_fds;	/* nslots */
	int		*ws_fds;	/* nslots, or NULL */
	int		(*chan_fds)[2];	/* nslots */
	char		 boot_id[17];
	char		 shm_name[256];	/* the running table; "" from older binaries */
	size_t		 max_frame;	/* the running max_frame_bytes; 0: unknown */
	uint32_t	 capacity;	/* the running table's max_online; 0: unknown */
	pid_t		 old_pid;
	uint64_t	 upgrades, failed, handed;	/* counters so far */
};

/* Counters and state, for chatctl status and the metrics. */
struct up_stats {
	const char	*state;	/* none, starting, handing, taking over, done, failed */
	uint64_t	 upgrades;	/* completed */
	uint64_t	 failed;
	uint64_t	 handed;	/* connections passed to a new master */
	char		 error[512];	/* why the last one failed */
};

/*
 * At start, before any chdir: the binary to exec later (argv[0], made
 * absolute, not resolved: a new file at that path is what runs) and
 * the options to give it.  0 or -1 when argv0 cannot be found.
 */
int	upgrade_remember(const char *argv0, int foreground, int verbose,
	    const char *config_path);
/*
 * Old master: start the new binary with the descriptors of n (and
 * pidfd, ctl_fd, http_fd).  Its pid, and *sock our end of the pair;
 * -1 with err.
 */
pid_t	upgrade_spawn(const struct node *n, int pidfd, int ctl_fd,
	    int http_fd, const struct up_stats *st, int *sock, char *err,
	    size_t errlen);
/*
 * New master: 1 and *in filled when started by an upgrade (the variable
 * is removed), 0 when not, -1 with err when it is garbled.
 */
int	upgrade_inherited(struct up_inherit *in, char *err, size_t errlen);
/*
 * New master (upgrade_cfg.c): fit what up holds to n->cfg, which may
 * come from a changed file.  Fills n->nslots, listen_fds, ws_listen_fds,
 * online and chans, taking the descriptors of up it keeps and closing
 * those the file no longer wants; control and metrics descriptors left
 * in up are for master_init.  0, or -1 with err (the upgrade fails).
 */
int	upgrade_cfg_apply(struct node *n, struct up_inherit *up, char *err,
	    size_t errlen);
/*
 * Whether upgrade_cfg_apply made a new session table (max_online or
 * shm_name changed): a failed start removes it.  upgrade_cfg_done, once
 * every old worker has handed over, removes the old table's name and
 * lets the master's mapping of it (n->online_old) go.
 */
int	upgrade_cfg_new_table(void);
void	upgrade_cfg_done(struct node *n);
/* One message; 0 or -1 (errno). */
int	upgrade_send(int sock, uint32_t type, uint32_t arg, const char *text);
/* A start-up failure of the new master, told to the old one. */
void	upgrade_fail(int sock, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
