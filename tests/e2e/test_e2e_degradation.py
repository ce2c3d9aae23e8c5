"""End-to-end: the bot degrades gracefully and never leaks its token.

The real :class:`bot.app.MarkovBot` runs against the fake Discord with a real SQLite file:

* **Database locked** by another connection (``BEGIN IMMEDIATE`` on a plain ``sqlite3``
  connection, as a second process would): reads go on (WAL), a write that waits out the
  5-second busy timeout still gets an answer within Discord's 3-second deadline, and the
  messages posted meanwhile are learned once the lock is gone.
* **Disk full** (``PRAGMA max_page_count`` pinned to the file's size on the bot's own writer
  connection): a failing flush is logged once and retried, never dropped or spun; writing
  commands get a polite "try again" and reading ones keep working.
* **Gateway drops** (a resumable close, op 7 RECONNECT, op 9 INVALID_SESSION): the bot
  resumes or re-identifies, keeps learning and answering, and counts nothing twice.
* **The token** never appears in any log record (DEBUG, every logger) or on stdout/stderr,
  neither in a normal session with reconnects nor when Discord rejects it at start-up.
"""

# The helpers take ``timeout=`` so their failure messages can name it.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import MarkovBot, run_bot
from bot.services.settings import load_settings
from fake_discord import BOT_USER_ID, FakeDiscord, InteractionRecord
from tests.e2e.support import DEADLINE, E2E, eventually, ids_of

#: What :func:`bot.app.replies.explain_error` answers when SQLite is locked or full.
BUSY_REPLY = "My database is busy or full right now; please try again in a minute."

#: Shaped like a real bot token (base64 of the bot's id, a timestamp part, an HMAC part),
#: so the assertions can look for each part as well as the whole.
TOKEN_PARTS = (
    base64.b64encode(str(BOT_USER_ID).encode()).decode().rstrip("="),
    "Gx7_kQ",
    "Zq9vLw2PmX4tRb8KcY1nHs6JdFe3uTo5",
)
REAL_LOOKING_TOKEN = ".".join(TOKEN_PARTS)


# ---------------------------------------------------------------------- helpers


@contextlib.asynccontextmanager
async def write_locked(db_path: Path) -> AsyncIterator[sqlite3.Connection]:
    """Another connection holds the database's write lock (as a second process would).

    The lock is taken in a worker thread: if the bot is in the middle of a transaction,
    waiting for it on the event loop would stop the bot from ever committing it.
    """
    other = sqlite3.connect(db_path, timeout=10, isolation_level=None, check_same_thread=False)
    try:
        await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
        yield other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


async def pin_database_size(bot: MarkovBot, pages: int | None = None) -> int:
    """``PRAGMA max_page_count`` on the bot's writer: no new page, as on a full disk.

    With ``pages=None`` the limit is the file's current size; SQLite never sets it lower.
    """
    writer = bot.store._writer
    if pages is None:
        async with writer.execute("PRAGMA page_count") as cur:
            row = await cur.fetchone()
        assert row is not None
        pages = int(row[0])
    async with writer.execute(f"PRAGMA max_page_count = {int(pages)}") as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def fill_channel_settings(bot: MarkovBot, guild: int, around: int) -> int:
    """Fill the settings table's pages next to channel ``around`` until SQLite is full.

    Settings rows are small, so a pinned file still has room for a few in its last pages;
    this takes that room (rows that listen to nothing, around the channel the test will
    ask for), so the next settings write needs a new page. Returns how many rows fitted.
    """
    for i in range(1, 100_000):
        channel = around + (i if i % 2 else -i)
        try:
            await bot.servers.guilds.set_listening(guild, channel, False)
        except sqlite3.OperationalError:
            return i - 1
    raise AssertionError("the database never filled up")


def guild_row(db_path: Path, guild: int) -> bool:
    """Whether the bot has written a settings row for ``guild`` (read from the file)."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return db.execute("SELECT 1 FROM guilds WHERE id = ?", (guild,)).fetchone() is not None


def records(
    caplog: pytest.LogCaptureFixture, logger: str, level: int = logging.ERROR
) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno >= level]


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every record in full: the message with its arguments, their repr, and tracebacks."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(f"{formatter.format(r)}\n{r.args!r}" for r in caplog.records)


def assert_no_token(text: str, where: str) -> None:
    assert REAL_LOOKING_TOKEN not in text, f"the token appears in {where}"
    for part in TOKEN_PARTS:
        assert part not in text, f"part {part!r} of the token appears in {where}"


async def answered_politely(rec: InteractionRecord, timeout: float = 10.0) -> None:
    """Acknowledged within Discord's deadline, then the short ephemeral "try again" reply."""
    await rec.wait_response()
    assert rec.response_time is not None and rec.response_time < DEADLINE
    await rec.wait_message(timeout=timeout)
    assert rec.content == BUSY_REPLY
    assert rec.ephemeral


# ---------------------------------------------------------------------- database locked


async def test_a_brief_lock_delays_writes_but_they_are_answered_in_time(
    e2e: E2E, fake: FakeDiscord, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Locked for 2.5 s, shorter than the busy timeout: the writes wait and succeed, and
    each command is acknowledged before Discord's deadline although it ran for longer (it
    defers first), then shows its own answer with the visibility it asked for."""
    caplog.set_level(logging.INFO)
    w = e2e.world
    random = fake.add_text_channel(w.guild_id, "random")
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        # A server joined now: its model is created (a write) on first use.
        other = fake.add_guild("other")
        other_channel = fake.add_text_channel(other["id"], "lobby")
        fake.add_member(other["id"], w.user_id)
        await fake.join_guild(other["id"])
        await eventually(
            lambda: asyncio.sleep(0, guild_row(db_path, int(other["id"]))),
            what="the bot's on_guild_join write",
        )
        async with write_locked(db_path):
            started = time.monotonic()
            listen = await fake.invoke(
                w.guild_id, w.channel_id, w.admin_id, "markov-admin listen", {"channel": random}
            )
            stats = await fake.invoke(other["id"], other_channel["id"], w.user_id, "markov-stats")
            during = await e2e.say(w.channel_id, w.user_id, "posted while the file was locked")
            await listen.wait_response()
            await stats.wait_response()
            await asyncio.sleep(max(0.0, 2.5 - (time.monotonic() - started)))
            assert await e2e.known(bot, ids_of(during)) == set()
        for rec in (listen, stats):
            await rec.wait_message(timeout=5)
            # Acknowledged at once, while the lock still held their writes back.
            assert rec.deferred
            assert rec.response_time is not None and rec.response_time < 1.0
        assert listen.content.startswith(f"Listening in <#{random['id']}>"), listen.content
        assert listen.ephemeral
        assert stats.embeds[0]["title"] == "What I have learned here"
        assert not stats.ephemeral  # a public answer
        await e2e.wait_learned(bot, during, flush=False)
        await e2e.assert_model(bot, ["posted while the file was locked"])
        assert (await bot.servers.guilds.config(w.guild_id)).listened == {
            w.channel_id,
            int(random["id"]),
        }


async def test_locked_database_reads_go_on_writes_get_a_polite_reply_nothing_is_lost(
    e2e: E2E, fake: FakeDiscord, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Locked for longer than the 5-second busy timeout: the opt-out fails, then the write
    of the queued messages fails too; both are retried or retryable, nothing is lost, and
    a message deleted while its batch was being written is not learned afterwards."""
    caplog.set_level(logging.INFO)
    w = e2e.world
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        before = await e2e.say(w.channel_id, w.user_id, "the cat sat on the mat")
        await e2e.wait_learned(bot, before)
        async with write_locked(db_path):
            # Reads use their own connection and WAL: nothing waits for the lock.
            status = await e2e.invoke(w.admin_id, "markov-admin status")
            assert status.response_time is not None and status.response_time < 1
            assert "**Learned:** 1 message, 6 words" in status.content
            stats = await e2e.invoke(w.user_id, "markov-stats")
            assert stats.embeds[0]["title"] == "What I have learned here"
            assert not stats.ephemeral

            optout = await fake.invoke(w.guild_id, w.channel_id, w.user_id, "markov-privacy optout")
            # The deleted one first: the next flusher tick takes it into its batch, with
            # the other one or (should the tick fall between the two) without.
            [deleted] = await e2e.say(w.channel_id, w.user_id, "a message deleted again")
            during = await e2e.say(w.channel_id, w.user_id, "the dog sat on the log")
            await asyncio.sleep(1.5)  # the batch is being written, waiting for the lock
            await fake.delete_message(deleted["id"])
            # A learned message deleted during the outage: its forgetting waits in the queue.
            await fake.delete_message(before[0]["id"])
            await answered_politely(optout)
            [error] = records(caplog, "bot.app.replies")
            assert error.getMessage() == "database unavailable: database is locked"
            # The batch waits for the opt-out's turn, then out its own busy timeout.
            [failed] = await eventually(
                lambda: asyncio.sleep(0, records(caplog, "bot.services.write_queue")),
                timeout=8,
                what="the failed write of the queue to be logged",
            )
            assert re.match(r"writing the learning queue of guild \d+ failed", failed.getMessage())
            assert fake.connected
            assert await e2e.known(bot, [*ids_of(during), int(deleted["id"])]) == set()

        # Once the lock is gone the queue is written by the bot's own flusher, without the
        # deleted message; the opt-out that failed changed nothing, so it can be run again.
        await e2e.wait_learned(bot, during, flush=False)

        async def forgotten() -> bool:
            return not await e2e.known(bot, ids_of(before))

        await eventually(forgotten, what="the message deleted during the outage to go")
        await e2e.assert_model(bot, ["the dog sat on the log"])
        assert await e2e.known(bot, [int(deleted["id"]), *ids_of(before)]) == set()
        assert len(records(caplog, "bot.services.write_queue")) == 1
        assert any(
            r.getMessage().startswith("learning works again")
            for r in records(caplog, "bot.services.write_queue", logging.INFO)
        )
        rec = await e2e.invoke(w.user_id, "markov-privacy status")
        assert "your choice: **opted in**" in rec.content
        rec = await e2e.invoke(w.user_id, "markov-privacy optout")
        assert rec.content.startswith("I won't learn from your messages any more.")


async def test_markov_while_locked_and_the_edit_of_its_reply(
    e2e: E2E, fake: FakeDiscord, db_path: Path
) -> None:
    """/markov reads only, so it is answered while the file is locked; filling its
    "thinking…" placeholder makes Discord send MESSAGE_UPDATE for the bot's own reply."""
    w = e2e.world
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        before = await e2e.say(w.channel_id, w.user_id, "the cat sat on the mat")
        await e2e.wait_learned(bot, before)
        async with write_locked(db_path):
            rec = await e2e.invoke(w.user_id, "markov", {"start": "the", "seed": 1})
            assert rec.embeds and rec.embeds[0]["description"].startswith("the ")
            await fake.wait_for(
                lambda: any(e == "MESSAGE_UPDATE" for e, _ in fake.gateway.sent_events),
                5,
                "the edit of the reply",
            )
            await asyncio.sleep(5.5)  # the store's busy timeout is 5 s


# ---------------------------------------------------------------------- disk full


async def test_disk_full_keeps_the_queue_and_answers_politely(
    e2e: E2E, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    w = e2e.world
    random = fake.add_text_channel(w.guild_id, "random")
    many_words = " ".join(f"word{i}" for i in range(300))  # needs new pages to store
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        before = await e2e.say(w.channel_id, w.user_id, "the cat sat on the mat")
        await e2e.wait_learned(bot, before)
        await pin_database_size(bot)

        queued = await e2e.say(w.channel_id, w.user_id, many_words, "the dog sat on the log")
        await eventually(
            lambda: asyncio.sleep(0, records(caplog, "bot.services.write_queue")),
            what="the failed flush to be logged",
        )
        await asyncio.sleep(2.2)  # two more ticks of the 1-second flusher, both failing
        [failure] = records(caplog, "bot.services.write_queue")
        assert failure.exc_info and "database or disk is full" in str(failure.exc_info[1])
        assert await e2e.known(bot, ids_of(queued)) == set()

        # Reading commands work; a settings change that needs room gets a polite reply.
        rec = await e2e.invoke(w.user_id, "markov", {"start": "the", "seed": 1})
        assert rec.embeds and rec.embeds[0]["description"].startswith("the ")
        rec = await e2e.invoke(w.admin_id, "markov-admin status")
        assert "**Learned:** 1 message," in rec.content
        assert await fill_channel_settings(bot, w.guild_id, around=int(random["id"])) > 0
        listen = await fake.invoke(
            w.guild_id, w.channel_id, w.admin_id, "markov-admin listen", {"channel": random}
        )
        await answered_politely(listen)
        assert (
            records(caplog, "bot.app.replies")[-1].getMessage().startswith("database unavailable")
        )
        assert fake.connected

        # Room again: the queue is written by the bot's own flusher, exactly once.
        await pin_database_size(bot, 2**30)
        await e2e.wait_learned(bot, queued, flush=False)
        await e2e.assert_model(
            bot, ["the cat sat on the mat", many_words, "the dog sat on the log"]
        )
        assert await bot.store.check(await e2e.ns(bot)) == []
        assert len(records(caplog, "bot.services.write_queue")) == 1
        rec = await e2e.invoke(w.admin_id, "markov-admin listen", {"channel": random})
        assert rec.content.startswith(f"Listening in <#{random['id']}>")


async def test_a_long_outage_bounds_the_queue_and_says_so(
    e2e: E2E, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    """While writes keep failing the queue stops growing at its limit (memory stays
    bounded), once logged; when writing works again, learning goes on as before."""
    caplog.set_level(logging.INFO)
    w = e2e.world
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        bot.servers.writes.limit = 3
        await pin_database_size(bot)
        # The first needs new pages to be stored, so every write of the queue fails.
        texts = [" ".join(f"word{i}" for i in range(300))]
        texts += [f"outage message number{i} with several words{i}" for i in range(4)]
        sent = await e2e.say(w.channel_id, w.user_id, *texts)
        await eventually(
            lambda: asyncio.sleep(0, records(caplog, "bot.services.write_queue")),
            what="the failed flush to be logged",
        )
        full = [
            r
            for r in records(caplog, "bot.services.write_queue", logging.WARNING)
            if r.getMessage().startswith("learning queue full (3 messages")
        ]
        assert len(full) == 1

        await pin_database_size(bot, 2**30)
        await e2e.wait_learned(bot, sent[:3], flush=False)
        assert await e2e.known(bot, ids_of(sent[3:])) == set()
        after = await e2e.say(w.channel_id, w.user_id, "after the outage")
        await e2e.wait_learned(bot, after, flush=False)
        await e2e.assert_model(bot, [*texts[:3], "after the outage"])


async def test_channels_and_threads_deleted_during_an_outage_are_forgotten_after(
    e2e: E2E, fake: FakeDiscord, db_path: Path
) -> None:
    """Discord sends no per-message deletes for a deleted channel or thread: if the
    database is locked at that moment, the deletion waits in the queue, and a message of
    that channel still queued is never learned."""
    w = e2e.world
    second = int(fake.add_text_channel(w.guild_id, "second")["id"])
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        await e2e.enable_learning(w.user_id, channel=second)
        keep = await e2e.say(w.channel_id, w.user_id, "general words stay")
        gone = await e2e.say(second, w.user_id, "second words go")
        gone += await e2e.say(w.thread_id, w.user_id, "thread words go")
        await e2e.wait_learned(bot, keep + gone)

        await bot.store._writer.execute("PRAGMA busy_timeout = 200")  # fail fast, not in 5 s
        async with write_locked(db_path):
            queued = await e2e.say(second, w.user_id, "queued words never learned")
            await fake.delete_channel(second)
            await fake.delete_channel(w.thread_id)
            await asyncio.sleep(0.5)  # the deletions' flush fails meanwhile
            assert await e2e.known(bot, ids_of(gone)) == set(ids_of(gone))

        await e2e.wait_forgotten(bot, gone, timeout=5)
        await e2e.flush(bot)
        assert await e2e.known(bot, ids_of(queued)) == set()
        await e2e.assert_model(bot, ["general words stay"])
        assert (await bot.servers.guilds.config(w.guild_id)).listened == frozenset({w.channel_id})


# ---------------------------------------------------------------------- gateway drops


async def test_disconnects_resumes_and_a_new_session_lose_and_repeat_nothing(
    e2e: E2E, fake: FakeDiscord
) -> None:
    """Resumes replay what was missed; a new session (after INVALID_SESSION) replays
    nothing, so the bot catches up from the channel's history."""
    w = e2e.world
    texts: list[str] = []
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        first = await e2e.say(w.channel_id, w.user_id, "before any trouble")
        await e2e.wait_learned(bot, first)
        texts += ["before any trouble"]

        # Discord drops the connection (4000, resumable); a message is posted meanwhile.
        await fake.disconnect(code=4000)
        gap = await e2e.say(w.channel_id, w.user_id, "posted while the bot was away")
        await fake.wait_for(lambda: len(fake.gateway.resumes) == 1, 10, "a RESUME")
        await fake.wait_until_connected()
        assert fake.gateway.resumes[0].accepted and fake.gateway.resumes[0].replayed >= 1
        texts += ["posted while the bot was away"]

        # Discord asks for a reconnect (op 7): another resume.
        await fake.request_reconnect()
        await fake.wait_for(lambda: len(fake.gateway.resumes) == 2, 10, "a second RESUME")
        await fake.wait_until_connected()
        assert fake.gateway.resumes[1].accepted
        after_resume = await e2e.say(w.channel_id, w.user_id, "after the resumes")
        texts += ["after the resumes"]
        await e2e.wait_learned(bot, [*gap, *after_resume], flush=False)
        rec = await e2e.invoke(w.user_id, "markov", {"start": "after", "seed": 2})
        assert rec.embeds and rec.embeds[0]["description"].startswith("after ")

        # Discord invalidates the session (op 9): the bot must IDENTIFY again (discord.py
        # waits 5 s first). Nothing is replayed to a new session; a message posted in the
        # gap is only in the channel's history.
        ready_again = asyncio.create_task(bot.wait_for("ready", timeout=15))
        await fake.invalidate_session()
        unseen = await e2e.say(w.channel_id, w.user_id, "posted while no session existed")
        await fake.wait_for(lambda: len(fake.identify_payloads) == 2, 15, "a second IDENTIFY")
        await ready_again
        fresh = await e2e.say(w.channel_id, w.user_id, "in the new session")
        texts += ["in the new session"]
        await e2e.wait_learned(bot, fresh, flush=False)
        rec = await e2e.invoke(w.user_id, "markov", {"start": "in", "seed": 3})
        assert rec.embeds and rec.embeds[0]["description"].startswith("in ")

        # The new session's READY catches up the listened channel from its history.
        await e2e.wait_learned(bot, unseen, flush=False)
        texts += ["posted while no session existed"]

        # Replayed events and a second READY counted nothing twice.
        await e2e.flush(bot)
        await e2e.assert_model(bot, texts)
        assert await bot.store.check(await e2e.ns(bot)) == []
    assert len(fake.identify_payloads) == 2


# ---------------------------------------------------------------------- the token


async def test_token_never_logged_at_debug_through_commands_and_reconnects(
    e2e: E2E,
    fake: FakeDiscord,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: discord.*, aiohttp, ours, the fake's
    fake.token = REAL_LOOKING_TOKEN
    settings = load_settings(
        {"MARKOV_DB": str(db_path), "DISCORD_TOKEN": REAL_LOOKING_TOKEN, "LOG_LEVEL": "DEBUG"},
        dotenv_path=None,
    )
    w = e2e.world
    async with e2e.start(settings=settings) as bot:
        await e2e.enable_learning(w.user_id)
        learned = await e2e.say(w.channel_id, w.user_id, "the cat sat on the mat")
        await e2e.wait_learned(bot, learned)
        await e2e.invoke(w.user_id, "markov", {"seed": 1})
        rec = await e2e.invoke(w.user_id, "markov", {"start": "zebra"})  # a handled error
        assert rec.ephemeral
        await fake.disconnect(code=4000)
        await fake.wait_for(lambda: len(fake.gateway.resumes) == 1, 10, "a RESUME")
        await fake.request_reconnect()
        await fake.wait_for(lambda: len(fake.gateway.resumes) == 2, 10, "a second RESUME")
        await fake.wait_until_connected()
        await e2e.invoke(w.admin_id, "markov-admin status")
        assert_no_token(repr(bot.settings), "the settings' repr")
    # The session really ran at DEBUG (these would be missing at INFO) and used the token.
    assert any(r.name.startswith("discord.") and r.levelno == logging.DEBUG for r in caplog.records)
    assert [p["token"] for p in fake.identify_payloads] == [REAL_LOOKING_TOKEN]
    assert [r.accepted for r in fake.gateway.resumes] == [True, True]  # RESUME carries it too
    out, err = capfd.readouterr()
    assert_no_token(logged_text(caplog), "the log records")
    assert_no_token(caplog.text, "the formatted log")
    assert_no_token(out + err, "stdout/stderr")


@pytest.mark.usefixtures("restore_logging", "world")
async def test_rejected_token_prints_one_line_and_never_the_token(
    fake: FakeDiscord,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """``markov-bot run`` at LOG_LEVEL=DEBUG with a token Discord refuses."""
    caplog.set_level(logging.DEBUG)
    fake.token = "the-token-discord-expects-is-another-one"
    settings = load_settings(
        {"MARKOV_DB": str(db_path), "DISCORD_TOKEN": REAL_LOOKING_TOKEN, "LOG_LEVEL": "DEBUG"},
        dotenv_path=None,
    )
    status = await asyncio.wait_for(asyncio.to_thread(run_bot, settings), 30)
    assert status == 1
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("markov-bot")]
    assert lines == [
        "markov-bot: Discord rejected DISCORD_TOKEN (reset it in the Developer Portal → Bot)."
    ]
    assert "DEBUG" in err  # run_bot's own log handler wrote at DEBUG to stderr
    assert fake.requests_matching("GET", "/users/@me")[-1].status == 401
    assert_no_token(out + err, "stdout/stderr")
    assert_no_token(logged_text(caplog), "the log records")
