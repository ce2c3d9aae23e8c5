"""Several bot processes on one PostgreSQL: each store below has its own connection pool,
so its sessions are as separate as another process's. Concurrent writers never count a
message twice, and a bundled corpus wanted by two at once is built once."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from bot.core.model import TEACHING_ORDER
from bot.corpora import CORPORA, read_lines
from bot.services.importing import corpus_namespace
from bot.store import Incoming, LearnResult, Store, open_store
from tests.postgres import fresh_address


async def test_concurrent_writers_never_double_count_a_message(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(3)
    words = [f"w{i}" for i in range(60)]
    messages = [
        Incoming(i, [rng.choice(words) for _ in range(rng.randint(1, 15))]) for i in range(1, 1201)
    ]
    async with fresh_address("postgres", tmp_path, request) as url:
        stores = [await open_store(url) for _ in range(4)]
        try:
            ns = await stores[0].namespace("guild:1")

            # Every writer learns every message, in its own order and batches: overlapping
            # transactions on the same ids (a catch-up racing live events, four times over).
            async def writer(store: Store, seed: int) -> list[LearnResult]:
                mine = messages[:]
                random.Random(seed).shuffle(mine)
                return [await store.learn(ns, mine[i : i + 50]) for i in range(0, len(mine), 50)]

            results = await asyncio.gather(*(writer(s, n) for n, s in enumerate(stores)))
            learned = sum(r.learned for rs in results for r in rs)
            duplicates = sum(r.duplicates for rs in results for r in rs)
            assert learned == len(messages)
            assert duplicates == 3 * len(messages)
            assert await stores[1].check(ns) == []
            assert (await stores[2].stats(ns)).messages == len(messages)
            # And forgetting while others learn again leaves exactly the survivors.
            gone = [m.id for m in messages[::4]]
            await asyncio.gather(stores[0].forget(ns, gone), writer(stores[3], 9))
            assert await stores[0].known_messages(ns, gone) <= set(gone)
            assert await stores[3].check(ns) == []
        finally:
            for s in stores:
                await s.close()


async def test_a_bundled_corpus_wanted_by_two_processes_is_built_once(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = CORPORA["mother-goose"]
    async with fresh_address("postgres", tmp_path, request) as url:
        stores = [await open_store(url) for _ in range(2)]
        results: list[LearnResult] = []
        for store in stores:
            real = store.learn

            async def counted(*args: object, _real=real, **kwargs: object) -> LearnResult:
                result = await _real(*args, **kwargs)  # type: ignore[arg-type]
                results.append(result)
                return result

            monkeypatch.setattr(store, "learn", counted)
        try:
            a, b = await asyncio.gather(
                *(corpus_namespace(s, corpus, TEACHING_ORDER) for s in stores)
            )
            assert a == b
            assert sum(r.learned for r in results) == (await stores[0].stats(a)).messages
            assert sum(r.duplicates for r in results) == 0  # nobody read the corpus twice
            assert sum(r.learned for r in results) == len({i for i, _ in read_lines(corpus.path)})
            assert await stores[1].check(b) == []
        finally:
            for s in stores:
                await s.close()
