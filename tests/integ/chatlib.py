"""chatlib - helpers for chatd's integration tests (Python 3 stdlib only).

Server: a context manager that runs a real chatd on a free loopback port
with its own temporary directory, storage and shared memory name, and
checks on exit that it stopped cleanly.

Client: one TCP connection speaking the seed protocol the way the seed
client does (compact JSON, keys sorted, one NUL byte after each request)
and reading the server's answers (one JSON object per line).
"""

import collections
import errno as _errno
import itertools
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

# msgids (include/proto.h)
LOGIN, LOGIN_ACK, LOGINOUT, REG, REG_ACK = 1, 2, 3, 4, 5
ONE_CHAT, ADD_FRIEND, CREATE_GROUP, ADD_GROUP, GROUP_CHAT = 6, 7, 8, 9, 10
ERROR, PING, PONG, CHAT_ACK, WHOAMI, WHOAMI_ACK = 100, 101, 102, 103, 104, 105

# errno values (include/proto.h)
ERR_AUTH = 1
ERR_ONLINE = 2
ERR_MALFORMED = 10
ERR_NOT_OBJECT = 11
ERR_UNKNOWN_MSGID = 12
ERR_MISSING_FIELD = 13
ERR_WRONG_TYPE = 14
ERR_BAD_VALUE = 15
ERR_TOO_LONG = 16
ERR_NOT_LOGGED_IN = 17
ERR_IDENTITY = 18
ERR_NO_SUCH_USER = 19
ERR_NO_SUCH_GROUP = 20
ERR_NOT_MEMBER = 21
ERR_NOT_ALLOWED = 22
ERR_EXISTS = 23
ERR_UNAVAILABLE = 24
ERR_RATE = 25
ERR_FRAME_TOO_BIG = 26
ERR_ALREADY_LOGGED_IN = 27
ERR_LIMIT = 28

TIMEOUT = float(os.environ.get("CHATD_TEST_TIMEOUT", "5"))

_here = os.path.dirname(os.path.abspath(__file__))
_counter = itertools.count(1)


def _find_bin(env, name):
    """env var, else NAME two levels above this file, else ./NAME."""
    p = os.environ.get(env)
    if p:
        return os.path.abspath(p)
    for cand in (os.path.join(_here, "..", "..", name),
                 os.path.join(os.getcwd(), name)):
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return os.path.abspath(os.path.join(_here, "..", "..", name))


def chatd_bin():
    return _find_bin("CHATD_BIN", "chatd")


def chatc_bin():
    return _find_bin("CHATC_BIN", "chatc")


def chatbench_bin():
    return _find_bin("CHATBENCH_BIN", "chatbench")


def unique(prefix="u"):
    """A name no other test (or test run) uses."""
    return "%s%d_%d_%d" % (prefix, os.getpid(), next(_counter),
                           int(time.time() * 1000) % 100000000)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def seed_bytes(obj):
    """A request as the seed client writes it: compact, sorted, NUL."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8") + b"\0"


def now_str():
    return time.strftime("%Y-%m-%d %H:%M:%S")


def write_config(path, keys):
    """keys: dict; a value of None leaves the key out."""
    with open(path, "w") as f:
        for k, v in keys.items():
            if v is not None:
                f.write("%s = %s\n" % (k, v))


def children_of(pid):
    """Pids of the live (not zombie) processes whose parent is pid."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ..."; comm may contain spaces
        rest = st[st.rfind(")") + 2:].split()
        if len(rest) >= 2 and int(rest[1]) == pid and rest[0] != "Z":
            kids.append(int(d))
    return sorted(kids)


def all_stopped(pid):
    """Every thread of pid is stopped (state T in /proc): SIGSTOP lands
    asynchronously, thread by thread."""
    try:
        states = []
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
    except OSError:
        return False
    return all(st in ("T", "t") for st in states)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rfind(")") + 2:].split()[0] != "Z"


def sqlite_db(path, **kw):
    """A connection to chatd's SQLite file with its history file attached
    as hist, as chatd has it (History and HistoryConv live there)."""
    import sqlite3
    db = sqlite3.connect(path, **kw)
    db.execute("ATTACH ? AS hist", (path + "-history",))
    return db


def wait_for(pred, timeout=TIMEOUT, interval=0.02):
    """Poll pred() until it is true; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


class Server:
    """A chatd master with its workers, in the foreground (-d)."""

    def __init__(self, workers=2, shm_name="", storage=None, extra=None,
                 start_timeout=15.0):
        self.workers = workers
        self.dir = tempfile.mkdtemp(prefix="chatd-test-")
        self.port = free_port()
        self.listen = "127.0.0.1:%d" % self.port
        if shm_name == "":
            shm_name = "/chatd-test-%d-%d" % (os.getpid(), next(_counter))
        self.shm_name = shm_name        # None: let chatd derive it
        self.conf = os.path.join(self.dir, "chatd.conf")
        self.pid_file = os.path.join(self.dir, "chatd.pid")
        self.log_file = os.path.join(self.dir, "chatd.log")
        self.stderr_file = os.path.join(self.dir, "chatd.stderr")
        self.keys = collections.OrderedDict()
        self.keys["listen"] = self.listen
        self.keys["workers"] = workers
        self.keys["storage"] = storage or "sqlite:%s" % os.path.join(
            self.dir, "chat.db")
        self.keys["pid_file"] = self.pid_file
        self.keys["log_file"] = self.log_file
        self.keys["shm_name"] = shm_name
        self.keys["password_cost"] = 1
        # the harness places connections on workers before login
        self.keys["whoami_anonymous"] = "yes"
        self.keys.update(allow_root="yes", rate_limit_rps=0, max_connections_per_ip=0, login_fail_max=0, login_fail_per_user_max=0, login_fail_per_ip_max=0, register_rate_per_ip=0)  # tests run as root; abuse limits off unless a test sets them (test_hostile.py)
        # MySQL's default spool is under /var/lib/chatd (an install's):
        # the tests' nodes spool in their own directory, as installed
        # nodes do there
        if not str(self.keys["storage"]).startswith("sqlite:"):
            self.keys["history_spool"] = os.path.join(self.dir,
                                                      "history-spool")
        for k, v in (extra or {}).items():
            self.keys[k] = v
        # CHATD_START_TIMEOUT raises it (a run under valgrind)
        self.start_timeout = max(start_timeout, float(
            os.environ.get("CHATD_START_TIMEOUT", "0")))
        self.proc = None
        self.pid = None
        self.shm_seen = set()       # /dev/shm entries this server made
        self.stopped = False
        self._clients = []

    # ---- start / stop ----------------------------------------------

    def write_config(self, **changes):
        """Rewrite the config file with some keys changed (None: drop)."""
        for k, v in changes.items():
            self.keys[k] = v
        write_config(self.conf, self.keys)

    def shm_path(self):
        if self.shm_name is not None:
            return "/dev/shm/" + self.shm_name.lstrip("/")
        return None

    def start(self):
        write_config(self.conf, self.keys)
        if not os.access(chatd_bin(), os.X_OK):
            raise AssertionError("no chatd at %s: set CHATD_BIN"
                                 % chatd_bin())
        shm_before = set(os.listdir("/dev/shm"))
        self.stopped = False        # started again after a stop()
        self._errf = open(self.stderr_file, "ab")
        self.proc = subprocess.Popen([chatd_bin(), "-d", "-f", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._errf, stderr=self._errf,
                                     close_fds=True)
        self.pid = self.proc.pid
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "chatd exited with %r at start:\n%s" % (
                        self.proc.returncode, self.log_text()[-3000:]))
            try:
                s = socket.create_connection(("127.0.0.1", self.port), 0.5)
                s.close()
                if len(children_of(self.pid)) >= self.workers:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self._kill()
                raise AssertionError("chatd did not accept within %.0f s:\n"
                                     "%s" % (self.start_timeout,
                                             self.log_text()[-3000:]))
            time.sleep(0.02)
        self._last_workers = children_of(self.pid)
        if self.shm_name is not None:
            self.shm_seen.add(self.shm_name.lstrip("/"))
        else:
            new = set(os.listdir("/dev/shm")) - shm_before
            self.shm_seen |= set(n for n in new if str(self.port) in n)
        return self

    def _kill(self):
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Stop and return a list of problems (empty when all is well)."""
        problems = []
        if self.stopped:
            return problems
        self.stopped = True
        for c in self._clients:
            c.close()
        if self.proc.poll() is None:
            os.kill(self.pid, sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            problems.append("chatd did not exit within %.0f s of signal %d"
                            " (killed)" % (timeout, sig))
            rc = self.proc.returncode
        self._errf.close()
        if rc != 0:
            problems.append("chatd exited with status %r" % rc)
        for n in self.shm_seen:
            if os.path.exists("/dev/shm/" + n):
                problems.append("/dev/shm/%s was not removed" % n)
                try:
                    os.unlink("/dev/shm/" + n)
                except OSError:
                    pass
        if os.path.exists(self.pid_file):
            problems.append("pid file %s was not removed" % self.pid_file)
        log = self.log_text()
        for bad in ("AddressSanitizer", "runtime error", "LeakSanitizer"):
            if bad in log:
                problems.append("the log mentions %r" % bad)
        # workers must not outlive the master
        for p in getattr(self, "_last_workers", []):
            if pid_alive(p):
                problems.append("worker %d outlived the master" % p)
        return problems

    def __enter__(self):
        return self.start()

    def __exit__(self, et, ev, tb):
        problems = self.stop()
        if problems:
            msg = "server %s: %s\n--- log tail ---\n%s" % (
                self.listen, "; ".join(problems), self.log_text()[-4000:])
            if et is None:
                raise AssertionError(msg)
            sys.stderr.write(msg + "\n")
        if et is None and not problems:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            sys.stderr.write("chatd test files kept in %s\n" % self.dir)
        return False

    # ---- inspection ------------------------------------------------

    def log_text(self):
        out = []
        for p in (self.log_file, self.stderr_file):
            try:
                with open(p, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "".join(out)

    def worker_pids(self):
        pids = children_of(self.pid)
        self._last_workers = pids
        return pids

    def alive(self):
        return self.proc.poll() is None

    def client(self, **kw):
        c = Client(self.port, **kw)
        self._clients.append(c)
        return c

    def user(self, prefix="u", password="pw", worker=None, name=None):
        """A new registered and logged-in User (on worker slot if given)."""
        name = name or unique(prefix)
        c = self.client()
        uid = c.register(name, password)
        if worker is not None:
            c.close()
            c = self.client_on(worker)
        u = User(self, c, uid, name, password)
        u.reply = c.login(uid, password)
        return u

    def client_on(self, slot, attempts=60):
        """A connection accepted by worker slot."""
        for _ in range(attempts):
            c = self.client()
            if c.whoami() == slot:
                return c
            c.close()
        raise AssertionError("no connection landed on worker %d in %d "
                             "attempts" % (slot, attempts))

    def clients_on_two_workers(self, attempts=60):
        """Two connections on different worker slots."""
        first = self.client()
        w0 = first.whoami()
        for _ in range(attempts):
            c = self.client()
            if c.whoami() != w0:
                return first, c
            c.close()
        raise AssertionError("connections never reached a second worker")

    def users_on_two_workers(self, prefix="u"):
        """Two logged-in Users whose connections are on different workers."""
        ca, cb = self.clients_on_two_workers()
        return self._login_on(ca, prefix), self._login_on(cb, prefix)

    def users_on_one_worker(self, n=2, prefix="u", slot=None):
        first = self.client() if slot is None else self.client_on(slot)
        slot = first.whoami()
        users = [self._login_on(first, prefix)]
        while len(users) < n:
            users.append(self._login_on(self.client_on(slot), prefix))
        return users

    def _login_on(self, c, prefix):
        name = unique(prefix)
        uid = c.register(name, "pw")
        u = User(self, c, uid, name, "pw")
        u.reply = c.login(uid, "pw")
        return u

    def register(self, prefix="u", password="pw"):
        """Register a user without logging in; returns (id, name)."""
        name = unique(prefix)
        c = self.client()
        uid = c.register(name, password)
        c.close()
        return uid, name


class User:
    def __init__(self, server, client, uid, name, password):
        self.server = server
        self.c = client
        self.id = uid
        self.name = name
        self.password = password
        self.reply = None

    def relogin(self):
        """loginout, then log in again on the same connection."""
        self.c.loginout(self.id)
        self.reply = self.c.login(self.id, self.password)
        return self.reply

    def reconnect(self):
        """Drop the connection, log in on a new one."""
        self.c.close()
        self.c = self.server.client()
        self.reply = self.c.login(self.id, self.password)
        return self.reply

    def chat(self, toid, text, **extra):
        return self.c.chat(self.id, self.name, toid, text, **extra)

    def groupchat(self, gid, text, **extra):
        return self.c.groupchat(self.id, self.name, gid, text, **extra)


class Closed(Exception):
    pass



def fill(client, timeout, take):
    """A client's read (plain or TLS): take(data) gets what arrived
    within timeout; False at timeout or EOF (client.eof set)."""
    if client.eof:
        return False
    # decrypted bytes may wait inside the TLS object, unseen by select
    sock = client.sock
    if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
        r, _, _ = select.select([sock], [], [], max(timeout, 0))
        if not r:
            return False
    try:
        data = sock.recv(1 << 20)
    except (BlockingIOError, ssl.SSLWantReadError):
        return True
    except (ConnectionResetError, ssl.SSLEOFError):
        data = b""
    if not data:
        client.eof = True
        return False
    take(data)
    return True


def pump(peers, on_message, timeout, on_drop=None):
    """One round over peers' non-blocking connections (test_faults.Peer
    and its kind: sock, read() giving messages or None once closed,
    connect(), drops): each message goes to on_message(p, m); a closed
    connection counts in p.drops, goes to on_drop(p) when given, and is
    opened again.  A peer left without one (its connect found no server)
    tries again every 0.2 s."""
    now = time.monotonic()
    for p in peers:
        if p.sock is None and getattr(p, "retry_at", 0) <= now:
            p.retry_at = now + 0.2
            p.connect()
    socks = {p.sock: p for p in peers if p.sock is not None}
    if not socks:
        time.sleep(timeout)
        return
    r, _, _ = select.select(list(socks), [], [], timeout)
    for s in r:
        p = socks[s]
        msgs = p.read()
        if msgs is None:
            p.drops += 1
            if on_drop is not None:
                on_drop(p)
            p.sock.close()
            p.connect()
            continue
        for m in msgs:
            on_message(p, m)


class Client:
    """One connection.  recv() returns the next JSON object received."""

    def __init__(self, port, host="127.0.0.1", timeout=TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buf = b""
        self.lines = collections.deque()    # raw lines not yet returned
        self.eof = False
        self.raw_log = []                   # every raw line received
        self._seq = itertools.count(1)

    # ---- sending ---------------------------------------------------

    def send_raw(self, data):
        self.sock.setblocking(True)
        self.sock.settimeout(TIMEOUT * 2)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.setblocking(False)

    def send_obj(self, obj):
        self.send_raw(seed_bytes(obj))

    # ---- receiving -------------------------------------------------

    def _fill(self, timeout):
        """Read what arrives within timeout; False at timeout or EOF."""
        return fill(self, timeout, self._take)

    def _take(self, data):
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.raw_log.append(line + b"\n")
            self.lines.append(line)

    def recv_line(self, timeout=TIMEOUT):
        """The next raw line (without its newline)."""
        deadline = time.monotonic() + timeout
        while not self.lines:
            left = deadline - time.monotonic()
            if not self._fill(left):
                if self.eof and not self.lines:
                    raise Closed("connection closed by the server "
                                 "(unterminated: %r)" % self.buf[:200])
                if time.monotonic() >= deadline and not self.lines:
                    raise AssertionError("nothing received within %.1f s"
                                         % timeout)
        return self.lines.popleft()

    @staticmethod
    def parse(line):
        text = line.decode("utf-8")     # the server sends UTF-8 only
        obj = json.loads(text, parse_constant=_no_constant)
        if not isinstance(obj, dict) or type(obj.get("msgid")) is not int:
            raise AssertionError("not an object with an integer msgid: %r"
                                 % line[:300])
        return obj

    def recv(self, timeout=TIMEOUT):
        return self.parse(self.recv_line(timeout))

    def recv_msgid(self, msgid, timeout=TIMEOUT):
        m = self.recv(timeout)
        if m["msgid"] != msgid:
            raise AssertionError("expected msgid %d, got %r" % (msgid, m))
        return m

    def expect_none(self, timeout=0.3):
        deadline = time.monotonic() + timeout
        while not self.lines and time.monotonic() < deadline:
            if not self._fill(deadline - time.monotonic()) and self.eof:
                break
        if self.lines:
            raise AssertionError("unexpected message: %r" % self.lines[0][:300])
        if self.buf:
            raise AssertionError("unexpected partial data: %r" % self.buf[:300])

    def wait_closed(self, timeout=TIMEOUT):
        """True once the server closed the connection (data is kept)."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._fill(deadline - time.monotonic())
        return self.eof

    def closed(self, timeout=0.0):
        return self.wait_closed(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def shutdown(self):
        """Close at once with a FIN (the peer sees EOF immediately)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close()

    # ---- requests --------------------------------------------------

    def ping(self, timeout=TIMEOUT):
        """Round trip; returns the messages that arrived before the pong,
        which stay queued for recv()."""
        seq = next(self._seq) + 1000000
        self.send_obj({"msgid": PING, "seq": seq})
        skipped = []
        while True:
            line = self.recv_line(timeout)
            m = self.parse(line)
            if m["msgid"] == PONG and m.get("seq") == seq:
                break
            skipped.append(line)
        # put the others back in order
        self.lines.extendleft(reversed(skipped))
        return [self.parse(l) for l in skipped]

    sync = ping

    def whoami_full(self):
        self.send_obj({"msgid": WHOAMI})
        return self.recv_msgid(WHOAMI_ACK)

    def whoami(self):
        return self.whoami_full()["worker"]

    def register_raw(self, name, password):
        self.send_obj({"msgid": REG, "name": name, "password": password})
        return self.recv_msgid(REG_ACK)

    def register(self, name, password):
        r = self.register_raw(name, password)
        if r.get("errno") != 0 or type(r.get("id")) is not int:
            raise AssertionError("register %r failed: %r" % (name, r))
        return r["id"]

    def login_raw(self, uid, password):
        self.send_obj({"id": uid, "msgid": LOGIN, "password": password})
        return self.recv_msgid(LOGIN_ACK)

    def login(self, uid, password):
        r = self.login_raw(uid, password)
        if r.get("errno") != 0:
            raise AssertionError("login %r failed: %r" % (uid, r))
        return parse_login(r)

    def loginout(self, uid):
        self.send_obj({"id": uid, "msgid": LOGINOUT})

    def chat(self, uid, uname, toid, text, **extra):
        """extra may override any field, "name" and "id" included."""
        o = {"id": uid, "msg": text, "msgid": ONE_CHAT, "name": uname,
             "time": now_str(), "toid": toid}
        o.update(extra)
        self.send_obj(o)
        return o

    def groupchat(self, uid, uname, gid, text, **extra):
        o = {"groupid": gid, "id": uid, "msg": text, "msgid": GROUP_CHAT,
             "name": uname, "time": now_str()}
        o.update(extra)
        self.send_obj(o)
        return o

    def addfriend(self, uid, fid):
        self.send_obj({"friendid": fid, "id": uid, "msgid": ADD_FRIEND})

    def creategroup(self, uid, name, desc):
        self.send_obj({"groupdesc": desc, "groupname": name, "id": uid,
                       "msgid": CREATE_GROUP})

    def addgroup(self, uid, gid):
        self.send_obj({"groupid": gid, "id": uid, "msgid": ADD_GROUP})


def _no_constant(name):
    raise AssertionError("the server sent %s, which is not JSON" % name)


def _decode_list(r, key):
    v = r.get(key, [])
    if not isinstance(v, list):
        raise AssertionError("%s is not a list: %r" % (key, v))
    out = []
    for s in v:
        if not isinstance(s, str):
            raise AssertionError("%s holds a %s, not a JSON-encoded string: "
                                 "%r" % (key, type(s).__name__, s))
        o = json.loads(s)
        if not isinstance(o, dict):
            raise AssertionError("%s element is not an object: %r" % (key, s))
        out.append(o)
    return out


def parse_login(r):
    """A successful LOGIN_ACK with its string lists decoded (in place);
    the original is kept under "_raw"."""
    raw = dict(r)
    r = dict(r)
    r["_raw"] = raw
    r["friends"] = _decode_list(raw, "friends")
    r["offlinemsg"] = _decode_list(raw, "offlinemsg")
    groups = _decode_list(raw, "groups")
    for g in groups:
        if "users" not in g:
            raise AssertionError("group without \"users\": %r" % g)
        g["users"] = _decode_list(g, "users")
    r["groups"] = groups
    return r


def find(items, **kv):
    """The first dict in items whose fields match kv, or None."""
    for it in items:
        if all(it.get(k) == v for k, v in kv.items()):
            return it
    return None


def run(argv, input=None, timeout=30, env=None):
    """Run a command; returns CompletedProcess with bytes stdout/stderr."""
    return subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=env)
