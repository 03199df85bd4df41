"""The interfaces every consumer needs (after golang/oauth2's TokenSource)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import httpx
    import requests

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


class HttpAuths:
    """The HTTP clients' auth objects for a source (mixed into TokenBroker and EndpointSource);
    httpx and requests are imported only when one is asked for."""

    def httpx_auth(self: RenewableSource) -> httpx.Auth:
        """An `httpx.Auth` (sync and async) that sends the token and retries once on 401."""
        from freshtoken.auth._httpx import SourceAuth

        return SourceAuth(self)

    def requests_auth(self: RenewableSource) -> requests.auth.AuthBase:
        """A `requests` auth that sends the token and retries once on 401."""
        from freshtoken.auth._requests import requests_auth

        return requests_auth(self)
