#!/usr/bin/env python3
"""chatd's chat extensions beyond the seed (issue 17), over TCP: schema
upgrades from the previous release, group management, blocking.

The upgrade tests build a database with the previous release's schema
(tests/integ/data/schema-v1-*.sql, as released), put data in, start
chatd on it and check that nothing is lost and the new layout is there.
The MySQL one needs mariadbd and is skipped without it."""

import os
import sqlite3
import sys
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
from chatlib import find  # noqa: E402

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
            self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 2)
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
        self.assertIn("newer", str(cm.exception))
        srv.stop()

    @unittest.skipUnless(cluster.find_prog("mariadbd")
                         or cluster.find_prog("mysqld"), "no mariadbd")
    def test_mysql_v1(self):
        db = cluster.MariaDB().start()
        try:
            with open(os.path.join(DATA, "schema-v1-mysql.sql")) as f:
                db.sql(f.read())

            def q(s, p):
                db.sql(s.replace("?", "%s") % tuple(
                    "'%s'" % x if isinstance(x, str)
                    else str(x) for x in p))
            v1_rows(q)
            db.sql("INSERT INTO GroupUser (groupid, userid, grouprole) "
                   "VALUES (1, 1, 'creator'), (1, 2, 'normal')")
            db.sql("INSERT INTO OfflineMessage (userid, message) VALUES "
                   "(3, '%s')" % OLD_MSG)
            self.assertEqual(db.sql("SELECT MAX(version) FROM SchemaVersion"),
                             [["1"]])
            srv = cluster.Node(db.spec, workers=2)
            with srv:
                self.check_upgraded(srv)
            self.assertEqual(db.sql("SELECT MAX(version) FROM SchemaVersion"),
                             [["2"]])
            self.assertEqual(db.sql(
                "SELECT userid, grouprole, admin, joinedat FROM GroupUser "
                "WHERE groupid = 1 AND userid <= 2 ORDER BY userid"),
                [["1", "creator", "0", "0"], ["2", "normal", "0", "0"]])
            self.assertEqual(db.sql("SELECT COUNT(*) FROM Block"), [["0"]])
        finally:
            db.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
