"""The embedded default store: one SQLite file shared by every process on the machine.

Entries are AES-GCM sealed, with FRESHTOKEN_STORE_KEY or the key file beside the store. The
single-flight lock is `flock` on a per-key file: the kernel frees it the instant its holder
dies, so a SIGKILLed holder blocks no one.
"""

from __future__ import annotations

import binascii
import contextlib
import os
import sqlite3
import time
from _thread import allocate_lock as Lock  # threading.Lock; threading costs a hit 4 M
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote

from freshtoken._errors import ConfigurationError, StoreError, UnsafeStoreError
from freshtoken._log import logger, remember_secret
from freshtoken._platform import (
    PRIVATE_OPEN_FLAGS,
    StrPath,
    check_private_dir,
    check_private_path,
    open_private,
    try_lock,
    unlock,
    write_at_start,
)
from freshtoken._secret import Secret
from freshtoken._urls import split_url
from freshtoken.stores._base import StoreOptions, TokenStore, parse_key
from freshtoken.stores._entry import Entry, Envelope, Ledger
from freshtoken.stores._failopen import FailOpenStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    blob BLOB NOT NULL,
    updated REAL NOT NULL
)
"""


def _folder(path: str) -> str:
    """`path`'s directory, as pathlib's `parent` names it ("." for a bare file name)."""
    return os.path.dirname(path) or "."


def _store_error(action: str, path: str, exc: BaseException) -> StoreError:
    reason = getattr(exc, "strerror", None) or str(exc)
    lowered = reason.lower()
    if "full" in lowered or "no space" in lowered or "too large" in lowered:
        hint = (
            f"The disk holding {_folder(path)} is full. Free space, or point "
            "FRESHTOKEN_STORE at another place (sqlite:///path) or memory://."
        )
    elif "readonly" in lowered or "read-only" in lowered or "permission" in lowered:
        hint = (
            f"{_folder(path)} is not writable by this user. Point FRESHTOKEN_STORE at a "
            "writable place (sqlite:///path) or use memory://."
        )
    else:
        hint = "Check the store's path and disk, or choose another with FRESHTOKEN_STORE."
    return StoreError(f"cannot {action} the token store {path}: {reason}", hint=hint)


def _wal_frames(path: str) -> bool:
    """True when the -wal file holds writes the main file lacks. Immutable would ignore them
    and read an older entry (a spent refresh token); a plain read-only connection reads them,
    or fails, and a failure takes the caller to a store in memory, never to the older copy."""
    try:
        return os.stat(f"{path}-wal").st_size > 0
    except FileNotFoundError:
        return False
    except OSError:
        return True  # unknown: the plain read-only connection reads it or fails


def _corrupt(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


class SQLiteStore:
    """`sqlite:///path`: WAL mode, file 0600 in a private directory, sealed entries."""

    def __init__(
        self, path: StrPath, key: Secret | None = None, *, read_only: bool = False
    ) -> None:
        #: The file, a string: os.path's calls throughout (pathlib costs a store hit 6 M).
        self.path = path = os.fspath(path)
        #: Opened to be read only, as it is on a full or read-only disk (no lock, no write).
        self.read_only = read_only
        self._lock_dir = path + ".locks"
        self._prepare_dir(_folder(path))
        self._prepare_dir(self._lock_dir)
        raw = parse_key(key, "FRESHTOKEN_STORE_KEY") if key else key_file(path + ".key")
        self._envelope = Envelope(raw)
        self.pepper = self._envelope.pepper
        self._create_private(path)
        self._guard = Lock()
        self._pid = os.getpid()
        self._db = self._connect()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    @property
    def ledger(self) -> Ledger | None:
        """What this host saw of the store's entries (`Ledger`)."""
        return self._envelope.ledger

    @staticmethod
    def _prepare_dir(directory: str) -> None:
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            inside = os.path.join(directory, "-")
            raise _store_error("create the directory of", inside, exc) from None
        check_private_dir(directory)

    def _create_private(self, path: str) -> None:
        # Created 0600 before SQLite opens it (never through a symlink, and checked once open);
        # SQLite gives -wal and -shm the same mode. A file that exists is checked without
        # opening it: another store of this process may have it open, and closing a
        # descriptor would drop that connection's locks.
        if check_private_path(path, "token store"):
            return
        try:
            fd = open_private(path, os.O_RDWR | os.O_CREAT, "token store")
        except OSError as exc:
            raise _store_error("create", path, exc) from None
        os.close(fd)

    def _connect(self) -> sqlite3.Connection:
        try:
            return self._open()
        except sqlite3.DatabaseError as exc:
            if not _corrupt(exc):
                raise _store_error("open", self.path, exc) from None
        self._set_aside()
        try:
            return self._open()
        except sqlite3.Error as exc:
            raise _store_error("open", self.path, exc) from None

    def _open(self) -> sqlite3.Connection:
        if self.read_only:
            from pathlib import Path  # here: only a store on a full or read-only disk

            uri = Path(self.path).as_uri() + "?mode=ro"
            if not _wal_frames(self.path):  # no -shm to create, which a full disk refuses
                uri += "&immutable=1"
            return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a rotated refresh token survives power loss, not only a killed process.
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _set_aside(self) -> None:
        """The store is a cache: a file SQLite cannot read is moved aside (for a post-mortem)
        and a new one created; the tokens it held are minted again."""
        aside = f"{self.path}.corrupt-{int(time.time())}"
        logger.warning(
            "the token store %s is not a readable SQLite database; moved it to %s and started "
            "a new one (cached tokens are minted again)",
            self.path,
            aside,
        )
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        self._create_private(self.path)

    def _recover(self, exc: sqlite3.Error) -> bool:
        """After a failed statement: True when the file was corrupt and is now a new one."""
        if self.read_only or not isinstance(exc, sqlite3.DatabaseError) or not _corrupt(exc):
            return False
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._set_aside()
        self._db = self._connect()
        return True

    def _conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # a connection must not cross fork()
            self._pid = os.getpid()
            self._db = self._connect()
        return self._db

    def load(self, key: str) -> Entry | None:
        with self._guard:
            try:
                row = (
                    self._conn()
                    .execute("SELECT version, blob FROM entries WHERE key = ?", (key,))
                    .fetchone()
                )
            except sqlite3.Error as exc:
                if self._recover(exc):
                    return None
                raise _store_error("read", self.path, exc) from None
        if row is None:
            return None
        entry = self._envelope.open_entry(key, row[1], int(row[0]))
        if entry is None:
            self._drop(key, int(row[0]))
        return entry

    def _drop(self, key: str, version: int) -> None:
        with self._guard, contextlib.suppress(sqlite3.Error):
            self._conn().execute(
                "DELETE FROM entries WHERE key = ? AND version = ?", (key, version)
            )

    def _unwritable(self) -> StoreError:
        return StoreError(
            f"the token store {self.path} cannot be written (a full or read-only disk); it "
            "is read, and a token minted now is kept in this process only",
            hint="Free space on its disk, or choose another place with FRESHTOKEN_STORE.",
        )

    def save(self, key: str, entry: Entry, expected: int) -> int | None:
        if self.read_only:
            raise self._unwritable()
        blob, stored = self._envelope.seal_entry(key, entry)
        # Random versions: a key deleted and created again never repeats one (no ABA).
        import secrets  # here: a hit (load) needs no random module

        version = secrets.randbits(52) or 1
        now = time.time()
        with self._guard:
            try:
                db = self._conn()
                if expected == 0:
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO entries (key, version, blob, updated) "
                        "VALUES (?, ?, ?, ?)",
                        (key, version, blob, now),
                    )
                else:
                    cursor = db.execute(
                        "UPDATE entries SET version = ?, blob = ?, updated = ? "
                        "WHERE key = ? AND version = ?",
                        (version, blob, now, key, expected),
                    )
            except sqlite3.Error as exc:
                if self._recover(exc):
                    return None  # the entry it replaced is gone with the old file
                raise _store_error("write", self.path, exc) from None
        if cursor.rowcount != 1:
            return None
        stored()
        return version

    def delete(self, key: str) -> None:
        if self.read_only:
            raise self._unwritable()
        with self._guard:
            try:
                self._conn().execute("DELETE FROM entries WHERE key = ?", (key,))
            except sqlite3.Error as exc:
                raise _store_error("write", self.path, exc) from None
        if self.ledger is not None:
            self.ledger.forget(key)

    @contextmanager
    def lock(self, key: str, timeout: float) -> Iterator[bool]:
        if self.read_only:
            raise self._unwritable()
        path = os.path.join(self._lock_dir, f"{key}.lock")
        try:
            fd = open_private(path, os.O_RDWR | os.O_CREAT, "lock file")
        except OSError as exc:
            raise _store_error("lock", path, exc) from None
        held = False
        try:
            deadline = time.monotonic() + timeout
            pause = 0.001
            while True:
                if try_lock(fd):
                    held = True
                    break
                if time.monotonic() >= deadline:
                    break
                time.sleep(pause)  # polling: flock has no timed wait
                pause = min(pause * 2, 0.02)
            if held:  # who holds it, for `freshtoken status` and for diagnosis
                write_at_start(fd, str(os.getpid()).encode())
            yield held
        finally:
            if held:
                unlock(fd)
            os.close(fd)

    def owns_lock(self, key: str) -> bool:
        return True  # flock is held for as long as this process lives

    def list_keys(self) -> list[str]:
        with self._guard:
            return [r[0] for r in self._conn().execute("SELECT key FROM entries")]

    def close(self) -> None:
        with self._guard:
            self._db.close()


def key_file(path: StrPath) -> bytes:
    """The key stored in `path` (0600), created on first use.

    Created under a temporary name and linked into place, so that concurrent first uses agree
    on one key and no reader ever sees a half-written file.
    """
    if not os.path.lexists(path):
        import secrets  # here: only a first use creates a key

        folder, name = os.path.split(path)
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | PRIVATE_OPEN_FLAGS, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(binascii.b2a_base64(secrets.token_bytes(32), newline=False))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        except OSError as exc:
            raise StoreError(
                f"cannot create the store key file {path}: {exc.strerror}",
                hint="Make the directory writable, or set FRESHTOKEN_STORE_KEY.",
            ) from None
    try:
        fd = open_private(path, os.O_RDONLY, "store key file")
    except OSError as exc:
        raise StoreError(
            f"cannot open the store key file {path}: {exc.strerror}",
            hint="Remove what is at that path, or set FRESHTOKEN_STORE_KEY.",
        ) from None
    with os.fdopen(fd, "rb") as handle:
        text = handle.read().decode("ascii", "replace").strip()
    remember_secret(text)
    return parse_key(Secret(text), os.fspath(path))


def open_url(url: str, options: StoreOptions) -> TokenStore:
    """`sqlite:///absolute/path`."""
    parts = split_url(url, "FRESHTOKEN_STORE")
    path = unquote(parts.path)
    if parts.netloc or "\x00" in path:
        # sqlite://relative/x.db would put "relative" in the host part and write /x.db.
        raise ConfigurationError(
            f"FRESHTOKEN_STORE {url!r} does not name an absolute file path",
            hint="Use sqlite:///absolute/path/tokens.db (three slashes), or leave it unset for "
            "the default place.",
        )
    return open_file(path, options)


def open_file(path: str, options: StoreOptions) -> TokenStore:
    """The store in the file `path` (`open_url`'s, and the default store's)."""
    try:
        sqlite = SQLiteStore(path, options.key)
    except StoreError as exc:
        if options.fail != "open" or isinstance(exc, UnsafeStoreError):
            raise
        try:
            # A full or read-only disk: what the store holds is still every process's token.
            sqlite = SQLiteStore(path, options.key, read_only=True)
            sqlite.list_keys()
        except (StoreError, sqlite3.Error):
            # The store is a cache: without it this process still gets tokens, minting its own.
            logger.warning(
                "%s; tokens are kept in this process only (FRESHTOKEN_STORE_FAIL=open). %s",
                exc.message,
                exc.hint,
            )
            from freshtoken.stores._memory import MemoryStore  # here: only without the store

            return MemoryStore(sharing=False)
        logger.warning("%s; it is read, and tokens minted are kept in this process", exc.message)
    # Beside the file, not in it: a deleted file leaves it, and with it what was lost.
    sqlite._envelope.ledger = Ledger(path + ".ledger")
    store: TokenStore = FailOpenStore(sqlite) if options.fail == "open" else sqlite
    return store
