"""Learning from channels: new messages, edits, deletes, backfill, and replies when mentioned.

Only channels an admin enabled are read, and only messages of members who consented.
New messages are queued and written in batches (one transaction per second at most), so a
busy server costs a few writes a second, not one per message. Edits and deletes use the
raw gateway events, which arrive whether or not discord.py still caches the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands, tasks

from bot.generate import Options, generate
from bot.model import EmptyModel
from bot.store import Incoming, LearnResult, Namespace
from bot.store.guilds import Backfill, GuildConfig, MemberConsent
from bot.tasks import create_task, logged_failure
from bot.tokenize import tokenize
from bot.write_queue import WriteQueue

from .common import inert, upload_namespace_name, upload_owner

if TYPE_CHECKING:
    from bot.app import MarkovBot

__all__ = ["Learning"]

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
REPLY_COOLDOWN = 5.0  # seconds between mention replies in one channel
CATCH_UP_LIMIT = 1_000  # messages per channel read after a restart
CHATTER_COOLDOWN = 60.0  # seconds between unprompted messages in one channel
PROGRESS_EVERY = 3.0  # seconds between backfill progress edits
_LEARNABLE_TYPES = (discord.MessageType.default, discord.MessageType.reply)


@dataclass(slots=True)
class _Guild:
    config: GuildConfig
    consent: dict[int, MemberConsent]


def parent_channel_id(channel: Any) -> int:
    """Threads count as their parent channel: listening to #x includes its threads."""
    if isinstance(channel, discord.Thread) and channel.parent_id:
        return channel.parent_id
    return int(channel.id)


class Learning(commands.Cog):
    def __init__(self, bot: MarkovBot) -> None:
        self.bot = bot
        self._guilds: dict[int, _Guild] = {}
        self.writes = WriteQueue(bot.store, bot.namespace, self._channel_gone)
        self._last_reply: dict[int, float] = {}
        self._backfills: dict[tuple[int, int], asyncio.Task[Backfill]] = {}
        self._catch_up: asyncio.Task[None] | None = None
        #: Wall-clock seconds for retention and the removed-server grace period. Tests
        #: replace it to move days ahead instead of waiting (message ages come from their
        #: snowflakes, so only "now" needs moving).
        self.now: Callable[[], float] = time.time
        self._housekeeping_lock = asyncio.Lock()

    async def cog_load(self) -> None:
        self.flusher.start()
        self.housekeeping.start()
        for b in await self.bot.guild_config.unfinished_backfills():
            log.info("resuming backfill of channel %s in guild %s", b.channel, b.guild)
            self.start_backfill(b.guild, b.channel, b.remaining, progress=None)

    async def cog_unload(self) -> None:
        self.flusher.cancel()
        self.housekeeping.cancel()
        background = [*self._backfills.values(), *([self._catch_up] if self._catch_up else [])]
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.flush()

    # ------------------------------------------------------------------ state

    async def guild(self, guild_id: int) -> _Guild:
        state = self._guilds.get(guild_id)
        if state is None:
            state = _Guild(
                await self.bot.guild_config.config(guild_id),
                await self.bot.guild_config.member_consent(guild_id),
            )
            self._guilds[guild_id] = state
        return state

    def invalidate(self, guild_id: int) -> None:
        """Called after a setting changed, so the next message reads it afresh."""
        self._guilds.pop(guild_id, None)

    @staticmethod
    def consents_for(mode: str, choice: str | None) -> bool:
        return choice != "out" if mode == "opt-out" else choice == "in"

    def consents(self, state: _Guild, user_id: int) -> bool:
        return self.consents_for(state.config.consent, state.consent.get(user_id))

    async def eligible(self, message: discord.Message) -> bool:
        if message.guild is None or message.author.bot or message.webhook_id is not None:
            return False
        if message.type not in _LEARNABLE_TYPES or message.interaction_metadata is not None:
            return False
        state = await self.guild(message.guild.id)
        if parent_channel_id(message.channel) not in state.config.listened:
            return False
        return self.consents(state, message.author.id)

    # ------------------------------------------------------------------ catch-up

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        # on_ready fires again after a new session (an invalidated one, or a reconnect
        # that could not resume), whose missed messages are not replayed: catch up again.
        # Resumed sessions replay them and fire no on_ready.
        if self._catch_up is None or self._catch_up.done():
            self._catch_up = create_task(self.catch_up(), name="catch-up")

    async def catch_up(self) -> None:
        """Learn what was posted in listened channels while the bot was offline."""
        for guild in self.bot.guilds:
            state = await self.guild(guild.id)
            ns = await self.bot.namespace(guild.id)
            for channel_id in state.config.listened:
                channel = guild.get_channel(channel_id)
                last = await self.bot.store.last_message(ns, channel_id)
                if not isinstance(channel, discord.TextChannel) or last is None:
                    continue
                try:
                    batch = [
                        self.incoming(m)
                        async for m in channel.history(
                            limit=CATCH_UP_LIMIT, after=discord.Object(id=last), oldest_first=True
                        )
                        if await self.eligible(m)
                    ]
                except discord.HTTPException as e:
                    log.warning("catch-up of channel %s failed: %s", channel_id, e)
                    continue
                # Through the write queue, like live messages: kept if the database is
                # busy right now, and never learned twice.
                for item in batch:
                    self.writes.add(guild.id, item)
                log.info(
                    "caught up channel %s in guild %s: %d messages posted while away",
                    channel_id,
                    guild.id,
                    len(batch),
                )
        await self.flush()

    # ------------------------------------------------------------------ live messages

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if await self.eligible(message):
            self.queue(message)
        if message.guild is None or message.author.bot:
            return
        assert self.bot.user is not None
        if self.bot.user.mentioned_in(message) and not message.mention_everyone:
            create_task(
                self._speak(message, REPLY_COOLDOWN, reply=True),
                name=f"reply to message {message.id} in channel {message.channel.id}",
            )
        else:
            state = await self.guild(message.guild.id)
            chance = state.config.chatter.get(parent_channel_id(message.channel), 0.0)
            if chance and random.random() < chance:
                create_task(
                    self._speak(message, CHATTER_COOLDOWN, reply=False),
                    name=f"chatter in channel {message.channel.id}",
                )

    @staticmethod
    def incoming(message: discord.Message) -> Incoming:
        return Incoming(
            id=message.id,
            tokens=tokenize(message.content),
            author=message.author.id,
            channel=parent_channel_id(message.channel),
            created=message.created_at.timestamp(),
            thread=message.channel.id if isinstance(message.channel, discord.Thread) else None,
        )

    def queue(self, message: discord.Message) -> None:
        assert message.guild is not None
        self.writes.add(message.guild.id, self.incoming(message))

    async def flush(self) -> int:
        """Write what is queued now (before a purge, at shutdown; tests)."""
        return await self.writes.flush()

    @tasks.loop(seconds=FLUSH_SECONDS)
    async def flusher(self) -> None:
        with logged_failure("flushing the learning queue", "; it is retried in a second"):
            await self.flush()

    async def _speak(self, message: discord.Message, cooldown: float, reply: bool) -> None:
        assert message.guild is not None
        now = time.monotonic()
        if now - self._last_reply.get(message.channel.id, -cooldown) < cooldown:
            return
        self._last_reply[message.channel.id] = now
        try:
            ns = await self.bot.namespace(message.guild.id)
            g = await generate(self.bot.store.reader(ns), None, Options(temperature=0.8))
        except EmptyModel:
            return
        text = inert(g.text) or "…"
        if reply:
            await message.reply(text, mention_author=False)
        else:
            await message.channel.send(text)

    # ------------------------------------------------------------------ edits and deletes

    async def _forget(self, guild_id: int, ids: list[int]) -> None:
        """Deleted messages go now, or with the next flush that works: never lost."""
        self.writes.forget(guild_id, ids)
        await self.flush()

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            await self._forget(payload.guild_id, [payload.message_id])

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            await self._forget(payload.guild_id, list(payload.message_ids))

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """An edit replaces the message's old contribution with the new text."""
        if payload.guild_id is None or "content" not in payload.data:
            return
        if payload.message.author.bot:
            return  # bots (this one's replies included) are never learned: nothing to do
        await self._forget(payload.guild_id, [payload.message_id])
        if await self.eligible(payload.message):
            self.queue(payload.message)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        self.writes.forget_place(channel.guild.id, ("channel", channel.id))
        await self.flush()

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        self.writes.forget_place(payload.guild_id, ("thread", payload.thread_id))
        await self.flush()

    async def _channel_gone(self, guild_id: int, channel_id: int) -> None:
        """A deleted channel's messages are forgotten: its settings go too."""
        await self.bot.guild_config.forget_channel_config(guild_id, channel_id)
        self.invalidate(guild_id)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self.bot.guild_config.mark_removed(guild.id, True, at=self.now())
        log.info(
            "removed from guild %s: its data will be deleted in %d days",
            guild.id,
            self.bot.settings.removed_guild_grace_days,
        )

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.bot.guild_config.mark_removed(guild.id, False)

    @tasks.loop(hours=1)
    async def housekeeping(self) -> None:
        """Retention: forget messages past a server's limit; delete servers long gone.

        The lock keeps a run started by hand (the tests await this coroutine) from
        interleaving with the loop's own run. A failed run (the database locked or full)
        is logged and tried again an hour later: an exception escaping a ``tasks.loop``
        would end it for good, and with it every later deletion."""
        with logged_failure("housekeeping", "; it runs again in an hour"):
            await self._housekeep()

    async def _housekeep(self) -> None:
        async with self._housekeeping_lock:
            await self.reconcile_guilds()
            grace = self.bot.settings.removed_guild_grace_days * 86400
            for guild_id in await self.bot.guild_config.removed_before(self.now() - grace):
                n = await self.delete_guild_data(guild_id)
                log.info(
                    "deleted the data of guild %s after the grace period (%d messages)",
                    guild_id,
                    n,
                )
            for guild_id, days in await self.bot.guild_config.with_retention():
                ns = await self.bot.namespace(guild_id)
                n = await self.bot.store.forget_older_than(ns, self.now() - days * 86400)
                if n:
                    log.info(
                        "retention: forgot %d messages older than %d days in %s", n, days, guild_id
                    )

    @housekeeping.before_loop
    async def _housekeeping_waits_until_ready(self) -> None:
        """Which servers the bot is in is known only once connected (see reconcile_guilds)."""
        await self.bot.wait_until_ready()

    async def reconcile_guilds(self) -> None:
        """Catch up on removals and invitations while the bot was offline (Discord sends no
        event for them): a server with stored data that the bot is no longer in starts its
        grace period now, and one it is in again is no longer due for deletion."""
        if not self.bot.is_ready():  # before READY, self.bot.guilds is empty
            return
        config = self.bot.guild_config
        present = {g.id for g in self.bot.guilds}
        removed = set(await config.removed_before(math.inf))
        for guild_id in removed & present:
            await config.mark_removed(guild_id, False)
        owners = {upload_owner(ns.name) for ns in await self.bot.store.namespaces()}
        known = await config.known() | {g for g in owners if g is not None}
        for guild_id in known - present - removed:
            await config.mark_removed(guild_id, True, at=self.now())
            log.info("not in guild %s any more: its data will be deleted later", guild_id)

    async def delete_guild_data(self, guild_id: int) -> int:
        """Everything stored about a server: its model, its uploaded corpora, its settings
        and its members' consent. Returns how many learned messages were deleted."""
        async with self.writes.paused(guild_id):
            n = await self.bot.store.purge(await self.bot.namespace(guild_id))
        prefix = upload_namespace_name(guild_id, "")
        for ns in await self.bot.store.namespaces():
            if ns.name.startswith(prefix):
                await self.bot.store.drop_namespace(ns)
        await self.bot.guild_config.delete_guild(guild_id)
        # The cached settings too: if the server invites the bot again, nothing is
        # listened to and nobody has consented until they say so again.
        self.invalidate(guild_id)
        return n

    # ------------------------------------------------------------------ backfill

    def start_backfill(
        self,
        guild_id: int,
        channel_id: int,
        limit: int,
        progress: Callable[[Backfill, float], Awaitable[None]] | None,
    ) -> asyncio.Task[Backfill]:
        key = (guild_id, channel_id)
        running = self._backfills.get(key)
        if running is not None and not running.done():
            return running
        task = create_task(
            self._backfill(guild_id, channel_id, limit, progress),
            name=f"backfill of channel {channel_id} in guild {guild_id}",
        )
        self._backfills[key] = task
        return task

    async def _backfill(
        self,
        guild_id: int,
        channel_id: int,
        limit: int,
        progress: Callable[[Backfill, float], Awaitable[None]] | None,
    ) -> Backfill:
        """Read history newest to oldest, 100 messages a page; the position is saved with
        every page, so a restart resumes below the last page learned.

        A backfill that cannot go on (no access, the channel deleted, anything else) is
        saved as failed with the reason, reported, and logged once; it is not resumed on
        the next start, only when an admin starts it again (from where it stopped)."""
        await self.bot.wait_until_ready()  # a resumed backfill starts before the gateway
        config = self.bot.guild_config
        b = await config.start_backfill(guild_id, channel_id, limit)
        started = time.monotonic()
        try:
            b = await self._read_history(b, progress, started)
        except Exception as e:
            b = replace(b, failed=failure_reason(e))
            log.warning(
                "backfill of channel %s in guild %s failed: %s",
                channel_id,
                guild_id,
                b.failed,
                exc_info=not isinstance(e, discord.HTTPException),
            )
            await config.save_backfill(b)
        else:
            b = replace(b, done=True)
            await config.save_backfill(b)
            log.info("backfill of %s done: read %d, learned %d", channel_id, b.read, b.learned)
        if progress:
            await progress(b, b.read / max(1e-9, time.monotonic() - started))
        return b

    async def _read_history(
        self,
        b: Backfill,
        progress: Callable[[Backfill, float], Awaitable[None]] | None,
        started: float,
    ) -> Backfill:
        """The backfill's pages, until ``b.remaining`` are read or the history ends."""
        channel = self.bot.get_channel(b.channel)
        if not isinstance(channel, discord.TextChannel | discord.Thread):
            raise LookupError("the channel no longer exists (or is not a text channel)")
        ns = await self.bot.namespace(b.guild)
        last_report = 0.0
        while b.remaining > 0:
            before = discord.Object(id=b.before) if b.before else None
            page = [m async for m in channel.history(limit=min(100, b.remaining), before=before)]
            if not page:
                break
            batch = [self.incoming(m) for m in page if await self.eligible(m)]
            advance = partial(after_page, b, min(m.id for m in page), len(page))
            b = await self._learn_page(ns, batch, advance)  # the store skips empty ones
            if progress and time.monotonic() - last_report >= PROGRESS_EVERY:
                last_report = time.monotonic()
                await progress(b, b.read / max(1e-9, last_report - started))
        return b

    async def _learn_page(
        self, ns: Namespace, batch: list[Incoming], advance: Callable[[int], Backfill]
    ) -> Backfill:
        """Learn one page of a backfill and save the position after it, in one transaction:
        a crash leaves both or neither, so no page is counted twice or skipped."""

        def save(conn: sqlite3.Connection, result: LearnResult) -> None:
            self.bot.guild_config.write_backfill(conn, advance(result.learned))

        result = await self.bot.store.learn(ns, batch, also=save)
        return advance(result.learned)


def failure_reason(e: Exception) -> str:
    """Why a backfill stopped, short enough for a reply: Discord's own words for an HTTP
    error ("Missing Access (403)"), else the exception."""
    if isinstance(e, discord.HTTPException):
        what = e.text or e.response.reason or type(e).__name__
        hint = " (I need View Channel and Read Message History there)" if e.status == 403 else ""
        return f"{what} ({e.status}){hint}"
    return str(e) or type(e).__name__


def after_page(b: Backfill, oldest: int, read: int, learned: int) -> Backfill:
    """The backfill's position once a page of ``read`` messages down to ``oldest`` is done."""
    return replace(
        b,
        before=oldest,
        remaining=b.remaining - read,
        read=b.read + read,
        learned=b.learned + learned,
        skipped=b.skipped + read - learned,
    )


async def setup(bot: MarkovBot) -> None:
    await bot.add_cog(Learning(bot))
