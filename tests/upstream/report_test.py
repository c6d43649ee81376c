#!/usr/bin/env python3
"""Tier "upstream-report": the verdict of tests/upstream/report.py.

The upstream-suite run takes an hour in the VM, so its comparison logic
is tested here on console logs made up in the guest's format: identical
passes give `identical` and exit 0; every way two passes can differ (a
result, a test missing, a timeout, more kernel warnings, a reader's
daemon dying or receiving nothing, the guest not finishing, an --only
run, passes that ran no test or fewer than expected, an exit status of
run-tests.sh that contradicts its results) gives `DIFFERENT`, a non-zero
exit and a closing count with the failures in it.  A notify pass alone is never called identical; on the
debug kernel the detectors' findings, or their checks missing, fail.  Ends with `upstream-report: N passed, N failed`.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, finish  # noqa: E402
import exclusions  # noqa: E402
import report  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, "..", "..")
REPORT = os.path.join(HERE, "report.py")
EXCLUDED = os.path.join(HERE, "excluded.txt")
EXCLUSIONS = os.path.join(HERE, "exclusions.py")


TESTS = [("alpha", "3s"), ("beta", "11s"), ("gamma", "40s")]


CLEAN = ["kmemleak: no leak", "lockdep: still on at the end",
         "kernel log: no warning, oops, lockdep, KASAN, UBSAN report or hung task (900 lines)"]


def console(results=None, warn=(0, 0), readers=None, done=True, timeout=None, summary=True,
            extra=(), harness=(), passes=("base", "notify"), detectors=None, exits=None):
    """a guest console log: results[pass][test] overrides 'passed';
    detectors: the debug kernel's check lines after each pass; exits:
    run-tests.sh's exit status of each pass (default: what its results
    give, 0 when nothing failed or skipped, else 1)"""
    results = results or {}
    readers = readers if readers is not None else [
        {"up": True, "attaches": 3, "lines": 120, "gaps": 0}] * 2
    out = ["upstream: guest up, kernel 5.10.0-32-amd64, 2 cpus, 11 GiB"]
    for i, name in enumerate(passes):
        out.append(f"upstream: {name}: scoutfs v1.30, 7 tests excluded")
        out += harness
        res = {t: results.get(name, {}).get(t, "passed") for t, _ in TESTS}
        res = {t: r for t, r in res.items() if r is not None}
        # a result is "failed" or ("failed", "its message")
        msg = {t: r[1] for t, r in res.items() if isinstance(r, tuple)}
        res = {t: r[0] if isinstance(r, tuple) else r for t, r in res.items()}
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
                m = msg.get(t, "it went wrong")
                out.append(f"  {t}                   3s  [ {r}: {m} ]")
                out.append(f"upstream: {name} {t} {r} - {m}")
        if summary and timeout != name:
            n = {k: sum(1 for r in res.values() if r == k) for k in ("passed", "failed", "skipped")}
            out.append(f"[== all tests run: {n['passed']} passed, {n['skipped']} skipped, "
                       f"0 skipped (permitted), {n['failed']} failed ==]")
        rc = 0 if all(r == "passed" for r in res.values()) else 1
        rc = (exits or {}).get(name, 124 if timeout == name else rc)
        out.append(f"upstream: {name}: run-tests.sh exited {rc} after 100s")
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
        for d in (detectors or []):
            out.append(f"upstream: {name} detectors: {d}")
    out += extra
    if done:
        out.append("upstream: guest done")
    return "\n".join(out) + "\n"


def run(text, only=None, passes="base notify", debug=False, nseq=len(TESTS) + 2):
    """report.py on TEXT; the release's sequence: NSEQ tests, two of them
    excluded (so len(TESTS) expected to run)"""
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
        f.write(text)
        path = f.name
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("slow-one.sh\nslow-two.sh\n")
        excluded = f.name
    try:
        args = [sys.executable, REPORT, "--console", path, "--passes", passes,
                "--base", "v1.30", "--excluded", excluded, "--nseq", str(nseq)]
        if only:
            args += ["--only", only]
        if debug:
            args += ["--debug-kernel", "--kernel", "the debug kernel 5.10.223-notify-debug"]
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
        os.unlink(excluded)
    lines = p.stdout.strip().splitlines()
    verdict = next((l for l in lines if l.startswith("upstream-suite: identical")
                    or l.startswith("upstream-suite: DIFFERENT")
                    or l.startswith("upstream-suite: one pass only")), "")
    m = re.match(r"^upstream-suite: (\d+) passed, (\d+) failed$", lines[-1] if lines else "")
    counts = (int(m.group(1)), int(m.group(2))) if m else None
    return p.returncode, verdict, counts, p.stdout


def expect_different(name, text, why, counts=None, only=None, passes="base notify", debug=False):
    rc, verdict, got, out = run(text, only, passes, debug)
    bad = "upstream-suite: DIFFERENT" if " " in passes else "upstream-suite: one pass only"
    check(rc != 0 and verdict.startswith(bad) and why in verdict
          and ("FAILED" in verdict or " " in passes),
          f"{name}: DIFFERENT, naming '{why}' (exit {rc}: {verdict})")
    check(got is not None and got[1] >= 1 and (counts is None or got == counts),
          f"{name}: the closing line counts the failure {got}"
          + (f", expected {counts}" if counts else ""))
    return out


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
                   cwd=cwd, check=True, capture_output=True)


def exclusions_cli(gitdir, excluded_text, base, releases):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(excluded_text)
        path = f.name
    try:
        p = subprocess.run([sys.executable, EXCLUSIONS, "--excluded", path, "--git", gitdir,
                            "--base", base, "--releases", releases],
                           capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    return p.returncode, p.stdout.split(), p.stderr


def test_exclusions():
    """excluded.txt is for every supported release: a name a release
    lacks is left out for it, a name no release has is an error"""
    seqs = {"v1.30": {"a.sh", "b.sh", "old.sh"}, "v1.33": {"a.sh", "b.sh", "new.sh"}}
    entries, errors = exclusions.parse_excluded(
        ["# comment", "", "old.sh    builds older releases", "new.sh  needs NFS", "b.sh slow"])
    check(not errors and [n for n, _ in entries] == ["old.sh", "new.sh", "b.sh"],
          f"excluded.txt's form: names with reasons, comments skipped ({entries}, {errors})")
    names, absent, errors = exclusions.select(entries, seqs, "v1.33")
    check(names == ["new.sh", "b.sh"] and absent == ["old.sh"] and not errors,
          f"v1.33: a name it doesn't have is left out, not an error ({names}, {absent}, {errors})")
    names, absent, errors = exclusions.select(entries, seqs, "v1.30")
    check(names == ["old.sh", "b.sh"] and absent == ["new.sh"] and not errors,
          f"v1.30: the other way round ({names}, {absent}, {errors})")
    names, absent, errors = exclusions.select(entries + [("typo.sh", "x")], seqs, "v1.33")
    check(len(errors) == 1 and "'typo.sh', which no supported release's sequence has" in errors[0],
          f"a name no supported release has is an error ({errors})")
    _, errors = exclusions.parse_excluded(["a.sh first", "a.sh again", "c.sh"])
    check(len(errors) == 2 and "listed twice" in errors[0] and "no reason" in errors[1],
          f"a name listed twice and one without a reason are errors ({errors})")
    _, _, errors = exclusions.select(entries, seqs, "v1.31")
    check(errors and "not a supported release" in errors[0], f"an unknown base is an error ({errors})")

    # the command, on a made-up upstream repository with two release tags
    with tempfile.TemporaryDirectory() as d:
        git("init", "-q", cwd=d)
        os.makedirs(os.path.join(d, "tests"))
        for tag, seq in (("v1.30", "# seq\na.sh\nold.sh\nb.sh\n"), ("v1.33", "a.sh\nb.sh\nnew.sh\n")):
            with open(os.path.join(d, "tests", "sequence"), "w") as f:
                f.write(seq)
            git("add", "tests/sequence", cwd=d)
            git("commit", "-q", "-m", tag, cwd=d)
            git("tag", tag, cwd=d)
        text = "old.sh  builds older releases\nnew.sh  needs NFS\n"
        rc, out, err = exclusions_cli(d, text, "v1.33", "v1.30 v1.33")
        check(rc == 0 and out == ["new.sh"] and "old.sh is not in v1.33's sequence" in err,
              f"exclusions.py on v1.33: new.sh, and says old.sh is not there (exit {rc}, {out}, {err!r})")
        rc, out, err = exclusions_cli(d, text, "v1.30", "v1.30 v1.33")
        check(rc == 0 and out == ["old.sh"], f"exclusions.py on v1.30: old.sh (exit {rc}, {out})")
        rc, out, err = exclusions_cli(d, text + "gone.sh  dropped upstream\n", "v1.33", "v1.30 v1.33")
        check(rc == 1 and out == [] and "'gone.sh', which no supported release's sequence has" in err,
              f"exclusions.py refuses a name no release has (exit {rc}, {err!r})")
        rc, out, err = exclusions_cli(d, text, "v1.33", "v1.30 v1.31 v1.33")
        check(rc != 0 and "no tests/sequence in v1.31" in err,
              f"exclusions.py refuses a release the repository lacks (exit {rc}, {err!r})")

    # the real excluded.txt: its form always; against every supported
    # release's real sequence when an upstream tree is given
    with open(EXCLUDED) as f:
        entries, errors = exclusions.parse_excluded(f.readlines())
    check(entries and not errors, f"tests/upstream/excluded.txt: {len(entries)} names, each with a reason {errors}")
    src = os.environ.get("SCOUTFS_SRC")
    if not src:
        print("SKIPPED: excluded.txt against upstream's sequences: SCOUTFS_SRC is not set")
        return
    releases = subprocess.run([os.path.join(TOP, "apply.sh"), "--list"], capture_output=True,
                              text=True, check=True).stdout.split()
    # next is upstream main: its sequence is that of the commit it stands for
    refs = {r: r for r in releases}
    up = os.path.join(TOP, "series", "next", "upstream.txt")
    if "next" in refs and os.path.exists(up):
        with open(up) as f:
            refs["next"] = f.read().strip()
    by_ref = exclusions.git_sequences(src, [refs[r] for r in releases])
    seqs = {r: by_ref[refs[r]] for r in releases}
    for r in releases:
        names, absent, errors = exclusions.select(entries, seqs, r)
        check(not errors and names, f"excluded.txt on {r}: {len(names)} excluded, "
              f"{len(absent)} not in its sequence ({' '.join(absent) or '-'}) {errors}")


def main():
    test_exclusions()

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

    # verdicts over nothing: passes that ran no test, or fewer than the
    # sequence less its exclusions, or whose exit status says otherwise
    none = {t: None for t, _ in TESTS}
    expect_different("both passes ran no test", console({"base": none, "notify": none}),
                     "base ran 0 tests of the 3 expected; notify ran 0 tests of the 3 expected")
    expect_different("both passes ran the same two tests of three",
                     console({"base": {"gamma": None}, "notify": {"gamma": None}}),
                     "base ran 2 tests of the 3 expected", (2, 2))
    rc, verdict, counts, _ = run(console(), nseq=len(TESTS) + 3)
    check(rc != 0 and "ran 3 tests of the 4 expected" in verdict,
          f"a sequence with a test that ran in neither pass: DIFFERENT ({verdict})")
    expect_different("run-tests.sh exited 1 with every test passed", console(exits={"base": 1}),
                     "base: run-tests.sh exited 1, its results say 0", (3, 1))
    expect_different("run-tests.sh exited 0 with a test failed in both passes",
                     console({"base": {"beta": "failed"}, "notify": {"beta": "failed"}}, exits={"notify": 0}),
                     "notify: run-tests.sh exited 0, its results say 1", (3, 1))
    cut = "\n".join(l for l in console().splitlines() if " exited " not in l) + "\n"
    expect_different("no exit status of run-tests.sh", cut, "base: no exit status of run-tests.sh")
    expect_different("--only selecting nothing", console({"base": none, "notify": none}),
                     "base ran no test", only="nothing-matches")

    # the same result in both passes, but for want of what the guest
    # provides: not identical (upstream's test hosts have the tools)
    want = ("failed", "command exportfs not found in path")
    out = expect_different("a test fails in both passes for want of a command",
                           console({"base": {"beta": want}, "notify": {"beta": want}}),
                           "beta failed in base and notify for want of what the guest provides: "
                           "command exportfs not found in path", (3, 1))
    check("| beta | failed: command exportfs not found in path | failed: command exportfs not found"
          in out, "the per-test table shows the message")
    nfs = ("skipped", "nfs-server not available")
    expect_different("a test skipped in both passes because nfs-server did not start",
                     console({"base": {"gamma": nfs}, "notify": {"gamma": nfs}}),
                     "gamma skipped in base and notify for want of what the guest provides", (3, 1))
    expect_different("a test ran a command the guest lacks (bash's message in fail.log)",
                     console(extra=["upstream: notify fail.log:",
                                    "upstream: notify | +tests/beta.sh: line 12: frobnicate: command not found"]),
                     "notify: 'frobnicate' was run, which the guest lacks", (3, 1))
    expect_different("run-tests.sh's funcs ran a command the guest lacks (its own line)",
                     console(harness=["funcs/tap.sh: line 15: git: command not found"]),
                     "base: 'git' was run, which the guest lacks; notify: 'git' was run", (3, 2))
    rc, verdict, _, _ = run(console({"base": {"beta": ("failed", "output differs")},
                                     "notify": {"beta": ("failed", "output differs")}},
                                    extra=["upstream: base | -ino not found in dseq index"]))
    check(rc == 0, f"another failure in both passes, 'not found' in its output: identical ({verdict})")

    # an overloaded host: the guest's vCPUs starved, mounts fenced, and
    # run-tests.sh's monitor crashing the VM
    out = expect_different("the host starved a VM (soft lockups)",
                           console(harness=[], extra=[
                               "[  227.309397] watchdog: BUG: soft lockup - CPU#0 stuck for 21s! [dmesg:1309]",
                               "[  300.1] watchdog: BUG: soft lockup - CPU#1 stuck for 25s! [rm:11448]",
                               "upstream: notify dmesg | [  227.3] watchdog: BUG: soft lockup - CPU#0 stuck for 99s!"]),
                           "notify: a CPU of the VM made no progress for up to 25 s (2 soft lockups, "
                           "the first 227 s after boot)", (3, 1))
    cut = console(done=False, summary=False).split("upstream: base: run-tests.sh exited")[0]
    cut += ("[  227.309397] watchdog: BUG: soft lockup - CPU#0 stuck for 21s! [dmesg:1309]\n"
            "  gamma                      run-tests monitor saw fence agent error message\n"
            "run-tests monitor syncing and triggering crash\n"
            "[  237.538273] Kernel panic - not syncing: sysrq triggered crash\n")
    expect_different("run-tests.sh's crash monitor crashed a VM", cut,
                     "base: run-tests.sh's crash monitor crashed the VM (saw fence agent error message)")

    with tempfile.NamedTemporaryFile("w", suffix=".load") as f:
        f.write("2.10\n12.5\n8.00\n")
        f.flush()
        said = report.host_load(f.name, 2)
    check("2 cores" in said and "3 samples" in said and "min 2.1, median 8.0, max 12.5" in said,
          f"the host's load is summed up from its samples ({said})")

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
    check(rc != 0 and counts == (0, 4) and "disagree with run-tests.sh's summary" in verdict
          and "base ran 0 tests of the 3 expected" in verdict,
          f"run-tests.sh's lines alone give no results ({counts}: {verdict})")

    # the notify pass alone: no comparison, never "identical"
    one = dict(passes=("notify",), warn=(0,))
    rc, verdict, counts, out = run(console(**one), passes="notify")
    check(rc == 0 and verdict.startswith("upstream-suite: one pass only (notify), not a comparison: "
                                         "no test failed") and counts == (3, 0),
          f"the notify pass alone, every test passed: one pass, exit 0, 3 passed ({counts}: {verdict})")
    check("the notify pass only, not a comparison" in out and "| beta | passed 11s |" in out
          and "| base |" not in out, "its report says so and lists its tests")
    expect_different("the notify pass alone with a failed test",
                     console({"notify": {"beta": "failed"}}, **one), "1 tests failed", (2, 1),
                     passes="notify")
    expect_different("the notify pass alone with kernel warnings",
                     console(passes=("notify",), warn=(2,)),
                     "notify has 2 kernel warning lines (no other pass to compare with)", (3, 1),
                     passes="notify")
    expect_different("the notify pass alone, a reader's daemon exited early",
                     console(readers=[{"up": False, "attaches": 2, "lines": 5, "gaps": 0}], **one),
                     "reader 0's daemon did not stay up", (3, 1), passes="notify")

    # the debug kernel: the detectors' checks after each pass
    rc, verdict, counts, out = run(console(**one, detectors=CLEAN), passes="notify", debug=True)
    check(rc == 0 and counts == (3, 0) and "- notify, kmemleak: no leak" in out
          and "- notify, lockdep: still on at the end" in out and "the debug kernel 5.10.223" in out,
          f"debug kernel, detectors clean: exit 0, each check listed ({counts}: {verdict})")
    rc, verdict, _, _ = run(console(detectors=CLEAN), debug=True)
    check(rc == 0 and verdict.startswith("upstream-suite: identical"),
          f"debug kernel, both passes, detectors clean: identical ({verdict})")
    found = CLEAN[:2] + ["kernel log: 2 report header lines FAILED"]
    out = expect_different("a detector report on the debug kernel",
                           console(**one, detectors=found,
                                   extra=["upstream: notify report | BUG: KASAN: use-after-free in x"]),
                           "notify detectors: kernel log: 2 report header lines FAILED", (3, 1),
                           passes="notify", debug=True)
    check("- notify, kernel log: 2 report header lines FAILED" in out, "the finding is listed")
    expect_different("a leak on the debug kernel",
                     console(detectors=["kmemleak: 3 unreferenced objects FAILED"] + CLEAN[1:]),
                     "notify detectors: kmemleak: 3 unreferenced objects FAILED", debug=True)
    expect_different("the detectors not checked on the debug kernel", console(**one),
                     "notify: no detector check of kmemleak, lockdep, kernel log", (3, 1),
                     passes="notify", debug=True)

    return finish("upstream-report")


if __name__ == "__main__":
    sys.exit(main())
