"""The fake gateway: a websocket speaking Discord's JSON gateway protocol (v10).

It implements the parts a bot depends on for correctness: HELLO/IDENTIFY/
READY, per-guild GUILD_CREATE, heartbeats, intents (privileged-intent
refusal with 4014, event filtering by intent, blanking message content
without the MESSAGE_CONTENT intent), member chunking, sequence numbers, and
RESUME with replay of missed events, so tests can prove the bot survives a
dropped connection.  Sharding as Discord does it: an IDENTIFY with ``shard: [id, count]``
opens a session that receives only the servers of shard ``(guild_id >> 22) % count`` (and,
on shard 0, direct messages); an invalid shard is refused with 4010 and a shard that would
hold more than ``FakeDiscord.max_guilds_per_shard`` servers with 4011.  Frames are plain
JSON text; discord.py asks for ``zlib-stream`` but decodes text frames regardless.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from .constants import (
    BOT_USER_ID,
    CLOSE_ALREADY_AUTHENTICATED,
    CLOSE_AUTHENTICATION_FAILED,
    CLOSE_DISALLOWED_INTENTS,
    CLOSE_INVALID_INTENTS,
    CLOSE_INVALID_SHARD,
    CLOSE_NOT_AUTHENTICATED,
    CLOSE_SHARDING_REQUIRED,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGE_REACTIONS,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILD_PRESENCES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    NON_RESUMABLE_CLOSE_CODES,
    OP_DISPATCH,
    OP_HEARTBEAT,
    OP_HEARTBEAT_ACK,
    OP_HELLO,
    OP_IDENTIFY,
    OP_INVALID_SESSION,
    OP_PRESENCE_UPDATE,
    OP_RECONNECT,
    OP_REQUEST_GUILD_MEMBERS,
    OP_RESUME,
    OP_VOICE_STATE_UPDATE,
    PRIVILEGED_INTENTS,
)
from .payloads import JSONDict, strip_content

if TYPE_CHECKING:
    from .server import FakeDiscord

_log = logging.getLogger(__name__)

_REPLAY_BUFFER = 5000


@dataclasses.dataclass
class ConnectionRecord:
    """One websocket connection the bot opened (``path`` tells a resume URL from the default one).

    ``close_code`` is what the socket ended with as seen by the server (the
    client's reply when the server closed first); ``server_close_code`` is the
    code the fake itself sent, if it closed the connection.
    """

    path: str
    query: dict[str, str]
    opened_at: float
    closed_at: float | None = None
    close_code: int | None = None
    closed_by_server: bool = False
    server_close_code: int | None = None
    session_id: str | None = None
    resumed: bool = False


@dataclasses.dataclass
class ResumeRecord:
    """A RESUME the bot sent and how the fake answered it."""

    session_id: str
    seq: int | None
    accepted: bool
    replayed: int


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord delivers a server on."""
    return (int(guild_id) >> 22) % shard_count


def parse_shard(value: Any) -> tuple[int, int] | None:
    """IDENTIFY's ``shard: [id, count]`` if valid (``0 <= id < count``), else None."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    shard_id, count = value
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return None
    return (shard_id, count) if 0 <= shard_id < count else None


_GUILD_OBJECT_EVENTS = frozenset({"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"})
_DM_EVENT_PREFIXES = ("MESSAGE_", "INTERACTION_", "CHANNEL_", "TYPING_")


def event_guild(event: str, data: JSONDict) -> int | None:
    """The server an event belongs to (None: not a server's event)."""
    raw = data.get("id") if event in _GUILD_OBJECT_EVENTS else data.get("guild_id")
    return None if raw is None else int(raw)


class GatewaySession:
    """A gateway session: survives reconnects until invalidated, and buffers events for RESUME."""

    def __init__(self, session_id: str, identify: JSONDict) -> None:
        self.session_id = session_id
        self.identify = identify
        # (id, count) when the bot identified as one shard of several; None: unsharded.
        self.shard = parse_shard(identify["shard"]) if "shard" in identify else None
        self.intents: int = int(identify.get("intents") or 0)
        self.seq = 0
        self.log: collections.deque[tuple[int, str]] = collections.deque(maxlen=_REPLAY_BUFFER)
        self.ws: web.WebSocketResponse | None = None
        self.lock = asyncio.Lock()
        self.invalidated = False
        self.ready_sent = False

    def holds(self, guild_id: int) -> bool:
        """Whether this session's shard is the one that server's events go to."""
        return self.shard is None or shard_of(guild_id, self.shard[1]) == self.shard[0]

    def receives(self, event: str, data: JSONDict) -> bool:
        """Server events go to the server's shard, direct messages to shard 0, the rest to all."""
        guild = event_guild(event, data)
        if guild is not None:
            return self.holds(guild)
        if self.shard is not None and event.startswith(_DM_EVENT_PREFIXES):
            return self.shard[0] == 0
        return True


def required_intent(event: str, data: JSONDict) -> int | None:
    """The intent Discord requires before it sends ``event`` (``None`` = always sent)."""
    if event.startswith("MESSAGE_REACTION"):
        return INTENT_GUILD_MESSAGE_REACTIONS if data.get("guild_id") else None
    if event.startswith("MESSAGE_"):
        return INTENT_GUILD_MESSAGES if data.get("guild_id") else INTENT_DIRECT_MESSAGES
    if event in ("GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE"):
        return INTENT_GUILD_MEMBERS
    if event == "PRESENCE_UPDATE":
        return INTENT_GUILD_PRESENCES
    if (event.startswith("GUILD_") and event != "GUILD_MEMBERS_CHUNK") or event.startswith(
        ("CHANNEL_", "THREAD_")
    ):
        return INTENT_GUILDS
    return None


def needs_content_blanking(event: str, data: JSONDict, intents: int) -> bool:
    """Whether Discord would blank this message's content for a session with ``intents``.

    Exempt, as on Discord: the bot's own messages, messages that mention the
    bot, and DMs.
    """
    if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE") or intents & INTENT_MESSAGE_CONTENT:
        return False
    if not data.get("guild_id"):
        return False
    author = data.get("author") or {}
    if str(author.get("id")) == str(BOT_USER_ID):
        return False
    mentioned = {str(u.get("id")) for u in data.get("mentions") or [] if isinstance(u, dict)}
    return str(BOT_USER_ID) not in mentioned


class Gateway:
    """Accepts gateway websockets and routes dispatches to live sessions."""

    def __init__(self, fake: FakeDiscord) -> None:
        self._fake = fake
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[ConnectionRecord] = []
        self.identify_payloads: list[JSONDict] = []
        self.resumes: list[ResumeRecord] = []
        self.presence_updates: list[JSONDict] = []
        self.member_requests: list[JSONDict] = []
        self.sent_events: list[tuple[str, JSONDict]] = []
        self.heartbeats = 0
        self.ack_heartbeats = True
        self._sockets: set[web.WebSocketResponse] = set()

    # -- status ----------------------------------------------------------------------

    @property
    def active_sessions(self) -> list[GatewaySession]:
        """Sessions that may still receive events (connected now or resumable)."""
        return [s for s in self.sessions.values() if not s.invalidated]

    @property
    def connected_shards(self) -> set[tuple[int, int]]:
        """``(id, count)`` of every sharded session with a live websocket that got READY."""
        return {
            s.shard
            for s in self.active_sessions
            if s.shard is not None and s.ws is not None and not s.ws.closed and s.ready_sent
        }

    def session_starts(self) -> int:
        """IDENTIFYs that opened a session (what ``session_start_limit`` counts)."""
        return len(self.sessions)

    @property
    def connected(self) -> bool:
        """Whether some session has a live websocket and has been sent READY."""
        return any(
            s.ws is not None and not s.ws.closed and s.ready_sent for s in self.active_sessions
        )

    # -- websocket handler -------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """aiohttp handler for ``/`` and the resume URL."""
        ws = web.WebSocketResponse(autoclose=True, max_msg_size=0)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        record = ConnectionRecord(
            path=request.path, query=dict(request.query), opened_at=loop.time()
        )
        self.connections.append(record)
        self._sockets.add(ws)
        session: GatewaySession | None = None
        _log.debug("gateway connection opened on %s", request.path_qs)
        try:
            await self._send_raw(
                ws, {"op": OP_HELLO, "d": {"heartbeat_interval": self._fake.heartbeat_interval_ms}}
            )
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    _log.warning("gateway got non-JSON text frame: %r", msg.data[:200])
                    continue
                session = await self._on_frame(ws, frame, session, record)
        finally:
            self._sockets.discard(ws)
            record.closed_at = loop.time()
            record.close_code = ws.close_code
            if session is not None and session.ws is ws:
                session.ws = None
                if not record.closed_by_server and (ws.close_code in (1000, 1001)):
                    # A client closing with 1000/1001 ends its session on Discord.
                    session.invalidated = True
            _log.debug("gateway connection closed (code %s)", ws.close_code)
            self._fake._notify()
        return ws

    async def _on_frame(
        self,
        ws: web.WebSocketResponse,
        frame: JSONDict,
        session: GatewaySession | None,
        record: ConnectionRecord,
    ) -> GatewaySession | None:
        op = frame.get("op")
        data = frame.get("d")
        if op == OP_HEARTBEAT:
            self.heartbeats += 1
            if self.ack_heartbeats:
                await self._send_raw(ws, {"op": OP_HEARTBEAT_ACK})
            return session
        if op == OP_IDENTIFY:
            if session is not None:
                await self._close(ws, record, CLOSE_ALREADY_AUTHENTICATED, "Already authenticated.")
                return session
            return await self._identify(ws, data or {}, record)
        if op == OP_RESUME:
            if session is not None:
                await self._close(ws, record, CLOSE_ALREADY_AUTHENTICATED, "Already authenticated.")
                return session
            return await self._resume(ws, data or {}, record)
        if session is None:
            await self._close(ws, record, CLOSE_NOT_AUTHENTICATED, "Not authenticated.")
            return None
        if op == OP_PRESENCE_UPDATE:
            self.presence_updates.append(data or {})
        elif op == OP_REQUEST_GUILD_MEMBERS:
            self.member_requests.append(data or {})
            await self._send_member_chunk(session, data or {})
        elif op == OP_VOICE_STATE_UPDATE:
            pass
        else:
            _log.warning("gateway got unsupported opcode %s", op)
        self._fake._notify()
        return session

    async def _identify(
        self, ws: web.WebSocketResponse, data: JSONDict, record: ConnectionRecord
    ) -> GatewaySession | None:
        fake = self._fake
        self.identify_payloads.append(copy.deepcopy(data))
        fake._notify()
        if data.get("token") != fake.token:
            await self._close(ws, record, CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
            return None
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await self._close(ws, record, CLOSE_INVALID_INTENTS, "Invalid intent(s).")
            return None
        if intents & PRIVILEGED_INTENTS & ~fake.allowed_privileged_intents:
            await self._close(ws, record, CLOSE_DISALLOWED_INTENTS, "Disallowed intent(s).")
            return None
        if "shard" in data and parse_shard(data["shard"]) is None:
            await self._close(ws, record, CLOSE_INVALID_SHARD, "Invalid shard.")
            return None
        session = GatewaySession(secrets.token_hex(16), data)
        held = [gid for gid in fake.world.guilds if session.holds(gid)]
        limit = fake.max_guilds_per_shard
        if limit is not None and len(held) > limit:
            await self._close(ws, record, CLOSE_SHARDING_REQUIRED, "Sharding required.")
            return None
        self.sessions[session.session_id] = session
        record.session_id = session.session_id
        async with session.lock:
            session.ws = ws
        await self._dispatch_to(session, "READY", fake._ready_payload(session))
        session.ready_sent = True
        for gid in held:
            await self._dispatch_to(
                session, "GUILD_CREATE", fake._guild_create_payload(gid, session.intents)
            )
        fake._notify()
        return session

    async def _resume(
        self, ws: web.WebSocketResponse, data: JSONDict, record: ConnectionRecord
    ) -> GatewaySession | None:
        session = self.sessions.get(str(data.get("session_id")))
        seq = data.get("seq")
        if session is None or session.invalidated or data.get("token") != self._fake.token:
            self.resumes.append(
                ResumeRecord(str(data.get("session_id")), seq, accepted=False, replayed=0)
            )
            await self._send_raw(ws, {"op": OP_INVALID_SESSION, "d": False})
            self._fake._notify()
            return None
        replayed = 0
        async with session.lock:
            old = session.ws
            session.ws = ws
            if old is not None and old is not ws and not old.closed:
                await old.close(code=4000)
            for frame_seq, frame in list(session.log):
                if seq is None or frame_seq > int(seq):
                    await self._send_text(ws, frame)
                    replayed += 1
            session.seq += 1
            resumed = json.dumps(
                {
                    "op": OP_DISPATCH,
                    "t": "RESUMED",
                    "s": session.seq,
                    "d": {"_trace": ["fake-discord"]},
                }
            )
            session.log.append((session.seq, resumed))
            await self._send_text(ws, resumed)
        record.session_id = session.session_id
        record.resumed = True
        self.resumes.append(ResumeRecord(session.session_id, seq, accepted=True, replayed=replayed))
        _log.debug("session %s resumed, replayed %d events", session.session_id, replayed)
        self._fake._notify()
        return session

    async def _send_member_chunk(self, session: GatewaySession, data: JSONDict) -> None:
        world = self._fake.world
        raw_ids = data.get("guild_id")
        guild_ids = raw_ids if isinstance(raw_ids, list) else [raw_ids]
        for raw in guild_ids:
            if raw is None:
                continue
            state = world.guilds.get(int(raw))
            if state is None:
                continue
            members = list(state.members.values())
            user_ids = data.get("user_ids")
            not_found: list[str] = []
            if user_ids:
                wanted = [int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])]
                members = [state.members[u] for u in wanted if u in state.members]
                not_found = [str(u) for u in wanted if u not in state.members]
            elif data.get("query"):
                query = str(data["query"]).lower()
                members = [
                    m for m in members if str(m["user"]["username"]).lower().startswith(query)
                ]
            limit = int(data.get("limit") or 0)
            if limit:
                members = members[:limit]
            payload: JSONDict = {
                "guild_id": str(state.id),
                "members": copy.deepcopy(members),
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": not_found,
            }
            if data.get("nonce") is not None:
                payload["nonce"] = data["nonce"]
            await self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", payload)

    # -- sending -------------------------------------------------------------------------

    async def _send_raw(self, ws: web.WebSocketResponse, frame: JSONDict) -> None:
        await self._send_text(ws, json.dumps(frame))

    async def _send_text(self, ws: web.WebSocketResponse, text: str) -> bool:
        if ws.closed:
            return False
        try:
            await ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            _log.debug("gateway send failed (%s); the event stays buffered for RESUME", exc)
            return False
        return True

    async def _close(
        self, ws: web.WebSocketResponse, record: ConnectionRecord, code: int, reason: str
    ) -> None:
        record.closed_by_server = True
        record.server_close_code = code
        _log.debug("gateway closing connection with %s (%s)", code, reason)
        await ws.close(code=code, message=reason.encode())

    async def _dispatch_to(self, session: GatewaySession, event: str, data: JSONDict) -> bool:
        """Sequence, buffer and (if connected) send one event to one session."""
        if needs_content_blanking(event, data, session.intents):
            data = strip_content(data)
        async with session.lock:
            session.seq += 1
            text = json.dumps({"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data})
            session.log.append((session.seq, text))
            self.sent_events.append((event, data))
            ws = session.ws
            if ws is None:
                return False
            return await self._send_text(ws, text)

    async def dispatch(self, event: str, data: JSONDict) -> int:
        """Send ``event`` to every session whose intents allow it; returns how many received or
        buffered it.
        """
        needed = required_intent(event, data)
        count = 0
        for session in self.active_sessions:
            if not session.ready_sent:
                continue
            if needed is not None and not session.intents & needed:
                _log.debug("not sending %s: session lacks intent %s", event, needed)
                continue
            if not session.receives(event, data):
                continue
            await self._dispatch_to(session, event, data)
            count += 1
        self._fake._notify()
        return count

    # -- connection control ----------------------------------------------------------------

    async def disconnect(self, code: int = 4000, *, resumable: bool | None = None) -> None:
        """Close every live connection from the server side, like a Discord-side drop."""
        if resumable is None:
            resumable = code not in NON_RESUMABLE_CLOSE_CODES
        for session in self.active_sessions:
            ws = session.ws
            if not resumable:
                session.invalidated = True
            if ws is None:
                continue
            async with session.lock:
                session.ws = None
            for record in self.connections:
                if record.session_id == session.session_id and record.closed_at is None:
                    record.closed_by_server = True
                    record.server_close_code = code
            await ws.close(code=code, message=b"fake-discord disconnect")
        self._fake._notify()

    async def send_op(self, op: int, data: Any = None) -> None:
        """Send a non-dispatch opcode (e.g. RECONNECT, INVALID_SESSION) to every live connection."""
        for session in self.active_sessions:
            if session.ws is not None:
                if op == OP_INVALID_SESSION and not data:
                    session.invalidated = True
                await self._send_raw(session.ws, {"op": op, "d": data})

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT; the client closes and resumes."""
        await self.send_op(OP_RECONNECT)

    async def close_all(self) -> None:
        """Close every socket (server shutdown)."""
        for ws in list(self._sockets):
            if not ws.closed:
                await ws.close(code=1001, message=b"fake-discord stopping")
