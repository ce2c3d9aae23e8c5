"""Deleted means gone from the disk, while the store stays open.

Each way the bot deletes what it learned (a member's forget, a deleted message, an edit, a
retention run, a purge, a deleted channel or thread, a dropped corpus) is done through the
real :class:`bot.store.Store` on a real file; within a few seconds, and without closing the
store, a marker word learned only from the deleted messages is in the raw bytes of neither
``markov.db`` nor ``markov.db-wal``. Each test first sees the marker on disk, so its
absence afterwards proves the deletion reached the disk.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.store import Incoming, Namespace, Store

AUTHOR, OTHER = 7, 8
CHANNEL, THREAD, ELSEWHERE = 100, 101, 200
OLD, NEW = time.time() - 90 * 86400, time.time()
WITHIN = 5.0  # seconds the files may take to forget


def marker() -> str:
    """A word no database holds by chance (letters only: the tokenizer keeps it whole)."""
    return "zq" + "".join(secrets.choice("bcdfghjklmnpvwx") for _ in range(14))


def files(path: Path) -> list[Path]:
    return [path, Path(f"{path}-wal")]


def on_disk(path: Path, word: str) -> list[str]:
    """Which of the database's files hold ``word``'s bytes (read raw, as a thief would)."""
    needle = word.encode()
    return [f.name for f in files(path) if f.exists() and needle in f.read_bytes()]


async def gone_from_disk(path: Path, word: str) -> None:
    deadline = time.monotonic() + WITHIN
    while where := await asyncio.to_thread(on_disk, path, word):
        if time.monotonic() > deadline:
            raise AssertionError(f"{word!r} still in {where} {WITHIN} s after the deletion")
        await asyncio.sleep(0.05)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "markov.db")
    try:
        yield s
    finally:
        await s.close()


_ids = itertools.count(1)


def said(word: str, **meta: object) -> list[Incoming]:
    """Three messages with ``word`` in them (and words that stay), by AUTHOR in CHANNEL."""
    fields = {"author": AUTHOR, "channel": CHANNEL, "created": NEW, **meta}
    return [
        Incoming(next(_ids), ["we", "said", word, "and", "more", str(i)], **fields)  # type: ignore[arg-type]
        for i in range(3)
    ]


def kept() -> list[Incoming]:
    """Messages that stay: the model is not empty after the deletion."""
    return [
        Incoming(next(_ids), ["we", "said", "nothing", "much", str(i)], OTHER, ELSEWHERE, NEW)
        for i in range(20)
    ]


Action = Callable[[Store, Namespace, list[Incoming]], Awaitable[object]]


async def edit(store: Store, ns: Namespace, doomed: list[Incoming]) -> None:
    """An edit, as the learning cog writes it: the old text forgotten, the new one learned."""
    await store.forget(ns, [m.id for m in doomed])
    await store.learn(ns, [Incoming(m.id, ["we", "said", "something", "else"]) for m in doomed])


ACTIONS: dict[str, tuple[dict[str, object], Action]] = {
    "member forget": ({}, lambda s, ns, _: s.forget_author(ns, AUTHOR)),
    "message delete": ({}, lambda s, ns, d: s.forget(ns, [m.id for m in d])),
    "edit": ({}, edit),
    "retention": ({"created": OLD}, lambda s, ns, _: s.forget_older_than(ns, OLD + 86400)),
    "purge": ({}, lambda s, ns, _: s.purge(ns)),
    "channel deleted": ({}, lambda s, ns, _: s.forget_channel(ns, CHANNEL)),
    "thread deleted": ({"thread": THREAD}, lambda s, ns, _: s.forget_thread(ns, THREAD)),
    "corpus dropped": ({}, lambda s, ns, _: s.drop_namespace(ns)),
}


@pytest.mark.parametrize("action", list(ACTIONS))
async def test_forgotten_words_leave_both_files(store: Store, action: str) -> None:
    meta, act = ACTIONS[action]
    word = marker()
    ns = await store.namespace("guild:1")
    doomed = said(word, **meta)
    await store.learn(ns, kept() + doomed)
    assert on_disk(store.path, word), "the marker should be on disk once learned"
    assert word in await store.autocomplete(ns, word[:4])

    await act(store, ns, doomed)
    await gone_from_disk(store.path, word)

    assert word not in await store.autocomplete(ns, word[:4])
    if action != "corpus dropped":
        assert await store.check(ns) == []
    # The store is still open and writing.
    await store.learn(ns, kept())


async def test_a_burst_of_deletions_is_wiped_too(store: Store) -> None:
    """Deleted one by one, as Discord reports a bulk delete's messages."""
    words = [marker() for _ in range(30)]
    ns = await store.namespace("guild:1")
    doomed = [said(w) for w in words]
    await store.learn(ns, kept() + [m for batch in doomed for m in batch])
    for batch in doomed:
        await store.forget(ns, [m.id for m in batch])
    for w in words:
        await gone_from_disk(store.path, w)


async def test_a_reader_in_the_way_delays_the_wipe_but_does_not_stop_it(store: Store) -> None:
    """A checkpoint cannot truncate the WAL while another connection still reads an older
    snapshot (a CLI command on the same file): it is retried until it can."""
    word = marker()
    ns = await store.namespace("guild:1")
    doomed = said(word)
    await store.learn(ns, kept() + doomed)
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN")
        assert other.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 23
        await store.forget(ns, [m.id for m in doomed])
        await asyncio.sleep(1.5)
        assert "markov.db-wal" in on_disk(store.path, word)  # the reader's snapshot needs it
        other.execute("COMMIT")
    finally:
        other.close()
    await gone_from_disk(store.path, word)


async def test_the_store_sets_secure_delete_on_every_connection(store: Store) -> None:
    # Some SQLite builds (this machine's among them) have it on by default; others do not.
    for db in (store._writer, store._reader):
        async with db.execute("PRAGMA secure_delete") as cur:
            assert await cur.fetchone() == (1,)
