"""The wire to the running endpoint (`freshtoken serve`, `exec`, the GitHub Action): which one
a step should ask, and the request. The standard library's C socket alone, and no `typing`, so
that `freshtoken token` in such a step costs little more than starting Python; the library's
`EndpointSource` (broker/_endpoint_source.py) uses the same rule and request.
"""

from __future__ import annotations

# The C module: `socket` would add 8 ms of imports (enum, selectors) to every command line call.
import _socket
import os
import sys

#: A step holding any of these mints for itself; without one it asks the running endpoint.
OWN_SECRET = (
    "FRESHTOKEN_CLIENT_SECRET",
    "FRESHTOKEN_CLIENT_SECRET_FILE",
    "FRESHTOKEN_CLIENT_SECRET_KEYRING",
    "GENESYSCLOUD_OAUTHCLIENT_SECRET",
)


def running_endpoint() -> tuple[str, str] | None:
    """(URL, key) of the endpoint this step should ask, or None to mint for itself."""
    url, key = os.environ.get("FRESHTOKEN_URL"), os.environ.get("FRESHTOKEN_KEY")
    if not (url and key) or any(os.environ.get(name) for name in OWN_SECRET):
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
