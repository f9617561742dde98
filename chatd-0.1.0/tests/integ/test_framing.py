#!/usr/bin/env python3
"""Framing: a request ends where its JSON value ends, whatever separates
requests and however the bytes are cut into reads; replies are one JSON
object per line."""

import json
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
from chatlib import (ERROR, LOGIN_ACK, ONE_CHAT, PONG, REG_ACK,  # noqa: E402
                     WHOAMI_ACK, unique)

MAX_FRAME = 4096
MAX_MSG = 3000


def compact(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def ping(seq, **extra):
    o = {"msgid": 101, "seq": seq}
    o.update(extra)
    return compact(o)


def ping_of_size(size, seq):
    """A ping request of exactly size bytes."""
    base = len(ping(seq, pad=""))
    raw = ping(seq, pad="x" * (size - base))
    assert len(raw) == size, (len(raw), size)
    return raw


class Framing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = chatlib.Server(workers=2,
                                 extra={"max_frame_bytes": MAX_FRAME,
                                        "max_message_bytes": MAX_MSG})
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    def expect_pongs(self, c, seqs):
        for s in seqs:
            m = c.recv()
            self.assertEqual((m["msgid"], m.get("seq")), (PONG, s), m)

    def test_separators(self):
        c = self.srv.client()
        seps = [b"\0", b"\n", b"\r\n", b" ", b"\t", b"\n\n\t  \0\0\r\n ",
                b"\0\0\0\0", b""]
        seq = 0
        for sep in seps:
            # three requests in one send, separated by sep, sep at the end
            data = b""
            seqs = []
            for _ in range(3):
                seq += 1
                seqs.append(seq)
                data += ping(seq) + sep
            c.send_raw(data)
            self.expect_pongs(c, seqs)
        # separators before the first request and on their own
        c.send_raw(b"\0\n \r\n\t")
        c.expect_none(0.2)
        c.send_raw(b"  \0" + ping(1000))
        self.expect_pongs(c, [1000])
        # a long run of separators is not a request
        c.send_raw(b" \0\n" * (3 * MAX_FRAME))
        c.send_raw(ping(1001) + b"\0")
        self.expect_pongs(c, [1001])
        c.expect_none(0.2)

    def test_seed_requests_back_to_back(self):
        """Real seed requests, every kind of separator, and none at all."""
        c = self.srv.client()
        n1, n2 = unique("bb"), unique("bb")
        reg1 = compact({"msgid": 4, "name": n1, "password": "pw"})
        reg2 = compact({"msgid": 4, "name": n2, "password": "pw"})
        c.send_raw(reg1 + reg2)            # nothing between them
        r1, r2 = c.recv_msgid(REG_ACK), c.recv_msgid(REG_ACK)
        self.assertEqual((r1["errno"], r2["errno"]), (0, 0))
        self.assertEqual(r2["id"], r1["id"] + 1)
        c.send_raw(compact({"id": r1["id"], "msgid": 1, "password": "pw"})
                   + b"\r\n" + ping(7) + b"\n")
        self.assertEqual(c.recv_msgid(LOGIN_ACK)["errno"], 0)
        self.expect_pongs(c, [7])

    def test_pretty_printed(self):
        c = self.srv.client()
        name = unique("pretty")
        req = {"msgid": 4, "name": name, "password": "pw"}
        c.send_raw(json.dumps(req, indent=4).encode() + b"\n")
        uid = c.recv_msgid(REG_ACK)["id"]
        login = {"id": uid, "msgid": 1, "password": "pw"}
        text = json.dumps(login, indent="\t").replace("\n", "\r\n")
        c.send_raw(b"\r\n\r\n" + text.encode() + b"\r\n\r\n")
        r = chatlib.parse_login(c.recv_msgid(LOGIN_ACK))
        self.assertEqual((r["errno"], r["id"], r["name"]), (0, uid, name))
        # pretty with nested values and spaces everywhere
        c.send_raw(b'{\n  "msgid" :\n 101 ,\n "seq" : 5 ,\n "x" : [ 1 ,\n'
                   b' { "y" : "a\\nb" } ]\n}\n')
        self.expect_pongs(c, [5])

    def test_split_byte_by_byte(self):
        a, b = self.srv.users_on_two_workers("split")
        text = "split \u00e9\U0001F600 \\u00e9 \"q\" end"
        raw = chatlib.seed_bytes({"id": a.id, "msg": text, "msgid": 6,
                                  "name": a.name, "time": "t",
                                  "toid": b.id})
        # also cut inside an escape sequence: write it escaped
        raw2 = json.dumps({"id": a.id, "msg": text, "msgid": 6,
                           "toid": b.id}).encode() + b"\0"
        for data in (raw, raw2):
            for i in range(len(data)):
                a.c.send_raw(data[i:i + 1])
                if i % 4 == 0:
                    time.sleep(0.001)
            m = b.c.recv_msgid(ONE_CHAT)
            self.assertEqual(m["msg"], text)
            self.assertEqual(m["id"], a.id)
        # a login split over a few reads with pauses
        c = self.srv.client()
        uid = c.register(unique("split"), "pw")
        data = compact({"id": uid, "msgid": 1, "password": "pw"}) + b"\0"
        for part in (data[:1], data[1:9], data[9:10], data[10:-3],
                     data[-3:]):
            c.send_raw(part)
            time.sleep(0.05)
        self.assertEqual(c.recv_msgid(LOGIN_ACK)["errno"], 0)

    def test_pipelined_in_order(self):
        c = self.srv.client()
        data = b""
        expect = []
        for i in range(300):
            k = i % 5
            if k == 0:
                # goes through the password hashing threads
                data += compact({"msgid": 4, "name": unique("pipe"),
                                 "password": "pw"}) + b"\0"
                expect.append((REG_ACK, None))
            elif k == 1:
                data += ping(i) + b"\0"
                expect.append((PONG, i))
            elif k == 2:
                data += b'{"msgid":104}\n'
                expect.append((WHOAMI_ACK, None))
            elif k == 3:
                data += b'{"msgid":101,"seq":' + str(i).encode() + b'}'
                expect.append((PONG, i))
            else:
                data += compact({"friendid": 1, "id": 1, "msgid": 7}) + b" "
                expect.append((ERROR, None))    # not logged in
        c.send_raw(data)
        got = []
        for _ in expect:
            m = c.recv(timeout=20)
            got.append((m["msgid"], m.get("seq")))
        self.assertEqual(got, expect)
        c.expect_none(0.2)

    def test_pipelined_logins_and_chats(self):
        """A login followed at once by chats: they run after the login."""
        b = self.srv.user("pl")
        c = self.srv.client()
        name = unique("pl")
        uid = c.register(name, "pw")
        data = compact({"id": uid, "msgid": 1, "password": "pw"}) + b"\0"
        for i in range(20):
            data += chatlib.seed_bytes({"id": uid, "msg": "p%d" % i,
                                        "msgid": 6, "name": name,
                                        "time": "t", "toid": b.id})
        c.send_raw(data)
        self.assertEqual(c.recv_msgid(LOGIN_ACK)["errno"], 0)
        got = [b.c.recv_msgid(ONE_CHAT)["msg"] for _ in range(20)]
        self.assertEqual(got, ["p%d" % i for i in range(20)])
        c.expect_none(0.2)

    def test_frame_at_limit(self):
        c = self.srv.client()
        c.send_raw(ping_of_size(MAX_FRAME, 1) + b"\0")
        self.expect_pongs(c, [1])
        # at the limit, split in two sends
        raw = ping_of_size(MAX_FRAME, 2)
        c.send_raw(raw[:MAX_FRAME // 2])
        time.sleep(0.05)
        c.send_raw(raw[MAX_FRAME // 2:])
        self.expect_pongs(c, [2])
        # a chat at the limit reaches a user on another worker, with the
        # real (longer) name put in
        a, b = self.srv.users_on_two_workers("lim")
        base = {"id": a.id, "msg": "m" * MAX_MSG, "msgid": 6, "name": "",
                "pad": "", "time": "t", "toid": b.id}
        room = MAX_FRAME - len(compact(base))
        base["pad"] = "p" * room
        raw = compact(base)
        self.assertEqual(len(raw), MAX_FRAME)
        a.c.send_raw(raw + b"\0")
        m = b.c.recv_msgid(ONE_CHAT)
        self.assertEqual(m["msg"], base["msg"])
        self.assertEqual(m["pad"], base["pad"])
        self.assertEqual(m["name"], a.name)
        # one byte more text than max_message_bytes: errno 16
        base["msg"] += "m"
        base["pad"] = base["pad"][:-1]
        a.c.send_raw(compact(base) + b"\0")
        m = a.c.recv()
        self.assertEqual((m["msgid"], m["errno"]), (ERROR, 16), m)
        b.c.expect_none(0.2)
        a.c.expect_none(0.2)

    def test_frame_over_limit(self):
        for size in (MAX_FRAME + 1, MAX_FRAME * 4):
            c = self.srv.client()
            c.send_raw(ping(1) + b"\0")
            self.expect_pongs(c, [1])
            try:
                c.send_raw(ping_of_size(size, 2) + b"\0" + ping(3))
            except OSError:
                pass        # closed while we were still writing
            m = c.recv()
            self.assertEqual((m["msgid"], m["errno"]), (ERROR, 26), m)
            self.assertTrue(c.wait_closed(), "still open after errno 26")
            self.assertEqual(list(c.lines), [], "answered after errno 26")
        # over the limit, arriving in small pieces
        c = self.srv.client()
        raw = ping_of_size(MAX_FRAME + 100, 4)
        try:
            for i in range(0, len(raw), 512):
                c.send_raw(raw[i:i + 512])
                time.sleep(0.005)
        except OSError:
            pass
        m = c.recv()
        self.assertEqual((m["msgid"], m["errno"]), (ERROR, 26), m)
        self.assertTrue(c.wait_closed())
        # a megabyte: closed without reading it all
        c = self.srv.client()
        try:
            c.send_raw(b'{"msgid":101,"pad":"' + b"y" * (1 << 20))
        except OSError:
            pass
        self.assertTrue(c.wait_closed())
        # the server is fine
        self.expect_pongs(self._pinged(), [9])

    def _pinged(self):
        c = self.srv.client()
        c.send_raw(ping(9))
        return c

    def test_reply_lines(self):
        """Every reply: one JSON object, then "\\n", nothing else."""
        a, b = self.srv.users_on_two_workers("lines")
        a.c.addfriend(a.id, b.id)
        a.c.creategroup(a.id, unique("lines"), "d\ne\u00e9")
        a.c.send_raw(b'{"msgid":}')                 # an error
        a.c.send_raw(b'{"msgid":999}')              # another
        self.assertEqual(a.c.recv()["errno"], 10)
        self.assertEqual(a.c.recv()["errno"], 12)
        a.chat(b.id, "multi\nline\r\ntext\x00\U0001F600")
        b.c.recv_msgid(ONE_CHAT)
        a.relogin()
        a.c.whoami()
        a.c.sync()
        b.c.sync()
        for c in (a.c, b.c):
            stream = b"".join(c.raw_log)
            self.assertTrue(stream.endswith(b"\n"))
            lines = stream.split(b"\n")[:-1]
            self.assertEqual(len(lines), len(c.raw_log))
            for line in lines:
                self.assertTrue(line.startswith(b"{") and
                                line.endswith(b"}"), line[:100])
                self.assertNotIn(b"\0", line)
                self.assertNotIn(b"\r", line)
                m = json.loads(line.decode("utf-8"))
                self.assertIsInstance(m, dict)
                self.assertIs(type(m.get("msgid")), int, line[:100])


if __name__ == "__main__":
    unittest.main(verbosity=2)
