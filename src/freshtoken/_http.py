"""Sans-IO exchanges and the two drivers that run them.

An exchange is a generator that yields `httpx.Request`s (and `Sleep`s between retries) and
is sent back `Reply`s; transport failures are thrown into it. All the logic (retry, parsing)
lives in the generator, so the sync and async drivers stay a few lines each, as in httpx's
`Auth.auth_flow`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from freshtoken._clock import Clock
from freshtoken._log import logger
from freshtoken._urls import normal_host

if TYPE_CHECKING:
    import ssl

T = TypeVar("T")

MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer, its body cut at MAX_BODY_BYTES (`truncated` says so), and the JSON
    object it holds, parsed once (`json_object`; None for a cut body)."""

    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool
    data: dict[str, Any] | None


Exchange = Generator[httpx.Request | Sleep, Reply | None, T]


def retry_after(headers: httpx.Headers, now: float) -> float | None:
    """Retry-After in seconds, from either of its forms (RFC 9110 §10.2.3)."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def rate_limit_wait(reply: Reply, now: float) -> float | None:
    """The seconds GitHub asks to wait when `reply` is a rate limit, else None: a 429, or a 403
    with Retry-After (the secondary limit) or with no requests left (the primary one, until
    X-RateLimit-Reset); a 403 without these is a permission problem (GitHub's REST docs,
    "Rate limits for the REST API": at least a minute when it names no time)."""
    if reply.status not in (403, 429):
        return None
    wait = retry_after(reply.headers, now)
    if wait is None and reply.headers.get("x-ratelimit-remaining") == "0":
        try:
            wait = max(0.0, float(reply.headers.get("x-ratelimit-reset", "")) - now)
        except ValueError:
            wait = 60.0
    if wait is None and reply.status == 429:
        wait = 60.0
    return wait


def json_object(body: bytes) -> dict[str, Any] | None:
    """A server's JSON object, or None for anything else: not JSON, not an object, or nested
    too deeply to parse (a hostile answer must not become a RecursionError)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


class _Body:
    """Collects a body, stopping past MAX_BODY_BYTES: a huge answer is an error, not a hang."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> bool:
        """Keep `chunk`; True when the limit is passed and reading should stop."""
        self.chunks.append(chunk)
        self.size += len(chunk)
        return self.size > MAX_BODY_BYTES

    def reply(self, response: httpx.Response) -> Reply:
        body = b"".join(self.chunks)
        truncated = len(body) > MAX_BODY_BYTES
        return Reply(
            response.status_code,
            response.headers,
            body[:MAX_BODY_BYTES],
            truncated,
            None if truncated else json_object(body),
        )


DEADLINE = "freshtoken.deadline"  # request extension: the call's monotonic deadline


def with_deadline(request: httpx.Request, deadline: float) -> httpx.Request:
    request.extensions[DEADLINE] = deadline
    return request


def stamped(exchange: Exchange[T], deadline: float) -> Exchange[T]:
    """`exchange` with every request it makes bound to `deadline`."""
    try:
        step = next(exchange)
        while True:
            if isinstance(step, httpx.Request):
                with_deadline(step, deadline)
            try:
                reply = yield step
            except httpx.HTTPError as exc:
                step = exchange.throw(exc)
                continue
            step = exchange.send(reply)
    except StopIteration as stop:
        result: T = stop.value
        return result


def _capped(timeout: httpx.Timeout, remaining: float) -> dict[str, float | None]:
    """The client's per-operation timeouts, none longer than what is left of the deadline."""
    return {
        name: remaining if value is None else min(value, remaining)
        for name, value in timeout.as_dict().items()
    }


class DeadlineExceeded(httpx.ReadTimeout):
    """The call's deadline passed before (or while) this request was answered."""


def _past(request: httpx.Request) -> httpx.TimeoutException:
    return DeadlineExceeded("the call's time budget ran out", request=request)


def run_sync(exchange: Exchange[T], http: httpx.Client, clock: Clock) -> T:
    """Drive an exchange with a blocking client. A request's deadline (`with_deadline`) caps
    every timeout, and a watchdog closes the client when it passes: a server that drips
    bytes cannot hold the call past it."""
    try:
        step = next(exchange)
        while True:
            if isinstance(step, Sleep):
                clock.sleep(step.seconds)
                step = exchange.send(None)
                continue
            deadline = step.extensions.get(DEADLINE)
            remaining = None if deadline is None else deadline - clock.monotonic()
            if remaining is not None and remaining <= 0:
                step = exchange.throw(_past(step))
                continue
            watchdog = None
            started = time.monotonic()
            if remaining is not None:
                step.extensions["timeout"] = _capped(http.timeout, remaining)
                watchdog = threading.Timer(remaining, http.close)
                watchdog.daemon = True
                watchdog.start()
            try:
                response = http.send(step, stream=True)
                try:
                    body = _Body()
                    for chunk in response.iter_bytes():
                        if body.add(chunk):
                            break
                finally:
                    response.close()
            except httpx.HTTPError as exc:
                late = watchdog is not None and watchdog.finished.is_set()
                step = exchange.throw(_past(step) if late else exc)
                continue
            finally:
                if watchdog is not None:
                    watchdog.cancel()
            _log_exchange(step, response, started)
            step = exchange.send(body.reply(response))
    except StopIteration as stop:
        result: T = stop.value
        return result


def _log_exchange(request: httpx.Request, response: httpx.Response, started: float) -> None:
    """-vv: each exchange in one line (the logger redacts every secret it has seen)."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "%s %s -> HTTP %d in %.0f ms",
            request.method,
            request.url.copy_with(query=None),
            response.status_code,
            (time.monotonic() - started) * 1000,
        )


async def run_async(exchange: Exchange[T], http: httpx.AsyncClient, clock: Clock) -> T:
    """Drive an exchange with an asyncio client; a request's deadline bounds it whole."""
    import asyncio  # only where async is used: importing it costs a sync user ~70 ms

    try:
        step = next(exchange)
        while True:
            if isinstance(step, Sleep):
                await clock.asleep(step.seconds)
                step = exchange.send(None)
                continue
            deadline = step.extensions.get(DEADLINE)
            remaining = None if deadline is None else deadline - clock.monotonic()
            if remaining is not None and remaining <= 0:
                step = exchange.throw(_past(step))
                continue
            if remaining is not None:
                step.extensions["timeout"] = _capped(http.timeout, remaining)
            try:
                async with asyncio.timeout(remaining):
                    response = await http.send(step, stream=True)
                    try:
                        body = _Body()
                        async for chunk in response.aiter_bytes():
                            if body.add(chunk):
                                break
                    finally:
                        await response.aclose()
            except TimeoutError:
                step = exchange.throw(_past(step))
                continue
            except httpx.HTTPError as exc:
                step = exchange.throw(exc)
                continue
            step = exchange.send(body.reply(response))
    except StopIteration as stop:
        result: T = stop.value
        return result


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Connect and read timeouts, always set: a hung endpoint must not hang a build."""

    connect: float = 5.0
    read: float = 15.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(self.read, connect=self.connect)


#: Requests to this machine never go through HTTP(S)_PROXY: plain http is allowed only to these
#: hosts (provider/_endpoints.py), and a proxy would see its Basic credentials and tokens.
DIRECT_TO_LOOPBACK: dict[str, None] = dict.fromkeys(
    ("all://127.0.0.1", "all://[::1]", "all://localhost", "all://*.localhost")
)


def normal_request(request: httpx.Request) -> None:
    """The host of every request normalised (_urls.normal_host) before a transport is chosen:
    `localhost.` passes the plain-http rule as `localhost`, so it must also match the mounts
    above, or it would go to HTTP_PROXY with its credentials. httpx gives the host in lower
    case, an IPv6 address without brackets: a trailing dot is all normal_host would change."""
    host = request.url.host
    if host.endswith("."):
        request.url = request.url.copy_with(host=normal_host(host))
        request.headers["Host"] = request.url.netloc.decode("ascii")


async def _normal_async_request(request: httpx.Request) -> None:
    normal_request(request)


def direct_client(timeout: httpx.Timeout, **options: Any) -> httpx.Client:
    """An httpx client that never follows a redirect, honours the standard proxy variables
    (HTTPS_PROXY, NO_PROXY) except for loopback, and normalises every request's host first."""
    return httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        trust_env=True,
        mounts=DIRECT_TO_LOOPBACK,
        event_hooks={"request": [normal_request]},
        **options,
    )


def new_client(timeouts: Timeouts, tls: ssl.SSLContext | None = None) -> httpx.Client:
    """`tls`: a context that presents a client certificate (mutual TLS); default httpx's."""
    # Redirects are never followed: a token POST carries credentials.
    return direct_client(timeouts.httpx(), verify=tls or True)


def new_async_client(timeouts: Timeouts, tls: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=timeouts.httpx(),
        follow_redirects=False,
        trust_env=True,
        mounts=DIRECT_TO_LOOPBACK,
        event_hooks={"request": [_normal_async_request]},
        verify=tls or True,
    )
