#!/usr/bin/env python3
"""The NATS part of `make bench` (scripts/bench.sh runs it natively, in a
private mount namespace): records per second from the ring into the
JetStream stream through scoutfs-notifyd and scoutfs-notify-forward, at
one replica (one nats-server) and three (a three-server cluster on
loopback), each against a bare libnats publish loop (tnats bench: async
JetStream publishes with msg ids, of the forwarder's mean payload size,
the same in-flight limit) on the same servers in the same run, in
alternating rounds; and the latency from a record's emit (its time_ns)
to its line out of scoutfs-notify-watch-nats.  The records come from
tests/daemon/fake-scoutfs.c's `stream` command: as fast as the daemon
drains them.  Prints a markdown section.  A round that failed (a bare
loop that did not finish, a forward round that timed out before every
record was stored or counted lost) is no figure: the verdict then says
"not measured" with the reason (tests/bench/verdict.py), as it does for
fewer than three rounds; what the forwarder lost is part of the verdict.
tests/bench/report_test.py tests the verdicts (table()) on made-up rounds.

    tests/bench/nats-bench.py BINDIR    (scoutfs-notifyd, scoutfs-notify-forward,
                                         scoutfs-notify-watch-nats, tnats, fake-scoutfs.so)
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import free_port, poll  # noqa: E402
from verdict import rounds_problems, throughput  # noqa: E402

BIN = None  # set by main()
ROUNDS = int(os.environ.get("BENCH_NATS_ROUNDS", "3"))
RECORDS = int(os.environ.get("BENCH_NATS_RECORDS", "100000"))
BATCH = 64
FSID = "5ca1ab1e0123abcd"
WORK = None  # set by main()


def wait_for(pred, secs=120.0, step=0.05):
    return poll(pred, secs, step)


class Cluster:
    """n nats-servers with JetStream on loopback (a cluster when n > 1)"""

    def __init__(self, n):
        self.dir = tempfile.mkdtemp(dir=WORK, prefix=f"c{n}")
        ports = [free_port() for _ in range(n)]
        routes = [free_port() for _ in range(n)]
        self.urls = [f"nats://127.0.0.1:{p}" for p in ports]
        self.procs = []
        for i in range(n):
            conf = os.path.join(self.dir, f"s{i}.conf")
            with open(conf, "w") as f:
                f.write(f'server_name: s{i}\nlisten: "127.0.0.1:{ports[i]}"\n'
                        f'jetstream {{ store_dir: "{self.dir}/js{i}" }}\n')
                if n > 1:
                    r = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
                    f.write(f'cluster {{ name: bench, listen: "127.0.0.1:{routes[i]}", routes: [{r}] }}\n')
            log = open(os.path.join(self.dir, f"s{i}.log"), "w")
            self.procs.append(subprocess.Popen(["nats-server", "-c", conf], stdout=log,
                                               stderr=subprocess.STDOUT))
        if not wait_for(lambda: subprocess.run([f"{BIN}/tnats", "ready", self.urls[0], "-"],
                                               capture_output=True).returncode == 0, 120, 0.5):
            raise RuntimeError("JetStream did not come up")

    def close(self):
        for p in self.procs:
            p.terminate()
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def info(url, stream):
    r = subprocess.run([f"{BIN}/tnats", "info", url, stream], capture_output=True)
    if r.returncode:
        return None
    return {k: int(v) for k, v in (x.split("=") for x in r.stdout.decode().split())}


class Fake:
    n = 0

    def __init__(self):
        Fake.n += 1
        self.dir = os.path.join(WORK, f"m{Fake.n}")
        self.mnt = os.path.join(self.dir, "mnt")
        self.run = os.path.join(self.dir, "run")
        self.ctl = os.path.join(self.dir, "ctl")
        os.makedirs(self.mnt)
        subprocess.run(["mount", "-t", "tmpfs", "fake", self.mnt], check=True)
        self.env = dict(os.environ, LD_PRELOAD=f"{BIN}/fake-scoutfs.so", FAKE_SCOUTFS_MNT=self.mnt,
                        FAKE_SCOUTFS_FSID=FSID, FAKE_SCOUTFS_CTL=self.ctl)
        self.dlog = os.path.join(self.dir, "d.log")
        self.d = subprocess.Popen([f"{BIN}/scoutfs-notifyd", "--run-dir", self.run, self.mnt],
                                  stderr=open(self.dlog, "w"), env=self.env)
        wait_for(lambda: "serving" in open(self.dlog).read())

    def send(self, cmd):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(cmd.encode(), self.ctl)
        s.close()

    def close(self):
        self.d.terminate()
        self.d.wait()
        subprocess.run(["umount", "-l", self.mnt])


def drained(f):
    """records the daemon drained from the ring (its SIGUSR1 stats)"""
    n0 = open(f.dlog).read().count("stats: drained")
    f.d.send_signal(signal.SIGUSR1)
    wait_for(lambda: open(f.dlog).read().count("stats: drained") > n0, 10, 0.01)
    lines = [x for x in open(f.dlog).read().splitlines() if "stats: drained" in x]
    return int(lines[-1].split("stats: drained ")[1].split()[0]) if lines else 0


def counts(p, log):
    n0 = open(log).read().count("counts:")
    p.send_signal(signal.SIGUSR1)
    wait_for(lambda: open(log).read().count("counts:") > n0, 10, 0.01)
    line = [x for x in open(log).read().splitlines() if "counts:" in x][-1]
    out = {}
    for item in line.split("counts: ", 1)[1].split(", "):
        head, _, rest = item.partition(" (")
        k, _, v = head.rpartition(" ")
        if v.isdigit():
            out[k] = int(v)
        if rest.split(" ")[0].isdigit():
            out["lost"] = int(rest.split(" ")[0])
    return out


def tn(*args):
    return subprocess.run([f"{BIN}/tnats", *args], capture_output=True)


def forward_round(urls, replicas, stream, extra=()):
    """records/s from the ring into the stream, and records lost"""
    tn("rmstream", urls[0], stream)
    f = Fake()
    log = os.path.join(f.dir, "f.log")
    p = subprocess.Popen([f"{BIN}/scoutfs-notify-forward", "--server", ",".join(urls),
                          "--node", "bench", "--stream", stream, "--replicas", str(replicas),
                          # the round, its ATTACH and the record that ends it
                          "--buffer", str(RECORDS + 16),
                          "--run-dir", f.run, "--no-paths", *extra, f.mnt],
                         stderr=open(log, "w"), env=f.env)
    wait_for(lambda: "forwarding" in open(log).read() or p.poll() is not None)
    f.send(f"stream {RECORDS}")
    # the daemon drained them all (those the forwarder could not take
    # in time it dropped for it), then one more record ends any gap at
    # the end; then every record is stored or counted in a gap
    wait_for(lambda: drained(f) >= RECORDS + 1, 600, 0.2)
    f.send("emit 1")
    ok = wait_for(lambda: (lambda c: c.get("buffered", 1) == 0 and
                           c.get("stored", 0) + c.get("lost", 0) >= RECORDS + 2)(counts(p, log)),
                  600, 0.1)
    c = counts(p, log)
    i = info(urls[0], stream)
    payload = tn("get", urls[0], stream, "2").stdout.rstrip(b"\n")
    p.terminate()
    p.wait()
    f.close()
    tn("rmstream", urls[0], stream)
    stored = c.get("stored", 0)
    # the stream's own clock: from its first message stored to its last
    span = (i["last_ns"] - i["first_ns"]) / 1e9 if i else 0
    failed = None
    if not ok:
        failed = (f"a forward round timed out: {stored:,} stored + {c.get('lost', 0):,} lost "
                  f"of {RECORDS + 2:,}, {c.get('buffered', '?')} buffered")
    elif span <= 0:
        failed = "a forward round has no stream clock span"
    return {"rate": (i["msgs"] - 1) / span * stored / i["msgs"] if not failed else None,
            "failed": failed, "stored": stored, "lost": c.get("lost", 0),
            "bytes": i["bytes"] / max(i["msgs"], 1) if i else 0, "msgs": i["msgs"] if i else 0,
            "payload": len(payload)}


def bare_round(urls, replicas, stream, size):
    # a stream with the configuration the forwarder gives its stream
    tn("rmstream", urls[0], stream)
    tn("mkstream", urls[0], stream, str(replicas))
    r = tn("bench", urls[0], f"scoutfs.notify.{FSID}.bare.read", str(RECORDS), str(size), "16384",
           stream)
    i = info(urls[0], stream)
    tn("rmstream", urls[0], stream)
    out = r.stdout.decode()
    if r.returncode or "msgs/s=" not in out or not i or i["last_ns"] <= i["first_ns"]:
        return None, f"a bare round failed (exit {r.returncode}: {r.stderr.decode().strip()[-200:]})"
    # measured as the forwarder is: by the stream's clock
    return (i["msgs"] - 1) / ((i["last_ns"] - i["first_ns"]) / 1e9), None


def latency(urls):
    """emit-to-line latency through daemon, forwarder, stream, consumer (ms)"""
    f = Fake()
    log = os.path.join(f.dir, "fl.log")
    p = subprocess.Popen([f"{BIN}/scoutfs-notify-forward", "--server", ",".join(urls), "--node", "lat",
                          "--stream", "LAT", "--run-dir", f.run, "--no-paths", f.mnt],
                         stderr=open(log, "w"), env=f.env)
    wait_for(lambda: "forwarding" in open(log).read())
    c = subprocess.Popen([f"{BIN}/scoutfs-notify-watch-nats", "--server", urls[0], "--stream", "LAT",
                          "--json"], stdout=subprocess.PIPE)
    lat = []
    # until the consumer sees a first record, it may not be subscribed yet
    os.set_blocking(c.stdout.fileno(), False)
    buf = b""
    end = time.monotonic() + 60
    while time.monotonic() < end and not buf:
        f.send("emit 1")
        time.sleep(0.05)
        buf += c.stdout.read() or b""
    os.set_blocking(c.stdout.fileno(), True)
    for _ in range(1000):
        f.send("emit 1")
        line = c.stdout.readline()
        now = time.time_ns()
        o = json.loads(line)
        while o.get("op") == "GAP" or not o.get("time_ns"):
            line = c.stdout.readline()
            now = time.time_ns()
            o = json.loads(line)
        lat.append((now - o["time_ns"]) / 1e6)
        time.sleep(0.002)
    c.terminate()
    c.wait()
    p.terminate()
    p.wait()
    f.close()
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


def med(xs):
    return statistics.median(xs) if xs else 0


def cell(xs):
    return f"{med(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})" if xs else "-"


def row_verdict(r, rounds=None):
    """the 70% target of one replica count: r's "bare" and "fw" are the
    rounds' rates (None: that round failed), "failed" their reasons,
    "lost" the records the forwarder lost over every round of it"""
    rounds = ROUNDS if rounds is None else rounds
    bare = [x for x in r["bare"] if x is not None]
    fw = [x for x in r["fw"] if x is not None]
    problems = list(r["failed"])
    problems += [f"bare loop: {p}" for p in rounds_problems(len(bare), rounds)]
    problems += [f"forwarder: {p}" for p in rounds_problems(len(fw), rounds)]
    ratio = med(fw) / med(bare) if bare and fw and med(bare) else None
    v = throughput(ratio >= 0.7 if ratio is not None else None, r["lost"], r["records"], problems,
                   "records by the forwarder")
    return ratio, v


def table(rows, rounds=None):
    """the forwarder's throughput table, one row per replica count"""
    out = [f"| replicas | bare libnats loop (msgs/s) | scoutfs-notify-forward | ratio | target >= 70% "
           f"| forward --batch {BATCH} | messages for {RECORDS:,} records | records lost | bytes per record |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio, v = row_verdict(r, rounds)
        fb = [x for x in r["fb"] if x is not None]
        out.append(f"| {r['rep']} | {cell([x for x in r['bare'] if x is not None])} "
                   f"| {cell([x for x in r['fw'] if x is not None])} "
                   f"| {f'{ratio:.0%}' if ratio is not None else '-'} | {v} | {cell(fb)} "
                   f"| {r['fbmsgs']:,.0f} | {r['lost']:,} | {r['bytes']:.0f} ({r['payload']:.0f} of JSON) |")
    return "\n".join(out)


def measure(replicas, servers):
    """ROUNDS alternating rounds on a fresh cluster: a row for table()"""
    cl = Cluster(servers)
    r = {"rep": replicas, "bare": [], "fw": [], "fb": [], "failed": [], "lost": 0, "records": 0}
    nbytes, payloads, fbmsgs = [], [], []
    try:
        for _ in range(ROUNDS):
            res = forward_round(cl.urls, replicas, "BENCH")
            r["fw"].append(res["rate"])
            nbytes.append(res["bytes"])
            payloads.append(res["payload"])
            rate, why = bare_round(cl.urls, replicas, "BENCH", res["payload"] or 300)
            r["bare"].append(rate)
            bres = forward_round(cl.urls, replicas, "BENCH", ("--batch", str(BATCH)))
            r["fb"].append(bres["rate"])
            fbmsgs.append(bres["msgs"])
            for x in (res, bres):
                r["lost"] += x["lost"]
                r["records"] += RECORDS
                if x["failed"]:
                    r["failed"].append(x["failed"])
            if why:
                r["failed"].append(why)
        lat = latency(cl.urls) if replicas == 1 else None
    finally:
        cl.close()
    r.update(bytes=med(nbytes), payload=med(payloads), fbmsgs=med(fbmsgs))
    return r, lat


def main():
    global BIN, WORK
    BIN = sys.argv[1]
    WORK = tempfile.mkdtemp(prefix="nats-bench")
    rows = []
    for replicas, servers in ((1, 1), (3, 3)):
        r, lat = measure(replicas, servers)
        rows.append(r)
        if lat:
            p50, p99 = lat

    print("#### Forwarder throughput, native (records/s from the ring into the stream)")
    print()
    print(f"{RECORDS:,} records per round as fast as scoutfs-notifyd drains them (the stand-in's "
          f"`stream`), {ROUNDS} alternating rounds, median (min-max), each rate by the stream's "
          f"clock (messages over the time from the first stored to the last; for batched "
          f"messages, records). The bare loop publishes "
          f"the same number of messages of the forwarder's payload size asynchronously with "
          f"msg ids and the same in-flight limit (16384) to the same servers; `--batch {BATCH}` "
          f"puts up to {BATCH} records in a message. Bytes per record: what the stream stores per "
          f"record, one record per message (JSON payload, subject, Nats-Msg-Id header, "
          f"JetStream's own), paths not resolved. A failed round is no figure (-); the verdict "
          f"then says why it is not measured.")
    print()
    print(table(rows))
    print()
    print("Records lost: what the daemon dropped for the forwarder when it fell behind (each loss "
          "published as a gap message), summed over the rounds of both forms.  The daemon's ATTACH "
          "record, the first message of the forwarder's connection, is stored as a record, not lost.")
    print()
    print("#### Emit to consumer latency, native (one server)")
    print()
    print("1000 records, one every 2 ms: from the record's time_ns (the stand-in's emit) to its "
          "line read from scoutfs-notify-watch-nats --json.")
    print()
    print("| p50 | p99 |")
    print("| --- | --- |")
    print(f"| {p50:.2f} ms | {p99:.2f} ms |")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
