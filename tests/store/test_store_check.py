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
