"""The test server's interactive grants, without HTTP: the authorization endpoint with PKCE
(RFC 7636) and its codes, and the device authorization grant (RFC 8628) with its approvals.

Codes are single use (a failed redemption spends one too), short lived and bound to their
client, redirect URI and challenge. Device codes are polled: too fast, or while the
`device_slow_down` knob says so, the answer is `slow_down` and the interval grows by 5 s.
Callers hold the authority's lock.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import time
from typing import NamedTuple
from urllib.parse import urlencode, urlsplit, urlunsplit

from freshtoken.testing._model import (
    DEVICE_CODE_GRANT,
    Answer,
    Client,
    CodeRecord,
    DeviceRecord,
    Knobs,
    State,
)


class Granted(NamedTuple):
    """What a redeemed code or an approved device login grants."""

    scope: tuple[str, ...]
    nonce: str | None = None


def id_token(client_id: str, nonce: str | None) -> str:
    """An unsigned ID token (alg none: the test server proves nothing with it) with `nonce`."""
    claims = {"aud": client_id, "sub": "user", "iat": int(time.time())}
    parts = [{"alg": "none", "typ": "JWT"}, {**claims, **({"nonce": nonce} if nonce else {})}]
    encoded = (base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=") for p in parts)
    return b".".join(encoded).decode() + "."


class Refusal(NamedTuple):
    """A refusal the endpoint turns into its OAuth error answer."""

    status: int
    error: str
    description: str


# RFC 8628 §6.1: consonants only (no words), no easily confused letters.
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
# Polls this much earlier than the interval are let through (timers and networks jitter).
_POLL_SLACK = 0.8


def s256(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def with_query(url: str, params: dict[str, str]) -> str:
    """`url` with `params` added to its query (a redirect URI may carry its own)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def page(status: int, title: str, text: str) -> Answer:
    body = (
        f"<!doctype html><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
    )
    return status, body, {"Content-Type": "text/html; charset=utf-8"}


def issue_code(
    state: State,
    knobs: Knobs,
    client_id: str,
    scope: tuple[str, ...],
    redirect_uri: str | None,
    *,
    challenge: str | None = None,
    method: str = "plain",
    nonce: str | None = None,
) -> str:
    code = "code_" + secrets.token_urlsafe(16)
    expires = time.monotonic() + knobs.code_ttl
    state.codes[code] = CodeRecord(
        client_id, scope, redirect_uri, expires, challenge, method, nonce
    )
    return code


def authorize(state: State, knobs: Knobs, client: Client | None, query: dict[str, str]) -> Answer:
    """GET /oauth/authorize: approve at once (no login page) and redirect with a code, or with
    the error the request or the `deny_authorization` knob calls for. Without a redirect_uri
    the code is answered as JSON. An unknown client is never redirected (RFC 6749 §4.1.2.1)."""
    if client is None:
        return page(400, "Unknown client", "No client is registered with this client_id.")
    redirect = query.get("redirect_uri", "")
    if client.redirect_uris is not None and redirect not in client.redirect_uris:
        # Matched exactly, host, port and path: no port-agnostic loopback (RFC 8252 §7.3).
        return page(400, "Invalid redirect_uri", "This redirect URI is not registered.")
    echo = {"state": query["state"]} if "state" in query else {}

    def answer(params: dict[str, str]) -> Answer:
        if not redirect:
            return (400 if "error" in params else 200), params, {}
        return 302, "", {"Location": with_query(redirect, {**params, **echo})}

    scope = tuple(query.get("scope", "").split())
    challenge = query.get("code_challenge") or None
    method = query.get("code_challenge_method") or "plain"
    if knobs.offline_access_needs_consent and "consent" not in query.get("prompt", "").split():
        scope = tuple(s for s in scope if s != "offline_access")  # OpenID Connect Core §11
    if knobs.require_nonce and "openid" in scope and not query.get("nonce"):
        return answer({"error": "invalid_request", "error_description": "nonce required"})
    if query.get("response_type", "code") != "code":
        return answer({"error": "unsupported_response_type"})
    if "authorization_code" not in client.grants:
        return answer({"error": "unauthorized_client"})
    if client.scopes is not None and not set(scope) <= client.scopes:
        return answer({"error": "invalid_scope"})
    if challenge is None and knobs.require_pkce:
        return answer({"error": "invalid_request", "error_description": "PKCE required"})
    if challenge is not None and (
        method not in ("S256", "plain") or (method == "plain" and knobs.refuse_plain_pkce)
    ):
        return answer({"error": "invalid_request", "error_description": "transform not supported"})
    if knobs.deny_authorization:
        return answer({"error": "access_denied", "error_description": "the user declined"})
    code = issue_code(
        state,
        knobs,
        client.client_id,
        scope,
        redirect or None,
        challenge=challenge,
        method=method,
        nonce=query.get("nonce") or None,
    )
    return answer({"code": code, **({} if redirect else echo)})


def redeem_code(state: State, client: Client, form: dict[str, str]) -> Granted | Refusal:
    """The scope of a presented code, or why it is refused; the code is spent either way."""
    record = state.codes.pop(form.get("code", ""), None)
    if record is None or record.client_id != client.client_id:
        return Refusal(400, "invalid_grant", "authorization code invalid or used")
    if record.expires <= time.monotonic():
        return Refusal(400, "invalid_grant", "authorization code expired")
    if record.redirect_uri and form.get("redirect_uri") != record.redirect_uri:
        return Refusal(400, "invalid_grant", "redirect_uri does not match")
    if record.challenge is not None:
        verifier = form.get("code_verifier", "")
        if not verifier:
            return Refusal(400, "invalid_grant", "code_verifier missing")
        derived = s256(verifier) if record.method == "S256" else verifier
        if not secrets.compare_digest(derived.encode(), record.challenge.encode()):
            return Refusal(400, "invalid_grant", "code_verifier does not match the code_challenge")
    return Granted(record.scope, record.nonce)


def _user_code() -> str:
    letters = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
    return f"{letters[:4]}-{letters[4:]}"


def device_authorization(
    state: State, knobs: Knobs, client: Client, form: dict[str, str], base_url: str
) -> Answer | Refusal:
    """POST /oauth/device_authorization (the client already authenticated)."""
    if DEVICE_CODE_GRANT not in client.grants:
        return Refusal(400, "unauthorized_client", "client may not use the device_code grant")
    scope = tuple(form.get("scope", "").split())
    if client.scopes is not None and not set(scope) <= client.scopes:
        return Refusal(400, "invalid_scope", "scope not allowed")
    device_code = "dc_" + secrets.token_urlsafe(24)
    user_code = _user_code()
    state.devices[device_code] = DeviceRecord(
        client.client_id,
        scope,
        user_code,
        time.monotonic() + knobs.device_code_ttl,
        knobs.device_interval,
        knobs.device_slow_down,
    )
    verification = base_url + "/device"
    return (
        200,
        {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification,
            "verification_uri_complete": with_query(verification, {"user_code": user_code}),
            "expires_in": max(1, round(knobs.device_code_ttl)),
            "interval": knobs.device_interval,
        },
        {},
    )


def decide_device(state: State, user_code: str, approve: bool) -> bool:
    """Approve or deny the pending device authorization of `user_code` (dashes and case do not
    matter, as users type them); False when there is none."""
    wanted = user_code.replace("-", "").strip().upper()
    now = time.monotonic()
    for record in state.devices.values():
        if (
            record.user_code.replace("-", "") == wanted
            and record.decision is None
            and record.expires > now
        ):
            record.decision = approve
            return True
    return False


def poll_device(state: State, client: Client, form: dict[str, str]) -> Granted | Refusal:
    """A device-code poll at the token endpoint: the scope once approved, else the answer
    RFC 8628 §3.5 gives (authorization_pending, slow_down, access_denied, expired_token)."""
    device_code = form.get("device_code", "")
    record = state.devices.get(device_code)
    if record is None or record.client_id != client.client_id:
        return Refusal(400, "invalid_grant", "device code invalid or used")
    now = time.monotonic()
    if record.expires <= now:
        del state.devices[device_code]
        return Refusal(400, "expired_token", "the device code expired")
    last, record.last_poll = record.last_poll, now
    too_fast = last is not None and now - last < record.interval * _POLL_SLACK
    if record.slow_downs > 0 or too_fast:
        record.slow_downs = max(0, record.slow_downs - 1)
        record.interval += 5.0
        return Refusal(400, "slow_down", f"poll at most every {record.interval:g} s")
    if record.decision is None:
        return Refusal(400, "authorization_pending", "the user has not answered yet")
    del state.devices[device_code]
    if not record.decision:
        return Refusal(400, "access_denied", "the user denied the request")
    return Granted(record.scope)


def device_page(user_code: str = "", said: str = "") -> Answer:
    """GET /device: the page a user types the code into (a form a scripted browser posts)."""
    note = f"<p>{html.escape(said)}</p>" if said else ""
    body = (
        "<!doctype html><title>Device login</title><h1>Device login</h1>"
        + note
        + '<form method="post" action="/device">'
        f'<input name="user_code" value="{html.escape(user_code, quote=True)}">'
        '<button name="action" value="approve">Approve</button>'
        '<button name="action" value="deny">Deny</button></form>'
    )
    return 200, body, {"Content-Type": "text/html; charset=utf-8"}
