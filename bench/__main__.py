"""freshtoken benchmarks: `scripts/bench.sh` (or `python -m bench`). Prints tables.

Loopback only: every server here is the shipped test server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tests._redis import RedisProcess

from freshtoken import (
    ClientCredentials,
    ClientSecretBasic,
    Endpoints,
    MemoryStore,
    RefreshPolicy,
    Secret,
    TokenBroker,
    TokenClient,
    TokenStore,
)
from freshtoken._sources._redis import RedisStore
from freshtoken._sources._sqlite import SQLiteStore
from freshtoken.testing import AuthServer

console = Console()
STORE_KEY = base64.b64encode(os.urandom(32)).decode()


def _ns_per_op(stmt: Callable[[], object], number: int) -> float:
    best = min(timeit.repeat(stmt, number=number, repeat=5))
    return best / number * 1e9


def hot_path(number: int, redis_url: str | None) -> None:
    table = Table(title="warm token(): one process, cache hit")
    for column in ("what", "ns/op", "x baseline"):
        table.add_column(column, justify="right" if column != "what" else "left")
    cache = {"key": "value"}
    clock = time.time
    baseline = _ns_per_op(lambda: (cache["key"], clock()), number)
    rows = [("baseline: dict lookup + time.time()", baseline)]
    with AuthServer() as server, tempfile.TemporaryDirectory() as tmp:
        stores: list[tuple[str, TokenStore]] = [
            ("token(), memory store", MemoryStore()),
            ("token(), SQLite store", SQLiteStore(Path(tmp) / "t.db")),
        ]
        if redis_url:
            stores.append(("token(), Redis store", RedisStore(redis_url, Secret(STORE_KEY))))
        for label, store in stores:
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


def fleet(processes: list[int], lifetime: float, duration: float, redis_url: str | None) -> None:
    window = RefreshPolicy().window(lifetime)
    ideal = duration / (lifetime - window) + 1
    table = Table(
        title=f"token-endpoint mints: tokens live {lifetime:g}s, run {duration:g}s "
        f"(refresh window {window:g}s)"
    )
    for column in (
        "processes x threads",
        "store",
        "shared",
        "each alone",
        "ideal (one caller)",
        "shared / ideal",
        "alone / shared",
    ):
        table.add_column(column, justify="right")
    stores = ["sqlite"] + (["redis"] if redis_url else [])
    for store in stores:
        for n in processes:
            shared = _run_fleet(n, lifetime, duration, store, redis_url, shared=True)
            alone = _run_fleet(n, lifetime, duration, store, redis_url, shared=False)
            table.add_row(
                f"{n} x 4",
                store,
                str(shared),
                str(alone),
                f"<= {ideal:.0f}",
                f"{shared / ideal:.2f}",
                f"{alone / shared:.1f}x",
            )
    console.print(table)


def _run_fleet(
    n: int, lifetime: float, duration: float, store: str, redis_url: str | None, *, shared: bool
) -> int:
    with AuthServer(ttl=lifetime) as server, tempfile.TemporaryDirectory() as tmp:
        base = {k: v for k, v in os.environ.items() if not k.startswith("FRESHTOKEN_")}
        procs = []
        for i in range(n):
            if store == "redis":
                assert redis_url is not None
                where = {
                    "FRESHTOKEN_STORE": redis_url,
                    "FRESHTOKEN_STORE_KEY": STORE_KEY,
                    "FRESHTOKEN_REDIS_PREFIX": f"bench{'' if shared else i}:",
                }
            else:
                name = "shared.db" if shared else f"alone-{i}.db"
                where = {"FRESHTOKEN_STORE": f"sqlite://{Path(tmp) / name}"}
            env = {
                **base,
                **where,
                "FRESHTOKEN_TOKEN_URL": server.token_url,
                "FRESHTOKEN_CLIENT_ID": "demo-client",
                "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
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
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(Path(tmp)).start() if shutil.which("redis-server") else None
        try:
            url = redis.url if redis else None
            hot_path(200_000 if args.quick else 1_000_000, url)
            fleet(
                [1, 4] if args.quick else [1, 4, 8],
                lifetime=2.0,
                duration=4.0 if args.quick else 10.0,
                redis_url=url,
            )
        finally:
            if redis:
                redis.stop()


if __name__ == "__main__":
    main()
