"""Builders for Discord JSON objects (users, roles, channels, messages...).

Each builder emits the fields discord.py 2.7 reads without a default (for
example ``member.flags``, ``thread.thread_metadata``, ``attachment.proxy_url``)
plus the common optional ones, with string ids as on the wire.  Keeping
them in one place lets the world model, the gateway and the REST layer agree
on shapes.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .constants import (
    CHANNEL_GUILD_TEXT,
    CHANNEL_PUBLIC_THREAD,
    MESSAGE_DEFAULT,
)
from .snowflake import iso_timestamp

JSONDict = dict[str, Any]


def sid(value: Any) -> int:
    """Normalise an id given as int, str, payload dict or object with ``.id`` to ``int``.

    Tests pass ids in whatever form is at hand (``guild["id"]``, a discord.py
    object, a literal), so every public entry point funnels through here.
    """
    if isinstance(value, bool):
        raise TypeError(f"not an id: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value)
    if isinstance(value, Mapping) and "id" in value:
        return int(value["id"])
    ident = getattr(value, "id", None)
    if ident is not None:
        return int(ident)
    raise TypeError(f"not an id: {value!r}")


def user_payload(
    user_id: int,
    username: str,
    *,
    bot: bool = False,
    global_name: str | None = None,
    system: bool = False,
) -> JSONDict:
    """A user object as Discord sends it."""
    data: JSONDict = {
        "id": str(user_id),
        "username": username,
        "global_name": global_name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "system": system,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
    }
    return data


def webhook_author_payload(webhook_id: int, name: str) -> JSONDict:
    """The pseudo-user Discord puts in ``author`` for webhook messages."""
    return {
        "id": str(webhook_id),
        "username": name,
        "discriminator": "0000",
        "avatar": None,
        "bot": True,
        "global_name": None,
        "public_flags": 0,
    }


def role_payload(
    role_id: int,
    name: str,
    permissions: int,
    *,
    position: int = 0,
    managed: bool = False,
    bot_id: int | None = None,
    mentionable: bool = False,
) -> JSONDict:
    """A role object; ``tags.bot_id`` marks the bot's managed integration role."""
    data: JSONDict = {
        "id": str(role_id),
        "name": name,
        "permissions": str(permissions),
        "position": position,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "managed": managed,
        "mentionable": mentionable,
        "flags": 0,
    }
    if bot_id is not None:
        data["tags"] = {"bot_id": str(bot_id)}
    return data


def member_payload(
    user: JSONDict, role_ids: Iterable[int], joined_at: str, *, nick: str | None = None
) -> JSONDict:
    """A guild member object (with ``user``); ``flags`` is required by discord.py."""
    return {
        "user": user,
        "roles": [str(r) for r in role_ids],
        "joined_at": joined_at,
        "nick": nick,
        "avatar": None,
        "banner": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "premium_since": None,
        "communication_disabled_until": None,
    }


def partial_member(member: JSONDict) -> JSONDict:
    """A member object without ``user``, as embedded in MESSAGE_CREATE."""
    return {k: copy.deepcopy(v) for k, v in member.items() if k != "user"}


def text_channel_payload(
    channel_id: int,
    guild_id: int,
    name: str,
    *,
    position: int,
    parent_id: int | None = None,
    topic: str | None = None,
    nsfw: bool = False,
    channel_type: int = CHANNEL_GUILD_TEXT,
) -> JSONDict:
    """A guild text-like channel (text, announcement, category, voice share the base fields)."""
    return {
        "id": str(channel_id),
        "type": channel_type,
        "guild_id": str(guild_id),
        "name": name,
        "position": position,
        "parent_id": str(parent_id) if parent_id else None,
        "topic": topic,
        "nsfw": nsfw,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "permission_overwrites": [],
        "flags": 0,
        "default_auto_archive_duration": 1440,
    }


def thread_payload(
    thread_id: int,
    guild_id: int,
    parent_id: int,
    name: str,
    *,
    owner_id: int,
    thread_type: int = CHANNEL_PUBLIC_THREAD,
    archived: bool = False,
    locked: bool = False,
) -> JSONDict:
    """A thread channel; ``thread_metadata`` and the counts are required by discord.py."""
    created = iso_timestamp(thread_id)
    return {
        "id": str(thread_id),
        "type": thread_type,
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": str(owner_id),
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "flags": 0,
        "applied_tags": [],
        "thread_metadata": {
            "archived": archived,
            "auto_archive_duration": 1440,
            "archive_timestamp": created,
            "locked": locked,
            "invitable": True,
            "create_timestamp": created,
        },
    }


def guild_base_payload(guild_id: int, name: str, owner_id: int) -> JSONDict:
    """The scalar part of a guild object (roles, channels, members are added by the world)."""
    return {
        "id": str(guild_id),
        "name": name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 1,
        "explicit_content_filter": 0,
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "emojis": [],
        "stickers": [],
    }


@dataclasses.dataclass
class StoredAttachment:
    """A file the fake holds and serves under ``/attachments/...``."""

    id: int
    channel_id: int
    filename: str
    content_type: str
    data: bytes
    url: str
    description: str | None = None
    ephemeral: bool = False

    def payload(self) -> JSONDict:
        """The attachment object pointing at the fake's download URL."""
        data: JSONDict = {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url,
            "content_type": self.content_type,
        }
        if self.description is not None:
            data["description"] = self.description
        if self.ephemeral:
            data["ephemeral"] = True
        return data


def base_message_payload(
    message_id: int,
    channel_id: int,
    author: JSONDict,
    content: str,
    *,
    message_type: int = MESSAGE_DEFAULT,
) -> JSONDict:
    """A message with every list field present and empty."""
    return {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "type": message_type,
        "author": copy.deepcopy(author),
        "content": content,
        "timestamp": iso_timestamp(message_id),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "mention_channels": [],
        "attachments": [],
        "embeds": [],
        "reactions": [],
        "pinned": False,
        "flags": 0,
        "components": [],
    }


def iter_components(components: Sequence[Any]) -> Iterator[JSONDict]:
    """Walk every component, depth first, through rows, containers, sections and labels."""
    for comp in components:
        if not isinstance(comp, dict):
            continue
        yield comp
        for key in ("components", "items"):
            children = comp.get(key)
            if isinstance(children, list):
                yield from iter_components(children)
        for key in ("accessory", "component"):
            child = comp.get(key)
            if isinstance(child, dict):
                yield from iter_components([child])


_USER_MENTION = re.compile(r"<@!?(\d{15,21})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,21})>")
_EVERYONE = re.compile(r"@(everyone|here)\b")


def parse_mentions(content: str) -> tuple[list[int], list[int], bool]:
    """User ids, role ids and whether ``@everyone``/``@here`` appear in ``content``."""
    users: list[int] = []
    for match in _USER_MENTION.finditer(content):
        uid = int(match.group(1))
        if uid not in users:
            users.append(uid)
    roles: list[int] = []
    for match in _ROLE_MENTION.finditer(content):
        rid = int(match.group(1))
        if rid not in roles:
            roles.append(rid)
    return users, roles, bool(_EVERYONE.search(content))


def effective_mentions(
    content: str,
    allowed: Mapping[str, Any] | None,
    *,
    replied_user_id: int | None = None,
) -> tuple[list[int], list[int], bool]:
    """Who a message would really ping, applying Discord's ``allowed_mentions`` rules.

    Without ``allowed_mentions`` Discord parses users, roles and everyone and
    pings the author of a replied-to message; with it, only what it lists.
    """
    users, roles, everyone = parse_mentions(content)
    if allowed is None:
        parse: set[str] = {"users", "roles", "everyone"}
        allowed_users: set[int] = set()
        allowed_roles: set[int] = set()
        replied = True
    else:
        parse = set(allowed.get("parse") or [])
        allowed_users = {int(u) for u in allowed.get("users") or []}
        allowed_roles = {int(r) for r in allowed.get("roles") or []}
        replied = bool(allowed.get("replied_user", False))
    pinged_users = [u for u in users if "users" in parse or u in allowed_users]
    if replied and replied_user_id is not None and replied_user_id not in pinged_users:
        pinged_users.append(replied_user_id)
    pinged_roles = [r for r in roles if "roles" in parse or r in allowed_roles]
    return pinged_users, pinged_roles, everyone and "everyone" in parse


def rest_message_view(message: JSONDict) -> JSONDict:
    """A stored message as the REST API returns it (no gateway-only ``member``/``guild_id``)."""
    data = copy.deepcopy(message)
    data.pop("member", None)
    data.pop("guild_id", None)
    for mention in data.get("mentions") or []:
        if isinstance(mention, dict):
            mention.pop("member", None)
    ref = data.get("referenced_message")
    if isinstance(ref, dict):
        data["referenced_message"] = rest_message_view(ref)
    return data


def strip_content(message: JSONDict) -> JSONDict:
    """Blank the fields the MESSAGE_CONTENT intent guards, as Discord does for apps without it."""
    data = copy.deepcopy(message)
    data["content"] = ""
    data["embeds"] = []
    data["attachments"] = []
    data["components"] = []
    data.pop("poll", None)
    return data
