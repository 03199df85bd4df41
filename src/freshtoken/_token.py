"""The token value: what a token endpoint handed out, when it stops being valid, and when it is
due for refresh (`RefreshPolicy`, its refresh window and `min_ttl`)."""

from __future__ import annotations

from freshtoken._record import record, replace


@record
class Token:
    """An access token with its absolute expiry (wall-clock seconds since the epoch).

    `scope` is what the server said it granted, or None when it did not say.
    """

    access_token: str
    token_type: str
    expires_at: float
    issued_at: float
    refresh_token: str | None = None
    scope: tuple[str, ...] | None = None

    def expires_in(self, now: float) -> float:
        """Seconds left at `now` (negative once expired)."""
        return self.expires_at - now

    def valid_for(self, seconds: float, now: float) -> bool:
        """True when the token is still valid `seconds` after `now`."""
        return self.expires_at - now >= seconds

    @property
    def lifetime(self) -> float:
        return self.expires_at - self.issued_at

    @property
    def authorization(self) -> str:
        """The value of an `Authorization` header carrying this token."""
        return f"Bearer {self.access_token}"

    def __repr__(self) -> str:
        scope = "unstated" if self.scope is None else " ".join(self.scope) or "none"
        refresh = "held" if self.refresh_token else "none"
        return (
            f"Token(type={self.token_type}, expires_at={self.expires_at:.0f}, "
            f"lifetime={self.lifetime:.0f}s, scope={scope}, refresh_token={refresh})"
        )

    __str__ = __repr__


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
