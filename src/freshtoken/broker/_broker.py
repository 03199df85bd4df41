"""TokenBroker: a token valid for as long as the caller needs, from a cache shared by every
thread, task and process that uses the same store.

A thin facade over three layers: a minter (grant, or refresh token with its fallback), the
shared cache (single flight, adopt, invalidate, seed) and refresh ahead. The hot path reads
one tuple and the clock.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from freshtoken import _build
from freshtoken._clock import Clock
from freshtoken._errors import TokenUnavailableError
from freshtoken._token import Token
from freshtoken.broker._ahead import RefreshAhead
from freshtoken.broker._key import cache_key
from freshtoken.broker._minters import GrantMinter, RefreshTokenMinter
from freshtoken.broker._policy import DEFAULT_MIN_TTL, RefreshPolicy
from freshtoken.broker._shared import INVALIDATE_COOLDOWN, SharedCache
from freshtoken.config._settings import Settings
from freshtoken.oauth._client import TokenClient
from freshtoken.oauth._grants import Grant
from freshtoken.stores import TokenStore
from freshtoken.stores._memory import MemoryStore

if TYPE_CHECKING:
    import httpx
    import requests


@dataclass(frozen=True, slots=True)
class BrokerStats:
    """Counts since the broker was made."""

    hits: int
    mints: int
    refreshes: int
    adopted: int
    waits: int
    failures: int
    stale_served: int


class TokenBroker:
    """Hands out tokens valid for at least `min_ttl` seconds, minting as rarely as possible.

    `grant` is what mints a token when no refresh token is held (None: refresh tokens only).
    """

    def __init__(
        self,
        client: TokenClient,
        *,
        grant: Grant | None = None,
        store: TokenStore | None = None,
        refresh: RefreshPolicy | None = None,
        default_min_ttl: float = DEFAULT_MIN_TTL,
        scope_check: Literal["raise", "warn"] = "raise",
        wait_timeout: float | None = None,
        clock: Clock | None = None,
        invalidate_cooldown: float = INVALIDATE_COOLDOWN,
    ) -> None:
        self.client = client
        self.grant = grant
        self.store = store if store is not None else MemoryStore()
        self.refresh = refresh or RefreshPolicy()
        if default_min_ttl != self.refresh.default_min_ttl:
            self.refresh = RefreshPolicy(
                self.refresh.fraction,
                self.refresh.floor,
                self.refresh.max_fraction,
                default_min_ttl,
            )
        self.clock = clock or client.clock
        # Waiting longer than a mint may take would be waiting for a holder that is gone.
        self.wait_timeout = wait_timeout or client.policy.budget + 2 * client.timeouts.read
        self.key = cache_key(
            self.store.pepper, endpoint=client.identity(), auth=client.auth, grant=grant
        )
        scope = grant.scope if grant else ()
        minter = RefreshTokenMinter(
            client,
            GrantMinter(client, grant) if grant is not None else None,
            scope=scope,
            owner=f"{socket.gethostname()}:{os.getpid()}:{id(self):x}",
        )
        self._cache = SharedCache(
            self.store,
            self.key,
            minter,
            policy=self.refresh,
            clock=self.clock,
            wait_timeout=self.wait_timeout,
            requested_scope=scope,
            identity=client.identity(),
            scope_check=scope_check,
            invalidate_cooldown=invalidate_cooldown,
        )
        self._ahead = RefreshAhead(self._cache)
        self._counts = self._cache.counts
        self._time = self.clock.time

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        store: TokenStore | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> TokenBroker:
        """A broker for the configured client, store and scope; `options` as for __init__."""
        parts = _build.broker_parts(settings, clock, store=store)
        options.setdefault("invalidate_cooldown", settings.invalidate_cooldown)
        grant = options.pop("grant", parts.pop("grant"))
        return cls(parts.pop("client"), grant=grant, **parts, **options)

    @classmethod
    def from_env(cls, **options: Any) -> TokenBroker:
        """A broker configured by `FRESHTOKEN_*` variables (see the README)."""
        return cls.from_settings(Settings.from_env(), **options)

    def __repr__(self) -> str:
        return f"TokenBroker({self.client!r}, store={self.store!r})"

    # -- the hot path ----------------------------------------------------------------------
    def token(self, min_ttl: float | None = None) -> Token:
        """A token valid for at least `min_ttl` seconds (default: a small safety margin)."""
        hit = self._hit(min_ttl)
        return hit if hit is not None else self._obtain(min_ttl)

    async def atoken(self, min_ttl: float | None = None) -> Token:
        """`token()` for asyncio: the cache hit is inline, a mint runs off the event loop."""
        hit = self._hit(min_ttl)
        return hit if hit is not None else await asyncio.to_thread(self._obtain, min_ttl)

    def _hit(self, min_ttl: float | None) -> Token | None:
        state = self._cache.state
        if state is None:
            return None
        token, default_min_ttl, refresh_at = state
        now = self._time()
        if token.expires_at - now < (default_min_ttl if min_ttl is None else min_ttl):
            return None
        self._counts["hits"] += 1
        if now >= refresh_at and now >= self._ahead.next_try:
            self._ahead.kick(now)
        return token

    def _obtain(self, min_ttl: float | None) -> Token:
        token = self._cache.obtain(min_ttl)
        if min_ttl is not None and not token.valid_for(min_ttl, self.clock.time()):
            raise TokenUnavailableError(
                f"a new token lives {token.lifetime:.0f}s, less than the {min_ttl:.0f}s asked for",
                hint="Ask for less (min_ttl / --min-ttl), or raise the token lifetime on the "
                "OAuth client (Genesys Cloud: the client's Token Duration, 300..172800 s).",
                retryable=False,
            )
        return token

    # -- control ---------------------------------------------------------------------------
    def invalidate(self, token: Token) -> None:
        """After a 401 with `token`: forget it, but only if it is still the cached one, so
        that many callers that saw the same 401 cause one mint."""
        self._cache.invalidate(token)

    def seed_refresh_token(self, refresh_token: str) -> None:
        """Store a refresh token obtained by a one-time login; the next mint spends it."""
        self._cache.seed(refresh_token)

    def revoke(self) -> dict[str, bool | None]:
        """Revoke this client's stored tokens at the server, then drop them from the store.

        Per token kind held (`access_token`, `refresh_token`): True revoked, False refused by
        the server, None the server has no revocation endpoint. Empty when nothing was held.
        """
        entry = self._cache.take()
        said: dict[str, bool | None] = {}
        if entry is not None:
            held = {
                "access_token": entry.token.access_token if entry.token else None,
                "refresh_token": entry.refresh_token,
            }
            for hint, value in held.items():
                if value:
                    said[hint] = self.client.revoke(value, hint)
        return said

    @property
    def current(self) -> Token | None:
        """The cached token, whatever its age (no network, no store)."""
        return self._cache.current

    @property
    def stats(self) -> BrokerStats:
        return BrokerStats(**self._counts)

    # -- background refresher --------------------------------------------------------------
    def start(self) -> TokenBroker:
        """Refresh in a background thread from now on, off every caller's path."""
        self._ahead.start()
        return self

    def close(self) -> None:
        """Finish a refresh in flight, stop the background refresher, release the client.

        A short-lived process calls this before exiting, so that a refresh it started is
        stored rather than abandoned halfway."""
        self._ahead.stop(self.wait_timeout)
        self.client.close()

    def __enter__(self) -> TokenBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- adapters ----------------------------------------------------------------------------
    def httpx_auth(self) -> httpx.Auth:
        """An `httpx.Auth` (sync and async) that sends the token and retries once on 401."""
        from freshtoken.auth._httpx import SourceAuth

        return SourceAuth(self)

    def requests_auth(self) -> requests.auth.AuthBase:
        """A `requests` auth that sends the token and retries once on 401."""
        from freshtoken.auth._requests import requests_auth

        return requests_auth(self)
