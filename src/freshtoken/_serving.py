"""What every HTTP server freshtoken runs has in common (the local endpoint, the test server)."""

from __future__ import annotations

import sys
from typing import Any


class QuietErrors:
    """Mixed into a socketserver: a client that hangs up mid-answer (it gave up, or was killed)
    is no error worth a traceback; anything else still is."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)  # type: ignore[misc]
