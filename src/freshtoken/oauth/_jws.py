"""Compact JWS (RFC 7515 §7.1) for client assertions: base64url(header).base64url(payload).
signature, the cryptography package doing the signing. Only what RFC 7523 client
authentication needs: sign, and name the key (RFC 7638 thumbprint).

ECDSA signatures are the raw r||s of RFC 7518 §3.4, each padded to the curve's size, not the DER
that cryptography returns.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from freshtoken._errors import ConfigurationError
from freshtoken._secret import Secret

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
HMAC_ALGS = ("HS256", "HS384", "HS512")
#: curve -> (JWK crv, the one JWS alg that names it).
_CURVES = {"secp256r1": ("P-256", "ES256"), "secp384r1": ("P-384", "ES384"),
           "secp521r1": ("P-521", "ES512")}  # fmt: skip


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int, size: int | None = None) -> bytes:
    return value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big")


def load_key(pem: Secret, passphrase: Secret | None, setting: str) -> SigningKey:
    """The private key of a PEM (PKCS#8 or traditional; encrypted when a passphrase is given).
    Errors name the setting and never quote the key."""
    password = passphrase.reveal().encode() if passphrase else None
    problem = ""
    try:
        key = serialization.load_pem_private_key(pem.reveal().encode(), password)
    except TypeError:  # encrypted without a passphrase, or a passphrase for a plain key
        problem = "is encrypted and no passphrase was given" if password is None else (
            "is not encrypted, yet a passphrase was given")  # fmt: skip
    except (ValueError, UnsupportedAlgorithm):  # a wrong passphrase, or not a PEM private key
        problem = "cannot be read: not a PEM private key, or the passphrase is wrong"
    if problem:
        raise ConfigurationError(
            f"the client key ({setting}) {problem}",
            hint="Give a PEM private key (RSA, EC P-256/384/521 or Ed25519) and, when it is "
            "encrypted, its passphrase in FRESHTOKEN_CLIENT_KEY_PASSPHRASE_FILE.",
        )
    if not isinstance(key, SigningKey):
        raise ConfigurationError(
            f"the client key ({setting}) is a {type(key).__name__.removeprefix('_')}",
            hint="Use an RSA (2048 bits or more), EC P-256/384/521 or Ed25519 key.",
        )
    return key


def key_algs(key: SigningKey) -> tuple[str, ...]:
    """The JWS algorithms this key can sign with, the default first."""
    if isinstance(key, rsa.RSAPrivateKey):
        return RSA_ALGS
    if isinstance(key, ec.EllipticCurvePrivateKey):
        found = _CURVES.get(key.curve.name)
        return (found[1],) if found else ()
    return ("EdDSA",)


def choose_alg(key: SigningKey, wanted: str | None) -> str:
    """The configured algorithm when the key can sign with it, else the key's default."""
    algs = key_algs(key)
    if not algs:
        raise ConfigurationError(
            "the client key is on an elliptic curve JWS has no algorithm for",
            hint="Use an EC key on P-256 (ES256), P-384 or P-521, an RSA or an Ed25519 key.",
        )
    if wanted and wanted not in algs:
        raise ConfigurationError(
            f"FRESHTOKEN_SIGNING_ALG {wanted} does not fit the client key "
            f"(it signs with {', '.join(algs)})",
            hint="Unset FRESHTOKEN_SIGNING_ALG to use the key's default, or name one of these.",
        )
    return wanted or algs[0]


def public_jwk(key: SigningKey) -> dict[str, str]:
    """The public key as a JWK (RFC 7517/7518/8037), the members the thumbprint hashes."""
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        return {
            "e": b64url(_int_bytes(numbers.e)),
            "kty": "RSA",
            "n": b64url(_int_bytes(numbers.n)),
        }
    if isinstance(key, ec.EllipticCurvePrivateKey):
        point = key.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        return {
            "crv": _CURVES[key.curve.name][0],
            "kty": "EC",
            "x": b64url(_int_bytes(point.x, size)),
            "y": b64url(_int_bytes(point.y, size)),
        }
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, without whitespace."""
    canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode()).digest())


def _signature(key: SigningKey | bytes, alg: str, data: bytes) -> bytes:
    if isinstance(key, bytes):
        return hmac.new(key, data, "sha" + alg[2:]).digest()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    digest = _HASHES[alg[2:]]()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        size = (key.curve.key_size + 7) // 8
        return _int_bytes(r, size) + _int_bytes(s, size)
    if alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        return key.sign(data, pss, digest)
    return key.sign(data, padding.PKCS1v15(), digest)


def sign(key: SigningKey | bytes, alg: str, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A compact JWS of `claims`; `key` is bytes for the HMAC algorithms."""
    parts = [
        b64url(json.dumps({"alg": alg, **header}, separators=(",", ":")).encode()),
        b64url(json.dumps(claims, separators=(",", ":")).encode()),
    ]
    signing_input = ".".join(parts).encode("ascii")
    return ".".join([*parts, b64url(_signature(key, alg, signing_input))])
