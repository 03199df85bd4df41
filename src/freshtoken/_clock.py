"""Time, injectable so that tests of expiry and retry timing run instantly."""

from __future__ import annotations

import time
from time import monotonic as _monotonic
from time import time as _wall
from typing import Protocol


class Clock(Protocol):
    """Wall time for expiries shared between processes, monotonic time for budgets."""

    def time(self) -> float: ...
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...
    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    # The C functions themselves: the cache-hit path reads the clock on every call.
    time = staticmethod(_wall)
    monotonic = staticmethod(_monotonic)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio  # here: 25 ms that the command line's store peek need not pay

        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
