"""Fixtures only; the helpers tests import are in tests/helpers.py."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from freshtoken.testing import AuthServer, FakeClock
from tests._fleet import Fleet
from tests.helpers import CANARY_SECRET, leaks

# The `freshtoken_server` fixture: installing freshtoken loads nothing into pytest, a project
# opts in (this line, or `pytest -p freshtoken.testing.pytest_plugin`).
pytest_plugins = ["freshtoken.testing.pytest_plugin"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests (soak and fleets, timed against the machine's two cores) all go to one
    worker and run there one at a time, never two at once; the other worker takes the rest."""
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.xdist_group("slow"))


@pytest.fixture
def server() -> Iterator[AuthServer]:
    with AuthServer() as srv:
        yield srv


@pytest.fixture
def mtls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthServer]:
    """An HTTPS test server with the mutual-TLS clients of tests/_certs.py, whose CA this
    process trusts (SSL_CERT_FILE, as httpx reads it; also written to tmp_path/ca.pem)."""
    from tests._certs import MTLS_CLIENTS

    with AuthServer(tls=True, clients=list(MTLS_CLIENTS)) as found:
        (tmp_path / "ca.pem").write_text(found.ca_pem)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        yield found


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(self.format(record))


@pytest.fixture(autouse=True)
def no_token_in_any_log_record() -> Iterator[None]:
    """Every log record any test's process emits (at the levels the test enabled) carries no
    minted token and no canary secret."""
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    try:
        yield
    finally:
        root.removeHandler(records)
    found = [(m, leaks(m, CANARY_SECRET)) for m in records.messages if leaks(m, CANARY_SECRET)]
    assert not found, f"log records leak secrets: {found}"


@pytest.fixture
def fleet_factory() -> Iterator[Callable[[dict[str, str], list[str]], Fleet]]:
    """Makes worker fleets; every process is stopped when the test ends."""
    fleets: list[Fleet] = []

    def make(env: dict[str, str], args: list[str]) -> Fleet:
        fleets.append(Fleet(env, args))
        return fleets[-1]

    yield make
    for fleet in fleets:
        fleet.stop()
