"""`httpx.Auth` for both `httpx.Client` and `httpx.AsyncClient`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from freshtoken.auth._retry401 import Retry401
from freshtoken.auth._source import CertificateBinding, RenewableSource

_FIX = (
    "Build the client with the broker's TLS context: "
    "httpx.Client(auth=broker.httpx_auth(), verify=broker.client.tls)"
)


class SourceAuth(httpx.Auth):
    """Sends a token from `source` with every request, and once more after a 401."""

    requires_request_body = True  # so the request can be sent again after a 401

    def __init__(
        self,
        source: RenewableSource,
        min_ttl: float | None = None,
        binding: CertificateBinding | None = None,
    ) -> None:
        self._source = source
        self._min_ttl = min_ttl
        self._binding = binding

    def __repr__(self) -> str:
        return f"SourceAuth({self._source!r})"

    def _check(self, response: httpx.Response) -> None:
        """A bound token refused over a connection that is not the broker's mutual TLS."""
        if self._binding is None or response.status_code != 401:
            return
        stream = response.extensions.get("network_stream")
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
        if getattr(ssl_object, "context", None) is not self._binding.tls:
            raise self._binding.refused(_FIX)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        attempt = Retry401(self._source, self._min_ttl)
        request.headers["Authorization"] = attempt.token().authorization
        response = yield request
        self._check(response)
        if (token := attempt.again(response.status_code)) is not None:
            request.headers["Authorization"] = token.authorization
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        attempt = Retry401(self._source, self._min_ttl)
        request.headers["Authorization"] = (await attempt.atoken()).authorization
        response = yield request
        self._check(response)
        if (token := await attempt.aagain(response.status_code)) is not None:
            request.headers["Authorization"] = token.authorization
            yield request
