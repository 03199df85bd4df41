"""The one transaction on a cache key's entry, and its clients.

`Renewal.transact` is the only code that takes both locks: this process's flight (one thread
at a time), then the store's lock (one process at a time); it reloads the entry under them and
runs a decision on it. `renew` mints (with the grant, or the refresh token through
`_refresh.py`) and commits by compare-and-set (`HeldEntry`: the entry under the lock, as the
minter reads and writes it). Every writer is a short client: a miss (`obtain`), refresh ahead
and keep-alive (`_ahead.py`), seeding, removing (`take`), and the detached spender (which holds
the spend mark instead of the lock).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, TypeVar

from freshtoken._errors import (
    ConfigurationError,
    ErrorContext,
    FreshtokenError,
    InsufficientScopeError,
    InvalidClientError,
    InvalidGrantError,
    StoreError,
    TokenUnavailableError,
)
from freshtoken._log import logger, one_line, remember_secret
from freshtoken._record import replace
from freshtoken._token import Token
from freshtoken.broker._refresh import Minted, RefreshTokenMinter, changed_under_lock
from freshtoken.broker._shared import SharedCache
from freshtoken.stores import Entry, TokenStore
from freshtoken.stores._entry import with_past
from freshtoken.stores._spent import missing, refuses, replaced

T = TypeVar("T")
Decide = Callable[[Entry | None, float], T]
#: A configured refresh token, and what tells whether it is older than the sink's last write.
Seed = tuple[str, Callable[[float], bool] | None]

if TYPE_CHECKING:
    from freshtoken.oauth._client import TokenClient
    from freshtoken.oauth._grants import Grant
    from freshtoken.sinks import RefreshTokenSink


class Busy(Exception):
    """A one-try transaction found a lock taken: "in_flight" (a thread of this process) or
    "busy" (another process)."""

    def __init__(self, where: Literal["in_flight", "busy"]) -> None:
        super().__init__(where)
        self.where: Literal["in_flight", "busy"] = where


class HeldEntry:
    """The entry under the store's lock; writes are compare-and-set on its version."""

    def __init__(self, store: TokenStore, key: str, entry: Entry | None, deadline: float) -> None:
        self.store, self.key = store, key
        self.entry = entry
        self.deadline = deadline

    def _save(self, entry: Entry, expected: int) -> int | None:
        try:
            return self.store.save(self.key, entry, expected)
        except StoreError as exc:
            # The token is good: keep serving it from memory rather than fail the caller.
            logger.warning("could not store the new token (%s); serving it from memory", exc)
            return expected

    def write(self, entry: Entry) -> Entry:
        """Store `entry` over the held one. A store that fails, or someone else writing
        meanwhile (a lease that ran out, a store that failed over), means this holder must not
        go on: StoreError (a spend mark that was not stored must not be acted on)."""
        version = self.store.save(self.key, entry, self.entry.version if self.entry else 0)
        if version is None:
            raise changed_under_lock()
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
            theirs = self.store.load(self.key)
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

    def locked(self) -> bool:
        """Whether the store's lock is still this process's (its lease may have run out)."""
        return self.store.owns_lock(self.key)

    def sharing(self) -> bool:
        """Whether the store is the shared one now (not this process's stand-in for it)."""
        return getattr(self.store, "sharing", True)

    def reload(self) -> Entry | None:
        """The entry as stored now (a process spending a refresh token may have stored its
        outcome without the lock: its mark keeps everyone else from the token meanwhile)."""
        self.entry = self.store.load(self.key)
        return self.entry


def following(
    before: Entry | None, token: Token | None, refresh: str | None, last_mint: float | None = None
) -> Entry:
    """The entry that follows `before` with `token` and `refresh` held: every phase reset, the
    refresh token it held remembered as replaced, the mint count and what was learned about the
    server carried over whole (a rewrite never drops a fact)."""
    if before is None:
        return Entry(token, refresh, last_mint=last_mint or 0.0)
    return Entry(
        token,
        refresh,
        mints=before.mints,
        last_mint=before.last_mint if last_mint is None else last_mint,
        past=with_past(before.past, before.refresh_token, refresh),
        facts=before.facts,
    )


def scope_problem(
    token: Token, requested: tuple[str, ...], identity: str
) -> InsufficientScopeError | None:
    """The error for a token granted fewer scopes than `requested`, or None."""
    if token.scope is None or not requested:
        return None  # a server that states no scope grants what the client has
    missing = sorted(set(requested) - set(token.scope))
    if not missing:
        return None
    return InsufficientScopeError(
        f"the server granted scope {one_line(' '.join(token.scope)) or '(none)'} without "
        f"{one_line(' '.join(missing))}",
        hint=InsufficientScopeError.explain(ErrorContext(identity)),
    )


class Renewal:
    """Mints the tokens of one shared cache, as the only caller across threads and processes:
    with the refresh token held (`minter`, which writes a rotated one to `sink`), else with
    `grant` (None: refresh tokens only); a token that fails the scope check is never cached."""

    def __init__(
        self,
        cache: SharedCache,
        client: TokenClient,
        grant: Grant | None,
        *,
        owner: str,
        sink: RefreshTokenSink | None,
        wait_timeout: float,
        scope_check: Literal["raise", "warn"] = "raise",
    ) -> None:
        self.cache = cache
        self.client, self.grant = client, grant
        self.requested_scope = grant.scope if grant is not None else ()
        fallback = grant.name if grant is not None else None
        self.minter = RefreshTokenMinter(
            client, fallback, scope=self.requested_scope, owner=owner, sink=sink
        )
        self.wait_timeout = wait_timeout
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
        why: str = "asked",
        spend: Callable[[HeldEntry], Minted | None] | None = None,
    ) -> tuple[Entry, float | None]:
        """Mint under the store's lock, by `deadline`, and store the result before returning
        it, with the monotonic instant its request was sent (None: another holder's newer
        token was kept instead); `why` says what caused it, in the -v log line. A refresh
        token held is spent (by `spend`, default the minter's); the grant mints when there
        is none, or the minter falls back to it."""
        cache = self.cache
        held = HeldEntry(cache.store, cache.key, entry, deadline)
        if spend is None and entry is not None and entry.refresh_token is not None:
            spend = self.minter.mint
        try:
            minted = (spend(held) if spend is not None else None) or self._with_grant(held)
        except FreshtokenError as exc:
            if not isinstance(exc, ConfigurationError):
                self._failure = (cache.clock.monotonic(), exc)  # for those who waited for it
            if isinstance(exc, InvalidClientError) and held.entry is not None:
                # Known to fail until a token is had: no refresh token presented unchecked.
                # A refusal the server answered dates the mark; our own holding back does not.
                was = held.entry.facts.client_refused
                when = cache.clock.time() if exc.status is not None or not was else was
                facts = replace(held.entry.facts, client_refused=when)
                with contextlib.suppress(StoreError):
                    held.write(replace(held.entry, facts=facts))
            raise
        if minted.stored is not None and not minted.refreshed:
            return minted.stored, None  # another holder's outcome, stored meanwhile: no mint
        before = held.entry
        token, refresh = minted.token, minted.refresh_token
        cache.minted(token, refresh, minted.refreshed, why)
        if minted.stored is not None:  # stored by this holder's spender: as it stored it
            return minted.stored, minted.sent
        bare = replace(token, refresh_token=None)  # callers never get the refresh token
        new = following(before, bare, refresh, last_mint=token.issued_at)
        facts = replace(new.facts, lifetime=cache.lifetime, client_refused=0.0)
        new = replace(new, mints=new.mints + 1, facts=facts)
        problem = scope_problem(token, self.requested_scope, self.client.identity())
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

    def _with_grant(self, held: HeldEntry) -> Minted:
        if self.grant is None:
            raise missing(held.store, held.key, held.entry) or InvalidGrantError(
                "no refresh token is held for this client",
                hint="Seed one obtained by a login (TokenBroker.seed_refresh_token, or "
                "`freshtoken seed-refresh-token`), or configure client credentials.",
            )
        sent = self.client.clock.monotonic()
        token = self.client.fetch(self.grant, held.deadline)
        return Minted(token, token.refresh_token, sent)

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
            # None when it cannot be promised without the lock (a rotation is under way).
            return cache.hand_out(entry, None, min_ttl, locked=False)

        minted = False

        def decide(entry: Entry | None, end: float) -> Token:
            nonlocal minted
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
            minted = True
            token = cache.hand_out(*self.renew(entry, end, why), min_ttl, locked=True)
            assert token is not None  # a token just minted, under the lock: no rotation
            return token

        for _ in range(2):
            try:
                token = self.transact(decide, deadline=deadline, first=first)
            except FreshtokenError:
                cache.counts["failures"] += 1
                raise
            if minted or cache.usable(token, min_ttl):
                break
            # A token held or adopted had min_ttl left when decided and lost it while this
            # call was slow (a loaded machine): decide again, which renews it now.
        return cache.checked(token, min_ttl)

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
            fresh = following(entry, None, refresh_token)
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
