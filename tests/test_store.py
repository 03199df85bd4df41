"""Stores: SQLite on disk (permissions, encryption, tampering, locks, full disk) and memory."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from freshtoken import (
    ConfigurationError,
    MemoryStore,
    Secret,
    StoreError,
    Token,
    TokenStore,
    open_store,
)
from freshtoken._platform import user_dir
from freshtoken.stores import default_store_path
from freshtoken.stores._entry import Entry
from freshtoken.stores._failopen import FailOpenStore
from freshtoken.stores._redis import RedisStore
from freshtoken.stores._sqlite import SQLiteStore
from freshtoken.testing import AuthServer, Client
from tests._cli import cli_env, ft
from tests._redis import RedisProcess
from tests.helpers import CANARY_SECRET, assert_no_leak, make_broker, require

TOKEN = Token("at_canary_access_1234567", "Bearer", 2e9, 1.9e9)
WORKER = [sys.executable, "-m", "tests._worker"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_files_are_private(tmp_path: Path, server: AuthServer) -> None:
    db = tmp_path / "private" / "tokens.db"
    broker = make_broker(server, store=SQLiteStore(db))
    broker.token()
    assert _mode(db.parent) == 0o700
    assert _mode(db.with_name("tokens.db.locks")) == 0o700
    files = [p for p in db.parent.iterdir() if p.is_file()]
    assert db in files
    assert [(p.name, oct(_mode(p))) for p in files if _mode(p) != 0o600] == []


def test_entries_are_encrypted_at_rest(tmp_path: Path) -> None:
    with AuthServer(refresh_on_client_credentials=True) as server:
        db = tmp_path / "tokens.db"
        broker = make_broker(server, store=SQLiteStore(db), secret="demo-secret")
        token = broker.token()
        entry = broker.store.load(broker.key)
        assert entry is not None and entry.refresh_token
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for secret in (token.access_token, entry.refresh_token, "demo-secret"):
        assert secret.encode() not in raw


@pytest.mark.parametrize("store_type", ["memory", "sqlite"])
def test_compare_and_set(tmp_path: Path, store_type: str) -> None:
    store: TokenStore = MemoryStore() if store_type == "memory" else SQLiteStore(tmp_path / "t.db")
    assert store.save("k", Entry(TOKEN), expected=1) is None
    first = store.save("k", Entry(TOKEN), expected=0)
    assert first
    assert store.save("k", Entry(TOKEN), expected=0) is None  # a slow writer loses
    second = store.save("k", Entry(TOKEN, "rt_1"), expected=first)
    assert second and second != first
    loaded = store.load("k")
    assert loaded is not None
    assert (loaded.version, loaded.refresh_token) == (second, "rt_1")
    assert loaded.token is not None and loaded.token.access_token == TOKEN.access_token
    store.delete("k")
    assert store.load("k") is None


def test_a_store_others_can_read_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    SQLiteStore(db).close()
    db.chmod(0o644)
    with pytest.raises(StoreError) as info:
        SQLiteStore(db)
    assert "accessible to other users (mode 644)" in str(info.value)
    assert f"chmod 600 {db}" in info.value.hint


def test_a_world_writable_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(StoreError, match="is not private"):
        SQLiteStore(shared / "t.db")


def test_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(StoreError) as info:
        SQLiteStore(blocker / "t.db")
    assert "cannot create the directory" in str(info.value)
    assert "FRESHTOKEN_STORE" in info.value.hint


@pytest.mark.parametrize("fail", ["closed", "open"])
def test_a_read_only_directory_is_a_clear_error_or_served_from_memory(
    tmp_path: Path, server: AuthServer, fail: str
) -> None:
    """closed: refused before any request (exit 5); open (the default): the store is a
    cache, so the token is served from this process, with the reason said."""
    # Root writes through directory modes: as root, run the command without the capabilities
    # that allow it (setpriv), as any other user would be.
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = require("setpriv")  # else root writes through directory permissions
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o500)
    env = cli_env(
        tmp_path,
        server,
        FRESHTOKEN_STORE=f"sqlite://{read_only}/t.db",
        FRESHTOKEN_STORE_FAIL=fail,
    )
    try:
        out = subprocess.run(
            [*prefix, sys.executable, "-m", "freshtoken", "token"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        read_only.chmod(0o700)
    assert "not writable" in out.stderr and "FRESHTOKEN_STORE" in out.stderr
    assert "Traceback" not in out.stderr
    assert list(read_only.iterdir()) == []
    if fail == "closed":
        assert out.returncode == 5, out.stderr
        assert out.stdout == ""
        assert server.stats()["tokens_minted"] == 0  # refused before asking for a token
    else:
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() and "kept in this process only" in out.stderr


@pytest.mark.slow
def test_an_overwritten_store_file_is_set_aside_and_calls_succeed(
    tmp_path: Path, server: AuthServer
) -> None:
    db = tmp_path / "store" / "t.db"
    env = cli_env(tmp_path, server, FRESHTOKEN_STORE=f"sqlite://{db}")
    assert ft(["token"], env, tmp_path).returncode == 0
    db.write_bytes(os.urandom(8192))  # random bytes where the database was
    runs = [ft(["token"], env, tmp_path) for _ in range(3)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() and "Traceback" not in run.stderr
    assert "moved it to" in runs[0].stderr
    assert list(db.parent.glob("t.db.corrupt-*"))  # kept for a post-mortem
    assert server.stats()["tokens_minted"] == 2  # one again after the loss, then shared


def test_a_tampered_entry_is_dropped_and_reminted(
    tmp_path: Path, server: AuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "t.db"
    first = make_broker(server, store=SQLiteStore(db))
    original = first.token()
    with sqlite3.connect(db) as raw:
        blob = raw.execute("SELECT blob FROM entries").fetchone()[0]
        raw.execute("UPDATE entries SET blob = ?", (blob[:-1] + bytes([blob[-1] ^ 1]),))
    second = make_broker(server, store=SQLiteStore(db))
    fresh = second.token()
    assert fresh.access_token != original.access_token
    assert "dropping a token-store entry that cannot be read" in caplog.text
    assert server.stats()["tokens_minted"] == 2


def test_another_key_never_reads_the_entry(tmp_path: Path, server: AuthServer) -> None:
    db = tmp_path / "t.db"
    key_a = Secret(base64.b64encode(b"a" * 32).decode())
    key_b = Secret(base64.b64encode(b"b" * 32).decode())
    make_broker(server, store=SQLiteStore(db, key_a)).token()
    other = make_broker(server, store=SQLiteStore(db, key_b))
    assert other.token().access_token  # a fresh token, no crash
    assert server.stats()["tokens_minted"] == 2
    with pytest.raises(ConfigurationError, match="32-byte key"):
        SQLiteStore(db, Secret("not-base64!"))


def test_a_full_disk_keeps_the_token_in_memory(tmp_path: Path, server: AuthServer) -> None:
    env = {
        **os.environ,
        "FRESHTOKEN_TOKEN_URL": server.token_url,
        "FRESHTOKEN_CLIENT_ID": "demo-client",
        "FRESHTOKEN_CLIENT_SECRET": CANARY_SECRET,
    }
    server.register(Client("demo-client", CANARY_SECRET))
    out = subprocess.run(
        [sys.executable, "-m", "tests._worker", "full-disk", "--db", str(tmp_path / "t.db")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '{"ok": true, "again": true}'
    assert "could not store the new token" in out.stderr
    assert "serving it from memory" in out.stderr
    assert "Traceback" not in out.stderr
    assert CANARY_SECRET not in out.stderr + out.stdout
    assert_no_leak("the standard error", out.stderr)


def test_a_killed_lock_holder_blocks_no_one(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    store = SQLiteStore(db)
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests._worker", "hold-lock", "--db", str(db), "--key", "k"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with store.lock("k", 0.05) as held:
            assert not held
        assert (db.with_name("t.db.locks") / "k.lock").read_text() == str(holder.pid)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with store.lock("k", 0.0) as held:  # one try, no waiting: no lease to wait out
            assert held  # released by the kernel with the dead holder's files
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_paused_holders_release_leaves_the_new_owners_lock(tmp_path: Path, kind: str) -> None:
    """Lock ownership, for every store that shares between processes: a holder paused (SIGSTOP)
    past its lease loses the lock to a new owner, and when it resumes it knows it lost it and
    its release leaves the new owner's lock alone. A store without a lease (SQLite's flock)
    lets nobody take a paused holder's lock instead."""
    key, lease = "k", 0.3
    with contextlib.ExitStack() as cleanup:
        if kind == "redis":
            redis = RedisProcess(tmp_path).start()
            cleanup.callback(redis.stop)
            store_key = Secret(base64.b64encode(os.urandom(32)).decode())
            args = ["--redis", redis.url, "--lease", str(lease)]
            env = {**os.environ, "FRESHTOKEN_STORE_KEY": store_key.reveal()}

            def open_store() -> TokenStore:
                return RedisStore(redis.url, store_key, lease=lease)

            takeover = 10.0  # returns as soon as the lease has run out
        else:
            db = tmp_path / "t.db"
            args, env = ["--db", str(db)], dict(os.environ)

            def open_store() -> TokenStore:
                return SQLiteStore(db)

            takeover = 0.5  # waited in full: the lock never frees
        holder = subprocess.Popen(
            [*WORKER, "hold-lock", "--key", key, "--release-on-input", *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        cleanup.callback(holder.wait)
        cleanup.callback(holder.kill)
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGSTOP)  # paused while it holds the lock
        new, third = open_store(), open_store()
        with new.lock(key, takeover) as taken:
            assert taken == (kind == "redis")
            assert new.owns_lock(key) or not taken
            holder.send_signal(signal.SIGCONT)
            holder.stdin.write("release\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == ("lost" if taken else "owns")
            assert holder.stdout.readline().strip() == "released"
            if taken:  # the paused holder's release did not free the new owner's lock
                assert new.owns_lock(key)
                with third.lock(key, 0.05) as stolen:
                    assert not stolen
        with third.lock(key, 1.0) as free:  # the new owner released its own
            assert free


def test_default_store_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    github = {"GITHUB_ACTIONS": "true", "RUNNER_TEMP": str(tmp_path)}
    assert default_store_path(github) == tmp_path / "freshtoken" / "tokens.db"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_store_path({}) == tmp_path / "cache" / "freshtoken" / "tokens.db"


@pytest.mark.parametrize("xdg", [None, "", "relative/dir", "/abs/xdg"])
@pytest.mark.parametrize("kind", ["config", "cache"])
def test_the_user_directories_are_platformdirs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str, xdg: str | None
) -> None:
    # freshtoken reads the XDG directories itself (platformdirs costs every command-line call
    # 27 M instructions); it must answer what platformdirs answers.
    import platformdirs

    monkeypatch.setenv("HOME", str(tmp_path))
    if xdg is None:
        monkeypatch.delenv(f"XDG_{kind.upper()}_HOME", raising=False)
    else:
        monkeypatch.setenv(f"XDG_{kind.upper()}_HOME", xdg)
    expected = getattr(platformdirs, f"user_{kind}_dir")("freshtoken")
    assert user_dir(kind) == expected


def test_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    sqlite = open_store(f"sqlite://{tmp_path}/x.db")  # failing open, like Redis
    assert isinstance(sqlite, FailOpenStore) and isinstance(sqlite.shared, SQLiteStore)
    assert sqlite.shared.path == str(tmp_path / "x.db")  # a string: os.path throughout
    closed = open_store(f"sqlite://{tmp_path}/x.db", fail="closed")
    assert isinstance(closed, SQLiteStore)


@pytest.mark.parametrize(
    ("bad", "needle"),
    [("redis://127.0.0.1:1", "needs FRESHTOKEN_STORE_KEY"), ("ftp://x", "unknown form")],
)
def test_bad_store_urls(bad: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        open_store(bad)


def test_a_second_store_on_the_same_file_leaves_the_first_working(tmp_path: Path) -> None:
    """Doctor (and a library user) may open the store a second time in one process; the
    first must keep working while the second is open and after it is closed (POSIX locks
    belong to the process: freshtoken never closes a descriptor of a database in use)."""
    from freshtoken.stores._sqlite import SQLiteStore

    first = SQLiteStore(tmp_path / "t.db")
    entry = Entry(None, "rt-one")
    version = first.save("k", entry, 0)
    assert version is not None
    second = SQLiteStore(tmp_path / "t.db")  # doctor opens the store again, as can a library
    try:
        for n in range(20):  # every write takes the file's locks again
            version = first.save("k", Entry(None, f"rt-{n}"), version)
            assert version is not None
            loaded = second.load("k")
            assert loaded is not None and loaded.refresh_token == f"rt-{n}"
        second.close()
        for n in range(20, 40):
            version = first.save("k", Entry(None, f"rt-{n}"), version)
            assert version is not None
        again = first.load("k")
        assert again is not None and again.refresh_token == "rt-39"
    finally:
        second.close()
        first.close()
