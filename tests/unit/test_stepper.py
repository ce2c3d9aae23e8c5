"""The stepper behind /markov-step and ``markov-bot step``, on a model checked by hand."""

from __future__ import annotations

import math

import pytest

from bot.core.generate import Options, generate
from bot.core.model import TEACHING_ORDER, MemoryModel
from bot.core.present import candidate_lines
from bot.core.sampling import MAX_TEMPERATURE, InvalidOption, Knobs
from bot.core.stepper import Stepper
from bot.core.tokenize import tokenize
from bot.core.wording import CHANGED_BY_KNOBS
from bot.corpora import CORPORA

LESSON = ["the cat sat on the mat", "the cat ran", "the dog sat", "a dog ran home"]


@pytest.fixture
def model() -> MemoryModel:
    m = MemoryModel(order=1)
    for line in LESSON:
        m.learn(tokenize(line))
    return m


async def test_greedy_back_and_the_notes_by_hand(model: MemoryModel) -> None:
    s = await Stepper.begin(model, "the", 1.0, seed=7)
    assert s.words == ["the"] and not s.can_go_back
    # After "the": cat 2, mat 1, dog 1 of 4.
    e = await s.candidates(8)
    assert e is not None
    assert [(r.token, r.count) for r in e.rows] == [("cat", 2), ("mat", 1), ("dog", 1)]
    note = await s.greedy()
    assert note == "took the top word “cat” — probability 50.0%, rank 1 of 3"
    # After "cat": sat 1, ran 1; a tie goes to the word learned first.
    await s.greedy()
    assert s.words == ["the", "cat", "sat"] and len(s.notes) == 2
    s.back()
    assert s.words == ["the", "cat"] and len(s.notes) == 1
    s.back()
    s.back()  # the start words stay
    assert s.words == ["the"] and s.notes == []


async def test_end_stops_the_sentence_until_back(model: MemoryModel) -> None:
    s = await Stepper.begin(model, "home", 1.0, seed=1)
    note = await s.greedy()  # "home" only ever ended a message
    assert "“<end>”" in note and "100.0%" in note
    assert s.ended and not s.can_advance and await s.candidates(8) is None
    with pytest.raises(ValueError, match="ended"):
        await s.sample()
    s.back()
    assert not s.ended and s.can_advance and s.words == ["home"]


async def test_same_seed_same_draws(model: MemoryModel) -> None:
    async def run(seed: int) -> list[str]:
        s = await Stepper.begin(model, None, 1.0, seed)
        for _ in range(6):
            if not s.can_advance:
                break
            await s.sample()
        return s.notes

    assert await run(5) == await run(5)
    assert len({tuple(await run(seed)) for seed in range(12)}) > 1  # the seed matters


async def test_temperature_keys(model: MemoryModel) -> None:
    s = await Stepper.begin(model, None, 1.0, seed=1)
    s.colder()
    assert s.temperature == 0.5
    s.temperature = 0.0
    s.warmer()
    assert s.temperature == 0.1  # doubling zero would stay greedy forever
    s.temperature = MAX_TEMPERATURE
    s.warmer()
    assert s.temperature == MAX_TEMPERATURE


# ------------------------------------------------------------------ the sampling lab's knobs


async def test_a_banned_word_is_listed_removed_and_never_drawn(model: MemoryModel) -> None:
    s = await Stepper.begin(model, "the", 1.0, seed=3, knobs=Knobs(ban=("cat",)))
    e = await s.candidates(8)
    assert e is not None
    # After "the": cat 2, mat 1, dog 1; without cat, mat and dog get 1/2 each.
    assert [(r.token, r.prob, r.removed_by) for r in e.rows] == [
        ("mat", 0.5, None),
        ("dog", 0.5, None),
        ("cat", 0.0, "ban"),
    ]
    assert candidate_lines(e)[-1].endswith("cat (ban)")
    note = await s.greedy()  # without the ban the top word would have been cat
    assert note == f"took the top word “mat” — probability 50.0%, rank 1 of 3; {CHANGED_BY_KNOBS}"
    for seed in range(20):
        s = await Stepper.begin(model, None, 1.0, seed, knobs=Knobs(ban=("cat",)))
        while s.can_advance:
            await s.sample()
        assert "cat" not in s.words


async def test_repetition_penalty_counts_the_sentence_so_far_and_back_recounts(
    model: MemoryModel,
) -> None:
    knobs = Knobs(repetition_penalty=2)
    s = await Stepper.begin(model, "the", 1.0, seed=1, min_words=6, knobs=knobs)
    for _ in range(4):  # cat (2 of 4), sat (tie, learned first), on (<end> masked), the
        await s.greedy()
    assert s.sentence == "the cat sat on the"
    e = await s.candidates(8)
    assert e is not None
    # cat was used once: its logit ln 1/2 becomes 2 ln 1/2 = ln 1/4, as mat's and dog's.
    cat = next(r for r in e.rows if r.token == "cat")
    assert cat.adjusted_logit == pytest.approx(2 * math.log(1 / 2))
    assert {r.token: r.prob for r in e.rows} == pytest.approx(
        {"cat": 1 / 3, "mat": 1 / 3, "dog": 1 / 3}
    )
    typed = await Stepper.begin(model, "the cat sat on the", 1.0, seed=1, knobs=knobs)
    assert await typed.candidates(8) == e  # typed start words count as the output too
    s.back()
    s.back()  # "the cat sat": cat used, but not a candidate after "sat"
    await s.greedy()
    await s.greedy()
    assert await s.candidates(8) == e


async def test_bad_knobs_are_refused_before_any_step(model: MemoryModel) -> None:
    with pytest.raises(InvalidOption, match="“zebra”"):
        await Stepper.begin(model, "the", 1.0, seed=1, knobs=Knobs(ban=("zebra",)))
    with pytest.raises(InvalidOption, match="repetition_penalty"):
        await Stepper.begin(model, "the", 1.0, seed=1, knobs=Knobs(repetition_penalty=0.5))
    with pytest.raises(ValueError, match=r"Stepper\.begin"):  # its words would go unresolved
        Stepper(model, 1.0, 1, knobs=Knobs(ban=("cat",)))


def tiny_lesson() -> MemoryModel:
    m = MemoryModel(order=TEACHING_ORDER)
    with CORPORA["tiny-lesson"].path.open(encoding="utf-8") as f:
        for line in f:
            m.learn(tokenize(line))
    return m


@pytest.mark.parametrize(
    "knobs",
    [
        Knobs(repetition_penalty=2, ban=("the",)),
        Knobs(min_p=0.2, presence_penalty=0.5, frequency_penalty=1, bias=(("sun", 1.0),)),
    ],
)
@pytest.mark.parametrize("temperature", [1.0, 0.3, 0.0])
async def test_stepping_with_knobs_draws_what_generate_draws(
    knobs: Knobs, temperature: float
) -> None:
    """Sample pressed until the end is /markov with the same seed, knobs and min_words."""
    model = tiny_lesson()
    changed = 0
    for seed in range(12):
        s = await Stepper.begin(model, None, temperature, seed, min_words=5, knobs=knobs)
        while s.can_advance and len(s.notes) < 12:
            await s.sample()
        options = Options(
            temperature=temperature,
            length=12,
            seed=seed,
            originality=False,
            min_words=5,
            knobs=knobs,
        )
        g = await generate(model, None, options)
        assert (s.words, s.ended) == (list(g.tokens), g.ended)
        assert [CHANGED_BY_KNOBS in n for n in s.notes] == [st.changed for st in g.steps]
        changed += sum(st.changed for st in g.steps)
    assert changed  # the knobs did change some choices
