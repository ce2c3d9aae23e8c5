"""The per-server service without Discord: consent, learning, forgetting, removal, retention
and backfills, on a real SQLite file. (The same promises end to end: tests/e2e.)"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.tokenize import tokenize
from bot.services.servers import (
    DAY,
    BackfillFailed,
    HistoryPage,
    Servers,
    consents,
    upload_namespace_name,
    upload_owner,
)
from bot.store import Incoming, Store

GUILD, OTHER = 111, 222
GENERAL, RANDOM = 10, 20
ALICE, BOB = 1, 2


def post(
    mid: int, text: str, author: int = ALICE, channel: int = GENERAL, **kw: object
) -> Incoming:
    return Incoming(mid, tokenize(text), author=author, channel=channel, **kw)  # type: ignore[arg-type]


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    store = await Store.open(tmp_path / "servers.db")
    try:
        async with Servers(store, order=2, grace_days=30, clock=Clock()) as s:
            yield s
    finally:
        await store.close()


async def stored(s: Servers, guild: int, ids: list[int]) -> set[int]:
    return await s.store.known_messages(await s.namespace(guild), ids)


@pytest.mark.parametrize(
    ("mode", "choice", "learned"),
    [
        ("opt-in", None, False),
        ("opt-in", "in", True),
        ("opt-in", "out", False),
        ("opt-out", None, True),
        ("opt-out", "in", True),
        ("opt-out", "out", False),
    ],
)
def test_the_consent_rule(mode: str, choice: str | None, learned: bool) -> None:
    assert consents(mode, choice) is learned


def test_upload_names_belong_to_their_server() -> None:
    assert upload_owner(upload_namespace_name(GUILD, "poems")) == GUILD
    assert upload_owner("guild:111") is None
    assert upload_owner("upload:x:poems") is None


async def test_only_listened_channels_and_consenting_members_are_learned(
    servers: Servers,
) -> None:
    assert not await servers.learn(GUILD, post(1, "nobody listens yet"))
    await servers.listen(GUILD, GENERAL, True)
    assert not await servers.learn(GUILD, post(2, "alice has not opted in"))
    await servers.set_member_consent(GUILD, ALICE, "in")
    assert await servers.learn(GUILD, post(3, "alice opted in"))
    assert not await servers.learn(GUILD, post(4, "another channel", channel=RANDOM))
    assert not await servers.learn(GUILD, post(5, "bob did not", author=BOB))
    await servers.set_consent_mode(GUILD, "opt-out")
    assert await servers.learn(GUILD, post(6, "bob in opt-out mode", author=BOB))
    await servers.set_member_consent(GUILD, BOB, "out")
    assert not await servers.learn(GUILD, post(7, "bob opted out", author=BOB))
    await servers.flush()
    assert await stored(servers, GUILD, list(range(1, 8))) == {3, 6}
    assert await servers.may_imitate(GUILD, ALICE) and not await servers.may_imitate(GUILD, BOB)
    status = await servers.member_status(GUILD, BOB)
    assert (status.mode, status.choice, status.learning, status.stored) == (
        "opt-out",
        "out",
        False,
        1,
    )


async def learning(servers: Servers, guild: int = GUILD) -> None:
    await servers.listen(guild, GENERAL, True)
    await servers.listen(guild, RANDOM, True)
    await servers.set_consent_mode(guild, "opt-out")


async def test_edits_deletions_and_deleted_places(servers: Servers) -> None:
    await learning(servers)
    for item in (
        post(1, "one two three"),
        post(2, "in a thread", thread=99),
        post(3, "over in random", channel=RANDOM),
        post(4, "kept as it is"),
    ):
        await servers.learn(GUILD, item)
    await servers.flush()
    await servers.edited(GUILD, 1, post(1, "one edited now"))
    await servers.deleted(GUILD, [4])
    await servers.place_deleted(GUILD, ("thread", 99))
    await servers.place_deleted(GUILD, ("channel", RANDOM))
    await servers.flush()
    ns = await servers.namespace(GUILD)
    assert await stored(servers, GUILD, [1, 2, 3, 4]) == {1}
    assert await servers.store.autocomplete(ns, "edi", 5) == ["edited"]
    assert await servers.store.check(ns) == []
    # The deleted channel's settings went with its messages.
    assert RANDOM not in (await servers.state(GUILD)).config.listened


async def test_forget_member_includes_what_is_still_queued(servers: Servers) -> None:
    await learning(servers)
    await servers.learn(GUILD, post(1, "alice said this"))
    await servers.learn(GUILD, post(2, "bob said that", author=BOB))
    await servers.flush()
    await servers.learn(GUILD, post(3, "alice again, still queued"))
    assert await servers.forget_member(GUILD, ALICE) == 2
    await servers.flush()
    assert await stored(servers, GUILD, [1, 2, 3]) == {2}


async def test_purge_keeps_settings_delete_server_keeps_nothing(servers: Servers) -> None:
    await learning(servers)
    await learning(servers, OTHER)
    await servers.learn(GUILD, post(1, "here"))
    await servers.learn(OTHER, post(2, "there"))
    await servers.flush()
    upload = await servers.store.namespace(upload_namespace_name(GUILD, "poems"), 1)
    await servers.store.learn(upload, [Incoming(9, tokenize("a poem"))])
    assert await servers.uploads(GUILD) == ["poems"]

    assert await servers.purge(GUILD) == 1
    assert await stored(servers, GUILD, [1]) == set()
    assert (await servers.state(GUILD)).config.listened == {GENERAL, RANDOM}

    await servers.learn(GUILD, post(3, "learned again"))
    await servers.flush()
    assert await servers.delete_server(GUILD) == 1
    assert await servers.uploads(GUILD) == []
    state = await servers.state(GUILD)
    assert state.config.listened == frozenset() and state.config.consent == "opt-in"
    assert await stored(servers, OTHER, [2]) == {2}  # the other server is untouched


async def test_removed_servers_are_deleted_after_their_grace_period(servers: Servers) -> None:
    clock = servers.now
    assert isinstance(clock, Clock)
    await learning(servers)
    await learning(servers, OTHER)
    await servers.learn(GUILD, post(1, "here"))
    await servers.learn(OTHER, post(2, "there"))
    await servers.flush()

    await servers.removed(GUILD)
    clock.t += 29 * DAY
    await servers.housekeep(present={OTHER})
    assert await stored(servers, GUILD, [1]) == {1}  # still within its grace period
    clock.t += 2 * DAY
    await servers.housekeep(present={OTHER})
    assert await stored(servers, GUILD, [1]) == set()
    assert await stored(servers, OTHER, [2]) == {2}

    # Removed while the bot was offline: reconcile starts the period; back again cancels it.
    await servers.reconcile(present=set())
    assert await servers.guilds.removed_before(clock.t + 1) == [OTHER]
    await servers.joined(OTHER)
    assert await servers.guilds.removed_before(clock.t + 1) == []


async def test_retention_forgets_old_messages(servers: Servers) -> None:
    clock = servers.now
    assert isinstance(clock, Clock)
    await learning(servers)
    await servers.learn(GUILD, post(1, "ancient", created=clock.t - 10 * DAY))
    await servers.learn(GUILD, post(2, "recent", created=clock.t - 1 * DAY))
    await servers.flush()
    await servers.set_retention(GUILD, 7)
    assert (await servers.state(GUILD)).config.retention_days == 7
    await servers.housekeep(present=None)  # before the bot knows its servers: no reconcile
    assert await stored(servers, GUILD, [1, 2]) == {2}
    assert await servers.guilds.removed_before(clock.t + 1) == []


class History:
    """A channel's history, newest first, read 100 (or fewer) messages at a time."""

    def __init__(self, items: list[Incoming], fail_after: int | None = None) -> None:
        self.items = sorted(items, key=lambda m: -m.id)
        self.fail_after = fail_after
        self.pages = 0

    async def read(self, before: int | None, limit: int) -> HistoryPage | None:
        if self.fail_after is not None and self.pages >= self.fail_after:
            raise BackfillFailed("Missing Access (403)")
        self.pages += 1
        page = [m for m in self.items if before is None or m.id < before][:limit]
        if not page:
            return None
        return HistoryPage(len(page), min(m.id for m in page), page)


async def test_a_backfill_learns_saves_its_position_and_says_why_it_failed(
    servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    await learning(servers)
    await servers.set_consent_mode(GUILD, "opt-in")
    await servers.set_member_consent(GUILD, ALICE, "in")
    items = [post(i, f"message number {i}", author=ALICE if i % 2 else BOB) for i in range(1, 251)]
    history = History(items, fail_after=2)
    reports = []

    async def progress(b: object, rate: float) -> None:
        reports.append(b)

    with caplog.at_level(logging.WARNING, logger="bot.services.servers"):
        b = await servers.start_backfill(GUILD, GENERAL, 1000, history.read, progress)
    assert b.failed == "Missing Access (403)" and not b.done
    assert (b.read, b.learned, b.skipped) == (200, 100, 100)  # two pages; bob not consenting
    assert reports[-1] == b
    assert [r.getMessage() for r in caplog.records] == [
        f"backfill of channel {GENERAL} in guild {GUILD} failed: Missing Access (403)"
    ]
    assert await servers.backfills(GUILD) == [b]
    assert await servers.resumable_backfills() == []  # failed ones wait for an admin

    # Started again by an admin: it goes on below where it stopped, and finishes.
    history.fail_after = None
    b = await servers.start_backfill(GUILD, GENERAL, 1000, history.read)
    assert b.done and b.failed is None
    assert (b.read, b.learned) == (250, 125)
    assert await stored(servers, GUILD, [m.id for m in items]) == {
        m.id for m in items if m.author == ALICE
    }
    assert await servers.store.check(await servers.namespace(GUILD)) == []
