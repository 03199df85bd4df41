"""One typed hierarchy of errors, each saying what went wrong and how to fix it.

Each class carries its OAuth error code, its command-line exit code and its hint, so that the
command line, the local endpoint and the generated troubleshooting page map nothing by hand.
Nothing here ever carries a secret: messages are built from error codes, hosts, statuses and
excerpts that were redacted before they got here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from freshtoken._record import record

EXIT_USAGE, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_STORE = 2, 3, 4, 5
#: What each exit code of the command line means.
EXIT_MEANINGS = {
    EXIT_USAGE: "usage or configuration: nothing was sent",
    EXIT_REFUSED: "the server refused: trying again with the same input will not help",
    EXIT_UNAVAILABLE: "no token: the endpoint failed or did not answer in time, after retries",
    EXIT_STORE: "the token store, or the refresh-token sink, cannot be used",
}


@record
class ErrorContext:
    """Where a request went, for hints that name the endpoint and region. A hint names a
    provider's own features only when that provider's preset is in use (`genesys`)."""

    token_url: str = ""
    region: str | None = None
    grant: str = ""
    scope: tuple[str, ...] = ()
    status: int | None = None
    provider: str | None = None
    #: The configured issuer, when there is one (its discovery document names the endpoints).
    issuer: str | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.token_url).hostname or self.token_url or "the token endpoint"

    @property
    def genesys(self) -> bool:
        """The Genesys Cloud preset is in use (a region, or `provider = "genesys"`)."""
        return self.region is not None or self.provider == "genesys"


class OAuthError(Exception):
    """Root of every freshtoken error.

    `error` is the OAuth error code (or a freshtoken one), `description` the server's own words,
    `status` the HTTP status when there was one, `retryable` whether trying again may help,
    `hint` a plain-language cause and fix, and `exit_code` the command line's exit status.
    """

    default_error = "oauth_error"
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
        """The plain-language cause and fix of this kind of error at `ctx`."""
        return ""

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
    exit_code = EXIT_USAGE


class AuthorizationError(OAuthError):
    """The server refused; trying again with the same input will not help."""

    exit_code = EXIT_REFUSED


class InvalidClientError(AuthorizationError):
    """The client id or secret was not accepted."""

    default_error = "invalid_client"
    says = (
        "token endpoint ... refused the client_credentials request (error=invalid_client, HTTP 401)"
    )

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        if ctx.region:
            where = (
                f" Very often it is the wrong Genesys Cloud region: this request went to region "
                f"{ctx.region} ({ctx.host}), and an OAuth client exists only in the region of "
                "the org it was created in. Check the org's region (FRESHTOKEN_REGION)."
            )
        elif ctx.provider == "genesys":
            where = (
                f" Very often it is the wrong Genesys Cloud region: this request went to "
                f"{ctx.host}, and an OAuth client exists only in the region of the org it was "
                "created in. Check FRESHTOKEN_TOKEN_URL and FRESHTOKEN_API_URL."
            )
        else:
            where = (
                f" Check also that {ctx.host} is the right server (region, tenant) for this client."
            )
        return (
            "The client credentials were not accepted: check FRESHTOKEN_CLIENT_ID and the "
            "secret (was it rotated?), and that the OAuth client exists and is enabled." + where
        )


class InvalidGrantError(AuthorizationError):
    """The refresh token or authorization code was refused."""

    default_error = "invalid_grant"
    says = "... refused the refresh_token request (error=invalid_grant, HTTP 400)"

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        return (
            "The refresh token or authorization code was refused: it expired, was revoked "
            "(logout, password change), was already used (refresh tokens are single-use and "
            "rotate), or the client secret was rotated. Obtain a new one with a fresh login and "
            "seed it; a client-credentials client needs no refresh token at all."
        )


class UnauthorizedClientError(AuthorizationError):
    """The client may not use this grant."""

    default_error = "unauthorized_client"
    says = "... (error=unauthorized_client)"

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        where = " (Genesys Cloud: Admin > Integrations > OAuth)" if ctx.genesys else ""
        return (
            f"This OAuth client may not use the {ctx.grant or 'this'} grant. Enable that grant "
            f"type on the client{where}, or use the grant it was created for."
        )


class InvalidScopeError(AuthorizationError):
    """A requested scope is not allowed."""

    default_error = "invalid_scope"
    says = "... (error=invalid_scope, HTTP 400)"

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        generic = (
            f"A requested scope is not allowed for this client (asked: "
            f"{' '.join(ctx.scope) or '(none)'}). Remove it from FRESHTOKEN_SCOPE or allow it "
            "on the client."
        )
        if not ctx.genesys:
            return generic
        return (
            generic + " Genesys Cloud client-credentials clients get their permissions from the "
            "roles assigned to the OAuth client, not from scopes, and there is no offline_access "
            "scope: leave FRESHTOKEN_SCOPE empty."
        )


class LoginError(AuthorizationError):
    """A browser or device login did not complete: declined, expired or timed out."""

    default_error = "login_failed"
    says = "the authorization server refused the login: access_denied"

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        return (
            "The login did not complete: the user declined (access_denied), the device code "
            "expired before it was approved (expired_token), or nothing arrived in time. Run "
            "`freshtoken login` again and finish it in the browser; check that the client allows "
            "the authorization-code (or device) grant and the requested scopes."
        )


class InvalidRequestError(AuthorizationError):
    """The server rejected the request as malformed."""

    default_error = "invalid_request"

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        return "The server rejected the request as malformed; check the grant's parameters."


class InsufficientScopeError(AuthorizationError):
    """The server granted fewer scopes than were requested."""

    default_error = "insufficient_scope"
    says = "the server granted scope ... without ..."

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        return (
            "The server granted fewer scopes than requested. Allow the missing scopes on the "
            "client, or ask for fewer (FRESHTOKEN_SCOPE)."
        )


class RateLimitedError(OAuthError):
    """The token endpoint is rate-limiting this client."""

    default_error = "rate_limited"
    retryable_default = True
    says = "token endpoint ... is rate-limiting requests (error=rate_limited, HTTP 400 or 429)"

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        how = " (Genesys Cloud answers HTTP 400 'rate limit exceeded')" if ctx.genesys else ""
        return (
            f"The token endpoint is rate-limiting this client{how}. Share one token between "
            "steps, processes and runners (a shared store, or `freshtoken serve`) instead of "
            "minting one per step."
        )


class ServerError(OAuthError):
    """The authorization server failed (5xx, temporarily_unavailable)."""

    default_error = "server_error"
    retryable_default = True
    says = "token endpoint ... failed with HTTP 503"

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        where = f"HTTP {ctx.status}" if ctx.status else "server_error"
        return (
            f"The authorization server at {ctx.host} is failing ({where}). This is usually "
            "brief and retried with backoff; if it lasts, check the provider's status page."
        )


class MalformedResponseError(OAuthError):
    """The endpoint answered something that is not a valid token response."""

    default_error = "malformed_response"
    says = "token endpoint ... answered HTTP 200 with ..."

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        return (
            f"{ctx.host} did not answer like an OAuth token endpoint. Check that the URL is the "
            "token endpoint itself (not a login page, API host or an intercepting proxy)."
        )


class TransportError(OAuthError):
    """The request did not get an HTTP answer."""

    default_error = "transport_error"
    retryable_default = True


class ConnectError(TransportError):
    """No connection could be made."""

    default_error = "connect_error"
    says = "... refused or dropped the connection"

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        return (
            f"Could not connect to {ctx.host}. Check the URL and port, that the server is up, "
            "and any proxy settings (HTTPS_PROXY / NO_PROXY)."
        )


class NameResolutionError(ConnectError):
    """The host name did not resolve."""

    default_error = "dns_error"
    says = "... could not be resolved"

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        what = "the token URL or the region's spelling" if ctx.genesys else "the URL's host"
        return f"The host {ctx.host} could not be resolved. Check {what}, and the machine's DNS."


class RequestTimeoutError(TransportError):
    """No answer in time."""

    default_error = "timeout"
    says = "... timed out"

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        return (
            f"No answer from {ctx.host} in time. Check this machine's network path to it "
            "(firewall, HTTPS_PROXY / NO_PROXY) or raise the timeout."
        )


class TLSError(TransportError):
    """TLS verification failed."""

    default_error = "tls_error"
    retryable_default = False
    says = "... failed TLS verification"

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        return (
            f"TLS verification of {ctx.host} failed. Keep verification on: install the CA that "
            "signed its certificate (SSL_CERT_FILE) or correct the URL."
        )


class StoreError(OAuthError):
    """The token store cannot be used (unreadable, unsafe, full, unreachable)."""

    default_error = "store_error"
    exit_code = EXIT_STORE


class UnsafeStoreError(StoreError):
    """The store is not private to this user: refused, never worked around."""

    default_error = "unsafe_store"


class SinkError(OAuthError):
    """A rotated refresh token could not be written to its sink (FRESHTOKEN_REFRESH_TOKEN_SINK);
    the store keeps it and the next call writes it first."""

    default_error = "sink_error"
    exit_code = EXIT_STORE
    retryable_default = True
    says = "the refresh-token sink ... (error=sink_error)"

    @classmethod
    def explain(cls, ctx: ErrorContext) -> str:
        return (
            "The server rotated the refresh token and the new one could not be written back "
            "(FRESHTOKEN_REFRESH_TOKEN_SINK); until it is, the next run would be seeded with a "
            "spent one. The new token is kept in the store and written first by the next call: "
            "fix the sink (for a GitHub secret, FRESHTOKEN_GITHUB_TOKEN must be allowed to write "
            "secrets) and run freshtoken again in the same job. See docs/refresh-tokens.md."
        )


class TokenUnavailableError(OAuthError):
    """No token could be had within the caller's deadline."""

    default_error = "token_unavailable"
    retryable_default = True
