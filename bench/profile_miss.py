"""How much of freshtoken one cache miss runs: `scripts/bench.sh --miss` prints it.

The calling process is profiled (`sys.setprofile`, every thread) while a broker built as the
command line builds it (`TokenBroker.from_settings`, a SQLite store) serves one miss:

- a client-credentials mint (nothing stored);
- a refresh with a refresh token (a seeded refresh token, the `refresh_token` grant). The
  refresh token is presented by the detached spender, a process of its own: only the caller is
  counted here, the spender's own files are not.

Counted: the distinct freshtoken source files whose functions run, and the distinct pairs
caller file -> callee file among them (a call within one file is no pair). Each miss is
measured after an identical miss on another store file, so that lazy imports are done:
module bodies are not counted, only the functions a warm process runs. The test server runs
in a process of its own (it is freshtoken code too), on 127.0.0.1. Issue 20's targets: at
most 15 files and 20 pairs per miss, and `broker/` at most 1,600 lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

import freshtoken
from freshtoken import TokenBroker
from freshtoken.config._settings import Settings

console = Console(width=110)
PACKAGE = Path(freshtoken.__file__).resolve().parent
SEEDS = 2  # one refresh token for the warm-up miss, one for the measured miss

#: The test server, in a process of its own: it prints its token URL and refresh tokens got
#: by the authorization-code grant, then serves until its stdin closes.
_SERVER = f"""
import json, sys
from freshtoken import AuthorizationCode, ClientSecretBasic, Endpoints, Secret, TokenClient
from freshtoken.testing import AuthServer

with AuthServer() as server:
    client = TokenClient(
        ClientSecretBasic("demo-client", Secret("demo-secret")),
        endpoints=Endpoints(server.token_url),
    )
    seeds = [
        client.fetch(AuthorizationCode(server.issue_code("demo-client"))).refresh_token
        for _ in range({SEEDS})
    ]
    print(json.dumps({{"token_url": server.token_url, "seeds": seeds}}), flush=True)
    sys.stdin.read()
"""


def _source(frame: FrameType | None) -> str | None:
    """The frame's file relative to the package, or None outside freshtoken."""
    if frame is None:
        return None
    path = frame.f_code.co_filename
    if not path.startswith(str(PACKAGE)):
        return None
    return Path(path).relative_to(PACKAGE).as_posix()


def profiled(call: Callable[[], object]) -> tuple[set[str], set[tuple[str, str]]]:
    """The freshtoken files `call` runs in this process, and the caller -> callee file pairs."""
    files: set[str] = set()
    pairs: set[tuple[str, str]] = set()

    def hook(frame: FrameType, event: str, _arg: object) -> None:
        if event != "call" or frame.f_code.co_name == "<module>":
            return
        callee = _source(frame)
        if callee is None:
            return
        files.add(callee)
        caller = _source(frame.f_back)
        if caller is not None and caller != callee:
            pairs.add((caller, callee))

    threading.setprofile(hook)  # threads the miss starts
    sys.setprofile(hook)
    try:
        call()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return files, pairs


def broker_lines() -> int:
    """Lines of `broker/`, every module."""
    return sum(len(p.read_text().splitlines()) for p in (PACKAGE / "broker").glob("*.py"))


def _broker(token_url: str, db: Path, *, grant: str) -> TokenBroker:
    settings = Settings(
        token_url=token_url,
        client_id="demo-client",
        client_secret="demo-secret",  # type: ignore[arg-type]  # a str is wrapped at once
        store=f"sqlite://{db}",
        grant=grant,
    )
    return TokenBroker.from_settings(settings)


def measure() -> dict[str, tuple[set[str], set[tuple[str, str]]]]:
    """Each miss's files and pairs, the second of two identical misses."""
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    found: dict[str, tuple[set[str], set[tuple[str, str]]]] = {}
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        url, seeds = ready["token_url"], ready["seeds"]
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(SEEDS):
                mint = _broker(url, Path(tmp) / f"mint{run}.db", grant="client_credentials")
                refresh = _broker(url, Path(tmp) / f"refresh{run}.db", grant="refresh_token")
                refresh.seed_refresh_token(seeds[run])
                for label, broker in (
                    ("client-credentials mint", mint),
                    ("refresh with a refresh token (caller only)", refresh),
                ):
                    found[label] = profiled(broker.token)
                    broker.close()
    finally:
        server.communicate("")
    return found


def profile_miss(verbose: bool = False) -> None:
    found = measure()
    table = Table(title="one cache miss on a SQLite store, the calling process profiled")
    for column in ("miss", "freshtoken files", "file -> file pairs"):
        table.add_column(column, justify="right" if column != "miss" else "left")
    for label, (files, pairs) in found.items():
        table.add_row(label, str(len(files)), str(len(pairs)))
    console.print(table)
    console.print(f"broker/: {broker_lines():,} lines")
    if verbose:
        for label, (files, pairs) in found.items():
            console.print(f"\n{label}: files", sorted(files))
            console.print("pairs", *(f"{a} -> {b}" for a, b in sorted(pairs)), sep="\n  ")


if __name__ == "__main__":
    profile_miss(verbose="-v" in sys.argv[1:])
