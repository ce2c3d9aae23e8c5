"""min_words: <end> masked (logit −∞) and the rest renormalised, with back-off to order 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.generate import COMPARE_LENGTH, Options, compare, explain_context, generate
from bot.core.model import END_LABEL, MemoryModel
from bot.core.sampling import InvalidOption


def model_of(lines: list[str], order: int) -> MemoryModel:
    m = MemoryModel(order=order)
    for line in lines:
        m.learn(line.split())
    return m


# After "a": b once, c twice, <end> once (total 4).
ABC = ["a b", "a c", "a c", "a"]


@pytest.mark.parametrize(("t", "c", "b"), [(1.0, 2 / 3, 1 / 3), (0.5, 0.8, 0.2)])
async def test_end_masked_and_the_others_renormalised(t: float, c: float, b: float) -> None:
    # T = 1: c = 2 / (2 + 1), b = 1 / 3. T = 0.5: weights (count / 2) ** 2 = 1 and 1/4,
    # so c = 1 / 1.25 = 0.8 and b = 0.2. <end> keeps its learned p = 1/4, gets 0.
    e = await explain_context(model_of(ABC, 1), "a", t, min_words=2)
    rows = {r.token: r for r in e.rows}
    assert e.end_masked and rows[END_LABEL].masked
    assert rows[END_LABEL].prob == 0.0 and rows[END_LABEL].p == pytest.approx(1 / 4)
    assert rows["c"].prob == pytest.approx(c) and rows["b"].prob == pytest.approx(b)
    assert rows["c"].p == pytest.approx(2 / 4)  # the learned p is not renormalised
    unmasked = await explain_context(model_of(ABC, 1), "a", t, min_words=1)
    assert not unmasked.end_masked
    assert {r.token: r.prob for r in unmasked.rows}[END_LABEL] > 0


async def test_generation_never_ends_before_min_words() -> None:
    model = model_of(ABC, 1)
    for seed in range(20):
        g = await generate(model, "a", Options(seed=seed, length=1, min_words=1))
        assert len(g.tokens) == 2 and g.steps[0].end_masked
        assert g.steps[0].token in {"b", "c"} and g.steps[0].candidates == 2


async def test_a_context_with_only_end_backs_off_to_word_frequencies() -> None:
    # Order 2: after "p q" and after "q" only <end> was ever seen, so with <end> masked
    # the step falls back to order 0: p once, q twice in everything learned.
    model = model_of(["p q", "q"], 2)
    e = await explain_context(model, "p q", 1.0, min_words=3)
    assert e.context == () and e.backed_off
    assert {r.token: r.prob for r in e.rows} == pytest.approx({"q": 2 / 3, "p": 1 / 3})
    g = await generate(model, "p q", Options(seed=1, length=1, min_words=1))
    step = g.steps[0]
    assert step.context == () and step.backed_off and step.token in {"p", "q"}
    from bot.core.present import trace_lines

    assert "from word frequencies" in trace_lines(g)[0]


@pytest.mark.parametrize("bad", [-1, 31, True])
def test_min_words_is_validated(bad: int) -> None:
    with pytest.raises(InvalidOption, match="min_words"):
        Options(length=30, min_words=bad).validated()


def test_compare_default_gives_20_words_at_every_temperature(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # README's first command: repetitive at 0.1, plausible at 0.5, wild at 1, 20 words each.
    db = tmp_path / "m.db"
    args = ["--db", str(db), "compare", "When", "--temps", "0.1,0.5,1.0", "--seed", "1", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    for r in out["results"]:
        generated = len(r["tokens"]) - 1  # after the start word "When"
        assert generated == COMPARE_LENGTH and not r["ended"]
    texts = [r["text"] for r in out["results"]]
    assert len(set(texts)) == 3


async def test_compare_masks_end_until_the_length() -> None:
    model = model_of(ABC, 1)
    out = await compare(model, None, [1.0], Options(seed=3, length=4, min_words=4))
    assert len(out[0].tokens) == 4
