"""A throwaway PostgreSQL cluster for one test: `initdb` in a temporary directory, `pg_ctl` on
a free loopback port, never the shared server. PostgreSQL refuses to run as root, so as root
its commands run as the `postgres` user (runuser).

Without PostgreSQL's binaries the test fails (`make test` installs Debian's `postgresql` as
root), unless SKIP_POSTGRES_CLUSTER=1 explicitly opts out.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from bitsgap_clone.embedded_redis import free_port


def _bin_dir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name.split(".")[0])
    )
    for directory in reversed(found):
        if (Path(directory) / "initdb").exists() and (Path(directory) / "pg_ctl").exists():
            return Path(directory)
    return None


def _unavailable(reason: str):
    if os.environ.get("SKIP_POSTGRES_CLUSTER") == "1":
        pytest.skip(f"{reason}; SKIP_POSTGRES_CLUSTER=1")
    pytest.fail(f"{reason} (Debian: apt-get install postgresql; or SKIP_POSTGRES_CLUSTER=1 to opt out)")


class PgCluster:
    def __init__(self) -> None:
        self.bin = _bin_dir()
        if self.bin is None:
            _unavailable("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                self.owner = pwd.getpwnam("postgres")
            except KeyError:
                _unavailable("running as root and there is no postgres user to run PostgreSQL as")
        self.root = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        if self.as_root:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}\n{log}")

    def init(self) -> PgCluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database: str, sql: str, params=()) -> list[tuple]:
        with psycopg.connect(self.url(database), connect_timeout=5) as connection:
            return connection.execute(sql, params).fetchall()

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
