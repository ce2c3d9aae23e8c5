"""One error handler for every slash command: a short answer, never silence.

Errors a member can fix (a bad option, an unknown word, no permission, a cooldown) get one
ephemeral sentence saying what to do; anything unexpected is logged with its context and
answered with an apology, so no interaction is ever left "not responding".
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3

import discord
from discord import app_commands

from bot.model import EmptyModel, UnknownStart
from bot.sampling import InvalidOption

__all__ = ["MarkovTree", "UserFacingError", "answer", "reply_to_error"]

log = logging.getLogger(__name__)

DEFERRED_MESSAGE = discord.InteractionResponseType.deferred_channel_message

# Conditions that pass: another writer holding the lock, a full disk being cleaned up.
_TRANSIENT = re.compile(r"locked|busy|disk is full|database or disk is full", re.IGNORECASE)


class UserFacingError(app_commands.AppCommandError):
    """Raised by cogs with a message meant for the member who ran the command."""


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
        case UserFacingError() | InvalidOption() | UnknownStart():
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
            return str(error) or "That option isn't valid."
        case sqlite3.OperationalError() if _TRANSIENT.search(str(error)):
            log.error("database unavailable: %s", error)
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


class MarkovTree(app_commands.CommandTree[discord.Client]):
    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        command = interaction.command.qualified_name if interaction.command else "?"
        await reply_to_error(interaction, error, f"/{command}")
