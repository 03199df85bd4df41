"""Whether a refresh token is spent, or lost with the store, as far as the store's entry and
this host's ledger (`stores/_entry.py`) tell: the broker asks before it presents or takes one."""

from __future__ import annotations

from collections.abc import Callable

from freshtoken._errors import FreshtokenError, InvalidGrantError, StoreError
from freshtoken.stores._entry import Entry, Ledger, Seen, fingerprint


def _loss(ledger: Ledger | None, key: str, entry: Entry | None) -> int:
    """The generation this host saw under `key` when the store no longer holds it (the entry
    gone, or older than one seen): 0 when nothing was lost as far as it knows."""
    generation = ledger.seen(key).generation if ledger is not None else 0
    return generation if entry is None or entry.generation < generation else 0


def unreachable() -> StoreError:
    """The error for a refresh token wanted while the shared store cannot be reached or written
    (this process on its own stand-in for it)."""
    return StoreError(
        "the shared token store cannot be reached or written, and a refresh token is "
        "presented only "
        "as that store hands it over (it alone knows whether the token is still current)",
        retryable=True,
        hint="Bring the store back (FRESHTOKEN_STORE, the Redis server); it is retried on "
        "the next call.",
    )


def missing(store: object, key: str, entry: Entry | None) -> FreshtokenError | None:
    """Why `store` holds no refresh token under `key`, as far as can be told (None when
    nothing says it ever held one): it cannot be reached, or it lost what this host saw."""
    seed = (
        "Seed the live refresh token if you have it (the refresh-token sink's value) with "
        "`freshtoken seed-refresh-token`, or log in again (`freshtoken login`), seed the new "
        "one and update the CI secret it came from."
    )
    if not getattr(store, "sharing", True):
        return unreachable()
    generation = _loss(getattr(store, "ledger", None), key, entry)
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
    if mark != seen.current and _loss(ledger, key, entry):
        return not (introspect is not None and introspect(seed, "refresh_token"))
    return sink_newer()
