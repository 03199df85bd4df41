"""The TokenStore contract, and what every store is opened with."""

from __future__ import annotations

import binascii
from contextlib import AbstractContextManager
from typing import Protocol

from freshtoken._errors import ConfigurationError
from freshtoken._record import record
from freshtoken._secret import Secret
from freshtoken.stores._entry import Entry


class TokenStore(Protocol):
    """Where entries are shared. Every method is safe to call from many threads, and a store
    shared between processes (or hosts) keeps these promises across all of them.

    - `load(key)`: the entry last saved under `key` with its version, or None when there is
      none. An entry that cannot be read (tampered, sealed with another key) is never an
      error and never a wrong token: None (dropped), or an empty entry whose version the next
      save replaces.
    - `save(key, entry, expected)`: compare-and-set. It writes only when the stored version
      is still `expected` (0: absent) and returns the new version, never 0 and never one the
      key had before, even after `delete` (no ABA); None when someone else wrote first.
    - `delete(key)`: the entry is gone (deleting nothing is fine).
    - `lock(key, timeout)`: the single-flight lock. It yields True when held, False when
      `timeout` passed first (0: one try). One holder at a time across every user of the
      store; released on leaving the block; a holder that dies frees it (at once, or when
      its lease runs out); a holder whose lease ran out never releases a newer holder's lock.
    - `owns_lock(key)`: whether this process still holds `key`'s lock.
    - `list_keys()`: every key that has an entry.
    - `pepper`: secret-derived bytes for cache keys, the same for every user of one store.
    - A store that seals its entries never keeps a token or refresh token in plain text.
    """

    #: Secret-derived bytes mixed into cache keys (never the secret itself).
    pepper: bytes

    def load(self, key: str) -> Entry | None: ...
    def save(self, key: str, entry: Entry, expected: int) -> int | None: ...
    def delete(self, key: str) -> None: ...
    def lock(self, key: str, timeout: float) -> AbstractContextManager[bool]: ...
    def owns_lock(self, key: str) -> bool:
        """Whether this process still holds `key`'s lock (a lease may have run out)."""
        ...

    def list_keys(self) -> list[str]: ...
    def close(self) -> None: ...


@record
class StoreOptions:
    """What a store URL does not say: the sealing key, Redis credentials and timing, and what
    to do while a shared store is down (`fail`: open or closed)."""

    key: Secret | None = None
    redis_password: Secret | None = None
    redis_prefix: str = "freshtoken:"
    timeout: float = 1.0
    lease: float = 10.0
    fail: str = "open"


def parse_key(value: Secret, setting: str) -> bytes:
    """The store key in `value` (the base64 of 32 bytes), named `setting` when it is not."""
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
