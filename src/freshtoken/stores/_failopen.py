"""Keep tokens flowing while a shared store is down ("fail open")."""

from __future__ import annotations

import time
from _thread import allocate_lock as Lock  # threading.Lock; threading costs a hit 4 M
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from freshtoken._errors import StoreError
from freshtoken._log import logger
from freshtoken.stores._base import TokenStore
from freshtoken.stores._entry import Entry, Ledger

if TYPE_CHECKING:
    from freshtoken.stores._memory import MemoryStore


class FailOpenStore:
    """Wraps a shared store. While it fails, this process uses a store of its own (and so may
    mint for itself); it warns once, and goes back to the shared store when it answers."""

    def __init__(self, shared: TokenStore, retry_after: float = 1.0) -> None:
        self.shared = shared
        self._local: MemoryStore | None = None
        self.pepper = shared.pepper
        self.retry_after = retry_after
        self._down_until = 0.0
        self._down = False
        self._guard = Lock()

    def __repr__(self) -> str:
        return f"FailOpenStore({self.shared!r})"

    @property
    def local(self) -> MemoryStore:
        """This process's own store, made when the shared one first fails (a store hit, which
        never needs it, does not import it)."""
        with self._guard:
            if self._local is None:
                from freshtoken.stores._memory import MemoryStore

                self._local = MemoryStore()
            return self._local

    @property
    def ledger(self) -> Ledger | None:
        return getattr(self.shared, "ledger", None)

    @property
    def sharing(self) -> bool:
        """Whether this process uses the shared store (not its own cache) now."""
        return not self._down

    def _shared_ok(self) -> bool:
        return time.monotonic() >= self._down_until

    def _went_down(self, exc: StoreError) -> None:
        with self._guard:
            self._down_until = time.monotonic() + self.retry_after
            if not self._down:
                self._down = True
                logger.warning(
                    "%s; using this process's own cache until it is back "
                    "(FRESHTOKEN_STORE_FAIL=open)",
                    exc.message,
                )

    def _came_back(self) -> None:
        if self._down:
            with self._guard:
                self._down = False
            logger.warning("the shared token store answers again; sharing resumes")

    def _call(self, name: str, *args: Any) -> Any:
        if self._shared_ok():
            try:
                result = getattr(self.shared, name)(*args)
            except StoreError as exc:
                self._went_down(exc)
            else:
                self._came_back()
                return result
        return getattr(self.local, name)(*args)

    def load(self, key: str) -> Entry | None:
        entry: Entry | None = self._call("load", key)
        return entry

    def save(self, key: str, entry: Entry, expected: int) -> int | None:
        if self._shared_ok():
            try:
                version: int | None = self.shared.save(key, entry, expected)
            except StoreError as exc:
                self._went_down(exc)
            else:
                self._came_back()
                return version
        # The local copy is only a stand-in: it takes the newest entry whatever its version.
        current = self.local.load(key)
        return self.local.save(key, entry, current.version if current else 0)

    def delete(self, key: str) -> None:
        self._call("delete", key)

    @contextmanager
    def lock(self, key: str, timeout: float) -> Iterator[bool]:
        if self._shared_ok():
            context = self.shared.lock(key, timeout)
            try:
                held = context.__enter__()
            except StoreError as exc:
                self._went_down(exc)
            else:
                try:
                    yield held
                finally:
                    context.__exit__(None, None, None)
                return
        with self.local.lock(key, timeout) as held:
            yield held

    def owns_lock(self, key: str) -> bool:
        return not self._shared_ok() or self.shared.owns_lock(key)

    def list_keys(self) -> list[str]:
        keys: list[str] = self._call("list_keys")
        return keys

    def close(self) -> None:
        self.shared.close()
