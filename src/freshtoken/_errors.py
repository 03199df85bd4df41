"""One typed hierarchy of errors, each saying what went wrong and how to fix it.

Nothing here ever carries a secret: messages are built from error codes, hosts, statuses
and excerpts that were redacted before they got here.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """Where a request went, for hints that name the endpoint and region."""

    token_url: str = ""
    region: str | None = None
    grant: str = ""
    scope: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        return urlsplit(self.token_url).hostname or self.token_url or "the token endpoint"


class OAuthError(Exception):
    """Root of every freshtoken error.

    `error` is the OAuth error code (or a freshtoken one), `description` the server's own words,
    `status` the HTTP status when there was one, `retryable` whether trying again may help,
    and `hint` a plain-language cause and fix.
    """

    default_error = "oauth_error"
    retryable_default = False

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        description: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        hint: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error = error or self.default_error
        self.description = description
        self.status = status
        self.retryable = self.retryable_default if retryable is None else retryable
        self.hint = hint
        self.retry_after = retry_after

    def __str__(self) -> str:
        details = [f"error={self.error}"]
        if self.status is not None:
            details.append(f"HTTP {self.status}")
        text = f"{self.message} ({', '.join(details)})"
        if self.description and self.description not in self.message:
            text += f": {self.description}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(error={self.error!r}, status={self.status!r})"


class ConfigurationError(OAuthError):
    """The settings are incomplete or wrong; nothing was sent."""

    default_error = "invalid_configuration"


class AuthorizationError(OAuthError):
    """The server refused; trying again with the same input will not help."""


class InvalidClientError(AuthorizationError):
    default_error = "invalid_client"


class InvalidGrantError(AuthorizationError):
    default_error = "invalid_grant"


class UnauthorizedClientError(AuthorizationError):
    default_error = "unauthorized_client"


class InvalidScopeError(AuthorizationError):
    default_error = "invalid_scope"


class InvalidRequestError(AuthorizationError):
    default_error = "invalid_request"


class InsufficientScopeError(AuthorizationError):
    """The server granted fewer scopes than were requested."""

    default_error = "insufficient_scope"


class RateLimitedError(OAuthError):
    default_error = "rate_limited"
    retryable_default = True


class ServerError(OAuthError):
    default_error = "server_error"
    retryable_default = True


class MalformedResponseError(OAuthError):
    """The endpoint answered something that is not a valid token response."""

    default_error = "malformed_response"


class TransportError(OAuthError):
    """The request did not get an HTTP answer."""

    default_error = "transport_error"
    retryable_default = True


class ConnectError(TransportError):
    default_error = "connect_error"


class NameResolutionError(ConnectError):
    default_error = "dns_error"


class TimeoutError(TransportError):
    default_error = "timeout"


class TLSError(TransportError):
    default_error = "tls_error"
    retryable_default = False


class StoreError(OAuthError):
    """The token store cannot be used (unreadable, unsafe, full, unreachable)."""

    default_error = "store_error"


class TokenUnavailableError(OAuthError):
    """No token could be had within the caller's deadline."""

    default_error = "token_unavailable"
    retryable_default = True


def _region_hint(ctx: ErrorContext) -> str:
    if ctx.region:
        return (
            f" Very often it is the wrong Genesys Cloud region: this request went to region "
            f"{ctx.region} ({ctx.host}), and an OAuth client exists only in the region of the "
            "org it was created in. Check the org's region (FRESHTOKEN_REGION)."
        )
    return f" Check also that {ctx.host} is the right server (region, tenant) for this client."


def hint_for(error: str, ctx: ErrorContext, status: int | None = None) -> str:
    """The plain-language cause and fix for an error code."""
    if error == "invalid_client":
        return (
            "The client credentials were not accepted: check FRESHTOKEN_CLIENT_ID and the "
            "secret (was it rotated?), and that the OAuth client exists and is enabled."
            + _region_hint(ctx)
        )
    if error == "invalid_grant":
        return (
            "The refresh token or authorization code was refused: it expired, was revoked "
            "(logout, password change), was already used (refresh tokens are single-use and "
            "rotate), or the client secret was rotated. Obtain a new one with a fresh login and "
            "seed it; a client-credentials client needs no refresh token at all."
        )
    if error in ("unauthorized_client", "unsupported_grant_type"):
        grant = ctx.grant or "this"
        return (
            f"This OAuth client may not use the {grant} grant. Enable that grant type on the "
            "client (Genesys Cloud: Admin > Integrations > OAuth), or use the grant it was "
            "created for."
        )
    if error == "invalid_scope":
        asked = " ".join(ctx.scope) or "(none)"
        return (
            f"A requested scope is not allowed for this client (asked: {asked}). Remove it or "
            "allow it on the client. Genesys Cloud client-credentials clients get their "
            "permissions from the roles assigned to the OAuth client, not from scopes, and "
            "there is no offline_access scope: leave FRESHTOKEN_SCOPE empty."
        )
    if error == "insufficient_scope":
        return (
            "The server granted fewer scopes than requested. Allow the missing scopes on the "
            "client, or ask for fewer (FRESHTOKEN_SCOPE)."
        )
    if error == "rate_limited":
        return (
            "The token endpoint is rate-limiting this client (Genesys Cloud answers HTTP 400 "
            "'rate limit exceeded'). Share one token between steps, processes and runners (a "
            "shared store, or `freshtoken serve`) instead of minting one per step."
        )
    if error in ("server_error", "temporarily_unavailable"):
        where = f"HTTP {status}" if status else error
        return (
            f"The authorization server at {ctx.host} is failing ({where}). This is usually "
            "brief and retried with backoff; if it lasts, check the provider's status page."
        )
    if error == "timeout":
        return (
            f"No answer from {ctx.host} in time. Check this machine's network path to it "
            "(firewall, HTTPS_PROXY / NO_PROXY) or raise the timeout."
        )
    if error == "dns_error":
        return (
            f"The host {ctx.host} could not be resolved. Check the token URL or the region's "
            "spelling, and the machine's DNS."
        )
    if error == "connect_error":
        return (
            f"Could not connect to {ctx.host}. Check the URL and port, that the server is up, "
            "and any proxy settings (HTTPS_PROXY / NO_PROXY)."
        )
    if error == "tls_error":
        return (
            f"TLS verification of {ctx.host} failed. Keep verification on: install the CA that "
            "signed its certificate (SSL_CERT_FILE) or correct the URL."
        )
    if error == "malformed_response":
        return (
            f"{ctx.host} did not answer like an OAuth token endpoint. Check that the URL is the "
            "token endpoint itself (not a login page, API host or an intercepting proxy)."
        )
    if error == "invalid_request":
        return "The server rejected the request as malformed; check the grant's parameters."
    return ""


_BY_CODE: dict[str, type[OAuthError]] = {
    "invalid_client": InvalidClientError,
    "invalid_grant": InvalidGrantError,
    "unauthorized_client": UnauthorizedClientError,
    "unsupported_grant_type": UnauthorizedClientError,
    "invalid_scope": InvalidScopeError,
    "invalid_request": InvalidRequestError,
    "access_denied": AuthorizationError,
    "server_error": ServerError,
    "temporarily_unavailable": ServerError,
    "rate_limited": RateLimitedError,
}


def error_for_code(
    code: str,
    ctx: ErrorContext,
    *,
    message: str,
    description: str | None = None,
    status: int | None = None,
    retry_after: float | None = None,
) -> OAuthError:
    """Build the typed error for an OAuth error code, with its hint."""
    cls = _BY_CODE.get(code, AuthorizationError if status and status < 500 else ServerError)
    return cls(
        message,
        error=code,
        description=description,
        status=status,
        hint=hint_for(code, ctx, status),
        retry_after=retry_after,
    )
