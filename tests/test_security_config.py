"""Attacks on where settings come from: a hostile freshtoken.toml written by another user in
the working directory or a parent, one committed to a repository, and the GitHub action run in
such a workspace. Each must send nothing to the attacker's listener nor store anything in the
attacker's Redis."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from freshtoken.testing import AuthServer, Client
from tests._attack import Listener, open_place, require_other_user, shared_dir, write_as_nobody
from tests._cli import cli_env, ft
from tests._redis import RedisProcess
from tests.helpers import CANARY_SECRET, stop_process
from tests.test_action import SCRIPT, _pairs

# A child of `exec --proxy` calling the API through the proxy; prints the status.
PROXIED = (
    "import os, urllib.request as u; e = os.environ; print(u.urlopen(u.Request("
    "e['FRESHTOKEN_PROXY_URL'] + '/api/echo', "
    "headers={'X-Freshtoken-Key': e['FRESHTOKEN_KEY']})).status)"
)
ATTACKER_KEY = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="  # base64 of 32 bytes 'A'


@pytest.fixture
def victim_server() -> Iterator[AuthServer]:
    with AuthServer(clients=[Client("demo-client", CANARY_SECRET)]) as server:
        yield server


@pytest.fixture
def attacker_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    folder = tmp_path / "attacker-redis"
    folder.mkdir()
    process = RedisProcess(folder).start()
    yield process
    process.stop()


def hostile_toml(listener: Listener, redis_url: str, key_file: Path) -> str:
    """Everything a configuration file could do to send credentials to the attacker."""
    return (
        "[default]\n"
        f'token_url = "{listener.url}/oauth/token"\n'
        f'introspection_url = "{listener.url}/introspect"\n'
        f'revocation_url = "{listener.url}/revoke"\n'
        f'proxy_upstream = "{listener.url}"\n'
        f'store = "{redis_url}"\n'
        f'store_key_file = "{key_file}"\n'
        'store_fail = "closed"\n'
    )


def _stop(pid: int) -> None:
    stop_process(pid)


def redis_keys(process: RedisProcess) -> int:
    client = redis.Redis.from_url(process.url)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def test_hostile_files_of_another_user_in_the_working_directory_and_a_parent(
    tmp_path: Path, victim_server: AuthServer, attacker_redis: RedisProcess
) -> None:
    require_other_user()
    with open_place() as place, Listener() as listener:
        parent = shared_dir(place / "shared")  # like /tmp
        work = shared_dir(parent / "build")  # a build directory everyone may write to
        key = parent / "attacker.key"
        write_as_nobody(key, ATTACKER_KEY + "\n", 0o600)
        for folder in (parent, work):
            write_as_nobody(
                folder / "freshtoken.toml", hostile_toml(listener, attacker_redis.url, key)
            )
        env = cli_env(tmp_path, victim_server, FRESHTOKEN_CLIENT_SECRET=CANARY_SECRET)
        out = ft(["token"], env, work)
        proxied = ft(["exec", "--proxy", "--", "python3", "-c", PROXIED], env, work)
    assert listener.connections == 0, listener.reached()
    assert redis_keys(attacker_redis) == 0
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("at_")
    assert "owned by another user" in out.stderr
    assert proxied.returncode == 2 and "--proxy has no upstream" in proxied.stderr
    assert victim_server.stats()["tokens_minted"] == 1


@pytest.mark.slow
def test_a_file_committed_to_the_repository_redirects_nothing(
    tmp_path: Path, victim_server: AuthServer, attacker_redis: RedisProcess
) -> None:
    """The file is the victim's own (a checkout), so only its content is hostile: it may add
    harmless settings, but never where credentials go, where the store is, or where a secret is
    read from."""
    repo = tmp_path / "repo"
    repo.mkdir()
    key = tmp_path / "attacker.key"
    key.write_text(ATTACKER_KEY)
    key.chmod(0o600)
    secret_file = tmp_path / "victim-secret"
    secret_file.write_text(CANARY_SECRET)
    with Listener() as listener:
        hostile = hostile_toml(listener, attacker_redis.url, key)
        (repo / "freshtoken.toml").write_text(hostile + 'scope = "from-the-repo"\n')
        # 1. The environment names the endpoint (CI): the file's endpoints and store are ignored.
        env = cli_env(
            tmp_path,
            victim_server,
            FRESHTOKEN_CLIENT_SECRET=CANARY_SECRET,
            FRESHTOKEN_PROXY_UPSTREAM=victim_server.url,
        )
        token = ft(["-v", "token"], env, repo)
        proxied = ft(["exec", "--proxy", "--", "python3", "-c", PROXIED], env, repo)
        # 2. Nothing in the environment: the file may not name a secret file and an endpoint.
        bare = cli_env(tmp_path)
        (repo / "freshtoken.toml").write_text(
            hostile + f'client_id = "demo-client"\nclient_secret_file = "{secret_file}"\n'
        )
        alone = ft(["token"], bare, repo)
        # 3. The file in a sub-directory's parent: the same.
        (repo / "sub").mkdir()
        below = ft(["token"], bare, repo / "sub")
    assert listener.connections == 0, listener.reached()
    assert redis_keys(attacker_redis) == 0
    assert token.returncode == 0, token.stderr
    assert "ignoring introspection_url, proxy_upstream, revocation_url, store, store_fail" in (
        token.stderr
    )
    assert proxied.returncode == 0 and proxied.stdout.strip() == "200", proxied.stderr
    assert alone.returncode == 2 and "no token endpoint configured" in alone.stderr
    assert below.returncode == 2
    assert victim_server.stats()["minted"]["demo-client"]["client_credentials"] == 1  # shared


def test_a_trusted_file_cannot_complete_an_endpoint_the_environment_names(
    tmp_path: Path, victim_server: AuthServer
) -> None:
    """The user's own file names a token URL; the environment names an issuer. Before, the
    file's token_url won over the environment's endpoint; now the endpoint settings come whole
    from the environment."""
    user = tmp_path / "config" / "freshtoken"
    user.mkdir(parents=True)
    with Listener() as listener:
        (user / "freshtoken.toml").write_text(
            f'[default]\ntoken_url = "{listener.url}/oauth/token"\n'
            f'introspection_url = "{listener.url}/i"\n'
        )
        env = cli_env(
            tmp_path,
            FRESHTOKEN_ISSUER=victim_server.issuer,
            FRESHTOKEN_CLIENT_ID="demo-client",
            FRESHTOKEN_CLIENT_SECRET=CANARY_SECRET,
        )
        out = ft(["token"], env, tmp_path)
        doctor = ft(["doctor"], env, tmp_path)
    assert listener.connections == 0, listener.reached()
    assert out.returncode == 0, out.stderr
    assert "token_url" not in doctor.stdout and "issuer = " in doctor.stdout


def test_the_action_ignores_the_workspace(
    tmp_path: Path, victim_server: AuthServer, attacker_redis: RedisProcess
) -> None:
    """The action runs in a repository's workspace with FRESHTOKEN_TOKEN_URL="" when the input
    is empty: neither a freshtoken.toml nor a Python module of the workspace may take part."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    key = tmp_path / "attacker.key"
    key.write_text(ATTACKER_KEY)
    key.chmod(0o600)
    marker = tmp_path / "workspace-code-ran"
    for name in ("json", "sys"):
        (workspace / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    with Listener() as listener:
        (workspace / "freshtoken.toml").write_text(
            hostile_toml(listener, attacker_redis.url, key).replace(
                "[default]\n", f'[default]\nissuer = "{listener.url}"\n'
            )
        )
        github_env, github_output = tmp_path / "env", tmp_path / "output"
        env = cli_env(
            tmp_path,
            GITHUB_ENV=str(github_env),
            GITHUB_OUTPUT=str(github_output),
            GITHUB_ACTIONS="true",
            RUNNER_TEMP=str(runner_temp),
            FRESHTOKEN_REGION="",
            FRESHTOKEN_TOKEN_URL=victim_server.token_url,
            FRESHTOKEN_ISSUER="",
            FRESHTOKEN_CLIENT_ID="demo-client",
            FRESHTOKEN_CLIENT_SECRET=CANARY_SECRET,
            FRESHTOKEN_SCOPE="",
            FRESHTOKEN_STORE="",
            FRESHTOKEN_ACTION_PROXY=victim_server.url,
        )
        out = subprocess.run(
            ["bash", str(SCRIPT)],
            env=env,
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=60,
        )
        exported = _pairs(github_env) if github_env.exists() else {}
        pid = int(exported.get("FRESHTOKEN_SERVE_PID", 0))
        try:
            assert listener.connections == 0, listener.reached()
            assert not marker.exists()
            assert out.returncode == 0, out.stderr
            headers = {"X-Freshtoken-Key": exported["FRESHTOKEN_KEY"]}
            token = httpx.get(exported["FRESHTOKEN_URL"] + "/token", headers=headers)
            proxied = httpx.get(exported["FRESHTOKEN_PROXY_URL"] + "/api/echo", headers=headers)
            # A later step knows the pid: the environment it started with holds no secret.
            assert CANARY_SECRET.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
        finally:
            if pid:
                _stop(pid)
    assert token.status_code == 200 and proxied.status_code == 200
    assert json.loads(token.text)["access_token"].startswith("at_")
    assert listener.connections == 0, listener.reached()
    assert redis_keys(attacker_redis) == 0
    assert not marker.exists()
    assert (runner_temp / "freshtoken" / "tokens.db").exists()  # the default store was used
