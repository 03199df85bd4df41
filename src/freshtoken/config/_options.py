"""The settings table: one field per setting, with its kind, help, example and default.

`SettingValues` is the only declaration of a setting: the loader, `freshtoken doctor`, the
exec scrub and docs/configuration.md all read `OPTIONS`, which is derived from its fields.

Type checkers see a frozen dataclass (`dataclass_transform`); at run time each field is its
`Option` and `Settings` sets the values in one loop. `dataclasses` would compile an `__init__`,
`__eq__` and `__repr__` of 45 fields, twice (here and in `Settings`): 60 M instructions, more than
the rest of a `freshtoken token` store hit (bench/startup.py).
"""

from __future__ import annotations

from typing import Any, dataclass_transform

from freshtoken._secret import Secret
from freshtoken.provider._presets import ALIASES, PRESETS, REGIONAL

PREFIX = "FRESHTOKEN_"
CONFIG_NAME = "freshtoken.toml"
# Where a secret can come from besides its own variable: a suffix of the variable or file key.
SECRET_SOURCES = ("_file", "_keyring")
#: The JWS algorithms of client assertions (RFC 7518 §3.1, RFC 8037 for EdDSA).
SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                "EdDSA", "HS256", "HS384", "HS512")  # fmt: skip


class Option:
    """One setting. Secrets come from `$VAR`, `$VAR_FILE` (`-` for stdin), `$VAR_KEYRING` (an
    OS keyring entry) or `key_file` / `key_keyring` in a profile, never from the file itself nor
    from the command line.

    `kind`: text | secret | seconds | count | scope. `default` is the default as the
    documentation shows it ("" = none); `value` is the default value. A `group` ("endpoint",
    "store", ...) is taken whole from the highest source that sets any of it."""

    __slots__ = ("choices", "default", "example", "group", "help", "key", "kind", "value")

    def __init__(
        self,
        kind: str,
        help: str,
        example: str,
        *,
        default: str,
        choices: tuple[str, ...] = (),
        group: str = "",
        value: Any = None,
    ) -> None:
        self.key = ""  # the field's name, set when the table is created
        self.kind, self.help, self.example, self.default = kind, help, example, default
        self.choices, self.group, self.value = choices, group, value

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name

    def __repr__(self) -> str:
        return f"Option({self.key!r}, {self.kind!r})"

    @property
    def env(self) -> str:
        return PREFIX + self.key.upper()

    @property
    def sources(self) -> tuple[str, ...]:
        """Suffixes of the variables and file keys it is read from ("": its own name)."""
        return ("", *SECRET_SOURCES) if self.kind == "secret" else ("",)


def _setting(
    kind: str,
    help: str,
    example: str,
    default: Any = None,
    *,
    shown: str | None = None,
    choices: tuple[str, ...] = (),
    group: str = "",
) -> Any:
    """A field of the table; `shown` documents a default that is computed elsewhere."""
    if shown is None:
        shown = f"{default:g}" if isinstance(default, float) else str(default or "")
    return Option(kind, help, example, default=shown, choices=choices, group=group, value=default)


@dataclass_transform(frozen_default=True, kw_only_default=True)
class _Table:
    """Type checkers read a subclass as a frozen dataclass of keyword-only fields."""


E, S, K, R = "endpoint", "store", "sink", "redirect"  # the groups


class SettingValues(_Table):
    """Every setting, each declared once."""

    token_url: str | None = _setting(
        "text",
        "Token endpoint; wins over issuer and region.",
        "https://login.example.com/oauth/token",
        group=E,
    )
    issuer: str | None = _setting(
        "text",
        "Issuer URL; endpoints found by RFC 8414 / OIDC discovery.",
        "https://idp.example.com/realms/ci",
        group=E,
    )
    region: str | None = _setting(
        "text", f"{REGIONAL.title} region key, domain or API URL.", REGIONAL.example_region, group=E
    )
    provider: str = _setting(
        "text",
        "; ".join(f"{p.name}: {p.summary}" for p in PRESETS.values()),
        REGIONAL.name,
        "",
        choices=("", *PRESETS),
        group=E,
    )
    api_url: str | None = _setting(
        "text",
        "API base URL of the provider (with a preset: where `serve --proxy` forwards and "
        "tokens are revoked); wins over the region's API host.",
        "https://api.mypurecloud.ie",
        shown=REGIONAL.hints["api_host"],
        group=E,
    )
    introspection_url: str | None = _setting(
        "text",
        "RFC 7662 endpoint; wins over discovery.",
        "https://login.example.com/oauth/introspect",
        group=E,
    )
    revocation_url: str | None = _setting(
        "text",
        "RFC 7009 endpoint (`freshtoken revoke`); wins over discovery.",
        "https://login.example.com/oauth/revoke",
        group=E,
    )
    authorization_url: str | None = _setting(
        "text",
        "Authorization endpoint of `freshtoken login`, when not discovered.",
        "https://login.example.com/oauth/authorize",
        group=E,
    )
    device_authorization_url: str | None = _setting(
        "text",
        "RFC 8628 device authorization endpoint of `freshtoken login --device`, when not "
        "discovered.",
        "https://login.example.com/oauth/device/code",
        group=E,
    )
    redirect_port: int | None = _setting(
        "count",
        "Port of `freshtoken login`'s redirect listener on 127.0.0.1 (for servers that want "
        "the exact redirect URI registered: http://127.0.0.1:PORT/callback).",
        "8765",
        shown="any free port",
        group=R,  # where the authorization code goes: not a repository's choice
    )
    redirect_uri: str | None = _setting(
        "text",
        "The whole redirect URI of `freshtoken login`, for servers that match it exactly "
        "(host 127.0.0.1, localhost or [::1], port and path as registered); wins over "
        "redirect_port.",
        "http://localhost:8765/oauth/callback",
        shown="http://127.0.0.1:PORT/callback",
        group=R,
    )
    prompt: str | None = _setting(
        "text",
        "The `prompt` of `freshtoken login`'s authorization request; none sends no prompt.",
        "login",
        shown="consent when offline_access is asked of an OpenID provider, else none",
    )
    client_id: str | None = _setting("text", "OAuth client id.", "3f2a...c9")
    client_secret: Secret | None = _setting(
        "secret", "OAuth client secret.", "/run/secrets/client_secret"
    )
    client_key: Secret | None = _setting(
        "secret",
        "PEM private key of private_key_jwt, or of client_cert for mutual TLS (RSA, EC "
        "P-256/384/521 or Ed25519; PKCS#8 or traditional; encrypted with "
        "client_key_passphrase). Never on the command line.",
        "/run/secrets/client_key.pem",
    )
    client_key_passphrase: Secret | None = _setting(
        "secret", "Passphrase of an encrypted client_key.", "/run/secrets/client_key_passphrase"
    )
    client_cert: Secret | None = _setting(
        "secret",
        "PEM client certificate (then any intermediates) of tls_client_auth and "
        "self_signed_tls_client_auth; its private key is client_key (docs/mutual-tls.md).",
        "/run/secrets/client_cert.pem",
    )
    client_key_id: str | None = _setting(
        "text",
        "The `kid` of private_key_jwt assertions, as registered with the server.",
        "ci-2025-01",
        shown="the key's RFC 7638 JWK thumbprint",
    )
    signing_alg: str = _setting(
        "text",
        "Assertion algorithm: RS256, RS384, RS512, PS256, PS384, PS512 (RSA key), ES256/384/512 "
        "(EC key on P-256/384/521), EdDSA (Ed25519 key), HS256/384/512 (client_secret_jwt).",
        "PS256",
        "",
        shown="RS256, the EC curve's, EdDSA, or HS256",
        choices=("", *SIGNING_ALGS),
    )
    assertion_audience: str = _setting(
        "text",
        "The `aud` of private_key_jwt and client_secret_jwt assertions: token_endpoint, "
        "issuer, or a URL the server asks for.",
        "issuer",
        "token_endpoint",
    )
    client_assertion: str | None = _setting(
        "text",
        "A client assertion from the platform, fetched for every request: file:PATH (a "
        "Kubernetes projected token, a SPIFFE JWT-SVID) or github-actions:AUDIENCE (the job's "
        "OIDC token; needs `permissions: id-token: write`). auth_method may then be unset "
        "(docs/workload-identity.md).",
        "github-actions:api://AzureADTokenExchange",
    )
    grant: str = _setting(
        "text",
        "client_credentials; refresh_token: a seeded refresh token only; jwt_bearer (RFC 7523, "
        "the assertion setting) or token_exchange (RFC 8693, subject_token).",
        "token_exchange",
        "client_credentials",
        choices=("client_credentials", "refresh_token", "jwt_bearer", "token_exchange"),
    )
    assertion: str | None = _setting(
        "text",
        "The jwt_bearer grant's assertion: file:PATH or github-actions:AUDIENCE.",
        "github-actions:https://idp.example.com",
    )
    subject_token: str | None = _setting(
        "text",
        "The token_exchange grant's subject token: file:PATH or github-actions:AUDIENCE.",
        "github-actions:https://idp.example.com",
    )
    subject_token_type: str = _setting(
        "text",
        "RFC 8693 type of the subject token (a JWT; id_token where the server wants that).",
        "urn:ietf:params:oauth:token-type:id_token",
        "urn:ietf:params:oauth:token-type:jwt",
    )
    requested_token_type: str | None = _setting(
        "text",
        "RFC 8693 type of the token asked for (none sent when unset).",
        "urn:ietf:params:oauth:token-type:access_token",
    )
    actor_token: str | None = _setting(
        "text",
        "RFC 8693 actor token (acting for the subject): file:PATH or github-actions:AUDIENCE.",
        "file:/var/run/secrets/tokens/actor",
    )
    actor_token_type: str = _setting(
        "text",
        "RFC 8693 type of the actor token.",
        "urn:ietf:params:oauth:token-type:id_token",
        "urn:ietf:params:oauth:token-type:jwt",
    )
    refresh_token: Secret | None = _setting(
        "secret",
        "A refresh token to start from (a CI secret); ignored when the store already holds a "
        "newer one of its chain (docs/refresh-tokens.md).",
        "/run/secrets/refresh_token",
    )
    refresh_token_sink: str | None = _setting(
        "text",
        "Where every rotated refresh token is written back before the new access token is "
        "handed out: github-secret://OWNER/REPO/NAME, github-secret://OWNER/REPO/environments/"
        "ENV/NAME, github-secret://orgs/ORG/NAME, file:///path, or command:PROGRAM ARGS (the "
        "token on standard input).",
        "github-secret://my-org/my-repo/FRESHTOKEN_REFRESH_TOKEN",
        group=K,
    )
    github_token: Secret | None = _setting(
        "secret",
        "GitHub token that may write the sink's secret (a fine-grained token with Secrets: "
        "write, or a GitHub App's); not the job's GITHUB_TOKEN. API base: $GITHUB_API_URL.",
        "/run/secrets/github_token",
    )
    scope: tuple[str, ...] = _setting(
        "scope",
        f"Scopes, space-separated{REGIONAL.hints['scope']}.",
        "read write",
        (),
    )
    auth_method: str = _setting(
        "text",
        "client_secret_basic, client_secret_post, none, private_key_jwt (client_key), "
        "client_secret_jwt (docs/private-key-jwt.md, docs/client-secret-jwt.md), "
        "tls_client_auth or self_signed_tls_client_auth (client_cert, client_key; "
        "docs/mutual-tls.md).",
        "private_key_jwt",
        "client_secret_basic",
        choices=(
            "client_secret_basic",
            "client_secret_post",
            "none",
            "private_key_jwt",
            "client_secret_jwt",
            "tls_client_auth",
            "self_signed_tls_client_auth",
        ),
    )
    audience: str | None = _setting(
        "text",
        "Extra client-credentials parameter (Auth0 and others); token_exchange's audience.",
        "https://api.example.com",
    )
    resource: str | None = _setting(
        "text", "RFC 8707 resource indicator (also token_exchange's).", "https://api.example.com"
    )
    store: str | None = _setting(
        "text",
        "memory://, sqlite:///path, redis://..., rediss://... (TLS), "
        "redis+cluster://... (Redis Cluster).",
        "redis://ci@redis.internal:6379/0",
        shown="SQLite in the user cache dir or $RUNNER_TEMP",
        group=S,
    )
    store_key: Secret | None = _setting(
        "secret",
        "Base64 of 32 bytes sealing stored entries (AES-256-GCM).",
        "/run/secrets/freshtoken-store-key",
        shown="a 0600 key file beside a SQLite store",
        group=S,
    )
    store_fail: str = _setting(
        "text",
        "open: mint locally while a shared store is down; closed: fail.",
        "closed",
        "open",
        choices=("open", "closed"),
        group=S,
    )
    redis_password: Secret | None = _setting(
        "secret", "Redis password (or in the URL).", "/run/secrets/redis", group=S
    )
    login: str | None = _setting(
        "text",
        "Whose login the store holds (a user name, an e-mail): part of the cache key, so that "
        "people who log in with the same client keep apart entries in one shared store. "
        "Needed by `freshtoken login` for a public client (auth_method none) on Redis.",
        "alice",
        group=S,
    )
    redis_prefix: str = _setting(
        "text", "Prefix of every Redis key.", "ci:", "freshtoken:", group=S
    )
    redis_timeout: float = _setting(
        "seconds", "Longest wait for one Redis call.", "0.5", 1.0, group=S
    )
    redis_lease: float = _setting(
        "seconds", "Redis lock lease, renewed while held.", "10", 10.0, group=S
    )
    connect_timeout: float = _setting("seconds", "Connect timeout to the token endpoint.", "5", 5.0)
    read_timeout: float = _setting("seconds", "Read timeout at the token endpoint.", "15", 15.0)
    retry_budget: float = _setting(
        "seconds", "Longest one token request may take, retries included.", "30", 30.0
    )
    min_ttl: float | None = _setting(
        "seconds",
        "What a caller who names no min_ttl is promised: a token still valid this long (at "
        "most a fresh token's lifetime). Unset: the default margin (docs/promises.md).",
        "300",
    )
    invalidate_cooldown: float = _setting(
        "seconds",
        "After a 401, a token minted to replace a refused one is not dropped again for this "
        "long (a 401 loop cannot burn the token endpoint's rate limit).",
        "5",
        5.0,
    )
    rotation_revokes_access: str = _setting(
        "text",
        "Does the server revoke the previous access token when it rotates a refresh token "
        "(django-oauth-toolkit does)? yes: no rotation while a token handed out is promised "
        "valid; no: rotate freely; auto: learned through introspection, yes until known.",
        "no",
        "auto",
        choices=("auto", "yes", "no"),
    )
    proxy_upstream: str | None = _setting(
        "text",
        "Where `serve --proxy` forwards.",
        "https://api.mypurecloud.ie",
        shown="api_url, or " + REGIONAL.hints["api_host"],
        group=E,
    )
    serve_max_connections: int = _setting(
        "count",
        "Connections `serve`/`exec` handle at once, per listener; more are answered 503.",
        "16",
        64,
    )
    serve_idle_timeout: float = _setting(
        "seconds",
        "A `serve`/`exec` connection idle this long (no request, or a stalled one) is closed.",
        "10",
        30.0,
    )


OPTIONS: tuple[Option, ...] = tuple(vars(SettingValues)[k] for k in SettingValues.__annotations__)
BY_KEY = {o.key: o for o in OPTIONS}


def split_source(key: str) -> tuple[str, str]:
    """`client_secret_file` -> (`client_secret`, `_file`); a plain key -> (key, "")."""
    for suffix in SECRET_SOURCES:
        if key.endswith(suffix) and key.removesuffix(suffix) in BY_KEY:
            return key.removesuffix(suffix), suffix
    return key, ""


def secret_variables() -> frozenset[str]:
    """Every variable that can carry a secret (never handed to a child of `exec`), the store
    URL included: it may hold the Redis password."""
    return frozenset(
        [o.env + sfx.upper() for o in OPTIONS if o.kind == "secret" for sfx in o.sources]
        + [name for name, key in ALIASES.items() if key == "client_secret"]
        + [BY_KEY["store"].env]
    )


def group_of(key: str) -> str:
    """The group of a file key or setting (`store_key_file` -> "store"), "" when none."""
    return BY_KEY[split_source(key)[0]].group
