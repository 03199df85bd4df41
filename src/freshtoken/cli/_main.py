"""The command line's entry point, and its fast path: `freshtoken token` inside `exec`/`serve`
children asks the parent's local endpoint with the standard library alone (no click, no
httpx), so a cache hit costs little more than starting Python."""

from __future__ import annotations

# The C module: `socket` would add 8 ms of imports (enum, selectors) to every call.
import _socket
import os
import sys
import time

FORMATS = ("raw", "json", "header", "env", "github")
# Options that would put a secret in argv, where every local user can read it (ps, /proc).
SECRET_OPTIONS = {
    "--client-secret": "FRESHTOKEN_CLIENT_SECRET or FRESHTOKEN_CLIENT_SECRET_FILE",
    "--secret": "FRESHTOKEN_CLIENT_SECRET or FRESHTOKEN_CLIENT_SECRET_FILE",
    "--password": "FRESHTOKEN_REDIS_PASSWORD or FRESHTOKEN_REDIS_PASSWORD_FILE",
    "--redis-password": "FRESHTOKEN_REDIS_PASSWORD or FRESHTOKEN_REDIS_PASSWORD_FILE",
    "--store-key": "FRESHTOKEN_STORE_KEY or FRESHTOKEN_STORE_KEY_FILE",
    "--token": "standard input or --file (seed-refresh-token)",
    "--access-token": "the local endpoint (freshtoken serve / exec)",
    "--refresh-token": "standard input or --file (seed-refresh-token)",
    "--key": "FRESHTOKEN_KEY (set by freshtoken exec)",
}


def refuse_secret_options(argv: list[str]) -> str | None:
    """The sentence refusing a secret on the command line, or None."""
    for arg in argv:
        if arg == "--":
            return None
        name = arg.split("=", 1)[0]
        if name in SECRET_OPTIONS:
            return (
                f"{name} would put a secret on the command line, where every user of this "
                f"machine can read it (ps, /proc/<pid>/cmdline). Use {SECRET_OPTIONS[name]} "
                "instead (a *_FILE may be - for standard input)."
            )
    return None


class ParentError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fetch_from_parent(base: str, key: str, min_ttl: float | None, fmt: str = "json") -> bytes:
    """GET /token from the local endpoint named by $FRESHTOKEN_URL: the body, in `fmt`."""
    path = f"/token?format={fmt}" + (f"&min_ttl={min_ttl:g}" if min_ttl is not None else "")
    try:
        address: object
        if base.startswith("unix:"):
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
            f"the local endpoint {base} did not answer ({exc.__class__.__name__}); "
            "is the parent `freshtoken exec`/`serve` still running?",
            4,
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
    message = data.get("error_description") or f"HTTP {status}"
    hint = f"\nhint: {data['hint']}" if data.get("hint") else ""
    raise ParentError(
        f"{message} (error={data.get('error', 'unknown')}){hint}", int(data.get("exit_code", 4))
    )


def render(data: dict[str, object], fmt: str) -> str:
    """The token as `fmt` prints it (github is handled by the full command line)."""
    access = str(data["access_token"])
    if fmt == "json":
        import json

        keys = ("access_token", "token_type", "expires_in", "expires_at")
        return json.dumps({k: data[k] for k in keys})
    if fmt == "header":
        return f"Authorization: Bearer {access}"
    if fmt == "env":
        return f"FRESHTOKEN_ACCESS_TOKEN={access}"
    return access


def _fast_args(argv: list[str]) -> tuple[float | None, str] | None:
    """(min_ttl, format) when argv is a plain `token` call the fast path can serve."""
    if not argv or argv[0] != "token":
        return None
    min_ttl: float | None = None
    fmt = "raw"
    rest = argv[1:]
    while rest:
        name, eq, value = rest.pop(0).partition("=")
        if not eq:
            if not rest:
                return None
            value = rest.pop(0)
        if name == "--min-ttl":
            try:
                min_ttl = float(value)
            except ValueError:
                return None
        elif name == "--format" and value in ("raw", "json", "header", "env"):
            fmt = value
        else:
            return None
    return min_ttl, fmt


def main() -> None:
    argv = sys.argv[1:]
    refused = refuse_secret_options(argv)
    if refused:
        sys.stderr.write(f"freshtoken: {refused}\n")
        sys.exit(2)
    parent, key = os.environ.get("FRESHTOKEN_URL"), os.environ.get("FRESHTOKEN_KEY")
    fast = _fast_args(argv)
    if fast is not None and not (parent and key) and _print_cached(*fast):
        return
    if fast is not None and parent and key:
        try:
            body = fetch_from_parent(parent, key, fast[0], fast[1])
        except ParentError as exc:
            sys.stderr.write(f"freshtoken: {exc}\n")
            sys.exit(exc.exit_code)
        sys.stdout.buffer.write(body if body.endswith(b"\n") else body + b"\n")
        return
    from freshtoken.cli._app import cli

    cli(prog_name="freshtoken")


def _print_cached(min_ttl: float | None, fmt: str) -> bool:
    """Serve a plain `freshtoken token` from the store, without loading httpx and click."""
    from freshtoken._errors import OAuthError
    from freshtoken.broker._peek import cached_token
    from freshtoken.config._settings import Settings

    try:
        token = cached_token(Settings.load(), min_ttl)
    except (OAuthError, OSError):
        return False  # the full command reports it, with its hint and exit code
    if token is None:
        return False
    data = token_json(token.access_token, token.token_type, token.expires_at)
    sys.stdout.write(render(data, fmt) + "\n")
    return True


def token_json(access_token: str, token_type: str, expires_at: float) -> dict[str, object]:
    return {
        "access_token": access_token,
        "token_type": token_type,
        "expires_in": int(expires_at - time.time()),
        "expires_at": expires_at,
    }
