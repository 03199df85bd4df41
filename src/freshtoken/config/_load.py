"""Reading settings: a profile of `freshtoken.toml`, then `GENESYSCLOUD_*`, then `FRESHTOKEN_*`
variables, each winning over the one before; secrets from `*_FILE` or `*_KEYRING`."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from freshtoken._errors import ConfigurationError
from freshtoken._secret import Secret
from freshtoken.config._options import (
    BY_KEY,
    CONFIG_NAME,
    GENESYS_ENV,
    OPTIONS,
    PREFIX,
    Option,
    split_source,
)


def read_secret_file(path: str, setting: str) -> Secret:
    """A secret from a file (`-`: standard input), trailing newline removed; errors name the
    setting, never the value."""
    try:
        text = (
            sys.stdin.read() if path == "-" else Path(path).expanduser().read_text(encoding="utf-8")
        )
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, or a NUL in the path
        raise ConfigurationError(
            f"{setting} names a file that cannot be read: {path} "
            f"({getattr(exc, 'strerror', None) or type(exc).__name__})",
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
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, or not TOML
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
        base, source = split_source(key)
        option = BY_KEY.get(base)
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
        if option.kind == "secret" and (twice := [k for k in values if split_source(k)[0] == base]):
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


def read_values(
    *,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    use_file: bool = True,
) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """The values that were set, where each came from, and the profile used."""
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
        base, how = split_source(key)
        option = BY_KEY[base]
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
    return values, sources, profile


MAX_SECONDS = 86400.0  # a day: longer is a typo, and would overflow timers


def positive_number(raw: str, setting: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_SECONDS:  # also refuses nan and inf
        raise ConfigurationError(
            f"{setting} must be a positive number of seconds, at most {MAX_SECONDS:.0f}, "
            f"got {raw!r}",
            hint=f"Set {setting} to a number such as 30.",
        )
    return value
