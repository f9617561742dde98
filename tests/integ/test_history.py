#!/usr/bin/env python3
"""Conversation history and account deletion (issue 17), over TCP.

HISTORY (125) pages through a one-to-one or group conversation, newest
first (126); a group member sees only what came after it joined; a
non-member is refused.  DELETE_ACCOUNT (127) removes the user's messages,
memberships and friendships and logs it out.  Same node (SQLite, two
workers), the schema upgrades from versions 2 and 3 (both backends; from
3 RESUME finds the history kept before), and two
nodes on a private MariaDB and Redis (skipped without them)."""

import os
import sqlite3
import sys
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
import test_features_ext  # noqa: E402
from chatlib import (ERROR, ERR_AUTH, ERR_BAD_VALUE, ERR_MISSING_FIELD,  # noqa: E402
                     ERR_NOT_MEMBER, ERR_RATE, GROUP_CHAT, ONE_CHAT, find,
                     unique, wait_for)

HISTORY, HISTORY_ACK, DELETE_ACCOUNT, ACCOUNT_ACK = 125, 126, 127, 124
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PW_HASH = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$U4SOHmDd8SvW5vCUKSMR6N835VPwFAtgYNhQ9mFFeL5"
SLOW = 4 * chatlib.TIMEOUT     # generous: the sanitizer build is slow


def timed_read(u, timeout, **kw):
    """One HISTORY answer for u that may wait long (a barrier behind a
    backlog): its texts newest first, the answer, the seconds it took."""
    kw["msgid"] = HISTORY
    t0 = time.monotonic()
    u.c.send_obj(kw)
    m = u.c.recv_msgid(HISTORY_ACK, timeout=timeout)
    took = time.monotonic() - t0
    m["messages"] = [chatlib.json.loads(t) for t in m["messages"]]
    return texts(m), m, took


def history(u, **kw):
    """One HISTORY answer (or error) for u; messages decoded."""
    kw["msgid"] = HISTORY
    u.c.send_obj(kw)
    while True:
        m = u.c.recv()
        if m["msgid"] == HISTORY_ACK:
            m["messages"] = [chatlib.json.loads(t) for t in m["messages"]]
            return m
        if m["msgid"] == ERROR and m.get("refmsgid") == HISTORY:
            return m


def texts(m):
    return [x["msg"] for x in m["messages"]]


BLOCK, UNBLOCK, GROUP_MANAGE, DONE = 114, 115, 108, 109


class Base(unittest.TestCase):
    workers = 2
    extra = None
    # a request answered by DONE or ERROR (group and friend notices skipped)
    request = test_features_ext.Ext.request

    @classmethod
    def setUpClass(cls):
        cls.srv = chatlib.Server(workers=cls.workers, extra=cls.extra)
        cls.srv.start()
        cls.srvB = cls.srv

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    def until(self, u, want, **kw):
        """The history page once it holds want (other workers flush at
        their next loop iteration)."""
        last = []

        def page():
            last[:] = [history(u, **kw)]
            return last[0].get("messages") is not None and \
                texts(last[0]) == want
        # 4 a second: within the rate limit (5 a second)
        wait_for(page, timeout=SLOW, interval=0.25)
        self.assertTrue(page(), "history of %d never became %r: %r" % (
            u.id, want, last))
        return last[0]

    def rows(self, where):
        """History rows matching where, straight from the store."""
        db = chatlib.sqlite_db(os.path.join(self.srv.dir, "chat.db"))
        try:
            return db.execute("SELECT count(*) FROM History WHERE " +
                              where).fetchone()[0]
        finally:
            db.close()

    def stays(self, where, n):
        """rows(where) is n, and still n after every worker's batch and
        queued store job had time to land (HIST_FLUSH_SEC is 0.25 s)."""
        self.assertTrue(wait_for(lambda: self.rows(where) == n,
                                 timeout=SLOW, interval=0.25),
                        "%s: %d rows, not %d" % (where, self.rows(where), n))
        time.sleep(1.5)
        self.assertEqual(self.rows(where), n, where)

    def group(self, creator, *members):
        gname = unique("hg")
        creator.c.creategroup(creator.id, gname, "")
        creator.c.sync()
        gid = find(creator.relogin()["groups"], groupname=gname)["id"]
        for m in members:
            m.c.addgroup(m.id, gid)
            m.c.sync()
        return gid


class Conversations(Base):
    def test_one_to_one_pages(self):
        a, b = self.srv.user("h1"), self.srvB.user("h1")
        for i in range(3):
            a.chat(b.id, "a%d" % i)
            self.assertEqual(b.c.recv_msgid(chatlib.ONE_CHAT)["msg"],
                             "a%d" % i)
        # kept in the same millisecond, chats are ordered by smid, not by
        # cause (smids are per worker): a reply comes a tick later here
        time.sleep(0.01)
        b.chat(a.id, "b0")
        self.assertEqual(a.c.recv_msgid(chatlib.ONE_CHAT)["msg"], "b0")
        # an acknowledged chat is kept too, with its smid
        time.sleep(0.01)
        a.chat(b.id, "acked", cmid=7)
        ack = a.c.recv_msgid(chatlib.CHAT_ACK)
        self.assertEqual(b.c.recv_msgid(chatlib.ONE_CHAT)["msg"], "acked")
        # newest first by arrival, whichever worker or node numbered it
        want = ["acked", "b0", "a2", "a1", "a0"]
        page = self.until(a, want, toid=b.id)
        self.assertIs(page["more"], False)
        self.assertEqual(page["toid"], b.id)
        self.assertEqual(page["messages"][0]["smid"], ack["smid"])
        # both sides read the same conversation
        self.assertEqual(texts(history(b, toid=a.id)), want)
        # pages: newest first, "before" the oldest smid seen
        p1 = history(a, toid=b.id, limit=2)
        self.assertEqual((texts(p1), p1["more"]), (want[:2], True))
        p2 = history(a, toid=b.id, limit=2,
                     before=p1["messages"][-1]["smid"])
        self.assertEqual((texts(p2), p2["more"]), (want[2:4], True))
        p3 = history(a, toid=b.id, limit=2,
                     before=p2["messages"][-1]["smid"])
        self.assertEqual((texts(p3), p3["more"]), (want[4:], False))
        # a third user reads nothing of it
        c = self.srv.user("h1")
        self.assertEqual(texts(history(c, toid=a.id)), [])

    def test_group_since_joined(self):
        a, b = self.srv.user("hg"), self.srvB.user("hg")
        gid = self.group(a, b)
        a.groupchat(gid, "before c")
        self.assertEqual(b.c.recv_msgid(chatlib.GROUP_CHAT)["msg"],
                         "before c")
        self.until(b, ["before c"], groupid=gid)
        time.sleep(1.1)     # joins and messages are timed in seconds
        c = self.srvB.user("hg")
        c.c.addgroup(c.id, gid)
        c.c.sync()
        time.sleep(1.1)
        b.groupchat(gid, "after c")
        self.assertEqual(c.c.recv_msgid(chatlib.GROUP_CHAT)["msg"],
                         "after c")
        page = self.until(a, ["after c", "before c"], groupid=gid)
        self.assertEqual(page["groupid"], gid)
        self.until(c, ["after c"], groupid=gid)
        # a non-member is refused, whatever the group holds
        d = self.srv.user("hg")
        m = history(d, groupid=gid)
        self.assertEqual((m["msgid"], m["errno"]), (ERROR, ERR_NOT_MEMBER))

    def test_bad_requests(self):
        a = self.srv.user("hb")
        for kw, code in (({}, ERR_MISSING_FIELD),
                         ({"toid": 1, "groupid": 1}, ERR_BAD_VALUE),
                         ({"toid": 1, "limit": 201}, ERR_BAD_VALUE),
                         ({"toid": 1, "limit": 0}, ERR_BAD_VALUE),
                         ({"toid": 1, "before": 0}, ERR_BAD_VALUE),
                         ({"toid": "1"}, chatlib.ERR_WRONG_TYPE)):
            m = history(a, **kw)
            self.assertEqual((m["msgid"], m["errno"]), (ERROR, code), kw)
        # the connection still works
        self.assertEqual(texts(history(a, toid=a.id)), [])

    def test_rate_limited(self):
        a = self.srv.user("hr")
        codes = []
        for _ in range(40):
            m = history(a, toid=a.id, limit=1)
            codes.append(m.get("errno"))
        self.assertIn(ERR_RATE, codes)
        self.assertEqual(codes[0], 0)

    def test_blocked_not_kept_for_receiver(self):
        a, b = self.srv.user("hk"), self.srvB.user("hk")
        a.chat(b.id, "before")
        self.assertEqual(b.c.recv_msgid(chatlib.ONE_CHAT)["msg"], "before")
        # kept before the block (a block decides for rows kept after it)
        self.until(b, ["before"], toid=a.id)
        m = self.request(b, BLOCK, userid=a.id)
        self.assertEqual((m["msgid"], m["errno"]), (DONE, 0), m)
        a.chat(b.id, "while blocked")
        # the sender keeps its copy (it is not told of the block) ...
        self.until(a, ["while blocked", "before"], toid=b.id)
        self.assertEqual(texts(history(b, toid=a.id)), [])
        m = self.request(b, UNBLOCK, userid=a.id)
        self.assertEqual((m["msgid"], m["errno"]), (DONE, 0), m)
        a.chat(b.id, "after")
        self.assertEqual(b.c.recv_msgid(chatlib.ONE_CHAT)["msg"], "after")
        # ... the receiver never reads it, not even once unblocked
        self.until(b, ["after", "before"], toid=a.id)
        self.until(a, ["after", "while blocked", "before"], toid=b.id)
        self.assertEqual(b.c.sync(), [])

    def test_burst_rows(self):
        """A burst is kept in statements of many rows (MySQL: 32): each
        row keeps its own text whole and its own block rule."""
        a, b, c = (self.srv.user("hw"), self.srvB.user("hw"),
                   self.srvB.user("hw"))
        m = self.request(b, BLOCK, userid=a.id)
        self.assertEqual((m["msgid"], m["errno"]), (DONE, 0), m)
        tb = ["b%02d " % i + "x" * (3000 + i) for i in range(40)]
        tc = ["c%02d " % i + "y" * (3000 + i) for i in range(40)]
        for x, y in zip(tb, tc):
            a.chat(b.id, x)         # b blocks a: kept for a only
            a.chat(c.id, y)
        for y in tc:
            self.assertEqual(c.c.recv_msgid(chatlib.ONE_CHAT)["msg"], y)
        self.until(a, tb[::-1], toid=b.id, limit=100)
        self.until(c, tc[::-1], toid=a.id, limit=100)
        self.assertEqual(texts(history(b, toid=a.id)), [])
        self.assertEqual(b.c.sync(), [])

    def test_dissolved_group_history_gone(self):
        a, b = self.srv.user("hx"), self.srvB.user("hx")
        gid = self.group(a, b)
        for i in range(5):
            a.groupchat(gid, "g%d" % i)
            b.c.recv_msgid(chatlib.GROUP_CHAT)
        self.until(b, ["g4", "g3", "g2", "g1", "g0"], groupid=gid)
        b.groupchat(gid, "last")     # maybe still held by b's worker
        self.assertEqual(a.c.recv_msgid(chatlib.GROUP_CHAT)["msg"], "last")
        m = self.request(a, GROUP_MANAGE, groupid=gid, op="dissolve")
        self.assertEqual((m["msgid"], m["errno"]), (DONE, 0), m)
        self.stays("conv = %d" % -gid, 0)

    def test_delete_after_burst(self):
        a, b = self.srv.user("hz"), self.srvB.user("hz")
        gid = self.group(b, a)
        b.chat(a.id, "b stays")
        a.c.recv_msgid(chatlib.ONE_CHAT)
        for i in range(20):          # kept in batches: 20 rows stay
            b.chat(a.id, "b burst %d" % i)
        for i in range(20):
            self.assertEqual(a.c.recv_msgid(chatlib.ONE_CHAT)["msg"],
                             "b burst %d" % i)
        for i in range(100):
            a.chat(b.id, "burst %d" % i)
            a.groupchat(gid, "gburst %d" % i)
        # deleted while its burst is held or queued for the store
        a.c.send_obj({"msgid": DELETE_ACCOUNT, "password": "pw"})
        m = a.c.recv_msgid(ACCOUNT_ACK)
        self.assertEqual((m["errno"], m["refmsgid"]), (0, DELETE_ACCOUNT))
        self.stays("sender IN (%d, %d)" % (a.id, -a.id), 0)
        self.stays("sender = %d" % b.id, 21)

    def test_delete_account(self):
        a, b = self.srv.user("hd"), self.srvB.user("hd")
        a.c.addfriend(a.id, b.id)
        a.c.sync()
        gid = self.group(a, b)
        a.chat(b.id, "from a")
        b.c.recv_msgid(chatlib.ONE_CHAT)
        # a tick later: in the same millisecond the order is by smid
        # (per worker), not by cause (test_one_to_one_pages)
        time.sleep(0.01)
        b.chat(a.id, "from b")
        a.c.recv_msgid(chatlib.ONE_CHAT)
        a.groupchat(gid, "a in group")
        b.c.recv_msgid(chatlib.GROUP_CHAT)
        self.until(b, ["from b", "from a"], toid=a.id)
        a.c.send_obj({"msgid": DELETE_ACCOUNT, "password": "wrong"})
        m = a.c.recv_msgid(ERROR)
        self.assertEqual((m["errno"], m["refmsgid"]), (ERR_AUTH,
                                                       DELETE_ACCOUNT))
        a.c.send_obj({"msgid": DELETE_ACCOUNT, "password": "pw"})
        m = a.c.recv_msgid(ACCOUNT_ACK)
        self.assertEqual((m["errno"], m["refmsgid"]), (0, DELETE_ACCOUNT))
        # logged out: the next request is refused
        a.c.send_obj({"msgid": HISTORY, "toid": b.id})
        self.assertEqual(a.c.recv_msgid(ERROR)["errno"],
                         chatlib.ERR_NOT_LOGGED_IN)
        # gone for good: its password no longer works
        r = self.srv.client().login_raw(a.id, "pw")
        self.assertEqual(r["errno"], ERR_AUTH)
        # its messages left the history, b's stay; no friend, b owns the group
        self.assertEqual(texts(history(b, toid=a.id)), ["from b"])
        self.assertEqual(texts(history(b, groupid=gid)), [])
        r = b.relogin()
        self.assertEqual(r["friends"], [])
        g = find(r["groups"], id=gid)
        self.assertEqual([u["id"] for u in g["users"]], [b.id])


class KeepsNothing(Base):
    extra = {"history_days": 0}

    def test_zero_days(self):
        a, b = self.srv.user("h0"), self.srv.user("h0")
        a.chat(b.id, "not kept")
        b.c.recv_msgid(chatlib.ONE_CHAT)
        b.c.sync()
        a.c.sync()
        m = history(a, toid=b.id)
        self.assertEqual((m["msgid"], m["messages"], m["more"]),
                         (HISTORY_ACK, [], False))
        db = chatlib.sqlite_db(os.path.join(self.srv.dir, "chat.db"))
        self.assertEqual(db.execute("SELECT count(*) FROM History")
                         .fetchone(), (0,))
        db.close()


class Prune(unittest.TestCase):
    def test_old_rows_removed_at_start(self):
        srv = chatlib.Server(workers=2)
        path = os.path.join(srv.dir, "chat.db")
        srv.start()
        try:
            a, b = srv.user("hp"), srv.user("hp")
            a.chat(b.id, "old")
            b.c.recv_msgid(chatlib.ONE_CHAT)
            a.chat(b.id, "new")
            b.c.recv_msgid(chatlib.ONE_CHAT)
            a.c.sync()
            b.c.sync()
            # stored (a stop leaves what waits in the spool for the
            # next start, where this test would prune it first)
            d = chatlib.sqlite_db(path)
            self.assertTrue(wait_for(lambda: d.execute(
                "SELECT count(*) FROM History").fetchone()[0] == 2,
                timeout=SLOW))
            d.close()
        finally:
            srv.stop()
        db = chatlib.sqlite_db(path)
        self.assertEqual(db.execute("SELECT count(*) FROM History")
                         .fetchone(), (2,))
        db.execute("UPDATE History SET created = created - 31 * 86400000 "
                   "WHERE message LIKE '%\"old\"%'")
        db.commit()
        db.close()
        with srv:
            def left():
                d = chatlib.sqlite_db(path)
                try:
                    return d.execute("SELECT count(*) FROM History"
                                     ).fetchone()[0]
                finally:
                    d.close()
            self.assertEqual(wait_for(lambda: left() == 1, timeout=SLOW), True)
            c = srv.client()
            c.login(a.id, "pw")
            a.c = c
            self.assertEqual(texts(history(a, toid=b.id)), ["new"])


class Chatc(Base):
    def test_commands(self):
        a, b = self.srv.user("hc"), self.srv.user("hc")
        a.chat(b.id, "for chatc")
        b.c.recv_msgid(chatlib.ONE_CHAT)
        # kept (a's worker may hold it a moment) before chatc reads it
        self.until(b, ["for chatc"], toid=a.id)
        a.c.close()
        script = ("login:%d:pw\nhistory:%d\nhistory:%d::1\nghistory:x\n"
                  "deleteaccount:pw\nquit\n") % (a.id, b.id, b.id)
        # a's old session may linger a moment: retry until logged in
        for _ in range(20):
            out = chatlib.run([chatlib.chatc_bin(), "-p",
                               str(self.srv.port), "-s", "-w", "500"],
                              input=script.encode())
            got = [chatlib.json.loads(l)
                   for l in out.stdout.decode().splitlines()]
            if got and got[0].get("errno") == 0:
                break
            time.sleep(0.2)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual([m["msgid"] for m in got],
                         [2, HISTORY_ACK, HISTORY_ACK, ACCOUNT_ACK], got)
        self.assertEqual(chatlib.json.loads(got[1]["messages"][0])["msg"],
                         "for chatc")
        self.assertEqual(len(got[2]["messages"]), 1)
        self.assertIn("usage: ghistory:GROUP[:BEFORE[:LIMIT]]",
                      out.stderr.decode())


# ---- the schema upgrade from version 2 ----------------------------------

def v2_rows(q):
    for uid, name in ((1, "alice"), (2, "bob")):
        q("INSERT INTO User (id, name, pwhash) VALUES (?, ?, ?)",
          (uid, name, PW_HASH))
    for a, b in ((1, 2), (2, 1)):
        q("INSERT INTO Friend (userid, friendid) VALUES (?, ?)", (a, b))
    q("INSERT INTO AllGroup (id, groupname, groupdesc, creator) "
      "VALUES (1, 'v2 group', 'made by v2', 1)", ())
    q("INSERT INTO Block (userid, blockedid) VALUES (2, 1)", ())


class Upgrade(unittest.TestCase):
    def until_page(self, u, want, **kw):
        # let the other worker flush, then the page must still be want
        time.sleep(0.5)
        self.assertEqual(texts(history(u, **kw)), want)

    def check(self, srv):
        a = srv.client()
        r = a.login(1, "pw")
        self.assertEqual([(f["id"], f["name"]) for f in r["friends"]],
                         [(2, "bob")])
        g = find(r["groups"], groupname="v2 group")
        self.assertEqual(sorted(u["id"] for u in g["users"]), [1, 2])
        b = srv.client()
        r = b.login(2, "pw")
        self.assertEqual([m["msg"] for m in r["offlinemsg"]], ["kept by v2"])
        # the new table works on the upgraded store (bob blocks alice,
        # so bob speaks)
        bu = chatlib.User(srv, b, 2, "bob", "pw")
        bu.groupchat(1, "after upgrade")
        self.assertEqual(a.recv_msgid(chatlib.GROUP_CHAT)["msg"],
                         "after upgrade")
        au = chatlib.User(srv, a, 1, "alice", "pw")
        got = wait_for(lambda: texts(history(au, groupid=1)) ==
                       ["after upgrade"], timeout=SLOW, interval=0.25)
        self.assertTrue(got, history(au, groupid=1))
        # what alice (blocked by bob) says is not in bob's history
        au.groupchat(1, "unseen by bob")
        a.sync()
        self.until_page(bu, ["after upgrade"], groupid=1)

    def test_sqlite_v2(self):
        def fill(q):
            v2_rows(q)
            q("INSERT INTO GroupUser (groupid, userid, grouprole, joined, "
              "admin, joinedat) VALUES (1, 1, 'creator', 1, 0, 0), "
              "(1, 2, 'normal', 2, 1, 5)")
            q("INSERT INTO OfflineMessage (userid, message, created, smid) "
              "VALUES (2, ?, 0, 0)",
              ('{"id":1,"msg":"kept by v2","msgid":6,"name":"alice",'
               '"time":"2026-01-01 00:00:00","toid":2}',))
        srv = chatlib.Server(workers=2)
        path = cluster.sqlite_old(self, srv, os.path.join(
            DATA, "schema-v2-sqlite.sql"), fill, 2)
        with srv:
            self.check(srv)
            db = chatlib.sqlite_db(path)
            self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0],
                             5)
            # History moved to the history file (version 5)
            self.assertEqual(db.execute(
                "SELECT count(*) FROM main.sqlite_master WHERE name IN "
                "('History', 'HistoryConv')").fetchone()[0], 0)
            self.assertEqual(db.execute(
                "SELECT userid, grouprole, joined, admin, joinedat FROM "
                "GroupUser WHERE groupid = 1 ORDER BY userid").fetchall(),
                [(1, "creator", 1, 0, 0), (2, "normal", 2, 1, 5)])
            self.assertEqual(db.execute("SELECT userid, blockedid FROM Block"
                                        ).fetchall(), [(2, 1)])
            idx = [r[1] for r in db.execute("PRAGMA index_list(History)")]
            self.assertIn("History_conv", idx)
            db.close()

    @cluster.skip_unless(cluster.have_mariadb(), "no mariadbd")
    def test_mysql_v2(self):
        def fill(db):
            v2_rows(db.insert)
            db.sql("INSERT INTO GroupUser (groupid, userid, grouprole, admin,"
                   " joinedat) VALUES (1, 1, 'creator', 0, 0),"
                   " (1, 2, 'normal', 1, 5)")
            db.sql("INSERT INTO OfflineMessage (userid, message) VALUES (2, "
                   "'{\"id\":1,\"msg\":\"kept by v2\",\"msgid\":6,\"name\":"
                   "\"alice\",\"time\":\"2026-01-01 00:00:00\",\"toid\":2}')")
        db = cluster.mysql_upgrade(
            self, os.path.join(DATA, "schema-v2-mysql.sql"), fill, 2,
            self.check)
        try:
            self.assertEqual(db.sql("SELECT MAX(version) FROM SchemaVersion"),
                             [["4"]])
            self.assertEqual(db.sql(
                "SELECT userid, grouprole, admin, joinedat FROM GroupUser "
                "WHERE groupid = 1 ORDER BY userid"),
                [["1", "creator", "0", "0"], ["2", "normal", "1", "5"]])
            self.assertEqual(db.sql("SELECT userid, blockedid FROM Block"),
                             [["2", "1"]])
        finally:
            db.stop()


# ---- the schema upgrade from version 3 ----------------------------------
# Version 4 adds HistoryConv, which RESUME reads instead of everyone's
# traffic since "since"; the upgrade fills it from the history kept.

RESUME, RESUME_ACK = 128, 129
T0 = int(time.time() * 1000) - 600000      # ten minutes ago (ms)
# smid, sender, peer (user) or -group, seconds after T0, text.  Alice (1)
# blocks carol (3): carol's chat to alice was kept for carol only
# (negative sender).  99 lies more than RESUME's 10 s before 100.
V3_HISTORY = ((99, 1, 2, -60, "old"), (100, 1, 2, 0, "a1"),
              (101, 3, 2, 20, "c1"), (102, 2, 1, 30, "b1"),
              (103, 1, -1, 40, "g1"), (104, 3, 1, 50, "c2"),
              (105, 1, 2, 60, "a2"), (106, -3, 1, 70, "blocked"))


def conv(a, b):
    return b if b < 0 else (min(a, b) << 32) | max(a, b)   # b < 0: -group


def v3_rows(q):
    for uid, name in ((1, "alice"), (2, "bob"), (3, "carol")):
        q("INSERT INTO User (id, name, pwhash) VALUES (?, ?, ?)",
          (uid, name, PW_HASH))
    q("INSERT INTO AllGroup (id, groupname, groupdesc, creator) "
      "VALUES (1, 'v3 group', '', 1)", ())
    q("INSERT INTO Block (userid, blockedid) VALUES (1, 3)", ())
    for smid, sender, to, sec, text in V3_HISTORY:
        obj = ('{"msg":"%s","msgid":%d,"smid":%d}' %
               (text, GROUP_CHAT if to < 0 else ONE_CHAT, smid))
        q("INSERT INTO History (smid, conv, sender, created, message) "
          "VALUES (?, ?, ?, ?, ?)",
          (smid, conv(abs(sender), to), sender, T0 + sec * 1000, obj))


# what each user's RESUME since 100 finds: received, not blocked, in order
V3_RESUMED = {1: ["b1"], 2: ["c1", "g1", "a2"]}     # alice blocks carol
V3_CONVS = sorted([(2, conv(1, 2)), (2, conv(2, 3)), (1, conv(1, 2)),
                   (1, conv(1, 3))])


class UpgradeV3(unittest.TestCase):
    def check(self, srv):
        for uid, name in ((1, "alice"), (2, "bob")):
            c = srv.client()
            c.login(uid, "pw")
            c.send_obj({"msgid": RESUME, "since": 100})
            while True:
                m = c.recv(timeout=SLOW)
                if m["msgid"] in (RESUME_ACK, ERROR):
                    break
            self.assertEqual(m["msgid"], RESUME_ACK, m)
            got = [chatlib.json.loads(t)["msg"] for t in m["messages"]]
            self.assertEqual(got, V3_RESUMED[uid], name)
            # nothing lost: every page as before
            u = chatlib.User(srv, c, uid, name, "pw")
            if uid == 2:
                self.assertEqual(texts(history(u, toid=1)),
                                 ["a2", "b1", "a1", "old"])
                self.assertEqual(texts(history(u, groupid=1)), ["g1"])
            c.close()

    def test_sqlite_v3(self):
        def fill(q):
            v3_rows(q)
            q("INSERT INTO GroupUser (groupid, userid, grouprole, joined) "
              "VALUES (1, 1, 'creator', 1), (1, 2, 'normal', 2)")
        srv = chatlib.Server(workers=2)
        path = cluster.sqlite_old(self, srv, os.path.join(
            DATA, "schema-v3-sqlite.sql"), fill, 3)
        with srv:
            self.check(srv)
            db = chatlib.sqlite_db(path)
            self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0],
                             5)
            # History moved to the history file (version 5)
            self.assertEqual(db.execute(
                "SELECT count(*) FROM main.sqlite_master WHERE name IN "
                "('History', 'HistoryConv')").fetchone()[0], 0)
            self.assertEqual(db.execute("SELECT count(*) FROM History"
                                        ).fetchone()[0], len(V3_HISTORY))
            self.assertEqual(sorted(db.execute(
                "SELECT userid, conv FROM HistoryConv").fetchall()),
                V3_CONVS)
            db.close()

    @cluster.skip_unless(cluster.have_mariadb(), "no mariadbd")
    def test_mysql_v3(self):
        def fill(db):
            v3_rows(db.insert)
            db.sql("INSERT INTO GroupUser (groupid, userid, grouprole) "
                   "VALUES (1, 1, 'creator'), (1, 2, 'normal')")
        db = cluster.mysql_upgrade(
            self, os.path.join(DATA, "schema-v3-mysql.sql"), fill, 3,
            self.check)
        try:
            self.assertEqual(db.sql("SELECT MAX(version) FROM SchemaVersion"),
                             [["4"]])
            self.assertEqual(db.sql("SELECT COUNT(*) FROM History"),
                             [[str(len(V3_HISTORY))]])
            self.assertEqual(sorted(
                (int(u), int(c)) for u, c in db.sql(
                    "SELECT userid, conv FROM HistoryConv")), V3_CONVS)
        finally:
            db.stop()


# ---- MySQL and two nodes (private MariaDB and Redis) -------------------
# The nodes of test_features_ext (its cluster_env), started here afresh.
from test_features_ext import ENV, HAVE_CLUSTER, OnNodes  # noqa: E402


def tearDownModule():
    cluster.stop_all(ENV)


@cluster.skip_unless(HAVE_CLUSTER, "no mariadbd or redis-server")
class CrossNode(OnNodes, Conversations):
    """The same, MySQL store: the first user on node A, the other on B."""

    def rows(self, where):
        return int(ENV["db"].sql("SELECT count(*) FROM History WHERE " +
                                 where)[0][0])


if __name__ == "__main__":
    unittest.main(verbosity=2)
