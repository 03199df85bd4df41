"""The loopback redirect of a browser login (RFC 8252 §7.3): a listener on 127.0.0.1 that
accepts exactly one redirect carrying the expected `state`, then closes.

A redirect with another state (an old browser tab, or a forged request) is answered with an
error page and ignored: it cannot end the login, and its code is never redeemed.
"""

from __future__ import annotations

import hmac
import html
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from freshtoken._errors import ConfigurationError, ErrorContext, LoginError
from freshtoken._log import remember_secret
from freshtoken._serving import QuietErrors, serve_in_thread, stop_serving
from freshtoken.oauth._response import server_text

CALLBACK_PATH = "/callback"
_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}


def listen_address(redirect_uri: str, setting: str = "FRESHTOKEN_REDIRECT_URI") -> tuple[str, int]:
    """Where to listen for `redirect_uri` (host, port); a URI that is not http on loopback with
    a port (127.0.0.1, localhost or [::1]) is refused: it is sent exactly as registered."""
    parts = urlsplit(redirect_uri)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = _HOSTS.get(parts.hostname or "")
    if parts.scheme != "http" or host is None or port is None or parts.fragment:
        raise ConfigurationError(
            f"{setting} {server_text(redirect_uri, 200)!r} is not a loopback redirect URI",
            hint=f"Set {setting} to the redirect URI registered for the client, exactly: "
            "http://127.0.0.1:PORT/PATH, http://localhost:PORT/PATH or http://[::1]:PORT/PATH.",
        )
    return host, port


class _Server(QuietErrors, ThreadingHTTPServer):
    daemon_threads = True
    receiver: LoopbackRedirect


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a browser's idle preconnect must not hold a thread for long

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request line carries the code."""

    def do_GET(self) -> None:
        status, title, text = self.server.receiver.arrived(self.path)
        body = (
            f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
        ).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
        finally:
            # Only now may the login end (and its process exit): the browser gets its page.
            self.server.receiver.answered()


class LoopbackRedirect:
    """`with LoopbackRedirect(state) as r:` listens; `r.redirect_uri` goes in the authorization
    request; `r.wait(timeout)` returns the code of the one redirect with `state`."""

    def __init__(
        self,
        state: str,
        *,
        port: int = 0,
        redirect_uri: str | None = None,
        on_ignored: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._state = state
        self._port = port
        self._host = "127.0.0.1"
        self._uri = redirect_uri  # exactly as registered (FRESHTOKEN_REDIRECT_URI)
        self._path = CALLBACK_PATH
        if redirect_uri is not None:
            self._host, self._port = listen_address(redirect_uri)
            self._path = urlsplit(redirect_uri).path or "/"
        self._on_ignored = on_ignored
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._code: str | None = None
        self._error: LoginError | None = None
        self._decided = False  # a redirect was accepted or refused (its page may be unsent)
        self.ignored = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LoopbackRedirect:
        server = _Server6 if ":" in self._host else _Server
        try:
            self._httpd = server((self._host, self._port), _Handler)
        except (OSError, OverflowError) as exc:  # Overflow: a port past 65535
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            shown = f"[{self._host}]" if ":" in self._host else self._host
            exact = f" ({self._uri}, FRESHTOKEN_REDIRECT_URI)" if self._uri else ""
            raise ConfigurationError(
                f"cannot listen on {shown}:{self._port} for the login redirect{exact} ({why})",
                hint="Another program holds the port, or this machine has no such loopback "
                "address: stop that program, or register another redirect URI for the client "
                "and set FRESHTOKEN_REDIRECT_URI (or FRESHTOKEN_REDIRECT_PORT) to it; unset "
                "both to take any free port, where the server allows that.",
            ) from None
        self._httpd.receiver = self
        self._thread = serve_in_thread(self._httpd, "freshtoken-login-redirect")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        stop_serving(self._httpd, self._thread)
        self._httpd, self._thread = None, None

    @property
    def redirect_uri(self) -> str:
        assert self._httpd is not None, "not listening"
        if self._uri is not None:
            return self._uri
        return urlunsplit(
            ("http", f"127.0.0.1:{self._httpd.server_address[1]}", CALLBACK_PATH, "", "")
        )

    def arrived(self, target: str) -> tuple[int, str, str]:
        """Judge one request: (status, title, text) of the page the browser is shown."""
        parts = urlsplit(target)
        if parts.path != self._path:
            return 404, "Not found", "This address only receives the login redirect."
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            if self._decided:
                return 409, "Login already finished", "Return to the terminal."
            # The state first: only the one redirect that carries it is more than noise. Any
            # local user can send requests here, and remembering their codes as secrets would
            # let a few thousand of them push real secrets out of the redaction list.
            if not hmac.compare_digest(query.get("state", "").encode(), self._state.encode()):
                self.ignored += 1
                self._on_ignored("a redirect with a wrong or missing state")
                return (
                    400,
                    "Login not accepted",
                    "This redirect does not belong to the login that is waiting (wrong state: "
                    "an old browser tab, or a forged request). Nothing was done with it.",
                )
            if "error" in query:
                error = server_text(query["error"], 80) or "error"
                said = server_text(query.get("error_description", ""), 200)
                self._error = LoginError(
                    f"the authorization server refused the login: {error}"
                    + (f" ({said})" if said else ""),
                    error=error,
                    hint=LoginError.explain(ErrorContext()),
                )
                self._decided = True
                return 400, "Login refused", f"The authorization server said: {error}."
            if not query.get("code"):
                return 400, "Login not accepted", "The redirect carries no code."
            remember_secret(query["code"])
            self._code = query["code"]
            self._decided = True
            return 200, "Login complete", "You may close this tab and return to the terminal."

    def answered(self) -> None:
        """The page for a request was written: a login it decided may end now."""
        with self._lock:
            if self._decided:
                self._done.set()

    def wait(self, timeout: float) -> str:
        """The code of the accepted redirect; raises `LoginError` when the server refused or
        nothing arrived within `timeout` seconds. The listener is closed either way."""
        try:
            if not self._done.wait(timeout):
                ignored = f" ({self.ignored} with a wrong state ignored)" if self.ignored else ""
                raise LoginError(
                    f"no login redirect arrived within {timeout:g} s{ignored}",
                    error="login_timeout",
                    hint="Open the printed URL in a browser on this machine and finish the "
                    "login (or raise --timeout). Without a browser here, use --device.",
                )
            if self._error is not None:
                raise self._error
            assert self._code is not None
            return self._code
        finally:
            self.close()
