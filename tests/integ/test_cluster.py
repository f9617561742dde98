#!/usr/bin/env python3
"""Two chatd nodes sharing a private MariaDB and Redis, behind a private
nginx (stream module): cross-node chat one to one and in groups, live and
offline, presence, duplicate logins, Redis going away, a node killed hard.

Needs redis-server, mariadbd and nginx with the stream module: without
them this test is SKIPPED (exit 77), except in CI (CI=true), where that is
a failure."""

import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
from chatlib import (GROUP_CHAT, LOGIN_ACK, ONE_CHAT,  # noqa: E402
                     find, unique)

ENV = {}


def setUpModule():
    try:
        start_cluster()
    except BaseException:
        tearDownModule()
        raise


def start_cluster():
    t0 = time.monotonic()
    ENV["redis"] = cluster.Redis()
    ENV["redis"].start()
    ENV["db"] = cluster.MariaDB()
    ENV["db"].start()
    spec = ENV["db"].spec
    # A writes sealed batches (version 3), B the default (2): every
    # cross-node test runs both formats, one each way
    ENV["A"] = cluster.Node(spec, ENV["redis"], "nodeA-%d" % os.getpid(),
                            extra={"cluster_item_version": 3})
    ENV["A"].start()
    ENV["B"] = cluster.Node(spec, ENV["redis"], "nodeB-%d" % os.getpid())
    ENV["B"].start()
    ENV["nginx"] = cluster.Nginx([ENV["A"].port, ENV["B"].port])
    ENV["nginx"].start()
    print("cluster up in %.1f s (MariaDB %.1f s): redis %s, nodes %s and "
          "%s, nginx %d" % (time.monotonic() - t0, ENV["db"].start_seconds,
                            ENV["redis"].addr, ENV["A"].listen,
                            ENV["B"].listen, ENV["nginx"].port),
          file=sys.stderr)


def tearDownModule():
    """Stop whatever was started, even after a failure half-way."""
    cluster.stop_all(ENV)


class Balancer:
    """nginx as a chatlib "server": clients connect to its port."""

    def __init__(self, nginx):
        self.port = nginx.port
        self.clients = []

    def client(self):
        c = chatlib.Client(self.port)
        self.clients.append(c)
        return c

    def close_all(self):
        for c in self.clients:
            c.close()


def node_of(c):
    """Which node a connection landed on: "A" or "B"."""
    pid = c.whoami_full()["pid"]
    for k in ("A", "B"):
        n = ENV[k]
        if not n.stopped and n.owns_pid(pid):
            return k
    raise AssertionError("pid %d belongs to no node" % pid)


def login_on(client_factory, prefix, node=None):
    """Register a user and log in on a new connection from factory (on
    node, "A" or "B", when given: connect until it lands there)."""
    name = unique(prefix)
    c = client_factory()
    uid = c.register(name, "pw")
    for _ in range(20):
        if node is None or node_of(c) == node:
            break
        c.close()
        c = client_factory()
    else:
        raise AssertionError("no connection landed on node %s" % node)
    u = chatlib.User(None, c, uid, name, "pw")
    u.reply = c.login(uid, "pw")
    return u


def login_existing(client_factory, uid, timeout=5.0):
    """Log uid in on a new connection; retries briefly while the last
    session's release is on its way to Redis."""
    deadline = time.monotonic() + timeout
    while True:
        c = client_factory()
        r = c.login_raw(uid, "pw")
        if r["errno"] == 0 or time.monotonic() > deadline:
            break
        c.close()
        time.sleep(0.05)
    if r["errno"] != 0:
        raise AssertionError("login of %d failed: %r" % (uid, r))
    u = chatlib.User(None, c, uid, r["name"], "pw")
    u.reply = chatlib.parse_login(r)
    u.backlog = backlog(u.reply, c)
    return u


def backlog(reply, c):
    """Texts of the offline messages of a login: those in the answer,
    then those stored while the login was under way, which follow it as
    ordinary messages (the storing node tells the user's worker)."""
    msgs = drain(c)
    time.sleep(0.25)
    msgs += drain(c)
    return texts(reply["offlinemsg"]) + [
        m["msg"] for m in msgs if m["msgid"] in (ONE_CHAT, GROUP_CHAT)]


def texts(msgs):
    return [m["msg"] for m in msgs]


def drain(c):
    """Everything that arrives before a ping's answer, taken off the
    queue (chatlib's sync() leaves it there)."""
    msgs = c.sync()
    for _ in msgs:
        c.lines.popleft()
    return msgs


def leave(u):
    """Log out and wait until Redis no longer lists u as online (the
    release reaches Redis a moment after the logout was handled)."""
    u.c.loginout(u.id)
    u.c.sync()
    if not chatlib.wait_for(
            lambda: ENV["redis"].get("chatd:on:%d" % u.id) is None, 5):
        raise AssertionError("presence of %d not released" % u.id)


def lb_node(lb):
    c = lb.client()
    try:
        return node_of(c)
    finally:
        c.close()


class Cluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.A = ENV["A"]
        cls.B = ENV["B"]
        cls.redis = ENV["redis"]
        cls.lb = Balancer(ENV["nginx"])

    @classmethod
    def tearDownClass(cls):
        cls.lb.close_all()

    def assert_forwarded(self, got, sent, sender):
        self.assertEqual(got["id"], sender.id, got)
        self.assertEqual(got["name"], sender.name, got)
        for k, v in sent.items():
            if k not in ("id", "name"):
                self.assertEqual(got.get(k), v, "field %r: %r" % (k, got))
                self.assertIs(type(got.get(k)), type(v), k)

    def quiet(self, *users):
        for u in users:
            self.assertEqual(u.c.sync(), [])

    def make_group(self, owner, members):
        gname = unique("g")
        owner.c.creategroup(owner.id, gname, "cluster group")
        self.quiet(owner)
        owner.c.loginout(owner.id)
        r = owner.c.login(owner.id, "pw")
        gid = find(r["groups"], groupname=gname)["id"]
        for m in members:
            m.c.addgroup(m.id, gid)
            self.quiet(m)
        return gid

    # ---- one to one ------------------------------------------------

    def test_one_to_one_live_both_ways(self):
        a = login_on(self.A.client, "a")
        b = login_on(self.B.client, "b")
        sent = a.chat(b.id, "from A to B \U0001F600", extra=[1, "x"])
        self.assert_forwarded(b.c.recv_msgid(ONE_CHAT), sent, a)
        sent = b.chat(a.id, "from B to A \"quoted\" \\ \u00e9")
        self.assert_forwarded(a.c.recv_msgid(ONE_CHAT), sent, b)
        # many in a row arrive in order
        for i in range(50):
            a.chat(b.id, "n%d" % i)
        got = [b.c.recv_msgid(ONE_CHAT)["msg"] for _ in range(50)]
        self.assertEqual(got, ["n%d" % i for i in range(50)])
        self.quiet(a, b)

    def test_sent_on_keeps_order(self):
        """Chats to a known queue let the sender go on; chats whose queue
        is looked up wait for them: each recipient sees its chats in the
        order sent, none lost or doubled."""
        a = login_on(self.A.client, "so")
        b = login_on(self.B.client, "so")
        cs = [login_on(self.B.client, "so") for _ in range(4)]
        sent = a.chat(b.id, "warm")      # b's queue is cached on A now
        self.assert_forwarded(b.c.recv_msgid(ONE_CHAT), sent, a)
        want = {u.id: [] for u in [b] + cs}
        for i in range(200):
            # every 50th goes to a user not cached yet (looked up)
            u = cs[i // 50] if i % 50 == 0 else b
            a.chat(u.id, "o%d" % i)
            want[u.id].append("o%d" % i)
        for u in [b] + cs:
            got = [u.c.recv_msgid(ONE_CHAT)["msg"]
                   for _ in range(len(want[u.id]))]
            self.assertEqual(got, want[u.id])
        self.quiet(a, b, *cs)

    def test_sent_on_while_redis_stalls(self):
        """A chat to a cached queue does not hold its sender: with Redis
        stopped (SIGSTOP) the sender's next chat, to a user on its own
        node, arrives while the push is unanswered; the push then goes
        through once Redis runs again, exactly once."""
        b = login_on(self.B.client, "st")
        a = login_on(self.A.client, "st")
        a2 = login_on(self.A.client, "st")
        # b's claim reaches A on the subscriber connection and drops the
        # cached queue; it can come after the first warm chat's lookup
        # (spiped in test_redis_tunnel delays it), so a second one caches
        # b's queue for good: the point here is a known queue
        for text in ("warm", "warm again"):
            sent = a.chat(b.id, text)
            self.assert_forwarded(b.c.recv_msgid(ONE_CHAT), sent, a)
        pid = self.redis.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            far = a.chat(b.id, "while redis stalls")
            near = a.chat(a2.id, "same node meanwhile")
            # before, a waited for the push's answer (10 s at most)
            try:
                got = a2.c.recv_msgid(ONE_CHAT, timeout=8)
            except AssertionError as e:
                raise AssertionError("%s\nnode A's log:\n%s" % (
                    e, self.A.log_text()[-3000:]))
            self.assert_forwarded(got, near, a)
        finally:
            os.kill(pid, signal.SIGCONT)
        self.assert_forwarded(b.c.recv_msgid(ONE_CHAT, timeout=20), far, a)
        self.assertTrue(chatlib.wait_for(
            lambda: self.A.joined() and self.B.joined(), 20),
            "nodes did not reconnect to Redis")
        self.quiet(a, a2, b)
        b.c.loginout(b.id)
        r = b.c.login(b.id, "pw")
        self.assertEqual(backlog(r, b.c), [])     # once, not stored too

    def test_no_such_user_across_cluster(self):
        a = login_on(self.A.client, "nsu")
        a.chat(2147480000, "nobody")
        m = a.c.recv()
        self.assertEqual((m["msgid"], m["errno"]), (chatlib.ERROR,
                                                     chatlib.ERR_NO_SUCH_USER))

    def test_offline_stored_on_one_node_delivered_on_other(self):
        a = login_on(self.A.client, "off")
        cid, _ = chatlib.Server.register.__get__(self.A)("off")
        for i in range(3):
            a.chat(cid, "stored %d" % i)
        self.quiet(a)
        c = login_existing(self.B.client, cid)
        self.assertEqual(c.backlog, ["stored %d" % i for i in range(3)])
        # exactly once: not again at the next login, on either node
        leave(c)
        c2 = login_existing(self.A.client, cid)
        self.assertEqual(c2.backlog, [])
        # and the other way round: stored via B, delivered via A
        leave(c2)
        b = login_on(self.B.client, "off")
        b.chat(cid, "via B")
        self.quiet(b)
        c3 = login_existing(self.A.client, cid)
        self.assertEqual(c3.backlog, ["via B"])

    # ---- groups ----------------------------------------------------

    def test_group_chat_across_nodes(self):
        a = login_on(self.A.client, "ga", node=None)
        b = login_on(self.B.client, "gb")
        a2 = login_on(self.A.client, "ga2")
        away = login_on(self.B.client, "gaway")
        gid = self.make_group(a, [b, a2, away])
        leave(away)
        sent = a.groupchat(gid, "hello group from A")
        self.assert_forwarded(b.c.recv_msgid(GROUP_CHAT), sent, a)
        self.assert_forwarded(a2.c.recv_msgid(GROUP_CHAT), sent, a)
        sent = b.groupchat(gid, "hello group from B")
        self.assert_forwarded(a.c.recv_msgid(GROUP_CHAT), sent, b)
        self.assert_forwarded(a2.c.recv_msgid(GROUP_CHAT), sent, b)
        self.quiet(a, b, a2)      # the sender does not get their own
        w = login_existing(self.A.client, away.id)
        self.assertEqual(w.backlog,
                         ["hello group from A", "hello group from B"])
        leave(w)
        w = login_existing(self.B.client, away.id)
        self.assertEqual(w.backlog, [])

    # ---- presence --------------------------------------------------

    def test_presence_and_duplicate_login(self):
        a = login_on(self.A.client, "pa")
        b = login_on(self.B.client, "pb")
        a.c.addfriend(a.id, b.id)
        self.quiet(a)
        gid = self.make_group(a, [b])
        a.c.loginout(a.id)
        r = a.c.login(a.id, "pw")
        self.assertEqual(find(r["friends"], id=b.id)["state"], "online")
        g = find(r["groups"], id=gid)
        self.assertEqual(find(g["users"], id=b.id)["state"], "online")
        # b sees a online too (a is on the other node)
        b.c.loginout(b.id)
        r = b.c.login(b.id, "pw")
        self.assertEqual(find(r["friends"], id=a.id)["state"], "online")
        # a second login is refused on the other node, the same node and
        # through the balancer
        for f in (self.A.client, self.B.client, self.lb.client,
                  self.lb.client):
            c = f()
            m = c.login_raw(b.id, "pw")
            c.close()
            self.assertEqual((m["msgid"], m["errno"]), (LOGIN_ACK, 2), m)
        # b leaves: offline for a, and free to log in on node A
        leave(b)
        a.c.loginout(a.id)
        r = a.c.login(a.id, "pw")
        self.assertEqual(find(r["friends"], id=b.id)["state"], "offline")
        b2 = login_existing(self.A.client, b.id)
        sent = b2.chat(a.id, "now on the same node")
        self.assert_forwarded(a.c.recv_msgid(ONE_CHAT), sent, b2)

    # ---- nginx -----------------------------------------------------

    def test_through_nginx(self):
        seen = set()
        for _ in range(6):
            seen.add(lb_node(self.lb))
        self.assertEqual(seen, {"A", "B"}, "round robin reaches both nodes")
        x = login_on(self.lb.client, "nx")
        y = login_on(self.lb.client, "ny")
        sent = x.chat(y.id, "through nginx, A to B")
        self.assert_forwarded(y.c.recv_msgid(ONE_CHAT), sent, x)
        sent = y.chat(x.id, "through nginx, B to A")
        self.assert_forwarded(x.c.recv_msgid(ONE_CHAT), sent, y)
        z = login_on(self.lb.client, "nz")
        gid = self.make_group(x, [y, z])
        zid = z.id
        leave(z)
        sent = y.groupchat(gid, "group via nginx")
        self.assert_forwarded(x.c.recv_msgid(GROUP_CHAT), sent, y)
        x.chat(zid, "one to one, offline, via nginx")
        self.quiet(x, y)
        z = login_existing(self.lb.client, zid)
        self.assertEqual(z.backlog,
                         ["group via nginx", "one to one, offline, via nginx"])

    # ---- exactly once when the recipient leaves mid-stream ---------

    def test_exactly_once_while_logging_out(self):
        a = login_on(self.A.client, "eo")
        b = login_on(self.B.client, "eo")
        n = 300

        def send():
            for i in range(n):
                a.chat(b.id, "m%d" % i)
                time.sleep(0.001)
        t = threading.Thread(target=send)
        t.start()
        got = [b.c.recv_msgid(ONE_CHAT)["msg"] for _ in range(50)]
        # b leaves while messages are still on their way
        b.c.loginout(b.id)
        got += [m["msg"] for m in drain(b.c) if m["msgid"] == ONE_CHAT]
        t.join()
        self.quiet(a)
        time.sleep(0.3)     # the last publish answers are stored
        r = login_existing(self.A.client, b.id)
        stored = r.backlog
        allm = got + stored
        self.assertEqual(len(allm), len(set(allm)), "duplicates")
        self.assertEqual(sorted(allm), sorted("m%d" % i for i in range(n)),
                         "lost messages")
        print("exactly once: %d live, %d stored" % (len(got), len(stored)),
              file=sys.stderr)

    # ---- Redis goes away -------------------------------------------

    def test_y_redis_restart(self):
        a, a2 = login_on(self.A.client, "ra"), login_on(self.A.client, "ra")
        b = login_on(self.B.client, "rb")
        self.redis.stop()
        t0 = time.monotonic()
        # same-node chat goes on
        sent = a.chat(a2.id, "same node, no redis")
        self.assert_forwarded(a2.c.recv_msgid(ONE_CHAT), sent, a)
        # cross-node messages are stored for the recipient, not lost
        stored = a.chat(b.id, "cross node, no redis")
        self.quiet(a, b)
        # logins work (presence is claimed once Redis is back)
        late = login_on(self.A.client, "rlate")
        down = time.monotonic() - t0
        self.redis.start()
        t0 = time.monotonic()
        self.assertTrue(chatlib.wait_for(
            lambda: self.A.joined() and self.B.joined(), 15),
            "nodes did not reconnect to Redis")
        # presence is re-asserted: b is online again for everyone
        self.assertTrue(chatlib.wait_for(
            lambda: self.redis.get("chatd:on:%d" % b.id) is not None and
            self.redis.get("chatd:on:%d" % late.id) is not None, 10),
            "presence not re-asserted")
        print("redis restart: down %.2f s; nodes reconnected and re-asserted "
              "presence %.2f s after it was back"
              % (down, time.monotonic() - t0), file=sys.stderr)
        m = self.A.client().login_raw(b.id, "pw")
        self.assertEqual(m["errno"], 2, m)
        m = self.B.client().login_raw(late.id, "pw")
        self.assertEqual(m["errno"], 2, m)
        # what A stored meanwhile is pushed to b, still online, once Redis
        # is back (A kept the nudge), then live chat goes on
        self.assert_forwarded(b.c.recv_msgid(ONE_CHAT), stored, a)
        sent = a.chat(b.id, "redis is back")
        self.assert_forwarded(b.c.recv_msgid(ONE_CHAT), sent, a)
        # a flushed script cache is survived (NOSCRIPT: sent in full)
        self.redis.cmd("SCRIPT", "FLUSH")
        sent = b.chat(a.id, "after SCRIPT FLUSH")
        self.assert_forwarded(a.c.recv_msgid(ONE_CHAT), sent, b)
        b.c.loginout(b.id)
        r = b.c.login(b.id, "pw")
        self.assertEqual(backlog(r, b.c), [])     # delivered once, above

    # ---- a node dies -------------------------------------------------

    def test_z_node_killed(self):
        x = login_on(self.A.client, "kx")
        # x2 through nginx, but on A (round robin depends on what came
        # before: retries elsewhere make more connections)
        x2 = login_on(self.lb.client, "kx2", node="A")
        y = login_on(self.B.client, "ky")
        y.c.addfriend(y.id, x.id)
        self.quiet(y)
        pids = self.A.kill_hard()
        t0 = time.monotonic()
        for i in range(3):
            y.chat(x.id, "while A is dead %d" % i)
        self.quiet(y)
        # x logs in again via B as soon as A's entries are stale
        attempts = 0
        while True:
            attempts += 1
            c = self.B.client()
            m = c.login_raw(x.id, "pw")
            if m["errno"] == 0:
                break
            self.assertEqual(m["errno"], 2, m)
            c.close()
            self.assertLess(time.monotonic() - t0, 30,
                            "still online 30 s after its node died")
            time.sleep(0.2)
        took = time.monotonic() - t0
        print("node death: killed pids %s; re-login via the other node "
              "after %.1f s (%d attempts)" % (pids, took, attempts),
              file=sys.stderr)
        r = chatlib.parse_login(m)
        # the dead queue is reaped after the login is answered: its
        # messages come in the answer or right after it
        got = backlog(r, c)
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            got += [m["msg"] for m in drain(c) if m["msgid"] == ONE_CHAT]
            time.sleep(0.1)
        self.assertEqual(sorted(got),
                         ["while A is dead %d" % i for i in range(3)])
        # nginx sends new clients to the live node
        for _ in range(4):
            self.assertEqual(lb_node(self.lb), "B")
        x2b = login_existing(self.lb.client, x2.id, timeout=5)
        sent = x2b.chat(x.id, "both on B now")
        got = c.recv_msgid(ONE_CHAT)
        self.assertEqual(got["msg"], sent["msg"])
        # y's view: x is online (on B), via a fresh login
        y.c.loginout(y.id)
        r = y.c.login(y.id, "pw")
        self.assertEqual(find(r["friends"], id=x.id)["state"], "online")


if __name__ == "__main__":
    cluster.require()
    t0 = time.monotonic()
    prog = unittest.main(verbosity=2, exit=False)
    print("test_cluster: %.1f s" % (time.monotonic() - t0), file=sys.stderr)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
