"""What the fake remembers about the bot's behaviour, in a form tests can assert on.

Every REST call, every message-bearing payload and every interaction gets a
record.  Records are plain objects with explicit fields (rather than raw
aiohttp requests) so a failing assertion prints something readable, and so
the bot author can reason about "what did the bot do" without knowing HTTP.
"""

# The wait helpers take ``timeout=`` on purpose: each failure message names the
# timeout, which a caller-side ``asyncio.timeout`` could not do.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .constants import (
    CALLBACK_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_UPDATE_MESSAGE,
    CALLBACK_UPDATE_MESSAGE,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
)
from .payloads import iter_components

T = TypeVar("T")


class FakeDiscordError(Exception):
    """A test asked the fake for something Discord would not allow or cannot express."""


class CommandNotRegistered(FakeDiscordError):
    """The test invoked a command that the bot never registered (synced)."""


class FakeTimeout(FakeDiscordError, AssertionError):
    """Something the test waited for did not happen in time.

    It is an ``AssertionError`` too, so pytest reports it as a failed
    expectation about the bot rather than as a crash of the fake.
    """


class InteractionTimeout(FakeTimeout):
    """The bot did not answer (or edit, or follow up) an interaction in time."""


class Notifier:
    """Wakes waiters whenever the fake's state changes.

    ``wait_for`` also re-checks on a short poll interval, because tests often
    wait for effects inside the bot (a listener ran, a cache filled) that the
    fake cannot observe directly.
    """

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        """Wake every current waiter so it re-checks its predicate."""
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float,
        *,
        poll: float = 0.02,
    ) -> T:
        """Return the first truthy value of ``predicate()``; ``asyncio.TimeoutError`` after
        ``timeout`` s.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.add(fut)
            try:
                await asyncio.wait({fut}, timeout=min(poll, remaining))
            finally:
                self._waiters.discard(fut)
                if not fut.done():
                    fut.cancel()


@dataclasses.dataclass
class UploadedFile:
    """One ``files[n]`` part of a multipart request."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclasses.dataclass
class RequestRecord:
    """One REST request the bot made, as the fake saw it.

    ``path`` is relative to ``/api/v10`` (e.g. ``/channels/1/messages``) so
    tests can match it without caring about the API prefix; non-API paths
    (attachment downloads) keep their full path.
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[UploadedFile]
    at: float
    authorized: bool
    status: int = 0
    rate_limited: bool = False
    route_known: bool = True

    @property
    def payload(self) -> Any:
        """The JSON body, or the decoded ``payload_json`` part of a multipart body."""
        return self.json


@dataclasses.dataclass
class OutgoingMessage:
    """A message-creating or message-editing payload the bot sent.

    Kept separately from :class:`RequestRecord` so the allowed-mentions audit
    sees every route that can ping someone, whatever the transport.
    ``kind`` is one of ``channel_message``, ``channel_edit``,
    ``interaction_callback``, ``followup``, ``webhook_edit``.
    """

    kind: str
    method: str
    path: str
    data: dict[str, Any]
    message_id: int | None
    at: float
    pinged_users: list[int] = dataclasses.field(default_factory=list)
    pinged_roles: list[int] = dataclasses.field(default_factory=list)
    pinged_everyone: bool = False

    @property
    def allowed_mentions(self) -> dict[str, Any] | None:
        """The payload's ``allowed_mentions`` (``None`` when absent, which means "ping
        everything").
        """
        value = self.data.get("allowed_mentions")
        return value if isinstance(value, dict) else None

    @property
    def pings_nobody(self) -> bool:
        """Whether this payload, as written, could not ping anyone."""
        return is_no_mention(self.allowed_mentions)


def is_no_mention(allowed: Mapping[str, Any] | None) -> bool:
    """True for an ``allowed_mentions`` value that suppresses every ping.

    ``{"parse": []}`` is the canonical form; explicit empty ``users``/``roles``
    lists and ``replied_user: false`` are equivalent.  A missing value is not:
    Discord then parses every mention in the content.
    """
    if allowed is None:
        return False
    return (
        not allowed.get("parse")
        and not allowed.get("users")
        and not allowed.get("roles")
        and not allowed.get("replied_user")
    )


@dataclasses.dataclass
class CallbackRecord:
    """The initial response to an interaction (``POST .../callback``)."""

    type: int
    data: dict[str, Any] | None
    files: list[UploadedFile]
    at: float
    latency: float

    @property
    def flags(self) -> int:
        """Message flags carried by the callback data (0 when none)."""
        return int((self.data or {}).get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        """Whether the callback asked for an ephemeral response."""
        return bool(self.flags & FLAG_EPHEMERAL)


@dataclasses.dataclass
class MessageEditRecord:
    """An edit the bot made to a message belonging to an interaction."""

    message_id: int
    data: dict[str, Any]
    files: list[UploadedFile]
    at: float
    original: bool


class InteractionRecord:
    """Everything the bot did in answer to one interaction the fake dispatched.

    Message views (``original``, ``followups``, ``latest`` and the
    ``content``/``embeds``/... shortcuts) always read the *current* state of
    the message from the fake's store, so they reflect later edits.

    * ``original`` is the message of the initial response: created by a type 4
      callback, a "thinking" placeholder after a type 5 defer (flag 128 set
      until the bot edits it or sends its first follow-up, which replaces the
      placeholder as on real Discord), or, for component interactions answered
      with type 6/7, the message the component is on.
    * ``latest`` is whichever interaction message was most recently created or
      edited; ``content`` etc. read from it.
    """

    def __init__(
        self,
        *,
        interaction_id: int,
        token: str,
        type: int,
        payload: dict[str, Any],
        name: str | None,
        custom_id: str | None,
        messages: Mapping[int, dict[str, Any]],
        dispatched_at: float,
    ) -> None:
        self.id = interaction_id
        self.token = token
        # Sessions the INTERACTION_CREATE went to: 0 when no connection holds the server's shard.
        self.delivered = 0
        self.type = type
        self.payload = payload
        self.name = name
        self.custom_id = custom_id
        self.dispatched_at = dispatched_at
        # Seconds added to the token's age by FakeDiscord.age_token (tests do not sleep 15 min).
        self.token_aged_by = 0.0
        self.callback: CallbackRecord | None = None
        self.rejected: list[dict[str, Any]] = []
        self.original_message_id: int | None = None
        self.followup_ids: list[int] = []
        self.edits: list[MessageEditRecord] = []
        self.deleted_ids: list[int] = []
        self.choices: list[dict[str, Any]] | None = None
        self.modal: dict[str, Any] | None = None
        self.latest_message_id: int | None = None
        self._messages = messages
        self._notifier = Notifier()

    def __repr__(self) -> str:
        what = f"/{self.name}" if self.name else f"custom_id={self.custom_id!r}"
        resp = self.callback.type if self.callback else None
        return f"<InteractionRecord id={self.id} type={self.type} {what} response_type={resp}>"

    @property
    def label(self) -> str:
        """Human-readable name used in error messages."""
        if self.name:
            return f"{self.id} (/{self.name})"
        if self.custom_id:
            return f"{self.id} (custom_id={self.custom_id!r})"
        return str(self.id)

    def _changed(self) -> None:
        self._notifier.notify()

    # -- state -----------------------------------------------------------------

    @property
    def acknowledged(self) -> bool:
        """Whether the bot sent an accepted initial callback."""
        return self.callback is not None

    @property
    def response_type(self) -> int | None:
        """Callback type of the initial response, or ``None`` if not answered yet."""
        return self.callback.type if self.callback else None

    @property
    def response_time(self) -> float | None:
        """Seconds from dispatching INTERACTION_CREATE to receiving the initial callback."""
        return self.callback.latency if self.callback else None

    @property
    def deferred(self) -> bool:
        """Whether the initial response was a defer (type 5 or 6)."""
        return self.response_type in (
            CALLBACK_DEFERRED_CHANNEL_MESSAGE,
            CALLBACK_DEFERRED_UPDATE_MESSAGE,
        )

    @property
    def original(self) -> dict[str, Any] | None:
        """Current state of the original response message (see class docstring)."""
        if self.original_message_id is None:
            return None
        return self._messages.get(self.original_message_id)

    @property
    def followups(self) -> list[dict[str, Any]]:
        """Current state of every follow-up message, oldest first (deleted ones omitted)."""
        return [self._messages[i] for i in self.followup_ids if i in self._messages]

    @property
    def latest(self) -> dict[str, Any] | None:
        """The interaction message most recently created or edited."""
        if self.latest_message_id is None:
            return None
        return self._messages.get(self.latest_message_id)

    @property
    def content(self) -> str:
        """Content of :attr:`latest` (``""`` when there is no message)."""
        msg = self.latest
        return str(msg.get("content") or "") if msg else ""

    @property
    def embeds(self) -> list[dict[str, Any]]:
        """Embeds of :attr:`latest`."""
        msg = self.latest
        return list(msg.get("embeds") or []) if msg else []

    @property
    def components(self) -> list[dict[str, Any]]:
        """Top-level components of :attr:`latest`."""
        msg = self.latest
        return list(msg.get("components") or []) if msg else []

    @property
    def attachments(self) -> list[dict[str, Any]]:
        """Attachments of :attr:`latest` (each has ``url``, downloadable from the fake)."""
        msg = self.latest
        return list(msg.get("attachments") or []) if msg else []

    @property
    def flags(self) -> int:
        """Message flags of :attr:`latest`, else of the callback data."""
        msg = self.latest
        if msg is not None:
            return int(msg.get("flags") or 0)
        return self.callback.flags if self.callback else 0

    @property
    def ephemeral(self) -> bool:
        """Whether :attr:`latest` (or the pending response) is ephemeral (flag 64)."""
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def thinking(self) -> bool:
        """Whether the original is still the "Bot is thinking..." placeholder."""
        msg = self.original
        return bool(msg and int(msg.get("flags") or 0) & FLAG_LOADING)

    def custom_ids(self) -> list[str]:
        """Every ``custom_id`` on :attr:`latest`, in display order."""
        msg = self.latest
        if not msg:
            return []
        return [
            c["custom_id"] for c in iter_components(msg.get("components") or []) if "custom_id" in c
        ]

    # -- waiting ---------------------------------------------------------------

    async def wait_response(self, timeout: float = 3.0) -> CallbackRecord:
        """Wait for the initial callback.

        Raises :class:`InteractionTimeout` ("the bot did not answer interaction
        X within N s") if none arrives.  Discord itself gives up after 3 s.
        """
        try:
            return await self._notifier.wait_for(lambda: self.callback, timeout)
        except TimeoutError:
            extra = f"; rejected attempts: {self.rejected}" if self.rejected else ""
            raise InteractionTimeout(
                f"the bot did not answer interaction {self.label} within {timeout} s{extra}"
            ) from None

    async def wait_edit(self, n: int = 1, timeout: float = 5.0) -> MessageEditRecord:
        """Wait for the ``n``-th (1-based) edit of the original response and return it.

        Counts PATCHes of ``@original`` (or of the original's id) only; a type 7
        callback is the initial response, see :meth:`wait_response`.
        """

        def nth() -> MessageEditRecord | None:
            originals = [e for e in self.edits if e.original]
            return originals[n - 1] if len(originals) >= n else None

        try:
            return await self._notifier.wait_for(nth, timeout)
        except TimeoutError:
            count = len([e for e in self.edits if e.original])
            raise InteractionTimeout(
                f"the bot did not edit the original response of interaction {self.label} "
                f"{n} time(s) within {timeout} s (saw {count})"
            ) from None

    async def wait_followup(self, n: int = 1, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for the ``n``-th (1-based) follow-up message and return its current state."""

        def nth() -> dict[str, Any] | None:
            if len(self.followup_ids) < n:
                return None
            return self._messages.get(self.followup_ids[n - 1]) or {
                "id": str(self.followup_ids[n - 1]),
                "deleted": True,
            }

        try:
            return await self._notifier.wait_for(nth, timeout)
        except TimeoutError:
            raise InteractionTimeout(
                f"the bot did not send follow-up #{n} for interaction {self.label} within "
                f"{timeout} s "
                f"(saw {len(self.followup_ids)})"
            ) from None

    async def wait_message(self, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until the interaction shows a finished message (not a placeholder) and return it.

        Convenient when a test does not care whether the bot answered
        directly, deferred then edited, or deferred then followed up.
        """

        def visible() -> dict[str, Any] | None:
            msg = self.latest
            if msg is None or int(msg.get("flags") or 0) & FLAG_LOADING:
                return None
            if self.response_type not in (
                CALLBACK_CHANNEL_MESSAGE,
                CALLBACK_DEFERRED_CHANNEL_MESSAGE,
                CALLBACK_UPDATE_MESSAGE,
                CALLBACK_DEFERRED_UPDATE_MESSAGE,
            ):
                return None
            if (
                self.response_type == CALLBACK_DEFERRED_UPDATE_MESSAGE
                and not self.edits
                and not self.followup_ids
            ):
                return None
            return msg

        try:
            return await self._notifier.wait_for(visible, timeout)
        except TimeoutError:
            raise InteractionTimeout(
                f"the bot did not show a message for interaction {self.label} within {timeout} s "
                f"(response type {self.response_type})"
            ) from None
