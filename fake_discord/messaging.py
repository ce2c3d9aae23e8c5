"""Turning the bot's message payloads into stored messages, with Discord's validation.

Discord rejects messages that are empty, too long or carry malformed
components, and a Markov bot generates text of unpredictable length; so the
fake enforces the same limits (returning the same 400 errors) instead of
accepting anything, letting tests catch a bot that would fail in production.
"""

from __future__ import annotations

import copy
import mimetypes
from collections.abc import Sequence
from typing import Any

from .constants import (
    BUTTON_STYLE_LINK,
    BUTTON_STYLE_PREMIUM,
    COMPONENT_ACTION_ROW,
    COMPONENT_BUTTON,
    COMPONENT_STRING_SELECT,
    DEFAULT_ATTACHMENT_SIZE_LIMIT,
    ERR_EMPTY_MESSAGE,
    FLAG_EPHEMERAL,
    FLAG_IS_COMPONENTS_V2,
    FLAG_LOADING,
    FLAG_SUPPRESS_EMBEDS,
    FLAG_SUPPRESS_NOTIFICATIONS,
    MAX_CONTENT_LENGTH,
    MAX_EMBED_TOTAL,
    MAX_EMBEDS,
    SELECT_COMPONENT_TYPES,
)
from .payloads import JSONDict, effective_mentions, iter_components
from .records import UploadedFile
from .responses import ApiError, form_error
from .world import World

_CREATE_FLAGS = (
    FLAG_SUPPRESS_EMBEDS | FLAG_EPHEMERAL | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_IS_COMPONENTS_V2
)
_EDIT_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_IS_COMPONENTS_V2


def _check_len(field: str, value: Any, limit: int) -> int:
    text = "" if value is None else str(value)
    if len(text) > limit:
        raise form_error(field, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
    return len(text)


def validate_embeds(embeds: Sequence[Any]) -> None:
    """Discord's embed limits (count, per-field lengths, 6000 characters in total)."""
    if len(embeds) > MAX_EMBEDS:
        raise form_error(
            "embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length."
        )
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            raise form_error(
                f"embeds.{i}", "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"
            )
        total += _check_len(f"embeds.{i}.title", embed.get("title"), 256)
        total += _check_len(f"embeds.{i}.description", embed.get("description"), 4096)
        total += _check_len(
            f"embeds.{i}.footer.text", (embed.get("footer") or {}).get("text"), 2048
        )
        total += _check_len(f"embeds.{i}.author.name", (embed.get("author") or {}).get("name"), 256)
        fields = embed.get("fields") or []
        if len(fields) > 25:
            raise form_error(
                f"embeds.{i}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        for j, field in enumerate(fields):
            if (
                not str(field.get("name") or "").strip()
                or not str(field.get("value") or "").strip()
            ):
                raise form_error(
                    f"embeds.{i}.fields.{j}", "BASE_TYPE_REQUIRED", "This field is required"
                )
            total += _check_len(f"embeds.{i}.fields.{j}.name", field.get("name"), 256)
            total += _check_len(f"embeds.{i}.fields.{j}.value", field.get("value"), 1024)
    if total > MAX_EMBED_TOTAL:
        raise form_error(
            "embeds",
            "BASE_TYPE_MAX_LENGTH",
            f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}",
        )


def validate_components(components: Sequence[Any], *, v2: bool) -> None:
    """Structure and size rules for message components (action rows, buttons, selects)."""
    if not v2:
        if len(components) > 5:
            raise form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        for i, row in enumerate(components):
            if not isinstance(row, dict) or row.get("type") != COMPONENT_ACTION_ROW:
                raise form_error(
                    f"components.{i}.type",
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (1,).',
                )
            children = row.get("components") or []
            if not children:
                raise form_error(
                    f"components.{i}.components",
                    "BASE_TYPE_MIN_LENGTH",
                    "Must be 1 or more in length.",
                )
            kinds = {c.get("type") for c in children}
            if kinds & SELECT_COMPONENT_TYPES and len(children) > 1:
                raise form_error(
                    f"components.{i}.components",
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
            if len(children) > 5:
                raise form_error(
                    f"components.{i}.components",
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 5 or fewer in length.",
                )
    seen: set[str] = set()
    for comp in iter_components(components):
        ctype = comp.get("type")
        if ctype == COMPONENT_BUTTON:
            _check_len("components.button.label", comp.get("label"), 80)
            if comp.get("style") in (BUTTON_STYLE_LINK, BUTTON_STYLE_PREMIUM):
                if comp.get("custom_id"):
                    raise form_error(
                        "components.button.custom_id",
                        "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED",
                        "A link button cannot have a custom_id",
                    )
            elif not comp.get("custom_id"):
                raise form_error(
                    "components.button.custom_id", "BASE_TYPE_REQUIRED", "This field is required"
                )
        if ctype in SELECT_COMPONENT_TYPES:
            _check_len("components.select.placeholder", comp.get("placeholder"), 150)
            if ctype == COMPONENT_STRING_SELECT:
                options = comp.get("options") or []
                if not 1 <= len(options) <= 25:
                    raise form_error(
                        "components.select.options",
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 25 in length.",
                    )
                for opt in options:
                    _check_len("components.select.options.label", opt.get("label"), 100)
                    _check_len("components.select.options.value", opt.get("value"), 100)
        custom_id = comp.get("custom_id")
        if custom_id is not None:
            _check_len("components.custom_id", custom_id, 100)
            if custom_id in seen:
                raise form_error(
                    "components.custom_id",
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                )
            seen.add(str(custom_id))


def validate_message_data(data: JSONDict, files: Sequence[UploadedFile]) -> None:
    """Field-level checks on a create or edit payload (emptiness is checked on the result)."""
    content = data.get("content")
    if content is not None:
        _check_len("content", content, MAX_CONTENT_LENGTH)
    if data.get("embeds") is not None:
        validate_embeds(data["embeds"])
    flags = int(data.get("flags") or 0)
    if data.get("components") is not None:
        validate_components(data["components"], v2=bool(flags & FLAG_IS_COMPONENTS_V2))
    if flags & FLAG_IS_COMPONENTS_V2 and (data.get("content") or data.get("embeds")):
        raise form_error(
            "content",
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "The 'content' and 'embeds' fields cannot be used when using "
            "MessageFlags.IS_COMPONENTS_V2",
        )
    for f in files:
        if len(f.data) > DEFAULT_ATTACHMENT_SIZE_LIMIT:
            raise ApiError(413, 40005, "Request entity too large")


def ensure_not_empty(message: JSONDict) -> None:
    """Discord's "Cannot send an empty message" (50006), checked on the resulting message."""
    if int(message.get("flags") or 0) & FLAG_LOADING:
        return
    if (
        str(message.get("content") or "").strip()
        or message.get("embeds")
        or message.get("attachments")
        or message.get("components")
        or message.get("sticker_items")
        or message.get("poll")
    ):
        return
    raise ApiError(400, ERR_EMPTY_MESSAGE, "Cannot send an empty message")


def _guess_content_type(upload: UploadedFile) -> str:
    guessed, _ = mimetypes.guess_type(upload.filename)
    if guessed:
        return guessed
    return upload.content_type or "application/octet-stream"


def _file_index(upload: UploadedFile) -> int | None:
    field = upload.field
    if field.startswith("files[") and field.endswith("]"):
        try:
            return int(field[6:-1])
        except ValueError:
            return None
    if field.startswith("file"):
        digits = "".join(ch for ch in field if ch.isdigit())
        return int(digits) if digits else 0
    return None


def apply_attachments(
    world: World,
    message: JSONDict,
    data: JSONDict,
    files: Sequence[UploadedFile],
    *,
    ephemeral: bool,
) -> None:
    """Resolve ``attachments`` entries and uploaded files into stored, downloadable attachments.

    On edits, entries naming an existing attachment id keep it and omitted
    ones are removed, as on Discord; entries with a small integer id refer to
    ``files[n]``.
    """
    channel_id = int(message["channel_id"])
    existing = {str(a["id"]): a for a in message.get("attachments") or []}
    by_index = {idx: f for f in files if (idx := _file_index(f)) is not None}
    used: set[int] = set()
    result: list[JSONDict] = []
    if "attachments" in data and data["attachments"] is not None:
        for i, entry in enumerate(data["attachments"]):
            key = str(entry.get("id"))
            if key in existing:
                kept = copy.deepcopy(existing[key])
                if entry.get("description") is not None:
                    kept["description"] = entry["description"]
                result.append(kept)
                continue
            try:
                index = int(key)
            except ValueError:
                raise form_error(
                    f"attachments.{i}.id", "ATTACHMENT_NOT_FOUND", "Unknown attachment"
                ) from None
            upload = by_index.get(index)
            if upload is None:
                raise form_error(
                    f"attachments.{i}",
                    "ATTACHMENT_NOT_FOUND",
                    f"No file uploaded for files[{index}]",
                )
            used.add(index)
            stored = world.add_attachment(
                channel_id,
                str(entry.get("filename") or upload.filename),
                upload.data,
                _guess_content_type(upload),
                description=entry.get("description"),
                ephemeral=ephemeral,
            )
            result.append(stored.payload())
    else:
        result = [copy.deepcopy(a) for a in message.get("attachments") or []]
    for index in sorted(by_index):
        if index not in used:
            upload = by_index[index]
            stored = world.add_attachment(
                channel_id,
                upload.filename,
                upload.data,
                _guess_content_type(upload),
                ephemeral=ephemeral,
            )
            result.append(stored.payload())
    message["attachments"] = result


def normalise_embeds(embeds: Sequence[JSONDict]) -> list[JSONDict]:
    """Embeds as Discord echoes them (``type: rich`` filled in)."""
    out: list[JSONDict] = []
    for embed in embeds:
        item = copy.deepcopy(embed)
        item.setdefault("type", "rich")
        out.append(item)
    return out


def apply_message_data(
    world: World,
    message: JSONDict,
    data: JSONDict,
    files: Sequence[UploadedFile],
    *,
    creating: bool,
) -> None:
    """Write a create/edit payload's fields onto ``message`` (only the keys present, for edits)."""
    if "content" in data:
        message["content"] = "" if data["content"] is None else str(data["content"])
    if "embeds" in data:
        message["embeds"] = normalise_embeds(data["embeds"] or [])
    if "components" in data:
        message["components"] = copy.deepcopy(data["components"] or [])
    if "tts" in data and creating:
        message["tts"] = bool(data["tts"])
    if "poll" in data and creating and data["poll"]:
        message["poll"] = copy.deepcopy(data["poll"])
    if "flags" in data and data["flags"] is not None:
        requested = int(data["flags"])
        if creating:
            message["flags"] = (int(message.get("flags") or 0) & ~_CREATE_FLAGS) | (
                requested & _CREATE_FLAGS
            )
        else:
            message["flags"] = (int(message.get("flags") or 0) & ~_EDIT_FLAGS) | (
                requested & _EDIT_FLAGS
            )
    ephemeral = bool(int(message.get("flags") or 0) & FLAG_EPHEMERAL)
    if files or "attachments" in data:
        apply_attachments(world, message, data, files, ephemeral=ephemeral)


def apply_mentions(
    world: World, message: JSONDict, allowed: dict[str, Any] | None, replied_user_id: int | None
) -> tuple[list[int], list[int], bool]:
    """Fill ``mentions``/``mention_roles``/``mention_everyone`` with who is really pinged."""
    gid = message.get("guild_id")
    users, roles, everyone = effective_mentions(
        str(message.get("content") or ""), allowed, replied_user_id=replied_user_id
    )
    message["mentions"] = world.mention_payloads(int(gid) if gid else None, users)
    message["mention_roles"] = [str(r) for r in roles]
    message["mention_everyone"] = everyone
    return users, roles, everyone
