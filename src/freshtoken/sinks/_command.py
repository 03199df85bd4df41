"""`command:PROGRAM ARGS`: a program of yours stores the refresh token (`vault kv put`, a cloud
secret manager's CLI); it gets the token on standard input, never in its arguments. On POSIX
its standard input and error are a socket, not a pipe: no other process of the user can open
it again through /proc/<pid>/fd and read the token there (see _handover.py)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from typing import IO, NoReturn

from freshtoken._clock import Clock
from freshtoken._errors import ConfigurationError, SinkError
from freshtoken._handover import without_injection
from freshtoken._log import redact
from freshtoken._platform import kill_session
from freshtoken.config._options import secret_variables
from freshtoken.sinks._base import RefreshTokenSink, SinkOptions

_STDERR_SHOWN = 300  # characters of the program's stderr in an error message
#: Bytes of the program's stderr kept (its end): the rest is read and dropped, so that a program
#: writing without end costs neither memory nor time past the deadline.
STDERR_KEPT = 64 * 1024


def open_url(url: str, options: SinkOptions) -> RefreshTokenSink:
    try:
        argv = shlex.split(url.removeprefix("command:"))
    except ValueError as exc:
        argv, problem = [], str(exc)
    else:
        problem = "no program named"
    if not argv:
        raise ConfigurationError(
            f"FRESHTOKEN_REFRESH_TOKEN_SINK names no command to run ({problem})",
            hint="Write it as command:PROGRAM ARGS, e.g. command:vault kv put secret/ci "
            "refresh_token=-  (split as a shell would, but run without one).",
        )
    # The program needs its own credentials, not freshtoken's; and no code of the job's
    # choosing (PYTHONPATH, PYTHONSTARTUP: a program in Python) runs with the token.
    env = without_injection(os.environ if options.environ is None else options.environ)
    for name in secret_variables():
        env.pop(name, None)
    return CommandSink(argv, env, options.clock)


class CommandSink:
    """Runs the program with the token (and a newline) on standard input, in a session of its
    own (a Ctrl-C meant for the build does not cut a write short), killed at the deadline. A
    non-zero exit is a failure; its output is never shown, its stderr only with every known
    secret (the token included) masked."""

    def __init__(self, argv: list[str], env: dict[str, str], clock: Clock) -> None:
        self.argv = argv
        self.env = env
        self.clock = clock

    @property
    def name(self) -> str:
        return f"command:{self.argv[0]}"

    def __repr__(self) -> str:
        return f"CommandSink({self.argv[0]!r})"

    def prepare(self, deadline: float) -> None:
        if shutil.which(self.argv[0], path=self.env.get("PATH")) is None:
            raise ConfigurationError(
                f"the refresh-token sink's program {self.argv[0]!r} was not found or is not "
                "executable",
                hint="Install it, or name it by its full path in FRESHTOKEN_REFRESH_TOKEN_SINK.",
            )

    def write(self, token: str, deadline: float) -> None:
        self.prepare(deadline)
        remaining = max(deadline - self.clock.monotonic(), 0.0)
        data = (token + "\n").encode()
        if sys.platform == "win32":  # no /proc there; no socket as standard input either
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=self.env,
            )
            tail = bytearray()
            assert process.stdin is not None
            assert process.stderr is not None
            reader = threading.Thread(target=_drain, args=(process.stderr, tail), daemon=True)
            reader.start()
            with contextlib.suppress(OSError):  # a program that reads nothing: its exit tells
                process.stdin.write(data)
                process.stdin.close()
            try:
                process.wait(remaining)
            except subprocess.TimeoutExpired:
                self._killed(process, remaining)
            reader.join(max(deadline - self.clock.monotonic(), 0.1))
            err = bytes(tail)
        else:
            ours, theirs = socket.socketpair()  # /proc cannot reopen a socket (_handover.py)
            with ours:
                with theirs:
                    process = subprocess.Popen(
                        self.argv,
                        stdin=theirs.fileno(),
                        stdout=subprocess.DEVNULL,
                        stderr=theirs.fileno(),
                        env=self.env,
                        start_new_session=True,
                    )
                try:
                    err = _exchange(ours, data, self.clock.monotonic() + remaining, self.clock)
                    process.wait(max(deadline - self.clock.monotonic(), 0.0))
                except (TimeoutError, subprocess.TimeoutExpired):
                    self._killed(process, remaining)
        if process.returncode != 0:
            said = err.decode("utf-8", "replace").replace(token, "***")
            said = " ".join(redact(said).split())[-_STDERR_SHOWN:]
            raise SinkError(
                f"the refresh-token sink {self.name} exited with code {process.returncode}"
                + (f": {said}" if said else ""),
                hint="Run the program by hand to see why (it reads the token on standard "
                "input); the new token is kept in the store and written by the next call.",
            )

    def _killed(self, process: subprocess.Popen[bytes], remaining: float) -> NoReturn:
        with contextlib.suppress(ProcessLookupError):
            kill_session(process.pid)
        process.wait()
        raise SinkError(
            f"the refresh-token sink {self.name} did not finish within {remaining:.1f}s (killed)",
            hint="Check what the program waits for (a prompt, the network); the new token "
            "is kept in the store and written by the next call.",
        ) from None

    def read(self) -> str | None:
        return None  # a write-only place, as far as freshtoken knows

    def last_written(self, deadline: float) -> float | None:
        return None


def _exchange(sock: socket.socket, data: bytes, deadline: float, clock: Clock) -> bytes:
    """Send `data` on `sock`, end what is sent, and return what comes back (the program's
    stderr) until the other end is closed; TimeoutError at `deadline`."""
    with contextlib.suppress(OSError):  # a program that reads nothing: its exit code tells
        sock.settimeout(max(deadline - clock.monotonic(), 0.001))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    said = bytearray()
    while True:
        sock.settimeout(max(deadline - clock.monotonic(), 0.001))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise
        except OSError:
            break  # reset by a program that ended without reading
        if not chunk:
            break
        keep(said, chunk)
    return bytes(said)


def keep(said: bytearray, chunk: bytes) -> None:
    """Add `chunk` to `said`, keeping only its last STDERR_KEPT bytes."""
    said += chunk
    if len(said) > STDERR_KEPT:
        del said[:-STDERR_KEPT]


def _drain(stream: IO[bytes], said: bytearray) -> None:
    """Read `stream` to its end into `said` (bounded by `keep`)."""
    with stream:
        while chunk := stream.read(65536):
            keep(said, chunk)
