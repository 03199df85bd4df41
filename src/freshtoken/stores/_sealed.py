"""AES-256-GCM envelopes for stored entries, and where the key comes from."""

from __future__ import annotations

import binascii
import errno
import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

# cryptography's own `ciphers.aead` module is this binding's AESGCM under its public name, but
# importing it runs the `ciphers` package (typing, enum, every cipher and mode): 52 M of the 66 M
# instructions that AESGCM costs a store hit. tests/test_startup.py checks that they are one class.
from cryptography.hazmat.bindings._rust import openssl as _openssl

from freshtoken._errors import ConfigurationError, StoreError, UnsafeStoreError
from freshtoken._log import logger, remember_secret
from freshtoken._platform import PRIVATE_OPEN_FLAGS, open_no_wait, owned_by_user, shared_bits
from freshtoken._secret import Secret, keyed_hash
from freshtoken.stores._entry import Entry, decode, encode

if TYPE_CHECKING:
    from freshtoken.stores._ledger import Ledger

_VERSION = b"\x01"
_NONCE = 12


class Envelope:
    """Seals entries with AES-256-GCM; the cache key is bound in as associated data, so an
    entry copied under another key fails to open."""

    #: What this host saw of the store's entries (None: nothing is kept).
    ledger: Ledger | None = None

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("an AES-256 key is 32 bytes")
        self._aead = _openssl.aead.AESGCM(key)
        # Cache keys are hashed with a key derived from this one: they reveal nothing.
        self.pepper = keyed_hash(key, b"freshtoken cache-key v1")

    def __repr__(self) -> str:
        return "Envelope(key=***)"

    def seal(self, cache_key: str, payload: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, payload, cache_key.encode())

    def open(self, cache_key: str, blob: bytes) -> bytes:
        """Raises ValueError when the blob was tampered with or sealed with another key."""
        if len(blob) < 1 + _NONCE + 16 or blob[:1] != _VERSION:
            raise ValueError("not a freshtoken envelope")
        try:
            return self._aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], cache_key.encode())
        except Exception as exc:
            from cryptography.exceptions import InvalidTag  # only when it fails: 30 M otherwise

            if not isinstance(exc, InvalidTag):
                raise
            raise ValueError("entry failed authentication (tampered, or another key)") from None


def seal_entry(
    envelope: Envelope, cache_key: str, entry: Entry
) -> tuple[bytes, Callable[[], None]]:
    """`entry` sealed with its next generation, and what to call once it is stored (it notes
    the entry in the ledger, if any)."""
    ledger = envelope.ledger
    if ledger is None:
        return envelope.seal(cache_key, encode(entry)), lambda: None
    entry = ledger.next(cache_key, entry)
    return envelope.seal(cache_key, encode(entry)), lambda: ledger.note(cache_key, entry)


def open_entry(envelope: Envelope, cache_key: str, blob: bytes, version: int) -> Entry | None:
    """The entry sealed in `blob`, or None (with a warning) when it cannot be read, or is an
    older copy than the ledger saw (rolled back: its refresh token was spent). A store is a
    cache: an unreadable entry only means a new token."""
    try:
        entry = decode(envelope.open(cache_key, blob), version)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning(
            "dropping a token-store entry that cannot be read (%s); a new token will be obtained",
            exc,
        )
        return None
    if (ledger := envelope.ledger) is None:
        return entry
    if ledger.stale(cache_key, entry):
        logger.warning(
            "dropping a token-store entry older than one this host saw (rolled back to an "
            "earlier copy): its refresh token was spent"
        )
        return None
    ledger.note(cache_key, entry)
    return entry


def parse_key(value: Secret, setting: str) -> bytes:
    try:  # base64.b64decode(validate=True) as it is written, without the module's import
        key = binascii.a2b_base64(value.reveal().encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigurationError(
            f"{setting} is not a base64-encoded 32-byte key",
            hint='Create one with: python3 -c "import os,base64;'
            'print(base64.b64encode(os.urandom(32)).decode())"',
        )
    return key


#: A path as the store's functions take it (os.path's calls: pathlib costs a store hit 6 M).
StrPath = str | os.PathLike[str]


def check_private(path: StrPath, what: str, info: os.stat_result | None = None) -> None:
    """Refuse a file that is not a regular file of this user, or that others than its owner
    can read or write."""
    info = info if info is not None else os.stat(path)
    mode = info.st_mode
    if not stat.S_ISREG(mode) or not owned_by_user(info.st_uid):
        raise UnsafeStoreError(
            f"the {what} {path} is not a regular file of this user",
            hint=f"Something else is at {path}: remove it, or choose another place with "
            "FRESHTOKEN_STORE.",
        )
    if shared_bits(mode):
        raise UnsafeStoreError(
            f"the {what} {path} is accessible to other users (mode {stat.S_IMODE(mode):o})",
            hint=f"Run: chmod 600 {path}  (freshtoken refuses to use a token store others can "
            "read), or choose another place with FRESHTOKEN_STORE.",
        )


def check_private_dir(directory: StrPath) -> None:
    """Refuse a store or lock directory that is not this user's, or that others may write
    to: whoever can add entries there can plant symlinks and files in freshtoken's place."""
    info = os.stat(directory)
    mine = owned_by_user(info.st_uid)
    if not mine or shared_bits(info.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
        owner = "this user" if mine else f"uid {info.st_uid}"
        raise UnsafeStoreError(
            f"the store directory {directory} is not private (owner {owner}, mode "
            f"{stat.S_IMODE(info.st_mode):o})",
            hint=f"Another user could plant files there. Use a directory of your own that only "
            f"you can write to (chmod 700 {directory}), or choose another place with "
            "FRESHTOKEN_STORE=sqlite:///path.",
        )


def _planted_link(path: StrPath, what: str) -> UnsafeStoreError:
    return UnsafeStoreError(
        f"the {what} {path} is a symbolic link",
        hint=f"Someone may have planted it to redirect writes: remove {path}, or choose "
        "another place with FRESHTOKEN_STORE.",
    )


def check_private_path(path: StrPath, what: str) -> bool:
    """Check the file at `path` as `open_private` would, without opening it (closing any
    descriptor of a file drops every POSIX lock this process holds on it, SQLite's too);
    False when there is none."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode):
        raise _planted_link(path, what)
    check_private(path, what, info)
    return True


def open_private(path: StrPath, flags: int, what: str) -> int:
    """Open (or create, 0600) a file of the store without following a symlink, and check
    that it is a private regular file of this user before anything is read or written."""
    try:
        fd = open_no_wait(path, flags | PRIVATE_OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _planted_link(path, what) from None
        raise
    try:
        check_private(path, what, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def key_file(path: StrPath) -> bytes:
    """The key stored in `path` (0600), created on first use.

    Created under a temporary name and linked into place, so that concurrent first uses agree
    on one key and no reader ever sees a half-written file.
    """
    if not os.path.lexists(path):
        import secrets  # here: only a first use creates a key

        folder, name = os.path.split(path)
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | PRIVATE_OPEN_FLAGS, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(binascii.b2a_base64(secrets.token_bytes(32), newline=False))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        except OSError as exc:
            raise StoreError(
                f"cannot create the store key file {path}: {exc.strerror}",
                hint="Make the directory writable, or set FRESHTOKEN_STORE_KEY.",
            ) from None
    try:
        fd = open_private(path, os.O_RDONLY, "store key file")
    except OSError as exc:
        raise StoreError(
            f"cannot open the store key file {path}: {exc.strerror}",
            hint="Remove what is at that path, or set FRESHTOKEN_STORE_KEY.",
        ) from None
    with os.fdopen(fd, "rb") as handle:
        text = handle.read().decode("ascii", "replace").strip()
    remember_secret(text)
    return parse_key(Secret(text), os.fspath(path))
