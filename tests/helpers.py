"""Helpers shared by the tests, imported directly (conftest.py holds only fixtures).

`require` is the one way a test asks for a real component it cannot run without: outside CI
a missing one skips the test; with $CI set it fails, naming the component and how to get it.
"""

from __future__ import annotations

import glob
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from freshtoken import (
    ClientCredentials,
    ClientSecretBasic,
    Endpoints,
    MemoryStore,
    RetryPolicy,
    Secret,
    TokenBroker,
    TokenClient,
    TokenStore,
)
from freshtoken.testing import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, AuthServer, FakeClock

T = TypeVar("T")
CANARY_SECRET = "canary-secret-5f1e9d2b7c"
CLIENT_CREDENTIALS = ClientCredentials()

# -- real components ----------------------------------------------------------------------------

#: How to get each component a test may need: programs on $PATH, then Python modules.
INSTALL = {
    "libfaketime": "apt-get install faketime (scripts/test.sh does it as root)",
    "redis-server": "apt-get install redis-server (scripts/test.sh does it when run as root)",
    "redis-cli": "apt-get install redis-tools (scripts/test.sh does it when run as root)",
    "redis-server with TLS": "a redis-server built with TLS: Debian's redis-server package",
    "node": "apt-get install nodejs (scripts/test.sh does it when run as root)",
    "npm": "apt-get install npm (scripts/test.sh does it when run as root)",
    "curl": "apt-get install curl (scripts/test.sh does it when run as root)",
    "setpriv": "apt-get install util-linux",
    "keyring": "pip install -e '.[dev]' (the keyring package)",
    "keyrings.alt": "pip install -e '.[dev]' (keyrings.alt, the tests' file keyring)",
    "PureCloudPlatformClientV2": "pip install -e '.[dev]' (the Genesys Cloud SDK)",
}


def in_ci() -> bool:
    """$CI is set (CI=true on every CI service, and in .ci/run's environment)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(component: str, detail: str = "") -> None:
    """The test cannot run without `component`: skip it, or fail it in CI."""
    how = INSTALL.get(component, "install it")
    message = f"{component} is missing{f' ({detail})' if detail else ''}: {how}"
    if in_ci():
        pytest.fail(f"{message} [CI is set: a missing component fails the test]", pytrace=False)
    pytest.skip(message)


def libfaketime() -> str:
    """The path of libfaketime's multi-threaded library, for LD_PRELOAD (else skip, or fail
    in CI)."""
    found = glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
    if not found:
        missing("libfaketime", "no libfaketimeMT.so.1 under /usr/lib")
    return found[0]


def require(component: str) -> str:
    """The path of the program `component` on $PATH (else skip, or fail in CI)."""
    path = shutil.which(component)
    if path is None:
        missing(component, "not on $PATH")
    assert path is not None
    return path


def require_module(name: str) -> ModuleType:
    """The Python module `name` (else skip, or fail in CI)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(name, f"cannot import it: {exc}")
        raise  # not reached: missing() raises


# -- leaks --------------------------------------------------------------------------------------

#: What every token the test server mints looks like: "at_"/"rt_" and exactly 32 URL-safe
#: characters, standing alone (tests/test_testserver.py keeps the server to it). A text that
#: matches holds a real token, whichever one, so checks find every minted token, not only those
#: the test kept; other random strings (serve's 43-character key) never match as a whole.
TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])(?:at|rt)_[A-Za-z0-9_-]{32}(?![A-Za-z0-9_-])")


def leaks(text: str, *secrets: str) -> list[str]:
    """The minted tokens (by their shape) and the given secret values found in `text`."""
    found = TOKEN_SHAPE.findall(text)
    return found + [s for s in secrets if s and s in text]


def assert_no_leak(where: str, text: str, *secrets: str) -> None:
    """No minted token and none of `secrets` (canary values) in `text`."""
    found = leaks(text, CANARY_SECRET, *secrets)
    assert not found, f"{where} leaks {found}"


# -- clients, brokers, threads, polling ---------------------------------------------------------


def make_client(
    server: AuthServer,
    clock: FakeClock | None = None,
    *,
    client_id: str = DEMO_CLIENT_ID,
    secret: str = DEMO_CLIENT_SECRET,
    policy: RetryPolicy | None = None,
    region: str | None = None,
    introspection: bool = False,
) -> TokenClient:
    kwargs = {"clock": clock} if clock else {}
    introspection_url = server.url + "/oauth/introspect" if introspection else None
    return TokenClient(
        ClientSecretBasic(client_id, Secret(secret)),
        endpoints=Endpoints(server.token_url, region=region, introspection_url=introspection_url),
        policy=policy or RetryPolicy(budget=5.0),
        **kwargs,  # type: ignore[arg-type]
    )


def make_broker(
    server: AuthServer,
    clock: FakeClock | None = None,
    *,
    store: TokenStore | None = None,
    grant: ClientCredentials | None = CLIENT_CREDENTIALS,
    policy: RetryPolicy | None = None,
    secret: str = DEMO_CLIENT_SECRET,
    **options: Any,
) -> TokenBroker:
    client = make_client(server, clock, policy=policy, secret=secret, introspection=True)
    return TokenBroker(client, grant=grant, store=store or MemoryStore(), **options)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll with a deadline (for work done by another thread or process)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the deadline")
        time.sleep(0.005)


def concurrently(n: int, work: Callable[[], T]) -> list[T]:
    """Run `work` in n threads released together; their n results. What a thread raised is
    raised again here (the first such exception, noting how many threads raised)."""
    barrier = threading.Barrier(n)
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(work())
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()  # nobody waits for a thread that will never arrive

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failures = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if errors:
        first = (failures or errors)[0]
        first.add_note(f"concurrently: {len(errors)} of {n} threads raised; this is the first")
        raise first
    assert len(results) == n
    return results


FT = [sys.executable, "-m", "freshtoken"]


class Serve:
    """A real `freshtoken serve` process: its ready line, its key, and a checked stop."""

    def __init__(
        self, args: list[str], env: dict[str, str], cwd: Path, verbosity: str = "-q"
    ) -> None:
        self.proc = subprocess.Popen(
            [*FT, verbosity, "serve", *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else ""
        self.ready: dict[str, Any] = json.loads(line)
        self.key = Path(self.ready["key_file"]).read_text()

    def headers(self) -> dict[str, str]:
        return {"X-Freshtoken-Key": self.key}

    def stop(self) -> str:
        """Stop it; everything it printed after the ready line (stdout, then stderr), checked
        to hold no minted token, no canary and not its own key."""
        self.proc.send_signal(signal.SIGTERM)
        # A loaded machine's deadline: how fast serve stops is test_serve's to check.
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        assert_no_leak("serve's output after the ready line", out + err, self.key)
        return out + err


def stop_process(pid: int) -> None:
    """SIGTERM a process this test did not start as a child, and wait (with a deadline) until
    it is gone."""
    os.kill(pid, signal.SIGTERM)
    wait_until(
        lambda: (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )
    )


def live_processes(marker: str) -> dict[int, int]:
    """Live processes whose command line holds `marker`: pid -> parent pid."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fields[0] != "Z" and marker in cmdline:
            found[int(stat.parent.name)] = int(fields[1])
    return found
