"""Imported by the daemon and nats tiers: an offline systemd root for
`systemd-analyze verify` and `security` of the units as shipped.

    from sdroot import sdroot, exposure
    root = sdroot(work, {"usr/sbin/scoutfs-notifyd": NOTIFYD}, [unit_file])
    level = exposure(root, "/etc/systemd/system/scoutfs-notifyd@mnt-scoutfs.service")
"""
import os
import shutil
import subprocess


def sdroot(work, binaries, units):
    """WORK/sdroot: the host's unit library, BINARIES (path in the root ->
    file), UNITS in /etc/systemd/system, and mnt-scoutfs.mount for them"""
    root = os.path.join(work, "sdroot")
    etc = os.path.join(root, "etc/systemd/system")
    os.makedirs(etc)
    os.makedirs(os.path.join(root, "mnt/scoutfs"))
    shutil.copytree("/lib/systemd/system", os.path.join(root, "lib/systemd/system"), symlinks=True)
    for dest, src in binaries.items():
        os.makedirs(os.path.dirname(os.path.join(root, dest)), exist_ok=True)
        shutil.copy(src, os.path.join(root, dest))
    for unit in units:
        shutil.copy(unit, etc)
    with open(os.path.join(etc, "mnt-scoutfs.mount"), "w") as f:
        f.write("[Unit]\nDescription=scoutfs\n[Mount]\nWhat=/dev/sdb\nWhere=/mnt/scoutfs\nType=scoutfs\n")
    return root


def verify(root, inst):
    """systemd-analyze verify: (exit status, what it said on stderr)"""
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", inst],
                       capture_output=True, text=True, timeout=120)
    return r.returncode, r.stderr.strip()


def exposure(root, inst):
    """systemd-analyze security's overall exposure: (level or None, its words or the error)"""
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={root}", inst],
                       capture_output=True, text=True, timeout=120)
    score = [x for x in r.stdout.splitlines() if "Overall exposure level" in x]
    if r.returncode or not score:
        return None, r.stderr.strip()
    words = score[0].split(": ", 1)[1]
    return float(words.split()[0]), words
