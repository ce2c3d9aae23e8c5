"""One error handler for every slash command: a short answer, never silence.

Errors a member can fix (a bad option, an unknown word, no permission, a cooldown) get one
ephemeral sentence saying what to do; anything unexpected is logged with its context and
answered with an apology, so no interaction is ever left "not responding". A command still
working ``ACK_AFTER`` seconds after it arrived (a write waiting for a locked database can wait
5 s) is deferred by the tree, so its answer, or its error, can still be shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import discord
from discord import app_commands

from bot.model import EmptyModel, UnknownStart
from bot.present import shorten
from bot.sampling import InvalidOption
from bot.store.errors import transient_cause
from bot.tasks import create_task
from bot.text import storable

__all__ = ["MarkovTree", "UserFacingError", "answer", "echo", "reply_to_error"]

log = logging.getLogger(__name__)

DEFERRED_MESSAGE = discord.InteractionResponseType.deferred_channel_message

#: Discord forgets an interaction not acknowledged within 3 s of sending it; a command that
#: has not answered after this long is deferred for it (the rest is the network's margin).
ACK_AFTER = 2.0


class UserFacingError(app_commands.AppCommandError):
    """Raised by cogs with a message meant for the member who ran the command; any text
    of the member's it quotes goes through :func:`echo`."""


def echo(text: str, limit: int | None = None) -> str:
    """Text a member typed (or chose as a name), quoted back to them: shown as typed, never
    as markdown or a mention. Cut to ``limit`` characters first, as escaping lengthens it."""
    if limit is not None:
        text = shorten(text, limit)
    return discord.utils.escape_markdown(discord.utils.escape_mentions(text))


async def answer(interaction: discord.Interaction, content: str, *, ephemeral: bool = True) -> None:
    """Reply whether or not the interaction was already answered or deferred."""
    content = content[:2000]
    if interaction.response.is_done():
        if ephemeral and interaction.response.type is DEFERRED_MESSAGE:
            # The first follow-up would fill the "thinking…" placeholder and keep the defer's
            # visibility, showing a public command's error to the whole channel. Without the
            # placeholder, the follow-up is a new message and can be ephemeral.
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
        await interaction.followup.send(content, ephemeral=ephemeral)
    else:
        await interaction.response.send_message(content, ephemeral=ephemeral)


def explain_error(error: BaseException) -> str | None:
    """The sentence for an error the user can act on, or None if it is our fault."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    match error:
        case InvalidOption() | UnknownStart():
            return echo(str(error))  # they quote what the member typed
        case UserFacingError():
            return str(error)
        case EmptyModel():
            return (
                "I haven't learned anything here yet. An admin can enable learning with "
                "`/markov-admin listen`, or try a bundled corpus with the `corpus` option."
            )
        case app_commands.CommandOnCooldown():
            return f"Slow down a little: try again in {error.retry_after:.0f} s."
        case app_commands.MissingPermissions():
            return "You need the Manage Server permission for that."
        case app_commands.NoPrivateMessage():
            return "This command works in servers, not in direct messages."
        case app_commands.TransformerError() | app_commands.CheckFailure():
            # A transformer's message quotes the value it could not convert.
            return echo(str(error)) or "That option isn't valid."
    transient = transient_cause(error)
    if transient is not None:
        log.error("database unavailable: %s", transient)
        return "My database is busy or full right now; please try again in a minute."
    return None


async def reply_to_error(interaction: discord.Interaction, error: BaseException, what: str) -> None:
    """The one answer to a failed command or button: what to do, or an apology."""
    message = explain_error(error)
    if message is None:
        log.error(
            "%s failed (guild %s, channel %s, user %s)",
            what,
            interaction.guild_id,
            interaction.channel_id,
            interaction.user.id,
            exc_info=error,
        )
        message = "Sorry, something went wrong on my side. It has been logged."
    try:
        await answer(interaction, message)
    except discord.HTTPException:
        log.warning("could not send the error reply for interaction %s", interaction.id)


class _DeadlineResponse(discord.InteractionResponse[discord.Client]):
    """``interaction.response`` of a slash command, with a deadline.

    If the command has neither answered nor deferred ``ACK_AFTER`` seconds after it arrived,
    this defers it ("thinking…", shown to the invoker only). The command's own ``defer``
    then does nothing, and its ``send_message`` becomes the follow-up that replaces the
    placeholder, with the visibility the command asked for.
    """

    __slots__ = ("_ack_lock", "_late", "_timer")

    def __init__(self, parent: discord.Interaction) -> None:
        super().__init__(parent)
        self._ack_lock = asyncio.Lock()
        self._late = False
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(ACK_AFTER, self._start_late_ack)

    def _start_late_ack(self) -> None:
        create_task(self._acknowledge_late(), name=f"late ack of {self._parent.id}")

    async def _acknowledge_late(self) -> None:
        async with self._ack_lock:
            if self.is_done():
                return
            try:
                await super().defer(ephemeral=True, thinking=True)
            except Exception as e:  # expired, or the bot is shutting down
                log.warning("could not defer slow interaction %s: %s", self._parent.id, e)
                return
            self._late = True
        command = self._parent.command
        log.warning(
            "/%s has not answered after %.1f s; deferred it",
            command.qualified_name if command else "?",
            ACK_AFTER,
        )

    async def defer(self, *, ephemeral: bool = False, thinking: bool = False) -> Any:
        async with self._ack_lock:
            if not self._late:
                result = await super().defer(ephemeral=ephemeral, thinking=thinking)
                self._timer.cancel()
                return result
        return None  # deferred already: the command's follow-ups fill the placeholder

    async def send_message(self, *args: Any, **kwargs: Any) -> Any:
        async with self._ack_lock:
            if not self._late:
                result = await super().send_message(*args, **kwargs)
                self._timer.cancel()
                return result
        content = args[0] if args else kwargs.pop("content", None)
        ephemeral = bool(kwargs.pop("ephemeral", False))
        kwargs.pop("delete_after", None)  # follow-ups cannot expire
        if not ephemeral:  # the placeholder is ephemeral; a public answer needs a new message
            with contextlib.suppress(discord.HTTPException):
                await self._parent.delete_original_response()
        if content is not None:
            kwargs["content"] = str(content)
        await self._parent.followup.send(ephemeral=ephemeral, wait=True, **kwargs)
        return None


def _clean_options(data: Any) -> None:
    """Every typed option value (nested under subcommands, the focused one of an
    autocomplete too) made :func:`bot.text.storable`, in place."""
    for option in (data or {}).get("options", ()):
        if isinstance(option.get("value"), str):
            option["value"] = storable(option["value"])
        _clean_options(option)


class MarkovTree(app_commands.CommandTree[discord.Client]):
    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        # Before discord.py reads the options: commands and autocomplete see only text
        # that can be stored and quoted back.
        _clean_options(interaction.data)
        if interaction.type is discord.InteractionType.application_command:
            # discord.py pre-fills this cached slot itself for the command and namespace.
            interaction._cs_response = _DeadlineResponse(interaction)  # type: ignore[attr-defined]
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        command = interaction.command.qualified_name if interaction.command else "?"
        await reply_to_error(interaction, error, f"/{command}")
