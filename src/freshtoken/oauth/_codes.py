"""Which typed error an answer stands for: the OAuth error codes (and the words some servers
use instead of them), and the refusals that carry no code at all (HTTP 401/403 or a 400 on a
refresh with an empty body, a 404 at the token URL), each with a hint that points the right
way."""

from __future__ import annotations

from urllib.parse import urlsplit

from freshtoken._errors import (
    AuthorizationError,
    ErrorContext,
    FreshtokenError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuthError,
    RateLimitedError,
    ServerError,
    UnauthorizedClientError,
)
from freshtoken._record import replace


class ClientRefusedError(InvalidClientError):
    """The token endpoint refused this client with HTTP 401 or 403 and no OAuth error."""

    default_error = "client_refused"
    says = "token endpoint ... refused this client with HTTP 403 and no OAuth error"

    @classmethod
    def fields(cls, ctx: ErrorContext) -> dict[str, str]:
        if ctx.grant == "client_credentials" and not ctx.scope:
            scope = "a scope: this server may require one for client credentials, and none was sent"
        else:
            scope = "a scope the server requires, or one the client may not have"
        return {"scope_cause": scope}


class RefreshRefusedError(InvalidGrantError):
    """A refresh was refused with HTTP 400 and no OAuth error."""

    default_error = "refresh_refused"
    says = "token endpoint ... refused the refresh_token request with HTTP 400 and no OAuth error"


class EndpointNotFoundError(AuthorizationError):
    """The token URL answered HTTP 404."""

    default_error = "endpoint_not_found"
    says = "token endpoint ... answered HTTP 404 (error=endpoint_not_found)"

    @classmethod
    def fields(cls, ctx: ErrorContext) -> dict[str, str]:
        parts = urlsplit(ctx.token_url)
        url = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else "the token URL"
        if parts.path.endswith("/"):
            tips = [f"Try {url.rstrip('/')} (without the trailing slash)."]
        else:
            tips = ["Try the path the server documents for its token endpoint (a typo there is "
                    "the usual cause)."]  # fmt: skip
        if ctx.issuer:
            issuer = ctx.issuer.rstrip("/")
            tips.append(
                "Or unset FRESHTOKEN_TOKEN_URL: discovery from FRESHTOKEN_ISSUER finds the "
                f"token_endpoint ({issuer}/.well-known/openid-configuration or "
                "oauth-authorization-server)."
            )
        else:
            tips.append(
                f"If {url} is the server's issuer rather than its token endpoint, set "
                "FRESHTOKEN_ISSUER to it instead of FRESHTOKEN_TOKEN_URL (the token endpoint is "
                "then discovered)."
            )
        return {"url": url, "tips": " ".join(tips)}


_BY_CODE: dict[str, type[OAuthError]] = {
    cls.default_error: cls
    for cls in (
        InvalidClientError,
        InvalidGrantError,
        UnauthorizedClientError,
        InvalidScopeError,
        InvalidRequestError,
        RateLimitedError,
        ServerError,
    )
}
_BY_CODE |= {
    "unsupported_grant_type": UnauthorizedClientError,
    "access_denied": AuthorizationError,
    "temporarily_unavailable": ServerError,
}


#: Words some servers use for a standard code (the `x_invalid` spelling of `invalid_x` is
#: turned around first).
_MEANS = {
    "invalid_code": "invalid_grant",
    "invalid_authorization_code": "invalid_grant",
    "invalid_refresh_token": "invalid_grant",
    "invalid_token": "invalid_grant",
    "invalid_authorization_type": "unsupported_grant_type",
    "invalid_grant_type": "unsupported_grant_type",
    "invalid_client_secret": "invalid_client",
    "invalid_secret": "invalid_client",
    "invalid_credentials": "invalid_client",
}


def standard_code(code: str) -> str:
    """The standard OAuth code `code` stands for (itself when it is one, or unknown)."""
    if code in _BY_CODE:
        return code
    word = code.lower().replace("-", "_")
    if word.endswith("_invalid"):
        word = "invalid_" + word.removesuffix("_invalid")
    word = _MEANS.get(word, word)
    return word if word in _BY_CODE else code


def error_for_code(
    code: str,
    ctx: ErrorContext,
    *,
    message: str,
    description: str | None = None,
    status: int | None = None,
    retry_after: float | None = None,
) -> OAuthError:
    """Build the typed error for an OAuth error code, with its hint; a server's own word for
    a standard code gets that code's hint (the error keeps the server's word)."""
    meant = standard_code(code)
    cls = _BY_CODE.get(meant, AuthorizationError if status and status < 500 else ServerError)
    hint = cls.explain(replace(ctx, status=status))
    if meant != code:
        hint = f"({code} is this server's word for {meant}.) {hint}"
    return cls(
        message,
        error=code,
        description=description,
        status=status,
        hint=hint,
        retry_after=retry_after,
    )


def error_classes() -> list[type[FreshtokenError]]:
    """Every error class, depth first from the root, `FreshtokenError`."""
    found: list[type[FreshtokenError]] = []

    def walk(cls: type[FreshtokenError]) -> None:
        found.append(cls)
        for sub in cls.__subclasses__():
            walk(sub)

    walk(FreshtokenError)
    return found
