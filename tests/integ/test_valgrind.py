#!/usr/bin/env python3
"""chatd under valgrind memcheck through a feature scenario.

The master and its worker (workers = 1) run under

    valgrind --leak-check=full --errors-for-leak-kinds=definite
             --error-exitcode=9 --trace-children=yes

with one memcheck log per process.  After a clean stop every log must
say "ERROR SUMMARY: 0 errors" (definite leaks count as errors) and no
process may have exited with valgrind's code 9.

Skipped (77) in a sanitizer build (ASan and valgrind do not mix) and
without valgrind, except in CI (CI=true), where no valgrind fails.
"""

import glob
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
# everything is ~30 times slower under valgrind
os.environ.setdefault("CHATD_TEST_TIMEOUT", "30")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
from chatlib import (ERROR, GROUP_CHAT, ONE_CHAT, PONG,  # noqa: E402
                     ERR_NOT_MEMBER, ERR_IDENTITY)

SKIP = 77


def skip(why):
    banner = "*" * 72
    msg = "\n%s\n*** test_valgrind SKIPPED: %s\n%s\n" % (banner, why, banner)
    sys.stderr.write(msg)
    sys.stdout.write(msg)
    sys.exit(SKIP)


def require():
    if os.environ.get("CHATD_SANITIZERS", "").strip():
        skip("a sanitizer build (valgrind cannot run ASan binaries)")
    with open(chatlib.chatd_bin(), "rb") as f:
        if b"__asan_init" in f.read():
            skip("chatd is built with AddressSanitizer")
    if not shutil.which("valgrind"):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            sys.stderr.write("test_valgrind: FAIL: CI=true and no valgrind "
                             "(apt-get install valgrind)\n")
            sys.exit(1)
        skip("no valgrind (apt-get install valgrind)")


class Valgrind(unittest.TestCase):
    def setUp(self):
        self.vgdir = tempfile.mkdtemp(prefix="chatd-vg-")
        self.real = chatlib.chatd_bin()
        wrapper = os.path.join(self.vgdir, "chatd-vg")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec valgrind --leak-check=full "
                    "--errors-for-leak-kinds=definite --error-exitcode=9 "
                    "--trace-children=yes --num-callers=30 "
                    "--log-file=%s/memcheck.%%p.log %s \"$@\"\n"
                    % (self.vgdir, self.real))
        os.chmod(wrapper, stat.S_IRWXU)
        os.environ["CHATD_BIN"] = wrapper
        self.keep = False
        self.killed = set()     # their logs end without a summary

    def tearDown(self):
        os.environ["CHATD_BIN"] = self.real
        if self.keep:
            sys.stderr.write("memcheck logs kept in %s\n" % self.vgdir)
        else:
            shutil.rmtree(self.vgdir, ignore_errors=True)

    def scenario(self, srv):
        a = srv.user("vga")
        b = srv.user("vgb")
        cid, cname = srv.register("vgc")
        # friends, a group, chats live and offline, a bad request
        a.c.addfriend(a.id, b.id)
        a.c.creategroup(a.id, chatlib.unique("vg"), "valgrind's group")
        self.assertEqual(a.c.sync(), [])
        gid = a.relogin()["groups"][0]["id"]
        b.c.addgroup(b.id, gid)
        self.assertEqual(b.c.sync(), [])
        sent = a.chat(b.id, "hello \U0001F600 \"x\" \\ \u0000")
        m = b.c.recv_msgid(ONE_CHAT)
        self.assertEqual(m["msg"], sent["msg"])
        a.groupchat(gid, "to the group")
        self.assertEqual(b.c.recv_msgid(GROUP_CHAT)["msg"], "to the group")
        a.chat(cid, "for later")
        a.chat(a.id + 1000000, "nobody")
        self.assertEqual(a.c.recv_msgid(ERROR)["errno"],
                         chatlib.ERR_NO_SUCH_USER)
        c = srv.client()
        r = c.login(cid, "pw")
        self.assertEqual([o["msg"] for o in r["offlinemsg"]], ["for later"])
        c.send_obj({"msgid": GROUP_CHAT, "groupid": gid, "msg": "no"})
        self.assertEqual(c.recv_msgid(ERROR)["errno"], ERR_NOT_MEMBER)
        c.chat(a.id, "x", b.id, "spoof")
        self.assertEqual(c.recv_msgid(ERROR)["errno"], ERR_IDENTITY)
        c.send_raw(b'{"msgid":101,"x":"a\0{"msgid":101,"seq":3}')
        self.assertEqual(c.recv_msgid(ERROR)["errno"], chatlib.ERR_MALFORMED)
        self.assertEqual(c.recv_msgid(PONG)["seq"], 3)
        wrong = srv.client().login_raw(a.id, "wrong")
        self.assertEqual(wrong["errno"], chatlib.ERR_AUTH)
        # garbage closes a connection; a dropped one logs its user out
        g = srv.client()
        g.send_raw(b"\x16\x03\x01 not json")
        self.assertTrue(g.wait_closed())
        b.c.close()
        self.assertTrue(chatlib.wait_for(
            lambda: srv.client().login_raw(b.id, "pw")["errno"] == 0))

    def handover(self, srv):
        """A worker SIGKILLed: its successor adopts the logged-in
        connections (crash handover) and serves them on."""
        a = srv.user("vha")
        b = srv.user("vhb")
        a.chat(b.id, "before")
        self.assertEqual(b.c.recv_msgid(ONE_CHAT)["msg"], "before")
        dead = a.c.whoami_full()["pid"]
        os.kill(dead, signal.SIGKILL)
        self.killed.add(dead)
        # the adopter's mark, then as chatd-protocol(7) says: a lone NUL
        # (input is skipped up to it), and the request again
        line = a.c.recv_line(timeout=180)
        self.assertTrue(not line.strip() or not line.startswith(b"{"),
                        line[:200])
        a.c.send_raw(b"\0")
        a.c.send_obj({"msgid": chatlib.WHOAMI})
        got = next_msg(a.c, chatlib.WHOAMI_ACK, 60)
        self.assertNotEqual(got["pid"], dead)
        self.assertEqual(got["id"], a.id, "the session did not survive")
        a.chat(b.id, "after")
        self.assertEqual(next_msg(b.c, ONE_CHAT, 60)["msg"], "after")

    def run_checked(self, srv, scenario):
        try:
            with srv:
                scenario(srv)
        except BaseException:
            self.keep = True
            raise
        logs = [p for p in sorted(glob.glob(os.path.join(
            self.vgdir, "memcheck.*.log"))) if int(re.search(
                r"memcheck\.(\d+)\.log$", p).group(1)) not in self.killed]
        # the master and the worker, at least
        self.assertGreaterEqual(len(logs), 2, logs)
        bad = []
        for p in logs:
            with open(p, errors="replace") as f:
                text = f.read()
            m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
            if m is None:
                bad.append("%s: no ERROR SUMMARY (did it exit?)" % p)
            elif m.group(1) != "0":
                bad.append("%s:\n%s" % (p, text[-6000:]))
            if re.search(r"definitely lost: [1-9]", text):
                bad.append("%s: definite leak" % p)
        if "exited with code 9" in srv.log_text():
            bad.append("a process exited with valgrind's error code 9")
        if bad:
            self.keep = True
        self.assertEqual(bad, [], "\n".join(bad))
        sys.stderr.write("  [%d memcheck logs, 0 errors, no definite "
                         "leaks] " % len(logs))

    def test_memcheck(self):
        self.run_checked(chatlib.Server(workers=1, start_timeout=120, extra={
            "rate_limit_rps": 100, "login_fail_max": 5,
            "max_connections_per_ip": 100}), self.scenario)

    def test_memcheck_handover(self):
        self.run_checked(chatlib.Server(workers=1, start_timeout=120),
                         self.handover)


def next_msg(c, msgid, seconds):
    """The next message msgid, past the adopter's mark (a blank line)."""
    deadline = time.monotonic() + seconds
    while True:
        line = c.recv_line(timeout=max(0.1, deadline - time.monotonic()))
        if line.strip():
            m = c.parse(line)
            if m["msgid"] != msgid:
                raise AssertionError("expected msgid %d, got %r" % (msgid, m))
            return m


if __name__ == "__main__":
    require()
    unittest.main(verbosity=2)
