"""What every HTTP server freshtoken runs has in common (the local endpoint, the test server)."""

from __future__ import annotations

import socketserver
import sys
import threading
from collections.abc import Callable
from typing import Any


class QuietErrors:
    """Mixed into a socketserver: a client that hangs up mid-answer (it gave up, or was killed)
    is no error worth a traceback; anything else still is."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)  # type: ignore[misc]


def serve_in_thread(server: socketserver.BaseServer, name: str) -> threading.Thread:
    """Serve `server` from a daemon thread (it looks for a shutdown every 50 ms)."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    )
    thread.start()
    return thread


def stop_serving(
    server: socketserver.BaseServer | None,
    thread: threading.Thread | None,
    before_close: Callable[[], None] | None = None,
) -> None:
    """Stop what `serve_in_thread` started: no new request, the socket closed, the thread
    joined; `before_close` runs once serving stopped (to end open connections)."""
    if server is not None:
        server.shutdown()
        if before_close is not None:
            before_close()
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)
