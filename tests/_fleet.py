"""Worker fleets for the cross-process tests: real processes, all stopped by the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from freshtoken.testing import AuthServer
from tests._worker import TENTHS


def worker_env(server: AuthServer, store: Path | str, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRESHTOKEN_")}
    return {
        **base,
        "FRESHTOKEN_TOKEN_URL": server.token_url,
        "FRESHTOKEN_INTROSPECTION_URL": server.url + "/oauth/introspect",
        "FRESHTOKEN_CLIENT_ID": "demo-client",
        "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
        "FRESHTOKEN_STORE": store if isinstance(store, str) else f"sqlite://{store}",
        "FRESHTOKEN_RETRY_BUDGET": "10",
        # A refresh attempt's in-flight window is one connect and one read timeout plus one
        # more read timeout: short here, so that after a holder is killed its successor (and
        # everyone waiting behind it) waits the window out within the budget.
        "FRESHTOKEN_CONNECT_TIMEOUT": "1",
        "FRESHTOKEN_READ_TIMEOUT": "1",
        "WORKER_API_URL": server.url + "/api/v2/tokens/me",
        **extra,
    }


class Fleet:
    """Worker processes, all stopped when the test ends."""

    def __init__(self, env: dict[str, str], args: list[str]) -> None:
        self.env, self.args = env, args
        self.procs: list[subprocess.Popen[str]] = []
        self.spawned: dict[int, float] = {}  # pid -> wall-clock time of its spawn

    def spawn(self, wait_ready: bool = True) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests._worker", "broker", *self.args],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        self.spawned[proc.pid] = time.time()
        if wait_ready:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        return proc

    def spawn_all(self, count: int) -> None:
        """Start `count` workers at once and wait until every one is ready."""
        procs = [self.spawn(wait_ready=False) for _ in range(count)]
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"

    def go(self) -> None:
        """Release workers started with --wait-go, all at once."""
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def ask_to_stop(self) -> None:
        """Tell every live worker started with --stop-on-input to stop (a line on stdin)."""
        for proc in self.procs:
            if proc.poll() is None:
                assert proc.stdin is not None
                proc.stdin.write("stop\n")
                proc.stdin.flush()

    def results(self, timeout: float = 120) -> list[dict[str, Any]]:
        out = []
        for proc in self.procs:
            stdout, _ = proc.communicate(timeout=timeout)
            if proc.returncode == -signal.SIGKILL:
                continue  # killed by the test
            assert proc.returncode == 0
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def totals(results: list[dict[str, Any]]) -> dict[str, int]:
    return {
        k: sum(r[k] for r in results)
        for k in ("calls", "errors", "invalid", "api_checks", "api_401", "api_late")
    }


def calls_between(result: dict[str, Any], start: float, end: float) -> int:
    """A worker's calls made in the wall-clock tenths of a second that lie wholly inside
    [start, end) (see tests._worker.TENTHS)."""
    return sum(
        n
        for tenth, n in result["by_tenth"].items()
        if int(tenth) / TENTHS >= start and (int(tenth) + 1) / TENTHS <= end
    )


Phase = tuple[str, float, float]  # name, wall-clock start, wall-clock end


def even_phases(start: float, end: float, count: int) -> list[Phase]:
    step = (end - start) / count
    return [(f"{i + 1}/{count}", start + i * step, start + (i + 1) * step) for i in range(count)]


def assert_calls_in_every_phase(
    fleet: Fleet, results: list[dict[str, Any]], phases: list[Phase]
) -> None:
    """Every worker that ran to the end made calls in every phase that began after it was
    spawned, from every one of its threads."""
    assert results, "no worker ran to the end"
    idle = [(r["pid"], r["idle_threads"]) for r in results if r["idle_threads"]]
    assert not idle, f"threads that never made a call (pid, count): {idle}"
    silent = [
        (r["pid"], name)
        for r in results
        for name, start, end in phases
        if start >= fleet.spawned[r["pid"]] and calls_between(r, start, end) == 0
    ]
    assert not silent, f"workers that made no call in a phase (pid, phase): {silent}"


def share_one_token(
    make: Callable[[dict[str, str], list[str]], Fleet],
    env_for: Callable[[AuthServer], dict[str, str]],
    *,
    processes: int,
    threads: int,
    pause: float,
    min_calls: int,
    min_checks: int,
) -> None:
    """Many processes on one store for 20 s of 2 s tokens: every token valid when handed
    out, no errors, and no more mints than one lone caller would need."""
    from freshtoken import RefreshPolicy

    lifetime, duration = 2.0, 20.0
    window = RefreshPolicy().window(lifetime)
    with AuthServer(ttl=lifetime) as server:
        fleet = make(
            env_for(server),
            [
                "--threads",
                str(threads),
                "--duration",
                str(duration),
                "--min-ttl",
                "0.5",
                "--pause",
                str(pause),
                "--check-every",
                "100",
                "--wait-go",
            ],
        )
        fleet.spawn_all(processes)
        started, go = time.monotonic(), time.time()
        fleet.go()
        results = fleet.results()
        elapsed = time.monotonic() - started
        minted = server.stats()["tokens_minted"]
    sums = totals(results)
    assert len(results) == processes
    assert sums["errors"] == 0, [r["first_error"] for r in results if r["first_error"]]
    first_errors = [r["first_error"] for r in results if r["first_error"]]
    assert sums["invalid"] == 0 and sums["api_401"] == 0, (sums, first_errors)
    # Each worker kept calling through every quarter of the run (ten token lifetimes).
    assert_calls_in_every_phase(fleet, results, even_phases(go, go + duration, 4))
    assert sums["calls"] > min_calls and sums["api_checks"] > min_checks, sums
    assert minted <= elapsed / (lifetime - window) + 1, (minted, elapsed)
