#!/usr/bin/env python3
"""Tests of scoutfs-notify-heat, the access index (the index tier).

Run by tests/index/run.sh in a private mount namespace with the
sanitizer-built binaries in $BIN_DIR.  Real engines: SQLite (the
library the tool links), a PostgreSQL server each test that needs one
starts itself (initdb and pg_ctl as the postgres user, a loopback port,
a temporary directory; stopped at the end and checked stopped), real
nats-server processes (tests/lib/natslib.py), and for the end-to-end
test the real scoutfs-notifyd and scoutfs-notify-forward over the ioctl
stand-in (tests/daemon/fake-scoutfs.c) on a tmpfs.  Records are made
here, so every expected figure is computed from what was sent by a
model written apart from the tool (expect_files()).  Every wait polls
a condition with a deadline.  Ends with `index: N passed, N failed`.
"""
import base64
import codecs
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import check, run_tests  # noqa: E402
from testlib import HOSTILE_NAMES, poll, sanitizer_clean, strict_json  # noqa: E402
import natslib  # noqa: E402
from pglib import Pg  # noqa: E402

BIN = os.environ["BIN_DIR"]
HEAT = os.path.join(BIN, "scoutfs-notify-heat")
NOTIFYD = os.path.join(BIN, "scoutfs-notifyd")
FORWARD = os.path.join(BIN, "scoutfs-notify-forward")
TNATS = os.path.join(BIN, "tnats")
PRELOAD = os.environ["ASAN_LIB"] + ":" + os.environ["FAKE_SO"]
WORK = sys.argv[1]
FSID = "5ca1ab1e0123abcd"
FSID2 = "abcdef12"
RID_A, RID_B, RID_C = "00000000000000a1", "00000000000000b2", "00000000000000c3"
T0 = 1795665702000000000    # 2026-11-26T04:01:42Z
PERIOD_NS, LOSS = 3600e9, 0.10
STREAM = "SCOUTFS_NOTIFY"
MORE_NAMES = [b"\xef\xbb\xbfbom and \xe2\x80\x8bzero width", b"x" * 200, b"-rf --no-preserve-root",
              b"semi;colon|pipe&amp$(subst)`tick`"]


def wait_for(pred, secs=120.0):
    return poll(pred, secs, 0.05)


def heat(db, *args, env=None, timeout=300, input=None):
    return subprocess.run([HEAT, "--db", db, *args], capture_output=True, env=env,
                          timeout=timeout, input=input)


def tnats(*args, input=None):
    """tnats with one LeakSanitizer suppression, for tnats alone: a natsMsg
    of libnats (169-170 bytes, allocated in natsMsg_create, no symbols
    further) that some of this tier's tnats runs leave unfreed, not yet
    diagnosed; the tools under test have no suppression"""
    supp = os.path.join(WORK, "tnats.lsan")
    if not os.path.exists(supp):
        with open(supp, "w") as f:
            f.write("leak:natsMsg_create\n")
    env = dict(os.environ, LSAN_OPTIONS=f"suppressions={supp}:print_suppressions=0")
    return natslib.tnats(TNATS, *args, input=input, env=env)


# ---- records, as scoutfs-notify-forward publishes them

def rfc3339(ns):
    s = datetime.fromtimestamp(ns // 10**9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{s}.{ns % 10**9:09d}Z"


OPS = {1: "OPEN", 2: "READ", 3: "ATTACH", 4: "MMAP"}


def rec(fsid, node, rid, seq, op, t, ino=0, uid=1000, off=0, ln=0, flags=0, path=None):
    """one record as a dict: the model's input and a message's payload"""
    return dict(fsid=fsid, node=node, rid=rid, seq=seq, op=op, t=t, ino=ino, uid=uid, off=off,
                len=ln, flags=flags, path=path)


def payload(r):
    if r["op"] == "GAP":
        o = {"schema": 1, "fsid": r["fsid"], "node": r["node"], "rid": r["rid"], "op": "GAP",
             "lost": r["seq"] - r["after"] - 1, "after_seq": r["after"], "seq": r["seq"]}
        return json.dumps(o)
    o = {"schema": 1, "fsid": r["fsid"], "node": r["node"], "rid": r["rid"], "seq": r["seq"],
         "op": OPS.get(r["op"], r["op"]), "time": rfc3339(r["t"]), "time_ns": r["t"], "pid": 42,
         "uid": r["uid"], "gid": r["uid"], "ino": r["ino"], "offset": r["off"], "len": r["len"],
         "flags": r["flags"]}
    if r["op"] == 4:
        o["shared"] = bool(r["flags"] & 1)
        o["writable"] = bool(r["flags"] & 2)
    if r["path"] is not None:
        try:
            o["path"] = r["path"].decode("utf-8", "strict")
        except UnicodeDecodeError:
            o["path"] = r["path"].decode("utf-8", "replace")
            o["path_b64"] = base64.b64encode(r["path"]).decode()
    return json.dumps(o)


def subject(r):
    op = "gap" if r["op"] == "GAP" else OPS[r["op"]].lower() if r["op"] in OPS else f"op{r['op']}"
    return f"scoutfs.notify.{r['fsid']}.{r['node']}.{op}"


def msgid(r):
    return f"{r['fsid']}.{r['rid']}.{r['seq']}" + (".gap" if r["op"] == "GAP" else "")


def line(r, mid=True):
    return f"{subject(r)}\t{msgid(r) if mid else '-'}\t{payload(r)}\n"


def batch_line(rs):
    """several records in one message, as --batch publishes them"""
    r0 = rs[0]
    data = "\x1f".join(payload(r) for r in rs)
    return (f"scoutfs.notify.{r0['fsid']}.{r0['node']}.batch\t"
            f"{r0['fsid']}.{r0['rid']}.{rs[0]['seq']}-{rs[-1]['seq']}.batch\t{data}\n")


def new_nats():
    """a nats-server with the stream as scoutfs-notify-forward makes it"""
    n = natslib.Nats(WORK)
    r = tnats("mkstream", n.url, STREAM, "1")
    if r.returncode:
        raise RuntimeError(f"mkstream: {r.stderr.decode()[-300:]}")
    return n


def publish(url, lines):
    r = tnats("putmany", url, "-", input="".join(lines).encode())
    return r.returncode == 0, r.stdout.decode() + r.stderr.decode()[-300:]


def stream_last(url):
    r = tnats("info", url, STREAM)
    if r.returncode:
        return -1
    return int(dict(x.split("=") for x in r.stdout.decode().split())["last"])


# ---- the model: what the index must hold, from the records it applies

def fsid_int(s):
    v = int(s, 16)
    return v - (1 << 64) if v >= 1 << 63 else v


def expect_files(applied, mount_ids):
    """files rows from the applied records (in apply order), computed apart from the tool"""
    files = {}
    for r in applied:
        if r["op"] not in (1, 2, 4):
            continue
        k = (fsid_int(r["fsid"]), r["ino"])
        f = files.setdefault(k, dict(path=None, path_ns=0, first_ns=r["t"], opens=0, calls=0,
                                     bytes=0, mmaps=0, open=0, read=0, mmap=0, reader=None,
                                     hits=[]))
        f["first_ns"] = min(f["first_ns"], r["t"])
        if r["path"] is not None and (r["t"], r["path"]) > (f["path_ns"], f["path"] or b""):
            f["path"], f["path_ns"] = r["path"], r["t"]
        calls = r.get("calls", 1)
        mid = mount_ids[(r["fsid"], r["node"], r["rid"])]
        if r["op"] == 1:
            f["opens"] += calls
            f["open"] = max(f["open"], r["t"])
            continue
        if r["op"] == 2:
            f["calls"] += calls
            f["bytes"] += r["len"]
            f["read"] = max(f["read"], r["t"])
        else:
            calls = 1
            f["mmaps"] += 1
            f["mmap"] = max(f["mmap"], r["t"])
        f["hits"].append((r["t"], calls))
        if f["reader"] is None or (r["t"], mid, r["uid"]) > f["reader"]:
            f["reader"] = (r["t"], mid, r["uid"])
    out = {}
    for k, f in files.items():
        hn = max((t for t, _ in f["hits"]), default=0)
        h = sum(c * (1 - LOSS) ** ((hn - t) / PERIOD_NS) for t, c in f["hits"])
        rd = f["reader"]
        out[k] = dict(path=f["path"], path_ns=f["path_ns"], first_ns=f["first_ns"], seen_ns=0,
                      last_open_ns=f["open"], last_read_ns=f["read"], last_mmap_ns=f["mmap"],
                      last_use_ns=max(f["read"], f["mmap"]), opens=f["opens"],
                      read_calls=f["calls"], read_bytes=f["bytes"], mmaps=f["mmaps"],
                      last_uid=rd[2] if rd else -1, last_mount=rd[1] if rd else 0, heat=h,
                      heat_ns=hn)
    return out


FILE_COLS = ["path", "path_ns", "first_ns", "seen_ns", "last_open_ns", "last_read_ns",
             "last_mmap_ns", "last_use_ns", "opens", "read_calls", "read_bytes", "mmaps",
             "last_uid", "last_mount", "heat", "heat_ns"]


def tok(s):
    if s == "-":
        return None
    if s.startswith('"'):
        return codecs.escape_decode(s[1:-1].encode())[0]
    return float(s) if ("." in s or "e" in s) else int(s)


def dump(db):
    """the tool's dump: {table: [row tuples]}, or None if it failed"""
    r = heat(db, "dump")
    if r.returncode:
        print(f"    dump: exit {r.returncode}: {r.stderr.decode(errors='replace')[-300:]}")
        return None
    out = {}
    for ln in r.stdout.decode("utf-8", "surrogateescape").split("\n"):
        if ln:
            t, *vals = ln.split(" ")
            out.setdefault(t, []).append(tuple(tok(v) for v in vals))
    return out


def dump_files(d):
    return {(row[0], row[1]): dict(zip(FILE_COLS, row[2:])) for row in (d or {}).get("files", [])}


def same_files(got, want):
    """exact, but the heat to a relative 1e-9 (a float summed in another order); the first differences"""
    diffs = []
    for k in sorted(set(got) | set(want)):
        g, w = got.get(k), want.get(k)
        if g is None or w is None:
            diffs.append(f"{k}: {'missing' if g is None else 'not expected'}")
            continue
        for c in FILE_COLS:
            if c == "heat":
                if abs(g[c] - w[c]) > 1e-9 * max(1.0, abs(w[c])):
                    diffs.append(f"{k} heat {g[c]} != {w[c]}")
            elif g[c] != w[c]:
                diffs.append(f"{k} {c} {g[c]!r} != {w[c]!r}")
    return diffs[:5]


def same_dumps(a, b):
    """two dumps equal, created_ns aside, the heat to 1e-9"""
    if a is None or b is None:
        return ["a dump failed"]
    if not a.get("files") or not b.get("files"):
        return ["no files in a dump"]
    diffs = same_files(dump_files(a), dump_files(b))
    for t in ("meta", "mounts", "periods", "gaps", "scans"):
        skip = (b"created_ns", b"stream_seq", b"stream")
        x = [r for r in a.get(t, []) if t != "meta" or r[0] not in skip]
        y = [r for r in b.get(t, []) if t != "meta" or r[0] not in skip]
        if x != y:
            diffs.append(f"{t}: {x[:3]} != {y[:3]}")
    return diffs


def meta(db, key):
    d = dump(db)
    for row in (d or {}).get("meta", []):
        if row[0] == key.encode():
            return row[1].decode()
    return None


# ---- engines

class Ingest:
    """scoutfs-notify-heat ingest as a process, its stderr kept"""

    def __init__(self, db, *args, env=None):
        self.log = tempfile.NamedTemporaryFile(dir=WORK, prefix="ingest", suffix=".log", delete=False)
        self.p = subprocess.Popen([HEAT, "--db", db, "ingest", *args], stdout=self.log,
                                  stderr=subprocess.STDOUT, env=env)

    def text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def counts(self):
        n0 = self.text().count("counts:")
        self.p.send_signal(signal.SIGUSR1)
        if not wait_for(lambda: self.text().count("counts:") > n0, 30):
            return {}
        last = [x for x in self.text().splitlines() if "counts:" in x][-1]
        out = {}
        for item in last.split("counts: ", 1)[1].split(", "):
            k, v = item.split(" (")[0].rsplit(" ", 1)
            out[k.replace(" ", "_")] = int(v)
        return out

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            return self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()


def ingest_all(db, url, last, *extra, durable="heat"):
    """ingest until the database holds stream message `last`; the exit status and log"""
    i = Ingest(db, "--server", url, "--durable", durable, "--flush-interval", "100ms", *extra)
    ok = wait_for(lambda: i.p.poll() is not None or meta(db, "stream_seq") == str(last), 180)
    rc = i.stop()
    return ok and rc == 0, rc, i.text()


def ingest_until(db, url, durable, done):
    """ingest until done(): what failed or killed runs took and did not commit
    is read again at the start"""
    i = Ingest(db, "--server", url, "--durable", durable, "--flush-interval", "10ms")
    ok = wait_for(done, 120)
    return i.stop() == 0 and ok


# ---- the known workload

def workload():
    """(stream lines, records applied in order, mount ids, expected gaps, messages published)"""
    A, B, C = (FSID, "n1", RID_A), (FSID, "n2", RID_B), (FSID2, "n1", RID_C)
    names = HOSTILE_NAMES + MORE_NAMES
    path = {100 + i: b"/mnt/scoutfs/d%d/" % (i % 3) + n for i, n in enumerate(names)}
    path[200] = b"/mnt/scoutfs/plain/file"
    t = lambda s: T0 + s * 1000000000 + 123  # noqa: E731
    lines, applied = [], []

    def emit(r, mid=True):
        lines.append(line(r, mid))
        applied.append(r)

    emit(rec(*A, 1, 3, t(0), ino=0, uid=0))
    seq = 1
    rnd = random.Random(21)
    for k in range(40):
        seq += 1
        ino = rnd.choice(list(path))
        op = [1, 2, 2, 2, 4][k % 5]
        emit(rec(*A, seq, op, t(seq), ino=ino, uid=1000 + k % 3, off=k * 4096,
                 ln=4096 if op == 2 else 65536 if op == 4 else 0, flags=3 if op == 4 else 0o100000,
                 path=path[ino]))
        if seq == 20:                      # an op this version doesn't know
            seq += 1
            emit(rec(*A, seq, 9, t(seq), ino=ino))
        if seq == 30:                      # a GAP message: 31-33 lost
            lines.append(line(dict(fsid=FSID, node="n1", rid=RID_A, op="GAP", after=30, seq=34)))
            seq = 33
    # a jump: 43-46 never come, no GAP message
    last_a = seq
    seq += 4
    r = rec(*A, seq + 1, 2, t(seq + 1), ino=200, uid=7, ln=100, path=path[200])
    emit(r)
    # node n2: its own mount, read calls of the same files, some in a batched message
    emit(rec(*B, 1, 3, t(0) + 5, uid=0))
    batch = [rec(*B, s, 2, t(s) + 7, ino=100 + s % 4, uid=2000, off=s, ln=1000 + s,
                 path=path[100 + s % 4]) for s in range(2, 8)]
    lines.append(batch_line(batch))
    applied.extend(batch)
    # another filesystem
    emit(rec(*C, 1, 3, t(1), uid=0))
    emit(rec(*C, 2, 2, t(2), ino=100, uid=3, ln=10, path=b"/mnt/other/file"))
    # late: seq 32 (counted lost by the GAP) comes after all
    emit(rec(*A, 32, 2, t(32), ino=200, uid=8, ln=32, path=path[200]))
    ids = {A: 1, B: 2, C: 3}
    workload.next_a = seq + 2
    gaps = [(1, 31, 31, 1, t(30), t(32)), (1, 33, 33, 1, t(32), t(34)),
            (1, last_a + 1, last_a + 4, 4, t(last_a), t(last_a + 5))]
    return lines, applied, ids, gaps


def check_known(db, engine, applied, ids, gaps, nmsgs, log):
    d = dump(db)
    diffs = same_files(dump_files(d), expect_files(applied, ids))
    check(d is not None and not diffs,
          f"{engine}: every file's figures are exactly what the records say "
          f"({len(dump_files(d))} files){': ' + '; '.join(diffs) if diffs else ''}")
    got = [tuple(g) for g in (d or {}).get("gaps", [])]
    check(got == gaps, f"{engine}: the GAP message, the jump and a late record inside a gap give "
                       f"exactly these gaps: {got}")
    mounts = {(m[2].decode(), m[3].decode()): m for m in (d or {}).get("mounts", [])}
    a = mounts.get(("n1", RID_A))
    check(a is not None and a[4] == workload.next_a and a[6] == 6 and a[7] == 1,
          f"{engine}: mount n1: next seq {workload.next_a}, 6 lost, 1 record of an unknown op: {a}")
    check(f"messages {nmsgs}" in log and "rejected 0" in log and "duplicate 0" in log,
          f"{engine}: ingest counted {nmsgs} messages, none rejected or duplicate")
    r = heat(db, "coverage", "--json")
    cov = strict_json(r.stdout.split(b"\n")[0]).get("coverage", {}) if r.returncode == 0 else {}
    ma = [m for m in cov.get("mounts", []) if m["node"] == "n1" and m["rid"] == RID_A]
    check(cov.get("lost") == 6 and len(cov.get("mounts", [])) == 3 and ma and ma[0]["gaps"] == 3 and
          ma[0]["attached"] and ma[0]["since_ns"] == T0 + 123,
          f"{engine}: coverage: 3 mounts, 6 lost in 3 gaps, observed since n1's ATTACH "
          f"({cov.get('lost')} lost, {[(m['node'], m['gaps'], m['lost']) for m in cov.get('mounts', [])]})")


def t_known_workload():
    n = new_nats()
    lines, applied, ids, gaps = workload()
    ok, msg = publish(n.url, lines)
    check(ok, f"the workload is in the stream ({len(lines)} messages: {msg.strip()})")
    pg = Pg()
    dbs = [("sqlite", os.path.join(WORK, "known.db")), ("postgresql", pg.url)]
    for engine, db in dbs:
        ok, rc, log = ingest_all(db, n.url, len(lines), durable=engine)
        check(ok and sanitizer_clean(log), f"{engine}: ingest applies the stream and stops on SIGTERM "
                                           f"(exit {rc})")
        check_known(db, engine, applied, ids, gaps, len(lines), log)
    a, b = dump(dbs[0][1]), dump(dbs[1][1])
    diffs = same_dumps(a, b)
    check(not diffs, f"SQLite and PostgreSQL hold the same index {diffs}")
    # redelivered or duplicated messages: everything again, with and without msg ids
    ok, msg = publish(n.url, [x.replace(f"\t{x.split(chr(9))[1]}\t", "\t-\t") for x in lines] + lines)
    check(ok and f"duplicate {len(lines)}" in msg,
          f"published again: without msg ids stored again, with them the stream's duplicates ({msg.strip()})")
    for engine, db in dbs:
        ok, rc, log = ingest_all(db, n.url, 2 * len(lines), durable=engine)
        nrec = len(applied) + 1     # and the GAP message
        check(ok and f"duplicate {nrec}" in log and "applied 0," in log,
              f"{engine}: every record (and gap) delivered again is a duplicate ({nrec}), nothing applied"
              f" {[x for x in log.splitlines() if 'counts:' in x][-1:]}")
        diffs = same_dumps(dump(db), a if engine == "sqlite" else b)
        check(not diffs, f"{engine}: the index did not change {diffs}")
    check(pg.stop(), "the PostgreSQL server is stopped")
    n.close()


def in_two_transactions(n, pg, name, parts, want, what):
    """publish each part and ingest what the stream has into a SQLite file and PostgreSQL after
    each (a transaction a part); both commit and hold the model's files. Returns the databases"""
    dbs = (("sqlite", os.path.join(WORK, f"{name}.db")), ("postgresql", pg.url))
    runs, count = {}, 0
    for k, part in enumerate(parts):
        ok, msg = publish(n.url, [line(r) for r in part])
        check(ok, f"transaction {k + 1}'s records are in the stream ({msg.strip()})")
        count += len(part)
        for engine, db in dbs:
            runs.setdefault(engine, []).append(ingest_all(db, n.url, count, durable=f"{name}-{engine}"))
    for engine, db in dbs:
        r = runs[engine]
        ok = all(x[0] for x in r)
        diffs = same_files(dump_files(dump(db)), want) if ok else [x[2][-300:] for x in r]
        check(ok and not diffs, f"{engine}: both transactions commit (exits {[x[1] for x in r]}) and "
                                f"{what} {diffs}")
    return dbs


def t_heat_far_apart():
    """a file's reads years apart, and a file only opened before it is read, in two transactions"""
    n = new_nats()
    A = (FSID, "n1", RID_A)
    year = 365 * 86400 * 10**9
    first = [rec(*A, 1, 3, T0, uid=0),
             rec(*A, 2, 2, T0 - 3 * year, ino=501, ln=10, path=b"/mnt/scoutfs/old"),
             rec(*A, 3, 1, T0, ino=500, path=b"/mnt/scoutfs/opened")]
    then = [rec(*A, 4, 2, T0 + 1000, ino=501, ln=20, path=b"/mnt/scoutfs/old"),
            rec(*A, 5, 2, T0 + 2000, ino=500, ln=30, path=b"/mnt/scoutfs/opened")]
    want = expect_files(first + then, {A: 1})
    pg = Pg()
    in_two_transactions(n, pg, "far", (first, then), want, "the files' heat is the model's")
    check(pg.stop(), "the PostgreSQL server is stopped")
    n.close()


def t_paths_across_transactions():
    """a file's path changed by a later transaction: renamed, a tie, an older path from another
    node, none; the row's path, the model's, and the path index finds it (the upsert writes the
    path apart, only where it changes)"""
    n = new_nats()
    A, B = (FSID, "n1", RID_A), (FSID, "n2", RID_B)
    p = lambda x: b"/mnt/scoutfs/paths/" + x  # noqa: E731
    # ino: (path, time) of the first transaction, then of the second (another node's)
    cases = {600: ((p(b"a"), 1000), (p(b"new/b"), 2000)),    # renamed
             601: ((p(b"b"), 2000), (p(b"a"), 1000)),        # an older path comes later
             602: ((p(b"a"), 1000), (p(b"b"), 1000)),        # a tie: the greater wins
             603: ((p(b"b"), 1000), (p(b"a"), 1000)),
             604: ((None, 1000), (p(b"new/c"), 1000)),       # none, then one
             605: ((p(b"c"), 1000), (None, 3000))}           # one, then none
    first = [rec(*A, 1, 3, T0, uid=0)] + [
        rec(*A, 2 + k, 2, T0 + c[0][1], ino=ino, ln=10, path=c[0][0]) for k, (ino, c) in enumerate(cases.items())]
    then = [rec(*B, 1, 3, T0, uid=0)] + [
        rec(*B, 2 + k, 2, T0 + c[1][1], ino=ino, ln=20, path=c[1][0]) for k, (ino, c) in enumerate(cases.items())]
    want = expect_files(first + then, {A: 1, B: 2})
    check({k: want[(fsid_int(FSID), k)]["path"] for k in cases} ==
          {600: p(b"new/b"), 601: p(b"b"), 602: p(b"b"), 603: p(b"b"), 604: p(b"new/c"), 605: p(b"c")},
          "the model's paths are the rule's (the latest; of one time the greater)")
    pg = Pg()
    dbs = in_two_transactions(n, pg, "paths", (first, then), want, "every file's path and figures are the model's")
    for engine, db in dbs:
        q = heat(db, "cold", "--under", p(b"new"), "-0")
        got = sorted(q.stdout.split(b"\0")[:-1]) if q.returncode == 0 else q.stderr
        check(got == [p(b"new/b"), p(b"new/c")],
              f"{engine}: cold --under finds the files by their new paths: {got}")
    check(pg.stop(), "the PostgreSQL server is stopped")
    n.close()


# ---- restart and SIGKILL mid-ingest

def big_workload(nrec=100000, nfiles=700):
    rnd = random.Random(7)
    mounts = [(FSID, "n1", RID_A), (FSID, "n2", RID_B), (FSID, "n3", RID_C)]
    seqs = {m: 1 for m in mounts}
    lines, applied = [], []
    for m in mounts:
        r = rec(*m, 1, 3, T0, uid=0)
        lines.append(line(r))
        applied.append(r)
    for k in range(nrec):
        m = mounts[rnd.randrange(3)]
        seqs[m] += 1
        if rnd.random() < 0.002:
            seqs[m] += 3
            lines.append(line(dict(fsid=m[0], node=m[1], rid=m[2], op="GAP", after=seqs[m] - 4,
                                   seq=seqs[m])))
        ino = 1 + int(rnd.paretovariate(1.2)) % nfiles
        op = rnd.choice((1, 2, 2, 2, 2, 4))
        r = rec(*m, seqs[m], op, T0 + k * 7919000 + rnd.randrange(1000), ino=ino,
                uid=rnd.randrange(5), ln=rnd.randrange(1, 1 << 20), path=b"/mnt/f/%d" % ino)
        lines.append(line(r))
        applied.append(r)
    return lines, applied, {m: i + 1 for i, m in enumerate(mounts)}


def t_sigkill_and_restart():
    n = new_nats()
    lines, applied, ids = big_workload()
    ok, msg = publish(n.url, lines)
    check(ok, f"{len(lines)} messages in the stream ({msg.strip()})")
    whole = os.path.join(WORK, "whole.db")
    ok, rc, log = ingest_all(whole, n.url, len(lines), durable="whole")
    check(ok, f"an uninterrupted run applies them (exit {rc})")
    want = expect_files(applied, ids)
    diffs = same_files(dump_files(dump(whole)), want)
    check(not diffs, f"its files are what the model computes {diffs}")
    # hundreds of files a transaction: the upserts of many rows a statement, on both engines
    pg = Pg()
    ok, rc, log = ingest_all(pg.url, n.url, len(lines), durable="whole-pg")
    diffs = same_files(dump_files(dump(pg.url)), want) if ok else [log[-800:]]
    check(not diffs and len(want) > 64, f"PostgreSQL: an uninterrupted run's {len(want)} files are what the "
                                        f"model computes (exit {rc}) {diffs}")
    check(pg.stop(), "the PostgreSQL server is stopped")
    cut = os.path.join(WORK, "cut.db")
    kills = 0
    seen = []

    def position():     # read straight from the database, often: the runs are quick
        try:
            c = sqlite3.connect(f"file:{cut}?mode=ro", uri=True, timeout=5)
            v = c.execute("SELECT value FROM meta WHERE key = 'stream_seq'").fetchone()
            c.close()
            return int(v[0]) if v else 0
        except sqlite3.Error:
            return 0
    # killed from inside, at its Nth write to the WAL (mid-transaction), then from outside
    walkill = dict(os.environ, LD_PRELOAD=os.environ["ASAN_LIB"] + ":" + os.environ["WALKILL_SO"])
    inside = []
    for at in (31, 77, 77, 77):
        i = Ingest(cut, "--server", n.url, "--durable", "cut", "--flush-interval", "10ms",
                   "--flush-files", "50", env=dict(walkill, WALKILL_AT=str(at)))
        inside.append(i.p.wait(300))
        seen.append(position())
    for k in range(6):
        i = Ingest(cut, "--server", n.url, "--durable", "cut", "--flush-interval", "10ms",
                   "--flush-files", "50")
        before = position()
        # kill it once it has committed something: at some point of a flush or between two
        poll(lambda: position() != before or i.p.poll() is not None, 120, 0.002)
        if k % 3 == 2:
            i.stop(signal.SIGTERM)
        else:
            i.stop(signal.SIGKILL)
            kills += 1
        seen.append(position())
    check(inside == [-9] * 4, f"four runs killed themselves in the middle of writing a transaction ({inside})")
    ok, rc, log = ingest_all(cut, n.url, len(lines), durable="cut")
    ingest_until(cut, n.url, "cut",
                 lambda: same_files(dump_files(dump(cut)), expect_files(applied, ids)) == [])
    check(kills == 4 and 0 < max(seen) and seen[-1] < len(lines),
          f"then ingest SIGKILLed {kills} times and stopped twice mid-stream; positions {seen}")
    check(ok and "duplicate" in log, f"the last run finishes the stream (exit {rc})")
    diffs = same_dumps(dump(whole), dump(cut))
    check(not diffs, f"killed and restarted gives the index an uninterrupted run gives {diffs}")
    n.close()


def t_durables():
    """a durable that exists: a new database reads what it delivered again, an
    earlier version's (acknowledged) is made anew, one of another filter is
    refused; a position the durable skips is read again"""
    n = new_nats()
    lines, applied, ids, gaps = workload()
    ok, msg = publish(n.url, lines)
    last = len(lines)
    dbs = [os.path.join(WORK, f"durables-{k}.db") for k in range(4)]
    ok, rc, log = ingest_all(dbs[0], n.url, last, durable="d")
    check(ok, f"an index of the workload (exit {rc})")
    ok, rc, log = ingest_all(dbs[1], n.url, last, durable="d")
    check(ok and f"reading stream messages 1 to {last} again" in log and
          not same_dumps(dump(dbs[0]), dump(dbs[1])),
          f"a new database, the durable of the first: what it delivered is read again, the same index "
          f"(exit {rc})")
    r = tnats("durable", n.url, STREAM, "old", "explicit", "scoutfs.notify.>")
    ok, rc, log = ingest_all(dbs[2], n.url, last, durable="old")
    check(r.returncode == 0 and ok and "(an earlier version's): making it anew" in log and
          not same_dumps(dump(dbs[0]), dump(dbs[2])),
          f"an acknowledged durable is made anew: the same index (exit {rc})")
    r = tnats("durable", n.url, STREAM, "theirs", "none", "scoutfs.notify.x.>")
    h = heat(dbs[3], "ingest", "--server", n.url, "--durable", "theirs", timeout=120)
    check(r.returncode == 0 and h.returncode == 3 and b"not made by this program" in h.stderr and
          not os.path.exists(dbs[3] + "-wal") and meta(dbs[3], "stream_seq") is None,
          f"a durable of another filter is refused (exit {h.returncode}), nothing applied: "
          f"{h.stderr.decode().strip()[-200:]}")
    # a position missing from the stream: the durable skips it, the ingest reads it again
    d4 = (FSID, "n4", "00000000000000d4")
    ok, msg = publish(n.url, [line(rec(*d4, 1, 3, T0))] +
                      [line(rec(*d4, k, 2, T0 + k, ino=900 + k, ln=10, path=b"/mnt/scoutfs/d%d" % k))
                       for k in (2, 3)])
    r = tnats("rmmsg", n.url, STREAM, str(last + 2))
    ok, rc, log = ingest_all(dbs[0], n.url, last + 3, durable="d")
    check(r.returncode == 0 and ok and f"reading stream messages {last + 2} to {last + 2} again "
          "(skipped by the durable's delivery)" in log,
          f"a position the durable skips is read again (exit {rc}) {log[-300:]}")
    n.close()


# ---- bad input

def t_bad_messages():
    n = new_nats()
    db = os.path.join(WORK, "bad.db")
    A = (FSID, "n1", RID_A)
    t = lambda s: T0 + s * 10**9  # noqa: E731
    good = [rec(*A, 1, 3, t(1)), rec(*A, 2, 2, t(2), ino=5, ln=10, path=b"/m/five")]
    r3 = rec(*A, 3, 2, t(3), ino=5, ln=999, path=b"/m/five")
    # without message ids (the stream would store one message of an id only),
    # but for the one whose id is what is wrong
    nid = lambda x: line(r3, False) if x is None else x  # noqa: E731
    bad = [
        ("schema 2", nid(None).replace('"schema": 1', '"schema": 2')),
        ("malformed JSON", nid(None).replace('"seq": 3,', '"seq": 3')),
        ("a payload of another node", nid(None).replace('"node": "n1"', '"node": "n2"')),
        ("a wrong Nats-Msg-Id", line(r3).replace(f"{RID_A}.3\t", f"{RID_A}.4\t")),
        ("an op differing from the subject", nid(None).replace(".read\t", ".open\t")),
        ("a READ of inode 0", line(rec(*A, 3, 2, t(3), ino=0, ln=1), False)),
        ("a batch with one bad line",
         batch_line([r3, rec(*A, 4, 2, t(4), ino=6, ln=1)]).replace('"ino": 6', '"ino": -6')),
        ("time not time_ns", nid(None).replace('"time_ns": %d' % t(3), '"time_ns": %d' % (t(3) + 1))),
    ]
    after = [rec(*A, 5, 9, t(5), ino=5), rec(*A, 6, 2, t(6), ino=5, ln=20, path=b"/m/five")]
    ok, msg = publish(n.url, [line(r) for r in good] + [b for _, b in bad] + [line(r) for r in after])
    last = len(good) + len(bad) + len(after)
    ok2, rc, log = ingest_all(db, n.url, last)
    check(ok and ok2, f"ingest takes a stream with {len(bad)} bad messages (exit {rc})")
    check(log.count("ignoring stream message") == len(bad) and f"rejected {len(bad)}" in log,
          f"each bad message is refused with its stream position: "
          f"{[x.split(': ', 2)[-1] for x in log.splitlines() if 'ignoring' in x]}")
    check("not schema 1" in log and "differ from its subject" in log and "Nats-Msg-Id" in log and
          "inode 0" in log and '"time" is not "time_ns"' in log and "must be an unsigned integer" in log,
          "the reasons say what was wrong")
    want = expect_files(good + after, {A: 1})
    diffs = same_files(dump_files(dump(db)), want)
    check(not diffs, f"nothing of them was applied, not even part of the batch {diffs}")
    d = dump(db)
    m = d["mounts"][0] if d and d.get("mounts") else None
    check(m is not None and m[7] == 1 and d.get("gaps") == [(1, 3, 4, 2, t(2), t(5))],
          f"the op this version doesn't know is counted, not applied; the refused seqs 3-4 are a gap: "
          f"{m} {d.get('gaps') if d else None}")
    n.close()


def sqlite_rows(db):
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [c.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                for t in ("meta", "mounts", "periods", "gaps", "files")]
    finally:
        c.close()


def t_bad_database():
    n = new_nats()
    A = (FSID, "n1", RID_A)
    rs = [rec(*A, 1, 3, T0)] + [rec(*A, s, 2, T0 + s, ino=s % 50 + 1, ln=s, path=b"/m/%d" % (s % 50))
                               for s in range(2, 3000)]
    ok, msg = publish(n.url, [line(r) for r in rs[:100]])
    check(ok, "100 messages in the stream")
    # a database of another schema version: refused, unchanged
    db = os.path.join(WORK, "schema.db")
    ok, rc, log = ingest_all(db, n.url, 100)
    c = sqlite3.connect(db)
    c.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    c.commit()
    c.close()
    before = sqlite_rows(db)
    r = heat(db, "ingest", "--server", n.url, timeout=60)
    q = heat(db, "cold")
    check(r.returncode == 3 and b"schema version 2; this build knows version 1 only" in r.stderr and
          q.returncode == 3 and sqlite_rows(db) == before,
          f"a database of schema 2: ingest and queries refuse it (exit {r.returncode}, {q.returncode}),"
          f" unchanged: {r.stderr.decode().strip()[-150:]}")
    # locked by another writer past the busy timeout
    db = os.path.join(WORK, "locked.db")
    ok, rc, log = ingest_all(db, n.url, 100, durable="locked")
    before = sqlite_rows(db)
    ok, msg = publish(n.url, [line(r) for r in rs[100:200]])
    holder = sqlite3.connect(db, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO meta VALUES ('holder', 'x')")
    r = heat(db, "--busy-timeout", "500ms", "ingest", "--server", n.url, "--durable", "locked", timeout=120)
    holder.execute("ROLLBACK")
    holder.close()
    check(r.returncode == 1 and b"another process holds the database" in r.stderr and
          sqlite_rows(db) == before,
          f"locked: exit {r.returncode}, nothing written: {r.stderr.decode().strip()[-160:]}")
    ok, rc, log = ingest_all(db, n.url, 200, durable="locked")
    diffs = same_files(dump_files(dump(db)), expect_files(rs[:200], {A: 1}))
    check(ok and not diffs, f"unlocked: the next run applies what the locked one could not, once {diffs}")
    # read-only
    ro = os.path.join(WORK, "ro")
    os.makedirs(ro)
    shutil.copy(db, os.path.join(ro, "ro.db"))
    before = sqlite_rows(os.path.join(ro, "ro.db"))
    subprocess.run(["mount", "--bind", ro, ro], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", ro], check=True)
    r = heat(os.path.join(ro, "ro.db"), "ingest", "--server", n.url, "--durable", "ro", timeout=120)
    q = heat(os.path.join(ro, "ro.db"), "cold", "--limit", "1")
    subprocess.run(["umount", ro], check=True)
    check(r.returncode == 3 and b"can't be written" in r.stderr and q.returncode == 0 and
          sqlite_rows(os.path.join(ro, "ro.db")) == before,
          f"read-only: ingest exits 3 with the reason, queries still answer, nothing changed: "
          f"{r.stderr.decode().strip()[-160:]}")
    # full
    full = os.path.join(WORK, "full")
    os.makedirs(full)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "full", full], check=True)
    db = os.path.join(full, "full.db")
    ok, rc, log = ingest_all(db, n.url, 200, durable="full")
    before = sqlite_rows(db)
    ok, msg = publish(n.url, [line(r) for r in rs[200:]])
    filler = os.path.join(full, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    os.close(fd)
    i = Ingest(db, "--server", n.url, "--durable", "full", "--flush-interval", "2s")
    rc = i.p.wait(120)
    check(rc == 1 and "no space for the database: nothing was written" in i.text() and
          sqlite_rows(db) == before,
          f"full: exit {rc}, nothing of the transaction written: {i.text().strip()[-200:]}")
    os.unlink(filler)
    ok, rc, log = ingest_all(db, n.url, len(rs), durable="full")
    want = expect_files(rs, {A: 1})
    again = ingest_until(db, n.url, "full", lambda: not same_files(dump_files(dump(db)), want))
    diffs = same_files(dump_files(dump(db)), want)
    check(ok and again and not diffs, f"space again: the next runs apply everything once {diffs} "
          f"(the first: exit {rc}, {'at' if ok else 'NOT at'} the last position; the second: {again}) {log[-300:]}")
    subprocess.run(["umount", "-l", full])
    # PostgreSQL: locked and read-only, on a stream of its own
    n.close()
    n = new_nats()
    ok, msg = publish(n.url, [line(r) for r in rs[:100]])
    pg = Pg()
    ok, rc, log = ingest_all(pg.url, n.url, 100, durable="pg")
    before = dump(pg.url)
    ok, msg = publish(n.url, [line(r) for r in rs[100:200]])
    hold = subprocess.Popen(["psql", "-X", "-q", pg.url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    hold.stdin.write(b"BEGIN; LOCK TABLE files IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
    hold.stdin.flush()
    wait_for(lambda: hold.stdout.readline().strip() == b"locked", 30)
    r = heat(pg.url, "--busy-timeout", "500ms", "ingest", "--server", n.url, "--durable", "pg", timeout=120)
    hold.stdin.write(b"ROLLBACK;\n\\q\n")
    hold.stdin.close()
    hold.wait(30)
    check(r.returncode == 1 and b"55P03" in r.stderr and not same_dumps(before, dump(pg.url)),
          f"postgresql locked: exit {r.returncode}, nothing written: {r.stderr.decode().strip()[-160:]}")
    pg.psql("ALTER DATABASE postgres SET default_transaction_read_only = on")
    r = heat(pg.url, "ingest", "--server", n.url, "--durable", "pg", timeout=120)
    q = heat(pg.url, "cold", "--limit", "1")
    pg.psql("BEGIN READ WRITE; ALTER DATABASE postgres SET default_transaction_read_only = off; COMMIT")
    check(r.returncode == 3 and b"25006" in r.stderr and q.returncode == 0 and
          not same_dumps(before, dump(pg.url)),
          f"postgresql read-only: exit {r.returncode}, queries answer: {r.stderr.decode().strip()[-160:]}")
    ok, rc, log = ingest_all(pg.url, n.url, 200, durable="pg")
    diffs = same_files(dump_files(dump(pg.url)), expect_files(rs[:200], {A: 1}))
    check(ok and not diffs, f"postgresql: then everything applied once {diffs} (ok {ok}, exit {rc}) {log[-400:]}")
    check(pg.stop(), "the PostgreSQL server is stopped")
    n.close()


# ---- one node's daemon socket, merged READs

class FakeDaemon:
    """a scoutfs-notifyd stand-in: serves records we make on the socket"""

    def __init__(self, run_dir, fsid):
        d = os.path.join(run_dir, fsid)
        os.makedirs(d, exist_ok=True)
        self.path = os.path.join(d, "notify.sock")
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.bind(self.path)
        self.s.listen(4)
        self.s.settimeout(60)

    def serve(self, recs):
        c, _ = self.s.accept()
        for r in recs:
            c.send(struct.pack("=QQQQQIIIIII", r["seq"], r["ino"], r["t"], r["off"], r["len"],
                               r["op"], 42, r["uid"], r["uid"], r["flags"], r.get("calls", 0)))
        return c


class Mount:
    """a tmpfs made to look like a scoutfs mount by the stand-in, with files"""

    def __init__(self, name, fsid=FSID, rid=RID_A):
        self.dir = os.path.join(WORK, name)
        self.mnt = os.path.join(self.dir, "mnt")
        self.names = os.path.join(self.dir, "names")
        self.run = os.path.join(self.dir, "run")
        os.makedirs(self.mnt)
        os.makedirs(self.names)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "strictatime", "fake", self.mnt], check=True)
        self.env = dict(os.environ, LD_PRELOAD=PRELOAD, FAKE_SCOUTFS_MNT=self.mnt,
                        FAKE_SCOUTFS_FSID=fsid, FAKE_SCOUTFS_RID=rid,
                        FAKE_SCOUTFS_NAMES=self.names, FAKE_SCOUTFS_CTL=os.path.join(self.dir, "ctl"))

    def add(self, rel):
        """a file at rel (bytes); INO_PATH gives its path; its ino"""
        p = os.path.join(self.mnt.encode(), rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(b"data")
        ino = os.stat(p).st_ino
        with open(os.path.join(self.names, str(ino)), "wb") as f:
            f.write(rel)
        return ino

    def close(self):
        subprocess.run(["umount", "-l", self.mnt])


def t_socket_ingest():
    m = Mount("sock")
    i500, i501 = m.add(b"a/five hundred"), m.add(HOSTILE_NAMES[0])
    db = os.path.join(WORK, "sock.db")
    fd = FakeDaemon(m.run, FSID)
    A = (FSID, "n9", RID_A)
    t = lambda s: T0 + s * 10**9  # noqa: E731
    first = [rec(*A, 1, 3, t(1)), rec(*A, 2, 1, t(2), ino=i500, flags=0o100000),
             dict(rec(*A, 3, 2, t(3), ino=i500, ln=20480), calls=5),
             rec(*A, 4, 2, t(4), ino=i501, ln=7), rec(*A, 5, 9, t(5), ino=i501),
             rec(*A, 6, 4, t(6), ino=i501, ln=8192, flags=1)]
    i = Ingest(db, "--socket", m.mnt, "--run-dir", m.run, "--node", "n9", "--flush-interval", "50ms",
               env=m.env)
    c = fd.serve(first)
    ok = wait_for(lambda: i.counts().get("applied") == 6, 60)
    check(ok, f"ingest --socket applies what the daemon sends ({i.counts()})")
    c.close()  # the daemon goes away and comes back: the same ATTACH again, then a jump
    second = [first[0], rec(*A, 10, 2, t(10), ino=i500, ln=100)]
    c = fd.serve(second)
    ok = wait_for(lambda: i.counts().get("applied") == 7, 60)
    c.close()
    rc = i.stop()
    log = i.text()
    check(ok and rc == 0 and "reconnecting" in log and "duplicate 1" in log and sanitizer_clean(log),
          f"it reconnects; the ATTACH it gets again changes nothing (exit {rc}) {log[-600:]}")
    for r in first + second:
        r["path"] = (m.mnt.encode() + b"/" + (b"a/five hundred" if r["ino"] == i500 else HOSTILE_NAMES[0])
                     if r["ino"] and r["op"] in (1, 2, 4) else None)
    want = expect_files(first + second[1:], {A: 1})
    got = dump_files(dump(db))
    diffs = same_files(got, want)
    k = (fsid_int(FSID), i500)
    check(not diffs and got.get(k, {}).get("read_calls") == 6 and got[k]["read_bytes"] == 20580,
          f"a merged READ counts its 5 calls; paths through the mount; figures exact {diffs}")
    d = dump(db)
    check(d and d.get("gaps") == [(1, 7, 9, 3, t(6), t(10))] and d["mounts"][0][7] == 1,
          f"the records relayed while it was away are a gap (7-9), the unknown op counted: "
          f"{d.get('gaps') if d else None}")
    m.close()


# ---- end to end: the real daemon and forwarder, scan, every output

def out_paths(fmt, out):
    """the paths of a query's output, as bytes"""
    if fmt == "-0":
        return [p for p in out.split(b"\0")[:-1]]
    got = []
    for ln in out.split(b"\n"):
        if not ln or ln.startswith(b"#") or ln.startswith(b"{\"coverage"):
            continue
        if fmt == "--json":
            o = strict_json(ln)
            got.append(base64.b64decode(o["path_b64"]) if "path_b64" in o else
                       o["path"].encode() if o.get("path") is not None else None)
        else:
            f = ln.split(b" path=", 1)
            got.append(codecs.escape_decode(f[1])[0] if len(f) == 2 else None)
    return got


def t_end_to_end():
    n = new_nats()
    m = Mount("e2e")
    names = [b"d1/" + x for x in HOSTILE_NAMES] + [b"d2/" + x for x in MORE_NAMES]
    inos = {nm: m.add(nm) for nm in names}
    never = [m.add(b"quiet/never read %d" % k) for k in range(3)]
    procs = []
    dlog = open(os.path.join(m.dir, "d.log"), "w+")
    procs.append(subprocess.Popen([NOTIFYD, "--run-dir", m.run, m.mnt], stdout=dlog, stderr=dlog, env=m.env))
    wait_for(lambda: "serving" in open(dlog.name).read())
    flog = open(os.path.join(m.dir, "f.log"), "w+")
    procs.append(subprocess.Popen([FORWARD, "--server", n.url, "--node", "n1", "--run-dir", m.run, m.mnt],
                                  stdout=flog, stderr=flog, env=m.env))
    check(wait_for(lambda: "forwarding" in open(flog.name).read()), "the daemon and its forwarder run")
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sent = 1
    for k, nm in enumerate(names):
        for cmd in ["open"] + ["read"] * (k % 3 + 1):
            ctl.sendto(f"{cmd} {inos[nm]}".encode(), os.path.join(m.dir, "ctl"))
            sent += 1
    check(wait_for(lambda: stream_last(n.url) == sent, 120), f"{sent} records in the stream")
    db = os.path.join(WORK, "e2e.db")
    ok, rc, log = ingest_all(db, n.url, sent)
    d = dump_files(dump(db))
    check(ok and all(d.get((fsid_int(FSID), inos[nm]), {}).get("read_calls") == k % 3 + 1 and
                     d[(fsid_int(FSID), inos[nm])]["opens"] == 1 and
                     d[(fsid_int(FSID), inos[nm])]["path"] == m.mnt.encode() + b"/" + nm
                     for k, nm in enumerate(names)),
          "through the daemon, forwarder and stream: each file's opens, reads and exact path")
    # scan: never-read files added, nothing written into the filesystem
    every = [os.path.join(root, x) for root, dirs, files in os.walk(m.mnt.encode())
             for x in dirs + files + [b"."]]

    def times():    # lstat only: reading the directories here would move their atimes
        return {p: (os.lstat(p).st_atime_ns, os.lstat(p).st_mtime_ns, os.lstat(p).st_ctime_ns,
                    tuple(os.listxattr(p, follow_symlinks=False))) for p in every}
    t0 = times()
    r = heat(db, "scan", m.mnt, env=m.env)
    check(r.returncode == 0 and b"%d files seen, 3 added, 0 removed" % (len(names) + 3) in r.stdout,
          f"scan: every file seen, the 3 never read added: {r.stdout.decode().strip()} {r.stderr.decode()[-200:]}")
    check(times() == t0, "the scan changed no atime, mtime, ctime or xattr in the filesystem")
    r = heat(db, "cold", "--json")
    rows = [strict_json(x) for x in r.stdout.split(b"\n")[1:] if x]
    check(r.returncode == 0 and [x["ino"] for x in rows[:3]] == sorted(never) and
          all(x["last_use"] is None and x["checked_ns"] for x in rows[:3]) and
          len(rows) == len(names) + 3, "cold lists the never-read files first (last_use null), then all")
    # every output gives back the exact names
    want = sorted(m.mnt.encode() + b"/" + nm for nm in names)
    for cmd in (["cold", "--under", m.mnt + "/d1"], ["cold", "--under", m.mnt + "/d2"], ["hot", "--since", "1h", "--top", "100"]):
        for fmt in ("", "--json", "-0"):
            r = heat(db, *cmd, *([fmt] if fmt else []))
            got = out_paths(fmt, r.stdout)
            exp = [p for p in want if cmd[0] == "hot" or p.startswith((cmd[2] + "/").encode())]
            check(r.returncode == 0 and sorted(got) == exp and
                  (fmt == "-0" or all(b"\r" not in x and b"\x1b" not in x for x in r.stdout.split(b"\n"))),
                  f"{' '.join(cmd[:2])} {fmt or 'text'}: {len(exp)} hostile names back exactly, one line each")
    for nm in names[:3]:
        r = heat(db, "stat", (m.mnt.encode() + b"/" + nm), "--json", env=m.env)
        got = out_paths("--json", r.stdout)
        check(r.returncode == 0 and got == [m.mnt.encode() + b"/" + nm], f"stat of a hostile name: {nm[:20]!r}")
    r = heat(db, "report", "--by", "dir", "--json")
    keys = [strict_json(x) for x in r.stdout.split(b"\n")[1:] if x]
    check(r.returncode == 0 and {k["key"]: k["files"] for k in keys} ==
          {m.mnt + "/d1": len(HOSTILE_NAMES), m.mnt + "/d2": len(MORE_NAMES), m.mnt + "/quiet": 3},
          f"report --by dir: files per directory {[(k['key'], k['files']) for k in keys]}")
    # deleted: listed as not rechecked, left out with --recheck, removed by the next scan
    gone = m.mnt.encode() + b"/" + names[1]
    os.unlink(gone)
    r = heat(db, "cold")
    check(gone in out_paths("", r.stdout) and b"files deleted since are not rechecked" in r.stdout,
          "a deleted file is still listed, and the answer says files were not rechecked since the scan")
    r = heat(db, "cold", "--recheck", m.mnt, env=m.env)
    check(gone not in out_paths("", r.stdout) and b"1 files listed in the index are gone" in r.stdout,
          f"--recheck leaves it out and says so {r.stderr.decode()[-200:]}")
    r = heat(db, "scan", m.mnt + "/d2", env=m.env)
    check(r.returncode == 0 and b"not the filesystem's root: nothing removed" in r.stdout,
          "a scan of a directory below the root removes nothing")
    r = heat(db, "scan", m.mnt, env=m.env)
    d = dump_files(dump(db))
    check(r.returncode == 0 and b"0 added, 1 removed" in r.stdout and
          (fsid_int(FSID), inos[names[1]]) not in d and len(d) == len(names) + 2,
          f"the next scan removes it: {r.stdout.decode().strip()}")
    for p in procs:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    ok = sanitizer_clean(open(flog.name).read()) and sanitizer_clean(open(dlog.name).read())
    check(ok, "daemon and forwarder clean")
    m.close()
    n.close()


def t_usage():
    r = subprocess.run([HEAT, "--help"], capture_output=True)
    check(r.returncode == 0 and b"postgresql" in r.stdout and b"nats" in r.stdout,
          "--help names both engines and both sources of this build")
    db = os.path.join(WORK, "u.db")
    bad = [["cold", "--not-read-since", "yesterday"], ["hot", "--top", "0"], ["report"],
           ["report", "--by", "gid"], ["ingest"], ["ingest", "--socket", "/", "--server", "nats://x:1"],
           ["scan"], ["nonsense"], ["cold", "--under", "relative"]]
    for a in bad:
        r = heat(db, *a)
        check(r.returncode == 2 and r.stderr and not os.path.exists(db), f"{' '.join(a)}: usage error, exit 2")
    r = heat(db, "cold")
    check(r.returncode == 3 and b"nothing has been indexed yet" in r.stderr, f"a query of a database nothing made: {r.stderr.decode().strip()}")


TESTS = [t_usage, t_known_workload, t_heat_far_apart, t_paths_across_transactions, t_sigkill_and_restart, t_durables, t_bad_messages, t_bad_database,
         t_socket_ingest, t_end_to_end]


def main():
    os.makedirs(WORK, exist_ok=True)
    sys.exit(run_tests(TESTS, "index", os.environ.get("INDEX_TEST"), natslib.servers_stopped))


main()
