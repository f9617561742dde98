#!/usr/bin/env python3
"""The WebSocket listener (websocket_listen, issue 16), run for real.

A chatd with two workers listens for TCP and WebSocket; the client is
wsclient.WSClient (Python's standard library: handshake and frames).
The protocol's main features run over WebSocket with a TCP user on the
other side; hostile inputs (bad handshakes, a wrong Origin, an unmasked
frame, oversized, fragmented, binary and non-UTF-8 messages, path
traversal on GET) get the RFC's answer or a close, while a TCP pair
keeps chatting undisturbed.
"""

import os
import re
import shutil
import socket
import time
import ssl
import struct
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
import wsclient  # noqa: E402
from chatlib import (ERROR, CHAT_ACK, ONE_CHAT, GROUP_CHAT,  # noqa: E402
                     ERR_MALFORMED, find, unique)
from wsclient import WSClient, HandshakeRefused, frame  # noqa: E402

WWW = os.path.join(cluster.SRCDIR, "www")
MAX_FRAME = 4096
KEY = "dGhlIHNhbXBsZSBub25jZQ=="

S = None        # the server
WS_PORT = None


def setUpModule():
    global S, WS_PORT
    WS_PORT = chatlib.free_port()
    S = chatlib.Server(workers=2, extra={
        "websocket_listen": "127.0.0.1:%d" % WS_PORT,
        "max_frame_bytes": MAX_FRAME,
        "max_message_bytes": 2048,
    })
    # a copy of www with a symlink out of it: never followed
    www = os.path.join(S.dir, "www")
    shutil.copytree(WWW, www)
    os.symlink("/etc/passwd", os.path.join(www, "passwd.txt"))
    with open(os.path.join(S.dir, "secret.txt"), "w") as f:
        f.write("not for the web\n")
    S.keys["www_root"] = www
    S.start()


def tearDownModule():
    if S is not None:
        S.__exit__(None, None, None)


def ws(**kw):
    c = WSClient(WS_PORT, **kw)
    S._clients.append(c)
    return c


def ws_user(prefix="w"):
    c = ws()
    name = unique(prefix)
    uid = c.register(name, "pw")
    u = chatlib.User(S, c, uid, name, "pw")
    u.reply = c.login(uid, "pw")
    return u


def handshake(extra_headers, request_line="GET / HTTP/1.1"):
    req = (request_line + "\r\nHost: 127.0.0.1:%d\r\n" % WS_PORT +
           extra_headers + "\r\n")
    return wsclient.parse_response(
        wsclient.http_request(WS_PORT, req.encode()))


UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Version: 13\r\n")


class Bystanders:
    """A TCP pair chatting; round() proves they were not disturbed."""

    def setUp(self):
        self.a, self.b = S.user("ta"), S.user("tb")

    def round(self):
        self.a.chat(self.b.id, "still here")
        m = self.b.c.recv_msgid(ONE_CHAT)
        self.assertEqual(m["msg"], "still here")
        self.b.chat(self.a.id, "me too")
        self.assertEqual(self.a.c.recv_msgid(ONE_CHAT)["msg"], "me too")


class Features(unittest.TestCase):
    def test_chat_with_tcp_user_both_ways_on_two_workers(self):
        t = S.user("t")
        tw = t.c.whoami()
        for _ in range(60):     # a WebSocket on the other worker
            w = ws_user()
            if w.c.whoami() != tw:
                break
            w.c.close()
        self.assertNotEqual(w.c.whoami(), tw)
        w.c.addfriend(w.id, t.id)
        w.c.ping()
        self.assertEqual(find(w.relogin()["friends"], id=t.id)["state"],
                         "online")
        w.chat(t.id, "hello from a browser \U0001F600 <b>x</b>")
        m = t.c.recv_msgid(ONE_CHAT)
        self.assertEqual((m["id"], m["name"], m["msg"]),
                         (w.id, w.name, "hello from a browser \U0001F600 "
                          "<b>x</b>"))
        t.chat(w.id, "hello from TCP \"quoted\"\n\\")
        m = w.c.recv_msgid(ONE_CHAT)
        self.assertEqual((m["id"], m["msg"]),
                         (t.id, "hello from TCP \"quoted\"\n\\"))
        # one text frame per message: the raw frame is the JSON object
        self.assertFalse(w.c.raw_log[-1].endswith(b"\n"))

    def test_acknowledged_chat(self):
        w, t = ws_user(), S.user("t")
        w.chat(t.id, "acked", cmid=77)
        ack = w.c.recv_msgid(CHAT_ACK)
        self.assertEqual(ack["cmid"], 77)
        self.assertEqual(t.c.recv_msgid(ONE_CHAT)["smid"], ack["smid"])
        w.chat(t.id, "acked", cmid=77)      # a resend: acked, not delivered
        self.assertEqual(w.c.recv_msgid(CHAT_ACK)["smid"], ack["smid"])
        t.c.expect_none()

    def test_group_chat(self):
        w, t, w2 = ws_user(), S.user("t"), ws_user()
        gname = unique("g")
        w.c.creategroup(w.id, gname, "web <desc>")
        g = find(w.relogin()["groups"], groupname=gname)
        self.assertIsNotNone(g)
        t.c.addgroup(t.id, g["id"])
        w2.c.addgroup(w2.id, g["id"])
        t.c.ping()
        w2.c.ping()
        w.groupchat(g["id"], "to the group")
        for c in (t.c, w2.c):
            m = c.recv_msgid(GROUP_CHAT)
            self.assertEqual((m["id"], m["msg"]), (w.id, "to the group"))
        t.groupchat(g["id"], "from TCP")
        for c in (w.c, w2.c):
            self.assertEqual(c.recv_msgid(GROUP_CHAT)["msg"], "from TCP")
        w.c.expect_none()
        members = find(w.relogin()["groups"], id=g["id"])["users"]
        self.assertEqual(sorted(u["id"] for u in members),
                         sorted([w.id, t.id, w2.id]))

    def test_offline_at_login(self):
        c = ws()
        name = unique("off")
        uid = c.register(name, "pw")
        t = S.user("t")
        t.chat(uid, "while you were away 1")
        t.chat(uid, "while you were away 2")
        t.c.ping()
        r = c.login(uid, "pw")
        self.assertEqual([m["msg"] for m in r["offlinemsg"]],
                         ["while you were away 1", "while you were away 2"])
        # login by name works too, on a new connection after a logout
        c.loginout(uid)
        c.send_obj({"msgid": 1, "name": name, "password": "pw"})
        self.assertEqual(c.recv_msgid(2)["id"], uid)

    def test_one_request_per_message(self):
        c = ws()
        c.send_text('{"msgid":101,"seq":1}{"msgid":101,"seq":2}')
        m = c.recv_msgid(ERROR)
        self.assertEqual(m["errno"], ERR_MALFORMED)
        c.send_text('{"msgid":101,"seq":3}\n')     # trailing blank: fine
        self.assertEqual(c.recv_msgid(102)["seq"], 3)
        c.send_text("not json")
        self.assertEqual(c.recv_msgid(ERROR)["errno"], ERR_MALFORMED)
        c.ping()            # the connection goes on

    def test_requests_answered_in_order(self):
        """Frames sent at once while a login is in flight keep their order."""
        c = ws()
        name = unique("o")
        uid = c.register(name, "pw")
        burst = b"".join(frame(wsclient.OP_TEXT, p.encode()) for p in (
            '{"msgid":1,"id":%d,"password":"pw"}' % uid,
            '{"msgid":104}', '{"msgid":101,"seq":9}'))
        c.send_raw(burst)
        self.assertEqual(c.recv_msgid(2)["errno"], 0)
        self.assertEqual(c.recv_msgid(105)["id"], uid)
        self.assertEqual(c.recv_msgid(102)["seq"], 9)

    def test_ping_pong_and_close(self):
        c = ws()
        c.send_raw(frame(wsclient.OP_PING, b"are you there"))
        c.ping()
        self.assertIn((wsclient.OP_PONG, b"are you there"), c.controls)
        c.send_close(1000)
        self.assertTrue(c.wait_closed())
        self.assertEqual(c.close_code, 1000)

    def test_fragmented_message(self):
        c = ws()
        text = b'{"msgid":101,"seq":"' + b"f" * 300 + b'"}'
        parts = [text[:100], text[100:250], text[250:]]
        c.send_raw(frame(wsclient.OP_TEXT, parts[0], fin=False) +
                   frame(wsclient.OP_PING, b"between") +
                   frame(wsclient.OP_CONT, parts[1], fin=False) +
                   frame(wsclient.OP_CONT, parts[2]))
        m = c.recv_msgid(102)
        self.assertEqual(m["seq"], "f" * 300)
        self.assertIn((wsclient.OP_PONG, b"between"), c.controls)


class StaticFiles(unittest.TestCase):
    def test_page_and_files(self):
        st, h, body = wsclient.http_get(WS_PORT, "/")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/html"))
        self.assertIn("nosniff", h["x-content-type-options"])
        self.assertIn("default-src 'self'", h["content-security-policy"])
        with open(os.path.join(WWW, "index.html"), "rb") as f:
            self.assertEqual(body, f.read())
        for name, ctype in (("app.js", "text/javascript"),
                            ("style.css", "text/css")):
            st, h, body = wsclient.http_get(WS_PORT, "/" + name + "?v=1")
            self.assertEqual(st, 200, name)
            self.assertTrue(h["content-type"].startswith(ctype))
            self.assertEqual(int(h["content-length"]), len(body))
        st, h, body = wsclient.parse_response(wsclient.http_request(
            WS_PORT, b"HEAD /app.js HTTP/1.1\r\nHost: x\r\n\r\n"))
        self.assertEqual((st, body), (200, b""))

    def test_path_traversal(self):
        for path in ("/../secret.txt", "/..%2fsecret.txt", "/%2e%2e/secret.txt",
                     "//etc/passwd", "/www/../secret.txt", "/.%2e/secret.txt",
                     "/passwd.txt", "/../../../../etc/passwd", "/.hidden",
                     "/index.html/", "/nonexistent.js", "/%00", "/a\\..\\b"):
            st, _, body = wsclient.http_get(WS_PORT, path)
            self.assertEqual(st, 404, path)
            self.assertNotIn(b"root:", body)
            self.assertNotIn(b"not for the web", body)

    def test_other_methods(self):
        st, h, _ = wsclient.parse_response(wsclient.http_request(
            WS_PORT, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
        self.assertEqual(st, 405)
        self.assertIn("GET", h["allow"])


class Hostile(Bystanders, unittest.TestCase):
    def test_bad_handshakes(self):
        cases = [
            (UPGRADE, 400),                                   # no key
            (UPGRADE + "Sec-WebSocket-Key: short\r\n", 400),
            (UPGRADE.replace("13", "8") + "Sec-WebSocket-Key: %s\r\n" % KEY,
             426),
            (UPGRADE.replace("Connection: Upgrade\r\n", "") +
             "Sec-WebSocket-Key: %s\r\n" % KEY, 400),
            (UPGRADE + "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Key: %s\r\n"
             % (KEY, KEY), 400),
            (UPGRADE + "Sec-WebSocket-Key: %s\r\n folded\r\n" % KEY, 400),
            (UPGRADE + "X: " + "a" * 9000 + "\r\n", 431),
        ]
        for hdrs, want in cases:
            st, h, _ = handshake(hdrs)
            self.assertEqual(st, want, hdrs[:120])
            if want == 426:
                self.assertEqual(h["sec-websocket-version"], "13")
        st, _, _ = handshake(UPGRADE + "Sec-WebSocket-Key: %s\r\n" % KEY,
                             request_line="POST / HTTP/1.1")
        self.assertEqual(st, 405)
        out = wsclient.http_request(WS_PORT, b"\x16\x03\x01garbage\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:40])
        self.round()

    def test_origin(self):
        with self.assertRaises(HandshakeRefused) as cm:
            ws(origin="http://evil.example")
        self.assertEqual(cm.exception.status, 403)
        self.assertIn(b"websocket_origins", cm.exception.data)
        with self.assertRaises(HandshakeRefused):
            ws(origin="http://127.0.0.1:%d" % (WS_PORT + 1))
        # the page's own origin, and no Origin at all (not a browser)
        ws(origin="http://127.0.0.1:%d" % WS_PORT).ping()
        ws().ping()
        self.round()

    def test_unmasked_frame(self):
        c = ws()
        c.send_raw(frame(wsclient.OP_TEXT, b'{"msgid":101}', mask=False))
        self.assertTrue(c.wait_closed())
        self.assertEqual(c.close_code, 1002)
        c.expect_none(0)
        self.round()

    def test_oversized_message(self):
        c = ws()
        c.send_text('{"msgid":101,"seq":"%s"}' % ("x" * MAX_FRAME))
        self.assertTrue(c.wait_closed())
        self.assertEqual(c.close_code, 1009)
        self.round()
        # the same size in fragments, each small: closed all the same
        c = ws()
        part = b"y" * 1024
        c.send_raw(frame(wsclient.OP_TEXT, b'{"msgid":101,"s":"', fin=False) +
                   b"".join(frame(wsclient.OP_CONT, part, fin=False)
                            for _ in range(5)) +
                   frame(wsclient.OP_CONT, b'"}'))
        self.assertTrue(c.wait_closed())
        self.assertEqual(c.close_code, 1009)
        # a frame header announcing 2^62 bytes: refused at its first
        # payload bytes (before them the client is merely slow, and the
        # login or idle timeout applies)
        c = ws()
        c.send_raw(struct.pack("!BBQ", 0x81, 0xff, 1 << 62) + b"mask" +
                   b"z" * 16)
        self.assertTrue(c.wait_closed())
        self.assertEqual(c.close_code, 1009)
        self.round()

    def test_bad_fragments_and_types(self):
        c = ws()        # a continuation with nothing to continue
        c.send_raw(frame(wsclient.OP_CONT, b"x"))
        self.assertTrue(c.wait_closed())
        self.assertEqual(c.close_code, 1002)
        c = ws()        # a new message inside a fragmented one
        c.send_raw(frame(wsclient.OP_TEXT, b"{", fin=False) +
                   frame(wsclient.OP_TEXT, b"}"))
        self.assertTrue(c.wait_closed())
        self.assertEqual(c.close_code, 1002)
        c = ws()        # a fragmented ping
        c.send_raw(frame(wsclient.OP_PING, b"x", fin=False))
        self.assertTrue(c.wait_closed())
        # wslay fails some protocol errors with an empty close frame
        self.assertIn(c.close_code, (1002, 1005))
        c = ws()        # reserved bits without an extension
        c.send_raw(frame(wsclient.OP_TEXT, b"{}", rsv=4))
        self.assertTrue(c.wait_closed())
        self.assertEqual(c.close_code, 1002)
        c = ws()
        c.send_raw(frame(wsclient.OP_BINARY, b'{"msgid":101}'))
        self.assertTrue(c.wait_closed())
        self.assertEqual(c.close_code, 1003)
        c = ws()
        c.send_raw(frame(wsclient.OP_TEXT, b'{"msgid":101,"s":"\xff\xfe"}'))
        self.assertTrue(c.wait_closed())
        self.assertEqual(c.close_code, 1007)
        self.round()

    def test_abrupt_disconnects(self):
        """Half a handshake, half a frame, then gone: nobody else notices."""
        s = socket.create_connection(("127.0.0.1", WS_PORT))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpg")
        s.close()
        c = ws_user()
        c.c.send_raw(frame(wsclient.OP_TEXT, b'{"msgid":101,"x":"abcdef"}')[:9])
        c.c.shutdown()
        self.round()
        # the user of the dropped connection is logged out as soon as its
        # worker reads the end of the stream (on a loaded machine, that
        # may come after the round trip above: wait for it, bounded)
        again = ws()
        deadline = time.monotonic() + 10
        while True:
            r = again.login_raw(c.id, "pw")
            if r.get("errno") == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(r.get("errno"), 0, r)
        self.assertEqual(r["id"], c.id)


class Limits(unittest.TestCase):
    """max_connections_per_ip counts WebSocket connections too."""

    def test_per_address(self):
        port = chatlib.free_port()
        with chatlib.Server(workers=1, extra={
                "websocket_listen": "127.0.0.1:%d" % port,
                "www_root": WWW, "max_connections_per_ip": 2}) as s:
            src = "127.0.0.7"
            keep = [WSClient(port, src=src) for _ in range(2)]
            # refused at accept: the answer comes before any request (one
            # sent at once could be reset away with the unread socket)
            out = wsclient.http_request(port, b"", src=src)
            self.assertTrue(out.startswith(b"HTTP/1.1 503"), out[:60])
            st, h, body = wsclient.parse_response(out)
            self.assertEqual(int(h["content-length"]), len(body))
            keep[0].ping()
            for k in keep:
                k.close()
            # the count goes down when they close
            self.assertTrue(chatlib.wait_for(lambda: wsclient.http_request(
                port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                src=src).startswith(b"HTTP/1.1 200")))
            # a server that stops says so with a close frame
            c = WSClient(port)
            c.ping()
            self.assertEqual(s.stop(), [])
            self.assertTrue(c.wait_closed())
            self.assertEqual(c.close_code, 1000)


class NginxWss(unittest.TestCase):
    """etc/nginx-chatd-ws.conf, run for real: wss:// through nginx."""

    SAMPLE = os.path.join(cluster.SRCDIR, "etc", "nginx-chatd-ws.conf")

    def setUp(self):
        nginx, openssl = cluster.find_prog("nginx"), cluster.find_prog("openssl")
        if not nginx or not openssl:
            if cluster.in_ci():
                self.fail("CI=true and no nginx or openssl")
            self.skipTest("no nginx or openssl (scripts/deps installs them)")
        self.dir = tempfile.mkdtemp(prefix="chatd-wss-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        cert = os.path.join(self.dir, "fullchain.pem")
        key = os.path.join(self.dir, "privkey.pem")
        r = subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
             "-out", cert, "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode())
        self.port = chatlib.free_port()
        with open(self.SAMPLE) as f:
            conf = f.read()
        conf = conf.replace("/etc/chatd/tls/fullchain.pem", cert)
        conf = conf.replace("/etc/chatd/tls/privkey.pem", key)
        conf = conf.replace("127.0.0.1:6080", "127.0.0.1:%d" % WS_PORT)
        conf = re.sub(r"listen 443 ssl;", "listen 127.0.0.1:%d ssl;"
                      % self.port, conf)
        conf = re.sub(r"listen 80;", "listen 127.0.0.1:%d;"
                      % chatlib.free_port(), conf)
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write("worker_processes 1;\npid %s/nginx.pid;\n"
                    "error_log %s/error.log info;\n"
                    "events { worker_connections 256; }\n"
                    "http { access_log off;\n%s\n}\n"
                    % (self.dir, self.dir, conf))
        self.nginx = subprocess.Popen(
            [nginx, "-p", self.dir + "/", "-c", path, "-e",
             os.path.join(self.dir, "error.log"), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT)
        self.addCleanup(self._stop)
        cluster.wait_port(self.port, self.nginx, what="nginx")
        self.ctx = ssl.create_default_context(cafile=cert)

    def _stop(self):
        if self.nginx.poll() is None:
            self.nginx.terminate()
        self.nginx.wait(10)

    def test_wss_through_nginx(self):
        host = "localhost:%d" % self.port
        c = WSClient(self.port, ssl_ctx=self.ctx, host_header=host,
                     origin="https://" + host)
        S._clients.append(c)
        name = unique("wss")
        uid = c.register(name, "pw")
        c.login(uid, "pw")
        t = S.user("t")
        t.chat(uid, "over TLS")
        self.assertEqual(c.recv_msgid(ONE_CHAT)["msg"], "over TLS")
        c.chat(uid, name, t.id, "back over TLS")
        self.assertEqual(t.c.recv_msgid(ONE_CHAT)["msg"], "back over TLS")
        with self.assertRaises(HandshakeRefused) as cm:
            WSClient(self.port, ssl_ctx=self.ctx, host_header=host,
                     origin="https://evil.example")
        self.assertEqual(cm.exception.status, 403)
        # the page itself, through nginx
        raw = socket.create_connection(("127.0.0.1", self.port))
        s = self.ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
        data = b""
        while b"</html>" not in data:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:80])
        self.assertIn(b"app.js", data)


if __name__ == "__main__":
    unittest.main(verbosity=2)
