"""A fake Discord (gateway + REST on 127.0.0.1) for end-to-end tests of a discord.py 2.7 bot.

The *real* discord.py client connects to it: ``FakeDiscord.install()`` points
``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` at the
fake.  Everything runs on the test's own event loop (no threads).

Quick start (pytest-asyncio, ``asyncio_mode = "auto"``)::

    # conftest.py
    from fake_discord import fake_discord_fixture
    fake_discord = fake_discord_fixture()        # started + installed, stopped after the test

    # test_x.py
    from fake_discord import basic_world, running_bot

    async def test_markov(fake_discord):
        w = basic_world(fake_discord)            # guild, #general, a thread, admin, alice
        async with running_bot(fake_discord, make_bot()) as bot:   # login, connect, on_ready
            rec = await fake_discord.invoke(w.guild_id, w.channel_id, w.user_id,
                                            "markov", {"seed": "hi"})
            await rec.wait_response()            # InteractionTimeout if no answer in 3 s
            msg = await rec.wait_message()       # final message: direct, deferred+edit/followup
            assert rec.response_time < 3
        fake_discord.assert_no_mentions_allowed()

World setup (sync; returns Discord-shaped dicts with *string* ids; every parameter
that takes an id accepts an int, a str, a payload dict or an object with ``.id``):
    add_user(name, bot=False)            add_guild(name, owner_id=None, bot_permissions=...,
                                                   shard=(id, count) for an id on that shard)
    add_role(guild, name, permissions)   add_member(guild, user, permissions=int | [role ids])
    make_admin(guild, user)              give_role(guild, user, role)
    add_text_channel(guild, name)        add_category(guild, name)   add_thread(parent, name)
    set_overwrite(channel, target, allow=0, deny=0, member=False)     open_dm(user)
    seed_history(channel, [(author, content), ...])   past messages, nothing dispatched
Knobs: token, privileged_intents_enabled / allowed_privileged_intents, enforce_permissions,
echo_bot_messages, interaction_deadline (3 s, None = off), heartbeat_interval_ms,
recommended_shards (GET /gateway/bot), max_guilds_per_shard (more: IDENTIFY closed with 4011).
Sharding: a session that IDENTIFYs with ``shard: [id, count]`` gets only the servers of shard
``(guild_id >> 22) % count`` (DMs on shard 0); ``gateway.connected_shards`` lists live ones,
``InteractionRecord.delivered`` says how many sessions an interaction reached.

Events towards the bot (async; return once written to the bot's socket):
    send_message(channel, author, content, **extra)   edit_message(id, content)
    delete_message(id)   bulk_delete(channel, ids)   create_text_channel   create_thread
    delete_channel(id)   join_guild(guild)   remove_guild(guild)   dispatch(event, data)
    disconnect(code=4000)   request_reconnect()   invalidate_session()

Interactions (async; return an InteractionRecord as soon as INTERACTION_CREATE is sent):
    invoke(guild, channel, user, "name [group] [sub]", {option: value})
    autocomplete(guild, channel, user, name, focused, value, options) -> list of choices
    invoke_context_menu(guild, channel, user, name, target)
    click(message_id, custom_id, user)   select(message_id, custom_id, user, values)
    submit_modal(record_that_got_the_modal, {custom_id: text})
InteractionRecord: wait_response(), wait_edit(n), wait_followup(n), wait_message(), callback,
response_type, response_time, original, followups, latest, content, embeds, components,
attachments, flags, ephemeral, thinking, custom_ids(), choices, modal, rejected, edits.

Inspection: requests / requests_matching(method, path_regex) / unknown_requests,
spec_violations, outgoing (every message payload), mention_violations() /
assert_no_mentions_allowed() / pings(), bot_messages(channel), channel_messages(channel),
message(id), commands(guild=None), command(name), command_syncs, intents,
identify_payloads, gateway.connections, gateway.resumes, bot_errors, internal_errors.
Waiting: wait_for(predicate), wait_for_request(method, path_regex),
wait_for_bot_message(channel, after=trigger_id), wait_until_connected().
Rate limits: rate_limit_next(method, path_regex, retry_after=0.2).

Like Discord, the fake enforces: 2000-character content, no empty messages, embed and
component limits, the 3-second interaction deadline, single acknowledgement, channel
permissions (403), privileged intents (close 4014), MESSAGE_CONTENT blanking, command
payload validation, default_member_permissions on invoke.  A bot that passes here does
not fail on those in production.

Discord's own rules: every request is checked against Discord's OpenAPI spec
(``spec/openapi.json``: its route must exist, its query and JSON or ``payload_json`` body
must fit the schema; integer snowflakes are accepted) and command registrations against the
documented limits the schema leaves out (``command_limits``).  A refused request gets
Discord's error (404, or 400 / 50035 "Invalid Form Body" with ``errors``) and is recorded in
``spec_violations``; ``running_bot`` fails the test on exit while any are left (a test that
provokes one takes it with ``take_spec_violations()``).  Interaction tokens expire after 15
minutes (webhook calls then get 401 / 50027): ``age_token(rec, seconds)`` / ``expire_token(rec)``.
"""

from .constants import (
    APPLICATION_ID,
    BOT_USER_ID,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILD_PRESENCES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    PERM_ADMINISTRATOR,
    PERM_ATTACH_FILES,
    PERM_MANAGE_GUILD,
    PERM_MANAGE_MESSAGES,
    PERM_READ_MESSAGE_HISTORY,
    PERM_SEND_MESSAGES,
    PERM_VIEW_CHANNEL,
)
from .harness import (
    BasicWorld,
    BotErrors,
    basic_world,
    fake_discord_fixture,
    running_bot,
    started_fake,
)
from .interactions import FileInput, fake_file
from .records import (
    CallbackRecord,
    CommandNotRegistered,
    FakeDiscordError,
    FakeTimeout,
    InteractionRecord,
    InteractionTimeout,
    MessageEditRecord,
    OutgoingMessage,
    RequestRecord,
    UploadedFile,
    is_no_mention,
)
from .server import CommandNotPermitted, CommandSync, FakeDiscord, RateLimitRule
from .snowflake import SnowflakeGenerator, snowflake_time

__all__ = [
    "APPLICATION_ID",
    "BOT_USER_ID",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "FLAG_EPHEMERAL",
    "FLAG_LOADING",
    "INTENT_GUILDS",
    "INTENT_GUILD_MEMBERS",
    "INTENT_GUILD_MESSAGES",
    "INTENT_GUILD_PRESENCES",
    "INTENT_MESSAGE_CONTENT",
    "PERM_ADMINISTRATOR",
    "PERM_ATTACH_FILES",
    "PERM_MANAGE_GUILD",
    "PERM_MANAGE_MESSAGES",
    "PERM_READ_MESSAGE_HISTORY",
    "PERM_SEND_MESSAGES",
    "PERM_VIEW_CHANNEL",
    "BasicWorld",
    "BotErrors",
    "CallbackRecord",
    "CommandNotPermitted",
    "CommandNotRegistered",
    "CommandSync",
    "FakeDiscord",
    "FakeDiscordError",
    "FakeTimeout",
    "FileInput",
    "InteractionRecord",
    "InteractionTimeout",
    "MessageEditRecord",
    "OutgoingMessage",
    "RateLimitRule",
    "RequestRecord",
    "SnowflakeGenerator",
    "UploadedFile",
    "basic_world",
    "fake_discord_fixture",
    "fake_file",
    "is_no_mention",
    "running_bot",
    "snowflake_time",
    "started_fake",
]
