"""A worker for tests/test_promises.py: `python -m tests._promise_worker`. Once it is ready
(imports done) it says "ready" and reads the wall-clock end of its calls from stdin, so that a
loaded machine's slow start does not eat the calls' time.

Threads ask tokens with various min_ttl (configuration from FRESHTOKEN_* variables, the
client secret included, never argv); a checker thread asks the protected API about every token
handed out just before the latest instant it was promised valid. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import sys
import threading
import time

import httpx

from freshtoken import TokenBroker

#: A token is checked this long before its promise ends (the API's own latency is far less).
EPSILON = 0.25


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-ttls", default="0.3,0.8,1.5,2.5")
    parser.add_argument("--pause", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    broker = TokenBroker.from_env(grant=None)
    print("ready", flush=True)
    until = float(sys.stdin.readline())
    api = os.environ["WORKER_API_URL"]
    min_ttls = [float(m) for m in args.min_ttls.split(",")]
    lock = threading.Lock()
    promised: dict[str, float] = {}  # access token -> latest promised end (wall time)
    due: list[tuple[float, str]] = []  # (check at, access token), a heap
    counts = {"calls": 0, "errors": 0, "checks": 0, "broken": 0, "late": 0}
    first: list[str] = []
    calling = threading.Event()
    calling.set()

    def call(rng: random.Random) -> None:
        while time.time() < until:
            min_ttl = rng.choice(min_ttls)
            called = time.time()
            try:
                token = broker.token(min_ttl)
            except Exception as exc:  # whatever it is, the caller would have seen it
                with lock:
                    counts["errors"] += 1
                    first.append(f"{type(exc).__name__}: {exc}")
                continue
            end = called + min_ttl  # the broker promised at least this
            with lock:
                counts["calls"] += 1
                if end > promised.get(token.access_token, 0.0):
                    promised[token.access_token] = end
                    heapq.heappush(due, (end - EPSILON, token.access_token))
            time.sleep(args.pause)  # the caller's own work between calls

    def check() -> None:
        with httpx.Client() as http:
            while calling.is_set() or due:
                with lock:
                    head = due[0] if due else None
                if head is None or head[0] > time.time():
                    time.sleep(0.005)  # polling the heap, not synchronising
                    continue
                with lock:
                    at, value = heapq.heappop(due)
                    end = promised[value]
                if at < end - EPSILON:
                    continue  # promised longer since: checked then
                answer = http.get(api, headers={"Authorization": f"Bearer {value}"})
                answered = time.time()
                with lock:
                    counts["checks"] += 1
                    if answer.status_code == 200:
                        continue
                    if answered >= end:
                        counts["late"] += 1  # this checker was starved past the promise
                    else:
                        counts["broken"] += 1
                        first.append(
                            f"API {answer.status_code} {end - answered:.2f}s before "
                            "the end of its promise"
                        )

    rngs = [random.Random(args.seed * 100 + i) for i in range(args.threads)]
    callers = [threading.Thread(target=call, args=(rng,)) for rng in rngs]
    checker = threading.Thread(target=check)
    checker.start()
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    calling.clear()
    checker.join()
    broker.close()
    print(json.dumps({**counts, "first": first[:3], "tokens": len(promised)}), flush=True)


if __name__ == "__main__":
    main()
