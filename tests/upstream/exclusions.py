#!/usr/bin/env python3
"""The exclusions of `make upstream-suite` for one release.

tests/upstream/excluded.txt names the upstream tests that are not run,
one per line with its reason, for every supported release at once.
Releases differ in their tests/sequence (v1.32 added basic-nfs.sh,
v1.33 dropped format-version-forward-back.sh), so for one release:

  - a name in that release's sequence is excluded (run-tests.sh -E);
  - a name that release doesn't have is left out for it, and said so;
  - a name that no supported release's sequence has is an error (a
    typo, or a test upstream dropped everywhere we support), as is a
    name listed twice or a line without a reason.

    exclusions.py --excluded FILE --git DIR --base TAG --releases "v1.28 ... v1.33"

prints the names to exclude for TAG, one per line, on stdout, and one
line per name left out on stderr; exits 1 with the errors otherwise.
DIR is an upstream scoutfs git dir with the release tags (each
release's sequence is read with `git show TAG:tests/sequence`).
"""
import argparse
import subprocess
import sys


def parse_excluded(lines):
    """[(name, reason)] and a list of errors, from excluded.txt's lines"""
    entries, errors, seen = [], [], set()
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            errors.append(f"line {n}: '{name}' has no reason")
        if name in seen:
            errors.append(f"line {n}: '{name}' is listed twice")
        seen.add(name)
        entries.append((name, reason.strip()))
    return entries, errors


def parse_sequence(text):
    """the test names of a tests/sequence file"""
    return {l.strip() for l in text.splitlines() if l.strip() and not l.startswith("#")}


def select(entries, sequences, base):
    """(names excluded for base, names base doesn't have, errors)

    sequences: {release: set of names} for every supported release."""
    if base not in sequences:
        return [], [], [f"{base} is not a supported release ({' '.join(sequences)})"]
    errors = [f"excluded.txt names '{name}', which no supported release's sequence has "
              f"({' '.join(sequences)})"
              for name, _ in entries if not any(name in s for s in sequences.values())]
    names = [name for name, _ in entries if name in sequences[base]]
    absent = [name for name, _ in entries
              if name not in sequences[base] and any(name in s for s in sequences.values())]
    return names, absent, errors


def git_sequences(gitdir, releases):
    seqs = {}
    for r in releases:
        p = subprocess.run(["git", "-C", gitdir, "show", f"{r}:tests/sequence"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"exclusions.py: no tests/sequence in {r} of {gitdir}: "
                             f"{p.stderr.strip()}")
        seqs[r] = parse_sequence(p.stdout)
    return seqs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--excluded", required=True)
    ap.add_argument("--git", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--releases", required=True)
    a = ap.parse_args()
    with open(a.excluded) as f:
        entries, errors = parse_excluded(f.readlines())
    names, absent, more = select(entries, git_sequences(a.git, a.releases.split()), a.base)
    errors += more
    if errors:
        for e in errors:
            print(f"exclusions.py: {a.excluded}: {e}", file=sys.stderr)
        return 1
    for name in absent:
        print(f"exclusions.py: {name} is not in {a.base}'s sequence: nothing to exclude there",
              file=sys.stderr)
    for name in names:
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
