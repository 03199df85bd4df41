"""The TokenStore interface, the in-process store, and choosing a store from a URL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from freshtoken._errors import ConfigurationError
from freshtoken._secret import Secret
from freshtoken.stores._entry import Entry


class TokenStore(Protocol):
    """Where entries are shared. Every method is safe to call from many threads.

    `save` is compare-and-set: it writes only when the stored version is still `expected`
    (0 for absent) and returns the new version, or None when someone else wrote first.
    `lock` is the cross-process single-flight lock: it yields True when held, False when
    `timeout` passed first.
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


class MemoryStore:
    """One process's store (`memory://`): entries live as long as the process."""

    def __init__(self) -> None:
        self.pepper = os.urandom(32)
        self._entries: dict[str, Entry] = {}
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._entries)} entries)"

    def load(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def save(self, key: str, entry: Entry, expected: int) -> int | None:
        with self._guard:
            current = self._entries.get(key)
            if (current.version if current else 0) != expected:
                return None
            self._entries[key] = replace(entry, version=expected + 1)
            return expected + 1

    def delete(self, key: str) -> None:
        with self._guard:
            self._entries.pop(key, None)

    @contextmanager
    def lock(self, key: str, timeout: float) -> Iterator[bool]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        held = lock.acquire(timeout=max(timeout, 0.0))
        try:
            yield held
        finally:
            if held:
                lock.release()

    def owns_lock(self, key: str) -> bool:
        return True  # a thread lock has no lease to lose

    def list_keys(self) -> list[str]:
        return list(self._entries)

    def close(self) -> None:
        """Nothing to release."""


_MEMORY = MemoryStore()


def default_store_path(environ: dict[str, str] | None = None) -> Path:
    """$RUNNER_TEMP on GitHub Actions (shared by the job's steps), else the user cache dir."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") == "true" and env.get("RUNNER_TEMP"):
        return Path(env["RUNNER_TEMP"]) / "freshtoken" / "tokens.db"
    import platformdirs

    return Path(platformdirs.user_cache_dir("freshtoken")) / "tokens.db"


def open_store(
    url: str | None,
    key: Secret | None = None,
    *,
    redis_password: Secret | None = None,
    redis_prefix: str = "freshtoken:",
    timeout: float = 1.0,
    lease: float = 60.0,
    fail: str = "open",
) -> TokenStore:
    """A store from `FRESHTOKEN_STORE`: `memory://`, `sqlite:///path`, `redis://...`,
    `rediss://...` (`redis+cluster://`, `rediss+cluster://` for a Redis Cluster), or (unset)
    SQLite in the default place."""
    if url == "memory://":
        return _MEMORY
    if url is None or url in ("sqlite://", "sqlite:///", ""):
        from freshtoken.stores._sqlite import SQLiteStore

        return SQLiteStore(default_store_path(), key)
    parts = urlsplit(url)
    if parts.scheme == "sqlite" and parts.path:
        from freshtoken.stores._sqlite import SQLiteStore

        return SQLiteStore(Path(unquote(parts.path)), key)
    if parts.scheme in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
        from freshtoken.stores._failopen import FailOpenStore
        from freshtoken.stores._redis import RedisStore

        if fail not in ("open", "closed"):
            raise ConfigurationError(
                f"FRESHTOKEN_STORE_FAIL must be open or closed, not {fail!r}",
                hint="open: mint locally while Redis is down; closed: fail.",
            )
        store = RedisStore(
            url, key, password=redis_password, prefix=redis_prefix, timeout=timeout, lease=lease
        )
        return FailOpenStore(store) if fail == "open" else store
    raise ConfigurationError(
        f"FRESHTOKEN_STORE has an unknown form: {parts.scheme or url!r}",
        hint="Use memory://, sqlite:///absolute/path/tokens.db, redis://host:port/db, "
        "rediss://..., redis+cluster://host:port, or leave it unset for the default SQLite "
        "store.",
    )
