"""Issue 20, the token request's half of a cache miss: what one client-credentials request runs
of the HTTP and OAuth modules (bench/profile_miss.py measures the whole miss)."""

from __future__ import annotations

import httpx
import pytest
from bench.profile_miss import profiled

from freshtoken import ClientCredentials, ClientSecretBasic, Endpoints, Secret, TokenClient
from freshtoken._http import normal_request
from freshtoken.testing import AuthServer

#: The files of the request's side: the HTTP layer, URLs, secrets and oauth/.
OWN = ("_http.py", "_urls.py", "_secret.py", "oauth/")


def _client(server: AuthServer) -> TokenClient:
    auth = ClientSecretBasic("demo-client", Secret("demo-secret"))
    return TokenClient(auth, endpoints=Endpoints(server.token_url))


def test_a_client_secret_request_runs_five_files_and_eight_pairs(server: AuthServer) -> None:
    _client(server).fetch(ClientCredentials())  # lazy imports done
    client = _client(server)
    files, pairs = profiled(lambda: client.fetch(ClientCredentials()))
    own = {f for f in files if f.startswith(OWN)}
    assert own == {
        "_http.py",
        "oauth/_client.py",
        "oauth/_client_auth.py",
        "oauth/_grants.py",
        "oauth/_response.py",
    }, own  # no assertions for a secret, no secret unwrapped per request, no URL rules
    from_own = sorted(p for p in pairs if p[0].startswith(OWN))
    assert len(from_own) <= 8, from_own


def test_a_client_secret_request_fetches_no_assertion(
    server: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fill(*_: object) -> None:
        raise AssertionError("the assertion machinery ran for a client secret")

    monkeypatch.setattr("freshtoken.oauth._client.fill", fill)
    assert _client(server).fetch(ClientCredentials()).access_token


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://LOCALHOST.:8080/x", "localhost:8080"),
        ("http://127.0.0.1./x", "127.0.0.1"),
        ("http://[::1]:9/x", "[::1]:9"),
        ("https://Login.Example.com/x", "login.example.com"),
    ],
)
def test_a_request_host_is_normal_before_a_transport_is_chosen(url: str, host: str) -> None:
    request = httpx.Request("GET", url)
    normal_request(request)
    assert request.headers["Host"] == host
    assert request.url.netloc.decode("ascii") == host


def test_one_miss_of_either_kind_runs_at_most_15_files_and_20_pairs() -> None:
    """The whole miss, in the caller, as `scripts/bench.sh --miss` measures it: a
    client-credentials mint and a refresh-token refresh on a SQLite store (issue 20)."""
    from bench.profile_miss import measure

    found = measure()
    assert set(found) == {
        "client-credentials mint",
        "refresh with a refresh token (caller only)",
    }
    for label, (files, pairs) in found.items():
        assert len(files) <= 15, (label, sorted(files))
        assert len(pairs) <= 20, (label, sorted(pairs))
        assert "broker/_renewal.py" in files, label  # the one transaction ran
