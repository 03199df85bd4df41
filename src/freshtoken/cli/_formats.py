"""How a token is printed: raw, json, header, env, dotenv (github is written by `token` itself).

Shared by `freshtoken token` (cli/_token.py) and the local endpoint's `format=`
query, so that both print the same bytes. Standard library only, and nothing heavy: the
cache-hit path imports this module."""

from __future__ import annotations

import os
import sys
import time

FORMATS = ("raw", "json", "header", "env", "dotenv", "github")
#: What the local endpoint and `freshtoken token` print as text (json is JSON, github is token's).
TEXT_FORMATS = ("raw", "header", "env", "dotenv")
TOKEN_VARIABLE = "FRESHTOKEN_ACCESS_TOKEN"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_SAFE = frozenset(_ALNUM + "@%+=:,./-_")


def shell_quote(value: str) -> str:
    """`value` as one POSIX shell word (what shlex.quote gives, without importing shlex/re)."""
    if value and all(c in _SAFE for c in value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def export_line(name: str, value: str) -> str:
    """`export NAME=value` that `eval` and `.` read back exactly."""
    return f"export {name}={shell_quote(value)}"


def render(data: dict[str, object], fmt: str) -> str:
    """The token as `fmt` prints it (github is handled by the full command line)."""
    access = str(data["access_token"])
    if fmt == "json":
        import json

        keys = ("access_token", "token_type", "expires_in", "expires_at")
        return json.dumps({k: data[k] for k in keys})
    if fmt == "header":
        return f"Authorization: Bearer {access}"
    if fmt == "env":  # for eval "$(freshtoken token --format env)"
        return export_line(TOKEN_VARIABLE, access)
    if fmt == "dotenv":  # for a .env file: a shell word, which `.`, dotenv loaders and compose
        # read back exactly (a b64token needs quotes only for `~`; docker --env-file would keep
        # them, so such a token is better taken with --format env)
        return f"{TOKEN_VARIABLE}={shell_quote(access)}"
    return access


def on_github() -> bool:
    """Inside a GitHub Actions step (whose runner reads workflow commands from the output)."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def mask_on_github(secret: str) -> None:
    """In a GitHub Actions step, ask the runner to mask `secret` in the job's log before it is
    printed: a step that captures it (`TOKEN=$(freshtoken token)`) and later echoes it, or runs
    with `set -x`, shows `***`. On standard error, which the runner also reads for workflow
    commands, so that standard output stays the value alone.

    The runner reads the two streams separately, so a value written at once on standard output
    could reach it first: unless both streams are one file, this waits (at most
    MASK_WAIT seconds) until the reader of standard error has taken the line. Only a value
    oauth/_response.py accepted gets here: it holds no line break that could end the command."""
    if not on_github():
        return
    sys.stderr.write(f"::add-mask::{secret}\n")
    sys.stderr.flush()
    _until_read(sys.stderr.fileno(), sys.stdout.fileno())


MASK_WAIT = 5.0


def _until_read(err: int, out: int) -> None:
    """Return once what was written on pipe `err` has been read, unless `out` is the same
    file (one stream keeps its order) or `err` is no pipe (a file or terminal has no reader)."""
    import stat

    try:
        mine, other = os.fstat(err), os.fstat(out)
    except OSError:
        return
    if (mine.st_dev, mine.st_ino) == (other.st_dev, other.st_ino) or not stat.S_ISFIFO(
        mine.st_mode
    ):
        return
    if sys.platform == "win32":
        return
    import array
    import fcntl
    import termios

    waiting = array.array("i", [0])
    deadline = time.monotonic() + MASK_WAIT
    while time.monotonic() < deadline:
        try:
            fcntl.ioctl(err, termios.FIONREAD, waiting)
        except OSError:
            return
        if waiting[0] == 0:
            return
        time.sleep(0.002)


def token_json(access_token: str, token_type: str, expires_at: float) -> dict[str, object]:
    return {
        "access_token": access_token,
        "token_type": token_type,
        "expires_in": int(expires_at - time.time()),
        "expires_at": expires_at,
    }


def failure(
    error: str, message: str, hint: str, exit_code: int, json_errors: bool = False
) -> SystemExit:
    """Say why the command failed on stderr (one line and a hint, or one JSON object with
    --format json); the caller raises what this returns (exit status `exit_code`)."""
    if json_errors:
        sys.stderr.write(error_json(error, message, hint, exit_code) + "\n")
    else:
        sys.stderr.write(f"freshtoken: {message}" + (f"\nhint: {hint}" if hint else "") + "\n")
    sys.stderr.flush()
    return SystemExit(exit_code)


def error_json(error: str, message: str, hint: str, exit_code: int) -> str:
    """One failure as the JSON object `--format json` writes to stderr."""
    import json

    return json.dumps({"error": error, "message": message, "hint": hint, "exit_code": exit_code})
