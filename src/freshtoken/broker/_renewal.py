"""The one transaction on a cache key's entry, and its clients.

`Renewal.transact` is the only code that takes both locks: this process's flight (one thread
at a time), then the store's lock (one process at a time); it reloads the entry under them and
runs a decision on it. `renew` mints and commits by compare-and-set (`HeldEntry`: the entry
under the lock, as the minter reads and writes it). Every writer is a short
client: a miss (`obtain`), refresh ahead (`refresh_if_free`), keep-alive, seeding, removing
(`take`), and the detached spender (which holds the spend mark instead of the lock).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Literal, TypeVar

from freshtoken._errors import (
    ConfigurationError,
    FreshtokenError,
    InvalidClientError,
    StoreError,
    TokenUnavailableError,
)
from freshtoken._log import logger, remember_secret
from freshtoken._record import replace
from freshtoken._token import Token
from freshtoken.broker._minters import HeldEntry, Minted, RefreshTokenMinter, scope_problem
from freshtoken.broker._shared import SharedCache
from freshtoken.stores import Entry
from freshtoken.stores._entry import ServerFacts, with_past
from freshtoken.stores._ledger import missing, refuses, replaced

T = TypeVar("T")
Decide = Callable[[Entry | None, float], T]
#: A configured refresh token, and what tells whether it is older than the sink's last write.
Seed = tuple[str, Callable[[float], bool] | None]


class Busy(Exception):
    """A one-try transaction found a lock taken: "in_flight" (a thread of this process) or
    "busy" (another process)."""

    def __init__(self, where: Literal["in_flight", "busy"]) -> None:
        super().__init__(where)
        self.where: Literal["in_flight", "busy"] = where


class Renewal:
    """Mints the tokens of one shared cache with `minter`, as the only caller across threads
    and processes; a token that fails the scope check is never cached."""

    def __init__(
        self,
        cache: SharedCache,
        minter: RefreshTokenMinter,
        *,
        wait_timeout: float,
        requested_scope: tuple[str, ...],
        identity: str,
        scope_check: Literal["raise", "warn"] = "raise",
    ) -> None:
        self.cache = cache
        self.minter = minter
        self.wait_timeout = wait_timeout
        self.requested_scope = requested_scope
        self.identity = identity
        self.scope_check = scope_check
        # The last failed mint (monotonic instant, error): callers that waited for that very
        # attempt get its error at once instead of each trying again in turn.
        self._failure: tuple[float, FreshtokenError] | None = None

    def timed_out(self, waited: float) -> TokenUnavailableError:
        return TokenUnavailableError(
            f"no token within {waited:.1f}s: another holder of the store's lock has not finished",
            hint="Another process is minting or is stuck (stopped, or its network hangs). It "
            "is retried on the next call; check `freshtoken status`.",
        )

    # -- the transaction -------------------------------------------------------------------
    def transact(
        self,
        decide: Decide[T],
        *,
        deadline: float | None = None,
        try_once: bool = False,
        first: Callable[[float], T | None] | None = None,
    ) -> T:
        """`decide(entry, deadline)` on the entry reloaded under this process's flight and the
        store's lock, by `deadline` (monotonic; default `wait_timeout` from now). `first(start)`
        runs holding the flight only: a result other than None ends the transaction there (a
        token another thread or process stored meanwhile). `try_once`: raise Busy rather than
        wait for either lock."""
        cache = self.cache
        start = cache.clock.monotonic()
        end = start + self.wait_timeout if deadline is None else deadline
        flight = cache.flight
        if not (flight.acquire(False) if try_once else flight.acquire(timeout=max(end - start, 0))):
            if try_once:
                raise Busy("in_flight")
            raise self.timed_out(cache.clock.monotonic() - start)
        try:
            if first is not None and (done := first(start)) is not None:
                return done
            wait = 0.0 if try_once else max(end - cache.clock.monotonic(), 0.0)
            with cache.store.lock(cache.key, wait) as held:
                if not held:
                    if try_once:
                        raise Busy("busy")
                    raise self.timed_out(cache.clock.monotonic() - start)
                entry = cache.store.load(cache.key)  # the holder before us may have minted
                return decide(entry, end)
        finally:
            flight.release()

    def renew(
        self,
        entry: Entry | None,
        deadline: float,
        why: str = "",
        mint: Callable[[HeldEntry], Minted] | None = None,
    ) -> tuple[Entry, float | None]:
        """Mint under the store's lock (with `mint`, default the minter's), by `deadline`, and
        store the result before returning it, with the monotonic instant its request was sent
        (None: another holder's newer token was kept instead); `why` says what caused it, in
        the -v log line."""
        cache = self.cache
        held = HeldEntry(cache.store, cache.key, entry, deadline)
        try:
            minted = (mint or self.minter.mint)(held)
        except FreshtokenError as exc:
            if not isinstance(exc, ConfigurationError):
                self._failure = (cache.clock.monotonic(), exc)  # for those who waited for it
            if isinstance(exc, InvalidClientError) and held.entry is not None:
                # Known to fail until a token is had: no refresh token presented unchecked.
                facts = replace(held.entry.facts, client_refused=cache.clock.time())
                with contextlib.suppress(StoreError):
                    held.write(replace(held.entry, facts=facts))
            raise
        if minted.stored is not None and not minted.refreshed:
            return minted.stored, None  # another holder's outcome, stored meanwhile: no mint
        cache.counts["mints"] += 1
        cache.counts["refreshes"] += minted.refreshed
        logger.info(
            "%s a token for %s: lives %.0fs (%s)",
            "refreshed" if minted.refreshed else "minted",
            cache.label,
            minted.token.lifetime,
            why or "asked",
        )
        token, refresh = minted.token, minted.refresh_token
        if refresh:
            remember_secret(refresh)
        if minted.stored is not None:  # stored by this holder's spender: as it stored it
            return minted.stored, minted.sent
        before = held.entry
        facts = replace(
            before.facts if before else ServerFacts(), lifetime=token.lifetime, client_refused=0.0
        )
        bare = replace(token, refresh_token=None)  # callers never get the refresh token
        new = Entry(
            bare,
            refresh,
            mints=(before.mints if before else 0) + 1,
            last_mint=token.issued_at,
            past=with_past(before.past, before.refresh_token, refresh) if before else (),
            facts=facts,  # what was learned about the server is carried over whole
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
        if mine and minted.refreshed and facts.revokes_on_rotation is None:
            learned = cache.learn(before.token if before else None)
            if learned is not None:
                with contextlib.suppress(StoreError):
                    learned_facts = replace(kept.facts, revokes_on_rotation=learned)
                    kept = held.write(replace(kept, facts=learned_facts))
        return kept, minted.sent if mine else None

    # -- its clients -----------------------------------------------------------------------
    def obtain(self, min_ttl: float | None, deadline: float | None = None) -> Token:
        """A token valid for `min_ttl`, waiting for (or being) the one who mints it, by
        `deadline` (monotonic; default: `wait_timeout` from now)."""
        cache = self.cache
        cache.check_lifetime(min_ttl, None)

        def first(start: float) -> Token | None:
            failure = self._failure
            if failure is not None and failure[0] >= start:
                raise copy.copy(failure[1])  # we waited for that very attempt: its outcome
            state = cache.state
            if state is not None and state[2] - cache.clock.monotonic() >= (
                cache.policy.min_ttl_for(state[0], min_ttl)
            ):
                return state[0]
            entry = cache.store.load(cache.key)
            if entry is None or not cache.usable(entry.token, min_ttl):
                return None
            if cache.promised(entry, min_ttl):
                return cache.adopt(entry)
            # None when it cannot be promised without the lock (a rotation is under way).
            return cache.hand_out(entry, None, min_ttl, locked=False)

        def decide(entry: Entry | None, end: float) -> Token:
            if (
                entry is not None
                and cache.usable(entry.token, min_ttl)
                and not cache.rotating(entry)
            ):
                if entry.token != cache.current:
                    cache.counts["waits"] += 1
                token = cache.hand_out(entry, None, min_ttl, locked=True)
                if token is not None:
                    return token
            cache.check_lifetime(min_ttl, entry)
            why = "none held" if entry is None or entry.token is None else "too close to expiry"
            if min_ttl is not None:
                why += f" for min_ttl {min_ttl:g}s"
            entry = cache.close_for_rotation(entry, end, min_ttl)
            token = cache.hand_out(*self.renew(entry, end, why), min_ttl, locked=True)
            assert token is not None  # a token just minted, under the lock: no rotation
            return token

        try:
            token = self.transact(decide, deadline=deadline, first=first)
        except FreshtokenError:
            cache.counts["failures"] += 1
            raise
        need, left = cache.policy.min_ttl_for(token, min_ttl), cache.left(token)
        if left < need:
            # Every hand-out is checked, fresh mints too: an endpoint slower than the token's
            # life, or a token shorter than asked for, is an error, never a success.
            if need > token.lifetime:
                raise cache.too_long(need, token.lifetime)
            raise TokenUnavailableError(
                f"a new token had {left:.1f}s left when it arrived, less than the {need:g}s "
                "asked for",
                hint="The token endpoint answered slower than the token lives: check its "
                "latency, or raise the token lifetime on the OAuth client.",
            )
        return token

    def refresh_if_free(self) -> Literal["done", "adopted", "busy", "in_flight", "promised"]:
        """Refresh now unless another thread ("in_flight") or process ("busy") is at it, or
        the current token is promised for longer ("promised": try at `rotate_after`)."""
        cache = self.cache

        def first(_start: float) -> Literal["adopted"] | None:
            return "adopted" if cache.adopt_newer(cache.store.load(cache.key)) else None

        def decide(entry: Entry | None, end: float) -> Literal["done", "adopted", "promised"]:
            if cache.adopt_newer(entry):
                return "adopted"
            if wait := cache.postpone(entry, self.wait_timeout):
                cache.rotate_after = cache.clock.monotonic() + wait
                return "promised"
            entry = cache.close_for_rotation(entry, end, None)
            cache.adopt(*self.renew(entry, end, "refresh ahead"))
            return "done"

        try:
            return self.transact(decide, try_once=True, first=first)
        except Busy as busy:
            return busy.where

    def seed(
        self,
        refresh_token: str,
        *,
        unless_known: bool = False,
        older: Callable[[float], bool] | None = None,
    ) -> bool:
        """Hold `refresh_token` in the store; the next mint spends it. `unless_known`: not if
        the store holds it already, or held it before, or this host saw it replaced (then it
        is older than the one held, or spent), nor into a store that lost its entry unless
        introspection says it is live, nor when `older(deadline)` says the sink was written
        since it was read. True when it was stored; a shared store that cannot be reached takes none
        (StoreError)."""
        cache = self.cache
        remember_secret(refresh_token)

        def known(entry: Entry | None, end: float | None = None) -> bool:
            """`end`: ask the server and the sink too, by then."""
            newer = (lambda: older is not None and older(end)) if end is not None else None
            ask = (cache.introspect, newer) if newer else None
            return unless_known and refuses(cache.store, cache.key, entry, refresh_token, ask)

        def decide(entry: Entry | None, end: float) -> bool:
            if not unless_known and replaced(cache.store, cache.key, entry, refresh_token):
                raise ConfigurationError(
                    "this refresh token was spent: the server answered it with a newer one in "
                    "this store's chain, and a spent refresh token presented again revokes the "
                    "whole login; it is not seeded",
                    hint="Seed the live one (the refresh-token sink's current value), or log "
                    "in again (`freshtoken login`) and seed the new one.",
                )
            why = missing(cache.store, cache.key, entry)
            if isinstance(why, StoreError):
                raise why  # into this process's stand-in: it would be presented unchecked
            if known(entry, end):
                if why is not None:
                    logger.warning("the configured refresh token is not seeded: %s", why.message)
                return False
            fresh = Entry(
                None,
                refresh_token,
                mints=entry.mints if entry else 0,
                last_mint=entry.last_mint if entry else 0.0,
                past=with_past(entry.past, entry.refresh_token, refresh_token) if entry else (),
                facts=entry.facts if entry else ServerFacts(),  # never dropped by a rewrite
            )
            if cache.store.save(cache.key, fresh, entry.version if entry else 0) is None:
                raise StoreError("the store entry changed while seeding", hint="Try again.")
            cache.state = None
            return True

        return not known(cache.store.load(cache.key)) and self.transact(decide)

    def take(self) -> Entry | None:
        """Remove this key's entry from the store (and memory); what it held."""
        cache = self.cache

        def decide(entry: Entry | None, _end: float) -> Entry | None:
            cache.store.delete(cache.key)
            cache.state = None
            return entry

        return self.transact(decide)
