"""One typed hierarchy of errors, each saying what went wrong and how to fix it.

    FreshtokenError                  every error freshtoken raises
    ├── ConfigurationError           the settings are incomplete or wrong; nothing was sent
    ├── StoreError                   the token store cannot be used
    │   └── UnsafeStoreError
    ├── SinkError                    a rotated refresh token could not be written back
    └── OAuthError                   the authorization server's answer, or none
        ├── AuthorizationError       refused: InvalidClientError, InvalidGrantError,
        │                            UnauthorizedClientError, InvalidScopeError, LoginError,
        │                            InvalidRequestError, InsufficientScopeError, ...
        ├── RateLimitedError, ServerError, MalformedResponseError
        ├── TransportError           ConnectError (NameResolutionError), RequestTimeoutError,
        │                            TLSError
        └── TokenUnavailableError    no token within the caller's deadline

Each class carries its error code and its command-line exit code, and finds its hint in the
catalog by that code (freshtoken/_hints.py), so that the command line, the local endpoint and
the generated troubleshooting page map nothing by hand.
Nothing here ever carries a secret: messages are built from error codes, hosts, statuses and
excerpts that were redacted before they got here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from freshtoken._hints import ErrorContext

EXIT_USAGE, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_STORE = 2, 3, 4, 5
#: What each exit code of the command line means.
EXIT_MEANINGS = {
    EXIT_USAGE: "usage or configuration: nothing was sent",
    EXIT_REFUSED: "the server refused: trying again with the same input will not help",
    EXIT_UNAVAILABLE: "no token: the endpoint failed or did not answer in time, after retries",
    EXIT_STORE: "the token store, or the refresh-token sink, cannot be used",
}


class FreshtokenError(Exception):
    """Root of every freshtoken error.

    `error` is the OAuth error code (or a freshtoken one), `description` the server's own words,
    `status` the HTTP status when there was one, `retryable` whether trying again may help,
    `hint` a plain-language cause and fix, and `exit_code` the command line's exit status.
    """

    default_error = "error"
    retryable_default = False
    exit_code = EXIT_UNAVAILABLE
    #: What the command line says first, for the troubleshooting page ("" = not listed there).
    says = ""

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

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        """The plain-language cause and fix of this kind of error at `ctx`: the hint catalog's
        entry for its code (freshtoken/_hints.py)."""
        from freshtoken._hints import hint  # here: a store hit explains nothing (1 M a hit)

        return hint(cls.default_error, ctx, cls.fields(ctx))

    @classmethod
    def fields(cls, ctx: ErrorContext) -> dict[str, str]:
        """The fields of its catalog entry that only this kind of error computes."""
        return {}

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


class ConfigurationError(FreshtokenError):
    """The settings are incomplete or wrong; nothing was sent."""

    default_error = "invalid_configuration"
    exit_code = EXIT_USAGE


class OAuthError(FreshtokenError):
    """The authorization server refused or failed, or could not be reached."""

    default_error = "oauth_error"


class AuthorizationError(OAuthError):
    """The server refused; trying again with the same input will not help."""

    exit_code = EXIT_REFUSED


class InvalidClientError(AuthorizationError):
    """The client id or secret was not accepted."""

    default_error = "invalid_client"
    says = (
        "token endpoint ... refused the client_credentials request (error=invalid_client, HTTP 401)"
    )


class InvalidGrantError(AuthorizationError):
    """The refresh token or authorization code was refused."""

    default_error = "invalid_grant"
    says = "... refused the refresh_token request (error=invalid_grant, HTTP 400)"


class UnauthorizedClientError(AuthorizationError):
    """The client may not use this grant."""

    default_error = "unauthorized_client"
    says = "... (error=unauthorized_client)"


class InvalidScopeError(AuthorizationError):
    """A requested scope is not allowed."""

    default_error = "invalid_scope"
    says = "... (error=invalid_scope, HTTP 400)"


class LoginError(AuthorizationError):
    """A browser or device login did not complete: declined, expired or timed out."""

    default_error = "login_failed"
    says = "the authorization server refused the login: access_denied"


class InvalidRequestError(AuthorizationError):
    """The server rejected the request as malformed."""

    default_error = "invalid_request"


class InsufficientScopeError(AuthorizationError):
    """The server granted fewer scopes than were requested."""

    default_error = "insufficient_scope"
    says = "the server granted scope ... without ..."


class RateLimitedError(OAuthError):
    """The token endpoint is rate-limiting this client."""

    default_error = "rate_limited"
    retryable_default = True
    says = "token endpoint ... is rate-limiting requests (error=rate_limited, HTTP 400 or 429)"


class ServerError(OAuthError):
    """The authorization server failed (5xx, temporarily_unavailable)."""

    default_error = "server_error"
    retryable_default = True
    says = "token endpoint ... failed with HTTP 503"


class MalformedResponseError(OAuthError):
    """The endpoint answered something that is not a valid token response."""

    default_error = "malformed_response"
    says = "token endpoint ... answered HTTP 200 with ..."


class TransportError(OAuthError):
    """The request did not get an HTTP answer."""

    default_error = "transport_error"
    retryable_default = True


class ConnectError(TransportError):
    """No connection could be made."""

    default_error = "connect_error"
    says = "... refused or dropped the connection"


class NameResolutionError(ConnectError):
    """The host name did not resolve."""

    default_error = "dns_error"
    says = "... could not be resolved"


class RequestTimeoutError(TransportError):
    """No answer in time."""

    default_error = "timeout"
    says = "... timed out"


class TLSError(TransportError):
    """TLS verification failed."""

    default_error = "tls_error"
    retryable_default = False
    says = "... failed TLS verification"


class StoreError(FreshtokenError):
    """The token store cannot be used (unreadable, unsafe, full, unreachable)."""

    default_error = "store_error"
    exit_code = EXIT_STORE


class UnsafeStoreError(StoreError):
    """The store is not private to this user: refused, never worked around."""

    default_error = "unsafe_store"


class SinkError(FreshtokenError):
    """A rotated refresh token could not be written to its sink (FRESHTOKEN_REFRESH_TOKEN_SINK);
    the store keeps it and the next call writes it first."""

    default_error = "sink_error"
    exit_code = EXIT_STORE
    retryable_default = True
    says = "the refresh-token sink ... (error=sink_error)"


class TokenUnavailableError(OAuthError):
    """No token could be had within the caller's deadline."""

    default_error = "token_unavailable"
    retryable_default = True


__all__ = [
    "EXIT_MEANINGS", "EXIT_REFUSED", "EXIT_STORE", "EXIT_UNAVAILABLE", "EXIT_USAGE",
    "AuthorizationError", "ConfigurationError", "ConnectError", "ErrorContext",
    "FreshtokenError", "InsufficientScopeError", "InvalidClientError", "InvalidGrantError",
    "InvalidRequestError", "InvalidScopeError", "LoginError", "MalformedResponseError",
    "NameResolutionError", "OAuthError", "RateLimitedError", "RequestTimeoutError",
    "ServerError", "SinkError", "StoreError", "TLSError", "TokenUnavailableError",
    "TransportError", "UnauthorizedClientError", "UnsafeStoreError",
]  # fmt: skip


def __getattr__(name: str) -> object:
    """`ErrorContext`, the hint catalog's (freshtoken/_hints.py), loaded when first named."""
    if name == "ErrorContext":
        from freshtoken._hints import ErrorContext

        return ErrorContext
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
