#!/usr/bin/env python3
"""Every feature of the seed protocol, sent the way the seed client sends
it (compact JSON, sorted keys, one NUL byte after each request)."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
from chatlib import (ERROR, LOGIN_ACK, ONE_CHAT, GROUP_CHAT,  # noqa: E402
                     find, unique)


def same(a, b):
    """Equal value and equal JSON type, recursively (1 != 1.0 != True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


TEXTS = [
    "plain ascii",
    "emoji \U0001F600\U0001F44D\U0001F3FD\U0001F1EB\U0001F1F7 clef "
    "\U0001D11E max \U0010FFFF",
    "CJK \u4e2d\u6587 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4, accents "
    "\u00e9\u00e8\u00fc\u00df",
    'quotes " \' and backslashes \\ \\\\ \\n \\u0000 \\"',
    "nul \x00 inside \x00\x00 twice",
    "controls " + "".join(chr(i) for i in range(1, 32)) + " del \x7f",
    "sql '); DROP TABLE User; -- \" OR 1=1; SELECT * FROM OfflineMessage",
    "printf %s %d %n %x %% %999999999s %*d %1$s",
    "line1\nline2\r\nline3\ttab\fform\bback",
    "\u2028\u2029 separators, BOM \ufeff, replacement \ufffd, "
    "non-char \uffff",
    "json in text {\"msgid\":1,\"id\":1} ] } [ {",
    "long " + "\u00e9\U0001F600x" * 1500,
]


class ServerCase(unittest.TestCase):
    """A server of two workers for the class, and the feature tests'
    helpers (test_features_groups.py shares them; test_features_mysql.py
    runs both on other stores)."""

    @classmethod
    def setUpClass(cls):
        cls.srv = chatlib.Server(workers=2)
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    # ---- helpers ---------------------------------------------------

    def assert_error(self, m, code, msgid=ERROR):
        self.assertEqual(m.get("msgid"), msgid, m)
        self.assertEqual(m.get("errno"), code, m)
        self.assertIsInstance(m.get("errmsg"), str, m)

    def assert_forwarded(self, got, sent, sender):
        """Each field the sender sent arrives with the same value and type,
        except id and name, which name the real sender."""
        self.assertEqual(got.get("id"), sender.id, got)
        self.assertIs(type(got.get("id")), int, got)
        self.assertEqual(got.get("name"), sender.name, got)
        for k, v in sent.items():
            if k in ("id", "name"):
                continue
            self.assertIn(k, got, "field %r lost: %r" % (k, got))
            self.assertTrue(same(got[k], v),
                            "field %r changed: sent %r, got %r" %
                            (k, v, got[k]))

    def quiet(self, *users):
        """No error answer is pending for these users, nothing else came."""
        for u in users:
            self.assertEqual(u.c.sync(), [])

    def group_of(self, creator, member, prefix):
        """A new group made by creator, joined by member: its id."""
        gname = unique(prefix)
        creator.c.creategroup(creator.id, gname, "")
        self.quiet(creator)
        gid = find(creator.relogin()["groups"], groupname=gname)["id"]
        member.c.addgroup(member.id, gid)
        self.quiet(member)
        return gid


class Features(ServerCase):
    # ---- register / login ------------------------------------------

    def test_register(self):
        c = self.srv.client()
        n1, n2 = unique("reg"), unique("reg")
        r1 = c.register_raw(n1, "secret")
        self.assertEqual(r1["errno"], 0, r1)
        self.assertIs(type(r1["id"]), int)
        self.assertGreater(r1["id"], 0)
        r2 = c.register_raw(n2, "secret")
        self.assertEqual(r2["errno"], 0, r2)
        self.assertNotEqual(r1["id"], r2["id"])
        # a taken name, from this and from another connection
        r3 = c.register_raw(n1, "other")
        self.assert_error(r3, 1, msgid=5)
        self.assertNotIn("id", r3)
        r4 = self.srv.client().register_raw(n1, "other")
        self.assert_error(r4, 1, msgid=5)
        # REG works when logged in too
        c.login(r1["id"], "secret")
        r5 = c.register_raw(unique("reg"), "x")
        self.assertEqual(r5["errno"], 0, r5)
        # the first password still works, the second registration did not
        # change it
        c2 = self.srv.client()
        self.assert_error(c2.login_raw(r2["id"], "other"), 1, LOGIN_ACK)

    def test_login_reply_shape(self):
        a, b = self.srv.users_on_two_workers("shape")
        cid, cname = self.srv.register("shape")
        r = a.reply
        self.assertEqual(r["errno"], 0)
        self.assertEqual(r["id"], a.id)
        self.assertEqual(r["name"], a.name)
        # friends: b (online) and c (offline)
        a.c.addfriend(a.id, b.id)
        a.c.addfriend(a.id, cid)
        gname = unique("grp")
        a.c.creategroup(a.id, gname, "the description")
        self.quiet(a)
        r = a.relogin()
        raw = r["_raw"]
        for key in ("friends", "groups"):
            self.assertIsInstance(raw[key], list)
            for s in raw[key]:
                self.assertIsInstance(s, str, "%s holds %r" % (key, s))
        fb = find(r["friends"], id=b.id)
        fc = find(r["friends"], id=cid)
        self.assertEqual(fb, {"id": b.id, "name": b.name, "state": "online"})
        self.assertEqual(fc, {"id": cid, "name": cname, "state": "offline"})
        g = find(r["groups"], groupname=gname)
        self.assertIsNotNone(g, r["groups"])
        self.assertIs(type(g["id"]), int)
        self.assertEqual(g["groupdesc"], "the description")
        self.assertEqual(len(g["users"]), 1)
        self.assertEqual(g["users"][0], {"id": a.id, "name": a.name,
                                         "state": "online",
                                         "role": "creator"})
        b.c.addgroup(b.id, g["id"])
        self.quiet(b)
        r = b.relogin()
        g = find(r["groups"], id=g["id"])
        self.assertEqual(find(g["users"], id=a.id)["role"], "creator")
        self.assertEqual(find(g["users"], id=b.id),
                         {"id": b.id, "name": b.name, "state": "online",
                          "role": "normal"})
        # mutual: b sees a without asking
        self.assertEqual(find(r["friends"], id=a.id),
                         {"id": a.id, "name": a.name, "state": "online"})

    def test_login_failures_look_alike(self):
        uid, _ = self.srv.register("lf")
        c = self.srv.client()
        wrong = c.login_raw(uid, "not the password")
        self.assert_error(wrong, 1, LOGIN_ACK)
        unknown = c.login_raw(2147483000, "pw")
        self.assert_error(unknown, 1, LOGIN_ACK)
        self.assertEqual(wrong["errmsg"], unknown["errmsg"])
        self.assertEqual(sorted(wrong), sorted(unknown))
        # the connection is still usable
        self.assertEqual(c.login(uid, "pw")["id"], uid)

    def test_second_login_refused(self):
        a = self.srv.user("dup")
        slot = a.c.whoami()
        same_w = self.srv.client_on(slot)
        self.assert_error(same_w.login_raw(a.id, "pw"), 2, LOGIN_ACK)
        other_w = self.srv.client_on(1 - slot)
        self.assert_error(other_w.login_raw(a.id, "pw"), 2, LOGIN_ACK)
        # the first session is untouched
        b = self.srv.user("dup")
        b.chat(a.id, "still here")
        self.assertEqual(a.c.recv_msgid(ONE_CHAT)["msg"], "still here")

    def test_login_right_after_drop(self):
        sender = self.srv.user("drop")
        a = self.srv.user("drop")
        for i in range(6):
            slot = a.c.whoami()
            target = slot if i % 2 == 0 else 1 - slot
            nc = self.srv.client_on(target)
            a.c.shutdown()
            r = nc.login_raw(a.id, "pw")
            self.assertEqual(r["errno"], 0,
                             "login %d (%s worker) right after the drop: %r"
                             % (i, "same" if target == slot else "other", r))
            a.c = nc
        # messages sent from now on are delivered or stored, never lost
        a.c.shutdown()
        self.assertTrue(wait_offline(self.srv, a.id))
        sender.chat(a.id, "after the drop")
        self.quiet(sender)
        r = a.reconnect()
        self.assertEqual([m["msg"] for m in r["offlinemsg"]],
                         ["after the drop"])

    def test_loginout_then_login_same_connection(self):
        a = self.srv.user("lo")
        b = self.srv.user("lo")
        a.c.loginout(a.id)
        a.c.expect_none(0.3)
        # logged out: only REG and LOGIN now
        a.c.send_obj({"friendid": b.id, "id": a.id, "msgid": 7})
        self.assert_error(a.c.recv(), 17)
        # and a is offline: b's message is stored
        b.chat(a.id, "while you were out")
        self.quiet(b)
        r = a.c.login(a.id, "pw")
        self.assertEqual([m["msg"] for m in r["offlinemsg"]],
                         ["while you were out"])
        b.chat(a.id, "live again")
        self.assertEqual(a.c.recv_msgid(ONE_CHAT)["msg"], "live again")

    def test_login_twice_on_one_connection(self):
        a = self.srv.user("twice")
        r = a.c.login_raw(a.id, "pw")
        self.assertEqual(r["msgid"], LOGIN_ACK)
        self.assertNotEqual(r["errno"], 0, r)
        self.assertIsInstance(r.get("errmsg"), str)

    # ---- one-to-one chat -------------------------------------------

    def test_chat_same_worker(self):
        a, b = self.srv.users_on_one_worker(2, "cs")
        sent = a.chat(b.id, "hello neighbour")
        self.assert_forwarded(b.c.recv_msgid(ONE_CHAT), sent, a)
        a.c.expect_none(0.2)
        sent = b.chat(a.id, "hello back")
        self.assert_forwarded(a.c.recv_msgid(ONE_CHAT), sent, b)

    def test_chat_across_workers(self):
        a, b = self.srv.users_on_two_workers("cx")
        self.assertNotEqual(a.c.whoami(), b.c.whoami())
        for i in range(20):
            sent = a.chat(b.id, "ping %d" % i)
            self.assert_forwarded(b.c.recv_msgid(ONE_CHAT), sent, a)
            sent = b.chat(a.id, "pong %d" % i)
            self.assert_forwarded(a.c.recv_msgid(ONE_CHAT), sent, b)
        # a burst keeps its order
        for i in range(300):
            a.chat(b.id, "burst %d" % i)
        got = [b.c.recv_msgid(ONE_CHAT)["msg"] for _ in range(300)]
        self.assertEqual(got, ["burst %d" % i for i in range(300)])
        a.c.expect_none(0.2)

    def test_offline_in_order_once(self):
        a = self.srv.user("off")
        bid, bname = self.srv.register("off")
        sent = [a.chat(bid, "offline %d" % i) for i in range(10)]
        self.quiet(a)
        b = self.srv.client()
        r = b.login(bid, "pw")
        self.assertEqual(len(r["offlinemsg"]), 10, r["offlinemsg"])
        for got, s in zip(r["offlinemsg"], sent):
            self.assertEqual(got["msgid"], ONE_CHAT)
            self.assert_forwarded(got, s, a)
        b.expect_none(0.3)
        b.loginout(bid)
        r = b.login(bid, "pw")
        self.assertEqual(r["offlinemsg"], [])
        b.close()
        r = self.srv.client().login(bid, "pw")
        self.assertEqual(r["offlinemsg"], [])

    def test_offline_long(self):
        a = self.srv.user("long")
        bid, _ = self.srv.register("long")
        long_text = ("twenty kilobytes \U0001F600 " * 1000)[:20000]
        self.assertGreater(len(long_text.encode()), 20000)
        sent = a.chat(bid, long_text)
        self.quiet(a)
        b = self.srv.client()
        r = b.login(bid, "pw")
        self.assertEqual(len(r["offlinemsg"]), 1)
        self.assert_forwarded(r["offlinemsg"][0], sent, a)
        # and live
        sent = a.chat(bid, long_text)
        self.assert_forwarded(b.recv_msgid(ONE_CHAT), sent, a)

    def test_offline_many(self):
        n = 1500        # above max_offline_per_login (1000)
        a = self.srv.user("many")
        bid, _ = self.srv.register("many")
        payload = b"".join(chatlib.seed_bytes(
            {"id": a.id, "msg": "m%04d" % i, "msgid": 6, "name": a.name,
             "time": chatlib.now_str(), "toid": bid}) for i in range(n))
        a.c.send_raw(payload)
        self.assertEqual(a.c.sync(timeout=60), [])
        b = self.srv.client()
        r = b.login(bid, "pw")
        got = [m["msg"] for m in r["offlinemsg"]]
        self.assertLessEqual(len(got), 1000)
        self.assertNotIn("offlinemore", r)     # the seed client never asked
        # one batch per login for a client that does not acknowledge:
        # nothing follows the login answer, the rest waits
        b.expect_none(0.5)
        for _ in range(5):
            if len(got) >= n:
                break
            b.loginout(bid)
            r = b.login(bid, "pw")
            self.assertGreater(len(r["offlinemsg"]), 0)
            got += [m["msg"] for m in r["offlinemsg"]]
            b.expect_none(0.3)
        self.assertEqual(got, ["m%04d" % i for i in range(n)])
        b.loginout(bid)
        r = b.login(bid, "pw")
        self.assertEqual(r["offlinemsg"], [])
        b.expect_none(0.3)

    def test_offline_backlog_megabytes(self):
        """A backlog larger than max_output_bytes (4m by default): 250
        messages of 20 KB.  The user can still log in and gets them all."""
        n = 250
        a = self.srv.user("mb")
        bid, _ = self.srv.register("mb")
        body = "y" * 20000
        payload = b"".join(chatlib.seed_bytes(
            {"id": a.id, "msg": "%04d" % i + body, "msgid": 6,
             "name": a.name, "time": chatlib.now_str(), "toid": bid})
            for i in range(n))
        a.c.send_raw(payload)
        self.assertEqual(a.c.sync(timeout=60), [])
        b = self.srv.client()
        try:
            r = b.login(bid, "pw")
        except chatlib.Closed:
            self.fail("login with a %.1f MB offline backlog: the server "
                      "closed the connection instead of answering"
                      % (n * 20000 / 1e6))
        got = [m["msg"] for m in r["offlinemsg"]]
        logins = 1
        while len(got) < n and logins < 20:
            b.expect_none(0.2)  # one batch per login, nothing after it
            b.loginout(bid)
            r = b.login(bid, "pw")
            logins += 1
            self.assertGreater(len(r["offlinemsg"]), 0)
            got += [m["msg"] for m in r["offlinemsg"]]
        self.assertEqual([g[:4] for g in got], ["%04d" % i for i in range(n)])
        self.assertTrue(all(g[4:] == body for g in got))
        b.expect_none(0.3)

    # ---- server message ids and acknowledgements ----------------------

    def test_smid_on_every_chat(self):
        """Plain chats, one-to-one and group, live and offline, carry an
        integer "smid", a different one each, beside the seed's fields."""
        a, b = self.srv.users_on_two_workers("sm")
        cid, _ = self.srv.register("sm")
        gid = self.group_of(a, b, "smg")
        smids = []
        sent = a.chat(b.id, "live one")
        got = b.c.recv_msgid(ONE_CHAT)
        self.assert_forwarded(got, sent, a)
        smids.append(got["smid"])
        sent = a.groupchat(gid, "live group")
        got = b.c.recv_msgid(GROUP_CHAT)
        self.assert_forwarded(got, sent, a)
        smids.append(got["smid"])
        sent = a.chat(cid, "stored one")
        self.quiet(a)
        r = self.srv.client().login(cid, "pw")
        self.assertEqual(len(r["offlinemsg"]), 1)
        self.assert_forwarded(r["offlinemsg"][0], sent, a)
        smids.append(r["offlinemsg"][0]["smid"])
        sent = a.chat(b.id, "acknowledged", cmid=7)
        ack = a.c.recv_msgid(103)
        got = b.c.recv_msgid(ONE_CHAT)
        self.assertEqual(got["smid"], ack["smid"])
        smids.append(got["smid"])
        # a smid sent by a client is replaced
        a.chat(b.id, "forged", smid=smids[0])
        got = b.c.recv_msgid(ONE_CHAT)
        smids.append(got["smid"])
        for v in smids:
            self.assertIs(type(v), int)
            self.assertGreater(v, 0)
        self.assertEqual(len(set(smids)), len(smids), smids)

    def _login_acks(self, c, uid):
        c.send_obj({"acks": True, "id": uid, "msgid": 1, "password": "pw"})
        c.last = chatlib.parse_login(c.recv_msgid(LOGIN_ACK))
        return c.last.get("errno") == 0

    def test_acks_client(self):
        """A client that logged in with "acks":true keeps an
        acknowledged chat stored until it says RECEIVED (121)."""
        a = self.srv.user("ka")
        bid, _ = self.srv.register("kb")
        b1 = self.srv.client()
        self.assertTrue(self._login_acks(b1, bid))
        a.chat(bid, "keep me", cmid=1)
        s1 = a.c.recv_msgid(103)["smid"]
        self.assertEqual(b1.recv_msgid(ONE_CHAT)["smid"], s1)
        b1.ping()           # written and read, but not acknowledged
        b1.close()
        b2 = self.srv.client()
        self.assertTrue(chatlib.wait_for(lambda: self._login_acks(b2, bid),
                                         5))
        self.assertEqual([m["smid"] for m in b2.last["offlinemsg"]], [s1])
        self.assertFalse(b2.last["offlinemore"])
        b2.send_obj({"msgid": 106, "upto": b2.last["offlineupto"]})
        a.chat(bid, "and me", cmid=2)
        s2 = a.c.recv_msgid(103)["smid"]
        self.assertEqual(b2.recv_msgid(ONE_CHAT)["smid"], s2)
        b2.send_obj({"msgid": 121, "smids": [s2, 12345]})
        self.assertEqual(b2.sync(), [])
        b2.close()
        b3 = self.srv.client()
        self.assertTrue(chatlib.wait_for(lambda: self._login_acks(b3, bid),
                                         5))
        self.assertEqual(b3.last["offlinemsg"], [])
        # RECEIVED without "acks" at login: refused
        a.c.send_obj({"msgid": 121, "smids": [s2]})
        self.assertEqual(a.c.recv_msgid(ERROR)["errno"],
                         chatlib.ERR_NOT_ALLOWED)
        # a bad list: an error answer, the connection goes on
        for bad, code in (([], chatlib.ERR_BAD_VALUE),
                          (["x"], chatlib.ERR_WRONG_TYPE),
                          (5, chatlib.ERR_WRONG_TYPE)):
            b3.send_obj({"msgid": 121, "smids": bad})
            self.assertEqual(b3.recv_msgid(ERROR)["errno"], code)
        self.assertEqual(b3.sync(), [])

    # ---- text ------------------------------------------------------

    def test_text_round_trip(self):
        a, b = self.srv.users_on_two_workers("txt")
        cid, _ = self.srv.register("txt")
        for t in TEXTS:
            sent = a.chat(b.id, t)
            got = b.c.recv_msgid(ONE_CHAT)
            self.assertEqual(got["msg"], t)
            self.assert_forwarded(got, sent, a)
            a.chat(cid, t)
        # the same texts with every non-ASCII character escaped
        for t in TEXTS:
            a.c.send_raw(json.dumps(
                {"id": a.id, "msg": t, "msgid": 6, "name": a.name,
                 "time": "t", "toid": b.id},
                sort_keys=True, separators=(",", ":")).encode() + b"\0")
            self.assertEqual(b.c.recv_msgid(ONE_CHAT)["msg"], t)
        self.quiet(a)
        r = self.srv.client().login(cid, "pw")
        self.assertEqual([m["msg"] for m in r["offlinemsg"]], TEXTS)

    def test_names_round_trip(self):
        tricky = ["Zo\u00eb \"q\" \\ \U0001F600 %s%n '; --",
                  "\u4e2d\u6587\u540d\u5b57",
                  "a/b<c>&d"]
        users = []
        for t in tricky:
            name = t + unique("")
            c = self.srv.client()
            uid = c.register(name, "p\u00e4ss \U0001F511 %s")
            r = c.login(uid, "p\u00e4ss \U0001F511 %s")
            self.assertEqual(r["name"], name)
            users.append(chatlib.User(self.srv, c, uid, name,
                                      "p\u00e4ss \U0001F511 %s"))
        a, b = users[0], users[1]
        a.c.addfriend(a.id, b.id)
        gname = "\U0001F465 grp \"x\" \\ %d '; " + unique("")
        gdesc = "desc \u00e9 \U0001F600 \"\\\" %s\n\ttab"
        a.c.creategroup(a.id, gname, gdesc)
        self.quiet(a)
        r = a.relogin()
        self.assertEqual(find(r["friends"], id=b.id)["name"], b.name)
        g = find(r["groups"], groupname=gname)
        self.assertIsNotNone(g, r["groups"])
        self.assertEqual(g["groupdesc"], gdesc)
        self.assertEqual(find(g["users"], id=a.id)["name"], a.name)
        sent = a.chat(b.id, "hi")
        self.assert_forwarded(b.c.recv_msgid(ONE_CHAT), sent, a)

    def test_forward_keeps_fields(self):
        a, b = self.srv.users_on_two_workers("fw")
        cid, _ = self.srv.register("fw")
        extra = {"time": "2024-05-06 07:08:09",
                 "custom": {"k": [1, "two", None, True, 2.5]},
                 "i": 7, "neg": -3, "big": 9007199254740993,
                 "b": False, "nul": None, "s": "str", "e": 1e300,
                 "arr": [], "obj": {}}
        # "f": 1.50 written literally
        for to in (b.id, cid):
            o = {"id": a.id, "msg": "fields", "msgid": 6,
                 "name": "somebody else", "toid": to, "f": "@F@"}
            o.update(extra)
            raw = chatlib.seed_bytes(o).replace(b'"@F@"', b"1.50")
            a.c.send_raw(raw)
        o["f"] = 1.5
        o["toid"] = b.id
        got = b.c.recv_msgid(ONE_CHAT)
        self.assertIs(type(got["f"]), float, got)
        self.assertEqual(got["name"], a.name)
        self.assert_forwarded(got, o, a)
        # without id, name and time
        a.c.send_obj({"msg": "bare", "msgid": 6, "toid": b.id})
        got = b.c.recv_msgid(ONE_CHAT)
        self.assertEqual((got["id"], got["name"], got["msg"]),
                         (a.id, a.name, "bare"))
        self.quiet(a)
        # offline: the same
        r = self.srv.client().login(cid, "pw")
        o["toid"] = cid
        self.assertEqual(len(r["offlinemsg"]), 1)
        self.assertIs(type(r["offlinemsg"][0]["f"]), float)
        self.assert_forwarded(r["offlinemsg"][0], o, a)
        # group chat, with a wrong name and a custom field
        gid = self.group_of(a, b, "fwg")
        sent = a.groupchat(gid, "g", name="not a", f2=0.25, tag={"x": 1})
        self.assert_forwarded(b.c.recv_msgid(GROUP_CHAT), sent, a)

    def test_forward_sets_time(self):
        """Forwarded and offline chats always carry a string "time" of
        the seed's form; a string the sender wrote is kept as it is."""
        def is_seed_time(t):
            self.assertIsInstance(t, str)
            st = time.mktime(time.strptime(t, "%Y-%m-%d %H:%M:%S"))
            self.assertLess(abs(st - time.time()), 60, t)

        a, b = self.srv.users_on_two_workers("tm")
        for bad in (None, 5, 1.5, [1], {"t": "x"}, True, "@ABSENT@"):
            o = {"id": a.id, "msg": "t", "msgid": 6, "name": a.name,
                 "time": bad, "toid": b.id}
            if bad == "@ABSENT@":
                del o["time"]
            a.c.send_raw(chatlib.seed_bytes(o))
            got = b.c.recv_msgid(ONE_CHAT)
            is_seed_time(got["time"])
            self.assertEqual((got["id"], got["name"], got["msg"]),
                             (a.id, a.name, "t"))
        # kept as written when it is a string, even an odd one
        a.chat(b.id, "k", time="yesterday")
        self.assertEqual(b.c.recv_msgid(ONE_CHAT)["time"], "yesterday")
        # acknowledged chats and group chats too
        a.c.send_obj({"msgid": 6, "toid": b.id, "msg": "ack", "cmid": 1})
        self.assertEqual(a.c.recv()["msgid"], chatlib.CHAT_ACK)
        is_seed_time(b.c.recv_msgid(ONE_CHAT)["time"])
        gid = self.group_of(a, b, "tmg")
        a.c.send_obj({"msgid": 10, "groupid": gid, "msg": "g", "time": 0})
        is_seed_time(b.c.recv_msgid(GROUP_CHAT)["time"])
        # offline: stored with its time
        cid, _ = self.srv.register("tm")
        a.c.send_obj({"msgid": 6, "toid": cid, "msg": "off"})
        self.quiet(a)
        r = self.srv.client().login(cid, "pw")
        self.assertEqual(len(r["offlinemsg"]), 1)
        is_seed_time(r["offlinemsg"][0]["time"])

    # ---- identity --------------------------------------------------

    def test_spoofed_id_refused(self):
        a = self.srv.user("sp")
        b = self.srv.user("sp")
        c = self.srv.user("sp")
        gname = unique("spg")
        b.c.creategroup(b.id, gname, "")
        self.quiet(b)
        gid = find(b.relogin()["groups"], groupname=gname)["id"]
        c.c.addgroup(c.id, gid)
        self.quiet(c)
        spoofs = [
            ("chat", {"id": b.id, "msg": "I am b", "msgid": 6,
                      "name": b.name, "time": "t", "toid": c.id}),
            ("addfriend", {"friendid": c.id, "id": b.id, "msgid": 7}),
            ("creategroup", {"groupdesc": "", "groupname": unique("spx"),
                             "id": b.id, "msgid": 8}),
            ("addgroup", {"groupid": gid, "id": b.id, "msgid": 9}),
            ("groupchat", {"groupid": gid, "id": b.id, "msg": "I am b",
                           "msgid": 10, "name": b.name, "time": "t"}),
            ("loginout", {"id": b.id, "msgid": 3}),
        ]
        for what, req in spoofs:
            a.c.send_obj(req)
            m = a.c.recv()
            self.assert_error(m, 18)
            self.assertEqual(m.get("refmsgid", req["msgid"]), req["msgid"],
                             what)
        c.c.expect_none(0.3)
        b.c.expect_none(0.1)
        # nothing happened: no friendship, no group, no membership
        rb = b.relogin()
        self.assertEqual(rb["friends"], [])
        self.assertEqual([g["groupname"] for g in rb["groups"]], [gname])
        self.assertEqual(sorted(u["id"] for u in rb["groups"][0]["users"]),
                         sorted([b.id, c.id]))
        self.assertIsNone(find(a.relogin()["groups"],
                               groupname=spoofs[2][1]["groupname"]))
        # a and b are both still logged in
        sent = a.chat(b.id, "still a")
        self.assert_forwarded(b.c.recv_msgid(ONE_CHAT), sent, a)
        sent = b.chat(a.id, "still b")
        self.assert_forwarded(a.c.recv_msgid(ONE_CHAT), sent, b)

    def test_before_login(self):
        bid, _ = self.srv.register("bl")
        c = self.srv.client()
        reqs = [
            {"id": bid, "msg": "x", "msgid": 6, "name": "n", "time": "t",
             "toid": bid},
            {"friendid": bid, "id": bid, "msgid": 7},
            {"groupdesc": "", "groupname": unique("bl"), "id": bid,
             "msgid": 8},
            {"groupid": 1, "id": bid, "msgid": 9},
            {"groupid": 1, "id": bid, "msg": "x", "msgid": 10, "name": "n",
             "time": "t"},
            {"id": bid, "msgid": 3},
        ]
        for req in reqs:
            c.send_obj(req)
            self.assert_error(c.recv(), 17)
        # REG and LOGIN still work on this connection
        uid = c.register(unique("bl"), "pw")
        c.login(uid, "pw")
        r = self.srv.client().login(bid, "pw")
        self.assertEqual(r["offlinemsg"], [])

    # ---- the client ------------------------------------------------

    def test_chatc_script(self):
        chatc = chatlib.chatc_bin()
        if not os.access(chatc, os.X_OK):
            self.fail("chatc not found: %s (set CHATC_BIN)" % chatc)
        port = str(self.srv.port)
        name = unique("cc")
        out = chatlib.run([chatc, "-p", port, "-s"],
                          input=("register:%s:secret pw\nquit\n" %
                                 name).encode())
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.decode().splitlines()
        self.assertEqual(len(lines), 1, out.stdout)
        r = json.loads(lines[0])
        self.assertEqual((r["msgid"], r["errno"]), (5, 0), r)
        uid = r["id"]
        peer = self.srv.user("ccpeer")
        p = subprocess.Popen([chatc, "-h", "127.0.0.1", "-p", port, "-s",
                              "-w", "300"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        p.stdin.write(("login:%d:secret pw\nchat:%d:hello: from chatc "
                       "\U0001F600\nsleep:3\nquit\n" %
                       (uid, peer.id)).encode())
        p.stdin.close()
        p.stdin = None
        m = peer.c.recv_msgid(ONE_CHAT)
        self.assertEqual((m["id"], m["name"], m["msg"]),
                         (uid, name, "hello: from chatc \U0001F600"))
        self.assertIsInstance(m["time"], str)
        peer.chat(uid, "answer \"quoted\" \\")
        try:
            stdout, stderr = p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        self.assertEqual(p.returncode, 0, stderr)
        got = [json.loads(l) for l in stdout.decode().splitlines()]
        self.assertEqual([g["msgid"] for g in got], [2, 6], stdout)
        self.assertEqual(got[0]["errno"], 0)
        self.assertEqual(got[1]["msg"], "answer \"quoted\" \\")
        # a refused connection: non-zero exit
        out = chatlib.run([chatc, "-p", str(chatlib.free_port()), "-s"],
                          input=b"quit\n")
        self.assertNotEqual(out.returncode, 0)
        self.assertTrue(out.stderr)
        # the server closes the connection mid-script: the error answer is
        # printed, then chatc stops at once with a non-zero status
        t0 = time.monotonic()
        out = chatlib.run([chatc, "-p", port, "-s"],
                          input=b"raw:hello\nsleep:5\nraw:{\"msgid\":101}\n")
        self.assertLess(time.monotonic() - t0, 4)
        self.assertNotEqual(out.returncode, 0)
        self.assertEqual(json.loads(out.stdout.splitlines()[0])["errno"], 10)
        self.assertIn(b"closed", out.stderr)

    def test_chatc_interactive(self):
        chatc = chatlib.chatc_bin()
        port = str(self.srv.port)
        name = unique("ci")
        out = chatlib.run([chatc, "-p", port],
                          input=("2\n%s\npw\n3\n" % name).encode())
        self.assertEqual(out.returncode, 0, out.stderr)
        m = re.search(rb"user id is (\d+)", out.stdout)
        self.assertIsNotNone(m, out.stdout)
        uid = int(m.group(1))
        peer = self.srv.user("cipeer")
        peer.chat(uid, "offline \x1b[31m hello")
        self.quiet(peer)
        out = chatlib.run([chatc, "-p", port],
                          input=("1\n%d\npw\nchat:%d:hi there\nloginout\n"
                                 "3\n" % (uid, peer.id)).encode())
        self.assertEqual(out.returncode, 0, out.stderr)
        text = out.stdout.decode()
        self.assertIn("%s(%d) said: offline \\x1b[31m hello" %
                      (peer.name, peer.id), text)
        self.assertNotIn("\x1b", text)
        m = peer.c.recv_msgid(ONE_CHAT)
        self.assertEqual((m["id"], m["name"], m["msg"]),
                         (uid, name, "hi there"))

    def test_chatc_sends_seed_requests(self):
        """chatc's requests byte for byte, against a fake server."""
        chatc = chatlib.chatc_bin()
        if not os.access(chatc, os.X_OK):
            self.fail("chatc not found: %s (set CHATC_BIN)" % chatc)
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        ls.settimeout(10)
        got = []

        def serve():
            s, _ = ls.accept()
            s.settimeout(10)
            data = b""
            while data.count(b"\0") < 1:
                data += s.recv(65536)
            s.sendall(b'{"msgid":2,"errno":0,"id":7,"name":"bob \\"b\\""}\n')
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            got.append(data)
            s.close()
        t = threading.Thread(target=serve)
        t.start()
        script = ("login:7:pw\nchat:9:hi: there \u00e9 a/b \"q\" \\ \t\x01"
                  "\x1f\x7f \U0001F600\naddfriend:9\n"
                  "creategroup:g1:a desc: yes\naddgroup:3\n"
                  "groupchat:3:to all\nraw:{\"msgid\":101}\nloginout\n"
                  "quit\n")
        # -R: no resume token asked for, the seed's requests exactly
        out = chatlib.run([chatc, "-R", "-p", str(ls.getsockname()[1]),
                           "-s", "-w", "100"], input=script.encode())
        t.join(15)
        ls.close()
        self.assertEqual(out.returncode, 0, out.stderr)
        reqs = got[0].split(b"\0")
        self.assertEqual(reqs[-1], b"")
        reqs = reqs[:-1]
        objs = [json.loads(r) for r in reqs]
        for r, o in zip(reqs, objs):
            if o.get("msgid") != 101:
                self.assertEqual(r, chatlib.seed_bytes(o)[:-1])
        self.assertEqual(objs[0], {"id": 7, "msgid": 1, "password": "pw"})
        tm = objs[1].pop("time")
        time.strptime(tm, "%Y-%m-%d %H:%M:%S")
        self.assertEqual(objs[1], {"id": 7, "msg": "hi: there \u00e9 a/b "
                                   "\"q\" \\ \t\x01\x1f\x7f \U0001F600",
                                   "msgid": 6, "name": "bob \"b\"",
                                   "toid": 9})
        self.assertEqual(objs[2], {"friendid": 9, "id": 7, "msgid": 7})
        self.assertEqual(objs[3], {"groupdesc": "a desc: yes",
                                   "groupname": "g1", "id": 7, "msgid": 8})
        self.assertEqual(objs[4], {"groupid": 3, "id": 7, "msgid": 9})
        objs[5].pop("time")
        self.assertEqual(objs[5], {"groupid": 3, "id": 7, "msg": "to all",
                                   "msgid": 10, "name": "bob \"b\""})
        self.assertEqual(reqs[6], b'{"msgid":101}')
        self.assertEqual(objs[7], {"id": 7, "msgid": 3})
        self.assertEqual(len(objs), 8)
        self.assertEqual(out.stdout,
                         b'{"msgid":2,"errno":0,"id":7,"name":"bob \\"b\\""}\n')


class StoreDown(unittest.TestCase):
    """A chat the store cannot take is answered with errno 24, never
    dropped silently; live chats go on meanwhile."""

    def test_store_locked(self):
        import sqlite3
        with chatlib.Server(workers=1,
                            extra={"sqlite_busy_timeout_ms": 100}) as srv:
            a = srv.user("sd")
            c = srv.user("sd")
            bid, _ = srv.register("sd")
            gid = None
            a.c.creategroup(a.id, unique("sdg"), "")
            self.assertEqual(a.c.sync(), [])
            gid = a.relogin()["groups"][0]["id"]
            c.c.addgroup(c.id, gid)
            b = srv.client()
            b.login(bid, "pw")
            b.addgroup(bid, gid)
            self.assertEqual(b.sync(), [])
            b.close()
            self.assertTrue(wait_offline(srv, bid))
            a.chat(c.id, "before")      # this worker has its ids now
            self.assertIn("smid", c.c.recv_msgid(ONE_CHAT))
            db = sqlite3.connect(srv.keys["storage"][len("sqlite:"):],
                                 timeout=0, isolation_level=None)
            db.execute("BEGIN EXCLUSIVE")
            try:
                a.chat(bid, "to someone away")
                e = a.c.recv_msgid(ERROR, timeout=15)
                self.assertEqual((e["errno"], e["refmsgid"]),
                                 (chatlib.ERR_UNAVAILABLE, ONE_CHAT))
                a.groupchat(gid, "to a group with someone away")
                e = a.c.recv_msgid(ERROR, timeout=15)
                self.assertEqual((e["errno"], e["refmsgid"]),
                                 (chatlib.ERR_UNAVAILABLE, GROUP_CHAT))
                self.assertEqual(c.c.recv_msgid(GROUP_CHAT)["msg"],
                                 "to a group with someone away")
                a.chat(c.id, "live while the store is locked")
                got = c.c.recv_msgid(ONE_CHAT)
                self.assertEqual(got["msg"], "live while the store is locked")
                self.assertIs(type(got["smid"]), int)
            finally:
                db.execute("ROLLBACK")
                db.close()
            self.assertEqual(a.c.sync(), [])
            r = srv.client().login(bid, "pw")
            self.assertEqual(r["offlinemsg"], [])


class BoundedLogin(unittest.TestCase):
    """A user in many large groups can always log in: member lists are
    cut to fit max_output_bytes (here 8 KiB) and paged with 110."""

    def test_bounded_login_reply(self):
        with chatlib.Server(workers=1,
                            extra={"max_output_bytes": "8k"}) as srv:
            users = []
            for _ in range(20):
                name = unique("bl") + "x" * 40    # long names: big lists
                c = srv.client()
                uid = c.register(name, "pw")
                c.login(uid, "pw")
                users.append((uid, c))
            owner, oc = users[0]
            gids = []
            for i in range(3):
                gname = unique("blg")
                oc.creategroup(owner, gname, "d")
                self.assertEqual(oc.sync(), [])
                oc.loginout(owner)
                r = oc.login(owner, "pw")
                gids.append(find(r["groups"], groupname=gname)["id"])
            for uid, c in users[1:]:
                for gid in gids:
                    c.addgroup(uid, gid)
                self.assertEqual(c.sync(), [])
            # the way the seed client reads: the answer is one line
            oc.loginout(owner)
            oc.send_obj({"id": owner, "msgid": 1, "password": "pw"})
            line = oc.recv_line()
            self.assertLess(len(line), 8 * 1024)
            r = chatlib.parse_login(json.loads(line))
            self.assertEqual(r["errno"], 0)
            self.assertEqual(sorted(g["id"] for g in r["groups"]), gids)
            for g in r["groups"]:
                self.assertEqual(g["userstotal"], 20)
                self.assertGreater(len(g["users"]), 0)
                self.assertLess(len(g["users"]), 20)
            # and the rest, page by page
            want = sorted(u for u, _ in users)
            got, offset = [], 0
            for _ in range(25):
                oc.send_obj({"msgid": 110, "groupid": gids[0],
                             "offset": offset, "limit": 8})
                line = oc.recv_line()
                self.assertLess(len(line), 8 * 1024)
                p = json.loads(line)
                self.assertEqual((p["msgid"], p["offset"], p["total"]),
                                 (111, offset, 20))
                got += [m["id"] for m in p["members"]]
                offset += len(p["members"])
                if offset >= p["total"]:
                    break
            self.assertEqual(sorted(got), want)
            self.assertEqual(oc.sync(), [])


def wait_offline(srv, uid, timeout=5.0):
    """Wait until the server treats uid as offline: a fresh login works
    (then log out again).  Returns True when it did."""
    c = srv.client()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r = c.login_raw(uid, "pw")
            if r["errno"] == 0:
                c.loginout(uid)
                c.sync()
                return True
            time.sleep(0.05)
        return False
    finally:
        c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
