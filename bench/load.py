"""Load test: the real bot under a busy server, through the fake Discord.

    python bench/load.py                      # 30 s at 1,000 messages/s and 10 /markov per s
    python bench/load.py --seconds 5 --rate 200

What runs where.  The fake Discord (gateway + REST on 127.0.0.1, ``fake_discord``)
and the load generator run in *this* process; the real :class:`bot.app.MarkovBot` runs in a
child process (``fake_discord/bot_process.py``) with its own event loop, exactly as
``markov-bot run`` would, and reaches the fake over loopback sockets.  So the cost of
building, encoding and sending 1,000 gateway events a second is not charged to the bot's
event loop, and the bot's loop lag is measured inside the bot's process.  (Running both in
one loop would make every number below a mix of the bot's and the fake's work.)

Steps: one guild with a listened #general; an admin switches learning on through the
slash commands (``/markov-admin listen``, ``/markov-admin consent opt-out``) like a user
would, so every member is learned.  A warm-up of ``--warmup`` messages gives ``/markov``
a model.  Then, for ``--seconds``: ``--rate`` messages a second from ``--members``
members (lines of ``corpora/ubuntu_irc_chat.txt``) while ``/markov`` is invoked
``--invoke-rate`` times a second (round-robin over the members, so the per-member
cooldown of 5 per 10 s is never hit).  Afterwards the bot is stopped with SIGTERM, which
flushes what it queued, and the messages learned are counted through the store.

Exits non-zero if a message was lost, an interaction was not acknowledged within 3 s,
or the bot logged an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from bot.core.tokenize import tokenize  # noqa: E402
from bot.store import Store  # noqa: E402
from fake_discord import FakeDiscord, InteractionRecord  # noqa: E402

TOKEN = "fake-bot-token.for-the-load-test"
CORPUS = REPO / "corpora" / "ubuntu_irc_chat.txt"
DEADLINE = 3.0


@dataclass
class Results:
    warmup: int = 0
    sent: int = 0
    send_seconds: float = 0.0
    sends_late: float = 0.0  # how far the sender fell behind its schedule at the end (s)
    interactions: list[InteractionRecord] = field(default_factory=list)
    complete: dict[int, float] = field(default_factory=dict)  # interaction id → s to message
    kinds: dict[str, int] = field(default_factory=dict)
    fake_lag_ms: list[float] = field(default_factory=list)
    drain_seconds: float | None = None


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def chat_lines() -> list[str]:
    """Corpus lines the bot would learn (at least one word; within Discord's 2,000)."""
    lines = [t.strip() for t in CORPUS.read_text(encoding="utf-8").splitlines()]
    return [t for t in lines if t and len(t) <= 2000 and tokenize(t)]


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def learned_count(db: Path, namespace: str) -> int:
    """Messages stored for a namespace (a plain read; the bot may be writing meanwhile)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute(
            "SELECT COUNT(*) FROM messages m JOIN namespaces n ON n.id = m.ns WHERE n.name = ?",
            (namespace,),
        ).fetchone()
        return int(row[0])
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        con.close()


async def wait_learned(db: Path, namespace: str, target: int, within: float) -> float | None:
    """Seconds until ``target`` messages are stored, or None after ``within`` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await asyncio.to_thread(learned_count, db, namespace) >= target:
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    return None


async def loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.01)
        samples.append(max(0.0, (loop.time() - before - 0.01) * 1000))


async def send_messages(
    fake: FakeDiscord,
    channel: int,
    members: list[int],
    lines: list[str],
    rate: float,
    seconds: float,
    rng: random.Random,
    results: Results,
    *,
    warmup: bool = False,
    count: int | None = None,
) -> None:
    """Post messages on a fixed schedule (``rate`` a second) for ``seconds`` or ``count``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    total = count if count is not None else int(rate * seconds)
    while sent < total:
        due = min(total, int((loop.time() - start) * rate) + 1)
        while sent < due:
            await fake.send_message(channel, rng.choice(members), rng.choice(lines))
            sent += 1
            if sent % 10 == 0:
                await asyncio.sleep(0)  # let the fake serve the bot's REST calls
        next_at = start + sent / rate
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    if warmup:
        results.warmup += sent
    else:
        results.sent += sent
        results.send_seconds = loop.time() - start
        results.sends_late = max(0.0, results.send_seconds - seconds)


async def invoke_markov(
    fake: FakeDiscord,
    guild: int,
    channel: int,
    members: list[int],
    rate: float,
    seconds: float,
    rng: random.Random,
    results: Results,
) -> None:
    """Invoke /markov ``rate`` times a second; each answer is awaited in its own task."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    waiters: list[asyncio.Task[None]] = []

    async def completion(rec: InteractionRecord) -> None:
        try:
            await rec.wait_message(timeout=30)
        except AssertionError:
            results.kinds["no message"] = results.kinds.get("no message", 0) + 1
            return
        results.complete[rec.id] = loop.time() - rec.dispatched_at
        kind = "generated text" if rec.embeds else rec.content.split(".")[0][:50]
        results.kinds[kind] = results.kinds.get(kind, 0) + 1

    n = 0
    total = int(rate * seconds)
    while n < total:
        await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
        member = members[n % len(members)]
        options = {"temp": round(rng.uniform(0.2, 1.5), 2), "seed": rng.randrange(2**31)}
        rec = await fake.invoke(guild, channel, member, "markov", options)
        results.interactions.append(rec)
        waiters.append(asyncio.create_task(completion(rec)))
        n += 1
    await asyncio.gather(*waiters)


async def admin_command(
    fake: FakeDiscord, guild: int, channel: int, admin: int, name: str, options: dict[str, Any]
) -> str:
    rec = await fake.invoke(guild, channel, admin, name, options)
    await rec.wait_message(timeout=DEADLINE)
    return rec.content


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    lines = chat_lines()
    tmp = Path(tempfile.mkdtemp(prefix="markov-load-"))
    db = tmp / "markov.db"
    lag_file = tmp / "lag.json"
    results = Results()

    fake = FakeDiscord(token=TOKEN)
    await fake.start()
    guild = fake.add_guild("Load Test")
    gid = int(guild["id"])
    channel = int(fake.add_text_channel(gid, "general")["id"])
    admin = int(fake.add_user("admin")["id"])
    fake.add_member(gid, admin)
    fake.make_admin(gid, admin)
    members = []
    for i in range(args.members):
        user = fake.add_user(f"member{i:02d}")
        fake.add_member(gid, user["id"])
        members.append(int(user["id"]))

    out = (tmp / "bot.log").open("wb")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fake_discord.bot_process",
        "--api",
        fake.api_url,
        "--gateway",
        fake.gateway_url,
        "--db",
        str(db),
        "--token",
        TOKEN,
        "--lag-out",
        str(lag_file),
        "--log-level",
        "INFO",
        cwd=REPO,
        stdout=out,
        stderr=asyncio.subprocess.STDOUT,
    )
    proc = psutil.Process(child.pid)
    status = 0
    try:
        await fake.wait_for(lambda: fake.gateway.connected, timeout=60, what="the bot to connect")
        await asyncio.sleep(0.5)  # on_ready: the catch-up of listened channels (none yet)
        said = await admin_command(
            fake, gid, channel, admin, "markov-admin listen", {"channel": channel}
        )
        assert said.startswith("Listening in"), said
        said = await admin_command(
            fake, gid, channel, admin, "markov-admin consent", {"mode": "opt-out"}
        )
        assert "opt-out" in said, said

        namespace = f"guild:{gid}"
        await send_messages(
            fake,
            channel,
            members,
            lines,
            args.rate,
            0,
            rng,
            results,
            warmup=True,
            count=args.warmup,
        )
        if await wait_learned(db, namespace, results.warmup, 30) is None:
            raise SystemExit("the warm-up messages were not learned within 30 s")

        print(
            f"load: {args.seconds:g} s, {args.rate:g} messages/s from {args.members} members, "
            f"/markov {args.invoke_rate:g}/s (bot pid {child.pid}, database {db})",
            file=sys.stderr,
        )
        cpu_before = proc.cpu_times()
        wall_before = time.monotonic()
        window = [wall_before, wall_before]
        stop = asyncio.Event()
        lag_task = asyncio.create_task(loop_lag(results.fake_lag_ms, stop))
        await asyncio.gather(
            send_messages(fake, channel, members, lines, args.rate, args.seconds, rng, results),
            invoke_markov(
                fake, gid, channel, members, args.invoke_rate, args.seconds, rng, results
            ),
        )
        stop.set()
        await lag_task
        cpu_after = proc.cpu_times()
        window[1] = time.monotonic()
        wall = window[1] - wall_before
        results.drain_seconds = await wait_learned(db, namespace, results.warmup + results.sent, 60)
        bot_cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / wall
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)  # clean stop: flushes the learning queue
            try:
                await asyncio.wait_for(child.wait(), 60)
            except TimeoutError:
                child.kill()
                await child.wait()
                status = 1
        out.close()
        await fake.stop()

    store = await Store.open(db)
    try:
        ns = await store.namespace(namespace)
        learned = (await store.stats(ns)).messages
        stored, expected = await store.recount(ns)
    finally:
        await store.close()
    consistent = stored == expected

    samples = json.loads(lag_file.read_text())["samples"] if lag_file.exists() else []
    lag = [ms for at, ms in samples if window[0] <= at <= window[1]]  # the load window only
    first = [r.response_time for r in results.interactions if r.response_time is not None]
    unanswered = [r for r in results.interactions if r.response_time is None]
    late = [t for t in first if t >= DEADLINE]
    done = list(results.complete.values())
    log_text = (tmp / "bot.log").read_text(errors="replace")
    errors = [ln for ln in log_text.splitlines() if " ERROR " in ln or "Traceback" in ln]
    total_sent = results.warmup + results.sent
    achieved = results.sent / max(results.send_seconds, 1e-9)
    fake_lag = results.fake_lag_ms

    ms = 1000.0
    rows = [
        (
            "messages sent",
            f"{total_sent:,} ({results.warmup:,} warm-up + {results.sent:,} "
            f"in {results.send_seconds:.1f} s = {achieved:,.0f}/s)",
        ),
        (
            "messages learned (store, after the final flush)",
            f"{learned:,}"
            + (" = sent" if learned == total_sent else f" ≠ sent ({total_sent - learned:+,} lost)"),
        ),
        (
            "learning backlog drained after sending stopped",
            "—" if results.drain_seconds is None else f"{results.drain_seconds:.1f} s",
        ),
        ("model consistent (recount stored == expected)", "yes" if consistent else "NO"),
        (
            "/markov invoked",
            f"{len(results.interactions):,} "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(results.kinds.items()))})",
        ),
        (
            "initial response p50 / p99 / max",
            f"{percentile(first, 50) * ms:.0f} / {percentile(first, 99) * ms:.0f} / "
            f"{max(first, default=float('nan')) * ms:.0f} ms",
        ),
        ("initial responses ≥ 3 s / unanswered", f"{len(late)} / {len(unanswered)}"),
        (
            "finished message p50 / p99 / max",
            f"{percentile(done, 50) * ms:.0f} / {percentile(done, 99) * ms:.0f} / "
            f"{max(done, default=float('nan')) * ms:.0f} ms",
        ),
        (
            "bot event-loop lag p50 / p99 / max (10 ms sleeps)",
            f"{percentile(lag, 50):.1f} / {percentile(lag, 99):.1f} / {max(lag, default=0):.1f} ms "
            f"({len(lag):,} samples)",
        ),
        ("bot process CPU during the load", f"{bot_cpu:.0%} of one core"),
        (
            "fake Discord loop lag p50 / p99 (load generator)",
            f"{percentile(fake_lag, 50):.1f} / {percentile(fake_lag, 99):.1f} ms",
        ),
        ("errors in the bot's log", str(len(errors))),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"| {'measure':<{width}} | result |")
    print(f"|{'-' * (width + 2)}|--------|")
    for k, v in rows:
        print(f"| {k:<{width}} | {v} |")
    print()
    print(
        f"{datetime.date.today().isoformat()} · {cpu_model()} · {os.cpu_count()} cores · "
        f"Python {platform.python_version()} · bot in its own process (own event loop); the "
        "fake Discord and the load generator share the parent process's loop."
    )
    for line in errors[:20]:
        print("bot log:", line, file=sys.stderr)
    if learned != total_sent or late or unanswered or errors or not consistent:
        status = 1
    if status == 0 and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {tmp} (database, lag samples, bot.log) for inspection", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the load (30)")
    parser.add_argument("--rate", type=float, default=1000.0, help="messages a second (1000)")
    parser.add_argument("--invoke-rate", type=float, default=10.0, help="/markov a second (10)")
    parser.add_argument("--members", type=int, default=40, help="members posting (40)")
    parser.add_argument("--warmup", type=int, default=500, help="messages before the load (500)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the load")
    parser.add_argument("--keep", action="store_true", help="keep the database and bot log")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0 or args.invoke_rate <= 0 or args.members < 1:
        parser.error("--seconds, --rate, --invoke-rate and --members must be positive")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
