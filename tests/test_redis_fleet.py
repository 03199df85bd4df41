"""A fleet sharing one Redis: 32 processes minting as if they were one caller, a refresh-token
chain that survives workers killed or stopped mid-refresh, and Redis itself killed."""

from __future__ import annotations

import base64
import functools
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from freshtoken import (
    AuthorizationCode,
    RefreshPolicy,
    RefreshTokenGrant,
    Settings,
    TokenBroker,
)
from freshtoken.testing import AuthServer
from tests._fleet import (
    Fleet,
    assert_calls_in_every_phase,
    share_one_token,
    totals,
    worker_env,
)
from tests._redis import RedisClusterProcesses, RedisProcess, text
from tests.helpers import make_client, wait_until

FleetFactory = Callable[[dict[str, str], list[str]], Fleet]
pytestmark = pytest.mark.slow  # fleets of worker processes, for many token lifetimes


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path).start()
    yield server
    server.stop()


def _redis_env(server: AuthServer, redis_server: RedisProcess) -> dict[str, str]:
    return worker_env(
        server, redis_server.url, FRESHTOKEN_STORE_KEY=base64.b64encode(os.urandom(32)).decode()
    )


def test_four_hosts_of_eight_processes_share_one_token(
    redis_server: RedisProcess, fleet_factory: FleetFactory
) -> None:
    # 32 processes, each its own memory layer in front of Redis, as on 4 hosts of 8.
    share_one_token(
        fleet_factory,
        lambda server: _redis_env(server, redis_server),
        processes=4 * 8,
        threads=8,
        pause=0.02,
        min_calls=100_000,  # 230,000-250,000 made here: at most 256,000 (the pauses)
        min_checks=1_000,
    )


def test_eight_processes_share_one_token_on_a_redis_cluster(
    tmp_path: Path, fleet_factory: FleetFactory
) -> None:
    cluster = RedisClusterProcesses(tmp_path).start()
    try:
        share_one_token(
            fleet_factory,
            lambda server: worker_env(
                server,
                cluster.url,
                FRESHTOKEN_STORE_KEY=base64.b64encode(os.urandom(32)).decode(),
            ),
            processes=8,
            threads=4,
            pause=0.02,
            min_calls=13_000,  # 27,000-31,500 made here: at most 32,000 (the pauses)
            min_checks=130,
        )
    finally:
        cluster.stop()


def _refreshed_since(server: AuthServer, before: int) -> bool:
    minted: dict[str, int] = server.stats()["minted"]["demo-client"]
    return minted.get("refresh_token", 0) > before


def test_refresh_chain_survives_kills_and_stops_mid_refresh(
    redis_server: RedisProcess, fleet_factory: FleetFactory
) -> None:
    """16 workers of 2 threads refresh one chain while its lock holders are SIGKILLed or
    SIGSTOPped mid-refresh: no refresh token is presented twice, the chain stays alive, and
    every call (one more by each worker once the faults are over) gets a valid token. The
    faults are counted, not timed, and the deadlines are those of a loaded machine: the test
    asks nothing of how many calls a worker made when."""
    rng = random.Random(11)
    # Tokens of 5 s: a refresh (a spender process started, a request, a store write) takes
    # seconds on a loaded machine, and a token must still have min_ttl left when it arrives.
    with AuthServer(ttl=5, latency=0.25, abandon_on_disconnect=True) as server:
        env = {
            **_redis_env(server, redis_server),
            "FRESHTOKEN_REDIS_LEASE": "1.5",
            # Each fault stalls the chain for seconds while 32 threads wait: on a loaded
            # machine that can take longer than the usual 10 s budget.
            "FRESHTOKEN_RETRY_BUDGET": "30",
        }
        seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
        assert seed.refresh_token
        seeder = TokenBroker.from_settings(Settings.from_env(env), grant=None)
        seeder.seed_refresh_token(seed.refresh_token)
        fleet = fleet_factory(
            env,
            [
                *("--refresh-only", "--threads", "2", "--stop-on-input"),
                *("--min-ttl", "0.2", "--pause", "0.01"),
            ],
        )
        fleet.spawn_all(16)
        raw = redis.Redis.from_url(redis_server.url)
        kills = stops = 0
        give_up = time.monotonic() + 300  # a bound for a hung test, not a pace to keep
        while kills + stops < 8:
            assert time.monotonic() < give_up, f"only {kills} kills and {stops} stops"
            wait_until(lambda: any(a < 0.1 for a in server.stats()["inflight_ages"]), timeout=60)
            owners = [raw.get(name) for name in raw.keys("freshtoken:*:lock")]
            pids = {int(text(o).split(":")[0]) for o in owners if o}
            holders = [p for p in fleet.procs if p.pid in pids and p.poll() is None]
            if not holders:
                continue
            victim = holders[0]
            refreshed = server.stats()["minted"]["demo-client"].get("refresh_token", 0)
            # Kills and stops in turn (3 and 2), then at random.
            faults = kills + stops
            if (faults % 2 == 0) if faults < 5 else rng.random() < 0.5:
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                kills += 1
                fleet.spawn(wait_ready=False)
                # Its spender (not killed with it) stores the outcome; the successor
                # waits for it and adopts it.
            else:  # stopped while the server answers; its answer waits in the socket
                victim.send_signal(signal.SIGSTOP)
                wait_until(lambda: not server.stats()["inflight_ages"], timeout=60)
                victim.send_signal(signal.SIGCONT)
                stops += 1
            # The chain moves on after each fault before the next one.
            wait_until(functools.partial(_refreshed_since, server, refreshed), timeout=60)
            wait_until(lambda: not server.stats()["inflight_ages"], timeout=60)
        fleet.ask_to_stop()
        results = fleet.results()
        stats = server.stats()
        alive = server.active_refresh_tokens("demo-client")
        # The chain is alive: the stored refresh token is the live one.
        entry = seeder.store.load(seeder.key)
        assert entry is not None and entry.refresh_token and entry.phase_owner is None
        make_client(server).fetch(RefreshTokenGrant(entry.refresh_token))
    assert kills >= 3 and stops >= 2, (kills, stops)
    assert stats["reuse_detections"] == 0
    assert alive == 1
    assert stats["minted"]["demo-client"].get("client_credentials", 0) == 0
    assert len(results) == 16, "a worker that was not killed did not end"
    sums = totals(results)
    assert sums["errors"] == 0, [r["first_error"] for r in results if r["first_error"]]
    assert sums["invalid"] == 0, [r["first_error"] for r in results if r["invalid"]]
    idle = [(r["pid"], r["idle_threads"]) for r in results if r["idle_threads"]]
    assert not idle, f"threads that never got a token (pid, count): {idle}"


def test_redis_killed_and_restarted(
    redis_server: RedisProcess, fleet_factory: FleetFactory
) -> None:
    lifetime = 2.0
    window = RefreshPolicy().window(lifetime)
    duration = 16.0
    with AuthServer(ttl=lifetime) as server:
        env = {**_redis_env(server, redis_server), "FRESHTOKEN_REDIS_TIMEOUT": "0.3"}
        fleet = fleet_factory(
            env,
            [
                *("--threads", "4", "--duration", str(duration), "--min-ttl", "0.3"),
                *("--pause", "0.01", "--check-every", "50", "--wait-go"),
            ],
        )
        fleet.spawn_all(6)
        start = time.time()
        fleet.go()
        wait_until(lambda: time.time() > start + 4, timeout=10)
        killed = time.time()
        redis_server.kill()
        wait_until(lambda: time.time() > start + 7, timeout=10)
        restarted = time.time()
        redis_server.start()  # empty: nothing was persisted
        wait_until(lambda: time.time() > start + 10, timeout=10)
        before, since = server.stats()["tokens_minted"], time.monotonic()
        wait_until(lambda: time.time() > start + 15, timeout=10)
        after, elapsed = server.stats()["tokens_minted"], time.monotonic() - since
        results = fleet.results()
    sums = totals(results)
    assert len(results) == 6
    assert sums["errors"] == 0, [r["first_error"] for r in results if r["first_error"]]
    assert sums["invalid"] == 0 and sums["api_401"] == 0, [r["first_error"] for r in results]
    phases = [
        ("before the kill", start, killed),
        ("Redis down", killed, restarted),
        ("after the restart", restarted, start + duration),
    ]
    assert_calls_in_every_phase(fleet, results, phases)
    # Sharing again after the restart: as many mints as one caller would need.
    assert after - before <= elapsed / (lifetime - window) + 1, (before, after, elapsed)
