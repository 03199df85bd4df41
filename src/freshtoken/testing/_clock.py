"""A clock that tests move by hand: sleeping advances it instantly and is recorded."""

from __future__ import annotations

import threading
from collections.abc import Callable


class FakeClock:
    """Implements freshtoken's Clock. `on_sleep` runs after each sleep (to let time 'pass'
    on the server side, for example by lifting a rate limit)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.mono = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], None] | None = None
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
            self.mono += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
