"""The fake REST API: the endpoints a text bot uses, with Discord's errors and side effects.

Besides answering, each endpoint does what Discord would do around it:
checks the bot token and channel permissions, validates message payloads,
assigns snowflakes, stores messages so history and later clicks work, and
dispatches the matching gateway event (the bot sees MESSAGE_CREATE for its
own messages, as on Discord).  Requests it does not know are answered 404
and recorded, so a test notices when the bot calls something unexpected.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from . import spec_check
from .command_limits import LimitError, check_command
from .constants import (
    API_PREFIX,
    APPLICATION_ID,
    BOT_USER_ID,
    CALLBACK_AUTOCOMPLETE_RESULT,
    CALLBACK_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_UPDATE_MESSAGE,
    CALLBACK_MODAL,
    CALLBACK_PONG,
    CALLBACK_UPDATE_MESSAGE,
    CHANNEL_DM,
    COMMAND_CHAT_INPUT,
    ERR_ALREADY_ACKNOWLEDGED,
    ERR_CANNOT_EDIT_OTHERS_MESSAGE,
    ERR_GENERAL,
    ERR_INVALID_FORM_BODY,
    ERR_INVALID_WEBHOOK_TOKEN,
    ERR_MISSING_ACCESS,
    ERR_MISSING_PERMISSIONS,
    ERR_UNKNOWN_APPLICATION_COMMAND,
    ERR_UNKNOWN_CHANNEL,
    ERR_UNKNOWN_GUILD,
    ERR_UNKNOWN_INTERACTION,
    ERR_UNKNOWN_MEMBER,
    ERR_UNKNOWN_MESSAGE,
    ERR_UNKNOWN_USER,
    ERR_UNKNOWN_WEBHOOK,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    INTENT_GUILD_MEMBERS,
    INTENT_MESSAGE_CONTENT,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_MESSAGE_COMPONENT,
    INTERACTION_MODAL_SUBMIT,
    INTERACTION_PING,
    INTERACTION_TOKEN_LIFETIME,
    MESSAGE_CHAT_INPUT_COMMAND,
    MESSAGE_CONTEXT_MENU_COMMAND,
    MESSAGE_DEFAULT,
    MESSAGE_REPLY,
    PERM_ATTACH_FILES,
    PERM_MANAGE_MESSAGES,
    PERM_READ_MESSAGE_HISTORY,
    PERM_SEND_MESSAGES,
    PERM_SEND_MESSAGES_IN_THREADS,
    PERM_VIEW_CHANNEL,
    THREAD_CHANNEL_TYPES,
)
from .messaging import apply_mentions, apply_message_data, ensure_not_empty, validate_message_data
from .payloads import JSONDict, rest_message_view, strip_content
from .records import (
    CallbackRecord,
    InteractionRecord,
    MessageEditRecord,
    OutgoingMessage,
    RequestRecord,
    UploadedFile,
)
from .responses import (
    ApiError,
    RuleViolation,
    form_error,
    json_response,
    no_content,
    rate_limited_response,
    rule_violation,
)
from .snowflake import utc_iso_now

if TYPE_CHECKING:
    from .server import FakeDiscord

_log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ALLOWED_CALLBACKS: dict[int, tuple[int, ...]] = {
    INTERACTION_PING: (CALLBACK_PONG,),
    INTERACTION_APPLICATION_COMMAND: (
        CALLBACK_CHANNEL_MESSAGE,
        CALLBACK_DEFERRED_CHANNEL_MESSAGE,
        CALLBACK_MODAL,
    ),
    INTERACTION_MESSAGE_COMPONENT: (
        CALLBACK_CHANNEL_MESSAGE,
        CALLBACK_DEFERRED_CHANNEL_MESSAGE,
        CALLBACK_DEFERRED_UPDATE_MESSAGE,
        CALLBACK_UPDATE_MESSAGE,
        CALLBACK_MODAL,
    ),
    INTERACTION_AUTOCOMPLETE: (CALLBACK_AUTOCOMPLETE_RESULT,),
    INTERACTION_MODAL_SUBMIT: (
        CALLBACK_CHANNEL_MESSAGE,
        CALLBACK_DEFERRED_CHANNEL_MESSAGE,
        CALLBACK_DEFERRED_UPDATE_MESSAGE,
        CALLBACK_UPDATE_MESSAGE,
    ),
}

_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$", re.UNICODE)


class ParsedBody:
    """A request body decoded once by the middleware: JSON (or ``payload_json``) plus uploaded
    files.
    """

    def __init__(self, json_data: Any, files: list[UploadedFile]) -> None:
        self.json = json_data
        self.files = files

    def object(self) -> JSONDict:
        """The JSON body as a dict (empty when absent), rejecting other shapes like Discord."""
        if self.json is None:
            return {}
        if not isinstance(self.json, dict):
            raise ApiError(400, ERR_INVALID_FORM_BODY, "Invalid Form Body")
        return self.json


async def parse_body(request: web.Request) -> ParsedBody:
    """Decode JSON or multipart/form-data (``payload_json`` + ``files[n]``) bodies."""
    if not request.can_read_body:
        return ParsedBody(None, [])
    ctype = request.content_type
    if ctype.startswith("multipart/"):
        reader = await request.multipart()
        payload: Any = None
        files: list[UploadedFile] = []
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader):
                continue
            name = part.name or ""
            raw = await part.read(decode=True)
            if name == "payload_json":
                payload = json.loads(bytes(raw).decode("utf-8"))
            elif part.filename is not None:
                files.append(
                    UploadedFile(
                        field=name,
                        filename=part.filename,
                        content_type=part.headers.get("Content-Type", "application/octet-stream"),
                        data=bytes(raw),
                    )
                )
        return ParsedBody(payload, files)
    text = await request.text()
    if not text:
        return ParsedBody(None, [])
    try:
        return ParsedBody(json.loads(text), [])
    except ValueError:
        raise ApiError(400, ERR_GENERAL, "400: Bad Request") from None


BODY_KEY = web.RequestKey("fake_discord_body", ParsedBody)
RECORD_KEY = web.RequestKey("fake_discord_record", RequestRecord)


def _body(request: web.Request) -> ParsedBody:
    return request[BODY_KEY]


def _int_param(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except (KeyError, ValueError):
        raise ApiError(404, ERR_GENERAL, "404: Not Found") from None


def _query_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise form_error(name, "NUMBER_TYPE_COERCE", f'Value "{raw}" is not snowflake.') from None


class RestApi:
    """Route table and handlers of the fake REST API."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    # -- plumbing ---------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        """Every route, most specific first; a catch-all records unknown ones."""
        p = API_PREFIX
        return [
            web.get(f"{p}/users/@me", self.get_me),
            web.post(f"{p}/users/@me/channels", self.create_dm),
            web.delete(f"{p}/users/@me/guilds/{{guild_id}}", self.leave_guild),
            web.get(f"{p}/users/{{user_id}}", self.get_user),
            web.get(f"{p}/oauth2/applications/@me", self.get_application),
            web.get(f"{p}/applications/@me", self.get_application),
            web.get(f"{p}/gateway", self.get_gateway),
            web.get(f"{p}/gateway/bot", self.get_gateway_bot),
            web.get(f"{p}/applications/{{app_id}}/commands", self.list_commands),
            web.put(f"{p}/applications/{{app_id}}/commands", self.put_commands),
            web.post(f"{p}/applications/{{app_id}}/commands", self.post_command),
            web.get(f"{p}/applications/{{app_id}}/commands/{{command_id}}", self.get_command),
            web.patch(f"{p}/applications/{{app_id}}/commands/{{command_id}}", self.patch_command),
            web.delete(f"{p}/applications/{{app_id}}/commands/{{command_id}}", self.delete_command),
            web.get(
                f"{p}/applications/{{app_id}}/guilds/{{guild_id}}/commands", self.list_commands
            ),
            web.put(f"{p}/applications/{{app_id}}/guilds/{{guild_id}}/commands", self.put_commands),
            web.post(
                f"{p}/applications/{{app_id}}/guilds/{{guild_id}}/commands", self.post_command
            ),
            web.get(
                f"{p}/applications/{{app_id}}/guilds/{{guild_id}}/commands/{{command_id}}",
                self.get_command,
            ),
            web.patch(
                f"{p}/applications/{{app_id}}/guilds/{{guild_id}}/commands/{{command_id}}",
                self.patch_command,
            ),
            web.delete(
                f"{p}/applications/{{app_id}}/guilds/{{guild_id}}/commands/{{command_id}}",
                self.delete_command,
            ),
            web.post(
                f"{p}/interactions/{{interaction_id}}/{{token}}/callback", self.interaction_callback
            ),
            web.post(f"{p}/webhooks/{{app_id}}/{{token}}", self.create_followup),
            web.get(
                f"{p}/webhooks/{{app_id}}/{{token}}/messages/{{message_id}}",
                self.get_webhook_message,
            ),
            web.patch(
                f"{p}/webhooks/{{app_id}}/{{token}}/messages/{{message_id}}",
                self.edit_webhook_message,
            ),
            web.delete(
                f"{p}/webhooks/{{app_id}}/{{token}}/messages/{{message_id}}",
                self.delete_webhook_message,
            ),
            web.get(f"{p}/channels/{{channel_id}}", self.get_channel),
            web.get(f"{p}/channels/{{channel_id}}/messages", self.get_messages),
            web.post(f"{p}/channels/{{channel_id}}/messages", self.create_message),
            web.post(f"{p}/channels/{{channel_id}}/messages/bulk-delete", self.bulk_delete),
            web.get(f"{p}/channels/{{channel_id}}/messages/{{message_id}}", self.get_message),
            web.patch(f"{p}/channels/{{channel_id}}/messages/{{message_id}}", self.edit_message),
            web.delete(f"{p}/channels/{{channel_id}}/messages/{{message_id}}", self.delete_message),
            web.put(
                f"{p}/channels/{{channel_id}}/messages/{{message_id}}/reactions/{{emoji}}/@me",
                self.add_reaction,
            ),
            web.delete(
                f"{p}/channels/{{channel_id}}/messages/{{message_id}}/reactions/{{emoji}}/@me",
                self.remove_reaction,
            ),
            web.post(f"{p}/channels/{{channel_id}}/typing", self.typing),
            web.get(f"{p}/guilds/{{guild_id}}", self.get_guild),
            web.get(f"{p}/guilds/{{guild_id}}/channels", self.get_guild_channels),
            web.get(f"{p}/guilds/{{guild_id}}/roles", self.get_guild_roles),
            web.get(f"{p}/guilds/{{guild_id}}/members", self.list_members),
            web.get(f"{p}/guilds/{{guild_id}}/members/{{user_id}}", self.get_member),
            web.get(
                "/attachments/{channel_id}/{attachment_id}/{filename}", self.download_attachment
            ),
        ]

    def catch_all(self) -> web.RouteDef:
        """Registered last: anything else is a 404 the test can inspect."""
        return web.route("*", "/{tail:.*}", self.unknown_route)

    async def unknown_route(self, request: web.Request) -> web.StreamResponse:
        record: RequestRecord | None = request.get(RECORD_KEY)
        if record is not None:
            record.route_known = False
        _log.warning("fake-discord: unknown route %s %s", request.method, request.path_qs)
        return json_response({"message": "404: Not Found", "code": 0}, status=404)

    def _is_public_path(self, rel: str) -> bool:
        return rel.startswith("/interactions/") or rel.startswith("/webhooks/")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Decode, authenticate, rate-limit, record and render errors for every HTTP request."""
        path = request.path
        is_api = path.startswith(API_PREFIX + "/")
        is_attachment = path.startswith("/attachments/")
        if (
            not is_api
            and not is_attachment
            and request.headers.get("Upgrade", "").lower() == "websocket"
        ):
            return await handler(request)
        fake = self.fake
        loop = asyncio.get_running_loop()
        rel = path[len(API_PREFIX) :] if is_api else path
        auth = request.headers.get("Authorization")
        authorized = auth == f"Bot {fake.token}"
        record = RequestRecord(
            method=request.method,
            path=rel,
            query=dict(request.query),
            json=None,
            files=[],
            at=loop.time(),
            authorized=authorized,
        )
        fake.requests.append(record)
        request[RECORD_KEY] = record
        response: web.StreamResponse
        try:
            body = await parse_body(request)
            record.json = body.json
            record.files = body.files
            request[BODY_KEY] = body
            if is_api and not authorized and (auth is not None or not self._is_public_path(rel)):
                raise ApiError(401, ERR_GENERAL, "401: Unauthorized")
            rule = fake._take_rate_limit(request.method, rel)
            if rule is not None:
                record.rate_limited = True
                response = rate_limited_response(rule.retry_after, is_global=rule.is_global)
            else:
                if is_api:
                    self._check_spec(request, rel, body)
                response = await handler(request)
        except RuleViolation as exc:
            fake.spec_violations.append(f"{request.method} {rel}: {exc.why}")
            _log.warning("fake-discord: refused %s %s: %s", request.method, rel, exc.why)
            response = exc.response()
        except ApiError as exc:
            response = exc.response()
        except web.HTTPException as exc:
            response = json_response({"message": exc.reason, "code": 0}, status=exc.status)
        except Exception as exc:
            # A bug in the fake. Answer 400 rather than 500 so discord.py does not
            # spend ~25 s retrying, and remember it so running_bot fails the test.
            _log.exception("fake-discord: handler for %s %s crashed", request.method, rel)
            fake.internal_errors.append(f"{request.method} {rel}: {exc!r}")
            response = json_response(
                {"message": f"fake-discord internal error: {exc!r}", "code": 0}, status=400
            )
        record.status = response.status
        fake._notify()
        return response

    def _check_spec(self, request: web.Request, rel: str, body: ParsedBody) -> None:
        """Refuse what Discord's OpenAPI spec refuses: unknown routes, bad queries and bodies."""
        template = spec_check.match_route(request.method, rel)
        if template is None:
            record = request.get(RECORD_KEY)
            if record is not None:
                record.route_known = False
            raise RuleViolation(
                404, ERR_GENERAL, "404: Not Found", "no such route in Discord's OpenAPI spec"
            )
        problem = spec_check.check_query(template, request.method, dict(request.query))
        if problem is None:
            problem = spec_check.check_body(template, request.method, body.json)
        if problem is not None:
            raise rule_violation(problem.field, "SPEC_SCHEMA", problem.message)

    # -- helpers --------------------------------------------------------------------------

    def _channel(self, channel_id: int) -> JSONDict:
        channel = self.fake.world.channels.get(channel_id)
        if channel is None:
            raise ApiError(404, ERR_UNKNOWN_CHANNEL, "Unknown Channel")
        return channel

    def _require(self, channel_id: int, needed: int) -> None:
        """403 unless the bot has ``needed`` in the channel (skipped when enforcement is off)."""
        if not self.fake.enforce_permissions:
            return
        channel = self._channel(channel_id)
        if int(channel["type"]) == CHANNEL_DM:
            return
        perms = self.fake.world.channel_permissions(channel_id, BOT_USER_ID)
        if not perms & PERM_VIEW_CHANNEL:
            raise ApiError(403, ERR_MISSING_ACCESS, "Missing Access")
        if perms & needed != needed:
            raise ApiError(403, ERR_MISSING_PERMISSIONS, "Missing Permissions")

    def _send_permission(self, channel: JSONDict) -> int:
        return (
            PERM_SEND_MESSAGES_IN_THREADS
            if int(channel["type"]) in THREAD_CHANNEL_TYPES
            else PERM_SEND_MESSAGES
        )

    def _rest_view(self, message: JSONDict) -> JSONDict:
        """REST shape, blanked like Discord does when the app lacks the approved content intent."""
        view = rest_message_view(message)
        if not self.fake.allowed_privileged_intents & INTENT_MESSAGE_CONTENT and message.get(
            "guild_id"
        ):
            author = str((message.get("author") or {}).get("id"))
            mentioned = {str(u.get("id")) for u in message.get("mentions") or []}
            if author != str(BOT_USER_ID) and str(BOT_USER_ID) not in mentioned:
                view = strip_content(view)
        return view

    def _record_outgoing(
        self,
        kind: str,
        request: web.Request,
        data: JSONDict,
        message: JSONDict | None,
        pings: tuple[list[int], list[int], bool],
    ) -> None:
        loop = asyncio.get_running_loop()
        self.fake.outgoing.append(
            OutgoingMessage(
                kind=kind,
                method=request.method,
                path=request.path[len(API_PREFIX) :],
                data=copy.deepcopy(data),
                message_id=int(message["id"]) if message else None,
                at=loop.time(),
                pinged_users=list(pings[0]),
                pinged_roles=list(pings[1]),
                pinged_everyone=pings[2],
            )
        )

    def _new_bot_message(self, channel_id: int, *, message_type: int = MESSAGE_DEFAULT) -> JSONDict:
        return self.fake.world.build_message(
            channel_id, BOT_USER_ID, "", message_type=message_type, mentions=[]
        )

    # -- users, application, gateway ------------------------------------------------------------

    async def get_me(self, request: web.Request) -> web.StreamResponse:
        return json_response(copy.deepcopy(self.fake.world.bot_user))

    async def get_user(self, request: web.Request) -> web.StreamResponse:
        user = self.fake.world.users.get(_int_param(request, "user_id"))
        if user is None:
            raise ApiError(404, ERR_UNKNOWN_USER, "Unknown User")
        return json_response(copy.deepcopy(user))

    async def create_dm(self, request: web.Request) -> web.StreamResponse:
        data = _body(request).object()
        try:
            uid = int(data["recipient_id"])
        except (KeyError, ValueError, TypeError):
            raise form_error(
                "recipient_id", "BASE_TYPE_REQUIRED", "This field is required"
            ) from None
        if uid not in self.fake.world.users:
            raise ApiError(404, ERR_UNKNOWN_USER, "Unknown User")
        return json_response(copy.deepcopy(self.fake.open_dm(uid)))

    async def leave_guild(self, request: web.Request) -> web.StreamResponse:
        gid = _int_param(request, "guild_id")
        if gid not in self.fake.world.guilds:
            raise ApiError(404, ERR_UNKNOWN_GUILD, "Unknown Guild")
        await self.fake.remove_guild(gid)
        return no_content()

    async def get_application(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.fake._application_payload())

    async def get_gateway(self, request: web.Request) -> web.StreamResponse:
        return json_response({"url": self.fake.gateway_url})

    async def get_gateway_bot(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        shards = fake.recommended_shards or max(1, -(-len(fake.world.guilds) // 1000))
        total = fake.session_start_total
        return json_response(
            {
                "url": fake.gateway_url,
                "shards": shards,
                "session_start_limit": {
                    "total": total,
                    "remaining": max(0, total - fake.gateway.session_starts()),
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    # -- application commands ----------------------------------------------------------------

    def _command_scope(self, request: web.Request) -> int | None:
        if _int_param(request, "app_id") != APPLICATION_ID:
            raise ApiError(403, ERR_MISSING_ACCESS, "Missing Access")
        if "guild_id" not in request.match_info:
            return None
        gid = _int_param(request, "guild_id")
        if gid not in self.fake.world.guilds:
            raise ApiError(403, ERR_MISSING_ACCESS, "Missing Access")
        return gid

    def _validate_command(self, payload: Any, index: int) -> None:
        if not isinstance(payload, dict) or "name" not in payload:
            raise rule_violation(f"{index}.name", "BASE_TYPE_REQUIRED", "This field is required")
        ctype = int(payload.get("type", COMMAND_CHAT_INPUT))
        name = str(payload["name"])
        if ctype == COMMAND_CHAT_INPUT:
            if not _COMMAND_NAME.match(name) or name != name.lower():
                raise rule_violation(
                    f"{index}.name",
                    "APPLICATION_COMMAND_INVALID_NAME",
                    f"Command name is invalid: {name!r}",
                )
            description = str(payload.get("description") or "")
            if not 1 <= len(description) <= 100:
                raise rule_violation(
                    f"{index}.description",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            self._validate_options(payload.get("options") or [], f"{index}.options", depth=0)
        elif not 1 <= len(name) <= 32:
            raise rule_violation(
                f"{index}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length."
            )
        try:
            check_command(payload, str(index))
        except LimitError as exc:
            raise rule_violation(exc.field, exc.code, exc.message) from None

    def _validate_options(self, options: list[Any], where: str, *, depth: int) -> None:
        if len(options) > 25:
            raise rule_violation(where, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        seen_optional = False
        names = set()
        for i, opt in enumerate(options):
            here = f"{where}.{i}"
            name = str(opt.get("name", ""))
            if not _COMMAND_NAME.match(name) or name != name.lower():
                raise rule_violation(
                    f"{here}.name",
                    "APPLICATION_COMMAND_INVALID_NAME",
                    f"Option name is invalid: {name!r}",
                )
            if name in names:
                raise rule_violation(
                    f"{here}.name",
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    "Option names must be unique",
                )
            names.add(name)
            if not 1 <= len(str(opt.get("description") or "")) <= 100:
                raise rule_violation(
                    f"{here}.description",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            otype = int(opt.get("type", 0))
            if otype in (1, 2):
                if depth >= 2 or (otype == 2 and depth >= 1):
                    raise rule_violation(
                        f"{here}.type",
                        "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                        "Subcommands nested too deeply",
                    )
                self._validate_options(opt.get("options") or [], f"{here}.options", depth=depth + 1)
                continue
            if opt.get("required"):
                if seen_optional:
                    raise rule_violation(
                        f"{here}.required",
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
            else:
                seen_optional = True
            choices = opt.get("choices") or []
            if len(choices) > 25:
                raise rule_violation(
                    f"{here}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                )
            if choices and opt.get("autocomplete"):
                raise rule_violation(
                    f"{here}.autocomplete",
                    "APPLICATION_COMMAND_AUTOCOMPLETE_INVALID",
                    "Autocomplete cannot be used with choices",
                )

    async def list_commands(self, request: web.Request) -> web.StreamResponse:
        scope = self._command_scope(request)
        return json_response([copy.deepcopy(c.data) for c in self.fake.world.commands_for(scope)])

    async def put_commands(self, request: web.Request) -> web.StreamResponse:
        scope = self._command_scope(request)
        payload = _body(request).json
        if not isinstance(payload, list):
            raise ApiError(400, ERR_INVALID_FORM_BODY, "Invalid Form Body")
        for i, cmd in enumerate(payload):
            self._validate_command(cmd, i)
        result = self.fake.world.replace_commands(scope, payload)
        self.fake._record_sync(scope, payload)
        return json_response(result)

    async def post_command(self, request: web.Request) -> web.StreamResponse:
        scope = self._command_scope(request)
        payload = _body(request).object()
        self._validate_command(payload, 0)
        result = self.fake.world.upsert_command(scope, payload)
        self.fake._record_sync(scope, [payload], bulk=False)
        return json_response(result, status=201)

    def _scoped_command(self, request: web.Request) -> tuple[int | None, JSONDict]:
        scope = self._command_scope(request)
        cmd = self.fake.world.command_by_id(_int_param(request, "command_id"))
        if cmd is None or cmd.guild_id != scope:
            raise ApiError(404, ERR_UNKNOWN_APPLICATION_COMMAND, "Unknown application command")
        return scope, cmd.data

    async def get_command(self, request: web.Request) -> web.StreamResponse:
        _, data = self._scoped_command(request)
        return json_response(copy.deepcopy(data))

    async def patch_command(self, request: web.Request) -> web.StreamResponse:
        scope, data = self._scoped_command(request)
        merged = copy.deepcopy(data)
        merged.update(_body(request).object())
        self._validate_command(merged, 0)
        result = self.fake.world.upsert_command(scope, merged)
        return json_response(result)

    async def delete_command(self, request: web.Request) -> web.StreamResponse:
        scope, data = self._scoped_command(request)
        table = (
            self.fake.world.global_commands
            if scope is None
            else self.fake.world.guild_commands.get(scope, {})
        )
        table.pop((str(data["name"]), int(data.get("type", 1))), None)
        return no_content()

    # -- interactions ------------------------------------------------------------------------------

    def _interaction(self, interaction_id: int, token: str) -> InteractionRecord:
        rec = self.fake.interactions.get(interaction_id)
        if rec is None or rec.token != token:
            raise ApiError(404, ERR_UNKNOWN_INTERACTION, "Unknown interaction")
        return rec

    def _interaction_by_token(self, request: web.Request) -> InteractionRecord:
        if _int_param(request, "app_id") != APPLICATION_ID:
            raise ApiError(404, ERR_UNKNOWN_WEBHOOK, "Unknown Webhook")
        rec = self.fake._interactions_by_token.get(request.match_info["token"])
        if rec is None:
            raise ApiError(404, ERR_UNKNOWN_WEBHOOK, "Unknown Webhook")
        age = asyncio.get_running_loop().time() - rec.dispatched_at + rec.token_aged_by
        if age > INTERACTION_TOKEN_LIFETIME:
            _log.info("fake-discord: interaction token of %s used after %.0f s", rec.label, age)
            raise ApiError(401, ERR_INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token")
        return rec

    def _interaction_message(self, rec: InteractionRecord, *, original: bool) -> JSONDict:
        """A new message authored by the app in answer to an interaction."""
        itype = rec.type
        if original and itype == INTERACTION_APPLICATION_COMMAND:
            ctype = int((rec.payload.get("data") or {}).get("type", COMMAND_CHAT_INPUT))
            mtype = (
                MESSAGE_CHAT_INPUT_COMMAND
                if ctype == COMMAND_CHAT_INPUT
                else MESSAGE_CONTEXT_MENU_COMMAND
            )
        else:
            mtype = MESSAGE_DEFAULT
        message = self._new_bot_message(int(rec.payload["channel_id"]), message_type=mtype)
        message["webhook_id"] = str(APPLICATION_ID)
        message["application_id"] = str(APPLICATION_ID)
        user = rec.payload.get("member", {}).get("user") or rec.payload.get("user")
        metadata: JSONDict = {
            "id": str(rec.id),
            "type": itype,
            "user": copy.deepcopy(user),
            "authorizing_integration_owners": copy.deepcopy(
                rec.payload.get("authorizing_integration_owners", {})
            ),
        }
        if itype == INTERACTION_APPLICATION_COMMAND:
            metadata["name"] = rec.name
            metadata["command_type"] = int((rec.payload.get("data") or {}).get("type", 1))
        if itype == INTERACTION_MESSAGE_COMPONENT and rec.payload.get("message"):
            metadata["interacted_message_id"] = rec.payload["message"]["id"]
        if not original and rec.original_message_id is not None:
            metadata["original_response_message_id"] = str(rec.original_message_id)
        message["interaction_metadata"] = metadata
        return message

    async def _publish(self, message: JSONDict, *, created: bool) -> None:
        """Dispatch MESSAGE_CREATE/UPDATE for a non-ephemeral bot message (if echo is on)."""
        if int(message.get("flags") or 0) & FLAG_EPHEMERAL:
            return
        if created and not self.fake.echo_bot_messages:
            return
        await self.fake.gateway.dispatch(
            "MESSAGE_CREATE" if created else "MESSAGE_UPDATE", copy.deepcopy(message)
        )

    async def interaction_callback(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        loop = asyncio.get_running_loop()
        now = loop.time()
        rec = self._interaction(_int_param(request, "interaction_id"), request.match_info["token"])
        body = _body(request)
        payload = body.object()
        try:
            ctype = int(payload["type"])
        except (KeyError, ValueError, TypeError):
            raise form_error("type", "BASE_TYPE_REQUIRED", "This field is required") from None
        if rec.acknowledged:
            rec.rejected.append({"reason": "already acknowledged", "type": ctype, "at": now})
            rec._changed()
            raise ApiError(
                400, ERR_ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged."
            )
        deadline = fake.interaction_deadline
        if deadline is not None and now - rec.dispatched_at > deadline:
            rec.rejected.append(
                {
                    "reason": f"answered after {now - rec.dispatched_at:.2f} s (deadline "
                    "{deadline} s)",
                    "type": ctype,
                    "at": now,
                }
            )
            rec._changed()
            raise ApiError(404, ERR_UNKNOWN_INTERACTION, "Unknown interaction")
        if ctype not in _ALLOWED_CALLBACKS.get(rec.type, ()):
            rec.rejected.append(
                {
                    "reason": f"callback type {ctype} invalid for interaction type {rec.type}",
                    "type": ctype,
                    "at": now,
                }
            )
            rec._changed()
            raise form_error(
                "type",
                "INTERACTION_CALLBACK_TYPE_INVALID",
                f"Interaction callback type {ctype} is not valid for interaction type {rec.type}",
            )
        data = payload.get("data")
        if data is not None and not isinstance(data, dict):
            raise form_error(
                "data", "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"
            )
        data = data or {}
        message: JSONDict | None = None
        created = False
        pings: tuple[list[int], list[int], bool] = ([], [], False)
        if ctype in (CALLBACK_CHANNEL_MESSAGE, CALLBACK_UPDATE_MESSAGE):
            validate_message_data(data, body.files)
        if ctype == CALLBACK_CHANNEL_MESSAGE:
            message = self._interaction_message(rec, original=True)
            apply_message_data(fake.world, message, data, body.files, creating=True)
            ensure_not_empty(message)
            pings = apply_mentions(fake.world, message, data.get("allowed_mentions"), None)
            rec.original_message_id = int(message["id"])
            created = True
        elif ctype == CALLBACK_DEFERRED_CHANNEL_MESSAGE:
            message = self._interaction_message(rec, original=True)
            message["flags"] = FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)
            rec.original_message_id = int(message["id"])
            created = True
        elif ctype in (CALLBACK_DEFERRED_UPDATE_MESSAGE, CALLBACK_UPDATE_MESSAGE):
            target = rec.payload.get("message")
            if not target:
                raise ApiError(400, ERR_GENERAL, "Interaction has no message to update")
            message = fake.world.messages.get(int(target["id"]))
            if message is None:
                raise ApiError(404, ERR_UNKNOWN_MESSAGE, "Unknown Message")
            rec.original_message_id = int(message["id"])
            if ctype == CALLBACK_UPDATE_MESSAGE:
                candidate = copy.deepcopy(message)
                apply_message_data(fake.world, candidate, data, body.files, creating=False)
                ensure_not_empty(candidate)
                pings = apply_mentions(fake.world, candidate, data.get("allowed_mentions"), None)
                candidate["edited_timestamp"] = utc_iso_now()
                message.clear()
                message.update(candidate)
            else:
                message = None
        elif ctype == CALLBACK_AUTOCOMPLETE_RESULT:
            choices = data.get("choices")
            if not isinstance(choices, list) or len(choices) > 25:
                raise form_error(
                    "data.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                )
            for i, choice in enumerate(choices):
                if not 1 <= len(str(choice.get("name", ""))) <= 100:
                    raise form_error(
                        f"data.choices.{i}.name",
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 100 in length.",
                    )
            rec.choices = copy.deepcopy(choices)
        elif ctype == CALLBACK_MODAL:
            if not data.get("custom_id") or not data.get("title") or not data.get("components"):
                raise form_error(
                    "data", "BASE_TYPE_REQUIRED", "A modal needs custom_id, title and components"
                )
            if len(str(data["title"])) > 45:
                raise form_error(
                    "data.title", "BASE_TYPE_MAX_LENGTH", "Must be 45 or fewer in length."
                )
            rec.modal = copy.deepcopy(data)
        rec.callback = CallbackRecord(
            type=ctype,
            data=copy.deepcopy(payload.get("data")),
            files=list(body.files),
            at=now,
            latency=now - rec.dispatched_at,
        )
        if message is not None:
            if created:
                fake.world.store_message(message)
            rec.latest_message_id = int(message["id"])
        if ctype in (CALLBACK_CHANNEL_MESSAGE, CALLBACK_UPDATE_MESSAGE):
            self._record_outgoing("interaction_callback", request, data, message, pings)
        rec._changed()
        fake._notify()
        if message is not None and ctype != CALLBACK_DEFERRED_UPDATE_MESSAGE:
            await self._publish(message, created=created)
        ephemeral = bool(message and int(message.get("flags") or 0) & FLAG_EPHEMERAL)
        response: JSONDict = {
            "interaction": {
                "id": str(rec.id),
                "type": rec.type,
                "activity_instance_id": None,
                "response_message_id": str(rec.original_message_id)
                if message is not None
                else None,
                "response_message_loading": ctype == CALLBACK_DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": ephemeral,
            },
            "resource": {"type": ctype},
        }
        if message is not None:
            response["resource"]["message"] = rest_message_view(message)
        return json_response(response)

    async def create_followup(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        rec = self._interaction_by_token(request)
        if not rec.acknowledged:
            raise ApiError(404, ERR_UNKNOWN_WEBHOOK, "Unknown Webhook")
        body = _body(request)
        data = body.object()
        validate_message_data(data, body.files)
        original = rec.original
        if original is not None and int(original.get("flags") or 0) & FLAG_LOADING:
            # The first follow-up after a "thinking" defer replaces the placeholder.
            message = original
            candidate = copy.deepcopy(message)
            data_no_flags = {k: v for k, v in data.items() if k != "flags"}
            apply_message_data(fake.world, candidate, data_no_flags, body.files, creating=True)
            candidate["flags"] = int(candidate.get("flags") or 0) & ~FLAG_LOADING
            ensure_not_empty(candidate)
            pings = apply_mentions(fake.world, candidate, data.get("allowed_mentions"), None)
            message.clear()
            message.update(candidate)
            created = False
        else:
            message = self._interaction_message(rec, original=False)
            apply_message_data(fake.world, message, data, body.files, creating=True)
            ensure_not_empty(message)
            pings = apply_mentions(fake.world, message, data.get("allowed_mentions"), None)
            fake.world.store_message(message)
            created = True
        rec.followup_ids.append(int(message["id"]))
        rec.latest_message_id = int(message["id"])
        self._record_outgoing("followup", request, data, message, pings)
        rec._changed()
        fake._notify()
        await self._publish(message, created=created)
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(rest_message_view(message))
        return no_content()

    def _webhook_target(self, request: web.Request, rec: InteractionRecord) -> JSONDict:
        raw = request.match_info["message_id"]
        if raw == "@original":
            mid = rec.original_message_id
        else:
            try:
                mid = int(raw)
            except ValueError:
                raise ApiError(404, ERR_UNKNOWN_MESSAGE, "Unknown Message") from None
            if mid != rec.original_message_id and mid not in rec.followup_ids:
                mid = None
        message = self.fake.world.messages.get(mid) if mid is not None else None
        if message is None:
            raise ApiError(404, ERR_UNKNOWN_MESSAGE, "Unknown Message")
        return message

    async def get_webhook_message(self, request: web.Request) -> web.StreamResponse:
        rec = self._interaction_by_token(request)
        return json_response(rest_message_view(self._webhook_target(request, rec)))

    async def edit_webhook_message(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        loop = asyncio.get_running_loop()
        rec = self._interaction_by_token(request)
        message = self._webhook_target(request, rec)
        body = _body(request)
        data = body.object()
        validate_message_data(data, body.files)
        was_loading = bool(int(message.get("flags") or 0) & FLAG_LOADING)
        candidate = copy.deepcopy(message)
        apply_message_data(fake.world, candidate, data, body.files, creating=False)
        candidate["flags"] = int(candidate.get("flags") or 0) & ~FLAG_LOADING
        ensure_not_empty(candidate)
        pings = apply_mentions(fake.world, candidate, data.get("allowed_mentions"), None)
        if not was_loading:
            candidate["edited_timestamp"] = utc_iso_now()
        message.clear()
        message.update(candidate)
        mid = int(message["id"])
        rec.edits.append(
            MessageEditRecord(
                message_id=mid,
                data=copy.deepcopy(data),
                files=list(body.files),
                at=loop.time(),
                original=mid == rec.original_message_id,
            )
        )
        rec.latest_message_id = mid
        self._record_outgoing("webhook_edit", request, data, message, pings)
        rec._changed()
        fake._notify()
        await self._publish(message, created=False)
        return json_response(rest_message_view(message))

    async def delete_webhook_message(self, request: web.Request) -> web.StreamResponse:
        rec = self._interaction_by_token(request)
        message = self._webhook_target(request, rec)
        mid = int(message["id"])
        self.fake.world.delete_message(mid)
        rec.deleted_ids.append(mid)
        rec._changed()
        if not int(message.get("flags") or 0) & FLAG_EPHEMERAL:
            await self.fake.gateway.dispatch("MESSAGE_DELETE", self.fake._delete_payload(message))
        return no_content()

    # -- channels & messages --------------------------------------------------------------------

    async def get_channel(self, request: web.Request) -> web.StreamResponse:
        channel = self._channel(_int_param(request, "channel_id"))
        self._require(int(channel["id"]), 0)
        return json_response(copy.deepcopy(channel))

    async def get_messages(self, request: web.Request) -> web.StreamResponse:
        cid = _int_param(request, "channel_id")
        self._channel(cid)
        self._require(cid, PERM_READ_MESSAGE_HISTORY)
        raw_limit = request.query.get("limit", "50")
        try:
            limit = int(raw_limit)
        except ValueError:
            raise form_error(
                "limit", "NUMBER_TYPE_COERCE", f'Value "{raw_limit}" is not int.'
            ) from None
        if not 1 <= limit <= 100:
            raise form_error("limit", "NUMBER_TYPE_MAX", "int value should be between 1 and 100")
        page = self.fake.world.history_page(
            cid,
            limit=limit,
            before=_query_int(request, "before"),
            after=_query_int(request, "after"),
            around=_query_int(request, "around"),
        )
        return json_response([self._rest_view(m) for m in page])

    def _channel_message(self, request: web.Request) -> tuple[int, JSONDict]:
        cid = _int_param(request, "channel_id")
        self._channel(cid)
        message = self.fake.world.messages.get(_int_param(request, "message_id"))
        if (
            message is None
            or int(message["channel_id"]) != cid
            or int(message.get("flags") or 0) & FLAG_EPHEMERAL
        ):
            raise ApiError(404, ERR_UNKNOWN_MESSAGE, "Unknown Message")
        return cid, message

    async def get_message(self, request: web.Request) -> web.StreamResponse:
        cid, message = self._channel_message(request)
        self._require(cid, PERM_READ_MESSAGE_HISTORY)
        return json_response(self._rest_view(message))

    async def create_message(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        cid = _int_param(request, "channel_id")
        channel = self._channel(cid)
        body = _body(request)
        data = body.object()
        needed = self._send_permission(channel) | (PERM_ATTACH_FILES if body.files else 0)
        self._require(cid, needed)
        validate_message_data(data, body.files)
        replied_author: int | None = None
        referenced: JSONDict | None = None
        ref = data.get("message_reference")
        if (
            isinstance(ref, dict)
            and ref.get("message_id") is not None
            and int(ref.get("type", 0) or 0) == 0
        ):
            referenced = fake.world.messages.get(int(ref["message_id"]))
            if referenced is None or int(referenced["channel_id"]) != int(
                ref.get("channel_id") or cid
            ):
                if ref.get("fail_if_not_exists", True):
                    raise form_error(
                        "message_reference", "REPLIES_UNKNOWN_MESSAGE", "Unknown message"
                    )
                referenced = None
        message = self._new_bot_message(
            cid, message_type=MESSAGE_REPLY if referenced is not None else MESSAGE_DEFAULT
        )
        apply_message_data(fake.world, message, data, body.files, creating=True)
        ensure_not_empty(message)
        if referenced is not None:
            message["message_reference"] = {
                "type": 0,
                "message_id": referenced["id"],
                "channel_id": referenced["channel_id"],
            }
            if referenced.get("guild_id"):
                message["message_reference"]["guild_id"] = referenced["guild_id"]
            message["referenced_message"] = rest_message_view(referenced)
            if not referenced.get("webhook_id"):
                replied_author = int(referenced["author"]["id"])
        pings = apply_mentions(fake.world, message, data.get("allowed_mentions"), replied_author)
        if data.get("nonce") is not None:
            message["nonce"] = data["nonce"]
        fake.world.store_message(message)
        self._record_outgoing("channel_message", request, data, message, pings)
        fake._notify()
        await self._publish(message, created=True)
        return json_response(rest_message_view(message))

    async def edit_message(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        cid, message = self._channel_message(request)
        body = _body(request)
        data = body.object()
        if str(message["author"]["id"]) != str(BOT_USER_ID):
            if set(data) - {"flags"}:
                raise ApiError(
                    403,
                    ERR_CANNOT_EDIT_OTHERS_MESSAGE,
                    "Cannot edit a message authored by another user",
                )
            self._require(cid, PERM_MANAGE_MESSAGES)
        else:
            self._require(cid, 0)  # even its own message: not without access to the channel
        validate_message_data(data, body.files)
        candidate = copy.deepcopy(message)
        apply_message_data(fake.world, candidate, data, body.files, creating=False)
        ensure_not_empty(candidate)
        replied = None
        ref_msg = candidate.get("referenced_message")
        if isinstance(ref_msg, dict) and not ref_msg.get("webhook_id"):
            replied = int(ref_msg["author"]["id"])
        pings = (
            apply_mentions(fake.world, candidate, data.get("allowed_mentions"), replied)
            if "content" in data
            else ([], [], False)
        )
        candidate["edited_timestamp"] = utc_iso_now()
        message.clear()
        message.update(candidate)
        self._record_outgoing("channel_edit", request, data, message, pings)
        fake._notify()
        await self._publish(message, created=False)
        return json_response(rest_message_view(message))

    async def delete_message(self, request: web.Request) -> web.StreamResponse:
        cid, message = self._channel_message(request)
        if str(message["author"]["id"]) != str(BOT_USER_ID):
            self._require(cid, PERM_MANAGE_MESSAGES)
        self.fake.world.delete_message(int(message["id"]))
        await self.fake.gateway.dispatch("MESSAGE_DELETE", self.fake._delete_payload(message))
        return no_content()

    async def bulk_delete(self, request: web.Request) -> web.StreamResponse:
        cid = _int_param(request, "channel_id")
        self._channel(cid)
        self._require(cid, PERM_MANAGE_MESSAGES)
        ids = _body(request).object().get("messages")
        if not isinstance(ids, list) or not 2 <= len(ids) <= 100:
            raise form_error(
                "messages", "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 100 in length."
            )
        deleted = []
        for raw in ids:
            msg = self.fake.world.messages.get(int(raw))
            if msg is not None and int(msg["channel_id"]) == cid:
                self.fake.world.delete_message(int(raw))
                deleted.append(str(raw))
        payload: JSONDict = {"ids": deleted, "channel_id": str(cid)}
        gid = self.fake.world.guild_id_of(cid)
        if gid is not None:
            payload["guild_id"] = str(gid)
        await self.fake.gateway.dispatch("MESSAGE_DELETE_BULK", payload)
        return no_content()

    @staticmethod
    def _emoji_matches(reaction: JSONDict, name: str, ident: str | None) -> bool:
        emoji = reaction.get("emoji") or {}
        return emoji.get("name") == name and emoji.get("id") == ident

    async def add_reaction(self, request: web.Request) -> web.StreamResponse:
        cid, message = self._channel_message(request)
        self._require(cid, PERM_READ_MESSAGE_HISTORY)
        name, _, raw_id = request.match_info["emoji"].partition(":")
        ident = raw_id or None
        reactions: list[JSONDict] = message.setdefault("reactions", [])
        for reaction in reactions:
            if self._emoji_matches(reaction, name, ident):
                if not reaction["me"]:
                    reaction["me"] = True
                    reaction["count"] += 1
                break
        else:
            reactions.append({"count": 1, "me": True, "emoji": {"id": ident, "name": name}})
        return no_content()

    async def remove_reaction(self, request: web.Request) -> web.StreamResponse:
        _, message = self._channel_message(request)
        name, _, raw_id = request.match_info["emoji"].partition(":")
        message["reactions"] = [
            r
            for r in message.get("reactions") or []
            if not self._emoji_matches(r, name, raw_id or None)
        ]
        return no_content()

    async def typing(self, request: web.Request) -> web.StreamResponse:
        cid = _int_param(request, "channel_id")
        self._channel(cid)
        return no_content()

    # -- guilds ------------------------------------------------------------------------------------

    def _guild(self, request: web.Request) -> Any:
        gid = _int_param(request, "guild_id")
        state = self.fake.world.guilds.get(gid)
        if state is None:
            raise ApiError(404, ERR_UNKNOWN_GUILD, "Unknown Guild")
        return state

    async def get_guild(self, request: web.Request) -> web.StreamResponse:
        state = self._guild(request)
        data = copy.deepcopy(state.data)
        data["roles"] = copy.deepcopy(list(state.roles.values()))
        if request.query.get("with_counts") in ("1", "true", "True"):
            data["approximate_member_count"] = len(state.members)
            data["approximate_presence_count"] = 0
        return json_response(data)

    async def get_guild_channels(self, request: web.Request) -> web.StreamResponse:
        state = self._guild(request)
        world = self.fake.world
        return json_response(
            [
                copy.deepcopy(world.channels[c])
                for c in state.channel_ids
                if int(world.channels[c]["type"]) not in THREAD_CHANNEL_TYPES
            ]
        )

    async def get_guild_roles(self, request: web.Request) -> web.StreamResponse:
        state = self._guild(request)
        return json_response(copy.deepcopy(list(state.roles.values())))

    async def get_member(self, request: web.Request) -> web.StreamResponse:
        state = self._guild(request)
        member = state.members.get(_int_param(request, "user_id"))
        if member is None:
            raise ApiError(404, ERR_UNKNOWN_MEMBER, "Unknown Member")
        return json_response(copy.deepcopy(member))

    async def list_members(self, request: web.Request) -> web.StreamResponse:
        state = self._guild(request)
        if not self.fake.allowed_privileged_intents & INTENT_GUILD_MEMBERS:
            raise ApiError(403, ERR_MISSING_ACCESS, "Missing Access")
        limit = int(request.query.get("limit", "1"))
        after = _query_int(request, "after") or 0
        members = sorted(
            (m for uid, m in state.members.items() if uid > after),
            key=lambda m: int(m["user"]["id"]),
        )
        return json_response(copy.deepcopy(members[:limit]))

    # -- files -------------------------------------------------------------------------------------

    async def download_attachment(self, request: web.Request) -> web.StreamResponse:
        att = self.fake.world.attachments.get(_int_param(request, "attachment_id"))
        if att is None or str(att.channel_id) != request.match_info["channel_id"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=att.data, headers={"Content-Type": att.content_type})
