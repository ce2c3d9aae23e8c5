"""A database file that cannot be used stops the bot and the CLI with one clear line.

Through the real entry points, as an operator starts them (subprocesses): ``python -m bot``
(the same as ``markov-bot run``) exits 1 and the offline CLI exits 2, each with exactly one
line on stderr that names the file, and no traceback. The files are made the way they
happen in the field: garbage, a real database cut short or overwritten, a database from a
newer version, a file this user may not read, a directory that cannot be created.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import run_bot
from bot.services.settings import load_settings
from bot.store import Incoming, Store, StoreError
from bot.store.errors import primary_code, transient_cause
from bot.store.schema import SCHEMA_VERSION
from fake_discord import FakeDiscord
from tests.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]


def _real_database(path: Path) -> None:
    """A database the bot wrote, big enough to span many pages, closed cleanly."""

    async def fill() -> None:
        store = await Store.open(path)
        try:
            ns = await store.namespace("guild:1")
            words = [f"word{i}" for i in range(4000)]
            batch = [Incoming(i, words[i : i + 12]) for i in range(0, 3900)]
            await store.learn(ns, batch)
        finally:
            await store.close()

    asyncio.run(fill())
    assert not Path(f"{path}-wal").exists()  # everything is in the main file


def not_a_database(path: Path) -> None:
    path.write_text("these are my notes, not a database\n" * 200)


def truncated(path: Path) -> None:
    _real_database(path)
    os.truncate(path, path.stat().st_size // 2)


def malformed(path: Path) -> None:
    """The schema page overwritten after the file header (a bad copy, a stray write)."""
    _real_database(path)
    with path.open("r+b") as f:
        f.seek(100)
        f.write(b"\xa5" * 2000)


def newer_schema(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()


def unreadable(path: Path) -> None:
    _real_database(path)
    path.chmod(0)


def uncreatable(path: Path) -> None:
    """MARKOV_DB under a "directory" that is a file: it can be neither created nor opened
    (root-proof, unlike permissions)."""
    path.parent.write_text("a file where the database's directory should be\n")


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "not a database": (not_a_database, "not a SQLite database"),
    "truncated": (truncated, "damaged"),
    "malformed": (malformed, "damaged"),
    "newer schema": (newer_schema, "newer version"),
    "unreadable": (unreadable, "cannot open"),
    "uncreatable": (uncreatable, "cannot create"),
}
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def database(tmp_path: Path, case: str) -> tuple[Path, str]:
    make, needle = CASES[case]
    if case == "unreadable" and AS_ROOT:
        pytest.skip("runs as root, whom file permissions do not stop; 'uncreatable' covers it")
    path = tmp_path / "data" / "markov.db"
    path.parent.mkdir()
    if case == "uncreatable":
        path.parent.rmdir()
    make(path)
    return path, needle


def run(tmp_path: Path, *args: str, db: Path | str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MARKOV_DB": str(db), "DISCORD_TOKEN": TOKEN}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no stray .env is read
        env=env,
        timeout=120,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], db: Path | str, needle: str) -> None:
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("markov-bot: ") and needle in lines[0]
    assert str(db) in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_the_bot_stops_with_one_line(tmp_path: Path, case: str) -> None:
    db, needle = database(tmp_path, case)
    done = run(tmp_path, "-m", "bot", db=db)
    assert done.returncode == 1
    assert_one_line(done, db, needle)


@pytest.mark.parametrize("case", list(CASES))
def test_the_cli_stops_with_one_line(tmp_path: Path, case: str) -> None:
    db, needle = database(tmp_path, case)
    done = run(tmp_path, "-m", "bot.cli", "stats", db=db)
    assert done.returncode == 2
    assert_one_line(done, db, needle)


def test_markov_bot_run_is_the_bot(tmp_path: Path) -> None:
    db, needle = database(tmp_path, "not a database")
    done = run(tmp_path, "-m", "bot.cli", "run", db=db)
    assert done.returncode == 1
    assert_one_line(done, db, needle)


@pytest.mark.usefixtures("restore_logging", "world")
async def test_a_bad_database_stops_the_bot_before_discord_hears_of_it(
    tmp_path: Path, fake: FakeDiscord, capsys: pytest.CaptureFixture[str]
) -> None:
    db, needle = await asyncio.to_thread(database, tmp_path, "truncated")  # it runs a loop
    settings = load_settings({"MARKOV_DB": str(db), "DISCORD_TOKEN": TOKEN}, dotenv_path=None)
    assert await asyncio.wait_for(asyncio.to_thread(run_bot, settings), 30) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert needle in line and str(db) in line
    assert fake.requests_matching("GET", "/users/@me") == []


async def test_store_open_names_the_file_and_keeps_the_cause(tmp_path: Path) -> None:
    db, _ = await asyncio.to_thread(database, tmp_path, "not a database")
    with pytest.raises(StoreError) as refused:
        await Store.open(db)
    assert str(db) in str(refused.value)
    cause = refused.value.__cause__
    assert isinstance(cause, sqlite3.DatabaseError)
    assert cause.sqlite_errorcode == sqlite3.SQLITE_NOTADB
    assert db.read_text().startswith("these are my notes")  # left as it was


# ---------------------------------------------------------------------- transient errors


def _error_of(db: sqlite3.Connection, sql: str) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as raised:
        db.execute(sql)
    return raised.value


def test_transient_errors_are_told_by_their_code_not_their_words(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    busy = _error_of(other, "INSERT INTO t VALUES (1)")
    holder.execute("ROLLBACK")
    pages = holder.execute("PRAGMA page_count").fetchone()[0]
    holder.execute(f"PRAGMA max_page_count = {pages}")
    full = _error_of(holder, "INSERT INTO t VALUES (zeroblob(100000))")
    # Its message says "locked", yet nothing is locked: a mistake, not a passing condition.
    not_locked = _error_of(holder, "SELECT * FROM locked")
    holder.close()
    other.close()

    assert primary_code(busy) == sqlite3.SQLITE_BUSY
    assert primary_code(full) == sqlite3.SQLITE_FULL
    assert transient_cause(busy) is busy and transient_cause(full) is full
    assert "locked" in str(not_locked) and transient_cause(not_locked) is None
    # Found through the chain: a later error raised while handling the real one.
    try:
        try:
            raise full
        except sqlite3.Error:
            raise RuntimeError("cannot rollback - no transaction is active") from None
    except RuntimeError as later:
        assert later.__cause__ is None and transient_cause(later) is full


@pytest.mark.parametrize("entry", [("bot", 1), ("bot.cli", 2)])
def test_an_unreachable_postgresql_stops_with_one_line_and_no_password(
    tmp_path: Path, entry: tuple[str, int]
) -> None:
    module, code = entry
    url = "postgresql://markov:s3cret@127.0.0.1:1/markov"  # port 1: nobody listens
    args = ["-m", module] + (["stats"] if module == "bot.cli" else [])
    done = run(tmp_path, *args, db=url)
    assert done.returncode == code
    assert_one_line(done, "postgresql://markov:***@127.0.0.1:1/markov", "cannot reach")
    assert "s3cret" not in done.stderr + done.stdout
