"""The test server's HTTP side: a threading server that can drop its keep-alive connections, and
the request handler that routes each path to the `AuthServer`."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from freshtoken._serving import QuietErrors
from freshtoken.testing._authorize import device_page, page
from freshtoken.testing._model import DEMO_CLIENT_ID
from freshtoken.testing._tls import MTLS_ALIAS, PEER_CERT

if TYPE_CHECKING:
    from freshtoken.testing._server import AuthServer


class LoopbackHTTPServer(QuietErrors, ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # socketserver's 5 drops SYNs when a fleet connects at once

    def __init__(
        self, address: tuple[str, int], app: AuthServer, tls: ssl.SSLContext | None = None
    ) -> None:
        self.app = app
        self.tls = tls
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is None:
            return sock, address
        # The handshake runs in the request's thread (Handler.setup): a client that stalls
        # in it holds up no one else.
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ssl.SSLError):
            return  # a failed handshake (no trusted certificate, a probe) is the client's
        super().handle_error(request, client_address)

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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every keep-alive answer waits for a delayed ACK
    server: LoopbackHTTPServer
    timeout = 30

    def setup(self) -> None:
        super().setup()
        #: The client certificate (DER) verified in the TLS handshake; None without one.
        self.peer: bytes | None = None
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()
            self.peer = self.connection.getpeercert(binary_form=True)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        # Only the connection says which certificate the client presented, never a header.
        del self.headers[PEER_CERT]
        knobs = self.server.app.knobs
        alias = knobs.mount + MTLS_ALIAS
        aliased = isinstance(self.connection, ssl.SSLSocket) and self.path.startswith(alias + "/")
        if aliased:  # an RFC 8705 §5 alias: the same endpoint
            self.path = knobs.mount + self.path[len(alias) :]
        if self.peer and (aliased or not knobs.mtls_aliases_only):
            self.headers[PEER_CERT] = base64.b64encode(self.peer).decode()
        return True

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
        mount = app.knobs.mount  # the OAuth endpoints live under it
        oauth = path.removeprefix(mount) if path.startswith(mount + "/oauth/") else ""
        if path.startswith("/api/"):
            self._body()
            if path == "/api/v2/tokens/me" and method == "DELETE":
                self._send(*app.delete_token_me(self.headers.get("Authorization", ""), self.peer))
                return
            if path == "/api/v2/tokens/me" and method not in ("GET", "HEAD"):
                self._send(405, {"message": "method not allowed"})
                return
            if path in ("/api/v2/tokens/me", "/api/echo") or path.startswith("/api/echo/"):
                self._send(*app.handle_api(self.headers.get("Authorization", ""), self.peer))
            else:
                self._send(404, {"message": "no such API", "code": "not.found", "status": 404})
        elif method == "POST" and oauth == "/oauth/token":
            answer = app.handle_token(self.headers, self._form(), self._client_gone)
            if answer is None:
                self.close_connection = True
            else:
                self._send(*answer)
        elif method == "POST" and oauth == "/oauth/introspect":
            self._send(*app.introspect(self.headers, self._form()))
        elif method == "POST" and oauth == "/oauth/revoke":
            self._send(*app.revoke(self.headers, self._form()))
        elif method == "GET" and (meta := app.metadata_at(path)) is not None:
            self._send(200, meta)
        elif method == "GET" and oauth == "/oauth/authorize":
            self._send(*app.authorize(dict(parse_qsl(urlsplit(self.path).query))))
        elif method == "POST" and oauth == "/oauth/device_authorization":
            self._send(*app.device_authorization(self.headers, self._form(), app.url))
        elif path == "/device" and method in ("GET", "POST"):
            self._device(app)
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
        if isinstance(self.connection, ssl.SSLSocket):
            return False  # TLS cannot peek; the knob that asks is for plain HTTP
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

    def _device(self, app: AuthServer) -> None:
        """The verification page of the device grant: GET shows the form, POST approves or
        denies the typed user code (`action=approve|deny`)."""
        if self.command == "GET":
            self._send(
                *device_page(dict(parse_qsl(urlsplit(self.path).query)).get("user_code", ""))
            )
            return
        form = self._form()
        approve = form.get("action", "approve") == "approve"
        if app.decide_device(form.get("user_code", ""), approve):
            self._send(*page(200, "Approved" if approve else "Denied", "You may close this page."))
        else:
            self._send(*page(400, "Unknown code", "No pending login has this code (expired?)."))

    do_GET = do_POST = do_HEAD = do_PUT = do_PATCH = do_DELETE = _route
