"""SQLite storage: the only package that speaks SQL (see :mod:`bot.store.sqlite`)."""

from bot.store.errors import StoreError
from bot.store.schema import SCHEMA_VERSION
from bot.store.sqlite import (
    Incoming,
    LearnResult,
    Namespace,
    Stats,
    Store,
    StoreModel,
    message_key,
)

__all__ = [
    "SCHEMA_VERSION",
    "Incoming",
    "LearnResult",
    "Namespace",
    "Stats",
    "Store",
    "StoreError",
    "StoreModel",
    "message_key",
]
