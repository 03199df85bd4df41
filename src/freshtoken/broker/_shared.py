"""The token of one cache key, shared by every thread, task and process that uses the store.

Single flight twice over: one thread per process (a lock), one process per store (the store's
lock); everyone else adopts what the winner stored.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from freshtoken._clock import Clock
from freshtoken._errors import ConfigurationError, OAuthError, StoreError, TokenUnavailableError
from freshtoken._log import logger, remember_secret
from freshtoken._token import Token
from freshtoken.broker._minters import Minter, scope_problem
from freshtoken.broker._policy import FUTURE_TOLERANCE, RefreshPolicy, stored_left
from freshtoken.stores import Entry, TokenStore

#: What the hot path reads in one step: the token, its default min_ttl, and its expiry and
#: refresh instants on this process's monotonic clock.
State = tuple[Token, float, float, float]
#: Seconds a token minted after an invalidation is not invalidated again (a 401 loop).
INVALIDATE_COOLDOWN = 5.0


class _Held:
    """The entry under the store's lock; writes are compare-and-set on its version."""

    def __init__(self, cache: SharedCache, entry: Entry | None, deadline: float) -> None:
        self._cache = cache
        self.entry = entry
        self.deadline = deadline

    def _save(self, entry: Entry, expected: int) -> int | None:
        try:
            return self._cache.store.save(self._cache.key, entry, expected)
        except StoreError as exc:
            # The token is good: keep serving it from memory rather than fail the caller.
            logger.warning("could not store the new token (%s); serving it from memory", exc)
            return expected

    def write(self, entry: Entry) -> Entry:
        """Store `entry` over the held one. Someone else writing meanwhile (a lease that ran
        out, a store that failed over) means this holder must not go on: StoreError."""
        version = self._save(entry, self.entry.version if self.entry else 0)
        if version is None:
            raise StoreError(
                "the store entry changed while this process held its lock",
                hint="A lock lease expired mid-mint, or the store failed over; it is retried.",
            )
        self.entry = replace(entry, version=version)
        return self.entry

    def keep(self, entry: Entry) -> Entry:
        """Store the outcome of a mint, whatever was written meanwhile: of the two, the
        newer mint wins (its refresh token is the live one); the other is not lost to the
        caller, who still gets a valid token."""
        expected = self.entry.version if self.entry else 0
        for _ in range(5):
            version = self._save(entry, expected)
            if version is not None:
                self.entry = replace(entry, version=version)
                return self.entry
            theirs = self._cache.store.load(self._cache.key)
            if (
                theirs is not None
                and theirs.token is not None
                and theirs.last_mint > entry.last_mint
            ):
                logger.warning("another holder stored a newer token meanwhile; keeping it")
                self.entry = theirs
                return theirs
            expected = theirs.version if theirs else 0
        raise StoreError(
            "the store entry kept changing while this process stored a new token",
            hint="Another writer is overwriting this store's entries; check who shares it.",
        )

    def owns_lock(self) -> bool:
        return self._cache.store.owns_lock(self._cache.key)

    def reload(self) -> Entry | None:
        """The entry as stored now (a process spending a refresh token may have stored its
        outcome without the lock: its mark keeps everyone else from the token meanwhile)."""
        self.entry = self._cache.store.load(self._cache.key)
        return self.entry


class SharedCache:
    """Hands out the cached token of `key`, or mints one (through `minter`) as the only
    caller across threads and processes; a token that fails the scope check is never cached.

    Within the process a token's expiry is kept on the monotonic clock: a wall-clock step
    changes nothing for a token this process holds. The wall clock is read only when a token
    crosses a process boundary (adopted from the store), and a stored token issued "in the
    future" is not trusted.
    """

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
        label: str = "",
    ) -> None:
        self.store = store
        self.key = key
        self.minter = minter
        self.policy = policy
        self.clock = clock
        self.wait_timeout = wait_timeout
        self.requested_scope = requested_scope
        self.identity = identity
        #: Who the tokens are for, in -v log lines (the client id and endpoint, never a secret).
        self.label = label or identity
        self.scope_check = scope_check
        self.state: State | None = None
        #: How long a token of this key lives (0: not known yet).
        self.lifetime = 0.0
        self.counts = dict.fromkeys(
            ("hits", "mints", "refreshes", "adopted", "waits", "failures", "stale_served"), 0
        )
        self.flight = threading.Lock()
        self.invalidate_cooldown = invalidate_cooldown
        self.invalidated_at = math.inf  # when a 401 last dropped a token (never yet)
        #: Called after every adoption (refresh ahead restarts its schedule).
        self.on_adopt: Callable[[], None] = lambda: None
        # The last failed mint (monotonic instant, error): callers that waited for that very
        # attempt get its error at once instead of each trying again in turn.
        self._failure: tuple[float, OAuthError] | None = None

    @property
    def current(self) -> Token | None:
        return self.state[0] if self.state is not None else None

    def left(self, token: Token) -> float:
        """Seconds `token` has left: by the monotonic clock for the token this process holds,
        else by the wall clock, never more than its lifetime, and none for a token issued
        "in the future" (another host's clock, or a step of this one)."""
        state = self.state
        if state is not None and state[0] is token:
            return state[2] - self.clock.monotonic()
        now = self.clock.time()
        if token.issued_at > now + FUTURE_TOLERANCE:
            logger.warning(
                "a stored token was issued %.0fs in this machine's future; not trusting it "
                "(are the clocks of the machines sharing the store in step?)",
                token.issued_at - now,
            )
        return stored_left(token, now)

    def usable(self, token: Token | None, min_ttl: float | None) -> bool:
        return token is not None and self.left(token) >= self.policy.min_ttl_for(token, min_ttl)

    def adopt(self, entry: Entry, sent: float | None = None) -> Token:
        """Hold `entry`'s token; `sent` is the monotonic instant this process asked for it."""
        token = entry.token
        assert token is not None
        current = self.current
        if current is None or token.access_token != current.access_token:
            remember_secret(token.access_token)
            if sent is None:
                self.counts["adopted"] += 1
                logger.info(
                    "adopted a token another holder stored for %s: %.0fs left",
                    self.label,
                    self.left(token),
                )
        expiry = (
            sent + token.lifetime if sent is not None else self.clock.monotonic() + self.left(token)
        )
        window = self.policy.window(token.lifetime)
        self.state = (token, self.policy.min_ttl_for(token), expiry, expiry - window)
        self.lifetime = token.lifetime
        self.on_adopt()
        return token

    def timed_out(self, waited: float) -> TokenUnavailableError:
        return TokenUnavailableError(
            f"no token within {waited:.1f}s: another holder of the store's lock has not finished",
            hint="Another process is minting or is stuck (stopped, or its network hangs). It "
            "is retried on the next call; check `freshtoken status`.",
        )

    def too_long(self, min_ttl: float, lifetime: float) -> ConfigurationError:
        return ConfigurationError(
            f"min_ttl {min_ttl:g}s is more than the {lifetime:g}s a token of this client lives",
            hint="Ask for less (min_ttl / --min-ttl), or raise the token lifetime on the OAuth "
            "client (Genesys Cloud: the client's Token Duration, 300..172800 s).",
        )

    def _check_lifetime(self, min_ttl: float | None, entry: Entry | None) -> None:
        known = self.lifetime or (entry.lifetime if entry is not None else 0.0)
        if min_ttl is not None and known and min_ttl > known:
            raise self.too_long(min_ttl, known)

    def obtain(self, min_ttl: float | None, deadline: float | None = None) -> Token:
        """A token valid for `min_ttl`, waiting for (or being) the one who mints it, by
        `deadline` (monotonic; default: `wait_timeout` from now)."""
        start = self.clock.monotonic()
        end = start + self.wait_timeout if deadline is None else deadline
        self._check_lifetime(min_ttl, None)
        if not self.flight.acquire(timeout=max(end - start, 0.0)):
            raise self.timed_out(self.clock.monotonic() - start)
        try:
            failure = self._failure
            if failure is not None and failure[0] >= start:
                raise copy.copy(failure[1])  # we waited for that very attempt: its outcome
            current = self.current
            if current is not None and self.usable(current, min_ttl):
                return current
            entry = self.store.load(self.key)
            if entry is not None and self.usable(entry.token, min_ttl):
                return self.adopt(entry)
            with self.store.lock(self.key, max(end - self.clock.monotonic(), 0.0)) as held:
                if not held:
                    raise self.timed_out(self.clock.monotonic() - start)
                entry = self.store.load(self.key)  # the holder before us may have minted
                if entry is not None and self.usable(entry.token, min_ttl):
                    self.counts["waits"] += 1
                    return self.adopt(entry)
                self._check_lifetime(min_ttl, entry)
                why = "none held" if entry is None or entry.token is None else "too close to expiry"
                if min_ttl is not None:
                    why += f" for min_ttl {min_ttl:g}s"
                return self.adopt(*self.renew(entry, end, why))
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
                deadline = self.clock.monotonic() + self.wait_timeout
                self.adopt(*self.renew(entry, deadline, "refresh ahead"))
                return "done"
        finally:
            self.flight.release()

    def adopt_newer(self, entry: Entry | None) -> bool:
        """Take a newer token another process stored; True if no refresh is due now."""
        token = entry.token if entry is not None else None
        current = self.current
        if token is None or (current is not None and token.expires_at <= current.expires_at):
            return False
        if not self.usable(token, None):
            return False
        assert entry is not None
        self.adopt(entry)
        state = self.state
        return state is not None and self.clock.monotonic() < state[3]

    def renew(
        self, entry: Entry | None, deadline: float, why: str = ""
    ) -> tuple[Entry, float | None]:
        """Mint under the store's lock, by `deadline`, and store the result before returning
        it, with the monotonic instant its request was sent (None: another holder's newer
        token was kept instead); `why` says what caused it, in the -v log line."""
        held = _Held(self, entry, deadline)
        try:
            minted = self.minter.mint(held)
        except OAuthError as exc:
            if not isinstance(exc, ConfigurationError):
                self._failure = (self.clock.monotonic(), exc)  # for those who waited for it
            raise
        if minted.stored is not None:  # another holder's outcome, stored meanwhile: no mint
            return minted.stored, None
        self.counts["mints"] += 1
        self.counts["refreshes"] += minted.refreshed
        logger.info(
            "%s a token for %s: lives %.0fs (%s)",
            "refreshed" if minted.refreshed else "minted",
            self.label,
            minted.token.lifetime,
            why or "asked",
        )
        token, refresh = minted.token, minted.refresh_token
        if refresh:
            remember_secret(refresh)
        before = held.entry
        mints = (before.mints if before else 0) + 1
        lifetime = token.lifetime
        vouches = before.vouches if before else None  # what was learned about the server
        problem = scope_problem(token, self.requested_scope, self.identity)
        if problem is not None and self.scope_check == "raise":
            # Keep a rotated refresh token, but never cache the token that failed the check.
            held.keep(
                Entry(
                    None, refresh, None, mints, token.issued_at, lifetime=lifetime, vouches=vouches
                )
            )
            raise problem
        if problem is not None:
            logger.warning("%s", problem)
        bare = replace(token, refresh_token=None)  # callers never get the refresh token
        kept = held.keep(
            Entry(bare, refresh, None, mints, token.issued_at, lifetime=lifetime, vouches=vouches)
        )
        mine = kept.token is not None and kept.token.access_token == bare.access_token
        return kept, minted.sent if mine else None

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
        start = self.clock.monotonic()
        with self.flight, self.store.lock(self.key, self.wait_timeout) as held:
            if not held:
                raise self.timed_out(self.clock.monotonic() - start)
            entry = self.store.load(self.key)
            fresh = Entry(
                None,
                refresh_token,
                None,
                entry.mints if entry else 0,
                entry.last_mint if entry else 0.0,
                lifetime=entry.lifetime if entry else 0.0,
            )
            if self.store.save(self.key, fresh, entry.version if entry else 0) is None:
                raise StoreError("the store entry changed while seeding", hint="Try again.")
            self.state = None

    def take(self) -> Entry | None:
        """Remove this key's entry from the store (and memory); what it held."""
        start = self.clock.monotonic()
        with self.flight, self.store.lock(self.key, self.wait_timeout) as held:
            if not held:
                raise self.timed_out(self.clock.monotonic() - start)
            entry = self.store.load(self.key)
            self.store.delete(self.key)
            self.state = None
            return entry
