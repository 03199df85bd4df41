"""private_key_jwt and client_secret_jwt (issue 25, first step), against the shipped test
server, which checks every assertion for real (signature against the registered JWKS or the
secret, aud, exp, jti replay) with code of its own (testing/_client_auth.py)."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from freshtoken import ClientCredentials, Endpoints, MemoryStore, TokenBroker, TokenClient
from freshtoken._errors import ConfigurationError, OAuthError
from freshtoken._secret import Secret
from freshtoken.broker._key import settings_key
from freshtoken.config._settings import Settings
from freshtoken.oauth._jws import load_key
from freshtoken.oauth._jwt_auth import ClientSecretJwt, PrivateKeyJwt
from freshtoken.testing import AuthServer, FakeClock
from freshtoken.testing._model import Client
from tests._cli import cli_env, ft
from tests.helpers import CANARY_SECRET, assert_no_leak

HMAC_SECRET = "jwt-shared-secret-0c9a"
RSA_KEY = rsa.generate_private_key(65537, 2048)
KEYS: dict[str, Any] = {
    "rsa": RSA_KEY,
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
    "p521": ec.generate_private_key(ec.SECP521R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
}
CASES = [
    ("rsa", "RS256"),
    ("rsa", "RS384"),
    ("rsa", "PS256"),
    ("rsa", "PS512"),
    ("p256", "ES256"),
    ("p384", "ES384"),
    ("p521", "ES512"),
    ("ed25519", "EdDSA"),
]


def _pem(key: Any, passphrase: str | None = None) -> str:
    crypt = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, crypt
    )
    return pem.decode()


def _server(*keys: Any, **knobs: Any) -> AuthServer:
    jwks = tuple(PrivateKeyJwt("x", k).jwk for k in keys)
    return AuthServer(
        clients=[
            Client("keyed", None, jwks=jwks, auth_method="private_key_jwt"),
            Client("hmac", HMAC_SECRET, auth_method="client_secret_jwt"),
        ],
        **knobs,
    )


def _client(server: AuthServer, auth: Any) -> TokenClient:
    return TokenClient(auth, endpoints=Endpoints(server.token_url, issuer=server.issuer))


def _refusal(server: AuthServer, auth: Any) -> str:
    with pytest.raises(OAuthError) as caught:
        _client(server, auth).fetch(ClientCredentials())
    return str(caught.value)


@pytest.mark.parametrize(("key", "alg"), CASES)
def test_each_key_algorithm_mints_a_token(key: str, alg: str) -> None:
    with _server(KEYS[key]) as server:
        token = _client(server, PrivateKeyJwt("keyed", KEYS[key], alg=alg)).fetch(
            ClientCredentials()
        )
        assert token.access_token.startswith("at_")
        assert server.token_requests()[-1]["auth_method"] == "private_key_jwt"


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_client_secret_jwt_mints_a_token(alg: str) -> None:
    with _server() as server:
        auth = ClientSecretJwt("hmac", Secret(HMAC_SECRET), alg=alg)
        assert _client(server, auth).fetch(ClientCredentials()).access_token
        assert server.token_requests()[-1]["auth_method"] == "client_secret_jwt"
        wrong = ClientSecretJwt("hmac", Secret("not-the-secret"), alg=alg)
        assert "signature does not verify" in _refusal(server, wrong)


def _parts(auth: Any, endpoints: Endpoints) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    form: dict[str, str] = {}
    auth.apply({}, form, endpoints)
    head, body, sig = form["client_assertion"].split(".")

    def unb64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    return json.loads(unb64(head)), json.loads(unb64(body)), unb64(sig)


def test_assertion_claims_and_raw_ecdsa_signature() -> None:
    endpoints = Endpoints("https://idp.example/oauth/token", issuer="https://idp.example")
    auth = PrivateKeyJwt("keyed", KEYS["p256"])
    header, claims, sig = _parts(auth, endpoints)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": auth.thumbprint}
    assert claims["iss"] == claims["sub"] == "keyed"
    assert claims["aud"] == "https://idp.example/oauth/token"
    assert 0 < claims["exp"] - time.time() <= 61
    assert len(sig) == 64  # RFC 7518 §3.4: r||s, 32 bytes each, not DER
    assert _parts(auth, endpoints)[1]["jti"] != claims["jti"]
    assert _parts(PrivateKeyJwt("k", RSA_KEY, audience="issuer"), endpoints)[1]["aud"] == (
        "https://idp.example"
    )
    assert _parts(PrivateKeyJwt("k", RSA_KEY, key_id="ci-1"), endpoints)[0]["kid"] == "ci-1"


def test_rfc7638_thumbprint_example() -> None:
    # RFC 7638 §3.1's example key and its thumbprint.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qv"
        "zqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZ"
        "u0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    from freshtoken.oauth._jws import thumbprint

    assert thumbprint({"e": "AQAB", "kty": "RSA", "n": n}) == (
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    )


def test_ecdsa_der_signature_is_refused() -> None:
    """The server wants r||s: the DER cryptography produces is not a JWS signature."""
    key = KEYS["p256"]
    with _server(key) as server:
        endpoints = Endpoints(server.token_url)
        form: dict[str, str] = {}
        PrivateKeyJwt("keyed", key).apply({}, form, endpoints)
        head, body, _ = form["client_assertion"].split(".")
        der = key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        form["client_assertion"] = f"{head}.{body}." + base64.urlsafe_b64encode(der).decode()
        answer = httpx.post(server.token_url, data={**form, "grant_type": "client_credentials"})
        assert answer.status_code == 401
        assert "does not verify" in answer.json()["error_description"]


def test_wrong_key_wrong_aud_expired_are_refused() -> None:
    with _server(KEYS["p256"]) as server:
        other = PrivateKeyJwt("keyed", ec.generate_private_key(ec.SECP256R1()))
        assert "signature does not verify with the registered key" in _refusal(server, other)
        assert "invalid_client" in _refusal(server, other)
        away = PrivateKeyJwt("keyed", KEYS["p256"], audience="https://elsewhere.example/token")
        assert "aud must be" in _refusal(server, away)
        past = FakeClock(time.time() - 600)
        assert "expired" in _refusal(server, PrivateKeyJwt("keyed", KEYS["p256"], clock=past))


def test_replayed_jti_is_refused_and_the_window_knob() -> None:
    with _server(KEYS["ed25519"]) as server:
        form = {"grant_type": "client_credentials"}
        PrivateKeyJwt("keyed", KEYS["ed25519"]).apply({}, form, Endpoints(server.token_url))
        assert httpx.post(server.token_url, data=form).status_code == 200
        again = httpx.post(server.token_url, data=form)
        assert again.status_code == 401
        assert "replayed" in again.json()["error_description"]
        server.configure(check_jti=False)
        assert httpx.post(server.token_url, data=form).status_code == 200


def test_audience_and_algorithm_knobs() -> None:
    with _server(RSA_KEY, assertion_audience="issuer", assertion_algs="PS256") as server:
        assert "aud must be " + server.issuer in _refusal(
            server, PrivateKeyJwt("keyed", RSA_KEY, alg="PS256")
        )
        assert "RS256 is not accepted" in _refusal(
            server, PrivateKeyJwt("keyed", RSA_KEY, audience="issuer")
        )
        auth = PrivateKeyJwt("keyed", RSA_KEY, alg="PS256", audience="issuer")
        assert _client(server, auth).fetch(ClientCredentials()).access_token


def _settings(tmp_path: Path, server: AuthServer, **extra: str) -> Settings:
    env = {
        "FRESHTOKEN_TOKEN_URL": server.token_url,
        "FRESHTOKEN_CLIENT_ID": "keyed",
        "FRESHTOKEN_AUTH_METHOD": "private_key_jwt",
        "FRESHTOKEN_CLIENT_KEY_FILE": str(tmp_path / "key.pem"),
        **extra,
    }
    return Settings.from_env(env)


def test_rotating_the_key_file_changes_the_cache_key(tmp_path: Path) -> None:
    new_key = ec.generate_private_key(ec.SECP256R1())
    with _server(KEYS["p256"], new_key) as server:
        (tmp_path / "key.pem").write_text(_pem(KEYS["p256"]))
        (tmp_path / "key.pem").chmod(0o600)
        store = MemoryStore()
        first = TokenBroker.from_settings(_settings(tmp_path, server), store=store)
        token = first.token()
        assert TokenBroker.from_settings(_settings(tmp_path, server), store=store).key == first.key
        (tmp_path / "key.pem").write_text(_pem(new_key))
        second = TokenBroker.from_settings(_settings(tmp_path, server), store=store)
        assert second.key != first.key
        assert second.token().access_token != token.access_token
        assert server.stats()["minted"]["keyed"]["client_credentials"] == 2
        pepper = b"p" * 32
        assert PrivateKeyJwt("k", new_key).thumbprint not in settings_key(
            _settings(tmp_path, server), pepper
        )


def test_key_and_passphrase_never_shown(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pem = _pem(KEYS["p256"], CANARY_SECRET)
    body = "".join(pem.splitlines()[1:-1])
    with _server(KEYS["p256"]) as server:
        (tmp_path / "key.pem").write_text(pem)
        (tmp_path / "pass").write_text(CANARY_SECRET)
        for path in (tmp_path / "key.pem", tmp_path / "pass"):
            path.chmod(0o600)
        caplog.set_level(logging.DEBUG, logger="freshtoken")
        settings = _settings(
            tmp_path, server, FRESHTOKEN_CLIENT_KEY_PASSPHRASE_FILE=str(tmp_path / "pass")
        )
        broker = TokenBroker.from_settings(settings, store=MemoryStore())
        assert broker.token().access_token
        shown = [repr(settings), repr(broker), repr(broker.client.auth), caplog.text]
        for wrong in ("wrong-passphrase", None):
            try:
                load_key(Secret(pem), Secret(wrong) if wrong else None, "FRESHTOKEN_CLIENT_KEY")
            except ConfigurationError as exc:
                shown.append(str(exc) + repr(exc))
        try:
            load_key(Secret(pem.replace("A", "B", 3)), Secret(CANARY_SECRET), "x")
        except ConfigurationError as exc:
            shown.append(str(exc))
        assert "passphrase" in shown[-1]
        for text in shown:
            assert_no_leak("key material", text, body, body[40:80], pem.splitlines()[1])


@pytest.mark.slow
def test_cli_token_and_doctor_with_a_key_file(tmp_path: Path) -> None:
    key = KEYS["p256"]
    with _server(key) as server:
        (tmp_path / "key.pem").write_text(_pem(key))
        (tmp_path / "key.pem").chmod(0o600)
        env = cli_env(
            tmp_path,
            FRESHTOKEN_TOKEN_URL=server.token_url,
            FRESHTOKEN_CLIENT_ID="keyed",
            FRESHTOKEN_AUTH_METHOD="private_key_jwt",
            FRESHTOKEN_CLIENT_KEY_FILE=str(tmp_path / "key.pem"),
        )
        out = ft(["token"], env, tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().startswith("at_")
        assert server.stats()["minted"]["keyed"]["client_credentials"] == 1
        doctor = ft(["doctor"], env, tmp_path)
        thumb = PrivateKeyJwt("keyed", key).thumbprint
        assert f"private_key_jwt: ES256 key, JWK thumbprint {thumb}" in doctor.stdout
        body = "".join(_pem(key).splitlines()[1:-1])
        assert body[:60] not in out.stdout  # the token is: the command's answer
        for text in (out.stderr, doctor.stdout, doctor.stderr):
            assert_no_leak("the command line", text, body[:60])
        # A key the server does not have registered: an error naming the key by its thumbprint.
        unregistered = ec.generate_private_key(ec.SECP256R1())
        (tmp_path / "key.pem").write_text(_pem(unregistered))
        wrong = ft(["token"], env, tmp_path)
        other = PrivateKeyJwt("keyed", unregistered).thumbprint
        assert wrong.returncode == 3, wrong.stderr
        assert f"JWK thumbprint {other}" in wrong.stderr
        assert "has this credential registered" in wrong.stderr
        assert "Traceback" not in wrong.stderr and wrong.stdout == ""


def test_testserver_registers_a_client_by_its_jwks(tmp_path: Path) -> None:
    import click

    from freshtoken.testing._command import _client_spec

    jwk = PrivateKeyJwt("ci", KEYS["ed25519"]).jwk
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    client = _client_spec(f"ci:jwks=@{tmp_path / 'jwks.json'}")
    assert (client.jwks, client.auth_method, client.secret) == ((jwk,), "private_key_jwt", None)
    with _server() as server:
        server.register(client)
        auth = PrivateKeyJwt("ci", KEYS["ed25519"])
        assert _client(server, auth).fetch(ClientCredentials()).access_token
        form: dict[str, str] = {"client_id": "ci"}  # no proof: not a public client
        assert (
            httpx.post(
                server.token_url, data={**form, "grant_type": "client_credentials"}
            ).status_code
            == 401
        )
    with pytest.raises(click.BadParameter, match="no JWKS"):
        _client_spec(f"ci:jwks=@{tmp_path / 'missing.json'}")
