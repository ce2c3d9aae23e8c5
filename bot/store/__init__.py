"""Storage: the only package that speaks SQL. One interface (:mod:`bot.store.base`), a
SQLite backend (:mod:`bot.store.sqlite`, the embedded default) and a PostgreSQL one
(:mod:`bot.store.postgres`); :func:`open_store` picks one from the address."""

from bot.store.base import (
    Incoming,
    LearnResult,
    Namespace,
    Stats,
    Store,
    StoredMessage,
    is_postgres_url,
    message_key,
    open_store,
)
from bot.store.errors import StoreError
from bot.store.schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "Incoming",
    "LearnResult",
    "Namespace",
    "Stats",
    "Store",
    "StoreError",
    "StoredMessage",
    "is_postgres_url",
    "message_key",
    "open_store",
]
