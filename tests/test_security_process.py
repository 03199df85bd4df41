"""The secret in the environment of the long-lived commands: a child of `exec` and another
process of the same (unprivileged) user read /proc/<pid>/environ of `serve`/`exec`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from freshtoken.testing import AuthServer, Client
from tests._attack import NOBODY, as_nobody, open_place, require_other_user
from tests._cli import cli_env
from tests.helpers import CANARY_SECRET

CANARY_STORE_KEY = "Q2FuYXJ5U3RvcmVLZXlDYW5hcnlTdG9yZUtleUNhbmE="
CANARY_GENESYS = "canary-genesys-secret-77e0"

# The child (a shell: the test's Python is not executable by `nobody` here): whether it could
# read its parent's environment, what it read, and its own environment.
CHILD = [
    "sh",
    "-c",
    'if seen=$(tr "\\0" "\\n" < /proc/$PPID/environ); then echo readable; else echo denied; fi; '
    'printf "%s\\n" "$seen"; echo "-- mine"; env',
]


def _read(out: str) -> tuple[str, str, str]:
    """(readable|denied, the parent's environment as read, the child's own environment)."""
    verdict, _, rest = out.partition("\n")
    seen, _, mine = rest.partition("-- mine\n")
    return verdict, seen, mine


def _env(place: Path, server: AuthServer) -> dict[str, str]:
    return cli_env(
        place,
        server,
        FRESHTOKEN_CLIENT_SECRET=CANARY_SECRET,
        FRESHTOKEN_STORE_KEY=CANARY_STORE_KEY,
        FRESHTOKEN_STORE=f"sqlite://{place}/store/t.db",
        GENESYSCLOUD_OAUTHCLIENT_SECRET=CANARY_GENESYS,
    )


def _no_canary(text: str) -> None:
    for canary in (CANARY_SECRET, CANARY_STORE_KEY, CANARY_GENESYS):
        assert canary not in text


@pytest.fixture
def canary_server() -> AuthServer:
    return AuthServer(clients=[Client("demo-client", CANARY_SECRET)])


@pytest.mark.slow
def test_an_exec_child_of_the_same_unprivileged_user_reads_no_secret(
    canary_server: AuthServer,
) -> None:
    require_other_user()
    with canary_server as server, open_place() as place:
        place.chmod(0o777)
        run = as_nobody(
            [sys.executable, "-m", "freshtoken", "exec", "--", *CHILD],
            env=_env(place, server),
            cwd=place,
        )
    assert run.returncode == 0, run.stderr
    verdict, _, mine = _read(run.stdout)
    # Non-dumpable: the parent's /proc entries are closed to its own user's processes.
    assert verdict == "denied" and "Permission denied" in run.stderr, run.stdout
    _no_canary(run.stdout + run.stderr)
    assert "FRESHTOKEN_KEY=" in mine and "FRESHTOKEN_STORE=" not in mine


def test_the_environment_of_exec_holds_no_secret_even_for_ptrace_capable_readers(
    tmp_path: Path, canary_server: AuthServer
) -> None:
    """As root (CAP_SYS_PTRACE passes the non-dumpable check), the environment block itself is
    read: after the re-exec it never held the secret."""
    if os.geteuid() != 0:
        pytest.skip("reading a non-dumpable process's environ needs CAP_SYS_PTRACE")
    with canary_server as server:
        run = subprocess.run(
            [sys.executable, "-m", "freshtoken", "exec", "--", *CHILD],
            env=_env(tmp_path, server),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 0, run.stderr
    verdict, seen, mine = _read(run.stdout)
    assert verdict == "readable" and "FRESHTOKEN_TOKEN_URL=" in seen
    _no_canary(run.stdout + run.stderr)
    assert "FRESHTOKEN_SECRETS_FD" not in mine


@pytest.mark.slow
def test_serve_is_closed_to_other_processes_of_its_user(canary_server: AuthServer) -> None:
    require_other_user()
    with canary_server as server, open_place() as place:
        place.chmod(0o777)
        serve = subprocess.Popen(
            [*NOBODY, sys.executable, "-m", "freshtoken", "serve"],
            env=_env(place, server),
            cwd=place,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert serve.stdout is not None
            ready = json.loads(serve.stdout.readline())
            pid = ready["pid"]
            assert pid == serve.pid  # re-executed in place: the pid a CI step exports
            peek = as_nobody(["cat", f"/proc/{pid}/environ"])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
            as_root = Path(f"/proc/{pid}/environ").read_bytes().decode()
        finally:
            serve.terminate()
            _, err = serve.communicate(timeout=10)
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
    assert "FRESHTOKEN_TOKEN_URL=" in as_root
    for text in (peek.stdout, cmdline, as_root, err):
        _no_canary(text)
