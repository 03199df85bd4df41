"""Tokens of another issuer that the test server trusts (a federation): verified against that
issuer's JWKS, then taken as a client assertion (as Entra ID's federated identity credentials
take a GitHub Actions token), as the JWT-bearer grant's assertion (RFC 7523 §2.1, §3) or as the
subject token of a token exchange (RFC 8693 §2.1). The signature check is `_client_auth`'s,
written apart from freshtoken's signer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from freshtoken.testing._client_auth import ASSERTION_TYPE, Refused, _json, _unb64, _verify_with
from freshtoken.testing._model import JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT, Client

JWT_BEARER, TOKEN_EXCHANGE = JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT
#: RFC 8693 §3: the subject token types a JWT from another issuer may be sent as.
JWT_TYPES = ("urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token")
ISSUED_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@dataclass(frozen=True)
class Federation:
    """Trust in `issuer`'s tokens (signed by a key of `jwks`) whose `sub` is `subject` and whose
    `aud` names `audience`, for the client `client_id`."""

    issuer: str
    jwks: tuple[dict[str, Any], ...]
    subject: str
    audience: str
    client_id: str


def _issuer(token: str) -> str | None:
    parts = token.split(".")
    try:
        return str(_json(parts[1]).get("iss")) if len(parts) == 3 else None
    except Refused:
        return None


def verify(token: str, federations: list[Federation], now: float) -> Federation:
    """The federation that accepts `token`; `Refused` (saying why) otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Refused("the token is not a compact JWS")
    header, claims, sig = _json(parts[0]), _json(parts[1]), _unb64(parts[2])
    trusting = [f for f in federations if f.issuer == claims.get("iss")]
    if not trusting:
        raise Refused(f"issuer {claims.get('iss')!r} is not trusted")
    alg, kid = str(header.get("alg")), header.get("kid")
    data = ".".join(parts[:2]).encode()
    keys = [k for f in trusting for k in f.jwks if kid is None or k.get("kid") in (None, kid)]
    if (
        alg in ("none", "")
        or alg.startswith("HS")
        or not any(_verify_with(k, alg, data, sig) for k in keys)
    ):
        raise Refused("the token's signature does not verify with the issuer's JWKS")
    matching = [f for f in trusting if f.subject == claims.get("sub")]
    if not matching:
        raise Refused(f"no federation trusts the subject {claims.get('sub')!r}")
    aud = claims.get("aud")
    audiences = set(aud if isinstance(aud, list) else [aud])
    found = next((f for f in matching if f.audience in audiences), None)
    if found is None:
        raise Refused(f"the token's aud {aud!r} is not a trusted audience")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now:
        raise Refused("the token has expired (or has no exp)")
    if isinstance(nbf := claims.get("nbf"), int | float) and nbf > now + 60:
        raise Refused("the token is not valid yet (nbf)")
    return found


def federated_client(
    form: dict[str, str], federations: list[Federation], clients: dict[str, Client], now: float
) -> Client | None:
    """The client a client assertion from a trusted issuer proves; None when the assertion's
    issuer is no federation's (then it is the client's own, `check_assertion`'s job)."""
    assertion = form.get("client_assertion", "")
    if not any(f.issuer == _issuer(assertion) for f in federations):
        return None
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise Refused(f"client_assertion_type must be {ASSERTION_TYPE}")
    found = verify(assertion, federations, now)
    client = clients.get(found.client_id)
    if client is None or form.get("client_id", found.client_id) != found.client_id:
        raise Refused("the federated credential is not this client's")
    return client


def check_grant(
    grant: str, form: dict[str, str], federations: list[Federation], client: Client, now: float
) -> str | None:
    """Why the JWT-bearer or token-exchange request is refused (None: it is granted)."""
    field = "assertion" if grant == JWT_BEARER else "subject_token"
    if grant == TOKEN_EXCHANGE and form.get("subject_token_type") not in JWT_TYPES:
        return f"subject_token_type must be one of {', '.join(JWT_TYPES)}"
    if not form.get(field):
        return f"{field} is missing"
    try:
        found = verify(form[field], federations, now)
    except Refused as exc:
        return str(exc)
    if found.client_id != client.client_id:
        return f"the {field} is trusted for another client"
    return None
