"""When a token is due for refresh (kept light: the command line's fast path reads it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """When to start refreshing: `fraction` of the lifetime before expiry, at least `floor`
    seconds, never more than `max_fraction` of the lifetime (so short tokens still live)."""

    fraction: float = 0.25
    floor: float = 30.0
    max_fraction: float = 0.5

    def window(self, lifetime: float) -> float:
        return min(max(self.floor, self.fraction * lifetime), self.max_fraction * lifetime)
