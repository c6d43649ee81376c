"""Imported by the Python test programs (daemon and nats tiers, the NATS
bench): what they all need from a test, written once.

    from testlib import HOSTILE_NAMES, free_port, poll, sanitizer_clean, strict_json, text_fields
"""
import json
import os
import socket
import time

# what ASan, LSan and UBSan print when they report
SAN = ("AddressSanitizer", "LeakSanitizer", "runtime error:")

# Names users can give files: each must come out of every output as one
# line (text) or one strict UTF-8 JSON object, and give back its exact
# bytes.  Each tier adds names aimed at its own output.
HOSTILE_NAMES = [
    b"innocent\n2026-01-01T00:00:00.000000000Z seq=424242 READ   pid=1 uid=0 gid=0 ino=1 "
    b"offset=0 len=4096 path=\xe2\x88\x95mnt\xe2\x88\x95secret\xe2\x88\x95payroll.db",
    b"tab\there\ttoo",
    b"quote\"d 'single' and \\backslash\\x41",
    b"bad\xff\xfe utf8 \xc0\xaf overlong \xed\xa0\x80 surrogate",
    b"\xe2\x88\x95etc\xe2\x88\x95shadow",
    b"cr\rlf\r\nnul-free \x1b[31mred\x1b[0m \x7f del",
    b"bidi \xe2\x80\xaeevil\xe2\x80\xac line\xe2\x80\xa8sep \xc2\x85 nel",
    b"caf\xc3\xa9 \xf0\x9f\x93\x81 ok",
]


def poll(pred, secs, step):
    """pred() every STEP seconds until it is true, for at most SECS; its last value"""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def sanitizer_reports(seen=set()):
    """the sanitizer reports written to $SAN_REPORT_DIR (tests/lib/sanitize.sh:
    ASan, LSan and UBSan write there, not to stderr) since the last call,
    each printed"""
    d = os.environ.get("SAN_REPORT_DIR")
    if not d or not os.path.isdir(d):
        return []
    new = sorted(f for f in os.listdir(d) if f not in seen)
    for f in new:
        seen.add(f)
        with open(os.path.join(d, f), errors="replace") as fh:
            print(f"    sanitizer report {f}:\n" + "".join("    | " + x for x in fh.readlines()[:40]),
                  flush=True)
    return new


def sanitizer_clean(text):
    """no sanitizer report in text, nor written by any program since the last look"""
    return not any(s in text for s in SAN) and not sanitizer_reports()


def no_sanitizer_report_at_all():
    """(ok, what) for a tier's last check: leak checks were on (the runner
    set SAN_REPORT_DIR, tests/lib/sanitize.sh) and no program of the
    whole run wrote a report, read by a test or not"""
    sanitizer_reports()
    d = os.environ.get("SAN_REPORT_DIR")
    if not d or not os.path.isdir(d):
        return False, "sanitizer reports: SAN_REPORT_DIR is not set (leak checks are not on)"
    left = sorted(os.listdir(d))
    return not left, (f"no program of the run wrote an ASan, LSan or UBSan report "
                      f"({len(left)} reports{': ' + ', '.join(left[:10]) if left else ''})")


def strict_json(raw):
    """parse one line as RFC 8259 JSON: strict UTF-8, no lone surrogates"""
    o = json.loads(raw.decode("utf-8", "strict"))
    for v in o.values():
        if isinstance(v, str):
            v.encode("utf-8", "strict")  # a lone \ud800 escape fails here
    return o


def text_fields(line):
    """key=value fields of a text line, split the only way the format
    allows: on single spaces, the key up to the first '='"""
    out = {}
    for tok in line.split(b" "):
        if b"=" in tok:
            k, v = tok.split(b"=", 1)
            out.setdefault(k.decode(), v)
    return out


def free_port():
    """a loopback TCP port nothing listens on now"""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
