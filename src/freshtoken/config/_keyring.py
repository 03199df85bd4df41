"""Secrets from the OS keyring (Secret Service, macOS Keychain, Windows Credential Locker)
through the optional `keyring` package, imported only when a `*_KEYRING` setting names an
entry: it costs about 100 ms to import."""

from __future__ import annotations

import base64
import os

from freshtoken._errors import ConfigurationError
from freshtoken._secret import Secret


def read_keyring_secret(ref: str, setting: str, *, create_key: bool = False) -> Secret:
    """The secret stored under `SERVICE/NAME`. With `create_key` (the store key), a missing
    entry is created with 32 random bytes, as the key file beside a SQLite store would be."""
    service, _, name = ref.strip().partition("/")
    if not service or not name:
        raise ConfigurationError(
            f"{setting} must be SERVICE/NAME, got {ref!r}",
            hint="For example freshtoken/ci-prod; store the secret with "
            "`keyring set freshtoken ci-prod` (it reads it from the terminal or stdin).",
        )
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        raise ConfigurationError(
            f"{setting} is set, but the keyring package is not installed",
            hint="pip install 'freshtoken[keyring]', or give the secret by a variable or file.",
        ) from None
    try:
        value = keyring.get_password(service, name)
        if value is None and create_key:
            keyring.set_password(service, name, base64.b64encode(os.urandom(32)).decode())
            # Read back, so that two first runs at once usually agree on the key kept; when
            # they do not, the other's entries fail to open and are re-minted, never misread.
            value = keyring.get_password(service, name)
    except KeyringError as exc:
        # The message names the backend's trouble (no backend, locked, denied), never a value.
        raise ConfigurationError(
            f"{setting}: the OS keyring cannot be used here ({type(exc).__name__}: {exc})",
            hint="CI runners rarely have a keyring: give the secret by a variable or a *_FILE "
            "there; on a desktop, unlock the keyring or choose a backend (PYTHON_KEYRING_BACKEND).",
        ) from None
    if not value:
        raise ConfigurationError(
            f"{setting}: the OS keyring holds no secret for service {service!r}, name {name!r}",
            hint=f"Store it first: `keyring set {service} {name}` (it reads it from the terminal "
            "or stdin).",
        )
    return Secret(value)
