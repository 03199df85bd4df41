"""The token client over real HTTP against the shipped test server."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import time

import httpx
import pytest

from freshtoken import (
    AuthorizationCode,
    ClientCredentials,
    ClientSecretBasic,
    ClientSecretPost,
    ConfigurationError,
    ConnectError,
    Endpoints,
    InvalidClientError,
    InvalidGrantError,
    InvalidScopeError,
    MalformedResponseError,
    PublicClient,
    RateLimitedError,
    RefreshTokenGrant,
    RequestTimeoutError,
    RetryPolicy,
    Secret,
    ServerError,
    Settings,
    Timeouts,
    TokenClient,
    UnauthorizedClientError,
    _build,
)
from freshtoken.oauth._response import DEFAULT_LIFETIME
from freshtoken.testing import MALFORMED, AuthServer, Client, FakeClock
from tests.helpers import make_client


def api_status(server: AuthServer, access_token: str) -> int:
    response = httpx.get(
        server.url + "/api/v2/tokens/me", headers={"Authorization": f"Bearer {access_token}"}
    )
    return response.status_code


def test_client_credentials_basic(server: AuthServer, clock: FakeClock) -> None:
    token = make_client(server, clock).fetch(ClientCredentials(scope=("read", "write")))
    assert token.token_type == "Bearer"
    assert token.issued_at == clock.time()
    assert token.expires_at == clock.time() + 3600
    assert token.scope == ("read", "write")
    assert token.refresh_token is None
    assert api_status(server, token.access_token) == 200
    assert server.stats()["minted"] == {"demo-client": {"client_credentials": 1}}


@pytest.mark.parametrize("method", [ClientSecretBasic, ClientSecretPost])
def test_client_credentials_post_and_odd_characters_in_credentials(
    method: type[ClientSecretBasic] | type[ClientSecretPost],
) -> None:
    odd_id, odd_secret = "id:with%odd chars", "s3cr+t:/=&% x"
    with AuthServer(clients=[Client(odd_id, odd_secret)]) as server:
        client = TokenClient(
            method(odd_id, Secret(odd_secret)), endpoints=Endpoints(server.token_url)
        )
        assert api_status(server, client.fetch(ClientCredentials()).access_token) == 200


def test_public_client_none_method() -> None:
    with AuthServer(clients=[Client("spa", None)]) as server:
        code = server.issue_code("spa", ("openid",))
        client = TokenClient(PublicClient("spa"), endpoints=Endpoints(server.token_url))
        token = client.fetch(AuthorizationCode(code))
        assert token.refresh_token


def test_audience_and_resource_are_sent(server: AuthServer) -> None:
    grant = ClientCredentials(audience="https://api.example", resource="urn:x")
    assert grant.form() == {
        "grant_type": "client_credentials",
        "audience": "https://api.example",
        "resource": "urn:x",
    }
    assert make_client(server).fetch(grant).access_token
    received = server.token_requests()[-1]  # what reached the server, not what was meant
    assert received["form"]["audience"] == "https://api.example"
    assert received["form"]["resource"] == "urn:x"
    assert received["auth_method"] == "client_secret_basic"


def test_authorization_code_then_refresh_rotates(server: AuthServer) -> None:
    client = make_client(server)
    code = server.issue_code("demo-client", ("profile",), "http://127.0.0.1/cb")
    first = client.fetch(AuthorizationCode(code, redirect_uri="http://127.0.0.1/cb"))
    assert first.refresh_token and first.scope == ("profile",)
    with pytest.raises(InvalidGrantError):  # a code is single-use
        client.fetch(AuthorizationCode(code, redirect_uri="http://127.0.0.1/cb"))
    second = client.fetch(RefreshTokenGrant(first.refresh_token))
    assert second.refresh_token and second.refresh_token != first.refresh_token
    assert api_status(server, second.access_token) == 200
    assert server.stats()["refreshes"] == 1


def test_reusing_a_rotated_refresh_token_revokes_the_grant(server: AuthServer) -> None:
    client = make_client(server)
    first = client.fetch(AuthorizationCode(server.issue_code("demo-client")))
    assert first.refresh_token
    second = client.fetch(RefreshTokenGrant(first.refresh_token))
    with pytest.raises(InvalidGrantError) as info:
        client.fetch(RefreshTokenGrant(first.refresh_token))
    assert "already used" in info.value.hint
    assert server.stats()["reuse_detections"] == 1
    assert api_status(server, second.access_token) == 401  # the whole grant is gone
    assert second.refresh_token
    with pytest.raises(InvalidGrantError):
        client.fetch(RefreshTokenGrant(second.refresh_token))


def test_refresh_tokens_on_client_credentials_knob() -> None:
    with AuthServer(refresh_on_client_credentials=True) as server:
        assert make_client(server).fetch(ClientCredentials()).refresh_token
    with AuthServer() as server:
        assert make_client(server).fetch(ClientCredentials()).refresh_token is None


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
)
def test_discovery(server: AuthServer, path: str) -> None:
    meta = httpx.get(server.url + path).json()
    assert meta["token_endpoint"] == server.token_url
    client = TokenClient(
        ClientSecretBasic("demo-client", Secret("demo-secret")), issuer=server.issuer
    )
    assert client.endpoints().introspection_url == server.url + "/oauth/introspect"
    assert client.fetch(ClientCredentials()).access_token


def test_discovery_of_a_server_without_metadata_names_what_was_tried() -> None:
    with AuthServer() as server:
        issuer = server.url + "/realms/none"
        client = TokenClient(ClientSecretBasic("demo-client", Secret("demo-secret")), issuer=issuer)
        with pytest.raises(ConfigurationError) as info:
            client.fetch(ClientCredentials())
    assert "/.well-known/oauth-authorization-server/realms/none: HTTP 404" in info.value.hint
    assert "/realms/none/.well-known/openid-configuration: HTTP 404" in info.value.hint


def test_discovery_refuses_a_different_issuer(server: AuthServer) -> None:
    other = server.url.replace("127.0.0.1", "localhost")
    client = TokenClient(ClientSecretBasic("demo-client", Secret("demo-secret")), issuer=other)
    with pytest.raises(ConfigurationError, match="names issuer"):
        client.endpoints()


def test_async_fetch(server: AuthServer) -> None:
    async def main() -> list[str]:
        client = make_client(server)
        tokens = await asyncio.gather(*(client.afetch(ClientCredentials()) for _ in range(5)))
        return [t.access_token for t in tokens]

    tokens = asyncio.run(main())
    assert len(set(tokens)) == 5
    assert all(api_status(server, t) == 200 for t in tokens)


# -- errors and their hints ---------------------------------------------------------------------


def test_invalid_client_names_the_region() -> None:
    with AuthServer.genesys() as server:
        client = make_client(server, secret="wrong", region="eu_west_1")
        with pytest.raises(InvalidClientError) as info:
            client.fetch(ClientCredentials())
    err = info.value
    assert (err.error, err.status, err.retryable) == ("invalid_client", 401, False)
    assert err.description == "authentication failed"
    assert "region eu_west_1" in err.hint
    assert "FRESHTOKEN_REGION" in err.hint
    assert server.stats()["token_requests"] == 1  # never retried


def test_unauthorized_client_says_to_enable_the_grant() -> None:
    client_cfg = Client("cc-only", "pw", grants=frozenset({"client_credentials"}))
    with AuthServer(clients=[client_cfg]) as server:
        client = make_client(server, client_id="cc-only", secret="pw")
        with pytest.raises(UnauthorizedClientError) as info:
            client.fetch(RefreshTokenGrant("rt_whatever"))
    assert "Enable that grant type" in info.value.hint
    assert "refresh_token grant" in info.value.hint


def test_invalid_scope_explains_genesys_roles_and_offline_access() -> None:
    client_cfg = Client("scoped", "pw", scopes=frozenset({"read"}))
    with AuthServer(clients=[client_cfg]) as server:
        # The Genesys words come with the Genesys preset only (tests/test_hints_by_provider.py).
        client = make_client(server, client_id="scoped", secret="pw", region="eu_west_1")
        with pytest.raises(InvalidScopeError) as info:
            client.fetch(ClientCredentials(scope=("read", "offline_access")))
    assert "offline_access" in info.value.hint
    assert "roles" in info.value.hint
    assert info.value.status == 400


@pytest.mark.parametrize("style", ["genesys", "429"])
def test_rate_limit_is_recognised_and_retried_after_the_advised_delay(
    clock: FakeClock, style: str
) -> None:
    with AuthServer(rate_limit=1, rate_window=60, rate_limit_style=style) as server:
        client = make_client(server, clock, policy=RetryPolicy(budget=120))
        client.fetch(ClientCredentials())
        clock.on_sleep = lambda _: server.configure(rate_limit=0)  # the window "passes"
        assert client.fetch(ClientCredentials()).access_token
    assert clock.sleeps == [60.0]
    assert server.stats()["rate_limited"] == 1


def test_rate_limit_beyond_the_budget_raises_without_waiting(clock: FakeClock) -> None:
    with AuthServer.genesys(rate_limit=1, rate_window=60) as server:
        client = make_client(server, clock, policy=RetryPolicy(budget=30))
        client.fetch(ClientCredentials())
        with pytest.raises(RateLimitedError) as info:
            client.fetch(ClientCredentials())
    err = info.value
    assert clock.sleeps == []
    assert err.status == 400 and err.retry_after == 60.0
    assert err.description is not None and err.description.startswith("rate limit exceeded")
    assert "Share one token" in err.hint


def test_server_errors_are_retried_with_full_jitter(clock: FakeClock) -> None:
    with AuthServer(fail_first=3) as server:
        client = TokenClient(
            ClientSecretBasic("demo-client", Secret("demo-secret")),
            endpoints=Endpoints(server.token_url),
            clock=clock,
            policy=RetryPolicy(budget=30, base=0.5, cap=8),
            rng=random.Random(7),
        )
        assert client.fetch(ClientCredentials()).access_token
    assert len(clock.sleeps) == 3
    for attempt, delay in enumerate(clock.sleeps, start=1):
        assert 0 <= delay <= 0.5 * 2 ** (attempt - 1)
    assert server.stats()["faults"] == 3


def test_retries_stop_at_the_budget(clock: FakeClock) -> None:
    with AuthServer(failure_rate=1.0) as server:
        client = make_client(
            server, clock, policy=RetryPolicy(budget=10, base=1, cap=4, max_attempts=100)
        )
        with pytest.raises(ServerError) as info:
            client.fetch(ClientCredentials())
    assert sum(clock.sleeps) <= 10
    assert "gave up after" in str(info.value)
    assert info.value.status == 503 and info.value.retryable
    assert server.stats()["token_requests"] == len(clock.sleeps) + 1


def test_timeout_is_named_and_retried() -> None:
    with AuthServer(latency=0.5) as server:
        client = TokenClient(
            ClientSecretBasic("demo-client", Secret("demo-secret")),
            endpoints=Endpoints(server.token_url),
            timeouts=Timeouts(connect=1, read=0.1),
            policy=RetryPolicy(budget=0.3, base=0.05, cap=0.05),
        )
        with pytest.raises(RequestTimeoutError) as info:
            client.fetch(ClientCredentials())
    assert info.value.retryable
    assert "No answer from 127.0.0.1" in info.value.hint


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = TokenClient(
        ClientSecretBasic("a", Secret("b")),
        endpoints=Endpoints(f"http://127.0.0.1:{port}/oauth/token"),
        policy=RetryPolicy(budget=0.2, base=0.01, cap=0.01),
        clock=FakeClock(),  # the budget spent by the backoff alone: a busy machine's slow
    )  # connection attempts cannot turn the refusal into a timeout
    with pytest.raises(ConnectError) as info:
        client.fetch(ClientCredentials())
    assert info.value.error == "connect_error"
    assert "Could not connect" in info.value.hint


def test_plain_http_to_a_remote_host_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="plain http"):
        TokenClient(
            ClientSecretBasic("a", Secret("b")),
            endpoints=Endpoints("http://login.example.com/oauth/token"),
        )
    with pytest.raises(ConfigurationError, match="not a valid"):
        _build.endpoints(Settings(token_url="ftp://x/token", client_id="a"))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/t",
        "http://[::1]:1/t",
        "http://localhost/t",
        "https://login.example.com/oauth/token",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    endpoints = _build.endpoints(Settings(token_url=url, client_id="a"))
    assert endpoints is not None and endpoints.token_url == url


# -- malformed answers --------------------------------------------------------------------------

AT_VALUE = re.compile(r"at_[A-Za-z0-9_-]{16,}")


#: Odd answers that still carry a usable token.
USABLE = {
    "expires_in_string",
    "expires_in_missing",
    "jwt_without_expires_in",
    "cached_jwt_without_expires_in",
}


@pytest.mark.parametrize("mode", sorted(set(MALFORMED) - USABLE))
def test_malformed_answers_are_clear_errors_and_never_tokens(mode: str) -> None:
    with AuthServer(malformed=mode) as server:
        client = make_client(server, policy=RetryPolicy(budget=5.0, max_attempts=1))
        with pytest.raises((MalformedResponseError, ServerError, InvalidClientError)) as info:
            client.fetch(ClientCredentials())
    text = str(info.value)
    assert "HTTP " in text
    assert info.value.status is not None
    assert not AT_VALUE.search(text), text
    assert "\n" not in text.split("\nhint:", maxsplit=1)[0]
    assert len(text.split("\nhint:", maxsplit=1)[0]) < 400
    if mode == "html_502":
        assert isinstance(info.value, ServerError)
        assert "502 Bad Gateway" in text
    if mode == "redirect":
        assert "redirected" in text and server.stats()["token_requests"] == 1


def test_an_error_beside_an_access_token_is_an_error() -> None:
    with AuthServer(malformed="error_and_token") as server:
        client = make_client(server, policy=RetryPolicy(budget=5.0, max_attempts=1))
        with pytest.raises(ServerError) as info:  # before: the token was taken silently
            client.fetch(ClientCredentials())
    assert info.value.status == 200 and info.value.error == "server_error"
    assert not AT_VALUE.search(str(info.value))


def test_without_expires_in_a_default_lifetime_is_taken_and_said_once(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="freshtoken")
    with AuthServer(malformed="expires_in_missing") as server:
        client = make_client(server, clock)
        tokens = [client.fetch(ClientCredentials()) for _ in range(3)]
    assert [t.lifetime for t in tokens] == [DEFAULT_LIFETIME] * 3  # before: refused
    said = [r for r in caplog.records if "without expires_in" in r.getMessage()]
    assert len(said) == 1 and "300s" in said[0].getMessage()


def test_without_expires_in_a_jwts_exp_gives_the_lifetime(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with AuthServer(malformed="jwt_without_expires_in") as server:
        token = make_client(server, clock).fetch(ClientCredentials())
    assert token.lifetime == 120 and token.expires_at == clock.time() + 120  # exp - iat
    assert not [r for r in caplog.records if "without expires_in" in r.getMessage()]


def test_a_jwt_handed_out_again_lives_only_what_it_has_left() -> None:
    """A server answering with a cached JWT (issued 3300 s ago, exp in 300 s) and no
    expires_in: the token is counted as living 300 s from now, not exp - iat = 3600 s."""
    with AuthServer(malformed="cached_jwt_without_expires_in") as server:
        sent = time.time()
        token = make_client(server).fetch(ClientCredentials())
    assert token.expires_at <= sent + 300 + 1  # before: sent + 3600
    assert token.expires_at >= sent + 300 - 5


def test_expires_in_as_a_numeric_string_is_accepted(clock: FakeClock) -> None:
    with AuthServer(malformed="expires_in_string") as server:
        token = make_client(server, clock).fetch(ClientCredentials())
    assert token.expires_at == clock.time() + 3600
