"""A `requests` auth; requests is imported only when one is asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from freshtoken.auth._retry401 import Retry401
from freshtoken.broker._source import RenewableSource

if TYPE_CHECKING:
    import requests


def requests_auth(source: RenewableSource, min_ttl: float | None = None) -> requests.auth.AuthBase:
    """Sends a token from `source` with every request, and once more after a 401."""
    import requests

    class SourceRequestsAuth(requests.auth.AuthBase):
        def __repr__(self) -> str:
            return f"SourceRequestsAuth({source!r})"

        def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
            attempt = Retry401(source, min_ttl)  # per request: the copy sent below shares it
            request.headers["Authorization"] = attempt.token().authorization

            def retry_once(response: requests.Response, **kwargs: Any) -> requests.Response:
                token = attempt.again(response.status_code)
                if token is None:
                    return response
                _ = response.content  # release the connection before sending again
                response.close()
                retry = response.request.copy()
                retry.headers["Authorization"] = token.authorization
                second: requests.Response = response.connection.send(retry, **kwargs)
                second.history.append(response)
                second.request = retry
                return second

            request.hooks["response"].append(retry_once)
            return request

    return SourceRequestsAuth()
