#!/usr/bin/env python3
"""Turn the `relay:` and `bench:` lines of a `make bench` run into the
tables docs/benchmarks.md shows.  Medians over the rounds, with their
spread (min to max); ratios are against the unpatched module (hook cost),
the bare sendmmsg loop (relay) or the old daemon (ring drain).  A missed
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
            "failed": {"hook": [], "drain": [], "latency": []}, "harness": [], "closing": None}


def parse_line(run, line):
    m = re.search(r"bench: (clock \S+ cpus \d+ rounds \d+ preads \d+ opens \d+)(.*)", line)
    if m:
        run["info"] = m[1]
        run["asked"] = {k: int(v) for k, v in re.findall(r"\b(rounds|preads|opens|drain_rounds|lat_n) (\d+)",
                                                          m[1] + m[2])}
        return
    m = re.search(r"bench: FAILED (hook|drain|latency)\b(.*)", line)
    if m:
        run["failed"][m[1]].append(f"FAILED {m[1]}{m[2]}")
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
            "ns": num(v.get("daemon_ns", "0")) or 0})
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


def hook_tables(out, runs):
    have = {c: runs[c] for c in CLOCKS if c in runs and runs[c]["hook"].get("unpatched", {}).get("pread")}
    for c in CLOCKS:
        if c in runs and c not in have:
            why = "; ".join(run_problems(runs[c]) + failed_problems(runs[c], "hook")) or "no rounds"
            out.append(f"#### Hook cost, {c}: not measured: {why}")
            out.append("")
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


def drain_verdict(run, d):
    """the series' daemon: 0 ring-full drops, CPU per record <= 0.5 of the old daemon's"""
    new = d["new"]
    emitted = sum(r["emitted"] for r in new)
    dropped = sum(r["dropped"] for r in new)
    lost = [r["client_lost"] for r in new]
    client = lost_problem(None if None in lost else sum(lost), emitted, "records by the client")
    problems = drain_problems(run, new)
    v = "0 drops: " + verdict(dropped == 0, problems + client)
    per = {k: [r["ns"] / r["emitted"] / 1000 for r in v_ if r["emitted"]] for k, v_ in d.items()}
    if not (d.get("old") and per["new"] and per["old"]):
        return None, v + "; CPU: not measured (no old daemon)"
    ratio = med(per["new"]) / med(per["old"])
    old = d["old"]
    olost = [r["client_lost"] for r in old]
    oproblems = [f"old daemon: {p}" for p in drain_problems(run, old) + lost_problem(
        None if None in olost else sum(olost), sum(r["emitted"] for r in old), "records by the client")]
    return ratio, v + "; CPU: " + verdict(ratio <= 0.5, problems + client + oproblems)


def drain_table(out, runs):
    have = [c for c in CLOCKS if c in runs and runs[c]["drain"]]
    for c in CLOCKS:
        if c in runs and c not in have:
            why = "; ".join(run_problems(runs[c]) + failed_problems(runs[c], "drain")) or "no rounds"
            out.append(f"#### Ring drain, {c}: not measured: {why}")
            out.append("")
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
            lost = [r["client_lost"] for r in v]
            lost_s = f"{sum(lost):,}" if None not in lost else "?"
            cpu = f"{med(per[k]):.2f} us ({min(per[k]):.2f}-{max(per[k]):.2f})" if per[k] else "-"
            vs = v_text = "-"
            if k not in ("new", "old") and per.get("old") and per[k]:
                vs = f"{med(per[k]) / med(per['old']):.2f}"
            if k == "new":
                ratio, v_text = drain_verdict(runs[c], d)
                vs = f"{ratio:.2f}" if ratio is not None else "-"
            name = {"new": "scoutfs-notifyd (batched reads)",
                    "old": "old daemon (1 ms coalescing)"}.get(k, f"scoutfs-notifyd-{k}")
            out.append(f"| {c} | {name} | {len(v)} | {sum(r['reads'] for r in v):,} "
                       f"| {sum(r['emitted'] for r in v):,} | {sum(r['dropped'] for r in v):,} | {lost_s} "
                       f"| {cpu} | {vs} | {v_text} |")
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
    have = [c for c in CLOCKS if c in runs and runs[c]["lat"]]
    for c in CLOCKS:
        if c in runs and c not in have:
            why = "; ".join(run_problems(runs[c]) + failed_problems(runs[c], "latency")) or "no samples"
            out.append(f"#### Latency, {c}: not measured: {why}")
            out.append("")
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
            lat = runs[c]["lat"][k]
            v = latency_verdict(runs[c], lat) if k == "new" else "-"
            name = {"new": "scoutfs-notifyd", "old": "old daemon"}.get(k, f"scoutfs-notifyd-{k}")
            asked = f" of {lat['asked']}" if lat["asked"] is not None else ""
            out.append(f"| {c} | {name} | {lat['p50']:,.1f} us | {lat['p99']:,.1f} us | {lat['n']}{asked} | {v} |")
    out.append("")


def parse_relay(path):
    relay = {"rounds": {}, "failed": {}, "asked": {}}
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(r"relay: rounds (\d+) records (\d+)", line)
            if m:
                relay["asked"] = {"rounds": int(m[1]), "records": int(m[2])}
            m = re.search(r"relay: FAILED round \d+ clients (\d+): (.*)", line)
            if m:
                relay["failed"].setdefault(int(m[1]), []).append(m[2])
            m = re.search(r"relay: round \d+ (bare|daemon) clients (\d+) records (\d+) "
                          r"per_client_rate (\d+) aggregate_rate \d+ lost (\d+)(?: received (\d+))?", line)
            if m:
                relay["rounds"].setdefault((m[1], int(m[2])), []).append(
                    {"rate": int(m[4]), "lost": int(m[5]), "records": int(m[3]),
                     "received": int(m[6]) if m[6] else None})
    return relay


def relay_verdict(relay, n, b, d, ratio):
    asked = relay["asked"].get("rounds")
    problems = [f"{len(relay['failed'][n])} failed rounds ({relay['failed'][n][0]})"] if relay["failed"].get(n) else []
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
    out.append("#### Relay throughput, native (records/s delivered to each client)")
    out.append("")
    out.append("| clients | bare sendmmsg loop | scoutfs-notifyd | ratio | lost by daemon clients | target >= 70% |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    for n in RELAY_CLIENTS:
        b = relay["rounds"].get(("bare", n), [])
        d = relay["rounds"].get(("daemon", n), [])
        br = [r["rate"] for r in b]
        dr = [r["rate"] for r in d]
        ratio = med(dr) / med(br) if b and d and med(br) else None
        v = relay_verdict(relay, n, b, d, ratio)
        if ratio is None:
            out.append(f"| {n} | - | - | - | - | {v} |")
            continue
        out.append(f"| {n} | {med(br):,.0f} ({min(br):,}-{max(br):,}) | {med(dr):,.0f} ({min(dr):,}-{max(dr):,}) "
                   f"| {ratio:.0%} | {sum(r['lost'] for r in d):,} | {v} |")
    out.append("")


def report(relay_log, vm_logs):
    """the markdown tables: vm_logs maps a clock to its console log"""
    out = []
    relay_table(out, parse_relay(relay_log))
    runs = {c: parse_vm(p) for c, p in vm_logs.items()}
    hook_tables(out, runs)
    drain_table(out, runs)
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
