"""The local endpoint (`freshtoken serve`, `freshtoken exec`): tokens over loopback HTTP or a
Unix socket for any language, and an authenticating proxy that injects them.

Every request but `GET /healthz` (ok or degraded, for probes) must carry the server's key
(`X-Freshtoken-Key`, or `Authorization: Bearer`), so that other local users cannot take
tokens. Neither the key nor a token is ever logged.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from freshtoken._errors import AuthorizationError, ConfigurationError, FreshtokenError
from freshtoken._http import direct_client
from freshtoken._local_endpoint import fingerprint
from freshtoken._log import remember_secret
from freshtoken._token import Token
from freshtoken.auth._retry401 import Retry401
from freshtoken.broker._broker import TokenBroker
from freshtoken.local._handler import (
    HOP_BY_HOP,
    LOCAL_ONLY,
    Handler,
    TCPServer,
    named_by_connection,
    unix_server,
)
from freshtoken.local._target import upstream_url


class _NoCookies(CookieJar):
    """The proxy serves many clients: a cookie one upstream answer sets must never ride on
    another client's request, so none is kept."""

    def set_cookie(self, cookie: Any) -> None:
        pass

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass


def write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (never widened by the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)


#: /token's answer when tokens are minted over mutual TLS: a bound token is no use to a caller
#: without the certificate, and the certificate's key never leaves this process.
BOUND = {
    "error": "certificate_bound",
    "error_description": "this endpoint mints over mutual TLS: its tokens may be bound to the "
    "client certificate (RFC 8705), which callers do not hold, so it hands out none",
    "hint": "Send the API calls through the proxy ($FRESHTOKEN_PROXY_URL, `freshtoken serve "
    "--proxy`): it adds the token and presents the certificate upstream.",
    "exit_code": 2,
}


class _Metrics:
    def __init__(self) -> None:
        self.counts = {"requests": 0, "unauthorized": 0, "proxied": 0, "proxy_retries": 0}
        self.lock = threading.Lock()

    def add(self, name: str) -> None:
        with self.lock:
            self.counts[name] += 1


class LocalServer:
    """Serves `broker`'s tokens on loopback (or a Unix socket) and, with `upstream`, proxies to
    it on a second loopback port."""

    def __init__(
        self,
        broker: TokenBroker,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        socket_path: Path | None = None,
        upstream: str | None = None,
        key_file: Path | None = None,
        max_connections: int = 64,
        idle_timeout: float = 30.0,
    ) -> None:
        self.broker = broker
        self.key = secrets.token_urlsafe(32)
        remember_secret(self.key)
        self.upstream = httpx.URL(upstream.rstrip("/")) if upstream else None
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.metrics = _Metrics()
        self._listen = listen
        self._socket_path = socket_path
        self._own_dir: Path | None = None
        if key_file is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="freshtoken-"))  # 0700
            key_file = self._own_dir / "key"
        self.key_file = key_file
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        self._http: httpx.Client | None = None
        self.url = ""
        self.proxy_url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LocalServer:
        write_private(self.key_file, self.key)
        if self._socket_path is not None:
            server: socketserver.BaseServer = unix_server(self._socket_path, self, proxy=False)
            self.url = f"unix:{self._socket_path}"
            proxy_host = "127.0.0.1"  # the proxy is TCP on loopback even beside a socket
        else:
            server = TCPServer(self._listen, self, proxy=False)
            self.url = server.url
            proxy_host = self._listen[0]
        self._serve(server)
        if self.upstream:
            # A token minted over mutual TLS may be bound to the certificate (RFC 8705 §3):
            # the proxy presents it upstream too.
            self._http = direct_client(
                httpx.Timeout(60.0, connect=10.0),
                cookies=_NoCookies(),
                verify=self.broker.client.tls or True,
            )
            proxy = TCPServer((proxy_host, 0), self, proxy=True)
            self.proxy_url = proxy.url
            self._serve(proxy)
        return self

    def _serve(self, server: socketserver.BaseServer) -> None:
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="freshtoken-serve",
            daemon=True,
        )
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        if self._http is not None:
            self._http.close()
        for path in (self.key_file, self._socket_path):
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        if self._own_dir is not None:
            with contextlib.suppress(OSError):
                self._own_dir.rmdir()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ready(self) -> dict[str, Any]:
        line: dict[str, Any] = {"url": self.url, "key_file": str(self.key_file), "pid": os.getpid()}
        if self.proxy_url:
            line["proxy_url"] = self.proxy_url
        return line

    def child_env(self) -> dict[str, str]:
        env = {"FRESHTOKEN_URL": self.url, "FRESHTOKEN_KEY": self.key}
        if self.proxy_url:
            env["FRESHTOKEN_PROXY_URL"] = self.proxy_url
        return env

    # -- answers -----------------------------------------------------------------------------
    def authorized(self, headers: Any) -> bool:
        given = headers.get("X-Freshtoken-Key", "")
        bearer = headers.get("Authorization", "")
        if not given and bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.key.encode())

    def token_answer(self, query: str) -> tuple[int, dict[str, Any]]:
        """The /token answer as JSON; `render` gives the other formats."""
        asked = parse_qs(query)
        raw = asked.get("min_ttl", [""])[0]
        try:
            min_ttl = float(raw) if raw else None
        except ValueError:
            return 400, {
                "error": "invalid_request",
                "error_description": f"min_ttl must be a number of seconds: {raw!r}",
                "exit_code": 2,
            }
        if self.broker.client.tls is not None:
            return 403, BOUND
        refused, current = asked.get("refused", [""])[0], self.broker.current
        if refused and current is not None and fingerprint(current.access_token) == refused:
            self.broker.invalidate(current)  # an API said 401 to a client of this endpoint
        try:
            token = self.broker.token(min_ttl)  # which refuses a negative or infinite one
        except FreshtokenError as exc:
            # The caller's own request was wrong (a bad min_ttl, or one beyond the lifetime).
            status = (
                400
                if isinstance(exc, ConfigurationError)
                else 502
                if isinstance(exc, AuthorizationError)
                else 503
            )
            return status, {
                "error": exc.error,
                "error_description": exc.message,
                "hint": exc.hint,
                "exit_code": exc.exit_code,
            }
        left = self.broker.remaining(token)  # monotonic: a clock step does not change it
        return 200, {
            "access_token": token.access_token,
            "token_type": token.token_type,
            "expires_in": int(left),
            "expires_at": self.broker.clock.time() + left,
            "issued_at": token.issued_at,
            # What this answer promised: a client reuses the token while that much is left.
            "min_ttl": self.broker.refresh.min_ttl_for(token, min_ttl),
        }

    def about(self) -> dict[str, Any]:
        """What `freshtoken status` and `doctor` in a client step show: the store entry this
        endpoint serves (its cache key's first 12 characters, as status prints them), and the
        client and its token endpoint. Never a token or a secret."""
        return {"cache_key": self.broker.key[:12], "client": repr(self.broker.client)}

    def health(self) -> str:
        """`ok`, or `degraded` when minting fails and no valid token is held (for /healthz,
        which answers without the key: so nothing about the token itself)."""
        current = self.broker.current
        valid = current is not None and current.expires_in(self.broker.clock.time()) > 0
        return "ok" if valid or not self.broker.stats.failures else "degraded"

    def metrics_text(self) -> str:
        stats = self.broker.stats
        current = self.broker.current
        left = current.expires_in(self.broker.clock.time()) if current else 0.0
        with self.metrics.lock:
            counts = dict(self.metrics.counts)
        lines = [
            ("freshtoken_cache_hits_total", "counter", stats.hits),
            ("freshtoken_mints_total", "counter", stats.mints),
            ("freshtoken_refreshes_total", "counter", stats.refreshes),
            ("freshtoken_failures_total", "counter", stats.failures),
            ("freshtoken_token_expires_in_seconds", "gauge", round(left, 3)),
            ("freshtoken_requests_total", "counter", counts["requests"]),
            ("freshtoken_unauthorized_requests_total", "counter", counts["unauthorized"]),
            ("freshtoken_proxied_requests_total", "counter", counts["proxied"]),
            ("freshtoken_proxy_retries_total", "counter", counts["proxy_retries"]),
        ]
        return "".join(f"# TYPE {name} {kind}\n{name} {value}\n" for name, kind, value in lines)

    def target(self, handler: Handler) -> httpx.URL:
        """Where the request goes (BadTarget: nowhere)."""
        assert self.upstream is not None
        return upstream_url(self.upstream, handler.path)

    def forward(
        self,
        handler: Handler,
        url: httpx.URL,
        body: bytes | Iterator[bytes],
        replayable: bool,
    ) -> None:
        """Send the request upstream with a fresh token; after a 401, once more."""
        assert self._http is not None
        dropped = (
            HOP_BY_HOP
            | LOCAL_ONLY
            | named_by_connection(handler.headers.get_all("Connection") or [])
        )
        headers = [(k, v) for k, v in handler.headers.items() if k.lower() not in dropped]
        attempt = Retry401(self.broker)
        token: Token | None = attempt.token()
        while token is not None:
            request = self._http.build_request(
                handler.command,
                url,
                headers=[*headers, ("Authorization", token.authorization)],
                content=body,
            )
            response = self._http.send(request, stream=True)
            token = attempt.again(response.status_code, replayable)
            if token is not None:
                response.close()
                self.metrics.add("proxy_retries")
        self.metrics.add("proxied")
        try:
            handler.relay(response)
        finally:
            response.close()
