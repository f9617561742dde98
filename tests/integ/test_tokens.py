#!/usr/bin/env python3
"""Resume tokens, logout-everywhere, password changes and "busy".

- A client that asks ("token": true) gets a token in its login answer;
  the token logs it in again, on another worker and on another node of
  a cluster (the key file shared), without a password; the seed's login
  gets no token.
- A token is refused after logout-everywhere (122), after a password
  change (123, with the old password), after expiry, when one bit of it
  is altered, and when the key is replaced; during a rotation
  (token_key_file_old) the old key's tokens still pass.
- A key file readable by others stops chatd at start.
- With the hash queue full (auth_queue_max) logins are answered "busy,
  retry in N ms" (errno 29, "retryms") at once, not left to time out.
- A token login takes over the user's session on the same node (the
  old connection, not yet known dead, is closed); a password login while
  online is still refused with errno 2.
- Tokens never appear in the log.
- chatc, in script and interactive mode, logs in again with its token
  after chatd is restarted mid-session and shows what arrived meanwhile
  once.
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
from chatlib import (LOGIN, LOGIN_ACK, LOGINOUT, ERROR, ERR_AUTH,  # noqa
                     unique)

LOGOUT_ALL, PASSWD, ACCOUNT_ACK = 122, 123, 124
ERR_BUSY, ERR_TOKEN = 29, 30


def key_file(d, name, data=None, mode=0o600):
    path = os.path.join(d, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, data or os.urandom(32).hex().encode() + b"\n")
    os.close(fd)
    os.chmod(path, mode)
    return path


def token_server(workers=2, **extra):
    srv = chatlib.Server(workers=workers, extra=extra)
    srv.keys["token_key_file"] = key_file(srv.dir, "token.key")
    return srv


def login_token(c, uid, password):
    c.send_obj({"id": uid, "msgid": LOGIN, "password": password,
                "token": True})
    r = c.recv_msgid(LOGIN_ACK)
    if r.get("errno") != 0 or not isinstance(r.get("token"), str):
        raise AssertionError("login with token: %r" % r)
    return r


def resume(c, token, **extra):
    o = {"msgid": LOGIN, "token": token}
    o.update(extra)
    c.send_obj(o)
    return c.recv_msgid(LOGIN_ACK)


def flip_bit(token, bit):
    raw = bytearray(bytes.fromhex(token))
    raw[bit // 8] ^= 1 << (bit % 8)
    return raw.hex()


class Tokens(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = token_server()
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    def new_user(self, password="pw"):
        uid, name = self.srv.register(password=password)
        return uid, name

    def test_seed_login_has_no_token(self):
        uid, _ = self.new_user()
        c = self.srv.client()
        r = c.login_raw(uid, "pw")
        self.assertEqual(r["errno"], 0)
        self.assertNotIn("token", r)
        c.close()

    def test_other_worker_and_no_password(self):
        uid, name = self.new_user()
        a, b = self.srv.clients_on_two_workers()
        r = login_token(a, uid, "pw")
        self.assertGreater(r["tokenexpires"], time.time() + 86400)
        a.send_obj({"id": uid, "msgid": LOGINOUT})
        a.ping()
        r2 = resume(b, r["token"])
        self.assertEqual(r2["errno"], 0, r2)
        self.assertEqual((r2["id"], r2["name"]), (uid, name))
        # a token login hands out a fresh token: it works too
        self.assertIsInstance(r2.get("token"), str)
        b.send_obj({"id": uid, "msgid": LOGINOUT})
        b.ping()
        c = self.srv.client()
        self.assertEqual(resume(c, r2["token"])["errno"], 0)
        # a token for one user, claimed for another id: refused
        c.send_obj({"id": uid, "msgid": LOGINOUT})
        c.ping()
        r3 = resume(c, r2["token"], id=uid + 1000)
        self.assertEqual(r3["errno"], ERR_TOKEN, r3)
        for x in (a, b, c):
            x.close()
        self.assertNotIn(r["token"], self.srv.log_text())
        self.assertNotIn(r2["token"], self.srv.log_text())

    def test_resume_takes_over_a_stale_session(self):
        """A client whose old connection the server still holds (a network
        change sends no FIN) resumes with its token: the new connection
        takes the session over, on the same worker or another, and the
        old one is closed; chats reach the new one.  A password login
        while online still gets errno 2, as the seed expects."""
        uid, _ = self.new_user()
        peer, peer_name = self.new_user()
        p = self.srv.client()
        self.assertEqual(p.login_raw(peer, "pw")["errno"], 0)
        old = self.srv.client_on(0)
        tok = login_token(old, uid, "pw")["token"]
        c = self.srv.client()
        self.assertEqual(c.login_raw(uid, "pw")["errno"],
                         chatlib.ERR_ONLINE)
        c.close()
        for slot in (0, 1, 1, 0):       # same worker, other, same, other
            new = self.srv.client_on(slot)
            r = resume(new, tok)
            self.assertEqual(r["errno"], 0, r)
            tok = r["token"]
            self.assertTrue(old.wait_closed(), "old connection kept")
            p.chat(peer, peer_name, uid, "to worker %d" % slot)
            self.assertEqual(new.recv_msgid(chatlib.ONE_CHAT)["msg"],
                             "to worker %d" % slot)
            old.close()
            old = new
        # the user is online once: a password login is still refused
        c = self.srv.client()
        self.assertEqual(c.login_raw(uid, "pw")["errno"],
                         chatlib.ERR_ONLINE)
        for x in (c, old, p):
            x.close()

    def test_one_bit_altered(self):
        uid, _ = self.new_user()
        c = self.srv.client()
        tok = login_token(c, uid, "pw")["token"]
        c.send_obj({"id": uid, "msgid": LOGINOUT})
        c.ping()
        for bit in (0, 7, 8, 40, 100, 167, 168, 300, 423):
            r = resume(c, flip_bit(tok, bit))
            self.assertEqual(r["errno"], ERR_TOKEN, (bit, r))
        for bad in ("", "xyz", tok.upper(), tok + "00", tok[:-2]):
            self.assertEqual(resume(c, bad)["errno"], ERR_TOKEN, bad)
        c.send_obj({"msgid": LOGIN, "token": 5})
        self.assertEqual(c.recv_msgid(LOGIN_ACK)["errno"],
                         chatlib.ERR_WRONG_TYPE)
        self.assertEqual(resume(c, tok)["errno"], 0)
        c.close()

    def test_logout_everywhere(self):
        uid, _ = self.new_user()
        c = self.srv.client()
        t1 = login_token(c, uid, "pw")["token"]
        c.send_obj({"id": uid, "msgid": LOGINOUT})
        c.ping()
        t2 = resume(c, t1)["token"]
        c.send_obj({"msgid": LOGOUT_ALL})
        r = c.recv_msgid(ACCOUNT_ACK)
        self.assertEqual((r["errno"], r["refmsgid"]), (0, LOGOUT_ALL))
        self.assertNotIn("token", r)
        # logged out: the connection may log in again, but not with tokens
        for t in (t1, t2):
            r = resume(c, t)
            self.assertEqual(r["errno"], ERR_TOKEN, r)
            self.assertIn("revoked", r["errmsg"])
        d = self.srv.client()
        t3 = login_token(d, uid, "pw")["token"]
        d.close()
        self.assertTrue(chatlib.wait_for(
            lambda: resume(c, t3)["errno"] == 0))
        c.close()

    def test_password_change(self):
        uid, _ = self.new_user("old")
        c = self.srv.client()
        tok = login_token(c, uid, "old")["token"]
        c.send_obj({"msgid": PASSWD, "password": "wrong",
                    "newpassword": "new"})
        r = c.recv_msgid(ERROR)
        self.assertEqual((r["errno"], r["refmsgid"]), (ERR_AUTH, PASSWD))
        c.send_obj({"msgid": PASSWD, "password": "old", "newpassword": ""})
        self.assertEqual(c.recv_msgid(ERROR)["errno"],
                         chatlib.ERR_BAD_VALUE)
        c.send_obj({"msgid": PASSWD, "password": "old",
                    "newpassword": "new"})
        r = c.recv_msgid(ACCOUNT_ACK, timeout=10)
        self.assertEqual((r["errno"], r["refmsgid"]), (0, PASSWD))
        fresh = r["token"]
        c.send_obj({"id": uid, "msgid": LOGINOUT})
        c.ping()
        self.assertEqual(resume(c, tok)["errno"], ERR_TOKEN)
        self.assertEqual(c.login_raw(uid, "old")["errno"], ERR_AUTH)
        self.assertEqual(c.login_raw(uid, "new")["errno"], 0)
        c.send_obj({"id": uid, "msgid": LOGINOUT})
        c.ping()
        # the token handed out with the change is of the new generation
        self.assertEqual(resume(c, fresh)["errno"], 0)
        c.close()
        d = self.srv.client()
        d.send_obj({"msgid": PASSWD, "password": "a", "newpassword": "b"})
        self.assertEqual(d.recv_msgid(ERROR)["errno"],
                         chatlib.ERR_NOT_LOGGED_IN)
        d.close()

    def test_revoked_token_takes_nothing_over(self):
        """A token revoked while its user is online (a password change
        keeps the session) is refused on either worker, and the live
        session stays: the generation is checked before a take-over."""
        uid, _ = self.new_user("old")
        peer, peer_name = self.new_user()
        p = self.srv.client()
        self.assertEqual(p.login_raw(peer, "pw")["errno"], 0)
        holder = self.srv.client_on(0)
        tok = login_token(holder, uid, "old")["token"]
        holder.send_obj({"msgid": PASSWD, "password": "old",
                         "newpassword": "new"})
        r = holder.recv_msgid(ACCOUNT_ACK, timeout=10)
        self.assertEqual(r["errno"], 0, r)
        fresh = r["token"]
        for slot in (0, 1, 0):
            x = self.srv.client_on(slot)
            r = resume(x, tok)
            self.assertEqual(r["errno"], ERR_TOKEN, r)
            self.assertIn("revoked", r["errmsg"])
            x.close()
            p.chat(peer, peer_name, uid, "still yours %d" % slot)
            self.assertEqual(holder.recv_msgid(chatlib.ONE_CHAT)["msg"],
                             "still yours %d" % slot)
        # the token handed out with the change takes the session over
        new = self.srv.client_on(1)
        self.assertEqual(resume(new, fresh)["errno"], 0)
        self.assertTrue(holder.wait_closed(), "old connection kept")
        for x in (new, holder, p):
            x.close()


class Lifetime(unittest.TestCase):
    def test_expiry(self):
        with token_server(workers=1, token_lifetime=1) as srv:
            uid, _ = srv.register()
            c = srv.client()
            r = login_token(c, uid, "pw")
            self.assertLessEqual(r["tokenexpires"], time.time() + 2)
            c.send_obj({"id": uid, "msgid": LOGINOUT})
            c.ping()
            time.sleep(2.1)
            r = resume(c, r["token"])
            self.assertEqual(r["errno"], ERR_TOKEN, r)
            self.assertIn("expired", r["errmsg"])
            c.close()

    def test_rotation_and_restart(self):
        srv = token_server(workers=1)
        with srv:
            uid, _ = srv.register()
            c = srv.client()
            old_tok = login_token(c, uid, "pw")["token"]
            c.close()
            # a new key, the old one kept for a while: both kinds pass
            old_key = srv.keys["token_key_file"]
            srv.keys["token_key_file"] = key_file(srv.dir, "new.key")
            srv.keys["token_key_file_old"] = old_key
            self.assertEqual(srv.stop(), [])
            srv.start()
            c = srv.client()
            r = resume(c, old_tok)
            self.assertEqual(r["errno"], 0, r)
            new_tok = r["token"]
            c.close()
            # the old key dropped: its tokens go, the new key's stay
            srv.keys["token_key_file_old"] = None
            self.assertEqual(srv.stop(), [])
            srv.start()
            c = srv.client()
            self.assertEqual(resume(c, old_tok)["errno"], ERR_TOKEN)
            self.assertEqual(resume(c, new_tok)["errno"], 0)
            c.close()

    def test_key_file_mode_and_no_key(self):
        srv = chatlib.Server(workers=1)
        try:
            srv.keys["token_key_file"] = key_file(srv.dir, "k", mode=0o644)
            srv.write_config()
            r = chatlib.run([chatlib.chatd_bin(), "-n", "-f", srv.conf])
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("chmod 600", (r.stderr + r.stdout).decode("utf-8", "replace"))
            key_file(srv.dir, "k", data=b"short\n")
            r = chatlib.run([chatlib.chatd_bin(), "-n", "-f", srv.conf])
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("shorter than 32", (r.stderr + r.stdout).decode("utf-8", "replace"))
        finally:
            srv.stopped = True
            import shutil
            shutil.rmtree(srv.dir, ignore_errors=True)
        # no key configured: asking is harmless, resuming is refused
        with chatlib.Server(workers=1) as srv:
            uid, _ = srv.register()
            c = srv.client()
            c.send_obj({"id": uid, "msgid": LOGIN, "password": "pw",
                        "token": True})
            r = c.recv_msgid(LOGIN_ACK)
            self.assertEqual(r["errno"], 0)
            self.assertNotIn("token", r)
            c.send_obj({"id": uid, "msgid": LOGINOUT})
            c.ping()
            r = resume(c, "00" * 53)
            self.assertEqual(r["errno"], ERR_TOKEN)
            c.close()


class Busy(unittest.TestCase):
    def test_busy_answer(self):
        # one worker, slow hashes, two queued at most
        with token_server(workers=1, password_cost=7,
                          auth_queue_max=2) as srv:
            uid, _ = srv.register()
            c = srv.client()
            tok = login_token(c, uid, "pw")["token"]
            c.close()
            n = 24
            clients = [srv.client() for _ in range(n)]
            t0 = time.monotonic()
            for x in clients:
                x.send_obj({"id": uid, "msgid": LOGIN, "password": "bad"})
            answers = [x.recv_msgid(LOGIN_ACK, timeout=60) for x in clients]
            codes = [a["errno"] for a in answers]
            busy = [a for a in answers if a["errno"] == ERR_BUSY]
            self.assertTrue(busy, codes)
            self.assertIn(ERR_AUTH, codes)
            self.assertEqual(set(codes), {ERR_BUSY, ERR_AUTH}, codes)
            for a in busy:
                self.assertGreaterEqual(a["retryms"], 100, a)
                self.assertEqual(a["errmsg"],
                                 "busy, retry in %d ms" % a["retryms"])
                self.assertEqual(a["refmsgid"], LOGIN)
            sys.stderr.write("  [%d of %d busy, answered in %.2f s] "
                             % (len(busy), n, time.monotonic() - t0))
            # a token login needs no hash: never busy
            clients[0].send_obj({"msgid": LOGIN, "token": tok})
            self.assertEqual(clients[0].recv_msgid(LOGIN_ACK)["errno"], 0)
            for x in clients:
                x.close()


class ChatcReconnect(unittest.TestCase):
    """chatc -s against a chatd restarted mid-session."""

    def test_restart(self):
        import select
        import subprocess
        srv = token_server(workers=2)
        with srv:
            uid, _ = srv.register(prefix="cr")
            peer = srv.user("crpeer")
            p = subprocess.Popen(
                [chatlib.chatc_bin(), "-p", str(srv.port), "-s", "-w",
                 "1500"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            try:
                p.stdin.write(("login:%d:pw\nsleep:8\nchat:%d:after "
                               "restart\nquit\n" % (uid, peer.id)).encode())
                p.stdin.flush()
                p.stdin.close()
                p.stdin = None
                ready, _, _ = select.select([p.stdout], [], [], 10)
                self.assertTrue(ready, "chatc printed no login answer")
                first = p.stdout.readline()
                self.assertIn(b'"token":', first)
                # the restart: every connection is dropped
                self.assertEqual(srv.stop(), [])
                time.sleep(1.5)
                srv.start()
                peer.reconnect()
                peer.chat(uid, "while you were away")
                stdout, stderr = p.communicate(timeout=40)
            finally:
                if p.returncode is None:
                    p.kill()
                    p.wait()
            self.assertEqual(p.returncode, 0, stderr)
            self.assertIn(b"reconnected as %d" % uid, stderr)
            # what arrived meanwhile is shown once, stored or live
            self.assertEqual(stdout.count(b"while you were away"), 1,
                             stdout)
            sys.stderr.write("  [%s] " % ("in the login answer" if
                             b'"offlinemsg"' in stdout else "live"))
            # a line after the restart went out on the new connection
            m = peer.c.recv_msgid(chatlib.ONE_CHAT, timeout=10)
            self.assertEqual((m["id"], m["msg"]), (uid, "after restart"))
            self.assertNotIn(first.split(b'"token":"')[1][:106],
                             srv.log_text().encode())


    def test_interactive(self):
        import select
        import subprocess
        srv = token_server(workers=1)
        with srv:
            uid, _ = srv.register(prefix="ci")
            peer = srv.user("cipeer")
            p = subprocess.Popen([chatlib.chatc_bin(), "-p", str(srv.port)],
                                 stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            out = b""

            def wait_out(what, timeout=20):
                nonlocal out
                deadline = time.monotonic() + timeout
                while what not in out and time.monotonic() < deadline:
                    r, _, _ = select.select([p.stdout], [], [], 0.2)
                    if r:
                        d = os.read(p.stdout.fileno(), 65536)
                        if not d:
                            break
                        out += d
                return what in out
            try:
                p.stdin.write(b"1\n%d\npw\n" % uid)
                p.stdin.flush()
                self.assertTrue(wait_out(b"logged in"), out)
                self.assertEqual(srv.stop(), [])
                srv.start()
                peer.reconnect()
                peer.chat(uid, "missed you")
                self.assertTrue(wait_out(b"reconnected as %d" % uid), out)
                self.assertTrue(wait_out(b"missed you"), out)
                p.stdin.write(b"chat:%d:back again\n3\n" % peer.id)
                p.stdin.flush()
                m = peer.c.recv_msgid(chatlib.ONE_CHAT, timeout=10)
                self.assertEqual((m["id"], m["msg"]), (uid, "back again"))
                p.stdin.close()
                self.assertEqual(p.wait(15), 0)
                self.assertEqual(out.count(b"missed you"), 1, out)
            finally:
                if p.returncode is None:
                    p.kill()
                    p.wait()
                for f in (p.stdout, p.stderr):
                    f.close()


class Cluster(unittest.TestCase):
    """Two nodes on one MariaDB and Redis, one key file."""

    def test_other_node(self):
        if not cluster.have_cluster():
            if cluster.in_ci():
                self.fail("CI=true and no redis-server or mariadbd")
            self.skipTest("no redis-server or mariadbd")
        env = {}
        try:
            env["redis"] = cluster.Redis()
            env["redis"].start()
            env["db"] = cluster.MariaDB()
            env["db"].start()
            env["A"] = cluster.Node(env["db"].spec, env["redis"],
                                    "tokA-%d" % os.getpid())
            key = key_file(env["A"].dir, "token.key")
            env["A"].keys["token_key_file"] = key
            env["A"].start()
            env["B"] = cluster.Node(env["db"].spec, env["redis"],
                                    "tokB-%d" % os.getpid())
            env["B"].keys["token_key_file"] = key
            env["B"].start()
            a, b = env["A"], env["B"]
            ca = a.client()
            uid = ca.register(unique("tk"), "pw")
            tok = login_token(ca, uid, "pw")["token"]
            ca.send_obj({"id": uid, "msgid": LOGINOUT})
            ca.ping()
            cb = b.client()
            self.assertTrue(chatlib.wait_for(
                lambda: resume(cb, tok)["errno"] == 0, 5))
            # logout-everywhere on B (MySQL store) revokes it on A too
            cb.send_obj({"msgid": LOGOUT_ALL})
            self.assertEqual(cb.recv_msgid(ACCOUNT_ACK)["errno"], 0)
            self.assertTrue(chatlib.wait_for(
                lambda: resume(ca, tok)["errno"] == ERR_TOKEN, 5))
            # password change on the MySQL store
            t2 = login_token(ca, uid, "pw")["token"]
            ca.send_obj({"msgid": PASSWD, "password": "pw",
                         "newpassword": "pw2"})
            self.assertEqual(ca.recv_msgid(ACCOUNT_ACK,
                                           timeout=10)["errno"], 0)
            ca.send_obj({"id": uid, "msgid": LOGINOUT})
            ca.ping()
            self.assertTrue(chatlib.wait_for(
                lambda: resume(cb, t2)["errno"] == ERR_TOKEN, 5))
            self.assertEqual(cb.login_raw(uid, "pw2")["errno"], 0)
            ca.close()
            cb.close()
        finally:
            cluster.stop_all(env, keys=("A", "B", "redis", "db"))


if __name__ == "__main__":
    t0 = time.monotonic()
    prog = unittest.main(verbosity=2, exit=False)
    print("test_tokens: %.1f s" % (time.monotonic() - t0), file=sys.stderr)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
