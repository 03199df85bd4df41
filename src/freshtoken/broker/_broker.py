"""TokenBroker: a token valid for as long as the caller needs, from a cache shared by every
thread, task and process that uses the same store.

The hot path reads one attribute and the clock. The slow path is single-flight twice over:
one thread per process (a lock), one process per store (the store's lock), and everyone else
adopts what the winner stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from freshtoken._clock import Clock
from freshtoken._errors import (
    ErrorContext,
    InsufficientScopeError,
    InvalidGrantError,
    OAuthError,
    StoreError,
    TokenUnavailableError,
    hint_for,
)
from freshtoken._log import logger, remember_secret
from freshtoken._token import Token
from freshtoken.broker._key import cache_key
from freshtoken.broker._policy import DEFAULT_MIN_TTL, RefreshPolicy, default_need
from freshtoken.config._settings import Settings
from freshtoken.oauth._client import TokenClient
from freshtoken.oauth._grants import ClientCredentials, RefreshTokenGrant
from freshtoken.oauth._retry import surely_unprocessed
from freshtoken.stores._base import MemoryStore, TokenStore
from freshtoken.stores._entry import Entry

if TYPE_CHECKING:
    import httpx
    import requests


@dataclass(frozen=True, slots=True)
class BrokerStats:
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
        grant: ClientCredentials | None = None,
        store: TokenStore | None = None,
        refresh: RefreshPolicy | None = None,
        default_min_ttl: float = DEFAULT_MIN_TTL,
        scope_check: Literal["raise", "warn"] = "raise",
        wait_timeout: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.grant = grant
        self.store = store if store is not None else MemoryStore()
        self.refresh = refresh or RefreshPolicy()
        self.default_min_ttl = default_min_ttl
        self.scope_check = scope_check
        self.clock = clock or client.clock
        # Waiting longer than a mint may take would be waiting for a holder that is gone.
        self.wait_timeout = wait_timeout or client.policy.budget + 2 * client.timeouts.read
        self._requested_scope = grant.scope if grant else ()
        self.key = cache_key(
            self.store.pepper,
            endpoint=client.identity(),
            client_id=client.auth.client_id,
            grant=grant,
            secret=getattr(client.auth, "client_secret", None),
        )
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._time = self.clock.time
        self._current: Token | None = None
        self._default_need = default_min_ttl
        self._refresh_at = 0.0
        self._next_ahead = 0.0
        self._ahead_failures = 0
        self._flight = threading.Lock()
        self._counts = dict.fromkeys(BrokerStats.__slots__, 0)
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._ahead: threading.Thread | None = None

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
        client = TokenClient.from_settings(settings, **({"clock": clock} if clock else {}))
        options.setdefault("grant", settings.grant_for_broker())
        return cls(client, store=store or settings.open_store(), **options)

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
        token = self._current
        if token is None:
            return None
        now = self._time()
        if token.expires_at - now < (self._default_need if min_ttl is None else min_ttl):
            return None
        self._counts["hits"] += 1
        if now >= self._refresh_at and now >= self._next_ahead:
            self._start_refresh_ahead(now)
        return token

    def _need(self, token: Token, min_ttl: float | None) -> float:
        return min_ttl if min_ttl is not None else default_need(token, self.default_min_ttl)

    # -- the slow path ---------------------------------------------------------------------
    def _usable(self, token: Token | None, min_ttl: float | None) -> bool:
        return token is not None and (
            token.expires_at - self.clock.time() >= self._need(token, min_ttl)
        )

    def _adopt(self, entry: Entry, *, minted: bool = False) -> Token:
        token = entry.token
        assert token is not None
        if self._current is None or token.access_token != self._current.access_token:
            remember_secret(token.access_token)
            if not minted:
                self._counts["adopted"] += 1
        self._current = token
        self._default_need = self._need(token, None)
        self._refresh_at = self.refresh.refresh_at(token)
        self._next_ahead = 0.0
        self._ahead_failures = 0
        return token

    def _obtain(self, min_ttl: float | None) -> Token:
        if not self._flight.acquire(timeout=self.wait_timeout):
            raise self._timed_out()
        try:
            if self._usable(self._current, min_ttl):
                assert self._current is not None
                return self._current
            entry = self.store.load(self.key)
            if entry is not None and self._usable(entry.token, min_ttl):
                return self._adopt(entry)
            with self.store.lock(self.key, self.wait_timeout) as held:
                if not held:
                    raise self._timed_out()
                entry = self.store.load(self.key)  # the holder before us may have minted
                if entry is not None and self._usable(entry.token, min_ttl):
                    self._counts["waits"] += 1
                    return self._adopt(entry)
                token = self._adopt(self._renew(entry), minted=True)
        except OAuthError:
            self._counts["failures"] += 1
            raise
        finally:
            self._flight.release()
        if min_ttl is not None and not token.valid_for(min_ttl, self.clock.time()):
            raise TokenUnavailableError(
                f"a new token lives {token.lifetime:.0f}s, less than the {min_ttl:.0f}s asked for",
                hint="Ask for less (min_ttl / --min-ttl), or raise the token lifetime on the "
                "OAuth client (Genesys Cloud: the client's Token Duration, 300..172800 s).",
                retryable=False,
            )
        return token

    def _timed_out(self) -> TokenUnavailableError:
        return TokenUnavailableError(
            f"no token within {self.wait_timeout:.0f}s: another holder of the store's lock "
            "has not finished",
            hint="Another process is minting or is stuck (stopped, or its network hangs). It "
            "is retried on the next call; check `freshtoken status`.",
        )

    def _save(self, entry: Entry, expected: int) -> Entry:
        try:
            version = self.store.save(self.key, entry, expected)
        except StoreError as exc:
            # The token is good: keep serving it from memory rather than fail the caller.
            logger.warning("could not store the new token (%s); serving it from memory", exc)
            return replace(entry, version=expected)
        if version is None:
            # Under the lock nobody else writes; a lost lease is the only way here.
            raise StoreError(
                "the store entry changed while this process held its lock",
                hint="A lock lease expired mid-mint; the newer entry wins.",
            )
        return replace(entry, version=version)

    def _renew(self, entry: Entry | None) -> Entry:
        """Mint or refresh, under the store's lock, and store the result before returning."""
        version = entry.version if entry else 0
        refresh = entry.refresh_token if entry else None
        if entry is not None and entry.spending is not None and refresh is not None:
            refresh = self._resume_spent(refresh)
            if refresh is None:
                entry = self._save(replace(entry, refresh_token=None, spending=None), version)
                version = entry.version
        if refresh is not None and entry is not None:
            token, refresh, version = self._spend(entry, refresh)
        else:
            if self.grant is None:
                raise InvalidGrantError(
                    "no refresh token is held for this client",
                    hint="Seed one obtained by a login (TokenBroker.seed_refresh_token, or "
                    "`freshtoken seed-refresh-token`), or configure client credentials.",
                )
            token = self.client.fetch(self.grant)
            refresh = token.refresh_token
        self._counts["mints"] += 1
        mints = (entry.mints if entry else 0) + 1
        bare = replace(token, refresh_token=None)  # callers never get the refresh token
        if refresh:
            remember_secret(refresh)
        problem = self._scope_problem(token)
        if problem is not None and self.scope_check == "raise":
            # Keep a rotated refresh token, but never cache the token that failed the check.
            self._save(Entry(None, refresh, None, mints, token.issued_at), version)
            raise problem
        if problem is not None:
            logger.warning("%s", problem)
        return self._save(Entry(bare, refresh, None, mints, token.issued_at), version)

    def _spend(self, entry: Entry, refresh: str) -> tuple[Token, str | None, int]:
        """Present a refresh token exactly once: mark it spent in the store first.

        Returns the token, the refresh token to keep, and the entry's version by then.
        """
        marked = self._save(
            replace(entry, refresh_token=refresh, spending=self._owner), entry.version
        )
        if not self.store.owns_lock(self.key):
            # Our lease ran out (this process was paused): another holder may be spending it.
            raise TokenUnavailableError(
                "the store's lock was lost before the refresh token was presented; it was not",
                hint="This process was paused or slow past the lock's lease; it will retry.",
            )
        try:
            token = self.client.fetch(RefreshTokenGrant(refresh, self._requested_scope))
        except InvalidGrantError as exc:
            cleared = self._save(replace(marked, refresh_token=None, spending=None), marked.version)
            if self.grant is None:
                raise
            logger.warning(
                "refresh token refused (%s); falling back to %s. %s",
                exc.error,
                self.grant.name,
                exc.hint,
            )
            token = self.client.fetch(self.grant)
            return token, token.refresh_token, cleared.version
        except OAuthError as exc:
            if surely_unprocessed(exc):  # the server never saw it: it is still unspent
                self._save(replace(marked, spending=None), marked.version)
            raise
        self._counts["refreshes"] += 1
        # A server that does not rotate answers without a new one: the old one stays good.
        return token, token.refresh_token or refresh, marked.version

    def _resume_spent(self, refresh: str) -> str | None:
        """A holder presented this refresh token and never stored the outcome (it died, or
        the answer was lost). Present it again only if the server says it is still active."""
        active = self.client.introspect(refresh)
        if active:
            logger.warning(
                "resuming a refresh left unfinished by another holder: the server "
                "says its refresh token is still unspent"
            )
            return refresh
        logger.warning(
            "a refresh token was presented by a holder that never stored the answer, and the "
            "server %s; it is not presented again (that could revoke the whole login). %s",
            "reports it spent" if active is False else "cannot tell whether it was spent",
            "Falling back to client credentials."
            if self.grant
            else "Seed a new refresh token from a fresh login.",
        )
        return None

    def _scope_problem(self, token: Token) -> InsufficientScopeError | None:
        if token.scope is None or not self._requested_scope:
            return None  # a server that states no scope (Genesys) grants what the client has
        missing = sorted(set(self._requested_scope) - set(token.scope))
        if not missing:
            return None
        return InsufficientScopeError(
            f"the server granted scope {' '.join(token.scope) or '(none)'} without "
            f"{' '.join(missing)}",
            hint=hint_for("insufficient_scope", ErrorContext(self.client.identity())),
        )

    # -- refresh ahead ---------------------------------------------------------------------
    def _start_refresh_ahead(self, now: float) -> None:
        if self._refresher is not None:
            return  # the background refresher keeps its own schedule: callers leave it be
        self._next_ahead = now + 1.0  # one starter at a time; _refresh_ahead resets it
        self._ahead = threading.Thread(
            target=self._refresh_ahead, name="freshtoken-refresh-ahead", daemon=True
        )
        self._ahead.start()

    def _adopt_newer(self, entry: Entry | None) -> bool:
        """Take a newer token that another process stored; True if no refresh is due now."""
        token = entry.token if entry is not None else None
        if token is None or (self._current and token.expires_at <= self._current.expires_at):
            return False
        assert entry is not None
        self._adopt(entry)
        return self.clock.time() < self._refresh_at

    def _back_off(self, cap: float) -> float:
        """After a failed refresh: no new try for 1, 2, 4 … seconds (at most `cap`)."""
        self._ahead_failures += 1
        backoff = min(cap, 0.5 * 2.0**self._ahead_failures)
        self._next_ahead = self.clock.time() + backoff
        return backoff

    def _refresh_ahead(self) -> None:
        """Refresh without making anyone wait: skip if another thread or process is at it."""
        if not self._flight.acquire(blocking=False):
            return
        try:
            if self._adopt_newer(self.store.load(self.key)):
                return
            with self.store.lock(self.key, 0.0) as held:
                if not held:
                    self._next_ahead = self.clock.time() + 0.05
                    return  # another process is refreshing; adopt its result soon
                entry = self.store.load(self.key)
                if self._adopt_newer(entry):
                    return
                self._adopt(self._renew(entry), minted=True)
        except OAuthError as exc:
            self._counts["failures"] += 1
            backoff = self._back_off(30.0)
            if self._current is not None and self._current.expires_at > self.clock.time():
                self._counts["stale_served"] += 1
                logger.warning(
                    "refresh ahead failed (%s); the current token stays in use for "
                    "%.0fs more, next try in %.1fs",
                    exc.error,
                    self._current.expires_at - self.clock.time(),
                    backoff,
                )
        finally:
            self._flight.release()

    # -- control ---------------------------------------------------------------------------
    def invalidate(self, token: Token) -> None:
        """After a 401 with `token`: forget it, but only if it is still the cached one, so
        that many callers that saw the same 401 cause one mint."""
        with self._flight:
            if self._current is not None and self._current.access_token == token.access_token:
                self._current = None
            entry = self.store.load(self.key)
            if entry and entry.token and entry.token.access_token == token.access_token:
                with contextlib.suppress(StoreError):
                    self.store.save(self.key, replace(entry, token=None), entry.version)

    def seed_refresh_token(self, refresh_token: str) -> None:
        """Store a refresh token obtained by a one-time login; the next mint spends it."""
        remember_secret(refresh_token)
        with self._flight, self.store.lock(self.key, self.wait_timeout) as held:
            if not held:
                raise self._timed_out()
            entry = self.store.load(self.key)
            fresh = Entry(
                None,
                refresh_token,
                None,
                entry.mints if entry else 0,
                entry.last_mint if entry else 0.0,
            )
            if self.store.save(self.key, fresh, entry.version if entry else 0) is None:
                raise StoreError("the store entry changed while seeding", hint="Try again.")
            self._current = None

    @property
    def current(self) -> Token | None:
        """The cached token, whatever its age (no network, no store)."""
        return self._current

    @property
    def stats(self) -> BrokerStats:
        return BrokerStats(**self._counts)

    # -- background refresher --------------------------------------------------------------
    def start(self) -> TokenBroker:
        """Refresh in a background thread from now on, off every caller's path."""
        if self._refresher is None:
            self._stop.clear()
            self._refresher = threading.Thread(
                target=self._run_refresher, name="freshtoken-refresher", daemon=True
            )
            self._refresher.start()
        return self

    def _run_refresher(self) -> None:
        while not self._stop.is_set():
            if self.clock.time() >= self._next_ahead:
                try:
                    if self._current is None:
                        self._obtain(None)
                    elif self.clock.time() >= self._refresh_at:
                        self._refresh_ahead()
                except OAuthError as exc:
                    # A wrong secret must not turn into a request every few ms.
                    backoff = self._back_off(60.0)
                    logger.warning(
                        "background refresh failed (%s); next try in %.0fs. %s",
                        exc.error,
                        backoff,
                        exc.hint,
                    )
            wake = max(self._refresh_at, self._next_ahead) - self.clock.time()
            self._stop.wait(min(max(wake, 0.05), 5.0))

    def close(self) -> None:
        """Finish a refresh in flight, stop the background refresher, release the client.

        A short-lived process calls this before exiting, so that a refresh it started is
        stored rather than abandoned halfway."""
        self._stop.set()
        for thread in (self._ahead, self._refresher):
            if thread is not None:
                thread.join(timeout=self.wait_timeout)
        self._refresher = None
        self.client.close()

    def __enter__(self) -> TokenBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- adapters ----------------------------------------------------------------------------
    def httpx_auth(self) -> httpx.Auth:
        """An `httpx.Auth` (sync and async) that sends the token and retries once on 401."""
        from freshtoken.auth._adapters import BrokerAuth

        return BrokerAuth(self)

    def requests_auth(self) -> requests.auth.AuthBase:
        """A `requests` auth that sends the token and retries once on 401."""
        from freshtoken.auth._adapters import requests_auth

        return requests_auth(self)
