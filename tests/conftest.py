"""Servers the suite starts for itself: a throwaway PostgreSQL on a free loopback port.

The server runs from Debian's postgresql binaries as the ``postgres`` system user (the
suite runs as root in CI, and PostgreSQL refuses to run as root) in a temporary data
directory, with fsync off, and is stopped and deleted at the end of the session. Each
test asks it for a fresh database. When the binaries are missing and we are root, they
are installed with apt. If the server cannot start, PostgreSQL tests are skipped on a
developer machine but fail under ``CI=true``: CI must never pass without them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


class PostgresServer:
    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir, self.root, self.port = bindir, root, port
        self._names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database's URL."""
        name = f"qw_test_{next(self._names)}"
        self._as_postgres(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), name)
        return self.url(name)

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        data, log = self.root / "data", self.root / "server.log"
        self._as_postgres(str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-N")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start")

    def stop(self) -> None:
        pg_ctl = [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):  # never started, or already gone
            subprocess.run(["runuser", "-u", "postgres", "--", *pg_ctl], capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


def _install_postgresql() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "postgresql"], check=False, capture_output=True, env=env, timeout=900
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if _bindir() is None:
        _install_postgresql()
    bindir = _bindir()
    server = None
    try:
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql and could not be installed")
        root = Path(tempfile.mkdtemp(prefix="qw-pg-"))
        shutil.chown(root, "postgres", "postgres")
        server = PostgresServer(bindir, root, _free_port())
        server.start()
    except (RuntimeError, OSError, LookupError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        reason = f"cannot start PostgreSQL: {exc} {detail.decode(errors='replace').strip()}"
        if server is not None:
            server.stop()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    yield server
    server.stop()
