"""End-to-end: ``/markov channel:`` over a big channel leaves the bot free to answer others.

A selection reads up to 20,000 messages and builds a model of them; done on the event
loop, three at once held every other interaction past Discord's 3 seconds. The store is
seeded directly (60,000 messages through its own API, as learning would write them), then
three members ask for channel selections while a fourth asks for ``/markov-stats``.
"""

from __future__ import annotations

import asyncio
import random
import time

from bot.core.tokenize import tokenize
from bot.store import Incoming
from fake_discord import FakeDiscord
from tests.e2e.support import DEADLINE, E2E

CHANNEL_MESSAGES = 60_000
SELECTIONS = 3


def chat_lines(n: int, seed: int = 7) -> list[str]:
    """``n`` chat-like lines over a few thousand words (Zipf-like, like real chat)."""
    rng = random.Random(seed)
    vocabulary = [f"word{i}" for i in range(5_000)]
    weights = [1 / (i + 1) for i in range(len(vocabulary))]
    return [" ".join(rng.choices(vocabulary, weights, k=rng.randint(4, 16))) for _ in range(n)]


async def test_channel_selections_leave_the_bot_free_to_answer(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    members = [e2e.member(f"member{i}") for i in range(SELECTIONS + 1)]
    async with e2e.start() as bot:
        ns = await e2e.ns(bot)
        lines = chat_lines(CHANNEL_MESSAGES)
        for start in range(0, len(lines), 10_000):
            await bot.store.learn(
                ns,
                [
                    Incoming(
                        id=10_000 + i,
                        tokens=tokenize(text),
                        author=w.user_id,
                        channel=w.channel_id,
                        created=1.7e9 + i,
                    )
                    for i, text in enumerate(lines[start : start + 10_000], start)
                ],
            )
        assert (await bot.store.stats(ns)).messages == CHANNEL_MESSAGES

        began = time.perf_counter()
        one = await bot.store.selection(ns, channel=w.channel_id)
        single = time.perf_counter() - began
        assert one.messages == 20_000

        alone = await fake.invoke(w.guild_id, w.channel_id, members[-1], "markov-stats")
        await alone.wait_message()
        assert alone.response_time is not None

        selections = [
            await fake.invoke(w.guild_id, w.channel_id, m, "markov", {"channel": w.channel_id})
            for m in members[:SELECTIONS]
        ]
        for rec in selections:  # deferred: each is building its selection now
            await rec.wait_response()
        shown = asyncio.gather(*(rec.wait_message(timeout=60) for rec in selections))
        # Another member asks for the stats again and again while the selections run: the
        # slowest answer is what a member would see at the worst moment.
        latencies: list[float] = []
        answer: dict = {}
        while not shown.done() or not latencies:
            stats = await fake.invoke(w.guild_id, w.channel_id, members[-1], "markov-stats")
            answer = await stats.wait_message(timeout=30)
            assert stats.response_time is not None
            latencies.append(stats.response_time)
            await asyncio.sleep(0.1)
        for message in await shown:
            assert message["embeds"][0]["footer"]["text"].endswith(" · #general"), message
        latency = max(latencies)
        print(
            f"\nselection timings: one selection {single:.2f} s; /markov-stats answered "
            f"{latency:.2f} s at worst after being sent ({len(latencies)} asked), with "
            f"{SELECTIONS} selections running ({alone.response_time:.2f} s with none)"
        )
        assert latency < DEADLINE, f"/markov-stats took {latency:.2f} s"
        fields = {f["name"]: f["value"] for f in answer["embeds"][0]["fields"]}
        assert fields["Messages"] == f"{CHANNEL_MESSAGES:,}"
