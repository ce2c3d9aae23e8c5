"""End-to-end: retention and the removed-server grace period, driven by the hourly housekeeping.

Nothing waits an hour or a day. Message ages come from their snowflake ids (the fake mints
ids for past moments), and "now" is the learning cog's ``now`` clock, which these tests
replace with a :class:`Clock` they move forward. Housekeeping runs as the real task loop
(its first iteration is awaited) and then by calling that loop's coroutine directly, which
is exactly what each hourly iteration does.

What members see is checked through the commands (autocomplete, /markov, /markov-explain,
/markov-stats); what is stored is checked against a recount of the stored messages
(:meth:`E2E.assert_model`, ``Store.check``) and, for deletions, row by row in the SQLite file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import math
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from bot.app import MarkovBot
from bot.core.tokenize import tokenize
from bot.services.settings import load_settings
from fake_discord import FakeDiscord, InteractionRecord, fake_file
from fake_discord.world import GuildState
from tests.e2e.support import E2E, eventually, ids_of

if TYPE_CHECKING:
    from cogs.learning import Learning

DAY = 86_400.0


class Clock:
    """A wall clock the test sets; installed as the service's ``now``."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def advance(self, days: float) -> None:
        self.t += days * DAY


def learning_of(bot: MarkovBot) -> Learning:
    cog = bot.get_cog("Learning")
    # Extensions are imported afresh by each bot, so the class is compared by name.
    assert cog is not None and type(cog).__name__ == "Learning"
    return cast("Learning", cog)


async def with_clock(bot: MarkovBot) -> tuple[Learning, Clock]:
    """The learning cog once its housekeeping loop has run its first (automatic) iteration,
    with a test clock installed; the loop's next iteration is an hour away."""
    cog = learning_of(bot)
    loop = cog.housekeeping
    assert loop.is_running()
    assert (loop.hours, loop.minutes, loop.seconds) == (1, 0, 0)
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=30)

    async def first_iteration_started() -> bool:
        # Set to an hour after the iteration's start as it begins.
        return loop.next_iteration is not None and loop.next_iteration > soon

    await eventually(first_iteration_started, what="the first housekeeping iteration")
    async with bot.servers.housekeeping_lock:  # held by that iteration until it is done
        pass
    clock = Clock()
    bot.servers.now = clock
    return cog, clock


async def housekeeping(cog: Learning) -> None:
    """One hourly iteration of the housekeeping loop, run now."""
    await cog.housekeeping()


def days_ago(fake: FakeDiscord, days: float) -> int:
    """A fresh message id minted ``days`` ago (its snowflake encodes that time)."""
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)
    return fake.world.ids.at(when)


def second_server(fake: FakeDiscord, member: int) -> tuple[dict[str, Any], int, int]:
    """Another server, "Elsewhere", with a #general and ``member`` in it: (guild, its id,
    the channel's id)."""
    other = fake.add_guild("Elsewhere")
    channel = int(fake.add_text_channel(other["id"], "general")["id"])
    fake.add_member(other["id"], member)
    return other, int(other["id"]), channel


def words_of(texts: Iterable[str]) -> set[str]:
    return {t for text in texts for t in tokenize(text)}


def embed_of(rec: InteractionRecord) -> dict[str, Any]:
    [embed] = rec.embeds
    return embed


async def assert_members_see(
    e2e: E2E,
    kept: Sequence[str],
    gone: Sequence[str],
    *,
    guild: int | None = None,
    channel: int | None = None,
) -> None:
    """Through the commands, the server's model is the words of ``kept`` and nothing of
    ``gone``: autocomplete, /markov-stats, generated text, explanations and unknown words.

    Asked by a new member each time: /markov allows 5 uses per member per 10 seconds.
    """
    fake = e2e.fake
    guild = e2e.world.guild_id if guild is None else guild
    channel = e2e.world.channel_id if channel is None else channel
    user = int(fake.add_user(f"viewer{len(fake.world.users)}")["id"])
    fake.add_member(guild, user)
    mine, theirs = words_of(kept), words_of(gone)
    assert mine and not mine & theirs, "the test's texts must not share words"

    choices = await fake.autocomplete(guild, channel, user, "markov", "start", "")
    assert {c["value"] for c in choices} == mine

    stats = embed_of(await e2e.invoke(user, "markov-stats", guild=guild, channel=channel))
    fields = {f["name"]: f["value"] for f in stats["fields"]}
    assert fields["Messages"] == str(len(kept))
    assert fields["Words"] == f"{sum(len(tokenize(t)) for t in kept)} ({len(mine)} different)"
    top = {re.sub(r" \(\d+\)$", "", x) for x in fields["Top words"].split(", ")}
    assert top <= mine and len(top) == min(10, len(mine))  # the ten most frequent

    for seed in (1, 2):
        options = {"temps": "1,2,5", "seed": seed}
        rec = await e2e.invoke(user, "markov-compare", options, guild=guild, channel=channel)
        generated = {w for f in embed_of(rec)["fields"] for w in f["value"].split()}
        assert generated <= mine, generated - mine
    first = tokenize(kept[0])[0]
    rec = await e2e.invoke(
        user, "markov", {"start": first, "temp": 0}, guild=guild, channel=channel
    )
    assert embed_of(rec)["description"].split()[0] == first
    rec = await e2e.invoke(user, "markov-explain", {"word": first}, guild=guild, channel=channel)
    assert not set(re.findall(r"\w+", embed_of(rec)["description"])) & theirs

    for word in sorted(theirs)[:3]:  # autocomplete above covered every one
        for command, option in [("markov", "start"), ("markov-explain", "word")]:
            rec = await e2e.invoke(user, command, {option: word}, guild=guild, channel=channel)
            assert rec.content.startswith(f"I never learned “{word}”."), (command, rec.content)


async def assert_consistent(
    e2e: E2E, bot: MarkovBot, texts: Sequence[str], guild: Any = None
) -> None:
    """The stored model is exactly what learning ``texts`` gives, and internally consistent."""
    await e2e.assert_model(bot, texts, guild)  # includes Store.recount: stored == expected
    assert await bot.store.check(await e2e.ns(bot, guild)) == []


# ---------------------------------------------------------------------- retention


async def test_retention_forgets_messages_older_than_its_limit_hourly(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    ancient = ["ancient scrolls crumble slowly", "dusty relics remain hidden"]  # 10 days old
    last_week = ["rain drenched every rooftop"]  # 5 days old
    today = ["fresh bread smells wonderful", "morning coffee tastes good"]
    async with e2e.start() as bot:
        cog, clock = await with_clock(bot)
        await e2e.enable_learning(w.user_id)
        old = [
            await fake.send_message(w.channel_id, w.user_id, t, message_id=days_ago(fake, 10))
            for t in ancient
        ]
        middle = [
            await fake.send_message(w.channel_id, w.user_id, t, message_id=days_ago(fake, 5))
            for t in last_week
        ]
        new = await e2e.say(w.channel_id, w.user_id, *today)
        await e2e.wait_learned(bot, old + middle + new)
        await assert_consistent(e2e, bot, ancient + last_week + today)

        # Without a limit, housekeeping keeps everything however old.
        clock.advance(365)
        await housekeeping(cog)
        await assert_consistent(e2e, bot, ancient + last_week + today)
        clock.advance(-365)

        # A member cannot set it (Discord hides the command; the bot checks anyway).
        refused = await e2e.invoke(
            w.user_id, "markov-admin retention", {"days": 1}, enforce_default_permissions=False
        )
        assert refused.ephemeral
        assert refused.content == "You need the Manage Server permission for that."
        assert (await bot.servers.guilds.config(w.guild_id)).retention_days is None

        rec = await e2e.invoke(w.admin_id, "markov-admin retention", {"days": 7})
        assert rec.ephemeral and rec.content == "Messages older than 7 days are forgotten hourly."
        status = await e2e.invoke(w.admin_id, "markov-admin status")
        assert "**Retention:** 7 days" in status.content

        await housekeeping(cog)
        assert await e2e.known(bot, ids_of(old)) == set()
        assert await e2e.known(bot, ids_of(middle + new)) == set(ids_of(middle + new))
        await assert_consistent(e2e, bot, last_week + today)
        await assert_members_see(e2e, last_week + today, ancient)

        # Three days on, last week's message is 8 days old: the next iteration forgets it.
        clock.advance(3)
        await housekeeping(cog)
        await assert_consistent(e2e, bot, today)
        await assert_members_see(e2e, today, ancient + last_week)

        # days:0 switches retention off: nothing is forgotten any more, however late.
        rec = await e2e.invoke(w.admin_id, "markov-admin retention", {"days": 0})
        assert rec.ephemeral and rec.content == "Messages are kept."
        assert (await bot.servers.guilds.config(w.guild_id)).retention_days is None
        clock.advance(3650)
        await housekeeping(cog)
        await assert_consistent(e2e, bot, today)
        assert await e2e.known(bot, ids_of(new)) == set(ids_of(new))


async def test_housekeeping_survives_a_locked_database(
    e2e: E2E, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    """A run that fails (the database locked by another process) is logged and the hourly
    loop keeps going: the next run forgets what the failed one could not."""
    w = e2e.world
    async with e2e.start() as bot:
        cog, _ = await with_clock(bot)
        await e2e.enable_learning(w.user_id)
        old = await fake.send_message(
            w.channel_id, w.user_id, "stale news travels", message_id=days_ago(fake, 9)
        )
        new = await e2e.say(w.channel_id, w.user_id, "current events matter")
        await e2e.wait_learned(bot, [old, *new])
        await e2e.invoke(w.admin_id, "markov-admin retention", {"days": 7})

        # Wait 0.2 s for the lock instead of 5 s, to keep the test short.
        await bot.store._writer.execute("PRAGMA busy_timeout = 200")
        blocker = sqlite3.connect(bot.store.path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with caplog.at_level(logging.ERROR, logger="bot.tasks"):
                await housekeeping(cog)  # raises nothing
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        failures = [r for r in caplog.records if r.getMessage().startswith("housekeeping failed")]
        assert len(failures) == 1 and failures[0].exc_info is not None
        assert "locked" in str(failures[0].exc_info[1])
        assert cog.housekeeping.is_running() and not cog.housekeeping.failed()
        assert await e2e.known(bot, ids_of([old])) == set(ids_of([old]))

        await housekeeping(cog)
        assert await e2e.known(bot, ids_of([old])) == set()
        await assert_consistent(e2e, bot, ["current events matter"])


async def test_retention_applies_per_server(e2e: E2E, fake: FakeDiscord) -> None:
    """One server's limit never forgets another server's messages of the same age."""
    w = e2e.world
    other, _, there = second_server(fake, w.user_id)
    async with e2e.start() as bot:
        cog, _ = await with_clock(bot)
        await e2e.enable_learning(w.user_id)
        await e2e.enable_learning(
            w.user_id, guild=other["id"], channel=there, admin=other["owner_id"]
        )
        here_old = await fake.send_message(
            w.channel_id, w.user_id, "old words here", message_id=days_ago(fake, 40)
        )
        there_old = await fake.send_message(
            there, w.user_id, "old words there", message_id=days_ago(fake, 40)
        )
        await e2e.wait_learned(bot, [here_old])
        await e2e.wait_learned(bot, [there_old], guild=other["id"])
        await e2e.invoke(w.admin_id, "markov-admin retention", {"days": 30})
        await housekeeping(cog)
        await assert_consistent(e2e, bot, [])
        await assert_consistent(e2e, bot, ["old words there"], guild=other["id"])


# ---------------------------------------------------------------------- removed servers


@dataclasses.dataclass
class Departed:
    """A guild the bot was removed from, kept so it can be invited back (same ids)."""

    state: GuildState
    channels: list[dict[str, Any]]


async def leave(fake: FakeDiscord, guild: int) -> Departed:
    """The bot is removed from ``guild`` (GUILD_DELETE if it is connected)."""
    state = fake.world.guild(guild)
    channels = [dict(fake.world.channels[c]) for c in state.channel_ids]
    await fake.remove_guild(guild)
    return Departed(state, channels)


async def invite_back(fake: FakeDiscord, departed: Departed) -> None:
    """The server invites the bot again: Discord keeps a guild's and its channels' ids, so
    the fake's world gets them back, then GUILD_CREATE (if the bot is connected)."""
    state = departed.state
    fake.world.guilds[state.id] = state
    for channel in departed.channels:
        cid = int(channel["id"])
        fake.world.channels[cid] = channel
        fake.world.history[cid] = []
        state.channel_ids.append(cid)
    await fake.join_guild(state.id)


def rows(db_path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the bot's SQLite file directly (read-only, a second connection)."""
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return db.execute(sql, args).fetchall()


def footprint(db_path: Path, guild: int, namespaces: Iterable[int]) -> dict[str, int]:
    """Rows that belong to one server: settings, consent, backfills, corpus names, and the
    model rows of ``namespaces`` (its model and its uploads, by id, so that rows left
    behind by a dropped namespace are counted too)."""
    ids = sorted(namespaces)
    marks = ",".join("?" * len(ids))
    counts = {
        table: rows(db_path, f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", guild)[0][0]
        for table, column in [
            ("guilds", "id"),
            ("channels", "guild"),
            ("members", "guild"),
            ("backfills", "guild"),
        ]
    }
    counts["upload names"] = rows(
        db_path, "SELECT COUNT(*) FROM namespaces WHERE name LIKE ?", f"upload:{guild}:%"
    )[0][0]
    for table in ("messages", "vocab", "transitions", "classes", "anchors"):
        sql = f"SELECT COUNT(*) FROM {table} WHERE ns IN ({marks})"
        counts[table] = rows(db_path, sql, *ids)[0][0]
    return counts


async def namespaces_of(bot: MarkovBot, guild: int) -> set[int]:
    """The ids of a server's model and of its uploaded corpora."""
    own = {f"guild:{guild}"}
    return {
        ns.id
        for ns in await bot.store.namespaces()
        if ns.name in own or ns.name.startswith(f"upload:{guild}:")
    }


async def removed(bot: MarkovBot) -> set[int]:
    """Servers whose grace period is running."""
    return set(await bot.servers.guilds.removed_before(math.inf))


async def upload(e2e: E2E, guild: int, channel: int, admin: int, name: str, text: str) -> None:
    rec = await e2e.invoke(
        admin,
        "markov-admin corpus-upload",
        {"name": name, "file": fake_file(f"{name}.txt", text)},
        guild=guild,
        channel=channel,
    )
    assert rec.content.startswith(f"Corpus “{name}” ready"), rec.content


# The first is long enough (10 words) to be stored with its anchors for the copy check.
HERE = [
    "harbour lights glimmer softly tonight while gulls circle above quiet wharves",
    "sailors sing shanties loudly",
]
THERE = ["mountain goats climb", "eagles soar high"]


async def two_servers_with_data(
    e2e: E2E, bot: MarkovBot, other: dict[str, Any], there: int
) -> None:
    """Both servers learned from alice and each uploaded a corpus."""
    w = e2e.world
    owner = int(other["owner_id"])
    await e2e.enable_learning(w.user_id)
    await e2e.enable_learning(w.user_id, guild=other["id"], channel=there, admin=owner)
    await e2e.wait_learned(bot, await e2e.say(w.channel_id, w.user_id, *HERE))
    await e2e.wait_learned(bot, await e2e.say(there, w.user_id, *THERE), guild=other["id"])
    await e2e.invoke(w.admin_id, "markov-admin retention", {"days": 365})
    await upload(
        e2e,
        w.guild_id,
        w.channel_id,
        w.admin_id,
        "tides",
        "the tide rises over the sand\nthe tide falls",
    )
    await upload(e2e, int(other["id"]), there, owner, "peaks", "the peak is cold\nthe peak is high")


async def assert_corpus(e2e: E2E, guild: int, channel: int, name: str, present: bool) -> None:
    rec = await e2e.invoke(
        e2e.world.user_id,
        "markov",
        {"corpus": name, "start": "the", "temp": 0},
        guild=guild,
        channel=channel,
    )
    if present:
        assert embed_of(rec)["footer"]["text"].endswith(f"· {name}")
    else:
        assert rec.content.startswith(f"There is no corpus called “{name}”"), rec.content


async def test_removed_server_is_kept_for_the_grace_period_then_deleted(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    here = w.guild_id
    other, there_guild, there = second_server(fake, w.user_id)
    settings = load_settings(
        {
            "MARKOV_DB": str(e2e.settings.db_path),
            "DISCORD_TOKEN": str(e2e.settings.token),
            "MARKOV_REMOVED_GUILD_GRACE_DAYS": "3",
        },
        dotenv_path=None,
    )
    assert settings.removed_guild_grace_days == 3
    db = settings.db_path
    async with e2e.start(settings=settings) as bot:
        cog, clock = await with_clock(bot)
        await two_servers_with_data(e2e, bot, other, there)
        here_ns = await namespaces_of(bot, here)
        there_ns = await namespaces_of(bot, there_guild)
        assert len(here_ns) == len(there_ns) == 2  # a model and an upload each
        here_before = footprint(db, here, here_ns)
        there_before = footprint(db, there_guild, there_ns)
        assert all(here_before[t] for t in ("guilds", "channels", "members", "upload names"))
        assert all(here_before[t] for t in ("messages", "vocab", "transitions", "anchors"))

        # Removed: the data stays for the whole grace period.
        departed = await leave(fake, here)

        async def marked() -> bool:
            return await removed(bot) == {here}

        await eventually(marked, what="the removal to be recorded")
        clock.advance(2.9)
        await housekeeping(cog)
        assert footprint(db, here, here_ns) == here_before
        await assert_consistent(e2e, bot, HERE)

        # Invited back within it: deletion is cancelled, however long afterwards.
        await invite_back(fake, departed)

        async def unmarked() -> bool:
            return await removed(bot) == set()

        await eventually(unmarked, what="the re-invitation to cancel the deletion")
        clock.advance(30)
        await housekeeping(cog)
        assert footprint(db, here, here_ns) == here_before
        await assert_members_see(e2e, HERE, THERE)
        await assert_corpus(e2e, here, w.channel_id, "tides", present=True)

        # Removed again: one moment before the grace period ends, nothing is gone ...
        departed = await leave(fake, here)
        await eventually(marked, what="the second removal to be recorded")
        clock.advance(2.99)
        await housekeeping(cog)
        assert footprint(db, here, here_ns) == here_before

        # ... and after it, everything of that server is deleted, and nothing of the other.
        clock.advance(0.02)
        await housekeeping(cog)
        gone = footprint(db, here, here_ns)
        assert gone == dict.fromkeys(gone, 0), gone
        assert await removed(bot) == set()
        ns = await e2e.ns(bot, here)
        assert await bot.store.check(ns) == []
        stats = await bot.store.stats(ns)
        assert (stats.messages, stats.tokens, stats.vocabulary, stats.contexts) == (0, 0, 0, 0)

        assert footprint(db, there_guild, there_ns) == there_before
        await assert_consistent(e2e, bot, THERE, guild=there_guild)
        await assert_members_see(e2e, THERE, HERE, guild=there_guild, channel=there)
        await assert_corpus(e2e, there_guild, there, "peaks", present=True)
        assert (await bot.servers.guilds.config(there_guild)).listened == frozenset({there})

        # Invited back after the deletion, it starts from nothing: no channel is listened,
        # no member has consented, no upload exists, and nothing is learned.
        await invite_back(fake, departed)
        config = await bot.servers.guilds.config(here)
        assert (config.listened, config.consent, config.retention_days) == (
            frozenset(),
            "opt-in",
            None,
        )
        posted = await e2e.say(w.channel_id, w.user_id, "harbour after the deletion")
        sentinel = await e2e.say(there, w.user_id, "eagles again")
        await e2e.wait_learned(bot, sentinel, guild=there_guild)
        assert await e2e.known(bot, ids_of(posted), here) == set()
        await assert_consistent(e2e, bot, [], guild=here)
        status = await e2e.invoke(w.admin_id, "markov-admin status")
        assert status.content.startswith("**Listening in:** none yet"), status.content
        privacy = await e2e.invoke(w.user_id, "markov-privacy status")
        assert "your choice: **none yet** — I am not learning from you." in privacy.content
        await assert_corpus(e2e, here, w.channel_id, "tides", present=False)


async def test_removal_and_reinvitation_while_offline(e2e: E2E, fake: FakeDiscord) -> None:
    """Discord sends no event for what happened while the bot was offline; housekeeping
    compares the servers it is in with the servers it has data of."""
    w = e2e.world
    here = w.guild_id
    other, there_guild, there = second_server(fake, w.user_id)
    grace = e2e.settings.removed_guild_grace_days
    assert grace == 30  # the default
    db = e2e.settings.db_path
    async with e2e.start() as bot:
        await two_servers_with_data(e2e, bot, other, there)
        here_ns = await namespaces_of(bot, here)
        here_before = footprint(db, here, here_ns)

    # Removed while offline: the next start notices, and the grace period starts then.
    departed = await leave(fake, here)
    async with e2e.start() as bot:
        cog, clock = await with_clock(bot)
        assert await removed(bot) == {here}
        clock.advance(grace - 0.1)
        await housekeeping(cog)
        assert footprint(db, here, here_ns) == here_before
        # Backdated past the grace period: the first housekeeping after the next start
        # would delete it, were it not for the re-invitation below.
        await bot.servers.guilds.mark_removed(here, True, at=time.time() - (grace + 1) * DAY)

    # Invited back while offline: the next start cancels the deletion.
    await invite_back(fake, departed)
    async with e2e.start() as bot:
        cog, clock = await with_clock(bot)
        assert await removed(bot) == set()
        clock.advance(grace + 1)
        await housekeeping(cog)
        assert footprint(db, here, here_ns) == here_before
        await assert_members_see(e2e, HERE, THERE)

        # Removed while online (grace + 1 days ago), then offline past the grace period:
        # the first housekeeping after the next start (real time) deletes it.
        clock.t = time.time() - (grace + 1) * DAY
        await leave(fake, here)

        async def marked() -> bool:
            return await removed(bot) == {here}

        await eventually(marked, what="the removal to be recorded")
    async with e2e.start() as bot:
        await with_clock(bot)
        gone = footprint(db, here, here_ns)
        assert gone == dict.fromkeys(gone, 0), gone
        await assert_consistent(e2e, bot, THERE, guild=there_guild)
