"""When the bot may speak unprompted or answer a mention: one timer per kind and channel.

A mention reply must not silence chatter (nor chatter a reply), and an attempt that sent
nothing (an empty model) must not use up the channel's minute: a timer is spent only when
a message went out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CHATTER", "COOLDOWNS", "REPLY", "Cooldowns"]

REPLY = "reply"
CHATTER = "chatter"
#: Seconds between two messages of a kind in one channel.
COOLDOWNS = {REPLY: 5.0, CHATTER: 60.0}


class Cooldowns:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[tuple[str, int], float] = {}

    def ready(self, kind: str, channel: int) -> bool:
        last = self._last.get((kind, channel))
        return last is None or self._clock() - last >= COOLDOWNS[kind]

    def spend(self, kind: str, channel: int) -> None:
        self._last[(kind, channel)] = self._clock()
