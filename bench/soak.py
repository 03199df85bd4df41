"""Soak: `freshtoken serve` under 20 concurrent clients for 80 lifetimes of 3-second tokens.

Every answer is checked: non-200s, and tokens handed out already expired (by the test
server's own clock: the API refuses them) are counted; the server process's RSS and open
descriptors are read from /proc at the start and the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from freshtoken.testing import AuthServer


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def soak(clients: int = 20, lifetime: float = 3.0, lifetimes: int = 80) -> None:
    seconds = lifetime * lifetimes
    counts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp, AuthServer(ttl=lifetime) as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FRESHTOKEN_")},
            "FRESHTOKEN_TOKEN_URL": server.token_url,
            "FRESHTOKEN_CLIENT_ID": "demo-client",
            "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
            "FRESHTOKEN_STORE": f"sqlite://{tmp}/tokens.db",
            "XDG_CACHE_HOME": tmp,
        }
        serve = subprocess.Popen(
            [sys.executable, "-m", "freshtoken", "-q", "serve"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert serve.stdout is not None
        ready = json.loads(serve.stdout.readline())
        key = Path(ready["key_file"]).read_text()
        url, pid = ready["url"] + "/token?min_ttl=0.5", serve.pid
        start = (_rss_kib(pid), _fds(pid))
        end_at = time.monotonic() + seconds
        lock = threading.Lock()

        def client() -> None:
            with httpx.Client(timeout=30) as http:
                while time.monotonic() < end_at:
                    got = http.get(url, headers={"X-Freshtoken-Key": key})
                    kind = "ok"
                    if got.status_code != 200:
                        kind = f"HTTP {got.status_code}"
                    else:
                        token = got.json()["access_token"]
                        api = http.get(
                            server.url + "/api/v2/tokens/me",
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        if api.status_code != 200:
                            kind = "expired hand-out"
                    with lock:
                        counts[kind] += 1

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        end = (_rss_kib(pid), _fds(pid))
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=10)
        minted = server.stats()["tokens_minted"]
    table = Table(title=f"soak: serve, {clients} clients, {lifetimes} lifetimes of {lifetime:g}s")
    for column in ("what", "value"):
        table.add_column(column)
    table.add_row("requests", str(sum(counts.values())))
    table.add_row("non-200 answers", str(sum(v for k, v in counts.items() if k.startswith("HTTP"))))
    table.add_row("expired hand-outs (API 401)", str(counts["expired hand-out"]))
    table.add_row("tokens minted", f"{minted} (ideal about {seconds / (lifetime / 2):.0f})")
    table.add_row("RSS start -> end", f"{start[0] / 1024:.1f} -> {end[0] / 1024:.1f} MiB")
    table.add_row("open descriptors start -> end", f"{start[1]} -> {end[1]}")
    Console().print(table)
