"""Attacks on the SQLite store's files: a store directory another user created (mode 1777, as
in /tmp) with a lock file symlinked to the victim's own file, planted symlinks in the victim's
own directory, and key files others can read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from freshtoken import Secret, Settings
from freshtoken._errors import StoreError, UnsafeStoreError
from freshtoken.broker._key import settings_key
from freshtoken.stores._base import parse_key
from freshtoken.stores._entry import Envelope
from freshtoken.stores._sqlite import SQLiteStore
from freshtoken.testing import AuthServer
from tests._attack import (
    as_nobody,
    open_place,
    require_other_user,
    shared_dir,
    write_as_nobody,
)
from tests._cli import cli_env, ft

STORE_KEY = "S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2U="
VICTIM_TEXT = "export PATH=$HOME/bin:$PATH  # the victim's own file\n"


def _lock_name(env: dict[str, str]) -> str:
    """The lock file's name for these settings: what an attacker who knows the settings (or
    has watched a run) plants a symlink under."""
    settings = Settings.from_env(env)
    pepper = Envelope(parse_key(settings.store_key, "k")).pepper  # type: ignore[arg-type]
    return settings_key(settings, pepper) + ".lock"


def test_a_store_directory_created_by_another_user_is_refused(
    tmp_path: Path, server: AuthServer
) -> None:
    require_other_user()
    with open_place() as place:
        shared = shared_dir(place / "tmp")
        victim_file = place / "bashrc"
        victim_file.write_text(VICTIM_TEXT)
        store = shared / "freshtoken"
        env = cli_env(
            tmp_path,
            server,
            FRESHTOKEN_STORE=f"sqlite://{store}/tokens.db",
            FRESHTOKEN_STORE_KEY=STORE_KEY,
        )
        lock = store / "tokens.db.locks" / _lock_name(env)
        # The attacker prepares the place before the victim's first run.
        planted = as_nobody(
            [
                "sh",
                "-c",
                'umask 0; mkdir -m 1777 "$1" "$1/tokens.db.locks" && ln -s "$3" "$2"',
                "sh",
                str(store),
                str(lock),
                str(victim_file),
            ]
        )
        assert planted.returncode == 0, planted.stderr
        assert lock.is_symlink() and store.stat().st_uid != os.geteuid()
        out = ft(["token"], env, tmp_path)
        assert victim_file.read_text() == VICTIM_TEXT
    assert out.returncode == 5, out.stderr
    assert f"the store directory {store} is not private" in out.stderr
    assert "Traceback" not in out.stderr
    assert server.stats()["tokens_minted"] == 0


def test_a_planted_lock_symlink_is_not_followed(tmp_path: Path) -> None:
    """Even in the victim's own directory (say it was shared once), a lock file that is a
    symlink is refused, and nothing is truncated or written through it."""
    victim_file = tmp_path / "bashrc"
    victim_file.write_text(VICTIM_TEXT)
    store = SQLiteStore(tmp_path / "store" / "t.db")
    (tmp_path / "store" / "t.db.locks" / "k.lock").symlink_to(victim_file)
    with (
        pytest.raises(UnsafeStoreError, match=r"lock file .* is a symbolic link"),
        store.lock("k", 1.0),
    ):
        pass
    assert victim_file.read_text() == VICTIM_TEXT
    store.close()


def test_planted_store_and_key_files_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    attacker_key = tmp_path / "attacker.key"
    attacker_key.write_text(STORE_KEY)
    attacker_key.chmod(0o600)
    (folder / "t.db.key").symlink_to(attacker_key)  # a key the attacker knows
    with pytest.raises(StoreError, match="store key file"):
        SQLiteStore(folder / "t.db")
    (folder / "t.db.key").unlink()
    (folder / "t.db").symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(UnsafeStoreError, match=r"token store .* is a symbolic link"):
        SQLiteStore(folder / "t.db")
    assert not (tmp_path / "elsewhere.db").exists()


def test_a_store_key_file_others_can_read_is_refused(tmp_path: Path, server: AuthServer) -> None:
    key = tmp_path / "store.key"
    key.write_text(STORE_KEY + "\n")
    key.chmod(0o644)
    env = cli_env(tmp_path, server, FRESHTOKEN_STORE_KEY_FILE=str(key))
    out = ft(["token"], env, tmp_path)
    assert out.returncode == 2, out.stderr
    assert "FRESHTOKEN_STORE_KEY_FILE names a file that every user may read" in out.stderr
    assert STORE_KEY not in out.stderr and server.stats()["tokens_minted"] == 0
    key.chmod(0o600)
    assert ft(["token"], env, tmp_path).returncode == 0


def test_secret_files_another_user_could_write_are_refused(server: AuthServer) -> None:
    """Another user plants a refresh token of their own account where
    FRESHTOKEN_REFRESH_TOKEN_FILE points (a shared directory), and a store key they know: both
    are refused on the opened file, before anything is read or sent; so is a file of ours that
    others may write."""
    require_other_user()
    with open_place() as place:
        shared = shared_dir(place / "shared")
        planted = {
            "FRESHTOKEN_REFRESH_TOKEN_FILE": (shared / "refresh-token", "rt_of_the_attacker"),
            "FRESHTOKEN_STORE_KEY_FILE": (shared / "store.key", STORE_KEY),
        }
        runs = {}
        for setting, (path, value) in planted.items():
            write_as_nobody(path, value + "\n", mode=0o600)  # root reads it all the same
            env = cli_env(place, server, **{setting: str(path)})
            runs[setting] = ft(["token"], env, place)
        mine = place / "mine.key"
        mine.write_text(STORE_KEY)
        mine.chmod(0o620)
        runs["writable"] = ft(
            ["token"], cli_env(place, server, FRESHTOKEN_STORE_KEY_FILE=str(mine)), place
        )
    for setting, out in runs.items():
        assert out.returncode == 2, (setting, out.stderr)
        why = "is writable by other users" if setting == "writable" else "owned by another user"
        assert why in out.stderr, out.stderr
        assert "rt_of_the_attacker" not in out.stderr and STORE_KEY not in out.stderr
    assert server.stats()["token_requests"] == 0


def test_a_sealed_entry_opens_only_under_the_cache_key_it_was_sealed_for() -> None:
    """Store key binding: the cache key is the envelope's associated data, so whoever can
    write to a shared store (but has no store key) cannot move an entry to another client,
    scope or endpoint."""
    envelope = Envelope(parse_key(Secret(STORE_KEY), "k"))
    blob = envelope.seal("cache-key-a", b"payload")
    assert envelope.open("cache-key-a", blob) == b"payload"
    for other in ("cache-key-b", "", "cache-key-a "):
        with pytest.raises(ValueError, match="failed authentication"):
            envelope.open(other, blob)


def test_a_fifo_where_a_file_is_read_is_an_error_not_a_hang(server: AuthServer) -> None:
    """A FIFO blocks open() until a writer comes: planted by another user for a secret file,
    or in place of the store key, a configuration file or a ledger file, it is refused (or,
    for the advisory ledger, ignored) at once, naming the file."""
    require_other_user()
    with open_place() as place:
        shared = shared_dir(place / "shared")
        secret = shared / "refresh-token"
        assert as_nobody(["mkfifo", "-m", "644", str(secret)]).returncode == 0
        env = cli_env(place, server, FRESHTOKEN_REFRESH_TOKEN_FILE=str(secret))
        out = ft(["token"], env, place, timeout=20)
        assert out.returncode == 2 and "owned by another user" in out.stderr
        assert str(secret) in out.stderr

        os.mkfifo(place / "freshtoken.toml", 0o600)
        env = cli_env(place, server, FRESHTOKEN_CONFIG=str(place / "freshtoken.toml"))
        out = ft(["token"], env, place, timeout=20)
        assert out.returncode == 2 and str(place / "freshtoken.toml") in out.stderr

        store = place / "store"
        store.mkdir(mode=0o700)
        os.mkfifo(store / "t.db.key", 0o600)
        env = cli_env(place, server, FRESHTOKEN_STORE=f"sqlite://{store}/t.db")
        env["FRESHTOKEN_STORE_FAIL"] = "closed"
        out = ft(["token"], env, place, timeout=20)
        assert out.returncode != 0 and f"{store}/t.db.key is not a regular file" in out.stderr

        (store / "t.db.key").unlink()
        assert ft(["token"], env, place, timeout=20).returncode == 0
        (ledger,) = (store / "t.db.ledger").iterdir()
        ledger.unlink()
        os.mkfifo(ledger, 0o600)
        out = ft(["token"], env, place, timeout=20)
        assert out.returncode == 0 and f"the store ledger {ledger}" in out.stderr
    assert server.stats()["token_requests"] == 1  # the first token, kept in the store
