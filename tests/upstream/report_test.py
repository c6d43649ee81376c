#!/usr/bin/env python3
"""Tier "upstream-report": the verdict of tests/upstream/report.py.

The upstream-suite run takes an hour in the VM, so its comparison logic
is tested here on console logs made up in the guest's format: identical
passes give `identical` and exit 0; every way two passes can differ (a
result, a test missing, a timeout, more kernel warnings, a reader's
daemon dying or receiving nothing, the guest not finishing, an --only
run) gives `DIFFERENT`, a non-zero exit and a closing count with the
failures in it.  Ends with `upstream-report: N passed, N failed`.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import check, finish  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT = os.path.join(HERE, "report.py")
EXCLUDED = os.path.join(HERE, "excluded.txt")



TESTS = [("alpha", "3s"), ("beta", "11s"), ("gamma", "40s")]


def console(results=None, warn=(0, 0), readers=None, done=True, timeout=None, summary=True,
            extra=()):
    """a guest console log: results[pass][test] overrides 'passed'"""
    results = results or {}
    readers = readers if readers is not None else [
        {"up": True, "attaches": 3, "lines": 120, "gaps": 0}] * 2
    out = ["upstream: guest up, kernel 5.10.0-32-amd64, 2 cpus, 11 GiB"]
    for i, name in enumerate(("base", "notify")):
        out.append(f"upstream: {name}: scoutfs v1.30, 7 tests excluded")
        res = {t: results.get(name, {}).get(t, "passed") for t, _ in TESTS}
        res = {t: r for t, r in res.items() if r is not None}
        if name == "notify":
            for n, r in enumerate(readers):
                out.append(f"upstream: notify reader {n} attached to /mnt/test.{n}")
        # run-tests.sh's own lines, each result followed by the guest's
        # parsed copy of it
        for t, secs in TESTS:
            r = res.get(t)
            if r == "passed":
                out.append(f"  {t}                   3s  passed: {secs}")
                out.append(f"upstream: {name} {t} passed {secs}")
            elif r:
                out.append(f"  {t}                   3s  [ {r}: it went wrong ]")
                out.append(f"upstream: {name} {t} {r} - it went wrong")
        if summary and timeout != name:
            n = {k: sum(1 for r in res.values() if r == k) for k in ("passed", "failed", "skipped")}
            out.append(f"[== all tests run: {n['passed']} passed, {n['skipped']} skipped, "
                       f"0 skipped (permitted), {n['failed']} failed ==]")
        out.append(f"upstream: {name}: run-tests.sh exited {124 if timeout == name else 0} after 100s")
        if timeout == name:
            out.append(f"upstream: {name}: TIMED OUT after 2400s")
        if name == "notify":
            for n, r in enumerate(readers):
                state = (f"was up to the end, {r['attaches']} attaches, each ended cleanly"
                         if r["up"] else f"EXITED EARLY 1 of {r['attaches']} attaches")
                out.append(f"upstream: notify reader {n}: daemon {state}")
                out.append(f"upstream: notify reader {n}: client received {r['lines']} lines, "
                           f"{r['gaps']} gap lines")
                out.append(f"upstream: notify reader {n}: the daemon relayed {r['lines']} records "
                           f"to it, lost 0")
        out.append(f"upstream: {name} kernel log: {warn[i]} warning lines")
    out += extra
    if done:
        out.append("upstream: guest done")
    return "\n".join(out) + "\n"


def run(text, only=None):
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        args = [sys.executable, REPORT, "--console", path, "--passes", "base notify",
                "--base", "v1.30", "--excluded", EXCLUDED, "--nseq", "65"]
        if only:
            args += ["--only", only]
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    lines = p.stdout.strip().splitlines()
    verdict = next((l for l in lines if l.startswith("upstream-suite: identical")
                    or l.startswith("upstream-suite: DIFFERENT")), "")
    m = re.match(r"^upstream-suite: (\d+) passed, (\d+) failed$", lines[-1] if lines else "")
    counts = (int(m.group(1)), int(m.group(2))) if m else None
    return p.returncode, verdict, counts, p.stdout


def expect_different(name, text, why, counts=None, only=None):
    rc, verdict, got, out = run(text, only)
    check(rc != 0 and verdict.startswith("upstream-suite: DIFFERENT") and why in verdict,
          f"{name}: DIFFERENT, naming '{why}' (exit {rc}: {verdict})")
    check(got is not None and got[1] >= 1 and (counts is None or got == counts),
          f"{name}: the closing line counts the failure {got}"
          + (f", expected {counts}" if counts else ""))
    return out


def main():
    rc, verdict, counts, out = run(console())
    check(rc == 0 and verdict.startswith("upstream-suite: identical"),
          f"identical passes: identical, exit 0 ({verdict})")
    check(counts == (3, 0), f"identical passes: closing line 3 passed, 0 failed ({counts})")
    check("| beta | passed 11s | passed 11s |" in out, "the per-test table has both passes")
    check("| base | v1.30 unpatched" in out and "| notify | v1.30 + series" in out,
          "the summary table has a row per pass")

    # a test that differs, whichever way round
    out = expect_different("a test fails only with the series",
                           console({"notify": {"beta": "failed"}}), "1 tests differ", (2, 1))
    check("- beta: base passed" in out, "the differing test is listed")
    expect_different("a test fails only without the series",
                     console({"base": {"gamma": "failed"}}), "1 tests differ", (2, 1))
    expect_different("a test skipped only with the series",
                     console({"notify": {"alpha": "skipped"}}), "1 tests differ", (2, 1))
    expect_different("a test missing from the notify pass",
                     console({"notify": {"gamma": None}}), "1 tests differ")
    # both failing the same way is the same result
    rc, verdict, counts, _ = run(console({"base": {"beta": "failed"}, "notify": {"beta": "failed"}}))
    check(rc == 0 and verdict.startswith("upstream-suite: identical") and counts == (3, 0),
          f"the same failure in both passes is an identical result ({verdict})")

    expect_different("more kernel warnings with the series", console(warn=(0, 2)),
                     "notify has 2 kernel warning lines")
    rc, verdict, _, _ = run(console(warn=(3, 3)))
    check(rc == 0, f"as many warnings in both passes: identical ({verdict})")
    expect_different("a pass timed out", console(timeout="notify"), "notify timed out")
    expect_different("the guest did not finish", console(done=False), "the guest did not finish")
    expect_different("a reader's daemon exited early",
                     console(readers=[{"up": False, "attaches": 2, "lines": 5, "gaps": 0}]),
                     "reader 0's daemon did not stay up")
    expect_different("a reader's client received nothing",
                     console(readers=[{"up": True, "attaches": 1, "lines": 0, "gaps": 0}]),
                     "reader 0's client received nothing")
    expect_different("no reader attached", console(readers=[]), "no notify reader attached")
    expect_different("a run with --only", console(), "--only: not the full subset", only="beta")
    expect_different("run-tests.sh's summary missing", console(summary=False),
                     "did not reach run-tests.sh's summary")

    # the guest's own failures, whatever the tests said
    expect_different("an unmount hung at the end of a pass",
                     console(extra=["upstream: notify: unmount HUNG: /mnt/test.2 still mounted after 300 s",
                                    "upstream: notify hung | task umount:1234 blocked for more than 120 seconds."]),
                     "notify: unmount HUNG: /mnt/test.2", (3, 1))
    expect_different("the module did not unload", console(extra=["upstream: base: rmmod scoutfs FAILED"]),
                     "base: rmmod scoutfs FAILED", (3, 1))
    rc, verdict, _, _ = run(console(extra=["upstream: base | FAILED in a test's own output"]))
    check(rc == 0, f"FAILED in quoted test output is not the guest's failure ({verdict})")

    # a VM cut short: the results that scrolled by, nothing after them;
    # what ran is still compared, and the run is still not called identical
    cut = "\n".join(l for l in console(done=False, summary=False).splitlines()
                    if " exited " not in l and " kernel log: " not in l and "reader" not in l) + "\n"
    rc, verdict, counts, out = run(cut)
    check(rc != 0 and "the guest did not finish" in verdict and counts is not None
          and counts[0] == 3 and "| gamma | passed 40s | passed 40s |" in out,
          f"a run cut short compares the tests that ran (3 identical) and is DIFFERENT ({counts})")

    # the guest's parsed lines are the results; run-tests.sh's own lines
    # beside them are not read a second time
    raw_only = "\n".join(l for l in console().splitlines()
                         if not re.match(r"^upstream: \w+ [a-z0-9_-]+ (passed|failed|skipped) ", l)) + "\n"
    rc, verdict, counts, _ = run(raw_only)
    check(rc != 0 and counts == (0, 2) and "disagree with run-tests.sh's summary" in verdict,
          f"run-tests.sh's lines alone give no results ({counts}: {verdict})")

    return finish("upstream-report")


if __name__ == "__main__":
    sys.exit(main())
