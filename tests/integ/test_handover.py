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

The figures are printed as one JSON line.  Every wait is bounded; the
kill pace follows the node (each kill waits until the previous one was
recovered from), so a slow (sanitizer) build takes longer, not fails.
"""
import errno
import json
import os
import random
import resource
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
import unittest

import chatlib

N = int(os.environ.get("HANDOVER_CLIENTS", "1000"))
KILLS = int(os.environ.get("HANDOVER_KILLS", "10"))
RETRY_SECONDS = 5.0         # HANDOVER_RETRY_SECONDS in handover.h
RECOVER_SECONDS = 120.0     # bound for one kill's recovery (sanitizer)
CHATS_PER_SECOND = 150
RESEND_SECONDS = 4.0
KNOWN = {2, 6, 100, 102, 103, 105}
ERR_BUSY = 29


def frame(obj):
    return json.dumps(obj, separators=(",", ":")).encode() + b"\0"


class Cl:
    """One logged-in user on a non-blocking socket."""

    def __init__(self, uid, name):
        self.uid, self.name = uid, name
        self.sock = None
        self.rbuf = b""
        self.wbuf = b""
        self.slot = self.pid = None
        self.closed = False
        self.logged_in = False
        self.pending = {}       # cmid -> (request, last sent)
        self.next_cmid = 1
        self.got = set()        # texts of chats received
        self.resync = False     # its worker was killed: a mark may come
        self.marks = 0
        self.whoami_at = None   # a WHOAMI in flight since
        self.who = None         # the last WHOAMI answer
        self.login_ack = None


class Handover(unittest.TestCase):

    def setUp(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 20000)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        if min(hard, 20000) < 3 * N + 200:
            self.skipTest("RLIMIT_NOFILE %d is too low for %d clients"
                          % (hard, N))
        self.sel = selectors.DefaultSelector()
        self.stats = {"bad_after_kill": 0, "bad_unexpected": [],
                      "malformed": [], "errors": [], "closed": [],
                      "plain_sent": 0, "acked_sent": 0, "resends": 0}

    def tearDown(self):
        for c in getattr(self, "clients", []):
            if not c.closed and c.sock is not None:
                c.sock.close()
        self.sel.close()

    # ---- I/O ----------------------------------------------------------

    def send(self, c, obj):
        self.send_raw(c, frame(obj))

    def send_raw(self, c, data):
        if c.closed:
            return
        c.wbuf += data
        self.flush(c)

    def flush(self, c):
        while c.wbuf and not c.closed:
            try:
                n = c.sock.send(c.wbuf)
            except BlockingIOError:
                return
            except OSError:
                self.close(c, "send failed")
                return
            c.wbuf = c.wbuf[n:]

    def close(self, c, why):
        if c.closed:
            return
        c.closed = True
        self.stats["closed"].append((c.uid, c.slot, why))
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def pump(self, timeout):
        for key, _ in self.sel.select(timeout):
            c = key.data
            try:
                data = c.sock.recv(1 << 18)
            except BlockingIOError:
                continue
            except OSError as e:
                data = b""
                why = "recv: %s" % errno.errorcode.get(e.errno, e.errno)
            else:
                why = "closed by the server"
            if not data:
                self.close(c, why)
                continue
            c.rbuf += data
            while b"\n" in c.rbuf:
                line, c.rbuf = c.rbuf.split(b"\n", 1)
                self.on_line(c, line)
        for c in self.clients:
            if c.wbuf:
                self.flush(c)

    # ---- what a client does with a line -------------------------------

    def on_line(self, c, line):
        try:
            m = json.loads(line) if line.strip() else None
        except ValueError:
            m = None
        if m is None:
            # a blank line or a broken one: allowed only as the mark of
            # a handover of this client's connection
            if c.resync:
                c.resync = False
                c.marks += 1
                if line.strip():
                    self.stats["bad_after_kill"] += 1
                self.resynchronise(c)
            else:
                self.stats["bad_unexpected"].append((c.uid, line[:200]))
            return
        if not self.well_formed(c, m):
            self.stats["malformed"].append((c.uid, line[:200]))
            return
        mid = m["msgid"]
        if mid == 2:
            c.login_ack = m
            if m["errno"] == 0:
                c.logged_in = True
                for text in m.get("offlinemsg", []):
                    self.on_line(c, text.encode())
        elif mid == 6:
            c.got.add(m["msg"])
        elif mid == 103:
            c.pending.pop(m["cmid"], None)
            self.acked[(c.uid, m["cmid"])] = m["smid"]
        elif mid == 105:
            c.who = m
            c.whoami_at = None
            c.slot, c.pid = m["worker"], m["pid"]
        elif mid == 100:
            self.stats["errors"].append((c.uid, m))

    def well_formed(self, c, m):
        if not isinstance(m, dict) or type(m.get("msgid")) is not int:
            return False
        mid = m["msgid"]
        if mid not in KNOWN:
            return False
        if mid == 6:
            return (type(m.get("id")) is int and m.get("toid") == c.uid
                    and isinstance(m.get("msg"), str)
                    and isinstance(m.get("name"), str))
        if mid == 103:
            return type(m.get("cmid")) is int and type(m.get("smid")) is int
        if mid == 105:
            return (m.get("errno") == 0 and type(m.get("pid")) is int and
                    (not c.logged_in or m.get("id") == c.uid))
        if mid == 2:
            return type(m.get("errno")) is int
        return True

    def resynchronise(self, c):
        """The rules for a client: a lone NUL, then resend what is
        unanswered (the acknowledged chats, a WHOAMI in flight)."""
        self.send_raw(c, b"\0")
        now = time.monotonic()
        for cmid, (req, _) in list(c.pending.items()):
            self.send(c, req)
            c.pending[cmid] = (req, now)
            self.stats["resends"] += 1
        if c.whoami_at is not None:
            self.whoami(c)

    def whoami(self, c):
        c.whoami_at = time.monotonic()
        self.send(c, {"msgid": 104})

    def resend_old(self, now):
        for c in self.clients:
            if c.closed:
                continue
            for cmid, (req, t) in list(c.pending.items()):
                if now - t > RESEND_SECONDS:
                    self.send(c, req)
                    c.pending[cmid] = (req, now)
                    self.stats["resends"] += 1
            if c.whoami_at is not None and now - c.whoami_at > \
                    RESEND_SECONDS:
                self.whoami(c)

    def chat(self, c, to, acked):
        text = "h %d %d %s" % (c.uid, c.next_cmid, "a" if acked else "p")
        req = {"id": c.uid, "msg": text, "msgid": 6, "name": c.name,
               "time": chatlib.now_str(), "toid": to.uid}
        if acked:
            req["cmid"] = c.next_cmid
            c.pending[c.next_cmid] = (req, time.monotonic())
            self.sent_acked[(c.uid, c.next_cmid)] = (to, text)
            self.stats["acked_sent"] += 1
        else:
            self.stats["plain_sent"] += 1
        c.next_cmid += 1
        self.send(c, req)

    def wait(self, pred, seconds, chat=False):
        deadline = time.monotonic() + seconds
        last = time.monotonic()
        while not pred():
            now = time.monotonic()
            if now > deadline:
                return False
            if chat:
                n = int((now - last) * CHATS_PER_SECOND)
                if n > 0:
                    last = now
                    live = self.live()
                    for i in range(n):
                        a, b = random.sample(live, 2)
                        self.nchat += 1
                        self.chat(a, b, acked=self.nchat % 2 == 0)
            self.resend_old(now)
            self.pump(0.01)
        return True

    def live(self):
        return [c for c in self.clients if not c.closed]

    # ---- the test -----------------------------------------------------

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

            # no more kills: everything acknowledged, then delivered
            self.wait(lambda: not any(c.pending for c in self.live()), 120)
            unacked = [(c.uid, k) for c in self.live() for k in c.pending]
            self.assertEqual(unacked, [], "never acknowledged")
            for c in self.live():
                c.resync = False
            self.wait(lambda: not self.missing(), 30)

            # the same socket, the same session: no new login
            for c in self.live():
                c.who = None
                self.whoami(c)
            self.wait(lambda: all(c.closed or c.who is not None
                                  for c in self.clients), 120)
            kept = [c for c in self.clients if not c.closed and
                    c.who is not None and c.who.get("id") == c.uid]

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
            self.assertEqual(self.stats["bad_unexpected"], [], figures)
            self.assertEqual(self.stats["malformed"], [], figures)
            self.assertEqual([e for c, e in self.stats["errors"]
                              if e.get("errno") == chatlib.ERR_NOT_LOGGED_IN],
                             [], "a session was lost")
            self.assertGreater(len(self.acked), 100, figures)
            self.assertGreaterEqual(counters["handovers"], KILLS, figures)
            self.assertGreaterEqual(counters["adopted"], len(kept), figures)

    def test_half_written_line(self):
        """A worker killed in the middle of writing a line: the client
        reads the cut line as one line that does not parse (never as part
        of the next message), then every acknowledged chat again."""
        count, size = 40, 3000
        with chatlib.Server(workers=2, extra={
                "tcp_send_buffer_bytes": 16384}) as srv:
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

    def test_crash_again_closes(self):
        """A worker that dies again soon after adopting (a poison request)
        does not pass the connections on: they are closed, counted, and
        the node goes on serving."""
        ctl_dir = tempfile.mkdtemp(prefix="chatd-ho-", dir="/tmp")
        self.addCleanup(shutil.rmtree, ctl_dir, True)
        with chatlib.Server(workers=2, extra={
                "control_socket": os.path.join(ctl_dir, "ctl.sock")}) as srv:
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

    def setup_clients(self, srv):
        # register over one connection, pipelined
        reg = srv.client(timeout=60)
        names = [chatlib.unique("h") for _ in range(N)]
        uids = []
        for i in range(0, N, 100):
            reg.send_raw(b"".join(frame({"msgid": 4, "name": n,
                                         "password": "pw"})
                                  for n in names[i:i + 100]))
            for _ in names[i:i + 100]:
                r = reg.recv_msgid(5, timeout=60)
                self.assertEqual(r.get("errno"), 0, r)
                uids.append(r["id"])
        reg.close()
        clients = [Cl(u, n) for u, n in zip(uids, names)]
        for c in clients:
            c.sock = socket.create_connection(("127.0.0.1", srv.port), 30)
            c.sock.setblocking(False)
            self.sel.register(c.sock, selectors.EVENT_READ, c)
        self.clients = clients
        # in waves: the password hash queue answers "busy" when full
        deadline = time.monotonic() + 300
        while not all(c.logged_in for c in clients):
            self.assertLess(time.monotonic(), deadline, "logins")
            wave = [c for c in clients if not c.logged_in][:100]
            for c in wave:
                c.login_ack = None
                self.send(c, {"id": c.uid, "msgid": 1, "password": "pw"})
            ok = self.wait(lambda: all(c.login_ack is not None or c.closed
                                       for c in wave), 120)
            self.assertTrue(ok, "logins not answered")
            busy = [c.login_ack.get("retryms", 0) for c in wave
                    if not c.logged_in]
            for c in wave:
                self.assertTrue(c.logged_in or c.login_ack.get("errno") ==
                                ERR_BUSY, c.login_ack)
            if busy:
                self.wait(lambda: False, min(max(busy) / 1000.0, 5.0))
        for c in clients:
            self.whoami(c)
        self.assertTrue(self.wait(lambda: all(c.who is not None
                                              for c in clients), 60))
        self.assertEqual(self.stats["closed"], [])
        return clients

    def missing(self):
        return [(s, cmid) for (s, cmid) in self.acked
                if not self.sent_acked[(s, cmid)][0].closed and
                self.sent_acked[(s, cmid)][1] not in
                self.sent_acked[(s, cmid)][0].got]

    def relogin_missing(self, srv):
        miss = self.missing()
        who = {self.sent_acked[k][0] for k in miss}
        for c in who:
            c.login_ack = None
            c.logged_in = False
            self.send(c, {"id": c.uid, "msgid": 3})
            self.send(c, {"id": c.uid, "msgid": 1, "password": "pw"})
        self.wait(lambda: all(c.closed or c.login_ack is not None
                              for c in who), 60)
        return len(miss) - len(self.missing())

    def counters(self, srv):
        """chatctl status: the node's handover counters."""
        tool = os.environ.get("CHATCTL_BIN") or os.path.join(
            os.path.dirname(chatlib.chatd_bin()), "chatctl")
        r = chatlib.run([tool, "-s", srv.keys["control_socket"], "-j",
                         "status"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        h = json.loads(r.stdout)["handover"]
        return {"handovers": h["handovers"], "adopted": h["adopted"],
                "handover_failed": h["failed"]}

    def figures(self, kills, recover_s):
        return {"clients": N, "kills": kills,
                "recover_s": [round(x, 2) for x in recover_s],
                "acked": len(self.acked),
                "plain_sent": self.stats["plain_sent"],
                "resends": self.stats["resends"],
                "bad_after_kill": self.stats["bad_after_kill"],
                "bad_unexpected": len(self.stats["bad_unexpected"]),
                "malformed": len(self.stats["malformed"]),
                "errors": len(self.stats["errors"]),
                "closed": self.stats["closed"][:5],
                "nclosed": len(self.stats["closed"])}


if __name__ == "__main__":
    unittest.main()
