"""End-to-end: the sampling lab's knobs on /markov-explain (options and the knob menu),
/markov and /markov-compare, with numbers a class can check by hand."""

from __future__ import annotations

import re

import pytest

from fake_discord import FakeDiscord
from tests.e2e.support import E2E
from tests.e2e.test_e2e_commands import CALLBACK_UPDATE_MESSAGE, embed_of, table_rows, taught

pytestmark = pytest.mark.both_backends  # the same behaviour on SQLite and PostgreSQL


async def test_explain_knobs_match_a_hand_calculation_and_the_menu_redraws_in_place(
    e2e: E2E, fake: FakeDiscord
) -> None:
    """After "the" (TEXTS): cat 2, mat 1, dog 1. With "the cat sat on the" as the output so
    far cat was used once; R = 2 makes its logit 2 ln 1/2 = ln 1/4, the same as mat and
    dog: 1/3 each. Banning mat leaves cat and dog at 1/2."""
    w = e2e.world
    async with e2e.start() as bot:
        await taught(e2e, bot)
        rec = await e2e.invoke(
            w.user_id,
            "markov-explain",
            {"word": "the cat sat on the", "repetition_penalty": 2.0, "ban": "mat"},
        )
        embed = embed_of(rec)
        rows = table_rows(embed["description"])
        assert {t: r[4] for t, r in rows.items()} == pytest.approx(
            {"cat": 50.0, "dog": 50.0, "mat": 0.0}, abs=0.06
        )
        table = embed["description"].split("```")[1]
        assert re.search(r"cat\s+-1\.39\s+-1\.39\s+50\.0%", table), table
        assert re.search(r"mat\s+-∞\s+-∞\s+0\.0% ban", table), table
        assert "repetition ×2" in embed["description"] and "ban mat" in embed["description"]
        assert "knob" in rec.custom_ids()

        # The menu changes one knob in place: repetition penalty off → cat 2/3, dog 1/3.
        message_id = rec.original_message_id
        assert message_id is not None
        pick = await e2e.click(rec, "knob", w.user_id, ["repetition_penalty=1"])
        assert pick.response_type == CALLBACK_UPDATE_MESSAGE
        shown = fake.message(message_id)["embeds"][0]
        rows = table_rows(shown["description"])
        assert {t: r[4] for t, r in rows.items()} == pytest.approx(
            {"cat": 66.7, "dog": 33.3, "mat": 0.0}, abs=0.06
        )
        assert "ban mat" in shown["description"]  # the other knobs stay

        # min-p 0.5: dog's 1/3 is exactly 0.5 × cat's 2/3, so it stays (P ≥ min_p × top).
        pick = await e2e.click(rec, "knob", w.user_id, ["min_p=0.5"])
        shown = fake.message(message_id)["embeds"][0]
        assert "min-p 0.5" in shown["description"]
        assert {t: r[4] for t, r in table_rows(shown["description"]).items()} == pytest.approx(
            {"cat": 66.7, "dog": 33.3, "mat": 0.0}, abs=0.06
        )
        assert len(fake.bot_messages(w.channel_id)) == 1  # redrawn in place, never re-sent

        bad = await e2e.invoke(w.user_id, "markov-explain", {"word": "the", "ban": "zebra"})
        assert bad.ephemeral and "I never learned “zebra”" in bad.content, bad.content
        bad = await e2e.invoke(w.admin_id, "markov-explain", {"word": "the", "bias": "cat"})
        assert bad.ephemeral and "WORD=NUMBER" in bad.content, bad.content


async def test_markov_trace_marks_the_steps_a_penalty_changed_and_compare_varies_it(
    e2e: E2E,
) -> None:
    w = e2e.world
    async with e2e.start() as bot:
        await taught(e2e, bot)
        rec = await e2e.invoke(
            w.user_id,
            "markov",
            {
                "start": "the",
                "temp": 0.1,
                "seed": 5,
                "length": 12,
                "min_words": 12,
                "repetition_penalty": 3.0,
                "presence_penalty": 0.5,
                "show_work": True,
            },
        )
        embed = embed_of(rec)
        assert "repetition ×3, presence −0.5" in embed["footer"]["text"]
        [field] = embed["fields"]
        plain = re.sub(r"\x1b\[\d+m", "", field["value"])
        assert max(len(line) for line in plain.strip("`").splitlines()) <= 40, plain
        assert "! a penalty/bias/ban changed the word" in plain

        compared = embed_of(
            await e2e.invoke(
                w.admin_id,
                "markov-compare",
                {
                    "start": "the",
                    "vary": "repetition_penalty",
                    "values": "1,1.3,2",
                    "temp": 0.1,
                    "seed": 1,
                },
            )
        )
        assert compared["title"] == "Same start, same seed, different repetition penalty"
        names = [f["name"] for f in compared["fields"]]
        for name, r in zip(names, ["1", "1.3", "2"], strict=True):
            assert re.fullmatch(
                rf"repetition_penalty = {re.escape(r)} · T = 0\.1 · perplexity \d+\.\d\d", name
            ), name
        low = compared["fields"][0]["value"].split()
        high = compared["fields"][2]["value"].split()
        # The penalty breaks the T = 0.1 loop: more distinct words among the same count.
        assert len(set(high)) / len(high) >= len(set(low)) / len(low)
