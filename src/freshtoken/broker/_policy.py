"""When a token may be handed out: the refresh window and `min_ttl` (`RefreshPolicy`), and
promises on a token for a server that revokes the previous access token when it rotates a
refresh token (django-oauth-toolkit does): a token handed out stays valid for the `min_ttl` its
caller asked only if no rotation happens before then.

Every hand-out's deadline is kept in the store entry (`Entry.promised`, wall time, the latest
one), extended by a quantum so that a busy process writes at most once per quantum, by
compare-and-set without the store's lock. A holder about to rotate first closes the entry to
new promises (the same compare-and-set: its phase turns `closing`), then waits until the latest
promise has passed. Kept light (no httpx): the command line's store peek reads it.
"""

from __future__ import annotations

from collections.abc import Callable

from freshtoken._clock import Clock
from freshtoken._errors import FreshtokenError, StoreError, TokenUnavailableError
from freshtoken._log import logger
from freshtoken._record import record, replace
from freshtoken._token import Token
from freshtoken.stores import Entry, TokenStore
from freshtoken.stores._entry import CLOSING, IDLE, SPENDING

DEFAULT_MIN_TTL = 5.0
#: A stored token issued this far in the future is trusted even with a short refresh window.
FUTURE_TOLERANCE = 5.0


def stored_left(token: Token, now: float, skew: float = 0.0, window: float | None = None) -> float:
    """Seconds a token read from a store has left by the wall clock `now`, never more than its
    lifetime. `skew`: how far the clocks of the other hosts sharing the store are known to be
    ahead of this one (learned). A token issued "in the future" (another host's clock ahead,
    or a step back of this one) is counted from its issue, as if it were issued now at the
    latest, up to the refresh window (`window`, default RefreshPolicy's): the documented bound
    on the disagreement of clocks; one issued further ahead is not trusted (none left)."""
    ahead = token.issued_at - now
    bound = RefreshPolicy().window(token.lifetime) if window is None else window
    if ahead > max(FUTURE_TOLERANCE, bound):
        return 0.0
    return min(token.expires_at - now - max(skew, ahead, 0.0), token.lifetime)


def ahead_warning(ahead: float, skew: float, window: float) -> str:
    """What is said of a stored token issued `ahead` seconds "in the future"."""
    said = (
        f"counting the other hosts' clocks as {max(skew, ahead):.0f}s ahead"
        if ahead <= window
        else f"not trusting it: more than the refresh window ({window:.0f}s)"
    )
    return (
        f"a stored token was issued {ahead:.0f}s in this machine's future; {said} (are the "
        "clocks of the machines sharing the store in step?)"
    )


@record
class RefreshPolicy:
    """When to start refreshing: `fraction` of the lifetime before expiry, at least `floor`
    seconds, never more than `max_fraction` of the lifetime (so short tokens still live).

    `default_min_ttl` is what a caller who names no `min_ttl` is promised, never more than
    `default_fraction` (a quarter) of the lifetime, so that short tokens still serve.
    """

    fraction: float = 0.25
    floor: float = 30.0
    max_fraction: float = 0.5
    default_min_ttl: float = DEFAULT_MIN_TTL
    default_fraction: float = 0.25

    def window(self, lifetime: float) -> float:
        return min(max(self.floor, self.fraction * lifetime), self.max_fraction * lifetime)

    def refresh_at(self, token: Token) -> float:
        """When `token` is due for refresh."""
        return token.expires_at - self.window(token.lifetime)

    def min_ttl_for(self, token: Token, min_ttl: float | None = None) -> float:
        """How long `token` must still live to be handed to a caller who asked `min_ttl`."""
        if min_ttl is not None:
            return min_ttl
        return min(self.default_min_ttl, self.default_fraction * token.lifetime)

    def servable(self, token: Token, now: float, min_ttl: float | None = None) -> bool:
        """Valid for what was asked, not yet due for refresh, and not issued "in the future"
        (clocks that disagree): a hand-out that needs no work at all (what the command line
        serves from the store without a broker)."""
        need = self.min_ttl_for(token, min_ttl)
        window = self.window(token.lifetime)
        left = stored_left(token, now, window=window)
        return left >= need >= 0 and left > window


#: The command line's default margin (`freshtoken token` without --min-ttl, and the endpoints of
#: `serve`/`exec`): a shell step that takes a token and runs for a few minutes must not be handed
#: one with seconds left. 225 s like google-auth, at most half the lifetime for short tokens.
CLI_MIN_TTL = 225.0
COMMAND_LINE = RefreshPolicy(default_min_ttl=CLI_MIN_TTL, default_fraction=0.5)


def with_margin(policy: RefreshPolicy, min_ttl: float | None) -> RefreshPolicy:
    """`policy` promising `min_ttl` (the `min_ttl` setting) to callers who name none; capped
    only by a fresh token's lifetime, as a caller's own min_ttl is."""
    if min_ttl is None:
        return policy
    return replace(policy, default_min_ttl=min_ttl, default_fraction=1.0)


#: `rotation_revokes_access`: learned through introspection (auto), or said.
MODES = ("auto", "yes", "no")
#: A promise is published this much further than asked (at most), so that a process serving
#: the same min_ttl again and again writes the store at most once per quantum.
QUANTUM = 5.0
QUANTUM_FRACTION = 0.1
#: A wait for a promise leaves the refresh itself at least this much of the budget.
RESERVE = 1.0

Introspect = Callable[[str, str], "bool | None"]


def guards(mode: str, entry: Entry | None) -> bool:
    """Are promises on `entry`'s token kept? Only while a refresh token is held (nothing else
    rotates), for a server said (yes) or not known not (auto) to revoke on rotation."""
    if entry is None or entry.refresh_token is None or mode == "no":
        return False
    return mode == "yes" or entry.facts.revokes_on_rotation is not False


def rotating(mode: str, entry: Entry) -> bool:
    """Was `entry`'s refresh token presented by a holder that never stored the answer? Then
    its access token may be revoked already, by a server that revokes it on rotation."""
    return entry.phase == SPENDING and guards(mode, entry)


def latest(entry: Entry) -> float:
    """The latest promise on `entry`'s token, whether or not it is closed to new ones."""
    return entry.promised


def covered(entry: Entry, now: float, need: float) -> bool:
    """Is a hand-out of `entry`'s token at wall time `now`, valid for `need` s, promised
    already (no rotation can happen before)?"""
    return entry.phase == IDLE and entry.promised >= now + need


def quantum(lifetime: float) -> float:
    return min(QUANTUM, QUANTUM_FRACTION * lifetime)


def extended(token: Token, now: float, need: float) -> float:
    """The promise to publish for a hand-out at `now` valid for `need` s: a quantum more,
    never past the token's expiry."""
    return min(token.expires_at, now + need + quantum(token.lifetime))


def outstanding(entry: Entry | None, now: float) -> float:
    """Seconds until the latest promise on `entry`'s token has passed (0: none is left)."""
    if entry is None or entry.token is None:
        return 0.0  # a token dropped (after a 401) is promised to nobody
    return max(0.0, min(latest(entry), entry.token.expires_at) - now)


def _too_late(
    entry: Entry, now: float, wait: float, budget: float, need: float | None
) -> TokenUnavailableError:
    assert entry.token is not None
    left = stored_left(entry.token, now)
    return TokenUnavailableError(
        f"no token valid for {need or 0:g}s within this call's budget: this server revokes the "
        "current access token when its refresh token is rotated, and that token is promised to "
        f"another caller for {wait:.1f}s more ({max(budget, 0):.1f}s of the budget left)",
        hint=f"The current token has {max(left, 0):.0f}s left: ask for less (min_ttl / "
        "--min-ttl), or give the call more time (FRESHTOKEN_RETRY_BUDGET, or its deadline). A "
        "server that keeps the old access token valid on rotation: set "
        "FRESHTOKEN_ROTATION_REVOKES_ACCESS=no.",
    )


class Promises:
    """The promises on the tokens of one cache key, as its shared cache keeps them; `mode` is
    the `rotation_revokes_access` setting."""

    def __init__(
        self, mode: str, store: TokenStore, key: str, clock: Clock, introspect: Introspect | None
    ) -> None:
        self.mode, self.store, self.key, self.clock = mode, store, key, clock
        self.introspect = introspect

    def guards(self, entry: Entry | None) -> bool:
        return guards(self.mode, entry)

    def publish(self, entry: Entry, need: float, *, locked: bool) -> Entry | None:
        """Promise `entry`'s token valid for `need` s from now (compare-and-set); the entry as
        stored. None when no promise can be made on it: it is being rotated (closed, or
        spent), or it kept changing. Closed and not spent while the store's lock is `locked`:
        whoever closed it gave up (its rotation failed before the token was presented), so it
        is opened again."""
        now = self.clock.time()
        for _ in range(5):
            token = entry.token
            if token is None or entry.phase == SPENDING or (entry.phase == CLOSING and not locked):
                return None
            if covered(entry, now, need):
                return entry
            promised = max(latest(entry), extended(token, now, need))
            opened = replace(entry, promised=promised, phase=IDLE)
            try:
                version = self.store.save(self.key, opened, entry.version)
            except StoreError as exc:
                # A store that cannot be written is no one's to rotate by either.
                logger.warning("could not store how long a token is promised valid (%s)", exc)
                return opened
            if version is not None:
                return replace(opened, version=version)
            reloaded = self.store.load(self.key)  # another process promised (or closed)
            if reloaded is None or reloaded.token != token:
                return None
            entry = reloaded
        return None

    def postpone(self, entry: Entry | None, policy: RefreshPolicy, budget: float) -> float:
        """Refresh ahead: seconds to put off a rotation of `entry`'s refresh token. It waits
        for promises that end soon (those of callers who name no min_ttl), at most a quarter of
        its `budget`, holding the store's lock: callers who need a longer promise meanwhile
        wait that long at most. A longer promise puts it off (the token has more left)."""
        if entry is None or entry.token is None or entry.phase == SPENDING:
            return 0.0
        if not self.guards(entry):
            return 0.0
        soon = min(policy.min_ttl_for(entry.token) + quantum(entry.token.lifetime), budget / 4)
        return max(0.0, outstanding(entry, self.clock.time()) - soon)

    def close(self, entry: Entry | None, deadline: float, need: float | None) -> Entry | None:
        """Before rotating `entry`'s refresh token (the store's lock held): close its token to
        new promises and wait until the last one has passed, by `deadline` (monotonic), or
        raise at once (closing nothing) if that is too late; the entry as stored. `need`: the
        min_ttl of the caller who needs the rotation (None: refresh ahead)."""
        clock = self.clock
        # Spent by a holder that died: it may have rotated already, promises are moot.
        while entry is not None and entry.phase != SPENDING and self.guards(entry):
            wait = outstanding(entry, clock.time())
            budget = deadline - clock.monotonic()
            if wait > 0 and wait > budget - RESERVE:  # nothing promised: nothing to wait for
                raise _too_late(entry, clock.time(), wait, budget, need)
            if entry.token is not None and entry.phase != CLOSING:
                shut = replace(entry, phase=CLOSING)
                version = self.store.save(self.key, shut, entry.version)
                if version is None:  # a promise was published meanwhile: look again
                    entry = self.store.load(self.key)
                    continue
                entry = replace(shut, version=version)
            if wait > 0:
                logger.info(
                    "waiting %.1fs for a token handed out to stay valid as promised before "
                    "rotating the refresh token (this server revokes the previous access token)",
                    wait,
                )
                clock.sleep(wait)
            if outstanding(entry, clock.time()) <= 0:
                break
        return entry

    def learn(self, previous: Token | None, label: str) -> bool | None:
        """Right after a rotation: does the server revoke the previous access token? Asked of
        introspection; None when it cannot tell (no introspection, no previous token with life
        left, no clear answer), or when the setting says (not auto)."""
        introspect = self.introspect
        if self.mode != "auto" or introspect is None or previous is None:
            return None
        if stored_left(previous, self.clock.time()) <= 0:
            return None
        try:
            active = introspect(previous.access_token, "access_token")
        except FreshtokenError:
            return None
        # "Inactive" says revoked only if it had not expired by the answer anyway.
        if active is None or (not active and stored_left(previous, self.clock.time()) <= 0):
            return None
        logger.info(
            "learned through introspection: rotating the refresh token %s the previous access "
            "token of %s",
            "keeps" if active else "revokes",
            label,
        )
        return not active
