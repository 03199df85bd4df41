"""Reading settings: profiles of `freshtoken.toml`, then a provider preset's own variables
(`ALIASES`) and `FRESHTOKEN_*` ones, each winning over the one before; secrets from `*_FILE`
or `*_KEYRING`.

Where credentials go is guarded: the endpoint settings and the store settings are each taken
whole from the highest source that sets any of them; a file found by walking up from the
working directory may not set them (nor name secret files or keyring entries); a file that
another user could have written is not read at all."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from typing import Any

from freshtoken._errors import ConfigurationError
from freshtoken._log import logger, one_line, remember_url_password
from freshtoken._platform import open_no_wait, owned_by_user, shared_bits, user_dir
from freshtoken._record import record
from freshtoken._secret import Secret
from freshtoken.config._options import (
    BY_KEY,
    CONFIG_NAME,
    OPTIONS,
    PREFIX,
    Option,
    group_of,
    split_source,
)
from freshtoken.provider._presets import ALIASES


def read_secret_file(path: str, setting: str, *, private: bool = False) -> Secret:
    """A secret from a file (`-`: standard input), trailing newline removed; errors name the
    setting, never the value. `private`: refuse a file that other users may read."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            fd = open_no_wait(os.path.expanduser(path), os.O_RDONLY)
            with open(fd, encoding="utf-8") as handle:
                info = os.fstat(handle.fileno())  # the file read is the file checked
                mode = info.st_mode
                if why := untrusted(info):
                    raise ConfigurationError(
                        f"{setting} names a file that {why}: {path}",
                        hint="Another user could have planted or changed it (a refresh token "
                        "of their account, a store key they know). Keep secret files owned by "
                        f"you (or root) and writable by you alone: chmod go-w {path}",
                    )
                if private and shared_bits(mode) & stat.S_IRWXO:
                    raise ConfigurationError(
                        f"{setting} names a file that every user may read: {path} "
                        f"(mode {stat.S_IMODE(mode):o})",
                        hint=f"Run: chmod o-rwx {path}  (whoever reads the store key can read "
                        "every stored token).",
                    )
                text = handle.read()
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


@record
class ConfigFile:
    """A configuration file and the text read from it after its checks (one open: what was
    checked is what is read); `discovered` when found by walking up from the working directory
    (not named by $FRESHTOKEN_CONFIG, not in the user configuration directory). Paths are
    strings, for os.path's calls: pathlib costs every command-line call 6 M instructions."""

    path: str
    text: str
    discovered: bool = False


def untrusted(info: os.stat_result) -> str | None:
    """Why a file (configuration or secret, checked on the opened descriptor) cannot be
    trusted, or None: as git's safe.directory, one owned by another user than this one or
    root, or writable by group or others, could hold what another user chose."""
    if not owned_by_user(info.st_uid, or_root=True):
        return f"is owned by another user (uid {info.st_uid})"
    if shared_bits(info.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def read_checked(path: str) -> tuple[str | None, str | None]:
    """(text, None) for a file that can be trusted (see untrusted), else (None, why not)."""
    try:
        with open(open_no_wait(path, os.O_RDONLY), "rb") as handle:
            if why := untrusted(os.fstat(handle.fileno())):
                return None, why
            data = handle.read()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"cannot read {path}: it is not UTF-8 text (byte {exc.start})",
            hint="Save the file as UTF-8 (see docs/configuration.md).",
        ) from None


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """A warning, once per process (the command line may read the settings twice)."""
    if message not in _warned:
        _warned.add(message)
        logger.warning("%s", message)


def _usable(path: str, *, discovered: bool) -> ConfigFile | None:
    if not os.path.isfile(path):
        return None
    text, reason = read_checked(path)
    if text is None:
        _warn_once(
            f"ignoring {path}: it {reason}; only files owned by you (or root) and writable by "
            "no one else are read"
        )
        return None
    return ConfigFile(path, text, discovered)


def config_files(
    environ: Mapping[str, str], cwd: str | os.PathLike[str] | None = None
) -> list[ConfigFile]:
    """The files to read, lowest first: $FRESHTOKEN_CONFIG alone; else the one in the user
    configuration directory, then the nearest freshtoken.toml in the working directory or a
    parent. Files that others could have written are skipped with a warning."""
    if explicit := environ.get(PREFIX + "CONFIG", "").strip():
        path = os.path.expanduser(explicit)
        if not os.path.isfile(path):
            raise ConfigurationError(
                f"$FRESHTOKEN_CONFIG names no file: {explicit}",
                hint="Correct the path or unset FRESHTOKEN_CONFIG.",
            )
        text, reason = read_checked(path)
        if text is None:
            raise ConfigurationError(
                f"$FRESHTOKEN_CONFIG names {path}, which {reason}",
                hint=f"Another user could change where credentials go. Run: chmod go-w {path} "
                "(and make it yours), or name another file.",
            )
        return [ConfigFile(path, text)]
    user_path = os.path.join(user_dir("config"), CONFIG_NAME)
    user = _usable(user_path, discovered=False)
    files = [user] if user else []
    folder = os.path.realpath(os.getcwd() if cwd is None else cwd)
    while True:  # the folder and each parent, up to the root
        found = os.path.join(folder, CONFIG_NAME)
        if os.path.isfile(found) and not (user and os.path.samefile(found, user_path)):
            if (discovered := _usable(found, discovered=True)) is not None:
                files.append(discovered)
            break
        folder, below = os.path.dirname(folder), folder
        if folder == below:
            break
    return files


def _profile_values(
    path: str | os.PathLike[str], profile: str | None, text: str | None = None
) -> dict[str, tuple[object, str]] | None:
    """The keys of `profile` (default: [default]) in `path` (whose `text` may be given), None
    when it has no such table."""
    import tomllib  # here: 10 ms that a run without a configuration file need not pay

    try:
        if text is None:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        document = tomllib.loads(text)
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, or not TOML
        raise ConfigurationError(
            f"cannot read {path}: {exc}", hint="Fix the TOML syntax (see docs/configuration.md)."
        ) from None
    name = profile or "default"
    table = document.get(name)
    if not isinstance(table, dict):
        return None
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
        values[key] = (_relative_to(os.path.dirname(path), source, base, value), where)
    return values


def _relative_to(folder: str, source: str, key: str, value: object) -> object:
    """A relative path in a configuration file means a path next to that file, wherever the
    command runs: secret files (`*_file`) and `sqlite:` stores."""
    if not isinstance(value, str) or value in ("", "-"):
        return value
    relative_store = key == "store" and value.startswith("sqlite:") and value[7:8] != "/"
    if source != "_file" and not relative_store:
        return value
    from pathlib import Path  # here: joined as pathlib does, for the paths that are joined

    if source == "_file" and not Path(value).expanduser().is_absolute():
        return str(Path(folder) / value)
    if relative_store:
        return f"sqlite://{Path(folder) / value.removeprefix('sqlite:')}"
    return value


def _profiles(files: list[ConfigFile]) -> list[str]:
    import tomllib

    names: set[str] = set()
    for file in files:
        document = tomllib.loads(file.text)
        names.update(k for k, v in document.items() if isinstance(v, dict))
    return sorted(names)


def _restricted(key: str) -> bool:
    """What a discovered file may not set: where credentials and tokens go (endpoints, the
    store) and where secrets are read from (`*_file`, `*_keyring`)."""
    return bool(group_of(key)) or BY_KEY[split_source(key)[0]].kind == "secret"


def _file_layers(
    files: list[ConfigFile], profile: str | None
) -> list[dict[str, tuple[object, str]]]:
    layers = []
    for file in files:
        values = _profile_values(file.path, profile, file.text)
        if values is None:
            continue
        if file.discovered and (dropped := sorted(k for k in values if _restricted(k))):
            _warn_once(
                f"ignoring {', '.join(dropped)} in {file.path}: a file found in the working "
                "directory or a parent may not say where credentials go or where secrets are "
                f"read from; set FRESHTOKEN_CONFIG={file.path} to trust it, or move these "
                f"settings to {CONFIG_NAME} in your user configuration directory"
            )
            values = {k: v for k, v in values.items() if k not in dropped}
        layers.append(values)
    if profile is not None and len(layers) == 0:
        if not files:
            raise ConfigurationError(
                f"profile {profile!r} was asked for, but no {CONFIG_NAME} was found",
                hint=f"Create {CONFIG_NAME} (here or in a parent folder), or set "
                "FRESHTOKEN_CONFIG to its path.",
            )
        where = " or ".join(str(f.path) for f in files)
        raise ConfigurationError(
            f"profile {profile!r} is not in {where}",
            hint=f"Profiles there: {', '.join(_profiles(files)) or '(none)'}.",
        )
    return layers


def _env_layer(env: Mapping[str, str]) -> dict[str, tuple[object, str]]:
    raw: dict[str, tuple[object, str]] = {}
    for variable, key in ALIASES.items():
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
    return raw


def merge_layers(layers: list[dict[str, tuple[object, str]]]) -> dict[str, tuple[object, str]]:
    """One value per setting from `layers` (lowest first): each group of settings whole from
    the highest layer that sets any of it, every other setting from the highest that sets it."""
    owner: dict[str, int] = {}
    for index, layer in enumerate(layers):
        for key in layer:
            if group := group_of(key):
                owner[group] = index
    merged: dict[str, tuple[object, str]] = {}
    for index, layer in enumerate(layers):
        for key, value in layer.items():
            group = group_of(key)
            if group and owner[group] != index:
                continue
            base = split_source(key)[0]
            for other in BY_KEY[base].sources:
                merged.pop(base + other, None)
            merged[key] = value
    return merged


def _convert(option: Option, value: object, source: str) -> object:
    if option.kind == "seconds":
        return positive_number(str(value), source)
    if option.kind == "count":
        return positive_count(str(value), source)
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
    remember_url_password(value)  # a store URL may carry the Redis password
    return value.strip()


#: FRESHTOKEN_* variables that are not settings: what `serve`/`exec` and the action set for
#: later steps, what `token --format env` exports, and the scripts' own.
NOT_SETTINGS = frozenset(
    PREFIX + name
    for name in (
        "PROFILE", "CONFIG", "URL", "KEY", "PROXY_URL", "ACCESS_TOKEN", "SERVE_PID",
        "SECRETS_FD", "VENV", "ACTION_VERSION", "ACTION_PROXY", "ACTION_LOG_LEVEL",
    )
)  # fmt: skip


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A warning for each FRESHTOKEN_* variable that no setting reads (a typo such as
    FRESHTOKEN_CLIENTID), naming the closest known one."""
    named = [name for name in env if name.startswith(PREFIX)]
    if not named:
        return []
    known = NOT_SETTINGS | {o.env + sfx.upper() for o in OPTIONS for sfx in o.sources}
    unknown = [name for name in named if name not in known]
    if not unknown:
        return []
    import difflib

    lines = []
    for name in sorted(unknown):
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        guess = f"; did you mean {close[0]}?" if close else " (see docs/configuration.md)"
        lines.append(f"{one_line(name)} is not a freshtoken setting and is ignored{guess}")
    return lines


def read_values(
    *,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    use_file: bool = True,
) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """The values that were set, where each came from, and the profile used."""
    env = os.environ if environ is None else environ
    profile = profile or env.get(PREFIX + "PROFILE", "").strip() or None
    files = config_files(env, cwd) if use_file else []
    layers = _file_layers(files, profile)
    raw = merge_layers([*layers, _env_layer(env)])
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, (given, source) in raw.items():
        base, how = split_source(key)
        option = BY_KEY[base]
        if how == "_file":
            values[option.key] = read_secret_file(
                str(given), source, private=option.key == "store_key"
            )
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


def positive_count(raw: str, setting: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(
            f"{setting} must be a positive whole number, got {raw!r}",
            hint=f"Set {setting} to a number such as 16.",
        )
    return value


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
