"""Smoke tests proving the fake Discord works with a real, plain ``discord.ext.commands.Bot``.

The bot here is deliberately tiny and defined in this file: these tests check
the fake (login, gateway, interactions, REST, rate limits), not the project's
bot, so that a failure points at the test infrastructure.
"""

from __future__ import annotations

import asyncio
import io
import logging

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from fake_discord import (
    BOT_USER_ID,
    INTENT_MESSAGE_CONTENT,
    PERM_SEND_MESSAGES,
    BasicWorld,
    CommandNotRegistered,
    FakeDiscord,
    FakeDiscordError,
    basic_world,
    fake_discord_fixture,
    fake_file,
    running_bot,
    snowflake_time,
)

pytestmark = pytest.mark.asyncio

fake_discord = fake_discord_fixture()

_log = logging.getLogger(__name__)


@pytest.fixture
def world(fake_discord: FakeDiscord) -> BasicWorld:
    """One guild with #general, a thread, an admin and alice."""
    return basic_world(fake_discord)


class Observed:
    """What the test bot saw, so tests can assert on bot-side effects."""

    def __init__(self) -> None:
        self.messages: list[discord.Message] = []
        self.raw_deletes: list[discord.RawMessageDeleteEvent] = []
        self.raw_bulk_deletes: list[discord.RawBulkMessageDeleteEvent] = []
        self.raw_edits: list[discord.RawMessageUpdateEvent] = []
        self.resumed = 0
        self.guilds_at_ready: list[int] = []


class CounterView(discord.ui.View):
    """A button that counts clicks by editing its own message."""

    def __init__(self) -> None:
        super().__init__(timeout=60)
        self.count = 0

    @discord.ui.button(label="+1", custom_id="counter:inc", style=discord.ButtonStyle.primary)
    async def increment(
        self, interaction: discord.Interaction, button: discord.ui.Button[CounterView]
    ) -> None:
        self.count += 1
        await interaction.response.edit_message(content=f"count: {self.count}", view=self)


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    """A one-field modal that echoes what was typed."""

    text: discord.ui.TextInput[FeedbackModal] = discord.ui.TextInput(
        label="Your feedback", custom_id="feedback:text"
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"thanks: {self.text.value}", ephemeral=True)


class PickView(discord.ui.View):
    """A string select that reports the choice by editing its message."""

    @discord.ui.select(
        custom_id="pick:letter",
        options=[discord.SelectOption(label=x, value=x) for x in "abc"],
    )
    async def letter(
        self, interaction: discord.Interaction, select: discord.ui.Select[PickView]
    ) -> None:
        await interaction.response.edit_message(content=f"picked {select.values[0]}", view=None)


def make_bot(*, message_content: bool = True) -> tuple[commands.Bot, Observed]:
    """A minimal bot: slash commands (float + autocompleted string), a button view and listeners."""
    intents = discord.Intents.default()
    intents.message_content = message_content
    bot = commands.Bot(
        command_prefix="!",
        intents=intents,
        help_command=None,
        allowed_mentions=discord.AllowedMentions.none(),
    )
    seen = Observed()

    @bot.tree.command(name="echo", description="Echo a number and a word")
    async def echo(interaction: discord.Interaction, order: float, seed: str) -> None:
        await interaction.response.send_message(f"order={order!r} seed={seed}")

    @echo.autocomplete("seed")
    async def seed_autocomplete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        words = ["alpha", "alpine", "beta"]
        return [app_commands.Choice(name=w, value=w) for w in words if w.startswith(current)]

    @bot.tree.command(name="slow", description="Defer, follow up, then edit the original")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("working...")
        await asyncio.sleep(0.05)
        await interaction.edit_original_response(content="done")

    @bot.tree.command(name="counter", description="A click counter")
    async def counter(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("count: 0", view=CounterView())

    @bot.tree.command(name="upload", description="Send a file")
    async def upload(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(
            "here", file=discord.File(io.BytesIO(b"hello file"), "hello.txt")
        )

    @bot.tree.command(name="readfile", description="Read an attached file")
    async def readfile(interaction: discord.Interaction, file: discord.Attachment) -> None:
        data = await file.read()
        await interaction.response.send_message(
            f"{file.filename}: {len(data)} bytes: {data.decode()}", ephemeral=True
        )

    @bot.tree.command(name="feedback", description="Open a feedback form")
    async def feedback(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(FeedbackModal())

    @bot.tree.command(name="pick", description="Pick a letter")
    async def pick(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pick one", view=PickView())

    @bot.tree.command(name="sleepy", description="Answers too late")
    async def sleepy(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.3)
        await interaction.response.send_message("yawn")

    admin = app_commands.Group(name="markov-admin", description="Admin commands")

    @admin.command(name="listen", description="Listen to a channel")
    async def listen(interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        await interaction.response.send_message(
            f"listening to {channel.mention} ({channel.name})", ephemeral=True
        )

    bot.tree.add_command(admin)

    async def setup_hook() -> None:
        await bot.tree.sync()

    bot.setup_hook = setup_hook  # type: ignore[method-assign]

    @bot.event
    async def on_ready() -> None:
        seen.guilds_at_ready = [g.id for g in bot.guilds]

    @bot.event
    async def on_message(message: discord.Message) -> None:
        if message.author.id == BOT_USER_ID:
            return
        seen.messages.append(message)
        if message.content == "!ping":
            await message.channel.send("pong")

    @bot.event
    async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
        seen.raw_deletes.append(payload)

    @bot.event
    async def on_raw_bulk_message_delete(payload: discord.RawBulkMessageDeleteEvent) -> None:
        seen.raw_bulk_deletes.append(payload)

    @bot.event
    async def on_raw_message_edit(payload: discord.RawMessageUpdateEvent) -> None:
        seen.raw_edits.append(payload)

    @bot.event
    async def on_resumed() -> None:
        seen.resumed += 1

    return bot, seen


async def test_login_ready_guild_create_and_intents(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    bot, seen = make_bot()
    async with running_bot(fake_discord, bot):
        assert bot.user is not None and bot.user.id == BOT_USER_ID
        assert seen.guilds_at_ready == [world.guild_id]
        guild = bot.get_guild(world.guild_id)
        assert guild is not None and guild.name == "Test Guild"
        channel = guild.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel) and channel.name == "general"
        assert guild.get_thread(world.thread_id) is not None
        assert guild.me.guild_permissions.send_messages
        assert fake_discord.intents is not None and fake_discord.intents & INTENT_MESSAGE_CONTENT
        assert fake_discord.intents == bot.intents.value
        assert [r.path for r in fake_discord.requests[:2]] == [
            "/users/@me",
            "/oauth2/applications/@me",
        ]
        assert snowflake_time(world.guild_id).year >= 2024
        assert fake_discord.unknown_requests == []


async def test_command_sync_recorded(fake_discord: FakeDiscord, world: BasicWorld) -> None:
    bot, _ = make_bot()
    async with running_bot(fake_discord, bot):
        assert len(fake_discord.command_syncs) == 1
        sync = fake_discord.command_syncs[0]
        assert sync.guild_id is None and sync.bulk
        assert {c["name"] for c in sync.payload} == {
            "echo",
            "slow",
            "counter",
            "upload",
            "readfile",
            "feedback",
            "pick",
            "sleepy",
            "markov-admin",
        }
        puts = fake_discord.requests_matching(
            "PUT", rf"/applications/{fake_discord.application_id}/commands"
        )
        assert len(puts) == 1 and puts[0].status == 200
        echo = fake_discord.command("echo")
        assert [(o["name"], o["type"]) for o in echo["options"]] == [("order", 10), ("seed", 3)]
        with pytest.raises(CommandNotRegistered, match="nope"):
            await fake_discord.invoke(world.guild_id, world.channel_id, world.user_id, "nope")


async def test_slash_command_answered_within_three_seconds(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    bot, _ = make_bot()
    async with running_bot(fake_discord, bot):
        rec = await fake_discord.invoke(
            world.guild_id, world.channel_id, world.user_id, "echo", {"order": 2, "seed": "hi"}
        )
        callback = await rec.wait_response()
        assert callback.type == 4
        assert rec.content == "order=2.0 seed=hi"
        assert rec.response_time is not None and rec.response_time < 3.0
        assert not rec.ephemeral
        # The option was sent typed as NUMBER, as Discord would.
        assert rec.payload["data"]["options"][0] == {"type": 10, "name": "order", "value": 2.0}
        # The response is a real channel message with a snowflake, visible in history.
        assert fake_discord.bot_messages(world.channel_id)[-1]["id"] == str(rec.original_message_id)

        nested = await fake_discord.invoke(
            world.guild_id,
            world.channel_id,
            world.admin_id,
            "markov-admin listen",
            {"channel": world.channel_id},
        )
        await nested.wait_response()
        assert nested.ephemeral
        assert nested.content == f"listening to <#{world.channel_id}> (general)"
        assert nested.payload["data"]["options"][0]["type"] == 1

        with pytest.raises(FakeDiscordError, match="no option"):
            await fake_discord.invoke(
                world.guild_id, world.channel_id, world.user_id, "echo", {"bogus": 1}
            )
        fake_discord.assert_no_mentions_allowed()


async def test_defer_followup_and_edit_original(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    bot, _ = make_bot()
    async with running_bot(fake_discord, bot):
        rec = await fake_discord.invoke(world.guild_id, world.channel_id, world.user_id, "slow")
        callback = await rec.wait_response()
        assert callback.type == 5
        followup = await rec.wait_followup(1)
        assert followup["content"] in ("working...", "done")
        edit = await rec.wait_edit(1)
        assert edit.data["content"] == "done"
        # The first follow-up after a thinking defer replaces the placeholder, as on Discord.
        assert followup["id"] == str(rec.original_message_id)
        assert rec.original is not None and rec.original["content"] == "done"
        assert not rec.thinking
        assert rec.content == "done"
        fake_discord.assert_no_mentions_allowed()


async def test_autocomplete_choices(fake_discord: FakeDiscord, world: BasicWorld) -> None:
    bot, _ = make_bot()
    async with running_bot(fake_discord, bot):
        choices = await fake_discord.autocomplete(
            world.guild_id,
            world.channel_id,
            world.user_id,
            "echo",
            focused="seed",
            value="al",
            options={"order": 1.5},
        )
        assert choices == [
            {"name": "alpha", "value": "alpha"},
            {"name": "alpine", "value": "alpine"},
        ]
        with pytest.raises(FakeDiscordError, match="autocomplete"):
            await fake_discord.autocomplete(
                world.guild_id, world.channel_id, world.user_id, "echo", "order", "1"
            )


async def test_button_click_edits_message_in_place(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    bot, _ = make_bot()
    async with running_bot(fake_discord, bot):
        rec = await fake_discord.invoke(world.guild_id, world.channel_id, world.user_id, "counter")
        await rec.wait_response()
        assert rec.custom_ids() == ["counter:inc"]
        message_id = rec.original_message_id
        assert message_id is not None

        for expected in (1, 2):
            click = await fake_discord.click(message_id, "counter:inc", world.user_id)
            callback = await click.wait_response()
            assert callback.type == 7
            assert click.original_message_id == message_id
            assert fake_discord.message(message_id)["content"] == f"count: {expected}"
        assert len(fake_discord.bot_messages(world.channel_id)) == 1
        with pytest.raises(FakeDiscordError, match="no component"):
            await fake_discord.click(message_id, "missing", world.user_id)
        fake_discord.assert_no_mentions_allowed()


async def test_gateway_message_events(fake_discord: FakeDiscord, world: BasicWorld) -> None:
    bot, seen = make_bot()
    async with running_bot(fake_discord, bot):
        first = await fake_discord.send_message(world.channel_id, world.user_id, "hello there")
        second = await fake_discord.send_message(world.channel_id, world.user_id, "second")
        third = await fake_discord.send_message(world.thread_id, world.user_id, "in a thread")
        await fake_discord.wait_for(lambda: len(seen.messages) == 3, what="three on_message calls")
        assert [m.content for m in seen.messages] == ["hello there", "second", "in a thread"]
        assert isinstance(seen.messages[2].channel, discord.Thread)
        assert isinstance(seen.messages[0].author, discord.Member)

        await fake_discord.edit_message(first["id"], "hello again")
        await fake_discord.delete_message(second["id"])
        await fake_discord.bulk_delete(world.channel_id, [first["id"], third["id"]])
        await fake_discord.wait_for(
            lambda: seen.raw_edits and seen.raw_deletes and seen.raw_bulk_deletes,
            what="raw edit/delete events",
        )
        assert seen.raw_edits[0].message_id == int(first["id"])
        assert seen.raw_edits[0].data["content"] == "hello again"
        assert seen.raw_deletes[0].message_id == int(second["id"])
        assert seen.raw_bulk_deletes[0].message_ids == {int(first["id"]), int(third["id"])}

        trigger = await fake_discord.send_message(world.channel_id, world.user_id, "!ping")
        reply = await fake_discord.wait_for_bot_message(world.channel_id, after=trigger["id"])
        assert reply["content"] == "pong"
        fake_discord.assert_no_mentions_allowed()


async def test_channel_history_paging(fake_discord: FakeDiscord, world: BasicWorld) -> None:
    seeded = fake_discord.seed_history(
        world.channel_id, [(world.user_id, f"message {i}") for i in range(250)]
    )
    bot, _ = make_bot()
    async with running_bot(fake_discord, bot):
        channel = bot.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel)
        messages = [m async for m in channel.history(limit=250)]
        assert len(messages) == 250
        assert messages[0].content == "message 249" and messages[-1].content == "message 0"
        assert [m.id for m in messages] == sorted((int(m["id"]) for m in seeded), reverse=True)
        pages = fake_discord.requests_matching("GET", rf"/channels/{world.channel_id}/messages")
        assert [p.query.get("limit") for p in pages] == ["100", "100", "50"]
        assert "before" in pages[1].query
        oldest_first = [m async for m in channel.history(limit=5, oldest_first=True)]
        assert [m.content for m in oldest_first] == [f"message {i}" for i in range(5)]


async def test_privileged_intents_and_bad_token(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    fake_discord.privileged_intents_enabled = False
    bot, _ = make_bot(message_content=True)
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with running_bot(fake_discord, bot):
            pass
    assert fake_discord.gateway.connections[-1].server_close_code == 4014

    bot, _ = make_bot(message_content=False)
    async with running_bot(fake_discord, bot):
        assert fake_discord.connected

    fake_discord.privileged_intents_enabled = True
    bot, _ = make_bot()
    with pytest.raises(discord.LoginFailure):
        async with running_bot(fake_discord, bot, token="not-the-token"):
            pass
    assert fake_discord.requests[-1].status == 401


async def test_message_content_is_blanked_without_intent(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    bot, seen = make_bot(message_content=False)
    async with running_bot(fake_discord, bot):
        await fake_discord.send_message(world.channel_id, world.user_id, "secret words")
        await fake_discord.send_message(world.channel_id, world.user_id, f"<@{BOT_USER_ID}> hi")
        await fake_discord.wait_for(lambda: len(seen.messages) == 2, what="two messages")
        assert seen.messages[0].content == ""
        assert seen.messages[1].content == f"<@{BOT_USER_ID}> hi"


async def test_disconnect_and_resume(fake_discord: FakeDiscord, world: BasicWorld) -> None:
    bot, seen = make_bot()
    async with running_bot(fake_discord, bot):
        await fake_discord.disconnect(code=4000)
        missed = await fake_discord.send_message(
            world.channel_id, world.user_id, "sent while disconnected"
        )
        await fake_discord.wait_for(lambda: seen.resumed == 1, what="on_resumed")
        await fake_discord.wait_for(lambda: seen.messages, what="the missed message")
        assert seen.messages[0].id == int(missed["id"])
        resume = fake_discord.gateway.resumes[-1]
        assert resume.accepted and resume.replayed >= 1
        assert fake_discord.gateway.connections[-1].path == "/resume"
        assert len(fake_discord.identify_payloads) == 1
        rec = await fake_discord.invoke(
            world.guild_id, world.channel_id, world.user_id, "echo", {"order": 1, "seed": "x"}
        )
        await rec.wait_response()


async def test_rate_limited_request_is_retried(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    bot, _ = make_bot()
    async with running_bot(fake_discord, bot):
        rule = fake_discord.rate_limit_next(
            "POST", rf"/channels/{world.channel_id}/messages", retry_after=0.3
        )
        trigger = await fake_discord.send_message(world.channel_id, world.user_id, "!ping")
        reply = await fake_discord.wait_for_bot_message(world.channel_id, after=trigger["id"])
        assert reply["content"] == "pong"
        posts = fake_discord.requests_matching("POST", rf"/channels/{world.channel_id}/messages")
        assert [p.status for p in posts] == [429, 200]
        assert posts[1].at - posts[0].at >= 0.3
        assert rule.hits == 1


async def test_file_upload_and_attachment_option(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    bot, _ = make_bot()
    async with running_bot(fake_discord, bot):
        rec = await fake_discord.invoke(world.guild_id, world.channel_id, world.user_id, "upload")
        await rec.wait_response()
        request = fake_discord.requests_matching("POST", r"/interactions/\d+/[^/]+/callback")[-1]
        assert [(f.filename, f.data) for f in request.files] == [("hello.txt", b"hello file")]
        assert request.payload["data"]["content"] == "here"
        [attachment] = rec.attachments
        assert attachment["filename"] == "hello.txt" and attachment["content_type"] == "text/plain"
        async with aiohttp.ClientSession() as session, session.get(attachment["url"]) as resp:
            assert await resp.read() == b"hello file"

        read = await fake_discord.invoke(
            world.guild_id,
            world.channel_id,
            world.user_id,
            "readfile",
            {"file": fake_file("corpus.txt", "some words")},
        )
        await read.wait_response()
        assert read.content == "corpus.txt: 10 bytes: some words"
        assert read.ephemeral
        downloads = fake_discord.requests_matching("GET", r"/attachments/\d+/\d+/corpus\.txt")
        assert len(downloads) == 1 and downloads[0].status == 200
        fake_discord.assert_no_mentions_allowed()


async def test_unanswered_interaction_reports_clearly(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    bot, _ = make_bot()
    bot.tree.remove_command(
        "echo"
    )  # the bot no longer knows /echo but it is still registered with the fake
    async with running_bot(fake_discord, bot, fail_on_bot_errors=False):
        fake_discord.world.upsert_command(
            None, {"name": "ghost", "description": "never answered", "type": 1}
        )
        rec = await fake_discord.invoke(world.guild_id, world.channel_id, world.user_id, "ghost")
        with pytest.raises(
            AssertionError, match=r"did not answer interaction \d+ \(/ghost\) within 0.2 s"
        ):
            await rec.wait_response(timeout=0.2)


async def test_select_menu_and_modal(fake_discord: FakeDiscord, world: BasicWorld) -> None:
    bot, _ = make_bot()
    async with running_bot(fake_discord, bot):
        rec = await fake_discord.invoke(world.guild_id, world.channel_id, world.user_id, "pick")
        await rec.wait_response()
        message_id = rec.original_message_id
        assert message_id is not None
        choice = await fake_discord.select(message_id, "pick:letter", world.user_id, ["b"])
        assert (await choice.wait_response()).type == 7
        assert fake_discord.message(message_id)["content"] == "picked b"
        assert fake_discord.message(message_id)["components"] == []
        with pytest.raises(FakeDiscordError, match="no component"):
            await fake_discord.select(message_id, "pick:letter", world.user_id, ["z"])

        form = await fake_discord.invoke(
            world.guild_id, world.channel_id, world.user_id, "feedback"
        )
        assert (await form.wait_response()).type == 9
        assert form.modal is not None and form.modal["title"] == "Feedback"
        submitted = await fake_discord.submit_modal(form, {"feedback:text": "great bot"})
        await submitted.wait_response()
        assert submitted.content == "thanks: great bot" and submitted.ephemeral


async def test_late_answer_is_rejected_like_discord(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    fake_discord.interaction_deadline = 0.1
    bot, _ = make_bot()
    async with running_bot(fake_discord, bot, fail_on_bot_errors=False):
        rec = await fake_discord.invoke(world.guild_id, world.channel_id, world.user_id, "sleepy")
        await fake_discord.wait_for(lambda: rec.rejected, what="the late callback")
        assert rec.callback is None
        assert "deadline" in rec.rejected[0]["reason"]
        await fake_discord.wait_for(
            lambda: fake_discord.bot_errors, what="discord.py to log NotFound"
        )
    assert "Unknown interaction" in str(fake_discord.bot_errors[0].exc_info)


async def test_permissions_unknown_routes_and_patch_restore(
    fake_discord: FakeDiscord, world: BasicWorld
) -> None:
    fake_discord.set_overwrite(world.channel_id, world.guild_id, deny=PERM_SEND_MESSAGES)
    bot, _ = make_bot()
    async with running_bot(fake_discord, bot):
        channel = bot.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel)
        assert not channel.permissions_for(channel.guild.me).send_messages
        with pytest.raises(discord.Forbidden):
            await channel.send("not allowed")
        with pytest.raises(discord.NotFound):
            await bot.http.request(discord.http.Route("GET", "/nonexistent/thing"))
        assert [r.path for r in fake_discord.unknown_requests] == ["/nonexistent/thing"]
        assert fake_discord.take_spec_violations() == [
            "GET /nonexistent/thing: no such route in Discord's OpenAPI spec"
        ]
    assert fake_discord.api_url == discord.http.Route.BASE  # the fixture keeps it installed
    fake_discord.uninstall()
    assert discord.http.Route.BASE == "https://discord.com/api/v10"
    assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "wss://gateway.discord.gg/"
