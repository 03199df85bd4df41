from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from freshtoken import (
    ClientCredentials,
    ClientSecretBasic,
    Endpoints,
    MemoryStore,
    RetryPolicy,
    Secret,
    TokenBroker,
    TokenClient,
    TokenStore,
)
from freshtoken.testing import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, AuthServer, FakeClock
from tests._fleet import Fleet

T = TypeVar("T")
CANARY_SECRET = "canary-secret-5f1e9d2b7c"
CLIENT_CREDENTIALS = ClientCredentials()


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
    introspection: bool = False,
) -> TokenClient:
    kwargs = {"clock": clock} if clock else {}
    introspection_url = server.url + "/oauth/introspect" if introspection else None
    return TokenClient(
        ClientSecretBasic(client_id, Secret(secret)),
        endpoints=Endpoints(server.token_url, region=region, introspection_url=introspection_url),
        policy=policy or RetryPolicy(budget=5.0),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll with a deadline (for work done by another thread or process)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the deadline")
        time.sleep(0.005)


def make_broker(
    server: AuthServer,
    clock: FakeClock | None = None,
    *,
    store: TokenStore | None = None,
    grant: ClientCredentials | None = CLIENT_CREDENTIALS,
    policy: RetryPolicy | None = None,
    secret: str = DEMO_CLIENT_SECRET,
    **options: Any,
) -> TokenBroker:
    client = make_client(server, clock, policy=policy, secret=secret, introspection=True)
    return TokenBroker(client, grant=grant, store=store or MemoryStore(), **options)


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


def concurrently(n: int, work: Callable[[], T]) -> list[T]:
    """Run `work` in n threads released together; their results."""
    barrier = threading.Barrier(n)
    results: list[T] = []

    def run() -> None:
        barrier.wait()
        results.append(work())

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
