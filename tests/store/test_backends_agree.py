"""The same corpus, options and seed give the same text and the same explanation numbers on
SQLite and on PostgreSQL: both count with the same kernels, keep the same count classes
and order candidates that share a count by first appearance."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.generate import Options, compare, explain_context, generate
from bot.corpora import CORPORA, read_lines
from bot.services.importing import import_lines
from bot.store import open_store
from tests.postgres import fresh_address

SEEDS = range(25)
CONTEXTS = [None, "the", "and the", "I", "she said", "little"]


async def test_same_corpus_options_and_seed_give_the_same_answers_on_both(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    lines = list(read_lines(CORPORA["alice"].path))
    async with (
        fresh_address("sqlite", tmp_path, request) as lite_at,
        fresh_address("postgres", tmp_path, request) as pg_at,
    ):
        lite, pg = await open_store(lite_at), await open_store(pg_at)
        try:
            readers = []
            for store in (lite, pg):
                ns = await store.namespace("alice", 2)
                # Batches of several lines: new words within one batch are numbered in
                # first-seen order on both backends.
                await import_lines(store, ns, lines, "alice.txt", batch_lines=97)
                # Forgetting some, so deletions and count classes moving down count too.
                ids = [m.id async for page in store.messages(ns) for m in page]
                assert len(ids) == len({i for i, _ in lines})
                assert await store.forget(ns, ids[::7]) == len(ids[::7])
                assert await store.check(ns) == []
                readers.append(store.reader(ns))
            a, b = (await lite.namespaces())[-1], (await pg.namespaces())[-1]
            assert (await lite.stats(a)).top_words == (await pg.stats(b)).top_words
            texts = set()
            for seed in SEEDS:
                for options in (
                    Options(seed=seed),
                    Options(seed=seed, temperature=0.4, top_k=5),
                    Options(seed=seed, temperature=1.6, top_p=0.9, min_words=8),
                ):
                    one, two = [await generate(r, None, options) for r in readers]
                    assert one == two, (seed, options)
                    texts.add(one.text)
            assert len(texts) > len(SEEDS)  # the seeds and options do lead to different text
            for words in CONTEXTS:
                for t in (0.0, 0.7, 1.0, 2.5):
                    one, two = [await explain_context(r, words, t, rows=None) for r in readers]
                    assert one == two, (words, t)
            one, two = [await compare(r, "the", [0.2, 1.0, 1.8], Options(seed=3)) for r in readers]
            assert one == two
        finally:
            await lite.close()
            await pg.close()
