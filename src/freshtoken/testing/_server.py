"""A real OAuth 2.0 authorization server on loopback, for tests, demos and benchmarks.

It behaves like the servers freshtoken meets in the wild: Genesys Cloud's error shapes and
rate-limit answer, Keycloak's and node-oidc-provider's refresh-token rotation with reuse
detection, and the faults and malformed answers that real networks produce.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import random
import secrets
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

from freshtoken._serving import QuietErrors

DEMO_CLIENT_ID = "demo-client"
DEMO_CLIENT_SECRET = "demo-secret"  # a test server's published credentials, not a secret
ALL_GRANTS = frozenset({"client_credentials", "refresh_token", "authorization_code"})

MALFORMED = {
    "html_502": "an HTML error page with HTTP 502",
    "html_200": "an HTML login page with HTTP 200",
    "non_json": "plain text with HTTP 200",
    "empty_body": "an empty body with HTTP 200",
    "json_array": "a JSON array",
    "truncated_json": "JSON cut off midway",
    "no_access_token": "JSON without access_token",
    "empty_access_token": "an empty access_token",
    "access_token_not_string": "a numeric access_token",
    "access_token_with_space": "an access_token with a space and newline",
    "token_type_missing": "no token_type",
    "token_type_mac": "token_type 'mac'",
    "expires_in_string": "expires_in as a numeric string",
    "expires_in_non_numeric": "expires_in as a word",
    "expires_in_missing": "no expires_in",
    "expires_in_negative": "a negative expires_in",
    "expires_in_zero": "expires_in 0",
    "expires_in_absurd": "expires_in of a century",
    "expires_in_bool": "expires_in true",
    "refresh_token_not_string": "a numeric refresh_token",
    "scope_not_string": "scope as a list",
    "huge_body": "a body over 1 MiB",
    "error_without_code": "HTTP 400 with a JSON body that names no error",
    "redirect": "HTTP 302 to another host",
}


@dataclass(frozen=True)
class Client:
    """A registered OAuth client. `secret=None` makes it a public client."""

    client_id: str
    secret: str | None
    scopes: frozenset[str] | None = None  # None: any scope is allowed
    grants: frozenset[str] = ALL_GRANTS
    ttl: float | None = None  # None: the server's ttl

    def __repr__(self) -> str:
        return f"Client({self.client_id!r}, grants={sorted(self.grants)})"


@dataclass
class Knobs:
    """Behaviour switches; all can be changed while the server runs (`configure`)."""

    ttl: float = 3600.0
    refresh_on_client_credentials: bool = False
    rotate_refresh_tokens: bool = True
    reuse_detection: bool = True
    refresh_token_ttl: float = 30 * 86400.0
    error_style: str = "rfc6749"  # or "genesys": adds `description` beside error_description
    scope_in_response: bool = True  # Genesys returns no scope
    failure_rate: float = 0.0  # share of token requests answered 503
    fail_first: int = 0  # this many next token requests answered 503
    latency: float = 0.0  # seconds added to every token request
    rate_limit: int = 0  # token requests allowed per window; 0 = unlimited
    rate_window: float = 60.0
    rate_limit_style: str = "genesys"  # or "429"
    api_rate_limit: int = 0  # protected-API requests allowed per window; 0 = unlimited
    malformed: str | None = None  # a key of MALFORMED: answer every token request so
    narrow_scope: bool = False  # grant the allowed part of a scope request (RFC 6749 §3.3)
    abandon_on_disconnect: bool = False  # after `latency`, drop requests whose client left
    seed: int | None = None


@dataclass
class _Access:
    client_id: str
    scope: tuple[str, ...]
    expires: float
    family: str | None
    grant: str


@dataclass
class _Refresh:
    client_id: str
    scope: tuple[str, ...]
    expires: float
    family: str
    consumed: bool = False


@dataclass
class _State:
    access: dict[str, _Access] = field(default_factory=dict)
    refresh: dict[str, _Refresh] = field(default_factory=dict)
    codes: dict[str, tuple[str, tuple[str, ...], str | None]] = field(default_factory=dict)
    revoked_families: set[str] = field(default_factory=set)
    minted: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    counters: Counter[str] = field(default_factory=Counter)
    window: list[float] = field(default_factory=lambda: [0.0, 0.0])  # start, count
    inflight: dict[int, float] = field(default_factory=dict)  # request id -> start
    api_window: list[float] = field(default_factory=lambda: [0.0, 0.0])


class _HTTPServer(QuietErrors, ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # socketserver's 5 drops SYNs when a fleet connects at once

    def __init__(self, address: tuple[str, int], app: AuthServer) -> None:
        self.app = app
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        # Keep-alive connections would otherwise go on being served after stop().
        with self.sockets_lock:
            for sock in list(self.open_sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class AuthServer:
    """Start with `with AuthServer() as server:`; `server.token_url` is then live.

    Clients default to the demo client (`demo-client` / `demo-secret`).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clients: list[Client] | None = None,
        **knobs: Any,
    ) -> None:
        self.knobs = Knobs(**knobs)
        self._clients = {
            c.client_id: c for c in (clients or [Client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)])
        }
        self._state = _State()
        self._lock = threading.Lock()
        self._rng = random.Random(self.knobs.seed)
        self._host = host
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def genesys(cls, **overrides: Any) -> AuthServer:
        """A server that answers as Genesys Cloud does (errors, no scope, 400 rate limit)."""
        defaults: dict[str, Any] = {
            "error_style": "genesys",
            "scope_in_response": False,
            "rate_limit_style": "genesys",
        }
        return cls(**{**defaults, **overrides})

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> AuthServer:
        self._httpd = _HTTPServer((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="freshtoken-testserver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.close_all()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> AuthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self._host if ":" not in self._host else f"[{self._host}]"
        return f"http://{host}:{self.port}"

    @property
    def token_url(self) -> str:
        return self.url + "/oauth/token"

    @property
    def issuer(self) -> str:
        return self.url

    # -- control -----------------------------------------------------------------------------
    def configure(self, **knobs: Any) -> None:
        names = {f.name for f in fields(Knobs)}
        unknown = set(knobs) - names
        if unknown:
            raise TypeError(f"unknown knobs: {sorted(unknown)}")
        if knobs.get("malformed") not in (None, *MALFORMED):
            raise ValueError(f"malformed must be one of {sorted(MALFORMED)}")
        with self._lock:
            self.knobs = replace(self.knobs, **knobs)

    def register(self, client: Client) -> None:
        with self._lock:
            self._clients[client.client_id] = client

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            s = self._state
            return {
                "tokens_minted": sum(sum(c.values()) for c in s.minted.values()),
                "minted": {cid: dict(c) for cid, c in s.minted.items()},
                **{
                    k: s.counters.get(k, 0)
                    for k in (
                        "token_requests",
                        "refreshes",
                        "reuse_detections",
                        "api_200",
                        "api_401",
                        "api_429",
                        "rate_limited",
                        "faults",
                        "introspections",
                        "revocations",
                        "abandoned",
                    )
                },
                "inflight_ages": sorted(now - t for t in s.inflight.values()),
                "errors": {k[6:]: v for k, v in s.counters.items() if k.startswith("error:")},
            }

    def issue_code(
        self, client_id: str, scope: tuple[str, ...] = (), redirect_uri: str | None = None
    ) -> str:
        """A one-time authorization code, as if a user had just logged in and consented."""
        code = "code_" + secrets.token_urlsafe(16)
        with self._lock:
            self._state.codes[code] = (client_id, scope, redirect_uri)
        return code

    def revoke_all(self) -> None:
        """Invalidate every token and refresh token (a user logged out everywhere)."""
        with self._lock:
            self._state.access.clear()
            for record in self._state.refresh.values():
                self._state.revoked_families.add(record.family)

    def active_refresh_tokens(self, client_id: str) -> int:
        """How many unconsumed, unrevoked refresh tokens the client holds (chain alive > 0)."""
        now = time.monotonic()
        with self._lock:
            return sum(
                1
                for r in self._state.refresh.values()
                if r.client_id == client_id
                and not r.consumed
                and r.expires > now
                and r.family not in self._state.revoked_families
            )

    # -- token endpoint ----------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        self._state.counters[key] += n

    def _window(self, window: list[float], limit: int, length: float) -> float | None:
        """Count one request; return seconds until the window resets when over the limit."""
        now = time.monotonic()
        if now - window[0] >= length:
            window[0], window[1] = now, 0
        window[1] += 1
        return window[0] + length - now if window[1] > limit else None

    def _mint(
        self,
        client: Client,
        scope: tuple[str, ...],
        grant: str,
        family: str | None,
        with_refresh: bool,
    ) -> dict[str, Any]:
        k = self.knobs
        ttl = client.ttl or k.ttl
        now = time.monotonic()
        access = "at_" + secrets.token_urlsafe(24)
        self._state.access[access] = _Access(client.client_id, scope, now + ttl, family, grant)
        self._state.minted[client.client_id][grant] += 1
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": max(1, math.floor(ttl)),
        }
        if with_refresh:
            family = family or "fam_" + secrets.token_urlsafe(8)
            refresh = "rt_" + secrets.token_urlsafe(24)
            self._state.refresh[refresh] = _Refresh(
                client.client_id, scope, now + k.refresh_token_ttl, family
            )
            body["refresh_token"] = refresh
        if k.scope_in_response:
            body["scope"] = " ".join(scope)
        return body

    def _error(
        self, status: int, code: str, description: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        self._count("error:" + code)
        body = {"error": code, "error_description": description}
        if self.knobs.error_style == "genesys":
            body["description"] = description
        return status, body, headers or {}

    def _authenticate(
        self, headers: Any, form: dict[str, str]
    ) -> Client | tuple[int, dict[str, Any], dict[str, str]]:
        basic = headers.get("Authorization", "")
        if basic.lower().startswith("basic "):
            if "client_secret" in form:
                return self._error(400, "invalid_request", "more than one client authentication")
            try:
                raw = base64.b64decode(basic[6:].strip(), validate=True).decode()
                cid, _, secret = raw.partition(":")
                cid, secret = unquote_plus(cid), unquote_plus(secret)
            except ValueError:
                return self._error(400, "invalid_request", "malformed Basic credentials")
        else:
            cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        client = self._clients.get(cid)
        ok = client is not None and (
            secrets.compare_digest(client.secret, secret)
            if client.secret is not None
            else not secret
        )
        if not ok or client is None:
            challenge = {"WWW-Authenticate": 'Basic realm="freshtoken-testserver"'}
            return self._error(401, "invalid_client", "authentication failed", challenge)
        return client

    def handle_token(
        self,
        headers: Any,
        form: dict[str, str],
        client_gone: Callable[[], bool] = lambda: False,
    ) -> tuple[int, Any, dict[str, str]] | None:
        """The token endpoint; None means the request was dropped unanswered."""
        k = self.knobs
        marker = id(form)
        with self._lock:
            self._state.inflight[marker] = time.monotonic()
        try:
            if k.latency:
                time.sleep(k.latency)
            if k.abandon_on_disconnect and client_gone():
                with self._lock:
                    self._count("abandoned")
                return None
            return self._token_locked(headers, form)
        finally:
            with self._lock:
                self._state.inflight.pop(marker, None)

    def _token_locked(self, headers: Any, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        k = self.knobs
        with self._lock:
            self._count("token_requests")
            if (
                k.rate_limit
                and (wait := self._window(self._state.window, k.rate_limit, k.rate_window))
                is not None
            ):
                self._count("rate_limited")
                if k.rate_limit_style == "429":
                    return (
                        429,
                        {"error": "rate_limited", "error_description": "too many token requests"},
                        {"Retry-After": str(math.ceil(wait))},
                    )
                return self._error(
                    400,
                    "invalid_request",
                    f"rate limit exceeded; retry in [{math.ceil(wait)}] seconds",
                )
            if k.fail_first > 0 or (k.failure_rate and self._rng.random() < k.failure_rate):
                self.knobs = replace(k, fail_first=max(0, k.fail_first - 1))
                self._count("faults")
                return (
                    503,
                    {"error": "temporarily_unavailable", "error_description": "injected fault"},
                    {},
                )
            if k.malformed:
                return self._malformed(k.malformed)
            return self._grant(headers, form)

    def _grant(self, headers: Any, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        authed = self._authenticate(headers, form)
        if not isinstance(authed, Client):
            return authed
        client = authed
        grant = form.get("grant_type", "")
        if grant not in ALL_GRANTS:
            return self._error(400, "unsupported_grant_type", f"grant {grant!r} not supported")
        if grant not in client.grants:
            return self._error(400, "unauthorized_client", f"client may not use the {grant} grant")
        requested = tuple(form.get("scope", "").split())
        if grant == "client_credentials":
            if client.scopes is not None and self.knobs.narrow_scope:
                requested = tuple(s for s in requested if s in client.scopes)
            if client.scopes is not None and not set(requested) <= client.scopes:
                bad = " ".join(sorted(set(requested) - client.scopes))
                return self._error(400, "invalid_scope", f"scope not allowed: {bad}")
            body = self._mint(
                client, requested, grant, None, self.knobs.refresh_on_client_credentials
            )
            return 200, body, {}
        if grant == "authorization_code":
            found = self._state.codes.pop(form.get("code", ""), None)
            if found is None or found[0] != client.client_id:
                return self._error(400, "invalid_grant", "authorization code invalid or used")
            if found[2] and form.get("redirect_uri") != found[2]:
                return self._error(400, "invalid_grant", "redirect_uri does not match")
            return 200, self._mint(client, found[1], grant, None, True), {}
        return self._refresh(client, form.get("refresh_token", ""), requested)

    def _refresh(
        self, client: Client, presented: str, requested: tuple[str, ...]
    ) -> tuple[int, Any, dict[str, str]]:
        k = self.knobs
        record = self._state.refresh.get(presented)
        if record is None or record.client_id != client.client_id:
            return self._error(400, "invalid_grant", "refresh token invalid")
        if record.family in self._state.revoked_families:
            return self._error(400, "invalid_grant", "refresh token revoked")
        if record.consumed:
            if k.reuse_detection:
                self._count("reuse_detections")
                self._revoke_family(record.family)
                return self._error(
                    400, "invalid_grant", "refresh token reuse detected; grant revoked"
                )
            return self._error(400, "invalid_grant", "refresh token already used")
        if record.expires <= time.monotonic():
            return self._error(400, "invalid_grant", "refresh token expired")
        scope = requested or record.scope
        if not set(scope) <= set(record.scope):
            return self._error(400, "invalid_scope", "scope wider than the original grant")
        self._count("refreshes")
        body = self._mint(client, scope, "refresh_token", record.family, k.rotate_refresh_tokens)
        if k.rotate_refresh_tokens:
            record.consumed = True
        else:
            body["refresh_token"] = presented
        return 200, body, {}

    def _revoke_family(self, family: str) -> None:
        self._state.revoked_families.add(family)
        for token, access in list(self._state.access.items()):
            if access.family == family:
                del self._state.access[token]

    def _malformed(self, mode: str) -> tuple[int, Any, dict[str, str]]:
        good: dict[str, Any] = {
            "access_token": "at_" + secrets.token_urlsafe(24),
            "token_type": "bearer",
            "expires_in": 3600,
        }
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
            "token_type_missing": (200, {k: v for k, v in good.items() if k != "token_type"}),
            "token_type_mac": (200, {**good, "token_type": "mac"}),
            "expires_in_string": (200, {**good, "expires_in": "3600"}),
            "expires_in_non_numeric": (200, {**good, "expires_in": "soon"}),
            "expires_in_missing": (200, {k: v for k, v in good.items() if k != "expires_in"}),
            "expires_in_negative": (200, {**good, "expires_in": -5}),
            "expires_in_zero": (200, {**good, "expires_in": 0}),
            "expires_in_absurd": (200, {**good, "expires_in": 100 * 365 * 86400}),
            "expires_in_bool": (200, {**good, "expires_in": True}),
            "refresh_token_not_string": (200, {**good, "refresh_token": 7}),
            "scope_not_string": (200, {**good, "scope": ["a", "b"]}),
            "huge_body": (200, {**good, "padding": "x" * (1024 * 1024 + 10)}),
            "error_without_code": (400, {"message": "bad"}),
            "redirect": (302, ""),
        }
        status, body = broken[mode]
        headers = (
            {"Location": "https://elsewhere.example/login?next=1"} if mode == "redirect" else {}
        )
        if isinstance(body, str):
            headers["Content-Type"] = "text/html" if body.startswith("<") else "text/plain"
        return status, body, headers

    # -- other endpoints ---------------------------------------------------------------------
    def check_bearer(self, authorization: str) -> _Access | None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._lock:
            record = self._state.access.get(value.strip())
            if record is None or record.expires <= time.monotonic():
                return None
            return record

    def handle_api(self, authorization: str) -> tuple[int, Any, dict[str, str]]:
        k = self.knobs
        with self._lock:
            if (
                k.api_rate_limit
                and (wait := self._window(self._state.api_window, k.api_rate_limit, 60.0))
                is not None
            ):
                self._count("api_429")
                seconds = math.ceil(wait)
                return (
                    429,
                    {
                        "message": f"Rate limit exceeded the maximum. Retry the request in "
                        f"[{seconds}] seconds",
                        "code": "too.many.requests.retry.after",
                        "status": 429,
                    },
                    {"Retry-After": str(seconds)},
                )
        record = self.check_bearer(authorization)
        with self._lock:
            if record is None:
                self._count("api_401")
                return (
                    401,
                    {
                        "message": "Invalid login credentials.",
                        "code": "bad.credentials",
                        "status": 401,
                    },
                    {},
                )
            self._count("api_200")
        return (
            200,
            {"id": record.client_id, "name": record.client_id, "scope": " ".join(record.scope)},
            {},
        )

    def introspect(self, headers: Any, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            authed = self._authenticate(headers, form)
            if not isinstance(authed, Client):
                return authed
            self._count("introspections")
            token = form.get("token", "")
            now = time.monotonic()
            access = self._state.access.get(token)
            if access and access.expires > now and access.client_id == authed.client_id:
                return (
                    200,
                    {
                        "active": True,
                        "client_id": access.client_id,
                        "scope": " ".join(access.scope),
                        "token_type": "Bearer",
                        "exp": int(time.time() + access.expires - now),
                    },
                    {},
                )
            refresh = self._state.refresh.get(token)
            if (
                refresh
                and not refresh.consumed
                and refresh.expires > now
                and refresh.family not in self._state.revoked_families
                and refresh.client_id == authed.client_id
            ):
                return (
                    200,
                    {"active": True, "client_id": refresh.client_id, "token_type": "refresh_token"},
                    {},
                )
            return 200, {"active": False}, {}

    def revoke(self, headers: Any, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            authed = self._authenticate(headers, form)
            if not isinstance(authed, Client):
                return authed
            self._count("revocations")
            token = form.get("token", "")
            access = self._state.access.get(token)
            if access and access.client_id == authed.client_id:
                del self._state.access[token]
            refresh = self._state.refresh.get(token)
            if refresh and refresh.client_id == authed.client_id:
                self._revoke_family(refresh.family)
            return 200, {}, {}

    def metadata(self) -> dict[str, Any]:
        base = self.url
        return {
            "issuer": base,
            "token_endpoint": base + "/oauth/token",
            "authorization_endpoint": base + "/oauth/authorize",
            "revocation_endpoint": base + "/oauth/revoke",
            "introspection_endpoint": base + "/oauth/introspect",
            "grant_types_supported": sorted(ALL_GRANTS),
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "response_types_supported": ["code"],
        }

    def control(self, changes: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        try:
            self.configure(**changes)
        except (TypeError, ValueError) as exc:
            return 400, {"error": "invalid_request", "error_description": str(exc)}, {}
        return 200, asdict(self.knobs), {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every keep-alive answer waits for a delayed ACK
    server: _HTTPServer
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a test server's access log is noise, and would show codes."""

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            data = str(body).encode()
            headers.setdefault("Content-Type", "text/plain")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _form(self) -> dict[str, str]:
        return dict(parse_qsl(self._body().decode("utf-8", "replace"), keep_blank_values=True))

    def _route(self) -> None:
        app = self.server.app
        path = urlsplit(self.path).path
        method = self.command
        if path.startswith("/api/"):
            self._body()
            if path == "/api/v2/tokens/me" and method not in ("GET", "HEAD"):
                self._send(405, {"message": "method not allowed"})
                return
            if path in ("/api/v2/tokens/me", "/api/echo") or path.startswith("/api/echo/"):
                self._send(*app.handle_api(self.headers.get("Authorization", "")))
            else:
                self._send(404, {"message": "no such API", "code": "not.found", "status": 404})
        elif method == "POST" and path == "/oauth/token":
            answer = app.handle_token(self.headers, self._form(), self._client_gone)
            if answer is None:
                self.close_connection = True
            else:
                self._send(*answer)
        elif method == "POST" and path == "/oauth/introspect":
            self._send(*app.introspect(self.headers, self._form()))
        elif method == "POST" and path == "/oauth/revoke":
            self._send(*app.revoke(self.headers, self._form()))
        elif method == "GET" and path in (
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ):
            self._send(200, app.metadata())
        elif method == "GET" and path == "/oauth/authorize":
            self._authorize(app)
        elif method == "POST" and path == "/_test/code":
            form = self._form()
            code = app.issue_code(
                form.get("client_id", DEMO_CLIENT_ID),
                tuple(form.get("scope", "").split()),
                form.get("redirect_uri") or None,
            )
            self._send(200, {"code": code})
        elif method == "GET" and path == "/_stats":
            self._send(200, app.stats())
        elif method == "POST" and path == "/_control":
            try:
                changes = json.loads(self._body() or b"{}")
            except ValueError:
                changes = None
            if not isinstance(changes, dict):
                self._send(400, {"error": "invalid_request", "error_description": "send JSON"})
                return
            self._send(*app.control(changes))
        else:
            self._body()
            self._send(404, {"error": "not_found", "error_description": path})

    def _client_gone(self) -> bool:
        """True when the client closed its connection (it died, or gave up waiting)."""
        try:
            self.connection.setblocking(False)
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK)
            return peeked == b""
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            self.connection.settimeout(self.timeout)

    def _authorize(self, app: AuthServer) -> None:
        """Test-only: approves at once and redirects with a code (no login page)."""
        query = dict(parse_qsl(urlsplit(self.path).query))
        redirect = query.get("redirect_uri", "")
        code = app.issue_code(
            query.get("client_id", ""), tuple(query.get("scope", "").split()), redirect or None
        )
        params = {"code": code, **({"state": query["state"]} if "state" in query else {})}
        if not redirect:
            self._send(200, params)
            return
        self._send(302, "", {"Location": f"{redirect}?{urlencode(params)}"})

    do_GET = do_POST = do_HEAD = do_PUT = do_PATCH = do_DELETE = _route
