"""The hint catalog: for each error code, the plain-language cause and fix.

One entry per code: a template, and the words a provider preset may replace (`{words}`: its
own hint words for that code, provider/_presets.py; the entry's default where no preset is in
use). Every error class's `explain()` reads it (freshtoken/_errors.py), and so does
docs/troubleshooting.md, generated from it. Hints written at a raise site say what only that
site knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from freshtoken._record import record
from freshtoken.provider._presets import words


@record
class ErrorContext:
    """Where a request went, for hints that name the endpoint and region. A hint names a
    provider's own features only when that provider's preset is in use (provider/_presets.py)."""

    token_url: str = ""
    region: str | None = None
    grant: str = ""
    scope: tuple[str, ...] = ()
    status: int | None = None
    provider: str | None = None
    #: The configured issuer, when there is one (its discovery document names the endpoints).
    issuer: str | None = None
    #: What authenticated the client, when it is a key, a certificate or an assertion (its
    #: `describe()`: method, algorithm, public thumbprint; never key material).
    credential: str = ""

    @property
    def host(self) -> str:
        return urlsplit(self.token_url).hostname or self.token_url or "the token endpoint"

    def words(self, slot: str, default: str = "") -> str:
        """The preset's words for hint `slot` here, else `default`."""
        return words(self.provider, self.region, slot, default, host=self.host)


#: error code -> (template, the default of its `{words}`). Fields: host, grant, scope, status,
#: and those the error class computes (`fields()`).
CATALOG: dict[str, tuple[str, str]] = {
    "invalid_client": (
        "The client credentials were not accepted{credential}: check FRESHTOKEN_CLIENT_ID and "
        "{check}, and that the OAuth client exists and is enabled.{words}",
        " Check also that {host} is the right server (region, tenant) for this client.",
    ),
    "invalid_grant": (
        "The refresh token or authorization code was refused: it expired, was revoked (logout, "
        "password change), was already used (refresh tokens are single-use and rotate), or the "
        "client secret was rotated. Obtain a new one with a fresh login and seed it; a "
        "client-credentials client needs no refresh token at all.",
        "",
    ),
    "unauthorized_client": (
        "This OAuth client may not use the {grant} grant. Enable that grant type on the "
        "client{words}, or use the grant it was created for.",
        "",
    ),
    "invalid_scope": (
        "A requested scope is not allowed for this client (asked: {scope}). Remove it from "
        "FRESHTOKEN_SCOPE or allow it on the client.{words}",
        "",
    ),
    "login_failed": (
        "The login did not complete: the user declined (access_denied), the device code "
        "expired before it was approved (expired_token), or nothing arrived in time. Run "
        "`freshtoken login` again and finish it in the browser; check that the client allows "
        "the authorization-code (or device) grant and the requested scopes.",
        "",
    ),
    "invalid_request": (
        "The server rejected the request as malformed; check the grant's parameters.",
        "",
    ),
    "insufficient_scope": (
        "The server granted fewer scopes than requested. Allow the missing scopes on the "
        "client, or ask for fewer (FRESHTOKEN_SCOPE).",
        "",
    ),
    "rate_limited": (
        "The token endpoint is rate-limiting this client{words}. Share one token between steps, "
        "processes and runners (a shared store, or `freshtoken serve`) instead of minting one "
        "per step.",
        "",
    ),
    "server_error": (
        "The authorization server at {host} is failing ({status}). This is usually brief and "
        "retried with backoff; if it lasts, check the provider's status page.",
        "",
    ),
    "malformed_response": (
        "{host} did not answer like an OAuth token endpoint. Check that the URL is the token "
        "endpoint itself (not a login page, API host or an intercepting proxy).",
        "",
    ),
    "connect_error": (
        "Could not connect to {host}. Check the URL and port, that the server is up, and any "
        "proxy settings (HTTPS_PROXY / NO_PROXY).",
        "",
    ),
    "dns_error": (
        "The host {host} could not be resolved. Check {words}, and the machine's DNS.",
        "the URL's host",
    ),
    "timeout": (
        "No answer from {host} in time. Check this machine's network path to it (firewall, "
        "HTTPS_PROXY / NO_PROXY) or raise the timeout.",
        "",
    ),
    "tls_error": (
        "TLS verification of {host} failed. Keep verification on: install the CA that signed "
        "its certificate (SSL_CERT_FILE) or correct the URL.",
        "",
    ),
    "client_refused": (
        "The server at {host} refused this client without saying why; the URL answered, so it "
        "is the server refusing the request, not a wrong address. Likely causes: the client "
        "secret (wrong, or rotated: FRESHTOKEN_CLIENT_SECRET); the client-authentication "
        "method (FRESHTOKEN_AUTH_METHOD: client_secret_basic or client_secret_post, as the "
        "client is registered); {scope_cause} (FRESHTOKEN_SCOPE); the {grant} grant not enabled "
        "for the client; or the client id (FRESHTOKEN_CLIENT_ID).",
        "",
    ),
    "refresh_refused": (
        "The server refused the refresh without saying why. Likely causes: the refresh token "
        "was spent (it rotates), expired or was revoked; or this client's authentication "
        "failed (the secret or FRESHTOKEN_AUTH_METHOD). Check the client's credentials first, "
        "then obtain a new refresh token with `freshtoken login` and seed it.",
        "",
    ),
    "endpoint_not_found": ("{url} is not a token endpoint at {host} (HTTP 404). {tips}", ""),
    "sink_error": (
        "The server rotated the refresh token and the new one could not be written back "
        "(FRESHTOKEN_REFRESH_TOKEN_SINK); until it is, the next run would be seeded with a "
        "spent one. The new token is kept in the store and written first by the next call: fix "
        "the sink (for a GitHub secret, FRESHTOKEN_GITHUB_TOKEN must be allowed to write "
        "secrets) and run freshtoken again in the same job. See docs/refresh-tokens.md.",
        "",
    ),
}


def hint(code: str, ctx: ErrorContext, extra: Mapping[str, str] | None = None) -> str:
    """The catalog's hint for `code` at `ctx` ("" for a code it has none for); `extra`: the
    fields its error class computes."""
    if code not in CATALOG:
        return ""
    template, default = CATALOG[code]
    fields = {
        "host": ctx.host,
        "grant": ctx.grant or "this",
        "scope": " ".join(ctx.scope) or "(none)",
        "status": f"HTTP {ctx.status}" if ctx.status else "server_error",
        "credential": f" ({ctx.credential})" if ctx.credential else "",
        "check": (
            "that the server has this credential registered for the client (a new key, "
            "certificate or secret is registered before it is used)"
            if ctx.credential
            else "the secret (was it rotated?)"
        ),
        **(extra or {}),
    }
    said = ctx.words(code, default.format(**fields))
    return template.format(words=said, **fields)


__all__ = ["CATALOG", "ErrorContext", "hint"]
