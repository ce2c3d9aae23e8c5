"""What the bot knows and does about each server, with no Discord in sight.

The promises that matter most live here, where a unit test can reach them without a
gateway: learn only where an admin listens and only from members who consented; a deleted
message, channel, thread or member leaves the model; retention forgets old messages; a
server that removed the bot is deleted after its grace period; a backfill remembers where
it stopped and why it failed. The cogs translate Discord's events into these calls; the
CLI calls them directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from types import TracebackType

from bot.services.write_queue import Place, WriteQueue
from bot.store import Incoming, LearnResult, Namespace, Store
from bot.store.guilds import Backfill, ConsentMode, GuildConfig, Guilds, MemberConsent
from bot.tasks import create_task

__all__ = [
    "BackfillFailed",
    "HistoryPage",
    "MemberStatus",
    "Owns",
    "Servers",
    "consents",
    "owns_guild",
    "server_namespace_name",
    "shard_of",
    "upload_namespace_name",
    "upload_owner",
]

log = logging.getLogger(__name__)

DAY = 86_400.0
UPLOAD_PREFIX = "upload:"


def consents(mode: ConsentMode | str, choice: MemberConsent | str | None) -> bool:
    """The consent rule: in opt-in mode only members who opted in are learned; in opt-out
    mode everyone except those who opted out."""
    return choice != "out" if mode == "opt-out" else choice == "in"


#: Whether this process is responsible for a server (its shard runs here).
Owns = Callable[[int], bool]


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord delivers a server's events on."""
    return (guild_id >> 22) % shard_count


def owns_guild(guild_id: int, shard_count: int, shard_ids: Collection[int] | None) -> bool:
    """Whether a process running ``shard_ids`` of ``shard_count`` (None: all) owns a server.

    Several processes share one database; each may only conclude things about the servers
    Discord shows it, or it would take other processes' servers for removed ones.
    """
    return shard_ids is None or shard_of(guild_id, shard_count) in shard_ids


def _everything(guild_id: int) -> bool:
    return True


def server_namespace_name(guild_id: int) -> str:
    return f"guild:{guild_id}"


def upload_namespace_name(guild_id: int, name: str) -> str:
    """Server-owned corpora are namespaced by server, so no other server can read them."""
    return f"{UPLOAD_PREFIX}{guild_id}:{name}"


def upload_owner(namespace: str) -> int | None:
    """The server an uploaded corpus's namespace belongs to (None for any other name)."""
    if not namespace.startswith(UPLOAD_PREFIX):
        return None
    guild = namespace[len(UPLOAD_PREFIX) :].partition(":")[0]
    return int(guild) if guild.isdigit() else None


@dataclass(frozen=True, slots=True)
class ServerState:
    """A server's settings and its members' choices, cached between changes."""

    config: GuildConfig
    consent: dict[int, MemberConsent]

    def learns(self, item: Incoming) -> bool:
        """Whether a member's message may be learned: a listened channel, a consenting author."""
        if item.channel not in self.config.listened or item.author is None:
            return False
        return consents(self.config.consent, self.consent.get(item.author))


@dataclass(frozen=True, slots=True)
class MemberStatus:
    mode: ConsentMode
    choice: MemberConsent | None
    learning: bool  # whether new messages of theirs are learned
    stored: int  # their messages in the model


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a channel's history as the adapter read it, newest first."""

    read: int  # messages on the page, learnable or not
    oldest: int  # the oldest message id on the page: the next page starts below it
    messages: Sequence[Incoming]  # members' own posts (not bots', not system messages)


class BackfillFailed(Exception):
    """The adapter cannot read the history any more; the message says why, for an admin."""


#: Reads up to ``limit`` messages before ``before`` (None: the newest); an empty page ends.
HistoryReader = Callable[[int | None, int], Awaitable[HistoryPage | None]]
#: Told where a backfill stands, with its rate in messages per second.
Progress = Callable[[Backfill, float], Awaitable[None]]

PROGRESS_EVERY = 3.0  # seconds between backfill progress reports


class Servers:
    """Every server's settings, consent, learning queue, deletions and backfills.

    Built outside the bot with the store it works on and closed with ``async with``:
    closing stops the backfills and writes what is still queued.
    """

    def __init__(
        self,
        store: Store,
        *,
        order: int,
        grace_days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.guilds = Guilds(store)
        self.order = order
        self.grace_days = grace_days
        #: Wall-clock seconds for retention and grace periods; tests move it days ahead
        #: (message ages come from their snowflakes, so only "now" needs moving).
        self.now = clock
        self.writes = WriteQueue(store, self.namespace, self._channel_gone)
        self._states: dict[int, ServerState] = {}
        self._namespaces: dict[int, Namespace] = {}
        self._backfills: dict[tuple[int, int], asyncio.Task[Backfill]] = {}
        #: Held while a housekeeping run is under way (a run by hand waits for the hourly one).
        self.housekeeping_lock = asyncio.Lock()

    async def __aenter__(self) -> Servers:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the backfills and write what is queued."""
        await self.stop_backfills()
        await self.flush()

    async def stop_backfills(self) -> None:
        """Cancel the running backfills: each resumes where it stopped on the next start
        (before the bot disconnects, which they would take for a failure)."""
        running = [t for t in self._backfills.values() if not t.done()]
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------------ state

    async def namespace(self, guild_id: int) -> Namespace:
        """The model of one server (created on first use)."""
        ns = self._namespaces.get(guild_id)
        if ns is None:
            ns = await self.store.namespace(server_namespace_name(guild_id), self.order)
            self._namespaces[guild_id] = ns
        return ns

    async def state(self, guild_id: int) -> ServerState:
        state = self._states.get(guild_id)
        if state is None:
            state = ServerState(
                await self.guilds.config(guild_id), await self.guilds.member_consent(guild_id)
            )
            self._states[guild_id] = state
        return state

    def invalidate(self, guild_id: int) -> None:
        """After a setting changed: the next message reads it afresh."""
        self._states.pop(guild_id, None)

    async def learns(self, guild_id: int, item: Incoming) -> bool:
        return (await self.state(guild_id)).learns(item)

    async def may_imitate(self, guild_id: int, user_id: int) -> bool:
        """Whether ``/markov user:`` may build a model of this member alone."""
        state = await self.state(guild_id)
        return consents(state.config.consent, state.consent.get(user_id))

    # ------------------------------------------------------------------ settings

    async def listen(self, guild_id: int, channel_id: int, on: bool) -> GuildConfig:
        await self.guilds.set_listening(guild_id, channel_id, on)
        self.invalidate(guild_id)
        return (await self.state(guild_id)).config

    async def set_consent_mode(self, guild_id: int, mode: ConsentMode) -> None:
        await self.guilds.set_consent_mode(guild_id, mode)
        self.invalidate(guild_id)

    async def set_chatter(self, guild_id: int, channel_id: int, chance: float) -> None:
        await self.guilds.set_chatter(guild_id, channel_id, chance)
        self.invalidate(guild_id)

    async def set_retention(self, guild_id: int, days: int | None) -> None:
        await self.guilds.set_retention(guild_id, days)
        self.invalidate(guild_id)

    async def set_member_consent(self, guild_id: int, user_id: int, choice: MemberConsent) -> None:
        await self.guilds.set_member_consent(guild_id, user_id, choice)
        self.invalidate(guild_id)

    async def member_status(self, guild_id: int, user_id: int) -> MemberStatus:
        config = await self.guilds.config(guild_id)
        choice = (await self.guilds.member_consent(guild_id)).get(user_id)
        stored = await self.store.author_messages(await self.namespace(guild_id), user_id)
        return MemberStatus(config.consent, choice, consents(config.consent, choice), stored)

    # ------------------------------------------------------------------ learning

    async def learn(self, guild_id: int, item: Incoming) -> bool:
        """Queue a member's new message if it may be learned; True if it was."""
        if not await self.learns(guild_id, item):
            return False
        self.writes.add(guild_id, item)
        return True

    async def edited(self, guild_id: int, message_id: int, item: Incoming | None) -> None:
        """An edit replaces the old contribution with the new text (None: not learnable)."""
        await self.deleted(guild_id, [message_id])
        if item is not None:
            await self.learn(guild_id, item)

    async def deleted(self, guild_id: int, ids: list[int]) -> None:
        """Deleted messages go now, or with the next flush that works: never lost."""
        self.writes.forget(guild_id, ids)
        await self.flush()

    async def place_deleted(self, guild_id: int, place: Place) -> None:
        """A deleted channel or thread: Discord sends no deletes for its messages."""
        self.writes.forget_place(guild_id, place)
        await self.flush()

    async def flush(self) -> int:
        """Write what is queued now (the periodic flush, before a purge, at shutdown)."""
        return await self.writes.flush()

    async def _channel_gone(self, guild_id: int, channel_id: int) -> None:
        """A deleted channel's messages are forgotten: its settings go too."""
        await self.guilds.forget_channel_config(guild_id, channel_id)
        self.invalidate(guild_id)

    # ------------------------------------------------------------------ catch-up

    async def catch_up_points(self, guild_id: int) -> list[tuple[int, int]]:
        """(channel, newest learned message) of each listened channel with anything learned:
        where reading what was posted while the bot was away starts."""
        state = await self.state(guild_id)
        ns = await self.namespace(guild_id)
        points = []
        for channel_id in sorted(state.config.listened):
            last = await self.store.last_message(ns, channel_id)
            if last is not None:
                points.append((channel_id, last))
        return points

    async def caught_up(self, guild_id: int, items: Sequence[Incoming]) -> int:
        """Messages posted while away, through the queue like live ones (kept if the
        database is busy, never learned twice). Returns how many may be learned."""
        queued = 0
        for item in items:
            queued += await self.learn(guild_id, item)
        return queued

    # ------------------------------------------------------------------ forgetting

    async def forget_member(self, guild_id: int, user_id: int) -> int:
        """Everything learned from one member here (what is queued first, so none slips by)."""
        await self.flush()
        return await self.store.forget_author(await self.namespace(guild_id), user_id)

    async def forget_channel(self, guild_id: int, channel_id: int) -> int:
        await self.flush()
        return await self.store.forget_channel(await self.namespace(guild_id), channel_id)

    async def purge(self, guild_id: int) -> int:
        """Every learned message of a server; its settings stay."""
        async with self.writes.paused(guild_id):
            n = await self.store.purge(await self.namespace(guild_id))
        log.info("purged guild %s: %d messages", guild_id, n)
        return n

    async def delete_server(self, guild_id: int) -> int:
        """Everything stored about a server: its model, its uploaded corpora, its settings
        and its members' consent. Returns how many learned messages were deleted."""
        n = await self.purge(guild_id)
        prefix = upload_namespace_name(guild_id, "")
        for ns in await self.store.namespaces():
            if ns.name.startswith(prefix):
                await self.store.drop_namespace(ns)
        await self.guilds.delete_guild(guild_id)
        # The cached settings too: if the server invites the bot again, nothing is
        # listened to and nobody has consented until they say so again.
        self.invalidate(guild_id)
        return n

    async def uploads(self, guild_id: int) -> list[str]:
        """The names of a server's uploaded corpora."""
        prefix = upload_namespace_name(guild_id, "")
        return [
            ns.name[len(prefix) :]
            for ns in await self.store.namespaces()
            if ns.name.startswith(prefix)
        ]

    # ------------------------------------------------------------------ presence, retention

    async def removed(self, guild_id: int) -> None:
        """The bot left (or was removed from) a server: its grace period starts."""
        await self.guilds.mark_removed(guild_id, True, at=self.now())
        log.info(
            "removed from guild %s: its data will be deleted in %d days",
            guild_id,
            self.grace_days,
        )

    async def joined(self, guild_id: int) -> None:
        await self.guilds.mark_removed(guild_id, False)

    async def reconcile(self, present: set[int], owns: Owns = _everything) -> None:
        """Catch up on removals and invitations while the bot was offline (Discord sends no
        event for them): a server with stored data that the bot is no longer in starts its
        grace period now, and one it is in again is no longer due for deletion. Only servers
        this process ``owns`` are judged: another process's are absent here, not removed."""
        removed = set(await self.guilds.removed_before(math.inf))
        for guild_id in removed & present:
            await self.guilds.mark_removed(guild_id, False)
        owners = {upload_owner(ns.name) for ns in await self.store.namespaces()}
        known = await self.guilds.known() | {g for g in owners if g is not None}
        for guild_id in {g for g in known - present - removed if owns(g)}:
            await self.guilds.mark_removed(guild_id, True, at=self.now())
            log.info("not in guild %s any more: its data will be deleted later", guild_id)

    async def housekeep(self, present: set[int] | None, owns: Owns = _everything) -> None:
        """The hourly run: reconcile with ``present`` (None before the bot knows its
        servers), delete servers past their grace period, apply each server's retention;
        each for the servers this process ``owns`` (the others' processes do theirs).
        Runs one at a time (a run by hand waits for the periodic one)."""
        async with self.housekeeping_lock:
            if present is not None:
                await self.reconcile(present, owns)
            due = await self.guilds.removed_before(self.now() - self.grace_days * DAY)
            for guild_id in filter(owns, due):
                n = await self.delete_server(guild_id)
                log.info(
                    "deleted the data of guild %s after the grace period (%d messages)",
                    guild_id,
                    n,
                )
            for guild_id, days in await self.guilds.with_retention():
                if owns(guild_id):
                    await self.apply_retention(guild_id, days)

    async def apply_retention(self, guild_id: int, days: int) -> int:
        """Forget a server's messages older than ``days``; returns how many."""
        ns = await self.namespace(guild_id)
        n = await self.store.forget_older_than(ns, self.now() - days * DAY)
        if n:
            log.info("retention: forgot %d messages older than %d days in %s", n, days, guild_id)
        return n

    # ------------------------------------------------------------------ backfill

    async def resumable_backfills(self) -> list[Backfill]:
        """Backfills a stop cut short (failed ones wait for an admin)."""
        return await self.guilds.unfinished_backfills()

    async def backfills(self, guild_id: int) -> list[Backfill]:
        return await self.guilds.backfills(guild_id)

    def start_backfill(
        self,
        guild_id: int,
        channel_id: int,
        limit: int,
        read: HistoryReader,
        progress: Progress | None = None,
    ) -> asyncio.Task[Backfill]:
        """Learn up to ``limit`` messages of a channel's history in the background (or the
        backfill already running there)."""
        key = (guild_id, channel_id)
        running = self._backfills.get(key)
        if running is not None and not running.done():
            return running
        task = create_task(
            self._backfill(guild_id, channel_id, limit, read, progress),
            name=f"backfill of channel {channel_id} in guild {guild_id}",
        )
        self._backfills[key] = task
        return task

    async def _backfill(
        self,
        guild_id: int,
        channel_id: int,
        limit: int,
        read: HistoryReader,
        progress: Progress | None,
    ) -> Backfill:
        """Read history newest to oldest; the position is saved with every page, so a
        restart resumes below the last page learned.

        A backfill that cannot go on is saved as failed with the reason, reported, and
        logged once; it is not resumed on the next start, only when an admin starts it
        again (from where it stopped)."""
        b = await self.guilds.start_backfill(guild_id, channel_id, limit)
        ns = await self.namespace(guild_id)
        started, last_report = time.monotonic(), 0.0
        try:
            while b.remaining > 0:
                page = await read(b.before, min(100, b.remaining))
                if page is None or page.read == 0:
                    break
                state = await self.state(guild_id)
                batch = [m for m in page.messages if state.learns(m)]
                b = await self._learn_page(ns, batch, b, page)  # the store skips empty ones
                if progress and time.monotonic() - last_report >= PROGRESS_EVERY:
                    last_report = time.monotonic()
                    await progress(b, b.read / max(1e-9, last_report - started))
        except Exception as e:
            # ``b`` is where the last committed page left it: saved with the reason.
            b = replace(b, failed=str(e) or type(e).__name__)
            log.warning(
                "backfill of channel %s in guild %s failed: %s",
                channel_id,
                guild_id,
                b.failed,
                exc_info=not isinstance(e, BackfillFailed),
            )
        else:
            b = replace(b, done=True)
            log.info("backfill of %s done: read %d, learned %d", channel_id, b.read, b.learned)
        await self.guilds.save_backfill(b)
        if progress:
            await progress(b, b.read / max(1e-9, time.monotonic() - started))
        return b

    async def _learn_page(
        self, ns: Namespace, batch: list[Incoming], b: Backfill, page: HistoryPage
    ) -> Backfill:
        """Learn one page and save the position after it, in one transaction: a crash
        leaves both or neither, so no page is counted twice or skipped."""

        def save(result: LearnResult) -> Backfill:
            return after_page(b, page, result.learned)

        result = await self.store.learn(ns, batch, also=save)
        return after_page(b, page, result.learned)


def after_page(b: Backfill, page: HistoryPage, learned: int) -> Backfill:
    """The backfill's position once ``page`` is done."""
    return replace(
        b,
        before=page.oldest,
        remaining=b.remaining - page.read,
        read=b.read + page.read,
        learned=b.learned + learned,
        skipped=b.skipped + page.read - learned,
    )
