"""/markov-privacy: members decide whether they are learned, and can erase what was."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.app.replies import acknowledge, answer
from bot.core.wording import plural
from bot.store.guilds import MemberConsent

from .views import OwnedView, send_ephemeral_view

if TYPE_CHECKING:
    from bot.app import MarkovBot

__all__ = ["PrivacyCog"]

_CHOICES = {"in": "opted in", "out": "opted out"}


class ForgetOffer(OwnedView):
    """After opting out, one click, by the member alone, also erases what was learned."""

    refusal = "This button isn't yours."
    admins_may_press = False

    def __init__(self, bot: MarkovBot, owner: int, label: str, done: str) -> None:
        super().__init__(owner, timeout=300)
        self.bot = bot
        self.done = done
        self.forget.label = label

    @discord.ui.button(label="Forget my messages", style=discord.ButtonStyle.danger)
    async def forget(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetOffer]
    ) -> None:
        assert interaction.guild_id is not None
        # Acknowledged first: the deletion may wait on a busy database longer than the
        # 3 seconds Discord gives a button.
        await interaction.response.defer()
        n = await self.bot.servers.forget_member(interaction.guild_id, interaction.user.id)
        self.stop()
        await interaction.edit_original_response(content=self.done.format(n=f"{n:,}"), view=None)


class ForgetConfirm(ForgetOffer):
    """``/markov-privacy forget`` asks first, as a purge does: erase, or cancel."""

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetConfirm]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)


@app_commands.guild_only()
class PrivacyCog(commands.GroupCog, group_name="markov-privacy"):
    """Your consent and your data."""

    def __init__(self, bot: MarkovBot) -> None:
        self.bot = bot
        self.servers = bot.servers
        super().__init__()

    async def _set(self, interaction: discord.Interaction, choice: MemberConsent) -> None:
        assert interaction.guild_id is not None
        await acknowledge(interaction)
        await self.servers.set_member_consent(interaction.guild_id, interaction.user.id, choice)

    @app_commands.command(name="optin", description="Let me learn from your messages here")
    async def optin(self, interaction: discord.Interaction) -> None:
        await self._set(interaction, "in")
        await answer(
            interaction,
            "Thanks! I'll learn from your messages in the channels admins enabled. "
            "`/markov-privacy optout` stops it any time.",
        )

    @app_commands.command(name="optout", description="Stop learning from your messages")
    async def optout(self, interaction: discord.Interaction) -> None:
        await self._set(interaction, "out")
        view = ForgetOffer(
            self.bot,
            interaction.user.id,
            "Also forget my messages",
            "Forgot {n} of your messages. You are opted out.",
        )
        await send_ephemeral_view(
            interaction,
            "I won't learn from your messages any more. Forget what I already learned?",
            view,
        )

    @app_commands.command(name="forget", description="Delete everything I learned from you here")
    async def forget(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await acknowledge(interaction)
        status = await self.servers.member_status(interaction.guild_id, interaction.user.id)
        view = ForgetConfirm(
            self.bot,
            interaction.user.id,
            "Delete my messages",
            "Forgot {n} of your messages from this server's model.",
        )
        await send_ephemeral_view(
            interaction,
            f"This deletes the {plural(status.stored, 'message')} of yours I learned here "
            "(it cannot be undone). Sure?",
            view,
        )

    @app_commands.command(name="status", description="What I store about you here")
    async def status(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await acknowledge(interaction)
        s = await self.servers.member_status(interaction.guild_id, interaction.user.id)
        await answer(
            interaction,
            f"Consent mode here: **{s.mode}**; your choice: "
            f"**{_CHOICES.get(s.choice or '', 'none yet')}** — "
            f"I {'am' if s.learning else 'am not'} learning from you.\n"
            f"Stored: {s.stored:,} of your messages, as word ids with the message, channel and "
            "time (no text is kept beyond the model's words). `/markov-privacy forget` deletes "
            "them.",
        )


async def setup(bot: MarkovBot) -> None:
    await bot.add_cog(PrivacyCog(bot))
