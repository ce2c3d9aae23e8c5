"""The write queue against a real SQLite file: order of deletions and new text, what a
refused write keeps, and the limit. (End to end through Discord: test_e2e_degradation.)"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.tokenize import tokenize
from bot.services.write_queue import WriteQueue
from bot.store import Incoming, Namespace, Store


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
async def server(store_address: str) -> AsyncIterator[Server]:
    """On each backend."""
    store = await Store.open(store_address)
    try:
        yield Server(store, await store.namespace("guild:1"))
    finally:
        await store.close()


@pytest.fixture
async def sqlite_server(tmp_path: Path) -> AsyncIterator[Server]:
    """For the tests that make SQLite refuse writes (its busy timeout, another writer)."""
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
    sqlite_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    sqlite_server.add(1, "learned before")
    await sqlite_server.queue.flush()
    await sqlite_server.store._writer.execute("PRAGMA busy_timeout = 50")
    blocker = sqlite3.connect(sqlite_server.store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    caplog.set_level(logging.INFO, logger="bot.services.write_queue")
    try:
        sqlite_server.add(2, "queued during the lock")
        sqlite_server.queue.forget(1, [1])
        sqlite_server.queue.forget_place(1, ("thread", 77))
        for _ in range(3):
            assert await sqlite_server.queue.flush() == 0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and "locked" in str(failures[0].exc_info)
    assert await sqlite_server.stored() == {1}
    assert await sqlite_server.queue.flush() == 1
    assert await sqlite_server.stored() == {2}
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


def raw(mid: int, tokens: list[str]) -> Incoming:
    """A message as it would be if it bypassed the cleaning of :func:`tokenize`."""
    return Incoming(mid, tokens, author=5, channel=10)


async def test_one_message_that_cannot_be_stored_is_skipped_and_the_rest_learned(
    server: Server, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A lone surrogate that reached the queue uncleaned: neither backend can encode it. The
    batch is split until that message is alone; it is logged by id, never by its text."""
    error = {"sqlite": "UnicodeEncodeError", "postgres": "DataError"}[backend]
    secret = "private\ud800words"
    for mid in range(1, 41):
        server.add(mid, f"ordinary message number {mid}")
    server.queue.add(1, raw(41, ["hello", secret]))
    for mid in range(42, 61):
        server.add(mid, f"later message number {mid}")
    caplog.set_level(logging.INFO, logger="bot.services.write_queue")
    assert await server.queue.flush() == 59
    assert await server.stored() == set(range(1, 61)) - {41}
    assert len(server.queue) == 0  # the bad one does not stay at the head of the queue
    skipped = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in skipped] == [
        f"message 41 of guild 1 cannot be stored ({error}): skipped, the others are learned"
    ]
    assert "private" not in caplog.text
    # The model holds exactly the messages learned.
    stored, recomputed = await server.store.recount(server.ns)
    assert stored == recomputed
    assert (await server.store.stats(server.ns)).messages == 59

    # Later flushes are not blocked either.
    server.add(70, "after the bad one")
    assert await server.queue.flush() == 1
    assert 70 in await server.store.known_messages(server.ns, [70])


async def test_two_bad_messages_in_one_batch_are_both_found(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    for mid in range(1, 11):
        server.add(mid, f"good words {mid}")
    server.queue.add(1, raw(11, ["\udfff"]))
    server.queue.add(1, raw(12, ["fine", "\ud83d"]))
    caplog.set_level(logging.ERROR, logger="bot.services.write_queue")
    assert await server.queue.flush() == 10
    assert await server.stored() == set(range(1, 11))
    logged = sorted(r.getMessage().split()[1] for r in caplog.records)
    assert logged == ["11", "12"]


async def test_a_locked_database_is_not_split_but_kept_whole(
    sqlite_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Locked is the database's fault, not a message's: nothing is skipped."""
    for mid in range(1, 21):
        sqlite_server.add(mid, f"queued words {mid}")
    await sqlite_server.store._writer.execute("PRAGMA busy_timeout = 50")
    blocker = sqlite3.connect(sqlite_server.store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    caplog.set_level(logging.INFO, logger="bot.services.write_queue")
    try:
        assert await sqlite_server.queue.flush() == 0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert len(sqlite_server.queue) == 20
    assert not [r for r in caplog.records if "cannot be stored" in r.getMessage()]
    assert await sqlite_server.queue.flush() == 20
    assert await sqlite_server.stored() == set(range(1, 21))


async def test_when_every_message_fails_alone_none_is_dropped(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure that is no message's own (here: every write raises) keeps them all."""
    for mid in range(1, 6):
        server.add(mid, f"kept words {mid}")
    real_learn = server.store.learn

    async def broken(*args: object, **kwargs: object) -> object:
        raise ValueError("a bug in the write path")

    monkeypatch.setattr(server.store, "learn", broken)
    caplog.set_level(logging.INFO, logger="bot.services.write_queue")
    assert await server.queue.flush() == 0
    assert len(server.queue) == 5
    assert not [r for r in caplog.records if "cannot be stored" in r.getMessage()]
    monkeypatch.setattr(server.store, "learn", real_learn)
    assert await server.queue.flush() == 5


async def test_a_batch_is_learned_in_the_order_it_was_said_not_the_order_it_arrived(
    server: Server,
) -> None:
    """Event handlers can finish out of order; a word's id (its first-learned rank) breaks
    ties between equally frequent candidates, so it must follow the message ids."""
    from bot.core.generate import Options, generate
    from bot.core.sampling import Knobs

    server.add(3, "the dog sat")  # said last, arrived first
    server.add(1, "the cat sat on the mat")
    server.add(2, "the cat ran")
    assert await server.queue.flush() == 3
    assert await server.store.words(server.ns) == ["the", "cat", "sat", "on", "mat", "ran", "dog"]
    # Greedy after "the" with cat banned: mat and dog tie at 1, and mat was said first.
    reader = server.store.reader(server.ns)
    opts = Options(temperature=0.0, length=1, originality=False, knobs=Knobs(ban=("cat",)))
    assert (await generate(reader, "the", opts)).text == "the mat"
