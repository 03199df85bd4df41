"""Logins that end with a refresh token: the authorization-code grant with PKCE and a loopback
redirect (RFC 7636, RFC 8252), and the device authorization grant (RFC 8628).

The code, the verifier and the device code are registered with the log redaction as soon as
they exist, and never appear in a URL that leaves this process but the redirect itself.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from freshtoken._errors import ErrorContext, FreshtokenError, LoginError, MalformedResponseError
from freshtoken._http import Exchange, new_client, run_sync, stamped
from freshtoken._log import remember_secret
from freshtoken._token import Token
from freshtoken.oauth._client import TokenClient
from freshtoken.oauth._grants import AuthorizationCode, DeviceCode
from freshtoken.oauth._loopback import LoopbackRedirect
from freshtoken.oauth._response import error_from_reply, server_text

DEFAULT_INTERVAL = 5.0  # RFC 8628 §3.2, when the server names none
SLOW_DOWN_STEP = 5.0  # RFC 8628 §3.5: every slow_down adds this to the interval, for good
MAX_BACKOFF = 60.0


@dataclass(frozen=True, slots=True, repr=False)
class Pkce:
    """A PKCE pair (RFC 7636): the verifier stays here, the S256 challenge goes out."""

    verifier: str
    challenge: str
    method: str = "S256"

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)  # 64 unreserved characters (43..128 allowed)
        remember_secret(verifier)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


def authorization_request(
    authorization_url: str,
    client_id: str,
    redirect_uri: str,
    scope: tuple[str, ...],
    *,
    state: str,
    pkce: Pkce,
    prompt: str | None = None,
    nonce: str | None = None,
) -> str:
    """The URL the browser opens (RFC 6749 §4.1.1 with RFC 7636 §4.3; `prompt` and `nonce`
    from OpenID Connect Core §3.1.2.1)."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": pkce.challenge,
        "code_challenge_method": pkce.method,
    }
    if scope:
        params["scope"] = " ".join(scope)
    if prompt:
        params["prompt"] = prompt
    if nonce:
        params["nonce"] = nonce
    parts = urlsplit(authorization_url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def browser_login(
    client: TokenClient,
    authorization_url: str,
    scope: tuple[str, ...],
    *,
    show: Callable[[str], None],
    timeout: float,
    port: int = 0,
    redirect_uri: str | None = None,
    prompt: str | None = None,
    on_ignored: Callable[[str], None] = lambda reason: None,
) -> Token:
    """Listen on loopback (at `redirect_uri` exactly, when given), hand the authorization URL
    to `show` (which opens a browser or prints it), take the one redirect with our state, and
    redeem its code with the verifier. With `openid` in the scope a nonce goes along (some
    servers refuse the request without one) and an ID token that comes back must carry it."""
    state = secrets.token_urlsafe(24)
    pkce = Pkce.new()
    nonce = secrets.token_urlsafe(24) if "openid" in scope else None
    with LoopbackRedirect(
        state, port=port, redirect_uri=redirect_uri, on_ignored=on_ignored
    ) as listener:
        redirect_uri = listener.redirect_uri
        show(
            authorization_request(
                authorization_url,
                client.auth.client_id,
                redirect_uri,
                scope,
                state=state,
                pkce=pkce,
                prompt=prompt,
                nonce=nonce,
            )
        )
        code = listener.wait(timeout)
    return client.fetch(AuthorizationCode(code, redirect_uri, pkce.verifier, scope, nonce))


@dataclass(frozen=True, slots=True, repr=False)
class DeviceAuthorization:
    """What the device authorization endpoint answered (RFC 8628 §3.2); `expires` is on the
    client's monotonic clock."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires: float
    interval: float


def _text(data: dict[str, object], *names: str) -> str | None:
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _seconds(value: object, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value) if value > 0 else default


def _device_exchange(
    client: TokenClient, url: str, scope: tuple[str, ...], ctx: ErrorContext
) -> Exchange[DeviceAuthorization]:
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    form = {"scope": " ".join(scope)} if scope else {}
    client.auth.apply(headers, form, (yield from client.endpoints_exchange()))
    sent_at = client.clock.time()
    reply = yield httpx.Request("POST", url, headers=headers, content=urlencode(form).encode())
    assert reply is not None
    if not 200 <= reply.status < 300:
        raise error_from_reply(reply, ctx, sent_at)
    data = reply.data or {}
    device_code = _text(data, "device_code")
    user_code = _text(data, "user_code")
    # Google's endpoint says verification_url (the draft's name).
    uri = _text(data, "verification_uri", "verification_url")
    if not (device_code and user_code and uri):
        raise MalformedResponseError(
            f"the device authorization endpoint at {ctx.host} answered without device_code, "
            "user_code or verification_uri",
            status=reply.status,
            hint="Check FRESHTOKEN_DEVICE_AUTHORIZATION_URL (or the discovered "
            "device_authorization_endpoint).",
        )
    remember_secret(device_code)
    complete = _text(data, "verification_uri_complete")
    return DeviceAuthorization(
        device_code,
        server_text(user_code, 40),
        server_text(uri, 500),
        server_text(complete, 500) if complete else None,
        client.clock.monotonic() + _seconds(data.get("expires_in"), 600.0),
        _seconds(data.get("interval"), DEFAULT_INTERVAL),
    )


def start_device_login(
    client: TokenClient, url: str, scope: tuple[str, ...]
) -> DeviceAuthorization:
    """Ask for a device code and a user code (one request, within the retry budget)."""
    ctx = ErrorContext(url, grant="device_code", scope=scope)
    exchange = stamped(_device_exchange(client, url, scope, ctx), client.deadline())
    with new_client(client.timeouts) as http:
        return run_sync(exchange, http, client.clock)


def poll_device_login(client: TokenClient, device: DeviceAuthorization, deadline: float) -> Token:
    """Poll the token endpoint until the user approves, honouring the interval and every
    slow_down; `LoginError` when denied, expired, or past `deadline` (monotonic)."""
    clock = client.clock
    grant = DeviceCode(device.device_code)
    interval = device.interval
    while True:
        end = min(deadline, device.expires)
        if clock.monotonic() + interval > end:
            expired = device.expires <= deadline
            raise LoginError(
                "the device code expired before the login was approved"
                if expired
                else "the device login was not approved within the timeout",
                error="expired_token" if expired else "login_timeout",
                hint=LoginError.explain(ErrorContext()),
            )
        clock.sleep(interval)
        try:
            return client.fetch(grant)
        except FreshtokenError as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval += SLOW_DOWN_STEP
                continue
            if exc.error in ("access_denied", "expired_token"):
                said = "was denied" if exc.error == "access_denied" else "expired"
                raise LoginError(
                    f"the device login {said}",
                    error=exc.error,
                    hint=LoginError.explain(ErrorContext()),
                ) from None
            if not exc.retryable:
                raise
            interval = min(interval * 2, MAX_BACKOFF)  # RFC 8628 §3.5: back off on failures
