"""Imported by the Python programs that need a PostgreSQL server of their
own (the index tier, the index benchmark): initdb and pg_ctl as the
postgres user (PostgreSQL refuses to run as root), a loopback port, a
temporary directory; stop() stops it and says whether it is stopped.

    from pglib import Pg
"""
import os
import shutil
import subprocess
import tempfile

from testlib import free_port

PGBIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")


class Pg:
    """A PostgreSQL server of our own: initdb, pg_ctl start on a loopback port, stop."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="heat-pg-")
        shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.url = f"postgresql://heat@127.0.0.1:{self.port}/postgres"
        self.as_pg([f"{PGBIN}/initdb", "-D", self.data, "-A", "trust", "-U", "heat", "-E", "UTF8"])
        self.as_pg([f"{PGBIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w",
                    "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "start"])

    def as_pg(self, args, check_rc=True):
        r = subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, timeout=300)
        if check_rc and r.returncode:
            raise RuntimeError(f"{args[0]}: {r.stderr.decode()[-500:]}")
        return r

    def psql(self, sql):
        return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.url, "-c", sql],
                              capture_output=True, timeout=120)

    def reset(self):
        r = self.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        return r.returncode == 0

    def stop(self):
        self.as_pg([f"{PGBIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"], check_rc=False)
        st = self.as_pg([f"{PGBIN}/pg_ctl", "-D", self.data, "status"], check_rc=False)
        stopped = st.returncode == 3 and not os.path.exists(os.path.join(self.data, "postmaster.pid"))
        shutil.rmtree(self.dir, ignore_errors=True)
        return stopped
