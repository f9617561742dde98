#!/usr/bin/env python3
"""A cluster on a sharded, highly available bus: five chatd nodes (one
worker each) on a private MariaDB and two Redis instances, each a
Sentinel-monitored primary with a replica (three Sentinels watch both),
configured as redis = sentinel://s1,s2,s3/bus0,bus1.

  1. one-to-one chats and group chats between every pair of nodes, with
     users on both instances (each user's presence is on the instance its
     id hashes to, and only there);
  2. both Redis primaries SIGKILLed under acknowledged load
     (test_reliability's traffic: plain and acknowledged chats from node 0
     to node 1): the Sentinels promote the replicas, the nodes follow;
     accepted, delivered,
     lost (must be 0) and duplicated are counted, traffic must resume (the
     node's /health, "degraded" meanwhile, answers "ok" again) within 10 s, and the metrics and
     /health say that a failover was followed.

  3. group fan-out by node: a 200-member group (members online on every
     node, and offline ones) costs one Redis item per destination worker,
     not one per member: the Redis commands of one group chat (INFO
     commandstats on both primaries, script calls included, less the
     idle rate of the bus) must stay <= 30; every online member gets
     each chat once, every offline member finds each stored once; and a
     list item put straight into a worker's queue is delivered to the
     member there and stored for the one who is not, once each.
  4. a rolling upgrade: a sixth node with cluster_item_version = 1 puts
     only single-user version 1 items (what older releases read) into
     another worker's queue, for a group chat and one-to-one chats alike,
     and each arrives once.
Needs redis-server and mariadbd: without them SKIPPED (exit 77), except in
CI (CI=true)."""

import os
import json
import re
import signal
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
import test_cluster  # noqa: E402
import reltraffic  # noqa: E402
from chatlib import GROUP_CHAT, ONE_CHAT  # noqa: E402

NODES = 5
INSTANCES = 2
ENV = {}


def shard(uid, n=INSTANCES):
    """chatd's instance of uid (src/server/cluster/shard.c)."""
    m = 0xffffffff
    x = uid & m
    x ^= x >> 16
    x = (x * 0x85ebca6b) & m
    x ^= x >> 13
    x = (x * 0xc2b2ae35) & m
    x ^= x >> 16
    return (x * n) >> 32


class Bus:
    """What cluster.Node needs of its Redis, for Sentinel-watched pairs:
    the address chatd is given, the password, the key, and reads from
    whichever Redis of an instance is its primary now."""

    def __init__(self, pairs, sentinels):
        self.pairs = pairs              # [(name, primary, replica)]
        self.sentinels = sentinels
        self.password = pairs[0][1].password
        self.key_file = pairs[0][1].key_file
        self.key = pairs[0][1].key
        self.addr = "sentinel://%s/%s" % (",".join(
            "127.0.0.1:%d" % s.port for s in sentinels),
            ",".join(p[0] for p in pairs))

    def current(self, i):
        name, primary, replica = self.pairs[i]
        _, port = self.sentinels[0].primary(name)
        return primary if port == primary.port else replica

    def get(self, key):
        """key's value when every instance has it (slot keys), or None."""
        vals = [self.current(i).get(key) for i in range(len(self.pairs))]
        return None if None in vals else vals[0]


def setUpModule():
    cluster.require(("redis", "mariadb"))
    try:
        t0 = time.monotonic()
        ENV["redis"] = []
        pairs = []
        pw = None
        for i in range(INSTANCES):
            primary = cluster.Redis(password=pw)
            pw = primary.password
            ENV["redis"].append(primary)
            primary.start()
            replica = cluster.Redis(
                password=pw, extra=["--replicaof", "127.0.0.1",
                                    str(primary.port), "--masterauth", pw])
            ENV["redis"].append(replica)
            replica.start()
            pairs.append(("bus%d" % i, primary, replica))
        ENV["sentinels"] = []
        for _ in range(3):
            ENV["sentinels"].append(cluster.Sentinel(
                [(p[0], p[1]) for p in pairs], 2).start())
        # the replicas are in sync before anything depends on them
        for _, _, replica in pairs:
            ok = chatlib.wait_for(lambda: b"master_link_status:up" in
                                  replica.cmd("INFO", "replication"), 15)
            assert ok, "a replica did not sync"
        ENV["bus"] = Bus(pairs, ENV["sentinels"])
        ENV["db"] = cluster.MariaDB().start()
        extra = {"db_query_timeout_ms": 1500, "db_connect_timeout_ms": 1500,
                 # test_3 registers 200 users from one address
                 "register_rate_per_ip": 0}
        ENV["nodes"] = []
        for i in range(NODES):
            e = dict(extra, metrics_listen=str(chatlib.free_port()))
            n = cluster.Node(ENV["db"].spec, ENV["bus"], "so%d-%d" %
                             (i, os.getpid()), workers=1, extra=e)
            n.metrics_port = int(e["metrics_listen"])
            ENV["nodes"].append(n.start())
        print("cluster up in %.1f s: %d nodes, %d instances, bus %s" %
              (time.monotonic() - t0, NODES, INSTANCES, ENV["bus"].addr),
              file=sys.stderr)
        # reltraffic's traffic runs between its ENV's A and B
        reltraffic.ENV["A"] = ENV["nodes"][0]
        reltraffic.ENV["B"] = ENV["nodes"][1]
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    if reltraffic.ROWS:
        reltraffic.print_table()
    problems = []
    if os.environ.get("SCALEOUT_DEBUG"):
        for n in ENV.get("nodes", []):
            sys.stderr.write("---- %s\n%s\n" % (n.node_id,
                                                  n.log_text()[-4000:]))
    problems += cluster.stop_nodes(ENV.pop("nodes", []))
    for s in ENV.pop("sentinels", []):
        s.cleanup()
    for r in ENV.pop("redis", []):
        r.cleanup()
    if "db" in ENV:
        ENV.pop("db").stop()
    if problems:
        raise AssertionError("\n".join(problems))


def http(node, path):
    """(status, body) of GET path on node's metrics listener."""
    url = "http://127.0.0.1:%d%s" % (node.metrics_port, path)
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def metric(node, name):
    _, body = http(node, "/metrics")
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class ScaleOut(unittest.TestCase):
    quiet = test_cluster.Cluster.quiet
    make_group = test_cluster.Cluster.make_group
    assert_forwarded = test_cluster.Cluster.assert_forwarded

    def test_1_every_pair(self):
        nodes, bus = ENV["nodes"], ENV["bus"]
        us = [test_cluster.login_on(n.client, "so%d" % i)
              for i, n in enumerate(nodes)]
        # users on every instance (more on node 0 until there are)
        for _ in range(30):
            if len({shard(u.id) for u in us}) == INSTANCES:
                break
            us.append(test_cluster.login_on(nodes[0].client, "so0"))
        self.assertEqual(len({shard(u.id) for u in us}), INSTANCES)
        for u in us:
            for i in range(INSTANCES):
                v = bus.current(i).get("chatd:on:%d" % u.id)
                if i == shard(u.id):
                    self.assertIsNotNone(v, "presence of %d" % u.id)
                else:
                    self.assertIsNone(v, "presence of %d on %d" % (u.id, i))
        for i, a in enumerate(us):
            for j, b in enumerate(us):
                if i == j:
                    continue
                sent = a.chat(b.id, "pair %d->%d" % (i, j))
                self.assert_forwarded(b.c.recv_msgid(ONE_CHAT), sent, a)
        gid = self.make_group(us[0], us[1:])
        for i, a in enumerate(us):
            sent = a.groupchat(gid, "group from %d" % i)
            for j, b in enumerate(us):
                if j != i:
                    self.assert_forwarded(b.c.recv_msgid(GROUP_CHAT), sent,
                                          a)
        self.quiet(*us)

    def test_2_primary_killed(self):
        bus, B = ENV["bus"], ENV["nodes"][1]
        for i, (_, primary, _) in enumerate(bus.pairs):
            self.assertIs(bus.current(i), primary)
        st = {}

        def fault(t):
            if t >= 1.0 and "killed" not in st:
                for _, primary, _ in bus.pairs:
                    primary.proc.kill()         # by its pid: SIGKILL
                    primary.proc.wait()
                st["killed"] = time.monotonic()
                st["polled"] = 0.0
            if "killed" not in st or "resumed" in st:
                return None if "resumed" in st else True
            now = time.monotonic()
            if now - st["polled"] >= 0.2:
                st["polled"] = now
                code, body = http(B, "/health")
                # Redis down: 200 "degraded: redis unreachable ..."
                if code == 503 or body.startswith("degraded"):
                    st["down_seen"] = True
                elif code == 200 and body.startswith("ok") and \
                        st.get("down_seen"):
                    st["resumed"] = now
            if now - st["killed"] > 30:
                st["resumed"] = None
                return None
            return True
        reltraffic.run_traffic(self, "both redis primaries killed, "
                                     "Sentinel failover", fault,
                                     settle=10.0)
        self.assertIsNotNone(st.get("resumed"), "/health never came back")
        took = st["resumed"] - st["killed"]
        print("failover: /health of node 1 back %.1f s after the kill" %
              took, file=sys.stderr)
        self.assertLessEqual(took, 10.0)
        for i, (_, _, replica) in enumerate(bus.pairs):
            self.assertIs(bus.current(i), replica)
        for n in ENV["nodes"]:
            # one worker per node, which follows each instance's failover;
            # a worker learns of an instance's failover at its next lost
            # link or Sentinel poll, and publishes its counters once a
            # second: wait for it (bounded)
            chatlib.wait_for(lambda: metric(
                n, "chatd_redis_failovers_total") >= INSTANCES, 20, 0.2)
            self.assertEqual(metric(n, "chatd_redis_failovers_total"),
                             INSTANCES, n.node_id)
            self.assertIn("failover", http(n, "/health")[1])
            self.assertIn("failover followed", n.log_text())

        # and traffic flows between every pair again, live
        self.test_1_every_pair()
        # the new primaries have no replica: batches go on, counted (the
        # workers publish their counters every second)
        self.assertTrue(chatlib.wait_for(lambda: (metric(
            ENV["nodes"][0], "chatd_bus_unreplicated_total") or 0) > 0, 5))


def commands(bus):
    """Redis commands run so far on every current primary (calls of each
    command, those run by scripts included), as {name: calls}."""
    out = {}
    for i in range(len(bus.pairs)):
        text = bus.current(i).cmd("INFO", "commandstats").decode()
        for line in text.splitlines():
            if not line.startswith("cmdstat_"):
                continue
            name, rest = line[8:].split(":", 1)
            calls = int(rest.split(",")[0].split("=")[1])
            out[name] = out.get(name, 0) + calls
    return out


# what a chat can cost; the idle bus uses only blmove (timeouts) and
# evalsha (reaps, one srandmember each) of these
CHAT_PATH = ("evalsha", "mget", "rpush", "lrem", "lrange", "ltrim", "llen",
             "wait", "blmove")


def chat_path(d):
    """Commands of d that a chat can cause, less the reaps'."""
    return sum(d.get(k, 0) for k in CHAT_PATH) - d.get("srandmember", 0)


def delta(a, b):
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)
            if b.get(k, 0) != a.get(k, 0)}


class FanOut(unittest.TestCase):
    """A group chat crosses Redis once per destination worker."""

    MEMBERS = 200
    ONLINE = 100        # spread over every node; the others are offline
    TRIALS = 5

    @classmethod
    def setUpClass(cls):
        nodes = ENV["nodes"]
        cls.owner = test_cluster.login_on(nodes[0].client, "fo")
        cls.online, offline = [], []
        for i in range(cls.MEMBERS - 1):
            node = nodes[i % NODES]
            u = test_cluster.login_on(node.client, "fo")
            (cls.online if i < cls.ONLINE else offline).append(u)
        gid = ScaleOut.make_group(cls, cls.owner, cls.online + offline)
        cls.gid = gid
        cls.offline_ids = [u.id for u in offline]
        for u in offline:
            u.c.close()
        bus = ENV["bus"]
        for u in offline:
            ok = chatlib.wait_for(lambda: bus.current(shard(u.id)).get(
                "chatd:on:%d" % u.id) is None, 10)
            assert ok, "presence of %d not released" % u.id

    @classmethod
    def tearDownClass(cls):
        for u in [cls.owner] + cls.online:
            u.c.close()

    quiet = test_cluster.Cluster.quiet

    def chat_all(self, text):
        """One group chat; returns once every online member got it."""
        sent = self.owner.groupchat(self.gid, text)
        for u in self.online:
            m = u.c.recv_msgid(GROUP_CHAT, timeout=30)
            self.assertEqual(m["msg"], sent["msg"], u.id)
        return sent

    def test_1_commands_per_group_chat(self):
        bus = ENV["bus"]
        self.chat_all("fan-out warm-up")
        # the idle bus: BLMOVE timeouts (one a second per worker and
        # instance) and the reaps, whose script calls are told by their
        # SRANDMEMBER; heartbeats, Sentinels and replicas use no command
        # of the chat path
        time.sleep(1.0)
        t0, c0 = time.monotonic(), commands(bus)
        time.sleep(4.0)
        t1, c1 = time.monotonic(), commands(bus)
        idle = chat_path(delta(c0, c1)) / (t1 - t0)
        costs, shown = [], None
        for k in range(self.TRIALS):
            time.sleep(0.3)
            t0, c0 = time.monotonic(), commands(bus)
            self.chat_all("fan-out %d" % k)
            # the acknowledgements follow the deliveries at once
            time.sleep(0.2)
            t1, c1 = time.monotonic(), commands(bus)
            d = delta(c0, c1)
            costs.append(chat_path(d) - idle * (t1 - t0))
            shown = shown or d
        costs.sort()
        cost = costs[len(costs) // 2]
        print("group chat, %d members (%d online over %d nodes, %d "
              "instances): %.1f Redis commands (median of %s; idle %.1f/s; "
              "all commands of the first: %s)" % (
                  self.MEMBERS, self.ONLINE, NODES, INSTANCES, cost,
                  ["%.1f" % c for c in costs], idle, sorted(shown.items())),
              file=sys.stderr)
        # one item per member cost ~7 commands each: 1,400 here
        self.assertLessEqual(cost, 30)
        for u in self.online:
            self.quiet(u)

    def test_2_offline_stored_once(self):
        nodes = ENV["nodes"]
        texts = ["stored %d" % k for k in range(3)]
        for t in texts:
            self.chat_all(t)
        for i, uid in enumerate(self.offline_ids[:NODES]):
            u = test_cluster.login_existing(nodes[i].client, uid)
            got = [m for m in u.backlog if m.startswith("stored ")]
            self.assertEqual(sorted(got), sorted(texts), uid)
            u.c.close()

    def test_3_list_item_delivered_and_stored(self):
        """An item for two members, one here, one gone: each once."""
        nodes, bus = ENV["nodes"], ENV["bus"]
        here = self.online[2]           # on node 2
        gone = self.offline_ids[-1]
        pres = bus.current(shard(here.id)).get("chatd:on:%d" % here.id)
        self.assertIsNotNone(pres)
        node, boot, slot, _ = pres.rsplit(" ", 3)
        q = "chatd:q:%s:%s:%s" % (node, boot, slot)
        line = json.dumps({"groupid": self.gid, "id": self.owner.id,
                           "msg": "listed", "msgid": GROUP_CHAT,
                           "name": "inj", "time": chatlib.now_str()},
                          sort_keys=True, separators=(",", ":")) + "\n"
        item = reltraffic.sign("%d,%d %s" % (here.id, gone, line),
                                     key=bus.key)
        bus.current(0).cmd("RPUSH", q, item)
        m = here.c.recv_msgid(GROUP_CHAT, timeout=10)
        self.assertEqual(m["msg"], "listed")
        here.c.expect_none(0.5)
        u = test_cluster.login_existing(nodes[0].client, gone)
        self.assertEqual([t for t in u.backlog if t == "listed"],
                         ["listed"])
        u.c.close()


class Compat(unittest.TestCase):
    """A node with cluster_item_version = 1 (a rolling upgrade) writes
    only what releases before the fan-out read: one version 1 item per
    message and per group member, no batch and no member list; every
    chat still arrives once."""

    ITEM = re.compile(rb"^[0-9a-f]{64} \S+ \d+ \S+ (\d+) ")

    quiet = test_cluster.Cluster.quiet
    make_group = test_cluster.Cluster.make_group

    @classmethod
    def setUpClass(cls):
        e = {"db_query_timeout_ms": 1500, "db_connect_timeout_ms": 1500,
             "register_rate_per_ip": 0, "cluster_item_version": 1}
        cls.v1 = cluster.Node(ENV["db"].spec, ENV["bus"], "sov1-%d" %
                              os.getpid(), workers=1, extra=e)
        cls.v1.start()

    @classmethod
    def tearDownClass(cls):
        if not cls.v1.stopped:
            cls.v1.__exit__(None, None, None)

    def test_1_one_item_per_member(self):
        bus, B = ENV["bus"], ENV["nodes"][1]
        sender = test_cluster.login_on(self.v1.client, "v1s")
        rcpt = [test_cluster.login_on(B.client, "v1r") for _ in range(3)]
        gid = self.make_group(sender, rcpt)
        pres = bus.current(shard(rcpt[0].id)).get("chatd:on:%d" %
                                                  rcpt[0].id)
        node, boot, slot, _ = pres.rsplit(" ", 3)
        q = "chatd:q:%s:%s:%s" % (node, boot, slot)
        # B's worker holds still (well within its keys' 15 s) so that
        # the items can be read where it would take them
        pid = reltraffic.worker_pid(B)
        os.kill(pid, signal.SIGSTOP)
        try:
            sent = sender.groupchat(gid, "v1 group")
            chats = [sender.chat(u.id, "v1 to %d" % u.id) for u in rcpt]
            want = len(rcpt) * 2

            def items():
                # a BLMOVE B sent before it stopped still moves one item
                # into P on each instance
                out = []
                for i in range(INSTANCES):
                    for k in (q, q + ":p"):
                        out += bus.current(i).cmd("LRANGE", k, 0, -1)
                return out
            chatlib.wait_for(lambda: len(items()) >= want, 10)
            got = items()
        finally:
            os.kill(pid, signal.SIGCONT)
        self.assertEqual(len(got), want, got)
        uids = []
        for it in got:
            m = self.ITEM.match(it)                 # one uid, no list
            self.assertIsNotNone(m, it[:120])
            uids.append(int(m.group(1)))
        self.assertEqual(sorted(uids), sorted([u.id for u in rcpt] * 2))
        for u, c in zip(rcpt, chats):
            got = {}
            for _ in range(2):
                m = u.c.recv_line(10)
                m = u.c.parse(m)
                got[m["msgid"]] = m["msg"]
            self.assertEqual(got, {GROUP_CHAT: sent["msg"],
                                   ONE_CHAT: c["msg"]}, u.id)
        self.quiet(sender, *rcpt)
        for u in [sender] + rcpt:
            u.c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
