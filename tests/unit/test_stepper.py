"""The stepper behind /markov-step and ``markov-bot step``, on a model checked by hand."""

from __future__ import annotations

import pytest

from bot.core.model import MemoryModel
from bot.core.sampling import MAX_TEMPERATURE
from bot.core.stepper import Stepper
from bot.core.tokenize import tokenize

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
