"""freshtoken: a valid OAuth 2.0 access token for every step of a pipeline, for as long as it runs.

broker = freshtoken.TokenBroker.from_env()      # FRESHTOKEN_* variables
token = broker.token(min_ttl=900)                # valid for the next 15 minutes
httpx.get(url, auth=broker.httpx_auth())         # or requests: broker.requests_auth()
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the CLI 12 ms
# The public names, each listed once: type checkers read these imports; at run time each
# name is imported on first use (PEP 562), so that `import freshtoken` (and the command
# line's cache-hit path) does not pay for httpx and cryptography until they are needed.
if TYPE_CHECKING:
    from typing import Any

    from freshtoken._errors import (
        AuthorizationError as AuthorizationError,
    )
    from freshtoken._errors import (
        ConfigurationError as ConfigurationError,
    )
    from freshtoken._errors import (
        ConnectError as ConnectError,
    )
    from freshtoken._errors import (
        InsufficientScopeError as InsufficientScopeError,
    )
    from freshtoken._errors import (
        InvalidClientError as InvalidClientError,
    )
    from freshtoken._errors import (
        InvalidGrantError as InvalidGrantError,
    )
    from freshtoken._errors import (
        InvalidRequestError as InvalidRequestError,
    )
    from freshtoken._errors import (
        InvalidScopeError as InvalidScopeError,
    )
    from freshtoken._errors import (
        MalformedResponseError as MalformedResponseError,
    )
    from freshtoken._errors import (
        NameResolutionError as NameResolutionError,
    )
    from freshtoken._errors import (
        OAuthError as OAuthError,
    )
    from freshtoken._errors import (
        RateLimitedError as RateLimitedError,
    )
    from freshtoken._errors import (
        RequestTimeoutError as RequestTimeoutError,
    )
    from freshtoken._errors import (
        ServerError as ServerError,
    )
    from freshtoken._errors import (
        StoreError as StoreError,
    )
    from freshtoken._errors import (
        TLSError as TLSError,
    )
    from freshtoken._errors import (
        TokenUnavailableError as TokenUnavailableError,
    )
    from freshtoken._errors import (
        TransportError as TransportError,
    )
    from freshtoken._errors import (
        UnauthorizedClientError as UnauthorizedClientError,
    )
    from freshtoken._http import Timeouts as Timeouts
    from freshtoken._secret import Secret as Secret
    from freshtoken._token import Token as Token
    from freshtoken.broker._broker import BrokerStats as BrokerStats
    from freshtoken.broker._broker import TokenBroker as TokenBroker
    from freshtoken.broker._policy import RefreshPolicy as RefreshPolicy
    from freshtoken.broker._source import RenewableSource as RenewableSource
    from freshtoken.broker._source import TokenSource as TokenSource
    from freshtoken.config._settings import Settings as Settings
    from freshtoken.oauth._client import TokenClient as TokenClient
    from freshtoken.oauth._client_auth import ClientSecretBasic as ClientSecretBasic
    from freshtoken.oauth._client_auth import ClientSecretPost as ClientSecretPost
    from freshtoken.oauth._client_auth import PublicClient as PublicClient
    from freshtoken.oauth._grants import AuthorizationCode as AuthorizationCode
    from freshtoken.oauth._grants import ClientCredentials as ClientCredentials
    from freshtoken.oauth._grants import RefreshTokenGrant as RefreshTokenGrant
    from freshtoken.oauth._retry import RetryPolicy as RetryPolicy
    from freshtoken.provider._endpoints import Endpoints as Endpoints
    from freshtoken.provider._genesys import GENESYS_REGIONS as GENESYS_REGIONS
    from freshtoken.provider._genesys import GenesysRegion as GenesysRegion
    from freshtoken.provider._genesys import genesys_region as genesys_region
    from freshtoken.stores import Entry as Entry
    from freshtoken.stores import StoreOptions as StoreOptions
    from freshtoken.stores import TokenStore as TokenStore
    from freshtoken.stores import open_store as open_store
    from freshtoken.stores._memory import MemoryStore as MemoryStore

__version__ = "0.1.0"
_PUBLIC: dict[str, tuple[str, str]] = {}


def _public() -> dict[str, tuple[str, str]]:
    """name -> (module, attribute), read once from the imports above."""
    if not _PUBLIC:
        import ast
        from pathlib import Path

        tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
        block = next(n for n in tree.body if isinstance(n, ast.If))
        for node in block.body:
            if isinstance(node, ast.ImportFrom) and node.module != "typing":
                for alias in node.names:
                    _PUBLIC[alias.asname or alias.name] = (str(node.module), alias.name)
    return _PUBLIC


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return sorted([*_public(), "__version__"])
    try:
        module, attribute = _public()[name]
    except KeyError:
        raise AttributeError(f"module 'freshtoken' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*_public(), "__version__"])
