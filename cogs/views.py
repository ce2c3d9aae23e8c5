"""Buttons that belong to the member who asked, and die cleanly when they expire.

Discord's interaction token (follow-ups, edits of the response) stops working 15 minutes
after the command; a press renews the view's timeout but not that token. So a long-lived
view on a public message is edited at its end through the bot's own token (the message is
the bot's), and a press that no live view owns any more (timed out, the bot restarted) is
answered with a sentence instead of Discord's "This interaction failed".
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import discord

from bot.app.replies import reply_to_error

__all__ = [
    "EXPIRED",
    "TOKEN_LIFETIME",
    "OwnedView",
    "answer_late_press",
    "send_ephemeral_view",
    "through_bot",
]

log = logging.getLogger(__name__)

#: Seconds an interaction token works for follow-ups and edits (then 401, Invalid Webhook Token).
TOKEN_LIFETIME = 15 * 60.0

EXPIRED = "These buttons have expired — run the command again for fresh ones."

# Per client, message id → the view answering presses on it. Weak: a finished view (and a
# closed client) may be freed.
_Views = weakref.WeakValueDictionary[int, "OwnedView"]
_live: weakref.WeakKeyDictionary[discord.Client, _Views] = weakref.WeakKeyDictionary()


def _views_of(client: discord.Client) -> _Views:
    return _live.setdefault(client, weakref.WeakValueDictionary())


def through_bot(
    interaction: discord.Interaction, message: discord.Message
) -> discord.PartialMessage:
    """``message`` as edited with the bot's own token, which does not expire like the
    interaction's (only for messages others can see: an ephemeral one has no channel copy)."""
    channel = interaction.client.get_partial_messageable(
        message.channel.id, guild_id=interaction.guild_id
    )
    return channel.get_partial_message(message.id)


async def send_ephemeral_view(
    interaction: discord.Interaction, content: str, view: OwnedView
) -> None:
    """Answer with ``content`` and ``view`` for the member's eyes only, attached to its message
    (the reply, or the follow-up that fills an :func:`~bot.app.replies.acknowledge`-d one).

    Only the interaction's token can edit an ephemeral message, so ``view``'s timeout must be
    shorter than :data:`TOKEN_LIFETIME`.
    """
    assert view.timeout is not None and view.timeout < TOKEN_LIFETIME
    if interaction.response.is_done():  # acknowledged (a write came first): fill it in
        sent = await interaction.followup.send(content, view=view, ephemeral=True, wait=True)
        view.attach(interaction, sent)
        return
    done = await interaction.response.send_message(content, view=view, ephemeral=True)
    if isinstance(done.resource, discord.InteractionMessage):
        view.attach(interaction, done.resource)


class OwnedView(discord.ui.View):
    """Only the member who ran the command (or an admin) may press; a class watching the
    demo shouldn't be able to hijack it. On timeout the buttons are greyed out in place.

    Every view must be :meth:`attach`-ed to the message it was sent on: that is how a late
    press on a view that is gone is told apart from one a live view answers.
    """

    refusal = "Only the person who asked (or an admin) can press these."
    #: False for a choice that is the owner's alone (deleting their own data, a purge).
    admins_may_press = True

    def __init__(self, owner: int, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner = owner
        self.message: discord.Message | discord.PartialMessage | None = None
        self._views: _Views | None = None

    def attach(
        self, interaction: discord.Interaction, message: discord.Message | discord.PartialMessage
    ) -> None:
        """Remember the message this view is on (to grey it out; to know it is alive).

        A message reached through the interaction (ephemeral ones) can only be edited while
        its token lives, so such a view's timeout must end well before :data:`TOKEN_LIFETIME`.
        """
        self.message = message
        self._views = _views_of(interaction.client)
        self._views[message.id] = self

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
        if self.message is None or self._views is None:
            return
        self._views.pop(self.message.id, None)
        for item in self.children:
            if isinstance(item, discord.ui.Button | discord.ui.Select):
                item.disabled = True
        try:
            # Only the buttons change; no mention is allowed to notify anyone (as everywhere).
            await self.message.edit(view=self, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.info(
                "could not grey out the buttons of an expired %s (%s); late presses are "
                "answered instead",
                type(self).__name__,
                exc.status,
            )

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        await reply_to_error(interaction, error, f"{type(self).__name__} button")


async def _is_late(interaction: discord.Interaction) -> bool:
    """A button press on one of the bot's messages that no live view will answer."""
    if interaction.type is not discord.InteractionType.component:
        return False
    message, me = interaction.message, interaction.client.user
    if message is None or me is None or message.author.id != me.id:
        return False
    view = _views_of(interaction.client).get(message.id)
    if view is None:
        return True
    # A view that stopped itself is answering this very press (and removes its buttons);
    # one that timed out (``wait()`` is then True) is not, even before on_timeout has run.
    return view.is_finished() and await view.wait()


async def answer_late_press(interaction: discord.Interaction) -> None:
    """Say the buttons expired, rather than leave the member with "This interaction failed"."""
    if not await _is_late(interaction):
        return
    try:
        await interaction.response.send_message(EXPIRED, ephemeral=True)
    except discord.HTTPException as exc:
        log.info("could not answer a press on expired buttons (%s)", exc.status)
