"""Snowflake ids that look and sort like Discord's.

Bots routinely derive timestamps from ids (``discord.utils.snowflake_time``),
page history by id and compare ids to decide "newer than"; so the fake must
hand out ids that encode the wall-clock time and strictly increase, not
small counters.
"""

from __future__ import annotations

import datetime
import time

from .constants import DISCORD_EPOCH_MS

_WORKER_ID = 1
_PROCESS_ID = 0


def snowflake_for_time(when: datetime.datetime, increment: int = 0) -> int:
    """Return the id Discord would mint at ``when`` (naive datetimes are UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    ms = int(when.timestamp() * 1000)
    return (
        ((ms - DISCORD_EPOCH_MS) << 22)
        | (_WORKER_ID << 17)
        | (_PROCESS_ID << 12)
        | (increment & 0xFFF)
    )


def snowflake_time(snowflake: int) -> datetime.datetime:
    """Decode the creation time of ``snowflake`` as an aware UTC datetime."""
    ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


def iso_timestamp(snowflake: int) -> str:
    """ISO-8601 timestamp for a snowflake, in the format Discord sends."""
    return snowflake_time(snowflake).isoformat()


def utc_iso_now() -> str:
    """The current time formatted like Discord's timestamps."""
    return datetime.datetime.now(datetime.UTC).isoformat()


class SnowflakeGenerator:
    """Mints strictly increasing, timestamp-based ids.

    Two ids minted in the same millisecond differ in the increment bits; if the
    clock ever goes backwards the generator keeps counting up from the last id
    so ordering by id always matches creation order.
    """

    def __init__(self) -> None:
        self._last = 0
        self._past_counts: dict[int, int] = {}

    def next(self) -> int:
        """A fresh id for "now"."""
        ms = int(time.time() * 1000)
        candidate = ((ms - DISCORD_EPOCH_MS) << 22) | (_WORKER_ID << 17) | (_PROCESS_ID << 12)
        if candidate <= self._last:
            candidate = self._last + 1
        self._last = candidate
        return candidate

    def on_shard(self, shard_id: int, shard_count: int) -> int:
        """A fresh id whose server would be delivered on shard ``shard_id`` of ``shard_count``:
        the next id whose millisecond part is ``shard_id`` modulo ``shard_count`` (at most
        ``shard_count - 1`` ms ahead of now)."""
        candidate = self.next()
        ms = candidate >> 22
        ahead = (shard_id - ms) % shard_count
        if ahead:
            candidate = ((ms + ahead) << 22) | (_WORKER_ID << 17) | (_PROCESS_ID << 12)
            self._last = candidate
        return candidate

    def at(self, when: datetime.datetime) -> int:
        """A fresh id for a past moment (used to seed history).

        Ids at the same past moment are kept unique by bumping the increment
        bits; they are not tracked against :meth:`next`, which is fine because
        past moments sort before anything minted now.
        """
        base = snowflake_for_time(when)
        return base + self._bump(base)

    def _bump(self, base: int) -> int:
        n = self._past_counts.get(base, 0)
        self._past_counts[base] = n + 1
        if n >= 4096:
            raise ValueError("more than 4096 seeded ids in one millisecond")
        return n
