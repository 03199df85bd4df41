"""Refreshes nobody waits for: refresh ahead and keep-alive.

Refresh ahead gets a new token before the current one runs low, off every caller's path:
either one short thread per due refresh (started by the caller that noticed), or a background
refresher (`start()`); after a failure it backs off, and the current token stays in use while
it lives (stale-if-error).

Keep-alive spends the refresh token once when it was last used longer ago than a limit, so
that a server's idle expiry (Okta, Auth0, Keycloak's SSO idle) never ends a chain that a
pipeline uses only now and then.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from freshtoken._errors import FreshtokenError, InvalidGrantError, OAuthError
from freshtoken._log import describe, logger
from freshtoken.broker._renewal import Busy, Renewal
from freshtoken.stores import Entry
from freshtoken.stores._entry import WRITING_BACK

if TYPE_CHECKING:
    from freshtoken.sinks import RefreshTokenSink


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
        """Refresh now unless another thread or process is at it (an adoption of its token
        follows), or the current token is promised for longer (tried again when that ends)."""
        cache, renewal = self.cache, self.renewal

        def first(_start: float) -> bool | None:
            return cache.adopt_newer(cache.store.load(cache.key)) or None

        def decide(entry: Entry | None, end: float) -> bool:
            if cache.adopt_newer(entry):
                return True
            if wait := cache.postpone(entry, renewal.wait_timeout):
                # A token handed out must stay valid until then.
                cache.next_try = self.clock.monotonic() + wait
                return True
            entry = cache.close_for_rotation(entry, end, None)
            cache.adopt(*renewal.renew(entry, end, "refresh ahead"))
            return True

        try:
            renewal.transact(decide, try_once=True, first=first)
        except Busy as busy:
            if busy.where == "busy":  # another process: adopt its token soon
                cache.next_try = self.clock.monotonic() + 0.05
        except Exception as exc:
            if not isinstance(exc, FreshtokenError):
                logger.error("refresh ahead failed unexpectedly: %s", describe(exc))
                exc = OAuthError(describe(exc), error="unexpected")
            cache.counts["failures"] += 1
            backoff = self._back_off(30.0)
            current = cache.current
            left = cache.left(current) if current is not None else 0.0
            if left > 0:
                logger.warning(
                    "refresh ahead failed (%s); the current token stays in use for "
                    "%.0fs more, next try in %.1fs",
                    exc.error,
                    left,
                    backoff,
                )
                # Counted once said: whoever sees the count can read the warning.
                cache.counts["stale_served"] += 1

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


@dataclass(frozen=True, slots=True)
class KeptAlive:
    """What keep-alive found and did: `idle` seconds since the refresh token was last used
    (None: nobody can tell), according to `source`; `refreshed` when it spent it."""

    refreshed: bool
    idle: float | None
    source: str


def keep_alive(
    renewal: Renewal, sink: RefreshTokenSink | None, max_idle: float, deadline: float
) -> KeptAlive:
    """Refresh once when the refresh token was last used `max_idle` seconds ago or more (or
    nobody can tell, or a write-back is pending); else do nothing. Last used: the later of
    the sink's last write and the store's last refresh."""
    cache = renewal.cache
    known: list[tuple[float, str]] = []
    if sink is not None and (written := sink.last_written(deadline)) is not None:
        known.append((written, f"{sink.name} was last written"))
    entry = cache.store.load(cache.key)
    if entry is not None and entry.refresh_token and entry.last_mint:
        known.append((entry.last_mint, "the store's last refresh"))
    when, source = (
        max(known)
        if known
        else (None, "neither the sink nor the store can tell when it was last used")
    )
    idle = None if when is None else max(cache.clock.time() - when, 0.0)
    pending = entry is not None and entry.phase == WRITING_BACK
    if idle is not None and idle < max_idle and not pending:
        return KeptAlive(False, idle, source)

    def decide(entry: Entry | None, end: float) -> None:
        # The refresh token the store holds now, whatever the access token's age (a pending
        # write-back is written first).
        if entry is None or entry.refresh_token is None:
            raise InvalidGrantError(
                "no refresh token is held for this client, so there is none to keep alive",
                hint="Seed one (FRESHTOKEN_REFRESH_TOKEN from a `freshtoken login`, or a "
                "readable FRESHTOKEN_REFRESH_TOKEN_SINK); see docs/refresh-tokens.md.",
            )
        cache.adopt(*renewal.renew(entry, end, "keep-alive"))

    renewal.transact(decide)
    return KeptAlive(True, idle, "a write-back was pending" if pending else source)
