"""What the bot has yet to write: learned messages, deleted messages, deleted channels and
threads, per server.

Discord events must never wait on the database, and nothing they ask for may be lost when
the database refuses writes for a while (locked by another process, disk full). So work
leaves the queue only once committed, and a flush that fails leaves it for the next one.
A batch refused for anything else is split until the message it trips on is found: that
one is skipped (logged by id), the others are learned.
Per server, deletions are written before new messages: an edit is a deletion plus a new
text under the same id, and the new text must not land before the old one is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

from bot.store import Incoming, Namespace, Store
from bot.store.errors import database_wide
from bot.tasks import create_task

__all__ = ["FLUSH_MESSAGES", "QUEUE_LIMIT", "Place", "WriteQueue"]

log = logging.getLogger(__name__)

#: Queued messages that start a flush without waiting for the next tick.
FLUSH_MESSAGES = 500
#: Messages held while the database refuses writes: ~100 s of a very busy server, a day of
#: a quiet one, some 30 MB (tracemalloc, chat lines).
QUEUE_LIMIT = 100_000

#: A deleted channel or thread: Discord sends no per-message deletes for its messages.
Place = tuple[Literal["channel", "thread"], int]


class WriteQueue:
    """Per-server queues of writes, flushed in one transaction per kind and server."""

    def __init__(
        self,
        store: Store,
        namespace: Callable[[int], Awaitable[Namespace]],
        channel_gone: Callable[[int, int], Awaitable[None]],
    ) -> None:
        """``namespace(guild)`` is a server's model; ``channel_gone(guild, channel)`` is
        called once a deleted channel's messages are forgotten (for its settings)."""
        self._store = store
        self._namespace = namespace
        self._channel_gone = channel_gone
        self._messages: dict[int, dict[int, Incoming]] = {}
        self._forgets: dict[int, set[int]] = {}
        self._places: dict[int, set[Place]] = {}
        self._lock = asyncio.Lock()
        self._flushes: set[asyncio.Task[int]] = set()
        self.limit = QUEUE_LIMIT
        self._failing = False  # the last flush failed (logged once until one works)
        self._full = False  # messages were turned away (logged once until a flush works)

    def __len__(self) -> int:
        """Messages waiting to be learned."""
        return sum(map(len, self._messages.values()))

    def add(self, guild_id: int, item: Incoming) -> None:
        """Queue a message to learn (an edit replaces the queued text of its id); one
        without words is nothing to learn."""
        if not item.tokens:
            return
        queued = len(self)
        if queued >= self.limit:
            # Only while the database refuses writes for long: memory stays bounded, and
            # a backfill can learn these messages later.
            if not self._full:
                self._full = True
                log.warning(
                    "learning queue full (%d messages waiting for the database): new "
                    "messages are not learned until writing works again",
                    queued,
                )
            return
        self._messages.setdefault(guild_id, {})[item.id] = item
        # One size-triggered flush at a time: while it waits for the lock or writes, more
        # messages queue up for the next one (a task per message here made ~12,500 flush
        # calls, nearly all empty, in 15 s at ~1,600 messages/s: bench/load.py). While the
        # database refuses writes, only the caller's periodic flush retries.
        if not self._flushes and not self._failing and queued + 1 >= FLUSH_MESSAGES:
            task = create_task(self.flush(), name="learning queue flush")
            self._flushes.add(task)  # one at a time (see above)
            task.add_done_callback(self._flushes.discard)

    def forget(self, guild_id: int, ids: list[int]) -> None:
        """Deleted messages: dropped from the queue now, forgotten by the next flush."""
        queued = self._messages.get(guild_id, {})
        for mid in ids:
            queued.pop(mid, None)
        self._forgets.setdefault(guild_id, set()).update(ids)

    def forget_place(self, guild_id: int, place: Place) -> None:
        """A deleted channel or thread: its queued messages are dropped now, its learned
        ones go with the next flush. A thread's messages carry their parent as
        ``channel``, so a channel takes its threads along."""
        kind, where = place
        queued = self._messages.get(guild_id, {})
        for mid in [mid for mid, m in queued.items() if getattr(m, kind) == where]:
            del queued[mid]
        self._places.setdefault(guild_id, set()).add(place)

    @asynccontextmanager
    async def paused(self, guild_id: int) -> AsyncIterator[None]:
        """Drop everything queued for a server and hold off flushes meanwhile (its data
        is being deleted as a whole)."""
        async with self._lock:
            for queue in (self._messages, self._forgets, self._places):
                queue.pop(guild_id, None)
            yield

    async def flush(self) -> int:
        """Write what is queued; returns how many messages were learned. A server whose
        deletions fail learns nothing in this flush."""
        async with self._lock:
            learned = 0
            wrote = failed = False
            for guild_id in list(
                self._places.keys() | self._forgets.keys() | self._messages.keys()
            ):
                try:
                    learned += await self._flush_guild(guild_id)
                except Exception:
                    failed = True
                    if not self._failing:
                        self._failing = True
                        log.exception(
                            "writing the learning queue of guild %s failed; it stays queued "
                            "and is retried (logged once until it works again)",
                            guild_id,
                        )
                    continue
                wrote = True
            if wrote and not failed and self._failing:
                self._failing = self._full = False
                log.info("learning works again: the queued messages are written")
            return learned

    async def _flush_guild(self, guild_id: int) -> int:
        ns = await self._namespace(guild_id)
        places = self._places.get(guild_id, set())
        for place in sorted(places):
            kind, where = place
            if kind == "channel":
                n = await self._store.forget_channel(ns, where)
                await self._channel_gone(guild_id, where)
            else:
                n = await self._store.forget_thread(ns, where)
            places.discard(place)
            log.info("%s %s deleted: forgot %d messages", kind, where, n)
        if not places:
            self._places.pop(guild_id, None)
        doomed = self._forgets.get(guild_id)
        if doomed:
            ids = sorted(doomed)
            await self._store.forget(ns, ids)
            doomed.difference_update(ids)  # ids added meanwhile stay for the next flush
            if not doomed:
                del self._forgets[guild_id]
        batch = dict(self._messages.get(guild_id, {}))
        if not batch:
            return 0
        # In the order they were said (ids are Discord snowflakes, which grow with time),
        # not the order their events' handlers got here: a word's id is its first-learned
        # rank, which breaks ties between equally frequent candidates (Greedy's pick).
        learned = await self._learn(guild_id, ns, [batch[mid] for mid in sorted(batch)])
        queued = self._messages.get(guild_id, {})
        for mid, item in batch.items():
            if queued.get(mid) is item:  # not replaced by an edit meanwhile
                del queued[mid]
        if not queued:
            self._messages.pop(guild_id, None)
        return learned

    async def _learn(self, guild_id: int, ns: Namespace, batch: list[Incoming]) -> int:
        """Learn ``batch``; returns how many were learned. A refusal of the database itself
        (:func:`~bot.store.errors.database_wide`) keeps the whole batch for the next flush. Any
        other failure is one message's: the batch is halved until that message is alone, and it
        is skipped. If every message of a batch fails alone, the fault was not theirs after
        all, and they all stay queued."""
        bad: list[tuple[Incoming, Exception]] = []
        learned = await self._learn_split(ns, batch, bad)
        if len(batch) > 1 and len(bad) == len(batch):
            raise bad[0][1]
        for item, error in bad:
            log.error(
                "message %s of guild %s cannot be stored (%s): skipped, the others are learned",
                item.id,
                guild_id,
                type(error).__name__,
            )
        return learned

    async def _learn_split(
        self, ns: Namespace, batch: list[Incoming], bad: list[tuple[Incoming, Exception]]
    ) -> int:
        try:
            return (await self._store.learn(ns, batch)).learned
        except Exception as e:
            if database_wide(e):
                raise
            if len(batch) == 1:
                bad.append((batch[0], e))
                return 0
        half = len(batch) // 2
        return await self._learn_split(ns, batch[:half], bad) + await self._learn_split(
            ns, batch[half:], bad
        )
