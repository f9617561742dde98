#!/usr/bin/env python3
"""Configuration changes through the binary upgrade (chatd.conf(5): the
keys marked "upgrade").

A node with two workers serves UPCFG_CLIENTS (default 300) logged-in
clients chatting, plain and acknowledged ("cmid").  While they chat,
the configuration file is changed and `chatctl upgrade` run, three
times in a row on the same node:

1. workers 2 -> 3, websocket_listen added, metrics_listen moved: the
   new master binds what is new before it says it is ready; the third
   worker starts empty once the old workers have handed over, and new
   connections reach it; the WebSocket port and the new metrics port
   answer, the old metrics port no longer does;
2. (UPCFG_CLIENTS / 5 more clients join, over the three workers)
   listen moved to another port: the clients connected to the old port
   stay, new ones connect to the new port, the old port refuses (a new
   pid_file and control_socket path in the same file are left for a
   restart: the running ones are kept, and the log says so);
   then max_online changed: a new session table is made, the users online
   are copied into it, the old one is removed once the old workers are
   gone;
3. workers 3 -> 2: the connections of the removed third worker join the
   second one, with their sessions; then 2 -> 3 again, more clients, and
   3 -> 2 with another max_online (a new table, without the removed
   slot's entries: its users are claimed where they go).

Goals, asserted after each: chatctl upgrade exits 0; 0 disconnects,
0 acknowledged chats lost, nothing received twice, no line a client
could not take; every client still the same user on the same socket
(WHOAMI), now on a worker of the new master.  After step 1 there
are clients on the new third worker, and step 2 moves them too.

A second test gives the upgrade configurations it cannot apply: a
syntax error, a websocket_listen port another socket holds, and three
workers with a metrics port another socket holds (it fails after the new
master grew the session table's slot bound).  Each time chatctl upgrade
exits 1 with the reason, the log says it, and the old master goes on
serving the same sessions; then three workers go through.

Two more go from three workers to two without load.  One holds the
removed slot 2 back (its old worker stopped) while a new worker takes a
chat to a settled user of that slot: the new table has no entry for
that user, so the chat is stored with no nudge, and the user's adopter
must fetch it (the new master clears HO_F_SETTLED): it arrives on the
live connection, no new login, and without a repeat of the chat before,
whose removal the test holds up past slot 2's hand over.  In the other a WebSocket client of slot
2 is renumbered into slot 1: still connected, the same session, chats
both ways.
"""
import json
import sys
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import unittest
import urllib.request

import chatlib
import chatload
import wsclient
from test_upgrade import ctl_tool, start_from, status, stop_master

N = int(os.environ.get("UPCFG_CLIENTS", "300"))
SANITIZERS = bool(os.environ.get("CHATD_SANITIZERS", "").strip())
UPGRADE_SECONDS = 600       # chatctl's own bound is larger than ours
EXTRA = max(30, N // 5)     # clients added once there are three workers


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), 5).close()
    except ConnectionRefusedError:
        return True
    return False


def metrics_answer(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                    timeout=10) as r:
            return r.status == 200
    except OSError:
        return False


class UpgradeConfig(chatload.ChatLoad, unittest.TestCase):

    n_clients = N
    chats_per_second = float(os.environ.get(
        "CHATLOAD_RATE", "100" if SANITIZERS else "300"))

    def setUp(self):
        self.init_load()
        self.tmp = tempfile.mkdtemp(prefix="chatd-upcfg-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.binary = os.path.join(self.tmp, "chatd")
        shutil.copy2(chatlib.chatd_bin(), self.binary)
        self.master = None          # the master serving now

    def tearDown(self):
        if self.master is not None and self.master != self.srv.pid and \
                chatlib.pid_alive(self.master):
            stop_master(self.master)
        chatload.ChatLoad.tearDown(self)

    def start_server(self, workers=2, **extra):
        keys = {"control_socket": os.path.join(self.tmp, "ctl.sock"),
                "max_connections": N + 1000, "idle_timeout": 3600}
        keys.update(extra)
        self.srv = chatlib.Server(workers=workers, extra=keys,
                                  start_timeout=60)
        start_from(self.srv, self.binary)
        self.master = self.srv.pid
        return self.srv

    def finish(self):
        srv = self.srv
        failing = sys.exc_info()[0] is not None     # called in a finally
        if self.master is not None and self.master != srv.pid:
            self.assertTrue(stop_master(self.master),
                            "the new master did not stop")
        problems = srv.stop()
        self.assertEqual(problems, [], srv.log_text()[-3000:])
        if failing:
            sys.stderr.write("chatd test files kept in %s\n--- log "
                             "tail ---\n%s\n" % (srv.dir,
                                                srv.log_text()[-6000:]))
        else:
            shutil.rmtree(srv.dir, True)

    def upgrade(self):
        """chatctl upgrade while the clients chat: (status, stdout,
        stderr)."""
        tool = subprocess.Popen(
            [ctl_tool(), "-s", self.srv.keys["control_socket"], "upgrade"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + UPGRADE_SECONDS
        while tool.poll() is None and time.monotonic() < deadline:
            self.wait(lambda: False, 0.05, chat=True)
        if tool.poll() is None:
            tool.kill()
        out, err = tool.communicate(timeout=30)
        return tool.returncode, out.decode(), err.decode()

    def upgrade_quiet(self, nworkers):
        """To nworkers without load: chatctl upgrade succeeds, the new
        master runs nworkers workers."""
        srv = self.srv
        srv.write_config(workers=nworkers)
        r = chatlib.run([ctl_tool(), "-s", srv.keys["control_socket"],
                         "upgrade"], timeout=UPGRADE_SECONDS)
        self.assertEqual(r.returncode, 0, (r.stdout, r.stderr,
                                           srv.log_text()[-4000:]))
        self.master = status(srv)["pid"]
        self.workers_of(self.master, nworkers)

    def add_clients(self, srv, n):
        """n more logged-in clients in the load."""
        old, self.n_clients = self.clients, n
        try:
            new = self.setup_clients(srv)
        finally:
            self.n_clients = N
        self.clients = old + new

    def reset_config(self, keys):
        self.srv.keys.clear()
        self.srv.write_config(**keys)

    def workers_of(self, pid, n):
        """Wait until master pid has n workers; their pids."""
        ok = chatlib.wait_for(lambda: len(chatlib.children_of(pid)) == n,
                              60, interval=0.1)
        self.assertTrue(ok, (chatlib.children_of(pid),
                             self.srv.log_text()[-3000:]))
        return set(chatlib.children_of(pid))

    def upgrade_ok(self, what, nworkers):
        """One upgrade under load; everything arrives, nobody leaves."""
        old = self.master
        rc, out, err = self.upgrade()
        self.assertEqual(rc, 0, (what, out, err,
                                 self.srv.log_text()[-4000:]))
        self.assertIn("upgraded: master pid %d -> " % old, out)
        if old == self.srv.pid:     # our child: its status
            self.assertTrue(chatlib.wait_for(
                lambda: self.srv.proc.poll() is not None, 60,
                interval=0.1), "the old master still runs")
            self.assertEqual(self.srv.proc.returncode, 0)
        else:
            self.assertTrue(chatlib.wait_for(
                lambda: not chatlib.pid_alive(old), 60, interval=0.1),
                "the old master still runs")
        st = status(self.srv)
        self.assertNotEqual(st["pid"], old)
        self.master = st["pid"]
        with open(self.srv.pid_file) as f:
            self.assertEqual(int(f.read()), self.master)
        workers = self.workers_of(self.master, nworkers)
        self.wait(lambda: False, 1.0, chat=True)
        # a slow (sanitizer) build chats less a second: go on until the
        # load assert_clean asks for has been sent
        self.wait(lambda: len(self.acked) > 100, 60, chat=True)
        served = self.settle()
        figures = self.figures(0, [])
        figures.update({"step": what, "lost": len(self.missing()),
                        "served": len(served),
                        "upgrade": st["upgrade"]})
        print(json.dumps(figures), file=sys.stderr)
        self.assertEqual(self.stats["closed"], [], figures)
        self.assertEqual(self.missing(), [], figures)
        self.assertEqual(self.stats["dups"], 0, figures)
        self.assertEqual(len(served), len(self.clients), figures)
        self.assertEqual({c.pid for c in served} - workers, set(),
                         "a client is not served by the new master's "
                         "workers")
        self.assert_clean(figures)
        return served

    def test_1_workers_and_listeners(self):
        m1, m2 = chatlib.free_port(), chatlib.free_port()
        srv = self.start_server(metrics_listen="127.0.0.1:%d" % m1)
        try:
            self.acked, self.sent_acked = {}, {}
            self.nchat = 0
            self.clients = self.setup_clients(srv)
            self.assertEqual({c.slot for c in self.clients}, {0, 1})
            self.wait(lambda: False, 1.0, chat=True)

            # 1. a third worker, a WebSocket listener, metrics elsewhere
            ws = chatlib.free_port()
            srv.write_config(workers=3,
                             websocket_listen="127.0.0.1:%d" % ws,
                             metrics_listen="127.0.0.1:%d" % m2)
            self.upgrade_ok("workers 2 -> 3, websocket_listen added", 3)
            self.assertIn("upgrade: workers 2 -> 3", srv.log_text())
            # the new slot serves new connections; it chats with the rest
            c = srv.client_on(2)
            name = chatlib.unique("w")
            uid = c.register(name, "pw")
            c.login(uid, "pw")
            peer = self.clients[0]
            c.chat(uid, name, peer.uid, "from slot 2", cmid=7)
            self.assertEqual(c.recv_msgid(103)["cmid"], 7)
            self.assertTrue(self.wait(lambda: "from slot 2" in peer.got,
                                      30), "slot 2 -> old client")
            c.close()
            self.assertFalse(refused(ws), "websocket_listen not bound")
            self.assertTrue(metrics_answer(m2), "new metrics port")
            self.assertTrue(chatlib.wait_for(lambda: refused(m1), 30),
                            "the old metrics port still answers")
            # more clients, spread over the three workers, join the load
            self.add_clients(srv, EXTRA)
            self.assertIn(2, {c.slot for c in self.clients})

            # 2. listen moves to another port
            # (a new pid_file and control_socket path are left for a
            # restart: the running ones are kept, and it is logged)
            old_port, new_port = srv.port, chatlib.free_port()
            kept = dict(srv.keys)
            srv.write_config(listen="127.0.0.1:%d" % new_port,
                             pid_file=os.path.join(self.tmp, "other.pid"),
                             control_socket=os.path.join(self.tmp,
                                                         "other.sock"))
            srv.keys.update(pid_file=kept["pid_file"],
                            control_socket=kept["control_socket"])
            self.upgrade_ok("listen moved", 3)
            log = srv.log_text()
            self.assertIn("pid_file changed to %s" % os.path.join(
                self.tmp, "other.pid"), log)
            self.assertIn("control_socket changed to %s" % os.path.join(
                self.tmp, "other.sock"), log)
            self.assertFalse(os.path.exists(os.path.join(self.tmp,
                                                         "other.sock")))
            self.assertTrue(chatlib.wait_for(lambda: refused(old_port), 30),
                            "the old listen port still accepts")
            srv.port = new_port
            c = srv.client()
            self.assertIn(c.whoami(), (0, 1, 2))
            c.close()

            # the upgrade moved slot 2's clients with the others
            self.assertEqual({c.slot for c in self.settle()}, {0, 1, 2})

            # 2b. another session table size: a new table, users copied
            shm = "/dev/shm/" + srv.shm_name.lstrip("/")
            srv.write_config(max_online=4096)    # and the paths as before
            self.upgrade_ok("max_online changed", 3)
            self.assertIn("users online copied", srv.log_text())
            self.assertTrue(os.path.exists(shm + "~"), "no new table")
            self.assertTrue(chatlib.wait_for(
                lambda: not os.path.exists(shm), 30), "old table left")
            self.assertEqual(status(srv)["online"], len(self.clients))

            # 3. back to two workers: slot 2's connections join slot 1
            on2 = {c for c in self.clients if c.slot == 2}
            self.assertTrue(on2)
            srv.write_config(workers=2)
            served = self.upgrade_ok("workers 3 -> 2", 2)
            self.assertEqual({c.slot for c in served}, {0, 1})
            self.assertEqual({c.slot for c in on2}, {1})
            self.assertIn("worker 2 (removed): its connections join "
                          "worker 1", srv.log_text())
            # and again, with another table size: a copy without slot 2
            srv.write_config(workers=3)
            self.upgrade_ok("workers 2 -> 3 again", 3)
            self.add_clients(srv, EXTRA)
            srv.write_config(workers=2, max_online=8192)
            served = self.upgrade_ok("workers 3 -> 2, max_online", 2)
            self.assertEqual({c.slot for c in served}, {0, 1})
        finally:
            self.finish()

    def test_2_bad_config_keeps_serving(self):
        srv = self.start_server()
        try:
            a, b = srv.users_on_two_workers("bad")
            pids = {a.c.whoami_full()["pid"], b.c.whoami_full()["pid"]}
            good = dict(srv.keys)
            holder = socket.socket()
            holder.bind(("127.0.0.1", 0))
            holder.listen(1)
            self.addCleanup(holder.close)
            held = "127.0.0.1:%d" % holder.getsockname()[1]
            cases = [
                ("a syntax error", {}, "no_such_key = 1\n",
                 "configuration has errors"),
                ("a port in use", {"websocket_listen": held}, "",
                 "Address already in use"),
                # fails after the new master grew the table's slot bound
                ("more workers, metrics port in use",
                 {"workers": 3, "metrics_listen": held}, "",
                 "Address already in use"),
            ]
            for n, (what, keys, extra_line, why) in enumerate(cases, 1):
                self.reset_config(good)
                srv.write_config(**keys)
                with open(srv.conf, "a") as f:
                    f.write(extra_line)
                r = chatlib.run([ctl_tool(), "-s",
                                 srv.keys["control_socket"], "upgrade"],
                                timeout=UPGRADE_SECONDS)
                err = r.stderr.decode()
                self.assertEqual(r.returncode, 1, (what, r.stdout, err))
                self.assertIn("upgrade failed", err, what)
                self.assertIn(why, err, what)
                self.assertIn(why, srv.log_text(), what)
                # the same node, sessions and workers
                self.assertTrue(srv.alive(), what)
                st = status(srv)
                self.assertEqual(st["pid"], srv.pid, what)
                self.assertEqual(st["upgrade"]["failed"], n, what)
                self.assertEqual({a.c.whoami_full()["pid"],
                                  b.c.whoami_full()["pid"]}, pids, what)
                a.chat(b.id, "still here %d" % n, cmid=n)
                self.assertEqual(a.c.recv_msgid(103)["cmid"], n, what)
                self.assertEqual(b.c.recv_msgid(6)["msg"],
                                 "still here %d" % n, what)
            # the failures left the node as it was: this one goes through
            self.reset_config(good)
            self.upgrade_quiet(3)
            self.assertEqual(a.c.whoami_full()["id"], a.id)
            a.chat(b.id, "after", cmid=99)
            self.assertEqual(a.c.recv_msgid(103)["cmid"], 99)
            self.assertEqual(b.c.recv_msgid(6)["msg"], "after")
        finally:
            self.reset_config(good)
            self.finish()


    def test_3_removed_slot_user_gets_what_was_stored(self):
        """3 -> 2: a chat to a settled user of the removed slot 2, sent
        through a new worker while slot 2 is not yet handed over, is
        stored (the new table has no entry for that user) and the adopter
        fetches it: it arrives on the live connection, no new login.

        Deterministic: slot 2's old worker is stopped (SIGSTOP) before
        the upgrade, so the old master hands slots 0 and 1 over and then
        waits for it (UPGRADE_SLOT_SECONDS, 60 s: it is let go well
        before); S's chat goes once S's new worker answers it.  Without
        the fix (HO_F_SETTLED cleared in a new table) the adopter does
        not fetch and the chat stays stored until r logs in again.

        And once: the removal of "before"'s stored copy (r is a plain
        client: it goes once written) is held up by the test's lock from
        before the stop until after slot 2 goes on.  The old worker hands
        r over only once it committed (at most 3 s), so the adopter's
        fetch cannot find it; without that, r got "before" again."""
        srv = self.start_server(workers=3)
        stopped = None
        db = None
        try:
            s = srv.users_on_one_worker(1, "ss", slot=0)[0]
            r = srv.users_on_one_worker(1, "sr", slot=2)[0]
            old_s = s.c.whoami_full()["pid"]
            old_r = r.c.whoami_full()["pid"]
            db = sqlite3.connect(srv.keys["storage"][len("sqlite:"):],
                                 timeout=60, isolation_level=None)

            def stop_r():
                os.kill(old_r, signal.SIGSTOP)
                # asynchronous: every thread, the write thread too
                self.assertTrue(chatlib.wait_for(
                    lambda: chatlib.all_stopped(old_r), 30,
                    interval=0.01), "worker 2 did not stop")

            # "before" is stored (acknowledged) while slot 2 is stopped,
            # then written to r with the write lock held by the test: its
            # removal waits for the lock (busy timeout 5 s, then retried)
            stop_r()
            stopped = old_r
            s.chat(r.id, "before", cmid=1)
            self.assertEqual(s.c.recv_msgid(103)["cmid"], 1)
            db.execute("BEGIN IMMEDIATE")
            os.kill(old_r, signal.SIGCONT)
            stopped = None
            self.assertEqual(r.c.recv_msgid(6)["msg"], "before")
            srv.write_config(workers=2)
            # stopped outside a write of its store (the new binary's
            # store check takes the write lock): the removal still waits
            stop_r()
            stopped = old_r
            db.execute("ROLLBACK")
            tool = subprocess.Popen(
                [ctl_tool(), "-s", srv.keys["control_socket"], "upgrade"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            # slots 0 and 1 are handed over; the old master waits for 2
            self.assertTrue(chatlib.wait_for(
                lambda: "worker 2 (pid %d) stops reading" % old_r in
                srv.log_text(), 120, interval=0.05),
                srv.log_text()[-3000:])
            self.assertIn("held until those of worker 2 join them",
                          srv.log_text())
            # s is on its new worker: its chat finds r away in the new
            # table and is stored (acknowledged), with no nudge
            self.assertNotEqual(s.c.whoami_full()["pid"], old_s)
            s.chat(r.id, "while slot 2 waits", cmid=2)
            self.assertEqual(s.c.recv_msgid(103, timeout=60)["cmid"], 2)
            self.assertFalse(chatlib.wait_for(lambda: tool.poll() is not
                                              None, 0.5))
            # slot 2 goes on with "before"'s removal still held up: on
            # the code before, it handed r over at once and the adopter
            # fetched "before" again (well within this second and a half)
            db.execute("BEGIN IMMEDIATE")
            os.kill(old_r, signal.SIGCONT)
            stopped = None
            deadline = time.monotonic() + 1.5
            while (not r.c.lines and not r.c.eof and
                   time.monotonic() < deadline):
                r.c._fill(deadline - time.monotonic())
            got = r.c.recv_msgid(6) if r.c.lines else None
            db.execute("ROLLBACK")
            out, err = tool.communicate(timeout=UPGRADE_SECONDS)
            self.assertEqual(tool.returncode, 0, (out, err,
                                                  srv.log_text()[-4000:]))
            self.master = status(srv)["pid"]
            self.workers_of(self.master, 2)
            # on its live connection, without a new login, and only that
            if got is None:
                got = r.c.recv_msgid(6, timeout=60)
            self.assertEqual(got["msg"], "while slot 2 waits")
            self.assertNotIn("still being removed", srv.log_text())
            info = r.c.whoami_full()
            self.assertEqual((info["id"], info["worker"]), (r.id, 1))
            self.assertNotEqual(info["pid"], old_r)
            self.assertFalse(r.c.eof)
            # once, and the node goes on: both ways
            r.c.expect_none(0.5)
            r.chat(s.id, "after", cmid=3)
            self.assertEqual(r.c.recv_msgid(103)["cmid"], 3)
            self.assertEqual(s.c.recv_msgid(6)["msg"], "after")
            s.chat(r.id, "after too", cmid=4)
            self.assertEqual(s.c.recv_msgid(103)["cmid"], 4)
            self.assertEqual(r.c.recv_msgid(6)["msg"], "after too")
        finally:
            if stopped is not None:
                os.kill(stopped, signal.SIGCONT)
            if db is not None:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                db.close()
            self.finish()

    def test_4_websocket_on_removed_slot(self):
        """3 -> 2: a WebSocket client of the removed slot 2 is renumbered
        into slot 1 like a TCP one: connected, the same session, chats
        both ways."""
        wsport = chatlib.free_port()
        srv = self.start_server(workers=3,
                                websocket_listen="127.0.0.1:%d" % wsport)
        try:
            tcp = srv.users_on_one_worker(1, "wt", slot=0)[0]
            ws = None
            for _ in range(60):
                c = wsclient.WSClient(wsport)
                srv._clients.append(c)
                if c.whoami() == 2:
                    ws = c
                    break
                c.close()
            self.assertIsNotNone(ws, "no WebSocket connection on worker 2")
            name = chatlib.unique("wsrm")
            uid = ws.register(name, "pw")
            ws.login(uid, "pw")
            u = chatlib.User(srv, ws, uid, name, "pw")
            old_pid = ws.whoami_full()["pid"]
            u.chat(tcp.id, "ws before", cmid=1)
            self.assertEqual(ws.recv_msgid(103)["cmid"], 1)
            self.assertEqual(tcp.c.recv_msgid(6)["msg"], "ws before")

            self.upgrade_quiet(2)
            log = srv.log_text()
            self.assertIn("worker 2 (removed): its connections join "
                          "worker 1", log)
            self.assertNotIn("websocket connections closed", log)
            info = ws.whoami_full()
            self.assertEqual((info["id"], info["worker"]), (uid, 1))
            self.assertNotEqual(info["pid"], old_pid)
            self.assertFalse(ws.eof)
            self.assertIsNone(ws.close_code)
            self.assertTrue(any("1 websocket" in line for line in
                                log.splitlines() if "worker 1 " in line
                                and "adopted" in line), log[-3000:])
            u.chat(tcp.id, "ws after", cmid=2)
            self.assertEqual(ws.recv_msgid(103)["cmid"], 2)
            self.assertEqual(tcp.c.recv_msgid(6)["msg"], "ws after")
            tcp.chat(uid, "tcp after", cmid=3)
            self.assertEqual(tcp.c.recv_msgid(103)["cmid"], 3)
            self.assertEqual(ws.recv_msgid(6)["msg"], "tcp after")
            ws.expect_none(0.3)
        finally:
            self.finish()

    def worker_pids_by_slot(self, n):
        """{slot: pid} of the n workers serving now."""
        pids = {}
        for slot in range(n):
            c = self.srv.client_on(slot)
            pids[slot] = c.whoami_full()["pid"]
            c.close()
        return pids

    def upgrade_held_at_1(self, old):
        """A new session table (max_online); worker 1's old process
        (old[1]) stopped, so the old master hands slot 0 over and waits
        for slot 1 (60 s): slot 0 new, slot 2 old.  chatctl's Popen."""
        srv = self.srv
        srv.write_config(max_online=4096)
        os.kill(old[1], signal.SIGSTOP)
        self.assertTrue(chatlib.wait_for(
            lambda: chatlib.all_stopped(old[1]), 30, interval=0.01),
            "worker 1 did not stop")
        tool = subprocess.Popen(
            [ctl_tool(), "-s", srv.keys["control_socket"], "upgrade"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertTrue(chatlib.wait_for(
            lambda: "worker 1 (pid %d) stops reading" % old[1] in
            srv.log_text(), 120, interval=0.05), srv.log_text()[-3000:])
        self.assertIn("a new session table", srv.log_text())
        return tool

    def upgrade_held_done(self, old, tool):
        """Worker 1 goes on: the upgrade ends well."""
        os.kill(old[1], signal.SIGCONT)
        out, err = tool.communicate(timeout=UPGRADE_SECONDS)
        self.assertEqual(tool.returncode, 0, (out, err,
                                              self.srv.log_text()[-4000:]))
        self.master = status(self.srv)["pid"]
        self.workers_of(self.master, 3)

    def upgrade_held_cleanup(self, old, tool):
        """In a finally: worker 1 goes on, the upgrade ends."""
        os.kill(old[1], signal.SIGCONT)
        if tool.returncode is None:
            tool.communicate(timeout=UPGRADE_SECONDS)
        if tool.returncode == 0:    # the new master is stopped
            self.master = status(self.srv)["pid"]

    def conn_on(self, old, slot, old_pid):
        """A connection on slot's worker: its old process (old[slot]) or
        not; one on stopped worker 1 times out."""
        for _ in range(90):
            c = self.srv.client()
            try:
                c.send_obj({"msgid": chatlib.WHOAMI})
                w = c.recv_msgid(chatlib.WHOAMI_ACK, timeout=2)
            except (AssertionError, OSError, chatlib.Closed):
                c.close()
                continue
            if w["worker"] == slot and (w["pid"] == old[slot]) == old_pid:
                return c
            c.close()
        self.fail("no connection on worker %d" % slot)

    def test_5_logout_on_old_worker_login_on_new(self):
        """A new session table, old and new workers side by side: r, a
        plain client, logs in on an old worker and gets a stored chat in
        its batch, logs out while that chat's removal is held up, and at
        once logs in on a new worker.  The old worker's leaving mark is
        in the old table only; the new worker must wait for it (at most
        CHAT_REMOVAL_WAIT, 3 s) before it reads r's stored chats, or r
        gets the chat again.

        Deterministic: worker 1's old process is stopped before the
        upgrade, so the old master hands slot 0 over and then waits for
        slot 1 (60 s; let go well before): slot 0 is new (the new table),
        slot 2 old (the old one).  The removal waits for the test's
        write lock, held from before r's first login until 1 s after its
        second."""
        srv = self.start_server(workers=3)
        db = None
        tool = None
        try:
            s = srv.users_on_one_worker(1, "ls", slot=0)[0]
            rid, rname = srv.register("lr")
            s.chat(rid, "before", cmid=1)
            self.assertEqual(s.c.recv_msgid(103)["cmid"], 1)
            old = self.worker_pids_by_slot(3)
            db = sqlite3.connect(srv.keys["storage"][len("sqlite:"):],
                                 timeout=60, isolation_level=None)
            tool = self.upgrade_held_at_1(old)
            on_old = self.conn_on(old, 2, True)
            on_new = self.conn_on(old, 0, False)
            # r's batch has "before"; its removal waits for the lock
            db.execute("BEGIN IMMEDIATE")
            first = on_old.login(rid, "pw")
            self.assertEqual([m["msg"] for m in first["offlinemsg"]],
                             ["before"])
            on_old.loginout(rid)
            on_old.ping()           # the logout is done: the mark is set
            on_new.send_obj({"id": rid, "msgid": chatlib.LOGIN,
                             "password": "pw"})
            # answered while the removal is still held: on the code
            # before, at once, with "before" in the batch
            deadline = time.monotonic() + 1.0
            while not on_new.lines and not on_new.eof and \
                    time.monotonic() < deadline:
                on_new._fill(deadline - time.monotonic())
            answered = bool(on_new.lines)
            db.execute("ROLLBACK")
            second = chatlib.parse_login(on_new.recv_msgid(
                chatlib.LOGIN_ACK, timeout=30))
            self.assertEqual(second["errno"], 0, second)
            self.assertEqual(second["offlinemsg"], [],
                             "r got its chat again (login answered %s "
                             "the removal ended)" % ("before" if answered
                                                     else "after"))
            # it waited for the old worker's mark (3 s at most)
            self.assertFalse(answered, "r's login was answered while the "
                             "removal was held")
            self.upgrade_held_done(old, tool)
            tool = None
            # the node goes on: both ways, and nothing more for r
            r = chatlib.User(srv, on_new, rid, rname, "pw")
            r.chat(s.id, "after", cmid=2)
            self.assertEqual(on_new.recv_msgid(103)["cmid"], 2)
            self.assertEqual(s.c.recv_msgid(6)["msg"], "after")
            on_new.expect_none(0.5)
        finally:
            if tool is not None:
                self.upgrade_held_cleanup(old, tool)
            if db is not None:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                db.close()
            self.finish()

    def test_6_logout_on_old_worker_after_the_copy(self):
        """A new session table: r, online on old worker 2 when the table
        is copied, logs out there while old and new workers run side by
        side.  The old worker removes r from the old table only; the new
        worker of slot 2, once it adopted the old one's connections,
        removes the entries of sessions it did not adopt, so r can log in
        again.  On the code before, every login of r was refused ("this
        user is already online") after the upgrade, on every worker.
        (Until slot 2 moves, a login on a new worker is still refused so:
        the new table cannot tell a copy from a live session.)"""
        srv = self.start_server(workers=3)
        tool = None
        try:
            r = srv.users_on_one_worker(1, "cr", slot=2)[0]
            old = self.worker_pids_by_slot(3)
            tool = self.upgrade_held_at_1(old)
            r.c.loginout(r.id)
            r.c.ping()
            self.upgrade_held_done(old, tool)
            tool = None
            for slot in (0, 1, 2):
                c = srv.client_on(slot)
                a = c.login_raw(r.id, "pw")
                self.assertEqual(a.get("errno"), 0, (slot, a))
                c.loginout(r.id)
                c.ping()
            self.assertIn("sessions that ended on the old worker",
                          srv.log_text())
        finally:
            if tool is not None:
                self.upgrade_held_cleanup(old, tool)
            self.finish()


if __name__ == "__main__":
    unittest.main()
