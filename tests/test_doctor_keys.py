"""`freshtoken doctor` on keys and certificates (issue 25): what the server's discovery
document says it supports, where the configured method or algorithm is not among it (a warning
with a hint), and whether the token is bound to the client certificate (RFC 8705 §3)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from freshtoken import MemoryStore, Token, TokenBroker
from freshtoken.cli._doctor import run_checks
from freshtoken.cli._doctor_server import Check, Seen, learned
from freshtoken.config._settings import Settings
from freshtoken.testing import AuthServer
from freshtoken.testing._model import Client
from tests._certs import mtls_env

HMAC_SECRET = "a-client-secret-of-at-least-thirty-two-bytes"


@pytest.fixture
def environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean environment: doctor reads the process's own settings."""
    import os

    for name in list(os.environ):
        if name.startswith(("FRESHTOKEN_", "GITHUB_", "ACTIONS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return monkeypatch


def _doctor(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> list[Check]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return run_checks(None, 15.0)


def _titled(checks: list[Check], text: str) -> list[Check]:
    return [c for c in checks if text in c.title]


def _issuer_env(tmp_path: Path, server: AuthServer) -> dict[str, str]:
    env = mtls_env(tmp_path, server, FRESHTOKEN_ISSUER=server.issuer)
    del env["FRESHTOKEN_TOKEN_URL"]  # discovered, with the metadata doctor reads
    return env


def _thumbprint(tmp_path: Path) -> str:
    from freshtoken._secret import Secret
    from freshtoken.oauth._tls_auth import load_chain, x5t_s256

    cert = (tmp_path / "cert.pem").read_text()
    return x5t_s256(load_chain(Secret(cert), "cert")[0])


def test_doctor_says_the_token_is_bound_and_what_the_server_supports(
    environ: pytest.MonkeyPatch, mtls_server: AuthServer, tmp_path: Path
) -> None:
    checks = _doctor(environ, _issuer_env(tmp_path, mtls_server))
    assert not [c for c in checks if c.state in ("fail", "warn")], checks
    (methods,) = _titled(checks, "server supports client authentication:")
    assert "tls_client_auth" in methods.title and "private_key_jwt" in methods.title
    assert _titled(checks, "server binds access tokens to client certificates")
    (bound,) = _titled(checks, "the token is bound to the client certificate")
    assert f"cnf x5t#S256 {_thumbprint(tmp_path)}, from introspection" in bound.title


def test_an_unbound_answer_is_still_treated_as_bound(
    environ: pytest.MonkeyPatch, mtls_server: AuthServer, tmp_path: Path
) -> None:
    mtls_server.configure(bind_tokens=False)
    checks = _doctor(environ, _issuer_env(tmp_path, mtls_server))
    assert _titled(checks, "server does not bind access tokens to client certificates")
    (treated,) = _titled(checks, "the token is treated as bound")
    assert _thumbprint(tmp_path) in treated.title and treated.state == "info"


def test_a_bound_jwt_says_so_in_its_claims(mtls_server: AuthServer, tmp_path: Path) -> None:
    """A JWT access token's own `cnf` claim (RFC 8705 §3.1), without asking introspection;
    another certificate's thumbprint there is a warning."""
    broker = TokenBroker.from_settings(
        Settings.from_env(mtls_env(tmp_path, mtls_server)), store=MemoryStore()
    )
    settings, endpoints = Settings.from_env({}), broker.client.endpoints()

    def jwt(thumbprint: str) -> Token:
        claims = json.dumps({"sub": "ca", "cnf": {"x5t#S256": thumbprint}}).encode()
        body = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
        return Token(f"eyJhbGciOiJub25lIn0.{body}.", "Bearer", 2e9, 1e9)

    mine = _thumbprint(tmp_path)
    (said,) = _titled(learned(Seen(settings, endpoints, broker, jwt(mine))), "is bound to")
    assert said.title.startswith(
        f"the token is bound to the client certificate (cnf x5t#S256 {mine}, from its claims"
    )
    (other,) = _titled(learned(Seen(settings, endpoints, broker, jwt("A" * 43))), "is bound to")
    assert other.state == "warn" and "FRESHTOKEN_CLIENT_CERT_FILE" in other.fix
    assert mtls_server.stats()["introspections"] == 0


def test_a_method_the_server_does_not_list_is_a_warning_with_a_hint(
    tmp_path: Path, environ: pytest.MonkeyPatch
) -> None:
    """A server without mutual TLS lists no tls methods: doctor warns before the token
    request fails."""
    with AuthServer() as server:
        tls = AuthServer(tls=True)
        with tls:
            env = _issuer_env(tmp_path, tls)
        env["FRESHTOKEN_ISSUER"] = server.issuer
        checks = _doctor(environ, env)
    (warned,) = [c for c in checks if c.state == "warn"]
    assert "does not list tls_client_auth, the configured method" in warned.title
    assert "FRESHTOKEN_AUTH_METHOD" in warned.fix


def test_a_signing_algorithm_the_server_does_not_list_is_a_warning(
    environ: pytest.MonkeyPatch,
) -> None:
    clients = [Client("hmac", HMAC_SECRET, auth_method="client_secret_jwt")]
    with AuthServer(clients=clients) as server:
        server.configure(assertion_algs="HS256")
        env = {
            "FRESHTOKEN_ISSUER": server.issuer,
            "FRESHTOKEN_CLIENT_ID": "hmac",
            "FRESHTOKEN_CLIENT_SECRET": HMAC_SECRET,
            "FRESHTOKEN_AUTH_METHOD": "client_secret_jwt",
            "FRESHTOKEN_SIGNING_ALG": "HS512",
        }
        checks = _doctor(environ, env)
    assert _titled(checks, "server takes assertions signed with: HS256")
    (warned,) = [c for c in checks if c.state == "warn"]
    assert "does not list HS512, the configured signing algorithm" in warned.title
    assert "FRESHTOKEN_SIGNING_ALG" in warned.fix


def test_what_doctor_says_without_the_servers_metadata(environ: pytest.MonkeyPatch) -> None:
    quiet = "token_endpoint_auth_methods_supported,grant_types_supported,"
    quiet += "token_endpoint_auth_signing_alg_values_supported"
    with AuthServer(metadata_omit=quiet) as server:
        base = {"FRESHTOKEN_CLIENT_ID": "demo-client", "FRESHTOKEN_CLIENT_SECRET": "demo-secret"}
        found = _doctor(environ, {**base, "FRESHTOKEN_ISSUER": server.issuer})
        environ.delenv("FRESHTOKEN_ISSUER")
        direct = _doctor(environ, {**base, "FRESHTOKEN_TOKEN_URL": server.token_url})
    assert _titled(found, "server metadata: the discovery document says nothing of the methods")
    assert _titled(direct, "server metadata: no discovery document read")
    assert not [c for c in found + direct if c.state in ("fail", "warn")]
