"""Shared machinery of the end-to-end tests: the real bot against the fake Discord.

``E2E`` bundles one test's fake Discord, its world (a guild with #general, a thread, an
admin and alice), the settings (database under ``tmp_path``) and the helpers every
scenario needs: start the real :class:`bot.app.MarkovBot`, run a slash command and wait
for its answer (checking the 3-second deadline), switch learning on, post messages and
wait until the bot has stored them, and snapshot a server's model to prove that a
forget/delete/edit removed exactly what a message had added.

Nothing of the project is mocked: the bot connects to the fake over loopback sockets
with discord.py's own client, and the assertions read the bot's replies from the fake
and its model from the same SQLite file the bot writes.
"""

# The wait helpers take ``timeout=`` so their failure messages can name it.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import discord

from bot.app import MarkovBot, open_servers
from bot.core.model import BOS, EOS, contribution
from bot.core.tokenize import tokenize
from bot.services.settings import Settings
from bot.store import Namespace
from fake_discord import BasicWorld, FakeDiscord, InteractionRecord, running_bot

__all__ = [
    "E2E",
    "AdminServer",
    "ModelSnapshot",
    "StartedBot",
    "cached",
    "eventually",
    "expected_transitions",
    "ids_of",
    "on_ready_finished",
]

#: Discord gives up on an interaction that has not been acknowledged after 3 s.
DEADLINE = 3.0


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 5.0, what: str = "condition"
) -> Any:
    """Poll an async condition every 20 ms until it is truthy (for effects inside the bot)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def expected_transitions(texts: Iterable[str], order: int) -> dict[tuple[str, ...], int]:
    """The model a fresh learner would build from exactly these messages (the reference)."""
    spelled = {BOS: "<BOS>", EOS: "<EOS>"}
    counts = contribution([tokenize(t) for t in texts if tokenize(t)], order)  # type: ignore[arg-type]
    return {tuple(spelled.get(t, t) for t in key): n for key, n in counts.items()}


class AdminServer:
    """A guild with #general, an admin and members (ids as ints), driven as its admin would
    drive it: by slash commands, each answered within Discord's deadline."""

    def __init__(
        self,
        fake: FakeDiscord,
        name: str,
        admin: str,
        members: Sequence[str],
        shard: tuple[int, int] | None = None,
    ) -> None:
        self.fake = fake
        self.guild = int(fake.add_guild(name, shard=shard)["id"])
        self.channel = int(fake.add_text_channel(self.guild, "general")["id"])
        self.admin = int(fake.add_user(admin)["id"])
        fake.add_member(self.guild, self.admin)
        fake.make_admin(self.guild, self.admin)
        self.members: dict[str, int] = {}
        for member in members:
            self.members[member] = int(fake.add_user(member)["id"])
            fake.add_member(self.guild, self.members[member])

    async def command(self, user: int, name: str, options: dict[str, Any] | None = None) -> str:
        rec = await self.fake.invoke(self.guild, self.channel, user, name, options)
        message = await rec.wait_message(timeout=5)
        assert rec.response_time is not None and rec.response_time < DEADLINE
        return str(message.get("content") or "")

    async def learn_everyone(self) -> None:
        """Listen to #general and learn every member (opt-out mode)."""
        said = await self.command(self.admin, "markov-admin listen", {"channel": self.channel})
        assert said.startswith("Listening in"), said
        said = await self.command(self.admin, "markov-admin consent", {"mode": "opt-out"})
        assert said == "Consent mode is now **opt-out**.", said


def ids_of(messages: Iterable[Mapping[str, Any]]) -> list[int]:
    return [int(m["id"]) for m in messages]


def cached(bot: discord.Client, message_id: int | str) -> bool:
    """Whether discord.py holds the message in its cache (``Client.cached_messages``)."""
    return any(m.id == int(message_id) for m in bot.cached_messages)


async def tasks_finished(*names: str, timeout: float = 5.0) -> None:
    """Wait for the bot's tasks whose names start with one of ``names`` (discord.py names
    the tasks it schedules: ``discord.py: on_ready``, ``CommandTree-invoker``,
    ``discord-ui-view-dispatch-…``)."""
    tasks = [
        t
        for t in asyncio.all_tasks()
        if t.get_name().startswith(names) and t is not asyncio.current_task()
    ]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


async def on_ready_finished(timeout: float = 5.0) -> None:
    """Wait for the ``on_ready`` listeners discord.py scheduled."""
    await tasks_finished("discord.py: on_ready", timeout=timeout)


#: The tasks that answer interactions: a command's handler and a component's callback.
HANDLERS = ("CommandTree-invoker", "discord-ui-view-dispatch-")


class StartedBot:
    """The bot with its resources (:func:`bot.app.open_servers`) under :class:`running_bot`,
    once it has also finished its ``on_ready`` work.

    The learning cog catches up on listened channels in ``on_ready``; a test that stopped
    the bot in the middle of that would measure the shutdown race (see
    ``test_e2e_learning.py::test_stopping_during_catch_up_is_clean``), not what it tests.
    """

    def __init__(
        self, fake: FakeDiscord, settings: Settings, force_sync: bool, running: dict[str, Any]
    ) -> None:
        self.fake, self.settings, self.force_sync, self.running = (
            fake,
            settings,
            force_sync,
            running,
        )
        self.stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> MarkovBot:
        async with contextlib.AsyncExitStack() as stack:
            servers = await stack.enter_async_context(open_servers(self.settings))
            bot = MarkovBot(self.settings, servers, force_sync=self.force_sync)
            await stack.enter_async_context(running_bot(self.fake, bot, **self.running))
            await on_ready_finished()
            self.stack = stack.pop_all()
        return bot

    async def __aexit__(self, *exc: Any) -> None:
        await self.stack.__aexit__(*exc)


@dataclasses.dataclass(frozen=True)
class ModelSnapshot:
    """A server's model, spelled out in words so it can be compared across ids and restarts."""

    transitions: dict[tuple[str, ...], int]
    messages: int
    tokens: int
    vocabulary: int
    contexts: int
    authors: int
    words: dict[str, int]

    def same_model(self, other: ModelSnapshot) -> bool:
        return dataclasses.astuple(self) == dataclasses.astuple(other)


class E2E:
    """One end-to-end test's world and helpers (the ``e2e`` fixture)."""

    def __init__(self, fake: FakeDiscord, world: BasicWorld, settings: Settings) -> None:
        self.fake = fake
        self.world = world
        self.settings = settings

    def member(self, name: str) -> int:
        """A new user who is a member of the world's guild; returns their id."""
        user = int(self.fake.add_user(name)["id"])
        self.fake.add_member(self.world.guild_id, user)
        return user

    # ------------------------------------------------------------------ the bot

    def start(
        self,
        *,
        settings: Settings | None = None,
        force_sync: bool = False,
        **running: Any,
    ) -> StartedBot:
        """``async with e2e.start() as bot:`` — the real bot, logged in, ready, and done with
        its ``on_ready`` work (the catch-up of listened channels)."""
        return StartedBot(self.fake, settings or self.settings, force_sync, running)

    # ------------------------------------------------------------------ interactions

    async def invoke(
        self,
        user: Any,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        guild: Any = None,
        channel: Any = None,
        **kwargs: Any,
    ) -> InteractionRecord:
        """Run a slash command and wait for the message it shows; checks the 3 s deadline."""
        guild = self.world.guild_id if guild is None else guild
        channel = self.world.channel_id if channel is None else channel
        rec = await self.fake.invoke(guild, channel, user, command, options, **kwargs)
        await rec.wait_message()
        self.check_deadline(rec)
        return rec

    async def click(
        self,
        rec: InteractionRecord,
        custom_id: str,
        user: Any,
        values: Sequence[Any] | None = None,
    ) -> InteractionRecord:
        """Press a button (or pick ``values`` in a select) on the message an interaction showed;
        waits for the bot's answer (for a deferred click, the edit that follows).

        Like a member who reads the answer first, it presses only once the handler that sent
        the message has returned: discord.py starts listening to a message's components when
        the request that sent it returns, which can be after the fake has shown the message.
        """
        message_id = rec.original_message_id
        assert message_id is not None, f"{rec} showed no message"
        await tasks_finished(*HANDLERS)
        click = await self.fake.click(message_id, custom_id, user, values=values)
        await click.wait_message()  # a deferred click: until its edit arrives
        self.check_deadline(click)
        return click

    async def forget_me(self, user: Any, **where: Any) -> InteractionRecord:
        """``/markov-privacy forget`` and its confirmation; returns the command's record,
        whose message says what was forgotten once the deletion is done."""
        ask = await self.invoke(user, "markov-privacy forget", **where)
        assert ask.ephemeral and ask.content.endswith("(it cannot be undone). Sure?"), ask.content
        confirm, _cancel = ask.custom_ids()
        await self.click(ask, confirm, user)
        await self.fake.wait_for(lambda: ask.content.startswith("Forgot"), what="the forget")
        return ask

    @staticmethod
    def check_deadline(rec: InteractionRecord) -> None:
        assert rec.response_time is not None and rec.response_time < DEADLINE, (
            f"{rec} was acknowledged after {rec.response_time} s"
        )

    # ------------------------------------------------------------------ learning

    async def enable_learning(
        self,
        *members: Any,
        channel: Any = None,
        guild: Any = None,
        admin: Any = None,
    ) -> None:
        """An admin listens to ``channel`` (default #general); each member opts in."""
        guild = self.world.guild_id if guild is None else guild
        channel = self.world.channel_id if channel is None else channel
        admin = self.world.admin_id if admin is None else admin
        rec = await self.invoke(
            admin, "markov-admin listen", {"channel": channel}, guild=guild, channel=channel
        )
        assert rec.content.startswith(f"Listening in <#{int(channel)}>"), rec.content
        assert rec.ephemeral
        for member in members or (self.world.user_id,):
            rec = await self.invoke(member, "markov-privacy optin", guild=guild, channel=channel)
            assert rec.content.startswith("Thanks!"), rec.content
            assert rec.ephemeral

    async def say(self, channel: Any, author: Any, *texts: str, **extra: Any) -> list[dict]:
        """Post messages as a member (MESSAGE_CREATE for each)."""
        return [await self.fake.send_message(channel, author, text, **extra) for text in texts]

    async def ns(self, bot: MarkovBot, guild: Any = None) -> Namespace:
        return await bot.servers.namespace(self.world.guild_id if guild is None else int(guild))

    async def flush(self, bot: MarkovBot) -> None:
        """Write what the service has queued (what the 1-second flusher would do)."""
        await bot.servers.flush()

    async def known(self, bot: MarkovBot, ids: Sequence[int], guild: Any = None) -> set[int]:
        return await bot.store.known_messages(await self.ns(bot, guild), ids)

    async def wait_learned(
        self,
        bot: MarkovBot,
        messages: Sequence[Mapping[str, Any]],
        *,
        guild: Any = None,
        flush: bool = True,
        timeout: float = 5.0,
    ) -> None:
        """Wait until every message is stored in the model (flushing the queue when asked)."""
        wanted = set(ids_of(messages))

        async def stored() -> bool:
            if flush:
                await self.flush(bot)
            return wanted <= await self.known(bot, list(wanted), guild)

        await eventually(stored, timeout, f"messages {sorted(wanted)} to be learned")

    async def wait_forgotten(
        self,
        bot: MarkovBot,
        messages: Sequence[Mapping[str, Any]],
        *,
        guild: Any = None,
        timeout: float = 5.0,
    ) -> None:
        ids = ids_of(messages)

        async def gone() -> bool:
            return not await self.known(bot, ids, guild)

        await eventually(gone, timeout, f"messages {ids} to be forgotten")

    async def snapshot(self, bot: MarkovBot, guild: Any = None) -> ModelSnapshot:
        """The stored model in words; also checks that it equals a recount of its messages."""
        ns = await self.ns(bot, guild)
        stored, recomputed = await bot.store.recount(ns)
        assert stored == recomputed, "stored transition counts differ from their messages"
        reader = bot.store.reader(ns)
        ids = sorted({t for key in stored for t in key} - {BOS, EOS})
        names = dict(zip(ids, await reader.spell(ids), strict=True))
        names.update({BOS: "<BOS>", EOS: "<EOS>"})
        stats = await bot.store.stats(ns, top=10_000)
        return ModelSnapshot(
            transitions={tuple(names[t] for t in key): n for key, n in stored.items()},
            messages=stats.messages,
            tokens=stats.tokens,
            vocabulary=stats.vocabulary,
            contexts=stats.contexts,
            authors=stats.authors,
            words=dict(stats.top_words),
        )

    async def assert_model(self, bot: MarkovBot, texts: Sequence[str], guild: Any = None) -> None:
        """The server's model is exactly what learning ``texts`` from scratch would give."""
        snap = await self.snapshot(bot, guild)
        tokens = [t for text in texts for t in tokenize(text)]
        assert snap.transitions == expected_transitions(texts, bot.settings.order)
        assert snap.messages == sum(1 for text in texts if tokenize(text))
        assert snap.tokens == len(tokens)
        assert snap.words == dict(Counter(tokens))
        assert snap.vocabulary == len(set(tokens))
