"""Keeping the secrets of the long-lived commands (`serve`, `exec`) out of reach of other
processes of the same user.

Linux shows a process's *initial* environment in /proc/<pid>/environ for its whole life, to
every process of the same user (an `exec` child, a later CI step that knows the pid): deleting
a variable from `os.environ` changes nothing there. So these commands execute themselves again
(same pid, same arguments), isolated (`python -I`: a PYTHONPATH into a checkout, a
PYTHONSTARTUP or the user site cannot bring code into a process that holds secrets) and with
every secret variable removed from the environment; the values come back on a socket inherited
across the exec (a pipe could be opened again through /proc/<pid>/fd by any process of the
user; a socket cannot), read only after the process made itself non-dumpable (prctl
PR_SET_DUMPABLE 0): no core dump, and /proc/<pid>/environ, mem and the like are closed to other
processes of the user that lack CAP_SYS_PTRACE, and ptrace with them.

Started without -I (the console script), the first run imports nothing more before it executes
itself isolated, secrets still in the environment; the isolated run then hides them. Every other
command runs again isolated too when the environment could bring code in (PYTHONPATH,
PYTHONSTARTUP and the like: _platform.PYTHON_INJECTING), before it reads a setting.

What stays: the environment of the process that started freshtoken (a shell, a CI step) still
holds the secret, and until the last re-exec so does this one's initial environment. Code that
runs before freshtoken's own (a `sitecustomize` on PYTHONPATH, for the console script) runs
with it: where the environment is not yours, start `python -I -m freshtoken` (the action does).
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


def reexec_isolated(argv: list[str]) -> None:
    """For `serve` and `exec` on Linux: execute this command again (same pid, same arguments)
    isolated (`python -I`) and without the secret variables in its environment, which come back
    on an inherited socket (does not return). Return at once when there is nothing to do."""
    if sys.platform != "linux":
        return
    if not argv or sys.orig_argv[-len(argv) :] != argv:
        return  # called in-process with arguments of its own: running again would not repeat it
    long_lived = _command(argv) in _COMMANDS
    again = [sys.executable, "-I", "-m", "freshtoken", *argv]
    if not sys.flags.isolated:
        # Started without -I (the console script, `python -m`): a module on PYTHONPATH, in the
        # working directory or the user site would run with the secrets. Import nothing more
        # here; the isolated run of a long-lived command takes the secrets out of its
        # environment.
        from freshtoken._platform import only_on_pythonpath

        if only_on_pythonpath():
            if long_lived:
                _warn("only PYTHONPATH finds freshtoken: install it to run isolated")
            return
        _exec(again, {k: v for k, v in os.environ.items() if k != _FD})
        return
    if not long_lived or _FD in os.environ:
        return  # the isolated run without the secrets: they wait on the socket
    found = _secrets(os.environ)
    if not found:
        return
    import json
    import socket

    ours, theirs = socket.socketpair()  # /proc cannot reopen a socket (_handover.py)
    try:
        ours.setblocking(False)  # all of it fits the socket's buffer, or none is handed over
        ours.sendall(json.dumps(found).encode())
    except OSError:
        theirs.close()
        _warn("the secrets do not fit a socket's buffer")
        return
    finally:
        ours.close()  # the child reads to the end of what was sent
    os.set_inheritable(theirs.fileno(), True)
    env = {k: v for k, v in os.environ.items() if k not in found}
    env[_FD] = str(theirs.fileno())
    _exec(again, env)
    theirs.close()


def _exec(argv: list[str], env: dict[str, str]) -> None:
    """Replace this process with `argv` (this very interpreter, by /proc/self/exe: no path to
    search again; argv[0] keeps a virtual environment); return only when that failed."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve("/proc/self/exe", argv, env)  # noqa: S606
    except OSError as exc:
        _warn(exc.strerror or str(exc))


def _warn(why: str) -> None:
    from freshtoken._log import logger

    logger.warning(
        "could not run again isolated and without the secrets in the environment (%s); they "
        "stay in this process's initial environment, closed to other processes by "
        "non-dumpable",
        why,
    )


def take_secrets() -> dict[str, str]:
    """In the re-executed command: non-dumpable from now on, then the secret variables handed
    over on the socket."""
    import stat

    from freshtoken._handover import receive
    from freshtoken._platform import undumpable

    undumpable()
    fd = os.environ.pop(_FD, "")
    try:
        if not (fd.isdigit() and stat.S_ISSOCK(os.fstat(int(fd)).st_mode)):
            return {}  # not ours: only a socket is read
    except OSError:
        return {}
    import json

    found: dict[str, str] = json.loads(receive(int(fd)))
    return found
