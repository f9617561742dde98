/*
 * worker_handover.c - a worker's side of moving connections between
 * processes: adopting those of a dead predecessor or of an upgrade's
 * old worker, and handing its own over for an upgrade (the parts that
 * need no event loop; worker.c drives them).
 */
#include "config.h"

#include <sys/socket.h>

#include <ev.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "conn.h"
#include "guard.h"
#include "handover.h"
#include "log.h"
#include "online.h"
#include "storeq.h"
#include "upgrade.h"
#include "util.h"
#include "worker_impl.h"
#include "ws.h"

/* The new worker: the old one died or ran out of time before answering. */
static ev_timer	 answers_timer;

static void
answers_timer_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	chat_answers_expire();
}

static void
answers_wait(void)
{
	if (chat_answers_awaited() == 0)
		return;
	ev_timer_stop(EV_DEFAULT, &answers_timer);
	ev_timer_init(&answers_timer, answers_timer_cb, ANSWERS_WAIT_SECONDS,
	    0.);
	ev_timer_start(EV_DEFAULT, &answers_timer);
}

/*
 * A websocket moves only between two units (HO_F_CLEAN): a crash copy
 * is closed.  0, or -1 with why.
 */
static int
adopt_transport(struct conn *c, const struct ho_state *st, char *why,
    size_t whylen)
{
	if ((st->flags & HO_F_WS) == 0)
		return 0;
	if ((st->flags & HO_F_CLEAN) == 0) {
		snprintf(why, whylen, "a websocket's framing position died "
		    "with the worker");
		return -1;
	}
	if (ws_adopt(c) == -1) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * The previous worker of this slot died: take its connections over,
 * under the same ids (messages other workers sent it find them).
 */
enum ho_send
worker_adopt(struct guard *guard, int slot, const struct guard_net *exempt,
    int nexempt, struct online_slot_stats *stats,
    void (*drop)(struct conn *))
{
	enum ho_send		 rc;
	const struct ho_inherit	*v;
	struct ho_state		 st;
	struct conn		*c;
	uint64_t		 akey;
	size_t			 n, i, ok = 0, failed = 0, ws = 0;
	size_t			 settled = 0, noblocks = 0;
	double			 began = util_mono();
	char			 why[128];

	n = handover_inherited(&v);
	for (i = 0; i < n; i++) {
		if (v[i].len < sizeof(st)) {
			close(v[i].fd);
			(void)handover_drop(v[i].conn);
			failed++;
			continue;
		}
		memcpy(&st, v[i].state, sizeof(st));
		akey = guard_addr_key(guard, &st.peer, exempt, nexempt);
		(void)guard_conn_add(guard, slot, akey, 0);
		if ((c = conn_adopt(v[i].fd, &st.peer, akey, v[i].conn)) ==
		    NULL) {
			log_warnx("connection %u (user %d) not adopted: out "
			    "of memory", v[i].conn, (int)st.uid);
			guard_conn_del(guard, slot, akey);
			(void)shutdown(v[i].fd, SHUT_RDWR);
			close(v[i].fd);
			(void)handover_drop(v[i].conn);
			failed++;
			continue;
		}
		if (adopt_transport(c, &st, why, sizeof(why)) == -1 ||
		    chat_adopt(c, v[i].state, v[i].len, why, sizeof(why)) ==
		    -1) {
			log_notice("connection %u (user %d) not adopted, "
			    "closed: %s", c->id, (int)st.uid, why);
			drop(c);
			conn_close(c, why);
			failed++;
			continue;
		}
		if ((st.flags & HO_F_CLEAN) != 0) {
			/* an upgrade: at a frame boundary, nothing lost */
			if (conn_adopt_input(c, v[i].state + sizeof(st) +
			    st.name_len, v[i].len - sizeof(st) -
			    st.name_len) == -1) {
				failed++;
				continue;
			}
			ws += (st.flags & HO_F_WS) != 0;
			settled += (st.flags & HO_F_SETTLED) != 0;
			noblocks += (st.flags & HO_F_NOBLOCKS) != 0;
		} else
			log_debug("connection %u (user %d) adopted: the "
			    "request in flight, if any, is lost; input resumes "
			    "after the next NUL", c->id, (int)st.uid);
		ok++;
	}
	handover_inherited_done();
	chat_adopt_sweep();
	answers_wait();
	rc = handover_flush();
	if (n == 0)
		return rc;
	__atomic_add_fetch(&stats->adopted, ok, __ATOMIC_RELAXED);
	__atomic_add_fetch(&stats->handover_failed, failed, __ATOMIC_RELAXED);
	/* settled: no read of stored messages (a cluster reads anyway) */
	log_notice("adopted %zu connections of the previous worker of this "
	    "slot in %.0f ms%s (%zu websocket; %zu at a boundary with nothing "
	    "stored under way, %zu blocking nobody: not read again)", ok,
	    (util_mono() - began) * 1000, failed > 0 ? "; some closed" : "",
	    ws, settled, noblocks);
	if (failed > 0)
		log_notice("%zu connections of the previous worker closed",
		    failed);
	return rc;
}

/* Answered all it read, and its lines went to the transport. */
static int
conn_settled(const struct conn *c)
{
	return c->jobs == 0 && !c->paused && buf_used(&c->out) == 0;
}

/* Settled, and the transport wrote all it had: at a frame boundary. */
static int
conn_quiet(const struct conn *c)
{
	return conn_settled(c) && conn_tp_movable(c) == CONN_TP_READY;
}

void
handoff_one(struct conn *c, void *arg)
{
	struct handoff_count	*n = arg;
	int			 quiet, due;

	if (c->closing || c->moved)
		return;
	quiet = conn_quiet(c);
	/* only acknowledged chats being stored: their answers follow it */
	due = !quiet && chat_answers_due(c);
	if (c->close_after_flush) {	/* going anyway: write, then close */
		if (!n->final)
			n->busy += !conn_settled(c);
		else {
			n->closed++;
			conn_close(c, "server upgrading");
		}
		return;
	}
	/* an HTTP request, a closing websocket: not waited for */
	if (conn_tp_movable(c) == CONN_TP_NEVER) {
		if (n->final) {
			n->closed++;
			conn_close(c, "server upgrading");
		}
		return;
	}
	if (!n->final) {
		n->busy += !quiet && !due;
		return;
	}
	if (chat_handover_final(c, quiet || due, due) == 0) {
		if (due)
			n->answers++;
		else if (quiet)
			n->clean++;
		else
			n->unclean++;
		return;
	}
	/* not logged in, or a websocket not at a boundary: it reconnects */
	n->closed++;
	conn_close(c, "server upgrading");
}

/* The master's socket takes the last records: bounded, then we go. */
static void
flush_master(void)
{
	struct pollfd	 pfd;
	double		 end = util_mono() + 5;

	while (handover_flush() == HO_QUEUED && util_mono() < end) {
		pfd.fd = handover_worker_fd();
		pfd.events = POLLOUT;
		(void)poll(&pfd, 1, 100);
	}
}

static double	 answer_deadline;	/* 0: not handed over yet */
static double	 handed_at;
static size_t	 handed_answers;
static int	 settled;		/* a pass found nothing to wait for */

/* Every session to the master; the next worker serves them from now. */
static void
hand_over(double began)
{
	struct handoff_count	 n;

	memset(&n, 0, sizeof(n));
	n.final = 1;
	conn_foreach(handoff_one, &n);
	conn_reap();
	chat_slot_handed();
	/* the master passes them on at once: our exit may take a while */
	(void)handover_worker_handed();
	flush_master();
	handed_at = util_mono();
	handed_answers = n.answers;
	log_notice("upgrade: %zu connections handed over at a frame boundary "
	    "(%zu with answers to follow), %zu as after a crash (answers or "
	    "output still due), %zu closed (not logged in, or websocket), "
	    "%.0f ms after the last read", n.clean + n.answers, n.answers,
	    n.unclean, n.closed, (handed_at - began) * 1000);
}

enum handoff_state
handoff_step(struct storeq *q, int queued, double deadline)
{
	struct handoff_count	 n;
	size_t			 waiting;

	if (answer_deadline == 0) {
		memset(&n, 0, sizeof(n));
		conn_foreach(handoff_one, &n);
		if ((n.busy > 0 || queued) && util_mono() < deadline)
			return HANDOFF_WAIT;	/* the loop answers, writes */
		hand_over(deadline - HANDOFF_SECONDS);
		answer_deadline = util_mono() + HANDOFF_SECONDS;
	}
	/* the store thread goes on; what it answers follows the sockets */
	chat_history_flush();	/* rows its chats kept meanwhile: stored too */
	waiting = chat_forward_answers(0);
	if (util_mono() >= answer_deadline) {
		if (waiting > 0)
			log_warnx("upgrade: %zu connection(s) still wait for "
			    "the store after %.0f s: their clients resend what "
			    "is unanswered", waiting, HANDOFF_SECONDS);
		(void)chat_forward_answers(1);
		return HANDOFF_DONE;
	}
	if (waiting > 0 || storeq_pending(q) > 0 || queued) {
		settled = 0;
		return HANDOFF_WAIT;
	}
	/* once more: what this pass queued goes out before the loop sleeps */
	return settled++ ? HANDOFF_DONE : HANDOFF_WAIT;
}

void
handoff_exit(void)
{
	log_notice("upgrade: the store jobs ended %.0f ms after the hand "
	    "over (%zu connections had answers to follow)",
	    (util_mono() - handed_at) * 1000, handed_answers);
	/*
	 * As a crash would, but at a quiet moment: nothing logs the users
	 * out, not here nor in Redis; the next worker of this slot adopted
	 * them from the master.
	 */
	_exit(CHATD_EXIT_HANDED);
}

/*
 * A websocket that cannot move (its handshake or a file not done, a
 * close under way, a stream wslay judges): it closes cleanly now.  Open
 * ones move at a frame boundary (ws_movable).
 */
static void
close_ws(struct conn *c, void *arg)
{
	if (c->tp != NULL && !c->closing && !c->close_after_flush &&
	    conn_tp_movable(c) == CONN_TP_NEVER) {
		conn_close_after_flush(c, "server upgrading");
		(*(size_t *)arg)++;
	}
}

size_t
handoff_close_ws(void)
{
	size_t	 n = 0;

	conn_foreach(close_ws, &n);
	return n;
}
