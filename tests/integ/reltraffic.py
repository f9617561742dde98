#!/usr/bin/env python3
"""test_reliability's machinery, shared with test_cutoff and test_scaleout:
the traffic a fault runs under (run_traffic: a sender per flow, receivers
whose connection comes back after a drop, every chat counted), the table
of what each scenario accepted, delivered, lost and saw twice (ROWS,
print_table: RELIABILITY.md keeps one), and items written straight into
Redis (signed, batched) with what they need to read the outcome.

ENV holds the nodes the traffic runs between ("A" sends, "B" receives),
"redis" and, for rejected_total, B's "mport" (metrics); the test module
that imports this fills it."""

import hashlib
import hmac
import itertools
import json
import os
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import test_faults  # noqa: E402

ENV = {}
RATE = 150.0
COUNT = 450                 # chats per scenario (half plain, half acked)
ROWS = []

def print_table():
    head = ("scenario", "accepted", "delivered", "lost", "dup(smid)",
            "rep(smid)", "dup(plain)", "refused")
    out = ["%-28s %9s %9s %5s %9s %9s %10s %7s" % head]
    for r in ROWS:
        out.append("%-28s %9d %9d %5d %9d %9d %10d %7d" % r)
    print("\n" + "\n".join(out), flush=True)


# ---- clients ---------------------------------------------------------

class Peer(test_faults.Peer):
    """test_faults' user whose connection comes back after a drop, on the
    first node in nodes that takes it."""

    def __init__(self, uid, nodes):
        super().__init__(None, uid, "pw", "r")
        self.nodes = nodes

    def connect(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.ready = False
        for n in self.nodes:
            if n.stopped:
                continue
            try:
                s = socket.create_connection(("127.0.0.1", n.port), 2)
            except OSError:
                continue
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            self.sock = s
            self.buf = b""
            self.send({"id": self.uid, "msgid": 1, "password": "pw"})
            return True
        return False


class Tally:
    """What every peer saw: chats by (receiver, text), acknowledgements and
    error answers by sender."""

    def __init__(self):
        self.got = {}           # (uid, text) -> times received
        self.smids = {}         # (uid, text) -> [smid], one per receipt
        self.acked = {}         # sender uid -> set of cmids acknowledged
        self.refused = {}       # sender uid -> error answers about chats
        self.retry_login = []
        self.first = {}         # (uid, text) or (sender, cmid) -> when

    def on(self, p, m):
        mid = m.get("msgid")
        if mid == chatlib.LOGIN_ACK:
            if m.get("errno") != 0:
                # the dead session may still be seen for a moment
                self.retry_login.append(p)
                return
            p.ready = True
            for t in m.get("offlinemsg", []):
                self.on(p, json.loads(t))
        elif mid in (chatlib.ONE_CHAT, chatlib.GROUP_CHAT):
            key = (p.uid, m.get("msg", ""))
            self.first.setdefault(key, time.monotonic())
            # every chat carries an smid now; a plain client ignores it
            self.got[key] = self.got.get(key, 0) + 1
            if "smid" in m:
                self.smids.setdefault(key, []).append(m["smid"])
        elif mid == chatlib.CHAT_ACK:
            self.acked.setdefault(p.uid, set()).add(m.get("cmid"))
            self.first.setdefault((p.uid, m.get("cmid")), time.monotonic())
        elif mid == chatlib.ERROR and m.get("refmsgid", m.get("errmsgid")) \
                in (None, chatlib.ONE_CHAT, chatlib.GROUP_CHAT):
            self.refused.setdefault(p.uid, []).append(m)

    def has(self, uid, text):
        return (uid, text) in self.got or (uid, text) in self.smids


def pump(peers, tally, timeout):
    # a dropped connection comes back after a moment
    chatlib.pump(peers, tally.on, timeout,
                 on_drop=lambda p: time.sleep(0.05))
    while tally.retry_login:
        p = tally.retry_login.pop()
        time.sleep(0.1)
        p.connect()


def users(n, node=None):
    c = chatlib.Client((node or ENV["A"]).port)
    uids = [c.register(chatlib.unique("rel"), "pw") for _ in range(n)]
    c.close()
    return uids


def make_group(node, owner, members):
    """A group of owner and members (uids, password pw), made on node."""
    c = chatlib.Client(node.port)
    c.login(owner, "pw")
    gname = chatlib.unique("g")
    c.creategroup(owner, gname, "reliability")
    c.ping()
    c.loginout(owner)
    r = c.login(owner, "pw")
    gid = [g for g in r["groups"] if g.get("groupname") == gname][0]["id"]
    c.close()
    for m in members:
        c = chatlib.Client(node.port)
        c.login(m, "pw")
        c.addgroup(m, gid)
        c.ping()
        c.close()
    return gid


def worker_pid(node):
    pids = node.worker_pids()
    assert len(pids) == 1, pids
    return pids[0]


class Flow:
    """One sender's chats: kind plain (one-to-one, seed-style), acked
    (one-to-one with a cmid), group (with a cmid, to P and K), pgroup
    (seed-style group chat, no cmid, to P and K, and stored for Q, who
    never logs in), lgroup (seed-style, to P and K only: nothing to store)
    or offline (plain, to a user who logs in only at the end)."""

    def __init__(self, kind, sender, to, receivers):
        self.kind, self.sender, self.to = kind, sender, to
        self.receivers = receivers      # uids that must get each chat
        self.sent = {}                  # cmid (or sequence) -> text
        self.when = {}                  # cmid (or sequence) -> sent at

    def send(self, i, text, again=False):
        p = self.sender
        msg = {"id": p.uid, "msg": text, "name": "s",
               "time": chatlib.now_str()}
        if self.kind in ("group", "pgroup", "lgroup"):
            msg.update(msgid=chatlib.GROUP_CHAT, groupid=self.to)
        else:
            msg.update(msgid=chatlib.ONE_CHAT, toid=self.to)
        if self.kind in ("acked", "group"):
            msg["cmid"] = i
        self.sent[i] = text
        if not again:
            self.when[i] = time.monotonic()
        p.send(msg)

    def acking(self):
        return self.kind in ("acked", "group")


def run_traffic(test, name, fault, receivers_nodes=None, settle=25.0,
                sender_node=None, group=True, offline=False,
                refusals=False, rate=RATE, plain_group=False,
                max_dup_plain=None):
    """COUNT chats from the sender node (A) to users on the receivers'
    node (B) while fault(t) acts: plain to P, acknowledged to K, group
    chats (acknowledged) to P and K when group, seed-style group chats to
    P and K (pgroup: and stored for Q; lgroup: nothing stored) when
    plain_group, plain to an offline O when offline.  Then
    the table row, asserting that nothing accepted was lost
    and that every acknowledged chat was answered (ack or error).  Error
    answers are failures unless refusals (a store that cannot write).
    A lower rate spreads the chats over a longer fault.  max_dup_plain:
    at most this many repeats seen by the plain clients (None: only
    reported)."""
    A = sender_node or ENV["A"]
    rn = receivers_nodes or [ENV["B"], A]
    kinds = ["plain", "acked"] + (["group"] if group else []) + \
        (["offline"] if offline else []) + \
        (["pgroup", "lgroup"] if plain_group else [])
    uids = users(len(kinds) + 4, A)
    p_uid, k_uid, o_uid, q_uid = uids[-4:]
    P, K, O = Peer(p_uid, rn), Peer(k_uid, rn), Peer(o_uid, rn)
    gids = {g: make_group(A, uids[kinds.index(g)], [p_uid, k_uid] +
                          ([q_uid] if g == "pgroup" else []))
            for g in ("group", "pgroup", "lgroup") if g in kinds}
    flows = []
    for kind, s_uid in zip(kinds, uids):
        sender = Peer(s_uid, [A])
        to, rcv = {"plain": (p_uid, [p_uid]), "acked": (k_uid, [k_uid]),
                   "group": (gids.get("group"), [p_uid, k_uid]),
                   "pgroup": (gids.get("pgroup"), [p_uid, k_uid]),
                   "lgroup": (gids.get("lgroup"), [p_uid, k_uid]),
                   "offline": (o_uid, [o_uid])}[kind]
        flows.append(Flow(kind, sender, to, rcv))
    peers = [f.sender for f in flows] + [P, K]
    tally = Tally()
    for p in peers:
        assert p.connect()
    deadline = time.monotonic() + 10
    while not all(p.ready for p in peers) and time.monotonic() < deadline:
        pump(peers, tally, 0.05)
    test.assertTrue(all(p.ready for p in peers), "logins")
    t0 = time.monotonic()
    i = 0
    while i < COUNT or fault(time.monotonic() - t0) is not None:
        now = time.monotonic() - t0
        fault(now)
        while i < COUNT and i < now * rate:
            f = flows[i % len(flows)]
            if not f.sender.ready:
                break
            f.send(i, "%s %s %d" % (name, f.kind, i))
            i += 1
        pump(peers, tally, 0.005)
        if now > 120:
            test.fail("%s: the fault did not end" % name)

    def expected():
        """(uid, text) pairs that must arrive; plain: all sent (to O
        once O has logged in: until then what the others get is
        awaited, not O's)."""
        out = []
        for f in flows:
            if f.kind == "offline" and O.sock is None:
                continue
            ok = tally.acked.get(f.sender.uid, set())
            for c, text in f.sent.items():
                if f.acking() and c not in ok:
                    continue
                out += [(u, text) for u in f.receivers]
        return out

    def missing():
        return [k for k in expected() if not tally.has(*k)]

    def answered(f):
        """Whether every chat of an acknowledging flow got its ack or an
        error (errors are not known by cmid: counted)."""
        ok = tally.acked.get(f.sender.uid, set())
        return len(ok) + len(tally.refused.get(f.sender.uid, [])) >= \
            len(f.sent)

    def done():
        # plain chats refused are not known one by one: a chat per error
        n = sum(len(tally.refused.get(f.sender.uid, [])) for f in flows
                if not f.acking())
        # the last chats' answers may still be on their way: an
        # acknowledged chat must arrive once its ack is in
        # (a refused group chat is missing for each of its receivers)
        return len({t for _, t in missing()}) <= n and all(
            answered(f) for f in flows if f.acking())
    deadline = time.monotonic() + settle
    while not done() and time.monotonic() < deadline:
        pump(peers, tally, 0.05)
    # whatever was stored comes at the next login; O logs in only now
    settled = done()
    if offline:
        O.connect()
        peers.append(O)
    if not settled:
        for p in (P, K):
            p.connect()
    end = time.monotonic() + 5
    while time.monotonic() < end and not (
            done() and all(p.ready for p in peers if p.sock is not None)):
        pump(peers, tally, 0.05)
    if offline:                         # the rest of O's stored chats
        end = time.monotonic() + 1
        while time.monotonic() < end:
            pump(peers, tally, 0.05)
    # A client that acknowledges sends again, with the same cmid, what got
    # neither an ack nor an error (chatd-protocol(7)): chatd answers a
    # resend with the first smid and delivers nothing twice.  Counted and
    # printed: each one is an answer that did not reach the client.
    def unacked(f):
        ok = tally.acked.get(f.sender.uid, set())
        if tally.refused.get(f.sender.uid) or f.sender.sock is None:
            return []           # which cmids were refused is not known
        return [c for c in f.sent if c not in ok]
    resent = 0
    waited = time.monotonic() - t0
    for f in flows:
        if f.acking():
            for c in unacked(f):
                f.send(c, f.sent[c], again=True)
                resent += 1
    if resent:
        end = time.monotonic() + 15
        while time.monotonic() < end and not done():
            pump(peers, tally, 0.05)
        if not done():                  # stored copies come at a login
            for p in (P, K):
                p.connect()
            end = time.monotonic() + 10
            while time.monotonic() < end and not done():
                pump(peers, tally, 0.05)
        print("%s: %d acknowledged chat(s) without an answer %.0f s after "
              "the first chat, sent again" % (name, resent, waited),
              flush=True)
    for p in peers:
        if p.sock is not None:
            p.sock.close()
    refused = {f.kind: len(tally.refused.get(f.sender.uid, []))
               for f in flows}
    unanswered = {}
    lost = {}
    for f in flows:
        sent = list(f.sent.items())
        if f.acking():
            ok = tally.acked.get(f.sender.uid, set())
            if len(ok) + refused[f.kind] != len(sent):
                unanswered[f.kind] = len(sent) - len(ok) - refused[f.kind]
            miss = [(u, t) for c, t in sent if c in ok for u in f.receivers
                    if not tally.has(u, t)]
        else:
            miss = [(u, t) for c, t in sent for u in f.receivers
                    if not tally.has(u, t)]
            # each one refused to its sender (a group chat: missing for
            # each of its receivers)
            if len({t for _, t in miss}) <= refused[f.kind]:
                miss = []
        if miss:
            lost[f.kind] = miss
    exp = expected()
    n_refused_plain = sum(refused[f.kind] * len(f.receivers)
                          for f in flows if not f.acking())
    accepted = len(exp) - n_refused_plain
    delivered = len([k for k in exp if tally.has(*k)])
    nrcv = {f.kind: len(f.receivers) for f in flows}
    nlost = sum(len(v) if k in ("acked", "group")
                else max(1, len(v) - refused[k] * nrcv[k])
                for k, v in lost.items())
    # a client that drops repeats by smid sees a duplicate only when one
    # chat came with two smids (stored twice); same-smid repeats it drops
    dup_smid = sum(len(set(v)) - 1 for v in tally.smids.values())
    rep_smid = sum(len(v) - len(set(v)) for v in tally.smids.values())
    dup_plain = sum(v - 1 for v in tally.got.values())
    ROWS.append((name, accepted, delivered, nlost, dup_smid, rep_smid,
                 dup_plain, sum(refused.values())))
    # the slowest answer (acknowledged kinds) or delivery (plain), in s
    slowest = {}
    for f in flows:
        if f.kind == "offline":         # logs in only at the end
            continue
        for c, text in f.sent.items():
            keys = [(f.kind, (f.sender.uid, c))] if f.acking() else []
            # deliveries: "plain", "acked delivered", "group delivered"
            keys += [(f.kind + (" delivered" if f.acking() else ""),
                      (u, text)) for u in f.receivers]
            for kind, k in keys:
                if k in tally.first:
                    slowest[kind] = max(slowest.get(kind, 0.0),
                                        tally.first[k] - f.when[c])
    print("%s: slowest answer (acked, group) or delivery (plain, ... "
          "delivered) in s: %s" % (name, ", ".join(
              "%s %.2f" % kv for kv in sorted(slowest.items()))),
          flush=True)
    if not refusals:
        test.assertEqual(sum(refused.values()), 0,
                         "%s: chats refused: %r" % (name, refused))
    test.assertEqual(unanswered, {}, "%s: acknowledged chats neither "
                     "acknowledged nor refused" % name)
    test.assertEqual(lost, {}, "%s: LOSS: accepted chats never delivered "
                     "(kind: [(receiver, text)]), %d refused" %
                     (name, sum(refused.values())))
    test.assertEqual(dup_smid, 0, "%s: a chat with two smids" % name)
    if max_dup_plain is not None:
        test.assertLessEqual(dup_plain, max_dup_plain, "%s: repeats shown "
                             "by a plain client" % name)
    if not refusals:
        test.assertGreater(len(tally.acked.get(flows[1].sender.uid, ())),
                           COUNT // len(flows) - 5,
                           "%s: acknowledgements missing" % name)
    return refused, slowest

# ---- items straight into Redis -----------------------------------------

_seq = itertools.count(1)


def sign(body, ms=None, key=None, node="test-node"):
    ms = int(time.time() * 1000) if ms is None else ms
    rest = "%s %d ffff.0.%d %s" % (node, ms, next(_seq), body)
    k = (key or ENV["redis"].key).encode()
    mac = hmac.new(k, rest.encode(), hashlib.sha256).hexdigest()
    return mac + " " + rest


def batch(items):
    """A version 2 batch (include/pubsub.h) of signed items."""
    return "v2 " + "".join("%d:%s" % (len(i.encode()), i) for i in items)


def chat_line(to, text, frm=1):
    return json.dumps({"id": frm, "msg": text, "msgid": chatlib.ONE_CHAT,
                       "name": "inj", "time": chatlib.now_str(),
                       "toid": to}, sort_keys=True,
                      separators=(",", ":")) + "\n"


def b_queue():
    """Node B's worker queue (Q), from the set every worker announces."""
    node = ENV["B"].node_id
    for q in ENV["redis"].cmd("SMEMBERS", "chatd:queues"):
        q = q.decode()
        if q.startswith("chatd:q:%s:" % node):
            return q
    raise AssertionError("no queue of node B in chatd:queues")


def queue_of(uid):
    """The queue of the worker uid is logged in on, from its presence."""
    v = ENV["redis"].get("chatd:on:%d" % uid)
    assert v is not None, "no presence for %d" % uid
    node, boot, slot, _ = (v.decode() if isinstance(v, bytes) else
                           v).rsplit(" ", 3)
    return "chatd:q:%s:%s:%s" % (node, boot, slot)


def rejected_total():
    url = "http://127.0.0.1:%d/metrics" % ENV["mport"]
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    n = 0
    for line in body.splitlines():
        if line.startswith("chatd_bus_rejected_total"):
            n += int(float(line.split()[-1]))
    return n


def collect(c, seconds):
    """Texts of the chats c receives within seconds."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            line = c.recv_line(max(0.01, end - time.monotonic()))
        except (AssertionError, chatlib.Closed):
            break
        if not line.strip():
            # the mark of a crash handover (chatd(8)): input resumes
            # after a NUL
            c.send_raw(b"\0")
            continue
        m = c.parse(line)
        if m["msgid"] == chatlib.ONE_CHAT:
            out.append(m["msg"])
    return out
