"""A throwaway PostgreSQL cluster on 127.0.0.1 for a Prefect server, from Debian's `postgresql` package.

`make test` installs the package (`test-deps`); nothing else is needed: the cluster lives in a
temporary directory owned by the `postgres` system user, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.prefect_server import free_port

USER = "postgres"  # the package's system user; any unprivileged user would do
DATABASE = "prefect"


def bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<major>/bin (Debian does not put initdb or pg_ctl on PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL not installed: run `make test-deps` (apt-get install postgresql)")
    return Path(found[-1]).parent


class Postgres:
    """initdb + pg_ctl start in a temporary directory; `stop()` removes the cluster."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable  # fsync on, as in production (benchmarks); tests skip it for speed
        self.bin = bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="benchgate-pg-"))
        self.data = self.root / "data"
        self.url = f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{DATABASE}"
        self.started = False

    def _as_user(self, *command: str, timeout: float = 120) -> None:
        args = list(command) if os.geteuid() != 0 else ["runuser", "-u", USER, "--", *command]
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")

    def start(self) -> Postgres:
        if os.geteuid() == 0:
            user = pwd.getpwnam(USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        # trust: a throwaway cluster on 127.0.0.1 only
        self._as_user(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200"
        options += "" if self.durable else " -c fsync=off"
        self._as_user(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "start",
        )  # fmt: skip
        self.started = True
        createdb = str(self.bin / "createdb")
        self._as_user(createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE)
        return self

    def stop(self) -> None:
        if self.started:
            self._as_user(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)
