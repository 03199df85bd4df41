"""Hosts whose clocks disagree within the documented bound (the refresh window) share one
store: the one behind learns how far the other is ahead from the tokens it stored, instead of
counting each of them as having no time left (issue 26, item 4). The host ahead is a broker
on a clock 120 s ahead of this machine's; the host behind is the real `freshtoken` command."""

from __future__ import annotations

import re
import time
from pathlib import Path

from freshtoken import Settings, TokenBroker
from freshtoken.testing import AuthServer, FakeClock
from tests._cli import ft, refresh_token_env, sealed_env, store_key

SKEW = 120.0


def _ahead(env: dict[str, str], tmp: Path) -> TokenBroker:
    """A broker on a host whose clock is SKEW seconds ahead, sharing the store of `env`."""
    settings = Settings.load(environ=env, cwd=tmp)
    return TokenBroker.from_settings(settings, clock=FakeClock(time.time() + SKEW))


def test_client_credentials_a_host_behind_takes_the_token_a_host_ahead_minted(
    tmp_path: Path,
) -> None:
    with AuthServer(ttl=3600) as server:
        env = sealed_env(tmp_path, server)
        with _ahead(env, tmp_path) as ahead:
            minted = ahead.token()
        runs = [ft(["token", "--min-ttl", "1800"], env, tmp_path) for _ in range(3)]
        stats = server.stats()
    assert [r.returncode for r in runs] == [0, 0, 0], runs[0].stderr
    assert {r.stdout.strip() for r in runs} == {minted.access_token}
    assert stats["tokens_minted"] == 1, stats  # before: every call minted its own
    # 120 s less the time since the host ahead minted (seconds on a loaded machine)
    said = re.search(r"counting the other hosts' clocks as (\d+)s ahead", runs[0].stderr)
    assert said is not None and 90 <= int(said.group(1)) <= SKEW, runs[0].stderr


def test_a_server_that_revokes_on_rotation_serves_the_host_behind(tmp_path: Path) -> None:
    """The host ahead refreshed and promised the token on its clock: the host behind hands it
    out (it has about an hour left) instead of waiting to rotate it."""
    with AuthServer(ttl=3600, revoke_access_on_rotation=True) as server:
        env = refresh_token_env(
            server,
            tmp_path,
            FRESHTOKEN_STORE_KEY=store_key(),
            FRESHTOKEN_ROTATION_REVOKES_ACCESS="yes",
            FRESHTOKEN_RETRY_BUDGET="5",
        )
        with _ahead(env, tmp_path) as ahead:
            minted = ahead.token(600)
        behind = ft(["token", "--min-ttl", "600"], env, tmp_path)
        stats = server.stats()
    assert behind.returncode == 0, behind.stderr  # before: "promised to another caller"
    assert behind.stdout.strip() == minted.access_token
    assert stats["refreshes"] == 1 and stats["reuse_detections"] == 0, stats


def test_a_token_further_ahead_than_the_refresh_window_is_not_trusted(tmp_path: Path) -> None:
    with AuthServer(ttl=120) as server:  # refresh window: 30 s
        env = sealed_env(tmp_path, server)
        with _ahead(env, tmp_path) as ahead:
            minted = ahead.token()
        behind = ft(["token"], env, tmp_path)
        stats = server.stats()
    assert behind.returncode == 0 and behind.stdout.strip() != minted.access_token
    assert "not trusting it" in behind.stderr and stats["tokens_minted"] == 2
