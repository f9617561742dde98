#!/usr/bin/env python3
"""Binary upgrade: chatctl upgrade moves a node to a new binary without
dropping a connection.

A node with two workers is started from a copy of chatd in a temporary
directory; UPGRADE_CLIENTS (default 1000, the issue's size) logged-in
clients chat, plain and acknowledged ("cmid"), and three clients on
each worker ping every 20 ms, while `chatctl upgrade` starts the binary
at that path again.  Goals checked:

- 0 disconnects, and no mark of a handover: an upgrade hands each
  connection over at a frame boundary (nothing to resynchronise);
- 0 acknowledged chats lost: every one reaches its recipient;
- every client is served by a new worker afterwards, under the same
  session (WHOAMI: same user, no new login);
- the node answers a PING throughout: worst, 99th percentile and median
  round trip are printed for a control window (3 s under the same load
  just before) and for the upgrade (command to 2 s after it returned),
  with each slot's own stall by the node's log (old worker's last read
  to the end of the new worker's adoption).  Asserted: the upgrade's
  worst is at most the control window's worst plus UPGRADE_PING_MARGIN
  (default 1.5 s, 3 s in the sanitizer build: the machine may be
  loaded), and under UPGRADE_PING_BOUND (5 s, 10 s) in any case.  No
  store write is waited for: a connection whose acknowledged chats are
  still being stored moves at once, their answers follow;
- new TCP connections are never refused during the upgrade;
- the old master exits (status 0), the new one serves, owns the pid
  file and counts the upgrade and the handed connections.

WebSocket clients move too (test_websocket_upgrade): each at a frame
boundary, its input given to wslay only in whole units, with a fresh
wslay context in the new worker; they stay connected and logged in,
read only valid frames, chats flow, and a frame or a fragmented message
half sent across the upgrade is read on by the new worker.  A crash
after that closes them (their framing position died with the worker).

A second test upgrades to a "binary" that fails at start (a script that
exits 1), and to one that cannot be executed: the old node goes on
serving the same connections and chatctl reports the failure.

Two more hold one acknowledged chat in the store (a write lock the test
holds, its old worker stopped at the right moment) across the upgrade:
the connection moves at once and the new worker writes the
acknowledgement once the old worker's store committed, before the answer
to the ping sent after the chat; or, the old worker killed before the
commit, the new worker gives the mark of a handover after its bound and
the client's resend is stored once.
"""
import json
import os
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
import unittest

import chatlib
import chatload
import wsclient

N = int(os.environ.get("UPGRADE_CLIENTS", "1000"))
SANITIZERS = bool(os.environ.get("CHATD_SANITIZERS", "").strip())
# no store write is waited for, but on a loaded machine (other jobs at a
# load average of 10-15 on 2 cores) and in an AddressSanitizer build the
# passing and adoption of 500 connections a slot can take a second
PING_BOUND = float(os.environ.get("UPGRADE_PING_BOUND",
                                  "10.0" if SANITIZERS else "5.0"))
# and against the control window: the upgrade's worst round trip is at
# most the worst of the same load without one plus this margin
PING_MARGIN = float(os.environ.get("UPGRADE_PING_MARGIN",
                                   "3.0" if SANITIZERS else "1.5"))
PING_EVERY = 0.02
PINGERS = 3                 # per worker
UPGRADE_SECONDS = 600       # chatctl's own bound is larger than ours


def ctl_tool():
    return os.environ.get("CHATCTL_BIN") or os.path.join(
        os.path.dirname(chatlib.chatd_bin()), "chatctl")


def start_from(srv, binary):
    """Start srv with the chatd at binary (the path chatd re-executes)."""
    saved = os.environ.get("CHATD_BIN")
    os.environ["CHATD_BIN"] = binary
    try:
        srv.start()
    finally:
        if saved is None:
            del os.environ["CHATD_BIN"]
        else:
            os.environ["CHATD_BIN"] = saved


def status(srv):
    r = chatlib.run([ctl_tool(), "-s", srv.keys["control_socket"], "-j",
                     "status"], timeout=60)
    if r.returncode != 0:
        raise AssertionError("chatctl status: %r" % r.stderr)
    return json.loads(r.stdout)


def msgs_in(srv, slot):
    """Requests slot's worker has read (chatctl stats)."""
    r = chatlib.run([ctl_tool(), "-s", srv.keys["control_socket"], "-j",
                     "stats"], timeout=60)
    if r.returncode != 0:
        raise AssertionError("chatctl stats: %r" % r.stderr)
    return json.loads(r.stdout)["workers"][slot]["msgs_in"]


def log_time(line):
    """The monotonic-free time of a log line, in seconds of the day."""
    t = line.split(" ", 1)[0]          # 2026-12-07T06:02:18.120Z
    h, m, sec = t[11:-1].split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec)


def stalls(log):
    """Per slot, how long its clients went unserved (ms): from the old
    worker's last read to the end of the new worker's adoption, by the
    log's clock (the node's own stall, without the test client's)."""
    stop, done = {}, {}
    for line in log.splitlines():
        for slot in range(16):
            tag = "worker %d " % slot
            if tag not in line:
                continue
            if "upgrade: handing over; no more reading" in line:
                stop.setdefault(slot, log_time(line))
            elif "connections of the previous worker of this slot" in line \
                    and slot in stop and slot not in done:
                done[slot] = log_time(line)
    return {s: round((done[s] - stop[s]) * 1000) for s in done}


def stop_master(pid, timeout=60):
    """SIGTERM a master we did not start as a child; wait for it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    return chatlib.wait_for(lambda: not chatlib.pid_alive(pid), timeout,
                            interval=0.05)


class Upgrade(chatload.ChatLoad, unittest.TestCase):

    n_clients = N
    # within what a sanitizer build's store thread keeps up with
    chats_per_second = float(os.environ.get(
        "CHATLOAD_RATE", "150" if SANITIZERS else "400"))

    def setUp(self):
        self.init_load()
        self.tmp = tempfile.mkdtemp(prefix="chatd-up-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.binary = os.path.join(self.tmp, "chatd")
        shutil.copy2(chatlib.chatd_bin(), self.binary)
        self.new_master = None

    def tearDown(self):
        # a new master is not chatlib's child: stop it here
        if self.new_master is not None and chatlib.pid_alive(
                self.new_master):
            stop_master(self.new_master)
        chatload.ChatLoad.tearDown(self)

    def server(self, **extra):
        keys = {"control_socket": os.path.join(self.tmp, "ctl.sock"),
                "max_connections": N + 1000, "idle_timeout": 3600}
        keys.update(extra)
        return chatlib.Server(workers=2, extra=keys, start_timeout=60)

    # ---- the pings ----------------------------------------------------

    def on_line(self, c, line):
        if c in self.pingers and b'"msgid":102' in line.replace(b" ", b""):
            m = json.loads(line)
            if m.get("seq") == self.pingers[c][0]:
                sent = self.pingers[c][1]
                rtt = time.monotonic() - sent
                self.worst = max(self.worst, rtt)
                self.npings += 1
                self.rtts.append((sent, rtt))
                self.pingers[c] = (None, None)
            return
        chatload.ChatLoad.on_line(self, c, line)

    def ping_tick(self, now):
        for c, (seq, sent) in self.pingers.items():
            if seq is not None:
                # an unanswered ping counts from when it was sent
                self.worst = max(self.worst, now - sent)
                continue
            if now - self.last_ping.get(c, 0) < PING_EVERY:
                continue
            self.seq += 1
            self.pingers[c] = (self.seq, now)
            self.last_ping[c] = now
            self.send(c, {"msgid": 101, "seq": self.seq})

    def window(self, start, end):
        """Worst and 99th percentile round trip (ms) of the pings sent
        in [start, end), and how many; one still unanswered counts from
        when it was sent."""
        now = time.monotonic()
        pings = [(r, t) for t, r in self.rtts if start <= t < end]
        pings += [(now - sent, sent) for seq, sent in self.pingers.values()
                  if seq is not None and start <= sent < end]
        pings.sort()
        if not pings:
            return {"n": 0}
        rtts = [r for r, t in pings]
        return {"n": len(rtts), "worst_ms": round(rtts[-1] * 1000, 1),
                "worst_at_s": round(pings[-1][1] - start, 2),
                "p99_ms": round(rtts[min(len(rtts) - 1,
                                         int(len(rtts) * 0.99))] * 1000, 1),
                "median_ms": round(rtts[len(rtts) // 2] * 1000, 1)}

    def probe_connect(self):
        """A new TCP connection: accepted (by an old or a new worker)."""
        try:
            s = socket.create_connection(("127.0.0.1", self.srv.port), 5)
        except OSError as e:
            self.refused.append(str(e))
            return
        s.close()
        self.connects += 1

    def run_load(self, seconds, until=None):
        """Chat, ping and probe for up to seconds (or until until())."""
        deadline = time.monotonic() + seconds
        last_probe = 0.0
        while time.monotonic() < deadline:
            if until is not None and until():
                return True
            now = time.monotonic()
            self.ping_tick(now)
            if now - last_probe > 0.1:
                last_probe = now
                self.probe_connect()
            self.wait(lambda: False, 0.02, chat=True)
        return until is None

    # ---- the tests ----------------------------------------------------

    def on_node(self, run, **extra):
        """A node started from the copy of the binary: run(srv), then
        stop the new master (if the upgrade made one) and the node."""
        srv = self.server(**extra)
        start_from(srv, self.binary)
        self.srv = srv
        try:
            run(srv)
        finally:
            if self.new_master is not None:
                self.assertTrue(stop_master(self.new_master),
                                "the new master did not stop")
            problems = srv.stop()
        self.assertEqual(problems, [], srv.log_text()[-3000:])

    def upgrade_done(self, srv):
        """chatctl upgrade succeeds, the old master exits: the new one's
        pid in self.new_master."""
        r = chatlib.run([ctl_tool(), "-s", srv.keys["control_socket"],
                         "upgrade"], timeout=UPGRADE_SECONDS)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(chatlib.wait_for(
            lambda: srv.proc.poll() is not None, 60))
        self.new_master = status(srv)["pid"]

    def test_upgrade_under_load(self):
        mport = chatlib.free_port()
        self.on_node(lambda srv: self.under_load(srv, mport),
                     metrics_listen="127.0.0.1:%d" % mport)

    def under_load(self, srv, mport):
        self.acked, self.sent_acked = {}, {}
        self.nchat = 0
        self.pingers, self.last_ping = {}, {}
        self.seq, self.worst, self.npings = 0, 0.0, 0
        self.rtts = []
        self.refused, self.connects = [], 0
        self.clients = self.setup_clients(srv)
        self.assertEqual({c.slot for c in self.clients}, {0, 1})
        old_workers = {c.pid for c in self.clients}
        for slot in (0, 1):
            for c in [c for c in self.clients if c.slot == slot][:PINGERS]:
                self.pingers[c] = (None, None)
        # warm up, then a control window under the same load
        self.run_load(1.0)
        c0 = time.monotonic()
        self.run_load(3.0)
        control = self.window(c0, time.monotonic())
        before_worst, self.worst = self.worst, 0.0

        tool = chatlib.subprocess.Popen(
            [ctl_tool(), "-s", srv.keys["control_socket"], "upgrade"],
            stdout=chatlib.subprocess.PIPE, stderr=chatlib.subprocess.PIPE)
        t0 = time.monotonic()
        t0_wall = time.strftime("%H:%M:%S", time.gmtime()) + \
            ".%03d" % (time.time() % 1 * 1000)
        done = self.run_load(UPGRADE_SECONDS,
                             until=lambda: tool.poll() is not None)
        t1 = time.monotonic()
        took = t1 - t0
        if not done:
            tool.kill()
        out, err = tool.communicate(timeout=30)
        self.assertTrue(done, "chatctl upgrade did not end")
        self.assertEqual(tool.returncode, 0, (out, err,
                                              srv.log_text()[-4000:]))
        self.assertIn(b"upgraded: master pid %d -> " % srv.pid, out)
        # the load goes on, on the new binary
        self.run_load(2.0)
        worst = self.worst
        # the upgrade and its aftermath (the adopters' offline fetches)
        during = self.window(t0, t1 + 2.0)

        # the old master is gone (status 0), a new one serves
        self.assertTrue(chatlib.wait_for(lambda: srv.proc.poll() is not None,
                                         60), "the old master still runs")
        self.assertEqual(srv.proc.returncode, 0)
        st = status(srv)
        self.new_master = st["pid"]
        self.assertNotEqual(st["pid"], srv.pid)
        self.assertTrue(chatlib.pid_alive(st["pid"]))
        with open(srv.pid_file) as f:
            self.assertEqual(int(f.read()), st["pid"])

        # everything acknowledged, then delivered; the same socket, the
        # same session, a new worker
        moved = [c for c in self.settle() if c.pid not in old_workers]
        st = status(srv)
        metrics = self.metrics(mport)
        figures = self.figures(0, [])
        figures.update({
            "upgrade_s": round(took, 2), "moved": len(moved),
            "began_utc": t0_wall,
            "lost": len(self.missing()), "worst_ping_s": round(worst, 3),
            "worst_ping_before_s": round(before_worst, 3),
            "pings": self.npings, "connects": self.connects,
            "ping_control": control, "ping_upgrade": during,
            "stall_ms": stalls(srv.log_text()),
            "refused": len(self.refused), "upgrade": st["upgrade"]})
        print(json.dumps(figures), file=sys.stderr)
        if os.environ.get("UPGRADE_TIMELINE"):
            with open(os.environ["UPGRADE_TIMELINE"], "w") as f:
                f.write(srv.log_text())

        self.assertEqual(self.stats["closed"], [], figures)
        self.assertEqual(len(moved), N, figures)
        self.assertEqual(self.missing(), [], figures)
        # nothing written twice; a chat stored first that waited in the
        # channel may come again from the adopter's fetch, with the same
        # smid (as at a login: chatd(8))
        self.assertEqual(self.stats["dups"], 0, figures)
        # handed over at frame boundaries: not even a handover mark
        self.assert_clean(figures)
        self.assertEqual(self.refused, [], figures)
        self.assertGreater(self.connects, 0)
        self.assertLess(worst, PING_BOUND, figures)
        self.assertLessEqual(during["worst_ms"], control["worst_ms"] +
                             PING_MARGIN * 1000, figures)
        self.assertEqual(st["upgrade"]["state"], "done")
        self.assertEqual(st["upgrade"]["upgrades"], 1)
        self.assertGreaterEqual(st["upgrade"]["handed"], N)
        self.assertIn("chatd_upgrades_total 1\n", metrics)
        self.assertIn("chatd_upgrade_handed_total %d\n" %
                      st["upgrade"]["handed"], metrics)
        log = srv.log_text()
        self.assertIn("upgrade: complete", log)
        self.assertNotIn("as after a crash (answers", log.replace(
            "0 as after a crash (answers", ""))

    def metrics(self, port):
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                    timeout=30) as r:
            return r.read().decode()

    def test_crash_after_upgrade(self):
        """A new worker that crashes after the upgrade: its replacement
        adopts the connections by the crash rules (a blank line ends a
        half-written one), not as handed over at a frame boundary."""
        srv = self.server()
        start_from(srv, self.binary)
        try:
            a, b = srv.users_on_two_workers("crash")
            self.upgrade_done(srv)
            info = a.c.whoami_full()
            self.assertEqual(info["id"], a.id)
            # past the window in which a crash closes adopted connections
            # (HANDOVER_RETRY_SECONDS: a new binary that crashes on them)
            time.sleep(5.5)
            os.kill(info["pid"], signal.SIGKILL)
            self.assertEqual(a.c.recv_line(timeout=60).strip(), b"")
            a.c.send_raw(b"\0")
            again = a.c.whoami_full()
            self.assertEqual(again["id"], a.id)
            self.assertNotEqual(again["pid"], info["pid"])
            a.chat(b.id, "after the crash", cmid=7)
            self.assertEqual(a.c.recv_msgid(103)["cmid"], 7)
            self.assertEqual(b.c.recv_msgid(6)["msg"], "after the crash")
            # the new master is upgraded in turn (SIGUSR2 this time)
            first = self.new_master
            os.kill(first, signal.SIGUSR2)
            self.assertTrue(chatlib.wait_for(
                lambda: not chatlib.pid_alive(first), 120, interval=0.1),
                "the first new master did not hand over")
            st = status(srv)
            self.new_master = st["pid"]
            self.assertEqual(st["upgrade"]["upgrades"], 2, st["upgrade"])
            self.assertEqual(a.c.whoami_full()["id"], a.id)
            self.assertEqual(b.c.whoami_full()["id"], b.id)
        finally:
            if self.new_master is not None:
                self.assertTrue(stop_master(self.new_master))
            problems = srv.stop()
        self.assertEqual(problems, [], srv.log_text()[-3000:])

    def test_answers_follow(self):
        """A connection whose acknowledged chat is still being stored
        moves at once: the old worker finishes the store after the hand
        over and the new worker sends the acknowledgement, before the
        answer to anything the client sent after the chat."""
        self.held_upgrade(kill_old=False)

    def test_answers_lost(self):
        """The old worker dies before its store committed: the new worker
        waits (bounded), then gives the client the mark of a handover;
        the client resends and the chat is stored once."""
        self.held_upgrade(kill_old=True)

    def held_upgrade(self, kill_old):
        """Upgrade while a's acknowledged chat waits for the store.

        To hold the store deterministically: a's old worker is stopped
        (SIGSTOP) while its store thread waits for a write lock the test
        holds; the lock is let go for the new binary's start (each store
        open takes the write lock) and taken again before the worker
        goes on with the upgrade's SIGUSR2 pending."""
        srv = self.server(sqlite_busy_timeout_ms=120000)
        start_from(srv, self.binary)
        db_path = srv.keys["storage"][len("sqlite:"):]
        try:
            a, b = srv.users_on_two_workers("ans")
            info = a.c.whoami_full()
            old_pid, slot = info["pid"], info["worker"]
            a.chat(b.id, "warm", cmid=1)
            self.assertEqual(a.c.recv_msgid(103)["cmid"], 1)
            self.assertEqual(b.c.recv_msgid(6)["msg"], "warm")

            # (the workers may hold the lock a moment: wait for it)
            db = sqlite3.connect(db_path, timeout=60, isolation_level=None)
            db.execute("BEGIN IMMEDIATE")
            locked = True
            try:
                read = msgs_in(srv, slot)
                a.chat(b.id, "held", cmid=2)
                a.c.send_obj({"msgid": 101, "seq": 77})
                # read, so its store job waits for the lock (a loaded
                # machine may take its time): stop the worker there
                self.assertTrue(chatlib.wait_for(
                    lambda: msgs_in(srv, slot) > read, 60, interval=0.05),
                    "worker %d did not read the chat" % slot)
                os.kill(old_pid, signal.SIGSTOP)
                try:
                    # asynchronous: a store thread left running could
                    # take the lock between our ROLLBACK and its stop
                    self.assertTrue(chatlib.wait_for(
                        lambda: chatlib.all_stopped(old_pid), 30,
                        interval=0.01), "worker %d did not stop" % slot)
                    db.execute("ROLLBACK")
                    locked = False
                    tool = chatlib.subprocess.Popen(
                        [ctl_tool(), "-s", srv.keys["control_socket"],
                         "upgrade"], stdout=chatlib.subprocess.PIPE,
                        stderr=chatlib.subprocess.PIPE)
                    # every new worker opened its store; the stopped
                    # one was told to hand over
                    self.assertTrue(chatlib.wait_for(
                        lambda: srv.log_text().count(
                            "waiting for the connections of the old "
                            "binary's worker") >= 2 and
                        "worker %d (pid %d) stops reading" % (
                            slot, old_pid) in srv.log_text(), 120,
                        interval=0.05), srv.log_text()[-3000:])
                    db.execute("BEGIN IMMEDIATE")
                    locked = True
                finally:
                    os.kill(old_pid, signal.SIGCONT)
                out, err = tool.communicate(timeout=UPGRADE_SECONDS)
                # the upgrade ended while the chat still waits for the
                # store: nothing was answered meanwhile
                self.assertEqual(tool.returncode, 0, (out, err))
                self.assertIn("(1 with answers to follow)",
                              srv.log_text(), srv.log_text()[-5000:])
                a.c.expect_none(0.5)
                b.c.expect_none(0.1)
                # the node serves the others meanwhile
                self.assertNotEqual(b.c.whoami_full()["pid"], old_pid)
                if kill_old:
                    os.kill(old_pid, signal.SIGKILL)
                    # bounded (ANSWERS_WAIT_SECONDS): the mark, then the
                    # ping's answer; no acknowledgement
                    self.assertEqual(a.c.recv_line(timeout=60).strip(),
                                     b"")
                    self.assertEqual(a.c.recv_msgid(102)["seq"], 77)
                    a.c.send_raw(b"\0")
                db.execute("ROLLBACK")
                locked = False
            finally:
                if locked:
                    db.execute("ROLLBACK")
                db.close()
            self.assertTrue(chatlib.wait_for(
                lambda: srv.proc.poll() is not None, 60))
            self.new_master = status(srv)["pid"]
            if kill_old:
                # never stored: the resend is, once
                a.chat(b.id, "held", cmid=2)
            # stored, then acknowledged by the new worker, then the ping
            # sent after the chat is answered: in order
            ack = a.c.recv_msgid(103, timeout=60)
            self.assertEqual(ack["cmid"], 2)
            if not kill_old:
                self.assertEqual(a.c.recv_msgid(102)["seq"], 77)
            got = b.c.recv_msgid(6, timeout=60)
            self.assertEqual((got["msg"], got["smid"]),
                             ("held", ack["smid"]))
            again = a.c.whoami_full()
            self.assertEqual(again["id"], a.id)
            self.assertNotEqual(again["pid"], old_pid)
            self.assertTrue(chatlib.wait_for(
                lambda: not chatlib.pid_alive(old_pid), 60))
            log = srv.log_text()
            self.assertEqual("chatd[%d] worker %d notice: upgrade: the store "
                             "jobs ended" % (old_pid, slot) in log,
                             not kill_old)
            self.assertEqual("had no word from the old worker" in log,
                             kill_old)
            # a resend finds it stored: the same smid, no second copy
            a.chat(b.id, "held", cmid=2)
            self.assertEqual(a.c.recv_msgid(103)["smid"], ack["smid"])
            b.c.expect_none(0.5)
        finally:
            if self.new_master is not None:
                self.assertTrue(stop_master(self.new_master))
            problems = srv.stop()
        self.assertEqual(problems, [], srv.log_text()[-3000:])

    def test_websocket_upgrade(self):
        wsport = chatlib.free_port()
        self.on_node(lambda srv: self.ws_upgrade(srv, wsport),
                     websocket_listen="127.0.0.1:%d" % wsport)

    def ws_user(self, srv, wsport, i):
        c = wsclient.WSClient(wsport)
        srv._clients.append(c)
        name = chatlib.unique("wsup%d" % i)
        uid = c.register(name, "pw")
        c.login(uid, "pw")
        u = chatlib.User(srv, c, uid, name, "pw")
        info = c.whoami_full()
        u.pid, u.slot = info["pid"], info["worker"]
        return u

    def ws_drain(self, users, got, acks):
        """Every text message each WebSocket client received: a valid
        chatd message (never a blank or cut one); chats and acks noted."""
        for u in users:
            while u.c._fill(0):
                pass
            while u.c.lines:
                m = u.c.parse(u.c.lines.popleft())
                if m["msgid"] == chatlib.ONE_CHAT:
                    got.setdefault(u.id, set()).add(m["msg"])
                elif m["msgid"] == chatlib.CHAT_ACK:
                    self.assertEqual(m.get("errno", 0), 0, m)
                    acks.setdefault(u.id, set()).add(m["cmid"])
                else:
                    self.assertNotEqual(m["msgid"], chatlib.ERROR, m)

    def ws_upgrade(self, srv, wsport):
        users = []
        for i in range(60):
            users.append(self.ws_user(srv, wsport, i))
            slots = [u.slot for u in users]
            if len(users) >= 8 and min(slots.count(0), slots.count(1)) >= 3:
                break
        slots = [u.slot for u in users]
        self.assertGreaterEqual(min(slots.count(0), slots.count(1)), 3,
                                "WebSocket users not on both workers")
        old_pids = {u.pid for u in users}
        tcp = srv.user("tcpup")
        # two requests left half sent across the upgrade: part of a
        # frame, and the first fragment of a message
        part, frag = users[0], users[1]
        f_part = wsclient.frame(wsclient.OP_TEXT,
                                b'{"msgid":101,"seq":501}')
        part.c.send_raw(f_part[:5])
        j = b'{"msgid":101,"seq":502}'
        frag.c.send_raw(wsclient.frame(wsclient.OP_TEXT, j[:9], fin=False))
        # and a ping, answered by the old or the new worker
        users[2].c.send_raw(wsclient.frame(wsclient.OP_PING, b"hi"))

        got, acks, sent = {}, {}, {}
        cmid = [0]

        def chat_round():
            for k, u in enumerate(users[2:]):
                to = users[2 + (k + 1) % (len(users) - 2)]
                cmid[0] += 1
                text = "ws %d" % cmid[0]
                u.chat(to.id, text, cmid=cmid[0])
                sent[cmid[0]] = (u.id, to.id, text)
            cmid[0] += 1
            tcp.chat(users[2].id, "tcp %d" % cmid[0], cmid=cmid[0])
            sent[cmid[0]] = (tcp.id, users[2].id, "tcp %d" % cmid[0])

        chat_round()
        tool = chatlib.subprocess.Popen(
            [ctl_tool(), "-s", srv.keys["control_socket"], "upgrade"],
            stdout=chatlib.subprocess.PIPE, stderr=chatlib.subprocess.PIPE)
        deadline = time.monotonic() + UPGRADE_SECONDS
        while tool.poll() is None and time.monotonic() < deadline:
            chat_round()
            self.ws_drain(users, got, acks)
            time.sleep(0.05)
        out, err = tool.communicate(timeout=60)
        self.assertEqual(tool.returncode, 0, (out, err,
                                              srv.log_text()[-4000:]))
        for _ in range(5):
            chat_round()
            self.ws_drain(users, got, acks)
            time.sleep(0.05)
        # the halves arrive: the new worker reads on from them
        part.c.send_raw(f_part[5:])
        self.assertEqual(part.c.recv_msgid(102)["seq"], 501)
        frag.c.send_raw(wsclient.frame(wsclient.OP_CONT, j[9:]))
        self.assertEqual(frag.c.recv_msgid(102)["seq"], 502)

        # every chat acknowledged (WebSocket senders) and delivered
        def complete():
            self.ws_drain(users, got, acks)
            while tcp.c._fill(0):
                pass
            return all(c in acks.get(frm, ()) or frm == tcp.id
                       for c, (frm, _, _) in sent.items()) and \
                all(t in got.get(to, ()) for frm, to, t in sent.values())
        self.assertTrue(chatlib.wait_for(complete, 60, interval=0.1),
                        "chats not acknowledged or delivered: %d sent" %
                        len(sent))
        for u in users:
            info = u.c.whoami_full()
            self.assertEqual(info["id"], u.id)
            self.assertNotIn(info["pid"], old_pids)
            self.assertFalse(u.c.eof)
            self.assertIsNone(u.c.close_code)
        self.assertIn((wsclient.OP_PONG, b"hi"), users[2].c.controls)
        log = srv.log_text()
        self.assertNotIn("websocket connections closed", log)
        self.assertNotIn("framing position died", log)
        print(json.dumps({"ws_users": len(users), "chats": len(sent)}),
              file=sys.stderr)

        # the crash rule: a later crash of the new worker closes them
        self.new_master = status(srv)["pid"]
        victim = users[3]
        pid = victim.c.whoami_full()["pid"]
        others = [u for u in users if u.c.whoami_full()["pid"] != pid]
        time.sleep(5.5)     # past HANDOVER_RETRY_SECONDS: adopted, then
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(victim.c.wait_closed(60), "not closed")
        self.assertTrue(chatlib.wait_for(
            lambda: "framing position died with the worker" in
            srv.log_text(), 60, interval=0.1))
        for u in others:
            self.assertEqual(u.c.whoami_full()["id"], u.id)
        # the client connects again and logs in
        again = wsclient.WSClient(wsport)
        srv._clients.append(again)
        again.login(victim.id, "pw")
        self.assertEqual(again.whoami_full()["id"], victim.id)

    def test_settled_sessions_not_read_again(self):
        """A session handed over with nothing of its stored messages
        under way is not fetched again, nor the block list of a user who
        blocks nobody (the log counts them); a user who blocks someone
        has the list read again and the block holds."""
        self.on_node(self.settled)

    def settled(self, srv):
        x, b, k = (srv.user("settle") for _ in range(3))
        k.c.send_obj({"msgid": 114, "userid": x.id})
        self.assertEqual(k.c.recv_msgid(109).get("errno"), 0)
        x.chat(b.id, "before", cmid=1)
        self.assertEqual(x.c.recv_msgid(103)["cmid"], 1)
        self.assertEqual(b.c.recv_msgid(6)["msg"], "before")
        self.upgrade_done(srv)
        log = srv.log_text()
        settled = noblocks = 0
        for line in log.splitlines():
            if "connections of the previous worker of this slot" in \
                    line and "at a boundary with nothing" in line:
                words = line.split("; ")[-1].split()
                settled += int(words[0])
                noblocks += int(line.split(", ")[-1].split()[0])
        self.assertEqual((settled, noblocks), (3, 2), log[-3000:])
        # the block holds (k's list was read again), b gets chats
        x.chat(k.id, "blocked", cmid=2)
        self.assertEqual(x.c.recv_msgid(103)["cmid"], 2)
        x.chat(b.id, "after", cmid=3)
        self.assertEqual(x.c.recv_msgid(103)["cmid"], 3)
        self.assertEqual(b.c.recv_msgid(6)["msg"], "after")
        k.c.expect_none(0.5)
        self.assertEqual(k.c.whoami_full()["id"], k.id)

    def test_failed_start_keeps_serving(self):
        srv = self.server()
        start_from(srv, self.binary)
        try:
            a, b = srv.users_on_two_workers("fail")
            pids = {a.c.whoami_full()["pid"], b.c.whoami_full()["pid"]}
            before = status(srv)
            # the path now holds a start-up that fails
            tmp = self.binary + ".new"
            with open(tmp, "w") as f:
                f.write("#!/bin/sh\necho 'no such luck' >&2\nexit 1\n")
            os.chmod(tmp, 0o755)
            os.rename(tmp, self.binary)
            r = chatlib.run([ctl_tool(), "-s", srv.keys["control_socket"],
                             "upgrade"], timeout=UPGRADE_SECONDS)
            err = r.stderr.decode()
            self.assertEqual(r.returncode, 1, (r.stdout, err))
            self.assertIn("upgrade failed", err)
            self.assertIn("exited with code 1", err)
            # the same node, the same sessions, the same workers
            self.assertTrue(srv.alive())
            self.assertEqual({a.c.whoami_full()["pid"],
                              b.c.whoami_full()["pid"]}, pids)
            a.chat(b.id, "still here", cmid=1)
            self.assertEqual(a.c.recv_msgid(103)["cmid"], 1)
            self.assertEqual(b.c.recv_msgid(6)["msg"], "still here")
            st = status(srv)
            self.assertEqual(st["pid"], before["pid"])
            self.assertEqual(st["upgrade"]["state"], "failed")
            self.assertEqual(st["upgrade"]["failed"], 1)
            self.assertEqual(st["upgrade"]["upgrades"], 0)
            # SIGUSR2 takes the same path; a file it cannot execute
            os.chmod(self.binary, 0o644)
            os.kill(srv.pid, signal.SIGUSR2)
            self.assertTrue(chatlib.wait_for(
                lambda: status(srv)["upgrade"]["failed"] == 2, 60,
                interval=0.1), status(srv)["upgrade"])
            self.assertIn("Permission denied",
                          status(srv)["upgrade"]["error"])
            r = chatlib.run([ctl_tool(), "-s", srv.keys["control_socket"],
                             "upgrade"], timeout=UPGRADE_SECONDS)
            self.assertEqual(r.returncode, 1)
            self.assertIn("Permission denied", r.stderr.decode())
            self.assertEqual(a.c.whoami_full()["id"], a.id)
            self.assertEqual(b.c.whoami_full()["id"], b.id)
            self.assertIn("upgrade failed, the running binary goes on "
                          "serving", srv.log_text())
        finally:
            problems = srv.stop()
        self.assertEqual(problems, [], srv.log_text()[-3000:])


if __name__ == "__main__":
    unittest.main()
