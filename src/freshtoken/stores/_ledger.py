"""What this host saw of a shared store's entries, kept outside the store: per cache key, the
highest generation it saw and the refresh tokens it saw replaced (one-way fingerprints).

A store that lost an entry (Redis restarted without persistence or flushed, an eviction, a
deleted SQLite file, junk written over it) looks like a fresh one from inside; one whose entry
was replaced by an older sealed copy looks current. Measured against the ledger, a refresh
token this host saw replaced is never taken back as current, and a store that once held an
entry and now holds none says so. The generation is sealed in the entry: a writer without the
store key cannot raise an old copy's.

The ledger is advisory: a ledger that cannot be read or written (a full or read-only disk)
knows nothing, and everything works as it did without it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable

from freshtoken._errors import FreshtokenError, InvalidGrantError, StoreError
from freshtoken._log import logger
from freshtoken._platform import PRIVATE_OPEN_FLAGS
from freshtoken._record import record, replace
from freshtoken.stores._entry import Entry, fingerprint
from freshtoken.stores._sealed import check_private_dir, open_private

#: How many fingerprints of replaced refresh tokens are kept per cache key.
KEPT = 256
#: A cache key is hex: a file name as it is (anything else is no key of ours). Spelled out:
#: `string` compiles a regular expression at import (3 M instructions on every store hit).
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_HEX = frozenset("0123456789abcdef")


def _safe(key: str) -> bool:
    return 0 < len(key) <= 128 and set(key) <= _SAFE


@record
class Seen:
    """What a host saw under one cache key: the highest generation, the fingerprint of the
    refresh token held at it, and those of the refresh tokens seen replaced. A record, not a
    NamedTuple: that compiles each (string) annotation, 10 M instructions on every store hit."""

    generation: int = 0
    current: str = ""
    past: tuple[str, ...] = ()


def _parse(data: object) -> Seen | None:
    """The ledger file's `data`, or None when it is not one this code wrote (damaged, or
    written by hand): a value out of range would fail later, in every command."""
    if not isinstance(data, dict):
        return None
    generation, current, past = data.get("generation"), data.get("current") or "", data.get("past")
    if type(generation) is not int or not 0 <= generation < 2**63:
        return None
    if not (current == "" or _mark(current)) or not isinstance(past, list):
        return None
    return Seen(generation, current, tuple(past)) if all(_mark(p) for p in past) else None


def _mark(value: object) -> bool:
    """A fingerprint (`stores/_entry.py`): 24 lowercase hex digits."""
    return isinstance(value, str) and len(value) == 24 and set(value) <= _HEX


class Ledger:
    """The ledger of one store, a file per cache key in `directory` (created private)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)  # os.path's calls: pathlib costs a hit 6 M
        self._read: dict[str, tuple[tuple[int, int, int], Seen]] = {}  # key -> (file, seen)
        self._warned = False

    def __repr__(self) -> str:
        return f"Ledger({self.directory!r})"

    def seen(self, key: str) -> Seen:
        """What this host saw under `key` (nothing when the ledger cannot be read)."""
        if not _safe(key):
            return Seen()
        path = os.path.join(self.directory, key)
        try:
            info = os.lstat(path)
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
            if (cached := self._read.get(key)) and cached[0] == stamp:
                return cached[1]  # every write is a new file: the same one says the same
            check_private_dir(self.directory)
            with os.fdopen(open_private(path, os.O_RDONLY, "store ledger file"), "rb") as handle:
                seen = _parse(json.loads(handle.read(1 << 20)))
        except FileNotFoundError:
            return Seen()
        except (OSError, ValueError, RecursionError, StoreError) as exc:
            self._trouble(path, "read", exc)
            return Seen()
        if seen is None:
            self._trouble(path, "read", ValueError("not a freshtoken ledger"))
            return Seen()
        self._read[key] = (stamp, seen)
        return seen

    def _trouble(self, path: str, action: str, exc: BaseException) -> None:
        """Warn once per ledger: it is advisory, and a command still works without it."""
        if self._warned:
            return
        self._warned = True
        reason = exc.message if isinstance(exc, StoreError) else str(exc)[:200]
        logger.warning(
            "the store ledger %s cannot be %s (%s): rollbacks of the store are not detected "
            "from it. Delete it (rm -r %s) if it is damaged; it is written again",
            path,
            action,
            reason,
            self.directory,
        )

    def stale(self, key: str, entry: Entry) -> bool:
        """Whether `entry` is older than one seen here and holds a refresh token seen replaced
        (a rolled-back copy: its refresh token was spent)."""
        seen, refresh = self.seen(key), entry.refresh_token
        return (
            entry.generation < seen.generation
            and refresh is not None
            and (fingerprint(refresh) in seen.past)
        )

    def next(self, key: str, entry: Entry) -> Entry:
        """`entry` with the generation it is stored with: one past any seen under `key`."""
        return replace(entry, generation=max(entry.generation, self.seen(key).generation) + 1)

    def note(self, key: str, entry: Entry) -> None:
        """Remember what `entry` (just loaded or stored) shows: its generation, its refresh
        token (when it is the newest seen) and the ones it replaced."""
        seen = self.seen(key)
        newest = entry.generation >= seen.generation
        current = fingerprint(entry.refresh_token) if entry.refresh_token else ""
        grown = tuple(p for p in entry.past if p not in seen.past)
        now = Seen(
            max(seen.generation, entry.generation),
            current if newest else seen.current,
            (*seen.past, *grown)[-KEPT:],
        )
        if now == seen or not _safe(key):
            return
        data = {"generation": now.generation, "current": now.current, "past": now.past}
        tmp = os.path.join(self.directory, f".{key}.{os.urandom(4).hex()}")
        target = os.path.join(self.directory, key)
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            check_private_dir(self.directory)  # else another user could plant what it says
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | PRIVATE_OPEN_FLAGS, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
            os.replace(tmp, target)
        except (OSError, StoreError) as exc:
            self._trouble(target, "written", exc)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def forget(self, key: str) -> None:
        """Forget `key`: its entry was removed on purpose (`freshtoken revoke`), not lost."""
        self._read.pop(key, None)
        if _safe(key):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, key))

    def loss(self, key: str, entry: Entry | None) -> int:
        """The generation this host saw under `key` when the store no longer holds it (the
        entry gone, or older than one seen): 0 when nothing was lost as far as it knows."""
        generation = self.seen(key).generation
        return generation if entry is None or entry.generation < generation else 0


def missing(store: object, key: str, entry: Entry | None) -> FreshtokenError | None:
    """Why `store` holds no refresh token under `key`, as far as can be told (None when
    nothing says it ever held one): it cannot be reached, or it lost what this host saw."""
    seed = (
        "Seed the live refresh token if you have it (the refresh-token sink's value) with "
        "`freshtoken seed-refresh-token`, or log in again (`freshtoken login`), seed the new "
        "one and update the CI secret it came from."
    )
    if not getattr(store, "sharing", True):
        return StoreError(
            "the shared token store cannot be reached or written, and a refresh token is "
            "presented only "
            "as that store hands it over (it alone knows whether the token is still current)",
            retryable=True,
            hint="Bring the store back (FRESHTOKEN_STORE, the Redis server); it is retried on "
            "the next call.",
        )
    ledger: Ledger | None = getattr(store, "ledger", None)
    generation = ledger.loss(key, entry) if ledger is not None else 0
    if not generation:
        return None
    return InvalidGrantError(
        f"the token store lost the entry this host saw it hold (generation {generation}): "
        "Redis restarted without persistence, flushed or evicting, the SQLite file deleted, "
        "or the entry overwritten with junk or an older copy. Its refresh token is gone from "
        "here, and a configured one that was spent already, or cannot be shown current, is "
        "not presented (a spent refresh token presented again revokes the whole login)",
        hint=seed + " See docs/refresh-tokens.md, 'A lost store entry'.",
    )


def replaced(store: object, key: str, entry: Entry | None, refresh_token: str) -> bool:
    """Whether `refresh_token` is known spent here: `entry` or this host's ledger saw the
    server answer it with a newer one."""
    mark = fingerprint(refresh_token)
    if entry is not None and mark in entry.past:
        return True
    ledger: Ledger | None = getattr(store, "ledger", None)
    return ledger is not None and mark in ledger.seen(key).past


def refuses(
    store: object,
    key: str,
    entry: Entry | None,
    seed: str,
    ask: tuple[Callable[[str, str], bool | None] | None, Callable[[], bool]] | None = None,
) -> bool:
    """Whether a configured `seed` must not be taken into `store`: `entry` holds it or held it
    (it is older than the one held); this host saw it replaced (spent); the store lost the
    chain this host saw and the seed is neither the refresh token last seen held nor active;
    or the sink was written since it was read. `ask` (introspect, the sink's check): ask the
    server and the sink where that decides; without it, what cannot be told is taken."""
    mark = fingerprint(seed)
    if entry is not None and entry.refresh_token == seed:
        return True
    if replaced(store, key, entry, seed):
        return True
    ledger: Ledger | None = getattr(store, "ledger", None)
    seen = ledger.seen(key) if ledger is not None else Seen()
    if ask is None:
        return False
    introspect, sink_newer = ask
    if ledger is not None and mark != seen.current and ledger.loss(key, entry):
        return not (introspect is not None and introspect(seed, "refresh_token"))
    return sink_newer()
