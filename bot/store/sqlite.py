"""The SQLite backend of :class:`bot.store.base.Store` (the embedded default).

One file holds many independent models, one per *namespace* (a Discord server, the CLI,
a bundled corpus). Every row is reachable only through its namespace, so no query can
see another namespace's words.

Layout, and why:

* ``messages`` keeps each learned message's token ids (not its text). That is the
  provenance that lets a delete, an edit or a member's "forget me" remove exactly the
  counts the message added, lets generation be restricted to one author or channel, and
  makes learning idempotent by message id.
* ``transitions`` (context → next token → count, a context being 1 to ``order`` token
  ids packed as bytes) is the model. ``classes`` is kept in step with ``transitions`` by
  each batch: per context, how many candidates share each count. Sampling and explanation
  read classes, so their cost does not grow with the number of candidates. Transitions
  have no index but their key (one would double the cost of learning): the few contexts
  with more than ``_SMALL`` candidates are walked in key order to find a candidate.
* ``anchors`` indexes (a hash of) every fifth 5-token window of each message. Any
  verbatim run of 9 words from a message contains one whole anchor, so the originality
  check looks up a few anchors instead of scanning the corpus. Shorter runs matter only in
  short outputs (a copy is a run of 70% of the output); those are found through the
  indexes on each message's first and last 4 tokens, which also find a whole message.

Writes go through one plain sqlite3 connection (:mod:`bot.store.sqlite_thread`) in batched
transactions (WAL), each batch one job in
that connection's thread, reads through another, so a long import never blocks a reply
and a reply never sees half a batch. A process killed mid-batch leaves the last
committed state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.core.model import (
    DEFAULT_ORDER,
    MAX_ORDER,
    Ahead,
    MemoryModel,
    ModelReader,
    pack,
    unpack,
)
from bot.store.base import (
    AfterLearning,
    Incoming,
    LearnResult,
    Namespace,
    Statement,
    Stats,
    Store,
    StoredMessage,
    Transitions,
)
from bot.store.errors import StoreError, newer_schema, open_error
from bot.store.guilds import SAVE_BACKFILL, backfill_row
from bot.store.kernels import (
    BUILDER,
    anchor_rows,
    anchors,
    chunks,
    class_moves,
    decode_bodies,
    grams,
    memory_model,
    triage,
    word_class_moves,
)
from bot.store.reading import (
    NEW_VERSION,
    PER_PROBE,
    SMALL,
    Change,
    ReadCache,
    StoredModel,
)
from bot.store.schema import MIGRATIONS, SCHEMA_VERSION
from bot.store.sqlite_thread import ThreadConnection, in_thread_loop
from bot.tasks import create_task

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "StoreError", "StoreModel"]

log = logging.getLogger(__name__)

# Which of a list of message ids (a JSON array) are stored: one statement for any number.
_KNOWN_IDS = "SELECT id FROM messages WHERE ns = ? AND id IN (SELECT value FROM json_each(?))"
_PURGE, _DROP = 1, 2  # namespaces.purging: what a recorded purge must finish
_BUSY_MS = 5000  # how long a write waits for another process's lock
_WIPE_DELAY = 0.5  # seconds from a deletion to the checkpoint that wipes the WAL
_WIPE_RETRY_MAX = 2.0  # seconds between attempts while a reader blocks the checkpoint
_CHECKPOINT_BUSY_MS = 100


T = TypeVar("T")


_SLICE = 20_000  # transitions per statement when learning
_ROWS = 500  # rows per multi-row INSERT (binds ~2x faster than a statement per row)


def _insert_rows(
    conn: sqlite3.Connection, head: str, row: str, width: int, flat: Sequence[Any]
) -> None:
    """Insert ``flat`` (rows of ``width`` values laid end to end) with ``head`` followed by
    ``row`` repeated: ``_ROWS`` rows per statement."""
    step = _ROWS * width
    full = len(flat) // step * step
    if full:
        sql = head + ",".join([row] * _ROWS)
        conn.executemany(sql, [flat[i : i + step] for i in range(0, full, step)])
    if full < len(flat):
        sql = head + ",".join([row] * ((len(flat) - full) // width))
        conn.execute(sql, flat[full:])


def _json_ints(values: Any) -> str:
    """A numpy integer array as a JSON array (a list's repr is one, and quicker to make)."""
    return repr(values.tolist())


def _ints(text: str) -> Any:
    """A JSON array of integers (from json_group_array) as a numpy array."""
    import numpy as np

    if text == "[]":
        return np.zeros(0, dtype=np.int64)
    return np.fromstring(text[1:-1], dtype=np.int64, sep=",")


#: The words of a JSON list of vocabulary ids (``+ns``: the id is the better index).
#: A context's count classes (0, ctx, count, size), then its candidates (0, NULL, next,
#: count), all if at most SMALL, else the first: StoredModel._lookup_rows, nothing read ahead.
_CONTEXT = (
    "SELECT 0, ctx, count, size FROM classes WHERE ns = ?1 AND ctx = ?2 UNION ALL "
    "SELECT 0, NULL, * FROM (SELECT next, count FROM transitions WHERE ns = ?1 AND ctx = ?2 "
    "ORDER BY next LIMIT (SELECT CASE WHEN sum(size) < ?3 THEN ?3 ELSE 1 END FROM classes "
    "WHERE ns = ?1 AND ctx = ?2))"
)
_SPELL = "SELECT id, token FROM vocab WHERE +ns = ? AND id IN (SELECT value FROM json_each(?))"


async def _in_writer_thread(db: ThreadConnection, job: Callable[..., T], *args: Any) -> T:
    """``job(connection, *args)`` run in the thread that owns the write connection."""
    return await db.run(job, *args)


class SQLiteStore(Store):
    """The SQLite file. Open with :func:`bot.store.open_store`, close with :meth:`close`."""

    def __init__(
        self,
        path: Path,
        writer: ThreadConnection,
        reader: aiosqlite.Connection,
        requests: ThreadConnection,
    ):
        self.path = path
        self.where = str(path)
        self._exclusive: dict[str, asyncio.Lock] = {}
        self._writer = writer
        self._reader = reader
        self._requests = requests  # whole generations and explanations, one hop each
        self._write_lock = asyncio.Lock()
        self._wiper: asyncio.Task[None] | None = None
        self._wipe_wanted = False
        self.read_cache = ReadCache()  # reads remembered across requests

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open_file(cls, path: str | os.PathLike[str]) -> SQLiteStore:
        """Open (creating with owner-only permissions) and migrate the database.

        A file that cannot serve as the database (not one, damaged, from a newer version,
        not readable and writable) raises :class:`StoreError`, whose message is the one
        line to show whoever runs the bot.
        """
        file = Path(path)
        try:
            return await cls._open(file)
        except (sqlite3.Error, OSError) as e:
            problem = open_error(file, e)
            if problem is None:
                raise
            raise problem from e

    @classmethod
    async def _open(cls, file: Path) -> SQLiteStore:
        # Once at start-up, before the bot answers anything: a blocking check is harmless.
        if str(file) != ":memory:" and not file.exists():  # noqa: ASYNC240
            file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(file, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        # A file SQLite cannot open at all fails here, not in aiosqlite's connect, which
        # leaves its worker thread to report to an event loop that may be gone by then.
        sqlite3.connect(file).close()
        writer = await ThreadConnection.connect(file)
        reader: aiosqlite.Connection | None = None
        requests: ThreadConnection | None = None
        try:
            await cls._configure(writer)
            await cls._migrate(writer, file)
            reader = await aiosqlite.connect(file, isolation_level=None)
            await cls._configure(reader)
            requests = await ThreadConnection.connect(file, "reader")
            await cls._configure(requests)
            await requests.execute("PRAGMA query_only = ON")
        except BaseException:
            if requests is not None:
                await requests.close()
            if reader is not None:
                await reader.close()
            await writer.close()
            raise
        store = cls(file, writer, reader, requests)
        try:
            await store._resume_purges()
        except BaseException:
            await store.close()
            raise
        return store

    @staticmethod
    async def _configure(db: aiosqlite.Connection | ThreadConnection) -> None:
        # WAL lets the reader keep answering while a batch is written; NORMAL sync keeps
        # every committed batch across a process crash (only an OS crash may lose the
        # last few), at a fraction of FULL's cost.
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
        await db.execute("PRAGMA foreign_keys = ON")
        # Deleted rows are overwritten with zeros, not just unlinked: forgotten words must
        # leave the file (the WAL's older copies of the pages go with _wipe_soon).
        await db.execute("PRAGMA secure_delete = ON")
        # 8 MB page cache per connection: the OS caches the file anyway, and a bigger cache
        # barely speeds up learning (measured: bench/benchmark.py) while it adds to the
        # process's memory. Temporary tables and sorts spill to a file, not to memory.
        await db.execute("PRAGMA cache_size = -8000")
        await db.execute("PRAGMA temp_store = FILE")

    @staticmethod
    async def _migrate(db: ThreadConnection, file: Path) -> None:
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise newer_schema(file, version, SCHEMA_VERSION)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            log.info("migrating database schema to version %d", target)
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(MIGRATIONS[target - 1]):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {target}")
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        wiper, self._wiper = self._wiper, None
        if wiper is not None and not wiper.done():
            wiper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await wiper
        async with self._write_lock:
            await self._requests.close()
            await self._reader.close()
            if self._wipe_wanted:  # another process may keep the WAL after we close
                try:
                    await self._truncate_wal()
                except sqlite3.Error as e:
                    log.warning("could not checkpoint the WAL on close: %s", e)
            try:
                await self._writer.execute("PRAGMA optimize")
            except sqlite3.Error as e:  # only an optimisation: a full disk must not stop it
                log.warning("PRAGMA optimize skipped on close: %s", e)
            finally:
                await self._writer.close()

    # ------------------------------------------------------------------ wiping the WAL

    def _wipe_soon(self) -> None:
        """After a deletion commits: the main file's pages are zeroed (secure_delete), but
        the WAL still holds their earlier versions, forgotten words included, until it is
        checkpointed and truncated. Done ``_WIPE_DELAY`` s later, so a burst of deletions
        (a bulk delete arrives one message at a time) costs one checkpoint."""
        self._wipe_wanted = True
        if self._wiper is None or self._wiper.done():
            self._wiper = create_task(self._wipe(), name="wiping the WAL")

    async def _wipe(self) -> None:
        delay, blocked = _WIPE_DELAY, False
        while self._wipe_wanted:
            await asyncio.sleep(delay)
            self._wipe_wanted = False
            try:
                done = await self._locked_truncate_wal()
            except sqlite3.Error as e:
                log.warning("checkpointing the WAL failed (%s); retrying", e)
                done = False
            if done:
                delay = _WIPE_DELAY
                if blocked:
                    log.info("the WAL is checkpointed: deleted words are gone from the disk")
                blocked = False
                continue
            # Another connection still reads an older snapshot: never skipped, retried.
            self._wipe_wanted = True
            if not blocked:
                log.warning(
                    "a reader of %s keeps the WAL from being truncated; deleted words stay "
                    "in it until it can be (retrying)",
                    self.path,
                )
            blocked, delay = True, min(2 * delay, _WIPE_RETRY_MAX)

    async def _locked_truncate_wal(self) -> bool:
        async with self._write_lock:
            return await self._truncate_wal()

    async def _truncate_wal(self) -> bool:
        """Copy the WAL into the main file and empty it; False if a reader prevented it.

        A short busy timeout: a reader in the way is waited for by the retry, not here,
        where writers would wait too (the write lock is held).
        """
        db = self._writer
        await db.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_BUSY_MS}")
        try:
            async with db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
                row = await cur.fetchone()
        finally:
            await db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
        return row is not None and int(row[0]) == 0

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[ThreadConnection]:
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                # SQLite has already rolled back after some errors ("disk is full"); a
                # second ROLLBACK would fail and hide the error that matters.
                if self._writer.in_transaction:
                    await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")

    async def _one(self, sql: str, *args: Any) -> Any:
        async with self._reader.execute(sql, args) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ namespaces

    async def namespace(self, name: str, order: int = DEFAULT_ORDER) -> Namespace:
        """The namespace called ``name``, created on first use with context ``order``."""
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"order must be 1 to {MAX_ORDER}")
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO namespaces (name, ord, created) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, order, time.time()),
            )
            async with db.execute("SELECT id, ord FROM namespaces WHERE name = ?", (name,)) as c:
                row = await c.fetchone()
        assert row is not None
        return Namespace(int(row[0]), name, int(row[1]))

    async def namespaces(self) -> list[Namespace]:
        async with self._reader.execute("SELECT id, name, ord FROM namespaces ORDER BY id") as c:
            return [Namespace(int(i), str(n), int(o)) async for i, n, o in c]

    def reader(self, ns: Namespace) -> StoreModel:
        return StoreModel(self._reader.execute_fetchall, ns, self.read_cache, self._requests)

    # ------------------------------------------------------------------ learning

    async def learn(
        self,
        ns: Namespace,
        batch: Sequence[Incoming],
        *,
        also: AfterLearning | None = None,
    ) -> LearnResult:
        if not batch and also is None:
            return LearnResult(0, 0, 0, 0)
        changes: list[Change] = []
        async with self._transaction() as db:
            result = await _in_writer_thread(db, self._learn_and, ns, batch, also, changes)
        self.read_cache.advance(*changes)
        return result

    def _learn_and(
        self,
        conn: sqlite3.Connection,
        ns: Namespace,
        batch: Sequence[Incoming],
        also: AfterLearning | None,
        changes: list[Change],
    ) -> LearnResult:
        result = self._learn(conn, ns, batch, changes) if batch else LearnResult(0, 0, 0, 0)
        if also is not None:
            conn.execute(SAVE_BACKFILL, backfill_row(also(result)))
        return result

    # The write path runs as one job in the writer connection's own thread: SQLite works
    # without the GIL, so the event loop (tokenizing the next batch of an import, or
    # answering) keeps going meanwhile, and a batch costs one hop between the threads.

    def _learn(
        self,
        conn: sqlite3.Connection,
        ns: Namespace,
        batch: Sequence[Incoming],
        changes: list[Change],
    ) -> LearnResult:
        rows = conn.execute(_KNOWN_IDS, (ns.id, json.dumps([m.id for m in batch])))
        known = {int(r[0]) for r in rows}
        fresh, duplicates, empty = triage(batch, known)
        if not fresh:
            return LearnResult(0, duplicates, empty, 0)
        # First-seen order (a Counter keeps it): ids break ties between equally frequent
        # candidates, so they must not depend on hash order.
        words = Counter(chain.from_iterable(m.tokens for m in fresh.values()))
        ids = self._intern(conn, ns, words)
        bodies = {mid: pack(list(map(ids.__getitem__, m.tokens))) for mid, m in fresh.items()}
        conn.executemany(
            "INSERT INTO messages (ns, id, author, channel, created, tokens, thread) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (ns.id, mid, m.author, m.channel, m.created, bodies[mid], m.thread)
                for mid, m in sorted(fresh.items())  # id order: the id index's order
            ],
        )
        _insert_rows(
            conn,
            "INSERT OR IGNORE INTO anchors (ns, gram, msg) VALUES ",
            f"({int(ns.id)}, ?, ?)",
            2,
            anchor_rows(bodies),
        )
        changes.append(self._apply(conn, ns, list(bodies.values()), +1))
        return LearnResult(len(fresh), duplicates, empty, sum(map(len, bodies.values())) // 4)

    def _intern(
        self, conn: sqlite3.Connection, ns: Namespace, words: Counter[str]
    ) -> dict[str, int]:
        """Vocabulary ids of ``words``, numbering new ones in the Counter's order, with
        their counts added in the same statements (a few hundred words each)."""
        ids: dict[str, int] = {}
        items = list(words.items())
        for start in range(0, len(items), _ROWS):
            part = items[start : start + _ROWS]
            sql = (
                "INSERT INTO vocab (ns, token, folded, count) VALUES "
                + ",".join([f"({int(ns.id)}, ?, ?, ?)"] * len(part))
                + " ON CONFLICT (ns, token) DO UPDATE SET count = count + excluded.count "
                "RETURNING token, id, count"
            )
            values = [x for t, n in part for x in (t, t.casefold(), n)]
            rows = conn.execute(sql, values).fetchall()
            ids.update((t, i) for t, i, _ in rows)
            _move_word_classes(conn, ns, ((c - words[t], c) for t, _, c in rows))
        return ids

    def _apply(
        self,
        conn: sqlite3.Connection,
        ns: Namespace,
        bodies: Sequence[bytes],
        sign: int,
    ) -> Change:
        """Add (sign=+1) or remove (sign=-1) the transition counts of packed messages.

        Learning and forgetting share this, so forgetting is the exact inverse. (Word
        counts: learning adds them in :meth:`_intern`, forgetting removes them here.)

        Transitions go to SQLite in bulk: numpy packs their contexts end to end in one blob
        and the rest in a JSON array, which statements slice and decode, so no Python
        object is made per transition. The counts they had are read in the same way, and
        from them numpy works out how the count classes move.
        """
        import numpy as np

        version = conn.execute(NEW_VERSION, (ns.id,)).fetchone()  # remembered reads: stale
        # CROSS JOIN keeps the batch as the outer loop whatever the planner estimates.
        rows = (
            "FROM json_each(?4) j CROSS JOIN transitions t ON t.ns = ?1 "
            "AND t.ctx = substr(?2, j.key * ?3 + 1, ?3) AND t.next = j.value >> 31"
        )
        batch = grams(bodies, ns.order, sign)
        for g in batch:
            width, size = 4 * g.k, len(g.next)
            old = np.zeros(size, dtype=np.int64)
            for i in range(0, size, _SLICE):
                j = min(size, i + _SLICE)
                contexts = g.contexts[g.group[i:j]].tobytes()
                values = _json_ints((g.next[i:j].astype(np.int64) << 31) | (g.n[i:j] + 2**30))
                args = (ns.id, contexts, width, values)
                # The counts these transitions have now (those that exist), then the new.
                at, counts = conn.execute(
                    f"SELECT json_group_array(j.key), json_group_array(t.count) {rows}", args
                ).fetchone()
                old[_ints(at) + i] = _ints(counts)
                conn.execute(
                    "INSERT INTO transitions (ns, ctx, next, count) "
                    "SELECT ?1, substr(?2, key * ?3 + 1, ?3), value >> 31, "
                    "(value & 2147483647) - 1073741824 FROM json_each(?4) WHERE true "
                    "ON CONFLICT (ns, ctx, next) DO UPDATE SET count = count + excluded.count",
                    args,
                )
            new = old + g.n
            if sign < 0:
                gone = np.flatnonzero(new <= 0)
                contexts = g.contexts[g.group[gone]].tobytes()
                conn.executemany(
                    "DELETE FROM transitions WHERE ns = ? AND ctx = ? AND next = ?",
                    [
                        (ns.id, contexts[width * r : width * (r + 1)], int(t))
                        for r, t in enumerate(g.next[gone])
                    ],
                )
            # Count classes move set-wise: every candidate whose count changes leaves the
            # class of its old count and joins the class of its new one. Moves that cancel
            # out within a context are dropped; a class emptied by them is deleted by the
            # trigger classes_empty.
            moves, sizes = class_moves(g.group, old, new)
            del old, new
            for i in range(0, len(moves), _SLICE):
                part = moves[i : i + _SLICE]
                contexts = g.contexts[part >> 32].tobytes()  # part: context << 32 | count
                values = ((part & 0xFFFFFFFF) << 32) | (sizes[i : i + _SLICE] + 2**31)
                conn.execute(
                    "INSERT INTO classes (ns, ctx, count, size) "
                    "SELECT ?1, substr(?2, key * ?3 + 1, ?3), value >> 32, "
                    "(value & 4294967295) - 2147483648 FROM json_each(?4) WHERE true "
                    "ON CONFLICT (ns, ctx, count) DO UPDATE SET size = size + excluded.size",
                    (ns.id, contexts, width, _json_ints(values)),
                )
        if sign < 0:
            words = Counter(chain.from_iterable(map(unpack, bodies)))
            had = conn.execute(
                "SELECT id, count FROM vocab WHERE +ns = ? AND id IN "
                "(SELECT value FROM json_each(?))",
                (ns.id, json.dumps(list(words))),
            ).fetchall()
            _move_word_classes(conn, ns, ((c, c - words[i]) for i, c in had))
            conn.executemany(
                "UPDATE vocab SET count = count - ? WHERE id = ?",
                [(n, t) for t, n in words.items()],
            )
            conn.executemany("DELETE FROM vocab WHERE id = ? AND count <= 0", [(t,) for t in words])
        return Change.of(ns.id, None if version is None else version[0], batch)

    # ------------------------------------------------------------------ forgetting

    async def forget(self, ns: Namespace, message_ids: Sequence[int]) -> int:
        """Remove messages and exactly their contribution; returns how many were known."""
        return await self._forget_ids(ns, list(message_ids))

    async def forget_author(self, ns: Namespace, author: int) -> int:
        return await self._forget_selected(ns, "author = ?", (author,))

    async def forget_channel(self, ns: Namespace, channel: int) -> int:
        """A channel's messages, its threads' included (they are stored under it)."""
        return await self._forget_selected(ns, "channel = ?", (channel,))

    async def forget_thread(self, ns: Namespace, thread: int) -> int:
        return await self._forget_selected(ns, "thread = ?", (thread,))

    async def forget_older_than(self, ns: Namespace, timestamp: float) -> int:
        return await self._forget_selected(ns, "created < ?", (timestamp,))

    async def _forget_selected(self, ns: Namespace, where: str, args: tuple[Any, ...]) -> int:
        sql = f"SELECT id FROM messages WHERE ns = ? AND {where}"
        async with self._reader.execute(sql, (ns.id, *args)) as cur:
            ids = [int(r[0]) async for r in cur]
        return await self._forget_ids(ns, ids)

    async def _forget_ids(self, ns: Namespace, ids: list[int]) -> int:
        forgotten = 0
        for batch in chunks(ids, 5_000):
            changes: list[Change] = []
            async with self._transaction() as db:
                forgotten += await _in_writer_thread(db, self._forget_batch, ns, batch, changes)
            self.read_cache.advance(*changes)
        if forgotten:
            self._wipe_soon()
        return forgotten

    def _forget_batch(
        self, conn: sqlite3.Connection, ns: Namespace, ids: Sequence[int], changes: list[Change]
    ) -> int:
        sql = (
            "SELECT id, tokens FROM messages WHERE ns = ? "
            "AND id IN (SELECT value FROM json_each(?))"
        )
        blobs = [(int(i), bytes(b)) for i, b in conn.execute(sql, (ns.id, json.dumps(ids)))]
        if not blobs:
            return 0
        changes.append(self._apply(conn, ns, [b for _, b in blobs], -1))
        conn.executemany(
            "DELETE FROM anchors WHERE ns = ? AND gram = ? AND msg = ?",
            [(ns.id, g, mid) for mid, b in blobs for g in anchors(b)],
        )
        conn.executemany(
            "DELETE FROM messages WHERE ns = ? AND id = ?", [(ns.id, m) for m, _ in blobs]
        )
        return len(blobs)

    async def purge(self, ns: Namespace) -> int:
        """Delete everything learned in a namespace (the namespace itself stays)."""
        return await self._purge(ns.id, _PURGE)

    async def drop_namespace(self, ns: Namespace) -> int:
        """Purge a namespace and remove its name (an uploaded corpus being deleted)."""
        return await self._purge(ns.id, _DROP)

    async def _purge(self, ns_id: int, mode: int) -> int:
        # The request is committed before the deletion starts, so a crash in the middle
        # (which rolls the deletion back) leaves a record that open() finishes: someone
        # asked for their data to go, and it must go even if nobody asks twice.
        async with self._transaction() as db:
            await db.execute(
                "UPDATE namespaces SET purging = max(purging, ?) WHERE id = ?", (mode, ns_id)
            )
        async with self._transaction() as db:
            n = await _scalar(db, "SELECT COUNT(*) FROM messages WHERE ns = ?", ns_id)
            for table in ("classes", "transitions", "vocab", "messages", "anchors"):
                await db.execute(f"DELETE FROM {table} WHERE ns = ?", (ns_id,))
            if mode == _DROP:
                await db.execute("DELETE FROM namespaces WHERE id = ?", (ns_id,))
            else:
                await db.execute(
                    "UPDATE namespaces SET purging = 0, version = version + 1 WHERE id = ?",
                    (ns_id,),
                )
        self._wipe_soon()
        return int(n)

    async def _resume_purges(self) -> None:
        async with self._writer.execute(
            "SELECT id, name, purging FROM namespaces WHERE purging > 0"
        ) as cur:
            pending = [(int(i), str(name), int(mode)) for i, name, mode in await cur.fetchall()]
        for ns_id, name, mode in pending:
            n = await self._purge(ns_id, mode)
            log.warning("finished the purge of %s cut short by a crash: %d messages", name, n)

    # ------------------------------------------------------------------ reading

    async def is_complete(self, ns: Namespace) -> bool:
        """Whether :meth:`mark_complete` was called: a bulk import that committed its last
        batch (one cut short leaves some batches in, and must be run again)."""
        return bool(await self._one("SELECT complete FROM namespaces WHERE id = ?", ns.id))

    async def mark_complete(self, ns: Namespace) -> None:
        async with self._transaction() as db:
            await db.execute("UPDATE namespaces SET complete = 1 WHERE id = ?", (ns.id,))

    async def is_empty(self, ns: Namespace) -> bool:
        return await self._one("SELECT 1 FROM messages WHERE ns = ? LIMIT 1", ns.id) is None

    async def last_message(self, ns: Namespace, channel: int) -> int | None:
        """The newest learned message id of a channel: where catch-up resumes."""
        sql = "SELECT MAX(id) FROM messages WHERE ns = ? AND channel = ?"
        value = await self._one(sql, ns.id, channel)
        return None if value is None else int(value)

    async def author_messages(self, ns: Namespace, author: int) -> int:
        """How many of one member's messages are stored (for their privacy status)."""
        sql = "SELECT COUNT(*) FROM messages WHERE ns = ? AND author = ?"
        return int(await self._one(sql, ns.id, author))

    async def known_messages(self, ns: Namespace, ids: Sequence[int]) -> set[int]:
        rows = await self._reader.execute_fetchall(_KNOWN_IDS, (ns.id, json.dumps(list(ids))))
        return {int(r[0]) for r in rows}

    async def autocomplete(self, ns: Namespace, prefix: str, limit: int = 25) -> list[str]:
        """Learned words starting with ``prefix`` (any case), most frequent first."""
        folded = prefix.strip().casefold()
        if not folded:
            sql = (
                "SELECT token FROM vocab WHERE ns = ? AND count > 0 "
                "ORDER BY count DESC, id DESC LIMIT ?"
            )
            args: tuple[Any, ...] = (ns.id, limit)
        else:
            sql = (
                "SELECT token FROM vocab WHERE ns = ? AND folded >= ? AND folded < ? "
                "AND count > 0 ORDER BY count DESC, id DESC LIMIT ?"
            )
            args = (ns.id, folded, folded + "\U0010ffff", limit)
        async with self._reader.execute(sql, args) as cur:
            return [str(r[0]) async for r in cur]

    async def stats(self, ns: Namespace, top: int = 10) -> Stats:
        db = self._reader
        messages = await _scalar(db, "SELECT COUNT(*) FROM messages WHERE ns = ?", ns.id)
        tokens = await _scalar(
            db, "SELECT COALESCE(SUM(count), 0) FROM vocab WHERE ns = ? AND count > 0", ns.id
        )
        vocabulary = await _scalar(
            db, "SELECT COUNT(*) FROM vocab WHERE ns = ? AND count > 0", ns.id
        )
        contexts = await _scalar(
            db, "SELECT COUNT(DISTINCT ctx) FROM classes WHERE ns = ? AND ctx <> X''", ns.id
        )
        authors = await _scalar(
            db, "SELECT COUNT(DISTINCT author) FROM messages WHERE ns = ?", ns.id
        )
        sql = (
            "SELECT token, count FROM vocab WHERE ns = ? AND count > 0 "
            "ORDER BY count DESC, id DESC LIMIT ?"
        )
        async with db.execute(sql, (ns.id, top)) as cur:
            top_words = [(str(t), int(c)) async for t, c in cur]
        sql = (
            "SELECT channel, COUNT(*) FROM messages WHERE ns = ? GROUP BY channel "
            "ORDER BY COUNT(*) DESC, channel LIMIT ?"
        )
        async with db.execute(sql, (ns.id, top)) as cur:
            channels = [(None if c is None else int(c), int(n)) async for c, n in cur]
        pages = await _scalar(db, "PRAGMA page_count")
        page_size = await _scalar(db, "PRAGMA page_size")
        return Stats(
            messages=int(messages),
            tokens=int(tokens),
            vocabulary=int(vocabulary),
            contexts=int(contexts),
            order=ns.order,
            top_words=top_words,
            channels=channels,
            authors=int(authors),
            database_bytes=int(pages) * int(page_size),
        )

    async def selection(
        self,
        ns: Namespace,
        *,
        author: int | None = None,
        channel: int | None = None,
        limit: int = 20_000,
    ) -> MemoryModel:
        """A model of only one author's and/or one channel's most recent messages.

        The rows are read in one call of the reader connection; decoding them and building
        the model (a second or more of Python for 20,000 messages) run in a worker thread:
        on the event loop they would hold up every other interaction past Discord's 3
        seconds, and in the reader's own thread every other read."""
        where, args = ["ns = ?"], [ns.id]
        if author is not None:
            where.append("author = ?")
            args.append(author)
        if channel is not None:
            where.append("channel = ?")
            args.append(channel)
        sql = f"SELECT tokens FROM messages WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        loop = asyncio.get_running_loop()
        rows = await self._reader.execute_fetchall(sql, (*args, limit))
        sequences, wanted = await loop.run_in_executor(BUILDER, decode_bodies, rows)
        spelled = await self._reader.execute_fetchall(_SPELL, (ns.id, wanted))
        return await loop.run_in_executor(BUILDER, memory_model, ns.order, sequences, spelled)

    async def _stored_transitions(self, ns: Namespace) -> Transitions:
        stored: Transitions = Counter()
        sql = "SELECT ctx, next, count FROM transitions WHERE ns = ?"
        for key, nxt, count in await self._reader.execute_fetchall(sql, (ns.id,)):
            stored[(*unpack(bytes(key)), int(nxt))] = int(count)
        return stored

    async def _sequences(self, ns: Namespace) -> list[list[int]]:
        """Every stored message's token ids."""
        sql = "SELECT tokens FROM messages WHERE ns = ?"
        return [unpack(bytes(b)) for (b,) in await self._reader.execute_fetchall(sql, (ns.id,))]

    async def _vocab_counts(self, ns: Namespace) -> dict[int, int]:
        rows = await self._reader.execute_fetchall(
            "SELECT id, count FROM vocab WHERE ns = ?", (ns.id,)
        )
        return {int(i): int(c) for i, c in rows}

    async def _class_mismatches(self, ns: Namespace) -> list[tuple[bytes, int, int, int]]:
        sql = (
            "WITH h AS MATERIALIZED (SELECT ctx, count, COUNT(*) AS n FROM transitions "
            "WHERE ns = ?1 GROUP BY ctx, count UNION ALL SELECT X'', count, COUNT(*) "
            "FROM vocab WHERE ns = ?1 AND count > 0 GROUP BY count) "
            "SELECT h.ctx, h.count, h.n, c.size FROM h LEFT JOIN classes c "
            "ON c.ns = ?1 AND c.ctx = h.ctx AND c.count = h.count WHERE c.size IS NOT h.n "
            "UNION ALL SELECT c.ctx, c.count, 0, c.size FROM classes c WHERE c.ns = ?1 "
            "AND NOT EXISTS (SELECT 1 FROM h WHERE h.ctx = c.ctx AND h.count = c.count) "
            "LIMIT 20"
        )
        rows = await self._reader.execute_fetchall(sql, (ns.id,))
        return [(bytes(c), int(k), int(n), int(z or 0)) for c, k, n, z in rows]

    async def _nonpositive(self, ns: Namespace) -> int:
        sql = "SELECT COUNT(*) FROM transitions WHERE ns = ? AND count <= 0"
        return int(await _scalar(self._reader, sql, ns.id))

    # ------------------------------------------------------------------ settings, copies

    async def settings_rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self._reader.execute(sql, args) as cur:
            return [tuple(r) for r in await cur.fetchall()]

    async def settings_write(self, statements: Sequence[Statement]) -> None:
        async with self._transaction() as db:
            for sql, args in statements:
                await db.execute(sql, tuple(args))

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        # One process writes a SQLite file; within it, one task at a time. (A second
        # process would only repeat the work: learning is idempotent by message id.)
        async with self._exclusive.setdefault(name, asyncio.Lock()):
            yield

    async def words(self, ns: Namespace) -> list[str]:
        rows = await self._reader.execute_fetchall(
            "SELECT token FROM vocab WHERE ns = ? ORDER BY id", (ns.id,)
        )
        return [str(r[0]) for r in rows]

    async def reserve_words(self, ns: Namespace, words: Sequence[str]) -> None:
        async with self._transaction() as db:
            await _in_writer_thread(db, self._intern, ns, Counter(dict.fromkeys(words, 0)))

    async def messages(self, ns: Namespace) -> AsyncIterator[list[StoredMessage]]:
        after = None
        sql = (
            "SELECT id, author, channel, created, thread, tokens FROM messages "
            "WHERE ns = ? AND (? IS NULL OR id > ?) ORDER BY id LIMIT 2000"
        )
        while True:
            rows = list(await self._reader.execute_fetchall(sql, (ns.id, after, after)))
            if not rows:
                return
            bodies = [unpack(bytes(r[5])) for r in rows]
            wanted = json.dumps(sorted({t for b in bodies for t in b}))
            spelled = await self._reader.execute_fetchall(_SPELL, (ns.id, wanted))
            names = {int(i): str(t) for i, t in spelled}
            yield [
                StoredMessage(int(r[0]), [names[t] for t in b], r[1], r[2], r[3], r[4])
                for r, b in zip(rows, bodies, strict=True)
            ]
            after = int(rows[-1][0])


async def _scalar(db: aiosqlite.Connection | ThreadConnection, sql: str, *args: Any) -> Any:
    async with db.execute(sql, args) as cur:
        row = await cur.fetchone()
    return row[0] if row else None


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (triggers contain semicolons)."""
    out, current = [], ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


Fetch = Callable[[str, Sequence[Any]], Awaitable[Iterable[Any]]]


class StoreModel(StoredModel):
    """:class:`bot.core.model.ModelReader` over one namespace. Single reads go through the
    reader connection; a whole request (:meth:`run`) goes to the requests thread, whose
    reads are then direct calls: one hop for a generation's thirty reads, instead of one
    hop (the most of a read's time) each."""

    reads_ahead = False  # reads are in-process: each as cheap as a remembered one

    def __init__(
        self,
        fetch: Fetch,
        ns: Namespace,
        cache: ReadCache,
        requests: ThreadConnection | None,
    ) -> None:
        super().__init__(ns, cache)
        self._fetch = fetch
        self._requests = requests  # None: this reader already runs in that thread

    async def run(self, job: Callable[[ModelReader], Awaitable[T]]) -> T:
        if self._requests is None:
            return await super().run(job)
        return await self._requests.run(_request, self.ns, self._cache, job)

    async def _rows(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._fetch(sql, args))

    async def _version_row(self) -> Sequence[Any] | None:
        rows = await self._rows("SELECT created, version FROM namespaces WHERE id = ?", self.ns.id)
        return rows[0] if rows else None

    async def _lookup_rows(self, keys: list[bytes], ahead: Ahead | None) -> list[Any]:
        # Reads are in-process, so nothing is read ahead (``ahead`` is not used). One
        # exact-key query per suffix, longest first: a fifth of the time of one query
        # choosing the longest known suffix itself (its ORDER BY needs a temporary b-tree),
        # and nearly every lookup finds the longest at once.
        for key in keys:
            rows = await self._rows(_CONTEXT, self.ns.id, key, SMALL + 1)
            if rows and rows[0][1] is not None:
                return rows
        return []

    async def _members(
        self,
        key: bytes,
        count: int,
        skip: list[int],
        offset: int,
        limit: int | None,
        start: int = 0,
    ) -> list[int]:
        table, column, where, args = self._where(key, count)
        without = f" AND {column} NOT IN ({','.join('?' * len(skip))})" if skip else ""
        sql = (
            f"SELECT {column} FROM {table} WHERE {where} AND {column} >= ?{without} "
            f"ORDER BY {column} LIMIT ? OFFSET ?"
        )
        page = (-1 if limit is None else limit, offset)
        return [int(r[0]) for r in await self._rows(sql, *args, start, *skip, *page)]

    async def _marks(self, key: bytes, count: int, every: int) -> list[int]:
        # The members as one JSON array, sorted and sampled by numpy: a quarter of the time
        # of numbering them in SQL (a window function: 16 ms for the 23,600 words seen once
        # of the bench's model, which the first request drawing from them paid).
        table, column, where, args = self._where(key, count)
        (members,), *_ = await self._rows(
            f"SELECT json_group_array({column}) FROM {table} WHERE {where}", *args
        )
        ordered = _ints(members)
        ordered.sort()
        return [int(m) for m in ordered[::every]]

    def _where(self, key: bytes, count: int) -> tuple[str, str, str, tuple[Any, ...]]:
        table, column, columns, args = self._class_of(key, count)
        return table, column, " AND ".join(f"{c} = ?" for c in columns), args

    async def _context_rows(self, key: bytes) -> tuple[Any, Any]:
        sql = (
            "SELECT json_group_array(next), json_group_array(count) FROM transitions "
            "WHERE ns = ? AND ctx = ?"
        )
        (nexts, counts), *_ = await self._rows(sql, self.ns.id, key)
        return _ints(nexts), _ints(counts)

    async def _top(self, key: bytes, least: int, limit: int | None) -> list[Any]:
        limit_arg = -1 if limit is None else limit
        if not key:
            sql = (
                "SELECT id, count FROM vocab WHERE ns = ? AND count >= ? "
                "ORDER BY count DESC, id LIMIT ?"
            )
            return await self._rows(sql, self.ns.id, least, limit_arg)
        sql = (
            "SELECT next, count FROM transitions WHERE ns = ? AND ctx = ? AND count >= ? "
            "ORDER BY count DESC, next LIMIT ?"
        )
        return await self._rows(sql, self.ns.id, key, least, limit_arg)

    async def _unigram_rows(self) -> list[Any]:
        sql = "SELECT count, size FROM classes WHERE ns = ? AND ctx = X''"
        return await self._rows(sql, self.ns.id)

    async def _counts(self, key: bytes, tokens: list[int]) -> list[Any]:
        marks = ",".join("?" * len(tokens))
        if not key:  # order 0: the vocabulary
            sql = f"SELECT id, count FROM vocab WHERE ns = ? AND id IN ({marks})"
            return await self._rows(sql, self.ns.id, *tokens)
        sql = f"SELECT next, count FROM transitions WHERE ns = ? AND ctx = ? AND next IN ({marks})"
        return await self._rows(sql, self.ns.id, key, *tokens)

    async def _resolve_one(self, word: str) -> int | None:
        sql = (
            "SELECT id FROM vocab WHERE ns = ?1 AND token = ?2 AND count > 0 UNION ALL "
            "SELECT * FROM (SELECT id FROM vocab WHERE ns = ?1 AND folded = ?3 AND count > 0 "
            "ORDER BY count DESC, id LIMIT 1) LIMIT 1"
        )
        rows = await self._rows(sql, self.ns.id, word, word.casefold())
        return int(rows[0][0]) if rows else None

    async def _spellings(self, head: str) -> list[str]:
        sql = (
            "SELECT token FROM vocab WHERE ns = ? AND folded >= ? AND folded < ? AND count > 0 "
            "ORDER BY count DESC, id LIMIT 2000"
        )
        return [str(r[0]) for r in await self._rows(sql, self.ns.id, head, head + "\U0010ffff")]

    async def _spell_rows(self, ids: list[int]) -> list[Any]:
        return await self._rows(_SPELL, self.ns.id, json.dumps(ids))

    async def _copy_rows(
        self, grams: list[int], heads: list[bytes], tails: list[bytes]
    ) -> list[Any]:
        sql: list[str] = []
        args: list[Any] = [self.ns.id]

        def probe(select: str, values: Sequence[Any]) -> None:
            if values:
                marks = ",".join(f"?{i}" for i in range(len(args) + 1, len(args) + 1 + len(values)))
                args.extend(values)
                sql.append(f"SELECT * FROM ({select.format(marks)} LIMIT {PER_PROBE})")

        # The expressions are the indexes' own (schema 5), so SQLite uses them.
        probe(
            "SELECT tokens FROM messages WHERE ns = ?1 AND id IN (SELECT DISTINCT msg FROM "
            "anchors WHERE ns = ?1 AND gram IN ({}))",
            grams,
        )
        probe(
            "SELECT DISTINCT tokens FROM messages WHERE ns = ?1 AND substr(tokens, 1, 16) IN ({})",
            heads,
        )
        probe(
            "SELECT DISTINCT tokens FROM messages WHERE ns = ?1 AND substr(tokens, -16) IN ({})",
            tails,
        )
        return await self._rows(" UNION ALL ".join(sql), *args)


def _move_word_classes(
    conn: sqlite3.Connection, ns: Namespace, moves: Iterable[tuple[int, int]]
) -> None:
    """Keep the word-frequency classes (context b"") as words' counts move (old, new); a
    class left empty is deleted by the trigger classes_empty."""
    sizes = word_class_moves(moves)
    conn.executemany(
        "INSERT INTO classes (ns, ctx, count, size) VALUES (?, X'', ?, ?) "
        "ON CONFLICT (ns, ctx, count) DO UPDATE SET size = size + excluded.size",
        [(ns.id, c, n) for c, n in sizes.items()],
    )


def _request(
    conn: sqlite3.Connection,
    ns: Namespace,
    cache: ReadCache,
    job: Callable[[ModelReader], Awaitable[T]],
) -> T:
    """In the requests thread: ``job`` against a reader of this thread's connection."""

    async def fetch(sql: str, args: Sequence[Any]) -> list[Any]:
        return conn.execute(sql, tuple(args)).fetchall()

    model = StoreModel(fetch, ns, cache, None)
    return in_thread_loop(lambda: model.run(job))
