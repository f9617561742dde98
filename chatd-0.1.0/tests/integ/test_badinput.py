#!/usr/bin/env python3
"""Hostile input: every bad request gets an error answer (or, for garbage
that cannot be resynchronised, the connection is closed), and nothing a
client sends disturbs anybody else or kills a process."""

import json
import os
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
from chatlib import (ERROR, LOGIN_ACK, ONE_CHAT, PONG, REG_ACK,  # noqa: E402
                     unique)


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = chatlib.Server(workers=2)
        cls.srv.start()
        # an ordinary pair of users on one worker, chatting throughout
        cls.x, cls.y = cls.srv.users_on_one_worker(2, "pair")
        cls.slot = cls.x.c.whoami()
        cls.master = cls.srv.pid
        cls.workers = cls.srv.worker_pids()
        cls.round = 0

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    def tearDown(self):
        """After each hostile case: same processes, the pair still chats."""
        self.assertTrue(self.srv.alive(), "the master died")
        self.assertEqual(self.srv.worker_pids(), self.workers,
                         "a worker died or was replaced")
        BadInput.round += 1
        for a, b in ((self.x, self.y), (self.y, self.x)):
            text = "still fine %d \U0001F600" % self.round
            sent = a.chat(b.id, text)
            m = b.c.recv_msgid(ONE_CHAT)
            self.assertEqual((m["msg"], m["id"], m["name"]),
                             (text, a.id, a.name))
            self.assertEqual(m["time"], sent["time"])
        self.x.c.expect_none(0.05)
        self.y.c.expect_none(0.05)

    # ---- helpers ---------------------------------------------------

    def hostile(self):
        """A connection on the pair's worker."""
        return self.srv.client_on(self.slot)

    def answer(self, c, data, codes, msgid=ERROR):
        """Send data; expect an error answer with errno in codes."""
        c.send_raw(data)
        m = c.recv()
        self.assertEqual(m["msgid"], msgid, "%r -> %r" % (data[:80], m))
        if isinstance(codes, int):
            codes = (codes,)
        self.assertIn(m["errno"], codes, "%r -> %r" % (data[:80], m))
        self.assertIsInstance(m.get("errmsg"), str, m)
        return m

    def usable(self, c, seq=77):
        """The connection still answers a valid request."""
        c.send_raw(b'\0{"msgid":101,"seq":%d}\0' % seq)
        m = c.recv()
        self.assertEqual((m["msgid"], m.get("seq")), (PONG, seq), m)

    def closes(self, c, data, expect_error=True):
        """data is garbage: (an error, then) the connection is closed."""
        try:
            c.send_raw(data)
        except OSError:
            pass
        if expect_error:
            m = c.recv()
            self.assertEqual(m["msgid"], ERROR, m)
            self.assertNotEqual(m["errno"], 0, m)
        self.assertTrue(c.wait_closed(), "%r: still open" % data[:60])
        self.assertEqual(list(c.lines), [], "answers after the close error")

    def logged_in_hostile(self):
        c = self.hostile()
        name = unique("bad")
        uid = c.register(name, "pw")
        c.login(uid, "pw")
        return c, uid, name

    # ---- cases -----------------------------------------------------

    def test_malformed_json(self):
        c = self.hostile()
        bad = [b'{"msgid":4,"name":}', b'{"msgid":101,,"seq":1}',
               b'{"msgid" 101}', b'{"msgid":101,}', b"{'msgid':101}",
               b'{"msgid":101 "x":1}', b'{msgid:101}', b'{"msgid":tru}',
               b'{"msgid":101]', b'{"x":"\\q","msgid":101}',
               b'{"msgid":0101}', b'{"msgid":1.}', b'{"msgid":-}',
               b'{"msgid":101,"x":NaN}', b'{"msgid":101,"x":Infinity}',
               b'{"msgid":101,"x":"\\u12"}', b'{"msgid":101/*c*/}',
               b'{"msgid":101,"x":[1,]}', b'{"msgid":101,"x":undefined}',
               b'{"msgid":101}{}]', b'{,}', b'{:}', b'{"msgid"}']
        for i, data in enumerate(bad):
            if data == b'{"msgid":101}{}]':
                continue
            self.answer(c, data + b"\0", 10)
            self.usable(c, i)
        # a malformed login: an error answer (LOGIN_ACK or the error msgid)
        c.send_raw(b'{"id":1,"msgid":1,"password":}\0')
        m = c.recv()
        self.assertIn(m["msgid"], (LOGIN_ACK, ERROR), m)
        self.assertEqual(m["errno"], 10, m)
        self.usable(c)
        # unterminated value, then close: nothing to answer, no harm
        c.send_raw(b'{"msgid":101,"x":"abc')
        c.close()

    def test_not_an_object(self):
        c = self.hostile()
        for i, data in enumerate([b"[1,2,3]", b"[]", b'"hello"', b'""',
                                  b'[{"msgid":101}]', b'"{\\"msgid\\":1}"']):
            self.answer(c, data + b"\0", 11)
            self.usable(c, i)

    def test_unknown_msgid(self):
        c = self.hostile()
        for i, m in enumerate([999, 0, 2, 5, 11, 99, 100, 102, 103, 105]):
            self.answer(c, b'{"msgid":%d}\0' % m, 12)
            self.usable(c, i)
        for m in (-1, 2 ** 31, 2 ** 63 - 1):
            self.answer(c, b'{"msgid":%d}\0' % m, (12, 15))
        # missing or mistyped msgid
        self.answer(c, b'{"id":1}\0', 13)
        self.answer(c, b'{}\0', 13)
        for data in (b'{"msgid":"1"}', b'{"msgid":1.0}', b'{"msgid":null}',
                     b'{"msgid":true}', b'{"msgid":[1]}', b'{"msgid":{}}'):
            self.answer(c, data + b"\0", 14)
        self.usable(c)

    def test_missing_fields(self):
        c = self.hostile()
        self.answer(c, b'{"id":1,"msgid":1}\0', 13, LOGIN_ACK)
        self.answer(c, b'{"msgid":1,"password":"x"}\0', 13, LOGIN_ACK)
        self.answer(c, b'{"msgid":4,"password":"x"}\0', 13, REG_ACK)
        self.answer(c, b'{"msgid":4,"name":"x"}\0', 13, REG_ACK)
        c, uid, name = self.logged_in_hostile()
        for req in ({"msg": "x", "msgid": 6},
                    {"msgid": 6, "toid": self.x.id},
                    {"msgid": 7},
                    {"msgid": 8, "groupdesc": "d"},
                    {"msgid": 9},
                    {"msgid": 10, "msg": "x"},
                    {"groupid": 1, "msgid": 10}):
            req["id"] = uid
            self.answer(c, chatlib.seed_bytes(req), 13)
        self.usable(c)

    def test_wrong_types(self):
        c = self.hostile()
        uid = c.register(unique("wt"), "pw")
        for idv in (b'"%d"' % uid, b"%d.0" % uid, b"1e3", b"true",
                    b"null", b"[%d]" % uid, b'{"a":1}'):
            self.answer(c, b'{"id":%s,"msgid":1,"password":"pw"}\0' % idv,
                        14, LOGIN_ACK)
        self.answer(c, b'{"id":%d,"msgid":1,"password":123}\0' % uid, 14,
                    LOGIN_ACK)
        self.answer(c, b'{"msgid":4,"name":["n"],"password":"p"}\0', 14,
                    REG_ACK)
        c.login(uid, "pw")
        xid = self.x.id
        for req in (b'{"id":%d,"msg":"x","msgid":6,"toid":"%d"}' % (uid, xid),
                    b'{"id":%d,"msg":"x","msgid":6,"toid":%d.0}' % (uid, xid),
                    b'{"id":%d,"msg":"x","msgid":6,"toid":%d.5}' % (uid, xid),
                    b'{"id":%d,"msg":5,"msgid":6,"toid":%d}' % (uid, xid),
                    b'{"id":%d,"msg":null,"msgid":6,"toid":%d}' % (uid, xid),
                    b'{"id":"%d","msg":"x","msgid":6,"toid":%d}' % (uid, xid),
                    b'{"id":%d,"msg":"x","msgid":6,"name":7,"toid":%d}'
                    % (uid, xid),
                    b'{"friendid":"%d","id":%d,"msgid":7}' % (xid, uid),
                    b'{"groupname":1,"id":%d,"msgid":8}' % uid,
                    b'{"groupdesc":2,"groupname":"g","id":%d,"msgid":8}'
                    % uid,
                    b'{"groupid":"1","id":%d,"msgid":9}' % uid,
                    b'{"groupid":1.0,"id":%d,"msg":"x","msgid":10}' % uid):
            self.answer(c, req + b"\0", 14)
        self.usable(c)
        # nothing of it reached x
        self.x.c.expect_none(0.1)

    def test_out_of_range(self):
        c = self.hostile()
        for v in (b"0", b"-1", b"2147483648", b"-2147483649",
                  b"9223372036854775807", b"18446744073709551616",
                  b"99999999999999999999999"):
            self.answer(c, b'{"id":%s,"msgid":1,"password":"pw"}\0' % v,
                        15, LOGIN_ACK)
        c, uid, name = self.logged_in_hostile()
        for v in (b"0", b"-1", b"2147483648", b"4294967297"):
            self.answer(c, b'{"id":%d,"msg":"x","msgid":6,"toid":%s}\0'
                        % (uid, v), 15)
            self.answer(c, b'{"friendid":%s,"id":%d,"msgid":7}\0' % (v, uid),
                        15)
            self.answer(c, b'{"groupid":%s,"id":%d,"msgid":9}\0' % (v, uid),
                        15)
            self.answer(c, b'{"id":%s,"msgid":3}\0' % v, 15)
        # empty name and password at registration
        self.answer(c, b'{"msgid":4,"name":"","password":"x"}\0', 15,
                    REG_ACK)
        self.usable(c)
        # the 2147483647 boundary itself is a valid id (no such user)
        self.answer(c, b'{"id":%d,"msg":"x","msgid":6,"toid":2147483647}\0'
                    % uid, 19)

    def test_invalid_utf8(self):
        c = self.hostile()
        bad = [b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xe0\x80\xaf",
               b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
               b"\xc3", b"\xe2\x82", b"a\x80b", b"\xf0\x9f\x98"]
        for i, seq in enumerate(bad):
            self.answer(c, b'{"msgid":4,"name":"n%s","password":"x"}\0' % seq,
                        (15, 10), REG_ACK)
            self.answer(c, b'{"msgid":101,"x":"%s"}\0' % seq, (15, 10))
            self.usable(c, i)
        # and in a chat: nothing is delivered
        c, uid, name = self.logged_in_hostile()
        self.answer(c, b'{"id":%d,"msg":"\xff\xfe","msgid":6,"toid":%d}\0'
                    % (uid, self.x.id), (15, 10))
        self.x.c.expect_none(0.1)
        self.usable(c)

    def test_lone_surrogates(self):
        c, uid, name = self.logged_in_hostile()
        for i, esc in enumerate([b"\\ud800", b"\\udc00", b"\\ud800x",
                                 b"\\ud800\\u0041", b"\\udbff\\udbff",
                                 b"a\\udfff", b"\\uDABC"]):
            self.answer(c, b'{"id":%d,"msg":"%s","msgid":6,"toid":%d}\0'
                        % (uid, esc, self.x.id), 15)
            self.answer(c, b'{"msgid":4,"name":"%s","password":"x"}\0' % esc,
                        15, REG_ACK)
            self.usable(c, i)
        self.x.c.expect_none(0.1)
        # a correct pair is fine
        c.send_raw(b'{"id":%d,"msg":"\\ud83d\\ude00","msgid":6,"toid":%d}\0'
                   % (uid, self.x.id))
        self.assertEqual(self.x.c.recv_msgid(ONE_CHAT)["msg"], "\U0001F600")

    def test_raw_control_in_string(self):
        c = self.hostile()
        # a raw newline ends the broken value; the next line resyncs
        self.answer(c, b'{"msgid":101,"x":"abc\n{"msgid":101,"seq":5}\0',
                    10)
        m = c.recv()
        self.assertEqual((m["msgid"], m.get("seq")), (PONG, 5), m)
        # the same with \r\n and with a raw NUL
        self.answer(c, b'{"msgid":101,"x":"abc\r\n{"msgid":101,"seq":6}\0',
                    10)
        self.assertEqual(c.recv().get("seq"), 6)
        self.answer(c, b'{"msgid":101,"x":"abc\0{"msgid":101,"seq":7}\0', 10)
        self.assertEqual(c.recv().get("seq"), 7)
        # other raw control characters are malformed too (not a frame end)
        for ch in (b"\x01", b"\t", b"\x1f", b"\x1b"):
            self.answer(c, b'{"msgid":101,"x":"a%sb"}\0' % ch, 10)
        self.usable(c)
        # a chat with a raw newline in the text: an error, then whatever
        # follows on that line is garbage: error and close, or resync
        c2, uid, name = self.logged_in_hostile()
        try:
            c2.send_raw(b'{"id":%d,"msg":"line1\nline2","msgid":6,"toid":%d}'
                        b'\0' % (uid, self.x.id))
        except OSError:
            pass
        m = c2.recv()
        self.assertEqual((m["msgid"], m["errno"]), (ERROR, 10), m)
        if not c2.wait_closed(1.0):
            self.usable(c2)
        self.x.c.expect_none(0.1)

    def test_garbage_closes(self):
        for data in (b"hello\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                     b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                     bytes(range(1, 256)), b"123\n", b"true\0", b"null",
                     b"}\n", b"]", b"\xef\xbb\xbf{\"msgid\":101}"):
            c = self.hostile()
            self.usable(c)
            self.closes(c, data)
        # garbage after a good request: the good one is answered first
        c = self.hostile()
        c.send_raw(b'{"msgid":101,"seq":1}\0hello')
        self.assertEqual(c.recv().get("seq"), 1)
        m = c.recv()
        self.assertEqual((m["msgid"], m["errno"]), (ERROR, 10), m)
        self.assertTrue(c.wait_closed())

    def test_deep_nesting(self):
        cases = [b"[" * 10000 + b"]" * 10000,
                 b'{"msgid":101,"x":' + b"[" * 10000 + b"]" * 10000 + b"}",
                 b'{"a":' * 5000 + b"1" + b"}" * 5000,
                 b"[" * 10000,                   # never closed
                 b"{" * 60000]                   # nearly max_frame_bytes
        for data in cases:
            c = self.hostile()
            try:
                c.send_raw(data + b"\0")
            except OSError:
                pass
            if data.endswith(b"[") or data.endswith(b"{"):
                # incomplete: the server waits for more; we hang up
                c.expect_none(0.3)
                c.close()
                continue
            try:
                m = c.recv()
                self.assertEqual(m["msgid"], ERROR, m)
                self.assertIn(m["errno"], (10, 11, 26), m)
                if not c.wait_closed(0.3):
                    self.usable(c)
            except chatlib.Closed:
                pass            # closed without an answer is allowed

    def test_big_and_odd_values(self):
        c, uid, name = self.logged_in_hostile()
        # duplicate keys: an error or the last one wins, never a crash
        c.send_raw(b'{"msgid":101,"msgid":101,"seq":1}\0')
        m = c.recv()
        self.assertIn(m["msgid"], (PONG, ERROR), m)
        # a huge number and exponent
        self.answer(c, b'{"id":%d,"msg":"x","msgid":6,"toid":1e400}\0' % uid,
                    (14, 15))
        self.answer(c, b'{"id":%d,"msg":"x","msgid":6,"toid":-0}\0' % uid,
                    (14, 15))
        # a name over max_name_bytes, a message over max_message_bytes
        self.answer(c, chatlib.seed_bytes(
            {"msgid": 4, "name": "n" * 65, "password": "x"}), 16, REG_ACK)
        self.answer(c, chatlib.seed_bytes(
            {"id": uid, "msg": "m" * 40000, "msgid": 6, "toid": self.x.id}),
            16)
        self.x.c.expect_none(0.1)
        self.usable(c)

    def test_abrupt_disconnects(self):
        # half a request, then gone; a reset; many quick connections
        for data in (b'{"msgid":1,"id":', b'{"msgid":4,"name":"zz',
                     b'{"msgid":101}\0' * 1000):
            c = self.hostile()
            c.send_raw(data)
            c.close()
        c, uid, name = self.logged_in_hostile()
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          b"\1\0\0\0\0\0\0\0")
        c.send_raw(b'{"id":%d,"msg":"bye","msgid":6,"toid":%d}\0'
                   % (uid, self.x.id))
        c.close()               # RST
        m = self.x.c.recv_msgid(ONE_CHAT)
        self.assertEqual(m["msg"], "bye")
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", self.srv.port))
            s.close()
        # a client that never reads while its replies pile up
        c = self.hostile()
        c.send_raw(b'{"msgid":101,"pad":"%s"}\0' % (b"p" * 60000) * 20)
        time.sleep(0.2)
        c.close()
        # the user of the reset connection can log in again
        self.assertTrue(chatlib.wait_for(
            lambda: self.srv.client().login_raw(uid, "pw")["errno"] == 0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
