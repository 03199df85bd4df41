"""An entry held under the store's lock: what a minter reads and writes while it mints."""

from __future__ import annotations

from dataclasses import replace

from freshtoken._errors import StoreError
from freshtoken._log import logger
from freshtoken.stores import Entry, TokenStore


def changed_under_lock() -> StoreError:
    """Someone else wrote the entry while this process held its lock: it must not go on."""
    return StoreError(
        "the store entry changed while this process held its lock",
        hint="A lock lease expired mid-mint, or the store failed over; it is retried.",
    )


class HeldEntry:
    """The entry under the store's lock; writes are compare-and-set on its version."""

    def __init__(self, store: TokenStore, key: str, entry: Entry | None, deadline: float) -> None:
        self.store, self.key = store, key
        self.entry = entry
        self.deadline = deadline

    def _save(self, entry: Entry, expected: int) -> int | None:
        try:
            return self.store.save(self.key, entry, expected)
        except StoreError as exc:
            # The token is good: keep serving it from memory rather than fail the caller.
            logger.warning("could not store the new token (%s); serving it from memory", exc)
            return expected

    def write(self, entry: Entry) -> Entry:
        """Store `entry` over the held one. Someone else writing meanwhile (a lease that ran
        out, a store that failed over) means this holder must not go on: StoreError."""
        version = self._save(entry, self.entry.version if self.entry else 0)
        if version is None:
            raise changed_under_lock()
        self.entry = replace(entry, version=version)
        return self.entry

    def keep(self, entry: Entry) -> Entry:
        """Store the outcome of a mint, whatever was written meanwhile: of the two, the
        newer mint wins (its refresh token is the live one); the other is not lost to the
        caller, who still gets a valid token."""
        expected = self.entry.version if self.entry else 0
        for _ in range(5):
            version = self._save(entry, expected)
            if version is not None:
                self.entry = replace(entry, version=version)
                return self.entry
            theirs = self.store.load(self.key)
            if (
                theirs is not None
                and theirs.token is not None
                and theirs.last_mint > entry.last_mint
            ):
                logger.warning("another holder stored a newer token meanwhile; keeping it")
                self.entry = theirs
                return theirs
            expected = theirs.version if theirs else 0
        raise StoreError(
            "the store entry kept changing while this process stored a new token",
            hint="Another writer is overwriting this store's entries; check who shares it.",
        )

    def owns_lock(self) -> bool:
        return self.store.owns_lock(self.key)

    def reload(self) -> Entry | None:
        """The entry as stored now (a process spending a refresh token may have stored its
        outcome without the lock: its mark keeps everyone else from the token meanwhile)."""
        self.entry = self.store.load(self.key)
        return self.entry
