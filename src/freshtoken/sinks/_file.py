"""`file:///path`: the refresh token in a private file, replaced atomically (for self-hosted
runners with a disk that outlives the job)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

from freshtoken._errors import ConfigurationError, SinkError
from freshtoken._log import remember_secret
from freshtoken._platform import (
    PRIVATE_OPEN_FLAGS,
    fsync_directory,
    open_no_wait,
    owned_by_user,
    shared_bits,
)
from freshtoken.sinks._base import RefreshTokenSink, SinkOptions


def open_url(url: str, options: SinkOptions) -> RefreshTokenSink:
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc not in ("", "localhost") or not path.startswith("/") or "\0" in path:
        raise ConfigurationError(
            f"FRESHTOKEN_REFRESH_TOKEN_SINK must name an absolute local path: {url!r}",
            hint="Write it as file:///absolute/path/refresh_token (three slashes).",
        )
    return FileSink(Path(path))


class FileSink:
    """Written 0600 under a temporary name in the same directory, synced, renamed over the old
    file and the directory synced: a reader (or a crash) sees the old token or the new one,
    never a torn one. A symlink or another user's file at the path is refused, never followed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def name(self) -> str:
        return f"file://{self.path}"

    def __repr__(self) -> str:
        return f"FileSink({str(self.path)!r})"

    def _refuse(self, why: str, hint: str) -> ConfigurationError:
        return ConfigurationError(f"the refresh-token sink {self.name} {why}", hint=hint)

    def _check_directory(self) -> None:
        folder = self.path.parent
        try:
            info = folder.stat()
        except OSError as exc:
            raise self._refuse(
                f"is in a directory that cannot be used ({exc.strerror})",
                f"Create {folder} (mode 700), or name another file.",
            ) from None
        others_write = shared_bits(info.st_mode) & (stat.S_IWGRP | stat.S_IWOTH)
        if not owned_by_user(info.st_uid, or_root=True) or others_write:
            raise self._refuse(
                f"is in a directory other users may write to (mode {stat.S_IMODE(info.st_mode):o})",
                f"Another user could plant a file there. Use a directory of your own (chmod 700 "
                f"{folder}).",
            )

    def _check_target(self) -> None:
        """The file now at the path, if any, must be a regular file of this user."""
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode):
            raise self._refuse(
                "is a symbolic link",
                f"Someone may have planted it to redirect the token: remove {self.path}.",
            )
        if not stat.S_ISREG(info.st_mode) or not owned_by_user(info.st_uid):
            raise self._refuse(
                "is not a regular file of this user",
                f"Remove what is at {self.path}, or name another file.",
            )

    def prepare(self, deadline: float) -> None:
        self._check_directory()
        self._check_target()

    def write(self, token: str, deadline: float) -> None:
        self._check_directory()
        self._check_target()
        folder = self.path.parent
        tmp = folder / f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | PRIVATE_OPEN_FLAGS, 0o600)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(token + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            fsync_directory(folder)
        except OSError as exc:
            raise SinkError(
                f"could not write the new refresh token to {self.name}: {exc.strerror}",
                hint=f"Check that {folder} is writable and not full; the new token is kept in "
                "the store and written by the next call.",
            ) from None

    def read(self) -> str | None:
        try:
            fd = open_no_wait(self.path, os.O_RDONLY | PRIVATE_OPEN_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._refuse(
                    "is a symbolic link",
                    f"Someone may have planted it to redirect the token: remove {self.path}.",
                ) from None
            raise self._refuse(
                f"cannot be read ({exc.strerror})", f"Check {self.path} and its permissions."
            ) from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or not owned_by_user(info.st_uid):
                raise self._refuse(
                    "is not a regular file of this user",
                    f"Remove what is at {self.path}, or name another file.",
                )
            if shared_bits(info.st_mode):
                raise self._refuse(
                    f"is readable by other users (mode {stat.S_IMODE(info.st_mode):o})",
                    f"Run: chmod 600 {self.path}",
                )
            text = handle.read().decode("utf-8", "replace").strip()
        if text:
            remember_secret(text)
        return text or None

    def last_written(self, deadline: float) -> float | None:
        try:
            return os.lstat(self.path).st_mtime
        except FileNotFoundError:
            return None
