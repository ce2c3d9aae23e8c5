"""Several processes share one database: a process's reconcile judges only its own servers.

A server on another process's shard is absent from this process's gateway connection but
not removed; marking it removed would delete a live server's data after the grace period.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bot.services.servers import Servers, owns_guild
from bot.store import Store

pytestmark = pytest.mark.asyncio

# Servers on shard 0, 1, 0, 1 of 2 (the shard is the id's timestamp part modulo 2).
GUILDS = [(10 << 22) | 5, (11 << 22) | 5, (12 << 22) | 5, (13 << 22) | 5]


async def test_reconcile_marks_only_owned_servers_removed(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "markov.db")
    try:
        async with Servers(store, order=2, grace_days=30, clock=lambda: 1000.0) as servers:
            for guild in GUILDS:
                await servers.guilds.set_consent_mode(guild, "opt-out")

            # The process of shard 1 of 2 sees servers 1 and 3, and server 3 removed it.
            def shard_one(guild: int) -> bool:
                return owns_guild(guild, 2, [1])

            await servers.reconcile({GUILDS[1]}, shard_one)
            assert await servers.guilds.removed_before(math.inf) == [GUILDS[3]]

            # Without a filter (one process, every shard) all absent servers are removed.
            await servers.reconcile({GUILDS[1]})
            removed = await servers.guilds.removed_before(math.inf)
            assert sorted(removed) == [GUILDS[0], GUILDS[2], GUILDS[3]]

            # Back in server 3 (the shard 1 process sees it again): no longer due.
            await servers.reconcile({GUILDS[1], GUILDS[3]}, shard_one)
            assert sorted(await servers.guilds.removed_before(math.inf)) == GUILDS[0::2]

            # Housekeeping past the grace period deletes only owned servers' data.
            servers.now = lambda: 1000.0 + 31 * 86_400
            await servers.housekeep({GUILDS[1], GUILDS[3]}, shard_one)
            assert sorted(await servers.guilds.removed_before(math.inf)) == GUILDS[0::2]
            await servers.housekeep(None, lambda g: owns_guild(g, 2, [0]))
            assert await servers.guilds.removed_before(math.inf) == []
    finally:
        await store.close()
