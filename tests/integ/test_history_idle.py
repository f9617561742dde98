#!/usr/bin/env python3
"""History at idle priority (issue 17: history never slows live delivery).

Each worker stores history in a thread of its own ("chatd-hist") at
SCHED_IDLE, History and HistoryConv in a SQLite file of their own
("<db>-history", schema version 5).  Here: the thread's policy; a
HISTORY read answered with the reader's own rows while that thread is
starved (the worker and a CPU hog pinned to one CPU, History made slow
by a trigger), because the read boosts it; a worker SIGKILLed with a
backlog in its spool file, whose every row is stored after the respawn
(the start-up log counting only the rows not stored before);
rows kept while the history file is locked past the busy timeout;
a thread not lowered when it could not be boosted again (no
CAP_SYS_NICE, RLIMIT_NICE 0), whose reads still see every row;
reads that stop waiting once the thread cannot be boosted any more; the
upgrade of a version 4 file (its history moved to the history file,
nothing lost); a read on another worker than the one that kept the rows;
a busy worker deferring its history (history_defer) until it is quiet, a
read or the bound ends it, with every row stored after."""

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
import test_history as th  # noqa: E402
from test_history_backlog import slow_rows  # noqa: E402
from test_upgrade import start_from  # noqa: E402
from chatlib import ONE_CHAT, wait_for  # noqa: E402

SCHED_IDLE = 5
SLOW = 4 * chatlib.TIMEOUT      # generous: the sanitizer build is slow
ROW_SECS = 0.005                # the trigger's CPU per History row
CHATS = 60                      # rows the starved thread is to store
STARVED_SECS = 3.0              # how long they must stay unstored


def tasks(pid):
    """{tid: (comm, fields)} of pid's threads: fields are their stat
    fields from 3 on (proc(5): policy, field 41, is fields[38])."""
    out = {}
    base = "/proc/%d/task" % pid
    for tid in os.listdir(base):
        try:
            with open("%s/%s/comm" % (base, tid)) as f:
                comm = f.read().strip()
            with open("%s/%s/stat" % (base, tid)) as f:
                stat = f.read()
        except OSError:
            continue            # a thread that just ended
        out[int(tid)] = (comm, stat[stat.rindex(")") + 2:].split())
    return out


def hist_threads(srv):
    return [(pid, tid, int(fields[38])) for pid in srv.worker_pids()
            for tid, (comm, fields) in tasks(pid).items()
            if comm == "chatd-hist"]


class IdleThread(unittest.TestCase):
    def test_each_worker_has_one_at_sched_idle(self):
        with chatlib.Server(workers=2) as srv:
            got = wait_for(lambda: len(hist_threads(srv)) == 2 and all(
                p == SCHED_IDLE for _, _, p in hist_threads(srv)),
                timeout=SLOW)
            self.assertTrue(got, hist_threads(srv))
            pids = srv.worker_pids()
            self.assertEqual(sorted(p for p, _, _ in hist_threads(srv)),
                             sorted(pids))
            # idle, yet it stores: a chat reaches the history file
            a, b = srv.user("hi"), srv.user("hi")
            a.chat(b.id, "kept at idle")
            b.c.recv_msgid(ONE_CHAT)
            db = chatlib.sqlite_db(os.path.join(srv.dir, "chat.db"))
            try:
                self.assertTrue(wait_for(lambda: db.execute(
                    "SELECT count(*) FROM hist.History").fetchone()[0] == 1,
                    timeout=SLOW))
                # the main file has no history table (version 5)
                self.assertEqual(db.execute(
                    "SELECT count(*) FROM main.sqlite_master WHERE name = "
                    "'History'").fetchone()[0], 0)
            finally:
                db.close()


def slow_backlog(srv, db, tag, n, row_secs):
    """Users a and b of srv, History made slow (row_secs a row), and n
    chats from a to b delivered: a backlog of history rows.  (a, b,
    rows): rows() counts what is stored."""
    a, b = srv.user(tag), srv.user(tag)
    make_slow(db, row_secs)
    for i in range(n):
        a.chat(b.id, "%s %d" % (tag, i))
    for i in range(n):
        b.c.recv_msgid(ONE_CHAT, timeout=SLOW)
    return a, b, lambda: db.execute(
        "SELECT count(*) FROM History").fetchone()[0]


def make_slow(db, secs):
    """History slow: a trigger beside it in the history file."""
    n = slow_rows(secs)
    db.execute("CREATE TABLE hist.Slow (x INTEGER)")
    db.executemany("INSERT INTO hist.Slow VALUES (?)", [(i,) for i in range(n)])
    db.execute("CREATE TRIGGER hist.hist_slow AFTER INSERT ON History "
               "BEGIN SELECT count(*) FROM Slow a, Slow b "
               "WHERE a.x + b.x < 0; END")
    db.commit()


def spool_left(spool):
    """(left, done): bytes of the spool's two files after their done
    prefixes, and in those prefixes, as path.done records them
    (histspool.h: magic at byte 0, off at 8, a record per file)."""
    try:
        with open(spool + ".done", "rb") as f:
            recs = f.read(64)
    except FileNotFoundError:
        recs = b""
    left = done = 0
    for i, path in enumerate((spool, spool + ".b")):
        size = os.path.getsize(path) if os.path.exists(path) else 0
        rec = recs[32 * i:32 * (i + 1)]
        off = (struct.unpack_from("<Q", rec, 8)[0]
               if len(rec) == 32 and rec[0] == 0xd1 else 0)
        left += size - off
        done += off
    return left, done


def hist_cpu(pid):
    """CPU seconds of pid's history thread (stat fields 14 and 15)."""
    ticks = sum(int(f[11]) + int(f[12]) for comm, f in tasks(pid).values()
                if comm == "chatd-hist")
    return ticks / os.sysconf("SC_CLK_TCK")


class Crash(unittest.TestCase):
    def test_spool_backlog_stored_after_sigkill(self):
        """A worker SIGKILLed while its spool holds stored rows (a done
        prefix, path.done) and rows still to store: every row is stored
        after the respawn, and the start-up log counts only the bytes
        past the done prefix."""
        n, first = 200, 30
        with chatlib.Server(workers=1) as srv:
            db = chatlib.sqlite_db(os.path.join(srv.dir, "chat.db"),
                                   timeout=60)
            self.addCleanup(db.close)
            spool = os.path.join(srv.dir, "chat.db-spool.0")
            (pid,) = srv.worker_pids()
            # the first rows: 3 s of store work, sped up by a read (c's:
            # a's connection would pause while its read waits)
            a, b, rows = slow_backlog(srv, db, "crash", first, 0.1)
            c = srv.user("crash")
            c.c.send_obj({"msgid": th.HISTORY, "toid": a.id, "limit": 1})
            # ... once the history thread stores them (they are taken),
            # the rest: they land in the spool behind them
            cpu = hist_cpu(pid)
            self.assertTrue(wait_for(lambda: hist_cpu(pid) - cpu >= 0.1,
                                     timeout=SLOW, interval=0.02))
            for i in range(first, n):
                a.chat(b.id, "crash %d" % i)
            for i in range(first, n):
                b.c.recv_msgid(ONE_CHAT, timeout=SLOW)
            # the first rows done, the rest (17 s of work) not yet (were
            # they stored before the rest came, the rest is taken in more
            # than one batch: a slow take halves the next)
            self.assertTrue(wait_for(lambda: all(spool_left(spool)),
                                     timeout=SLOW, interval=0.1),
                            spool_left(spool))
            stored = rows()
            self.assertLess(stored, n, "no backlog")
            # the master stopped (ours, by its pid), so that no new worker
            # opens the spool before it is read
            os.kill(srv.pid, signal.SIGSTOP)
            try:
                os.kill(pid, signal.SIGKILL)    # our worker, by its pid
                self.assertTrue(wait_for(lambda: not chatlib.pid_alive(pid),
                                         timeout=SLOW))
                left, done = spool_left(spool)
            finally:
                os.kill(srv.pid, signal.SIGCONT)
            db.execute("DROP TRIGGER hist.hist_slow")
            db.commit()
            self.assertTrue(wait_for(
                lambda: srv.worker_pids() not in ([], [pid]), timeout=SLOW))
            self.assertTrue(wait_for(lambda: rows() == n, timeout=SLOW,
                                     interval=0.2), "%d of %d" % (rows(), n))
            got = set(chatlib.json.loads(m)["msg"] for (m,) in db.execute(
                "SELECT message FROM History"))
            self.assertEqual(got, set("crash %d" % i for i in range(n)))
            # what was not done yet, not the whole files (before, the
            # done prefix counted too)
            said = re.search(r"history spool \S+: (\d+) bytes left by the "
                             r"last run", srv.log_text())
            self.assertIsNotNone(said, srv.log_text()[-3000:])
            self.assertEqual(int(said.group(1)), left,
                             "%d bytes done" % done)
            self.assertTrue(wait_for(lambda: spool_left(spool) == (0, 0),
                                     timeout=SLOW))
            sys.stderr.write("\n%d of %d stored before the SIGKILL; %d "
                             "bytes done, %d left\n" % (stored, n, done,
                                                         left))


class Refused(unittest.TestCase):
    def test_rows_kept_while_the_store_refuses(self):
        """The history file locked well past the busy timeout: the batch
        the history thread took stays in the spool and is tried again,
        so every row is kept once the lock goes (before, the batch was
        logged as not kept and lost)."""
        import sqlite3
        n = 40
        with chatlib.Server(workers=1, extra={
                "sqlite_busy_timeout_ms": 200}) as srv:
            db = chatlib.sqlite_db(os.path.join(srv.dir, "chat.db"),
                                   timeout=60)
            self.addCleanup(db.close)
            hist = sqlite3.connect(os.path.join(srv.dir, "chat.db-history"),
                                   timeout=60, isolation_level=None)
            self.addCleanup(hist.close)
            a, b = srv.user("hr"), srv.user("hr")
            hist.execute("BEGIN EXCLUSIVE")
            for i in range(n):
                a.chat(b.id, "refused %d" % i)
            for i in range(n):
                b.c.recv_msgid(ONE_CHAT, timeout=SLOW)
            # a read waits for these rows and boosts the history thread
            # (so it tries, even on a busy machine): each try fails at 0.2 s
            a.c.send_obj({"msgid": th.HISTORY, "toid": b.id, "limit": 50})
            time.sleep(3.0)
            hist.execute("COMMIT")
            m = a.c.recv_msgid(th.HISTORY_ACK, timeout=SLOW)
            self.assertEqual(len(m["messages"]), n, m)
            rows = lambda: db.execute(  # noqa: E731
                "SELECT count(*) FROM History").fetchone()[0]
            self.assertTrue(wait_for(lambda: rows() == n, timeout=SLOW,
                                     interval=0.2), "%d of %d" % (rows(), n))
            self.assertNotIn("not kept", srv.log_text())


class Starved(unittest.TestCase):
    """The worker and a hog share one CPU: the idle thread gets nothing
    until a read waits for it."""

    def setUp(self):
        self.srv = chatlib.Server(workers=1)
        self.srv.start()
        self.addCleanup(self.srv.__exit__, None, None, None)
        self.db = chatlib.sqlite_db(os.path.join(self.srv.dir, "chat.db"),
                                    timeout=60)
        self.addCleanup(self.db.close)
        self.hog = None
        self.addCleanup(self.stop_hog)

    def stop_hog(self):
        if self.hog is not None and self.hog.poll() is None:
            self.hog.kill()             # ours, by its pid
            self.hog.wait()

    def rows(self):
        return self.db.execute("SELECT count(*) FROM History").fetchone()[0]

    def test_read_boosts_the_starved_thread(self):
        cpu = max(os.sched_getaffinity(0))
        a, b = self.srv.user("hs"), self.srv.user("hs")
        make_slow(self.db, ROW_SECS)
        # a hog on one CPU (bounded: it ends by itself), then the worker
        self.hog = subprocess.Popen([
            sys.executable, "-c",
            "import os, time\n"
            "os.sched_setaffinity(0, {%d})\n"
            "end = time.monotonic() + %d\n"
            "while time.monotonic() < end:\n"
            "    pass\n" % (cpu, int(SLOW * 3))])
        (pid,) = self.srv.worker_pids()
        for tid in os.listdir("/proc/%d/task" % pid):
            os.sched_setaffinity(int(tid), {cpu})
        # live delivery goes on at normal priority
        for i in range(CHATS):
            a.chat(b.id, "starved %d" % i)
        for i in range(CHATS):
            self.assertEqual(b.c.recv_msgid(ONE_CHAT, timeout=SLOW)["msg"],
                             "starved %d" % i)
        # ... while history waits (normal priority would take ~2 s CPU
        # share for them all; idle gets a few ms)
        time.sleep(STARVED_SECS)
        before = self.rows()
        self.assertLess(before, CHATS // 2, "the idle thread was not starved")
        # a read waits for this worker's rows: boosted, it gets them all
        t0 = time.monotonic()
        m = th.history(a, toid=b.id, limit=10)
        took = time.monotonic() - t0
        self.assertEqual(th.texts(m), ["starved %d" % i for i in
                                       range(CHATS - 1, CHATS - 11, -1)], m)
        self.assertEqual(self.rows(), CHATS)
        sys.stderr.write("\nstored before the read %d of %d; the read took "
                         "%.2f s\n" % (before, CHATS, took))


class OtherWorker(unittest.TestCase):
    def read_after(self, n, secs, prefix):
        """n chats from worker 0 to worker 1, kept by worker 0 whose
        history takes secs a row; worker 1 reads the conversation once
        they arrived.  The page (newest first), the read's time, the
        server's log."""
        with chatlib.Server(workers=2) as srv:
            db = chatlib.sqlite_db(os.path.join(srv.dir, "chat.db"),
                                   timeout=60)
            self.addCleanup(db.close)
            a, b = srv.user("ho", worker=0), srv.user("ho", worker=1)
            make_slow(db, secs)
            for i in range(n):
                a.chat(b.id, "%s %d" % (prefix, i))
            for i in range(n):
                b.c.recv_msgid(ONE_CHAT, timeout=SLOW)
            texts, m, took = th.timed_read(b, SLOW * 4, toid=a.id,
                                           limit=50)
            sys.stderr.write("\nthe read took %.1f s\n" % took)
            return texts, m, srv.log_text()

    def test_read_waits_for_the_other_workers_rows(self):
        """The chats were kept by the sender's worker, whose history
        lags (0.1 s per row): a HISTORY read on the other worker waits
        for them (chat_barrier.c) instead of answering without them."""
        n = 20
        texts, m, _ = self.read_after(n, 0.1, "other")
        self.assertEqual(texts, ["other %d" % i for i in
                                 range(n - 1, -1, -1)], m)

    def test_read_waits_while_the_other_worker_stores(self):
        """A backlog that takes the other worker longer than 10 s to
        store (0.03 s a row, in takes of a few seconds each): the read
        waits while that worker says it is storing, past the 10 s a
        silent worker is given (chat_barrier.c), and sees every row."""
        n = 500
        texts, m, log = self.read_after(n, 0.03, "long")
        self.assertEqual(texts, ["long %d" % i for i in
                                 range(n - 1, n - 51, -1)], m)
        self.assertNotIn("did not store its history", log)


class Deferred(unittest.TestCase):
    """chatbench keeps the worker's loop busy: its history waits in the
    spool (history_defer), a read ends the wait at once, the load's end
    or the bound ends it too, and every row is stored afterwards."""
    PAIRS = 10

    def bench(self, srv, *args, timeout):
        """chatbench against srv (bounded); its JSON summary."""
        ids = os.path.join(srv.dir, "bench.ids")
        out = subprocess.run(
            [chatlib.chatbench_bin(), "-q", "-t", "127.0.0.1:%d" % srv.port,
             "-u", ids, "-m", str(srv.proc.pid)] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=timeout, check=False)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        return json.loads(out.stdout)

    def load(self, srv, secs):
        self.bench(srv, "register", "-n", str(2 * self.PAIRS), "-c", "4",
                   timeout=SLOW * 6)
        return subprocess.Popen(
            [chatlib.chatbench_bin(), "-q", "-t", "127.0.0.1:%d" % srv.port,
             "-u", os.path.join(srv.dir, "bench.ids"),
             "-m", str(srv.proc.pid), "chat", "-p", str(self.PAIRS),
             "-w", "16", "-W", "0.5", "-d", str(secs)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def finish(self, srv, bench, db, before=0):
        """The load's end; before: rows of chats sent before it."""
        out, err = bench.communicate(timeout=SLOW * 6)
        self.assertEqual(bench.returncode, 0, err[-2000:])
        r = json.loads(out)
        rows = lambda: db.execute(  # noqa: E731
            "SELECT count(*) FROM History").fetchone()[0]
        # the load is over: the worker is quiet, the rows are stored
        self.assertTrue(wait_for(
            lambda: rows() - before >= r["delivered_total"],
            timeout=SLOW * 3, interval=0.3),
            "%d of %d stored" % (rows() - before, r["delivered_total"]))
        self.assertLessEqual(rows() - before, r["sent"])
        self.assertNotIn("not kept", srv.log_text())
        return r

    def test_read_ends_the_deferral_then_all_stored(self):
        with chatlib.Server(workers=1, extra={"history_defer": 600}) as srv:
            db = chatlib.sqlite_db(os.path.join(srv.dir, "chat.db"),
                                   timeout=60)
            self.addCleanup(db.close)
            a, b = srv.user("hd"), srv.user("hd")
            for i in range(5):
                a.chat(b.id, "before %d" % i)
            for i in range(5):
                b.c.recv_msgid(ONE_CHAT, timeout=SLOW)
            bench = self.load(srv, 6)
            self.addCleanup(lambda: bench.poll() is None and bench.kill())
            # deferring: the spool grows while History does not
            self.assertTrue(wait_for(lambda: "deferred while the worker "
                                     "is busy" in srv.log_text(),
                                     timeout=SLOW * 3, interval=0.1))
            time.sleep(1.0)
            rows = db.execute("SELECT count(*) FROM History").fetchone()[0]
            # a read waits for the deferred rows and ends the deferral (a
            # lull in the load may have ended it first: read again)
            took = []
            while len(took) < 5 and bench.poll() is None:
                t0 = time.monotonic()
                m = th.history(a, toid=b.id, limit=10)
                took.append(time.monotonic() - t0)
                self.assertEqual(th.texts(m), ["before %d" % i for i in
                                               range(4, -1, -1)], m)
                if "(a read waits)" in srv.log_text():
                    break
                time.sleep(0.5)
            self.assertIn("(a read waits)", srv.log_text(),
                          srv.log_text()[-3000:])
            # deferred for 600 s at most: stored as the load ends
            r = self.finish(srv, bench, db, before=5)
            sys.stderr.write("\n%d rows stored a second into the load, "
                             "then reads took %s s; %d chats delivered\n"
                             % (rows, " ".join("%.2f" % t for t in took),
                                r["delivered_total"]))

    def test_bound_ends_the_deferral(self):
        with chatlib.Server(workers=1, extra={"history_defer": 1}) as srv:
            db = chatlib.sqlite_db(os.path.join(srv.dir, "chat.db"),
                                   timeout=60)
            self.addCleanup(db.close)
            bench = self.load(srv, 5)
            self.addCleanup(lambda: bench.poll() is None and bench.kill())
            self.finish(srv, bench, db)
            self.assertIn("(history_defer)", srv.log_text())


def start_without_nice(test, nice_limit):
    """A server of one worker whose chatd runs without CAP_SYS_NICE and
    CAP_SYS_RESOURCE (so it cannot raise it) at RLIMIT_NICE nice_limit."""
    srv = chatlib.Server(workers=1)
    wrapper = os.path.join(srv.dir, "chatd-no-nice")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec prlimit --nice=%d:%d setpriv "
                "--bounding-set -sys_nice,-sys_resource '%s' \"$@\"\n"
                % (nice_limit, nice_limit, chatlib.chatd_bin()))
    os.chmod(wrapper, 0o755)
    start_from(srv, wrapper)
    test.addCleanup(srv.__exit__, None, None, None)
    return srv


class NoNice(unittest.TestCase):
    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv") and
                         shutil.which("prlimit"),
                         "needs root, setpriv and prlimit")
    def test_not_lowered_when_it_could_not_be_raised(self):
        """chatd runs as root without CAP_SYS_NICE (as in a container
        that drops it) and with RLIMIT_NICE 0 that it cannot raise (no
        CAP_SYS_RESOURCE): a thread at SCHED_IDLE could never be boosted
        again.  So the history thread is not lowered (logged once), and a
        HISTORY read waits for this worker's backlog as usual: it sees
        every row."""
        n = 20
        srv = start_without_nice(self, 0)
        said = "history thread: stays at normal priority"
        self.assertTrue(wait_for(lambda: said in srv.log_text(),
                                 timeout=SLOW), srv.log_text()[-3000:])
        # before, it went to SCHED_IDLE and boosts failed (EPERM)
        self.assertEqual([p for _, _, p in hist_threads(srv)], [0])
        db = chatlib.sqlite_db(os.path.join(srv.dir, "chat.db"),
                               timeout=60)
        self.addCleanup(db.close)
        # 20 rows: 2 s of store work
        a, b, rows = slow_backlog(srv, db, "nonice", n, 0.1)
        texts, m, took = th.timed_read(a, SLOW * 3, toid=b.id, limit=50)
        sys.stderr.write("\nthe read took %.2f s\n" % took)
        self.assertEqual(texts, ["nonice %d" % i for i in
                                 range(n - 1, -1, -1)], m)
        self.assertEqual(rows(), n)
        self.assertEqual(srv.log_text().count(said), 1)
        self.assertNotIn("cannot be boosted any more", srv.log_text())


def nice_limit_settable():
    """Whether RLIMIT_NICE 20 can be set here (hard limit or
    CAP_SYS_RESOURCE; a container may allow neither)."""
    return shutil.which("prlimit") is not None and chatlib.run(
        ["prlimit", "--nice=20:20", "true"], timeout=60).returncode == 0


class Stuck(unittest.TestCase):
    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv") and
                         nice_limit_settable(),
                         "needs root, setpriv and RLIMIT_NICE 20")
    def test_read_stops_waiting_once_boosts_fail(self):
        """chatd runs without CAP_SYS_NICE but with RLIMIT_NICE 20: its
        history thread goes to SCHED_IDLE.  Then someone lowers the
        worker's RLIMIT_NICE to 0: boosting fails with EPERM, for good.
        A HISTORY read that would wait for this worker's backlog answers
        from what is stored instead (as for other workers' rows), logged
        once; the rows are still stored."""
        n = 40
        srv = start_without_nice(self, 20)
        self.assertTrue(wait_for(lambda: [p for _, _, p in hist_threads(
            srv)] == [SCHED_IDLE], timeout=SLOW), hist_threads(srv))
        (pid,) = srv.worker_pids()
        r = chatlib.run(["prlimit", "--pid", str(pid), "--nice=0:0"],
                        timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        db = chatlib.sqlite_db(os.path.join(srv.dir, "chat.db"),
                               timeout=60)
        self.addCleanup(db.close)
        # 40 rows: 10 s of store work
        a, b, rows = slow_backlog(srv, db, "stuck", n, 0.25)
        answers = []
        for _ in range(2):
            t0 = time.monotonic()
            m = th.history(a, toid=b.id, limit=50)
            answers.append((len(m["messages"]),
                            round(time.monotonic() - t0, 2)))
        sys.stderr.write("\nreads (rows, s): %r of %d\n" % (answers, n))
        # before, each read waited for all n rows (10 s of work)
        self.assertLess(answers[0][0], n, "the read waited")
        self.assertLess(answers[1][0], n, "the read waited")
        self.assertEqual(srv.log_text().count(
            "cannot be boosted any more"), 1)
        db.execute("DROP TRIGGER hist.hist_slow")
        db.commit()
        self.assertTrue(wait_for(lambda: rows() == n, timeout=SLOW,
                                 interval=0.2), "%d of %d" % (rows(), n))


V4_HCONV = "INSERT INTO HistoryConv (userid, conv, last) VALUES (?, ?, ?)"


class UpgradeV4(unittest.TestCase):
    check = th.UpgradeV3.check

    def test_sqlite_v4(self):
        def fill(q):
            th.v3_rows(q)
            q("INSERT INTO GroupUser (groupid, userid, grouprole, joined) "
              "VALUES (1, 1, 'creator', 1), (1, 2, 'normal', 2)", ())
            for uid, conv in th.V3_CONVS:
                q(V4_HCONV, (uid, conv, th.T0 + 70000))
        srv = chatlib.Server(workers=2)
        path = cluster.sqlite_old(self, srv, os.path.join(
            th.DATA, "schema-v4-sqlite.sql"), fill, 4)
        with srv:
            self.check(srv)
            db = chatlib.sqlite_db(path)
            try:
                self.assertEqual(db.execute("PRAGMA user_version"
                                            ).fetchone()[0], 5)
                self.assertEqual(db.execute(
                    "SELECT count(*) FROM main.sqlite_master WHERE name IN "
                    "('History', 'HistoryConv')").fetchone()[0], 0)
                self.assertEqual(sorted(db.execute(
                    "SELECT smid, conv, sender, created FROM hist.History"
                    ).fetchall()), sorted(
                    (smid, th.conv(abs(s), to), s, th.T0 + sec * 1000)
                    for smid, s, to, sec, _ in th.V3_HISTORY))
                self.assertEqual(sorted(db.execute(
                    "SELECT userid, conv FROM hist.HistoryConv").fetchall()),
                    th.V3_CONVS)
            finally:
                db.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
