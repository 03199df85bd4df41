"""When a token may be handed out and when it is due for refresh (kept light: the command
line's fast path reads it)."""

from __future__ import annotations

from freshtoken._record import record, replace
from freshtoken._token import Token

DEFAULT_MIN_TTL = 5.0
#: A stored token issued further than this in the future is not trusted (clocks disagree).
FUTURE_TOLERANCE = 5.0


def stored_left(token: Token, now: float) -> float:
    """Seconds a token read from a store has left by the wall clock `now`: never more than its
    lifetime, and none when it was issued "in the future" (another host's clock, or a step of
    this one)."""
    if token.issued_at > now + FUTURE_TOLERANCE:
        return 0.0
    return min(token.expires_at - now, token.lifetime)


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
        return stored_left(token, now) >= need >= 0 and now < self.refresh_at(token)


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
