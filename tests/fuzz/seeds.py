#!/usr/bin/env python3
"""Write the fuzz targets' seed inputs: tests/fuzz/corpus/<target>/seed-*
(and tests/fuzz/refused/sock/, what notify-sock.c once took).

    python3 tests/fuzz/seeds.py

What the records look like on the wire (notify-format.c's JSON, the
records and file names it is given, the subjects and batches of
scoutfs-notify-forward, the daemon's clients), so that fuzzing starts from inputs
that reach deep into the code.  The regression inputs beside them
(found-*) are what was found; this script leaves them alone.
"""
import base64
import os
import struct
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "lib"))
from testlib import HOSTILE_NAMES  # noqa: E402

FSID = "5ca1ab1e0123abcd"
RID = "0123456789abcdef"
OPS = {1: "OPEN", 2: "READ", 3: "ATTACH", 4: "MMAP"}
REC = struct.Struct("=QQQQQIIIIII")


def rfc3339(ns):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def jstr(b):
    """a JSON string of bytes b as notify-format.c writes it (b valid UTF-8)"""
    out = '"'
    for ch in b.decode("utf-8"):
        c = ord(ch)
        if ch in '"\\':
            out += "\\" + ch
        elif c < 0x20 or c == 0x7f or 0x80 <= c <= 0x9f or c == 0x61c or 0x200b <= c <= 0x200f \
                or 0x2028 <= c <= 0x202e or 0x2060 <= c <= 0x206f or c == 0xfeff:
            out += f"\\u{c:04x}"
        else:
            out += ch
    return out + '"'


def member(name, b):
    try:
        b.decode("utf-8")
        return f'"{name}": {jstr(b)}'
    except UnicodeDecodeError:
        shown = b.decode("utf-8", "replace").encode()
        return f'"{name}": {jstr(shown)}, "{name}_b64": "{base64.b64encode(b).decode()}"'


def record(seq, op=2, node="n1", path=None, origin=True, ns=1795665702862770515, flags=0):
    o = f'{{"schema": 1, "fsid": "{FSID}", "node": "{node}", "rid": "{RID}"' if origin else '{"schema": 1'
    name = f'"{OPS[op]}"' if op in OPS else str(op)
    o += (f', "seq": {seq}, "op": {name}, "time": "{rfc3339(ns)}", "time_ns": {ns}, "pid": 4242'
          f', "uid": 1000, "gid": 1000, "ino": 1002, "offset": 2, "len": 4096, "flags": {flags}')
    if op == 4:
        o += f', "shared": {"true" if flags & 1 else "false"}, "writable": {"true" if flags & 2 else "false"}'
    if path is not None:
        o += ", " + member("path", path)
    return (o + "}").encode()


def gap(after, seq, node="n1"):
    return (f'{{"schema": 1, "fsid": "{FSID}", "node": "{node}", "rid": "{RID}", "op": "GAP", '
            f'"lost": {seq - after - 1}, "after_seq": {after}, "seq": {seq}}}').encode()


def write(target, name, data, kind="corpus", prefix="seed-"):
    d = os.path.join(here, kind, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{prefix}{name}"), "wb") as f:
        f.write(data)


def json_seeds():
    write("json", "read", record(2, path=b"/mnt/scoutfs/dir/file-1002"))
    write("json", "open-no-origin", record(7, op=1, origin=False, flags=0o100000))
    write("json", "attach", record(1, op=3))
    write("json", "mmap", record(9, op=4, flags=3, path=b"/mnt/x"))
    write("json", "unknown-op", record(9, op=77))
    write("json", "gap", gap(101, 107))
    write("json", "gap-max", gap(18446744073709551600, 18446744073709551615))
    write("json", "big-numbers", record(18446744073709551615, ns=18446744073709551615))
    write("json", "escapes", b'{"schema": 1, "seq": 3, "op": "READ", "time": "2026-11-26T04:01:42.862770515Z", '
          b'"time_ns": 1795665702862770515, "pid": 1, "uid": 0, "gid": 0, "ino": 1, "offset": 0, '
          b'"len": 1, "flags": 0, "extra": [1], "path": "a\\u00e9\\ud83d\\udcc1\\n\\"\\\\\\/b"}')
    for i, n in enumerate(HOSTILE_NAMES):
        write("json", f"hostile-{i}", record(10 + i, path=n))


def format_seeds():
    for op in (1, 2, 3, 4, 9):
        r = REC.pack(5, 1002, 1795665702862770515, 2, 4096, op, 4242, 1000, 1000, 3 if op == 4 else 0, 0)
        write("format", f"op{op}", r + bytes([0]) + b"/mnt/scoutfs/dir/file")
    r = REC.pack(5, 1002, 1795665702862770515, 2, 4096, 2, 4242, 1000, 1000, 0, 0)
    for i, n in enumerate(HOSTILE_NAMES):
        write("format", f"hostile-{i}", r + bytes([2 if i % 2 else 0]) + n)


def msg(subject, payload):
    return subject.encode() + b"\x1f" + payload


def subj(node, op):
    return f"scoutfs.notify.{FSID}.{node}.{op}"


def watch_seeds():
    sep = b"\x1e"
    rec = lambda s, node="n1", **k: msg(subj(node, "read"), record(s, node=node, **k))  # noqa: E731
    write("watch-nats", "in-order", sep.join(rec(s) for s in range(1, 6)))
    write("watch-nats", "two-nodes", sep.join(
        m for s in range(1, 5) for m in (rec(s), rec(s, "n2"))))
    write("watch-nats", "reordered", sep.join(rec(s) for s in (1, 3, 2, 5, 4)))
    write("watch-nats", "missing", sep.join(rec(s) for s in (1, 2, 6, 7)))
    write("watch-nats", "again", sep.join(rec(s) for s in (1, 2, 3, 2, 3, 4)))
    write("watch-nats", "gap", sep.join([rec(1), msg(subj("n1", "gap"), gap(1, 5)), rec(5)]))
    write("watch-nats", "batch", sep.join([
        msg(subj("n1", "batch"), b"\n".join([record(1, op=3), record(2), gap(2, 5), record(5)])),
        msg(subj("n2", "batch"), b"\n".join([record(1, node="n2"), record(2, node="n2")])),
        rec(6)]))
    write("watch-nats", "hostile", sep.join(rec(s, path=n) for s, n in enumerate(HOSTILE_NAMES, 1)))
    write("watch-nats", "bad", sep.join([rec(1), msg(subj("n1", "read"), b"{}"),
                                         msg("scoutfs.notify.x", b"{}"), rec(2)]))


def notifyd_seeds():
    # actions: 0 connect, 1 send (2 length bytes, the bytes), 2 close,
    # 3 shutdown, 4 broadcast (b >> 3 picks how many), 5 look,
    # 6 request (the next byte: max_recs 0-251, 252-255: 256, 257, 65536,
    # 2^32-1), 7 a bad request (the next byte: what is wrong); the client
    # is b >> 3 (modulo the clients connected)
    def on(action, client):
        return action | client << 3

    write("notifyd", "three-clients", bytes([0, 0, 0, 4 | 2 << 3, 5, 1 | 1 << 3, 5, 0, 4, 5]) +
          bytes([1, 0]))
    write("notifyd", "talkers", bytes([0, 0, 0, 0, 1, 12, 0]) + b"hello daemon" +
          bytes([2 | 1 << 3, 3 | 2 << 3, 4, 5, 4 | 7 << 3, 5]))
    write("notifyd", "empty-and-big", bytes([0, 0, 1, 0, 0, 1 | 1 << 3, 0, 1]) + b"x" * 256 +
          bytes([4, 5, 4, 0]))
    write("notifyd", "batched", bytes([0, 0, 0, on(6, 1), 4, on(6, 2), 252, on(4, 2), 5,
                                       on(4, 9), on(4, 23), on(4, 16), 5]))
    write("notifyd", "request-sizes", bytes([0, 0, 0, 0, on(6, 0), 0, on(6, 1), 1, on(6, 2), 255,
                                             on(6, 3), 253, 5, on(4, 10), on(4, 31), 5]))
    write("notifyd", "second-request", bytes([0, 0, on(6, 0), 8, 5, on(4, 4), on(6, 0), 8,
                                              on(4, 4), 5, on(4, 4)]))
    write("notifyd", "request-and-more", bytes([0, 0, on(6, 0), 8, on(1, 0), 1, 0]) + b"x" +
          bytes([on(6, 1), 3, on(6, 1), 3, 5, on(4, 2), 5, on(4, 2), 5]))
    write("notifyd", "bad-requests", bytes([0] * 8 + [b for k in range(8) for b in (on(7, k), k)] +
                                           [on(4, 3), 5, 0, on(7, 0), 11, on(7, 0), 12, 5]))
    write("notifyd", "request-then-hangup", bytes([0, 0, 0, on(6, 0), 8, on(3, 0), on(6, 1), 16,
                                                   on(2, 1), on(4, 5), 5, on(4, 5), 5]))
    req = struct.pack("=4sHHII", b"SNRQ", 1, 0, 32, 0)
    write("notifyd", "raw-request", bytes([0, 0, on(1, 0), 16, 0]) + req +
          bytes([on(1, 1), 17, 0]) + req + b"\0" + bytes([5, on(4, 20), 5]))

def sock_req(max_recs, magic=b"SNRQ", version=1, flags=0, reserved=0):
    return struct.pack("=4sHHII", magic, version, flags, max_recs, reserved)


def sock_reply(status, max_recs, reason=b"", magic=b"SNRP", version=1, reserved=0):
    return struct.pack("=4sHHII", magic, version, status, max_recs, reserved) + reason.ljust(96, b"\0")[:96]


def sock_seeds():
    # the first byte: 0 request, 1 reply, 2 session; the why buffer's size / 4 above
    why = 40 << 2
    for name, m in [("req-1", sock_req(1)), ("req-16", sock_req(16)), ("req-256", sock_req(256)),
                    ("req-257", sock_req(257)), ("req-max", sock_req(2**32 - 1)), ("req-0", sock_req(0)),
                    ("req-magic", sock_req(4, magic=b"SNRP")), ("req-version", sock_req(4, version=2)),
                    ("req-flags", sock_req(4, flags=1)), ("req-reserved", sock_req(4, reserved=1 << 24)),
                    ("req-short", sock_req(4)[:15]), ("req-long", sock_req(4) + b"\0"), ("req-empty", b""),
                    ("req-record", REC.pack(1, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0))]:
        write("sock", name, bytes([why]) + m)
    write("sock", "req-small-why", bytes([1 << 2]) + sock_req(0))
    write("sock", "req-one-byte-why", bytes([0]) + sock_req(4)[:12])
    reason = b"a request is 16 bytes, this message was 12"
    for name, m in [("reply-grant-16", sock_reply(0, 16)), ("reply-grant-256", sock_reply(0, 256)),
                    ("reply-grant-0", sock_reply(0, 0)), ("reply-grant-257", sock_reply(0, 257)),
                    ("reply-refused", sock_reply(1, 0, reason)),
                    ("reply-refused-full", sock_reply(1, 0, b"x" * 96)),
                    ("reply-refused-hostile", sock_reply(1, 0, b"no\nscoutfs-notifyd: forged\x1b[31m\xff\x7f")),
                    ("reply-refused-empty", sock_reply(1, 0)),
                    ("reply-refused-grants", sock_reply(1, 5, reason)),
                    ("reply-status-2", sock_reply(2, 0)), ("reply-version-2", sock_reply(0, 8, version=2)),
                    ("reply-reserved", sock_reply(0, 8, reserved=1)), ("reply-magic", sock_reply(0, 8, magic=b"SNRQ")),
                    ("reply-short", sock_reply(0, 8)[:111]), ("reply-long", sock_reply(0, 8) + b"\0"),
                    ("reply-record", REC.pack(1, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0))]:
        write("sock", name, bytes([why | 1]) + m)
    write("sock", "reply-small-why", bytes([2 << 2 | 1]) + sock_reply(1, 0, reason))

    # sessions: the next byte is what the client asked for (0: nothing, 255: 1000), then
    # messages: 4k+0 any bytes (2 length bytes, them), 4(k-1)+1 k records (62: 256, 63: 257),
    # 2 a grant of the next byte (0: 256), 3 | 4x a reply (x odd: a refusal; x >> 1: what breaks)
    def recs(k):
        assert 1 <= k <= 62 or k in (256, 257)
        return 1 | (k - 1) << 2 if k <= 62 else 1 | (62 + k - 256) << 2

    def raw(m):
        return bytes([0, len(m) & 255, len(m) >> 8]) + m

    sess = bytes([why | 2])
    write("sock", "session-asked-nothing", sess + bytes([0, recs(1), recs(1), recs(2), 2, 16, recs(1)]))
    write("sock", "session-16", sess + bytes([16, recs(1), recs(1), 2, 16, recs(16), recs(17), recs(3)]) +
          raw(b"SNRQ" + b"\0" * 108) + raw(b"") + bytes([recs(1)]))
    write("sock", "session-1000", sess + bytes([255, recs(1), 2, 0, recs(256), recs(257), recs(62)]))
    write("sock", "session-refused", sess + bytes([16, recs(1), 3 | 1 << 2, recs(1)]))
    write("sock", "session-second-grant", sess + bytes([16, recs(1), 2, 8, recs(8), 2, 8, recs(1)]))
    write("sock", "session-over-grant", sess + bytes([8, recs(1), 2, 16, recs(16)]))
    write("sock", "session-bad-replies", sess + bytes([4, recs(1)] + [3 | x << 2 for x in range(2, 16, 2)]))
    write("sock", "session-many", sess + bytes([62, recs(1)] + [recs(1)] * 18 + [2, 62] + [recs(62)] * 4))
    write("sock", "session-raw", sess + bytes([2]) + raw(sock_reply(0, 2)) +
          raw(REC.pack(5, 1, 2, 3, 4, 2, 1, 1, 1, 0, 1) * 2) + raw(b"\xff" * 65) + raw(b"z" * 20000))

    # what notify-sock.c took before it read replies to the letter of the layout
    write("sock", "reply-grant-with-reason", bytes([why | 1]) + sock_reply(0, 8, b"x"), "refused", "")
    write("sock", "session-grant-with-reason", sess + bytes([8, recs(1)]) + raw(sock_reply(0, 8, b"x")) +
          bytes([recs(8)]), "refused", "")
    write("sock", "session-grant-over-ask", sess + bytes([8, recs(1), 2, 16, recs(16)]), "refused", "")


if __name__ == "__main__":
    json_seeds()
    format_seeds()
    watch_seeds()
    notifyd_seeds()
    sock_seeds()
