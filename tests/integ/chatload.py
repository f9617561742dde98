"""chatload - many logged-in clients chatting on one selector, for the
tests that move connections between processes (test_handover.py,
test_upgrade.py).

ChatLoad is a mixin for a unittest.TestCase: init_load() in setUp,
setup_clients() registers and logs in self.n_clients users, wait()
pumps the sockets while the clients chat (plain and acknowledged, with
"cmid"), missing() says which acknowledged chats did not arrive.  The
clients follow the handover rules of chatd(8): a blank or unparseable
line is the mark of a handover (the adopter ends a half-written line);
on it a client sends a lone NUL and resends what is not acknowledged.
"""
import errno
import json
import os
import random
import resource
import selectors
import socket
import time

import chatlib

# CHATLOAD_RATE lowers it for a run under valgrind
CHATS_PER_SECOND = float(os.environ.get("CHATLOAD_RATE", "150"))
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


class ChatLoad:
    """The load; the test case sets n_clients before init_load()."""

    n_clients = 1000
    chats_per_second = CHATS_PER_SECOND

    def init_load(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 20000)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        if min(hard, 20000) < 3 * self.n_clients + 200:
            self.skipTest("RLIMIT_NOFILE %d is too low for %d clients"
                          % (hard, self.n_clients))
        self.sel = selectors.DefaultSelector()
        self.stats = {"bad_after_kill": 0, "bad_unexpected": [],
                      "malformed": [], "errors": [], "closed": [],
                      "plain_sent": 0, "acked_sent": 0, "resends": 0,
                      "dups": 0, "dups_smid": 0}

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
            if m["msg"] in c.got:
                # a chat stored first may come twice, with its smid
                self.stats["dups" if "smid" not in m else
                           "dups_smid"] += 1
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
                n = int((now - last) * self.chats_per_second)
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

    def setup_clients(self, srv):
        # register over one connection, pipelined
        reg = srv.client(timeout=60)
        names = [chatlib.unique("h") for _ in range(self.n_clients)]
        uids = []
        for i in range(0, self.n_clients, 100):
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

    def settle(self, deliver_s=60):
        """Wait until every acknowledged chat is acknowledged (asserted)
        and delivered, then ask every open client WHOAMI; returns the
        clients still served on the same socket as the same user."""
        self.wait(lambda: not any(c.pending for c in self.live()), 120)
        unacked = [(c.uid, k) for c in self.live() for k in c.pending]
        self.assertEqual(unacked, [], "never acknowledged")
        for c in self.live():
            c.resync = False
        self.wait(lambda: not self.missing(), deliver_s)
        for c in self.live():
            c.who = None
            self.whoami(c)
        self.wait(lambda: all(c.closed or c.who is not None
                              for c in self.clients), 120)
        return [c for c in self.clients if not c.closed and
                c.who is not None and c.who.get("id") == c.uid]

    def assert_clean(self, figures):
        """No line a client could not take, no session lost, a load."""
        self.assertEqual(self.stats["bad_unexpected"], [], figures)
        self.assertEqual(self.stats["malformed"], [], figures)
        self.assertEqual([e for c, e in self.stats["errors"]
                          if e.get("errno") == chatlib.ERR_NOT_LOGGED_IN],
                         [], "a session was lost")
        self.assertGreater(len(self.acked), 100, figures)

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
        return {"clients": self.n_clients, "kills": kills,
                "recover_s": [round(x, 2) for x in recover_s],
                "acked": len(self.acked),
                "plain_sent": self.stats["plain_sent"],
                "resends": self.stats["resends"],
                "dups": self.stats["dups"],
                "dups_smid": self.stats["dups_smid"],
                "bad_after_kill": self.stats["bad_after_kill"],
                "bad_unexpected": len(self.stats["bad_unexpected"]),
                "malformed": len(self.stats["malformed"]),
                "errors": len(self.stats["errors"]),
                "closed": self.stats["closed"][:5],
                "nclosed": len(self.stats["closed"])}
