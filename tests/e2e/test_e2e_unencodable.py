"""End-to-end: text UTF-8 cannot encode (a lone surrogate, a valid JSON escape) from a
message, a command option or autocomplete is cleaned where it enters; nothing is blocked."""

from __future__ import annotations

from bot.core.text import REPLACEMENT
from fake_discord import FakeDiscord
from tests.e2e.support import E2E


async def test_a_message_with_a_lone_surrogate_and_those_after_it_are_learned(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        odd = await e2e.say(w.channel_id, w.user_id, "broken \ud800 glyph here")
        later = await e2e.say(w.channel_id, w.user_id, "later words arrive", "and more after")
        await e2e.wait_learned(bot, [*odd, *later])
        await e2e.assert_model(
            bot,
            [f"broken {REPLACEMENT} glyph here", "later words arrive", "and more after"],
        )


async def test_a_lone_surrogate_in_an_option_or_autocomplete_gets_a_clear_answer(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        taught = await e2e.say(w.channel_id, w.user_id, "plain words to learn")
        await e2e.wait_learned(bot, taught)

        rec = await e2e.invoke(w.user_id, "markov", {"start": "\ud800"})
        assert rec.content.startswith(f"I never learned “{REPLACEMENT}”"), rec.content

        choices = await fake.autocomplete(
            w.guild_id, w.channel_id, w.user_id, "markov", "start", "plain \ud800"
        )
        assert choices == []
        choices = await fake.autocomplete(
            w.guild_id, w.channel_id, w.user_id, "markov", "start", "\udfffpla"
        )
        assert choices == []
        # Still answering, with the usual words.
        choices = await fake.autocomplete(
            w.guild_id, w.channel_id, w.user_id, "markov", "start", "pla"
        )
        assert [c["value"] for c in choices] == ["plain"]
