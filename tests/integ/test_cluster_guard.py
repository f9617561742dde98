#!/usr/bin/env python3
"""Cluster-wide failed-login limits and the PROXY refusal metric: two
chatd nodes (one worker each) sharing a private Redis and MariaDB.

  1. a password guessed from one address, the attempts spread over both
     nodes so that neither reaches login_fail_max alone: the counters
     in Redis reach it, both nodes block the (address, user) pair
     (chatd_login_blocks_shared_total), the right password is refused
     on both, and another user from the same address still logs in;
  2. PROXY headers refused on node A (proxy_protocol_from = 127.0.0.2):
     one from an untrusted address, a malformed one, a slow one, each
     counted once in chatd_proxy_refused_total; a good one is not;
  3. Redis stopped: failed logins are still limited by the node's own
     counters.

Needs redis-server and mariadbd: without them SKIPPED (exit 77), except in
CI (CI=true)."""

import os
import socket
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
from chatlib import ERR_AUTH, ERR_RATE  # noqa: E402

ENV = {}
FAIL_MAX = 4


def setUpModule():
    cluster.require(("redis", "mariadb"))
    try:
        ENV["redis"] = cluster.Redis()
        ENV["redis"].start()
        ENV["db"] = cluster.MariaDB().start()
        for k in ("A", "B"):
            port = chatlib.free_port()
            extra = {"login_fail_max": FAIL_MAX,
                     "login_fail_per_user_max": 100,
                     "login_fail_window": 60, "login_block": 60,
                     "metrics_listen": str(port),
                     "proxy_protocol_from": "127.0.0.2",
                     "proxy_protocol_timeout": 1}
            n = cluster.Node(ENV["db"].spec, ENV["redis"], "cg%s-%d" %
                             (k, os.getpid()), workers=1, extra=extra)
            n.metrics_port = port
            ENV[k] = n.start()
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    cluster.stop_all(ENV)


def metric(node, name):
    url = "http://127.0.0.1:%d/metrics" % node.metrics_port
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            body = r.read().decode()
    except (OSError, urllib.error.HTTPError):
        return None
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def attempt(node, uid, password):
    """errno of one login on a fresh connection to node."""
    c = node.client()
    try:
        return c.login_raw(uid, password).get("errno")
    finally:
        c.close()


def connect_from(node, src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", node.port))
    return s


def closed_by_server(s, timeout=5.0):
    """True once the server closed s (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class ClusterGuard(unittest.TestCase):

    def test_1_spread_over_nodes(self):
        A, B = ENV["A"], ENV["B"]
        c = A.client()
        victim = c.register(chatlib.unique("vic"), "right")
        other = c.register(chatlib.unique("oth"), "pw")
        c.close()
        # FAIL_MAX wrong guesses, half on each node: neither node alone
        # reaches its limit
        for i in range(FAIL_MAX):
            self.assertEqual(attempt((A, B)[i % 2], victim, "guess%d" % i),
                             ERR_AUTH)
        # the last one reached the limit in Redis: every worker is told
        for n in (A, B):
            self.assertTrue(chatlib.wait_for(lambda: (metric(
                n, "chatd_login_blocks_shared_total") or 0) >= 1, 10),
                "node %s was not told of the block" % n.node_id)
        self.assertTrue(any(k.endswith(b":b") for k in ENV["redis"].cmd(
            "KEYS", "chatd:lf:*")))
        for n in (A, B):
            self.assertEqual(attempt(n, victim, "right"), ERR_RATE,
                             "right password let in on %s" % n.node_id)
        # another user of the same address is not locked out
        self.assertEqual(attempt(A, other, "pw"), 0)
        self.assertEqual(attempt(B, other, "pw"), 0)

    def test_2_proxy_refusals_counted(self):
        A = ENV["A"]
        base = metric(A, "chatd_proxy_refused_total")
        self.assertIsNotNone(base, "no chatd_proxy_refused_total")
        # untrusted source
        s = connect_from(A, "127.0.0.3")
        s.sendall(b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 6000\r\n")
        self.assertTrue(closed_by_server(s))
        s.close()
        # malformed, from the trusted balancer
        s = connect_from(A, "127.0.0.2")
        s.sendall(b"PROXY GARBAGE HERE\r\n")
        self.assertTrue(closed_by_server(s))
        s.close()
        # slow: half a header, then nothing (proxy_protocol_timeout 1 s)
        s = connect_from(A, "127.0.0.2")
        s.sendall(b"PROXY TCP4 10.1")
        self.assertTrue(closed_by_server(s, 10))
        s.close()
        self.assertTrue(chatlib.wait_for(lambda: metric(
            A, "chatd_proxy_refused_total") == base + 3, 5),
            "counted %s, want %d" % (metric(A, "chatd_proxy_refused_total"),
                                     base + 3))
        # a good header is not counted
        s = connect_from(A, "127.0.0.2")
        s.sendall(b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 6000\r\n"
                  b'{"msgid":101,"seq":1}\n')
        s.settimeout(5)
        self.assertNotEqual(s.recv(4096), b"")
        s.close()
        time.sleep(0.3)
        self.assertEqual(metric(A, "chatd_proxy_refused_total"), base + 3)

    def test_3_redis_down_local_limit(self):
        A = ENV["A"]
        c = A.client()
        victim = c.register(chatlib.unique("vic"), "right")
        c.close()
        ENV["redis"].stop()
        for i in range(FAIL_MAX):
            self.assertEqual(attempt(A, victim, "guess%d" % i), ERR_AUTH)
        self.assertEqual(attempt(A, victim, "right"), ERR_RATE)


if __name__ == "__main__":
    unittest.main(verbosity=2)
