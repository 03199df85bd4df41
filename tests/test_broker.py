"""The broker in one process: cache, min_ttl, refresh-ahead, invalidate, stale-if-error,
refresh tokens, scope checks and the auth adapters, over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
import requests

from freshtoken import (
    AuthorizationCode,
    ClientCredentials,
    ConfigurationError,
    InsufficientScopeError,
    InvalidGrantError,
    MemoryStore,
    RefreshPolicy,
    RefreshTokenGrant,
    RetryPolicy,
    ServerError,
    TokenBroker,
    TokenSource,
)
from freshtoken.auth._retry401 import Retry401
from freshtoken.testing import AuthServer, Client, FakeClock
from tests.helpers import assert_no_leak, concurrently, make_broker, make_client, wait_until


def test_second_call_is_a_cache_hit(server: AuthServer, clock: FakeClock) -> None:
    broker = make_broker(server, clock)
    assert isinstance(broker, TokenSource)
    first = broker.token()
    assert broker.token() is first
    assert first.refresh_token is None
    stats = broker.stats
    assert (stats.mints, stats.hits) == (1, 1)
    assert server.stats()["tokens_minted"] == 1


def test_min_ttl_is_honoured(server: AuthServer, clock: FakeClock) -> None:
    broker = make_broker(server, clock)
    first = broker.token(min_ttl=900)
    clock.advance(3600 - 600)  # 600 s left: enough for 300, not for 900
    assert broker.token(min_ttl=300) is first
    second = broker.token(min_ttl=900)
    assert second is not first
    assert second.valid_for(900, clock.time())
    assert broker.stats.mints == 2


NO_REFRESH_AHEAD = RefreshPolicy(fraction=0, floor=0, max_fraction=0)


def test_a_token_is_never_handed_out_with_less_than_its_margin_left(
    server: AuthServer, clock: FakeClock
) -> None:
    broker = make_broker(server, clock, refresh=NO_REFRESH_AHEAD)
    first = broker.token(min_ttl=60)
    clock.advance(first.expires_at - clock.time() - 60)  # exactly 60 s left
    assert broker.token(min_ttl=60) is first
    clock.advance(0.001)
    second = broker.token(min_ttl=60)
    assert second is not first and second.expires_at - clock.time() >= 60
    # The default margin: min(default_min_ttl 5 s, a quarter of the lifetime).
    clock.advance(second.expires_at - clock.time() - 5)
    assert broker.token() is second
    clock.advance(0.001)
    third = broker.token()
    assert third is not second and third.expires_at - clock.time() >= 5
    assert broker.stats.mints == 3


@pytest.mark.parametrize("genesys", [False, True], ids=["generic", "genesys-preset"])
def test_min_ttl_longer_than_the_server_grants_says_how_to_fix(
    clock: FakeClock, genesys: bool
) -> None:
    """A usage error (exit 2), found with at most one mint: the lifetime is remembered. Only
    the Genesys preset's hint names Genesys Cloud's setting."""
    with AuthServer(ttl=300) as server:
        client = make_client(server, clock, region="eu_west_1" if genesys else None)
        broker = TokenBroker(client, grant=ClientCredentials(), store=MemoryStore())
        for _ in range(3):
            with pytest.raises(ConfigurationError) as info:
                broker.token(min_ttl=900)
            assert "300s a token of this client lives" in info.value.message
            assert ("Token Duration" in info.value.hint) is genesys
            assert "raise the token lifetime on the OAuth client" in info.value.hint
            assert not info.value.retryable and info.value.exit_code == 2
        assert server.stats()["tokens_minted"] == 1


def test_refresh_ahead_serves_the_current_token_while_one_refresh_runs(
    server: AuthServer, clock: FakeClock
) -> None:
    broker = make_broker(server, clock, refresh=RefreshPolicy(fraction=0.25, floor=30))
    first = broker.token()
    server.configure(latency=1.0)  # the refresh takes 1 s: the 50 calls are over long before
    clock.advance(3600 - 800)  # inside the 900 s window
    served = [broker.token(min_ttl=60) for _ in range(50)]
    assert all(t is first for t in served)  # nobody waited for the network
    assert broker.stats.mints == 1  # all 50 were answered while the refresh was under way
    wait_until(lambda: broker.stats.mints == 2)
    second = broker.token(min_ttl=60)
    assert second is not first
    assert server.stats()["tokens_minted"] == 2


def test_a_hundred_callers_that_saw_one_401_cause_one_mint(server: AuthServer) -> None:
    broker = make_broker(server)
    stale = broker.token()
    server.revoke_all()

    def caller() -> str:
        broker.invalidate(stale)
        return broker.token().access_token

    seen = concurrently(100, caller)
    assert len(seen) == 100 and len(set(seen)) == 1
    assert seen[0] != stale.access_token
    assert server.stats()["tokens_minted"] == 2


def test_cold_start_of_many_threads_mints_once(server: AuthServer) -> None:
    broker = make_broker(server)
    tokens = concurrently(32, lambda: broker.token().access_token)
    assert len(tokens) == 32 and len(set(tokens)) == 1
    assert server.stats()["tokens_minted"] == 1


def test_async_callers_share_one_mint(server: AuthServer) -> None:
    broker = make_broker(server)

    async def main() -> set[str]:
        tokens = await asyncio.gather(*(broker.atoken() for _ in range(50)))
        return {t.access_token for t in tokens}

    assert len(asyncio.run(main())) == 1
    assert server.stats()["tokens_minted"] == 1


def test_stale_if_error_keeps_serving_while_the_endpoint_is_down(
    server: AuthServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker(server, clock, policy=RetryPolicy(budget=1, base=0.1, cap=0.1))
    first = broker.token()
    server.configure(failure_rate=1.0)
    clock.advance(3600 - 600)  # in the refresh window, 600 s left
    for _ in range(20):
        assert broker.token(min_ttl=60) is first
    wait_until(lambda: broker.stats.stale_served >= 1)
    assert broker.token(min_ttl=60) is first
    assert "refresh ahead failed" in caplog.text
    with pytest.raises(Exception, match="503"):
        broker.token(min_ttl=900)  # no token can satisfy this one: now it is an error
    server.configure(failure_rate=0.0)
    clock.advance(31)  # past the back-off
    assert broker.token(min_ttl=900) is not first


def test_refresh_token_rotation_is_used_and_stored(server: AuthServer) -> None:
    store = MemoryStore()
    broker = make_broker(server, store=store, grant=None)
    with pytest.raises(InvalidGrantError, match="no refresh token"):
        broker.token()
    seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
    assert seed.refresh_token
    broker.seed_refresh_token(seed.refresh_token)
    first = broker.token()
    entry = store.load(broker.key)
    assert entry is not None and entry.refresh_token not in (None, seed.refresh_token)
    assert entry.phase_owner is None
    assert first.refresh_token is None  # callers never see the refresh token
    broker.invalidate(first)
    broker.token()
    stats = server.stats()
    assert stats["refreshes"] == 2
    assert stats["reuse_detections"] == 0
    assert server.active_refresh_tokens("demo-client") == 1


def test_invalid_grant_falls_back_to_client_credentials(
    server: AuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker(server)
    broker.seed_refresh_token("rt_not_a_real_one")
    token = broker.token()
    assert token.access_token
    assert "falling back to client_credentials" in caplog.text
    entry = broker.store.load(broker.key)
    assert entry is not None and entry.refresh_token is None
    assert server.stats()["minted"]["demo-client"] == {"client_credentials": 1}


def test_invalid_grant_without_client_credentials_says_to_seed(server: AuthServer) -> None:
    broker = make_broker(server, grant=None)
    broker.seed_refresh_token("rt_not_a_real_one")
    with pytest.raises(InvalidGrantError) as info:
        broker.token()
    assert "seed it" in info.value.hint


def _mark_spent_by_a_dead_holder(broker: TokenBroker, refresh: str) -> None:
    broker.seed_refresh_token(refresh)
    entry = broker.store.load(broker.key)
    assert entry is not None
    broker.store.save(
        broker.key, replace(entry, phase="spending", phase_owner="dead-holder"), entry.version
    )


def test_an_unfinished_refresh_is_resumed_when_the_server_says_unspent(
    server: AuthServer,
) -> None:
    broker = make_broker(server, grant=None)
    seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
    assert seed.refresh_token
    # A holder marked it and died before sending: it is still unspent, so it is resumed.
    _mark_spent_by_a_dead_holder(broker, seed.refresh_token)
    assert broker.token().access_token
    stats = server.stats()
    assert (stats["reuse_detections"], stats["refreshes"], stats["introspections"]) == (0, 1, 1)


def test_a_spent_refresh_token_is_never_presented_again(
    server: AuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker(server)
    client = make_client(server)
    seed = client.fetch(AuthorizationCode(server.issue_code("demo-client")))
    assert seed.refresh_token
    client.fetch(RefreshTokenGrant(seed.refresh_token))  # spent; its answer was "lost"
    _mark_spent_by_a_dead_holder(broker, seed.refresh_token)
    assert broker.token().access_token  # from client credentials instead
    assert server.stats()["reuse_detections"] == 0
    assert "not presented again" in caplog.text


def test_scope_check_raises_and_caches_nothing() -> None:
    cfg = Client("scoped", "pw", scopes=frozenset({"read"}))
    with AuthServer(clients=[cfg], narrow_scope=True) as server:
        client = make_client(server, client_id="scoped", secret="pw")
        store = MemoryStore()
        broker = TokenBroker(client, grant=ClientCredentials(("read", "write")), store=store)
        with pytest.raises(InsufficientScopeError) as info:
            broker.token()
        assert "write" in str(info.value)
        entry = store.load(broker.key)
        assert entry is None or entry.token is None
        with pytest.raises(InsufficientScopeError):
            broker.token()
        assert server.stats()["tokens_minted"] == 2  # nothing was cached in between


def test_scope_check_can_warn(caplog: pytest.LogCaptureFixture) -> None:
    cfg = Client("scoped", "pw", scopes=frozenset({"read"}))
    with AuthServer(clients=[cfg], narrow_scope=True) as server:
        client = make_client(server, client_id="scoped", secret="pw")
        broker = TokenBroker(
            client,
            grant=ClientCredentials(("read", "write")),
            store=MemoryStore(),
            scope_check="warn",
        )
        assert broker.token().scope == ("read",)
    assert "without write" in caplog.text


def test_no_scope_in_the_answer_is_accepted() -> None:
    with AuthServer.genesys() as server:
        broker = make_broker(server, grant=ClientCredentials(("anything",)))
        assert broker.token().scope is None


def test_a_rotated_secret_gets_its_own_cache_key(server: AuthServer) -> None:
    store = MemoryStore()
    one = make_broker(server, store=store)
    two = make_broker(server, store=store)
    rotated = make_broker(server, store=store, secret="rotated-secret")
    assert one.key == two.key
    assert rotated.key != one.key
    assert len(one.key) == 40
    for text in (one.key, rotated.key):
        assert "demo" not in text
        assert "rotated" not in text


@pytest.mark.slow
def test_background_refresher_keeps_the_token_fresh() -> None:
    with AuthServer(ttl=2) as server:
        broker = make_broker(server, default_min_ttl=0.2)
        with broker:
            wait_until(lambda: broker.stats.mints >= 3, timeout=10)
            called = time.time()  # valid for 0.2 s from the call on, however late this runs
            assert broker.token(min_ttl=0.2).expires_at - called >= 0.2
        assert broker.stats.failures == 0


def test_busy_callers_do_not_delay_the_background_refresher(clock: FakeClock) -> None:
    with AuthServer(ttl=2) as server:
        broker = make_broker(server, clock, default_min_ttl=0.2)
        with broker:
            first = broker.token()
            clock.advance(first.expires_at - clock.time() - 1.0)  # the window: 1 s left

            def busy_caller() -> bool:
                # Callers in the window, far more often than once a (fake) second, moving the
                # clock on to 0.6 s left at most: however long the refresher takes to wake
                # (real time), only the refresher can renew before 0.2 s are left.
                if first.expires_at - clock.time() > 0.6:
                    clock.advance(0.001)
                return broker.token() is not first

            wait_until(busy_caller, timeout=10)
            left = first.expires_at - clock.time()
        # Renewed by the refresher in the window, not by a caller at the last moment (0.2 s
        # left), which is what happens when callers keep postponing it.
        assert left > 0.5, left
        assert broker.stats.failures == 0
        assert server.stats()["tokens_minted"] == 2  # one renewal, by the refresher


@pytest.mark.slow
def test_a_failing_background_refresher_backs_off(server: AuthServer) -> None:
    broker = make_broker(server, secret="wrong-secret-1")
    with broker:
        wait_until(lambda: server.stats()["token_requests"] >= 1)
        started = time.monotonic()
        wait_until(lambda: server.stats()["token_requests"] >= 3, timeout=20)
        waited = time.monotonic() - started
    # Backoff 1 s then 2 s (without it: a request every 50 ms, 3 within 0.15 s).
    assert waited >= 2.5
    assert broker.stats.failures >= 2


# -- adapters ---------------------------------------------------------------------------------


def test_httpx_auth_retries_once_after_a_401(server: AuthServer) -> None:
    broker = make_broker(server)
    with httpx.Client(auth=broker.httpx_auth()) as http:
        assert http.get(server.url + "/api/echo").status_code == 200
        server.revoke_all()  # the cached token is now refused
        assert http.post(server.url + "/api/echo", content=b"body").status_code == 200
    assert server.stats()["tokens_minted"] == 2
    assert server.stats()["api_401"] == 1


def test_httpx_async_auth(server: AuthServer) -> None:
    broker = make_broker(server)

    async def main() -> list[int]:
        async with httpx.AsyncClient(auth=broker.httpx_auth()) as http:
            first = await http.get(server.url + "/api/echo")
            server.revoke_all()
            second = await http.get(server.url + "/api/v2/tokens/me")
            return [first.status_code, second.status_code]

    assert asyncio.run(main()) == [200, 200]
    assert server.stats()["tokens_minted"] == 2


def test_requests_auth_retries_once_after_a_401(server: AuthServer) -> None:
    broker = make_broker(server)
    with requests.Session() as http:
        http.auth = broker.requests_auth()
        assert http.get(server.url + "/api/echo").status_code == 200
        server.revoke_all()
        response = http.get(server.url + "/api/echo")
        assert response.status_code == 200
        assert [r.status_code for r in response.history] == [401]
    assert server.stats()["tokens_minted"] == 2


def test_an_api_that_always_says_401_is_retried_only_once(server: AuthServer) -> None:
    broker = make_broker(server)
    with httpx.Client(auth=broker.httpx_auth()) as http:
        response = http.get(server.url + "/api/echo", headers={})
        assert response.status_code == 200
        server.configure(ttl=0.000001)  # every new token is dead on arrival
        server.revoke_all()
        assert http.get(server.url + "/api/echo").status_code == 401
    assert server.stats()["api_401"] == 2


def test_the_401_rule_sends_again_once_even_when_a_new_token_is_at_hand(
    server: AuthServer,
) -> None:
    """The 401 rule without the cooldown's help (it is off here, so every 401 could get a new
    token): one more send after a 401, and the second 401 goes back to the caller. The
    proxy and the Genesys SDK client ask again after every 401; only the rule stops them."""
    broker = make_broker(server, invalidate_cooldown=0.0)
    attempt = Retry401(broker)
    first = attempt.token()
    second = attempt.again(401)
    assert second is not None and second.access_token != first.access_token
    assert attempt.again(401) is None, "sent a third time after a second 401"
    assert attempt.again(401) is None
    assert server.stats()["tokens_minted"] == 2


def test_logs_carry_no_token(server: AuthServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # No 401 cooldown: the second invalidation must take effect at once.
    broker = make_broker(
        server, policy=RetryPolicy(budget=0.3, base=0.01, cap=0.05), invalidate_cooldown=0.0
    )
    token = broker.token()
    broker.invalidate(token)
    second = broker.token()
    server.configure(failure_rate=1.0)  # a failed refresh, logged with what it was doing
    broker.invalidate(second)
    with pytest.raises(ServerError):
        broker.token()
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    assert_no_leak("the logs", caplog.text, token.access_token, second.access_token)


def test_a_stored_token_that_lost_its_min_ttl_on_the_way_is_renewed_not_an_error(
    server: AuthServer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another holder's token had min_ttl left when this caller took it, and less by the time
    it was checked (a slow moment of a loaded machine): the caller decides again and renews,
    instead of failing with "a new token had less left than asked for"."""
    store = MemoryStore()
    make_broker(server, clock, store=store).token()  # another holder's, stored: 3600 s
    broker = make_broker(server, clock, store=store)
    clock.advance(3600 - 1000)  # 1,000 s left
    cache = broker._cache  # the moment between the decision and the check
    adopt = cache.adopt

    def slow_adopt(entry: Any, sent: float | None = None) -> Any:
        taken = adopt(entry, sent)
        clock.advance(300)  # 700 s left: less than the 900 asked for
        return taken

    monkeypatch.setattr(cache, "adopt", slow_adopt)
    token = broker.token(min_ttl=900)
    assert broker.remaining(token) >= 900
    assert server.stats()["tokens_minted"] == 2
