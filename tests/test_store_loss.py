"""Issue 26 items 1 and 9: a store that loses its entry, or hands back an older one, never gets
a spent refresh token presented. Each fault is performed for real (FLUSHALL, a redis-server killed
without persistence, Redis down, a deleted SQLite file, junk or an older sealed copy written
by someone without the store key) against the test server's rotation with reuse detection,
with introspection that cannot tell (the hardest case). Each step of the job is a broker of
its own with the job's original `FRESHTOKEN_REFRESH_TOKEN`, spent after the first rotation.
And a store on a disk that refuses every write is still read by every process.
"""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from freshtoken import AuthorizationCode, RefreshTokenGrant, Settings, TokenBroker
from freshtoken._errors import ConfigurationError, InvalidGrantError, OAuthError, StoreError
from freshtoken._secret import Secret
from freshtoken.stores._entry import Entry, Ledger, fingerprint
from freshtoken.stores._sqlite import SQLiteStore
from freshtoken.testing import GITHUB_TEST_TOKEN, AuthServer, GitHubSecrets
from tests._cli import cli_env, ft, sealed_env
from tests._fleet import worker_env
from tests._redis import RedisProcess
from tests.helpers import make_client

SECRET = "github-secret://acme/pipeline/FT_REFRESH"
STORE_KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def redis_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisProcess]:
    # The ledger of a Redis store is kept in this host's cache directory: the test's own.
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    server = RedisProcess(tmp_path).start()
    yield server
    server.stop()


def _login(server: AuthServer) -> str:
    refresh = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
    assert refresh.refresh_token
    return refresh.refresh_token


def _job_env(server: AuthServer, store: str, **extra: str) -> dict[str, str]:
    """A job's environment: its secret a login's refresh token, spent by its first rotation."""
    return worker_env(
        server,
        store,
        FRESHTOKEN_GRANT="refresh_token",
        FRESHTOKEN_REFRESH_TOKEN=_login(server),
        FRESHTOKEN_STORE_KEY=STORE_KEY,
        **extra,
    )


def _step(env: dict[str, str]) -> TokenBroker:
    """One step of the job: a broker of its own, from the job's environment."""
    return TokenBroker.from_settings(Settings.from_env(env), invalidate_cooldown=0)


def _run_job(
    server: AuthServer,
    store: str,
    fault: Callable[[TokenBroker, bytes], None],
    read: Callable[[TokenBroker], bytes],
) -> tuple[OAuthError, dict[str, str]]:
    """Step 1 rotates twice (a copy of the entry kept in between); the fault; step 2 fails,
    clearly. Returns its error and the job's environment."""
    env = _job_env(server, store)
    first = _step(env)
    first.invalidate(first.token())  # the seed spent: the entry holds the next refresh token
    older = read(first)
    assert first.token().access_token  # rotated once more
    live = first.store.load(first.key)
    assert live is not None and live.refresh_token
    env["LIVE"] = live.refresh_token
    first.store.close()
    fault(first, older)
    second = _step(env)
    with pytest.raises(OAuthError) as caught:
        second.token()
    second.store.close()
    stats = server.stats()
    assert (stats["reuse_detections"], stats["family_revocations"]) == (0, 0)
    assert stats["refreshes"] == 2  # the spent seed and the rolled-back token never presented
    assert server.active_refresh_tokens("demo-client") == 1  # the chain is alive at the server
    return caught.value, env


def _says_lost(error: OAuthError) -> None:
    assert isinstance(error, InvalidGrantError)
    assert "the token store lost the entry this host saw it hold" in error.message
    assert "seed-refresh-token" in error.hint
    assert "A lost store entry" in error.hint


def _reseeded(env: dict[str, str], server: AuthServer) -> None:
    """What the error says works: the job's next run, its secret updated with the live refresh
    token (as a sink writes it), goes on with the chain; so does seeding a new login's, and,
    after `revoke`, a new secret."""
    again = _step({**env, "FRESHTOKEN_REFRESH_TOKEN": env["LIVE"]})
    assert again.token().access_token
    again.seed_refresh_token(_login(server))
    again.invalidate(again.token())
    assert again.token().access_token
    again.revoke()  # removed on purpose, not lost: the next secret is taken
    again.store.close()
    later = _step({**env, "FRESHTOKEN_REFRESH_TOKEN": _login(server)})
    assert later.token().access_token
    later.store.close()
    assert server.stats()["reuse_detections"] == 0
    assert server.stats()["refreshes"] == 6


def _redis_entry(broker: TokenBroker) -> str:
    return f"freshtoken:{{{broker.key}}}:entry"


REDIS_FAULTS = ["flushall", "restart", "evicted", "junk", "older copy"]


@pytest.mark.slow
@pytest.mark.parametrize("fault", REDIS_FAULTS)
def test_a_redis_store_that_lost_or_rolled_back_its_entry(
    redis_server: RedisProcess, fault: str
) -> None:
    db = redis.Redis.from_url(redis_server.url)

    def read(broker: TokenBroker) -> bytes:
        blob = db.hget(_redis_entry(broker), "b")
        assert isinstance(blob, bytes)
        return blob

    def perform(broker: TokenBroker, older: bytes) -> None:
        name = _redis_entry(broker)
        if fault == "flushall":
            db.flushall()
        elif fault == "restart":  # killed; nothing was persisted
            redis_server.kill()
            redis_server.start()
        elif fault == "evicted":  # Redis at its maxmemory evicts keys, this entry among them
            db.config_set("maxmemory-policy", "allkeys-random")
            db.config_set("maxmemory", db.info("memory")["used_memory"] + 256 * 1024)
            filled = 0
            while db.exists(name):
                db.set(f"filler:{filled}", os.urandom(1024))
                filled += 1
                assert filled < 200_000, "the entry was never evicted"
            db.config_set("maxmemory", 0)
        elif fault == "junk":
            db.hset(name, "b", b"\x01" + os.urandom(64))
        else:  # an older sealed copy, replayed by a writer without the store key
            db.hset(name, "b", older)

    with AuthServer(introspect_refresh_tokens=False) as server:
        error, env = _run_job(server, redis_server.url, perform, read)
        _says_lost(error)
        if fault == "older copy":
            assert "an older copy" in error.message
        _reseeded(env, server)


SQLITE_FAULTS = ["deleted", "junk", "older copy"]


@pytest.mark.slow
@pytest.mark.parametrize("fault", SQLITE_FAULTS)
def test_a_sqlite_store_that_lost_or_rolled_back_its_entry(tmp_path: Path, fault: str) -> None:
    path = tmp_path / "tokens.db"

    def read(broker: TokenBroker) -> bytes:
        with sqlite3.connect(path) as conn:
            row = conn.execute("SELECT blob FROM entries WHERE key = ?", (broker.key,)).fetchone()
        assert row is not None
        return bytes(row[0])

    def perform(broker: TokenBroker, older: bytes) -> None:
        if fault == "deleted":
            path.unlink()
            return
        blob = older if fault == "older copy" else b"\x01" + os.urandom(64)
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE entries SET blob = ? WHERE key = ?", (blob, broker.key))

    with AuthServer(introspect_refresh_tokens=False) as server:
        error, env = _run_job(server, f"sqlite://{path}", perform, read)
        _says_lost(error)
        _reseeded(env, server)
    # The ledger beside the file: private, and fingerprints only, never a refresh token.
    (ledger,) = (tmp_path / "tokens.db.ledger").iterdir()
    assert ledger.stat().st_mode & 0o077 == 0
    assert env["LIVE"] not in ledger.read_text()
    assert env["FRESHTOKEN_REFRESH_TOKEN"] not in ledger.read_text()


@pytest.mark.slow
def test_after_a_loss_a_seed_is_taken_only_when_the_server_says_it_is_live(
    redis_server: RedisProcess,
) -> None:
    """A seed this host never saw, after the store lost its chain (another run's token, spent
    there): introspection is asked, and inactive means it is not presented."""
    with AuthServer() as server:  # introspection that vouches
        env = _job_env(server, redis_server.url)
        first = _step(env)
        assert first.token().access_token
        redis.Redis.from_url(redis_server.url).flushall()
        elsewhere = _login(server)
        make_client(server).fetch(RefreshTokenGrant(elsewhere))  # spent by another run
        with pytest.raises(InvalidGrantError) as caught:
            _step({**env, "FRESHTOKEN_REFRESH_TOKEN": elsewhere}).token()
        _says_lost(caught.value)
        assert server.stats()["reuse_detections"] == 0
        # A new login's refresh token is live, and the server says so: taken.
        assert _step({**env, "FRESHTOKEN_REFRESH_TOKEN": _login(server)}).token().access_token
        stats = server.stats()
        assert (stats["refreshes"], stats["reuse_detections"]) == (3, 0)


@pytest.mark.slow
def test_refresh_tokens_fail_closed_while_redis_is_down(redis_server: RedisProcess) -> None:
    """Redis down: the store fails open into this process's own cache, but no refresh token is
    presented from it (the job's seed was spent)."""
    with AuthServer(introspect_refresh_tokens=False) as server:
        env = _job_env(server, redis_server.url, FRESHTOKEN_REDIS_TIMEOUT="0.5")
        first = _step(env)
        first.invalidate(first.token())
        assert first.token().access_token
        redis_server.stop()
        second = _step(env)
        with pytest.raises(StoreError) as caught:
            second.token()
        assert "the shared token store cannot be reached or written" in caught.value.message
        stats = server.stats()
        assert (stats["refreshes"], stats["reuse_detections"]) == (2, 0)
        assert server.active_refresh_tokens("demo-client") == 1


def _disk_full() -> None:
    """In the child: the kernel refuses every write that would grow a file (EFBIG, as a full
    disk refuses with ENOSPC), without privileges."""
    import resource  # POSIX

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


@pytest.mark.slow
def test_a_store_that_cannot_be_written_is_still_read(tmp_path: Path) -> None:
    """Item 9: on a full disk, each `freshtoken token` takes the token the store holds instead
    of minting its own."""
    with AuthServer() as server:
        env = cli_env(tmp_path, server, FRESHTOKEN_STORE=f"sqlite://{tmp_path}/t.db")

        def token(fault: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
            command = [sys.executable, "-m", "freshtoken", "token"]
            return subprocess.run(
                command, env=env, capture_output=True, text=True, preexec_fn=fault, timeout=60
            )

        first = token()
        assert first.returncode == 0, first.stderr
        for _ in range(3):
            out = token(_disk_full)
            assert out.returncode == 0, out.stderr
            assert out.stdout == first.stdout  # the stored token
            assert "cannot be written" in out.stderr or "it is read" in out.stderr
        assert server.stats()["tokens_minted"] == 1


def test_a_seed_older_than_the_github_secret_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's secret was read when it started; another run rotated the chain since and
    wrote the GitHub secret. On a store of its own (another runner, nothing in its ledger),
    the seed is not presented; a job started after that write takes its secret."""
    with AuthServer(introspect_refresh_tokens=False) as server, GitHubSecrets() as github:
        seed = _login(server)
        make_client(server).fetch(RefreshTokenGrant(seed))  # the other run's rotation
        github.set_value(SECRET, "rt_the_other_runs")  # and its write-back, now
        event = tmp_path / "event.json"  # written by the runner as it set this job up
        event.write_text("{}")
        os.utime(event, (time.time() - 600, time.time() - 600))
        monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
        monkeypatch.setenv("GITHUB_API_URL", github.url)

        def env(store: str, refresh_token: str) -> dict[str, str]:
            return worker_env(
                server,
                tmp_path / store,
                FRESHTOKEN_GRANT="refresh_token",
                FRESHTOKEN_REFRESH_TOKEN=refresh_token,
                FRESHTOKEN_REFRESH_TOKEN_SINK=SECRET,
                FRESHTOKEN_GITHUB_TOKEN=GITHUB_TEST_TOKEN,
            )

        with pytest.raises(InvalidGrantError):
            _step(env("a.db", seed)).token()
        assert server.stats()["reuse_detections"] == 0
        os.utime(event)  # a job started after the write
        assert _step(env("b.db", _login(server))).token().access_token
        stats = server.stats()
        assert (stats["refreshes"], stats["reuse_detections"]) == (2, 0)


@pytest.mark.parametrize("forgotten", [False, True], ids=["entry", "ledger"])
def test_an_explicit_seed_of_a_spent_refresh_token_is_refused(
    tmp_path: Path, forgotten: bool
) -> None:
    """`seed-refresh-token` with a value the chain replaced (an old CI secret pasted again):
    refused, naming the fix, instead of presented and the whole login revoked. Known from the
    entry's past, or from this host's ledger when the entry itself is gone."""
    with AuthServer(introspect_refresh_tokens=False) as server:
        env = cli_env(tmp_path, server, FRESHTOKEN_STORE=f"sqlite://{tmp_path}/t.db")
        env.update(FRESHTOKEN_GRANT="refresh_token", FRESHTOKEN_STORE_KEY=STORE_KEY)
        first = _login(server)
        step = _step(env)
        step.seed_refresh_token(first)
        step.invalidate(step.token())
        assert step.token().access_token  # `first` rotated away: spent
        step.close()
        if forgotten:  # the file deleted; the ledger beside it still saw the chain
            for path in tmp_path.glob("t.db*"):
                if path.is_file():
                    path.unlink()
        with pytest.raises(ConfigurationError, match="spent") as refused:
            _step(env).seed_refresh_token(first)
        assert "freshtoken login" in refused.value.hint
        _step(env).seed_refresh_token(_login(server))  # a live one is taken
        assert _step(env).token().access_token
        stats = server.stats()
    assert stats["reuse_detections"] == 0


#: A store's entry before and after a rotation (in the read-only fallback's tests).
SPENT = "rt_canary_spent_0001"
ROTATED = Entry(token=None, refresh_token="rt_canary_current_02", past=(fingerprint(SPENT),))


def test_the_read_only_store_reads_writes_still_in_the_wal(tmp_path: Path) -> None:
    """The full-disk fallback reads the newest entry, not the older copy in the main file while
    the rotation that replaced it is still in the -wal (a holder keeps the database open)."""
    path = tmp_path / "tokens.db"
    key = Secret(base64.b64encode(os.urandom(32)).decode())
    store = SQLiteStore(path, key)
    first = store.save("k", Entry(token=None, refresh_token=SPENT), 0)
    assert first is not None
    holder = sqlite3.connect(path)  # as `serve` or a long job: no checkpoint when others close
    holder.execute("PRAGMA wal_autocheckpoint=0")
    holder.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the older entry is in the main file
    assert store.save("k", ROTATED, first) is not None
    store.close()
    assert os.path.getsize(f"{path}-wal") > 0
    try:
        entry = SQLiteStore(path, key, read_only=True).load("k")
    finally:
        holder.close()
    assert entry is not None and entry.refresh_token == ROTATED.refresh_token


_HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA wal_autocheckpoint=0")
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
print("held", flush=True)
sys.stdin.read()
"""

_FULL_DISK_READ = """
import sys
from freshtoken._secret import Secret
from freshtoken.stores._base import StoreOptions
from freshtoken.stores._sqlite import open_url
store = open_url("sqlite://" + sys.argv[1], StoreOptions(key=Secret(sys.argv[2])))
entry = store.load("k")
print(type(store).__name__, entry.refresh_token if entry else None)
"""


def test_on_a_full_disk_a_wal_that_cannot_be_read_means_memory_not_an_older_copy(
    tmp_path: Path,
) -> None:
    """A holder killed with the rotation still in the -wal: on a full disk SQLite cannot
    rebuild its index to read it, and the store falls to memory (a refresh token is then
    presented only as a shared store hands it over), never to the spent one in the main file."""
    path = tmp_path / "tokens.db"
    key = base64.b64encode(os.urandom(32)).decode()
    store = SQLiteStore(path, Secret(key))
    first = store.save("k", Entry(token=None, refresh_token=SPENT), 0)
    assert first is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    assert store.save("k", ROTATED, first) is not None
    store.close()
    holder.kill()  # no checkpoint: the rotation stays in the -wal
    holder.wait()
    assert os.path.getsize(f"{path}-wal") > 0
    out = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_READ, str(path), key],
        capture_output=True,
        text=True,
        preexec_fn=_disk_full,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert SPENT not in out.stdout  # before: the older copy was read
    assert out.stdout.split() in (
        ["MemoryStore", "None"],
        ["FailOpenStore", "rt_canary_current_02"],
    )


LEDGER_JUNK = [
    '{"generation": 1e999, "past": []}',  # OverflowError in int()
    "[" * 100_000,  # RecursionError in json
    '{"generation": ' + "9" * 4300 + ', "past": []}',  # ValueError when written again
    '{"generation": 3, "past": [{}]}',
]


@pytest.mark.slow
@pytest.mark.parametrize("junk", LEDGER_JUNK, ids=["inf", "nested", "huge", "past"])
def test_a_damaged_ledger_file_is_ignored_with_one_warning(tmp_path: Path, junk: str) -> None:
    """Every command still works: the ledger is advisory. The warning names the file and says
    to delete it."""
    with AuthServer() as server:
        env = sealed_env(tmp_path, server, FRESHTOKEN_REVOCATION_URL=server.url + "/oauth/revoke")
        assert ft(["token"], env, tmp_path).returncode == 0
        (ledger,) = (tmp_path / "t.db.ledger").iterdir()
        for command in (["token"], ["status"], ["revoke"]):
            ledger.write_text(junk)
            out = ft(command, env, tmp_path)
            assert out.returncode == 0, out.stderr
            assert "unexpected" not in out.stderr and "Traceback" not in out.stderr
            assert out.stderr.count(f"the store ledger {ledger}") == 1, out.stderr
            assert "Delete it" in out.stderr


@pytest.mark.parametrize("mode", [0o777, 0o700])
def test_a_ledger_directory_others_could_write_to_is_not_trusted(tmp_path: Path, mode: int) -> None:
    """Nothing read from it, nothing written to it: another user could plant what it says."""
    folder = tmp_path / "ledger"
    ledger = Ledger(folder)
    folder.mkdir(mode=0o700)
    key = "k" * 16
    ledger.note(key, Entry(token=None, refresh_token="rt_canary_one_000001", generation=5))
    folder.chmod(mode)
    assert Ledger(ledger.directory).seen(key).generation == (5 if mode == 0o700 else 0)


class _MarkFails(SQLiteStore):
    """A real SQLite store whose write of a spend mark fails while `failing` (the disk full, or
    'database is locked' past its timeout, at that very moment)."""

    failing = False

    def save(self, key: str, entry: Entry, expected: int) -> int | None:
        if self.failing and entry.phase == "spending":
            raise StoreError("database is locked (injected)")
        return super().save(key, entry, expected)


@pytest.mark.parametrize("fail", ["open", "closed"])
def test_a_spend_mark_the_store_did_not_take_is_never_acted_on(
    tmp_path: Path, server: AuthServer, fail: str
) -> None:
    """The mark must be in the shared store before the refresh token is presented: one that
    failed to be written (swallowed as a good token's write used to be, or sent to this
    process's stand-in by a store failing open) leaves the token unpresented and good, and
    the next holder spends it once."""
    from freshtoken.stores._failopen import FailOpenStore

    seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
    shared = _MarkFails(tmp_path / "t.db")
    store = FailOpenStore(shared) if fail == "open" else shared
    first = TokenBroker(make_client(server), grant=None, store=store)
    first.seed_refresh_token(str(seed.refresh_token))
    shared.failing = True
    with pytest.raises(StoreError):
        first.token()
    shared.failing = False
    assert server.stats()["refreshes"] == 0  # not presented
    held = shared.load(first.key)
    assert held is not None and held.phase == "idle" and held.refresh_token == seed.refresh_token
    second = TokenBroker(make_client(server), grant=None, store=SQLiteStore(tmp_path / "t.db"))
    assert second.token().access_token
    stats = server.stats()
    assert (stats["refreshes"], stats["reuse_detections"]) == (1, 0)
