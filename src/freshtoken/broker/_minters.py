"""Spending a refresh token: `RefreshTokenMinter.mint(held)`, called by `Renewal.renew` under
the store's lock with the entry it holds (`HeldEntry`, written by compare-and-set). It spends
the refresh token the store holds, at most once, and writes a rotated one back to its sink (if
any) before the new access token is handed out; None says that the grant is to mint instead
(the server refused the token, or it was lost). A refresh another holder left unsettled is
waited out, then judged by what introspection can vouch for (the end of this module).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from freshtoken._clock import Clock
from freshtoken._errors import (
    FreshtokenError,
    InvalidGrantError,
    TokenUnavailableError,
)
from freshtoken._log import logger
from freshtoken._record import replace
from freshtoken._token import Token
from freshtoken.oauth._grants import RefreshTokenGrant
from freshtoken.stores import Entry
from freshtoken.stores._entry import IDLE, SPENDING, WRITING_BACK, unmarked, with_past

if TYPE_CHECKING:
    from freshtoken.broker._renewal import HeldEntry
    from freshtoken.broker._spender import SpendProcess
    from freshtoken.oauth._client import TokenClient
    from freshtoken.sinks import RefreshTokenSink


@dataclass(frozen=True, slots=True)
class Minted:
    """A new token, the refresh token to keep (None: none), whether one was spent, and the
    monotonic instant its request was sent (its expiry counts from there)."""

    token: Token
    refresh_token: str | None
    sent: float
    refreshed: bool = False
    #: The entry as stored already, with this token: by another holder (not `refreshed`:
    #: nothing was minted here), or by this holder's spender (`refreshed`).
    stored: Entry | None = None


class RefreshTokenMinter:
    """Presents the held refresh token exactly once; None when the grant named `fallback` is
    to mint instead (None: there is no grant, refresh tokens only). A rotated refresh token is
    written to `sink` before the mint returns; when that fails, the store keeps it marked
    pending (and no access token), the call fails, and the next mint writes it first."""

    def __init__(
        self,
        client: TokenClient,
        fallback: str | None,
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
        #: Where a marked refresh token is presented (None: in this process).
        self.elsewhere: SpendProcess | None = None

    def mint(self, held: HeldEntry) -> Minted | None:
        entry = held.entry
        if entry is not None and entry.phase == WRITING_BACK and entry.refresh_token is not None:
            self._write_back(held, entry.refresh_token)  # the last rotation's, never written
            entry = held.entry
        vouched = entry.facts.vouches(self.client.auth_method) if entry else None
        if entry is not None and entry.phase == SPENDING and entry.refresh_token is not None:
            now = wait_out(entry, held.reload, self.client.clock, held.deadline)
            if now is None or now.version != entry.version:  # its outcome was stored
                stored = now and now.token and now.phase != SPENDING
                if stored and now and now.token and now.last_mint > entry.last_mint:
                    return Minted(now.token, now.refresh_token, 0.0, stored=now)
                return self.mint(held)  # settled without a new token: start over from it
            if judge(self.client, entry, self.fallback) is None:
                gone = with_past(entry.past, entry.refresh_token, None)
                held.write(replace(unmarked(entry), refresh_token=None, past=gone))
                return None
            vouched = True  # it said active
        refresh = entry.refresh_token if entry else None
        if refresh is not None:
            return self._spend(held, refresh, vouched)
        return None

    def _spend(self, held: HeldEntry, refresh: str, vouched: bool | None) -> Minted | None:
        """Mark the refresh token as being spent in the store, then present it (in a process
        of its own when there is one: it stores the outcome even if this one is killed).

        The attempt gets its own deadline, one connect and one read timeout (plus the time a
        process of its own may take to start), or the call's deadline if sooner, enforced like
        any deadline; the mark says until when the server
        may still be processing it: that deadline plus one read timeout for a server slower
        than its client."""
        assert held.entry is not None
        if self.sink is not None:
            self.sink.prepare(held.deadline)  # a sink that cannot work costs no refresh token
        if vouched is None:
            # Unmarked, the token is live as far as anyone knows: whether introspection says
            # so tells whether it can vouch for refresh tokens (asked until known).
            vouched = self.client.introspect(refresh)
        if refused := max(held.entry.facts.client_refused, self.client.refused_at):
            # On some servers a refresh with failing client authentication burns the token.
            self.client.require_authentication(refused)
        clock, timeouts = self.client.clock, self.client.timeouts
        now = clock.monotonic()
        elsewhere = self.elsewhere
        if elsewhere is not None and not elsewhere.ready():
            elsewhere = None  # that process would not see this one's store: present it here
        start = elsewhere.startup if elsewhere is not None else 0.0
        attempt_deadline = min(held.deadline, now + start + timeouts.connect + timeouts.read)
        until = clock.time() + (attempt_deadline - now) + timeouts.read
        held.write(
            replace(
                held.entry,
                refresh_token=refresh,
                phase=SPENDING,
                phase_owner=self.owner,
                phase_until=until,
                facts=replace(
                    held.entry.facts,
                    introspection_vouches=vouched,
                    vouched_by=self.client.auth_method,
                ),
                failure=None,
            )
        )
        if not held.store.owns_lock(held.key):
            # Our lease ran out (this process was paused): another holder may be spending it.
            raise TokenUnavailableError(
                "the store's lock was lost before the refresh token was presented; it was not",
                hint="This process was paused or slow past the lock's lease; it will retry.",
            )
        if elsewhere is not None:
            return elsewhere(held, attempt_deadline)
        return self.present(held, attempt_deadline)

    def present(
        self, held: HeldEntry, attempt_deadline: float, answer_by: float | None = None
    ) -> Minted | None:
        """Present the refresh token `held.entry` marks as being spent, by `attempt_deadline`
        (its answer read until `answer_by`, if later), and settle the mark where the outcome
        is known."""
        marked = held.entry
        assert marked is not None
        refresh = marked.refresh_token
        assert refresh is not None
        try:
            sent = self.client.clock.monotonic()
            grant = RefreshTokenGrant(refresh, self.scope)
            token = self.client.fetch(grant, attempt_deadline, answer_by)
        except InvalidGrantError as exc:
            # What introspection said about a token that was not live teaches nothing.
            vouched = marked.facts.introspection_vouches or None
            held.write(
                replace(
                    unmarked(marked),
                    refresh_token=None,
                    facts=replace(marked.facts, introspection_vouches=vouched),
                    past=with_past(marked.past, refresh, None),
                )
            )
            if self.fallback is None:
                raise
            logger.warning(
                "refresh token refused (%s); falling back to %s. %s",
                exc.error,
                self.fallback,
                exc.hint,
            )
            return None
        except FreshtokenError as exc:
            from freshtoken.oauth._response import surely_unprocessed

            if surely_unprocessed(exc):  # the server never saw it: it is still unspent
                held.write(unmarked(marked))
            raise
        # A server that does not rotate answers without a new one: the old one stays good.
        rotated = token.refresh_token or refresh
        if rotated != refresh:
            self._write_back(held, rotated)  # before anyone is handed the new access token
        return Minted(token, rotated, sent, refreshed=True)

    def _write_back(self, held: HeldEntry, refresh: str) -> None:
        """Write `refresh` to the sink by the call's deadline. On failure store it as the
        entry's refresh token, marked pending and with no access token (so that no caller is
        served before it is written), and raise."""
        if self.sink is None:
            return
        entry = held.entry
        assert entry is not None
        try:
            self.sink.write(refresh, held.deadline)
        except FreshtokenError as exc:
            logger.warning("could not write the new refresh token to %s: %s", self.sink.name, exc)
            past = with_past(entry.past, entry.refresh_token, refresh)
            held.write(
                replace(
                    entry,
                    token=None,
                    refresh_token=refresh,
                    phase=WRITING_BACK,
                    phase_owner=None,
                    phase_until=0.0,
                    past=past,
                )
            )
            raise
        if entry.phase == WRITING_BACK:
            held.write(replace(entry, phase=IDLE))


# -- a refresh token that another holder marked as being spent and never settled: wait out
# its attempt while watching the store for the outcome, then decide by what introspection can
# vouch for. An unknown outcome counts as spent: the token is never presented while an earlier
# attempt may still be in flight, and never presented again on a guess.

#: How often a holder waiting out another's attempt looks for its stored outcome (s).
POLL = 0.1


def vouching(entry: Entry | None) -> str:
    """`ServerFacts.vouches` as "yes", "no" or "unknown", for `freshtoken doctor` and `status`."""
    said = entry.facts.vouches() if entry else None
    return "unknown" if said is None else "yes" if said else "no"


def wait_out(
    entry: Entry, reload: Callable[[], Entry | None], clock: Clock, deadline: float
) -> Entry | None:
    """Wait until `entry`'s attempt surely ended, or the store holds something else (the
    process spending it stored the outcome); the entry then (`entry` itself if unchanged).
    Raises TokenUnavailableError when `deadline` (monotonic) comes first."""
    while (left := entry.phase_until - clock.time()) > 0:
        now = clock.monotonic()
        if now >= deadline:
            raise TokenUnavailableError(
                f"a refresh started earlier (by this or another process) may still be in "
                f"flight at the server "
                f"for {left:.0f}s more; its refresh token is not presented again before then "
                "(that could revoke the whole login)",
                hint="Try again after that; the process spending it stores the new token as "
                "soon as the server answers. `freshtoken status` shows the entry.",
            )
        clock.sleep(min(POLL, left, deadline - now))
        current = reload()
        if current is None or current.version != entry.version:
            return current
    return entry


def judge(client: TokenClient, entry: Entry, fallback: str | None) -> str | None:
    """After the attempt surely ended with no outcome stored: the refresh token to present
    again (introspection says it is unspent), or None (spent, or unknown with a `fallback`
    grant to mint with instead). Unknown without a fallback raises, keeping the token: it may
    still be the live one."""
    refresh = entry.refresh_token
    assert refresh is not None
    # Active is proof whatever else was learned; inactive only from a server that vouches,
    # as learned by the method asking now.
    vouched = entry.facts.vouches(client.auth_method)
    active = client.introspect(refresh) if vouched is not False else None
    if active:
        logger.warning(
            "resuming a refresh left unfinished by another holder: the server says its "
            "refresh token is still unspent"
        )
        return refresh
    spent = active is False and vouched is True
    if spent or fallback:
        logger.warning(
            "a refresh token was presented by a holder that never stored the answer, and the "
            "server %s; it is not presented again (that could revoke the whole login). %s",
            "reports it spent" if spent else "cannot tell whether it was spent",
            f"Falling back to {fallback}." if fallback else "Seed a new refresh token.",
        )
        return None
    why = (
        "introspection gave no answer"
        if active is None and vouched is not False
        else f"introspection is not known to vouch for refresh tokens with {client.auth_method}"
    )
    raise TokenUnavailableError(
        "a refresh token was presented by a holder that never stored the answer, and "
        f"whether the server spent it cannot be told ({why}); it is kept, but not presented "
        "again (if it was spent, that would revoke the whole login)",
        retryable=False,
        hint="Seed a refresh token from a fresh login (`freshtoken seed-refresh-token`). If you "
        "know the earlier attempt never reached the server, seeding this same one again "
        "clears the mark. `freshtoken status` shows the entry.",
    )
