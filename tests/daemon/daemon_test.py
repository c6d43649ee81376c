#!/usr/bin/env python3
"""Tier 1 tests of scoutfs-notifyd and scoutfs-notify-watch.

Run by tests/daemon/run.sh, in a private mount namespace, with the
sanitizer-built binaries and the ioctl stand-in (fake-scoutfs.so) named
in the environment.  Every wait polls for a condition with a deadline
and fails the test when it runs out; nothing sleeps to synchronise.
Ends with `daemon: N passed, N failed`.
"""
import base64
import json
import shutil
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import check, run_tests  # noqa: E402
from sdroot import exposure, sdroot, verify  # noqa: E402
from testlib import HOSTILE_NAMES, no_sanitizer_report_at_all, poll, sanitizer_clean, strict_json, text_fields  # noqa: E402

REC = struct.Struct("=QQQQQIIIIII")  # seq ino time_ns offset len op pid uid gid flags calls
assert REC.size == 64
OP_OPEN, OP_READ, OP_ATTACH, OP_MMAP = 1, 2, 3, 4
# the socket protocol's request and reply (utils/notifyd/notify-sock.h)
REQ = struct.Struct("=4sHHII")       # magic version flags max_recs reserved
REPLY = struct.Struct("=4sHHII96s")  # magic version status max_recs reserved reason
MAX_RECS = 256
# scoutfs-notifyd's exit statuses (scoutfs-notifyd(8))
EXIT_STOPPED, EXIT_TRANSIENT, EXIT_USAGE, EXIT_UNSUPPORTED, EXIT_UNMOUNTED = 0, 1, 2, 3, 4

NOTIFYD = os.environ["NOTIFYD_BIN"]
WATCH = os.environ["WATCH_BIN"]
TCLIENT = os.environ["TCLIENT_BIN"]
PRELOAD = os.environ["ASAN_LIB"] + ":" + os.environ["FAKE_SO"]
WORK = sys.argv[1]
FSID = "5ca1ab1e0123abcd"


def wait_for(pred, secs=30.0):
    return poll(pred, secs, 0.01)


class Env:
    """A fresh fake mount, run dir and control socket for one test."""

    n = 0

    def __init__(self, fsid=FSID):
        Env.n += 1
        self.dir = os.path.join(WORK, f"t{Env.n}")
        self.mnt = os.path.join(self.dir, "mnt")
        self.run = os.path.join(self.dir, "run")
        self.ctl = os.path.join(self.dir, "ctl")
        os.makedirs(self.mnt)
        subprocess.run(["mount", "-t", "tmpfs", "fake", self.mnt], check=True)
        self.events_path = os.path.join(self.dir, "events")
        self.sockdir = os.path.join(self.run, fsid)
        self.sock = os.path.join(self.sockdir, "notify.sock")
        self.env = dict(os.environ, LD_PRELOAD=PRELOAD, FAKE_SCOUTFS_MNT=self.mnt,
                        FAKE_SCOUTFS_FSID=fsid, FAKE_SCOUTFS_CTL=self.ctl,
                        FAKE_SCOUTFS_EVENTS=self.events_path)
        self.procs = []

    def daemon(self, *extra, env=None):
        log = open(os.path.join(self.dir, f"notifyd{len(self.procs)}.log"), "w+")
        p = subprocess.Popen([NOTIFYD, "--run-dir", self.run, *extra, self.mnt],
                             stdout=log, stderr=log, env=env or self.env)
        p.logf = log
        self.procs.append(p)
        return p

    def started(self, p):
        return wait_for(lambda: "serving" in log_of(p) or p.poll() is not None) and \
            p.poll() is None

    def send(self, cmd):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(cmd.encode(), self.ctl)
        s.close()

    def client(self):
        return Client(self.sock)

    def stream(self, chunks, counts, total=0):
        """Emit chunks of 1000 records, each once counts() (what every
        reading client has received) has reached the total so far: a
        producer paced by its readers, so none of them can fall behind.
        Returns the total whose arrival counts() confirmed: TOTAL plus
        1000 per chunk, less the chunk whose wait ran out (then no more
        are emitted).  What the clients got is the caller's to check."""
        for _ in range(chunks):
            self.send("emit 1000")
            if not wait_for(lambda: all(n >= total + 1000 for n in counts())):
                break
            total += 1000
        return total

    def events(self, batches=False, merges=False):
        """attach/detach lines the ioctl stand-in logged (and with
        batches, its batch=NR/US lines, with merges its merge=0|1 lines)"""
        try:
            with open(self.events_path) as f:
                return [x for x in f.read().split()
                        if (batches or not x.startswith("batch=")) and
                        (merges or not x.startswith("merge="))]
        except FileNotFoundError:
            return []

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["umount", "-l", self.mnt], stderr=subprocess.DEVNULL)


def log_of(p):
    p.logf.flush()
    with open(p.logf.name) as f:
        return f.read()


class Client:
    """A raw SEQPACKET client that records the seqs it receives: attach
    is the seq of the ATTACH record the daemon sends every client first
    (None if the first message was not one), seqs the records after it.
    With ask (a request's bytes, or a number of records per message) it
    sends that first, as a client of the batched protocol: reply is then
    the daemon's (magic, version, status, max_recs, reserved, reason),
    and sizes the number of records in each message."""

    def __init__(self, path, read=True, ask=None):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.connect(path)
        self.attach = None
        self.greeted = False
        self.seqs = []
        self.recs = []
        self.bad = []
        self.sizes = []
        self.reply = None
        self.eof = False
        if isinstance(ask, int):
            ask = REQ.pack(b"SNRQ", 1, 0, ask, 0)
        if ask is not None:
            self.s.send(ask)
        if read:
            self.start()

    def start(self):
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            try:
                m = self.s.recv(MAX_RECS * 64 + 1)
            except OSError:
                self.eof = True
                return
            if not m:
                self.eof = True
                return
            if len(m) == REPLY.size and m[:4] == b"SNRP":
                self.reply = REPLY.unpack(m)
                continue
            if len(m) % 64 or (len(m) > 64 and not self.reply):
                self.bad.append(len(m))
                continue
            self.sizes.append(len(m) // 64)
            for k in range(0, len(m), 64):
                self.take(REC.unpack(m[k:k + 64]))

    def take(self, r):
        if not self.greeted:
            self.greeted = True
            if r[5] == OP_ATTACH:
                self.attach = r[0]
                return
        self.seqs.append(r[0])
        self.recs.append(r)

    def gaps(self):
        return sum(b - a - 1 for a, b in zip(self.seqs, self.seqs[1:]))

    def contiguous(self):
        return all(b == a + 1 for a, b in zip(self.seqs, self.seqs[1:]))

    def close(self):
        self.s.close()


def stop(p, sig=signal.SIGTERM):
    p.send_signal(sig)
    try:
        return p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def run(cmd, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


# ---------------------------------------------------------------- tests

def t_bad_args():
    e = Env()
    for args, what in (([], "no mountpoint"), (["--bogus", e.mnt], "unknown flag"),
                       ([e.mnt, e.mnt], "two mountpoints"),
                       (["--run-dir", "rel", e.mnt], "relative --run-dir")):
        r = run([NOTIFYD, *args], env=e.env)
        check(r.returncode == 2 and "usage" in (r.stderr + r.stdout) or
              r.returncode == 2 and "--run-dir" in r.stderr,
              f"notifyd {what}: exit {r.returncode}, {r.stderr.strip().splitlines()[0:1]}")
    for args, what in ((["--count", "abc", e.mnt], "--count abc"), (["--count", "-1", e.mnt], "--count -1"),
                       ([], "no mountpoint"), (["--nope", e.mnt], "unknown flag")):
        r = run([WATCH, *args], env=e.env)
        check(r.returncode == 2, f"notify-watch {what}: exit {r.returncode}")
    check(not os.path.exists(e.run), "bad arguments created nothing")
    r = run([NOTIFYD, "--help"], env=e.env)
    check(r.returncode == 0 and "usage" in r.stdout, "notifyd --help")
    e.close()


def t_refusals():
    e = Env()
    errs = []
    r = run([NOTIFYD, "--run-dir", e.run, e.dir], env=e.env)
    errs.append(r.stderr)
    check(r.returncode == EXIT_UNSUPPORTED and "not a scoutfs filesystem" in r.stderr,
          f"not a scoutfs mount refused, exit 3: {r.returncode} {r.stderr.strip()}")
    os.mkdir(os.path.join(e.mnt, "sub"))
    r = run([NOTIFYD, "--run-dir", e.run, os.path.join(e.mnt, "sub")], env=e.env)
    errs.append(r.stderr)
    check(r.returncode == EXIT_UNSUPPORTED and "mount point" in r.stderr,
          f"a directory inside the mount refused, exit 3: {r.returncode} {r.stderr.strip()}")
    env = dict(e.env, FAKE_SCOUTFS_ATTACH_ERRNO="16")
    r = run([NOTIFYD, "--run-dir", e.run, e.mnt], env=env)
    errs.append(r.stderr)
    check(r.returncode == EXIT_TRANSIENT and "already has a notify reader" in r.stderr and
          not os.path.exists(e.sock),
          f"EBUSY at attach: clear error, no socket, exit 1: {r.returncode} {r.stderr.strip()}")
    env = dict(e.env, FAKE_SCOUTFS_ATTACH_ERRNO="1")
    r = run([NOTIFYD, "--run-dir", e.run, e.mnt], env=env)
    errs.append(r.stderr)
    check(r.returncode == EXIT_UNSUPPORTED and "CAP_SYS_ADMIN" in r.stderr,
          f"EPERM at attach, exit 3: {r.returncode} {r.stderr.strip()}")
    for errno_, what in ((25, "ENOTTY"), (22, "EINVAL")):
        env = dict(e.env, FAKE_SCOUTFS_ATTACH_ERRNO=str(errno_))
        r = run([NOTIFYD, "--run-dir", e.run, e.mnt], env=env)
        errs.append(r.stderr)
        check(r.returncode == EXIT_UNSUPPORTED and "no notify support" in r.stderr,
              f"{what} at attach (a module without the series), exit 3: {r.returncode} {r.stderr.strip()}")
    env = dict(e.env, FAKE_SCOUTFS_ATTACH_ERRNO="67")
    r = run([NOTIFYD, "--run-dir", e.run, e.mnt], env=env)
    errs.append(r.stderr)
    check(r.returncode == EXIT_UNMOUNTED and "forcibly unmounted" in r.stderr,
          f"ENOLINK at attach (umount -f under way), exit 4: {r.returncode} {r.stderr.strip()}")
    os.makedirs(os.path.join(e.dir, "open"), exist_ok=True)
    os.chmod(os.path.join(e.dir, "open"), 0o777)
    r = run([NOTIFYD, "--run-dir", os.path.join(e.dir, "open"), e.mnt], env=e.env)
    errs.append(r.stderr)
    check(r.returncode == EXIT_UNSUPPORTED and "writable by others" in r.stderr,
          f"a world-writable run dir refused, exit 3: {r.returncode} {r.stderr.strip()}")
    r = run([WATCH, "--run-dir", e.run, e.mnt], env=e.env)
    errs.append(r.stderr)
    check(r.returncode == 1 and "is scoutfs-notifyd running" in r.stderr,
          f"notify-watch without a daemon: {r.stderr.strip()}")
    check(e.events() == [], f"a refused daemon never attached: {e.events()}")
    check(all(sanitizer_clean(x) for x in errs), "no sanitizer reports")
    e.close()


def t_start_modes_order_and_fanout():
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts on the fake mount")
    st = os.stat(e.sock)
    check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0,
          f"socket mode {oct(stat.S_IMODE(st.st_mode))} uid {st.st_uid}")
    st = os.stat(e.sockdir)
    check(stat.S_IMODE(st.st_mode) == 0o700, f"socket dir mode {oct(stat.S_IMODE(st.st_mode))}")
    with open(os.path.join(e.sockdir, "notifyd.lock")) as f:
        check(f.read().strip() == str(d.pid), "lock file holds the daemon's pid")

    cs = [e.client() for _ in range(3)]
    e.stream(100, lambda: [len(c.seqs) for c in cs])
    counts = [len(c.seqs) for c in cs]
    check(counts == [100000] * 3, f"3 clients each got every one of 100000 records: {counts}")
    check([c.attach for c in cs] == [1] * 3,
          f"every client's first message is the daemon's ATTACH (seq 1): {[c.attach for c in cs]}")
    check(all(c.contiguous() for c in cs) and all(c.seqs[0] == 2 for c in cs),
          "in seq order, no gaps, from the first record after the ATTACH")
    check(all(c.seqs == cs[0].seqs for c in cs), "every client saw the same records")
    check(not any(c.bad for c in cs), "every message is 64 bytes")
    rc = stop(d)
    check(rc == 0, f"SIGTERM: exit {rc}")
    check(not os.path.exists(e.sock), "SIGTERM: socket removed")
    check(wait_for(lambda: all(c.eof for c in cs)), "SIGTERM: clients see EOF")
    check(e.events() == ["attach", "detach"],
          f"SIGTERM: the reader's file was closed (detached): {e.events()}")
    log = log_of(d)
    check("stopping on signal 15" in log and "relayed 300000" in log,
          "SIGTERM: final stats logged (relayed 300000)")
    check(sanitizer_clean(log), "no sanitizer reports")
    e.close()


def stats_of(e, d):
    n0 = log_of(d).count("stats: drained")
    d.send_signal(signal.SIGUSR1)
    wait_for(lambda: log_of(d).count("stats: drained") > n0)
    return log_of(d)


def t_stalled_client():
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    stalled = Client(e.sock, read=False)   # connects first: client 1
    wait_for(lambda: "clients 1" in stats_of(e, d), 10)
    fast = [e.client(), e.client()]
    e.stream(40, lambda: [len(c.seqs) for c in fast])
    check([len(c.seqs) for c in fast] == [40000] * 2 and all(c.contiguous() for c in fast),
          f"the reading clients got all 40000 records in order: {[len(c.seqs) for c in fast]}")
    log = stats_of(e, d)
    line = [x for x in log.splitlines() if "stats: client 1 " in x][-1]
    relayed = int(line.split("relayed ")[1].split()[0])
    lost = int(line.split("lost ")[1].split()[0])
    check(lost > 0 and relayed + lost == 40000,
          f"the stalled client lost records: relayed {relayed} + lost {lost} = 40000")
    stalled.start()
    check(wait_for(lambda: len(stalled.seqs) >= relayed), f"it then reads the {relayed} it was sent")
    check(stalled.attach == 1, f"after the ATTACH it was sent first: {stalled.attach}")
    # a loss shows at the next record that arrives: send one
    e.send("emit 1")
    check(wait_for(lambda: len(stalled.seqs) >= relayed + 1), "and the next one")
    check(len(stalled.seqs) == relayed + 1 and stalled.gaps() + (stalled.seqs[0] - 2) == lost,
          f"the seq gaps it sees ({stalled.gaps()} + {stalled.seqs[0] - 2} before its first) "
          f"equal the daemon's count ({lost})")
    check(" lost 0" in [x for x in log.splitlines() if "stats: client 2 " in x][-1],
          "the daemon counts 0 lost for a reading client")
    stop(d)
    check(sanitizer_clean(log_of(d)), "no sanitizer reports")
    e.close()


def t_ring_gaps_and_watch():
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    out_j = open(os.path.join(e.dir, "watch.json"), "w+")
    out_h = open(os.path.join(e.dir, "watch.txt"), "w+")
    wj = subprocess.Popen([WATCH, "--run-dir", e.run, "--json", "--count", "10", e.mnt],
                          stdout=out_j, stderr=subprocess.STDOUT, env=e.env)
    wh = subprocess.Popen([WATCH, "--run-dir", e.run, "--count", "10", e.mnt],
                          stdout=out_h, stderr=subprocess.STDOUT, env=e.env)
    check(wait_for(lambda: "clients 2" in stats_of(e, d), 10), "two notify-watch clients connected")
    e.send("emit 5")
    e.send("drop 7")
    e.send("emit 4")
    e.send("op 9")
    rj = wj.wait(30)
    rh = wh.wait(30)
    check(rj == 0 and rh == 0, f"--count 10 exits 0 after 10 records ({rj}, {rh})")
    with open(out_j.name) as f:
        lines = f.read().splitlines()
    try:
        objs = [json.loads(x) for x in lines]
        ok = True
    except ValueError:
        objs, ok = [], False
    check(ok and len(objs) == 12, f"--json: 12 valid JSON lines (the ATTACH, 10 records, a gap): {len(lines)}")
    check(objs[:1] and objs[0]["op"] == "ATTACH" and objs[0]["seq"] == 1,
          f"--json: the first line is the daemon's ATTACH, seq 1: {objs[:1]}")
    recs = [o for o in objs[1:] if "seq" in o and "lost" not in o]
    lost = [o for o in objs if "lost" in o]
    check(len(lost) == 1 and lost[0] == {"schema": 1, "op": "GAP", "lost": 7, "after_seq": 6, "seq": 14},
          f"--json: the gap is one line: {lost}")
    check(all(o["op"] == "READ" and o["len"] == 4096 and o["uid"] == 1000 and
              o["path"] == f"{e.mnt}/dir/file-{o['ino']}" and o["time"].endswith("Z")
              for o in recs[:9]) and len(recs) == 10,
          "--json: fields and the path resolved through INO_PATH")
    check(recs[-1]["op"] == 9 and recs[-1]["seq"] == 18 and
          all(k in recs[-1] for k in ("time_ns", "pid", "uid", "gid", "ino", "offset", "len", "flags")),
          f"--json: an unknown op is passed through as its number: {recs[-1]}")
    check([o["seq"] for o in recs] == [2, 3, 4, 5, 6, 14, 15, 16, 17, 18],
          f"--json: the seqs in order: {[o['seq'] for o in recs]}")
    with open(out_h.name) as f:
        text = f.read()
    check(" seq=1 ATTACH" in text.splitlines()[0] if text else False,
          f"text: the first line is the daemon's ATTACH, seq 1: {text.splitlines()[:1]}")
    check("7 records lost (seq 7 to 13)" in text and text.count(" lost ") == 1,
          "text: the gap line, the only one")
    check(text.count(" READ ") == 9 and "ino=" in text and "offset=" in text and "path=" in text,
          "text: one line per record with ino, offset, path")
    check(" seq=18 op=9 " in text, "text: the unknown op is printed as op=9")
    log = stats_of(e, d)
    check("ring_lost 7 " in [x for x in log.splitlines() if "stats: drained" in x][-1],
          "the daemon counts the 7 records the ring lost")
    check(sanitizer_clean(text + log_of(d)), "no sanitizer reports")
    stop(d)
    e.close()


def t_churn():
    """clients connecting and disconnecting while a stream goes by: every
    chunk of the stream waits for its records and for 15 more connects,
    so the 300 are made during the stream, and a failed connect counts"""
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    steady = e.client()
    done = threading.Event()
    made = [0]
    refused = []

    def churn():
        while not done.is_set():
            try:
                Client(e.sock, read=False).close()
                made[0] += 1
            except OSError as ex:
                refused.append(ex)
    t = threading.Thread(target=churn)
    t.start()
    total = e.stream(20, lambda: [len(steady.seqs), made[0] * 1000 // 15])
    done.set()
    t.join(60)
    check(total == 20000 and made[0] >= 300 and not refused,
          f"{made[0]} connects and disconnects during the stream ({total // 1000} of 20 chunks "
          f"with 15 each), {len(refused)} failed {refused[:1]}")
    check(len(steady.seqs) == 20000 and steady.contiguous(),
          f"the steady client got all 20000 records in order: {len(steady.seqs)}")
    check(d.poll() is None, "daemon still running")
    stop(d)
    log = log_of(d)
    check(sanitizer_clean(log), "no sanitizer reports")
    e.close()


def t_bad_clients():
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    good = e.client()
    talker = e.client()
    big = e.client()
    half = e.client()
    wait_for(lambda: "clients 4" in stats_of(e, d), 10)
    talker.s.send(b"hello daemon")
    try:
        big.s.send(b"x" * 65536)
    except OSError:
        pass
    half.s.shutdown(socket.SHUT_WR)
    e.send("emit 10")
    check(wait_for(lambda: talker.eof and big.eof and half.eof),
          "clients that send data, a big message, or half-close are dropped")
    why = [c.reply[5].rstrip(bytes(1)) if c.reply else None for c in (talker, big)]
    check(talker.reply and talker.reply[2] == 1 and b"this message was 12" in talker.reply[5] and
          big.reply and big.reply[2] == 1 and b"this message was 65536" in big.reply[5],
          f"the two that sent data were told why: {why}")
    check(wait_for(lambda: len(good.seqs) >= 10) and good.contiguous(),
          f"the well-behaved client is unaffected: {len(good.seqs)} records")
    e.send("emit 10")
    check(wait_for(lambda: len(good.seqs) >= 20) and d.poll() is None,
          "the daemon keeps relaying")
    stop(d)
    log = log_of(d)
    check(log.count("refused: a request is 16 bytes") >= 2 and "hung up" in log,
          "the drops are logged with the reason")
    check(sanitizer_clean(log), "no sanitizer reports")
    e.close()


def t_stale_and_second():
    e = Env()
    os.makedirs(e.sockdir, mode=0o700)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(e.sock)
    s.close()  # a crashed daemon's socket: the file stays, nobody listens
    d = e.daemon()
    check(e.started(d), "daemon starts over a stale socket")
    check("replaced stale socket" in log_of(d), "and says it replaced it")
    c = e.client()
    d2 = e.daemon()
    rc = d2.wait(30)
    check(rc == 1 and f"another scoutfs-notifyd (pid {d.pid}) already serves" in log_of(d2),
          f"a second daemon is refused: exit {rc}: {log_of(d2).strip()}")
    e.send("emit 3")
    check(wait_for(lambda: len(c.seqs) >= 3) and d.poll() is None and os.path.exists(e.sock),
          "the first daemon and its socket are unaffected")
    d.kill()
    d.wait()
    d3 = e.daemon()
    check(e.started(d3), "after SIGKILL a new daemon takes over the stale socket and the lock")
    stop(d3)
    check(sanitizer_clean(log_of(d2) + log_of(d3)), "no sanitizer reports")
    e.close()


def t_mount_gone():
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    subprocess.run(["umount", "-l", e.mnt], check=True)
    try:
        rc = d.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == EXIT_UNMOUNTED and "no longer mounted" in log_of(d),
          f"the filesystem goes away: exit 4: {rc}, {log_of(d).strip().splitlines()[-1:]}")
    check(not os.path.exists(e.sock), "socket removed")
    check(e.events() == ["attach", "detach"], f"the reader's file was closed: {e.events()}")
    check(sanitizer_clean(log_of(d)), "no sanitizer reports")
    e.close()


def rec_bytes(seq, op=OP_READ):
    return REC.pack(seq, 1000 + seq, 0, seq * 4096, 4096, op, 1, 0, 0, 0, 0)


class TClient:
    """tests/daemon/tclient.c: a C client, optionally stalled until a file exists"""

    def __init__(self, e, n, stall=None):
        self.out = os.path.join(e.dir, f"tclient{id(self)}.out")
        args = [TCLIENT, e.sock, str(n)] + ([stall] if stall else [])
        with open(self.out, "w") as f:
            self.p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=e.env)

    def text(self):
        with open(self.out) as f:
            return f.read()

    def received(self):
        p = [int(x.split()[1]) for x in self.text().splitlines() if x.startswith("progress ")]
        return p[-1] if p else 0

    def summary(self):
        line = [x for x in self.text().splitlines() if x.startswith("summary ")]
        return {k: int(v) for k, v in (w.split("=") for w in line[0].split()[1:])} if line else {}


def t_c_clients():
    """C clients: 3 readers get every record, a stalled one's gaps match the daemon's count"""
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    stall = os.path.join(e.dir, "go")
    slow = TClient(e, 0, stall)
    check(wait_for(lambda: "connected" in slow.text() and "clients 1" in stats_of(e, d), 10),
          "stalled client connected")
    fast = [TClient(e, 30000) for _ in range(3)]
    check(wait_for(lambda: all("connected" in c.text() for c in fast) and
                   "clients 4" in stats_of(e, d), 10), "3 reading clients connected")
    e.stream(30, lambda: [c.received() for c in fast])
    for c in fast:
        try:
            c.p.wait(30)
        except subprocess.TimeoutExpired:
            c.p.kill()
    sums = [c.summary() for c in fast]
    want = {"attach": 1, "received": 30000, "first": 2, "last": 30001, "gaps": 0, "disorder": 0,
            "bad": 0, "eof": 0}
    check(sums == [want] * 3, f"each got the ATTACH (seq 1), then records 2..30001, in order, no gaps, "
          f"64 bytes: {sums}")
    log = stats_of(e, d)
    line = [x for x in log.splitlines() if "stats: client 1 " in x][-1]
    lost = int(line.split("lost ")[1].split()[0])
    check(lost > 0, f"the stalled client lost records ({lost})")
    open(stall, "w").close()
    rc = stop(d)
    try:
        slow.p.wait(30)
    except subprocess.TimeoutExpired:
        slow.p.kill()
    s = slow.summary()
    seen = s.get("gaps", 0) + s.get("first", 0) - 2 + 30001 - s.get("last", 0) if s else -1
    check(rc == 0 and s.get("attach") == 1 and s.get("eof") == 1 and s.get("disorder") == 0 and
          s.get("bad") == 0 and
          s.get("received", 0) + lost == 30000 and seen == lost,
          f"it reads what was queued, then EOF; its gaps ({seen}) equal the daemon's lost count ({lost}): {s}")
    check(sanitizer_clean(log_of(d) + slow.text() + "".join(c.text() for c in fast)),
          "no sanitizer reports")
    e.close()


def t_watch_protocol():
    """notify-watch against a hand-made server: odd sizes, gaps, EOF"""
    e = Env()
    path = os.path.join(e.dir, "hand.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(30)
    w = subprocess.Popen([WATCH, "--socket", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e.env)
    conn, _ = srv.accept()
    # the ATTACH first, then records from 4 on: relayed before it connected, no gap
    for m in (rec_bytes(1, op=OP_ATTACH), rec_bytes(4), b"x" * 10, rec_bytes(5), b"y" * 100, b"",
              rec_bytes(8), rec_bytes(9, op=77)):
        conn.send(m)
    conn.close()
    srv.close()
    try:
        out, err = w.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        w.kill()
        out, err = w.communicate()
    lines = out.splitlines()
    check(w.returncode == 0 and "closed the connection" in err,
          f"EOF from the daemon: exit {w.returncode} with a message: {err.strip().splitlines()[-1:]}")
    check("ignoring a 10 byte message" in err and "ignoring a 100 byte message" in err and
          "ignoring a 0 byte message" in err,
          "messages of the wrong size are reported and skipped")
    seqs = [x.split("seq=")[1].split()[0] for x in lines if "seq=" in x and "lost" not in x]
    check(seqs == ["1", "4", "5", "8", "9"] and " seq=1 ATTACH " in lines[0],
          f"the ATTACH and the records around them are printed: {seqs}")
    check("2 records lost (seq 6 to 7)" in out and out.count(" lost ") == 1,
          "the gap is reported, and none between the ATTACH and the first record")
    check(" op=77 " in out, "an unknown op does not stop the client")
    check(sanitizer_clean(err), "no sanitizer reports")
    e.close()


def t_watch_daemon_stops():
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    w = subprocess.Popen([WATCH, "--run-dir", e.run, e.mnt], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e.env)
    check(wait_for(lambda: "clients 1" in stats_of(e, d), 10), "notify-watch connected")
    e.send("emit 3")
    rc = stop(d)
    try:
        out, err = w.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        w.kill()
        out, err = w.communicate()
    check(rc == 0 and w.returncode == 0 and "closed the connection" in err,
          f"the daemon stops: notify-watch exits {w.returncode} with a message")
    check(out.count(" READ ") == 3, f"after printing the 3 records it was sent: {out.count(' READ ')}")
    check(sanitizer_clean(err + log_of(d)), "no sanitizer reports")
    e.close()


def t_sd_notify():
    for name, abstract in (("path", False), ("abstract", True)):
        e = Env()
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            addr = f"scoutfs-notifyd-test-{os.getpid()}-{Env.n}"
            ns.bind("\0" + addr)
            env = dict(e.env, NOTIFY_SOCKET="@" + addr)
        else:
            addr = os.path.join(e.dir, "notify")
            ns.bind(addr)
            env = dict(e.env, NOTIFY_SOCKET=addr)
        ns.settimeout(30)
        d = e.daemon(env=env)
        try:
            msg = ns.recv(256).decode()
        except socket.timeout:
            msg = ""
        check(msg == "READY=1" and os.path.exists(e.sock),
              f"{name} NOTIFY_SOCKET: READY=1 once the socket is there: {msg!r}")
        stop(d)
        try:
            msg = ns.recv(256).decode()
        except socket.timeout:
            msg = ""
        check(msg == "STOPPING=1", f"{name} NOTIFY_SOCKET: STOPPING=1 at shutdown: {msg!r}")
        check(sanitizer_clean(log_of(d)), "no sanitizer reports")
        ns.close()
        e.close()


def t_fsid_format():
    """the socket directory is named as `stat -f -c %i` prints the fsid"""
    for fsid in ("f00d0000000a", "80000000ffffffff", "1"):
        e = Env(fsid=fsid)
        d = e.daemon()
        ok = e.started(d)
        r = run(["stat", "-f", "-c", "%i", e.mnt],
                env=dict(e.env, LD_PRELOAD=os.environ["FAKE_SO"]))
        names = os.listdir(e.run) if os.path.isdir(e.run) else []
        check(ok and r.stdout.strip() == fsid and names == [fsid],
              f"fsid {fsid}: stat -f -c %i says {r.stdout.strip()!r}, socket dir {names}")
        stop(d)
        check(sanitizer_clean(log_of(d)), "no sanitizer reports")
        e.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def d_last(e, d):
    line = [x for x in stats_of(e, d).splitlines() if "stats: drained" in x][-1]
    return int(line.split("last_seq ")[1].split()[0])


def t_flood():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    steady = e.client()
    e.send("emit 100")
    wait_for(lambda: len(steady.seqs) >= 100)
    rss0 = rss_kb(d.pid)
    flood = []
    # records keep the daemon cycling, so it accepts while the flood connects
    ticking = threading.Event()

    def tick():
        while not ticking.is_set():
            e.send("emit 1")
            time.sleep(0.01)
    t = threading.Thread(target=tick)
    t.start()
    def try_connect(s):
        try:
            s.connect(e.sock)
            return True
        except BlockingIOError:   # the listen backlog is full: retry
            return False
    for _ in range(3000):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.setblocking(False)
        if wait_for(lambda: try_connect(s), 10):
            flood.append(s)
        else:
            s.close()
            break
    ticking.set()
    t.join()
    check(len(flood) == 3000, f"3000 connections made ({len(flood)}; a connect that waits 10 s stops them)")
    wait_for(lambda: len(steady.seqs) >= 100 and steady.seqs[-1] == d_last(e, d), 10)
    # none of them reads: a stream goes by
    start = len(steady.seqs)
    total = e.stream(10, lambda: [len(steady.seqs)], start)
    log = stats_of(e, d)
    line = [x for x in log.splitlines() if "stats: drained" in x][-1]
    check(total == start + 10000 and len(steady.seqs) == total and steady.contiguous(),
          f"{len(flood)} connections that never read: the steady client still got all "
          f"{len(steady.seqs) - start} of 10000 records")
    check("clients 1024 " in line and "refusing a client" in log,
          f"at most 1024 clients are kept, the rest refused: {line.split('clients ')[1]}")
    rss1 = rss_kb(d.pid)
    check(d.poll() is None and rss1 - rss0 < 16384,
          f"the daemon stays up with bounded memory: RSS {rss0} -> {rss1} KiB")
    for s in flood:
        s.close()
    check(wait_for(lambda: "clients 1 " in stats_of(e, d)),
          "the flood's clients are dropped when they close")
    stop(d)
    check(sanitizer_clean(log_of(d)), "no sanitizer reports")
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    e.close()


def t_systemd_unit():
    unit = os.environ.get("UNIT_FILE", "")
    # the series must ship the unit: its absence is the regression this is for
    if not check(os.path.exists(unit), f"the series ships the unit ({unit or 'UNIT_FILE unset'})"):
        return
    if not shutil.which("systemd-analyze"):
        print("SKIPPED: t_systemd_unit: systemd-analyze is not installed", flush=True)
        return
    root = sdroot(WORK, {"usr/sbin/scoutfs-notifyd": NOTIFYD}, [unit])
    inst = "/etc/systemd/system/scoutfs-notifyd@mnt-scoutfs.service"
    rc, said = verify(root, inst)
    check(rc == 0 and not said,
          f"systemd-analyze verify of scoutfs-notifyd@mnt-scoutfs.service: {said or 'clean'}")
    level, words = exposure(root, inst)
    check(level is not None and level <= 2.0, f"systemd-analyze security: {words} (at most 2.0)")
    with open(unit) as f:
        text = f.read()
    check("BindsTo=%i.mount" in text and "ExecStart=/usr/sbin/scoutfs-notifyd %f" in text and
          "Type=notify" in text and "Restart=on-failure" in text,
          "the unit binds to the mount, passes the unescaped path, restarts on failure")
    check("RestartPreventExitStatus=2 3 4" in text and "StartLimitBurst=5" in text and
          "StartLimitIntervalSec=120" in text,
          "only exit 1 is restarted, and the start limit (5 in 120 s) can trip at RestartSec=2s")
    check("WantedBy=%i.mount" in text and "PrivateTmp" not in text.replace("no PrivateTmp=", ""),
          "enabled, the mount unit wants it; mounts below /tmp stay visible")


# names built to forge records or break JSON, and one aimed at the text fields
HOSTILE = HOSTILE_NAMES + [b"path=fake uid=0 len=1"]


def t_hostile_names():
    import codecs
    e = Env()
    names = os.path.join(e.dir, "names")
    os.makedirs(names)
    for i, n in enumerate(HOSTILE):
        with open(os.path.join(names, str(5000 + i)), "wb") as f:
            f.write(b"dir/" + n)
    env = dict(e.env, FAKE_SCOUTFS_NAMES=names)
    d = e.daemon(env=env)
    check(e.started(d), "daemon starts")
    count = 2 * len(HOSTILE)
    outs = {}
    procs = {}
    for mode in ("text", "json"):
        outs[mode] = open(os.path.join(e.dir, f"watch.{mode}"), "wb+")
        procs[mode] = subprocess.Popen(
            [WATCH, "--run-dir", e.run, "--count", str(count)] +
            (["--json"] if mode == "json" else []) + [e.mnt],
            stdout=outs[mode], stderr=subprocess.PIPE, env=env)
    check(wait_for(lambda: "clients 2" in stats_of(e, d), 10), "two notify-watch clients connected")
    for i in range(len(HOSTILE)):
        e.send(f"open {5000 + i}")
        e.send(f"read {5000 + i}")
    for mode, p in procs.items():
        check(p.wait(30) == 0, f"{mode}: notify-watch exits 0 after {count} records")
    want = [os.fsencode(e.mnt) + b"/dir/" + n for n in HOSTILE for _ in (0, 1)]

    lines = open(outs["text"].name, "rb").read().split(b"\n")
    check(b" seq=1 ATTACH " in lines[0], f"text: the first line is the daemon's ATTACH: {lines[0]!r}")
    lines = lines[1:]
    check(lines[-1] == b"" and len(lines) - 1 == count,
          f"text: after it exactly one line per record ({len(lines) - 1} lines for {count} records)")
    got = [codecs.escape_decode(text_fields(x).get("path", b""))[0] for x in lines[:-1]]
    check(got == want, "text: every path decodes back to its exact bytes")
    fields = [text_fields(x) for x in lines[:-1]]
    check(all(f.get("uid") == b"1000" and f.get("seq", b"").isdigit() and
              set(f) == ({"seq", "pid", "uid", "gid", "ino", "flags", "path"} if b" OPEN " in x
                         else {"seq", "pid", "uid", "gid", "ino", "offset", "len", "path"})
              for f, x in zip(fields, lines)),
          "text: no name adds or replaces a field (uid stays 1000, one path each)")
    check(all(c >= 0x21 and c != 0x7f for x in lines[:-1] for c in x.split(b" path=", 1)[1]),
          "text: no control character or space inside a path")
    check(not any(b"\xe2\x80\xae" in x or b"\xc2\x85" in x for x in lines),
          "text: bidi overrides and C1 controls are escaped, not printed")
    check(b"\xe2\x88\x95etc\xe2\x88\x95shadow" in b"".join(lines) and b"caf\xc3\xa9" in b"".join(lines),
          "text: valid UTF-8 (U+2215, accents, emoji) stays readable")

    lines = open(outs["json"].name, "rb").read().split(b"\n")
    objs = []
    try:
        objs = [strict_json(x) for x in lines[:-1]]
        ok = objs[0]["op"] == "ATTACH" and objs[0]["seq"] == 1
        if not ok:
            print(f"  the first line is not the ATTACH: {objs[0]}")
        objs = objs[1:]
    except (ValueError, UnicodeError) as ex:
        ok = False
        print(f"  strict parse failed: {ex}")
    check(ok and len(objs) == count and lines[-1] == b"",
          f"json: the ATTACH then {count} lines, each strict UTF-8 JSON ({len(lines) - 1} lines)")
    got = [base64.b64decode(o["path_b64"]) if "path_b64" in o else o.get("path", "").encode()
           for o in objs]
    check(got == want, "json: every path gives back its exact bytes (path, or path_b64)")
    check(all(("path_b64" in o) == (b"\xff" in w or b"\xc0" in w) for o, w in zip(objs, want)),
          "json: path_b64 exactly where the name is not UTF-8")
    check(all(o["uid"] == 1000 and o["schema"] == 1 for o in objs),
          "json: fields intact, schema 1")
    stop(d)
    check(sanitizer_clean(log_of(d) + procs["text"].stderr.read().decode() +
                          procs["json"].stderr.read().decode()), "no sanitizer reports")
    e.close()


def t_forced_unmount():
    """umount -f: READ_NOTIFY gives what is left, then ENOLINK; the daemon
    relays the rest, closes its file at once and exits 4"""
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    c = e.client()
    check(wait_for(lambda: "clients 1" in stats_of(e, d), 10), "a client connected")
    e.send("emit 5")
    check(wait_for(lambda: len(c.seqs) >= 5), "the client gets records")
    e.send("emit 3")
    e.send("shutdown")
    t0 = time.monotonic()
    try:
        rc = d.wait(10)
    except subprocess.TimeoutExpired:
        rc = None
    took = time.monotonic() - t0
    check(rc == EXIT_UNMOUNTED and "being forcibly unmounted" in log_of(d),
          f"the daemon exits 4 saying why: {rc}, {log_of(d).strip().splitlines()[-1:]}")
    check(took < 2.0, f"at once, not after its wait timeout ({took:.2f} s)")
    check(len(c.seqs) == 8 and c.contiguous() and wait_for(lambda: c.eof, 5),
          f"the client got every record left in the ring, then EOF: {c.seqs}")
    check(e.events() == ["attach", "detach"], f"the reader's file was closed: {e.events()}")
    check(not os.path.exists(e.sock), "socket removed")
    check(sanitizer_clean(log_of(d)), "no sanitizer reports")
    e.close()


def t_attach_behind_leftovers():
    """records a dead reader left come before the daemon's ATTACH: it
    drains up to it, so the ATTACH is still every client's first message"""
    e = Env()
    d = e.daemon(env=dict(e.env, FAKE_SCOUTFS_LEFT="700"))
    check(e.started(d), "daemon starts on a ring with 700 records left in it")
    c = e.client()
    check(wait_for(lambda: "clients 1" in stats_of(e, d), 10), "a client connected")
    e.send("emit 5")
    check(wait_for(lambda: len(c.seqs) >= 5), "the client gets records")
    check(c.attach == 701 and c.seqs == [702, 703, 704, 705, 706],
          f"its first message is the ATTACH (seq 701), then the new records: {c.attach} {c.seqs}")
    stop(d)
    check(sanitizer_clean(log_of(d)), "no sanitizer reports")
    e.close()


def t_batched_reads():
    """a busy stream is read in batches (the kernel gathers them), a
    trickle record by record; a module without batched reads still
    gets every record, coalesced the old way"""
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    c = e.client()
    check(wait_for(lambda: "clients 1" in stats_of(e, d), 10), "a client connected")
    e.send("emit 1")
    check(wait_for(lambda: len(c.seqs) >= 1), "a single record is relayed")
    check(not any(x.startswith("batch=") for x in e.events(batches=True)),
          f"a trickle is read without batches: {e.events(batches=True)}")
    e.stream(20, lambda: [len(c.seqs) - 1], 0)
    check(len(c.seqs) - 1 == 20000 and c.contiguous(),
          f"a busy stream arrives whole ({len(c.seqs) - 1} of 20000)")
    batches = [x for x in e.events(batches=True) if x.startswith("batch=")]
    check(batches and all(x == "batch=64/250" for x in batches),
          f"and is read in batches of 64 records or 250 us ({len(batches)} batched calls)")
    stop(d)
    e.close()

    e = Env()
    env = dict(e.env, FAKE_SCOUTFS_NO_BATCH="1")
    d = e.daemon(env=env)
    check(e.started(d), "daemon starts on a module without batched reads")
    c = e.client()
    check(wait_for(lambda: "clients 1" in stats_of(e, d), 10), "a client connected")
    e.stream(10, lambda: [len(c.seqs)], 0)
    check(len(c.seqs) == 10000 and c.contiguous(),
          f"every record arrives ({len(c.seqs)} of 10000)")
    check(log_of(d).count("no batched reads") == 1,
          "the daemon says once that it coalesces instead")
    stop(d)
    check(sanitizer_clean(log_of(d)), "no sanitizer reports")
    e.close()


def t_protocols_side_by_side():
    """clients of the one-record protocol (sending nothing, as socat and
    every client before batches) and of the batched one, on one daemon:
    every one gets every record in order, the former one per message"""
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    ones = [e.client(), e.client()]
    many = [Client(e.sock, ask=MAX_RECS), Client(e.sock, ask=10 ** 6), Client(e.sock, ask=8)]
    outs = {}
    procs = {}
    for name, extra in (("batched", []), ("one", ["--one-per-message"])):
        outs[name] = open(os.path.join(e.dir, f"watch.{name}"), "w+")
        procs[name] = subprocess.Popen([WATCH, "--run-dir", e.run, "--json", "--no-paths",
                                        "--count", "20000", *extra, e.mnt],
                                       stdout=outs[name], stderr=subprocess.PIPE, env=e.env)
    check(wait_for(lambda: "clients 7" in stats_of(e, d), 10), "7 clients connected")
    check(wait_for(lambda: all(c.reply for c in many), 10), "the batched clients got their replies")
    check([c.reply[2:4] for c in many] == [(0, MAX_RECS), (0, MAX_RECS), (0, 8)],
          f"granted: 256 for 256 and for a million, 8 for 8: {[c.reply[2:4] for c in many]}")
    total = e.stream(20, lambda: [len(c.seqs) for c in ones + many])
    check(total == 20000 and all(len(c.seqs) == 20000 and c.contiguous() and c.seqs[0] == 2
                                 for c in ones + many),
          f"each of the 5 raw clients got all 20000 records in order: {[len(c.seqs) for c in ones + many]}")
    check(all(c.attach == 1 for c in ones + many), "each one's first record is the ATTACH")
    check(all(c.seqs == ones[0].seqs and c.recs == ones[0].recs for c in many),
          "the batched clients got the same records, byte for byte")
    check(all(set(c.sizes) == {1} and not c.bad for c in ones),
          f"the one-record clients got 64 byte messages only: {[sorted(set(c.sizes))[:3] for c in ones]}")
    check(max(many[0].sizes) > 1 and max(many[0].sizes) <= MAX_RECS and max(many[2].sizes) <= 8 and
          sum(many[0].sizes) == 20001,
          f"the batched clients got messages of up to 256 (8) records: largest {max(many[0].sizes)}, "
          f"{len(many[0].sizes)} messages for 20001 records; the 8's largest {max(many[2].sizes)}")
    rcs = {k: p.wait(60) for k, p in procs.items()}
    texts = {}
    for k in outs:
        with open(outs[k].name) as f:
            texts[k] = f.read()
    check(rcs == {"batched": 0, "one": 0} and texts["batched"] == texts["one"] and
          texts["one"].count("\n") == 20001,
          f"scoutfs-notify-watch batched and --one-per-message print the same 20001 lines: {rcs}")
    log = log_of(d)
    check(log.count("takes up to") == 4, "the daemon logs each batched client (3 raw, 1 watch)")
    stop(d)
    check(sanitizer_clean(log_of(d) + "".join(p.stderr.read().decode() for p in procs.values())),
          "no sanitizer reports")
    e.close()


def t_bad_requests():
    """a client that asks wrongly gets a reply saying why and is closed;
    the daemon and every other client carry on"""
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    good_one = e.client()
    good_many = Client(e.sock, ask=64)
    cases = [
        ("a short request", b"SNRQ\x01\x00", b"this message was 6"),
        ("a long request", REQ.pack(b"SNRQ", 1, 0, 64, 0) + b"x", b"this message was 17"),
        ("no magic", REQ.pack(b"SNRX", 1, 0, 64, 0), b"no \"SNRQ\" magic"),
        ("version 2", REQ.pack(b"SNRQ", 2, 0, 64, 0), b"version 2 is not spoken here"),
        ("flags", REQ.pack(b"SNRQ", 1, 1, 64, 0), b"flags and reserved bytes must be zero"),
        ("reserved", REQ.pack(b"SNRQ", 1, 0, 64, 7), b"flags and reserved bytes must be zero"),
        ("max_recs 0", REQ.pack(b"SNRQ", 1, 0, 0, 0), b"max_recs 0"),
        ("an empty message", b"", b"this message was 0"),
    ]
    bad = [Client(e.sock, ask=m) for _, m, _ in cases]
    twice = Client(e.sock, ask=64)
    check(wait_for(lambda: twice.reply is not None, 10), "a good request is granted")
    twice.s.send(REQ.pack(b"SNRQ", 1, 0, 64, 0))
    check(wait_for(lambda: all(c.eof for c in bad) and twice.eof, 10),
          "every client that asked wrongly, or asked twice, is closed")
    for (what, _, why), c in zip(cases, bad):
        check(c.reply is not None and c.reply[2] == 1 and c.reply[3] == 0 and why in c.reply[5] and
              c.reply[5].rstrip(b"\0").count(b"\0") == 0,
              f"{what}: refused, saying {c.reply[5].rstrip(bytes(1)).decode() if c.reply else None!r}")
    check(twice.reply[2] == 1 and b"one request" in twice.reply[5],
          f"a second request: refused, saying {twice.reply[5].rstrip(bytes(1)).decode()!r}")
    e.send("emit 500")
    check(wait_for(lambda: len(good_one.seqs) >= 500 and len(good_many.seqs) >= 500) and
          good_one.contiguous() and good_many.contiguous() and good_one.seqs == good_many.seqs,
          f"the well-behaved clients get every record: {len(good_one.seqs)}, {len(good_many.seqs)}")
    log = stats_of(e, d)
    check(d.poll() is None and log.count("refused: ") == len(cases) + 1 and "clients 2 " in log,
          "the daemon runs on, logs each refusal, and keeps the other two clients")
    w = subprocess.Popen([WATCH, "--socket", e.sock, "--count", "1"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e.env)
    check(wait_for(lambda: "clients 3 " in stats_of(e, d), 10), "scoutfs-notify-watch still connects")
    e.send("emit 1")
    out, err = w.communicate(timeout=30)
    check(w.returncode == 0 and out.count(" READ ") == 1, f"and gets a record: {w.returncode}")
    stop(d)
    check(sanitizer_clean(log_of(d)), "no sanitizer reports")
    e.close()


def t_watch_refused_and_old_daemon():
    """scoutfs-notify-watch against hand-made servers: a refusal is an
    error saying why; a daemon from before requests (it closes a client
    that sends anything, after its ATTACH) is connected to again without
    a request, and its ATTACH printed once"""
    e = Env()
    path = os.path.join(e.dir, "hand.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(path)
    srv.listen(2)
    srv.settimeout(30)
    w = subprocess.Popen([WATCH, "--socket", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e.env)
    conn, _ = srv.accept()
    conn.send(rec_bytes(1, op=OP_ATTACH))
    conn.send(REPLY.pack(b"SNRP", 1, 1, 0, 0, b"max_recs is too small".ljust(96, b"\0")))
    conn.close()
    out, err = w.communicate(timeout=30)
    check(w.returncode == 1 and "refused the request: max_recs is too small" in err,
          f"a refusal: exit 1 saying why: {w.returncode} {err.strip().splitlines()[-1:]}")

    w = subprocess.Popen([WATCH, "--socket", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e.env)
    conn, _ = srv.accept()
    conn.settimeout(30)
    conn.send(rec_bytes(1, op=OP_ATTACH))
    asked = conn.recv(64)
    conn.close()
    conn, _ = srv.accept()
    conn.settimeout(1)
    conn.send(rec_bytes(1, op=OP_ATTACH))
    try:
        again = conn.recv(64)
    except socket.timeout:
        again = b""
    for m in (rec_bytes(2), rec_bytes(3)):
        conn.send(m)
    conn.close()
    srv.close()
    out, err = w.communicate(timeout=30)
    lines = out.splitlines()
    check(len(asked) == 16 and asked[:4] == b"SNRQ" and again == b"",
          f"it asked once, then connected again asking nothing: {asked[:4]!r} {again!r}")
    check(w.returncode == 0 and "an older scoutfs-notifyd?" in err and len(lines) == 3 and
          " seq=1 ATTACH " in lines[0] and " seq=2 READ " in lines[1] and " seq=3 READ " in lines[2],
          f"the old daemon's ATTACH once, then its records: {w.returncode} {lines}")
    check(sanitizer_clean(err), "no sanitizer reports")
    e.close()


def t_merged_records():
    """the daemon asks for merged records unless --no-merge; a merged
    record reaches the clients as it is, with its call count"""
    e = Env()
    d = e.daemon()
    check(e.started(d), "daemon starts")
    c = Client(e.sock, ask=MAX_RECS)
    check(wait_for(lambda: c.reply is not None, 10), "a batched client connected")
    js = subprocess.Popen([WATCH, "--run-dir", e.run, "--json", "--count", "2", e.mnt],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e.env)
    tx = subprocess.Popen([WATCH, "--run-dir", e.run, "--count", "2", e.mnt],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e.env)
    check(wait_for(lambda: "clients 3" in stats_of(e, d), 10), "two notify-watch clients connected")
    e.send("seqread 77 100")
    e.send("emit 1")
    check(wait_for(lambda: len(c.recs) >= 2), "the client gets the records")
    r = c.recs[0]
    check(c.attach == 1 and r[1] == 77 and r[3] == 0 and r[4] == 100 * 4096 and r[10] == 100 and
          c.recs[1][10] == 1,
          f"100 sequential reads are one READ of 0..409600 with calls 100, the next record calls 1: "
          f"ino {r[1]} offset {r[3]} len {r[4]} calls {r[10]}")
    jout, jerr = js.communicate(timeout=30)
    tout, terr = tx.communicate(timeout=30)
    o = [json.loads(x) for x in jout.splitlines()]
    check(o[0]["op"] == "ATTACH" and o[0].get("calls") == 1 and o[1]["calls"] == 100 and
          o[1]["len"] == 409600 and o[2]["calls"] == 1,
          f"--json: \"calls\" on every record: {[x.get('calls') for x in o]}")
    t = tout.splitlines()
    check(" calls=100 " in t[1] and "calls=" not in t[0] + t[2],
          f"text: calls=100 on the merged record, nothing on the others: {t[1][:120]}")
    check(e.events(merges=True).count("merge=1") == 1 and "merge=0" not in e.events(merges=True),
          f"the daemon asks for merged records on every call: {e.events(merges=True)}")
    stop(d)
    check(sanitizer_clean(log_of(d) + jerr + terr), "no sanitizer reports")
    e.close()

    for what, extra, env in (("--no-merge", ["--no-merge"], {}),
                             ("a module without merged records", [], {"FAKE_SCOUTFS_NO_MERGE": "1"})):
        e = Env()
        d = e.daemon(*extra, env=dict(e.env, **env))
        check(e.started(d), f"{what}: daemon starts")
        c = Client(e.sock, ask=MAX_RECS)
        check(wait_for(lambda: "clients 1" in stats_of(e, d), 10), f"{what}: a client connected")
        e.send("seqread 77 100")
        check(wait_for(lambda: len(c.recs) >= 100), f"{what}: the client gets the records")
        check(len(c.recs) == 100 and c.contiguous() and
              [(x[3], x[4], x[10]) for x in c.recs] == [(k * 4096, 4096, 0) for k in range(100)],
              f"{what}: one record per call, calls 0: {len(c.recs)} records")
        check("merge=1" not in e.events(merges=True), f"{what}: no merging call: {e.events(merges=True)}")
        log = log_of(d)
        check(("every call its own record" in log) and
              (not env or log.count("the scoutfs module has no merged records") == 1),
              f"{what}: the daemon says so")
        stop(d)
        check(sanitizer_clean(log_of(d)), "no sanitizer reports")
        e.close()


TESTS = [t_flood, t_systemd_unit, t_bad_args, t_refusals, t_start_modes_order_and_fanout, t_stalled_client,
         t_ring_gaps_and_watch, t_churn, t_bad_clients, t_stale_and_second, t_mount_gone,
         t_c_clients, t_watch_protocol, t_watch_daemon_stops, t_sd_notify, t_fsid_format,
         t_hostile_names, t_forced_unmount, t_attach_behind_leftovers, t_batched_reads,
         t_protocols_side_by_side, t_bad_requests, t_watch_refused_and_old_daemon, t_merged_records]


def main():
    os.makedirs(WORK, exist_ok=True)
    sys.exit(run_tests(TESTS, "daemon", os.environ.get("DAEMON_TEST"),
                       after=lambda: check(*no_sanitizer_report_at_all())))


main()
