"""The running endpoint as a token source: what every client uses where `freshtoken serve` or
`exec` (or the GitHub Action) already holds the token for the job.

The rule is one function, `running_endpoint()`: `FRESHTOKEN_URL` and `FRESHTOKEN_KEY` are set
and the step has no client secret of its own. The request itself (`ask`) uses the standard
library alone, so that the command line's `freshtoken token` pays for no HTTP stack.
"""

from __future__ import annotations

# The C module: `socket` would add 8 ms of imports (enum, selectors) to every command line call.
import _socket
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx
    import requests

    from freshtoken._token import Token

#: A step holding any of these mints for itself; without one it asks the running endpoint.
OWN_SECRET = (
    "FRESHTOKEN_CLIENT_SECRET",
    "FRESHTOKEN_CLIENT_SECRET_FILE",
    "FRESHTOKEN_CLIENT_SECRET_KEYRING",
    "GENESYSCLOUD_OAUTHCLIENT_SECRET",
)


def running_endpoint(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(URL, key) of the endpoint this step should ask, or None to mint for itself."""
    url, key = environ.get("FRESHTOKEN_URL"), environ.get("FRESHTOKEN_KEY")
    if not (url and key) or any(environ.get(name) for name in OWN_SECRET):
        return None
    return url, key


class EndpointRefusal(Exception):
    """The endpoint's refusal (or its silence): `str()` is the line the CLI prints."""

    def __init__(
        self, message: str, exit_code: int, error: str = "unavailable", hint: str = ""
    ) -> None:
        super().__init__(message + (f"\nhint: {hint}" if hint else ""))
        self.message, self.exit_code, self.error, self.hint = message, exit_code, error, hint


def ask(
    base: str,
    key: str,
    min_ttl: float | None,
    fmt: str = "json",
    *,
    refused: str | None = None,
    timeout: float = 60.0,
) -> bytes:
    """GET /token from the endpoint at `base`: the body, in `fmt`. `refused` is the
    fingerprint of a token an API refused with 401, so that the endpoint replaces it."""
    path = f"/token?format={fmt}" + (f"&min_ttl={min_ttl:g}" if min_ttl is not None else "")
    if refused:
        path += f"&refused={refused}"
    return get(base, key, path, timeout)


def get(base: str, key: str, path: str, timeout: float = 60.0) -> bytes:
    """GET `path` from the endpoint at `base` with its key: the body of a 200 answer, else
    EndpointRefusal with the endpoint's own error, hint and exit code."""
    try:
        address: object
        if base.startswith("unix:") and sys.platform != "win32":
            family, address = _socket.AF_UNIX, base[5:]
        else:
            host, _, port = base.removeprefix("http://").rstrip("/").rpartition(":")
            # bytes, not str: a str host loads the IDNA codec (7 ms) for a loopback address
            family, _, _, _, address = _socket.getaddrinfo(
                host.strip("[]").encode("ascii"), int(port), 0, _socket.SOCK_STREAM
            )[0]
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: freshtoken\r\nX-Freshtoken-Key: {key}"
                "\r\nConnection: close\r\n\r\n".encode()
            )
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        finally:
            sock.close()
    except (OSError, ValueError) as exc:
        raise EndpointRefusal(
            f"the local endpoint {base} did not answer ({exc.__class__.__name__})",
            4,
            "local_endpoint_unavailable",
            "Is the `freshtoken serve`/`exec` that set FRESHTOKEN_URL still running? "
            "Unset FRESHTOKEN_URL to mint with this step's own client secret instead.",
        ) from None
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    if status == 200:
        return body
    import json  # only here: on the command line's path it would cost a third of the imports

    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    error = str(data.get("error", "unknown"))
    message = data.get("error_description") or f"HTTP {status}"
    raise EndpointRefusal(
        f"{message} (error={error})", int(data.get("exit_code", 4)), error, data.get("hint") or ""
    )


def fingerprint(access_token: str) -> str:
    """What names a token to the endpoint without sending it in a URL."""
    import hashlib

    return hashlib.sha256(access_token.encode()).hexdigest()[:32]


class EndpointSource:
    """Tokens from the running endpoint, kept in this process while they are valid for what
    is asked. The endpoint is the job's shared cache: it mints, refreshes and writes back;
    this process never holds a client secret or a refresh token."""

    def __init__(self, url: str, key: str, *, min_ttl: float | None = None) -> None:
        self.url = url
        self._key = key
        #: What a caller naming no min_ttl is promised (None: what the endpoint promises).
        self.default_min_ttl = min_ttl
        self._lock = threading.Lock()
        # The token, its monotonic expiry, and the endpoint's default margin (None: unknown).
        self._held: tuple[Token, float, float | None] | None = None
        self._refused: str | None = None

    def __repr__(self) -> str:
        return f"EndpointSource({self.url})"

    def token(self, min_ttl: float | None = None) -> Token:
        """A token valid for at least `min_ttl` seconds (default: the endpoint's margin)."""
        if min_ttl is None:
            min_ttl = self.default_min_ttl
        held = self._held
        if held is not None:
            need = held[2] if min_ttl is None else min_ttl
            # Chained so that a NaN or negative min_ttl is no hit: the endpoint refuses it.
            if need is not None and held[1] - time.monotonic() >= need >= 0:
                return held[0]
        with self._lock:
            return self._ask(min_ttl)

    async def atoken(self, min_ttl: float | None = None) -> Token:
        import asyncio

        return await asyncio.to_thread(self.token, min_ttl)

    def _ask(self, min_ttl: float | None) -> Token:
        import json

        from freshtoken._token import Token

        sent = time.monotonic()
        try:
            data = json.loads(ask(self.url, self._key, min_ttl, refused=self._refused))
        except EndpointRefusal as exc:
            raise _as_error(exc) from None
        now, left = time.time(), float(data["expires_in"])
        token = Token(
            access_token=str(data["access_token"]),
            token_type=str(data.get("token_type", "Bearer")),
            expires_at=now + left,
            issued_at=float(data.get("issued_at", now)),
        )
        # The endpoint's own margin is known only from an answer to a caller who named none.
        margin = float(data["min_ttl"]) if min_ttl is None and "min_ttl" in data else None
        self._held, self._refused = (token, sent + left, margin), None
        return token

    def invalidate(self, token: Token) -> None:
        """After a 401 with `token`: the next call asks the endpoint for another."""
        with self._lock:
            if self._held is not None and self._held[0].access_token == token.access_token:
                self._held = None
                self._refused = fingerprint(token.access_token)

    def remaining(self, token: Token) -> float:
        held = self._held
        if held is not None and held[0] is token:
            return held[1] - time.monotonic()
        return token.expires_in(time.time())

    @property
    def current(self) -> Token | None:
        return self._held[0] if self._held else None

    def start(self) -> EndpointSource:
        """Nothing to start: the endpoint refreshes ahead for every step."""
        return self

    def close(self) -> None:
        """Nothing to release: every request is its own connection."""

    def __enter__(self) -> EndpointSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def httpx_auth(self) -> httpx.Auth:
        """An `httpx.Auth` (sync and async) that sends the token and retries once on 401."""
        from freshtoken.auth._httpx import SourceAuth

        return SourceAuth(self)

    def requests_auth(self) -> requests.auth.AuthBase:
        """A `requests` auth that sends the token and retries once on 401."""
        from freshtoken.auth._requests import requests_auth

        return requests_auth(self)


def _as_error(refusal: EndpointRefusal) -> Exception:
    """The library's error for an endpoint's refusal: its code, message, hint and exit code."""
    from freshtoken import _errors

    cls: type[_errors.OAuthError] = {
        _errors.EXIT_USAGE: _errors.ConfigurationError,
        _errors.EXIT_REFUSED: _errors.AuthorizationError,
    }.get(refusal.exit_code, _errors.TokenUnavailableError)
    error = cls(refusal.message, error=refusal.error, hint=refusal.hint)
    error.exit_code = refusal.exit_code
    return error
