#!/usr/bin/env python3
"""chatd's chat extensions beyond the seed (issue 17), over TCP: schema
upgrades from the previous release, group management, blocking.

The upgrade tests build a database with the previous release's schema
(tests/integ/data/schema-v1-*.sql, as released), put data in, start
chatd on it and check that nothing is lost and the new layout is there.
The MySQL one needs mariadbd and is skipped without it."""

import json
import os
import sqlite3
import sys
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
from test_features import wait_offline  # noqa: E402
from chatlib import (ERROR, ERR_NOT_ALLOWED, ERR_NOT_MEMBER,  # noqa: E402
                     ERR_EXISTS, ERR_BAD_VALUE, find, unique)

GROUP_MANAGE, DONE, GROUP_MEMBERS, GROUP_MEMBERS_ACK, GROUP_NOTICE = (
    108, 109, 110, 111, 112)
FRIEND_REMOVE, BLOCK, UNBLOCK, BLOCK_LIST, BLOCK_LIST_ACK = (
    113, 114, 115, 116, 117)
FRIEND_NOTICE, TYPING, READ = 118, 119, 120

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
# yescrypt of "pw", made once with crypt(3): chatd checks it at login
PW_HASH = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$U4SOHmDd8SvW5vCUKSMR6N835VPwFAtgYNhQ9mFFeL5"
OLD_MSG = '{"id":1,"msg":"from v1","msgid":6,"name":"alice","time":"2026-01-01 00:00:00","toid":3}'


def v1_rows(q):
    """The same data in a v1 database, through q(sql, params)."""
    for uid, name in ((1, "alice"), (2, "bob"), (3, "carol")):
        q("INSERT INTO User (id, name, pwhash) VALUES (?, ?, ?)",
          (uid, name, PW_HASH))
    for a, b in ((1, 2), (2, 1)):
        q("INSERT INTO Friend (userid, friendid) VALUES (?, ?)", (a, b))
    q("INSERT INTO AllGroup (id, groupname, groupdesc, creator) "
      "VALUES (1, 'old group', 'made by v1', 1)", ())


class Upgrade(unittest.TestCase):
    def check_upgraded(self, srv):
        a = srv.client()
        r = a.login(1, "pw")
        self.assertEqual([(f["id"], f["name"]) for f in r["friends"]],
                         [(2, "bob")])
        g = find(r["groups"], groupname="old group")
        self.assertIsNotNone(g, r["groups"])
        self.assertEqual(g["groupdesc"], "made by v1")
        self.assertEqual(sorted(u["id"] for u in g["users"]), [1, 2])
        c = srv.client()
        r = c.login(3, "pw")
        self.assertEqual([m["msg"] for m in r["offlinemsg"]], ["from v1"])
        # the upgraded store keeps working: a new user, a new group
        d = srv.user("new")
        self.assertGreater(d.id, 3)
        d.c.addgroup(d.id, g["id"])
        d.c.sync()
        return d

    def test_sqlite_v1(self):
        srv = chatlib.Server(workers=2)
        path = os.path.join(srv.dir, "chat.db")
        db = sqlite3.connect(path)
        with open(os.path.join(DATA, "schema-v1-sqlite.sql")) as f:
            db.executescript(f.read())
        v1_rows(lambda s, p: db.execute(s, p))
        db.execute("INSERT INTO GroupUser (groupid, userid, grouprole, "
                   "joined) VALUES (1, 1, 'creator', 1), (1, 2, 'normal', 2)")
        db.execute("INSERT INTO OfflineMessage (userid, message, created) "
                   "VALUES (3, ?, 0)", (OLD_MSG,))
        db.commit()
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 1)
        db.close()
        with srv:
            self.check_upgraded(srv)
            db = sqlite3.connect(path)
            self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 5)
            cols = [r[1] for r in db.execute("PRAGMA table_info(GroupUser)")]
            self.assertIn("admin", cols)
            self.assertIn("joinedat", cols)
            self.assertEqual(db.execute("SELECT count(*) FROM Block").fetchone(),
                             (0,))
            # the old members kept their rows, unchanged but for the defaults
            self.assertEqual(db.execute(
                "SELECT userid, grouprole, joined, admin, joinedat FROM GroupUser"
                " WHERE groupid = 1 AND userid <= 2 ORDER BY userid").fetchall(),
                [(1, "creator", 1, 0, 0), (2, "normal", 2, 0, 0)])
            db.close()

    def test_sqlite_newer_refused(self):
        srv = chatlib.Server(workers=1)
        db = sqlite3.connect(os.path.join(srv.dir, "chat.db"))
        with open(os.path.join(DATA, "schema-v1-sqlite.sql")) as f:
            db.executescript(f.read())
        db.execute("PRAGMA user_version = 99")
        db.close()
        with self.assertRaises(AssertionError) as cm:
            srv.start()
        # the reason, wherever it went (a sanitizer's report may follow it)
        said = str(cm.exception)
        for path in (srv.stderr_file, srv.log_file):
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    said += f.read()
        self.assertIn("newer", said)
        srv.stop()

    @cluster.skip_unless(cluster.have_mariadb(), "no mariadbd")
    def test_mysql_v1(self):
        def fill(db):
            v1_rows(db.insert)
            db.sql("INSERT INTO GroupUser (groupid, userid, grouprole) "
                   "VALUES (1, 1, 'creator'), (1, 2, 'normal')")
            db.sql("INSERT INTO OfflineMessage (userid, message) VALUES "
                   "(3, '%s')" % OLD_MSG)
        db = cluster.mysql_upgrade(
            self, os.path.join(DATA, "schema-v1-mysql.sql"), fill, 1,
            self.check_upgraded)
        try:
            self.assertEqual(db.sql("SELECT MAX(version) FROM SchemaVersion"),
                             [["4"]])
            self.assertEqual(db.sql(
                "SELECT userid, grouprole, admin, joinedat FROM GroupUser "
                "WHERE groupid = 1 AND userid <= 2 ORDER BY userid"),
                [["1", "creator", "0", "0"], ["2", "normal", "0", "0"]])
            self.assertEqual(db.sql("SELECT COUNT(*) FROM Block"), [["0"]])
        finally:
            db.stop()


class Ext(unittest.TestCase):
    """Shared helpers; one server for the whole class."""
    workers = 2

    @classmethod
    def setUpClass(cls):
        cls.srv = chatlib.Server(workers=cls.workers)
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    def quiet(self, *users):
        for u in users:
            self.assertEqual(u.c.sync(), [])

    def request(self, u, msgid, **kw):
        """Send a request and return its answer: DONE or an ERROR."""
        kw["msgid"] = msgid
        u.c.send_obj(kw)
        while True:
            m = u.c.recv()
            if m["msgid"] in (DONE, ERROR) and m.get("refmsgid") == msgid:
                return m
            if m["msgid"] not in (GROUP_NOTICE, FRIEND_NOTICE):
                return m

    def ok(self, u, msgid, **kw):
        m = self.request(u, msgid, **kw)
        self.assertEqual((m["msgid"], m.get("errno")), (DONE, 0), m)
        return m

    def refused(self, u, code, msgid, **kw):
        m = self.request(u, msgid, **kw)
        self.assertEqual((m["msgid"], m.get("errno")), (ERROR, code), m)
        return m

    def manage(self, u, gid, op, **kw):
        return self.request(u, GROUP_MANAGE, groupid=gid, op=op, **kw)

    def notice(self, u, event):
        m = u.c.recv_msgid(GROUP_NOTICE)
        self.assertEqual(m["event"], event, m)
        return m

    def group(self, creator, *members):
        gname = unique("g")
        creator.c.creategroup(creator.id, gname, "")
        self.quiet(creator)
        gid = find(creator.relogin()["groups"], groupname=gname)["id"]
        for m in members:
            m.c.addgroup(m.id, gid)
            self.quiet(m)
        return gid

    def members(self, u, gid, **kw):
        u.c.send_obj(dict(msgid=GROUP_MEMBERS, groupid=gid, **kw))
        return u.c.recv()


class Groups(Ext):
    def test_leave_and_remove(self):
        a, b = self.srv.users_on_two_workers("gl")
        c = self.srv.user("gl")
        gid = self.group(a, b, c)
        # the creator cannot leave; a member can
        m = self.manage(a, gid, "leave")
        self.assertEqual(m.get("errno"), ERR_NOT_ALLOWED, m)
        self.assertEqual(self.manage(c, gid, "leave")["msgid"], DONE)
        n = self.notice(a, "left")
        self.assertEqual((n["groupid"], n["by"], n["userid"]),
                         (gid, c.id, c.id))
        self.notice(b, "left")
        # a plain member cannot remove; the creator can
        c.c.addgroup(c.id, gid)
        self.quiet(c)
        m = self.manage(b, gid, "remove", userid=c.id)
        self.assertEqual(m.get("errno"), ERR_NOT_ALLOWED, m)
        self.assertEqual(self.manage(a, gid, "remove", userid=b.id)["msgid"],
                         DONE)
        n = self.notice(b, "removed")
        self.assertEqual((n["by"], n["userid"]), (a.id, b.id))
        self.notice(c, "removed")
        # b (on another worker) gets none of the group's messages now
        a.groupchat(gid, "after removal")
        self.assertEqual(c.c.recv_msgid(chatlib.GROUP_CHAT)["msg"],
                         "after removal")
        b.c.expect_none(0.5)
        m = self.request(b, chatlib.GROUP_CHAT, groupid=gid, id=b.id,
                         msg="still here?", name=b.name)
        self.assertEqual(m.get("errno"), ERR_NOT_MEMBER, m)
        c.c.expect_none(0.3)
        # removing a non-member
        m = self.manage(a, gid, "remove", userid=b.id)
        self.assertEqual(m.get("errno"), ERR_NOT_MEMBER, m)

    def test_removed_offline_gets_notice(self):
        a, b = self.srv.user("go"), self.srv.user("go")
        gid = self.group(a, b)
        b.c.close()
        self.assertTrue(wait_offline(self.srv, b.id))
        self.assertEqual(self.manage(a, gid, "remove", userid=b.id)["msgid"],
                         DONE)
        a.groupchat(gid, "not for b")
        self.quiet(a)
        r = b.reconnect()
        self.assertEqual([(m["msgid"], m.get("event")) for m in
                          r["offlinemsg"]], [(GROUP_NOTICE, "removed")])
        self.assertIsNone(find(r["groups"], id=gid))

    def test_admins(self):
        a, b, c = (self.srv.user("ga") for _ in range(3))
        gid = self.group(a, b, c)
        # only the creator names admins
        m = self.manage(b, gid, "admin", userid=c.id)
        self.assertEqual(m.get("errno"), ERR_NOT_ALLOWED, m)
        self.assertEqual(self.manage(a, gid, "admin", userid=b.id)["msgid"],
                         DONE)
        self.notice(b, "admin")
        self.notice(c, "admin")
        r = self.members(b, gid)
        self.assertEqual(r["msgid"], GROUP_MEMBERS_ACK, r)
        roles = dict((u["id"], u["role"]) for u in r["members"])
        self.assertEqual(roles, {a.id: "creator", b.id: "admin",
                                 c.id: "normal"})
        # an admin renames, describes and removes a plain member
        name = unique("renamed")
        self.assertEqual(self.manage(b, gid, "rename", groupname=name)
                         ["msgid"], DONE)
        self.assertEqual(self.notice(a, "renamed")["groupname"], name)
        self.notice(c, "renamed")
        self.assertEqual(self.manage(b, gid, "describe", groupdesc="new d")
                         ["msgid"], DONE)
        self.assertEqual(self.notice(c, "described")["groupdesc"], "new d")
        self.notice(a, "described")
        g = find(a.relogin()["groups"], id=gid)
        self.assertEqual((g["groupname"], g["groupdesc"]), (name, "new d"))
        # an admin cannot remove the creator, nor name admins
        m = self.manage(b, gid, "remove", userid=a.id)
        self.assertEqual(m.get("errno"), ERR_NOT_ALLOWED, m)
        self.assertEqual(self.manage(b, gid, "remove", userid=c.id)["msgid"],
                         DONE)
        self.notice(a, "removed")
        self.notice(c, "removed")
        # unadmin: b is a plain member again and cannot rename
        self.assertEqual(self.manage(a, gid, "unadmin", userid=b.id)
                         ["msgid"], DONE)
        self.notice(b, "unadmin")
        m = self.manage(b, gid, "rename", groupname=unique("x"))
        self.assertEqual(m.get("errno"), ERR_NOT_ALLOWED, m)

    def test_rename_taken(self):
        a = self.srv.user("gr")
        gid = self.group(a)
        other = unique("taken")
        a.c.creategroup(a.id, other, "")
        self.quiet(a)
        m = self.manage(a, gid, "rename", groupname=other)
        self.assertEqual(m.get("errno"), ERR_EXISTS, m)

    def test_transfer_and_dissolve(self):
        a, b, c = (self.srv.user("gt") for _ in range(3))
        gid = self.group(a, b, c)
        m = self.manage(b, gid, "dissolve")
        self.assertEqual(m.get("errno"), ERR_NOT_ALLOWED, m)
        self.assertEqual(self.manage(a, gid, "transfer", userid=b.id)
                         ["msgid"], DONE)
        self.assertEqual(self.notice(b, "owner")["userid"], b.id)
        self.notice(c, "owner")
        # the old creator is a plain member now, and may leave
        m = self.manage(a, gid, "dissolve")
        self.assertEqual(m.get("errno"), ERR_NOT_ALLOWED, m)
        roles = dict((u["id"], u["role"]) for u in
                     self.members(c, gid)["members"])
        self.assertEqual(roles[b.id], "creator")
        self.assertEqual(roles[a.id], "normal")
        self.assertEqual(self.manage(b, gid, "dissolve")["msgid"], DONE)
        self.notice(a, "dissolved")
        self.notice(c, "dissolved")
        self.assertIsNone(find(c.relogin()["groups"], id=gid))
        m = self.members(c, gid)
        self.assertEqual(m.get("errno"), chatlib.ERR_NO_SUCH_GROUP, m)

    def test_members_paged(self):
        users = [self.srv.user("gp") for _ in range(5)]
        gid = self.group(*users)
        outsider = self.srv.user("gp")
        seen = []
        offset = 0
        while True:
            r = self.members(users[2], gid, offset=offset, limit=2)
            self.assertEqual((r["msgid"], r["total"], r["offset"]),
                             (GROUP_MEMBERS_ACK, 5, offset), r)
            self.assertLessEqual(len(r["members"]), 2)
            if not r["members"]:
                break
            seen += [u["id"] for u in r["members"]]
            offset += len(r["members"])
        self.assertEqual(seen, [u.id for u in users])
        m = self.members(outsider, gid)
        self.assertEqual(m.get("errno"), ERR_NOT_MEMBER, m)
        m = self.members(users[0], gid, limit=0)
        self.assertEqual(m.get("errno"), ERR_BAD_VALUE, m)

    def test_bad_requests(self):
        a = self.srv.user("gb")
        gid = self.group(a)
        for req in ({"op": "explode"}, {"op": "remove"},
                    {"op": "rename"}, {"op": 3}):
            m = self.request(a, GROUP_MANAGE, groupid=gid, **req)
            self.assertEqual(m["msgid"], ERROR, (req, m))
        m = self.manage(a, 999999, "leave")
        self.assertEqual(m.get("errno"), chatlib.ERR_NO_SUCH_GROUP, m)


class Blocks(Ext):
    def test_remove_friend(self):
        a, b = self.srv.users_on_two_workers("fr")
        a.c.addfriend(a.id, b.id)
        self.quiet(a)
        self.ok(a, FRIEND_REMOVE, friendid=b.id)
        n = b.c.recv_msgid(FRIEND_NOTICE)
        self.assertEqual((n["event"], n["userid"]), ("removed", a.id))
        self.assertIsNone(find(a.relogin()["friends"], id=b.id))
        self.assertIsNone(find(b.relogin()["friends"], id=a.id))
        self.refused(a, ERR_NOT_ALLOWED, FRIEND_REMOVE, friendid=b.id)

    def test_remove_friend_offline(self):
        a, b = self.srv.user("fo"), self.srv.user("fo")
        a.c.addfriend(a.id, b.id)
        self.quiet(a)
        b.c.close()
        self.assertTrue(wait_offline(self.srv, b.id))
        self.ok(a, FRIEND_REMOVE, friendid=b.id)
        r = b.reconnect()
        self.assertEqual([(m["msgid"], m["userid"]) for m in r["offlinemsg"]],
                         [(FRIEND_NOTICE, a.id)])
        self.assertEqual(r["friends"], [])

    def check_blocked(self, a, b, same_worker):
        """a blocks b: b's chats, live and stored, never reach a."""
        self.ok(a, BLOCK, userid=b.id)
        b.chat(a.id, "blocked live")
        b.c.sync()
        a.c.expect_none(0.4)
        # acknowledged chats neither; b still gets its ack
        b.chat(a.id, "blocked acked", cmid=7)
        self.assertEqual(b.c.recv_msgid(chatlib.CHAT_ACK)["cmid"], 7)
        a.c.expect_none(0.3)
        # a group chat from b neither, but c still gets it
        c = self.srv.user("bc")
        gid = self.group(a, b, c)
        b.groupchat(gid, "blocked in group")
        self.assertEqual(c.c.recv_msgid(chatlib.GROUP_CHAT)["msg"],
                         "blocked in group")
        a.c.expect_none(0.3)
        # nor a friend request
        b.c.addfriend(b.id, a.id)
        self.quiet(b)
        self.assertIsNone(find(a.relogin()["friends"], id=b.id))
        # stored while a is away: nothing at login
        a.c.close()
        self.assertTrue(wait_offline(self.srv, a.id))
        b.chat(a.id, "blocked offline")
        b.groupchat(gid, "blocked group offline")
        b.c.sync()
        r = a.reconnect()
        self.assertEqual(r["offlinemsg"], [])
        # a still talks to b, and lists b
        a.chat(b.id, "one way")
        self.assertEqual(b.c.recv_msgid(chatlib.ONE_CHAT)["msg"], "one way")
        a.c.send_obj({"msgid": BLOCK_LIST})
        r = a.c.recv_msgid(BLOCK_LIST_ACK)
        self.assertEqual(r["blocked"], [{"id": b.id, "name": b.name}])
        # unblocked: chats arrive again
        self.ok(a, UNBLOCK, userid=b.id)
        b.chat(a.id, "welcome back")
        self.assertEqual(a.c.recv_msgid(chatlib.ONE_CHAT)["msg"],
                         "welcome back")
        a.c.send_obj({"msgid": BLOCK_LIST})
        self.assertEqual(a.c.recv_msgid(BLOCK_LIST_ACK)["blocked"], [])

    def test_block_same_worker(self):
        a, b = self.srv.users_on_one_worker(2, "bs")
        self.check_blocked(a, b, True)

    def test_block_two_workers(self):
        a, b = self.srv.users_on_two_workers("bw")
        self.check_blocked(a, b, False)

    def test_block_bad(self):
        a = self.srv.user("bb")
        self.refused(a, ERR_NOT_ALLOWED, BLOCK, userid=a.id)
        self.refused(a, chatlib.ERR_NO_SUCH_USER, BLOCK, userid=2000000000)
        self.refused(a, chatlib.ERR_MISSING_FIELD, BLOCK)


class Live(Ext):
    def test_typing(self):
        a, b = self.srv.users_on_two_workers("ty")
        c = self.srv.user("ty")
        a.c.send_obj({"msgid": TYPING, "toid": b.id})
        m = b.c.recv_msgid(TYPING)
        self.assertEqual((m["id"], m["name"], m["toid"]), (a.id, a.name, b.id))
        # rate-limited: a second one at once is dropped, silently
        a.c.send_obj({"msgid": TYPING, "toid": b.id})
        self.quiet(a)
        b.c.expect_none(0.3)
        # never stored: c is away and finds nothing at login
        c.c.close()
        self.assertTrue(wait_offline(self.srv, c.id))
        time.sleep(1.05)
        a.c.send_obj({"msgid": TYPING, "toid": c.id})
        self.quiet(a)
        self.assertEqual(c.reconnect()["offlinemsg"], [])
        # in a group: the other members, members only
        gid = self.group(a, b, c)
        time.sleep(1.05)
        a.c.send_obj({"msgid": TYPING, "groupid": gid})
        self.assertEqual(b.c.recv_msgid(TYPING)["groupid"], gid)
        self.assertEqual(c.c.recv_msgid(TYPING)["groupid"], gid)
        self.quiet(a)
        d = self.srv.user("ty")
        m = self.request(d, TYPING, groupid=gid)
        self.assertEqual(m.get("errno"), ERR_NOT_MEMBER, m)
        m = self.request(d, TYPING, toid=a.id, groupid=gid)
        self.assertEqual(m.get("errno"), ERR_BAD_VALUE, m)

    def test_typing_blocked(self):
        a, b = self.srv.user("tb"), self.srv.user("tb")
        self.ok(a, BLOCK, userid=b.id)
        b.c.send_obj({"msgid": TYPING, "toid": a.id})
        self.quiet(b)
        a.c.expect_none(0.3)

    def test_read_receipt(self):
        a, b = self.srv.users_on_two_workers("rr")
        a.chat(b.id, "read me", cmid=1, receipt=True)
        smid = a.c.recv_msgid(chatlib.CHAT_ACK)["smid"]
        m = b.c.recv_msgid(chatlib.ONE_CHAT)
        self.assertEqual((m["smid"], m["receipt"]), (smid, True))
        b.c.send_obj({"msgid": READ, "toid": a.id, "upto": smid})
        r = a.c.recv_msgid(READ)
        self.assertEqual((r["id"], r["toid"], r["upto"]), (b.id, a.id, smid))
        # too fast: refused; the sender away: kept for its login
        b.c.send_obj({"msgid": READ, "toid": a.id, "upto": smid})
        m = b.c.recv_msgid(ERROR)
        self.assertEqual(m["errno"], chatlib.ERR_RATE, m)
        a.c.close()
        self.assertTrue(wait_offline(self.srv, a.id))
        time.sleep(0.25)
        b.c.send_obj({"msgid": READ, "toid": a.id, "upto": smid + 1})
        self.quiet(b)
        r = a.reconnect()
        self.assertEqual([(m["msgid"], m["upto"]) for m in r["offlinemsg"]],
                         [(READ, smid + 1)])
        time.sleep(0.25)
        for bad in ({"toid": b.id, "upto": 1}, {"toid": a.id},
                    {"toid": a.id, "upto": 0}, {"toid": 2000000000, "upto": 1}):
            time.sleep(0.21)
            b.c.send_obj(dict(msgid=READ, **bad))
            m = b.c.recv_msgid(ERROR)
            self.assertNotEqual(m["errno"], chatlib.ERR_RATE, (bad, m))


class Chatc(Ext):
    def test_chatc_commands(self):
        """chatc's script mode sends the extension requests."""
        a = self.srv.user("cc")
        b, c = self.srv.user("cc"), self.srv.user("cc")
        gid = self.group(a, b, c)
        a.c.close()
        self.assertTrue(wait_offline(self.srv, a.id))
        script = ("login:%d:pw\nadmin:%d:%d\nmembers:%d:1\nremove:%d:%d\n"
                  "rename:%d:%s\nblock:%d\nblocks\nunblock:%d\n"
                  "remove:%d\nmembers:x\nquit\n") % (
            a.id, gid, b.id, gid, gid, c.id, gid, unique("cc"), c.id, c.id,
            gid)
        out = chatlib.run([chatlib.chatc_bin(), "-p", str(self.srv.port),
                           "-s", "-w", "500"], input=script.encode())
        self.assertEqual(out.returncode, 0, out.stderr)
        got = [json.loads(l) for l in out.stdout.decode().splitlines()]
        self.assertEqual([m["msgid"] for m in got],
                         [2, DONE, GROUP_MEMBERS_ACK, DONE, DONE, DONE,
                          BLOCK_LIST_ACK, DONE], got)
        self.assertEqual([u["id"] for u in got[2]["members"]], [b.id, c.id])
        self.assertEqual(got[6]["blocked"][0]["id"], c.id)
        err = out.stderr.decode()
        self.assertIn("usage: remove:GROUP:USER", err)
        self.assertIn("usage: members:GROUP[:OFFSET]", err)
        self.notice(b, "admin")
        self.assertEqual(self.notice(c, "admin")["userid"], b.id)
        self.notice(c, "removed")


# ---- MySQL and two nodes (private MariaDB and Redis) -------------------

ENV = {}
HAVE_CLUSTER = cluster.have_cluster()


def cluster_env():
    """MariaDB, Redis and two nodes on them, started once for the module."""
    return cluster.two_nodes(ENV, "ext")


def tearDownModule():
    cluster.stop_all(ENV)


class OnNodes:
    """A test class on cluster_env's nodes (put first among the bases):
    cls.srv is node `node`, cls.srvB node B; the module stops them."""
    node = "A"

    @classmethod
    def setUpClass(cls):
        env = cluster_env()
        cls.srv, cls.srvB = env[cls.node], env["B"]

    @classmethod
    def tearDownClass(cls):
        pass


@cluster.skip_unless(HAVE_CLUSTER, "no mariadbd or redis-server")
class GroupsMySQL(OnNodes, Groups):
    """The group tests on a node of a cluster (MySQL store, Redis)."""


@cluster.skip_unless(HAVE_CLUSTER, "no mariadbd or redis-server")
class BlocksMySQL(OnNodes, Blocks):
    node = "B"


@cluster.skip_unless(HAVE_CLUSTER, "no mariadbd or redis-server")
class CrossNode(OnNodes, Ext):
    """The sender on node A, the others on node B."""

    def test_removed_member_on_other_node(self):
        a = self.srv.user("xr")
        b, c = self.srvB.user("xr"), self.srvB.user("xr")
        gid = self.group(a, b, c)
        a.groupchat(gid, "before")
        self.assertEqual(b.c.recv_msgid(chatlib.GROUP_CHAT)["msg"], "before")
        self.assertEqual(c.c.recv_msgid(chatlib.GROUP_CHAT)["msg"], "before")
        self.assertEqual(self.manage(a, gid, "remove", userid=b.id)["msgid"],
                         DONE)
        n = b.c.recv_msgid(GROUP_NOTICE)
        self.assertEqual((n["event"], n["userid"]), ("removed", b.id))
        self.notice(c, "removed")
        a.groupchat(gid, "after")
        self.assertEqual(c.c.recv_msgid(chatlib.GROUP_CHAT)["msg"], "after")
        b.c.expect_none(0.5)

    def test_block_across_nodes(self):
        a, b = self.srv.user("xb"), self.srvB.user("xb")
        self.ok(a, BLOCK, userid=b.id)
        b.chat(a.id, "blocked across")
        b.c.sync()
        a.c.expect_none(0.5)
        self.ok(a, UNBLOCK, userid=b.id)
        b.chat(a.id, "across again")
        self.assertEqual(a.c.recv_msgid(chatlib.ONE_CHAT)["msg"],
                         "across again")


if __name__ == "__main__":
    unittest.main(verbosity=2)
