"""bot.tasks: background tasks are held until done; failures are logged by name."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from bot.tasks import create_task, logged_failure, running


async def test_a_failing_task_is_logged_with_its_name(caplog: pytest.LogCaptureFixture) -> None:
    async def fail() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("the disk caught fire")

    with caplog.at_level(logging.ERROR, logger="bot.tasks"):
        task = create_task(fail(), name="backfill of channel 42")
        await asyncio.wait([task])
        await asyncio.sleep(0)  # done callbacks run on the next loop turn
    failures = [r for r in caplog.records if r.name == "bot.tasks"]
    assert [r.getMessage() for r in failures] == ["backfill of channel 42 failed"]
    assert failures[0].levelno == logging.ERROR
    assert failures[0].exc_info is not None
    assert str(failures[0].exc_info[1]) == "the disk caught fire"
    assert task not in running()


async def test_the_task_is_referenced_until_done() -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def work() -> None:
        await release.wait()
        finished.append("done")

    task = create_task(work(), name="held")
    name = task.get_name()
    del task
    gc.collect()  # only the helper holds it now; asyncio itself keeps a weak reference
    assert [t.get_name() for t in running() if t.get_name() == name] == [name]
    release.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert finished == ["done"]
    assert all(t.get_name() != name for t in running())


async def test_cancellation_is_not_logged_as_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="bot.tasks"):
        task = create_task(asyncio.sleep(60), name="catch-up")
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
    assert [r for r in caplog.records if r.name == "bot.tasks"] == []
    assert task not in running()


async def test_the_result_is_returned_and_nothing_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def answer() -> int:
        return 42

    with caplog.at_level(logging.DEBUG, logger="bot.tasks"):
        assert await create_task(answer(), name="answer") == 42
        await asyncio.sleep(0)
    assert [r for r in caplog.records if r.name == "bot.tasks"] == []


def test_a_failed_run_of_a_periodic_job_is_logged_and_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    periodic = logged_failure("housekeeping", "; again")
    with caplog.at_level(logging.ERROR, logger="bot.tasks"), periodic:
        raise OSError("database is locked")
    (record,) = [r for r in caplog.records if r.name == "bot.tasks"]
    assert record.getMessage() == "housekeeping failed; again"
    assert record.exc_info is not None and isinstance(record.exc_info[1], OSError)
