"""pytest plugin (entry point `freshtoken`): the `freshtoken_server` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from freshtoken.testing._server import AuthServer


@pytest.fixture
def freshtoken_server() -> Iterator[AuthServer]:
    """A running test authorization server on 127.0.0.1 with the demo client."""
    with AuthServer() as server:
        yield server
