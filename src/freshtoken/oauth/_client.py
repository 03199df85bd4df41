"""TokenClient: one request to a token endpoint, checked and retried (exponential backoff with
full jitter, inside a time budget: `RetryPolicy`, `with_retries`), sync or async."""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from freshtoken._clock import SYSTEM_CLOCK, Clock
from freshtoken._errors import ErrorContext, FreshtokenError, InvalidClientError
from freshtoken._http import (
    DeadlineExceeded,
    Exchange,
    Reply,
    Sleep,
    T,
    Timeouts,
    new_async_client,
    new_client,
    run_async,
    run_sync,
    stamped,
)
from freshtoken._log import logger
from freshtoken._token import Token
from freshtoken.oauth._assertions import fill
from freshtoken.oauth._client_auth import ClientAuth, credential
from freshtoken.oauth._grants import Grant
from freshtoken.oauth._response import (
    check_nonce,
    parse_token_reply,
    request_context,
    surely_unprocessed,
    transport_error,
)
from freshtoken.oauth._tls_auth import Binding, client_certificate
from freshtoken.provider._discovery import cached, discover
from freshtoken.provider._endpoints import Endpoints, check_url

if TYPE_CHECKING:
    import asyncio

#: The token `authentication_fails` introspects: no server issued it, so it spends nothing.
CHECK_TOKEN = "freshtoken-credential-check"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`budget` bounds the whole call, waits included; no wait starts that would overrun it."""

    budget: float = 30.0
    base: float = 0.5
    cap: float = 8.0
    max_attempts: int = 8

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap, self.base * 2 ** (attempt - 1)))


class TokenClient:
    """Asks a token endpoint for tokens. Holds no token itself: that is the broker's job.

    Give either `endpoints` or an `issuer` to discover them from; `pinned` (field -> (URL,
    where it was set)) wins over what discovery finds.
    """

    def __init__(
        self,
        auth: ClientAuth,
        *,
        endpoints: Endpoints | None = None,
        issuer: str | None = None,
        pinned: Mapping[str, tuple[str, str]] | None = None,
        policy: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        if endpoints is None and issuer is None:
            raise ValueError("TokenClient needs endpoints or an issuer")
        if endpoints is not None:
            check_url(endpoints.token_url, "FRESHTOKEN_TOKEN_URL")
        self.auth = auth
        self._endpoints = endpoints
        self._issuer = issuer
        self._pinned = dict(pinned or {})
        self.policy = policy or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self.clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        #: When (wall time) an introspection or revocation request was last refused this client
        #: (401, 403; 0: not since a check passed): `require_authentication` before a refresh.
        self.refused_at = 0.0
        self._http: httpx.Client | None = None
        self._ahttp: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None
        certificate = client_certificate(auth)
        # Mutual TLS: every request presents the certificate (RFC 8705 §2).
        #: The TLS context presenting the client certificate (None: no mutual TLS); what
        #: sends a token minted with it (the proxy) needs it too: the token may be bound.
        self.tls = certificate.ssl_context() if certificate else None
        #: The certificate its tokens may be bound to, for the adapters (None: no mutual TLS).
        self.binding = Binding(certificate, self.tls) if certificate and self.tls else None

    def identity(self) -> str:
        """The token endpoint, or the issuer it will be discovered from."""
        return self._endpoints.token_url if self._endpoints else str(self._issuer)

    @property
    def auth_method(self) -> str:
        """The name of this client's authentication method (its class: stable across runs)."""
        return type(self.auth).__name__

    @functools.cached_property
    def credential(self) -> str:
        """`_client_auth.credential` of this client's authentication, for error hints: worked
        out once (a key's thumbprint serializes its public key), not for every request."""
        return credential(self.auth)

    @property
    def preset(self) -> str | None:
        """The provider preset of endpoints known without discovery (a region, or the
        provider setting: provider/_presets.py), else None."""
        found = self._endpoints.preset if self._endpoints else None
        return found.name if found else None

    def __repr__(self) -> str:
        where = self._endpoints.token_url if self._endpoints else self._issuer
        return f"TokenClient({where!r}, client_id={self.auth.client_id!r})"

    def endpoints_exchange(self) -> Exchange[Endpoints]:
        if self._endpoints is None:
            assert self._issuer is not None
            found = cached(self._issuer, self.clock.time())
            found = found or (yield from discover(self._issuer, self.clock.time()))
            # Mutual TLS at the RFC 8705 §5 aliases; a URL set by hand wins over both.
            found = found.over_mtls() if self.binding else found
            self._endpoints = found.pinned(self._pinned)
        return self._endpoints

    def _attempt(self, endpoints: Endpoints, grant: Grant, ctx: ErrorContext) -> Exchange[Token]:
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        form = grant.form()
        self.auth.apply(headers, form, endpoints)
        if hasattr(self.auth, "sources") or hasattr(grant, "sources"):
            yield from fill(form, self.auth, grant)  # assertions from the platform, fresh
        sent_at = self.clock.time()
        reply = yield httpx.Request(
            "POST", endpoints.token_url, headers=headers, content=urlencode(form).encode()
        )
        assert reply is not None
        token = parse_token_reply(reply, sent_at, ctx)
        if nonce := getattr(grant, "nonce", None):
            check_nonce(reply, nonce, ctx)
        return token

    def deadline(self) -> float:
        """The monotonic instant by which a call starting now must end (the retry budget)."""
        return self.clock.monotonic() + self.policy.budget

    def token_exchange(
        self, grant: Grant, deadline: float | None = None, answer_by: float | None = None
    ) -> Exchange[Token]:
        """The whole request as a sans-IO exchange: discovery if needed, then retries, every
        request and wait bound to `deadline` (default: the retry budget from now).
        `answer_by` (later than `deadline`): no request is sent after `deadline`, but the
        answer to one that was is read until then."""
        end = self.deadline() if deadline is None else deadline
        return stamped(self._token_exchange(grant, end), max(end, answer_by or end))

    def _token_exchange(self, grant: Grant, deadline: float) -> Exchange[Token]:
        endpoints = yield from self.endpoints_exchange()
        ctx = request_context(endpoints, grant, self.credential)
        return (
            yield from with_retries(
                lambda: self._attempt(endpoints, grant, ctx),
                ctx,
                self.policy,
                self.clock,
                self._rng,
                deadline=deadline,
                single_use=grant.single_use,
            )
        )

    def fetch(
        self, grant: Grant, deadline: float | None = None, answer_by: float | None = None
    ) -> Token:
        """Request a token with `grant` by `deadline` (monotonic; default: the retry budget);
        raises a typed `OAuthError` with a hint on failure. `answer_by`: see token_exchange."""
        exchange = self.token_exchange(grant, deadline, answer_by)
        return run_sync(exchange, self._client(), self.clock)

    async def afetch(self, grant: Grant, deadline: float | None = None) -> Token:
        return await run_async(self.token_exchange(grant, deadline), self._aclient(), self.clock)

    def _post_token(self, which: str, value: str, hint: str) -> Exchange[Reply | None]:
        """POST `token=value` with client authentication to the endpoint named `which`
        (RFC 7662 / RFC 7009). None when there is no such endpoint or no answer."""
        endpoints = yield from self.endpoints_exchange()
        url = getattr(endpoints, which)
        if not url:
            return None
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        form = {"token": value, "token_type_hint": hint}
        self.auth.apply(headers, form, endpoints)
        if hasattr(self.auth, "sources"):
            yield from fill(form, self.auth)
        try:
            reply = yield httpx.Request(
                "POST", url, headers=headers, content=urlencode(form).encode()
            )
        except httpx.HTTPError:
            return None
        if reply is not None and reply.status in (401, 403):
            self.refused_at = self.clock.time()
        return reply

    def _answer(self, value: str, hint: str) -> Exchange[dict[str, Any] | None]:
        reply = yield from self._post_token("introspection_url", value, hint)
        return reply.data if reply is not None and reply.status == 200 else None

    def _introspection(self, value: str, hint: str) -> Exchange[bool | None]:
        data = yield from self._answer(value, hint)
        active = data.get("active") if data is not None else None
        return active if isinstance(active, bool) else None

    def introspection(self, value: str, hint: str = "access_token") -> dict[str, Any] | None:
        """RFC 7662's whole answer about `value` (doctor reads `cnf` in it); None as for
        `introspect`. Nothing of it is logged."""
        return run_sync(self._answer(value, hint), self._client(), self.clock)

    def introspect(self, value: str, hint: str = "refresh_token") -> bool | None:
        """RFC 7662: is `value` active? None when the server has no introspection endpoint
        or did not answer clearly. One attempt, no retries."""
        return run_sync(self._introspection(value, hint), self._client(), self.clock)

    def _authentication(self) -> Exchange[bool | None]:
        reply = yield from self._post_token("introspection_url", CHECK_TOKEN, "access_token")
        if reply is None:
            return None
        if reply.status in (401, 403):
            return True
        data = reply.data
        if data is not None and data.get("error") == "invalid_client":
            return True
        return False if reply.status == 200 and data is not None and "active" in data else None

    def authentication_fails(self) -> bool | None:
        """Is this client's authentication known to fail? Asked of the introspection endpoint
        with a made-up token, which spends nothing: True when it refused the client (401, 403
        or invalid_client), False when it answered, None when it cannot tell (no
        introspection endpoint, no clear answer). One attempt, within the retry budget.

        A refresh token must not be presented while this is True: on some servers a refresh
        with failing client authentication disables the refresh token for its owner too."""
        exchange = stamped(self._authentication(), self.deadline())
        return run_sync(exchange, self._client(), self.clock)

    def require_authentication(self, refused_at: float = 0.0) -> None:
        """Raise InvalidClientError, having sent nothing that spends, when this client's
        authentication fails (`authentication_fails`), or when that cannot be told and the
        last refusal (at wall time `refused_at`, or one this process saw) is less than
        REFUSAL_HOLDS old; an older one is only warned about, so that a passing fault of the
        server does not stop a refresh-token chain for good."""
        fails = self.authentication_fails()
        if fails is False:
            self.refused_at = 0.0
        recent = self.clock.time() - max(refused_at, self.refused_at) < REFUSAL_HOLDS
        if fails or (fails is None and recent):
            how = (
                "checked just now by introspection, which spends nothing"
                if fails
                else "recently, and it cannot be checked without spending: this server has "
                "no introspection endpoint"
            )
            raise InvalidClientError(
                f"the server refuses this client's authentication ({how}); the refresh token "
                "was not presented, and stays good",
                hint="Fix the client's credentials (FRESHTOKEN_CLIENT_SECRET: was it rotated? "
                "FRESHTOKEN_AUTH_METHOD) and try again: on some servers a refresh presented "
                "with failing client authentication revokes the refresh token for its owner. "
                "New credentials start a cache entry of their own (seed the refresh token "
                f"again); a refusal older than {REFUSAL_HOLDS / 60:.0f} minutes no longer holds "
                "the refresh token back.",
            )
        if fails is None:
            logger.warning(
                "the server refused this client's authentication over %.0f minutes ago, and "
                "whether it still does cannot be checked without spending (no introspection "
                "endpoint); presenting the refresh token",
                REFUSAL_HOLDS / 60,
            )

    def _revocation(self, value: str, hint: str) -> Exchange[bool | None]:
        endpoints = yield from self.endpoints_exchange()
        if endpoints.revocation_url:
            reply = yield from self._post_token("revocation_url", value, hint)
            return False if reply is None else reply.status == 200
        if (url := endpoints.self_revoke_url) and hint == "access_token":
            headers = {"Accept": "application/json", "Authorization": f"Bearer {value}"}
            try:
                reply = yield httpx.Request("DELETE", url, headers=headers)
            except httpx.HTTPError:
                return False
            assert reply is not None
            return 200 <= reply.status < 300
        return None

    def revoke(self, value: str, hint: str = "access_token") -> bool | None:
        """Revoke `value`: RFC 7009 where the server has the endpoint, else a preset's own
        `DELETE` with the token as bearer for an access token (`Endpoints.self_revoke_url`).
        True if the server confirmed, False if it refused or did not answer, None if it has no
        way."""
        exchange = stamped(self._revocation(value, hint), self.deadline())
        return run_sync(exchange, self._client(), self.clock)

    def endpoints(self) -> Endpoints:
        """The endpoints in use, discovered first if need be (within the retry budget)."""
        exchange = stamped(self.endpoints_exchange(), self.deadline())
        return run_sync(exchange, self._client(), self.clock)

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None or self._http.is_closed:  # closed by a deadline's watchdog
                self._http = new_client(self.timeouts, self.tls)
            return self._http

    def _aclient(self) -> httpx.AsyncClient:
        # An AsyncClient belongs to the loop that made it; a new loop gets a new client.
        import asyncio  # only where async is used

        loop = asyncio.get_running_loop()
        with self._lock:
            if self._ahttp is None or self._ahttp[0] is not loop:
                self._ahttp = (loop, new_async_client(self.timeouts, self.tls))
            return self._ahttp[1]

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None
            self._ahttp = None


#: How long a refusal of this client's authentication holds a refresh token back where it
#: cannot be checked without spending (no introspection endpoint): the length of a long job.
REFUSAL_HOLDS = 3600.0

#: The hint for a single-use grant whose outcome is unknown (a gateway's 502/504, a timeout).
SPENT_UNKNOWN = (
    "The answer was lost on the way (a gateway, a timeout): the refresh token counts as spent "
    "until the next call has waited out this attempt's window and asked introspection. If that "
    "cannot tell, seed the live refresh token (`freshtoken seed-refresh-token`, the sink's "
    "value) or log in again (`freshtoken login`)."
)


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
        unknown = single_use and err.retryable and not surely_unprocessed(err)
        retryable = err.retryable and not unknown
        if out_of_time or not retryable or attempt >= policy.max_attempts or now + delay > deadline:
            if unknown:
                err.message += (
                    "; the server may have acted on the request, so its single-use grant is "
                    "not sent again"
                )
                err.hint = SPENT_UNKNOWN
            elif err.retryable:
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
