"""`httpx.Auth` for both `httpx.Client` and `httpx.AsyncClient`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from freshtoken.auth._retry401 import Retry401
from freshtoken.broker._source import RenewableSource


class SourceAuth(httpx.Auth):
    """Sends a token from `source` with every request, and once more after a 401."""

    requires_request_body = True  # so the request can be sent again after a 401

    def __init__(self, source: RenewableSource, min_ttl: float | None = None) -> None:
        self._source = source
        self._min_ttl = min_ttl

    def __repr__(self) -> str:
        return f"SourceAuth({self._source!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        attempt = Retry401(self._source, self._min_ttl)
        request.headers["Authorization"] = attempt.token().authorization
        response = yield request
        if (token := attempt.again(response.status_code)) is not None:
            request.headers["Authorization"] = token.authorization
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        attempt = Retry401(self._source, self._min_ttl)
        request.headers["Authorization"] = (await attempt.atoken()).authorization
        response = yield request
        if (token := await attempt.aagain(response.status_code)) is not None:
            request.headers["Authorization"] = token.authorization
            yield request
