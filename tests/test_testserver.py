"""The shipped test server's own surface: endpoints, knobs, fixture and command line."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import httpx
import pytest

from freshtoken import (
    AuthorizationCode,
    ClientSecretBasic,
    ClientSecretPost,
    Endpoints,
    PublicClient,
    RefreshTokenGrant,
    Secret,
    TokenClient,
)
from freshtoken.testing import AuthServer, Client, Knobs
from tests.helpers import TOKEN_SHAPE, leaks

FT = [sys.executable, "-m", "freshtoken"]


def test_pytest_fixture_is_registered_by_the_opt_in_plugin(freshtoken_server: AuthServer) -> None:
    response = httpx.post(
        freshtoken_server.token_url,
        data={"grant_type": "client_credentials"},
        auth=("demo-client", "demo-secret"),
    )
    assert response.status_code == 200
    assert freshtoken_server.stats()["tokens_minted"] == 1


def _token(server: AuthServer, **form: str) -> dict[str, Any]:
    response = httpx.post(
        server.token_url,
        data={"grant_type": "client_credentials", **form},
        auth=("demo-client", "demo-secret"),
    )
    body: dict[str, Any] = response.json()
    return body


def test_introspection_and_revocation(server: AuthServer) -> None:
    auth = ("demo-client", "demo-secret")
    access = _token(server)["access_token"]
    live = httpx.post(server.url + "/oauth/introspect", data={"token": access}, auth=auth).json()
    assert live["active"] is True and live["client_id"] == "demo-client"
    assert (
        httpx.post(server.url + "/oauth/revoke", data={"token": access}, auth=auth).status_code
        == 200
    )
    dead = httpx.post(server.url + "/oauth/introspect", data={"token": access}, auth=auth).json()
    assert dead == {"active": False}
    me = httpx.get(server.url + "/api/v2/tokens/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 401
    assert me.json() == {
        "message": "Invalid login credentials.",
        "code": "bad.credentials",
        "status": 401,
    }
    head = httpx.head(server.url + "/api/v2/tokens/me")
    assert head.status_code == 401
    stats = server.stats()
    assert (stats["introspections"], stats["revocations"], stats["api_401"]) == (2, 1, 2)


def test_genesys_error_style_and_no_scope() -> None:
    with AuthServer.genesys() as server:
        bad = httpx.post(
            server.token_url,
            data={"grant_type": "client_credentials"},
            auth=("demo-client", "nope"),
        )
        assert bad.status_code == 401
        assert bad.json() == {
            "error": "invalid_client",
            "description": "authentication failed",
            "error_description": "authentication failed",
        }
        assert "scope" not in _token(server, scope="a")


def test_authorize_redirects_with_a_code(server: AuthServer) -> None:
    response = httpx.get(
        server.url + "/oauth/authorize",
        params={
            "client_id": "demo-client",
            "redirect_uri": "http://127.0.0.1:9/cb",
            "state": "s1",
            "response_type": "code",
        },
    )
    assert response.status_code == 302
    assert response.headers["location"].startswith("http://127.0.0.1:9/cb?code=code_")
    assert "state=s1" in response.headers["location"]


def test_control_endpoint_changes_knobs(server: AuthServer) -> None:
    assert httpx.post(server.url + "/_control", json={"fail_first": 1}).json()["fail_first"] == 1
    assert (
        httpx.post(
            server.token_url,
            data={"grant_type": "client_credentials"},
            auth=("demo-client", "demo-secret"),
        ).status_code
        == 503
    )
    assert "access_token" in _token(server)
    assert httpx.post(server.url + "/_control", json={"nope": 1}).status_code == 400


def test_api_rate_limit_answers_like_genesys() -> None:
    with AuthServer(api_rate_limit=1) as server:
        headers = {"Authorization": "Bearer " + _token(server)["access_token"]}
        assert httpx.get(server.url + "/api/echo", headers=headers).status_code == 200
        limited = httpx.get(server.url + "/api/echo", headers=headers)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.json()["code"] == "too.many.requests.retry.after"


def test_serves_hundreds_of_requests_from_many_threads(server: AuthServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(_: int) -> int:
        with httpx.Client() as client:
            return sum(
                client.post(
                    server.token_url,
                    data={"grant_type": "client_credentials"},
                    auth=("demo-client", "demo-secret"),
                ).status_code
                == 200
                for _ in range(25)
            )

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(work, range(8))) == 200
    assert server.stats()["tokens_minted"] == 200


@pytest.fixture
def cli_server() -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    proc = subprocess.Popen([*FT, "testserver", "--ttl", "30"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    yield proc, ready
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_cli_testserver_and_token(
    cli_server: tuple[subprocess.Popen[str], dict[str, Any]], tmp_path: Path
) -> None:
    proc, ready = cli_server
    assert ready["token_url"] == ready["url"] + "/oauth/token"
    assert ready["clients"] == ["demo-client"] and ready["pid"] == proc.pid
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path),
        "FRESHTOKEN_TOKEN_URL": ready["token_url"],
        "FRESHTOKEN_CLIENT_ID": "demo-client",
        "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
        "FRESHTOKEN_SCOPE": "read",
    }
    out = subprocess.run([*FT, "token"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    access = out.stdout.strip()
    me = httpx.get(
        ready["url"] + "/api/v2/tokens/me", headers={"Authorization": f"Bearer {access}"}
    )
    assert me.status_code == 200 and me.json()["scope"] == "read"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


# The environment ({token_url} filled in with the running server's), exit code, message.
TOKEN_ERRORS = [
    pytest.param(
        {
            "FRESHTOKEN_TOKEN_URL": "{token_url}",
            "FRESHTOKEN_CLIENT_ID": "demo-client",
            "FRESHTOKEN_CLIENT_SECRET": "wrong-canary-111",
        },
        3,
        "invalid_client",
        id="wrong-secret",
    ),
    pytest.param(
        {
            "FRESHTOKEN_REGION": "mars_north_1",
            "FRESHTOKEN_CLIENT_ID": "x",
            "FRESHTOKEN_CLIENT_SECRET": "y",
        },
        2,
        "unknown Genesys Cloud region",
        id="unknown-region",
    ),
    pytest.param(
        {"FRESHTOKEN_CLIENT_ID": "x", "FRESHTOKEN_CLIENT_SECRET": "y"},
        2,
        "no token endpoint",
        id="no-endpoint",
    ),
    pytest.param(
        {
            "FRESHTOKEN_TOKEN_URL": "http://login.example.com/t",
            "FRESHTOKEN_CLIENT_ID": "x",
            "FRESHTOKEN_CLIENT_SECRET": "y",
        },
        2,
        "plain http",
        id="plain-http",
    ),
    pytest.param(
        {"FRESHTOKEN_TOKEN_URL": "{token_url}", "FRESHTOKEN_CLIENT_ID": "demo-client"},
        2,
        "needs a client secret",
        id="no-secret",
    ),
]


@pytest.mark.parametrize(("env", "code", "needle"), TOKEN_ERRORS)
def test_cli_token_errors_have_exit_codes_and_no_traceback(
    cli_server: tuple[subprocess.Popen[str], dict[str, Any]],
    tmp_path: Path,
    env: dict[str, str],
    code: int,
    needle: str,
) -> None:
    _, ready = cli_server
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRESHTOKEN_")}
    base["XDG_CACHE_HOME"] = str(tmp_path)
    env = {k: v.format(token_url=ready["token_url"]) for k, v in env.items()}
    out = subprocess.run(
        [*FT, "token"], env={**base, **env}, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == code, out.stderr
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    assert "wrong-canary-111" not in out.stderr + out.stdout
    assert out.stdout == ""


def test_minted_tokens_have_the_shape_the_leak_checks_look_for() -> None:
    with AuthServer(refresh_on_client_credentials=True) as server:
        body = _token(server)
    access, refresh = body["access_token"], body["refresh_token"]
    assert TOKEN_SHAPE.fullmatch(access) and TOKEN_SHAPE.fullmatch(refresh), body
    assert leaks(f"sent 'Bearer {access}', kept {refresh}.") == [access, refresh]
    # serve's key (43 URL-safe characters) is no token, even when it happens to start "at_"
    assert leaks("::add-mask::at_nQhg2mld9o4ZuXhKTU4m5z1eIxIRkWqqqZmIVLxI") == []


def test_cli_testserver_refuses_a_non_loopback_host() -> None:
    out = subprocess.run(
        [*FT, "testserver", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    assert "loopback only" in out.stderr


def test_a_non_ascii_client_secret_is_compared_not_crashed_on() -> None:
    def basic(pair: str, encoding: str = "utf-8") -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(pair.encode(encoding)).decode()}

    form = {"grant_type": "client_credentials"}
    clients = [Client("demo-client", "demo-secret"), Client("accent", "s3cré t")]
    with AuthServer(clients=clients) as server:

        def status(**request: Any) -> tuple[int, str | None]:
            response = httpx.post(server.token_url, **request)
            return response.status_code, response.json().get("error")

        # RFC 6749 §2.3.1 form-encodes each part before base64; raw UTF-8 is accepted too.
        assert status(data=form, headers=basic("accent:s3cr%C3%A9+t")) == (200, None)
        assert status(data=form, headers=basic("accent:s3cré t")) == (200, None)
        assert status(data={**form, "client_id": "accent", "client_secret": "s3cré t"}) == (
            200,
            None,
        )
        wrong = [
            {"data": form, "headers": basic("demo-client:démo-secret")},
            {"data": form, "headers": basic("accent:s3cre t")},
            {"data": {**form, "client_id": "demo-client", "client_secret": "é"}},
            {"data": {**form, "client_id": "accent", "client_secret": "s3cré"}},
        ]
        for request in wrong:
            assert status(**request) == (401, "invalid_client"), request
        # Latin-1 bytes are not the UTF-8 form encoding the RFC asks for.
        assert status(data=form, headers=basic("accent:s3cré t", "latin-1")) == (
            400,
            "invalid_request",
        )
        introspected = httpx.post(
            server.url + "/oauth/introspect", data={"token": "x"}, auth=("demo-client", "é")
        )
        assert introspected.status_code == 401
        assert server.stats()["tokens_minted"] == 3


def test_token_requests_record_what_clients_sent_without_secrets() -> None:
    clients = [Client("demo-client", "demo-secret"), Client("spa", None)]
    with AuthServer(clients=clients) as server:
        endpoints = Endpoints(server.token_url)
        basic = TokenClient(
            ClientSecretBasic("demo-client", Secret("demo-secret")), endpoints=endpoints
        )
        first = basic.fetch(AuthorizationCode(server.issue_code("demo-client", ("read",))))
        assert first.refresh_token
        post = TokenClient(
            ClientSecretPost("demo-client", Secret("demo-secret")), endpoints=endpoints
        )
        post.fetch(RefreshTokenGrant(first.refresh_token))
        public = TokenClient(PublicClient("spa"), endpoints=endpoints)
        public.fetch(AuthorizationCode(server.issue_code("spa"), code_verifier="v" * 43))
        server.configure(fail_first=1)  # answered 503, still received
        httpx.post(server.token_url, data={"grant_type": "client_credentials", "scope": "a b"})
        httpx.post(
            server.token_url,
            data={"grant_type": "client_credentials", "client_secret": ""},
            headers={"Authorization": "Basic !!"},
        )
        requests = server.token_requests()
    assert requests == [
        {
            "client_id": "demo-client",
            "auth_method": "client_secret_basic",
            "form": {"grant_type": "authorization_code", "code": "***"},
        },
        {
            "client_id": "demo-client",
            "auth_method": "client_secret_post",
            "form": {
                "grant_type": "refresh_token",
                "refresh_token": "***",
                "client_id": "demo-client",
                "client_secret": "***",
            },
        },
        {
            "client_id": "spa",
            "auth_method": "none",
            "form": {
                "grant_type": "authorization_code",
                "code": "***",
                "code_verifier": "***",
                "client_id": "spa",
            },
        },
        {
            "client_id": None,
            "auth_method": "none",
            "form": {"grant_type": "client_credentials", "scope": "a b"},
        },
        {  # an empty secret stays visible as empty; a malformed Basic header names nobody
            "client_id": None,
            "auth_method": "client_secret_basic",
            "form": {"grant_type": "client_credentials", "client_secret": ""},
        },
    ]
    assert "demo-secret" not in repr(requests) and first.refresh_token not in repr(requests)


def test_token_requests_keep_the_last_thousand() -> None:
    server = AuthServer()  # handle_token needs no socket
    for i in range(1005):
        server.handle_token({}, {"grant_type": "client_credentials", "scope": f"s{i}"})
    requests = server.token_requests()
    assert len(requests) == 1000
    assert requests[0]["form"]["scope"] == "s5" and requests[-1]["form"]["scope"] == "s1004"
    requests[0]["form"]["scope"] = "changed"  # a copy: the record is left as it was
    assert server.token_requests()[0]["form"]["scope"] == "s5"


def test_testserver_has_an_option_per_knob() -> None:
    from freshtoken.testing._command import testserver

    assert {p.name for p in testserver.params} >= {f.name for f in fields(Knobs)}
    opts = {opt for p in testserver.params for opt in p.opts}
    for used in ("--host", "--port", "--client", "--genesys", "--no-rotate", "--ttl"):
        assert used in opts  # by tests, docs and README
    given = ["--no-rotate", "--no-reuse-detection", "--narrow-scope", "--ttl", "5"]
    params = testserver.make_context("testserver", [*given, "--malformed", "html_502"]).params
    assert params["rotate_refresh_tokens"] is False and params["reuse_detection"] is False
    assert params["narrow_scope"] is True and params["ttl"] == 5.0
    assert params["malformed"] == "html_502" and params["scope_in_response"] is True


def test_cli_testserver_passes_only_the_knobs_given() -> None:
    argv = ["testserver", "--genesys", "--no-rotate", "--rate-limit", "3", "--seed", "7"]
    proc = subprocess.Popen([*FT, *argv], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        knobs = httpx.post(ready["url"] + "/_control", json={}).json()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    expected = {"error_style": "genesys", "scope_in_response": False}  # the Genesys preset
    expected |= {"rotate_refresh_tokens": False, "rate_limit": 3, "seed": 7, "ttl": 3600.0}
    assert knobs == {**asdict(Knobs()), **expected}
