"""Bulk learning from text files: the CLI's ``learn``, bundled corpora and uploads.

Lines are tokenized and learned in batches, each its own transaction, so a killed import
keeps every finished batch and learning the same file again adds nothing (a line's id is
derived from the file name, its line number and its text).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from bot.core.tokenize import tokenize
from bot.corpora import Corpus, read_lines
from bot.store import Incoming, LearnResult, Namespace, Store, message_key

__all__ = ["CORPUS_PREFIX", "ImportTotals", "corpus_namespace", "import_lines"]

CORPUS_PREFIX = "corpus:"
BATCH_LINES = 20_000
YIELD_LINES = 500


@dataclass(slots=True)
class ImportTotals:
    lines: int = 0
    learned: int = 0
    duplicates: int = 0
    empty: int = 0
    tokens: int = 0

    def add(self, lines: int, result: LearnResult) -> None:
        self.lines += lines
        self.learned += result.learned
        self.duplicates += result.duplicates
        self.empty += result.empty
        self.tokens += result.tokens


async def import_lines(
    store: Store,
    ns: Namespace,
    lines: Iterable[tuple[int, str]],
    source: str,
    progress: Callable[[ImportTotals, int], Awaitable[None] | None] | None = None,
    batch_lines: int = BATCH_LINES,
) -> ImportTotals:
    """Learn numbered lines; ``progress(totals, bytes_in_batch)`` is called after each batch."""
    totals = ImportTotals()
    batch: list[Incoming] = []
    size = 0
    # While SQLite writes one batch (in its own thread, without the GIL) the next one is
    # tokenized here: the two overlap on separate cores.
    pending: asyncio.Task[None] | None = None

    async def write(batch: list[Incoming], size: int) -> None:
        totals.add(len(batch), await store.learn(ns, batch))
        if progress is not None:
            reported = progress(totals, size)  # a terminal bar, or an edited Discord reply
            if reported is not None:
                await reported

    for number, text in lines:
        batch.append(Incoming(message_key(source, number, text), tokenize(text)))
        size += len(text.encode()) + 1
        if len(batch) % YIELD_LINES == 0:
            # Tokenizing a batch takes a tenth of a second or more: let the loop answer
            # commands meanwhile, and let a write waiting on the server go on with its next
            # statement (PostgreSQL's run on this loop).
            await asyncio.sleep(0)
        if len(batch) >= batch_lines:
            if pending is not None:
                await pending
            pending = asyncio.create_task(write(batch, size))
            await asyncio.sleep(0)  # start it before tokenizing the next batch
            batch, size = [], 0
    if pending is not None:
        await pending
    if batch:
        await write(batch, size)
    return totals


async def corpus_namespace(store: Store, corpus: Corpus, order: int) -> Namespace:
    """The shared, read-only model of a bundled corpus, built on first use.

    An import cut short (a crash, a full disk) is run again on the next use: learning is
    idempotent by message id, so the batches already in are skipped, not counted twice.
    """
    ns = await store.namespace(CORPUS_PREFIX + corpus.name, order)
    if await store.is_complete(ns):
        return ns
    # Several processes sharing one database: one builds it, the others wait and find it
    # complete, instead of each reading the whole corpus again.
    async with store.exclusive(ns.name):
        if not await store.is_complete(ns):
            await import_lines(store, ns, read_lines(corpus.path), corpus.file)
            await store.mark_complete(ns)
    return ns
