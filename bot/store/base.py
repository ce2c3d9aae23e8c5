"""The store's interface: what the core, the services, the cogs and the CLI may ask of
storage, whichever backend holds it.

:func:`open_store` (also ``Store.open``) picks the backend from the address: a
``postgresql://`` or ``postgres://`` URL is a PostgreSQL database
(:mod:`bot.store.postgres`), anything else the path of a SQLite file
(:mod:`bot.store.sqlite`, the embedded default). Both keep the same tables in the same
shape, count with the same kernels (:mod:`bot.store.kernels`) and give the same answers:
the same counts, count classes and order among equal candidates (first appearance), so a
seed gives the same text on either.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from bot.core.model import DEFAULT_ORDER, MemoryModel, ModelReader, contribution
from bot.core.wording import plural

if TYPE_CHECKING:
    from bot.store.guilds import Backfill
    from bot.store.reading import ReadCache

__all__ = [
    "AfterLearning",
    "Incoming",
    "LearnResult",
    "Namespace",
    "Stats",
    "Store",
    "StoredMessage",
    "Transitions",
    "is_postgres_url",
    "message_key",
    "open_store",
    "redacted",
]

Transitions = Counter[tuple[int, ...]]


def message_key(*parts: object) -> int:
    """A stable 63-bit id for a message that has no Discord id (a line of a file)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


@dataclass(frozen=True, slots=True)
class Namespace:
    id: int
    name: str
    order: int


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message to learn: its tokens, already produced by :func:`bot.core.tokenize.tokenize`."""

    id: int
    tokens: Sequence[str]
    author: int | None = None
    channel: int | None = None  # for a thread, its parent channel
    created: float | None = None
    thread: int | None = None  # the thread it was posted in, if any


@dataclass(frozen=True, slots=True)
class LearnResult:
    learned: int
    duplicates: int  # already learned under the same id: counted once
    empty: int  # nothing to learn (no words)
    tokens: int


@dataclass(frozen=True, slots=True)
class Stats:
    messages: int
    tokens: int
    vocabulary: int
    contexts: int
    order: int
    top_words: list[tuple[str, int]]
    channels: list[tuple[int | None, int]]
    authors: int
    database_bytes: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A learned message as stored: what a copy to another store needs."""

    id: int
    words: list[str]
    author: int | None
    channel: int | None
    created: float | None
    thread: int | None


#: What a caller commits with a batch, worked out from its result: a backfill's position.
AfterLearning = Callable[[LearnResult], "Backfill"]

#: One statement of server settings and its arguments, ``?`` marking each argument.
Statement = tuple[str, Sequence[Any]]


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def is_postgres_url(address: str | os.PathLike[str]) -> bool:
    return isinstance(address, str) and address.startswith(("postgresql://", "postgres://"))


async def open_store(address: str | os.PathLike[str]) -> Store:
    """The store at ``address``: a PostgreSQL URL, else a SQLite file's path."""
    if is_postgres_url(address):
        from bot.store.postgres import PostgresStore

        return await PostgresStore.connect(str(address))
    from bot.store.sqlite import SQLiteStore

    return await SQLiteStore.open_file(Path(address))


class Store(ABC):
    """Many independent models, one per namespace, and the bot's server settings.

    Every write is one transaction; learning is idempotent by message id; forgetting is
    the exact inverse of learning; a purge recorded before a crash is finished on open.
    """

    #: Where the data lives, for messages: a file's path or a URL without its password.
    where: str
    #: Reads of every namespace remembered across requests, until the namespace changes.
    read_cache: ReadCache

    @classmethod
    async def open(cls, address: str | os.PathLike[str]) -> Store:
        return await open_store(address)

    @abstractmethod
    async def close(self) -> None: ...

    # namespaces
    @abstractmethod
    async def namespace(self, name: str, order: int = DEFAULT_ORDER) -> Namespace: ...
    @abstractmethod
    async def namespaces(self) -> list[Namespace]: ...
    @abstractmethod
    def reader(self, ns: Namespace) -> ModelReader: ...

    @abstractmethod
    def exclusive(self, name: str) -> AbstractAsyncContextManager[None]:
        """Held by one process at a time (per name): a bundled corpus is built once."""

    # learning and forgetting
    @abstractmethod
    async def learn(
        self, ns: Namespace, batch: Sequence[Incoming], *, also: AfterLearning | None = None
    ) -> LearnResult:
        """Learn a batch in one transaction; ids already learned are skipped. ``also``
        gives the backfill position to save in the same transaction, so a page and its
        position commit together or not at all."""

    @abstractmethod
    async def forget(self, ns: Namespace, message_ids: Sequence[int]) -> int: ...
    @abstractmethod
    async def forget_author(self, ns: Namespace, author: int) -> int: ...
    @abstractmethod
    async def forget_channel(self, ns: Namespace, channel: int) -> int: ...
    @abstractmethod
    async def forget_thread(self, ns: Namespace, thread: int) -> int: ...
    @abstractmethod
    async def forget_older_than(self, ns: Namespace, timestamp: float) -> int: ...
    @abstractmethod
    async def purge(self, ns: Namespace) -> int: ...
    @abstractmethod
    async def drop_namespace(self, ns: Namespace) -> int: ...

    # reading
    @abstractmethod
    async def is_complete(self, ns: Namespace) -> bool: ...
    @abstractmethod
    async def mark_complete(self, ns: Namespace) -> None: ...
    @abstractmethod
    async def is_empty(self, ns: Namespace) -> bool: ...
    @abstractmethod
    async def last_message(self, ns: Namespace, channel: int) -> int | None: ...
    @abstractmethod
    async def author_messages(self, ns: Namespace, author: int) -> int: ...
    @abstractmethod
    async def known_messages(self, ns: Namespace, ids: Sequence[int]) -> set[int]: ...
    @abstractmethod
    async def autocomplete(self, ns: Namespace, prefix: str, limit: int = 25) -> list[str]: ...
    @abstractmethod
    async def stats(self, ns: Namespace, top: int = 10) -> Stats: ...
    @abstractmethod
    async def selection(
        self,
        ns: Namespace,
        *,
        author: int | None = None,
        channel: int | None = None,
        limit: int = 20_000,
    ) -> MemoryModel: ...

    # copying a whole namespace (markov-bot migrate)
    @abstractmethod
    async def words(self, ns: Namespace) -> list[str]:
        """The namespace's words in id order (the order they were first learned in)."""

    @abstractmethod
    async def reserve_words(self, ns: Namespace, words: Sequence[str]) -> None:
        """Number ``words`` in this order before any message uses them (with no count), so
        a copy orders equally frequent candidates as its source does."""

    @abstractmethod
    def messages(self, ns: Namespace) -> AsyncIterator[list[StoredMessage]]:
        """Every stored message of ``ns`` with its words, in pages, oldest id first."""

    # server settings (bot.store.guilds), in SQL both backends speak
    @abstractmethod
    async def settings_rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...
    @abstractmethod
    async def settings_write(self, statements: Sequence[Statement]) -> None:
        """Run the statements in one transaction."""

    # consistency
    @abstractmethod
    async def _stored_transitions(self, ns: Namespace) -> Transitions: ...
    @abstractmethod
    async def _sequences(self, ns: Namespace) -> list[list[int]]: ...
    @abstractmethod
    async def _vocab_counts(self, ns: Namespace) -> dict[int, int]: ...
    @abstractmethod
    async def _class_mismatches(self, ns: Namespace) -> list[tuple[bytes, int, int, int]]:
        """(context, count, candidates with that count, class size) where they differ."""

    @abstractmethod
    async def _nonpositive(self, ns: Namespace) -> int: ...

    async def recount(self, ns: Namespace) -> tuple[Transitions, Transitions]:
        """(stored transition counts, counts recomputed from the stored messages).

        Equal in a consistent database; used by tests and by :meth:`check`.
        """
        return await self._stored_transitions(ns), contribution(await self._sequences(ns), ns.order)

    async def check(self, ns: Namespace, *, recount: bool = True) -> list[str]:
        """What is inconsistent in a namespace's model: an empty list when nothing is.

        The count classes must be exactly the histogram of every context's transition
        counts (sampling reads the classes), and every count positive. With ``recount``,
        the transitions and word counts must also be exactly what the stored messages
        contribute; that part holds the whole model in memory, like :meth:`recount`.
        """
        from bot.core.model import unpack

        problems = [
            f"context {unpack(bytes(ctx))}: {plural(n, 'candidate')} seen "
            f"{plural(count, 'time')}, "
            f"but its count class says {size or 0}"
            for ctx, count, n, size in await self._class_mismatches(ns)
        ]
        if bad := await self._nonpositive(ns):
            problems.append(f"{bad} transitions have a count of 0 or less")
        if recount:
            sequences = await self._sequences(ns)  # read once for both checks below
            stored = await self._stored_transitions(ns)
            expected = contribution(sequences, ns.order)
            wrong = sorted(k for k in stored.keys() | expected.keys() if stored[k] != expected[k])
            if wrong:
                problems.append(
                    f"{len(wrong)} transition counts differ from what the stored messages "
                    f"contribute, e.g. {[(k, stored[k], expected[k]) for k in wrong[:3]]}"
                )
            words = Counter(chain.from_iterable(sequences))
            vocab = await self._vocab_counts(ns)
            wrong_words = sorted(
                t for t in words.keys() | vocab.keys() if words[t] != vocab.get(t, 0)
            )
            if wrong_words:
                problems.append(
                    f"{len(wrong_words)} word counts differ from the stored messages, e.g. "
                    f"{[(t, vocab.get(t), words[t]) for t in wrong_words[:3]]}"
                )
        return problems
