"""``markov-bot migrate``: a SQLite file to PostgreSQL and back keeps every namespace
(counts, provenance, the order of ties, so the same seed gives the same text), the server
settings, consent and backfill positions; a destination already in use is refused."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.generate import Options, generate
from bot.core.tokenize import tokenize
from bot.corpora import CORPORA, read_lines
from bot.store import Incoming, Store, open_store
from bot.store.guilds import SETTINGS_TABLES, Guilds
from tests.postgres import fresh_address


async def settings_of(store: Store) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: sorted(await store.settings_rows(f"SELECT {', '.join(cols)} FROM {table}"))
        for table, cols in SETTINGS_TABLES.items()
    }


async def answers(store: Store) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for ns in await store.namespaces():
        stats = await store.stats(ns)
        out.append((ns.name, (stats.messages, stats.tokens, stats.vocabulary, stats.top_words)))
        out.append((ns.name, await store.known_messages(ns, list(range(1, 3000)))))
        out.append((ns.name, await store.author_messages(ns, 2)))
        reader = store.reader(ns)
        for seed in range(8):
            out.append((ns.name, (await generate(reader, None, Options(seed=seed))).text))
    return out


async def test_migrate_to_postgresql_and_back_keeps_everything(
    tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    lite_at = str(tmp_path / "bot.db")
    store = await open_store(lite_at)
    try:
        guild = await store.namespace("guild:1", 2)
        lines = [t for _, t in read_lines(CORPORA["grimm"].path)][:600]
        await store.learn(
            guild,
            [
                Incoming(i, tokenize(t), author=i % 5, channel=10 + i % 3, created=1e9 + i)
                for i, t in enumerate(lines, start=1)
            ],
        )
        await store.forget_author(guild, 3)  # gaps, words whose count went down
        corpus = await store.namespace("corpus:tiny", 1)
        await store.learn(corpus, [Incoming(1, ["a", "b", "a"]), Incoming(2, ["b", "c"])])
        await store.mark_complete(corpus)
        guilds = Guilds(store)
        await guilds.set_listening(1, 10, True)
        await guilds.set_chatter(1, 11, 0.25)
        await guilds.set_consent_mode(1, "opt-out")
        await guilds.set_member_consent(1, 42, "out")
        backfill = await guilds.start_backfill(1, 10, 500)
        await guilds.save_backfill(replace(backfill, before=123, read=77, learned=70))
        await guilds.set_meta("synced", "yes")
        expected, settings = await answers(store), await settings_of(store)
    finally:
        await store.close()

    async with fresh_address("postgres", tmp_path, request) as pg_at:
        assert await asyncio.to_thread(main, ["migrate", lite_at, pg_at]) == 0
        assert "checked, consistent" in capsys.readouterr().out
        back_at = str(tmp_path / "back.db")
        assert await asyncio.to_thread(main, ["migrate", pg_at, back_at]) == 0
        for address in (pg_at, back_at):
            store = await open_store(address)
            try:
                assert [ns.name for ns in await store.namespaces()] == ["guild:1", "corpus:tiny"]
                for ns in await store.namespaces():
                    assert await store.check(ns) == []
                assert await answers(store) == expected
                assert await settings_of(store) == settings
                assert await store.is_complete((await store.namespaces())[1])
            finally:
                await store.close()
        # Into a database that already holds these namespaces: refused, one line.
        assert await asyncio.to_thread(main, ["migrate", lite_at, pg_at]) == 2
        assert "already holds messages in 'guild:1'" in capsys.readouterr().err
