"""The promises under faults, each reproduced for real: a call ends within its budget (a
dripping, silent or failing endpoint), a hand-out is valid for what was asked (bad min_ttl,
slow mints, a clock stepped back), a refresh token is never presented twice (a server slower
than the timeout), and bad input is a clean error (no traceback, the right exit code)."""

from __future__ import annotations

import base64
import concurrent.futures
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from freshtoken import (
    AuthorizationCode,
    ClientCredentials,
    ClientSecretBasic,
    Endpoints,
    RequestTimeoutError,
    RetryPolicy,
    Secret,
    Timeouts,
    TokenClient,
)
from freshtoken.testing import AuthServer
from tests._cli import cli_env, ft
from tests._hostile import NESTED_JSON, HostileServer, answer, drip, drip_headers, silent
from tests.helpers import Serve, libfaketime, make_client, require, wait_until


def _on(url: str, tmp: Path, **extra: str) -> dict[str, str]:
    return cli_env(
        tmp,
        FRESHTOKEN_TOKEN_URL=url,
        FRESHTOKEN_CLIENT_ID="demo-client",
        FRESHTOKEN_CLIENT_SECRET="demo-secret",
        **extra,
    )


# -- 1. one deadline per call ---------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "behave", [drip, drip_headers, silent], ids=["drips-body", "drips-headers", "silent"]
)
def test_a_call_ends_within_its_budget_whatever_the_endpoint_does(
    tmp_path: Path, behave: object
) -> None:
    with HostileServer(behave) as hostile:  # type: ignore[arg-type]
        env = _on(
            hostile.token_url, tmp_path, FRESHTOKEN_RETRY_BUDGET="2", FRESHTOKEN_READ_TIMEOUT="10"
        )
        started = time.monotonic()
        out = ft(["token"], env, tmp_path)
        took = time.monotonic() - started
    assert out.returncode == 4, out.stderr
    assert "timed out" in out.stderr and "Traceback" not in out.stderr
    assert took < 2 + 3.0, took  # the budget, plus starting Python (a generous margin)


@pytest.mark.slow
def test_the_library_deadline_is_the_retry_budget() -> None:
    with HostileServer(drip) as hostile:
        client = TokenClient(
            ClientSecretBasic("demo-client", Secret("demo-secret")),
            endpoints=Endpoints(hostile.token_url),
            policy=RetryPolicy(budget=1.0),
            timeouts=Timeouts(connect=5, read=30),
        )
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as info:
            client.fetch(ClientCredentials())
        took = time.monotonic() - started
        # the watchdog closed the connection; the client makes a new one for the next call
        with pytest.raises(RequestTimeoutError):
            client.fetch(ClientCredentials())
    assert took < 1.0 + 1.0, took
    assert "budget" in str(info.value)


# -- 2. an unknown outcome counts as spent ---------------------------------------------------
@pytest.mark.slow
def test_a_refresh_slower_than_the_timeout_is_never_presented_twice(tmp_path: Path) -> None:
    """The server takes longer than the read timeout: the first caller gives up while its
    refresh is still in flight; later callers must not present the same refresh token."""
    with AuthServer(ttl=60, latency=1.2) as server:
        seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
        assert seed.refresh_token
        env = _on(
            server.token_url,
            tmp_path,
            FRESHTOKEN_GRANT="refresh_token",
            FRESHTOKEN_READ_TIMEOUT="0.4",
            FRESHTOKEN_RETRY_BUDGET="3",
            FRESHTOKEN_INTROSPECTION_URL=server.url + "/oauth/introspect",
            FRESHTOKEN_STORE=f"sqlite://{tmp_path}/t.db",
        )
        seeded = ft(["seed-refresh-token"], env, tmp_path, stdin=seed.refresh_token)
        assert seeded.returncode == 0, seeded.stderr
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(lambda _: ft(["token"], env, tmp_path), range(8)))
        stats = server.stats()
    assert stats["reuse_detections"] == 0, stats
    for run in runs:  # each failed clearly (the outcome is unknown), none with a traceback
        assert run.returncode in (0, 3, 4), run.stderr
        assert "Traceback" not in run.stderr


# -- 4, 5. a hand-out is valid for what was asked --------------------------------------------
@pytest.mark.parametrize("value", ["-5", "nan", "inf", "-inf"])
def test_a_min_ttl_that_is_not_a_duration_is_refused(
    tmp_path: Path, server: AuthServer, value: str
) -> None:
    env = cli_env(tmp_path, server)
    out = ft(["token", "--min-ttl", value], env, tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == "" and "min_ttl" in out.stderr
    serve = Serve([], env, tmp_path)
    try:
        answer_ = httpx.get(
            serve.ready["url"] + f"/token?min_ttl={value}", headers=serve.headers(), timeout=10
        )
    finally:
        serve.stop()
    assert answer_.status_code == 400, answer_.text
    assert "access_token" not in answer_.text


def test_a_min_ttl_beyond_the_lifetime_mints_at_most_once(tmp_path: Path) -> None:
    with AuthServer(ttl=600) as server:
        env = cli_env(tmp_path, server)
        runs = [ft(["token", "--min-ttl", "900"], env, tmp_path) for _ in range(3)]
        minted = server.stats()["tokens_minted"]
    for run in runs:
        assert run.returncode == 2 and "600s a token of this client lives" in run.stderr
    assert minted <= 1


@pytest.mark.slow
def test_a_mint_slower_than_the_token_lives_is_an_error(tmp_path: Path) -> None:
    with AuthServer(ttl=1, latency=1.3) as server:
        out = ft(["token", "--format", "json"], cli_env(tmp_path, server), tmp_path)
    assert out.returncode == 4, out.stdout
    assert out.stdout == "" and "less than" in out.stderr


# -- 3. a clock stepped back -----------------------------------------------------------------
@pytest.mark.slow
def test_serve_hands_out_no_expired_token_when_the_clock_steps_back(tmp_path: Path) -> None:
    offset = tmp_path / "offset"
    offset.write_text("+0\n")
    with AuthServer(ttl=3) as server:
        env = cli_env(
            tmp_path,
            server,
            FRESHTOKEN_STORE="memory://",  # libfaketime breaks time.sleep; memory locks wait
            LD_PRELOAD=libfaketime(),
            FAKETIME_TIMESTAMP_FILE=str(offset),
            FAKETIME_NO_CACHE="1",
            FAKETIME_DONT_FAKE_MONOTONIC="1",  # as a real step: the monotonic clock goes on
        )
        serve = Serve([], env, tmp_path)
        bad, calls = [], 0
        try:
            end = time.monotonic() + 10
            stepped = False
            with httpx.Client(timeout=10) as http:
                while time.monotonic() < end:
                    if not stepped and time.monotonic() > end - 7:
                        offset.write_text("-60\n")  # the wall clock steps back a minute
                        stepped = True
                    got = http.get(
                        serve.ready["url"] + "/token?min_ttl=0.5", headers=serve.headers()
                    )
                    assert got.status_code == 200, got.text
                    token = got.json()
                    calls += 1
                    api = http.get(
                        server.url + "/api/v2/tokens/me",
                        headers={"Authorization": "Bearer " + token["access_token"]},
                    )
                    if api.status_code != 200:
                        bad.append((token["expires_in"], api.status_code))
        finally:
            serve.stop()
    assert stepped and calls > 20
    assert bad == [], bad


# -- 7. an outage past the token's life --------------------------------------------------------
@pytest.mark.slow
def test_an_outage_is_answered_within_the_budget_with_the_endpoints_error(
    tmp_path: Path,
) -> None:
    with AuthServer(ttl=2) as server:
        env = cli_env(tmp_path, server, FRESHTOKEN_RETRY_BUDGET="2")
        serve = Serve([], env, tmp_path)
        try:
            url = serve.ready["url"] + "/token"
            first = httpx.get(url, headers=serve.headers(), timeout=10)
            assert first.status_code == 200
            server.configure(failure_rate=1.0)
            # refreshes fail, and the cached token runs out
            ends = first.json()["expires_at"]
            wait_until(lambda: server.stats()["faults"] > 0 and time.time() > ends, timeout=10)

            def ask(_: int) -> tuple[float, httpx.Response]:
                started = time.monotonic()
                got = httpx.get(url, headers=serve.headers(), timeout=30)
                return time.monotonic() - started, got

            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(ask, range(6)))
        finally:
            serve.stop()
    for took, got in answers:
        assert got.status_code == 503, got.text
        body = got.json()
        assert body["error"] == "temporarily_unavailable"  # the endpoint's own word
        assert "is failing (HTTP 503)" in body["hint"]
        assert took < 2 + 1.5, took  # within the budget, not queued behind each other


# -- 8. bad input: a clean error, never a traceback ------------------------------------------
def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


BAD_SETTINGS = {
    "timeout-inf": ({"FRESHTOKEN_READ_TIMEOUT": "inf"}, 2, "FRESHTOKEN_READ_TIMEOUT"),
    "budget-1e308": ({"FRESHTOKEN_RETRY_BUDGET": "1e308"}, 2, "FRESHTOKEN_RETRY_BUDGET"),
    "unclosed-ipv6": ({"FRESHTOKEN_TOKEN_URL": "http://[::1/oauth/token"}, 2, "not a valid URL"),
    "port-99999": ({"FRESHTOKEN_TOKEN_URL": "http://127.0.0.1:99999/t"}, 2, "not a valid URL"),
    "redis-port-99999": (
        {"FRESHTOKEN_STORE": "redis://127.0.0.1:99999/0", "FRESHTOKEN_STORE_KEY": _key()},
        2,
        "not a valid URL",
    ),
    "nul-in-sqlite-path": ({"FRESHTOKEN_STORE": "sqlite:///tmp/a%00b.db"}, 2, "FRESHTOKEN_STORE"),
    "relative-sqlite": ({"FRESHTOKEN_STORE": "sqlite://relative/x.db"}, 2, "absolute"),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS), ids=list(BAD_SETTINGS))
def test_bad_settings_are_clean_errors(tmp_path: Path, server: AuthServer, case: str) -> None:
    extra, code, needle = BAD_SETTINGS[case]
    started = time.monotonic()
    out = ft(["token"], cli_env(tmp_path, server, **extra), tmp_path)
    assert out.returncode == code, out.stderr
    assert needle in out.stderr and "Traceback" not in out.stderr
    assert out.stderr.startswith("freshtoken: ")
    assert time.monotonic() - started < 10  # refused at once, not retried


def test_a_configuration_file_that_is_not_utf8_is_a_clean_error(
    tmp_path: Path, server: AuthServer
) -> None:
    (tmp_path / "freshtoken.toml").write_bytes(b'[default]\nclient_id = "\xff\xfe"\n')
    out = ft(["token"], cli_env(tmp_path, server), tmp_path)
    assert out.returncode == 2 and "freshtoken.toml" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_nested_json_from_the_endpoint_is_a_clean_error_and_serve_survives_it(
    tmp_path: Path,
) -> None:
    with HostileServer(answer(400, NESTED_JSON)) as hostile:
        env = _on(hostile.token_url, tmp_path, FRESHTOKEN_RETRY_BUDGET="2")
        out = ft(["token"], env, tmp_path)
        assert out.returncode in (3, 4) and "Traceback" not in out.stderr
        serve = Serve([], env, tmp_path)  # its background refresher meets the same answer
        try:
            for _ in range(3):  # every call gets an answer: nothing died
                got = httpx.get(serve.ready["url"] + "/token", headers=serve.headers(), timeout=10)
                assert got.status_code in (502, 503) and got.json()["error"]
        finally:
            serve.stop()


def test_an_oversized_request_is_named_as_such(tmp_path: Path) -> None:
    with HostileServer(answer(431, b"")) as hostile:
        out = ft(["token"], _on(hostile.token_url, tmp_path), tmp_path)
    assert out.returncode == 3 and "too large" in out.stderr


def test_a_wrong_redis_password_is_a_configuration_error(
    tmp_path: Path, server: AuthServer
) -> None:
    require("redis-server")
    from tests._redis import RedisProcess

    redis = RedisProcess(tmp_path, ("requirepass", "right-password-1")).start()
    try:
        env = cli_env(
            tmp_path,
            server,
            FRESHTOKEN_STORE=redis.url,
            FRESHTOKEN_STORE_KEY=_key(),
            FRESHTOKEN_REDIS_PASSWORD="wrong-password-2",
        )
        out = ft(["token"], env, tmp_path)
    finally:
        redis.stop()
    assert out.returncode == 2, out.stderr  # not an outage to fail open on
    assert "refused this client" in out.stderr and "wrong-password-2" not in out.stderr


UNEXPECTED = """
import sys
from freshtoken.config._settings import Settings
from freshtoken.cli._main import main


def boom(*args, **kwargs):
    raise RuntimeError("a bug, with client_secret=demo-secret-canary in its text")


Settings.load = boom  # where every command reads its settings
sys.argv = ["freshtoken", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("verbosity", [[], ["-vv"]], ids=["plain", "vv"])
def test_an_unexpected_error_is_one_line_with_a_pointer_to_vv(
    tmp_path: Path, server: AuthServer, verbosity: list[str]
) -> None:
    env = cli_env(tmp_path, server, FRESHTOKEN_CLIENT_SECRET="demo-secret-canary")
    out = subprocess.run(
        [sys.executable, "-c", UNEXPECTED, *verbosity, "token"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    if verbosity:
        assert "Traceback" in out.stderr  # -vv: the details
    else:
        lines = out.stderr.strip().splitlines()
        said = "unexpected error: RuntimeError: a bug, with client_secret=*** in its text"
        assert lines[0] == f"freshtoken: {said}"
        assert "-vv" in lines[1] and len(lines) == 2


# -- a poisoned shared entry (anyone who can write to Redis, without the store key) ----------
@pytest.mark.parametrize("fail", ["open", "closed"])
def test_a_poisoned_redis_entry_costs_one_mint_and_no_error(
    tmp_path: Path, server: AuthServer, fail: str
) -> None:
    require("redis-server")
    import redis as redis_py

    from freshtoken import Secret, TokenBroker, open_store
    from freshtoken.stores._failopen import FailOpenStore
    from tests._redis import RedisProcess

    key = Secret(_key())
    backend = RedisProcess(tmp_path).start()
    try:

        def broker() -> TokenBroker:
            store = open_store(backend.url, key, fail=fail)
            return TokenBroker(make_client(server), grant=ClientCredentials(), store=store)

        first = broker()
        first.token()
        with redis_py.Redis(port=backend.port) as raw:
            for name in raw.keys("freshtoken:*:entry"):
                raw.hset(name, "b", b"junk written without the store key")
        minted = server.stats()["tokens_minted"]
        second = broker()
        token = second.token()  # no error: the junk is replaced under the lock
        third = broker()
        assert third.token().access_token == token.access_token  # shared again
        assert server.stats()["tokens_minted"] == minted + 1
        assert isinstance(second.store, FailOpenStore) == (fail == "open")
    finally:
        backend.stop()
