"""The grants freshtoken speaks. Each is the form fields it adds to a token request, whether
it can be presented only once, and what it adds to the cache key.

jwt-bearer (RFC 7523) and token-exchange (RFC 8693) fit the same shape.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from freshtoken._record import record


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
