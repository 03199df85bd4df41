"""The token of one cache key, shared by every thread, task and process that uses the store:
the hot state this process holds, adopting what others stored, invalidation, and promises.
Minting is `_renewal.py`'s (single flight twice over: a lock per process, the store's lock per
store).

Promises are kept for a server that revokes the previous access token when it rotates a
refresh token (django-oauth-toolkit does): a token handed out stays valid for the `min_ttl` its
caller asked only if no rotation happens before then. Every hand-out's deadline is kept in the
store entry (`Entry.promised`, wall time, the latest one), extended by a quantum so that a busy
process writes at most once per quantum, by compare-and-set without the store's lock. A holder
about to rotate first closes the entry to new promises (the same compare-and-set: its phase
turns `closing`), then waits until the latest promise has passed.
"""

from __future__ import annotations

import contextlib
import math
from _thread import allocate_lock as Lock  # threading.Lock; the store peek reads guards()
from typing import TYPE_CHECKING

from freshtoken._clock import Clock
from freshtoken._errors import (
    ConfigurationError,
    FreshtokenError,
    StoreError,
    TokenUnavailableError,
)
from freshtoken._log import logger, remember_secret
from freshtoken._record import replace
from freshtoken._token import FUTURE_TOLERANCE, RefreshPolicy, Token, ahead_warning, stored_left
from freshtoken.provider._presets import words
from freshtoken.stores import Entry, TokenStore
from freshtoken.stores._entry import CLOSING, IDLE, SPENDING

if TYPE_CHECKING:
    from freshtoken.oauth._client import TokenClient

#: What the hot path reads in one step: the token, its default min_ttl, and until when it may
#: be handed out without work (its expiry; for a server that revokes it on rotation, how far
#: it is promised already) and when it is due for refresh, on this process's monotonic clock.
State = tuple[Token, float, float, float]
#: Seconds a token minted after an invalidation is not invalidated again (a 401 loop).
INVALIDATE_COOLDOWN = 5.0


#: A promise is published this much further than asked (at most), so that a process serving
#: the same min_ttl again and again writes the store at most once per quantum.
QUANTUM = 5.0
QUANTUM_FRACTION = 0.1
#: A wait for a promise leaves the refresh itself at least this much of the budget.
RESERVE = 1.0


#: `rotation_revokes_access`: learned through introspection (auto), or said.
MODES = ("auto", "yes", "no")


def guards(mode: str, entry: Entry | None) -> bool:
    """Are promises on `entry`'s token kept? Only while a refresh token is held (nothing else
    rotates), for a server said (yes) or not known not (auto) to revoke on rotation."""
    if entry is None or entry.refresh_token is None or mode == "no":
        return False
    return mode == "yes" or entry.facts.revokes_on_rotation is not False


def covered(entry: Entry, now: float, need: float) -> bool:
    """Is a hand-out of `entry`'s token at wall time `now`, valid for `need` s, promised
    already (no rotation can happen before)?"""
    return entry.phase == IDLE and entry.promised >= now + need


def quantum(lifetime: float) -> float:
    return min(QUANTUM, QUANTUM_FRACTION * lifetime)


def outstanding(entry: Entry | None, now: float) -> float:
    """Seconds until the latest promise on `entry`'s token has passed (0: none is left)."""
    if entry is None or entry.token is None:
        return 0.0  # a token dropped (after a 401) is promised to nobody
    return max(0.0, min(entry.promised, entry.token.expires_at) - now)


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


class SharedCache:
    """Holds the token of `key` this process hands out.

    Within the process a token's expiry is kept on the monotonic clock: a wall-clock step
    changes nothing for a token this process holds. The wall clock is read only when a token
    crosses a process boundary (adopted from the store); a stored token issued "in the
    future" teaches how far the other hosts' clocks are ahead (`skew`), up to the refresh
    window, beyond which it is not trusted.
    """

    def __init__(
        self,
        store: TokenStore,
        key: str,
        client: TokenClient,
        *,
        policy: RefreshPolicy,
        clock: Clock,
        invalidate_cooldown: float = INVALIDATE_COOLDOWN,
        rotation: str = "auto",
    ) -> None:
        self.store = store
        self.provider = client.preset  # hints may name the provider preset's settings
        self.key = key
        self.policy = policy
        self.clock = clock
        #: Who the tokens are for, in -v log lines (the client id and endpoint, never a secret).
        self.label = f"client {client.auth.client_id} at {client.identity()}"
        self.state: State | None = None
        #: The held token and its expiry on the monotonic clock.
        self.expires: tuple[Token, float] | None = None
        #: Does rotating the refresh token revoke the previous access token (auto: learned)?
        self.rotation = rotation
        #: Asks the server whether a token is active (learning what rotation revokes).
        self.introspect = client.introspect
        #: How long a token of this key lives (0: not known yet).
        self.lifetime = 0.0
        self.counts = dict.fromkeys(
            ("hits", "mints", "refreshes", "adopted", "waits", "failures", "stale_served"), 0
        )
        self.flight = Lock()
        self.invalidate_cooldown = invalidate_cooldown
        self.invalidated_at = math.inf  # when a 401 last dropped a token (never yet)
        #: When the last token issued "in the future" was issued (it was said once).
        self._doubted: float | None = None
        #: How far the clocks of the hosts sharing the store are ahead of this one, at least:
        #: learned from the tokens they stored, and counted for every stored token (and added
        #: to the promises this process writes), up to the refresh window.
        self.skew = 0.0
        #: Refresh ahead's schedule, restarted by every adoption: no refresh ahead before this
        #: monotonic instant (one starter at a time; backoff), after this many failures.
        self.next_try = 0.0
        self.ahead_failures = 0

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
        ahead, window = token.issued_at - now, self.policy.window(token.lifetime)
        if ahead > FUTURE_TOLERANCE and self._doubted != token.issued_at:
            self._doubted = token.issued_at  # said once per token: it is looked at many times
            if ahead <= window:  # the host that minted it is at least this far ahead: learned
                self.skew = max(self.skew, ahead)
            logger.warning("%s", ahead_warning(ahead, self.skew, window))
        return stored_left(token, now, self.skew, window)

    def shared_time(self) -> float:
        """The wall clock as the hosts sharing the store count it (promises are on theirs)."""
        return self.clock.time() + self.skew

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
        if guards(self.rotation, entry):
            # Closing: promised to nobody new; spending: no promise beyond now.
            promised = {IDLE: entry.promised - self.shared_time(), SPENDING: 0.0}.get(
                entry.phase, -math.inf
            )
            until = min(expiry, mono + promised)
        self.expires = (token, expiry)
        self.state = (token, self.policy.min_ttl_for(token), until, expiry - window)
        self.lifetime = token.lifetime
        self.next_try, self.ahead_failures = 0.0, 0
        return token

    def minted(self, token: Token, refresh: str | None, refreshed: bool, why: str) -> None:
        """Count a mint, say it (-v, with `why`), learn the tokens' lifetime from it, and scrub
        its refresh token from logs."""
        self.counts["mints"] += 1
        self.counts["refreshes"] += refreshed
        self.lifetime = token.lifetime
        kind = "refreshed" if refreshed else "minted"
        logger.info("%s a token for %s: lives %.0fs (%s)", kind, self.label, self.lifetime, why)
        if refresh:
            remember_secret(refresh)

    def too_long(self, min_ttl: float, lifetime: float) -> ConfigurationError:
        return ConfigurationError(
            f"min_ttl {min_ttl:g}s is more than the {lifetime:g}s a token of this client lives",
            hint="Ask for less (min_ttl / --min-ttl), or raise the token lifetime on the OAuth "
            "client" + words(self.provider, None, "token_lifetime", "."),
        )

    def checked(self, token: Token, min_ttl: float | None) -> Token:
        """`token`, if it has `min_ttl` left. Every hand-out is checked, fresh mints too: an
        endpoint slower than the token's life, or a token shorter than asked for, is an
        error, never a success."""
        need, left = self.policy.min_ttl_for(token, min_ttl), self.left(token)
        if left < need:
            if need > token.lifetime:
                raise self.too_long(need, token.lifetime)
            raise TokenUnavailableError(
                f"a new token had {left:.1f}s left when it arrived, less than the {need:g}s "
                "asked for",
                hint="The token endpoint answered slower than the token lives: check its "
                "latency, or raise the token lifetime on the OAuth client.",
            )
        return token

    def check_lifetime(self, min_ttl: float | None, entry: Entry | None) -> None:
        known = self.lifetime or (entry.facts.lifetime if entry is not None else 0.0)
        if min_ttl is not None and known and min_ttl > known:
            raise self.too_long(min_ttl, known)

    def hand_out(
        self, entry: Entry, sent: float | None, min_ttl: float | None, *, locked: bool
    ) -> Token | None:
        """Hold `entry`'s token; where promises are kept, publish this one (None: it cannot be
        promised, a rotation is under way; `locked`: the store's lock is held)."""
        token = entry.token
        if token is None or not guards(self.rotation, entry):
            return self.adopt(entry, sent)
        need = self.policy.min_ttl_for(token, min_ttl)
        # Promised on this clock, read on theirs: as long as they count it.
        published = self.publish(entry, need + self.skew, locked=locked)
        if published is None:
            return None
        state, held = self.state, self.expires
        if sent is not None or state is None or held is None or state[0] != token:
            return self.adopt(published, sent)  # (which reads how far it is promised)
        # Kept on the monotonic clock, as far as promised by theirs (as adopt counts it).
        until = min(held[1], self.clock.monotonic() + published.promised - self.shared_time())
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

    def rotating(self, entry: Entry) -> bool:
        """Was `entry`'s refresh token presented by a holder that never stored the answer? Then
        its access token may be revoked already, by a server that revokes it on rotation."""
        return entry.phase == SPENDING and guards(self.rotation, entry)

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
            # A quantum more than asked, never past the token's expiry.
            extended = min(token.expires_at, now + need + quantum(token.lifetime))
            promised = max(entry.promised, extended)
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

    def postpone(self, entry: Entry | None, budget: float) -> float:
        """Refresh ahead: seconds to put off a rotation of `entry`'s refresh token. It waits
        for promises that end soon (those of callers who name no min_ttl), at most a quarter of
        its `budget`, holding the store's lock: callers who need a longer promise meanwhile
        wait that long at most. A longer promise puts it off (the token has more left)."""
        if entry is None or entry.token is None or entry.phase == SPENDING:
            return 0.0
        if not guards(self.rotation, entry):
            return 0.0
        soon = min(self.policy.min_ttl_for(entry.token) + quantum(entry.token.lifetime), budget / 4)
        return max(0.0, outstanding(entry, self.clock.time()) - soon)

    def close_for_rotation(
        self, entry: Entry | None, deadline: float, need: float | None
    ) -> Entry | None:
        """Before rotating `entry`'s refresh token (the store's lock held): close its token to
        new promises and wait until the last one has passed, by `deadline` (monotonic), or
        raise at once (closing nothing) if that is too late; the entry as stored. `need`: the
        min_ttl of the caller who needs the rotation (None: refresh ahead)."""
        clock = self.clock
        # Spent by a holder that died: it may have rotated already, promises are moot.
        while entry is not None and entry.phase != SPENDING and guards(self.rotation, entry):
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

    def learn(self, previous: Token | None) -> bool | None:
        """Right after a rotation: does the server revoke the previous access token? Asked of
        introspection; None when it cannot tell (no introspection, no previous token with life
        left, no clear answer), or when the setting says (not auto)."""
        if self.rotation != "auto" or previous is None:
            return None
        if stored_left(previous, self.clock.time()) <= 0:
            return None
        try:
            active = self.introspect(previous.access_token, "access_token")
        except FreshtokenError:
            return None
        # "Inactive" says revoked only if it had not expired by the answer anyway.
        if active is None or (not active and stored_left(previous, self.clock.time()) <= 0):
            return None
        logger.info(
            "learned through introspection: rotating the refresh token %s the previous access "
            "token of %s",
            "keeps" if active else "revokes",
            self.label,
        )
        return not active
