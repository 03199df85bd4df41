"""What the test server is set up with (clients, knobs, malformed modes) and what it keeps (the
tokens it issued, its counters, the token requests it received)."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

DEMO_CLIENT_ID = "demo-client"
DEMO_CLIENT_SECRET = "demo-secret"  # a test server's published credentials, not a secret
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ALL_GRANTS = frozenset(
    {
        "client_credentials",
        "refresh_token",
        "authorization_code",
        DEVICE_CODE_GRANT,
        JWT_BEARER_GRANT,
        TOKEN_EXCHANGE_GRANT,
    }
)
TOKEN_REQUESTS_KEPT = 1000

# An endpoint's answer: status, body (a dict or list is sent as JSON, anything else as text),
# and extra headers.
Answer = tuple[int, Any, dict[str, str]]

MALFORMED = {
    "html_502": "an HTML error page with HTTP 502",
    "html_200": "an HTML login page with HTTP 200",
    "non_json": "plain text with HTTP 200",
    "empty_body": "an empty body with HTTP 200",
    "json_array": "a JSON array",
    "truncated_json": "JSON cut off midway",
    "no_access_token": "JSON without access_token",
    "empty_access_token": "an empty access_token",
    "access_token_not_string": "a numeric access_token",
    "access_token_with_space": "an access_token with a space and newline",
    "access_token_shell": "an access_token that is shell syntax ($(...)), outside b64token",
    "token_type_missing": "no token_type",
    "token_type_mac": "token_type 'mac'",
    "expires_in_string": "expires_in as a numeric string",
    "expires_in_non_numeric": "expires_in as a word",
    "expires_in_missing": "no expires_in (an opaque token: a default lifetime applies)",
    "jwt_without_expires_in": "no expires_in, a JWT access token with iat and exp 120 s apart",
    "cached_jwt_without_expires_in": "no expires_in, a JWT issued 3300 s ago living 3600 s",
    "error_and_token": "HTTP 200 with both an error and an access_token",
    "expires_in_negative": "a negative expires_in",
    "expires_in_zero": "expires_in 0",
    "expires_in_absurd": "expires_in of a century",
    "expires_in_bool": "expires_in true",
    "refresh_token_not_string": "a numeric refresh_token",
    "refresh_token_newline": "a refresh_token with a line break and a workflow command",
    "scope_not_string": "scope as a list",
    "scope_control": "a scope with ESC and BEL characters",
    "huge_body": "a body over 1 MiB",
    "error_without_code": "HTTP 400 with a JSON body that names no error",
    "redirect": "HTTP 302 to another host",
}


@dataclass(frozen=True)
class Client:
    """A registered OAuth client. `secret=None` makes it a public client."""

    client_id: str
    secret: str | None
    scopes: frozenset[str] | None = None  # None: any scope is allowed
    grants: frozenset[str] = ALL_GRANTS
    ttl: float | None = None  # None: the server's ttl
    #: The one client-authentication method it may use (None: any).
    auth_method: str | None = None
    #: Redirect URIs matched exactly, host, port and path (None: any loopback port).
    redirect_uris: tuple[str, ...] | None = None
    #: Public keys (JWKs) its private_key_jwt assertions are checked against; for
    #: self_signed_tls_client_auth, its certificates (`x5c`, RFC 8705 §2.2).
    jwks: tuple[dict[str, Any], ...] = ()
    #: tls_client_auth: the subject DN (RFC 4514) its certificate must have (RFC 8705 §2.1.2).
    tls_client_auth_subject_dn: str | None = None

    def __repr__(self) -> str:
        return f"Client({self.client_id!r}, grants={sorted(self.grants)})"


def knob(
    default: Any, help: str, *, flag: str | None = None, choices: tuple[str, ...] | None = None
) -> Any:
    """A `Knobs` field. `freshtoken testserver` builds its options from these: `help` is the
    option's help (for a bool that defaults to True, its `--no-...` flag's), `flag` replaces the
    derived option name, `choices` limits the values."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices})


@dataclass
class Knobs:
    """Behaviour switches; all can be changed while the server runs (`configure`)."""

    ttl: float = knob(3600.0, "Access-token lifetime (s).")
    refresh_on_client_credentials: bool = knob(
        False, "Issue refresh tokens on client_credentials (as Keycloak can)."
    )
    rotate_refresh_tokens: bool = knob(True, "Keep refresh tokens on refresh.", flag="--no-rotate")
    reuse_detection: bool = knob(True, "Do not revoke on reuse.")
    revoke_access_on_rotation: bool = knob(
        False,
        "Delete the access token issued with a refresh token when that one is rotated "
        "(django-oauth-toolkit does).",
    )
    refresh_token_ttl: float = knob(30 * 86400.0, "Refresh-token lifetime (s).")
    refresh_token_idle: float = knob(
        0.0, "Refuse a refresh token unused this long (s), as Okta's idle lifetime (0: never)."
    )
    error_style: str = knob(
        "rfc6749",
        "genesys adds `description` beside error_description (--genesys sets it); nonstandard "
        "says invalid_code, scope_invalid, authorization_type_invalid... for the RFC's codes.",
        choices=("rfc6749", "genesys", "nonstandard"),
    )
    bare_refusals: bool = knob(
        False,
        "Refuse a client (bad secret, unknown client, wrong authentication method, a grant it "
        "may not use, a scope refused on client credentials) with HTTP 403 and an empty body, "
        "and every failed refresh with 400 and an empty body, as a third server does.",
    )
    bare_refusal_status: int = knob(403, "The HTTP status of a bare refusal of a client.")
    client_credentials_need_scope: bool = knob(
        False, "Refuse client credentials without a scope (invalid_scope)."
    )
    failed_auth_burns_refresh: bool = knob(
        False,
        "A refresh presented with failing client authentication revokes that refresh token "
        "for its rightful owner too, as a third server does.",
    )
    assertion_audience: str = knob(
        "either",
        "The aud a client assertion must name: the token endpoint URL, the issuer, or either.",
        choices=("either", "token_endpoint", "issuer"),
    )
    assertion_algs: str = knob(
        "", "Client-assertion algorithms accepted (comma-separated, e.g. RS256,ES256; empty: all)."
    )
    check_jti: bool = knob(True, "Accept a client assertion's jti again (no replay check).")
    jti_window: float = knob(
        0.0, "How long a client assertion's jti is remembered (s; 0: until its exp)."
    )
    bind_tokens: bool = knob(
        True,
        "Do not bind access tokens to the client certificate presented over HTTPS (RFC 8705 "
        "§3: cnf x5t#S256, checked by the API).",
    )
    mtls_aliases_only: bool = knob(
        False,
        "Take client certificates at the mtls_endpoint_aliases only (/mtls/oauth/...), as a "
        "server whose plain endpoints ask for none (RFC 8705 §5).",
    )
    scope_in_response: bool = knob(True, "Leave scope out of token responses, as Genesys does.")
    failure_rate: float = knob(0.0, "Share of token requests answered 503.")
    fail_first: int = knob(0, "Answer the first N token requests 503.")
    latency: float = knob(0.0, "Seconds added to every token request.")
    lost_answers: int = knob(
        0,
        "Process the next N token requests, then answer each with a gateway's HTML 504 (every "
        "second one 502) instead: the server acted, its answer never reached the client.",
    )
    rate_limit: int = knob(0, "Token requests allowed per window (0: off).")
    rate_window: float = knob(60.0, "Length of the token-endpoint rate-limit window (s).")
    rate_limit_style: str = knob(
        "genesys", "Over the limit: Genesys' 400, or 429.", choices=("genesys", "429")
    )
    api_rate_limit: int = knob(0, "Protected-API requests per minute (0: off).")
    code_ttl: float = knob(60.0, "Authorization-code lifetime (s).")
    deny_authorization: bool = knob(
        False, "Redirect from /oauth/authorize with error=access_denied (the user declined)."
    )
    require_pkce: bool = knob(False, "Refuse /oauth/authorize without a code_challenge.")
    offline_access_needs_consent: bool = knob(
        False,
        "An OpenID provider as panva's oidc-provider: drop offline_access (so no refresh "
        "token) from an authorization request without prompt=consent.",
    )
    require_nonce: bool = knob(False, "Refuse /oauth/authorize with openid and no nonce.")
    wrong_nonce: bool = knob(False, "Answer an ID token whose nonce is not the request's.")
    refuse_plain_pkce: bool = knob(False, "Refuse code_challenge_method=plain (S256 only).")
    device_interval: float = knob(5.0, "Polling interval a device authorization asks for (s).")
    device_code_ttl: float = knob(600.0, "Device-code lifetime (s).")
    device_slow_down: int = knob(0, "Answer the first N device-code polls slow_down.")
    malformed: str | None = knob(
        None, "Answer token requests malformed (see docs).", choices=tuple(MALFORMED)
    )
    narrow_scope: bool = knob(False, "Grant only the allowed part of a scope (RFC 6749 §3.3).")
    abandon_on_disconnect: bool = knob(
        False, "After --latency, drop requests whose client has gone."
    )
    introspect_refresh_tokens: bool = knob(
        True,
        "Answer introspection of every refresh token, live or not, with active false "
        "(django-oauth-toolkit looks up access tokens only).",
    )
    introspection_sees_own_method_only: bool = knob(
        False,
        "Answer introspection of a refresh token issued to another client-authentication "
        "method (Basic, post, an assertion) with active false, as a third server does.",
    )
    seed: int | None = knob(None, "Seed of the random failures (--failure-rate).")
    mount: str = knob(
        "",
        "Serve the OAuth endpoints under this path (e.g. /o; the issuer gets it too) with no "
        "metadata at the root, as django-oauth-toolkit: RFC 8414 metadata at /.well-known/"
        "oauth-authorization-server/o and /o/.well-known/oauth-authorization-server, OIDC "
        "metadata naming no revocation endpoint at /o/.well-known/openid-configuration.",
    )
    metadata_only_openid: bool = knob(
        False,
        "Serve the metadata only as OpenID Connect's document, at {issuer}/.well-known/"
        "openid-configuration (nothing at RFC 8414's places), as Keycloak-style servers with a "
        "path in the issuer do.",
    )
    metadata_grants: str = knob(
        "",
        "The grant_types_supported the metadata lists (comma-separated; empty: every grant), "
        "as servers that under-report do.",
    )
    metadata_omit: str = knob(
        "", "Fields left out of the RFC 8414 metadata (comma-separated: revocation_endpoint,...)."
    )

    def __post_init__(self) -> None:
        self.mount = "/" + self.mount.strip("/") if self.mount.strip("/") else ""


@dataclass
class AccessRecord:
    client_id: str
    scope: tuple[str, ...]
    expires: float
    family: str | None
    grant: str
    cnf: str | None = None  # x5t#S256 of the certificate it is bound to (RFC 8705 §3)


@dataclass
class RefreshRecord:
    client_id: str
    scope: tuple[str, ...]
    expires: float
    family: str
    consumed: bool = False
    last_used: float = 0.0  # monotonic: issued, or last presented (when not rotating)
    access: str | None = None  # the access token issued with it
    method: str = ""  # the client-authentication method of the request that got it


@dataclass
class CodeRecord:
    """An authorization code: single use, short lived, bound to its redirect and challenge."""

    client_id: str
    scope: tuple[str, ...]
    redirect_uri: str | None
    expires: float
    challenge: str | None = None
    method: str = "plain"
    nonce: str | None = None


@dataclass
class DeviceRecord:
    """A device authorization (RFC 8628): pending until its user code is approved or denied."""

    client_id: str
    scope: tuple[str, ...]
    user_code: str
    expires: float
    interval: float
    slow_downs: int = 0  # forced slow_down answers still to give
    last_poll: float | None = None
    decision: bool | None = None  # True approved, False denied


@dataclass
class State:
    access: dict[str, AccessRecord] = field(default_factory=dict)
    refresh: dict[str, RefreshRecord] = field(default_factory=dict)
    codes: dict[str, CodeRecord] = field(default_factory=dict)
    devices: dict[str, DeviceRecord] = field(default_factory=dict)  # by device code
    revoked_families: set[str] = field(default_factory=set)
    jtis: dict[str, float] = field(default_factory=dict)  # "client jti" -> remembered until
    minted: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    counters: Counter[str] = field(default_factory=Counter)
    window: list[float] = field(default_factory=lambda: [0.0, 0.0])  # start, count
    inflight: dict[int, float] = field(default_factory=dict)  # request id -> start
    api_window: list[float] = field(default_factory=lambda: [0.0, 0.0])
    token_requests: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=TOKEN_REQUESTS_KEPT)
    )
