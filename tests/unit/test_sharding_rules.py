"""Which process owns a server, and the sharding settings that decide it."""

from __future__ import annotations

import pytest

from bot.services.servers import owns_guild, shard_of
from bot.services.settings import SettingsError, load_settings
from fake_discord.snowflake import SnowflakeGenerator


def settings(**env: str):  # type: ignore[no-untyped-def]
    return load_settings(env, dotenv_path=None)


def test_a_server_belongs_to_the_shard_of_its_id_timestamp() -> None:
    # Discord's rule: (guild_id >> 22) % shard_count; the low 22 bits never matter.
    assert shard_of(7 << 22, 4) == 3
    assert shard_of((7 << 22) | 0x3FFFFF, 4) == 3
    assert shard_of(8 << 22, 4) == 0
    assert shard_of(123 << 22, 1) == 0


def test_owning_follows_the_shards_a_process_runs() -> None:
    guild = 5 << 22  # shard 1 of 2, shard 2 of 3
    assert owns_guild(guild, 2, [1]) and not owns_guild(guild, 2, [0])
    assert owns_guild(guild, 3, (0, 2)) and not owns_guild(guild, 3, (0, 1))
    assert owns_guild(guild, 2, None)  # all shards


@pytest.mark.parametrize("count", [1, 2, 3, 16])
def test_the_fakes_ids_land_on_the_asked_shard(count: int) -> None:
    ids = SnowflakeGenerator()
    minted = [ids.on_shard(s % count, count) for s in range(3 * count)]
    assert [shard_of(g, count) for g in minted] == [s % count for s in range(3 * count)]
    assert minted == sorted(set(minted))  # still unique and increasing


def test_sharding_settings() -> None:
    assert settings().shard_count is None and settings().shard_ids is None
    assert settings(SHARD_COUNT="4").shard_ids is None
    chosen = settings(SHARD_COUNT="4", SHARD_IDS=" 3, 0 ")
    assert (chosen.shard_count, chosen.shard_ids) == (4, (3, 0))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT must be a whole number from 1 to 100000, not 0."),
        ({"SHARD_COUNT": "two"}, "SHARD_COUNT must be a whole number from 1 to 100000."),
        (
            {"SHARD_IDS": "0"},
            "SHARD_IDS needs SHARD_COUNT (the total number of shards across all processes).",
        ),
        (
            {"SHARD_COUNT": "2", "SHARD_IDS": "2"},
            "SHARD_IDS must be comma-separated shard ids from 0 to 1 (SHARD_COUNT=2), not 2.",
        ),
        (
            {"SHARD_COUNT": "2", "SHARD_IDS": "-1"},
            "SHARD_IDS must be comma-separated shard ids from 0 to 1 (SHARD_COUNT=2), not -1.",
        ),
        (
            {"SHARD_COUNT": "2", "SHARD_IDS": "0,,1"},
            "SHARD_IDS must be comma-separated shard ids from 0 to 1, not '0,,1'.",
        ),
        ({"SHARD_COUNT": "3", "SHARD_IDS": "1,1"}, "SHARD_IDS names shard 1 twice."),
    ],
)
def test_bad_sharding_settings_say_what_is_allowed(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings(**env)
    assert str(caught.value) == message
