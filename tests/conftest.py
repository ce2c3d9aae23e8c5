"""Fixtures of the end-to-end tests (the unit tests need none of them).

* ``fake``: a started fake Discord per test; at teardown every interaction must have been
  acknowledged within 3 s and no payload the bot sent may allow a mention.
* ``world``: one guild with #general, a thread, an admin (Manage Server) and alice.
* ``settings``: the bot's settings with ``MARKOV_DB`` under ``tmp_path``; in a module marked
  ``both_backends``, once on a SQLite file and once on a fresh PostgreSQL database.
* ``e2e``: :class:`tests.e2e.support.E2E` — ``async with e2e.start() as bot`` runs the real
  ``MarkovBot(settings)``; ``await e2e.enable_learning(member, channel=...)`` listens to a
  channel as the admin and opts members in; plus invoke/say/wait_learned/snapshot helpers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.services.settings import Settings, load_settings
from fake_discord import BasicWorld, FakeDiscord, basic_world, started_fake
from tests.e2e.support import DEADLINE, E2E
from tests.postgres import Cluster, find_bin_dir, fresh_address, start_cluster

#: Long enough for the settings' token check; the fake accepts exactly this one.
TOKEN = "fake-bot-token.for-end-to-end-tests"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with started_fake(token=TOKEN) as fake:
        yield fake
        late = [
            (rec.label, rec.response_time)
            for rec in fake.interactions.values()
            if rec.response_time is None or rec.response_time >= DEADLINE
        ]
        assert not late, f"interactions not acknowledged within {DEADLINE} s: {late}"
        fake.assert_no_mentions_allowed()
        assert not fake.pings(), "the bot sent a message that notifies someone"
        assert not fake.spec_violations, "requests Discord's rules refuse: " + "; ".join(
            fake.spec_violations
        )


@pytest.fixture
def world(fake: FakeDiscord) -> BasicWorld:
    return basic_world(fake)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "markov.db"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "e2e_backend" in metafunc.fixturenames:
        marked = metafunc.definition.get_closest_marker("both_backends") is not None
        metafunc.parametrize("e2e_backend", ["sqlite", "postgres"] if marked else ["sqlite"])


@pytest_asyncio.fixture
async def db_address(
    e2e_backend: str, db_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    if e2e_backend == "sqlite":
        yield str(db_path)
        return
    async with fresh_address(e2e_backend, db_path.parent, request) as address:
        yield address


@pytest.fixture
def settings(db_address: str) -> Settings:
    return load_settings({"MARKOV_DB": db_address, "DISCORD_TOKEN": TOKEN}, dotenv_path=None)


@pytest.fixture
def e2e(fake: FakeDiscord, world: BasicWorld, settings: Settings) -> E2E:
    return E2E(fake, world, settings)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """run_bot configures the root logger (as a program should); undo it after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


# ---------------------------------------------------------------------------- both backends


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL server for the session (see tests/postgres.py).

    Without PostgreSQL's programs the PostgreSQL cases are skipped, unless
    MARKOV_REQUIRE_POSTGRES is set (as .ci/run does): then they fail."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        if os.environ.get("MARKOV_REQUIRE_POSTGRES"):
            pytest.fail("MARKOV_REQUIRE_POSTGRES is set but initdb/pg_ctl are not installed")
        pytest.skip("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql)")
    cluster = start_cluster(bin_dir)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture(name="store_address")
async def store_address_fixture(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """Where a test's store lives, on each backend: a fresh SQLite file, or a fresh
    PostgreSQL database."""
    async with fresh_address(backend, tmp_path, request) as address:
        yield address
