"""A real authorization server for tests: `AuthServer`, the `freshtoken_server` pytest fixture,
and `freshtoken testserver` on the command line."""

from freshtoken.testing._clock import FakeClock
from freshtoken.testing._model import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    MALFORMED,
    Client,
    Knobs,
)
from freshtoken.testing._server import AuthServer

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "MALFORMED",
    "FakeClock",
    "AuthServer",
    "Client",
    "Knobs",
]
