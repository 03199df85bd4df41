"""A string that never shows itself in repr, str, logs or tracebacks, and the keyed hash that
names secrets (and cache keys) without revealing them."""

from __future__ import annotations

from freshtoken._log import remember_secret


class Secret:
    """Wraps a secret value; call `reveal()` only where the value is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        remember_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Secret is not pickled, so that it is never written by accident")


def keyed_hash(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of `message` under `key`, by cryptography's OpenSSL, which a command-line
    call loads anyway for the store's AES-GCM: `hmac` would load the system's OpenSSL too
    (`_hashlib`), 8 M instructions more on every store hit (bench/startup.py). The same bytes
    as `hmac.new(key, message, hashlib.sha256).digest()` (tests/test_startup.py)."""
    from cryptography.hazmat.primitives import hashes, hmac

    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(message)
    return mac.finalize()
