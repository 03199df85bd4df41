"""A step that has only what `freshtoken serve --print-env` exports (FRESHTOKEN_URL and
FRESHTOKEN_KEY, no client secret), as after the GitHub Action: the library, its adapters, the
Genesys SDK helper and the command line all get the token serve holds; none of them mints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import freshtoken
from freshtoken.testing import AuthServer
from tests._attack import Listener, http_answer
from tests._cli import cli_env, ft
from tests.helpers import assert_no_leak, require_module, stop_process


class Served:
    """A real `freshtoken serve --print-env` and the environment of a later step."""

    def __init__(self, server: AuthServer, tmp: Path) -> None:
        self.server = server
        store = f"sqlite://{tmp}/tokens.db"
        self.serve_env = cli_env(tmp, server, FRESHTOKEN_STORE=store)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "freshtoken", "serve", "--print-env"],
            env=self.serve_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        exported: dict[str, str] = {}
        while "FRESHTOKEN_KEY" not in exported or "FRESHTOKEN_URL" not in exported:
            line = self.process.stdout.readline()
            assert line, f"serve ended: {self.process.stderr.read() if self.process.stderr else ''}"
            name, _, value = line.strip().removeprefix("export ").partition("=")
            exported[name] = value.strip("'")
        self.url, self.key = exported["FRESHTOKEN_URL"], exported["FRESHTOKEN_KEY"]
        # The later step: the endpoint and the store's name, no client id, secret or token URL.
        self.step_env = cli_env(
            tmp, FRESHTOKEN_URL=self.url, FRESHTOKEN_KEY=self.key, FRESHTOKEN_STORE=store
        )

    def held(self) -> str:
        """The token serve hands out now."""
        answer = httpx.get(self.url + "/token", headers={"X-Freshtoken-Key": self.key})
        return str(answer.json()["access_token"])

    def stop(self) -> str:
        stop_process(self.process.pid)
        self.process.wait(timeout=10)
        return self.process.stderr.read() if self.process.stderr else ""


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    with AuthServer.genesys(ttl=getattr(request, "param", 600)) as server:
        running = Served(server, tmp_path)
        try:
            yield running
        finally:
            assert_no_leak("serve's standard error", running.stop())


@pytest.fixture
def step(served: Served, monkeypatch: pytest.MonkeyPatch) -> Served:
    """This test process as the later step (the library reads os.environ)."""
    for name in list(os.environ):
        if name.startswith(("FRESHTOKEN_", "GENESYSCLOUD_")):
            monkeypatch.delenv(name)
    for name in ("FRESHTOKEN_URL", "FRESHTOKEN_KEY", "FRESHTOKEN_STORE"):
        monkeypatch.setenv(name, served.step_env[name])
    return served


def test_the_library_and_its_adapters_use_the_endpoint_and_mint_nothing(step: Served) -> None:
    source = freshtoken.TokenBroker.from_env()
    assert isinstance(source, freshtoken.EndpointSource)
    token = source.token()
    assert token.access_token == step.held()
    assert step.server.stats()["tokens_minted"] == 1  # by serve: this step has no secret
    assert source.token() is token  # kept in this process while valid for the margin
    assert_no_leak("the source's repr", repr(source), step.key)
    with httpx.Client(auth=source.httpx_auth()) as client:
        assert client.get(step.server.url + "/api/v2/tokens/me").status_code == 200
        step.server.revoke_all()  # refused although not expired: the endpoint replaces it
        assert client.get(step.server.url + "/api/v2/tokens/me").status_code == 200
    assert source.current is not None and source.current.access_token != token.access_token
    assert source.current.access_token == step.held()
    requests = require_module("requests")
    answer = requests.get(step.server.url + "/api/echo", auth=source.requests_auth(), timeout=10)
    assert answer.status_code == 200
    stats = step.server.stats()
    assert stats["api_401"] == 1
    assert stats["tokens_minted"] == 2  # serve's second, for the revoked one
    with pytest.raises(freshtoken.ConfigurationError, match="min_ttl"):
        source.token(min_ttl=-1)  # the endpoint's own refusal, with its class and hint


@pytest.mark.slow
@pytest.mark.parametrize("served", [5], indirect=True, ids=["5-s tokens"])
def test_the_genesys_sdk_helper_after_the_action_with_5_s_tokens(step: Served) -> None:
    sdk = require_module("PureCloudPlatformClientV2")
    from freshtoken.integrations.genesys import api_client

    client = api_client(freshtoken.TokenBroker.from_env(), step.server.url)  # no min_ttl
    tokens = sdk.TokensApi(client)
    seen = set()
    end = time.monotonic() + 6  # more than a lifetime
    calls = 0
    while calls < 100 or time.monotonic() < end:
        tokens.head_tokens_me()  # raises ApiException on a 401
        seen.add(client.access_token)
        calls += 1
        time.sleep(0.03)
    assert step.server.stats()["api_401"] == 0
    assert len(seen) >= 2  # the 5-s tokens were replaced on the way, by serve


def test_the_command_line_in_the_step(served: Served, tmp_path: Path) -> None:
    env = served.step_env
    out = ft(["token", "--format", "json"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert '"access_token"' in out.stdout and served.held() in out.stdout
    doctor = ft(["doctor"], env, tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"using the running endpoint {served.url}" in doctor.stdout
    assert "'demo-client'" in doctor.stdout  # the client serve holds
    status = ft(["status", "--format", "json"], env, tmp_path)
    assert status.returncode == 0, status.stderr
    assert '"served_by_endpoint": true' in status.stdout
    table = ft(["status"], env, tmp_path)
    assert " serve " in table.stdout, table.stdout
    # The step's own client secret wins: it mints for itself (and says what it lacks).
    own = ft(["token"], {**env, "FRESHTOKEN_CLIENT_SECRET": "demo-secret"}, tmp_path)
    assert own.returncode == 2 and "no token endpoint configured" in own.stderr


def test_a_misspelt_variable_is_named_with_the_closest_setting(tmp_path: Path) -> None:
    with AuthServer() as server:
        env = cli_env(tmp_path, server, FRESHTOKEN_CLIENTID="x")
        for args in (["token"], ["-q", "token"], ["token", "--format", "json"]):
            out = ft(args, env, tmp_path)
            assert out.returncode == 0, out.stderr
            said = "FRESHTOKEN_CLIENTID is not a freshtoken setting"
            assert (said in out.stderr) is (args[0] != "-q"), out.stderr
            assert "did you mean FRESHTOKEN_CLIENT_ID?" in out.stderr or args[0] == "-q"
        doctor = ft(["doctor"], env, tmp_path)
        assert "did you mean FRESHTOKEN_CLIENT_ID?" in doctor.stdout


def test_the_step_s_own_margin_setting_and_profile_are_honoured(
    served: Served, tmp_path: Path
) -> None:
    """FRESHTOKEN_MIN_TTL is this step's default min_ttl also through the endpoint; a step that
    names a profile configures its own client instead of taking serve's token."""
    first = ft(["token", "--format", "json"], served.step_env, tmp_path)
    assert first.returncode == 0, first.stderr
    longer = {**served.step_env, "FRESHTOKEN_MIN_TTL": "700"}  # tokens live 600 s
    out = ft(["token", "--format", "json"], longer, tmp_path)
    assert out.returncode == 2, out.stderr  # serve was asked for 700 s, and says it cannot
    assert json.loads(out.stderr)["message"].startswith("min_ttl 700s is more than the 600s")
    own = ft(["--profile", "other", "token"], served.step_env, tmp_path)
    assert own.returncode == 2 and "profile" in own.stderr  # its own (missing) configuration


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (b'{"access_token": "x; touch pwned", "expires_in": 600}', "did not answer like"),
        (b'{"access_token": "abc", "expires_in": 3}', "less than the 60s"),
        (b"not json", "did not answer like"),
        (b'{"expires_in": 600}', "did not answer like"),
    ],
    ids=["shell-syntax", "too-short", "not-json", "no-token"],
)
def test_a_lying_endpoint_gets_no_token_handed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: bytes, said: str
) -> None:
    with Listener(http_answer(200, answer)) as liar:
        env = cli_env(tmp_path, FRESHTOKEN_URL=liar.url, FRESHTOKEN_KEY="k" * 43)
        for fmt in ("raw", "env", "json"):
            out = ft(["token", "--min-ttl", "60", "--format", fmt], env, tmp_path)
            assert out.returncode == 4, out.stdout + out.stderr
            assert said in out.stderr and "Traceback" not in out.stderr
            assert out.stdout == ""
        for name in ("FRESHTOKEN_URL", "FRESHTOKEN_KEY"):
            monkeypatch.setenv(name, env[name])
        with pytest.raises(freshtoken.TokenUnavailableError, match=said):
            freshtoken.TokenBroker.from_env().token(min_ttl=60)
    assert not (tmp_path / "pwned").exists()


def test_the_key_goes_to_no_other_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FRESHTOKEN_URL that names another machine gets nothing sent (the key stays here)."""
    env = cli_env(tmp_path, FRESHTOKEN_URL="http://192.0.2.1:8080", FRESHTOKEN_KEY="k" * 43)
    out = ft(["token"], env, tmp_path)
    assert out.returncode == 2 and "not this machine (loopback)" in out.stderr, out.stderr
    monkeypatch.setenv("FRESHTOKEN_URL", env["FRESHTOKEN_URL"])
    monkeypatch.setenv("FRESHTOKEN_KEY", env["FRESHTOKEN_KEY"])
    with pytest.raises(freshtoken.ConfigurationError, match="loopback"):
        freshtoken.TokenBroker.from_env().token()


def test_the_endpoint_rule_knows_every_variable_that_names_a_client_secret() -> None:
    """The wire (standard library only) lists the client-secret variables itself: they must be
    the settings table's, so that a step holding its own secret never asks the endpoint."""
    from freshtoken._local_endpoint import OWN_SECRET
    from freshtoken.config._options import BY_KEY
    from freshtoken.provider._presets import ALIASES

    option = BY_KEY["client_secret"]
    aliases = [name for name, key in ALIASES.items() if key == "client_secret"]
    assert set(OWN_SECRET) == {option.env + sfx.upper() for sfx in option.sources} | set(aliases)
