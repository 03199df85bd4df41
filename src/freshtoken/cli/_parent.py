"""A client of the parent's local endpoint ($FRESHTOKEN_URL) with the standard library alone:
what `freshtoken token` does inside `exec`/`serve` children."""

from __future__ import annotations

# The C module: `socket` would add 8 ms of imports (enum, selectors) to every call.
import _socket
import sys


class ParentError(Exception):
    """The endpoint's refusal (or its silence): `str()` is the line the CLI prints."""

    def __init__(
        self, message: str, exit_code: int, error: str = "unavailable", hint: str = ""
    ) -> None:
        super().__init__(message + (f"\nhint: {hint}" if hint else ""))
        self.message, self.exit_code, self.error, self.hint = message, exit_code, error, hint


def fetch_from_parent(base: str, key: str, min_ttl: float | None, fmt: str = "json") -> bytes:
    """GET /token from the local endpoint named by $FRESHTOKEN_URL: the body, in `fmt`."""
    path = f"/token?format={fmt}" + (f"&min_ttl={min_ttl:g}" if min_ttl is not None else "")
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
            sock.settimeout(60)
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
        raise ParentError(
            f"the local endpoint {base} did not answer ({exc.__class__.__name__})",
            4,
            "local_endpoint_unavailable",
            "Is the parent `freshtoken exec`/`serve` still running?",
        ) from None
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    if status == 200:
        return body
    import json  # only here: on the fast path it would cost a third of the imports

    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    error = str(data.get("error", "unknown"))
    message = data.get("error_description") or f"HTTP {status}"
    raise ParentError(
        f"{message} (error={error})", int(data.get("exit_code", 4)), error, data.get("hint") or ""
    )
