"""Settings: what freshtoken needs to know, read from explicit values or the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from freshtoken._errors import ConfigurationError
from freshtoken._grants._client_auth import AUTH_METHODS
from freshtoken._provider._endpoints import Endpoints, check_url
from freshtoken._provider._genesys import genesys_region
from freshtoken._secret import Secret

if TYPE_CHECKING:
    from freshtoken._sources._store import TokenStore

PREFIX = "FRESHTOKEN_"


def read_secret_file(path: str, setting: str) -> Secret:
    """A secret from a file, trailing newline removed; errors name the setting, not the value."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(
            f"{setting} names a file that cannot be read: {path} ({exc.strerror})",
            hint=f"Check the path and its permissions, or unset {setting}.",
        ) from None
    if not text:
        raise ConfigurationError(
            f"{setting} names an empty file: {path}", hint="Write the secret into the file."
        )
    return Secret(text)


@dataclass(frozen=True)
class Settings:
    """Everything needed to get tokens for one client. Secrets are `Secret`s."""

    client_id: str | None = None
    client_secret: Secret | None = None
    token_url: str | None = None
    introspection_url: str | None = None
    revocation_url: str | None = None
    issuer: str | None = None
    region: str | None = None
    scope: tuple[str, ...] = ()
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
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.auth_method not in AUTH_METHODS:
            raise ConfigurationError(
                f"unknown auth method {self.auth_method!r} "
                f"(from {self.sources.get('auth_method', 'settings')})",
                hint=f"FRESHTOKEN_AUTH_METHOD must be one of: {', '.join(AUTH_METHODS)}.",
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `FRESHTOKEN_*` variables (see docs/configuration.md)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        sources: dict[str, str] = {}

        def take(name: str, key: str) -> str | None:
            value = env.get(PREFIX + name, "").strip()
            if value:
                sources[key] = f"${PREFIX}{name}"
                values[key] = value
                return value
            return None

        for name in (
            "TOKEN_URL",
            "INTROSPECTION_URL",
            "REVOCATION_URL",
            "ISSUER",
            "REGION",
            "CLIENT_ID",
            "AUTH_METHOD",
            "AUDIENCE",
            "RESOURCE",
            "STORE",
            "STORE_FAIL",
            "REDIS_PREFIX",
        ):
            take(name, name.lower())
        if scope := env.get(PREFIX + "SCOPE", "").strip():
            values["scope"] = tuple(scope.split())
            sources["scope"] = f"${PREFIX}SCOPE"
        for key, label in (
            ("client_secret", "CLIENT_SECRET"),
            ("store_key", "STORE_KEY"),
            ("redis_password", "REDIS_PASSWORD"),
        ):
            direct = env.get(PREFIX + label, "")
            path = env.get(PREFIX + label + "_FILE", "").strip()
            if direct and path:
                raise ConfigurationError(
                    f"both {PREFIX}{label} and {PREFIX}{label}_FILE are set",
                    hint="Set only one of them.",
                )
            if direct:
                values[key] = Secret(direct.strip())
                sources[key] = f"${PREFIX}{label}"
            elif path:
                values[key] = read_secret_file(path, f"{PREFIX}{label}_FILE")
                sources[key] = f"${PREFIX}{label}_FILE"
        for key, label in (
            ("connect_timeout", "CONNECT_TIMEOUT"),
            ("read_timeout", "READ_TIMEOUT"),
            ("retry_budget", "RETRY_BUDGET"),
            ("redis_timeout", "REDIS_TIMEOUT"),
            ("redis_lease", "REDIS_LEASE"),
        ):
            raw = env.get(PREFIX + label, "").strip()
            if raw:
                values[key] = positive_number(raw, f"${PREFIX}{label}")
                sources[key] = f"${PREFIX}{label}"
        return cls(**values, sources=sources)  # type: ignore[arg-type]

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
        from freshtoken._sources._store import open_store

        return open_store(
            self.store,
            self.store_key,
            redis_password=self.redis_password,
            redis_prefix=self.redis_prefix,
            timeout=self.redis_timeout,
            lease=self.redis_lease,
            fail=self.store_fail,
        )

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
