"""The fake Discord shards as Discord does: ``GET /gateway/bot``, IDENTIFY's ``shard``
(refused with 4010 or 4011), and each server delivered only on its shard.

Checked with discord.py's own ``AutoShardedBot`` (two of them, one shard each, as two
processes would run) and with a raw websocket for the refusals.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands

from fake_discord import FakeDiscord, fake_discord_fixture, running_bot, spec_check
from fake_discord.gateway import shard_of

pytestmark = pytest.mark.asyncio

fake_discord = fake_discord_fixture()


def sharded_bot(shard: int, seen: list[tuple[int, int | None]]) -> commands.AutoShardedBot:
    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = intents.message_content = True
    bot = commands.AutoShardedBot(
        command_prefix="!", intents=intents, shard_count=2, shard_ids=[shard]
    )

    @bot.event
    async def on_message(message: discord.Message) -> None:
        assert message.guild is not None
        seen.append((message.guild.id, message.guild.shard_id))

    @bot.tree.command(name="which", description="Which shard answers")
    async def which(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"shard {shard}")

    return bot


async def get_gateway_bot(fake: FakeDiscord) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{fake.api_url}/gateway/bot", headers={"Authorization": f"Bot {fake.token}"}
        ) as resp,
    ):
        assert resp.status == 200
        body = dict(await resp.json())
    assert spec_check.check_response("/gateway/bot", "GET", body) is None
    return body


async def test_each_server_reaches_only_its_shard(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guilds = [int(fake.add_guild(f"g{i}", shard=(i % 2, 2))["id"]) for i in range(4)]
    channels = [int(fake.add_text_channel(g, "general")["id"]) for g in guilds]
    user = int(fake.add_user("alice")["id"])
    for g in guilds:
        fake.add_member(g, user)
    assert [shard_of(g, 2) for g in guilds] == [0, 1, 0, 1]

    seen: list[list[tuple[int, int | None]]] = [[], []]
    bots = [sharded_bot(s, seen[s]) for s in (0, 1)]
    async with running_bot(fake, bots[0]):
        async with running_bot(fake, bots[1]):
            assert [p["shard"] for p in fake.identify_payloads] == [[0, 2], [1, 2]]
            assert fake.gateway.connected_shards == {(0, 2), (1, 2)}
            for shard, bot in enumerate(bots):
                assert sorted(g.id for g in bot.guilds) == guilds[shard::2]
            for g, c in zip(guilds, channels, strict=True):
                await fake.send_message(c, user, f"hello {g}")
            await fake.wait_for(lambda: len(seen[0]) + len(seen[1]) == 4, 5, "four messages")
            assert seen[0] == [(guilds[0], 0), (guilds[2], 0)]
            assert seen[1] == [(guilds[1], 1), (guilds[3], 1)]
            await bots[0].tree.sync()
            for g, c in zip(guilds, channels, strict=True):
                rec = await fake.invoke(g, c, user, "which")
                assert rec.delivered == 1
                assert (await rec.wait_message())["content"] == f"shard {shard_of(g, 2)}"
        # With no connection holding shard 1 any more, its servers' commands go nowhere.
        assert fake.gateway.connected_shards == {(0, 2)}
        rec = await fake.invoke(guilds[1], channels[1], user, "which")
        assert rec.delivered == 0
        rec = await fake.invoke(guilds[2], channels[2], user, "which")
        assert rec.delivered == 1 and (await rec.wait_message())["content"] == "shard 0"


async def test_gateway_bot_recommends_shards_and_counts_session_starts(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    first = await get_gateway_bot(fake)
    assert first["url"] == fake.gateway_url and first["shards"] == 1
    limit = first["session_start_limit"]
    assert set(limit) == {"total", "remaining", "reset_after", "max_concurrency"}
    assert limit["remaining"] == limit["total"]

    fake.recommended_shards = 4
    async with running_bot(fake, sharded_bot(0, [])) as bot:
        assert bot.shard_count == 2  # an explicit count wins over the recommendation
    again = await get_gateway_bot(fake)
    assert again["shards"] == 4
    assert again["session_start_limit"]["remaining"] == limit["total"] - 1


async def identify_raw(fake: FakeDiscord, shard: Any) -> int | None:
    """IDENTIFY with ``shard`` on a bare websocket; the code the fake closed it with."""
    async with aiohttp.ClientSession() as http, http.ws_connect(fake.gateway_url) as ws:
        hello = json.loads((await ws.receive()).data)
        assert hello["op"] == 10
        identify = {"token": fake.token, "intents": 1, "properties": {}, "shard": shard}
        await ws.send_str(json.dumps({"op": 2, "d": identify}))
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return ws.close_code
            if json.loads(msg.data).get("t") == "READY":
                return None


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], [0, 0], [0], "0,1", [True, 2]])
async def test_an_invalid_shard_is_refused_with_4010(fake_discord: FakeDiscord, shard: Any) -> None:
    assert await identify_raw(fake_discord, shard) == 4010


async def test_too_many_servers_on_one_shard_is_refused_with_4011(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    for i in range(3):
        fake.add_guild(f"g{i}", shard=(0, 2))
    fake.add_guild("other", shard=(1, 2))
    fake.max_guilds_per_shard = 2
    assert await identify_raw(fake, [0, 1]) == 4011
    assert await identify_raw(fake, [0, 2]) == 4011
    assert await identify_raw(fake, [1, 2]) is None
    fake.max_guilds_per_shard = 3
    assert await identify_raw(fake, [0, 2]) is None
