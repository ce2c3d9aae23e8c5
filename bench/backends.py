"""The same workload on SQLite and PostgreSQL in one run: learning throughput, generation
latency of exactly 30 words, explanation latency, memory, bytes per token and message, and
concurrent learning from 4 processes.

    python bench/backends.py                       # starts a throwaway PostgreSQL
    python bench/backends.py --postgres postgresql://user@host/db   # an existing, empty one
    python bench/benchmark.py --backends           # the same, from the main benchmark

PostgreSQL started here runs with fsync on and synchronous_commit=off: the promise SQLite's
WAL with synchronous=NORMAL makes (nothing committed is lost when the process dies; an OS
crash may lose the last moments), and wal_buffers=64MB (SERVER_SETTINGS). Written to
docs/scaling.md between markers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core.generate import Options, explain_context, generate  # noqa: E402
from bot.core.tokenize import tokenize  # noqa: E402
from bot.corpora import CORPORA, read_lines  # noqa: E402
from bot.services.importing import import_lines  # noqa: E402
from bot.store import Incoming, Namespace, Store, open_store  # noqa: E402

CORPUS = ["ubuntu-irc", "burns", "shakespeare", "sherlock"]
#: What docs/scaling.md recommends for a bot's database, beyond PostgreSQL's defaults: a
#: batch's writes fill the default 4 MB of WAL buffers many times over (learning is about
#: 8% faster with 64 MB).
SERVER_SETTINGS = {"wal_buffers": "64MB"}
WRITERS = 4


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def lines_for(n: int, salt: int = 0) -> list[tuple[int, str]]:
    """``n`` chat-like lines from the bundled corpora, repeated with fresh line numbers."""
    pool = [t for name in CORPUS for _, t in read_lines(CORPORA[name].path)]
    return [(salt * 10_000_000 + i, pool[i % len(pool)]) for i in range(n)]


async def size_of(store: Store, address: str) -> int:
    if address.startswith("postgresql://"):
        ns = (await store.namespaces())[0]
        return (await store.stats(ns)).database_bytes
    return sum(p.stat().st_size for p in Path(address).parent.glob(Path(address).name + "*"))


async def one_backend(address: str, lines: list[tuple[int, str]], calls: int) -> dict[str, Any]:
    process = psutil.Process()
    store = await open_store(address)
    try:
        ns = await store.namespace("bench", 2)
        base = await size_of(store, address) if address.startswith("postgresql://") else 0
        t0 = time.perf_counter()
        totals = await import_lines(store, ns, lines, "bench.txt")
        learn_s = time.perf_counter() - t0
        stats = await store.stats(ns)
        size = await size_of(store, address) - base
        reader = store.reader(ns)
        gc.freeze()  # as the bot does once ready: start-up's objects are not walked again
        gen, words = [], []
        for seed in range(calls):
            opts = Options(temperature=1.0, seed=seed, length=30, min_words=30)
            t = time.perf_counter()
            g = await generate(reader, None, opts)
            gen.append(time.perf_counter() - t)
            words.append(len(g.tokens))
        # The collector's full passes with and without gc.freeze() (as the bot calls it once
        # ready), alternating call by call on the same warm process.
        by_gc: dict[str, list[float]] = {"frozen": [], "thawed": []}
        for i, seed in enumerate(range(calls, 3 * calls)):
            frozen = i % 2 == 0
            if frozen:
                gc.freeze()
            t = time.perf_counter()
            await generate(reader, None, Options(temperature=1.0, seed=seed, min_words=30))
            by_gc["frozen" if frozen else "thawed"].append(time.perf_counter() - t)
            if frozen:
                gc.unfreeze()
        chat = await while_learning(store, ns, calls)
        top = stats.top_words[0][0]
        exp = []
        for _ in range(calls):
            t = time.perf_counter()
            await explain_context(reader, top, 1.0)
            exp.append(time.perf_counter() - t)
        return {
            "messages": totals.learned,
            "tokens": stats.tokens,
            "learn_rate": totals.learned / learn_s,
            "token_rate": stats.tokens / learn_s,
            "gen_p50": quantile(gen, 0.5),
            "gen_p99": quantile(gen, 0.99),
            "words": statistics.fmean(words),
            "frozen_p99": quantile(by_gc["frozen"], 0.99),
            "thawed_p99": quantile(by_gc["thawed"], 0.99),
            "chat_p50": quantile(chat, 0.5),
            "chat_p99": quantile(chat, 0.99),
            "exp_p50": quantile(exp, 0.5),
            "exp_p99": quantile(exp, 0.99),
            "bytes_token": size / max(1, stats.tokens),
            "bytes_message": size / max(1, totals.learned),
            "rss": process.memory_info().rss,
        }
    finally:
        await store.close()


async def while_learning(store: Store, ns: Namespace, calls: int) -> list[float]:
    """Generation on a server that learns as it chats: before every 5th request, a batch
    of 10 new messages is learned, as the bot's queue flushes them. Only requests are timed."""
    fresh = iter(lines_for(2 * calls, salt=7))
    times = []
    for i, seed in enumerate(range(3 * calls, 4 * calls)):
        if i % 5 == 0:
            batch = [Incoming(n, tokenize(text), author=1) for n, text in islice(fresh, 10)]
            await store.learn(ns, batch)
        t = time.perf_counter()
        await generate(
            store.reader(ns), None, Options(temperature=1.0, seed=seed, length=30, min_words=30)
        )
        times.append(time.perf_counter() - t)
    return times


def _writer_child(address: str, n: int, salt: int, out: Any) -> None:
    async def go() -> None:
        store = await open_store(address)
        try:
            ns = await store.namespace(f"guild:{salt}", 2)
            t0 = time.perf_counter()
            totals = await import_lines(store, ns, lines_for(n, salt), "w.txt")
            out.put((salt, totals.learned, time.perf_counter() - t0))
        finally:
            await store.close()

    asyncio.run(go())


def concurrent(address: str, n: int, writers: int) -> dict[str, Any]:
    """``writers`` processes, each learning ``n`` messages into its own server's model (the
    way shards share one database), started together."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    children = [
        ctx.Process(target=_writer_child, args=(address, n, 100 + i + writers * 10, out))
        for i in range(writers)
    ]
    t0 = time.perf_counter()
    for c in children:
        c.start()
    results = [out.get() for _ in children]
    for c in children:
        c.join()
    wall = time.perf_counter() - t0

    async def verify() -> int:
        store = await open_store(address)
        try:
            exact = 0
            for salt, learned, _ in results:
                ns = await store.namespace(f"guild:{salt}", 2)
                stats = await store.stats(ns)
                exact += stats.messages == learned == len({i for i, _ in lines_for(n, salt)})
                assert await store.check(ns, recount=False) == []
            return exact
        finally:
            await store.close()

    exact = asyncio.run(verify())
    return {"writers": writers, "rate": sum(r[1] for r in results) / wall, "exact": exact}


def report(r: dict[str, Any]) -> str:
    def ms(s: float) -> str:
        return f"{s * 1000:.1f} ms"

    rows = [
        ("learning (messages/s)", lambda b: f"{b['learn_rate']:,.0f}"),
        ("learning (tokens/s)", lambda b: f"{b['token_rate']:,.0f}"),
        ("generation, 30 words: median", lambda b: ms(b["gen_p50"])),
        ("generation, 30 words: p99", lambda b: ms(b["gen_p99"])),
        ("words per output (mean)", lambda b: f"{b['words']:.1f}"),
        (
            "generation p99, warm, without / with gc.freeze()",
            lambda b: f"{ms(b['thawed_p99'])} / {ms(b['frozen_p99'])}",
        ),
        (
            "generation, 30 words, learning 10 messages every 5 requests: median / p99",
            lambda b: f"{ms(b['chat_p50'])} / {ms(b['chat_p99'])}",
        ),
        ("explanation: median", lambda b: ms(b["exp_p50"])),
        ("explanation: p99", lambda b: ms(b["exp_p99"])),
        ("bytes per token", lambda b: f"{b['bytes_token']:.0f}"),
        ("bytes per message", lambda b: f"{b['bytes_message']:.0f}"),
        ("resident memory of the bench process", lambda b: f"{b['rss'] / 2**20:.0f} MB"),
    ]
    lite, pg = r["sqlite"], r["postgres"]
    full = r["full_collection"]
    out = [
        f"{r['date']}, {r['machine']}; {lite['messages']:,} messages ({lite['tokens']:,} tokens) "
        f"learned on each, {r['calls']} calls per latency figure.\n",
        "| | SQLite | PostgreSQL |",
        "|---|---|---|",
    ]
    out += [f"| {name} | {f(lite)} | {f(pg)} |" for name, f in rows]
    one, many = r["pg_one"], r["pg_many"]
    out += [
        "",
        f"Concurrent learning on PostgreSQL (each process its own server's model, "
        f"{r['per_writer']:,} messages each): 1 process {one['rate']:,.0f} messages/s; "
        f"{many['writers']} processes {many['rate']:,.0f} messages/s in total "
        f"({many['rate'] / one['rate']:.2f}×); every model exact afterwards "
        f"({many['exact']} of {many['writers']}: no message lost or doubled).",
        "",
        f"The collector: with the bot's modules loaded ({full['objects']:,} objects), a full "
        f"collection takes {full['before'] * 1000:.0f} ms; after gc.freeze(), "
        f"{full['after'] * 1000:.2f} ms. The bot calls gc.freeze() once it is ready.",
        "",
        f"Targets: PostgreSQL learning ≥ half of SQLite's: "
        f"{'met' if pg['learn_rate'] >= lite['learn_rate'] / 2 else 'NOT MET'} "
        f"({pg['learn_rate'] / lite['learn_rate']:.2f}); generation p99 ≤ 20 ms on PostgreSQL: "
        f"{'met' if pg['gen_p99'] <= 0.020 else 'NOT MET'}; ≤ 10 ms on SQLite: "
        f"{'met' if lite['gen_p99'] <= 0.010 else 'NOT MET'}; 4 writers faster than one: "
        f"{'met' if many['rate'] > one['rate'] else 'NOT MET'}.",
    ]
    return "\n".join(out) + "\n"


def full_collection() -> dict[str, float]:
    """How long one full pass of the collector takes in a process holding what the bot
    holds at start (discord.py, matplotlib, the cogs), before and after gc.freeze()."""
    import bot.app  # noqa: F401
    import cogs.explanation  # noqa: F401

    gc.collect()
    objects = len(gc.get_objects())
    t = time.perf_counter()
    gc.collect()
    before = time.perf_counter() - t
    gc.freeze()
    t = time.perf_counter()
    gc.collect()
    after = time.perf_counter() - t
    gc.unfreeze()
    return {"objects": objects, "before": before, "after": after}


def run(args: argparse.Namespace) -> dict[str, Any]:
    cluster = None
    url = args.postgres
    if url is None:
        from tests.postgres import find_bin_dir, start_cluster

        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise SystemExit("PostgreSQL is not installed: pass --postgres URL")
        cluster = start_cluster(bin_dir, durable=True, settings=SERVER_SETTINGS)
        url = cluster.url()
    try:
        lines = lines_for(args.lines)
        r: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
            "calls": args.calls,
            "per_writer": args.per_writer,
        }
        r["full_collection"] = full_collection()
        with tempfile.TemporaryDirectory() as tmp:
            r["sqlite"] = asyncio.run(one_backend(str(Path(tmp) / "b.db"), lines, args.calls))
            print("sqlite", r["sqlite"], flush=True)
        r["postgres"] = asyncio.run(one_backend(url, lines, args.calls))
        print("postgres", r["postgres"], flush=True)
        r["pg_one"] = concurrent(url, args.per_writer, 1)
        r["pg_many"] = concurrent(url, args.per_writer, WRITERS)
        print(r["pg_one"], r["pg_many"], flush=True)
        return r
    finally:
        if cluster is not None:
            cluster.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--postgres", help="an empty PostgreSQL database (default: a throwaway one)")
    p.add_argument("--lines", type=int, default=100_000, help="messages learned on each backend")
    p.add_argument("--calls", type=int, default=300, help="calls per latency figure")
    p.add_argument("--per-writer", type=int, default=20_000, help="messages per writer process")
    p.add_argument("--doc", default=str(ROOT / "docs" / "scaling.md"))
    p.add_argument("--no-doc", action="store_true")
    args = p.parse_args(argv)
    text = report(run(args))
    print(text)
    if not args.no_doc:
        from bench.benchmark import write_doc

        write_doc(Path(args.doc), "backends", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
