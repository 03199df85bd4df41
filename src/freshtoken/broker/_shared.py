"""The token of one cache key, shared by every thread, task and process that uses the store.

Single flight twice over: one thread per process (a lock), one process per store (the store's
lock); everyone else adopts what the winner stored.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from freshtoken._clock import Clock
from freshtoken._errors import OAuthError, StoreError, TokenUnavailableError
from freshtoken._log import logger, remember_secret
from freshtoken._token import Token
from freshtoken.broker._minters import Minter, scope_problem
from freshtoken.broker._policy import RefreshPolicy
from freshtoken.stores import Entry, TokenStore

#: What the hot path reads in one step: the token, its default min_ttl, when it is due.
State = tuple[Token, float, float]
#: Seconds a token minted after an invalidation is not invalidated again (a 401 loop).
INVALIDATE_COOLDOWN = 5.0


class _Held:
    """The entry under the store's lock; writes are compare-and-set on its version."""

    def __init__(self, cache: SharedCache, entry: Entry | None) -> None:
        self._cache = cache
        self.entry = entry

    def write(self, entry: Entry) -> Entry:
        expected = self.entry.version if self.entry else 0
        try:
            version = self._cache.store.save(self._cache.key, entry, expected)
        except StoreError as exc:
            # The token is good: keep serving it from memory rather than fail the caller.
            logger.warning("could not store the new token (%s); serving it from memory", exc)
            version = expected
        if version is None:
            # Under the lock nobody else writes; a lost lease is the only way here.
            raise StoreError(
                "the store entry changed while this process held its lock",
                hint="A lock lease expired mid-mint; the newer entry wins.",
            )
        self.entry = replace(entry, version=version)
        return self.entry

    def owns_lock(self) -> bool:
        return self._cache.store.owns_lock(self._cache.key)


class SharedCache:
    """Hands out the cached token of `key`, or mints one (through `minter`) as the only
    caller across threads and processes; a token that fails the scope check is never cached."""

    def __init__(
        self,
        store: TokenStore,
        key: str,
        minter: Minter,
        *,
        policy: RefreshPolicy,
        clock: Clock,
        wait_timeout: float,
        requested_scope: tuple[str, ...],
        identity: str,
        scope_check: Literal["raise", "warn"] = "raise",
        invalidate_cooldown: float = INVALIDATE_COOLDOWN,
    ) -> None:
        self.store = store
        self.key = key
        self.minter = minter
        self.policy = policy
        self.clock = clock
        self.wait_timeout = wait_timeout
        self.requested_scope = requested_scope
        self.identity = identity
        self.scope_check = scope_check
        self.state: State | None = None
        self.counts = dict.fromkeys(
            ("hits", "mints", "refreshes", "adopted", "waits", "failures", "stale_served"), 0
        )
        self.flight = threading.Lock()
        self.invalidate_cooldown = invalidate_cooldown
        self.invalidated_at = math.inf  # when a 401 last dropped a token (never yet)
        #: Called after every adoption (refresh ahead restarts its schedule).
        self.on_adopt: Callable[[], None] = lambda: None

    @property
    def current(self) -> Token | None:
        return self.state[0] if self.state is not None else None

    def usable(self, token: Token | None, min_ttl: float | None) -> bool:
        return token is not None and (
            token.expires_at - self.clock.time() >= self.policy.min_ttl_for(token, min_ttl)
        )

    def adopt(self, entry: Entry, *, minted: bool = False) -> Token:
        token = entry.token
        assert token is not None
        current = self.current
        if current is None or token.access_token != current.access_token:
            remember_secret(token.access_token)
            if not minted:
                self.counts["adopted"] += 1
        self.state = (token, self.policy.min_ttl_for(token), self.policy.refresh_at(token))
        self.on_adopt()
        return token

    def timed_out(self) -> TokenUnavailableError:
        return TokenUnavailableError(
            f"no token within {self.wait_timeout:.0f}s: another holder of the store's lock "
            "has not finished",
            hint="Another process is minting or is stuck (stopped, or its network hangs). It "
            "is retried on the next call; check `freshtoken status`.",
        )

    def obtain(self, min_ttl: float | None) -> Token:
        """A token valid for `min_ttl`, waiting for (or being) the one who mints it."""
        if not self.flight.acquire(timeout=self.wait_timeout):
            raise self.timed_out()
        try:
            current = self.current
            if self.usable(current, min_ttl):
                assert current is not None
                return current
            entry = self.store.load(self.key)
            if entry is not None and self.usable(entry.token, min_ttl):
                return self.adopt(entry)
            with self.store.lock(self.key, self.wait_timeout) as held:
                if not held:
                    raise self.timed_out()
                entry = self.store.load(self.key)  # the holder before us may have minted
                if entry is not None and self.usable(entry.token, min_ttl):
                    self.counts["waits"] += 1
                    return self.adopt(entry)
                return self.adopt(self.renew(entry), minted=True)
        except OAuthError:
            self.counts["failures"] += 1
            raise
        finally:
            self.flight.release()

    def refresh_if_free(self) -> Literal["done", "adopted", "busy", "in_flight"]:
        """Refresh now unless another thread ("in_flight") or process ("busy") is at it."""
        if not self.flight.acquire(blocking=False):
            return "in_flight"
        try:
            if self.adopt_newer(self.store.load(self.key)):
                return "adopted"
            with self.store.lock(self.key, 0.0) as held:
                if not held:
                    return "busy"
                entry = self.store.load(self.key)
                if self.adopt_newer(entry):
                    return "adopted"
                self.adopt(self.renew(entry), minted=True)
                return "done"
        finally:
            self.flight.release()

    def adopt_newer(self, entry: Entry | None) -> bool:
        """Take a newer token another process stored; True if no refresh is due now."""
        token = entry.token if entry is not None else None
        current = self.current
        if token is None or (current is not None and token.expires_at <= current.expires_at):
            return False
        assert entry is not None
        self.adopt(entry)
        return self.clock.time() < self.policy.refresh_at(token)

    def renew(self, entry: Entry | None) -> Entry:
        """Mint under the store's lock and store the result before returning it."""
        held = _Held(self, entry)
        minted = self.minter.mint(held)
        self.counts["mints"] += 1
        self.counts["refreshes"] += minted.refreshed
        token, refresh = minted.token, minted.refresh_token
        if refresh:
            remember_secret(refresh)
        before = held.entry
        mints = (before.mints if before else 0) + 1
        problem = scope_problem(token, self.requested_scope, self.identity)
        if problem is not None and self.scope_check == "raise":
            # Keep a rotated refresh token, but never cache the token that failed the check.
            held.write(Entry(None, refresh, None, mints, token.issued_at))
            raise problem
        if problem is not None:
            logger.warning("%s", problem)
        bare = replace(token, refresh_token=None)  # callers never get the refresh token
        return held.write(Entry(bare, refresh, None, mints, token.issued_at))

    def invalidate(self, token: Token) -> None:
        """Forget `token`, but only if it is still the cached one, so that many callers that
        saw the same 401 cause one mint; and not if it was minted after the last invalidation
        less than `invalidate_cooldown` ago, so that an API that refuses every token cannot
        make this process burn the token endpoint's rate limit."""
        with self.flight:
            now = self.clock.time()
            if token.issued_at >= self.invalidated_at and (
                now - token.issued_at < self.invalidate_cooldown
            ):
                return
            current = self.current
            if current is not None and current.access_token == token.access_token:
                self.state = None
                self.invalidated_at = now
            entry = self.store.load(self.key)
            if entry and entry.token and entry.token.access_token == token.access_token:
                self.invalidated_at = now
                with contextlib.suppress(StoreError):
                    self.store.save(self.key, replace(entry, token=None), entry.version)

    def seed(self, refresh_token: str) -> None:
        """Hold `refresh_token` in the store; the next mint spends it."""
        remember_secret(refresh_token)
        with self.flight, self.store.lock(self.key, self.wait_timeout) as held:
            if not held:
                raise self.timed_out()
            entry = self.store.load(self.key)
            fresh = Entry(
                None,
                refresh_token,
                None,
                entry.mints if entry else 0,
                entry.last_mint if entry else 0.0,
            )
            if self.store.save(self.key, fresh, entry.version if entry else 0) is None:
                raise StoreError("the store entry changed while seeding", hint="Try again.")
            self.state = None

    def take(self) -> Entry | None:
        """Remove this key's entry from the store (and memory); what it held."""
        with self.flight, self.store.lock(self.key, self.wait_timeout) as held:
            if not held:
                raise self.timed_out()
            entry = self.store.load(self.key)
            self.store.delete(self.key)
            self.state = None
            return entry
