"""The test server's interactive grants over real HTTP: /oauth/authorize with PKCE, codes single
use and short lived, and the device authorization grant with slow_down and expiry."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from freshtoken.oauth._login import Pkce
from freshtoken.testing import AuthServer, Client
from tests.helpers import wait_until

CALLBACK = "http://127.0.0.1:9/callback"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def _code(server: AuthServer, **params: str) -> str:
    query = {"client_id": "spa", "redirect_uri": CALLBACK, "response_type": "code", **params}
    answer = httpx.get(server.url + "/oauth/authorize", params=query)
    assert answer.status_code == 302, answer.text
    found = parse_qs(urlsplit(answer.headers["location"]).query)
    assert "error" not in found, found
    return found["code"][0]


def _redeem(server: AuthServer, code: str, **form: str) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "client_id": "spa"}
    return httpx.post(server.token_url, data={**data, "redirect_uri": CALLBACK, **form})


@pytest.fixture
def spa() -> Any:
    with AuthServer(clients=[Client("spa", None)]) as server:
        yield server


def test_discovery_advertises_the_authorization_and_device_endpoints(spa: AuthServer) -> None:
    meta = httpx.get(spa.url + "/.well-known/openid-configuration").json()
    assert meta["authorization_endpoint"] == spa.url + "/oauth/authorize"
    assert meta["device_authorization_endpoint"] == spa.url + "/oauth/device_authorization"
    assert DEVICE in meta["grant_types_supported"]
    assert meta["code_challenge_methods_supported"] == ["S256", "plain"]
    spa.configure(refuse_plain_pkce=True)
    meta = httpx.get(spa.url + "/.well-known/oauth-authorization-server").json()
    assert meta["code_challenge_methods_supported"] == ["S256"]


def test_s256_verifier_must_match_and_codes_are_single_use(spa: AuthServer) -> None:
    pkce, other = Pkce.new(), Pkce.new()
    challenge = {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    wrong = _redeem(spa, _code(spa, **challenge), code_verifier=other.verifier)
    assert wrong.json()["error_description"] == "code_verifier does not match the code_challenge"
    missing = _redeem(spa, _code(spa, **challenge))
    assert missing.json()["error_description"] == "code_verifier missing"
    code = _code(spa, **challenge)
    assert _redeem(spa, code, code_verifier=pkce.verifier).status_code == 200
    again = _redeem(spa, code, code_verifier=pkce.verifier)
    assert again.json()["error"] == "invalid_grant"
    # A refused redemption spends the code too (a guessed verifier gets one try).
    code = _code(spa, **challenge)
    assert _redeem(spa, code, code_verifier=other.verifier).status_code == 400
    assert _redeem(spa, code, code_verifier=pkce.verifier).status_code == 400


def test_redirect_uri_must_match_and_codes_expire(spa: AuthServer) -> None:
    other = _redeem(spa, _code(spa), redirect_uri="http://127.0.0.1:9/other")
    assert other.json()["error_description"] == "redirect_uri does not match"
    spa.configure(code_ttl=0.05)
    code, issued = _code(spa), time.monotonic()
    wait_until(lambda: time.monotonic() > issued + 0.05, timeout=2)
    assert _redeem(spa, code).json()["error_description"] == "authorization code expired"


def test_plain_and_missing_challenges_refused_when_the_knobs_say_so(spa: AuthServer) -> None:
    assert _redeem(spa, _code(spa, code_challenge="x" * 43), code_verifier="x" * 43).is_success
    spa.configure(refuse_plain_pkce=True, require_pkce=True)
    for params in ({"code_challenge": "x" * 43}, {}):
        query = {"client_id": "spa", "redirect_uri": CALLBACK, "state": "s", **params}
        answer = httpx.get(spa.url + "/oauth/authorize", params=query)
        location = parse_qs(urlsplit(answer.headers["location"]).query)
        assert location["error"] == ["invalid_request"]
        assert location["state"] == ["s"]


def test_authorize_never_redirects_for_an_unknown_client(spa: AuthServer) -> None:
    answer = httpx.get(
        spa.url + "/oauth/authorize",
        params={"client_id": "nobody", "redirect_uri": "http://127.0.0.1:9/evil"},
    )
    assert answer.status_code == 400
    assert "location" not in answer.headers


def _device(server: AuthServer) -> dict[str, Any]:
    answer = httpx.post(
        server.url + "/oauth/device_authorization", data={"client_id": "spa", "scope": "read"}
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _poll(server: AuthServer, device_code: str) -> httpx.Response:
    return httpx.post(
        server.token_url,
        data={"grant_type": DEVICE, "device_code": device_code, "client_id": "spa"},
    )


def test_device_grant_pending_slow_down_then_approved(spa: AuthServer) -> None:
    spa.configure(device_interval=1.0)
    device = _device(spa)
    assert device["interval"] == 1.0
    assert device["verification_uri"] == spa.url + "/device"
    assert device["verification_uri_complete"].endswith("user_code=" + device["user_code"])
    assert _poll(spa, device["device_code"]).json()["error"] == "authorization_pending"
    assert _poll(spa, device["device_code"]).json()["error"] == "slow_down"  # at once: too fast
    unknown = httpx.post(spa.url + "/device", data={"user_code": "BBBB-BBBB", "action": "approve"})
    assert unknown.status_code == 400
    assert spa.decide_device(device["user_code"])
    spa.configure(device_interval=0.0)  # (the grown interval stays with the device code)
    assert _poll(spa, device["device_code"]).json()["error"] == "slow_down"


def test_device_grant_denied_and_expired(spa: AuthServer) -> None:
    spa.configure(device_interval=0.0)
    device = _device(spa)
    answer = httpx.post(
        spa.url + "/device", data={"user_code": device["user_code"], "action": "deny"}
    )
    assert answer.status_code == 200
    assert _poll(spa, device["device_code"]).json()["error"] == "access_denied"
    assert _poll(spa, device["device_code"]).json()["error"] == "invalid_grant"  # gone
    spa.configure(device_code_ttl=0.05)
    device, issued = _device(spa), time.monotonic()
    wait_until(lambda: time.monotonic() > issued + 0.05, timeout=2)
    assert _poll(spa, device["device_code"]).json()["error"] == "expired_token"
    assert not spa.decide_device(device["user_code"])


def test_device_grant_approved_gives_a_refresh_token_once(spa: AuthServer) -> None:
    spa.configure(device_interval=0.0)
    device = _device(spa)
    assert spa.decide_device(device["user_code"].replace("-", "").lower())
    first = _poll(spa, device["device_code"]).json()
    assert first["refresh_token"].startswith("rt_")
    assert first["scope"] == "read"
    assert _poll(spa, device["device_code"]).json()["error"] == "invalid_grant"
