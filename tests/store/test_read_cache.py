"""Reads remembered across requests (bot.store.reading.ReadCache), on both backends: the
same answers as reading afresh, fewer reads, and never a stale answer after a write, by
this process or another one."""

from __future__ import annotations

import random
from array import array
from collections.abc import Sequence

import pytest

from bot.core.explain import Explanation
from bot.core.generate import Options, explain_context, generate
from bot.core.model import BOS, EOS, EmptyModel, Found, ModelReader, pack
from bot.core.present import generation_json
from bot.core.tokenize import tokenize
from bot.corpora import CORPORA, read_lines
from bot.store import Incoming, Namespace, Store, open_store, reading
from bot.store.reading import MEMBERS_PER_SLOT, SMALL, Change, ReadCache, _nth_without


def incoming(lines: Sequence[str], first_id: int = 1) -> list[Incoming]:
    return [Incoming(first_id + i, tokenize(t), author=7) for i, t in enumerate(lines)]


async def learned(address: str, name: str = "guild:1") -> tuple[Store, Namespace]:
    store = await open_store(address)
    ns = await store.namespace(name, 2)
    lines = [t for _, t in read_lines(CORPORA["ubuntu-irc"].path)][:1500]
    await store.learn(ns, incoming(lines))
    return store, ns


def followers(e: Explanation) -> set[str]:
    return {r.token for r in e.rows}


async def test_remembered_answers_are_the_answers_read_afresh(store_address: str) -> None:
    store, ns = await learned(store_address)
    other = await open_store(store_address)  # a second process's store: its own cache
    try:
        first = [
            generation_json(await generate(store.reader(ns), None, Options(seed=s)))
            for s in range(40)
        ]
        misses, hits = store.read_cache.misses, store.read_cache.hits
        again = [
            generation_json(await generate(store.reader(ns), None, Options(seed=s)))
            for s in range(40)
        ]
        assert again == first
        assert store.read_cache.hits > hits
        assert store.read_cache.misses - misses < misses / 4  # nearly all remembered
        afresh = [
            generation_json(await generate(other.reader(ns), None, Options(seed=s)))
            for s in range(40)
        ]
        assert afresh == first
    finally:
        await other.close()
        await store.close()


async def test_a_write_is_seen_by_the_next_request(store_address: str) -> None:
    store, ns = await learned(store_address)
    try:
        reader = store.reader(ns)  # one reader kept across requests, as the stepper does
        assert "zebra" not in followers(await explain_context(reader, "hello", 1.0, rows=None))
        await store.learn(ns, incoming(["hello zebra crossing"], first_id=90_000))
        assert "zebra" in followers(await explain_context(reader, "hello", 1.0, rows=None))
        await store.forget(ns, [90_000])
        assert "zebra" not in followers(await explain_context(reader, "hello", 1.0, rows=None))
    finally:
        await store.close()


async def test_learning_by_this_store_keeps_what_it_did_not_touch(store_address: str) -> None:
    """A server learning as it chats: after a small batch, this store's next requests give
    what another store reads afresh, with about as many reads as if nothing had been
    learned (a write makes a cache cold only where it changed the model)."""
    store, ns = await learned(store_address)
    other = await open_store(store_address)
    try:

        async def outputs(s: Store, seeds: range) -> list[object]:
            return [
                generation_json(await generate(s.reader(ns), None, Options(seed=n))) for n in seeds
            ]

        assert await outputs(store, range(200)) == await outputs(other, range(200))
        unchanged = other.read_cache.misses
        await outputs(other, range(200, 400))  # the same warm cache, nothing learned
        unchanged = other.read_cache.misses - unchanged
        lines = [t for _, t in read_lines(CORPORA["ubuntu-irc"].path)][1500:1510]
        await store.learn(ns, incoming(lines, first_id=80_000))
        misses = store.read_cache.misses
        assert await outputs(store, range(200, 400)) == await outputs(other, range(200, 400))
        assert store.read_cache.misses - misses < 1.25 * unchanged
        await store.forget(ns, range(80_000, 80_010))
        assert await outputs(store, range(30)) == await outputs(other, range(30))
    finally:
        await other.close()
        await store.close()


async def test_another_process_writing_is_seen(store_address: str) -> None:
    """The version lives in the database, so a write by another store (another process,
    or the CLI beside a running bot) reaches this store's next request."""
    store, ns = await learned(store_address)
    writer = await open_store(store_address)
    try:
        reader = store.reader(ns)
        before = await explain_context(reader, "hello", 1.0, rows=None)
        await writer.learn(ns, incoming(["hello zebra crossing"], first_id=90_000))
        after = await explain_context(reader, "hello", 1.0, rows=None)
        assert "zebra" in followers(after) and "zebra" not in followers(before)
        assert after.total == before.total + 1
        await writer.forget_author(ns, 7)
        with pytest.raises(EmptyModel):
            await generate(reader, None, Options(seed=1))
    finally:
        await writer.close()
        await store.close()


async def test_a_purged_and_renamed_namespace_is_read_afresh(store_address: str) -> None:
    store, ns = await learned(store_address, "upload:1")
    try:
        await generate(store.reader(ns), None, Options(seed=3))
        await store.purge(ns)
        with pytest.raises(EmptyModel):
            await generate(store.reader(ns), None, Options(seed=3))
        await store.drop_namespace(ns)
        again = await store.namespace("upload:1", 2)  # an id SQLite may hand out again
        await store.learn(again, incoming(["only these words here"]))
        g = await generate(store.reader(again), None, Options(seed=3, originality=False))
        assert g.text == "only these words here"
    finally:
        await store.close()


async def test_the_contexts_a_walk_can_reach_next_come_with_its_lookup(
    store_address: str,
) -> None:
    """PostgreSQL reads the contexts a walk can reach next, while they have few candidates,
    with the lookup that reaches them: the walk's next lookups are then remembered, and each
    is exactly what reading it alone gives (SQLite, whose reads are not round trips, reads
    them one by one: the same answers)."""
    phrase = "zulu alpha bravo charlie delta echo foxtrot golf hotel india"
    store, ns = await learned(store_address)
    alone = await open_store(store_address)  # reads each context by itself
    try:
        await store.learn(ns, incoming([phrase, "zulu alpha bravo now"], first_id=10_000))
        ids = await store.reader(ns).resolve(phrase.split())
        contexts = [tuple(ids[i : i + 2]) for i in range(1, len(ids) - 1)]  # alpha bravo, ...
        now = await store.reader(ns).resolve(["now"])

        async def walk(m: ModelReader) -> tuple[list[Found | None], int]:
            first = await m.lookup(ids[:2])  # zulu alpha: one candidate, bravo
            before = store.read_cache.misses
            # bravo has two: charlie (the phrase goes on, one candidate each) and now
            found = [first, *[await m.lookup(c) for c in [*contexts, (ids[2], *now)]]]
            return found, store.read_cache.misses - before

        found, misses = await store.reader(ns).run(walk)
        afresh, _ = await alone.reader(ns).run(walk)
        assert found == afresh and all(f is not None for f in found)
        assert [f.context for f in found if f is not None] == [
            tuple(ids[:2]),
            *contexts,
            (ids[2], *now),
        ]
        if store_address.startswith("postgresql://"):
            assert misses == 0
        else:
            assert misses == len(contexts) + 1
    finally:
        await alone.close()
        await store.close()


async def test_a_draw_and_a_back_off_come_with_the_lookup_the_walk_makes_next(
    store_address: str,
) -> None:
    """A draw from a class read from the database (more than SMALL candidates) brings on
    PostgreSQL the lookup of the context the drawn word makes; so does a context whose only
    candidate is <end>, for the shorter one a walk told to go on backs off to. Each is
    what reading it alone gives; SQLite reads them one by one."""
    lines = [f"a{i} b{i}" for i in range(SMALL + 10)] + ["p q", "q r s"]
    store = await open_store(store_address)
    alone = await open_store(store_address)
    try:
        ns = await store.namespace("guild:1", 2)
        await store.learn(ns, incoming(lines))
        a5, p, q, r = await store.reader(ns).resolve(["a5", "p", "q", "r"])

        async def walk(m: ModelReader) -> tuple[list[Found | None], int]:
            start = await m.lookup([BOS])
            assert start is not None and start.classes[0].size > SMALL
            before = store.read_cache.misses
            drawn = await m.candidate_at(start, 1, 5)  # the 6th word learned first: a5
            found = [await m.lookup([BOS, drawn])]
            found.append(await m.lookup([BOS, p]))  # one candidate, q: p q ends there
            misses = store.read_cache.misses - before
            found += [await m.lookup([p, q]), await m.lookup([q]), await m.lookup([q, r])]
            return found, store.read_cache.misses - before - misses

        found, misses = await store.reader(ns).run(walk)
        afresh, _ = await alone.reader(ns).run(walk)
        assert found == afresh and all(f is not None for f in found)
        assert [f.context for f in found if f is not None] == [
            (BOS, a5),
            (BOS, p),
            (p, q),
            (q,),
            (q, r),
        ]
        assert misses == (0 if store_address.startswith("postgresql://") else 3)
    finally:
        await alone.close()
        await store.close()


async def test_a_class_too_large_to_read_whole_is_drawn_from_by_its_marks(
    store_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each draw from a class larger than CLASS_READ reads from the nearest of its every
    MARK-th members: the same member as counting through the whole class, with the
    held-apart words (members or not) left out."""
    monkeypatch.setattr(reading, "CLASS_READ", 8)
    monkeypatch.setattr(reading, "MARK", 4)
    n = SMALL + 10
    store = await open_store(store_address)
    try:
        ns = await store.namespace("guild:1", 2)
        await store.learn(ns, incoming([f"a{i} b{i}" for i in range(n)] + ["a0 b0"]))
        reader = store.reader(ns)
        starts = await reader.resolve([f"a{i}" for i in range(1, n)])  # said once, at a start
        once = sorted([*starts, *await reader.resolve([f"b{i}" for i in range(1, n)])])
        rng = random.Random(5)

        async def draws(m: ModelReader) -> None:
            start, words = await m.lookup([BOS]), await m.unigram()
            assert start is not None and words is not None
            for found, members in ((start, sorted(starts)), (words, once)):
                for skip in ([], rng.sample(members, 9), [*rng.sample(once, 12), EOS]):
                    left = [t for t in members if t not in skip]
                    drawn = [await m.candidate_at(found, 1, i, skip) for i in range(len(left))]
                    assert drawn == left
                    with pytest.raises(LookupError):
                        await m.candidate_at(found, 1, len(left), skip)

        await reader.run(draws)
    finally:
        await store.close()


def test_a_whole_class_weighs_by_its_size_so_it_cannot_crowd_out_small_reads() -> None:
    cache = ReadCache(size=100)
    at = (1, 0.0, 5)
    cache.begin(*at)
    for i in range(60):
        cache.put(at, ("lookup", (i,)), ("small", i))
    big = array("q", range(MEMBERS_PER_SLOT * 30))  # weighs 31 slots
    cache.put(at, ("class", b"a", 1), big)
    assert cache.get(at, ("class", b"a", 1)) is big
    kept = sum(cache.get(at, ("lookup", (i,))) == ("small", i) for i in range(60))
    assert kept == 60  # 60 + 31 fit in 100
    # A second one does not fit beside them: the least recently used entry, the first
    # class (the small reads were just read again), makes room for it.
    cache.put(at, ("class", b"b", 1), array("q", range(MEMBERS_PER_SLOT * 30)))
    assert cache.get(at, ("class", b"a", 1)) != big
    assert len(cache.get(at, ("class", b"b", 1))) == MEMBERS_PER_SLOT * 30
    assert all(cache.get(at, ("lookup", (i,))) == ("small", i) for i in range(60))


def test_a_write_of_this_store_makes_only_the_reads_of_what_it_touched_stale() -> None:
    cache = ReadCache()
    v5, v6, v7 = (1, 0.0, 5), (1, 0.0, 6), (1, 0.0, 7)
    cache.begin(*v5)
    cache.put(v5, ("lookup", (1, 2)), "one two")  # depends on (1, 2) and (2,)
    cache.put(v5, ("lookup", (3, 4)), "three four")
    cache.put(v5, ("class", pack([9]), 3), "class of nine")
    cache.put(v5, ("unigram",), "words")
    # Learning touched the context (2,), the vocabulary (b"") and nothing else.
    cache.advance(Change(1, 6, [pack([2]), b""]))
    cache.put(v5, ("lookup", (5,)), "read at 5 after the write: not remembered")
    cache.begin(*v6)
    assert cache.get(v6, ("lookup", (1, 2))) is reading._MISSING  # its back-off changed
    assert cache.get(v6, ("unigram",)) is reading._MISSING
    assert cache.get(v6, ("lookup", (5,))) is reading._MISSING
    assert cache.get(v6, ("lookup", (3, 4))) == "three four"
    assert cache.get(v6, ("class", pack([9]), 3)) == "class of nine"
    cache.put(v6, ("lookup", (1, 2)), "read again at 6")
    assert cache.get(v6, ("lookup", (1, 2))) == "read again at 6"
    # A version this store did not write (another process): everything is read afresh.
    cache.begin(*v7)
    assert cache.get(v7, ("lookup", (3, 4))) is reading._MISSING
    assert cache.get(v7, ("lookup", (1, 2))) is reading._MISSING
    # As is a write too large to list, and a request still at an older version.
    cache.put(v7, ("lookup", (3, 4)), "three four at 7")
    cache.advance(Change(1, 8, None))
    cache.begin(1, 0.0, 8)
    assert cache.get((1, 0.0, 8), ("lookup", (3, 4))) is reading._MISSING
    assert cache.get(v7, ("lookup", (3, 4))) is reading._MISSING


def test_contexts_changed_beyond_what_the_cache_tracks_make_the_older_reads_stale() -> None:
    cache = ReadCache(changes=4)
    v1, v2, v3 = (1, 0.0, 1), (1, 0.0, 2), (1, 0.0, 3)
    cache.begin(*v1)
    cache.put(v1, ("lookup", (9,)), "nine at 1")
    cache.advance(Change(1, 2, [pack([1]), pack([2])]))
    cache.put(v2, ("lookup", (8,)), "eight at 2")
    # Three more changes push the first ones out: what was read before them is stale.
    cache.advance(Change(1, 3, [pack([3]), pack([4]), pack([5])]))
    assert cache.get(v3, ("lookup", (9,))) is reading._MISSING
    assert cache.get(v3, ("lookup", (8,))) == "eight at 2"
    assert cache.get(v3, ("lookup", (1,))) is reading._MISSING


def test_a_draw_skips_the_held_apart_members_as_filtering_the_class_would() -> None:
    rng = random.Random(12)
    for _ in range(500):
        members = sorted(rng.sample(range(1, 300), rng.randint(0, 40)))
        some = rng.sample(members, min(len(members), rng.randint(0, 5)))
        skip = sorted(set(rng.sample(range(1, 300), rng.randint(0, 20)) + some))
        left = [t for t in members if t not in skip]
        for offset in range(len(left) + 2):
            expected = left[offset] if offset < len(left) else None
            assert _nth_without(array("q", members), skip, offset) == expected
            assert _nth_without(tuple(members), skip, offset) == expected
