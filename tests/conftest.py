from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from freshtoken import ClientSecretBasic, Endpoints, RetryPolicy, Secret, TokenClient
from freshtoken.testing import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, AuthServer, FakeClock

CANARY_SECRET = "canary-secret-5f1e9d2b7c"


@pytest.fixture
def server() -> Iterator[AuthServer]:
    with AuthServer() as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(
    server: AuthServer,
    clock: FakeClock | None = None,
    *,
    client_id: str = DEMO_CLIENT_ID,
    secret: str = DEMO_CLIENT_SECRET,
    policy: RetryPolicy | None = None,
    region: str | None = None,
) -> TokenClient:
    kwargs = {"clock": clock} if clock else {}
    return TokenClient(
        ClientSecretBasic(client_id, Secret(secret)),
        endpoints=Endpoints(server.token_url, region=region),
        policy=policy or RetryPolicy(budget=5.0),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog
