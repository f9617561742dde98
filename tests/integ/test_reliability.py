#!/usr/bin/env python3
"""Reliability of the cross-node queue (include/pubsub.h): two nodes of one
worker each, a private MariaDB and a private Redis with appendonly yes.

A sender on node A chats to two users on node B at about 150/s: plain
seed-style chats to P and acknowledged chats (with a cmid; the server
answers 103 with an smid) to K.  Faults, one at a time:
  (a) B's worker stopped (SIGSTOP) for 6 s, then continued;
  (b) B's worker SIGKILLed mid-batch, three times;
  (e) Redis stopped and started again (AOF);
  (f) node B killed as a crashed machine would be (receivers move to A).
For each: accepted, delivered, lost (must be 0), duplicates seen by the
acknowledging client by smid (must be 0) and by the plain client (report).
Then the queue's crash points, with items put straight into Redis:
after the take (in the processing list, worker killed), after the write
before the ack (same worker, ack lost), and after a failed store (MariaDB
stopped: the item stays in Redis and is stored once it is back); and
forged, stale and replayed items, which are never delivered and are
counted in chatd_bus_rejected_total.  Prints a table.

Needs redis-server and mariadbd: without them SKIPPED (exit 77), except in
CI (CI=true)."""

import hashlib
import hmac
import itertools
import json
import os
import select
import signal
import socket
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
import test_faults  # noqa: E402

ENV = {}
RATE = 150.0
COUNT = 450                 # chats per scenario (half plain, half acked)
ROWS = []


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
    problems = []
    for k in ("A", "B", "redis", "db"):
        x = ENV.pop(k, None)
        if x is None:
            continue
        try:
            if k in ("A", "B"):
                if x.stopped:
                    continue
                x.__exit__(None, None, None)
            elif k == "db":
                x.stop()
            else:
                x.cleanup()
        except Exception as e:
            problems.append("%s: %s" % (k, e))
    if problems:
        raise AssertionError("\n".join(problems))


def print_table():
    head = ("scenario", "accepted", "delivered", "lost", "dup(smid)",
            "rep(smid)", "dup(plain)")
    out = ["%-28s %9s %9s %5s %9s %9s %10s" % head]
    for r in ROWS:
        out.append("%-28s %9d %9d %5d %9d %9d %10d" % r)
    print("\n" + "\n".join(out), flush=True)


# ---- clients ---------------------------------------------------------

class Peer(test_faults.Peer):
    """test_faults' user whose connection comes back after a drop, on the
    first node in nodes that takes it."""

    def __init__(self, uid, nodes):
        super().__init__(None, uid, "pw", "r")
        self.nodes = nodes

    def connect(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.ready = False
        for n in self.nodes:
            if n.stopped:
                continue
            try:
                s = socket.create_connection(("127.0.0.1", n.port), 2)
            except OSError:
                continue
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            self.sock = s
            self.buf = b""
            self.send({"id": self.uid, "msgid": 1, "password": "pw"})
            return True
        return False


class Tally:
    """What the receivers saw, by text."""

    def __init__(self):
        self.got = {}           # text -> count (plain)
        self.smids = {}         # text -> [smid] (acked)
        self.acked = set()      # texts acknowledged to the sender
        self.refused = []       # error answers to the sender
        self.retry_login = []

    def on(self, p, m):
        mid = m.get("msgid")
        if mid == chatlib.LOGIN_ACK:
            if m.get("errno") != 0:
                # the dead session may still be seen for a moment
                self.retry_login.append(p)
                return
            p.ready = True
            for t in m.get("offlinemsg", []):
                self.on(p, json.loads(t))
        elif mid == chatlib.ONE_CHAT:
            text = m.get("msg", "")
            if "smid" in m:
                self.smids.setdefault(text, []).append(m["smid"])
            else:
                self.got[text] = self.got.get(text, 0) + 1
        elif mid == chatlib.CHAT_ACK:
            self.acked.add(m.get("text") or m.get("cmid"))
        elif mid == chatlib.ERROR:
            self.refused.append(m)


def pump(peers, tally, timeout):
    socks = {p.sock: p for p in peers if p.sock is not None}
    if not socks:
        time.sleep(timeout)
        return
    r, _, _ = select.select(list(socks), [], [], timeout)
    for s in r:
        p = socks[s]
        msgs = p.read()
        if msgs is None:
            p.drops += 1
            time.sleep(0.05)
            p.connect()
            continue
        for m in msgs:
            tally.on(p, m)
    while tally.retry_login:
        p = tally.retry_login.pop()
        time.sleep(0.1)
        p.connect()


def users(n):
    c = chatlib.Client(ENV["A"].port)
    uids = [c.register(chatlib.unique("rel"), "pw") for _ in range(n)]
    c.close()
    return uids


def worker_pid(node):
    pids = node.worker_pids()
    assert len(pids) == 1, pids
    return pids[0]


def run_traffic(test, name, fault, receivers_nodes=None, settle=25.0):
    """COUNT chats from A to P (plain) and K (acked) while fault(t) acts;
    then the table row, asserting nothing accepted was lost."""
    A, B = ENV["A"], ENV["B"]
    s_uid, p_uid, k_uid = users(3)
    rn = receivers_nodes or [B, A]
    sender = Peer(s_uid, [A])
    P, K = Peer(p_uid, rn), Peer(k_uid, rn)
    peers = [sender, P, K]
    tally = Tally()
    for p in peers:
        assert p.connect()
    deadline = time.monotonic() + 10
    while not all(p.ready for p in peers) and time.monotonic() < deadline:
        pump(peers, tally, 0.05)
    test.assertTrue(all(p.ready for p in peers), "logins")
    plain, acked = [], {}
    t0 = time.monotonic()
    i = 0
    while i < COUNT or fault(time.monotonic() - t0) is not None:
        now = time.monotonic() - t0
        fault(now)
        while i < COUNT and i < now * RATE and sender.ready:
            text = "%s %d" % (name, i)
            if i % 2 == 0:
                plain.append(text)
                sender.send({"id": s_uid, "msg": text, "msgid":
                             chatlib.ONE_CHAT, "name": "s",
                             "time": chatlib.now_str(), "toid": p_uid})
            else:
                acked[i] = text
                sender.send({"cmid": i, "id": s_uid, "msg": text,
                             "msgid": chatlib.ONE_CHAT, "name": "s",
                             "time": chatlib.now_str(), "toid": k_uid})
            i += 1
        pump(peers, tally, 0.005)
        if now > 120:
            test.fail("%s: the fault did not end" % name)
    # acknowledgements, then deliveries (live, or at a login)
    acked_cmids = tally.acked

    def done():
        return (all(t in tally.got for t in plain) and
                all(acked[c] in tally.smids for c in acked_cmids))
    deadline = time.monotonic() + settle
    while not done() and time.monotonic() < deadline:
        pump(peers, tally, 0.05)
    if not done():
        # whatever was stored comes at the next login
        for p in (P, K):
            p.connect()
        end = time.monotonic() + 5
        while time.monotonic() < end and not (done() and P.ready and
                                               K.ready):
            pump(peers, tally, 0.05)
    for p in peers:
        if p.sock is not None:
            p.sock.close()
    accepted_plain = len(plain) - len(tally.refused)
    lost_plain = [t for t in plain if t not in tally.got]
    lost_acked = [acked[c] for c in acked_cmids if acked[c] not in
                  tally.smids]
    # a client that drops repeats by smid sees a duplicate only when one
    # chat came with two smids (stored twice); same-smid repeats it drops
    dup_smid = sum(len(set(v)) - 1 for v in tally.smids.values())
    rep_smid = sum(len(v) - len(set(v)) for v in tally.smids.values())
    dup_plain = sum(v - 1 for v in tally.got.values())
    delivered = (len([t for t in plain if t in tally.got]) +
                 len([c for c in acked_cmids if acked[c] in tally.smids]))
    accepted = accepted_plain + len(acked_cmids)
    ROWS.append((name, accepted, delivered, len(lost_plain) +
                 len(lost_acked), dup_smid, rep_smid, dup_plain))
    test.assertEqual(len(tally.refused), 0, "%s: chats refused" % name)
    test.assertEqual(lost_plain, [], "%s: plain chats lost" % name)
    test.assertEqual(lost_acked, [], "%s: acknowledged chats lost" % name)
    test.assertEqual(dup_smid, 0, "%s: a chat with two smids" % name)
    test.assertGreater(len(acked_cmids), COUNT // 2 - 5,
                       "%s: acknowledgements missing" % name)


# ---- items straight into Redis -----------------------------------------

_seq = itertools.count(1)


def sign(body, ms=None, key=None, node="test-node"):
    ms = int(time.time() * 1000) if ms is None else ms
    rest = "%s %d ffff.0.%d %s" % (node, ms, next(_seq), body)
    k = (key or ENV["redis"].key).encode()
    mac = hmac.new(k, rest.encode(), hashlib.sha256).hexdigest()
    return mac + " " + rest


def chat_line(to, text, frm=1):
    return json.dumps({"id": frm, "msg": text, "msgid": chatlib.ONE_CHAT,
                       "name": "inj", "time": chatlib.now_str(),
                       "toid": to}, sort_keys=True,
                      separators=(",", ":")) + "\n"


def b_queue():
    """Node B's worker queue (Q), from the set every worker announces."""
    node = ENV["B"].node_id
    for q in ENV["redis"].cmd("SMEMBERS", "chatd:queues"):
        q = q.decode()
        if q.startswith("chatd:q:%s:" % node):
            return q
    raise AssertionError("no queue of node B in chatd:queues")


def rejected_total():
    url = "http://127.0.0.1:%d/metrics" % ENV["mport"]
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    n = 0
    for line in body.splitlines():
        if line.startswith("chatd_bus_rejected_total"):
            n += int(float(line.split()[-1]))
    return n


def collect(c, seconds):
    """Texts of the chats c receives within seconds."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            m = c.recv(max(0.01, end - time.monotonic()))
        except AssertionError:
            break
        if m["msgid"] == chatlib.ONE_CHAT:
            out.append(m["msg"])
    return out


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
        """(b) B's worker SIGKILLed mid-batch, three times."""
        st = {"n": 0, "next": 0.7}

        def fault(t):
            if st["n"] < 3 and t >= st["next"]:
                pids = ENV["B"].worker_pids()
                if len(pids) == 1:
                    os.kill(pids[0], signal.SIGKILL)
                    st["n"] += 1
                    st["next"] = t + 1.0
            return True if st["n"] < 3 else None
        run_traffic(self, "(b) worker killed x3", fault)
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
        run_traffic(self, "(e) redis restarted (AOF)", fault)

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
        c.wait_closed(5)
        self.assertTrue(chatlib.wait_for(B.joined, 20))
        got = []
        deadline = time.monotonic() + 10
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
        # does not answer; the item stays in Redis until it is stored
        c.close()
        off, = users(1)
        with open(os.path.join(ENV["db"].dir, "pid")) as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGSTOP)
        try:
            r.cmd("RPUSH", b_queue(), sign("%d %s" % (off, chat_line(
                off, "after-store"))))
            time.sleep(3.5)
            left = r.cmd("LRANGE", b_queue() + ":p", 0, -1) + \
                r.cmd("LRANGE", b_queue(), 0, -1)
            self.assertTrue(any(b"after-store" in x for x in left),
                            "the item left Redis without being stored")
        finally:
            os.kill(pid, signal.SIGCONT)
        self.assertTrue(chatlib.wait_for(
            lambda: r.cmd("LLEN", b_queue() + ":p") == 0, 15))
        c = chatlib.Client(ENV["A"].port)
        r_ = c.login_raw(off, "pw")
        msgs = [json.loads(t)["msg"] for t in r_.get("offlinemsg", [])]
        msgs += collect(c, 1.0)
        self.assertEqual(msgs.count("after-store"), 1, msgs)
        c.close()
        ROWS.append(("crash points (3 items)", 3, 3, 0, 0, 0, 0))

    def test_5_forged(self):
        """Forged, stale and replayed items: not delivered, counted."""
        r = ENV["redis"]
        uid, = users(1)
        c = chatlib.Client(ENV["B"].port)
        c.login(uid, "pw")
        before = rejected_total()
        q = b_queue()
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
        ROWS.append(("forged/altered/stale/replay", 1, 1, 0, 0, 0, 0))

    def test_6_node_killed(self):
        """(f) node B killed as a crashed machine; receivers go to A."""
        st = {}

        def fault(t):
            if t >= 1.0 and "killed" not in st:
                ENV["B"].kill_hard()
                st["killed"] = True
            return None if "killed" in st else True
        run_traffic(self, "(f) node killed", fault, settle=30.0)


if __name__ == "__main__":
    t0 = time.monotonic()
    prog = unittest.main(exit=False, verbosity=2)
    sys.stderr.write("test_reliability: %.1f s\n" % (time.monotonic() - t0))
    sys.exit(0 if prog.result.wasSuccessful() else 1)
