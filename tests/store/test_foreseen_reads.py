"""Reading a walk ahead (bot.core.model.Ahead) on PostgreSQL, where every read is a round
trip: the same answers as reading step by step, in far fewer reads; and the word-frequency
classes it draws from at order 0, kept under the empty context by every write."""

from __future__ import annotations

import random
from collections.abc import Sequence

import asyncpg
import pytest

from bot.core.generate import Options, generate
from bot.core.model import Ahead, ModelReader
from bot.core.present import generation_json
from bot.core.tokenize import tokenize
from bot.corpora import CORPORA, read_lines
from bot.store import Incoming, Namespace, Store, open_store
from tests.postgres import Cluster, fresh_database


class _Unforeseeing:
    """A stored model told nothing of the walk ahead: it reads step by step."""

    def __init__(self, inner: ModelReader) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def run(self, job):  # type: ignore[no-untyped-def]
        return await self._inner.run(lambda m: job(_Unforeseeing(m)))

    def foresee(self, ahead: Ahead | None) -> None:
        pass


def incoming(lines: Sequence[str], first_id: int = 1) -> list[Incoming]:
    return [Incoming(first_id + i, tokenize(t), author=7) for i, t in enumerate(lines)]


async def chat_model(url: str) -> tuple[Store, Namespace]:
    store = await open_store(url)
    ns = await store.namespace("guild:1", 2)
    lines = [t for _, t in read_lines(CORPORA["ubuntu-irc"].path)][:3000]
    await store.learn(ns, incoming(lines))
    return store, ns


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0, 0.0])
async def test_reading_ahead_gives_the_same_text_in_fewer_reads(
    postgres_cluster: Cluster, temperature: float
) -> None:
    async with fresh_database(postgres_cluster) as url:
        store, ns = await chat_model(url)
        plain = await open_store(url)  # its own cache: every read counted from cold
        try:
            options = [
                Options(temperature=temperature, seed=s, length=30, min_words=20) for s in range(30)
            ]
            ahead = [generation_json(await generate(store.reader(ns), None, o)) for o in options]
            step_by_step = [
                generation_json(await generate(_Unforeseeing(plain.reader(ns)), None, o))  # type: ignore[arg-type]
                for o in options
            ]
            assert ahead == step_by_step
            # Reads made: each a miss of the cache (the contexts read ahead are hits later).
            assert store.read_cache.misses < 0.6 * plain.read_cache.misses, (
                store.read_cache.misses,
                plain.read_cache.misses,
            )
        finally:
            await plain.close()
            await store.close()


async def test_the_uniforms_foreseen_are_the_ones_the_walk_draws() -> None:
    rng = random.Random(3)
    rng.random()
    ahead = Ahead(rng, 0.7, steps=5, masked=2)
    foreseen = ahead.uniforms()
    assert foreseen == [rng.random() for _ in range(5)]  # and rng itself was not advanced
    assert Ahead(rng, 0.0, 4, 0).uniforms() == [0.0] * 4  # T = 0: the first candidate
    assert Ahead(None, 1.0, 3, 0).uniforms() == [0.0] * 3


async def word_classes(url: str, ns: Namespace) -> dict[int, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT count, size FROM classes WHERE ns = $1 AND ctx = ''::bytea", ns.id
        )
        return {int(c): int(n) for c, n in rows}
    finally:
        await conn.close()


async def test_word_frequency_classes_follow_learning_forgetting_and_migration(
    postgres_cluster: Cluster,
) -> None:
    async with fresh_database(postgres_cluster) as url:
        store = await open_store(url)
        try:
            ns = await store.namespace("words", 2)
            await store.learn(ns, incoming(["the cat sat", "the dog sat", "a cat ran"]))
            # the: 2, cat: 2, sat: 2, dog: 1, a: 1, ran: 1
            assert await word_classes(url, ns) == {2: 3, 1: 3}
            await store.forget(ns, [2])  # "the dog sat": the and sat fall to 1, dog goes
            assert await word_classes(url, ns) == {2: 1, 1: 4}
            assert await store.check(ns) == []
        finally:
            await store.close()
        # A database of schema 3 (before the classes of words) gets them on opening.
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("DELETE FROM classes WHERE ctx = ''::bytea")
            await conn.execute("DELETE FROM markov_schema WHERE version = 4")
        finally:
            await conn.close()
        store = await open_store(url)
        try:
            assert await word_classes(url, ns) == {2: 1, 1: 4}
            assert await store.check(ns) == []
            # A wrong class of words is reported.
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(
                    "UPDATE classes SET size = 9 WHERE ctx = ''::bytea AND count = 1"
                )
            finally:
                await conn.close()
            problems = await store.check(ns, recount=False)
            assert len(problems) == 1 and "count class says 9" in problems[0]
        finally:
            await store.close()
