"""Values a hostile token endpoint chooses, where they are written: an access token that is
shell syntax (dotenv, env, $GITHUB_OUTPUT), one that a shell would expand, a refresh token with
a line break (workflow commands in a CI log), a scope with terminal escapes; and the GitHub
mask, which must reach the runner before the value it masks."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from freshtoken import Settings, TokenBroker
from freshtoken.local._server import LocalServer
from freshtoken.testing import AuthServer, Client
from tests._attack import Listener, http_answer
from tests._cli import cli_env, ft
from tests.test_login import Login, _device_code, _env


def _answering(access: str, **extra: object) -> bytes:
    body = {"access_token": access, "token_type": "Bearer", "expires_in": 3600, **extra}
    return http_answer(200, json.dumps(body).encode())


def _against(tmp_path: Path, endpoint: Listener, **extra: str) -> dict[str, str]:
    """The command line's environment for a client of the token endpoint `endpoint`."""
    return cli_env(
        tmp_path,
        FRESHTOKEN_TOKEN_URL=endpoint.url + "/oauth/token",
        FRESHTOKEN_CLIENT_ID="demo-client",
        FRESHTOKEN_CLIENT_SECRET="demo-secret",
        **extra,
    )


def _sourced(path: Path) -> str:
    """What `.` of `path` in a POSIX shell sets FRESHTOKEN_ACCESS_TOKEN to."""
    out = subprocess.run(
        ["sh", "-c", '. "$1" && printf %s "$FRESHTOKEN_ACCESS_TOKEN"', "sh", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout


@pytest.mark.parametrize("fmt", ["dotenv", "env", "raw", "github"])
def test_an_access_token_that_is_shell_syntax_is_never_written(tmp_path: Path, fmt: str) -> None:
    marker = tmp_path / "ran"
    hostile = f"$(touch${{IFS}}{marker})"
    output = tmp_path / "github_output"
    output.touch()
    with Listener(_answering(hostile)) as endpoint:
        env = _against(tmp_path, endpoint, FRESHTOKEN_RETRY_BUDGET="0.5", GITHUB_OUTPUT=str(output))
        out = ft(["token", "--format", fmt], env, tmp_path)
        assert endpoint.connections >= 1
    written = tmp_path / "written"
    written.write_text(out.stdout)
    _sourced(written)
    _sourced(output)
    assert not marker.exists()
    assert out.returncode != 0, out.stdout + out.stderr
    assert "outside RFC 6750" in out.stderr
    assert "$(" not in out.stdout + output.read_text()


def test_every_text_format_reads_back_exactly(tmp_path: Path) -> None:
    """A b64token a shell would expand (`~root` is root's home in an assignment): every format
    quotes it as its reader needs, on the command line and on the local endpoint."""
    token = "~root"
    with Listener(_answering(token)) as endpoint:
        env = _against(tmp_path, endpoint, FRESHTOKEN_STORE="memory://")
        printed = {fmt: ft(["token", "--format", fmt], env, tmp_path) for fmt in ("dotenv", "env")}
        broker = TokenBroker.from_settings(Settings.from_env(env))
        with LocalServer(broker) as local:
            served = httpx.get(
                f"{local.url}/token?format=dotenv", headers={"X-Freshtoken-Key": local.key}
            )
        broker.close()
    for text in (*(out.stdout for out in printed.values()), served.text):
        written = tmp_path / "written"
        written.write_text(text)
        assert _sourced(written) == token, text


def test_a_refresh_token_with_a_line_break_writes_no_workflow_command(tmp_path: Path) -> None:
    """`login --print` on GitHub: the refresh token is refused, so no `::add-mask::` line
    carries the server's own `::warning::` onto a line of its own."""
    with AuthServer(clients=[Client("spa", None)], device_interval=0.2) as server:
        env = {**_env(tmp_path, server), "GITHUB_ACTIONS": "true"}
        login = Login(["--device", "--print"], env, tmp_path)
        try:
            code = _device_code(login)
            server.configure(malformed="refresh_token_newline")
            assert server.decide_device(code)
            rc, out, err = login.finish()
        finally:
            login.stop()
    assert rc != 0
    assert not re.search(r"(?m)^::(?!add-mask::)", out + err), out + err
    assert "::add-mask::" not in out + err
    assert "outside RFC 6749" in err


def test_a_scope_with_terminal_escapes_is_refused(tmp_path: Path) -> None:
    with AuthServer(malformed="scope_control") as server:
        env = cli_env(tmp_path, server, FRESHTOKEN_SCOPE="read write")
        runs = [ft(args, env, tmp_path) for args in (["token"], ["doctor"])]
    for out in runs:
        printed = out.stdout + out.stderr
        assert out.returncode != 0, printed
        assert "\x1b" not in printed and "\x07" not in printed, printed
        assert "outside RFC 6749" in printed


def test_the_mask_reaches_the_runner_before_the_token(tmp_path: Path, server: AuthServer) -> None:
    """The runner reads standard output and standard error as two pipes. Here the "runner"
    reads standard error only after it has seen whether the token came first: it must not
    have (the token waits until the mask line has been read)."""
    env = cli_env(tmp_path, server, GITHUB_ACTIONS="true")
    proc = subprocess.Popen(
        [sys.executable, "-m", "freshtoken", "token"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        readable, _, _ = select.select([proc.stderr], [], [], 60)
        assert readable, "nothing on standard error"
        early, _, _ = select.select([proc.stdout], [], [], 1.0)
        err = os.read(proc.stderr.fileno(), 65536).decode()
        out, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    token = out.decode().strip()
    assert token.startswith("at_")
    assert (err + rest.decode()).startswith(f"::add-mask::{token}\n")
    assert not early, "the token reached standard output before the mask was read"
