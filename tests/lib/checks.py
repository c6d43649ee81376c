"""Imported by the Python test programs: PASS/FAIL lines and counts.

    from checks import check, finish
    check(cond, "what was checked")   # PASS: ... or FAIL: ...; returns cond
    sys.exit(finish("tier"))          # "tier: N passed, N failed"; 1 if any failed
"""
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
    print(f"{name}: {counts['passed']} passed, {counts['failed']} failed", flush=True)
    return 1 if counts["failed"] else 0
