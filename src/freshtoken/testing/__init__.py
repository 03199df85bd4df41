"""Real parts for tests: `AuthServer` (an authorization server on loopback, also the
`freshtoken_server` pytest fixture and `freshtoken testserver`), `FakeClock`, and
`StoreContract`, the test class every `TokenStore` must pass."""

from typing import TYPE_CHECKING, Any

from freshtoken.testing._clock import FakeClock
from freshtoken.testing._model import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    MALFORMED,
    Client,
    Knobs,
)
from freshtoken.testing._server import AuthServer

if TYPE_CHECKING:
    from freshtoken.testing._contract import StoreContract


def __getattr__(name: str) -> Any:
    if name == "StoreContract":  # imports pytest: only for those who ask
        from freshtoken.testing._contract import StoreContract

        return StoreContract
    raise AttributeError(f"module 'freshtoken.testing' has no attribute {name!r}")


__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "MALFORMED",
    "AuthServer",
    "Client",
    "FakeClock",
    "Knobs",
    "StoreContract",
]
