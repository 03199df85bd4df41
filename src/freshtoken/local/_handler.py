"""The HTTP side of the local endpoint: the request handler (routing, bodies, relaying the
upstream's answer) and the servers, each capping its connections and their idle time."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import stat
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx

from freshtoken._errors import ConfigurationError, FreshtokenError
from freshtoken._log import logger
from freshtoken._serving import QuietErrors
from freshtoken.cli._formats import TEXT_FORMATS, render
from freshtoken.local._target import BadTarget

if TYPE_CHECKING:
    from freshtoken.local._server import LocalServer

MAX_REPLAY_BYTES = 1024 * 1024  # bodies up to this are buffered, so a 401 can be retried
HOP_BY_HOP = frozenset(
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
LOCAL_ONLY = frozenset({"authorization", "x-freshtoken-key"})
# Answered to a connection past the cap, without a thread.
_BUSY_BODY = b'{"error":"busy","error_description":"too many connections"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
) % (len(_BUSY_BODY), _BUSY_BODY)


def named_by_connection(values: list[str]) -> frozenset[str]:
    """Header names listed in `Connection:` values (hop-by-hop for this connection only)."""
    return frozenset(t.strip().lower() for v in values for t in v.split(",") if t.strip())


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _BadRequest(ValueError):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: with Nagle on, each answer waits ~40 ms for
    # the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _Limited

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.app.idle_timeout)  # idle or stalled: let go

    def version_string(self) -> str:
        return "freshtoken"  # not the Python version

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
        if self.close_connection:  # said, or a keep-alive client sends its next request here
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _refuse(self, status: int, error: str, description: str) -> None:
        """Answer and close: the rest of this request is not read."""
        self.close_connection = True
        self._json(status, {"error": error, "error_description": description})

    def _body(self) -> tuple[bytes | Iterator[bytes], bool]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._chunks(), False
        raw = self.headers.get("Content-Length") or "0"
        if not raw.isdigit():
            raise _BadRequest("Content-Length is not a number")
        length = int(raw)
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
            line = self.rfile.readline(1024).split(b";")[0].strip() or b"0"
            try:
                size = int(line, 16)
            except ValueError:
                self.close_connection = True
                return  # a malformed body ends here; the connection is not reused
            if size == 0:
                self.rfile.readline(1024)
                return
            yield self.rfile.read(size)
            self.rfile.readline(1024)

    def relay(self, response: httpx.Response) -> None:
        """The upstream's answer as it came (its own Date and Server), minus hop-by-hop
        headers; no body where HTTP allows none (HEAD, 1xx, 204, 304)."""
        self.send_response_only(response.status_code)
        dropped = HOP_BY_HOP | named_by_connection(
            response.headers.get_list("connection", split_commas=True)
        )
        for name, value in response.headers.multi_items():
            if name.lower() not in dropped:
                self.send_header(name, value)
        status = response.status_code
        if self.command == "HEAD" or status in (204, 304) or status < 200:
            if self.command == "HEAD" and "content-length" in response.headers:
                self.send_header("Content-Length", response.headers["content-length"])
            self.end_headers()
            return
        if self.request_version == "HTTP/1.0":  # no chunked encoding: the close ends the body
            self.close_connection = True
            self.send_header("Connection", "close")
            self.end_headers()
            for chunk in response.iter_raw():
                self.wfile.write(chunk)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in response.iter_raw():
            if chunk:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _route(self) -> None:
        app = self.server.app
        app.metrics.add("requests")
        # The target as sent: http.server folds a leading "//" into "/" in self.path.
        sent = self.requestline.split(" ")[1] if self.requestline.count(" ") >= 1 else ""
        if not self.path.startswith("/") or sent.startswith("//"):
            self._refuse(400, "invalid_request", "only origin-form request targets (/path)")
            return
        probe = self.command in ("GET", "HEAD") and urlsplit(self.path).path == "/healthz"
        if probe and not self.server.proxy:
            # For probes, without the key: ok or degraded, never token data.
            health = app.health()
            self._json(200 if health == "ok" else 503, {"status": health})
            return
        if not app.authorized(self.headers):
            app.metrics.add("unauthorized")
            self._refuse(
                401, "unauthorized", "send the key from $FRESHTOKEN_KEY in X-Freshtoken-Key"
            )
            return
        if self.server.proxy:
            self._proxy(app)
            return
        parts = urlsplit(self.path)
        if self.command not in ("GET", "HEAD"):
            self._json(405, {"error": "method_not_allowed"})
        elif parts.path == "/token":
            status, answer = app.token_answer(parts.query)
            fmt = parse_qs(parts.query).get("format", ["json"])[0]
            if status == 200 and fmt in TEXT_FORMATS:
                self._send(200, (render(answer, fmt) + "\n").encode(), "text/plain")
            else:
                self._json(status, answer)
        elif parts.path == "/status":  # which store entry this endpoint serves (no token)
            self._json(200, app.about())
        elif parts.path == "/metrics":
            self._send(200, app.metrics_text().encode(), "text/plain; version=0.0.4")
        else:
            self._json(
                404,
                {
                    "error": "not_found",
                    "error_description": "local paths: /token, /status, /healthz, /metrics",
                },
            )

    def _proxy(self, app: LocalServer) -> None:
        try:
            url = app.target(self)
            body, replayable = self._body()
        except (BadTarget, _BadRequest) as exc:
            self._refuse(400, "invalid_request", str(exc))
            return
        try:
            app.forward(self, url, body, replayable)
        except FreshtokenError as exc:
            self._json(502, {"error": exc.error, "error_description": exc.message})
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            self._refuse(502, "upstream_unreachable", type(exc).__name__)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _route


class _Limited(QuietErrors, socketserver.BaseServer):
    """Mixed into a threading server: at most `app.max_connections` connections at once (each
    a thread); one more is answered 503 and closed at once, without a thread."""

    app: LocalServer
    proxy: bool
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self.slots.release()


class TCPServer(_Limited, ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], app: LocalServer, *, proxy: bool) -> None:
        self.app, self.proxy = app, proxy
        self.slots = threading.BoundedSemaphore(app.max_connections)
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[0], self.server_address[1]
        return f"http://{_host(str(host))}:{port}"


if sys.platform == "win32":  # Python has no Unix sockets on Windows

    def unix_server(path: Path, app: LocalServer, *, proxy: bool) -> socketserver.BaseServer:
        raise ConfigurationError(
            "--socket: Unix sockets are not available on Windows",
            hint="Leave --socket out: the endpoint listens on loopback TCP.",
        )

else:

    def unix_server(path: Path, app: LocalServer, *, proxy: bool) -> socketserver.BaseServer:
        """A server on a Unix socket at `path`, born 0600."""
        return UnixServer(path, app, proxy=proxy)

    class UnixHandler(Handler):
        disable_nagle_algorithm = False  # TCP_NODELAY does not exist on a Unix socket

    class UnixServer(_Limited, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

        def __init__(self, path: Path, app: LocalServer, *, proxy: bool) -> None:
            self.app, self.proxy = app, proxy
            self.slots = threading.BoundedSemaphore(app.max_connections)
            _clear_stale_socket(path)
            old = os.umask(0o177)  # the socket is born 0600: no window where others may connect
            try:
                super().__init__(str(path), UnixHandler)
            finally:
                os.umask(old)
            logger.debug("serving on a Unix socket")

    def _clear_stale_socket(path: Path) -> None:
        """Make room for the socket at `path`: only a stale socket of this user is removed;
        anything else there (a file, another user's socket, a live server) is an error."""
        try:
            info = path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.geteuid():
            raise ConfigurationError(
                f"--socket {path}: something else is there (not a socket of this user)",
                hint="freshtoken removes only a stale socket of its own: name another path.",
            )
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                path.unlink(missing_ok=True)  # nobody listens: a stale socket
                return
        raise ConfigurationError(
            f"--socket {path} is in use by a running server",
            hint="Stop that server, or name another path.",
        )
