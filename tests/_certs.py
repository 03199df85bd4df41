"""A throwaway CA and a server certificate for 127.0.0.1, for TLS tests on loopback; the
mutual-TLS clients of the HTTPS test server (the `mtls_server` fixture) and their settings."""

from __future__ import annotations

from pathlib import Path

from freshtoken.testing import AuthServer
from freshtoken.testing._model import Client
from freshtoken.testing._tls import key_pem, make_certificate, pem, x5c_jwk

SELF_SIGNED = make_certificate("self-signed ci")
MTLS_CLIENTS = [
    Client("ca", None, auth_method="tls_client_auth", tls_client_auth_subject_dn="CN=ci-runner"),
    Client("ss", None, auth_method="self_signed_tls_client_auth", jwks=(x5c_jwk(SELF_SIGNED[0]),)),
]


def mtls_env(tmp_path: Path, server: AuthServer, **extra: str) -> dict[str, str]:
    """Settings of client `ca` with a new certificate of the server's CA, in files."""
    cert, key = server.issue_certificate("ci-runner")
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    (tmp_path / "key.pem").chmod(0o600)
    return {
        "FRESHTOKEN_TOKEN_URL": server.token_url,
        "FRESHTOKEN_CLIENT_ID": "ca",
        "FRESHTOKEN_AUTH_METHOD": "tls_client_auth",
        "FRESHTOKEN_CLIENT_CERT_FILE": str(tmp_path / "cert.pem"),
        "FRESHTOKEN_CLIENT_KEY_FILE": str(tmp_path / "key.pem"),
        **extra,
    }


def certificates(tmp: Path) -> tuple[Path, Path, Path]:
    ca = make_certificate("freshtoken test CA", ca=True, days=1)
    cert, key = make_certificate("127.0.0.1", ca, hosts=("127.0.0.1",), days=1)
    paths = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    paths[0].write_text(pem(ca[0]))
    paths[1].write_text(pem(cert))
    paths[2].write_text(key_pem(key))
    return paths
