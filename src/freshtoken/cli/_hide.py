"""Keeping the secrets of the long-lived commands (`serve`, `exec`) out of reach of other
processes of the same user.

Linux shows a process's *initial* environment in /proc/<pid>/environ for its whole life, to
every process of the same user (an `exec` child, a later CI step that knows the pid): deleting
a variable from `os.environ` changes nothing there. So these commands execute themselves again
(same pid, same arguments) with every secret variable removed from the environment, and take
the values back from a pipe inherited across the exec. Then they make themselves non-dumpable
(prctl PR_SET_DUMPABLE 0): no core dump, and /proc/<pid>/environ, mem and the like are closed to
other processes of the user that lack CAP_SYS_PTRACE, and ptrace with them.

What stays: the environment of the process that started freshtoken (a shell, a CI step) still
holds the secret, and during the first Python start-up (before the re-exec) so does this one's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

_FD = "FRESHTOKEN_SECRETS_FD"
_COMMANDS = frozenset({"serve", "exec"})
_GLOBAL_WITH_VALUE = frozenset({"--profile"})


def _command(argv: list[str]) -> str | None:
    """The command word of a `freshtoken` command line (after the global options)."""
    rest = iter(argv)
    for arg in rest:
        if arg in _GLOBAL_WITH_VALUE:
            next(rest, None)
        elif not arg.startswith("-"):
            return arg
    return None


def _secrets(environ: Mapping[str, str]) -> dict[str, str]:
    from freshtoken.config._options import secret_variables

    names = secret_variables()
    return {k: v for k, v in environ.items() if k in names}


def reexec_without_secrets(argv: list[str]) -> None:
    """For `serve` and `exec` on Linux, when secret variables are set: execute this command
    again without them in the environment (does not return). Otherwise return at once."""
    if sys.platform != "linux" or _FD in os.environ or _command(argv) not in _COMMANDS:
        return
    if not argv or sys.orig_argv[-len(argv) :] != argv:
        return  # called in-process with arguments of its own: running again would not repeat it
    import json

    found = _secrets(os.environ)
    payload = json.dumps(found).encode()
    if not found or not sys.executable or len(payload) > 60_000:  # a pipe holds 64 KiB
        return
    read, write = os.pipe()
    os.write(write, payload)
    os.close(write)
    os.set_inheritable(read, True)
    env = {k: v for k, v in os.environ.items() if k not in found}
    env[_FD] = str(read)
    sys.stdout.flush()
    sys.stderr.flush()
    # The same interpreter (by /proc/self/exe: no path to search again), the same arguments
    # (flags such as -I kept; argv[0] keeps a virtual environment), the same pid.
    try:
        os.execve("/proc/self/exe", [sys.executable, *sys.orig_argv[1:]], env)  # noqa: S606
    except OSError as exc:
        os.close(read)
        from freshtoken._log import logger

        logger.warning(
            "could not re-execute without the secrets in the environment (%s); they stay in "
            "this process's initial environment, closed to other processes by non-dumpable",
            exc.strerror,
        )


def take_secrets() -> dict[str, str]:
    """In the re-executed command: the secret variables handed over through the pipe."""
    fd = os.environ.pop(_FD, "")
    if not fd.isdigit():
        return {}
    chunks = []
    try:
        while chunk := os.read(int(fd), 65536):
            chunks.append(chunk)
    finally:
        os.close(int(fd))
    import json

    found: dict[str, str] = json.loads(b"".join(chunks))
    return found
