"""freshtoken: a valid OAuth 2.0 access token for every step of a pipeline, for as long as it runs.

broker = freshtoken.TokenBroker.from_env()      # FRESHTOKEN_* variables
token = broker.token(min_ttl=900)                # valid for the next 15 minutes
httpx.get(url, auth=broker.httpx_auth())         # or requests: broker.requests_auth()
"""

from freshtoken._config import Settings
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
from freshtoken._grants._client import TokenClient
from freshtoken._grants._client_auth import ClientSecretBasic, ClientSecretPost, PublicClient
from freshtoken._grants._grant import AuthorizationCode, ClientCredentials, RefreshTokenGrant
from freshtoken._grants._retry import RetryPolicy
from freshtoken._http import Timeouts
from freshtoken._provider._endpoints import Endpoints
from freshtoken._provider._genesys import REGIONS as GENESYS_REGIONS
from freshtoken._provider._genesys import GenesysRegion, genesys_region
from freshtoken._secret import Secret
from freshtoken._sources._broker import BrokerStats, RefreshPolicy, TokenBroker
from freshtoken._sources._source import TokenSource
from freshtoken._sources._store import MemoryStore, TokenStore, open_store
from freshtoken._token import Token

__version__ = "0.1.0"

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
