"""wsclient - a WebSocket client (RFC 6455) in Python's standard library
for chatd's tests: the opening handshake, masked frames out, frames in.

WSClient is a chatlib.Client whose requests go out as one masked text
frame each and whose received text messages are the "lines" that
recv() parses, so every chatlib request helper works over WebSocket.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import time

import chatlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY = 0, 1, 2
OP_CLOSE, OP_PING, OP_PONG = 8, 9, 10


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode, payload, fin=True, mask=True, rsv=0):
    """One frame's bytes; mask=False makes an (illegal) unmasked client frame."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    body = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return head + key + body


def http_request(port, raw, timeout=chatlib.TIMEOUT, src="127.0.0.1"):
    """Send raw bytes to the listener, return everything until it closes."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    try:
        if raw:
            s.sendall(raw)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


def http_get(port, path, headers=None):
    """(status, headers dict with lower-case names, body) of a GET."""
    h = {"Host": "127.0.0.1:%d" % port}
    h.update(headers or {})
    req = "GET %s HTTP/1.1\r\n" % path + "".join(
        "%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    return parse_response(http_request(port, req.encode()))


def parse_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


class HandshakeRefused(Exception):
    def __init__(self, status, data):
        Exception.__init__(self, "handshake refused: %d" % status)
        self.status = status
        self.data = data


class WSClient(chatlib.Client):
    """A chatlib.Client over WebSocket.  close_code: the server's close
    status once a close frame arrived."""

    def __init__(self, port, host="127.0.0.1", timeout=chatlib.TIMEOUT,
                 origin=None, src="127.0.0.1", path="/", extra="",
                 ssl_ctx=None, host_header=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(timeout)
        s.connect((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_ctx is not None:     # wss:// (through nginx)
            s = ssl_ctx.wrap_socket(s, server_hostname="localhost")
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n" % (
                   path, host_header or "%s:%d" % (host, port), key))
        if origin is not None:
            req += "Origin: %s\r\n" % origin
        req += extra + "\r\n"
        s.sendall(req.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            d = s.recv(4096)
            if not d:
                break
            data += d
        head, _, rest = data.partition(b"\r\n\r\n")
        status, hdrs, _ = parse_response(head + b"\r\n\r\n")
        if status != 101:
            s.close()
            raise HandshakeRefused(status, data)
        if hdrs.get("sec-websocket-accept") != accept_for(key):
            s.close()
            raise AssertionError("wrong Sec-WebSocket-Accept: %r" % hdrs)
        s.setblocking(False)
        self.sock = s
        self.buf = b""
        self.wbuf = rest            # frame bytes not yet parsed
        self.lines = chatlib.collections.deque()
        self.eof = False
        self.raw_log = []
        self._seq = chatlib.itertools.count(1)
        self.close_code = None
        self.controls = []          # (opcode, payload) of control frames
        self.frag = None            # a fragmented message being received
        if rest:
            self._parse()

    def send_obj(self, obj):
        self.send_text(json.dumps(obj, sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False))

    def send_text(self, text):
        self.send_raw(frame(OP_TEXT, text.encode("utf-8")))

    def send_close(self, code=1000):
        self.send_raw(frame(OP_CLOSE, struct.pack("!H", code)))

    def _parse(self):
        b = self.wbuf
        while len(b) >= 2:
            fin, op, n = b[0] & 0x80, b[0] & 0x0f, b[1] & 0x7f
            if b[1] & 0x80:
                raise AssertionError("the server masked a frame")
            off = 2
            if n == 126:
                if len(b) < 4:
                    break
                n, off = struct.unpack("!H", b[2:4])[0], 4
            elif n == 127:
                if len(b) < 10:
                    break
                n, off = struct.unpack("!Q", b[2:10])[0], 10
            if len(b) < off + n:
                break
            payload, b = b[off:off + n], b[off + n:]
            if op >= 8:
                self.controls.append((op, payload))
                if op == OP_CLOSE:
                    self.close_code = (struct.unpack("!H", payload[:2])[0]
                                       if len(payload) >= 2 else 1005)
                elif op == OP_PING:
                    self.send_raw(frame(OP_PONG, payload))
                continue
            if op == OP_CONT:
                self.frag += payload
            else:
                self.frag = payload
            if fin:
                self.raw_log.append(self.frag)
                self.lines.append(self.frag)
                self.frag = None
        self.wbuf = b

    def _fill(self, timeout):
        return chatlib.fill(self, timeout, self._take)

    def _take(self, data):
        self.wbuf += data
        self._parse()
