"""A plain ``sqlite3`` connection owned by one thread: the SQLite backend's writer, and
the reader that runs whole requests (a generation's thirty reads) in its thread.

Every use of the connection is a job for a one-thread executor, so the connection is only
ever touched from that thread, and a job may run many statements (a whole batch, a whole
request) for one hop between the event loop and the thread. SQLite works without the GIL,
so the event loop keeps answering meanwhile. Public API only: ``sqlite3`` and
``concurrent.futures``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["Rows", "ThreadConnection", "in_thread_loop"]

T = TypeVar("T")


class Rows:
    """What a statement returned, already read (a statement's rows are read in its job)."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows


class _Statement:
    """``await writer.execute(...)`` or ``async with writer.execute(...) as rows``."""

    def __init__(self, run: asyncio.Future[Rows]) -> None:
        self._run = run

    def __await__(self) -> Generator[Any, None, Rows]:
        return self._run.__await__()

    async def __aenter__(self) -> Rows:
        return await self

    async def __aexit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


def _all(conn: sqlite3.Connection, sql: str, parameters: Iterable[Any]) -> Rows:
    return Rows(conn.execute(sql, tuple(parameters)).fetchall())


def _close(conn: sqlite3.Connection) -> None:
    loop = getattr(_thread, "loop", None)
    if loop is not None:
        loop.close()
    conn.close()


_thread = threading.local()  # each connection's thread: its event loop for whole requests


def in_thread_loop(job: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine ``job()`` to completion on this thread's own event loop (made on
    first use), so async code written for the event loop can read the thread's connection
    directly, without a hop per read."""
    loop = getattr(_thread, "loop", None)
    if loop is None:
        loop = _thread.loop = asyncio.new_event_loop()
    return loop.run_until_complete(job())


class ThreadConnection:
    """The connection and the one thread that may use it."""

    def __init__(self, conn: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._thread = thread
        self._closed = False

    @classmethod
    async def connect(cls, path: Path, name: str = "writer") -> ThreadConnection:
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"markov-{name}")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(
                thread,
                partial(sqlite3.connect, path, isolation_level=None, check_same_thread=False),
            )
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(conn, thread)

    async def run(self, job: Callable[..., T], *args: Any) -> T:
        """``job(connection, *args)`` in the connection's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, partial(job, self._conn, *args))

    def execute(self, sql: str, parameters: Iterable[Any] = ()) -> _Statement:
        return _Statement(asyncio.ensure_future(self.run(_all, sql, parameters)))

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    async def close(self) -> None:
        """Close the connection and end its thread (again: nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.run(_close)
        finally:
            self._thread.shutdown(wait=False)
