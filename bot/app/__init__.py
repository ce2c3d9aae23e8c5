"""The Discord application: the Bot subclass, its command tree and start-up.

Discord-facing code lives in ``cogs/``; this module builds the bot's resources outside it
(the store, the per-server service), hands them to the bot and its cogs, and turns
start-up failures (no token, a rejected token, the Message Content intent switched off, a
database file that cannot be used) into one clear line and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator
from typing import cast

import discord
from discord.ext import commands

from bot.app.replies import MarkovTree
from bot.services.servers import Servers, owns_guild
from bot.services.settings import Settings
from bot.store import Store, StoreError

__all__ = ["EXTENSIONS", "MarkovBot", "open_servers", "run_bot"]

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.learning",
    "cogs.generation",
    "cogs.explanation",
    "cogs.stepping",
    "cogs.admin",
    "cogs.privacy",
    "cogs.buttons",
)
_SYNC_KEY = "commands-hash"


def intents() -> discord.Intents:
    """Exactly what the bot needs: servers, their messages, and the text of those messages."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.message_content = True
    return wanted


class MarkovBot(commands.AutoShardedBot):
    """The Discord client: cogs reach the store and the service through its attributes.

    Sharded so that a bot in thousands of servers can run as several processes, each with
    its own shards (``SHARD_IDS`` of ``SHARD_COUNT``) over one database; with neither set it
    runs every shard Discord recommends, in one process.
    """

    def __init__(self, settings: Settings, servers: Servers, *, force_sync: bool = False) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=MarkovTree,
            help_command=None,
            max_ratelimit_timeout=60.0,
            shard_count=settings.shard_count,
            # None (its default: every shard) is missing from discord.py's annotation.
            shard_ids=cast("list[int]", settings.shard_ids and list(settings.shard_ids)),
        )
        self.settings = settings
        self.servers = servers
        self.store = servers.store
        self.force_sync = force_sync

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.force_sync or self.syncs_commands:
            await self.sync_commands(force=self.force_sync)
        else:
            log.info("slash commands are registered by the process running shard 0")

    @property
    def syncs_commands(self) -> bool:
        """Commands are global: one process registers them, the one running shard 0."""
        return self.shard_ids is None or 0 in self.shard_ids

    def owns(self, guild_id: int) -> bool:
        """Whether this process handles the server (its shard runs here); False before the
        shard count is known, since nothing can be concluded about any server then."""
        count: int | None = self.shard_count  # None until launched without SHARD_COUNT
        if count is None:
            return False
        return owns_guild(guild_id, count, self.shard_ids)

    async def on_shard_ready(self, shard_id: int) -> None:
        servers = sum(1 for g in self.guilds if g.shard_id == shard_id)
        log.info("shard %d of %s ready: %d servers", shard_id, self.shard_count, servers)

    async def on_shard_resumed(self, shard_id: int) -> None:
        log.info("shard %d of %s resumed its session", shard_id, self.shard_count)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        log.info("shard %d of %s disconnected; discord.py reconnects", shard_id, self.shard_count)

    async def on_ready(self) -> None:
        shards = sorted(self.shards)
        log.info("ready: shards %s of %s, %d servers", shards, self.shard_count, len(self.guilds))
        # What start-up built (modules, the server cache) lives as long as the process. Out
        # of the collector's full passes, which would scan it all (about 70 ms here, in the
        # middle of some answer), only what came later is scanned (bench/backends.py).
        gc.freeze()

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: the learning cog listens to messages instead."""

    def command_hash(self) -> str:
        payload = [c.to_dict(self.tree) for c in self.tree.get_commands()]
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    async def sync_commands(self, force: bool = False) -> bool:
        """Register the slash commands with Discord only when they changed.

        Discord rate-limits command registration, so the hash of the last synced set is
        kept in the database and compared on every start.
        """
        digest = self.command_hash()
        guild = self.settings.dev_guild_id
        key = f"{_SYNC_KEY}:{guild or 'global'}"
        if not force and await self.servers.guilds.meta(key) == digest:
            log.info("slash commands unchanged; not syncing")
            return False
        if guild:
            target = discord.Object(id=guild)
            self.tree.copy_global_to(guild=target)
            synced = await self.tree.sync(guild=target)
        else:
            synced = await self.tree.sync()
        await self.servers.guilds.set_meta(key, digest)
        log.info(
            "synced %d slash commands (%s)", len(synced), f"guild {guild}" if guild else "global"
        )
        return True

    async def close(self) -> None:
        """Stop listening and write what is pending (the store is closed by its owner)."""
        for name in list(self.extensions):
            try:
                await self.unload_extension(name)
            except Exception:
                log.exception("unloading %s failed", name)
        await super().close()


@contextlib.asynccontextmanager
async def open_servers(settings: Settings) -> AsyncIterator[Servers]:
    """The bot's resources, built before it and closed after it: the store and the
    per-server service over it (``servers.store``)."""
    store = await Store.open(settings.db_path)
    try:
        async with Servers(
            store, order=settings.order, grace_days=settings.removed_guild_grace_days
        ) as servers:
            yield servers
    finally:
        await store.close()
        log.info("database closed")


def _fail(message: str) -> int:
    print(f"markov-bot: {message}", file=sys.stderr)  # noqa: T201 - the one start-up line
    return 1


async def _start(settings: Settings, token: str, sync_only: bool) -> None:
    # The database first: a file that cannot be used stops the start-up with its one line,
    # before any log output or request to Discord.
    async with open_servers(settings) as servers:
        discord.utils.setup_logging(level=settings.log_level_number, root=True)
        await _run(MarkovBot(settings, servers, force_sync=sync_only), token, sync_only)


async def _run(bot: MarkovBot, token: str, sync_only: bool) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            loop.add_signal_handler(sig, stopping.set)
    async with bot:
        if sync_only:
            await bot.login(token)  # runs setup_hook, which syncs (forced)
            return
        runner = asyncio.create_task(bot.start(token))
        waiter = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            log.info("signal received: shutting down")
            await bot.close()
        waiter.cancel()
        await runner


def run_bot(settings: Settings, sync_only: bool = False) -> int:
    """Entry point of ``markov-bot run`` / ``python -m bot``; returns the exit status."""
    if not settings.token:
        return _fail("DISCORD_TOKEN is not set (put it in .env or the environment; see README).")
    try:
        asyncio.run(_start(settings, settings.token, sync_only))
    except StoreError as e:
        return _fail(str(e))
    except discord.LoginFailure:
        return _fail("Discord rejected DISCORD_TOKEN (reset it in the Developer Portal → Bot).")
    except discord.PrivilegedIntentsRequired:
        return _fail(
            "The Message Content intent is off: enable it in the Developer Portal → Bot → "
            "Privileged Gateway Intents, then start again."
        )
    except KeyboardInterrupt:
        pass
    return 0
