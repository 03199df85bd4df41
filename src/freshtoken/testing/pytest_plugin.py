"""pytest plugin: the `freshtoken_server` fixture. Loaded only where asked for: `pytest -p
freshtoken.testing.pytest_plugin`, or `pytest_plugins = ["freshtoken.testing.pytest_plugin"]`
in a `conftest.py` (installing freshtoken registers nothing with pytest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from freshtoken.testing._server import AuthServer


@pytest.fixture
def freshtoken_server() -> Iterator[AuthServer]:
    """A running test authorization server on 127.0.0.1 with the demo client."""
    with AuthServer() as server:
        yield server
