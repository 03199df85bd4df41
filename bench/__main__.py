"""freshtoken benchmarks: `scripts/bench.sh` (or `python -m bench`). Prints tables.

Loopback only: every server here is the shipped test server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from freshtoken import (
    ClientCredentials,
    ClientSecretBasic,
    Endpoints,
    MemoryStore,
    RefreshPolicy,
    Secret,
    TokenBroker,
    TokenClient,
)
from freshtoken._sources._sqlite import SQLiteStore
from freshtoken.testing import AuthServer

console = Console()


def _ns_per_op(stmt: Callable[[], object], number: int) -> float:
    best = min(timeit.repeat(stmt, number=number, repeat=5))
    return best / number * 1e9


def hot_path(number: int) -> None:
    table = Table(title="warm token(): one process, cache hit")
    for column in ("what", "ns/op", "x baseline"):
        table.add_column(column, justify="right" if column != "what" else "left")
    cache = {"key": "value"}
    clock = time.time
    baseline = _ns_per_op(lambda: (cache["key"], clock()), number)
    rows = [("baseline: dict lookup + time.time()", baseline)]
    with AuthServer() as server, tempfile.TemporaryDirectory() as tmp:
        for label, store in (
            ("token(), memory store", MemoryStore()),
            ("token(), SQLite store", SQLiteStore(Path(tmp) / "t.db")),
        ):
            broker = TokenBroker(
                TokenClient(
                    ClientSecretBasic("demo-client", Secret("demo-secret")),
                    endpoints=Endpoints(server.token_url),
                ),
                grant=ClientCredentials(),
                store=store,
            )
            broker.token()
            rows.append((label, _ns_per_op(broker.token, number)))
            rows.append(
                (
                    label.replace("token()", "token(min_ttl=900)"),
                    _ns_per_op(functools.partial(broker.token, 900), number),
                )
            )
    for label, ns in rows:
        table.add_row(label, f"{ns:,.0f}", f"{ns / baseline:.1f}x")
    console.print(table)


def fleet(processes: list[int], lifetime: float, duration: float) -> None:
    window = RefreshPolicy().window(lifetime)
    ideal = duration / (lifetime - window) + 1
    table = Table(
        title=f"token-endpoint mints: tokens live {lifetime:g}s, run {duration:g}s "
        f"(refresh window {window:g}s)"
    )
    for column in (
        "processes x threads",
        "shared SQLite store",
        "each alone",
        "ideal (one caller)",
        "shared / ideal",
    ):
        table.add_column(column, justify="right")
    for n in processes:
        shared = _run_fleet(n, lifetime, duration, shared=True)
        alone = _run_fleet(n, lifetime, duration, shared=False)
        table.add_row(
            f"{n} x 4", str(shared), str(alone), f"<= {ideal:.0f}", f"{shared / ideal:.2f}"
        )
    console.print(table)


def _run_fleet(n: int, lifetime: float, duration: float, *, shared: bool) -> int:
    with AuthServer(ttl=lifetime) as server, tempfile.TemporaryDirectory() as tmp:
        base = {k: v for k, v in os.environ.items() if not k.startswith("FRESHTOKEN_")}
        procs = []
        for i in range(n):
            store = Path(tmp) / ("shared.db" if shared else f"alone-{i}.db")
            env = {
                **base,
                "FRESHTOKEN_TOKEN_URL": server.token_url,
                "FRESHTOKEN_CLIENT_ID": "demo-client",
                "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
                "FRESHTOKEN_STORE": f"sqlite://{store}",
                "WORKER_API_URL": server.url + "/api/v2/tokens/me",
            }
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests._worker",
                        "broker",
                        "--threads",
                        "4",
                        "--until",
                        str(time.time() + duration + 1),
                        "--min-ttl",
                        "0.2",
                    ],
                    env=env,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in procs:
            out, _ = proc.communicate(timeout=duration + 60)
            result = json.loads(out.strip().splitlines()[-1])
            if result["errors"]:
                raise SystemExit(f"a worker saw errors: {result['first_error']}")
        minted: int = server.stats()["tokens_minted"]
        return minted


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer iterations, shorter runs")
    args = parser.parse_args()
    hot_path(200_000 if args.quick else 1_000_000)
    fleet([1, 4] if args.quick else [1, 4, 8], lifetime=2.0, duration=4.0 if args.quick else 10.0)


if __name__ == "__main__":
    main()
