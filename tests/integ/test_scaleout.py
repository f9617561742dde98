#!/usr/bin/env python3
"""A cluster on a highly available bus: three chatd nodes (one worker each)
on a private MariaDB and a Sentinel-monitored Redis (a primary, a replica,
three Sentinels), configured as redis = sentinel://.../name.

  1. one-to-one chats and group chats between every pair of nodes;
  2. the Redis primary SIGKILLed under acknowledged load (test_reliability's
     traffic: plain and acknowledged chats from node 0 to node 1): the
     Sentinels promote the replica, the nodes follow; accepted, delivered,
     lost (must be 0) and duplicated are counted, traffic must resume (the
     node's /health answers 200 again) within 10 s, and the metrics and
     /health say that a failover was followed.

Three nodes, not five: this 2-core machine is shared with other builds.
Needs redis-server and mariadbd: without them SKIPPED (exit 77), except in
CI (CI=true)."""

import os
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
import test_cluster  # noqa: E402
import test_reliability  # noqa: E402
from chatlib import GROUP_CHAT, ONE_CHAT  # noqa: E402

NODES = 3
MASTER = "chatbus"
ENV = {}


class Bus:
    """What cluster.Node needs of its Redis, for a Sentinel-watched pair:
    the address chatd is given, the password, the key, and reads from
    whichever instance is the primary now."""

    def __init__(self, primary, replica, sentinels):
        self.primary, self.replica = primary, replica
        self.sentinels = sentinels
        self.password = primary.password
        self.key_file = primary.key_file
        self.addr = "sentinel://%s/%s" % (",".join(
            "127.0.0.1:%d" % s.port for s in sentinels), MASTER)

    def current(self):
        _, port = self.sentinels[0].primary()
        return self.primary if port == self.primary.port else self.replica

    def get(self, key):
        return self.current().get(key)


def setUpModule():
    cluster.require(("redis", "mariadb"))
    try:
        t0 = time.monotonic()
        primary = cluster.Redis()
        ENV["primary"] = primary.start()
        ENV["replica"] = cluster.Redis(
            password=primary.password,
            extra=["--replicaof", "127.0.0.1", str(primary.port),
                   "--masterauth", primary.password]).start()
        ENV["sentinels"] = [cluster.Sentinel(MASTER, primary, 2).start()
                            for _ in range(3)]
        # the replica is in sync before anything depends on it
        ok = chatlib.wait_for(lambda: b"master_link_status:up" in
                              ENV["replica"].cmd("INFO", "replication"), 15)
        assert ok, "the replica did not sync"
        ENV["bus"] = Bus(primary, ENV["replica"], ENV["sentinels"])
        ENV["db"] = cluster.MariaDB().start()
        extra = {"db_query_timeout_ms": 1500, "db_connect_timeout_ms": 1500}
        ENV["nodes"] = []
        for i in range(NODES):
            e = dict(extra, metrics_listen=str(chatlib.free_port()))
            n = cluster.Node(ENV["db"].spec, ENV["bus"], "so%d-%d" %
                             (i, os.getpid()), workers=1, extra=e)
            n.metrics_port = int(e["metrics_listen"])
            ENV["nodes"].append(n.start())
        print("cluster up in %.1f s: %d nodes, bus %s" %
              (time.monotonic() - t0, NODES, ENV["bus"].addr),
              file=sys.stderr)
        # test_reliability's traffic runs between its ENV's A and B
        test_reliability.ENV["A"] = ENV["nodes"][0]
        test_reliability.ENV["B"] = ENV["nodes"][1]
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    if test_reliability.ROWS:
        test_reliability.print_table()
    problems = []
    for n in ENV.pop("nodes", []):
        try:
            if not n.stopped:
                n.__exit__(None, None, None)
        except Exception as e:
            problems.append("node %s: %s" % (n.node_id, e))
    for s in ENV.pop("sentinels", []):
        s.cleanup()
    for k in ("primary", "replica"):
        if k in ENV:
            ENV.pop(k).cleanup()
    if "db" in ENV:
        ENV.pop("db").stop()
    if problems:
        raise AssertionError("\n".join(problems))


def http(node, path):
    """(status, body) of GET path on node's metrics listener."""
    url = "http://127.0.0.1:%d%s" % (node.metrics_port, path)
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def metric(node, name):
    _, body = http(node, "/metrics")
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class ScaleOut(unittest.TestCase):
    quiet = test_cluster.Cluster.quiet
    make_group = test_cluster.Cluster.make_group
    assert_forwarded = test_cluster.Cluster.assert_forwarded

    def test_1_every_pair(self):
        nodes = ENV["nodes"]
        us = [test_cluster.login_on(n.client, "so%d" % i)
              for i, n in enumerate(nodes)]
        for i, a in enumerate(us):
            for j, b in enumerate(us):
                if i == j:
                    continue
                sent = a.chat(b.id, "pair %d->%d" % (i, j))
                self.assert_forwarded(b.c.recv_msgid(ONE_CHAT), sent, a)
        gid = self.make_group(us[0], us[1:])
        for i, a in enumerate(us):
            sent = a.groupchat(gid, "group from %d" % i)
            for j, b in enumerate(us):
                if j != i:
                    self.assert_forwarded(b.c.recv_msgid(GROUP_CHAT), sent,
                                          a)
        self.quiet(*us)

    def test_2_primary_killed(self):
        bus, B = ENV["bus"], ENV["nodes"][1]
        self.assertEqual(bus.current(), ENV["primary"])
        st = {}

        def fault(t):
            if t >= 1.0 and "killed" not in st:
                ENV["primary"].proc.kill()      # by its pid: SIGKILL
                ENV["primary"].proc.wait()
                st["killed"] = time.monotonic()
                st["polled"] = 0.0
            if "killed" not in st or "resumed" in st:
                return None if "resumed" in st else True
            now = time.monotonic()
            if now - st["polled"] >= 0.2:
                st["polled"] = now
                code, _ = http(B, "/health")
                if code == 503:
                    st["down_seen"] = True
                elif code == 200 and st.get("down_seen"):
                    st["resumed"] = now
            if now - st["killed"] > 30:
                st["resumed"] = None
                return None
            return True
        test_reliability.run_traffic(self, "redis primary killed, "
                                     "Sentinel failover", fault,
                                     settle=10.0)
        self.assertIsNotNone(st.get("resumed"), "/health never came back")
        took = st["resumed"] - st["killed"]
        print("failover: /health of node 1 back %.1f s after the kill" %
              took, file=sys.stderr)
        self.assertLessEqual(took, 10.0)
        self.assertEqual(bus.current(), ENV["replica"])
        for n in ENV["nodes"]:
            self.assertGreaterEqual(metric(n, "chatd_redis_failovers_total")
                                    or 0, 1, n.node_id)
            self.assertIn("failover", http(n, "/health")[1])
            self.assertIn("failover followed", n.log_text())
        # and traffic flows between every pair again, live
        self.test_1_every_pair()


if __name__ == "__main__":
    unittest.main(verbosity=2)
