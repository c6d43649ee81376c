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


def parse_vm(path):
    run = {"hook": {}, "rounds": {}, "drain": {}, "lat": {}, "info": ""}
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
                      r"client_lost (\S+) daemon_ns (\d+)", line)
        if m:
            run["drain"].setdefault(m[1], []).append({
                "reads": int(m[2]), "emitted": int(m[3]), "dropped": int(m[4]),
                "client_lost": int(m[5]) if m[5].isdigit() else None, "ns": int(m[6])})
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


def drain_table(out, runs):
    have = [c for c in CLOCKS if c in runs and runs[c]["drain"]]
    if not have:
        return
    out.append("#### Ring drain: a busy reader and a CPU hog sharing the vCPUs with the daemon and one client")
    out.append("")
    out.append("Rounds of 2 s alternating the daemons; sums over the rounds, daemon CPU (its schedstat run "
               "time) per record as the median of the rounds (min-max).")
    out.append("")
    out.append("| clock | daemon | rounds | reads | records emitted | dropped ring-full | lost by the client "
               "| daemon CPU per record | vs old | target: 0 drops, <= 0.5 of old |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for c in have:
        d = runs[c]["drain"]
        per = {k: [r["ns"] / r["emitted"] / 1000 for r in v if r["emitted"]] for k, v in d.items()}
        for k in ["new", "old"] + sorted(set(d) - {"new", "old"}):
            if k not in d:
                continue
            v = d[k]
            dropped = sum(r["dropped"] for r in v)
            lost = [r["client_lost"] for r in v]
            lost_s = f"{sum(lost):,}" if None not in lost else "?"
            cpu = f"{med(per[k]):.2f} us ({min(per[k]):.2f}-{max(per[k]):.2f})" if per[k] else "-"
            vs = verdict = "-"
            if k not in ("new", "old") and per.get("old") and per[k]:
                vs = f"{med(per[k]) / med(per['old']):.2f}"
            if k == "new":
                verdict = "0 drops: " + ("met" if dropped == 0 else "MISSED")
                if per.get("old") and per[k]:
                    ratio = med(per["new"]) / med(per["old"])
                    vs = f"{ratio:.2f}"
                    verdict += "; CPU: " + ("met" if ratio <= 0.5 else "MISSED")
                else:
                    verdict += "; CPU: not measured (no old daemon)"
            name = {"new": "scoutfs-notifyd (batched reads)",
                    "old": "old daemon (1 ms coalescing)"}.get(k, f"scoutfs-notifyd-{k}")
            out.append(f"| {c} | {name} | {len(v)} | {sum(r['reads'] for r in v):,} "
                       f"| {sum(r['emitted'] for r in v):,} | {dropped:,} | {lost_s} | {cpu} | {vs} | {verdict} |")
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
        for k in ["new", "old"] + sorted(set(runs[c]["lat"]) - {"new", "old"}):
            if k not in runs[c]["lat"]:
                continue
            n, p50, p99 = runs[c]["lat"][k]
            verdict = "-"
            if k == "new":
                verdict = (f"p50 {'met' if p50 <= LAT_P50_US else 'MISSED'}, "
                           f"p99 {'met' if p99 <= LAT_P99_US else 'MISSED'}")
            name = {"new": "scoutfs-notifyd", "old": "old daemon"}.get(k, f"scoutfs-notifyd-{k}")
            out.append(f"| {c} | {name} | {p50:,.1f} us | {p99:,.1f} us | {n} | {verdict} |")
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

    relay = {}
    for line in open(relay_log):
        m = re.search(r"relay: round \d+ (bare|daemon) clients (\d+) records \d+ "
                      r"per_client_rate (\d+) aggregate_rate \d+ lost (\d+)", line)
        if m:
            relay.setdefault((m[1], int(m[2])), []).append((int(m[3]), int(m[4])))
    out.append("#### Relay throughput, native (records/s delivered to each client)")
    out.append("")
    out.append("| clients | bare sendmmsg loop | scoutfs-notifyd | ratio | lost by daemon clients | target >= 70% |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    for n in (1, 4, 16):
        b = [r for r, _ in relay.get(("bare", n), [])]
        d = [r for r, _ in relay.get(("daemon", n), [])]
        lost = sum(l for _, l in relay.get(("daemon", n), []))
        if not b or not d:
            out.append(f"| {n} | - | - | - | - | not measured |")
            continue
        ratio = med(d) / med(b)
        out.append(f"| {n} | {med(b):,.0f} ({min(b):,}-{max(b):,}) | {med(d):,.0f} ({min(d):,}-{max(d):,}) "
                   f"| {ratio:.0%} | {lost} | {'met' if ratio >= 0.7 else 'MISSED'} |")
    out.append("")

    hook_tables(out, runs)
    drain_table(out, runs)
    latency_table(out, runs)
    print("\n".join(out))


main()
