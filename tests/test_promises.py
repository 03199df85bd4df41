"""A server that revokes the previous access token when it rotates a refresh token (as
django-oauth-toolkit does): a token handed out stays valid for the min_ttl it was promised,
across processes sharing a store, and a rotation waits for the promises (or the budget ends,
with an error that says why)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from freshtoken import AuthorizationCode, Settings, TokenBroker
from freshtoken._errors import OAuthError, TokenUnavailableError
from freshtoken.cli._doctor_server import describe_rotation
from freshtoken.cli._token_store import cached_token
from freshtoken.oauth._grants import RefreshTokenGrant
from freshtoken.stores import Entry
from freshtoken.stores._sqlite import SQLiteStore
from freshtoken.testing import AuthServer, FakeClock
from tests._cli import cli_env, ft
from tests._fleet import worker_env
from tests.helpers import make_broker, make_client, wait_until


def _api(server: AuthServer, access_token: str) -> int:
    url = server.url + "/api/v2/tokens/me"
    return httpx.get(url, headers={"Authorization": f"Bearer {access_token}"}).status_code


def _seed(server: AuthServer, broker: TokenBroker) -> None:
    seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
    assert seed.refresh_token
    broker.seed_refresh_token(seed.refresh_token)


def _entry(broker: TokenBroker) -> Entry:
    entry = broker.store.load(broker.key)
    assert entry is not None
    return entry


@pytest.mark.parametrize("revokes", [True, False])
def test_the_knob_revokes_the_access_token_issued_with_the_rotated_refresh_token(
    revokes: bool,
) -> None:
    with AuthServer(revoke_access_on_rotation=revokes) as server:
        client = make_client(server, introspection=True)
        first = client.fetch(AuthorizationCode(server.issue_code("demo-client")))
        assert first.refresh_token and _api(server, first.access_token) == 200
        second = client.fetch(RefreshTokenGrant(first.refresh_token))
        assert _api(server, second.access_token) == 200
        assert _api(server, first.access_token) == (401 if revokes else 200)
        assert client.introspect(first.access_token, "access_token") is (not revokes)
        assert server.stats()["access_revoked_on_rotation"] == int(revokes)


def test_the_knob_is_a_testserver_flag() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "freshtoken", "testserver", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--revoke-access-on-rotation" in help_text


def test_a_rotation_waits_for_the_promise_and_a_short_budget_says_why(tmp_path: Path) -> None:
    clock = FakeClock()
    with AuthServer(ttl=60, revoke_access_on_rotation=True) as server:
        store = SQLiteStore(tmp_path / "t.db")
        first = make_broker(server, clock, store=store, grant=None, wait_timeout=10)
        _seed(server, first)
        token = first.token(50)  # spends the seeded refresh token; promised for 50 s
        assert _entry(first).promised >= clock.time() + 50
        clock.advance(20)  # 40 s left, promised for 30 s more
        short = make_broker(server, clock, store=store, grant=None, wait_timeout=10)
        with pytest.raises(TokenUnavailableError) as caught:
            short.token(45)
        said = f"{caught.value} {caught.value.hint}"
        assert "revokes the current access token when its refresh token is rotated" in said
        assert "promised to another caller for 35.0s more" in said
        assert "FRESHTOKEN_RETRY_BUDGET" in said and "min_ttl" in said
        assert server.stats()["refreshes"] == 1 and _api(server, token.access_token) == 200
        # What the promise covers is handed out without a write; what it does not, waits.
        version = _entry(first).version
        assert short.token(30) == token and _entry(first).version == version
        patient = make_broker(server, clock, store=store, grant=None, wait_timeout=40)
        sleeps = len(clock.sleeps)
        fresh = patient.token(45)
        assert fresh != token and clock.sleeps[sleeps:] == [pytest.approx(35.0)]
        assert _api(server, fresh.access_token) == 200
        assert _api(server, token.access_token) == 401  # revoked by the rotation, as promised
        entry = _entry(first)
        # Learned through introspection, for every process.
        assert entry.facts.revokes_on_rotation is True
        assert "yes (learned through introspection)" in (describe_rotation("auto", entry) or "")


def test_a_server_that_keeps_the_old_token_is_learned_and_then_not_waited_for(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    with AuthServer(ttl=60) as server:
        store = SQLiteStore(tmp_path / "t.db")
        first = make_broker(server, clock, store=store, grant=None, wait_timeout=40)
        _seed(server, first)
        token = first.token(50)
        clock.advance(20)
        assert first.token(45) != token  # not known yet: waits for the promise, then learns
        assert clock.sleeps == [pytest.approx(35.0)]
        assert _entry(first).facts.revokes_on_rotation is False
        version = _entry(first).version
        for _ in range(3):
            other = make_broker(server, clock, store=store, grant=None, wait_timeout=40)
            for _ in range(100):
                other.token(10)
                clock.advance(0.05)
        assert _entry(first).version == version  # no promises written any more
        clock.advance(30)  # 15 s left
        first.token(45)  # rotates at once
        assert clock.sleeps == [pytest.approx(35.0)] and server.stats()["refreshes"] == 3


def _writes(broker: TokenBroker, clock: FakeClock, calls: int, step: float) -> int:
    """How many times the entry was written while `calls` hits were made, `step` s apart."""
    writes, version = 0, _entry(broker).version
    for _ in range(calls):
        broker.token(1)
        clock.advance(step)
        writes, version = writes + (_entry(broker).version != version), _entry(broker).version
    return writes


@pytest.mark.parametrize("mode", ["auto", "yes", "no"])
def test_a_busy_process_writes_its_promise_at_most_once_per_quantum(
    tmp_path: Path, mode: str
) -> None:
    clock = FakeClock()
    with AuthServer(ttl=600, revoke_access_on_rotation=True) as server:
        broker = make_broker(
            server,
            clock,
            store=SQLiteStore(tmp_path / "t.db"),
            grant=None,
            rotation_revokes_access=mode,
        )
        _seed(server, broker)
        broker.token(1)
        # 2,000 hits in 0 s, then 1,000 over 20 s: the quantum is 5 s.
        written = _writes(broker, clock, 2_000, 0.0), _writes(broker, clock, 1_000, 0.02)
        assert written == ((0, 3) if mode != "no" else (0, 0))


def test_the_command_line_peek_serves_only_what_is_promised(tmp_path: Path) -> None:
    with AuthServer(ttl=600, revoke_access_on_rotation=True) as server:
        env = worker_env(server, tmp_path / "t.db", FRESHTOKEN_GRANT="refresh_token")
        settings = Settings.from_env(env)
        broker = TokenBroker.from_settings(settings)
        _seed(server, broker)
        token = broker.token(100)
        assert cached_token(settings, 50) == token  # within the promise: no write needed
        assert cached_token(settings, 200) is None  # the full way publishes it first
        ordinary = Settings.from_env({**env, "FRESHTOKEN_ROTATION_REVOKES_ACCESS": "no"})
        assert cached_token(ordinary, 200) == token


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _run_fleet(
    procs: list[subprocess.Popen[str]], tmp_path: Path, mode: str, seconds: float, n: int
) -> tuple[list[dict[str, Any]], dict[str, Any], Entry | None]:
    with AuthServer(ttl=4, revoke_access_on_rotation=True) as server:
        env = worker_env(
            server, tmp_path / "t.db", FRESHTOKEN_ROTATION_REVOKES_ACCESS=mode, PYTHONPATH="."
        )
        seeder = TokenBroker.from_settings(Settings.from_env(env), grant=None)
        _seed(server, seeder)
        for i in range(n):
            argv = [sys.executable, "-m", "tests._promise_worker", "--seed", str(i)]
            procs.append(
                subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=Path(__file__).parent.parent,
                )
            )
        for proc in procs:  # all started: the calls' time begins now, for all at once
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        until = time.time() + seconds
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{until}\n")
            proc.stdin.flush()  # communicate() below closes it
        results = []
        for proc in procs:
            stdout, _ = proc.communicate(timeout=seconds + 30)
            assert proc.returncode == 0
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        entry = seeder.store.load(seeder.key)
        return results, server.stats(), entry


def _sums(results: list[dict[str, Any]]) -> dict[str, int]:
    return {k: sum(r[k] for r in results) for k in ("calls", "errors", "checks", "broken", "late")}


@pytest.mark.slow
def test_every_token_handed_out_lives_its_min_ttl_while_other_processes_rotate(
    tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    """Three processes of two threads, tokens living 4 s, min_ttl 0.3..2.5 s, refresh ahead
    on: each token is checked at the protected API 0.25 s before its latest promise ends."""
    results, stats, entry = _run_fleet(workers, tmp_path, "auto", 10.0, 3)
    sums = _sums(results)
    assert sums["errors"] == 0, [r["first"] for r in results]
    assert sums["broken"] == 0, [r["first"] for r in results]
    assert stats["refreshes"] >= 3 and stats["access_revoked_on_rotation"] >= 3, stats
    assert sums["checks"] >= 8 and sums["late"] <= sums["checks"] // 10, sums
    assert sums["calls"] > 300, sums
    assert stats["reuse_detections"] == 0
    # Rotations here wait for promises up to the tokens' very end: nothing to learn from an
    # expired token (the tests above learn it), and never a wrong "keeps".
    assert entry is not None and entry.facts.revokes_on_rotation is not False


@pytest.mark.slow
def test_without_the_promise_kept_tokens_handed_out_die_early(
    tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    """The same fleet told the server keeps the old token: the check above can fail."""
    results, stats, _ = _run_fleet(workers, tmp_path, "no", 6.0, 2)
    assert stats["refreshes"] >= 2
    assert _sums(results)["broken"] > 0, _sums(results)


def test_doctor_line_before_anything_is_learned() -> None:
    entry = Entry(None, "rt")
    assert "not known yet" in (describe_rotation("auto", entry) or "")
    assert "rotations do not wait" in (describe_rotation("no", entry) or "")
    assert describe_rotation("auto", Entry(None)) is None  # nothing rotates: nothing to say


def test_doctor_says_what_is_known_of_the_rotation(tmp_path: Path) -> None:
    with AuthServer(refresh_on_client_credentials=True, revoke_access_on_rotation=True) as server:
        env = cli_env(tmp_path, server)
        said = ft(["doctor"], env, tmp_path)
        assert said.returncode == 0, said.stdout
        assert "revokes the previous access token: not known yet" in said.stdout
        assert "assumed yes; a rotation waits" in said.stdout
        env["FRESHTOKEN_ROTATION_REVOKES_ACCESS"] = "no"
        said = ft(["doctor"], env, tmp_path)
        assert "access token: no (FRESHTOKEN_ROTATION_REVOKES_ACCESS); rotations do not wait" in (
            said.stdout
        )


def test_refresh_ahead_puts_off_a_rotation_past_a_long_promise_and_waits_out_a_short_one(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    with AuthServer(ttl=60, revoke_access_on_rotation=True) as server:
        store = SQLiteStore(tmp_path / "t.db")
        broker = make_broker(server, clock, store=store, grant=None, wait_timeout=40)
        _seed(server, broker)
        broker.token(50)  # promised until 55 s from now; due for refresh 30 s from now
        clock.advance(31)
        broker.token(1)  # a hit that finds the token due: refresh ahead, off the caller's path
        # 24 s of promise left, more than the 5-s margin and a quantum: put off to 10 s before.
        wait_until(lambda: broker._cache.next_try == pytest.approx(clock.monotonic() + 14))
        assert server.stats()["refreshes"] == 1 and clock.sleeps == []
        clock.advance(15)
        old = broker.token(1)  # due again: the 9 s left of the promise are waited out
        wait_until(lambda: server.stats()["refreshes"] == 2)
        assert clock.sleeps == [pytest.approx(9.0)]
        wait_until(lambda: broker.current is not None and broker.current != old)


def test_a_rotation_that_failed_leaves_the_token_to_be_promised_again(tmp_path: Path) -> None:
    clock = FakeClock()
    with AuthServer(ttl=600, revoke_access_on_rotation=True) as server:
        store = SQLiteStore(tmp_path / "t.db")
        first = make_broker(server, clock, store=store, grant=None, wait_timeout=40)
        _seed(server, first)
        token = first.token(500)
        clock.advance(200)
        server.configure(failure_rate=1.0)  # the endpoint is down: 503, surely unprocessed
        rotating = make_broker(server, clock, store=store, grant=None, wait_timeout=400)
        with pytest.raises(OAuthError):
            rotating.token(450)  # closed the token to promises, waited 305 s, then failed
        assert _entry(first).phase == "closing"
        other = make_broker(server, clock, store=store, grant=None, wait_timeout=40)
        assert other.token(3) == token  # still valid, not rotated: promised again
        assert _entry(first).promised >= clock.time() + 3
        assert _api(server, token.access_token) == 200


def test_a_budget_shorter_than_the_reserve_still_mints_when_nothing_is_promised(
    tmp_path: Path,
) -> None:
    """A seeded refresh token (no access token yet, nothing promised) and a budget under the
    1-s reserve a rotation keeps: nothing to wait for, so it is spent, not refused (before: an
    AssertionError, a traceback for a short FRESHTOKEN_RETRY_BUDGET)."""
    with AuthServer(ttl=60, revoke_access_on_rotation=True) as server:
        store = SQLiteStore(tmp_path / "t.db")
        broker = make_broker(server, FakeClock(), store=store, grant=None, wait_timeout=0.5)
        _seed(server, broker)
        assert broker.token().access_token
        assert server.stats()["refreshes"] == 1


def test_a_promise_extended_on_the_held_token_counts_the_other_hosts_clocks(
    tmp_path: Path,
) -> None:
    """Promises are written on the clock of the hosts sharing the store, `skew` ahead of this
    one: a token this process holds already is handed out only as long as the promise lasts
    by theirs (as a newly held one is), not `skew` seconds longer."""
    clock = FakeClock()
    with AuthServer(ttl=3600, revoke_access_on_rotation=True) as server:
        store = SQLiteStore(tmp_path / "t.db")
        broker = make_broker(server, clock, store=store, grant=None)
        _seed(server, broker)
        broker._cache.skew = 60.0  # learned: the other hosts' clocks are a minute ahead
        held = broker.token(300)
        assert broker._cache.state is not None
        assert broker._cache.state[2] - clock.monotonic() == pytest.approx(305.0)
        assert broker.token(400) is held  # the same token, promised longer: not minted again
        promised = _entry(broker).promised - broker._cache.shared_time()
        assert broker._cache.state[2] - clock.monotonic() == pytest.approx(promised)
        assert promised == pytest.approx(405.0)
