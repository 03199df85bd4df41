"""Library adapters: the broker's token on every request, and one retry after a 401."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import requests

    from freshtoken.broker._broker import TokenBroker


class BrokerAuth(httpx.Auth):
    """`httpx.Auth` for both `httpx.Client` and `httpx.AsyncClient`."""

    requires_request_body = True  # so the request can be sent again after a 401

    def __init__(self, broker: TokenBroker) -> None:
        self._broker = broker

    def __repr__(self) -> str:
        return f"BrokerAuth({self._broker!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        token = self._broker.token()
        request.headers["Authorization"] = token.authorization
        response = yield request
        if response.status_code == 401:
            self._broker.invalidate(token)
            request.headers["Authorization"] = self._broker.token().authorization
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._broker.atoken()
        request.headers["Authorization"] = token.authorization
        response = yield request
        if response.status_code == 401:
            await asyncio.to_thread(self._broker.invalidate, token)
            request.headers["Authorization"] = (await self._broker.atoken()).authorization
            yield request


def requests_auth(broker: TokenBroker) -> requests.auth.AuthBase:
    """A `requests` auth; requests is imported only when this is asked for."""
    import requests

    class BrokerRequestsAuth(requests.auth.AuthBase):
        def __repr__(self) -> str:
            return f"BrokerRequestsAuth({broker!r})"

        def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
            token = broker.token()
            request.headers["Authorization"] = token.authorization
            retried = False  # per request: the copy sent below shares this hook

            def retry_once(response: requests.Response, **kwargs: Any) -> requests.Response:
                nonlocal retried
                if response.status_code != 401 or retried:
                    return response
                retried = True
                broker.invalidate(token)
                _ = response.content  # release the connection before sending again
                response.close()
                retry = response.request.copy()
                retry.headers["Authorization"] = broker.token().authorization
                second: requests.Response = response.connection.send(retry, **kwargs)
                second.history.append(response)
                second.request = retry
                return second

            request.hooks["response"].append(retry_once)
            return request

    return BrokerRequestsAuth()
