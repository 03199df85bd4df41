"""Issue 12, items 1 and 2: the Genesys preset at any address (`provider = "genesys"` with a
token URL and an API URL), and `freshtoken revoke` through Genesys' `DELETE /api/v2/tokens/me`,
against the shipped test server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from freshtoken import _build
from freshtoken._errors import ConfigurationError
from freshtoken.config._settings import Settings
from freshtoken.testing import AuthServer
from tests._cli import cli_env, ft


def genesys_env(tmp: Path, server: AuthServer, **extra: str) -> dict[str, str]:
    return cli_env(
        tmp, server, FRESHTOKEN_PROVIDER="genesys", FRESHTOKEN_API_URL=server.url, **extra
    )


def me(server: AuthServer, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(server.url + "/api/v2/tokens/me", headers=headers).status_code


@pytest.mark.slow
def test_revoke_at_genesys_kills_the_token(tmp_path: Path) -> None:
    with AuthServer.genesys(ttl=300) as server:
        env = genesys_env(tmp_path, server)
        token = ft(["token"], env, tmp_path)
        assert token.returncode == 0, token.stderr
        access = token.stdout.strip()
        assert me(server, access) == 200
        revoked = ft(["revoke"], env, tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        assert "access_token: revoked; dropped from the store" in revoked.stdout
        assert me(server, access) == 401  # the old token no longer works
        assert server.stats()["revocations"] == 1
        status = json.loads(ft(["status", "--format", "json"], env, tmp_path).stdout)
        assert status["entries"] == []
        again = ft(["token"], env, tmp_path)  # the next call mints a new, working token
        assert again.stdout.strip() != access and me(server, again.stdout.strip()) == 200


@pytest.mark.slow
def test_revoke_says_when_a_server_cannot(tmp_path: Path, server: AuthServer) -> None:
    env = cli_env(tmp_path, server)  # no revocation endpoint, not Genesys
    access = ft(["token"], env, tmp_path).stdout.strip()
    out = ft(["revoke"], env, tmp_path)
    assert out.returncode == 2  # a configuration problem: nothing was sent
    assert "no revocation endpoint is known" in out.stderr
    assert "nothing was revoked or dropped" in out.stderr
    assert "set FRESHTOKEN_REVOCATION_URL" in out.stderr
    assert me(server, access) == 200  # honestly: still valid at the server
    # Kept, so that the fix works on the same token.
    env["FRESHTOKEN_REVOCATION_URL"] = server.url + "/oauth/revoke"
    fixed = ft(["revoke"], env, tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert "access_token: revoked" in fixed.stdout
    assert me(server, access) == 401
    assert ft(["revoke"], env, tmp_path).stdout.strip() == "nothing stored for this profile"


def test_revoke_not_confirmed_exits_non_zero(tmp_path: Path) -> None:
    with AuthServer.genesys(ttl=300) as server:
        env = genesys_env(tmp_path, server)
        assert ft(["token"], env, tmp_path).returncode == 0
        server.revoke_all()  # the server no longer knows the token: DELETE answers 401
        out = ft(["revoke"], env, tmp_path)
        assert out.returncode == 1
        assert "access_token: not confirmed by the server" in out.stdout
        assert "tokens/me (access tokens only) (from the Genesys Cloud preset)" in out.stderr
        assert "FRESHTOKEN_REVOCATION_URL" in out.stderr


def test_the_preset_points_anywhere(tmp_path: Path) -> None:
    with AuthServer.genesys(ttl=300) as server:
        settings = Settings.from_env(
            {
                "FRESHTOKEN_PROVIDER": "genesys",
                "FRESHTOKEN_TOKEN_URL": server.token_url,
                "FRESHTOKEN_API_URL": server.url,
            }
        )
        found = _build.endpoints(settings)
        assert found is not None
        assert (found.provider, found.api_base_url, found.region) == ("genesys", server.url, None)
        assert _build.proxy_upstream(settings) == server.url
        # The wrong-client hint speaks of Genesys regions at this address too.
        wrong = ft(["token"], genesys_env(tmp_path, server, FRESHTOKEN_CLIENT_SECRET="x"), tmp_path)
        assert wrong.returncode == 3
        assert "wrong Genesys Cloud region" in wrong.stderr
        assert "FRESHTOKEN_API_URL" in wrong.stderr
    region = _build.endpoints(Settings.from_env({"FRESHTOKEN_REGION": "eu_west_1"}))
    assert region is not None and region.provider == "genesys"
    assert region.api_base_url == "https://api.mypurecloud.ie"
    with pytest.raises(ConfigurationError, match="needs a token URL and an API URL"):
        _build.endpoints(Settings.from_env({"FRESHTOKEN_PROVIDER": "genesys"}))
    with pytest.raises(ConfigurationError, match="provider"):
        Settings.from_env({"FRESHTOKEN_PROVIDER": "okta"})


def test_proxy_forwards_to_the_api_url(tmp_path: Path) -> None:
    """`serve --proxy` finds its upstream from FRESHTOKEN_API_URL (no region)."""
    import subprocess
    import sys

    with AuthServer.genesys(ttl=300) as server:
        env = genesys_env(tmp_path, server)
        proc = subprocess.Popen(
            [sys.executable, "-m", "freshtoken", "serve", "--listen", "127.0.0.1:0", "--proxy"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            ready = json.loads(proc.stdout.readline())
            key = Path(ready["key_file"]).read_text().strip()
            answer = httpx.get(
                ready["proxy_url"] + "/api/v2/tokens/me", headers={"X-Freshtoken-Key": key}
            )
            assert answer.status_code == 200 and answer.json()["id"] == "demo-client"
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
