"""`freshtoken login` as a real process against the real test server, finished by a scripted
"browser" (httpx following the printed URL) or a scripted approval of the device code."""

from __future__ import annotations

import queue
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from freshtoken import AuthorizationCode, Endpoints, PublicClient, TokenClient
from freshtoken.testing import AuthServer, Client
from tests._cli import cli_env, ft
from tests.helpers import CANARY_SECRET, assert_no_leak

PUBLIC = Client("spa", None)
CONFIDENTIAL = Client("demo-client", "demo-secret")
CODE_LINE = re.compile(r"enter the code ([A-Z]{4}-[A-Z]{4})")


class Login:
    """A running `freshtoken login`, its standard error read line by line as it comes."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "freshtoken", "login", *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)

    def line(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The next line of standard error matching `pattern` (fails at the deadline)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} in {timeout} s: {self.err}")
            if found := re.search(pattern, line):
                return found

    def finish(self, timeout: float = 30.0) -> tuple[int, str, str]:
        self.proc.wait(timeout=timeout)  # its output is a line or two: no pipe fills up
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self._reader.join(timeout=5)
        return self.proc.returncode, out, "".join(self.err)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def logins() -> Iterator[list[Login]]:
    started: list[Login] = []
    yield started
    for login in started:
        login.stop()


def _env(
    tmp_path: Path, server: AuthServer, client: Client = PUBLIC, **extra: str
) -> dict[str, str]:
    env = cli_env(tmp_path)
    env.update(
        FRESHTOKEN_ISSUER=server.issuer,  # both endpoints come from discovery
        FRESHTOKEN_CLIENT_ID=client.client_id,
        FRESHTOKEN_GRANT="refresh_token",  # tokens only from the stored refresh token
        FRESHTOKEN_SCOPE="read offline_access",
    )
    if client.secret is None:
        env["FRESHTOKEN_AUTH_METHOD"] = "none"
    else:
        env["FRESHTOKEN_CLIENT_SECRET"] = client.secret
    env.update(extra)
    return env


def _start(logins: list[Login], args: list[str], env: dict[str, str], cwd: Path) -> Login:
    logins.append(Login(args, env, cwd))
    return logins[-1]


def _authorize(login: Login) -> tuple[str, str]:
    """Follow the printed URL to the server's /authorize: (redirect target, the code in it)."""
    url = login.line(r"^(http://\S+/oauth/authorize\?\S+)$").group(1)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
    assert query["scope"] == ["read offline_access"]
    answer = httpx.get(url)
    assert answer.status_code == 302
    location = answer.headers["location"]
    return location, parse_qs(urlsplit(location).query)["code"][0]


@pytest.mark.slow
@pytest.mark.parametrize("client", [PUBLIC, CONFIDENTIAL], ids=["public", "confidential"])
def test_browser_login_stores_a_refresh_token_that_token_then_uses(
    tmp_path: Path, logins: list[Login], client: Client
) -> None:
    clients = [PUBLIC, CONFIDENTIAL]
    with AuthServer(clients=clients, require_pkce=True, refuse_plain_pkce=True) as server:
        env = _env(tmp_path, server, client)
        login = _start(logins, ["--no-browser", "--timeout", "30"], env, tmp_path)
        target, code = _authorize(login)
        page = httpx.get(target)  # the browser lands on the loopback listener
        assert page.status_code == 200
        assert "Login complete" in page.text
        rc, out, err = login.finish()
        assert rc == 0, err
        assert out == ""
        assert "refresh token is stored" in err
        assert_no_leak("login's standard error", err, code, "demo-secret")
        with pytest.raises(httpx.ConnectError):  # one redirect accepted, then closed
            httpx.get(target)
        sent = server.token_requests()
        assert [r["form"]["grant_type"] for r in sent] == ["authorization_code"]
        assert sent[0]["form"]["code_verifier"] == "***"  # the server checked it (S256 only)
        assert sent[0]["form"]["redirect_uri"] == target.split("?")[0]

        token = ft(["token"], env, tmp_path)
        assert token.returncode == 0, token.stderr
        assert server.stats()["refreshes"] == 1
        assert (
            httpx.get(
                server.url + "/api/v2/tokens/me",
                headers={"Authorization": "Bearer " + token.stdout.strip()},
            ).json()["scope"]
            == "read offline_access"
        )


def test_a_redirect_with_a_wrong_state_is_refused_and_its_code_never_redeemed(
    tmp_path: Path, logins: list[Login]
) -> None:
    with AuthServer(clients=[PUBLIC]) as server:
        login = _start(logins, ["--no-browser"], _env(tmp_path, server), tmp_path)
        target, _ = _authorize(login)
        callback = target.split("?")[0]
        forged = server.issue_code("spa", ("read",), callback)
        refused = httpx.get(callback, params={"code": forged, "state": "not-ours"})
        assert refused.status_code == 400
        assert "wrong state" in refused.text
        login.line("ignored a redirect with a wrong or missing state; still waiting")
        assert httpx.get(callback, params={"code": forged}).status_code == 400  # no state
        assert httpx.get(target).status_code == 200  # the real one still gets through
        rc, _, err = login.finish()
        assert rc == 0, err
        assert len(server.token_requests()) == 1
        # The forged code is still unspent: the login never presented it.
        public = TokenClient(PublicClient("spa"), endpoints=Endpoints(server.token_url))
        assert public.fetch(AuthorizationCode(forged, redirect_uri=callback)).refresh_token


def test_a_declined_login_fails_clearly(tmp_path: Path, logins: list[Login]) -> None:
    with AuthServer(clients=[PUBLIC], deny_authorization=True) as server:
        login = _start(logins, ["--no-browser"], _env(tmp_path, server), tmp_path)
        url = login.line(r"^(http://\S+)$").group(1)
        target = httpx.get(url).headers["location"]
        assert "error=access_denied" in target
        page = httpx.get(target)
        assert page.status_code == 400
        assert "access_denied" in page.text
        rc, _, err = login.finish()
        assert rc == 3
        assert "refused the login: access_denied (the user declined)" in err
        assert "hint:" in err
        assert server.token_requests() == []


def test_no_redirect_in_time_fails_and_says_so(tmp_path: Path, logins: list[Login]) -> None:
    with AuthServer(clients=[PUBLIC]) as server:
        login = _start(logins, ["--no-browser", "--timeout", "1"], _env(tmp_path, server), tmp_path)
        rc, _, err = login.finish()
        assert rc == 3
        assert "no login redirect arrived within 1 s" in err
        assert "error=login_timeout" in err


def test_without_an_authorization_endpoint_login_names_the_setting(tmp_path: Path) -> None:
    with AuthServer(clients=[PUBLIC]) as server:
        env = _env(tmp_path, server, FRESHTOKEN_TOKEN_URL=server.token_url)  # no discovery
        out = ft(["login", "--no-browser"], env, tmp_path)
        assert out.returncode == 2
        assert "FRESHTOKEN_AUTHORIZATION_URL" in out.stderr
        out = ft(["login", "--device"], env, tmp_path)
        assert out.returncode == 2
        assert "FRESHTOKEN_DEVICE_AUTHORIZATION_URL" in out.stderr


def test_a_region_alone_gives_login_the_authorization_endpoint(
    tmp_path: Path, logins: list[Login]
) -> None:
    """The Genesys Cloud preset knows its authorization endpoint: FRESHTOKEN_REGION and the
    client are all `freshtoken login` needs (the URL is only printed: nothing is sent)."""
    env = cli_env(
        tmp_path,
        FRESHTOKEN_REGION="eu_west_1",
        FRESHTOKEN_CLIENT_ID="ci-client",
        FRESHTOKEN_CLIENT_SECRET=CANARY_SECRET,
    )
    login = _start(logins, ["--no-browser", "--timeout", "1"], env, tmp_path)
    url = urlsplit(login.line(r"^(https://\S+)$").group(1))
    assert (url.scheme, url.hostname, url.path) == (
        "https",
        "login.mypurecloud.ie",
        "/oauth/authorize",
    )
    query = parse_qs(url.query)
    assert query["client_id"] == ["ci-client"]
    assert query["code_challenge_method"] == ["S256"]
    rc, _out, err = login.finish()
    assert rc == 3  # no browser came back within the second
    assert "error=login_timeout" in err
    assert_no_leak("login's standard error", err)


@pytest.mark.slow
def test_the_genesys_preset_at_any_address_logs_in_at_its_authorization_endpoint(
    tmp_path: Path, logins: list[Login]
) -> None:
    """provider = genesys with a token URL (the shipped stand-in here): the authorization
    endpoint is the preset's path on that host; no issuer, no authorization URL set."""
    with AuthServer.genesys(clients=[CONFIDENTIAL], require_pkce=True) as server:
        env = cli_env(
            tmp_path,
            server,
            FRESHTOKEN_PROVIDER="genesys",
            FRESHTOKEN_API_URL=server.url,
            FRESHTOKEN_GRANT="refresh_token",
        )
        login = _start(logins, ["--no-browser", "--timeout", "30"], env, tmp_path)
        url = login.line(r"^(http://\S+/oauth/authorize\?\S+)$").group(1)
        answer = httpx.get(url)
        assert answer.status_code == 302
        page = httpx.get(answer.headers["location"])  # the browser lands on the listener
        assert "Login complete" in page.text
        rc, _out, err = login.finish()
        assert rc == 0, err
        assert [r["form"]["grant_type"] for r in server.token_requests()] == ["authorization_code"]
        token = ft(["token"], env, tmp_path)
        assert token.returncode == 0, token.stderr
        assert server.stats()["refreshes"] == 1


def _device_code(login: Login) -> str:
    return login.line(CODE_LINE.pattern).group(1)


def test_device_login_approved_in_parallel(tmp_path: Path, logins: list[Login]) -> None:
    with AuthServer(clients=[CONFIDENTIAL], device_interval=0.2) as server:
        env = _env(tmp_path, server, CONFIDENTIAL)
        login = _start(logins, ["--device"], env, tmp_path)
        user_code = _device_code(login)
        form = httpx.get(server.url + "/device").text
        assert 'name="user_code"' in form
        approved = httpx.post(
            server.url + "/device", data={"user_code": user_code.lower(), "action": "approve"}
        )
        assert approved.status_code == 200
        rc, out, err = login.finish()
        assert rc == 0, err
        assert out == ""
        assert_no_leak("login --device's standard error", err, "demo-secret")
        assert "authorization_pending" not in err  # waiting is no error worth printing
        token = ft(["token"], env, tmp_path)
        assert token.returncode == 0, token.stderr
        assert server.stats()["refreshes"] == 1


@pytest.mark.parametrize(
    ("knobs", "approve", "said"),
    [
        ({}, False, "the device login was denied"),
        ({"device_code_ttl": 1.0}, None, "the device code expired"),
    ],
)
def test_device_login_denied_or_expired_fails_clearly(
    tmp_path: Path, logins: list[Login], knobs: dict[str, Any], approve: bool | None, said: str
) -> None:
    with AuthServer(clients=[PUBLIC], device_interval=0.2, **knobs) as server:
        login = _start(logins, ["--device"], _env(tmp_path, server), tmp_path)
        user_code = _device_code(login)
        if approve is not None:
            assert server.decide_device(user_code, approve)
        rc, _, err = login.finish()
        assert rc == 3
        assert said in err
        assert ft(["token"], _env(tmp_path, server), tmp_path).returncode != 0  # nothing stored


@pytest.mark.slow
def test_device_login_honours_slow_down(tmp_path: Path, logins: list[Login]) -> None:
    # The server answers the first poll slow_down and then counts any poll sooner than the
    # grown interval (0.2 s + 5 s) as too fast: one slow_down in all means it was honoured.
    with AuthServer(clients=[PUBLIC], device_interval=0.2, device_slow_down=1) as server:
        login = _start(logins, ["--device"], _env(tmp_path, server), tmp_path)
        assert server.decide_device(_device_code(login))
        rc, _, err = login.finish()
        assert rc == 0, err
        errors = server.stats()["errors"]
        assert errors.get("slow_down") == 1
        assert [r["form"]["grant_type"] for r in server.token_requests()] == [
            "urn:ietf:params:oauth:grant-type:device_code"
        ] * 2


@pytest.mark.parametrize("github", [True, False])
def test_print_writes_the_refresh_token_to_stdout_only(
    tmp_path: Path, logins: list[Login], github: bool
) -> None:
    with AuthServer(clients=[PUBLIC], device_interval=0.2) as server:
        env = _env(tmp_path, server)
        if github:
            env["GITHUB_ACTIONS"] = "true"
        login = _start(logins, ["--device", "--print"], env, tmp_path)
        assert server.decide_device(_device_code(login))
        rc, out, err = login.finish()
        assert rc == 0, err
        refresh = out.strip()
        assert out == refresh + "\n"
        assert server.active_refresh_tokens("spa") == 1
        mask = f"::add-mask::{refresh}\n"
        assert err.count(mask) == (1 if github else 0)
        assert_no_leak("login --print's standard error", err.replace(mask, ""), refresh)
        # Printed instead of stored: one holder, so it is never presented twice.
        assert ft(["token"], env, tmp_path).returncode != 0
        assert server.active_refresh_tokens("spa") == 1


def test_redirect_port_is_used_and_a_busy_one_named(tmp_path: Path, logins: list[Login]) -> None:
    with AuthServer(clients=[PUBLIC]) as server, socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = _env(tmp_path, server, FRESHTOKEN_REDIRECT_PORT=str(port))
        out = ft(["login", "--no-browser"], env, tmp_path)
        assert out.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
        assert "FRESHTOKEN_REDIRECT_PORT" in out.stderr
        busy.close()
        login = _start(logins, ["--no-browser"], env, tmp_path)
        url = login.line(r"^(http://\S+)$").group(1)
        assert parse_qs(urlsplit(url).query)["redirect_uri"] == [
            f"http://127.0.0.1:{port}/callback"
        ]
        assert httpx.get(httpx.get(url).headers["location"]).status_code == 200
        rc, _, err = login.finish()
        assert rc == 0, err


@pytest.mark.slow
def test_two_peoples_logins_for_one_public_client_keep_apart_in_a_shared_store(
    tmp_path: Path, logins: list[Login]
) -> None:
    """A public client has no credential in the cache key: on one Redis, Bob's login would
    replace Alice's (and her pipeline would act as Bob). The login label keeps them apart, and
    a login without one is refused there."""
    from tests._redis import RedisProcess

    folder = tmp_path / "redis"
    folder.mkdir()
    redis = RedisProcess(folder).start()
    try:
        with AuthServer(clients=[PUBLIC], device_interval=0.2) as server:
            shared = {
                "FRESHTOKEN_STORE": redis.url,
                "FRESHTOKEN_STORE_KEY": "S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2U=",
            }
            bare = _start(logins, ["--device"], _env(tmp_path, server, PUBLIC, **shared), tmp_path)
            rc, _, err = bare.finish()
            assert rc == 2 and "needs a login label" in err, err
            people = {}
            for name in ("alice", "bob"):
                people[name] = env = _env(tmp_path, server, PUBLIC, FRESHTOKEN_LOGIN=name, **shared)
                login = _start(logins, ["--device"], env, tmp_path)
                assert server.decide_device(_device_code(login))
                rc, _, err = login.finish()
                assert rc == 0, err
            assert server.active_refresh_tokens("spa") == 2
            for env in people.values():
                out = ft(["token"], env, tmp_path)
                assert out.returncode == 0, out.stderr
            # Each spent their own refresh token: two refreshes, two chains alive.
            assert server.stats()["refreshes"] == 2
            assert server.active_refresh_tokens("spa") == 2
    finally:
        redis.stop()


def _login_query(login: Login) -> tuple[str, dict[str, list[str]]]:
    url = login.line(r"^(http://\S+/oauth/authorize\?\S+)$").group(1)
    return url, parse_qs(urlsplit(url).query)


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["read offline_access", "openid offline_access"])
def test_offline_access_of_an_openid_provider_asks_for_consent_and_stores_a_refresh_token(
    tmp_path: Path, logins: list[Login], scope: str
) -> None:
    """Issue 24 items 1 and 2: as panva's oidc-provider, the server drops offline_access (and
    issues no refresh token) unless prompt=consent; with openid it wants a nonce, and the ID
    token carries it."""
    knobs = {"offline_access_needs_consent": True, "require_nonce": True}
    with AuthServer(clients=[PUBLIC], **knobs) as server:  # type: ignore[arg-type]
        env = _env(tmp_path, server, FRESHTOKEN_SCOPE=scope)
        login = _start(logins, ["--no-browser"], env, tmp_path)
        url, query = _login_query(login)
        assert query["prompt"] == ["consent"]
        assert ("nonce" in query) == ("openid" in scope)
        assert httpx.get(httpx.get(url).headers["location"]).status_code == 200
        rc, _, err = login.finish()
        assert rc == 0, err
        assert server.active_refresh_tokens("spa") == 1
        assert ft(["token"], env, tmp_path).returncode == 0

        # FRESHTOKEN_PROMPT=none sends none: the server drops offline_access, and login says so.
        login = _start(logins, ["--no-browser"], {**env, "FRESHTOKEN_PROMPT": "none"}, tmp_path)
        url, query = _login_query(login)
        assert "prompt" not in query
        assert httpx.get(httpx.get(url).headers["location"]).status_code == 200
        rc, _, err = login.finish()
        assert rc == 3
        assert "issued no refresh token" in err


def test_an_id_token_with_another_nonce_fails_the_login(
    tmp_path: Path, logins: list[Login]
) -> None:
    with AuthServer(clients=[PUBLIC], wrong_nonce=True) as server:
        env = _env(tmp_path, server, FRESHTOKEN_SCOPE="openid offline_access")
        login = _start(logins, ["--no-browser"], env, tmp_path)
        url, _query = _login_query(login)
        assert httpx.get(httpx.get(url).headers["location"]).status_code == 200
        rc, _, err = login.finish()
        assert rc == 3, err
        assert "the ID token from 127.0.0.1 carries another nonce" in err
        assert "Traceback" not in err
        assert server.active_refresh_tokens("spa") == 1  # minted, never stored
        assert ft(["token"], env, tmp_path).returncode != 0


@pytest.mark.slow
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_an_exact_redirect_uri_is_listened_at_and_sent_as_registered(
    tmp_path: Path, logins: list[Login], host: str
) -> None:
    if host == "[::1]" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host.strip("[]"), 0))
        port = probe.getsockname()[1]
    registered = f"http://{host}:{port}/oauth/cb"
    client = Client("spa", None, redirect_uris=(registered,))
    with AuthServer(clients=[client]) as server:
        env = _env(tmp_path, server, client, FRESHTOKEN_REDIRECT_URI=registered)
        login = _start(logins, ["--no-browser"], env, tmp_path)
        url, query = _login_query(login)
        assert query["redirect_uri"] == [registered]
        answer = httpx.get(url)
        assert answer.status_code == 302, answer.text
        assert httpx.get(answer.headers["location"]).status_code == 200
        rc, _, err = login.finish()
        assert rc == 0, err
        # Taken: login names the exact URI it cannot listen at.
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as busy:
            busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            busy.bind((host.strip("[]").replace("localhost", "127.0.0.1"), port))
            busy.listen()
            out = ft(["login", "--no-browser"], env, tmp_path)
        assert out.returncode == 2
        assert f"for the login redirect ({registered}, FRESHTOKEN_REDIRECT_URI)" in out.stderr


def test_a_redirect_uri_off_loopback_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with AuthServer(clients=[PUBLIC]) as server:
        env = _env(tmp_path, server, FRESHTOKEN_REDIRECT_URI="http://example.com:8765/cb")
        out = ft(["login", "--no-browser"], env, tmp_path)
        assert out.returncode == 2
        assert "is not a loopback redirect URI" in out.stderr
        assert server.token_requests() == []
