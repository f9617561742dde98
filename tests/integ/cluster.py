"""cluster - private Redis, MariaDB and nginx for chatd's cluster tests,
and chatd nodes wired to them (Python 3 stdlib only; builds on chatlib).

Every server runs on a free loopback port with its files in a temporary
directory and is stopped by the test that started it:

    Redis()     redis-server --save '' --appendonly no, with a password
                (and --latency-tracking no on Redis 7)
    MariaDB()   scripts/mariadb-private start DIR / stop DIR
    Nginx()     nginx -p DIR with the stream module, round robin
    Node()      a chatlib.Server with storage, redis and node_id set

require() checks that the servers are installed: in CI (CI=true) a
missing one fails the test; elsewhere the test says loudly that it was
skipped and exits 77 (automake's SKIP).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sqlite3
import sys
import tempfile
import time
import unittest

import chatlib

_here = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.path.join(_here, "..", ".."))
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

SKIP = 77


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def have_mariadb():
    return bool(find_prog("mariadbd") or find_prog("mysqld"))


def have_cluster():
    return have_mariadb() and bool(find_prog("redis-server"))


def skip_unless(have, why):
    """unittest.skipUnless, but never in CI: there a missing server is a
    failure (the test runs and fails when it starts the server)."""
    return unittest.skipUnless(have or in_ci(), why)


def find_prog(name):
    p = shutil.which(name)
    if p:
        return p
    for d in ("/usr/sbin", "/usr/bin", "/sbin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


_REDIS_VERSION = {}


def redis_version(prog):
    """(major, minor) of the redis-server at prog; (0, 0) when unknown."""
    if prog not in _REDIS_VERSION:
        v = (0, 0)
        try:
            out = subprocess.run([prog, "--version"], capture_output=True,
                                 text=True, timeout=60).stdout
            m = re.search(r"\bv=(\d+)\.(\d+)", out)
            if m:
                v = (int(m.group(1)), int(m.group(2)))
        except (OSError, subprocess.SubprocessError):
            pass
        _REDIS_VERSION[prog] = v
    return _REDIS_VERSION[prog]


def require(what=("redis", "mariadb", "nginx")):
    """Exit 77 (SKIP) when a server is missing, or fail in CI."""
    missing = []
    if "redis" in what and not find_prog("redis-server"):
        missing.append("redis-server (apt-get install redis-server)")
    if "mariadb" in what and not (find_prog("mariadbd") or
                                  find_prog("mysqld")):
        missing.append("mariadbd (apt-get install mariadb-server)")
    if "nginx" in what:
        if not find_prog("nginx"):
            missing.append("nginx (apt-get install nginx-light)")
        elif not os.path.exists(STREAM_MODULE):
            missing.append("the nginx stream module %s (apt-get install "
                           "libnginx-mod-stream)" % STREAM_MODULE)
    if not missing:
        return
    name = os.path.basename(sys.argv[0])
    if in_ci():
        sys.stderr.write("%s: FAIL: CI=true and missing: %s\n"
                         % (name, "; ".join(missing)))
        sys.exit(1)
    banner = "*" * 72
    msg = ("\n%s\n*** %s SKIPPED: missing %s\n*** scripts/deps installs "
           "them; in CI this is a failure.\n%s\n"
           % (banner, name, "; ".join(missing), banner))
    sys.stderr.write(msg)
    sys.stdout.write(msg)
    sys.exit(SKIP)


def wait_port(port, proc=None, timeout=20.0, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("%s exited with %r at start"
                                 % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("%s did not listen on %d within %.0f s"
                         % (what, port, timeout))


# ---- Redis -------------------------------------------------------------

def stop_proc(proc):
    """TERM a server we started (by its pid), KILL it after 10 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RedisError(Exception):
    pass


def _resp_encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise RedisError("connection closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _n(self, n):
        while len(self.buf) < n + 2:
            d = self.sock.recv(65536)
            if not d:
                raise RedisError("connection closed")
            self.buf += d
        v, self.buf = self.buf[:n], self.buf[n + 2:]
        return v

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._n(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RedisError("bad reply %r" % line)


class _Private:
    """A private server in self.dir writing self.log_name there."""
    log_name = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(os.path.join(self.dir, self.log_name)) as f:
                return f.read()
        except OSError:
            return ""


class Redis(_Private):
    """A private redis-server with a password (chatd must AUTH)."""
    log_name = "redis.log"

    def __init__(self, appendonly=False, password=None, extra=()):
        self.appendonly = appendonly
        self.extra = list(extra)        # e.g. --replicaof HOST PORT
        self.dir = tempfile.mkdtemp(prefix="chatd-redis-")
        self.port = chatlib.free_port()
        self.password = password or "pw-%d-%d" % (os.getpid(),
                                                  int(time.time()))
        self.proc = None
        # the cluster key every node of a test signs its items with
        self.key = os.urandom(32).hex()
        self.key_file = os.path.join(self.dir, "cluster.key")
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600)
        os.write(fd, (self.key + "\n").encode())
        os.close(fd)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        prog = find_prog("redis-server")
        # Redis 7 keeps per-command latency percentiles (1.7% of its CPU
        # in bench-cluster's profile, BENCHMARKS.md) that nothing here reads
        quiet = (["--latency-tracking", "no"]
                 if redis_version(prog) >= (7, 0) else [])
        self.proc = subprocess.Popen(
            [prog, "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "yes" if self.appendonly else "no", "--appendfsync", "everysec",
             "--dir", self.dir, "--requirepass", self.password,
             "--logfile", os.path.join(self.dir, "redis.log"),
             "--daemonize", "no"] + quiet + self.extra,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, what="redis-server")
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.cmd("PING") == "PONG":
                    return self
            except (OSError, RedisError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def cmd(self, *args):
        s = socket.create_connection(("127.0.0.1", self.port), 5)
        try:
            s.sendall(_resp_encode(["AUTH", self.password]) +
                      _resp_encode(args))
            r = _Reader(s)
            r.reply()
            return r.reply()
        finally:
            s.close()

    def get(self, key):
        v = self.cmd("GET", key)
        return v.decode() if v is not None else None

    def stop(self):
        stop_proc(self.proc)
        self.proc = None


class Sentinel:
    """A private Redis Sentinel (redis-server --sentinel) watching the
    primaries masters [(name, Redis)]; quick to judge one down (1 s)."""

    def __init__(self, masters, quorum):
        self.dir = tempfile.mkdtemp(prefix="chatd-sentinel-")
        self.port = chatlib.free_port()
        self.conf = os.path.join(self.dir, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndaemonize no\n"
                    "logfile %s\ndir %s\n"
                    % (self.port, os.path.join(self.dir, "sentinel.log"),
                       self.dir))
            for name, r in masters:
                f.write("sentinel monitor %s 127.0.0.1 %d %d\n"
                        "sentinel auth-pass %s %s\n"
                        "sentinel down-after-milliseconds %s 1000\n"
                        "sentinel failover-timeout %s 5000\n"
                        % (name, r.port, quorum, name, r.password, name,
                           name))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [find_prog("redis-server"), self.conf, "--sentinel"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, what="redis-sentinel")
        return self

    def primary(self, name):
        """(host, port) of the primary of name, as this Sentinel says."""
        s = socket.create_connection(("127.0.0.1", self.port), 5)
        try:
            s.sendall(_resp_encode(["SENTINEL", "get-master-addr-by-name",
                                    name]))
            h, p = _Reader(s).reply()
            return h.decode(), int(p)
        finally:
            s.close()

    def cleanup(self):
        stop_proc(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- MariaDB -----------------------------------------------------------

class MariaDB:
    """scripts/mariadb-private: a throwaway server and an empty database."""

    def __init__(self, server_opts=()):
        # a Unix socket path must stay short: not under a long TMPDIR
        self.dir = tempfile.mkdtemp(prefix="chatd-mdb-", dir="/tmp")
        self.env = {}
        self.script = os.path.join(SRCDIR, "scripts", "mariadb-private")
        self.server_opts = list(server_opts)    # more mariadbd options

    def start(self):
        t0 = time.monotonic()
        env = dict(os.environ)
        env["MARIADB_PRIVATE_OPTS"] = " ".join(self.server_opts)
        r = subprocess.run([self.script, "start", self.dir], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=180)
        if r.returncode != 0:
            raise AssertionError("mariadb-private start failed:\n%s"
                                 % r.stderr.decode("utf-8", "replace"))
        for line in r.stdout.decode().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                self.env[k.strip()] = v.strip()
        if "STORE_SPEC" not in self.env:
            raise AssertionError("mariadb-private printed no STORE_SPEC: %r"
                                 % r.stdout)
        self.start_seconds = time.monotonic() - t0
        return self

    @property
    def spec(self):
        return self.env["STORE_SPEC"]

    def sql(self, query, db="chatd_test"):
        """Run SQL as root over the private socket; rows as lists."""
        client = find_prog("mariadb") or find_prog("mysql")
        r = subprocess.run(
            [client, "--no-defaults", "--protocol=socket",
             "--socket=" + self.env["MYSQL_SOCKET"], "-uroot",
             "-p" + self.env["MYSQL_ROOT_PASSWORD"], "--batch",
             "--skip-column-names", db, "-e", query],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        if r.returncode != 0:
            raise AssertionError("sql %r: %s" % (query, r.stderr.decode()))
        return [l.split("\t") for l in r.stdout.decode().splitlines()]

    def stop(self):
        subprocess.run([self.script, "stop", self.dir],
                       stdout=subprocess.DEVNULL, timeout=120)

    def insert(self, query, params):
        """query with "?" placeholders filled from params (test data
        only: strings are quoted, not escaped)."""
        self.sql(query.replace("?", "%s") % tuple(
            "'%s'" % x if isinstance(x, str) else str(x) for x in params))


def sqlite_old(test, srv, schema_file, fill, old_version):
    """srv's SQLite store made by an older schema: schema_file, then
    fill(execute) writes the rows; the schema must read old_version.
    Returns the file's path (srv, started, upgrades it)."""
    path = os.path.join(srv.dir, "chat.db")
    db = sqlite3.connect(path)
    try:
        with open(schema_file) as f:
            db.executescript(f.read())
        fill(db.execute)
        db.commit()
        test.assertEqual(db.execute("PRAGMA user_version").fetchone()[0],
                         old_version)
    finally:
        db.close()
    return path


def mysql_upgrade(test, schema_file, fill, old_version, check):
    """A private MariaDB on an older schema: schema_file, then fill(db)
    writes the rows; the schema must read old_version.  A node started
    on it upgrades it, then check(node) runs.  Returns the database,
    still running (the caller asserts what the upgrade left and stops
    it); stopped here when anything fails."""
    db = MariaDB().start()
    try:
        with open(schema_file) as f:
            db.sql(f.read())
        fill(db)
        test.assertEqual(db.sql("SELECT MAX(version) FROM SchemaVersion"),
                         [[str(old_version)]])
        with Node(db.spec, workers=2) as srv:
            check(srv)
    except BaseException:
        db.stop()
        raise
    return db


# ---- nginx -------------------------------------------------------------

NGINX_CONF = """\
load_module %(module)s;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log info;
events { worker_connections 1024; }
stream {
    upstream chatd {
%(servers)s
    }
    server {
        listen 127.0.0.1:%(port)d;
        proxy_pass chatd;
        proxy_connect_timeout 2s;
        proxy_next_upstream on;
        proxy_next_upstream_tries 3;
        proxy_timeout 10m;
        tcp_nodelay on;
    }
}
"""


class Nginx(_Private):
    """nginx in the foreground with a stream upstream of the nodes."""
    log_name = "error.log"

    def __init__(self, ports):
        self.dir = tempfile.mkdtemp(prefix="chatd-nginx-")
        self.port = chatlib.free_port()
        self.conf = os.path.join(self.dir, "nginx.conf")
        servers = "\n".join(
            "        server 127.0.0.1:%d max_fails=3 fail_timeout=30s;" % p
            for p in ports)
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF % {"module": STREAM_MODULE, "dir": self.dir,
                                  "servers": servers, "port": self.port})
        self.proc = None

    def start(self):
        argv = [find_prog("nginx"), "-p", self.dir + "/", "-c", self.conf,
                "-e", os.path.join(self.dir, "error.log"),
                "-g", "daemon off;"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, self.proc, what="nginx")
        except AssertionError:
            raise AssertionError("nginx did not start:\n%s"
                                 % self.log_text()[-2000:])
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# ---- teardown ----------------------------------------------------------

def two_nodes(env, prefix, setup=None):
    """MariaDB, Redis and nodes A and B on them, started once into env (a
    module's dict; stop_all(env) ends them).  setup(node) runs before a
    node starts (more configuration)."""
    if "B" not in env:
        try:
            env["redis"] = Redis()
            env["redis"].start()
            env["db"] = MariaDB()
            env["db"].start()
            for k in ("A", "B"):
                env[k] = Node(env["db"].spec, env["redis"],
                              "%s%s-%d" % (prefix, k, os.getpid()))
                if setup is not None:
                    setup(env[k])
                env[k].start()
        except BaseException:
            stop_all(env)
            raise
    return env


def stop_nodes(nodes):
    """Stop (and check, clean up) each node not stopped yet; the problems
    as a list of strings, so that every node is stopped."""
    problems = []
    for n in nodes:
        try:
            if not n.stopped:
                n.__exit__(None, None, None)
        except Exception as e:
            problems.append("node %s: %s" % (n.node_id, e))
    return problems


def stop_all(env, keys=("nginx", "A", "B", "redis", "db")):
    """Stop whatever of env[key] was started (nodes, nginx, Redis,
    MariaDB), even after a failure half-way; raise once with every
    problem."""
    problems = []
    for k in keys:
        x = env.pop(k, None)
        if x is None:
            continue
        try:
            if isinstance(x, chatlib.Server):
                x.__exit__(None, None, None)    # stops, checks, cleans up
            elif isinstance(x, MariaDB):
                x.stop()
            else:
                x.cleanup()
        except Exception as e:
            problems.append("%s: %s" % (k, e))
    if problems:
        raise AssertionError("\n".join(problems))


# ---- chatd nodes -------------------------------------------------------

class Node(chatlib.Server):
    """A chatd node.  Its config holds passwords, so it is mode 600 (chatd
    refuses it otherwise); chatlib.Server writes into the file we create
    here, which keeps the mode."""

    def __init__(self, storage, redis=None, node_id=None, workers=2,
                 extra=None):
        keys = dict(extra or {})
        if redis is not None:
            keys["redis"] = redis.addr
            keys["redis_password"] = redis.password
            keys["node_id"] = node_id
            keys.setdefault("cluster_key_file", redis.key_file)
            # CHATD_ITEM_VERSION=3: run a cluster test in another format
            if os.environ.get("CHATD_ITEM_VERSION"):
                keys.setdefault("cluster_item_version",
                                int(os.environ["CHATD_ITEM_VERSION"]))
        super().__init__(workers=workers, storage=storage, extra=keys)
        os.close(os.open(self.conf, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(self.conf, 0o600)
        self.node_id = node_id
        self.redis = redis

    def joined(self):
        """Every worker announced itself in Redis (slot keys set)."""
        if self.redis is None:
            return True
        for i in range(self.workers):
            if self.redis.get("chatd:slot:%s:%d" % (self.node_id, i)) \
                    is None:
                return False
        return True

    def start(self):
        super().start()
        if not chatlib.wait_for(self.joined, 10):
            raise AssertionError("node %s did not join the cluster:\n%s"
                                 % (self.node_id, self.log_text()[-3000:]))
        return self

    def stop(self, *args, **kw):
        if self.proc is None:           # never started
            self.stopped = True
            return []
        return super().stop(*args, **kw)

    def kill_hard(self):
        """SIGKILL the master and every worker by pid, as a crash of the
        machine would; clean up what chatd itself would have."""
        pids = [self.pid] + self.worker_pids()
        # freeze them all first: a worker that saw its master die would
        # otherwise still clean up (PR_SET_PDEATHSIG), which a crashed
        # machine does not
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for p in pids:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
        self.proc.wait(10)
        for p in pids[1:]:
            chatlib.wait_for(lambda: not chatlib.pid_alive(p), 5)
        self.stopped = True
        self._errf.close()
        for c in self._clients:
            c.close()
        for n in self.shm_seen:
            try:
                os.unlink("/dev/shm/" + n)
            except OSError:
                pass
        try:
            os.unlink(self.pid_file)
        except OSError:
            pass
        return pids

    def owns_pid(self, pid):
        return pid == self.pid or pid in self.worker_pids()
