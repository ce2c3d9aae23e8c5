"""/markov-step through the real client: sample, greedy, back, temperature, owner-only, timeout,
and the sampling lab's knobs."""

from __future__ import annotations

import pytest

from fake_discord import FakeDiscord
from tests.e2e.support import E2E, eventually
from tests.e2e.test_e2e_commands import CALLBACK_UPDATE_MESSAGE, embed_of, taught

pytestmark = pytest.mark.both_backends  # the same behaviour on SQLite and PostgreSQL

# After "the": cat ×2, mat ×1, dog ×1 (see TEXTS in test_e2e_commands).
BUTTONS = ["step-sample", "step-greedy", "step-back", "step-colder", "step-warmer"]


def sentence(embed: dict) -> str:
    return str(embed["description"]).strip("*⏹ ")


async def test_step_by_step_generation(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    bob = e2e.member("bob")
    async with e2e.start() as bot:
        await taught(e2e, bot)
        rec = await e2e.invoke(w.user_id, "markov-step", {"start": "the", "temp": 1.0, "seed": 5})
        embed = embed_of(rec)
        assert sentence(embed) == "the"
        assert rec.custom_ids() == BUTTONS
        [candidates] = [f for f in embed["fields"] if f["name"].startswith("Next word")]
        # At T = 1 the learned frequencies: 2/4, 1/4, 1/4.
        assert "50.0%  cat" in candidates["value"] and "25.0%  mat" in candidates["value"]
        message_id = rec.original_message_id

        greedy = await e2e.click(rec, "step-greedy", w.user_id)
        assert greedy.response_type == CALLBACK_UPDATE_MESSAGE
        shown = fake.message(message_id)["embeds"][0]
        assert sentence(shown) == "the cat"  # the most frequent candidate
        assert "took the top word “cat” — probability 50.0%, rank 1 of 3" in str(shown["fields"])

        back = await e2e.click(rec, "step-back", w.user_id)
        assert back.original_message_id == message_id
        assert sentence(fake.message(message_id)["embeds"][0]) == "the"

        colder = await e2e.click(rec, "step-colder", w.user_id)
        assert colder.response_type == CALLBACK_UPDATE_MESSAGE
        shown = fake.message(message_id)["embeds"][0]
        assert shown["title"] == "Step by step · T = 0.5"
        # At T = 0.5: p² normalised → 4/6, 1/6, 1/6.
        assert "66.7%  cat" in str(shown["fields"])

        await e2e.click(rec, "step-sample", w.user_id)
        shown = fake.message(message_id)["embeds"][0]
        drawn = sentence(shown).split()
        assert drawn[0] == "the" and drawn[1] in {"cat", "mat", "dog"}
        assert "drew “" in str(shown["fields"])

        # Someone else may not press; an admin may.
        refused = await e2e.click(rec, "step-sample", bob)
        assert refused.ephemeral and "Only the person who started" in refused.content
        assert sentence(fake.message(message_id)["embeds"][0]).split() == drawn
        await e2e.click(rec, "step-warmer", w.admin_id)
        assert fake.message(message_id)["embeds"][0]["title"] == "Step by step · T = 1"
        assert len(fake.bot_messages(w.channel_id)) == 1  # always edited in place


def candidates_of(embed: dict) -> str:
    [field] = [f for f in embed["fields"] if f["name"].startswith("Next word")]
    return str(field["value"])


async def test_step_with_knobs_shows_the_ban_and_keeps_it_across_buttons(
    e2e: E2E, fake: FakeDiscord
) -> None:
    """After "the": cat 2, mat 1, dog 1; banning cat leaves mat and dog at 1/2 each, at any
    temperature, and Greedy takes mat (learned first) where it would have taken cat."""
    w = e2e.world
    async with e2e.start() as bot:
        await taught(e2e, bot)
        options = {"start": "the", "seed": 5, "ban": "cat", "repetition_penalty": 2.0}
        rec = await e2e.invoke(w.user_id, "markov-step", options)
        embed = embed_of(rec)
        assert embed["footer"]["text"] == "seed 5, repetition ×2, ban cat · this server"
        shown = candidates_of(embed)
        assert "50.0%  mat" in shown and "50.0%  dog" in shown and "0.0%  cat (ban)" in shown
        message_id = rec.original_message_id

        await e2e.click(rec, "step-greedy", w.user_id)
        shown = fake.message(message_id)["embeds"][0]
        assert sentence(shown) == "the mat"
        assert (
            "took the top word “mat” — probability 50.0%, rank 1 of 3; "
            "a penalty/bias/ban changed the word"
        ) in str(shown["fields"])

        await e2e.click(rec, "step-back", w.user_id)
        await e2e.click(rec, "step-colder", w.user_id)
        shown = fake.message(message_id)["embeds"][0]
        assert shown["title"] == "Step by step · T = 0.5"
        assert "ban cat" in shown["footer"]["text"]
        assert "50.0%  mat" in candidates_of(shown) and "cat (ban)" in candidates_of(shown)
        for _ in range(3):
            if "⏹" not in fake.message(message_id)["embeds"][0]["description"]:
                await e2e.click(rec, "step-sample", w.user_id)
        assert "cat" not in sentence(fake.message(message_id)["embeds"][0]).split()

        # A knob Discord cannot check is explained briefly, to the one who typed it.
        bad = await e2e.invoke(w.user_id, "markov-step", {"start": "the", "ban": "zebra"})
        assert bad.ephemeral and "I never learned “zebra”" in bad.content, bad.content
        bad = await e2e.invoke(w.admin_id, "markov-step", {"start": "the", "bias": "cat"})
        assert bad.ephemeral and "WORD=NUMBER" in bad.content, bad.content
        assert len(fake.bot_messages(w.channel_id)) == 1  # only the first one was a step


async def test_same_seed_draws_the_same_steps(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await taught(e2e, bot)
        sentences = []
        for _ in range(2):
            rec = await e2e.invoke(w.user_id, "markov-step", {"seed": 11})
            for _ in range(4):
                if "⏹" in fake.message(rec.original_message_id)["embeds"][0]["description"]:
                    break  # the end marker was drawn: Sample is disabled
                await e2e.click(rec, "step-sample", w.user_id)
            sentences.append(sentence(fake.message(rec.original_message_id)["embeds"][0]))
        assert sentences[0] == sentences[1]


async def test_buttons_are_disabled_when_the_demo_times_out(
    e2e: E2E, fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        # load_extension executes its own copy of the module: patch that one.
        monkeypatch.setattr(bot.extensions["cogs.stepping"], "STEP_TIMEOUT", 0.5)
        await taught(e2e, bot)
        rec = await e2e.invoke(w.user_id, "markov-step", {"start": "the"})

        async def disabled() -> bool:
            rows = fake.message(rec.original_message_id).get("components") or []
            buttons = [c for row in rows for c in row.get("components", [])]
            return bool(buttons) and all(b.get("disabled") for b in buttons)

        await eventually(disabled, timeout=5.0, what="the step buttons to be disabled")
