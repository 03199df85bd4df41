"""Every shipped store keeps the TokenStore promises: `freshtoken.testing.StoreContract` run
against memory, SQLite, Redis, a Redis Cluster and the fail-open wrapper (real redis-server
processes), and against a store of a user's own from a test file outside the project."""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import redis

from freshtoken import MemoryStore, Secret, TokenStore
from freshtoken.stores._failopen import FailOpenStore
from freshtoken.stores._redis import RedisStore
from freshtoken.stores._sqlite import SQLiteStore
from freshtoken.testing import StoreContract
from tests._redis import RedisClusterProcesses, RedisProcess

STORE_KEY = Secret(base64.b64encode(os.urandom(32)).decode())


class TestMemoryStore(StoreContract):
    def make_store(self) -> TokenStore:
        return MemoryStore()


class TestSQLiteStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _folder(self, tmp_path: Path) -> None:
        self.folder = tmp_path / "store"

    def make_store(self) -> TokenStore:
        return SQLiteStore(self.folder / "tokens.db")

    def stored_bytes(self, store: TokenStore) -> bytes:
        return b"".join(p.read_bytes() for p in self.folder.rglob("*") if p.is_file())

    def scramble(self, store: TokenStore, key: str) -> bool:
        with sqlite3.connect(self.folder / "tokens.db") as db:
            db.execute("UPDATE entries SET blob = ? WHERE key = ?", (os.urandom(64), key))
        return True

    def copy_at_rest(self, store: TokenStore, source: str, target: str) -> bool:
        with sqlite3.connect(self.folder / "tokens.db") as db:
            db.execute(
                "UPDATE entries SET blob = (SELECT blob FROM entries WHERE key = ?) WHERE key = ?",
                (source, target),
            )
        return True


class _OnRedis(StoreContract):
    """A fresh store is a fresh key prefix on one redis-server (or cluster) per class."""

    url: ClassVar[str] = ""
    ports: ClassVar[list[int]] = []

    def make_store(self) -> TokenStore:
        return self.open(f"t{uuid.uuid4().hex[:8]}:")

    def open(self, prefix: str) -> TokenStore:
        return RedisStore(self.url, STORE_KEY, prefix=prefix, lease=10.0)

    @staticmethod
    def shared(store: TokenStore) -> RedisStore:
        inner = store.shared if isinstance(store, FailOpenStore) else store
        assert isinstance(inner, RedisStore)
        return inner

    def lapse_lock(self, store: TokenStore, key: str) -> bool:
        inner = self.shared(store)
        # What a lease running out does: the lock key is gone while its holder sleeps.
        assert inner._redis.delete(inner._key(key, "lock")) == 1
        return True

    def scramble(self, store: TokenStore, key: str) -> bool:
        inner = self.shared(store)
        inner._redis.hset(inner._key(key, "entry"), "b", os.urandom(64))
        return True

    def copy_at_rest(self, store: TokenStore, source: str, target: str) -> bool:
        inner = self.shared(store)
        blob = inner._redis.hget(inner._key(source, "entry"), "b")
        assert blob
        inner._redis.hset(inner._key(target, "entry"), "b", blob)
        return True

    def stored_bytes(self, store: TokenStore) -> bytes:
        prefix = self.shared(store).prefix
        kept = b""
        for port in self.ports:
            with redis.Redis(port=port) as raw:
                for name in raw.keys(f"{prefix}*"):
                    kept += name + b"".join(raw.hgetall(name).values())
        return kept


class TestRedisStore(_OnRedis):
    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _redis(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
        server = RedisProcess(tmp_path_factory.mktemp("redis")).start()
        cls.url, cls.ports = server.url, [server.port]
        yield
        server.stop()


class TestFailOpenStore(TestRedisStore):
    def open(self, prefix: str) -> TokenStore:
        return FailOpenStore(super().open(prefix))


class TestRedisClusterStore(_OnRedis):
    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _cluster(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
        cluster = RedisClusterProcesses(tmp_path_factory.mktemp("cluster")).start()
        cls.url = cluster.url
        cls.ports = [node.port for node in cluster.nodes]
        yield
        cluster.stop()


def test_a_store_of_ones_own_runs_the_contract_from_outside_the_project(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_mine.py").write_text(
        "import freshtoken\n"
        "from freshtoken.testing import StoreContract\n\n\n"
        "class TestMine(StoreContract):\n"
        "    def make_store(self):\n"
        "        return freshtoken.MemoryStore()\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    passed = int(run.stdout.strip().splitlines()[-1].split(" passed")[0].split()[-1])
    assert passed >= 8, run.stdout
