"""Imported by the Python test programs: PASS/FAIL lines and counts.

    from checks import check, finish, run_tests
    check(cond, "what was checked")   # PASS: ... or FAIL: ...; returns cond
    sys.exit(finish("tier"))          # "tier: N passed, N failed"; 1 if any failed
    sys.exit(run_tests(TESTS, "tier", os.environ.get("TIER_TEST")))
                                      # each test (or the one named), then finish

A run that checked nothing is a failure (a test list or a name that
selects nothing, a program that returned early): finish() says so.
"""
import time

counts = {"passed": 0, "failed": 0}


def check(cond, what):
    if cond:
        counts["passed"] += 1
        print(f"PASS: {what}", flush=True)
    else:
        counts["failed"] += 1
        print(f"FAIL: {what}", flush=True)
    return cond


def finish(name):
    if counts["passed"] + counts["failed"] == 0:
        check(False, f"{name}: nothing was checked")
    print(f"{name}: {counts['passed']} passed, {counts['failed']} failed", flush=True)
    return 1 if counts["failed"] else 0


def run_tests(tests, name, only=None, after=None):
    """run each test function (or only the one named ONLY, which must
    exist), a test that raises counted as a failure, then AFTER(), then
    finish(NAME)"""
    names = [t.__name__ for t in tests]
    if only and only not in names:
        check(False, f"no test named '{only}' (tests: {' '.join(names)})")
    for t in tests:
        if only and t.__name__ != only:
            continue
        print(f"--- {t.__name__}", flush=True)
        t0 = time.monotonic()
        try:
            t()
        except Exception as ex:  # a test that crashes is a failure, not a stop
            check(False, f"{t.__name__} raised {type(ex).__name__}: {ex}")
        print(f"    ({time.monotonic() - t0:.1f} s)", flush=True)
    if after:
        after()
    return finish(name)
