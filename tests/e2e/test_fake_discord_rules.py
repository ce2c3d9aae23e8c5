"""The fake holds requests to Discord's published rules: its OpenAPI spec, the documented
command-registration limits, and the 15-minute interaction token.

Requests here are sent with plain aiohttp, so each case is exactly the payload under test.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from fake_discord import (
    APPLICATION_ID,
    BasicWorld,
    FakeDiscord,
    basic_world,
    fake_discord_fixture,
    running_bot,
)
from tests.e2e.test_fake_discord import make_bot

fake_discord = fake_discord_fixture()
COMMANDS = f"/applications/{APPLICATION_ID}/commands"
INT53 = 2**53 - 1  # Discord's largest integer option value


@pytest.fixture
def world(fake_discord: FakeDiscord) -> BasicWorld:
    return basic_world(fake_discord)


async def call(
    fake: FakeDiscord, method: str, path: str, *, json: Any = None, data: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bot {fake.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.api_url + path, json=json, data=data, headers=headers) as r,
    ):
        return r.status, await r.json(content_type=None) if r.content_length != 0 else None


def option(otype: int = 4, name: str = "seed", **extra: Any) -> dict[str, Any]:
    return {"type": otype, "name": name, "description": "an option", **extra}


def command(*options: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": 1, "name": "cmd", "description": "a command", "options": list(options), **extra}


def choices(n: int, name_len: int = 5, value_len: int = 5) -> list[dict[str, Any]]:
    return [{"name": f"{i:0{name_len}d}", "value": f"{i:0{value_len}d}"} for i in range(n)]


BAD_COMMANDS = [
    pytest.param(command(option(max_value=INT53 + 1)), "0.options.0.max_value", id="max>int53"),
    pytest.param(command(option(min_value=-INT53 - 1)), "0.options.0.min_value", id="min<-int53"),
    pytest.param(command(option(min_value=5, max_value=4)), "0.options.0.min_value", id="min>max"),
    pytest.param(command(option(3, max_length=6001)), "0.options.0.max_length", id="max_len"),
    pytest.param(command(option(3, min_length=6001)), "0.options.0.min_length", id="min_len"),
    pytest.param(
        command(option(3, min_length=5, max_length=2)), "0.options.0.min_length", id="len-order"
    ),
    pytest.param(
        command(option(3, choices=[{"name": "x" * 101, "value": "x"}])),
        "0.options.0.choices.0.name",
        id="choice-name",
    ),
    pytest.param(
        command(option(3, choices=[{"name": "x", "value": "x" * 101}])),
        "0.options.0.choices.0.value",
        id="choice-value",
    ),
    pytest.param(
        command(option(4, choices=[{"name": "x", "value": INT53 + 1}])),
        "0.options.0.choices.0.value",
        id="choice-int53",
    ),
    pytest.param(command(option(3, choices=choices(26))), "0.options.0.choices", id="26-choices"),
    pytest.param(
        command(*[option(3, name=f"o{i}") for i in range(26)]), "0.options", id="26-options"
    ),
    pytest.param(command(description="d" * 101), "0.description", id="description"),
    pytest.param(
        # Each option: 2 + 9 + 25 x (100 + 100) characters; two of them pass 8,000.
        command(*[option(3, name=f"o{i}", choices=choices(25, 100, 100)) for i in range(2)]),
        "0",
        id="8000-total",
    ),
]


def error_at(body: dict[str, Any], field: str) -> Any:
    node = body["errors"]
    for part in field.split("."):
        node = node[part]
    return node["_errors"]


@pytest.mark.parametrize(("bad", "field"), BAD_COMMANDS)
async def test_a_command_breaking_a_rule_refuses_the_whole_registration(
    fake_discord: FakeDiscord, world: BasicWorld, bad: dict[str, Any], field: str
) -> None:
    good = command(option(min_value=0, max_value=INT53), name="good")
    status, _ = await call(fake_discord, "PUT", COMMANDS, json=[good])
    assert status == 200
    status, body = await call(fake_discord, "PUT", COMMANDS, json=[good, {**bad, "name": "bad"}])
    assert status == 400
    assert body["code"] == 50035 and body["message"] == "Invalid Form Body"
    assert error_at(body, field.replace("0", "1", 1))
    [violation] = fake_discord.take_spec_violations()
    assert violation.startswith(f"PUT {COMMANDS}: 1")
    assert [c["name"] for c in fake_discord.commands()] == ["good"]  # nothing replaced


async def test_the_largest_documented_command_is_accepted(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    # 25 options of 25 choices, each short enough that the total stays under 8,000.
    big = command(*[option(3, name=f"o{i}", choices=choices(25, 6, 6)) for i in range(25)])
    status, _ = await call(fake_discord, "PUT", COMMANDS, json=[big])
    assert status == 200, fake_discord.spec_violations
    assert fake_discord.spec_violations == []


async def test_routes_queries_and_bodies_follow_the_spec(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    channel = f"/channels/{world.channel_id}/messages"
    status, _ = await call(fake_discord, "GET", "/channels/1/no-such-thing")
    assert status == 404
    status, body = await call(fake_discord, "GET", f"{channel}?limit=1000")
    assert (status, body["code"]) == (400, 50035) and "limit" in body["errors"]
    status, body = await call(fake_discord, "POST", channel, json={"content": 5})
    assert status == 400 and "content" in body["errors"]
    assert [v.split(":")[0] for v in fake_discord.take_spec_violations()] == [
        "GET /channels/1/no-such-thing",
        f"GET {channel}",
        f"POST {channel}",
    ]
    # Integer snowflakes are accepted as Discord accepts them, though the spec says strings.
    [first] = fake_discord.world.seed_history(world.channel_id, [(world.user_id, "hi")])
    reply = {
        "content": "a reply",
        "message_reference": {"message_id": int(first["id"])},
        "allowed_mentions": {"parse": []},
    }
    status, _ = await call(fake_discord, "POST", channel, json=reply)
    assert status == 200 and fake_discord.spec_violations == []


async def test_a_multipart_body_is_checked_through_its_payload_json(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    channel = f"/channels/{world.channel_id}/messages"
    for payload, expected in [
        ('{"content": "ok", "allowed_mentions": {"parse": []}}', 200),
        ('{"content": "ok", "tts": "loud"}', 400),
    ]:
        form = aiohttp.FormData()
        form.add_field("payload_json", payload, content_type="application/json")
        form.add_field("files[0]", b"data", filename="a.txt", content_type="text/plain")
        status, _ = await call(fake_discord, "POST", channel, data=form)
        assert status == expected
    [violation] = fake_discord.take_spec_violations()
    assert violation.startswith(f"POST {channel}: tts:")


async def test_an_interaction_token_expires_after_15_minutes(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    bot, _ = make_bot()
    async with running_bot(fake_discord, bot):
        rec = await fake_discord.invoke(world.guild_id, world.channel_id, world.user_id, "counter")
        await rec.wait_message()
        original = f"/webhooks/{APPLICATION_ID}/{rec.token}/messages/@original"
        edit = {"content": "count: 9", "allowed_mentions": {"parse": []}}
        status, _ = await call(fake_discord, "PATCH", original, json=edit)
        assert status == 200
        fake_discord.age_token(rec, 14 * 60)
        status, _ = await call(fake_discord, "PATCH", original, json=edit)
        assert status == 200  # 14 minutes old: still good
        fake_discord.age_token(rec, 61)
        for method, path, body in [
            ("PATCH", original, edit),
            ("POST", f"/webhooks/{APPLICATION_ID}/{rec.token}", {"content": "late"}),
            ("GET", original, None),
        ]:
            status, answer = await call(fake_discord, method, path, json=body)
            assert (status, answer) == (401, {"message": "Invalid Webhook Token", "code": 50027})
