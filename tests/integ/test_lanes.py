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

import contextlib
import fcntl
import os
import sqlite3
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
from chatlib import GROUP_CHAT, ONE_CHAT, find, unique  # noqa: E402

ROUNDS = 40
WAIT = 10.0         # generous: a loaded 2-core machine under ASan


READ_LOCK = 4.0    # under SQLite's ~10 s for a reader kept out of the WAL


@contextlib.contextmanager
def read_lock(srv):
    """Keep every reader and writer of srv's SQLite file out (a WAL
    reader is not stopped by BEGIN EXCLUSIVE): the WAL-index lock bytes
    of its -shm file, held with fcntl.  A store call made meanwhile waits
    until the lock goes (SQLite retries a reader for about 10 s)."""
    fd = os.open(srv.keys["storage"][len("sqlite:"):] + "-shm", os.O_RDWR)
    try:
        end = time.monotonic() + 10.0
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 8, 120)
                break
            except OSError:     # a read of the server's is under way
                if time.monotonic() > end:
                    raise
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 8, 120)
    finally:
        os.close(fd)


class Pinger(threading.Thread):
    """Round trips on c until stop is set: the slowest, in seconds."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c, self.stop, self.times = c, threading.Event(), []

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                self.c.ping(timeout=30)
            except Exception:       # counted as one very slow ping
                self.times.append(99.0)
                return
            self.times.append(time.monotonic() - t0)
            time.sleep(0.1)

    def slowest(self):
        self.stop.set()
        self.join(40)
        return max(self.times or [99.0])


class Lanes(unittest.TestCase):
    def group_of(self, a, b):
        """A new group of a (its creator) and b: its id."""
        gname = unique("lane")
        a.c.creategroup(a.id, gname, "")
        self.assertEqual(a.c.sync(), [])
        gid = find(a.relogin()["groups"], groupname=gname)["id"]
        b.c.addgroup(b.id, gid)
        self.assertEqual(b.c.sync(), [])
        return gid

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
                # the previous round's chat again: its removal (write
                # lane, old worker) not committed when this login read
                # (read lane, new worker).  The old worker's leaving mark
                # makes the login wait for it (chat_leave.c), up to 3 s
                repeats += len(got) - 1
                self.assertEqual(got.count(text), 1, "round %d" % i)
                self.assertTrue(set(got) <= seen | {text}, got)
                seen.add(text)
                b.c.close()
                b.c = nc
            print("%d of %d chats came right after the login answer, %d "
                  "repeats" % (late, ROUNDS, repeats))
            # 0 in every run seen (17 of 40 before the mark, under load);
            # a removal slower than the login's wait may still repeat
            self.assertLessEqual(repeats, 2)
            self.assertEqual(sender.c.sync(), [])
            b.c.expect_none(0.3)

    def test_group_stored_before_live(self):
        """A plain group chat reaches its online members only once the
        copies for those away are stored: an answer to it can then never
        be stored for them before it."""
        with chatlib.Server(workers=2) as srv:
            a, b = srv.users_on_two_workers("glane")
            cid, _ = srv.register("glane")
            gid = self.group_of(a, b)
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

    def test_acked_group_off_loop(self):
        """An acknowledged group chat reads its members in a store
        thread: with the store locked, the sender waits, while another
        user of that worker gets its pongs at once."""
        with chatlib.Server(workers=1) as srv:
            a, b, p = srv.users_on_one_worker(3, "aglane")
            gid = self.group_of(a, b)
            pinger = Pinger(p.c)
            with read_lock(srv):
                pinger.start()
                a.groupchat(gid, "locked", cmid=1)
                time.sleep(READ_LOCK)
                slowest = pinger.slowest()
            print("acked group chat under a %.0f s read lock: slowest pong "
                  "%.2f s" % (READ_LOCK, slowest))
            self.assertLess(slowest, 2.0, "pongs waited for the store")
            ack = a.c.recv_msgid(chatlib.CHAT_ACK, timeout=WAIT)
            self.assertEqual(ack.get("cmid"), 1)
            self.assertEqual(b.c.recv_msgid(GROUP_CHAT, timeout=WAIT)["msg"],
                             "locked")

    def test_blocks_read_at_login(self):
        """A session's block list comes with its login's read: the first
        chat delivered to it, store locked, neither waits nor stalls the
        worker, and a blocked sender's chat is still dropped."""
        with chatlib.Server(workers=1) as srv:
            a, b, x, p = srv.users_on_one_worker(4, "blane")
            b.c.send_obj({"msgid": 114, "userid": x.id})
            self.assertEqual(b.c.recv_msgid(109).get("errno"), 0)
            b.relogin()
            # this worker's first block of message ids (test_smid_claim)
            a.chat(p.id, "warm")
            self.assertEqual(p.c.recv_msgid(ONE_CHAT)["msg"], "warm")
            pinger = Pinger(p.c)
            with read_lock(srv):
                pinger.start()
                t0 = time.monotonic()
                x.chat(b.id, "blocked")
                a.chat(b.id, "first")
                got = b.c.recv_msgid(ONE_CHAT, timeout=WAIT)
                took = time.monotonic() - t0
                slowest = pinger.slowest()
            print("first delivery under a read lock: %.2f s, slowest pong "
                  "%.2f s" % (took, slowest))
            self.assertEqual(got["msg"], "first")
            self.assertLess(took, 2.0, "the delivery read the store")
            self.assertLess(slowest, 2.0, "pongs waited for the store")
            self.assertEqual(b.c.sync(), [])

    def test_smid_claim_off_loop(self):
        """A worker's first plain chat claims a block of message ids in
        the write store thread: with the store locked its sender waits
        (its next request is answered after it), the worker does not."""
        with chatlib.Server(workers=1) as srv:
            a, b, p = srv.users_on_one_worker(3, "slane")
            pinger = Pinger(p.c)
            with read_lock(srv):
                pinger.start()
                a.chat(b.id, "first")
                a.chat(b.id, "second")
                b.c.expect_none(1.0)
                slowest = pinger.slowest()
            got = [b.c.recv_msgid(ONE_CHAT, timeout=WAIT) for _ in (1, 2)]
            print("first chat's message id under a read lock: slowest pong "
                  "%.2f s" % slowest)
            self.assertLess(slowest, 2.0, "pongs waited for the store")
            self.assertEqual([m["msg"] for m in got], ["first", "second"])
            self.assertLess(got[0]["smid"], got[1]["smid"])
            self.assertEqual(a.c.sync(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
