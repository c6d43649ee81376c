#!/usr/bin/env python3
"""Turn the upstream-suite VM's console log into the comparison report.

The guest (tests/upstream/guest.sh) prints one `upstream: ...` line per
test result and per-pass totals; this reads them back, prints a markdown
report, one verdict line and the closing count:

  upstream-suite: identical results (...)   or   upstream-suite: DIFFERENT (...)
  upstream-suite: N passed, M failed

(N: tests with the same result in both passes; M: tests whose result
differs, plus every other problem.)

With one pass (`--passes notify`) there is nothing to compare: the
verdict is `upstream-suite: one pass only (notify), not a comparison:
...`, never `identical`, and the closing count is that pass's passed
tests and its failed tests plus every other problem (a kernel warning
is one, with no base pass to hold it against).

On the debug kernel (`--debug-kernel`) every pass must also have the
guest's three detector checks (kmemleak, lockdep, kernel log); what they
found is a problem.

Identical means: every pass ran to run-tests.sh's end (no timeout), ran
every test expected (the release's sequence less its exclusions; with
--only, at least one), run-tests.sh's exit status agrees with its
results (0 when nothing failed or skipped, else 1), the
same tests ran in each with the same result, the notify pass's kernel
log has no more warning lines than the base pass's, every reader's
daemon stayed up and its client received records, and no test failed or
skipped for want of a tool or service the guest lacks (the same result
in both passes then only says that the guest is short of something).
"""
import argparse
import re
import sys

# one line per test result, which the guest prints as soon as
# run-tests.sh prints that test's result (so a pass cut short by a
# timeout or a killed VM still has a line for every test that ran)
RESULT = re.compile(r"^upstream: (\w+) ([a-z0-9_-]+) (passed|failed|skipped) (\S+) ?(.*)$")
EXITED = re.compile(r"^upstream: (\w+): run-tests\.sh exited (\d+) after (\d+)s$")
SUMMARY = re.compile(r"^\[== all tests run: (\d+) passed, (\d+) skipped, (\d+) skipped \(permitted\), (\d+) failed ==\]$")
WARN = re.compile(r"^upstream: (\w+) kernel log: (\d+) warning lines$")
CLIENT = re.compile(r"^upstream: notify reader (\d+): client received (\d+) lines, (\d+) gap lines$")
DAEMON = re.compile(r"^upstream: notify reader (\d+): daemon (was up to the end|EXITED EARLY)(?:, (\d+) attaches)?")
ATTACHED = re.compile(r"^upstream: notify reader (\d+) attached to (\S+)$")
RELAYED = re.compile(r"^upstream: notify reader (\d+): the daemon relayed (\d+) records to it, lost (\d+)$")
# the guest's own failures: a module, a disk, an unmount that hung
FAILED = re.compile(r"^upstream: (?:\w+: )?[^|]*\b(?:FAILED|HUNG)\b")
# a test that failed or skipped for want of what the guest provides,
# not because of scoutfs: t_require_commands's message, basic-nfs's skip
# when `systemctl start nfs-server` fails; and bash's own message for a
# command that was run without being required, by run-tests.sh and its
# funcs (their lines pass through to the console) or by a test (in the
# fail.log lines the guest prints): the guest must provide what
# upstream's test hosts do
WANT = re.compile(r"command \S+ not found in path|nfs-server not available")
NOT_FOUND = re.compile(r"^(?:upstream: (\w+) \| )?.*?([^\s:]+): command not found$")
# the guest's vCPUs not run by the host for 20 s or more (an overloaded
# host under TCG): scoutfs's heartbeats and timeouts then fire as on a
# failing node, mounts are fenced, and what follows says nothing about
# the series.  The kernel prints it to the console at any log level.
STALL = re.compile(r"^\[\s*([\d.]+)\] watchdog: BUG: soft lockup - CPU#\d+ stuck for (\d+)s!")
# run-tests.sh's crash monitor: it crashes the VM on a fence error, an
# overlapping extent or scoutfs-fenced gone
# (its line can follow a test's name, which run-tests.sh printed first)
MONITOR = re.compile(r"run-tests monitor (saw .*|didn't see .*)$")
CRASH = "run-tests monitor syncing and triggering crash"
# the debug kernel's detector checks after a pass (a finding also ends
# in FAILED, which FAILED above counts)
DETECTOR = re.compile(r"^upstream: (\w+) detectors: (kmemleak|lockdep|kernel log): (.*)$")
COUNTERS = re.compile(r"^upstream: notify counters (\S+): emitted (\d+) dropped (\d+) attached (\d+)$")


def parse(path, passes):
    p = {name: {"results": {}, "exit": None, "secs": None, "summary": None,
                "warn": None, "timeout": False, "detectors": {}} for name in passes}
    readers = {}
    counters = []
    missing = []
    failures = []
    stalls = {}
    monitor = None
    current = None
    done = False
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"^upstream: (\w+): scoutfs ", line)
            if m and m.group(1) in p:
                current = m.group(1)
            m = RESULT.match(line)
            if m and m.group(1) in p:
                p[m.group(1)]["results"][m.group(2)] = (m.group(3), m.group(4), m.group(5))
                continue
            m = EXITED.match(line)
            if m and m.group(1) in p:
                p[m.group(1)]["exit"] = int(m.group(2))
                p[m.group(1)]["secs"] = int(m.group(3))
                continue
            if re.match(r"^upstream: (\w+): TIMED OUT", line):
                p[line.split()[1].rstrip(":")]["timeout"] = True
            m = SUMMARY.match(line)
            if m and current:
                p[current]["summary"] = tuple(int(x) for x in m.groups())
            m = WARN.match(line)
            if m and m.group(1) in p:
                p[m.group(1)]["warn"] = int(m.group(2))
            m = DETECTOR.match(line)
            if m and m.group(1) in p:
                p[m.group(1)]["detectors"][m.group(2)] = m.group(3)
            m = ATTACHED.match(line)
            if m:
                readers.setdefault(int(m.group(1)), {})["mnt"] = m.group(2)
            m = DAEMON.match(line)
            if m:
                r = readers.setdefault(int(m.group(1)), {})
                r["up"] = m.group(2) == "was up to the end" and r.get("up", True)
                if m.group(3):
                    r["attaches"] = int(m.group(3))
            m = CLIENT.match(line)
            if m:
                r = readers.setdefault(int(m.group(1)), {})
                r["lines"], r["gaps"] = int(m.group(2)), int(m.group(3))
            m = RELAYED.match(line)
            if m:
                r = readers.setdefault(int(m.group(1)), {})
                r["relayed"], r["lost"] = int(m.group(2)), int(m.group(3))
            m = COUNTERS.match(line)
            if m:
                counters.append((m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))))
            m = NOT_FOUND.match(line)
            if m and (m.group(1) or current) in p:
                missing.append(f"{m.group(1) or current}: '{m.group(2)}' was run, which the guest lacks")
            m = STALL.match(line)
            if m and current:
                stalls.setdefault(current, []).append((float(m.group(1)), int(m.group(2))))
            m = MONITOR.search(line)
            if m:
                monitor = m.group(1)
            if line == CRASH and current:
                failures.append(f"{current}: run-tests.sh's crash monitor crashed the VM ({monitor})")
            if FAILED.match(line):
                failures.append(line[len("upstream: "):])
            if line == "upstream: guest done":
                done = True
    for name, s in stalls.items():
        failures.append(f"{name}: a CPU of the VM made no progress for up to {max(x[1] for x in s)} s "
                        f"({len(s)} soft lockups, the first {s[0][0]:.0f} s after boot): under TCG the mark "
                        f"of an overloaded host, which scoutfs's timeouts take for a failing node; "
                        f"rerun on a quieter host")
    return p, readers, counters, failures + sorted(set(missing)), done


def ran_problems(name, d, n, expected, only):
    """a pass that ran fewer tests than expected (with --only: none), or
    whose run-tests.sh exit status does not say what its results say
    (0 when no test failed or skipped, 1 otherwise)"""
    out = []
    ran = len(d["results"])
    if only and ran == 0:
        out.append(f"{name} ran no test")
    elif not only and ran != expected:
        out.append(f"{name} ran {ran} tests of the {expected} expected")
    want = 0 if n["failed"] == 0 and n["skipped"] == 0 else 1
    if d["exit"] is None:
        out.append(f"{name}: no exit status of run-tests.sh")
    elif d["exit"] != want and not d["timeout"]:
        out.append(f"{name}: run-tests.sh exited {d['exit']}, its results say {want}")
    return out


def host_load(path, cores):
    """a sentence on the host's load while the VMs ran, from its samples"""
    if not path:
        return ""
    try:
        with open(path) as f:
            s = sorted(float(x) for x in f.read().split())
    except (OSError, ValueError):
        return " Host load: not recorded."
    if not s:
        return " Host load: not recorded."
    return (f" Host load while the VMs ran ({cores or '?'} cores; 1-minute load average, "
            f"{len(s)} samples a minute apart): min {s[0]:.1f}, median {s[len(s) // 2]:.1f}, "
            f"max {s[-1]:.1f}.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--console", required=True)
    ap.add_argument("--passes", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--excluded", required=True)
    ap.add_argument("--nseq", type=int, required=True)
    ap.add_argument("--only")
    ap.add_argument("--loadavg", help="the host's 1-minute load average, one sample a line")
    ap.add_argument("--cores", type=int)
    ap.add_argument("--kernel", default="Debian 5.10.0-32", help="what the VMs booted")
    ap.add_argument("--debug-kernel", action="store_true",
                    help="the debug kernel: every pass must have its detector checks")
    a = ap.parse_args()
    passes = a.passes.split()
    p, readers, counters, failures, done = parse(a.console, passes)
    nexcl = sum(1 for l in open(a.excluded) if l.strip() and not l.startswith("#"))

    # what each pass must run: the release's sequence less its exclusions
    expected = a.nseq - nexcl
    problems = []
    if not done:
        problems.append("the guest did not finish")
    problems += failures
    out = []
    single = len(passes) == 1
    if single:
        out.append(f"## Upstream scoutfs suite on {a.base}: the {passes[0]} pass only, not a comparison\n")
    else:
        out.append(f"## Upstream scoutfs suite on {a.base}: unpatched vs series + scoutfs-notifyd\n")
    out.append(f"Upstream's `tests/run-tests.sh` in QEMU (TCG, {a.kernel}), "
               + ("one VM (2 vCPUs, 8 GiB)" if single else
                  "one VM per pass side by side (2 vCPUs and 8 GiB each)") + f", 5 mounts (3 quorum members) on four "
               f"64 GiB virtio disks, fresh mkfs, results on a fifth (ext4). "
               f"{a.nseq} tests in {a.base}'s sequence, {nexcl} excluded "
               f"{'' if single else 'in both passes '}"
               f"(`tests/upstream/excluded.txt` gives each reason)"
               + (f", only tests matching `{a.only}`" if a.only else "") + "."
               + host_load(a.loadavg, a.cores) + "\n")
    out.append("| pass | module | tests run | passed | failed | skipped | kernel warnings | time |")
    out.append("|---|---|---|---|---|---|---|---|")
    what = {"base": f"{a.base} unpatched, nothing attached",
            "notify": f"{a.base} + series, scoutfs-notifyd and a reading client on every mount"}
    for name in passes:
        d = p[name]
        res = d["results"]
        n = {k: sum(1 for r in res.values() if r[0] == k) for k in ("passed", "failed", "skipped")}
        warn = "?" if d["warn"] is None else str(d["warn"])
        secs = "?" if d["secs"] is None else f"{d['secs'] // 60} min {d['secs'] % 60} s"
        out.append(f"| {name} | {what[name]} | {len(res)} | {n['passed']} | {n['failed']} | "
                   f"{n['skipped']} | {warn} | {secs} |")
        if d["timeout"]:
            problems.append(f"{name} timed out")
        problems += ran_problems(name, d, n, expected, a.only)
        if d["summary"] is None:
            problems.append(f"{name} did not reach run-tests.sh's summary")
        else:
            sp, ss, ssp, sf = d["summary"]
            if (sp, ss + ssp, sf) != (n["passed"], n["skipped"], n["failed"]):
                problems.append(f"{name}: parsed results {n} disagree with run-tests.sh's summary {d['summary']}")
        if d["warn"] is None:
            problems.append(f"{name}: no kernel-log check")
        elif single and d["warn"]:
            problems.append(f"{name} has {d['warn']} kernel warning lines (no other pass to compare with)")
    out.append("")

    if a.debug_kernel:
        out.append("Detectors of the debug kernel after each pass, scoutfs unmounted and unloaded:\n")
        for name in passes:
            det = p[name]["detectors"]
            for k in ("kmemleak", "lockdep", "kernel log"):
                out.append(f"- {name}, {k}: {det.get(k, 'NOT CHECKED')}")
            missing = [k for k in ("kmemleak", "lockdep", "kernel log") if k not in det]
            if missing:
                problems.append(f"{name}: no detector check of {', '.join(missing)}")
        out.append("")

    if "notify" in passes:
        out.append("Readers in the notify pass:\n")
        if not readers:
            problems.append("no notify reader attached")
        for i in sorted(readers):
            r = readers[i]
            out.append(f"- mount {i} ({r.get('mnt', '?')}): daemon "
                       f"{'up to the end' if r.get('up') else 'NOT up to the end'} "
                       f"({r.get('attaches', '?')} attaches, one per mount and remount), client received "
                       f"{r.get('lines', '?')} lines with {r.get('gaps', '?')} seq gaps; the daemon relayed "
                       f"{r.get('relayed', '?')} records to it and lost {r.get('lost', '?')}")
            if not r.get("up"):
                problems.append(f"reader {i}'s daemon did not stay up")
            if not r.get("lines"):
                problems.append(f"reader {i}'s client received nothing")
        for ident, em, dr, at in counters:
            out.append(f"- counters of {ident} at the end: notify_emitted {em}, "
                       f"notify_dropped_ring_full {dr}, notify_reader_attached {at}")
        out.append("")

    # failing (or skipping) the same way in both passes is the same
    # result, but not when it is for want of a tool in the guest
    wants = {}
    for name in passes:
        for t, (res, _, msg) in p[name]["results"].items():
            if res != "passed" and WANT.search(msg):
                wants.setdefault((t, res, msg), []).append(name)
    for (t, res, msg), names in wants.items():
        problems.append(f"{t} {res} in {' and '.join(names)} for want of what the guest provides: {msg}")

    compared, diff = [], []
    if len(passes) == 2:
        b, n = (p[x]["results"] for x in passes)
        compared = set(b) | set(n)
        diff = sorted(t for t in set(b) | set(n) if b.get(t, ("not run",))[0] != n.get(t, ("not run",))[0])
        if p[passes[0]]["warn"] is not None and p[passes[1]]["warn"] is not None \
                and p[passes[1]]["warn"] > p[passes[0]]["warn"]:
            problems.append(f"{passes[1]} has {p[passes[1]]['warn']} kernel warning lines, "
                            f"{passes[0]} {p[passes[0]]['warn']}")
        if diff:
            out.append("Tests whose result differs:\n")
            for t in diff:
                out.append(f"- {t}: {passes[0]} {' '.join(b.get(t, ('not run',)))}, "
                           f"{passes[1]} {' '.join(n.get(t, ('not run',)))}")
            out.append("")
            problems.append(f"{len(diff)} tests differ")
    results = [p[x]["results"] for x in passes]
    first = list(results[0])
    out.append("| test | " + " | ".join(passes) + " |")
    out.append("|---|" + "---|" * len(passes))
    for t in sorted(set().union(*results), key=lambda t: first.index(t) if t in first else 1e9):
        cells = []
        for r in (x.get(t) for x in results):
            if r is None:
                cells.append("not run")
            elif r[0] == "passed":
                cells.append(f"passed {r[1]}")
            else:
                cells.append(f"{r[0]}: {r[2]}")
        out.append(f"| {t} | " + " | ".join(cells) + " |")
    out.append("")
    if a.only:
        problems.append("--only: not the full subset")

    print("\n".join(out))
    counts = "; ".join(
        f"{x}: {len(p[x]['results'])} run, "
        f"{sum(1 for r in p[x]['results'].values() if r[0] == 'passed')} passed, "
        f"{sum(1 for r in p[x]['results'].values() if r[0] == 'failed')} failed, "
        f"{sum(1 for r in p[x]['results'].values() if r[0] == 'skipped')} skipped, "
        f"{p[x]['warn']} kernel warnings" for x in passes)
    if single:
        # one pass: its tests, and every other problem
        res = p[passes[0]]["results"].values()
        npass = sum(1 for r in res if r[0] == "passed")
        nfail = sum(1 for r in res if r[0] == "failed")
        if nfail:
            problems.insert(0, f"{nfail} tests failed")
        head = f"upstream-suite: one pass only ({passes[0]}), not a comparison"
        if problems:
            print(f"{head}: FAILED ({counts}; {'; '.join(problems)})")
        else:
            print(f"{head}: no test failed, no problem ({counts})")
        print(f"upstream-suite: {npass} passed, {nfail + len(problems) - (1 if nfail else 0)} failed")
        return 1 if problems else 0
    # the closing line: one check per test run in either pass (same
    # result in both), one failure per other problem
    same = len(compared) - len(diff)
    others = len(problems) - (1 if diff else 0)
    if problems:
        print(f"upstream-suite: DIFFERENT ({counts}; {'; '.join(problems)})")
    else:
        print(f"upstream-suite: identical results ({counts})")
    print(f"upstream-suite: {same} passed, {len(diff) + others} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
