"""Keep-alive: spend the refresh token once when it was last used longer ago than a limit, so
that a server's idle expiry (Okta, Auth0, Keycloak's SSO idle) never ends a chain that a
pipeline uses only now and then."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from freshtoken._errors import InvalidGrantError
from freshtoken.stores import Entry
from freshtoken.stores._entry import WRITING_BACK

if TYPE_CHECKING:
    from freshtoken.broker._renewal import Renewal
    from freshtoken.sinks import RefreshTokenSink


@dataclass(frozen=True, slots=True)
class KeptAlive:
    """What keep-alive found and did: `idle` seconds since the refresh token was last used
    (None: nobody can tell), according to `source`; `refreshed` when it spent it."""

    refreshed: bool
    idle: float | None
    source: str


def last_used(
    renewal: Renewal, sink: RefreshTokenSink | None, deadline: float
) -> tuple[float | None, str]:
    """When the refresh token was last used (wall time) and who says so: the later of the
    sink's last write and the store's last refresh; (None, ...) when neither can tell."""
    known: list[tuple[float, str]] = []
    if sink is not None and (written := sink.last_written(deadline)) is not None:
        known.append((written, f"{sink.name} was last written"))
    cache = renewal.cache
    entry = cache.store.load(cache.key)
    if entry is not None and entry.refresh_token and entry.last_mint:
        known.append((entry.last_mint, "the store's last refresh"))
    if not known:
        return None, "neither the sink nor the store can tell when it was last used"
    return max(known)


def refresh_now(renewal: Renewal, why: str) -> Entry:
    """Spend the refresh token the store holds now, whatever the access token's age (a
    pending write-back is written first); the stored outcome."""

    def decide(entry: Entry | None, end: float) -> Entry:
        if entry is None or entry.refresh_token is None:
            raise InvalidGrantError(
                "no refresh token is held for this client, so there is none to keep alive",
                hint="Seed one (FRESHTOKEN_REFRESH_TOKEN from a `freshtoken login`, or a "
                "readable FRESHTOKEN_REFRESH_TOKEN_SINK); see docs/refresh-tokens.md.",
            )
        kept, sent = renewal.renew(entry, end, why)
        renewal.cache.adopt(kept, sent)
        return kept

    return renewal.transact(decide)


def keep_alive(
    renewal: Renewal, sink: RefreshTokenSink | None, max_idle: float, deadline: float
) -> KeptAlive:
    """Refresh once when the refresh token was last used `max_idle` seconds ago or more (or
    nobody can tell, or a write-back is pending); else do nothing."""
    cache = renewal.cache
    when, source = last_used(renewal, sink, deadline)
    idle = None if when is None else max(cache.clock.time() - when, 0.0)
    entry = cache.store.load(cache.key)
    pending = entry is not None and entry.phase == WRITING_BACK
    if idle is not None and idle < max_idle and not pending:
        return KeptAlive(False, idle, source)
    refresh_now(renewal, "keep-alive")
    return KeptAlive(True, idle, "a write-back was pending" if pending else source)
