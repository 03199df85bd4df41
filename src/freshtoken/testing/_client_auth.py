"""How the test server checks client authentication: a secret (RFC 6749 §2.3.1), and client
assertions (RFC 7523 §3, OpenID Connect Core §9): private_key_jwt against the client's
registered JWKS, client_secret_jwt against its secret.

Written apart from freshtoken's signer (`oauth/_jws.py`): keys come from their JWK members,
an ECDSA signature is split into r and s and DER-encoded again here, and nothing of the
signer's code is called back, so a fault on either side shows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import unquote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from freshtoken.testing._model import Client, Knobs

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_CURVES: dict[str, tuple[ec.EllipticCurve, str]] = {
    "P-256": (ec.SECP256R1(), "ES256"),
    "P-384": (ec.SECP384R1(), "ES384"),
    "P-521": (ec.SECP521R1(), "ES512"),
}
_DIGESTS: dict[str, Any] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def basic_credentials(authorization: str) -> tuple[str, str]:
    """Client id and secret of a Basic header (RFC 6749 §2.3.1: form-encoded, then base64).
    Raises ValueError when malformed."""
    raw = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    cid, _, secret = raw.partition(":")
    return unquote_plus(cid), unquote_plus(secret)


def secret_matches(expected: str, presented: str) -> bool:
    # compare_digest refuses str with non-ASCII characters; bytes compare any secret (lone
    # surrogates, from argv or the environment, included).
    return secrets.compare_digest(
        expected.encode("utf-8", "surrogatepass"), presented.encode("utf-8", "surrogatepass")
    )


class Refused(Exception):
    """Why an assertion is refused (the error_description of invalid_client)."""


def _unb64(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise Refused("client assertion is not base64url") from None


def _json(part: str) -> dict[str, Any]:
    try:
        found = json.loads(_unb64(part))
    except ValueError:
        raise Refused("client assertion is not JSON") from None
    if not isinstance(found, dict):
        raise Refused("client assertion is not a JSON object")
    return found


def _number(jwk: dict[str, Any], name: str) -> int:
    return int.from_bytes(_unb64(str(jwk.get(name, ""))), "big")


def _verify_with(jwk: dict[str, Any], alg: str, data: bytes, sig: bytes) -> bool:
    """Does `sig` verify under the public JWK for `alg`? False when the key cannot do `alg`."""
    kty, digest = jwk.get("kty"), _DIGESTS.get(alg[2:], hashes.SHA256)
    try:
        if kty == "RSA" and alg[:2] in ("RS", "PS") and alg[2:] in _DIGESTS:
            public = rsa.RSAPublicNumbers(_number(jwk, "e"), _number(jwk, "n")).public_key()
            pad: padding.AsymmetricPadding = padding.PKCS1v15()
            if alg.startswith("PS"):
                pad = padding.PSS(padding.MGF1(digest()), digest.digest_size)
            public.verify(sig, data, pad, digest())
        elif kty == "EC" and (curve := _CURVES.get(str(jwk.get("crv")))) and curve[1] == alg:
            point = ec.EllipticCurvePublicNumbers(_number(jwk, "x"), _number(jwk, "y"), curve[0])
            size = (curve[0].key_size + 7) // 8
            if len(sig) != 2 * size:  # RFC 7518 §3.4: r||s, each exactly the curve's size
                return False
            der = encode_dss_signature(
                int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big")
            )
            point.public_key().verify(der, data, ec.ECDSA(digest()))
        elif kty == "OKP" and jwk.get("crv") == "Ed25519" and alg == "EdDSA":
            ed25519.Ed25519PublicKey.from_public_bytes(_unb64(str(jwk["x"]))).verify(sig, data)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _signature_ok(client: Client, header: dict[str, Any], data: bytes, sig: bytes) -> bool:
    alg = str(header.get("alg"))
    if alg.startswith("HS"):
        name = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}.get(alg)
        if not name or client.secret is None:
            return False
        expected = hmac.new(client.secret.encode(), data, getattr(hashlib, name)).digest()
        return hmac.compare_digest(expected, sig)
    kid = header.get("kid")
    keys = [k for k in client.jwks if kid is None or k.get("kid") in (None, kid)]
    return any(_verify_with(k, alg, data, sig) for k in keys)


def assertion_method(form: dict[str, str]) -> str | None:
    """private_key_jwt or client_secret_jwt (by the header's alg), None without an assertion."""
    if "client_assertion" not in form and "client_assertion_type" not in form:
        return None
    try:
        alg = str(_json(form.get("client_assertion", "").split(".")[0]).get("alg", ""))
    except Refused:
        alg = ""
    return "client_secret_jwt" if alg.startswith("HS") else "private_key_jwt"


def request_method(headers: Any, form: dict[str, str]) -> tuple[str, str | None]:
    """The client-authentication method a request used, and the client id it names."""
    authorization = headers.get("Authorization", "")
    if not authorization.lower().startswith("basic "):
        method = "client_secret_post" if "client_secret" in form else "none"
        return assertion_method(form) or method, form.get("client_id")
    try:
        return "client_secret_basic", basic_credentials(authorization)[0]
    except ValueError:
        return "client_secret_basic", None


def check_assertion(
    form: dict[str, str],
    clients: dict[str, Client],
    knobs: Knobs,
    audiences: dict[str, str],
    *,
    seen: dict[str, float],
    now: float,
) -> Client:
    """The client a valid assertion proves; `Refused` otherwise. `audiences`: the token_url
    and issuer; `seen`: jti -> until when it is remembered (updated here)."""
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise Refused(f"client_assertion_type must be {ASSERTION_TYPE}")
    parts = form.get("client_assertion", "").split(".")
    if len(parts) != 3:
        raise Refused("client assertion is not a compact JWS")
    header, claims, sig = _json(parts[0]), _json(parts[1]), _unb64(parts[2])
    client = clients.get(str(claims.get("sub")))
    method = assertion_method(form)
    if client is None or claims.get("iss") != client.client_id:
        raise Refused("unknown client, or iss and sub are not the client id")
    if form.get("client_id", client.client_id) != client.client_id:
        raise Refused("client_id is not the assertion's sub")
    if client.auth_method not in (None, method):
        raise Refused(f"client may not use {method}")
    allowed = [a.strip() for a in knobs.assertion_algs.split(",") if a.strip()]
    if header.get("alg") in (None, "none") or (allowed and header.get("alg") not in allowed):
        raise Refused(f"assertion algorithm {header.get('alg')} is not accepted")
    if not _signature_ok(client, header, ".".join(parts[:2]).encode(), sig):
        raise Refused("client assertion signature does not verify with the registered key")
    wanted = {
        "token_endpoint": {audiences["token_url"]},
        "issuer": {audiences["issuer"]},
    }.get(knobs.assertion_audience, set(audiences.values()))
    aud = claims.get("aud")
    if not wanted & set(aud if isinstance(aud, list) else [aud]):
        raise Refused(f"assertion aud must be {' or '.join(sorted(wanted))}")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now:
        raise Refused("client assertion has expired (or has no exp)")
    if isinstance(nbf := claims.get("nbf"), int | float) and nbf > now:
        raise Refused("client assertion is not valid yet (nbf)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise Refused("client assertion has no jti")
    for old in [j for j, until in seen.items() if until <= now]:
        del seen[old]
    key = f"{client.client_id} {jti}"
    if knobs.check_jti and key in seen:
        raise Refused("client assertion replayed (its jti was seen before)")
    seen[key] = now + knobs.jti_window if knobs.jti_window > 0 else float(exp)
    return client
