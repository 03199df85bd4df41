"""freshtoken: a valid OAuth 2.0 access token for every step of a pipeline, for as long as it runs.

broker = freshtoken.TokenBroker.from_env()      # FRESHTOKEN_* variables, or the running endpoint
token = broker.token(min_ttl=900)                # valid for the next 15 minutes
httpx.get(url, auth=broker.httpx_auth())         # or requests: broker.requests_auth()
"""

from __future__ import annotations

# The public names are typed in __init__.pyi; here each is imported on first use (PEP 562).
__version__ = "0.1.0"


#: public name -> the module that defines it
_LAZY = {
    "AuthorizationError": "freshtoken._errors",
    "ConfigurationError": "freshtoken._errors",
    "ConnectError": "freshtoken._errors",
    "FreshtokenError": "freshtoken._errors",
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
    "EndpointSource": "freshtoken._endpoint_source",
    "RefreshPolicy": "freshtoken._token",
    "RenewableSource": "freshtoken.auth._source",
    "TokenSource": "freshtoken.auth._source",
    "Settings": "freshtoken.config._settings",
    "TokenClient": "freshtoken.oauth._client",
    "ClientSecretBasic": "freshtoken.oauth._client_auth",
    "ClientSecretPost": "freshtoken.oauth._client_auth",
    "PublicClient": "freshtoken.oauth._client_auth",
    "AuthorizationCode": "freshtoken.oauth._grants",
    "ClientCredentials": "freshtoken.oauth._grants",
    "RefreshTokenGrant": "freshtoken.oauth._grants",
    "RetryPolicy": "freshtoken.oauth._client",
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


__all__ = [*_LAZY, "__version__"]  # noqa: PLE0604 (the names, as __init__.pyi lists them)


def __getattr__(name: str) -> object:
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
