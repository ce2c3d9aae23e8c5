"""Crash tests: the real bot, in a child process, SIGKILLed in the middle of its work.

Each test runs a fake Discord in the test process and the bot in a child process
(``fake_discord/bot_process.py``), kills the child with SIGKILL while it writes to the database,
then restarts it on the same file and checks that

* the database is consistent: ``PRAGMA integrity_check``, ``Store.recount`` (stored
  transition counts == counts recomputed from the stored messages) for every namespace,
  the ``classes`` table equal to the histogram of ``transitions`` (recomputed here with
  plain SQL), and vocabulary counts equal to the stored messages' words;
* the bot resumes what it was doing (live learning, catch-up, a backfill) and learns no
  message twice;
* at most the messages it had not yet flushed are lost (and the catch-up after the
  restart reads them back from the channel's history).

The kill lands mid-operation on purpose (see :class:`Killer`): a watcher thread waits
until the operation's first progress is visible in the database, then keeps trying
``BEGIN IMMEDIATE`` with no busy timeout; the first time that fails, the bot holds
SQLite's write lock (a transaction is open), and the watcher sends SIGKILL at once. To
stop the bot *between* two commits instead (a backfill page learned, its position not yet
saved), the watcher takes the write lock itself, sees that state, and kills the bot
before letting go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.core.model import unpack
from bot.core.tokenize import tokenize
from bot.store import Incoming, Store
from cogs.learning import CATCH_UP_LIMIT
from fake_discord import FakeDiscord
from fake_discord.bot_process import BotProcess
from tests.e2e.support import AdminServer

pytestmark = pytest.mark.asyncio

REPO = Path(__file__).resolve().parents[2]
TOKEN = "fake-bot-token.for-the-crash-tests"
CHAT = [
    t.strip()
    for t in (REPO / "corpora" / "ubuntu_irc_chat.txt").read_text(encoding="utf-8").splitlines()
    if tokenize(t.strip()) and len(t.strip()) <= 2000
]


# ---------------------------------------------------------------------- the bot process


class Killer(threading.Thread):
    """SIGKILL ``pid`` at a chosen point of its database work.

    ``ready(connection)`` says the operation's progress is visible (polled on the
    watcher's own connection). Then, with ``between_commits=False`` (the default), the
    watcher keeps trying ``BEGIN IMMEDIATE`` with no busy timeout: the first failure
    means the bot holds the write lock (a transaction is open) and it is killed at once,
    so ``in_transaction`` is True. With ``between_commits=True``, ``ready`` is evaluated
    *while the watcher holds the write lock* and the bot is killed before the lock is
    released: the bot is then stopped exactly between two of its commits, in the state
    ``ready`` saw (``between`` is True). After ``timeout`` s it is killed anyway.
    """

    def __init__(
        self,
        db: Path,
        pid: int,
        ready: Callable[[sqlite3.Connection], bool],
        *,
        armed: threading.Event | None = None,
        between_commits: bool = False,
        timeout: float = 20.0,
    ) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.pid = pid
        self.ready = ready
        self.armed = armed
        self.between_commits = between_commits
        self.timeout = timeout
        self.in_transaction = False
        self.between = False
        self._killed = False

    def _kill(self) -> None:
        if not self._killed:
            self._killed = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def run(self) -> None:
        con = sqlite3.connect(self.db, timeout=0, isolation_level=None, check_same_thread=False)
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline and not self._killed:
                if self.armed is not None and not self.armed.is_set():
                    time.sleep(0.001)
                    continue
                try:
                    if self.between_commits:
                        self._step_between(con)
                    else:
                        self._step_in_transaction(con)
                except sqlite3.OperationalError:
                    time.sleep(0.0005)  # busy: the bot holds the lock, or a read raced
        finally:
            self._kill()
            con.close()

    def _step_in_transaction(self, con: sqlite3.Connection) -> None:
        if not self.ready(con):
            time.sleep(0.002)
            return
        self.ready = lambda _: True  # latched: from now on, wait for the lock
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                self._kill()
                self.in_transaction = True
                return
            raise
        con.execute("ROLLBACK")
        time.sleep(0.0003)

    def _step_between(self, con: sqlite3.Connection) -> None:
        con.execute("BEGIN IMMEDIATE")  # raises while the bot is writing
        try:
            if self.ready(con):
                self._kill()  # the bot cannot commit anything while we hold the lock
                self.between = True
                return
        finally:
            con.execute("ROLLBACK")
        time.sleep(0.0003)

    async def finished(self) -> None:
        await asyncio.to_thread(self.join, self.timeout + 5)


# ---------------------------------------------------------------------- the database


def scalar(db: Path, sql: str, *args: Any) -> Any:
    con = sqlite3.connect(db, timeout=10)
    try:
        row = con.execute(sql, args).fetchone()
        return None if row is None else row[0]
    finally:
        con.close()


def stored_ids(db: Path, guild: int) -> list[int]:
    con = sqlite3.connect(db, timeout=10)
    try:
        return [
            int(i)
            for (i,) in con.execute(
                "SELECT m.id FROM messages m JOIN namespaces n ON n.id = m.ns "
                "WHERE n.name = ? ORDER BY m.id",
                (f"guild:{guild}",),
            )
        ]
    except sqlite3.OperationalError:  # the tables do not exist yet
        return []
    finally:
        con.close()


async def assert_consistent(db: Path) -> None:
    """The whole file is consistent (only call it while no bot process runs)."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        histogram = {
            (ns, bytes(ctx), count): n
            for ns, ctx, count, n in con.execute(
                "SELECT ns, ctx, count, COUNT(*) FROM transitions GROUP BY ns, ctx, count "
                "UNION ALL SELECT ns, X'', count, COUNT(*) FROM vocab WHERE count > 0 "
                "GROUP BY ns, count"  # the word frequencies' classes, under the empty context
            )
        }
        classes = {
            (ns, bytes(ctx), count): size
            for ns, ctx, count, size in con.execute("SELECT ns, ctx, count, size FROM classes")
        }
        assert classes == histogram, "classes differ from the histogram of counts"
        assert con.execute("SELECT COUNT(*) FROM transitions WHERE count <= 0").fetchone() == (0,)
        words: Counter[tuple[int, int]] = Counter()
        for ns, blob in con.execute("SELECT ns, tokens FROM messages"):
            words.update((ns, t) for t in unpack(bytes(blob)))
        vocab = {
            (ns, i): c
            for ns, i, c in con.execute(
                "SELECT ns, id, count FROM vocab WHERE ns > 0 AND count > 0"
            )
        }
        assert vocab == dict(words), "vocabulary counts differ from the stored messages"
        assert con.execute(
            "SELECT COUNT(*) FROM anchors a WHERE NOT EXISTS "
            "(SELECT 1 FROM messages m WHERE m.ns = a.ns AND m.id = a.msg)"
        ).fetchone() == (0,), "anchors of messages that are not stored"
        # The recount runs on a copy: opening the store may finish work a crash cut short
        # (a recorded purge), and a check must not change what it checks.
        copy = db.with_name(db.name + ".check")
        copy.unlink(missing_ok=True)
        target = sqlite3.connect(copy)
        con.backup(target)
        target.close()
    finally:
        con.close()
    store = await Store.open(copy)
    try:
        for ns in await store.namespaces():
            stored, expected = await store.recount(ns)
            assert stored == expected, f"recount differs in namespace {ns.name}"
    finally:
        await store.close()


# ---------------------------------------------------------------------- fixtures


HISTORY_PAGE_DELAY = 0.03  # seconds the fake takes per history page, like a real round trip


@pytest_asyncio.fixture
async def crash_fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(token=TOKEN)
    # Slow history pages down a little so a backfill takes long enough to be killed in
    # the middle. The routes are bound when the fake starts, so patch before that.
    original = fake.rest.get_messages

    async def slow_page(request: Any) -> Any:
        await asyncio.sleep(HISTORY_PAGE_DELAY)
        return await original(request)

    fake.rest.get_messages = slow_page  # type: ignore[method-assign]
    async with fake:
        yield fake


@pytest_asyncio.fixture
async def bot_process(crash_fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[BotProcess]:
    process = BotProcess(crash_fake, tmp_path / "markov.db", tmp_path)
    try:
        yield process
    finally:
        await process.ensure_dead()


class Server(AdminServer):
    """One guild with #general, an admin and some members (ids as ints)."""

    def __init__(self, fake: FakeDiscord, members: Sequence[str]) -> None:
        super().__init__(fake, "Crash Test", "admin", members)


async def wait_until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll a (blocking) check in a thread every 50 ms until it is truthy."""
    deadline = time.monotonic() + seconds
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------- the tests


async def test_kill_during_live_learning(crash_fake: FakeDiscord, bot_process: BotProcess) -> None:
    fake, db = crash_fake, bot_process.db
    server = Server(fake, ["alice", "bob", "carol", "dave"])
    authors = list(server.members.values())
    await bot_process.start()
    await server.learn_everyone()

    # 1,500 messages at 1,000 a second; the bot flushes every second or every 500.
    sent: list[int] = []
    killer = Killer(
        db,
        bot_process.pid,
        lambda con: con.execute("SELECT COUNT(*) FROM messages").fetchone()[0] > 0,
    )
    killer.start()
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(1500):
        await asyncio.sleep(max(0.0, start + i / 1000 - loop.time()))
        message = await fake.send_message(server.channel, authors[i % 4], CHAT[i % len(CHAT)])
        sent.append(int(message["id"]))
    await killer.finished()
    await bot_process.wait_killed()
    assert killer.in_transaction, "the kill did not land inside a write transaction"

    # Consistent, and what survived is exactly the messages of the committed flushes:
    # a prefix of what was sent. Only the unflushed tail was lost.
    await assert_consistent(db)
    survived = stored_ids(db, server.guild)
    assert 0 < len(survived) < len(sent)
    assert survived == sent[: len(survived)]

    # The restart catches up from the channel's history (up to CATCH_UP_LIMIT messages
    # after the newest one it had), then learns live again.
    await bot_process.start()
    expected = sent[: len(survived) + CATCH_UP_LIMIT]
    await wait_until(
        lambda: stored_ids(db, server.guild) == expected, 20, "the catch-up after the restart"
    )
    later = [
        int((await fake.send_message(server.channel, a, f"back again number {i}"))["id"])
        for i, a in enumerate(authors)
    ]
    await wait_until(
        lambda: stored_ids(db, server.guild) == expected + later, 10, "live learning to resume"
    )
    await bot_process.stop()
    await assert_consistent(db)
    ids = stored_ids(db, server.guild)
    assert len(ids) == len(set(ids)) == len(expected) + len(later)
    bot_process.assert_clean_logs()


async def test_kill_during_backfill_resumes_without_learning_twice(
    crash_fake: FakeDiscord, bot_process: BotProcess, tmp_path: Path
) -> None:
    fake, db = crash_fake, bot_process.db
    server = Server(fake, ["alice", "bob", "carol"])
    alice, bob, carol = server.members.values()
    other_bot = int(fake.add_user("otherbot", bot=True)["id"])
    fake.add_member(server.guild, other_bot)

    # 2,400 past messages: alice and bob are learned; carol opted out; bots, webhooks,
    # join notices and text without words are not learnable.
    items: list[dict[str, Any]] = []
    for i in range(2400):
        text = CHAT[i % len(CHAT)]
        if i % 97 == 0:
            items.append({"author_id": other_bot, "content": text})
        elif i % 89 == 0:
            items.append({"webhook_id": 4242, "content": text})
        elif i % 83 == 0:
            items.append({"author_id": alice, "content": "", "message_type": 7})
        elif i % 79 == 0:
            items.append({"author_id": bob, "content": "```\nonly code\n```"})
        else:
            items.append({"author_id": (alice, bob, carol)[i % 3], "content": text})
    history = fake.seed_history(server.channel, items)
    eligible = {
        int(m["id"])
        for m in history
        if m.get("webhook_id") is None
        and int(m["author"]["id"]) in (alice, bob)
        and int(m["type"]) == 0
        and tokenize(m["content"])
    }
    assert 1400 < len(eligible) < 1700

    await bot_process.start()
    await server.learn_everyone()
    said = await server.command(carol, "markov-privacy optout")
    assert said.startswith("I won't learn from your messages"), said

    def progress(con: sqlite3.Connection) -> int:
        row = con.execute("SELECT read FROM backfills").fetchone()
        return 0 if row is None else int(row[0])

    # Kill 1: during the first backfill, once a page is saved.
    killer = Killer(db, bot_process.pid, lambda con: progress(con) > 0)
    killer.start()
    rec = await fake.invoke(
        server.guild,
        server.channel,
        server.admin,
        "markov-admin backfill",
        {"channel": server.channel, "limit": 100_000},
    )
    await rec.wait_response(timeout=3)
    await killer.finished()
    await bot_process.wait_killed()
    assert killer.in_transaction
    await assert_consistent(db)
    first = await asyncio.to_thread(progress_of, db)
    assert first is not None and not first["done"] and first["read"] < len(history)
    assert set(stored_ids(db, server.guild)) <= eligible

    # Kill 2: the restarted bot resumes the backfill by itself. This time kill it between
    # two of its commits, after it has learned a page of its own: a page's messages and
    # the position after it are one transaction, so the saved figures always describe
    # exactly what is stored.
    await bot_process.start()
    resumed_from = first["read"]
    killer = Killer(
        db, bot_process.pid, lambda con: progress(con) > resumed_from, between_commits=True
    )
    killer.start()
    await killer.finished()
    await bot_process.wait_killed()
    assert killer.between
    await assert_consistent(db)
    second = await asyncio.to_thread(progress_of, db)
    assert second is not None and not second["done"]
    assert resumed_from < second["read"] < len(history)
    assert second["learned"] == len(stored_ids(db, server.guild))

    # Third run: it resumes again and finishes.
    await bot_process.start()
    await wait_until(lambda: (progress_of(db) or {}).get("done"), 30, "the backfill to finish")
    await bot_process.stop()
    await assert_consistent(db)

    ids = stored_ids(db, server.guild)
    assert len(ids) == len(set(ids)), "a message was stored twice"
    assert set(ids) == eligible, "stored messages differ from the eligible history"
    final = progress_of(db)
    assert final is not None and final["done"]
    # Every page was read once, and the figures match what is stored.
    assert final["read"] == len(history)
    assert final["learned"] == len(eligible)
    assert final["learned"] + final["skipped"] == final["read"]
    reads = fake.requests_matching("GET", rf"/channels/{server.channel}/messages")
    befores = [r.query.get("before") for r in reads if "after" not in r.query]
    # Fetched twice: the page in flight at the first kill (killed inside its
    # transaction) and at most one fetched but not yet learned at the second.
    assert 1 <= len(befores) - len(set(befores)) <= 2
    bot_process.assert_clean_logs()


async def test_kill_during_purge(crash_fake: FakeDiscord, bot_process: BotProcess) -> None:
    fake, db = crash_fake, bot_process.db
    server = Server(fake, ["alice", "bob"])
    other_guild = int(fake.add_guild("Bystander")["id"])

    # A big model to purge (written through the store, as the bot would have learned
    # it), and another server's model that must not change.
    store = await Store.open(db)
    try:
        ns = await store.namespace(f"guild:{server.guild}")
        other = await store.namespace(f"guild:{other_guild}")
        for start in range(0, 20_000, 2_000):
            await store.learn(
                ns,
                [
                    Incoming(i + 1, tokenize(CHAT[i % len(CHAT)]), author=1, channel=2)
                    for i in range(start, start + 2_000)
                ],
            )
        await store.learn(other, [Incoming(i + 1, tokenize(CHAT[-i])) for i in range(1, 500)])
    finally:
        await store.close()
    total = len(stored_ids(db, server.guild))
    bystander = stored_ids(db, other_guild)
    assert total == 20_000 and len(bystander) == 499

    await bot_process.start()
    await asyncio.sleep(0.5)  # the catch-up in on_ready (nothing to read) is done
    rec = await fake.invoke(server.guild, server.channel, server.admin, "markov-admin purge")
    await rec.wait_message(timeout=3)
    confirm = rec.custom_ids()[0]
    clicked = threading.Event()
    name = f"guild:{server.guild}"

    def requested(con: sqlite3.Connection) -> bool:
        row = con.execute("SELECT purging FROM namespaces WHERE name = ?", (name,)).fetchone()
        return bool(row and row[0])

    # Killed inside the deletion's transaction, once the request itself is committed.
    killer = Killer(db, bot_process.pid, requested, armed=clicked)
    killer.start()
    message_id = rec.original_message_id
    assert message_id is not None
    click = await fake.click(message_id, confirm, server.admin)
    clicked.set()
    await click.wait_response(timeout=3)
    await killer.finished()
    await bot_process.wait_killed()
    assert killer.in_transaction

    # The deletion is one transaction: rolled back whole, never a half-deleted model,
    # and the request survives it.
    await assert_consistent(db)
    assert len(stored_ids(db, server.guild)) == total
    assert stored_ids(db, other_guild) == bystander
    assert scalar(db, "SELECT purging FROM namespaces WHERE name = ?", name) == 1

    # On restart the store finishes the purge by itself: nobody has to ask twice.
    await bot_process.start()
    await bot_process.stop()
    await assert_consistent(db)
    assert stored_ids(db, server.guild) == []
    assert stored_ids(db, other_guild) == bystander
    for table in ("transitions", "classes", "vocab", "anchors"):
        n = scalar(
            db,
            f"SELECT COUNT(*) FROM {table} WHERE ns = (SELECT id FROM namespaces WHERE name = ?)",
            name,
        )
        assert n == 0, f"{table} still holds rows of the purged server"
    assert scalar(db, "SELECT purging FROM namespaces WHERE name = ?", name) == 0
    finished = f"finished the purge of {name} cut short by a crash: {total:d} messages"
    assert finished in bot_process.log(), bot_process.log()[-3000:]
    bot_process.assert_clean_logs()


# ---------------------------------------------------------------------- helpers


def progress_of(db: Path) -> dict[str, Any] | None:
    con = sqlite3.connect(db, timeout=10)
    try:
        row = con.execute(
            "SELECT before, remaining, read, learned, skipped, done FROM backfills"
        ).fetchone()
    finally:
        con.close()
    if row is None:
        return None
    keys = ("before", "remaining", "read", "learned", "skipped", "done")
    return dict(zip(keys, row, strict=True))
