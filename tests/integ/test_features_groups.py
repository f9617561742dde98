#!/usr/bin/env python3
"""The seed protocol's friends and groups (test_features.py has the rest):
adding friends, creating and joining groups, group chat live and offline,
duplicates, the errors."""

import os
import sys
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chatlib import GROUP_CHAT, find, unique  # noqa: E402
from test_features import ServerCase, wait_offline  # noqa: E402


class FriendsGroups(ServerCase):
    # ---- friends ---------------------------------------------------

    def test_add_friend_mutual(self):
        a, b = self.srv.users_on_two_workers("fr")
        a.c.addfriend(a.id, b.id)
        a.c.expect_none(0.2)
        self.quiet(a, b)
        ra = a.relogin()
        rb = b.relogin()
        self.assertEqual(find(ra["friends"], id=b.id)["state"], "online")
        self.assertEqual(find(rb["friends"], id=a.id)["state"], "online")
        b.c.shutdown()
        self.assertTrue(wait_offline(self.srv, b.id))
        ra = a.relogin()
        self.assertEqual(find(ra["friends"], id=b.id),
                         {"id": b.id, "name": b.name, "state": "offline"})

    def test_duplicates_harmless(self):
        a = self.srv.user("dupf")
        b = self.srv.user("dupf")
        a.c.addfriend(a.id, b.id)
        a.c.addfriend(a.id, b.id)
        b.c.addfriend(b.id, a.id)
        self.quiet(a, b)
        ra = a.relogin()
        self.assertEqual([f["id"] for f in ra["friends"]], [b.id])
        rb = b.relogin()
        self.assertEqual([f["id"] for f in rb["friends"]], [a.id])
        gname = unique("dupg")
        a.c.creategroup(a.id, gname, "")
        self.quiet(a)
        gid = find(a.relogin()["groups"], groupname=gname)["id"]
        b.c.addgroup(b.id, gid)
        b.c.addgroup(b.id, gid)
        a.c.addgroup(a.id, gid)      # the creator joins its own group
        self.quiet(a, b)
        g = find(b.relogin()["groups"], id=gid)
        self.assertEqual(sorted(u["id"] for u in g["users"]),
                         sorted([a.id, b.id]))
        self.assertEqual(find(g["users"], id=a.id)["role"], "creator")
        self.assertEqual(find(g["users"], id=b.id)["role"], "normal")
        # group chat reaches b once
        a.groupchat(gid, "once")
        self.assertEqual(b.c.recv_msgid(GROUP_CHAT)["msg"], "once")
        b.c.expect_none(0.3)

    # ---- groups ----------------------------------------------------

    def test_group_chat(self):
        a, b = self.srv.users_on_two_workers("gc")
        slot_a = a.c.whoami()
        d = self.srv.users_on_one_worker(1, "gc", slot=slot_a)[0]
        cid, cname = self.srv.register("gc")
        gname = unique("group")
        a.c.creategroup(a.id, gname, "desc")
        self.quiet(a)
        gid = find(a.relogin()["groups"], groupname=gname)["id"]
        b.c.addgroup(b.id, gid)
        d.c.addgroup(d.id, gid)
        c = self.srv.client()
        c.login(cid, "pw")
        c.addgroup(cid, gid)
        c.loginout(cid)
        self.assertEqual(c.sync(), [])
        self.quiet(b, d)
        sent = a.groupchat(gid, "hello group")
        mb = b.c.recv_msgid(GROUP_CHAT)       # other worker, live
        md = d.c.recv_msgid(GROUP_CHAT)       # same worker, live
        for m in (mb, md):
            self.assert_forwarded(m, sent, a)
            self.assertEqual(m["groupid"], gid)
        a.c.expect_none(0.3)                   # not back to the sender
        # b answers; a and d get it, b does not
        sent2 = b.groupchat(gid, "hi from b")
        self.assert_forwarded(a.c.recv_msgid(GROUP_CHAT), sent2, b)
        self.assert_forwarded(d.c.recv_msgid(GROUP_CHAT), sent2, b)
        b.c.expect_none(0.3)
        # c was offline: both at the next login, in order
        r = c.login(cid, "pw")
        self.assertEqual([(m["msg"], m["id"]) for m in r["offlinemsg"]],
                         [("hello group", a.id), ("hi from b", b.id)])
        for m in r["offlinemsg"]:
            self.assertEqual(m["groupid"], gid)
            self.assertEqual(m["msgid"], GROUP_CHAT)
        g = find(r["groups"], id=gid)
        self.assertEqual(g["groupname"], gname)
        self.assertEqual(
            sorted((u["id"], u["role"], u["state"]) for u in g["users"]),
            sorted([(a.id, "creator", "online"), (b.id, "normal", "online"),
                    (d.id, "normal", "online"), (cid, "normal", "online")]))
        self.assertEqual(find(g["users"], id=cid)["name"], cname)

    def test_group_errors(self):
        a = self.srv.user("ge")
        b = self.srv.user("ge")
        gname = unique("ge")
        a.c.creategroup(a.id, gname, "d")
        self.quiet(a)
        gid = find(a.relogin()["groups"], groupname=gname)["id"]
        # not a member: refused, nothing delivered
        b.groupchat(gid, "intruder")
        self.assert_error(b.c.recv(), 21)
        a.c.expect_none(0.3)
        # no such group
        b.c.addgroup(b.id, 2147483000)
        self.assert_error(b.c.recv(), 20)
        b.groupchat(2147483000, "nowhere")
        self.assert_error(b.c.recv(), 20)
        # a taken group name
        b.c.creategroup(b.id, gname, "again")
        self.assert_error(b.c.recv(), 23)
        self.assertEqual(find(b.relogin()["groups"], groupname=gname), None)

    def test_friend_errors(self):
        a = self.srv.user("fe")
        a.c.addfriend(a.id, a.id)
        self.assert_error(a.c.recv(), 22)
        a.c.addfriend(a.id, 2147483000)
        self.assert_error(a.c.recv(), 19)
        a.chat(2147483000, "to nobody")
        self.assert_error(a.c.recv(), 19)
        self.assertEqual(a.relogin()["friends"], [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
