"""The faults a real token endpoint and API produce, as answers: rate limits, injected 503s and
the malformed answers of `MALFORMED`."""

from __future__ import annotations

import base64
import json
import math
import secrets
import time
from typing import Any

from freshtoken.testing._model import Answer


def over_limit(window: list[float], limit: int, length: float) -> float | None:
    """Count one request in a fixed window ([start, count]); over the limit, the seconds until
    the window resets."""
    now = time.monotonic()
    if now - window[0] >= length:
        window[0], window[1] = now, 0
    window[1] += 1
    return window[0] + length - now if window[1] > limit else None


def rate_limited_429(wait: float) -> Answer:
    return (
        429,
        {"error": "rate_limited", "error_description": "too many token requests"},
        {"Retry-After": str(math.ceil(wait))},
    )


def rate_limit_description(wait: float) -> str:
    """The description of the 400 invalid_request that some servers answer an exceeded
    token-endpoint limit with (a provider preset's stand-in)."""
    return f"rate limit exceeded; retry in [{math.ceil(wait)}] seconds"


def api_rate_limited(wait: float) -> Answer:
    """A protected API's 429, with the body and headers of the preset's stand-in."""
    seconds = math.ceil(wait)
    return (
        429,
        {
            "message": f"Rate limit exceeded the maximum. Retry the request in [{seconds}] seconds",
            "code": "too.many.requests.retry.after",
            "status": 429,
        },
        {"Retry-After": str(seconds)},
    )


def error_body(style: str, code: str, description: str) -> dict[str, str]:
    """A token endpoint's error in `style` (the knob `error_style`): RFC 6749's fields,
    Genesys' `description` beside them, or a non-standard code."""
    if style == "nonstandard":
        code = NONSTANDARD.get(code, code)
    body = {"error": code, "error_description": description}
    if style == "genesys":
        body["description"] = description
    return body


def api_unauthorized() -> Answer:
    """Genesys' protected-API 401."""
    body = {"message": "Invalid login credentials.", "code": "bad.credentials", "status": 401}
    return 401, body, {}


def unavailable() -> Answer:
    return 503, {"error": "temporarily_unavailable", "error_description": "injected fault"}, {}


def gateway_error(nth: int) -> Answer:
    """A gateway's answer for a request its upstream processed too late: 504, every second
    one 502, as nginx and load balancers write them (HTML, no Retry-After)."""
    status, words = (504, "Gateway Time-out") if nth % 2 else (502, "Bad Gateway")
    page = f"<html><head><title>{status} {words}</title></head><body>nginx</body></html>"
    return status, page, {"Content-Type": "text/html"}


def _jwt(lifetime: int, age: int = 0) -> str:
    """An unsigned JWT access token issued `age` seconds ago, expiring `lifetime` seconds after
    it was issued (a server that hands out a cached token gives it an age)."""
    issued = int(time.time()) - age
    claims = {"iat": issued, "exp": issued + lifetime, "jti": secrets.token_urlsafe(12)}
    parts = ({"alg": "none", "typ": "at+jwt"}, claims)
    encoded = (base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=") for p in parts)
    return ".".join(e.decode() for e in encoded) + "."


def malformed_answer(mode: str) -> Answer:
    """The answer of a `MALFORMED` mode."""
    good: dict[str, Any] = {
        "access_token": "at_" + secrets.token_urlsafe(24),
        "token_type": "bearer",
        "expires_in": 3600,
    }
    lasting = {k: v for k, v in good.items() if k != "expires_in"}
    html = "<html><head><title>{}</title></head><body>nginx</body></html>"
    broken: dict[str, tuple[int, Any]] = {
        "html_502": (502, html.format("502 Bad Gateway")),
        "html_200": (200, html.format("Sign in")),
        "non_json": (200, "OK token follows"),
        "empty_body": (200, ""),
        "json_array": (200, [good]),
        "truncated_json": (200, json.dumps(good)[:25]),
        "no_access_token": (200, {k: v for k, v in good.items() if k != "access_token"}),
        "empty_access_token": (200, {**good, "access_token": ""}),
        "access_token_not_string": (200, {**good, "access_token": 12345}),
        "access_token_with_space": (200, {**good, "access_token": "abc def\nX-Evil: 1"}),
        "access_token_shell": (200, {**good, "access_token": "$(touch${IFS}/tmp/x)"}),
        "token_type_missing": (200, {k: v for k, v in good.items() if k != "token_type"}),
        "token_type_mac": (200, {**good, "token_type": "mac"}),
        "expires_in_string": (200, {**good, "expires_in": "3600"}),
        "expires_in_non_numeric": (200, {**good, "expires_in": "soon"}),
        "expires_in_missing": (200, lasting),
        "jwt_without_expires_in": (200, {**lasting, "access_token": _jwt(120)}),
        "cached_jwt_without_expires_in": (200, {**lasting, "access_token": _jwt(3600, 3300)}),
        "error_and_token": (200, {**good, "error": "server_error", "error_description": "oops"}),
        "expires_in_negative": (200, {**good, "expires_in": -5}),
        "expires_in_zero": (200, {**good, "expires_in": 0}),
        "expires_in_absurd": (200, {**good, "expires_in": 100 * 365 * 86400}),
        "expires_in_bool": (200, {**good, "expires_in": True}),
        "refresh_token_not_string": (200, {**good, "refresh_token": 7}),
        "refresh_token_newline": (200, {**good, "refresh_token": "rt\n::warning::server"}),
        "scope_not_string": (200, {**good, "scope": ["a", "b"]}),
        "scope_control": (200, {**good, "scope": "read \x1b]0;owned\x07"}),
        "huge_body": (200, {**good, "padding": "x" * (1024 * 1024 + 10)}),
        "error_without_code": (400, {"message": "bad"}),
        "redirect": (302, ""),
    }
    status, body = broken[mode]
    headers = {"Location": "https://elsewhere.example/login?next=1"} if mode == "redirect" else {}
    if isinstance(body, str):
        headers["Content-Type"] = "text/html" if body.startswith("<") else "text/plain"
    return status, body, headers


#: What a server that speaks its own words says for the RFC's codes (`error_style`).
NONSTANDARD = {
    "invalid_grant": "invalid_code",
    "invalid_scope": "scope_invalid",
    "unauthorized_client": "authorization_type_invalid",
    "unsupported_grant_type": "authorization_type_invalid",
    "invalid_client": "client_invalid",
}
_CLIENT_REFUSALS = ("invalid_client", "unauthorized_client", "unsupported_grant_type")


def bare_refusal(answer: Answer, grant: str, refusal: int = 403) -> Answer:
    """The `bare_refusals` knob: a refusal of the client as `refusal` (knob
    `bare_refusal_status`) with an empty body, a failed refresh as 400 with an empty body;
    anything else as it was."""
    status, body, _headers = answer
    code = body.get("error") if isinstance(body, dict) and 400 <= status < 500 else None
    if code is None or status == 429 or "rate limit" in str(body.get("error_description")):
        return answer
    if grant == "refresh_token":
        return 400, "", {}
    if code in _CLIENT_REFUSALS or (code == "invalid_scope" and grant == "client_credentials"):
        return refusal, "", {}
    return answer
