#!/usr/bin/env python3
"""The access index's benchmark (scripts/bench.sh, `--only index`), natively.

  1. ingest: scoutfs-notify-heat ingest of a stream of RECORDS READ
     records over FILES files, against the bare loop of the same upserts
     into the same engine (tests/bench/heat-upsert.c: one row a record,
     no NATS, no parsing, no coalescing, a transaction per 1024) and
     against a bare consumer reading the same stream (tnats drain), for
     SQLite and PostgreSQL, ROUNDS alternating rounds in one run;
  2. database bytes per file after that ingest, at the stated average
     path length;
  3. the 1000 coldest files under one directory and the full cold list
     (paths to /dev/null with -0) over SYNTH synthetic files per engine,
     made inside the engine.

    tests/bench/index-bench.py BIN_DIR      (the tools, heat-upsert, tnats)

BENCH_INDEX_RECORDS (100000), BENCH_INDEX_FILES (20000), BENCH_INDEX_ROUNDS
(3), BENCH_INDEX_SYNTH ("1000000 10000000"), BENCH_INDEX_ENGINES
("sqlite postgresql").  Prints markdown.
"""
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import natslib  # noqa: E402
from pglib import Pg  # noqa: E402
from testlib import poll  # noqa: E402

BIN = sys.argv[1]
HEAT = os.path.join(BIN, "scoutfs-notify-heat")
WORK = tempfile.mkdtemp(prefix="index-bench-")
NREC = int(os.environ.get("BENCH_INDEX_RECORDS", "100000"))
NFILES = int(os.environ.get("BENCH_INDEX_FILES", "20000"))
ROUNDS = int(os.environ.get("BENCH_INDEX_ROUNDS", "3"))
SYNTH = [int(x) for x in os.environ.get("BENCH_INDEX_SYNTH", "1000000 10000000").split()]
ENGINES = os.environ.get("BENCH_INDEX_ENGINES", "sqlite postgresql").split()
FLUSH = os.environ.get("BENCH_INDEX_FLUSH", "1s")
FSID, RID = "5ca1ab1e0123abcd", "0123456789abcdef"
T0 = 1795665702000000000


def say(*a):
    print(*a, file=sys.stderr, flush=True)


def path_of(ino):
    return f"/mnt/scoutfs/projects/dir{ino % 97:03d}/sub{ino % 13:02d}/file-{ino:07d}.dat"


def records():
    """the stream's lines and the bare loop's, one READ each"""
    rnd = __import__("random").Random(1)
    stream, bare = [], []
    rec = {"schema": 1, "fsid": FSID, "node": "n1", "rid": RID, "seq": 1, "op": "ATTACH",
           "time": "", "time_ns": T0, "pid": 1, "uid": 0, "gid": 0, "ino": 0, "offset": 0,
           "len": 0, "flags": 0}
    from datetime import datetime, timezone

    def stamp(ns):
        s = datetime.fromtimestamp(ns // 10**9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{s}.{ns % 10**9:09d}Z"
    rec["time"] = stamp(T0)
    stream.append(f"scoutfs.notify.{FSID}.n1.attach\t{FSID}.{RID}.1\t{json.dumps(rec)}\n")
    for seq in range(2, NREC + 2):
        ino = 1 + int(rnd.paretovariate(1.1)) % NFILES if rnd.random() < 0.5 else rnd.randrange(1, NFILES + 1)
        t = T0 + seq * 1000
        r = dict(rec, seq=seq, op="READ", time=stamp(t), time_ns=t, uid=1000, ino=ino,
                 offset=seq * 4096, len=4096, path=path_of(ino))
        stream.append(f"scoutfs.notify.{FSID}.n1.read\t{FSID}.{RID}.{seq}\t{json.dumps(r)}\n")
        bare.append(f"{FSID} {ino} {t} 4096 1000 {path_of(ino)}\n")
    return stream, bare


def position(db):
    if db.startswith("postgresql://"):
        r = subprocess.run(["psql", "-X", "-qtA", db, "-c",
                            "SELECT value FROM meta WHERE key = 'stream_seq'"], capture_output=True)
        return int(r.stdout.strip() or 0) if r.returncode == 0 else 0
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        v = c.execute("SELECT value FROM meta WHERE key = 'stream_seq'").fetchone()
        c.close()
        return int(v[0]) if v else 0
    except sqlite3.Error:
        return 0


def fresh(engine, pg, k):
    if engine == "sqlite":
        db = os.path.join(WORK, f"r{k}.db")
        for x in (db, db + "-wal", db + "-shm"):
            if os.path.exists(x):
                os.unlink(x)
        return db
    pg.reset()
    return pg.url


def ingest_round(engine, pg, url, k, last):
    db = fresh(engine, pg, k)
    t0 = time.monotonic()
    p = subprocess.Popen([HEAT, "--db", db, "ingest", "--server", url, "--durable", f"b{engine}{k}",
                          "--flush-interval", FLUSH], stderr=subprocess.PIPE)
    ok = poll(lambda: position(db) == last or p.poll() is not None, 1800, 0.01)
    secs = time.monotonic() - t0
    p.terminate()
    err = p.communicate(timeout=120)[1].decode(errors="replace")
    counts = [x for x in err.splitlines() if "counts:" in x]
    return (NREC + 1) / secs if ok else 0.0, db, counts[-1] if counts else err[-300:]


def bare_round(engine, pg, k, bare_file):
    db = fresh(engine, pg, k)
    subprocess.run([HEAT, "--db", db, "init"], check=True, capture_output=True)
    with open(bare_file) as f:
        r = subprocess.run([os.path.join(BIN, "heat-upsert"), db, "1024"], stdin=f, capture_output=True)
    if r.returncode:
        say(f"heat-upsert: {r.stderr.decode()[-300:]}")
        return 0.0
    return float(r.stdout.split()[0].split(b"=")[1])


def drain_round(url):
    r = natslib.tnats(os.path.join(BIN, "tnats"), "drain", url, "SCOUTFS_NOTIFY")
    return float(r.stdout.split()[0].split(b"=")[1]) if r.returncode == 0 else 0.0


def bytes_per_file(engine, db):
    if engine == "sqlite":
        c = sqlite3.connect(db)
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        n = c.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        pages = c.execute("PRAGMA page_count").fetchone()[0] * c.execute("PRAGMA page_size").fetchone()[0]
        c.close()
        return pages / n, n
    r = subprocess.run(["psql", "-X", "-qtA", db, "-c",
                        "SELECT pg_total_relation_size('files'), COUNT(*) FROM files"],
                       capture_output=True, check=True)
    size, n = (int(x) for x in r.stdout.decode().strip().split("|"))
    return size / n, n


def med(xs):
    xs = [x for x in xs if x > 0]
    return (statistics.median(xs), min(xs), max(xs), len(xs)) if xs else (0, 0, 0, 0)


def fmt(m):
    return f"{m[0]:,.0f} ({m[1]:,.0f}-{m[2]:,.0f})" if m[3] else "FAILED"


SYNTH_SQLITE = """
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})
INSERT INTO files SELECT 6674804268096269261, i,
  CAST('/mnt/scoutfs/d' || printf('%04d', i % 1000) || '/s' || printf('%02d', (i / 1000) % 100)
       || '/file-' || printf('%08d', i) || '.dat' AS BLOB),
  {t0}, {t0}, 0, 0,
  CASE WHEN i % 10 = 0 THEN 0 ELSE {t0} - ((i * 2654435761) % 31536000) * 1000000000 END, 0,
  CASE WHEN i % 10 = 0 THEN 0 ELSE {t0} - ((i * 2654435761) % 31536000) * 1000000000 END,
  0, CASE WHEN i % 10 = 0 THEN 0 ELSE 1 END, CASE WHEN i % 10 = 0 THEN 0 ELSE 4096 END, 0,
  CASE WHEN i % 10 = 0 THEN -1 ELSE 1000 END, CASE WHEN i % 10 = 0 THEN 0 ELSE 1 END, 1.0, {t0}
FROM s;
"""

SYNTH_PG = """
INSERT INTO files SELECT 6674804268096269261, i,
  convert_to('/mnt/scoutfs/d' || lpad((i % 1000)::text, 4, '0') || '/s' || lpad(((i / 1000) % 100)::text, 2, '0')
       || '/file-' || lpad(i::text, 8, '0') || '.dat', 'UTF8'),
  {t0}, {t0}, 0, 0,
  CASE WHEN i % 10 = 0 THEN 0 ELSE {t0} - ((i * 2654435761) % 31536000) * 1000000000 END, 0,
  CASE WHEN i % 10 = 0 THEN 0 ELSE {t0} - ((i * 2654435761) % 31536000) * 1000000000 END,
  0, CASE WHEN i % 10 = 0 THEN 0 ELSE 1 END, CASE WHEN i % 10 = 0 THEN 0 ELSE 4096 END, 0,
  CASE WHEN i % 10 = 0 THEN -1 ELSE 1000 END, CASE WHEN i % 10 = 0 THEN 0 ELSE 1 END, 1.0, {t0}
FROM generate_series(1::bigint, {n}::bigint) AS i;
ANALYZE files;
"""


def synth(engine, pg, n):
    db = fresh(engine, pg, f"s{n}")
    subprocess.run([HEAT, "--db", db, "init"], check=True, capture_output=True)
    t0 = time.monotonic()
    if engine == "sqlite":
        c = sqlite3.connect(db)
        c.executescript(SYNTH_SQLITE.format(n=n, t0=T0))
        c.commit()
        c.execute("ANALYZE")
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.close()
    else:
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", db, "-c", SYNTH_PG.format(n=n, t0=T0)],
                       check=True, capture_output=True)
    say(f"index-bench: {n} synthetic files in {engine} in {time.monotonic() - t0:.0f} s")
    return db


def timed(db, *args):
    t0 = time.monotonic()
    r = subprocess.run([HEAT, "--db", db, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    secs = time.monotonic() - t0
    n = r.stdout.count(b"\0")
    return (secs if r.returncode == 0 else -1), n


def main():
    if not os.path.exists(HEAT):
        print("SKIPPED: scoutfs-notify-heat was not built (no SQLite)")
        return 0
    pg = Pg() if "postgresql" in ENGINES else None
    n = natslib.Nats(WORK)
    tn = os.path.join(BIN, "tnats")
    natslib.tnats(tn, "mkstream", n.url, "SCOUTFS_NOTIFY", "1")
    stream, bare = records()
    plen = statistics.mean(len(path_of(i)) for i in range(1, NFILES + 1))
    bare_file = os.path.join(WORK, "bare.txt")
    with open(bare_file, "w") as f:
        f.writelines(bare)
    r = natslib.tnats(tn, "putmany", n.url, "-", input="".join(stream).encode(), timeout=1800)
    say(f"index-bench: stream: {r.stdout.decode().strip()}")
    res = {}
    for k in range(ROUNDS):
        for engine in ENGINES:
            rate, db, counts = ingest_round(engine, pg, n.url, k, NREC + 1)
            say(f"index-bench: round {k} {engine} ingest {rate:,.0f} rec/s: {counts}")
            res.setdefault((engine, "ingest"), []).append(rate)
            if k == 0:
                res[(engine, "bytes")] = bytes_per_file(engine, db)
            brate = bare_round(engine, pg, k, bare_file)
            say(f"index-bench: round {k} {engine} bare upserts {brate:,.0f} rows/s")
            res.setdefault((engine, "bare"), []).append(brate)
        drate = drain_round(n.url)
        say(f"index-bench: round {k} bare consumer {drate:,.0f} msgs/s")
        res.setdefault(("nats", "drain"), []).append(drate)
    print(f"Ingest of {NREC:,} READ records over {NFILES:,} files (one stream message each, "
          f"`--flush-interval {FLUSH}`), medians of {ROUNDS} alternating rounds (min-max), records/s:")
    print()
    print("| engine | scoutfs-notify-heat ingest | bare upsert loop (same statement, a row a record) | ingest / bare upserts | bare consumer of the stream | ingest / bare consumer | bytes per file |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    d = med(res[("nats", "drain")])
    for engine in ENGINES:
        i, b = med(res[(engine, "ingest")]), med(res[(engine, "bare")])
        bpf, nf = res[(engine, "bytes")]
        print(f"| {engine} | {fmt(i)} | {fmt(b)} | {i[0] / b[0]:.0%} | {fmt(d)} | {i[0] / d[0]:.0%} | "
              f"{bpf:,.0f} ({nf:,} files, paths of {plen:.0f} bytes on average) |"
              if b[3] and d[3] else f"| {engine} | {fmt(i)} | {fmt(b)} | - | {fmt(d)} | - | - |")
    print()
    print("Cold queries over synthetic files (paths `/mnt/scoutfs/dNNNN/sNN/file-NNNNNNNN.dat`, 42 bytes; "
          "10% never read; 1000 directories), seconds, median of 3 (the full list over 10M: one run; "
          "paths written with `-0` to a pipe):")
    print()
    print("| engine | files | 1000 coldest under one directory | full cold list | files listed | database bytes per file |")
    print("| --- | --- | --- | --- | --- | --- |")
    for engine in ENGINES:
        for nsyn in SYNTH:
            db = synth(engine, pg, nsyn)
            reps = 3 if nsyn <= 1000000 else 1
            a = [timed(db, "cold", "--under", "/mnt/scoutfs/d0042", "--limit", "1000", "-0") for _ in range(3)]
            f = [timed(db, "cold", "-0") for _ in range(reps)]
            bpf, _ = bytes_per_file(engine, db)
            ok = all(x[0] >= 0 for x in a + f) and all(x[1] == min(1000, nsyn // 1000) for x in a) and all(x[1] == nsyn for x in f)
            print(f"| {engine} | {nsyn:,} | {statistics.median(x[0] for x in a):.3f} | "
                  f"{statistics.median(x[0] for x in f):.2f} | {f[0][1]:,} | {bpf:,.0f} |"
                  + ("" if ok else " FAILED: a query failed or listed the wrong number |"))
            if engine == "sqlite":
                for x in (db, db + "-wal", db + "-shm"):
                    if os.path.exists(x):
                        os.unlink(x)
    n.close()
    if pg:
        stopped = pg.stop()
        say(f"index-bench: PostgreSQL stopped: {stopped}")
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


sys.exit(main())
