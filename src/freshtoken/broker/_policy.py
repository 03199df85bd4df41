"""When a token is due for refresh (kept light: the command line's fast path reads it)."""

from __future__ import annotations

from dataclasses import dataclass

from freshtoken._token import Token

DEFAULT_MIN_TTL = 5.0


def default_need(token: Token, default_min_ttl: float = DEFAULT_MIN_TTL) -> float:
    """The margin asked when a caller names none: never more than a quarter of the lifetime,
    so that short tokens still serve."""
    return min(default_min_ttl, 0.25 * token.lifetime)


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """When to start refreshing: `fraction` of the lifetime before expiry, at least `floor`
    seconds, never more than `max_fraction` of the lifetime (so short tokens still live)."""

    fraction: float = 0.25
    floor: float = 30.0
    max_fraction: float = 0.5

    def window(self, lifetime: float) -> float:
        return min(max(self.floor, self.fraction * lifetime), self.max_fraction * lifetime)

    def refresh_at(self, token: Token) -> float:
        """When `token` is due for refresh."""
        return token.expires_at - self.window(token.lifetime)
