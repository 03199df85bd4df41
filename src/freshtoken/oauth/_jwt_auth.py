"""Client authentication with a signed assertion: private_key_jwt and client_secret_jwt
(RFC 7523 §2.2 and §3, OpenID Connect Core §9). A fresh assertion per request: `iss` and `sub`
the client id, a unique `jti`, `exp` a minute ahead, `aud` the token endpoint URL by default.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from freshtoken._clock import SYSTEM_CLOCK, Clock
from freshtoken._errors import ConfigurationError
from freshtoken._log import remember_secret
from freshtoken._secret import Secret
from freshtoken.oauth._jws import HMAC_ALGS, SigningKey, choose_alg, public_jwk, sign, thumbprint
from freshtoken.provider._endpoints import Endpoints

if TYPE_CHECKING:
    from freshtoken.oauth._tls_auth import ClientCertificate

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: How long an assertion is valid (s): long enough for a slow request, short against replay.
ASSERTION_LIFETIME = 60.0
AUDIENCES = ("token_endpoint", "issuer")


def _audience(audience: str, endpoints: Endpoints | None) -> str:
    if audience not in AUDIENCES:
        return audience  # a URL the server asks for
    if endpoints is None:
        raise ConfigurationError("a client assertion needs the token endpoint to be known")
    if audience == "issuer":
        if not endpoints.issuer:
            raise ConfigurationError(
                "FRESHTOKEN_ASSERTION_AUDIENCE is issuer, and the issuer is not known",
                hint="Set FRESHTOKEN_ISSUER (discovery names the issuer), or set the "
                "audience URL itself in FRESHTOKEN_ASSERTION_AUDIENCE.",
            )
        return endpoints.issuer
    return endpoints.token_url


def _assert(
    form: dict[str, str], client_id: str, header: dict[str, Any], signer: Any, how: _How
) -> None:
    """Put a fresh assertion into the form (RFC 7521 §4.2); `signer(header, claims)` signs."""
    now = int(how.clock.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": how.aud,
        "jti": secrets.token_urlsafe(24),
        "iat": now,
        "exp": now + int(how.lifetime),
    }
    assertion = signer(header, claims)
    remember_secret(assertion)  # valid a minute: kept out of logs as a secret is
    form["client_id"] = client_id
    form["client_assertion_type"] = ASSERTION_TYPE
    form["client_assertion"] = assertion


@dataclass(frozen=True, slots=True)
class _How:
    aud: str
    lifetime: float
    clock: Clock


def _describe(method: str, alg: str, audience: str, extra: str = "") -> str:
    aud = audience.replace("_", " ") if audience in AUDIENCES else audience
    return f"{method}: {alg}{extra}, aud {aud}"


@dataclass(frozen=True, slots=True, repr=False)
class PrivateKeyJwt:
    """private_key_jwt: assertions signed with the client's private key (RS*, PS*, ES*, EdDSA
    as the key allows). `key_id` is the `kid` sent (default: the key's RFC 7638 thumbprint)."""

    client_id: str
    key: SigningKey
    alg: str | None = None
    key_id: str | None = None
    audience: str = "token_endpoint"
    lifetime: float = ASSERTION_LIFETIME
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False)
    #: The key's certificate, when the server finds the key by it (x5t, x5t#S256: Entra ID).
    certificate: ClientCertificate | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "alg", choose_alg(self.key, self.alg))

    @property
    def thumbprint(self) -> str:
        return thumbprint(public_jwk(self.key))

    @property
    def jwk(self) -> dict[str, str]:
        """The public key to register with the server (its JWKS holds this)."""
        kid = self.key_id or self.thumbprint
        return {**public_jwk(self.key), "kid": kid, "alg": str(self.alg), "use": "sig"}

    def apply(
        self, headers: dict[str, str], form: dict[str, str], endpoints: Endpoints | None = None
    ) -> None:
        how = _How(_audience(self.audience, endpoints), self.lifetime, self.clock)
        header = {"typ": "JWT", "kid": self.key_id or self.thumbprint}
        header |= self.certificate.jws_header() if self.certificate else {}
        _assert(form, self.client_id, header, lambda h, c: sign(self.key, str(self.alg), h, c), how)

    def fingerprint(self, pepper: bytes) -> str:
        # The public key names it: a rotated key is a new cache entry, and nothing is revealed.
        return hmac.new(
            pepper, f"{self.alg}|{self.thumbprint}".encode(), hashlib.sha256
        ).hexdigest()

    def describe(self) -> str:
        kid = f", kid {self.key_id}" if self.key_id else ""
        if self.certificate:
            kid += f", {self.certificate.describe()}"
        return _describe("private_key_jwt", f"{self.alg} key", self.audience,
                         f", JWK thumbprint {self.thumbprint}{kid}")  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"PrivateKeyJwt({self.client_id!r}, alg={self.alg!r}, thumbprint={self.thumbprint!r})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class ClientSecretJwt:
    """client_secret_jwt: assertions signed with HMAC (HS256/384/512), the client secret as
    the key."""

    client_id: str
    client_secret: Secret
    alg: str = "HS256"
    audience: str = "token_endpoint"
    lifetime: float = ASSERTION_LIFETIME
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.client_secret, Secret):
            object.__setattr__(self, "client_secret", Secret(self.client_secret))
        if self.alg not in HMAC_ALGS:
            raise ConfigurationError(
                f"client_secret_jwt signs with {', '.join(HMAC_ALGS)}, not {self.alg}",
                hint="Set FRESHTOKEN_SIGNING_ALG to HS256, HS384 or HS512 (or unset it).",
            )

    def apply(
        self, headers: dict[str, str], form: dict[str, str], endpoints: Endpoints | None = None
    ) -> None:
        how = _How(_audience(self.audience, endpoints), self.lifetime, self.clock)
        key = self.client_secret.reveal().encode()
        _assert(form, self.client_id, {"typ": "JWT"}, lambda h, c: sign(key, self.alg, h, c), how)

    def fingerprint(self, pepper: bytes) -> str:
        return hmac.new(pepper, self.client_secret.reveal().encode(), hashlib.sha256).hexdigest()

    def describe(self) -> str:
        return _describe("client_secret_jwt", f"{self.alg} with the client secret", self.audience)

    def __repr__(self) -> str:
        return f"ClientSecretJwt({self.client_id!r}, alg={self.alg!r})"
