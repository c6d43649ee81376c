"""Imported by the Python test programs that need a real nats-server
(the nats and index tiers): one server with JetStream on a loopback
port and a temporary store, and tnats (tests/nats/tnats.c) to look at
and feed the stream.

    from natslib import Nats, SERVERS, tnats
"""
import os
import shutil
import signal
import subprocess
import tempfile

from checks import check
from testlib import free_port, no_sanitizer_report_at_all, poll

SERVERS = []    # every nats-server started, stopped at the end whatever happened


class Nats:
    """One nats-server with JetStream on a loopback port and a temporary store
    (ENV: variables its configuration reads, passwords)."""

    def __init__(self, work, auth="", env=None):
        self.env = dict(os.environ, **(env or {}))
        self.dir = tempfile.mkdtemp(dir=work, prefix="nats")
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.conf = os.path.join(self.dir, "nats.conf")
        with open(self.conf, "w") as f:
            f.write(f'listen: "127.0.0.1:{self.port}"\n'
                    f'jetstream {{ store_dir: "{self.dir}/js" }}\n{auth}\n')
        self.p = None
        self.n = 0
        self.start()

    def start(self):
        self.n += 1
        self.log = os.path.join(self.dir, f"nats{self.n}.log")
        self.p = subprocess.Popen(["nats-server", "-c", self.conf], stdout=open(self.log, "w"),
                                  stderr=subprocess.STDOUT, env=self.env)
        SERVERS.append(self.p)
        ok = poll(lambda: "Server is ready" in open(self.log).read() or
                  self.p.poll() is not None, 60, 0.02)
        if not ok or self.p.poll() is not None:
            raise RuntimeError(f"nats-server did not start: {open(self.log).read()[-2000:]}")

    def stop(self, sig=signal.SIGTERM):
        if self.p and self.p.poll() is None:
            self.p.send_signal(sig)
            self.p.wait(60)
        self.p = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def tnats(tnats_bin, *args, env=None, input=None, timeout=300):
    return subprocess.run([tnats_bin, *args], capture_output=True, env=env, input=input,
                          timeout=timeout)


def servers_stopped():
    """a tier's last checks: every nats-server a test started was stopped
    (the rest are killed here), and no program of the run wrote a
    sanitizer report"""
    left = [p for p in SERVERS if p.poll() is None]
    for p in left:
        p.kill()
        p.wait()
    check(not left, f"every test stopped the nats-server processes it started ({len(left)} left)")
    check(*no_sanitizer_report_at_all())
