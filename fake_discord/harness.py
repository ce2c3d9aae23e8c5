"""Helpers that run a real discord.py bot against the fake inside a test.

``running_bot`` owns the bot's lifetime: it logs in, connects, waits for
``on_ready``, and on exit closes the bot and awaits its task, so no task,
socket or thread outlives the test.  It also collects exceptions discord.py
would only log ("Ignoring exception in ..."), because a bot bug that
discord.py swallows must still fail the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .records import FakeDiscordError, FakeTimeout
from .server import FakeDiscord

if TYPE_CHECKING:
    import discord

ClientT = TypeVar("ClientT", bound="discord.Client")

_log = logging.getLogger(__name__)


class BotErrorCollector(logging.Handler):
    """Collects ERROR records with tracebacks from the ``discord`` loggers."""

    def __init__(self, fake: FakeDiscord) -> None:
        super().__init__(level=logging.ERROR)
        self._fake = fake

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self._fake.bot_errors.append(record)


class BotErrors(AssertionError):
    """discord.py swallowed exceptions raised inside the bot during the test."""


def _format_errors(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s: %(message)s")
    parts = []
    for rec in records:
        text = formatter.format(rec)
        parts.append(text)
    return "\n\n".join(parts)


class running_bot(Generic[ClientT]):
    """``async with running_bot(fake, bot) as bot:`` — the bot is logged in, connected and ready
    inside.

    * ``token`` defaults to ``fake.token`` (pass another to test login failure).
    * Login errors (``LoginFailure``) and connection errors before READY
      (``PrivilegedIntentsRequired``) are raised from ``__aenter__``.
    * ``guild_ready_timeout``: discord.py waits this long after the last
      GUILD_CREATE before firing ``on_ready`` (its default is 2 s); 0.2 s is
      plenty on loopback and keeps tests fast.  ``None`` keeps the bot's value.
    * On exit the bot is closed and its task awaited; an exception that ended
      the bot's connection task is re-raised, and with
      ``fail_on_bot_errors=True`` so are exceptions discord.py only logged.
    * If the fake is not yet installed, it is installed for the duration.
    """

    def __init__(
        self,
        fake: FakeDiscord,
        bot: ClientT,
        token: str | None = None,
        *,
        ready_timeout: float = 10.0,
        guild_ready_timeout: float | None = 0.2,
        close_timeout: float = 10.0,
        fail_on_bot_errors: bool = True,
    ) -> None:
        self.fake = fake
        self.bot = bot
        self.token = fake.token if token is None else token
        self.ready_timeout = ready_timeout
        self.guild_ready_timeout = guild_ready_timeout
        self.close_timeout = close_timeout
        self.fail_on_bot_errors = fail_on_bot_errors
        self.task: asyncio.Task[None] | None = None
        self._installed_here = False
        self._collector = BotErrorCollector(fake)

    async def __aenter__(self) -> ClientT:
        fake, bot = self.fake, self.bot
        if not fake.installed:
            fake.install()
            self._installed_here = True
        logging.getLogger("discord").addHandler(self._collector)
        try:
            await self._start()
        except BaseException:
            await self._teardown()
            raise
        return bot

    async def _start(self) -> None:
        bot = self.bot
        if self.guild_ready_timeout is not None:
            # ConnectionState reads this when the READY burst ends; it is the
            # only knob for on_ready latency and has no public setter.
            bot._connection.guild_ready_timeout = self.guild_ready_timeout
        await bot.login(self.token)
        self.task = asyncio.create_task(
            bot.connect(reconnect=True), name="fake-discord:bot.connect"
        )
        ready = asyncio.create_task(bot.wait_until_ready(), name="fake-discord:wait_until_ready")
        try:
            done, _ = await asyncio.wait(
                {self.task, ready}, timeout=self.ready_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not ready.done():
                ready.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ready
        if self.task in done:
            exc = self.task.exception()
            if exc is not None:
                raise exc
            raise FakeDiscordError("the bot's connection ended before it became ready")
        if ready not in done:
            raise FakeTimeout(
                f"the bot did not become ready within {self.ready_timeout} s "
                f"(connections: {len(self.fake.gateway.connections)}, identifies: "
                f"{len(self.fake.identify_payloads)}, "
                "requests: "
                f"{[f'{r.method} {r.path} -> {r.status}' for r in self.fake.requests[-5:]]})"
            )

    async def _teardown(self) -> BaseException | None:
        """Close the bot and wait for its task; returns the task's exception, if any."""
        failure: BaseException | None = None
        try:
            await asyncio.wait_for(self.bot.close(), self.close_timeout)
        except Exception as exc:  # a failing close must not hide the test's own error
            _log.warning("closing the bot failed: %r", exc)
        task = self.task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), self.close_timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                failure = FakeTimeout(
                    f"the bot's connection task did not finish within {self.close_timeout} s of "
                    "close()"
                )
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
            except Exception as exc:
                failure = exc
        logging.getLogger("discord").removeHandler(self._collector)
        if self._installed_here:
            self.fake.uninstall()
            self._installed_here = False
        return failure

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failure = await self._teardown()
        if exc is not None:
            return
        if failure is not None:
            raise failure
        if self.fake.internal_errors:
            raise FakeDiscordError(
                "the fake itself crashed while serving the bot:\n"
                + "\n".join(self.fake.internal_errors)
            )
        if self.fake.spec_violations:
            raise FakeDiscordError(
                "requests Discord's published rules refuse (OpenAPI spec, documented limits):\n"
                + "\n".join(self.fake.spec_violations)
            )
        if self.fail_on_bot_errors and self.fake.bot_errors:
            raise BotErrors(
                "discord.py logged exceptions from the bot:\n"
                + _format_errors(self.fake.bot_errors)
            )


@dataclasses.dataclass
class BasicWorld:
    """A small ready-made world: one guild, a text channel, a thread, an admin and a regular
    member.
    """

    guild: dict[str, Any]
    channel: dict[str, Any]
    thread: dict[str, Any]
    owner: dict[str, Any]
    admin: dict[str, Any]
    user: dict[str, Any]

    @property
    def guild_id(self) -> int:
        return int(self.guild["id"])

    @property
    def channel_id(self) -> int:
        return int(self.channel["id"])

    @property
    def thread_id(self) -> int:
        return int(self.thread["id"])

    @property
    def admin_id(self) -> int:
        return int(self.admin["id"])

    @property
    def user_id(self) -> int:
        return int(self.user["id"])


def basic_world(fake: FakeDiscord, *, guild_name: str = "Test Guild") -> BasicWorld:
    """Populate ``fake`` with a guild, ``#general``, a thread, an admin (Manage Guild) and a plain
    member.
    """
    guild = fake.add_guild(guild_name)
    channel = fake.add_text_channel(guild["id"], "general")
    thread = fake.add_thread(channel["id"], "a-thread")
    owner = fake.world.user(guild["owner_id"])
    admin = fake.add_user("admin")
    fake.add_member(guild["id"], admin["id"])
    fake.make_admin(guild["id"], admin["id"])
    user = fake.add_user("alice")
    fake.add_member(guild["id"], user["id"])
    return BasicWorld(
        guild=guild, channel=channel, thread=thread, owner=owner, admin=admin, user=user
    )


@contextlib.asynccontextmanager
async def started_fake(
    *, token: str = "test-token", setup: Callable[[FakeDiscord], Any] | None = None
) -> AsyncIterator[FakeDiscord]:
    """A started and installed :class:`FakeDiscord`, stopped and uninstalled afterwards."""
    fake = FakeDiscord(token=token)
    async with fake:
        if setup is not None:
            setup(fake)
        yield fake


def fake_discord_fixture(
    *,
    name: str = "fake_discord",
    token: str = "test-token",
    setup: Callable[[FakeDiscord], Any] | None = None,
) -> Any:
    """Build a function-scoped async pytest fixture yielding a started, installed
    :class:`FakeDiscord`.

    In ``conftest.py``::

        from fake_discord import fake_discord_fixture
        fake_discord = fake_discord_fixture()

    ``setup`` may populate the world (e.g. ``basic_world``) before the test runs.
    """
    import pytest_asyncio

    @pytest_asyncio.fixture(name=name)
    async def _fixture() -> AsyncIterator[FakeDiscord]:
        async with started_fake(token=token, setup=setup) as fake:
            yield fake

    return _fixture
