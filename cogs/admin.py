"""/markov-admin: where the bot learns, consent mode, backfill, chatter, retention, purge.

Every subcommand checks Manage Server itself: Discord's default permissions only hide the
command in the client and are not applied to subcommands.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app.replies import UserFacingError, acknowledge, answer, echo
from bot.core.model import TEACHING_ORDER
from bot.core.wording import plural
from bot.corpora import CORPORA
from bot.services.importing import ImportTotals, import_lines
from bot.services.servers import PROGRESS_EVERY, upload_namespace_name
from bot.store.guilds import Backfill

from .common import require_admin
from .history import start_backfill
from .views import OwnedView, send_ephemeral_view

if TYPE_CHECKING:
    from bot.app import MarkovBot

__all__ = ["AdminCog"]

log = logging.getLogger(__name__)

MAX_BACKFILL = 100_000
MAX_UPLOAD_BYTES = 5_000_000
CORPUS_NAME = re.compile(r"[a-z0-9_-]{1,32}")
TextLike = discord.TextChannel


class PurgeConfirm(OwnedView):
    """A second click, by the same admin, before everything is deleted."""

    refusal = "This isn't your confirmation."
    admins_may_press = False

    def __init__(self, cog: AdminCog, owner: int) -> None:
        super().__init__(owner, timeout=60)
        self.cog = cog

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if not await super().interaction_check(interaction):
            return False
        require_admin(interaction)  # still an admin when confirming
        return True

    @discord.ui.button(label="Delete everything learned here", style=discord.ButtonStyle.danger)
    async def confirm(
        self, interaction: discord.Interaction, _: discord.ui.Button[PurgeConfirm]
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer()
        n = await self.cog.bot.servers.purge(interaction.guild_id)
        self.stop()
        await interaction.edit_original_response(
            content=f"Done: forgot {plural(n, 'message')}. Learning settings are unchanged.",
            view=None,
        )

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(
        self, interaction: discord.Interaction, _: discord.ui.Button[PurgeConfirm]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(
            content="Cancelled: nothing was deleted.", view=None
        )


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(commands.GroupCog, group_name="markov-admin"):
    """Server settings for the Markov bot (Manage Server)."""

    def __init__(self, bot: MarkovBot) -> None:
        self.bot = bot
        self.servers = bot.servers
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        require_admin(interaction)
        return True

    def _guild(self, interaction: discord.Interaction) -> int:
        assert interaction.guild_id is not None
        return interaction.guild_id

    @app_commands.command(name="listen", description="Learn from new messages in a channel")
    @app_commands.describe(channel="The channel (its threads are included)")
    async def listen(self, interaction: discord.Interaction, channel: TextLike) -> None:
        guild = self._guild(interaction)
        await acknowledge(interaction)
        config = await self.servers.listen(guild, channel.id, True)
        await answer(
            interaction,
            f"Listening in {channel.mention}. Consent mode is **{config.consent}**"
            + (
                ": members' messages are learned only after `/markov-privacy optin`."
                if config.consent == "opt-in"
                else ": members can stop it with `/markov-privacy optout`."
            ),
        )

    @app_commands.command(name="ignore", description="Stop learning in a channel")
    @app_commands.describe(
        channel="The channel", forget="Also forget what was learned there already"
    )
    async def ignore(
        self, interaction: discord.Interaction, channel: TextLike, forget: bool = False
    ) -> None:
        guild = self._guild(interaction)
        await acknowledge(interaction)
        await self.servers.listen(guild, channel.id, False)
        note = ""
        if forget:
            n = await self.servers.forget_channel(guild, channel.id)
            note = f" Forgot {plural(n, 'message')} learned there."
        await answer(interaction, f"No longer learning in {channel.mention}.{note}")

    @app_commands.command(name="status", description="Where I learn, consent mode and counts")
    async def status(self, interaction: discord.Interaction) -> None:
        guild = self._guild(interaction)
        await acknowledge(interaction)
        state = await self.servers.state(guild)
        config, consents = state.config, state.consent
        stats = await self.bot.store.stats(await self.servers.namespace(guild))
        channels = ", ".join(f"<#{c}>" for c in sorted(config.listened)) or "none yet"
        chatter = ", ".join(f"<#{c}> {p:.0%}" for c, p in config.chatter.items()) or "off"
        retention = plural(config.retention_days, "day") if config.retention_days else "keep"
        backfills = await self.servers.backfills(guild)
        history = "\n".join(f"- <#{b.channel}> {backfill_state(b)}" for b in backfills[:10])
        if len(backfills) > 10:
            history += f"\n- and {len(backfills) - 10} more"
        await answer(
            interaction,
            f"**Listening in:** {channels}\n"
            f"**Consent mode:** {config.consent} "
            f"({sum(v == 'in' for v in consents.values())} opted in, "
            f"{sum(v == 'out' for v in consents.values())} opted out)\n"
            f"**Learned:** {plural(stats.messages, 'message')}, {plural(stats.tokens, 'word')}\n"
            f"**Chatter:** {chatter} · **Retention:** {retention}"
            + (f"\n**Backfills:**\n{history}" if history else ""),
        )

    @app_commands.command(name="consent", description="Whose messages may be learned")
    @app_commands.describe(
        mode="opt-in: only members who ran /markov-privacy optin; "
        "opt-out: everyone but those who opted out"
    )
    async def consent(
        self, interaction: discord.Interaction, mode: Literal["opt-in", "opt-out"]
    ) -> None:
        guild = self._guild(interaction)
        await acknowledge(interaction)
        await self.servers.set_consent_mode(guild, mode)
        await answer(interaction, f"Consent mode is now **{mode}**.")

    @app_commands.command(name="chatter", description="Let me speak up unprompted in a channel")
    @app_commands.describe(channel="The channel", chance="Chance per message, 0 to turn off")
    async def chatter(
        self,
        interaction: discord.Interaction,
        channel: TextLike,
        chance: app_commands.Range[float, 0.0, 0.2],
    ) -> None:
        guild = self._guild(interaction)
        if not math.isfinite(chance):  # NaN passes Range's min/max comparisons
            raise UserFacingError("The chance must be a number from 0 to 0.2.")
        await acknowledge(interaction)
        await self.servers.set_chatter(guild, channel.id, chance)
        text = "off" if chance == 0 else f"{chance:.0%} of messages (at most once a minute)"
        await answer(interaction, f"Chatter in {channel.mention}: {text}.")

    @app_commands.command(name="retention", description="Forget messages older than N days")
    @app_commands.describe(days="Days to keep (0 = keep everything)")
    async def retention(
        self, interaction: discord.Interaction, days: app_commands.Range[int, 0, 3650]
    ) -> None:
        guild = self._guild(interaction)
        await acknowledge(interaction)
        await self.servers.set_retention(guild, days or None)
        note = (
            "Messages are kept."
            if not days
            else f"Messages older than {plural(days, 'day')} are forgotten hourly."
        )
        await answer(interaction, note)

    @app_commands.command(name="backfill", description="Learn a channel's existing history")
    @app_commands.describe(channel="The channel (must be listened)", limit="Messages to read")
    async def backfill(
        self,
        interaction: discord.Interaction,
        channel: TextLike,
        limit: app_commands.Range[int, 1, MAX_BACKFILL] = 1000,
    ) -> None:
        guild = self._guild(interaction)
        config = (await self.servers.state(guild)).config
        if channel.id not in config.listened:
            raise UserFacingError(
                f"I'm not listening in {channel.mention}: run `/markov-admin listen` first."
            )
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def report(b: Backfill, rate: float) -> None:
            text = f"Backfill of {channel.mention} {backfill_state(b)} ({rate:.0f} messages/s)."
            if b.failed:
                text += " Fix that, then run `/markov-admin backfill` again to go on."
            try:
                await interaction.edit_original_response(content=text)
            except discord.HTTPException:
                log.debug("backfill progress edit failed (interaction expired?)")

        await report(Backfill(guild, channel.id, None, limit, 0, 0, 0, False), 0.0)
        start_backfill(self.bot, guild, channel.id, limit, report)

    @app_commands.command(name="corpus-upload", description="Add a .txt corpus for this server")
    @app_commands.describe(
        name="A short name (letters, digits, - and _)",
        file="UTF-8 text, one message per line, at most 5 MB",
    )
    async def corpus_upload(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 32],
        file: discord.Attachment,
    ) -> None:
        guild = self._guild(interaction)
        name = name.strip().lower()
        if not CORPUS_NAME.fullmatch(name) or name in CORPORA:
            raise UserFacingError(
                "Use a new name of letters, digits, - and _ (not a bundled corpus's name)."
            )
        if file.size > MAX_UPLOAD_BYTES:
            raise UserFacingError(f"That file is {file.size / 1e6:.1f} MB; the limit is 5 MB.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await file.read()
        if b"\0" in data[:8192]:
            raise UserFacingError("That looks like a binary file: upload plain UTF-8 text.")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise UserFacingError(
                f"That file isn't UTF-8 text (bad byte at position {e.start})."
            ) from None
        lines = [(i, t.strip()) for i, t in enumerate(text.splitlines(), 1) if t.strip()]
        if not lines:
            raise UserFacingError("That file has no text lines.")
        ns = await self.bot.store.namespace(upload_namespace_name(guild, name), TEACHING_ORDER)

        last = time.monotonic()

        async def progress(totals: ImportTotals, _: int) -> None:
            nonlocal last
            if time.monotonic() - last >= PROGRESS_EVERY:
                last = time.monotonic()
                await interaction.edit_original_response(
                    content=f"Learning “{echo(name)}”: {totals.lines:,} of "
                    f"{plural(len(lines), 'line')}…"
                )

        totals = await import_lines(
            self.bot.store, ns, lines, f"upload:{name}", progress, batch_lines=2_000
        )
        await interaction.edit_original_response(
            content=f"Corpus “{echo(name)}” ready: {plural(totals.learned, 'line')}, "
            f"{plural(totals.tokens, 'word')}. Use it with `corpus:{name}`."
        )

    @app_commands.command(name="corpus-delete", description="Delete one of this server's corpora")
    async def corpus_delete(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 32]
    ) -> None:
        guild = self._guild(interaction)
        if name not in await self.servers.uploads(guild):
            raise UserFacingError(f"This server has no uploaded corpus called “{echo(name)}”.")
        await acknowledge(interaction)
        ns = await self.bot.store.namespace(upload_namespace_name(guild, name), TEACHING_ORDER)
        n = await self.bot.store.drop_namespace(ns)
        await answer(interaction, f"Deleted corpus “{echo(name)}” ({plural(n, 'line')}).")

    @app_commands.command(name="corpus-list", description="The corpora this server can use")
    async def corpus_list(self, interaction: discord.Interaction) -> None:
        guild = self._guild(interaction)
        bundled = ", ".join(f"`{c}`" for c in CORPORA)
        own = ", ".join(f"`{n}`" for n in await self.servers.uploads(guild)) or "none"
        await interaction.response.send_message(
            f"**Bundled:** {bundled}\n**This server's uploads:** {own}", ephemeral=True
        )

    @app_commands.command(name="purge", description="Delete everything learned in this server")
    async def purge_command(self, interaction: discord.Interaction) -> None:
        await send_ephemeral_view(
            interaction,
            "This deletes every message and word I learned in this server. Sure?",
            PurgeConfirm(self, interaction.user.id),
        )


def backfill_state(b: Backfill) -> str:
    """Where a backfill stands, for its progress message and the status."""
    state = "done" if b.done else f"failed: {b.failed}." if b.failed else "reading…"
    return f"{state} {b.read:,} read, {b.learned:,} learned, {b.skipped:,} skipped"


async def setup(bot: MarkovBot) -> None:
    await bot.add_cog(AdminCog(bot))
