"""/markov-privacy: members decide whether they are learned, and can erase what was."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from .views import OwnedView, send_ephemeral_view

if TYPE_CHECKING:
    from bot.app import MarkovBot

    from .learning import Learning

__all__ = ["PrivacyCog"]


class ForgetOffer(OwnedView):
    """After opting out, one click also erases what was already learned."""

    refusal = "This button isn't yours."
    admins_may_press = False

    def __init__(self, cog: PrivacyCog, owner: int) -> None:
        super().__init__(owner, timeout=300)
        self.cog = cog

    @discord.ui.button(label="Also forget my messages", style=discord.ButtonStyle.danger)
    async def forget(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetOffer]
    ) -> None:
        # Acknowledged first: the deletion may wait on a busy database longer than the
        # 3 seconds Discord gives a button.
        await interaction.response.defer()
        n = await self.cog.forget_member(interaction)
        self.stop()
        await interaction.edit_original_response(
            content=f"Forgot {n:,} of your messages. You are opted out.", view=None
        )


@app_commands.guild_only()
class PrivacyCog(commands.GroupCog, group_name="markov-privacy"):
    """Your consent and your data."""

    def __init__(self, bot: MarkovBot) -> None:
        self.bot = bot
        super().__init__()

    @property
    def learning(self) -> Learning:
        cog = self.bot.get_cog("Learning")
        assert cog is not None
        return cog  # type: ignore[return-value]

    async def _set(self, interaction: discord.Interaction, consent: str) -> None:
        assert interaction.guild_id is not None
        await self.bot.guild_config.set_member_consent(
            interaction.guild_id,
            interaction.user.id,
            consent,  # type: ignore[arg-type]
        )
        self.learning.invalidate(interaction.guild_id)

    async def forget_member(self, interaction: discord.Interaction) -> int:
        assert interaction.guild_id is not None
        await self.learning.flush()
        ns = await self.bot.namespace(interaction.guild_id)
        return await self.bot.store.forget_author(ns, interaction.user.id)

    @app_commands.command(name="optin", description="Let me learn from your messages here")
    async def optin(self, interaction: discord.Interaction) -> None:
        await self._set(interaction, "in")
        await interaction.response.send_message(
            "Thanks! I'll learn from your messages in the channels admins enabled. "
            "`/markov-privacy optout` stops it any time.",
            ephemeral=True,
        )

    @app_commands.command(name="optout", description="Stop learning from your messages")
    async def optout(self, interaction: discord.Interaction) -> None:
        await self._set(interaction, "out")
        await send_ephemeral_view(
            interaction,
            "I won't learn from your messages any more. Forget what I already learned?",
            ForgetOffer(self, interaction.user.id),
        )

    @app_commands.command(name="forget", description="Delete everything I learned from you here")
    async def forget(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        n = await self.forget_member(interaction)
        await interaction.followup.send(
            f"Forgot {n:,} of your messages from this server's model.", ephemeral=True
        )

    @app_commands.command(name="status", description="What I store about you here")
    async def status(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        config = await self.bot.guild_config.config(interaction.guild_id)
        choice = (await self.bot.guild_config.member_consent(interaction.guild_id)).get(
            interaction.user.id
        )
        learning = self.learning.consents_for(config.consent, choice)
        ns = await self.bot.namespace(interaction.guild_id)
        n = await self.bot.store.author_messages(ns, interaction.user.id)
        await interaction.response.send_message(
            f"Consent mode here: **{config.consent}**; your choice: "
            f"**{ {'in': 'opted in', 'out': 'opted out'}.get(choice or '', 'none yet') }** — "
            f"I {'am' if learning else 'am not'} learning from you.\n"
            f"Stored: {n:,} of your messages, as word ids with the message, channel and time "
            "(no text is kept beyond the model's words). `/markov-privacy forget` deletes them.",
            ephemeral=True,
        )


async def setup(bot: MarkovBot) -> None:
    await bot.add_cog(PrivacyCog(bot))
