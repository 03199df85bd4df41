"""The refresh-token chain under the faults of issue 26, each performed for real: a gateway's
502 or 504 after the server rotated, a late answer and a frozen refresh process, a sink
program that floods its output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from freshtoken import AuthorizationCode, ClientCredentials, TokenBroker
from freshtoken._errors import ServerError
from freshtoken.stores._sqlite import SQLiteStore
from freshtoken.testing import AuthServer
from tests._cli import ft, ft_started, refresh_token_env
from tests.helpers import live_processes, make_broker, make_client, wait_until


def _seed(server: AuthServer, broker: TokenBroker) -> None:
    seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
    assert seed.refresh_token
    broker.seed_refresh_token(seed.refresh_token)


# -- a gateway's 502 / 504: the outcome is unknown, the token counts as spent --------------------
@pytest.mark.parametrize("status", [504, 502])
def test_a_gateway_error_after_the_rotation_never_gets_the_token_presented_again(
    tmp_path: Path, status: int
) -> None:
    with AuthServer(ttl=600) as server:
        if status == 502:  # the gateway's answers alternate 504, 502: use up a 504
            server.configure(lost_answers=1)
            make_client(server).fetch(ClientCredentials())
        broker = make_broker(server, store=SQLiteStore(tmp_path / "t.db"), grant=None)
        _seed(server, broker)
        server.configure(lost_answers=2)  # the server rotates, the gateway answers 50x
        with pytest.raises(ServerError) as info:
            broker.token()
        stats = server.stats()
    assert info.value.status == status
    # What to do says the token may be spent, not "usually brief and retried with backoff".
    assert "not sent again" in info.value.message and "seed-refresh-token" in info.value.hint
    assert stats["reuse_detections"] == 0, stats  # before: sent again 0.3 s later, revoked
    assert stats["refreshes"] == 1


def test_a_client_credentials_mint_is_retried_past_a_gateway_error() -> None:
    with AuthServer() as server:
        server.configure(lost_answers=2)  # 504, then 502: each request minted a token
        assert make_client(server).fetch(ClientCredentials()).access_token
        stats = server.stats()
    assert stats["lost_answers"] == 2 and stats["token_requests"] == 3


def test_the_command_line_presents_a_refresh_token_once_behind_a_gateway(tmp_path: Path) -> None:
    """Through the process that presents it (the spender): one request, a clear error."""
    with AuthServer(ttl=600) as server:
        env = refresh_token_env(server, tmp_path, FRESHTOKEN_READ_TIMEOUT="0.5")
        server.configure(lost_answers=5)
        first = ft(["token"], env, tmp_path)
        server.configure(lost_answers=0)
        stats = server.stats()
    assert first.returncode == 4, first.stderr
    assert "HTTP 504" in first.stderr and "Traceback" not in first.stderr
    assert stats["reuse_detections"] == 0 and stats["refreshes"] == 1, stats


# -- a late answer: read and stored until the mark's deadline ------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("sink", ["none", "failing"])
def test_an_answer_later_than_the_read_timeout_is_stored(tmp_path: Path, sink: str) -> None:
    """The server answers after the read timeout (the attempt's deadline): the process that
    presented the token reads on until the mark's deadline, and stores the new token (with a
    sink that fails, as pending, for the next call to write first)."""
    kept = tmp_path / "refresh_token"
    with AuthServer(ttl=600) as server:
        env = refresh_token_env(
            server,
            tmp_path,
            FRESHTOKEN_CONNECT_TIMEOUT="1",
            FRESHTOKEN_READ_TIMEOUT="1",
            FRESHTOKEN_RETRY_BUDGET="20",
            FRESHTOKEN_REFRESH_TOKEN_SINK="command:false" if sink == "failing" else "",
        )
        server.configure(latency=2.5)  # the attempt's deadline is 1 s after it was sent
        first = ft(["token"], env, tmp_path)
        server.configure(latency=0.0)
        fixed = {**env, "FRESHTOKEN_REFRESH_TOKEN_SINK": kept.as_uri() if sink != "none" else ""}
        again = ft(["token"], fixed, tmp_path)
        stats = server.stats()
    if sink == "none":
        assert first.returncode == 0, first.stderr  # before: timed out, the new token lost
        assert again.stdout == first.stdout  # the stored token, no second refresh
        assert stats["refreshes"] == 1, stats
    else:
        assert first.returncode == 5 and "sink" in first.stderr, first.stderr
        assert again.returncode == 0, again.stderr  # the pending token written, then spent
        assert stats["refreshes"] == 2 and kept.read_text().strip(), stats
    assert stats["reuse_detections"] == 0, stats
    assert server.active_refresh_tokens("demo-client") == 1


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP")
def test_a_refresh_process_frozen_past_its_attempt_deadline_stores_the_late_answer(
    tmp_path: Path,
) -> None:
    """The process presenting the token is frozen (a paused VM or container) mid-request and
    thawed after its attempt's deadline, before the server's answer: it reads on until the
    mark's deadline, and stores the new token."""
    with AuthServer(ttl=600) as server:
        # attempt deadline: 3 s to start + connect 1 + read 5 = 9 s after the mark; the
        # mark's: 14 s. The server answers 9.8 s after the request, once the spender is thawed.
        env = refresh_token_env(
            server,
            tmp_path,
            FRESHTOKEN_CONNECT_TIMEOUT="1",
            FRESHTOKEN_READ_TIMEOUT="5",
            FRESHTOKEN_RETRY_BUDGET="25",
        )
        server.configure(latency=9.8)
        caller = ft_started(["token"], env, tmp_path)
        spender: list[int] = []

        def spotted() -> bool:
            live = live_processes("freshtoken.broker._spender").items()
            spender[:] = [pid for pid, parent in live if parent == caller.pid]
            return bool(spender)

        wait_until(spotted)
        marked = time.monotonic()  # the mark was written just before the spender started
        wait_until(lambda: bool(server.stats()["inflight_ages"]))
        os.kill(spender[0], signal.SIGSTOP)
        try:
            time.sleep(max(marked + 9.3 - time.monotonic(), 0.0))  # the fault: frozen this long
        finally:
            os.kill(spender[0], signal.SIGCONT)
        out, err = caller.communicate(timeout=60)
        server.configure(latency=0.0)
        again = ft(["token"], env, tmp_path)
        stats = server.stats()
    assert caller.returncode == 0, err  # before: the late answer was thrown away
    assert again.stdout == out
    assert stats["reuse_detections"] == 0 and stats["refreshes"] == 1, stats
    assert server.active_refresh_tokens("demo-client") == 1


# -- a sink program that floods its stderr --------------------------------------------------------
_MAX_RSS = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode)
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="RUSAGE_CHILDREN, sh, head and yes")
def test_a_sink_program_writing_200_mb_to_stderr_costs_no_memory_and_loses_no_token(
    tmp_path: Path,
) -> None:
    flood = "command:sh -c 'yes flood | head -c 200000000 >&2; exit 1'"
    kept = tmp_path / "refresh_token"
    with AuthServer(ttl=600) as server:
        env = refresh_token_env(server, tmp_path, FRESHTOKEN_RETRY_BUDGET="20")
        started = time.monotonic()
        measured = subprocess.run(
            [sys.executable, "-c", _MAX_RSS, sys.executable, "-m", "freshtoken", "token"],
            env={**env, "FRESHTOKEN_REFRESH_TOKEN_SINK": flood},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        took = time.monotonic() - started
        max_rss_kib, code = (int(x) for x in measured.stdout.split())
        # The rotated token was kept in the store: the next call writes it to a working sink
        # before it refreshes.
        fixed = {**env, "FRESHTOKEN_REFRESH_TOKEN_SINK": kept.as_uri()}
        again = ft(["token"], fixed, tmp_path)
        stats = server.stats()
    assert code == 5, measured.stderr
    assert "exited with code 1: " in measured.stderr and "flood flood" in measured.stderr
    assert took < 20 + 5, took  # the deadline, plus starting Python twice
    assert max_rss_kib < 150 * 1024, max_rss_kib  # before: 633 MB
    assert again.returncode == 0, again.stderr
    # the pending token written first, then spent: the chain alive, one live refresh token
    assert stats["reuse_detections"] == 0 and stats["refreshes"] == 2, stats
    assert kept.read_text().strip() and server.active_refresh_tokens("demo-client") == 1
