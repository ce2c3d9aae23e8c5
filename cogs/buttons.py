"""Presses on buttons whose view is gone (timed out, or from before a restart) are answered
with a sentence, not left to Discord's "This interaction failed"."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from .views import answer_late_press

if TYPE_CHECKING:
    from bot.app import MarkovBot

__all__ = ["Buttons"]


class Buttons(commands.Cog):
    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await answer_late_press(interaction)


async def setup(bot: MarkovBot) -> None:
    await bot.add_cog(Buttons())
