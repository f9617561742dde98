#!/usr/bin/env python3
"""TLS in front of chatd: etc/nginx-chatd-tls.conf, run for real.

A self-signed certificate is made with openssl in a temporary directory,
nginx terminates TLS with the sample configuration (ports and paths
substituted), and clients using Python's ssl module (certificate and
host name verified) register, log in and chat through it.  chatd runs
with proxy_protocol_from = 127.0.0.1, as the sample tells: nginx names
every client in a PROXY header, which chatd requires from it.

Without nginx, its stream module or openssl the test is skipped (77),
except in CI (CI=true), where that is a failure.
"""

import collections
import itertools
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
from chatlib import ONE_CHAT, ERROR, ERR_LIMIT  # noqa: E402

SAMPLE = os.path.join(cluster.SRCDIR, "etc", "nginx-chatd-tls.conf")


def require():
    cluster.require(("nginx",))
    if not cluster.find_prog("openssl"):
        if cluster.in_ci():
            sys.stderr.write("test_tls: FAIL: CI=true and no openssl\n")
            sys.exit(1)
        sys.stderr.write("test_tls: SKIPPED: no openssl\n")
        sys.exit(cluster.SKIP)
    out = subprocess.run([cluster.find_prog("nginx"), "-V"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if b"--with-stream_ssl_module" not in out.stdout:
        if cluster.in_ci():
            sys.stderr.write("test_tls: FAIL: nginx without stream ssl\n")
            sys.exit(1)
        sys.stderr.write("test_tls: SKIPPED: nginx without stream ssl\n")
        sys.exit(cluster.SKIP)


class TLSClient(chatlib.Client):
    """chatlib.Client over TLS (certificate and host name checked)."""

    def __init__(self, port, ctx, timeout=chatlib.TIMEOUT):
        raw = socket.create_connection(("127.0.0.1", port), timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.sock.setblocking(False)
        self.buf = b""
        self.lines = collections.deque()
        self.eof = False
        self.raw_log = []
        self._seq = itertools.count(1)



class TLS(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="chatd-tls-")
        cls.cert = os.path.join(cls.dir, "fullchain.pem")
        cls.key = os.path.join(cls.dir, "privkey.pem")
        r = subprocess.run(
            [cluster.find_prog("openssl"), "req", "-x509", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", cls.key, "-out", cls.cert, "-days", "2",
             "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise AssertionError("openssl: %s" % r.stdout.decode())
        cls.srv = chatlib.Server(workers=2, extra={
            "proxy_protocol_from": "127.0.0.1",
            "max_connections_per_ip": 20,
            "rate_limit_rps": 200, "login_fail_max": 5})
        cls.srv.start()
        cls.tls_port = chatlib.free_port()
        with open(SAMPLE) as f:
            sample = f.read()
        conf = sample.replace("/etc/chatd/tls/fullchain.pem", cls.cert)
        conf = conf.replace("/etc/chatd/tls/privkey.pem", cls.key)
        conf = conf.replace("127.0.0.1:6000", cls.srv.listen)
        conf = re.sub(r"listen 6443 ssl([^;]*);",
                      r"listen 127.0.0.1:%d ssl\1;" % cls.tls_port, conf)
        # a small edge limit, to see nginx enforce it
        conf = conf.replace("limit_conn chatd_addr 1024;",
                            "limit_conn chatd_addr 5;")
        if "limit_conn chatd_addr 5;" not in conf:
            raise AssertionError("sample's limit_conn not found")
        cls.nginx_conf = os.path.join(cls.dir, "nginx.conf")
        with open(cls.nginx_conf, "w") as f:
            f.write("load_module %s;\nworker_processes 1;\npid %s/nginx.pid;"
                    "\nerror_log %s/error.log info;\nevents { "
                    "worker_connections 256; }\n%s"
                    % (cluster.STREAM_MODULE, cls.dir, cls.dir, conf))
        cls.nginx = subprocess.Popen(
            [cluster.find_prog("nginx"), "-p", cls.dir + "/", "-c",
             cls.nginx_conf, "-e", os.path.join(cls.dir, "error.log"),
             "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT)
        cluster.wait_port(cls.tls_port, cls.nginx, what="nginx")
        cls.ctx = ssl.create_default_context(cafile=cls.cert)
        cls.ctx.minimum_version = ssl.TLSVersion.TLSv1_2

    @classmethod
    def tearDownClass(cls):
        if cls.nginx.poll() is None:
            cls.nginx.send_signal(signal.SIGQUIT)
            try:
                cls.nginx.wait(10)
            except subprocess.TimeoutExpired:
                cls.nginx.kill()
                cls.nginx.wait()
        cls.srv.__exit__(None, None, None)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            c.close()
        # nginx counts a connection until it saw the close
        time.sleep(0.2)

    def tls(self):
        c = TLSClient(self.tls_port, self.ctx)
        self.conns.append(c)
        return c

    def user(self, prefix):
        c = self.tls()
        name = chatlib.unique(prefix)
        uid = c.register(name, "pw")
        c.login(uid, "pw")
        return c, uid, name

    def test_chat_through_tls(self):
        a, aid, aname = self.user("tlsa")
        b, bid, bname = self.user("tlsb")
        self.assertIn(a.sock.version(), ("TLSv1.2", "TLSv1.3"))
        text = "über TLS \U0001F512 \"quoted\" \\ back"
        sent = a.chat(aid, aname, bid, text)
        m = b.recv_msgid(ONE_CHAT)
        self.assertEqual((m["msg"], m["id"], m["name"], m["time"]),
                         (text, aid, aname, sent["time"]))
        # offline through TLS too: once b's close went through nginx to
        # chatd, b can log in again; log out and a's message is kept
        b.sock.close()
        c = self.tls()
        self.assertTrue(chatlib.wait_for(
            lambda: c.login_raw(bid, "pw")["errno"] == 0))
        c.loginout(bid)
        self.assertEqual(c.sync(), [])
        a.chat(aid, aname, bid, "while away")
        self.assertEqual(a.sync(), [])
        r = c.login(bid, "pw")
        self.assertEqual([o["msg"] for o in r["offlinemsg"]], ["while away"])

    def test_clients_behind_nginx_are_not_one_address(self):
        """5 TLS clients chat, each named to chatd by nginx's PROXY
        header (chatd closes a connection from nginx without one); nginx
        limits per address (5 here)."""
        users = [self.user("many") for _ in range(5)]
        first = users[0]
        for c, uid, name in users[1:]:
            c.chat(uid, name, first[1], "hi from %d" % uid)
        got = sorted(first[0].recv_msgid(ONE_CHAT)["id"] for _ in users[1:])
        self.assertEqual(got, sorted(u[1] for u in users[1:]))
        # the sixth client from this address is turned away by nginx
        with self.assertRaises((chatlib.Closed, AssertionError,
                                ConnectionResetError, ssl.SSLError)):
            extra = self.tls()
            extra.send_obj({"msgid": 104})
            extra.recv(timeout=3)

    def test_bad_certificate_refused(self):
        """A client that checks certificates does not talk to a server
        whose certificate is not the one it trusts."""
        ctx = ssl.create_default_context()        # system CAs only
        with self.assertRaises(ssl.SSLCertVerificationError):
            TLSClient(self.tls_port, ctx)

    def test_plain_tcp_to_tls_port(self):
        """Plain JSON to the TLS port reaches nobody: nginx drops it."""
        s = socket.create_connection(("127.0.0.1", self.tls_port), 5)
        try:
            s.sendall(chatlib.seed_bytes({"msgid": 104}))
            s.settimeout(5)
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            self.assertNotIn(b"msgid", data)
        finally:
            s.close()


if __name__ == "__main__":
    require()
    unittest.main(verbosity=2)
