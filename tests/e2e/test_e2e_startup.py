"""End-to-end: start-up — intents, command registration and sync, and start-up failures."""

from __future__ import annotations

import asyncio

import discord
import pytest

from bot.app import run_bot
from bot.services.settings import Settings, load_settings
from fake_discord import (
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILD_PRESENCES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    PERM_MANAGE_GUILD,
    FakeDiscord,
    FakeDiscordError,
)
from tests.conftest import TOKEN
from tests.e2e.support import E2E

# Option types in Discord's command payloads.
SUB_COMMAND, STRING, INTEGER, BOOLEAN, USER, CHANNEL, NUMBER = 1, 3, 4, 5, 6, 7, 10

EXPECTED_COMMANDS = {
    "markov",
    "markov-compare",
    "markov-stats",
    "markov-explain",
    "markov-admin",
    "markov-privacy",
}


def options_of(command: dict) -> dict[str, dict]:
    return {o["name"]: o for o in command.get("options") or []}


async def test_intents_are_exactly_what_the_bot_needs(e2e: E2E, fake: FakeDiscord) -> None:
    async with e2e.start() as bot:
        assert fake.intents == INTENT_GUILDS | INTENT_GUILD_MESSAGES | INTENT_MESSAGE_CONTENT
        assert not fake.intents & INTENT_GUILD_PRESENCES
        assert not fake.intents & INTENT_GUILD_MEMBERS
        assert bot.intents.value == fake.intents
        assert bot.get_guild(e2e.world.guild_id) is not None
        assert fake.unknown_requests == []


async def test_commands_are_registered_with_their_options(e2e: E2E, fake: FakeDiscord) -> None:
    async with e2e.start() as bot:
        registered = {c["name"] for c in fake.commands()}
        assert registered >= EXPECTED_COMMANDS
        assert registered == {c.name for c in bot.tree.get_commands()}
        assert fake.commands(e2e.world.guild_id) == []  # global, no dev guild configured

        markov = options_of(fake.command("markov"))
        temp = markov["temp"]
        assert (temp["type"], temp["min_value"], temp["max_value"]) == (NUMBER, 0, 5)
        assert not temp.get("required", False)
        length = markov["length"]
        assert (length["type"], length["min_value"], length["max_value"]) == (INTEGER, 1, 100)
        assert markov["start"]["type"] == STRING and markov["start"]["autocomplete"] is True
        assert markov["start"]["max_length"] == 200
        assert markov["seed"]["type"] == INTEGER and markov["seed"]["min_value"] == 0
        assert markov["user"]["type"] == USER
        assert markov["channel"]["type"] == CHANNEL
        assert markov["show_work"]["type"] == BOOLEAN
        assert markov["top_k"]["type"] == INTEGER
        assert markov["top_p"]["type"] == NUMBER
        assert markov["corpus"]["type"] == STRING and markov["corpus"]["autocomplete"] is True

        explain = options_of(fake.command("markov-explain"))
        assert explain["word"]["autocomplete"] is True
        assert (explain["temp"]["min_value"], explain["temp"]["max_value"]) == (0, 5)
        compare = options_of(fake.command("markov-compare"))
        assert compare["temps"]["type"] == STRING and compare["start"]["autocomplete"] is True

        admin = fake.command("markov-admin")
        assert int(admin["default_member_permissions"]) == PERM_MANAGE_GUILD
        subcommands = options_of(admin)
        assert {"listen", "ignore", "status", "consent", "backfill", "purge"} <= set(subcommands)
        assert all(o["type"] == SUB_COMMAND for o in subcommands.values())
        consent_mode = options_of(subcommands["consent"])["mode"]
        assert {c["value"] for c in consent_mode["choices"]} == {"opt-in", "opt-out"}
        backfill = options_of(subcommands["backfill"])
        assert backfill["limit"]["min_value"] == 1

        privacy = options_of(fake.command("markov-privacy"))
        assert {"optin", "optout", "forget", "status"} <= set(privacy)
        assert fake.command("markov-privacy").get("default_member_permissions") is None

        # Discord itself rejects out-of-range values, so the bot never sees them.
        with pytest.raises(FakeDiscordError, match="<= 5"):
            await fake.invoke(
                e2e.world.guild_id, e2e.world.channel_id, e2e.world.user_id, "markov", {"temp": 6}
            )


async def test_sync_only_when_commands_changed_or_forced(e2e: E2E, fake: FakeDiscord) -> None:
    async with e2e.start():
        assert len(fake.command_syncs) == 1
        sync = fake.command_syncs[0]
        assert sync.guild_id is None and sync.bulk
        assert {c["name"] for c in sync.payload} >= EXPECTED_COMMANDS

    # Same database: the stored hash matches, so no registration request at all.
    async with e2e.start():
        assert len(fake.command_syncs) == 1
        assert fake.requests_matching("PUT", r"/applications/\d+/commands") == [
            fake.requests_matching("PUT", r"/applications/\d+/commands")[0]
        ]
        # ... and the commands Discord kept still work.
        rec = await e2e.invoke(e2e.world.user_id, "markov-stats")
        assert rec.embeds[0]["title"] == "What I have learned here"

    async with e2e.start(force_sync=True):
        assert len(fake.command_syncs) == 2


async def test_dev_guild_gets_the_commands_instantly(
    e2e: E2E, fake: FakeDiscord, db_path: object
) -> None:
    guild = e2e.world.guild_id
    settings = load_settings(
        {"MARKOV_DB": str(db_path), "DISCORD_TOKEN": TOKEN, "DEV_GUILD_ID": str(guild)},
        dotenv_path=None,
    )
    async with e2e.start(settings=settings):
        [sync] = fake.command_syncs
        assert sync.guild_id == guild
        assert {c["name"] for c in fake.commands(guild)} >= EXPECTED_COMMANDS
        rec = await e2e.invoke(e2e.world.user_id, "markov-privacy status")
        assert "Consent mode here: **opt-in**" in rec.content


async def test_login_failure_and_missing_intent_surface_from_start(
    e2e: E2E, fake: FakeDiscord
) -> None:
    with pytest.raises(discord.LoginFailure):
        async with e2e.start(token="not-" + TOKEN):
            pass
    fake.privileged_intents_enabled = False
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with e2e.start():
            pass
    assert fake.gateway.connections[-1].server_close_code == 4014


# ---------------------------------------------------------------------- run_bot


def test_run_bot_without_token_prints_one_line(
    capsys: pytest.CaptureFixture[str], db_path: object
) -> None:
    settings = load_settings({"MARKOV_DB": str(db_path)}, dotenv_path=None)
    assert settings.token is None
    assert run_bot(settings) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("markov-bot: DISCORD_TOKEN is not set")


async def _run_bot_in_thread(settings: Settings, **kwargs: object) -> int:
    """run_bot owns its event loop (asyncio.run); the fake keeps serving on the test's loop."""
    return await asyncio.wait_for(asyncio.to_thread(run_bot, settings, **kwargs), 30)


@pytest.mark.usefixtures("restore_logging")
async def test_run_bot_rejected_token(
    capsys: pytest.CaptureFixture[str], fake: FakeDiscord, settings: Settings
) -> None:
    fake.token = "a-different-token-than-the-bot-has"
    assert await _run_bot_in_thread(settings) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("markov-bot")]
    assert lines == [
        "markov-bot: Discord rejected DISCORD_TOKEN (reset it in the Developer Portal → Bot)."
    ]
    assert fake.requests_matching("GET", "/users/@me")[-1].status == 401


@pytest.mark.usefixtures("restore_logging", "world")
async def test_run_bot_message_content_intent_off(
    capsys: pytest.CaptureFixture[str], fake: FakeDiscord, settings: Settings
) -> None:
    fake.privileged_intents_enabled = False
    assert await _run_bot_in_thread(settings) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("markov-bot")]
    assert len(lines) == 1
    assert lines[0].startswith("markov-bot: The Message Content intent is off")
    assert fake.gateway.connections[-1].server_close_code == 4014


@pytest.mark.usefixtures("restore_logging", "world")
async def test_run_bot_sync_only_registers_and_exits(fake: FakeDiscord, settings: Settings) -> None:
    assert await _run_bot_in_thread(settings, sync_only=True) == 0
    assert len(fake.command_syncs) == 1
    assert {c["name"] for c in fake.commands()} >= EXPECTED_COMMANDS
    assert fake.gateway.connections == []  # synced over REST only, never connected
    # A forced sync again, even though nothing changed: that is what `sync` is for.
    assert await _run_bot_in_thread(settings, sync_only=True) == 0
    assert len(fake.command_syncs) == 2
