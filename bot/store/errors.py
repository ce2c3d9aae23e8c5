"""What the database's failures mean to whoever runs the bot: read from SQLite's result
codes and PostgreSQL's SQLSTATE, not from text.

SQLite's messages are worded for programmers and change between versions; its result codes
are its API. An extended code (``SQLITE_IOERR_SHORT_READ``, ``SQLITE_BUSY_SNAPSHOT``…)
carries its primary code in the low byte.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = [
    "StoreError",
    "database_wide",
    "newer_schema",
    "open_error",
    "primary_code",
    "transient_cause",
]


class StoreError(Exception):
    """The database file cannot be used as it is: one line naming it and what to do."""


def primary_code(error: sqlite3.Error) -> int | None:
    """SQLite's primary result code of ``error`` (None for errors raised by Python's side)."""
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


_CANNOT_OPEN = {sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY}
# A writer elsewhere holding the lock, or a full disk: both pass without anyone's help.
_TRANSIENT = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL}


def open_error(file: Path, error: sqlite3.Error | OSError) -> StoreError | None:
    """The one line for a failure to open or migrate ``file``; None if it is not the file's
    fault (a bug, which deserves its traceback)."""
    if isinstance(error, OSError):  # creating the file or its directory
        reason = error.strerror or type(error).__name__
        if error.filename and Path(error.filename) != file:  # a directory on the way
            reason = f"{error.filename}: {reason}"
        return StoreError(
            f"cannot create the database {file} ({reason}): set MARKOV_DB (or --db) to a "
            "file in a directory this user may write."
        )
    match primary_code(error):
        case sqlite3.SQLITE_NOTADB:
            return StoreError(
                f"{file} is not a SQLite database: point MARKOV_DB (or --db) at the bot's "
                "database, or move this file away to start with an empty one."
            )
        case sqlite3.SQLITE_CORRUPT:
            return StoreError(
                f"the database {file} is damaged (truncated or malformed): restore it from a "
                "backup, or move it away (with its -wal and -shm files) to start afresh."
            )
        case code if code in _CANNOT_OPEN:
            return StoreError(
                f"cannot open the database {file} for reading and writing: check that this "
                "user may read and write it, its -wal and -shm files and its directory."
            )
        case sqlite3.SQLITE_FULL:
            return StoreError(
                f"the disk holding {file} is full: free some space, then start again."
            )
        case sqlite3.SQLITE_BUSY | sqlite3.SQLITE_LOCKED:
            return StoreError(
                f"the database {file} stayed locked by another process: stop it (or wait for "
                "it to finish), then start again."
            )
        case sqlite3.SQLITE_IOERR:
            return StoreError(
                f"the disk failed while reading {file}: check the disk, or restore the "
                "database from a backup."
            )
    return None


def newer_schema(file: Path, found: int, known: int) -> StoreError:
    return StoreError(
        f"the database {file} was written by a newer version of markov-bot (schema {found}; "
        f"this one knows {known}): upgrade markov-bot, or set MARKOV_DB (or --db) to another file."
    )


# PostgreSQL's SQLSTATE classes that pass without anyone's help: connection lost (08),
# out of resources (53, a full disk included), the server restarting (57), a deadlock (40).
_PG_TRANSIENT = ("08", "53", "57", "40")


def _pg_transient(error: BaseException) -> bool:
    """A PostgreSQL failure that is the database's, not one message's (read from SQLSTATE,
    PostgreSQL's API for errors, without importing the driver)."""
    state = getattr(error, "sqlstate", None)
    return isinstance(state, str) and state.startswith(_PG_TRANSIENT)


def transient_cause(error: BaseException) -> BaseException | None:
    """A locked or full database anywhere in ``error``'s chain of causes.

    It can surface as a later error: SQLite rolls a transaction back by itself on some "disk
    is full" errors, so the ROLLBACK that follows fails, chained to the real cause.
    """
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, sqlite3.Error) and primary_code(cause) in _TRANSIENT:
            return cause
        if _pg_transient(cause):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def database_wide(error: BaseException) -> bool:
    """Whether a failed write is the database's (locked, busy, full, read-only, corrupt,
    closed), not one message's: SQLite reports those as ``DatabaseError``s other than a
    constraint or a value it cannot take."""
    if _pg_transient(error) or isinstance(error, ConnectionError):
        return True
    return isinstance(error, sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.IntegrityError | sqlite3.DataError
    )
