"""The fake's model of Discord's data: users, guilds, roles, channels, messages, files, commands.

Everything is stored in Discord's wire shape (string ids inside payload
dicts, int keys in the indexes) so that what tests seed is exactly what the
bot will receive.  The world is synchronous and never talks to the network;
the gateway and REST layers read and mutate it and decide what to dispatch.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import datetime
import logging
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from .constants import (
    ADMIN_ROLE_NAME,
    ALL_PERMISSIONS,
    APP_OWNER_ID,
    BOT_USER_ID,
    CHANNEL_GUILD_CATEGORY,
    CHANNEL_GUILD_TEXT,
    CHANNEL_PUBLIC_THREAD,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    FLAG_EPHEMERAL,
    MESSAGE_DEFAULT,
    PERM_ADMINISTRATOR,
    PERM_MANAGE_GUILD,
    PERM_VIEW_CHANNEL,
    THREAD_CHANNEL_TYPES,
)
from .payloads import (
    JSONDict,
    StoredAttachment,
    base_message_payload,
    guild_base_payload,
    member_payload,
    parse_mentions,
    partial_member,
    role_payload,
    sid,
    text_channel_payload,
    thread_payload,
    user_payload,
    webhook_author_payload,
)
from .records import FakeDiscordError
from .snowflake import SnowflakeGenerator, iso_timestamp

_log = logging.getLogger(__name__)

# An id given as int, str, Discord payload dict or object with ``.id`` (see ``payloads.sid``).
IdLike = Any


@dataclasses.dataclass
class GuildState:
    """One guild: its scalar payload plus the collections Discord nests inside it."""

    data: JSONDict
    roles: dict[int, JSONDict]
    members: dict[int, JSONDict]
    channel_ids: list[int]
    bot_role_id: int

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def owner_id(self) -> int:
        return int(self.data["owner_id"])


@dataclasses.dataclass
class RegisteredCommand:
    """An application command as stored after a sync (the payload Discord would return)."""

    data: JSONDict
    guild_id: int | None

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def type(self) -> int:
        return int(self.data.get("type", 1))


class World:
    """All entities of the fake Discord and the rules that relate them (permissions, history
    order).
    """

    def __init__(self) -> None:
        self.ids = SnowflakeGenerator()
        self.base_url: str | None = None
        self.users: dict[int, JSONDict] = {}
        self.guilds: dict[int, GuildState] = {}
        self.channels: dict[int, JSONDict] = {}
        self.messages: dict[int, JSONDict] = {}
        self.history: dict[int, list[int]] = {}
        self.attachments: dict[int, StoredAttachment] = {}
        self.global_commands: dict[tuple[str, int], RegisteredCommand] = {}
        self.guild_commands: dict[int, dict[tuple[str, int], RegisteredCommand]] = {}
        self._command_ids: dict[tuple[int | None, str, int], int] = {}
        self.bot_user = user_payload(BOT_USER_ID, "FakeBot", bot=True)
        self.bot_user.update(
            {"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"}
        )
        self.users[BOT_USER_ID] = self.bot_user
        self.app_owner = user_payload(APP_OWNER_ID, "app-owner")
        self.users[APP_OWNER_ID] = self.app_owner

    # -- users -------------------------------------------------------------------

    def add_user(self, name: str, *, bot: bool = False, global_name: str | None = None) -> JSONDict:
        """Create a user; returns the live user dict (``int(user["id"])`` is its id)."""
        user = user_payload(self.ids.next(), name, bot=bot, global_name=global_name)
        self.users[int(user["id"])] = user
        return user

    def user(self, user_id: IdLike) -> JSONDict:
        """Look a user up, failing with a readable error."""
        uid = sid(user_id)
        try:
            return self.users[uid]
        except KeyError:
            raise FakeDiscordError(f"unknown user {uid}; create it with add_user()") from None

    # -- guilds & roles -----------------------------------------------------------

    def add_guild(
        self,
        name: str,
        *,
        owner_id: IdLike | None = None,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        shard: tuple[int, int] | None = None,
    ) -> JSONDict:
        """Create a guild the bot is in, with ``@everyone``, the bot's managed role and the owner as
        member. ``shard=(id, count)`` mints an id that Discord would deliver on that shard.
        """
        gid = self.ids.next() if shard is None else self.ids.on_shard(*shard)
        owner = self.add_user(f"{name}-owner") if owner_id is None else self.user(owner_id)
        data = guild_base_payload(gid, name, int(owner["id"]))
        everyone = role_payload(gid, "@everyone", everyone_permissions, position=0)
        bot_role_id = self.ids.next()
        bot_role = role_payload(
            bot_role_id,
            self.bot_user["username"],
            bot_permissions,
            position=1,
            managed=True,
            bot_id=BOT_USER_ID,
        )
        state = GuildState(
            data=data,
            roles={gid: everyone, bot_role_id: bot_role},
            members={},
            channel_ids=[],
            bot_role_id=bot_role_id,
        )
        self.guilds[gid] = state
        self._add_member(state, self.bot_user, [bot_role_id])
        self._add_member(state, owner, [])
        return data

    def guild(self, guild_id: IdLike) -> GuildState:
        """Look a guild up, failing with a readable error."""
        gid = sid(guild_id)
        try:
            return self.guilds[gid]
        except KeyError:
            raise FakeDiscordError(f"unknown guild {gid}; create it with add_guild()") from None

    def add_role(
        self, guild_id: IdLike, name: str, permissions: int = 0, *, mentionable: bool = False
    ) -> JSONDict:
        """Create a role above the existing ones."""
        state = self.guild(guild_id)
        position = max(int(r["position"]) for r in state.roles.values()) + 1
        role = role_payload(
            self.ids.next(), name, permissions, position=position, mentionable=mentionable
        )
        state.roles[int(role["id"])] = role
        return role

    def _add_member(
        self, state: GuildState, user: JSONDict, role_ids: Iterable[int], nick: str | None = None
    ) -> JSONDict:
        member = member_payload(user, role_ids, iso_timestamp(self.ids.next()), nick=nick)
        state.members[int(user["id"])] = member
        return member

    def add_member(
        self,
        guild_id: IdLike,
        user_id: IdLike,
        *,
        permissions: int | Sequence[IdLike] | None = None,
        nick: str | None = None,
    ) -> JSONDict:
        """Put a user in a guild.

        ``permissions`` is either a list of role ids (or role dicts) to give
        the member, or an int permission value, for which a dedicated role is
        created (Discord has no per-member permissions outside roles).
        """
        state = self.guild(guild_id)
        user = self.user(user_id)
        role_ids: list[int] = []
        if isinstance(permissions, bool):
            raise FakeDiscordError("permissions must be an int or a list of role ids, not a bool")
        if isinstance(permissions, int):
            role = self.add_role(state.id, f"perms-{user['username']}", permissions)
            role_ids.append(int(role["id"]))
        elif permissions is not None:
            for r in permissions:
                rid = sid(r)
                if rid not in state.roles:
                    raise FakeDiscordError(f"role {rid} is not in guild {state.id}")
                role_ids.append(rid)
        existing = state.members.get(int(user["id"]))
        if existing is not None:
            existing["roles"] = sorted({*existing["roles"], *(str(r) for r in role_ids)})
            if nick is not None:
                existing["nick"] = nick
            return existing
        return self._add_member(state, user, role_ids, nick)

    def member(self, guild_id: IdLike, user_id: IdLike) -> JSONDict:
        """Look a member up, failing with a readable error."""
        state = self.guild(guild_id)
        uid = sid(user_id)
        try:
            return state.members[uid]
        except KeyError:
            raise FakeDiscordError(
                f"user {uid} is not a member of guild {state.id}; use add_member()"
            ) from None

    def give_role(self, guild_id: IdLike, user_id: IdLike, role_id: IdLike) -> None:
        """Add a role to a member."""
        member = self.member(guild_id, user_id)
        rid = str(sid(role_id))
        if rid not in member["roles"]:
            member["roles"].append(rid)

    def make_admin(
        self, guild_id: IdLike, user_id: IdLike, permissions: int = PERM_MANAGE_GUILD
    ) -> JSONDict:
        """Give a member the guild's admin role (Manage Guild by default), creating the role
        once.
        """
        state = self.guild(guild_id)
        role = next((r for r in state.roles.values() if r["name"] == ADMIN_ROLE_NAME), None)
        if role is None:
            role = self.add_role(state.id, ADMIN_ROLE_NAME, permissions)
        else:
            role["permissions"] = str(int(role["permissions"]) | permissions)
        uid = sid(user_id)
        if uid not in state.members:
            self.add_member(state.id, uid)
        self.give_role(state.id, uid, role["id"])
        return role

    # -- channels -----------------------------------------------------------------

    def add_channel(
        self,
        guild_id: IdLike,
        name: str,
        *,
        channel_type: int = CHANNEL_GUILD_TEXT,
        topic: str | None = None,
        nsfw: bool = False,
        category_id: IdLike | None = None,
    ) -> JSONDict:
        """Create a non-thread guild channel (text by default)."""
        state = self.guild(guild_id)
        position = len(
            [c for c in state.channel_ids if self.channels[c]["type"] not in THREAD_CHANNEL_TYPES]
        )
        channel = text_channel_payload(
            self.ids.next(),
            state.id,
            name,
            position=position,
            parent_id=sid(category_id) if category_id is not None else None,
            topic=topic,
            nsfw=nsfw,
            channel_type=channel_type,
        )
        cid = int(channel["id"])
        self.channels[cid] = channel
        self.history[cid] = []
        state.channel_ids.append(cid)
        if state.data.get("system_channel_id") is None and channel_type == CHANNEL_GUILD_TEXT:
            state.data["system_channel_id"] = channel["id"]
        return channel

    def add_text_channel(self, guild_id: IdLike, name: str, **kwargs: Any) -> JSONDict:
        """Create a text channel."""
        return self.add_channel(guild_id, name, **kwargs)

    def add_category(self, guild_id: IdLike, name: str) -> JSONDict:
        """Create a category channel."""
        return self.add_channel(guild_id, name, channel_type=CHANNEL_GUILD_CATEGORY)

    def add_thread(
        self,
        parent_channel_id: IdLike,
        name: str,
        *,
        owner_id: IdLike | None = None,
        thread_type: int = CHANNEL_PUBLIC_THREAD,
        archived: bool = False,
        locked: bool = False,
    ) -> JSONDict:
        """Create an (active) thread under a text channel."""
        parent = self.channel(parent_channel_id)
        if parent["type"] in THREAD_CHANNEL_TYPES:
            raise FakeDiscordError("threads cannot be nested")
        gid = int(parent["guild_id"])
        owner = sid(owner_id) if owner_id is not None else self.guild(gid).owner_id
        thread = thread_payload(
            self.ids.next(),
            gid,
            int(parent["id"]),
            name,
            owner_id=owner,
            thread_type=thread_type,
            archived=archived,
            locked=locked,
        )
        tid = int(thread["id"])
        self.channels[tid] = thread
        self.history[tid] = []
        self.guild(gid).channel_ids.append(tid)
        return thread

    def channel(self, channel_id: IdLike) -> JSONDict:
        """Look a channel up, failing with a readable error."""
        cid = sid(channel_id)
        try:
            return self.channels[cid]
        except KeyError:
            raise FakeDiscordError(
                f"unknown channel {cid}; create it with add_text_channel()"
            ) from None

    def remove_channel(self, channel_id: IdLike) -> JSONDict:
        """Forget a channel (and its threads and messages); returns its last payload."""
        channel = self.channel(channel_id)
        cid = int(channel["id"])
        for tid in [
            t
            for t, c in self.channels.items()
            if c.get("parent_id") == str(cid) and c["type"] in THREAD_CHANNEL_TYPES
        ]:
            self.remove_channel(tid)
        self.channels.pop(cid)
        for mid in self.history.pop(cid, []):
            self.messages.pop(mid, None)
        gid = channel.get("guild_id")
        if gid is not None and int(gid) in self.guilds:
            ids = self.guilds[int(gid)].channel_ids
            if cid in ids:
                ids.remove(cid)
        return channel

    def remove_guild(self, guild_id: IdLike) -> GuildState:
        """Forget a guild and everything in it."""
        state = self.guild(guild_id)
        for cid in list(state.channel_ids):
            if cid in self.channels:
                self.remove_channel(cid)
        self.guilds.pop(state.id)
        self.guild_commands.pop(state.id, None)
        return state

    def set_overwrite(
        self,
        channel_id: IdLike,
        target_id: IdLike,
        *,
        allow: int = 0,
        deny: int = 0,
        member: bool = False,
    ) -> None:
        """Set a permission overwrite on a channel for a role (default) or member."""
        channel = self.channel(channel_id)
        tid = str(sid(target_id))
        overwrites: list[JSONDict] = channel.setdefault("permission_overwrites", [])
        overwrites[:] = [o for o in overwrites if o["id"] != tid]
        overwrites.append(
            {"id": tid, "type": 1 if member else 0, "allow": str(allow), "deny": str(deny)}
        )

    # -- permissions ----------------------------------------------------------------

    def guild_permissions(self, guild_id: IdLike, user_id: IdLike) -> int:
        """Base permissions of a member: owner/admin → all, else ``@everyone`` OR member roles."""
        state = self.guild(guild_id)
        uid = sid(user_id)
        if uid == state.owner_id:
            return ALL_PERMISSIONS
        member = state.members.get(uid)
        perms = int(state.roles[state.id]["permissions"])
        if member is not None:
            for rid in member["roles"]:
                role = state.roles.get(int(rid))
                if role is not None:
                    perms |= int(role["permissions"])
        if perms & PERM_ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def channel_permissions(self, channel_id: IdLike, user_id: IdLike) -> int:
        """Permissions in a channel after overwrites (threads use their parent's), Discord's
        algorithm.
        """
        channel = self.channel(channel_id)
        if channel["type"] in THREAD_CHANNEL_TYPES:
            channel = self.channel(channel["parent_id"])
        if "guild_id" not in channel:
            return ALL_PERMISSIONS
        state = self.guild(channel["guild_id"])
        uid = sid(user_id)
        perms = self.guild_permissions(state.id, uid)
        if perms == ALL_PERMISSIONS:
            return perms
        overwrites = {o["id"]: o for o in channel.get("permission_overwrites") or []}
        everyone = overwrites.get(str(state.id))
        if everyone:
            perms = (perms & ~int(everyone["deny"])) | int(everyone["allow"])
        member = state.members.get(uid)
        allow = deny = 0
        for rid in (member or {}).get("roles", []):
            ow = overwrites.get(str(rid))
            if ow and ow["type"] == 0:
                allow |= int(ow["allow"])
                deny |= int(ow["deny"])
        perms = (perms & ~deny) | allow
        mine = overwrites.get(str(uid))
        if mine and mine["type"] == 1:
            perms = (perms & ~int(mine["deny"])) | int(mine["allow"])
        if not perms & PERM_VIEW_CHANNEL:
            return 0
        return perms

    # -- messages ---------------------------------------------------------------------

    def guild_id_of(self, channel_id: int) -> int | None:
        """Guild of a channel, or ``None`` for DMs."""
        gid = self.channels[channel_id].get("guild_id")
        return int(gid) if gid is not None else None

    def mention_payloads(self, guild_id: int | None, user_ids: Iterable[int]) -> list[JSONDict]:
        """User objects for ``mentions``, each with a partial ``member`` in guilds (gateway
        form).
        """
        result: list[JSONDict] = []
        for uid in user_ids:
            user = self.users.get(uid)
            if user is None:
                continue
            entry = copy.deepcopy(user)
            if guild_id is not None:
                member = self.guilds[guild_id].members.get(uid)
                if member is not None:
                    entry["member"] = partial_member(member)
            result.append(entry)
        return result

    def build_message(
        self,
        channel_id: IdLike,
        author_id: IdLike | None,
        content: str = "",
        *,
        message_id: int | None = None,
        webhook_id: IdLike | None = None,
        webhook_name: str = "Webhook",
        message_type: int = MESSAGE_DEFAULT,
        mentions: Sequence[IdLike] | None = None,
        mention_roles: Sequence[IdLike] | None = None,
        mention_everyone: bool | None = None,
        **extra: Any,
    ) -> JSONDict:
        """Assemble a message from a user (or webhook) the way Discord would deliver it.

        Mentions default to what the content mentions (users always get
        notified by other users' mentions).  ``extra`` keys are copied into
        the payload verbatim (``embeds``, ``attachments``, ``interaction_metadata``,
        ``message_reference``, ``flags``...).
        """
        channel = self.channel(channel_id)
        cid = int(channel["id"])
        gid = self.guild_id_of(cid)
        mid = message_id if message_id is not None else self.ids.next()
        member: JSONDict | None = None
        if webhook_id is not None:
            author = webhook_author_payload(sid(webhook_id), webhook_name)
        else:
            if author_id is None:
                raise FakeDiscordError("a message needs an author_id (or a webhook_id)")
            author = self.user(author_id)
            if gid is not None:
                member = self.guilds[gid].members.get(int(author["id"]))
        message = base_message_payload(mid, cid, author, content, message_type=message_type)
        if gid is not None:
            message["guild_id"] = str(gid)
            if member is not None:
                message["member"] = partial_member(member)
        if webhook_id is not None:
            message["webhook_id"] = str(sid(webhook_id))
        parsed_users, parsed_roles, parsed_everyone = parse_mentions(content)
        user_ids = [sid(u) for u in mentions] if mentions is not None else parsed_users
        message["mentions"] = self.mention_payloads(gid, user_ids)
        message["mention_roles"] = (
            [str(sid(r)) for r in mention_roles]
            if mention_roles is not None
            else [str(r) for r in parsed_roles]
        )
        message["mention_everyone"] = (
            parsed_everyone if mention_everyone is None else mention_everyone
        )
        for key, value in extra.items():
            message[key] = value
        return message

    def store_message(self, message: JSONDict) -> JSONDict:
        """Save a message; non-ephemeral ones join their channel's history in id order."""
        mid = int(message["id"])
        cid = int(message["channel_id"])
        self.messages[mid] = message
        if not int(message.get("flags") or 0) & FLAG_EPHEMERAL:
            ids = self.history.setdefault(cid, [])
            if mid not in ids:
                bisect.insort(ids, mid)
            channel = self.channels.get(cid)
            if channel is not None and ids and ids[-1] == mid:
                channel["last_message_id"] = str(mid)
                if channel["type"] in THREAD_CHANNEL_TYPES:
                    channel["message_count"] = int(channel.get("message_count") or 0) + 1
                    channel["total_message_sent"] = int(channel.get("total_message_sent") or 0) + 1
        return message

    def delete_message(self, message_id: int) -> JSONDict | None:
        """Remove a message from the store and its channel history."""
        message = self.messages.pop(message_id, None)
        if message is not None:
            ids = self.history.get(int(message["channel_id"]), [])
            if message_id in ids:
                ids.remove(message_id)
        return message

    def seed_history(
        self,
        channel_id: IdLike,
        messages: Sequence[tuple[IdLike, str] | JSONDict],
        *,
        start: datetime.datetime | None = None,
        spacing: datetime.timedelta = datetime.timedelta(minutes=1),
    ) -> list[JSONDict]:
        """Put past messages in a channel without dispatching anything (for backfill tests).

        Each item is ``(author_id, content)`` or a dict of :meth:`build_message`
        keyword arguments (``author_id``, ``content``, ...).  Ids encode times
        from ``start`` (default: one ``spacing`` per message before now) so
        they sort before any live message.
        """
        now = datetime.datetime.now(datetime.UTC)
        if start is None:
            start = now - spacing * (len(messages) + 1)
        created: list[JSONDict] = []
        for index, item in enumerate(messages):
            when = start + spacing * index
            if when >= now:
                raise FakeDiscordError(
                    "seeded history must lie in the past; pass an earlier start or smaller spacing"
                )
            kwargs: dict[str, Any]
            if isinstance(item, dict):
                kwargs = dict(item)
            else:
                author, content = item
                kwargs = {"author_id": author, "content": content}
            author_id = kwargs.pop("author_id", None)
            content = kwargs.pop("content", "")
            msg = self.build_message(
                channel_id, author_id, content, message_id=self.ids.at(when), **kwargs
            )
            created.append(self.store_message(msg))
        return created

    def history_page(
        self,
        channel_id: int,
        *,
        limit: int = 50,
        before: int | None = None,
        after: int | None = None,
        around: int | None = None,
    ) -> list[JSONDict]:
        """A page of history, newest first, with Discord's before/after/around semantics."""
        ids = self.history.get(channel_id, [])
        limit = max(1, min(100, limit))
        if around is not None:
            pos = bisect.bisect_left(ids, around)
            half = limit // 2
            lo = max(0, pos - half)
            selected = ids[lo : lo + limit]
        elif before is not None:
            pos = bisect.bisect_left(ids, before)
            selected = ids[max(0, pos - limit) : pos]
        elif after is not None:
            pos = bisect.bisect_right(ids, after)
            selected = ids[pos : pos + limit]
        else:
            selected = ids[-limit:]
        return [self.messages[i] for i in reversed(selected)]

    # -- attachments -----------------------------------------------------------------

    def add_attachment(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        *,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> StoredAttachment:
        """Keep a file and give it a download URL on the fake."""
        if self.base_url is None:
            raise FakeDiscordError(
                "start() the fake before creating attachments (their URLs need its port)"
            )
        aid = self.ids.next()
        url = f"{self.base_url}/attachments/{channel_id}/{aid}/{quote(filename)}"
        att = StoredAttachment(
            id=aid,
            channel_id=channel_id,
            filename=filename,
            content_type=content_type,
            data=data,
            url=url,
            description=description,
            ephemeral=ephemeral,
        )
        self.attachments[aid] = att
        return att

    # -- application commands ---------------------------------------------------------

    def replace_commands(
        self, guild_id: int | None, payloads: Sequence[JSONDict]
    ) -> list[JSONDict]:
        """Bulk overwrite (PUT) of global or guild commands; ids are stable per (scope, name,
        type).
        """
        table: dict[tuple[str, int], RegisteredCommand] = {}
        for payload in payloads:
            cmd = self._command_from_payload(guild_id, payload)
            table[(cmd.name, cmd.type)] = cmd
        if guild_id is None:
            self.global_commands = table
        else:
            self.guild(guild_id)
            self.guild_commands[guild_id] = table
        return [copy.deepcopy(c.data) for c in table.values()]

    def upsert_command(self, guild_id: int | None, payload: JSONDict) -> JSONDict:
        """Create or replace one command (POST)."""
        cmd = self._command_from_payload(guild_id, payload)
        table = (
            self.global_commands
            if guild_id is None
            else self.guild_commands.setdefault(guild_id, {})
        )
        table[(cmd.name, cmd.type)] = cmd
        return copy.deepcopy(cmd.data)

    def _command_from_payload(self, guild_id: int | None, payload: JSONDict) -> RegisteredCommand:
        data = copy.deepcopy(payload)
        ctype = int(data.get("type", 1))
        key = (guild_id, str(data["name"]), ctype)
        cmd_id = self._command_ids.get(key)
        if cmd_id is None:
            cmd_id = self._command_ids[key] = self.ids.next()
        data.update(
            {
                "id": str(cmd_id),
                "application_id": str(BOT_USER_ID),
                "type": ctype,
                "version": str(self.ids.next()),
                "description": data.get("description", ""),
                "default_member_permissions": data.get("default_member_permissions"),
                "nsfw": bool(data.get("nsfw", False)),
            }
        )
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return RegisteredCommand(data=data, guild_id=guild_id)

    def commands_for(self, guild_id: int | None) -> list[RegisteredCommand]:
        """Commands stored for one scope (``None`` = global)."""
        table = self.global_commands if guild_id is None else self.guild_commands.get(guild_id, {})
        return list(table.values())

    def find_command(self, guild_id: int | None, name: str, ctype: int) -> RegisteredCommand | None:
        """Resolve a command name as a client in ``guild_id`` would: guild commands first, then
        global.
        """
        if guild_id is not None:
            cmd = self.guild_commands.get(guild_id, {}).get((name, ctype))
            if cmd is not None:
                return cmd
        return self.global_commands.get((name, ctype))

    def command_by_id(self, command_id: int) -> RegisteredCommand | None:
        """Find a stored command by id in any scope."""
        for table in [self.global_commands, *self.guild_commands.values()]:
            for cmd in table.values():
                if int(cmd.data["id"]) == command_id:
                    return cmd
        return None
