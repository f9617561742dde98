#!/usr/bin/env python3
"""TLS to MySQL (db_tls): a private MariaDB with a certificate from a CA
this test makes, and require_secure_transport=ON.  db_tls = verify
works; a server certificate from another CA is refused with a clear log
line; a plain connection is refused by the server."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
from chatlib import ONE_CHAT  # noqa: E402
from test_features import wait_offline  # noqa: E402


def openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args),
                                                 r.stderr.decode()))


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", name + ".key", "-out", name + ".pem",
            "-subj", "/CN=chatd test %s" % name, cwd=d)
    return os.path.join(d, name + ".pem")


def make_server_cert(d, ca):
    """A certificate for 127.0.0.1 (subjectAltName), signed by ca."""
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", ca + ".pem",
            "-CAkey", ca + ".key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    return os.path.join(d, "server.pem"), os.path.join(d, "server.key")


class DbTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cluster.require(("mariadb",))
        if not shutil.which("openssl"):
            sys.stderr.write("*** no openssl: skipped\n")
            sys.exit(cluster.SKIP)
        cls.pki = tempfile.mkdtemp(prefix="chatd-pki-", dir="/tmp")
        cls.ca = make_ca(cls.pki, "ca")
        cls.other_ca = make_ca(cls.pki, "other")
        cert, key = make_server_cert(cls.pki, "ca")
        cls.db = cluster.MariaDB(server_opts=[
            "--ssl-ca=" + cls.ca, "--ssl-cert=" + cert, "--ssl-key=" + key,
            "--require-secure-transport=ON"])
        try:
            cls.db.start()
        except Exception:
            shutil.rmtree(cls.pki, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.db.stop()
        shutil.rmtree(cls.db.dir, ignore_errors=True)
        shutil.rmtree(cls.pki, ignore_errors=True)

    def refused(self, extra):
        """chatd with these keys must not start; its log text."""
        srv = cluster.Node(self.db.spec, workers=1, extra=extra)
        try:
            srv.write_config()
            r = chatlib.run([chatlib.chatd_bin(), "-d", "-f", srv.conf],
                            timeout=60)
            text = (r.stdout + r.stderr).decode("utf-8", "replace")
            self.assertEqual(r.returncode, 1, text)
            self.assertFalse(os.path.exists(srv.pid_file))
            return text
        finally:
            shutil.rmtree(srv.dir, ignore_errors=True)

    def test_verify(self):
        before = self.ssl_accepts()
        with cluster.Node(self.db.spec, workers=2, extra={
                "db_tls": "verify", "db_tls_ca": self.ca}) as srv:
            a, b = srv.users_on_two_workers("tls")
            a.chat(b.id, "over TLS")
            m = b.c.recv_msgid(ONE_CHAT)
            self.assertEqual(m["msg"], "over TLS")
            # stored in MariaDB, read back at login: the link works
            b.c.close()
            # away for sure: a chat written to the dropped connection
            # would be the seed's own loss window, not this test's point
            self.assertTrue(wait_offline(srv, b.id))
            a.chat(b.id, "stored")
            a.c.sync()
            r = b.reconnect()
            self.assertIn("stored", [o["msg"] for o in r["offlinemsg"]])
        self.assertGreater(self.ssl_accepts(), before)

    def ssl_accepts(self):
        rows = self.db.sql("SELECT VARIABLE_VALUE FROM "
                           "information_schema.GLOBAL_STATUS WHERE "
                           "VARIABLE_NAME = 'SSL_ACCEPTS'")
        return int(rows[0][0])

    def test_other_ca_refused(self):
        text = self.refused({"db_tls": "verify",
                             "db_tls_ca": self.other_ca})
        self.assertIn("(db_tls = verify)", text)
        self.assertRegex(text.lower(), r"certificate|verif|ssl|tls")

    def test_required_without_verification(self):
        # encrypted, but any certificate is taken: say so in the docs
        with cluster.Node(self.db.spec, workers=1, extra={
                "db_tls": "required", "db_tls_ca": self.other_ca}) as srv:
            srv.user("req")

    def test_plain_refused_by_server(self):
        text = self.refused({"db_tls": "off"})
        self.assertIn("database unavailable", text)

    def test_verify_needs_ca(self):
        srv = cluster.Node(self.db.spec, workers=1,
                             extra={"db_tls": "verify"})
        try:
            srv.write_config()
            r = chatlib.run([chatlib.chatd_bin(), "-n", "-f", srv.conf])
            self.assertEqual(r.returncode, 1)
            self.assertIn(b"db_tls = verify needs db_tls_ca",
                          r.stdout + r.stderr)
        finally:
            shutil.rmtree(srv.dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
