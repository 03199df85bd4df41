"""Running the real `freshtoken` command in a subprocess, isolated from the user's files."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

from freshtoken.testing import AuthServer
from tests.helpers import assert_no_leak

BIN = str(Path(sys.executable).parent)


def cli_env(tmp: Path, server: AuthServer | None = None, /, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FRESHTOKEN_", "GENESYSCLOUD_", "GITHUB_"))
    }
    env.update(
        {
            "XDG_CACHE_HOME": str(tmp / "cache"),
            "XDG_CONFIG_HOME": str(tmp / "config"),
            "PATH": BIN + os.pathsep + env.get("PATH", ""),
        }
    )
    if server is not None:
        env.update(
            {
                "FRESHTOKEN_TOKEN_URL": server.token_url,
                "FRESHTOKEN_CLIENT_ID": "demo-client",
                "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
            }
        )
    env.update(extra)
    return env


def store_key() -> str:
    """A new store key, as FRESHTOKEN_STORE_KEY takes it."""
    return base64.b64encode(os.urandom(32)).decode()


def sealed_env(tmp: Path, server: AuthServer, /, **extra: str) -> dict[str, str]:
    """`cli_env` with a SQLite store in `tmp` sealed with a key of its own."""
    store = {"FRESHTOKEN_STORE": f"sqlite://{tmp}/t.db", "FRESHTOKEN_STORE_KEY": store_key()}
    return cli_env(tmp, server, **store, **extra)


def ft(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `freshtoken ARGS`; its standard error is checked to hold no minted token and no
    canary, whatever the command (standard output is the command's answer: tests check it)."""
    out = subprocess.run(
        [sys.executable, "-m", "freshtoken", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    stderr = out.stderr
    if env.get("GITHUB_ACTIONS") == "true":  # the runner hides a token it is asked to mask
        stderr = "\n".join(x for x in stderr.splitlines() if not x.startswith("::add-mask::"))
    assert_no_leak(f"the standard error of freshtoken {' '.join(args)}", stderr)
    return out


def ft_started(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """`freshtoken ARGS` started in the background (to be signalled), its output piped. Its
    SIGINT is the default, as in a terminal's foreground, even where the test run's is ignored
    (pytest started with `&` by a non-interactive shell, whose children inherit that)."""
    return subprocess.Popen(
        [sys.executable, "-m", "freshtoken", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )


def refresh_token_env(server: AuthServer, tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a refresh-token client with a SQLite store in `tmp`, seeded (by
    `freshtoken seed-refresh-token`) with the refresh token of a login at `server`."""
    from freshtoken import AuthorizationCode
    from tests.helpers import make_client

    env = cli_env(
        tmp,
        server,
        FRESHTOKEN_GRANT="refresh_token",
        FRESHTOKEN_INTROSPECTION_URL=server.url + "/oauth/introspect",
        FRESHTOKEN_STORE=f"sqlite://{tmp}/t.db",
        **extra,
    )
    seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
    assert seed.refresh_token
    seeded = ft(["seed-refresh-token"], env, tmp, stdin=seed.refresh_token)
    assert seeded.returncode == 0, seeded.stderr
    return env
