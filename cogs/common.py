"""Helpers every cog shares: choosing the model, making text safe, fitting Discord's limits."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.app.replies import UserFacingError, echo
from bot.core.model import TEACHING_ORDER, ModelReader
from bot.core.present import shorten
from bot.core.sampling import MAX_PENALTY, MAX_TEMPERATURE, Knobs, parse_bias, parse_words
from bot.corpora import CORPORA
from bot.services.importing import CORPUS_PREFIX, corpus_namespace
from bot.services.servers import upload_namespace_name

if TYPE_CHECKING:
    from bot.app import MarkovBot

__all__ = [
    "KNOB_DESCRIPTIONS",
    "MAX_SEED",
    "SHARED_DESCRIPTIONS",
    "CorpusName",
    "MinP",
    "Penalty",
    "RepetitionPenalty",
    "Seed",
    "WordList",
    "corpus_autocomplete",
    "inert",
    "knobs_from",
    "model_for",
    "require_admin",
    "shared",
]

MESSAGE_LIMIT = 2000

#: A corpus option: a bundled corpus's name or an upload's (at most 32 characters, see
#: ``cogs.admin.CORPUS_NAME``). Declaring the length makes Discord refuse longer text.
CorpusName = app_commands.Range[str, 1, 32]
#: A temperature option: Discord refuses values outside 0..5 before the command runs.
Temperature = app_commands.Range[float, 0.0, MAX_TEMPERATURE]

#: Discord's integer options hold -(2^53 - 1) .. 2^53 - 1; a bound outside that makes it refuse
#: the whole command registration, leaving the server with no commands.
MAX_SEED = 2**53 - 1
#: A seed option, the same on every command that takes one.
Seed = app_commands.Range[int, 0, MAX_SEED]


#: The sampling lab's options, declared once for every command that takes them.
MinP = app_commands.Range[float, 0.0, 1.0]
RepetitionPenalty = app_commands.Range[float, 1.0, MAX_PENALTY]
Penalty = app_commands.Range[float, 0.0, MAX_PENALTY]
WordList = app_commands.Range[str, 1, 200]
#: What the options several commands share say, declared once (see :func:`shared`).
SHARED_DESCRIPTIONS = {
    "corpus": "Use a bundled public-domain corpus instead of this server",
    "top_k": "Keep only the K likeliest next words (0 = off)",
    "top_p": "Keep the likeliest words up to this total probability (1 = off)",
}


def shared(*names: str) -> dict[str, str]:
    """The shared descriptions of ``names``, for ``app_commands.describe(**shared(...))``."""
    return {name: SHARED_DESCRIPTIONS[name] for name in names}


KNOB_DESCRIPTIONS = {
    "min_p": "Keep words at least this × as likely as the top word (0 = off)",
    "repetition_penalty": "Multiply the logit of a word already used by this (1 = off)",
    "presence_penalty": "Lower the logit of a word already used by this (0 = off)",
    "frequency_penalty": "Lower a used word's logit by this × the times it was used (0 = off)",
    "ban": "Words never to choose, separated by spaces (<end> too)",
    "bias": "Add to words' logits, for example cat=+2 dog=-1",
}


def knobs_from(
    min_p: float | None,
    repetition_penalty: float,
    presence_penalty: float,
    frequency_penalty: float,
    ban: str | None,
    bias: str | None,
) -> Knobs:
    """The options as one validated :class:`Knobs` (a bad value raises InvalidOption)."""
    return Knobs(
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        presence_penalty=presence_penalty,
        frequency_penalty=frequency_penalty,
        ban=parse_words(ban),
        bias=parse_bias(bias),
    ).validated()


def corpus_namespace_name(guild_id: int, corpus: str) -> str:
    """Where a corpus option's model lives: shared for bundled ones, per server for uploads."""
    if corpus in CORPORA:
        return CORPUS_PREFIX + corpus
    return upload_namespace_name(guild_id, corpus)


async def corpus_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """The bundled corpora, then this server's uploaded ones, matching what was typed."""
    bot: MarkovBot = interaction.client  # type: ignore[assignment]
    typed = current.casefold()
    choices = [
        app_commands.Choice(name=shorten(f"{c.title} ({c.licence})", 100), value=c.name)
        for c in CORPORA.values()
        if typed in c.name or typed in c.title.casefold()
    ]
    if interaction.guild_id is not None:
        choices += [
            app_commands.Choice(name=shorten(f"{n} (this server's upload)", 100), value=n)
            for n in await bot.servers.uploads(interaction.guild_id)
            if typed in n.casefold()
        ]
    return choices[:25]


_INVITE = re.compile(r"(discord(?:app)?\.(?:gg|com/invite)/)", re.IGNORECASE)
# A URL may hold balanced parentheses (Wikipedia's "Foo_(bar)"); an unbalanced ")" ends it,
# as it closes the masked link or the sentence's own parenthesis around it.
_URL_BODY = r"https?://(?:[^\s<>()]|\([^\s<>()]*\))+"
_LINK = re.compile(
    rf"\[(?P<label>[^\]]*)\]\(<?(?P<masked>{_URL_BODY})>?\)"
    rf"|<(?P<wrapped>{_URL_BODY})>"
    rf"|(?P<bare>{_URL_BODY})"
)


def _inert_link(match: re.Match[str]) -> str:
    """A masked link shown as ``label (<url>)``, any other link as ``<url>``: the URL whole
    and visible, and never unfurled into an embed."""
    if match["masked"] is not None:
        return f"{_LINK.sub(_inert_link, match['label'])} (<{match['masked']}>)"
    return f"<{match['wrapped'] or match['bare']}>"


def inert(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Generated text that can't ping, invite or disguise a link, within ``limit`` chars.

    Allowed-mentions already stop notifications; this also keeps learned ``@everyone``,
    user/role mentions, invites and masked links from *looking* live in the channel.
    """
    text = discord.utils.escape_mentions(text)
    text = _INVITE.sub(lambda m: m.group(1).replace("/", "/\u200b"), text)
    text = _LINK.sub(_inert_link, text)
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
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    if corpus:
        chosen = CORPORA.get(corpus)
        if chosen is not None:
            ns = await corpus_namespace(bot.store, chosen, TEACHING_ORDER)
            return bot.store.reader(ns), chosen.title
        if corpus in await bot.servers.uploads(interaction.guild_id):
            name = upload_namespace_name(interaction.guild_id, corpus)
            return bot.store.reader(await bot.store.namespace(name, TEACHING_ORDER)), corpus
        raise UserFacingError(
            f"There is no corpus called “{echo(corpus, 40)}”: pick one from the list."
        )
    ns = await bot.servers.namespace(interaction.guild_id)
    if user is None and channel is None:
        return bot.store.reader(ns), "this server"
    if user is not None and not await bot.servers.may_imitate(interaction.guild_id, user.id):
        raise UserFacingError(
            f"{echo(user.display_name)} hasn't agreed to be imitated "
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


async def vocabulary_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """This server's (or the chosen corpus's) words starting with what was typed."""
    bot: MarkovBot = interaction.client  # type: ignore[assignment]
    if interaction.guild_id is None:
        return []
    corpus = getattr(interaction.namespace, "corpus", None)
    words = current.split()
    prefix = words[-1] if words and not current.endswith(" ") else ""
    head = current[: len(current) - len(prefix)]
    if corpus:
        # Never build or create a model while typing: only read one that exists.
        name = corpus_namespace_name(interaction.guild_id, corpus)
        existing = [n for n in await bot.store.namespaces() if n.name == name]
        if not existing:
            return []
        ns = existing[0]
    else:
        ns = await bot.servers.namespace(interaction.guild_id)
    found = await bot.store.autocomplete(ns, prefix, 25)
    return [
        app_commands.Choice(name=shorten(head + w, 100), value=shorten(head + w, 100))
        for w in found
    ]
