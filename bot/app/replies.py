"""One error handler for every slash command: a short answer, never silence.

Errors a member can fix (a bad option, an unknown word, no permission, a cooldown) get one
ephemeral sentence saying what to do; anything unexpected is logged with its context and
answered with an apology, so no interaction is ever left "not responding". A command that
may wait on a write (a locked database can hold it 5 s, past Discord's 3) acknowledges first
with :func:`acknowledge`, so its answer, or its error, can still be shown.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import discord
from discord import app_commands

from bot.core.model import EmptyModel, UnknownStart
from bot.core.present import shorten
from bot.core.sampling import InvalidOption
from bot.core.text import storable
from bot.store.errors import transient_cause

__all__ = [
    "MarkovTree",
    "UserFacingError",
    "acknowledge",
    "answer",
    "echo",
    "reply_to_error",
]

log = logging.getLogger(__name__)

DEFERRED_MESSAGE = discord.InteractionResponseType.deferred_channel_message
#: Set in ``interaction.extras`` by :func:`acknowledge`: the placeholder is the member's only.
_PRIVATE_PLACEHOLDER = "private placeholder"


class UserFacingError(app_commands.AppCommandError):
    """Raised by cogs with a message meant for the member who ran the command; any text
    of the member's it quotes goes through :func:`echo`."""


def echo(text: str, limit: int | None = None) -> str:
    """Text a member typed (or chose as a name), quoted back to them: shown as typed, never
    as markdown or a mention. Cut to ``limit`` characters first, as escaping lengthens it."""
    if limit is not None:
        text = shorten(text, limit)
    return discord.utils.escape_markdown(discord.utils.escape_mentions(text))


async def acknowledge(interaction: discord.Interaction) -> None:
    """Answer "thinking…" to the member alone, now: for a command that may wait on a write.
    Its :func:`answer` then fills the placeholder."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    interaction.extras[_PRIVATE_PLACEHOLDER] = True


async def answer(interaction: discord.Interaction, content: str, *, ephemeral: bool = True) -> None:
    """Reply whether or not the interaction was already answered or deferred."""
    content = content[:2000]
    if interaction.response.is_done():
        public_placeholder = not interaction.extras.get(_PRIVATE_PLACEHOLDER)
        if ephemeral and public_placeholder and interaction.response.type is DEFERRED_MESSAGE:
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


def _clean_options(data: Any) -> None:
    """Every typed option value (nested under subcommands, the focused one of an
    autocomplete too) made :func:`bot.core.text.storable`, in place."""
    for option in (data or {}).get("options", ()):
        if isinstance(option.get("value"), str):
            option["value"] = storable(option["value"])
        _clean_options(option)


class MarkovTree(app_commands.CommandTree[discord.Client]):
    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        # Before discord.py reads the options: commands and autocomplete see only text
        # that can be stored and quoted back.
        _clean_options(interaction.data)
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        command = interaction.command.qualified_name if interaction.command else "?"
        await reply_to_error(interaction, error, f"/{command}")
