"""Store.check: the count classes are the histogram of the transition counts, and the
counts are what the stored messages contribute, through learning and forgetting (the
performance-minded write path: bulk statements, set-wise class moves, a trigger)."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from bot.core.model import pack
from bot.store import Incoming, Store


async def test_check_passes_through_learning_and_forgetting(store_address: str) -> None:
    rng = random.Random(7)
    words = [f"w{i}" for i in range(40)] + ["the", "a", "cat"]
    store = await Store.open(store_address)
    try:
        for order in (1, 2, 3):
            ns = await store.namespace(f"o{order}", order)
            batch = [
                Incoming(i, [rng.choice(words) for _ in range(rng.randint(1, 30))])
                for i in range(1, 400)
            ]
            # Repeats within a batch, across batches and of whole messages.
            batch += [Incoming(1000 + i, batch[i].tokens) for i in range(50)]
            for start in range(0, len(batch), 97):
                await store.learn(ns, batch[start : start + 97])
                assert await store.check(ns) == []
            await store.forget(ns, [m.id for m in batch[::3]])
            assert await store.check(ns) == []
            await store.forget(ns, [m.id for m in batch])
            assert await store.check(ns) == []
            assert await store.is_empty(ns)
    finally:
        await store.close()


async def test_check_reports_a_wrong_class_and_a_wrong_count(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "c.db")
    try:
        ns = await store.namespace("broken")
        await store.learn(ns, [Incoming(1, ["the", "cat"]), Incoming(2, ["the", "dog"])])
        assert await store.check(ns) == []
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "c.db") as db:
        the = db.execute("SELECT id FROM vocab WHERE token = 'the'").fetchone()[0]
        db.execute("UPDATE classes SET size = 5 WHERE ctx = ?", (pack([the]),))
    store = await Store.open(tmp_path / "c.db")
    try:
        problems = await store.check(ns)
        assert len(problems) == 1 and "count class says 5" in problems[0]
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "c.db") as db:
        db.execute("UPDATE classes SET size = 2 WHERE ctx = ?", (pack([the]),))
        db.execute("UPDATE transitions SET count = count + 1 WHERE ctx = ?", (pack([the]),))
    store = await Store.open(tmp_path / "c.db")
    try:
        problems = await store.check(ns)
        assert any("differ from what the stored messages contribute" in p for p in problems)
        assert any("count class says 0" in p for p in problems)  # the histogram moved too
    finally:
        await store.close()


async def test_word_frequency_classes_are_built_by_the_upgrade_and_kept_by_writes(
    tmp_path: Path,
) -> None:
    """Schema 7 keeps order 0's classes under the empty context: a file of schema 6 gets
    them on open, and learning and forgetting keep them the vocabulary's histogram."""
    path = tmp_path / "v6.db"
    lines = [["the", "cat", "sat"], ["the", "dog", "sat", "down"], ["a", "cat"]]
    store = await Store.open(path)
    try:
        ns = await store.namespace("words")
        await store.learn(ns, [Incoming(i, words) for i, words in enumerate(lines, 1)])
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM classes WHERE ctx = X''")
        db.execute("PRAGMA user_version = 6")
    db.close()

    def histogram() -> dict[int, int]:
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT count, size FROM classes WHERE ctx = X''").fetchall()
        db.close()
        return dict(rows)

    store = await Store.open(path)
    try:
        assert await store.check(ns) == []
        assert histogram() == {2: 3, 1: 3}  # the, cat, sat twice; dog, down, a once
        await store.learn(ns, [Incoming(9, ["the", "end"])])
        assert histogram() == {3: 1, 2: 2, 1: 4}
        await store.forget(ns, [2, 9])  # "the dog sat down", "the end"
        assert histogram() == {2: 1, 1: 3}  # cat twice; the, sat, a once; the rest gone
        assert await store.check(ns) == []
        await store.forget(ns, [1, 3])
        assert histogram() == {}
    finally:
        await store.close()
