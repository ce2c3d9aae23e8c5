"""Building INTERACTION_CREATE payloads the way Discord's client would produce them.

Option values are typed from the commands the bot itself registered, so a
test that passes ``{"order": 2}`` to a command whose option is a NUMBER sends
``2.0`` typed 10, exactly like Discord; and options Discord would refuse
(unknown names, missing required ones, out-of-range numbers, wrong channel
types, values not among the choices) fail in the test with a readable message
instead of reaching the bot in a shape Discord never sends.
"""

from __future__ import annotations

import copy
import dataclasses
import mimetypes
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from .constants import (
    APPLICATION_ID,
    BOT_USER_ID,
    COMPONENT_ACTION_ROW,
    COMPONENT_CHANNEL_SELECT,
    COMPONENT_LABEL,
    COMPONENT_MENTIONABLE_SELECT,
    COMPONENT_ROLE_SELECT,
    COMPONENT_STRING_SELECT,
    COMPONENT_TEXT_INPUT,
    COMPONENT_USER_SELECT,
    DEFAULT_ATTACHMENT_SIZE_LIMIT,
    OPTION_ATTACHMENT,
    OPTION_BOOLEAN,
    OPTION_CHANNEL,
    OPTION_INTEGER,
    OPTION_MENTIONABLE,
    OPTION_NUMBER,
    OPTION_ROLE,
    OPTION_STRING,
    OPTION_SUB_COMMAND,
    OPTION_SUB_COMMAND_GROUP,
    OPTION_USER,
    SELECT_COMPONENT_TYPES,
    THREAD_CHANNEL_TYPES,
)
from .payloads import (
    JSONDict,
    StoredAttachment,
    iter_components,
    partial_member,
    rest_message_view,
    sid,
)
from .records import FakeDiscordError
from .world import RegisteredCommand, World

_OPTION_TYPE_NAMES = {
    1: "SUB_COMMAND",
    2: "SUB_COMMAND_GROUP",
    3: "STRING",
    4: "INTEGER",
    5: "BOOLEAN",
    6: "USER",
    7: "CHANNEL",
    8: "ROLE",
    9: "MENTIONABLE",
    10: "NUMBER",
    11: "ATTACHMENT",
}


@dataclasses.dataclass
class FileInput:
    """A file a test hands to an ATTACHMENT option (the fake stores and serves it)."""

    filename: str
    data: bytes
    content_type: str | None = None
    description: str | None = None


def fake_file(filename: str, data: bytes | str, content_type: str | None = None) -> FileInput:
    """Convenience constructor for :class:`FileInput` (``str`` data is UTF-8 encoded)."""
    raw = data.encode() if isinstance(data, str) else data
    return FileInput(filename, raw, content_type)


def new_token() -> str:
    """An interaction token: URL-safe so it can sit in a path unescaped."""
    return "fake_itok_" + secrets.token_urlsafe(32)


class ResolvedBuilder:
    """Accumulates ``data.resolved`` while options or select values are converted."""

    def __init__(self, world: World, guild_id: int | None, channel_id: int, user_id: int) -> None:
        self.world = world
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.user_id = user_id
        self.data: dict[str, dict[str, JSONDict]] = {}

    def user(self, uid: int) -> None:
        user = self.world.user(uid)
        self.data.setdefault("users", {})[str(uid)] = copy.deepcopy(user)
        if self.guild_id is not None:
            member = self.world.guilds[self.guild_id].members.get(uid)
            if member is not None:
                entry = partial_member(member)
                entry["permissions"] = str(self.world.channel_permissions(self.channel_id, uid))
                self.data.setdefault("members", {})[str(uid)] = entry

    def role(self, rid: int) -> None:
        if self.guild_id is None or rid not in self.world.guilds[self.guild_id].roles:
            raise FakeDiscordError(f"role {rid} is not in guild {self.guild_id}")
        self.data.setdefault("roles", {})[str(rid)] = copy.deepcopy(
            self.world.guilds[self.guild_id].roles[rid]
        )

    def channel(self, cid: int) -> JSONDict:
        channel = self.world.channel(cid)
        if self.guild_id is not None and channel.get("guild_id") != str(self.guild_id):
            raise FakeDiscordError(f"channel {cid} is not in guild {self.guild_id}")
        entry = {
            k: copy.deepcopy(v)
            for k, v in channel.items()
            if k
            in (
                "id",
                "name",
                "type",
                "parent_id",
                "guild_id",
                "topic",
                "nsfw",
                "position",
                "last_message_id",
                "rate_limit_per_user",
                "flags",
                "thread_metadata",
                "owner_id",
                "member_count",
                "message_count",
                "total_message_sent",
                "applied_tags",
            )
        }
        entry["permissions"] = str(self.world.channel_permissions(cid, self.user_id))
        self.data.setdefault("channels", {})[str(cid)] = entry
        return channel

    def attachment(self, value: Any) -> int:
        if isinstance(value, StoredAttachment):
            stored = value
        else:
            if isinstance(value, FileInput):
                spec = value
            elif isinstance(value, (bytes, bytearray)):
                spec = FileInput("file.bin", bytes(value))
            elif isinstance(value, tuple) and 2 <= len(value) <= 3:
                spec = FileInput(
                    str(value[0]), bytes(value[1]), value[2] if len(value) == 3 else None
                )
            else:
                raise FakeDiscordError(
                    "an ATTACHMENT option takes fake_file(name, data), bytes or "
                    f"(filename, data[, content_type]); got {value!r}"
                )
            ctype = (
                spec.content_type
                or mimetypes.guess_type(spec.filename)[0]
                or "application/octet-stream"
            )
            stored = self.world.add_attachment(
                self.channel_id,
                spec.filename,
                spec.data,
                ctype,
                description=spec.description,
                ephemeral=True,
            )
        self.data.setdefault("attachments", {})[str(stored.id)] = stored.payload()
        return stored.id

    def message(self, mid: int) -> None:
        msg = self.world.messages.get(mid)
        if msg is None:
            raise FakeDiscordError(f"unknown message {mid}")
        self.data.setdefault("messages", {})[str(mid)] = rest_message_view(msg)


def _describe(options: Sequence[JSONDict]) -> str:
    return (
        ", ".join(
            f"{o['name']}:{_OPTION_TYPE_NAMES.get(int(o['type']), o['type'])}" for o in options
        )
        or "(none)"
    )


def _convert_value(opt: JSONDict, value: Any, resolved: ResolvedBuilder, *, cmd_label: str) -> Any:
    """Type and validate one option value as Discord's client would."""
    otype = int(opt["type"])
    name = opt["name"]
    where = f"option {name!r} of {cmd_label}"
    if otype == OPTION_STRING:
        if not isinstance(value, str):
            raise FakeDiscordError(f"{where} is a STRING; got {value!r}")
        if "min_length" in opt and len(value) < int(opt["min_length"]):
            raise FakeDiscordError(
                f"{where} must be at least {opt['min_length']} characters (Discord enforces this)"
            )
        if "max_length" in opt and len(value) > int(opt["max_length"]):
            raise FakeDiscordError(
                f"{where} must be at most {opt['max_length']} characters (Discord enforces this)"
            )
        converted: Any = value
    elif otype == OPTION_INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FakeDiscordError(f"{where} is an INTEGER; got {value!r}")
        converted = value
    elif otype == OPTION_NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FakeDiscordError(f"{where} is a NUMBER; got {value!r}")
        converted = float(value)
    elif otype == OPTION_BOOLEAN:
        if not isinstance(value, bool):
            raise FakeDiscordError(f"{where} is a BOOLEAN; got {value!r}")
        converted = value
    elif otype == OPTION_USER:
        uid = sid(value)
        resolved.user(uid)
        converted = str(uid)
    elif otype == OPTION_CHANNEL:
        cid = sid(value)
        channel = resolved.channel(cid)
        allowed_types = opt.get("channel_types")
        if allowed_types and int(channel["type"]) not in [int(t) for t in allowed_types]:
            raise FakeDiscordError(
                f"{where} only accepts channel types {allowed_types}; channel {cid} has type "
                f"{channel['type']}"
            )
        converted = str(cid)
    elif otype == OPTION_ROLE:
        rid = sid(value)
        resolved.role(rid)
        converted = str(rid)
    elif otype == OPTION_MENTIONABLE:
        mid = sid(value)
        if mid in resolved.world.users:
            resolved.user(mid)
        else:
            resolved.role(mid)
        converted = str(mid)
    elif otype == OPTION_ATTACHMENT:
        converted = str(resolved.attachment(value))
    else:
        raise FakeDiscordError(f"{where} has unsupported type {otype}")
    if otype in (OPTION_INTEGER, OPTION_NUMBER):
        if "min_value" in opt and converted < opt["min_value"]:
            raise FakeDiscordError(
                f"{where} must be >= {opt['min_value']} (Discord enforces this); got {converted}"
            )
        if "max_value" in opt and converted > opt["max_value"]:
            raise FakeDiscordError(
                f"{where} must be <= {opt['max_value']} (Discord enforces this); got {converted}"
            )
    choices = opt.get("choices")
    if choices:
        values = [c["value"] for c in choices]
        if converted not in values:
            raise FakeDiscordError(f"{where} only accepts the choices {values}; got {converted!r}")
    return converted


def build_command_options(
    command: RegisteredCommand,
    path: Sequence[str],
    options: Mapping[str, Any],
    resolved: ResolvedBuilder,
    *,
    focused: str | None = None,
    focused_value: str = "",
) -> tuple[list[JSONDict], JSONDict]:
    """Nest ``options`` under the subcommand ``path`` in Discord's format.

    Returns the top-level ``data.options`` and the leaf option definitions'
    owner (the command or subcommand dict) for callers that need it.
    """
    label = "/" + " ".join([command.name, *path])
    definitions: list[JSONDict] = list(command.data.get("options") or [])
    chain: list[JSONDict] = []
    for part in path:
        match = next(
            (
                o
                for o in definitions
                if o["name"] == part
                and int(o["type"]) in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP)
            ),
            None,
        )
        if match is None:
            subs = [
                o["name"]
                for o in definitions
                if int(o["type"]) in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP)
            ]
            raise FakeDiscordError(
                f"{label}: {part!r} is not a registered subcommand; available: {subs or '(none)'}"
            )
        chain.append(match)
        definitions = list(match.get("options") or [])
    if any(int(o["type"]) in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP) for o in definitions):
        subs = [o["name"] for o in definitions]
        raise FakeDiscordError(
            f"{label} has subcommands; invoke one of {subs} (e.g. name='{label[1:]} {subs[0]}')"
        )
    known = {o["name"]: o for o in definitions}
    unknown = [k for k in options if k not in known and k != focused]
    if focused is not None and focused not in known:
        unknown.append(focused)
    if unknown:
        raise FakeDiscordError(
            f"{label} has no option(s) {unknown}; registered options: {_describe(definitions)}"
        )
    leaf: list[JSONDict] = []
    for definition in definitions:
        oname = definition["name"]
        if oname == focused:
            if not definition.get("autocomplete"):
                raise FakeDiscordError(
                    f"option {oname!r} of {label} was not registered with autocomplete"
                )
            leaf.append(
                {
                    "type": int(definition["type"]),
                    "name": oname,
                    "value": focused_value,
                    "focused": True,
                }
            )
            continue
        if oname not in options:
            if definition.get("required") and focused is None:
                raise FakeDiscordError(
                    f"{label} requires option {oname!r} (Discord will not send the command "
                    "without it)"
                )
            continue
        value = _convert_value(definition, options[oname], resolved, cmd_label=label)
        leaf.append({"type": int(definition["type"]), "name": oname, "value": value})
    nested: list[JSONDict] = leaf
    for sub in reversed(chain):
        nested = [{"type": int(sub["type"]), "name": sub["name"], "options": nested}]
    return nested, command.data


def interaction_channel(world: World, channel_id: int, user_id: int) -> JSONDict:
    """The ``channel`` object of an interaction: the channel plus the user's ``permissions`` in
    it.
    """
    channel = copy.deepcopy(world.channel(channel_id))
    channel["permissions"] = str(world.channel_permissions(channel_id, user_id))
    return channel


def base_interaction_payload(
    world: World,
    *,
    interaction_id: int,
    interaction_type: int,
    token: str,
    guild_id: int | None,
    channel_id: int,
    user_id: int,
    data: JSONDict | None,
    message: JSONDict | None = None,
    locale: str = "en-US",
) -> JSONDict:
    """Everything discord.py 2.7 reads from INTERACTION_CREATE, for a guild or DM interaction."""
    payload: JSONDict = {
        "id": str(interaction_id),
        "application_id": str(APPLICATION_ID),
        "type": interaction_type,
        "token": token,
        "version": 1,
        "channel_id": str(channel_id),
        "channel": interaction_channel(world, channel_id, user_id),
        "locale": locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": DEFAULT_ATTACHMENT_SIZE_LIMIT,
    }
    if guild_id is not None:
        state = world.guild(guild_id)
        member = world.member(guild_id, user_id)
        member_data = copy.deepcopy(member)
        member_data["permissions"] = str(world.channel_permissions(channel_id, user_id))
        payload.update(
            {
                "guild_id": str(guild_id),
                "guild": {
                    "id": str(guild_id),
                    "locale": state.data.get("preferred_locale", "en-US"),
                    "features": list(state.data.get("features") or []),
                },
                "guild_locale": state.data.get("preferred_locale", "en-US"),
                "member": member_data,
                "app_permissions": str(world.channel_permissions(channel_id, BOT_USER_ID)),
                "authorizing_integration_owners": {"0": str(guild_id)},
                "context": 0,
            }
        )
    else:
        payload.update(
            {
                "user": copy.deepcopy(world.user(user_id)),
                "app_permissions": "0",
                "authorizing_integration_owners": {"0": "0"},
                "context": 1,
            }
        )
    if data is not None:
        payload["data"] = data
    if message is not None:
        payload["message"] = rest_message_view(message)
    return payload


def find_component(message: JSONDict, custom_id: str) -> JSONDict | None:
    """The component with ``custom_id`` in a message, wherever it is nested."""
    for comp in iter_components(message.get("components") or []):
        if comp.get("custom_id") == custom_id:
            return comp
    return None


def build_component_data(
    component: JSONDict, values: Sequence[Any] | None, resolved: ResolvedBuilder
) -> JSONDict:
    """``data`` for a MESSAGE_COMPONENT interaction (button press or select choice)."""
    ctype = int(component["type"])
    data: JSONDict = {"custom_id": component["custom_id"], "component_type": ctype}
    if "id" in component:
        data["id"] = component["id"]
    if ctype not in SELECT_COMPONENT_TYPES:
        if values is not None:
            raise FakeDiscordError(
                f"component {component['custom_id']!r} is a button; it takes no values"
            )
        return data
    chosen = list(values or [])
    lo = int(component.get("min_values", 1))
    hi = int(component.get("max_values", 1))
    if not lo <= len(chosen) <= hi:
        raise FakeDiscordError(
            f"select {component['custom_id']!r} needs between {lo} and {hi} values; got "
            f"{len(chosen)}"
        )
    if ctype == COMPONENT_STRING_SELECT:
        allowed = [o["value"] for o in component.get("options") or []]
        bad = [v for v in chosen if v not in allowed]
        if bad:
            raise FakeDiscordError(
                f"select {component['custom_id']!r} has no option(s) {bad}; options: {allowed}"
            )
        data["values"] = [str(v) for v in chosen]
        return data
    ids = [sid(v) for v in chosen]
    for ident in ids:
        if ctype == COMPONENT_USER_SELECT:
            resolved.user(ident)
        elif ctype == COMPONENT_ROLE_SELECT:
            resolved.role(ident)
        elif ctype == COMPONENT_CHANNEL_SELECT:
            resolved.channel(ident)
        elif ctype == COMPONENT_MENTIONABLE_SELECT:
            if ident in resolved.world.users:
                resolved.user(ident)
            else:
                resolved.role(ident)
    data["values"] = [str(i) for i in ids]
    if resolved.data:
        data["resolved"] = resolved.data
    return data


def build_modal_components(modal: JSONDict, values: Mapping[str, Any]) -> list[JSONDict]:
    """Submitted ``components`` mirroring the modal's layout (action rows or labels)."""
    inputs: dict[str, JSONDict] = {}

    def submitted(comp: JSONDict) -> JSONDict | None:
        ctype = int(comp.get("type", 0))
        custom_id = comp.get("custom_id")
        if custom_id is None:
            return None
        inputs[custom_id] = comp
        if ctype == COMPONENT_TEXT_INPUT:
            value = values.get(custom_id, comp.get("value") or "")
            if comp.get("required", True) and not value:
                raise FakeDiscordError(f"modal text input {custom_id!r} is required")
            return {
                "type": ctype,
                "id": comp.get("id", 0),
                "custom_id": custom_id,
                "value": str(value),
            }
        if ctype in SELECT_COMPONENT_TYPES:
            chosen = values.get(custom_id, [])
            return {
                "type": ctype,
                "id": comp.get("id", 0),
                "custom_id": custom_id,
                "values": [str(v) for v in chosen],
            }
        return None

    out: list[JSONDict] = []
    for top in modal.get("components") or []:
        ttype = int(top.get("type", 0))
        if ttype == COMPONENT_ACTION_ROW:
            row = [s for c in top.get("components") or [] if (s := submitted(c)) is not None]
            out.append({"type": COMPONENT_ACTION_ROW, "components": row})
        elif ttype == COMPONENT_LABEL and isinstance(top.get("component"), dict):
            inner = submitted(top["component"])
            if inner is not None:
                out.append({"type": COMPONENT_LABEL, "id": top.get("id", 0), "component": inner})
    unknown = [k for k in values if k not in inputs]
    if unknown:
        raise FakeDiscordError(
            f"modal {modal.get('custom_id')!r} has no input(s) {unknown}; inputs: {list(inputs)}"
        )
    return out


def split_qualified_name(name: str, subcommand: str | None) -> tuple[str, list[str]]:
    """``"markov-admin listen"`` (or name + subcommand) → (``"markov-admin"``, ``["listen"]``)."""
    parts = name.lstrip("/").split()
    if subcommand:
        parts.extend(subcommand.split())
    if not parts:
        raise FakeDiscordError("empty command name")
    return parts[0], parts[1:]


def is_thread(channel: JSONDict) -> bool:
    """Whether a channel payload is a thread."""
    return int(channel["type"]) in THREAD_CHANNEL_TYPES
