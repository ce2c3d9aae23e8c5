"""Buttons that belong to the member who asked, and die cleanly when they expire."""

from __future__ import annotations

import logging
from typing import Any

import discord

from .errors import reply_to_error

__all__ = ["OwnedView"]

log = logging.getLogger(__name__)


class OwnedView(discord.ui.View):
    """Only the member who ran the command (or an admin) may press; a class watching the
    demo shouldn't be able to hijack it. On timeout the buttons are greyed out in place."""

    refusal = "Only the person who asked (or an admin) can press these."
    #: False for a choice that is the owner's alone (deleting their own data, a purge).
    admins_may_press = True

    def __init__(self, owner: int, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner = owner
        self.message: discord.InteractionMessage | None = None

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        member = interaction.user
        if member.id == self.owner or (
            self.admins_may_press
            and isinstance(member, discord.Member)
            and member.guild_permissions.manage_guild
        ):
            return True
        await interaction.response.send_message(self.refusal, ephemeral=True)
        return False

    async def on_timeout(self) -> None:
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
        if self.message is not None:
            try:
                await self.message.edit(view=self)
            except discord.HTTPException:
                log.debug("could not disable the buttons of an expired %s", type(self).__name__)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        await reply_to_error(interaction, error, f"{type(self).__name__} button")
