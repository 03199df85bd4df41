"""The one interface every consumer needs (after golang/oauth2's TokenSource)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from freshtoken._token import Token


@runtime_checkable
class TokenSource(Protocol):
    def token(self, min_ttl: float | None = None) -> Token:
        """A token valid for at least `min_ttl` seconds."""
        ...
