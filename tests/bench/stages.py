#!/usr/bin/env python3
"""Where the user-space instructions per record go (part of `make bench`;
scripts/bench.sh runs it natively, in a private mount namespace): the
daemon, the client and the forwarder each run under valgrind's
callgrind, over tests/daemon/fake-scoutfs.c, for two numbers of records;
the difference divided by the difference in records is the cost of one
record, start-up and shutdown cancelled out.  Each function's inclusive
instructions say which stage they are: the daemon's relay
(broadcast), its client handling and bookkeeping; the client's receive
(ns_recv, or recvmmsg before), its formatting (nf_text_record,
nf_json_record) and path look-up (np_path, less the stand-in's
INO_PATH); the forwarder's reading of the socket, encoding (encode),
publishing (publish_msg: js_PublishAsync) and acknowledgements
(on_ack), the rest of libnats' threads being the remainder.  The
stand-in's own work (it runs in the process, as an LD_PRELOAD library)
is left out.  Kernel instructions (the system calls) are not counted
here: tests/vm/bench.sh's stages measure those on a real kernel.

    tests/bench/stages.py AFTER_BINDIR BEFORE_BINDIR

Each BINDIR holds scoutfs-notifyd, scoutfs-notify-watch and optionally
scoutfs-notify-forward, built -O2 -g with only small functions inlined,
so that each stage's function has its own cost; both use AFTER_BINDIR's fake-scoutfs.so (and tnats, for
the forwarder).  BEFORE is the series before merged records and batches
(scripts/bench.sh builds it from git); its clients take one record per
message, AFTER's ask for batches.  Prints a markdown section.
"""
import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from testlib import free_port, poll  # noqa: E402

AFTER, BEFORE = sys.argv[1], sys.argv[2]
N1 = int(os.environ.get("BENCH_STAGES_N1", "2000"))
N2 = int(os.environ.get("BENCH_STAGES_N2", "10000"))
FSID = "5ca1ab1e0123abcd"
WORK = tempfile.mkdtemp(prefix="stages")
FAKE = f"{AFTER}/fake-scoutfs.so"
VG = ["valgrind", "--tool=callgrind", "--dump-instr=no"]
PROCS = []


def spawn(*args, **kw):
    """a process that is killed at exit if it is still running"""
    p = subprocess.Popen(*args, **kw)
    PROCS.append(p)
    return p


@atexit.register
def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.kill()
            p.wait()


def wait_for(pred, secs=300.0):
    return poll(pred, secs, 0.05)


class Fake:
    """a fake mount and its daemon (under callgrind when cg names a file)"""
    n = 0

    def __init__(self, bindir, cg=None):
        Fake.n += 1
        self.dir = os.path.join(WORK, f"m{Fake.n}")
        self.mnt = os.path.join(self.dir, "mnt")
        self.run = os.path.join(self.dir, "run")
        self.ctl = os.path.join(self.dir, "ctl")
        os.makedirs(self.mnt)
        subprocess.run(["mount", "-t", "tmpfs", "fake", self.mnt], check=True)
        self.env = dict(os.environ, LD_PRELOAD=FAKE, FAKE_SCOUTFS_MNT=self.mnt,
                        FAKE_SCOUTFS_FSID=FSID, FAKE_SCOUTFS_CTL=self.ctl)
        self.sock = os.path.join(self.run, FSID, "notify.sock")
        self.log = os.path.join(self.dir, "d.log")
        pre = VG + [f"--callgrind-out-file={cg}"] if cg else []
        self.d = spawn(pre + [f"{bindir}/scoutfs-notifyd", "--run-dir", self.run, self.mnt],
                                  stderr=open(self.log, "w"), env=self.env)
        if not wait_for(lambda: "serving" in open(self.log).read(), 120):
            raise RuntimeError("the daemon did not start: " + open(self.log).read()[-500:])

    def send(self, cmd):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(cmd.encode(), self.ctl)
        s.close()

    def clients(self):
        n0 = open(self.log).read().count("stats: drained")
        self.d.send_signal(signal.SIGUSR1)
        wait_for(lambda: open(self.log).read().count("stats: drained") > n0, 60)
        line = [x for x in open(self.log).read().splitlines() if "stats: drained" in x][-1]
        return int(line.split("clients ")[1].split()[0])

    def close(self):
        self.d.terminate()
        self.d.wait()
        subprocess.run(["umount", "-l", self.mnt])


def records_in(path):
    """records of the lines a client printed (the ATTACH aside)"""
    try:
        with open(path, "rb") as f:
            return max(f.read().count(b"\n") - 1, 0)
    except FileNotFoundError:
        return 0


def paced(f, n, got):
    """emit n records in chunks, each once the consumer has everything so
    far, so that a consumer slowed down by callgrind loses none"""
    done = 0
    while done < n:
        k = min(1000, n - done)
        f.send(f"emit {k}")
        done += k
        if not wait_for(lambda: got() >= done, 600):
            raise RuntimeError(f"the consumer got {got()} of {done} records")


def cg_costs(path):
    """inclusive instructions by function name (the largest of a name's
    objects, the stand-in's left out), "fake" what the program spent in
    the stand-in (its ioctl and close, with everything they call), and
    the total without it"""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no", path],
                         capture_output=True, text=True).stdout
    fn = {"fake": 0}
    total = 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*?)(?: \[(.*)\])?$", line)
        if not m:
            continue
        ir = int(m[1].replace(",", ""))
        if m[2].startswith("PROGRAM TOTALS"):
            total = ir
            continue
        # gcc's clones (.constprop.0, .isra.0, .part.0) are the function
        name = m[2].rsplit(":", 1)[-1].split("'")[0].split(".")[0]
        if (m[3] or "").endswith("fake-scoutfs.so"):
            if name in ("ioctl", "close"):
                fn["fake"] += ir
            continue
        fn[name] = max(fn.get(name, 0), ir)
    fn["total"] = total - fn["fake"]
    return fn


def per_record(run, names):
    """(cost at N2 - cost at N1) / (N2 - N1) for each name"""
    a, b = run(N1), run(N2)
    return {k: (b.get(k, 0) - a.get(k, 0)) / (N2 - N1) for k in names}


def raw_client(sock, ask):
    """a client that receives and counts records, asking for batches or not"""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sock)
    if ask:
        s.send(b"SNRQ" + (1).to_bytes(2, "little") + bytes(2) + (256).to_bytes(4, "little") + bytes(4))
    return s


def daemon_run(bindir, ask):
    def run(n):
        cg = os.path.join(WORK, f"d{Fake.n + 1}.cg")
        f = Fake(bindir, cg)
        c = raw_client(f.sock, ask)
        wait_for(lambda: f.clients() == 1, 60)
        f.send(f"stream {n}")
        c.settimeout(120)
        got = -1   # the ATTACH first
        while got < n:
            m = c.recv(256 * 64 + 112)
            if not m:
                break
            if len(m) % 64 == 0:
                got += len(m) // 64
        c.close()
        f.close()
        return cg_costs(cg)
    return run


def watch_run(bindir, opts):
    def run(n):
        f = Fake(AFTER)
        out = os.path.join(f.dir, "w.out")
        cg = os.path.join(WORK, f"w{Fake.n}.cg")
        w = spawn(VG + [f"--callgrind-out-file={cg}", f"{bindir}/scoutfs-notify-watch",
                                   "--run-dir", f.run, "--count", str(n), *opts, f.mnt],
                             stdout=open(out, "w"), stderr=subprocess.DEVNULL, env=f.env)
        wait_for(lambda: f.clients() == 1, 120)
        paced(f, n, lambda: records_in(out))
        w.wait(600)
        f.close()
        return cg_costs(cg)
    return run


def forward_run(bindir, url):
    def run(n):
        subprocess.run([f"{AFTER}/tnats", "rmstream", url, "STAGES"], capture_output=True)
        f = Fake(AFTER)
        log = os.path.join(f.dir, "f.log")
        cg = os.path.join(WORK, f"f{Fake.n}.cg")
        p = spawn(VG + [f"--callgrind-out-file={cg}", f"{bindir}/scoutfs-notify-forward",
                                   "--server", url, "--node", "stages", "--stream", "STAGES",
                                   "--run-dir", f.run, "--no-paths", f.mnt],
                             stderr=open(log, "w"), env=f.env)
        wait_for(lambda: "forwarding" in open(log).read(), 300)

        def stored():
            r = subprocess.run([f"{AFTER}/tnats", "info", url, "STAGES"], capture_output=True, text=True)
            i = dict(x.split("=") for x in r.stdout.split()) if r.returncode == 0 else {}
            return int(i.get("msgs", 0)) - 1
        paced(f, n, stored)
        p.send_signal(signal.SIGTERM)
        p.wait(600)
        f.close()
        return cg_costs(cg)
    return run


def nats():
    port = free_port()
    d = tempfile.mkdtemp(dir=WORK)
    p = spawn(["nats-server", "-js", "-sd", d, "-a", "127.0.0.1", "-p", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    wait_for(lambda: subprocess.run([f"{AFTER}/tnats", "ready", url, "-"],
                                    capture_output=True).returncode == 0, 120)
    return p, url


def row(out, what, before, after):
    def c(x):
        return "-" if x is None else f"{x:,.0f}"
    out.append(f"| {what} | {c(before)} | {c(after)} |")


def main():
    out = ["#### Where the user-space instructions go (callgrind, native, per record)", "",
           f"Each program under callgrind for {N1:,} and for {N2:,} records over the ioctl stand-in: "
           f"the difference over {N2 - N1:,} records, inclusive instructions by function, the "
           "stand-in's own left out, system calls' kernel side not counted. Built -O2, only small "
           "functions inlined. "
           "Before: the series before merged records and batches (one record per message); after: "
           "clients asking for 256 records per message. Records here don't merge (each stands for one "
           "call); merging divides these per call by the calls per record.", "",
           "| stage | before | after |", "| --- | --- | --- |"]
    d = {}
    for side, bindir, ask in (("before", BEFORE, False), ("after", AFTER, True)):
        d[side] = per_record(daemon_run(bindir, ask),
                             ["total", "broadcast", "check_clients", "accept_clients", "account",
                              "read_notify", "fake"])
    row(out, "daemon: all of it", d["before"]["total"], d["after"]["total"])
    row(out, "daemon: relay (broadcast: the sendmmsg per client)", d["before"]["broadcast"],
        d["after"]["broadcast"])
    row(out, "daemon: drain bookkeeping (account) and the ioctl's user side",
        d["before"]["account"] + d["before"]["read_notify"] - d["before"]["fake"],
        d["after"]["account"] + d["after"]["read_notify"] - d["after"]["fake"])
    row(out, "daemon: clients (accept, poll)", d["before"]["check_clients"] + d["before"]["accept_clients"],
        d["after"]["check_clients"] + d["after"]["accept_clients"])
    names = ["total", "ns_recv", "recvmmsg", "nf_text_record", "nf_json_record", "np_path", "fake"]
    for what, opts in (("text, no paths", ["--no-paths"]), ("JSON, no paths", ["--no-paths", "--json"]),
                       ("JSON and paths", ["--json"])):
        w = {}
        for side, bindir in (("before", BEFORE), ("after", AFTER)):
            w[side] = per_record(watch_run(bindir, opts), names)
        row(out, f"notify-watch {what}: all of it", w["before"]["total"], w["after"]["total"])
        if what == "text, no paths":
            row(out, "notify-watch: receive (ns_recv; recvmmsg before)", w["before"]["recvmmsg"],
                w["after"]["ns_recv"])
            row(out, "notify-watch: text formatting (nf_text_record)", w["before"]["nf_text_record"],
                w["after"]["nf_text_record"])
        if what == "JSON, no paths":
            row(out, "notify-watch: JSON formatting (nf_json_record)", w["before"]["nf_json_record"],
                w["after"]["nf_json_record"])
        if what == "JSON and paths":
            row(out, "notify-watch: path look-up (np_path, a cache hit; the stand-in's INO_PATH left out)",
                w["before"]["np_path"] - w["before"]["fake"], w["after"]["np_path"] - w["after"]["fake"])
    have_nats = shutil.which("nats-server") and os.path.exists(f"{AFTER}/tnats") and \
        os.path.exists(f"{AFTER}/scoutfs-notify-forward") and os.path.exists(f"{BEFORE}/scoutfs-notify-forward")
    if have_nats:
        srv, url = nats()
        fw = {}
        names = ["total", "reader_main", "encode", "publish_msg", "on_ack", "publish_batch"]
        for side, bindir in (("before", BEFORE), ("after", AFTER)):
            fw[side] = per_record(forward_run(bindir, url), names)
        srv.terminate()
        srv.wait()
        b, a = fw["before"], fw["after"]
        row(out, "forwarder: all of it (every thread)", b["total"], a["total"])
        row(out, "forwarder: reading the socket into the buffer (its thread)", b["reader_main"],
            a["reader_main"])
        row(out, "forwarder: JSON encoding (encode)", b["encode"], a["encode"])
        row(out, "forwarder: publish (publish_msg: js_PublishAsync)", b["publish_msg"], a["publish_msg"])
        row(out, "forwarder: acknowledgements (on_ack)", b["on_ack"], a["on_ack"])
        row(out, "forwarder: the rest (libnats' threads, planning)",
            b["total"] - b["reader_main"] - b["publish_batch"] - b["on_ack"],
            a["total"] - a["reader_main"] - a["publish_batch"] - a["on_ack"])
    else:
        out.append("| forwarder | SKIPPED: no nats-server, tnats or forwarder build | |")
    out.append("")
    print("\n".join(out))
    shutil.rmtree(WORK, ignore_errors=True)


main()
