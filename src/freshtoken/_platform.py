"""What differs between POSIX systems (Linux, macOS) and Windows, in one place.

Windows has no file owner uid, no `O_NOFOLLOW`, no `flock` and (in Python) no Unix sockets;
there, file privacy is left to the user profile's ACLs, locks use `msvcrt`, and the local
endpoint uses loopback TCP only. Linux is what the tests run on; the rest is type-checked.
The store's files are checked here too (`open_private`): what makes a file private is what
differs.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

TYPE_CHECKING = False  # typing's, without importing typing (a step asking the endpoint does not)
if TYPE_CHECKING:
    from freshtoken._errors import UnsafeStoreError

#: Flags for opening a store file: never through a symbolic link, never inherited.
if sys.platform == "win32":
    PRIVATE_OPEN_FLAGS = os.O_NOINHERIT
else:
    PRIVATE_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC
#: Variables that make a Python program run code of the job's choosing (or read it from
#: elsewhere than its installation): dropped from what a program receiving secrets sees, and,
#: set, a reason for freshtoken to run itself again isolated (cli/_main.py).
PYTHON_INJECTING = frozenset(
    {
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONINSPECT",
        "PYTHONBREAKPOINT",
        "PYTHONHOME",
        "PYTHONUSERBASE",
    }
)
#: Whether Unix sockets (`serve --socket`, `unix:` endpoint URLs) are available.
UNIX_SOCKETS = sys.platform != "win32"


def open_no_wait(path: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
    """`os.open` that returns at once where a FIFO (planted where a file was expected) would
    block it until a writer came: opened non-blocking, then made blocking again. What it is
    stays for the caller to check on the descriptor."""
    if sys.platform == "win32":  # no FIFOs in the file system
        return os.open(path, flags, mode)
    fd = os.open(path, flags | os.O_NONBLOCK, mode)
    os.set_blocking(fd, True)
    return fd


#: A path as the store's functions take it (os.path's calls: pathlib costs a store hit 6 M).
StrPath = str | os.PathLike[str]


def _unsafe(message: str, hint: str) -> UnsafeStoreError:
    # Imported when refusing: _errors imports typing, which a step asking the endpoint skips.
    from freshtoken._errors import UnsafeStoreError

    return UnsafeStoreError(message, hint=hint)


def check_private(path: StrPath, what: str, info: os.stat_result | None = None) -> None:
    """Refuse a file that is not a regular file of this user, or that others than its owner
    can read or write."""
    info = info if info is not None else os.stat(path)
    mode = info.st_mode
    if not stat.S_ISREG(mode) or not owned_by_user(info.st_uid):
        raise _unsafe(
            f"the {what} {path} is not a regular file of this user",
            f"Something else is at {path}: remove it, or choose another place with "
            "FRESHTOKEN_STORE.",
        )
    if shared_bits(mode):
        raise _unsafe(
            f"the {what} {path} is accessible to other users (mode {stat.S_IMODE(mode):o})",
            f"Run: chmod 600 {path}  (freshtoken refuses to use a token store others can "
            "read), or choose another place with FRESHTOKEN_STORE.",
        )


def check_private_dir(directory: StrPath) -> None:
    """Refuse a store or lock directory that is not this user's, or that others may write
    to: whoever can add entries there can plant symlinks and files in freshtoken's place."""
    info = os.stat(directory)
    mine = owned_by_user(info.st_uid)
    if not mine or shared_bits(info.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
        owner = "this user" if mine else f"uid {info.st_uid}"
        raise _unsafe(
            f"the store directory {directory} is not private (owner {owner}, mode "
            f"{stat.S_IMODE(info.st_mode):o})",
            f"Another user could plant files there. Use a directory of your own that only "
            f"you can write to (chmod 700 {directory}), or choose another place with "
            "FRESHTOKEN_STORE=sqlite:///path.",
        )


def _planted_link(path: StrPath, what: str) -> UnsafeStoreError:
    return _unsafe(
        f"the {what} {path} is a symbolic link",
        f"Someone may have planted it to redirect writes: remove {path}, or choose "
        "another place with FRESHTOKEN_STORE.",
    )


def check_private_path(path: StrPath, what: str) -> bool:
    """Check the file at `path` as `open_private` would, without opening it (closing any
    descriptor of a file drops every POSIX lock this process holds on it, SQLite's too);
    False when there is none."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode):
        raise _planted_link(path, what)
    check_private(path, what, info)
    return True


def open_private(path: StrPath, flags: int, what: str) -> int:
    """Open (or create, 0600) a file of the store without following a symlink, and check
    that it is a private regular file of this user before anything is read or written."""
    try:
        fd = open_no_wait(path, flags | PRIVATE_OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _planted_link(path, what) from None
        raise
    try:
        check_private(path, what, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def only_on_pythonpath() -> bool:
    """Whether freshtoken is imported from a PYTHONPATH entry (a checkout's src), which an
    isolated interpreter (`python -I`) ignores: it would not find freshtoken."""
    home = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return any(p and os.path.abspath(p) == home for p in path)


def owned_by_user(uid: int, *, or_root: bool = False) -> bool:
    """Whether a file with owner `uid` belongs to this user (or root, with `or_root`).

    Windows reports no owner (st_uid is 0): always True there."""
    if sys.platform == "win32":
        return True
    return uid == os.geteuid() or (or_root and uid == 0)


def shared_bits(mode: int) -> int:
    """The group and other permission bits of a file mode: 0 on Windows, where a file's ACL
    (by default: the user profile's, closed to other users) decides instead."""
    if sys.platform == "win32":
        return 0
    return mode & 0o077


def user_dir(kind: str) -> str:
    """freshtoken's per-user `kind` ("config" or "cache") directory. On Linux and the BSDs the
    XDG Base Directory Specification's: $XDG_CONFIG_HOME or ~/.config, $XDG_CACHE_HOME or
    ~/.cache (a relative value is ignored, as the specification says), which is what
    platformdirs answers there (tests/test_store.py compares them); elsewhere (macOS, Windows,
    Android) platformdirs'. Importing platformdirs costs a command-line call 27 M instructions,
    more than its SQLite."""
    if sys.platform in ("win32", "darwin") or "ANDROID_DATA" in os.environ:
        import platformdirs

        found: str = getattr(platformdirs, f"user_{kind}_dir")("freshtoken")
        return found
    base = os.environ.get(f"XDG_{kind.upper()}_HOME", "")
    if not os.path.isabs(base):
        base = os.path.expanduser(f"~/.{kind}")
    return os.path.join(base, "freshtoken")


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on the open file `fd` without waiting; False when held."""
    if sys.platform == "win32":
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def unlock(fd: int) -> None:
    """Release the lock `try_lock` took on `fd`."""
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def fsync_directory(folder: str | os.PathLike[str]) -> None:
    """Make a rename in `folder` durable (POSIX); Windows has no directory handles for it."""
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def kill_session(pid: int) -> None:
    """Kill the process `pid` started with `start_new_session=True`, and its children (POSIX:
    the whole process group)."""
    import signal  # here: its enums cost every command-line call 3 M instructions

    if sys.platform == "win32":
        os.kill(pid, signal.SIGTERM)  # TerminateProcess
        return
    os.killpg(pid, signal.SIGKILL)


def write_at_start(fd: int, data: bytes) -> None:
    """Replace the content of the open file `fd` with `data`."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)


def undumpable() -> bool:
    """Make this process non-dumpable where the OS allows it (Linux: prctl PR_SET_DUMPABLE 0):
    no core dump, and its memory and environment closed to other processes of this user.
    True when done."""
    if sys.platform != "linux":
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(4, 0, 0, 0, 0)) == 0  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        return False
