"""`memory://`: one process's store; entries live as long as the process."""

from __future__ import annotations

import itertools
import os
from _thread import LockType
from _thread import allocate_lock as Lock  # threading.Lock; threading costs a hit 4 M
from collections.abc import Iterator
from contextlib import contextmanager

from freshtoken._record import replace
from freshtoken.stores._base import StoreOptions
from freshtoken.stores._entry import Entry


class MemoryStore:
    """One process's store (`memory://`): entries live as long as the process."""

    def __init__(self, *, sharing: bool = True) -> None:
        self.pepper = os.urandom(32)
        #: False: it stands in for a shared store that could not be opened.
        self.sharing = sharing
        self._entries: dict[str, Entry] = {}
        self._guard = Lock()
        self._locks: dict[str, LockType] = {}
        self._versions = itertools.count(1)  # one sequence for all keys: no version returns

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._entries)} entries)"

    def load(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def save(self, key: str, entry: Entry, expected: int) -> int | None:
        with self._guard:
            current = self._entries.get(key)
            if (current.version if current else 0) != expected:
                return None
            version = next(self._versions)
            self._entries[key] = replace(entry, version=version)
            return version

    def delete(self, key: str) -> None:
        with self._guard:
            self._entries.pop(key, None)

    @contextmanager
    def lock(self, key: str, timeout: float) -> Iterator[bool]:
        with self._guard:
            lock = self._locks.setdefault(key, Lock())
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


_SHARED = MemoryStore()


def open_url(url: str, options: StoreOptions) -> MemoryStore:
    """`memory://`: the one store of this process (every broker in it shares it)."""
    return _SHARED
