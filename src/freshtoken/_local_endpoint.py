"""The wire to the running endpoint (`freshtoken serve`, `exec`, the GitHub Action): which one
a step should ask, and the request. Shared by its three parties, as `_serving.py` is by the
servers: the command line (`freshtoken token`, `doctor`, `status`), the library's
`EndpointSource` (_endpoint_source.py), and the endpoint itself (local/, the token's
fingerprint). The standard library's C socket alone, and no `typing`, so that `freshtoken
token` in such a step costs little more than starting Python.
"""

from __future__ import annotations

import os
import sys

from freshtoken.provider._variables import SECRET_VARIABLES

#: A step holding any of these mints for itself; without one it asks the running endpoint.
OWN_SECRET = (
    "FRESHTOKEN_CLIENT_SECRET",
    "FRESHTOKEN_CLIENT_SECRET_FILE",
    "FRESHTOKEN_CLIENT_SECRET_KEYRING",
    *SECRET_VARIABLES,  # a provider's own tools' variables
)


def running_endpoint(profile: str | None = None) -> tuple[str, str] | None:
    """(URL, key) of the endpoint this step should ask, or None to configure its own client:
    when it holds a client secret, or names a profile (`--profile`, `$FRESHTOKEN_PROFILE`)."""
    url, key = os.environ.get("FRESHTOKEN_URL"), os.environ.get("FRESHTOKEN_KEY")
    if not (url and key) or profile or os.environ.get("FRESHTOKEN_PROFILE"):
        return None
    if any(os.environ.get(name) for name in OWN_SECRET):
        return None
    return url, key


def default_min_ttl() -> float | None:
    """The `min_ttl` setting where this step sets it ($FRESHTOKEN_MIN_TTL), else None (the
    endpoint's own margin); a value that is no number is the endpoint's to refuse."""
    raw = os.environ.get("FRESHTOKEN_MIN_TTL", "").strip()
    try:
        return float(raw) if raw else None
    except ValueError:
        return float("nan")


class EndpointRefusal(Exception):
    """The endpoint's refusal (or its silence); `line` is what the CLI prints."""

    def __init__(
        self, message: str, exit_code: int, error: str = "unavailable", hint: str = ""
    ) -> None:
        super().__init__(message)
        self.message, self.exit_code, self.error, self.hint = message, exit_code, error, hint

    @property
    def line(self) -> str:
        return f"{self.message} (error={self.error})"


def ask(
    base: str,
    key: str,
    min_ttl: float | None,
    *,
    refused: str | None = None,
    timeout: float = 60.0,
) -> dict[str, object]:
    """GET /token (JSON) from the endpoint at `base`. `refused` is the fingerprint of a token
    an API refused with 401, so that the endpoint replaces it. The answer is checked as any
    token answer: an access token of RFC 6750's b64token characters and a lifetime."""
    path = "/token?format=json"
    if min_ttl is not None:  # repr: every digit; + would read as a space in a query
        path += "&min_ttl=" + repr(float(min_ttl)).replace("+", "%2B")
    if refused:
        path += f"&refused={refused}"
    import json

    try:
        data = json.loads(get(base, key, path, timeout))
        access, left = data["access_token"], float(data["expires_in"])
        usable = isinstance(access, str) and is_b64token(access)
    except (ValueError, TypeError, KeyError, AttributeError):
        usable = False
    if not usable:
        raise EndpointRefusal(
            f"the local endpoint {base} did not answer like freshtoken serve",
            4,
            "malformed_response",
            "Check that FRESHTOKEN_URL names the endpoint that serve printed.",
        )
    if not left >= (min_ttl or 0.0):  # every hand-out is checked, as the broker's (NaN too)
        raise EndpointRefusal(
            f"the local endpoint {base} handed out a token with {left:.1f}s left, less than "
            f"the {min_ttl or 0:g}s asked for",
            4,
            "token_unavailable",
            "Check the freshtoken serve behind FRESHTOKEN_URL (its log), or ask for less.",
        )
    return dict(data)


#: RFC 6750's b64token characters: the only ones an access token may hold (oauth/_response.py
#: refuses any other answer); checked again wherever a token is written for a shell or a workflow.
B64TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=")


def is_b64token(value: str) -> bool:
    return bool(value) and all(c in B64TOKEN_CHARS for c in value)


def get(base: str, key: str, path: str, timeout: float = 60.0) -> bytes:
    """GET `path` from the endpoint at `base` with its key: the body of a 200 answer, else
    EndpointRefusal with the endpoint's own error, hint and exit code. The key goes only to a
    loopback address (or a Unix socket): wherever FRESHTOKEN_URL names another host, nothing
    is sent."""
    # The C module, and only here: `socket` would add 8 ms of imports (enum, selectors) to
    # every command line call, and a store hit needs no socket at all.
    import _socket

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
            ip = str(address[0]).split("%")[0]
            if not (ip.startswith("127.") or ip == "::1" or ip.startswith("::ffff:127.")):
                raise EndpointRefusal(
                    f"FRESHTOKEN_URL names {host}, which is not this machine (loopback)",
                    2,
                    "invalid_configuration",
                    "freshtoken serve listens on loopback only: use the URL it printed.",
                )
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
    parts = head.split(b" ", 2)
    status = int(parts[1]) if head.startswith(b"HTTP/") and parts[1:2] and parts[1].isdigit() else 0
    if status == 200:
        return body
    import json  # only here: on the command line's path it would cost a third of the imports

    try:
        data = json.loads(body)
        data = data if isinstance(data, dict) else {}
    except ValueError:
        data = {}
    error = str(data.get("error", "unknown"))
    message = str(data.get("error_description") or f"HTTP {status}")
    try:
        code = int(data.get("exit_code", 4))
    except (TypeError, ValueError):
        code = 4
    raise EndpointRefusal(message, code, error, str(data.get("hint") or ""))


def fingerprint(access_token: str) -> str:
    """What names a token to the endpoint without sending it in a URL."""
    import hashlib

    return hashlib.sha256(access_token.encode()).hexdigest()[:32]
