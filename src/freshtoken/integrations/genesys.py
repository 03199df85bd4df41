"""The Genesys Cloud Python SDK (`PureCloudPlatformClientV2`) with tokens from a TokenBroker.

    broker = freshtoken.TokenBroker.from_env()   # or the running endpoint, after the action
    client = freshtoken.integrations.genesys.api_client(broker, "eu_west_1")
    PureCloudPlatformClientV2.UsersApi(client).get_users_me()

Every request carries a token valid for at least `min_ttl` seconds (default: the source's own
margin, which fits short-lived test tokens too). On a 401 the token is
re-minted through the broker and the request sent once more: the SDK by itself re-authenticates
only when it holds a refresh token from a code-grant login, which client credentials never get.
Under mutual TLS (the broker's tokens may be bound to its client certificate, RFC 8705 §3)
the client's connections present the certificate: the SDK's own mutual TLS is one global
context (`Configuration().ssl_context`), so this client gets an HTTP client of its own.
Install with `pip install freshtoken[genesys]`.
"""

from __future__ import annotations

import threading
from typing import Any

from freshtoken._errors import ConfigurationError
from freshtoken.auth._retry401 import Retry401
from freshtoken.auth._source import CertificateBinding, RenewableSource, binding
from freshtoken.provider._genesys import genesys_region

try:
    from PureCloudPlatformClientV2 import ApiClient
    from PureCloudPlatformClientV2.default_http_client import DefaultHttpClient
    from PureCloudPlatformClientV2.rest import ApiException
except ImportError:  # pragma: no cover - the extra is not installed
    raise ConfigurationError(
        "freshtoken.integrations.genesys needs the Genesys Cloud SDK",
        hint="pip install 'freshtoken[genesys]' (PureCloudPlatformClientV2).",
    ) from None

# Not a token: with a refresh token "held", the SDK calls handle_expired_access_token() on a
# 401, which is where the broker takes over.
_MANAGED = "managed-by-freshtoken"


class FreshApiClient(ApiClient):  # type: ignore[misc]
    """An `ApiClient` whose token comes from `broker` (any token source) on every request."""

    def __init__(self, broker: RenewableSource, host: str, min_ttl: float | None = None) -> None:
        super().__init__(host=host)
        self._broker = broker
        self._min_ttl = min_ttl
        self._call = threading.local()
        self.refresh_token = _MANAGED
        if (bound := binding(broker)) is not None:
            self.set_http_client(_PresentingHttpClient(bound))

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        self._call.attempt = Retry401(self._broker, self._min_ttl)
        return super().call_api(*args, **kwargs)

    def _attempt(self) -> Retry401:
        attempt: Retry401 | None = getattr(self._call, "attempt", None)
        if attempt is None:  # a request made without call_api
            attempt = self._call.attempt = Retry401(self._broker, self._min_ttl)
        return attempt

    def update_params_for_auth(self, headers: Any, querys: Any, auth_settings: Any) -> None:
        self.access_token = self._attempt().token().access_token
        super().update_params_for_auth(headers, querys, auth_settings)

    def handle_expired_access_token(self) -> None:
        # The SDK calls this after a 401 and then sends the request again, without a bound:
        # the second 401 of one call goes back to the caller.
        if self._attempt().again(401) is None:
            raise ApiException(status=401, reason="Unauthorized, after one new token")


class _PresentingHttpClient(DefaultHttpClient):  # type: ignore[misc]
    """The SDK's HTTP client, whose connections present the broker's client certificate."""

    def __init__(self, bound: CertificateBinding) -> None:
        super().__init__()
        # A context of its own (urllib3 sets the verify mode of the context it is given); it
        # trusts what the token client trusts (SSL_CERT_FILE/DIR, else certifi).
        pool_kw = self.rest_client.pool_manager.connection_pool_kw
        pool_kw["ssl_context"] = bound.ssl_context()


def api_client(
    broker: RenewableSource, region_or_host: str | None = None, min_ttl: float | None = None
) -> FreshApiClient:
    """An SDK client for a Genesys Cloud region (`eu_west_1`, a domain) or an API base URL;
    by default the configured one (FRESHTOKEN_API_URL, else FRESHTOKEN_REGION: the settings
    of the command line, which after the GitHub Action include the action's)."""
    if region_or_host is None:
        from freshtoken.config._settings import Settings

        settings = Settings.load()
        region_or_host = settings.api_url or settings.region
        if not region_or_host:
            raise ConfigurationError(
                "the Genesys SDK client needs a region or an API URL",
                hint='Pass one (api_client(source, "eu_west_1")), or set FRESHTOKEN_REGION or '
                "FRESHTOKEN_API_URL.",
            )
    if region_or_host.startswith(("http://", "https://")) and "://api." not in region_or_host:
        host = region_or_host.rstrip("/")  # a gateway or a test server
    else:
        host = genesys_region(region_or_host).api_base_url
    return FreshApiClient(broker, host, min_ttl)
