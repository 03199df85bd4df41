"""The HTTP clients' auth objects of a token source, as methods (mixed into TokenBroker and
EndpointSource); httpx and requests are imported only when one is asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from freshtoken.auth._source import binding

if TYPE_CHECKING:
    import httpx
    import requests

    from freshtoken.auth._source import RenewableSource


class HttpAuths:
    """The HTTP clients' auth objects for a source (mixed into TokenBroker and EndpointSource);
    httpx and requests are imported only when one is asked for."""

    def httpx_auth(self: RenewableSource) -> httpx.Auth:
        """An `httpx.Auth` (sync and async) that sends the token and retries once on 401.
        Under mutual TLS the client must present the certificate: `verify=broker.client.tls`."""
        from freshtoken.auth._httpx import SourceAuth

        return SourceAuth(self, binding=binding(self))

    def requests_auth(self: RenewableSource) -> requests.auth.AuthBase:
        """A `requests` auth that sends the token and retries once on 401. Under mutual TLS
        use `requests_session()`, whose connections present the certificate."""
        from freshtoken.auth._requests import requests_auth

        return requests_auth(self, binding=binding(self))

    def requests_session(self: RenewableSource) -> requests.Session:
        """A `requests.Session` with `requests_auth()` whose HTTPS connections present the
        client certificate when tokens are minted over mutual TLS (they may be bound)."""
        from freshtoken.auth._requests import requests_session

        return requests_session(self, binding(self))
