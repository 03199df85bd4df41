"""Issue 15, items 3 and 5: an issuer with a path (the provider mounted under /o, no metadata at
the root, an OIDC document naming no revocation endpoint, as django-oauth-toolkit serves it);
discovery merges the documents, `freshtoken revoke` really revokes there or exits non-zero
naming FRESHTOKEN_REVOCATION_URL, and `doctor` lists the endpoints with where each came from."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from freshtoken import ClientCredentials, ClientSecretBasic, ConfigurationError, Secret, TokenClient
from freshtoken.testing import AuthServer
from tests._cli import cli_env, ft

RFC8414 = "/.well-known/oauth-authorization-server"
OIDC = "/.well-known/openid-configuration"


def issuer_env(tmp: Path, server: AuthServer, **extra: str) -> dict[str, str]:
    env = cli_env(tmp, server, FRESHTOKEN_ISSUER=server.issuer, **extra)
    del env["FRESHTOKEN_TOKEN_URL"]
    return env


def client(issuer: str) -> TokenClient:
    return TokenClient(ClientSecretBasic("demo-client", Secret("demo-secret")), issuer=issuer)


def active(server: AuthServer, token: str) -> bool:
    answer = httpx.post(
        server.issuer + "/oauth/introspect",
        data={"token": token},
        auth=("demo-client", "demo-secret"),
    )
    return bool(answer.json()["active"])


def test_the_mount_knob_serves_metadata_where_django_oauth_toolkit_does() -> None:
    with AuthServer(mount="o/") as server:
        assert server.issuer == server.url + "/o"
        assert server.token_url == server.url + "/o/oauth/token"
        assert httpx.get(server.url + RFC8414).status_code == 404  # nothing at the root
        assert httpx.get(server.url + OIDC).status_code == 404
        assert httpx.post(server.url + "/oauth/token").status_code == 404
        for path in (RFC8414 + "/o", "/o" + RFC8414):
            meta = httpx.get(server.url + path).json()
            assert meta["issuer"] == server.issuer
            assert meta["revocation_endpoint"] == server.issuer + "/oauth/revoke"
        oidc = httpx.get(server.url + "/o" + OIDC).json()
        assert oidc["issuer"] == server.issuer and "revocation_endpoint" not in oidc


def test_discovery_reads_the_rfc8414_document_of_an_issuer_with_a_path() -> None:
    with AuthServer(mount="/o") as server:
        found = client(server.issuer).endpoints()
        assert found.token_url == server.token_url
        assert found.revocation_url == server.issuer + "/oauth/revoke"
        assert found.source("revocation_url") == server.url + RFC8414 + "/o"  # path inserted
        assert client(server.issuer).fetch(ClientCredentials()).access_token


def test_metadata_only_under_the_openid_path_of_an_issuer_with_a_path(tmp_path: Path) -> None:
    """Real servers round 3, item 10: nothing at RFC 8414's places, the OpenID document under
    the issuer's path: found there, nothing refused; doctor says where it came from."""
    with AuthServer(mount="/realms/ci", metadata_only_openid=True) as server:
        for path in (RFC8414 + "/realms/ci", "/realms/ci" + RFC8414):
            assert httpx.get(server.url + path).status_code == 404
        found = client(server.issuer).endpoints()
        assert found.token_url == server.token_url
        assert found.source("token_url") == server.url + "/realms/ci" + OIDC
        assert client(server.issuer).fetch(ClientCredentials()).access_token
        doctor = ft(["doctor"], issuer_env(tmp_path, server), tmp_path)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert server.url + "/realms/ci" + OIDC in doctor.stdout


def test_discovery_merges_what_each_document_says() -> None:
    """The RFC 8414 documents name no introspection endpoint, the OIDC one no revocation
    endpoint: each endpoint comes from the document that names it."""
    with AuthServer(mount="/o", metadata_omit="introspection_endpoint") as server:
        found = client(server.issuer).endpoints()
        assert found.revocation_url == server.issuer + "/oauth/revoke"
        assert found.source("revocation_url") == server.url + RFC8414 + "/o"
        assert found.introspection_url == server.issuer + "/oauth/introspect"
        assert found.source("introspection_url") == server.url + "/o" + OIDC
        assert found.source("token_url") == server.url + RFC8414 + "/o"


def test_discovery_stops_at_a_host_that_does_not_answer() -> None:
    """Every place is on the issuer's host: after a connection failure the rest are not tried
    (each would spend the caller's budget the same way)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(ConfigurationError) as info:
            client(f"http://127.0.0.1:{port}/o").endpoints()
    assert info.value.hint.count("ConnectError") == 1


def test_revoke_at_an_issuer_with_a_path_really_revokes(tmp_path: Path) -> None:
    with AuthServer(mount="/o") as server:
        env = issuer_env(tmp_path, server)
        token = ft(["token"], env, tmp_path)
        assert token.returncode == 0, token.stderr
        access = token.stdout.strip()
        assert active(server, access)
        out = ft(["revoke"], env, tmp_path)
        assert out.returncode == 0, out.stderr
        assert "access_token: revoked" in out.stdout
        assert not active(server, access)


@pytest.mark.slow
def test_revoke_without_a_revocation_endpoint_exits_non_zero_naming_the_setting(
    tmp_path: Path,
) -> None:
    with AuthServer(mount="/o", metadata_omit="revocation_endpoint") as server:
        env = issuer_env(tmp_path, server)
        access = ft(["token"], env, tmp_path).stdout.strip()
        out = ft(["revoke"], env, tmp_path)
        assert out.returncode == 2, out.stdout
        assert f"no revocation endpoint is known for {server.issuer}" in out.stderr
        assert "Its metadata lists none: set FRESHTOKEN_REVOCATION_URL" in out.stderr
        assert active(server, access)  # not revoked, and still held: the fix can revoke it
        env["FRESHTOKEN_REVOCATION_URL"] = server.issuer + "/oauth/revoke"
        doctor = ft(["doctor"], env, tmp_path)
        assert (
            f"revocation: {server.issuer}/oauth/revoke  (from $FRESHTOKEN_REVOCATION_URL)"
            in doctor.stdout
        )
        fixed = ft(["revoke"], env, tmp_path)
        assert fixed.returncode == 0, fixed.stderr
        assert not active(server, access)
        assert server.stats()["revocations"] == 1


def test_revoke_the_server_does_not_confirm_exits_non_zero(tmp_path: Path) -> None:
    with AuthServer(mount="/o") as server:
        wrong = server.url + "/no/such/revoke"
        env = issuer_env(tmp_path, server, FRESHTOKEN_REVOCATION_URL=wrong)
        access = ft(["token"], env, tmp_path).stdout.strip()
        out = ft(["revoke"], env, tmp_path)
        assert out.returncode == 1
        assert "access_token: not confirmed by the server; dropped from the store" in out.stdout
        assert f"{wrong} (from $FRESHTOKEN_REVOCATION_URL) refused or did not answer" in out.stderr
        assert active(server, access)


def test_doctor_lists_the_endpoints_and_where_each_came_from(tmp_path: Path) -> None:
    with AuthServer(mount="/o", metadata_omit="introspection_endpoint", ttl=3) as server:
        out = ft(["doctor", "--min-ttl", "1"], issuer_env(tmp_path, server), tmp_path)
        assert out.returncode == 0, out.stdout
        lines = out.stdout.splitlines()
        inserted, oidc = server.url + RFC8414 + "/o", server.url + "/o" + OIDC
        assert f"i token endpoint: {server.token_url}  (from {inserted})" in lines
        assert f"i revocation: {server.issuer}/oauth/revoke  (from {inserted})" in lines
        assert f"i introspection: {server.issuer}/oauth/introspect  (from {oidc})" in lines
        assert any(
            line.startswith("i a token lives 3 s, less than the 15 min build") for line in lines
        )
        assert "i learned: no provider preset: generic OAuth 2.0 hints and revoke" in lines


def test_doctor_says_what_is_not_available(tmp_path: Path, server: AuthServer) -> None:
    out = ft(["doctor", "--format", "json"], cli_env(tmp_path, server), tmp_path)
    titles = [c["title"] for c in json.loads(out.stdout)]
    assert f"token endpoint: {server.token_url}  (from $FRESHTOKEN_TOKEN_URL)" in titles
    assert any(t.startswith("introspection: not available") for t in titles)
    assert any(
        t.startswith("revocation: not available") and "FRESHTOKEN_REVOCATION_URL" in t
        for t in titles
    )


def test_doctor_with_the_genesys_preset(tmp_path: Path) -> None:
    with AuthServer.genesys(ttl=300) as server:
        env = cli_env(
            tmp_path, server, FRESHTOKEN_REGION="eu_west_1", FRESHTOKEN_API_URL=server.url
        )
        lines = ft(["doctor"], env, tmp_path).stdout.splitlines()
        revoke = f"i revocation: DELETE {server.url}/api/v2/tokens/me (access tokens only)"
    assert f"{revoke}  (from the Genesys Cloud preset)" in lines
    assert (
        "i learned: provider preset Genesys Cloud (region eu_west_1): its hints and revoke" in lines
    )
    assert any(line.startswith("i a token lives 5 min") for line in lines)


def test_testserver_mount_flag(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "freshtoken", "testserver", "--mount", "/o"],
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert (
            ready["issuer"].endswith("/o")
            and ready["token_url"] == ready["issuer"] + "/oauth/token"
        )
        assert (
            client(ready["issuer"]).endpoints().revocation_url == ready["issuer"] + "/oauth/revoke"
        )
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
