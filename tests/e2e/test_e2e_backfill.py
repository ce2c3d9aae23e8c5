"""End-to-end: /markov-admin backfill — progress, counts, and resuming after a restart."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from fake_discord import (
    BOT_USER_ID,
    PERM_VIEW_CHANNEL,
    BasicWorld,
    FakeDiscord,
    InteractionRecord,
)
from tests.e2e.support import E2E, cached, eventually, ids_of

pytestmark = pytest.mark.both_backends  # the same behaviour on SQLite and PostgreSQL


def seed(fake: FakeDiscord, channel: int, alice: int, bob: int, n: int) -> list[dict]:
    """``n`` past messages, oldest first; every tenth is bob's (who never consented)."""
    return fake.seed_history(
        channel,
        [
            ((bob if i % 10 == 0 else alice), f"history message number {i} says hello")
            for i in range(n)
        ],
    )


async def start_backfill(fake: FakeDiscord, w: BasicWorld, limit: int) -> InteractionRecord:
    """The admin runs ``/markov-admin backfill`` on the world's channel."""
    return await fake.invoke(
        w.guild_id,
        w.channel_id,
        w.admin_id,
        "markov-admin backfill",
        {"channel": w.channel_id, "limit": limit},
    )


async def test_backfill_reports_progress_and_learns_the_newest_messages(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    bob = e2e.member("bob")
    history = seed(fake, w.channel_id, w.user_id, bob, 250)
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        rec = await start_backfill(fake, w, 200)
        await rec.wait_response()
        e2e.check_deadline(rec)
        assert rec.ephemeral

        done = f"Backfill of <#{w.channel_id}> done 200 read, 180 learned, 20 skipped"
        await fake.wait_for(lambda: rec.content.startswith(done), what="the final report")
        edits = [e.data["content"] for e in rec.edits if e.original]
        assert edits[0].startswith(f"Backfill of <#{w.channel_id}> reading… 0 read, 0 learned")
        assert any(
            e.startswith(f"Backfill of <#{w.channel_id}> reading… 100 read, 90 learned, 10 skipped")
            for e in edits[1:-1]
        ), edits
        assert re.fullmatch(rf"{re.escape(done)} \(\d+ messages/s\)\.", edits[-1])
        assert rec.ephemeral

        newest = history[-200:]
        alices = [m for m in newest if int(m["author"]["id"]) == w.user_id]
        stored = await e2e.known(bot, ids_of(history))
        assert stored == set(ids_of(alices))
        pages = fake.requests_matching("GET", rf"/channels/{w.channel_id}/messages")
        # The backfill's pages (newest first); a start-up catch-up that comes late reads
        # what followed the newest learned message (``after``).
        pages = [p for p in pages if "after" not in p.query]
        assert [p.query.get("limit") for p in pages] == ["100", "100"]
        await e2e.assert_model(bot, [m["content"] for m in alices])

        # Backfilled messages were never in the bot's cache; deleting one still forgets it.
        victim = alices[-1]
        assert not cached(bot, victim["id"])
        await fake.delete_message(victim["id"])
        await e2e.wait_forgotten(bot, [victim])
        await e2e.assert_model(bot, [m["content"] for m in alices[:-1]])

        # A second run over the same history learns nothing twice.
        again = await start_backfill(fake, w, 250)
        await fake.wait_for(lambda: " done " in again.content, what="the second backfill")
        # The 50 older messages hold 45 of alice's; the 199 newer ones are known already.
        assert "done 249 read, 45 learned, 204 skipped" in again.content
        stats = await bot.store.stats(await e2e.ns(bot))
        alice_all = [m for m in history if int(m["author"]["id"]) == w.user_id]
        assert stats.messages == len(alice_all) - 1


async def test_backfill_needs_a_listened_channel(e2e: E2E, fake: FakeDiscord) -> None:
    w = e2e.world
    seed(fake, w.channel_id, w.user_id, w.user_id, 5)
    async with e2e.start() as bot:
        rec = await e2e.invoke(
            w.admin_id, "markov-admin backfill", {"channel": w.channel_id, "limit": 10}
        )
        assert rec.ephemeral
        assert rec.content == (
            f"I'm not listening in <#{w.channel_id}>: run `/markov-admin listen` first."
        )
        assert fake.requests_matching("GET", rf"/channels/{w.channel_id}/messages") == []
        assert (await bot.store.stats(await e2e.ns(bot))).messages == 0


async def test_backfill_resumes_after_a_restart_without_learning_twice(
    e2e: E2E, fake: FakeDiscord
) -> None:
    w = e2e.world
    history = fake.seed_history(
        w.channel_id, [(w.user_id, f"old words number {i}") for i in range(250)]
    )
    history_path = rf"/channels/{w.channel_id}/messages"
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        rec = await start_backfill(fake, w, 250)
        await rec.wait_response()
        # The first page is answered; the second one is held up by a long rate limit,
        # and the bot is stopped while it waits.
        await fake.wait_for_request("GET", history_path)
        rule = fake.rate_limit_next("GET", history_path, retry_after=30)
        await fake.wait_for(lambda: rule.hits == 1, what="the second page to be rate limited")
        saved = await bot.servers.guilds.backfill(w.guild_id, w.channel_id)
        assert saved is not None and not saved.done
        assert (saved.read, saved.learned, saved.remaining) == (100, 100, 150)
        assert saved.before == min(ids_of(history[-100:]))
        stopped_at = len(fake.requests)

    async with e2e.start() as bot:

        async def finished() -> bool:
            b = await bot.servers.guilds.backfill(w.guild_id, w.channel_id)
            return b is not None and b.done

        await eventually(finished, what="the resumed backfill to finish")
        b = await bot.servers.guilds.backfill(w.guild_id, w.channel_id)
        assert b is not None
        assert (b.read, b.learned, b.skipped, b.remaining) == (250, 250, 0, 0)

        # It went on below the saved position: no page was read twice.
        resumed = [
            r
            for r in fake.requests[stopped_at:]
            if r.method == "GET" and re.fullmatch(history_path, r.path) and "after" not in r.query
        ]
        assert resumed and resumed[0].query.get("before") == str(saved.before)
        assert all(int(r.query["before"]) <= saved.before for r in resumed)

        stats = await bot.store.stats(await e2e.ns(bot))
        assert stats.messages == 250 == len(set(ids_of(history)))
        assert await e2e.known(bot, ids_of(history)) == set(ids_of(history))
        await e2e.assert_model(bot, [m["content"] for m in history])


async def test_a_backfill_without_access_fails_visibly_and_waits_for_an_admin(
    e2e: E2E, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    """Discord answers 403 Missing Access for the history of a channel the bot may not
    see: the admin's message says so, the status shows it, it is logged once with the
    ids, and it is not tried again on the next start, only when an admin starts it again."""
    w = e2e.world
    history = seed(fake, w.channel_id, w.user_id, w.user_id, 30)
    history_path = rf"/channels/{w.channel_id}/messages"
    fake.set_overwrite(w.channel_id, BOT_USER_ID, deny=PERM_VIEW_CHANNEL, member=True)
    async with e2e.start() as bot:
        await e2e.enable_learning(w.user_id)
        with caplog.at_level(logging.INFO):
            rec = await start_backfill(fake, w, 100)
            await rec.wait_response()
            await fake.wait_for(lambda: "failed" in rec.content, what="the failure report")
        (refused,) = [
            r for r in fake.requests_matching("GET", history_path) if "after" not in r.query
        ]
        assert refused.status == 403
        assert rec.content == (
            f"Backfill of <#{w.channel_id}> failed: Missing Access (403) (I need View Channel "
            "and Read Message History there). 0 read, 0 learned, 0 skipped (0 messages/s). "
            "Fix that, then run `/markov-admin backfill` again to go on."
        )
        logged = [r for r in caplog.records if "backfill" in r.getMessage()]
        assert [(r.levelno, r.getMessage()) for r in logged] == [
            (
                logging.WARNING,
                f"backfill of channel {w.channel_id} in guild {w.guild_id} failed: "
                "Missing Access (403) (I need View Channel and Read Message History there)",
            )
        ]
        saved = await bot.servers.guilds.backfill(w.guild_id, w.channel_id)
        assert saved is not None and not saved.done
        assert saved.failed is not None and saved.failed.startswith("Missing Access (403)")

        status = await e2e.invoke(w.admin_id, "markov-admin status")
        assert f"**Backfills:**\n- <#{w.channel_id}> failed: Missing Access (403)" in (
            status.content
        )
        before_restart = len(fake.requests)

    async with e2e.start() as bot:
        await asyncio.sleep(0.5)  # time a resumed backfill would have had to ask
        again = [
            r
            for r in fake.requests[before_restart:]
            if r.method == "GET" and re.fullmatch(history_path, r.path) and "after" not in r.query
        ]
        assert again == []
        saved = await bot.servers.guilds.backfill(w.guild_id, w.channel_id)
        assert saved is not None and saved.failed is not None

        # Access given, the admin starts it again: it runs and the failure is cleared.
        fake.set_overwrite(w.channel_id, BOT_USER_ID, allow=PERM_VIEW_CHANNEL, member=True)
        rec = await start_backfill(fake, w, 100)
        await fake.wait_for(lambda: " done " in rec.content, what="the second backfill")
        assert "done 30 read, 30 learned, 0 skipped" in rec.content
        saved = await bot.servers.guilds.backfill(w.guild_id, w.channel_id)
        assert saved is not None and saved.done and saved.failed is None
        assert await e2e.known(bot, ids_of(history)) == set(ids_of(history))
