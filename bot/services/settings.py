"""Settings from the environment and ``.env``, parsed and validated in one place.

A wrong value stops start-up with one line that names the setting and says what is
allowed, instead of surfacing later as a confusing failure deep inside a command.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from bot.core.model import DEFAULT_ORDER, MAX_ORDER
from bot.store.base import is_postgres_url, redacted

__all__ = ["Settings", "SettingsError", "load_settings"]

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A setting has a value that cannot work; the message names it and what is allowed."""


@dataclass(frozen=True, slots=True)
class Settings:
    token: str | None  # DISCORD_TOKEN; only `run` needs it
    db_path: Path | str  # MARKOV_DB: a SQLite file, or a postgresql:// URL (kept as text)
    log_level: str  # LOG_LEVEL
    dev_guild_id: int | None  # DEV_GUILD_ID: sync commands to this server instantly
    order: int  # MARKOV_ORDER: context length for new models
    removed_guild_grace_days: int  # MARKOV_REMOVED_GUILD_GRACE_DAYS
    shard_count: int | None = None  # SHARD_COUNT; None: Discord's recommendation
    shard_ids: tuple[int, ...] | None = None  # SHARD_IDS: this process's shards; None: all

    def __repr__(self) -> str:  # never print the token, even by accident
        return (
            f"Settings(token={'set' if self.token else 'unset'}, "
            f"db_path={redacted(str(self.db_path))}, "
            f"log_level={self.log_level}, dev_guild_id={self.dev_guild_id}, order={self.order}, "
            f"shard_count={self.shard_count}, shard_ids={self.shard_ids})"
        )

    @property
    def log_level_number(self) -> int:
        return int(getattr(logging, self.log_level))


def _int(env: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number from {low} to {high}.") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be a whole number from {low} to {high}, not {value}.")
    return value


#: More shards than any bot needs (Discord asks for one per 1,000 servers or so); a
#: bound keeps a typo from starting a process that tries to open millions of sessions.
MAX_SHARDS = 100_000


def _shard_ids(env: Mapping[str, str], count: int | None) -> tuple[int, ...] | None:
    """SHARD_IDS: the shards this process runs, each within 0..SHARD_COUNT-1."""
    raw = env.get("SHARD_IDS", "").strip()
    if not raw:
        return None
    if count is None:
        raise SettingsError(
            "SHARD_IDS needs SHARD_COUNT (the total number of shards across all processes)."
        )
    allowed = f"comma-separated shard ids from 0 to {count - 1}"
    ids: list[int] = []
    for part in raw.split(","):
        try:
            value = int(part.strip())
        except ValueError:
            raise SettingsError(f"SHARD_IDS must be {allowed}, not {raw!r}.") from None
        if not 0 <= value < count:
            raise SettingsError(f"SHARD_IDS must be {allowed} (SHARD_COUNT={count}), not {value}.")
        if value in ids:
            raise SettingsError(f"SHARD_IDS names shard {value} twice.")
        ids.append(value)
    return tuple(ids)


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike[str] | None = ".env"
) -> Settings:
    """Environment variables win over ``.env``; both are optional for the offline CLI."""
    env: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    token = env.get("DISCORD_TOKEN", "").strip() or None
    if token is not None and (len(token) < 20 or any(c.isspace() for c in token)):
        raise SettingsError(
            "DISCORD_TOKEN does not look like a bot token (copy it from the Developer "
            "Portal → Bot → Reset Token; no quotes or spaces)."
        )
    db = env.get("MARKOV_DB", "").strip() or "markov.db"
    if not is_postgres_url(db) and Path(db).is_dir():
        raise SettingsError(f"MARKOV_DB must be a file path, but {db} is a directory.")
    level = (env.get("LOG_LEVEL", "").strip() or "INFO").upper()
    if level not in _LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(_LEVELS)}, not {level!r}.")
    guild = _int(env, "DEV_GUILD_ID", None, 1, 2**63 - 1)
    order = _int(env, "MARKOV_ORDER", DEFAULT_ORDER, 1, MAX_ORDER)
    grace = _int(env, "MARKOV_REMOVED_GUILD_GRACE_DAYS", 30, 0, 3650)
    assert order is not None and grace is not None
    shard_count = _int(env, "SHARD_COUNT", None, 1, MAX_SHARDS)
    shard_ids = _shard_ids(env, shard_count)
    return Settings(
        token=token,
        db_path=db if is_postgres_url(db) else Path(db),
        log_level=level,
        dev_guild_id=guild,
        order=order,
        removed_guild_grace_days=grace,
        shard_count=shard_count,
        shard_ids=shard_ids,
    )
