#!/usr/bin/env python3
"""The access index's benchmark (scripts/bench.sh, `--only index`), natively.

  1. ingest: scoutfs-notify-heat ingest of a stream of RECORDS READ
     records over FILES files, one record a message (the forwarder's
     default), and of BATCH_RECORDS records in messages of 64 (the
     forwarder's --batch 64), for SQLite and PostgreSQL, ROUNDS
     alternating rounds in one run, against
     - the rate the stream is filled: the same messages published by a
       bare loop (tnats putmany: asynchronous, msg ids, 4096 in flight),
       by the stream's clock (first stored to last): the ingest keeps up
       with the stream when it reads at least that fast;
     - the bare loop of the same upserts into the same engine
       (tests/bench/heat-upsert.c: one row a record, no NATS, no
       parsing, no coalescing, a transaction per 1024);
     - a bare consumer reading the same stream (tnats drain: no acks,
       no parsing), how fast a stored backlog can be read at all;
  2. database bytes per file after that ingest, at the stated average
     path length;
  3. the 1000 coldest files under one directory and the full cold list
     (paths to /dev/null with -0) over SYNTH synthetic files per engine,
     made inside the engine.

    tests/bench/index-bench.py BIN_DIR      (the tools, heat-upsert, tnats)

BENCH_INDEX_RECORDS (100000), BENCH_INDEX_BATCH_RECORDS (1000000),
BENCH_INDEX_FILES (20000), BENCH_INDEX_ROUNDS (3), BENCH_INDEX_SYNTH
("1000000 10000000"), BENCH_INDEX_ENGINES ("sqlite postgresql").  A round
that does not apply every record of its stream, or rejects one, is no
figure (FAILED).  Prints markdown.
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
NREC_B = int(os.environ.get("BENCH_INDEX_BATCH_RECORDS", "1000000"))
BATCH = 64
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


def records(nrec):
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
    for seq in range(2, nrec + 2):
        ino = 1 + int(rnd.paretovariate(1.1)) % NFILES if rnd.random() < 0.5 else rnd.randrange(1, NFILES + 1)
        t = T0 + seq * 1000
        r = dict(rec, seq=seq, op="READ", time=stamp(t), time_ns=t, uid=1000, ino=ino,
                 offset=seq * 4096, len=4096, path=path_of(ino))
        stream.append(f"scoutfs.notify.{FSID}.n1.read\t{FSID}.{RID}.{seq}\t{json.dumps(r)}\n")
        bare.append(f"{FSID} {ino} {t} 4096 1000 {path_of(ino)}\n")
    return stream, bare


def batched(stream):
    """the same records in messages of BATCH, as scoutfs-notify-forward --batch publishes them"""
    out = [stream[0]]
    for i in range(1, len(stream), BATCH):
        part = [x.rstrip("\n").split("\t", 2) for x in stream[i:i + BATCH]]
        first, last = part[0][1].rsplit(".", 1)[1], part[-1][1].rsplit(".", 1)[1]
        out.append(f"scoutfs.notify.{FSID}.n1.batch\t{FSID}.{RID}.{first}-{last}.batch\t"
                   + "\x1f".join(x[2] for x in part) + "\n")
    return out


def fill_round(tn, url, lines, nrec):
    """a fresh stream filled with lines: records/s by the stream's clock, 0 if that failed"""
    natslib.tnats(tn, "rmstream", url, "SCOUTFS_NOTIFY")
    natslib.tnats(tn, "mkstream", url, "SCOUTFS_NOTIFY", "1")
    r = natslib.tnats(tn, "putmany", url, "-", input="".join(lines).encode(), timeout=1800)
    i = natslib.tnats(tn, "info", url, "SCOUTFS_NOTIFY")
    if r.returncode or i.returncode:
        say(f"index-bench: filling the stream failed: {(r.stderr + i.stderr).decode()[-300:]}")
        return 0.0
    v = dict(x.split("=") for x in i.stdout.decode().split())
    secs = (int(v["last_ns"]) - int(v["first_ns"])) / 1e9
    return nrec / secs if int(v["msgs"]) == len(lines) and secs > 0 else 0.0


class Position:
    """the stream position an ingest committed, polled every 10ms: on PostgreSQL through one
    psql session (a psql process a poll took about a quarter of the two cores' time from the
    ingest it measured), on SQLite a read-only connection a poll"""

    def __init__(self, db):
        self.db, self.psql = db, None
        if db.startswith("postgresql://"):
            self.psql = subprocess.Popen(["psql", "-X", "-qtA", db], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True, bufsize=1)

    def __call__(self):
        if self.psql:
            # before the ingest made the schema the query fails and only the marker comes back
            self.psql.stdin.write("SELECT value FROM meta WHERE key = 'stream_seq';\n\\echo .\n")
            self.psql.stdin.flush()
            out = []
            for line in self.psql.stdout:
                if line == ".\n":
                    break
                out.append(line.strip())
            return int(out[0]) if out and out[0] else 0
        try:
            c = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
            v = c.execute("SELECT value FROM meta WHERE key = 'stream_seq'").fetchone()
            c.close()
            return int(v[0]) if v else 0
        except sqlite3.Error:
            return 0

    def close(self):
        if self.psql:
            self.psql.stdin.close()
            self.psql.wait(timeout=60)


def fresh(engine, pg, k):
    if engine == "sqlite":
        db = os.path.join(WORK, f"r{k}.db")
        for x in (db, db + "-wal", db + "-shm"):
            if os.path.exists(x):
                os.unlink(x)
        return db
    pg.reset()
    return pg.url


def ingest_round(engine, pg, url, k, last, nrec):
    """records/s from the start of the process to the commit of the stream's last message;
    0 unless every record was applied and none rejected"""
    db = fresh(engine, pg, k)
    position = Position(db)
    t0 = time.monotonic()
    p = subprocess.Popen([HEAT, "--db", db, "ingest", "--server", url, "--durable", f"b{engine}{k}",
                          "--flush-interval", FLUSH], stderr=subprocess.PIPE)
    ok = poll(lambda: position() == last or p.poll() is not None, 1800, 0.01)
    secs = time.monotonic() - t0
    p.terminate()
    position.close()
    err = p.communicate(timeout=120)[1].decode(errors="replace")
    counts = [x for x in err.splitlines() if "counts:" in x]
    whole = bool(counts) and f"applied {nrec + 1}," in counts[-1] and "rejected 0," in counts[-1]
    return (nrec + 1) / secs if ok and whole else 0.0, db, counts[-1] if counts else err[-300:]


def bare_round(engine, pg, k, bare_file):
    db = fresh(engine, pg, k)
    subprocess.run([HEAT, "--db", db, "init"], check=True, capture_output=True)
    with open(bare_file) as f:
        r = subprocess.run([os.path.join(BIN, "heat-upsert"), db, "1024"], stdin=f, capture_output=True)
    if r.returncode:
        say(f"heat-upsert: {r.stderr.decode()[-300:]}")
        return 0.0
    return float(r.stdout.split()[0].split(b"=")[1])


def drain_round(url, nrec):
    """records/s a bare consumer reads the stream at"""
    r = natslib.tnats(os.path.join(BIN, "tnats"), "drain", url, "SCOUTFS_NOTIFY")
    v = dict(x.split(b"=") for x in r.stdout.split()) if r.returncode == 0 else {}
    return (nrec + 1) / float(v[b"secs"]) if v and float(v[b"secs"]) > 0 else 0.0


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


def verdict(i, fill):
    """keeping up: the ingest reads at least as fast as the stream is filled, every round whole"""
    if not i[3] or not fill[3] or i[3] < ROUNDS or fill[3] < ROUNDS:
        return "not measured: a round failed (see above)"
    return "met" if i[0] >= fill[0] else "MISSED"


def ingest_table(res, forms, plen):
    print(f"Ingest of READ records over {NFILES:,} files (`--flush-interval {FLUSH}`), one record a message "
          f"({NREC:,} records) and {BATCH} a message ({NREC_B:,} records, as `scoutfs-notify-forward --batch "
          f"{BATCH}` publishes them), medians of {ROUNDS} alternating rounds (min-max), records/s. The stream "
          f"filled: the same messages published by a bare loop (asynchronous, msg ids, 4096 in flight), by "
          f"the stream's clock; the ingest keeps up with the stream when it reads at least that fast. A bare "
          f"consumer: no acks, no parsing, how fast a stored backlog can be read at all:")
    print()
    print("| engine | records a message | scoutfs-notify-heat ingest | the stream filled | ingest / filled "
          "| keeps up | bare upsert loop (same statement, a row a record) | ingest / bare upserts "
          "| bare consumer of the stream | ingest / bare consumer | bytes per file |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for engine in ENGINES:
        b = med(res[(engine, "bare")])
        bpf, nf = res[(engine, "bytes")]
        for form, _, _ in forms:
            i, fl, d = med(res[(form, engine, "ingest")]), med(res[(form, "fill")]), med(res[(form, "drain")])
            ratio = lambda x, y: f"{x[0] / y[0]:.0%}" if x[3] and y[3] else "-"  # noqa: E731
            print(f"| {engine} | {form} | {fmt(i)} | {fmt(fl)} | {ratio(i, fl)} | {verdict(i, fl)} | "
                  f"{fmt(b) if form == '1' else 'as above'} | {ratio(i, b)} | {fmt(d)} | {ratio(i, d)} | "
                  + (f"{bpf:,.0f} ({nf:,} files, paths of {plen:.0f} bytes on average) |" if form == "1" else "- |"))
    print()


def main():
    if not os.path.exists(HEAT):
        print("SKIPPED: scoutfs-notify-heat was not built (no SQLite)")
        return 0
    pg = Pg() if "postgresql" in ENGINES else None
    n = natslib.Nats(WORK)
    tn = os.path.join(BIN, "tnats")
    stream, bare = records(NREC)
    forms = [("1", stream, NREC), (str(BATCH), batched(records(NREC_B)[0]), NREC_B)]
    plen = statistics.mean(len(path_of(i)) for i in range(1, NFILES + 1))
    bare_file = os.path.join(WORK, "bare.txt")
    with open(bare_file, "w") as f:
        f.writelines(bare)
    res = {}
    for k in range(ROUNDS):
        for form, lines, nrec in forms:
            fill = fill_round(tn, n.url, lines, nrec)
            say(f"index-bench: round {k} {form} a message: the stream filled at {fill:,.0f} rec/s")
            res.setdefault((form, "fill"), []).append(fill)
            for engine in ENGINES:
                rate, db, counts = ingest_round(engine, pg, n.url, f"{k}-{form}", len(lines), nrec)
                say(f"index-bench: round {k} {form} a message: {engine} ingest {rate:,.0f} rec/s: {counts}")
                res.setdefault((form, engine, "ingest"), []).append(rate)
                if k == 0 and form == "1":
                    res[(engine, "bytes")] = bytes_per_file(engine, db)
                if form == "1":
                    brate = bare_round(engine, pg, k, bare_file)
                    say(f"index-bench: round {k} {engine} bare upserts {brate:,.0f} rows/s")
                    res.setdefault((engine, "bare"), []).append(brate)
            drate = drain_round(n.url, nrec)
            say(f"index-bench: round {k} {form} a message: bare consumer {drate:,.0f} rec/s")
            res.setdefault((form, "drain"), []).append(drate)
    ingest_table(res, forms, plen)
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
