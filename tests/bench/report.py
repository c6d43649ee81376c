#!/usr/bin/env python3
"""Turn the `relay:` and `bench:` lines of a `make bench` run into the
tables docs/benchmarks.md shows.  Medians over the rounds, with their
spread (min to max); ratios are against the unpatched module (hook cost),
the bare sendmmsg loop (relay) or the old daemon (ring drain).  A missed
target says MISSED, never hidden; a target the spread of the rounds can't
decide says "not resolved".

    tests/bench/report.py RELAY_LOG [--icount VM_CONSOLE_LOG] [--wall VM_CONSOLE_LOG]

The VM logs are the guest consoles of the two boots: --icount with the
guest's clock following the instructions executed (the method that
decides the hook-cost targets), --wall with it following the host's
clock (the first method, kept beside it).
"""
import re
import statistics
import sys

NAMES = {"unpatched": "unpatched module", "no_reader": "patched, no reader",
         "notifyd": "patched, scoutfs-notifyd + 1 client",
         "fanotify": "patched, no reader, fanotify FAN_OPEN/FAN_ACCESS mark + reader"}
MODES = ("unpatched", "no_reader", "notifyd", "fanotify")
OPS = ("pread", "open")
OPNAME = {"pread": "4 KiB pread", "open": "open+close"}
CLOCKS = ("icount", "wall")
RATIO_MAX = 0.2
LAT_P50_US = 250
LAT_P99_US = 2000


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    """(max - min) / median: how far apart the rounds are"""
    return (max(xs) - min(xs)) / med(xs) if xs else float("nan")


def kv(text):
    """'a 1 b 2 ...' as a dict of ints (a value that is no number: None)"""
    w = text.split()
    return {k: int(v) if v.lstrip("-").isdigit() else None for k, v in zip(w[0::2], w[1::2])}


def parse_vm(path):
    run = {"hook": {}, "rounds": {}, "drain": {}, "lat": {}, "info": "", "stage": {}, "big": None}
    for line in open(path, errors="replace"):
        m = re.search(r"bench: (clock \S+ cpus \d+ rounds \d+ preads \d+ opens \d+)", line)
        if m:
            run["info"] = m[1]
        m = re.search(r"bench: round (\d+) mode (\w+) (pread_ns .*)", line)
        if m:
            vals = dict(zip(m[3].split()[0::2], m[3].split()[1::2]))
            h = run["hook"].setdefault(m[2], {})
            rd = run["rounds"].setdefault(int(m[1]), {}).setdefault(m[2], {})
            for key, val in vals.items():
                metric = key.replace("_ns", "")   # pread, open, pread_cpu, open_cpu
                h.setdefault(metric, []).append(float(val))
                rd[metric] = float(val)
        m = re.search(r"bench: drain round \d+ daemon (\w+) reads (\d+) emitted (\d+) dropped (\d+) "
                      r"client_lost (\S+) daemon_ns (\d+)(.*)", line)
        if m:
            more = kv(m[7])
            run["drain"].setdefault(m[1], []).append({
                "reads": int(m[2]), "emitted": int(m[3]), "dropped": int(m[4]),
                "client_lost": int(m[5]) if m[5].isdigit() else None, "ns": int(m[6]),
                "merged": more.get("merged") or 0, "client_ns": more.get("client_ns")})
        m = re.search(r"bench: stage ([\w-]+) (reads .*)", line)
        if m:
            run["stage"][m[1]] = kv(m[2])
        m = re.search(r"bench: big (calls .*)", line)
        if m:
            w = m[1].split()
            run["big"] = {"calls": int(w[1]), "bytes": int(w[3]),
                          "ring": w[5:8], "client": w[9:12], "stream": w[13:16]}
        m = re.search(r"bench: latency daemon (\w+) latency_us n (\d+) p50 ([\d.]+) p99 ([\d.]+)", line)
        if m:
            run["lat"][m[1]] = (int(m[2]), float(m[3]), float(m[4]))
    return run


def added(run, mode, op):
    return med(run["hook"][mode][op]) - med(run["hook"]["unpatched"][op])


def round_ratios(run, op):
    """the reader's added cost over fanotify's, round by round"""
    out = []
    for r in run["rounds"].values():
        if all(m in r for m in ("unpatched", "notifyd", "fanotify")):
            f = r["fanotify"][op] - r["unpatched"][op]
            if f > 0:
                out.append((r["notifyd"][op] - r["unpatched"][op]) / f)
    return out


def no_reader_cell(run, op):
    """met: at most 1%, with rounds that resolve 1% (spread under it)"""
    b = run["hook"]["unpatched"][op]
    a = added(run, "no_reader", op)
    s = spread(b)
    inside = "inside" if a <= s * med(b) else "outside"
    text = f"{a:+,.0f} ns ({a / med(b):+.2%}; {inside} the unpatched rounds' spread of {s:.2%})"
    if s > 0.01:
        verdict = "MISSED" if a > s * med(b) else f"not resolved: the rounds spread {s:.1%}, over 1%"
    else:
        verdict = "met" if a <= 0.01 * med(b) else "MISSED"
    return text, verdict


def reader_cell(run, op):
    a_r = added(run, "notifyd", op)
    a_f = added(run, "fanotify", op)
    ratio = a_r / a_f if a_f > 0 else float("nan")
    rr = round_ratios(run, op)
    text = (f"notifyd {a_r:+,.0f} ns, fanotify {a_f:+,.0f} ns: ratio {ratio:.2f}"
            + (f" (rounds {min(rr):.2f} to {max(rr):.2f})" if rr else ""))
    verdict = "met" if a_f > 0 and ratio <= RATIO_MAX else "MISSED"
    if rr:
        below = sum(1 for x in rr if x <= RATIO_MAX)
        verdict += f" ({below} of {len(rr)} rounds at or below {RATIO_MAX})"
    return text, verdict


def hook_table(out, run, title, metrics):
    rounds = len(run["hook"]["unpatched"][metrics[0]])
    out.append(f"#### Hook cost, {title}: ns per operation, median of {rounds} alternating rounds (min-max)")
    out.append("")
    out.append("| configuration | 4 KiB pread | vs unpatched | open+close | vs unpatched |")
    out.append("| --- | --- | --- | --- | --- |")
    base = {op: med(run["hook"]["unpatched"][op]) for op in metrics}
    for mode in MODES:
        if mode not in run["hook"]:
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


def hook_tables(out, runs):
    have = {c: runs[c] for c in CLOCKS if c in runs and "unpatched" in runs[c]["hook"]}
    if not have:
        return
    for c, run in have.items():
        if run["info"]:
            out.append(f"`{run['info']}`")
            out.append("")
        if c == "icount" and "pread_cpu" in run["hook"]["unpatched"]:
            hook_table(out, run, "icount, the benchmark's own CPU time", ("pread_cpu", "open_cpu"))
        hook_table(out, run, "icount, elapsed" if c == "icount" else "wall clock, elapsed", ("pread", "open"))

    out.append("#### Hook-cost targets")
    out.append("")
    out.append("| target | op | measured by | figures | verdict |")
    out.append("| --- | --- | --- | --- | --- |")
    for op in OPS:
        for clock, suffix, label in MEASURES:
            run = have.get(clock)
            if suffix or not run or "no_reader" not in run["hook"]:
                continue
            text, verdict = no_reader_cell(run, op)
            out.append(f"| no reader: added cost at most 1%, decided by rounds that spread less | {op} "
                       f"| {label} | {text} | {verdict} |")
        for clock, suffix, label in MEASURES:
            run = have.get(clock)
            if not run or op + suffix not in run["hook"]["unpatched"]:
                continue
            if "notifyd" not in run["hook"] or "fanotify" not in run["hook"]:
                continue
            text, verdict = reader_cell(run, op + suffix)
            out.append(f"| reader: added cost <= {RATIO_MAX} of fanotify's | {op} | {label} | {text} | {verdict} |")
    out.append("")

    out.append("#### Resolution: how far apart the rounds of one run are")
    out.append("")
    out.append("| method | rounds | unpatched pread spread | unpatched open+close spread "
               "| reader/fanotify ratio by round, pread | by round, open+close |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    for clock, suffix, label in MEASURES:
        run = have.get(clock)
        if not run or "pread" + suffix not in run["hook"]["unpatched"]:
            continue
        u = run["hook"]["unpatched"]
        rr = [round_ratios(run, op + suffix) for op in OPS]
        cells = [f"{min(x):.2f} to {max(x):.2f}" if x else "-" for x in rr]
        out.append(f"| {label} | {len(u['pread'])} | {spread(u['pread' + suffix]):.2%} "
                   f"| {spread(u['open' + suffix]):.2%} | " + " | ".join(cells) + " |")
    out.append("")


def per(ns, n):
    """ns per item, in instructions under icount (shift 0: 1 ns each)"""
    return ns / n if n else float("nan")


def stage_table(out, runs):
    """where the cost per record goes, on the real kernel: each process's
    CPU (kernel and user, the system calls included) per record and per
    read call, for the same busy reader"""
    run = runs.get("icount")
    if not run or not run["stage"]:
        return
    st = run["stage"]
    out.append("#### Where the cost goes: CPU per record and per read call, by stage (icount: 1 ns = 1 instruction)")
    out.append("")
    out.append("One busy reader (4 KiB preads cycling over 16 pages) for 2 s per configuration, one vCPU; "
               "each process's CPU time (its schedstat, or CLOCK_PROCESS_CPUTIME_ID) over the round. "
               "Calls are the reads; records what reached the ring (merged: fewer).")
    out.append("")
    out.append("| configuration | reads | records | calls per record | records per drain | reader CPU per call | "
               "daemon (or drain-only reader) CPU per drain | per record | per call | client CPU per record "
               "| per call |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    names = {"none": "no reader", "drainonly": "a reader that only drains (merged records, a busy daemon's batched waits)",
             "new-text": "scoutfs-notifyd + notify-watch, text, no paths (batches)",
             "new-paths": "scoutfs-notifyd + notify-watch --json with paths",
             "new-json": "scoutfs-notifyd + notify-watch --json, no paths",
             "nomerge-text": "scoutfs-notifyd --no-merge + notify-watch --one-per-message, text, no paths"}
    rows = {}
    for k, v in st.items():
        recs = v.get("records")
        calls = v.get("reads") or 0
        if k == "drainonly":
            recs, dns, cns = v.get("records"), v.get("cpu_ns"), None
        else:
            dns, cns = v.get("daemon_ns"), v.get("client_ns")
        drains = v.get("drains")
        rows[k] = {"reads": calls, "recs": recs or 0, "reader": per(v.get("reader_ns") or 0, calls),
                   "drains": drains, "d_drain": per(dns or 0, drains) if dns and drains else float("nan"),
                   "d_rec": per(dns or 0, recs) if dns else float("nan"),
                   "d_call": per(dns or 0, calls) if dns else float("nan"),
                   "c_rec": per(cns or 0, recs) if cns else float("nan"),
                   "c_call": per(cns or 0, calls) if cns else float("nan")}
    for k in ("none", "drainonly", "new-text", "new-json", "new-paths", "nomerge-text"):
        if k not in rows:
            continue
        r = rows[k]
        cpr = f"{r['reads'] / r['recs']:.1f}" if r["recs"] else "-"

        def f(x):
            return "-" if x != x else f"{x:,.0f}"
        rpd = f"{r['recs'] / r['drains']:.1f}" if r["drains"] else "-"
        out.append(f"| {names[k]} | {r['reads']:,} | {r['recs']:,} | {cpr} | {rpd} | {f(r['reader'])} | "
                   f"{f(r['d_drain'])} | {f(r['d_rec'])} | {f(r['d_call'])} | {f(r['c_rec'])} | {f(r['c_call'])} |")
    out.append("")
    if all(k in rows for k in ("none", "drainonly", "new-text", "new-json", "new-paths", "nomerge-text")):
        n, d, t, j, pth, o = (rows[k] for k in ("none", "drainonly", "new-text", "new-json", "new-paths",
                                                 "nomerge-text"))
        out.append("| stage | before: --no-merge, one record per message, per record (= per call) "
                   "| after: merged records, batches, per record | after, per call |")
        out.append("| --- | --- | --- | --- |")
        emit_b = o["reader"] - n["reader"]
        emit_a = t["reader"] - n["reader"]
        out.append(f"| emit (the reading process's own added CPU) | {emit_b:,.0f} | - | {emit_a:,.0f} |")
        out.append(f"| drain ioctl (a reader that only drains) | - | {d['d_rec']:,.0f} | {d['d_call']:,.0f} |")
        out.append(f"| daemon: drain and relay | {o['d_rec']:,.0f} | {t['d_rec']:,.0f} | {t['d_call']:,.0f} |")
        out.append(f"| client: receive and text | {o['c_rec']:,.0f} | {t['c_rec']:,.0f} | {t['c_call']:,.0f} |")
        out.append(f"| client: receive and JSON | - | {j['c_rec']:,.0f} | {j['c_call']:,.0f} |")
        out.append(f"| client: JSON and path look-up | - | {pth['c_rec']:,.0f} | {pth['c_call']:,.0f} |")
        out.append("")


def big_table(out, runs):
    """a 1 GiB file read 4 KiB at a time: >= 100 times fewer records than
    calls in the ring, at the client and in the stream, bytes exact"""
    have = [c for c in CLOCKS if c in runs and runs[c]["big"]]
    if not have:
        return
    out.append("#### A 1 GiB file read sequentially, 4 KiB read(2)s, daemon, client and forwarder attached")
    out.append("")
    out.append("| clock | read calls | bytes read | where | records | calls in them | bytes in them "
               "| calls per record | target: >= 100, bytes exact |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for c in have:
        b = runs[c]["big"]
        ring = b["ring"]
        rows = []
        if ring[0].isdigit():
            # the counters: records stored, calls merged, dropped; the
            # reader's OPEN (one record, one call) aside
            recs, merged, dropped = (int(x) for x in ring)
            rows.append(("the ring (the reader's OPEN aside)", recs - 1, recs - 1 + merged, None, dropped))
        for where in ("client", "stream"):
            w = b[where]
            if w[0].isdigit():
                rows.append((f"the {where}", int(w[0]), int(w[1]), int(w[2]), 0))
            else:
                rows.append((f"the {where}", None, None, None, 0))
        for where, recs, calls, nbytes, dropped in rows:
            if recs is None:
                out.append(f"| {c} | {b['calls']:,} | {b['bytes']:,} | {where} | - | - | - | - "
                           f"| MISSED: not measured (no NATS in the VM?) |")
                continue
            ratio = b["calls"] / recs if recs else float("nan")
            bad = []
            if not recs or ratio < 100:
                bad.append(f"{ratio:.1f} calls per record")
            if calls != b["calls"]:
                bad.append(f"{calls:,} of {b['calls']:,} calls")
            if nbytes is not None and nbytes != b["bytes"]:
                bad.append(f"{nbytes:,} of {b['bytes']:,} bytes")
            if dropped:
                bad.append(f"{dropped:,} dropped")
            verdict = "met" if not bad else "MISSED: " + ", ".join(bad)
            out.append(f"| {c} | {b['calls']:,} | {b['bytes']:,} | {where} | {recs:,} | {calls:,} "
                       f"| {'-' if nbytes is None else f'{nbytes:,}'} | {ratio:,.1f} | {verdict} |")
    out.append("")


def drain_table(out, runs):
    have = [c for c in CLOCKS if c in runs and runs[c]["drain"]]
    if not have:
        return
    out.append("#### Ring drain: a busy reader and a CPU hog sharing the vCPUs with the daemon and one client")
    out.append("")
    out.append("Rounds of 2 s alternating the daemons; sums over the rounds, daemon CPU (its schedstat run "
               "time) per record as the median of the rounds (min-max).")
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
            dropped = sum(r["dropped"] for r in v)
            lost = [r["client_lost"] for r in v]
            lost_s = f"{sum(lost):,}" if None not in lost else "?"
            cpu = f"{med(per[k]):.2f} us ({min(per[k]):.2f}-{max(per[k]):.2f})" if per[k] else "-"
            cpc = f"{med(pcall[k]):.3f} us" if pcall[k] else "-"
            cl = [r["client_ns"] / r["emitted"] / 1000 for r in v if r["emitted"] and r["client_ns"]]
            cls = f"{med(cl):.2f} us" if cl else "-"
            vs = vsc = verdict = "-"
            if k != "old" and per.get("old") and per[k]:
                vs = f"{med(per[k]) / med(per['old']):.2f}"
                vsc = f"{med(pcall[k]) / med(pcall['old']):.2f}"
            if k in ("new", "nomerge"):
                verdict = "0 drops: " + ("met" if dropped == 0 else f"MISSED ({dropped:,} dropped)")
                if per.get("old") and per[k]:
                    ratio = med(per[k]) / med(per["old"])
                    verdict += "; CPU per record: " + ("met" if ratio <= 0.5 else f"MISSED ({ratio:.2f})")
                else:
                    verdict += "; CPU: not measured (no old daemon)"
                if None in lost or sum(lost):
                    verdict += f"; the client lost {lost_s} records"
            name = {"new": "scoutfs-notifyd (merged records, a batched client)",
                    "nomerge": "scoutfs-notifyd --no-merge (a one-record client)",
                    "old": "old daemon (1 ms coalescing)"}.get(k, f"scoutfs-notifyd-{k}")
            out.append(f"| {c} | {name} | {len(v)} | {sum(r['reads'] for r in v):,} "
                       f"| {sum(r['emitted'] for r in v):,} | {sum(r['merged'] for r in v):,} | {dropped:,} "
                       f"| {lost_s} | {cpu} | {vs} | {cpc} | {vsc} | {cls} | {verdict} |")
    out.append("")


def latency_table(out, runs):
    have = [c for c in CLOCKS if c in runs and runs[c]["lat"]]
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
            n, p50, p99 = runs[c]["lat"][k]
            verdict = "-"
            if k == "new":
                verdict = (f"p50 {'met' if p50 <= LAT_P50_US else 'MISSED'}, "
                           f"p99 {'met' if p99 <= LAT_P99_US else 'MISSED'}")
            name = {"new": "scoutfs-notifyd", "nomerge": "scoutfs-notifyd --no-merge",
                    "old": "old daemon"}.get(k, f"scoutfs-notifyd-{k}")
            out.append(f"| {c} | {name} | {p50:,.1f} us | {p99:,.1f} us | {n} | {verdict} |")
    out.append("")


def relay_table(out, relay_log):
    """the daemon against the bare loop, one record per message and 256:
    met only when the rate is >= 70% and no client lost a record"""
    relay = {}
    for line in open(relay_log):
        m = re.search(r"relay: round \d+ (bare|daemon)(\d*) clients (\d+) records \d+ "
                      r"per_client_rate (\d+) aggregate_rate \d+ lost (\d+)", line)
        if m:
            relay.setdefault((m[1], int(m[2] or 1), int(m[3])), []).append((int(m[4]), int(m[5])))
    out.append("#### Relay throughput, native (records/s delivered to each client)")
    out.append("")
    out.append("| records per message | clients | bare sendmmsg loop | scoutfs-notifyd | ratio "
               "| records lost by daemon clients | target >= 70%, nothing lost |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    for per in (1, 256):
        for n in (1, 4, 16):
            b = [r for r, _ in relay.get(("bare", per, n), [])]
            d = [r for r, _ in relay.get(("daemon", per, n), [])]
            lost = sum(x for _, x in relay.get(("daemon", per, n), []))
            what = "1 (clients that ask nothing)" if per == 1 else f"{per} (clients that ask)"
            if not b or not d:
                out.append(f"| {what} | {n} | - | - | - | - | not measured |")
                continue
            ratio = med(d) / med(b)
            verdict = "met" if ratio >= 0.7 else "MISSED"
            if lost:
                verdict = f"MISSED: {lost:,} records lost" + ("" if ratio >= 0.7 else ", rate under 70%")
            out.append(f"| {what} | {n} | {med(b):,.0f} ({min(b):,}-{max(b):,}) "
                       f"| {med(d):,.0f} ({min(d):,}-{max(d):,}) | {ratio:.0%} | {lost:,} | {verdict} |")
    out.append("")


def main():
    out = []
    args = sys.argv[1:]
    relay_log = args.pop(0)
    runs = {}
    while args:
        opt = args.pop(0)
        if opt not in ("--icount", "--wall") or not args:
            sys.exit(f"report.py: bad argument '{opt}'")
        runs[opt[2:]] = parse_vm(args.pop(0))

    relay_table(out, relay_log)

    hook_tables(out, runs)
    drain_table(out, runs)
    stage_table(out, runs)
    big_table(out, runs)
    latency_table(out, runs)
    print("\n".join(out))


main()
