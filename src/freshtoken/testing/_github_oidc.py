"""A stand-in for GitHub Actions' OIDC token endpoint on loopback: what a job with
`permissions: id-token: write` reaches through ACTIONS_ID_TOKEN_REQUEST_URL and
ACTIONS_ID_TOKEN_REQUEST_TOKEN. It issues RS256 JWTs from a key of its own, for the audience
asked, and publishes the key as GitHub does (an OIDC discovery document and its JWKS)."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from freshtoken.oauth._jws import public_jwk, sign, thumbprint
from freshtoken.testing._federation import Federation
from freshtoken.testing._github import Standin
from freshtoken.testing._model import Answer

DEFAULT_SUBJECT = "repo:octo-org/octo-repo:ref:refs/heads/main"


@dataclass
class OidcKnobs:
    subject: str = DEFAULT_SUBJECT
    lifetime: float = 300.0  # s
    refuse: bool = False  # 403, as when the job lacks `id-token: write`
    fail_next: int = 0  # answer the next N requests 503
    rate_limited_next: int = 0  # answer the next N requests 429 with Retry-After: 0
    counts: dict[str, int] = field(default_factory=lambda: {"issued": 0, "refused": 0})


class GitHubOidc(Standin):
    """Start with `with GitHubOidc() as github:`; `github.env()` is the two variables a step
    gets, `github.issuer` the `iss` of its tokens and `github.jwks` their keys."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **knobs: Any) -> None:
        self.knobs = OidcKnobs(**knobs)
        self.request_token = "ghs_oidc_" + secrets.token_urlsafe(16)
        self._key = rsa.generate_private_key(65537, 2048)
        self._kid = thumbprint(public_jwk(self._key))
        self._lock = threading.Lock()
        super().__init__(host, port)

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def jwks(self) -> tuple[dict[str, Any], ...]:
        return ({**public_jwk(self._key), "kid": self._kid, "alg": "RS256", "use": "sig"},)

    def env(self) -> dict[str, str]:
        """ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN, as the runner sets them."""
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.issuer + "/idtoken?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def federation(self, client_id: str, audience: str) -> Federation:
        """What the test server's `trust_issuer` takes: this issuer's tokens for this job's
        subject and `audience`, for `client_id`."""
        return Federation(self.issuer, self.jwks, self.knobs.subject, audience, client_id)

    def handle(self, method: str, target: str, authorization: str, body: bytes) -> Answer:
        parts = urlsplit(target)
        if method == "GET" and parts.path == "/.well-known/openid-configuration":
            doc = {"issuer": self.issuer, "jwks_uri": self.issuer + "/.well-known/jwks"}
            return 200, {**doc, "id_token_signing_alg_values_supported": ["RS256"]}, {}
        if method == "GET" and parts.path == "/.well-known/jwks":
            return 200, {"keys": list(self.jwks)}, {}
        if method != "GET" or parts.path != "/idtoken":
            return 404, {"message": "Not Found"}, {}
        with self._lock:
            k = self.knobs
            if k.fail_next > 0:
                k.fail_next -= 1
                return 503, {"message": "Service Unavailable"}, {}
            if k.rate_limited_next > 0:
                k.rate_limited_next -= 1
                return 429, {"message": "Too Many Requests"}, {"Retry-After": "0"}
            scheme, _, presented = authorization.partition(" ")
            if k.refuse or not (
                scheme.lower() == "bearer"
                and secrets.compare_digest(presented.strip().encode(), self.request_token.encode())
            ):
                k.counts["refused"] += 1
                return 403, {"message": "Unable to get ACTIONS_ID_TOKEN_REQUEST_URL"}, {}
            k.counts["issued"] += 1
        audience = parse_qs(parts.query).get("audience", ["https://github.com/octo-org"])[0]
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": k.subject,
            "aud": audience,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "nbf": now - 5,
            "exp": now + int(k.lifetime),
            "repository": "octo-org/octo-repo",
            "ref": "refs/heads/main",
        }
        value = sign(self._key, "RS256", {"typ": "JWT", "kid": self._kid}, claims)
        return 200, {"count": len(value), "value": value}, {}
