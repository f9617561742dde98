#!/usr/bin/env python3
"""The cluster tests (test_cluster.py) with the Redis link encrypted by
spiped(1), as README.md documents it: redis-server listens on loopback
only, an spiped -d in front of it takes the encrypted connections, and
the nodes talk to a local spiped -e that encrypts for them (one here,
one per node host in production).  Also checks that what crosses the
encrypted leg is not Redis plain text.  Needs spiped (apt-get install
spiped); without it SKIPPED (exit 77), except in CI."""

import os
import socket
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
import test_cluster  # noqa: E402  its tests run here, through the tunnel


class TunnelledRedis(cluster.Redis):
    """redis-server behind an spiped pair; addr is the plain local end.
    stop()/start() restart only redis-server (test_y_redis_restart): the
    tunnel stays, as it would on a real host."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.enc_port = chatlib.free_port()     # encrypted leg
        self.local_port = chatlib.free_port()   # what the nodes use
        self.key = os.path.join(self.dir, "spiped.key")
        with open(self.key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(self.key, 0o600)
        self.tunnel = []

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.local_port

    def _spiped(self, mode, src, dst, name):
        with open(os.path.join(self.dir, name + ".log"), "ab") as log:
            p = subprocess.Popen(
                [cluster.find_prog("spiped"), mode, "-F",
                 "-s", "[127.0.0.1]:%d" % src, "-t", "[127.0.0.1]:%d" % dst,
                 "-k", self.key, "-p", os.path.join(self.dir, name + ".pid")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=log)
        cluster.wait_port(src, p, what="spiped " + mode)
        return p

    def start(self):
        super().start()
        if not self.tunnel:
            self.tunnel = [
                self._spiped("-d", self.enc_port, self.port, "server"),
                self._spiped("-e", self.local_port, self.enc_port,
                             "client")]
        return self

    def cleanup(self):
        for p in self.tunnel:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.tunnel = []
        super().cleanup()


def check_tunnel(r):
    """The encrypted leg speaks no Redis; the plain end reaches Redis."""
    s = socket.create_connection(("127.0.0.1", r.enc_port), 5)
    try:
        s.settimeout(1)
        s.sendall(b"PING\r\n")
        try:
            data = s.recv(100)
        except socket.timeout:
            data = b""
        assert b"PONG" not in data and b"NOAUTH" not in data, data
    finally:
        s.close()
    c = socket.create_connection(("127.0.0.1", r.local_port), 5)
    try:
        c.settimeout(5)
        c.sendall(b"AUTH %s\r\nPING\r\n" % r.password.encode())
        deadline = time.monotonic() + 5
        data = b""
        while b"PONG" not in data and time.monotonic() < deadline:
            data += c.recv(100)
        assert b"+PONG" in data, data
    finally:
        c.close()


_start_cluster = test_cluster.start_cluster


def start_tunnelled():
    """test_cluster's own start, with a TunnelledRedis for its Redis."""
    if not cluster.find_prog("spiped"):
        msg = "test_redis_tunnel: no spiped (apt-get install spiped)"
        if cluster.in_ci():
            raise AssertionError(msg)
        sys.stderr.write("\n*** %s: SKIPPED\n" % msg)
        sys.exit(cluster.SKIP)
    plain = cluster.Redis
    cluster.Redis = TunnelledRedis
    try:
        _start_cluster()
    finally:
        cluster.Redis = plain
    r = test_cluster.ENV["redis"]
    assert isinstance(r, TunnelledRedis)
    check_tunnel(r)
    print("Redis through spiped: nodes -> %s -> %d (encrypted) -> redis %d"
          % (r.addr, r.enc_port, r.port), file=sys.stderr)


test_cluster.start_cluster = start_tunnelled


if __name__ == "__main__":
    unittest.main(module=test_cluster, verbosity=2)
