"""freshtoken: a valid OAuth 2.0 access token for every step of a pipeline, for as long as it runs.

broker = freshtoken.TokenBroker.from_env()      # FRESHTOKEN_* variables, or the running endpoint
token = broker.token(min_ttl=900)                # valid for the next 15 minutes
httpx.get(url, auth=broker.httpx_auth())         # or requests: broker.requests_auth()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Type checkers read these imports; at run time each public name is imported on first use
# (PEP 562), so that `import freshtoken` (and the command line's cache hit) pays for httpx and
# cryptography only when they are needed. tests/test_python_api.py keeps the three lists equal.
if TYPE_CHECKING:
    from freshtoken._errors import (
        AuthorizationError,
        ConfigurationError,
        ConnectError,
        InsufficientScopeError,
        InvalidClientError,
        InvalidGrantError,
        InvalidRequestError,
        InvalidScopeError,
        MalformedResponseError,
        NameResolutionError,
        OAuthError,
        RateLimitedError,
        RequestTimeoutError,
        ServerError,
        StoreError,
        TLSError,
        TokenUnavailableError,
        TransportError,
        UnauthorizedClientError,
    )
    from freshtoken._http import Timeouts
    from freshtoken._secret import Secret
    from freshtoken._token import Token
    from freshtoken.broker._broker import BrokerStats, TokenBroker
    from freshtoken.broker._endpoint import EndpointSource
    from freshtoken.broker._policy import RefreshPolicy
    from freshtoken.broker._source import (
        RenewableSource,
        TokenSource,
    )
    from freshtoken.config._settings import Settings
    from freshtoken.oauth._client import TokenClient
    from freshtoken.oauth._client_auth import (
        ClientSecretBasic,
        ClientSecretPost,
        PublicClient,
    )
    from freshtoken.oauth._grants import (
        AuthorizationCode,
        ClientCredentials,
        RefreshTokenGrant,
    )
    from freshtoken.oauth._retry import RetryPolicy
    from freshtoken.provider._endpoints import Endpoints
    from freshtoken.provider._genesys import (
        GENESYS_REGIONS,
        GenesysRegion,
        genesys_region,
    )
    from freshtoken.stores import (
        Entry,
        StoreOptions,
        TokenStore,
        open_store,
    )
    from freshtoken.stores._memory import MemoryStore

__version__ = "0.1.0"

__all__ = [
    "AuthorizationCode",
    "AuthorizationError",
    "BrokerStats",
    "ClientCredentials",
    "ClientSecretBasic",
    "ClientSecretPost",
    "ConfigurationError",
    "ConnectError",
    "EndpointSource",
    "Endpoints",
    "Entry",
    "GENESYS_REGIONS",
    "GenesysRegion",
    "InsufficientScopeError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "MalformedResponseError",
    "MemoryStore",
    "NameResolutionError",
    "OAuthError",
    "PublicClient",
    "RateLimitedError",
    "RefreshPolicy",
    "RefreshTokenGrant",
    "RenewableSource",
    "RequestTimeoutError",
    "RetryPolicy",
    "Secret",
    "ServerError",
    "Settings",
    "StoreError",
    "StoreOptions",
    "TLSError",
    "Timeouts",
    "Token",
    "TokenBroker",
    "TokenClient",
    "TokenSource",
    "TokenStore",
    "TokenUnavailableError",
    "TransportError",
    "UnauthorizedClientError",
    "__version__",
    "genesys_region",
    "open_store",
]

#: public name -> the module that defines it
_LAZY = {
    "AuthorizationError": "freshtoken._errors",
    "ConfigurationError": "freshtoken._errors",
    "ConnectError": "freshtoken._errors",
    "InsufficientScopeError": "freshtoken._errors",
    "InvalidClientError": "freshtoken._errors",
    "InvalidGrantError": "freshtoken._errors",
    "InvalidRequestError": "freshtoken._errors",
    "InvalidScopeError": "freshtoken._errors",
    "MalformedResponseError": "freshtoken._errors",
    "NameResolutionError": "freshtoken._errors",
    "OAuthError": "freshtoken._errors",
    "RateLimitedError": "freshtoken._errors",
    "RequestTimeoutError": "freshtoken._errors",
    "ServerError": "freshtoken._errors",
    "StoreError": "freshtoken._errors",
    "TLSError": "freshtoken._errors",
    "TokenUnavailableError": "freshtoken._errors",
    "TransportError": "freshtoken._errors",
    "UnauthorizedClientError": "freshtoken._errors",
    "Timeouts": "freshtoken._http",
    "Secret": "freshtoken._secret",
    "Token": "freshtoken._token",
    "BrokerStats": "freshtoken.broker._broker",
    "TokenBroker": "freshtoken.broker._broker",
    "EndpointSource": "freshtoken.broker._endpoint",
    "RefreshPolicy": "freshtoken.broker._policy",
    "RenewableSource": "freshtoken.broker._source",
    "TokenSource": "freshtoken.broker._source",
    "Settings": "freshtoken.config._settings",
    "TokenClient": "freshtoken.oauth._client",
    "ClientSecretBasic": "freshtoken.oauth._client_auth",
    "ClientSecretPost": "freshtoken.oauth._client_auth",
    "PublicClient": "freshtoken.oauth._client_auth",
    "AuthorizationCode": "freshtoken.oauth._grants",
    "ClientCredentials": "freshtoken.oauth._grants",
    "RefreshTokenGrant": "freshtoken.oauth._grants",
    "RetryPolicy": "freshtoken.oauth._retry",
    "Endpoints": "freshtoken.provider._endpoints",
    "GENESYS_REGIONS": "freshtoken.provider._genesys",
    "GenesysRegion": "freshtoken.provider._genesys",
    "genesys_region": "freshtoken.provider._genesys",
    "Entry": "freshtoken.stores",
    "StoreOptions": "freshtoken.stores",
    "TokenStore": "freshtoken.stores",
    "open_store": "freshtoken.stores",
    "MemoryStore": "freshtoken.stores._memory",
}


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'freshtoken' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
