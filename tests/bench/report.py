#!/usr/bin/env python3
"""Turn the `relay:` and `bench:` lines of a `make bench` run into the
table docs/benchmarks.md shows.  Medians over the rounds, with their spread
(min to max); ratios are against the unpatched module (hook cost) or the
bare sendmmsg loop (relay).  A missed target says MISSED, never hidden.

    tests/bench/report.py RELAY_LOG [VM_CONSOLE_LOG]
"""
import re
import statistics
import sys


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    out = []
    relay = {}
    for line in open(sys.argv[1]):
        m = re.search(r"relay: round \d+ (bare|daemon) clients (\d+) records \d+ "
                      r"per_client_rate (\d+) aggregate_rate \d+ lost (\d+)", line)
        if m:
            relay.setdefault((m[1], int(m[2])), []).append((int(m[3]), int(m[4])))
    out.append("### Relay throughput, native (records/s delivered to each client)")
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

    if len(sys.argv) > 2:
        hook = {}
        drain = lat = None
        for line in open(sys.argv[2], errors="replace"):
            m = re.search(r"bench: round \d+ mode (\w+) pread_ns ([\d.]+) open_ns ([\d.]+)", line)
            if m:
                hook.setdefault(m[1], {"pread": [], "open": []})
                hook[m[1]]["pread"].append(float(m[2]))
                hook[m[1]]["open"].append(float(m[3]))
            m = re.search(r"bench: drain reads (\d+) emitted (\d+) dropped (\d+) daemon_ticks (\d+) hz (\d+)", line)
            if m:
                drain = [int(x) for x in m.groups()]
            m = re.search(r"latency_us n (\d+) p50 ([\d.]+) p99 ([\d.]+)", line)
            if m:
                lat = m.groups()
        if "unpatched" in hook:
            rounds = len(hook["unpatched"]["pread"])
            out.append(f"### Hook cost in the VM (ns per operation, median of {rounds} alternating rounds, min-max)")
            out.append("")
            out.append("| configuration | 4 KiB pread | vs unpatched | open+close | vs unpatched |")
            out.append("| --- | --- | --- | --- | --- |")
            base = {op: med(hook["unpatched"][op]) for op in ("pread", "open")}
            names = {"unpatched": "unpatched module", "no_reader": "patched, no reader",
                     "notifyd": "patched, scoutfs-notifyd + 1 client",
                     "fanotify": "patched, no reader, fanotify FAN_OPEN/FAN_ACCESS mark + reader"}
            for mode in ("unpatched", "no_reader", "notifyd", "fanotify"):
                if mode not in hook:
                    continue
                cells = []
                for op in ("pread", "open"):
                    xs = hook[mode][op]
                    cells.append(f"{med(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})")
                    cells.append(f"{med(xs) / base[op]:.3f}")
                out.append(f"| {names[mode]} | " + " | ".join(cells) + " |")
            out.append("")
            out.append("| target | op | measured | verdict |")
            out.append("| --- | --- | --- | --- |")
            for op in ("pread", "open"):
                b = hook["unpatched"][op]
                if "no_reader" in hook:
                    added = med(hook["no_reader"][op]) - med(b)
                    spread = max(b) - min(b)
                    if added <= 0.01 * med(b):
                        verdict = "met"
                    elif added <= spread:
                        verdict = f"not resolved: within the unpatched spread ({spread / med(b):.0%}), above 1%"
                    else:
                        verdict = "MISSED"
                    out.append(f"| no reader: added cost within the spread, at most 1% | {op} | "
                               f"{added:+,.0f} ns ({added / med(b):+.1%}; unpatched spread {spread:,.0f} ns) | "
                               f"{verdict} |")
                if "notifyd" in hook and "fanotify" in hook:
                    a_r = med(hook["notifyd"][op]) - med(b)
                    a_f = med(hook["fanotify"][op]) - med(b)
                    ok = a_f > 0 and a_r <= a_f / 5
                    out.append(f"| reader: added cost <= 1/5 of fanotify's | {op} | "
                               f"notifyd {a_r:+,.0f} ns, fanotify {a_f:+,.0f} ns "
                               f"(ratio {a_r / a_f if a_f else float('nan'):.2f}) | {'met' if ok else 'MISSED'} |")
            out.append("")
        if drain:
            reads, emitted, dropped, ticks, hz = drain
            share = dropped / (emitted + dropped) if emitted + dropped else 0
            cpu = ticks / hz / emitted * 1e6 if emitted else float("nan")
            out.append("### Ring drain in the VM (one process reading as fast as it can for 5 s, daemon + 1 client)")
            out.append("")
            out.append("| reads | records emitted | dropped ring-full | share lost | daemon CPU per record | target 0 drops |")
            out.append("| --- | --- | --- | --- | --- | --- |")
            out.append(f"| {reads:,} | {emitted:,} | {dropped:,} | {share:.2%} | {cpu:.1f} us | "
                       f"{'met' if dropped == 0 else 'MISSED'} |")
            out.append("")
        if lat:
            out.append("### Emit to client receipt in the VM (2000 reads, 0.5 ms apart)")
            out.append("")
            out.append(f"p50 {lat[1]} us, p99 {lat[2]} us (n {lat[0]})")
            out.append("")
    print("\n".join(out))


main()
