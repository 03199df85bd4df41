"""freshtoken: a valid OAuth 2.0 access token for every step of a pipeline, for as long as it runs.

broker = freshtoken.TokenBroker.from_env()      # FRESHTOKEN_* variables
token = broker.token(min_ttl=900)                # valid for the next 15 minutes
httpx.get(url, auth=broker.httpx_auth())         # or requests: broker.requests_auth()
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the CLI 12 ms
if TYPE_CHECKING:
    from typing import Any

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
        ServerError,
        StoreError,
        TimeoutError,
        TLSError,
        TokenUnavailableError,
        TransportError,
        UnauthorizedClientError,
    )
    from freshtoken._http import Timeouts
    from freshtoken._secret import Secret
    from freshtoken._token import Token
    from freshtoken.broker._broker import BrokerStats, TokenBroker
    from freshtoken.broker._policy import RefreshPolicy
    from freshtoken.broker._source import TokenSource
    from freshtoken.config._settings import Settings
    from freshtoken.oauth._client import TokenClient
    from freshtoken.oauth._client_auth import ClientSecretBasic, ClientSecretPost, PublicClient
    from freshtoken.oauth._grants import AuthorizationCode, ClientCredentials, RefreshTokenGrant
    from freshtoken.oauth._retry import RetryPolicy
    from freshtoken.provider._endpoints import Endpoints
    from freshtoken.provider._genesys import REGIONS as GENESYS_REGIONS
    from freshtoken.provider._genesys import GenesysRegion, genesys_region
    from freshtoken.stores._base import MemoryStore, TokenStore, open_store

__version__ = "0.1.0"

# Public names are imported on first use, so that `import freshtoken` (and the command
# line's cache-hit path) does not pay for httpx and cryptography until they are needed.
_LAZY: dict[str, tuple[str, str]] = {
    "Settings": ("freshtoken.config._settings", "Settings"),
    "AuthorizationError": ("freshtoken._errors", "AuthorizationError"),
    "ConfigurationError": ("freshtoken._errors", "ConfigurationError"),
    "ConnectError": ("freshtoken._errors", "ConnectError"),
    "InsufficientScopeError": ("freshtoken._errors", "InsufficientScopeError"),
    "InvalidClientError": ("freshtoken._errors", "InvalidClientError"),
    "InvalidGrantError": ("freshtoken._errors", "InvalidGrantError"),
    "InvalidRequestError": ("freshtoken._errors", "InvalidRequestError"),
    "InvalidScopeError": ("freshtoken._errors", "InvalidScopeError"),
    "MalformedResponseError": ("freshtoken._errors", "MalformedResponseError"),
    "NameResolutionError": ("freshtoken._errors", "NameResolutionError"),
    "OAuthError": ("freshtoken._errors", "OAuthError"),
    "RateLimitedError": ("freshtoken._errors", "RateLimitedError"),
    "ServerError": ("freshtoken._errors", "ServerError"),
    "StoreError": ("freshtoken._errors", "StoreError"),
    "TimeoutError": ("freshtoken._errors", "TimeoutError"),
    "TLSError": ("freshtoken._errors", "TLSError"),
    "TokenUnavailableError": ("freshtoken._errors", "TokenUnavailableError"),
    "TransportError": ("freshtoken._errors", "TransportError"),
    "UnauthorizedClientError": ("freshtoken._errors", "UnauthorizedClientError"),
    "TokenClient": ("freshtoken.oauth._client", "TokenClient"),
    "ClientSecretBasic": ("freshtoken.oauth._client_auth", "ClientSecretBasic"),
    "ClientSecretPost": ("freshtoken.oauth._client_auth", "ClientSecretPost"),
    "PublicClient": ("freshtoken.oauth._client_auth", "PublicClient"),
    "AuthorizationCode": ("freshtoken.oauth._grants", "AuthorizationCode"),
    "ClientCredentials": ("freshtoken.oauth._grants", "ClientCredentials"),
    "RefreshTokenGrant": ("freshtoken.oauth._grants", "RefreshTokenGrant"),
    "RetryPolicy": ("freshtoken.oauth._retry", "RetryPolicy"),
    "Timeouts": ("freshtoken._http", "Timeouts"),
    "Endpoints": ("freshtoken.provider._endpoints", "Endpoints"),
    "GENESYS_REGIONS": ("freshtoken.provider._genesys", "REGIONS"),
    "GenesysRegion": ("freshtoken.provider._genesys", "GenesysRegion"),
    "genesys_region": ("freshtoken.provider._genesys", "genesys_region"),
    "Secret": ("freshtoken._secret", "Secret"),
    "BrokerStats": ("freshtoken.broker._broker", "BrokerStats"),
    "RefreshPolicy": ("freshtoken.broker._policy", "RefreshPolicy"),
    "TokenBroker": ("freshtoken.broker._broker", "TokenBroker"),
    "TokenSource": ("freshtoken.broker._source", "TokenSource"),
    "MemoryStore": ("freshtoken.stores._base", "MemoryStore"),
    "TokenStore": ("freshtoken.stores._base", "TokenStore"),
    "open_store": ("freshtoken.stores._base", "open_store"),
    "Token": ("freshtoken._token", "Token"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'freshtoken' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "GENESYS_REGIONS",
    "AuthorizationCode",
    "AuthorizationError",
    "BrokerStats",
    "ClientCredentials",
    "ClientSecretBasic",
    "ClientSecretPost",
    "ConfigurationError",
    "ConnectError",
    "Endpoints",
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
    "RetryPolicy",
    "Secret",
    "ServerError",
    "Settings",
    "StoreError",
    "TLSError",
    "TimeoutError",
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
