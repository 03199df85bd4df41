"""The HTTP clients' auth objects of a token source, as methods (mixed into TokenBroker and
EndpointSource); httpx and requests are imported only when one is asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx
    import requests

    from freshtoken.broker._source import RenewableSource


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
