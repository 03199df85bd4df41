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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from tests._redis import RedisProcess

import freshtoken
from freshtoken import (
    AuthorizationCode,
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
from freshtoken.stores._redis import RedisStore
from freshtoken.stores._sqlite import SQLiteStore
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
        rows += _promised_hits(server, Path(tmp) / "r.db", number)
    for label, ns in rows:
        table.add_row(label, f"{ns:,.0f}", f"{ns / baseline:.1f}x")
    console.print(table)


def _promised_hits(server: AuthServer, db: Path, number: int) -> list[tuple[str, float]]:
    """Hits on a refresh token's token, promises kept (a server that may revoke it on
    rotation): the same hit, plus a store write per quantum (5 s) at most."""
    client = TokenClient(
        ClientSecretBasic("demo-client", Secret("demo-secret")),
        endpoints=Endpoints(server.token_url),
    )
    broker = TokenBroker(client, grant=None, store=SQLiteStore(db))
    code = server.issue_code("demo-client")
    seed = client.fetch(AuthorizationCode(code)).refresh_token
    assert seed is not None
    broker.seed_refresh_token(seed)
    broker.token(900)
    label = "token(min_ttl=900), refresh token, promises kept, SQLite"
    return [(label, _ns_per_op(functools.partial(broker.token, 900), number))]


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


def _median_ms(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _latencies(client: httpx.Client, url: str, headers: dict[str, str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        out.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
    return sorted(out)


def _rps(url: str, headers: dict[str, str], seconds: float, threads: int = 4) -> float:
    done = [0] * threads
    end = time.monotonic() + seconds

    def work(i: int) -> None:
        with httpx.Client() as client:
            while time.monotonic() < end:
                client.get(url, headers=headers)
                done[i] += 1

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(done) / seconds


def command_line(runs: int, requests: int) -> None:
    cli = str(Path(sys.executable).parent / "freshtoken")
    # As an installed wheel would be: bytecode compiled (an editable install under
    # PYTHONDONTWRITEBYTECODE would otherwise compile every module on every run).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(freshtoken.__file__).parent)],
        check=True,
    )
    with AuthServer() as server, tempfile.TemporaryDirectory() as tmp:
        base = {k: v for k, v in os.environ.items() if not k.startswith("FRESHTOKEN_")}
        env = {
            **base,
            "FRESHTOKEN_TOKEN_URL": server.token_url,
            "FRESHTOKEN_CLIENT_ID": "demo-client",
            "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
            "FRESHTOKEN_STORE": f"sqlite://{tmp}/t.db",
            "FRESHTOKEN_PROXY_UPSTREAM": server.url,
        }
        subprocess.run([cli, "token"], env=env, check=True, stdout=subprocess.DEVNULL)
        serve = subprocess.Popen(
            [cli, "-q", "serve", "--proxy"], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert serve.stdout is not None
            ready = json.loads(serve.stdout.readline())
            key = Path(ready["key_file"]).read_text()
            child = {**base, "FRESHTOKEN_URL": ready["url"], "FRESHTOKEN_KEY": key}
            bare = _median_ms([sys.executable, "-c", "pass"], base, runs)
            table = Table(title=f"a whole process, median of {runs} runs")
            for column in ("command", "ms", "x python3 -c pass"):
                table.add_column(column, justify="right" if column != "command" else "left")
            for label, argv, where in (
                ("python3 -c pass", [sys.executable, "-c", "pass"], base),
                ("freshtoken token (SQLite store hit)", [cli, "token"], env),
                ("freshtoken token (inside exec: parent endpoint)", [cli, "token"], child),
            ):
                ms = bare if argv[1:] == ["-c", "pass"] else _median_ms(argv, where, runs)
                table.add_row(label, f"{ms:.1f}", f"{ms / bare:.1f}x")
            console.print(table)
            headers = {"X-Freshtoken-Key": key}
            with httpx.Client() as client:
                token = client.get(ready["url"] + "/token", headers=headers).json()
                direct_headers = {"Authorization": f"Bearer {token['access_token']}"}
                rows = [
                    ("GET /token from serve", ready["url"] + "/token", headers),
                    ("GET /api/echo direct", server.url + "/api/echo", direct_headers),
                    ("GET /api/echo through the proxy", ready["proxy_url"] + "/api/echo", headers),
                ]
                lat = {label: _latencies(client, url, h, requests) for label, url, h in rows}
            table = Table(
                title=f"local endpoint and proxy, {requests} sequential requests; "
                "throughput with 4 client threads for 3 s"
            )
            for column in ("what", "p50 ms", "p99 ms", "req/s"):
                table.add_column(column, justify="right" if column != "what" else "left")
            for label, url, h in rows:
                values = lat[label]
                table.add_row(
                    label,
                    f"{values[len(values) // 2]:.2f}",
                    f"{values[int(len(values) * 0.99)]:.2f}",
                    f"{_rps(url, h, 3.0):,.0f}",
                )
            direct, proxied = lat[rows[1][0]], lat[rows[2][0]]
            p50 = proxied[len(proxied) // 2] - direct[len(direct) // 2]
            p99 = proxied[int(len(proxied) * 0.99)] - direct[int(len(direct) * 0.99)]
            table.add_row("added by the proxy", f"{p50:.2f}", f"{p99:.2f}", "")
            console.print(table)
        finally:
            serve.terminate()
            serve.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer iterations, shorter runs")
    parser.add_argument(
        "--soak", action="store_true", help="only the soak: serve for 80 lifetimes (4 minutes)"
    )
    parser.add_argument(
        "--startup",
        action="store_true",
        help="only the start-up cost of `freshtoken token`, in instructions (needs valgrind)",
    )
    parser.add_argument(
        "--miss",
        action="store_true",
        help="only the freshtoken files and calls one cache miss runs (issue 20's measure)",
    )
    args = parser.parse_args()
    if args.miss:
        from bench.profile_miss import profile_miss

        profile_miss()
        return
    if args.startup:
        from bench.startup import startup

        startup()
        return
    if args.soak:
        from bench.soak import soak

        soak()
        return
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(Path(tmp)).start() if shutil.which("redis-server") else None
        try:
            url = redis.url if redis else None
            hot_path(200_000 if args.quick else 1_000_000, url)
            command_line(10 if args.quick else 30, 300 if args.quick else 2000)
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
