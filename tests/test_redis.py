"""The Redis store against real redis-server processes that the tests start and kill."""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import redis

from freshtoken import (
    AuthorizationCode,
    ClientCredentials,
    ConfigurationError,
    Secret,
    Settings,
    StoreError,
    Token,
    TokenBroker,
    open_store,
)
from freshtoken._errors import TokenUnavailableError
from freshtoken.stores._entry import Entry
from freshtoken.stores._failopen import FailOpenStore
from freshtoken.stores._redis import RedisStore
from freshtoken.testing import AuthServer, Client
from tests._certs import certificates
from tests._fleet import worker_env
from tests._redis import RedisClusterProcesses, RedisProcess, text
from tests.helpers import CANARY_SECRET, make_broker, make_client, missing

STORE_KEY = Secret(base64.b64encode(os.urandom(32)).decode())
TOKEN = Token("at_canary_access_7654321", "Bearer", 2e9, 1.9e9)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path).start()
    yield server
    server.stop()


def _store(url: str, **options: object) -> RedisStore:
    return RedisStore(url, STORE_KEY, **options)  # type: ignore[arg-type]


def test_brokers_on_two_hosts_share_one_token(
    redis_server: RedisProcess, server: AuthServer
) -> None:
    one = make_broker(server, store=_store(redis_server.url))
    two = make_broker(server, store=_store(redis_server.url))  # its own memory layer
    token = one.token()
    assert two.token().access_token == token.access_token
    assert two.stats.adopted == 1 and two.stats.mints == 0
    assert server.stats()["tokens_minted"] == 1


def test_keys_are_hashed_tagged_sealed_and_expire(
    redis_server: RedisProcess, server: AuthServer
) -> None:
    broker = make_broker(server, store=_store(redis_server.url, prefix="ci:"))
    token = broker.token()
    raw = redis.Redis.from_url(redis_server.url)
    names = [text(n) for n in raw.keys("*")]
    assert names == [f"ci:{{{broker.key}}}:entry"]
    dump = b"".join(v for v in raw.hgetall(names[0]).values() if isinstance(v, bytes))
    assert dump
    assert token.access_token.encode() not in dump and b"demo" not in dump
    assert 3500_000 < raw.pttl(names[0]) <= 3600_000  # expires with the token
    assert broker.store.list_keys() == [broker.key]


def test_compare_and_set_and_a_lease_that_ran_out(redis_server: RedisProcess) -> None:
    store = _store(redis_server.url, lease=30)
    first = store.save("k", Entry(TOKEN), 0)
    assert first is not None
    assert store.save("k", Entry(TOKEN), 0) is None
    assert store.save("k", Entry(TOKEN, "rt_x"), first) not in (None, first)
    assert store.save("k", Entry(TOKEN), first) is None  # a paused writer's stale version
    raw = redis.Redis.from_url(redis_server.url)
    other = _store(redis_server.url, lease=30)
    with contextlib.ExitStack() as new_owner:
        with store.lock("k", 1) as held:
            assert held and store.owns_lock("k")
            assert text(raw.get("freshtoken:{k}:lock")).startswith(f"{os.getpid()}:")
            with other.lock("k", 0.05) as other_held:
                assert not other_held
            raw.delete("freshtoken:{k}:lock")  # the lease ran out while this holder was paused
            assert new_owner.enter_context(other.lock("k", 1))
            assert not store.owns_lock("k")
        # The paused holder released: the new owner's lock is still there, still its own.
        assert other.owns_lock("k") and raw.exists("freshtoken:{k}:lock") == 1
    assert raw.exists("freshtoken:{k}:lock") == 0  # other released its own


def test_password_from_the_environment_and_acl_users(tmp_path: Path, server: AuthServer) -> None:
    protected = RedisProcess(tmp_path, ("requirepass", CANARY_SECRET)).start()
    try:
        store = RedisStore(protected.url, STORE_KEY, password=Secret(CANARY_SECRET))
        assert make_broker(server, store=store).token().access_token
        wrong = RedisStore(protected.url, STORE_KEY, password=Secret("wrong-password-1"))
        # Wrong settings, not an outage: a configuration error (exit 2), even failing open.
        with pytest.raises(ConfigurationError) as info:
            make_broker(server, store=FailOpenStore(wrong)).token()
        assert CANARY_SECRET not in str(info.value) and "wrong-password-1" not in str(info.value)
        assert "FRESHTOKEN_REDIS_PASSWORD" in info.value.hint
    finally:
        protected.stop()
    acl = RedisProcess(
        tmp_path, ("user", "ci on >acl-pass-99 ~freshtoken:* &* +@all"), ("user", "default off")
    ).start()
    try:
        url = acl.url.replace("redis://", "redis://ci@")
        store = RedisStore(url, STORE_KEY, password=Secret("acl-pass-99"))
        assert make_broker(server, store=store).token().access_token
    finally:
        acl.stop()


def test_tls(tmp_path: Path, server: AuthServer) -> None:
    ca, cert, key = certificates(tmp_path)
    tls = RedisProcess(
        tmp_path,
        ("tls-cert-file", str(cert)),
        ("tls-key-file", str(key)),
        ("tls-ca-cert-file", str(ca)),
        ("tls-auth-clients", "no"),
        tls=True,
    )
    try:
        tls.start()
    except RuntimeError as exc:
        missing("redis-server with TLS", str(exc))
    try:
        store = RedisStore(f"{tls.url}?ssl_ca_certs={ca}", STORE_KEY)
        assert make_broker(server, store=store).token().access_token
        untrusted = RedisStore(tls.url, STORE_KEY)  # the system CAs do not know this one
        with pytest.raises(StoreError, match="Redis store"):
            untrusted.load("k")
    finally:
        tls.stop()


def test_fail_open_warns_once_and_resumes_sharing(
    redis_server: RedisProcess, server: AuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = FailOpenStore(_store(redis_server.url, timeout=0.5), retry_after=0.0)
    # Invalidates on purpose, twice in a row: no cooldown between them.
    broker = make_broker(server, store=store, invalidate_cooldown=0.0)
    first = broker.token()
    redis_server.kill()
    assert broker.token() is first  # the memory layer needs no Redis
    broker.invalidate(first)
    second = broker.token()  # Redis is down: minted locally
    broker.invalidate(second)
    broker.token()
    assert caplog.text.count("using this process's own cache") == 1
    redis_server.start()
    broker.invalidate(broker.token())
    shared = broker.token()
    other = make_broker(server, store=_store(redis_server.url))
    assert other.token().access_token == shared.access_token
    assert "sharing resumes" in caplog.text


def test_fail_closed_raises_a_store_error(redis_server: RedisProcess, server: AuthServer) -> None:
    broker = make_broker(server, store=_store(redis_server.url, timeout=0.3))
    redis_server.kill()
    with pytest.raises(StoreError) as info:
        broker.token()
    assert "cannot read the Redis store redis://127.0.0.1" in str(info.value)


def test_open_store_reads_redis_settings(redis_server: RedisProcess) -> None:
    store = open_store(redis_server.url, STORE_KEY, redis_prefix="x:", fail="open")
    assert isinstance(store, FailOpenStore) and isinstance(store.shared, RedisStore)
    assert store.shared.prefix == "x:"
    closed = open_store(redis_server.url, STORE_KEY, fail="closed")
    assert isinstance(closed, RedisStore) and closed.prefix == "freshtoken:"


@pytest.mark.slow
def test_a_redis_cluster(tmp_path: Path) -> None:
    """Entries spread over the cluster's nodes; each entry's lock lives in its slot, so the
    lock, the compare-and-set script and the sharing work as on one Redis."""
    cluster = RedisClusterProcesses(tmp_path).start()
    try:
        with AuthServer(clients=[Client(f"c{i}", "s") for i in range(12)]) as server:

            def broker(i: int) -> TokenBroker:
                client = make_client(server, client_id=f"c{i}", secret="s")
                return TokenBroker(client, grant=ClientCredentials(), store=_store(cluster.url))

            brokers = [broker(i) for i in range(12)]
            tokens = [b.token() for b in brokers]
            again = broker(0)
            assert again.token().access_token == tokens[0].access_token  # adopted
            assert server.stats()["tokens_minted"] == 12
        holders = []
        for node in cluster.nodes:
            with redis.Redis(port=node.port) as raw:
                holders.append(len(raw.keys("freshtoken:*")))
        assert sum(holders) == 12 and sum(1 for h in holders if h) >= 2, holders
        store = _store(cluster.url)
        assert sorted(store.list_keys()) == sorted(b.key for b in brokers)
        key = brokers[5].key
        version = store.load(key)
        assert version is not None
        with store.lock(key, 1) as held:
            assert held and store.owns_lock(key)
            assert store.save(key, Entry(TOKEN), version.version) is not None
            assert store.save(key, Entry(TOKEN), version.version) is None  # stale version
        # A plain redis:// client on a cluster node: a clear error saying what to use.
        plain = _store(f"redis://127.0.0.1:{cluster.nodes[0].port}/0")
        errors = []
        for b in brokers:  # some keys are on the node asked, the others are not
            try:
                plain.load(b.key)
            except StoreError as exc:
                errors.append(exc)
        assert errors and all("redis+cluster://" in e.hint for e in errors)
        assert "MovedError" in str(errors[0])
    finally:
        cluster.stop()


class _LeaseRunsOutDuringIntrospection:
    """A loopback relay for the introspection endpoint: the first request makes every lock's
    lease run out (what a holder paused past its lease sees), then it is passed on to the
    real server and its answer returned."""

    def __init__(self, server: AuthServer, redis_url: str) -> None:
        raw = redis.Redis.from_url(redis_url)
        target = server.url + "/oauth/introspect"
        self.lapsed = 0

        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if not relay.lapsed:
                    relay.lapsed = sum(raw.delete(name) for name in raw.keys("*:lock"))
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = httpx.post(target, content=body, headers=headers)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers["content-type"])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/oauth/introspect"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.mark.slow
def test_a_holder_whose_lease_ran_out_before_presenting_never_presents(
    redis_server: RedisProcess,
) -> None:
    """Lock ownership before a refresh token is presented: a holder whose lease ran out
    after it took the lock (paused, or slow) may have a successor spending the same refresh
    token; it checks that it still owns the lock, and does not present it."""
    with AuthServer() as server:
        relay = _LeaseRunsOutDuringIntrospection(server, redis_server.url)
        env = worker_env(
            server,
            redis_server.url,
            FRESHTOKEN_STORE_KEY=STORE_KEY.reveal(),
            FRESHTOKEN_INTROSPECTION_URL=relay.url,
            # The second call waits the first one's mark out (its attempt window, about 6 s),
            # then starts the spender: on a loaded machine 10 s left too little for that.
            FRESHTOKEN_RETRY_BUDGET="30",
        )
        try:
            broker = TokenBroker.from_settings(Settings.from_env(env), grant=None)
            seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
            assert seed.refresh_token
            broker.seed_refresh_token(seed.refresh_token)
            with pytest.raises(TokenUnavailableError, match="lock was lost"):
                broker.token()
            assert relay.lapsed == 1
            assert server.stats()["refreshes"] == 0, "presented without owning the lock"
            # The next call (lock held throughout) waits the mark out, then presents it once.
            assert broker.token().access_token
        finally:
            relay.close()
        stats = server.stats()
    assert stats["refreshes"] == 1 and stats["reuse_detections"] == 0


@pytest.mark.slow
def test_a_live_holder_keeps_its_lock_for_many_leases(redis_server: RedisProcess) -> None:
    """Lock ownership while the holder lives: its lease is renewed, so a mint that takes
    longer than the lease keeps the lock (only a holder that dies or is stopped loses it)."""
    store, other = _store(redis_server.url, lease=1.5), _store(redis_server.url, lease=1.5)
    try:
        with store.lock("k", 1.0) as held:
            assert held
            time.sleep(5.0)  # more than three leases
            assert store.owns_lock("k"), "the lease ran out while its holder lived"
            with other.lock("k", 0.0) as taken:
                assert not taken
    finally:
        store.close()
        other.close()
