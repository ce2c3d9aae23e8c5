"""Explanation tables checked against a hand calculation on a tiny corpus.

The corpus, learned into a MemoryModel and into a real Store on each backend (order 2):

    the cat sat
    the cat ran
    the dog sat
    a dog ran

By hand: after "the" come cat ×2 and dog ×1; messages start with the ×3 and a ×1;
"sat" is always last (<end> ×2); the two-word context "cat dog" never occurs, so it backs
off to "dog", followed by sat ×1 and ran ×1.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.explain import Explanation, Row, explain
from bot.core.generate import explain_context
from bot.core.model import (
    END_LABEL,
    START_LABEL,
    EmptyModel,
    MemoryModel,
    ModelReader,
    UnknownStart,
)
from bot.core.present import explanation_table
from bot.core.sampling import InvalidOption, classes_from_counts
from bot.core.tokenize import tokenize
from bot.store import Incoming, Store
from tests.postgres import fresh_address

CORPUS = ["the cat sat", "the cat ran", "the dog sat", "a dog ran"]


async def open_store(path: Path | str) -> Store:
    """A real store. Two throwaway words are learned first, in their own namespace, because
    a fresh database hands out vocabulary ids 1 and 2, which collide with the start and end
    markers (a bug shown by test_store.py::test_first_words_learned_are_not_markers)."""
    store = await Store.open(path)
    await store.learn(await store.namespace("__burn_ids__"), [Incoming(1, ["__a__", "__b__"])])
    return store


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def model(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ModelReader]:
    if request.param == "memory":
        memory = MemoryModel(order=2)
        for text in CORPUS:
            memory.learn(tokenize(text))
        yield memory
        return
    async with fresh_address(request.param, tmp_path, request) as address:
        store = await open_store(address)
        try:
            ns = await store.namespace("tiny", order=2)
            for i, text in enumerate(CORPUS, start=1):
                await store.learn(ns, [Incoming(i, tokenize(text))])
            yield store.reader(ns)
        finally:
            await store.close()


def by_token(e: Explanation) -> dict[str, Row]:
    return {r.token: r for r in e.rows}


def softmax_by_hand(probabilities: list[float], t: float) -> list[float]:
    """exp(ln p_i / T) / Σ_j exp(ln p_j / T), literally."""
    numerators = [math.exp(math.log(p) / t) for p in probabilities]
    return [n / sum(numerators) for n in numerators]


def entropy_by_hand(probabilities: list[float]) -> float:
    return -sum(p * math.log2(p) for p in probabilities if p > 0)


# ---------------------------------------------------------------------------- the numbers


@pytest.mark.parametrize("t", [1.0, 0.5, 2.0, 0.1, 5.0])
async def test_context_the_matches_the_hand_calculation(model: ModelReader, t: float) -> None:
    e = await explain_context(model, "the", t, rows=None)
    assert e.asked == ("the",)
    assert e.context == ("the",)
    assert not e.backed_off
    assert e.total == 3
    assert e.candidates == 2
    assert [r.token for r in e.rows] == ["cat", "dog"]
    cat, dog = e.rows
    assert (cat.count, dog.count) == (2, 1)
    assert cat.p == pytest.approx(2 / 3, rel=1e-12)
    assert dog.p == pytest.approx(1 / 3, rel=1e-12)
    assert cat.logit == pytest.approx(math.log(2 / 3), rel=1e-12)
    assert dog.logit == pytest.approx(math.log(1 / 3), rel=1e-12)
    assert cat.scaled_logit == pytest.approx(math.log(2 / 3) / t, rel=1e-12)
    assert dog.scaled_logit == pytest.approx(math.log(1 / 3) / t, rel=1e-12)
    q_cat, q_dog = softmax_by_hand([2 / 3, 1 / 3], t)
    assert cat.prob == pytest.approx(q_cat, rel=1e-12)
    assert dog.prob == pytest.approx(q_dog, rel=1e-12)
    # The same thing in closed form: q_cat = 2^(1/T) / (2^(1/T) + 1).
    assert cat.prob == pytest.approx(2 ** (1 / t) / (2 ** (1 / t) + 1), rel=1e-12)

    h1 = entropy_by_hand([2 / 3, 1 / 3])
    assert h1 == pytest.approx(math.log2(3) - 2 / 3, rel=1e-12)
    assert e.entropy_t1 == pytest.approx(h1, rel=1e-12)
    assert e.perplexity_t1 == pytest.approx(2**h1, rel=1e-12)
    ht = entropy_by_hand([q_cat, q_dog])
    assert e.entropy_t == pytest.approx(ht, rel=1e-9)
    assert e.perplexity_t == pytest.approx(2**ht, rel=1e-9)
    assert e.others == 0
    assert e.others_p == pytest.approx(0.0, abs=1e-12)
    assert e.others_prob == pytest.approx(0.0, abs=1e-12)


async def test_entropy_at_half_temperature_by_hand(model: ModelReader) -> None:
    # T = 0.5: q = 4/5, 1/5, so H = −(0.8 log2 0.8 + 0.2 log2 0.2) ≈ 0.7219 bits.
    e = await explain_context(model, "the", 0.5)
    h = -(0.8 * math.log2(0.8) + 0.2 * math.log2(0.2))
    assert e.entropy_t == pytest.approx(h, rel=1e-12)
    assert e.perplexity_t == pytest.approx(2**h, rel=1e-12)
    assert e.entropy_t < e.entropy_t1  # colder is more certain


async def test_temperature_zero_row_numbers(model: ModelReader) -> None:
    e = await explain_context(model, "the", 0.0, rows=None)
    cat, dog = e.rows
    assert cat.scaled_logit is None and dog.scaled_logit is None  # ln p / 0 is undefined
    assert (cat.prob, dog.prob) == (1.0, 0.0)
    assert e.entropy_t == 0.0 and e.perplexity_t == 1.0
    assert e.entropy_t1 == pytest.approx(math.log2(3) - 2 / 3, rel=1e-12)


async def test_top_k_in_the_explanation(model: ModelReader) -> None:
    e = await explain_context(model, "the", 1.0, top_k=1, rows=None)
    assert [(r.token, r.prob) for r in e.rows] == [("cat", 1.0), ("dog", 0.0)]
    assert e.top_k == 1
    # p is still the learned frequency; only the sampling probability is cut.
    assert by_token(e)["dog"].p == pytest.approx(1 / 3)
    assert e.entropy_t == 0.0


async def test_top_p_in_the_explanation(model: ModelReader) -> None:
    # At T = 1, cat alone has 2/3 ≥ 0.6, so top-p 0.6 keeps only cat; 0.7 keeps both.
    e = await explain_context(model, "the", 1.0, top_p=0.6, rows=None)
    assert [r.prob for r in e.rows] == [1.0, 0.0]
    e = await explain_context(model, "the", 1.0, top_p=0.7, rows=None)
    assert [r.prob for r in e.rows] == pytest.approx([2 / 3, 1 / 3])


# ---------------------------------------------------------------------------- others


@pytest.mark.parametrize("t", [1.0, 0.5])
async def test_others_summary_when_rows_are_limited(model: ModelReader, t: float) -> None:
    e = await explain_context(model, "the", t, rows=1)
    assert [r.token for r in e.rows] == ["cat"]
    assert e.candidates == 2
    assert e.others == 1
    assert e.others_p == pytest.approx(1 / 3, rel=1e-12)
    q_dog = softmax_by_hand([2 / 3, 1 / 3], t)[1]
    assert e.others_prob == pytest.approx(q_dog, rel=1e-12)
    # The rendered table says "N other(s): X% learned, Y% at T".
    last = explanation_table(e).splitlines()[-1]
    assert "1 other:" in last
    assert f"{1 / 3:.1%} learned" in last
    assert f"{q_dog:.1%} at T = {t:g}" in last


async def test_no_others_line_when_everything_is_listed(model: ModelReader) -> None:
    e = await explain_context(model, "the", 1.0, rows=10)
    assert e.others == 0
    assert "other" not in explanation_table(e)


def test_others_with_several_hidden_candidates_from_classes() -> None:
    # Directly through explain(): 1 listed of counts [4, 2, 2, 1, 1] (total 10) at T = 1.
    classes = classes_from_counts([4, 2, 2, 1, 1])
    e = explain(("x",), ("x",), classes, [("a", 4)], 1.0)
    assert e.others == 4
    assert e.others_p == pytest.approx(6 / 10)
    assert e.others_prob == pytest.approx(6 / 10)
    assert "4 others: 60.0% learned, 60.0% at T = 1" in explanation_table(e)


# ---------------------------------------------------------------------------- back-off and markers


async def test_unseen_two_word_context_backs_off(model: ModelReader) -> None:
    e = await explain_context(model, "cat dog", 1.0, rows=None)
    assert e.asked == ("cat", "dog")
    assert e.context == ("dog",)
    assert e.backed_off
    assert {(r.token, r.count) for r in e.rows} == {("sat", 1), ("ran", 1)}
    assert [r.prob for r in e.rows] == pytest.approx([0.5, 0.5])


async def test_seen_two_word_context_does_not_back_off(model: ModelReader) -> None:
    e = await explain_context(model, "the cat", 1.0, rows=None)
    assert e.context == ("the", "cat")
    assert not e.backed_off
    assert {(r.token, r.count) for r in e.rows} == {("sat", 1), ("ran", 1)}


async def test_only_the_last_order_words_are_used(model: ModelReader) -> None:
    # Order 2: "a the cat" uses "the cat" and that is not a back-off.
    e = await explain_context(model, "a the cat", 1.0, rows=None)
    assert e.context == ("the", "cat")
    assert not e.backed_off


async def test_end_marker_is_a_candidate_where_messages_end(model: ModelReader) -> None:
    e = await explain_context(model, "sat", 1.0, rows=None)
    assert [(r.token, r.count, r.prob) for r in e.rows] == [(END_LABEL, 2, 1.0)]
    assert e.entropy_t1 == 0.0 and e.perplexity_t1 == 1.0
    e = await explain_context(model, "dog ran", 1.0, rows=None)
    assert [(r.token, r.count) for r in e.rows] == [(END_LABEL, 1)]


async def test_no_words_explains_the_start_of_a_message(model: ModelReader) -> None:
    no_words: list[str | list[str] | None] = [None, "", []]
    for words in no_words:
        e = await explain_context(model, words, 1.0, rows=None)
        assert e.asked == ()
        assert e.context == (START_LABEL,)
        assert not e.backed_off
        assert [(r.token, r.count) for r in e.rows] == [("the", 3), ("a", 1)]
        assert [r.p for r in e.rows] == pytest.approx([3 / 4, 1 / 4])
        h = entropy_by_hand([3 / 4, 1 / 4])
        assert e.entropy_t1 == pytest.approx(h, rel=1e-12)


async def test_case_insensitive_words(model: ModelReader) -> None:
    e = await explain_context(model, "THE", 1.0)
    assert e.context == ("the",)
    assert [r.token for r in e.rows] == ["cat", "dog"]


async def test_unknown_word_and_bad_options(model: ModelReader) -> None:
    with pytest.raises(UnknownStart) as info:
        await explain_context(model, "cta", 1.0)
    assert "cat" in info.value.suggestions
    with pytest.raises(InvalidOption):
        await explain_context(model, "the", -1.0)
    with pytest.raises(InvalidOption):
        await explain_context(model, "the", 1.0, top_p=0.0)
    with pytest.raises(InvalidOption):
        await explain_context(model, "```only code```", 1.0)


async def test_memory_and_store_explanations_are_identical(store_address: str) -> None:
    memory = MemoryModel(order=2)
    for text in CORPUS:
        memory.learn(tokenize(text))
    store = await open_store(store_address)
    try:
        ns = await store.namespace("tiny", order=2)
        for i, text in enumerate(CORPUS, start=1):
            await store.learn(ns, [Incoming(i, tokenize(text))])
        reader = store.reader(ns)
        for words in [None, "the", "cat", "dog", "sat", "ran", "a", "the cat", "a dog", "cat dog"]:
            for t in (0.0, 0.3, 1.0, 2.7):
                for top_k, top_p in [(None, None), (1, None), (None, 0.5)]:
                    a = await explain_context(memory, words, t, top_k, top_p, rows=None)
                    b = await explain_context(reader, words, t, top_k, top_p, rows=None)
                    assert a == b, (words, t, top_k, top_p)
    finally:
        await store.close()


async def test_empty_model_cannot_be_explained(store_address: str) -> None:
    with pytest.raises(EmptyModel):
        await explain_context(MemoryModel(), None, 1.0)
    store = await open_store(store_address)
    try:
        with pytest.raises(EmptyModel):
            await explain_context(store.reader(await store.namespace("nothing")), None, 1.0)
    finally:
        await store.close()
