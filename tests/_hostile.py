"""Token endpoints that misbehave on purpose, on 127.0.0.1: raw sockets, so that they can do
what no well-behaved HTTP server library would (drip bytes, never answer, lie)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType

Behaviour = Callable[[socket.socket, threading.Event], None]


class HostileServer:
    """Every connection is handed to `behave(conn, stopping)` in a thread of its own."""

    def __init__(self, behave: Behaviour) -> None:
        self.behave = behave
        self.requests = 0
        self._stopping = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def _address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()
        return host, port

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self._address[1]}/oauth/token"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        # Closing a listening socket does not wake a thread blocked in accept() (on Linux):
        # one last connection does, and the thread sees it is stopping.
        with contextlib.suppress(OSError), socket.create_connection(self._address, timeout=1):
            pass
        self._thread.join(5)
        assert not self._thread.is_alive(), "the accept thread did not stop"
        self._sock.close()
        for conn in self._conns:
            conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self._stopping.is_set():  # the wake-up from __exit__, not a client
                conn.close()
                return
            self.requests += 1
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            self.behave(conn, self._stopping)
        except OSError:
            pass  # the client gave up: that is the point of most of these


def drip(conn: socket.socket, stopping: threading.Event) -> None:
    """A 200 whose body arrives one byte every 0.2 s, for as long as anyone listens."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    while not stopping.wait(0.2):
        conn.sendall(b" ")


def drip_headers(conn: socket.socket, stopping: threading.Event) -> None:
    """Headers that never end, one byte every 0.2 s."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stopping.wait(0.2):
        conn.sendall(b"X")


def silent(conn: socket.socket, stopping: threading.Event) -> None:
    """Accepts the request and never says a word."""
    stopping.wait(60)


def answer(status: int, body: bytes, *headers: str) -> Behaviour:
    """The same answer to every request."""
    head = "".join(f"{h}\r\n" for h in headers)

    def behave(conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{head}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(5)
        conn.recv(1)  # the client closes first: the answer is not cut short by a reset

    return behave


NESTED_JSON = b"[" * 100_000 + b"]" * 100_000
