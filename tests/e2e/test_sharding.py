"""End-to-end: the bot as two processes, one shard each, over one shared database.

Each process is the real bot (``fake_discord/bot_process.py``) with ``SHARD_COUNT=2`` and
its own ``SHARD_IDS``; the fake Discord delivers each server only to the connection of its
shard ``(guild_id >> 22) % 2``, as Discord does. Four servers, two on each shard, learn and
answer; one process is SIGKILLed while the other keeps answering; restarted, it catches up
on what its servers said meanwhile. Throughout: no server's reply holds another server's
words, a deleted message leaves the model (read from the shared file through the store
API), and every message either process sent pings nobody.

It runs on both backends: one SQLite file (WAL: several processes, one writer at a time,
the others wait on the lock) and one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.services.servers import server_namespace_name, shard_of
from bot.store import Namespace, Store
from bot.store.guilds import Guilds
from fake_discord import FakeDiscord, InteractionRecord
from fake_discord.bot_process import BotProcess
from tests.e2e.support import AdminServer

pytestmark = pytest.mark.asyncio

_log = logging.getLogger(__name__)

TOKEN = "fake-bot-token.for-the-sharding-tests"
SHARDS = 2


async def eventually(check: Callable[[], Awaitable[Any]], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.05)
    return value


class Phases:
    """Logs how long each step took (run with ``-o log_cli=true`` to see them)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def done(self, what: str) -> None:
        now = time.monotonic()
        _log.info("%-48s %6.2f s", what, now - self.last)
        self.last = now


class Server(AdminServer):
    """One guild on a chosen shard, with #general, an admin and two members, and words of
    its own (``word3`` is said only in server 3), so a reply shows whose model it came from."""

    def __init__(self, fake: FakeDiscord, index: int, shard: int) -> None:
        members = [f"member{index}-{n}" for n in range(2)]
        super().__init__(fake, f"Server {index}", f"admin{index}", members, (shard, SHARDS))
        self.index, self.shard = index, shard
        self.talkers = list(self.members.values())
        self.said = 0

    def words(self) -> set[str]:
        return {f"{w}{self.index}" for w in ("red", "green", "blue", "cold", "warm", "wet")}

    async def chat(self, n: int) -> list[int]:
        """``n`` messages from the members, made of this server's words only."""
        words = sorted(self.words())
        ids = []
        for _ in range(n):
            i = self.said
            self.said += 1
            text = " ".join(words[(i + k) % len(words)] for k in range(4))
            message = await self.fake.send_message(self.channel, self.talkers[i % 2], text)
            ids.append(int(message["id"]))
        return ids

    async def markov(self) -> InteractionRecord:
        return await self.fake.invoke(self.guild, self.channel, self.talkers[0], "markov")


async def answer_words(rec: InteractionRecord) -> set[str]:
    await rec.wait_message(timeout=5)
    assert rec.response_time is not None and rec.response_time < 3
    [embed] = rec.embeds
    return set(str(embed["description"]).split())


async def assert_answers_alone(server: Server, servers: list[Server]) -> None:
    """/markov is answered in ``server``, from its own words and nobody else's."""
    words = await answer_words(await server.markov())
    assert words and words <= server.words(), (server.index, words)
    for other in servers:
        if other is not server:
            assert not words & other.words()


class Cluster:
    """The fake Discord, the shared database, and one bot process per shard."""

    def __init__(self, fake: FakeDiscord, tmp_path: Path, address: str) -> None:
        self.fake = fake
        self.db = address
        self.procs = [
            BotProcess(
                fake,
                self.db,
                tmp_path,
                name=f"shard{shard}",
                args=["--shard-count", str(SHARDS), "--shard-ids", str(shard)],
            )
            for shard in range(SHARDS)
        ]
        self.store: Store | None = None

    async def namespace(self, guild: int) -> Namespace | None:
        """The server's model if some process created it (never created from here)."""
        assert self.store is not None
        name = server_namespace_name(guild)
        return next((ns for ns in await self.store.namespaces() if ns.name == name), None)

    async def known(self, guild: int, ids: list[int]) -> set[int]:
        ns = await self.namespace(guild)
        assert self.store is not None
        return set() if ns is None else await self.store.known_messages(ns, ids)

    async def wait_learned(self, server: Server, ids: list[int], seconds: float = 15) -> None:
        async def learned() -> bool:
            return await self.known(server.guild, ids) == set(ids)

        await eventually(learned, seconds, f"server {server.index} to learn {len(ids)} messages")

    async def assert_consistent(self, servers: list[Server]) -> None:
        assert self.store is not None
        for server in servers:
            ns = await self.namespace(server.guild)
            assert ns is not None
            assert await self.store.check(ns) == [], server.index


@pytest_asyncio.fixture
async def cluster(tmp_path: Path, store_address: str) -> AsyncIterator[Cluster]:
    async with FakeDiscord(token=TOKEN) as fake:
        group = Cluster(fake, tmp_path, store_address)
        try:
            yield group
        finally:
            for proc in group.procs:
                await proc.ensure_dead()
            if group.store is not None:
                await group.store.close()


async def start_all(cluster: Cluster) -> None:
    """One process after the other (the first creates the database), both connected."""
    for proc in cluster.procs:
        await proc.start()
    assert cluster.fake.gateway.connected_shards == {(s, SHARDS) for s in range(SHARDS)}
    cluster.store = await Store.open(cluster.db)


async def test_two_processes_share_the_servers_by_shard(cluster: Cluster) -> None:
    fake = cluster.fake
    servers = [Server(fake, i, shard=i % SHARDS) for i in range(4)]
    assert [shard_of(s.guild, SHARDS) for s in servers] == [0, 1, 0, 1]
    phases = Phases()
    await start_all(cluster)
    phases.done("both processes started and ready")
    first, second = cluster.procs
    for proc, shard in ((first, 0), (second, 1)):
        assert f"shard {shard} of {SHARDS} ready: 2 servers" in proc.log()

    # Learning and answering in all four, each by the process owning its shard.
    for server in servers:
        await server.learn_everyone()
    learned = {s.index: await s.chat(12) for s in servers}
    for server in servers:
        await cluster.wait_learned(server, learned[server.index])
    phases.done("4 servers listened to, 48 messages learned")
    for server in servers:
        await assert_answers_alone(server, servers)
    phases.done("/markov answered in all 4")

    # The second process dies without a word; the first keeps answering and learning.
    await second.kill()
    assert fake.gateway.connected_shards == {(0, SHARDS)}
    phases.done("shard 1's process SIGKILLed")
    for server in servers[0::2]:
        await assert_answers_alone(server, servers)
        more = await server.chat(3)
        await cluster.wait_learned(server, more)
        learned[server.index] += more
    phases.done("shard 0 answered and learned alone")
    # A command in a server of the dead shard reaches no one (Discord shows it failed).
    orphan = await servers[1].markov()
    assert orphan.delivered == 0
    # Meanwhile the dead shard's servers go on talking, and one message is deleted live.
    missed = {s.index: await s.chat(5) for s in servers[1::2]}
    gone = learned[0].pop(0)
    await fake.delete_message(gone)
    await eventually(
        lambda: _absent(cluster, servers[0].guild, gone), 10, "the deleted message to leave"
    )

    phases.done("live deletion while shard 1 is down")

    # Restarted, it catches up on what its servers said while it was away.
    await second.start()
    phases.done("shard 1's process restarted and ready")
    assert fake.gateway.connected_shards == {(s, SHARDS) for s in range(SHARDS)}
    for server in servers[1::2]:
        await cluster.wait_learned(server, learned[server.index] + missed[server.index])
        learned[server.index] += missed[server.index]
        assert f"in guild {server.guild}: 5 messages posted while away" in second.log()
    phases.done("caught up on 10 messages")
    for server in servers:
        await assert_answers_alone(server, servers)

    # Exact deletion in a server of the restarted shard, too.
    gone = learned[3].pop(0)
    await fake.delete_message(gone)
    await eventually(
        lambda: _absent(cluster, servers[3].guild, gone), 10, "the deleted message to leave"
    )
    for server in servers:
        assert await cluster.known(server.guild, learned[server.index]) == set(
            learned[server.index]
        )
    await cluster.assert_consistent(servers)
    phases.done("answers, deletion and Store.check after restart")
    # Each process's housekeeping ran on start; neither took the other's servers, absent
    # from its own gateway connection, for servers that removed the bot.
    assert cluster.store is not None
    assert await Guilds(cluster.store).removed_before(math.inf) == []

    for proc in cluster.procs:
        await proc.stop()
    phases.done("both processes stopped (SIGTERM)")
    fake.assert_no_mentions_allowed()
    senders = {o.path for o in fake.outgoing}
    assert len(fake.outgoing) >= 4 * 3 + 2, senders  # both processes answered
    for proc in cluster.procs:
        proc.assert_clean_logs()


async def _absent(cluster: Cluster, guild: int, message: int) -> bool:
    return not await cluster.known(guild, [message])


async def test_commands_are_synced_once_across_processes(cluster: Cluster) -> None:
    fake = cluster.fake
    for i in range(2):
        Server(fake, i, shard=i)
    await start_all(cluster)
    first, second = cluster.procs
    puts = [r for r in fake.requests if r.method == "PUT" and r.path.endswith("/commands")]
    assert len(puts) == 1 and len(fake.command_syncs) == 1
    assert "slash commands are registered by the process running shard 0" in second.log()
    assert "synced" in first.log() and "synced" not in second.log()

    # Restarting either process registers nothing again (the set is unchanged).
    for proc in cluster.procs:
        await proc.stop()
        await proc.start()
    assert len(fake.command_syncs) == 1
    for proc in cluster.procs:
        await proc.stop()
        proc.assert_clean_logs()
