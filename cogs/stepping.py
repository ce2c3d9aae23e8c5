"""/markov-step: build a sentence one token at a time, watching each distribution.

The class sees the candidates for the next word with their probabilities at the current
temperature, then presses Sample (a seeded draw), Greedy (the top one) or Back, and can
change the temperature between steps. The stepping itself is :class:`bot.core.stepper.Stepper`,
which ``markov-bot step`` drives from a terminal.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.app.replies import echo
from bot.core.explain import Explanation
from bot.core.present import candidate_lines, shorten, temperature_label
from bot.core.sampling import MAX_LENGTH
from bot.core.stepper import Stepper
from bot.core.wording import START_PHRASE, context_phrase, unknown_note

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
from .views import OwnedView, through_bot

if TYPE_CHECKING:
    from bot.app import MarkovBot

__all__ = ["StepView", "SteppingCog"]

log = logging.getLogger(__name__)

STEP_TIMEOUT = 10 * 60.0
ROWS = 8


def step_embed(stepper: Stepper, source: str, e: Explanation | None) -> discord.Embed:
    sentence = stepper.sentence or "(start of a message)"
    if stepper.ended:
        sentence += " ⏹"
    embed = discord.Embed(
        title=f"Step by step · T = {temperature_label(stepper.temperature)}",
        description=inert(f"**{shorten(sentence, 1500)}**", 2000),
        colour=0x57F287,
    )
    if stepper.unknown:
        note = unknown_note(stepper.unknown, stepper.start)
        embed.add_field(name="Unknown words", value=echo(note, 1000), inline=False)
    if stepper.notes:
        embed.add_field(name="Last step", value=inert(stepper.notes[-1], 1024), inline=False)
    if e is not None:
        at = context_phrase(e.context, 60)
        where = at if at == START_PHRASE else f"after {at}"
        embed.add_field(
            name=f"Next word {where} ({e.perplexity_t:.1f} effective choices)",
            value="```\n" + inert("\n".join(candidate_lines(e)), 1000) + "\n```",
            inline=False,
        )
    knobs = "".join(f", {label}" for label in stepper.knobs.labels())
    embed.set_footer(text=f"seed {stepper.seed}{knobs} · {source}")
    return embed


class StepView(OwnedView):
    """The buttons of ``/markov-step``, each one call of the shared :class:`Stepper`."""

    refusal = "Only the person who started this (or an admin) can press — try `/markov-step`."

    def __init__(self, stepper: Stepper, source: str, owner: int) -> None:
        super().__init__(owner, STEP_TIMEOUT)
        self.stepper = stepper
        self.source = source

    async def render(self) -> discord.Embed:
        s = self.stepper
        self.sample.disabled = self.greedy.disabled = not s.can_advance
        self.back.disabled = not s.can_go_back
        return step_embed(s, self.source, await s.candidates(ROWS))

    async def _show(self, interaction: discord.Interaction) -> None:
        await interaction.response.edit_message(embed=await self.render(), view=self)

    @discord.ui.button(label="Sample", style=discord.ButtonStyle.success, custom_id="step-sample")
    async def sample(
        self, interaction: discord.Interaction, _: discord.ui.Button[StepView]
    ) -> None:
        if self.stepper.can_advance:  # a press racing the end: shown as it is
            await self.stepper.sample()
        await self._show(interaction)

    @discord.ui.button(label="Greedy", style=discord.ButtonStyle.primary, custom_id="step-greedy")
    async def greedy(
        self, interaction: discord.Interaction, _: discord.ui.Button[StepView]
    ) -> None:
        if self.stepper.can_advance:
            await self.stepper.greedy()
        await self._show(interaction)

    @discord.ui.button(label="Back", style=discord.ButtonStyle.secondary, custom_id="step-back")
    async def back(self, interaction: discord.Interaction, _: discord.ui.Button[StepView]) -> None:
        self.stepper.back()
        await self._show(interaction)

    @discord.ui.button(
        label="T × 0.5", style=discord.ButtonStyle.secondary, custom_id="step-colder"
    )
    async def colder(
        self, interaction: discord.Interaction, _: discord.ui.Button[StepView]
    ) -> None:
        self.stepper.colder()
        await self._show(interaction)

    @discord.ui.button(label="T × 2", style=discord.ButtonStyle.secondary, custom_id="step-warmer")
    async def warmer(
        self, interaction: discord.Interaction, _: discord.ui.Button[StepView]
    ) -> None:
        self.stepper.warmer()
        await self._show(interaction)


class SteppingCog(commands.Cog, name="Stepping"):
    def __init__(self, bot: MarkovBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="markov-step", description="Generate one word at a time, with buttons"
    )
    @app_commands.describe(
        **shared("corpus"),
        start="Words to start from (empty: the start of a message)",
        temp="Temperature for Sample (Greedy always takes the top word)",
        seed="Seed for the draws, to repeat a demonstration",
        min_words="Mask <end> until the sentence has this many words",
        **KNOB_DESCRIPTIONS,
    )
    @app_commands.autocomplete(start=vocabulary_autocomplete, corpus=corpus_autocomplete)
    @app_commands.guild_only()
    @app_commands.checks.cooldown(3, 10.0, key=lambda i: (i.guild_id, i.user.id))
    async def markov_step(
        self,
        interaction: discord.Interaction,
        start: app_commands.Range[str, 1, 200] | None = None,
        temp: Temperature = 1.0,
        seed: Seed | None = None,
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
        )  # a bad value is answered before thinking
        await interaction.response.defer(thinking=True)
        model, source = await model_for(self.bot, interaction, corpus=corpus)
        seed = seed if seed is not None else secrets.randbelow(2**31)
        stepper = await Stepper.begin(model, start, temp, seed, min_words, knobs)
        view = StepView(stepper, source, interaction.user.id)
        sent = await interaction.followup.send(embed=await view.render(), view=view, wait=True)
        view.attach(interaction, through_bot(interaction, sent))


async def setup(bot: MarkovBot) -> None:
    await bot.add_cog(SteppingCog(bot))
