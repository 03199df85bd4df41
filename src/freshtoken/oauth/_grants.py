"""The grants freshtoken speaks. Each is the form fields it adds to a token request, whether
it can be presented only once, and what it adds to the cache key.

The JWT-bearer (RFC 7523) and token-exchange (RFC 8693) grants carry assertions got fresh for
each request: they name them in `sources` (form field -> `oauth/_assertions.py` source), and
the token client fetches them into the form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from freshtoken._record import record

if TYPE_CHECKING:
    from freshtoken.oauth._assertions import AssertionSource

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"


class Grant(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def scope(self) -> tuple[str, ...]: ...

    #: True when presenting it twice may fail or harm (a refresh token, a code).
    single_use: ClassVar[bool]

    def form(self) -> dict[str, str]: ...
    def cache_material(self) -> tuple[str, ...]:
        """What makes two tokens of this grant interchangeable (never a secret)."""
        ...


def _scope_field(scope: tuple[str, ...]) -> dict[str, str]:
    return {"scope": " ".join(scope)} if scope else {}


@record
class ClientCredentials:
    scope: tuple[str, ...] = ()
    audience: str | None = None
    resource: str | None = None
    name: ClassVar[str] = "client_credentials"
    single_use: ClassVar[bool] = False

    def form(self) -> dict[str, str]:
        form = {"grant_type": "client_credentials", **_scope_field(self.scope)}
        if self.audience:
            form["audience"] = self.audience
        if self.resource:
            form["resource"] = self.resource
        return form

    def cache_material(self) -> tuple[str, ...]:
        return (self.name, *sorted(set(self.scope)), "|", self.audience or "", self.resource or "")


@record
class RefreshTokenGrant:
    refresh_token: str
    scope: tuple[str, ...] = ()
    name: ClassVar[str] = "refresh_token"
    single_use: ClassVar[bool] = True

    def form(self) -> dict[str, str]:
        return {
            "grant_type": "refresh_token",
            "refresh_token": self.refresh_token,
            **_scope_field(self.scope),
        }

    def cache_material(self) -> tuple[str, ...]:
        return (self.name, *sorted(set(self.scope)))

    def __repr__(self) -> str:
        return "RefreshTokenGrant(refresh_token=***)"


@record
class AuthorizationCode:
    code: str
    redirect_uri: str | None = None
    code_verifier: str | None = None
    scope: tuple[str, ...] = ()
    #: The nonce of the authorization request: an ID token in the answer must carry it.
    nonce: str | None = None
    name: ClassVar[str] = "authorization_code"
    single_use: ClassVar[bool] = True

    def form(self) -> dict[str, str]:
        form = {"grant_type": "authorization_code", "code": self.code}
        if self.redirect_uri:
            form["redirect_uri"] = self.redirect_uri
        if self.code_verifier:
            form["code_verifier"] = self.code_verifier
        return form

    def cache_material(self) -> tuple[str, ...]:
        return (self.name, *sorted(set(self.scope)))

    def __repr__(self) -> str:
        return "AuthorizationCode(code=***)"


DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


@record
class DeviceCode:
    """One poll of the device authorization grant (RFC 8628 §3.4)."""

    device_code: str
    scope: tuple[str, ...] = ()
    name: ClassVar[str] = "device_code"
    # Polled again only on the server's word (authorization_pending, slow_down): a poll whose
    # answer was lost may have been the one that got the token.
    single_use: ClassVar[bool] = True

    def form(self) -> dict[str, str]:
        return {"grant_type": DEVICE_CODE, "device_code": self.device_code}

    def cache_material(self) -> tuple[str, ...]:
        return (self.name, *sorted(set(self.scope)))

    def __repr__(self) -> str:
        return "DeviceCode(device_code=***)"


@record
class JwtBearer:
    """RFC 7523 §2.1: a JWT from a trusted issuer is the grant (`assertion`)."""

    assertion: AssertionSource
    scope: tuple[str, ...] = ()
    name: ClassVar[str] = "jwt_bearer"
    single_use: ClassVar[bool] = False  # a retry fetches a new assertion

    @property
    def sources(self) -> dict[str, AssertionSource]:
        return {"assertion": self.assertion}

    def form(self) -> dict[str, str]:
        return {"grant_type": JWT_BEARER, **_scope_field(self.scope)}

    def cache_material(self) -> tuple[str, ...]:
        return (self.name, self.assertion.describe(), *sorted(set(self.scope)))


@record
class TokenExchange:
    """RFC 8693 §2.1: a token of another issuer (`subject_token`, and an `actor_token` acting
    for it) exchanged for one of this server's."""

    subject_token: AssertionSource
    subject_token_type: str = JWT_TOKEN_TYPE
    requested_token_type: str | None = None
    audience: str | None = None
    resource: str | None = None
    scope: tuple[str, ...] = ()
    actor_token: AssertionSource | None = None
    actor_token_type: str = JWT_TOKEN_TYPE
    name: ClassVar[str] = "token_exchange"
    single_use: ClassVar[bool] = False

    @property
    def sources(self) -> dict[str, AssertionSource]:
        found = {"subject_token": self.subject_token}
        return found | ({"actor_token": self.actor_token} if self.actor_token else {})

    def form(self) -> dict[str, str]:
        form = {"grant_type": TOKEN_EXCHANGE, "subject_token_type": self.subject_token_type}
        optional = {
            "requested_token_type": self.requested_token_type,
            "audience": self.audience,
            "resource": self.resource,
            "actor_token_type": self.actor_token_type if self.actor_token else None,
        }
        form.update({k: v for k, v in optional.items() if v})
        return form | _scope_field(self.scope)

    def cache_material(self) -> tuple[str, ...]:
        actor = self.actor_token.describe() if self.actor_token else ""
        return (self.name, self.subject_token.describe(), self.subject_token_type, actor,
                self.requested_token_type or "", self.audience or "", self.resource or "",
                "|", *sorted(set(self.scope)))  # fmt: skip
