/*
 * sentinel.c - redis = sentinel://...: ask the Sentinels in turn where
 * the primary of an instance is (SENTINEL get-master-addr-by-name), and
 * when it moved, drop the links to the old one (a failover followed).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "log.h"
#include "ps_int.h"

static void
sen_next(struct bus *ps, const char *why)
{
	log_conn_error(ps, "sentinel", why);
	ps->sentinel_i = (ps->sentinel_i + 1) % ps->nsentinels;
	schedule_retry(ps);
}

static void
sen_connect_cb(const redisAsyncContext *ac, int status)
{
	struct bus	*ps = ac->data;

	if (status == REDIS_OK || ac != ps->sen)
		return;
	ps->sen = NULL;		/* hiredis frees ac */
	sen_next(ps, ac->errstr);
}

static void
sen_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct bus	*ps = ac->data;

	if (ac != ps->sen)
		return;
	ps->sen = NULL;
	sen_next(ps, status == REDIS_OK ? "closed" : ac->errstr);
}

/*
 * SENTINEL get-master-addr-by-name: the primary to connect to.  When it
 * moved, the links to the old one go (a failover followed).
 */
static void
sen_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct bus	*ps = privdata;
	redisReply	*rep = reply;
	char		*host;
	int		 port;

	if (ac != ps->sen || rep == NULL)
		return;		/* sen_disconnect_cb moves on */
	ps->sen = NULL;
	redisAsyncDisconnect(ac);
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[1]->type != REDIS_REPLY_STRING ||
	    (port = atoi(rep->element[1]->str)) <= 0 || port > 65535) {
		sen_next(ps, rep->type == REDIS_REPLY_ERROR ? rep->str :
		    "no primary known by that name");
		return;
	}
	if (ps->host == NULL || strcmp(ps->host, rep->element[0]->str) != 0 ||
	    ps->port != port) {
		if ((host = strdup(rep->element[0]->str)) == NULL) {
			sen_next(ps, "out of memory");
			return;
		}
		if (ps->host != NULL) {
			ps->failovers++;
			log_notice("redis %s: primary moved from %s:%d to "
			    "%s:%d (failover followed)", ps->master, ps->host,
			    ps->port, host, port);
			ps_drop_all(ps, "primary moved");
		} else
			log_info("redis %s: primary is %s:%d", ps->master,
			    host, port);
		free(ps->host);
		ps->host = host;
		ps->port = port;
	}
	ps->need_primary = 0;
	open_missing(ps);
}

void
sentinel_ask(struct bus *ps)
{
	redisAsyncContext	*ac;
	int			 i = ps->sentinel_i;

	if (ps->sen != NULL)
		return;
	ac = redisAsyncConnect(ps->sentinels[i], ps->sentinel_ports[i]);
	if (ac == NULL || ac->err) {
		if (ac != NULL)
			redisAsyncFree(ac);
		sen_next(ps, "cannot connect");
		return;
	}
	ac->data = ps;
	if (redisLibevAttach(ps->loop, ac) != REDIS_OK) {
		redisAsyncFree(ac);
		sen_next(ps, "cannot attach");
		return;
	}
	redisAsyncSetConnectCallback(ac, sen_connect_cb);
	redisAsyncSetDisconnectCallback(ac, sen_disconnect_cb);
	ps->sen = ac;
	ps->sen_since = ev_now(ps->loop);
	if (redisAsyncCommand(ac, sen_cb, ps,
	    "SENTINEL get-master-addr-by-name %s", ps->master) != REDIS_OK) {
		ps->sen = NULL;
		redisAsyncFree(ac);
		sen_next(ps, "cannot send");
	}
}


/* A Sentinel that does not answer: the next one. */
void
sentinel_tick(struct bus *ps)
{
	redisAsyncContext	*ac = ps->sen;

	if (ac == NULL || ev_now(ps->loop) - ps->sen_since <= REPLY_TIMEOUT)
		return;
	ps->sen = NULL;
	redisAsyncFree(ac);
	sen_next(ps, "no answer for 3 seconds");
}
