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
from freshtoken.broker._held import HeldEntry
from freshtoken.broker._minters import Minter, scope_problem
from freshtoken.broker._policy import FUTURE_TOLERANCE, RefreshPolicy, stored_left
from freshtoken.broker._promise import Introspect, Promises, covered, rotating
from freshtoken.stores import Entry, TokenStore
from freshtoken.stores._entry import fingerprint, with_past

#: What the hot path reads in one step: the token, its default min_ttl, and until when it may
#: be handed out without work (its expiry; for a server that revokes it on rotation, how far
#: it is promised already) and when it is due for refresh, on this process's monotonic clock.
State = tuple[Token, float, float, float]
#: Seconds a token minted after an invalidation is not invalidated again (a 401 loop).
INVALIDATE_COOLDOWN = 5.0


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
        rotation: str = "auto",
        introspect: Introspect | None = None,
        genesys: bool = False,
    ) -> None:
        self.store = store
        self.genesys = genesys  # hints may name Genesys Cloud's settings
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
        #: The held token and its expiry on the monotonic clock.
        self.expires: tuple[Token, float] | None = None
        #: Does rotating the refresh token revoke the previous access token (auto: learned)?
        self.rotation = rotation
        self.promises = Promises(rotation, store, key, clock, introspect)
        #: Refresh ahead waits for the promises on the current token until this instant.
        self.rotate_after = 0.0
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
        held = self.expires
        if held is not None and held[0] is token:
            return held[1] - self.clock.monotonic()
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
        mono = self.clock.monotonic()
        expiry = sent + token.lifetime if sent is not None else mono + self.left(token)
        window = self.policy.window(token.lifetime)
        until = expiry
        if self.promises.guards(entry):
            promised = entry.promised - self.clock.time() if entry.spending is None else 0.0
            until = min(expiry, mono + promised)
        self.expires = (token, expiry)
        self.state = (token, self.policy.min_ttl_for(token), until, expiry - window)
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
            "client"
            + (
                " (Genesys Cloud: the client's Token Duration, 300..172800 s)."
                if self.genesys
                else "."
            ),
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
            state = self.state
            if state is not None and state[2] - self.clock.monotonic() >= (
                self.policy.min_ttl_for(state[0], min_ttl)
            ):
                return state[0]
            entry = self.store.load(self.key)
            if (
                entry is not None
                and self.usable(entry.token, min_ttl)
                and self._promised(entry, min_ttl)
            ):
                return self.adopt(entry)
            if entry is not None and self.usable(entry.token, min_ttl):
                token = self._hand_out(entry, None, min_ttl, locked=False)
                if token is not None:  # promised without the lock: no rotation under way
                    return token
            with self.store.lock(self.key, max(end - self.clock.monotonic(), 0.0)) as held:
                if not held:
                    raise self.timed_out(self.clock.monotonic() - start)
                entry = self.store.load(self.key)  # the holder before us may have minted
                if (
                    entry is not None
                    and self.usable(entry.token, min_ttl)
                    and not rotating(self.rotation, entry)
                ):
                    if entry.token != self.current:
                        self.counts["waits"] += 1
                    token = self._hand_out(entry, None, min_ttl, locked=True)
                    if token is not None:
                        return token
                self._check_lifetime(min_ttl, entry)
                why = "none held" if entry is None or entry.token is None else "too close to expiry"
                if min_ttl is not None:
                    why += f" for min_ttl {min_ttl:g}s"
                entry = self.promises.close(entry, end, min_ttl)
                token = self._hand_out(*self.renew(entry, end, why), min_ttl, locked=True)
                assert token is not None  # a token just minted, under the lock: no rotation
                return token
        except OAuthError:
            self.counts["failures"] += 1
            raise
        finally:
            self.flight.release()

    def refresh_if_free(self) -> Literal["done", "adopted", "busy", "in_flight", "promised"]:
        """Refresh now unless another thread ("in_flight") or process ("busy") is at it, or
        the current token is promised for longer ("promised": try at `rotate_after`)."""
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
                if wait := self.promises.postpone(entry, self.policy, self.wait_timeout):
                    self.rotate_after = self.clock.monotonic() + wait
                    return "promised"
                entry = self.promises.close(entry, deadline, None)
                self.adopt(*self.renew(entry, deadline, "refresh ahead"))
                return "done"
        finally:
            self.flight.release()

    def _promised(self, entry: Entry, min_ttl: float | None) -> bool:
        """May `entry`'s token be handed out for `min_ttl` without publishing a promise?
        Always, for a server that keeps it valid when it rotates the refresh token."""
        if not self.promises.guards(entry):
            return True
        assert entry.token is not None
        return covered(entry, self.clock.time(), self.policy.min_ttl_for(entry.token, min_ttl))

    def _hand_out(
        self, entry: Entry, sent: float | None, min_ttl: float | None, *, locked: bool
    ) -> Token | None:
        """Hold `entry`'s token; where promises are kept, publish this one (None: it cannot be
        promised, a rotation is under way; `locked`: the store's lock is held)."""
        token = entry.token
        if token is None or not self.promises.guards(entry):
            return self.adopt(entry, sent)
        now = self.clock.time()
        need = self.policy.min_ttl_for(token, min_ttl)
        published = self.promises.publish(entry, need, locked=locked)
        if published is None:
            return None
        state, held = self.state, self.expires
        if sent is not None or state is None or held is None or state[0] != token:
            return self.adopt(published, sent)  # (which reads how far it is promised)
        until = min(held[1], self.clock.monotonic() + published.promised - now)
        self.state = (state[0], state[1], until, state[3])
        return state[0]

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
        held = HeldEntry(self.store, self.key, entry, deadline)
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
        revokes = before.revokes if before else None
        vouches = before.vouches if before else None  # what was learned about the server
        past = with_past(before.past, before.refresh_token, refresh) if before else ()
        bare = replace(token, refresh_token=None)  # callers never get the refresh token
        new = Entry(
            bare,
            refresh,
            None,
            mints,
            token.issued_at,
            lifetime=lifetime,
            revokes=revokes,
            past=past,
            vouches=vouches,
        )
        problem = scope_problem(token, self.requested_scope, self.identity)
        if problem is not None and self.scope_check == "raise":
            # Keep a rotated refresh token, but never cache the token that failed the check.
            held.keep(replace(new, token=None))
            raise problem
        if problem is not None:
            logger.warning("%s", problem)
        kept = held.keep(new)
        mine = kept.token is not None and kept.token.access_token == bare.access_token
        if mine and minted.refreshed and revokes is None:
            learned = self.promises.learn(before.token if before else None, self.label)
            if learned is not None:
                with contextlib.suppress(StoreError):
                    kept = held.write(replace(kept, revokes=learned))
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

    def seed(self, refresh_token: str, *, unless_known: bool = False) -> bool:
        """Hold `refresh_token` in the store; the next mint spends it. `unless_known`: not if
        the store holds it already, or held it before (then it is older than the one held).
        True when it was stored."""
        remember_secret(refresh_token)
        mark = fingerprint(refresh_token)

        def known(entry: Entry | None) -> bool:
            if entry is None:
                return False
            current = entry.refresh_token
            return (current is not None and fingerprint(current) == mark) or mark in entry.past

        if unless_known and known(self.store.load(self.key)):
            return False
        start = self.clock.monotonic()
        with self.flight, self.store.lock(self.key, self.wait_timeout) as held:
            if not held:
                raise self.timed_out(self.clock.monotonic() - start)
            entry = self.store.load(self.key)
            if unless_known and known(entry):
                return False
            fresh = Entry(
                None,
                refresh_token,
                None,
                entry.mints if entry else 0,
                entry.last_mint if entry else 0.0,
                lifetime=entry.lifetime if entry else 0.0,
                past=with_past(entry.past, entry.refresh_token, refresh_token) if entry else (),
                revokes=entry.revokes if entry else None,
            )
            if self.store.save(self.key, fresh, entry.version if entry else 0) is None:
                raise StoreError("the store entry changed while seeding", hint="Try again.")
            self.state = None
            return True

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
