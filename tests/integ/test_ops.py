#!/usr/bin/env python3
"""Operating chatd: chatctl against a real node (status, stats, online,
kick, reload, stop, JSON, refused peers), the metrics and health HTTP
endpoint, the init script (start, status, reload, log rotation, restart,
stop), the systemd unit and the man pages.

The Redis and MariaDB health checks need redis-server and mariadbd: each
of those tests is skipped with a message when its server is missing,
except in CI (CI=true), where that is a failure."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
from chatlib import ERROR, ONE_CHAT, unique, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("CHATD_TOP_SRCDIR") or os.path.abspath(
    os.path.join(HERE, "..", ".."))
BUILDDIR = os.environ.get("CHATD_TOP_BUILDDIR") or os.path.dirname(
    chatlib.chatd_bin())


def chatctl_bin():
    p = os.environ.get("CHATCTL_BIN")
    return os.path.abspath(p) if p else os.path.join(BUILDDIR, "chatctl")


def missing(what, why):
    """Skip a test for a missing tool, loudly; in CI that is a failure."""
    msg = "%s: %s" % (what, why)
    if cluster.in_ci():
        raise AssertionError("CI=true and " + msg)
    sys.stderr.write("\n*** SKIPPED %s\n" % msg)
    raise unittest.SkipTest(msg)


def short_dir(prefix):
    """A directory whose paths fit in a sockaddr_un."""
    d = tempfile.mkdtemp(prefix=prefix)
    if len(d) > 80:
        os.rmdir(d)
        d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    return d


def ops_keys(dirname):
    sock = os.path.join(dirname, "ctl.sock")
    if len(sock) > 100:
        sock = os.path.join(short_dir("chatd-ctl-"), "ctl.sock")
    return {"control_socket": sock,
            "metrics_listen": "127.0.0.1:%d" % chatlib.free_port()}


def ctl(sock, *args, as_json=False, argv0=None, pre=(), timeout=30):
    argv = list(pre) + [argv0 or chatctl_bin(), "-s", sock]
    if as_json:
        argv.append("-j")
    argv += [str(a) for a in args]
    r = chatlib.run(argv, timeout=timeout)
    r.out = r.stdout.decode("utf-8", "replace")
    r.err = r.stderr.decode("utf-8", "replace")
    return r


def ctl_json(test, sock, *args):
    r = ctl(sock, *args, as_json=True)
    test.assertEqual(r.returncode, 0, r.err)
    obj = json.loads(r.out)
    test.assertIs(obj["ok"], True, obj)
    return obj


def http_get(port, path, method="GET", timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace"), r
    finally:
        c.close()


def metrics_port(srv):
    return int(srv.keys["metrics_listen"].rsplit(":", 1)[1])


def scrape(srv):
    """/metrics as {name or name{labels}: value}, checking the format."""
    st, body, r = http_get(metrics_port(srv), "/metrics")
    if st != 200 or not r.getheader("Content-Type", "").startswith(
            "text/plain; version=0.0.4"):
        raise AssertionError("GET /metrics: %d %r" % (st, body[:300]))
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("# HELP ") or \
                line.startswith("# TYPE "):
            continue
        m = re.match(r'^([a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})?)'
                     r' (\d+(\.\d+)?)$', line)
        if not m:
            raise AssertionError("bad exposition line %r" % line)
        out[m.group(1)] = float(m.group(4))
    return out


class Node(chatlib.Server):
    """A chatd -d with a control socket and a metrics listener."""

    def __init__(self, **kw):
        extra = kw.pop("extra", {})
        super().__init__(**kw)
        self.keys.update(ops_keys(self.dir))
        self.keys.update(extra)
        self.sock = self.keys["control_socket"]


class Control(unittest.TestCase):
    def test_status_stats_online_kick(self):
        with Node(workers=2) as srv:
            a, b = srv.users_on_two_workers("ctl")
            wa, wb = a.c.whoami(), b.c.whoami()
            for s, r in ((a, b), (b, a)):
                sent = s.chat(r.id, "hello via %d" % s.id)
                m = r.c.recv_msgid(ONE_CHAT)
                self.assertEqual(m["msg"], sent["msg"])

            # status, for people and as JSON
            r = ctl(srv.sock, "status")
            self.assertEqual(r.returncode, 0, r.err)
            for pid in srv.worker_pids():
                self.assertIn(" %d " % pid, r.out)
            self.assertIn("health:   ok", r.out)
            self.assertIn("online:   2 users", r.out)
            st = ctl_json(self, srv.sock, "status")
            self.assertEqual(st["pid"], srv.pid)
            self.assertRegex(st["boot_id"], r"^[0-9a-f]{16}$")
            self.assertRegex(st["version"], r"^\d+\.\d+")
            self.assertTrue(st["node_id"])
            self.assertEqual(st["online"], 2)
            self.assertGreaterEqual(st["connections"], 2)
            self.assertGreaterEqual(st["uptime"], 0)
            self.assertEqual(st["listen"], srv.listen)
            self.assertEqual(st["storage"]["kind"], "sqlite")
            self.assertEqual(st["storage"]["spec"], srv.keys["storage"])
            self.assertEqual(st["redis"], {"addr": None, "state": "none"})
            self.assertEqual(st["health"], {"ok": True, "reason": None,
                                            "degraded": None})
            self.assertEqual([w["slot"] for w in st["workers"]], [0, 1])
            self.assertEqual(sorted(w["pid"] for w in st["workers"]),
                             srv.worker_pids())
            for w in st["workers"]:
                self.assertEqual((w["state"], w["storage"], w["redis"]),
                                 ("running", "ok", "none"))
                self.assertGreater(w["started"], 1600000000)

            # stats: per worker and summed
            s = ctl_json(self, srv.sock, "stats")
            tot = s["total"]
            for k in ("accepted", "connections", "logins", "msgs_in",
                      "msgs_out", "offline_stored", "errors", "respawns"):
                self.assertEqual(tot[k], sum(w[k] for w in s["workers"]), k)
            self.assertGreaterEqual(tot["logins"], 2)
            self.assertGreaterEqual(tot["msgs_out"], 2)
            self.assertGreaterEqual(tot["msgs_in"], 4)
            self.assertEqual(tot["respawns"], 0)
            r = ctl(srv.sock, "stats")
            self.assertEqual(r.returncode, 0, r.err)
            self.assertRegex(r.out, r"(?m)^total\s")

            # online: who is where
            o = ctl_json(self, srv.sock, "online")
            self.assertEqual(o["count"], 2)
            self.assertEqual(
                [{"id": u["id"], "worker": u["worker"]} for u in o["users"]],
                sorted([{"id": a.id, "worker": wa},
                        {"id": b.id, "worker": wb}], key=lambda u: u["id"]))
            for u in o["users"]:
                self.assertRegex(u["addr"], r"^127\.0\.0\.1:\d+$")
            r = ctl(srv.sock, "online")
            self.assertRegex(r.out, r"(?m)^%d\s+%d\s+127\.0\.0\.1:\d+$"
                             % (a.id, wa))
            self.assertIn("2 users online", r.out)

            # kick closes exactly that user's connection
            r = ctl(srv.sock, "kick", a.id)
            self.assertEqual(r.returncode, 0, r.err)
            self.assertIn("kicked user %d (worker %d)" % (a.id, wa), r.out)
            self.assertTrue(a.c.wait_closed(), "kicked user still connected")
            b.c.ping()
            self.assertFalse(b.c.closed())
            self.assertTrue(wait_for(lambda: [
                (u["id"], u["worker"]) for u in ctl_json(
                    self, srv.sock, "online")["users"]] == [(b.id, wb)]))
            # a can come back; b's messages to a were never lost
            a.reconnect()
            sent = b.chat(a.id, "after the kick")
            self.assertEqual(a.c.recv_msgid(ONE_CHAT)["msg"], sent["msg"])
            # errors
            r = ctl(srv.sock, "kick", 2000000000)
            self.assertEqual(r.returncode, 1)
            self.assertIn("not online", r.err)
            r = ctl(srv.sock, "-j", "kick", 2000000000)
            self.assertEqual(r.returncode, 1)
            self.assertIs(json.loads(r.out)["ok"], False)
            for bad in (["kick", "bob"], ["kick"], ["nosuch"],
                        ["status", "x"]):
                r = ctl(srv.sock, *bad)
                self.assertEqual(r.returncode, 2, bad)
            r = chatlib.run([chatctl_bin(), "-s",
                             os.path.join(srv.dir, "nope.sock"), "status"])
            self.assertEqual(r.returncode, 2)

    def test_protocol_limits(self):
        """The socket takes one bounded line; junk gets an error answer."""
        with Node(workers=1) as srv:
            def raw(data, eof=False):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(10)
                s.connect(srv.sock)
                s.sendall(data)
                if eof:
                    s.shutdown(socket.SHUT_WR)
                out = b""
                while True:
                    try:
                        d = s.recv(65536)
                    except ConnectionResetError:
                        # closed with our surplus unread: the answer
                        # came first
                        self.assertTrue(out)
                        break
                    if not d:
                        break
                    out += d
                s.close()
                return json.loads(out)
            self.assertIn("too long", raw(b"s" * 4000)["error"])
            self.assertIn("unknown command", raw(b"frobnicate\n")["error"])
            self.assertIn("empty", raw(b"\n")["error"])
            self.assertEqual(raw(b"stats", eof=True)["ok"], True)
            # an idle client neither blocks the master nor stays forever
            idle = [socket.socket(socket.AF_UNIX) for _ in range(3)]
            for s in idle:
                s.connect(srv.sock)
            t0 = time.monotonic()
            ctl_json(self, srv.sock, "status")
            self.assertLess(time.monotonic() - t0, 2)
            for s in idle:
                s.settimeout(15)
                self.assertEqual(s.recv(10), b"")   # closed at its deadline
                s.close()
            mode = stat.S_IMODE(os.stat(srv.sock).st_mode)
            self.assertEqual(mode, 0o660)

    def test_refused_peer(self):
        if os.geteuid() != 0:
            missing("test_refused_peer", "needs root to run as nobody")
        setpriv = shutil.which("setpriv")
        runuser = shutil.which("runuser")
        if setpriv:
            pre = [setpriv, "--reuid=nobody", "--regid=nogroup",
                   "--clear-groups"]
        elif runuser:
            pre = [runuser, "-u", "nobody", "--"]
        else:
            missing("test_refused_peer", "neither setpriv nor runuser")
        with Node(workers=1) as srv:
            # nobody must reach the socket (and a copy of chatctl) for
            # the master's own check to be what refuses it
            os.chmod(srv.dir, 0o711)
            tool = os.path.join(srv.dir, "chatctl")
            shutil.copy(chatctl_bin(), tool)
            os.chmod(tool, 0o755)
            r = ctl(srv.sock, "status", argv0=tool, pre=pre)
            self.assertEqual(r.returncode, 2, r.out + r.err)  # mode 0660
            self.assertIn("Permission denied", r.err)
            os.chmod(srv.sock, 0o666)
            for cmd in ("status", "stop"):
                r = ctl(srv.sock, cmd, argv0=tool, pre=pre)
                self.assertEqual(r.returncode, 1, r.out + r.err)
                self.assertIn("permission denied", r.err)
            self.assertTrue(wait_for(lambda: "refused uid %d" %
                                     _nobody_uid() in srv.log_text()))
            self.assertTrue(srv.alive())
            os.chmod(srv.sock, 0o660)
            ctl_json(self, srv.sock, "status")      # root still may

    def test_reload_and_stop(self):
        srv = Node(workers=2)
        with srv:
            u = srv.user("rl")
            workers = srv.worker_pids()
            r = ctl(srv.sock, "reload")
            self.assertEqual(r.returncode, 0, r.err)
            self.assertIn("configuration reloaded", r.out)
            self.assertTrue(wait_for(
                lambda: "configuration reloaded" in srv.log_text()))
            self.assertEqual(srv.worker_pids(), workers)
            # a broken file: refused with the reason, nothing changes
            srv.write_config(workers="lots")
            r = ctl(srv.sock, "reload")
            self.assertEqual(r.returncode, 1)
            self.assertRegex(r.err, re.escape(srv.conf) + r":\d+: ")
            srv.write_config(workers=2)
            self.assertTrue(srv.alive())
            u.c.ping()
            # stop: answered, then the node goes away cleanly
            r = ctl(srv.sock, "stop")
            self.assertEqual(r.returncode, 0, r.err)
            self.assertEqual(srv.proc.wait(20), 0)
            self.assertFalse(os.path.exists(srv.sock))
            self.assertTrue(u.c.wait_closed())


def _nobody_uid():
    import pwd
    return pwd.getpwnam("nobody").pw_uid


class Metrics(unittest.TestCase):
    def test_metrics_move(self):
        with Node(workers=2) as srv:
            before = scrape(srv)
            self.assertEqual(before["chatd_up"], 1)
            self.assertEqual(before["chatd_workers"], 2)
            self.assertEqual(before["chatd_workers_up"], 2)
            self.assertEqual(before["chatd_healthy"], 1)
            self.assertIn('chatd_worker_connections{slot="1"}', before)
            a, b = srv.users_on_two_workers("mx")
            away, _ = srv.register("mxoff")
            for i in range(3):
                a.chat(b.id, "m%d" % i)
                b.c.recv_msgid(ONE_CHAT)
            a.chat(away, "for later")
            a.c.send_raw(b'{"msgid":6,"toid":"x","msg":"bad"}\0')
            a.c.recv_msgid(ERROR)
            a.c.ping()
            after = scrape(srv)
            d = {k: after[k] - before[k] for k in before}
            self.assertGreaterEqual(d["chatd_accepted_total"], 2)
            self.assertGreaterEqual(d["chatd_logins_total"], 2)
            self.assertGreaterEqual(d["chatd_messages_in_total"], 5)
            self.assertGreaterEqual(d["chatd_messages_out_total"], 3)
            self.assertGreaterEqual(d["chatd_offline_stored_total"], 1)
            self.assertGreaterEqual(d["chatd_errors_total"], 1)
            self.assertEqual(after["chatd_online_users"], 2)
            self.assertGreaterEqual(after["chatd_connections"], 2)
            self.assertEqual(sum(v for k, v in after.items() if
                                 k.startswith("chatd_worker_connections{")),
                             after["chatd_connections"])
            # the same figures as chatctl
            tot = ctl_json(self, srv.sock, "stats")["total"]
            self.assertEqual(tot["logins"], after["chatd_logins_total"])

    def test_http_edges(self):
        with Node(workers=1) as srv:
            port = metrics_port(srv)
            st, body, _ = http_get(port, "/health")
            self.assertEqual((st, body), (200, "ok\n"))
            st, body, r = http_get(port, "/metrics", method="HEAD")
            self.assertEqual((st, body), (200, ""))
            self.assertGreater(int(r.getheader("Content-Length")), 100)
            self.assertEqual(http_get(port, "/nope")[0], 404)
            st, _, r = http_get(port, "/metrics", method="POST")
            self.assertEqual(st, 405)
            self.assertEqual(r.getheader("Allow"), "GET, HEAD")
            self.assertEqual(http_get(port, "/health?x=1")[0], 200)
            # a huge request head is refused, not buffered
            s = socket.create_connection(("127.0.0.1", port), 10)
            s.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 8000)
            self.assertIn(b" 431 ", s.recv(200))
            s.close()
            s = socket.create_connection(("127.0.0.1", port), 10)
            s.sendall(b"garbage\r\n\r\n")
            self.assertIn(b" 400 ", s.recv(200))
            s.close()
            # silent clients do not hold up others and are dropped
            idle = [socket.create_connection(("127.0.0.1", port), 10)
                    for _ in range(5)]
            t0 = time.monotonic()
            self.assertEqual(http_get(port, "/health")[0], 200)
            self.assertLess(time.monotonic() - t0, 2)
            for s in idle:
                s.settimeout(15)
                self.assertEqual(s.recv(10), b"")
                s.close()

    def test_health_workers(self):
        with Node(workers=2) as srv:
            port = metrics_port(srv)
            self.assertEqual(http_get(port, "/health")[0], 200)
            # a stalled worker: heartbeat stops, health fails after 10 s
            victim = srv.worker_pids()[0]
            os.kill(victim, signal.SIGSTOP)
            try:
                self.assertTrue(wait_for(
                    lambda: http_get(port, "/health")[0] == 503, 20, 0.5))
                st, body, _ = http_get(port, "/health")
                self.assertRegex(body, r"worker \d \(pid %d\) not "
                                 r"responding" % victim)
                s = ctl_json(self, srv.sock, "status")
                self.assertIs(s["health"]["ok"], False)
                self.assertEqual(scrape(srv)["chatd_healthy"], 0)
            finally:
                os.kill(victim, signal.SIGCONT)
            self.assertTrue(wait_for(
                lambda: http_get(port, "/health")[0] == 200, 5, 0.2))
            # a dead worker: 503 "not running" until it is back, then 200
            before = scrape(srv)["chatd_respawns_total"]
            victim = srv.worker_pids()[1]
            os.kill(victim, signal.SIGKILL)
            seen = set()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                st, body, _ = http_get(port, "/health")
                seen.add(st)
                if st == 503:
                    self.assertRegex(body, r"worker \d not running "
                                     r"\((stopped|respawning)\)")
                if st == 200 and victim not in srv.worker_pids() and \
                        len(srv.worker_pids()) == 2:
                    break
                time.sleep(0.005)
            self.assertEqual(st, 200, "no recovery after the respawn")
            self.assertEqual(scrape(srv)["chatd_respawns_total"],
                             before + 1)
            sys.stderr.write("health during a respawn: saw %s\n"
                             % sorted(seen))


class Dependencies(unittest.TestCase):
    """Health follows the storage and Redis."""

    def test_health_redis(self):
        if not cluster.find_prog("redis-server"):
            missing("test_health_redis", "no redis-server (apt-get "
                    "install redis-server)")
        redis = cluster.Redis().start()
        try:
            node = cluster.Node("sqlite:/nonexistent", redis,
                                "ops-%d" % os.getpid(), workers=2)
            node.keys["storage"] = "sqlite:" + os.path.join(node.dir,
                                                            "chat.db")
            node.keys.update(ops_keys(node.dir))
            sock = node.keys["control_socket"]
            with node:
                port = metrics_port(node)
                self.assertTrue(wait_for(
                    lambda: http_get(port, "/health")[0] == 200, 10, 0.2))
                st = ctl_json(self, sock, "status")
                self.assertEqual(st["redis"]["state"], "up")
                self.assertEqual(st["redis"]["addr"], redis.addr)
                self.assertEqual({w["redis"] for w in st["workers"]},
                                 {"up"})
                self.assertNotIn(redis.password, json.dumps(st))
                redis.stop()
                # degraded, not unhealthy: the node serves its users and
                # stores what it cannot forward (chatd(8))
                self.assertTrue(wait_for(lambda: http_get(
                    port, "/health")[1].startswith("degraded"), 15, 0.2))
                st, body, _ = http_get(port, "/health")
                self.assertEqual(st, 200, body)
                self.assertRegex(body, r"^degraded: redis unreachable "
                                 r"since \S+Z \(\d+ s\), [12] of 2 workers")
                st = ctl_json(self, sock, "status")
                self.assertEqual(st["redis"]["state"], "down")
                self.assertTrue(st["health"]["ok"])
                self.assertIn("redis unreachable", st["health"]["degraded"])
                m = scrape(node)
                self.assertEqual((m["chatd_degraded"], m["chatd_bus_up"],
                                  m["chatd_healthy"]), (1, 0, 1))
                redis.start()
                self.assertTrue(wait_for(
                    lambda: http_get(port, "/health")[1] == "ok\n", 20, 0.2),
                    "health did not recover with Redis")
                self.assertIsNone(ctl_json(self, sock, "status")["health"]
                                  ["degraded"])
                self.assertEqual(scrape(node)["chatd_bus_up"], 1)
        finally:
            redis.cleanup()

    def test_health_storage(self):
        if not (cluster.find_prog("mariadbd") or cluster.find_prog("mysqld")):
            missing("test_health_storage", "no mariadbd (apt-get install "
                    "mariadb-server)")
        db = cluster.MariaDB().start()
        try:
            node = cluster.Node(db.spec, None, None, workers=2)
            node.keys.update(ops_keys(node.dir))
            sock = node.keys["control_socket"]
            with node:
                port = metrics_port(node)
                self.assertEqual(http_get(port, "/health")[0], 200)
                st = ctl_json(self, sock, "status")
                self.assertEqual(st["storage"]["kind"], "mysql")
                pw = db.env["MYSQL_PASSWORD"]
                self.assertNotIn(pw, json.dumps(st))
                self.assertNotIn(":" + pw, st["storage"]["spec"])
                self.assertTrue(st["storage"]["spec"].startswith(
                    "mysql://chatd@127.0.0.1:"))
                subprocess.run([db.script, "halt", db.dir],
                               stdout=subprocess.DEVNULL, timeout=120)
                self.assertTrue(wait_for(
                    lambda: http_get(port, "/health")[0] == 503, 20, 0.5))
                self.assertIn("storage unreachable",
                              http_get(port, "/health")[1])
                db.start()
                self.assertTrue(wait_for(
                    lambda: http_get(port, "/health")[0] == 200, 30, 0.5),
                    "health did not recover with the database:\n" +
                    http_get(port, "/health")[1])
        finally:
            db.stop()


class InitScript(unittest.TestCase):
    def setUp(self):
        self.script = os.path.join(BUILDDIR, "etc", "init.d", "chatd")
        if not os.path.exists(self.script):
            raise AssertionError("%s was not built (make check builds it)"
                                 % self.script)
        if not shutil.which("start-stop-daemon") and not os.path.exists(
                "/sbin/start-stop-daemon"):
            missing("InitScript", "no start-stop-daemon (Debian's dpkg)")
        self.dir = short_dir("chatd-init-")
        self.port = chatlib.free_port()
        self.pid_file = os.path.join(self.dir, "chatd.pid")
        self.log = os.path.join(self.dir, "chatd.log")
        self.conf = os.path.join(self.dir, "chatd.conf")
        self.keys = {
            "listen": "127.0.0.1:%d" % self.port, "workers": 2,
            "storage": "sqlite:" + os.path.join(self.dir, "chat.db"),
            "pid_file": '"%s"   # quoted, with a comment' % self.pid_file,
            "log_file": self.log,
            "shm_name": "/chatd-init-%d-%d" % (os.getpid(), self.port),
            "password_cost": 1, "allow_root": "yes",
            "control_socket": os.path.join(self.dir, "ctl.sock")}
        self.write_conf()
        self.defaults = os.path.join(self.dir, "default")
        with open(self.defaults, "w") as f:
            f.write("DAEMON=%s\nCONFIG=%s\nSTOP_TIMEOUT=15\n"
                    % (chatlib.chatd_bin(), self.conf))
        self.env = dict(os.environ, CHATD_DEFAULTS=self.defaults,
                        _SYSTEMCTL_SKIP_REDIRECT="1")
        self.started = []

    def tearDown(self):
        # whatever the test did, no chatd of ours stays behind
        for pid in self.started + [self.master()]:
            if pid and chatlib.pid_alive(pid):
                for k in chatlib.children_of(pid):
                    os.kill(k, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
        p = "/dev/shm" + self.keys["shm_name"]
        if os.path.exists(p):
            os.unlink(p)
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_conf(self, **changes):
        self.keys.update(changes)
        chatlib.write_config(self.conf, self.keys)

    def master(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def run_init(self, action):
        r = chatlib.run([self.script, action], env=self.env, timeout=60)
        return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")

    def log_text(self, path=None):
        try:
            with open(path or self.log) as f:
                return f.read()
        except OSError:
            return ""

    def test_lifecycle(self):
        rc, out = self.run_init("status")
        self.assertEqual(rc, 3, out)
        rc, out = self.run_init("start")
        self.assertEqual(rc, 0, out)
        pid = self.master()
        self.assertIsNotNone(pid, "no pid file after start: " + out)
        self.started.append(pid)
        self.assertTrue(chatlib.pid_alive(pid))
        self.assertTrue(wait_for(lambda: len(chatlib.children_of(pid))
                                 == 2))
        c = chatlib.Client(self.port)
        c.register(unique("init"), "pw")
        c.close()
        rc, out = self.run_init("status")
        self.assertEqual(rc, 0, out)
        self.assertIn("running (pid %d)" % pid, out)
        rc, out = self.run_init("start")             # already running
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.master(), pid)

        # reload: HUP, same master
        rc, out = self.run_init("reload")
        self.assertEqual(rc, 0, out)
        self.assertTrue(wait_for(
            lambda: "configuration reloaded" in self.log_text()))
        self.assertEqual(self.master(), pid)
        self.assertTrue(chatlib.pid_alive(pid))
        rc, out = self.run_init("force-reload")
        self.assertEqual(rc, 0, out)
        # two reloads, each confirmed by the master and both workers
        self.assertTrue(wait_for(lambda: self.log_text().count(
            "configuration reloaded") == 6), self.log_text()[-2000:])

        # a broken configuration is refused before anything is signalled
        self.write_conf(workers="many")
        n = self.log_text().count("configuration reloaded")
        rc, out = self.run_init("reload")
        self.assertEqual(rc, 6, out)
        self.assertIn(":2: ", out)
        rc, out = self.run_init("restart")
        self.assertEqual(rc, 6, out)
        self.assertEqual(self.master(), pid)
        self.write_conf(workers=2)

        # a reload that moves the log: master and workers follow
        log2 = os.path.join(self.dir, "chatd2.log")
        self.write_conf(log_file=log2)
        rc, out = self.run_init("reload")
        self.assertEqual(rc, 0, out)
        # every process confirms, in the new file only
        self.assertTrue(wait_for(lambda: all(
            "%s %s: configuration reloaded" % role in self.log_text(log2)
            for role in (("master", "notice"), ("worker 0", "info"),
                         ("worker 1", "info")))), self.log_text(log2))
        self.assertEqual(self.log_text().count("configuration reloaded"),
                         n)

        # logrotate: the shipped postrotate, pointed at our pid file;
        # every process reopens and writes to the new file only
        rotated = log2 + ".1"
        os.rename(log2, rotated)
        size = os.path.getsize(rotated)
        self.run_postrotate()
        self.assertTrue(wait_for(lambda: all(
            "%s info: log file reopened" % role in self.log_text(log2)
            for role in ("master", "worker 0", "worker 1"))),
            "USR1 did not reopen the log everywhere:\n" +
            self.log_text(log2) + self.log_text(rotated)[-1000:])
        self.assertEqual(os.path.getsize(rotated), size)

        # restart: a new master
        rc, out = self.run_init("restart")
        self.assertEqual(rc, 0, out)
        pid2 = self.master()
        self.started.append(pid2)
        self.assertNotEqual(pid2, pid)
        # start-stop-daemon counts a process gone once its executable is
        # (early in exit); the process itself may still be tearing down
        # its mappings, which under AddressSanitizer takes a while
        self.assertTrue(wait_for(lambda: not chatlib.pid_alive(pid)))

        # stop: gone, pid file and control socket removed
        kids = chatlib.children_of(pid2)
        rc, out = self.run_init("stop")
        self.assertEqual(rc, 0, out)
        self.assertTrue(wait_for(lambda: not chatlib.pid_alive(pid2)),
                        "master %d still there after stop" % pid2)
        for k in kids:
            self.assertTrue(wait_for(lambda: not chatlib.pid_alive(k)))
        self.assertFalse(os.path.exists(self.pid_file))
        self.assertFalse(os.path.exists(self.keys["control_socket"]))
        self.assertFalse(os.path.exists("/dev/shm" + self.keys["shm_name"]))
        rc, out = self.run_init("status")
        self.assertEqual(rc, 3, out)
        rc, out = self.run_init("stop")              # not running: fine
        self.assertEqual(rc, 0, out)
        rc, out = self.run_init("reload")
        self.assertEqual(rc, 7, out)
        rc, out = self.run_init("frobnicate")
        self.assertEqual(rc, 3, out)

        # a broken configuration never starts
        self.write_conf(listen="nowhere")
        rc, out = self.run_init("start")
        self.assertEqual(rc, 6, out)
        self.assertIsNone(self.master())

    def run_postrotate(self):
        with open(os.path.join(SRCDIR, "etc", "logrotate.d", "chatd")) as f:
            text = f.read()
        m = re.search(r"postrotate\n(.*?)\n\s*endscript", text, re.S)
        self.assertIsNotNone(m, "no postrotate script")
        script = m.group(1).replace("/run/chatd/chatd.pid", self.pid_file)
        r = chatlib.run(["sh", "-c", script])
        self.assertEqual(r.returncode, 0, r.stderr)


# systemd-analyze security's rating of etc/chatd.service (0 best, 10 worst)
SECURITY_EXPOSURE_MAX = 2.0


class Files(unittest.TestCase):
    def test_systemd_unit(self):
        path = os.path.join(BUILDDIR, "etc", "chatd.service")
        with open(path) as f:
            unit = f.read()
        self.assertRegex(unit, r"(?m)^ExecStartPre=/\S*/chatd -n -f \S+$")
        self.assertRegex(unit, r"(?m)^ExecStart=/\S*/chatd -d -f \S+$")
        self.assertIn("\nExecReload=/bin/kill -HUP $MAINPID\n", unit)
        self.assertIn("\nLimitNOFILE=65536\n", unit)
        self.assertIn("\nRestart=on-failure\n", unit)
        self.assertNotRegex(unit, r"@\w+@")    # every path substituted
        sa = shutil.which("systemd-analyze")
        if not sa:
            sys.stderr.write("*** systemd-analyze not found: unit not "
                             "verified, only read\n")
            return
        d = short_dir("chatd-unit-")
        try:
            conf = os.path.join(d, "chatd.conf")
            chatlib.write_config(conf, {"listen": "127.0.0.1:1"})
            local = re.sub(r"(?m)^(Exec\w*=)/\S*/chatd -(\w) -f \S+$",
                           lambda m: "%s%s -%s -f %s" % (
                               m.group(1), chatlib.chatd_bin(), m.group(2),
                               conf), unit)
            upath = os.path.join(d, "chatd.service")
            with open(upath, "w") as f:
                f.write(local)
            r = chatlib.run([sa, "verify", "--man=no", upath], timeout=60)
            err = r.stderr.decode("utf-8", "replace")
            self.assertEqual(r.returncode, 0, err)
            ours = [l for l in err.splitlines() if "chatd.service" in l]
            self.assertEqual(ours, [], err)
            # the sandbox: systemd's own exposure rating of the unit
            r = chatlib.run([sa, "security", "--offline=true", upath],
                            timeout=60)
            out = (r.stdout + r.stderr).decode("utf-8", "replace")
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
            self.assertIsNotNone(m, out)
            self.assertLessEqual(float(m.group(1)), SECURITY_EXPOSURE_MAX,
                                 out)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_man_pages(self):
        mandoc = shutil.which("mandoc")
        if not mandoc:
            missing("test_man_pages", "no mandoc (apt-get install mandoc)")
        pages = ["chatd.8", "chatd.conf.5", "chatc.1", "chatd-protocol.7",
                 "chatctl.1"]
        for p in pages:
            path = os.path.join(SRCDIR, "man", p)
            r = chatlib.run([mandoc, "-T", "lint", "-W", "warning", path])
            self.assertEqual((r.stdout + r.stderr).decode(), "", p)
            self.assertEqual(r.returncode, 0, p)
        # every protocol errno is documented
        with open(os.path.join(SRCDIR, "include", "proto.h")) as f:
            codes = re.findall(r"\bERR_\w+\s*=\s*(\d+)", f.read())
        with open(os.path.join(SRCDIR, "man", "chatd-protocol.7")) as f:
            page = f.read()
        for c in codes:
            if c != "0":
                self.assertRegex(page, r"(?m)^\.It %s$" % c)

    def test_conf_keys_documented(self):
        """Every key in config.c's table has its entry in chatd.conf.5."""
        with open(os.path.join(SRCDIR, "src", "server", "config.c")) as f:
            keys = re.findall(r'^\t\{ "(\w+)", CFG_', f.read(), re.M)
        with open(os.path.join(SRCDIR, "man", "chatd.conf.5")) as f:
            conf5 = f.read()
        undocumented = [k for k in keys if ".It Cm %s " % k not in conf5]
        self.assertEqual(undocumented, [], "keys missing in chatd.conf.5")

    def test_sample_config(self):
        with open(os.path.join(SRCDIR, "etc", "chatd.conf")) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^control_socket = /run/chatd/chatd.sock$")
        self.assertRegex(text, r"(?m)^#metrics_listen = ")
        r = chatlib.run([chatlib.chatd_bin(), "-n", "-f",
                         os.path.join(SRCDIR, "etc", "chatd.conf")])
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
