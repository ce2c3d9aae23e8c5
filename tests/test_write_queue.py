"""The write queue against a real SQLite file: order of deletions and new text, what a
refused write keeps, and the limit. (End to end through Discord: test_e2e_degradation.)"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import Incoming, Namespace, Store
from bot.tokenize import tokenize
from bot.write_queue import WriteQueue


class Server:
    """One server's model and the queue in front of it."""

    def __init__(self, store: Store, ns: Namespace) -> None:
        self.store, self.ns = store, ns
        self.channels_gone: list[tuple[int, int]] = []
        self.queue = WriteQueue(store, self.namespace, self.channel_gone)

    async def namespace(self, guild: int) -> Namespace:
        assert guild == 1
        return self.ns

    async def channel_gone(self, guild: int, channel: int) -> None:
        self.channels_gone.append((guild, channel))

    def add(self, mid: int, text: str, channel: int = 10, thread: int | None = None) -> None:
        self.queue.add(1, Incoming(mid, tokenize(text), author=5, channel=channel, thread=thread))

    async def stored(self) -> set[int]:
        return await self.store.known_messages(self.ns, list(range(1, 100)))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    store = await Store.open(tmp_path / "queue.db")
    try:
        yield Server(store, await store.namespace("guild:1"))
    finally:
        await store.close()


async def test_an_edit_replaces_the_old_text_and_deletions_drop_queued_messages(
    server: Server,
) -> None:
    server.add(1, "first words here")
    server.add(2, "second words here")
    assert await server.queue.flush() == 2
    # Edit of 1 (a deletion, then the new text), deletion of 2, 3 deleted while queued.
    server.queue.forget(1, [1])
    server.add(1, "edited words now")
    server.add(3, "soon deleted")
    server.queue.forget(1, [2, 3])
    assert len(server.queue) == 1
    assert await server.queue.flush() == 1
    assert await server.stored() == {1}
    assert await server.store.autocomplete(server.ns, "edit") == ["edited"]
    assert await server.store.autocomplete(server.ns, "fir") == []
    stored, expected = await server.store.recount(server.ns)
    assert stored == expected


async def test_a_refused_write_keeps_everything_and_is_logged_once(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.add(1, "learned before")
    await server.queue.flush()
    await server.store._writer.execute("PRAGMA busy_timeout = 50")
    blocker = sqlite3.connect(server.store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    caplog.set_level(logging.INFO, logger="bot.write_queue")
    try:
        server.add(2, "queued during the lock")
        server.queue.forget(1, [1])
        server.queue.forget_place(1, ("thread", 77))
        for _ in range(3):
            assert await server.queue.flush() == 0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and "locked" in str(failures[0].exc_info)
    assert await server.stored() == {1}
    assert await server.queue.flush() == 1
    assert await server.stored() == {2}
    assert "learning works again" in caplog.text


async def test_a_deleted_channel_takes_its_queued_and_learned_messages(server: Server) -> None:
    server.add(1, "in the channel", channel=10)
    server.add(2, "in its thread", channel=10, thread=11)
    server.add(3, "elsewhere", channel=20)
    await server.queue.flush()
    server.add(4, "queued in the channel", channel=10)
    server.queue.forget_place(1, ("channel", 10))
    assert len(server.queue) == 0
    await server.queue.flush()
    assert await server.stored() == {3}
    assert server.channels_gone == [(1, 10)]


async def test_the_limit_turns_messages_away_once_logged(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.queue.limit = 2
    for mid in range(1, 6):
        server.add(mid, f"message number {mid}")
    assert len(server.queue) == 2
    full = [r for r in caplog.records if "learning queue full" in r.getMessage()]
    assert len(full) == 1
    assert await server.queue.flush() == 2
    assert await server.stored() == {1, 2}
