/*
 * node.h - one node: what the master prepares before forking and every
 * worker inherits (configuration, listening sockets, session table,
 * channels).  The master, ctl and the workers share it; chatd.c (main)
 * only fills it in.
 */
#ifndef CHATD_NODE_H
#define CHATD_NODE_H

#include "cfg.h"
#include "channel.h"
#include "online.h"

struct guard;

#define CHATD_EXIT_FATAL	2	/* a worker that exits so is not respawned */

struct node {
	struct config		 cfg;
	uint32_t		 cfg_gen;	/* bumped by each reload the master makes */
	const char		*config_path;
	int			 foreground;
	int			 nslots;
	int			*listen_fds;	/* one SO_REUSEPORT socket per slot */
	int			*ws_listen_fds;	/* the same for websocket_listen, or NULL */
	struct online		*online;
	/*
	 * An upgrade that made a new session table: the old one, mapped
	 * until every old worker has handed over (the new workers forked
	 * meanwhile keep it: chat_leave.c); else NULL.
	 */
	struct online		*online_old;
	struct guard		*guard;		/* per-address and login limits */
	struct channel_set	 chans;
	int			 master_pipe[2];	/* EOF on [0]: master died */
	char			 boot_id[17];	/* random per run: tells restarts apart */
};

#endif
