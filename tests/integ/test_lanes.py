#!/usr/bin/env python3
"""A chat stored while its recipient logs in reaches that login.

A plain chat to a user found away is stored by the sender's worker in its
write thread; the recipient's login reads its offline batch in its own
worker's read thread.  Neither the two threads nor two workers are ordered
with each other, so the login may read before the store commits.  The
storing worker then tells the session's worker (over the channel on one
node, over Redis in a cluster) to fetch: the chat arrives right after the
login answer instead of at the next login.  Seen in helpers' full runs as
test_db_tls test_verify missing its stored chat."""

import os
import sqlite3
import sys
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
from chatlib import GROUP_CHAT, ONE_CHAT, find, unique  # noqa: E402

ROUNDS = 40
WAIT = 10.0         # generous: a loaded 2-core machine under ASan


class Lanes(unittest.TestCase):
    def test_stored_during_login_arrives(self):
        with chatlib.Server(workers=2) as srv:
            sender = srv.user("lane")
            b = srv.user("lane")
            late = repeats = 0
            seen = set()
            for i in range(ROUNDS):
                text = "round %d" % i
                nc = srv.client_on(i % 2)
                # away for sure (a chat written to a connection the
                # client already dropped is the seed's own loss window)
                b.c.loginout(b.id)
                self.assertEqual(b.c.sync(), [])
                sender.chat(b.id, text)
                # the login races the store, on either worker
                r = chatlib.parse_login(nc.login_raw(b.id, "pw"))
                got = [m["msg"] for m in r["offlinemsg"]]
                if text not in got:
                    late += 1
                    got.append(nc.recv_msgid(ONE_CHAT, timeout=WAIT)["msg"])
                # a plain client may see the previous round's chat again:
                # its removal (write lane, old worker) and this login's
                # read (read lane, new worker) are not ordered
                repeats += len(got) - 1
                self.assertEqual(got.count(text), 1, "round %d" % i)
                self.assertTrue(set(got) <= seen | {text}, got)
                seen.add(text)
                b.c.close()
                b.c = nc
            print("%d of %d chats came right after the login answer, %d "
                  "repeats" % (late, ROUNDS, repeats))
            self.assertEqual(sender.c.sync(), [])
            b.c.expect_none(0.3)

    def test_group_stored_before_live(self):
        """A plain group chat reaches its online members only once the
        copies for those away are stored: an answer to it can then never
        be stored for them before it."""
        with chatlib.Server(workers=2) as srv:
            a, b = srv.users_on_two_workers("glane")
            cid, _ = srv.register("glane")
            gname = unique("glane")
            a.c.creategroup(a.id, gname, "")
            self.assertEqual(a.c.sync(), [])
            gid = find(a.relogin()["groups"], groupname=gname)["id"]
            b.c.addgroup(b.id, gid)
            self.assertEqual(b.c.sync(), [])
            c = srv.client()
            c.login(cid, "pw")
            c.addgroup(cid, gid)
            c.loginout(cid)
            self.assertEqual(c.sync(), [])
            # the member list is cached: the chat under the lock needs
            # the store only for c's copy
            a.groupchat(gid, "warm")
            self.assertEqual(b.c.recv_msgid(GROUP_CHAT)["msg"], "warm")
            db = sqlite3.connect(srv.keys["storage"][len("sqlite:"):],
                                 timeout=0, isolation_level=None)
            db.execute("BEGIN EXCLUSIVE")
            try:
                a.groupchat(gid, "first")
                # c's copy waits for the lock, and so does b's
                b.c.expect_none(1.0)
            finally:
                db.execute("ROLLBACK")
                db.close()
            self.assertEqual(b.c.recv_msgid(GROUP_CHAT, timeout=WAIT)["msg"],
                             "first")
            b.groupchat(gid, "answer")
            self.assertEqual(a.c.recv_msgid(GROUP_CHAT, timeout=WAIT)["msg"],
                             "answer")
            self.assertEqual(a.c.sync(), [])
            r = chatlib.parse_login(c.login_raw(cid, "pw"))
            got = [m["msg"] for m in r["offlinemsg"]]
            while len(got) < 3:
                got.append(c.recv_msgid(GROUP_CHAT, timeout=WAIT)["msg"])
            self.assertEqual(got, ["warm", "first", "answer"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
