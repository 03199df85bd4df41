"""freshtoken: a valid OAuth 2.0 access token for every step of a pipeline, for as long as it runs.

import freshtoken
client = freshtoken.TokenClient.from_settings(freshtoken.Settings.from_env())
token = client.fetch(freshtoken.ClientCredentials())
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
from freshtoken._token import Token

__version__ = "0.1.0"

__all__ = [
    "GENESYS_REGIONS",
    "AuthorizationCode",
    "AuthorizationError",
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
    "NameResolutionError",
    "OAuthError",
    "PublicClient",
    "RateLimitedError",
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
    "TokenClient",
    "TokenUnavailableError",
    "TransportError",
    "UnauthorizedClientError",
    "__version__",
    "genesys_region",
]
