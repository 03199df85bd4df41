"""Retrying a token request: exponential backoff with full jitter, inside a time budget."""

from __future__ import annotations

import random
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from freshtoken._clock import Clock
from freshtoken._errors import (
    AuthorizationError,
    ConfigurationError,
    ConnectError,
    ErrorContext,
    FreshtokenError,
    NameResolutionError,
    RateLimitedError,
    RequestTimeoutError,
    TLSError,
    TransportError,
)
from freshtoken._http import DeadlineExceeded, Exchange, Sleep, T
from freshtoken._log import logger, redact


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`budget` bounds the whole call, waits included; no wait starts that would overrun it."""

    budget: float = 30.0
    base: float = 0.5
    cap: float = 8.0
    max_attempts: int = 8

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap, self.base * 2 ** (attempt - 1)))


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


def transport_error(exc: httpx.HTTPError, ctx: ErrorContext) -> FreshtokenError:
    """Name a failure that got no HTTP answer."""
    reason = redact(str(exc))[:200] or type(exc).__name__
    chain = _causes(exc)
    cls: type[TransportError]
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ConfigurationError(
            f"unsupported URL for {ctx.host}: {reason}",
            hint="Use an http(s) URL.",
        )
    if isinstance(exc, httpx.TimeoutException):
        cls, what = RequestTimeoutError, "timed out"
    elif isinstance(exc, httpx.ConnectError) and (
        any(isinstance(c, ssl.SSLError) for c in chain) or "CERTIFICATE_VERIFY" in reason
    ):
        # Only a handshake fails before the request is sent; a TLS error while the answer is
        # read is a dropped exchange, whose request may have been processed.
        cls, what = TLSError, "failed TLS verification"
    elif any(isinstance(c, socket.gaierror) for c in chain) or "name resolution" in reason.lower():
        cls, what = NameResolutionError, "could not be resolved"
    elif isinstance(exc, httpx.ConnectError):
        cls, what = ConnectError, "refused or dropped the connection"
    else:
        cls, what = TransportError, "dropped the exchange"
    return cls(f"{ctx.host} {what} ({reason})", hint=cls.explain(ctx))


def surely_unprocessed(err: FreshtokenError) -> bool:
    """True when the server cannot have acted on the request, so a single-use credential
    (refresh token, code) it carried is still unspent and may be sent again: no connection
    (refused, no handshake), nothing sent, a refusal, or a 503 the server itself gave (with
    Retry-After, or its OAuth code temporarily_unavailable).

    A 502 or 504 is a gateway's word: its upstream may have rotated the token before the
    gateway gave up on it, so that outcome is unknown, as a timeout's is."""
    if isinstance(err, ConnectError | TLSError | ConfigurationError | RateLimitedError):
        return True
    if isinstance(err, AuthorizationError):
        return True
    said_by_server = err.retry_after is not None or err.error == "temporarily_unavailable"
    return err.status == 503 and said_by_server


def with_retries(
    attempt_once: Callable[[], Exchange[T]],
    ctx: ErrorContext,
    policy: RetryPolicy,
    clock: Clock,
    rng: random.Random,
    *,
    deadline: float,
    single_use: bool = False,
) -> Exchange[T]:
    """Run `attempt_once` until it succeeds, fails for good, or `deadline` (monotonic) comes:
    no wait starts that would end past it.

    With `single_use` (a refresh token or code is in the request) only failures that the
    server surely did not act on are retried: a timed-out refresh may have been spent.
    """
    start = clock.monotonic()
    attempt = 0
    last: FreshtokenError | None = None
    while True:
        attempt += 1
        out_of_time = False
        try:
            return (yield from attempt_once())
        except DeadlineExceeded as exc:
            # Out of time: what the endpoint said last says more than "timed out" does; but
            # the outcome of a single-use request cut short is unknown, and must say so.
            known = last if last is not None and not single_use else None
            err, out_of_time = (known or transport_error(exc, ctx)), True
        except httpx.HTTPError as exc:
            err = transport_error(exc, ctx)
        except FreshtokenError as exc:
            err = exc
        last = err
        # A server's Retry-After is a floor, never a reason to hurry (Retry-After: 0).
        delay = max(err.retry_after or 0.0, policy.backoff(attempt, rng))
        now = clock.monotonic()
        elapsed = now - start
        retryable = err.retryable and (not single_use or surely_unprocessed(err))
        if out_of_time or not retryable or attempt >= policy.max_attempts or now + delay > deadline:
            if err.retryable:
                err.message += f"; gave up after {attempt} attempt(s) in {elapsed:.1f}s"
                err.args = (err.message,)
            raise err
        logger.warning(
            "token endpoint %s: %s; retrying in %.2fs (attempt %d, %.1fs left of the budget)",
            ctx.host,
            err.error,
            delay,
            attempt + 1,
            deadline - now,
        )
        yield Sleep(delay)
