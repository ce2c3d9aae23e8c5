"""SQLite storage: the only module that speaks SQL.

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
  read classes, so their cost does not grow with the number of candidates.
* ``anchors`` indexes every fifth 5-token window of each message. Any verbatim run of 10
  words from a message contains one whole anchor, so the originality check looks up a few
  anchors instead of scanning the corpus.

Writes go through one connection in batched transactions (WAL), reads through another, so
a long import never blocks a reply and a reply never sees half a batch. A process killed
mid-batch leaves the last committed state.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from ..model import (
    BOS,
    DEFAULT_ORDER,
    END_LABEL,
    EOS,
    MAX_ORDER,
    START_LABEL,
    Found,
    MemoryModel,
    UnknownStart,
    contribution,
    longest_shared_run,
    pack,
    unpack,
)
from ..sampling import CountClass
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "Incoming",
    "LearnResult",
    "Namespace",
    "Stats",
    "Store",
    "StoreModel",
    "message_key",
]

log = logging.getLogger(__name__)

ANCHOR = 5  # tokens per anchor window; a copy of 2*ANCHOR words always contains one
_CHUNK = 500  # ids per IN (...) list


Transitions = Counter[tuple[int, ...]]


def message_key(*parts: object) -> int:
    """A stable 63-bit id for a message that has no Discord id (a line of a file)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


@dataclass(frozen=True, slots=True)
class Namespace:
    id: int
    name: str
    order: int


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message to learn: its tokens, already produced by :func:`bot.tokenize.tokenize`."""

    id: int
    tokens: Sequence[str]
    author: int | None = None
    channel: int | None = None  # for a thread, its parent channel
    created: float | None = None
    thread: int | None = None  # the thread it was posted in, if any


@dataclass(frozen=True, slots=True)
class LearnResult:
    learned: int
    duplicates: int  # already learned under the same id: counted once
    empty: int  # nothing to learn (no words)
    tokens: int


@dataclass(frozen=True, slots=True)
class Stats:
    messages: int
    tokens: int
    vocabulary: int
    contexts: int
    order: int
    top_words: list[tuple[str, int]]
    channels: list[tuple[int | None, int]]
    authors: int
    database_bytes: int


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _anchors(tokens: Sequence[int]) -> list[bytes]:
    if len(tokens) < 2 * ANCHOR:
        return []  # too short to hold a copy-length run
    body = pack(tokens)
    step = 4 * ANCHOR
    return [body[i : i + step] for i in range(0, len(body) - step + 1, step)]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class Store:
    """The SQLite file. Open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> Store:
        """Open (creating with owner-only permissions) and migrate the database."""
        file = Path(path)
        # Once at start-up, before the bot answers anything: a blocking check is harmless.
        if str(file) != ":memory:" and not file.exists():  # noqa: ASYNC240
            file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(file, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        writer = await aiosqlite.connect(file, isolation_level=None)
        try:
            await cls._configure(writer)
            await cls._migrate(writer)
            reader = await aiosqlite.connect(file, isolation_level=None)
            await cls._configure(reader)
        except BaseException:
            await writer.close()
            raise
        return cls(file, writer, reader)

    @staticmethod
    async def _configure(db: aiosqlite.Connection) -> None:
        # WAL lets the reader keep answering while a batch is written; NORMAL sync keeps
        # every committed batch across a process crash (only an OS crash may lose the
        # last few), at a fraction of FULL's cost.
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA busy_timeout = 5000")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.execute(
            "PRAGMA cache_size = -96000"
        )  # 96 MB page cache at most, allocated as used
        await db.execute("PRAGMA temp_store = MEMORY")

    @staticmethod
    async def _migrate(db: aiosqlite.Connection) -> None:
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"The database was written by a newer version (schema {version}); "
                f"this one knows schema {SCHEMA_VERSION}."
            )
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
        async with self._write_lock:
            await self._reader.close()
            try:
                await self._writer.execute("PRAGMA optimize")
            finally:
                await self._writer.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
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
        return StoreModel(self._reader, ns)

    # ------------------------------------------------------------------ learning

    async def learn(self, ns: Namespace, batch: Sequence[Incoming]) -> LearnResult:
        """Learn a batch of messages in one transaction; ids already learned are skipped."""
        if not batch:
            return LearnResult(0, 0, 0, 0)
        async with self._transaction() as db:
            known: set[int] = set()
            for part in _chunks([m.id for m in batch]):
                sql = f"SELECT id FROM messages WHERE ns = ? AND id IN ({_marks(len(part))})"
                async with db.execute(sql, (ns.id, *part)) as cur:
                    known.update([int(r[0]) async for r in cur])
            fresh: dict[int, Incoming] = {}
            empty = duplicates = 0
            for m in batch:
                if m.id in known or m.id in fresh:
                    duplicates += 1
                elif not m.tokens:
                    empty += 1
                else:
                    fresh[m.id] = m
            if not fresh:
                return LearnResult(0, duplicates, empty, 0)
            # First-seen order: ids break ties between equally frequent candidates, so they
            # must not depend on hash order.
            ordered = dict.fromkeys(t for m in fresh.values() for t in m.tokens)
            ids = await self._intern(db, ns, list(ordered))
            sequences = {mid: [ids[t] for t in m.tokens] for mid, m in fresh.items()}
            await db.executemany(
                "INSERT INTO messages (ns, id, author, channel, created, tokens, thread) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (ns.id, mid, m.author, m.channel, m.created, pack(sequences[mid]), m.thread)
                    for mid, m in fresh.items()
                ],
            )
            await db.executemany(
                "INSERT OR IGNORE INTO anchors (ns, gram, msg) VALUES (?, ?, ?)",
                [(ns.id, g, mid) for mid, seq in sequences.items() for g in _anchors(seq)],
            )
            await self._apply(db, ns, list(sequences.values()), +1)
        return LearnResult(len(fresh), duplicates, empty, sum(map(len, sequences.values())))

    async def _intern(
        self, db: aiosqlite.Connection, ns: Namespace, tokens: list[str]
    ) -> dict[str, int]:
        """Vocabulary ids for ``tokens``, adding the new ones."""
        await db.execute("CREATE TEMP TABLE IF NOT EXISTS batch_tokens (token TEXT PRIMARY KEY)")
        await db.execute("DELETE FROM temp.batch_tokens")
        await db.executemany(
            "INSERT INTO temp.batch_tokens (token) VALUES (?)", [(t,) for t in tokens]
        )
        await db.executemany(
            "INSERT OR IGNORE INTO vocab (ns, token, folded, count) VALUES (?, ?, ?, 0)",
            [(ns.id, t, t.casefold()) for t in tokens],
        )
        sql = (
            "SELECT v.token, v.id FROM temp.batch_tokens b "
            "JOIN vocab v ON v.ns = ? AND v.token = b.token"
        )
        async with db.execute(sql, (ns.id,)) as cur:
            return {str(t): int(i) for t, i in await cur.fetchall()}

    async def _apply(
        self,
        db: aiosqlite.Connection,
        ns: Namespace,
        sequences: Sequence[Sequence[int]],
        sign: int,
    ) -> None:
        """Add (sign=+1) or remove (sign=-1) the counts of token sequences.

        Learning and forgetting share this, so forgetting is the exact inverse.
        """
        words: Counter[int] = Counter()
        for seq in sequences:
            words.update(seq)
        keys: dict[tuple[int, ...], bytes] = {}
        rows = []
        for gram, n in contribution(sequences, ns.order).items():
            context = gram[:-1]
            key = keys.get(context)
            if key is None:
                key = keys[context] = pack(context)
            rows.append((key, gram[-1], sign * n))
        # Sorted rows hit neighbouring B-tree pages: several times faster than hash order.
        rows.sort()
        await db.executemany(
            "UPDATE vocab SET count = count + ? WHERE id = ?",
            [(sign * n, t) for t, n in words.items()],
        )
        await db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS batch_grams (ctx BLOB, next INTEGER, n INTEGER)"
        )
        await db.execute("DELETE FROM temp.batch_grams")
        await db.executemany("INSERT INTO temp.batch_grams (ctx, next, n) VALUES (?, ?, ?)", rows)
        # Count classes move set-wise: every candidate whose count changes leaves its old
        # class and joins its new one. Computed before the counts change, from the join.
        joined = (
            "FROM temp.batch_grams b LEFT JOIN transitions t "
            "ON t.ns = ?1 AND t.ctx = b.ctx AND t.next = b.next"
        )
        await db.execute(
            "INSERT INTO classes (ns, ctx, count, size) "
            f"SELECT ?1, b.ctx, t.count, -COUNT(*) {joined} WHERE t.count IS NOT NULL "
            "GROUP BY b.ctx, t.count "
            "ON CONFLICT (ns, ctx, count) DO UPDATE SET size = size + excluded.size",
            (ns.id,),
        )
        await db.execute(
            "INSERT INTO classes (ns, ctx, count, size) "
            f"SELECT ?1, b.ctx, COALESCE(t.count, 0) + b.n AS c, COUNT(*) {joined} "
            "WHERE c > 0 GROUP BY b.ctx, c "
            "ON CONFLICT (ns, ctx, count) DO UPDATE SET size = size + excluded.size",
            (ns.id,),
        )
        await db.execute(
            "INSERT INTO transitions (ns, ctx, next, count) "
            "SELECT ?, ctx, next, n FROM temp.batch_grams WHERE true "
            "ON CONFLICT (ns, ctx, next) DO UPDATE SET count = count + excluded.count",
            (ns.id,),
        )
        # Classes emptied by the moves above (learning empties them too: the last
        # candidate seen once becomes seen twice).
        await db.execute(
            "DELETE FROM classes WHERE ns = ?1 AND size <= 0 "
            "AND ctx IN (SELECT DISTINCT ctx FROM temp.batch_grams)",
            (ns.id,),
        )
        if sign < 0:
            await db.executemany(
                "DELETE FROM transitions WHERE ns = ? AND ctx = ? AND next = ? AND count <= 0",
                [(ns.id, *r[:2]) for r in rows],
            )
            await db.executemany(
                "DELETE FROM vocab WHERE id = ? AND count <= 0", [(t,) for t in words]
            )

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
        for batch in _chunks(ids, 5_000):
            async with self._transaction() as db:
                blobs: list[tuple[int, bytes]] = []
                for part in _chunks(batch):
                    marks = _marks(len(part))
                    sql = f"SELECT id, tokens FROM messages WHERE ns = ? AND id IN ({marks})"
                    async with db.execute(sql, (ns.id, *part)) as cur:
                        blobs.extend([(int(i), bytes(b)) async for i, b in cur])
                if not blobs:
                    continue
                sequences = [unpack(b) for _, b in blobs]
                await self._apply(db, ns, sequences, -1)
                await db.executemany(
                    "DELETE FROM anchors WHERE ns = ? AND gram = ? AND msg = ?",
                    [
                        (ns.id, g, mid)
                        for (mid, _), s in zip(blobs, sequences, strict=True)
                        for g in _anchors(s)
                    ],
                )
                await db.executemany(
                    "DELETE FROM messages WHERE ns = ? AND id = ?", [(ns.id, m) for m, _ in blobs]
                )
                forgotten += len(blobs)
        return forgotten

    async def purge(self, ns: Namespace) -> int:
        """Delete everything learned in a namespace (the namespace itself stays)."""
        async with self._transaction() as db:
            n = await _scalar(db, "SELECT COUNT(*) FROM messages WHERE ns = ?", ns.id)
            for table in ("classes", "transitions", "vocab", "messages", "anchors"):
                await db.execute(f"DELETE FROM {table} WHERE ns = ?", (ns.id,))
        return int(n)

    async def drop_namespace(self, ns: Namespace) -> int:
        """Purge a namespace and remove its name (an uploaded corpus being deleted)."""
        n = await self.purge(ns)
        async with self._transaction() as db:
            await db.execute("DELETE FROM namespaces WHERE id = ?", (ns.id,))
        return n

    # ------------------------------------------------------------------ reading

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
        known: set[int] = set()
        for part in _chunks(list(ids)):
            sql = f"SELECT id FROM messages WHERE ns = ? AND id IN ({_marks(len(part))})"
            async with self._reader.execute(sql, (ns.id, *part)) as cur:
                known.update([int(r[0]) async for r in cur])
        return known

    async def autocomplete(self, ns: Namespace, prefix: str, limit: int = 25) -> list[str]:
        """Learned words starting with ``prefix`` (any case), most frequent first."""
        folded = prefix.strip().casefold()
        if not folded:
            sql = "SELECT token FROM vocab WHERE ns = ? AND count > 0 ORDER BY count DESC LIMIT ?"
            args: tuple[Any, ...] = (ns.id, limit)
        else:
            sql = (
                "SELECT token FROM vocab WHERE ns = ? AND folded >= ? AND folded < ? "
                "AND count > 0 ORDER BY count DESC LIMIT ?"
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
            db, "SELECT COUNT(*) FROM (SELECT DISTINCT ctx FROM classes WHERE ns = ?)", ns.id
        )
        authors = await _scalar(
            db, "SELECT COUNT(DISTINCT author) FROM messages WHERE ns = ?", ns.id
        )
        sql = (
            "SELECT token, count FROM vocab WHERE ns = ? AND count > 0 ORDER BY count DESC LIMIT ?"
        )
        async with db.execute(sql, (ns.id, top)) as cur:
            top_words = [(str(t), int(c)) async for t, c in cur]
        sql = (
            "SELECT channel, COUNT(*) FROM messages WHERE ns = ? GROUP BY channel "
            "ORDER BY COUNT(*) DESC LIMIT ?"
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
        """A model of only one author's and/or one channel's most recent messages."""
        where, args = ["ns = ?"], [ns.id]
        if author is not None:
            where.append("author = ?")
            args.append(author)
        if channel is not None:
            where.append("channel = ?")
            args.append(channel)
        sql = f"SELECT tokens FROM messages WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        async with self._reader.execute(sql, (*args, limit)) as cur:
            sequences = [unpack(bytes(r[0])) async for r in cur]
        spelled = await self.reader(ns).spell(sorted({t for s in sequences for t in s}))
        names = dict(zip(sorted({t for s in sequences for t in s}), spelled, strict=True))
        model = MemoryModel(ns.order)
        for seq in reversed(sequences):
            model.learn([names[t] for t in seq])
        return model

    async def recount(self, ns: Namespace) -> tuple[Transitions, Transitions]:
        """(stored transition counts, counts recomputed from the stored messages).

        Equal in a consistent database; used by tests and by ``markov-bot check``.
        """
        stored: Transitions = Counter()
        sql = "SELECT ctx, next, count FROM transitions WHERE ns = ?"
        async with self._reader.execute(sql, (ns.id,)) as cur:
            for key, nxt, count in await cur.fetchall():
                stored[(*unpack(bytes(key)), int(nxt))] = int(count)
        async with self._reader.execute("SELECT tokens FROM messages WHERE ns = ?", (ns.id,)) as c:
            sequences = [unpack(bytes(blob)) for (blob,) in await c.fetchall()]
        return stored, contribution(sequences, ns.order)


async def _scalar(db: aiosqlite.Connection, sql: str, *args: Any) -> Any:
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


class StoreModel:
    """:class:`bot.model.ModelReader` over one namespace of the store."""

    def __init__(self, db: aiosqlite.Connection, ns: Namespace) -> None:
        self._db = db
        self.ns = ns

    @property
    def order(self) -> int:
        return self.ns.order

    async def lookup(self, context: Sequence[int]) -> Found | None:
        context = tuple(context[-self.ns.order :])
        keys = [pack(context[i:]) for i in range(len(context))]
        # One round trip: the longest known suffix and its count classes.
        sql = (
            "WITH best AS (SELECT ctx FROM classes WHERE ns = ? AND ctx IN "
            f"({_marks(len(keys))}) ORDER BY length(ctx) DESC LIMIT 1) "
            "SELECT c.ctx, c.count, c.size FROM best JOIN classes c "
            "ON c.ns = ? AND c.ctx = best.ctx ORDER BY c.count DESC"
        )
        async with self._db.execute(sql, (self.ns.id, *keys, self.ns.id)) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return None
        key = bytes(rows[0][0])
        classes = tuple(CountClass(int(r[1]), int(r[2])) for r in rows)
        return Found(key, tuple(unpack(key)), classes)

    async def candidate_at(self, found: Found, count: int, offset: int) -> int:
        sql = (
            "SELECT next FROM transitions WHERE ns = ? AND ctx = ? AND count = ? "
            "ORDER BY next LIMIT 1 OFFSET ?"
        )
        async with self._db.execute(sql, (self.ns.id, found.handle, count, offset)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise LookupError("candidate vanished while sampling")
        return int(row[0])

    async def top_candidates(self, found: Found, limit: int | None) -> list[tuple[int, int]]:
        sql = (
            "SELECT next, count FROM transitions WHERE ns = ? AND ctx = ? "
            "ORDER BY count DESC, next LIMIT ?"
        )
        args = (self.ns.id, found.handle, -1 if limit is None else limit)
        async with self._db.execute(sql, args) as cur:
            return [(int(n), int(c)) for n, c in await cur.fetchall()]

    async def resolve(self, words: Sequence[str]) -> list[int]:
        out: list[int] = []
        for word in words:
            token = await _scalar(
                self._db,
                "SELECT id FROM vocab WHERE ns = ? AND token = ? AND count > 0",
                self.ns.id,
                word,
            )
            if token is None:
                token = await _scalar(
                    self._db,
                    "SELECT id FROM vocab WHERE ns = ? AND folded = ? AND count > 0 "
                    "ORDER BY count DESC LIMIT 1",
                    self.ns.id,
                    word.casefold(),
                )
            if token is None:
                raise UnknownStart(words, await self.suggest(word))
            out.append(int(token))
        return out

    async def suggest(self, word: str, n: int = 5) -> list[str]:
        """Known words spelled like ``word``: frequent words sharing its first letter."""
        folded = word.casefold()
        sql = (
            "SELECT token FROM vocab WHERE ns = ? AND folded >= ? AND folded < ? AND count > 0 "
            "ORDER BY count DESC LIMIT 2000"
        )
        head = folded[:1]
        async with self._db.execute(sql, (self.ns.id, head, head + "\U0010ffff")) as cur:
            pool = [str(r[0]) async for r in cur]
        by_fold: dict[str, str] = {}
        for token in pool:
            by_fold.setdefault(token.casefold(), token)
        close = difflib.get_close_matches(folded, list(by_fold), n=n, cutoff=0.6)
        return [by_fold[c] for c in close]

    async def spell(self, tokens: Sequence[int]) -> list[str]:
        names = {BOS: START_LABEL, EOS: END_LABEL}
        wanted = sorted({t for t in tokens if t not in names})
        for part in _chunks(wanted):
            sql = f"SELECT id, token FROM vocab WHERE ns = ? AND id IN ({_marks(len(part))})"
            async with self._db.execute(sql, (self.ns.id, *part)) as cur:
                names.update({int(i): str(t) async for i, t in cur})
        return [names.get(t, "?") for t in tokens]

    async def longest_copy(self, tokens: Sequence[int], at_least: int) -> int:
        if len(tokens) < at_least:
            return 0
        body = pack(tokens)
        step = 4 * ANCHOR
        grams = list({body[i : i + step] for i in range(0, len(body) - step + 1, 4)})
        sql = (
            f"SELECT DISTINCT msg FROM anchors WHERE ns = ? AND gram IN ({_marks(len(grams))}) "
            "LIMIT 64"
        )
        async with self._db.execute(sql, (self.ns.id, *grams)) as cur:
            messages = [int(r[0]) async for r in cur]
        if not messages:
            return 0
        sql = f"SELECT tokens FROM messages WHERE ns = ? AND id IN ({_marks(len(messages))})"
        async with self._db.execute(sql, (self.ns.id, *messages)) as cur:
            runs = [longest_shared_run(tokens, unpack(bytes(r[0])), at_least) async for r in cur]
        return max(runs, default=0)
