#!/usr/bin/env python3
"""Reliability under single faults: two nodes of one worker each, a
private MariaDB and a private Redis with appendonly yes, and single nodes
on SQLite.

A sender per flow chats at about 150/s: plain seed-style chats to P,
acknowledged chats (with a cmid; the server answers 103 with an smid) to
K, acknowledged group chats to a group of P and K, and (where the store is
the fault) plain chats to O, who logs in only at the end.  Faults, one at
a time:
  (a) B's worker stopped (SIGSTOP) for 6 s, then continued;
  (b) B's worker SIGKILLed mid-batch, 20 times;
  (e) Redis stopped and started again (AOF);
  (d) MariaDB stopped for 10 s under both nodes (scripts/mariadb-private
      halt, then start: same data and port);
  (f) node B killed as a crashed machine would be (receivers move to A);
  (c) one SQLite node whose database another process holds with BEGIN
      EXCLUSIVE for 7 s;
  (g) one SQLite node whose database sits on a 4 MiB tmpfs, filled for
      4 s then freed (needs root to mount; skipped otherwise, except in CI).
For each: accepted, delivered, lost (must be 0), duplicates seen by a
client that drops repeats by smid (must be 0) and by the plain client
(report), and the error answers ("refused": allowed only where the store
cannot write; every acknowledged chat must get an ack or an error).
Then the queue's crash points, with items put straight into Redis:
after the take (in the processing list, worker killed), after the write
before the ack (same worker, ack lost), and after a failed store (MariaDB
stopped: the item stays in Redis and is stored once it is back); and
forged, stale and replayed items, which are never delivered and are
counted in chatd_bus_rejected_total.  Prints a table.

Needs redis-server and mariadbd: without them SKIPPED (exit 77), except in
CI (CI=true)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
from reltraffic import (COUNT, ENV, ROWS, b_queue, batch,  # noqa: E402
                        chat_line, collect, print_table, queue_of,
                        rejected_total, run_traffic, sign, users,
                        worker_pid)

STALL_PONG = 1.2            # a failed store takes db_query_timeout_ms


def setUpModule():
    cluster.require(("redis", "mariadb"))
    try:
        ENV["redis"] = cluster.Redis(appendonly=True).start()
        ENV["db"] = cluster.MariaDB().start()
        spec = ENV["db"].spec
        extra = {"db_query_timeout_ms": 1500, "db_connect_timeout_ms": 1500}
        ENV["A"] = cluster.Node(spec, ENV["redis"], "relA-%d" % os.getpid(),
                                workers=1, extra=extra).start()
        ENV["mport"] = chatlib.free_port()
        eb = dict(extra, metrics_listen=str(ENV["mport"]))
        ENV["B"] = cluster.Node(spec, ENV["redis"], "relB-%d" % os.getpid(),
                                workers=1, extra=eb).start()
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    if ROWS:
        print_table()
    cluster.stop_all(ENV, ("A", "B", "redis", "db"))


LOGIN_PROBES = 12


class Prober:
    """Logins of users, one every 0.4 s, each on its own connection in its
    own thread: (seconds to the LOGIN_ACK, its errno) per login."""

    def __init__(self, srv, uids):
        self.srv, self.uids = srv, uids
        self.out = []
        self.threads = []
        self.lock = threading.Lock()
        self.starter = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.starter.start()

    def one(self, uid):
        t0 = time.monotonic()
        try:
            c = chatlib.Client(self.srv.port)
            try:
                c.send_obj({"id": uid, "msgid": chatlib.LOGIN,
                            "password": "pw"})
                r = c.recv_msgid(chatlib.LOGIN_ACK, timeout=20)
                res = (time.monotonic() - t0, r.get("errno"))
            finally:
                c.close()
        except Exception as e:      # a timeout (20 s) or a dropped socket
            res = (time.monotonic() - t0, repr(e))
        with self.lock:
            self.out.append(res)

    def run(self):
        for uid in self.uids:
            t = threading.Thread(target=self.one, args=(uid,), daemon=True)
            t.start()
            self.threads.append(t)
            time.sleep(0.4)

    def join(self):
        if self.starter.is_alive() or self.starter.ident is not None:
            self.starter.join(30)
        for t in self.threads:
            t.join(60)
        return self.out


class RequestProber:
    """While the store is locked: one request of each kind a worker
    answers from the store (HISTORY, a registration, a friend request, a
    group creation, a block), each on its own connection and followed by
    a PING there (answered only after the request is), and pings on one
    more connection.  out: kind -> (seconds to the pong, [errno seen]);
    pings: the round trips."""

    KINDS = ("history", "register", "friend", "group", "block")

    def __init__(self, srv):
        self.srv = srv
        u = users(len(self.KINDS) + 1, srv)
        self.target, self.uids = u[0], dict(zip(self.KINDS, u[1:]))
        self.out, self.pings = {}, []
        self.lock = threading.Lock()
        self.conns = {}
        for kind in self.KINDS + ("pinger",):
            c = chatlib.Client(srv.port)
            if kind != "register":
                c.login(self.uids.get(kind, self.target), "pw")
            self.conns[kind] = c
        self.threads = [threading.Thread(target=self.one, args=(k,),
                                         daemon=True) for k in self.KINDS]
        self.threads.append(threading.Thread(target=self.ping_loop,
                                             daemon=True))

    def request(self, kind):
        t = self.target
        return {"history": {"msgid": 125, "toid": t},
                "register": {"msgid": chatlib.REG, "password": "pw",
                             "name": chatlib.unique("relreg")},
                "friend": {"msgid": chatlib.ADD_FRIEND, "friendid": t},
                "group": {"msgid": chatlib.CREATE_GROUP,
                          "groupname": chatlib.unique("relgrp")},
                "block": {"msgid": 114, "userid": t}}[kind]

    def one(self, kind):
        c = self.conns[kind]
        t0 = time.monotonic()
        try:
            c.send_obj(self.request(kind))
            seen = c.ping(timeout=40)
            res = (time.monotonic() - t0,
                   [m.get("errno") for m in seen if "errno" in m])
        except Exception as e:      # no answer in 40 s, or a dropped socket
            res = (time.monotonic() - t0, [repr(e)])
        with self.lock:
            self.out[kind] = res

    def ping_loop(self):
        c = self.conns["pinger"]
        end = time.monotonic() + 8.0
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                c.ping(timeout=20)
                self.pings.append(time.monotonic() - t0)
            except Exception:       # counted as one very slow ping
                self.pings.append(99.0)
                return
            time.sleep(0.2)

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            if t.ident is not None:
                t.join(60)
        for c in self.conns.values():
            c.close()
        return self.out, self.pings


class Reliability(unittest.TestCase):

    def test_1_stall(self):
        """(a) B's worker stopped 6 s while chats for it flow."""
        st = {"pid": None}

        def fault(t):
            if t >= 1.0 and st["pid"] is None:
                st["pid"] = worker_pid(ENV["B"])
                os.kill(st["pid"], signal.SIGSTOP)
            elif t >= 7.0 and st["pid"] and "cont" not in st:
                os.kill(st["pid"], signal.SIGCONT)
                st["cont"] = True
            return None if "cont" in st else True
        run_traffic(self, "(a) worker stopped 6 s", fault)

    def test_2_kills(self):
        """(b) B's worker SIGKILLed mid-batch, 20 times."""
        st = {"n": 0, "next": 0.5}
        kills, every = 20, 0.8     # apart more than the master's 0.5 s
        #                            quick death, which would back off

        def fault(t):
            if st["n"] < kills and t >= st["next"]:
                pids = ENV["B"].worker_pids()
                if len(pids) == 1:
                    os.kill(pids[0], signal.SIGKILL)
                    st["n"] += 1
                    st["next"] = t + every
            return True if st["n"] < kills else None
        # the chats spread over the kills
        run_traffic(self, "(b) worker killed x20", fault,
                    rate=COUNT / (kills * every))
        chatlib.wait_for(lambda: len(ENV["B"].worker_pids()) == 1, 10)
        self.assertTrue(chatlib.wait_for(ENV["B"].joined, 20))

    def test_3_redis_restart(self):
        """(e) Redis stopped and started again (appendonly yes)."""
        st = {}

        def fault(t):
            if t >= 1.0 and "stopped" not in st:
                ENV["redis"].stop()
                st["stopped"] = True
            elif t >= 2.0 and "started" not in st:
                ENV["redis"].start()
                st["started"] = True
            return None if "started" in st else True
        _, slowest = run_traffic(self, "(e) redis restarted (AOF)", fault)
        # what a node stored while Redis was away reaches the online
        # receiver once Redis is back (a nudge kept until then), not at
        # its next login (the reconnect after the 25 s settle)
        for kind in ("plain", "acked delivered", "group delivered"):
            self.assertLess(slowest.get(kind, 0), 20.0, slowest)

    def test_3m_mariadb_stopped(self):
        """(d) MariaDB stopped 10 s under both nodes, then started again
        (same data and port); chats for an offline user need the store."""
        db = ENV["db"]
        st = {}

        def run(what):
            r = subprocess.run([db.script, what, db.dir],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, timeout=90)
            st[what] = r.returncode

        def fault(t):
            if t >= 1.0 and "th" not in st:
                st["th"] = threading.Thread(target=run, args=("halt",))
                st["th"].start()
            elif "halt" in st and "t_halt" not in st:
                st["t_halt"] = t
            elif "t_halt" in st and t >= st["t_halt"] + 10 and \
                    "th2" not in st:
                st["th2"] = threading.Thread(target=run, args=("start",))
                st["th2"].start()
            return None if "start" in st else True
        try:
            run_traffic(self, "(d) mariadb stopped 10 s", fault,
                        offline=True, refusals=True, settle=30.0, rate=30)
        finally:
            for k in ("th", "th2"):
                if k in st:
                    st[k].join(90)
        self.assertEqual((st.get("halt"), st.get("start")), (0, 0))

    def test_4_crash_points(self):
        """Items straight into Redis at each crash point of the queue."""
        B, r = ENV["B"], ENV["redis"]
        uid, = users(1)
        c = chatlib.Client(B.port)
        c.login(uid, "pw")
        # after the take: in P, its taker killed; the successor hands off
        q = b_queue()
        r.cmd("RPUSH", q + ":p", sign("%d %s" % (uid, chat_line(
            uid, "after-take"))))
        os.kill(worker_pid(B), signal.SIGKILL)
        # the connection outlives its worker (crash handover, chatd(8)):
        # the successor hands the item to it; if it was closed, at the
        # next login
        got = collect(c, 5.0)
        self.assertTrue(chatlib.wait_for(B.joined, 20))
        deadline = time.monotonic() + 10
        if "after-take" not in got:
            c.close()
        while "after-take" not in got and time.monotonic() < deadline:
            try:
                c = chatlib.Client(B.port)
                r_ = c.login_raw(uid, "pw")
            except (OSError, AssertionError):
                time.sleep(0.2)
                continue
            if r_.get("errno") != 0:
                c.close()
                time.sleep(0.2)
                continue
            got += [json.loads(t)["msg"] for t in r_.get("offlinemsg", [])]
            got += collect(c, 1.5)
            if "after-take" not in got:
                c.close()
        self.assertEqual(got.count("after-take"), 1, got)

        # after the write, before the ack (lost): the same worker, when
        # it reads P again, must not deliver it twice
        before = rejected_total()
        q = b_queue()
        item = sign("%d %s" % (uid, chat_line(uid, "before-ack")))
        r.cmd("RPUSH", q, item)
        self.assertEqual(collect(c, 1.0), ["before-ack"])
        r.cmd("RPUSH", q + ":p", item)
        r.cmd("CLIENT", "KILL", "TYPE", "normal")    # its links drop
        got = collect(c, 3.0)
        self.assertEqual(got, [], "handed off twice")
        self.assertEqual(r.cmd("LLEN", q + ":p"), 0)
        self.assertEqual(rejected_total(), before)

        # after a failed store: the recipient is not here and MariaDB
        # does not answer; the item stays in Redis until it is stored.
        # The same inside a batch whose other item is handed off at
        # once: only the waiting one stays (the batch is replaced), so
        # the live one is not delivered again.
        c.close()
        off, off2, live = users(3)
        c = chatlib.Client(B.port)
        c.login(live, "pw")
        pc = chatlib.Client(B.port)     # pings, on B's only worker
        pc.login(users(1)[0], "pw")
        # a chat to a user B's worker has not seen: whether it is one is
        # read in a store thread (the sender waits, the worker not)
        sc = chatlib.Client(B.port)
        sid, off3 = users(2)
        sc.login(sid, "pw")
        with open(os.path.join(ENV["db"].dir, "pid")) as f:
            pid = int(f.read())
        # B's live worker's queue (chatd:queues may still list a dead
        # one of B's, whose items wait for a reaper with a working store)
        bq = queue_of(live)
        # a live delivery looks up who blocks the sender (kept once
        # read): read it now, while the database answers
        r.cmd("RPUSH", bq, sign("%d %s" % (live, chat_line(live, "warm"))))
        self.assertEqual(collect(c, 1.0), ["warm"])
        os.kill(pid, signal.SIGSTOP)
        try:
            # the database that answers is the one stopped (it was
            # restarted by test_3m): else this case proves nothing
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                self.assertIn(b"mariadbd", f.read())
            self.assertTrue(chatlib.wait_for(
                lambda: chatlib.all_stopped(pid), 5), "mariadbd not stopped")
            r.cmd("RPUSH", bq, sign("%d %s" % (off, chat_line(
                off, "after-store"))))
            r.cmd("RPUSH", bq, batch([
                sign("%d %s" % (off2, chat_line(off2, "batch-store"))),
                sign("%d %s" % (live, chat_line(live, "batch-live")))]))
            # the stores wait in a store thread, not the worker's loop:
            # its users get their pongs meanwhile (the loop waited out
            # each failed store's timeouts before)
            sc.chat(sid, "s", off3, "lookup")
            pings = []
            end = time.monotonic() + 3.5
            while time.monotonic() < end:
                t0 = time.monotonic()
                pc.ping(timeout=30)
                pings.append(time.monotonic() - t0)
                time.sleep(0.1)
            print("(crash points) pongs while the stores fail: %d, "
                  "slowest %.2f s" % (len(pings), max(pings)), flush=True)
            self.assertLess(max(pings), STALL_PONG, "pongs waited for the "
                            "store")

            def left():
                # every queue and processing list (a reaper's included),
                # so that an item moving between two reads is not missed
                out = []
                for k in r.cmd("KEYS", "chatd:q:*"):
                    out += r.cmd("LRANGE", k, 0, -1)
                return out
            self.assertTrue(any(b"after-store" in x for x in left()),
                            "the item left Redis without being stored\n%s"
                            % B.log_text()[-3000:])
            # each failed store waits out the database's timeout first
            self.assertTrue(chatlib.wait_for(lambda: not any(
                b"batch-live" in x for x in left()), 20),
                "the batch's handed-off item was kept: %r\n%s" % (
                    left(), B.log_text()[-3000:]))
            self.assertTrue(any(b"batch-store" in x for x in left()),
                            "the batch left Redis without being stored")
        finally:
            os.kill(pid, signal.SIGCONT)
        self.assertTrue(chatlib.wait_for(
            lambda: r.cmd("LLEN", bq + ":p") == 0, 15))
        got = collect(c, 1.0)
        self.assertEqual(got, ["batch-live"])
        c.close()
        pc.close()
        # refused (errno 24: the database did not answer), or sent on
        errs = [m.get("errno") for m in sc.sync(timeout=30)]
        self.assertIn(errs, ([], [chatlib.ERR_UNAVAILABLE]))
        sc.close()
        for who, text in ((off, "after-store"), (off2, "batch-store"),
                          (off3, "lookup")):
            if text == "lookup" and errs:
                continue
            c = chatlib.Client(ENV["A"].port)
            r_ = c.login_raw(who, "pw")
            msgs = [json.loads(t)["msg"] for t in r_.get("offlinemsg", [])]
            msgs += collect(c, 1.0)
            self.assertEqual(msgs.count(text), 1, msgs)
            c.close()
        ROWS.append(("crash points (5 items)", 5, 5, 0, 0, 0, 0, 0))

    @staticmethod
    def straight_in():
        """Redis, a user logged in on B, its client, the rejected count
        so far, B's queue: for items written straight into Redis."""
        uid, = users(1)
        c = chatlib.Client(ENV["B"].port)
        c.login(uid, "pw")
        return ENV["redis"], uid, c, rejected_total(), b_queue()

    def test_5_forged(self):
        """Forged, stale and replayed items: not delivered, counted."""
        r, uid, c, before, q = self.straight_in()
        good = sign("%d %s" % (uid, chat_line(uid, "genuine")))
        r.cmd("RPUSH", q, sign("%d %s" % (uid, chat_line(uid, "forged")),
                               key="not-the-cluster-key-" + "x" * 20))
        bad = sign("%d %s" % (uid, chat_line(uid, "altered")))
        r.cmd("RPUSH", q, bad.replace("altered", "ALTERED"))
        r.cmd("RPUSH", q, sign("%d %s" % (uid, chat_line(uid, "stale")),
                               ms=int(time.time() * 1000) - 3600 * 1000))
        r.cmd("RPUSH", q, good)
        r.cmd("RPUSH", q, good)                         # replayed
        got = collect(c, 2.0)
        self.assertEqual(got, ["genuine"])
        self.assertTrue(chatlib.wait_for(
            lambda: rejected_total() - before == 4, 5),
            "rejected: %d" % (rejected_total() - before))
        self.assertEqual(ENV["B"].log_text().count(
            'refusing an item from "test-node"'), 1)
        c.close()
        ROWS.append(("forged/altered/stale/replay", 1, 1, 0, 0, 0, 0, 0))

    def test_5f_formats(self):
        """A batch: each item checked on its own; a newer format dropped."""
        r, uid, c, before, q = self.straight_in()
        one = sign("%d %s" % (uid, chat_line(uid, "b-one")))
        r.cmd("RPUSH", q, batch([
            one,
            sign("%d %s" % (uid, chat_line(uid, "b-forged")),
                 key="not-the-cluster-key-" + "y" * 20),
            sign("%d %s" % (uid, chat_line(uid, "b-two"))),
            one]))                                      # replayed inside
        r.cmd("RPUSH", q, "v9 " + one)                  # a newer release's
        r.cmd("RPUSH", q, "v2 99999:" + one)            # cut short
        r.cmd("RPUSH", q, batch([sign("%d %s" % (uid, chat_line(
            uid, "b-three")))]))
        got = collect(c, 2.0)
        self.assertEqual(got, ["b-one", "b-two", "b-three"])
        self.assertTrue(chatlib.wait_for(
            lambda: rejected_total() - before == 4, 5),
            "rejected: %d" % (rejected_total() - before))
        self.assertEqual(ENV["B"].log_text().count(
            "format version 9"), 1)
        self.assertEqual(r.cmd("LLEN", q + ":p"), 0)
        c.close()

    def test_5h_barrier_messages(self):
        """The history barrier's channels (include/pubsub.h): every
        worker hears an ask; forged or garbled asks are refused and
        counted by each worker, answers for nobody ignored, and none
        of them harms anybody."""
        r, uid, c, before, q = self.straight_in()
        heard = r.cmd("PUBLISH", "chatd:hf", sign("hf ffff.0 7"))
        self.assertEqual(heard, 2, "the worker of A and of B subscribed")
        r.cmd("PUBLISH", "chatd:hf", sign("hf ffff.0 8",
                                          key="not-the-cluster-key-" +
                                          "z" * 20))
        r.cmd("PUBLISH", "chatd:hf", "garbage")
        # answers not addressed to a worker's latest ask: ignored
        r.cmd("PUBLISH", "chatd:hfa", "garbage")
        r.cmd("PUBLISH", "chatd:hfa", sign("hfa nobody ffff.0 7 ffff.1"))
        # B's metrics: its worker refused the two asks
        self.assertTrue(chatlib.wait_for(
            lambda: rejected_total() - before == 2, 5),
            "rejected: %d" % (rejected_total() - before))
        r.cmd("RPUSH", q, sign("%d %s" % (uid, chat_line(uid, "after"))))
        self.assertEqual(collect(c, 2.0), ["after"])
        c.close()

    def test_6_node_killed(self):
        """(f) node B killed as a crashed machine; receivers go to A."""
        st = {}

        def fault(t):
            if t >= 1.0 and "killed" not in st:
                ENV["B"].kill_hard()
                st["killed"] = True
            return None if "killed" in st else True
        run_traffic(self, "(f) node killed", fault, settle=30.0)

    def test_7_sqlite_lock(self):
        """(c) one node on SQLite; another process holds an exclusive
        lock on its database for 7 s while chats flow."""
        with chatlib.Server(workers=2) as S:
            db = S.keys["storage"].split(":", 1)[1]
            st = {}
            holder = ("import sqlite3, sys, time\n"
                      "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                      "c.execute('BEGIN EXCLUSIVE')\n"
                      "print('locked', flush=True)\n"
                      "time.sleep(7)\n"
                      "c.execute('COMMIT')\n")

            # users who log in while the lock is held: nothing stored
            # for them, so their logins only read (WAL readers go on)
            probe = Prober(S, users(LOGIN_PROBES, S))
            reqs = RequestProber(S)

            def fault(t):
                if t >= 1.0 and "p" not in st:
                    st["p"] = subprocess.Popen(
                        [sys.executable, "-c", holder, db],
                        stdout=subprocess.PIPE)
                    st["line"] = st["p"].stdout.readline()
                    probe.start()
                    reqs.start()
                if "p" in st and st["p"].poll() is not None:
                    st["rc"] = st["p"].returncode
                    return None
                if t > 30:
                    st["p"].kill()
                return True
            try:
                refused, slowest = run_traffic(
                    self, "(c) sqlite locked 7 s", fault, sender_node=S,
                    receivers_nodes=[S], offline=True, refusals=True,
                    rate=50, plain_group=True)
            finally:
                logins = probe.join()
                answers, pings = reqs.join()
            self.assertEqual((st["line"], st["rc"]), (b"locked\n", 0))
            print("(c) requests during the lock (s to the answer, errnos): "
                  "%s; pings: %d, slowest %.2f s" % (", ".join(
                      "%s %.2f %r" % (k, v[0], v[1])
                      for k, v in sorted(answers.items())),
                      len(pings), max(pings or [99.0])), flush=True)
            # the requests answered from the store wait for it in a store
            # thread (a write until the lock goes, a HISTORY until this
            # worker's rows are written): answered, or refused cleanly
            self.assertEqual(sorted(answers), sorted(RequestProber.KINDS),
                             "requests unanswered")
            for k, (secs, errs) in answers.items():
                self.assertTrue(set(errs) <= {0, chatlib.ERR_UNAVAILABLE},
                                "%s during the lock: %r" % (k, errs))
                # answered in order: before the PING sent after it
                if k in ("history", "register", "block"):
                    self.assertEqual(len(errs), 1, "%s: no answer before "
                                     "the next request's" % k)
            # ... while the worker's loop went on: pings on the side fast
            self.assertGreater(len(pings), 10, "pings during the lock")
            self.assertLess(max(pings), 3.0, "pings waited for the "
                            "locked store")
            print("(c) refused %r" % refused, flush=True)
            print("(c) logins during the lock: %d, slowest answer %.2f s, "
                  "errors %r" % (len(logins), max(x[0] for x in logins),
                                 [x[1] for x in logins if x[1] != 0]),
                  flush=True)
            # a login reads only (WAL readers are not locked out): it
            # must not wait behind the stores that wait for the lock
            self.assertEqual(len(logins), LOGIN_PROBES, "logins unanswered")
            self.assertEqual([x[1] for x in logins], [0] * LOGIN_PROBES,
                             "logins refused during the lock")
            self.assertLess(max(x[0] for x in logins), 3.0, "logins waited "
                            "for the locked store")
            # a plain group chat with a member away waits (its sender
            # does) for that member's copy; one with every member online
            # stores nothing and must not wait behind it
            self.assertLess(slowest["lgroup"], 3.0, "plain group chats "
                            "waited for the locked store")
            # the lock held the stores back (acks waited), not live chats:
            # the stores wait in a store thread, the worker's loop goes
            # on (the lock lasts 7 s; live chats took 7.2 s when the loop
            # waited for the store itself)
            self.assertGreater(slowest["acked"], 2.0, "the lock bit nothing")
            self.assertLess(slowest["plain"], 3.0, "live chats waited for "
                            "the locked store")

    def test_8_disk_full(self):
        """(g) one node on SQLite whose database sits on a 4 MiB tmpfs,
        filled up for 4 s while chats flow, then freed: the sender of a
        chat that cannot be stored gets an error, nothing accepted is
        lost."""
        if os.geteuid() != 0:
            if cluster.in_ci():
                self.fail("(g) needs root to mount a tmpfs")
            self.skipTest("(g) needs root to mount a tmpfs")
        mnt = tempfile.mkdtemp(prefix="chatd-full-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=4m,mode=0700", "tmpfs", mnt],
                           stderr=subprocess.PIPE, timeout=20)
        if r.returncode != 0:
            os.rmdir(mnt)
            self.skipTest("(g) mount tmpfs: %s" % r.stderr.decode())
        fill = os.path.join(mnt, "fill")
        st = {}
        try:
            with chatlib.Server(workers=2, storage="sqlite:%s" %
                                os.path.join(mnt, "chat.db")) as S:

                def fault(t):
                    if t >= 1.0 and "full" not in st:
                        fd = os.open(fill, os.O_WRONLY | os.O_CREAT, 0o600)
                        try:
                            for n in (65536, 4096, 512, 1):
                                try:
                                    while os.write(fd, b"\0" * n) > 0:
                                        pass
                                except OSError:
                                    pass
                        finally:
                            os.close(fd)
                        st["full"] = os.statvfs(mnt).f_bavail
                    elif t >= 5.0 and "freed" not in st:
                        os.unlink(fill)
                        st["freed"] = True
                    return None if "freed" in st else True
                refused, _ = run_traffic(self, "(g) sqlite disk full 4 s",
                                      fault, sender_node=S,
                                      receivers_nodes=[S], offline=True,
                                      refusals=True, rate=75)
                print("(g) refused %r" % refused, flush=True)
                self.assertEqual(st["full"], 0)
                self.assertGreater(refused["acked"] + refused["offline"],
                                   0, "no error answer while the disk "
                                   "was full")
        finally:
            subprocess.run(["umount", "-l", mnt], timeout=20)
            os.rmdir(mnt)


if __name__ == "__main__":
    t0 = time.monotonic()
    prog = unittest.main(exit=False, verbosity=2)
    sys.stderr.write("test_reliability: %.1f s\n" % (time.monotonic() - t0))
    sys.exit(0 if prog.result.wasSuccessful() else 1)
