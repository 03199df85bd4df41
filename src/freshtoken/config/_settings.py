"""Settings: what freshtoken needs to know, from explicit values, the environment, or a profile
in `freshtoken.toml`. One table (`OPTIONS`) names every setting, its variable and its file key."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from freshtoken._errors import ConfigurationError
from freshtoken._secret import Secret
from freshtoken.oauth._client_auth import AUTH_METHODS
from freshtoken.oauth._grants import ClientCredentials
from freshtoken.provider._endpoints import Endpoints, check_url
from freshtoken.provider._genesys import genesys_region

if TYPE_CHECKING:
    from freshtoken.stores._base import TokenStore

PREFIX = "FRESHTOKEN_"
CONFIG_NAME = "freshtoken.toml"
# Where a secret can come from besides its own variable: a suffix of the variable or file key.
SECRET_SOURCES = ("_file", "_keyring")


def _split_source(key: str) -> tuple[str, str]:
    """`client_secret_file` -> (`client_secret`, `_file`); a plain key -> (key, "")."""
    for suffix in SECRET_SOURCES:
        if key.endswith(suffix) and key.removesuffix(suffix) in _BY_KEY:
            return key.removesuffix(suffix), suffix
    return key, ""


@dataclass(frozen=True, slots=True)
class Option:
    """One setting. Secrets come from `$VAR`, `$VAR_FILE` (`-` for stdin), `$VAR_KEYRING` (an
    OS keyring entry) or `key_file` / `key_keyring` in a profile, never from the file itself nor
    from the command line."""

    key: str
    kind: str  # text | secret | seconds | scope
    help: str
    example: str
    default: str = ""

    @property
    def env(self) -> str:
        return PREFIX + self.key.upper()

    @property
    def sources(self) -> tuple[str, ...]:
        """Suffixes of the variables and file keys it is read from ("": its own name)."""
        return ("", *SECRET_SOURCES) if self.kind == "secret" else ("",)


OPTIONS: tuple[Option, ...] = (
    Option(
        "token_url",
        "text",
        "Token endpoint; wins over issuer and region.",
        "https://login.example.com/oauth/token",
    ),
    Option(
        "issuer",
        "text",
        "Issuer URL; endpoints found by RFC 8414 / OIDC discovery.",
        "https://idp.example.com/realms/ci",
    ),
    Option("region", "text", "Genesys Cloud region key, domain or API URL.", "eu_west_1"),
    Option(
        "introspection_url",
        "text",
        "RFC 7662 endpoint, when not discovered.",
        "https://login.example.com/oauth/introspect",
    ),
    Option(
        "revocation_url",
        "text",
        "RFC 7009 endpoint, when not discovered.",
        "https://login.example.com/oauth/revoke",
    ),
    Option("client_id", "text", "OAuth client id.", "3f2a...c9"),
    Option("client_secret", "secret", "OAuth client secret.", "/run/secrets/client_secret"),
    Option(
        "grant",
        "text",
        "client_credentials, or refresh_token: a seeded refresh token only.",
        "refresh_token",
        "client_credentials",
    ),
    Option(
        "scope",
        "scope",
        "Scopes, space-separated (empty for Genesys client credentials).",
        "read write",
    ),
    Option(
        "auth_method",
        "text",
        "client_secret_basic, client_secret_post or none.",
        "client_secret_post",
        "client_secret_basic",
    ),
    Option(
        "audience",
        "text",
        "Extra client-credentials parameter (Auth0 and others).",
        "https://api.example.com",
    ),
    Option("resource", "text", "RFC 8707 resource indicator.", "https://api.example.com"),
    Option(
        "store",
        "text",
        "memory://, sqlite:///path, redis://..., rediss://... (TLS), "
        "redis+cluster://... (Redis Cluster).",
        "redis://ci@redis.internal:6379/0",
        "SQLite in the user cache dir or $RUNNER_TEMP",
    ),
    Option(
        "store_key",
        "secret",
        "Base64 of 32 bytes sealing stored entries (AES-256-GCM).",
        "/run/secrets/freshtoken-store-key",
        "a 0600 key file beside a SQLite store",
    ),
    Option(
        "store_fail",
        "text",
        "open: mint locally while a shared store is down; closed: fail.",
        "closed",
        "open",
    ),
    Option("redis_password", "secret", "Redis password (or in the URL).", "/run/secrets/redis"),
    Option("redis_prefix", "text", "Prefix of every Redis key.", "ci:", "freshtoken:"),
    Option("redis_timeout", "seconds", "Longest wait for one Redis call.", "0.5", "1"),
    Option("redis_lease", "seconds", "Redis lock lease, renewed while held.", "10", "10"),
    Option("connect_timeout", "seconds", "Connect timeout to the token endpoint.", "5", "5"),
    Option("read_timeout", "seconds", "Read timeout at the token endpoint.", "15", "15"),
    Option(
        "retry_budget",
        "seconds",
        "Longest one token request may take, retries included.",
        "30",
        "30",
    ),
    Option(
        "proxy_upstream",
        "text",
        "Where `serve --proxy` forwards.",
        "https://api.mypurecloud.ie",
        "the Genesys API host of the region",
    ),
)
_BY_KEY = {o.key: o for o in OPTIONS}
# The variables of the Genesys `gc` CLI and Terraform provider; FRESHTOKEN_* ones win.
GENESYS_ENV = {
    "GENESYSCLOUD_REGION": "region",
    "GENESYSCLOUD_OAUTHCLIENT_ID": "client_id",
    "GENESYSCLOUD_OAUTHCLIENT_SECRET": "client_secret",
}


def read_secret_file(path: str, setting: str) -> Secret:
    """A secret from a file (`-`: standard input), trailing newline removed; errors name the
    setting, never the value."""
    try:
        text = (
            sys.stdin.read() if path == "-" else Path(path).expanduser().read_text(encoding="utf-8")
        )
    except OSError as exc:
        raise ConfigurationError(
            f"{setting} names a file that cannot be read: {path} ({exc.strerror})",
            hint=f"Check the path and its permissions, or unset {setting}.",
        ) from None
    text = text.strip()
    if not text:
        raise ConfigurationError(
            f"{setting} names an empty file: {path}", hint="Write the secret into the file."
        )
    return Secret(text)


def find_config(environ: Mapping[str, str], cwd: Path | None = None) -> Path | None:
    """$FRESHTOKEN_CONFIG, else freshtoken.toml here or in a parent, else in the user config
    directory."""
    if explicit := environ.get(PREFIX + "CONFIG", "").strip():
        path = Path(explicit)
        if not path.is_file():
            raise ConfigurationError(
                f"$FRESHTOKEN_CONFIG names no file: {explicit}",
                hint="Correct the path or unset FRESHTOKEN_CONFIG.",
            )
        return path
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    import platformdirs

    user = Path(platformdirs.user_config_dir("freshtoken")) / CONFIG_NAME
    return user if user.is_file() else None


def _profile_values(path: Path, profile: str | None) -> dict[str, tuple[object, str]]:
    import tomllib  # here: 10 ms that a run without a configuration file need not pay

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(
            f"cannot read {path}: {exc}", hint="Fix the TOML syntax (see docs/configuration.md)."
        ) from None
    name = profile or "default"
    table = document.get(name)
    if not isinstance(table, dict):
        if profile is None:
            return {}
        known = ", ".join(sorted(k for k, v in document.items() if isinstance(v, dict)))
        raise ConfigurationError(
            f"profile {name!r} is not in {path}", hint=f"Profiles there: {known or '(none)'}."
        )
    values: dict[str, tuple[object, str]] = {}
    for key, value in table.items():
        where = f"{path} [{name}] {key}"
        base, source = _split_source(key)
        option = _BY_KEY.get(base)
        if option is None or (source and option.kind != "secret"):
            raise ConfigurationError(
                f"unknown setting {key!r} in {path} [{name}]",
                hint="Settings: " + ", ".join(o.key for o in OPTIONS) + ".",
            )
        if option.kind == "secret" and not source:
            raise ConfigurationError(
                f"{path} [{name}] holds the secret {key!r} in plain text",
                hint=f"Put it in a file of its own and set {key}_file, name an OS keyring "
                f"entry with {key}_keyring, or use ${option.env}.",
            )
        if option.kind == "secret" and (
            twice := [k for k in values if _split_source(k)[0] == base]
        ):
            raise ConfigurationError(
                f"{path} [{name}] gives {base} twice: {twice[0]} and {key}",
                hint="Keep only one of them.",
            )
        values[key] = (value, where)
    return values


def _convert(option: Option, value: object, source: str) -> object:
    if option.kind == "seconds":
        return positive_number(str(value), source)
    if option.kind == "scope":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        if isinstance(value, str):
            return tuple(value.split())
        raise ConfigurationError(
            f"{source} must be a string or a list of strings",
            hint='For example: scope = "read write".',
        )
    if not isinstance(value, str):
        raise ConfigurationError(
            f"{source} must be a string", hint=f'For example: {option.key} = "{option.example}".'
        )
    return value.strip()


@dataclass(frozen=True)
class Settings:
    """Everything needed to get tokens for one client. Secrets are `Secret`s; `sources` says
    where each value came from (for error messages and `freshtoken doctor`)."""

    client_id: str | None = None
    client_secret: Secret | None = None
    token_url: str | None = None
    introspection_url: str | None = None
    revocation_url: str | None = None
    issuer: str | None = None
    region: str | None = None
    scope: tuple[str, ...] = ()
    grant: str = "client_credentials"
    auth_method: str = "client_secret_basic"
    audience: str | None = None
    resource: str | None = None
    store: str | None = None
    store_key: Secret | None = None
    store_fail: str = "open"
    redis_password: Secret | None = None
    redis_prefix: str = "freshtoken:"
    redis_timeout: float = 1.0
    redis_lease: float = 10.0
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    retry_budget: float = 30.0
    proxy_upstream: str | None = None
    profile: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.auth_method not in AUTH_METHODS:
            raise ConfigurationError(
                f"unknown auth method {self.auth_method!r} "
                f"(from {self.sources.get('auth_method', 'settings')})",
                hint=f"FRESHTOKEN_AUTH_METHOD must be one of: {', '.join(AUTH_METHODS)}.",
            )
        if self.grant not in ("client_credentials", "refresh_token"):
            raise ConfigurationError(
                f"grant must be client_credentials or refresh_token, not {self.grant!r} "
                f"(from {self.sources.get('grant', 'settings')})",
                hint="refresh_token: only a refresh token seeded with "
                "`freshtoken seed-refresh-token` is used (no client-credentials fallback).",
            )
        if self.store_fail not in ("open", "closed"):
            raise ConfigurationError(
                f"store_fail must be open or closed, not {self.store_fail!r} "
                f"(from {self.sources.get('store_fail', 'settings')})",
                hint="open: mint locally while a shared store is down; closed: fail (exit 5).",
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read only `FRESHTOKEN_*` (and `GENESYSCLOUD_*`) variables."""
        return cls.load(environ=environ, use_file=False)

    @classmethod
    def load(
        cls,
        *,
        profile: str | None = None,
        environ: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        use_file: bool = True,
    ) -> Settings:
        """A profile of freshtoken.toml (if any), then GENESYSCLOUD_*, then FRESHTOKEN_*
        variables, each winning over the one before."""
        env = os.environ if environ is None else environ
        profile = profile or env.get(PREFIX + "PROFILE", "").strip() or None
        raw: dict[str, tuple[object, str]] = {}
        path = find_config(env, cwd) if use_file else None
        if path is not None:
            raw.update(_profile_values(path, profile))
        elif profile is not None:
            raise ConfigurationError(
                f"profile {profile!r} was asked for, but no {CONFIG_NAME} was found",
                hint=f"Create {CONFIG_NAME} (here or in a parent folder), or set "
                "FRESHTOKEN_CONFIG to its path.",
            )
        for variable, key in GENESYS_ENV.items():
            if value := env.get(variable, "").strip():
                raw[key] = (value, "$" + variable)
        for option in OPTIONS:
            suffixes = option.sources
            found = {
                sfx: value
                for sfx in suffixes
                if (value := env.get(option.env + sfx.upper(), "").strip())
            }
            if len(found) > 1:
                names = " and ".join("$" + option.env + sfx.upper() for sfx in found)
                raise ConfigurationError(f"both {names} are set", hint="Set only one of them.")
            for sfx, value in found.items():
                for other in suffixes:
                    raw.pop(option.key + other, None)
                raw[option.key + sfx] = (value, "$" + option.env + sfx.upper())
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key, (given, source) in raw.items():
            base, how = _split_source(key)
            option = _BY_KEY[base]
            if how == "_file":
                values[option.key] = read_secret_file(str(given), source)
            elif how == "_keyring":
                from freshtoken.config._keyring import read_keyring_secret

                values[option.key] = read_keyring_secret(
                    str(given), source, create_key=option.key == "store_key"
                )
            elif option.kind == "secret":
                values[option.key] = Secret(str(given).strip())
            else:
                values[option.key] = _convert(option, given, source)
            sources[option.key] = source
        return cls(**values, profile=profile, sources=sources)

    def endpoints(self) -> Endpoints | None:
        """The endpoints when known without the network; None when discovery is needed."""
        region = genesys_region(self.region) if self.region else None
        if self.token_url:
            check_url(self.token_url, self._label("token_url", "FRESHTOKEN_TOKEN_URL"))
            for key in ("introspection_url", "revocation_url"):
                if (value := getattr(self, key)) is not None:
                    check_url(value, self._label(key, "FRESHTOKEN_" + key.upper()))
            return Endpoints(
                token_url=self.token_url,
                introspection_url=self.introspection_url,
                revocation_url=self.revocation_url,
                api_base_url=region.api_base_url if region else None,
                region=region.key if region else None,
            )
        if self.issuer:
            check_url(self.issuer, self._label("issuer", "FRESHTOKEN_ISSUER"))
            return None
        if region:
            return Endpoints(
                token_url=region.token_url, api_base_url=region.api_base_url, region=region.key
            )
        raise ConfigurationError(
            "no token endpoint configured",
            hint="Set FRESHTOKEN_TOKEN_URL, or FRESHTOKEN_ISSUER (discovery), or "
            "FRESHTOKEN_REGION (Genesys Cloud, e.g. eu_west_1).",
        )

    def open_store(self) -> TokenStore:
        """The configured store."""
        from freshtoken.stores._base import open_store

        return open_store(
            self.store,
            self.store_key,
            redis_password=self.redis_password,
            redis_prefix=self.redis_prefix,
            timeout=self.redis_timeout,
            lease=self.redis_lease,
            fail=self.store_fail,
        )

    def grant_for_broker(self) -> ClientCredentials | None:
        """What mints a token when no refresh token is held (None: refresh tokens only)."""
        if self.grant != "client_credentials":
            return None
        return ClientCredentials(self.scope, self.audience, self.resource)

    def require_client_id(self) -> str:
        if not self.client_id:
            raise ConfigurationError("no client id configured", hint="Set FRESHTOKEN_CLIENT_ID.")
        return self.client_id

    def _label(self, key: str, default: str) -> str:
        return self.sources.get(key, default)


def positive_number(raw: str, setting: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigurationError(
            f"{setting} must be a positive number of seconds, got {raw!r}",
            hint=f"Set {setting} to a number such as 30.",
        )
    return value
