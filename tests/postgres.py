"""A throwaway PostgreSQL cluster for the tests: initdb and pg_ctl from PATH (or Debian's
/usr/lib/postgresql/*/bin), in a temporary directory, listening only on a Unix socket in
it, run as an unprivileged user (initdb refuses root: as root, the system user
``markovtest`` is created if missing and runs the server)."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["Cluster", "find_bin_dir", "fresh_address", "fresh_database", "start_cluster"]

USER = "markovtest"
ROLE = "markov"


def find_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


@dataclass
class Cluster:
    bin_dir: Path
    root: Path
    as_user: list[str]  # the command prefix that runs as the cluster's owner

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{ROLE}@/{database}?host={self.root}"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, *args], check=True, capture_output=True, text=True, cwd=self.root
        )

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _owner() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
            capture_output=True,
        )
    return ["runuser", "-u", USER, "--"]


def start_cluster(
    bin_dir: Path, *, durable: bool = False, settings: dict[str, str] | None = None
) -> Cluster:
    """A started cluster. Not ``durable`` (the tests): no fsync at all. ``durable`` (the
    benchmarks): fsync on, commits not waited for (synchronous_commit=off), the same promise
    as the SQLite backend's WAL with synchronous=NORMAL: a process crash loses nothing
    committed, an OS crash may lose the last moments. ``settings``: more server settings."""
    as_user = _owner()
    root = Path(tempfile.mkdtemp(prefix="markov-pg-"))
    if as_user:
        shutil.chown(root, USER)
    cluster = Cluster(bin_dir, root, as_user)
    try:
        cluster._run(
            str(bin_dir / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", ROLE,
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        options = f"-k {root} -c listen_addresses='' -c synchronous_commit=off"
        if not durable:  # durability is not under test (the crash tests run on SQLite)
            options += " -c fsync=off -c full_page_writes=off"
        options += "".join(f" -c {k}={v}" for k, v in (settings or {}).items())
        cluster._run(
            str(bin_dir / "pg_ctl"), "-D", str(cluster.data), "-l", str(root / "log"),
            "-o", options, "-w", "start",
        )  # fmt: skip
    except subprocess.CalledProcessError as e:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {e.stderr or e.stdout}") from e
    return cluster


_databases = itertools.count(1)


@asynccontextmanager
async def fresh_database(cluster: Cluster) -> AsyncIterator[str]:
    """The URL of a new, empty database on ``cluster``, dropped afterwards."""
    import asyncpg

    name = f"test_{os.getpid()}_{next(_databases)}"
    admin = await asyncpg.connect(cluster.url())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    try:
        yield cluster.url(name)
    finally:
        admin = await asyncpg.connect(cluster.url())
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


@asynccontextmanager
async def fresh_address(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """Where a test's store lives: a fresh SQLite file under ``tmp_path``, or a fresh
    database on the session's PostgreSQL server (the ``postgres_cluster`` fixture)."""
    if backend == "sqlite":
        yield str(tmp_path / f"store-{next(_databases)}.db")
        return
    async with fresh_database(request.getfixturevalue("postgres_cluster")) as url:
        yield url
