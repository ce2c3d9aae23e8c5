"""``FakeDiscord``: the object tests drive. It owns the HTTP/websocket server and the world.

The class is deliberately a thin façade: world-building methods are
synchronous (they only change data), while methods that make Discord *do*
something towards the bot (dispatch an event, start an interaction) are
``async`` and return once the event is written to the bot's socket.  All of
it runs on the test's own event loop, the same loop as the bot, so there are
no threads and no cross-loop surprises.
"""

# The wait helpers take ``timeout=`` on purpose: each failure message names the
# timeout, which a caller-side ``asyncio.timeout`` could not do.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import functools
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from re import Pattern
from typing import Any, TypeVar

from aiohttp import web

from . import spec_check
from .constants import (
    ALL_PERMISSIONS,
    API_PREFIX,
    APP_FLAG_APPLICATION_COMMAND_BADGE,
    APP_FLAG_GATEWAY_GUILD_MEMBERS,
    APP_FLAG_GATEWAY_MESSAGE_CONTENT,
    APP_FLAG_GATEWAY_PRESENCE,
    APPLICATION_ID,
    BOT_USER_ID,
    BUTTON_STYLE_LINK,
    BUTTON_STYLE_PREMIUM,
    CHANNEL_DM,
    COMMAND_CHAT_INPUT,
    COMMAND_MESSAGE,
    COMMAND_USER,
    COMPONENT_BUTTON,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_PRESENCES,
    INTENT_MESSAGE_CONTENT,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_MESSAGE_COMPONENT,
    INTERACTION_MODAL_SUBMIT,
    INTERACTION_TOKEN_LIFETIME,
    OP_INVALID_SESSION,
    PRIVILEGED_INTENTS,
    THREAD_CHANNEL_TYPES,
)
from .gateway import Gateway, GatewaySession
from .interactions import (
    ResolvedBuilder,
    base_interaction_payload,
    build_command_options,
    build_component_data,
    build_modal_components,
    find_component,
    new_token,
    split_qualified_name,
)
from .payloads import JSONDict, iter_components, parse_mentions, sid
from .records import (
    CommandNotRegistered,
    FakeDiscordError,
    FakeTimeout,
    InteractionRecord,
    Notifier,
    OutgoingMessage,
    RequestRecord,
)
from .rest import RestApi
from .snowflake import utc_iso_now
from .world import GuildState, RegisteredCommand, World

_log = logging.getLogger(__name__)

T = TypeVar("T")
# An id given as int, str, Discord payload dict or object with ``.id`` (see ``payloads.sid``).
IdLike = Any


class CommandNotPermitted(FakeDiscordError):
    """The invoking member lacks the command's ``default_member_permissions``; Discord would hide
    it.
    """


@dataclasses.dataclass
class RateLimitRule:
    """A pending "answer the next matching request with 429" instruction."""

    method: str
    pattern: Pattern[str]
    retry_after: float
    is_global: bool
    remaining: int
    hits: int = 0


@dataclasses.dataclass
class CommandSync:
    """One command registration request (PUT = bulk overwrite, POST = single upsert)."""

    guild_id: int | None
    payload: list[JSONDict]
    at: float
    bulk: bool = True


def _world_method(name: str) -> Any:
    """``World.<name>``, called on the fake's world."""
    method = getattr(World, name)

    @functools.wraps(method)
    def call(self: FakeDiscord, *args: Any, **kwargs: Any) -> Any:
        return method(self.world, *args, **kwargs)

    return call


class FakeDiscord:
    """A fake Discord (REST + gateway) on ``127.0.0.1`` for end-to-end tests of a real discord.py
    bot.

    Typical use::

        async with FakeDiscord() as fake:          # start() + install()
            guild = fake.add_guild("Test")
            channel = fake.add_text_channel(guild["id"], "general")
            alice = fake.add_user("alice")
            fake.add_member(guild["id"], alice["id"])
            async with running_bot(fake, bot):
                rec = await fake.invoke(guild["id"], channel["id"], alice["id"], "markov")
                await rec.wait_response()

    Knobs (plain attributes): ``token``, ``allowed_privileged_intents`` /
    ``privileged_intents_enabled``, ``enforce_permissions``,
    ``echo_bot_messages``, ``interaction_deadline``, ``heartbeat_interval_ms``.
    """

    def __init__(self, *, token: str = "test-token") -> None:
        self.token = token
        self.world = World()
        self.gateway = Gateway(self)
        self.rest = RestApi(self)
        self.requests: list[RequestRecord] = []
        self.outgoing: list[OutgoingMessage] = []
        self.interactions: dict[int, InteractionRecord] = {}
        self._interactions_by_token: dict[str, InteractionRecord] = {}
        self.command_syncs: list[CommandSync] = []
        self.bot_errors: list[logging.LogRecord] = []
        # Crashes inside the fake's own handlers (bugs in the fake, not the bot).
        self.internal_errors: list[str] = []
        # Requests Discord's published rules refuse ("METHOD /path: field: why"); running_bot
        # fails the test on exit unless the test took them with take_spec_violations().
        self.spec_violations: list[str] = []
        # Which privileged intents the "developer portal" has switched on.
        self.allowed_privileged_intents: int = PRIVILEGED_INTENTS
        # Return 403 when the bot lacks channel permissions, as Discord does.
        self.enforce_permissions = True
        # Dispatch MESSAGE_CREATE/UPDATE for the bot's own messages, as Discord does.
        self.echo_bot_messages = True
        # Reject initial interaction callbacks later than this (Discord: 3 s). None disables.
        self.interaction_deadline: float | None = 3.0
        self.heartbeat_interval_ms = 41_250
        # GET /gateway/bot's "shards"; None: one per 1,000 servers, as Discord recommends.
        self.recommended_shards: int | None = None
        # An IDENTIFY whose shard would hold more servers is closed with 4011 (Discord: 2,500).
        self.max_guilds_per_shard: int | None = 2500
        self.session_start_total = 1000
        self._rate_limits: list[RateLimitRule] = []
        self._notifier = Notifier()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._saved_patch: tuple[Any, Any] | None = None
        self._dm_channels: dict[int, int] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeDiscord:
        """Serve on ``127.0.0.1`` at a random free port."""
        if self._runner is not None:
            return self
        spec_check.warm()
        app = web.Application(middlewares=[self.rest.middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_get("/", self.gateway.handle)
        app.router.add_get("/resume", self.gateway.handle)
        app.add_routes(self.rest.routes())
        app.add_routes([self.rest.catch_all()])
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self._port = int(address[1])
        self.world.base_url = self.base_url
        _log.info("fake Discord listening on %s", self.base_url)
        return self

    async def stop(self) -> None:
        """Close every gateway socket and the server; also undoes :meth:`install`."""
        self.uninstall()
        if self._runner is None:
            return
        await self.gateway.close_all()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        self.install()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The TCP port (only after :meth:`start`)."""
        if self._port is None:
            raise FakeDiscordError("the fake is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What ``discord.http.Route.BASE`` must be set to."""
        return f"{self.base_url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def resume_gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/resume"

    # ------------------------------------------------------------------ patching discord.py

    def install(self) -> None:
        """Point discord.py at the fake (``Route.BASE``, ``DiscordWebSocket.DEFAULT_GATEWAY``)."""
        import discord.gateway
        import discord.http
        import yarl

        if self._saved_patch is not None:
            return
        self._saved_patch = (
            discord.http.Route.BASE,
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
        )
        discord.http.Route.BASE = self.api_url
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

    def uninstall(self) -> None:
        """Restore what :meth:`install` replaced."""
        import discord.gateway
        import discord.http

        if self._saved_patch is None:
            return
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = (
            self._saved_patch
        )
        self._saved_patch = None

    @property
    def installed(self) -> bool:
        """Whether discord.py currently points at this fake."""
        return self._saved_patch is not None

    @contextlib.contextmanager
    def patch(self) -> Iterator[FakeDiscord]:
        """Context manager form of :meth:`install` / :meth:`uninstall`."""
        was_installed = self.installed
        self.install()
        try:
            yield self
        finally:
            if not was_installed:
                self.uninstall()

    # ------------------------------------------------------------------ identity & settings

    @property
    def bot_user(self) -> JSONDict:
        return self.world.bot_user

    @property
    def bot_user_id(self) -> int:
        return BOT_USER_ID

    @property
    def application_id(self) -> int:
        return APPLICATION_ID

    @property
    def privileged_intents_enabled(self) -> bool:
        """All privileged intents approved (True) or none (False); finer control via
        ``allowed_privileged_intents``.
        """
        return self.allowed_privileged_intents & PRIVILEGED_INTENTS == PRIVILEGED_INTENTS

    @privileged_intents_enabled.setter
    def privileged_intents_enabled(self, value: bool) -> None:
        self.allowed_privileged_intents = PRIVILEGED_INTENTS if value else 0

    @property
    def intents(self) -> int | None:
        """Intents value of the most recent IDENTIFY (``None`` before any)."""
        if not self.gateway.identify_payloads:
            return None
        value = self.gateway.identify_payloads[-1].get("intents")
        return int(value) if value is not None else None

    @property
    def identify_payloads(self) -> list[JSONDict]:
        return self.gateway.identify_payloads

    @property
    def connected(self) -> bool:
        """Whether a bot session is live and has received READY."""
        return self.gateway.connected

    def _notify(self) -> None:
        self._notifier.notify()

    def _app_flags(self) -> int:
        flags = APP_FLAG_APPLICATION_COMMAND_BADGE
        if self.allowed_privileged_intents & INTENT_MESSAGE_CONTENT:
            flags |= APP_FLAG_GATEWAY_MESSAGE_CONTENT
        if self.allowed_privileged_intents & INTENT_GUILD_MEMBERS:
            flags |= APP_FLAG_GATEWAY_GUILD_MEMBERS
        if self.allowed_privileged_intents & INTENT_GUILD_PRESENCES:
            flags |= APP_FLAG_GATEWAY_PRESENCE
        return flags

    def _application_payload(self) -> JSONDict:
        return {
            "id": str(APPLICATION_ID),
            "name": self.world.bot_user["username"],
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": copy.deepcopy(self.world.app_owner),
            "team": None,
            "flags": self._app_flags(),
            "bot": copy.deepcopy(self.world.bot_user),
            "rpc_origins": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "install_params": None,
            "integration_types_config": {"0": {}},
            "approximate_guild_count": len(self.world.guilds),
            "tags": [],
        }

    def _ready_payload(self, session: GatewaySession) -> JSONDict:
        data: JSONDict = {
            "v": 10,
            "user": copy.deepcopy(self.world.bot_user),
            "guilds": [
                {"id": str(gid), "unavailable": True}
                for gid in self.world.guilds
                if session.holds(gid)
            ],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(APPLICATION_ID), "flags": self._app_flags()},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "auth": {},
            "user_settings": {},
            "_trace": ["fake-discord"],
        }
        if "shard" in session.identify:
            data["shard"] = session.identify["shard"]
        return data

    def _guild_create_payload(self, guild_id: int, intents: int) -> JSONDict:
        """GUILD_CREATE as Discord sends it: members limited to the bot unless presences are on."""
        state = self.world.guilds[guild_id]
        world = self.world
        data = copy.deepcopy(state.data)
        channels = [world.channels[c] for c in state.channel_ids]
        # Without the presence intent Discord only includes the bot itself;
        # discord.py then requests the rest with op 8 if it has the members intent.
        all_members = bool(intents & INTENT_GUILD_PRESENCES)
        members = list(state.members.values()) if all_members else [state.members[BOT_USER_ID]]
        data.update(
            {
                "roles": copy.deepcopy(list(state.roles.values())),
                "channels": copy.deepcopy(
                    [c for c in channels if int(c["type"]) not in THREAD_CHANNEL_TYPES]
                ),
                "threads": copy.deepcopy(
                    [c for c in channels if int(c["type"]) in THREAD_CHANNEL_TYPES]
                ),
                "members": copy.deepcopy(members),
                "member_count": len(state.members),
                "large": len(state.members) >= 250,
                "unavailable": False,
                "joined_at": state.members[BOT_USER_ID]["joined_at"],
                "presences": [],
                "voice_states": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
                "embedded_activities": [],
                "application_command_counts": {},
                "lazy": True,
            }
        )
        return data

    def _delete_payload(self, message: JSONDict) -> JSONDict:
        payload: JSONDict = {"id": message["id"], "channel_id": message["channel_id"]}
        if message.get("guild_id"):
            payload["guild_id"] = message["guild_id"]
        return payload

    def _record_sync(
        self, guild_id: int | None, payload: list[JSONDict], *, bulk: bool = True
    ) -> None:
        loop = asyncio.get_running_loop()
        self.command_syncs.append(CommandSync(guild_id, copy.deepcopy(payload), loop.time(), bulk))

    # ------------------------------------------------------------------ world building (sync)

    # Building the world is the world's business: these are its methods, served here so a
    # test writes ``fake.add_guild(...)`` (same signatures and docs, see :class:`World`).
    add_user = _world_method("add_user")
    add_guild = _world_method("add_guild")
    add_role = _world_method("add_role")
    add_member = _world_method("add_member")
    give_role = _world_method("give_role")
    make_admin = _world_method("make_admin")
    add_text_channel = _world_method("add_text_channel")
    add_category = _world_method("add_category")
    add_thread = _world_method("add_thread")
    set_overwrite = _world_method("set_overwrite")
    guild_permissions = _world_method("guild_permissions")
    channel_permissions = _world_method("channel_permissions")
    seed_history = _world_method("seed_history")

    def open_dm(self, user_id: IdLike) -> JSONDict:
        """The DM channel between the bot and a user (created on first use)."""
        uid = sid(user_id)
        cid = self._dm_channels.get(uid)
        if cid is None:
            user = self.world.user(uid)
            cid = self.world.ids.next()
            self.world.channels[cid] = {
                "id": str(cid),
                "type": CHANNEL_DM,
                "last_message_id": None,
                "flags": 0,
                "recipients": [copy.deepcopy(user)],
            }
            self.world.history[cid] = []
            self._dm_channels[uid] = cid
        return self.world.channels[cid]

    # ------------------------------------------------------------------ reading state

    def message(self, message_id: IdLike) -> JSONDict:
        """Current state of a stored message (including ephemeral interaction messages)."""
        mid = sid(message_id)
        try:
            return self.world.messages[mid]
        except KeyError:
            raise FakeDiscordError(f"unknown message {mid}") from None

    def channel_messages(self, channel_id: IdLike) -> list[JSONDict]:
        """A channel's history, oldest first."""
        cid = sid(channel_id)
        return [self.world.messages[m] for m in self.world.history.get(cid, [])]

    def bot_messages(self, channel_id: IdLike | None = None) -> list[JSONDict]:
        """Non-ephemeral messages authored by the bot (in one channel, or everywhere), oldest
        first.
        """
        if channel_id is None:
            ids = sorted(m for hist in self.world.history.values() for m in hist)
        else:
            ids = list(self.world.history.get(sid(channel_id), []))
        return [
            self.world.messages[m]
            for m in ids
            if self.world.messages[m]["author"]["id"] == str(BOT_USER_ID)
        ]

    def commands(self, guild_id: IdLike | None = None) -> list[JSONDict]:
        """Registered commands in one scope (``None`` = global), as Discord stores them."""
        return [
            copy.deepcopy(c.data)
            for c in self.world.commands_for(sid(guild_id) if guild_id is not None else None)
        ]

    def command(
        self, name: str, guild_id: IdLike | None = None, *, command_type: int = COMMAND_CHAT_INPUT
    ) -> JSONDict:
        """One registered command as a user in ``guild_id`` would see it (guild, then global)."""
        cmd = self._find_command(
            sid(guild_id) if guild_id is not None else None, name, command_type
        )
        return copy.deepcopy(cmd.data)

    def requests_matching(
        self, method: str | None = None, path: str | None = None
    ) -> list[RequestRecord]:
        """Recorded requests filtered by method and a regex ``re.fullmatch``-ed against the API
        path.
        """
        pattern = re.compile(path) if path is not None else None
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (pattern is None or pattern.fullmatch(r.path))
        ]

    def take_spec_violations(self) -> list[str]:
        """Return and forget the recorded spec violations (for tests that provoke them)."""
        taken, self.spec_violations = self.spec_violations, []
        return taken

    def age_token(self, rec: InteractionRecord, seconds: float) -> None:
        """Make ``rec``'s interaction token ``seconds`` older, instead of the test sleeping."""
        rec.token_aged_by += seconds

    def expire_token(self, rec: InteractionRecord) -> None:
        """Age ``rec``'s token past Discord's 15-minute lifetime: its webhook calls get 401."""
        self.age_token(rec, INTERACTION_TOKEN_LIFETIME + 1.0)

    @property
    def unknown_requests(self) -> list[RequestRecord]:
        """Requests that hit no known route (answered 404)."""
        return [r for r in self.requests if not r.route_known]

    def mention_violations(self, *, include_edits: bool = True) -> list[OutgoingMessage]:
        """Outgoing message payloads whose ``allowed_mentions`` is missing or permits a ping."""
        return [
            o
            for o in self.outgoing
            if not o.pings_nobody
            and (include_edits or o.kind in ("channel_message", "interaction_callback", "followup"))
        ]

    def assert_no_mentions_allowed(self, *, include_edits: bool = True) -> None:
        """Fail unless every message payload the bot sent carried a no-ping ``allowed_mentions``."""
        bad = self.mention_violations(include_edits=include_edits)
        if bad:
            lines = [
                f"  {o.kind} {o.method} {o.path}: allowed_mentions={o.allowed_mentions!r}"
                for o in bad
            ]
            raise AssertionError(
                "payloads without allowed_mentions={'parse': []}:\n" + "\n".join(lines)
            )
        if not self.outgoing:
            _log.info("assert_no_mentions_allowed: the bot sent no messages")

    def pings(self) -> list[OutgoingMessage]:
        """Message creations that would actually notify someone (users, roles or @everyone)."""
        return [
            o
            for o in self.outgoing
            if o.kind in ("channel_message", "interaction_callback", "followup")
            and (o.pinged_users or o.pinged_roles or o.pinged_everyone)
        ]

    # ------------------------------------------------------------------ waiting

    async def wait_for(
        self, predicate: Callable[[], T | None], timeout: float = 5.0, what: str = "condition"
    ) -> T:
        """Wait until ``predicate()`` is truthy (re-checked on fake activity and every 20 ms)."""
        try:
            return await self._notifier.wait_for(predicate, timeout)
        except TimeoutError:
            raise FakeTimeout(f"timed out after {timeout} s waiting for {what}") from None

    async def wait_until_connected(self, timeout: float = 10.0) -> None:
        """Wait until a bot session has been sent READY and is connected."""
        await self.wait_for(lambda: self.connected, timeout, "a bot to connect to the gateway")

    async def wait_for_request(
        self, method: str, path: str, timeout: float = 5.0, *, start: int = 0
    ) -> RequestRecord:
        """Wait for a request (``path`` regex ``fullmatch``-ed); ``start`` skips earlier records by
        index.
        """
        pattern = re.compile(path)

        def find() -> RequestRecord | None:
            for record in self.requests[start:]:
                if (
                    record.method == method.upper()
                    and pattern.fullmatch(record.path)
                    and record.status
                ):
                    return record
            return None

        return await self.wait_for(find, timeout, f"{method.upper()} {path}")

    async def wait_for_bot_message(
        self,
        channel_id: IdLike,
        timeout: float = 5.0,
        *,
        after: IdLike | None = None,
        predicate: Callable[[JSONDict], bool] | None = None,
    ) -> JSONDict:
        """Wait for a bot message in a channel newer than ``after`` (default: newest message now).

        Pass ``after=trigger["id"]`` when the trigger was sent before this
        call, so a very fast reply is not missed.
        """
        cid = sid(channel_id)
        if after is not None:
            floor = sid(after)
        else:
            hist = self.world.history.get(cid, [])
            floor = hist[-1] if hist else 0

        def find() -> JSONDict | None:
            for mid in self.world.history.get(cid, []):
                if mid <= floor:
                    continue
                msg = self.world.messages[mid]
                if msg["author"]["id"] == str(BOT_USER_ID) and (
                    predicate is None or predicate(msg)
                ):
                    return msg
            return None

        return await self.wait_for(find, timeout, f"a bot message in channel {cid}")

    # ------------------------------------------------------------------ gateway events (async)

    async def dispatch(self, event: str, data: JSONDict) -> int:
        """Send any gateway event to the bot; returns the number of sessions it went to."""
        return await self.gateway.dispatch(event, data)

    async def send_message(
        self, channel_id: IdLike, author_id: IdLike | None, content: str = "", **extra: Any
    ) -> JSONDict:
        """A user (or webhook) posts a message: stored in history and dispatched as MESSAGE_CREATE.

        ``extra``: ``webhook_id`` (+ ``webhook_name``), ``type`` (e.g. 7 for a
        join message), ``mentions`` (user ids; default parsed from content),
        ``mention_roles``, ``mention_everyone``, ``interaction_metadata``,
        ``message_reference``, ``embeds``, ``attachments``, ``flags``...
        """
        if "type" in extra:
            extra["message_type"] = extra.pop("type")
        message = self.world.build_message(channel_id, author_id, content, **extra)
        self.world.store_message(message)
        await self.gateway.dispatch("MESSAGE_CREATE", copy.deepcopy(message))
        return message

    async def edit_message(
        self, message_id: IdLike, content: str | None = None, **changes: Any
    ) -> JSONDict:
        """A user edits a message: stored and dispatched as MESSAGE_UPDATE with the full message."""
        message = self.message(message_id)
        if content is not None:
            message["content"] = content
            gid = message.get("guild_id")
            users, roles, everyone = parse_mentions(content)
            message["mentions"] = self.world.mention_payloads(int(gid) if gid else None, users)
            message["mention_roles"] = [str(r) for r in roles]
            message["mention_everyone"] = everyone
        message.update(changes)
        message["edited_timestamp"] = utc_iso_now()
        await self.gateway.dispatch("MESSAGE_UPDATE", copy.deepcopy(message))
        return message

    async def delete_message(self, message_id: IdLike) -> JSONDict:
        """A user or moderator deletes a message: MESSAGE_DELETE."""
        message = self.message(message_id)
        self.world.delete_message(int(message["id"]))
        payload = self._delete_payload(message)
        await self.gateway.dispatch("MESSAGE_DELETE", payload)
        return payload

    async def bulk_delete(self, channel_id: IdLike, message_ids: Sequence[IdLike]) -> JSONDict:
        """A moderator purges messages: MESSAGE_DELETE_BULK."""
        cid = sid(channel_id)
        ids = [sid(m) for m in message_ids]
        for mid in ids:
            self.world.delete_message(mid)
        payload: JSONDict = {"ids": [str(m) for m in ids], "channel_id": str(cid)}
        gid = self.world.guild_id_of(cid)
        if gid is not None:
            payload["guild_id"] = str(gid)
        await self.gateway.dispatch("MESSAGE_DELETE_BULK", payload)
        return payload

    async def create_text_channel(self, guild_id: IdLike, name: str, **kwargs: Any) -> JSONDict:
        """Create a channel while the bot is connected: CHANNEL_CREATE."""
        channel = self.world.add_text_channel(guild_id, name, **kwargs)
        await self.gateway.dispatch("CHANNEL_CREATE", copy.deepcopy(channel))
        return channel

    async def create_thread(self, parent_channel_id: IdLike, name: str, **kwargs: Any) -> JSONDict:
        """Create a thread while the bot is connected: THREAD_CREATE."""
        thread = self.world.add_thread(parent_channel_id, name, **kwargs)
        data = copy.deepcopy(thread)
        data["newly_created"] = True
        await self.gateway.dispatch("THREAD_CREATE", data)
        return thread

    async def delete_channel(self, channel_id: IdLike) -> JSONDict:
        """Delete a channel or thread: CHANNEL_DELETE / THREAD_DELETE (messages go with it)."""
        channel = self.world.remove_channel(channel_id)
        if int(channel["type"]) in THREAD_CHANNEL_TYPES:
            payload = {k: channel[k] for k in ("id", "guild_id", "parent_id", "type")}
            await self.gateway.dispatch("THREAD_DELETE", payload)
            return payload
        await self.gateway.dispatch("CHANNEL_DELETE", copy.deepcopy(channel))
        return channel

    async def join_guild(self, guild_id: IdLike) -> JSONDict:
        """Announce a guild added after READY (the bot was invited): GUILD_CREATE."""
        gid = sid(guild_id)
        self.world.guild(gid)
        sessions = [s for s in self.gateway.active_sessions if s.ready_sent and s.holds(gid)]
        payload: JSONDict = {}
        for session in sessions:
            payload = self._guild_create_payload(gid, session.intents)
            # A join carries no "unavailable" key; "unavailable": false means an
            # outage ended, which discord.py reports as guild_available instead.
            payload.pop("unavailable", None)
            await self.gateway._dispatch_to(session, "GUILD_CREATE", payload)
        self._notify()
        return payload

    async def remove_guild(self, guild_id: IdLike) -> JSONDict:
        """The bot is removed from a guild: GUILD_DELETE, and the guild is forgotten."""
        state: GuildState = self.world.remove_guild(guild_id)
        payload: JSONDict = {"id": str(state.id)}
        await self.gateway.dispatch("GUILD_DELETE", payload)
        return payload

    async def disconnect(self, code: int = 4000, *, resumable: bool | None = None) -> None:
        """Drop the bot's gateway connection from Discord's side.

        With a resumable code (default 4000) the bot reconnects to
        ``resume_gateway_url`` and RESUMEs; events dispatched meanwhile are
        replayed.  ``self.gateway.resumes`` records the outcome.
        """
        await self.gateway.disconnect(code, resumable=resumable)

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT (the bot should close and RESUME)."""
        await self.gateway.request_reconnect()

    async def invalidate_session(self) -> None:
        """Send op 9 INVALID_SESSION (false): the bot must IDENTIFY anew."""
        await self.gateway.send_op(OP_INVALID_SESSION, False)

    # ------------------------------------------------------------------ interactions

    def _find_command(
        self, guild_id: int | None, name: str, command_type: int
    ) -> RegisteredCommand:
        cmd = self.world.find_command(guild_id, name, command_type)
        if cmd is None:
            global_names = sorted(
                c.name for c in self.world.commands_for(None) if c.type == command_type
            )
            guild_names = (
                sorted(c.name for c in self.world.commands_for(guild_id) if c.type == command_type)
                if guild_id
                else []
            )
            raise CommandNotRegistered(
                f"command {name!r} (type {command_type}) is not registered: the bot synced global "
                f"{global_names}"
                + (f" and guild {guild_id} {guild_names}" if guild_id else "")
                + f" ({len(self.command_syncs)} sync request(s) seen)"
            )
        return cmd

    def _check_permitted(
        self, cmd: RegisteredCommand, guild_id: int | None, channel_id: int, user_id: int
    ) -> None:
        raw = cmd.data.get("default_member_permissions")
        if raw is None or guild_id is None:
            return
        needed = int(raw)
        perms = self.world.channel_permissions(channel_id, user_id)
        if perms == ALL_PERMISSIONS:
            return
        if needed == 0 or perms & needed != needed:
            raise CommandNotPermitted(
                f"user {user_id} lacks default_member_permissions={needed} for /{cmd.name}; "
                "Discord would not offer the command (pass enforce_default_permissions=False to "
                "send it anyway)"
            )

    def _resolve_location(
        self, guild_id: IdLike | None, channel_id: IdLike
    ) -> tuple[int | None, int]:
        cid = sid(channel_id)
        channel = self.world.channel(cid)
        channel_gid = int(channel["guild_id"]) if channel.get("guild_id") else None
        gid = sid(guild_id) if guild_id is not None else channel_gid
        if gid != channel_gid:
            raise FakeDiscordError(f"channel {cid} is not in guild {gid}")
        return gid, cid

    async def _dispatch_interaction(
        self,
        itype: int,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        data: JSONDict | None,
        *,
        message: JSONDict | None = None,
        name: str | None = None,
        custom_id: str | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        if not any(s.ready_sent for s in self.gateway.active_sessions):
            raise FakeDiscordError(
                "no bot session is connected to the fake gateway; start the bot first (running_bot)"
            )
        loop = asyncio.get_running_loop()
        iid = self.world.ids.next()
        token = new_token()
        payload = base_interaction_payload(
            self.world,
            interaction_id=iid,
            interaction_type=itype,
            token=token,
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=user_id,
            data=data,
            message=message,
            locale=locale,
        )
        rec = InteractionRecord(
            interaction_id=iid,
            token=token,
            type=itype,
            payload=payload,
            name=name,
            custom_id=custom_id,
            messages=self.world.messages,
            dispatched_at=loop.time(),
        )
        self.interactions[iid] = rec
        self._interactions_by_token[token] = rec
        rec.dispatched_at = loop.time()
        rec.delivered = await self.gateway.dispatch("INTERACTION_CREATE", copy.deepcopy(payload))
        return rec

    async def _command_interaction(
        self,
        itype: int,
        guild_id: IdLike | None,
        channel_id: IdLike,
        user_id: IdLike,
        name: str,
        options: Mapping[str, Any] | None,
        *,
        subcommand: str | None,
        focused: str | None = None,
        focused_value: str = "",
        locale: str,
        enforce_default_permissions: bool,
    ) -> InteractionRecord:
        gid, cid = self._resolve_location(guild_id, channel_id)
        uid = sid(user_id)
        root, path = split_qualified_name(name, subcommand)
        cmd = self._find_command(gid, root, COMMAND_CHAT_INPUT)
        if enforce_default_permissions:
            self._check_permitted(cmd, gid, cid, uid)
        resolved = ResolvedBuilder(self.world, gid, cid, uid)
        nested, _ = build_command_options(
            cmd, path, options or {}, resolved, focused=focused, focused_value=focused_value
        )
        data: JSONDict = {"id": cmd.data["id"], "name": cmd.name, "type": COMMAND_CHAT_INPUT}
        if nested:
            data["options"] = nested
        if resolved.data:
            data["resolved"] = resolved.data
        if cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        qualified = " ".join([root, *path])
        return await self._dispatch_interaction(
            itype, gid, cid, uid, data, name=qualified, locale=locale
        )

    async def invoke(
        self,
        guild_id: IdLike | None,
        channel_id: IdLike,
        user_id: IdLike,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        locale: str = "en-US",
        enforce_default_permissions: bool = True,
    ) -> InteractionRecord:
        """A member runs a slash command; returns its :class:`InteractionRecord` once dispatched.

        ``name`` may include subcommands (``"markov-admin listen"``), or pass
        ``subcommand="listen"``.  ``options`` maps option names to Python
        values: str/int/float/bool, ids (or dicts/objects with ``id``) for
        user/channel/role/mentionable, and ``fake_file(...)``/bytes/
        ``(filename, data)`` for attachments.  Types come from the bot's own
        registration.
        """
        return await self._command_interaction(
            INTERACTION_APPLICATION_COMMAND,
            guild_id,
            channel_id,
            user_id,
            name,
            options,
            subcommand=subcommand,
            locale=locale,
            enforce_default_permissions=enforce_default_permissions,
        )

    async def autocomplete(
        self,
        guild_id: IdLike | None,
        channel_id: IdLike,
        user_id: IdLike,
        name: str,
        focused: str,
        value: str = "",
        options: Mapping[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        timeout: float = 3.0,
        locale: str = "en-US",
    ) -> list[JSONDict]:
        """A member types ``value`` into option ``focused``; returns the bot's choices (``[{"name",
        "value"}]``).
        """
        rec = await self._command_interaction(
            INTERACTION_AUTOCOMPLETE,
            guild_id,
            channel_id,
            user_id,
            name,
            options,
            subcommand=subcommand,
            focused=focused,
            focused_value=value,
            locale=locale,
            enforce_default_permissions=False,
        )
        await rec.wait_response(timeout)
        return list(rec.choices or [])

    async def invoke_context_menu(
        self,
        guild_id: IdLike | None,
        channel_id: IdLike,
        user_id: IdLike,
        name: str,
        target: IdLike,
        *,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """A member uses a user or message context-menu command on ``target`` (user id or message
        id).
        """
        gid, cid = self._resolve_location(guild_id, channel_id)
        uid = sid(user_id)
        target_id = sid(target)
        cmd = self.world.find_command(gid, name, COMMAND_USER) or self.world.find_command(
            gid, name, COMMAND_MESSAGE
        )
        if cmd is None:
            self._find_command(gid, name, COMMAND_USER)
            raise AssertionError("unreachable")
        resolved = ResolvedBuilder(self.world, gid, cid, uid)
        if cmd.type == COMMAND_USER:
            resolved.user(target_id)
        else:
            resolved.message(target_id)
        data: JSONDict = {
            "id": cmd.data["id"],
            "name": cmd.name,
            "type": cmd.type,
            "target_id": str(target_id),
            "resolved": resolved.data,
        }
        if cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        return await self._dispatch_interaction(
            INTERACTION_APPLICATION_COMMAND, gid, cid, uid, data, name=name, locale=locale
        )

    async def click(
        self,
        message_id: IdLike,
        custom_id: str,
        user_id: IdLike,
        *,
        values: Sequence[Any] | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """A member presses a button (or picks ``values`` in a select) on a stored message."""
        message = self.message(message_id)
        component = find_component(message, custom_id)
        if component is None:
            have = [
                c.get("custom_id")
                for c in iter_components(message.get("components") or [])
                if c.get("custom_id")
            ]
            raise FakeDiscordError(
                f"message {message['id']} has no component with custom_id {custom_id!r}; it has "
                f"{have}"
            )
        if component.get("disabled"):
            raise FakeDiscordError(
                f"component {custom_id!r} on message {message['id']} is disabled; Discord would "
                "not send the click"
            )
        if int(component.get("type", 0)) == COMPONENT_BUTTON and component.get("style") in (
            BUTTON_STYLE_LINK,
            BUTTON_STYLE_PREMIUM,
        ):
            raise FakeDiscordError(
                f"button {custom_id!r} is a link/premium button; clicking it creates no interaction"
            )
        cid = int(message["channel_id"])
        gid = self.world.guild_id_of(cid)
        uid = sid(user_id)
        resolved = ResolvedBuilder(self.world, gid, cid, uid)
        data = build_component_data(component, values, resolved)
        return await self._dispatch_interaction(
            INTERACTION_MESSAGE_COMPONENT,
            gid,
            cid,
            uid,
            data,
            message=message,
            custom_id=custom_id,
            locale=locale,
        )

    async def select(
        self,
        message_id: IdLike,
        custom_id: str,
        user_id: IdLike,
        values: Sequence[Any],
        *,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """A member chooses ``values`` in a select menu (string values, or ids for user/role/channel
        selects).
        """
        return await self.click(message_id, custom_id, user_id, values=values, locale=locale)

    async def submit_modal(
        self,
        record: InteractionRecord,
        values: Mapping[str, Any],
        user_id: IdLike | None = None,
        *,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """Submit the modal the bot showed in answer to ``record`` (``values``: custom_id → text or
        list).
        """
        if record.modal is None:
            raise FakeDiscordError(f"interaction {record.label} was not answered with a modal")
        payload = record.payload
        cid = int(payload["channel_id"])
        gid = int(payload["guild_id"]) if payload.get("guild_id") else None
        if user_id is None:
            user: JSONDict = (payload.get("member") or {}).get("user") or payload["user"]
            uid = int(user["id"])
        else:
            uid = sid(user_id)
        data: JSONDict = {
            "custom_id": record.modal["custom_id"],
            "components": build_modal_components(record.modal, values),
        }
        message = None
        if payload.get("message"):
            message = self.world.messages.get(int(payload["message"]["id"]))
        return await self._dispatch_interaction(
            INTERACTION_MODAL_SUBMIT,
            gid,
            cid,
            uid,
            data,
            message=message,
            custom_id=str(record.modal["custom_id"]),
            locale=locale,
        )

    def interaction_for_message(self, message_id: IdLike) -> InteractionRecord | None:
        """The interaction whose original response or follow-up is ``message_id``."""
        mid = sid(message_id)
        for rec in self.interactions.values():
            if rec.original_message_id == mid or mid in rec.followup_ids:
                return rec
        return None

    # ------------------------------------------------------------------ rate limits

    def rate_limit_next(
        self,
        method: str,
        path: str,
        retry_after: float = 0.2,
        *,
        count: int = 1,
        is_global: bool = False,
    ) -> RateLimitRule:
        """Answer the next ``count`` requests matching ``method`` and regex ``path`` with a 429.

        ``path`` is ``re.fullmatch``-ed against the API path (e.g. ``/channels/\\d+/messages``).
        """
        rule = RateLimitRule(method.upper(), re.compile(path), retry_after, is_global, count)
        self._rate_limits.append(rule)
        return rule

    def _take_rate_limit(self, method: str, path: str) -> RateLimitRule | None:
        for rule in self._rate_limits:
            if (
                rule.remaining > 0
                and rule.method == method.upper()
                and rule.pattern.fullmatch(path)
            ):
                rule.remaining -= 1
                rule.hits += 1
                if rule.remaining == 0:
                    self._rate_limits.remove(rule)
                return rule
        return None
