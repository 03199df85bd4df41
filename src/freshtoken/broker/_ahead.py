"""Refresh ahead: a new token before the current one runs low, off every caller's path.

Either one short thread per due refresh (started by the caller that noticed), or a background
refresher (`start()`); after a failure it backs off, and the current token stays in use while
it lives (stale-if-error).
"""

from __future__ import annotations

import threading

from freshtoken._errors import FreshtokenError, OAuthError
from freshtoken._log import describe, logger
from freshtoken.broker._renewal import Renewal


class RefreshAhead:
    def __init__(self, renewal: Renewal) -> None:
        self.renewal = renewal
        self.cache = cache = renewal.cache
        self.clock = cache.clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresher: threading.Thread | None = None

    def kick(self, now: float) -> None:
        """A caller saw the token due: refresh in a thread of its own, unless the background
        refresher keeps its own schedule."""
        if self._refresher is not None:
            return
        self.cache.next_try = now + 1.0  # one starter at a time; an adoption resets it
        self._thread = threading.Thread(
            target=self._refresh_once, name="freshtoken-refresh-ahead", daemon=True
        )
        self._thread.start()

    def _back_off(self, cap: float) -> float:
        """After a failed refresh: no new try for 1, 2, 4 … seconds (at most `cap`)."""
        self.cache.ahead_failures += 1
        backoff = min(cap, 0.5 * 2.0**self.cache.ahead_failures)
        self.cache.next_try = self.clock.monotonic() + backoff
        return backoff

    def _refresh_once(self) -> None:
        try:
            outcome = self.renewal.refresh_if_free()
            if outcome == "busy":  # another process: adopt its token soon
                self.cache.next_try = self.clock.monotonic() + 0.05
            elif outcome == "promised":  # a token handed out must stay valid until then
                self.cache.next_try = self.cache.rotate_after
        except Exception as exc:
            if not isinstance(exc, FreshtokenError):
                logger.error("refresh ahead failed unexpectedly: %s", describe(exc))
                exc = OAuthError(describe(exc), error="unexpected")
            self.cache.counts["failures"] += 1
            backoff = self._back_off(30.0)
            current = self.cache.current
            left = self.cache.left(current) if current is not None else 0.0
            if left > 0:
                logger.warning(
                    "refresh ahead failed (%s); the current token stays in use for "
                    "%.0fs more, next try in %.1fs",
                    exc.error,
                    left,
                    backoff,
                )
                # Counted once said: whoever sees the count can read the warning.
                self.cache.counts["stale_served"] += 1

    def start(self) -> None:
        """Refresh in a background thread from now on."""
        if self._refresher is None:
            self._stop.clear()
            self._refresher = threading.Thread(
                target=self._run, name="freshtoken-refresher", daemon=True
            )
            self._refresher.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            state = self.cache.state
            refresh_at = state[3] if state is not None else 0.0
            if self.clock.monotonic() >= self.cache.next_try:
                try:
                    if state is None:
                        self.renewal.obtain(None)
                    elif self.clock.monotonic() >= refresh_at:
                        self._refresh_once()
                except Exception as exc:
                    # A wrong secret must not turn into a request every few ms.
                    backoff = self._back_off(60.0)
                    logger.warning(
                        "background refresh failed (%s); next try in %.0fs. %s",
                        exc.error if isinstance(exc, FreshtokenError) else describe(exc),
                        backoff,
                        exc.hint if isinstance(exc, FreshtokenError) else "",
                    )
            state = self.cache.state
            refresh_at = state[3] if state is not None else 0.0
            wake = max(refresh_at, self.cache.next_try) - self.clock.monotonic()
            self._stop.wait(min(max(wake, 0.05), 5.0))

    def stop(self, timeout: float) -> None:
        """Finish a refresh in flight and stop the background refresher."""
        self._stop.set()
        for thread in (self._thread, self._refresher):
            if thread is not None:
                thread.join(timeout=timeout)
        self._refresher = None
