"""The composite action's shell step, run with fake $GITHUB_ENV / $GITHUB_OUTPUT files."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from freshtoken.testing import AuthServer
from tests._cli import cli_env
from tests._redis import RedisProcess
from tests.helpers import CANARY_SECRET, assert_no_leak, live_processes, stop_process, wait_until

SCRIPT = Path(__file__).parent.parent / "scripts" / "action-serve.sh"


def _pairs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def _action_env(tmp_path: Path, server: AuthServer, **extra: str) -> dict[str, str]:
    """The environment of the action's serve step: GitHub's files in `tmp_path`, and `extra`."""
    return cli_env(
        tmp_path,
        server,
        GITHUB_ENV=str(tmp_path / "env"),
        GITHUB_OUTPUT=str(tmp_path / "output"),
        RUNNER_TEMP=str(tmp_path),
        **extra,
    )


def test_action_step_exports_the_endpoint_and_masks_the_key(
    tmp_path: Path, server: AuthServer
) -> None:
    github_env, github_output = tmp_path / "env", tmp_path / "output"
    env = _action_env(
        tmp_path,
        server,
        FRESHTOKEN_REGION="",
        FRESHTOKEN_SCOPE="",
        FRESHTOKEN_STORE="",
        FRESHTOKEN_ACTION_PROXY=server.url,
    )
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    exported = _pairs(github_env)
    pid = int(exported["FRESHTOKEN_SERVE_PID"])
    try:
        assert out.returncode == 0, out.stderr
        key = exported["FRESHTOKEN_KEY"]
        assert out.stdout.splitlines()[0] == f"::add-mask::{key}"
        assert_no_leak("the step's output", out.stdout + out.stderr, "demo-secret")
        outputs = _pairs(github_output)
        assert outputs["url"] == exported["FRESHTOKEN_URL"]
        assert outputs["proxy-url"] == exported["FRESHTOKEN_PROXY_URL"]
        token = httpx.get(exported["FRESHTOKEN_URL"] + "/token", headers={"X-Freshtoken-Key": key})
        assert token.status_code == 200
        me = httpx.get(
            exported["FRESHTOKEN_PROXY_URL"] + "/api/v2/tokens/me",
            headers={"X-Freshtoken-Key": key},
        )
        assert me.status_code == 200
        assert b"demo-secret" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    finally:
        stop_process(pid)


def test_a_store_password_in_the_url_is_not_copied_to_later_steps(tmp_path: Path) -> None:
    """The configuration handed to later steps carries no store URL that holds a password,
    in the userinfo or in the query (issue: doctor, status and the action printed/copied it)."""
    password = "redis-pass-in-query-canary"
    redis = RedisProcess(tmp_path, ("requirepass", password)).start()
    try:
        _copied_to_later_steps(tmp_path, redis, password)
    finally:
        redis.stop()


def _copied_to_later_steps(tmp_path: Path, redis: RedisProcess, password: str) -> None:
    with AuthServer() as server:
        for url in (f"{redis.url}?password={password}", redis.url.replace("//", f"//:{password}@")):
            github_env = tmp_path / "env"
            github_env.write_text("")
            env = _action_env(
                tmp_path,
                server,
                FRESHTOKEN_STORE=url,
                FRESHTOKEN_STORE_KEY=base64.b64encode(os.urandom(32)).decode(),
                FRESHTOKEN_ACTION_PROXY="off",
            )
            out = subprocess.run(
                ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
            )
            exported = _pairs(github_env)
            stop_process(int(exported["FRESHTOKEN_SERVE_PID"]))
            assert out.returncode == 0, out.stderr
            later = Path(exported["FRESHTOKEN_CONFIG"]).read_text()
            assert "client_id" in later  # the file was written
            assert password not in later and "store" not in later, later
            assert_no_leak("the step's output", out.stdout + out.stderr, password)


def test_a_refused_client_fails_the_action_step_with_the_hint(
    tmp_path: Path, server: AuthServer
) -> None:
    """A wrong secret: the step itself fails (exit 3) with the server's answer and the hint,
    not every later step; serve is not left running."""
    github_env = tmp_path / "env"
    env = _action_env(tmp_path, server, FRESHTOKEN_CLIENT_SECRET=CANARY_SECRET)  # not demo's
    out = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 3, out.stderr
    assert "::error::freshtoken:" in out.stderr and "error=invalid_client" in out.stderr
    assert "hint: The client credentials were not accepted" in out.stderr
    assert not github_env.exists() or "FRESHTOKEN_URL" not in github_env.read_text()
    assert_no_leak("the step's output", out.stdout + out.stderr, CANARY_SECRET)
    wait_until(lambda: not live_processes(f"--key-file {tmp_path}"), timeout=15)


def test_action_step_refuses_to_run_outside_actions(tmp_path: Path) -> None:
    out = subprocess.run(
        ["bash", str(SCRIPT)], env=cli_env(tmp_path), capture_output=True, text=True, timeout=30
    )
    assert out.returncode != 0
    assert "GITHUB_ENV is not set" in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("how", ["client-assertion", "client-key"])
def test_keys_and_the_jobs_oidc_token_reach_serve_only(tmp_path: Path, how: str) -> None:
    """The action's key inputs (and the job's OIDC token) reach `serve` by environment only:
    later steps get tokens from it, and no key in their configuration."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from freshtoken.oauth._jwt_auth import PrivateKeyJwt
    from freshtoken.testing import GitHubOidc
    from freshtoken.testing._model import Client
    from freshtoken.testing._tls import key_pem

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key_pem(key)
    body = "".join(pem.splitlines()[1:-1])
    clients = [Client("ci", None, jwks=(PrivateKeyJwt("ci", key).jwk,))]
    with GitHubOidc() as github, AuthServer(clients=clients) as server:
        server.trust_issuer(github.federation("ci", "api://AzureADTokenExchange"))
        inputs = (
            {"FRESHTOKEN_CLIENT_ASSERTION": "github-actions:api://AzureADTokenExchange"}
            | github.env()
            if how == "client-assertion"
            else {"FRESHTOKEN_AUTH_METHOD": "private_key_jwt", "FRESHTOKEN_CLIENT_KEY": pem}
        )
        github_env = tmp_path / "env"
        env = cli_env(
            tmp_path,
            GITHUB_ENV=str(github_env),
            GITHUB_OUTPUT=str(tmp_path / "output"),
            RUNNER_TEMP=str(tmp_path),
            FRESHTOKEN_TOKEN_URL=server.token_url,
            FRESHTOKEN_CLIENT_ID="ci",
            FRESHTOKEN_ACTION_PROXY="off",
            **inputs,
        )
        out = subprocess.run(
            ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
        )
        exported = _pairs(github_env)
        pid = int(exported["FRESHTOKEN_SERVE_PID"])
        try:
            assert out.returncode == 0, out.stderr
            headers = {"X-Freshtoken-Key": exported["FRESHTOKEN_KEY"]}
            token = httpx.get(exported["FRESHTOKEN_URL"] + "/token", headers=headers)
            assert token.status_code == 200, token.text
            assert server.stats()["minted"]["ci"]["client_credentials"] == 1
            later = Path(exported["FRESHTOKEN_CONFIG"]).read_text()
            assert "client_id" in later
            for text in (later, out.stdout + out.stderr):
                assert_no_leak("what later steps get", text, body[:60], github.request_token)
            assert body[:60].encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
            if how == "client-assertion":
                assert github.knobs.counts["issued"] == 1
        finally:
            stop_process(pid)
