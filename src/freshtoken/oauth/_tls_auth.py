"""Mutual-TLS client authentication (RFC 8705 §2): `tls_client_auth` (a certificate a CA
issued; the server matches its subject) and `self_signed_tls_client_auth` (a certificate
registered as it is). The client proves itself in the TLS handshake; the form only names it.

A server may bind the access tokens it issues to the certificate (RFC 8705 §3: `cnf` with
`x5t#S256`, the certificate's SHA-256 thumbprint): such a token is accepted only over a
connection that presents the same certificate, so whatever sends it needs `ssl_context()`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from freshtoken._errors import ConfigurationError
from freshtoken._secret import Secret
from freshtoken.oauth._jws import SigningKey, b64url

if TYPE_CHECKING:
    import ssl

    from freshtoken.provider._endpoints import Endpoints

TLS_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")


def x5t_s256(certificate: x509.Certificate) -> str:
    """RFC 8705 §3.1: base64url of the SHA-256 of the DER certificate, as `cnf` names it."""
    return b64url(hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest())


def load_chain(pem: Secret, setting: str) -> tuple[x509.Certificate, ...]:
    """The certificates of a PEM, the client's own first; errors name the setting."""
    try:
        chain = tuple(x509.load_pem_x509_certificates(pem.reveal().encode()))
    except ValueError:
        chain = ()
    if not chain:
        raise ConfigurationError(
            f"the client certificate ({setting}) holds no PEM certificate",
            hint="Give the PEM certificate (-----BEGIN CERTIFICATE-----), the client's own "
            "first, then any intermediates.",
        )
    return chain


@dataclass(frozen=True, slots=True, repr=False)
class ClientCertificate:
    """A certificate (with its chain) and its private key, which must match."""

    chain: tuple[x509.Certificate, ...]
    key: SigningKey

    def __post_init__(self) -> None:
        leaf = (
            self.chain[0]
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        mine = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if leaf != mine:
            raise ConfigurationError(
                f"the client key is not the key of the client certificate (x5t#S256 "
                f"{self.thumbprint})",
                hint="Set FRESHTOKEN_CLIENT_KEY_FILE to the private key the certificate in "
                "FRESHTOKEN_CLIENT_CERT_FILE was issued for.",
            )

    @property
    def thumbprint(self) -> str:
        return x5t_s256(self.chain[0])

    def jws_header(self) -> dict[str, str]:
        """The certificate's thumbprints as a JWS header names them (RFC 7515 §4.1.7-8): how
        Entra ID finds the certificate of a private_key_jwt assertion (x5t#S256 with PS256,
        x5t, SHA-1, with RS256)."""
        der = self.chain[0].public_bytes(serialization.Encoding.DER)
        # SHA-1 names the certificate here, as RFC 7515 defines x5t; it protects nothing.
        sha1 = hashlib.sha1(der, usedforsecurity=False).digest()
        return {"x5t": b64url(sha1), "x5t#S256": self.thumbprint}

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies servers as httpx does (SSL_CERT_FILE, SSL_CERT_DIR,
        else certifi) and presents this certificate."""
        import httpx  # only when a connection is made: the command line's peek needs none

        context = httpx.create_ssl_context(trust_env=True)
        # OpenSSL reads a key from a file only. The file holds the key encrypted under a
        # one-time password kept in memory, in a private directory, and is gone at once.
        password = secrets.token_hex(32).encode()
        crypt = serialization.BestAvailableEncryption(password)
        data = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)
        data += self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, crypt
        )
        with tempfile.TemporaryDirectory(prefix="freshtoken-") as folder:
            path = Path(folder) / "client.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            context.load_cert_chain(path, password=password)
        return context

    def describe(self) -> str:
        leaf = self.chain[0]
        return (
            f"certificate {leaf.subject.rfc4514_string() or '(no subject)'}, x5t#S256 "
            f"{self.thumbprint}, expires {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )


@dataclass(frozen=True, slots=True, repr=False)
class TlsClientAuth:
    """tls_client_auth or self_signed_tls_client_auth: the certificate proves the client."""

    client_id: str
    certificate: ClientCertificate
    method: str = "tls_client_auth"

    def __post_init__(self) -> None:
        if self.method not in TLS_METHODS:
            raise ValueError(f"method must be one of {TLS_METHODS}")

    def apply(
        self, headers: dict[str, str], form: dict[str, str], endpoints: Endpoints | None = None
    ) -> None:
        form["client_id"] = self.client_id  # RFC 8705 §2: the client_id is always sent

    def fingerprint(self, pepper: bytes) -> str:
        # The certificate names it: a renewed certificate is a new cache entry (its tokens
        # are bound to the old one).
        text = f"{self.method}|{self.certificate.thumbprint}"
        return hmac.new(pepper, text.encode(), hashlib.sha256).hexdigest()

    def describe(self) -> str:
        return f"{self.method}: {self.certificate.describe()}"

    def __repr__(self) -> str:
        return (
            f"TlsClientAuth({self.client_id!r}, {self.method}, "
            f"x5t#S256={self.certificate.thumbprint!r})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class Binding:
    """The certificate the tokens a client mints may be bound to (every token minted over
    mutual TLS is treated as bound: an opaque token does not say), and the TLS context the
    token client and the proxy present it with. The library's adapters send tokens with it."""

    certificate: ClientCertificate
    tls: ssl.SSLContext

    @property
    def thumbprint(self) -> str:
        return self.certificate.thumbprint

    def ssl_context(self) -> ssl.SSLContext:
        """A new context presenting the certificate, for a client that may change it."""
        return self.certificate.ssl_context()

    def refused(self, fix: str) -> ConfigurationError:
        """The error for a bound token refused over a connection without its certificate:
        minting again would not help."""
        return ConfigurationError(
            f"the API refused a token bound to the client certificate (x5t#S256 "
            f"{self.thumbprint}), sent over a connection that did not present it",
            hint=f"{fix} (RFC 8705 §3: a bound token is accepted only over its certificate), "
            "or send the calls through the proxy (`freshtoken serve --proxy`).",
        )


def client_certificate(auth: object) -> ClientCertificate | None:
    """The certificate `auth` presents in the TLS handshake (None: it presents none). Tokens
    minted with it may be bound to it."""
    return auth.certificate if isinstance(auth, TlsClientAuth) else None
