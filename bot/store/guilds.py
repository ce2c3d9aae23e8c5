"""What the Discord bot remembers about servers: listened channels, consent, backfills.

Kept apart from the model tables but in the same database, through the store's public
settings methods. The SQL is what SQLite and PostgreSQL both speak (``?`` marks an
argument; ``"user"`` is quoted, a reserved word in PostgreSQL), so one class serves both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from bot.store.base import Store

__all__ = [
    "SAVE_BACKFILL",
    "Backfill",
    "ConsentMode",
    "GuildConfig",
    "Guilds",
    "MemberConsent",
    "backfill_row",
]

ConsentMode = Literal["opt-in", "opt-out"]
MemberConsent = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class GuildConfig:
    id: int
    consent: ConsentMode
    retention_days: int | None
    listened: frozenset[int]
    chatter: dict[int, float]


@dataclass(frozen=True, slots=True)
class Backfill:
    guild: int
    channel: int
    before: int | None  # oldest message id read so far: the next page starts below it
    remaining: int
    read: int
    learned: int
    skipped: int
    done: bool
    failed: str | None = None  # why it stopped for good (resumed only when started again)


class Guilds:
    """Per-server settings, in the store's database."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def _rows(self, sql: str, *args: Any) -> list[Any]:
        return await self._store.settings_rows(sql, *args)

    async def config(self, guild: int) -> GuildConfig:
        rows = await self._rows("SELECT consent, retention_days FROM guilds WHERE id = ?", guild)
        consent: ConsentMode = rows[0][0] if rows else "opt-in"
        retention: int | None = rows[0][1] if rows else None
        channels = await self._rows(
            "SELECT channel, listen, chatter FROM channels WHERE guild = ?", guild
        )
        return GuildConfig(
            id=guild,
            consent=consent,
            retention_days=retention,
            listened=frozenset(int(c) for c, listen, _ in channels if listen),
            chatter={int(c): float(ch) for c, _, ch in channels if ch > 0},
        )

    async def _write(self, guild: int, sql: str, *args: Any) -> None:
        """Change a server's row, creating it first (settings start at their defaults)."""
        await self._store.settings_write(
            [("INSERT INTO guilds (id) VALUES (?) ON CONFLICT DO NOTHING", (guild,)), (sql, args)]
        )

    async def set_listening(self, guild: int, channel: int, listen: bool) -> None:
        await self._write(
            guild,
            "INSERT INTO channels (guild, channel, listen) VALUES (?, ?, ?) "
            "ON CONFLICT (guild, channel) DO UPDATE SET listen = excluded.listen",
            guild,
            channel,
            int(listen),
        )

    async def set_chatter(self, guild: int, channel: int, chance: float) -> None:
        await self._write(
            guild,
            "INSERT INTO channels (guild, channel, chatter) VALUES (?, ?, ?) "
            "ON CONFLICT (guild, channel) DO UPDATE SET chatter = excluded.chatter",
            guild,
            channel,
            chance,
        )

    async def set_consent_mode(self, guild: int, mode: ConsentMode) -> None:
        await self._write(guild, "UPDATE guilds SET consent = ? WHERE id = ?", mode, guild)

    async def set_retention(self, guild: int, days: int | None) -> None:
        await self._write(guild, "UPDATE guilds SET retention_days = ? WHERE id = ?", days, guild)

    async def member_consent(self, guild: int) -> dict[int, MemberConsent]:
        rows = await self._rows('SELECT "user", consent FROM members WHERE guild = ?', guild)
        return {int(u): c for u, c in rows}

    async def set_member_consent(self, guild: int, user: int, consent: MemberConsent) -> None:
        await self._store.settings_write(
            [
                (
                    'INSERT INTO members (guild, "user", consent, changed) VALUES (?, ?, ?, ?) '
                    'ON CONFLICT (guild, "user") DO UPDATE SET consent = excluded.consent, '
                    "changed = excluded.changed",
                    (guild, user, consent, time.time()),
                )
            ]
        )

    async def forget_channel_config(self, guild: int, channel: int) -> None:
        await self._store.settings_write(
            [
                ("DELETE FROM channels WHERE guild = ? AND channel = ?", (guild, channel)),
                ("DELETE FROM backfills WHERE guild = ? AND channel = ?", (guild, channel)),
            ]
        )

    async def mark_removed(self, guild: int, removed: bool, at: float | None = None) -> None:
        """Start (at ``at``, default now) or cancel the grace period before deletion."""
        removed_at = (time.time() if at is None else at) if removed else None
        await self._write(guild, "UPDATE guilds SET removed_at = ? WHERE id = ?", removed_at, guild)

    async def known(self) -> set[int]:
        """Every server these tables hold anything of (a member's consent alone counts)."""
        rows = await self._rows(
            "SELECT id FROM guilds UNION SELECT guild FROM channels "
            "UNION SELECT guild FROM members UNION SELECT guild FROM backfills"
        )
        return {int(r[0]) for r in rows}

    async def removed_before(self, timestamp: float) -> list[int]:
        rows = await self._rows(
            "SELECT id FROM guilds WHERE removed_at IS NOT NULL AND removed_at < ?", timestamp
        )
        return [int(r[0]) for r in rows]

    async def delete_guild(self, guild: int) -> None:
        """Forget a server's configuration entirely (its model is purged separately)."""
        await self._store.settings_write(
            [
                (f"DELETE FROM {table} WHERE {column} = ?", (guild,))
                for table, column in (
                    ("channels", "guild"),
                    ("members", "guild"),
                    ("backfills", "guild"),
                    ("guilds", "id"),
                )
            ]
        )

    async def with_retention(self) -> list[tuple[int, int]]:
        rows = await self._rows(
            "SELECT id, retention_days FROM guilds WHERE retention_days IS NOT NULL "
            "AND removed_at IS NULL"
        )
        return [(int(g), int(d)) for g, d in rows]

    # ------------------------------------------------------------------ backfill progress

    async def start_backfill(self, guild: int, channel: int, limit: int) -> Backfill:
        """Begin, or resume where it stopped (or failed), the backfill of one channel."""
        again = "CASE WHEN backfills.done <> 0 THEN {} ELSE backfills.{} END"
        resets = {"remaining": "excluded.remaining", "before": "NULL"}
        resets |= {c: "0" for c in ("read", "learned", "skipped")}
        await self._store.settings_write(
            [
                (
                    "INSERT INTO backfills (guild, channel, before, remaining) "
                    "VALUES (?, ?, NULL, ?) ON CONFLICT (guild, channel) DO UPDATE SET "
                    + ", ".join(f"{c} = {again.format(v, c)}" for c, v in resets.items())
                    + ", done = 0, failed = NULL",
                    (guild, channel, limit),
                )
            ]
        )
        backfill = await self.backfill(guild, channel)
        assert backfill is not None
        return backfill

    async def backfill(self, guild: int, channel: int) -> Backfill | None:
        rows = await self._rows(
            f"{_BACKFILLS} WHERE guild = ? AND channel = ?",
            guild,
            channel,
        )
        return _backfill(rows[0]) if rows else None

    async def backfills(self, guild: int) -> list[Backfill]:
        """A server's backfills, finished, failed or running, by channel."""
        rows = await self._rows(f"{_BACKFILLS} WHERE guild = ? ORDER BY channel", guild)
        return [_backfill(r) for r in rows]

    async def unfinished_backfills(self) -> list[Backfill]:
        """Backfills cut short by a stop, to resume on start; failed ones wait for an admin."""
        sql = f"{_BACKFILLS} WHERE done = 0 AND failed IS NULL ORDER BY guild, channel"
        rows = await self._rows(sql)
        return [_backfill(r) for r in rows]

    async def save_backfill(self, b: Backfill) -> None:
        await self._store.settings_write([(SAVE_BACKFILL, backfill_row(b))])

    # ------------------------------------------------------------------ meta

    async def meta(self, key: str) -> str | None:
        rows = await self._rows("SELECT value FROM meta WHERE key = ?", key)
        return str(rows[0][0]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._store.settings_write(
            [
                (
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            ]
        )


_BACKFILLS = (
    "SELECT guild, channel, before, remaining, read, learned, skipped, done, failed FROM backfills"
)
#: Also run by the store in the transaction that learns a backfill's page.
SAVE_BACKFILL = (
    "UPDATE backfills SET before = ?, remaining = ?, read = ?, learned = ?, skipped = ?, "
    "done = ?, failed = ? WHERE guild = ? AND channel = ?"
)


def backfill_row(b: Backfill) -> tuple[Any, ...]:
    return (
        b.before,
        b.remaining,
        b.read,
        b.learned,
        b.skipped,
        int(b.done),
        b.failed,
        b.guild,
        b.channel,
    )


def _backfill(row: Any) -> Backfill:
    g, c, before, remaining, read, learned, skipped, done, failed = row
    return Backfill(
        int(g),
        int(c),
        None if before is None else int(before),
        int(remaining),
        int(read),
        int(learned),
        int(skipped),
        bool(done),
        None if failed is None else str(failed),
    )


#: Every settings table and its columns: what a copy of the store carries over.
SETTINGS_TABLES: dict[str, tuple[str, ...]] = {
    "guilds": ("id", "consent", "retention_days", "removed_at"),
    "channels": ("guild", "channel", "listen", "chatter"),
    "members": ("guild", '"user"', "consent", "changed"),
    "backfills": (
        "guild",
        "channel",
        "before",
        "remaining",
        "read",
        "learned",
        "skipped",
        "done",
        "failed",
    ),
    "meta": ("key", "value"),
}


async def copy_settings(source: Store, dest: Store) -> int:
    """Copy every settings row from ``source`` to ``dest`` in one transaction (rows already
    there are replaced by the source's); returns how many rows."""
    statements = []
    for table, columns in SETTINGS_TABLES.items():
        names = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        rows = await source.settings_rows(f"SELECT {names} FROM {table}")
        statements += [(f"DELETE FROM {table}", ())]
        statements += [(f"INSERT INTO {table} ({names}) VALUES ({marks})", r) for r in rows]
    await dest.settings_write(statements)
    return len(statements) - len(SETTINGS_TABLES)
