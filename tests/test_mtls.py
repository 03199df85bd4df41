"""Mutual-TLS client authentication and certificate-bound tokens (RFC 8705; issue 25, second
step), against the shipped test server's HTTPS listener, which asks every client for a
certificate, verifies it (its CA's, or a registered self-signed one), checks the client's
registration and binds the tokens it issues to the certificate (`cnf.x5t#S256`)."""

from __future__ import annotations

import logging
import ssl
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from freshtoken import ClientCredentials, Endpoints, MemoryStore, TokenBroker, TokenClient
from freshtoken._errors import ConfigurationError, OAuthError
from freshtoken._secret import Secret
from freshtoken.config._settings import Settings
from freshtoken.local._server import LocalServer
from freshtoken.oauth._jws import load_key
from freshtoken.oauth._tls_auth import ClientCertificate, TlsClientAuth, load_chain
from freshtoken.testing import AuthServer
from freshtoken.testing._tls import PEER_CERT, key_pem, make_certificate, pem
from tests._certs import SELF_SIGNED
from tests._certs import mtls_env as _env
from tests._cli import cli_env, ft
from tests.helpers import assert_no_leak


@pytest.fixture
def server(mtls_server: AuthServer) -> AuthServer:
    return mtls_server


def _auth(client_id: str, cert: str, key: str, method: str = "tls_client_auth") -> TlsClientAuth:
    chain = load_chain(Secret(cert), "FRESHTOKEN_CLIENT_CERT")
    return TlsClientAuth(
        client_id, ClientCertificate(chain, load_key(Secret(key), None, "k")), method
    )


def _self_signed() -> TlsClientAuth:
    cert, key = SELF_SIGNED
    return _auth("ss", pem(cert), key_pem(key), "self_signed_tls_client_auth")


def _client(server: AuthServer, auth: Any) -> TokenClient:
    return TokenClient(auth, endpoints=Endpoints(server.token_url, issuer=server.issuer))


def _api(server: AuthServer, token: str, tls: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if tls is None:
        return httpx.get(server.url + "/api/echo", headers=headers)
    return httpx.get(server.url + "/api/echo", headers=headers, verify=tls)


def test_tls_client_auth_mints_a_token_bound_to_the_certificate(server: AuthServer) -> None:
    auth = _auth("ca", *server.issue_certificate("ci-runner"))
    client = _client(server, auth)
    token = client.fetch(ClientCredentials()).access_token
    # RFC 8705 §3: the API takes the token only over a connection with the same certificate.
    assert _api(server, token).status_code == 401
    answer = _api(server, token, client.tls)
    assert answer.status_code == 200
    assert answer.json()["cnf"] == {"x5t#S256": auth.certificate.thumbprint}
    other = _auth("ca", *server.issue_certificate("ci-runner"))  # same subject, another cert
    assert _api(server, token, _client(server, other).tls).status_code == 401
    assert server.stats()["minted"]["ca"]["client_credentials"] == 1
    assert server.token_requests()[-1]["form"]["client_id"] == "ca"


def test_self_signed_tls_client_auth_mints_a_token(server: AuthServer) -> None:
    client = _client(server, _self_signed())
    token = client.fetch(ClientCredentials()).access_token
    assert _api(server, token, client.tls).json()["id"] == "ss"
    meta = httpx.get(server.issuer + "/.well-known/oauth-authorization-server").json()
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(
        meta["token_endpoint_auth_methods_supported"]
    )
    assert meta["tls_client_certificate_bound_access_tokens"] is True


def test_a_certificate_that_does_not_prove_the_client_is_refused(server: AuthServer) -> None:
    wrong_subject = _auth("ca", *server.issue_certificate("someone-else"))
    with pytest.raises(OAuthError, match="CN=someone-else is not the registered subject"):
        _client(server, wrong_subject).fetch(ClientCredentials())
    # A certificate the TLS layer trusts, yet not the one this client registered.
    not_registered = _auth("ss", *server.issue_certificate("ci-runner"))
    with pytest.raises(OAuthError, match="not one registered in the client's JWKS"):
        _client(server, not_registered).fetch(ClientCredentials())
    no_certificate = httpx.post(
        server.token_url, data={"grant_type": "client_credentials", "client_id": "ca"}
    )
    assert no_certificate.status_code == 401
    assert "needs a client certificate" in no_certificate.json()["error_description"]


def test_a_client_cannot_claim_a_certificate_in_a_header(server: AuthServer) -> None:
    """The test server takes the certificate from the connection only."""
    import base64

    from cryptography.hazmat.primitives import serialization

    der = SELF_SIGNED[0].public_bytes(serialization.Encoding.DER)
    answer = httpx.post(
        server.token_url,
        data={"grant_type": "client_credentials", "client_id": "ss"},
        headers={PEER_CERT: base64.b64encode(der).decode()},
    )
    assert answer.status_code == 401


def test_unbound_tokens_and_tokens_without_a_certificate(server: AuthServer) -> None:
    server.configure(bind_tokens=False)
    client = _client(server, _self_signed())
    token = client.fetch(ClientCredentials()).access_token
    assert _api(server, token).status_code == 200  # not bound: any caller may use it


def test_a_key_that_is_not_the_certificates_is_a_clear_error(server: AuthServer) -> None:
    cert, _ = server.issue_certificate("ci-runner")
    other = key_pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigurationError, match="not the key of the client certificate") as e:
        _auth("ca", cert, other)
    assert "x5t#S256" in str(e.value) and "FRESHTOKEN_CLIENT_KEY_FILE" in str(e.value.hint)
    with pytest.raises(ConfigurationError, match="holds no PEM certificate"):
        load_chain(Secret(other), "FRESHTOKEN_CLIENT_CERT_FILE")


def test_the_key_passes_through_no_plain_file(
    server: AuthServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """OpenSSL reads keys from files: the one written is encrypted, and removed at once."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    read: list[str] = []

    class Spy(ssl.SSLContext):
        def load_cert_chain(self, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
            read.append(Path(certfile).read_text())
            super().load_cert_chain(certfile, keyfile, password)

    monkeypatch.setattr(httpx, "create_ssl_context", lambda **_: Spy(ssl.PROTOCOL_TLS_CLIENT))
    cert, key = server.issue_certificate("ci-runner")
    _auth("ca", cert, key).certificate.ssl_context()
    assert list(folder.iterdir()) == []  # gone
    assert len(read) == 1 and "ENCRYPTED PRIVATE KEY" in read[0]
    body = "".join(key.splitlines()[1:-1])
    assert body[:40] not in read[0] and "CERTIFICATE" in read[0]


def test_settings_and_a_renewed_certificate_changes_the_cache_key(
    server: AuthServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="freshtoken")
    store = MemoryStore()
    env = _env(tmp_path, server)
    key_body = "".join((tmp_path / "key.pem").read_text().splitlines()[1:-1])
    first = TokenBroker.from_settings(Settings.from_env(env), store=store)
    token = first.token().access_token
    assert TokenBroker.from_settings(Settings.from_env(env), store=store).token().access_token == (
        token
    )
    env = _env(tmp_path, server)  # a renewed certificate (and key): its tokens are bound anew
    second = TokenBroker.from_settings(Settings.from_env(env), store=store)
    assert second.key != first.key
    assert second.token().access_token != token
    for text in (caplog.text, repr(second), repr(second.client.auth)):
        assert_no_leak("the client key", text, key_body[:60])
    missing = {**env, "FRESHTOKEN_CLIENT_CERT_FILE": ""}
    del missing["FRESHTOKEN_CLIENT_CERT_FILE"]
    with pytest.raises(ConfigurationError, match="needs the client certificate"):
        TokenBroker.from_settings(Settings.from_env(missing), store=store)


def test_the_proxy_presents_the_certificate_and_the_endpoint_hands_out_no_bound_token(
    server: AuthServer, tmp_path: Path
) -> None:
    broker = TokenBroker.from_settings(
        Settings.from_env(_env(tmp_path, server)), store=MemoryStore()
    )
    with LocalServer(broker, upstream=server.url) as local:
        key = {"X-Freshtoken-Key": local.key}
        assert local.proxy_url
        answer = httpx.get(local.proxy_url + "/api/echo", headers=key)
        assert answer.status_code == 200, answer.text
        assert answer.json()["cnf"]["x5t#S256"] == broker.client.auth.certificate.thumbprint  # type: ignore[attr-defined]
        refused = httpx.get(local.url + "/token", headers=key)
        assert refused.status_code == 403
        assert refused.json()["error"] == "certificate_bound"
        assert "access_token" not in refused.text and "proxy" in refused.json()["hint"]


@pytest.mark.slow
def test_cli_token_and_doctor_with_a_certificate(server: AuthServer, tmp_path: Path) -> None:
    env = cli_env(tmp_path, SSL_CERT_FILE=str(tmp_path / "ca.pem"), **_env(tmp_path, server))
    out = ft(["token"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("at_")
    doctor = ft(["doctor"], env, tmp_path)
    thumb = _auth("ca", (tmp_path / "cert.pem").read_text(), (tmp_path / "key.pem").read_text())
    assert (
        f"tls_client_auth: certificate CN=ci-runner, x5t#S256 {thumb.certificate.thumbprint}"
        in (doctor.stdout)
    )
    assert "expires" in doctor.stdout
    body = "".join((tmp_path / "key.pem").read_text().splitlines()[1:-1])
    assert body[:60] not in out.stdout  # the token is there: the command's answer
    for text in (out.stderr, doctor.stdout, doctor.stderr):
        assert_no_leak("the command line", text, body[:60])


def test_private_key_jwt_names_its_certificate_as_entra_id_finds_it(tmp_path: Path) -> None:
    """With client_cert beside private_key_jwt's key, the assertion's header carries the
    certificate's thumbprints (x5t: SHA-1, x5t#S256), computed here from the DER."""
    import base64
    import hashlib
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from freshtoken import _build

    key = rsa.generate_private_key(65537, 2048)
    cert, _ = make_certificate("ci-app", key=key)
    (tmp_path / "key.pem").write_text(key_pem(key))
    (tmp_path / "cert.pem").write_text(pem(cert))
    env = {
        "FRESHTOKEN_TOKEN_URL": "https://login.example.com/tenant/oauth2/v2.0/token",
        "FRESHTOKEN_CLIENT_ID": "ci-app",
        "FRESHTOKEN_AUTH_METHOD": "private_key_jwt",
        "FRESHTOKEN_SIGNING_ALG": "PS256",
        "FRESHTOKEN_CLIENT_KEY_FILE": str(tmp_path / "key.pem"),
        "FRESHTOKEN_CLIENT_CERT_FILE": str(tmp_path / "cert.pem"),
    }
    settings = Settings.from_env(env)
    auth = _build.client_auth(settings)
    form: dict[str, str] = {}
    auth.apply({}, form, _build.endpoints(settings))
    head = form["client_assertion"].split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    der = cert.public_bytes(serialization.Encoding.DER)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    assert header["alg"] == "PS256"
    assert header["x5t#S256"] == b64(hashlib.sha256(der).digest())
    assert header["x5t"] == b64(hashlib.sha1(der).digest())
    assert "x5t#S256" in auth.describe()  # type: ignore[attr-defined]
    other, _ = make_certificate("someone")
    (tmp_path / "cert.pem").write_text(pem(other))
    with pytest.raises(ConfigurationError, match="not the key of the client certificate"):
        _build.client_auth(Settings.from_env(env))


@pytest.mark.slow
def test_the_testserver_command_serves_mutual_tls_and_github_oidc(tmp_path: Path) -> None:
    """`freshtoken testserver --tls DIR --github-oidc ID:AUD`: a step of another language can
    test against mutual TLS and workload identity too."""
    import json
    import subprocess
    import sys

    argv = ["--tls", str(tmp_path / "tls"), "--client", "ci:tls=ci-runner", "--client", "wi:"]
    argv += ["--github-oidc", "wi:freshtoken-test"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "freshtoken", "testserver", *argv], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        tls = tmp_path / "tls"
        assert ready["url"].startswith("https://") and ready["ca_file"] == str(tls / "ca.pem")
        assert (tls / "ci.key").stat().st_mode & 0o077 == 0
        base = cli_env(
            tmp_path, SSL_CERT_FILE=ready["ca_file"], FRESHTOKEN_TOKEN_URL=ready["token_url"]
        )
        mtls_env = {
            "FRESHTOKEN_CLIENT_ID": "ci",
            "FRESHTOKEN_AUTH_METHOD": "tls_client_auth",
            "FRESHTOKEN_CLIENT_CERT_FILE": str(tls / "ci.crt"),
            "FRESHTOKEN_CLIENT_KEY_FILE": str(tls / "ci.key"),
        }
        mtls = ft(["token"], {**base, **mtls_env}, tmp_path)
        assert mtls.returncode == 0, mtls.stderr
        exchange_env = {
            **{k: v for k, v in ready.items() if k.startswith("ACTIONS_ID_TOKEN_REQUEST_")},
            "FRESHTOKEN_CLIENT_ID": "wi",
            "FRESHTOKEN_AUTH_METHOD": "none",
            "FRESHTOKEN_GRANT": "token_exchange",
            "FRESHTOKEN_SUBJECT_TOKEN": "github-actions:freshtoken-test",
        }
        exchange = ft(["token"], {**base, **exchange_env}, tmp_path)
        assert exchange.returncode == 0, exchange.stderr
        assert mtls.stdout.startswith("at_") and exchange.stdout.startswith("at_")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_discovery_takes_the_mtls_endpoint_aliases(server: AuthServer, tmp_path: Path) -> None:
    """RFC 8705 §5: a client using mutual TLS calls the metadata's `mtls_endpoint_aliases`;
    this server's plain endpoints then take no certificate (`mtls_aliases_only`)."""
    from freshtoken import PublicClient

    server.configure(mtls_aliases_only=True)
    env = _env(tmp_path, server, FRESHTOKEN_ISSUER=server.issuer)
    del env["FRESHTOKEN_TOKEN_URL"]
    broker = TokenBroker.from_settings(Settings.from_env(env), store=MemoryStore())
    token = broker.token()
    endpoints = broker.client.endpoints()
    assert endpoints.token_url == server.issuer + "/mtls/oauth/token"
    assert endpoints.introspection_url == server.issuer + "/mtls/oauth/introspect"
    assert endpoints.revocation_url == server.issuer + "/mtls/oauth/revoke"
    assert "mtls_endpoint_aliases in https://" in str(endpoints.source("token_url"))
    assert broker.client.introspect(token.access_token, "access_token") is True
    # Without mutual TLS, the plain endpoints.
    plain = TokenClient(PublicClient("ss"), issuer=server.issuer).endpoints()
    assert plain.token_url == server.token_url
    # The plain token endpoint set by hand: no certificate reaches it here.
    pinned = TokenBroker.from_settings(
        Settings.from_env(_env(tmp_path, server)), store=MemoryStore()
    )
    with pytest.raises(OAuthError, match="needs a client certificate"):
        pinned.token()
