"""Run the real :class:`bot.app.MarkovBot` in its own process against a fake Discord.

``tests/test_crash.py`` starts this module as a child process so it can SIGKILL the bot
mid-operation; ``bench/load.py`` starts it so the bot has an event loop (and a CPU core)
of its own while the fake Discord, in the parent process, generates the load::

    python -m fake_discord.bot_process --api http://127.0.0.1:PORT/api/v10 \
        --gateway ws://127.0.0.1:PORT/ --db /tmp/markov.db --token TOKEN \
        [--lag-out lag.json] [--log-level INFO]

The bot runs through ``bot.app._run``, the code path of ``markov-bot run``: SIGTERM or
SIGINT close it cleanly (queued messages are flushed, the database is closed).  Only the
two discord.py URLs are changed, exactly as ``FakeDiscord.install()`` does in-process.

``--lag-out``: a task in the bot's event loop sleeps 10 ms at a time and records how late
it wakes up (the loop's lag); the samples are written as JSON on a clean exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from pathlib import Path

import discord
import discord.gateway
import discord.http
import yarl

from bot.app import MarkovBot, _run, open_servers
from bot.services.servers import Servers
from bot.services.settings import Settings, load_settings

LAG_INTERVAL = 0.010
READY_LINE = "crash_child: ready"


async def lag_probe(samples: list[tuple[float, float]]) -> None:
    """Sleep 10 ms in a loop; each overshoot is one sample of the loop's lag.

    Samples are ``(time.monotonic(), lag in ms)``: the monotonic clock is the same in every
    process of the machine, so the parent can keep only the samples of its load window.
    """
    while True:
        before = time.monotonic()
        await asyncio.sleep(LAG_INTERVAL)
        now = time.monotonic()
        samples.append((now, max(0.0, (now - before - LAG_INTERVAL) * 1000.0)))


async def main(args: argparse.Namespace) -> list[tuple[float, float]]:
    """Run the bot until SIGTERM/SIGINT; returns the lag samples (empty without --lag-out)."""
    discord.http.Route.BASE = args.api
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(args.gateway)
    settings = load_settings(
        {"MARKOV_DB": args.db, "DISCORD_TOKEN": args.token, "LOG_LEVEL": args.log_level},
        dotenv_path=None,
    )
    async with open_servers(settings) as servers:
        return await _serve(args, settings, servers)


async def _serve(
    args: argparse.Namespace, settings: Settings, servers: Servers
) -> list[tuple[float, float]]:
    bot = MarkovBot(settings, servers)
    # discord.py waits this long after the last GUILD_CREATE before on_ready (default 2 s);
    # the fake sends every guild at once, so a short wait is enough (as in running_bot).
    bot._connection.guild_ready_timeout = 0.2

    async def announce_ready() -> None:
        print(READY_LINE, flush=True)  # the parent waits for this line

    bot.add_listener(announce_ready, "on_ready")

    samples: list[tuple[float, float]] = []
    probe = asyncio.create_task(lag_probe(samples)) if args.lag_out else None
    try:
        await _run(bot, args.token, sync_only=False)
    finally:
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
    return samples


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True, help="the fake's REST base (Route.BASE)")
    parser.add_argument("--gateway", required=True, help="the fake's gateway URL")
    parser.add_argument("--db", required=True, help="the SQLite file (MARKOV_DB)")
    parser.add_argument("--token", required=True, help="the token the fake accepts")
    parser.add_argument("--lag-out", help="write event-loop lag samples (JSON) here on exit")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    discord.utils.setup_logging(level=getattr(logging, arguments.log_level.upper()), root=True)
    lag = asyncio.run(main(arguments))
    if arguments.lag_out:
        Path(arguments.lag_out).write_text(json.dumps({"samples": lag}))
    sys.exit(0)
