#!/usr/bin/env python3
"""Two releases, and two bus item formats, on one cluster (a rolling
upgrade): nothing is lost or doubled while they mix.

Node O runs CHATD_OLD_BIN when it is set (a chatd built from an older
release, e.g. main before sealed batches), else this chatd with the
default item format (2); node N runs this chatd.  MariaDB and Redis are
private (cluster.py).

1. N with the default format: one-to-one chats (plain and acknowledged)
   and group chats both ways, each arrives once, in order.
2. N restarted with cluster_item_version = 3 (only when O reads it: not
   with CHATD_OLD_BIN, which would drop them, as README.md's "Rolling
   upgrades" says): what N sends to O's user is sealed (the items in O's
   queue, read while O's worker is stopped, begin "v3 " and hold several
   chats each), and every chat both ways still arrives once, in order.
3. Sealed batches written straight into N's queue: each item is handed
   off once; an item repeated inside a batch, or sealed again into a
   later batch under the same seq (a publish sent again after a lost
   answer), is refused; forged, altered, stale and cut-short batches
   deliver nothing and are refused; the processing list ends empty.

Needs redis-server and mariadbd: without them SKIPPED (77), except in CI.
"""
import hashlib
import hmac
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
import test_cluster  # noqa: E402
from chatlib import GROUP_CHAT, ONE_CHAT  # noqa: E402

ENV = {}
OLD_BIN = os.environ.get("CHATD_OLD_BIN")
N_CHATS = 20


class OldNode(cluster.Node):
    """A node started from CHATD_OLD_BIN (else this chatd)."""

    def start(self):
        if OLD_BIN:     # an older release refuses a key it does not know
            self.keys.pop("cluster_item_version", None)
        saved = os.environ.get("CHATD_BIN")
        if OLD_BIN:
            os.environ["CHATD_BIN"] = OLD_BIN
        try:
            return super().start()
        finally:
            if OLD_BIN:
                if saved is None:
                    del os.environ["CHATD_BIN"]
                else:
                    os.environ["CHATD_BIN"] = saved


def setUpModule():
    cluster.require(("redis", "mariadb"))
    try:
        ENV["redis"] = cluster.Redis()
        ENV["redis"].start()
        ENV["db"] = cluster.MariaDB()
        ENV["db"].start()
        e = {"db_query_timeout_ms": 1500, "db_connect_timeout_ms": 1500}
        ENV["A"] = OldNode(ENV["db"].spec, ENV["redis"], "mixO-%d" %
                           os.getpid(), workers=1, extra=e)
        ENV["A"].start()
        ENV["B"] = cluster.Node(ENV["db"].spec, ENV["redis"], "mixN-%d" %
                                os.getpid(), workers=1, extra=e)
        ENV["B"].start()
    except BaseException:
        tearDownModule()
        raise
    print("node O: %s" % (OLD_BIN or "this chatd"), file=sys.stderr)


def tearDownModule():
    cluster.stop_all(ENV)


def login(node, prefix):
    return test_cluster.login_on(node.client, prefix)


def receive(test, u, n, msgid=ONE_CHAT):
    """n chats (msgid) for u: their texts in the order they came, and no
    more (no repeat) before the answer to a ping sent a second later;
    other lines (acknowledgements of u's own chats) are skipped."""
    got = []
    while len(got) < n:
        m = u.c.recv(15)
        if m["msgid"] == msgid:
            got.append(m["msg"])
    time.sleep(1.0)     # a repeat would come within it
    for m in test_cluster.drain(u.c):
        test.assertNotEqual(m["msgid"], msgid, m)
    return got


class Mixed(unittest.TestCase):

    make_group = test_cluster.Cluster.make_group

    def quiet(self, *users):
        """Nothing but acknowledgements waiting for users (make_group)."""
        for u in users:
            for m in test_cluster.drain(u.c):
                self.assertNotIn(m["msgid"], (ONE_CHAT, GROUP_CHAT), m)

    def both_ways(self, tag):
        """Plain and acknowledged chats, and a group chat, from a user on
        each node to one on the other: each arrives once, in order."""
        O, N = ENV["A"], ENV["B"]
        o, n = login(O, "mo"), login(N, "mn")
        for src, dst in ((n, o), (o, n)):
            want = []
            for i in range(N_CHATS):
                text = "%s %d->%d #%d" % (tag, src.id, dst.id, i)
                extra = {"cmid": 1000 + i} if i % 2 else {}
                src.chat(dst.id, text, **extra)
                want.append(text)
            self.assertEqual(receive(self, dst, N_CHATS), want)
            self.quiet(src)
        gid = self.make_group(o, [n])
        for src, dst in ((o, n), (n, o)):
            text = "%s group from %d" % (tag, src.id)
            src.groupchat(gid, text)
            self.assertEqual(receive(self, dst, 1, GROUP_CHAT), [text])
        self.quiet(o, n)
        for u in (o, n):
            u.c.close()

    def test_1_default_format(self):
        self.both_ways("default")

    @unittest.skipIf(OLD_BIN, "an older node drops version 3 items")
    def test_2_sealed(self):
        O, N = ENV["A"], ENV["B"]
        N.stop()
        N.write_config(cluster_item_version=3)
        N.start()
        o, n = login(O, "so"), login(N, "sn")
        pres = ENV["redis"].get("chatd:on:%d" % o.id)
        node, boot, slot, _ = pres.rsplit(" ", 3)
        q = "chatd:q:%s:%s:%s" % (node, boot, slot)
        # O's worker holds still (within its keys' 15 s) so that what N
        # pushes can be read where O would take it
        pid = O.worker_pids()
        self.assertEqual(len(pid), 1, pid)
        items = []
        os.kill(pid[0], signal.SIGSTOP)
        try:
            want = []
            for i in range(N_CHATS):
                text = "sealed %d" % i
                n.chat(o.id, text)
                want.append(text)
            r = ENV["redis"]

            def queued():
                out = r.cmd("LRANGE", q, 0, -1) + r.cmd("LRANGE", q + ":p",
                                                        0, -1)
                return sum(it.count(b"sealed ") for it in out), out
            chatlib.wait_for(lambda: queued()[0] >= N_CHATS, 15)
            count, items = queued()
        finally:
            os.kill(pid[0], signal.SIGCONT)
        self.assertEqual(count, N_CHATS, items)
        sealed = [it for it in items if b"sealed " in it]
        for it in sealed:
            self.assertTrue(it.startswith(b"v3 "), it[:120])
        # one sender, one queue: the chats that waited share elements
        self.assertLess(len(sealed), N_CHATS, [it[:80] for it in sealed])
        self.assertEqual(receive(self, o, N_CHATS), want)
        for u in (o, n):
            u.c.close()
        self.both_ways("sealed")


def sealed(items, ms=None, key=None, src="test-node ffff.0"):
    """A version 3 batch (include/pubsub.h) of (seq, body) items."""
    ms = int(time.time() * 1000) if ms is None else ms
    node, ident = src.split(" ")
    rest = "%s %d %s " % (node, ms, ident) + "".join(
        "%d.%d:%s" % (seq, len(body.encode()), body) for seq, body in items)
    k = (key or ENV["redis"].key).encode()
    return "v3 " + hmac.new(k, rest.encode(), hashlib.sha256).hexdigest() + \
        " " + rest


def chat_body(uid, text):
    return "%d %s\n" % (uid, json.dumps(
        {"id": 1, "msg": text, "msgid": ONE_CHAT, "name": "inj",
         "time": chatlib.now_str(), "toid": uid}, sort_keys=True,
        separators=(",", ":")))


class Straight(unittest.TestCase):

    def test_3_sealed_straight_in(self):
        N, r = ENV["B"], ENV["redis"]
        u = login(N, "st")
        v = r.get("chatd:on:%d" % u.id)
        v = v.decode() if isinstance(v, bytes) else v
        node, boot, slot, _ = v.rsplit(" ", 3)
        q = "chatd:q:%s:%s:%s" % (node, boot, slot)
        a, b, c = (chat_body(u.id, t) for t in ("s-one", "s-two", "s-three"))
        r.cmd("RPUSH", q, sealed([(1, a), (2, b), (1, a)]))  # repeat inside
        r.cmd("RPUSH", q, sealed([(2, b), (1, a)],          # sent again
                                 ms=int(time.time() * 1000) + 5))
        r.cmd("RPUSH", q, sealed([(5, c)], key="not-the-cluster-key-" +
                                 "z" * 20))                 # forged
        r.cmd("RPUSH", q, sealed([(6, c)]).replace("s-three", "S-THREE"))
        r.cmd("RPUSH", q, sealed([(7, c)], ms=int(time.time() * 1000) -
                                 3600 * 1000))              # stale
        r.cmd("RPUSH", q, sealed([(8, c)])[:-10])           # cut short
        r.cmd("RPUSH", q, sealed([(3, c)]))
        got = []
        while len(got) < 3:
            m = u.c.recv(15)
            if m["msgid"] == ONE_CHAT:
                got.append(m["msg"])
        self.assertEqual(got, ["s-one", "s-two", "s-three"])
        time.sleep(1.0)             # a repeat would come within it
        for m in test_cluster.drain(u.c):
            self.assertNotEqual(m["msgid"], ONE_CHAT, m)
        self.assertTrue(chatlib.wait_for(
            lambda: r.cmd("LLEN", q + ":p") == 0 and r.cmd("LLEN", q) == 0,
            10), r.cmd("LRANGE", q + ":p", 0, -1))
        log = N.log_text()
        self.assertIn('refusing an item from "test-node"', log)
        self.assertIn("replayed", log)
        u.c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
