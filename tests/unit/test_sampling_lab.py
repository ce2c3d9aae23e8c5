"""The sampling lab's knobs, each checked against a calculation written out by hand.

The tiny lesson corpus (corpora/tiny_lesson.txt) has, after "the": cat 4, dog 2, mat 1,
sun 1 (8 in all), so p = 1/2, 1/4, 1/8, 1/8 and every expected number below follows from
those four counts with a calculator.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.generate import (
    Options,
    adjuster,
    choose_next,
    explain_context,
    explain_tokens,
    generate,
    parse_values,
)
from bot.core.model import TEACHING_ORDER, MemoryModel
from bot.core.present import (
    PHONE_WIDTH,
    explanation_json,
    explanation_table,
    trace_lines,
)
from bot.core.sampling import (
    CountClass,
    InvalidOption,
    Knobs,
    Special,
    parse_bias,
    pipeline,
)
from bot.core.tokenize import tokenize
from bot.corpora import CORPORA
from bot.store import Incoming, Store

AFTER_THE = {"cat": 4, "dog": 2, "mat": 1, "sun": 1}


def tiny() -> MemoryModel:
    model = MemoryModel(order=TEACHING_ORDER)
    with CORPORA["tiny-lesson"].path.open(encoding="utf-8") as f:
        for line in f:
            model.learn(tokenize(line))
    return model


def softmax(weights: dict[str, float]) -> dict[str, float]:
    z = sum(weights.values())
    return {w: x / z for w, x in weights.items()}


def probs(e) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {r.token: r.prob for r in e.rows}


# ------------------------------------------------------------------ each knob alone


async def test_min_p_keeps_words_at_least_p_times_the_top() -> None:
    e = await explain_context(tiny(), "the", 1.0, knobs=Knobs(min_p=0.3))
    # 0.3 × 1/2 = 0.15: cat (1/2) and dog (1/4) stay, mat and sun (1/8) go.
    assert probs(e) == pytest.approx({"cat": 2 / 3, "dog": 1 / 3, "mat": 0, "sun": 0})
    assert {r.token: r.removed_by for r in e.rows} == {
        "cat": None,
        "dog": None,
        "mat": "min_p",
        "sun": "min_p",
    }
    assert [(s.stage, s.kept) for s in e.stages] == [("adjust", 4), ("min_p", 2)]
    assert e.stages[-1].mass == pytest.approx(3 / 4)


async def test_repetition_penalty_multiplies_the_logit_of_a_used_word() -> None:
    # "cat" is in the output once; its logit ln 1/2 becomes 2 ln 1/2 = ln 1/4.
    e = await explain_context(tiny(), "the cat sat on the", 1.0, knobs=Knobs(repetition_penalty=2))
    cat = next(r for r in e.rows if r.token == "cat")
    assert cat.adjusted_logit == pytest.approx(2 * math.log(1 / 2))
    assert probs(e) == pytest.approx({"cat": 1 / 3, "dog": 1 / 3, "mat": 1 / 6, "sun": 1 / 6})
    assert [r.adjusted_logit for r in e.rows if r.token != "cat"] == [None] * 3


async def test_presence_and_frequency_penalties_subtract_a_plus_n_b() -> None:
    # "dog" used twice: ln 1/4 − (1 + 2 × 0.5).
    knobs = Knobs(presence_penalty=1.0, frequency_penalty=0.5)
    e = await explain_context(tiny(), "the dog ran after the dog and the", 1.0, knobs=knobs)
    dog = next(r for r in e.rows if r.token == "dog")
    assert dog.adjusted_logit == pytest.approx(math.log(1 / 4) - 2.0)
    want = softmax({"cat": 1 / 2, "dog": math.exp(math.log(1 / 4) - 2), "mat": 1 / 8, "sun": 1 / 8})
    assert probs(e) == pytest.approx(want)


async def test_ban_sets_the_logit_to_minus_infinity() -> None:
    e = await explain_context(tiny(), "the", 1.0, knobs=Knobs(ban=("cat",)))
    assert probs(e) == pytest.approx({"dog": 1 / 2, "mat": 1 / 4, "sun": 1 / 4, "cat": 0})
    assert e.rows[-1].token == "cat" and e.rows[-1].removed_by == "ban"
    assert explanation_json(e)["candidates"][-1]["adjusted_logit"] is None


async def test_bias_adds_to_the_logit() -> None:
    # +ln 4 multiplies sun's weight by 4: 1/8 → 1/2, total 11/8.
    e = await explain_context(tiny(), "the", 1.0, knobs=Knobs(bias=(("sun", math.log(4)),)))
    assert probs(e) == pytest.approx({"cat": 4 / 11, "sun": 4 / 11, "dog": 2 / 11, "mat": 1 / 11})
    # Rank order after the knob: the biased rare word now shares the top with cat.
    assert {r.token for r in e.rows[:2]} == {"cat", "sun"}
    assert [r.token for r in e.rows[2:]] == ["dog", "mat"]


async def test_every_knob_at_once_in_the_documented_order() -> None:
    # Output so far "the cat sat on the": cat used once. R = 3 → cat 3 ln 1/2 = ln 1/8;
    # mat banned; sun + 1 → ln 1/8 + 1. T = 0.5 squares the weights: sun e²/64, dog 1/16,
    # cat 1/64. Top-k 2 keeps sun and dog; min-p 0.5 keeps dog (1/16 ≥ 0.5 × e²/64).
    knobs = Knobs(repetition_penalty=3, ban=("mat",), bias=(("sun", 1.0),), min_p=0.5)
    e = await explain_context(tiny(), "the cat sat on the", 0.5, top_k=2, knobs=knobs)
    e2 = math.e**2
    assert probs(e) == pytest.approx(
        {"sun": e2 / (e2 + 4), "dog": 4 / (e2 + 4), "cat": 0, "mat": 0}
    )
    assert [(r.token, r.removed_by) for r in e.rows] == [
        ("sun", None),
        ("dog", None),
        ("cat", "top_k"),
        ("mat", "ban"),
    ]
    assert [(s.stage, s.kept) for s in e.stages] == [("adjust", 3), ("top_k", 2), ("min_p", 2)]
    assert [s.mass for s in e.stages] == pytest.approx(
        [1, (e2 + 4) / (e2 + 5), (e2 + 4) / (e2 + 5)]
    )
    sun = next(r for r in e.rows if r.token == "sun")
    assert sun.adjusted_logit == pytest.approx(math.log(1 / 8) + 1)
    assert sun.scaled_logit == pytest.approx((math.log(1 / 8) + 1) / 0.5)
    stages = explanation_json(e)["stages"]
    assert [s["stage"] for s in stages] == ["adjust", "top_k", "min_p"]


async def test_masked_end_and_ban_back_off_when_nothing_is_left() -> None:
    # After "happy" only <end> was seen: masked, the step backs off to the word frequencies.
    model = tiny()
    e = await explain_context(model, "happy", 1.0, min_words=5, knobs=Knobs(ban=("the",)))
    assert e.context == () and e.backed_off
    assert next(r for r in e.rows if r.token == "the").removed_by == "ban"


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        (Knobs(min_p=1.5), "min_p must be from 0 to 1"),
        (Knobs(repetition_penalty=0.5), "repetition_penalty must be from 1"),
        (Knobs(presence_penalty=-1), "presence_penalty must be from 0"),
        (Knobs(frequency_penalty=math.nan), "frequency_penalty must be a finite number"),
        (Knobs(bias=(("cat", 50.0),)), "A bias must be from"),
    ],
)
def test_bad_values_get_a_clear_message(knobs: Knobs, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        knobs.validated()


async def test_unknown_ban_and_bias_words_are_named() -> None:
    with pytest.raises(InvalidOption, match="I never learned “zebra”, “yak”"):
        await adjuster(tiny(), Knobs(ban=("zebra",), bias=(("yak", 1.0),)))


def test_bias_syntax() -> None:
    assert parse_bias("cat=+2, dog=-1.5") == (("cat", 2.0), ("dog", -1.5))
    with pytest.raises(InvalidOption, match="WORD=NUMBER"):
        parse_bias("cat")
    with pytest.raises(InvalidOption, match="not a number"):
        parse_bias("cat=much")


def test_compare_values_are_checked_for_the_knob_varied() -> None:
    assert parse_values("repetition_penalty", "1,1.3,2") == (1.0, 1.3, 2.0)
    with pytest.raises(InvalidOption, match="repetition_penalty must be from 1"):
        parse_values("repetition_penalty", "0.5")
    with pytest.raises(InvalidOption, match="vary must be one of"):
        parse_values("colour", "1")


# ------------------------------------------------------------------ the trace and the layout


async def test_a_penalty_breaks_a_loop_at_low_temperature_and_the_trace_says_where() -> None:
    model = tiny()
    base = Options(temperature=0.1, seed=3, length=20, min_words=20, originality=False)
    looping = await generate(model, "the", base)
    # Greedy-ish on this corpus: "the cat ... the cat ..." repeats.
    assert Counter(looping.tokens).most_common(1)[0][1] >= 4
    assert not any(s.changed for s in looping.steps)
    broken = await generate(
        model, "the", Options(**{**_fields(base), "knobs": Knobs(repetition_penalty=3)})
    )
    assert any(s.changed for s in broken.steps)
    assert (
        Counter(broken.tokens).most_common(1)[0][1] < Counter(looping.tokens).most_common(1)[0][1]
    )
    lines = trace_lines(broken, wide=False)
    assert all(len(line) <= PHONE_WIDTH for line in lines), lines
    assert "! a penalty/bias/ban changed the word" in lines
    assert any("!" in line.split("←")[0] for line in lines[1 : 1 + len(broken.steps)])


def _fields(o: Options) -> dict[str, object]:
    return {f: getattr(o, f) for f in o.__dataclass_fields__}


async def test_the_compact_table_fits_a_phone_and_keeps_every_column() -> None:
    knobs = Knobs(repetition_penalty=2, ban=("mat",), bias=(("sun", 1.0),), min_p=0.1)
    e = await explain_context(tiny(), "the cat sat on the", 0.1, top_k=3, knobs=knobs)
    table = explanation_table(e, wide=False)
    assert max(len(line) for line in table.splitlines()) <= PHONE_WIDTH, table
    learned, sampled = table.split("\n\n")
    assert learned.splitlines()[0].split() == ["#", "next", "count", "p", "ln", "p"]
    assert sampled.splitlines()[0].split() == ["#", "next", "adj", "÷T", "P(T)", "cut"]
    assert "ban" in sampled and "-∞" in sampled
    wide = explanation_table(e, wide=True)
    assert "adj" in wide.splitlines()[0] and len(wide.splitlines()) == len(e.rows) + 2


# ------------------------------------------------------------------ properties


classes_strategy = st.lists(st.integers(1, 30), min_size=1, max_size=12).map(
    lambda counts: sorted(Counter(counts).items(), reverse=True)
)


def as_classes(pairs: list[tuple[int, int]]) -> tuple[CountClass, ...]:
    return tuple(CountClass(c, n) for c, n in pairs)


@settings(max_examples=200, deadline=None)
@given(
    classes_strategy,
    st.floats(0.05, 5.0),
    st.floats(1.0, 5.0),
    st.floats(0.0, 3.0),
    st.floats(0.0, 3.0),
    st.integers(1, 5),
)
def test_penalties_never_raise_a_repeated_words_probability(
    pairs: list[tuple[int, int]], t: float, r: float, a: float, b: float, used: int
) -> None:
    classes = as_classes(pairs)
    total = sum(c.count * c.size for c in classes)
    word = classes[0]  # one member of the top class is the repeated word
    rest = tuple(
        CountClass(c.count, c.size - (1 if c is word else 0))
        for c in classes
        if c.size - (1 if c is word else 0) > 0
    )
    plain = pipeline(rest, t, specials=[Special(99, word.count, math.log(word.count / total))])
    knobs = Knobs(repetition_penalty=r, presence_penalty=a, frequency_penalty=b)
    logit = knobs.penalised(math.log(word.count / total), used)
    penalised = pipeline(rest, t, specials=[Special(99, word.count, logit)])

    def prob_of(p) -> float:  # type: ignore[no-untyped-def]
        return sum(g.prob for g in p.groups if g.token == 99)

    assert prob_of(penalised) <= prob_of(plain) * (1 + 1e-9)


@settings(max_examples=300, deadline=None)
@given(
    classes_strategy,
    st.floats(0.05, 5.0),
    st.one_of(st.none(), st.integers(1, 20)),
    st.one_of(st.none(), st.floats(0.05, 1.0)),
    st.one_of(st.none(), st.floats(0.0, 1.0)),
    st.lists(st.tuples(st.integers(1, 30), st.floats(-5.0, 5.0)), max_size=4),
)
def test_stages_are_nested_min_p_keeps_the_top_and_the_kept_sum_to_one(
    pairs: list[tuple[int, int]],
    t: float,
    top_k: int | None,
    top_p: float | None,
    min_p: float | None,
    extra: list[tuple[int, float]],
) -> None:
    classes = as_classes(pairs)
    specials = [Special(100 + i, c, math.log(c / 100) + d) for i, (c, d) in enumerate(extra)]
    p = pipeline(classes, t, top_k, top_p, min_p, specials)
    kept = [s.kept for s in p.stages]
    assert kept == sorted(kept, reverse=True)  # each stage keeps a subset of the one before
    for r in p.ranked:
        assert list(r.kept) == sorted(r.kept, reverse=True)
    assert math.fsum(g.size * g.prob for g in p.groups) == pytest.approx(1.0, abs=1e-9)
    top = max(p.ranked, key=lambda r: r.prob)
    assert p.groups[0].prob == pytest.approx(top.prob / p.stages[-1].mass)
    assert p.removed_by(p.ranked.index(top), 0) is None  # the argmax survives every cut


# ------------------------------------------------------------------ the draws


async def test_draws_match_the_computed_distribution_with_every_knob_on() -> None:
    """Twenty candidates in few classes, penalised ones inside the classes, every knob on:
    20,000 seeded draws land within 5 standard deviations of the computed probabilities."""
    model = MemoryModel(order=1)
    for i in range(12):
        model.learn(["a", f"x{i}"])
    for i in range(6):
        for _ in range(3):
            model.learn(["a", f"y{i}"])
    model.learn(["b", "x3", "x7", "y2", "x9"])  # learned words for the output so far
    knobs = Knobs(
        min_p=0.05,
        repetition_penalty=1.5,
        presence_penalty=0.2,
        frequency_penalty=0.3,
        ban=("x5",),
        bias=(("x10", 0.7), ("y4", -0.4)),
    )
    out = await model.resolve(["x3", "x7", "x7", "y2", "x9"])
    used = Counter(out)
    context = await model.resolve(["a"])
    adjust = await adjuster(model, knobs)
    # explain_tokens takes its context as the output so far: the same history as the draws
    e = await _explained(model, context, used, knobs)
    expected = {r.token: r.prob for r in e.rows}
    assert sum(expected.values()) == pytest.approx(1.0)
    assert expected["x5"] == 0 and sum(1 for p in expected.values() if p > 0) == 9
    rng = random.Random(2024)
    n = 20_000
    seen: Counter[str] = Counter()
    for _ in range(n):
        pick = await choose_next(model, context, 0.8, 9, 0.97, rng, False, adjust, used)
        assert pick is not None
        [word] = await model.spell([pick.token])
        seen[word] += 1
    for word, q in expected.items():
        sigma = math.sqrt(n * q * (1 - q)) or 1.0
        assert abs(seen[word] - n * q) <= 5 * sigma, (word, seen[word], n * q)
    assert set(seen) <= {w for w, q in expected.items() if q > 0}


async def _explained(model: MemoryModel, context: list[int], used: Counter[int], knobs: Knobs):  # type: ignore[no-untyped-def]
    """The explanation of ``context`` with ``used`` as the output so far."""
    history = [t for t, n in used.items() for _ in range(n)] + context
    return await explain_tokens(model, history, 0.8, 9, 0.97, rows=None, knobs=knobs)


async def test_the_store_and_the_memory_model_give_the_same_text_with_every_knob(
    tmp_path: Path,
) -> None:
    """The SQLite reader (one batched read of the changed words per step, order 0 from the
    vocabulary) draws exactly what the in-memory model draws."""
    lines = CORPORA["tiny-lesson"].path.read_text(encoding="utf-8").splitlines()
    store = await Store.open(tmp_path / "lab.db")
    try:
        ns = await store.namespace("lab", TEACHING_ORDER)
        await store.learn(ns, [Incoming(i + 1, tokenize(t)) for i, t in enumerate(lines) if t])
        knobs = Knobs(
            min_p=0.05,
            repetition_penalty=1.8,
            presence_penalty=0.3,
            frequency_penalty=0.4,
            ban=("sat",),
            bias=(("dog", 0.5),),
        )
        for seed in range(1, 30):
            options = Options(
                temperature=1.2, seed=seed, length=15, min_words=8, originality=False, knobs=knobs
            )
            a = await generate(store.reader(ns), "the", options)
            b = await generate(tiny(), "the", options)
            assert a.tokens == b.tokens and [s.prob for s in a.steps] == pytest.approx(
                [s.prob for s in b.steps]
            )
            assert "sat" not in a.tokens
    finally:
        await store.close()


async def test_a_large_context_skips_the_words_held_apart_in_one_read(tmp_path: Path) -> None:
    """A context with more candidates than the store keeps in memory: the draws read the
    class from SQLite, skipping the penalised and banned members, exactly as the in-memory
    model does, and never return a banned word."""
    lines = [f"go w{i}" for i in range(400)] + [f"go v{i} go v{i}" for i in range(40)]
    store = await Store.open(tmp_path / "big.db")
    memory = MemoryModel(order=1)
    try:
        ns = await store.namespace("big", 1)
        await store.learn(ns, [Incoming(i + 1, tokenize(t)) for i, t in enumerate(lines)])
        for t in lines:
            memory.learn(tokenize(t))
        knobs = Knobs(repetition_penalty=4.0, ban=("w7", "w300"), bias=(("w5", -3.0),))
        for seed in range(1, 40):
            options = Options(temperature=1.0, seed=seed, length=6, originality=False, knobs=knobs)
            a = await generate(store.reader(ns), "go w3 go w100 go", options)
            b = await generate(memory, "go w3 go w100 go", options)
            assert a.tokens == b.tokens
            assert not {"w7", "w300"} & set(a.tokens[5:])
    finally:
        await store.close()
