"""The test server's mutual TLS (RFC 8705): certificates made with `cryptography`, the HTTPS
listener's context (it asks every client for a certificate and verifies what it gets), and the
checks of tls_client_auth (§2.1: a certificate of a trusted CA, its subject DN as registered)
and self_signed_tls_client_auth (§2.2: the certificate in the client's registered JWKS, `x5c`).

The handler hands the verified peer certificate to the OAuth logic in a request header of its
own (`PEER_CERT`), set from the connection and never from the client, as a TLS-terminating
proxy does for Keycloak or Spring.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import ssl
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from freshtoken.testing._model import Client

PEER_CERT = "X-Freshtoken-Peer-Certificate"  # base64 DER; set by the handler only
#: Where the OAuth endpoints' RFC 8705 §5 aliases are (below the mount), as metadata names them.
MTLS_ALIAS = "/mtls"
TLS_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")
_DAY = datetime.timedelta(days=1)


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: Any) -> str:
    data: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return data.decode()


def make_certificate(
    common_name: str,
    issuer: tuple[x509.Certificate, Any] | None = None,
    *,
    key: Any = None,
    ca: bool = False,
    hosts: tuple[str, ...] = (),
    days: float = 30.0,
) -> tuple[x509.Certificate, Any]:
    """A certificate for `common_name` and its key (EC P-256 unless `key` is given), signed by
    `issuer` (a certificate and key) or by itself."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer_name, signer_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    if hosts:
        names = [_general_name(host) for host in hosts]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    return builder.sign(signer_key, hashes.SHA256()), key


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def x5c_jwk(certificate: x509.Certificate) -> dict[str, Any]:
    """A JWK that registers a self-signed certificate (RFC 8705 §2.2, RFC 7517 §4.7 `x5c`)."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return {"kty": "EC", "use": "sig", "x5c": [base64.b64encode(der).decode()]}


def x5t_s256(der: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def registered_certificates(client: Client) -> list[bytes]:
    """The DER certificates of a client's JWKS (`x5c`, the certificate itself first)."""
    found = []
    for jwk in client.jwks:
        chain = jwk.get("x5c") or []
        if chain:
            try:
                found.append(base64.b64decode(str(chain[0]), validate=True))
            except (binascii.Error, ValueError):
                continue
    return found


def peer_certificate(headers: Any) -> bytes | None:
    value = headers.get(PEER_CERT) or ""
    return base64.b64decode(value) if value else None


def tls_refusal(client: Client, peer: bytes | None) -> str | None:
    """Why the peer certificate does not prove `client` (None: it does). The TLS layer has
    already verified it: a trusted CA's, or a registered self-signed one."""
    if peer is None:
        return f"{client.auth_method} needs a client certificate in the TLS handshake"
    if client.auth_method == "self_signed_tls_client_auth":
        if peer in registered_certificates(client):
            return None
        return "the client certificate is not one registered in the client's JWKS (x5c)"
    subject = x509.load_der_x509_certificate(peer).subject.rfc4514_string()
    if subject == client.tls_client_auth_subject_dn:
        return None
    return f"the client certificate's subject {subject} is not the registered subject DN"


class ServerTls:
    """The HTTPS side of the test server: a CA of its own, which signs the server's
    certificate (127.0.0.1, ::1, localhost) and the certificates `issue` gives clients."""

    def __init__(self) -> None:
        self.ca, self._ca_key = make_certificate("freshtoken test CA", ca=True)
        cert, key = make_certificate(
            "freshtoken test server",
            (self.ca, self._ca_key),
            hosts=("127.0.0.1", "::1", "localhost"),
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.verify_mode = ssl.CERT_OPTIONAL  # a client without one is not mTLS
        self.context.load_verify_locations(cadata=pem(self.ca))
        # load_cert_chain reads files only: the throw-away key goes through one, removed at once.
        with tempfile.TemporaryDirectory(prefix="freshtoken-testserver-") as folder:
            path = Path(folder) / "server.pem"
            path.write_text(pem(cert) + key_pem(key))
            self.context.load_cert_chain(path)

    @property
    def ca_pem(self) -> str:
        """The CA clients must trust (SSL_CERT_FILE), and the issuer of `issue`'s certificates."""
        return pem(self.ca)

    def issue(self, common_name: str, key: Any = None) -> tuple[str, str]:
        """A client certificate from this server's CA (tls_client_auth): PEM certificate and
        key; its subject DN is `CN=<common_name>`."""
        cert, key = make_certificate(common_name, (self.ca, self._ca_key), key=key)
        return pem(cert), key_pem(key)

    def trust(self, client: Client) -> None:
        """Accept `client`'s registered self-signed certificates in the handshake."""
        for der in registered_certificates(client):
            self.context.load_verify_locations(cadata=der)
