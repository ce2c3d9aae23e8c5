"""Copying a whole store to another (``markov-bot migrate``): a SQLite file to PostgreSQL
when a bot outgrows one machine, or back.

Through the store interface only, so either direction is the same code: each namespace's
words are numbered first in their source order (ties between equally frequent candidates
stay in the same order, so a seed gives the same text after the move), then its messages
are learned in pages, with their provenance; settings, consent and backfill positions
follow in one transaction. Every copied namespace must then pass ``Store.check`` and hold
as many messages as its source.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.store.base import Incoming, Store
from bot.store.errors import StoreError
from bot.store.guilds import copy_settings

__all__ = ["copy_store"]

log = logging.getLogger(__name__)


async def copy_store(
    source: Store, dest: Store, report: Callable[[str], object] = log.info
) -> dict[str, int]:
    """Copy everything in ``source`` to ``dest``; returns messages copied per namespace.

    Refuses (StoreError) a destination that already holds one of the source's namespaces
    with anything in it: merging two bots' models is not a copy."""
    spaces = await source.namespaces()
    for ns in spaces:
        there = {n.name: n for n in await dest.namespaces()}.get(ns.name)
        if there is not None and not await dest.is_empty(there):
            raise StoreError(
                f"{dest.where} already holds messages in {ns.name!r}: migrate into an empty "
                "database (or one without these namespaces)."
            )
    copied: dict[str, int] = {}
    for ns in spaces:
        target = await dest.namespace(ns.name, ns.order)
        if target.order != ns.order:
            raise StoreError(
                f"{ns.name!r} has order {target.order} in {dest.where}, not {ns.order}"
            )
        await dest.reserve_words(target, await source.words(ns))
        n = 0
        async for page in source.messages(ns):
            batch = [
                Incoming(m.id, m.words, m.author, m.channel, m.created, m.thread) for m in page
            ]
            n += (await dest.learn(target, batch)).learned
        if await source.is_complete(ns):
            await dest.mark_complete(target)
        problems = await dest.check(target)
        expected = (await source.stats(ns)).messages
        if problems or n != expected:
            raise StoreError(
                f"the copy of {ns.name!r} in {dest.where} is not consistent "
                f"({n} of {expected} messages): {'; '.join(problems[:3])}"
            )
        copied[ns.name] = n
        report(f"{ns.name}: {n:,} messages")
    rows = await copy_settings(source, dest)
    report(f"server settings: {rows:,} rows")
    return copied
