"""The command line: configuration, every bad input's exit code, formats, and the commands
that read or change the store. Real subprocesses against the shipped server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from freshtoken import AuthorizationCode, _build
from freshtoken.testing import AuthServer, Client
from tests._cli import cli_env, ft
from tests.helpers import CANARY_SECRET, assert_no_leak, libfaketime, make_client, wait_until

# The user configuration directory's file names the endpoint and the secret file; a project's
# file (found from a parent folder) may add only what cannot redirect credentials.
TOML = """
[default]
token_url = "{url}"
client_secret_file = "{secret_file}"

[ci]
token_url = "{url}"
client_secret_file = "{secret_file}"
"""
PROJECT_TOML = """
[default]
client_id = "from-file"

[ci]
client_id = "demo-client"
scope = ["read", "write"]
"""


@pytest.fixture
def canary_server() -> Iterator[AuthServer]:
    with AuthServer(
        clients=[
            Client("demo-client", CANARY_SECRET),
            Client("scoped", CANARY_SECRET, scopes=frozenset({"read"})),
        ]
    ) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# name, argv, environment over a good one, freshtoken.toml ("" for none), exit code, message.
# "{dead}", "{free_port}" and "{readable}" in the environment are filled in per run.
Case = tuple[str, list[str], dict[str, str], str, int, str]
BAD: list[Case] = [
    (
        "unknown key",
        ["token"],
        {},
        "[default]\ncolour = 'blue'\n",
        2,
        "unknown setting 'colour'",
    ),
    (
        "secret in file",
        ["token"],
        {},
        f"[default]\nclient_secret = '{CANARY_SECRET}'\n",
        2,
        "holds the secret 'client_secret' in plain text",
    ),
    (
        "unknown profile",
        ["--profile", "nope", "token"],
        {},
        "[ci]\nclient_id='x'\n",
        2,
        "profile 'nope' is not in",
    ),
    ("bad toml", ["token"], {}, "[default\n", 2, "cannot read"),
    (
        "profile without file",
        ["--profile", "ci", "token"],
        {},
        "",
        2,
        "no freshtoken.toml was found",
    ),
    (
        "config names no file",
        ["token"],
        {"FRESHTOKEN_CONFIG": "/nonexistent.toml"},
        "",
        2,
        "$FRESHTOKEN_CONFIG names no file",
    ),
    (
        "unknown region",
        ["token"],
        {"FRESHTOKEN_TOKEN_URL": "", "FRESHTOKEN_REGION": "mars_1"},
        "",
        2,
        "unknown Genesys Cloud region",
    ),
    (
        "malformed url",
        ["token"],
        {"FRESHTOKEN_TOKEN_URL": "login.example.com"},
        "",
        2,
        "is not a valid http(s) URL",
    ),
    (
        "plain http",
        ["token"],
        {"FRESHTOKEN_TOKEN_URL": "http://login.example.com/t"},
        "",
        2,
        "plain http",
    ),
    (
        "missing secret",
        ["token"],
        {"FRESHTOKEN_CLIENT_SECRET_FILE": ""},
        "",
        2,
        "needs a client secret",
    ),
    (
        "unreadable secret",
        ["token"],
        {"FRESHTOKEN_CLIENT_SECRET_FILE": "/nope/secret"},
        "",
        2,
        "cannot be read",
    ),
    ("secret twice", ["token"], {"FRESHTOKEN_CLIENT_SECRET": "x"}, "", 2, "Set only one"),
    (
        "auth method",
        ["token"],
        {"FRESHTOKEN_AUTH_METHOD": "mtls"},
        "",
        2,
        "unknown auth method",
    ),
    ("store url", ["token"], {"FRESHTOKEN_STORE": "mongodb://x"}, "", 2, "unknown form"),
    (
        "redis without key",
        ["token"],
        {"FRESHTOKEN_STORE": "redis://127.0.0.1:1/0"},
        "",
        2,
        "needs FRESHTOKEN_STORE_KEY",
    ),
    (
        "store fail",
        ["token"],
        {"FRESHTOKEN_STORE_FAIL": "maybe"},
        "",
        2,
        "store_fail must be open or closed",
    ),
    (
        "grant",
        ["token"],
        {"FRESHTOKEN_GRANT": "password"},
        "",
        2,
        "grant must be client_credentials, refresh_token, jwt_bearer, token_exchange",
    ),
    ("timeout", ["token"], {"FRESHTOKEN_READ_TIMEOUT": "-1"}, "", 2, "positive number"),
    (
        "secret on argv",
        ["token", "--client-secret", CANARY_SECRET],
        {},
        "",
        2,
        "would put a secret on the command line",
    ),
    (
        "token on argv",
        ["seed-refresh-token", "--refresh-token=abc"],
        {},
        "",
        2,
        "would put a secret on the command line",
    ),
    (
        "listen anywhere",
        ["serve", "--listen", "0.0.0.0:8080"],
        {},
        "",
        2,
        "is not a loopback address",
    ),
    (
        "github without output",
        ["token", "--format", "github"],
        {},
        "",
        2,
        "needs $GITHUB_OUTPUT",
    ),
    ("proxy without upstream", ["serve", "--proxy"], {}, "", 2, "--proxy has no upstream"),
    ("unknown command", ["tokens"], {}, "", 2, "No such command"),
    ("unknown option", ["token", "--ttl", "3"], {}, "", 2, "No such option"),
    (
        "wrong secret",
        ["token"],
        {"FRESHTOKEN_CLIENT_SECRET_FILE": "", "FRESHTOKEN_CLIENT_SECRET": "wrong-canary-2"},
        "",
        3,
        "invalid_client",
    ),
    (
        "scope refused",
        ["token"],
        {"FRESHTOKEN_CLIENT_ID": "scoped", "FRESHTOKEN_SCOPE": "admin"},
        "",
        3,
        "invalid_scope",
    ),
    (
        "endpoint down",
        ["token"],
        {"FRESHTOKEN_TOKEN_URL": "{dead}", "FRESHTOKEN_RETRY_BUDGET": "0.5"},
        "",
        4,
        "Could not connect",
    ),
    (
        "redis down, fail closed",
        ["token"],
        {
            "FRESHTOKEN_STORE": "redis://127.0.0.1:{free_port}/0",
            "FRESHTOKEN_STORE_KEY": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
            "FRESHTOKEN_STORE_FAIL": "closed",
            "FRESHTOKEN_REDIS_TIMEOUT": "0.3",
        },
        "",
        5,
        "cannot read the Redis store",
    ),
    (
        "readable store",
        ["token"],
        {"FRESHTOKEN_STORE": "sqlite://{readable}"},
        "",
        5,
        "accessible to other users",
    ),
    (
        "exec missing program",
        ["exec", "--", "no-such-program-xyz"],
        {},
        "",
        127,
        "cannot run 'no-such-program-xyz'",
    ),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_configurations_and_invocations(
    tmp_path: Path, canary_server: AuthServer, case: Case
) -> None:
    _, args, extra, toml, code, needle = case
    secret_file = tmp_path / "secret"
    secret_file.write_text(CANARY_SECRET)
    good = {
        "FRESHTOKEN_TOKEN_URL": canary_server.token_url,
        "FRESHTOKEN_CLIENT_ID": "demo-client",
        "FRESHTOKEN_CLIENT_SECRET_FILE": str(secret_file),
    }
    folder = tmp_path / "project"
    folder.mkdir()
    readable = tmp_path / "readable.db"
    readable.write_bytes(b"")
    readable.chmod(0o644)
    blanks = {
        "dead": f"http://127.0.0.1:{_free_port()}/oauth/token",
        "free_port": str(_free_port()),
        "readable": str(readable),
    }
    if toml:
        (folder / "freshtoken.toml").write_text(toml)
    extra = {k: v.format(**blanks) for k, v in extra.items()}
    out = ft(args, cli_env(tmp_path, **{**good, **extra}), folder)
    assert out.returncode == code, out.stderr
    assert needle in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert CANARY_SECRET not in out.stderr + out.stdout


@pytest.mark.slow
def test_profiles_environment_and_genesys_variables(tmp_path: Path, server: AuthServer) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("demo-secret\n")
    project = tmp_path / "project" / "sub"
    project.mkdir(parents=True)
    user = tmp_path / "config" / "freshtoken"
    user.mkdir(parents=True)
    (user / "freshtoken.toml").write_text(
        TOML.format(url=server.token_url, secret_file=secret_file)
    )
    (tmp_path / "project" / "freshtoken.toml").write_text(PROJECT_TOML)
    env = cli_env(tmp_path)
    # found from a parent folder; the default profile names an unknown client
    assert ft(["token"], env, project).returncode == 3
    ci = ft(["--profile", "ci", "token", "--format", "json"], env, project)
    assert ci.returncode == 0, ci.stderr
    assert json.loads(ci.stdout)["token_type"] == "Bearer"
    # environment wins over the file; the gc CLI's variables are understood
    genesys = ft(["token"], {**env, "GENESYSCLOUD_OAUTHCLIENT_ID": "demo-client"}, project)
    assert genesys.returncode == 0, genesys.stderr
    # the secret from standard input
    piped = ft(
        ["token"],
        cli_env(
            tmp_path,
            FRESHTOKEN_TOKEN_URL=server.token_url,
            FRESHTOKEN_CLIENT_ID="demo-client",
            FRESHTOKEN_CLIENT_SECRET_FILE="-",
        ),
        tmp_path,
        stdin="demo-secret\n",
    )
    assert piped.returncode == 0, piped.stderr
    assert server.stats()["minted"]["demo-client"]["client_credentials"] >= 1


@pytest.mark.slow
def test_formats(tmp_path: Path, server: AuthServer) -> None:
    env = cli_env(tmp_path, server)
    raw = ft(["token"], env, tmp_path).stdout.strip()
    assert (
        ft(["token", "--format", "header"], env, tmp_path).stdout.strip()
        == f"Authorization: Bearer {raw}"
    )
    assert (
        ft(["token", "--format", "env"], env, tmp_path).stdout.strip()
        == f"export FRESHTOKEN_ACCESS_TOKEN={raw}"
    )
    assert (
        ft(["token", "--format", "dotenv"], env, tmp_path).stdout.strip()
        == f"FRESHTOKEN_ACCESS_TOKEN={raw}"
    )
    data = json.loads(ft(["token", "--format", "json", "--min-ttl", "60"], env, tmp_path).stdout)
    assert data["access_token"] == raw and 3500 < data["expires_in"] <= 3600
    output, github_env = tmp_path / "out", tmp_path / "env"
    out = ft(
        ["token", "--format", "github", "--github-env", "API_TOKEN"],
        {**env, "GITHUB_OUTPUT": str(output), "GITHUB_ENV": str(github_env)},
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"::add-mask::{raw}"
    assert f"token={raw}\n" in output.read_text()
    assert github_env.read_text() == f"API_TOKEN={raw}\n"
    assert server.stats()["tokens_minted"] == 1  # every call after the first hit the store


@pytest.mark.slow
def test_seed_status_and_revoke(tmp_path: Path, server: AuthServer) -> None:
    env = cli_env(
        tmp_path,
        server,
        FRESHTOKEN_INTROSPECTION_URL=server.url + "/oauth/introspect",
        FRESHTOKEN_REVOCATION_URL=server.url + "/oauth/revoke",
    )
    seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
    assert seed.refresh_token
    seeded = ft(["seed-refresh-token"], env, tmp_path, stdin=seed.refresh_token + "\n")
    assert seeded.returncode == 0, seeded.stderr
    access = ft(["token"], env, tmp_path).stdout.strip()
    assert server.stats()["refreshes"] == 1  # the seeded refresh token was used
    status = json.loads(ft(["status", "--format", "json"], env, tmp_path).stdout)
    [entry] = status["entries"]
    assert entry["this_profile"] and entry["refresh_token"] and entry["mints"] == 1
    assert not entry["sink_pending"] and not entry["being_spent"]
    assert entry["introspection_vouches"] == "yes"  # it said active for the live seed
    plain = ft(["status"], env, tmp_path)
    revoked = ft(["revoke"], env, tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    for where, text in [
        ("seed-refresh-token", seeded.stdout),
        ("status --format json", json.dumps(status)),
        ("status", plain.stdout),
        ("revoke", revoked.stdout),
    ]:
        assert_no_leak(where, text, access, seed.refresh_token)
    assert "access_token: revoked; refresh_token: revoked; dropped" in revoked.stdout
    assert server.stats()["revocations"] == 2
    assert json.loads(ft(["status", "--format", "json"], env, tmp_path).stdout)["entries"] == []


@pytest.mark.slow
def test_doctor(tmp_path: Path) -> None:
    with AuthServer.genesys(ttl=300) as server:
        env = cli_env(tmp_path, server, FRESHTOKEN_REGION="eu_west_1")
        healthy = ft(["doctor", "--build-minutes", "15"], env, tmp_path)
        assert healthy.returncode == 0, healthy.stdout
        assert "✓ 127.0.0.1" in healthy.stdout
        assert "less than the 15 min build" in healthy.stdout
        assert "client_secret = set  (from $FRESHTOKEN_CLIENT_SECRET)" in healthy.stdout
        assert_no_leak("doctor", healthy.stdout, "demo-secret")
        wrong = ft(
            ["doctor", "--format", "json"],
            {**env, "FRESHTOKEN_CLIENT_SECRET": "nope-1", "FRESHTOKEN_SCOPE": "offline_access"},
            tmp_path,
        )
        assert wrong.returncode == 1
        assert_no_leak("doctor --format json", wrong.stdout, "nope-1")
        checks = json.loads(wrong.stdout)
        failed = [c for c in checks if c["state"] == "fail"]
        assert any("offline_access" in c["title"] and "Genesys" in c["fix"] for c in failed)
        assert any("region eu_west_1" in c["fix"] for c in failed)  # invalid_client's hint


COMMANDS = [
    "token",
    "serve",
    "exec",
    "doctor",
    "status",
    "revoke",
    "seed-refresh-token",
    "testserver",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example(tmp_path: Path, command: str) -> None:
    out = ft([command, "--help"], cli_env(tmp_path), tmp_path)
    assert out.returncode == 0 and "Example" in out.stdout


@pytest.mark.slow
def test_quiet_and_verbose(tmp_path: Path, server: AuthServer) -> None:
    env = cli_env(tmp_path, server)
    # The child has no parent endpoint to ask (as under `freshtoken exec`): it asks the server.
    assert not {"FRESHTOKEN_URL", "FRESHTOKEN_KEY"} & set(env)
    server.configure(fail_first=1)
    loud = ft(["-v", "token"], env, tmp_path)
    assert "retrying in" in loud.stderr  # what it is waiting for
    assert loud.stdout.strip() not in loud.stderr
    server.configure(fail_first=1)
    before = server.stats()["token_requests"]
    # A fresh store: it must mint (and retry), then the 3600-s token is shorter than asked.
    quiet = ft(
        ["-q", "token", "--min-ttl", "4000"], {**env, "FRESHTOKEN_STORE": "memory://"}, tmp_path
    )
    assert server.stats()["token_requests"] - before == 2  # the retry happened, unsaid
    assert quiet.returncode == 2 and "retrying" not in quiet.stderr
    assert "more than the 3600s" in quiet.stderr


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"scope": ("b", "a"), "audience": "https://api"},
        {"grant": "refresh_token"},
        {"auth_method": "none"},
    ],
)
def test_the_fast_path_computes_the_brokers_cache_key(
    tmp_path: Path, server: AuthServer, variant: dict[str, Any]
) -> None:
    from freshtoken import Secret, Settings, TokenBroker
    from freshtoken.broker._key import settings_key

    settings = Settings(
        token_url=server.token_url,
        client_id="demo-client",
        client_secret=Secret("demo-secret"),
        store=f"sqlite://{tmp_path}/t.db",
        **variant,
    )
    store = _build.store_for(settings)
    assert (
        settings_key(settings, store.pepper) == TokenBroker.from_settings(settings, store=store).key
    )


@pytest.mark.slow
def test_a_cli_call_in_the_refresh_window_leaves_a_stored_refresh(tmp_path: Path) -> None:
    with AuthServer(ttl=8) as server:  # window: 4 s
        env = cli_env(tmp_path, server)
        first = ft(["token"], env, tmp_path).stdout.strip()
        assert ft(["token"], env, tmp_path).stdout.strip() == first  # a store hit, no mint
        assert server.stats()["tokens_minted"] == 1
        wait_until(
            lambda: ft(["token", "--min-ttl", "1"], env, tmp_path).stdout.strip() != first,
            timeout=10,
        )
        second = ft(["token"], env, tmp_path).stdout.strip()
        assert second != first
        assert server.stats()["tokens_minted"] == 2  # the refresh was stored, not lost


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["raw", "header", "json"])
def test_on_github_every_printed_token_is_masked_first(
    tmp_path: Path, server: AuthServer, fmt: str
) -> None:
    """A later step that captures the token and echoes it shows `***`: the runner is asked to
    mask it (on standard error, which it reads too) before it is printed, whichever path
    answers: a new mint, the store (fast path) or the parent endpoint of `exec` (fast path)."""
    import sys

    env = cli_env(tmp_path, server, GITHUB_ACTIONS="true")
    script = (
        "import subprocess, sys; "
        "r = subprocess.run([sys.executable, '-m', 'freshtoken', 'token', '--format', sys.argv[1]],"
        " capture_output=True, text=True); "
        "sys.stdout.write(r.stdout + '\\x00' + r.stderr)"
    )
    runs = [["token", "--format", fmt]] * 2 + [["exec", "--", sys.executable, "-c", script, fmt]]
    for args in runs:
        done = ft(args, env, tmp_path)
        assert done.returncode == 0, done.stderr
        stdout, _, stderr = done.stdout.partition("\x00")
        stderr = stderr or done.stderr
        printed = stdout.strip()
        token = json.loads(printed)["access_token"] if fmt == "json" else printed.split()[-1]
        assert stderr.splitlines()[0] == f"::add-mask::{token}", (args, stderr)
        me = httpx.get(
            server.url + "/api/v2/tokens/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert me.status_code == 200  # the very token that was printed
    quiet = ft(["token"], cli_env(tmp_path, server), tmp_path)
    assert "::add-mask::" not in quiet.stderr  # only on GitHub


def test_a_store_hit_is_served_only_with_min_ttl_left(tmp_path: Path) -> None:
    """The command line's store hit keeps the caller's --min-ttl: a stored token with less
    left is not printed; a new one is minted (and then shared). The later calls run 1,000 s
    later by their clock (libfaketime): the stored token has 2,600 s left, a new one 3,600."""
    with AuthServer(ttl=3600) as server:
        env = cli_env(tmp_path, server)
        first = ft(["token"], env, tmp_path).stdout.strip()
        later = {**env, "LD_PRELOAD": libfaketime(), "FAKETIME": "+1000s"}
        later["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        assert ft(["token", "--min-ttl", "2000"], later, tmp_path).stdout.strip() == first
        assert server.stats()["tokens_minted"] == 1
        second = ft(["token", "--min-ttl", "3000"], later, tmp_path).stdout.strip()
        assert second and second != first
        assert server.stats()["tokens_minted"] == 2
        assert ft(["token", "--min-ttl", "3000"], later, tmp_path).stdout.strip() == second
