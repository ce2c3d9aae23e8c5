"""/markov, /markov-compare and /markov-stats: generated text a class can reproduce."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.app.replies import echo
from bot.core.explain import Generation
from bot.core.generate import (
    COMPARE_LENGTH,
    DEFAULT_TEMPERATURES,
    VARIABLES,
    Options,
    compare,
    generate,
    parse_values,
)
from bot.core.present import compare_label, shorten, temperature_label, trace_lines
from bot.core.sampling import MAX_LENGTH, MAX_TOP_K
from bot.core.wording import context_size, plural, seed_phrase, unknown_note

from .common import (
    KNOB_DESCRIPTIONS,
    CorpusName,
    MinP,
    Penalty,
    RepetitionPenalty,
    Seed,
    Temperature,
    WordList,
    corpus_autocomplete,
    inert,
    knobs_from,
    model_for,
    shared,
    vocabulary_autocomplete,
)

if TYPE_CHECKING:
    from bot.app import MarkovBot

__all__ = ["Generation", "GenerationCog", "vocabulary_autocomplete"]

EMBED_DESCRIPTION = 4096
FIELD_VALUE = 1024
DEFAULT_TEMPS = ",".join(f"{t:g}" for t in DEFAULT_TEMPERATURES)


def footer(g: Generation, source: str) -> str:
    cut = "".join(
        [f", top-k {g.top_k}" if g.top_k else "", f", top-p {g.top_p:g}" if g.top_p else ""]
    )
    seed = seed_phrase(g.seed, g.temperature)
    knobs = "".join(f", {label}" for label in g.knobs.labels())
    return (
        f"T = {temperature_label(g.temperature)}{f' · {seed}' if seed else ''} · "
        f"{context_size(g.order)}{cut}{knobs} · {source}"
    )


def unknown_field(embed: discord.Embed, unknown: tuple[str, ...], used: tuple[str, ...]) -> None:
    """Name the typed words that were never learned and what was used instead."""
    if unknown:
        note = unknown_note(unknown, used)
        embed.add_field(name="Unknown words", value=echo(note, 1000))


def ansi_trace(g: Generation, limit: int) -> str:
    """The trace as an ``ansi`` block (likely words green, unlikely ones red) of at most
    ``limit`` characters; lines are dropped from the end so the fence always closes."""
    header, *rest = trace_lines(g, wide=False)  # phone-wide: at most 40 characters a line
    steps, tail = rest[: len(g.steps)], rest[len(g.steps) :]
    lines = [
        f"\u001b[{32 if s.prob >= 0.3 else 33 if s.prob >= 0.05 else 31}m{inert(line)}\u001b[0m"
        for line, s in zip(steps, g.steps, strict=True)
    ]
    fence = "```ansi\n{}\n```"
    while lines and len(fence.format("\n".join([header, *lines, *tail]))) > limit:
        lines.pop()
    return fence.format("\n".join([header, *lines, *tail]))


class GenerationCog(commands.Cog, name="Generation"):
    def __init__(self, bot: MarkovBot) -> None:
        self.bot = bot

    @app_commands.command(name="markov", description="Generate text that sounds like this server")
    @app_commands.describe(
        **shared("corpus", "top_k", "top_p"),
        start="Words to start from (learned words only)",
        temp="Temperature: 0 = always the likeliest word, 1 = as learned, higher = wilder",
        length=f"Maximum number of words (1–{MAX_LENGTH})",
        seed="Repeat an earlier result exactly by giving its seed",
        user="Imitate one member (if they opted in)",
        channel="Use only one channel's messages",
        show_work="Show each word's probability and rank",
        min_words="Do not end before this many words (<end> is masked until then)",
        **KNOB_DESCRIPTIONS,
    )
    @app_commands.autocomplete(start=vocabulary_autocomplete, corpus=corpus_autocomplete)
    @app_commands.guild_only()
    @app_commands.checks.cooldown(5, 10.0, key=lambda i: (i.guild_id, i.user.id))
    async def markov(
        self,
        interaction: discord.Interaction,
        start: app_commands.Range[str, 1, 200] | None = None,
        temp: Temperature = 1.0,
        length: app_commands.Range[int, 1, MAX_LENGTH] = 30,
        seed: Seed | None = None,
        user: discord.Member | None = None,
        channel: discord.TextChannel | None = None,
        top_k: app_commands.Range[int, 0, MAX_TOP_K] | None = None,
        top_p: app_commands.Range[float, 0.01, 1.0] | None = None,
        show_work: bool = False,
        corpus: CorpusName | None = None,
        min_words: app_commands.Range[int, 0, MAX_LENGTH] = 0,
        min_p: MinP | None = None,
        repetition_penalty: RepetitionPenalty = 1.0,
        presence_penalty: Penalty = 0.0,
        frequency_penalty: Penalty = 0.0,
        ban: WordList | None = None,
        bias: WordList | None = None,
    ) -> None:
        options = Options(
            temperature=temp,
            length=length,
            seed=seed,
            top_k=top_k,
            top_p=top_p,
            min_words=min_words,
            knobs=knobs_from(
                min_p, repetition_penalty, presence_penalty, frequency_penalty, ban, bias
            ),
        ).validated()  # a bad min_words is answered before thinking
        await interaction.response.defer(thinking=True)
        model, source = await model_for(
            self.bot, interaction, corpus=corpus, user=user, channel=channel
        )
        g = await generate(model, start, options)
        embed = discord.Embed(description=inert(g.text, 1000) or "…", colour=0x5865F2)
        embed.set_footer(text=footer(g, source))
        unknown_field(embed, g.unknown, g.start)
        if show_work:
            name = "How likely each word was"
            # Room left in the description after the text (at most 1,000) and the heading.
            trace = ansi_trace(g, EMBED_DESCRIPTION - 1000 - 100)
            if len(trace) <= FIELD_VALUE:
                embed.add_field(name=name, value=trace, inline=False)
            else:  # a long trace goes where there is room for it
                embed.description = f"{embed.description}\n**{name}**\n{trace}"
        await interaction.followup.send(embed=embed)

    @app_commands.command(
        name="markov-compare", description="The same start and seed at several temperatures"
    )
    @app_commands.describe(
        **shared("corpus"),
        start="Words to start from",
        temps="Temperatures separated by commas (default 0.1,0.5,1)",
        seed="The seed shared by every temperature",
        min_words=f"Do not end before this many words (default {COMPARE_LENGTH}, the length)",
        vary="Vary this knob instead of the temperature (its values in values)",
        values="Values of the knob in vary, separated by commas, e.g. 1,1.3,2",
        temp="Temperature of every line when another knob varies (default 1)",
    )
    @app_commands.choices(vary=[app_commands.Choice(name=v, value=v) for v in VARIABLES])
    @app_commands.autocomplete(start=vocabulary_autocomplete, corpus=corpus_autocomplete)
    @app_commands.guild_only()
    @app_commands.checks.cooldown(3, 10.0, key=lambda i: (i.guild_id, i.user.id))
    async def markov_compare(
        self,
        interaction: discord.Interaction,
        start: app_commands.Range[str, 1, 200] | None = None,
        temps: app_commands.Range[str, 1, 100] = DEFAULT_TEMPS,
        seed: Seed | None = None,
        corpus: CorpusName | None = None,
        min_words: app_commands.Range[int, 0, COMPARE_LENGTH] = COMPARE_LENGTH,
        vary: str = "temperature",
        values: app_commands.Range[str, 1, 100] | None = None,
        temp: Temperature = 1.0,
    ) -> None:
        chosen = parse_values(vary, values or (temps if vary == "temperature" else ""))
        options = Options(
            temperature=temp, seed=seed, length=COMPARE_LENGTH, min_words=min_words
        ).validated()
        await interaction.response.defer(thinking=True)
        model, source = await model_for(self.bot, interaction, corpus=corpus)
        results = await compare(model, start, chosen, options, vary)
        what = "temperature" if vary == "temperature" else vary.replace("_", " ")
        embed = discord.Embed(
            title=f"Same start, same seed, different {what}",
            description="Perplexity under the learned model (T = 1): how surprising each text "
            "is next to what was learned.",
            colour=0x5865F2,
        )
        unknown_field(embed, results[0].unknown, results[0].start)
        for g in results:
            embed.add_field(
                name=f"{compare_label(g, vary)} · perplexity {g.perplexity_learned:.2f}",
                value=inert(g.text, 1024) or "…",
                inline=False,
            )
        embed.set_footer(text=f"seed {results[0].seed} · {source}")
        await interaction.followup.send(embed=embed)

    @app_commands.command(name="markov-stats", description="What I have learned in this server")
    @app_commands.guild_only()
    async def markov_stats(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(thinking=True)  # a new server's model is a write
        ns = await self.bot.servers.namespace(interaction.guild_id)
        s = await self.bot.store.stats(ns)
        embed = discord.Embed(title="What I have learned here", colour=0x5865F2)
        embed.add_field(name="Messages", value=f"{s.messages:,}")
        embed.add_field(name="Words", value=f"{s.tokens:,} ({s.vocabulary:,} different)")
        embed.add_field(name="Members", value=f"{s.authors:,}")
        embed.add_field(name="Context", value=f"up to {plural(s.order, 'word')}")
        embed.add_field(name="Database", value=f"{s.database_bytes / 1e6:.1f} MB")
        if s.top_words:
            embed.add_field(
                name="Top words",
                value=inert(", ".join(f"{w} ({c:,})" for w, c in s.top_words), 1024),
                inline=False,
            )
        if s.channels:
            embed.add_field(
                name="Channels",
                value=shorten(
                    "\n".join(f"<#{c}>: {n:,}" for c, n in s.channels if c is not None), 1024
                )
                or "—",
                inline=False,
            )
        await interaction.followup.send(embed=embed)


async def setup(bot: MarkovBot) -> None:
    await bot.add_cog(GenerationCog(bot))
