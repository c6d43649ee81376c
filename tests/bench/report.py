#!/usr/bin/env python3
"""Turn the `relay:` and `bench:` lines of a `make bench` run into the
tables docs/benchmarks.md shows.  Medians over the rounds, with their
spread (min to max); ratios are against the unpatched module (hook cost),
the bare sendmmsg loop (relay, one record per message and 256) or the
old daemon (ring drain); the stages (CPU per record and per call of the
reader, the daemon and the client on the real kernel) and the 1 GiB
sequential read (records against read calls in the ring, at the client
and in the stream) are reported with what they lost.  A missed
target says MISSED, never hidden; a target the spread of the rounds can't
decide says "not resolved"; a figure made from rounds that are not all
there and whole (a failed step, fewer rounds or samples than asked, fewer
than three rounds, records lost, a guest that did not finish) says "not
measured" with the reason, or MISSED with it when it misses anyway
(tests/bench/verdict.py).  A throughput verdict always says what was
lost.

    tests/bench/report.py RELAY_LOG [--icount VM_CONSOLE_LOG] [--wall VM_CONSOLE_LOG]

The VM logs are the guest consoles of the two boots: --icount with the
guest's clock following the instructions executed (the method that
decides the hook-cost targets), --wall with it following the host's
clock (the first method, kept beside it).  tests/bench/report_test.py
tests it on made-up logs.
"""
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verdict import lost_problem, rounds_problems, throughput, verdict  # noqa: E402

NAMES = {"unpatched": "unpatched module", "no_reader": "patched, no reader",
         "notifyd": "patched, scoutfs-notifyd + 1 client",
         "fanotify": "patched, no reader, fanotify FAN_OPEN/FAN_ACCESS mark + reader"}
MODES = ("unpatched", "no_reader", "notifyd", "fanotify")
METRICS = ("pread", "open", "pread_cpu", "open_cpu")
OPS = ("pread", "open")
CLOCKS = ("icount", "wall")
RATIO_MAX = 0.2
LAT_P50_US = 250
LAT_P99_US = 2000
RELAY_CLIENTS = (1, 4, 16)
RELAY_PERS = (1, 256)
SECTIONS = ("hook", "drain", "latency", "stage", "big")
# the stages of tests/vm/bench.sh, in its order, and what each runs
STAGES = {"none": "no reader",
          "drainonly": "a reader that only drains (merged records, a busy daemon's batched waits)",
          "new-text": "scoutfs-notifyd + notify-watch, text, no paths (batches)",
          "new-json": "scoutfs-notifyd + notify-watch --json, no paths",
          "new-paths": "scoutfs-notifyd + notify-watch --json with paths",
          "nomerge-text": "scoutfs-notifyd --no-merge + notify-watch --one-per-message, text, no paths"}
BIG_RATIO = 100
DAEMON_NAMES = {"new": "scoutfs-notifyd (merged records, a batched client)",
                "nomerge": "scoutfs-notifyd --no-merge (a one-record client)",
                "old": "old daemon (1 ms coalescing)"}


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    """(max - min) / median: how far apart the rounds are"""
    return (max(xs) - min(xs)) / med(xs) if xs else float("nan")


def num(s):
    return int(s) if s.isdigit() else None


def kv(text):
    """'a 1 b 2' -> {'a': '1', 'b': '2'}"""
    w = text.split()
    return dict(zip(w[0::2], w[1::2]))


def new_run():
    return {"hook": {}, "rounds": {}, "loss": {}, "drain": {}, "lat": {}, "info": "", "asked": {},
            "failed": {s: [] for s in SECTIONS}, "harness": [], "closing": None, "stage": {}, "big": None}


BIG_RE = re.compile(r"bench: big calls (\S+) bytes (\S+) ring (\S+) (\S+) (\S+) client (\S+) (\S+) (\S+) "
                    r"stream (\S+) (\S+) (\S+)(?: client_lost (\S+))?")


def parse_header(run, text):
    """the first line: what was asked"""
    run["info"] = re.match(r"clock \S+ cpus \d+ rounds \d+ preads \d+ opens \d+", text)[0]
    run["asked"] = {k: int(v) for k, v in re.findall(
        r"\b(rounds|preads|opens|drain_rounds|lat_n|stage_secs|big_bytes) (\d+)", text)}
    m = re.search(r"\bstages ([\w -]+)$", text)
    if m:
        run["asked"]["stages"] = m[1].split()


def parse_big(m):
    """bench: big: the reader's calls and bytes; ring: records emitted,
    calls merged into them, ring-full drops; client and stream: records,
    calls, bytes of the file's READs (- without a stream)"""
    return {"calls": num(m[1]), "bytes": num(m[2]), "ring": [num(x) for x in m.groups()[2:5]],
            "client": [num(x) for x in m.groups()[5:8]], "stream": [num(x) for x in m.groups()[8:11]],
            "stream_run": m[9] != "-", "client_lost": num(m[12] or "?")}


def parse_line(run, line):
    m = re.search(r"bench: (clock \S+ cpus \d+ rounds \d+ preads \d+ opens \d+.*)", line)
    if m:
        parse_header(run, m[1].rstrip())
        return
    m = re.search(r"bench: FAILED (hook|drain|latency|stage|big)\b(.*)", line)
    if m:
        run["failed"][m[1]].append(f"FAILED {m[1]}{m[2]}")
        return
    m = re.search(r"bench: stage ([\w-]+) (reads .*)", line)
    if m:
        run["stage"][m[1]] = {k: num(v) for k, v in kv(m[2]).items()}
        return
    m = BIG_RE.search(line)
    if m:
        run["big"] = parse_big(m)
        return
    m = re.search(r"bench\.sh: FAILED: (.*)", line)
    if m:
        run["harness"].append(m[1])
        return
    m = re.search(r"bench: (\d+) passed, (\d+) failed$", line)
    if m:
        run["closing"] = (int(m[1]), int(m[2]))
        return
    m = re.search(r"bench: round (\d+) mode (\w+) (pread_ns .*)", line)
    if m:
        vals = kv(m[3])
        rd = run["rounds"].setdefault(int(m[1]), {}).setdefault(m[2], {})
        for key in METRICS:
            if key + "_ns" in vals:
                v = float(vals[key + "_ns"])
                run["hook"].setdefault(m[2], {}).setdefault(key, []).append(v)
                rd[key] = v
        # ring-full drops in every mode, the client's losses with the daemon
        lost = [num(vals.get("dropped", "?")),
                num(vals.get("client_lost", "?" if m[2] == "notifyd" else "0"))]
        run["loss"].setdefault(m[2], []).append(None if None in lost else sum(lost))
        return
    m = re.search(r"bench: drain round \d+ daemon (\w+) (reads .*)", line)
    if m:
        v = kv(m[2])
        run["drain"].setdefault(m[1], []).append({
            "reads": num(v.get("reads", "?")) or 0, "emitted": num(v.get("emitted", "0")) or 0,
            "dropped": num(v.get("dropped", "0")) or 0, "client_lost": num(v.get("client_lost", "?")),
            "ns": num(v.get("daemon_ns", "0")) or 0, "merged": num(v.get("merged", "0")) or 0,
            "client_ns": num(v.get("client_ns", "?"))})
        return
    m = re.search(r"bench: latency daemon (\w+) (?:asked (\d+) )?latency_us n (\d+) p50 ([\d.]+) "
                  r"p99 ([\d.]+)(?: lost (\d+))?", line)
    if m:
        run["lat"][m[1]] = {"asked": num(m[2] or "?"), "n": int(m[3]), "p50": float(m[4]),
                            "p99": float(m[5]), "lost": num(m[6] or "?")}


def parse_vm(path):
    run = new_run()
    with open(path, errors="replace") as f:
        for line in f:
            parse_line(run, line)
    return run


def run_problems(run):
    """what voids every verdict of a run: the harness, a guest that did not finish"""
    out = list(run["harness"])
    if run["closing"] is None:
        out.append("the guest's bench did not finish (no closing line)")
    if not run["info"]:
        out.append("no bench header (what was asked is not known)")
    return out


def failed_problems(run, section):
    f = run["failed"][section]
    if not f:
        return []
    return [f"{len(f)} failed steps in the guest ({f[0]}{', ...' if len(f) > 1 else ''})"]


def added(run, mode, op):
    return med(run["hook"][mode][op]) - med(run["hook"]["unpatched"][op])


def round_ratios(run, op):
    """the reader's added cost over fanotify's, round by round"""
    out = []
    for r in run["rounds"].values():
        if all(m in r and op in r[m] for m in ("unpatched", "notifyd", "fanotify")):
            f = r["fanotify"][op] - r["unpatched"][op]
            if f > 0:
                out.append((r["notifyd"][op] - r["unpatched"][op]) / f)
    return out


def hook_problems(run, modes, op):
    """why the hook figures of MODES for OP can't be trusted"""
    out = run_problems(run) + failed_problems(run, "hook")
    asked = run["asked"].get("rounds")
    for mode in modes:
        out += [f"{mode}: {p}" for p in rounds_problems(len(run["hook"].get(mode, {}).get(op, [])), asked)]
    for mode in modes:
        loss = run["loss"].get(mode, [])
        if None in loss:
            out.append(f"{mode}: what was lost is not known")
        elif sum(loss):
            out.append(f"{mode}: {sum(loss):,} records lost (ring-full drops and the client's) "
                       f"in {sum(1 for x in loss if x)} of {len(loss)} rounds")
    return out


def no_reader_cell(run, op):
    """met: at most 1%, with rounds that resolve 1% (spread under it)"""
    b = run["hook"]["unpatched"][op]
    a = added(run, "no_reader", op)
    s = spread(b)
    inside = "inside" if a <= s * med(b) else "outside"
    text = f"{a:+,.0f} ns ({a / med(b):+.2%}; {inside} the unpatched rounds' spread of {s:.2%})"
    problems = hook_problems(run, ("unpatched", "no_reader"), op)
    if s > 0.01:
        ok = False if a > s * med(b) else None
        unresolved = f"not resolved: the rounds spread {s:.1%}, over 1%"
        return text, verdict(ok, problems) if problems or ok is False else unresolved
    return text, verdict(a <= 0.01 * med(b), problems)


def reader_cell(run, op):
    a_r = added(run, "notifyd", op)
    a_f = added(run, "fanotify", op)
    ratio = a_r / a_f if a_f > 0 else float("nan")
    rr = round_ratios(run, op)
    text = (f"notifyd {a_r:+,.0f} ns, fanotify {a_f:+,.0f} ns: ratio {ratio:.2f}"
            + (f" (rounds {min(rr):.2f} to {max(rr):.2f})" if rr else ""))
    v = verdict(a_f > 0 and ratio <= RATIO_MAX, hook_problems(run, MODES, op))
    if rr:
        below = sum(1 for x in rr if x <= RATIO_MAX)
        v += f" ({below} of {len(rr)} rounds at or below {RATIO_MAX})"
    return text, v


def hook_table(out, run, title, metrics):
    rounds = len(run["hook"]["unpatched"][metrics[0]])
    out.append(f"#### Hook cost, {title}: ns per operation, median of {rounds} alternating rounds (min-max)")
    out.append("")
    out.append("| configuration | 4 KiB pread | vs unpatched | open+close | vs unpatched |")
    out.append("| --- | --- | --- | --- | --- |")
    base = {op: med(run["hook"]["unpatched"][op]) for op in metrics}
    for mode in MODES:
        if not all(run["hook"].get(mode, {}).get(op) for op in metrics):
            continue
        cells = []
        for op in metrics:
            xs = run["hook"][mode][op]
            cells.append(f"{med(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})")
            cells.append(f"{med(xs) / base[op]:.4f}")
        out.append(f"| {NAMES[mode]} | " + " | ".join(cells) + " |")
    out.append("")


# what each row of the targets measures: (clock, metric suffix, label)
MEASURES = (
    ("icount", "_cpu", "icount: the benchmark's own CPU time (the I/O path)"),
    ("icount", "", "icount: elapsed on the one vCPU (the whole VM: daemon and client, or fanotify's reader, included)"),
    ("wall", "", "wall clock: elapsed (2 vCPUs, the first method)"),
)


def have_all(run, modes, op):
    return all(run["hook"].get(m, {}).get(op) for m in modes)


def target_rows(out, have, op):
    for clock, suffix, label in MEASURES:
        run = have.get(clock)
        if suffix or not run:
            continue
        if have_all(run, ("unpatched", "no_reader"), op):
            text, v = no_reader_cell(run, op)
        else:
            text, v = "-", verdict(None, hook_problems(run, ("unpatched", "no_reader"), op))
        out.append(f"| no reader: added cost at most 1%, decided by rounds that spread less | {op} "
                   f"| {label} | {text} | {v} |")
    for clock, suffix, label in MEASURES:
        run = have.get(clock)
        if not run or not run["hook"]["unpatched"].get(op + suffix):
            continue
        if have_all(run, MODES, op + suffix):
            text, v = reader_cell(run, op + suffix)
        else:
            text, v = "-", verdict(None, hook_problems(run, MODES, op + suffix))
        out.append(f"| reader: added cost <= {RATIO_MAX} of fanotify's | {op} | {label} | {text} | {v} |")


def measured_clocks(out, runs, has, section, title, none):
    """the clocks whose runs have a section's figures (has(run)); for each
    other clock that ran, a heading that says why it is not measured"""
    have = [c for c in CLOCKS if c in runs and has(runs[c])]
    for c in CLOCKS:
        if c in runs and c not in have:
            why = "; ".join(run_problems(runs[c]) + failed_problems(runs[c], section)) or none
            out.append(f"#### {title}, {c}: not measured: {why}")
            out.append("")
    return have


def hook_tables(out, runs):
    have = {c: runs[c] for c in measured_clocks(out, runs, lambda r: r["hook"].get("unpatched", {}).get("pread"),
                                                 "hook", "Hook cost", "no rounds")}
    if not have:
        return
    for c, run in have.items():
        if run["info"]:
            out.append(f"`{run['info']}`")
            out.append("")
        if c == "icount" and run["hook"]["unpatched"].get("pread_cpu"):
            hook_table(out, run, "icount, the benchmark's own CPU time", ("pread_cpu", "open_cpu"))
        hook_table(out, run, "icount, elapsed" if c == "icount" else "wall clock, elapsed", ("pread", "open"))

    out.append("#### Hook-cost targets")
    out.append("")
    out.append("| target | op | measured by | figures | verdict |")
    out.append("| --- | --- | --- | --- | --- |")
    for op in OPS:
        target_rows(out, have, op)
    out.append("")

    out.append("#### Resolution: how far apart the rounds of one run are")
    out.append("")
    out.append("| method | rounds | unpatched pread spread | unpatched open+close spread "
               "| reader/fanotify ratio by round, pread | by round, open+close |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    for clock, suffix, label in MEASURES:
        run = have.get(clock)
        if not run or not run["hook"]["unpatched"].get("pread" + suffix):
            continue
        u = run["hook"]["unpatched"]
        rr = [round_ratios(run, op + suffix) for op in OPS]
        cells = [f"{min(x):.2f} to {max(x):.2f}" if x else "-" for x in rr]
        out.append(f"| {label} | {len(u['pread'])} | {spread(u['pread' + suffix]):.2%} "
                   f"| {spread(u.get('open' + suffix, [])):.2%} | " + " | ".join(cells) + " |")
    out.append("")


def drain_problems(run, rounds):
    """why a daemon's drain rounds can't be trusted (losses apart)"""
    out = run_problems(run) + failed_problems(run, "drain")
    out += rounds_problems(len(rounds), run["asked"].get("drain_rounds"), "drain rounds")
    if any(r["emitted"] == 0 for r in rounds):
        out.append("a round emitted no record")
    return out


def drain_verdict(run, d, k):
    """the series' daemon K (merging or --no-merge): 0 ring-full drops,
    CPU per record <= 0.5 of the old daemon's"""
    rounds = d[k]
    emitted = sum(r["emitted"] for r in rounds)
    dropped = sum(r["dropped"] for r in rounds)
    lost = [r["client_lost"] for r in rounds]
    client = lost_problem(None if None in lost else sum(lost), emitted, "records by the client")
    problems = drain_problems(run, rounds)
    drops = [f"{dropped:,} of {emitted + dropped:,} records dropped ring-full"] if dropped else []
    v = "0 drops: " + verdict(dropped == 0, problems + client + drops)
    per = {n: [r["ns"] / r["emitted"] / 1000 for r in v_ if r["emitted"]] for n, v_ in d.items()}
    if not (d.get("old") and per[k] and per["old"]):
        return None, v + "; CPU per record: not measured (no old daemon)"
    ratio = med(per[k]) / med(per["old"])
    old = d["old"]
    olost = [r["client_lost"] for r in old]
    oproblems = [f"old daemon: {p}" for p in drain_problems(run, old) + lost_problem(
        None if None in olost else sum(olost), sum(r["emitted"] for r in old), "records by the client")]
    return ratio, v + "; CPU per record: " + verdict(ratio <= 0.5, problems + client + oproblems)


def drain_table(out, runs):
    have = measured_clocks(out, runs, lambda r: r["drain"], "drain", "Ring drain", "no rounds")
    if not have:
        return
    out.append("#### Ring drain: a busy reader and a CPU hog sharing the vCPUs with the daemon and one client")
    out.append("")
    out.append("Rounds of 2 s alternating the daemons; sums over the rounds, daemon CPU (its schedstat run "
               "time) per record (and per read call: records plus the calls merged into them) as the median "
               "of the rounds (min-max), the client's CPU per record the same way.")
    out.append("")
    out.append("| clock | daemon | rounds | reads | records emitted | calls merged into them "
               "| dropped ring-full | lost by the client "
               "| daemon CPU per record | vs old | per read call | vs old | client CPU per record "
               "| target: 0 drops, <= 0.5 of old |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for c in have:
        d = runs[c]["drain"]
        per = {k: [r["ns"] / r["emitted"] / 1000 for r in v if r["emitted"]] for k, v in d.items()}
        pcall = {k: [r["ns"] / (r["emitted"] + r["merged"]) / 1000 for r in v if r["emitted"]]
                 for k, v in d.items()}
        for k in ["new", "nomerge", "old"] + sorted(set(d) - {"new", "nomerge", "old"}):
            if k not in d:
                continue
            v = d[k]
            lost = [r["client_lost"] for r in v]
            lost_s = f"{sum(lost):,}" if None not in lost else "?"
            cpu = f"{med(per[k]):.2f} us ({min(per[k]):.2f}-{max(per[k]):.2f})" if per[k] else "-"
            cpc = f"{med(pcall[k]):.3f} us" if pcall[k] else "-"
            cl = [r["client_ns"] / r["emitted"] / 1000 for r in v if r["emitted"] and r["client_ns"]]
            cls = f"{med(cl):.2f} us" if cl else "-"
            vs = vsc = v_text = "-"
            if k != "old" and per.get("old") and per[k]:
                vs = f"{med(per[k]) / med(per['old']):.2f}"
                vsc = f"{med(pcall[k]) / med(pcall['old']):.2f}"
            if k in ("new", "nomerge"):
                _, v_text = drain_verdict(runs[c], d, k)
            out.append(f"| {c} | {DAEMON_NAMES.get(k, f'scoutfs-notifyd-{k}')} | {len(v)} "
                       f"| {sum(r['reads'] for r in v):,} | {sum(r['emitted'] for r in v):,} "
                       f"| {sum(r['merged'] for r in v):,} | {sum(r['dropped'] for r in v):,} | {lost_s} "
                       f"| {cpu} | {vs} | {cpc} | {vsc} | {cls} | {v_text} |")
    out.append("")


def per_item(ns, n):
    """ns per item (in instructions under icount: 1 ns each); nan without both"""
    return ns / n if ns is not None and n else float("nan")


def stage_failed(run, name):
    """the guest's FAILED lines of stage NAME, or of the stages as a whole"""
    return [f for f in run["failed"]["stage"] if re.match(rf"FAILED stage( {re.escape(name)})?:", f)]


def stage_problems(run, name):
    """why the figures of stage NAME can't be trusted: what it lost among them"""
    out = run_problems(run)
    f = stage_failed(run, name)
    if f:
        out.append(f"{len(f)} failed steps in the guest ({f[0]}{', ...' if len(f) > 1 else ''})")
    asked = run["asked"].get("stages")
    if asked is None:
        out.append("the stages asked for are not known")
    st = run["stage"].get(name)
    if st is None:
        return out + ["no figures"]
    if not st.get("reads") or st.get("reader_ns") is None:
        out.append("the busy reader gave no figures")
    dropped = st.get("dropped")
    if dropped is None:
        out.append("what the ring dropped is not known")
    elif dropped:
        out.append(f"{dropped:,} records dropped ring-full")
    if name.startswith(("new-", "nomerge-")):
        out += lost_problem(st.get("client_lost"), (st.get("records") or 0), "records by the client")
    elif name == "drainonly" and st.get("records") is None:
        out.append("the drain-only reader gave no counts")
    return out


def stage_row(name, st):
    """the figures of one stage: calls, records, CPU per call and per record"""
    calls = st.get("reads") or 0
    if name == "drainonly":
        recs, dns, cns = st.get("records"), st.get("cpu_ns"), None
    else:
        recs, dns, cns = st.get("records"), st.get("daemon_ns"), st.get("client_ns")
    if name == "none":
        dns = cns = None
    drains = st.get("drains")
    return {"reads": calls, "recs": recs or 0, "reader": per_item(st.get("reader_ns"), calls),
            "drains": drains, "d_drain": per_item(dns, drains), "d_rec": per_item(dns, recs),
            "d_call": per_item(dns, calls), "c_rec": per_item(cns, recs), "c_call": per_item(cns, calls)}


def fig(x):
    return "-" if x != x else f"{x:,.0f}"


def stage_whole(run, name):
    """the last cell of a stage: whole, with what it lost, or not measured"""
    p = stage_problems(run, name)
    if p:
        return verdict(None, p)
    st = run["stage"][name]
    lost = f"{st['dropped']:,} dropped ring-full"
    if "client_lost" in st:
        lost += f", {st['client_lost']:,} lost by the client"
    return f"whole ({lost})"


def stage_breakdown(out, run, rows):
    """before (--no-merge, one record per message) against after (merged
    records, batches), stage by stage, from the whole stages only"""
    out.append("| stage | before: --no-merge, one record per message, per record (= per call) "
               "| after: merged records, batches, per record | after, per call | from |")
    out.append("| --- | --- | --- | --- | --- |")
    n, d, t, j, pth, o = (rows[k] for k in ("none", "drainonly", "new-text", "new-json", "new-paths",
                                             "nomerge-text"))
    lines = (("emit (the reading process's own added CPU)", o["reader"] - n["reader"], None,
              t["reader"] - n["reader"], ("none", "nomerge-text", "new-text")),
             ("drain ioctl (a reader that only drains)", None, d["d_rec"], d["d_call"], ("drainonly",)),
             ("daemon: drain and relay", o["d_rec"], t["d_rec"], t["d_call"], ("nomerge-text", "new-text")),
             ("client: receive and text", o["c_rec"], t["c_rec"], t["c_call"], ("nomerge-text", "new-text")),
             ("client: receive and JSON", None, j["c_rec"], j["c_call"], ("new-json",)),
             ("client: JSON and path look-up", None, pth["c_rec"], pth["c_call"], ("new-paths",)))
    for label, before, after, after_call, used in lines:
        bad = {}
        for k in used:
            for p in stage_problems(run, k):
                bad.setdefault(p, []).append(k)
        src = verdict(None, [f"{p} ({', '.join(ks)})" for p, ks in bad.items()]) if bad else "whole stages"
        out.append(f"| {label} | {'-' if before is None else fig(before)} | {'-' if after is None else fig(after)} "
                   f"| {fig(after_call)} | {src} |")
    out.append("")


def stage_table(out, runs):
    """where the cost per record goes, on the real kernel: each process's
    CPU (kernel and user, the system calls included) per record and per
    read call, for the same busy reader; each stage says what it lost"""
    run = runs.get("icount")
    if not run:
        return
    if not run["stage"]:
        why = "; ".join(run_problems(run) + [f for f in run["failed"]["stage"]]) or "no stage lines"
        out.append(f"#### Where the cost goes, by stage (icount): not measured: {why}")
        out.append("")
        return
    out.append("#### Where the cost goes: CPU per record and per read call, by stage "
               "(icount: 1 ns = 1 instruction)")
    out.append("")
    out.append("One busy reader (4 KiB preads cycling over 16 pages) for 2 s per configuration, one vCPU; "
               "each process's CPU time (its schedstat, or CLOCK_PROCESS_CPUTIME_ID) over the round. "
               "Calls are the reads; records what reached the ring (merged: fewer). A stage whose reader, "
               "daemon or client lost records, or whose steps failed, is not measured.")
    out.append("")
    out.append("| configuration | reads | records | calls per record | records per drain | reader CPU per call "
               "| daemon (or drain-only reader) CPU per drain | per record | per call | client CPU per record "
               "| per call | what was lost |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = {k: stage_row(k, v) for k, v in run["stage"].items()}
    asked = run["asked"].get("stages") or []
    for k in list(STAGES) + sorted((set(run["stage"]) | set(asked)) - set(STAGES)):
        if k not in rows:
            out.append(f"| {STAGES.get(k, k)} | - | - | - | - | - | - | - | - | - | - | {stage_whole(run, k)} |")
            continue
        r = rows[k]
        cpr = f"{r['reads'] / r['recs']:.1f}" if r["recs"] else "-"
        rpd = f"{r['recs'] / r['drains']:.1f}" if r["drains"] else "-"
        out.append(f"| {STAGES.get(k, k)} | {r['reads']:,} | {r['recs']:,} | {cpr} | {rpd} | {fig(r['reader'])} "
                   f"| {fig(r['d_drain'])} | {fig(r['d_rec'])} | {fig(r['d_call'])} | {fig(r['c_rec'])} "
                   f"| {fig(r['c_call'])} | {stage_whole(run, k)} |")
    out.append("")
    if all(k in rows for k in STAGES):
        stage_breakdown(out, run, rows)


def big_common(run, b):
    """what voids every row of the 1 GiB read: the run, a failed step,
    the file not read whole, what the ring and the daemon lost"""
    out = run_problems(run) + failed_problems(run, "big")
    asked = run["asked"].get("big_bytes")
    if asked is None:
        out.append("the file size asked for is not known")
    elif b["bytes"] != asked:
        out.append(f"the reader read {'?' if b['bytes'] is None else format(b['bytes'], ',')} of {asked:,} bytes")
    if b["calls"] is None:
        out.append("the reader gave no call count")
    dropped = b["ring"][2]
    if dropped is None:
        out.append("what the ring dropped is not known")
    elif dropped:
        out.append(f"{dropped:,} records dropped ring-full")
    if b["client_lost"] is None:
        out.append("what the daemon dropped for its clients is not known")
    elif b["client_lost"]:
        out.append(f"{b['client_lost']:,} records dropped by the daemon for its clients")
    return out


def big_rows(b):
    """(where, records, calls in them, bytes in them) for the ring (the
    reader's OPEN aside: one record, one call), the client and the stream"""
    recs, merged, _ = b["ring"]
    rows = [("the ring (the reader's OPEN aside)", None if recs is None else recs - 1,
             None if recs is None or merged is None else recs - 1 + merged, None)]
    rows.append(("the client", *b["client"]))
    rows.append(("the stream", *b["stream"]) if b["stream_run"] else ("the stream", None, None, None))
    return rows


def big_cell(common, b, recs, calls, nbytes):
    """met: >= BIG_RATIO calls per record, every call and byte there"""
    if b["calls"] is None or recs is None or calls is None:
        return verdict(None, common + ["no figures"])
    ratio = b["calls"] / recs if recs else float("nan")
    ok = bool(recs) and ratio >= BIG_RATIO and calls <= b["calls"]
    why = list(common)
    if nbytes is not None and b["bytes"] is not None and nbytes != b["bytes"] and calls >= b["calls"]:
        ok = False
        why.append(f"{nbytes:,} of {b['bytes']:,} bytes")
    if calls > b["calls"]:
        why.append(f"{calls:,} calls in the records, {b['calls']:,} read")
    if not ok and recs and ratio < BIG_RATIO:
        why.append(f"{ratio:.1f} calls per record")
    return throughput(ok, max(b["calls"] - calls, 0), b["calls"], why, "read calls")


def big_table(out, runs):
    """a 1 GiB file read 4 KiB at a time: >= 100 times fewer records than
    calls in the ring, at the client and in the stream, bytes exact"""
    have = measured_clocks(out, runs, lambda r: r["big"], "big", "A 1 GiB file read sequentially", "no big line")
    if not have:
        return
    out.append("#### A 1 GiB file read sequentially, 4 KiB read(2)s, daemon, client and forwarder attached")
    out.append("")
    out.append("| clock | read calls | bytes read | where | records | calls in them | bytes in them "
               f"| calls per record | target: >= {BIG_RATIO}, bytes exact, nothing lost |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for c in have:
        run, b = runs[c], runs[c]["big"]
        common = big_common(run, b)
        head = (f"| {c} | {'?' if b['calls'] is None else format(b['calls'], ',')} "
                f"| {'?' if b['bytes'] is None else format(b['bytes'], ',')} ")
        for where, recs, calls, nbytes in big_rows(b):
            if where == "the stream" and not b["stream_run"]:
                out.append(f"{head}| {where} | - | - | - | - | not measured: no stream (no nats-server, "
                           f"forwarder or tnats in the VM) |")
                continue
            ratio = f"{b['calls'] / recs:,.1f}" if recs and b["calls"] is not None else "-"
            out.append(f"{head}| {where} | {'-' if recs is None else format(recs, ',')} "
                       f"| {'-' if calls is None else format(calls, ',')} "
                       f"| {'-' if nbytes is None else format(nbytes, ',')} | {ratio} "
                       f"| {big_cell(common, b, recs, calls, nbytes)} |")
    out.append("")


def latency_verdict(run, lat):
    problems = run_problems(run) + failed_problems(run, "latency")
    if lat["asked"] is None:
        problems.append("the number of samples asked for is not known")
    elif lat["n"] < lat["asked"]:
        problems.append(f"{lat['n']} of {lat['asked']} samples")
    problems += lost_problem(lat["lost"], lat["n"] + (lat["lost"] or 0))
    return (f"p50 {verdict(lat['p50'] <= LAT_P50_US, problems)}, "
            f"p99 {verdict(lat['p99'] <= LAT_P99_US, problems)}")


def latency_table(out, runs):
    have = measured_clocks(out, runs, lambda r: r["lat"], "latency", "Latency", "no samples")
    if not have:
        return
    out.append("#### Emit to client receipt (2000 reads, 0.5 ms apart)")
    out.append("")
    out.append(f"| clock | daemon | p50 | p99 | n | target p50 <= {LAT_P50_US} us, p99 <= {LAT_P99_US} us |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    for c in have:
        for k in ["new", "nomerge", "old"] + sorted(set(runs[c]["lat"]) - {"new", "nomerge", "old"}):
            if k not in runs[c]["lat"]:
                continue
            lat = runs[c]["lat"][k]
            v = latency_verdict(runs[c], lat) if k == "new" else "-"
            name = {"new": "scoutfs-notifyd", "nomerge": "scoutfs-notifyd --no-merge",
                    "old": "old daemon"}.get(k, f"scoutfs-notifyd-{k}")
            asked = f" of {lat['asked']}" if lat["asked"] is not None else ""
            out.append(f"| {c} | {name} | {lat['p50']:,.1f} us | {lat['p99']:,.1f} us | {lat['n']}{asked} | {v} |")
    out.append("")


def parse_relay(path):
    """rounds keyed (mode, records per message, clients); a FAILED round
    keyed (records per message, clients)"""
    relay = {"rounds": {}, "failed": {}, "asked": {}}
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(r"relay: rounds (\d+) records (\d+)", line)
            if m:
                relay["asked"] = {"rounds": int(m[1]), "records": int(m[2])}
            m = re.search(r"relay: FAILED round \d+ clients (\d+)(?: per (\d+))?: (.*)", line)
            if m:
                relay["failed"].setdefault((int(m[2] or 1), int(m[1])), []).append(m[3])
            m = re.search(r"relay: round \d+ (bare|daemon)(\d*) clients (\d+) records (\d+) "
                          r"per_client_rate (\d+) aggregate_rate \d+ lost (\d+)(?: received (\d+))?", line)
            if m:
                relay["rounds"].setdefault((m[1], int(m[2] or 1), int(m[3])), []).append(
                    {"rate": int(m[5]), "lost": int(m[6]), "records": int(m[4]),
                     "received": int(m[7]) if m[7] else None})
    return relay


def relay_verdict(relay, key, b, d, ratio):
    """KEY: (records per message, clients)"""
    n = key[1]
    asked = relay["asked"].get("rounds")
    failed = relay["failed"].get(key)
    problems = [f"{len(failed)} failed rounds ({failed[0]})"] if failed else []
    problems += [f"bare loop: {p}" for p in rounds_problems(len(b), asked)]
    problems += [f"daemon: {p}" for p in rounds_problems(len(d), asked)]
    short = [r for r in b if r["received"] != n * r["records"]]
    if short:
        problems.append(f"{len(short)} bare rounds delivered fewer than the {n * short[0]['records']:,} "
                        f"records sent (or did not say)")
    total = sum(n * r["records"] for r in d)
    return throughput(ratio >= 0.7 if ratio is not None else None, sum(r["lost"] for r in d), total,
                      problems, "records to the daemon's clients")


def relay_table(out, relay):
    """the daemon against the bare loop, one record per message (clients
    that ask nothing: socat's protocol) and 256 (our tools')"""
    out.append("#### Relay throughput, native (records/s delivered to each client)")
    out.append("")
    out.append("| records per message | clients | bare sendmmsg loop | scoutfs-notifyd | ratio "
               "| lost by daemon clients | target >= 70% |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    for per in RELAY_PERS:
        what = "1 (clients that ask nothing)" if per == 1 else f"{per} (clients that ask)"
        for n in RELAY_CLIENTS:
            b = relay["rounds"].get(("bare", per, n), [])
            d = relay["rounds"].get(("daemon", per, n), [])
            br = [r["rate"] for r in b]
            dr = [r["rate"] for r in d]
            ratio = med(dr) / med(br) if b and d and med(br) else None
            v = relay_verdict(relay, (per, n), b, d, ratio)
            if ratio is None:
                out.append(f"| {what} | {n} | - | - | - | - | {v} |")
                continue
            out.append(f"| {what} | {n} | {med(br):,.0f} ({min(br):,}-{max(br):,}) "
                       f"| {med(dr):,.0f} ({min(dr):,}-{max(dr):,}) "
                       f"| {ratio:.0%} | {sum(r['lost'] for r in d):,} | {v} |")
    out.append("")


def report(relay_log, vm_logs):
    """the markdown tables: vm_logs maps a clock to its console log"""
    out = []
    relay_table(out, parse_relay(relay_log))
    runs = {c: parse_vm(p) for c, p in vm_logs.items()}
    hook_tables(out, runs)
    drain_table(out, runs)
    stage_table(out, runs)
    big_table(out, runs)
    latency_table(out, runs)
    return "\n".join(out)


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: report.py RELAY_LOG [--icount LOG] [--wall LOG]")
    relay_log = args.pop(0)
    vm_logs = {}
    while args:
        opt = args.pop(0)
        if opt not in ("--icount", "--wall") or not args:
            sys.exit(f"report.py: bad argument '{opt}'")
        vm_logs[opt[2:]] = args.pop(0)
    print(report(relay_log, vm_logs))


if __name__ == "__main__":
    main()
