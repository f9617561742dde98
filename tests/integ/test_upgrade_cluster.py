#!/usr/bin/env python3
"""Binary upgrade of a cluster node: MariaDB and Redis (cluster.py), two
nodes, and acknowledged chats whose answers follow the hand over.

Node A (two workers) is upgraded with `chatctl upgrade` while user a on
A has an acknowledged chat to b on node B held in the store: the test
holds a write lock on ClientMsg (LOCK TABLES, from its own MariaDB
session), so a's old worker hands a over "with answers to follow".  The
upgrade completes while the chat is still held; once the lock goes, the
old worker commits, routes the chat to B over Redis and sends the
acknowledgement to the new worker over the slot's channel
(CHAN_ANSWER, CHAN_ANSWERED), which writes it before the answer to the
ping a sent after the chat.  Checked: the acknowledgement comes once,
after the commit, in order; b gets the chat once with its smid; a and
the other users of A stay connected with the same session on new
workers; chats flow both ways between the nodes afterwards; a resend
of the chat is found by its cmid (same smid, no second copy).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import chatlib
import cluster
from test_upgrade import ctl_tool, start_from, status, stop_master

UPGRADE_SECONDS = 600


class RowLock:
    """The ClientMsg row (userid, cmid) inserted, not committed, by a
    mariadb client session of ours until release() (ROLLBACK): the
    chat's own claim of that row waits for it (InnoDB's lock wait,
    50 s), nothing else does."""

    def __init__(self, db, userid, cmid):
        client = cluster.find_prog("mariadb") or cluster.find_prog("mysql")
        self.p = subprocess.Popen(
            [client, "--no-defaults", "--protocol=socket",
             "--socket=" + db.env["MYSQL_SOCKET"], "-uroot",
             "-p" + db.env["MYSQL_ROOT_PASSWORD"], "--batch",
             "--skip-column-names", "--unbuffered", "chatd_test"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self.ask("BEGIN; INSERT INTO ClientMsg (userid, cmid) VALUES "
                 "(%d, %d)" % (userid, cmid), "locked")

    def ask(self, query, tag):
        self.p.stdin.write(("%s;\nSELECT '%s';\n" % (query, tag)).encode())
        self.p.stdin.flush()
        line = self.p.stdout.readline().decode().strip()
        if line != tag:
            raise AssertionError("%s: %r" % (query, line))

    def release(self):
        if self.p is None:
            return
        try:
            self.ask("ROLLBACK", "unlocked")
            self.p.stdin.close()
            self.p.wait(30)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait(30)
            self.p.stdout.close()
            self.p.stderr.close()
            self.p = None


class ClusterUpgrade(unittest.TestCase):

    def setUp(self):
        cluster.require(("redis", "mariadb"))
        self.tmp = tempfile.mkdtemp(prefix="chatd-upc-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.binary = os.path.join(self.tmp, "chatd")
        shutil.copy2(chatlib.chatd_bin(), self.binary)
        self.env = {}
        self.new_master = None

    def test_answers_follow_in_a_cluster(self):
        env = self.env
        try:
            env["redis"] = cluster.Redis()
            env["redis"].start()
            env["db"] = cluster.MariaDB()
            env["db"].start()
            db = env["db"]
            # the held chat's INSERT must not time out while locked
            env["A"] = cluster.Node(db.spec, env["redis"], "upA-%d" %
                                    os.getpid(), extra={
                                        "control_socket": os.path.join(
                                            self.tmp, "ctl.sock"),
                                        "db_query_timeout_ms": 120000})
            env["B"] = cluster.Node(db.spec, env["redis"], "upB-%d" %
                                    os.getpid())
            start_from(env["A"], self.binary)
            env["B"].start()
            self.held(env["A"], env["B"], db)
        finally:
            problems = []
            if self.new_master is not None:
                if not stop_master(self.new_master):
                    problems.append("the new master did not stop")
            try:
                cluster.stop_all(env)
            except AssertionError as e:
                problems.append(str(e))
            self.assertEqual(problems, [])

    def acked(self, sender, to, text, cmid):
        """An acknowledged chat: its acknowledgement, then its delivery."""
        sender.chat(to.id, text, cmid=cmid)
        self.assertEqual(sender.c.recv_msgid(103)["cmid"], cmid)
        self.assertEqual(to.c.recv_msgid(6, timeout=30)["msg"], text)

    def held(self, A, B, db):
        a0, a1 = A.users_on_two_workers("upca")
        b = B.user("upcb")
        info = a0.c.whoami_full()
        old_pid, slot = info["pid"], info["worker"]
        # warm: both ways, so that routes and smid blocks are ready
        self.acked(a0, b, "warm", 1)
        self.acked(b, a1, "warm too", 1)

        lock = RowLock(db, a0.id, 2)
        try:
            a0.chat(b.id, "held", cmid=2)
            a0.c.send_obj({"msgid": 101, "seq": 77})
            time.sleep(0.5)     # its store job waits for the lock
            r = chatlib.run([ctl_tool(), "-s", A.keys["control_socket"],
                             "upgrade"], timeout=UPGRADE_SECONDS)
            self.assertEqual(r.returncode, 0, (r.stdout, r.stderr,
                                               A.log_text()[-4000:]))
            log = A.log_text()
            self.assertIn("worker %d notice: upgrade: " % slot, log)
            self.assertIn("(1 with answers to follow)", log, log[-5000:])
            # held: nothing answered, nothing delivered yet
            a0.c.expect_none(0.5)
            b.c.expect_none(0.1)
        finally:
            lock.release()
        self.assertTrue(chatlib.wait_for(lambda: A.proc.poll() is not None,
                                         60), "the old master still runs")
        self.new_master = status(A)["pid"]
        # the acknowledgement, written by the new worker, before the pong
        ack = a0.c.recv_msgid(103, timeout=60)
        self.assertEqual(ack["cmid"], 2)
        self.assertEqual(a0.c.recv_msgid(102)["seq"], 77)
        got = b.c.recv_msgid(6, timeout=60)
        self.assertEqual((got["msg"], got["smid"]), ("held", ack["smid"]))
        log = A.log_text()
        self.assertIn("chatd[%d] worker %d notice: upgrade: the store jobs "
                      "ended" % (old_pid, slot), log)
        self.assertNotIn("had no word from the old worker", log)
        # the same sessions on new workers; chats both ways
        for u in (a0, a1):
            w = u.c.whoami_full()
            self.assertEqual(w["id"], u.id)
            self.assertNotEqual(w["pid"], old_pid)
        self.acked(b, a0, "after", 3)
        self.acked(a1, b, "after too", 4)
        # a resend is found by its cmid: the same smid, no second copy
        a0.chat(b.id, "held", cmid=2)
        self.assertEqual(a0.c.recv_msgid(103)["smid"], ack["smid"])
        b.c.expect_none(0.5)
        print("cluster upgrade: acknowledgement followed the hand over "
              "(smid %d)" % ack["smid"], file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
