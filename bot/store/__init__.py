"""SQLite storage: the only package that speaks SQL (see :mod:`bot.store.core`)."""

from .core import (
    Incoming,
    LearnResult,
    Namespace,
    Stats,
    Store,
    StoreModel,
    message_key,
)
from .errors import StoreError
from .schema import SCHEMA_VERSION

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
