#!/usr/bin/env python3
"""Gap-free resume (issue 13): RESUME (128) answered by 129.

A client that drops in the middle of a burst (its old connection taken
over by a token login, or closed unread) names the last chat it has and
sees every chat of the burst once and in order: what it had, what the
old connection held unread, what was stored meanwhile and what arrives
live, one-to-one and group, on the same node (SQLite, two workers) and
from one node to another (MariaDB, Redis), where the token login takes
over the session still live on the first node.  A client that names a chat
the history does not hold, or a server keeping no history, is told so
(errno 31).  chatc's reconnect resumes and shows each chat once, in
order.
"""

import json
import os
import select
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
from chatlib import (ERROR, GROUP_CHAT, LOGIN, LOGIN_ACK, ONE_CHAT,  # noqa
                     ERR_BAD_VALUE, ERR_MISSING_FIELD, ERR_ONLINE, find,
                     unique, wait_for)
from test_tokens import key_file, login_token, token_server  # noqa: E402

RESUME, RESUME_ACK, ERR_RESUME_GONE = 128, 129, 31
SLOW = 6 * chatlib.TIMEOUT          # generous: the sanitizer build is slow
N = 150                             # chats in a burst
HAD = 30                            # read before the drop
HAVE_CLUSTER = cluster.have_cluster()


def text(i):
    return "m%03d" % i


class Reader:
    """What a client shows, kept as chatc keeps it: chats by smid, each
    once; while a resume is answered, live and stored chats wait."""

    def __init__(self):
        self.shown = []
        self.seen = set()
        self.last = 0
        self.held = []
        self.from_resume = 0    # shown first from a RESUME page

    def show(self, m):
        if m["smid"] in self.seen:
            return
        self.seen.add(m["smid"])
        self.last = m["smid"]
        self.shown.append(m["msg"])

    def read_live(self, c, want, timeout):
        """Chats from c until want of them were shown (or timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.shown) < want and time.monotonic() < deadline:
            try:
                m = c.recv(timeout=max(0.1, deadline - time.monotonic()))
            except AssertionError:
                break
            if m["msgid"] in (ONE_CHAT, GROUP_CHAT):
                self.show(m)

    def resume(self, c, login_ack, since=None):
        """Answer c's resume login: RESUME from the last chat shown,
        pages followed; returns the pages (the last one or the error)."""
        self.held = [json.loads(t) for t in login_ack.get("offlinemsg", [])]
        c.send_obj({"msgid": RESUME, "since": since or self.last})
        pages = []
        while True:
            m = c.recv(timeout=SLOW)
            if m["msgid"] in (ONE_CHAT, GROUP_CHAT):
                self.held.append(m)
                continue
            if m["msgid"] == ERROR and m.get("refmsgid") == RESUME:
                pages.append(m)
                return pages
            if m["msgid"] != RESUME_ACK:
                continue
            pages.append(m)
            last = 0
            for t in m["messages"]:
                o = json.loads(t)
                last = o["smid"]
                before = len(self.shown)
                self.show(o)
                self.from_resume += len(self.shown) - before
            if not m["more"]:
                break
            c.send_obj({"msgid": RESUME, "after": last})
        for m in self.held:
            self.show(m)
        self.held = []
        return pages


class Base(unittest.TestCase):
    """Burst tests; srv: where the receiver starts, srvB: where it
    resumes (the same node here), srvS: the sender's node."""

    @classmethod
    def setUpClass(cls):
        cls.srv = token_server()
        cls.srv.start()
        cls.srvB = cls.srvS = cls.srv

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    def receiver(self, prefix):
        c = self.srv.client()
        uid = c.register(unique(prefix), "pw")
        tok = login_token(c, uid, "pw")["token"]
        return c, uid, tok

    def group(self, creator, uid, c):
        gname = unique("rg")
        creator.c.creategroup(creator.id, gname, "")
        creator.c.sync()
        gid = find(creator.relogin()["groups"], groupname=gname)["id"]
        c.send_obj({"groupid": gid, "id": uid, "msgid": 9})
        c.sync()
        return gid

    def relogin(self, tok, live):
        """A token login on srvB.  A live session (same node or not) is
        taken over at once; a closed one may still be known on another
        node for a moment (errno 2 until its close is seen)."""
        c2 = self.srvB.client()
        last = {}

        def ok():
            c2.send_obj({"msgid": LOGIN, "token": tok})
            last.update(c2.recv_msgid(LOGIN_ACK, timeout=SLOW))
            return live or last["errno"] != ERR_ONLINE
        self.assertTrue(wait_for(ok, timeout=SLOW, interval=0.2), last)
        self.assertEqual(last["errno"], 0, last)
        return c2, last

    def burst(self, group, close_old):
        s = self.srvS.user("rs")
        c, uid, tok = self.receiver("rr")
        if group:
            gid = self.group(s, uid, c)

            def send(i):
                s.groupchat(gid, text(i))
        else:
            def send(i):
                s.chat(uid, text(i))
        r = Reader()
        for i in range(HAD):
            send(i)
        r.read_live(c, HAD, SLOW)
        self.assertEqual(r.shown, [text(i) for i in range(HAD)])
        # the drop: these reach the old connection, never read
        for i in range(HAD, 2 * N // 3):
            send(i)
        s.c.sync()
        if close_old:
            c.close()
        c2, ack = self.relogin(tok, live=not close_old)
        # the rest arrives while the resume waits (held, shown after)
        for i in range(2 * N // 3, N):
            send(i)
        since = r.last
        pages = r.resume(c2, ack)
        self.assertEqual(pages[-1]["msgid"], RESUME_ACK, pages[-1])
        self.assertEqual(pages[0]["since"], since)
        r.read_live(c2, N, SLOW)
        self.assertEqual(r.shown, [text(i) for i in range(N)])
        # what the old connection got unread came from the history
        self.assertGreaterEqual(r.from_resume, 2 * N // 3 - HAD)
        if not close_old:
            self.assertTrue(c.wait_closed(SLOW), "old connection open")
            c.close()
        c2.close()

    def test_one_to_one(self):
        self.burst(group=False, close_old=False)

    def test_group(self):
        self.burst(group=True, close_old=False)

    def test_one_to_one_closed(self):
        self.burst(group=False, close_old=True)

    def test_too_late_and_bad(self):
        c, uid, tok = self.receiver("rl")
        # an smid the history does not hold: told, not left waiting
        c.send_obj({"msgid": RESUME, "since": 1})
        m = c.recv_msgid(ERROR, timeout=SLOW)
        self.assertEqual((m["errno"], m["refmsgid"]), (ERR_RESUME_GONE,
                                                       RESUME), m)
        c.send_obj({"msgid": RESUME, "since": 5, "after": 5})
        self.assertEqual(c.recv_msgid(ERROR)["errno"], ERR_BAD_VALUE)
        c.send_obj({"msgid": RESUME})
        self.assertEqual(c.recv_msgid(ERROR)["errno"], ERR_MISSING_FIELD)
        c.send_obj({"msgid": RESUME, "since": 5, "limit": 501})
        self.assertEqual(c.recv_msgid(ERROR)["errno"], ERR_BAD_VALUE)
        c.close()
        # not logged in
        c = self.srv.client()
        c.send_obj({"msgid": RESUME, "since": 5})
        self.assertEqual(c.recv_msgid(ERROR)["errno"],
                         chatlib.ERR_NOT_LOGGED_IN)
        c.close()


class NoHistory(unittest.TestCase):
    def test_history_off(self):
        with token_server(workers=1, history_days=0) as srv:
            c = srv.client()
            uid = c.register(unique("rn"), "pw")
            c.login(uid, "pw")
            c.send_obj({"msgid": RESUME, "since": 7})
            m = c.recv_msgid(ERROR)
            self.assertEqual(m["errno"], ERR_RESUME_GONE, m)
            self.assertIn("history_days", m["errmsg"])


ENV = {}


def cluster_env():
    key = []

    def setup(node):
        # one key file for both nodes
        key[:] = key or [key_file(node.dir, "token.key")]
        node.keys["token_key_file"] = key[0]
    return cluster.two_nodes(ENV, "res", setup)


def tearDownModule():
    cluster.stop_all(ENV)


def chats_then_drop(test, s, c, prefix, rows, slow, late):
    """A new user on c (a token kept) reads HAD chats from s live; once
    rows() holds them, slow() slows the history and `late` more chats
    come that c closes without reading.  The token and the Reader."""
    uid = c.register(unique(prefix), "pw")
    tok = login_token(c, uid, "pw")["token"]
    r = Reader()
    for i in range(HAD):
        s.chat(uid, text(i))
    r.read_live(c, HAD, SLOW)
    test.assertTrue(wait_for(lambda: rows() >= HAD, timeout=SLOW))
    slow()
    for i in range(HAD, HAD + late):
        s.chat(uid, text(i))
    s.c.sync()
    c.close()
    return tok, r


def resume_after_drop(test, connect, tok, r, late):
    """A token login on connect()'s connection (again while the closed
    session is still known: errno 2), then RESUME: r must show every
    chat, the last `late` from the history.  The answer's time (s)."""
    c2, last = None, {}

    def ok():
        nonlocal c2
        if c2 is not None:
            c2.close()
        c2 = connect()
        c2.send_obj({"msgid": LOGIN, "token": tok})
        last.update(c2.recv_msgid(LOGIN_ACK, timeout=SLOW))
        return last["errno"] != ERR_ONLINE
    test.assertTrue(wait_for(ok, timeout=SLOW, interval=0.2), last)
    test.addCleanup(c2.close)
    test.assertEqual(last["errno"], 0, last)
    t0 = time.monotonic()
    pages = r.resume(c2, last)
    took = time.monotonic() - t0
    test.assertEqual(pages[-1]["msgid"], RESUME_ACK, pages[-1])
    test.assertEqual(r.shown, [text(i) for i in range(HAD + late)])
    test.assertEqual(r.from_resume, late)
    return took


@cluster.skip_unless(HAVE_CLUSTER, "no mariadbd or redis-server")
class SlowOtherNode(unittest.TestCase):
    """The chats were kept by the sender's node B, whose history lags (a
    trigger makes each of the sender's History rows take 0.2 s): a read
    on node A waits for B's workers (the barrier over the bus) and sees
    them all.  Before, a RESUME on A saw what B had stored 2 s after the
    login, and HISTORY what B had stored by then."""
    LATE = 25

    def setUp(self):
        env = cluster_env()
        self.a, self.b, self.db = env["A"], env["B"], env["db"]

    def slow_sender(self, sid, secs):
        name = "hist_slow_%d" % sid
        self.db.sql("CREATE TRIGGER %s AFTER INSERT ON History FOR EACH "
                    "ROW DO IF(NEW.sender = %d, SLEEP(%s), 0)"
                    % (name, sid, secs))
        self.addCleanup(self.db.sql, "DROP TRIGGER IF EXISTS %s" % name)

    def rows(self, sid):
        return int(self.db.sql("SELECT count(*) FROM History WHERE "
                               "sender = %d" % sid)[0][0])

    def test_resume_waits_for_the_other_node(self):
        s = self.b.user("rn")
        tok, r = chats_then_drop(self, s, self.a.client(), "rn",
                                 lambda: self.rows(s.id),
                                 lambda: self.slow_sender(s.id, 0.2),
                                 self.LATE)
        took = resume_after_drop(self, self.a.client, tok, r, self.LATE)
        sys.stderr.write("\nthe resume on A was answered after %.1f s\n"
                         % took)

    def test_rows_deferred_on_the_other_node(self):
        """chatbench keeps node B busy, so that it defers its history
        (history_defer, 30 s by default): a HISTORY read on node A ends
        the deferral there and waits for the rows."""
        from test_history import timed_read
        from test_history_idle import Deferred
        d = Deferred()
        bench = d.load(self.b, 20)
        self.addCleanup(lambda: bench.poll() is None and bench.kill())
        self.assertTrue(wait_for(lambda: "deferred while the worker is "
                                 "busy" in self.b.log_text(),
                                 timeout=SLOW * 3, interval=0.1))
        # a read that finds the rows unstored (a lull may have let them
        # go first: try again, while the load lasts)
        missing, took = [], []
        while not missing and bench.poll() is None:
            s, rd = self.b.user("dn"), self.a.user("dn")
            for i in range(10):
                s.chat(rd.id, "deferred %d" % i)
            for i in range(10):
                rd.c.recv_msgid(ONE_CHAT, timeout=SLOW)
            stored = self.rows(s.id)
            texts, m, t = timed_read(rd, SLOW * 4, toid=s.id, limit=50)
            took.append(t)
            self.assertEqual(texts, ["deferred %d" % i for i in
                                     range(9, -1, -1)], m)
            if stored < 10:
                missing.append(10 - stored)
        self.assertTrue(missing, "never caught B deferring")
        bench.communicate(timeout=SLOW * 6)
        sys.stderr.write("\nthe read on A found %d of 10 rows unstored on "
                         "B and waited for them; reads took %s s\n" % (
                             missing[0], " ".join("%.1f" % t for t in took)))

    def test_history_waits_for_the_other_node(self):
        from test_history import timed_read
        n = 15
        s, rd = self.b.user("hn"), self.a.user("hn")
        self.slow_sender(s.id, 0.2)
        for i in range(n):
            s.chat(rd.id, "late %d" % i)
        for i in range(n):
            rd.c.recv_msgid(ONE_CHAT, timeout=SLOW)
        texts, m, _ = timed_read(rd, SLOW, toid=s.id, limit=50)
        self.assertEqual(texts, ["late %d" % i for i in
                                 range(n - 1, -1, -1)], m)


@cluster.skip_unless(HAVE_CLUSTER, "no mariadbd or redis-server")
class SlowOtherWorker(unittest.TestCase):
    """The chats the old connection got unread were kept by another
    worker whose history lags (a trigger makes each History row take
    0.2 s, so they are stored well after the 2 s settle time): the
    resume waits for that worker (chat_barrier.c) and shows them all."""
    LATE = 25

    def test_resume_waits_for_the_other_worker(self):
        from test_history_idle import make_slow
        with token_server() as srv:
            db = chatlib.sqlite_db(os.path.join(srv.dir, "chat.db"),
                                   timeout=60)
            self.addCleanup(db.close)
            s = srv.user("rw", worker=0)
            rows = lambda: db.execute(  # noqa: E731
                "SELECT count(*) FROM History").fetchone()[0]
            tok, r = chats_then_drop(self, s, srv.client(), "rw", rows,
                                     lambda: make_slow(db, 0.2), self.LATE)
            # the token login on worker 1
            took = resume_after_drop(self, lambda: srv.client_on(1), tok,
                                     r, self.LATE)
            sys.stderr.write("\n%d of %d late rows stored when the "
                             "resume was answered after %.1f s\n" %
                             (rows() - HAD, self.LATE, took))


class CrossNode(Base):
    """The receiver starts on node A and resumes on node B (the sender
    on B), its session on A taken over (closed by A when it hears) or
    closed first; MySQL store."""

    @classmethod
    def setUpClass(cls):
        env = cluster_env()
        cls.srv, cls.srvB = env["A"], env["B"]
        cls.srvS = env["B"]

    @classmethod
    def tearDownClass(cls):
        pass


class Chatc(unittest.TestCase):
    """chatc -s: its session taken over mid-burst by a token login of
    its own token; it logs in again and shows each chat once, in order."""

    def test_takeover_mid_burst(self):
        with token_server(workers=2) as srv:
            uid, _ = srv.register(prefix="rc")
            s = srv.user("rcs")
            p = subprocess.Popen(
                [chatlib.chatc_bin(), "-p", str(srv.port), "-s"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            out = b""

            def lines():
                return [json.loads(x) for x in out.splitlines() if x]

            def chats():
                return [m["msg"] for m in lines()
                        if m.get("msgid") == ONE_CHAT]

            def wait_out(pred, timeout=SLOW):
                nonlocal out
                deadline = time.monotonic() + timeout
                while not pred() and time.monotonic() < deadline:
                    r, _, _ = select.select([p.stdout], [], [], 0.2)
                    if r:
                        d = os.read(p.stdout.fileno(), 65536)
                        if not d:
                            break
                        out += d
                return pred()
            try:
                p.stdin.write(b"login:%d:pw\nsleep:60\nquit\n" % uid)
                p.stdin.flush()
                self.assertTrue(wait_out(lambda: any(
                    m.get("msgid") == LOGIN_ACK for m in lines())), out)
                tok = [m for m in lines() if m.get("msgid") ==
                       LOGIN_ACK][0]["token"]
                for i in range(HAD):
                    s.chat(uid, text(i))
                self.assertTrue(wait_out(lambda: len(chats()) >= HAD), out)
                # another connection takes the session over with chatc's
                # token and holds what comes meanwhile, unread
                c = srv.client()
                c.send_obj({"msgid": LOGIN, "token": tok})
                self.assertEqual(c.recv_msgid(LOGIN_ACK)["errno"], 0)
                for i in range(HAD, N):
                    s.chat(uid, text(i))
                s.c.sync()
                self.assertTrue(wait_out(lambda: len(chats()) >= N,
                                         timeout=4 * SLOW), chats())
                wait_out(lambda: False, timeout=1.0)   # nothing more
                self.assertEqual(chats(), [text(i) for i in range(N)])
                c.close()
            finally:
                if p.returncode is None:
                    p.kill()
                    p.wait()
                for f in (p.stdin, p.stdout, p.stderr):
                    if f is not None:
                        f.close()


if __name__ == "__main__":
    t0 = time.monotonic()
    unittest.main(verbosity=2, exit=False)
    print("test_resume: %.1f s" % (time.monotonic() - t0), file=sys.stderr)
