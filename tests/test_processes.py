"""Many processes sharing one SQLite store, against the real test server: one token at a
time for all of them, as if there were one caller; and a refresh-token chain that survives
workers SIGKILLed mid-refresh."""

from __future__ import annotations

import functools
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from freshtoken import AuthorizationCode, Settings, TokenBroker
from freshtoken.testing import AuthServer
from tests._fleet import (
    assert_calls_in_every_phase,
    even_phases,
    share_one_token,
    totals,
    worker_env,
)
from tests.helpers import make_client, wait_until

pytestmark = pytest.mark.slow  # fleets of worker processes, for many token lifetimes


def test_eight_processes_of_sixteen_threads_share_one_token(
    tmp_path: Path, fleet_factory: Any
) -> None:
    share_one_token(
        fleet_factory,
        lambda server: worker_env(server, tmp_path / "t.db"),
        processes=8,
        threads=16,
        pause=0.01,
        min_calls=100_000,  # 170,000-250,000 made here: at most 256,000 (the pauses)
        min_checks=1_000,
    )


def test_cold_start_of_sixty_four_callers_mints_once(tmp_path: Path, fleet_factory: Any) -> None:
    with AuthServer(latency=0.05) as server:
        fleet = fleet_factory(
            worker_env(server, tmp_path / "t.db"), ["--threads", "8", "--once", "--wait-go"]
        )
        fleet.spawn_all(8)
        fleet.go()
        results = fleet.results()
        assert server.stats()["tokens_minted"] == 1
    assert totals(results)["calls"] == 64 and totals(results)["errors"] == 0
    assert sum(r["mints"] for r in results) == 1


def test_an_outage_shorter_than_the_lifetime_is_invisible(
    tmp_path: Path, fleet_factory: Any
) -> None:
    duration = 8.0
    with AuthServer(ttl=6) as server:
        fleet = fleet_factory(
            worker_env(server, tmp_path / "t.db"),
            [
                *("--threads", "4", "--duration", str(duration), "--min-ttl", "0.5"),
                *("--check-every", "50", "--wait-go"),
            ],
        )
        fleet.spawn_all(3)
        procs = fleet.procs
        go = time.time()
        fleet.go()
        wait_until(lambda: server.stats()["tokens_minted"] == 1 and time.time() > go + 0.5)
        down = time.time()
        server.configure(failure_rate=1.0)  # the endpoint is down for 4 s of a 6 s lifetime
        deadline = time.monotonic() + 4
        wait_until(
            lambda: time.monotonic() > deadline or not all(p.poll() is None for p in procs),
            timeout=10,
        )
        server.configure(failure_rate=0.0)
        back = time.time()
        results = fleet.results()
        stats = server.stats()
    sums = totals(results)
    assert stats["faults"] > 0  # refreshes were tried during the outage and failed
    assert len(results) == 3
    assert sums["errors"] == 0 and sums["invalid"] == 0 and sums["api_401"] == 0, [
        r["first_error"] for r in results
    ]
    phases = [("before", go, down), ("outage", down, back), ("after", back, go + duration)]
    assert_calls_in_every_phase(fleet, results, phases)
    assert stats["tokens_minted"] >= 2  # and the token was renewed once it was back


def _refreshes(server: AuthServer) -> int:
    minted: dict[str, int] = server.stats()["minted"]["demo-client"]
    return minted.get("refresh_token", 0)


def _refreshed_since(server: AuthServer, before: int) -> bool:
    return _refreshes(server) > before


def test_refresh_token_chain_survives_workers_killed_mid_refresh(
    tmp_path: Path, fleet_factory: Any
) -> None:
    """Rotation with reuse detection on; the lock holder is SIGKILLed while its refresh is in
    flight (the server would drop a request whose client died, as servers behind a proxy do:
    the refresh runs in a process of its own, which is not killed with it)."""
    rng = random.Random(4)
    db = tmp_path / "t.db"
    with AuthServer(ttl=2, latency=0.25, abandon_on_disconnect=True) as server:
        env = worker_env(server, db)
        seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
        assert seed.refresh_token
        seeder = TokenBroker.from_settings(Settings.from_env(env), grant=None)
        seeder.seed_refresh_token(seed.refresh_token)
        until = time.time() + 30
        fleet = fleet_factory(
            env,
            [
                "--refresh-only",
                "--threads",
                "4",
                "--until",
                str(until),
                "--min-ttl",
                "0.2",
                "--pause",
                "0.01",
                "--check-every",
                "50",
            ],
        )
        fleet.spawn_all(8)
        locks = db.with_name("t.db.locks")
        started, end = time.time(), time.monotonic() + (until - time.time())
        kills_mid_refresh = random_kills = 0
        while time.monotonic() < end - 3:
            wait_until(
                lambda: (
                    any(a < 0.1 for a in server.stats()["inflight_ages"]) or time.monotonic() > end
                ),
                timeout=40,
            )
            holders = [int(p.read_text() or 0) for p in locks.glob("*.lock")]
            victims = [p for p in fleet.procs if p.pid in holders and p.poll() is None]
            if victims:
                refreshed = _refreshes(server)
                victims[0].send_signal(signal.SIGKILL)
                victims[0].wait()
                kills_mid_refresh += 1
                fleet.spawn(wait_ready=False)
                # Its spender stores the outcome; a successor waits for it (within its budget)
                # and adopts it. Let the chain recover before the next kill.
                wait_until(functools.partial(_refreshed_since, server, refreshed), timeout=20)
            if rng.random() < 0.3:  # and now and then a worker that holds nothing
                alive = [p for p in fleet.procs if p.poll() is None and p not in victims]
                victim = rng.choice(alive)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                random_kills += 1
                fleet.spawn(wait_ready=False)
            wait_until(lambda: not server.stats()["inflight_ages"], timeout=10)
        results = fleet.results()
        stats = server.stats()
        chain_alive = server.active_refresh_tokens("demo-client")
    assert kills_mid_refresh >= 5, kills_mid_refresh
    assert stats["abandoned"] == 0  # every spender outlived its killed caller
    assert stats["reuse_detections"] == 0
    assert chain_alive == 1
    assert stats["minted"]["demo-client"].get("client_credentials", 0) == 0
    sums = totals(results)
    assert results, "some workers ran to the end"
    assert random_kills >= 1, "no worker that held nothing was killed"
    assert sums["errors"] == 0, [r["first_error"] for r in results if r["first_error"]]
    assert sums["invalid"] == 0 and sums["api_401"] == 0 and sums["api_checks"] > 50
    assert_calls_in_every_phase(fleet, results, even_phases(started, until, 3))
