"""Learning from channels: Discord's message events, translated for :mod:`bot.services.servers`.

What may be learned, what is forgotten and when is the service's business; this cog turns
gateway events into its calls, reads channel history for catch-up and backfill, and speaks
when mentioned or when chatter is on. Edits and deletes use the raw gateway events, which
arrive whether or not discord.py still caches the message.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

import discord
from discord.ext import commands, tasks

from bot.core.generate import Options, generate
from bot.core.model import EmptyModel
from bot.services.speaking import CHATTER, REPLY, Cooldowns
from bot.tasks import create_task, logged_failure

from .common import inert
from .history import member_post, parent_channel_id, start_backfill

if TYPE_CHECKING:
    import asyncio

    from bot.app import MarkovBot

__all__ = ["Learning"]

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
CATCH_UP_LIMIT = 1_000  # messages per channel read after a restart


class Learning(commands.Cog):
    def __init__(self, bot: MarkovBot) -> None:
        self.bot = bot
        self.servers = bot.servers
        self.cooldowns = Cooldowns()
        self._catch_up: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self.flusher.start()
        self.housekeeping.start()
        create_task(self._resume_backfills(), name="resuming backfills")

    async def cog_unload(self) -> None:
        self.flusher.cancel()
        self.housekeeping.cancel()
        if self._catch_up is not None:
            self._catch_up.cancel()
        await self.servers.stop_backfills()
        await self.servers.flush()

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
            for channel_id, last in await self.servers.catch_up_points(guild.id):
                channel = guild.get_channel(channel_id)
                if not isinstance(channel, discord.TextChannel):
                    continue
                try:
                    posts = [
                        item
                        async for m in channel.history(
                            limit=CATCH_UP_LIMIT, after=discord.Object(id=last), oldest_first=True
                        )
                        if (item := member_post(m)) is not None
                    ]
                except discord.HTTPException as e:
                    log.warning("catch-up of channel %s failed: %s", channel_id, e)
                    continue
                n = await self.servers.caught_up(guild.id, posts)
                log.info(
                    "caught up channel %s in guild %s: %d messages posted while away",
                    channel_id,
                    guild.id,
                    n,
                )
        await self.servers.flush()

    # ------------------------------------------------------------------ live messages

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None or message.author.bot:
            return
        item = member_post(message)
        if item is not None:
            await self.servers.learn(message.guild.id, item)
        assert self.bot.user is not None
        if self.bot.user.mentioned_in(message) and not message.mention_everyone:
            if self.cooldowns.ready(REPLY, message.channel.id):
                create_task(
                    self._speak(message, REPLY),
                    name=f"reply to message {message.id} in channel {message.channel.id}",
                )
            return
        state = await self.servers.state(message.guild.id)
        chance = state.config.chatter.get(parent_channel_id(message.channel), 0.0)
        if (
            chance
            and random.random() < chance
            and self.cooldowns.ready(CHATTER, message.channel.id)
        ):
            create_task(
                self._speak(message, CHATTER),
                name=f"chatter in channel {message.channel.id}",
            )

    @tasks.loop(seconds=FLUSH_SECONDS)
    async def flusher(self) -> None:
        with logged_failure("flushing the learning queue", "; it is retried in a second"):
            await self.servers.flush()

    async def _speak(self, message: discord.Message, kind: str) -> None:
        """Reply or chatter; the channel's timer of that kind is spent only once sent."""
        assert message.guild is not None
        try:
            ns = await self.servers.namespace(message.guild.id)
            g = await generate(self.bot.store.reader(ns), None, Options(temperature=0.8))
        except EmptyModel:
            return
        if not self.cooldowns.ready(kind, message.channel.id):
            return  # another message of this kind went out while this one was generated
        text = inert(g.text) or "…"
        if kind == REPLY:
            await message.reply(text, mention_author=False)
        else:
            await message.channel.send(text)
        self.cooldowns.spend(kind, message.channel.id)

    # ------------------------------------------------------------------ edits and deletes

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            await self.servers.deleted(payload.guild_id, [payload.message_id])

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            await self.servers.deleted(payload.guild_id, list(payload.message_ids))

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if payload.guild_id is None or "content" not in payload.data:
            return
        if payload.message.author.bot:
            return  # bots (this one's replies included) are never learned: nothing to do
        await self.servers.edited(
            payload.guild_id, payload.message_id, member_post(payload.message)
        )

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        await self.servers.place_deleted(channel.guild.id, ("channel", channel.id))

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        await self.servers.place_deleted(payload.guild_id, ("thread", payload.thread_id))

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self.servers.removed(guild.id)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.servers.joined(guild.id)

    # ------------------------------------------------------------------ housekeeping

    @tasks.loop(hours=1)
    async def housekeeping(self) -> None:
        """Retention and removed servers, hourly. A failed run (the database locked or
        full) is logged and tried again an hour later: an exception escaping a
        ``tasks.loop`` would end it for good, and with it every later deletion."""
        with logged_failure("housekeeping", "; it runs again in an hour"):
            await self.housekeep()

    async def housekeep(self) -> None:
        # Which servers the bot is in is known only once connected (before READY,
        # bot.guilds is empty and every server would look removed).
        # Other processes' shards hold the other servers: judge only this process's own.
        present = {g.id for g in self.bot.guilds} if self.bot.is_ready() else None
        await self.servers.housekeep(present, self.bot.owns)

    @housekeeping.before_loop
    async def _housekeeping_waits_until_ready(self) -> None:
        await self.bot.wait_until_ready()

    # ------------------------------------------------------------------ backfill

    async def _resume_backfills(self) -> None:
        await self.bot.wait_until_ready()  # channels are known only once connected
        for b in await self.servers.resumable_backfills():
            if not self.bot.owns(b.guild):
                continue  # the process running that server's shard resumes it
            log.info("resuming backfill of channel %s in guild %s", b.channel, b.guild)
            start_backfill(self.bot, b.guild, b.channel, b.remaining, progress=None)


async def setup(bot: MarkovBot) -> None:
    await bot.add_cog(Learning(bot))
