"""Background tasks that cannot fail in silence.

asyncio keeps only a weak reference to a task, so one nobody holds may be collected
mid-run, and an exception in a task nobody awaits surfaces, if ever, as "Task exception
was never retrieved" at garbage collection. Every background job of the bot starts here:
the task is held until it finishes, and a failure is logged with the task's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["create_task", "logged_failure", "running"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_running: set[asyncio.Task[Any]] = set()


def create_task(coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    """Start ``coro`` as a task named ``name`` on the running loop; it is referenced
    until done, and an exception ending it is logged (a cancellation is not a failure)."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def running() -> frozenset[asyncio.Task[Any]]:
    """The background tasks not finished yet (for tests and shutdown)."""
    return frozenset(_running)


def _finished(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if task.cancelled():
        return
    exc = task.exception()  # retrieved here, so asyncio does not complain about it later
    if exc is not None:
        log.error("%s failed", task.get_name(), exc_info=exc)


@contextlib.contextmanager
def logged_failure(name: str, then: str = "") -> Iterator[None]:
    """Log an exception of the block as ``"<name> failed<then>"`` and go on: for one run
    of a periodic job (an exception escaping a ``tasks.loop`` would end the loop for good)."""
    try:
        yield
    except Exception:
        log.exception("%s failed%s", name, then)
