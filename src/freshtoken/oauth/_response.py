"""Checking what a token endpoint answered. Nothing malformed ever becomes a Token."""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import socket
import ssl
from typing import TYPE_CHECKING, Any

import httpx

from freshtoken._errors import (
    AuthorizationError,
    ConfigurationError,
    ConnectError,
    ErrorContext,
    FreshtokenError,
    InvalidRequestError,
    LoginError,
    MalformedResponseError,
    NameResolutionError,
    OAuthError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TLSError,
    TransportError,
)
from freshtoken._http import Reply, json_object, retry_after
from freshtoken._log import logger, one_line, redact, remember_secret
from freshtoken._record import replace
from freshtoken._token import Token
from freshtoken.oauth._codes import (
    ClientRefusedError,
    EndpointNotFoundError,
    RefreshRefusedError,
    error_for_code,
)

if TYPE_CHECKING:
    from freshtoken.oauth._grants import Grant
    from freshtoken.provider._endpoints import Endpoints

MAX_EXPIRES_IN = 366 * 86400  # a year and a day: anything longer is a server bug
#: The lifetime of a token whose answer has no expires_in and which is no JWT with exp: short, so
#: that no token is counted valid after a server with short tokens expired it (Keycloak's
#: default is 5 minutes); RFC 6749 §5.1 leaves it to the server's documentation.
DEFAULT_LIFETIME = 300.0
_EXCERPT_CHARS = 160
_SECRET_FIELDS = frozenset(
    {"access_token", "refresh_token", "id_token", "client_secret", "code", "assertion"}
)
# What the RFCs allow, and nothing else: these values are written into headers, shell words,
# .env files and $GITHUB_OUTPUT, so a character outside them ($, `, quotes, ;, a newline) is a
# malformed answer, not something to quote later.
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 §2.1: the access token
_VSCHAR = re.compile(r"[\x20-\x7e]+")  # RFC 6749 A.17: the refresh token
_SCOPE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")  # A.4: NQCHAR tokens, spaces between
_RETRY_IN = re.compile(r"in \[?(\d+(?:\.\d+)?)\]? ?s", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def request_context(endpoints: Endpoints, grant: Grant, credential: str) -> ErrorContext:
    """What the errors of a token request with `grant` name: the endpoint, its region and
    provider, the grant and scope, the client's credential (`_client_auth.credential`)."""
    return ErrorContext(
        endpoints.token_url,
        endpoints.region,
        grant.name,
        grant.scope,
        provider=endpoints.provider,
        issuer=endpoints.issuer,
        credential=credential,
    )


def server_text(value: object, limit: int) -> str:
    """Text a server chose, as it may be printed: one line, no known secret, at most `limit`
    characters."""
    return one_line(value)[:limit]


def excerpt(reply: Reply) -> str:
    """A short, secret-free, single-line view of a reply's body, for error messages."""
    text = reply.body[:8192].decode("utf-8", "replace")
    if reply.data is not None:
        text = json.dumps(
            {k: ("***" if k in _SECRET_FIELDS else v) for k, v in reply.data.items()},
            separators=(",", ":"),
        )
    else:
        title = _TITLE.search(text)
        if title:
            text = f"HTML page titled {title.group(1).strip()!r}"
    text = server_text(text, 10 * _EXCERPT_CHARS)
    if len(text) > _EXCERPT_CHARS:
        text = text[:_EXCERPT_CHARS] + "..."
    return text + (" [body cut at 256 KiB]" if reply.truncated else "")


def _malformed(problem: str, reply: Reply, ctx: ErrorContext) -> MalformedResponseError:
    return MalformedResponseError(
        f"token endpoint {ctx.host} answered HTTP {reply.status} with {problem}: "
        f"{excerpt(reply) or '(empty body)'}",
        status=reply.status,
        hint=MalformedResponseError.explain(ctx),
    )


def error_from_reply(reply: Reply, ctx: ErrorContext, now: float) -> OAuthError:
    """Turn a non-2xx answer into the typed error it stands for."""
    status = reply.status
    data = reply.data
    code = server_text(data.get("error"), 80) if data and data.get("error") else None
    raw = (data.get("error_description") or data.get("description")) if data else None
    description = server_text(raw, 300) if raw else None
    wait = retry_after(reply.headers, now)

    # Some servers answer their token-endpoint rate limit with 400, not 429.
    if status == 429 or (description or "").lower().startswith("rate limit exceeded"):
        if wait is None and description and (found := _RETRY_IN.search(description)):
            wait = float(found.group(1))
        return RateLimitedError(
            f"token endpoint {ctx.host} is rate-limiting requests",
            status=status,
            description=description,
            retry_after=wait,
            hint=RateLimitedError.explain(ctx),
        )
    if status == 404:
        # Whatever the body says (some answer {"error": "not_found"}): not a token endpoint.
        return EndpointNotFoundError(
            f"token endpoint {ctx.host} answered HTTP 404: no token endpoint at that URL",
            status=status,
            hint=EndpointNotFoundError.explain(ctx),
        )
    if code:
        return error_for_code(
            code,
            ctx,
            message=f"token endpoint {ctx.host} refused the {ctx.grant or 'token'} request",
            description=description,
            status=status,
            retry_after=wait,
        )
    if 300 <= status < 400:
        location = reply.headers.get("location", "(no Location)")
        return MalformedResponseError(
            f"token endpoint {ctx.host} redirected (HTTP {status}) to "
            f"{server_text(location.split('?')[0], 200)}",
            status=status,
            hint="A POST carrying credentials is never sent on to another URL. Set the token "
            "URL to the final address.",
        )
    if status in (413, 414, 431):
        return InvalidRequestError(
            f"token endpoint {ctx.host} refused the request as too large (HTTP {status})",
            status=status,
            hint="The request's headers or form are larger than the server accepts: check that "
            "the client secret, client id and scope hold what they should (not a whole file).",
        )
    if status >= 500:
        return ServerError(
            f"token endpoint {ctx.host} failed with HTTP {status}: "
            f"{excerpt(reply) or '(empty body)'}",
            status=status,
            retry_after=wait,
            hint=ServerError.explain(replace(ctx, status=status)),
        )
    body = "an empty body" if not reply.body.strip() else "no OAuth error"
    if status in (401, 403):
        # The server refusing this client (a secret, a method, a scope, a grant), never a sign
        # of a wrong URL: it came from the server's own discovery document, often.
        return ClientRefusedError(
            f"token endpoint {ctx.host} refused this client with HTTP {status} and {body}",
            status=status,
            hint=ClientRefusedError.explain(ctx),
        )
    if status == 400 and ctx.grant == "refresh_token":
        return RefreshRefusedError(
            f"token endpoint {ctx.host} refused the refresh_token request with HTTP 400 and "
            + body,
            status=status,
            hint=RefreshRefusedError.explain(ctx),
        )
    return _malformed("no OAuth error in the body", reply, ctx)


def _expires_in(value: object, reply: Reply, ctx: ErrorContext, what: str = "expires_in") -> float:
    if isinstance(value, bool) or value is None:
        raise _malformed(f"a non-numeric {what}", reply, ctx)
    if isinstance(value, str):
        # Some servers (Azure AD v1) send a numeric string; the number is what matters.
        try:
            value = float(value.strip())
        except ValueError:
            raise _malformed(f"a non-numeric {what}", reply, ctx) from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise _malformed(f"a non-numeric {what}", reply, ctx)
    if value <= 0:
        raise _malformed(f"a zero or negative {what}", reply, ctx)
    if value > MAX_EXPIRES_IN:
        raise _malformed(f"an absurd {what} (over a year)", reply, ctx)
    return float(value)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@functools.cache
def _warn_default_lifetime(token_url: str) -> None:
    logger.warning(
        "warning: token endpoint %s answered without expires_in (RFC 6749 only recommends "
        "it) and its token is not a JWT with exp: counting it as living %.0fs "
        "(docs/promises.md)",
        token_url,
        DEFAULT_LIFETIME,
    )


def _lifetime(
    data: dict[str, Any], access: str, reply: Reply, ctx: ErrorContext, sent_at: float
) -> float:
    """expires_in; without it, a JWT's exp less when the request was sent, and no more than
    exp less iat (the server's own clock on both sides: a clock of ours behind the server's
    adds nothing; a token handed out again, issued long ago, gets only what it has left), or
    DEFAULT_LIFETIME, said once per endpoint."""
    if data.get("expires_in") is not None:
        return _expires_in(data["expires_in"], reply, ctx)
    claims = unverified_claims(access) or {}
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    if exp is not None:
        left = exp - sent_at if iat is None else min(exp - iat, exp - sent_at)
        return _expires_in(left, reply, ctx, "JWT exp (and no expires_in)")
    _warn_default_lifetime(ctx.token_url)
    return DEFAULT_LIFETIME


def parse_token_reply(reply: Reply, sent_at: float, ctx: ErrorContext) -> Token:
    """Check a token response and build the Token.

    The expiry counts from when the request was sent, not received, so that a slow answer
    never makes a token look younger than it is.
    """
    if reply.truncated:
        raise _malformed("an oversized body", reply, ctx)
    if not 200 <= reply.status < 300:
        raise error_from_reply(reply, ctx, sent_at)
    data = reply.data
    if data is None:
        content_type = reply.headers.get("content-type", "no content type")
        raise _malformed(f"a body that is not a JSON object ({content_type})", reply, ctx)
    access = data.get("access_token")
    if isinstance(access, str) and access:
        remember_secret(access)
    if data.get("error"):  # a token beside an error is not trusted: the error is the answer
        raise error_from_reply(reply, ctx, sent_at)
    if not isinstance(access, str) or not access:
        raise _malformed("no access_token", reply, ctx)
    if not B64TOKEN.fullmatch(access):
        raise _malformed("an access_token outside RFC 6750's characters", reply, ctx)
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        shown = token_type if isinstance(token_type, str) else "missing"
        raise _malformed(f"token_type {shown[:20]!r} where 'bearer' is required", reply, ctx)
    lifetime = _lifetime(data, access, reply, ctx, sent_at)
    refresh = data.get("refresh_token")
    if refresh is not None and (not isinstance(refresh, str) or not refresh):
        raise _malformed("a refresh_token that is not a string", reply, ctx)
    if refresh:
        remember_secret(refresh)
        if not _VSCHAR.fullmatch(refresh):
            raise _malformed("a refresh_token outside RFC 6749's characters", reply, ctx)
    scope = data.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise _malformed("a scope that is not a string", reply, ctx)
    if scope is not None and not _SCOPE.fullmatch(scope):
        raise _malformed("a scope outside RFC 6749's characters", reply, ctx)
    return Token(
        access_token=access,
        token_type="Bearer",
        expires_at=sent_at + lifetime,
        issued_at=sent_at,
        refresh_token=refresh or None,
        scope=tuple(scope.split()) if scope is not None else None,
    )


def unverified_claims(jwt: str) -> dict[str, Any] | None:
    """The claims of a JWT, its signature not checked (None: not a readable JWT): for what
    came straight from the token endpoint, or for what is only shown."""
    payload = jwt.split(".")[1] if jwt.count(".") == 2 else ""
    try:
        return json_object(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None


def check_nonce(reply: Reply, nonce: str, ctx: ErrorContext) -> None:
    """An ID token in a token answer must carry the nonce of the login's authorization request
    (OpenID Connect Core §3.1.3.7, item 11); one carrying another was not minted for this
    login. The signature is not checked: the answer came straight from the token endpoint."""
    data = reply.data or {}
    id_token = data.get("id_token")
    if not isinstance(id_token, str):
        return  # no ID token in this flow: nothing to check
    remember_secret(id_token)
    claims = unverified_claims(id_token)
    if claims is None or claims.get("nonce") != nonce:
        said = "carries another nonce" if claims and "nonce" in claims else "carries no nonce"
        if claims is None:
            said = "is not a readable JWT"
        raise LoginError(
            f"the ID token from {ctx.host} {said}: it was not minted for this login",
            error="invalid_nonce",
            hint="The login's authorization request and the code redeemed do not belong "
            "together (a replayed or injected ID token). Run `freshtoken login` again.",
        )


# -- failures that got no answer, and whether the server can have acted on the request


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


def transport_error(exc: httpx.HTTPError, ctx: ErrorContext) -> FreshtokenError:
    """Name a failure that got no HTTP answer."""
    reason = redact(str(exc))[:200] or type(exc).__name__
    chain = _causes(exc)
    cls: type[TransportError]
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ConfigurationError(
            f"unsupported URL for {ctx.host}: {reason}",
            hint="Use an http(s) URL.",
        )
    if isinstance(exc, httpx.TimeoutException):
        cls, what = RequestTimeoutError, "timed out"
    elif isinstance(exc, httpx.ConnectError) and (
        any(isinstance(c, ssl.SSLError) for c in chain) or "CERTIFICATE_VERIFY" in reason
    ):
        # Only a handshake fails before the request is sent; a TLS error while the answer is
        # read is a dropped exchange, whose request may have been processed.
        if "WRONG_VERSION_NUMBER" in reason:  # the port answered in plain HTTP, not TLS
            return TLSError(
                f"{ctx.host} answered the TLS handshake in plain HTTP ({reason})",
                hint="The URL says https:// but that port speaks plain HTTP: use the port of its "
                "HTTPS endpoint (or http://, which freshtoken allows on loopback only).",
            )
        cls, what = TLSError, "failed TLS verification"
    elif any(isinstance(c, socket.gaierror) for c in chain) or "name resolution" in reason.lower():
        cls, what = NameResolutionError, "could not be resolved"
    elif isinstance(exc, httpx.ConnectError):
        cls, what = ConnectError, "refused or dropped the connection"
    else:
        cls, what = TransportError, "dropped the exchange"
    return cls(f"{ctx.host} {what} ({reason})", hint=cls.explain(ctx))


def surely_unprocessed(err: FreshtokenError) -> bool:
    """True when the server cannot have acted on the request, so a single-use credential
    (refresh token, code) it carried is still unspent and may be sent again: no connection
    (refused, no handshake), nothing sent, a refusal, or a 503 the server itself gave (with
    Retry-After, or its OAuth code temporarily_unavailable).

    A 502 or 504 is a gateway's word: its upstream may have rotated the token before the
    gateway gave up on it, so that outcome is unknown, as a timeout's is."""
    if isinstance(err, ConnectError | TLSError | ConfigurationError | RateLimitedError):
        return True
    if isinstance(err, AuthorizationError):
        return True
    said_by_server = err.retry_after is not None or err.error == "temporarily_unavailable"
    return err.status == 503 and said_by_server
