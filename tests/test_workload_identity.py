"""Workload identity (issue 25): a GitHub Actions OIDC token, or a JWT from a file, as the
subject token of a token exchange (RFC 8693), the assertion of the JWT-bearer grant (RFC 7523
§2.1) or a client assertion (Entra ID's federated credentials). A stand-in for GitHub's OIDC
token endpoint issues RS256 JWTs from its own key; the shipped test server verifies them
against that issuer's JWKS (testing/_federation.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from freshtoken import Endpoints, MemoryStore, TokenBroker, TokenClient
from freshtoken._errors import AuthorizationError, ConfigurationError, RateLimitedError
from freshtoken.broker._key import settings_key
from freshtoken.config._settings import Settings
from freshtoken.oauth._assertions import FileAssertion, GitHubActionsAssertion
from freshtoken.oauth._client_auth import PublicClient
from freshtoken.oauth._grants import TokenExchange
from freshtoken.testing import AuthServer, FakeClock, GitHubOidc
from freshtoken.testing._model import Client
from tests._cli import cli_env, ft
from tests.helpers import assert_no_leak

ENTRA = "api://AzureADTokenExchange"


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubOidc]:
    """The stand-in, and this step's environment as a runner sets it for `id-token: write`."""
    with GitHubOidc() as found:
        for name, value in found.env().items():
            monkeypatch.setenv(name, value)
        yield found


@pytest.fixture
def server(github: GitHubOidc) -> Iterator[AuthServer]:
    clients = [Client("wi", None), Client("app", None, auth_method="private_key_jwt")]
    with AuthServer(clients=clients) as found:
        found.trust_issuer(github.federation("wi", found.issuer))
        found.trust_issuer(github.federation("app", ENTRA))
        yield found


def _broker(server: AuthServer, store: MemoryStore | None = None, **env: str) -> TokenBroker:
    base = {"FRESHTOKEN_TOKEN_URL": server.token_url, "FRESHTOKEN_CLIENT_ID": "wi"}
    settings = Settings.from_env({**base, **env})
    return TokenBroker.from_settings(settings, store=store or MemoryStore())


def _exchange(
    server: AuthServer, audience: str | None = None, store: MemoryStore | None = None, **env: str
) -> TokenBroker:
    return _broker(
        server,
        store,
        FRESHTOKEN_AUTH_METHOD="none",
        FRESHTOKEN_GRANT="token_exchange",
        FRESHTOKEN_SUBJECT_TOKEN="github-actions:" + (audience or server.issuer),
        **env,
    )


def test_token_exchange_with_a_github_actions_token(server: AuthServer, github: GitHubOidc) -> None:
    broker = _exchange(
        server, FRESHTOKEN_REQUESTED_TOKEN_TYPE="urn:ietf:params:oauth:token-type:access_token"
    )
    token = broker.token()
    assert server.stats()["minted"]["wi"] == {"token_exchange": 1}
    form = server.token_requests()[-1]["form"]
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert form["subject_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    assert form["requested_token_type"].endswith(":access_token")
    assert form["subject_token"] == "***"  # sent (the server masks what it records)
    broker.invalidate(token)
    assert broker.token().access_token != token.access_token
    assert github.knobs.counts["issued"] == 2  # fetched fresh for every mint, never cached


def test_jwt_bearer_with_a_token_from_a_file(
    server: AuthServer, github: GitHubOidc, tmp_path: Path
) -> None:
    """A Kubernetes projected token or a SPIFFE JWT-SVID: read at every mint."""
    path = tmp_path / "token"
    path.write_text(_oidc_token(github, server.issuer) + "\n")
    broker = _broker(
        server,
        FRESHTOKEN_AUTH_METHOD="none",
        FRESHTOKEN_GRANT="jwt_bearer",
        FRESHTOKEN_ASSERTION=f"file:{path}",
    )
    token = broker.token()
    assert server.stats()["minted"]["wi"] == {"jwt_bearer": 1}
    path.write_text(_oidc_token(github, "https://elsewhere.example"))  # rotated by its owner
    broker.invalidate(token)
    with pytest.raises(AuthorizationError, match="not a trusted audience"):
        broker.token()
    path.unlink()
    with pytest.raises(ConfigurationError, match="cannot be read"):
        broker.token()
    # What another user or a hostile step could leave at the path: refused at once, named.
    os.mkfifo(path)  # no writer: a plain read would hang the mint
    with pytest.raises(ConfigurationError, match="is not a regular file"):
        broker.token()
    path.unlink()
    path.write_text("x" * 70_000)
    with pytest.raises(ConfigurationError, match="larger than 64 KiB"):
        broker.token()
    path.write_text(_oidc_token(github, server.issuer))
    path.chmod(0o666)
    with pytest.raises(ConfigurationError, match="writable by every user"):
        broker.token()
    path.chmod(0o644)
    assert broker.token().access_token


def _oidc_token(github: GitHubOidc, audience: str) -> str:
    env = github.env()
    answer = httpx.get(
        env["ACTIONS_ID_TOKEN_REQUEST_URL"],
        params={"audience": audience},
        headers={"Authorization": "Bearer " + env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]},
    )
    value: str = answer.json()["value"]
    return value


def test_a_federated_client_assertion_as_entra_id_takes_it(server: AuthServer) -> None:
    broker = _broker(
        server, FRESHTOKEN_CLIENT_ID="app", FRESHTOKEN_CLIENT_ASSERTION="github-actions:" + ENTRA
    )
    assert broker.token().access_token
    assert server.stats()["minted"]["app"] == {"client_credentials": 1}
    sent = server.token_requests()[-1]
    assert sent["auth_method"] == "private_key_jwt" and sent["form"]["client_assertion"] == "***"
    assert "github-actions:" + ENTRA in broker.client.auth.describe()  # type: ignore[attr-defined]


def test_what_the_server_refuses_is_a_clear_error(
    server: AuthServer, github: GitHubOidc, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AuthorizationError, match="not a trusted audience"):
        _exchange(server, "https://not-this-server.example").token()
    github.knobs.lifetime = -60  # GitHub's answer expired on arrival
    with pytest.raises(AuthorizationError, match="expired"):
        _exchange(server).token()
    github.knobs.lifetime = 300
    github.knobs.refuse = True  # the job has no `id-token: write`
    with pytest.raises(AuthorizationError, match="refused the OIDC token request") as caught:
        _exchange(server).token()
    assert "id-token: write" in caught.value.hint
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    with pytest.raises(ConfigurationError, match="no GitHub OIDC token endpoint") as missing:
        _exchange(server)
    assert "id-token: write" in missing.value.hint


def test_settings_that_cannot_work_are_named(server: AuthServer) -> None:
    with pytest.raises(ConfigurationError, match="FRESHTOKEN_SUBJECT_TOKEN"):
        _broker(server, FRESHTOKEN_AUTH_METHOD="none", FRESHTOKEN_GRANT="token_exchange")
    with pytest.raises(ConfigurationError, match="file:PATH or github-actions:AUDIENCE"):
        _broker(server, FRESHTOKEN_CLIENT_ASSERTION="env:TOKEN")
    with pytest.raises(ConfigurationError, match="is client_secret_post"):
        _broker(
            server,
            FRESHTOKEN_CLIENT_ASSERTION="github-actions:" + ENTRA,
            FRESHTOKEN_AUTH_METHOD="client_secret_post",
        )


def test_a_failed_fetch_is_retried_within_the_budget(
    server: AuthServer, github: GitHubOidc
) -> None:
    github.knobs.fail_next = 1
    source = GitHubActionsAssertion(server.issuer, **_request(github))
    client = TokenClient(
        PublicClient("wi"), endpoints=Endpoints(server.token_url), clock=FakeClock()
    )
    assert client.fetch(TokenExchange(source)).access_token
    assert github.knobs.counts["issued"] == 1 and server.stats()["token_requests"] == 1


def test_a_rate_limit_is_named_and_retried_not_read_as_a_permission(
    server: AuthServer, github: GitHubOidc
) -> None:
    source = GitHubActionsAssertion(server.issuer, **_request(github))
    client = TokenClient(
        PublicClient("wi"), endpoints=Endpoints(server.token_url), clock=FakeClock()
    )
    github.knobs.rate_limited_next = 1
    assert client.fetch(TokenExchange(source)).access_token
    github.knobs.rate_limited_next = 1_000
    with pytest.raises(RateLimitedError, match="is rate-limiting this job") as caught:
        client.fetch(TokenExchange(source))
    assert "id-token: write" not in str(caught.value)
    assert github.knobs.counts["issued"] == 1 and server.stats()["token_requests"] == 1


def _request(github: GitHubOidc) -> dict[str, Any]:
    from freshtoken._secret import Secret

    env = github.env()
    return {
        "request_url": env["ACTIONS_ID_TOKEN_REQUEST_URL"],
        "request_token": Secret(env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]),
    }


def test_the_source_names_the_cache_key_never_the_token(
    server: AuthServer, github: GitHubOidc, tmp_path: Path
) -> None:
    pepper = b"p" * 32
    store = MemoryStore()  # its key pepper is part of every cache key
    one = _exchange(server, store=store).key
    assert _exchange(server, store=store).key == one
    assert _exchange(server, "https://another.example", store).key != one
    a, b = FileAssertion(tmp_path / "a"), FileAssertion(tmp_path / "b")
    assert TokenExchange(a).cache_material() != TokenExchange(b).cache_material()
    settings = Settings.from_env(
        {
            "FRESHTOKEN_TOKEN_URL": server.token_url,
            "FRESHTOKEN_CLIENT_ID": "wi",
            "FRESHTOKEN_AUTH_METHOD": "none",
            "FRESHTOKEN_GRANT": "jwt_bearer",
            "FRESHTOKEN_ASSERTION": f"file:{tmp_path / 'a'}",
        }
    )
    assert str(tmp_path) not in settings_key(settings, pepper)


def test_no_assertion_or_request_token_in_logs_and_masked_on_github(
    server: AuthServer,
    github: GitHubOidc,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    caplog.set_level(logging.DEBUG, logger="freshtoken")
    broker = _exchange(server)
    broker.token()
    masked = [
        line.removeprefix("::add-mask::")
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("::add-mask::")
    ]
    assert len(masked) == 1 and masked[0].count(".") == 2  # the OIDC token, before any use
    for text in (caplog.text, repr(broker), repr(broker.client.auth), repr(broker.grant)):
        assert_no_leak("workload identity", text, masked[0], github.request_token)


@pytest.mark.slow
def test_cli_token_and_doctor_on_a_runner(
    server: AuthServer, github: GitHubOidc, tmp_path: Path
) -> None:
    env = cli_env(
        tmp_path,
        FRESHTOKEN_TOKEN_URL=server.token_url,
        FRESHTOKEN_CLIENT_ID="app",
        FRESHTOKEN_CLIENT_ASSERTION="github-actions:" + ENTRA,
        GITHUB_ACTIONS="true",
        **github.env(),
    )
    out = ft(["token"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("at_")
    masks = [x for x in out.stderr.splitlines() if x.startswith("::add-mask::")]
    assert len(masks) == 2  # the OIDC token, then the access token
    doctor = ft(["doctor"], env, tmp_path)
    assert f"client assertion from github-actions:{ENTRA}" in doctor.stdout
    oidc = masks[0].removeprefix("::add-mask::")
    for text in (out.stdout, doctor.stdout):
        assert oidc not in text and github.request_token not in text
    assert server.stats()["minted"]["app"]["client_credentials"] >= 1


def test_a_stranger_token_is_refused(server: AuthServer) -> None:
    """A JWT signed by a key the issuer's JWKS does not hold is no proof."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from freshtoken.oauth._jws import sign

    claims = {"iss": "http://127.0.0.1:1", "sub": "x", "aud": server.issuer, "exp": 2**40}
    forged = sign(ec.generate_private_key(ec.SECP256R1()), "ES256", {}, claims)
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": forged,
        "client_id": "wi",
    }
    answer = httpx.post(server.token_url, data=form)
    assert answer.status_code == 400 and "not trusted" in answer.json()["error_description"]
    trusted_issuer: Any = server._federations[0].issuer
    forged = sign(ec.generate_private_key(ec.SECP256R1()), "ES256", {},
                  {**claims, "iss": trusted_issuer})  # fmt: skip
    answer = httpx.post(server.token_url, data={**form, "assertion": forged})
    assert "signature does not verify" in answer.json()["error_description"]


def test_exec_children_get_no_oidc_request_token_when_freshtoken_uses_it(
    server: AuthServer, github: GitHubOidc, tmp_path: Path
) -> None:
    """A child of `exec` inherits neither ACTIONS_ID_TOKEN_REQUEST_TOKEN nor _URL where
    freshtoken fetches the job's OIDC token with them: its environment carries no credential.
    Where freshtoken does not use them, they are the child's as before."""
    import json
    import sys

    code = "import json, os; print(json.dumps(dict(os.environ)))"
    argv = ["exec", "--env", "API_TOKEN", "--", sys.executable, "-c", code]
    base = cli_env(tmp_path, FRESHTOKEN_TOKEN_URL=server.token_url, **github.env())
    used = {
        **base,
        "FRESHTOKEN_CLIENT_ID": "app",
        "FRESHTOKEN_CLIENT_ASSERTION": "github-actions:" + ENTRA,
    }
    out = ft(argv, used, tmp_path)
    assert out.returncode == 0, out.stderr
    child = json.loads(out.stdout)
    assert child["API_TOKEN"].startswith("at_") and child["FRESHTOKEN_URL"]
    assert server.stats()["minted"]["app"]["client_credentials"] == 1  # the OIDC token was used
    assert "ACTIONS_ID_TOKEN_REQUEST_TOKEN" not in child
    assert "ACTIONS_ID_TOKEN_REQUEST_URL" not in child
    dump = "\n".join(f"{k}={v}" for k, v in child.items() if k != "API_TOKEN")
    assert_no_leak("the child's environment", dump, github.request_token)
    unused = {**base, "FRESHTOKEN_CLIENT_ID": "wi", "FRESHTOKEN_AUTH_METHOD": "none"}
    other = json.loads(ft(argv, unused, tmp_path).stdout)
    assert other["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] == github.request_token


def test_a_command_sinks_program_gets_no_oidc_request_token_when_freshtoken_uses_it(
    github: GitHubOidc, tmp_path: Path
) -> None:
    """The `command:` sink's program follows `exec`'s rule (one function, `_build`): where
    freshtoken fetches the job's OIDC token, the program gets neither variable; elsewhere it
    does."""
    import json
    import os
    import shlex
    import sys
    import time

    from freshtoken._build import sink_for

    dump = tmp_path / "env.json"
    code = (
        "import json, os, sys; sys.stdin.read(); "
        f"open({str(dump)!r}, 'w').write(json.dumps(dict(os.environ)))"
    )
    base = {
        "FRESHTOKEN_TOKEN_URL": "http://127.0.0.1:1/token",
        "FRESHTOKEN_CLIENT_ID": "app",
        "FRESHTOKEN_GRANT": "refresh_token",
        "FRESHTOKEN_REFRESH_TOKEN": "rt_canary_seed_0000001",
        "FRESHTOKEN_REFRESH_TOKEN_SINK": "command:" + shlex.join([sys.executable, "-c", code]),
    }

    def program_env(**extra: str) -> dict[str, str]:
        sink = sink_for(Settings.from_env({**base, **extra}), environ=dict(os.environ))
        assert sink is not None
        sink.write("rt_canary_rotated_0001", time.monotonic() + 30)
        found: dict[str, str] = json.loads(dump.read_text())
        return found

    used = program_env(FRESHTOKEN_CLIENT_ASSERTION="github-actions:" + ENTRA)
    assert "ACTIONS_ID_TOKEN_REQUEST_TOKEN" not in used  # before: the program had it
    assert "ACTIONS_ID_TOKEN_REQUEST_URL" not in used
    unused = program_env(FRESHTOKEN_CLIENT_SECRET="demo-secret")
    assert unused["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] == github.request_token
