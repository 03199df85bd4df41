"""TokenBroker: a token valid for as long as the caller needs, from a cache shared by every
thread, task and process that uses the same store.

A thin facade over the shared cache (hot state, adopt, invalidate, promises), the renewal (the
one locked transaction: mint with the grant or the refresh token's minter, seed, take) and
refresh ahead. The hot path reads one tuple and the clock.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from freshtoken import _build
from freshtoken._clock import Clock
from freshtoken._endpoint_source import EndpointSource
from freshtoken._errors import ConfigurationError
from freshtoken._local_endpoint import default_min_ttl, running_endpoint
from freshtoken._secret import Secret
from freshtoken._token import RefreshPolicy, Token, with_margin
from freshtoken.auth._adapters import HttpAuths
from freshtoken.broker._ahead import KeptAlive, RefreshAhead, keep_alive
from freshtoken.broker._key import cache_key
from freshtoken.broker._refresh import SpendProcess
from freshtoken.broker._renewal import Renewal, Seed
from freshtoken.broker._shared import INVALIDATE_COOLDOWN, MODES, SharedCache
from freshtoken.config._settings import Settings
from freshtoken.oauth._grants import ClientCredentials, Grant
from freshtoken.stores import TokenStore
from freshtoken.stores._memory import MemoryStore

if TYPE_CHECKING:
    from freshtoken.oauth._client import TokenClient
    from freshtoken.sinks import RefreshTokenSink


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


_CLIENT_CREDENTIALS = ClientCredentials()


class TokenBroker(HttpAuths):
    """Hands out tokens valid for at least `min_ttl` seconds, minting as rarely as possible.

    `grant` is what mints a token when no refresh token is held: the client-credentials grant
    unless said otherwise; None means refresh tokens only (seeded from a login). `sink`
    receives every rotated refresh token before the new access token is handed out.
    """

    def __init__(
        self,
        client: TokenClient,
        *,
        grant: Grant | None = _CLIENT_CREDENTIALS,
        store: TokenStore | None = None,
        refresh: RefreshPolicy | None = None,
        default_min_ttl: float | None = None,
        scope_check: Literal["raise", "warn"] = "raise",
        wait_timeout: float | None = None,
        clock: Clock | None = None,
        invalidate_cooldown: float = INVALIDATE_COOLDOWN,
        sink: RefreshTokenSink | None = None,
        rotation_revokes_access: Literal["auto", "yes", "no"] = "auto",
        login: str | None = None,
    ) -> None:
        if rotation_revokes_access not in MODES:
            raise ConfigurationError(
                f"rotation_revokes_access must be auto, yes or no, not {rotation_revokes_access!r}",
                hint="auto: learned through introspection; yes: django-oauth-toolkit and alike.",
            )
        self.client = client
        self.sink = sink
        self.grant = grant
        self.store = store if store is not None else MemoryStore()
        self.refresh = refresh or RefreshPolicy()
        if default_min_ttl is not None and default_min_ttl != self.refresh.default_min_ttl:
            self.refresh = dataclasses.replace(self.refresh, default_min_ttl=default_min_ttl)
        self.clock = clock or client.clock
        # One deadline per call: waiting for another holder and minting share the budget.
        self.wait_timeout = wait_timeout or client.policy.budget
        self.key = cache_key(
            self.store.pepper,
            endpoint=client.identity(),
            auth=client.auth,
            grant=grant,
            login=login,
        )
        self._cache = SharedCache(
            self.store,
            self.key,
            client,
            policy=self.refresh,
            clock=self.clock,
            invalidate_cooldown=invalidate_cooldown,
            rotation=rotation_revokes_access,
        )
        self._renewal = Renewal(
            self._cache,
            client,
            grant,
            owner=f"{socket.gethostname()}:{os.getpid()}:{id(self):x}",
            sink=sink,
            wait_timeout=self.wait_timeout,
            scope_check=scope_check,
        )
        self._refresher = self._renewal.minter
        self._ahead = RefreshAhead(self._renewal)
        #: What offers a configured refresh token once, before the first mint (None: done).
        self._offer: Callable[[], Seed | None] | None = None
        self._offer_lock = threading.Lock()
        self._counts = self._cache.counts
        self._now = self.clock.monotonic

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        store: TokenStore | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> TokenBroker:
        """A broker for the configured client, store, scope and refresh-token sink; `options`
        as for __init__. Nothing is sent or seeded yet (only the store is opened): before its
        first mint, the broker seeds a refresh token from the sink (where it can be read back)
        or the `refresh_token` setting, unless the store holds a newer one or one was seeded
        explicitly.

        With a store it opens itself that outlives the process, a refresh token is spent
        in a process of its own (`freshtoken.broker._spender`): killing the caller mid-refresh
        does not lose the new refresh token."""
        parts = _build.broker_parts(settings, clock, store=store)
        options.setdefault("invalidate_cooldown", settings.invalidate_cooldown)
        options["refresh"] = with_margin(
            options.get("refresh") or RefreshPolicy(), settings.min_ttl
        )
        options.setdefault("rotation_revokes_access", settings.rotation_revokes_access)
        options.setdefault("login", settings.login)
        configured = parts.pop("grant")
        grant = options.pop("grant", configured)
        broker = cls(parts.pop("client"), grant=grant, **parts, **options)
        # Only what the spender can rebuild: the configured store, clock and grant.
        rebuilt = store is None and clock is None and grant in (None, configured)
        if rebuilt and SpendProcess.usable(settings):
            broker._refresher.elsewhere = SpendProcess(
                settings,
                key=broker.key,
                fallback=grant is not None,
                scope_check=options.get("scope_check", "raise"),
            )
        if broker.sink is not None or settings.refresh_token:
            from freshtoken.sinks._base import configured_seed  # not on import: it loads httpx

            broker._offer = lambda: configured_seed(broker.sink, settings.refresh_token)
        return broker

    @classmethod
    def from_env(
        cls, *, profile: str | None = None, **options: Any
    ) -> TokenBroker | EndpointSource:
        """A broker configured as the command line is: `FRESHTOKEN_*` variables (and a provider
        preset's own) over a profile of `freshtoken.toml` (`profile`, else `$FRESHTOKEN_PROFILE`).

        In a step that has the running endpoint's `FRESHTOKEN_URL` and `FRESHTOKEN_KEY` (after
        the GitHub Action, in a child of `freshtoken exec`) and no client secret of its own,
        the tokens come from that endpoint: an `EndpointSource`, which serves the same calls
        (`token`, `atoken`, `invalidate`, `httpx_auth`, `requests_auth`, `close`).

        A `FRESHTOKEN_*` variable no setting reads (a typo) is logged as a warning naming the
        closest setting, as the command line says it."""
        from freshtoken._log import logger
        from freshtoken.config._load import unknown_variables

        for line in unknown_variables(os.environ):
            logger.warning("%s", line)
        found = running_endpoint(profile)
        if found is not None:
            margin = options.get("default_min_ttl")
            return EndpointSource(*found, min_ttl=default_min_ttl() if margin is None else margin)
        return cls.from_settings(Settings.load(profile=profile), **options)

    @classmethod
    def client_credentials(
        cls,
        *,
        client_id: str,
        client_secret: Secret | str | None = None,
        token_url: str | None = None,
        issuer: str | None = None,
        region: str | None = None,
        scope: str | Sequence[str] = (),
        store: str | TokenStore | None = "memory://",
        auth_method: str = "client_secret_basic",
        **options: Any,
    ) -> TokenBroker:
        """A broker for a client-credentials client in one line, no environment needed.

        The endpoint is `token_url`, or discovered from `issuer`, or that of a provider
        preset's `region` (provider/_presets.py); `store` is a store or its URL (default: this
        process only).
        """
        url, opened = (store, None) if isinstance(store, str) or store is None else (None, store)
        settings = Settings(
            client_id=client_id,
            client_secret=client_secret,  # type: ignore[arg-type]  # a str is wrapped at once
            token_url=token_url,
            issuer=issuer,
            region=region,
            scope=tuple(scope.split()) if isinstance(scope, str) else tuple(scope),
            store=url,
            auth_method=auth_method,
        )
        return cls.from_settings(settings, store=opened, **options)

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
        if hit is not None:
            return hit
        import asyncio  # only where async is used: it costs a sync user ~70 ms to import

        return await asyncio.to_thread(self._obtain, min_ttl)

    def _hit(self, min_ttl: float | None) -> Token | None:
        state = self._cache.state
        if state is None:
            return None
        token, default_min_ttl, expiry, refresh_at = state
        now = self._now()
        # Chained so that a negative or NaN min_ttl is no hit: the slow path refuses it.
        if not expiry - now >= (default_min_ttl if min_ttl is None else min_ttl) >= 0:
            return None
        self._counts["hits"] += 1
        if now >= refresh_at and now >= self._cache.next_try:
            self._ahead.kick(now)
        return token

    def _offer_seed(self) -> None:
        """Seed the configured refresh token (sink or setting) once, before the first mint:
        other threads wait for it, and one that failed (a sink unreadable for now) is tried
        again by the next call."""
        if self._offer is None:
            return
        with self._offer_lock:
            offer = self._offer
            if offer is None:
                return
            if found := offer():
                self._renewal.seed(found[0], unless_known=True, older=found[1])
            self._offer = None

    def _obtain(self, min_ttl: float | None) -> Token:
        self._offer_seed()
        if min_ttl is not None and not 0 <= min_ttl < math.inf:
            raise ConfigurationError(
                f"min_ttl must be a number of seconds, zero or more, not {min_ttl!r}",
                hint="Ask for how long the token must stay valid, e.g. min_ttl=60.",
            )
        return self._renewal.obtain(min_ttl)

    def remaining(self, token: Token) -> float:
        """Seconds `token` has left, by this process's monotonic clock when it is the
        cached token (a wall-clock step does not change it)."""
        return self._cache.left(token)

    # -- control ---------------------------------------------------------------------------
    def invalidate(self, token: Token) -> None:
        """After a 401 with `token`: forget it, but only if it is still the cached one, so
        that many callers that saw the same 401 cause one mint."""
        self._cache.invalidate(token)

    def seed_refresh_token(self, refresh_token: str) -> None:
        """Store a refresh token obtained by a one-time login; the next mint spends it (and
        the configured one is no longer offered)."""
        with self._offer_lock:
            self._offer = None
            self._renewal.seed(refresh_token)

    def offer_refresh_token(self, refresh_token: str) -> bool:
        """Seed `refresh_token` (a CI secret's value) unless the store holds it already or
        held it before: then the store's own is newer (the secret was read before the last
        rotation) and is kept. True when it was seeded."""
        return self._renewal.seed(refresh_token, unless_known=True)

    def keep_alive(self, max_idle: float) -> KeptAlive:
        """Spend the refresh token once (writing the new one back) when it was last used
        `max_idle` seconds ago or more, or nobody can tell; else do nothing."""
        self._offer_seed()
        return keep_alive(self._renewal, self.sink, max_idle, self.client.deadline())

    def revoke(self) -> dict[str, bool | None]:
        """Revoke this client's stored tokens at the server, then drop them from the store.

        Per token kind held (`access_token`, `refresh_token`): True revoked, False refused by
        the server, None the server has no revocation endpoint. Empty when nothing was held.
        """
        self._offer_seed()  # a configured refresh token is revoked too
        entry = self._renewal.take()
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
        """Refresh in a background thread from now on, off every caller's path (the
        configured refresh token is seeded first: that thread may mint at once)."""
        self._offer_seed()
        self._ahead.start()
        return self

    def close(self, wait: float | None = None) -> None:
        """Finish a refresh in flight (waiting at most `wait` seconds, default the wait
        timeout), stop the background refresher, release the client.

        A short-lived process calls this before exiting, so that a refresh it started is
        stored rather than abandoned halfway."""
        self._ahead.stop(self.wait_timeout if wait is None else wait)
        self.client.close()

    def __enter__(self) -> TokenBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
