"""What type checkers see of `freshtoken`: the public names, each from its module. At run time
`__init__.py` imports each on first use (PEP 562), so that `import freshtoken` and the command
line's cache hit pay for httpx and cryptography only when they are needed; its `_LAZY` table and
this file are kept equal by tests/test_python_api.py."""

from freshtoken._endpoint_source import EndpointSource
from freshtoken._errors import (
    AuthorizationError,
    ConfigurationError,
    ConnectError,
    FreshtokenError,
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
from freshtoken._token import RefreshPolicy, Token
from freshtoken.auth._source import (
    RenewableSource,
    TokenSource,
)
from freshtoken.broker._broker import BrokerStats, TokenBroker
from freshtoken.config._settings import Settings
from freshtoken.oauth._client import RetryPolicy, TokenClient
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

__version__: str

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
    "FreshtokenError",
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
