"""The running endpoint as a token source: what `TokenBroker.from_env()` gives a step that
has `FRESHTOKEN_URL` and `FRESHTOKEN_KEY` and no client secret (after the GitHub Action, in a
child of `freshtoken exec`). The endpoint is the job's shared cache: it mints, refreshes and
writes back; this process never holds a client secret or a refresh token."""

from __future__ import annotations

import threading
import time

from freshtoken._local_endpoint import EndpointRefusal, ask, fingerprint
from freshtoken._token import Token
from freshtoken.auth._adapters import HttpAuths


class EndpointSource(HttpAuths):
    """Tokens from the running endpoint, kept in this process while they are valid for what
    is asked; after a 401 (`invalidate`), the endpoint is asked for another."""

    def __init__(self, url: str, key: str, *, min_ttl: float | None = None) -> None:
        self.url = url
        self._key = key
        #: What a caller naming no min_ttl is promised (None: what the endpoint promises).
        self.default_min_ttl = min_ttl
        self._lock = threading.Lock()
        # The token, its monotonic expiry, and the endpoint's default margin (None: unknown).
        self._held: tuple[Token, float, float | None] | None = None
        self._refused: str | None = None

    def __repr__(self) -> str:
        return f"EndpointSource({self.url})"

    def token(self, min_ttl: float | None = None) -> Token:
        """A token valid for at least `min_ttl` seconds (default: the `min_ttl` setting of
        this step, else the endpoint's margin)."""
        if min_ttl is None:
            min_ttl = self.default_min_ttl
        hit = self._hit(min_ttl)
        if hit is not None:
            return hit
        with self._lock:
            return self._hit(min_ttl) or self._ask(min_ttl)  # another thread may have asked

    def _hit(self, min_ttl: float | None) -> Token | None:
        held = self._held
        if held is None:
            return None
        need = held[2] if min_ttl is None else min_ttl
        # Chained so that a NaN or negative min_ttl is no hit: the endpoint refuses it.
        if need is not None and held[1] - time.monotonic() >= need >= 0:
            return held[0]
        return None

    async def atoken(self, min_ttl: float | None = None) -> Token:
        import asyncio

        return await asyncio.to_thread(self.token, min_ttl)

    def _ask(self, min_ttl: float | None) -> Token:
        sent = time.monotonic()
        try:
            data = ask(self.url, self._key, min_ttl, refused=self._refused)
        except EndpointRefusal as exc:
            raise _as_error(exc) from None
        now, left = time.time(), float(str(data["expires_in"]))
        token = Token(
            access_token=str(data["access_token"]),
            token_type=str(data.get("token_type", "Bearer")),
            expires_at=now + left,
            issued_at=float(str(data.get("issued_at", now))),
        )
        # The endpoint's own margin is known only from an answer to a caller who named none.
        margin = float(str(data["min_ttl"])) if min_ttl is None and "min_ttl" in data else None
        self._held, self._refused = (token, sent + left, margin), None
        return token

    def invalidate(self, token: Token) -> None:
        """After a 401 with `token`: the next call asks the endpoint for another."""
        with self._lock:
            if self._held is not None and self._held[0].access_token == token.access_token:
                self._held = None
                self._refused = fingerprint(token.access_token)

    def remaining(self, token: Token) -> float:
        held = self._held
        if held is not None and held[0] is token:
            return held[1] - time.monotonic()
        return token.expires_in(time.time())

    @property
    def current(self) -> Token | None:
        return self._held[0] if self._held else None

    def start(self) -> EndpointSource:
        """Nothing to start: the endpoint refreshes ahead for every step."""
        return self

    def close(self) -> None:
        """Nothing to release: every request is its own connection."""

    def __enter__(self) -> EndpointSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_error(refusal: EndpointRefusal) -> Exception:
    """The library's error for an endpoint's refusal: its code, message, hint and exit code."""
    from freshtoken import _errors

    cls: type[_errors.FreshtokenError] = {
        _errors.EXIT_USAGE: _errors.ConfigurationError,
        _errors.EXIT_REFUSED: _errors.AuthorizationError,
    }.get(refusal.exit_code, _errors.TokenUnavailableError)
    error = cls(refusal.message, error=refusal.error, hint=refusal.hint)
    error.exit_code = refusal.exit_code
    return error
