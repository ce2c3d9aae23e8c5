"""/markov-step: build a sentence one token at a time, watching each distribution.

The class sees the candidates for the next word with their probabilities at the current
temperature, then presses Sample (a seeded draw), Greedy (the top one) or Back, and can
change the temperature between steps.
"""

from __future__ import annotations

import logging
import random
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.explain import Explanation
from bot.generate import choose_next, explain_tokens, start_words
from bot.model import BOS, EOS, EmptyModel, ModelReader
from bot.present import shorten, temperature_label
from bot.sampling import MAX_LENGTH, MAX_TEMPERATURE

from .common import CorpusName, corpus_autocomplete, inert, model_for
from .generation import Temperature, vocabulary_autocomplete
from .views import OwnedView

if TYPE_CHECKING:
    from bot.app import MarkovBot

__all__ = ["StepView", "SteppingCog"]

log = logging.getLogger(__name__)

STEP_TIMEOUT = 10 * 60.0
ROWS = 8


@dataclass(slots=True)
class StepState:
    model: ModelReader
    source: str
    temperature: float
    seed: int
    rng: random.Random
    tokens: list[int] = field(default_factory=list)  # generated so far (start words included)
    words: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what each step drew, for Back
    ended: bool = False
    min_words: int = 0  # <end> masked while fewer words than this

    @property
    def mask_end(self) -> bool:
        return len(self.tokens) < self.min_words

    @property
    def context(self) -> list[int]:
        return self.tokens or [BOS]


def _bar(prob: float, width: int = 10) -> str:
    filled = round(prob * width)
    return "█" * filled + "·" * (width - filled)


def step_embed(state: StepState, e: Explanation | None) -> discord.Embed:
    sentence = " ".join(state.words) or "(start of a message)"
    if state.ended:
        sentence += " ⏹"
    embed = discord.Embed(
        title=f"Step by step · T = {temperature_label(state.temperature)}",
        description=inert(f"**{shorten(sentence, 1500)}**", 2000),
        colour=0x57F287,
    )
    if state.notes:
        embed.add_field(name="Last step", value=inert(state.notes[-1], 1024), inline=False)
    if e is not None and not state.ended:
        lines = [f"{_bar(r.prob)} {r.prob:6.1%}  {shorten(r.token, 18)}" for r in e.rows]
        if e.others:
            lines.append(f"{'':10} {e.others_prob:6.1%}  … {e.others} others")
        embed.add_field(
            name=f"Next word after “{shorten(' '.join(e.context), 60)}” "
            f"({e.perplexity_t:.1f} effective choices)",
            value="```\n" + inert("\n".join(lines), 1000) + "\n```",
            inline=False,
        )
    embed.set_footer(text=f"seed {state.seed} · {state.source}")
    return embed


class StepView(OwnedView):
    refusal = "Only the person who started this (or an admin) can press — try `/markov-step`."

    def __init__(self, state: StepState, owner: int) -> None:
        super().__init__(owner, STEP_TIMEOUT)
        self.state = state

    async def render(self) -> discord.Embed:
        e = None
        if not self.state.ended:
            e = await explain_tokens(
                self.state.model,
                self.state.context,
                self.state.temperature,
                rows=ROWS,
                mask_end=self.state.mask_end,
            )
        self.sample.disabled = self.greedy.disabled = self.state.ended or (
            len(self.state.notes) >= MAX_LENGTH
        )
        self.back.disabled = not self.state.notes
        return step_embed(self.state, e)

    async def _advance(self, interaction: discord.Interaction, rng: random.Random | None) -> None:
        s = self.state
        pick = await choose_next(s.model, s.context, s.temperature, None, None, rng, s.mask_end)
        if pick is None:
            raise EmptyModel()
        word = (await s.model.spell([pick.token]))[0]
        how = "drew" if rng is not None and s.temperature > 0 else "took the top word"
        s.notes.append(
            f"{how} “{word}” — probability {pick.prob:.1%}, rank {pick.rank} of "
            f"{pick.found.candidates - pick.end_masked}"
            + (" (<end> masked)" if pick.end_masked else "")
            + ("; backed off to the word frequencies" if pick.found.order == 0 else "")
        )
        if pick.token == EOS:
            s.ended = True
        else:
            s.tokens.append(pick.token)
            s.words.append(word)
        await interaction.response.edit_message(embed=await self.render(), view=self)

    @discord.ui.button(label="Sample", style=discord.ButtonStyle.success, custom_id="step-sample")
    async def sample(
        self, interaction: discord.Interaction, _: discord.ui.Button[StepView]
    ) -> None:
        await self._advance(interaction, self.state.rng)

    @discord.ui.button(label="Greedy", style=discord.ButtonStyle.primary, custom_id="step-greedy")
    async def greedy(
        self, interaction: discord.Interaction, _: discord.ui.Button[StepView]
    ) -> None:
        await self._advance(interaction, None)

    @discord.ui.button(label="Back", style=discord.ButtonStyle.secondary, custom_id="step-back")
    async def back(self, interaction: discord.Interaction, _: discord.ui.Button[StepView]) -> None:
        s = self.state
        if s.notes:
            s.notes.pop()
            if s.ended:
                s.ended = False
            elif s.tokens:
                s.tokens.pop()
                s.words.pop()
        await interaction.response.edit_message(embed=await self.render(), view=self)

    @discord.ui.button(
        label="T × 0.5", style=discord.ButtonStyle.secondary, custom_id="step-colder"
    )
    async def colder(
        self, interaction: discord.Interaction, _: discord.ui.Button[StepView]
    ) -> None:
        self.state.temperature = round(self.state.temperature / 2, 4)
        await interaction.response.edit_message(embed=await self.render(), view=self)

    @discord.ui.button(label="T × 2", style=discord.ButtonStyle.secondary, custom_id="step-warmer")
    async def warmer(
        self, interaction: discord.Interaction, _: discord.ui.Button[StepView]
    ) -> None:
        t = self.state.temperature
        self.state.temperature = min(MAX_TEMPERATURE, round(t * 2, 4) if t > 0 else 0.1)
        await interaction.response.edit_message(embed=await self.render(), view=self)


class SteppingCog(commands.Cog, name="Stepping"):
    def __init__(self, bot: MarkovBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="markov-step", description="Generate one word at a time, with buttons"
    )
    @app_commands.describe(
        start="Words to start from (empty: the start of a message)",
        temp="Temperature for Sample (Greedy always takes the top word)",
        seed="Seed for the draws, to repeat a demonstration",
        corpus="Use a bundled public-domain corpus instead of this server",
        min_words="Mask <end> until the sentence has this many words",
    )
    @app_commands.autocomplete(start=vocabulary_autocomplete, corpus=corpus_autocomplete)
    @app_commands.guild_only()
    @app_commands.checks.cooldown(3, 10.0, key=lambda i: (i.guild_id, i.user.id))
    async def markov_step(
        self,
        interaction: discord.Interaction,
        start: app_commands.Range[str, 1, 200] | None = None,
        temp: Temperature = 1.0,
        seed: app_commands.Range[int, 0, 2**53] | None = None,
        corpus: CorpusName | None = None,
        min_words: app_commands.Range[int, 0, MAX_LENGTH] = 0,
    ) -> None:
        await interaction.response.defer(thinking=True)
        model, source = await model_for(self.bot, interaction, corpus=corpus)
        seed = seed if seed is not None else secrets.randbelow(2**31)
        words = start_words(start)
        tokens = await model.resolve(words) if words else []
        state = StepState(
            model=model,
            source=source,
            temperature=temp,
            seed=seed,
            rng=random.Random(seed),
            tokens=tokens,
            words=await model.spell(tokens),
            min_words=min_words,
        )
        view = StepView(state, interaction.user.id)
        await interaction.followup.send(embed=await view.render(), view=view)
        view.message = await interaction.original_response()


async def setup(bot: MarkovBot) -> None:
    await bot.add_cog(SteppingCog(bot))
