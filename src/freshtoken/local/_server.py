"""The local endpoint (`freshtoken serve`, `freshtoken exec`): tokens over loopback HTTP or a
Unix socket for any language, and an authenticating proxy that injects them.

Every request must carry the server's key (`X-Freshtoken-Key`, or `Authorization: Bearer`),
so that other local users cannot take tokens. Neither the key nor a token is ever logged.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import os
import secrets
import socket
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from freshtoken._errors import AuthorizationError, ConfigurationError, OAuthError
from freshtoken._log import logger, remember_secret
from freshtoken._serving import QuietErrors
from freshtoken._token import Token
from freshtoken.auth._retry401 import Retry401
from freshtoken.broker._broker import TokenBroker
from freshtoken.cli._formats import render

MAX_REPLAY_BYTES = 1024 * 1024  # bodies up to this are buffered, so a 401 can be retried
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_LOCAL_ONLY = frozenset({"authorization", "x-freshtoken-key"})


def write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (never widened by the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)


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
    ) -> None:
        self.broker = broker
        self.key = secrets.token_urlsafe(32)
        remember_secret(self.key)
        self.upstream = upstream.rstrip("/") if upstream else None
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
            server: socketserver.BaseServer = _UnixServer(self._socket_path, self, proxy=False)
            self.url = f"unix:{self._socket_path}"
            proxy_host = "127.0.0.1"  # the proxy is TCP on loopback even beside a socket
        else:
            server = _TCPServer(self._listen, self, proxy=False)
            self.url = server.url
            proxy_host = self._listen[0]
        self._serve(server)
        if self.upstream:
            self._http = httpx.Client(
                timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=False, trust_env=True
            )
            proxy = _TCPServer((proxy_host, 0), self, proxy=True)
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
        raw = parse_qs(query).get("min_ttl", [""])[0]
        try:
            min_ttl = float(raw) if raw else None
        except ValueError:
            min_ttl = math.nan
        if min_ttl is not None and not 0 <= min_ttl < math.inf:
            return 400, {
                "error": "invalid_request",
                "error_description": f"min_ttl must be a number of seconds, zero or more: {raw!r}",
                "exit_code": 2,
            }
        try:
            token = self.broker.token(min_ttl)
        except OAuthError as exc:
            # The caller's own request was wrong (min_ttl beyond the lifetime): 400.
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
        }

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

    def forward(self, handler: _Handler, body: bytes | Iterator[bytes], replayable: bool) -> None:
        """Send the request upstream with a fresh token; after a 401, once more."""
        assert self._http is not None
        assert self.upstream is not None
        headers = [
            (k, v) for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP | _LOCAL_ONLY
        ]
        url = self.upstream + handler.path
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


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: with Nagle on, each answer waits ~40 ms for
    # the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _TCPServer | _UnixServer
    timeout = 120

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a request line can carry query strings a user did not mean to log."""

    def address_string(self) -> str:
        return "local"

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> tuple[bytes | Iterator[bytes], bool]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._chunks(), False
        length = int(self.headers.get("Content-Length") or 0)
        if length <= MAX_REPLAY_BYTES:
            return (self.rfile.read(length) if length else b""), True
        return self._stream(length), False

    def _stream(self, length: int) -> Iterator[bytes]:
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def relay(self, response: httpx.Response) -> None:
        self.send_response(response.status_code)
        for name, value in response.headers.multi_items():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in response.iter_raw():
            if chunk:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _route(self) -> None:
        app = self.server.app
        app.metrics.add("requests")
        if not app.authorized(self.headers):
            app.metrics.add("unauthorized")
            self._body()  # drain, so the connection stays usable
            self._json(
                401,
                {
                    "error": "unauthorized",
                    "error_description": "send the key from $FRESHTOKEN_KEY in X-Freshtoken-Key",
                },
            )
            return
        if self.server.proxy:
            body, replayable = self._body()
            try:
                app.forward(self, body, replayable)
            except OAuthError as exc:
                self._json(502, {"error": exc.error, "error_description": exc.message})
            except httpx.HTTPError as exc:
                self._json(
                    502, {"error": "upstream_unreachable", "error_description": type(exc).__name__}
                )
            return
        parts = urlsplit(self.path)
        if self.command not in ("GET", "HEAD"):
            self._json(405, {"error": "method_not_allowed"})
        elif parts.path == "/token":
            status, answer = app.token_answer(parts.query)
            fmt = parse_qs(parts.query).get("format", ["json"])[0]
            if status == 200 and fmt in ("raw", "header", "env"):
                self._send(200, (render(answer, fmt) + "\n").encode(), "text/plain")
            else:
                self._json(status, answer)
        elif parts.path == "/healthz":
            self._json(200, {"status": "ok"})
        elif parts.path == "/metrics":
            self._send(200, app.metrics_text().encode(), "text/plain; version=0.0.4")
        else:
            self._json(
                404,
                {
                    "error": "not_found",
                    "error_description": "local paths: /token, /healthz, /metrics",
                },
            )

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _route


class _TCPServer(QuietErrors, ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], app: LocalServer, *, proxy: bool) -> None:
        self.app, self.proxy = app, proxy
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[0], self.server_address[1]
        return f"http://{_host(str(host))}:{port}"


class _UnixHandler(_Handler):
    disable_nagle_algorithm = False  # TCP_NODELAY does not exist on a Unix socket


class _UnixServer(QuietErrors, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, app: LocalServer, *, proxy: bool) -> None:
        self.app, self.proxy = app, proxy
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        old = os.umask(0o177)  # the socket is born 0600: no window where others may connect
        try:
            super().__init__(str(path), _UnixHandler)
        finally:
            os.umask(old)
        logger.debug("serving on a Unix socket")
