"""One request's remembered reads (bot.core.memo): the same answers as the model, fewer
reads, and a fresh read once the model changed under the request."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bot.core.memo import Remembering
from bot.core.model import BOS, Found, MemoryModel
from bot.core.tokenize import tokenize


class CountingModel(MemoryModel):
    """A real MemoryModel that counts the lookups it answers."""

    def __init__(self, order: int = 2) -> None:
        super().__init__(order)
        self.lookups = 0

    async def lookup(self, context: Sequence[int]) -> Found | None:
        self.lookups += 1
        return await super().lookup(context)


def chat(order: int = 2) -> CountingModel:
    model = CountingModel(order)
    model.learn_all(
        tokenize(line) for line in ["hello there", "hello world", "good morning all", "hi"]
    )
    return model


async def test_reads_are_remembered_and_agree_with_the_model() -> None:
    model = chat()
    memo = Remembering(model)
    first = await memo.lookup([BOS])
    assert await memo.lookup([BOS]) is first and model.lookups == 1
    assert first == await model.lookup([BOS])
    assert first is not None
    top = first.classes[0]
    assert await memo.candidate_at(first, top.count, 0) == await model.candidate_at(
        first, top.count, 0
    )
    assert await memo.unigram() is await memo.unigram()


async def test_a_vanished_candidate_drops_the_memory() -> None:
    model = chat(order=1)
    memo = Remembering(model)
    [hello] = await model.resolve(["hello"])
    found = await memo.lookup([hello])
    assert found is not None and found.candidates == 2
    # "hello" now has one more follower seen twice: the classes read earlier are stale.
    model.learn_all([["hello", "there"], ["hello", "there"]])
    with pytest.raises(LookupError):
        await memo.candidate_at(found, 1, 1)
    fresh = await memo.lookup([hello])
    assert fresh is not None and fresh != found and model.lookups == 2
