#!/usr/bin/env python3
"""A plain (seed-style) client is not written the same chat twice.

It cannot drop a repeat by its smid, so the server must not write one:

- its stored copies (an offline batch) are removed once written, in the
  write store thread of the worker that wrote them; a login right after
  a logout, on another worker, must not read them before that removal
  committed (the leaving mark: chat_leave.c);
- a chat whose smid was written to the session already (a repeat from
  Redis, a stored copy fetched after the live one) is not written again
  (the session's ring: chat_seen.c; check_chat seen_ring, and
  test_cutoff's Redis cuts, which assert a bound).

The removal is held back by keeping the SQLite write lock (BEGIN
EXCLUSIVE; readers go on in WAL mode): on the code before the mark,
test_relogin_on_another_worker_waits reads the batch a second time,
every run."""

import os
import sqlite3
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402

WAIT = 20.0         # generous: a loaded 2-core machine under ASan


def write_lock(srv):
    """srv's SQLite file with its write lock taken (a writer waits up to
    its busy timeout, 5 s); readers go on."""
    db = sqlite3.connect(srv.keys["storage"][len("sqlite:"):], timeout=10,
                         isolation_level=None, check_same_thread=False)
    db.execute("BEGIN EXCLUSIVE")
    return db


def unlock(db):
    db.execute("ROLLBACK")
    db.close()


def texts(reply):
    return [m["msg"] for m in reply["offlinemsg"]]


class Repeats(unittest.TestCase):
    def login(self, c, uid):
        """c's login answer, however long the login waits."""
        c.send_obj({"id": uid, "msgid": chatlib.LOGIN, "password": "pw"})
        r = c.recv_msgid(chatlib.LOGIN_ACK, timeout=WAIT)
        self.assertEqual(r.get("errno"), 0, r)
        return chatlib.parse_login(r)

    def relogin_held(self, srv, sender, b, other):
        """A chat stored for b, who logs in (on b.c) and gets it, then
        out; its removal held back (0.3 s), b logs in on other at once:
        that login's answer (it must not have the chat again)."""
        b.c.loginout(b.id)
        self.assertEqual(b.c.sync(), [])
        sender.chat(b.id, "once")
        # a plain chat to an away user: its sender waits for the store
        self.assertEqual(sender.c.sync(), [])
        db = write_lock(srv)
        locked = True
        try:
            self.assertEqual(texts(b.c.login(b.id, "pw")), ["once"])
            # written and drained: its removal waits for the lock
            b.c.loginout(b.id)
            self.assertEqual(b.c.sync(), [])
            threading.Timer(0.3, unlock, (db,)).start()
            locked = False
            t0 = time.monotonic()
            r = self.login(other, b.id)
        finally:
            if locked:
                unlock(db)
        print("the login waited %.2f s" % (time.monotonic() - t0))
        self.assertEqual(texts(r), [], "read again")
        other.expect_none(0.5)

    def test_relogin_on_another_worker_waits(self):
        """The batch written on worker 0 and not yet removed there is not
        read again by a login on worker 1 right after the logout: the
        login waits for the removal."""
        with chatlib.Server(workers=2) as srv:
            sender = srv.user("rep")
            b = srv.user("rep", worker=0)
            other = srv.client_on(1)
            self.relogin_held(srv, sender, b, other)
            sender.chat(b.id, "after")
            self.assertEqual(other.recv_msgid(chatlib.ONE_CHAT,
                                              timeout=WAIT)["msg"], "after")

    def test_relogin_same_worker_ordered(self):
        """A login on the worker whose removal is under way does not wait
        for the mark: its read is ordered behind the removal (the write
        store thread)."""
        with chatlib.Server(workers=1) as srv:
            sender = srv.user("rep")
            b = srv.user("rep")
            self.relogin_held(srv, sender, b, srv.client())


if __name__ == "__main__":
    unittest.main(verbosity=2)
