"""Reading a channel as the service learns it: members' posts as ``Incoming``, pages of
history for a backfill, Discord's errors as reasons an admin can act on."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import discord

from bot.core.tokenize import tokenize
from bot.services.servers import BackfillFailed, HistoryPage, HistoryReader, Progress
from bot.store import Incoming
from bot.store.guilds import Backfill

if TYPE_CHECKING:
    from bot.app import MarkovBot

__all__ = ["failure_reason", "member_post", "parent_channel_id", "start_backfill"]

_LEARNABLE_TYPES = (discord.MessageType.default, discord.MessageType.reply)


def parent_channel_id(channel: Any) -> int:
    """Threads count as their parent channel: listening to #x includes its threads."""
    if isinstance(channel, discord.Thread) and channel.parent_id:
        return channel.parent_id
    return int(channel.id)


def member_post(message: discord.Message) -> Incoming | None:
    """A member's own message, as the service learns it; None for bots, webhooks, system
    messages and command responses, which are never learned."""
    if message.guild is None or message.author.bot or message.webhook_id is not None:
        return None
    if message.type not in _LEARNABLE_TYPES or message.interaction_metadata is not None:
        return None
    return Incoming(
        id=message.id,
        tokens=tokenize(message.content),
        author=message.author.id,
        channel=parent_channel_id(message.channel),
        created=message.created_at.timestamp(),
        thread=message.channel.id if isinstance(message.channel, discord.Thread) else None,
    )


def failure_reason(e: Exception) -> str:
    """Why reading history stopped, short enough for a reply: Discord's own words for an
    HTTP error ("Missing Access (403)"), else the exception."""
    if isinstance(e, discord.HTTPException):
        what = e.text or e.response.reason or type(e).__name__
        hint = " (I need View Channel and Read Message History there)" if e.status == 403 else ""
        return f"{what} ({e.status}){hint}"
    return str(e) or type(e).__name__


def history_reader(bot: MarkovBot, channel_id: int) -> HistoryReader:
    """Pages of a channel's history, newest first, for a backfill of the service."""

    async def read(before: int | None, limit: int) -> HistoryPage | None:
        channel = bot.get_channel(channel_id)
        if not isinstance(channel, discord.TextChannel | discord.Thread):
            raise BackfillFailed("the channel no longer exists (or is not a text channel)")
        cursor = discord.Object(id=before) if before else None
        try:
            page = [m async for m in channel.history(limit=limit, before=cursor)]
        except discord.HTTPException as e:
            raise BackfillFailed(failure_reason(e)) from e
        if not page:
            return None
        posts = [item for m in page if (item := member_post(m)) is not None]
        return HistoryPage(len(page), min(m.id for m in page), posts)

    return read


def start_backfill(
    bot: MarkovBot, guild_id: int, channel_id: int, limit: int, progress: Progress | None
) -> asyncio.Task[Backfill]:
    return bot.servers.start_backfill(
        guild_id, channel_id, limit, history_reader(bot, channel_id), progress
    )
