"""A worker process for the cross-process tests: `python -m tests._worker MODE [options]`.

Configuration (including the client secret) comes from FRESHTOKEN_* variables, never argv.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import ssl
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path

import httpx

from freshtoken import Secret, TokenBroker, TokenStore
from freshtoken.stores._redis import RedisStore
from freshtoken.stores._sqlite import SQLiteStore


def hold_lock(args: argparse.Namespace) -> None:
    """Hold a store's lock: forever, or (--release-on-input) until a line comes on stdin; then
    say whether it still owns the lock, release it, and say so."""
    store: TokenStore
    if args.redis:
        store = RedisStore(args.redis, Secret(os.environ["FRESHTOKEN_STORE_KEY"]), lease=args.lease)
    else:
        store = SQLiteStore(Path(args.db))
    with store.lock(args.key, 5.0) as held:
        print("held" if held else "not-held", flush=True)
        if not args.release_on_input:
            threading.Event().wait()
        sys.stdin.readline()
        print("owns" if store.owns_lock(args.key) else "lost", flush=True)
    print("released", flush=True)


#: Calls are counted per tenth of a second of wall-clock time (`by_tenth`), so that a test can
#: check that every worker made calls in every phase it staged (tests._fleet.calls_between).
TENTHS = 10


@dataclass
class Counts:
    calls: int = 0
    errors: int = 0
    invalid: int = 0
    api_checks: int = 0
    api_401: int = 0
    api_late: int = 0
    first_error: str | None = None
    by_tenth: Counter[int] = field(default_factory=Counter)


def broker_worker(args: argparse.Namespace) -> None:
    broker = TokenBroker.from_env(**({"grant": None} if args.refresh_only else {}))
    assert isinstance(broker, TokenBroker)  # a worker mints: it has no running endpoint
    api = os.environ["WORKER_API_URL"]
    results = [Counts() for _ in range(args.threads)]
    tls = ssl.create_default_context()  # one for all: each costs ~40 ms of CPU
    clients = [httpx.Client(verify=tls) for _ in range(args.threads)]  # ready before "go"
    go, stop = threading.Event(), threading.Event()
    end = 0.0

    def call(mine: Counts, http: httpx.Client) -> None:
        called = time.time()
        token = broker.token(args.min_ttl)
        mine.calls += 1
        mine.by_tenth[int(called * TENTHS)] += 1
        # The broker checked at some instant after `called`: from then on, at least
        # min_ttl must have been left (exact, whatever the scheduling).
        left = token.expires_at - called
        if left < args.min_ttl:
            mine.invalid += 1
            mine.first_error = mine.first_error or (
                f"handed out with {left:.3f}s left, counted from the call"
            )
        if args.check_every and mine.calls % args.check_every == 1:
            sent = time.time()
            status = http.get(api, headers={"Authorization": token.authorization})
            mine.api_checks += 1
            answered = time.time()
            if status.status_code != 200 and answered >= token.expires_at:
                # Starved past the token's end between hand-out and the API's check: the
                # scheduler's doing, not the broker's (`invalid` is the exact test of what
                # the broker handed out).
                mine.api_late += 1
            elif status.status_code != 200:
                mine.api_401 += 1
                mine.first_error = mine.first_error or (
                    f"API {status.status_code} {answered - sent:.3f}s after "
                    f"sending a token with {token.expires_at - sent:.3f}s left"
                )

    def attempt(mine: Counts, http: httpx.Client) -> None:
        try:
            call(mine, http)
        except BaseException as exc:  # whatever it is, the caller would have seen it
            mine.errors += 1
            mine.first_error = mine.first_error or f"{type(exc).__name__}: {exc}"

    def run(mine: Counts, http: httpx.Client) -> None:
        go.wait()
        with http:
            while True:
                attempt(mine, http)
                if args.once or stop.is_set() or time.monotonic() >= end:
                    break
                time.sleep(args.pause)  # the caller's own work between calls

    threads = [
        threading.Thread(target=run, args=pair) for pair in zip(results, clients, strict=True)
    ]
    for t in threads:
        t.start()
    print("ready", flush=True)
    if args.wait_go:
        sys.stdin.readline()
    started = time.time()
    if args.stop_on_input:
        end = float("inf")
    else:
        end = time.monotonic() + (args.until - started if args.until else args.duration)
    go.set()
    if args.stop_on_input:
        sys.stdin.readline()
        stop.set()
    for t in threads:
        t.join()
    if args.stop_on_input:
        # One more call once the test's faults are over: whatever happened, this worker still
        # gets a valid token (counted with the others).
        with httpx.Client(verify=tls) as http:
            attempt(results[0], http)
    total = {
        f.name: sum(getattr(r, f.name) for r in results) for f in fields(Counts) if f.type == "int"
    }
    by_tenth: Counter[int] = sum((r.by_tenth for r in results), Counter())
    errors = [r.first_error for r in results if r.first_error]
    print(
        json.dumps(
            {
                **total,
                "first_error": errors[0] if errors else None,
                "mints": broker.stats.mints,
                "pid": os.getpid(),
                "started": started,
                "threads": len(results),
                "idle_threads": sum(1 for r in results if r.calls == 0),
                "by_tenth": by_tenth,
            }
        ),
        flush=True,
    )


def full_disk(db: str) -> None:
    """Open a store, then make every file write beyond the current sizes fail (EFBIG)."""
    store = SQLiteStore(Path(db))
    broker = TokenBroker.from_env(store=store)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
    token = broker.token()
    print(json.dumps({"ok": bool(token.access_token), "again": broker.token() is token}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["hold-lock", "broker", "full-disk"])
    parser.add_argument("--db")
    parser.add_argument("--redis", help="hold-lock: a Redis store's URL instead of --db")
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--release-on-input", action="store_true")
    parser.add_argument("--key")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--until", type=float, default=0.0, help="wall-clock end instead")
    parser.add_argument("--min-ttl", type=float, default=0.5)
    parser.add_argument("--pause", type=float, default=0.005)
    parser.add_argument("--check-every", type=int, default=0)
    parser.add_argument("--refresh-only", action="store_true")
    parser.add_argument("--wait-go", action="store_true")
    parser.add_argument("--once", action="store_true")
    parser.add_argument(
        "--stop-on-input", action="store_true", help="run until a line on stdin, then call once"
    )
    args = parser.parse_args()
    if args.mode == "hold-lock":
        hold_lock(args)
    elif args.mode == "full-disk":
        full_disk(args.db)
    else:
        broker_worker(args)


if __name__ == "__main__":
    main()
