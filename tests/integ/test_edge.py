#!/usr/bin/env python3
"""chatd at the edge: behind nginx with the PROXY protocol, limits that fit
people behind one NAT address, and timeouts the seed client lives with.

- Cluster: nginx (private, stream module, "proxy_protocol on;") in front
  of two nodes sharing a private MariaDB and Redis, each node trusting
  only 127.0.0.1 with PROXY headers and keeping the default limits.
  500 clients from 10 source addresses (127.0.0.2 ... 127.0.0.11) all
  register and log in; "chatctl online" on the nodes shows each client's
  own address; five bad logins of one user behind an address do not stop
  another user's login from it; a header from an untrusted address is
  refused.
- Timeouts: a client that reads the seed client's way (one JSON value
  per recv(), NUL after each request) through login_timeout, the idle
  (not) timeout, a logout (the login timer starts again from there) and
  TCP keepalive on the accepted socket.
- Load: 200 clients from one address against a node with the default
  limits (max_connections_per_ip, login and registration limits).
- Documented: chatd.conf(5) and etc/chatd.conf give the new defaults.
"""

import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
from chatlib import (ERR_AUTH, ERR_RATE, LOGIN, LOGIN_ACK, LOGINOUT,  # noqa
                     ONE_CHAT, PING, PONG, REG, REG_ACK, unique)

BUILDDIR = os.environ.get("CHATD_TOP_BUILDDIR",
                          os.path.join(cluster.SRCDIR))
SOURCES = ["127.0.0.%d" % i for i in range(2, 12)]
# the abuse limits chatlib turns off for other tests: back to defaults
DEFAULT_LIMITS = dict.fromkeys(
    ("rate_limit_rps", "max_connections_per_ip", "login_fail_max",
     "login_fail_per_user_max", "login_fail_per_ip_max",
     "register_rate_per_ip"))
ENV = {}


def chatctl_bin():
    p = os.environ.get("CHATCTL_BIN")
    return os.path.abspath(p) if p else os.path.join(BUILDDIR, "chatctl")


def ctl_online(sock):
    r = chatlib.run([chatctl_bin(), "-s", sock, "-j", "online"])
    if r.returncode != 0:
        raise AssertionError("chatctl online: %r" % r.stderr)
    return {u["id"]: u.get("addr") for u in json.loads(r.stdout)["users"]}


class Src(chatlib.Client):
    """A chatlib.Client from a chosen source address, optionally sending
    a PROXY v1 header first (as a balancer would)."""

    def __init__(self, port, src="127.0.0.1", header=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(chatlib.TIMEOUT)
        s.connect(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        self.sock = s
        self.buf = b""
        self.lines = __import__("collections").deque()
        self.eof = False
        self.raw_log = []
        self._seq = __import__("itertools").count(1)
        if header is not None:
            self.send_raw(header)


def v1(client_ip, port=40000):
    return b"PROXY TCP4 %s 127.0.0.1 %d 6000\r\n" % (client_ip.encode(), port)


def setUpModule():
    cluster.require()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    try:
        t0 = time.monotonic()
        ENV["redis"] = cluster.Redis()
        ENV["redis"].start()
        ENV["db"] = cluster.MariaDB()
        ENV["db"].start()
        for k in ("A", "B"):
            d = tempfile.mkdtemp(prefix="chatd-edge-", dir="/tmp")
            ENV["dirs"] = ENV.get("dirs", []) + [d]
            extra = dict(DEFAULT_LIMITS, proxy_protocol_from="127.0.0.1",
                         control_socket=os.path.join(d, "ctl.sock"))
            ENV[k] = cluster.Node(ENV["db"].spec, ENV["redis"],
                                  "edge%s-%d" % (k, os.getpid()),
                                  extra=extra)
            ENV[k].start()
        ENV["nginx"] = n = cluster.Nginx([ENV["A"].port, ENV["B"].port])
        with open(n.conf) as f:
            conf = f.read()
        conf = conf.replace("worker_connections 1024;",
                            "worker_connections 4096;")
        conf = conf.replace("proxy_pass chatd;",
                            "proxy_pass chatd;\n        proxy_protocol on;")
        with open(n.conf, "w") as f:
            f.write(conf)
        n.start()
        sys.stderr.write("cluster up in %.1f s\n" % (time.monotonic() - t0))
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    try:
        cluster.stop_all(ENV)
    finally:
        for d in ENV.pop("dirs", []):
            subprocess.run(["rm", "-rf", d])


class BehindNginx(unittest.TestCase):

    def test_500_clients_from_10_addresses(self):
        """All served through nginx; chatctl online shows who is where."""
        t0 = time.monotonic()
        port = ENV["nginx"].port
        clients = [Src(port, SOURCES[i % 10]) for i in range(500)]
        names = [unique("edge") for _ in clients]
        for c, name in zip(clients, names):
            c.send_obj({"msgid": REG, "name": name, "password": "pw"})
        uids = []
        for c in clients:
            r = c.recv_msgid(REG_ACK, timeout=30)
            self.assertEqual(r["errno"], 0, r)
            uids.append(r["id"])
        for c, uid in zip(clients, uids):
            c.send_obj({"id": uid, "msgid": LOGIN, "password": "pw"})
        for c in clients:
            r = c.recv_msgid(LOGIN_ACK, timeout=30)
            self.assertEqual(r["errno"], 0, r)
        took = time.monotonic() - t0
        online = ctl_online(ENV["A"].keys["control_socket"])
        on_b = ctl_online(ENV["B"].keys["control_socket"])
        self.assertGreater(len(online), 0)
        self.assertGreater(len(on_b), 0)
        online.update(on_b)
        for i, uid in enumerate(uids):
            self.assertIn(uid, online)
            host = online[uid].rsplit(":", 1)[0]
            self.assertEqual(host, SOURCES[i % 10],
                             "user %d shown from %s" % (uid, online[uid]))
            self.assertEqual(int(online[uid].rsplit(":", 1)[1]),
                             clients[i].sock.getsockname()[1])
        sys.stderr.write("  [500 clients from 10 addresses registered and "
                         "logged in through nginx in %.1f s] " % took)
        for c in clients:
            c.close()

    def test_nat_bad_logins(self):
        """Five bad logins of one user from an address block that pair
        only: another user behind the same address logs in, and so does
        the first one from elsewhere."""
        port = ENV["A"].port
        nat = "203.0.113.9"
        a = Src(port, header=v1(nat, 1001))
        auid = a.register(unique("nata"), "right")
        buid = a.register(unique("natb"), "right")
        for _ in range(5):
            self.assertEqual(a.login_raw(auid, "wrong")["errno"], ERR_AUTH)
        r = a.login_raw(auid, "right")
        self.assertEqual(r["errno"], ERR_RATE, r)
        b = Src(port, header=v1(nat, 1002))
        self.assertEqual(b.login_raw(buid, "right")["errno"], 0)
        elsewhere = Src(port, header=v1("198.51.100.77", 1003))
        self.assertEqual(elsewhere.login_raw(auid, "right")["errno"], 0)
        online = ctl_online(ENV["A"].keys["control_socket"])
        self.assertEqual(online[buid], "%s:1002" % nat)
        self.assertEqual(online[auid], "198.51.100.77:1003")
        for c in (a, b, elsewhere):
            c.close()

    def test_untrusted_header_refused(self):
        node = ENV["A"]
        c = Src(node.port, "127.0.0.12", header=v1("10.9.8.7"))
        self.assertTrue(c.wait_closed(5), "header from 127.0.0.12 accepted")
        self.assertEqual(list(c.lines), [])
        c.close()
        self.assertTrue(chatlib.wait_for(lambda: "127.0.0.12" in
                                         node.log_text() and
                                         "not in proxy_protocol_from" in
                                         node.log_text(), 5))
        # a trusted source must send one: plain JSON from it is refused
        c = Src(node.port, "127.0.0.1")
        c.send_obj({"msgid": PING, "seq": 1})
        self.assertTrue(c.wait_closed(5))
        self.assertEqual(list(c.lines), [])
        c.close()


class Seed:
    """Reads the way the seed client does: one recv() per answer, which
    must hold exactly one JSON value; requests end with a NUL."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 5)

    def ask(self, obj, timeout=5):
        self.sock.sendall(json.dumps(obj).encode() + b"\0")
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            raise chatlib.Closed("closed")
        return json.loads(data.decode())   # fails on two values in one read

    def closed_within(self, timeout):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True


class Timeouts(unittest.TestCase):
    """login_timeout 2 s (900 by default), idle_timeout left at its
    default 0, keepalive probing after 3 s."""

    def test_seed_client_timeline(self):
        with chatlib.Server(workers=1, extra={
                "login_timeout": 2, "tcp_keepalive_idle": 3,
                "tcp_keepalive_interval": 1, "tcp_keepalive_count": 2}) \
                as srv:
            s = Seed(srv.port)
            time.sleep(1.3)             # at the menu, under login_timeout
            r = s.ask({"msgid": REG, "name": unique("seed"),
                       "password": "pw"})
            self.assertEqual(r["errno"], 0, r)
            uid = r["id"]
            r = s.ask({"id": uid, "msgid": LOGIN, "password": "pw"})
            self.assertEqual(r["errno"], 0, r)
            # logged in, only reading: never idle by default
            self.assertFalse(s.closed_within(3.5))
            r = s.ask({"msgid": PING, "seq": 7})
            self.assertEqual(r["msgid"], PONG)
            # the accepted socket probes a dead peer (TCP keepalive)
            ss = subprocess.run(["ss", "-tno", "state", "established",
                                 "( sport = :%d )" % srv.port],
                                stdout=subprocess.PIPE, text=True)
            if ss.returncode == 0:
                self.assertIn("keepalive", ss.stdout)
            # logout: the login timeout runs again, from the logout
            s.sock.sendall(json.dumps({"id": uid, "msgid": LOGINOUT})
                           .encode() + b"\0")
            t0 = time.monotonic()
            self.assertFalse(s.closed_within(1.5))
            self.assertTrue(s.closed_within(3.0))
            took = time.monotonic() - t0
            self.assertGreater(took, 1.8)
            self.assertLess(took, 3.2)
            s.sock.close()
            # one that never logs in is closed after login_timeout
            s = Seed(srv.port)
            t0 = time.monotonic()
            self.assertTrue(s.closed_within(4))
            self.assertGreater(time.monotonic() - t0, 1.8)
            s.sock.close()

    def test_idle_timeout_when_set(self):
        with chatlib.Server(workers=1, extra={"idle_timeout": 1}) as srv:
            s = Seed(srv.port)
            uid = s.ask({"msgid": REG, "name": unique("idle"),
                         "password": "pw"})["id"]
            self.assertEqual(s.ask({"id": uid, "msgid": LOGIN,
                                    "password": "pw"})["errno"], 0)
            self.assertTrue(s.closed_within(3))
            s.sock.close()


# The defaults this change chose (check_config asserts chatd's own).
DEFAULTS = {"idle_timeout": "0", "login_timeout": "900",
            "tcp_keepalive_idle": "120", "tcp_keepalive_interval": "30",
            "tcp_keepalive_count": "4", "max_connections_per_ip": "1024",
            "login_fail_max": "5", "login_fail_per_user_max": "50",
            "login_fail_per_ip_max": "100", "register_rate_per_ip": "30",
            "register_burst_per_ip": "100", "proxy_protocol_timeout": "5"}


class Documented(unittest.TestCase):
    """chatd.conf(5) and etc/chatd.conf state the defaults chatd uses."""

    def read(self, rel):
        with open(os.path.join(cluster.SRCDIR, rel)) as f:
            return f.read()

    def test_man_page(self):
        man = self.read("man/chatd.conf.5")
        for key, val in DEFAULTS.items():
            m = re.search(r"^\.It Cm %s No .*?^Default: ([^.\n]+)\.$"
                          % key, man, re.M | re.S)
            self.assertIsNotNone(m, key)
            self.assertNotIn(".It Cm", m.group(0)[4:], key)
            self.assertEqual(m.group(1), val, key)

    def test_sample_config(self):
        conf = self.read("etc/chatd.conf")
        for key, val in DEFAULTS.items():
            m = re.search(r"^#%s = (\S+)" % key, conf, re.M)
            self.assertIsNotNone(m, key)
            self.assertEqual(m.group(1), val, key)


class Load(unittest.TestCase):

    def test_200_from_one_address_default_limits(self):
        """A NAT's worth of users on one address, default limits (and the
        default password cost): all log in and chat."""
        extra = dict(DEFAULT_LIMITS, password_cost=None)
        with chatlib.Server(workers=2, extra=extra) as srv:
            t0 = time.monotonic()
            # registered beforehand, 50 from each of 4 other addresses
            # (register_burst_per_ip is 100)
            uids = []
            for i in range(4):
                c = Src(srv.port, "127.0.0.%d" % (40 + i))
                for _ in range(50):
                    c.send_obj({"msgid": REG, "name": unique("nat"),
                                "password": "pw"})
                for _ in range(50):
                    r = c.recv_msgid(REG_ACK, timeout=120)
                    self.assertEqual(r["errno"], 0, r)
                    uids.append(r["id"])
                c.close()
            clients = [Src(srv.port, "127.0.0.30") for _ in uids]
            for c, uid in zip(clients, uids):
                c.send_obj({"id": uid, "msgid": LOGIN, "password": "pw"})
            for c in clients:
                r = c.recv_msgid(LOGIN_ACK, timeout=120)
                self.assertEqual(r["errno"], 0, r)
            for i, c in enumerate(clients):
                c.chat(uids[i], "n", uids[(i + 1) % len(uids)], "hi %d" % i)
            for i, c in enumerate(clients):
                m = c.recv_msgid(ONE_CHAT, timeout=20)
                self.assertEqual(m["msg"], "hi %d" % ((i - 1) % len(uids)))
            sys.stderr.write("  [200 clients from one address: %.1f s] "
                             % (time.monotonic() - t0))
            for c in clients:
                c.close()


if __name__ == "__main__":
    t0 = time.monotonic()
    prog = unittest.main(verbosity=2, exit=False)
    print("test_edge: %.1f s" % (time.monotonic() - t0), file=sys.stderr)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
