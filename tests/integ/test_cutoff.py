#!/usr/bin/env python3
"""One node cut off from Redis for 10 s, then from MariaDB for 15 s,
while Redis and MariaDB stay up for the others and its clients stay
connected (issue 19's fault test).

Three chatd nodes of one worker each share a private Redis and MariaDB.
Node 0 (the cut node) reaches both through TCP relays this test owns
(Relay, below); nodes 1 and 2 talk to them directly.  A relay "cuts"
like a link that goes down: it stops reading and writing (blackhole:
the node's commands go unanswered, its new connections are taken by
the kernel and never served; what was sent meanwhile arrives late once
the link is back, as TCP retransmission would deliver it), or, the
cheaper case, it resets every connection and refuses new ones.

While a link is cut, test_reliability's traffic flows in three
directions at once: from the cut node to users on node 1, from node 2
to users on the cut node, and between users of the cut node; plain
(seed-style) and acknowledging one-to-one chats, acknowledged and
seed-style group chats, chats to users who log in only at the end.
Counted per direction: accepted, delivered, lost (must be 0),
duplicates by smid (must be 0) and of the plain client (at most
PLAIN_REPEATS_MAX).
Every direction must send during the cut, its clients must not be
disconnected, and everything accepted must arrive within a bounded
wait after the link is back.

The node must say what happened (chatd(8)):
  - Redis cut: /health answers 200 "degraded: redis unreachable since
    T (S s), 1 of 1 workers" (it still serves its users and stores
    what it cannot forward, so a load balancer keeps it), chatctl
    status says "degraded", /metrics chatd_degraded 1, chatd_bus_up 0;
    the other nodes stay "ok"; all back to "ok" after the cut.
  - MariaDB cut: /health 503 "worker 0: storage unreachable since ..."
    (it cannot log users in nor accept acknowledged chats), chatctl
    status FAILING, chatd_store_up 0; back to 200 "ok" after.

Prints the table (RELIABILITY.md keeps one).  Needs redis-server and
mariadbd: without them SKIPPED (exit 77), except in CI (CI=true)."""

import json
import os
import re
import selectors
import socket
import struct
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
import test_ops  # noqa: E402
import reltraffic  # noqa: E402
from chatlib import GROUP_CHAT, ONE_CHAT  # noqa: E402

NODES = 3
CUT = 10.0                  # seconds the link to Redis stays down
# to MariaDB: the node says so after 3 s without an answer to a check
# made every 2 s (up to 7 s seen under load): room for a slow machine
DB_CUT = 15.0
RATE = 25.0                 # chats/s per direction: 450 take 18 s
# Repeats a plain client may show per direction: a chat that reaches its
# session twice with one smid is written once (chat_seen.c); what stays
# is a repeat older than the session's last 256 chats, or one reaching a
# new connection (RELIABILITY.md).  0 in every run seen; 40-122 before.
PLAIN_REPEATS_MAX = 5
ENV = {}


# ---- the relay ---------------------------------------------------------

class Relay:
    """A TCP relay on a free loopback port to upstream_port, in a thread
    of its own.  mode: "pass" forwards; "blackhole" neither reads, writes
    nor accepts (a link down: no RST, nothing answered); "reset" closes
    every connection with an RST and resets new ones at once."""

    def __init__(self, upstream_port, name):
        self.upstream, self.name = upstream_port, name
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.mode = "pass"
        self.peer = {}              # socket -> the other end
        self.lock = threading.Lock()
        self.stopping = False
        self.resets = 0
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="relay-" + name)
        self.thread.start()

    def set(self, mode):
        with self.lock:
            self.mode = mode

    @staticmethod
    def _rst(s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
        except OSError:
            pass
        s.close()

    def _close(self, s, rst=False):
        other = self.peer.pop(s, None)
        for x in (s, other):
            if x is None:
                continue
            self.peer.pop(x, None)
            if rst:
                self.resets += 1
                self._rst(x)
            else:
                x.close()

    def _accept(self):
        try:
            c, _ = self.lsock.accept()
        except BlockingIOError:
            return
        if self.mode == "reset":
            self.resets += 1
            self._rst(c)
            return
        try:
            u = socket.create_connection(("127.0.0.1", self.upstream), 2)
        except OSError:
            c.close()
            return
        for s in (c, u):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(10)    # a sendall that cannot finish: give up
        self.peer[c], self.peer[u] = u, c

    def _run(self):
        while not self.stopping:
            with self.lock:
                mode = self.mode
            if mode == "blackhole":
                time.sleep(0.02)
                continue
            if mode == "reset" and self.peer:
                for s in list(self.peer):
                    if s in self.peer:
                        self._close(s, rst=True)
            sel = selectors.DefaultSelector()
            sel.register(self.lsock, selectors.EVENT_READ)
            for s in self.peer:
                sel.register(s, selectors.EVENT_READ)
            ready = sel.select(0.02)
            sel.close()
            for key, _ in ready:
                s = key.fileobj
                if s is self.lsock:
                    self._accept()
                    continue
                if s not in self.peer:
                    continue
                if self.mode == "blackhole":
                    break       # cut meanwhile: read nothing more
                try:
                    data = s.recv(1 << 16)
                    if data:
                        self.peer[s].sendall(data)
                except OSError:
                    data = b""
                if not data:
                    self._close(s)

    def close(self):
        self.stopping = True
        self.thread.join(10)
        for s in list(self.peer):
            if s in self.peer:
                self._close(s)
        self.lsock.close()


class ViaRelay:
    """What cluster.Node needs of its Redis, with the address a relay's."""

    def __init__(self, redis, relay):
        self.redis, self.relay = redis, relay
        self.password, self.key_file = redis.password, redis.key_file
        self.key = redis.key

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.relay.port

    def get(self, key):
        return self.redis.get(key)


# ---- the cluster -------------------------------------------------------

# reltraffic's peers, counted: sends, connects, per traffic thread
_BasePeer = reltraffic.Peer
SENDS = {}                  # thread ident -> [monotonic time of a chat]
PEERS = {}                  # thread ident -> [TrackedPeer]


class TrackedPeer(_BasePeer):
    def __init__(self, uid, nodes):
        super().__init__(uid, nodes)
        self.connects = []          # when each connect was made
        PEERS.setdefault(threading.get_ident(), []).append(self)

    def connect(self):
        self.connects.append(time.monotonic())
        return super().connect()

    def send(self, obj):
        if obj.get("msgid") in (ONE_CHAT, GROUP_CHAT):
            SENDS.setdefault(threading.get_ident(), []).append(
                time.monotonic())
        super().send(obj)


def setUpModule():
    cluster.require(("redis", "mariadb"))
    reltraffic.Peer = TrackedPeer
    try:
        ENV["redis"] = cluster.Redis().start()
        ENV["db"] = cluster.MariaDB().start()
        spec = ENV["db"].spec
        m = re.match(r"^(mysql://[^@]+@127\.0\.0\.1:)(\d+)(/.*)$", spec)
        assert m, "unexpected STORE_SPEC %r" % spec
        ENV["redis_relay"] = Relay(ENV["redis"].port, "redis")
        ENV["db_relay"] = Relay(int(m.group(2)), "mariadb")
        cut_spec = "%s%d%s" % (m.group(1), ENV["db_relay"].port, m.group(3))
        extra = {"db_query_timeout_ms": 1500, "db_connect_timeout_ms": 1500}
        ENV["nodes"] = []
        for i in range(NODES):
            if i == 0:
                n = cluster.Node(cut_spec, ViaRelay(ENV["redis"],
                                                    ENV["redis_relay"]),
                                 "cut%d-%d" % (i, os.getpid()), workers=1,
                                 extra=extra)
            else:
                n = cluster.Node(spec, ENV["redis"], "cut%d-%d" %
                                 (i, os.getpid()), workers=1, extra=extra)
            n.keys.update(test_ops.ops_keys(n.dir))
            ENV["nodes"].append(n.start())
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    reltraffic.Peer = _BasePeer
    if reltraffic.ROWS:
        reltraffic.print_table()
    problems = []
    problems += cluster.stop_nodes(ENV.pop("nodes", []))
    for k in ("redis_relay", "db_relay"):
        if k in ENV:
            ENV.pop(k).close()
    if "redis" in ENV:
        ENV.pop("redis").cleanup()
    if "db" in ENV:
        ENV.pop("db").stop()
    if problems:
        raise AssertionError("\n".join(problems))


def health(node):
    """(status, body) of the node's GET /health; (None, "") if no answer."""
    try:
        st, body, _ = test_ops.http_get(test_ops.metrics_port(node),
                                        "/health", timeout=5)
        return st, body
    except OSError:
        return None, ""


def status(node):
    """chatctl -j status and chatctl status (text) of node."""
    sock = node.keys["control_socket"]
    j = test_ops.ctl(sock, "status", as_json=True)
    t = test_ops.ctl(sock, "status")
    if j.returncode != 0 or t.returncode != 0:
        raise AssertionError("chatctl status: %s %s" % (j.err, t.err))
    return json.loads(j.out), t.out


class CutOff(unittest.TestCase):
    def cut(self, name, relay, mode, during, after, refusals=False,
            secs=CUT):
        """Cut relay (mode) for secs while traffic flows in the three
        directions; during(t) checks the cut node's state (returns
        True once it said what it must), after() once the link is back
        (likewise); both are polled within bounded deadlines."""
        N0, N1, N2 = ENV["nodes"]
        # (row, sender node, receivers' nodes: the first that takes them)
        dirs = [("%s: cut->other" % name, N0, [N1, N0]),
                ("%s: other->cut" % name, N2, [N0, N2]),
                ("%s: cut->cut" % name, N0, [N0])]
        started = []
        back = threading.Event()
        errors, idents = {}, {}
        lock = threading.Lock()

        def fault(t):
            me = threading.get_ident()
            with lock:
                if me not in started:
                    started.append(me)
            return None if back.is_set() else True

        def run(row, sender, rn):
            idents[row] = threading.get_ident()
            try:
                reltraffic.run_traffic(
                    self, row, fault, receivers_nodes=rn,
                    sender_node=sender, offline=True, plain_group=True,
                    # the wait ends when all is in; 60 s because a
                    # sanitizer build at load 15 took 34 s for a chat
                    # stored through the MariaDB cut
                    refusals=refusals, rate=RATE, settle=60.0,
                    max_dup_plain=PLAIN_REPEATS_MAX)
            except BaseException as e:      # noqa: B902 reported below
                errors[row] = e
            finally:
                with lock:                  # never leave the main waiting
                    if threading.get_ident() not in started:
                        started.append(threading.get_ident())
        threads = [threading.Thread(target=run, args=d, name=d[0])
                   for d in dirs]
        for t in threads:
            t.start()
        try:
            self.assertTrue(chatlib.wait_for(
                lambda: len(started) == len(dirs), 180, 0.1),
                "traffic did not start")
            time.sleep(1.0)
            relay.set(mode)
            t_cut = time.monotonic()
            said = False
            while time.monotonic() - t_cut < secs:
                if not said and during(time.monotonic() - t_cut):
                    said = time.monotonic() - t_cut
                time.sleep(0.25)
            relay.set("pass")
            t_back = time.monotonic()
            ok = said and chatlib.wait_for(after, 60, 0.25)
            recovered = time.monotonic() - t_back
        finally:
            relay.set("pass")
            back.set()
            for t in threads:
                t.join(300)
        if os.environ.get("CUTOFF_DEBUG"):
            for n in ENV["nodes"]:
                sys.stderr.write("---- %s\n%s\n" % (n.node_id,
                                                      n.log_text()[-6000:]))
        self.assertFalse([t.name for t in threads if t.is_alive()],
                         "traffic threads did not end")
        if errors:
            raise AssertionError("%s: %s" % (name, "\n".join(
                "%s: %s" % kv for kv in errors.items())))
        self.assertTrue(said, "%s: the cut node did not say so within the "
                        "%.0f s cut" % (name, secs))
        self.assertTrue(ok, "%s: the node did not say it recovered" % name)
        for row, _, _ in dirs:
            me = idents[row]
            during_cut = len([s for s in SENDS.get(me, ())
                              if t_cut <= s <= t_back])
            peers = PEERS.get(me, [])
            drops = sum(p.drops for p in peers)
            # run_traffic logs P and K in again when something is still
            # missing after the settling time: stored copies, not pushed
            relogins = len([t for p in peers for t in p.connects[1:]
                            if t >= t_cut]) - drops
            print("%s: %d chats sent during the cut, %d dropped connection"
                  "(s), %d re-login(s) to fetch what was not pushed" % (
                      row, during_cut, drops, relogins), flush=True)
            self.assertGreater(during_cut, 0, row)
            self.assertEqual(drops, 0, "%s: a client was disconnected"
                             % row)
        print("%s: said after %.1f s of the cut, recovered %.1f s after it"
              % (name, said, recovered), flush=True)

    def others_ok(self, seen, body):
        """The nodes not cut off say "ok"; body is what node 0 said."""
        for n in ENV["nodes"][1:]:
            self.assertEqual(health(n), (200, "ok\n"), n.node_id)
        seen["body"] = body
        return True

    # -- Redis ------------------------------------------------------------

    def redis_cut(self, mode):
        N0 = ENV["nodes"][0]
        seen = {}

        def during(t):
            st, body = health(N0)
            if st != 200 or not body.startswith("degraded"):
                return False
            self.assertRegex(body, r"^degraded: redis unreachable since "
                             r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(\d+ s\), "
                             r"1 of 1 workers\n")
            js, text = status(N0)
            self.assertEqual(js["redis"]["state"], "down")
            self.assertIs(js["health"]["ok"], True, js["health"])
            self.assertIn("redis unreachable", js["health"]["degraded"])
            self.assertIn("health:   degraded: redis unreachable", text)
            m = test_ops.scrape(N0)
            self.assertEqual((m["chatd_degraded"], m["chatd_bus_up"],
                              m["chatd_healthy"], m["chatd_store_up"]),
                             (1, 0, 1, 1))
            return self.others_ok(seen, body)

        def after():
            if health(N0) != (200, "ok\n"):
                return False
            js, text = status(N0)
            m = test_ops.scrape(N0)
            return js["health"]["degraded"] is None and \
                js["redis"]["state"] == "up" and \
                "health:   ok" in text and \
                (m["chatd_degraded"], m["chatd_bus_up"]) == (0, 1)
        self.cut("redis %s" % mode, ENV["redis_relay"], mode, during, after)
        print("redis %s: /health said %r" % (mode, seen["body"]),
              flush=True)

    def test_1_redis_blackhole(self):
        self.redis_cut("blackhole")

    def test_2_redis_reset(self):
        self.redis_cut("reset")

    # -- MariaDB ----------------------------------------------------------

    def test_3_mariadb_blackhole(self):
        N0 = ENV["nodes"][0]
        seen = {}

        def during(t):
            st, body = health(N0)
            if st != 503 or "storage unreachable" not in body:
                return False
            self.assertRegex(body, r"worker 0: storage unreachable since "
                             r"\S+Z \(\d+ s\)")
            js, text = status(N0)
            self.assertIs(js["health"]["ok"], False)
            self.assertIn("storage unreachable", js["health"]["reason"])
            self.assertIn("health:   FAILING: worker 0: storage "
                          "unreachable", text)
            self.assertEqual(test_ops.scrape(N0)["chatd_store_up"], 0)
            return self.others_ok(seen, body)

        def after():
            if health(N0) != (200, "ok\n"):
                return False
            js, _ = status(N0)
            return js["health"]["ok"] is True and \
                test_ops.scrape(N0)["chatd_store_up"] == 1
        # the cut node cannot store: its acknowledged chats are refused
        self.cut("mariadb blackhole", ENV["db_relay"], "blackhole", during,
                 after, refusals=True, secs=DB_CUT)
        print("mariadb blackhole: /health said %r" % seen["body"],
              flush=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
