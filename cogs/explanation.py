"""/markov-explain: the numbers behind the next word, with a chart and temperature buttons."""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.app.replies import echo
from bot.core.explain import Explanation
from bot.core.generate import Options, explain_context, with_value
from bot.core.model import ModelReader
from bot.core.present import explanation_summary, explanation_table, temperature_label
from bot.core.sampling import MAX_LENGTH, MAX_TEMPERATURE, MAX_TOP_K, NO_KNOBS, Knobs
from bot.core.wording import START_PHRASE, context_phrase, context_size, unknown_note

from .common import (
    KNOB_DESCRIPTIONS,
    CorpusName,
    MinP,
    Penalty,
    RepetitionPenalty,
    Temperature,
    WordList,
    corpus_autocomplete,
    inert,
    knobs_from,
    model_for,
    shared,
    vocabulary_autocomplete,
)
from .views import OwnedView, through_bot

if TYPE_CHECKING:
    from bot.app import MarkovBot

__all__ = ["ExplainView", "ExplanationCog", "explanation_embed"]

log = logging.getLogger(__name__)

ROWS = 10
VIEW_TIMEOUT = 15 * 60.0
CHART_NAME = "explain.png"


@dataclass(frozen=True, slots=True)
class ExplainRequest:
    words: str | None
    temperature: float
    top_k: int | None
    top_p: float | None
    source: str
    min_words: int = 0
    knobs: Knobs = NO_KNOBS


#: The knob menu under /markov-explain: one knob set to one value per choice.
KNOB_CHOICES: tuple[tuple[str, str, float], ...] = (
    ("min-p off", "min_p", 0.0),
    ("min-p 0.05", "min_p", 0.05),
    ("min-p 0.2", "min_p", 0.2),
    ("min-p 0.5", "min_p", 0.5),
    ("repetition penalty off", "repetition_penalty", 1.0),
    ("repetition penalty 1.3", "repetition_penalty", 1.3),
    ("repetition penalty 2", "repetition_penalty", 2.0),
    ("presence penalty off", "presence_penalty", 0.0),
    ("presence penalty 0.5", "presence_penalty", 0.5),
    ("presence penalty 1", "presence_penalty", 1.0),
    ("frequency penalty off", "frequency_penalty", 0.0),
    ("frequency penalty 0.5", "frequency_penalty", 0.5),
    ("frequency penalty 1", "frequency_penalty", 1.0),
)
KNOB_OFF = "all-off"


def explanation_embed(e: Explanation, source: str, with_chart: bool) -> discord.Embed:
    context = context_phrase(e.context)
    question = (
        f"What comes first {START_PHRASE}?"
        if context == START_PHRASE
        else f"What comes after {context}?"
    )
    note = ""
    if e.unknown:
        note = unknown_note(e.unknown, e.asked)
        note = echo(note, 500) + "\n"
    embed = discord.Embed(
        title=inert(f"{question} · T = {temperature_label(e.temperature)}", 256),
        description=note
        + inert(explanation_summary(e), 1000)
        + "\n```\n"
        + inert(explanation_table(e, wide=False), 2900)
        + "\n```\n"
        "p = count ÷ total · ln p = logit · adj = ln p after penalties, bias, ban · "
        "÷T = (adj or ln p) ÷ T · P(T) = softmax, then the cut-offs · cut = the stage "
        "that removed it",
        colour=0x5865F2,
    )
    if with_chart:
        embed.set_image(url=f"attachment://{CHART_NAME}")
    embed.set_footer(text=f"{source} · {context_size(len(e.context))}")
    return embed


async def render(
    model: ModelReader, request: ExplainRequest
) -> tuple[discord.Embed, discord.File | None]:
    e = await explain_context(
        model,
        request.words,
        request.temperature,
        request.top_k,
        request.top_p,
        rows=ROWS,
        min_words=request.min_words,
        knobs=request.knobs,
    )
    file = None
    try:
        from bot.core.charts import explanation_chart

        png = await asyncio.to_thread(explanation_chart, e)
        file = discord.File(io.BytesIO(png), filename=CHART_NAME)
    except Exception:  # a chart is a bonus: the table is the answer
        log.exception("chart rendering failed")
    return explanation_embed(e, request.source, file is not None), file


class ExplainView(OwnedView):
    """Temperature buttons that redraw the table and chart in place."""

    refusal = (
        "Only the person who asked (or an admin) can change this one — run "
        "`/markov-explain` yourself to experiment."
    )

    def __init__(self, model: ModelReader, request: ExplainRequest, owner: int) -> None:
        super().__init__(owner, VIEW_TIMEOUT)
        self.model = model
        self.request = request

    async def _set(self, interaction: discord.Interaction, temperature: float) -> None:
        temperature = min(MAX_TEMPERATURE, max(0.0, round(temperature, 4)))
        await self._redraw(interaction, replace(self.request, temperature=temperature))

    async def _redraw(self, interaction: discord.Interaction, request: ExplainRequest) -> None:
        self.request = request
        embed, file = await render(self.model, self.request)
        await interaction.response.edit_message(
            embed=embed, attachments=[file] if file else [], view=self
        )

    @discord.ui.button(label="T × 0.5", style=discord.ButtonStyle.secondary, custom_id="t-half")
    async def colder(
        self, interaction: discord.Interaction, _: discord.ui.Button[ExplainView]
    ) -> None:
        t = self.request.temperature
        await self._set(interaction, t / 2 if t > 0 else 0.0)

    @discord.ui.button(label="T × 2", style=discord.ButtonStyle.secondary, custom_id="t-double")
    async def warmer(
        self, interaction: discord.Interaction, _: discord.ui.Button[ExplainView]
    ) -> None:
        t = self.request.temperature
        await self._set(interaction, t * 2 if t > 0 else 0.1)

    @discord.ui.button(label="T = 0", style=discord.ButtonStyle.primary, custom_id="t-zero")
    async def greedy(
        self, interaction: discord.Interaction, _: discord.ui.Button[ExplainView]
    ) -> None:
        await self._set(interaction, 0.0)

    @discord.ui.button(label="T = 1", style=discord.ButtonStyle.primary, custom_id="t-one")
    async def learned(
        self, interaction: discord.Interaction, _: discord.ui.Button[ExplainView]
    ) -> None:
        await self._set(interaction, 1.0)

    @discord.ui.select(
        custom_id="knob",
        placeholder="Change one knob…",
        options=[discord.SelectOption(label="all knobs off", value=KNOB_OFF)]
        + [
            discord.SelectOption(label=label, value=f"{name}={value:g}")
            for label, name, value in KNOB_CHOICES
        ],
    )
    async def knob(
        self, interaction: discord.Interaction, select: discord.ui.Select[ExplainView]
    ) -> None:
        """One knob set in place; ban and bias stay as the command gave them."""
        [choice] = select.values
        if choice == KNOB_OFF:
            knobs = Knobs(ban=self.request.knobs.ban, bias=self.request.knobs.bias)
        else:
            name, _, value = choice.partition("=")
            knobs = with_value(Options(knobs=self.request.knobs), name, float(value)).knobs
        await self._redraw(interaction, replace(self.request, knobs=knobs.validated()))


class ExplanationCog(commands.Cog, name="Explanation"):
    def __init__(self, bot: MarkovBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="markov-explain", description="Show how the next word is chosen, step by step"
    )
    @app_commands.describe(
        **shared("corpus", "top_k", "top_p"),
        word="The word(s) before the choice (empty: how messages start)",
        temp="Temperature to apply: 0 = greedy, 1 = as learned, higher = flatter",
        min_words="Mask <end> while the words given are fewer than this",
        **KNOB_DESCRIPTIONS,
    )
    @app_commands.autocomplete(word=vocabulary_autocomplete, corpus=corpus_autocomplete)
    @app_commands.guild_only()
    @app_commands.checks.cooldown(5, 10.0, key=lambda i: (i.guild_id, i.user.id))
    async def markov_explain(
        self,
        interaction: discord.Interaction,
        word: app_commands.Range[str, 1, 200] | None = None,
        temp: Temperature = 1.0,
        top_k: app_commands.Range[int, 0, MAX_TOP_K] | None = None,
        top_p: app_commands.Range[float, 0.01, 1.0] | None = None,
        corpus: CorpusName | None = None,
        min_words: app_commands.Range[int, 0, MAX_LENGTH] = 0,
        min_p: MinP | None = None,
        repetition_penalty: RepetitionPenalty = 1.0,
        presence_penalty: Penalty = 0.0,
        frequency_penalty: Penalty = 0.0,
        ban: WordList | None = None,
        bias: WordList | None = None,
    ) -> None:
        knobs = knobs_from(
            min_p, repetition_penalty, presence_penalty, frequency_penalty, ban, bias
        )
        await interaction.response.defer(thinking=True)
        model, source = await model_for(self.bot, interaction, corpus=corpus)
        request = ExplainRequest(word, temp, top_k, top_p, source, min_words, knobs)
        embed, file = await render(model, request)
        view = ExplainView(model, request, interaction.user.id)
        if file is not None:
            sent = await interaction.followup.send(embed=embed, file=file, view=view, wait=True)
        else:
            sent = await interaction.followup.send(embed=embed, view=view, wait=True)
        view.attach(interaction, through_bot(interaction, sent))


async def setup(bot: MarkovBot) -> None:
    await bot.add_cog(ExplanationCog(bot))
