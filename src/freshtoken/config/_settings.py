"""Settings: plain data, from explicit values, the environment, or a profile in
`freshtoken.toml`. Building a client, store or broker from them is `freshtoken._build`'s job."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from freshtoken._errors import ConfigurationError
from freshtoken._secret import Secret
from freshtoken.config._load import read_values
from freshtoken.config._options import OPTIONS, SettingValues
from freshtoken.provider._presets import words


@dataclass(frozen=True)
class Settings(SettingValues):
    """Everything needed to get tokens for one client. Secrets are `Secret`s; `sources` says
    where each value came from (for error messages and `freshtoken doctor`)."""

    profile: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for option in OPTIONS:
            value = getattr(self, option.key)
            if option.kind == "secret" and isinstance(value, str):
                object.__setattr__(self, option.key, Secret(value))  # wrapped at once
            if option.choices and value not in option.choices:
                self.refuse(option.key, value, option.choices)

    def refuse(self, key: str, value: object, allowed: Iterable[str]) -> NoReturn:
        """Raise the error for a setting whose value is not one of `allowed`."""
        choices = list(allowed)
        said = " or ".join(choices) if len(choices) < 3 else ", ".join(choices)
        raise ConfigurationError(
            f"unknown {key.replace('_', ' ')} {value!r}: {key} must be {said} "
            f"(from {self.sources.get(key, 'settings')})",
            hint=f"Set {self.label(key)} to one of: {', '.join(choices)}.",
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read only `FRESHTOKEN_*` variables (and a provider preset's own)."""
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
        """Profiles of freshtoken.toml (if any), then a provider preset's own variables and
        FRESHTOKEN_* ones, each winning over the one before; the endpoint and the store
        settings each come whole from one source (see `freshtoken.config._load`)."""
        values, sources, used = read_values(
            profile=profile, environ=environ, cwd=cwd, use_file=use_file
        )
        return cls(**values, profile=used, sources=sources)

    def require_client_id(self) -> str:
        if not self.client_id:
            raise ConfigurationError("no client id configured", hint="Set FRESHTOKEN_CLIENT_ID.")
        return self.client_id

    def offline_access_advice(self) -> str | None:
        """Why offline_access in the scope of client credentials is a mistake on any server
        (RFC 6749 §4.4.3: that answer carries no refresh token), and what to do instead; None
        when it is not asked for with client credentials."""
        if "offline_access" not in self.scope or self.grant != "client_credentials":
            return None
        return words(self.provider, self.region, "offline_access") or (
            "offline_access asks for a refresh token, and a client-credentials answer carries "
            "none (RFC 6749 §4.4.3); none is needed: freshtoken mints a new token before the old "
            "one expires. Remove it from FRESHTOKEN_SCOPE (some servers refuse it there). For a "
            "user's refresh token, run `freshtoken login` with FRESHTOKEN_GRANT=refresh_token."
        )

    def label(self, key: str) -> str:
        """Where `key` was set, or the variable that sets it."""
        return self.sources.get(key, "FRESHTOKEN_" + key.upper())
