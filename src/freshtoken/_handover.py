"""Handing secrets to a process freshtoken starts, out of reach of other processes of the user.

A pipe or a file given to a child can be opened again by any process of the same user through
`/proc/<pid>/fd/N` (for as long as the child is dumpable, and as root always), and whatever is
buffered in it read from there; its environment and arguments are in `/proc/<pid>/environ` and
`cmdline`. A socket cannot be opened through `/proc` (ENXIO), so secrets travel on one end of a
socket pair only: the child reads them after it has made itself non-dumpable (`receive`), and
the spender asks for them only then (broker/_refresh.py, `SpendProcess`).

Every Python process that holds secrets runs isolated (`python -I`: no PYTHONPATH, no
PYTHONSTARTUP, no user site, not the working directory on sys.path), and a program that is not
freshtoken's (a `command:` sink) gets an environment without Python's code-injecting variables.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from freshtoken._platform import PYTHON_INJECTING, undumpable

#: What to execute to start this interpreter again: on Linux /proc/self/exe (the very binary,
#: no path to search, reachable where a directory on sys.executable's path is not); argv[0]
#: stays sys.executable, which keeps a virtual environment.
SELF_EXE = "/proc/self/exe" if sys.platform == "linux" else None


def without_injection(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without the variables of PYTHON_INJECTING."""
    return {k: v for k, v in environ.items() if k not in PYTHON_INJECTING}


def receive(fd: int) -> bytes:
    """In the child: become non-dumpable, then read the socket `fd` to its end and close it."""
    undumpable()
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
