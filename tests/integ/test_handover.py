#!/usr/bin/env python3
"""Crash handover: connections outlive the worker that served them.

HANDOVER_CLIENTS (default 1000) logged-in clients on a node with two
workers chat, plain and acknowledged ("cmid"), while each worker in turn
is SIGKILLed, HANDOVER_KILLS (default 10) times.  The clients follow the
handover rules of chatd(8): a blank or unparseable line is the mark of a
handover (the adopter ends a half-written line); on it a client sends a
lone NUL (input resumes after the next NUL) and resends what is not
acknowledged, with the same cmid.  Goals checked:

- at least 99.9% of the connections stay open and logged in, without a
  new login: a WHOAMI on the same socket answers with the same user;
- no acknowledged chat is lost: every one reaches its recipient, live or
  (for the window documented in chatd(8)) at the recipient's next login;
- no client reads invalid JSON as a message: a line that does not parse
  is allowed only as the first line after its worker was killed, and
  every parsed line is a well-formed message for that client;
- chatctl's counters (handovers, adopted) saw it.

A WebSocket connection is not adopted after a crash (the rule of
chatd(8)): where its frames stood in either direction died with the
worker, so it is closed and its client connects again, while the plain
TCP clients of the same worker stay (test_websocket_closed_on_crash).

The figures are printed as one JSON line.  Every wait is bounded; the
kill pace follows the node (each kill waits until the previous one was
recovered from), so a slow (sanitizer) build takes longer, not fails.
"""
import functools
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import unittest

import chatlib
import chatload
import wsclient

N = int(os.environ.get("HANDOVER_CLIENTS", "1000"))
KILLS = int(os.environ.get("HANDOVER_KILLS", "10"))
RETRY_SECONDS = 5.0         # HANDOVER_RETRY_SECONDS in handover.h
RECOVER_SECONDS = 120.0     # bound for one kill's recovery (sanitizer)


def log_on_failure(test):
    """A failure prints the node's log: a CI run keeps no temp dir (the
    server keeps its files when the test fails; self.srv names it)."""
    @functools.wraps(test)
    def run(self):
        try:
            return test(self)
        except unittest.SkipTest:
            raise
        except BaseException:
            srv = getattr(self, "srv", None)
            if srv is not None:
                sys.stderr.write("--- chatd log (%s), last 60000 "
                                 "characters ---\n%s\n--- end ---\n" % (
                                     srv.dir, srv.log_text()[-60000:]))
            raise
    return run


class Handover(chatload.ChatLoad, unittest.TestCase):

    n_clients = N

    def setUp(self):
        self.init_load()

    # ---- the test -----------------------------------------------------

    @log_on_failure
    def test_kill_workers_under_load(self):
        ctl_dir = tempfile.mkdtemp(prefix="chatd-ho-", dir="/tmp")
        self.addCleanup(shutil.rmtree, ctl_dir, True)
        extra = {"max_connections": N + 1000, "idle_timeout": 3600,
                 "control_socket": os.path.join(ctl_dir, "ctl.sock")}
        with chatlib.Server(workers=2, extra=extra,
                            start_timeout=60) as srv:
            self.srv = srv
            self.acked, self.sent_acked = {}, {}
            self.nchat = 0
            self.clients = self.setup_clients(srv)
            by_slot = {0: 0, 1: 0}
            for c in self.clients:
                by_slot[c.slot] += 1
            self.assertTrue(by_slot[0] > 0 and by_slot[1] > 0, by_slot)

            kills, recover_s, last_done = 0, [], {0: 0.0, 1: 0.0}
            self.wait(lambda: False, 1.0, chat=True)
            while kills < KILLS:
                slot = kills % 2
                # never inside the retry window of the last adoption
                pause = last_done[slot] + RETRY_SECONDS + 1.5 - \
                    time.monotonic()
                self.wait(lambda: False, max(pause, 0.5), chat=True)
                victims = [c for c in self.live() if c.slot == slot]
                pid = victims[0].pid
                for c in victims:
                    c.resync = True
                t0 = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                kills += 1

                def recovered():
                    return all(c.closed or (c.pid != pid and
                                            c.whoami_at is None)
                               for c in victims)
                # each victim asks which process serves it now
                for c in victims:
                    self.whoami(c)
                ok = self.wait(recovered, RECOVER_SECONDS, chat=True)
                self.assertTrue(ok, "kill %d of worker %d: not recovered "
                                "in %.0f s: %s" % (
                                    kills, slot, RECOVER_SECONDS,
                                    self.figures(kills, recover_s)))
                recover_s.append(time.monotonic() - t0)
                last_done[slot] = time.monotonic()

            # no more kills: everything acknowledged, then delivered; the
            # same socket, the same session: no new login
            kept = self.settle(deliver_s=30)

            # what was stored for a recipient (the documented window) it
            # gets at its next login: log out and in on the same socket
            late = self.relogin_missing(srv)
            lost = self.missing()
            figures = self.figures(kills, recover_s)
            figures.update({"kept": len(kept), "late_at_login": late,
                            "lost": len(lost)})
            counters = self.counters(srv)
            figures.update(counters)
            print(json.dumps(figures), file=sys.stderr)

            self.assertGreaterEqual(len(kept), N * 0.999, figures)
            self.assertEqual(lost, [], figures)
            self.assert_clean(figures)
            self.assertGreaterEqual(counters["handovers"], KILLS, figures)
            self.assertGreaterEqual(counters["adopted"], len(kept), figures)

    @log_on_failure
    def test_half_written_line(self):
        """A worker killed in the middle of writing a line: the client
        reads the cut line as one line that does not parse (never as part
        of the next message), then every acknowledged chat again."""
        count, size = 40, 3000
        with chatlib.Server(workers=2, extra={
                "tcp_send_buffer_bytes": 16384}) as srv:
            self.srv = srv
            a, b = srv.users_on_two_workers("half")
            b_pid = b.c.whoami_full()["pid"]
            # b reads nothing for now, through small buffers: the worker
            # writes part of what it has and keeps the rest
            b.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            texts = ["half %03d %s" % (i, "x" * size) for i in range(count)]
            for i, t in enumerate(texts):
                a.chat(b.id, t, cmid=i + 1)
            acks = set()
            deadline = time.monotonic() + 60
            while len(acks) < count and time.monotonic() < deadline:
                m = a.c.recv(timeout=max(0.1, deadline - time.monotonic()))
                if m["msgid"] == 103:
                    acks.add(m["cmid"])
            self.assertEqual(len(acks), count, "not all acknowledged")
            time.sleep(0.5)
            os.kill(b_pid, signal.SIGKILL)
            got, broken, blank, after_mark = set(), 0, 0, 0
            deadline = time.monotonic() + 60
            while len(got) < count and time.monotonic() < deadline:
                line = b.c.recv_line(timeout=max(0.1, deadline -
                                                 time.monotonic()))
                if not line.strip():
                    blank += 1
                    b.c.send_raw(b"\0")
                    continue
                try:
                    m = json.loads(line)
                except ValueError:
                    broken += 1
                    # the cut line ends where the adopter's newline is
                    b.c.send_raw(b"\0")
                    continue
                if blank + broken > 0:
                    after_mark += 1
                self.assertEqual(m.get("msgid"), 6, line[:200])
                self.assertIn(m["msg"], texts)
                got.add(m["msg"])
            print(json.dumps({"broken": broken, "blank": blank,
                              "after_mark": after_mark,
                              "received": len(got)}), file=sys.stderr)
            self.assertEqual(len(got), count, "acknowledged chats lost")
            # exactly one mark: the cut line, or a blank one when the
            # cut fell on a line boundary
            self.assertEqual(broken + blank, 1)
            self.assertGreater(after_mark, 0)
            info = b.c.whoami_full()
            self.assertEqual(info["id"], b.id)
            self.assertNotEqual(info["pid"], b_pid)

    @log_on_failure
    def test_crash_again_closes(self):
        """A worker that dies again soon after adopting (a poison request)
        does not pass the connections on: they are closed, counted, and
        the node goes on serving."""
        ctl_dir = tempfile.mkdtemp(prefix="chatd-ho-", dir="/tmp")
        self.addCleanup(shutil.rmtree, ctl_dir, True)
        with chatlib.Server(workers=2, extra={
                "control_socket": os.path.join(ctl_dir, "ctl.sock")}) as srv:
            self.srv = srv
            a, b = srv.users_on_two_workers("poison")
            first = a.c.whoami_full()["pid"]
            t0 = time.monotonic()
            os.kill(first, signal.SIGKILL)
            self.assertEqual(a.c.recv_line(timeout=30).strip(), b"")
            a.c.send_raw(b"\0")
            info = a.c.whoami_full()
            self.assertEqual(info["id"], a.id)
            if time.monotonic() - t0 > RETRY_SECONDS - 1:
                self.skipTest("the node took %.1f s to adopt: too slow to "
                              "kill it again within the retry window"
                              % (time.monotonic() - t0))
            os.kill(info["pid"], signal.SIGKILL)
            self.assertTrue(a.c.wait_closed(30), "handed over again")
            # the other worker's user did not notice
            self.assertEqual(b.c.whoami_full()["id"], b.id)
            # a logs in again (its dead session may linger an instant)
            def relogin():
                c = srv.client()
                r = c.login_raw(a.id, "pw")
                c.close()
                return r.get("errno") == 0
            self.assertTrue(chatlib.wait_for(relogin, 30, interval=0.2))
            counters = self.counters(srv)
            self.assertEqual(counters["handovers"], 1, counters)
            self.assertGreaterEqual(counters["handover_failed"], 1, counters)
            self.assertIn("instead of handing them over again",
                          srv.log_text())

    @log_on_failure
    def test_websocket_closed_on_crash(self):
        """A crash closes the worker's WebSocket connections (no frame
        boundary is known for them); its TCP clients are adopted."""
        wsport = chatlib.free_port()
        with chatlib.Server(workers=2, extra={
                "websocket_listen": "127.0.0.1:%d" % wsport}) as srv:
            self.srv = srv
            w = wsclient.WSClient(wsport)
            srv._clients.append(w)
            name = chatlib.unique("wscrash")
            wid = w.register(name, "pw")
            w.login(wid, "pw")
            info = w.whoami_full()
            t = None
            for _ in range(60):
                u = srv.user("tcpcrash")
                if u.c.whoami_full()["pid"] == info["pid"]:
                    t = u
                    break
            self.assertIsNotNone(t, "no TCP client on the same worker")
            os.kill(info["pid"], signal.SIGKILL)
            self.assertTrue(w.wait_closed(60), "the WebSocket stayed open")
            self.assertEqual(w.lines, chatlib.collections.deque())
            # the TCP client was adopted: the mark, then the same session
            self.assertEqual(t.c.recv_line(timeout=60).strip(), b"")
            t.c.send_raw(b"\0")
            again = t.c.whoami_full()
            self.assertEqual(again["id"], t.id)
            self.assertNotEqual(again["pid"], info["pid"])
            # the WebSocket client connects again, to the same account
            w2 = wsclient.WSClient(wsport)
            srv._clients.append(w2)
            self.assertTrue(chatlib.wait_for(
                lambda: w2.login_raw(wid, "pw").get("errno") == 0, 30,
                interval=0.2))
            t.chat(wid, "after the crash", cmid=1)
            self.assertEqual(t.c.recv_msgid(103)["cmid"], 1)
            self.assertEqual(w2.recv_msgid(6)["msg"], "after the crash")

if __name__ == "__main__":
    unittest.main()
