"""A throwaway PostgreSQL for the tests: Debian's server binaries (package `postgresql`, which the
Makefile installs), a cluster under a temporary folder started with initdb and pg_ctl, reached by
its Unix socket; no system service. One database per test, dropped after it."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

PORT = 55432


def binaries() -> Path | None:
    """The newest PostgreSQL server's bin folder, or None when the package is not installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def _as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` account then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Cluster:
    """A running throwaway cluster; `url(name)` is a database on it."""

    def __init__(self):
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL's server is not installed: `make postgres` (Debian's postgresql package)")
        self.root = Path(tempfile.mkdtemp(prefix="fnp-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self.data = self.root / "data"
        self.bin = bin_dir
        subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(self.data), "-U", "fnp", "--auth=trust",
                                        "--locale=C.UTF-8", "--encoding=UTF8", "--no-sync"]),
                       check=True, capture_output=True)
        opts = f"-p {PORT} -k {self.root} -c listen_addresses='' -c fsync=off -c max_connections=200"
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                                        str(self.root / "log"), "-w", "start"]), check=True, capture_output=True)
        self.admin = f"postgresql://fnp@/postgres?host={self.root}&port={PORT}"

    def url(self, name: str) -> str:
        return f"postgresql://fnp@/{name}?host={self.root}&port={PORT}"

    def create(self) -> tuple[str, str]:
        """A new empty database: (its name, its URL)."""
        import psycopg

        name = "fnp_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name, self.url(name)

    def drop(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        subprocess.run(_as_server_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
                       capture_output=True)
        for _ in range(20):
            if not (self.data / "postmaster.pid").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)
