"""What the attacks of tests/test_security*.py need: another local user, a place that user
can write to (as /tmp), and listeners that record whatever reaches them."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from freshtoken import AuthorizationCode, Settings, TokenBroker
from freshtoken.testing import AuthServer
from tests.helpers import make_client

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


def require_other_user() -> None:
    """Attacks by another uid need root (to become `nobody`) and setpriv."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("acting as another user needs root and setpriv")


def as_nobody(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run `argv` as the unprivileged user `nobody` (no supplementary groups)."""
    require_other_user()
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [*NOBODY, *argv], capture_output=True, text=True, timeout=60, **kwargs
    )


def write_as_nobody(path: Path, text: str, mode: int = 0o644) -> None:
    """`nobody` creates `path` (its owner is then nobody) with `text`."""
    out = as_nobody(
        ["sh", "-c", f'umask 0; cat > "$1" && chmod {mode:o} "$1"', "sh", str(path)], input=text
    )
    assert out.returncode == 0, out.stderr
    assert path.stat().st_uid != os.geteuid()


@contextlib.contextmanager
def open_place() -> Iterator[Path]:
    """A directory every user can reach (pytest's tmp_path is root's alone), removed after."""
    place = Path(tempfile.mkdtemp(prefix="freshtoken-attack-", dir="/tmp"))
    place.chmod(0o755)
    try:
        yield place
    finally:
        shutil.rmtree(place, ignore_errors=True)


def shared_dir(path: Path) -> Path:
    """A directory anyone may write to, like /tmp (mode 1777)."""
    path.mkdir()
    path.chmod(0o1777)
    return path


def http_answer(status: int, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", "Connection: close"]
    head += [*headers, f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Listener:
    """A TCP listener on 127.0.0.1 that records every connection and every byte it receives,
    and answers each request with `answer` (a token endpoint's answer by default)."""

    def __init__(self, answer: bytes | None = None) -> None:
        self.answer = answer or http_answer(
            200, b'{"access_token":"stolen-token","token_type":"Bearer","expires_in":3600}'
        )
        self.connections = 0
        self.received = bytearray()
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        """Read one request (headers, and a body of Content-Length), answer, close."""
        conn.settimeout(5)
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
                with self._lock:
                    self.received += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            missing = int(found.group(1)) - len(body) if found else 0
            while missing > 0 and (chunk := conn.recv(65536)):
                missing -= len(chunk)
                with self._lock:
                    self.received += chunk
            if head:
                conn.sendall(self.answer)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reached(self) -> str:
        """What reached this listener, for an assertion message."""
        with self._lock:
            return f"{self.connections} connection(s): {bytes(self.received[:300])!r}"


# A hostile module: records that it ran (and whether its process holds the client secret),
# then hands over to the real module of that name, so that nothing else notices.
HOSTILE = """\
import os, sys
with open("/proc/self/environ", "rb") as _f:
    _held = {secret!r}.encode() in _f.read()
with open({log!r}, "a") as _f:
    _f.write(f"{{__name__}} {{os.getpid()}} {{_held}}\\n")
_here = os.path.dirname(os.path.abspath(__file__))
del sys.modules[__name__]
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
import importlib
sys.modules[__name__] = importlib.import_module(__name__)
"""


def hostile_environment(
    place: Path, secret: str, *, site: bool = False
) -> tuple[dict[str, str], Path]:
    """PYTHONPATH to a checkout's `src` holding click.py and json.py (and sitecustomize.py with
    `site`), and a PYTHONSTARTUP script; and the file where each records that it ran, in which
    pid, and whether that process had `secret` in its environment."""
    src, log = place / "checkout" / "src", place / "hostile.log"
    src.mkdir(parents=True)
    code = HOSTILE.format(secret=secret, log=str(log))
    for name in ("click", "json", *(("sitecustomize",) if site else ())):
        (src / f"{name}.py").write_text(code)
    (place / "startup.py").write_text(code.replace("{__name__}", "PYTHONSTARTUP"))
    env = {"PYTHONPATH": str(src), "PYTHONSTARTUP": str(place / "startup.py")}
    return env, log


def seeded(server: AuthServer, env: dict[str, str], secret: str = "demo-secret") -> str:
    """Seed the store `env` configures with a fresh refresh token of `server`; that token."""
    broker = TokenBroker.from_settings(Settings.from_env(env))
    try:
        seed = make_client(server, client_id="demo-client", secret=secret).fetch(
            AuthorizationCode(server.issue_code("demo-client"))
        )
        assert seed.refresh_token
        broker.seed_refresh_token(seed.refresh_token)
        return seed.refresh_token
    finally:
        broker.close()
