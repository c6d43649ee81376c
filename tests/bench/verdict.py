"""The verdict rules of the benchmarks, written once: tests/bench/report.py
(relay, hook cost, ring drain, the stages, the 1 GiB read, latency) and
tests/bench/nats-bench.py (the NATS forwarder) both give their targets'
verdicts through these.

A figure is "met" only when everything it was made from is there and
whole: every round asked for ran (at least MIN_ROUNDS of them, or the
spread of the rounds says nothing), no setup step failed, no record was
lost, every sample asked for arrived.  Otherwise the verdict is "not
measured: <why>", or "MISSED (<why>)" when the figure misses its target
anyway; a throughput verdict always says what was lost.
"""

MIN_ROUNDS = 3


def verdict(ok, problems, met="met"):
    """ok: the figure meets its target (True), misses it (False), or
    can't say (None); problems: why the figure can't be trusted"""
    if problems:
        why = "; ".join(problems)
        return f"MISSED ({why})" if ok is False else f"not measured: {why}"
    if ok is None:
        return "not measured"
    return met if ok else "MISSED"


def rounds_problems(have, asked, what="rounds"):
    """problems of a figure made from HAVE rounds when ASKED were asked for"""
    out = []
    if asked is None:
        out.append(f"the number of {what} asked for is not known")
    elif have < asked:
        out.append(f"{have} of {asked} {what}")
    if have < MIN_ROUNDS:
        out.append(f"fewer than {MIN_ROUNDS} {what} ({have}): their spread says nothing")
    return out


def lost_problem(lost, total, whose="records"):
    """a problem when LOST (None: unknown) of TOTAL were lost"""
    if lost is None:
        return [f"what was lost is not known ({whose})"]
    if lost:
        return [f"{lost:,} of {total:,} {whose} lost"]
    return []


def throughput(ok, lost, total, problems=(), whose="records"):
    """a throughput verdict: what was lost is always part of it"""
    problems = list(problems) + lost_problem(lost, total, whose)
    if problems:
        return verdict(ok, problems)
    return f"{verdict(ok, [])} ({lost:,} of {total:,} {whose} lost)"
