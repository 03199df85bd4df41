"""Sans-IO exchanges and the two drivers that run them.

An exchange is a generator that yields `httpx.Request`s (and `Sleep`s between retries) and
is sent back `Reply`s; transport failures are thrown into it. All the logic (retry, parsing)
lives in the generator, so the sync and async drivers stay a few lines each, as in httpx's
`Auth.auth_flow`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

import httpx

from freshtoken._clock import Clock

T = TypeVar("T")

MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer, its body cut at MAX_BODY_BYTES (`truncated` says so)."""

    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool


Exchange = Generator[httpx.Request | Sleep, Reply | None, T]


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
        return Reply(
            response.status_code,
            response.headers,
            body[:MAX_BODY_BYTES],
            len(body) > MAX_BODY_BYTES,
        )


def run_sync(exchange: Exchange[T], http: httpx.Client, clock: Clock) -> T:
    """Drive an exchange with a blocking client."""
    try:
        step = next(exchange)
        while True:
            if isinstance(step, Sleep):
                clock.sleep(step.seconds)
                step = exchange.send(None)
                continue
            try:
                with http.stream(
                    step.method, step.url, headers=step.headers, content=step.content
                ) as response:
                    body = _Body()
                    for chunk in response.iter_bytes():
                        if body.add(chunk):
                            break
            except httpx.HTTPError as exc:
                step = exchange.throw(exc)
                continue
            step = exchange.send(body.reply(response))
    except StopIteration as stop:
        result: T = stop.value
        return result


async def run_async(exchange: Exchange[T], http: httpx.AsyncClient, clock: Clock) -> T:
    """Drive an exchange with an asyncio client."""
    try:
        step = next(exchange)
        while True:
            if isinstance(step, Sleep):
                await clock.asleep(step.seconds)
                step = exchange.send(None)
                continue
            try:
                async with http.stream(
                    step.method, step.url, headers=step.headers, content=step.content
                ) as response:
                    body = _Body()
                    async for chunk in response.aiter_bytes():
                        if body.add(chunk):
                            break
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


def new_client(timeouts: Timeouts) -> httpx.Client:
    # Redirects are never followed: a token POST carries credentials. trust_env keeps the
    # standard proxy variables (HTTPS_PROXY, NO_PROXY) working, except for loopback.
    return httpx.Client(
        timeout=timeouts.httpx(),
        follow_redirects=False,
        trust_env=True,
        mounts=DIRECT_TO_LOOPBACK,
    )


def new_async_client(timeouts: Timeouts) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=timeouts.httpx(),
        follow_redirects=False,
        trust_env=True,
        mounts=DIRECT_TO_LOOPBACK,
    )
