"""Back-off over unknown typed words, perplexity under the learned model, and the shared
wording (plurals, the context line, the start of a message, no seed at T = 0).

Models are real MemoryModels learned from tokenized text.
"""

from __future__ import annotations

import math
import statistics

import pytest

from bot.core.explain import Generation
from bot.core.generate import Options, compare, explain_context, generate, resolve_known
from bot.core.model import START_LABEL, MemoryModel, UnknownStart
from bot.core.present import (
    candidate_lines,
    explanation_summary,
    generation_json,
    trace_lines,
)
from bot.core.stepper import Stepper
from bot.core.tokenize import tokenize
from bot.core.wording import (
    START_PHRASE,
    context_phrase,
    context_size,
    plural,
    seed_phrase,
    unknown_note,
)


def learned(lines: list[str], order: int = 1) -> MemoryModel:
    model = MemoryModel(order)
    model.learn_all(tokenize(line) for line in lines)
    return model


CATS = ["the cat sat on the mat", "the cat sat down", "a dog sat up", "the dog ran"]

# ---------------------------------------------------------------------- back-off


async def test_known_suffix_is_used_and_unknown_words_named() -> None:
    model = learned(CATS, order=2)
    known = await resolve_known(model, ["banana", "the", "cat"])
    assert known.words == ("the", "cat")
    assert known.unknown == ("banana",)
    assert await model.spell(known.ids) == ["the", "cat"]
    # Only the unknown ones are named, even when a known word sits before them.
    known = await resolve_known(model, ["dog", "zzz", "qqq", "sat"])
    assert known.words == ("sat",) and known.unknown == ("zzz", "qqq")


async def test_generation_backs_off_over_unknown_start_words() -> None:
    model = learned(CATS)
    g = await generate(model, "banana sat", Options(seed=4))
    assert g.unknown == ("banana",) and g.start == ("sat",)
    assert g.tokens[0] == "sat" and "banana" not in g.text
    assert generation_json(g)["unknown"] == ["banana"]
    # Fully known starts name nothing.
    plain = await generate(model, "sat", Options(seed=4))
    assert plain.unknown == () and plain.text == g.text


async def test_explanation_backs_off_over_unknown_words() -> None:
    model = learned(CATS)
    e = await explain_context(model, "banana sat", 1.0)
    assert e.unknown == ("banana",)
    assert e.context == ("sat",) and e.asked == ("sat",)
    assert {r.token for r in e.rows} == {"on", "down", "up"}


async def test_stepper_backs_off_over_unknown_start_words() -> None:
    model = learned(CATS)
    stepper = await Stepper.begin(model, "zzz the", 1.0, seed=1)
    assert stepper.unknown == ("zzz",) and stepper.start == ("the",)
    assert stepper.sentence == "the"


@pytest.mark.parametrize("start", ["banana", "cat zzz", "sat banana"])
async def test_unknown_last_word_is_the_clear_error(start: str) -> None:
    model = learned(CATS)
    with pytest.raises(UnknownStart) as info:
        await generate(model, start, Options(seed=0))
    assert info.value.words == (start.split()[-1],)
    with pytest.raises(UnknownStart):
        await explain_context(model, start, 1.0)


async def test_no_known_word_names_every_word() -> None:
    with pytest.raises(UnknownStart) as info:
        await generate(learned(CATS), "banana zzz", Options(seed=0))
    assert info.value.words == ("banana", "zzz")
    assert str(info.value) == "I never learned “banana zzz”."


def test_unknown_note_names_the_words() -> None:
    assert unknown_note(["banana"], ["sat"]) == "Never saw “banana”; using “sat”."
    assert unknown_note(["a", "b"], ["the", "cat"]) == "Never saw “a”, “b”; using “the cat”."


# ------------------------------------------------------------- perplexity


async def test_learned_probability_by_hand() -> None:
    # the → cat 2 of 3, the → dog 1 of 3. At T = 0.5 the sampler's q(cat) is 4/5.
    model = learned(["the cat", "the cat", "the dog"])
    for seed in range(40):
        g = await generate(model, "the", Options(temperature=0.5, seed=seed, originality=False))
        if g.tokens == ("the", "cat"):
            first = g.steps[0]
            assert first.learned_prob == pytest.approx(2 / 3)
            assert first.prob == pytest.approx(4 / 5)
            assert g.log_prob_learned == pytest.approx(math.log(2 / 3))
            assert g.perplexity_learned == pytest.approx((3 / 2) ** (1 / 2))
            assert g.perplexity_sampled == pytest.approx((5 / 4) ** (1 / 2))
            data = generation_json(g)
            assert data["perplexity_learned"] == pytest.approx(g.perplexity_learned)
            assert data["perplexity_sampled"] == pytest.approx(g.perplexity_sampled)
            assert data["steps"][0]["probability_learned"] == pytest.approx(2 / 3)
            return
    pytest.fail("“the cat” never drawn")


async def test_learned_probability_renormalises_a_masked_end() -> None:
    # the → cat 1, the → <end> 1; masked, cat is the only candidate under the learned model.
    model = learned(["the", "the cat"])
    g = await generate(
        model, "the", Options(temperature=1.0, seed=0, length=1, min_words=1, originality=False)
    )
    assert g.steps[0].end_masked and g.steps[0].learned_prob == pytest.approx(1.0)


async def test_perplexity_under_the_learned_model_rises_with_temperature() -> None:
    lines = [" ".join(f"w{(i * 7 + j * j) % 23}" for j in range(i % 9 + 3)) for i in range(300)] + [
        "w1 w2 w3"
    ] * 40
    model = learned(lines)
    by_t: dict[float, list[float]] = {}
    for seed in range(30):
        for g in await compare(model, None, (0.2, 1.0, 2.5), Options(seed=seed, length=20)):
            by_t.setdefault(g.temperature, []).append(g.perplexity_learned)
    means = [statistics.mean(by_t[t]) for t in (0.2, 1.0, 2.5)]
    assert means[0] < means[1] < means[2], means


async def test_trace_names_both_distributions() -> None:
    model = learned(CATS)
    g = await generate(model, None, Options(temperature=0.5, seed=2, top_k=3))
    *_, learned_line, sampled_line = trace_lines(g)
    assert learned_line == f"learned model, T = 1: perplexity {g.perplexity_learned:.2f}"
    assert sampled_line == f"as sampled, T = 0.5, top-k 3: perplexity {g.perplexity_sampled:.2f}"
    first = trace_lines(g)[0]
    assert START_PHRASE in first and START_LABEL not in first


# ---------------------------------------------------------------- wording


def test_plurals_and_the_context_line() -> None:
    assert plural(1, "candidate") == "1 candidate"
    assert plural(2, "candidate") == "2 candidates"
    assert plural(1200, "time") == "1,200 times"
    assert context_size(1) == "context of 1 word"
    assert context_size(3) == "context of 3 words"


def test_start_context_is_named() -> None:
    assert context_phrase([START_LABEL]) == START_PHRASE == "(start of a message)"
    assert context_phrase(["the", "cat"]) == "“the cat”"
    assert context_phrase(["abcdefgh"], 5) == "“abcd…”"


def test_no_seed_at_temperature_zero() -> None:
    assert seed_phrase(5, 0.0) is None
    assert seed_phrase(5, 0.5) == "seed 5"


async def test_summary_singular_and_start() -> None:
    model = learned(["hello there", "hello there"])
    e = await explain_context(model, "hello", 1.0)
    summary = explanation_summary(e)
    assert "1 candidate seen 2 times" in summary
    start = explanation_summary(await explain_context(model, None, 1.0))
    assert START_PHRASE in start and START_LABEL not in start
    assert "1 candidate seen 2 times" in start


async def test_candidate_lines_pluralise_the_others() -> None:
    model = learned(["a b", "a c", "a d"])
    e = await explain_context(model, "a", 1.0, rows=2)
    assert candidate_lines(e)[-1].endswith("… 1 other")


def test_generation_fields_default_to_nothing_unknown() -> None:
    g = Generation("", (), (), 0, 1.0, None, None, 1, 1, 0, True)
    assert g.unknown == () and g.start == ()
    assert g.perplexity_learned == 1.0 == g.perplexity_sampled
