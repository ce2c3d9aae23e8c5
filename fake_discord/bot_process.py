"""Run the real :class:`bot.app.MarkovBot` in its own process against a fake Discord.

``tests/test_crash.py`` starts this module as a child process so it can SIGKILL the bot
mid-operation; ``bench/load.py`` starts it so the bot has an event loop (and a CPU core)
of its own while the fake Discord, in the parent process, generates the load::

    python -m fake_discord.bot_process --api http://127.0.0.1:PORT/api/v10 \
        --gateway ws://127.0.0.1:PORT/ --db /tmp/markov.db --token TOKEN \
        [--shard-count 2 --shard-ids 0] [--lag-out lag.json] [--log-level INFO]

The bot runs through ``bot.app._run``, the code path of ``markov-bot run``: SIGTERM or
SIGINT close it cleanly (queued messages are flushed, the database is closed).  Only the
two discord.py URLs are changed, exactly as ``FakeDiscord.install()`` does in-process.

``--lag-out``: a task in the bot's event loop sleeps 10 ms at a time and records how late
it wakes up (the loop's lag); the samples are written as JSON on a clean exit.

:class:`BotProcess` is the parent's side: it starts this module, waits for the bot to be
ready, stops or kills it, and reads its log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import discord
import discord.gateway
import discord.http
import yarl

from bot.app import MarkovBot, _run, open_servers
from bot.services.servers import Servers
from bot.services.settings import Settings, load_settings

if TYPE_CHECKING:
    from .server import FakeDiscord

LAG_INTERVAL = 0.010
READY_LINE = "crash_child: ready"
REPO = Path(__file__).resolve().parents[1]


class BotProcess:
    """The real bot in a child process, connected to ``fake``; logs go to files under
    ``logs`` (``NAME-1.log`` for the first start, ``NAME-2.log`` after a restart...).

    ``args`` are extra arguments of this module (``--shard-count 2 --shard-ids 1``).
    """

    def __init__(
        self,
        fake: FakeDiscord,
        db: Path | str,
        logs: Path,
        *,
        name: str = "bot",
        args: Sequence[str] = (),
    ) -> None:
        self.fake = fake
        self.db = db
        self.logs = logs
        self.name = name
        self.args = list(args)
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        # Gateway sessions this process opened (processes start one at a time, so the
        # connections made between a start and its ready line are its own).
        self.sessions: set[str] = set()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self, n: int | None = None) -> str:
        path = self.logs / f"{self.name}-{self.starts if n is None else n}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def start(self) -> None:
        """Start a fresh process and wait (up to 30 s) for its ``on_ready``."""
        assert self.proc is None or self.proc.returncode is not None
        self.starts += 1
        first = len(self.fake.gateway.connections)
        with (self.logs / f"{self.name}-{self.starts}.log").open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "fake_discord.bot_process",
                "--api",
                self.fake.api_url,
                "--gateway",
                self.fake.gateway_url,
                "--db",
                str(self.db),
                "--token",
                self.fake.token,
                *self.args,
                cwd=REPO,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while READY_LINE not in self.log():
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"the bot did not become ready:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.02)
        connections = self.fake.gateway.connections[first:]
        self.sessions = {c.session_id for c in connections if c.session_id is not None}

    async def kill(self) -> None:
        """SIGKILL it now: no flush, no goodbye to the gateway."""
        assert self.proc is not None and self.proc.returncode is None
        self.proc.kill()
        await self.wait_killed()

    async def wait_killed(self) -> None:
        """Wait for a SIGKILL (sent by :meth:`kill` or by the test)."""
        assert self.proc is not None
        await asyncio.wait_for(self.proc.wait(), 30)
        assert self.proc.returncode == -signal.SIGKILL, self.proc.returncode
        await self._forget_dead_sessions()

    async def stop(self) -> None:
        """SIGTERM: the clean shutdown of ``markov-bot run`` (flushes, closes the database)."""
        assert self.proc is not None and self.proc.returncode is None
        self.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.proc.wait(), 30)
        assert self.proc.returncode == 0, self.log()[-3000:]
        await self._forget_dead_sessions()

    async def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def _forget_dead_sessions(self) -> None:
        """Discord expires a dead session; the fake would buffer events for it forever.
        Only this process's sessions, once the fake has seen their sockets close."""
        mine = [self.fake.gateway.sessions[s] for s in self.sessions]
        await self.fake.wait_for(
            lambda: all(s.ws is None for s in mine), 10, "the dead bot's sockets to close"
        )
        for session in mine:
            session.invalidated = True

    def assert_clean_logs(self) -> None:
        for n in range(1, self.starts + 1):
            text = self.log(n)
            bad = [ln for ln in text.splitlines() if "Traceback" in ln or " ERROR " in ln]
            assert not bad, f"{self.name} run {n} logged errors:\n{text[-4000:]}"


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
    env = {"MARKOV_DB": args.db, "DISCORD_TOKEN": args.token, "LOG_LEVEL": args.log_level}
    if args.shard_count is not None:
        env["SHARD_COUNT"] = args.shard_count
    if args.shard_ids is not None:
        env["SHARD_IDS"] = args.shard_ids
    settings = load_settings(env, dotenv_path=None)
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
    parser.add_argument("--db", required=True, help="the SQLite file or PostgreSQL URL (MARKOV_DB)")
    parser.add_argument("--token", required=True, help="the token the fake accepts")
    parser.add_argument("--shard-count", help="SHARD_COUNT (default: what the fake recommends)")
    parser.add_argument("--shard-ids", help="SHARD_IDS, comma-separated (default: all)")
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
