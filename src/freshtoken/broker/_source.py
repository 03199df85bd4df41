"""The interfaces every consumer needs (after golang/oauth2's TokenSource)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from freshtoken._token import Token


@runtime_checkable
class TokenSource(Protocol):
    def token(self, min_ttl: float | None = None) -> Token:
        """A token valid for at least `min_ttl` seconds."""
        ...


@runtime_checkable
class RenewableSource(TokenSource, Protocol):
    """A source that can be told a token was refused, and serves asyncio too."""

    async def atoken(self, min_ttl: float | None = None) -> Token: ...
    def invalidate(self, token: Token) -> None:
        """`token` got a 401: forget it if it is still the one handed out."""
        ...
