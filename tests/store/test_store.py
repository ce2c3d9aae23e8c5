"""The SQLite store on real files: exact learn/forget inverses, idempotence, provenance
(author, channel), namespace isolation, persistence, purge, permissions, migrations and
crash consistency (a writer killed with SIGKILL mid-import)."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sqlite3
import stat
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from bot.core.generate import Options, explain_context, generate
from bot.core.model import END_LABEL, TEACHING_ORDER, EmptyModel, MemoryModel, UnknownStart, unpack
from bot.core.sampling import classes_from_counts
from bot.core.tokenize import tokenize
from bot.corpora import CORPORA, read_lines
from bot.services.importing import CORPUS_PREFIX, corpus_namespace, import_lines
from bot.store import Incoming, LearnResult, Namespace, Store, StoreError
from bot.store.guilds import Backfill, Guilds
from bot.store.schema import MIGRATIONS, SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------- helpers


async def open_store(path: Path | str, *, burn_ids: bool = True) -> Store:
    """A real store. Unless ``burn_ids`` is False, two throwaway words are learned first in
    their own namespace: a fresh database hands out vocabulary ids 1 and 2, which collide
    with the start and end markers (see test_first_words_learned_are_not_markers)."""
    store = await Store.open(path)
    if burn_ids:
        burn = await store.namespace("__burn_ids__")
        await store.learn(burn, [Incoming(1, ["__a__", "__b__"])])
    return store


@pytest.fixture
async def store(store_address: str) -> AsyncIterator[Store]:
    """A store on each backend (a fresh SQLite file, a fresh PostgreSQL database)."""
    s = await open_store(store_address)
    try:
        yield s
    finally:
        await s.close()


def messages_from(
    rng: random.Random, vocabulary: Sequence[str], n: int, first_id: int, **meta: int | None
) -> list[Incoming]:
    out = []
    for i in range(n):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(1, 12))]
        out.append(Incoming(first_id + i, words, **meta))
    return out


SHARED = ["the", "a", "and", "cat", "dog", "sat", "ran", "on", "mat", "I", "you", "said,"]
ONLY_B = ["zebra", "zygote", "zephyr", "Zorro!"]


def key_ids(key: Iterable[object]) -> list[int]:
    """A recount key as token ids (accepting packed-bytes parts too)."""
    out: list[int] = []
    for part in key:
        if isinstance(part, bytes | bytearray):
            out.extend(unpack(bytes(part)))
        else:
            out.append(int(part))  # type: ignore[call-overload]
    return out


async def spelled_counts(store: Store, ns: Namespace) -> Counter[tuple[str, ...]]:
    """The stored transitions spelled out as words: comparable across databases, whose
    token ids differ."""
    stored, _ = await store.recount(ns)
    reader = store.reader(ns)
    out: Counter[tuple[str, ...]] = Counter()
    for key, n in stored.items():
        out[tuple(await reader.spell(key_ids(key)))] += n
    return out


async def assert_consistent(store: Store, ns: Namespace, sample: int | None = None) -> None:
    """Stored counts equal counts recomputed from stored messages, and every context's count
    classes (what sampling reads) are the histogram of its successors' counts."""
    stored, expected = await store.recount(ns)
    assert stored == expected
    assert all(n > 0 for n in stored.values())
    by_context: dict[tuple[int, ...], list[int]] = {}
    for key, n in stored.items():
        ids = key_ids(key)
        by_context.setdefault(tuple(ids[:-1]), []).append(n)
    contexts = sorted(by_context)
    if sample is not None and len(contexts) > sample:
        contexts = random.Random(0).sample(contexts, sample)
    reader = store.reader(ns)
    for context in contexts:
        found = await reader.lookup(context)
        assert found is not None and found.context == context
        nonempty = tuple(c for c in found.classes if c.size > 0)
        assert nonempty == classes_from_counts(by_context[context])


async def all_explanations(store: Store, ns: Namespace, words: Iterable[str]) -> dict[str, object]:
    reader = store.reader(ns)
    out: dict[str, object] = {"": await explain_context(reader, None, 0.7, rows=None)}
    for w in words:
        out[w] = await explain_context(reader, [w], 0.7, rows=None)
    return out


# ---------------------------------------------------------------------------- known bugs


async def test_first_words_learned_are_not_markers(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "fresh.db", burn_ids=False)
    try:
        ns = await store.namespace("fresh")
        await store.learn(ns, [Incoming(1, ["hello", "world"])])
        e = await explain_context(store.reader(ns), None, 1.0, rows=None)
        assert [(r.token, r.count) for r in e.rows] == [("hello", 1)]
        g = await generate(store.reader(ns), None, Options(temperature=0.0, seed=0))
        assert g.text == "hello world" and g.ended
    finally:
        await store.close()


async def test_candidates_tie_in_learning_order_within_one_batch(store: Store) -> None:
    words = [f"w{i:02d}" for i in range(20)]
    messages = [["x", w] for w in words]
    memory = MemoryModel()
    for m in messages:
        memory.learn(m)
    ns = await store.namespace("bulk")
    await store.learn(ns, [Incoming(i, m) for i, m in enumerate(messages, start=1)])
    mem = await explain_context(memory, "x", 1.0, rows=None)
    assert [r.token for r in mem.rows] == words  # MemoryModel: learning order
    got = await explain_context(store.reader(ns), "x", 1.0, rows=None)
    assert [r.token for r in got.rows] == words
    for seed in range(10):
        opts = Options(seed=seed)
        assert (await generate(store.reader(ns), "x", opts)).text == (
            await generate(memory, "x", opts)
        ).text


async def test_count_classes_have_no_empty_rows(store: Store) -> None:
    ns = await store.namespace("classes")
    for i, text in enumerate(["the cat", "the cat", "the cat", "the dog"], start=1):
        await store.learn(ns, [Incoming(i, tokenize(text))])
    reader = store.reader(ns)
    found = await reader.lookup(await reader.resolve(["the"]))
    assert found is not None
    # By hand: after "the", cat 3 times and dog once.
    assert found.classes == classes_from_counts([3, 1])


# ---------------------------------------------------------------------------- learn / forget


async def test_forget_a_message(store: Store) -> None:
    # By hand: forgetting message 2 leaves only "keep this": this → <end> once.
    ns = await store.namespace("forget")
    await store.learn(ns, [Incoming(1, ["keep", "this"]), Incoming(2, ["drop", "this"])])
    assert await store.forget(ns, [2]) == 1
    assert await store.known_messages(ns, [1, 2]) == {1}
    assert await store.autocomplete(ns, "dr") == []
    e = await explain_context(store.reader(ns), "this", 1.0, rows=None)
    assert [(r.token, r.count) for r in e.rows] == [(END_LABEL, 1)]
    start = await explain_context(store.reader(ns), None, 1.0, rows=None)
    assert [(r.token, r.count) for r in start.rows] == [("keep", 1)]


async def test_learn_then_forget_restores_exact_counts(store: Store) -> None:
    rng = random.Random(1)
    ns = await store.namespace("roundtrip")
    a = messages_from(rng, SHARED, 60, first_id=1)
    for i in range(0, len(a), 13):
        await store.learn(ns, a[i : i + 13])
    await assert_consistent(store, ns)
    snapshot, _ = await store.recount(ns)
    stats_before = await store.stats(ns)
    explained_before = await all_explanations(store, ns, SHARED)
    assert await store.autocomplete(ns, "z") == []

    # B shares words and contexts with A and has words of its own.
    b = messages_from(rng, SHARED + ONLY_B, 40, first_id=1_000)
    for i in range(0, len(b), 9):
        await store.learn(ns, b[i : i + 9])
    await assert_consistent(store, ns)
    assert (await store.recount(ns))[0] != snapshot
    assert set(await store.autocomplete(ns, "z")) <= {w for m in b for w in m.tokens}
    assert await store.autocomplete(ns, "z")

    assert await store.forget(ns, [m.id for m in b]) == len(b)
    await assert_consistent(store, ns)
    assert (await store.recount(ns))[0] == snapshot
    assert replace(await store.stats(ns), database_bytes=0) == replace(
        stats_before, database_bytes=0
    )
    assert await all_explanations(store, ns, SHARED) == explained_before
    # Words only B had are gone from the vocabulary.
    assert await store.autocomplete(ns, "z") == []
    assert set(await store.autocomplete(ns, "", limit=100)) == {w for m in a for w in m.tokens}
    for word in ONLY_B:
        with pytest.raises(UnknownStart):
            await store.reader(ns).resolve([word])
    assert await store.known_messages(ns, [m.id for m in a + b]) == {m.id for m in a}


async def test_forgetting_equals_never_learning(tmp_path: Path) -> None:
    """Independent of recount: a store that learned everything and forgot some messages
    holds the same (spelled) counts as a store that only ever learned the rest."""
    rng = random.Random(2)
    messages = messages_from(rng, SHARED + ONLY_B, 120, first_id=1)
    forgotten = set(rng.sample([m.id for m in messages], 45))
    kept = [m for m in messages if m.id not in forgotten]

    full = await open_store(tmp_path / "full.db")
    fresh = await open_store(tmp_path / "fresh.db")
    try:
        ns_full = await full.namespace("n")
        for i in range(0, len(messages), 11):
            await full.learn(ns_full, messages[i : i + 11])
        ids = sorted(forgotten)
        assert await full.forget(ns_full, [*ids[:20], 10**12]) == 20  # unknown ids are ignored
        assert await full.forget(ns_full, ids[20:]) == len(ids) - 20
        assert await full.forget(ns_full, ids) == 0  # already forgotten

        ns_fresh = await fresh.namespace("n")
        for i in range(0, len(kept), 11):
            await fresh.learn(ns_fresh, kept[i : i + 11])

        await assert_consistent(full, ns_full)
        await assert_consistent(fresh, ns_fresh)
        assert await spelled_counts(full, ns_full) == await spelled_counts(fresh, ns_fresh)
        # Order 2: a message of n words has n + 1 one-word and n two-word transitions.
        assert sum((await spelled_counts(fresh, ns_fresh)).values()) == sum(
            2 * len(m.tokens) + 1 for m in kept
        )
        # top=1000 lists every word: equal counts may be listed in another order.
        s_full = await full.stats(ns_full, top=1000)
        s_fresh = await fresh.stats(ns_fresh, top=1000)
        for field in ("messages", "tokens", "vocabulary", "contexts", "order"):
            assert getattr(s_full, field) == getattr(s_fresh, field), field
        assert sorted(s_full.top_words) == sorted(s_fresh.top_words)
        vocab = sorted({w for m in kept for w in m.tokens})
        assert sorted(await full.autocomplete(ns_full, "", limit=100)) == vocab
    finally:
        await full.close()
        await fresh.close()


async def test_transition_counts_by_hand(store: Store) -> None:
    ns = await store.namespace("hand", order=2)
    await store.learn(ns, [Incoming(1, ["a", "b"]), Incoming(2, ["a", "b", "a"])])
    counts = await spelled_counts(store, ns)
    # Order 2 with markers: <start> a b <end>, <start> a b a <end>.
    assert counts == Counter(
        {
            ("<start>", "a"): 2,
            ("a", "b"): 2,
            ("b", END_LABEL): 1,
            ("b", "a"): 1,
            ("a", END_LABEL): 1,
            ("<start>", "a", "b"): 2,
            ("a", "b", END_LABEL): 1,
            ("a", "b", "a"): 1,
            ("b", "a", END_LABEL): 1,
        }
    )


async def test_learning_the_same_message_id_twice_counts_once(store: Store) -> None:
    ns = await store.namespace("dupes")
    first = await store.learn(ns, [Incoming(1, ["a", "b"]), Incoming(2, ["a", "c"])])
    assert (first.learned, first.duplicates, first.empty, first.tokens) == (2, 0, 0, 4)
    # Id 1 again (even with other words) is a duplicate; id 3 is new.
    second = await store.learn(ns, [Incoming(1, ["a", "c", "c"]), Incoming(3, ["a", "b"])])
    assert (second.learned, second.duplicates, second.empty, second.tokens) == (1, 1, 0, 2)
    # The same id twice in one batch, and an empty message.
    third = await store.learn(
        ns, [Incoming(4, ["a", "d"]), Incoming(4, ["a", "d"]), Incoming(5, [])]
    )
    assert (third.learned, third.duplicates, third.empty, third.tokens) == (1, 1, 1, 2)
    again = await store.learn(ns, [Incoming(1, ["a", "b"]), Incoming(4, ["x"])])
    assert (again.learned, again.duplicates) == (0, 2)
    assert await store.learn(ns, []) == type(again)(0, 0, 0, 0)

    # By hand: after "a" came b (ids 1, 3), c (id 2) and d (id 4) — not c twice.
    e = await explain_context(store.reader(ns), "a", 1.0, rows=None)
    assert {(r.token, r.count) for r in e.rows} == {("b", 2), ("c", 1), ("d", 1)}
    assert (await store.stats(ns)).messages == 4
    await assert_consistent(store, ns)


async def test_forget_author_and_channel(tmp_path: Path) -> None:
    rng = random.Random(3)
    batches = [
        messages_from(rng, SHARED, 20, 100, author=1, channel=10),
        messages_from(rng, [*SHARED, "alpha"], 20, 200, author=2, channel=10),
        messages_from(rng, [*SHARED, "beta"], 20, 300, author=1, channel=20),
        messages_from(rng, SHARED, 20, 400, author=3, channel=20),
    ]
    store = await open_store(tmp_path / "prov.db")
    try:
        ns = await store.namespace("prov")
        for b in batches:
            await store.learn(ns, b)
        assert (await store.stats(ns)).authors == 3
        assert await store.forget_author(ns, 1) == 40
        await assert_consistent(store, ns)
        remaining = batches[1] + batches[3]
        assert await store.known_messages(ns, [m.id for b in batches for m in b]) == {
            m.id for m in remaining
        }
        assert (await store.stats(ns)).authors == 2
        assert await store.autocomplete(ns, "bet") == []  # only author 1 wrote "beta"
        assert await store.forget_author(ns, 1) == 0

        assert await store.forget_channel(ns, 20) == 20  # author 3's messages
        await assert_consistent(store, ns)
        remaining = batches[1]
        assert await store.known_messages(ns, [m.id for b in batches for m in b]) == {
            m.id for m in remaining
        }
        assert (await store.stats(ns)).channels == [(10, 20)]

        reference = await open_store(tmp_path / "ref.db")
        try:
            ns_ref = await reference.namespace("prov")
            await reference.learn(ns_ref, remaining)
            assert await spelled_counts(store, ns) == await spelled_counts(reference, ns_ref)
        finally:
            await reference.close()
    finally:
        await store.close()


async def test_forget_older_than(store: Store) -> None:
    ns = await store.namespace("old")
    await store.learn(ns, [Incoming(1, ["old", "news"], created=100.0)])
    await store.learn(ns, [Incoming(2, ["new", "news"], created=200.0), Incoming(3, ["undated"])])
    assert await store.forget_older_than(ns, 150.0) == 1
    assert await store.known_messages(ns, [1, 2, 3]) == {2, 3}
    assert await store.autocomplete(ns, "ol") == []
    await assert_consistent(store, ns)


# ---------------------------------------------------------------------------- namespaces


async def test_namespaces_are_isolated(store: Store) -> None:
    alpha = await store.namespace("alpha")
    beta = await store.namespace("beta", order=1)
    await store.learn(
        alpha, [Incoming(1, ["apple", "apricot", "shared"]), Incoming(2, ["shared", "apple"])]
    )
    # The same message id in another namespace is a different message.
    await store.learn(beta, [Incoming(1, ["banana", "bandana", "shared"])])

    assert await store.autocomplete(alpha, "b") == []
    assert await store.autocomplete(beta, "a") == []
    assert set(await store.autocomplete(alpha, "")) == {"apple", "apricot", "shared"}
    assert set(await store.autocomplete(beta, "")) == {"banana", "bandana", "shared"}

    sa, sb = await store.stats(alpha), await store.stats(beta)
    assert (sa.messages, sa.tokens, sa.vocabulary, sa.order) == (2, 5, 3, 2)
    assert (sb.messages, sb.tokens, sb.vocabulary, sb.order) == (1, 3, 3, 1)
    assert dict(sa.top_words)["shared"] == 2 and dict(sb.top_words)["shared"] == 1

    with pytest.raises(UnknownStart) as info:
        await store.reader(beta).resolve(["apple"])
    assert info.value.suggestions == ()  # beta knows no word like "apple"
    with pytest.raises(UnknownStart):
        await store.reader(alpha).resolve(["banana"])

    start_a = await explain_context(store.reader(alpha), None, 1.0, rows=None)
    assert {r.token for r in start_a.rows} == {"apple", "shared"}
    shared_b = await explain_context(store.reader(beta), "shared", 1.0, rows=None)
    assert [(r.token, r.count) for r in shared_b.rows] == [(END_LABEL, 1)]
    shared_a = await explain_context(store.reader(alpha), "shared", 1.0, rows=None)
    assert {(r.token, r.count) for r in shared_a.rows} == {(END_LABEL, 1), ("apple", 1)}
    for seed in range(10):
        g = await generate(store.reader(beta), None, Options(seed=seed))
        assert set(g.tokens) <= {"banana", "bandana", "shared"}

    # Purging one namespace leaves the other alone.
    before = await spelled_counts(store, beta)
    assert await store.purge(alpha) == 2
    assert await spelled_counts(store, beta) == before
    assert await store.known_messages(beta, [1]) == {1}
    assert {n.name for n in await store.namespaces()} >= {"alpha", "beta"}


async def test_a_purge_cut_short_is_finished_when_the_store_opens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "purging.db"
    store = await open_store(path)
    try:
        names = ("purged", "dropped", "kept")
        spaces = [await store.namespace(name) for name in names]
        for i, ns in enumerate(spaces):
            lines = [f"words of {ns.name} number {i}", "and more"]
            await store.learn(ns, [Incoming(j, tokenize(line)) for j, line in enumerate(lines)])
        kept_before = await spelled_counts(store, spaces[2])
    finally:
        await store.close()
    # What a crash leaves behind: the request committed, the deletion rolled back (the
    # real kill is tests/test_crash.py::test_kill_during_purge).
    with sqlite3.connect(path) as db:
        db.execute("UPDATE namespaces SET purging = 1 WHERE name = 'purged'")
        db.execute("UPDATE namespaces SET purging = 2 WHERE name = 'dropped'")
    db.close()

    caplog.set_level("WARNING", logger="bot.store.sqlite")
    store = await open_store(path)
    try:
        by_name = {ns.name: ns for ns in await store.namespaces()}
        assert "dropped" not in by_name
        assert await store.is_empty(by_name["purged"])
        assert await spelled_counts(store, by_name["kept"]) == kept_before
        await assert_consistent(store, by_name["kept"])
    finally:
        await store.close()
    finished = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert len(finished) == 2 and all("2 messages" in line for line in finished), finished
    with sqlite3.connect(path) as db:
        counts = {
            table: db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE ns = ?", (spaces[1].id,)
            ).fetchone()[0]
            for table in ("vocab", "transitions", "classes", "messages", "anchors")
        }
        assert db.execute("SELECT COUNT(*) FROM namespaces WHERE purging > 0").fetchone()[0] == 0
    db.close()
    assert set(counts.values()) == {0}, counts


async def test_forgetting_in_one_namespace_leaves_the_other_alone(store: Store) -> None:
    alpha = await store.namespace("alpha")
    beta = await store.namespace("beta")
    await store.learn(alpha, [Incoming(1, ["same", "words"]), Incoming(2, ["same", "here"])])
    await store.learn(beta, [Incoming(1, ["same", "words"])])
    before = await spelled_counts(store, beta)
    assert await store.forget(alpha, [1]) == 1
    assert await store.forget_author(alpha, 0) == 0
    assert await spelled_counts(store, beta) == before
    assert await store.known_messages(beta, [1]) == {1}
    assert await store.autocomplete(beta, "wor") == ["words"]
    assert await store.autocomplete(alpha, "wor") == []


async def test_namespace_keeps_its_first_order(store: Store) -> None:
    first = await store.namespace("fixed", order=3)
    again = await store.namespace("fixed", order=1)
    assert again == first and again.order == 3
    with pytest.raises(ValueError):
        await store.namespace("bad", order=0)


async def test_selection_by_author_generates_only_their_words(store: Store) -> None:
    ns = await store.namespace("people")
    alice_words = ["tea", "please", "thanks", "lovely", "day"]
    bob_words = ["coffee", "now", "urgent", "deadline", "day"]
    rng = random.Random(4)
    await store.learn(ns, messages_from(rng, alice_words, 30, 1, author=1, channel=5))
    await store.learn(ns, messages_from(rng, bob_words, 30, 100, author=2, channel=6))
    alice = await store.selection(ns, author=1)
    assert alice.messages == 30
    assert alice.order == ns.order
    for seed in range(30):
        g = await generate(alice, None, Options(seed=seed, length=20, temperature=2.0))
        assert set(g.tokens) <= set(alice_words), g.text
    with pytest.raises(UnknownStart):
        await generate(alice, "coffee", Options(seed=0))
    bob_channel = await store.selection(ns, channel=6)
    assert bob_channel.messages == 30
    for seed in range(10):
        assert set((await generate(bob_channel, None, Options(seed=seed))).tokens) <= set(bob_words)
    nobody = await store.selection(ns, author=99)
    with pytest.raises(EmptyModel):
        await generate(nobody, None, Options(seed=0))
    # A selection of everyone has the same distributions as the store itself.
    everyone = await store.selection(ns)
    for w in ["day", "tea", "coffee"]:
        a = await explain_context(everyone, w, 1.0, rows=None)
        b = await explain_context(store.reader(ns), w, 1.0, rows=None)
        assert {(r.token, r.count) for r in a.rows} == {(r.token, r.count) for r in b.rows}


# ---------------------------------------------------------------------------- lifecycle


async def test_persistence_across_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "persist.db"
    store = await open_store(path)
    ns = await store.namespace("keep", order=3)
    await store.learn(ns, messages_from(random.Random(5), SHARED, 50, 1, author=7, channel=8))
    counts = await store.recount(ns)
    stats = await store.stats(ns)
    texts = [(await generate(store.reader(ns), None, Options(seed=s))).text for s in range(5)]
    await store.close()

    store = await Store.open(path)
    try:
        ns2 = await store.namespace("keep")
        assert ns2 == ns and ns2.order == 3
        assert await store.recount(ns2) == counts
        after = await store.stats(ns2)
        assert (
            after.messages,
            after.tokens,
            after.vocabulary,
            after.contexts,
            after.top_words,
        ) == (stats.messages, stats.tokens, stats.vocabulary, stats.contexts, stats.top_words)
        assert [
            (await generate(store.reader(ns2), None, Options(seed=s))).text for s in range(5)
        ] == texts
        await assert_consistent(store, ns2)
    finally:
        await store.close()


async def test_purge(store: Store) -> None:
    ns = await store.namespace("gone")
    other = await store.namespace("stays")
    await store.learn(ns, messages_from(random.Random(6), SHARED, 25, 1))
    await store.learn(other, [Incoming(1, ["still", "here"])])
    assert not await store.is_empty(ns)
    assert await store.purge(ns) == 25
    assert await store.is_empty(ns)
    s = await store.stats(ns)
    assert (s.messages, s.tokens, s.vocabulary, s.contexts, s.top_words, s.authors) == (
        0,
        0,
        0,
        0,
        [],
        0,
    )
    assert await store.autocomplete(ns, "") == []
    assert await store.recount(ns) == (Counter(), Counter())
    with pytest.raises(EmptyModel):
        await generate(store.reader(ns), None, Options(seed=0))
    assert "gone" in {n.name for n in await store.namespaces()}
    assert set(await store.autocomplete(other, "")) == {"still", "here"}
    # The namespace can learn again afterwards.
    await store.learn(ns, [Incoming(1, ["fresh", "start"])])
    await assert_consistent(store, ns)
    assert (await generate(store.reader(ns), None, Options(seed=0))).text == "fresh start"


async def test_database_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "private.db"  # parent directories are created
    store = await open_store(path)
    try:
        await store.learn(await store.namespace("x"), [Incoming(1, ["secret", "words"])])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        # SQLite gives its side files the main file's permissions.
        for side in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            if side.exists():
                assert stat.S_IMODE(side.stat().st_mode) & 0o077 == 0, side
    finally:
        await store.close()


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


async def test_migrates_a_version_0_database(tmp_path: Path) -> None:
    path = tmp_path / "v0.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE unrelated (x)")  # a real, non-empty version-0 file
    db.commit()
    db.close()
    assert user_version(path) == 0

    store = await Store.open(path)
    try:
        assert SCHEMA_VERSION == len(MIGRATIONS) >= 1
        assert user_version(path) == SCHEMA_VERSION
        declared = {m for script in MIGRATIONS for m in re.findall(r"CREATE TABLE (\w+)", script)}
        assert declared >= {"namespaces", "vocab", "transitions", "classes", "messages", "anchors"}
        assert tables(path) >= declared | {"unrelated"}
        ns = await store.namespace("after")
        await store.learn(ns, [Incoming(1, ["it", "works", "fine"])])
        await assert_consistent(store, ns)
    finally:
        await store.close()
    # Opening again does not migrate again (a second CREATE TABLE would fail).
    store = await Store.open(path)
    await store.close()
    assert user_version(path) == SCHEMA_VERSION


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer") as refused:
        await Store.open(path)
    assert str(path) in str(refused.value)
    assert user_version(path) == SCHEMA_VERSION + 1
    assert tables(path) == set()


# ---------------------------------------------------------------------------- crash consistency

# Shared by the test and the child process, so both know every batch's messages.
BATCH_SOURCE = textwrap.dedent(
    """
    import random
    from bot.store import Incoming

    BATCH = 300

    def batch_messages(b):
        rng = random.Random(b)
        words = [f"w{i}" for i in range(400)] + [f"b{b}x{j}" for j in range(30)]
        return [
            Incoming(b * 10_000 + j, [rng.choice(words) for _ in range(rng.randint(3, 14))])
            for j in range(BATCH)
        ]
    """
)

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {root!r})
    from bot.store import Store, Incoming
    {source}
    async def main():
        store = await Store.open({path!r})
        burn = await store.namespace("__burn_ids__")
        await store.learn(burn, [Incoming(1, ["__a__", "__b__"])])
        ns = await store.namespace("crash")
        for b in range({batches}):
            await store.learn(ns, batch_messages(b))
            print("committed", b, flush=True)
        print("finished", flush=True)
    asyncio.run(main())
    """
)


def batch_ids(b: int) -> set[int]:
    namespace: dict[str, object] = {}
    exec(BATCH_SOURCE, namespace)
    return {m.id for m in namespace["batch_messages"](b)}  # type: ignore[operator]


@pytest.mark.parametrize("delay", [0.0, 0.012, 0.024])
async def test_sigkill_mid_import_leaves_whole_batches(tmp_path: Path, delay: float) -> None:
    path = tmp_path / "crash.db"
    batches = 400  # far more than can be written before the kill
    wait_for = 4  # batches reported committed before the kill
    code = CHILD.format(root=str(ROOT), source=BATCH_SOURCE, path=str(path), batches=batches)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        reported = -1
        while reported < wait_for - 1:
            line = (await asyncio.wait_for(child.stdout.readline(), timeout=60)).decode()
            if not line:
                pytest.fail(f"child ended early: {(await child.stderr.read()).decode()}")
            assert line.startswith("committed"), line
            reported = int(line.split()[1])
        # The child is now writing the next batch, which takes roughly 20-40 ms; the
        # delays spread the kill over it (building the rows, the inserts, the commit).
        await asyncio.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.returncode is None:
            child.kill()  # only if the test failed before its own kill
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    store = await Store.open(path)
    try:
        ns = await store.namespace("crash")
        every = [batch_ids(b) for b in range(wait_for + 3)]
        known = await store.known_messages(ns, [i for ids in every for i in ids])
        whole = [b for b in range(len(every)) if every[b] <= known]
        # Only whole batches, a prefix of them, and at least those reported committed.
        committed = len(whole)
        assert whole == list(range(committed))
        assert wait_for <= committed < len(every)
        assert known == set().union(*every[:committed])
        await assert_consistent(store, ns, sample=400)
        assert (await store.stats(ns)).messages == len(known)
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_bookkeeping_commits_with_the_batch_or_not_at_all(store: Store) -> None:
    ns = await store.namespace("pages")
    guilds = Guilds(store)
    start = await guilds.start_backfill(7, 70, 100)

    def record(result: LearnResult) -> Backfill:
        return replace(start, learned=start.learned + result.learned, read=start.read + 1)

    result = await store.learn(ns, [Incoming(1, ["one", "page"])], also=record)
    assert result.learned == 1
    saved = await guilds.backfill(7, 70)
    assert saved is not None and (saved.learned, saved.read) == (1, 1)

    def fail(result: LearnResult) -> Backfill:
        raise OSError("the position cannot be worked out")

    with pytest.raises(OSError):
        await store.learn(ns, [Incoming(2, ["another", "page"]), Incoming(3, ["x"])], also=fail)
    assert await guilds.backfill(7, 70) == saved
    assert await store.known_messages(ns, [1, 2, 3]) == {1}
    assert await store.autocomplete(ns, "anoth") == []
    await assert_consistent(store, ns)
    # A page with nothing learnable still saves its bookkeeping (the position moves on).
    assert (await store.learn(ns, [], also=record)).learned == 0
    saved = await guilds.backfill(7, 70)
    assert saved is not None and (saved.learned, saved.read) == (0, 1)


async def test_a_bundled_corpus_cut_short_is_completed_on_next_use(tmp_path: Path) -> None:
    corpus = CORPORA["mother-goose"]
    lines = list(read_lines(corpus.path))
    store = await open_store(tmp_path / "partial.db")
    try:
        ns = await store.namespace(CORPUS_PREFIX + corpus.name, TEACHING_ORDER)
        # What a crash after the first batches leaves: some lines in, not marked complete.
        await import_lines(store, ns, lines[: len(lines) // 3], corpus.file, batch_lines=50)
        assert not await store.is_complete(ns)
        again = await corpus_namespace(store, corpus, TEACHING_ORDER)
        assert again == ns and await store.is_complete(ns)
        whole = await store.namespace("reference", TEACHING_ORDER)
        await import_lines(store, whole, lines, corpus.file)
        assert await spelled_counts(store, ns) == await spelled_counts(store, whole)
        await assert_consistent(store, ns)
        # Complete: the next use imports nothing.
        before = (await store.stats(ns)).messages
        await corpus_namespace(store, corpus, TEACHING_ORDER)
        assert (await store.stats(ns)).messages == before
    finally:
        await store.close()
