#!/usr/bin/env python3
"""The daemon as processes: config check, master and workers, worker
death and respawn, reload, several instances, stop, pid file."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
from chatlib import ERROR, ONE_CHAT, children_of, unique, wait_for  # noqa


def exchange(test, a, b, text="hello"):
    """a and b can still chat both ways."""
    for s, r in ((a, b), (b, a)):
        s.chat(r.id, text)
        m = r.c.recv_msgid(ONE_CHAT)
        test.assertEqual((m["msg"], m["id"]), (text, s.id))


class Process(unittest.TestCase):
    def test_config_check(self):
        with chatlib.Server() as srv:
            out = chatlib.run([chatlib.chatd_bin(), "-n", "-f", srv.conf])
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn(b"configuration OK", out.stdout)
        tmp = tempfile.mkdtemp(prefix="chatd-test-")
        bad = os.path.join(tmp, "bad-%d.conf" % os.getpid())
        pid_file = os.path.join(tmp, "never-%d.pid" % os.getpid())
        try:
            with open(bad, "w") as f:
                f.write("# a comment\n"
                        "listen = 127.0.0.1:%d\n"
                        "workers = banana\n"
                        "no_such_key = 1\n"
                        "pid_file = %s\n"
                        "this line has no equals sign\n"
                        % (chatlib.free_port(), pid_file))
            out = chatlib.run([chatlib.chatd_bin(), "-n", "-f", bad])
            text = (out.stdout + out.stderr).decode()
            self.assertEqual(out.returncode, 1, text)
            self.assertNotIn("configuration OK", text)
            for line in (3, 4, 6):
                self.assertRegex(text, r"(?m)^%s:%d: \S" %
                                 (re.escape(bad), line))
            # the same file refused at start, before anything is created
            out = chatlib.run([chatlib.chatd_bin(), "-d", "-f", bad],
                              timeout=10)
            self.assertEqual(out.returncode, 1)
            self.assertRegex((out.stdout + out.stderr).decode(),
                             r"(?m)^%s:3: " % re.escape(bad))
            self.assertFalse(os.path.exists(pid_file))
            # a missing file
            out = chatlib.run([chatlib.chatd_bin(), "-n", "-f",
                               bad + ".missing"])
            self.assertEqual(out.returncode, 1)
            self.assertIn(b".missing", out.stdout + out.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_master_and_workers(self):
        with chatlib.Server(workers=3) as srv:
            kids = children_of(srv.pid)
            self.assertEqual(len(kids), 3, kids)
            seen = {}
            for _ in range(200):
                info = srv.client().whoami_full()
                seen[info["worker"]] = info["pid"]
                if len(seen) == 3:
                    break
            self.assertEqual(sorted(seen), [0, 1, 2])
            self.assertEqual(sorted(seen.values()), kids)
            # pid file holds the master
            with open(srv.pid_file) as f:
                self.assertEqual(int(f.read().strip()), srv.pid)
            self.assertTrue(os.path.exists(srv.shm_path()))

    def test_worker_killed(self):
        with chatlib.Server(workers=2) as srv:
            a = srv.users_on_one_worker(1, "k", slot=0)[0]
            b, c = srv.users_on_one_worker(2, "k", slot=1)
            old = a.c.whoami_full()["pid"]
            other = b.c.whoami_full()["pid"]
            self.assertEqual(sorted(children_of(srv.pid)),
                             sorted([old, other]))
            os.kill(old, signal.SIGKILL)
            t0 = time.monotonic()
            # the users of the dead worker are offline at once: a message
            # sent now is kept for a
            b.chat(a.id, "while your worker was dead")
            self.assertEqual(b.c.sync(), [])
            # one snapshot of the children decides: two reads of /proc
            # could see different processes
            snap = {}

            def respawned_now():
                snap["kids"] = kids = children_of(srv.pid)
                return len(kids) == 2 and old not in kids and other in kids
            # AddressSanitizer makes a process slower to start
            limit = 3.0 if os.environ.get("CHATD_SANITIZERS", "").strip() \
                else 1.0
            respawned = wait_for(respawned_now, timeout=limit)
            took = time.monotonic() - t0
            self.assertTrue(respawned, "no new worker within %.0f s (%.2f s): "
                            "%r\n%s" % (limit, took, snap["kids"],
                                         srv.log_text()[-3000:]))
            new = [p for p in snap["kids"] if p != other]
            self.assertEqual(len(new), 1, srv.log_text()[-3000:])
            self.assertNotEqual(new[0], old)
            # the other worker's users are still connected and chatting
            exchange(self, b, c, "we are fine")
            # a's connection outlives its worker (crash handover): the
            # replacement adopts it with its session, first ends any
            # half-written line (a blank line here), then delivers what
            # was kept meanwhile; a lone NUL resynchronises its input
            self.assertEqual(a.c.recv_line(timeout=5).strip(), b"")
            a.c.send_raw(b"\0")
            self.assertEqual(a.c.recv_msgid(ONE_CHAT, timeout=5)["msg"],
                             "while your worker was dead")
            info = a.c.whoami_full()
            self.assertEqual((info["id"], info["pid"]), (a.id, new[0]))
            exchange(self, a, b, "welcome back")
            # the slot has the new pid
            info = srv.client_on(0).whoami_full()
            self.assertEqual(info["pid"], new[0])
            self.assertTrue(srv.alive())

    def test_reload(self):
        with chatlib.Server(workers=2,
                            extra={"max_message_bytes": 1000}) as srv:
            x, y = srv.users_on_two_workers("hup")
            master = srv.pid
            workers = srv.worker_pids()
            exchange(self, x, y, "m" * 500)
            # a valid change: smaller messages
            srv.write_config(max_message_bytes=100)
            os.kill(master, signal.SIGHUP)

            def refused(u, v):
                u.chat(v.id, "r" * 200)
                for m in u.c.sync():
                    u.c.recv()
                    if m["msgid"] == ERROR and m["errno"] == 16:
                        return True
                v.c.recv_msgid(ONE_CHAT)
                return False
            self.assertTrue(wait_for(lambda: refused(x, y), 5, 0.05),
                            "max_message_bytes not applied by reload")
            self.assertTrue(wait_for(lambda: refused(y, x), 5, 0.05),
                            "max_message_bytes not applied on the other "
                            "worker")
            self.assertEqual(srv.pid, master)
            self.assertTrue(srv.alive())
            exchange(self, x, y, "small")          # same connections
            self.assertEqual(srv.worker_pids(), workers)

            # a broken config: logged, the old one stays
            log_before = len(srv.log_text())
            with open(srv.conf, "a") as f:
                f.write("workers = banana\nthis is not a config line\n")
            with open(srv.conf) as f:
                nlines = sum(1 for _ in f)
            os.kill(master, signal.SIGHUP)
            pat = re.compile(r"%s:%d: " % (re.escape(srv.conf), nlines - 1))
            self.assertTrue(wait_for(
                lambda: pat.search(srv.log_text()[log_before:]), 5),
                "no error about the broken config in the log:\n" +
                srv.log_text()[log_before:])
            time.sleep(0.3)
            self.assertTrue(srv.alive())
            self.assertEqual(srv.worker_pids(), workers)
            exchange(self, x, y, "s" * 90)
            # still 100, not back to the default
            x.chat(y.id, "r" * 200)
            m = x.c.recv()
            self.assertEqual((m["msgid"], m["errno"]), (ERROR, 16), m)
            y.c.expect_none(0.2)
            # new connections are served too
            z = srv.user("hup")
            exchange(self, x, z)
            srv.write_config()          # valid again for a clean stop

    def test_reload_connection_limits(self):
        """Keys the config table marks reloadable take effect on SIGHUP
        in the workers too (idle_timeout, max_output_bytes); a key that
        needs a restart (max_frame_bytes: the worker channels are sized
        from it) is logged as such and left alone."""
        with chatlib.Server(workers=2) as srv:
            x, y = srv.users_on_two_workers("hupc")
            srv.write_config(max_frame_bytes=2048, max_message_bytes=1000,
                             idle_timeout=2)
            os.kill(srv.pid, signal.SIGHUP)
            pat = re.compile(r"reloaded")
            self.assertTrue(wait_for(lambda: pat.search(srv.log_text()), 5))
            self.assertTrue(wait_for(lambda: re.search(
                r"max_frame_bytes changed: upgrade or restart needed",
                srv.log_text()), 5), srv.log_text()[-2000:])
            time.sleep(0.3)
            # max_frame_bytes kept its running value: 3 KB still passes
            big = b'{"msgid":101,"seq":1,"pad":"' + b"p" * 3000 + b'"}'
            x.c.send_raw(big)
            m = x.c.recv()
            self.assertEqual(m["msgid"], 102, m)
            # idle_timeout 300 -> 2: y, silent, is dropped; x keeps
            # talking (pings) and stays
            t0 = time.time()
            while time.time() - t0 < 4.5:
                x.c.send_obj({"msgid": 101})
                self.assertEqual(x.c.recv()["msgid"], 102)
                time.sleep(0.5)
            self.assertTrue(y.c.wait_closed(2),
                            "idle_timeout 300 -> 2 by SIGHUP not applied")
            srv.write_config()          # valid again for a clean stop

    def test_two_instances(self):
        with chatlib.Server(workers=2) as s1:
            with chatlib.Server(workers=2, storage=s1.keys["storage"]) as s2:
                self.assertNotEqual(s1.shm_name, s2.shm_name)
                a1, b1 = s1.users_on_two_workers("i1")
                a2, b2 = s2.users_on_two_workers("i2")
                exchange(self, a1, b1)
                exchange(self, a2, b2)
                ids = {a1.id, b1.id, a2.id, b2.id}
                self.assertEqual(len(ids), 4, "shared storage, unique ids")
                # a user of the shared store may log in on the other node
                uid, _ = s1.register("i1")
                self.assertEqual(s2.client().login(uid, "pw")["id"], uid)
            # s2 stopped cleanly (checked on exit); s1 is untouched
            self.assertTrue(os.path.exists(s1.shm_path()))
            self.assertEqual(children_of(s1.pid), s1.worker_pids())
            exchange(self, a1, b1, "after the other node left")

    def test_default_shm_names(self):
        with chatlib.Server(workers=1, shm_name=None) as s1:
            with chatlib.Server(workers=1, shm_name=None,
                                storage=s1.keys["storage"]) as s2:
                self.assertEqual(len(s1.shm_seen), 1,
                                 "no /dev/shm entry naming port %d: %r" %
                                 (s1.port, sorted(os.listdir("/dev/shm"))))
                self.assertEqual(len(s2.shm_seen), 1,
                                 "no /dev/shm entry naming port %d" %
                                 s2.port)
                self.assertNotEqual(s1.shm_seen, s2.shm_seen)
                exchange(self, *s1.users_on_one_worker(2, "d1"))
                exchange(self, *s2.users_on_one_worker(2, "d2"))
            for n in s1.shm_seen:
                self.assertTrue(os.path.exists("/dev/shm/" + n))
        # removal of both is checked by Server on exit

    def test_sigterm(self):
        srv = chatlib.Server(workers=2)
        srv.start()
        problems = ["not stopped"]
        try:
            x, y = srv.users_on_two_workers("term")
            exchange(self, x, y)
            idle = srv.client()
            workers = srv.worker_pids()
            t0 = time.monotonic()
            os.kill(srv.pid, signal.SIGTERM)
            for c in (x.c, y.c, idle):
                self.assertTrue(c.wait_closed(10))
            problems = srv.stop()
            self.assertEqual(problems, [])
            self.assertLess(time.monotonic() - t0, 15)
            for p in workers:
                self.assertFalse(chatlib.pid_alive(p), "worker %d left" % p)
        finally:
            if not srv.stop() and not problems:
                shutil.rmtree(srv.dir, ignore_errors=True)

    def test_pid_file(self):
        with chatlib.Server(workers=1) as s1:
            keys = dict(s1.keys)
            keys["listen"] = "127.0.0.1:%d" % chatlib.free_port()
            keys["shm_name"] = "/chatd-test-%d-second" % os.getpid()
            keys["log_file"] = os.path.join(s1.dir, "second.log")
            conf2 = os.path.join(s1.dir, "second.conf")
            chatlib.write_config(conf2, keys)
            try:
                out = chatlib.run([chatlib.chatd_bin(), "-d", "-f", conf2],
                                  timeout=10)
            except subprocess.TimeoutExpired:
                self.fail("a second chatd with the same pid_file kept "
                          "running")
            text = (out.stdout + out.stderr).decode("utf-8", "replace")
            try:
                text += open(keys["log_file"]).read()
            except OSError:
                pass
            self.assertNotEqual(out.returncode, 0, text)
            self.assertIn(str(s1.pid), text)
            self.assertFalse(os.path.exists("/dev/shm" + keys["shm_name"]))
            with open(s1.pid_file) as f:
                self.assertEqual(int(f.read().strip()), s1.pid)
            self.assertTrue(s1.alive())
            exchange(self, *s1.users_on_one_worker(2, "pf"))

    def test_stale_pid_file(self):
        p = subprocess.Popen(["true"])
        p.wait()
        srv = chatlib.Server(workers=1)
        with open(srv.pid_file, "w") as f:
            f.write("%d\n" % p.pid)
        with srv:
            with open(srv.pid_file) as f:
                self.assertEqual(int(f.read().strip()), srv.pid)
            srv.user("stale")

    def test_least_privilege(self):
        """Started as root with user = nobody: every chatd process that
        reads from a socket (master: chatctl and HTTP; workers: clients)
        runs as nobody, and all it made as root is removed at exit."""
        if os.geteuid() != 0:
            self.skipTest("needs root")
        import pwd
        nobody = pwd.getpwnam("nobody")
        srv = chatlib.Server(workers=2)
        os.chown(srv.dir, nobody.pw_uid, nobody.pw_gid)
        os.chmod(srv.dir, 0o755)
        ctl = os.path.join(srv.dir, "ctl.sock")
        mport = chatlib.free_port()
        srv.keys.update(user="nobody", allow_root="no", control_socket=ctl,
                        metrics_listen="127.0.0.1:%d" % mport)
        with srv:
            pids = [srv.pid] + srv.worker_pids()
            self.assertEqual(len(pids), 3)
            for pid in pids:
                with open("/proc/%d/status" % pid) as f:
                    uids = re.search(r"(?m)^Uid:\s+(.*)$", f.read()).group(1)
                self.assertEqual(uids.split(), [str(nobody.pw_uid)] * 4,
                                 "pid %d" % pid)
            # the master, unprivileged, still serves and supervises
            chatctl = chatlib._find_bin("CHATCTL_BIN", "chatctl")
            out = chatlib.run([chatctl, "-s", ctl, "status"])
            self.assertEqual(out.returncode, 0, out.stderr)
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % mport,
                                        timeout=5) as r:
                self.assertEqual(r.status, 200)
            os.kill(pids[1], signal.SIGKILL)
            self.assertTrue(wait_for(lambda: len(srv.worker_pids()) == 2 and
                                     pids[1] not in srv.worker_pids()))
            exchange(self, *srv.users_on_one_worker(2, "lp"))
            self.assertEqual(os.stat(srv.pid_file).st_uid, 0)
            self.assertIn("master runs as nobody", srv.log_text())
        # Server.stop checked the pid file and shared memory are gone
        self.assertFalse(os.path.exists(ctl))

    def test_pid_file_symlink(self):
        """A pid file path that is a symbolic link is refused (as root it
        would write through it), and its target is left alone."""
        srv = chatlib.Server(workers=1)
        target = os.path.join(srv.dir, "victim")
        with open(target, "w") as f:
            f.write("precious\n")
        os.symlink(target, srv.pid_file)
        srv.write_config()
        try:
            out = chatlib.run([chatlib.chatd_bin(), "-d", "-f", srv.conf],
                              timeout=10)
            text = (out.stdout + out.stderr).decode("utf-8", "replace")
            try:
                text += open(srv.log_file).read()
            except OSError:
                pass
            self.assertEqual(out.returncode, 1, text)
            self.assertIn("symbolic link", text)
            with open(target) as f:
                self.assertEqual(f.read(), "precious\n")
            self.assertTrue(os.path.islink(srv.pid_file))
        finally:
            shutil.rmtree(srv.dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
