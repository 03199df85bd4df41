"""A `requests` auth, and a session whose connections present the client certificate under
mutual TLS; requests is imported only when one is asked for.

requests takes a client certificate only as file names (`cert=`), which would put the key on
disk unencrypted. The session mounts a transport adapter instead that gives urllib3 an
`ssl.SSLContext` holding the certificate (loaded as the token client loads it:
encrypted, from a private file removed at once). The context is the adapter's own, not the
token client's: urllib3 loads requests' CA bundle into the context it is given."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from freshtoken.auth._retry401 import Retry401
from freshtoken.auth._source import CertificateBinding, RenewableSource

if TYPE_CHECKING:
    import requests
    from requests.adapters import _HostParams, _PoolKwargs  # the stubs' names, typing only

_FIX = "Use broker.requests_session(), whose HTTPS connections present the certificate"
_PRESENTS = "freshtoken_presents"  # the adapter's mark: the thumbprint of what it presents


def requests_auth(
    source: RenewableSource, min_ttl: float | None = None, binding: CertificateBinding | None = None
) -> requests.auth.AuthBase:
    """Sends a token from `source` with every request, and once more after a 401."""
    import requests

    def presented(response: requests.Response, cert: Any) -> bool:
        assert binding is not None
        if cert is not None:  # the caller's own `cert=`: trusted to be the certificate
            return True
        return getattr(response.connection, _PRESENTS, None) == binding.thumbprint

    class SourceRequestsAuth(requests.auth.AuthBase):
        def __repr__(self) -> str:
            return f"SourceRequestsAuth({source!r})"

        def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
            attempt = Retry401(source, min_ttl)  # per request: the copy sent below shares it
            request.headers["Authorization"] = attempt.token().authorization

            def retry_once(response: requests.Response, **kwargs: Any) -> requests.Response:
                if (
                    binding is not None
                    and response.status_code == 401
                    and not presented(response, kwargs.get("cert"))
                ):
                    raise binding.refused(_FIX)
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


def requests_session(
    source: RenewableSource, binding: CertificateBinding | None
) -> requests.Session:
    """A session with the source's auth; under mutual TLS its HTTPS adapter presents the
    certificate."""
    import requests

    session = requests.Session()
    session.auth = requests_auth(source, binding=binding)
    if binding is not None:
        session.mount("https://", _presenting_adapter(binding))
    return session


def _presenting_adapter(binding: CertificateBinding) -> requests.adapters.HTTPAdapter:
    import requests

    class PresentingAdapter(requests.adapters.HTTPAdapter):
        def __init__(self) -> None:
            self._context = binding.ssl_context()
            super().__init__()
            setattr(self, _PRESENTS, binding.thumbprint)

        def build_connection_pool_key_attributes(
            self, request: requests.PreparedRequest, verify: Any, cert: Any = None
        ) -> tuple[_HostParams, _PoolKwargs]:
            host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
            pool["ssl_context"] = self._context  # the pool key: one pool per context
            return host, pool

    return PresentingAdapter()
