"""Ways of getting a new token, each behind one `mint(held)` call made under the store's lock.

`GrantMinter` asks with a grant (client credentials). `RefreshTokenMinter` spends the refresh
token the store holds, at most once, writes a rotated one back to its sink (if any) before the
new access token is handed out, and falls back to a `GrantMinter` when it has none or the
server refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from freshtoken._errors import (
    ErrorContext,
    InsufficientScopeError,
    InvalidGrantError,
    OAuthError,
    TokenUnavailableError,
)
from freshtoken._log import logger
from freshtoken._token import Token
from freshtoken.oauth._client import TokenClient
from freshtoken.oauth._grants import Grant, RefreshTokenGrant
from freshtoken.oauth._retry import surely_unprocessed
from freshtoken.stores import Entry
from freshtoken.stores._entry import with_past

if TYPE_CHECKING:
    from freshtoken.sinks import RefreshTokenSink


@dataclass(frozen=True, slots=True)
class Minted:
    """A new token, the refresh token to keep (None: none), whether one was spent, and the
    monotonic instant its request was sent (its expiry counts from there)."""

    token: Token
    refresh_token: str | None
    sent: float
    refreshed: bool = False


class Held(Protocol):
    """The shared cache's view of its entry while it holds the store's lock."""

    @property
    def entry(self) -> Entry | None: ...
    @property
    def deadline(self) -> float:
        """The monotonic instant by which the mint must end."""
        ...

    def write(self, entry: Entry) -> Entry:
        """Store `entry` over the current one; the stored entry (with its version)."""
        ...

    def owns_lock(self) -> bool: ...


class Minter(Protocol):
    def mint(self, held: Held) -> Minted: ...


class GrantMinter:
    """Mints with `grant`; the server may add a refresh token (Keycloak can)."""

    def __init__(self, client: TokenClient, grant: Grant) -> None:
        self.client = client
        self.grant = grant

    def mint(self, held: Held) -> Minted:
        sent = self.client.clock.monotonic()
        token = self.client.fetch(self.grant, held.deadline)
        return Minted(token, token.refresh_token, sent)


class RefreshTokenMinter:
    """Presents the held refresh token exactly once; `fallback` mints when none is held or
    the server refuses it (None: refresh tokens only). A rotated refresh token is written to
    `sink` before the mint returns; when that fails, the store keeps it marked pending (and no
    access token), the call fails, and the next mint writes it first."""

    def __init__(
        self,
        client: TokenClient,
        fallback: GrantMinter | None,
        *,
        scope: tuple[str, ...],
        owner: str,
        sink: RefreshTokenSink | None = None,
    ) -> None:
        self.client = client
        self.fallback = fallback
        self.scope = scope
        self.owner = owner
        self.sink = sink

    def mint(self, held: Held) -> Minted:
        entry = held.entry
        refresh = entry.refresh_token if entry else None
        if entry is not None and entry.sink_pending and refresh is not None:
            self._write_back(held, refresh)  # the last rotation's, never written: first
        if entry is not None and entry.spending is not None and refresh is not None:
            refresh = self._resume(entry, held.deadline)
            if refresh is None:
                gone = with_past(entry.past, entry.refresh_token, None)
                held.write(replace(entry, refresh_token=None, spending=None, past=gone))
        if refresh is not None:
            return self._spend(held, refresh)
        return self._fall_back(held)

    def _fall_back(self, held: Held) -> Minted:
        if self.fallback is None:
            raise InvalidGrantError(
                "no refresh token is held for this client",
                hint="Seed one obtained by a login (TokenBroker.seed_refresh_token, or "
                "`freshtoken seed-refresh-token`), or configure client credentials.",
            )
        return self.fallback.mint(held)

    def _spend(self, held: Held, refresh: str) -> Minted:
        """Mark the refresh token as being spent in the store, then present it.

        The attempt gets its own deadline, one connect and one read timeout (or the call's
        deadline, if sooner), enforced like any deadline; the mark says until when the server
        may still be processing it: that deadline plus one read timeout for a server slower
        than its client."""
        assert held.entry is not None
        if self.sink is not None:
            self.sink.prepare(held.deadline)  # a sink that cannot work costs no refresh token
        clock, timeouts = self.client.clock, self.client.timeouts
        now = clock.monotonic()
        attempt_deadline = min(held.deadline, now + timeouts.connect + timeouts.read)
        until = clock.time() + (attempt_deadline - now) + timeouts.read
        marked = held.write(
            replace(held.entry, refresh_token=refresh, spending=self.owner, spending_until=until)
        )
        if not held.owns_lock():
            # Our lease ran out (this process was paused): another holder may be spending it.
            raise TokenUnavailableError(
                "the store's lock was lost before the refresh token was presented; it was not",
                hint="This process was paused or slow past the lock's lease; it will retry.",
            )
        try:
            sent = clock.monotonic()
            token = self.client.fetch(RefreshTokenGrant(refresh, self.scope), attempt_deadline)
        except InvalidGrantError as exc:
            gone = with_past(marked.past, refresh, None)
            held.write(replace(marked, refresh_token=None, spending=None, past=gone))
            if self.fallback is None:
                raise
            logger.warning(
                "refresh token refused (%s); falling back to %s. %s",
                exc.error,
                self.fallback.grant.name,
                exc.hint,
            )
            return self.fallback.mint(held)
        except OAuthError as exc:
            if surely_unprocessed(exc):  # the server never saw it: it is still unspent
                held.write(replace(marked, spending=None))
            raise
        # A server that does not rotate answers without a new one: the old one stays good.
        rotated = token.refresh_token or refresh
        if rotated != refresh:
            self._write_back(held, rotated)  # before anyone is handed the new access token
        return Minted(token, rotated, sent, refreshed=True)

    def _write_back(self, held: Held, refresh: str) -> None:
        """Write `refresh` to the sink by the call's deadline. On failure store it as the
        entry's refresh token, marked pending and with no access token (so that no caller is
        served before it is written), and raise."""
        if self.sink is None:
            return
        entry = held.entry
        assert entry is not None
        try:
            self.sink.write(refresh, held.deadline)
        except OAuthError as exc:
            logger.warning("could not write the new refresh token to %s: %s", self.sink.name, exc)
            past = with_past(entry.past, entry.refresh_token, refresh)
            held.write(
                replace(
                    entry,
                    token=None,
                    refresh_token=refresh,
                    spending=None,
                    sink_pending=True,
                    past=past,
                )
            )
            raise
        if entry.sink_pending:
            held.write(replace(entry, sink_pending=False))

    def _resume(self, entry: Entry, deadline: float) -> str | None:
        """A holder presented this refresh token and never stored the outcome (it died, or
        the answer was lost): an unknown outcome counts as spent. Present it again only once
        the server cannot still be processing that attempt, and says it is still active."""
        refresh = entry.refresh_token
        assert refresh is not None
        clock = self.client.clock
        wait = entry.spending_until - clock.time()
        if wait > 0:
            if clock.monotonic() + wait > deadline:
                raise TokenUnavailableError(
                    f"a refresh started by another holder may still be in flight at the "
                    f"server for {wait:.0f}s more; its refresh token is not presented again "
                    "before then (that could revoke the whole login)",
                    hint="Try again after that; a holder that was only slow stores the new "
                    "token meanwhile. `freshtoken status` shows the entry.",
                )
            clock.sleep(wait)
        active = self.client.introspect(refresh)
        if active:
            logger.warning(
                "resuming a refresh left unfinished by another holder: the server "
                "says its refresh token is still unspent"
            )
            return refresh
        logger.warning(
            "a refresh token was presented by a holder that never stored the answer, and the "
            "server %s; it is not presented again (that could revoke the whole login). %s",
            "reports it spent" if active is False else "cannot tell whether it was spent",
            "Falling back to client credentials."
            if self.fallback
            else "Seed a new refresh token from a fresh login.",
        )
        return None


def scope_problem(
    token: Token, requested: tuple[str, ...], identity: str
) -> InsufficientScopeError | None:
    """The error for a token granted fewer scopes than `requested`, or None."""
    if token.scope is None or not requested:
        return None  # a server that states no scope (Genesys) grants what the client has
    missing = sorted(set(requested) - set(token.scope))
    if not missing:
        return None
    return InsufficientScopeError(
        f"the server granted scope {' '.join(token.scope) or '(none)'} without {' '.join(missing)}",
        hint=InsufficientScopeError.explain(ErrorContext(identity)),
    )
