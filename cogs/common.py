"""Helpers every cog shares: choosing the model, making text safe, fitting Discord's limits."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.corpora import CORPORA
from bot.importing import corpus_namespace
from bot.model import TEACHING_ORDER, ModelReader
from bot.present import shorten

from .errors import UserFacingError

if TYPE_CHECKING:
    from bot.app import MarkovBot

__all__ = [
    "CORPUS_CHOICES",
    "inert",
    "model_for",
    "require_admin",
]

MESSAGE_LIMIT = 2000

CORPUS_CHOICES = [
    app_commands.Choice(name=shorten(c.title, 100), value=c.name) for c in CORPORA.values()
]

_INVITE = re.compile(r"(discord(?:app)?\.(?:gg|com/invite)/)", re.IGNORECASE)
_MASKED_LINK = re.compile(r"\[([^\]]*)\]\((<?https?://[^)]*>?)\)")
_URL = re.compile(r"(https?://\S+)")


def inert(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Generated text that can't ping, invite or disguise a link, within ``limit`` chars.

    Allowed-mentions already stop notifications; this also keeps learned ``@everyone``,
    user/role mentions, invites and masked links from *looking* live in the channel.
    """
    text = discord.utils.escape_mentions(text)
    text = _MASKED_LINK.sub(lambda m: f"{m.group(1)} ({m.group(2).strip('<>')})", text)
    text = _INVITE.sub(lambda m: m.group(1).replace("/", "/\u200b"), text)
    text = _URL.sub(r"<\1>", text)  # no embeds unfurling from generated text
    return shorten(text, limit)


def require_admin(interaction: discord.Interaction) -> None:
    """Checked by the bot itself: Discord's default permissions are only a UI hint."""
    member = interaction.user
    if not isinstance(member, discord.Member) or not member.guild_permissions.manage_guild:
        raise app_commands.MissingPermissions(["manage_guild"])


async def model_for(
    bot: MarkovBot,
    interaction: discord.Interaction,
    *,
    corpus: str | None = None,
    user: discord.abc.User | None = None,
    channel: discord.abc.GuildChannel | discord.Thread | None = None,
) -> tuple[ModelReader, str]:
    """The model a command should read, and a short label of what it is."""
    if corpus:
        chosen = CORPORA.get(corpus)
        if chosen is None:
            raise UserFacingError(f"There is no bundled corpus called “{shorten(corpus, 40)}”.")
        ns = await corpus_namespace(bot.store, chosen, TEACHING_ORDER)
        return bot.store.reader(ns), chosen.title
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    ns = await bot.namespace(interaction.guild_id)
    if user is None and channel is None:
        return bot.store.reader(ns), "this server"
    if user is not None:
        from .learning import Learning

        consents = await bot.guild_config.member_consent(interaction.guild_id)
        config = await bot.guild_config.config(interaction.guild_id)
        if not Learning.consents_for(config.consent, consents.get(user.id)):
            raise UserFacingError(
                f"{user.display_name} hasn't agreed to be imitated "
                "(they can use `/markov-privacy optin`)."
            )
    model = await bot.store.selection(
        ns,
        author=user.id if user else None,
        channel=channel.id if channel else None,
    )
    if model.messages == 0:
        raise UserFacingError("I haven't learned any messages from that selection yet.")
    parts = [p for p in (user and user.display_name, channel and f"#{channel.name}") if p]
    return model, " in ".join(parts)
