"""A stand-in for GitHub's Actions secrets REST API on loopback: repository, environment and
organisation secrets, sealed with a real libsodium key pair (it decrypts what it receives, so
tests can read a secret's value back), bearer-token checks and failure knobs."""

from __future__ import annotations

import base64
import json
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

from freshtoken._serving import QuietErrors, serve_in_thread, stop_serving
from freshtoken.sinks._github import _parse
from freshtoken.testing._model import Answer, knob

GITHUB_TEST_TOKEN = "github_pat_freshtoken_test"  # the stand-in's published token
_SCOPE = r"(repos/[^/]+/[^/]+/actions|repos/[^/]+/[^/]+/environments/[^/]+|orgs/[^/]+/actions)"
_KEY_PATH = re.compile(rf"/{_SCOPE}/secrets/public-key")
_SECRET_PATH = re.compile(rf"/{_SCOPE}/secrets/([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class GitHubKnobs:
    """Behaviour switches; all can be changed while the stand-in runs (`configure`)."""

    fail_next: int = knob(0, "Answer the next N requests 503.")
    latency: float = knob(0.0, "Seconds before every answer.")
    put_latency: float = knob(
        0.0, "Seconds a secret's PUT takes; it is stored even if the client has gone."
    )
    forbidden: bool = knob(False, "Answer 403 to writes (a token without Secrets: write).")
    rate_limited_next: int = knob(0, "Answer the next N requests with a rate limit.")
    rate_limit_style: str = knob(
        "secondary",
        "secondary: 403 with Retry-After; primary: 403 with X-RateLimit-Remaining 0 until "
        "X-RateLimit-Reset; 429: 429 with Retry-After (GitHub's REST rate limits).",
        choices=("secondary", "primary", "429"),
    )
    rate_limit_wait: float = knob(1.0, "Seconds a rate limit asks the client to wait.")


@dataclass
class SecretRecord:
    value: str
    created: float
    updated: float
    visibility: str | None


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Standin:
    """A stand-in's lifecycle: `with Standin() as s:` serves its `handle` on `s.url`."""

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def handle(self, method: str, target: str, authorization: str, body: bytes) -> Answer:
        raise NotImplementedError

    def start(self) -> Self:
        self._httpd = _Server(self._address, self)
        self._thread = serve_in_thread(self._httpd, "freshtoken-" + type(self).__name__)
        return self

    def stop(self) -> None:
        stop_serving(self._httpd, self._thread)
        self._httpd, self._thread = None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the stand-in is not started"
        return f"http://{self._address[0]}:{self._httpd.server_address[1]}"


class GitHubSecrets(Standin):
    """Start with `with GitHubSecrets() as github:`; `github.url` is then the API base
    (`GITHUB_API_URL`), and `GITHUB_TEST_TOKEN` (or `token`) its only accepted token."""

    def __init__(
        self,
        *,
        token: str = GITHUB_TEST_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        **knobs: Any,
    ) -> None:
        from nacl.public import PrivateKey

        self.token = token
        self.knobs = GitHubKnobs(**knobs)
        self._private = PrivateKey.generate()
        self.key_id = "key-" + secrets.token_hex(4)
        self._secrets: dict[tuple[str, str], SecretRecord] = {}
        self.counts = dict.fromkeys(
            ("requests", "puts_started", "puts", "refused", "rate_limited"), 0
        )
        self._lock = threading.Lock()
        super().__init__(host, port)

    # -- control and inspection --------------------------------------------------------------
    def configure(self, **knobs: Any) -> None:
        unknown = set(knobs) - {f.name for f in fields(GitHubKnobs)}
        if unknown:
            raise TypeError(f"unknown knobs: {sorted(unknown)}")
        with self._lock:
            self.knobs = replace(self.knobs, **knobs)

    @staticmethod
    def _where(sink_url: str) -> tuple[str, str]:
        base, name, _ = _parse(sink_url)
        return base.removesuffix("/secrets"), name.upper()

    def set_value(self, sink_url: str, value: str, *, visibility: str | None = None) -> None:
        """Set a secret as a person would (`gh secret set`), e.g. the first refresh token."""
        now = time.time()
        with self._lock:
            self._secrets[self._where(sink_url)] = SecretRecord(value, now, now, visibility)

    def value(self, sink_url: str) -> str | None:
        """A secret's value (decrypted), None when it does not exist."""
        with self._lock:
            record = self._secrets.get(self._where(sink_url))
            return record.value if record else None

    def record(self, sink_url: str) -> SecretRecord | None:
        with self._lock:
            found = self._secrets.get(self._where(sink_url))
            return replace(found) if found else None

    def set_updated_at(self, sink_url: str, when: float) -> None:
        """Pretend the secret was last written at `when` (wall time), for idle tests."""
        with self._lock:
            self._secrets[self._where(sink_url)].updated = when

    # -- the API -----------------------------------------------------------------------------
    def handle(self, method: str, target: str, authorization: str, body: bytes) -> Answer:
        path = urlsplit(target).path
        with self._lock:
            self.counts["requests"] += 1
            k = self.knobs
            if k.fail_next > 0:
                self.knobs = replace(k, fail_next=k.fail_next - 1)
                return 503, {"message": "Service Unavailable"}, {}
            if k.rate_limited_next > 0:
                self.knobs = replace(k, rate_limited_next=k.rate_limited_next - 1)
                self.counts["rate_limited"] += 1
                return _rate_limited(k)
        if k.latency:
            time.sleep(k.latency)
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not secrets.compare_digest(
            presented.strip().encode(), self.token.encode()
        ):
            with self._lock:
                self.counts["refused"] += 1
            return 401, {"message": "Bad credentials"}, {}
        if method == "GET" and (m := _KEY_PATH.fullmatch(path)):
            key = base64.b64encode(bytes(self._private.public_key)).decode()
            return 200, {"key_id": self.key_id, "key": key}, {}
        m = _SECRET_PATH.fullmatch(path)
        if m is None:
            return 404, {"message": "Not Found"}, {}
        where = (m.group(1), m.group(2).upper())
        if method == "GET":
            with self._lock:
                found = self._secrets.get(where)
            if found is None:
                return 404, {"message": "Not Found"}, {}
            meta = {"name": where[1], "created_at": _stamp(found.created)}
            meta["updated_at"] = _stamp(found.updated)
            if found.visibility:
                meta["visibility"] = found.visibility
            return 200, meta, {}
        if method == "PUT":
            return self._put(where, body, k)
        return 405, {"message": "Method Not Allowed"}, {}

    def _put(self, where: tuple[str, str], body: bytes, k: GitHubKnobs) -> Answer:
        from nacl.exceptions import CryptoError
        from nacl.public import SealedBox

        if k.forbidden:
            return 403, {"message": "Resource not accessible by personal access token"}, {}
        with self._lock:
            self.counts["puts_started"] += 1
        if k.put_latency:
            time.sleep(k.put_latency)
        try:
            data = json.loads(body)
            if data.get("key_id") != self.key_id:
                return 422, {"message": "Bad request: key_id does not match"}, {}
            sealed = base64.b64decode(data["encrypted_value"], validate=True)
            value = SealedBox(self._private).decrypt(sealed).decode()
        except (ValueError, KeyError, TypeError, AttributeError, CryptoError):
            return 422, {"message": "Invalid request: encrypted_value"}, {}
        visibility = data.get("visibility")
        if where[0].startswith("orgs/") and visibility not in ("all", "private", "selected"):
            return 422, {"message": "visibility is required for an organization secret"}, {}
        now = time.time()
        with self._lock:
            old = self._secrets.get(where)
            self._secrets[where] = SecretRecord(value, old.created if old else now, now, visibility)
            self.counts["puts"] += 1
        return (204 if old else 201), "", {}


def _rate_limited(k: GitHubKnobs) -> Answer:
    """GitHub's answer over a rate limit, in the knobs' style."""
    if k.rate_limit_style == "primary":
        reset = str(math.ceil(time.time() + k.rate_limit_wait))
        headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
        return 403, {"message": "API rate limit exceeded for user ID 1."}, headers
    status = 429 if k.rate_limit_style == "429" else 403
    said = "You have exceeded a secondary rate limit. Please wait a few minutes and try again."
    return status, {"message": said}, {"Retry-After": str(math.ceil(k.rate_limit_wait))}


class _App(Protocol):
    def handle(self, method: str, target: str, authorization: str, body: bytes) -> Answer: ...


class _Server(QuietErrors, ThreadingHTTPServer):
    """Serves an app's `handle` (this stand-in's, or the OIDC token stand-in's)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: _App) -> None:
        self.app = app
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _route(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, answer, headers = self.server.app.handle(
            self.command, self.path, self.headers.get("Authorization", ""), body
        )
        data = json.dumps(answer).encode() if isinstance(answer, dict) else str(answer).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _route
